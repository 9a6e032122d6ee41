// The prefork parent of sessionkit-fcgi-demo: starts N worker processes,
// restarts any that dies while the service runs, and stops them all on
// SIGTERM or SIGINT.
//
// Signals: the caller blocks SIGTERM, SIGINT and SIGCHLD before anything else
// (so none is lost before the loop runs); the supervisor takes them with
// sigtimedwait. Children inherit the mask (the worker's sigwait relies on it)
// and get PR_SET_PDEATHSIG SIGTERM, so a parent killed with SIGKILL still
// drains its workers.
//
// Stop: SIGTERM is forwarded to every worker, which finishes its in-flight
// requests; the supervisor waits for all of them, SIGKILLs those still alive
// after kStopTimeout, and returns 0 when every worker exited 0.
//
// Restarts: a worker that exits or is killed while the service runs is logged
// ("worker 2 (pid 123) was killed by signal 9; starting a new one") and
// replaced at once, or after one second when it lived less than a second (a
// worker that cannot start must not make the parent spin).
#pragma once

#include <chrono>
#include <functional>

namespace sessionkit::fcgi_demo {

inline constexpr std::chrono::seconds kStopTimeout{30};

// Runs until stopped; returns the exit status of the whole service.
// `child_main` runs in each forked worker; its return value is the worker's exit status.
int run_supervisor(int workers, const std::function<int()>& child_main);

}  // namespace sessionkit::fcgi_demo

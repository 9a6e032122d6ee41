// One worker process of sessionkit-fcgi-demo (a child of the supervisor).
//
// It builds its own SessionManager (after fork: LMDB must be opened in the
// process that uses it; the lock region, created by the parent, is attached by
// name) and runs `threads` accept loops on the shared listening socket, each
// with its own FCGX_Request.
//
// Accepting without blocking in accept(): the listening socket is
// non-blocking (set once by the parent) and each loop waits in epoll_wait on
// it (EPOLLEXCLUSIVE, so one connection wakes one waiting thread, not every
// thread of every worker) and on a stop eventfd. A loop that loses the race
// for a connection gets EAGAIN from FCGX_Accept_r and waits again. So SIGTERM
// needs no signal inside request I/O (libfcgi does not retry EINTR) and no
// shutdown() of the listening socket, which every worker and the parent share:
// shutting it down in one worker would stop them all, including replacements.
//
// SIGTERM or SIGINT (taken by sigwait in the main thread; the caller keeps
// both blocked): FCGX_ShutdownPending() (no loop accepts a new connection
// any more) and the stop eventfd is written; idle loops return at once, a
// loop serving a request finishes it (its session saved and unlocked, its
// answer flushed) and then returns; kept-alive FastCGI connections
// (FCGI_KEEP_CONN) are closed between requests. The manager is destroyed
// (the store closed) and run_worker returns 0.
#pragma once

#include "adapters/fastcgi/demo/demo_options.hpp"
#include "sessionkit/config.hpp"

namespace sessionkit::fcgi_demo {

// Serves until SIGTERM/SIGINT. Returns the process exit status: 0 after a
// clean drain, 1 when the manager could not be built or an accept loop failed
// (logged; the supervisor then starts a new worker).
// REQUIRES: SIGTERM and SIGINT blocked in the calling thread; listen_fd non-blocking.
int run_worker(const Config& config, const DemoOptions& options, int listen_fd);

}  // namespace sessionkit::fcgi_demo

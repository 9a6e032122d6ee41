#include "adapters/fastcgi/demo/supervisor.hpp"

#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "adapters/fastcgi/demo/demo_log.hpp"

namespace sessionkit::fcgi_demo {
namespace {

using Clock = std::chrono::steady_clock;

struct Worker {
  pid_t pid = -1;
  Clock::time_point started{};
  Clock::time_point restart_at{};
};

std::string describe(int status) {
  if (WIFEXITED(status)) return "exited with status " + std::to_string(WEXITSTATUS(status));
  if (WIFSIGNALED(status)) {
    return "was killed by signal " + std::to_string(WTERMSIG(status)) + " (" + strsignal(WTERMSIG(status)) +
           ")";
  }
  return "stopped with wait status " + std::to_string(status);
}

pid_t spawn(int index, const std::function<int()>& child_main) {
  const pid_t parent = getpid();
  std::fflush(nullptr);
  const pid_t pid = fork();
  if (pid < 0) {
    log("fork for worker %d: %s", index, std::strerror(errno));
    return -1;
  }
  if (pid > 0) return pid;
  // The child. SIGTERM and SIGINT stay blocked (the worker sigwaits for them).
  prctl(PR_SET_PDEATHSIG, SIGTERM);
  if (getppid() != parent) ::kill(getpid(), SIGTERM);  // the parent died before prctl
  sigset_t chld;
  sigemptyset(&chld);
  sigaddset(&chld, SIGCHLD);
  sigprocmask(SIG_UNBLOCK, &chld, nullptr);
  int rc = 1;
  try {
    rc = child_main();
  } catch (const std::exception& e) {
    log("worker %d: %s", index, e.what());
  }
  std::fflush(nullptr);
  _exit(rc);
}

}  // namespace

int run_supervisor(int count, const std::function<int()>& child_main) {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGCHLD);

  std::vector<Worker> workers(static_cast<std::size_t>(count));
  for (std::size_t i = 0; i < workers.size(); ++i) {
    workers[i].pid = spawn(static_cast<int>(i), child_main);
    workers[i].started = Clock::now();
    workers[i].restart_at = Clock::now() + std::chrono::seconds(1);  // when fork failed
  }

  bool stopping = false;
  Clock::time_point stop_deadline{};
  int status = 0;
  for (;;) {
    // Sleep until a signal, a due restart or the stop deadline; 1 s at most.
    Clock::time_point wake = Clock::now() + std::chrono::seconds(1);
    for (const Worker& w : workers) {
      if (w.pid < 0 && !stopping) wake = std::min(wake, w.restart_at);
    }
    if (stopping) wake = std::min(wake, stop_deadline);
    const auto wait_ns = std::max<std::int64_t>(
        0, std::chrono::duration_cast<std::chrono::nanoseconds>(wake - Clock::now()).count());
    timespec timeout{static_cast<time_t>(wait_ns / 1000000000), static_cast<long>(wait_ns % 1000000000)};
    const int sig = sigtimedwait(&set, nullptr, &timeout);
    if ((sig == SIGTERM || sig == SIGINT) && !stopping) {
      stopping = true;
      stop_deadline = Clock::now() + kStopTimeout;
      log("%s: stopping %d workers", sig == SIGTERM ? "SIGTERM" : "SIGINT", count);
      for (const Worker& w : workers) {
        if (w.pid > 0) ::kill(w.pid, SIGTERM);
      }
    }

    int wstatus = 0;
    pid_t pid = 0;
    while ((pid = waitpid(-1, &wstatus, WNOHANG)) > 0) {
      auto it = std::find_if(workers.begin(), workers.end(), [&](const Worker& w) { return w.pid == pid; });
      if (it == workers.end()) continue;
      const int index = static_cast<int>(it - workers.begin());
      it->pid = -1;
      if (stopping) {
        if (!(WIFEXITED(wstatus) && WEXITSTATUS(wstatus) == 0)) {
          log("worker %d (pid %d) %s while stopping", index, static_cast<int>(pid),
              describe(wstatus).c_str());
          status = 1;
        }
        continue;
      }
      const bool died_young = Clock::now() - it->started < std::chrono::seconds(1);
      it->restart_at = died_young ? Clock::now() + std::chrono::seconds(1) : Clock::now();
      log("worker %d (pid %d) %s; starting a new one%s", index, static_cast<int>(pid),
          describe(wstatus).c_str(), died_young ? " in 1 s" : "");
    }

    if (stopping) {
      const bool all_gone =
          std::all_of(workers.begin(), workers.end(), [](const Worker& w) { return w.pid < 0; });
      if (all_gone) break;
      if (Clock::now() >= stop_deadline) {
        for (Worker& w : workers) {
          if (w.pid <= 0) continue;
          log("worker (pid %d) still running %lld s after SIGTERM; SIGKILL", static_cast<int>(w.pid),
              static_cast<long long>(kStopTimeout.count()));
          ::kill(w.pid, SIGKILL);
          waitpid(w.pid, nullptr, 0);
          w.pid = -1;
        }
        status = 1;
        break;
      }
      continue;
    }
    for (std::size_t i = 0; i < workers.size(); ++i) {
      Worker& w = workers[i];
      if (w.pid >= 0 || Clock::now() < w.restart_at) continue;
      w.pid = spawn(static_cast<int>(i), child_main);
      w.started = Clock::now();
      w.restart_at = Clock::now() + std::chrono::seconds(1);
    }
  }
  log("stopped");
  return status;
}

}  // namespace sessionkit::fcgi_demo

#include "adapters/fastcgi/demo/worker.hpp"

#include <fcgiapp.h>
#include <poll.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdint>
#include <cstring>
#include <memory>
#include <system_error>
#include <thread>
#include <vector>

#include "adapters/fastcgi/demo/demo_handler.hpp"
#include "adapters/fastcgi/demo/demo_log.hpp"
#include "sessionkit/session_manager.hpp"

namespace sessionkit::fcgi_demo {
namespace {

class Fd {
 public:
  explicit Fd(int fd) : fd_(fd) {}
  ~Fd() {
    if (fd_ >= 0) ::close(fd_);
  }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  int get() const { return fd_; }

 private:
  int fd_;
};

// Waits until the listening socket (or, for a kept-alive connection, that
// connection) is readable; false when the stop eventfd fired instead.
class AcceptWaiter {
 public:
  AcceptWaiter(int listen_fd, int stop_fd) : epoll_(epoll_create1(EPOLL_CLOEXEC)), stop_fd_(stop_fd) {
    if (epoll_.get() < 0) throw std::system_error(errno, std::generic_category(), "epoll_create1");
    epoll_event ev{};
    ev.events = EPOLLIN | EPOLLEXCLUSIVE;
    ev.data.fd = listen_fd;
    if (epoll_ctl(epoll_.get(), EPOLL_CTL_ADD, listen_fd, &ev) != 0) {
      throw std::system_error(errno, std::generic_category(), "epoll_ctl(listening socket)");
    }
    ev.events = EPOLLIN;  // level-triggered and never read: once written, every loop sees it
    ev.data.fd = stop_fd;
    if (epoll_ctl(epoll_.get(), EPOLL_CTL_ADD, stop_fd, &ev) != 0) {
      throw std::system_error(errno, std::generic_category(), "epoll_ctl(stop eventfd)");
    }
  }

  bool wait(int kept_connection) {
    for (;;) {
      if (kept_connection >= 0) {
        pollfd fds[2] = {{kept_connection, POLLIN, 0}, {stop_fd_, POLLIN, 0}};
        const int n = ::poll(fds, 2, -1);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) throw std::system_error(errno, std::generic_category(), "poll");
        return (fds[1].revents & POLLIN) == 0;
      }
      epoll_event events[2];
      const int n = epoll_wait(epoll_.get(), events, 2, -1);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) throw std::system_error(errno, std::generic_category(), "epoll_wait");
      for (int i = 0; i < n; ++i) {
        if (events[i].data.fd == stop_fd_) return false;
      }
      return true;
    }
  }

 private:
  Fd epoll_;
  int stop_fd_;
};

// One thread's loop. Returns false after a fatal error (logged).
bool accept_loop(int listen_fd, int stop_fd, DemoHandler& handler, const std::atomic<bool>& stopping) {
  FCGX_Request request;
  FCGX_InitRequest(&request, listen_fd, 0);
  bool ok = true;
  try {
    AcceptWaiter waiter(listen_fd, stop_fd);
    // request.ipcFd >= 0 between requests only when the web server asked to
    // keep the connection (FCGI_KEEP_CONN); FCGX_Accept_r then reads the next
    // request from it instead of accepting.
    while (waiter.wait(request.ipcFd)) {
      const int rc = FCGX_Accept_r(&request);
      if (rc == -EAGAIN || rc == -EWOULDBLOCK || rc == -EINTR) continue;  // another loop took it
      if (rc < 0) {
        if (stopping.load()) break;
        log("FCGX_Accept_r failed: %s", rc > -4096 ? std::strerror(-rc) : "libfcgi error");
        ok = false;
        break;
      }
      handler.handle(request);
      FCGX_Finish_r(&request);  // flushes the answer (and closes unless kept)
    }
  } catch (const std::exception& e) {
    log("accept loop: %s", e.what());
    ok = false;
  }
  if (request.ipcFd >= 0) FCGX_Free(&request, 1);  // an idle kept-alive connection
  return ok;
}

}  // namespace

int run_worker(const Config& config, const DemoOptions& options, int listen_fd) {
  std::unique_ptr<SessionManager> manager;
  try {
    manager = std::make_unique<SessionManager>(config);
  } catch (const std::exception& e) {
    log("cannot start: %s", e.what());
    return 1;
  }
  Fd stop(eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  if (stop.get() < 0) {
    log("eventfd: %s", std::strerror(errno));
    return 1;
  }
  DemoHandler handler(*manager, options.test_hooks);
  std::atomic<bool> stopping{false};
  std::atomic<bool> failed{false};
  std::vector<std::thread> threads;
  try {
    for (int t = 0; t < options.threads; ++t) {
      // Threads inherit the blocked SIGTERM/SIGINT: only sigwait below takes them.
      threads.emplace_back([&] {
        if (!accept_loop(listen_fd, stop.get(), handler, stopping)) {
          failed.store(true);
          ::kill(getpid(), SIGTERM);  // wakes the sigwait below; the exit status says failure
        }
      });
    }
  } catch (const std::exception& e) {
    log("cannot start threads: %s", e.what());
    failed.store(true);
  }

  if (!failed.load()) {
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    int sig = 0;
    while (sigwait(&set, &sig) != 0) {
    }
  }
  stopping.store(true);
  // A loop already woken for a connection must not take it now: libfcgi's
  // accept returns at once while shutdown is pending (the connection stays
  // queued for the next owner of the socket, or is refused with it).
  FCGX_ShutdownPending();
  const std::uint64_t one = 1;
  if (::write(stop.get(), &one, sizeof(one)) != static_cast<ssize_t>(sizeof(one))) {
    log("stop eventfd: %s", std::strerror(errno));
  }
  for (std::thread& t : threads) t.join();
  manager.reset();  // closes the store after the last request's save
  return failed.load() ? 1 : 0;
}

}  // namespace sessionkit::fcgi_demo

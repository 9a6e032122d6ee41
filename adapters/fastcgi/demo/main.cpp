// sessionkit-fcgi-demo: a prefork, multi-threaded FastCGI responder with
// sessions, the FastCGI counterpart of mod_sessionkit's sessionkit-demo
// handler (docs/adapters.md). Options: demo_options.hpp; process model:
// supervisor.hpp and worker.hpp.
//
// Start-up, in the parent, before any fork:
//   1. the configuration is read and checked, and refused when it cannot
//      serve several processes (a memory store or thread locks with
//      --workers > 1);
//   2. the lock region (shm) or lock file (fcntl) is created and kept open
//      for the parent's lifetime, so every worker, and every replacement,
//      attaches to the same one;
//   3. the listening socket is opened (FCGX_OpenSocket) and made
//      non-blocking (see worker.hpp).
// The store is opened in each worker, never in the parent.
#include <fcgiapp.h>
#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <memory>
#include <stdexcept>

#include "adapters/fastcgi/demo/demo_log.hpp"
#include "adapters/fastcgi/demo/demo_options.hpp"
#include "adapters/fastcgi/demo/supervisor.hpp"
#include "adapters/fastcgi/demo/worker.hpp"
#include "sessionkit/sessionkit.hpp"

namespace sk = sessionkit;
using sessionkit::fcgi_demo::log;

namespace {

// Throws Error(bad_config) when `config` cannot serve `workers` processes.
void check_process_model(const sk::Config& config, const std::string& path, int workers) {
  if (workers <= 1) return;
  const std::string many =
      "--workers " + std::to_string(workers) + " runs " + std::to_string(workers) + " worker processes";
  if (!sk::Registry::global().store(config.store.type).shared_across_processes) {
    throw sk::Error(sk::errc::bad_config, path + ": store.type: the \"" + config.store.type +
                                              "\" store lives in one process, but " + many +
                                              "; use lmdb, file or redis, or --workers 1");
  }
  if (config.locks.type != "none" &&
      !sk::Registry::global().lock_manager(config.locks.type).shared_across_processes) {
    throw sk::Error(sk::errc::bad_config, path + ": locks.type: \"" + config.locks.type +
                                              "\" locks exclude threads of one process only, but " + many +
                                              "; use shm or fcntl, or --workers 1");
  }
}

}  // namespace

int main(int argc, char** argv) {
  // A web server closing its end mid-answer must not kill the worker.
  signal(SIGPIPE, SIG_IGN);
  // Blocked before anything else so that none is lost; see supervisor.hpp.
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGCHLD);
  sigprocmask(SIG_BLOCK, &set, nullptr);

  sessionkit::fcgi_demo::DemoOptions options;
  try {
    bool help = false;
    options = sessionkit::fcgi_demo::parse_options(argc, argv, help);
    if (help) {
      std::fputs(sessionkit::fcgi_demo::kUsage, stdout);
      return 0;
    }
  } catch (const std::invalid_argument& e) {
    std::fprintf(stderr, "sessionkit-fcgi-demo: %s\n%s", e.what(), sessionkit::fcgi_demo::kUsage);
    return 2;
  }

  sk::Config config;
  std::unique_ptr<sk::LockManager> region;
  try {
    config = sk::Config::from_file(options.config_path);
    check_process_model(config, options.config_path, options.workers);
    region =
        sk::Registry::global().lock_manager(config.locks.type).create(*config.locks.section, config.base_dir);
  } catch (const std::exception& e) {
    log("%s", e.what());
    return 1;
  }

  if (FCGX_Init() != 0) {
    log("FCGX_Init failed");
    return 1;
  }
  const int listen_fd = FCGX_OpenSocket(options.socket.c_str(), options.backlog);
  if (listen_fd < 0) {
    log("cannot listen on %s: %s", options.socket.c_str(), std::strerror(errno));
    return 1;
  }
  const int flags = fcntl(listen_fd, F_GETFL);
  if (flags < 0 || fcntl(listen_fd, F_SETFL, flags | O_NONBLOCK) != 0) {
    log("fcntl(O_NONBLOCK) on the listening socket: %s", std::strerror(errno));
    return 1;
  }
  log("listening on %s: %d workers x %d threads, store %s, locks %s", options.socket.c_str(), options.workers,
      options.threads, config.store.type.c_str(), config.locks.type.c_str());

  const int status = sessionkit::fcgi_demo::run_supervisor(options.workers, [&] {
    // The parent's handle stays the parent's: the worker attaches by itself.
    region.reset();
    return sessionkit::fcgi_demo::run_worker(config, options, listen_fd);
  });
  ::close(listen_fd);
  if (options.socket.find(':') == std::string::npos) ::unlink(options.socket.c_str());
  region.reset();
  return status;
}

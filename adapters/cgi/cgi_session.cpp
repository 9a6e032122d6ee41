// The request helpers of sessionkit/cgi.hpp.
#include "sessionkit/cgi.hpp"

#include <errno.h>  // program_invocation_short_name

#include <cstdio>
#include <cstdlib>
#include <random>

#include "adapters/cgi/cgi_headers.hpp"

namespace sessionkit::cgi {
namespace {

void put(const std::string& text) { std::fwrite(text.data(), 1, text.size(), stdout); }

}  // namespace

std::string_view env(const char* name) noexcept {
  const char* value = std::getenv(name);
  return value != nullptr ? std::string_view(value) : std::string_view();
}

std::string_view cookie_header() noexcept { return env("HTTP_COOKIE"); }

bool is_https() noexcept { return detail::https_from(env("HTTPS"), env("REQUEST_SCHEME")); }

RequestInfo request_info() noexcept {
  RequestInfo info;
  info.secure_transport = is_https();
  return info;
}

void check_config(const Config& config) {
  if (config.store.type == "memory") {
    throw Error(errc::bad_config,
                "store.type: the \"memory\" store cannot serve CGI: each request is a new process, so every "
                "session would be lost when it exits; use lmdb, file or redis");
  }
  if (config.locks.type == "thread") {
    throw Error(
        errc::bad_config,
        "locks.type: \"thread\" locks cannot serve CGI: each request is a new process, and they exclude "
        "only threads of one process; use shm or fcntl (or \"none\" to opt out of locking)");
  }
}

Config load_config(const char* path) {
  if (path == nullptr || *path == '\0') throw Error(errc::bad_config, "no configuration file given");
  Config config = Config::from_file(path);
  try {
    check_config(config);
  } catch (const Error& e) {
    throw Error(errc::bad_config, std::string(path) + ": " + e.what());
  }
  return config;
}

Session open(SessionManager& manager) {
  const std::uint32_t every = manager.config().gc.every_n_requests;
  if (every > 1) {
    // A process serves one request, so SessionManager's per-process counter
    // never reaches every_n_requests: draw instead.
    std::random_device random;
    if (std::uniform_int_distribution<std::uint32_t>(0, every - 1)(random) == 0) {
      try {
        manager.sweep(manager.config().gc.budget);
      } catch (const Error&) {
      }
    }
  }
  // every == 1: SessionManager::open sweeps on its own (its first request is the 1st of 1).
  return manager.open(cookie_header(), request_info());
}

void write_headers(int status, std::string_view content_type, const std::optional<std::string>& set_cookie,
                   const Headers& extra) {
  put(detail::header_block(status, content_type, set_cookie, extra));
}

void write_headers(const SessionManager& manager, const Session& session, int status,
                   std::string_view content_type, const Headers& extra) {
  write_headers(status, content_type, manager.set_cookie(session), extra);
}

int error_status(const std::exception& e) noexcept { return detail::error_status(e); }

int write_error(const std::exception& e) noexcept {
  const int status = error_status(e);
  std::fprintf(stderr, "%s: sessionkit: %s\n", program_invocation_short_name, e.what());
  std::fflush(stderr);
  try {
    put(detail::error_response(status));
  } catch (...) {
    // Out of memory building a few bytes: nothing better to send.
  }
  std::fflush(stdout);
  return status;
}

}  // namespace sessionkit::cgi

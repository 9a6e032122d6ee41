// The request handler of sessionkit-fcgi-demo, the same behaviour as
// mod_sessionkit's sessionkit-demo handler: open the session, increment the
// integer "n", store a 200-byte string under "pad", save, answer n as
// text/plain (no newline). A path ending in "/hello" answers "hello" without
// touching sessions (the baseline of the benchmarks).
//
// Thread safety: handle() may run in many threads at once (one request each).
#pragma once

#include <fcgiapp.h>

#include "sessionkit/sessionkit.hpp"

namespace sessionkit::fcgi_demo {

class DemoHandler {
 public:
  // test_hooks: honour ?sleep_ms=N (sleep while holding the session's lock,
  // after logging "test hook: holding the session lock for N ms").
  DemoHandler(SessionManager& manager, bool test_hooks) : manager_(manager), test_hooks_(test_hooks) {}

  // Answers `request` completely (headers and body); never throws.
  void handle(FCGX_Request& request) noexcept;

 private:
  void handle_demo(FCGX_Request& request, bool head);

  SessionManager& manager_;
  const bool test_hooks_;
};

// The request's path: REQUEST_URI without its query, else SCRIPT_NAME + PATH_INFO.
std::string request_path(const FCGX_Request& request);

// The value of `key` in a query string ("" when absent).
std::string query_value(std::string_view query, std::string_view key);

}  // namespace sessionkit::fcgi_demo

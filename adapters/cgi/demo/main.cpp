// sessionkit-cgi-demo: the CGI counterpart of mod_sessionkit's sessionkit-demo
// handler (docs/adapters.md): open the session, increment the integer "n",
// store a 200-byte string under "pad", save, answer n as text/plain (no
// newline). A path ending in "/hello" answers "hello" before any sessionkit
// work: the process start-up baseline of the benchmarks.
//
// Environment: SESSIONKIT_CONFIG (required) names the JSON configuration;
// SESSIONKIT_TEST_HOOKS=1 honours ?sleep_ms=N while the session is held (tests
// only); SESSIONKIT_CGI_TIMING=1 writes the start-up cost to stderr:
//   sessionkit-cgi-demo: timing: config_us=.. manager_us=.. request_us=..
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <thread>

#include "sessionkit/cgi.hpp"

namespace sk = sessionkit;
namespace cgi = sessionkit::cgi;

namespace {

using Clock = std::chrono::steady_clock;

long long micros(Clock::time_point from, Clock::time_point to) {
  return std::chrono::duration_cast<std::chrono::microseconds>(to - from).count();
}

std::string request_path() {
  std::string_view uri = cgi::env("REQUEST_URI");
  if (!uri.empty()) return std::string(uri.substr(0, uri.find('?')));
  return std::string(cgi::env("SCRIPT_NAME")) + std::string(cgi::env("PATH_INFO"));
}

std::string query_value(std::string_view query, std::string_view key) {
  for (std::size_t pos = 0; pos <= query.size();) {
    std::size_t end = query.find('&', pos);
    if (end == std::string_view::npos) end = query.size();
    std::string_view pair = query.substr(pos, end - pos);
    if (pair.size() > key.size() && pair.substr(0, key.size()) == key && pair[key.size()] == '=') {
      return std::string(pair.substr(key.size() + 1));
    }
    pos = end + 1;
  }
  return "";
}

}  // namespace

int main() {
  const auto start = Clock::now();
  const std::string_view method = cgi::env("REQUEST_METHOD");
  const bool head = method == "HEAD";
  try {
    if (method != "GET" && method != "POST" && !head) {
      cgi::write_headers(405, "text/plain", std::nullopt, {{"Allow", "GET, HEAD, POST"}});
      return 0;
    }
    const std::string path = request_path();
    if (path.size() >= 6 && path.compare(path.size() - 6, 6, "/hello") == 0) {
      cgi::write_headers(200, "text/plain");
      if (!head) std::fputs("hello", stdout);
      return 0;
    }

    const char* config_path = std::getenv("SESSIONKIT_CONFIG");
    if (config_path == nullptr || *config_path == '\0') {
      throw sk::Error(sk::errc::bad_config,
                      "SESSIONKIT_CONFIG is not set (the sessionkit JSON configuration)");
    }
    const sk::Config config = cgi::load_config(config_path);
    const auto configured = Clock::now();
    sk::SessionManager manager(config);
    const auto started = Clock::now();

    std::int64_t n = 0;
    std::optional<std::string> cookie;
    {
      sk::Session s = cgi::open(manager);
      nlohmann::json& data = s.data();
      n = data.value("n", std::int64_t{0}) + 1;
      data["n"] = n;
      data["pad"] = std::string(200, 'p');
      if (cgi::env("SESSIONKIT_TEST_HOOKS") == "1") {
        const long long ms = std::atoll(query_value(cgi::env("QUERY_STRING"), "sleep_ms").c_str());
        if (ms > 0) {
          std::fprintf(stderr, "sessionkit-cgi-demo[%d]: test hook: holding the session lock for %lld ms\n",
                       static_cast<int>(getpid()), ms);
          std::this_thread::sleep_for(std::chrono::milliseconds(ms));
        }
      }
      s.save();
      cookie = manager.set_cookie(s);
      s.unlock();
    }
    cgi::write_headers(200, "text/plain", cookie);
    if (!head) std::fputs(std::to_string(n).c_str(), stdout);
    std::fflush(stdout);
    if (!cgi::env("SESSIONKIT_CGI_TIMING").empty()) {
      std::fprintf(stderr, "sessionkit-cgi-demo: timing: config_us=%lld manager_us=%lld request_us=%lld\n",
                   micros(start, configured), micros(configured, started), micros(started, Clock::now()));
    }
    return 0;
  } catch (const std::exception& e) {
    cgi::write_error(e);
    return 1;
  }
}

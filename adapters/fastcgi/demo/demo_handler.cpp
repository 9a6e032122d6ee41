#include "adapters/fastcgi/demo/demo_handler.hpp"

#include <chrono>
#include <cstdlib>
#include <string>
#include <thread>

#include "adapters/fastcgi/demo/demo_log.hpp"
#include "sessionkit/fastcgi.hpp"

namespace sessionkit::fcgi_demo {

namespace fcgi = sessionkit::fastcgi;

std::string request_path(const FCGX_Request& request) {
  std::string_view uri = fcgi::param(request, "REQUEST_URI");
  if (!uri.empty()) return std::string(uri.substr(0, uri.find('?')));
  return std::string(fcgi::param(request, "SCRIPT_NAME")) + std::string(fcgi::param(request, "PATH_INFO"));
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

void DemoHandler::handle(FCGX_Request& request) noexcept {
  try {
    const std::string_view method = fcgi::param(request, "REQUEST_METHOD");
    const bool head = method == "HEAD";
    if (method != "GET" && method != "POST" && !head) {
      fcgi::write_headers(request, 405, "text/plain", std::nullopt, {{"Allow", "GET, HEAD, POST"}});
      return;
    }
    const std::string path = request_path(request);
    if (path.size() >= 6 && path.compare(path.size() - 6, 6, "/hello") == 0) {
      fcgi::write_headers(request, 200, "text/plain");
      if (!head) FCGX_PutS("hello", request.out);
      return;
    }
    handle_demo(request, head);
  } catch (const std::exception& e) {
    fcgi::write_error(request, e);  // nothing was written before the throw
  }
}

void DemoHandler::handle_demo(FCGX_Request& request, bool head) {
  std::int64_t n = 0;
  std::optional<std::string> cookie;
  {
    Session s = fcgi::open(manager_, request);
    nlohmann::json& data = s.data();
    n = data.value("n", std::int64_t{0}) + 1;
    data["n"] = n;
    data["pad"] = std::string(200, 'p');
    if (test_hooks_) {
      const long long ms = std::atoll(query_value(fcgi::param(request, "QUERY_STRING"), "sleep_ms").c_str());
      if (ms > 0) {
        log("test hook: holding the session lock for %lld ms", ms);
        std::this_thread::sleep_for(std::chrono::milliseconds(ms));
      }
    }
    s.save();
    cookie = manager_.set_cookie(s);
    // Unlocked before the answer is written: a slow client must not hold the lock.
    s.unlock();
  }
  fcgi::write_headers(request, 200, "text/plain", cookie);
  if (!head) {
    const std::string body = std::to_string(n);
    FCGX_PutStr(body.data(), static_cast<int>(body.size()), request.out);
  }
}

}  // namespace sessionkit::fcgi_demo

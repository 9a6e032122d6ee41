// The request helpers of sessionkit/fastcgi.hpp.
#include "sessionkit/fastcgi.hpp"

#include <fcgiapp.h>

#include "adapters/cgi/cgi_headers.hpp"

namespace sessionkit::fastcgi {
namespace {

void put(FCGX_Request& request, const std::string& text) {
  FCGX_PutStr(text.data(), static_cast<int>(text.size()), request.out);
}

}  // namespace

std::string_view param(const FCGX_Request& request, const char* name) noexcept {
  if (request.envp == nullptr) return {};
  const char* value = FCGX_GetParam(name, request.envp);
  return value != nullptr ? std::string_view(value) : std::string_view();
}

std::string_view cookie_header(const FCGX_Request& request) noexcept { return param(request, "HTTP_COOKIE"); }

bool is_https(const FCGX_Request& request) noexcept {
  return cgi::detail::https_from(param(request, "HTTPS"), param(request, "REQUEST_SCHEME"));
}

RequestInfo request_info(const FCGX_Request& request) noexcept {
  RequestInfo info;
  info.secure_transport = is_https(request);
  return info;
}

Session open(SessionManager& manager, const FCGX_Request& request) {
  return manager.open(cookie_header(request), request_info(request));
}

void write_headers(FCGX_Request& request, int status, std::string_view content_type,
                   const std::optional<std::string>& set_cookie, const Headers& extra) {
  put(request, cgi::detail::header_block(status, content_type, set_cookie, extra));
}

void write_headers(FCGX_Request& request, const SessionManager& manager, const Session& session, int status,
                   std::string_view content_type, const Headers& extra) {
  write_headers(request, status, content_type, manager.set_cookie(session), extra);
}

int error_status(const std::exception& e) noexcept { return cgi::detail::error_status(e); }

int write_error(FCGX_Request& request, const std::exception& e) noexcept {
  const int status = error_status(e);
  // The reason goes to the web server's error log; the client learns only the status.
  if (request.err != nullptr) FCGX_FPrintF(request.err, "sessionkit: %s\n", e.what());
  try {
    put(request, cgi::detail::error_response(status));
  } catch (...) {
    // Out of memory building a few bytes: nothing better to send.
  }
  return status;
}

}  // namespace sessionkit::fastcgi

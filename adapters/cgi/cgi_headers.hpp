// The CGI response header block, shared by the CGI and FastCGI adapters (a
// FastCGI responder answers exactly as a CGI program does, on another
// stream). Private and header-only: not installed, no symbols of its own, so
// both adapter libraries can be linked into one program.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "sessionkit/error.hpp"

namespace sessionkit::cgi::detail {

// The reason phrase of the statuses web programs answer with; "Unknown" for
// others (the web server only reads the code).
inline const char* reason_phrase(int status) noexcept {
  switch (status) {
    case 200: return "OK";
    case 201: return "Created";
    case 204: return "No Content";
    case 301: return "Moved Permanently";
    case 302: return "Found";
    case 303: return "See Other";
    case 304: return "Not Modified";
    case 307: return "Temporary Redirect";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 413: return "Content Too Large";
    case 429: return "Too Many Requests";
    case 500: return "Internal Server Error";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    default: return "Unknown";
  }
}

// A CR or LF in a header would let its text start a header (or the body) of
// its own: response splitting.
inline void check_header_text(std::string_view text, std::string_view what) {
  if (text.find_first_of("\r\n") != std::string_view::npos || text.find('\0') != std::string_view::npos) {
    throw Error(errc::invalid_argument, std::string(what) + ": CR, LF or NUL in a response header");
  }
}

// "Status: 200 OK\r\nContent-Type: text/plain\r\n[Set-Cookie: ...\r\n][extra]\r\n".
// Throws Error(invalid_argument) for a status outside 100..999 or header text
// holding CR, LF or NUL.
inline std::string header_block(int status, std::string_view content_type,
                                const std::optional<std::string>& set_cookie,
                                const std::vector<std::pair<std::string, std::string>>& extra) {
  if (status < 100 || status > 999) {
    throw Error(errc::invalid_argument, "status " + std::to_string(status) + " is not an HTTP status");
  }
  check_header_text(content_type, "Content-Type");
  std::string out;
  out.reserve(128 + (set_cookie ? set_cookie->size() : 0));
  out.append("Status: ")
      .append(std::to_string(status))
      .append(" ")
      .append(reason_phrase(status))
      .append("\r\n");
  if (!content_type.empty()) out.append("Content-Type: ").append(content_type).append("\r\n");
  if (set_cookie) {
    check_header_text(*set_cookie, "Set-Cookie");
    out.append("Set-Cookie: ").append(*set_cookie).append("\r\n");
  }
  for (const auto& [name, value] : extra) {
    check_header_text(name, "header name");
    check_header_text(value, name);
    if (name.empty() || name.find(':') != std::string::npos) {
      throw Error(errc::invalid_argument, "header name \"" + name + "\" is empty or holds ':'");
    }
    out.append(name).append(": ").append(value).append("\r\n");
  }
  out.append("\r\n");
  return out;
}

// The status and body of an error answer: 503 for Error(unavailable), 500 otherwise.
inline int error_status(const std::exception& e) noexcept {
  const auto* err = dynamic_cast<const Error*>(&e);
  return err != nullptr && err->code_value() == errc::unavailable ? 503 : 500;
}

// The whole error answer (headers and body); the body names only the status,
// never the reason, which goes to the error log.
inline std::string error_response(int status) {
  std::string body = std::to_string(status) + " " + reason_phrase(status) + "\n";
  std::vector<std::pair<std::string, std::string>> extra;
  if (status == 503) extra.emplace_back("Retry-After", "1");
  return header_block(status, "text/plain", std::nullopt, extra) + body;
}

// ASCII case-insensitive equality (environment values are ASCII).
inline bool equals_ignoring_case(std::string_view a, std::string_view b) noexcept {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    char x = a[i];
    char y = b[i];
    if (x >= 'A' && x <= 'Z') x = static_cast<char>(x - 'A' + 'a');
    if (y >= 'A' && y <= 'Z') y = static_cast<char>(y - 'A' + 'a');
    if (x != y) return false;
  }
  return true;
}

// True for HTTPS values that mean TLS ("on", "1", any case: what Apache,
// nginx and lighttpd set) or REQUEST_SCHEME "https" (any case).
inline bool https_from(std::string_view https, std::string_view request_scheme) noexcept {
  return equals_ignoring_case(https, "on") || https == "1" || equals_ignoring_case(request_scheme, "https");
}

}  // namespace sessionkit::cgi::detail

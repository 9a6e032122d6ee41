// sessionkit for FastCGI programs built on libfcgi (fcgiapp.h, FCGX_Request).
//
// One SessionManager per worker process, built after fork() (LMDB must not
// cross fork), shared by all of that process's threads:
//
//   sessionkit::SessionManager manager(sessionkit::Config::from_file(path));
//   FCGX_Request request;
//   FCGX_InitRequest(&request, listen_fd, 0);
//   while (FCGX_Accept_r(&request) == 0) {
//     try {
//       sessionkit::Session s = sessionkit::fastcgi::open(manager, request);
//       s.data()["n"] = s.data().value("n", 0) + 1;
//       s.save();
//       sessionkit::fastcgi::write_headers(request, manager, s);  // Status, Content-Type, Set-Cookie
//       FCGX_PutS("...", request.out);
//     } catch (const std::exception& e) {
//       sessionkit::fastcgi::write_error(request, e);  // 503 + Retry-After or 500; reason to request.err
//     }
//     FCGX_Finish_r(&request);
//   }
//
// Request parameters are read with FCGX_GetParam: HTTP_COOKIE for the Cookie
// header; HTTPS ("on" or "1", any case) or REQUEST_SCHEME ("https") tell
// whether the client came over TLS, which decides Secure when the config says
// "secure": "auto". A web server that terminates TLS in front of an HTTP hop
// must pass one of them (mod_proxy_fcgi passes both).
//
// Responses follow the CGI convention FastCGI responders use: a header block
// ("Status: 200 OK\r\nContent-Type: ...\r\nSet-Cookie: ...\r\n\r\n") then the
// body, on request.out. Error messages go to request.err (the web server's
// error log), never into the body.
//
// Threads: each thread owns its FCGX_Request; the Session is used, unlocked
// and destroyed by the thread that opened it. Errors: see each function.
#pragma once

#include <exception>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "sessionkit/sessionkit.hpp"

struct FCGX_Request;

namespace sessionkit::fastcgi {

// Extra response headers: {name, value}, neither holding CR or LF.
using Headers = std::vector<std::pair<std::string, std::string>>;

// The request parameter `name`, or "" when absent. The view lives until
// FCGX_Finish_r / the next FCGX_Accept_r on `request`.
std::string_view param(const FCGX_Request& request, const char* name) noexcept;

// The raw Cookie header (HTTP_COOKIE), "" when absent.
std::string_view cookie_header(const FCGX_Request& request) noexcept;

// True when HTTPS is "on" or "1" (any case) or REQUEST_SCHEME is "https".
bool is_https(const FCGX_Request& request) noexcept;

// What SessionManager::open needs beyond the cookie.
RequestInfo request_info(const FCGX_Request& request) noexcept;

// manager.open(cookie_header(request), request_info(request)): the session,
// locked. Throws what SessionManager::open throws: Error(unavailable) at the
// lock deadline, the store's error otherwise (map them with write_error()).
Session open(SessionManager& manager, const FCGX_Request& request);

// Writes the header block: "Status: <status> <reason>", "Content-Type", the
// Set-Cookie line when `set_cookie` holds a value, `extra`, then the blank
// line. Throws Error(invalid_argument) when content_type or a header holds CR
// or LF (nothing is written then). A client that went away shows as an error
// on request.out (FCGX_GetError), not as an exception.
void write_headers(FCGX_Request& request, int status, std::string_view content_type,
                   const std::optional<std::string>& set_cookie = std::nullopt, const Headers& extra = {});

// The same with the Set-Cookie that `manager` says `session` needs (new,
// regenerated or invalidated sessions); works after session.unlock() too.
void write_headers(FCGX_Request& request, const SessionManager& manager, const Session& session,
                   int status = 200, std::string_view content_type = "text/plain", const Headers& extra = {});

// The HTTP status for `e`: 503 for Error(unavailable) (a lock deadline or a
// store server down: retry later), 500 for anything else.
int error_status(const std::exception& e) noexcept;

// Answers `e`: writes "sessionkit: <what>" to request.err, then the header
// block of error_status(e) (with "Retry-After: 1" for 503) and a short body
// naming only the status. Returns the status.
// REQUIRES: nothing has been written to request.out for this request yet.
int write_error(FCGX_Request& request, const std::exception& e) noexcept;

}  // namespace sessionkit::fastcgi

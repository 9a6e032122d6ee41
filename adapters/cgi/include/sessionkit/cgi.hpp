// sessionkit for CGI programs: one process per request, started by the web
// server with the request in its environment and the response on stdout.
//
//   int main() {
//     try {
//       sessionkit::SessionManager manager(sessionkit::cgi::load_config(std::getenv("SESSIONKIT_CONFIG")));
//       sessionkit::Session s = sessionkit::cgi::open(manager);
//       s.data()["n"] = s.data().value("n", 0) + 1;
//       s.save();
//       sessionkit::cgi::write_headers(manager, s);   // Status, Content-Type, Set-Cookie
//       std::fputs("...", stdout);
//       return 0;
//     } catch (const std::exception& e) {
//       sessionkit::cgi::write_error(e);  // 503 + Retry-After or 500; the reason to stderr
//       return 1;
//     }
//   }
//
// The request: HTTP_COOKIE is the Cookie header; HTTPS ("on" or "1", any case)
// or REQUEST_SCHEME ("https") say whether the client came over TLS, which
// decides Secure when the config says "secure": "auto".
//
// Every request pays the start-up: the config is parsed, the lock region
// attached (shm: shm_open + mmap; fcntl: open) and the store opened (LMDB:
// mdb_env_open). docs/adapters.md gives the measured cost. The lock region
// or file is created by whichever process comes first, with the rights of the
// user the web server runs CGI programs as.
//
// Refused configurations (check_config, Error(bad_config)): the memory store
// (each request is a new process: every session would be lost at exit) and
// the thread lock manager (it excludes threads of one process, and two
// requests are two processes). "none" locks stay allowed, as the explicit
// opt-out they are.
//
// Garbage collection: gc.every_n_requests counts requests per process, and a
// CGI process serves one; open() therefore sweeps with probability
// 1/every_n_requests instead (mod_python's way), within gc.budget_ms.
// A program calling SessionManager::sweep() from cron is the alternative.
//
// Threads: a CGI program is usually single-threaded; the functions only read
// the environment and write to stdout/stderr.
#pragma once

#include <exception>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "sessionkit/sessionkit.hpp"

namespace sessionkit::cgi {

// Extra response headers: {name, value}, neither holding CR or LF.
using Headers = std::vector<std::pair<std::string, std::string>>;

// The environment variable `name`, or "" when unset.
std::string_view env(const char* name) noexcept;

// The raw Cookie header ($HTTP_COOKIE), "" when absent.
std::string_view cookie_header() noexcept;

// True when $HTTPS is "on" or "1" (any case) or $REQUEST_SCHEME is "https".
bool is_https() noexcept;

RequestInfo request_info() noexcept;

// Throws Error(bad_config) naming the key when `config` cannot work for CGI
// (see the refused configurations above).
void check_config(const Config& config);

// Config::from_file(path) followed by check_config. Throws Error(bad_config)
// naming the file (and the key); a null or empty path is Error(bad_config)
// too ("no configuration file given").
Config load_config(const char* path);

// Sweeps first with probability 1/gc.every_n_requests (errors ignored: a
// failed sweep must not fail the request), then returns
// manager.open(cookie_header(), request_info()): the session, locked.
// Throws what SessionManager::open throws: Error(unavailable) at the lock
// deadline, the store's error otherwise (map them with write_error()).
Session open(SessionManager& manager);

// Writes the header block to stdout: "Status: <status> <reason>",
// "Content-Type", the Set-Cookie line when `set_cookie` holds a value, `extra`,
// then the blank line. Throws Error(invalid_argument) when content_type or a
// header holds CR or LF (nothing is written then).
void write_headers(int status, std::string_view content_type,
                   const std::optional<std::string>& set_cookie = std::nullopt, const Headers& extra = {});

// The same with the Set-Cookie that `manager` says `session` needs (new,
// regenerated or invalidated sessions); works after session.unlock() too.
void write_headers(const SessionManager& manager, const Session& session, int status = 200,
                   std::string_view content_type = "text/plain", const Headers& extra = {});

// The HTTP status for `e`: 503 for Error(unavailable), 500 for anything else.
int error_status(const std::exception& e) noexcept;

// Answers `e`: writes "<program>: sessionkit: <what>" to stderr (the web
// server's error log), then the header block of error_status(e) (with
// "Retry-After: 1" for 503) and a short body naming only the status, to
// stdout, flushed. Returns the status.
// REQUIRES: nothing has been written to stdout for this request yet.
int write_error(const std::exception& e) noexcept;

}  // namespace sessionkit::cgi

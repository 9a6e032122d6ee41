// sessionkit for Apache httpd module handlers.
//
// Load mod_sessionkit before any module that uses this header:
//
//   LoadModule sessionkit_module modules/mod_sessionkit.so
//   SessionKitConfig /etc/myapp/sessions.json
//
// then, in a handler running in the same server:
//
//   try {
//     sessionkit::Session& s = sessionkit::httpd::session(r);
//     s.data()["n"] = s.data().value("n", 0) + 1;
//     s.save();
//   } catch (const std::exception& e) {
//     return sessionkit::httpd::error_status(r, e);
//   }
//
// Lifetime: the session is opened, locked, on the first session(r) of a
// request; internal redirects and subrequests get the same Session object (no
// second lock, no self-deadlock). It is saved (per session.autosave) and
// unlocked when the response's end passes mod_sessionkit's output filter, or
// when the request pool is cleaned up, whichever comes first. The Set-Cookie
// header (new, regenerated or invalidated session) is put into
// r->err_headers_out just before the response headers go out, so it survives
// error responses; regenerate_id()/invalidate() after the first byte of the
// body was sent cannot change the cookie any more. Secure follows the
// connection (TLS or not) when the config says "secure": "auto".
//
// Threads: use the Session from the thread running the handler.
#pragma once

#include <exception>

#include "sessionkit/sessionkit.hpp"

struct request_rec;

namespace sessionkit::httpd {

// This request's session, opened on first call. Throws sessionkit::Error:
// unavailable when the session's lock stays busy past locks.wait_ms (answer
// 503), failed_precondition when no SessionKitConfig applies to this server,
// or the store's error (answer 500). Map any of them with error_status().
Session& session(request_rec* r);

// True when this request (or its main/original request) has opened a session.
bool has_session(request_rec* r) noexcept;

// The SessionManager configured for r's virtual host, or nullptr.
SessionManager* manager(request_rec* r) noexcept;

// Logs `e` with ap_log_rerror and returns the HTTP status to answer with:
// 503 (and a Retry-After header) for errc::unavailable, 500 otherwise. The
// request's session, if open, is released without saving (Session::discard).
int error_status(request_rec* r, const std::exception& e) noexcept;

}  // namespace sessionkit::httpd

// sessionkit errors.
//
// Every failure sessionkit reports is a sessionkit::Error: a std::system_error
// whose code is in the sessionkit::errc category. The code says what the caller
// should do about it:
//
//   invalid_argument     the call was wrong (an id of the wrong shape, a bad name);
//                        fix the call.
//   not_found            the named thing does not exist.
//   resource_exhausted   out of space: disk full, LMDB map at its cap, record over
//                        the configured size limit. Free space or raise the limit.
//   data_loss            a stored record is corrupt or oversized. The session layer
//                        treats such a record as absent (new session + counter).
//   unavailable          a lock deadline passed or a server is down; retry later
//                        (adapters answer 503 with Retry-After).
//   aborted              a conflict the caller should retry from higher up
//                        (a lock lease was lost before the save).
//   failed_precondition  the object is not in a state that allows the call
//                        (saving an unlocked session, lock-ordering violations).
//   io                   an operating-system or library call failed.
//   bad_config           the configuration is wrong; the message names the key.
//
// Bad input from a client (a malformed cookie, a forged signature, an unknown
// id) is never an Error: SessionManager::open answers it with a new session.
#pragma once

#include <string>
#include <system_error>

namespace sessionkit {

enum class errc {
  invalid_argument = 1,
  not_found,
  resource_exhausted,
  data_loss,
  unavailable,
  aborted,
  failed_precondition,
  io,
  bad_config,
};

// The category of every sessionkit::errc value; name() is "sessionkit".
const std::error_category& error_category() noexcept;

std::error_code make_error_code(errc e) noexcept;

// The one exception type sessionkit throws. what() is the message passed in,
// followed by the category's description of the code.
class Error : public std::system_error {
 public:
  Error(errc code, const std::string& message);

  errc code_value() const noexcept { return static_cast<errc>(code().value()); }
};

// The lowercase name of a code ("unavailable", "bad_config", ...).
const char* to_string(errc e) noexcept;

}  // namespace sessionkit

template <>
struct std::is_error_code_enum<sessionkit::errc> : std::true_type {};

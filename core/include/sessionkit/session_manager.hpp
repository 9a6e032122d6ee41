// SessionManager: opens sessions from Cookie headers, writes Set-Cookie values,
// sweeps expired records, and hands out application resource locks.
//
// One SessionManager per process (or per virtual host) is the usual shape. It
// is thread-safe: many threads may open sessions at once. It owns the store and
// the lock manager its Config names.
//
// Fork: a manager built before fork() (prefork servers) must have after_fork()
// called in each child before use; stores that cannot cross fork reopen there.
#pragma once

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "sessionkit/clock.hpp"
#include "sessionkit/config.hpp"
#include "sessionkit/resource_lock.hpp"
#include "sessionkit/session.hpp"
#include "sessionkit/stats.hpp"
#include "sessionkit/store.hpp"

namespace sessionkit {

class LockManager;

// What the adapter knows about the request beyond its Cookie header.
struct RequestInfo {
  bool secure_transport = false;  // the request came over HTTPS
};

class SessionManager {
 public:
  // Builds the store and lock manager the config names.
  // Throws Error(bad_config) for a bad config, or the back end's error.
  explicit SessionManager(const Config& config);
  // The same with a clock of the caller's (tests move time with it).
  SessionManager(const Config& config, std::shared_ptr<Clock> clock);
  ~SessionManager();

  SessionManager(SessionManager&&) noexcept;
  SessionManager& operator=(SessionManager&&) noexcept;

  // Opens the session named by the raw Cookie header value, locked: the
  // existing one if the header carries a valid, correctly signed, live id the
  // store holds, else a new one. Never throws for bad client input.
  // Throws Error(unavailable) when the lock deadline (locks.wait_ms) passes,
  // or the store's error when it fails.
  Session open(std::string_view cookie_header);
  Session open(std::string_view cookie_header, const RequestInfo& request);

  // The Set-Cookie header value to send for `session`, when one must be sent:
  // new, regenerated or invalidated sessions. nullopt otherwise.
  std::optional<std::string> set_cookie(const Session& session) const;

  // Deletes expired records within `budget`, under the store-wide slot 0.
  // Returns at once with complete=false when another process is sweeping.
  SweepResult sweep(std::chrono::milliseconds budget);

  Stats stats() const;

  // Locks the application resource `name` across processes, waiting up to
  // `wait`. Throws Error(unavailable) at the deadline, Error(failed_precondition)
  // for a lock-order violation (see resource_lock.hpp).
  ResourceLock lock_resource(std::string_view name, std::chrono::milliseconds wait);
  // The same without waiting: nullopt when another holder has it.
  std::optional<ResourceLock> try_lock_resource(std::string_view name);

  // Call in a child process after fork(), before any other use.
  void after_fork();

  const Config& config() const noexcept;
  Store& store() noexcept;
  LockManager& locks() noexcept;

  struct Impl;  // opaque; defined in the library

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace sessionkit

// Session: one user's state for the length of one request, locked.
//
// A Session comes from SessionManager::open() holding its id's lock slot; it
// keeps the lock until unlock() or destruction, so read-modify-save-modify-save
// within one request is safe against every other process and thread.
//
//   Session s = manager.open(cookie_header);
//   auto& d = s.data();
//   d["n"] = d.value("n", 0) + 1;
//   s.save();
//
// Lifetime and threads: move-only. REQUIRES: the SessionManager outlives the
// Session; the Session is used, unlocked and destroyed by the thread that
// opened it (lock slots belong to threads).
//
// Saving: save() writes when the data or the timeout changed, or the session is
// new; otherwise it rewrites the record only when the access-time refresh is
// due (timeouts.touch_fraction). With session.autosave (the default) unlock()
// and the destructor do the same; a destructor never throws and counts a failed
// save in Stats::save_errors.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>

#include <nlohmann/json_fwd.hpp>

namespace sessionkit {

class SessionManager;

class Session {
 public:
  using TimePoint = std::chrono::system_clock::time_point;

  Session(Session&& other) noexcept;
  Session& operator=(Session&& other) noexcept;
  Session(const Session&) = delete;
  Session& operator=(const Session&) = delete;
  ~Session();

  // 43 base64url characters (256 random bits).
  const std::string& id() const noexcept;
  // True when this request created the session (no valid live cookie came in).
  bool is_new() const noexcept;
  TimePoint created() const noexcept;
  // The previous access (for a new session: its creation).
  TimePoint last_accessed() const noexcept;
  // The idle timeout of this session.
  std::chrono::seconds timeout() const noexcept;
  // Changes this session's idle timeout (persisted with the record).
  // Throws Error(invalid_argument) for a value <= 0.
  void set_timeout(std::chrono::seconds idle);

  // The session data: a JSON object. Keep it within limits.max_depth and
  // limits.max_record_bytes, or save() throws.
  nlohmann::json& data();
  const nlohmann::json& data() const;

  // Writes the session if needed (see above); keeps the lock.
  // Throws Error: failed_precondition after unlock(), invalid_argument for data
  // that is not an object or nests too deep, resource_exhausted over
  // max_record_bytes or when the store is full, aborted when the session's
  // lock was lost meanwhile (a Redis lease ran out: nothing is written), or
  // the store's error.
  // A no-op after invalidate().
  void save();

  // Deletes the session from the store at once; set_cookie() then clears the
  // cookie. data() becomes empty and later saves do nothing.
  void invalidate();

  // Gives the session a new id (against fixation), keeping its data: the new
  // record is written and the old one deleted at once. set_cookie() then sends
  // the new id. Throws Error(unavailable) if the new id's slot cannot be locked,
  // and the store's error if a write or the removal fails: the session then
  // stays on its old id, as if regenerate_id() had not been called, and the new
  // record is removed again (best effort).
  void regenerate_id();

  // Saves per autosave, then releases the lock. Later data() reads work; save,
  // invalidate and regenerate_id throw Error(failed_precondition).
  void unlock();

  // Releases the lock without saving: changes since the last save are
  // dropped. For error paths (the request failed; keep the stored session as
  // it was). Later calls behave as after unlock().
  void discard() noexcept;

  bool locked() const noexcept;
  bool invalidated() const noexcept;
  bool regenerated() const noexcept;
  // The request came over HTTPS (from OpenOptions; decides Secure when "auto").
  bool secure_transport() const noexcept;
  // The lock was taken over from a process that died holding it.
  bool recovered_from_dead_owner() const noexcept;
  // Number of times the record has been written (0 for a never-saved session).
  std::uint64_t generation() const noexcept;

  struct State;  // opaque; defined in the library

 private:
  friend class SessionManager;
  explicit Session(std::unique_ptr<State> state) noexcept;
  void release() noexcept;

  std::unique_ptr<State> state_;
};

}  // namespace sessionkit

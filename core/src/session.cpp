#include "sessionkit/session.hpp"

#include <algorithm>

#include "session_id.hpp"
#include "session_manager_impl.hpp"
#include "sessionkit/error.hpp"

namespace sessionkit {
namespace {

using Ms = std::chrono::milliseconds;

Session::TimePoint from_ms(std::int64_t ms) { return Session::TimePoint(Ms(ms)); }

void require_locked(const Session::State& s, const char* call) {
  if (!s.locked) throw Error(errc::failed_precondition, std::string("Session::") + call + " after unlock()");
}

}  // namespace

void Session::State::save_if_needed() {
  if (invalidated) return;
  const Config& cfg = mgr->config;
  std::string record = detail::encode_record(data, cfg.limits.max_depth, stored_record.size() + 64);
  const std::int64_t now = mgr->now_ms();
  const bool changed =
      !stored || timeout_changed || detail::record_payload(record) != detail::record_payload(stored_record);
  if (!changed) {
    const auto due = static_cast<std::int64_t>(cfg.timeouts.touch_fraction * 1000.0 * header.idle_timeout_s);
    if (now - header.last_access_ms < due) {
      bump(mgr->counters.unchanged);
      return;
    }
  }
  detail::RecordHeader next = header;
  next.last_access_ms = now;
  next.generation = header.generation + 1;
  detail::set_record_header(record, next);
  if (record.size() > cfg.limits.max_record_bytes) {
    throw Error(errc::resource_exhausted, "session record of " + std::to_string(record.size()) +
                                              " bytes exceeds limits.max_record_bytes (" +
                                              std::to_string(cfg.limits.max_record_bytes) + ")");
  }
  std::int64_t expires = now + static_cast<std::int64_t>(next.idle_timeout_s) * 1000;
  if (next.absolute_deadline_ms != 0) expires = std::min(expires, next.absolute_deadline_ms);
  mgr->locks->check_held(slot);  // a lost lease (Redis) must not write
  mgr->store->save(id, record, from_ms(expires));
  header = next;
  stored_record = std::move(record);
  stored = true;
  timeout_changed = false;
  bump(changed ? mgr->counters.saves : mgr->counters.touches);
}

Session::Session(std::unique_ptr<State> state) noexcept : state_(std::move(state)) {}
Session::Session(Session&& other) noexcept = default;

Session& Session::operator=(Session&& other) noexcept {
  if (this != &other) {
    release();
    state_ = std::move(other.state_);
  }
  return *this;
}

Session::~Session() { release(); }

void Session::release() noexcept {
  if (!state_ || !state_->locked) return;
  if (state_->mgr->config.session.autosave) {
    try {
      state_->save_if_needed();
    } catch (...) {
      bump(state_->mgr->counters.save_errors);
    }
  }
  state_->locked = false;
  try {
    state_->mgr->locks->unlock(state_->slot);
  } catch (...) {
    // Only possible if the session crossed threads, which the contract forbids.
  }
}

const std::string& Session::id() const noexcept { return state_->id; }
bool Session::is_new() const noexcept { return state_->is_new; }
Session::TimePoint Session::created() const noexcept { return from_ms(state_->header.created_ms); }
Session::TimePoint Session::last_accessed() const noexcept { return from_ms(state_->previous_access_ms); }
std::chrono::seconds Session::timeout() const noexcept {
  return std::chrono::seconds(state_->header.idle_timeout_s);
}

void Session::set_timeout(std::chrono::seconds idle) {
  if (idle.count() <= 0 || idle.count() > 0xffffffffLL) {
    throw Error(errc::invalid_argument, "Session::set_timeout: the idle timeout must be in [1 s, 2^32 s)");
  }
  if (static_cast<std::uint32_t>(idle.count()) == state_->header.idle_timeout_s) return;
  state_->header.idle_timeout_s = static_cast<std::uint32_t>(idle.count());
  state_->timeout_changed = true;
}

nlohmann::json& Session::data() { return state_->data; }
const nlohmann::json& Session::data() const { return state_->data; }

void Session::save() {
  require_locked(*state_, "save");
  state_->save_if_needed();
}

void Session::invalidate() {
  require_locked(*state_, "invalidate");
  State& s = *state_;
  if (s.invalidated) return;
  if (s.stored) {
    s.mgr->locks->check_held(s.slot);
    s.mgr->store->remove(s.id);
  }
  s.invalidated = true;
  s.stored = false;
  s.data = nlohmann::json::object();
  bump(s.mgr->counters.invalidated);
}

void Session::regenerate_id() {
  require_locked(*state_, "regenerate_id");
  State& s = *state_;
  if (s.invalidated) throw Error(errc::failed_precondition, "Session::regenerate_id after invalidate()");
  std::string new_id = detail::generate_session_id();
  const std::uint32_t new_slot = s.mgr->locks->slot_for(new_id);
  LockStatus status = s.mgr->lock_slot(new_slot);
  (void)status;  // a fresh id: no previous holder can have left anything behind
  const std::string old_id = s.id;
  const std::uint32_t old_slot = s.slot;
  const bool had_record = s.stored;
  // What describes the old record: a failure below puts the session back on
  // it, and its next save must compare against it, not the new record.
  const detail::RecordHeader old_header = s.header;
  std::string old_record = s.stored_record;
  s.id = new_id;
  s.slot = new_slot;
  try {
    // Write the new record first: a crash in between leaves the old session
    // alive a little longer rather than losing the data.
    s.stored = false;
    s.save_if_needed();
    if (had_record) {
      s.mgr->locks->check_held(old_slot);
      s.mgr->store->remove(old_id);
    }
  } catch (...) {
    if (s.stored) {  // the new record was written: nobody will ever send its id
      try {
        s.mgr->store->remove(new_id);
      } catch (const Error&) {
      }
    }
    s.mgr->locks->unlock(new_slot);
    s.id = old_id;
    s.slot = old_slot;
    s.stored = had_record;
    s.header = old_header;
    s.stored_record = std::move(old_record);
    throw;
  }
  s.mgr->locks->unlock(old_slot);
  s.regenerated = true;
  bump(s.mgr->counters.regenerated);
}

void Session::unlock() {
  if (!state_->locked) return;
  State& s = *state_;
  try {
    if (s.mgr->config.session.autosave) s.save_if_needed();
  } catch (...) {
    s.locked = false;
    s.mgr->locks->unlock(s.slot);
    throw;
  }
  s.locked = false;
  s.mgr->locks->unlock(s.slot);
}

void Session::discard() noexcept {
  if (!state_ || !state_->locked) return;
  state_->locked = false;
  try {
    state_->mgr->locks->unlock(state_->slot);
  } catch (...) {
    // Only possible if the session crossed threads, which the contract forbids.
  }
}

bool Session::locked() const noexcept { return state_->locked; }
bool Session::invalidated() const noexcept { return state_->invalidated; }
bool Session::regenerated() const noexcept { return state_->regenerated; }
bool Session::secure_transport() const noexcept { return state_->secure; }
bool Session::recovered_from_dead_owner() const noexcept { return state_->owner_died; }
std::uint64_t Session::generation() const noexcept { return state_->header.generation; }

}  // namespace sessionkit

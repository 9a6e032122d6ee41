#include "sessionkit/session_manager.hpp"

#include <algorithm>

#include "cookie.hpp"
#include "session_id.hpp"
#include "session_manager_impl.hpp"
#include "sessionkit/error.hpp"
#include "sessionkit/registry.hpp"

namespace sessionkit {
namespace {

// How many values of our cookie one request may make us try: duplicates are
// legitimate (a stale cookie on a narrower path), but each try costs a lock
// and a load, so a hostile header cannot make a request expensive.
constexpr std::size_t kMaxCookieCandidates = 4;

std::chrono::milliseconds read_wait(const nlohmann::json& locks_section) {
  auto it = locks_section.find("wait_ms");
  if (it == locks_section.end() || !it->is_number_integer() || it->get<std::int64_t>() < 0) {
    return std::chrono::milliseconds(5000);  // validated before this runs; the default
  }
  return std::chrono::milliseconds(it->get<std::int64_t>());
}

}  // namespace

SessionManager::Impl::Impl(const Config& c, std::shared_ptr<Clock> clk)
    : config(c),
      clock(clk ? std::move(clk) : Clock::system()),
      signer(c.cookie.signing_keys),
      wait(read_wait(*c.locks.section)) {
  config.validate();
  Registry& registry = Registry::global();
  locks = registry.lock_manager(config.locks.type).create(*config.locks.section, config.base_dir);
  store = registry.store(config.store.type).create(*config.store.section, config.base_dir);
}

std::int64_t SessionManager::Impl::now_ms() const {
  return std::chrono::duration_cast<std::chrono::milliseconds>(clock->now().time_since_epoch()).count();
}

LockStatus SessionManager::Impl::lock_slot(std::uint32_t slot) {
  LockStatus status = locks->lock(slot, wait);
  if (status == LockStatus::timed_out) {
    bump(counters.lock_timeouts);
    throw Error(errc::unavailable, "session lock slot " + std::to_string(slot) + " still busy after " +
                                       std::to_string(wait.count()) + " ms");
  }
  if (status == LockStatus::acquired_after_owner_death) bump(counters.owner_deaths);
  return status;
}

SessionManager::SessionManager(const Config& config) : SessionManager(config, nullptr) {}
SessionManager::SessionManager(const Config& config, std::shared_ptr<Clock> clock)
    : impl_(std::make_unique<Impl>(config, std::move(clock))) {}
SessionManager::~SessionManager() = default;
SessionManager::SessionManager(SessionManager&&) noexcept = default;
SessionManager& SessionManager::operator=(SessionManager&&) noexcept = default;

Session SessionManager::open(std::string_view cookie_header) { return open(cookie_header, RequestInfo{}); }

Session SessionManager::open(std::string_view cookie_header, const RequestInfo& request) {
  Impl& m = *impl_;
  if (m.config.gc.every_n_requests != 0 &&
      (m.requests.fetch_add(1, std::memory_order_relaxed) + 1) % m.config.gc.every_n_requests == 0) {
    // Before this request takes its own lock, and never failing the request.
    try {
      sweep(m.config.gc.budget);
    } catch (const Error&) {
    }
  }

  auto state = std::make_unique<Session::State>();
  state->mgr = &m;
  state->secure = request.secure_transport;
  const std::int64_t now = m.now_ms();

  std::vector<std::string_view> values =
      detail::find_cookie_values(cookie_header, m.config.cookie.name, kMaxCookieCandidates);
  if (values.empty()) bump(m.counters.no_cookie);
  for (std::string_view value : values) {
    bool bad_signature = false;
    std::optional<std::string_view> id = m.signer.decode(value, &bad_signature);
    if (!id) {
      bump(bad_signature ? m.counters.bad_signatures : m.counters.malformed_cookies);
      continue;
    }
    const std::uint32_t slot = m.locks->slot_for(*id);
    LockStatus status = m.lock_slot(slot);
    std::optional<std::string> bytes;
    try {
      bytes = m.store->load(*id);
    } catch (const Error& e) {
      if (e.code_value() != errc::data_loss) {
        m.locks->unlock(slot);
        throw;
      }
      bump(m.counters.corrupt_records);
      try {
        m.store->remove(*id);
      } catch (const Error&) {
      }
      m.locks->unlock(slot);
      continue;
    } catch (...) {
      m.locks->unlock(slot);
      throw;
    }
    if (!bytes) {
      bump(m.counters.unknown_ids);
      m.locks->unlock(slot);
      continue;
    }
    try {
      detail::DecodedRecord record = detail::decode_record(*bytes);
      const detail::RecordHeader& h = record.header;
      std::int64_t deadline = h.absolute_deadline_ms;
      if (m.config.timeouts.absolute.count() > 0) {
        const std::int64_t configured = h.created_ms + m.config.timeouts.absolute.count() * 1000;
        deadline = deadline == 0 ? configured : std::min(deadline, configured);
      }
      const bool idle_expired = now - h.last_access_ms >= static_cast<std::int64_t>(h.idle_timeout_s) * 1000;
      if (idle_expired || (deadline != 0 && now >= deadline)) {
        bump(m.counters.expired);
        m.store->remove(*id);
        m.locks->unlock(slot);
        continue;
      }
      state->data = detail::decode_payload(record.payload, m.config.limits.max_depth);
      state->header = h;
      state->header.absolute_deadline_ms = deadline;
    } catch (const Error& e) {
      if (e.code_value() != errc::data_loss) {
        m.locks->unlock(slot);
        throw;
      }
      bump(m.counters.corrupt_records);
      try {
        m.store->remove(*id);
      } catch (const Error&) {
      }
      m.locks->unlock(slot);
      continue;
    }
    state->stored_record = std::move(*bytes);
    state->id.assign(*id);
    state->slot = slot;
    state->locked = true;
    state->stored = true;
    state->owner_died = status == LockStatus::acquired_after_owner_death;
    state->previous_access_ms = state->header.last_access_ms;
    bump(m.counters.opened);
    bump(m.counters.resumed);
    return Session(std::move(state));
  }

  state->data = nlohmann::json::object();
  state->id = detail::generate_session_id();
  state->slot = m.locks->slot_for(state->id);
  LockStatus status = m.lock_slot(state->slot);
  state->locked = true;
  state->is_new = true;
  state->owner_died = status == LockStatus::acquired_after_owner_death;
  state->header.created_ms = now;
  state->header.last_access_ms = now;
  state->header.idle_timeout_s = static_cast<std::uint32_t>(m.config.timeouts.idle.count());
  state->header.absolute_deadline_ms =
      m.config.timeouts.absolute.count() > 0 ? now + m.config.timeouts.absolute.count() * 1000 : 0;
  state->previous_access_ms = now;
  bump(m.counters.opened);
  bump(m.counters.created);
  return Session(std::move(state));
}

std::optional<std::string> SessionManager::set_cookie(const Session& session) const {
  const Session::State& s = *session.state_;
  const CookieOptions& c = impl_->config.cookie;
  const bool secure = c.secure == SecureMode::always || (c.secure == SecureMode::automatic && s.secure);
  if (s.invalidated) return detail::format_set_cookie(c, {}, secure, /*delete_cookie=*/true);
  if (!s.is_new && !s.regenerated) return std::nullopt;
  return detail::format_set_cookie(c, impl_->signer.encode(s.id), secure, /*delete_cookie=*/false);
}

SweepResult SessionManager::sweep(std::chrono::milliseconds budget) {
  Impl& m = *impl_;
  if (m.locks->try_lock(LockManager::kStoreSlot) == LockStatus::timed_out) return SweepResult{};
  SweepResult result;
  try {
    result = m.store->sweep(m.clock->now(), budget);
  } catch (...) {
    m.locks->unlock(LockManager::kStoreSlot);
    throw;
  }
  m.locks->unlock(LockManager::kStoreSlot);
  bump(m.counters.sweeps);
  bump(m.counters.swept, result.removed);
  return result;
}

Stats SessionManager::stats() const {
  const Counters& c = impl_->counters;
  auto get = [](const std::atomic<std::uint64_t>& a) { return a.load(std::memory_order_relaxed); };
  Stats s;
  s.opened = get(c.opened);
  s.created = get(c.created);
  s.resumed = get(c.resumed);
  s.no_cookie = get(c.no_cookie);
  s.malformed_cookies = get(c.malformed_cookies);
  s.bad_signatures = get(c.bad_signatures);
  s.unknown_ids = get(c.unknown_ids);
  s.expired = get(c.expired);
  s.corrupt_records = get(c.corrupt_records);
  s.owner_deaths = get(c.owner_deaths);
  s.lock_timeouts = get(c.lock_timeouts);
  s.saves = get(c.saves);
  s.touches = get(c.touches);
  s.unchanged = get(c.unchanged);
  s.save_errors = get(c.save_errors);
  s.invalidated = get(c.invalidated);
  s.regenerated = get(c.regenerated);
  s.sweeps = get(c.sweeps);
  s.swept = get(c.swept);
  s.locks = impl_->locks->stats();
  return s;
}

ResourceLock SessionManager::lock_resource(std::string_view name, std::chrono::milliseconds wait) {
  if (name.empty()) throw Error(errc::invalid_argument, "lock_resource: empty resource name");
  LockManager& locks = *impl_->locks;
  const std::uint32_t slot = locks.resource_slot_for(name);
  LockStatus status = locks.lock(slot, wait);
  if (status == LockStatus::timed_out) {
    throw Error(errc::unavailable, "resource lock \"" + std::string(name) + "\" still busy after " +
                                       std::to_string(wait.count()) + " ms");
  }
  return ResourceLock(&locks, slot, status == LockStatus::acquired_after_owner_death);
}

std::optional<ResourceLock> SessionManager::try_lock_resource(std::string_view name) {
  if (name.empty()) throw Error(errc::invalid_argument, "try_lock_resource: empty resource name");
  LockManager& locks = *impl_->locks;
  const std::uint32_t slot = locks.resource_slot_for(name);
  LockStatus status = locks.try_lock(slot);
  if (status == LockStatus::timed_out) return std::nullopt;
  return ResourceLock(&locks, slot, status == LockStatus::acquired_after_owner_death);
}

void SessionManager::after_fork() {
  impl_->locks->after_fork();
  impl_->store->after_fork();
}

const Config& SessionManager::config() const noexcept { return impl_->config; }
Store& SessionManager::store() noexcept { return *impl_->store; }
LockManager& SessionManager::locks() noexcept { return *impl_->locks; }

}  // namespace sessionkit

// Private state shared by SessionManager and Session.
#pragma once

#include <atomic>
#include <chrono>
#include <memory>
#include <string>

#include <nlohmann/json.hpp>

#include "cookie_signer.hpp"
#include "record_codec.hpp"
#include "sessionkit/clock.hpp"
#include "sessionkit/config.hpp"
#include "sessionkit/lock_manager.hpp"
#include "sessionkit/session.hpp"
#include "sessionkit/session_manager.hpp"
#include "sessionkit/stats.hpp"
#include "sessionkit/store.hpp"

namespace sessionkit {

struct Counters {
  std::atomic<std::uint64_t> opened{0}, created{0}, resumed{0}, no_cookie{0}, malformed_cookies{0},
      bad_signatures{0}, unknown_ids{0}, expired{0}, corrupt_records{0}, owner_deaths{0}, lock_timeouts{0},
      saves{0}, touches{0}, unchanged{0}, save_errors{0}, invalidated{0}, regenerated{0}, sweeps{0}, swept{0};
};

inline void bump(std::atomic<std::uint64_t>& c, std::uint64_t n = 1) {
  c.fetch_add(n, std::memory_order_relaxed);
}

struct SessionManager::Impl {
  Impl(const Config& c, std::shared_ptr<Clock> clk);

  // Locks `slot` until the configured deadline; Error(unavailable) at the deadline.
  LockStatus lock_slot(std::uint32_t slot);
  std::int64_t now_ms() const;

  Config config;
  std::shared_ptr<Clock> clock;
  std::unique_ptr<LockManager> locks;
  std::unique_ptr<Store> store;
  detail::CookieSigner signer;
  std::chrono::milliseconds wait;
  std::atomic<std::uint64_t> requests{0};
  Counters counters;
};

struct Session::State {
  SessionManager::Impl* mgr = nullptr;
  std::string id;
  std::uint32_t slot = 0;
  bool is_new = false;
  bool locked = false;
  bool stored = false;  // a record exists under id (written by us or loaded)
  bool invalidated = false;
  bool regenerated = false;
  bool secure = false;
  bool owner_died = false;
  bool timeout_changed = false;
  detail::RecordHeader header;          // as stored (or to be stored)
  std::int64_t previous_access_ms = 0;  // last_accessed()
  nlohmann::json data;                  // an object once open() returns (null until then: no allocation)
  std::string stored_record;            // the record as last loaded or written (header + MessagePack)

  // Writes per the save policy; throws on failure.
  void save_if_needed();
};

}  // namespace sessionkit

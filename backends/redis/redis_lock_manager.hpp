// RedisLockManager ("redis"): lock slots kept in Redis, so they exclude every
// thread of every process on every machine that uses the same Redis, db and
// prefix (docs/redis.md).
//
// Slot n is the key "<prefix>lock:<n>". Taking it is
//   SET <key> <token> NX PX <lease_ms>
// with a fresh random 128-bit token (RAND_bytes, hex) per acquisition; only the
// holder knows its token. Releasing is a compare-and-delete Lua script (DEL
// only if the value is still our token), run with EVALSHA and EVAL as the
// fallback on NOSCRIPT. A slot whose holder died or stalls frees itself when
// its lease ends; acquisitions are therefore always LockStatus::acquired,
// never acquired_after_owner_death (Redis does not say why a key vanished).
//
// Waiting: lock() polls SET NX with a jittered back-off from 1 ms doubling to
// 50 ms until the deadline. No fairness and a hand-over delay of up to ~50 ms
// under contention; no Pub/Sub connection to keep alive per process.
//
// Leases: lease_ms bounds how long a holder may keep a slot without renewing
// it. A holder that stalls past its lease silently loses the slot; check_held()
// (called by the core right before each save, see docs/redis.md) renews the
// lease while the token still matches and throws Error(errc::aborted) once it
// does not, so a late writer does not overwrite the newer holder's data. The
// check and the write are two commands: a lease can still end between them
// (fencing by the record's generation number would close that window; see
// docs/redis.md). Choose lease_ms well above the longest request.
//
// Layout: every process must use the same slot and resource_slot counts, or
// one id maps to different keys in different processes and nothing is
// excluded. The first lock call of a process records "<slots>/<resource_slots>"
// under "<prefix>lock:layout" (SET NX) and throws Error(bad_config) naming
// locks.slots when another layout is already recorded.
//
// Threads: as LockManager. Each slot's tokens are kept per holding thread, so
// a thread whose lease ran out and another thread that took the slot over
// never release each other's locks.
//
// Fork: a child holds none of the parent's locks; after_fork() forgets the
// parent's tokens and connections (without writing to them).
//
// Errors: lock(), try_lock() and check_held() throw Error(unavailable) when
// Redis is down or does not answer within the timeouts; unlock() never throws
// for Redis errors (the lease frees the slot) and counts them.
#pragma once

#include <array>
#include <atomic>
#include <chrono>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "backends/redis/redis_connection.hpp"
#include "sessionkit/lock_manager.hpp"

namespace sessionkit {

struct RedisLockOptions {
  redis::ConnectionOptions connection;  // section "locks"
  std::string prefix = "sessionkit:";   // lock keys are "<prefix>lock:<slot>"
  std::uint32_t slots = 1024;           // slot 0 + session slots; >= 2
  std::uint32_t resource_slots = 64;    // application resource slots; >= 1
  // How long a slot stays taken without renewal (check_held renews it). A
  // holder that crashes blocks its slot this long; one that stalls longer
  // loses it. Longer than locks.wait_ms (default 5 s) so a waiter gives up
  // before it can take over a live but slow holder's slot.
  std::chrono::milliseconds lease{30'000};
};

class RedisLockManager final : public LockManager {
 public:
  // Connects lazily: constructing never touches the network.
  explicit RedisLockManager(RedisLockOptions options);
  ~RedisLockManager() override;

  std::string_view type() const noexcept override { return "redis"; }
  bool shared_across_processes() const noexcept override { return true; }

  // Confirms that this thread's lease on `slot` is still its own and renews it
  // for another lease_ms. Throws Error(aborted) when the lease was lost (the
  // slot expired and may belong to someone else: do not write), Error(
  // failed_precondition) when this thread does not hold `slot`, and
  // Error(unavailable) when Redis cannot be asked.
  void check_held(std::uint32_t slot) override;

  // The Redis key of `slot`.
  std::string key_for(std::uint32_t slot) const;
  const RedisLockOptions& options() const noexcept { return options_; }
  // unlock() calls that found their lease already gone (someone else may have
  // held the slot meanwhile), and those that could not reach Redis.
  std::uint64_t leases_lost() const noexcept { return leases_lost_.load(std::memory_order_relaxed); }
  std::uint64_t unlock_errors() const noexcept { return unlock_errors_.load(std::memory_order_relaxed); }
  std::size_t open_connections() const { return pool_.open_connections(); }

 protected:
  LockStatus try_lock_slot(std::uint32_t slot) override;
  LockStatus lock_slot(std::uint32_t slot, Deadline deadline) override;
  void unlock_slot(std::uint32_t slot) override;
  void reopen_after_fork() override;

 private:
  using Token = std::array<char, 32>;  // 128 random bits, hex
  struct Holder {
    std::thread::id thread;
    Token token;
  };
  // Usually holds at most one entry; two when a lease ran out and another
  // thread of this process took the slot over before the first one unlocked.
  struct alignas(64) Slot {
    std::mutex mu;
    std::vector<Holder> holders;
  };

  static Token new_token();
  void ensure_layout();
  // One SET NX attempt with `token`; true when taken.
  bool try_set(std::uint32_t slot, const Token& token);
  void remember(std::uint32_t slot, const Token& token);
  // This thread's token for `slot`; `take` also forgets it.
  bool find_token(std::uint32_t slot, Token* token, bool take);
  redis::Reply run_script(const std::string& script, const std::string& sha,
                          std::vector<std::string_view> keys_and_args);

  const RedisLockOptions options_;
  const std::string lease_ms_;  // lease as a decimal string, for the commands
  mutable redis::ConnectionPool pool_;
  std::unique_ptr<Slot[]> slot_table_;
  std::atomic<bool> layout_checked_{false};
  std::atomic<std::uint64_t> leases_lost_{0};
  std::atomic<std::uint64_t> unlock_errors_{0};
};

}  // namespace sessionkit

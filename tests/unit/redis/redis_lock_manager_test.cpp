// RedisLockManager against a real redis-server: keys and tokens, exclusion of
// threads, managers and processes, deadlines, leases and check_held(), the
// layout check, NOSCRIPT, fork, and Redis going away.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <thread>

#include <nlohmann/json.hpp>

#include "backends/redis/redis_config.hpp"
#include "backends/redis/redis_lock_manager.hpp"
#include "backends/redis/redis_store.hpp"
#include "session_id.hpp"
#include "sessionkit/error.hpp"
#include "tests/support/test_support.hpp"
#include "tests/unit/redis/redis_test_support.hpp"

using namespace std::chrono_literals;

namespace sessionkit {
namespace {

using testing::fork_child;
using testing::RawRedis;
using testing::RedisServer;
using testing::wait_child;
using SteadyClock = std::chrono::steady_clock;
using SysClock = std::chrono::system_clock;

template <typename Fn>
std::string code_of(Fn&& fn) {
  try {
    fn();
    return "none";
  } catch (const Error& e) {
    return to_string(e.code_value());
  }
}

// Milliseconds since `t`, rounded up: a bound on how much of a TTL set after
// `t` (by Redis, at millisecond resolution) can have run down by now.
long long ms_since(SteadyClock::time_point t) {
  return std::chrono::ceil<std::chrono::milliseconds>(SteadyClock::now() - t).count() + 1;
}

bool is_hex_token(const std::optional<std::string>& v) {
  if (!v || v->size() != 32) return false;
  for (char c : *v) {
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  }
  return true;
}

// What the core's save path does once the check_held seam is in (see
// docs/redis.md): confirm the lease, then write.
void guarded_save(RedisLockManager& locks, std::uint32_t slot, Store& store, const std::string& id,
                  const std::string& record) {
  locks.check_held(slot);
  store.save(id, record, SysClock::now() + 60s);
}

class RedisLockManagerTest : public ::testing::Test {
 protected:
  std::unique_ptr<RedisLockManager> make(const nlohmann::json& extra = nlohmann::json::object(),
                                         const std::string& prefix = "t:") {
    nlohmann::json s = testing::redis_lock_section(server_, prefix);
    s.update(extra);
    return std::make_unique<RedisLockManager>(redis::parse_lock_section(s, "/"));
  }

  RedisServer server_;
};

TEST_F(RedisLockManagerTest, SlotsAreTokenKeysWithALease) {
  auto locks = make({{"lease_ms", 10'000}, {"wait_ms", 5'000}});
  RawRedis raw(server_);
  EXPECT_EQ(locks->type(), "redis");
  EXPECT_TRUE(locks->shared_across_processes());
  EXPECT_EQ(locks->key_for(5), "t:lock:5");
  const auto before = SteadyClock::now();
  ASSERT_EQ(locks->try_lock(5), LockStatus::acquired);
  const auto first = raw.get("t:lock:5");
  EXPECT_TRUE(is_hex_token(first)) << first.value_or("(none)");
  const long long ttl = raw.pttl("t:lock:5");
  EXPECT_GE(ttl, 10'000 - ms_since(before));  // the lease, less the time since the SET
  EXPECT_LE(ttl, 10'000);
  EXPECT_EQ(raw.get("t:lock:layout"), "64/8");
  locks->unlock(5);
  EXPECT_FALSE(raw.exists("t:lock:5"));

  // A fresh token per acquisition.
  ASSERT_EQ(locks->lock(5, SteadyClock::now() + 1s), LockStatus::acquired);
  const auto second = raw.get("t:lock:5");
  EXPECT_TRUE(is_hex_token(second));
  EXPECT_NE(first, second);
  locks->unlock(5);
  EXPECT_EQ(locks->stats().acquisitions, 2u);
  EXPECT_EQ(locks->leases_lost(), 0u);
  EXPECT_EQ(locks->unlock_errors(), 0u);
}

TEST_F(RedisLockManagerTest, ReentrantPerThreadExclusiveAcrossThreadsAndManagers) {
  auto a = make();
  auto b = make();
  ASSERT_EQ(a->lock(3, SteadyClock::now() + 1s), LockStatus::acquired);
  EXPECT_EQ(a->lock(3, SteadyClock::now() + 1s), LockStatus::acquired);  // re-entry: no Redis call
  EXPECT_EQ(a->stats().reentries, 1u);
  // Another thread of the same process, same manager: Redis excludes it too.
  LockStatus other = LockStatus::acquired;
  std::thread([&] { other = a->try_lock(3); }).join();
  EXPECT_EQ(other, LockStatus::timed_out);
  EXPECT_EQ(b->try_lock(3), LockStatus::timed_out);  // another "machine"
  EXPECT_EQ(b->try_lock(4), LockStatus::acquired);   // other slots are independent
  b->unlock(4);
  a->unlock(3);
  EXPECT_EQ(b->try_lock(3), LockStatus::timed_out);  // still held once
  a->unlock(3);
  EXPECT_EQ(b->try_lock(3), LockStatus::acquired);
  b->unlock(3);
}

TEST_F(RedisLockManagerTest, WaitsUntilReleaseOrDeadline) {
  auto a = make();
  auto b = make();
  std::atomic<int> stage{0};
  std::atomic<SteadyClock::time_point> released{};
  // Slots belong to threads: the holder locks and unlocks on its own thread.
  std::thread holder([&] {
    EXPECT_EQ(a->lock(7, SteadyClock::now() + 1s), LockStatus::acquired);
    stage = 1;
    while (stage.load() != 2) std::this_thread::sleep_for(1ms);
    std::this_thread::sleep_for(100ms);
    a->unlock(7);
    released = SteadyClock::now();
  });
  while (stage.load() != 1) std::this_thread::sleep_for(1ms);

  auto start = SteadyClock::now();
  EXPECT_EQ(b->lock(7, start + 200ms), LockStatus::timed_out);
  auto waited = SteadyClock::now() - start;
  EXPECT_GE(waited, 200ms);
  EXPECT_LT(waited, 400ms);
  EXPECT_EQ(b->stats().timeouts, 1u);

  start = SteadyClock::now();
  stage = 2;  // released about 100 ms from now
  EXPECT_EQ(b->lock(7, start + 30s), LockStatus::acquired);
  const auto acquired = SteadyClock::now();
  waited = acquired - start;
  holder.join();
  EXPECT_GE(waited, 90ms);
  // Back-off is capped at 50 ms: B notices the release soon after it. Timed
  // from the release itself, so the holder's own sleep and unlock do not count.
  EXPECT_LT(acquired - released.load(), 200ms);
  EXPECT_EQ(b->stats().waits, 2u);
  b->unlock(7);
}

// The lease-expiry scenario: a holder that stalls past its lease loses the
// slot to another writer; its late write is refused with aborted, the other
// writer's update survives, and its unlock does not free the new holder's lock.
TEST_F(RedisLockManagerTest, StalledHolderLosesTheLeaseAndItsLateSaveIsRefused) {
  auto a = make({{"lease_ms", 200}, {"wait_ms", 100}});
  // B's lease must outlast the rest of the test on a slow machine: only A stalls.
  auto b = make({{"lease_ms", 30'000}});
  auto store = std::make_unique<RedisStore>(
      redis::parse_store_section(testing::redis_store_section(server_, "t:"), "/"));
  RawRedis raw(server_);
  const std::string id = detail::generate_session_id();
  const std::uint32_t slot = a->slot_for(id);
  ASSERT_EQ(b->slot_for(id), slot);
  store->save(id, "0", SysClock::now() + 60s);

  const auto start = SteadyClock::now();  // before A's SET: its 200 ms lease runs from later
  ASSERT_EQ(a->lock(slot, SteadyClock::now() + 1s), LockStatus::acquired);
  const std::string a_read = *store->load(id);  // A reads "0", then stalls
  // B gets the slot once A's lease ran out.
  ASSERT_EQ(b->lock(slot, SteadyClock::now() + 30s), LockStatus::acquired);
  EXPECT_GE(SteadyClock::now() - start, 190ms);
  guarded_save(*b, slot, *store, id, "B");
  const auto b_token = raw.get("t:lock:" + std::to_string(slot));

  // A wakes up and tries to write what it computed from the stale read.
  try {
    guarded_save(*a, slot, *store, id, a_read + "+A");
    FAIL() << "late save accepted";
  } catch (const Error& e) {
    EXPECT_EQ(e.code_value(), errc::aborted) << e.what();
    EXPECT_NE(std::string(e.what()).find("locks.lease_ms"), std::string::npos) << e.what();
  }
  EXPECT_EQ(store->load(id), "B");
  a->unlock(slot);  // compare-and-delete: B's lock stays
  EXPECT_EQ(a->leases_lost(), 1u);
  EXPECT_EQ(raw.get("t:lock:" + std::to_string(slot)), b_token);
  b->check_held(slot);  // still B's
  b->unlock(slot);
  EXPECT_FALSE(raw.exists("t:lock:" + std::to_string(slot)));
  EXPECT_EQ(b->leases_lost(), 0u);
}

TEST_F(RedisLockManagerTest, CheckHeldRenewsTheLease) {
  // A long lease, run down by hand: the original lease ends 300 ms from the
  // PEXPIRE, while the renewed one has 30 s, far more than any stall.
  auto a = make({{"lease_ms", 30'000}});
  auto b = make();
  RawRedis raw(server_);
  ASSERT_EQ(a->lock(9, SteadyClock::now() + 1s), LockStatus::acquired);
  ASSERT_EQ(raw.command({"PEXPIRE", "t:lock:9", "300"}).integer(), 1);
  const auto renewed = SteadyClock::now();
  a->check_held(9);
  EXPECT_GE(raw.pttl("t:lock:9"), 30'000 - ms_since(renewed));  // renewed to a full lease
  std::this_thread::sleep_for(400ms);                           // past the original lease
  EXPECT_EQ(b->try_lock(9), LockStatus::timed_out);
  a->check_held(9);
  a->unlock(9);
  EXPECT_EQ(a->leases_lost(), 0u);
  EXPECT_EQ(b->try_lock(9), LockStatus::acquired);
  b->unlock(9);
}

TEST_F(RedisLockManagerTest, CheckHeldNeedsTheSlot) {
  auto a = make();
  EXPECT_EQ(code_of([&] { a->check_held(4); }), "failed_precondition");
  ASSERT_EQ(a->try_lock(4), LockStatus::acquired);
  std::string other;
  std::thread([&] { other = code_of([&] { a->check_held(4); }); }).join();
  EXPECT_EQ(other, "failed_precondition");  // held by this thread, not that one
  a->check_held(4);
  a->unlock(4);
}

// Tokens are kept per holding thread: when one thread's lease ran out and
// another thread of the same process took the slot, the first one's unlock
// must not release the second one's lock.
TEST_F(RedisLockManagerTest, TokensArePerHolderWithinOneProcess) {
  // The first holder's lease is made to run out by hand (PEXPIRE): a short
  // lease_ms would also cut short the second holder's, which must last.
  auto a = make({{"lease_ms", 30'000}});
  auto outsider = make();
  RawRedis raw(server_);
  std::atomic<int> stage{0};
  std::thread first([&] {
    EXPECT_EQ(a->lock(11, SteadyClock::now() + 1s), LockStatus::acquired);
    stage = 1;
    while (stage.load() != 2) std::this_thread::sleep_for(1ms);
    EXPECT_EQ(code_of([&] { a->check_held(11); }), "aborted");
    a->unlock(11);
    stage = 3;
  });
  while (stage.load() != 1) std::this_thread::sleep_for(1ms);
  ASSERT_EQ(raw.command({"PEXPIRE", "t:lock:11", "1"}).integer(), 1);      // the first lease runs out
  ASSERT_EQ(a->lock(11, SteadyClock::now() + 30s), LockStatus::acquired);  // after the lease ran out
  stage = 2;
  while (stage.load() != 3) std::this_thread::sleep_for(1ms);
  first.join();
  EXPECT_EQ(outsider->try_lock(11), LockStatus::timed_out);  // still this thread's
  a->check_held(11);
  a->unlock(11);
  EXPECT_EQ(a->leases_lost(), 1u);
  EXPECT_EQ(outsider->try_lock(11), LockStatus::acquired);
  outsider->unlock(11);
}

TEST_F(RedisLockManagerTest, MismatchedLayoutIsBadConfig) {
  auto a = make();  // 64 slots, 8 resource slots
  ASSERT_EQ(a->try_lock(1), LockStatus::acquired);
  a->unlock(1);
  auto b = make({{"slots", 128}});
  try {
    b->try_lock(1);
    FAIL() << "a second layout under one prefix was accepted";
  } catch (const Error& e) {
    EXPECT_EQ(e.code_value(), errc::bad_config);
    EXPECT_EQ(std::string(e.what()).rfind("locks.slots:", 0), 0u) << e.what();
  }
  auto c = make({{"slots", 128}}, "other:");  // another prefix is another lock table
  EXPECT_EQ(c->try_lock(1), LockStatus::acquired);
  c->unlock(1);
}

TEST_F(RedisLockManagerTest, ReleaseFallsBackToEvalAfterScriptFlush) {
  auto a = make();
  RawRedis raw(server_);
  ASSERT_EQ(a->try_lock(2), LockStatus::acquired);
  a->unlock(2);  // loads the release script (EVALSHA, NOSCRIPT, EVAL)
  ASSERT_EQ(a->try_lock(2), LockStatus::acquired);
  raw.command({"SCRIPT", "FLUSH"});
  a->check_held(2);
  raw.command({"SCRIPT", "FLUSH"});
  a->unlock(2);
  EXPECT_FALSE(raw.exists("t:lock:2"));
  EXPECT_EQ(a->leases_lost(), 0u);
  EXPECT_EQ(a->unlock_errors(), 0u);
}

TEST_F(RedisLockManagerTest, ForkedChildHoldsNothingOfTheParent) {
  auto a = make();
  ASSERT_EQ(a->lock(6, SteadyClock::now() + 1s), LockStatus::acquired);
  pid_t child = fork_child([&] {
    a->after_fork();
    if (a->held_by_this_thread(6)) return 1;
    if (a->try_lock(6) != LockStatus::timed_out) return 2;  // the parent's lock excludes the child
    if (a->lock(12, SteadyClock::now() + 1s) != LockStatus::acquired) return 3;
    a->check_held(12);
    a->unlock(12);
    return a->unlock_errors() == 0 && a->leases_lost() == 0 ? 0 : 4;
  });
  EXPECT_EQ(wait_child(child), 0);
  a->check_held(6);  // the child did not touch the parent's lock or connection
  a->unlock(6);
  EXPECT_EQ(a->try_lock(12), LockStatus::acquired);
  a->unlock(12);
}

TEST_F(RedisLockManagerTest, RedisGoneIsUnavailableThenRecovers) {
  auto a = make();  // connect 500 ms, command 500 ms
  ASSERT_EQ(a->lock(1, SteadyClock::now() + 1s), LockStatus::acquired);
  server_.stop();
  const auto start = SteadyClock::now();
  EXPECT_EQ(code_of([&] { a->check_held(1); }), "unavailable");
  EXPECT_EQ(code_of([&] { a->lock(2, SteadyClock::now() + 5s); }), "unavailable");
  EXPECT_EQ(code_of([&] { a->unlock(1); }), "none");  // the lease frees it; counted
  EXPECT_LT(SteadyClock::now() - start, 3 * (500ms + 500ms));
  EXPECT_EQ(a->unlock_errors(), 1u);
  EXPECT_FALSE(a->held_by_this_thread(1));

  server_.start();
  ASSERT_EQ(a->lock(1, SteadyClock::now() + 1s), LockStatus::acquired);
  a->check_held(1);
  a->unlock(1);
  EXPECT_EQ(a->unlock_errors(), 1u);
}

}  // namespace
}  // namespace sessionkit

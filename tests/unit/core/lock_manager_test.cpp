// The LockManager base semantics (re-entrancy, lock order, counters, slot
// mapping), exercised through the in-process "thread" manager.
#include "locks/thread_lock_manager.hpp"

#include <gtest/gtest.h>

#include <atomic>
#include <set>
#include <thread>

#include "session_id.hpp"
#include "sessionkit/error.hpp"

namespace sessionkit {
namespace {

using std::chrono::milliseconds;
using std::chrono::steady_clock;

errc code_of(const std::function<void()>& fn) {
  try {
    fn();
  } catch (const Error& e) {
    return e.code_value();
  }
  return errc{};
}

TEST(LockManagerTest, SlotsStayInTheirRanges) {
  ThreadLockManager m(8, 4);
  std::set<std::uint32_t> seen;
  for (int i = 0; i < 2000; ++i) {
    std::uint32_t s = m.slot_for(detail::generate_session_id());
    ASSERT_GE(s, 1u);
    ASSERT_LE(s, 7u);
    seen.insert(s);
    std::uint32_t r = m.resource_slot_for("res" + std::to_string(i));
    ASSERT_GE(r, 8u);
    ASSERT_LE(r, 11u);
  }
  EXPECT_EQ(seen.size(), 7u);  // every session slot is used, slot 0 never
  // Stable: the same id always maps to the same slot, in any manager of this shape.
  ThreadLockManager other(8, 4);
  const std::string id = detail::generate_session_id();
  EXPECT_EQ(m.slot_for(id), other.slot_for(id));
}

TEST(LockManagerTest, ReentrantPerThread) {
  ThreadLockManager m(16, 4);
  const auto deadline = steady_clock::now() + milliseconds(100);
  ASSERT_EQ(m.lock(5, deadline), LockStatus::acquired);
  ASSERT_EQ(m.lock(5, deadline), LockStatus::acquired);
  EXPECT_TRUE(m.held_by_this_thread(5));
  m.unlock(5);
  EXPECT_TRUE(m.held_by_this_thread(5));
  // Still held: another thread cannot take it.
  std::thread([&] { EXPECT_EQ(m.try_lock(5), LockStatus::timed_out); }).join();
  m.unlock(5);
  EXPECT_FALSE(m.held_by_this_thread(5));
  std::thread([&] {
    EXPECT_EQ(m.try_lock(5), LockStatus::acquired);
    m.unlock(5);
  }).join();
  LockStats s = m.stats();
  EXPECT_EQ(s.acquisitions, 2u);
  EXPECT_EQ(s.reentries, 1u);
  EXPECT_EQ(code_of([&] { m.unlock(5); }), errc::failed_precondition);
  EXPECT_EQ(code_of([&] { m.lock(20, deadline); }), errc::invalid_argument);
}

TEST(LockManagerTest, TimeoutAtTheDeadlineIsCounted) {
  ThreadLockManager m(16, 4);
  ASSERT_EQ(m.lock(3, steady_clock::now()), LockStatus::acquired);
  std::thread([&] {
    const auto start = steady_clock::now();
    EXPECT_EQ(m.lock(3, start + milliseconds(50)), LockStatus::timed_out);
    EXPECT_GE(steady_clock::now() - start, milliseconds(50));
  }).join();
  m.unlock(3);
  LockStats s = m.stats();
  EXPECT_EQ(s.timeouts, 1u);
  EXPECT_EQ(s.waits, 1u);
  EXPECT_GE(s.wait_ns, 50'000'000u);
}

TEST(LockManagerTest, TimeoutAfterTheWaitIsCounted) {
  ThreadLockManager m(16, 4);
  ASSERT_EQ(m.lock(3, milliseconds(0)), LockStatus::acquired);
  EXPECT_EQ(m.lock(3, milliseconds(0)), LockStatus::acquired);  // re-entry: no wait
  std::thread([&] {
    const auto start = steady_clock::now();
    EXPECT_EQ(m.lock(3, milliseconds(50)), LockStatus::timed_out);
    EXPECT_GE(steady_clock::now() - start, milliseconds(50));
    EXPECT_EQ(m.lock(4, milliseconds(0)), LockStatus::acquired);  // free: no wait either
    m.unlock(4);
  }).join();
  std::thread([&] { EXPECT_EQ(m.lock(3, milliseconds(0)), LockStatus::timed_out); }).join();  // one try
  m.unlock(3);
  m.unlock(3);
  LockStats s = m.stats();
  EXPECT_EQ(s.acquisitions, 2u);
  EXPECT_EQ(s.reentries, 1u);
  EXPECT_EQ(s.timeouts, 2u);
  EXPECT_EQ(s.waits, 2u);
  EXPECT_GE(s.wait_ns, 50'000'000u);
}

TEST(LockManagerTest, WaitEndsWhenTheHolderReleases) {
  ThreadLockManager m(16, 4);
  for (milliseconds wait : {milliseconds(10'000), milliseconds::max()}) {  // max: no overflow, no deadline
    ASSERT_EQ(m.lock(5, milliseconds(0)), LockStatus::acquired);
    std::atomic<bool> got{false};
    std::thread waiter([&] {
      EXPECT_EQ(m.lock(5, wait), LockStatus::acquired);
      got = true;
      m.unlock(5);
    });
    std::this_thread::sleep_for(milliseconds(30));
    EXPECT_FALSE(got.load());
    m.unlock(5);
    waiter.join();
    EXPECT_TRUE(got.load());
  }
  LockStats s = m.stats();
  EXPECT_EQ(s.acquisitions, 4u);
  EXPECT_EQ(s.waits, 2u);
  EXPECT_EQ(s.timeouts, 0u);
  EXPECT_GE(s.wait_ns, 2 * 20'000'000u);
}

TEST(LockManagerTest, ResourceBeforeSessionIsRefused) {
  ThreadLockManager m(16, 4);
  const auto deadline = steady_clock::now() + milliseconds(100);
  const std::uint32_t r1 = m.resource_slot_for("a");
  std::uint32_t r2 = r1;
  for (int i = 0; r2 == r1; ++i) r2 = m.resource_slot_for("b" + std::to_string(i));
  // session -> resource: allowed
  ASSERT_EQ(m.lock(2, deadline), LockStatus::acquired);
  ASSERT_EQ(m.lock(r1, deadline), LockStatus::acquired);
  // resource -> session, resource -> other resource: refused
  EXPECT_EQ(code_of([&] { m.lock(3, deadline); }), errc::failed_precondition);
  EXPECT_EQ(code_of([&] { m.try_lock(0); }), errc::failed_precondition);
  EXPECT_EQ(code_of([&] { m.lock(r2, deadline); }), errc::failed_precondition);
  // the same resource again: re-entrant
  EXPECT_EQ(m.lock(r1, deadline), LockStatus::acquired);
  m.unlock(r1);
  m.unlock(r1);
  EXPECT_EQ(m.lock(3, deadline), LockStatus::acquired);
  m.unlock(3);
  m.unlock(2);
}

TEST(LockManagerTest, ThreadsExcludeEachOther) {
  ThreadLockManager m(4, 1);
  int counter = 0;  // deliberately unsynchronised: the slot is the only guard
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 5000; ++i) {
        ASSERT_EQ(m.lock(1, steady_clock::now() + std::chrono::seconds(10)), LockStatus::acquired);
        int v = counter;
        std::this_thread::yield();
        counter = v + 1;
        m.unlock(1);
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(counter, 40000);
}

}  // namespace
}  // namespace sessionkit

#include "backends/memory/memory_store.hpp"

#include <gtest/gtest.h>

#include "session_id.hpp"

namespace sessionkit {
namespace {

using std::chrono::seconds;
using Clock = std::chrono::system_clock;

TEST(MemoryStoreTest, LoadSaveRemove) {
  MemoryStore store;
  const auto t = Clock::now() + seconds(60);
  EXPECT_FALSE(store.load("a"));
  store.save("a", "one", t);
  EXPECT_EQ(store.load("a"), std::optional<std::string>("one"));
  store.save("a", std::string("tw\0o", 4), t);
  EXPECT_EQ(store.load("a"), std::optional<std::string>(std::string("tw\0o", 4)));
  EXPECT_EQ(store.info().records, 1);
  EXPECT_EQ(store.info().bytes, 5);
  EXPECT_TRUE(store.remove("a"));
  EXPECT_FALSE(store.remove("a"));
  EXPECT_FALSE(store.load("a"));
  EXPECT_EQ(store.info().bytes, 0);
}

TEST(MemoryStoreTest, SweepDeletesExactlyTheExpired) {
  MemoryStore store;
  const auto now = Clock::now();
  std::vector<std::string> live, dead;
  for (int i = 0; i < 5000; ++i) {
    std::string id = detail::generate_session_id();
    bool expired = i % 2 == 0;
    store.save(id, "r", expired ? now - seconds(1) : now + seconds(60));
    (expired ? dead : live).push_back(id);
  }
  store.save("edge", "r", now);  // expiry at `now` counts as expired
  // A budget no stall can exhaust: the one sweep must finish.
  SweepResult r = store.sweep(now, std::chrono::milliseconds(60'000));
  EXPECT_TRUE(r.complete);
  EXPECT_EQ(r.removed, 2501u);
  EXPECT_EQ(r.examined, 5001u);
  for (const auto& id : dead) ASSERT_FALSE(store.load(id));
  for (const auto& id : live) ASSERT_TRUE(store.load(id));
  EXPECT_EQ(store.info().records, 2500);
}

TEST(MemoryStoreTest, SweepWithATinyBudgetProgressesAndFinishes) {
  MemoryStore store;
  const auto now = Clock::now();
  for (int i = 0; i < 20000; ++i) store.save(detail::generate_session_id(), "r", now - seconds(1));
  std::uint64_t removed = 0;
  int calls = 0;
  for (; calls < 100000; ++calls) {
    SweepResult r = store.sweep(now, std::chrono::milliseconds(0));
    ASSERT_GT(r.examined + (r.complete ? 1 : 0), 0u) << "a sweep made no progress";
    removed += r.removed;
    if (store.info().records == 0) break;
  }
  EXPECT_EQ(removed, 20000u);
  EXPECT_GT(calls, 1);
}

TEST(MemoryStoreTest, ForEachVisitsEveryRecord) {
  MemoryStore store;
  for (int i = 0; i < 100; ++i) store.save("id" + std::to_string(i), "r", Clock::now() + seconds(5));
  int n = 0;
  store.for_each([&](std::string_view, std::string_view rec) {
    EXPECT_EQ(rec, "r");
    return ++n < 1000;
  });
  EXPECT_EQ(n, 100);
  n = 0;
  store.for_each([&](std::string_view, std::string_view) { return ++n < 10; });
  EXPECT_EQ(n, 10);
}

}  // namespace
}  // namespace sessionkit

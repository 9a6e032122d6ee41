// LmdbShardedStore: "lmdb" with "shards" > 1. Ids land in the shard their
// hash names (a fixed part of the file layout), sweeps and for_each cover
// every shard, and processes sharing the shards count exactly.
#include "backends/lmdb/lmdb_sharded_store.hpp"

#include <gtest/gtest.h>
#include <sys/mman.h>

#include <atomic>
#include <fstream>
#include <map>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "sessionkit/config.hpp"
#include "sessionkit/error.hpp"
#include "sessionkit/registry.hpp"
#include "sessionkit/session.hpp"
#include "sessionkit/session_manager.hpp"
#include "tests/support/test_support.hpp"
#include "tests/unit/lmdb/lmdb_test_support.hpp"

namespace sessionkit {
namespace {

using namespace std::chrono_literals;
using sessionkit::testing::TempDir;
using TimePoint = Store::TimePoint;

const TimePoint kT0 = sessionkit::testing::kLmdbT0;

LmdbStoreOptions shard_options(const std::filesystem::path& path) {
  LmdbStoreOptions o;
  o.path = path;
  o.durability = LmdbDurability::nosync;
  o.map_size_bytes = 1 << 20;
  return o;
}

std::string id_of(int i) { return "id-" + std::to_string(i); }

// The placement is part of the on-disk format: these values must never change.
TEST(LmdbSharded, ShardOfIsFixed) {
  EXPECT_EQ(LmdbShardedStore::shard_of("a", 4), 1u);
  EXPECT_EQ(LmdbShardedStore::shard_of("id-0", 4), 1u);
  EXPECT_EQ(LmdbShardedStore::shard_of("id-1", 4), 2u);
  EXPECT_EQ(LmdbShardedStore::shard_of("id-0", 7), 5u);
  EXPECT_EQ(LmdbShardedStore::shard_path("/x/s.mdb", 3), "/x/s.mdb.3");
  // Spread: 4000 ids over 4 shards, none far from a quarter.
  std::map<unsigned, int> counts;
  for (int i = 0; i < 4000; ++i) ++counts[LmdbShardedStore::shard_of(id_of(i), 4)];
  ASSERT_EQ(counts.size(), 4u);
  for (const auto& [shard, n] : counts) {
    EXPECT_GT(n, 850) << "shard " << shard;
    EXPECT_LT(n, 1150) << "shard " << shard;
  }
}

TEST(LmdbSharded, EachRecordLivesInTheShardItsIdNames) {
  TempDir dir;
  LmdbShardedStore store(shard_options(dir / "s.mdb"), 4);
  EXPECT_EQ(store.shard_count(), 4u);
  std::vector<int> expected(4, 0);
  for (int i = 0; i < 200; ++i) {
    store.save(id_of(i), "record " + std::to_string(i), kT0 + 1h);
    ++expected[LmdbShardedStore::shard_of(id_of(i), 4)];
  }
  for (unsigned s = 0; s < 4; ++s) {
    EXPECT_TRUE(std::filesystem::exists(dir / ("s.mdb." + std::to_string(s))));
    EXPECT_EQ(store.shard(s).info().records, expected[s]) << "shard " << s;
  }
  EXPECT_FALSE(std::filesystem::exists(dir / "s.mdb"));
  EXPECT_EQ(store.load(id_of(123)), "record 123");
  EXPECT_TRUE(store.remove(id_of(123)));
  EXPECT_FALSE(store.remove(id_of(123)));
  EXPECT_EQ(store.load(id_of(123)), std::nullopt);
  const StoreInfo info = store.info();
  EXPECT_EQ(info.type, "lmdb");
  EXPECT_EQ(info.records, 199);
  EXPECT_GT(info.bytes, 0);
  EXPECT_EQ(info.location, (dir / "s.mdb").string() + ".{0..3}");
  EXPECT_EQ(store.check_consistency(), "");
}

TEST(LmdbSharded, ConsistencyCheckFindsAnIdInTheWrongShard) {
  TempDir dir;
  LmdbShardedStore store(shard_options(dir / "s.mdb"), 3);
  store.save(id_of(1), "placed", kT0 + 1h);
  const unsigned right = LmdbShardedStore::shard_of(id_of(2), 3);
  store.shard((right + 1) % 3).save(id_of(2), "misplaced", kT0 + 1h);
  const std::string problems = store.check_consistency();
  EXPECT_NE(problems.find("id id-2 in shard " + std::to_string((right + 1) % 3)), std::string::npos)
      << problems;
  EXPECT_EQ(store.load(id_of(2)), std::nullopt);  // looked for where it belongs
}

TEST(LmdbSharded, SweepsCoverEveryShardAndResumeWhereTheyStopped) {
  TempDir dir;
  LmdbShardedStore store(shard_options(dir / "s.mdb"), 4);
  for (int i = 0; i < 400; ++i) store.save(id_of(i), "r", i % 2 == 0 ? kT0 - 1s : kT0 + 1h);
  // A zero budget still makes progress in one shard per call; calls resume
  // until every shard is clean.
  std::uint64_t removed = 0;
  int calls = 0;
  for (;;) {
    SweepResult r = store.sweep(kT0, 0ms);
    removed += r.removed;
    ++calls;
    ASSERT_LT(calls, 1000);
    if (r.complete) break;
  }
  EXPECT_EQ(removed, 200u);
  EXPECT_GE(calls, 2);
  EXPECT_EQ(store.info().records, 200);
  for (int i = 1; i < 400; i += 2) EXPECT_EQ(store.load(id_of(i)), "r");
  SweepResult again = store.sweep(kT0, 10s);
  EXPECT_EQ(again.removed, 0u);
  EXPECT_TRUE(again.complete);
  EXPECT_EQ(store.check_consistency(), "");
}

// "complete" speaks for the lap that just ended: records that fall due
// after a complete sweep make the next laps incomplete until they are gone.
TEST(LmdbSharded, CompleteIsNeverStaleAfterAFinishedLap) {
  TempDir dir;
  LmdbShardedStore store(shard_options(dir / "s.mdb"), 4);
  EXPECT_TRUE(store.sweep(kT0, 10s).complete);
  for (int i = 0; i < 400; ++i) store.save(id_of(i), "r", kT0 - 1s);
  for (int calls = 0;; ++calls) {
    ASSERT_LT(calls, 1000);
    SweepResult r = store.sweep(kT0, 0ms);
    if (r.complete) break;
  }
  EXPECT_EQ(store.info().records, 0);
}

// Threads sweeping at once each take the next shard in turn: a lap is never
// counted twice over one shard. (Each trial starts a fresh store, so no lap is
// under way when its records are saved; records saved in a shard the current
// lap has passed wait for the next lap, docs/caveats.md.)
TEST(LmdbSharded, SweepsFromManyThreadsReportCompleteOnlyWhenAllIsSwept) {
  for (int trial = 0; trial < 20; ++trial) {
    TempDir dir;
    LmdbShardedStore store(shard_options(dir / "s.mdb"), 3);
    for (int i = 0; i < 60; ++i) store.save(id_of(i), "r", kT0 - 1s);
    store.save("live", "l", kT0 + 1h);
    std::atomic<bool> done{false};
    std::atomic<std::int64_t> left_at_complete{-1};
    std::vector<std::thread> threads;
    for (int t = 0; t < 4; ++t) {
      threads.emplace_back([&] {
        while (!done.load()) {
          if (store.sweep(kT0, 0ms).complete && !done.exchange(true)) {
            left_at_complete.store(store.info().records);
          }
        }
      });
    }
    for (std::thread& t : threads) t.join();
    EXPECT_EQ(left_at_complete.load(), 1) << "trial " << trial;
  }
}

// A shard that fails does not stop the others; its error reaches the caller.
// The failure: in a forked child, shard 1 alone is left without after_fork(),
// so it refuses every call (failed_precondition).
TEST(LmdbSharded, AFailingShardDoesNotStopTheOthers) {
  TempDir dir;
  LmdbShardedStore store(shard_options(dir / "s.mdb"), 3);
  for (int i = 0; i < 90; ++i) store.save(id_of(i), "r", kT0 - 1s);
  ASSERT_GT(store.shard(0).info().records, 0);
  ASSERT_GT(store.shard(2).info().records, 0);
  pid_t pid = sessionkit::testing::fork_child([&] {
    store.shard(0).after_fork();
    store.shard(2).after_fork();
    try {
      store.sweep(kT0, 10s);
      return 3;
    } catch (const Error& e) {
      if (e.code_value() != errc::failed_precondition) return 4;
    }
    return store.shard(0).info().records == 0 && store.shard(2).info().records == 0 ? 0 : 5;
  });
  EXPECT_EQ(sessionkit::testing::wait_child(pid), 0);
  EXPECT_GT(store.shard(1).info().records, 0);  // nobody swept shard 1
  // Here every shard works: the lap that had the failure was not complete,
  // the next one is.
  SweepResult r{};
  for (int calls = 0; calls < 10 && !r.complete; ++calls) r = store.sweep(kT0, 10s);
  EXPECT_TRUE(r.complete);
  EXPECT_EQ(store.info().records, 0);
}

TEST(LmdbSharded, TheShardCountIsRecordedAndEnforced) {
  TempDir dir;
  const std::filesystem::path path = dir / "s.mdb";
  { LmdbShardedStore store(shard_options(path), 4); }
  std::ifstream in(dir / "s.mdb.shards");
  std::string line;
  std::getline(in, line);
  EXPECT_EQ(line, "sessionkit-lmdb-shards 4");
  EXPECT_EQ(std::filesystem::status(dir / "s.mdb.shards").permissions() & std::filesystem::perms::all,
            std::filesystem::perms::owner_read | std::filesystem::perms::owner_write);
  { LmdbShardedStore again(shard_options(path), 4); }  // the same count opens
  StoreType t = Registry::global().store("lmdb");
  const auto message = [&](unsigned shards) {
    try {
      t.create(nlohmann::json{{"type", "lmdb"}, {"path", path.string()}, {"shards", shards}}, dir.path());
    } catch (const Error& e) {
      EXPECT_EQ(e.code_value(), errc::bad_config) << e.what();
      return std::string(e.what());
    }
    return std::string("opened");
  };
  EXPECT_EQ(message(3).rfind("store.shards: " + path.string() + " holds 4 shards, not 3", 0), 0u)
      << message(3);
  EXPECT_EQ(message(1).rfind("store.shards: " + path.string() + " holds 4 shards, not 1", 0), 0u)
      << message(1);
  EXPECT_FALSE(std::filesystem::exists(path));  // the refused single-file open made nothing

  // A single-file store is not silently replaced by shards either.
  const std::filesystem::path single = dir / "one.mdb";
  t.create(nlohmann::json{{"type", "lmdb"}, {"path", single.string()}}, dir.path())->save("a", "b", kT0 + 1h);
  try {
    t.create(nlohmann::json{{"type", "lmdb"}, {"path", single.string()}, {"shards", 2}}, dir.path());
    ADD_FAILURE() << "sharded open of a single-file store";
  } catch (const Error& e) {
    EXPECT_EQ(e.code_value(), errc::bad_config);
    EXPECT_NE(std::string(e.what()).find("holds a single-file store, not 2"), std::string::npos) << e.what();
  }

  // A count file that sessionkit did not write is refused, not trusted.
  { std::ofstream(dir / "odd.mdb.shards") << "sessionkit-lmdb-shards x\n"; }
  EXPECT_EQ(message(4).find("opened"), 0u);  // path unchanged: still fine
  try {
    LmdbShardedStore odd(shard_options(dir / "odd.mdb"), 2);
    ADD_FAILURE() << "opened with a malformed count file";
  } catch (const Error& e) {
    EXPECT_EQ(e.code_value(), errc::bad_config);
    EXPECT_NE(std::string(e.what()).find("is not a sessionkit shard count file"), std::string::npos)
        << e.what();
  }
}

TEST(LmdbSharded, ForEachVisitsEveryRecordOnceAndStopsWhenAsked) {
  TempDir dir;
  LmdbShardedStore store(shard_options(dir / "s.mdb"), 5);
  for (int i = 0; i < 100; ++i) store.save(id_of(i), "v" + std::to_string(i), kT0 + 1h);
  std::set<std::string> seen;
  store.for_each([&](std::string_view id, std::string_view record) {
    EXPECT_TRUE(seen.insert(std::string(id)).second) << id;
    EXPECT_EQ(record, "v" + std::string(id.substr(3)));
    return true;
  });
  EXPECT_EQ(seen.size(), 100u);
  int calls = 0;
  store.for_each([&](std::string_view, std::string_view) { return ++calls < 30; });
  EXPECT_EQ(calls, 30);
}

TEST(LmdbSharded, ProcessesShareTheShardsAndCountExactly) {
  TempDir dir;
  const std::string shm = sessionkit::testing::unique_name("lmdbshard");
  const nlohmann::json doc = {{"store",
                               {{"type", "lmdb"},
                                {"path", (dir / "sessions.mdb").string()},
                                {"durability", "nosync"},
                                {"shards", 4}}},
                              {"locks", {{"type", "shm"}, {"name", shm}, {"wait_ms", 30000}}}};
  SessionManager m(Config::from_json(doc));
  sessionkit::testing::expect_processes_count_exactly(m, 6, 4, 100, /*growing_pad=*/false);
  shm_unlink(("/sessionkit-" + shm).c_str());
}

TEST(LmdbShardedConfig, ShardsPickTheStoreAndBadCountsAreRejected) {
  TempDir dir;
  StoreType t = Registry::global().store("lmdb");
  auto one = t.create(nlohmann::json{{"type", "lmdb"}, {"path", "one.mdb"}, {"shards", 1}}, dir.path());
  EXPECT_NE(dynamic_cast<LmdbStore*>(one.get()), nullptr);
  EXPECT_TRUE(std::filesystem::exists(dir / "one.mdb"));
  auto three = t.create(nlohmann::json{{"type", "lmdb"},
                                       {"path", "three.mdb"},
                                       {"shards", 3},
                                       {"durability", "nosync"},
                                       {"write_map", true}},
                        dir.path());
  auto* sharded = dynamic_cast<LmdbShardedStore*>(three.get());
  ASSERT_NE(sharded, nullptr);
  EXPECT_EQ(sharded->shard_count(), 3u);
  EXPECT_TRUE(sharded->shard(2).options().write_map);
  EXPECT_EQ(sharded->shard(2).options().path, dir / "three.mdb.2");
  for (const nlohmann::json& bad :
       {nlohmann::json(0), nlohmann::json(257), nlohmann::json("2"), nlohmann::json(1.5)}) {
    try {
      t.validate(nlohmann::json{{"type", "lmdb"}, {"shards", bad}}, dir.path());
      ADD_FAILURE() << "accepted shards " << bad.dump();
    } catch (const Error& e) {
      EXPECT_EQ(e.code_value(), errc::bad_config);
      EXPECT_EQ(std::string(e.what()).rfind("store.shards:", 0), 0u) << e.what();
    }
  }
}

}  // namespace
}  // namespace sessionkit

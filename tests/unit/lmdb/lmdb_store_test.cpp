// LmdbStore on its own: records, the expiry index, sweeps, map growth, stale
// readers, fork, configuration.
#include "backends/lmdb/lmdb_store.hpp"

#include <gtest/gtest.h>
#include <lmdb.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <map>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "sessionkit/error.hpp"
#include "sessionkit/registry.hpp"
#include "tests/support/test_support.hpp"

namespace sessionkit {
namespace {

using namespace std::chrono_literals;
using sessionkit::testing::TempDir;
using TimePoint = Store::TimePoint;

const TimePoint kT0 = TimePoint(std::chrono::milliseconds(1'700'000'000'000));

LmdbStoreOptions small_options(const std::filesystem::path& path) {
  LmdbStoreOptions o;
  o.path = path;
  o.durability = LmdbDurability::nosync;  // these tests are about logic, not the disk
  o.map_size_bytes = 1 << 20;
  o.max_map_size_bytes = 64 << 20;
  return o;
}

std::string id_of(int i) { return "id-" + std::to_string(i); }

template <typename Fn>
errc code_of(Fn&& fn) {
  try {
    fn();
  } catch (const Error& e) {
    return e.code_value();
  }
  ADD_FAILURE() << "no Error thrown";
  return errc::io;
}

template <typename Fn>
std::string message_of(Fn&& fn) {
  try {
    fn();
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

// Raw LMDB access to the store's file, for planting damage. REQUIRES: no
// LmdbStore of this process has the file open (LMDB: one handle per process).
class RawEnv {
 public:
  explicit RawEnv(const std::filesystem::path& path) {
    EXPECT_EQ(mdb_env_create(&env_), 0);
    mdb_env_set_maxdbs(env_, 2);
    EXPECT_EQ(mdb_env_open(env_, path.c_str(), MDB_NOSUBDIR | MDB_NOTLS, 0600), 0);
    EXPECT_EQ(mdb_txn_begin(env_, nullptr, 0, &txn_), 0);
    EXPECT_EQ(mdb_dbi_open(txn_, "records", 0, &records_), 0);
    EXPECT_EQ(mdb_dbi_open(txn_, "expiry", 0, &expiry_), 0);
  }
  ~RawEnv() {
    EXPECT_EQ(mdb_txn_commit(txn_), 0);
    mdb_env_close(env_);
  }
  void put(bool index, const std::string& key, const std::string& value) {
    MDB_val k{key.size(), const_cast<char*>(key.data())};
    MDB_val v{value.size(), const_cast<char*>(value.data())};
    ASSERT_EQ(mdb_put(txn_, index ? expiry_ : records_, &k, &v, 0), 0);
  }
  void del(bool index, const std::string& key) {
    MDB_val k{key.size(), const_cast<char*>(key.data())};
    ASSERT_EQ(mdb_del(txn_, index ? expiry_ : records_, &k, nullptr), 0);
  }

 private:
  MDB_env* env_ = nullptr;
  MDB_txn* txn_ = nullptr;
  MDB_dbi records_ = 0;
  MDB_dbi expiry_ = 0;
};

std::string be64(std::uint64_t v) {
  std::string s(8, '\0');
  for (int i = 7; i >= 0; --i, v >>= 8) s[static_cast<std::size_t>(i)] = static_cast<char>(v & 0xff);
  return s;
}

std::uint64_t ms(TimePoint t) {
  return static_cast<std::uint64_t>(
      std::chrono::duration_cast<std::chrono::milliseconds>(t.time_since_epoch()).count());
}

TEST(LmdbStore, CreatesOneFileAndItsLockFileWithMode0600) {
  TempDir dir;
  LmdbStore store(small_options(dir / "s.mdb"));
  struct stat st {};
  ASSERT_EQ(::stat((dir / "s.mdb").c_str(), &st), 0);
  EXPECT_TRUE(S_ISREG(st.st_mode));
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  ASSERT_EQ(::stat((dir / "s.mdb-lock").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  int files = 0;
  for ([[maybe_unused]] const auto& e : std::filesystem::directory_iterator(dir.path())) ++files;
  EXPECT_EQ(files, 2);
}

TEST(LmdbStore, SaveLoadReplaceRemove) {
  TempDir dir;
  LmdbStore store(small_options(dir / "s.mdb"));
  EXPECT_EQ(store.load("a"), std::nullopt);
  store.save("a", "first", kT0 + 1h);
  EXPECT_EQ(store.load("a"), "first");
  store.save("a", "second", kT0 + 2h);
  EXPECT_EQ(store.load("a"), "second");

  const std::string binary("\0\x01\xff\0z", 5);
  store.save("b", binary, kT0);
  EXPECT_EQ(store.load("b"), binary);
  store.save("empty", "", kT0);
  EXPECT_EQ(store.load("empty"), "");
  const std::string big(64 * 1024, 'x');  // overflow pages
  store.save("big", big, kT0);
  EXPECT_EQ(store.load("big"), big);

  EXPECT_TRUE(store.remove("a"));
  EXPECT_FALSE(store.remove("a"));
  EXPECT_EQ(store.load("a"), std::nullopt);
  EXPECT_EQ(store.check_consistency(), "");
}

TEST(LmdbStore, RecordsSurviveReopen) {
  TempDir dir;
  {
    LmdbStore store(small_options(dir / "s.mdb"));
    store.save("keep", "value", kT0 + 1h);
  }
  LmdbStore store(small_options(dir / "s.mdb"));
  EXPECT_EQ(store.load("keep"), "value");
  EXPECT_EQ(store.info().records, 1);
}

TEST(LmdbStore, RejectsIdsOfTheWrongShape) {
  TempDir dir;
  LmdbStore store(small_options(dir / "s.mdb"));
  EXPECT_EQ(store.max_id_size(), static_cast<std::size_t>(511 - 8));  // LMDB's default build
  const std::string longest(store.max_id_size(), 'a');
  store.save(longest, "ok", kT0);
  EXPECT_EQ(store.load(longest), "ok");
  const std::vector<std::string> bad = {"",
                                        "../x",
                                        "a/b",
                                        std::string("a\0b", 3),
                                        "a b",
                                        "a.b",
                                        "é",
                                        std::string(store.max_id_size() + 1, 'a'),
                                        std::string(10240, 'a')};
  for (const std::string& id : bad) {
    EXPECT_EQ(code_of([&] { store.load(id); }), errc::invalid_argument) << id.size();
    EXPECT_EQ(code_of([&] { store.save(id, "x", kT0); }), errc::invalid_argument) << id.size();
    EXPECT_EQ(code_of([&] { store.remove(id); }), errc::invalid_argument) << id.size();
  }
  EXPECT_EQ(store.info().records, 1);
}

TEST(LmdbStore, SweepRemovesExactlyTheDueRecords) {
  TempDir dir;
  LmdbStore store(small_options(dir / "s.mdb"));
  store.save("past", "1", kT0 - 10s);
  store.save("just", "2", kT0 - 1ms);
  store.save("now", "3", kT0);  // "at or before now" is due
  store.save("soon", "4", kT0 + 1ms);
  store.save("later", "5", kT0 + 1h);
  store.save("ancient", "6", TimePoint(-5s));  // before 1970: sorts as 0

  SweepResult r = store.sweep(kT0, 1s);
  EXPECT_EQ(r.removed, 4u);
  EXPECT_EQ(r.examined, 4u);
  EXPECT_TRUE(r.complete);
  for (const char* id : {"past", "just", "now", "ancient"}) EXPECT_EQ(store.load(id), std::nullopt) << id;
  EXPECT_EQ(store.load("soon"), "4");
  EXPECT_EQ(store.load("later"), "5");
  EXPECT_EQ(store.check_consistency(), "");

  r = store.sweep(kT0, 1s);  // nothing due
  EXPECT_EQ(r.removed, 0u);
  EXPECT_EQ(r.examined, 0u);
  EXPECT_TRUE(r.complete);
}

TEST(LmdbStore, ResaveMovesTheIndexEntry) {
  TempDir dir;
  LmdbStore store(small_options(dir / "s.mdb"));
  store.save("s", "v1", kT0);
  store.save("s", "v2", kT0 + 1h);  // refreshed: the old entry must not expire it
  EXPECT_EQ(store.check_consistency(), "");
  SweepResult r = store.sweep(kT0 + 1s, 1s);
  EXPECT_EQ(r.removed, 0u);
  EXPECT_EQ(store.load("s"), "v2");

  store.save("s", "v3", kT0 - 1h);  // moved earlier
  store.save("s", "v4", kT0 - 1h);  // same expiry: entry kept, not duplicated
  EXPECT_EQ(store.check_consistency(), "");
  r = store.sweep(kT0, 1s);
  EXPECT_EQ(r.removed, 1u);
  EXPECT_EQ(r.examined, 1u);
  EXPECT_EQ(store.load("s"), std::nullopt);
  EXPECT_EQ(store.check_consistency(), "");
}

TEST(LmdbStore, SweepWorksInBatchesAndAlwaysMakesProgress) {
  TempDir dir;
  LmdbStore store(small_options(dir / "s.mdb"));
  constexpr int kExpired = 1000;
  // Whole seconds apart: the index orders expiries by the second.
  for (int i = 0; i < kExpired; ++i) store.save(id_of(i), "x", kT0 - std::chrono::seconds(i));
  for (int i = 0; i < 10; ++i) store.save("live-" + std::to_string(i), "y", kT0 + 1h);

  // A zero budget still deletes one batch, and reports that it is not done.
  SweepResult r = store.sweep(kT0, 0ms);
  EXPECT_EQ(r.removed, LmdbStore::kSweepBatch);
  EXPECT_EQ(r.examined, LmdbStore::kSweepBatch);
  EXPECT_FALSE(r.complete);
  EXPECT_EQ(store.info().records, kExpired + 10 - static_cast<std::int64_t>(LmdbStore::kSweepBatch));
  // Oldest first: the earliest expiries went.
  EXPECT_EQ(store.load(id_of(kExpired - 1)), std::nullopt);
  EXPECT_EQ(store.load(id_of(0)), "x");

  r = store.sweep(kT0, 10s);
  EXPECT_EQ(r.removed, kExpired - LmdbStore::kSweepBatch);
  EXPECT_TRUE(r.complete);
  EXPECT_EQ(store.info().records, 10);
  EXPECT_EQ(store.check_consistency(), "");
}

// Saves, re-saves, removes and sweeps at random against a model; after each
// round the index and the records agree both ways and match the model.
TEST(LmdbStore, ExpiryIndexStaysConsistentWithTheRecords) {
  TempDir dir;
  LmdbStore store(small_options(dir / "s.mdb"));
  std::mt19937 rng(42);
  std::map<std::string, std::pair<std::string, std::uint64_t>> model;
  TimePoint now = kT0;
  for (int round = 0; round < 20; ++round) {
    for (int op = 0; op < 200; ++op) {
      std::string id = id_of(static_cast<int>(rng() % 300));
      switch (rng() % 4) {
        case 0:
        case 1: {
          TimePoint exp = now + std::chrono::milliseconds(static_cast<int>(rng() % 20000) - 5000);
          std::string rec(rng() % 600, static_cast<char>('a' + rng() % 26));
          store.save(id, rec, exp);
          model[id] = {rec, ms(exp)};
          break;
        }
        case 2: EXPECT_EQ(store.remove(id), model.erase(id) == 1); break;
        default: EXPECT_EQ(store.load(id), model.count(id) ? std::optional(model[id].first) : std::nullopt);
      }
    }
    ASSERT_EQ(store.check_consistency(), "") << "round " << round;
    now += 3s;
    SweepResult r = store.sweep(now, 10s);
    EXPECT_TRUE(r.complete);
    std::uint64_t due = 0;
    for (auto it = model.begin(); it != model.end();) {
      if (it->second.second <= ms(now)) {
        it = model.erase(it);
        ++due;
      } else {
        ++it;
      }
    }
    EXPECT_EQ(r.removed, due);
    ASSERT_EQ(store.check_consistency(), "") << "round " << round;
    ASSERT_EQ(store.info().records, static_cast<std::int64_t>(model.size()));
    std::map<std::string, std::string> seen;
    store.for_each([&](std::string_view id, std::string_view rec) {
      seen.emplace(id, rec);
      return true;
    });
    ASSERT_EQ(seen.size(), model.size());
    for (const auto& [id, v] : model) EXPECT_EQ(seen[id], v.first) << id;
  }
}

TEST(LmdbStore, ConsistencyCheckFindsDamageInBothDirections) {
  TempDir dir;
  const auto path = dir / "s.mdb";
  {
    LmdbStore store(small_options(path));
    store.save("a", "1", kT0);
    store.save("b", "2", kT0);
    store.save("c", "3", kT0 + 1s);
    EXPECT_EQ(store.check_consistency(), "");
  }
  {
    RawEnv raw(path);
    raw.del(true, be64(ms(kT0)) + "a");           // record without index entry
    raw.put(true, be64(ms(kT0)) + "ghost", "");   // index entry without record
    raw.put(true, be64(ms(kT0 + 5s)) + "c", "");  // second entry, wrong expiry
  }
  LmdbStore store(small_options(path));
  std::string problems = store.check_consistency();
  EXPECT_NE(problems.find("record a has no index entry"), std::string::npos) << problems;
  EXPECT_NE(problems.find("/ghost has no record"), std::string::npos) << problems;
  EXPECT_NE(problems.find("/c but record expiry"), std::string::npos) << problems;

  // Sweep deletes only records whose stored expiry matches the entry: the
  // stray entry for "c" (expiry +5 s) must not delete "c" (expiry +1 s) early.
  SweepResult r = store.sweep(kT0 + 10s, 1s);
  EXPECT_TRUE(r.complete);
  EXPECT_EQ(r.removed, 2u);  // b and c, each through its own matching entry
  EXPECT_EQ(store.load("a"), "1");
  EXPECT_EQ(store.load("b"), std::nullopt);
}

TEST(LmdbStore, SweepNeverDeletesARecordWhoseExpiryMoved) {
  TempDir dir;
  const auto path = dir / "s.mdb";
  {
    LmdbStore store(small_options(path));
    store.save("s", "refreshed", kT0 + 1h);
  }
  {
    // An index entry that says "due" for a record whose stored expiry is later
    // (what a sweep racing a refresh would see without the re-check).
    RawEnv raw(path);
    raw.put(true, be64(ms(kT0)) + "s", "");
  }
  LmdbStore store(small_options(path));
  SweepResult r = store.sweep(kT0 + 1s, 1s);
  EXPECT_EQ(r.examined, 1u);
  EXPECT_EQ(r.removed, 0u);
  EXPECT_EQ(store.load("s"), "refreshed");
  EXPECT_EQ(store.check_consistency(), "");  // the stray entry was dropped
}

TEST(LmdbStore, RecordShorterThanItsPrefixIsDataLoss) {
  TempDir dir;
  const auto path = dir / "s.mdb";
  { LmdbStore store(small_options(path)); }
  {
    RawEnv raw(path);
    raw.put(false, "torn", "abc");
  }
  LmdbStore store(small_options(path));
  EXPECT_EQ(code_of([&] { store.load("torn"); }), errc::data_loss);
  int calls = 0;
  store.for_each([&](std::string_view id, std::string_view rec) {
    EXPECT_EQ(id, "torn");
    EXPECT_EQ(rec, "");
    ++calls;
    return true;
  });
  EXPECT_EQ(calls, 1);
  EXPECT_TRUE(store.remove("torn"));
  store.save("torn", "whole", kT0);
  EXPECT_EQ(store.load("torn"), "whole");
}

TEST(LmdbStore, NotAnLmdbFileIsDataLoss) {
  TempDir dir;
  {
    std::FILE* f = std::fopen((dir / "s.mdb").c_str(), "w");
    ASSERT_NE(f, nullptr);
    std::string junk(16384, 'j');
    std::fwrite(junk.data(), 1, junk.size(), f);
    std::fclose(f);
  }
  EXPECT_EQ(code_of([&] { LmdbStore store(small_options(dir / "s.mdb")); }), errc::data_loss);
}

TEST(LmdbStore, MissingDirectoryIsIoNamingThePath) {
  TempDir dir;
  std::string msg = message_of([&] { LmdbStore store(small_options(dir / "no" / "s.mdb")); });
  EXPECT_NE(msg.find("/no/s.mdb"), std::string::npos) << msg;
  EXPECT_EQ(code_of([&] { LmdbStore store(small_options(dir / "no" / "s.mdb")); }), errc::io);
}

TEST(LmdbStore, ForEachWalksEveryRecordInIdOrderAndStops) {
  TempDir dir;
  LmdbStore store(small_options(dir / "s.mdb"));
  std::vector<std::string> ids;
  for (int i = 0; i < 600; ++i) {  // more than two internal batches
    ids.push_back(id_of(i));
    store.save(ids.back(), "r" + std::to_string(i), kT0);
  }
  std::sort(ids.begin(), ids.end());
  std::vector<std::string> seen;
  store.for_each([&](std::string_view id, std::string_view rec) {
    seen.emplace_back(id);
    EXPECT_EQ(rec, "r" + std::string(id.substr(3)));
    return true;
  });
  EXPECT_EQ(seen, ids);
  int calls = 0;
  store.for_each([&](std::string_view, std::string_view) { return ++calls < 300; });
  EXPECT_EQ(calls, 300);
  // Saving from inside the callback works: no transaction is open there.
  store.for_each([&](std::string_view id, std::string_view) {
    store.save(id, "rewritten", kT0);
    return true;
  });
  EXPECT_EQ(store.load(id_of(7)), "rewritten");
}

TEST(LmdbStore, InfoReportsRecordsBytesAndPath) {
  TempDir dir;
  LmdbStore store(small_options(dir / "s.mdb"));
  for (int i = 0; i < 50; ++i) store.save(id_of(i), std::string(1000, 'x'), kT0);
  StoreInfo info = store.info();
  EXPECT_EQ(info.type, "lmdb");
  EXPECT_EQ(info.location, (dir / "s.mdb").string());
  EXPECT_EQ(info.records, 50);
  EXPECT_GE(info.bytes, 50 * 1000);
  EXPECT_LE(info.bytes, static_cast<std::int64_t>(std::filesystem::file_size(dir / "s.mdb")));
  EXPECT_EQ(info.bytes % sysconf(_SC_PAGESIZE), 0);
}

TEST(LmdbStore, RefusesASecondHandleInOneProcess) {
  TempDir dir;
  LmdbStore store(small_options(dir / "s.mdb"));
  EXPECT_EQ(code_of([&] { LmdbStore again(small_options(dir / "s.mdb")); }), errc::failed_precondition);
  EXPECT_EQ(code_of([&] { LmdbStore again(small_options(dir / "." / "s.mdb")); }), errc::failed_precondition);
  store.save("a", "still fine", kT0);
  EXPECT_EQ(store.load("a"), "still fine");
}

TEST(LmdbStore, DurabilitySettingsMapToLmdbFlags) {
  TempDir dir;
  const std::pair<LmdbDurability, unsigned> cases[] = {{LmdbDurability::durable, 0},
                                                       {LmdbDurability::nometasync, MDB_NOMETASYNC},
                                                       {LmdbDurability::nosync, MDB_NOSYNC}};
  for (auto [durability, expected] : cases) {
    LmdbStoreOptions o = small_options(dir / "s.mdb");
    o.durability = durability;
    LmdbStore store(o);
    EXPECT_EQ(store.lmdb_flags() & (MDB_NOSYNC | MDB_NOMETASYNC | MDB_MAPASYNC | MDB_WRITEMAP), expected);
    EXPECT_NE(store.lmdb_flags() & MDB_NOTLS, 0u);
    EXPECT_NE(store.lmdb_flags() & MDB_NOSUBDIR, 0u);
    store.save("a", "b", kT0);
  }
}

// --- map full -------------------------------------------------------------

// Saves until one fails; returns how many succeeded. `code` gets the error.
int fill(LmdbStore& store, const std::string& prefix, const std::string& rec, errc& code, std::string& msg) {
  for (int i = 0; i < 100000; ++i) {
    try {
      store.save(prefix + std::to_string(i), rec, kT0 + std::chrono::seconds(i));
    } catch (const Error& e) {
      code = e.code_value();
      msg = e.what();
      return i;
    }
  }
  return -1;
}

TEST(LmdbStore, MapGrowsByDoublingThenSaveFailsWithTheOldRecordIntact) {
  TempDir dir;
  LmdbStoreOptions o = small_options(dir / "s.mdb");
  o.map_size_bytes = 256 << 10;
  o.max_map_size_bytes = 1 << 20;
  LmdbStore store(o);
  EXPECT_EQ(store.map_size(), 256u << 10);
  EXPECT_EQ(store.deletion_reserve_bytes(), 1u << 20);
  store.save("first", "the first record", kT0);

  const std::string rec(2000, 'r');
  errc code{};
  std::string msg;
  const int saved = fill(store, "id-", rec, code, msg);
  EXPECT_EQ(code, errc::resource_exhausted) << msg;
  EXPECT_NE(msg.find("store.max_map_size_mb (1 MB)"), std::string::npos) << msg;
  EXPECT_EQ(store.map_growths(), 2u);  // 256 KiB -> 512 KiB -> 1 MiB
  EXPECT_EQ(store.map_size(), 1u << 20);
  EXPECT_GT(saved, 128);                              // more than 256 KiB holds: the grown map was used
  EXPECT_EQ(store.load(id_of(saved)), std::nullopt);  // the failed save left nothing

  // Overwriting an existing record with one that does not fit fails and keeps
  // the old bytes; reads still work.
  EXPECT_EQ(code_of([&] { store.save("first", std::string(200000, 'z'), kT0); }), errc::resource_exhausted);
  EXPECT_EQ(store.load("first"), "the first record");
  EXPECT_EQ(store.load(id_of(0)), rec);
  EXPECT_EQ(store.check_consistency(), "");

  // Deletions work at the cap (growing into the deletion reserve if they
  // must), and the next save after them works.
  EXPECT_TRUE(store.remove(id_of(0)));
  EXPECT_TRUE(store.remove(id_of(1)));
  store.save(id_of(saved), rec, kT0);
  EXPECT_EQ(store.load(id_of(saved)), rec);
  // Budgets no stall can exhaust: each sweep must finish (more than one batch at the cap).
  SweepResult r = store.sweep(kT0 + 100s, 60s);  // ids 2..100, "first" and id_of(saved)
  EXPECT_EQ(r.removed, 101u);
  EXPECT_TRUE(r.complete);
  EXPECT_LE(store.map_size(), (1u << 20) + store.deletion_reserve_bytes());
  store.save("keeper", rec, kT0 + 1'000'000s);
  EXPECT_EQ(store.check_consistency(), "");

  // Filling again stops at the cap's worth of live data even when the map
  // has grown into the reserve: saves never take the reserve.
  const int again = fill(store, "more-", rec, code, msg);
  EXPECT_EQ(code, errc::resource_exhausted) << msg;
  EXPECT_GT(again, 50);
  EXPECT_LE(store.map_size(), (1u << 20) + store.deletion_reserve_bytes());
  EXPECT_LE(store.info().records * 2000, 1 << 20);
  // ... so the reserve is still there for deletions.
  r = store.sweep(kT0 + 100000s, 60s);
  EXPECT_TRUE(r.complete);
  EXPECT_EQ(store.info().records, 1);
  EXPECT_EQ(store.load("keeper"), rec);
  EXPECT_EQ(store.check_consistency(), "");
}

TEST(LmdbStore, GrownMapIsKeptWhenReopened) {
  TempDir dir;
  LmdbStoreOptions o = small_options(dir / "s.mdb");
  o.map_size_bytes = 256 << 10;
  o.max_map_size_bytes = 4 << 20;
  {
    LmdbStore store(o);
    for (int i = 0; i < 400; ++i) store.save(id_of(i), std::string(2000, 'r'), kT0);
    EXPECT_GE(store.map_growths(), 2u);
  }
  LmdbStore store(o);
  EXPECT_GE(store.map_size(), 1u << 20);
  EXPECT_EQ(store.info().records, 400);
}

SESSIONKIT_TEST_HELPER(lmdb_fill) {
  // args: path, records, record bytes. Grows the shared map past the size
  // another process has mapped.
  LmdbStoreOptions o = small_options(args.at(0));
  o.map_size_bytes = 256 << 10;
  o.max_map_size_bytes = 16 << 20;
  LmdbStore store(o);
  const int n = std::stoi(args.at(1));
  const std::string rec(std::stoul(args.at(2)), 'f');
  for (int i = 0; i < n; ++i) store.save("filled-" + std::to_string(i), rec, kT0);
  return store.map_growths() > 0 ? 0 : 3;
}

TEST(LmdbStore, AdoptsAMapGrownByAnotherProcess) {
  TempDir dir;
  LmdbStoreOptions o = small_options(dir / "s.mdb");
  o.map_size_bytes = 256 << 10;
  LmdbStore store(o);
  store.save("mine", "before", kT0);
  pid_t pid = sessionkit::testing::spawn_helper("lmdb_fill", {(dir / "s.mdb").string(), "1000", "2000"});
  ASSERT_EQ(sessionkit::testing::wait_child(pid), 0);
  // The file now extends past this handle's map: the next transaction sees
  // MDB_MAP_RESIZED and adopts the size the other process wrote.
  EXPECT_EQ(store.load("filled-999"), std::string(2000, 'f'));
  EXPECT_GE(store.map_size(), 2u << 20);
  EXPECT_EQ(store.map_growths(), 0u);  // adopted, not grown by this process
  store.save("mine", "after", kT0);
  EXPECT_EQ(store.load("mine"), "after");
  EXPECT_EQ(store.info().records, 1001);
}

TEST(LmdbStore, ThreadsShareOneHandleWhileTheMapGrows) {
  TempDir dir;
  LmdbStoreOptions o = small_options(dir / "s.mdb");
  o.map_size_bytes = 128 << 10;
  o.max_map_size_bytes = 64 << 20;
  LmdbStore store(o);
  constexpr int kThreads = 4;
  constexpr int kPerThread = 300;
  std::vector<std::thread> threads;
  std::atomic<int> failures{0};
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      try {
        for (int i = 0; i < kPerThread; ++i) {
          // One record that stays, one that is due at once for the sweeps.
          const std::string id = "t" + std::to_string(t) + "-" + std::to_string(i);
          const std::string rec(1000 + i, static_cast<char>('a' + t));
          store.save(id, rec, kT0 + 1h);
          store.save("dead-" + id, rec, kT0 - 1s);
          if (store.load(id) != rec) ++failures;
          if (i % 50 == 0) store.sweep(kT0, 1ms);
        }
      } catch (const std::exception& e) {
        ADD_FAILURE() << e.what();
        ++failures;
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(failures.load(), 0);
  EXPECT_GE(store.map_growths(), 3u);
  EXPECT_TRUE(store.sweep(kT0, 10s).complete);
  EXPECT_EQ(store.info().records, kThreads * kPerThread);
  EXPECT_EQ(store.check_consistency(), "");
}

// --- stale readers -------------------------------------------------------

SESSIONKIT_TEST_HELPER(lmdb_hold_reader) {
  // args: path, fd to report on. Opens the environment with raw LMDB, begins
  // a read transaction, says so, and sleeps until killed.
  MDB_env* env = nullptr;
  if (mdb_env_create(&env) != 0) return 2;
  if (mdb_env_open(env, args.at(0).c_str(), MDB_NOSUBDIR | MDB_NOTLS | MDB_RDONLY, 0600) != 0) return 3;
  MDB_txn* txn = nullptr;
  int rc = mdb_txn_begin(env, nullptr, MDB_RDONLY, &txn);
  if (rc != 0) return 4;
  const int fd = std::stoi(args.at(1));
  char ok = 'r';
  if (write(fd, &ok, 1) != 1) return 5;
  for (;;) pause();
}

TEST(LmdbStore, ReadersKilledWithSigkillDoNotBlockTheStore) {
  TempDir dir;
  LmdbStoreOptions o = small_options(dir / "s.mdb");
  o.max_readers = 4;
  LmdbStore store(o);
  store.save("a", "1", kT0);

  int fds[2];
  ASSERT_EQ(pipe(fds), 0);  // inherited by the helpers across exec
  std::vector<pid_t> holders;
  for (int i = 0; i < 4; ++i) {
    holders.push_back(sessionkit::testing::spawn_helper("lmdb_hold_reader",
                                                        {(dir / "s.mdb").string(), std::to_string(fds[1])}));
  }
  close(fds[1]);
  for (int i = 0; i < 4; ++i) {
    char c = 0;
    ASSERT_EQ(read(fds[0], &c, 1), 1) << "holder " << i << " did not start";
  }
  close(fds[0]);

  // Four live readers fill the table: a clear "retry later", not a hang.
  EXPECT_EQ(code_of([&] { store.load("a"); }), errc::unavailable);
  store.save("b", "writers need no reader slot", kT0);

  for (pid_t pid : holders) kill(pid, SIGKILL);
  for (pid_t pid : holders) EXPECT_EQ(sessionkit::testing::wait_child(pid), 128 + SIGKILL);

  // Their slots are still taken; the store clears them and goes on.
  EXPECT_EQ(store.load("a"), "1");
  EXPECT_EQ(store.stale_readers_cleared(), 4u);
  for (int i = 0; i < 20; ++i) {
    store.save(id_of(i), "x", kT0);
    EXPECT_EQ(store.load(id_of(i)), "x");
  }
  EXPECT_EQ(store.check_consistency(), "");
}

SESSIONKIT_TEST_HELPER(lmdb_load_once) {
  // args: path, id, expected record. A fresh process opening the store.
  LmdbStoreOptions o = small_options(args.at(0));
  o.max_readers = 4;
  LmdbStore store(o);
  return store.load(args.at(1)) == args.at(2) ? 0 : 1;
}

TEST(LmdbStore, StaleReadersAreClearedWhenAProcessOpens) {
  TempDir dir;
  LmdbStoreOptions o = small_options(dir / "s.mdb");
  o.max_readers = 4;
  LmdbStore store(o);
  store.save("a", "1", kT0);
  int fds[2];
  ASSERT_EQ(pipe(fds), 0);
  std::vector<pid_t> holders;
  for (int i = 0; i < 4; ++i) {
    holders.push_back(sessionkit::testing::spawn_helper("lmdb_hold_reader",
                                                        {(dir / "s.mdb").string(), std::to_string(fds[1])}));
  }
  close(fds[1]);
  for (int i = 0; i < 4; ++i) {
    char c = 0;
    ASSERT_EQ(read(fds[0], &c, 1), 1);
  }
  close(fds[0]);
  for (pid_t pid : holders) kill(pid, SIGKILL);
  for (pid_t pid : holders) sessionkit::testing::wait_child(pid);
  pid_t pid = sessionkit::testing::spawn_helper("lmdb_load_once", {(dir / "s.mdb").string(), "a", "1"});
  EXPECT_EQ(sessionkit::testing::wait_child(pid), 0);
}

// --- fork ----------------------------------------------------------------

// A prefork child may instead open the file afresh (as sessionkit-bench's
// workers and mod_sessionkit's children do); a second handle in one process
// stays refused.
TEST(LmdbStore, ChildMayOpenTheParentsFileAfresh) {
  TempDir dir;
  LmdbStore store(small_options(dir / "s.mdb"));
  store.save("parent", "p", kT0);
  pid_t pid = sessionkit::testing::fork_child([&] {
    LmdbStore own(small_options(dir / "s.mdb"));
    if (own.load("parent") != "p") return 10;
    own.save("child", "c", kT0);
    try {
      LmdbStore second(small_options(dir / "s.mdb"));
      return 11;
    } catch (const Error& e) {
      if (e.code_value() != errc::failed_precondition) return 12;
    }
    return 0;
  });
  EXPECT_EQ(sessionkit::testing::wait_child(pid), 0);
  EXPECT_EQ(store.load("child"), "c");
}

TEST(LmdbStore, ChildMustCallAfterForkAndThenWorks) {
  TempDir dir;
  LmdbStore store(small_options(dir / "s.mdb"));
  store.save("parent", "p", kT0);

  pid_t pid = sessionkit::testing::fork_child([&] {
    try {
      store.load("parent");
      return 10;  // used across fork without complaint
    } catch (const Error& e) {
      if (e.code_value() != errc::failed_precondition) return 11;
      if (std::string(e.what()).find("after_fork") == std::string::npos) return 12;
    }
    try {
      store.save("x", "y", kT0);
      return 13;
    } catch (const Error& e) {
      if (e.code_value() != errc::failed_precondition) return 14;
    }
    store.after_fork();
    if (store.load("parent") != "p") return 15;
    store.save("child", "c", kT0);
    store.after_fork();  // a second call in the same process is a no-op
    return store.load("child") == "c" ? 0 : 16;
  });
  EXPECT_EQ(sessionkit::testing::wait_child(pid), 0);
  // The parent's handle is untouched by what the child did.
  EXPECT_EQ(store.load("child"), "c");
  store.save("parent", "p2", kT0);
  EXPECT_EQ(store.load("parent"), "p2");
  store.after_fork();  // no-op in the opener
  EXPECT_EQ(store.check_consistency(), "");
}

TEST(LmdbStore, ForkedChildrenWriteConcurrentlyWithTheParent) {
  TempDir dir;
  LmdbStore store(small_options(dir / "s.mdb"));
  std::vector<pid_t> children;
  for (int c = 0; c < 4; ++c) {
    children.push_back(sessionkit::testing::fork_child([&, c] {
      store.after_fork();
      for (int i = 0; i < 200; ++i) {
        std::string id = "c" + std::to_string(c) + "-" + std::to_string(i);
        store.save(id, id, kT0 + std::chrono::seconds(i));
        if (store.load(id) != id) return 1;
      }
      return 0;
    }));
  }
  for (int i = 0; i < 200; ++i) store.save("p-" + std::to_string(i), "p", kT0);
  for (pid_t pid : children) EXPECT_EQ(sessionkit::testing::wait_child(pid), 0);
  EXPECT_EQ(store.info().records, 1000);
  EXPECT_EQ(store.check_consistency(), "");
}

// --- configuration ---------------------------------------------------------

LmdbStore& as_lmdb(Store& s) { return dynamic_cast<LmdbStore&>(s); }

TEST(LmdbStoreConfig, DefaultsAndPathResolution) {
  TempDir dir;
  StoreType t = Registry::global().store("lmdb");
  EXPECT_TRUE(t.shared_across_processes);
  auto store = t.create(nlohmann::json{{"type", "lmdb"}}, dir.path());
  const LmdbStoreOptions& o = as_lmdb(*store).options();
  EXPECT_EQ(o.path, dir / "sessions.mdb");
  EXPECT_EQ(o.durability, LmdbDurability::durable);
  EXPECT_EQ(o.map_size_bytes, 64u << 20);
  EXPECT_EQ(o.max_map_size_bytes, 4096ull << 20);
  EXPECT_EQ(o.max_readers, 510u);
  EXPECT_TRUE(std::filesystem::exists(dir / "sessions.mdb"));
  EXPECT_EQ(store->info().location, (dir / "sessions.mdb").string());
}

TEST(LmdbStoreConfig, ReadsEveryKey) {
  TempDir dir;
  auto store = Registry::global().store("lmdb").create(nlohmann::json{{"type", "lmdb"},
                                                                      {"path", (dir / "x.mdb").string()},
                                                                      {"durability", "nometasync"},
                                                                      {"map_size_mb", 2},
                                                                      {"max_map_size_mb", 8},
                                                                      {"max_readers", 200}},
                                                       "/elsewhere");
  const LmdbStoreOptions& o = as_lmdb(*store).options();
  EXPECT_EQ(o.path, dir / "x.mdb");
  EXPECT_EQ(o.durability, LmdbDurability::nometasync);
  EXPECT_EQ(o.map_size_bytes, 2u << 20);
  EXPECT_EQ(o.max_map_size_bytes, 8u << 20);
  EXPECT_EQ(o.max_readers, 200u);
  auto nosync = Registry::global().store("lmdb").create(
      nlohmann::json{{"type", "lmdb"}, {"path", "y.mdb"}, {"durability", "nosync"}, {"map_size_mb", 8192}},
      dir.path());
  EXPECT_EQ(as_lmdb(*nosync).options().durability, LmdbDurability::nosync);
  // A map larger than the default cap raises the cap with it.
  EXPECT_EQ(as_lmdb(*nosync).options().max_map_size_bytes, 8192ull << 20);
}

TEST(LmdbStoreConfig, RejectsBadSectionsNamingTheKey) {
  TempDir dir;
  StoreType t = Registry::global().store("lmdb");
  const std::vector<std::pair<nlohmann::json, std::string>> bad = {
      {{{"type", "lmdb"}, {"colour", "red"}}, "store.colour"},
      {{{"type", "lmdb"}, {"durability", "fast"}}, "store.durability"},
      {{{"type", "lmdb"}, {"durability", true}}, "store.durability"},
      {{{"type", "lmdb"}, {"path", ""}}, "store.path"},
      {{{"type", "lmdb"}, {"path", 7}}, "store.path"},
      {{{"type", "lmdb"}, {"map_size_mb", 0}}, "store.map_size_mb"},
      {{{"type", "lmdb"}, {"map_size_mb", -1}}, "store.map_size_mb"},
      {{{"type", "lmdb"}, {"map_size_mb", 1.5}}, "store.map_size_mb"},
      {{{"type", "lmdb"}, {"map_size_mb", "64"}}, "store.map_size_mb"},
      {{{"type", "lmdb"}, {"map_size_mb", (1ull << 20) + 1}}, "store.map_size_mb"},
      {{{"type", "lmdb"}, {"map_size_mb", 128}, {"max_map_size_mb", 64}}, "store.max_map_size_mb"},
      {{{"type", "lmdb"}, {"max_readers", 0}}, "store.max_readers"},
      {{{"type", "lmdb"}, {"max_readers", 70000}}, "store.max_readers"},
  };
  for (const auto& [section, key] : bad) {
    try {
      t.validate(section, dir.path());
      ADD_FAILURE() << "accepted " << section.dump();
    } catch (const Error& e) {
      EXPECT_EQ(e.code_value(), errc::bad_config) << section.dump();
      EXPECT_EQ(std::string(e.what()).rfind(key + ":", 0), 0u) << e.what();
    }
    EXPECT_EQ(code_of([&] { t.create(section, dir.path()); }), errc::bad_config) << section.dump();
  }
  // validate() has no side effects: no file was created.
  t.validate(nlohmann::json{{"type", "lmdb"}}, dir.path());
  EXPECT_FALSE(std::filesystem::exists(dir / "sessions.mdb"));
}

}  // namespace
}  // namespace sessionkit

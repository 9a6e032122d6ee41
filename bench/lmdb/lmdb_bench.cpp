// The LMDB store: a whole session cycle (open from a cookie, modify, save,
// unlock) through SessionManager, the store alone (load + save with the
// expiry index), and the baselines in the same run: raw LMDB get + put of the
// same bytes with the same environment flags, plain and with the store's
// expiry index done by hand. Every durability setting; the session cycle with
// in-process (thread) and cross-process (shm) locks.
//
//   build/bench/lmdb/sessionkit_lmdb_bench --benchmark_min_time=0.5
//   ... --benchmark_filter=nosync     (the fast setting only)
//
// Files go to $TMPDIR (or /tmp); the fsync cost of "durable" depends entirely
// on that filesystem's device.
#include <benchmark/benchmark.h>
#include <lmdb.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <stdexcept>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "backends/lmdb/lmdb_store.hpp"
#include "sessionkit/sessionkit.hpp"

namespace sessionkit {
namespace {

constexpr int kSessions = 1000;
constexpr std::size_t kPadBytes = 200;  // with the header and "n": a ~300-byte record

const char* const kDurabilities[] = {"durable", "nometasync", "nosync"};

class BenchDir {
 public:
  BenchDir() {
    const char* base = std::getenv("TMPDIR");
    std::string tmpl =
        std::string(base != nullptr && *base != '\0' ? base : "/tmp") + "/sessionkit-bench-XXXXXX";
    if (mkdtemp(tmpl.data()) == nullptr) throw std::runtime_error("mkdtemp failed");
    path_ = tmpl;
  }
  ~BenchDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
};

struct Sessions {
  std::vector<std::string> cookies;  // "sid=<id>"
  std::vector<std::string> ids;
  std::string sample_record;  // one encoded record, for the raw baseline
};

Sessions create_sessions(SessionManager& manager) {
  Sessions out;
  for (int i = 0; i < kSessions; ++i) {
    Session s = manager.open("");
    s.data() = {{"n", 0}, {"pad", std::string(kPadBytes, 'p')}};
    s.save();
    std::string sc = *manager.set_cookie(s);
    out.cookies.push_back(sc.substr(0, sc.find(';')));
    out.ids.push_back(s.id());
  }
  out.sample_record = manager.store().load(out.ids.front()).value();
  return out;
}

// open + modify + save + unlock on existing sessions, round robin.
void session_cycle(benchmark::State& state, std::string durability, std::string locks) {
  BenchDir dir;
  const std::string shm_name = "lmdb-bench-" + std::to_string(getpid());
  nlohmann::json locks_section = {{"type", locks}};
  if (locks == "shm") locks_section["name"] = shm_name;
  Config config = Config::from_json(
      {{"store", {{"type", "lmdb"}, {"path", (dir.path() / "s.mdb").string()}, {"durability", durability}}},
       {"locks", locks_section},
       {"gc", {{"every_n_requests", 0}}}});
  {
    SessionManager manager(config);
    Sessions sessions = create_sessions(manager);
    std::size_t i = 0;
    for (auto _ : state) {
      Session s = manager.open(sessions.cookies[i++ % kSessions]);
      auto& n = s.data()["n"];
      n = n.get<std::int64_t>() + 1;
      s.save();
      s.unlock();
    }
    state.SetItemsProcessed(state.iterations());
    state.counters["record_bytes"] = static_cast<double>(sessions.sample_record.size());
  }
  if (locks == "shm") shm_unlink(("/sessionkit-" + shm_name).c_str());
}

// The store alone: load + save of the same bytes, the expiry moving on each
// save as a session's does (so the index entry moves too).
void store_load_save(benchmark::State& state, std::string durability) {
  BenchDir dir;
  LmdbStoreOptions o;
  o.path = dir.path() / "s.mdb";
  o.durability = durability == "nosync"       ? LmdbDurability::nosync
                 : durability == "nometasync" ? LmdbDurability::nometasync
                                              : LmdbDurability::durable;
  LmdbStore store(o);
  const std::string record(300, 'r');
  const auto expiry = std::chrono::system_clock::now() + std::chrono::hours(1);
  std::vector<std::string> ids;
  for (int i = 0; i < kSessions; ++i) {
    ids.push_back("session-id-" + std::string(32, static_cast<char>('a' + i % 26)) + std::to_string(i));
    store.save(ids.back(), record, expiry);
  }
  std::size_t i = 0;
  for (auto _ : state) {
    const std::string& id = ids[i++ % kSessions];
    std::optional<std::string> bytes = store.load(id);
    (*bytes)[0] ^= 1;
    store.save(id, *bytes, expiry + std::chrono::milliseconds(i));
  }
  state.SetItemsProcessed(state.iterations());
}

void check(int rc, const char* what) {
  if (rc != 0) throw std::runtime_error(std::string(what) + ": " + mdb_strerror(rc));
}

std::string be64(std::uint64_t v) {
  std::string s(8, '\0');
  for (int i = 7; i >= 0; --i, v >>= 8) s[static_cast<std::size_t>(i)] = static_cast<char>(v & 0xff);
  return s;
}

// Baselines: raw LMDB, one read transaction (get, copy out) and one write
// transaction per cycle, the same environment flags as the store.
//   indexed = false: put into the unnamed database, nothing else (the
//                    cheapest possible read-modify-write of these bytes);
//   indexed = true:  the store's layout done by hand (two named databases,
//                    get the old value, move the expiry entry, put), so the
//                    difference to BM_StoreLoadSave is the store's own cost.
void raw_get_put(benchmark::State& state, std::string durability, bool indexed) {
  BenchDir dir;
  // The same record bytes a session cycle writes.
  Sessions sessions;
  {
    Config config = Config::from_json(
        {{"store",
          {{"type", "lmdb"}, {"path", (dir.path() / "sample.mdb").string()}, {"durability", "nosync"}}},
         {"locks", {{"type", "thread"}}},
         {"gc", {{"every_n_requests", 0}}}});
    SessionManager manager(config);
    sessions = create_sessions(manager);
  }
  MDB_env* env = nullptr;
  check(mdb_env_create(&env), "env_create");
  check(mdb_env_set_mapsize(env, std::size_t{64} << 20), "set_mapsize");
  check(mdb_env_set_maxdbs(env, 2), "set_maxdbs");
  unsigned flags = MDB_NOSUBDIR | MDB_NOTLS;
  if (durability == "nometasync") flags |= MDB_NOMETASYNC;
  if (durability == "nosync") flags |= MDB_NOSYNC;
  check(mdb_env_open(env, (dir.path() / "raw.mdb").c_str(), flags, 0600), "env_open");
  MDB_dbi dbi = 0;
  MDB_dbi index = 0;
  std::uint64_t expiry = 1'700'000'000'000;
  {
    MDB_txn* txn = nullptr;
    check(mdb_txn_begin(env, nullptr, 0, &txn), "txn_begin");
    check(mdb_dbi_open(txn, indexed ? "records" : nullptr, MDB_CREATE, &dbi), "dbi_open");
    if (indexed) check(mdb_dbi_open(txn, "expiry", MDB_CREATE, &index), "dbi_open");
    for (const std::string& id : sessions.ids) {
      std::string value = indexed ? be64(expiry) + sessions.sample_record : sessions.sample_record;
      MDB_val k{id.size(), const_cast<char*>(id.data())};
      MDB_val v{value.size(), value.data()};
      check(mdb_put(txn, dbi, &k, &v, 0), "put");
      if (indexed) {
        std::string ik = be64(expiry) + id;
        MDB_val ikv{ik.size(), ik.data()};
        MDB_val empty{0, &expiry};
        check(mdb_put(txn, index, &ikv, &empty, 0), "put");
      }
    }
    check(mdb_txn_commit(txn), "commit");
  }
  std::size_t i = 0;
  std::string bytes;
  for (auto _ : state) {
    const std::string& id = sessions.ids[i++ % kSessions];
    MDB_val k{id.size(), const_cast<char*>(id.data())};
    MDB_val v;
    MDB_txn* txn = nullptr;
    check(mdb_txn_begin(env, nullptr, MDB_RDONLY, &txn), "txn_begin");
    check(mdb_get(txn, dbi, &k, &v), "get");
    bytes.assign(static_cast<const char*>(v.mv_data), v.mv_size);
    mdb_txn_abort(txn);
    bytes[bytes.size() - 1] ^= 1;
    check(mdb_txn_begin(env, nullptr, 0, &txn), "txn_begin");
    if (indexed) {
      MDB_val old;
      check(mdb_get(txn, dbi, &k, &old), "get");
      std::string old_key = std::string(static_cast<const char*>(old.mv_data), 8) + id;
      MDB_val okv{old_key.size(), old_key.data()};
      check(mdb_del(txn, index, &okv, nullptr), "del");
      const std::string new_expiry = be64(++expiry);
      bytes.replace(0, 8, new_expiry);
      std::string new_key = new_expiry + id;
      MDB_val nkv{new_key.size(), new_key.data()};
      MDB_val empty{0, &expiry};
      check(mdb_put(txn, index, &nkv, &empty, 0), "put");
    }
    MDB_val nv{bytes.size(), bytes.data()};
    check(mdb_put(txn, dbi, &k, &nv, 0), "put");
    check(mdb_txn_commit(txn), "commit");
  }
  mdb_env_close(env);
  state.SetItemsProcessed(state.iterations());
  state.counters["record_bytes"] = static_cast<double>(sessions.sample_record.size());
}

}  // namespace
}  // namespace sessionkit

int main(int argc, char** argv) {
  using namespace sessionkit;
  for (std::string d : kDurabilities) {
    benchmark::RegisterBenchmark(("BM_Baseline_RawLmdbGetPut/" + d).c_str(), raw_get_put, d, false)
        ->UseRealTime();
    benchmark::RegisterBenchmark(("BM_Baseline_RawLmdbGetPutIndexed/" + d).c_str(), raw_get_put, d, true)
        ->UseRealTime();
    benchmark::RegisterBenchmark(("BM_StoreLoadSave/" + d).c_str(), store_load_save, d)->UseRealTime();
    for (std::string locks : {"thread", "shm"}) {
      benchmark::RegisterBenchmark(("BM_SessionCycle/" + d + "/" + locks).c_str(), session_cycle, d, locks)
          ->UseRealTime();
    }
  }
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}

// The file store against the LMDB store and the memory store, in the same run:
// whole session cycles through SessionManager (open + modify + save + unlock),
// raw store load+save, and sweep throughput.
//
//   build/bench/file/sessionkit_file_bench --benchmark_min_time=0.5
//
// Data lives under $TMPDIR (default /tmp): the figures are those of that
// filesystem. Durable variants fsync; on a VM disk they measure the fsync.
// Rates are per wall-clock second (UseRealTime).
#include <benchmark/benchmark.h>
#include <stdlib.h>

#include <chrono>
#include <filesystem>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "backends/file/file_store.hpp"
#include "session_id.hpp"
#include "sessionkit/registry.hpp"
#include "sessionkit/sessionkit.hpp"

namespace sessionkit {
namespace {

namespace fs = std::filesystem;

class BenchDir {
 public:
  BenchDir() {
    const char* base = std::getenv("TMPDIR");
    std::string tmpl =
        std::string(base != nullptr && *base != '\0' ? base : "/tmp") + "/sessionkit-bench-XXXXXX";
    if (::mkdtemp(tmpl.data()) == nullptr) throw std::runtime_error("mkdtemp failed");
    path_ = tmpl;
  }
  ~BenchDir() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  const fs::path& path() const { return path_; }

 private:
  fs::path path_;
};

// The "store" section of each contender; nullopt when not in this build.
std::optional<nlohmann::json> store_section(const std::string& kind, const fs::path& dir) {
  if (kind == "memory") return nlohmann::json{{"type", "memory"}};
  if (kind == "file-durable") {
    return nlohmann::json{{"type", "file"}, {"path", (dir / "files").string()}, {"durability", "durable"}};
  }
  if (kind == "file-nosync") {
    return nlohmann::json{{"type", "file"}, {"path", (dir / "files").string()}, {"durability", "nosync"}};
  }
  const auto types = Registry::global().store_types();
  if (std::find(types.begin(), types.end(), "lmdb") == types.end()) return std::nullopt;
  if (kind == "lmdb-durable") {
    return nlohmann::json{{"type", "lmdb"}, {"path", (dir / "s.mdb").string()}, {"durability", "durable"}};
  }
  if (kind == "lmdb-nosync") {
    return nlohmann::json{{"type", "lmdb"}, {"path", (dir / "s.mdb").string()}, {"durability", "nosync"}};
  }
  return std::nullopt;
}

const std::vector<std::string> kContenders = {"memory", "lmdb-durable", "lmdb-nosync", "file-durable",
                                              "file-nosync"};

// A full request cycle on one of 1000 sessions: open from a cookie, modify,
// save, unlock. Argument: bytes of padding in the session data.
void session_cycle(benchmark::State& state, const std::string& kind) {
  BenchDir dir;
  std::optional<nlohmann::json> section = store_section(kind, dir.path());
  if (!section) {
    state.SkipWithError("store type not in this build");
    return;
  }
  SessionManager manager(Config::from_json({{"store", *section}, {"gc", {{"every_n_requests", 0}}}}));
  const int sessions = 1000;
  const auto pad = static_cast<std::size_t>(state.range(0));
  std::vector<std::string> cookies;
  for (int i = 0; i < sessions; ++i) {
    Session s = manager.open("");
    s.data() = {{"n", 0}, {"pad", std::string(pad, 'p')}};
    s.save();
    std::string sc = *manager.set_cookie(s);
    cookies.push_back(sc.substr(0, sc.find(';')));
  }
  std::size_t i = 0;
  for (auto _ : state) {
    Session s = manager.open(cookies[i++ % sessions]);
    auto& n = s.data()["n"];
    n = n.get<std::int64_t>() + 1;
    s.save();
    s.unlock();
  }
  state.SetItemsProcessed(state.iterations());
  state.SetLabel(kind);
}

// The store alone: load + save of the same bytes, no locks, no codec.
void store_load_save(benchmark::State& state, const std::string& kind) {
  BenchDir dir;
  std::optional<nlohmann::json> section = store_section(kind, dir.path());
  if (!section) {
    state.SkipWithError("store type not in this build");
    return;
  }
  std::unique_ptr<Store> store =
      Registry::global().store((*section)["type"].get<std::string>()).create(*section, dir.path());
  const int sessions = 1000;
  const std::string record(static_cast<std::size_t>(state.range(0)) + 60, 'r');
  const auto expiry = std::chrono::system_clock::now() + std::chrono::hours(1);
  std::vector<std::string> ids;
  for (int i = 0; i < sessions; ++i) {
    ids.push_back(detail::generate_session_id());
    store->save(ids.back(), record, expiry);
  }
  std::size_t i = 0;
  for (auto _ : state) {
    const std::string& id = ids[i++ % sessions];
    std::optional<std::string> bytes = store->load(id);
    store->save(id, *bytes, expiry);
  }
  state.SetItemsProcessed(state.iterations());
  state.SetLabel(kind);
}

// A full sweep lap over N live records: what GC costs when nothing expired
// (one fstatat per record, thanks to mtime = expiry).
void BM_FileSweepLapAllLive(benchmark::State& state) {
  BenchDir dir;
  FileStoreOptions o;
  o.path = dir.path() / "files";
  o.durability = FileDurability::nosync;
  FileStore store(o);
  const auto n = state.range(0);
  const auto expiry = std::chrono::system_clock::now() + std::chrono::hours(1);
  for (std::int64_t i = 0; i < n; ++i)
    store.save(detail::generate_session_id(), std::string(300, 'r'), expiry);
  std::uint64_t examined = 0;
  for (auto _ : state) {
    SweepResult r;
    do {
      r = store.sweep(std::chrono::system_clock::now(), std::chrono::milliseconds(1000));
      examined += r.examined;
    } while (!r.complete);
  }
  state.SetItemsProcessed(static_cast<std::int64_t>(examined));
}
BENCHMARK(BM_FileSweepLapAllLive)->Arg(10'000)->UseRealTime()->Unit(benchmark::kMillisecond);

// Deleting expired records: 2000 per iteration (created with the timer off).
void BM_FileSweepExpired(benchmark::State& state) {
  BenchDir dir;
  FileStoreOptions o;
  o.path = dir.path() / "files";
  o.durability = FileDurability::nosync;
  FileStore store(o);
  const auto past = std::chrono::system_clock::now() - std::chrono::hours(1);
  std::uint64_t removed = 0;
  for (auto _ : state) {
    state.PauseTiming();
    for (int i = 0; i < 2000; ++i) store.save(detail::generate_session_id(), std::string(300, 'r'), past);
    state.ResumeTiming();
    SweepResult r;
    do {
      r = store.sweep(std::chrono::system_clock::now(), std::chrono::milliseconds(1000));
      removed += r.removed;
    } while (!r.complete);
  }
  state.SetItemsProcessed(static_cast<std::int64_t>(removed));
}
BENCHMARK(BM_FileSweepExpired)->UseRealTime()->Unit(benchmark::kMillisecond);

const bool kRegistered = [] {
  for (const std::string& kind : kContenders) {
    benchmark::RegisterBenchmark(("BM_SessionCycle/" + kind).c_str(), session_cycle, kind)
        ->Arg(200)
        ->Arg(4000)
        ->UseRealTime()  // durable variants wait on the disk, not the CPU
        ->Unit(benchmark::kMicrosecond);
  }
  for (const std::string& kind : kContenders) {
    benchmark::RegisterBenchmark(("BM_StoreLoadSave/" + kind).c_str(), store_load_save, kind)
        ->Arg(200)
        ->Arg(4000)
        ->UseRealTime()  // durable variants wait on the disk, not the CPU
        ->Unit(benchmark::kMicrosecond);
  }
  return true;
}();

}  // namespace
}  // namespace sessionkit

BENCHMARK_MAIN();

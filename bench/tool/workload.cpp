#include "bench/tool/workload.hpp"

#include <stdlib.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <fstream>
#include <stdexcept>

#include <nlohmann/json.hpp>

#include "bench/tool/phase.hpp"
#include "locks/shm_lock_manager.hpp"
#include "sessionkit/sessionkit.hpp"
#if SESSIONKIT_HAVE_LMDB
#include "bench/tool/raw_lmdb.hpp"
#endif
#if SESSIONKIT_HAVE_REDIS
#include "backends/redis/redis_config.hpp"
#include "bench/tool/raw_redis.hpp"
#endif

namespace sessionkit::bench {
namespace {

namespace fs = std::filesystem;

std::atomic<int> g_run_counter{0};

// A scratch directory for one run, removed afterwards when we made it.
class WorkDir {
 public:
  explicit WorkDir(const std::string& requested) {
    const int n = g_run_counter.fetch_add(1);
    if (requested.empty()) {
      const char* tmp = getenv("TMPDIR");
      std::string tmpl =
          std::string(tmp != nullptr && *tmp != '\0' ? tmp : "/tmp") + "/sessionkit-bench-XXXXXX";
      if (mkdtemp(tmpl.data()) == nullptr) throw std::runtime_error("mkdtemp failed");
      path_ = tmpl;
      remove_ = true;
    } else {
      path_ = fs::absolute(requested) / ("run-" + std::to_string(getpid()) + "-" + std::to_string(n));
      fs::create_directories(path_);
    }
  }
  ~WorkDir() {
    std::error_code ec;
    if (remove_) fs::remove_all(path_, ec);
  }
  const fs::path& path() const { return path_; }

 private:
  fs::path path_;
  bool remove_ = false;
};

std::string default_store() {
  auto types = Registry::global().store_types();
  return std::find(types.begin(), types.end(), "lmdb") != types.end() ? "lmdb" : "memory";
}

// The connection keys of a redis section, from --redis.
nlohmann::json redis_address(const Options& o) {
  if (!o.redis_socket.empty()) return {{"unix_socket", o.redis_socket}};
  return {{"host", o.redis_host}, {"port", o.redis_port}};
}

// The configuration document of this run and the directory it resolves against.
nlohmann::json make_config(const Options& o, const fs::path& work, fs::path* base_dir) {
  nlohmann::json doc;
  if (!o.config_file.empty()) {
    std::ifstream in(o.config_file);
    if (!in) throw std::runtime_error(o.config_file + ": cannot be read");
    doc = nlohmann::json::parse(in);
    *base_dir = fs::absolute(o.config_file).parent_path();
    if (o.sweep_param == "slots") doc["locks"]["slots"] = o.slots;
    return doc;
  }
  *base_dir = work;
  const std::string store = o.store.empty() ? default_store() : o.store;
  const std::string locks = !o.locks.empty()    ? o.locks
                            : store == "memory" ? "thread"
                            : store == "redis"  ? "redis"
                                                : "shm";
  const std::string run_tag = std::to_string(getpid()) + "-" + work.filename().string();
  nlohmann::json s = {{"type", store}};
  if (store == "redis") {
    s.update(redis_address(o));
    s["prefix"] = "sessionkit-bench:" + run_tag + ":";
  }
  if (store == "lmdb") s["path"] = (work / "sessions.mdb").string();
  if (store == "file") s["path"] = (work / "sessions").string();
  if (!o.durability.empty()) s["durability"] = o.durability;
  if (o.write_map) s["write_map"] = true;
  if (o.shards > 1) s["shards"] = o.shards;
  nlohmann::json l = {{"type", locks}, {"slots", o.slots}};
  if (locks == "shm") l["name"] = "sessionkit-bench-" + run_tag;
  if (locks == "redis") {
    l.update(redis_address(o));
    l["prefix"] = "sessionkit-bench:" + run_tag + ":";
  }
  if (locks == "fcntl") l["path"] = (work / "sessions.locks").string();
  doc["store"] = s;
  doc["locks"] = l;
  doc["gc"] = {{"every_n_requests", 0}};
  doc["timeouts"] = {{"idle_s", 86400}, {"absolute_s", 0}};
  return doc;
}

// The key prefix of a redis section, as the back end reads it.
std::string redis_prefix(const nlohmann::json& section) { return section.value("prefix", "sessionkit:"); }

// The key prefix of this run's baselines in a Redis section: a session key
// is prefix + id and ids hold no ':' or '-', so this names no session, and the
// tag (pid and work directory) keeps two runs on one config apart.
std::string redis_baseline_prefix(const nlohmann::json& section, const fs::path& work) {
  return redis_prefix(section) + "baseline-" + std::to_string(getpid()) + "-" + work.filename().string() +
         ":";
}

// The section for a baseline copy of a store or lock manager: same settings,
// its own file, name or key prefix.
nlohmann::json baseline_section(nlohmann::json section, const fs::path& work) {
  if (section.contains("path")) {
    section["path"] =
        (work / ("baseline-" + fs::path(section["path"].get<std::string>()).filename().string())).string();
  }
  if (section.contains("name")) section["name"] = section["name"].get<std::string>() + "-baseline";
  if (section.value("type", "") == "redis") section["prefix"] = redis_baseline_prefix(section, work);
  return section;
}

class CycleWorker final : public ProcessWorker {
 public:
  CycleWorker(SessionManager& manager, const std::vector<std::string>& cookies)
      : manager_(manager), cookies_(cookies), at_start_(manager.stats().locks) {}

  bool op(std::uint64_t index, bool read_only, SharedCounters& shared) override {
    try {
      Session s = manager_.open(cookies_[index]);
      if (s.is_new()) {  // the session vanished: counted, never saved
        s.invalidate();
        shared.errors.fetch_add(1);
        return false;
      }
      nlohmann::json& n = s.data()["n"];
      if (read_only) {
        volatile std::uint64_t seen = n.get<std::uint64_t>();
        (void)seen;
        s.unlock();
        return false;
      }
      n = n.get<std::uint64_t>() + 1;
      s.save();
      s.unlock();
      return true;
    } catch (const Error& e) {
      (e.code_value() == errc::unavailable ? shared.timeouts : shared.errors).fetch_add(1);
      return false;
    }
  }

  void finish(SharedCounters& shared) override {
    LockStats now = manager_.stats().locks;
    shared.lock_waits.fetch_add(now.waits - at_start_.waits);
    shared.lock_timeouts.fetch_add(now.timeouts - at_start_.timeouts);
    shared.owner_deaths.fetch_add(now.owner_deaths - at_start_.owner_deaths);
  }

 private:
  SessionManager& manager_;
  const std::vector<std::string>& cookies_;
  LockStats at_start_;
};

// A worker that owns its manager (a forked process builds its own).
class OwningCycleWorker final : public ProcessWorker {
 public:
  OwningCycleWorker(const Config& config, const std::vector<std::string>& cookies)
      : manager_(config), inner_(manager_, cookies) {}
  bool op(std::uint64_t i, bool ro, SharedCounters& s) override { return inner_.op(i, ro, s); }
  void finish(SharedCounters& s) override { inner_.finish(s); }

 private:
  SessionManager manager_;
  CycleWorker inner_;
};

class RawStoreWorker final : public ProcessWorker {
 public:
  RawStoreWorker(std::shared_ptr<Store> store, const std::vector<std::string>& ids)
      : store_(std::move(store)),
        ids_(ids),
        expiry_(std::chrono::system_clock::now() + std::chrono::hours(24)) {}

  bool op(std::uint64_t index, bool read_only, SharedCounters& shared) override {
    try {
      std::optional<std::string> bytes = store_->load(ids_[index]);
      if (!bytes) {
        shared.errors.fetch_add(1);
      } else if (!read_only) {
        store_->save(ids_[index], *bytes, expiry_);
      }
    } catch (const Error&) {
      shared.errors.fetch_add(1);
    }
    return false;
  }

 private:
  std::shared_ptr<Store> store_;
  const std::vector<std::string>& ids_;
  Store::TimePoint expiry_;
};

class RawLockWorker final : public ProcessWorker {
 public:
  RawLockWorker(std::shared_ptr<LockManager> locks, const std::vector<std::string>& ids)
      : locks_(std::move(locks)), ids_(ids) {}

  bool op(std::uint64_t index, bool, SharedCounters& shared) override {
    const std::uint32_t slot = locks_->slot_for(ids_[index]);
    if (locks_->lock(slot, std::chrono::steady_clock::now() + std::chrono::seconds(5)) ==
        LockStatus::timed_out) {
      shared.timeouts.fetch_add(1);
      return false;
    }
    locks_->unlock(slot);
    return false;
  }

 private:
  std::shared_ptr<LockManager> locks_;
  const std::vector<std::string>& ids_;
};

double us(std::uint64_t ns) { return static_cast<double>(ns) / 1000.0; }

// Removes what a run left outside its work directory: the lock regions of a
// shorthand run, and in Redis the baselines' keys and, for a shorthand run,
// every key under the run's own prefix.
class RunCleanup {
 public:
  RunCleanup(const nlohmann::json& doc, const fs::path& base_dir, const fs::path& work, bool shorthand) {
    const nlohmann::json& locks = doc["locks"];
    if (shorthand && locks.value("type", "") == "shm" && locks.contains("name")) {
      region_ = locks["name"].get<std::string>();
    }
#if SESSIONKIT_HAVE_REDIS
    for (const char* name : {"store", "locks"}) {
      const nlohmann::json& section = doc[name];
      if (section.value("type", "") != "redis") continue;
      redis::ConnectionOptions connection = std::string(name) == "store"
                                                ? redis::parse_store_section(section, base_dir).connection
                                                : redis::parse_lock_section(section, base_dir).connection;
      redis_.push_back(
          {connection, shorthand ? redis_prefix(section) : redis_baseline_prefix(section, work)});
    }
#else
    (void)base_dir;
    (void)work;
#endif
  }
  ~RunCleanup() {
    auto attempt = [](const auto& fn) {
      try {
        fn();
      } catch (const std::exception& e) {
        std::fprintf(stderr, "sessionkit-bench: cleaning up: %s\n", e.what());
      }
    };
    if (!region_.empty()) {
      attempt([&] { ShmLockManager::remove(region_); });
      attempt([&] { ShmLockManager::remove(region_ + "-baseline"); });
    }
#if SESSIONKIT_HAVE_REDIS
    for (const auto& [connection, prefix] : redis_) attempt([&] { remove_redis_keys(connection, prefix); });
#endif
  }
  RunCleanup(const RunCleanup&) = delete;
  RunCleanup& operator=(const RunCleanup&) = delete;

 private:
  std::string region_;
#if SESSIONKIT_HAVE_REDIS
  std::vector<std::pair<redis::ConnectionOptions, std::string>> redis_;
#endif
};

}  // namespace

RunResult run_once(const Options& o, const std::string& sweep_value,
                   volatile std::sig_atomic_t* interrupted) {
  WorkDir work(o.dir);
  fs::path base_dir;
  const nlohmann::json doc = make_config(o, work.path(), &base_dir);
  const Config config = Config::from_json(doc, base_dir);
  // Made after the config is checked: it reads the sections as the back ends do.
  RunCleanup cleanup(nlohmann::json{{"store", *config.store.section}, {"locks", *config.locks.section}},
                     base_dir, work.path(), o.config_file.empty());
  const bool cross_process = o.procs > 1;
  if (cross_process && config.store.type == "memory") {
    throw std::runtime_error("the memory store lives in one process: use --threads, not --procs, with it");
  }

  RunResult r;
  r.options = o;
  r.sweep_value = sweep_value;
  r.store = config.store.type;
  r.locks = config.locks.type;

  // Set-up: K sessions holding a counter and the padding.
  SessionManager setup(config);
  std::vector<std::string> cookies;
  std::vector<std::string> ids;
  cookies.reserve(o.sessions);
  ids.reserve(o.sessions);
  for (std::uint64_t i = 0; i < o.sessions; ++i) {
    Session s = setup.open("");
    s.data()["n"] = 0;
    s.data()["pad"] = std::string(o.value_bytes, 'p');
    s.save();
    const std::string set_cookie = *setup.set_cookie(s);
    cookies.push_back(set_cookie.substr(0, set_cookie.find(';')));
    ids.push_back(s.id());
  }
  const std::string record = *setup.store().load(ids.front());

  // The session cycle and its baselines, with the same processes, threads and
  // operation mix. They run in turn, in slices of about a second, so that a
  // machine whose speed drifts during the run (virtual machines do, by a
  // third and more) slows them alike and the ratios between them hold.
  WorkerFactory cycle = [&]() -> std::unique_ptr<ProcessWorker> {
    if (cross_process) return std::make_unique<OwningCycleWorker>(config, cookies);
    return std::make_unique<CycleWorker>(setup, cookies);
  };
  struct Baseline {
    const char* label;
    WorkerFactory make;
    std::optional<double>* result;  // where its ops/s go, when it ran
    PhaseResult total;
  };
  std::vector<Baseline> baselines;
  std::shared_ptr<Store> raw_store;
  std::shared_ptr<LockManager> raw_locks;
  const nlohmann::json store_section = baseline_section(*config.store.section, work.path());
  const nlohmann::json lock_section = baseline_section(*config.locks.section, work.path());
  // The baseline of the ratio: raw LMDB get+put, raw Redis GET+SET, else raw store load+save.
  const char* baseline_name = "raw store load+save";
  bool database_baseline = false;
  const auto raw_ttl = std::chrono::hours(24);
#if SESSIONKIT_HAVE_LMDB
  RawLmdbFlags lmdb_flags;
  const fs::path lmdb_path = work.path() / "raw-baseline.mdb";
#endif
#if SESSIONKIT_HAVE_REDIS
  redis::ConnectionOptions redis_connection;
  const std::string redis_raw_prefix = redis_baseline_prefix(*config.store.section, work.path()) + "raw:";
#endif
  if (o.baselines) {
    raw_store = Registry::global().store(config.store.type).create(store_section, base_dir);
    for (const std::string& id : ids) raw_store->save(id, record, std::chrono::system_clock::now() + raw_ttl);
    baselines.push_back({"raw store",
                         [&]() -> std::unique_ptr<ProcessWorker> {
                           if (!cross_process) return std::make_unique<RawStoreWorker>(raw_store, ids);
                           return std::make_unique<RawStoreWorker>(
                               Registry::global().store(config.store.type).create(store_section, base_dir),
                               ids);
                         },
                         &r.raw_store_ops_per_sec, PhaseResult{}});
    if (config.locks.type != "none") {
      raw_locks = Registry::global().lock_manager(config.locks.type).create(lock_section, base_dir);
      baselines.push_back(
          {"raw locks",
           [&]() -> std::unique_ptr<ProcessWorker> {
             if (!cross_process) return std::make_unique<RawLockWorker>(raw_locks, ids);
             return std::make_unique<RawLockWorker>(
                 Registry::global().lock_manager(config.locks.type).create(lock_section, base_dir), ids);
           },
           &r.raw_lock_ops_per_sec, PhaseResult{}});
    }
#if SESSIONKIT_HAVE_LMDB
    if (config.store.type == "lmdb") {
      lmdb_flags.durability = config.store.section->value("durability", "durable");
      lmdb_flags.write_map = config.store.section->value("write_map", false);
      lmdb_flags.shards = config.store.section->value("shards", 1u);
      populate_raw_lmdb(lmdb_path, lmdb_flags, ids, record);
      baselines.push_back({"raw lmdb", [&]() { return make_raw_lmdb_worker(lmdb_path, lmdb_flags, ids); },
                           &r.baseline_ops_per_sec, PhaseResult{}});
      baseline_name = "raw LMDB get+put";
      database_baseline = true;
    }
#endif
#if SESSIONKIT_HAVE_REDIS
    if (config.store.type == "redis") {
      redis_connection = redis::parse_store_section(*config.store.section, base_dir).connection;
      populate_raw_redis(redis_connection, redis_raw_prefix, ids, record, raw_ttl);
      baselines.push_back(
          {"raw redis",
           [&]() { return make_raw_redis_worker(redis_connection, redis_raw_prefix, ids, raw_ttl); },
           &r.baseline_ops_per_sec, PhaseResult{}});
      baseline_name = "raw Redis GET+SET";
      database_baseline = true;
    }
#endif
  }

  const int rounds = o.ops ? 1 : std::clamp(static_cast<int>(o.seconds), 1, 5);
  Options slice = o;
  slice.seconds = o.seconds / rounds;
  PhaseResult p;
  // A slice in which every operation failed (the server went away) ends the
  // measuring: the verification below then reports what is wrong.
  auto all_failed = [](const PhaseResult& s) { return s.ops > 0 && s.errors + s.timeouts >= s.ops; };
  bool failing = false;
  for (int round = 0; round < rounds && *interrupted == 0 && !failing; ++round) {
    const PhaseResult cycle_slice = run_phase(slice, cycle, cross_process, "session cycle", interrupted);
    accumulate(p, cycle_slice);
    failing = all_failed(cycle_slice);
    for (Baseline& b : baselines) {
      if (*interrupted != 0 || failing) break;
      const PhaseResult b_slice = run_phase(slice, b.make, cross_process, b.label, interrupted);
      accumulate(b.total, b_slice);
      failing = all_failed(b_slice);
    }
  }
  r.seconds = p.seconds;
  r.ops = p.ops;
  r.ops_per_sec = p.ops_per_sec();
  r.p50_us = us(p.latency.percentile(0.50));
  r.p99_us = us(p.latency.percentile(0.99));
  r.p999_us = us(p.latency.percentile(0.999));
  r.errors = p.errors + p.timeouts;
  r.lock_timeouts = p.lock_timeouts;
  r.lock_waits = p.lock_waits;
  r.owner_deaths = p.owner_deaths;
  r.interrupted = p.interrupted || *interrupted != 0;

  // Verification: every counter equals the updates acknowledged for it.
  p.acked.resize(o.sessions);
  for (std::uint64_t i = 0; i < o.sessions; ++i) {
    r.acknowledged += p.acked[i];
    Session s = setup.open(cookies[i]);
    std::uint64_t stored = 0;
    if (s.is_new()) {
      s.invalidate();
    } else {
      stored = s.data()["n"].get<std::uint64_t>();
    }
    if (stored < p.acked[i]) r.lost_updates += p.acked[i] - stored;
    if (stored > p.acked[i]) r.extra_updates += stored - p.acked[i];
  }
  StoreInfo info = setup.store().info();
  r.store_records = info.records;
  r.store_bytes = info.bytes;

  // Baselines that ran (an interrupted run may have cut them short).
  for (const Baseline& b : baselines) {
    if (b.total.ops > 0) *b.result = b.total.ops_per_sec();
  }
  if (!database_baseline) r.baseline_ops_per_sec = r.raw_store_ops_per_sec;
  if (r.baseline_ops_per_sec) r.baseline_name = baseline_name;

  // The run's sessions are not left behind in a store that outlives it (a
  // --config or --dir store, or Redis); a failure here costs no result.
  if (!o.config_file.empty() || !o.dir.empty() || config.store.type == "redis") {
    try {
      for (const std::string& id : ids) {
        setup.store().remove(id);
        if (raw_store) raw_store->remove(id);
      }
    } catch (const std::exception& e) {
      std::fprintf(stderr, "sessionkit-bench: removing the run's sessions: %s\n", e.what());
    }
  }
  return r;
}

}  // namespace sessionkit::bench

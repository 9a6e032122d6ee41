// Redis back end benchmarks, each next to its raw baseline in the same run,
// all against one local redis-server (loopback TCP):
//
//   BM_SessionCycle_Redis/<bytes>     open(cookie) + n += 1 + save + unlock through
//                                     SessionManager (redis store, redis locks):
//                                     SET NX PX, GET, SET PX, EVALSHA = 4 round trips
//   BM_SessionRead_Redis/<bytes>      open + read + unlock, no write due: 3 round trips
//   BM_SessionCycle_Memory/<bytes>    the same cycle on the memory store: sessionkit's
//                                     own CPU cost (cookie, codec, JSON), no I/O
//   BM_Raw_GetSet/<bytes>             hiredis GET + SET PX of the same record bytes:
//                                     the store's I/O alone, 2 round trips
//   BM_StoreLoadSave_Redis/<bytes>    RedisStore::load + save of those bytes: the store
//                                     without locks or codec, against BM_Raw_GetSet
//   BM_Raw_LockedGetSet/<bytes>       hiredis SET NX PX + GET + SET PX + EVALSHA:
//                                     the same 4 commands, without sessionkit
//
// <bytes> is the size of a string in the session data (the record is ~20
// bytes larger). Threads(4) runs use one session (or key) per thread.
//
//   build/bench/redis/sessionkit_redis_bench --benchmark_min_time=0.5
//   SESSIONKIT_BENCH_REDIS_PORT=6379 build/bench/redis/sessionkit_redis_bench   # an existing server
#include <sys/time.h>

#include <benchmark/benchmark.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>
#include <vector>

#include <hiredis/hiredis.h>
#include <nlohmann/json.hpp>

#include "sessionkit/sessionkit.hpp"
#include "tests/support/redis_server.hpp"

namespace sessionkit {
namespace {

constexpr const char* kReleaseScript =
    "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) else return 0 end";

std::unique_ptr<testing::RedisServer> g_server;
int g_port = 0;

int redis_port() {
  if (g_port != 0) return g_port;
  if (const char* env = std::getenv("SESSIONKIT_BENCH_REDIS_PORT"); env != nullptr && *env != '\0') {
    g_port = std::atoi(env);
  } else {
    g_server = std::make_unique<testing::RedisServer>();
    g_port = g_server->port();
  }
  return g_port;
}

SessionManager& manager() {
  static SessionManager* m = [] {
    const int port = redis_port();
    nlohmann::json doc = {{"store", {{"type", "redis"}, {"port", port}, {"prefix", "bench:"}}},
                          {"locks", {{"type", "redis"}, {"port", port}, {"prefix", "bench:"}}},
                          {"gc", {{"every_n_requests", 0}}}};
    return new SessionManager(Config::from_json(doc));  // lives until exit
  }();
  return *m;
}

std::string new_counter(std::size_t bytes) {
  Session s = manager().open("");
  s.data() = {{"n", 0}, {"pad", std::string(bytes, 'p')}};
  s.save();
  const std::string sc = *manager().set_cookie(s);
  return sc.substr(0, sc.find(';'));
}

// A plain hiredis connection, one per benchmark thread.
class Raw {
 public:
  Raw() {
    ctx_ = redisConnect("127.0.0.1", redis_port());
    if (ctx_ == nullptr || ctx_->err != 0) throw std::runtime_error("redisConnect failed");
  }
  ~Raw() { redisFree(ctx_); }
  Raw(const Raw&) = delete;
  Raw& operator=(const Raw&) = delete;

  redisReply* run(std::vector<std::string_view> args) {
    std::vector<const char*> argv;
    std::vector<std::size_t> lens;
    for (std::string_view a : args) {
      argv.push_back(a.data());
      lens.push_back(a.size());
    }
    auto* r = static_cast<redisReply*>(
        redisCommandArgv(ctx_, static_cast<int>(args.size()), argv.data(), lens.data()));
    if (r == nullptr) throw std::runtime_error(ctx_->errstr);
    return r;
  }
  void check(std::vector<std::string_view> args) { freeReplyObject(run(std::move(args))); }
  std::string get(const std::string& key) {
    redisReply* r = run({"GET", key});
    std::string v = r->type == REDIS_REPLY_STRING ? std::string(r->str, r->len) : std::string();
    freeReplyObject(r);
    return v;
  }

 private:
  redisContext* ctx_ = nullptr;
};

// The record bytes sessionkit stores for a session with this payload.
std::string record_bytes(Raw& raw, std::size_t bytes) {
  const std::string cookie = new_counter(bytes);
  return raw.get("bench:" + cookie.substr(cookie.find('=') + 1));
}

void BM_SessionCycle_Redis(benchmark::State& state) {
  const std::string cookie = new_counter(static_cast<std::size_t>(state.range(0)));
  for (auto _ : state) {
    Session s = manager().open(cookie);
    auto& n = s.data()["n"];
    n = n.get<std::int64_t>() + 1;
    s.save();
    s.unlock();
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_SessionCycle_Redis)->Arg(64)->Arg(1024)->Arg(16384)->UseRealTime();
BENCHMARK(BM_SessionCycle_Redis)->Arg(1024)->Threads(4)->UseRealTime();

// The same cycle on the memory store with thread locks: what sessionkit itself
// costs (cookie, codec, JSON), without any I/O.
void BM_SessionCycle_Memory(benchmark::State& state) {
  static SessionManager* memory = new SessionManager(Config::from_json(
      {{"store", {{"type", "memory"}}}, {"gc", {{"every_n_requests", 0}}}}));  // lives until exit
  std::string cookie;
  {
    Session s = memory->open("");
    s.data() = {{"n", 0}, {"pad", std::string(static_cast<std::size_t>(state.range(0)), 'p')}};
    s.save();
    const std::string sc = *memory->set_cookie(s);
    cookie = sc.substr(0, sc.find(';'));
  }
  for (auto _ : state) {
    Session s = memory->open(cookie);
    auto& n = s.data()["n"];
    n = n.get<std::int64_t>() + 1;
    s.save();
    s.unlock();
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_SessionCycle_Memory)->Arg(64)->Arg(1024)->Arg(16384)->UseRealTime();

void BM_SessionRead_Redis(benchmark::State& state) {
  const std::string cookie = new_counter(static_cast<std::size_t>(state.range(0)));
  for (auto _ : state) {
    Session s = manager().open(cookie);
    benchmark::DoNotOptimize(s.data()["n"].get<std::int64_t>());
    s.unlock();  // unchanged and no touch due: no write
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_SessionRead_Redis)->Arg(1024)->UseRealTime();

void BM_Raw_GetSet(benchmark::State& state) {
  Raw raw;
  const std::string record = record_bytes(raw, static_cast<std::size_t>(state.range(0)));
  const std::string key = "bench:raw:" + std::to_string(state.thread_index());
  raw.check({"SET", key, record, "PX", "1800000"});
  for (auto _ : state) {
    benchmark::DoNotOptimize(raw.get(key));
    raw.check({"SET", key, record, "PX", "1800000"});
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_Raw_GetSet)->Arg(64)->Arg(1024)->Arg(16384)->UseRealTime();
BENCHMARK(BM_Raw_GetSet)->Arg(1024)->Threads(4)->UseRealTime();

void BM_StoreLoadSave_Redis(benchmark::State& state) {
  // A session of this thread's own, its id and its record as sessionkit wrote them.
  const std::string cookie = new_counter(static_cast<std::size_t>(state.range(0)));
  const std::string id = cookie.substr(cookie.find('=') + 1);
  Store& store = manager().store();
  const std::string record = *store.load(id);
  const auto expires = std::chrono::system_clock::now() + std::chrono::minutes(30);
  store.save(id, record, expires);
  for (auto _ : state) {
    benchmark::DoNotOptimize(store.load(id));
    store.save(id, record, expires);
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_StoreLoadSave_Redis)->Arg(64)->Arg(1024)->Arg(16384)->UseRealTime();

void BM_Raw_LockedGetSet(benchmark::State& state) {
  Raw raw;
  const std::string record = record_bytes(raw, static_cast<std::size_t>(state.range(0)));
  const std::string key = "bench:raw:" + std::to_string(state.thread_index());
  const std::string lock_key = "bench:rawlock:" + std::to_string(state.thread_index());
  const std::string token = "0123456789abcdef0123456789abcdef";
  raw.check({"SET", key, record, "PX", "1800000"});
  raw.check({"SCRIPT", "LOAD", kReleaseScript});
  redisReply* loaded = raw.run({"SCRIPT", "LOAD", kReleaseScript});
  const std::string sha(loaded->str, loaded->len);
  freeReplyObject(loaded);
  for (auto _ : state) {
    raw.check({"SET", lock_key, token, "NX", "PX", "30000"});
    benchmark::DoNotOptimize(raw.get(key));
    raw.check({"SET", key, record, "PX", "1800000"});
    raw.check({"EVALSHA", sha, "1", lock_key, token});
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_Raw_LockedGetSet)->Arg(64)->Arg(1024)->Arg(16384)->UseRealTime();

}  // namespace
}  // namespace sessionkit

BENCHMARK_MAIN();

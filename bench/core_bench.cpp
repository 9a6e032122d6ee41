// Micro-benchmarks of the core pieces and of a whole session cycle on the
// memory store, with the raw store calls as the baseline in the same run.
//
//   build/bench/sessionkit_core_bench --benchmark_min_time=0.2
#include <benchmark/benchmark.h>

#include <nlohmann/json.hpp>

#include "backends/memory/memory_store.hpp"
#include "cookie_signer.hpp"
#include "record_codec.hpp"
#include "session_id.hpp"
#include "sessionkit/sessionkit.hpp"

namespace sessionkit {
namespace {

nlohmann::json sample_data(std::size_t pad_bytes) { return {{"n", 1}, {"pad", std::string(pad_bytes, 'p')}}; }

// A full request cycle: open from a cookie, read, modify, save, unlock.
void BM_SessionCycle_Memory(benchmark::State& state) {
  Config config = Config::from_json({{"store", {{"type", "memory"}}}, {"gc", {{"every_n_requests", 0}}}});
  SessionManager manager(config);
  const int sessions = 1000;
  std::vector<std::string> cookies;
  for (int i = 0; i < sessions; ++i) {
    Session s = manager.open("");
    s.data() = sample_data(200);
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
}
BENCHMARK(BM_SessionCycle_Memory);

// Baseline: the same bytes through the raw store, no locks, no codec.
void BM_Baseline_MemoryStoreLoadSave(benchmark::State& state) {
  MemoryStore store;
  const int sessions = 1000;
  std::vector<std::string> ids;
  const std::string record(48 + 220, 'r');
  const auto expiry = std::chrono::system_clock::now() + std::chrono::hours(1);
  for (int i = 0; i < sessions; ++i) {
    ids.push_back(detail::generate_session_id());
    store.save(ids.back(), record, expiry);
  }
  std::size_t i = 0;
  for (auto _ : state) {
    const std::string& id = ids[i++ % sessions];
    auto bytes = store.load(id);
    store.save(id, *bytes, expiry);
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_Baseline_MemoryStoreLoadSave);

void BM_IdGeneration(benchmark::State& state) {
  for (auto _ : state) benchmark::DoNotOptimize(detail::generate_session_id());
}
BENCHMARK(BM_IdGeneration);

void BM_CookieSign(benchmark::State& state) {
  detail::CookieSigner signer({std::string(32, 'k')});
  const std::string id = detail::generate_session_id();
  for (auto _ : state) benchmark::DoNotOptimize(signer.encode(id));
}
BENCHMARK(BM_CookieSign);

void BM_CookieVerify(benchmark::State& state) {
  detail::CookieSigner signer({std::string(32, 'k')});
  const std::string value = signer.encode(detail::generate_session_id());
  bool bad = false;
  for (auto _ : state) benchmark::DoNotOptimize(signer.decode(value, &bad));
}
BENCHMARK(BM_CookieVerify);

void BM_RecordEncode(benchmark::State& state) {
  const nlohmann::json data = sample_data(static_cast<std::size_t>(state.range(0)));
  detail::RecordHeader h{1, 1, 1800, 0, 1};
  for (auto _ : state) benchmark::DoNotOptimize(detail::encode_record(h, detail::encode_payload(data, 64)));
  state.SetBytesProcessed(state.iterations() * state.range(0));
}
BENCHMARK(BM_RecordEncode)->Arg(200)->Arg(4096)->Arg(60000);

void BM_RecordDecode(benchmark::State& state) {
  const std::string record = detail::encode_record(
      detail::RecordHeader{1, 1, 1800, 0, 1},
      detail::encode_payload(sample_data(static_cast<std::size_t>(state.range(0))), 64));
  for (auto _ : state) {
    detail::DecodedRecord r = detail::decode_record(record);
    benchmark::DoNotOptimize(detail::decode_payload(r.payload, 64));
  }
  state.SetBytesProcessed(state.iterations() * state.range(0));
}
BENCHMARK(BM_RecordDecode)->Arg(200)->Arg(4096)->Arg(60000);

}  // namespace
}  // namespace sessionkit

BENCHMARK_MAIN();

#include "backends/lmdb/lmdb_sharded_store.hpp"

#include <algorithm>

#include "sessionkit/error.hpp"
#include "siphash.hpp"

namespace sessionkit {

LmdbShardedStore::LmdbShardedStore(const LmdbStoreOptions& options, unsigned shards) : path_(options.path) {
  if (shards < 2 || shards > kMaxShards) {
    throw Error(errc::invalid_argument, "LmdbShardedStore: shards must be in [2, " +
                                            std::to_string(kMaxShards) + "], got " + std::to_string(shards));
  }
  shards_.reserve(shards);
  for (unsigned i = 0; i < shards; ++i) {
    LmdbStoreOptions o = options;
    o.path = shard_path(options.path, i);
    shards_.push_back(std::make_unique<LmdbStore>(std::move(o)));
  }
}

unsigned LmdbShardedStore::shard_of(std::string_view id, unsigned shards) noexcept {
  return static_cast<unsigned>(detail::siphash24(kShardKey0, kShardKey1, id) % shards);
}

std::filesystem::path LmdbShardedStore::shard_path(const std::filesystem::path& path, unsigned i) {
  std::filesystem::path p = path;
  p += "." + std::to_string(i);
  return p;
}

std::optional<std::string> LmdbShardedStore::load(std::string_view id) { return shard_for(id).load(id); }

void LmdbShardedStore::save(std::string_view id, std::string_view record, TimePoint expires_at) {
  shard_for(id).save(id, record, expires_at);
}

bool LmdbShardedStore::remove(std::string_view id) { return shard_for(id).remove(id); }

SweepResult LmdbShardedStore::sweep(TimePoint now, std::chrono::milliseconds budget) {
  const auto deadline = std::chrono::steady_clock::now() + budget;
  const unsigned n = shard_count();
  const unsigned first = next_sweep_.load(std::memory_order_relaxed) % n;
  SweepResult total;
  for (unsigned k = 0; k < n; ++k) {
    const unsigned i = (first + k) % n;
    const auto left =
        std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    if (k > 0 && left.count() <= 0) {
      next_sweep_.store(i, std::memory_order_relaxed);  // out of time: the next sweep starts here
      break;
    }
    SweepResult r = shards_[i]->sweep(now, std::max(left, std::chrono::milliseconds(0)));
    total.examined += r.examined;
    total.removed += r.removed;
    if (!r.complete) {
      clean_in_a_row_.store(0, std::memory_order_relaxed);
      next_sweep_.store(i, std::memory_order_relaxed);
      break;
    }
    clean_in_a_row_.fetch_add(1, std::memory_order_relaxed);
    next_sweep_.store((i + 1) % n, std::memory_order_relaxed);
  }
  // Complete once the last n shard sweeps, which visit the shards in turn,
  // all finished: within this call or across several short ones.
  total.complete = clean_in_a_row_.load(std::memory_order_relaxed) >= n;
  return total;
}

void LmdbShardedStore::for_each(const std::function<bool(std::string_view, std::string_view)>& fn) {
  bool go_on = true;
  for (auto& shard : shards_) {
    shard->for_each([&](std::string_view id, std::string_view record) { return go_on = fn(id, record); });
    if (!go_on) return;
  }
}

StoreInfo LmdbShardedStore::info() const {
  StoreInfo out;
  out.type = "lmdb";
  out.location = path_.string() + ".{0.." + std::to_string(shards_.size() - 1) + "}";
  out.records = 0;
  out.bytes = 0;
  for (const auto& shard : shards_) {
    StoreInfo s = shard->info();
    out.records += s.records;
    out.bytes += s.bytes;
  }
  return out;
}

void LmdbShardedStore::after_fork() {
  for (auto& shard : shards_) shard->after_fork();
}

std::string LmdbShardedStore::check_consistency() {
  std::string problems;
  for (unsigned i = 0; i < shard_count(); ++i) {
    std::string p = shards_[i]->check_consistency();
    if (!p.empty()) problems += (problems.empty() ? "" : "; ") + ("shard " + std::to_string(i) + ": " + p);
    int misplaced = 0;
    shards_[i]->for_each([&](std::string_view id, std::string_view) {
      if (shard_of(id, shard_count()) != i && ++misplaced <= 3) {
        problems +=
            (problems.empty() ? "" : "; ") + ("id " + std::string(id) + " in shard " + std::to_string(i));
      }
      return true;
    });
  }
  return problems;
}

}  // namespace sessionkit

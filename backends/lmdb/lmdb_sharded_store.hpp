// LmdbShardedStore ("lmdb" with "shards" > 1): sessions spread over N LMDB
// environments by a fixed hash of the id, so that writers on different
// sessions mostly take different writer locks.
//
// Why: LMDB serialises every write transaction of an environment behind one
// process-shared mutex, and on many machines (virtual ones above all) handing
// that mutex between processes costs more than the transaction itself: two
// processes saving distinct sessions into one environment run slower together
// than one alone. With N environments two writers meet only when their ids
// fall in the same shard. docs/lmdb.md, "Shards", has the figures.
//
// Layout: shard i is the environment file `<path>.<i>` (and its `-lock` file),
// i in [0, N); each is an ordinary LmdbStore file (docs/lmdb.md, "Layout").
// The shard of an id is shard_of(id, N) = SipHash-2-4 of the id's bytes under
// the fixed key (kShardKey0, kShardKey1), mod N: part of the on-disk format,
// never to change. The count is recorded in `<path>.shards` when the store is
// first created, and every later open must name the same count: processes
// with different counts would look for one session in different files (lost
// updates, and a removed or regenerated id still alive in the other file).
// check_shard_layout() makes the same check for a single-file store.
//
// Everything else is LmdbStore's, per shard: durability, write_map, map sizes
// (each shard has its own map of map_size_mb, growing to max_map_size_mb),
// reader tables, fork rules, errors.
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "backends/lmdb/lmdb_store.hpp"

namespace sessionkit {

class LmdbShardedStore final : public Store {
 public:
  static constexpr std::uint64_t kShardKey0 = 0x736b2d6c6d64622dULL;  // "sk-lmdb-"
  static constexpr std::uint64_t kShardKey1 = 0x7368617264732121ULL;  // "shards!!"
  static constexpr unsigned kMaxShards = 256;

  // Opens (creating if needed) `shards` environments named from options.path
  // as above. Throws what LmdbStore's constructor throws,
  // Error(invalid_argument) unless 2 <= shards <= kMaxShards, and
  // Error(bad_config) when the files were created with another count or
  // `path` holds a single-file store.
  LmdbShardedStore(const LmdbStoreOptions& options, unsigned shards);

  // For a store about to open `path` with `shards` environments (1: the
  // single file `path`): Error(bad_config, "store.shards: ...") when the files
  // there were made with another count. With shards > 1 and nothing recorded
  // yet, records the count (atomically: of several processes creating the
  // store at once, one count wins and the others are checked against it).
  static void check_shard_layout(const std::filesystem::path& path, unsigned shards);

  // The shard `id` lives in, of `shards`.
  static unsigned shard_of(std::string_view id, unsigned shards) noexcept;
  // The environment file of shard `i`.
  static std::filesystem::path shard_path(const std::filesystem::path& path, unsigned i);

  std::optional<std::string> load(std::string_view id) override;
  void save(std::string_view id, std::string_view record, TimePoint expires_at) override;
  bool remove(std::string_view id) override;
  // Sweeps shard after shard within one budget (always at least one shard),
  // resuming where the last sweep stopped. Sweeps go round the shards in
  // laps, 0 to N-1, each shard swept to its end before the next; complete
  // when this call ended a lap (in it or across several short calls) in which
  // no shard failed. Sweeps are serialised within the process.
  // A shard that throws does not stop the others: the lap goes on past it,
  // is not complete, and its first error is rethrown at the end of the call.
  SweepResult sweep(TimePoint now, std::chrono::milliseconds budget) override;
  // Shard after shard, each in id order.
  void for_each(const std::function<bool(std::string_view, std::string_view)>& fn) override;
  // Sums over the shards; location is options.path with the shard count.
  StoreInfo info() const override;
  bool shared_across_processes() const override { return true; }
  void after_fork() override;

  unsigned shard_count() const noexcept { return static_cast<unsigned>(shards_.size()); }
  // REQUIRES: i < shard_count().
  LmdbStore& shard(unsigned i) { return *shards_[i]; }
  // Every shard's LmdbStore::check_consistency(), plus ids stored in a shard
  // they do not hash to; "" when all agree.
  std::string check_consistency();

 private:
  LmdbStore& shard_for(std::string_view id) { return *shards_[shard_of(id, shard_count())]; }

  std::filesystem::path path_;
  std::vector<std::unique_ptr<LmdbStore>> shards_;
  std::mutex sweep_mu_;
  unsigned next_sweep_ = 0;     // guarded by sweep_mu_: the shard the next sweep starts in
  bool failed_in_lap_ = false;  // guarded by sweep_mu_: a shard threw in this lap
};

}  // namespace sessionkit

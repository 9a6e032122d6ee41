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
// never to change. Changing N moves most ids to another shard: their sessions
// are not found (users sign in again), and the records left behind expire and
// are swept as usual, except in files past the new N, which nothing opens.
//
// Everything else is LmdbStore's, per shard: durability, write_map, map sizes
// (each shard has its own map of map_size_mb, growing to max_map_size_mb),
// reader tables, fork rules, errors.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
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
  // as above. Throws what LmdbStore's constructor throws, and
  // Error(invalid_argument) unless 2 <= shards <= kMaxShards.
  LmdbShardedStore(const LmdbStoreOptions& options, unsigned shards);

  // The shard `id` lives in, of `shards`.
  static unsigned shard_of(std::string_view id, unsigned shards) noexcept;
  // The environment file of shard `i`.
  static std::filesystem::path shard_path(const std::filesystem::path& path, unsigned i);

  std::optional<std::string> load(std::string_view id) override;
  void save(std::string_view id, std::string_view record, TimePoint expires_at) override;
  bool remove(std::string_view id) override;
  // Sweeps shard after shard within one budget (always at least one shard),
  // resuming where the last sweep stopped; complete once every shard has been
  // swept to the end in turn, in this call or across several short ones.
  SweepResult sweep(TimePoint now, std::chrono::milliseconds budget) override;
  // Shard after shard, each in id order.
  void for_each(const std::function<bool(std::string_view, std::string_view)>& fn) override;
  // Sums over the shards; location is options.path with the shard count.
  StoreInfo info() const override;
  bool shared_across_processes() const override { return true; }
  void after_fork() override;

  unsigned shard_count() const noexcept { return static_cast<unsigned>(shards_.size()); }
  LmdbStore& shard(unsigned i) { return *shards_.at(i); }
  // Every shard's LmdbStore::check_consistency(), plus ids stored in a shard
  // they do not hash to; "" when all agree.
  std::string check_consistency();

 private:
  LmdbStore& shard_for(std::string_view id) { return *shards_[shard_of(id, shard_count())]; }

  std::filesystem::path path_;
  std::vector<std::unique_ptr<LmdbStore>> shards_;
  std::atomic<unsigned> next_sweep_{0};           // the shard the next sweep starts in
  std::atomic<std::uint64_t> clean_in_a_row_{0};  // shard sweeps in turn that finished
};

}  // namespace sessionkit

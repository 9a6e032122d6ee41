// MemoryStore ("memory"): records in this process's memory, for single-process
// servers (threaded FastCGI workers, tests, embedded use).
//
// Sharded: 64 shards, each an unordered_map behind its own mutex, so threads
// on different sessions rarely contend. Records vanish with the process.
// Config refuses it together with a cross-process lock manager, and the CGI
// adapter refuses it outright: where several processes serve requests, each
// would see its own sessions (mod_python's MemorySession failure).
#pragma once

#include <array>
#include <atomic>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include "sessionkit/store.hpp"

namespace sessionkit {

class MemoryStore final : public Store {
 public:
  MemoryStore();
  ~MemoryStore() override;

  std::optional<std::string> load(std::string_view id) override;
  void save(std::string_view id, std::string_view record, TimePoint expires_at) override;
  bool remove(std::string_view id) override;
  SweepResult sweep(TimePoint now, std::chrono::milliseconds budget) override;
  void for_each(const std::function<bool(std::string_view, std::string_view)>& fn) override;
  StoreInfo info() const override;
  bool shared_across_processes() const override { return false; }

 private:
  static constexpr std::size_t kShards = 64;
  struct Entry {
    std::string record;
    TimePoint expires_at;
  };
  struct StringHash {
    using is_transparent = void;
    std::size_t operator()(std::string_view s) const noexcept { return std::hash<std::string_view>{}(s); }
  };
  struct alignas(64) Shard {
    mutable std::mutex mu;
    std::unordered_map<std::string, Entry, StringHash, std::equal_to<>> records;
    std::size_t bytes = 0;
  };

  Shard& shard_for(std::string_view id);

  std::array<Shard, kShards> shards_;
  // Where the last sweep stopped: shard and bucket.
  std::mutex sweep_mu_;
  std::size_t sweep_shard_ = 0;
  std::size_t sweep_bucket_ = 0;
};

}  // namespace sessionkit

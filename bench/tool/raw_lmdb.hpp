// The raw LMDB baseline: get + put of the same bytes under the same keys,
// with the same environment flags as the LMDB store, and nothing else.
#pragma once

#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "bench/tool/phase.hpp"

namespace sessionkit::bench {

// The store section's settings that become environment flags.
struct RawLmdbFlags {
  std::string durability = "durable";  // durable | nometasync | nosync
  bool write_map = false;              // MDB_WRITEMAP
  unsigned shards = 1;                 // environments <path>.<i>, ids placed as the store places them
};

// Creates the environment at `path` holding `record` under every id.
void populate_raw_lmdb(const std::filesystem::path& path, const RawLmdbFlags& flags,
                       const std::vector<std::string>& ids, const std::string& record);

// A worker that opens its own environment (call after fork).
std::unique_ptr<ProcessWorker> make_raw_lmdb_worker(const std::filesystem::path& path,
                                                    const RawLmdbFlags& flags,
                                                    const std::vector<std::string>& ids);

}  // namespace sessionkit::bench

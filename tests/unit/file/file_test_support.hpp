// Helpers shared by the file store's tests: stores in temp directories, ids,
// self-checking records, and looks at the directory tree.
#pragma once

#include <sys/stat.h>

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "backends/file/file_store.hpp"

namespace sessionkit::testing {

using Clock = std::chrono::system_clock;

inline constexpr std::size_t kFileHeaderSize = 20;  // docs/formats.md, "File store layout"

FileStoreOptions file_options(const std::filesystem::path& dir, int shard_depth = 1,
                              FileDurability durability = FileDurability::nosync);

// A fresh, valid session id (the core's generator).
std::string new_id();

// The path of `id`'s record under a store at `dir` with `shard_depth`.
std::filesystem::path record_path(const std::filesystem::path& dir, const std::string& id, int shard_depth);

// Every path below `root` (relative), with its type and mode: the whole tree,
// to show that nothing appeared or changed.
std::map<std::string, std::string> tree(const std::filesystem::path& root);

// Files below `root` whose name starts with `prefix`.
std::vector<std::filesystem::path> files_with_prefix(const std::filesystem::path& root,
                                                     std::string_view prefix);

// The permission bits of `p` (not following a symlink).
unsigned mode_of(const std::filesystem::path& p);

// A record that checks itself: "<counter>:<size>:" then the counter's decimal
// digits repeated up to `size` bytes in all.
std::string make_record(std::uint64_t counter, std::size_t size);
// The counter of a record made by make_record, or nullopt if it is not exactly
// such a record (torn, mixed or damaged).
std::optional<std::uint64_t> check_record(std::string_view record);

std::string read_file(const std::filesystem::path& p);
void write_file(const std::filesystem::path& p, std::string_view content);

// The bytes of a file-store record file holding `payload` (for planting
// hand-made and damaged files).
std::string file_record_bytes(std::string_view payload, std::int64_t expires_ms);

}  // namespace sessionkit::testing

// Reading the "store" and "locks" sections of type "redis" (docs/redis.md
// lists every key). Both sections share the connection keys; each reader
// rejects unknown keys and bad values with Error(errc::bad_config) naming the
// key ("store.port"), without connecting to anything.
#pragma once

#include <filesystem>

#include <nlohmann/json_fwd.hpp>

#include "backends/redis/redis_lock_manager.hpp"
#include "backends/redis/redis_store.hpp"

namespace sessionkit::redis {

RedisStoreOptions parse_store_section(const nlohmann::json& section, const std::filesystem::path& base_dir);
RedisLockOptions parse_lock_section(const nlohmann::json& section, const std::filesystem::path& base_dir);

}  // namespace sessionkit::redis

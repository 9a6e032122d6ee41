// Registers the "redis" store and the "redis" lock manager.
#include <nlohmann/json.hpp>

#include "backends/redis/redis_config.hpp"
#include "builtin_backends.hpp"
#include "sessionkit/registry.hpp"

namespace sessionkit::detail {

void register_redis_backends(Registry& registry) {
  StoreType store;
  store.shared_across_processes = true;
  store.validate = [](const nlohmann::json& section, const std::filesystem::path& base_dir) {
    redis::parse_store_section(section, base_dir);
  };
  store.create = [](const nlohmann::json& section,
                    const std::filesystem::path& base_dir) -> std::unique_ptr<Store> {
    return std::make_unique<RedisStore>(redis::parse_store_section(section, base_dir));
  };
  registry.add_store("redis", std::move(store));

  LockManagerType locks;
  locks.shared_across_processes = true;
  locks.validate = [](const nlohmann::json& section, const std::filesystem::path& base_dir) {
    redis::parse_lock_section(section, base_dir);
  };
  locks.create = [](const nlohmann::json& section,
                    const std::filesystem::path& base_dir) -> std::unique_ptr<LockManager> {
    return std::make_unique<RedisLockManager>(redis::parse_lock_section(section, base_dir));
  };
  registry.add_lock_manager("redis", std::move(locks));
}

}  // namespace sessionkit::detail

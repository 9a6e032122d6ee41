// Registers the "redis" store and the "redis" lock manager.
#include <nlohmann/json.hpp>

#include "backend_type.hpp"
#include "backends/redis/redis_config.hpp"
#include "builtin_backends.hpp"
#include "sessionkit/registry.hpp"

namespace sessionkit::detail {

void register_redis_backends(Registry& registry) {
  StoreType store = store_type<RedisStore>(&redis::parse_store_section);
  // shm locks would exclude the processes of one machine only; whether the
  // sessions are shared by several machines is the user's to say.
  store.default_locks.clear();
  registry.add_store("redis", std::move(store));
  registry.add_lock_manager("redis", lock_manager_type<RedisLockManager>(&redis::parse_lock_section));
}

}  // namespace sessionkit::detail

// Registration functions of the built-in back ends. Each back end defines its
// own in its directory; registry.cpp calls those compiled in (SESSIONKIT_HAVE_*).
#pragma once

namespace sessionkit {
class Registry;
namespace detail {

void register_memory_store(Registry& registry);
void register_thread_lock_manager(Registry& registry);
void register_none_lock_manager(Registry& registry);
void register_shm_lock_manager(Registry& registry);    // core/src/locks/shm_lock_manager.cpp
void register_fcntl_lock_manager(Registry& registry);  // core/src/locks/fcntl_lock_manager.cpp
void register_lmdb_store(Registry& registry);          // backends/lmdb/ (SESSIONKIT_HAVE_LMDB)
void register_file_store(Registry& registry);          // backends/file/ (SESSIONKIT_HAVE_FILE)
void register_redis_backends(Registry& registry);      // backends/redis/ (SESSIONKIT_HAVE_REDIS)

}  // namespace detail
}  // namespace sessionkit

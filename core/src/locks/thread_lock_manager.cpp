#include "locks/thread_lock_manager.hpp"

#include <nlohmann/json.hpp>

#include "backend_type.hpp"
#include "builtin_backends.hpp"
#include "config_reader.hpp"
#include "locks/lock_options.hpp"
#include "sessionkit/registry.hpp"

namespace sessionkit {

ThreadLockManager::ThreadLockManager(std::uint32_t slots, std::uint32_t resource_slots)
    : LockManager(slots, resource_slots), slots_(new Slot[slots + resource_slots]) {}

ThreadLockManager::~ThreadLockManager() = default;

LockStatus ThreadLockManager::try_lock_slot(std::uint32_t slot) {
  return slots_[slot].mu.try_lock() ? LockStatus::acquired : LockStatus::timed_out;
}

LockStatus ThreadLockManager::lock_slot(std::uint32_t slot, Deadline deadline) {
  return slots_[slot].mu.try_lock_until(deadline) ? LockStatus::acquired : LockStatus::timed_out;
}

void ThreadLockManager::unlock_slot(std::uint32_t slot) { slots_[slot].mu.unlock(); }

namespace detail {

void register_thread_lock_manager(Registry& registry) {
  auto parse = [](const nlohmann::json& section, const std::filesystem::path&) {
    ConfigReader r(section, "locks");
    r.string("type", "thread");
    LockLayoutOptions o = read_lock_layout(r);
    r.finish();
    return o;
  };
  registry.add_lock_manager("thread",
                            lock_manager_type<ThreadLockManager>(parse, /*shared_across_processes=*/false));
}

}  // namespace detail
}  // namespace sessionkit

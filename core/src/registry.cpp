#include "sessionkit/registry.hpp"

#include <map>
#include <mutex>

#include "builtin_backends.hpp"
#include "sessionkit/error.hpp"

namespace sessionkit {

struct Registry::Impl {
  mutable std::mutex mu;
  std::map<std::string, StoreType, std::less<>> stores;
  std::map<std::string, LockManagerType, std::less<>> lock_managers;
};

Registry::Registry() : impl_(std::make_unique<Impl>()) {}
Registry::~Registry() = default;

Registry& Registry::global() {
  static Registry* registry = [] {
    auto* r = new Registry();  // never destroyed: factories may be used from atexit paths
    detail::register_memory_store(*r);
    detail::register_thread_lock_manager(*r);
    detail::register_none_lock_manager(*r);
#if SESSIONKIT_HAVE_SHM_LOCKS
    detail::register_shm_lock_manager(*r);
#endif
#if SESSIONKIT_HAVE_FCNTL_LOCKS
    detail::register_fcntl_lock_manager(*r);
#endif
#if SESSIONKIT_HAVE_LMDB
    detail::register_lmdb_store(*r);
#endif
#if SESSIONKIT_HAVE_FILE
    detail::register_file_store(*r);
#endif
#if SESSIONKIT_HAVE_REDIS
    detail::register_redis_backends(*r);
#endif
    return r;
  }();
  return *registry;
}

void Registry::add_store(std::string type, StoreType factory) {
  if (!factory.validate || !factory.create) {
    throw Error(errc::invalid_argument, "Registry::add_store: validate and create must be set");
  }
  std::lock_guard lock(impl_->mu);
  impl_->stores.insert_or_assign(std::move(type), std::move(factory));
}

void Registry::add_lock_manager(std::string type, LockManagerType factory) {
  if (!factory.validate || !factory.create) {
    throw Error(errc::invalid_argument, "Registry::add_lock_manager: validate and create must be set");
  }
  std::lock_guard lock(impl_->mu);
  impl_->lock_managers.insert_or_assign(std::move(type), std::move(factory));
}

namespace {

template <typename Map>
std::string known_names(const Map& map) {
  std::string names;
  for (const auto& [name, unused] : map) names += (names.empty() ? "\"" : ", \"") + name + "\"";
  return names;
}

}  // namespace

StoreType Registry::store(std::string_view type, std::string_view key) const {
  std::lock_guard lock(impl_->mu);
  auto it = impl_->stores.find(type);
  if (it == impl_->stores.end()) {
    throw Error(errc::bad_config, std::string(key) + ": unknown store type \"" + std::string(type) +
                                      "\" (this build has " + known_names(impl_->stores) + ")");
  }
  return it->second;
}

LockManagerType Registry::lock_manager(std::string_view type, std::string_view key) const {
  std::lock_guard lock(impl_->mu);
  auto it = impl_->lock_managers.find(type);
  if (it == impl_->lock_managers.end()) {
    throw Error(errc::bad_config, std::string(key) + ": unknown lock manager type \"" + std::string(type) +
                                      "\" (this build has " + known_names(impl_->lock_managers) + ")");
  }
  return it->second;
}

std::vector<std::string> Registry::store_types() const {
  std::lock_guard lock(impl_->mu);
  std::vector<std::string> out;
  for (const auto& [name, unused] : impl_->stores) out.push_back(name);
  return out;
}

std::vector<std::string> Registry::lock_manager_types() const {
  std::lock_guard lock(impl_->mu);
  std::vector<std::string> out;
  for (const auto& [name, unused] : impl_->lock_managers) out.push_back(name);
  return out;
}

}  // namespace sessionkit

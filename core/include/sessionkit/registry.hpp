// Registry: maps the configuration's "type" strings to store and lock-manager
// factories. Built-in types ("memory", "thread", "none", and the back ends
// compiled in: "lmdb", "file", "shm", "fcntl", "redis") are registered before
// Registry::global() returns; applications may add their own types at start-up.
//
// A factory receives the whole JSON object of its section ("store" or "locks",
// including "type") and the directory that relative paths are resolved against.
// validate() must reject unknown keys, wrong types and bad values with
// Error(errc::bad_config) naming the key ("store.path"), without side effects;
// create() builds the object (and may throw any sessionkit::Error).
//
// Thread safety: all methods are safe to call concurrently.
#pragma once

#include <filesystem>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json_fwd.hpp>

namespace sessionkit {

class Store;
class LockManager;

struct StoreType {
  std::function<void(const nlohmann::json& section, const std::filesystem::path& base_dir)> validate;
  std::function<std::unique_ptr<Store>(const nlohmann::json& section, const std::filesystem::path& base_dir)>
      create;
  // False for stores whose records live in one process (the memory store):
  // they cannot be combined with a cross-process lock manager.
  bool shared_across_processes = true;
  // The lock manager ("type" of a default "locks" section) of a config that
  // names this store but has no "locks" section. Empty: such a config is
  // refused with Error(bad_config), the store's locks must be named.
  std::string default_locks = "thread";
  // Optional: the file or directory the store keeps its records in, for a
  // section that validate() accepted. An "shm" locks section without a
  // "name" is then given one derived from it, so that every process serving
  // this store shares one lock region and other stores on the machine do not.
  std::function<std::filesystem::path(const nlohmann::json& section, const std::filesystem::path& base_dir)>
      location;
};

struct LockManagerType {
  std::function<void(const nlohmann::json& section, const std::filesystem::path& base_dir)> validate;
  std::function<std::unique_ptr<LockManager>(const nlohmann::json& section,
                                             const std::filesystem::path& base_dir)>
      create;
  bool shared_across_processes = true;
};

class Registry {
 public:
  // The process-wide registry, with the built-in types registered.
  static Registry& global();

  // Adds or replaces a type. REQUIRES: both callables set.
  void add_store(std::string type, StoreType factory);
  void add_lock_manager(std::string type, LockManagerType factory);

  // Throws Error(bad_config) naming `key` ("store.type") when unknown.
  StoreType store(std::string_view type, std::string_view key = "store.type") const;
  LockManagerType lock_manager(std::string_view type, std::string_view key = "locks.type") const;

  std::vector<std::string> store_types() const;
  std::vector<std::string> lock_manager_types() const;

  Registry();
  ~Registry();
  Registry(const Registry&) = delete;
  Registry& operator=(const Registry&) = delete;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace sessionkit

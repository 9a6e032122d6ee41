// Registry entries for back ends whose validate() and create() share one
// parser: validate parses and drops the result, create parses and builds
// `Impl` from it. `parse(section, base_dir)` throws Error(bad_config) naming
// the key.
#pragma once

#include <filesystem>
#include <memory>

#include <nlohmann/json.hpp>

#include "sessionkit/lock_manager.hpp"
#include "sessionkit/registry.hpp"
#include "sessionkit/store.hpp"

namespace sessionkit::detail {

template <typename Impl, typename Parse>
StoreType store_type(Parse parse, bool shared_across_processes = true) {
  StoreType t;
  t.shared_across_processes = shared_across_processes;
  t.validate = [parse](const nlohmann::json& section, const std::filesystem::path& base_dir) {
    (void)parse(section, base_dir);
  };
  t.create = [parse](const nlohmann::json& section,
                     const std::filesystem::path& base_dir) -> std::unique_ptr<Store> {
    return std::make_unique<Impl>(parse(section, base_dir));
  };
  return t;
}

template <typename Impl, typename Parse>
LockManagerType lock_manager_type(Parse parse, bool shared_across_processes = true) {
  LockManagerType t;
  t.shared_across_processes = shared_across_processes;
  t.validate = [parse](const nlohmann::json& section, const std::filesystem::path& base_dir) {
    (void)parse(section, base_dir);
  };
  t.create = [parse](const nlohmann::json& section,
                     const std::filesystem::path& base_dir) -> std::unique_ptr<LockManager> {
    return std::make_unique<Impl>(parse(section, base_dir));
  };
  return t;
}

}  // namespace sessionkit::detail

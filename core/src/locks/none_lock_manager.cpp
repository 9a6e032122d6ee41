// NoneLockManager ("none"): an explicit opt-out of locking. Every lock
// succeeds at once; concurrent requests on one session may lose updates. For
// read-mostly applications that accept last-writer-wins, and for measuring
// what locking costs.
#include <nlohmann/json.hpp>

#include "builtin_backends.hpp"
#include "config_reader.hpp"
#include "locks/lock_options.hpp"
#include "sessionkit/lock_manager.hpp"
#include "sessionkit/registry.hpp"

namespace sessionkit {
namespace {

class NoneLockManager final : public LockManager {
 public:
  using LockManager::LockManager;
  std::string_view type() const noexcept override { return "none"; }
  bool shared_across_processes() const noexcept override { return false; }

 protected:
  LockStatus try_lock_slot(std::uint32_t) override { return LockStatus::acquired; }
  LockStatus lock_slot(std::uint32_t, Deadline) override { return LockStatus::acquired; }
  void unlock_slot(std::uint32_t) override {}
};

}  // namespace

namespace detail {

void register_none_lock_manager(Registry& registry) {
  auto parse = [](const nlohmann::json& section) {
    ConfigReader r(section, "locks");
    r.string("type", "none");
    LockLayoutOptions o = read_lock_layout(r);
    r.finish();
    return o;
  };
  LockManagerType t;
  t.shared_across_processes = false;
  t.validate = [parse](const nlohmann::json& section, const std::filesystem::path&) { parse(section); };
  t.create = [parse](const nlohmann::json& section,
                     const std::filesystem::path&) -> std::unique_ptr<LockManager> {
    LockLayoutOptions o = parse(section);
    return std::make_unique<NoneLockManager>(o.slots, o.resource_slots);
  };
  registry.add_lock_manager("none", std::move(t));
}

}  // namespace detail
}  // namespace sessionkit

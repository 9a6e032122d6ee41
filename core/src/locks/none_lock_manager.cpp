// NoneLockManager ("none"): an explicit opt-out of locking. Every lock
// succeeds at once; concurrent requests on one session may lose updates. For
// read-mostly applications that accept last-writer-wins, and for measuring
// what locking costs.
#include <nlohmann/json.hpp>

#include "backend_type.hpp"
#include "builtin_backends.hpp"
#include "config_reader.hpp"
#include "locks/lock_options.hpp"
#include "sessionkit/lock_manager.hpp"
#include "sessionkit/registry.hpp"

namespace sessionkit {
namespace {

class NoneLockManager final : public LockManager {
 public:
  explicit NoneLockManager(const detail::LockLayoutOptions& o) : LockManager(o.slots, o.resource_slots) {}
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
  auto parse = [](const nlohmann::json& section, const std::filesystem::path&) {
    ConfigReader r(section, "locks");
    r.string("type", "none");
    LockLayoutOptions o = read_lock_layout(r);
    r.finish();
    return o;
  };
  registry.add_lock_manager("none",
                            lock_manager_type<NoneLockManager>(parse, /*shared_across_processes=*/false));
}

}  // namespace detail
}  // namespace sessionkit

// ThreadLockManager ("thread"): slots that exclude the threads of one process.
// Each slot is its own timed mutex on its own cache line, so threads on
// different sessions do not contend. Nothing is shared with other processes.
#pragma once

#include <memory>
#include <mutex>

#include "locks/lock_options.hpp"
#include "sessionkit/lock_manager.hpp"

namespace sessionkit {

class ThreadLockManager final : public LockManager {
 public:
  ThreadLockManager(std::uint32_t slots, std::uint32_t resource_slots);
  explicit ThreadLockManager(const detail::LockLayoutOptions& o)
      : ThreadLockManager(o.slots, o.resource_slots) {}
  ~ThreadLockManager() override;

  std::string_view type() const noexcept override { return "thread"; }
  bool shared_across_processes() const noexcept override { return false; }

 protected:
  LockStatus try_lock_slot(std::uint32_t slot) override;
  LockStatus lock_slot(std::uint32_t slot, Deadline deadline) override;
  void unlock_slot(std::uint32_t slot) override;

 private:
  struct alignas(64) Slot {
    std::timed_mutex mu;
  };
  std::unique_ptr<Slot[]> slots_;
};

}  // namespace sessionkit

#include "sessionkit/lock_manager.hpp"

#include <algorithm>
#include <atomic>
#include <string>
#include <vector>

#include "siphash.hpp"
#include "sessionkit/error.hpp"

namespace sessionkit {
namespace {

struct Held {
  std::uint64_t instance;
  std::uint32_t slot;
  std::uint32_t depth;
};

// The slots this thread holds, across all managers. A thread holds a handful
// at most, so a vector beats any map.
thread_local std::vector<Held> t_held;

std::atomic<std::uint64_t> g_next_instance{1};

Held* find_held(std::uint64_t instance, std::uint32_t slot) {
  for (Held& h : t_held) {
    if (h.instance == instance && h.slot == slot) return &h;
  }
  return nullptr;
}

}  // namespace

struct LockManager::Counters {
  std::atomic<std::uint64_t> acquisitions{0};
  std::atomic<std::uint64_t> reentries{0};
  std::atomic<std::uint64_t> waits{0};
  std::atomic<std::uint64_t> wait_ns{0};
  std::atomic<std::uint64_t> timeouts{0};
  std::atomic<std::uint64_t> owner_deaths{0};
};

LockManager::LockManager(std::uint32_t slots, std::uint32_t resource_slots)
    : slots_(slots), resource_slots_(resource_slots), instance_(g_next_instance.fetch_add(1)),
      counters_(new Counters) {
  if (slots < 2 || resource_slots < 1) {
    delete counters_;
    throw Error(errc::invalid_argument, "LockManager: needs slots >= 2 and resource_slots >= 1");
  }
}

LockManager::~LockManager() {
  std::erase_if(t_held, [this](const Held& h) { return h.instance == instance_; });
  delete counters_;
}

std::uint32_t LockManager::slot_for(std::string_view id) const noexcept {
  return 1 + static_cast<std::uint32_t>(detail::slot_hash(id) % (slots_ - 1));
}

std::uint32_t LockManager::resource_slot_for(std::string_view name) const noexcept {
  // A different input domain than ids, so a name equal to an id does not
  // correlate with that id's slot.
  std::string keyed = "resource:";
  keyed.append(name);
  return slots_ + static_cast<std::uint32_t>(detail::slot_hash(keyed) % resource_slots_);
}

void LockManager::check_order(std::uint32_t slot) const {
  for (const Held& h : t_held) {
    if (h.instance == instance_ && is_resource_slot(h.slot) && h.slot != slot) {
      throw Error(errc::failed_precondition,
                  "lock order: this thread holds resource slot " + std::to_string(h.slot) +
                      " and may not take slot " + std::to_string(slot) +
                      " (take session locks before resource locks, one resource lock at a time)");
    }
  }
}

LockStatus LockManager::finish_acquire(std::uint32_t slot, LockStatus status) {
  if (status == LockStatus::timed_out) return status;
  counters_->acquisitions.fetch_add(1, std::memory_order_relaxed);
  if (status == LockStatus::acquired_after_owner_death) {
    counters_->owner_deaths.fetch_add(1, std::memory_order_relaxed);
  }
  t_held.push_back(Held{instance_, slot, 1});
  return status;
}

LockStatus LockManager::lock(std::uint32_t slot, Deadline deadline) {
  if (slot >= total_slots()) {
    throw Error(errc::invalid_argument, "LockManager::lock: slot " + std::to_string(slot) + " out of range");
  }
  if (Held* h = find_held(instance_, slot)) {
    ++h->depth;
    counters_->reentries.fetch_add(1, std::memory_order_relaxed);
    return LockStatus::acquired;
  }
  check_order(slot);
  LockStatus status = try_lock_slot(slot);
  if (status == LockStatus::timed_out) {
    counters_->waits.fetch_add(1, std::memory_order_relaxed);
    const auto start = std::chrono::steady_clock::now();
    status = lock_slot(slot, deadline);
    const auto waited = std::chrono::steady_clock::now() - start;
    counters_->wait_ns.fetch_add(
        static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(waited).count()),
        std::memory_order_relaxed);
    if (status == LockStatus::timed_out) {
      counters_->timeouts.fetch_add(1, std::memory_order_relaxed);
      return status;
    }
  }
  return finish_acquire(slot, status);
}

LockStatus LockManager::try_lock(std::uint32_t slot) {
  if (slot >= total_slots()) {
    throw Error(errc::invalid_argument, "LockManager::try_lock: slot " + std::to_string(slot) + " out of range");
  }
  if (Held* h = find_held(instance_, slot)) {
    ++h->depth;
    counters_->reentries.fetch_add(1, std::memory_order_relaxed);
    return LockStatus::acquired;
  }
  check_order(slot);
  return finish_acquire(slot, try_lock_slot(slot));
}

void LockManager::unlock(std::uint32_t slot) {
  Held* h = find_held(instance_, slot);
  if (h == nullptr) {
    throw Error(errc::failed_precondition,
                "LockManager::unlock: this thread does not hold slot " + std::to_string(slot));
  }
  if (--h->depth > 0) return;
  std::erase_if(t_held, [this, slot](const Held& e) { return e.instance == instance_ && e.slot == slot; });
  unlock_slot(slot);
}

bool LockManager::held_by_this_thread(std::uint32_t slot) const noexcept {
  return find_held(instance_, slot) != nullptr;
}

void LockManager::after_fork() {
  std::erase_if(t_held, [this](const Held& h) { return h.instance == instance_; });
  reopen_after_fork();
}

LockStats LockManager::stats() const noexcept {
  LockStats s;
  s.acquisitions = counters_->acquisitions.load(std::memory_order_relaxed);
  s.reentries = counters_->reentries.load(std::memory_order_relaxed);
  s.waits = counters_->waits.load(std::memory_order_relaxed);
  s.wait_ns = counters_->wait_ns.load(std::memory_order_relaxed);
  s.timeouts = counters_->timeouts.load(std::memory_order_relaxed);
  s.owner_deaths = counters_->owner_deaths.load(std::memory_order_relaxed);
  return s;
}

}  // namespace sessionkit

#include "sessionkit/lock_manager.hpp"

#include <algorithm>
#include <atomic>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "sessionkit/error.hpp"
#include "siphash.hpp"

namespace sessionkit {
namespace {

struct Held {
  std::uint64_t instance;
  std::uint32_t slot;
  std::uint32_t depth;
};

struct ThreadCounters;

// Everything the lock path keeps per thread, in one thread-local object so a
// lock or unlock reaches thread-local storage once. initial-exec: the library
// is position-independent (it goes into httpd modules), and the default TLS
// model would make every access a __tls_get_addr call; the object is small
// enough for the static TLS space glibc keeps for dlopen()ed libraries.
struct ThreadState {
  // The slots this thread holds, across all managers. A thread holds a
  // handful at most, so a vector beats any map.
  std::vector<Held> held;
  // This thread's counter blocks by manager instance. Instance numbers are
  // never reused, so an entry of a destroyed manager is never looked up again.
  std::vector<std::pair<std::uint64_t, ThreadCounters*>> counters;
  // The last block used: nearly every thread uses one manager.
  std::uint64_t last_instance = 0;
  ThreadCounters* last_block = nullptr;
};

__attribute__((tls_model("initial-exec"))) thread_local ThreadState t_state;

std::atomic<std::uint64_t> g_next_instance{1};

Held* find_held(ThreadState& ts, std::uint64_t instance, std::uint32_t slot) {
  for (Held& h : ts.held) {
    if (h.instance == instance && h.slot == slot) return &h;
  }
  return nullptr;
}

// One thread's counters for one manager. Only that thread writes them (plain
// load + store, no locked instruction on the lock path); stats() sums all
// blocks with relaxed loads.
struct alignas(64) ThreadCounters {
  std::atomic<std::uint64_t> acquisitions{0};
  std::atomic<std::uint64_t> reentries{0};
  std::atomic<std::uint64_t> waits{0};
  std::atomic<std::uint64_t> wait_ns{0};
  std::atomic<std::uint64_t> timeouts{0};
  std::atomic<std::uint64_t> owner_deaths{0};
};

inline void add(std::atomic<std::uint64_t>& c, std::uint64_t n = 1) {
  c.store(c.load(std::memory_order_relaxed) + n, std::memory_order_relaxed);
}

}  // namespace

struct LockManager::Counters {
  std::mutex mu;
  std::vector<std::unique_ptr<ThreadCounters>> blocks;  // one per thread that used the manager

  ThreadCounters& mine(ThreadState& ts, std::uint64_t instance) {
    if (ts.last_instance == instance) return *ts.last_block;
    ThreadCounters* found = nullptr;
    for (const auto& [id, block] : ts.counters) {
      if (id == instance) found = block;
    }
    if (found == nullptr) {
      std::lock_guard lock(mu);
      blocks.push_back(std::make_unique<ThreadCounters>());
      found = blocks.back().get();
      ts.counters.emplace_back(instance, found);
    }
    ts.last_instance = instance;
    ts.last_block = found;
    return *found;
  }
};

LockManager::LockManager(std::uint32_t slots, std::uint32_t resource_slots)
    : slots_(slots),
      resource_slots_(resource_slots),
      instance_(g_next_instance.fetch_add(1)),
      counters_(new Counters) {
  if (slots < 2 || resource_slots < 1) {
    delete counters_;
    throw Error(errc::invalid_argument, "LockManager: needs slots >= 2 and resource_slots >= 1");
  }
}

LockManager::~LockManager() {
  std::erase_if(t_state.held, [this](const Held& h) { return h.instance == instance_; });
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

LockStatus LockManager::finish_acquire(std::uint32_t slot, LockStatus status) {
  if (status == LockStatus::timed_out) return status;
  ThreadCounters& c = counters_->mine(t_state, instance_);
  add(c.acquisitions);
  if (status == LockStatus::acquired_after_owner_death) add(c.owner_deaths);
  t_state.held.push_back(Held{instance_, slot, 1});
  return status;
}

namespace {

// One pass over this thread's holds of manager `m`: the slot's entry if held
// (a re-entry), else the lock-order check.
Held* held_or_check_order(const LockManager& m, std::uint64_t instance, std::uint32_t slot) {
  Held* same = nullptr;
  const Held* resource = nullptr;
  for (Held& h : t_state.held) {
    if (h.instance != instance) continue;
    if (h.slot == slot) {
      same = &h;
    } else if (m.is_resource_slot(h.slot)) {
      resource = &h;
    }
  }
  if (same == nullptr && resource != nullptr) {
    throw Error(errc::failed_precondition,
                "lock order: this thread holds resource slot " + std::to_string(resource->slot) +
                    " and may not take slot " + std::to_string(slot) +
                    " (take session locks before resource locks, one resource lock at a time)");
  }
  return same;
}

}  // namespace

LockStatus LockManager::lock(std::uint32_t slot, Deadline deadline) { return acquire(slot, &deadline, {}); }

LockStatus LockManager::lock(std::uint32_t slot, std::chrono::milliseconds wait) {
  return acquire(slot, nullptr, wait);
}

LockStatus LockManager::acquire(std::uint32_t slot, const Deadline* deadline,
                                std::chrono::milliseconds wait) {
  if (slot >= total_slots()) {
    throw Error(errc::invalid_argument, "LockManager::lock: slot " + std::to_string(slot) + " out of range");
  }
  if (Held* h = held_or_check_order(*this, instance_, slot)) {
    ++h->depth;
    add(counters_->mine(t_state, instance_).reentries);
    return LockStatus::acquired;
  }
  LockStatus status = try_lock_slot(slot);
  if (status == LockStatus::timed_out) {
    const auto start = std::chrono::steady_clock::now();
    Deadline until = Deadline::max();
    if (deadline != nullptr) {
      until = *deadline;
    } else if (wait < std::chrono::duration_cast<std::chrono::milliseconds>(Deadline::max() - start)) {
      until = start + wait;  // else a huge wait: no deadline rather than an overflow
    }
    status = lock_slot(slot, until);
    const auto waited = std::chrono::steady_clock::now() - start;
    ThreadCounters& c = counters_->mine(t_state, instance_);
    add(c.waits);
    add(c.wait_ns,
        static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(waited).count()));
    if (status == LockStatus::timed_out) {
      add(c.timeouts);
      return status;
    }
  }
  return finish_acquire(slot, status);
}

LockStatus LockManager::try_lock(std::uint32_t slot) {
  if (slot >= total_slots()) {
    throw Error(errc::invalid_argument,
                "LockManager::try_lock: slot " + std::to_string(slot) + " out of range");
  }
  if (Held* h = held_or_check_order(*this, instance_, slot)) {
    ++h->depth;
    add(counters_->mine(t_state, instance_).reentries);
    return LockStatus::acquired;
  }
  return finish_acquire(slot, try_lock_slot(slot));
}

void LockManager::unlock(std::uint32_t slot) {
  Held* h = find_held(t_state, instance_, slot);
  if (h == nullptr) {
    throw Error(errc::failed_precondition,
                "LockManager::unlock: this thread does not hold slot " + std::to_string(slot));
  }
  if (--h->depth > 0) return;
  // Swap-remove: the order of holds does not matter.
  if (h != &t_state.held.back()) *h = t_state.held.back();
  t_state.held.pop_back();
  unlock_slot(slot);
}

bool LockManager::held_by_this_thread(std::uint32_t slot) const noexcept {
  return find_held(t_state, instance_, slot) != nullptr;
}

void LockManager::after_fork() {
  std::erase_if(t_state.held, [this](const Held& h) { return h.instance == instance_; });
  reopen_after_fork();
}

LockStats LockManager::stats() const noexcept {
  LockStats s;
  std::lock_guard lock(counters_->mu);
  for (const auto& c : counters_->blocks) {
    s.acquisitions += c->acquisitions.load(std::memory_order_relaxed);
    s.reentries += c->reentries.load(std::memory_order_relaxed);
    s.waits += c->waits.load(std::memory_order_relaxed);
    s.wait_ns += c->wait_ns.load(std::memory_order_relaxed);
    s.timeouts += c->timeouts.load(std::memory_order_relaxed);
    s.owner_deaths += c->owner_deaths.load(std::memory_order_relaxed);
  }
  return s;
}

}  // namespace sessionkit

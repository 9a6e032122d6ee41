// LockManager: a table of lock slots shared by every process and thread that
// serves sessions from one store, after mod_python's _apache._global_lock.
//
// Layout of the table (total_slots() = slots() + resource_slots()):
//   slot 0                        store-wide work (sweeps, store maintenance)
//   slots 1 .. slots()-1          sessions: slot_for(id) = 1 + H(id) mod (slots()-1)
//   slots() .. total_slots()-1    application resources: resource_slot_for(name)
// H is SipHash-2-4 under a fixed key, so every process maps an id to the same
// slot; ids are 256-bit random values, so nobody can aim at a chosen slot.
//
// Semantics every implementation gets from this base class:
//   - Re-entrant per thread: a thread that holds a slot and locks it again gets
//     it at once (counted in reentries) and must unlock it as many times. Two
//     sessions that hash to one slot in one thread therefore never self-deadlock.
//   - Lock order: while a thread holds a resource slot it may not lock a
//     session slot or a second resource slot (Error, errc::failed_precondition).
//     A session slot may be held while taking a resource slot.
//   - A slot must be unlocked by the thread that locked it.
//   - Deadlines are steady_clock time points; lock() returns timed_out at the
//     deadline, never throws for a timeout.
//   - acquired_after_owner_death means the previous holder died holding the
//     slot; whatever it guarded may be half-written and must be re-read.
//
// Thread safety: all methods may be called concurrently from any thread.
// Fork: a child must call after_fork() before using a manager created in the
// parent; locks held by the parent at fork() are not held by the child.
#pragma once

#include <chrono>
#include <cstdint>
#include <string_view>

namespace sessionkit {

enum class LockStatus {
  acquired,
  acquired_after_owner_death,
  timed_out,
};

struct LockStats {
  std::uint64_t acquisitions = 0;  // successful lock()/try_lock() calls, re-entries excluded
  std::uint64_t reentries = 0;     // lock() of a slot this thread already held
  std::uint64_t waits = 0;         // acquisitions that could not take the slot at once
  std::uint64_t wait_ns = 0;       // total time spent waiting, in nanoseconds
  std::uint64_t timeouts = 0;      // lock() calls that reached their deadline
  std::uint64_t owner_deaths = 0;  // acquisitions that recovered a slot from a dead holder
};

class LockManager {
 public:
  using Deadline = std::chrono::steady_clock::time_point;
  static constexpr std::uint32_t kStoreSlot = 0;

  // REQUIRES: slots >= 2, resource_slots >= 1.
  LockManager(std::uint32_t slots, std::uint32_t resource_slots);
  virtual ~LockManager();

  LockManager(const LockManager&) = delete;
  LockManager& operator=(const LockManager&) = delete;

  std::uint32_t slots() const noexcept { return slots_; }
  std::uint32_t resource_slots() const noexcept { return resource_slots_; }
  std::uint32_t total_slots() const noexcept { return slots_ + resource_slots_; }

  // The session slot of `id`, in [1, slots()-1].
  std::uint32_t slot_for(std::string_view id) const noexcept;
  // The resource slot of `name`, in [slots(), total_slots()-1].
  std::uint32_t resource_slot_for(std::string_view name) const noexcept;
  bool is_resource_slot(std::uint32_t slot) const noexcept { return slot >= slots_; }

  // Locks `slot`, waiting until `deadline` at the latest.
  // Throws Error(invalid_argument) for a slot out of range and
  // Error(failed_precondition) for a lock-order violation.
  LockStatus lock(std::uint32_t slot, Deadline deadline);
  // Locks `slot`, waiting at most `wait` (zero or less: one try, counted as a
  // wait and a timeout when the slot is busy). The clock is read only when the
  // slot is busy, so an uncontended lock costs no time lookup. Throws like
  // lock(slot, deadline).
  LockStatus lock(std::uint32_t slot, std::chrono::milliseconds wait);

  // Like lock() without waiting: timed_out when another holder has the slot.
  LockStatus try_lock(std::uint32_t slot);

  // Releases one level of this thread's hold on `slot`.
  // Throws Error(failed_precondition) when this thread does not hold it.
  void unlock(std::uint32_t slot);

  bool held_by_this_thread(std::uint32_t slot) const noexcept;

  // Confirms, right before a write, that this thread still holds `slot`, and
  // renews it where holds expire (Redis leases). Throws Error(aborted) when the
  // hold was lost (the write must not happen) and Error(unavailable) when that
  // cannot be checked. Managers whose holds cannot be lost (shm, fcntl,
  // thread) do nothing. REQUIRES: this thread locked `slot`.
  virtual void check_held(std::uint32_t slot) { (void)slot; }

  LockStats stats() const noexcept;

  // The registry name: "thread", "none", "shm", "fcntl", ...
  virtual std::string_view type() const noexcept = 0;
  // True when the slots exclude other processes too (shm, fcntl, redis).
  virtual bool shared_across_processes() const noexcept = 0;

  // Call in a child after fork(): forgets this thread's holds inherited from
  // the parent and lets the implementation reopen what cannot cross fork.
  void after_fork();

 protected:
  // The implementation's slot operations; called only for the first level of
  // a thread's hold. try_lock_slot returns timed_out when the slot is busy.
  virtual LockStatus try_lock_slot(std::uint32_t slot) = 0;
  virtual LockStatus lock_slot(std::uint32_t slot, Deadline deadline) = 0;
  virtual void unlock_slot(std::uint32_t slot) = 0;
  // Reopens descriptors or mappings that must not be shared with the parent.
  virtual void reopen_after_fork() {}

 private:
  // lock() with `deadline`, or when it is null, now + `wait` once waiting starts.
  LockStatus acquire(std::uint32_t slot, const Deadline* deadline, std::chrono::milliseconds wait);
  LockStatus finish_acquire(std::uint32_t slot, LockStatus status);

  const std::uint32_t slots_;
  const std::uint32_t resource_slots_;
  const std::uint64_t instance_;  // tells managers apart in the per-thread hold table
  struct Counters;
  Counters* counters_;
};

}  // namespace sessionkit

// ResourceLock: a cross-process lock on an application resource (a file, a
// counter), taken with SessionManager::lock_resource(name, wait).
//
// Names hash into the lock manager's resource range, apart from slot 0 and the
// session slots, so an application lock never blocks the session machinery.
// Lock order: a thread may hold its session while taking a resource lock, never
// the reverse, and holds at most one resource slot at a time; violations throw
// Error(errc::failed_precondition) instead of risking a deadlock.
// A holder that dies releases the lock (shm, fcntl); the next holder is told
// through recovered_from_dead_owner().
//
// Move-only; released by unlock() or destruction, in the thread that took it.
#pragma once

#include <cstdint>

namespace sessionkit {

class LockManager;

class ResourceLock {
 public:
  ResourceLock(ResourceLock&& other) noexcept;
  ResourceLock& operator=(ResourceLock&& other) noexcept;
  ResourceLock(const ResourceLock&) = delete;
  ResourceLock& operator=(const ResourceLock&) = delete;
  ~ResourceLock();

  void unlock() noexcept;
  bool owns_lock() const noexcept { return locks_ != nullptr; }
  bool recovered_from_dead_owner() const noexcept { return owner_died_; }
  std::uint32_t slot() const noexcept { return slot_; }

 private:
  friend class SessionManager;
  ResourceLock(LockManager* locks, std::uint32_t slot, bool owner_died) noexcept
      : locks_(locks), slot_(slot), owner_died_(owner_died) {}

  LockManager* locks_;
  std::uint32_t slot_;
  bool owner_died_;
};

}  // namespace sessionkit

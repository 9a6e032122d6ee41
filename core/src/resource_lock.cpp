#include "sessionkit/resource_lock.hpp"

#include <utility>

#include "sessionkit/lock_manager.hpp"

namespace sessionkit {

ResourceLock::ResourceLock(ResourceLock&& other) noexcept
    : locks_(std::exchange(other.locks_, nullptr)), slot_(other.slot_), owner_died_(other.owner_died_) {}

ResourceLock& ResourceLock::operator=(ResourceLock&& other) noexcept {
  if (this != &other) {
    unlock();
    locks_ = std::exchange(other.locks_, nullptr);
    slot_ = other.slot_;
    owner_died_ = other.owner_died_;
  }
  return *this;
}

ResourceLock::~ResourceLock() { unlock(); }

void ResourceLock::unlock() noexcept {
  if (locks_ == nullptr) return;
  try {
    locks_->unlock(slot_);
  } catch (...) {
    // Only when unlocked from a thread that does not hold it (contract breach).
  }
  locks_ = nullptr;
}

}  // namespace sessionkit

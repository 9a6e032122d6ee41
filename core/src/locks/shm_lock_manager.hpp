// ShmLockManager ("shm"): lock slots that exclude every thread of every process
// on one machine, as robust process-shared pthread mutexes in a named POSIX
// shared-memory region ("/sessionkit-<name>", visible as /dev/shm/sessionkit-<name>).
//
// Region layout: a 64-byte header {magic, version, slots,
// resource_slots, slot stride, sizeof(pthread_mutex_t)} followed by one
// 64-byte slot per lock, each holding one mutex, so slots never share a cache
// line. The region is created mode 0600.
//
// Creation is race-free: every attacher opens (or creates) the region and takes
// flock(LOCK_EX) on it; the first to find no magic word sizes it, initialises
// every mutex, writes the layout and then the magic word with release
// semantics. The others see the magic word (acquire) and check that the layout
// matches theirs; a different layout is Error(bad_config). An initialiser that
// dies half-way leaves no magic word, so the next attacher starts over.
//
// Crashes: a process that dies holding a slot leaves the mutex owner-dead; the
// next locker recovers it (pthread_mutex_consistent) and gets
// LockStatus::acquired_after_owner_death. The region outlives every process
// (it stays in /dev/shm until remove() or a reboot).
//
// Fork: the mapping is inherited and stays valid; after_fork() keeps it.
// Mutexes the parent's threads hold at fork() stay held by those threads.
// Descriptors: none stays open after construction (the region's fd is closed
// once mapped, and was opened O_CLOEXEC), so exec'd children inherit nothing.
//
// Thread safety: as LockManager. Errors: the constructor throws
// Error(bad_config) for a bad name or a layout mismatch and Error(io) when the
// region cannot be opened or mapped (permissions, /dev/shm full).
#pragma once

#include <sys/types.h>

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "sessionkit/lock_manager.hpp"

namespace sessionkit {

namespace detail {

class ConfigReader;

// A user the lock region or lock file is handed to (config key "owner"): a
// root parent (httpd) creates it, its unprivileged children or CGI programs
// attach to it. Shared by the shm and fcntl lock managers.
struct LockOwner {
  std::string user;
  uid_t uid = 0;
  gid_t gid = 0;  // the user's primary group
};

// Looks `user` up in the password database.
// Throws Error(bad_config) naming `key` when there is no such user.
LockOwner resolve_lock_owner(const std::string& user, std::string_view key);

// The optional "owner" key of a locks section.
std::optional<LockOwner> read_lock_owner(ConfigReader& r);

// fchown()s `fd` to `owner` when this process runs as root (geteuid() == 0);
// does nothing otherwise, since only root may give a file away.
// Throws Error(io) naming `what` when fchown fails.
void apply_lock_owner(int fd, const std::optional<LockOwner>& owner, const std::string& what);

}  // namespace detail

struct ShmLockOptions {
  // The region's name; the region is "/sessionkit-" + name. 1..200 printable
  // ASCII characters, no '/' and no space. Processes that use one name share
  // the slots, so every process serving one store must use the same name.
  std::string name = "sessionkit";
  std::uint32_t slots = 1024;         // slot 0 + session slots; >= 2
  std::uint32_t resource_slots = 64;  // application resource slots; >= 1
  // When set and this process runs as root, the region is chown()ed to this
  // user so its unprivileged processes (httpd children, CGI programs) can
  // attach by name. Ignored when not root.
  std::optional<detail::LockOwner> owner;
};

class ShmLockManager final : public LockManager {
 public:
  // Opens or creates the region. See the errors above.
  explicit ShmLockManager(const ShmLockOptions& options);
  ~ShmLockManager() override;

  std::string_view type() const noexcept override { return "shm"; }
  bool shared_across_processes() const noexcept override { return true; }

  // True when this process initialised the region (it found no magic word).
  bool created_region() const noexcept { return created_region_; }
  // The shm_open name, "/sessionkit-<name>".
  const std::string& region_name() const noexcept { return region_name_; }

  // Throws Error(bad_config) naming `key` when `name` is not a valid region name.
  static void validate_name(std::string_view name, std::string_view key);
  // "/sessionkit-" + name. REQUIRES: validate_name(name) passes.
  static std::string region_name_for(std::string_view name);
  // Unlinks the region named by `name`. Processes that have it mapped keep
  // using it; later attachers get a fresh one. Returns false when there was
  // none. Throws Error(invalid_argument) for a bad name, Error(io) for other
  // failures.
  static bool remove(std::string_view name);

  // The size in bytes of a region with these slot counts.
  static std::size_t region_size(std::uint32_t slots, std::uint32_t resource_slots) noexcept;

 protected:
  LockStatus try_lock_slot(std::uint32_t slot) override;
  LockStatus lock_slot(std::uint32_t slot, Deadline deadline) override;
  void unlock_slot(std::uint32_t slot) override;
  // Keeps the inherited mapping: it is the same region, not a copy.
  void reopen_after_fork() override {}

 private:
  struct Header;
  struct Slot;

  LockStatus finish(std::uint32_t slot, int rc, const char* call);

  std::string region_name_;
  void* base_ = nullptr;
  std::size_t size_ = 0;
  Slot* slots_array_ = nullptr;
  bool created_region_ = false;
};

}  // namespace sessionkit

// FcntlLockManager ("fcntl"): lock slots that exclude every thread of every
// process using one lock file: byte `slot` of the file is the slot's lock,
// taken with open-file-description locks (F_OFD_SETLK), which the kernel drops
// when the last descriptor of the holder's open file closes, so also when the
// holder dies.
//
// Two layers per slot, because OFD locks belong to an open file description,
// not to a thread: every thread of this process locks through one descriptor,
// and the kernel would let them all "hold" the same byte at once. A timed
// mutex per slot excludes this process's threads first; the file lock then
// excludes other processes.
//
// Waiting: the kernel has no timed F_OFD_SETLKW. lock_slot() polls
// F_OFD_SETLK with exponential back-off from 50 us to 5 ms until the deadline.
// A signal-driven timer could interrupt a blocking F_OFD_SETLKW instead, but a
// library embedded in httpd must not install signal handlers; polling costs a
// hand-over delay of up to ~5 ms under contention and gives no FIFO fairness.
//
// Crashes: a dead holder's lock is released by the kernel; the next locker
// gets LockStatus::acquired, never acquired_after_owner_death (the kernel does
// not say why a byte became free).
//
// Fork: a forked child shares the parent's open file description, hence its
// locks. after_fork() opens the file again in the child (a new description) and
// resets the per-slot mutexes; using the manager in a child before that throws
// Error(failed_precondition) instead of silently sharing the parent's locks.
// The descriptor is O_CLOEXEC, so exec'd programs inherit nothing.
//
// Thread safety: as LockManager. Errors: the constructor throws Error(io) when
// the lock file cannot be opened or created (missing directory, permissions,
// not a regular file); lock calls throw Error(io) when fcntl fails for another
// reason than a busy byte (ENOLCK on some network file systems).
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <filesystem>
#include <memory>
#include <mutex>
#include <optional>

#include "locks/shm_lock_manager.hpp"  // detail::LockOwner
#include "sessionkit/lock_manager.hpp"

namespace sessionkit {

struct FcntlLockOptions {
  // The lock file, created mode 0600 when missing. On a local file system:
  // fcntl locks over NFS are only as reliable as the NFS lock manager.
  std::filesystem::path path = "sessionkit.locks";
  std::uint32_t slots = 1024;         // slot 0 + session slots; >= 2
  std::uint32_t resource_slots = 64;  // application resource slots; >= 1
  // When set and this process runs as root, the lock file is chown()ed to this
  // user so its unprivileged processes can open it. Ignored when not root.
  std::optional<detail::LockOwner> owner;
};

class FcntlLockManager final : public LockManager {
 public:
  // Opens or creates the lock file. See the errors above.
  explicit FcntlLockManager(const FcntlLockOptions& options);
  ~FcntlLockManager() override;

  std::string_view type() const noexcept override { return "fcntl"; }
  bool shared_across_processes() const noexcept override { return true; }

  const std::filesystem::path& path() const noexcept { return path_; }

 protected:
  LockStatus try_lock_slot(std::uint32_t slot) override;
  LockStatus lock_slot(std::uint32_t slot, Deadline deadline) override;
  void unlock_slot(std::uint32_t slot) override;
  void reopen_after_fork() override;

 private:
  struct alignas(64) Slot {
    std::timed_mutex mu;
  };

  int open_file() const;
  void check_not_forked() const;
  // F_OFD_SETLK on byte `slot`: true when taken, false when another open file
  // description holds it.
  bool try_lock_byte(std::uint32_t slot);
  void unlock_byte(std::uint32_t slot);

  const std::filesystem::path path_;
  const std::optional<detail::LockOwner> owner_;
  int fd_ = -1;
  std::uint64_t fork_generation_ = 0;
  std::unique_ptr<Slot[]> slots_array_;
};

}  // namespace sessionkit

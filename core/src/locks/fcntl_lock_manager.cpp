#include "locks/fcntl_lock_manager.hpp"

#include <fcntl.h>
#include <pthread.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <new>
#include <thread>

#include <nlohmann/json.hpp>

#include "backend_type.hpp"
#include "builtin_backends.hpp"
#include "config_reader.hpp"
#include "locks/lock_options.hpp"
#include "sessionkit/error.hpp"
#include "sessionkit/registry.hpp"

namespace sessionkit {
namespace {

constexpr auto kFirstBackoff = std::chrono::microseconds(50);
constexpr auto kMaxBackoff = std::chrono::microseconds(5000);

// Incremented in every forked child (pthread_atfork), so a manager can tell
// that it is being used in a child whose after_fork() was never called.
std::atomic<std::uint64_t> g_fork_generation{0};

void note_fork_in_child() { g_fork_generation.fetch_add(1, std::memory_order_relaxed); }

void install_fork_hook() {
  static std::once_flag once;
  std::call_once(once, [] { ::pthread_atfork(nullptr, nullptr, &note_fork_in_child); });
}

[[noreturn]] void throw_io(const std::string& what, int err) {
  throw Error(errc::io, what + ": " + std::strerror(err));
}

struct flock byte_lock(short type, std::uint32_t slot) {
  struct flock fl {};
  fl.l_type = type;
  fl.l_whence = SEEK_SET;
  fl.l_start = static_cast<off_t>(slot);
  fl.l_len = 1;
  fl.l_pid = 0;  // must be 0 for OFD locks
  return fl;
}

}  // namespace

FcntlLockManager::FcntlLockManager(const FcntlLockOptions& options)
    : LockManager(options.slots, options.resource_slots),
      path_(options.path),
      owner_(options.owner),
      slots_array_(new Slot[static_cast<std::size_t>(options.slots) + options.resource_slots]) {
  install_fork_hook();
  fd_ = open_file();
  fork_generation_ = g_fork_generation.load(std::memory_order_relaxed);
}

FcntlLockManager::~FcntlLockManager() {
  if (fd_ >= 0) ::close(fd_);
}

int FcntlLockManager::open_file() const {
  // O_NOFOLLOW and the regular-file check keep a root process (which may
  // chown the file below) from being pointed at another file by a symlink.
  const int fd = ::open(path_.c_str(), O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (fd < 0) throw_io("open(" + path_.string() + ")", errno);
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    const int err = errno;
    ::close(fd);
    throw_io("fstat(" + path_.string() + ")", err);
  }
  if (!S_ISREG(st.st_mode)) {
    ::close(fd);
    throw Error(errc::io, path_.string() + ": not a regular file");
  }
  try {
    if (st.st_nlink == 1) detail::apply_lock_owner(fd, owner_, path_.string());
  } catch (...) {
    ::close(fd);
    throw;
  }
  return fd;
}

void FcntlLockManager::check_not_forked() const {
  if (g_fork_generation.load(std::memory_order_relaxed) != fork_generation_) [[unlikely]] {
    throw Error(errc::failed_precondition,
                "fcntl lock manager (" + path_.string() +
                    ") used in a forked child before after_fork(): the child would share the parent's locks");
  }
}

bool FcntlLockManager::try_lock_byte(std::uint32_t slot) {
  struct flock fl = byte_lock(F_WRLCK, slot);
  if (::fcntl(fd_, F_OFD_SETLK, &fl) == 0) return true;
  if (errno == EAGAIN || errno == EACCES) return false;
  throw_io("fcntl(" + path_.string() + ", F_OFD_SETLK, slot " + std::to_string(slot) + ")", errno);
}

void FcntlLockManager::unlock_byte(std::uint32_t slot) {
  struct flock fl = byte_lock(F_UNLCK, slot);
  if (::fcntl(fd_, F_OFD_SETLK, &fl) != 0) [[unlikely]] {
    throw_io("fcntl(" + path_.string() + ", F_UNLCK, slot " + std::to_string(slot) + ")", errno);
  }
}

LockStatus FcntlLockManager::try_lock_slot(std::uint32_t slot) {
  check_not_forked();
  std::timed_mutex& mu = slots_array_[slot].mu;
  if (!mu.try_lock()) return LockStatus::timed_out;
  std::unique_lock guard(mu, std::adopt_lock);  // released if the byte is busy or fcntl throws
  if (!try_lock_byte(slot)) return LockStatus::timed_out;
  guard.release();
  return LockStatus::acquired;
}

LockStatus FcntlLockManager::lock_slot(std::uint32_t slot, Deadline deadline) {
  check_not_forked();
  std::timed_mutex& mu = slots_array_[slot].mu;
  // Threads of this process queue on the mutex, so at most one of them polls
  // the file for this slot.
  if (!mu.try_lock_until(deadline)) return LockStatus::timed_out;
  std::unique_lock guard(mu, std::adopt_lock);
  std::chrono::microseconds backoff = kFirstBackoff;
  while (!try_lock_byte(slot)) {
    const auto now = std::chrono::steady_clock::now();
    if (now >= deadline) return LockStatus::timed_out;
    std::this_thread::sleep_for(std::min<std::chrono::steady_clock::duration>(backoff, deadline - now));
    backoff = std::min(backoff * 2, kMaxBackoff);
  }
  guard.release();
  return LockStatus::acquired;
}

void FcntlLockManager::unlock_slot(std::uint32_t slot) {
  // A child that skipped after_fork() inherits the forking thread's holds;
  // unlocking through the shared description would free the parent's lock.
  check_not_forked();
  std::timed_mutex& mu = slots_array_[slot].mu;
  std::unique_lock guard(mu, std::adopt_lock);  // the mutex is released even if fcntl fails
  unlock_byte(slot);
}

void FcntlLockManager::reopen_after_fork() {
  // A new open file description: the inherited one is the parent's, and the
  // parent's locks are held through it. Closing our copy of the descriptor
  // does not release them (the parent still has the description open).
  const int fresh = open_file();
  ::close(fd_);
  fd_ = fresh;
  // Only the forking thread exists in the child; mutexes other parent threads
  // held at fork() would stay locked forever. Construct fresh ones in place
  // (the old ones own no resources, so skipping their destructors is safe).
  const std::size_t total = total_slots();
  for (std::size_t i = 0; i < total; ++i) new (&slots_array_[i].mu) std::timed_mutex;
  fork_generation_ = g_fork_generation.load(std::memory_order_relaxed);
}

namespace detail {
namespace {

FcntlLockOptions parse_fcntl(const nlohmann::json& section, const std::filesystem::path& base_dir) {
  ConfigReader r(section, "locks");
  r.string("type", "fcntl");
  const LockLayoutOptions layout = read_lock_layout(r);
  FcntlLockOptions o;
  o.slots = layout.slots;
  o.resource_slots = layout.resource_slots;
  o.path = r.path("path", "sessionkit.locks", base_dir);
  o.owner = read_lock_owner(r);
  r.finish();
  return o;
}

}  // namespace

void register_fcntl_lock_manager(Registry& registry) {
  registry.add_lock_manager("fcntl", lock_manager_type<FcntlLockManager>(&parse_fcntl));
}

}  // namespace detail
}  // namespace sessionkit

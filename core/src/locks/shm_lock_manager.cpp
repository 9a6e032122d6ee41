#include "locks/shm_lock_manager.hpp"

#include <fcntl.h>
#include <pthread.h>
#include <pwd.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <new>
#include <vector>

#include <nlohmann/json.hpp>

#include "backend_type.hpp"
#include "builtin_backends.hpp"
#include "config_reader.hpp"
#include "locks/lock_options.hpp"
#include "sessionkit/error.hpp"
#include "sessionkit/registry.hpp"

namespace sessionkit {
namespace {

constexpr std::uint64_t kMagic = 0x534b4c4f434b5331;  // "SKLOCKS1"
constexpr std::uint32_t kVersion = 1;
constexpr std::size_t kLine = 64;
constexpr std::size_t kMaxNameLength = 200;
constexpr std::string_view kRegionPrefix = "/sessionkit-";

std::string errno_text(int err) { return std::strerror(err); }

[[noreturn]] void throw_io(const std::string& what, int err) {
  throw Error(errc::io, what + ": " + errno_text(err));
}

// Closes a descriptor on every exit path of the constructor.
class FdCloser {
 public:
  explicit FdCloser(int fd) : fd_(fd) {}
  ~FdCloser() { ::close(fd_); }
  FdCloser(const FdCloser&) = delete;
  FdCloser& operator=(const FdCloser&) = delete;

 private:
  int fd_;
};

// Drops the flock on every exit path. Closing the descriptor is not enough:
// a mapping keeps the open file description, and with it the flock, alive.
class FlockReleaser {
 public:
  explicit FlockReleaser(int fd) : fd_(fd) {}
  ~FlockReleaser() { ::flock(fd_, LOCK_UN); }
  FlockReleaser(const FlockReleaser&) = delete;
  FlockReleaser& operator=(const FlockReleaser&) = delete;

 private:
  int fd_;
};

// libstdc++ implements steady_clock with CLOCK_MONOTONIC (std::timed_mutex
// relies on the same fact), so a deadline converts without reading any clock.
timespec to_monotonic(LockManager::Deadline deadline) {
  const auto since = deadline.time_since_epoch();
  if (since.count() <= 0) return timespec{0, 0};
  const auto secs = std::chrono::duration_cast<std::chrono::seconds>(since);
  const auto nanos = std::chrono::duration_cast<std::chrono::nanoseconds>(since - secs);
  return timespec{static_cast<time_t>(secs.count()), static_cast<long>(nanos.count())};
}

}  // namespace

// The first cache line of the region. `magic` is written last (release) and
// read first (acquire): whoever sees it sees every mutex initialised.
struct alignas(kLine) ShmLockManager::Header {
  std::uint64_t magic;
  std::uint32_t version;
  std::uint32_t slots;
  std::uint32_t resource_slots;
  std::uint32_t slot_stride;  // sizeof(Slot): catches an ABI that lays slots out differently
  std::uint32_t mutex_size;   // sizeof(pthread_mutex_t): catches a 32-bit attacher
};

// One mutex per cache line: processes hammering neighbouring slots do not
// bounce one line between cores.
struct alignas(kLine) ShmLockManager::Slot {
  pthread_mutex_t mu;
};

static_assert(sizeof(pthread_mutex_t) <= kLine, "a slot must fit one cache line");
static_assert(std::atomic_ref<std::uint64_t>::is_always_lock_free,
              "the magic word is read by other processes without a lock");

namespace detail {

std::optional<LockOwner> read_lock_owner(ConfigReader& r) {
  if (r.raw("owner") == nullptr) return std::nullopt;
  return resolve_lock_owner(r.string("owner", ""), r.name("owner"));
}

LockOwner resolve_lock_owner(const std::string& user, std::string_view key) {
  if (user.empty()) throw Error(errc::bad_config, std::string(key) + ": must not be empty");
  long hint = ::sysconf(_SC_GETPW_R_SIZE_MAX);
  std::vector<char> buf(hint > 0 ? static_cast<std::size_t>(hint) : 16384);
  passwd pw{};
  passwd* found = nullptr;
  int rc = 0;
  while ((rc = ::getpwnam_r(user.c_str(), &pw, buf.data(), buf.size(), &found)) == ERANGE) {
    buf.resize(buf.size() * 2);
  }
  if (rc != 0) throw_io(std::string(key) + ": looking up user \"" + user + "\"", rc);
  if (found == nullptr) throw Error(errc::bad_config, std::string(key) + ": no such user \"" + user + "\"");
  return LockOwner{user, pw.pw_uid, pw.pw_gid};
}

void apply_lock_owner(int fd, const std::optional<LockOwner>& owner, const std::string& what) {
  if (!owner || ::geteuid() != 0) return;
  if (::fchown(fd, owner->uid, owner->gid) != 0) {
    throw_io("fchown(" + what + ", " + owner->user + ")", errno);
  }
}

}  // namespace detail

std::size_t ShmLockManager::region_size(std::uint32_t slots, std::uint32_t resource_slots) noexcept {
  return sizeof(Header) + (static_cast<std::size_t>(slots) + resource_slots) * sizeof(Slot);
}

namespace {

// Why `name` cannot name a region, or "" when it can.
std::string name_problem(std::string_view name) {
  if (name.empty()) return "must not be empty";
  if (name.size() > kMaxNameLength) {
    return "at most " + std::to_string(kMaxNameLength) + " characters, got " + std::to_string(name.size());
  }
  for (std::size_t i = 0; i < name.size(); ++i) {
    const auto c = static_cast<unsigned char>(name[i]);
    // Printable ASCII without space and '/': shm_open names one file in
    // /dev/shm, so a '/' would be a path and a control byte a trap in logs.
    if (c <= 0x20 || c >= 0x7f || c == '/') {
      return "character " + std::to_string(i) + " (byte " + std::to_string(c) +
             ") is not allowed: use printable ASCII without space or '/'";
    }
  }
  return "";
}

}  // namespace

void ShmLockManager::validate_name(std::string_view name, std::string_view key) {
  if (std::string why = name_problem(name); !why.empty()) {
    throw Error(errc::bad_config, std::string(key) + ": " + why);
  }
}

std::string ShmLockManager::region_name_for(std::string_view name) {
  std::string s(kRegionPrefix);
  s.append(name);
  return s;
}

bool ShmLockManager::remove(std::string_view name) {
  if (std::string why = name_problem(name); !why.empty()) {
    throw Error(errc::invalid_argument, "ShmLockManager::remove: name " + why);
  }
  const std::string region = region_name_for(name);
  if (::shm_unlink(region.c_str()) == 0) return true;
  if (errno == ENOENT) return false;
  throw_io("shm_unlink(" + region + ")", errno);
}

ShmLockManager::ShmLockManager(const ShmLockOptions& options)
    : LockManager(options.slots, options.resource_slots) {
  validate_name(options.name, "locks.name");
  region_name_ = region_name_for(options.name);
  const std::size_t want_size = region_size(options.slots, options.resource_slots);

  const int fd = ::shm_open(region_name_.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (fd < 0) {
    const int err = errno;
    throw Error(errc::io,
                "shm_open(" + region_name_ + "): " + errno_text(err) +
                    (err == EACCES ? " (the region belongs to another user; see locks.owner)" : ""));
  }
  FdCloser closer(fd);

  // Every attacher serialises here, so exactly one of many simultaneous
  // attachers finds no magic word and initialises; the rest wait for it.
  while (::flock(fd, LOCK_EX) != 0) {
    if (errno != EINTR) throw_io("flock(" + region_name_ + ")", errno);
  }
  FlockReleaser unflock(fd);
  detail::apply_lock_owner(fd, options.owner, region_name_);

  struct stat st {};
  if (::fstat(fd, &st) != 0) throw_io("fstat(" + region_name_ + ")", errno);
  const auto have_size = static_cast<std::size_t>(st.st_size);

  if (have_size >= sizeof(Header)) {
    void* p = ::mmap(nullptr, have_size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (p == MAP_FAILED) throw_io("mmap(" + region_name_ + ")", errno);
    auto* h = static_cast<Header*>(p);
    if (std::atomic_ref<std::uint64_t>(h->magic).load(std::memory_order_acquire) == kMagic) {
      const bool same = h->version == kVersion && h->slot_stride == sizeof(Slot) &&
                        h->mutex_size == sizeof(pthread_mutex_t) && h->slots == options.slots &&
                        h->resource_slots == options.resource_slots && have_size == want_size;
      if (!same) {
        const std::string found = "version " + std::to_string(h->version) + ", slots " +
                                  std::to_string(h->slots) + ", resource_slots " +
                                  std::to_string(h->resource_slots) + ", " + std::to_string(have_size) +
                                  " bytes";
        ::munmap(p, have_size);
        throw Error(errc::bad_config,
                    "locks.slots: the shm region " + region_name_ + " exists with another layout (" + found +
                        "; this configuration wants version " + std::to_string(kVersion) + ", slots " +
                        std::to_string(options.slots) + ", resource_slots " +
                        std::to_string(options.resource_slots) +
                        "). Use the same slots/resource_slots in every process, or stop them all and "
                        "remove /dev/shm" +
                        region_name_);
      }
      base_ = p;
      size_ = have_size;
      slots_array_ = reinterpret_cast<Slot*>(static_cast<char*>(p) + sizeof(Header));
      return;
    }
    // No magic word: new, or its initialiser died half-way. Nobody can be
    // using it, since nobody uses a region before seeing the magic word.
    ::munmap(p, have_size);
  }

  if (::ftruncate(fd, static_cast<off_t>(want_size)) != 0) throw_io("ftruncate(" + region_name_ + ")", errno);
  // tmpfs pages are allocated on first touch; a full /dev/shm would then be
  // SIGBUS in the middle of initialisation. Allocate now and fail cleanly.
  if (int rc = ::posix_fallocate(fd, 0, static_cast<off_t>(want_size)); rc != 0) {
    throw_io("posix_fallocate(" + region_name_ + ", " + std::to_string(want_size) + " bytes)", rc);
  }
  void* p = ::mmap(nullptr, want_size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  if (p == MAP_FAILED) throw_io("mmap(" + region_name_ + ")", errno);
  base_ = p;
  size_ = want_size;
  auto* h = static_cast<Header*>(p);
  slots_array_ = reinterpret_cast<Slot*>(static_cast<char*>(p) + sizeof(Header));

  pthread_mutexattr_t attr;
  int rc = ::pthread_mutexattr_init(&attr);
  if (rc == 0) rc = ::pthread_mutexattr_setpshared(&attr, PTHREAD_PROCESS_SHARED);
  if (rc == 0) rc = ::pthread_mutexattr_setrobust(&attr, PTHREAD_MUTEX_ROBUST);
  const std::uint32_t total = options.slots + options.resource_slots;
  for (std::uint32_t i = 0; rc == 0 && i < total; ++i) {
    Slot* s = new (&slots_array_[i]) Slot;
    rc = ::pthread_mutex_init(&s->mu, &attr);
  }
  ::pthread_mutexattr_destroy(&attr);
  if (rc != 0) {
    ::munmap(p, want_size);
    throw_io("pthread_mutex_init(" + region_name_ + ")", rc);
  }
  h->version = kVersion;
  h->slots = options.slots;
  h->resource_slots = options.resource_slots;
  h->slot_stride = sizeof(Slot);
  h->mutex_size = sizeof(pthread_mutex_t);
  std::atomic_ref<std::uint64_t>(h->magic).store(kMagic, std::memory_order_release);
  created_region_ = true;
}

ShmLockManager::~ShmLockManager() {
  if (base_ != nullptr) ::munmap(base_, size_);
}

LockStatus ShmLockManager::finish(std::uint32_t slot, int rc, const char* call) {
  switch (rc) {
    case 0: return LockStatus::acquired;
    case EBUSY:
    case ETIMEDOUT: return LockStatus::timed_out;
    case EOWNERDEAD: {
      // We hold the mutex; the previous holder died with it. Mark it usable
      // again so the slot is not lost, and tell the caller.
      const int c = ::pthread_mutex_consistent(&slots_array_[slot].mu);
      if (c != 0) throw_io(region_name_ + ": pthread_mutex_consistent(slot " + std::to_string(slot) + ")", c);
      return LockStatus::acquired_after_owner_death;
    }
    case ENOTRECOVERABLE:
      // Only reachable if someone unlocked an owner-dead mutex without
      // pthread_mutex_consistent, which this class never does.
      throw Error(errc::io, region_name_ + ": slot " + std::to_string(slot) +
                                " is not recoverable (a process unlocked it after its owner died without "
                                "marking it consistent); stop every process and remove /dev/shm" +
                                region_name_);
    default: throw_io(region_name_ + ": " + call + "(slot " + std::to_string(slot) + ")", rc);
  }
}

LockStatus ShmLockManager::try_lock_slot(std::uint32_t slot) {
  const int rc = ::pthread_mutex_trylock(&slots_array_[slot].mu);
  if (rc == 0) [[likely]]
    return LockStatus::acquired;
  return finish(slot, rc, "pthread_mutex_trylock");
}

LockStatus ShmLockManager::lock_slot(std::uint32_t slot, Deadline deadline) {
  const timespec ts = to_monotonic(deadline);
  const int rc = ::pthread_mutex_clocklock(&slots_array_[slot].mu, CLOCK_MONOTONIC, &ts);
  if (rc == 0) [[likely]]
    return LockStatus::acquired;
  return finish(slot, rc, "pthread_mutex_clocklock");
}

void ShmLockManager::unlock_slot(std::uint32_t slot) {
  const int rc = ::pthread_mutex_unlock(&slots_array_[slot].mu);
  if (rc != 0) [[unlikely]] {
    throw_io(region_name_ + ": pthread_mutex_unlock(slot " + std::to_string(slot) + ")", rc);
  }
}

namespace detail {
namespace {

ShmLockOptions parse_shm(const nlohmann::json& section, const std::filesystem::path&) {
  ConfigReader r(section, "locks");
  r.string("type", "shm");
  const LockLayoutOptions layout = read_lock_layout(r);
  ShmLockOptions o;
  o.slots = layout.slots;
  o.resource_slots = layout.resource_slots;
  o.name = r.string("name", o.name);
  ShmLockManager::validate_name(o.name, r.name("name"));
  o.owner = read_lock_owner(r);
  r.finish();
  return o;
}

}  // namespace

void register_shm_lock_manager(Registry& registry) {
  registry.add_lock_manager("shm", lock_manager_type<ShmLockManager>(&parse_shm));
}

}  // namespace detail
}  // namespace sessionkit

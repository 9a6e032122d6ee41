#include "backends/lmdb/lmdb_store.hpp"

#include <fcntl.h>
#include <lmdb.h>
#include <pthread.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <limits>
#include <map>
#include <mutex>
#include <set>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "backends/lmdb/lmdb_sharded_store.hpp"
#include "builtin_backends.hpp"
#include "config_reader.hpp"
#include "sessionkit/error.hpp"
#include "sessionkit/registry.hpp"

namespace sessionkit {
namespace {

constexpr std::size_t kExpiryBytes = 8;
// Bounds the retry loops (map growth, resize adoption, stale readers); each
// retry fixes its cause, so hitting this means something is badly wrong.
constexpr int kMaxAttempts = 64;
// Returned by a write-transaction body: abort, nothing to change.
constexpr int kNothingToDo = std::numeric_limits<int>::min();
// Returned by a save's body: the record would take live data past the cap.
constexpr int kOverCap = std::numeric_limits<int>::min() + 1;
constexpr std::uint64_t kMinMapBytes = std::uint64_t{128} << 10;

void put_be64(char* out, std::uint64_t v) {
  for (int i = 7; i >= 0; --i) {
    out[i] = static_cast<char>(v & 0xff);
    v >>= 8;
  }
}

std::uint64_t get_be64(const void* p) {
  const auto* b = static_cast<const unsigned char*>(p);
  std::uint64_t v = 0;
  for (int i = 0; i < 8; ++i) v = (v << 8) | b[i];
  return v;
}

// Expiry as ms since the epoch; times before 1970 sort first as 0.
constexpr std::uint64_t kExpiryGranuleMs = 1000;

std::uint64_t to_ms(Store::TimePoint t) {
  auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(t.time_since_epoch()).count();
  return ms < 0 ? 0 : static_cast<std::uint64_t>(ms);
}

MDB_val val(std::string_view s) { return MDB_val{s.size(), const_cast<char*>(s.data())}; }
std::string_view view(const MDB_val& v) { return {static_cast<const char*>(v.mv_data), v.mv_size}; }

errc code_for(int rc) {
  switch (rc) {
    case MDB_MAP_FULL:
    case ENOSPC:
    case EDQUOT: return errc::resource_exhausted;
    case MDB_CORRUPTED:
    case MDB_PAGE_NOTFOUND:
    case MDB_INVALID: return errc::data_loss;
    case MDB_READERS_FULL: return errc::unavailable;
    default: return errc::io;
  }
}

[[noreturn]] void fail(int rc, std::string_view what, const std::string& path) {
  throw Error(code_for(rc), "lmdb " + std::string(what) + " " + path + ": " + mdb_strerror(rc));
}

std::uint64_t round_to_page(std::uint64_t bytes) {
  const auto page = static_cast<std::uint64_t>(sysconf(_SC_PAGESIZE));
  return (bytes + page - 1) / page * page;
}

// An fcntl write lock on byte 0 of the data file, through `fd`, for a scope
// (nothing when fd is -1): it serialises the write_map opens and map changes
// of all processes (see LmdbStore::map_fd_). Process-associated on purpose,
// not flock(2) or an OFD lock: a forked child does not inherit it, and it goes
// when its process dies, whatever children that process left. (Closing any
// descriptor of the file drops it early; LMDB keeps its own descriptor open
// for the environment's lifetime, and this process closes none while it
// holds the lock except on the way out of a failed open.)
class SizeLock {
 public:
  SizeLock(int fd, const std::string& path) : fd_(fd) {
    if (fd_ < 0) return;
    struct flock l = first_byte(F_WRLCK);
    while (::fcntl(fd_, F_SETLKW, &l) != 0) {
      if (errno != EINTR) fail(errno, "lock", path);
    }
  }
  ~SizeLock() {
    if (fd_ < 0) return;
    struct flock l = first_byte(F_UNLCK);
    ::fcntl(fd_, F_SETLK, &l);
  }
  SizeLock(const SizeLock&) = delete;
  SizeLock& operator=(const SizeLock&) = delete;

 private:
  static struct flock first_byte(short type) {
    struct flock l {};
    l.l_type = type;
    l.l_whence = SEEK_SET;
    l.l_start = 0;
    l.l_len = 1;
    return l;
  }

  int fd_;
};

std::uint64_t file_size(int fd, const std::string& path) {
  struct stat st {};
  if (::fstat(fd, &st) != 0) fail(errno, "fstat", path);
  return static_cast<std::uint64_t>(st.st_size);
}

// Reserves the disk blocks of the first `bytes` of the data file, so that a
// write through the map never meets a full disk (which would be SIGBUS, not
// an error). fallocate(2) rather than posix_fallocate(3): glibc's fallback for
// filesystems without it writes into the file, racing with other processes'
// writes through their maps. Such filesystems keep a sparse file (documented).
void preallocate(int fd, std::uint64_t bytes, const std::string& path) {
  for (;;) {
    if (::fallocate(fd, 0, 0, static_cast<off_t>(bytes)) == 0) return;
    if (errno == EINTR) continue;
    if (errno == EOPNOTSUPP || errno == ENOSYS) return;
    const int err = errno;
    throw Error(code_for(err), "lmdb preallocate " + path + " (" + std::to_string(bytes) +
                                   " bytes for store.write_map): " + std::strerror(err));
  }
}

// Files this process has open as an LmdbStore: LMDB forbids opening one twice
// in a process (closing either handle drops the fcntl locks of both).
std::mutex& open_files_mu() {
  static std::mutex mu;
  return mu;
}
// The environment files open in this process, with the pid that opened each:
// entries inherited through fork() belong to the parent and do not count
// (the child may open the file afresh, as a prefork child must).
std::map<std::pair<dev_t, ino_t>, pid_t>& open_files() {
  static auto* files = new std::map<std::pair<dev_t, ino_t>, pid_t>();  // never destroyed: used at exit
  return *files;
}

// Handles a child abandoned in after_fork(). Kept reachable (leak checkers stay
// quiet) and never closed: see after_fork().
std::mutex& abandoned_mu() {
  static std::mutex mu;
  return mu;
}
std::vector<void*>& abandoned() {
  static auto* list = new std::vector<void*>();
  return *list;
}

// This process's id, without a system call per store operation (glibc no
// longer caches getpid(), and on virtual machines a system call can cost a
// microsecond). Refreshed in every child by a pthread_atfork handler, so it is
// exact for children made by fork(); a raw clone() child is not covered.
std::atomic<pid_t> g_pid{0};

void refresh_pid() { g_pid.store(getpid(), std::memory_order_relaxed); }

pid_t current_pid() {
  static std::once_flag once;
  std::call_once(once, [] {
    refresh_pid();
    pthread_atfork(nullptr, nullptr, refresh_pid);
  });
  return g_pid.load(std::memory_order_relaxed);
}

// Aborts the transaction unless released (committed) first.
class TxnGuard {
 public:
  explicit TxnGuard(MDB_txn* txn) : txn_(txn) {}
  ~TxnGuard() {
    if (txn_ != nullptr) mdb_txn_abort(txn_);
  }
  TxnGuard(const TxnGuard&) = delete;
  TxnGuard& operator=(const TxnGuard&) = delete;
  MDB_txn* get() const { return txn_; }
  MDB_txn* release() { return std::exchange(txn_, nullptr); }

 private:
  MDB_txn* txn_;
};

class CursorGuard {
 public:
  CursorGuard(MDB_txn* txn, MDB_dbi dbi, const std::string& path) {
    int rc = mdb_cursor_open(txn, dbi, &cursor_);
    if (rc != 0) fail(rc, "cursor_open", path);
  }
  ~CursorGuard() { mdb_cursor_close(cursor_); }
  CursorGuard(const CursorGuard&) = delete;
  CursorGuard& operator=(const CursorGuard&) = delete;
  MDB_cursor* get() const { return cursor_; }

 private:
  MDB_cursor* cursor_ = nullptr;
};

}  // namespace

LmdbStore::LmdbStore(LmdbStoreOptions options)
    : options_(std::move(options)), path_(options_.path.string()), resize_mu_(nullptr) {
  if (path_.empty()) throw Error(errc::invalid_argument, "LmdbStore: empty path");
  if (options_.map_size_bytes < kMinMapBytes) {
    throw Error(errc::invalid_argument, "LmdbStore: map_size_bytes below " + std::to_string(kMinMapBytes));
  }
  if (options_.max_map_size_bytes < options_.map_size_bytes) {
    throw Error(errc::invalid_argument, "LmdbStore: max_map_size_bytes < map_size_bytes");
  }
  if (options_.max_map_size_bytes > std::numeric_limits<std::size_t>::max() / 2) {
    throw Error(errc::invalid_argument, "LmdbStore: max_map_size_bytes too large for this platform");
  }
  if (options_.max_readers == 0) throw Error(errc::invalid_argument, "LmdbStore: max_readers must be >= 1");
  if (options_.write_map && options_.durability != LmdbDurability::nosync) {
    throw Error(errc::invalid_argument, "LmdbStore: write_map needs durability nosync");
  }
  options_.map_size_bytes = round_to_page(options_.map_size_bytes);
  options_.max_map_size_bytes = round_to_page(options_.max_map_size_bytes);

  // Allocated once the options are known good: every throw below deletes it.
  resize_mu_ = new std::shared_mutex;
  std::lock_guard lock(open_files_mu());
  struct stat st {};
  if (::stat(path_.c_str(), &st) == 0) {
    auto it = open_files().find({st.st_dev, st.st_ino});
    if (it != open_files().end() && it->second != current_pid()) open_files().erase(it);
  }
  if (::stat(path_.c_str(), &st) == 0 && open_files().count({st.st_dev, st.st_ino}) != 0) {
    delete resize_mu_;
    throw Error(errc::failed_precondition,
                "LmdbStore: " + path_ + " is already open in this process (LMDB forbids a second handle)");
  }
  try {
    open_env();
  } catch (...) {
    delete resize_mu_;
    throw;
  }
  open_files()[{dev_, ino_}] = current_pid();
}

LmdbStore::~LmdbStore() {
  if (pid_ != current_pid()) {
    // A child that never called after_fork(): the handle belongs to the parent.
    std::lock_guard lock(abandoned_mu());
    abandoned().push_back(env_);
    abandoned().push_back(resize_mu_);
    return;
  }
  mdb_env_close(env_);
  if (map_fd_ >= 0) ::close(map_fd_);
  delete resize_mu_;
  std::lock_guard lock(open_files_mu());
  open_files().erase({dev_, ino_});
}

void LmdbStore::open_env() {
  MDB_env* env = nullptr;
  int rc = mdb_env_create(&env);
  if (rc != 0) fail(rc, "env_create", path_);
  // write_map: this process's own descriptor of the data file, the size lock
  // taken through it, and the file's size before this open. An empty file is
  // what LMDB takes for a new environment, so creating it here changes nothing.
  int map_fd = -1;
  std::optional<SizeLock> sizing;
  std::uint64_t size_before = 0;
  // On failure: LMDB has set the file's size to this open's map size, which
  // no block reservation may back; while the lock is held no other process
  // maps past size_before, so the file goes back to it. Then the environment
  // closes (closing its descriptor would drop the lock, which is why the
  // truncate comes first), and the lock and descriptor go.
  auto cleanup = [&]() noexcept {
    if (map_fd >= 0 && sizing) (void)!::ftruncate(map_fd, static_cast<off_t>(size_before));
    mdb_env_close(env);
    sizing.reset();
    if (map_fd >= 0) ::close(map_fd);
  };
  MDB_dbi records = 0;
  MDB_dbi expiry = 0;
  try {
    std::uint64_t map_size = options_.map_size_bytes;
    if (options_.write_map) {
      map_fd = ::open(path_.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
      if (map_fd < 0) fail(errno, "open", path_);
      sizing.emplace(map_fd, path_);
      size_before = file_size(map_fd, path_);
      map_size = std::max(map_size, size_before);
    }
    if ((rc = mdb_env_set_maxdbs(env, 2)) != 0) fail(rc, "set_maxdbs", path_);
    if ((rc = mdb_env_set_maxreaders(env, options_.max_readers)) != 0) fail(rc, "set_maxreaders", path_);
    if ((rc = mdb_env_set_mapsize(env, map_size)) != 0) fail(rc, "set_mapsize", path_);
    // MDB_NOTLS: reader slots belong to transactions, not threads, so any thread
    // may run reads and the slot is freed when the transaction ends.
    unsigned flags = MDB_NOSUBDIR | MDB_NOTLS;
    if (options_.durability == LmdbDurability::nometasync) flags |= MDB_NOMETASYNC;
    if (options_.durability == LmdbDurability::nosync) flags |= MDB_NOSYNC;
    if (options_.write_map) flags |= MDB_WRITEMAP;
    if ((rc = mdb_env_open(env, path_.c_str(), flags, 0600)) != 0) fail(rc, "open", path_);
    if (options_.write_map) {
      // Before anything is written through the map (LMDB wrote a new file's
      // meta pages with write(), not through it).
      MDB_envinfo mapped{};
      mdb_env_info(env, &mapped);
      preallocate(map_fd, mapped.me_mapsize, path_);
    }
    // Readers left behind by processes that died inside a read transaction hold
    // slots and pin old pages; clear them now rather than when the table fills.
    int dead = 0;
    if ((rc = mdb_reader_check(env, &dead)) != 0) fail(rc, "reader_check", path_);
    if (dead > 0) stale_readers_.fetch_add(static_cast<std::uint64_t>(dead), std::memory_order_relaxed);

    // Both databases, created on first use. A read transaction first, so that
    // processes starting up do not queue for the writer lock once they exist.
    // MDB_MAP_RESIZED here means another process grew the map after we read
    // its size: adopt the new size (no transaction of ours is active) and
    // retry. (With write_map it cannot happen: under the size lock no map is
    // larger than the file, and ours is not smaller.)
    for (int attempt = 0;; ++attempt) {
      MDB_txn* txn = nullptr;
      rc = mdb_txn_begin(env, nullptr, MDB_RDONLY, &txn);
      if (rc == 0) {
        rc = mdb_dbi_open(txn, "records", 0, &records);
        if (rc == 0) rc = mdb_dbi_open(txn, "expiry", 0, &expiry);
        if (rc == 0) {
          rc = mdb_txn_commit(txn);  // a read-only commit keeps the dbi handles
        } else {
          mdb_txn_abort(txn);
        }
      }
      if (rc == MDB_NOTFOUND) {
        rc = mdb_txn_begin(env, nullptr, 0, &txn);
        if (rc == 0) {
          rc = mdb_dbi_open(txn, "records", MDB_CREATE, &records);
          if (rc == 0) rc = mdb_dbi_open(txn, "expiry", MDB_CREATE, &expiry);
          if (rc == 0) {
            rc = mdb_txn_commit(txn);
          } else {
            mdb_txn_abort(txn);
          }
        }
      }
      if (rc == 0) break;
      if (rc != MDB_MAP_RESIZED || attempt >= kMaxAttempts || options_.write_map) {
        fail(rc, "open databases in", path_);
      }
      if ((rc = mdb_env_set_mapsize(env, 0)) != 0) fail(rc, "set_mapsize", path_);
    }
  } catch (...) {
    cleanup();
    throw;
  }
  sizing.reset();
  auto close_and_fail = [&](int err, std::string_view what) {
    mdb_env_close(env);
    if (map_fd >= 0) ::close(map_fd);
    fail(err, what, path_);
  };

  int maxkey = mdb_env_get_maxkeysize(env);
  MDB_envinfo info{};
  mdb_env_info(env, &info);
  mdb_filehandle_t fd = -1;
  struct stat st {};
  if ((rc = mdb_env_get_fd(env, &fd)) != 0) close_and_fail(rc, "get_fd");
  if (::fstat(fd, &st) != 0) close_and_fail(errno, "fstat");
  // LMDB leaves the data file's descriptor inheritable (mdb_env_get_fd exists
  // so callers can close it before exec); its other descriptors are
  // close-on-exec. Programs a server execs (CGI) must not inherit it.
  const int fd_flags = ::fcntl(fd, F_GETFD);
  if (fd_flags < 0 || ::fcntl(fd, F_SETFD, fd_flags | FD_CLOEXEC) != 0) close_and_fail(errno, "fcntl");

  env_ = env;
  map_fd_ = map_fd;
  records_dbi_ = records;
  expiry_dbi_ = expiry;
  max_id_size_ = static_cast<std::size_t>(maxkey) - kExpiryBytes;
  map_size_.store(info.me_mapsize);
  dev_ = st.st_dev;
  ino_ = st.st_ino;
  pid_ = current_pid();
}

void LmdbStore::after_fork() {
  if (pid_ == current_pid()) return;
  // lmdb.h: "Use an MDB_env* in the process which opened it, not after
  // fork()". mdb_env_close() here would close this process's copies of the
  // lock-file descriptor, and closing any descriptor of a file drops every
  // fcntl lock the process holds on it, including the reader-liveness lock the
  // fresh handle takes. So the inherited handle (and the resize lock, which a
  // parent thread may have held at fork()) is abandoned, not closed.
  {
    std::lock_guard lock(abandoned_mu());
    abandoned().push_back(env_);
    abandoned().push_back(resize_mu_);
  }
  env_ = nullptr;
  // The inherited descriptor is the parent's open file description; the child
  // opens its own. Closing it drops no lock: the child inherited none of the
  // parent's fcntl locks, and LMDB takes none on the data file.
  if (map_fd_ >= 0) ::close(map_fd_);
  map_fd_ = -1;
  resize_mu_ = new std::shared_mutex;
  map_growths_.store(0);
  stale_readers_.store(0);
  open_env();
  std::lock_guard lock(open_files_mu());
  open_files()[{dev_, ino_}] = current_pid();
}

void LmdbStore::check_pid() const {
  // One pid compare per call (no system call, see current_pid()): it catches
  // a prefork child that forgot after_fork() in every build, not only debug.
  if (current_pid() != pid_) {
    throw Error(errc::failed_precondition,
                "LmdbStore " + path_ +
                    " used in a child process after fork(): call "
                    "after_fork() (SessionManager::after_fork) in the child first");
  }
}

void LmdbStore::check_id(std::string_view id) const {
  if (id.empty() || id.size() > max_id_size_) {
    throw Error(errc::invalid_argument, "LmdbStore: id length " + std::to_string(id.size()) +
                                            " outside [1, " + std::to_string(max_id_size_) + "]");
  }
  for (char c : id) {
    bool ok =
        (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '-';
    if (!ok) throw Error(errc::invalid_argument, "LmdbStore: id has a character outside [A-Za-z0-9_-]");
  }
}

int LmdbStore::reader_check() const {
  int dead = 0;
  int rc = mdb_reader_check(env_, &dead);
  if (rc != 0) fail(rc, "reader_check", path_);
  if (dead > 0) stale_readers_.fetch_add(static_cast<std::uint64_t>(dead), std::memory_order_relaxed);
  return dead;
}

std::uint64_t LmdbStore::map_size() const { return map_size_.load(); }

unsigned LmdbStore::lmdb_flags() const {
  check_pid();
  unsigned flags = 0;
  mdb_env_get_flags(env_, &flags);
  return flags;
}

std::uint64_t LmdbStore::deletion_reserve_bytes() const noexcept {
  return round_to_page(std::max<std::uint64_t>(options_.max_map_size_bytes / 32, 1 << 20));
}

bool LmdbStore::grow_map(std::uint64_t seen_map_size, WriteKind kind) {
  std::unique_lock lock(*resize_mu_);
  const std::uint64_t current = map_size_.load();
  if (current > seen_map_size) return true;  // another thread grew it meanwhile
  SizeLock across_processes(map_fd_, path_);
  if (map_fd_ >= 0) {
    // The file is larger than our map: another process grew it, or an open
    // that failed left it longer than its reserved blocks. Reserve, then map.
    const std::uint64_t on_disk = file_size(map_fd_, path_);
    if (on_disk > current) {
      preallocate(map_fd_, on_disk, path_);
      set_map_size_locked(on_disk);
      return true;
    }
  }
  const std::uint64_t cap = options_.max_map_size_bytes;
  const std::uint64_t limit = current < cap || kind == WriteKind::save ? cap : cap + deletion_reserve_bytes();
  if (current >= limit) return false;
  const std::uint64_t next = std::min(round_to_page(current * 2), limit);
  if (map_fd_ >= 0) preallocate(map_fd_, next, path_);
  set_map_size_locked(next);
  map_growths_.fetch_add(1, std::memory_order_relaxed);
  return true;
}

void LmdbStore::adopt_map_size() const {
  // Another process grew the map past ours: size 0 adopts the size it wrote
  // in the meta page; with write_map the file's size, which every process
  // extends before it maps more, is at least that.
  std::unique_lock lock(*resize_mu_);
  SizeLock across_processes(map_fd_, path_);
  if (map_fd_ < 0) {
    set_map_size_locked(0);
    return;
  }
  const std::uint64_t size = std::max(map_size_.load(), file_size(map_fd_, path_));
  preallocate(map_fd_, size, path_);
  set_map_size_locked(size);
}

void LmdbStore::set_map_size_locked(std::uint64_t bytes) const {
  int rc = mdb_env_set_mapsize(env_, static_cast<std::size_t>(bytes));
  if (rc != 0) fail(rc, "set_mapsize", path_);
  MDB_envinfo info{};
  mdb_env_info(env_, &info);
  map_size_.store(info.me_mapsize);
}

template <typename Fn>
void LmdbStore::with_read_txn(const char* what, Fn&& fn) const {
  check_pid();
  bool readers_checked = false;
  for (int attempt = 0; attempt < kMaxAttempts; ++attempt) {
    int rc = 0;
    {
      std::shared_lock lock(*resize_mu_);
      MDB_txn* txn = nullptr;
      rc = mdb_txn_begin(env_, nullptr, MDB_RDONLY, &txn);
      if (rc == 0) {
        TxnGuard guard(txn);
        fn(txn);
        return;
      }
    }
    if (rc == MDB_MAP_RESIZED) {
      adopt_map_size();
    } else if (rc == MDB_READERS_FULL && !readers_checked) {
      readers_checked = true;
      reader_check();
    } else if (rc == MDB_READERS_FULL) {
      throw Error(errc::unavailable, "lmdb " + std::string(what) + " " + path_ +
                                         ": reader table full of live readers (raise store.max_readers)");
    } else {
      fail(rc, what, path_);
    }
  }
  throw Error(errc::io, "lmdb " + std::string(what) + " " + path_ + ": gave up after repeated retries");
}

// Runs `fn(txn) -> int` in a write transaction: 0 commits, kNothingToDo
// aborts (returns false), an LMDB error aborts and is handled here. On
// MDB_MAP_FULL the map grows and `fn` runs again from scratch, so `fn` must
// reset whatever it accumulates.
template <typename Fn>
bool LmdbStore::with_write_txn(const char* what, WriteKind kind, Fn&& fn) {
  check_pid();
  bool readers_checked = false;
  for (int attempt = 0; attempt < kMaxAttempts; ++attempt) {
    int rc = 0;
    std::uint64_t seen_map_size = 0;
    {
      std::shared_lock lock(*resize_mu_);
      seen_map_size = map_size_.load();
      MDB_txn* txn = nullptr;
      rc = mdb_txn_begin(env_, nullptr, 0, &txn);
      if (rc == 0) {
        TxnGuard guard(txn);
        rc = fn(txn);
        if (rc == kNothingToDo) return false;
        if (rc == kOverCap) throw_map_full(what);
        if (rc == 0) {
          rc = mdb_txn_commit(guard.release());  // frees the transaction, also on failure
          if (rc == 0) return true;
        }
      }
    }
    if (rc == MDB_MAP_FULL) {
      if (grow_map(seen_map_size, kind)) continue;
      // At the limit. Pages that a dead process's snapshot still pins come
      // back once its reader slot is cleared.
      if (!readers_checked) {
        readers_checked = true;
        if (reader_check() > 0) continue;
      }
      throw_map_full(what);
    } else if (rc == MDB_MAP_RESIZED) {
      adopt_map_size();
    } else {
      fail(rc, what, path_);
    }
  }
  throw Error(errc::io, "lmdb " + std::string(what) + " " + path_ + ": gave up after repeated retries");
}

void LmdbStore::throw_map_full(const char* what) const {
  const std::uint64_t cap = options_.max_map_size_bytes;
  throw Error(
      errc::resource_exhausted,
      "lmdb " + std::string(what) + " " + path_ + ": store full at store.max_map_size_mb (" +
          (cap % (1 << 20) == 0 ? std::to_string(cap >> 20) + " MB" : std::to_string(cap) + " bytes") +
          "); sweep expired sessions or raise the limit");
}

std::uint64_t LmdbStore::live_bytes() const {
  // Pages in use = pages in the file's used range minus those on LMDB's free
  // list (database 0: one record per freeing transaction, each an ID list
  // whose first word is its length). LMDB lets only read-only transactions
  // read the free list; the caller holds the writer lock, so this snapshot is
  // the state its write transaction started from.
  MDB_txn* txn = nullptr;
  int rc = mdb_txn_begin(env_, nullptr, MDB_RDONLY, &txn);
  if (rc != 0) fail(rc, "save", path_);
  TxnGuard guard(txn);
  MDB_envinfo ei{};
  MDB_stat es{};
  mdb_env_info(env_, &ei);
  mdb_env_stat(env_, &es);
  std::uint64_t free_pages = 0;
  CursorGuard cursor(txn, 0, path_);
  MDB_val key;
  MDB_val data;
  for (rc = mdb_cursor_get(cursor.get(), &key, &data, MDB_FIRST); rc == 0;
       rc = mdb_cursor_get(cursor.get(), &key, &data, MDB_NEXT)) {
    if (data.mv_size >= sizeof(std::size_t)) {
      std::size_t n = 0;
      std::memcpy(&n, data.mv_data, sizeof n);
      free_pages += n;
    }
  }
  if (rc != MDB_NOTFOUND) fail(rc, "save", path_);
  const std::uint64_t used_pages = ei.me_last_pgno + 1;
  return (used_pages > free_pages ? used_pages - free_pages : 0) * es.ms_psize;
}

std::optional<std::string> LmdbStore::load(std::string_view id) {
  check_id(id);
  std::optional<std::string> out;
  with_read_txn("load", [&](MDB_txn* txn) {
    MDB_val key = val(id);
    MDB_val data;
    int rc = mdb_get(txn, records_dbi_, &key, &data);
    if (rc == MDB_NOTFOUND) return;
    if (rc != 0) fail(rc, "load", path_);
    if (data.mv_size < kExpiryBytes) {
      throw Error(errc::data_loss, "lmdb load " + path_ + ": record shorter than its expiry prefix");
    }
    out.emplace(static_cast<const char*>(data.mv_data) + kExpiryBytes, data.mv_size - kExpiryBytes);
  });
  return out;
}

void LmdbStore::save(std::string_view id, std::string_view record, TimePoint expires_at) {
  check_id(id);
  // Index expiries are whole seconds, rounded up: a session re-saved within the
  // same second keeps its index entry, which halves the pages most saves
  // write. Sweeps may run up to a second late; expiry itself is enforced on
  // every open from the record's own header, to the millisecond.
  const std::uint64_t expiry =
      (to_ms(expires_at) + kExpiryGranuleMs - 1) / kExpiryGranuleMs * kExpiryGranuleMs;
  std::string index_key(kExpiryBytes + id.size(), '\0');
  put_be64(index_key.data(), expiry);
  std::memcpy(index_key.data() + kExpiryBytes, id.data(), id.size());

  with_write_txn("save", WriteKind::save, [&](MDB_txn* txn) -> int {
    // Past the cap the map holds only the deletion reserve, which saves must
    // leave alone; the free-list walk this costs happens only there.
    if (map_size_.load() > options_.max_map_size_bytes &&
        live_bytes() + kExpiryBytes + id.size() + record.size() > options_.max_map_size_bytes) {
      return kOverCap;
    }
    MDB_val key = val(id);
    MDB_val old;
    bool index_current = false;
    int rc = mdb_get(txn, records_dbi_, &key, &old);
    if (rc == 0 && old.mv_size >= kExpiryBytes) {
      std::uint64_t old_expiry = get_be64(old.mv_data);
      if (old_expiry == expiry) {
        index_current = true;
      } else {
        std::string old_key = index_key;
        put_be64(old_key.data(), old_expiry);
        MDB_val k = val(old_key);
        rc = mdb_del(txn, expiry_dbi_, &k, nullptr);
        if (rc != 0 && rc != MDB_NOTFOUND) return rc;
      }
    } else if (rc != 0 && rc != MDB_NOTFOUND) {
      return rc;
    }
    // MDB_RESERVE: LMDB hands back the space and the record is copied once,
    // straight behind its expiry prefix.
    MDB_val data{kExpiryBytes + record.size(), nullptr};
    if ((rc = mdb_put(txn, records_dbi_, &key, &data, MDB_RESERVE)) != 0) return rc;
    put_be64(static_cast<char*>(data.mv_data), expiry);
    if (!record.empty())
      std::memcpy(static_cast<char*>(data.mv_data) + kExpiryBytes, record.data(), record.size());
    if (!index_current) {
      MDB_val k = val(index_key);
      static char nothing = 0;
      MDB_val empty{0, &nothing};
      if ((rc = mdb_put(txn, expiry_dbi_, &k, &empty, 0)) != 0) return rc;
    }
    return 0;
  });
}

bool LmdbStore::remove(std::string_view id) {
  check_id(id);
  return with_write_txn("remove", WriteKind::removal, [&](MDB_txn* txn) -> int {
    MDB_val key = val(id);
    MDB_val old;
    int rc = mdb_get(txn, records_dbi_, &key, &old);
    if (rc == MDB_NOTFOUND) return kNothingToDo;
    if (rc != 0) return rc;
    if (old.mv_size >= kExpiryBytes) {
      std::string index_key(kExpiryBytes + id.size(), '\0');
      put_be64(index_key.data(), get_be64(old.mv_data));
      std::memcpy(index_key.data() + kExpiryBytes, id.data(), id.size());
      MDB_val k = val(index_key);
      rc = mdb_del(txn, expiry_dbi_, &k, nullptr);
      if (rc != 0 && rc != MDB_NOTFOUND) return rc;
    }
    return mdb_del(txn, records_dbi_, &key, nullptr);
  });
}

SweepResult LmdbStore::sweep(TimePoint now, std::chrono::milliseconds budget) {
  check_pid();
  const auto deadline = std::chrono::steady_clock::now() + budget;
  const std::uint64_t now_ms = to_ms(now);
  SweepResult result;
  // Dead readers pin old pages, so the file grows until they are cleared;
  // sweeps are the store's periodic maintenance, so they check.
  reader_check();

  // Most sweeps find nothing due: look with a read transaction first rather
  // than queue for the writer lock that every save needs.
  bool anything_due = false;
  with_read_txn("sweep", [&](MDB_txn* txn) {
    CursorGuard cursor(txn, expiry_dbi_, path_);
    MDB_val key;
    MDB_val data;
    int rc = mdb_cursor_get(cursor.get(), &key, &data, MDB_FIRST);
    if (rc == MDB_NOTFOUND) return;
    if (rc != 0) fail(rc, "sweep", path_);
    anything_due = key.mv_size < kExpiryBytes || get_be64(key.mv_data) <= now_ms;
  });
  if (!anything_due) {
    result.complete = true;
    return result;
  }

  // Deleting needs free pages too (LMDB copies every page it changes), and
  // pages freed in a transaction are reusable only after it commits: in a map
  // at its cap a full batch may not fit where single deletions do. So a batch
  // that hits the cap is retried at half the size, down to one deletion.
  std::size_t batch = kSweepBatch;
  for (;;) {
    std::uint64_t examined = 0;
    std::uint64_t removed = 0;
    bool done = false;
    auto delete_due = [&](MDB_txn* txn) -> int {
      examined = removed = 0;
      done = false;
      CursorGuard cursor(txn, expiry_dbi_, path_);
      while (examined < batch) {
        // Due entries are always deleted, so the next one is always first.
        MDB_val key;
        MDB_val data;
        int rc = mdb_cursor_get(cursor.get(), &key, &data, MDB_FIRST);
        if (rc == MDB_NOTFOUND) {
          done = true;
          break;
        }
        if (rc != 0) return rc;
        if (key.mv_size >= kExpiryBytes) {
          const std::uint64_t expiry = get_be64(key.mv_data);
          if (expiry > now_ms) {
            done = true;
            break;
          }
          // Re-check against the record in this transaction: only a record
          // whose stored expiry is this entry's is deleted. (save() replaces
          // both in one transaction, so they agree unless the file was
          // damaged; a stray entry is just dropped.)
          MDB_val id{key.mv_size - kExpiryBytes, static_cast<char*>(key.mv_data) + kExpiryBytes};
          MDB_val record;
          rc = mdb_get(txn, records_dbi_, &id, &record);
          if (rc == 0 && record.mv_size >= kExpiryBytes && get_be64(record.mv_data) == expiry) {
            if ((rc = mdb_del(txn, records_dbi_, &id, nullptr)) != 0) return rc;
            ++removed;
          } else if (rc != 0 && rc != MDB_NOTFOUND) {
            return rc;
          }
        }
        ++examined;
        if ((rc = mdb_cursor_del(cursor.get(), 0)) != 0) return rc;
      }
      return examined == 0 ? kNothingToDo : 0;
    };
    try {
      with_write_txn("sweep", WriteKind::removal, delete_due);
    } catch (const Error& e) {
      if (e.code_value() != errc::resource_exhausted || batch == 1) throw;
      batch /= 2;
      continue;
    }
    result.examined += examined;
    result.removed += removed;
    if (done) {
      result.complete = true;
      break;
    }
    if (std::chrono::steady_clock::now() >= deadline) break;
  }
  return result;
}

void LmdbStore::for_each(const std::function<bool(std::string_view, std::string_view)>& fn) {
  constexpr std::size_t kBatch = 256;
  std::string last;
  bool started = false;
  for (;;) {
    std::vector<std::pair<std::string, std::string>> batch;
    bool at_end = false;
    with_read_txn("for_each", [&](MDB_txn* txn) {
      CursorGuard cursor(txn, records_dbi_, path_);
      MDB_val key = val(last);
      MDB_val data;
      int rc = mdb_cursor_get(cursor.get(), &key, &data, started ? MDB_SET_RANGE : MDB_FIRST);
      if (rc == 0 && started && view(key) == last) rc = mdb_cursor_get(cursor.get(), &key, &data, MDB_NEXT);
      while (rc == 0 && batch.size() < kBatch) {
        // A record too short for its prefix comes out empty: the core's
        // decoder then reports it as corrupt instead of the walk stopping.
        std::string_view record = view(data);
        record = record.size() >= kExpiryBytes ? record.substr(kExpiryBytes) : std::string_view();
        batch.emplace_back(std::string(view(key)), std::string(record));
        if (batch.size() < kBatch) rc = mdb_cursor_get(cursor.get(), &key, &data, MDB_NEXT);
      }
      if (rc == MDB_NOTFOUND) {
        at_end = true;
      } else if (rc != 0) {
        fail(rc, "for_each", path_);
      }
    });
    for (const auto& [id, record] : batch) {
      if (!fn(id, record)) return;
    }
    if (at_end || batch.empty()) return;
    last = std::move(batch.back().first);
    started = true;
  }
}

StoreInfo LmdbStore::info() const {
  StoreInfo out;
  out.type = "lmdb";
  out.location = path_;
  with_read_txn("info", [&](MDB_txn* txn) {
    MDB_stat st{};
    int rc = mdb_stat(txn, records_dbi_, &st);
    if (rc != 0) fail(rc, "info", path_);
    out.records = static_cast<std::int64_t>(st.ms_entries);
    MDB_envinfo ei{};
    MDB_stat es{};
    mdb_env_info(env_, &ei);
    mdb_env_stat(env_, &es);
    out.bytes = static_cast<std::int64_t>((ei.me_last_pgno + 1) * es.ms_psize);
  });
  return out;
}

std::string LmdbStore::check_consistency() const {
  std::string problems;
  int count = 0;
  auto report = [&](const std::string& p) {
    if (++count <= 10) problems += (problems.empty() ? "" : "; ") + p;
  };
  with_read_txn("check_consistency", [&](MDB_txn* txn) {
    std::uint64_t index_entries = 0;
    std::uint64_t records = 0;
    {
      CursorGuard cursor(txn, expiry_dbi_, path_);
      MDB_val key;
      MDB_val data;
      for (int rc = mdb_cursor_get(cursor.get(), &key, &data, MDB_FIRST); rc != MDB_NOTFOUND;
           rc = mdb_cursor_get(cursor.get(), &key, &data, MDB_NEXT)) {
        if (rc != 0) fail(rc, "check_consistency", path_);
        ++index_entries;
        if (key.mv_size <= kExpiryBytes) {
          report("index key of " + std::to_string(key.mv_size) + " bytes");
          continue;
        }
        const std::uint64_t expiry = get_be64(key.mv_data);
        std::string id(view(key).substr(kExpiryBytes));
        MDB_val k = val(id);
        MDB_val record;
        int grc = mdb_get(txn, records_dbi_, &k, &record);
        if (grc == MDB_NOTFOUND) {
          report("index entry " + std::to_string(expiry) + "/" + id + " has no record");
        } else if (grc != 0) {
          fail(grc, "check_consistency", path_);
        } else if (record.mv_size < kExpiryBytes) {
          report("record " + id + " shorter than its expiry prefix");
        } else if (get_be64(record.mv_data) != expiry) {
          report("index entry " + std::to_string(expiry) + "/" + id + " but record expiry " +
                 std::to_string(get_be64(record.mv_data)));
        }
        if (data.mv_size != 0) report("index entry " + id + " has a non-empty value");
      }
    }
    {
      CursorGuard cursor(txn, records_dbi_, path_);
      MDB_val key;
      MDB_val data;
      for (int rc = mdb_cursor_get(cursor.get(), &key, &data, MDB_FIRST); rc != MDB_NOTFOUND;
           rc = mdb_cursor_get(cursor.get(), &key, &data, MDB_NEXT)) {
        if (rc != 0) fail(rc, "check_consistency", path_);
        ++records;
        if (data.mv_size < kExpiryBytes) continue;  // reported above or below
        std::string index_key(kExpiryBytes + key.mv_size, '\0');
        std::memcpy(index_key.data(), data.mv_data, kExpiryBytes);
        std::memcpy(index_key.data() + kExpiryBytes, key.mv_data, key.mv_size);
        MDB_val k = val(index_key);
        MDB_val unused;
        int grc = mdb_get(txn, expiry_dbi_, &k, &unused);
        if (grc == MDB_NOTFOUND) {
          report("record " + std::string(view(key)) + " has no index entry");
        } else if (grc != 0) {
          fail(grc, "check_consistency", path_);
        }
      }
    }
    // Every entry names an existing record with its expiry and every record
    // has its entry; equal counts then mean exactly one entry per record.
    if (index_entries != records) {
      report(std::to_string(index_entries) + " index entries for " + std::to_string(records) + " records");
    }
  });
  if (count > 10) problems += "; and " + std::to_string(count - 10) + " more";
  return problems;
}

namespace detail {
namespace {

struct LmdbSection {
  LmdbStoreOptions options;
  unsigned shards = 1;
};

LmdbSection parse_lmdb_section(const nlohmann::json& section, const std::filesystem::path& base_dir) {
  constexpr std::uint64_t kMaxMb = std::uint64_t{1} << 20;  // 1 TiB
  ConfigReader r(section, "store");
  r.string("type", "lmdb");
  LmdbStoreOptions o;
  o.path = r.path("path", "sessions.mdb", base_dir);
  std::string durability = r.choice("durability", "durable", {"durable", "nometasync", "nosync"});
  o.durability = durability == "nosync"       ? LmdbDurability::nosync
                 : durability == "nometasync" ? LmdbDurability::nometasync
                                              : LmdbDurability::durable;
  std::uint64_t map_mb = r.uint("map_size_mb", 64, 1, kMaxMb);
  std::uint64_t max_mb = r.uint("max_map_size_mb", std::max<std::uint64_t>(4096, map_mb), 1, kMaxMb);
  if (max_mb < map_mb) {
    r.fail("max_map_size_mb",
           "must be >= store.map_size_mb (" + std::to_string(map_mb) + "), got " + std::to_string(max_mb));
  }
  o.map_size_bytes = map_mb << 20;
  o.max_map_size_bytes = max_mb << 20;
  o.max_readers = static_cast<unsigned>(r.uint("max_readers", 510, 1, 65536));
  o.write_map = r.boolean("write_map", false);
  if (o.write_map && o.durability != LmdbDurability::nosync) {
    r.fail("write_map",
           "needs \"durability\": \"nosync\" (with sync commits LMDB msyncs the whole map at every "
           "commit, about ten times slower than without write_map)");
  }
  const auto shards = static_cast<unsigned>(r.uint("shards", 1, 1, LmdbShardedStore::kMaxShards));
  r.finish();
  return {std::move(o), shards};
}

}  // namespace

void register_lmdb_store(Registry& registry) {
  StoreType t;
  t.shared_across_processes = true;
  t.default_locks = "shm";
  t.validate = [](const nlohmann::json& section, const std::filesystem::path& base_dir) {
    (void)parse_lmdb_section(section, base_dir);
  };
  t.location = [](const nlohmann::json& section, const std::filesystem::path& base_dir) {
    return parse_lmdb_section(section, base_dir).options.path;
  };
  t.create = [](const nlohmann::json& section,
                const std::filesystem::path& base_dir) -> std::unique_ptr<Store> {
    LmdbSection c = parse_lmdb_section(section, base_dir);
    if (c.shards == 1) {
      LmdbShardedStore::check_shard_layout(c.options.path, 1);
      return std::make_unique<LmdbStore>(std::move(c.options));
    }
    return std::make_unique<LmdbShardedStore>(c.options, c.shards);
  };
  registry.add_store("lmdb", std::move(t));
}

}  // namespace detail
}  // namespace sessionkit

#include "backends/file/file_store.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <new>
#include <nlohmann/json.hpp>
#include <utility>

#include "backend_type.hpp"
#include "builtin_backends.hpp"
#include "config_reader.hpp"
#include "session_id.hpp"
#include "sessionkit/error.hpp"
#include "sessionkit/registry.hpp"

namespace sessionkit {
namespace {

// ---- record file format (docs/formats.md, "File store layout") ----
//
//   offset size
//   0      4    magic "SKF1"
//   4      8    expires_at, ms since the Unix epoch, signed big-endian
//   12     4    payload length, big-endian
//   16     4    CRC-32C of bytes 0..15 and of the payload, big-endian
//   20     n    payload: the core's record, opaque here
constexpr char kMagic[4] = {'S', 'K', 'F', '1'};
constexpr std::size_t kHeaderSize = 20;

constexpr std::string_view kTempPrefix = ".tmp.";
constexpr std::string_view kTombPrefix = ".gc.";
constexpr const char* kStateName = ".gc-state";
constexpr const char* kLayoutName = ".layout";
constexpr std::string_view kStateMagic = "SKFG1 ";
constexpr std::string_view kLayoutMagic = "SKFS1 shard_depth=";

// ---- CRC-32C (Castagnoli), as in LevelDB and ext4 ----

constexpr std::array<std::uint32_t, 256> make_crc_table() {
  std::array<std::uint32_t, 256> table{};
  for (std::uint32_t i = 0; i < 256; ++i) {
    std::uint32_t c = i;
    for (int k = 0; k < 8; ++k) c = (c & 1) != 0 ? (c >> 1) ^ 0x82F63B78u : c >> 1;
    table[i] = c;
  }
  return table;
}
constexpr std::array<std::uint32_t, 256> kCrcTable = make_crc_table();

std::uint32_t crc32c_portable(std::uint32_t crc, const unsigned char* p, std::size_t n) {
  for (std::size_t i = 0; i < n; ++i) crc = kCrcTable[(crc ^ p[i]) & 0xFF] ^ (crc >> 8);
  return crc;
}

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
// The SSE4.2 instruction: a 64 KiB record costs a few microseconds instead of
// the ~60 the table needs, which matters next to a nosync save.
__attribute__((target("sse4.2"))) std::uint32_t crc32c_sse42(std::uint32_t crc, const unsigned char* p,
                                                             std::size_t n) {
  std::uint64_t c = crc;
  while (n >= 8) {
    std::uint64_t word;
    std::memcpy(&word, p, 8);
    c = __builtin_ia32_crc32di(c, word);
    p += 8;
    n -= 8;
  }
  std::uint32_t c32 = static_cast<std::uint32_t>(c);
  while (n > 0) {
    c32 = __builtin_ia32_crc32qi(c32, *p++);
    --n;
  }
  return c32;
}
bool have_sse42() {
  static const bool have = [] {
    __builtin_cpu_init();  // static initialisers may run before libgcc's
    return __builtin_cpu_supports("sse4.2") != 0;
  }();
  return have;
}
#endif

std::uint32_t crc32c_extend(std::uint32_t crc, const void* data, std::size_t n) {
  const auto* p = static_cast<const unsigned char*>(data);
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
  if (have_sse42()) return crc32c_sse42(crc, p, n);
#endif
  return crc32c_portable(crc, p, n);
}

std::uint32_t record_crc(const unsigned char* header16, std::string_view payload) {
  std::uint32_t crc = crc32c_extend(0xFFFFFFFFu, header16, 16);
  crc = crc32c_extend(crc, payload.data(), payload.size());
  return crc ^ 0xFFFFFFFFu;
}

void put_be(unsigned char* p, std::uint64_t v, int bytes) {
  for (int i = bytes - 1; i >= 0; --i) {
    p[i] = static_cast<unsigned char>(v & 0xFF);
    v >>= 8;
  }
}

std::uint64_t get_be(const unsigned char* p, int bytes) {
  std::uint64_t v = 0;
  for (int i = 0; i < bytes; ++i) v = (v << 8) | p[i];
  return v;
}

std::int64_t to_ms(Store::TimePoint t) {
  auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(t.time_since_epoch()).count();
  return ms < 0 ? 0 : ms;
}

std::int64_t mtime_ms(const struct stat& st) {
  return static_cast<std::int64_t>(st.st_mtim.tv_sec) * 1000 + st.st_mtim.tv_nsec / 1'000'000;
}

std::int64_t ctime_ms(const struct stat& st) {
  return static_cast<std::int64_t>(st.st_ctim.tv_sec) * 1000 + st.st_ctim.tv_nsec / 1'000'000;
}

// ---- small POSIX helpers ----

class Fd {
 public:
  Fd() = default;
  explicit Fd(int fd) : fd_(fd) {}
  Fd(Fd&& o) noexcept : fd_(std::exchange(o.fd_, -1)) {}
  Fd& operator=(Fd&& o) noexcept {
    if (this != &o) {
      reset();
      fd_ = std::exchange(o.fd_, -1);
    }
    return *this;
  }
  ~Fd() { reset(); }
  int get() const { return fd_; }
  int release() { return std::exchange(fd_, -1); }
  void reset() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }

 private:
  int fd_ = -1;
};

bool starts_with(std::string_view s, std::string_view prefix) { return s.substr(0, prefix.size()) == prefix; }

bool is_id_char(char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_';
}

// A shard directory name: two id characters.
bool is_shard_name(std::string_view name) {
  return name.size() == 2 && is_id_char(name[0]) && is_id_char(name[1]);
}

// Ids are bearer secrets: messages (which end up in logs) show 6 characters
// of any run long enough to be one.
std::string redact(std::string_view rel) {
  std::string out;
  std::size_t i = 0;
  while (i < rel.size()) {
    std::size_t j = i;
    while (j < rel.size() && is_id_char(rel[j])) ++j;
    if (j - i >= detail::kIdLength) {
      out.append(rel.substr(i, 6)).append("...");
    } else {
      out.append(rel.substr(i, j - i));
    }
    if (j < rel.size()) out.push_back(rel[j]);
    i = j + 1;
  }
  return out;
}

errc code_for(int err) {
  switch (err) {
    case ENOSPC:
    case EDQUOT:
    case EFBIG: return errc::resource_exhausted;
    default: return errc::io;
  }
}

[[noreturn]] void fail(const std::string& location, int err, std::string_view op, std::string_view rel) {
  throw Error(code_for(err), "file store " + location + ": " + std::string(op) + " " + redact(rel) + ": " +
                                 std::strerror(err));
}

[[noreturn]] void corrupt(const std::string& location, std::string_view rel, std::string_view why) {
  throw Error(errc::data_loss, "file store " + location + ": " + redact(rel) + ": " + std::string(why));
}

std::string join(std::string_view dir, std::string_view name) {
  if (dir.empty()) return std::string(name);
  std::string out;
  out.reserve(dir.size() + 1 + name.size());
  out.append(dir).append("/").append(name);
  return out;
}

// Reads exactly n bytes at offset; false on a short file.
bool pread_all(int fd, void* buf, std::size_t n, off_t offset, int* err) {
  auto* p = static_cast<char*>(buf);
  while (n > 0) {
    ssize_t r = ::pread(fd, p, n, offset);
    if (r < 0) {
      if (errno == EINTR) continue;
      *err = errno;
      return false;
    }
    if (r == 0) {
      *err = 0;
      return false;
    }
    p += r;
    n -= static_cast<std::size_t>(r);
    offset += r;
  }
  return true;
}

// Reads exactly an + bn bytes from offset 0 into a then b; false on a short file.
bool preadv_all(int fd, void* a, std::size_t an, void* b, std::size_t bn, int* err) {
  iovec iov[2] = {{a, an}, {b, bn}};
  int cnt = bn > 0 ? 2 : 1;
  iovec* v = iov;
  off_t offset = 0;
  while (cnt > 0) {
    ssize_t r = ::preadv(fd, v, cnt, offset);
    if (r < 0) {
      if (errno == EINTR) continue;
      *err = errno;
      return false;
    }
    if (r == 0) {
      *err = 0;
      return false;
    }
    offset += r;
    auto done = static_cast<std::size_t>(r);
    while (cnt > 0 && done >= v->iov_len) {
      done -= v->iov_len;
      ++v;
      --cnt;
    }
    if (cnt > 0) {
      v->iov_base = static_cast<char*>(v->iov_base) + done;
      v->iov_len -= done;
    }
  }
  return true;
}

// Writes both buffers completely; returns 0 or the errno.
int writev_all(int fd, const void* a, std::size_t an, const void* b, std::size_t bn) {
  iovec iov[2] = {{const_cast<void*>(a), an}, {const_cast<void*>(b), bn}};
  int cnt = 2;
  iovec* v = iov;
  while (cnt > 0) {
    ssize_t w = ::writev(fd, v, cnt);
    if (w < 0) {
      if (errno == EINTR) continue;
      return errno;
    }
    if (w == 0) return EIO;
    auto done = static_cast<std::size_t>(w);
    while (cnt > 0 && done >= v->iov_len) {
      done -= v->iov_len;
      ++v;
      --cnt;
    }
    if (cnt > 0) {
      v->iov_base = static_cast<char*>(v->iov_base) + done;
      v->iov_len -= done;
    }
  }
  return 0;
}

// This process's pid without a getpid() system call per save; reset in the
// child of every fork().
std::atomic<pid_t> g_pid{0};

pid_t current_pid() {
  static const bool registered = [] {
    ::pthread_atfork(nullptr, nullptr, [] { g_pid.store(0, std::memory_order_relaxed); });
    return true;
  }();
  (void)registered;
  pid_t pid = g_pid.load(std::memory_order_relaxed);
  if (pid == 0) {
    pid = ::getpid();
    g_pid.store(pid, std::memory_order_relaxed);
  }
  return pid;
}

// Temp-file names must not collide between threads and processes; O_EXCL
// catches the rest. Each thread seeds its generator from getrandom() and
// reseeds in a forked child, so parent and child diverge at once.
std::string random_suffix() {
  thread_local std::uint64_t state = 0;
  thread_local pid_t seeded_for = 0;
  const pid_t pid = current_pid();
  if (seeded_for != pid) {
    std::uint64_t seed = 0;
    if (::getrandom(&seed, sizeof seed, GRND_NONBLOCK) != static_cast<ssize_t>(sizeof seed)) {
      seed = static_cast<std::uint64_t>(std::chrono::steady_clock::now().time_since_epoch().count());
    }
    state = seed ^ (static_cast<std::uint64_t>(pid) << 32) ^ reinterpret_cast<std::uintptr_t>(&state);
    seeded_for = pid;
  }
  // splitmix64
  std::uint64_t z = (state += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  z ^= z >> 31;
  unsigned char bytes[8];
  for (int i = 7; i >= 0; --i, z >>= 8) bytes[i] = static_cast<unsigned char>(z);
  return std::to_string(pid) + "." + detail::hex_encode(bytes, sizeof bytes);
}

// The names in a directory, sorted ("." and ".." left out). Uses a fresh open
// file description so the caller's descriptor offset is untouched.
bool list_dir(int dir_fd, std::vector<std::string>& names, int* err) {
  int fd = ::openat(dir_fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) {
    *err = errno;
    return false;
  }
  DIR* d = ::fdopendir(fd);
  if (d == nullptr) {
    *err = errno;
    ::close(fd);
    return false;
  }
  names.clear();
  errno = 0;
  while (dirent* e = ::readdir(d)) {
    if (std::strcmp(e->d_name, ".") != 0 && std::strcmp(e->d_name, "..") != 0) names.emplace_back(e->d_name);
    errno = 0;
  }
  int read_err = errno;
  ::closedir(d);
  if (read_err != 0) {
    *err = read_err;
    return false;
  }
  std::sort(names.begin(), names.end());
  return true;
}

// The expiry in a record file's header, or nullopt when the header is not one
// of ours (the sweeper then treats the file as garbage nobody can load).
std::optional<std::int64_t> read_expiry(int fd, const struct stat& st) {
  if (!S_ISREG(st.st_mode) || st.st_size < static_cast<off_t>(kHeaderSize)) return std::nullopt;
  unsigned char header[kHeaderSize];
  int err = 0;
  if (!pread_all(fd, header, kHeaderSize, 0, &err)) return std::nullopt;
  if (std::memcmp(header, kMagic, 4) != 0) return std::nullopt;
  return static_cast<std::int64_t>(get_be(header + 4, 8));
}

detail::FileSweepHook g_sweep_hook = nullptr;

constexpr int kReadFlags = O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC;
constexpr int kDirFlags = O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC;

}  // namespace

// One open directory on the sweeper's path from <dir> down to the current shard.
struct FileStore::WalkLevel {
  Fd fd;
  std::string rel;                 // "" for <dir>, "Ab", "Ab/cD"
  std::vector<std::string> names;  // sorted listing taken when the level was entered
  std::size_t next = 0;            // index of the next name to visit
};

FileStore::FileStore(FileStoreOptions options)
    : options_(std::move(options)), location_(options_.path.string()) {
  if (options_.shard_depth < 0 || options_.shard_depth > 2) {
    throw Error(errc::bad_config,
                "store.shard_depth: expected 0, 1 or 2, got " + std::to_string(options_.shard_depth));
  }
  if (options_.path.empty()) throw Error(errc::bad_config, "store.path: expected a non-empty path");
  const char* path = location_.c_str();
  if (::mkdir(path, 0700) == 0) {
    // mkdir's mode passes through the umask; the store directory is 0700 exactly.
    if (::chmod(path, 0700) != 0) fail(location_, errno, "chmod", ".");
  } else if (errno != EEXIST) {
    fail(location_, errno, "mkdir", ".");
  }
  // The root itself may be a symlink the administrator made; nothing below it may.
  root_fd_ = ::open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (root_fd_ < 0) fail(location_, errno, "open", ".");
  Fd guard(root_fd_);
  struct stat st {};
  if (::fstat(root_fd_, &st) != 0) fail(location_, errno, "fstat", ".");
  if ((st.st_mode & S_IWOTH) != 0) {
    // Whoever can write here can plant records, symlinks and tombstones.
    throw Error(errc::bad_config, "store.path: " + location_ + " is writable by every user; use mode 0700");
  }

  // The shard depth is fixed at creation: with another depth every record
  // would silently vanish (and be left for no sweep to find).
  std::string want = std::string(kLayoutMagic) + std::to_string(options_.shard_depth) + "\n";
  for (int attempt = 0;; ++attempt) {
    Fd lf(::openat(root_fd_, kLayoutName, kReadFlags));
    if (lf.get() >= 0) {
      char buf[64];
      ssize_t n = ::read(lf.get(), buf, sizeof buf);
      std::string have = n > 0 ? std::string(buf, static_cast<std::size_t>(n)) : std::string();
      if (have == want) break;
      std::string depth = starts_with(have, kLayoutMagic) ? have.substr(kLayoutMagic.size(), 1) : "?";
      throw Error(errc::bad_config, "store.shard_depth: " + location_ + " was created with shard_depth " +
                                        depth + ", not " + std::to_string(options_.shard_depth));
    }
    if (errno != ENOENT) fail(location_, errno, "open", kLayoutName);
    if (attempt > 0) fail(location_, ENOENT, "create", kLayoutName);
    std::string tmp = std::string(kTempPrefix) + "layout." + random_suffix();
    Fd tf(::openat(root_fd_, tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600));
    if (tf.get() < 0) fail(location_, errno, "create", tmp);
    int err = ::fchmod(tf.get(), 0600) != 0 ? errno : writev_all(tf.get(), want.data(), want.size(), "", 0);
    if (err == 0 && options_.durability == FileDurability::durable && ::fsync(tf.get()) != 0) err = errno;
    tf.reset();
    // link() never replaces: of two processes creating the store, one wins and
    // the other reads the winner's depth on the next pass.
    if (err == 0 && ::linkat(root_fd_, tmp.c_str(), root_fd_, kLayoutName, 0) != 0 && errno != EEXIST) {
      err = errno;
    }
    ::unlinkat(root_fd_, tmp.c_str(), 0);
    if (err != 0) fail(location_, err, "create", kLayoutName);
    if (options_.durability == FileDurability::durable) sync_dir(root_fd_, ".");
  }
  guard.release();
  walk_.reserve(3);
}

FileStore::~FileStore() {
  walk_.clear();
  if (root_fd_ >= 0) ::close(root_fd_);
}

void FileStore::sync_dir(int fd, const std::string& rel) const {
  if (::fsync(fd) != 0) fail(location_, errno, "fsync", rel.empty() ? "." : rel);
}

// Opens (or with `create`, makes) the directory `name` under `parent`.
// Returns -1 when it does not exist and `create` is false. A symlink or file
// in its place is Error(io): nothing outside the store is ever entered.
int FileStore::open_dir_at(int parent, const std::string& name, bool create, const std::string& rel) const {
  // At depth 2 the sweeper removes empty leaf directories, possibly the one
  // just made here before it could be opened: then make it again.
  for (int attempt = 0; attempt < 16; ++attempt) {
    int fd = ::openat(parent, name.c_str(), kDirFlags);
    if (fd >= 0) return fd;
    if (errno != ENOENT) {
      if (errno == ELOOP || errno == ENOTDIR) {
        throw Error(errc::io, "file store " + location_ + ": " + rel +
                                  " is not a directory (a symlink or file planted in the store?)");
      }
      fail(location_, errno, "open", rel);
    }
    if (!create) return -1;
    if (::mkdirat(parent, name.c_str(), 0700) == 0) {
      Fd dir(::openat(parent, name.c_str(), kDirFlags));
      if (dir.get() < 0 && errno == ENOENT) continue;
      if (dir.get() < 0) fail(location_, errno, "open", rel);
      if (::fchmod(dir.get(), 0700) != 0) fail(location_, errno, "chmod", rel);
      // The new directory's own entry must reach the disk before records in it count as saved.
      if (options_.durability == FileDurability::durable) sync_dir(parent, rel + "/..");
      return dir.release();
    }
    if (errno != EEXIST) fail(location_, errno, "mkdir", rel);
  }
  fail(location_, ENOENT, "open", rel);
}

// The directory holding `id`'s record: <dir>, <dir>/Ab or <dir>/Ab/cD.
// Returns the descriptor (the caller closes it unless it is root_fd_), or -1
// when a shard directory is missing and `create` is false.
int FileStore::open_leaf(std::string_view id, bool create, std::string* rel) const {
  rel->clear();
  if (options_.shard_depth == 0) return root_fd_;
  std::string s1(id.substr(0, 2));
  *rel = s1;
  int fd1 = open_dir_at(root_fd_, s1, create, *rel);
  if (options_.shard_depth == 1 || fd1 < 0) return fd1;
  Fd level1(fd1);
  std::string s2(id.substr(2, 2));
  *rel = join(s1, s2);
  return open_dir_at(fd1, s2, create, *rel);
}

namespace {

void check_id(std::string_view id, const char* op) {
  if (!detail::is_valid_session_id(id)) {
    throw Error(errc::invalid_argument, std::string("file store ") + op + ": not a session id (" +
                                            std::to_string(id.size()) + " bytes)");
  }
}

// Closes the leaf descriptor unless it is the store root.
class LeafFd {
 public:
  LeafFd(int fd, int root) : fd_(fd), root_(root) {}
  ~LeafFd() {
    if (fd_ >= 0 && fd_ != root_) ::close(fd_);
  }
  LeafFd(const LeafFd&) = delete;
  LeafFd& operator=(const LeafFd&) = delete;
  void reset(int fd) {
    if (fd_ >= 0 && fd_ != root_) ::close(fd_);
    fd_ = fd;
  }
  int get() const { return fd_; }

 private:
  int fd_;
  int root_;
};

}  // namespace

std::optional<std::string> FileStore::read_record(int dir, const std::string& name, const std::string& rel,
                                                  bool* missing) const {
  *missing = false;
  // O_NONBLOCK: a FIFO planted under an id's name must not hang the request.
  Fd fd(::openat(dir, name.c_str(), kReadFlags));
  if (fd.get() < 0) {
    int err = errno;
    if (err == ENOENT) {
      *missing = true;
      return std::nullopt;
    }
    if (err == ELOOP) corrupt(location_, rel, "is a symbolic link, not a record (not followed)");
    if (err == ENXIO) corrupt(location_, rel, "is not a regular file");
    fail(location_, err, "open", rel);
  }
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0) fail(location_, errno, "fstat", rel);
  if (!S_ISREG(st.st_mode)) corrupt(location_, rel, "is not a regular file");
  // Sizes are checked against the file before anything is allocated; the
  // header's length field must then agree with the file exactly.
  if (st.st_size < static_cast<off_t>(kHeaderSize)) {
    corrupt(location_, rel, "truncated (" + std::to_string(st.st_size) + " bytes)");
  }
  const auto size = static_cast<std::uint64_t>(st.st_size);
  if (size - kHeaderSize > options_.max_record_bytes) {
    corrupt(location_, rel, "larger than the record limit (" + std::to_string(size) + " bytes)");
  }
  // One read for header and payload: the file's size says how long the
  // payload must be, and the header must then agree.
  unsigned char header[kHeaderSize];
  std::string payload(static_cast<std::size_t>(size - kHeaderSize), '\0');
  int err = 0;
  if (!preadv_all(fd.get(), header, kHeaderSize, payload.data(), payload.size(), &err)) {
    if (err != 0) fail(location_, err, "read", rel);
    corrupt(location_, rel, "shorter than its size (truncated while read?)");
  }
  if (std::memcmp(header, kMagic, 4) != 0) corrupt(location_, rel, "bad magic (not a file store record)");
  const std::uint64_t length = get_be(header + 12, 4);
  if (length != payload.size()) {
    corrupt(location_, rel,
            "header says " + std::to_string(length) + " payload bytes, file has " +
                std::to_string(payload.size()));
  }
  if (static_cast<std::uint32_t>(get_be(header + 16, 4)) != record_crc(header, payload)) {
    corrupt(location_, rel, "checksum mismatch");
  }
  return payload;
}

std::optional<std::string> FileStore::load(std::string_view id) {
  check_id(id, "load");
  std::string rel;
  LeafFd leaf(open_leaf(id, false, &rel), root_fd_);
  if (leaf.get() < 0) return std::nullopt;
  const std::string name(id);
  const std::string tomb = std::string(kTombPrefix) + name;
  bool missing = false;
  // Missing under its name, the record may be the sweeper's for a moment
  // (renamed to .gc.<id> to be checked, then renamed back); looking at the
  // tombstone and once more at the name closes that gap (see sweep()).
  auto record = read_record(leaf.get(), name, join(rel, name), &missing);
  if (!missing) return record;
  record = read_record(leaf.get(), tomb, join(rel, tomb), &missing);
  if (!missing) return record;
  record = read_record(leaf.get(), name, join(rel, name), &missing);
  return record;
}

void FileStore::save(std::string_view id, std::string_view record, TimePoint expires_at) {
  check_id(id, "save");
  if (record.size() > options_.max_record_bytes) {
    throw Error(errc::resource_exhausted, "file store " + location_ + ": record of " +
                                              std::to_string(record.size()) + " bytes is over the limit of " +
                                              std::to_string(options_.max_record_bytes));
  }
  const std::int64_t expiry_ms = to_ms(expires_at);
  unsigned char header[kHeaderSize];
  std::memcpy(header, kMagic, 4);
  put_be(header + 4, static_cast<std::uint64_t>(expiry_ms), 8);
  put_be(header + 12, record.size(), 4);
  put_be(header + 16, record_crc(header, record), 4);

  const std::string name(id);
  std::string rel;
  LeafFd leaf(open_leaf(id, true, &rel), root_fd_);
  std::string tmp;
  Fd fd;
  for (int attempt = 0;; ++attempt) {
    tmp = std::string(kTempPrefix) + name + "." + random_suffix();
    fd = Fd(::openat(leaf.get(), tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600));
    if (fd.get() >= 0) break;
    int err = errno;
    if (attempt >= 8) fail(location_, err, "create", join(rel, tmp));
    if (err == ENOENT && options_.shard_depth == 2) {
      // The sweeper removed the (then empty) shard directory after we opened it.
      leaf.reset(open_leaf(id, true, &rel));
    } else if (err != EEXIST) {
      fail(location_, err, "create", join(rel, tmp));
    }
  }
  const std::string tmp_rel = join(rel, tmp);
  auto abandon = [&](int err, const char* op) {
    fd.reset();
    ::unlinkat(leaf.get(), tmp.c_str(), 0);
    fail(location_, err, op, tmp_rel);
  };
  // The creation mode passed through the umask; records are 0600 exactly.
  if (::fchmod(fd.get(), 0600) != 0) abandon(errno, "chmod");
  if (int err = writev_all(fd.get(), header, kHeaderSize, record.data(), record.size()); err != 0) {
    abandon(err, "write");
  }
  // mtime = expiry lets the sweeper decide from a stat() alone. Only a hint:
  // a filesystem that refuses the time costs the sweeper a header read.
  timespec times[2];
  times[0].tv_sec = 0;
  times[0].tv_nsec = UTIME_OMIT;
  times[1].tv_sec = static_cast<time_t>(expiry_ms / 1000);
  times[1].tv_nsec = static_cast<long>(expiry_ms % 1000) * 1'000'000;
  (void)::futimens(fd.get(), times);
  if (options_.durability == FileDurability::durable && ::fsync(fd.get()) != 0) abandon(errno, "fsync");
  if (::close(fd.release()) != 0 && errno != EINTR) {
    int err = errno;
    ::unlinkat(leaf.get(), tmp.c_str(), 0);
    fail(location_, err, "close", tmp_rel);
  }
  if (::renameat(leaf.get(), tmp.c_str(), leaf.get(), name.c_str()) != 0) abandon(errno, "rename");
  if (options_.durability == FileDurability::durable) sync_dir(leaf.get(), rel);
}

bool FileStore::remove(std::string_view id) {
  check_id(id, "remove");
  std::string rel;
  LeafFd leaf(open_leaf(id, false, &rel), root_fd_);
  if (leaf.get() < 0) return false;
  const std::string name(id);
  const std::string tomb = std::string(kTombPrefix) + name;
  bool removed = false;
  if (::unlinkat(leaf.get(), name.c_str(), 0) == 0) {
    removed = true;
  } else if (errno != ENOENT) {
    fail(location_, errno, "unlink", join(rel, name));
  }
  // A record the sweeper holds as .gc.<id> must not come back after this.
  if (::unlinkat(leaf.get(), tomb.c_str(), 0) == 0) {
    removed = true;
  } else if (errno != ENOENT) {
    fail(location_, errno, "unlink", join(rel, tomb));
  }
  // A removed session (a logout) must stay removed after a power loss.
  if (removed && options_.durability == FileDurability::durable) sync_dir(leaf.get(), rel);
  return removed;
}

// ---- sweep ----

std::string FileStore::read_sweep_cursor() const {
  Fd fd(::openat(root_fd_, kStateName, kReadFlags));
  if (fd.get() < 0) return {};
  char buf[512];
  ssize_t n = ::read(fd.get(), buf, sizeof buf);
  if (n <= 0 || n == static_cast<ssize_t>(sizeof buf)) return {};
  std::string_view text(buf, static_cast<std::size_t>(n));
  if (!starts_with(text, kStateMagic) || text.back() != '\n') return {};
  text = text.substr(kStateMagic.size(), text.size() - kStateMagic.size() - 1);
  // A damaged cursor costs a restarted lap, nothing more: it is only ever
  // compared with names, never used as a path.
  for (char c : text) {
    if (!is_id_char(c) && c != '.' && c != '/') return {};
  }
  return std::string(text);
}

void FileStore::write_sweep_cursor(const std::string& cursor) const {
  // Best effort, never fsynced: a lost cursor restarts the lap, and a sweep
  // on a full disk must still delete records.
  std::string content = std::string(kStateMagic) + cursor + "\n";
  std::string tmp = std::string(kTempPrefix) + "gc-state." + random_suffix();
  Fd fd(::openat(root_fd_, tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600));
  if (fd.get() < 0) return;
  bool ok = ::fchmod(fd.get(), 0600) == 0 && writev_all(fd.get(), content.data(), content.size(), "", 0) == 0;
  fd.reset();
  if (!ok || ::renameat(root_fd_, tmp.c_str(), root_fd_, kStateName) != 0)
    ::unlinkat(root_fd_, tmp.c_str(), 0);
}

// Enters directory `name` under `parent_fd` (or <dir> itself when name is ".").
// Returns 0, or the errno when it is gone, is not a directory or cannot be
// listed: the walk then skips it rather than stall on it at every sweep.
int FileStore::push_level(int parent_fd, const std::string& name, const std::string& rel) {
  WalkLevel level;
  level.fd = Fd(::openat(parent_fd, name.c_str(), kDirFlags));
  if (level.fd.get() < 0) return errno;
  int err = 0;
  if (!list_dir(level.fd.get(), level.names, &err)) return err;
  level.rel = rel;
  walk_.push_back(std::move(level));
  return 0;
}

// Positions the walk just after `cursor` (the last entry a sweep visited),
// by name order at each level; where the cursor's directory has vanished the
// walk resumes at the next name.
void FileStore::seek_walk(const std::string& cursor) {
  walk_.clear();
  walk_cursor_ = cursor;
  if (int err = push_level(root_fd_, ".", ""); err != 0) fail(location_, err, "list", ".");
  std::vector<std::string> parts;
  for (std::size_t start = 0; start < cursor.size();) {
    std::size_t slash = cursor.find('/', start);
    if (slash == std::string::npos) slash = cursor.size();
    parts.push_back(cursor.substr(start, slash - start));
    start = slash + 1;
  }
  for (std::size_t i = 0; i < parts.size(); ++i) {
    WalkLevel& level = walk_.back();
    auto it = std::lower_bound(level.names.begin(), level.names.end(), parts[i]);
    level.next = static_cast<std::size_t>(it - level.names.begin());
    if (it == level.names.end() || *it != parts[i]) return;  // vanished: resume at the next name
    ++level.next;
    const bool last = i + 1 == parts.size();
    const bool shard = static_cast<int>(walk_.size()) - 1 < options_.shard_depth && is_shard_name(parts[i]);
    if (last || !shard) return;
    if (push_level(level.fd.get(), parts[i], join(level.rel, parts[i])) != 0) return;
  }
}

// One step of the walk: enter a shard directory, leave one, or visit one entry.
FileStore::Step FileStore::sweep_step(std::int64_t now_ms, std::int64_t temp_cutoff_ms, SweepResult& result) {
  const int level_index = static_cast<int>(walk_.size()) - 1;
  WalkLevel& level = walk_.back();
  if (level.next == level.names.size()) {
    if (level_index == 0) {
      walk_.clear();
      walk_cursor_.clear();
      return Step::lap_done;
    }
    std::string rel = std::move(level.rel);
    walk_.pop_back();
    if (level_index == 2) {
      // At depth 2 shard directories are made on demand from 16.7M possible
      // names: remove those that emptied, or they pile up for ever. rmdir
      // fails on a non-empty one; a save that had it open retries (save()).
      ::unlinkat(walk_.back().fd.get(), rel.substr(rel.size() - 2).c_str(), AT_REMOVEDIR);
    }
    walk_cursor_ = std::move(rel);
    return Step::directory;
  }
  std::string name = level.names[level.next++];
  std::string rel = join(level.rel, name);
  if (level_index < options_.shard_depth && is_shard_name(name)) {
    if (push_level(level.fd.get(), name, rel) != 0) walk_cursor_ = std::move(rel);
    return Step::directory;
  }
  // Above the shard level only temp files are ours to clean.
  if (level_index == options_.shard_depth || starts_with(name, kTempPrefix)) {
    sweep_entry(level.fd.get(), name, now_ms, temp_cutoff_ms, result);
  }
  walk_cursor_ = std::move(rel);
  return Step::entry;
}

void FileStore::sweep_entry(int dir, const std::string& name, std::int64_t now_ms,
                            std::int64_t temp_cutoff_ms, SweepResult& result) {
  if (detail::is_valid_session_id(name)) {
    sweep_record(dir, name, now_ms, result);
  } else if (starts_with(name, kTombPrefix) && detail::is_valid_session_id(name.substr(kTombPrefix.size()))) {
    ++result.examined;
    sweep_tomb(dir, name.substr(kTombPrefix.size()), now_ms, result);
  } else if (starts_with(name, kTempPrefix)) {
    // ctime, not mtime: save() sets a temp file's mtime to the record's
    // expiry, while ctime is the kernel's clock at the file's last change.
    struct stat st {};
    if (::fstatat(dir, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0 && !S_ISDIR(st.st_mode) &&
        ctime_ms(st) < temp_cutoff_ms) {
      ::unlinkat(dir, name.c_str(), 0);
    }
  }
}

void FileStore::sweep_record(int dir, const std::string& id, std::int64_t now_ms, SweepResult& result) {
  ++result.examined;
  struct stat st {};
  if (::fstatat(dir, id.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0 || !S_ISREG(st.st_mode)) return;
  if (mtime_ms(st) > now_ms) return;  // live by its mtime: one stat per live record
  Fd fd(::openat(dir, id.c_str(), kReadFlags));
  if (fd.get() < 0 || ::fstat(fd.get(), &st) != 0) return;
  std::optional<std::int64_t> expiry = read_expiry(fd.get(), st);
  if (expiry && *expiry > now_ms) return;  // the header decides: live
  // Expired (or not a record at all). Renaming takes whatever inode is under
  // the name at this instant, atomically; only if that is the inode checked
  // above (files are never written in place, and `fd` keeps its inode number
  // from being reused) is it deleted. A save that landed in between is put back.
  const std::string tomb = std::string(kTombPrefix) + id;
  if (g_sweep_hook != nullptr) g_sweep_hook(0, id);
  if (::renameat(dir, id.c_str(), dir, tomb.c_str()) != 0) return;
  if (g_sweep_hook != nullptr) g_sweep_hook(1, id);
  struct stat taken {};
  if (::fstatat(dir, tomb.c_str(), &taken, AT_SYMLINK_NOFOLLOW) != 0) return;  // remove() got it
  if (taken.st_ino == st.st_ino && taken.st_dev == st.st_dev) {
    if (::unlinkat(dir, tomb.c_str(), 0) == 0) ++result.removed;
    return;
  }
  sweep_tomb(dir, id, now_ms, result);
}

// Settles .gc.<id>: left by a sweeper that lost the race above, or by one
// that died between its rename and its unlink.
void FileStore::sweep_tomb(int dir, const std::string& id, std::int64_t now_ms, SweepResult& result) {
  const std::string tomb = std::string(kTombPrefix) + id;
  struct stat st {};
  if (::fstatat(dir, id.c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0) {
    ::unlinkat(dir, tomb.c_str(), 0);  // a newer record is in place
    return;
  }
  Fd fd(::openat(dir, tomb.c_str(), kReadFlags));
  if (fd.get() < 0 || ::fstat(fd.get(), &st) != 0) return;
  std::optional<std::int64_t> expiry = read_expiry(fd.get(), st);
  if (!expiry || *expiry <= now_ms) {
    if (::unlinkat(dir, tomb.c_str(), 0) == 0) ++result.removed;
    return;
  }
  // Live: back under its name, unless a save put a newer record there first.
  if (::renameat2(dir, tomb.c_str(), dir, id.c_str(), RENAME_NOREPLACE) == 0) return;
  if (errno == EINVAL || errno == ENOSYS) {
    // No RENAME_NOREPLACE on this filesystem: link() never replaces either.
    if (::linkat(dir, tomb.c_str(), dir, id.c_str(), 0) != 0 && errno != EEXIST) return;
  } else if (errno != EEXIST) {
    return;
  }
  ::unlinkat(dir, tomb.c_str(), 0);
}

SweepResult FileStore::sweep(TimePoint now, std::chrono::milliseconds budget) {
  const auto deadline = std::chrono::steady_clock::now() + budget;
  const std::int64_t now_ms = to_ms(now);
  // Temp files age by the kernel's clock (their ctime), not by `now`, which
  // tests and tools may move.
  const std::int64_t temp_cutoff_ms =
      to_ms(std::chrono::system_clock::now()) -
      std::chrono::duration_cast<std::chrono::milliseconds>(options_.temp_max_age).count();
  std::lock_guard lock(sweep_mu_);
  SweepResult result;
  // Another process (or a restart) may have moved the cursor: then re-seek;
  // otherwise carry on with the directory listings already in hand.
  std::string cursor = read_sweep_cursor();
  if (walk_.empty() || cursor != walk_cursor_) seek_walk(cursor);
  // Progress: at least one entry per call, whatever the budget.
  bool visited = false;
  for (;;) {
    if (visited && std::chrono::steady_clock::now() >= deadline) break;
    Step step = sweep_step(now_ms, temp_cutoff_ms, result);
    if (step == Step::lap_done) {
      result.complete = true;
      break;
    }
    visited = visited || step == Step::entry;
  }
  write_sweep_cursor(walk_cursor_);
  return result;
}

void FileStore::after_fork() {
  if (sweep_mu_.try_lock()) {
    walk_.clear();
    walk_cursor_.clear();
    sweep_mu_.unlock();
    return;
  }
  // Another thread of the parent was sweeping at fork(): that thread does not
  // exist here, its mutex stays locked and the walk may be half-updated. Start
  // both afresh, leaking the old walk (a few descriptors) rather than touching it.
  new (&sweep_mu_) std::mutex;
  new (&walk_) std::vector<WalkLevel>;
  new (&walk_cursor_) std::string;
}

// ---- for_each / info ----

void FileStore::for_each(const std::function<bool(std::string_view, std::string_view)>& fn) {
  // Depth-first over the shards, in name order; each directory is listed when
  // entered, so records saved meanwhile may or may not be seen.
  std::function<bool(int, const std::string&, int)> visit = [&](int dir, const std::string& rel,
                                                                int depth) -> bool {
    std::vector<std::string> names;
    int err = 0;
    if (!list_dir(dir, names, &err)) {
      if (depth == 0) fail(location_, err, "list", ".");
      return true;
    }
    for (const std::string& name : names) {
      if (depth < options_.shard_depth) {
        if (!is_shard_name(name)) continue;
        Fd sub(::openat(dir, name.c_str(), kDirFlags));
        if (sub.get() < 0) continue;
        if (!visit(sub.get(), join(rel, name), depth + 1)) return false;
        continue;
      }
      if (!detail::is_valid_session_id(name)) continue;  // temp, tombstone, state files
      std::optional<std::string> record;
      try {
        bool missing = false;
        record = read_record(dir, name, join(rel, name), &missing);
      } catch (const Error&) {
        continue;  // unreadable: skipped, as documented
      }
      if (record && !fn(name, *record)) return false;
    }
    return true;
  };
  visit(root_fd_, "", 0);
}

StoreInfo FileStore::info() const {
  StoreInfo info;
  info.type = "file";
  info.location = location_;
  return info;  // counting records means reading every shard: -1
}

namespace detail {

void set_file_sweep_hook_for_testing(FileSweepHook hook) { g_sweep_hook = hook; }

namespace {

FileStoreOptions parse_file_store(const nlohmann::json& section, const std::filesystem::path& base_dir) {
  ConfigReader r(section, "store");
  r.string("type", "file");
  FileStoreOptions o;
  o.path = r.path("path", "sessions", base_dir);
  o.shard_depth = static_cast<int>(r.uint("shard_depth", 1, 0, 2));
  o.durability = r.choice("durability", "durable", {"durable", "nosync"}) == "durable"
                     ? FileDurability::durable
                     : FileDurability::nosync;
  r.finish();
  return o;
}

}  // namespace

void register_file_store(Registry& registry) {
  StoreType t = store_type<FileStore>(&parse_file_store);
  t.default_locks = "shm";
  t.location = [](const nlohmann::json& section, const std::filesystem::path& base_dir) {
    return parse_file_store(section, base_dir).path;
  };
  registry.add_store("file", std::move(t));
}

}  // namespace detail
}  // namespace sessionkit

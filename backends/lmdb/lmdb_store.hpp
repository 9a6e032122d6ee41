// LmdbStore ("lmdb"): every session in one LMDB environment file, shared by all
// processes and threads on one machine; sessionkit's default store, in the
// place of mod_python's DbmSession.
//
// Layout (docs/lmdb.md): one file opened with MDB_NOSUBDIR (its lock table is
// the file name + "-lock"), both created with mode 0600. Two databases:
//   "records"  id -> 8-byte big-endian expiry (ms since the epoch) + record bytes
//   "expiry"   8-byte big-endian expiry + id -> empty
// save() and remove() change both in one write transaction, so the index always
// names exactly the records there are, with their expiry; sweep() reads the
// index from its start and stops at the first entry that is not yet due.
//
// Threads: every method may be called from any thread at once. The environment
// is opened with MDB_NOTLS and each call runs in its own short transaction
// (reads: a read-only transaction per call; writes are serialised by LMDB across
// all processes).
//
// Processes: the file is shared by every process that opens it; readers never
// block writers. An environment must not cross fork(): a child calls
// after_fork() before any other use; every other method throws
// Error(errc::failed_precondition) in a process that did not open the store.
// One process must not open the same file twice at once (LMDB caveat: closing
// the second handle drops the first one's fcntl locks); the constructor throws
// Error(errc::failed_precondition) when this process already has it open.
//
// Map: grows by doubling on MDB_MAP_FULL up to max_map_size (under an
// exclusive in-process lock, no transaction of this process active) and adopts
// a size another process grew it to (MDB_MAP_RESIZED). Deletions may go a
// small reserve past the cap, so a full store can always be swept.
//
// Errors: bad ids are Error(errc::invalid_argument); a save that does not fit
// under max_map_size is Error(errc::resource_exhausted) and leaves the
// previous record intact; ENOSPC/EDQUOT are resource_exhausted; a damaged file
// (MDB_CORRUPTED, MDB_PAGE_NOTFOUND, MDB_INVALID, a record shorter than its
// expiry prefix) is data_loss; a reader table full of live readers is
// unavailable; anything else is io. Messages carry mdb_strerror() and the path.
#pragma once

#include <sys/types.h>

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <shared_mutex>
#include <string>

#include "sessionkit/store.hpp"

struct MDB_env;
struct MDB_txn;

namespace sessionkit {

// What survives a crash. Every setting survives the crash of a process (a
// committed transaction is in the OS page cache); they differ on power loss
// or an OS crash. See docs/lmdb.md.
enum class LmdbDurability {
  // Default. fsync of data and meta page at every commit: every save that
  // returned survives power loss.
  durable,
  // MDB_NOMETASYNC: one data flush per commit, the meta page is flushed later.
  // Power loss may undo the last committed transaction(s); the file stays
  // consistent (LMDB keeps atomicity, consistency and isolation).
  nometasync,
  // MDB_NOSYNC: no flush at commit; the OS writes back when it likes. Power loss
  // may undo recent commits, and LMDB warns it can corrupt the database unless
  // the filesystem preserves write order.
  nosync,
};

struct LmdbStoreOptions {
  // The environment file; its lock file is this path + "-lock". The directory
  // must exist. JSON: "path", default "sessions.mdb" relative to base_dir.
  std::filesystem::path path;

  LmdbDurability durability = LmdbDurability::durable;

  // Initial map size in bytes (rounded up to the OS page size); the file grows
  // into it as records are written. JSON takes MB: "map_size_mb", default 64.
  // An environment whose map was grown before opens at its grown size.
  std::uint64_t map_size_bytes = std::uint64_t{64} << 20;

  // On MDB_MAP_FULL the map doubles up to this size; past it save() fails
  // with resource_exhausted (removes and sweeps may use deletion_reserve_bytes()
  // more). JSON: "max_map_size_mb", default 4096 (or map_size_mb when larger).
  // Must be >= map_size_bytes.
  std::uint64_t max_map_size_bytes = std::uint64_t{4096} << 20;

  // Reader table slots (LMDB's default is 126). One slot per read transaction
  // in flight across all processes; prefork servers with many children need
  // more. Fixed by whoever creates the lock file (or first opens it when no
  // other process has it open); later openers use the table as it is.
  // JSON: "max_readers", default 510.
  unsigned max_readers = 510;
  // MDB_WRITEMAP: write transactions change the file through a writable shared
  // map instead of write() calls, so a `nosync` commit makes no system call
  // (several times faster on filesystems whose write() is costly). Only with
  // `nosync`: with sync commits LMDB msyncs the whole map at every commit,
  // which measured ten times slower than without write_map; the constructor
  // refuses the combination. The price: a wild pointer write anywhere in the
  // process can now reach the database, and the file takes its whole map size
  // on disk at once (reserved with fallocate(2), so a full disk is a clear
  // resource_exhausted at open or growth rather than SIGBUS at a write; on a
  // filesystem without fallocate, or a copy-on-write one, that guarantee is
  // lost). Opens and map growth take an fcntl lock on the data file's first
  // byte for a moment. Every process that opens one file must agree on this
  // setting (lmdb.h: do not mix processes with and without MDB_WRITEMAP).
  // JSON: "write_map", default false.
  bool write_map = false;
};

class LmdbStore final : public Store {
 public:
  // Opens (creating if needed) the environment, runs mdb_reader_check.
  // Throws Error: io (cannot open), data_loss (not an LMDB file),
  // failed_precondition (already open in this process), invalid_argument
  // (bad options), resource_exhausted (write_map: the disk cannot hold the map).
  explicit LmdbStore(LmdbStoreOptions options);
  ~LmdbStore() override;

  LmdbStore(const LmdbStore&) = delete;
  LmdbStore& operator=(const LmdbStore&) = delete;

  std::optional<std::string> load(std::string_view id) override;
  void save(std::string_view id, std::string_view record, TimePoint expires_at) override;
  bool remove(std::string_view id) override;
  SweepResult sweep(TimePoint now, std::chrono::milliseconds budget) override;
  // Reads in batches of short read transactions (no long-lived snapshot, which
  // would keep LMDB from reusing pages): records come in id order, and ones
  // saved or removed during the walk may or may not be seen.
  void for_each(const std::function<bool(std::string_view, std::string_view)>& fn) override;
  StoreInfo info() const override;
  bool shared_across_processes() const override { return true; }
  // In a child after fork(): abandons the parent's environment handle without
  // closing it (closing would drop this process's fcntl locks on the lock
  // file, see lmdb.h caveats) and opens a fresh one. A no-op in the process
  // that opened the store.
  void after_fork() override;

  // Diagnostics, for tests and benchmarks.
  // "" when the expiry index and the records agree exactly: every index entry
  // names a record with that expiry, every record has exactly one index entry.
  // Otherwise a description of the first problems found.
  std::string check_consistency() const;
  // The current map size of this process's handle, in bytes.
  std::uint64_t map_size() const;
  // Deletions (remove, sweep) may grow the map this far past
  // max_map_size_bytes: LMDB copies every page it changes and reuses freed
  // pages only two commits later, so a map filled to the cap might otherwise
  // refuse the very deletions that would empty it. Saves never use it: past
  // the cap a save that would take live data over the cap is refused.
  // max(max_map_size_bytes / 32, 1 MiB).
  std::uint64_t deletion_reserve_bytes() const noexcept;
  // How many times this handle grew the map on MDB_MAP_FULL.
  std::uint64_t map_growths() const noexcept { return map_growths_.load(std::memory_order_relaxed); }
  // Stale reader slots cleared by mdb_reader_check in this handle.
  std::uint64_t stale_readers_cleared() const noexcept {
    return stale_readers_.load(std::memory_order_relaxed);
  }
  const LmdbStoreOptions& options() const noexcept { return options_; }
  // mdb_env_get_flags() of this process's handle (MDB_NOSYNC etc.).
  unsigned lmdb_flags() const;

  // The longest id this build of LMDB accepts (mdb_env_get_maxkeysize minus
  // the 8-byte expiry prefix of the index key).
  std::size_t max_id_size() const noexcept { return max_id_size_; }

  // Deletions per write transaction in sweep().
  static constexpr std::size_t kSweepBatch = 256;

 private:
  class ReadTxn;
  class WriteTxn;

  void open_env();
  void check_pid() const;
  void check_id(std::string_view id) const;
  int reader_check() const;  // returns the stale slots it cleared
  enum class WriteKind { save, removal };
  bool grow_map(std::uint64_t seen_map_size, WriteKind kind);
  std::uint64_t live_bytes() const;
  [[noreturn]] void throw_map_full(const char* what) const;
  void adopt_map_size() const;
  void set_map_size_locked(std::uint64_t bytes) const;  // resize_mu_ held exclusively
  template <typename Fn>
  void with_read_txn(const char* what, Fn&& fn) const;
  template <typename Fn>
  bool with_write_txn(const char* what, WriteKind kind, Fn&& fn);

  LmdbStoreOptions options_;
  std::string path_;
  pid_t pid_ = 0;
  MDB_env* env_ = nullptr;
  unsigned records_dbi_ = 0;
  unsigned expiry_dbi_ = 0;
  std::size_t max_id_size_ = 0;
  dev_t dev_ = 0;
  ino_t ino_ = 0;
  // write_map only: this process's own descriptor of the data file, through
  // which an fcntl lock on its first byte serialises opens and map changes
  // across processes. With MDB_WRITEMAP LMDB ftruncate()s the file to the map
  // size at open and at every mdb_env_set_mapsize; a process setting a smaller
  // size than another one maps would cut the file under it (SIGBUS there).
  // Under the lock every size this process sets is at least the file's
  // current size, and its blocks are reserved before it is mapped; an open
  // that fails puts the file back to the size it found. -1 otherwise.
  int map_fd_ = -1;
  // Held shared by every transaction of this process, exclusive while the map
  // is resized (mdb_env_set_mapsize requires no transaction of this process to
  // be active). A pointer so that after_fork() can abandon a copy that some
  // parent thread held locked at fork() time.
  std::shared_mutex* resize_mu_;
  mutable std::atomic<std::uint64_t> map_size_{0};  // this handle's map size, bytes
  std::atomic<std::uint64_t> map_growths_{0};
  mutable std::atomic<std::uint64_t> stale_readers_{0};
};

}  // namespace sessionkit

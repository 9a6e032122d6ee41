// FileStore ("file"): one file per session in sharded directories, written
// with temp file + rename so a reader sees the old or the new record, never a
// torn one, whatever moment a writer is killed at.
//
// Layout (docs/formats.md, "File store layout"):
//   <dir>/.layout                     shard depth the directory was created with
//   <dir>/.gc-state                   where the last sweep stopped
//   <dir>/<s1>[/<s2>]/<id>            records; s1 = id[0..2), s2 = id[2..4)
//   .../.tmp.<id>.<pid>.<random>      a save in progress (or left by a crash)
//   .../.gc.<id>                      a record the sweeper is about to delete
// Directories are created 0700 and files 0600 whatever the umask. Every path
// below <dir> is opened relative to a descriptor of <dir> with O_NOFOLLOW, so
// a symlink planted inside the store is never followed.
//
// Contract beyond store.hpp:
//   - load() of a file that is not a regular file (symlink, FIFO, directory),
//     is shorter or longer than its header says, has a bad magic or checksum,
//     or is larger than max_record_bytes: Error(errc::data_loss). Nothing is
//     allocated beyond the file's real size.
//   - save() of a record over max_record_bytes, or on ENOSPC / EDQUOT / EFBIG:
//     Error(errc::resource_exhausted); the temp file is removed and the
//     previous record stays.
//   - Ids that are not valid session ids (exactly 43 characters of
//     [A-Za-z0-9_-], canonical last character; detail::is_valid_session_id):
//     Error(errc::invalid_argument), before any path is built.
//   - A symlink or file planted in place of a shard directory: Error(errc::io);
//     it is not entered.
//   - Other system-call failures: Error(errc::io), naming the path below <dir>
//     with ids cut to 6 characters (ids are secrets; messages reach logs).
//
// Thread safety: every method may be called from many threads and processes at
// once (the core serialises calls per id through its lock slots; sweep() is
// safe against concurrent save/load/remove of the same id without any lock,
// see sweep()). Fork: descriptors cross fork() safely; after_fork() only
// drops the sweeper's cached position (and a sweep lock held by another
// thread of the parent at fork time).
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "sessionkit/store.hpp"

namespace sessionkit {

enum class FileDurability {
  // save() returns after fsync() of the record and of its directory: the new
  // record survives a power loss. remove() fsyncs the directory too.
  durable,
  // Like rename(): atomic against process crashes (kill -9 leaves the old or
  // the new record), but an OS crash or power loss may lose recent saves or
  // removes; a record damaged that way fails its checksum (data_loss), it is
  // never returned wrong.
  nosync,
};

struct FileStoreOptions {
  // The store directory. Created (mode 0700) when missing; its parents must
  // exist. Config key "path", default "sessions" relative to the config's base.
  std::filesystem::path path;
  // Directory levels between <dir> and the records, 2 id characters each
  // (4096 directories per level). 0 suits up to a few thousand sessions,
  // 1 (the default) up to a few million, 2 beyond. Fixed when the directory is
  // created: opening it with another depth is Error(bad_config).
  int shard_depth = 1;
  FileDurability durability = FileDurability::durable;
  // Largest record save() accepts and load() reads (bytes, header excluded).
  // Default 1 MiB; the core's limits.max_record_bytes is normally far lower.
  std::size_t max_record_bytes = std::size_t{1} << 20;
  // sweep() removes temp files (.tmp.*) whose ctime is older than this: what
  // writers killed mid-save leave behind. Default 1 hour; must exceed the
  // longest time a save can take, or a slow save fails with Error(io).
  std::chrono::seconds temp_max_age{3600};
};

class FileStore final : public Store {
 public:
  // Opens (creating when missing) the store directory.
  // Throws Error(bad_config) for a shard_depth outside 0..2, a directory
  // created with another depth, or a world-writable directory; Error(io) when
  // the directory cannot be created or opened.
  explicit FileStore(FileStoreOptions options);
  ~FileStore() override;

  FileStore(const FileStore&) = delete;
  FileStore& operator=(const FileStore&) = delete;

  std::optional<std::string> load(std::string_view id) override;
  void save(std::string_view id, std::string_view record, TimePoint expires_at) override;
  bool remove(std::string_view id) override;

  // Walks the shards in name order from where the last sweep (of any process)
  // stopped, as recorded in <dir>/.gc-state. A record is a candidate when its
  // mtime (set to its expiry at save) is at or before `now`; its header's
  // expiry decides. It is then renamed to .gc.<id>, and deleted only if the
  // renamed inode is the one whose header was checked; otherwise (a save
  // landed in between) it is renamed back unless a newer record is there.
  // load() looks at .gc.<id> when <id> is missing, so even that moment shows
  // no gap. complete=true when this call finished a lap over all shards: every
  // record that had expired when the lap began is then gone.
  SweepResult sweep(TimePoint now, std::chrono::milliseconds budget) override;

  // Every record in every shard; skips temp, state and unreadable files, and
  // a record that a sweeper killed mid-check left as .gc.<id> (load() still
  // finds it; the next sweep puts it back).
  void for_each(const std::function<bool(std::string_view id, std::string_view record)>& fn) override;

  StoreInfo info() const override;
  bool shared_across_processes() const override { return true; }
  void after_fork() override;

  const FileStoreOptions& options() const noexcept { return options_; }

 private:
  struct WalkLevel;

  int open_leaf(std::string_view id, bool create, std::string* rel) const;
  int open_dir_at(int parent, const std::string& name, bool create, const std::string& rel) const;
  std::optional<std::string> read_record(int dir, const std::string& name, const std::string& rel,
                                         bool* missing) const;
  void sync_dir(int fd, const std::string& rel) const;

  // sweep() helpers; called with sweep_mu_ held.
  enum class Step { entry, directory, lap_done };
  Step sweep_step(std::int64_t now_ms, std::int64_t temp_cutoff_ms, SweepResult& result);
  void sweep_entry(int dir, const std::string& name, std::int64_t now_ms, std::int64_t temp_cutoff_ms,
                   SweepResult& result);
  void sweep_record(int dir, const std::string& id, std::int64_t now_ms, SweepResult& result);
  void sweep_tomb(int dir, const std::string& id, std::int64_t now_ms, SweepResult& result);
  void seek_walk(const std::string& cursor);
  int push_level(int parent_fd, const std::string& name, const std::string& rel);
  std::string read_sweep_cursor() const;
  void write_sweep_cursor(const std::string& cursor) const;

  const FileStoreOptions options_;
  const std::string location_;
  int root_fd_ = -1;

  std::mutex sweep_mu_;
  std::vector<WalkLevel> walk_;  // open directories from <dir> down to the current shard
  std::string walk_cursor_;      // the cursor walk_ stands at; "" at a lap's start
};

namespace detail {

// Test seam: called by FileStore::sweep() as it takes an expired record,
// with stage 0 after the header check and before the rename to .gc.<id>,
// stage 1 just after that rename. nullptr (the default) turns it off.
// Not thread-safe against a running sweep.
using FileSweepHook = void (*)(int stage, std::string_view id);
void set_file_sweep_hook_for_testing(FileSweepHook hook);

}  // namespace detail
}  // namespace sessionkit

// Store: where session records live, as opaque bytes keyed by session id.
//
// A Store never sees session semantics: records are encoded and checked by the
// core (see docs/formats.md). The core calls load/save/remove for one id only
// while it holds that id's lock slot, so a store needs no per-record locking of
// its own against sessionkit; it must still be safe to call from many threads
// at once (different ids), and from many processes if shared_across_processes().
//
// Ids passed in have been validated by the core (43 base64url characters);
// stores that build paths or keys from them re-check anyway.
//
// Errors: every method may throw sessionkit::Error; load() reports a record the
// store itself finds damaged as errc::data_loss, out-of-space on save() as
// errc::resource_exhausted (the previous record stays intact), an unreachable
// server as errc::unavailable, other failures as errc::io.
//
// Fork: a store whose handles cannot cross fork() reopens them in after_fork(),
// which the process calls in the child before any other use.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>

namespace sessionkit {

struct SweepResult {
  std::uint64_t examined = 0;  // records (or index entries) looked at
  std::uint64_t removed = 0;   // expired records deleted
  bool complete = false;       // true when no expired record was left behind
};

struct StoreInfo {
  std::string type;           // registry name: "memory", "lmdb", ...
  std::string location;       // path, address or "" for in-process stores
  std::int64_t records = -1;  // number of records, -1 when unknown or costly
  std::int64_t bytes = -1;    // bytes used on disk / in memory, -1 when unknown
};

class Store {
 public:
  using TimePoint = std::chrono::system_clock::time_point;

  virtual ~Store() = default;

  // The record stored under `id`, or nullopt when there is none.
  virtual std::optional<std::string> load(std::string_view id) = 0;

  // Stores `record` under `id`, replacing any previous record atomically: a
  // concurrent or later load() sees the old or the new record, never a mix.
  // `expires_at` is when sweep() may delete the record.
  virtual void save(std::string_view id, std::string_view record, TimePoint expires_at) = 0;

  // Deletes the record under `id`; returns whether there was one.
  virtual bool remove(std::string_view id) = 0;

  // Deletes records whose expires_at is at or before `now`, stopping once
  // `budget` has been spent (always making some progress). A record re-saved
  // with a later expiry concurrently is never deleted.
  virtual SweepResult sweep(TimePoint now, std::chrono::milliseconds budget) = 0;

  // Calls `fn(id, record)` for every record, in no particular order, until it
  // returns false. For admin tools; not for request paths.
  virtual void for_each(const std::function<bool(std::string_view id, std::string_view record)>& fn) = 0;

  virtual StoreInfo info() const = 0;

  // True when records are visible to other processes (LMDB, files, Redis).
  virtual bool shared_across_processes() const = 0;

  // Reopens handles that must not cross fork(); called in the child.
  virtual void after_fork() {}
};

}  // namespace sessionkit

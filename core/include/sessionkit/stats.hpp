// Counters a SessionManager keeps; read with SessionManager::stats().
// All counts are since the manager was built, in this process only.
#pragma once

#include <cstdint>

#include "sessionkit/lock_manager.hpp"
#include "sessionkit/store.hpp"

namespace sessionkit {

struct Stats {
  std::uint64_t opened = 0;             // open() calls that returned a session
  std::uint64_t created = 0;            // new sessions handed out
  std::uint64_t resumed = 0;            // existing sessions handed out
  std::uint64_t no_cookie = 0;          // requests without our cookie
  std::uint64_t malformed_cookies = 0;  // cookie values of the wrong shape
  std::uint64_t bad_signatures = 0;     // well-formed values whose signature failed
  std::uint64_t unknown_ids = 0;        // valid ids the store does not hold
  std::uint64_t expired = 0;            // ids found dead on open (idle or absolute)
  std::uint64_t corrupt_records = 0;    // records that failed to decode (data_loss)
  std::uint64_t owner_deaths = 0;       // opens that recovered a lock from a dead holder
  std::uint64_t lock_timeouts = 0;      // opens that failed at the lock deadline
  std::uint64_t saves = 0;              // records written because data/timeout changed or new
  std::uint64_t touches = 0;            // records rewritten only to refresh the access time
  std::uint64_t unchanged = 0;          // saves skipped: nothing changed, touch not due
  std::uint64_t save_errors = 0;        // autosave failures swallowed by destructors
  std::uint64_t invalidated = 0;
  std::uint64_t regenerated = 0;
  std::uint64_t sweeps = 0;  // sweeps run (explicit or every_n_requests)
  std::uint64_t swept = 0;   // records removed by sweeps
  LockStats locks;           // the lock manager's counters
};

}  // namespace sessionkit

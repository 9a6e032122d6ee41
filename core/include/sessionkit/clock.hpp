// The wall clock sessionkit reads for session timestamps and expiry.
//
// Timestamps persisted in records are wall-clock (std::chrono::system_clock)
// milliseconds since the Unix epoch, because they must mean the same thing in
// every process and after a restart. Lock deadlines use std::chrono::steady_clock
// and are not affected by this seam.
//
// Thread safety: now() is called concurrently from every thread that uses a
// SessionManager; implementations must be thread-safe.
#pragma once

#include <chrono>
#include <memory>

namespace sessionkit {

class Clock {
 public:
  virtual ~Clock() = default;
  virtual std::chrono::system_clock::time_point now() const = 0;

  // The process-wide system clock.
  static std::shared_ptr<Clock> system();
};

}  // namespace sessionkit

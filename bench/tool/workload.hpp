// One benchmark run: set up the sessions, measure the session cycle, verify
// every counter, and measure the baselines with the same workload mix.
#pragma once

#include <csignal>
#include <cstdint>
#include <optional>
#include <string>

#include "bench/tool/options.hpp"

namespace sessionkit::bench {

struct RunResult {
  Options options;          // as run (a sweep point applied)
  std::string store;        // store type
  std::string locks;        // lock manager type
  std::string sweep_value;  // "" outside --sweep
  double seconds = 0;
  std::uint64_t ops = 0;
  double ops_per_sec = 0;
  double p50_us = 0, p99_us = 0, p999_us = 0;
  std::uint64_t errors = 0;
  std::uint64_t lock_timeouts = 0;
  std::uint64_t lock_waits = 0;
  std::uint64_t owner_deaths = 0;
  std::uint64_t acknowledged = 0;   // updates whose save() returned
  std::uint64_t lost_updates = 0;   // acknowledged but missing from the store
  std::uint64_t extra_updates = 0;  // in the store but never acknowledged
  std::int64_t store_records = -1;
  std::int64_t store_bytes = -1;
  std::string baseline_name;  // what "baseline" means for this store
  std::optional<double> baseline_ops_per_sec;
  std::optional<double> raw_store_ops_per_sec;
  std::optional<double> raw_lock_ops_per_sec;
  bool interrupted = false;

  std::optional<double> ratio() const {
    if (!baseline_ops_per_sec || *baseline_ops_per_sec <= 0) return std::nullopt;
    return ops_per_sec / *baseline_ops_per_sec;
  }
};

// Throws std::exception (sessionkit::Error included) when the run cannot be set up.
RunResult run_once(const Options& o, const std::string& sweep_value, volatile std::sig_atomic_t* interrupted);

}  // namespace sessionkit::bench

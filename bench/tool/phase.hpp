// Runs one measured phase: P processes (forked) x T threads, each thread
// looping over operations chosen by the workload mix until the time or
// operation budget is spent, with latency, counters and per-session
// acknowledgements gathered in shared memory.
#pragma once

#include <csignal>
#include <cstdint>
#include <functional>
#include <memory>
#include <vector>

#include "bench/tool/histogram.hpp"
#include "bench/tool/options.hpp"

namespace sessionkit::bench {

// The counters every process adds into; lives in a MAP_SHARED mapping.
struct SharedCounters {
  std::atomic<int> ready{0};
  std::atomic<int> go{0};
  std::atomic<int> stop{0};
  std::atomic<int> finished{0};
  std::atomic<std::int64_t> last_end_ns{0};  // steady_clock: when the last thread stopped
  std::atomic<std::uint64_t> ops{0};
  std::atomic<std::uint64_t> errors{0};
  std::atomic<std::uint64_t> timeouts{0};
  std::atomic<std::uint64_t> lock_waits{0};
  std::atomic<std::uint64_t> lock_timeouts{0};
  std::atomic<std::uint64_t> owner_deaths{0};
  std::atomic<std::uint64_t> latency[Histogram::kBuckets];
};

// What one process does; made once per process (after fork), used by all its
// threads at once.
class ProcessWorker {
 public:
  virtual ~ProcessWorker() = default;
  // One operation on session `index`; `read_only` per the mix. Counts its own
  // errors into `shared`; returns true when it acknowledged an update.
  virtual bool op(std::uint64_t index, bool read_only, SharedCounters& shared) = 0;
  // Adds process-wide counters (lock waits ...) into `shared` at the end.
  virtual void finish(SharedCounters&) {}
};

using WorkerFactory = std::function<std::unique_ptr<ProcessWorker>()>;

struct PhaseResult {
  double seconds = 0;
  std::uint64_t ops = 0;
  std::uint64_t errors = 0;
  std::uint64_t timeouts = 0;
  std::uint64_t lock_waits = 0;
  std::uint64_t lock_timeouts = 0;
  std::uint64_t owner_deaths = 0;
  Histogram latency;
  std::vector<std::uint64_t> acked;  // acknowledged updates per session
  bool interrupted = false;
  double ops_per_sec() const { return seconds > 0 ? static_cast<double>(ops) / seconds : 0; }
};

// Adds a slice of a phase (run_phase) to the phase's total.
void accumulate(PhaseResult& total, const PhaseResult& slice);

// `fork_processes` false runs o.threads threads in this process (o.procs must
// be 1). `label` names the phase on the progress line.
PhaseResult run_phase(const Options& o, const WorkerFactory& make_worker, bool fork_processes,
                      const char* label, volatile std::sig_atomic_t* interrupted);

}  // namespace sessionkit::bench

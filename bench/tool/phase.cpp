#include "bench/tool/phase.hpp"

#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <optional>
#include <random>
#include <stdexcept>
#include <string>
#include <system_error>
#include <thread>

namespace sessionkit::bench {
namespace {

constexpr std::uint64_t kHotSessions = 8;

// Shared memory: the counters, then one acknowledgement counter per session.
class SharedBlock {
 public:
  explicit SharedBlock(std::uint64_t sessions) : sessions_(sessions) {
    bytes_ = sizeof(SharedCounters) + sessions * sizeof(std::atomic<std::uint64_t>);
    void* p = mmap(nullptr, bytes_, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) throw std::system_error(errno, std::generic_category(), "mmap");
    counters_ = new (p) SharedCounters();
    acked_ = reinterpret_cast<std::atomic<std::uint64_t>*>(static_cast<char*>(p) + sizeof(SharedCounters));
    for (std::uint64_t i = 0; i < sessions; ++i) new (&acked_[i]) std::atomic<std::uint64_t>(0);
  }
  ~SharedBlock() { munmap(counters_, bytes_); }
  SharedCounters& counters() { return *counters_; }
  std::atomic<std::uint64_t>* acked() { return acked_; }

 private:
  std::uint64_t sessions_;
  std::size_t bytes_;
  SharedCounters* counters_;
  std::atomic<std::uint64_t>* acked_;
};

// With --distinct, worker w of W uses its own contiguous block of sessions
// (its hot set is the first kHotSessions of them): contiguous, so that the
// acknowledgement counters of two workers do not share cache lines, which
// would cost every operation a cache-line transfer between processes.
// Otherwise every worker draws from all sessions.
void thread_loop(const Options& o, ProcessWorker& worker, SharedBlock& block, std::uint64_t seed,
                 std::optional<std::uint64_t> op_quota, std::uint64_t worker_index, std::uint64_t workers) {
  SharedCounters& c = block.counters();
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<double> unit(0.0, 1.0);
  const std::uint64_t own = o.distinct ? o.sessions / workers : o.sessions;  // sessions this worker may use
  const std::uint64_t offset = o.distinct ? worker_index * own : 0;
  const std::uint64_t hot_set = std::min(kHotSessions, own);
  Histogram latency;
  std::uint64_t done = 0;
  c.ready.fetch_add(1);
  while (c.go.load(std::memory_order_acquire) == 0) std::this_thread::yield();
  while (c.stop.load(std::memory_order_relaxed) == 0 && (!op_quota || done < *op_quota)) {
    const bool hot = o.hot > 0 && unit(rng) < o.hot;
    const std::uint64_t index = offset + (hot ? rng() % hot_set : rng() % own);
    const bool read_only = o.read_only_share > 0 && unit(rng) < o.read_only_share;
    const auto start = std::chrono::steady_clock::now();
    try {
      if (worker.op(index, read_only, c)) block.acked()[index].fetch_add(1, std::memory_order_relaxed);
    } catch (const std::exception& e) {  // a worker's own errors are counted by it; this is the rest
      c.errors.fetch_add(1);
      if (c.errors.load() == 1) std::fprintf(stderr, "sessionkit-bench: %s\n", e.what());
    }
    const auto ns =
        std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now() - start);
    latency.record(static_cast<std::uint64_t>(ns.count()));
    ++done;
    if ((done & 255) == 0) c.ops.fetch_add(256, std::memory_order_relaxed);
  }
  c.ops.fetch_add(done & 255, std::memory_order_relaxed);
  const std::int64_t end = std::chrono::steady_clock::now().time_since_epoch().count();
  std::int64_t seen = c.last_end_ns.load();
  while (seen < end && !c.last_end_ns.compare_exchange_weak(seen, end)) {
  }
  latency.merge_into(c.latency);
  c.finished.fetch_add(1);
}

void run_process(const Options& o, const WorkerFactory& make_worker, SharedBlock& block, int process_index) {
  std::unique_ptr<ProcessWorker> worker;
  try {
    worker = make_worker();
  } catch (const std::exception& e) {
    std::fprintf(stderr, "sessionkit-bench: worker %d: %s\n", process_index, e.what());
    block.counters().errors.fetch_add(1);
    block.counters().ready.fetch_add(o.threads);
    block.counters().finished.fetch_add(o.threads);
    return;
  }
  const std::uint64_t workers = static_cast<std::uint64_t>(o.procs) * static_cast<std::uint64_t>(o.threads);
  std::vector<std::thread> threads;
  for (int t = 0; t < o.threads; ++t) {
    const std::uint64_t index = static_cast<std::uint64_t>(process_index * o.threads + t);
    std::optional<std::uint64_t> quota;
    if (o.ops) quota = *o.ops / workers + (index < *o.ops % workers ? 1 : 0);
    const std::uint64_t seed = 0x5e55105ULL * (index + 1) + static_cast<std::uint64_t>(getpid());
    threads.emplace_back(
        [&, seed, quota, index] { thread_loop(o, *worker, block, seed, quota, index, workers); });
  }
  for (auto& t : threads) t.join();
  worker->finish(block.counters());
}

}  // namespace

void accumulate(PhaseResult& total, const PhaseResult& slice) {
  total.seconds += slice.seconds;
  total.ops += slice.ops;
  total.errors += slice.errors;
  total.timeouts += slice.timeouts;
  total.lock_waits += slice.lock_waits;
  total.lock_timeouts += slice.lock_timeouts;
  total.owner_deaths += slice.owner_deaths;
  total.latency.add(slice.latency);
  total.acked.resize(std::max(total.acked.size(), slice.acked.size()));
  for (std::size_t i = 0; i < slice.acked.size(); ++i) total.acked[i] += slice.acked[i];
  total.interrupted = total.interrupted || slice.interrupted;
}

PhaseResult run_phase(const Options& o, const WorkerFactory& make_worker, bool fork_processes,
                      const char* label, volatile std::sig_atomic_t* interrupted) {
  SharedBlock block(o.sessions);
  SharedCounters& c = block.counters();
  const int workers = o.procs * o.threads;
  std::vector<pid_t> children;
  std::thread in_process;
  if (fork_processes) {
    std::fflush(nullptr);
    for (int p = 0; p < o.procs; ++p) {
      pid_t pid = fork();
      if (pid < 0) throw std::system_error(errno, std::generic_category(), "fork");
      if (pid == 0) {
        std::signal(SIGINT, SIG_IGN);  // the parent stops us through the shared flag
        run_process(o, make_worker, block, p);
        std::fflush(nullptr);
        _exit(0);
      }
      children.push_back(pid);
    }
  } else {
    in_process = std::thread([&] { run_process(o, make_worker, block, 0); });
  }

  // Children that exited, reaped as they go: one that died (a signal, an
  // uncaught error) never reports its threads ready or finished, so waiting
  // for those counts alone would never end.
  std::vector<bool> reaped(children.size(), false);
  std::size_t exited = 0;
  std::size_t died = 0;  // exited by a signal or with an error: its threads never finish
  auto reap = [&](bool block_until_exit) {
    for (std::size_t i = 0; i < children.size(); ++i) {
      if (reaped[i]) continue;
      int status = 0;
      pid_t got;
      do {
        got = waitpid(children[i], &status, block_until_exit ? 0 : WNOHANG);
      } while (got < 0 && errno == EINTR);
      if (got != children[i]) continue;
      reaped[i] = true;
      ++exited;
      if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        ++died;
        c.errors.fetch_add(1);
      }
    }
  };
  while (c.ready.load() < workers && died == 0) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
    reap(false);
  }
  const auto start = std::chrono::steady_clock::now();
  c.go.store(1, std::memory_order_release);
  const bool progress = isatty(STDERR_FILENO) != 0;
  auto last_progress = start;
  PhaseResult r;
  while (c.finished.load() < workers) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    reap(false);
    if (died > 0 && c.finished.load() < workers) {
      // A process died mid-run: stop the others and report what was measured.
      c.stop.store(1);
      if (exited == children.size()) break;
      continue;
    }
    const auto now = std::chrono::steady_clock::now();
    const double elapsed = std::chrono::duration<double>(now - start).count();
    if (c.stop.load() == 0 && (*interrupted != 0 || (!o.ops && elapsed >= o.seconds))) {
      r.interrupted = *interrupted != 0;
      c.stop.store(1);
    }
    if (progress && now - last_progress >= std::chrono::milliseconds(500)) {
      last_progress = now;
      const auto ops = c.ops.load();
      std::fprintf(stderr, "\r  %-14s %6.1f s  %12llu ops  %10.0f ops/s ", label, elapsed,
                   static_cast<unsigned long long>(ops),
                   elapsed > 0 ? static_cast<double>(ops) / elapsed : 0.0);
    }
  }
  if (progress) std::fprintf(stderr, "\r%*s\r", 72, "");
  reap(true);
  if (in_process.joinable()) in_process.join();

  // No thread finished when every process died: the phase ended now.
  const std::int64_t last_end = c.last_end_ns.load();
  const std::chrono::steady_clock::time_point end =
      last_end != 0 ? std::chrono::steady_clock::time_point(std::chrono::steady_clock::duration(last_end))
                    : std::chrono::steady_clock::now();
  r.seconds = std::max(0.0, std::chrono::duration<double>(end - start).count());
  r.ops = c.ops.load();
  r.errors = c.errors.load();
  r.timeouts = c.timeouts.load();
  r.lock_waits = c.lock_waits.load();
  r.lock_timeouts = c.lock_timeouts.load();
  r.owner_deaths = c.owner_deaths.load();
  r.latency = Histogram::from_shared(c.latency);
  r.acked.resize(o.sessions);
  for (std::uint64_t i = 0; i < o.sessions; ++i) r.acked[i] = block.acked()[i].load();
  return r;
}

}  // namespace sessionkit::bench

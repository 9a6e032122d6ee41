// Lock manager micro-benchmarks, each next to its raw baseline in the same run:
//
//   uncontended lock+unlock of one slot: shm, fcntl and thread managers
//     vs a raw process-shared robust pthread mutex and a raw F_OFD_SETLK pair;
//   contended throughput: 2 and 4 processes locking random session ids
//     (distinct sessions, so they only meet when ids share a slot) with
//     8, 64 and 1024 slots, vs "none" (no locking) as the ceiling.
//
//   build/bench/locks/sessionkit_lock_bench --benchmark_min_time=0.5
//
// Contended runs fork their workers inside the benchmark; each worker holds
// a slot for a fixed amount of CPU work (a stand-in for load + handler + save) and
// reports how many of its acquisitions had to wait.
#include <fcntl.h>
#include <pthread.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <benchmark/benchmark.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "locks/fcntl_lock_manager.hpp"
#include "locks/shm_lock_manager.hpp"
#include "locks/thread_lock_manager.hpp"
#include "sessionkit/registry.hpp"

namespace sessionkit {
namespace {

using Clock = std::chrono::steady_clock;

std::string scratch_dir() {
  const char* base = std::getenv("TMPDIR");
  std::string tmpl =
      std::string(base != nullptr && *base != '\0' ? base : "/tmp") + "/sessionkit-bench-XXXXXX";
  if (::mkdtemp(tmpl.data()) == nullptr) throw std::runtime_error("mkdtemp failed");
  return tmpl;
}

std::string bench_region_name() { return "bench-" + std::to_string(::getpid()); }

// Builds a manager the way applications do, from its config section.
std::unique_ptr<LockManager> make_manager(const std::string& kind, std::uint32_t slots,
                                          const std::string& dir) {
  nlohmann::json section = {{"type", kind}, {"slots", slots}, {"resource_slots", 8}};
  if (kind == "shm") section["name"] = bench_region_name() + "-" + std::to_string(slots);
  if (kind == "fcntl") section["path"] = dir + "/bench.locks";
  return Registry::global().lock_manager(kind).create(section, dir);
}

void cleanup(const std::string& kind, std::uint32_t slots, const std::string& dir) {
  if (kind == "shm") ShmLockManager::remove(bench_region_name() + "-" + std::to_string(slots));
  if (kind == "fcntl") ::unlink((dir + "/bench.locks").c_str());
  ::rmdir(dir.c_str());
}

// ---- uncontended: one thread, one slot ----------------------------------

void BM_Raw_RobustPthreadMutex(benchmark::State& state) {
  void* p = ::mmap(nullptr, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  auto* mu = static_cast<pthread_mutex_t*>(p);
  pthread_mutexattr_t attr;
  ::pthread_mutexattr_init(&attr);
  ::pthread_mutexattr_setpshared(&attr, PTHREAD_PROCESS_SHARED);
  ::pthread_mutexattr_setrobust(&attr, PTHREAD_MUTEX_ROBUST);
  ::pthread_mutex_init(mu, &attr);
  for (auto _ : state) {
    if (::pthread_mutex_lock(mu) != 0) state.SkipWithError("lock failed");
    ::pthread_mutex_unlock(mu);
  }
  ::pthread_mutex_destroy(mu);
  ::munmap(p, 4096);
}
BENCHMARK(BM_Raw_RobustPthreadMutex);

void BM_Raw_OfdLockPair(benchmark::State& state) {
  const std::string dir = scratch_dir();
  const std::string path = dir + "/raw.locks";
  const int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  struct flock lk {};
  lk.l_whence = SEEK_SET;
  lk.l_start = 1;
  lk.l_len = 1;
  for (auto _ : state) {
    lk.l_type = F_WRLCK;
    if (::fcntl(fd, F_OFD_SETLK, &lk) != 0) state.SkipWithError("F_OFD_SETLK failed");
    lk.l_type = F_UNLCK;
    ::fcntl(fd, F_OFD_SETLK, &lk);
  }
  ::close(fd);
  ::unlink(path.c_str());
  ::rmdir(dir.c_str());
}
BENCHMARK(BM_Raw_OfdLockPair);

// The deadline is computed once, outside the loop: it is the caller's cost
// (SessionManager reads the clock once per open()), not the lock manager's.
void uncontended(benchmark::State& state, const std::string& kind) {
  const std::string dir = scratch_dir();
  auto locks = make_manager(kind, 1024, dir);
  const std::uint32_t slot = locks->slot_for("benchmark-session");
  const auto deadline = Clock::now() + std::chrono::hours(1);
  for (auto _ : state) {
    if (locks->lock(slot, deadline) != LockStatus::acquired) state.SkipWithError("lock failed");
    locks->unlock(slot);
  }
  locks.reset();
  cleanup(kind, 1024, dir);
}

void BM_Uncontended_Shm(benchmark::State& state) { uncontended(state, "shm"); }
void BM_Uncontended_Fcntl(benchmark::State& state) { uncontended(state, "fcntl"); }
void BM_Uncontended_Thread(benchmark::State& state) { uncontended(state, "thread"); }
// "none" locks nothing: what LockManager's own bookkeeping (re-entrancy table,
// lock-order check, counters) costs on top of any implementation.
void BM_Uncontended_None(benchmark::State& state) { uncontended(state, "none"); }
BENCHMARK(BM_Uncontended_Shm);
BENCHMARK(BM_Uncontended_Fcntl);
BENCHMARK(BM_Uncontended_Thread);
BENCHMARK(BM_Uncontended_None);

// ---- contended: processes on random sessions vs slot count ---------------

// The work done while holding a slot: a fixed amount of CPU work (not a wall-
// clock spin, which a preempted holder would "finish" the moment it resumes),
// about 7 us on the build machine.
constexpr int kHoldWork = 5000;
constexpr int kIdPool = 4096;

void hold_work() {
  std::uint64_t x = 1;
  for (int i = 0; i < kHoldWork; ++i) {
    x = x * 6364136223846793005ull + 1442695040888963407ull;
    benchmark::DoNotOptimize(x);
  }
}

std::string random_id(std::mt19937_64& rng) {
  static constexpr char kAlphabet[] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_";
  std::string id(43, 'x');  // the length of a base64url 256-bit id
  for (char& c : id) c = kAlphabet[rng() % 64];
  return id;
}

// Worker: waits for the start signal, runs `ops` lock/hold/unlock cycles on
// random sessions, writes how many acquisitions waited, exits.
[[noreturn]] void worker(LockManager& locks, int ops, int go_fd, int report_fd) {
  locks.after_fork();
  std::mt19937_64 rng(static_cast<std::uint64_t>(::getpid()) * 0x9e3779b97f4a7c15ull);
  std::vector<std::string> ids;
  ids.reserve(kIdPool);
  for (int i = 0; i < kIdPool; ++i) ids.push_back(random_id(rng));
  char c;
  while (::read(go_fd, &c, 1) < 0) {
  }
  for (int i = 0; i < ops; ++i) {
    const std::uint32_t slot = locks.slot_for(ids[static_cast<std::size_t>(i) % kIdPool]);
    if (locks.lock(slot, Clock::now() + std::chrono::seconds(30)) == LockStatus::timed_out) _exit(2);
    hold_work();
    locks.unlock(slot);
  }
  const std::uint64_t waits = locks.stats().waits;
  if (::write(report_fd, &waits, sizeof waits) != sizeof waits) _exit(3);
  _exit(0);
}

const char* kKinds[] = {"none", "shm", "fcntl"};

// Args: kind index (0 none, 1 shm, 2 fcntl), processes, slots.
void BM_Contended(benchmark::State& state) {
  const std::string kind = kKinds[state.range(0)];
  const int procs = static_cast<int>(state.range(1));
  const auto slots = static_cast<std::uint32_t>(state.range(2));
  const int ops = 5000;
  const std::string dir = scratch_dir();
  auto locks = make_manager(kind, slots, dir);
  double total_ops = 0, total_s = 0, total_waits = 0;
  for (auto _ : state) {
    int go[2], report[2];
    if (::pipe2(go, O_CLOEXEC) != 0 || ::pipe2(report, O_CLOEXEC) != 0) {
      state.SkipWithError("pipe failed");
      break;
    }
    std::vector<pid_t> pids;
    for (int p = 0; p < procs; ++p) {
      const pid_t pid = ::fork();
      if (pid == 0) {
        ::close(go[1]);
        worker(*locks, ops, go[0], report[1]);
      }
      pids.push_back(pid);
    }
    ::close(go[0]);
    ::close(report[1]);
    ::usleep(20000);  // let the workers build their id pools
    const auto start = Clock::now();
    ::close(go[1]);  // EOF: every worker starts at once
    bool ok = true;
    for (pid_t pid : pids) {
      int status = 0;
      ::waitpid(pid, &status, 0);
      ok = ok && WIFEXITED(status) && WEXITSTATUS(status) == 0;
    }
    const double secs = std::chrono::duration<double>(Clock::now() - start).count();
    for (int p = 0; p < procs; ++p) {
      std::uint64_t w = 0;
      if (::read(report[0], &w, sizeof w) == sizeof w) total_waits += static_cast<double>(w);
    }
    ::close(report[0]);
    if (!ok) {
      state.SkipWithError("a worker failed");
      break;
    }
    state.SetIterationTime(secs);
    total_ops += static_cast<double>(procs) * ops;
    total_s += secs;
  }
  if (total_s > 0) {
    state.counters["ops_per_s"] = total_ops / total_s;
    state.counters["waited_pct"] = 100.0 * total_waits / total_ops;
  }
  state.SetLabel(kind + " " + std::to_string(procs) + " procs, " + std::to_string(slots) + " slots");
  locks.reset();
  cleanup(kind, slots, dir);
}
BENCHMARK(BM_Contended)
    ->ArgNames({"kind", "procs", "slots"})
    ->ArgsProduct({{0, 1, 2}, {2, 4}, {8, 64, 1024}})
    ->UseManualTime()
    ->Iterations(3)
    ->Unit(benchmark::kMillisecond);

}  // namespace
}  // namespace sessionkit

BENCHMARK_MAIN();

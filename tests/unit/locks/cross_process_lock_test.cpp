// Properties every cross-process lock manager must have, run for "shm" and
// "fcntl" with real processes (fork and exec), real signals and real files.
#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <atomic>
#include <fstream>
#include <map>
#include <sstream>
#include <thread>
#include <vector>

#include "locks/shm_lock_manager.hpp"
#include "sessionkit/config.hpp"
#include "sessionkit/error.hpp"
#include "sessionkit/session_manager.hpp"
#include "tests/support/test_support.hpp"
#include "tests/unit/locks/lock_test_support.hpp"

using namespace std::chrono_literals;

namespace sessionkit {
namespace {

using testing::fork_child;
using testing::in;
using testing::LockTarget;
using testing::Pipe;
using testing::TempDir;
using testing::wait_child;

constexpr int kProcesses = 8;
constexpr int kIncrements = 200;
constexpr const char* kCounterSession = "counter-session";

// True when one of this process's descriptors points at a path containing `needle`.
bool has_fd_to(const std::string& needle) {
  DIR* d = ::opendir("/proc/self/fd");
  if (d == nullptr) return false;
  bool found = false;
  while (dirent* e = ::readdir(d)) {
    std::error_code ec;
    auto target = std::filesystem::read_symlink(std::string("/proc/self/fd/") + e->d_name, ec);
    if (!ec && target.string().find(needle) != std::string::npos) found = true;
  }
  ::closedir(d);
  return found;
}

char status_byte(LockStatus s) {
  switch (s) {
    case LockStatus::acquired: return 'a';
    case LockStatus::acquired_after_owner_death: return 'd';
    case LockStatus::timed_out: return 't';
  }
  return '?';
}

// args: kind where counter-file increments
SESSIONKIT_TEST_HELPER(lock_counter) {
  LockTarget target{args.at(0), args.at(1)};
  auto locks = target.open();
  return testing::increment_counter(*locks, locks->slot_for(kCounterSession), args.at(2),
                                    std::stoi(args.at(3)));
}

// args: needle. Exit 1 when a descriptor inherited across exec points at it.
SESSIONKIT_TEST_HELPER(scan_fds) { return has_fd_to(args.at(0)) ? 1 : 0; }

class CrossProcessLocks : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    target_.kind = GetParam();
    target_.where = is_shm() ? testing::unique_name("locktest") : (dir_ / "test.locks").string();
  }
  void TearDown() override {
    if (is_shm()) ShmLockManager::remove(target_.where);
  }
  bool is_shm() const { return target_.kind == "shm"; }
  // fcntl cannot tell a dead holder's release from a normal one.
  LockStatus after_death() const {
    return is_shm() ? LockStatus::acquired_after_owner_death : LockStatus::acquired;
  }
  Config manager_config(std::uint64_t wait_ms) const {
    testing::register_test_shared_store();
    nlohmann::json doc = {{"store", {{"type", "test-shared-memory"}}},
                          {"locks", target_.config(64, 8, {{"wait_ms", wait_ms}})},
                          {"gc", {{"every_n_requests", 0}}}};
    return Config::from_json(doc);
  }

  TempDir dir_;
  LockTarget target_;
};

TEST_P(CrossProcessLocks, ForkedProcessesCountExactly) {
  auto locks = target_.open();  // created before fork, as a prefork parent does
  const auto file = dir_ / "counter";
  testing::write_counter(file, 0);
  const std::uint32_t slot = locks->slot_for(kCounterSession);
  std::vector<pid_t> pids;
  for (int p = 0; p < kProcesses; ++p) {
    pids.push_back(fork_child([&] {
      locks->after_fork();
      return testing::increment_counter(*locks, slot, file, kIncrements);
    }));
  }
  for (pid_t pid : pids) EXPECT_EQ(wait_child(pid), 0);
  EXPECT_EQ(testing::read_counter(file), static_cast<std::uint64_t>(kProcesses * kIncrements));
}

TEST_P(CrossProcessLocks, UnrelatedProcessesCountExactly) {
  const auto file = dir_ / "counter";
  testing::write_counter(file, 0);
  std::vector<pid_t> pids;
  for (int p = 0; p < kProcesses; ++p) {
    pids.push_back(testing::spawn_helper(
        "lock_counter", {target_.kind, target_.where, file.string(), std::to_string(kIncrements)}));
  }
  for (pid_t pid : pids) EXPECT_EQ(wait_child(pid), 0);
  EXPECT_EQ(testing::read_counter(file), static_cast<std::uint64_t>(kProcesses * kIncrements));
}

TEST_P(CrossProcessLocks, HolderKilledWithSigkillIsRecoveredTwice) {
  auto locks = target_.open();
  const std::uint32_t slot = locks->slot_for("doomed-session");

  // A takes the slot and is killed while B waits for it.
  Pipe a_ready;
  pid_t a = fork_child([&]() -> int {
    locks->after_fork();
    if (locks->lock(slot, in(5s)) != LockStatus::acquired) return 1;
    a_ready.write_byte('h');
    testing::sleep_forever();
  });
  ASSERT_EQ(a_ready.read_byte(), 'h');

  Pipe b_status;
  pid_t b = fork_child([&]() -> int {
    locks->after_fork();
    b_status.write_byte('w');
    b_status.write_byte(status_byte(locks->lock(slot, in(60s))));
    testing::sleep_forever();  // dies holding the recovered slot
  });
  ASSERT_EQ(b_status.read_byte(), 'w');
  std::this_thread::sleep_for(50ms);  // let B block in lock()
  const auto killed_at = std::chrono::steady_clock::now();
  ASSERT_EQ(::kill(a, SIGKILL), 0);
  EXPECT_EQ(wait_child(a), 128 + SIGKILL);
  EXPECT_EQ(b_status.read_byte(), status_byte(after_death()));
  // Woken by A's death, not by its 60 s deadline (which would also say 'd').
  EXPECT_LT(std::chrono::steady_clock::now() - killed_at, 30s);

  ASSERT_EQ(::kill(b, SIGKILL), 0);
  EXPECT_EQ(wait_child(b), 128 + SIGKILL);

  const auto start = std::chrono::steady_clock::now();
  EXPECT_EQ(locks->lock(slot, in(60s)), after_death());
  EXPECT_LT(std::chrono::steady_clock::now() - start, 30s);  // at once, not at the deadline
  locks->unlock(slot);
  for (int i = 0; i < 1000; ++i) {
    ASSERT_EQ(locks->lock(slot, in(5s)), LockStatus::acquired) << "cycle " << i;
    locks->unlock(slot);
  }
  EXPECT_EQ(locks->stats().owner_deaths, is_shm() ? 1u : 0u);
}

TEST_P(CrossProcessLocks, DeadlinePassesWhileAnotherProcessHolds) {
  auto locks = target_.open();
  const std::uint32_t slot = locks->slot_for("busy-session");
  Pipe ready, release;
  pid_t holder = fork_child([&] {
    locks->after_fork();
    release.close_write();
    if (locks->lock(slot, in(5s)) != LockStatus::acquired) return 1;
    ready.write_byte('h');
    testing::wait_for_eof(release.read_fd());
    locks->unlock(slot);
    return 0;
  });
  release.close_read();
  ASSERT_EQ(ready.read_byte(), 'h');

  const auto start = std::chrono::steady_clock::now();
  EXPECT_EQ(locks->lock(slot, start + 200ms), LockStatus::timed_out);
  const auto waited = std::chrono::steady_clock::now() - start;
  EXPECT_GE(waited, 180ms);
  EXPECT_LT(waited, 600ms);
  EXPECT_EQ(locks->try_lock(slot), LockStatus::timed_out);
  EXPECT_EQ(locks->stats().timeouts, 1u);
  EXPECT_FALSE(locks->held_by_this_thread(slot));

  // The same with a wait instead of a deadline: the wait starts when the
  // slot is found busy.
  const auto again = std::chrono::steady_clock::now();
  EXPECT_EQ(locks->lock(slot, 200ms), LockStatus::timed_out);
  const auto waited_again = std::chrono::steady_clock::now() - again;
  EXPECT_GE(waited_again, 180ms);
  EXPECT_LT(waited_again, 600ms);
  EXPECT_EQ(locks->stats().timeouts, 2u);
  EXPECT_EQ(locks->stats().waits, 2u);
  EXPECT_FALSE(locks->held_by_this_thread(slot));

  release.close_write();
  EXPECT_EQ(wait_child(holder), 0);
  EXPECT_EQ(locks->lock(slot, in(5s)), LockStatus::acquired);
  locks->unlock(slot);
}

TEST_P(CrossProcessLocks, SessionOpenThrowsUnavailableAtDeadline) {
  SessionManager mgr(manager_config(200));
  std::string id;
  {
    Session s = mgr.open("");
    s.data()["n"] = 1;
    s.save();
    id = s.id();
  }
  const std::uint32_t slot = mgr.locks().slot_for(id);
  Pipe ready, release;
  pid_t holder = fork_child([&] {
    mgr.after_fork();
    release.close_write();
    if (mgr.locks().lock(slot, in(5s)) != LockStatus::acquired) return 1;
    ready.write_byte('h');
    testing::wait_for_eof(release.read_fd());
    mgr.locks().unlock(slot);
    return 0;
  });
  release.close_read();
  ASSERT_EQ(ready.read_byte(), 'h');

  const auto start = std::chrono::steady_clock::now();
  try {
    Session s = mgr.open("sid=" + id);
    ADD_FAILURE() << "open() succeeded while another process held the session's slot";
  } catch (const Error& e) {
    EXPECT_EQ(e.code_value(), errc::unavailable) << e.what();
  }
  const auto waited = std::chrono::steady_clock::now() - start;
  EXPECT_GE(waited, 180ms);
  EXPECT_LT(waited, 600ms);

  release.close_write();
  EXPECT_EQ(wait_child(holder), 0);
  Session s = mgr.open("sid=" + id);
  EXPECT_FALSE(s.is_new());
  EXPECT_EQ(s.data()["n"], 1);
}

TEST_P(CrossProcessLocks, ThreadsOfOneProcessExcludeEachOther) {
  auto locks = target_.open();
  const std::uint32_t slot = locks->slot_for("threaded-session");
  std::atomic<int> counter{0};
  auto work = [&] {
    for (int i = 0; i < 2000; ++i) {
      ASSERT_EQ(locks->lock(slot, in(10s)), LockStatus::acquired);
      const int v = counter.load(std::memory_order_relaxed);
      std::this_thread::yield();  // a lost update shows if both threads are inside
      counter.store(v + 1, std::memory_order_relaxed);
      locks->unlock(slot);
    }
  };
  std::thread t1(work), t2(work);
  t1.join();
  t2.join();
  EXPECT_EQ(counter.load(), 4000);

  ASSERT_EQ(locks->lock(slot, in(1s)), LockStatus::acquired);
  LockStatus tried = LockStatus::acquired, waited = LockStatus::acquired;
  std::thread([&] {
    tried = locks->try_lock(slot);
    waited = locks->lock(slot, in(50ms));
  }).join();
  EXPECT_EQ(tried, LockStatus::timed_out);
  EXPECT_EQ(waited, LockStatus::timed_out);
  locks->unlock(slot);
}

TEST_P(CrossProcessLocks, ResourceLockedAppendsDoNotInterleave) {
  SessionManager mgr(manager_config(5000));
  const auto file = dir_ / "shared.log";
  std::ofstream(file).close();
  constexpr int kLines = 50;
  std::vector<pid_t> pids;
  for (int p = 0; p < kProcesses; ++p) {
    pids.push_back(fork_child([&] {
      mgr.after_fork();
      const int fd = ::open(file.c_str(), O_WRONLY | O_APPEND | O_CLOEXEC);
      if (fd < 0) return 2;
      const std::string pid = std::to_string(::getpid());
      for (int i = 0; i < kLines; ++i) {
        ResourceLock lock = mgr.lock_resource("shared-log", 10s);
        // Two write() calls per line: without the lock another process's
        // line would land between them.
        const std::string head = pid + " ", tail = std::to_string(i) + "\n";
        if (::write(fd, head.data(), head.size()) != static_cast<ssize_t>(head.size())) return 3;
        ::usleep(50);
        if (::write(fd, tail.data(), tail.size()) != static_cast<ssize_t>(tail.size())) return 4;
      }
      ::close(fd);
      return 0;
    }));
  }
  for (pid_t pid : pids) EXPECT_EQ(wait_child(pid), 0);

  std::ifstream in_file(file);
  std::map<long, std::vector<int>> by_pid;
  std::string line;
  int lines = 0;
  while (std::getline(in_file, line)) {
    ++lines;
    std::istringstream ls(line);
    long pid = 0;
    int i = -1;
    std::string rest;
    ASSERT_TRUE(ls >> pid >> i) << "malformed line " << lines << ": \"" << line << "\"";
    ASSERT_FALSE(ls >> rest) << "interleaved line " << lines << ": \"" << line << "\"";
    by_pid[pid].push_back(i);
  }
  EXPECT_EQ(lines, kProcesses * kLines);
  ASSERT_EQ(by_pid.size(), static_cast<std::size_t>(kProcesses));
  for (const auto& [pid, seq] : by_pid) {
    ASSERT_EQ(seq.size(), static_cast<std::size_t>(kLines)) << "pid " << pid;
    for (int i = 0; i < kLines; ++i) EXPECT_EQ(seq[static_cast<std::size_t>(i)], i) << "pid " << pid;
  }
}

TEST_P(CrossProcessLocks, ResourceHolderKilledNextProceeds) {
  SessionManager mgr(manager_config(5000));
  Pipe ready;
  pid_t holder = fork_child([&]() -> int {
    mgr.after_fork();
    ResourceLock lock = mgr.lock_resource("shared-log", 5s);
    ready.write_byte('h');
    testing::sleep_forever();
  });
  ASSERT_EQ(ready.read_byte(), 'h');
  EXPECT_FALSE(mgr.try_lock_resource("shared-log").has_value());
  ASSERT_EQ(::kill(holder, SIGKILL), 0);
  EXPECT_EQ(wait_child(holder), 128 + SIGKILL);

  const auto start = std::chrono::steady_clock::now();
  ResourceLock lock = mgr.lock_resource("shared-log", 60s);
  EXPECT_LT(std::chrono::steady_clock::now() - start, 30s);  // at once, not at the deadline
  EXPECT_TRUE(lock.owns_lock());
  EXPECT_EQ(lock.recovered_from_dead_owner(), is_shm());
  lock.unlock();
  EXPECT_TRUE(mgr.try_lock_resource("shared-log").has_value());
}

TEST_P(CrossProcessLocks, SameSlotTwiceInOneThreadIsReentrant) {
  auto locks = target_.open();
  const std::uint32_t slot = locks->slot_for("reentrant-session");
  auto other_process_try = [&] {
    pid_t pid = fork_child([&] {
      locks->after_fork();
      const LockStatus s = locks->try_lock(slot);
      if (s == LockStatus::acquired) locks->unlock(slot);
      return s == LockStatus::acquired ? 0 : 1;
    });
    return wait_child(pid) == 0 ? LockStatus::acquired : LockStatus::timed_out;
  };
  ASSERT_EQ(locks->lock(slot, in(1s)), LockStatus::acquired);
  // A manager that is not re-entrant would wait for itself until the deadline
  // and answer timed_out.
  ASSERT_EQ(locks->lock(slot, in(1s)), LockStatus::acquired);
  EXPECT_EQ(locks->stats().reentries, 1u);
  EXPECT_EQ(other_process_try(), LockStatus::timed_out);
  locks->unlock(slot);
  EXPECT_EQ(other_process_try(), LockStatus::timed_out);  // still held once
  locks->unlock(slot);
  EXPECT_EQ(other_process_try(), LockStatus::acquired);
}

TEST_P(CrossProcessLocks, ExecedChildInheritsNoLockDescriptor) {
  auto locks = target_.open();
  const std::uint32_t slot = locks->slot_for("held-across-exec");
  ASSERT_EQ(locks->lock(slot, in(1s)), LockStatus::acquired);
  // fcntl keeps its descriptor open; shm closes it once mapped.
  EXPECT_EQ(has_fd_to(target_.fd_needle()), !is_shm());
  EXPECT_EQ(wait_child(testing::spawn_helper("scan_fds", {target_.fd_needle()})), 0);
  locks->unlock(slot);
}

TEST_P(CrossProcessLocks, ChildAfterForkDoesNotShareParentsLocks) {
  auto locks = target_.open();
  const std::uint32_t parents = locks->slot_for("parent-session");
  const std::uint32_t childs = locks->slot_for("child-session-2");
  ASSERT_NE(parents, childs);
  ASSERT_EQ(locks->lock(parents, in(1s)), LockStatus::acquired);
  Pipe ready, release;
  pid_t child = fork_child([&] {
    locks->after_fork();
    release.close_write();
    // Through the parent's open file description this would succeed (fcntl).
    if (locks->try_lock(parents) != LockStatus::timed_out) return 1;
    if (locks->lock(childs, in(5s)) != LockStatus::acquired) return 2;
    ready.write_byte('h');
    testing::wait_for_eof(release.read_fd());
    locks->unlock(childs);
    return 0;
  });
  release.close_read();
  ASSERT_EQ(ready.read_byte(), 'h');
  EXPECT_EQ(locks->try_lock(childs), LockStatus::timed_out);
  release.close_write();
  EXPECT_EQ(wait_child(child), 0);
  EXPECT_EQ(locks->try_lock(childs), LockStatus::acquired);
  locks->unlock(childs);
  locks->unlock(parents);
}

INSTANTIATE_TEST_SUITE_P(Kinds, CrossProcessLocks, ::testing::Values("shm", "fcntl"),
                         [](const ::testing::TestParamInfo<std::string>& kind) { return kind.param; });

}  // namespace
}  // namespace sessionkit

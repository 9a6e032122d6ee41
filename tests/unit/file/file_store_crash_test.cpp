// FileStore under kill -9 and a full disk: writers and sweepers killed at
// random moments never leave a torn or lost record, and a save that runs out
// of space fails cleanly and leaves the previous record.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/resource.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <functional>
#include <random>
#include <system_error>
#include <thread>

#include "backends/file/file_store.hpp"
#include "sessionkit/error.hpp"
#include "tests/support/test_support.hpp"
#include "tests/unit/file/file_test_support.hpp"

namespace sessionkit {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using testing::Clock;
using testing::file_options;
using testing::new_id;
using testing::TempDir;

errc error_of(const std::function<void()>& fn) {
  try {
    fn();
  } catch (const Error& e) {
    return e.code_value();
  }
  ADD_FAILURE() << "no sessionkit::Error thrown";
  return errc::aborted;
}

// Forks `body` and returns once the child has signalled that it is running
// (after its first completed save): a kill after that lands in the work, not
// in fork() or set-up, which are slow under sanitizers and on a loaded machine,
// and every round writes at least once however the scheduler treats the child.
pid_t fork_ready(const std::function<void(const std::function<void()>& ready)>& body) {
  int fds[2];
  if (::pipe(fds) != 0) throw std::system_error(errno, std::generic_category(), "pipe");
  pid_t pid = testing::fork_child([&] {
    ::close(fds[0]);
    body([&] {
      char c = 'r';
      (void)!::write(fds[1], &c, 1);
      ::close(fds[1]);
    });
    return 0;
  });
  ::close(fds[1]);
  char c = 0;
  while (::read(fds[0], &c, 1) < 0 && errno == EINTR) {
  }
  ::close(fds[0]);
  return pid;
}

// Sizes from a few bytes to ~60 KB, so some writes take several write() calls
// and some kills land mid-write.
std::size_t size_for(std::uint64_t counter) { return 1 + (counter * 7919) % 60'000; }

TEST(FileStoreCrashTest, WritersKilledAtRandomLeaveOldOrNewCompleteRecords) {
  TempDir tmp;
  const int kIds = 4;
  const int kKills = 200;
  std::vector<std::string> ids;
  for (int i = 0; i < kIds; ++i) ids.push_back(new_id());
  std::vector<std::uint64_t> last_seen(3 * kIds, 0);  // per directory and id
  std::mt19937 rng(12345);
  int torn = 0;
  int went_back = 0;
  int writes_seen = 0;
  for (int kill_no = 0; kill_no < kKills; ++kill_no) {
    // Alternate durable and nosync writers: rename is what makes a kill safe.
    const auto durability = kill_no % 2 == 0 ? FileDurability::nosync : FileDurability::durable;
    const int depth = kill_no % 3;
    const fs::path dir = tmp / ("s" + std::to_string(depth));
    pid_t pid = fork_ready([&](const std::function<void()>& ready) {
      FileStore store(file_options(dir, depth, durability));
      for (std::uint64_t i = 0;; ++i) {
        const std::string& id = ids[i % kIds];
        std::optional<std::string> prev = store.load(id);
        std::uint64_t counter = prev ? testing::check_record(*prev).value_or(0) + 1 : 1;
        store.save(id, testing::make_record(counter, size_for(counter)), Clock::now() + 1h);
        if (i == 0) ready();
      }
    });
    std::this_thread::sleep_for(std::chrono::microseconds(std::uniform_int_distribution<int>(0, 3000)(rng)));
    ::kill(pid, SIGKILL);
    ASSERT_EQ(testing::wait_child(pid), 128 + SIGKILL);

    FileStore store(file_options(dir, depth));
    for (int i = 0; i < kIds; ++i) {
      std::optional<std::string> r;
      try {
        r = store.load(ids[static_cast<std::size_t>(i)]);
      } catch (const Error& e) {
        ADD_FAILURE() << "load after kill " << kill_no << ": " << e.what();
        ++torn;
        continue;
      }
      if (!r) continue;  // not written yet in this directory
      std::optional<std::uint64_t> counter = testing::check_record(*r);
      if (!counter) {
        ++torn;
        continue;
      }
      ++writes_seen;
      std::uint64_t& last = last_seen[static_cast<std::size_t>(depth * kIds + i)];
      if (*counter < last) ++went_back;
      last = *counter;
    }
  }
  EXPECT_EQ(torn, 0);
  EXPECT_EQ(went_back, 0);
  EXPECT_GT(writes_seen, 0);
  // Every writer completed at least one increment of ids[0] in its directory.
  for (int depth = 0; depth < 3; ++depth) {
    EXPECT_GE(last_seen[static_cast<std::size_t>(depth * kIds)], std::uint64_t{kKills / 3});
  }

  // Killed writers leave temp files behind; the sweep removes them once old,
  // and never a record.
  std::size_t temps = 0;
  for (int depth = 0; depth < 3; ++depth) {
    temps += testing::files_with_prefix(tmp / ("s" + std::to_string(depth)), ".tmp.").size();
  }
  std::this_thread::sleep_for(20ms);
  for (int depth = 0; depth < 3; ++depth) {
    FileStoreOptions o = file_options(tmp / ("s" + std::to_string(depth)), depth);
    o.temp_max_age = 0s;
    FileStore store(o);
    while (!store.sweep(Clock::now(), 100ms).complete) {
    }
    EXPECT_TRUE(testing::files_with_prefix(o.path, ".tmp.").empty());
    for (const std::string& id : ids) {
      std::optional<std::string> r = store.load(id);
      if (r) {
        EXPECT_TRUE(testing::check_record(*r).has_value());
      }
    }
  }
  std::printf("[          ] %d kills, %zu temp files left by them\n", kKills, temps);
}

TEST(FileStoreCrashTest, CountersNeverGoBackAcrossKills) {
  TempDir tmp;
  const std::string id = new_id();
  std::uint64_t last = 0;
  std::mt19937 rng(777);
  for (int kill_no = 0; kill_no < 60; ++kill_no) {
    pid_t pid = fork_ready([&](const std::function<void()>& ready) {
      FileStore store(file_options(tmp / "s", 1, FileDurability::nosync));
      for (bool first = true;; first = false) {
        std::optional<std::string> prev = store.load(id);
        std::uint64_t counter = prev ? testing::check_record(*prev).value_or(0) + 1 : 1;
        store.save(id, testing::make_record(counter, size_for(counter)), Clock::now() + 1h);
        if (first) ready();
      }
    });
    std::this_thread::sleep_for(
        std::chrono::microseconds(std::uniform_int_distribution<int>(200, 2000)(rng)));
    ::kill(pid, SIGKILL);
    ASSERT_EQ(testing::wait_child(pid), 128 + SIGKILL);
    FileStore store(file_options(tmp / "s", 1));
    std::optional<std::string> r = store.load(id);
    ASSERT_TRUE(r.has_value()) << "a record vanished after kill " << kill_no;
    std::optional<std::uint64_t> counter = testing::check_record(*r);
    ASSERT_TRUE(counter.has_value()) << "torn record after kill " << kill_no;
    EXPECT_GE(*counter, last) << "went back after kill " << kill_no;
    last = *counter;
  }
  // Every child completed at least one increment before it was killed.
  EXPECT_GE(last, 60u);
}

// Sweepers killed at random moments (some between their rename to .gc.<id>
// and the unlink or rename back): every live record stays loadable, and the
// next complete sweep leaves exactly the live ones under their names.
TEST(FileStoreCrashTest, SweepersKilledAtRandomLoseNoLiveRecord) {
  TempDir tmp;
  const auto now = Clock::now();
  std::vector<std::string> live;
  std::vector<std::string> dead;
  {
    FileStore store(file_options(tmp / "s", 1));
    for (int i = 0; i < 500; ++i) {
      live.push_back(new_id());
      dead.push_back(new_id());
      store.save(live.back(), "live", now + 1h);
      store.save(dead.back(), "dead", now - 1h);
    }
  }
  std::mt19937 rng(99);
  for (int kill_no = 0; kill_no < 30; ++kill_no) {
    pid_t pid = fork_ready([&](const std::function<void()>& ready) {
      FileStore store(file_options(tmp / "s", 1));
      ready();
      for (;;) store.sweep(now, 1ms);
    });
    std::this_thread::sleep_for(std::chrono::microseconds(std::uniform_int_distribution<int>(0, 3000)(rng)));
    ::kill(pid, SIGKILL);
    ASSERT_EQ(testing::wait_child(pid), 128 + SIGKILL);
  }
  FileStore store(file_options(tmp / "s", 1));
  for (const std::string& id : live) ASSERT_EQ(store.load(id), "live");
  while (!store.sweep(now, 100ms).complete) {
  }
  for (const std::string& id : live) EXPECT_TRUE(fs::exists(testing::record_path(tmp / "s", id, 1)));
  for (const std::string& id : dead) EXPECT_EQ(store.load(id), std::nullopt);
  EXPECT_TRUE(testing::files_with_prefix(tmp / "s", ".gc.").empty());
}

// Disk full, by RLIMIT_FSIZE in a child (SIGXFSZ ignored, so write() fails
// with EFBIG instead of killing it): resource_exhausted, no temp file left,
// the previous record intact, and the next save after "space returns" works.
class FileStoreDiskFullTest : public ::testing::TestWithParam<FileDurability> {};

TEST_P(FileStoreDiskFullTest, SaveFailsCleanlyAndTheNextOneWorks) {
  TempDir tmp;
  const FileDurability durability = GetParam();
  const std::string id = new_id();
  pid_t pid = testing::fork_child([&]() -> int {
    ::signal(SIGXFSZ, SIG_IGN);
    FileStore store(file_options(tmp / "s", 1, durability));
    const std::string small = testing::make_record(1, 100);
    const std::string big = testing::make_record(2, 50'000);
    store.save(id, small, Clock::now() + 1h);

    rlimit old{};
    if (::getrlimit(RLIMIT_FSIZE, &old) != 0) return 10;
    rlimit limited = old;
    limited.rlim_cur = 4096;
    if (::setrlimit(RLIMIT_FSIZE, &limited) != 0) return 11;
    try {
      store.save(id, big, Clock::now() + 1h);
      return 12;  // should not fit
    } catch (const Error& e) {
      if (e.code_value() != errc::resource_exhausted) {
        std::fprintf(stderr, "wrong error: %s\n", e.what());
        return 13;
      }
    }
    if (!testing::files_with_prefix(tmp / "s", ".tmp.").empty()) return 14;
    if (store.load(id) != small) return 15;
    // A record that fits still saves while the limit holds.
    store.save(id, testing::make_record(3, 1000), Clock::now() + 1h);
    if (store.load(id) != testing::make_record(3, 1000)) return 16;
    // Space returns.
    if (::setrlimit(RLIMIT_FSIZE, &old) != 0) return 17;
    store.save(id, big, Clock::now() + 1h);
    if (store.load(id) != big) return 18;
    return 0;
  });
  EXPECT_EQ(testing::wait_child(pid), 0);
  FileStore store(file_options(tmp / "s", 1));
  EXPECT_EQ(store.load(id), testing::make_record(2, 50'000));
}

INSTANTIATE_TEST_SUITE_P(Durability, FileStoreDiskFullTest,
                         ::testing::Values(FileDurability::durable, FileDurability::nosync),
                         [](const auto& param_info) {
                           return param_info.param == FileDurability::durable ? std::string("durable")
                                                                              : std::string("nosync");
                         });

// A real ENOSPC, on a small tmpfs mounted for the test: out of blocks
// (large records) and out of inodes (small ones). Needs CAP_SYS_ADMIN; skipped
// where mount(2) is refused.
struct TmpfsCase {
  const char* name;
  const char* options;
  std::size_t record_size;
};

class FileStoreTmpfsFullTest : public ::testing::TestWithParam<TmpfsCase> {};

TEST_P(FileStoreTmpfsFullTest, EnospcIsResourceExhaustedAndSpaceComesBack) {
  TempDir tmp;
  const fs::path mnt = tmp / "mnt";
  fs::create_directory(mnt);
  if (::mount("tmpfs", mnt.c_str(), "tmpfs", MS_NOSUID | MS_NODEV, GetParam().options) != 0) {
    GTEST_SKIP() << "cannot mount a tmpfs here: " << std::strerror(errno);
  }
  struct Unmount {
    fs::path path;
    ~Unmount() { ::umount2(path.c_str(), MNT_DETACH); }
  } unmount{mnt};

  FileStore store(file_options(mnt / "s", 1, FileDurability::durable));
  const std::size_t size = GetParam().record_size;
  std::vector<std::string> saved;
  std::string refused;
  for (std::uint64_t i = 0; i < 100'000 && refused.empty(); ++i) {
    std::string id = new_id();
    try {
      store.save(id, testing::make_record(i, size), Clock::now() + 1h);
      saved.push_back(id);
    } catch (const Error& e) {
      ASSERT_EQ(e.code_value(), errc::resource_exhausted) << e.what();
      refused = id;
    }
  }
  ASSERT_FALSE(refused.empty());
  ASSERT_GE(saved.size(), 4u);
  EXPECT_TRUE(testing::files_with_prefix(mnt, ".tmp.").empty());
  // Rewriting a record needs room for the new copy: refused, the old one stays.
  EXPECT_EQ(error_of([&] { store.save(saved[0], testing::make_record(777, size), Clock::now() + 1h); }),
            errc::resource_exhausted);
  EXPECT_TRUE(testing::files_with_prefix(mnt, ".tmp.").empty());
  for (std::size_t i = 0; i < saved.size(); ++i) {
    std::optional<std::string> r = store.load(saved[i]);
    ASSERT_TRUE(r.has_value());
    EXPECT_EQ(testing::check_record(*r), i);
  }
  // Space returns: the next saves work.
  for (std::size_t i = 1; i < 4; ++i) EXPECT_TRUE(store.remove(saved[i]));
  store.save(saved[0], testing::make_record(777, size), Clock::now() + 1h);
  EXPECT_EQ(store.load(saved[0]), testing::make_record(777, size));
  store.save(refused, testing::make_record(888, size), Clock::now() + 1h);
  EXPECT_EQ(store.load(refused), testing::make_record(888, size));
}

INSTANTIATE_TEST_SUITE_P(Tmpfs, FileStoreTmpfsFullTest,
                         ::testing::Values(TmpfsCase{"out_of_blocks", "size=256k,mode=0700", 20'000},
                                           TmpfsCase{"out_of_inodes", "size=4m,nr_inodes=40,mode=0700", 100}),
                         [](const auto& param_info) { return std::string(param_info.param.name); });

}  // namespace
}  // namespace sessionkit

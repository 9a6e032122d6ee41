// What only the fcntl lock manager does: per-slot bytes of one file, a fresh
// open file description per forked child, and its lock file's permissions.
#include "locks/fcntl_lock_manager.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <fstream>
#include <thread>

#include <nlohmann/json.hpp>

#include "sessionkit/error.hpp"
#include "sessionkit/registry.hpp"
#include "tests/support/test_support.hpp"
#include "tests/unit/locks/lock_test_support.hpp"

using namespace std::chrono_literals;

namespace sessionkit {
namespace {

using testing::fork_child;
using testing::in;
using testing::Pipe;
using testing::TempDir;
using testing::wait_child;

FcntlLockOptions options(const std::filesystem::path& path) {
  FcntlLockOptions o;
  o.path = path;
  o.slots = 64;
  o.resource_slots = 8;
  return o;
}

// Whether another open file description could take byte `slot` of `path`.
bool byte_is_free(const std::filesystem::path& path, std::uint32_t slot) {
  const int fd = ::open(path.c_str(), O_RDWR | O_CLOEXEC);
  if (fd < 0) return false;
  struct flock fl {};
  fl.l_type = F_WRLCK;
  fl.l_whence = SEEK_SET;
  fl.l_start = slot;
  fl.l_len = 1;
  const bool ok = ::fcntl(fd, F_OFD_GETLK, &fl) == 0 && fl.l_type == F_UNLCK;
  ::close(fd);
  return ok;
}

TEST(FcntlLockManagerTest, EachSlotIsOneByteOfTheFile) {
  TempDir dir;
  FcntlLockManager locks(options(dir / "a.locks"));
  ASSERT_EQ(locks.lock(3, in(1s)), LockStatus::acquired);
  EXPECT_FALSE(byte_is_free(dir / "a.locks", 3));
  EXPECT_TRUE(byte_is_free(dir / "a.locks", 2));
  EXPECT_TRUE(byte_is_free(dir / "a.locks", 4));
  locks.unlock(3);
  EXPECT_TRUE(byte_is_free(dir / "a.locks", 3));
}

TEST(FcntlLockManagerTest, LockFileIsCreatedPrivateAtTheDefaultPath) {
  TempDir dir;
  auto locks = Registry::global().lock_manager("fcntl").create({{"type", "fcntl"}}, dir.path());
  struct stat st {};
  ASSERT_EQ(::stat((dir / "sessionkit.locks").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  EXPECT_EQ(locks->slots(), 1024u);
  EXPECT_EQ(locks->resource_slots(), 64u);
  EXPECT_EQ(locks->type(), "fcntl");
  EXPECT_TRUE(locks->shared_across_processes());
}

TEST(FcntlLockManagerTest, ChildWithoutAfterForkIsRefused) {
  TempDir dir;
  FcntlLockManager locks(options(dir / "a.locks"));
  ASSERT_EQ(locks.lock(3, in(1s)), LockStatus::acquired);
  pid_t child = fork_child([&] {
    try {
      locks.try_lock(4);  // would go through the parent's open file description
      return 1;
    } catch (const Error& e) {
      if (e.code_value() != errc::failed_precondition) return 2;
    }
    try {
      locks.unlock(3);  // the inherited hold: would free the parent's byte
      return 5;
    } catch (const Error& e) {
      if (e.code_value() != errc::failed_precondition) return 6;
    }
    locks.after_fork();
    if (locks.try_lock(3) != LockStatus::timed_out) return 3;
    if (locks.try_lock(4) != LockStatus::acquired) return 4;
    locks.unlock(4);
    return 0;
  });
  EXPECT_EQ(wait_child(child), 0);
  EXPECT_FALSE(byte_is_free(dir / "a.locks", 3));
  locks.unlock(3);
}

TEST(FcntlLockManagerTest, ChildReleasingItsSlotsLeavesTheParentsHeld) {
  // Closing the child's inherited descriptor in after_fork() must not drop
  // the parent's locks (they belong to the parent's open file description).
  TempDir dir;
  FcntlLockManager locks(options(dir / "a.locks"));
  ASSERT_EQ(locks.lock(3, in(1s)), LockStatus::acquired);
  pid_t child = fork_child([&] {
    locks.after_fork();
    return 0;  // exits: its descriptors close
  });
  EXPECT_EQ(wait_child(child), 0);
  EXPECT_FALSE(byte_is_free(dir / "a.locks", 3));
  locks.unlock(3);
}

TEST(FcntlLockManagerTest, ThreadBlockedInProcessWakesWhenSiblingUnlocks) {
  TempDir dir;
  FcntlLockManager locks(options(dir / "a.locks"));
  ASSERT_EQ(locks.lock(3, in(1s)), LockStatus::acquired);
  LockStatus got = LockStatus::timed_out;
  std::thread waiter([&] {
    got = locks.lock(3, in(5s));
    if (got != LockStatus::timed_out) locks.unlock(3);
  });
  std::this_thread::sleep_for(20ms);
  locks.unlock(3);
  waiter.join();
  EXPECT_EQ(got, LockStatus::acquired);
}

TEST(FcntlLockManagerTest, MissingDirectoryIsIoError) {
  TempDir dir;
  try {
    FcntlLockManager locks(options(dir / "no-such-dir" / "a.locks"));
    ADD_FAILURE() << "opened a lock file in a missing directory";
  } catch (const Error& e) {
    EXPECT_EQ(e.code_value(), errc::io);
    EXPECT_NE(std::string(e.what()).find("no-such-dir"), std::string::npos) << e.what();
  }
}

TEST(FcntlLockManagerTest, SymlinkIsRefused) {
  TempDir dir;
  std::ofstream(dir / "target").close();
  std::filesystem::create_symlink(dir / "target", dir / "a.locks");
  EXPECT_THROW(FcntlLockManager locks(options(dir / "a.locks")), Error);
}

TEST(FcntlLockManagerTest, OwnerLetsAnotherUserOpenTheFile) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root: only root can give the file away";
  TempDir dir;
  ASSERT_EQ(::chmod(dir.path().c_str(), 0711), 0);
  FcntlLockOptions o = options(dir / "a.locks");
  o.owner = detail::resolve_lock_owner("nobody", "locks.owner");
  FcntlLockManager locks(o);
  struct stat st {};
  ASSERT_EQ(::stat((dir / "a.locks").c_str(), &st), 0);
  EXPECT_EQ(st.st_uid, o.owner->uid);
  pid_t child = fork_child([&] {
    if (::setgid(o.owner->gid) != 0 || ::setuid(o.owner->uid) != 0) return 3;
    FcntlLockManager mine(options(dir / "a.locks"));
    if (mine.lock(1, in(1s)) != LockStatus::acquired) return 1;
    mine.unlock(1);
    return 0;
  });
  EXPECT_EQ(wait_child(child), 0);
}

}  // namespace
}  // namespace sessionkit

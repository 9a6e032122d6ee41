// What only the shm lock manager does: create its region race-free, refuse a
// region of another layout, redo a half-finished initialisation, and hand the
// region to another user.
#include "locks/shm_lock_manager.hpp"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <vector>

#include "sessionkit/error.hpp"
#include "tests/support/test_support.hpp"
#include "tests/unit/locks/lock_test_support.hpp"

using namespace std::chrono_literals;

namespace sessionkit {
namespace {

using testing::fork_child;
using testing::in;
using testing::Pipe;
using testing::wait_child;

constexpr int kCreated = 10;  // attach_region's exit code when it initialised the region

// args: name ready-fd go-fd. Signals readiness, waits for go (EOF), attaches,
// uses every slot, exits kCreated if it initialised the region, 0 if it attached.
SESSIONKIT_TEST_HELPER(attach_region) {
  testing::write_byte_to(std::stoi(args.at(1)), 'r');
  ::close(std::stoi(args.at(1)));
  testing::wait_for_eof(std::stoi(args.at(2)));
  ShmLockOptions o;
  o.name = args.at(0);
  o.slots = 64;
  o.resource_slots = 8;
  ShmLockManager locks(o);
  for (std::uint32_t slot = 0; slot < locks.total_slots(); ++slot) {
    if (locks.lock(slot, in(5s)) != LockStatus::acquired) return 1;
    locks.unlock(slot);
  }
  return locks.created_region() ? kCreated : 0;
}

class ShmLockManagerTest : public ::testing::Test {
 protected:
  void TearDown() override {
    for (const std::string& name : names_) ShmLockManager::remove(name);
  }
  std::string fresh_name() {
    names_.push_back(testing::unique_name("shmtest"));
    return names_.back();
  }
  static ShmLockOptions options(const std::string& name, std::uint32_t slots = 64,
                                std::uint32_t resource_slots = 8) {
    ShmLockOptions o;
    o.name = name;
    o.slots = slots;
    o.resource_slots = resource_slots;
    return o;
  }

  std::vector<std::string> names_;
};

TEST_F(ShmLockManagerTest, SixteenSimultaneousAttachersOneInitialiser) {
  for (int round = 0; round < 2; ++round) {
    const std::string name = fresh_name();
    Pipe ready, go;
    ready.make_write_end_inheritable();
    go.make_read_end_inheritable();
    std::vector<pid_t> pids;
    for (int i = 0; i < 16; ++i) {
      pids.push_back(testing::spawn_helper(
          "attach_region", {name, std::to_string(ready.write_fd()), std::to_string(go.read_fd())}));
    }
    ready.close_write();
    go.close_read();
    for (int i = 0; i < 16; ++i) ASSERT_EQ(ready.read_byte(), 'r');
    go.close_write();  // every helper's read() returns at once
    int created = 0, attached = 0;
    for (pid_t pid : pids) {
      const int rc = wait_child(pid);
      if (rc == kCreated)
        ++created;
      else if (rc == 0)
        ++attached;
      else
        ADD_FAILURE() << "helper exited with " << rc;
    }
    EXPECT_EQ(created, 1) << "round " << round;
    EXPECT_EQ(attached, 15) << "round " << round;
  }
}

TEST_F(ShmLockManagerTest, SecondManagerAttachesToTheSameSlots) {
  const std::string name = fresh_name();
  ShmLockManager first(options(name));
  ShmLockManager second(options(name));
  EXPECT_TRUE(first.created_region());
  EXPECT_FALSE(second.created_region());
  EXPECT_EQ(first.region_name(), "/sessionkit-" + name);
  ASSERT_EQ(first.lock(5, in(1s)), LockStatus::acquired);
  EXPECT_EQ(second.try_lock(5), LockStatus::timed_out);  // same mutex through another mapping
  first.unlock(5);
  EXPECT_EQ(second.try_lock(5), LockStatus::acquired);
  second.unlock(5);
}

TEST_F(ShmLockManagerTest, RegionIsPrivateToItsUserAndSizedPerSlot) {
  const std::string name = fresh_name();
  ShmLockManager locks(options(name, 64, 8));
  struct stat st {};
  ASSERT_EQ(::stat(("/dev/shm/sessionkit-" + name).c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  EXPECT_EQ(static_cast<std::size_t>(st.st_size), ShmLockManager::region_size(64, 8));
  EXPECT_EQ(ShmLockManager::region_size(64, 8), 64u + 72u * 64u);  // header + one cache line per slot
}

TEST_F(ShmLockManagerTest, OtherLayoutIsBadConfig) {
  const std::string name = fresh_name();
  ShmLockManager locks(options(name, 64, 8));
  for (auto [slots, resource_slots] : {std::pair{32u, 8u}, std::pair{64u, 16u}}) {
    try {
      ShmLockManager other(options(name, slots, resource_slots));
      ADD_FAILURE() << "attached with slots " << slots << ", resource_slots " << resource_slots;
    } catch (const Error& e) {
      EXPECT_EQ(e.code_value(), errc::bad_config);
      const std::string what = e.what();
      EXPECT_NE(what.find("locks.slots"), std::string::npos) << what;
      EXPECT_NE(what.find("slots 64, resource_slots 8"), std::string::npos) << what;
      EXPECT_NE(what.find("/dev/shm/sessionkit-" + name), std::string::npos) << what;
    }
  }
}

TEST_F(ShmLockManagerTest, HalfInitialisedRegionIsInitialisedAgain) {
  // What an initialiser killed before writing the magic word leaves behind:
  // a sized region of zeros (or garbage), no magic word.
  const std::string name = fresh_name();
  const std::string region = ShmLockManager::region_name_for(name);
  int fd = ::shm_open(region.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(::ftruncate(fd, 4096), 0);
  ASSERT_EQ(::pwrite(fd, "garbage!garbage!", 16, 64), 16);
  ::close(fd);

  ShmLockManager locks(options(name));
  EXPECT_TRUE(locks.created_region());
  ASSERT_EQ(locks.lock(1, in(1s)), LockStatus::acquired);
  locks.unlock(1);
  ShmLockManager again(options(name));
  EXPECT_FALSE(again.created_region());
}

TEST_F(ShmLockManagerTest, RemovedRegionIsCreatedAfresh) {
  const std::string name = fresh_name();
  { ShmLockManager locks(options(name)); }
  EXPECT_TRUE(ShmLockManager::remove(name));
  EXPECT_FALSE(ShmLockManager::remove(name));
  ShmLockManager locks(options(name));
  EXPECT_TRUE(locks.created_region());
}

TEST_F(ShmLockManagerTest, OwnerLetsAnotherUserAttachByName) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root: only root can give the region away";
  const detail::LockOwner nobody = detail::resolve_lock_owner("nobody", "locks.owner");
  auto attach_as_nobody = [&](const std::string& name) {
    return wait_child(fork_child([&] {
      if (::setgid(nobody.gid) != 0 || ::setuid(nobody.uid) != 0) return 3;
      try {
        ShmLockManager locks(options(name));
        if (locks.lock(1, in(1s)) != LockStatus::acquired) return 1;
        locks.unlock(1);
        return 0;
      } catch (const Error& e) {
        return e.code_value() == errc::io ? 2 : 4;
      }
    }));
  };

  const std::string owned = fresh_name();
  ShmLockOptions o = options(owned);
  o.owner = nobody;
  ShmLockManager locks(o);
  struct stat st {};
  ASSERT_EQ(::stat(("/dev/shm/sessionkit-" + owned).c_str(), &st), 0);
  EXPECT_EQ(st.st_uid, nobody.uid);
  EXPECT_EQ(st.st_gid, nobody.gid);
  EXPECT_EQ(attach_as_nobody(owned), 0);

  const std::string root_only = fresh_name();
  ShmLockManager private_locks(options(root_only));
  EXPECT_EQ(attach_as_nobody(root_only), 2);  // EACCES: Error(io) naming locks.owner
}

TEST_F(ShmLockManagerTest, OwnerDeathIsCountedOnce) {
  const std::string name = fresh_name();
  ShmLockManager locks(options(name));
  Pipe ready;
  pid_t child = fork_child([&] {
    ShmLockManager mine(options(name));  // attached by name, not inherited
    if (mine.lock(7, in(1s)) != LockStatus::acquired) return 1;
    ready.write_byte('h');
    _exit(0);  // exits holding the slot, as a crash would
  });
  ASSERT_EQ(ready.read_byte(), 'h');
  EXPECT_EQ(wait_child(child), 0);
  EXPECT_EQ(locks.try_lock(7), LockStatus::acquired_after_owner_death);
  locks.unlock(7);
  EXPECT_EQ(locks.try_lock(7), LockStatus::acquired);
  locks.unlock(7);
  EXPECT_EQ(locks.stats().owner_deaths, 1u);
  EXPECT_EQ(locks.stats().acquisitions, 2u);
}

}  // namespace
}  // namespace sessionkit

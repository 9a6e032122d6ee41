// LmdbStore with "write_map" (MDB_WRITEMAP): the records, sessions and crash
// behaviour of the default mode, a data file preallocated to the map, a file
// never cut below the map another process uses, and a full disk reported as
// resource_exhausted instead of SIGBUS.
#include <errno.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <lmdb.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "backends/lmdb/lmdb_store.hpp"
#include "sessionkit/config.hpp"
#include "sessionkit/error.hpp"
#include "sessionkit/registry.hpp"
#include "sessionkit/session.hpp"
#include "sessionkit/session_manager.hpp"
#include "tests/support/test_support.hpp"
#include "tests/unit/lmdb/lmdb_test_support.hpp"

namespace sessionkit {
namespace {

using namespace std::chrono_literals;
using sessionkit::testing::TempDir;
using TimePoint = Store::TimePoint;

const TimePoint kT0 = sessionkit::testing::kLmdbT0;

LmdbStoreOptions write_map_options(const std::filesystem::path& path) {
  LmdbStoreOptions o;
  o.path = path;
  o.durability = LmdbDurability::nosync;
  o.write_map = true;
  o.map_size_bytes = 128 << 10;
  o.max_map_size_bytes = 64 << 20;
  return o;
}

struct stat stat_of(const std::filesystem::path& p) {
  struct stat st {};
  EXPECT_EQ(::stat(p.c_str(), &st), 0) << p;
  return st;
}

// Whether the filesystem under `dir` implements fallocate(2); where it does
// not, write_map files stay sparse (documented) and the block counts below
// are not checked.
bool fallocate_supported(const std::filesystem::path& dir) {
  const std::filesystem::path probe = dir / "fallocate-probe";
  int fd = ::open(probe.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (fd < 0) return false;
  const bool ok = ::fallocate(fd, 0, 0, 4096) == 0;
  ::close(fd);
  ::unlink(probe.c_str());
  return ok;
}

template <typename Fn>
Error error_of(Fn&& fn) {
  try {
    fn();
  } catch (const Error& e) {
    return e;
  }
  ADD_FAILURE() << "no Error thrown";
  return Error(errc::io, "none");
}

std::string id_of(int i) { return "id-" + std::to_string(i); }

TEST(LmdbWriteMap, OpensWithTheFlagAndTheWholeMapReservedOnDisk) {
  TempDir dir;
  LmdbStore store(write_map_options(dir / "s.mdb"));
  EXPECT_NE(store.lmdb_flags() & MDB_WRITEMAP, 0u);
  EXPECT_NE(store.lmdb_flags() & MDB_NOSYNC, 0u);
  const struct stat st = stat_of(dir / "s.mdb");
  EXPECT_EQ(static_cast<std::uint64_t>(st.st_size), store.map_size());
  if (fallocate_supported(dir.path())) {
    EXPECT_GE(static_cast<std::uint64_t>(st.st_blocks) * 512, store.map_size());
  }
  EXPECT_EQ(st.st_mode & 0777, 0600u);

  store.save("a", "first", kT0 + 1h);
  store.save("b", "second", kT0 - 1s);
  store.save("a", "replaced", kT0 + 2h);
  EXPECT_EQ(store.load("a"), "replaced");
  EXPECT_EQ(store.sweep(kT0, 10s).removed, 1u);
  EXPECT_EQ(store.load("b"), std::nullopt);
  EXPECT_TRUE(store.remove("a"));
  EXPECT_FALSE(store.remove("a"));
  EXPECT_EQ(store.info().records, 0);
  EXPECT_EQ(store.check_consistency(), "");
}

TEST(LmdbWriteMap, TheMapAndItsReservationGrowTogetherAndSurviveReopen) {
  TempDir dir;
  const LmdbStoreOptions o = write_map_options(dir / "s.mdb");
  const bool reserved = fallocate_supported(dir.path());
  {
    LmdbStore store(o);
    for (int i = 0; i < 400; ++i) store.save(id_of(i), std::string(2000, 'r'), kT0 + 1h);
    EXPECT_GE(store.map_growths(), 3u);  // 128 KiB -> ... -> >= 1 MiB
    const struct stat st = stat_of(dir / "s.mdb");
    EXPECT_EQ(static_cast<std::uint64_t>(st.st_size), store.map_size());
    if (reserved) {
      EXPECT_GE(static_cast<std::uint64_t>(st.st_blocks) * 512, store.map_size());
    }
  }
  LmdbStore store(o);
  EXPECT_GE(store.map_size(), 1u << 20);
  EXPECT_EQ(store.info().records, 400);
  EXPECT_EQ(store.load(id_of(399)), std::string(2000, 'r'));
  EXPECT_EQ(store.check_consistency(), "");
}

// With MDB_WRITEMAP LMDB ftruncate()s the file to whatever map size a process
// opens with. A process configured with a smaller map than another one has
// grown to must not cut the file under it: the other process's next write
// past the cut would be SIGBUS.
TEST(LmdbWriteMap, ASmallerMapElsewhereNeverCutsTheFileUnderAWriter) {
  TempDir dir;
  const LmdbStoreOptions o = write_map_options(dir / "s.mdb");
  int grown[2];
  int go[2];
  ASSERT_EQ(::pipe(grown), 0);
  ASSERT_EQ(::pipe(go), 0);
  pid_t writer = sessionkit::testing::fork_child([&] {
    ::close(grown[0]);
    ::close(go[1]);
    LmdbStore store(o);
    for (int i = 0; i < 1000; ++i) store.save("w-" + std::to_string(i), std::string(2000, 'w'), kT0 + 1h);
    const std::uint64_t size = store.map_size();
    if (::write(grown[1], &size, sizeof size) != static_cast<ssize_t>(sizeof size)) return 5;
    char c = 0;
    if (::read(go[0], &c, 1) != 1) return 6;
    // New pages beyond what the first 1000 records used, inside this
    // process's map: SIGBUS here if the file was cut.
    for (int i = 1000; i < 1400; ++i) store.save("w-" + std::to_string(i), std::string(2000, 'w'), kT0 + 1h);
    return store.load("w-1399") == std::string(2000, 'w') ? 0 : 7;
  });
  ::close(grown[1]);
  ::close(go[0]);
  std::uint64_t writer_map = 0;
  ASSERT_EQ(::read(grown[0], &writer_map, sizeof writer_map), static_cast<ssize_t>(sizeof writer_map));
  ASSERT_GE(writer_map, 2u << 20);

  LmdbStoreOptions small = o;
  small.map_size_bytes = 128 << 10;
  {
    LmdbStore store(small);  // opens while the writer holds its bigger map
    EXPECT_GE(store.map_size(), writer_map);
    EXPECT_GE(static_cast<std::uint64_t>(stat_of(dir / "s.mdb").st_size), writer_map);
    EXPECT_EQ(store.load("w-999"), std::string(2000, 'w'));
    ASSERT_EQ(::write(go[1], "g", 1), 1);
    EXPECT_EQ(sessionkit::testing::wait_child(writer), 0);  // 128 + SIGBUS (135) if the file was cut
    EXPECT_EQ(store.info().records, 1400);
    EXPECT_EQ(store.check_consistency(), "");
  }
  ::close(grown[0]);
  ::close(go[1]);
}

TEST(LmdbWriteMap, ProcessesGrowingTheMapAtOnceLoseNothing) {
  TempDir dir;
  const LmdbStoreOptions o = write_map_options(dir / "s.mdb");
  constexpr int kProcs = 4;
  constexpr int kEach = 300;
  std::vector<pid_t> pids;
  for (int p = 0; p < kProcs; ++p) {
    pids.push_back(sessionkit::testing::fork_child([&, p] {
      LmdbStore store(o);
      for (int i = 0; i < kEach; ++i) {
        const std::string id = "p" + std::to_string(p) + "-" + std::to_string(i);
        store.save(id, std::string(3000 + i, static_cast<char>('a' + p)), kT0 + 1h);
      }
      for (int i = 0; i < kEach; ++i) {
        const std::string id = "p" + std::to_string(p) + "-" + std::to_string(i);
        if (store.load(id) != std::string(3000 + i, static_cast<char>('a' + p))) return 3;
      }
      return 0;
    }));
  }
  for (pid_t pid : pids) EXPECT_EQ(sessionkit::testing::wait_child(pid), 0);
  LmdbStore store(o);
  EXPECT_EQ(store.info().records, kProcs * kEach);
  EXPECT_EQ(store.load("p3-299"), std::string(3299, 'd'));
  EXPECT_EQ(static_cast<std::uint64_t>(stat_of(dir / "s.mdb").st_size), store.map_size());
  EXPECT_EQ(store.check_consistency(), "");
}

TEST(LmdbWriteMap, SessionsCountExactlyAcrossProcesses) {
  TempDir dir;
  const std::string shm = sessionkit::testing::unique_name("lmdbwm");
  const nlohmann::json doc = {{"store",
                               {{"type", "lmdb"},
                                {"path", (dir / "sessions.mdb").string()},
                                {"durability", "nosync"},
                                {"write_map", true},
                                {"map_size_mb", 1}}},
                              {"locks", {{"type", "shm"}, {"name", shm}, {"wait_ms", 30000}}}};
  SessionManager m(Config::from_json(doc));
  sessionkit::testing::expect_processes_count_exactly(m, 1, 4, 300, /*growing_pad=*/true);
  shm_unlink(("/sessionkit-" + shm).c_str());
}

// A real full disk: a small tmpfs mounted for the test (skipped where
// mount(2) is refused, as for the file store's ENOSPC test).
class LmdbWriteMapFullDisk : public ::testing::Test {
 protected:
  void SetUp() override {
    mnt_ = tmp_ / "mnt";
    std::filesystem::create_directory(mnt_);
    if (::mount("tmpfs", mnt_.c_str(), "tmpfs", MS_NOSUID | MS_NODEV, "size=1m,mode=0700") != 0) {
      GTEST_SKIP() << "cannot mount a tmpfs here: " << std::strerror(errno);
    }
    mounted_ = true;
  }
  void TearDown() override {
    if (mounted_) ::umount2(mnt_.c_str(), MNT_DETACH);
  }

  TempDir tmp_;
  std::filesystem::path mnt_;
  bool mounted_ = false;
};

TEST_F(LmdbWriteMapFullDisk, AMapLargerThanTheDiskIsRefusedAtOpen) {
  LmdbStoreOptions o = write_map_options(mnt_ / "s.mdb");
  o.map_size_bytes = 4 << 20;
  const Error e = error_of([&] { LmdbStore store(o); });
  EXPECT_EQ(e.code_value(), errc::resource_exhausted) << e.what();
  EXPECT_NE(std::string(e.what()).find("store.write_map"), std::string::npos) << e.what();
}

TEST_F(LmdbWriteMapFullDisk, GrowingPastTheDiskFailsTheSaveAndKeepsTheStoreWorking) {
  LmdbStoreOptions o = write_map_options(mnt_ / "s.mdb");
  o.map_size_bytes = 256 << 10;
  LmdbStore store(o);
  store.save("first", "the first record", kT0 + 1h);
  const std::string rec(2000, 'r');
  int saved = 0;
  Error failure(errc::io, "none");
  try {
    for (; saved < 10000; ++saved) store.save(id_of(saved), rec, kT0 + 1h);
  } catch (const Error& e) {
    failure = e;
  }
  ASSERT_LT(saved, 10000) << "a 1 MiB disk took 20 MB";
  EXPECT_EQ(failure.code_value(), errc::resource_exhausted) << failure.what();
  EXPECT_GT(saved, 100);  // the map grew at least once before the disk ran out
  EXPECT_EQ(store.load(id_of(saved)), std::nullopt);
  EXPECT_EQ(store.load("first"), "the first record");
  EXPECT_EQ(store.load(id_of(0)), rec);
  // Deletions and saves that fit the map still work.
  EXPECT_TRUE(store.remove(id_of(0)));
  EXPECT_TRUE(store.remove(id_of(1)));
  store.save("first", "rewritten", kT0 + 1h);
  EXPECT_EQ(store.load("first"), "rewritten");
  EXPECT_EQ(store.check_consistency(), "");
}

// A new store on a disk with room for LMDB's meta pages but not for the map:
// the database-creating transaction would be the first write through the map.
// Run in a child so that a SIGBUS shows as its exit status.
TEST_F(LmdbWriteMapFullDisk, ANewStoreOnANearlyFullDiskIsRefusedNotKilled) {
  {
    // Leave about 12 KiB free on the 1 MiB tmpfs.
    const std::filesystem::path filler = mnt_ / "filler";
    int fd = ::open(filler.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
    ASSERT_GE(fd, 0);
    const std::string block(4096, 'x');
    while (::write(fd, block.data(), block.size()) == static_cast<ssize_t>(block.size())) {
    }
    ::close(fd);
    std::filesystem::resize_file(filler, std::filesystem::file_size(filler) - 3 * 4096);
  }
  const LmdbStoreOptions o = write_map_options(mnt_ / "s.mdb");
  pid_t pid = sessionkit::testing::fork_child([&] {
    try {
      LmdbStore store(o);
      return 4;  // 128 KiB cannot fit in 12
    } catch (const Error& e) {
      return e.code_value() == errc::resource_exhausted ? 0 : 5;
    }
  });
  EXPECT_EQ(sessionkit::testing::wait_child(pid), 0);  // 135 would be SIGBUS
  // The failed open gave back the size it set: nothing sparse is left behind.
  EXPECT_EQ(std::filesystem::file_size(mnt_ / "s.mdb"), 0u);
}

// An open that fails for lack of space must not leave the file longer than
// its reserved blocks: a writer that later grows its map to the file's size
// would write into unreserved space (SIGBUS).
TEST_F(LmdbWriteMapFullDisk, AFailedOpenLeavesNothingUnreservedForAWriter) {
  LmdbStoreOptions o = write_map_options(mnt_ / "s.mdb");
  o.map_size_bytes = 256 << 10;
  int opened[2];
  int go[2];
  ASSERT_EQ(::pipe(opened), 0);
  ASSERT_EQ(::pipe(go), 0);
  pid_t writer = sessionkit::testing::fork_child([&] {
    ::close(opened[0]);
    ::close(go[1]);
    LmdbStore store(o);
    store.save("first", "the first record", kT0 + 1h);
    if (::write(opened[1], "o", 1) != 1) return 5;
    char c = 0;
    if (::read(go[0], &c, 1) != 1) return 6;
    try {
      for (int i = 0; i < 10000; ++i) store.save(id_of(i), std::string(2000, 'r'), kT0 + 1h);
      return 7;  // a 1 MiB disk took 20 MB
    } catch (const Error& e) {
      if (e.code_value() != errc::resource_exhausted) return 8;
    }
    return store.load("first") == "the first record" ? 0 : 9;
  });
  ::close(opened[1]);
  ::close(go[0]);
  char c = 0;
  ASSERT_EQ(::read(opened[0], &c, 1), 1);
  const auto size_before = std::filesystem::file_size(mnt_ / "s.mdb");
  pid_t opener = sessionkit::testing::fork_child([&] {
    LmdbStoreOptions big = o;
    big.map_size_bytes = 2 << 20;
    try {
      LmdbStore store(big);
      return 4;
    } catch (const Error& e) {
      return e.code_value() == errc::resource_exhausted ? 0 : 5;
    }
  });
  EXPECT_EQ(sessionkit::testing::wait_child(opener), 0);
  EXPECT_EQ(std::filesystem::file_size(mnt_ / "s.mdb"), size_before);
  ASSERT_EQ(::write(go[1], "g", 1), 1);
  EXPECT_EQ(sessionkit::testing::wait_child(writer), 0);  // 135 would be SIGBUS
  ::close(opened[0]);
  ::close(go[1]);
}

TEST(LmdbWriteMapConfig, ReadsTheKeyAndRejectsWrongTypes) {
  TempDir dir;
  StoreType t = Registry::global().store("lmdb");
  auto store = t.create(
      nlohmann::json{{"type", "lmdb"}, {"path", "w.mdb"}, {"durability", "nosync"}, {"write_map", true}},
      dir.path());
  EXPECT_TRUE(dynamic_cast<LmdbStore&>(*store).options().write_map);
  EXPECT_NE(dynamic_cast<LmdbStore&>(*store).lmdb_flags() & MDB_WRITEMAP, 0u);
  auto plain = t.create(nlohmann::json{{"type", "lmdb"}, {"path", "p.mdb"}}, dir.path());
  EXPECT_FALSE(dynamic_cast<LmdbStore&>(*plain).options().write_map);
  EXPECT_EQ(dynamic_cast<LmdbStore&>(*plain).lmdb_flags() & MDB_WRITEMAP, 0u);
  // Sync commits msync the whole map: refused, naming the key.
  for (const char* durability : {"durable", "nometasync"}) {
    const Error e = error_of([&] {
      t.validate(nlohmann::json{{"type", "lmdb"}, {"durability", durability}, {"write_map", true}},
                 dir.path());
    });
    EXPECT_EQ(e.code_value(), errc::bad_config);
    EXPECT_EQ(std::string(e.what()).rfind("store.write_map: needs \"durability\": \"nosync\"", 0), 0u)
        << e.what();
  }
  LmdbStoreOptions durable = write_map_options(dir / "d.mdb");
  durable.durability = LmdbDurability::durable;
  EXPECT_EQ(error_of([&] { LmdbStore s(durable); }).code_value(), errc::invalid_argument);
  for (const nlohmann::json& bad : {nlohmann::json("yes"), nlohmann::json(1)}) {
    const Error e = error_of([&] {
      t.validate(nlohmann::json{{"type", "lmdb"}, {"write_map", bad}}, dir.path());
    });
    EXPECT_EQ(e.code_value(), errc::bad_config);
    EXPECT_EQ(std::string(e.what()).rfind("store.write_map:", 0), 0u) << e.what();
  }
}

}  // namespace
}  // namespace sessionkit

// FileStore: round trips, layout and modes, id checks, planted symlinks and
// FIFOs, damaged files, configuration.
#include "backends/file/file_store.hpp"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <new>
#include <nlohmann/json.hpp>
#include <thread>

#include "sessionkit/error.hpp"
#include "sessionkit/registry.hpp"
#include "tests/support/test_support.hpp"
#include "tests/unit/file/file_test_support.hpp"

// The largest single allocation while tracking is on: shows that a header
// claiming 4 GiB allocates nothing near that.
namespace {
std::atomic<bool> g_track_allocations{false};
std::atomic<std::size_t> g_largest_allocation{0};
}  // namespace

// GCC sees the free() of a pointer from (this very) operator new and warns.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"
#endif
void* operator new(std::size_t n) {
  if (g_track_allocations.load(std::memory_order_relaxed)) {
    std::size_t prev = g_largest_allocation.load(std::memory_order_relaxed);
    while (n > prev && !g_largest_allocation.compare_exchange_weak(prev, n)) {
    }
  }
  void* p = std::malloc(n == 0 ? 1 : n);
  if (p == nullptr) throw std::bad_alloc();
  return p;
}
void operator delete(void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }

namespace sessionkit {
namespace {

namespace fs = std::filesystem;
using testing::Clock;
using testing::file_options;
using testing::new_id;
using testing::record_path;
using testing::TempDir;

const auto kLater = Clock::now() + std::chrono::hours(1);

errc error_of(const std::function<void()>& fn) {
  try {
    fn();
  } catch (const Error& e) {
    return e.code_value();
  }
  ADD_FAILURE() << "no sessionkit::Error thrown";
  return errc::aborted;
}

// ---- round trips and layout, at every shard depth ----

class FileStoreDepthTest : public ::testing::TestWithParam<int> {};

TEST_P(FileStoreDepthTest, SaveThenLoadReturnsTheRecordAndReplacesIt) {
  TempDir tmp;
  FileStore store(file_options(tmp / "s", GetParam()));
  const std::string id = new_id();
  EXPECT_EQ(store.load(id), std::nullopt);
  store.save(id, "first", kLater);
  EXPECT_EQ(store.load(id), "first");
  store.save(id, std::string(70000, 'x'), kLater);
  EXPECT_EQ(store.load(id), std::string(70000, 'x'));
  store.save(id, "", kLater);
  EXPECT_EQ(store.load(id), "");
  EXPECT_TRUE(fs::is_regular_file(record_path(tmp / "s", id, GetParam())));
  EXPECT_TRUE(testing::files_with_prefix(tmp / "s", ".tmp.").empty());
}

TEST_P(FileStoreDepthTest, RemoveReportsWhetherThereWasARecord) {
  TempDir tmp;
  FileStore store(file_options(tmp / "s", GetParam(), FileDurability::durable));
  const std::string id = new_id();
  EXPECT_FALSE(store.remove(id));  // not even its shard directory exists
  store.save(id, "r", kLater);
  EXPECT_TRUE(store.remove(id));
  EXPECT_EQ(store.load(id), std::nullopt);
  EXPECT_FALSE(store.remove(id));
}

TEST_P(FileStoreDepthTest, DirectoriesAre0700AndFiles0600WhateverTheUmask) {
  for (mode_t mask : {mode_t{0}, mode_t{022}, mode_t{077}, mode_t{0277}}) {
    TempDir tmp;
    const mode_t old = ::umask(mask);
    std::string id;
    {
      FileStore store(file_options(tmp / "s", GetParam()));
      id = new_id();
      store.save(id, "r", kLater);
    }
    ::umask(old);
    SCOPED_TRACE("umask " + std::to_string(mask));
    EXPECT_EQ(testing::mode_of(tmp / "s"), 0700u);
    fs::path p = record_path(tmp / "s", id, GetParam());
    EXPECT_EQ(testing::mode_of(p), 0600u);
    for (fs::path d = p.parent_path(); d != tmp / "s"; d = d.parent_path())
      EXPECT_EQ(testing::mode_of(d), 0700u);
    EXPECT_EQ(testing::mode_of(tmp / "s" / ".layout"), 0600u);
  }
}

INSTANTIATE_TEST_SUITE_P(Depths, FileStoreDepthTest, ::testing::Values(0, 1, 2));

TEST(FileStoreTest, ShardsUseTwoIdCharactersPerLevel) {
  TempDir tmp;
  const std::string id = new_id();
  {
    FileStore store(file_options(tmp / "d2", 2));
    store.save(id, "r", kLater);
  }
  EXPECT_TRUE(fs::is_regular_file(tmp / "d2" / id.substr(0, 2) / id.substr(2, 2) / id));
  {
    FileStore store(file_options(tmp / "d0", 0));
    store.save(id, "r", kLater);
  }
  EXPECT_TRUE(fs::is_regular_file(tmp / "d0" / id));
}

TEST(FileStoreTest, FileHoldsTheDocumentedHeaderAndMtimeIsTheExpiry) {
  TempDir tmp;
  FileStore store(file_options(tmp / "s", 1));
  const std::string id = new_id();
  const auto expiry = Clock::time_point(std::chrono::milliseconds(1'900'000'000'123));
  store.save(id, "payload", expiry);
  fs::path p = record_path(tmp / "s", id, 1);
  EXPECT_EQ(testing::read_file(p), testing::file_record_bytes("payload", 1'900'000'000'123));
  struct stat st {};
  ASSERT_EQ(::stat(p.c_str(), &st), 0);
  EXPECT_EQ(st.st_mtim.tv_sec, 1'900'000'000);
  EXPECT_EQ(st.st_mtim.tv_nsec, 123'000'000);
}

TEST(FileStoreTest, ReadsAHandWrittenRecordOfTheDocumentedFormat) {
  TempDir tmp;
  FileStore store(file_options(tmp / "s", 0));
  const std::string id = new_id();
  testing::write_file(tmp / "s" / id, testing::file_record_bytes("written by hand", 5));
  EXPECT_EQ(store.load(id), "written by hand");
}

// ---- ids ----

std::vector<std::string> bad_ids() {
  std::string valid = new_id();
  std::string with_nul = valid;
  with_nul[20] = '\0';
  std::string wrong_case_last = valid;
  // The last character carries 4 bits + 2 zero bits: 'A' is canonical, 'a' is not.
  wrong_case_last.back() = 'a';
  std::string plus = valid;
  plus[5] = '+';
  std::string slash = valid;
  slash[5] = '/';
  std::string dots = "../../../../../../../../../../../../../../xx";  // 43 characters
  dots.resize(43, 'A');
  return {"",
          "../",
          "..",
          "%2e%2e%2f",
          "..%2f..%2f..%2fetc%2fpasswd",
          with_nul,
          std::string(10 * 1024, 'A'),
          valid.substr(0, 42),
          valid + "A",
          wrong_case_last,
          plus,
          slash,
          dots,
          "/" + valid.substr(1),
          ".gc." + valid.substr(4),
          ".tmp." + valid.substr(5)};
}

TEST(FileStoreTest, BadIdsAreInvalidArgumentAndCreateNothing) {
  TempDir tmp;
  fs::create_directory(tmp / "outside");
  for (int depth : {0, 1, 2}) {
    fs::path dir = tmp / ("s" + std::to_string(depth));
    FileStore store(file_options(dir, depth));
    const auto before = testing::tree(tmp.path());
    for (const std::string& id : bad_ids()) {
      SCOPED_TRACE("depth " + std::to_string(depth) + ", id of " + std::to_string(id.size()) + " bytes");
      EXPECT_EQ(error_of([&] { store.load(id); }), errc::invalid_argument);
      EXPECT_EQ(error_of([&] { store.save(id, "r", kLater); }), errc::invalid_argument);
      EXPECT_EQ(error_of([&] { store.remove(id); }), errc::invalid_argument);
    }
    EXPECT_EQ(testing::tree(tmp.path()), before);
  }
}

TEST(FileStoreTest, IdsAreCaseSensitive) {
  TempDir tmp;
  FileStore store(file_options(tmp / "s", 1));
  std::string id = new_id();
  id[0] = 'q';
  id[10] = 'b';
  std::string other = id;
  other[0] = 'Q';
  other[10] = 'B';
  store.save(id, "lower", kLater);
  EXPECT_EQ(store.load(other), std::nullopt);
  store.save(other, "upper", kLater);
  EXPECT_EQ(store.load(id), "lower");
  EXPECT_EQ(store.load(other), "upper");
}

// ---- things planted in the store ----

TEST(FileStoreTest, SymlinkUnderAnIdIsNeverFollowed) {
  TempDir tmp;
  const fs::path target = tmp / "outside-secret";
  const std::string id = new_id();
  // Even a link to a perfectly good record outside is refused.
  testing::write_file(target, testing::file_record_bytes("outside", 9'999'999'999'999));
  FileStore store(file_options(tmp / "s", 1));
  fs::create_directories(tmp / "s" / id.substr(0, 2));
  fs::path link = record_path(tmp / "s", id, 1);
  fs::create_symlink(target, link);

  EXPECT_EQ(error_of([&] { store.load(id); }), errc::data_loss);
  // save() replaces the link itself (rename does not follow it); the target stays.
  store.save(id, "mine", kLater);
  EXPECT_FALSE(fs::is_symlink(link));
  EXPECT_EQ(store.load(id), "mine");
  EXPECT_EQ(testing::read_file(target), testing::file_record_bytes("outside", 9'999'999'999'999));
  // remove() unlinks a link, not what it points to.
  fs::remove(link);
  fs::create_symlink(target, link);
  EXPECT_TRUE(store.remove(id));
  EXPECT_FALSE(fs::exists(fs::symlink_status(link)));
  EXPECT_TRUE(fs::exists(target));
}

TEST(FileStoreTest, SymlinkedShardDirectoryIsNotEntered) {
  TempDir tmp;
  fs::create_directory(tmp / "outside");
  FileStore store(file_options(tmp / "s", 1));
  const std::string id = new_id();
  fs::create_directory_symlink(tmp / "outside", tmp / "s" / id.substr(0, 2));
  testing::write_file(tmp / "outside" / id, testing::file_record_bytes("outside", 9'999'999'999'999));
  const auto before = testing::tree(tmp / "outside");
  EXPECT_EQ(error_of([&] { store.load(id); }), errc::io);
  EXPECT_EQ(error_of([&] { store.save(id, "r", kLater); }), errc::io);
  EXPECT_EQ(error_of([&] { store.remove(id); }), errc::io);
  EXPECT_EQ(testing::tree(tmp / "outside"), before);
}

TEST(FileStoreTest, FifoUnderAnIdIsRefusedWithoutBlocking) {
  TempDir tmp;
  FileStore store(file_options(tmp / "s", 0));
  const std::string id = new_id();
  ASSERT_EQ(::mkfifo((tmp / "s" / id).c_str(), 0600), 0);
  const auto start = std::chrono::steady_clock::now();
  EXPECT_EQ(error_of([&] { store.load(id); }), errc::data_loss);
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(1));
  // A save replaces it with a record.
  store.save(id, "r", kLater);
  EXPECT_EQ(store.load(id), "r");
}

TEST(FileStoreTest, DirectoryUnderAnIdIsDataLoss) {
  TempDir tmp;
  FileStore store(file_options(tmp / "s", 0));
  const std::string id = new_id();
  fs::create_directory(tmp / "s" / id);
  EXPECT_EQ(error_of([&] { store.load(id); }), errc::data_loss);
}

// ---- damaged files ----

TEST(FileStoreTest, TruncatedRecordsAreDataLoss) {
  TempDir tmp;
  FileStore store(file_options(tmp / "s", 1));
  const std::string id = new_id();
  store.save(id, std::string(100, 'r'), kLater);
  const fs::path p = record_path(tmp / "s", id, 1);
  const std::string whole = testing::read_file(p);
  for (std::size_t size : {std::size_t{0}, std::size_t{3}, std::size_t{19}, std::size_t{20}, std::size_t{21},
                           whole.size() - 1}) {
    SCOPED_TRACE(size);
    testing::write_file(p, whole.substr(0, size));
    EXPECT_EQ(error_of([&] { store.load(id); }), errc::data_loss);
  }
  testing::write_file(p, whole + "trailing");
  EXPECT_EQ(error_of([&] { store.load(id); }), errc::data_loss);
  testing::write_file(p, whole);
  EXPECT_EQ(store.load(id), std::string(100, 'r'));
}

TEST(FileStoreTest, BadMagicOrChecksumIsDataLoss) {
  TempDir tmp;
  FileStore store(file_options(tmp / "s", 0));
  const std::string id = new_id();
  const fs::path p = tmp / "s" / id;
  const std::string good = testing::file_record_bytes("some payload", 5);
  for (std::size_t offset : {std::size_t{0}, std::size_t{5}, std::size_t{17}, std::size_t{25}}) {
    SCOPED_TRACE(offset);
    std::string bad = good;
    bad[offset] = static_cast<char>(bad[offset] ^ 0x20);
    testing::write_file(p, bad);
    EXPECT_EQ(error_of([&] { store.load(id); }), errc::data_loss);
  }
}

TEST(FileStoreTest, HeaderClaiming4GiBIsDataLossWithoutAHugeAllocation) {
  TempDir tmp;
  FileStore store(file_options(tmp / "s", 0));
  const std::string id = new_id();
  const fs::path p = tmp / "s" / id;
  std::string bytes = testing::file_record_bytes("tiny", 5);
  for (int i = 12; i < 16; ++i) bytes[static_cast<std::size_t>(i)] = '\xff';  // length 4 GiB - 1
  testing::write_file(p, bytes);

  g_largest_allocation = 0;
  g_track_allocations = true;
  EXPECT_EQ(error_of([&] { store.load(id); }), errc::data_loss);
  // And a (sparse) file that really is 4 GiB: refused on its size alone.
  {
    int fd = ::open(p.c_str(), O_WRONLY);
    ASSERT_GE(fd, 0);
    ASSERT_EQ(::ftruncate(fd, (off_t{1} << 32) + 20), 0);
    ::close(fd);
  }
  EXPECT_EQ(error_of([&] { store.load(id); }), errc::data_loss);
  g_track_allocations = false;
  EXPECT_LT(g_largest_allocation.load(), std::size_t{64} << 10);
}

TEST(FileStoreTest, RecordsOverTheLimitAreRefusedOnSaveAndOnLoad) {
  TempDir tmp;
  FileStoreOptions o = file_options(tmp / "s", 0);
  o.max_record_bytes = 1000;
  FileStore store(o);
  const std::string id = new_id();
  store.save(id, std::string(1000, 'a'), kLater);
  EXPECT_EQ(error_of([&] { store.save(id, std::string(1001, 'b'), kLater); }), errc::resource_exhausted);
  EXPECT_EQ(store.load(id), std::string(1000, 'a'));
  testing::write_file(tmp / "s" / id, testing::file_record_bytes(std::string(1001, 'c'), 5));
  EXPECT_EQ(error_of([&] { store.load(id); }), errc::data_loss);
}

// ---- tombstones (sweep() holds a record as .gc.<id> for a moment) ----

TEST(FileStoreTest, LoadFindsARecordHeldAsATombstoneAndRemoveDeletesIt) {
  TempDir tmp;
  FileStore store(file_options(tmp / "s", 1));
  const std::string id = new_id();
  store.save(id, "held", kLater);
  const fs::path p = record_path(tmp / "s", id, 1);
  const fs::path tomb = p.parent_path() / (".gc." + id);
  fs::rename(p, tomb);
  EXPECT_EQ(store.load(id), "held");
  EXPECT_TRUE(store.remove(id));
  EXPECT_FALSE(fs::exists(tomb));
  EXPECT_EQ(store.load(id), std::nullopt);
}

// ---- for_each, info ----

TEST(FileStoreTest, ForEachVisitsEveryRecordAndSkipsEverythingElse) {
  for (int depth : {0, 1, 2}) {
    SCOPED_TRACE(depth);
    TempDir tmp;
    FileStore store(file_options(tmp / "s", depth));
    std::map<std::string, std::string> saved;
    for (int i = 0; i < 50; ++i) {
      std::string id = new_id();
      saved[id] = "record " + std::to_string(i);
      store.save(id, saved[id], kLater);
    }
    // Debris for_each must skip: a temp file, a tombstone, a corrupt record,
    // a symlink, the sweeper's state file.
    const std::string any = saved.begin()->first;
    const fs::path shard = record_path(tmp / "s", any, depth).parent_path();
    testing::write_file(shard / (".tmp." + any + ".1.2"), "half");
    testing::write_file(shard / (".gc." + new_id()), testing::file_record_bytes("tomb", 5));
    const std::string corrupt = new_id();
    fs::create_directories(record_path(tmp / "s", corrupt, depth).parent_path());
    testing::write_file(record_path(tmp / "s", corrupt, depth), "garbage");
    const std::string link = new_id();
    fs::create_directories(record_path(tmp / "s", link, depth).parent_path());
    fs::create_symlink(record_path(tmp / "s", any, depth), record_path(tmp / "s", link, depth));

    std::map<std::string, std::string> seen;
    store.for_each([&](std::string_view id, std::string_view record) {
      seen[std::string(id)] = std::string(record);
      return true;
    });
    EXPECT_EQ(seen, saved);
    int calls = 0;
    store.for_each([&](std::string_view, std::string_view) { return ++calls < 7; });
    EXPECT_EQ(calls, 7);
  }
}

TEST(FileStoreTest, InfoNamesTheDirectory) {
  TempDir tmp;
  FileStore store(file_options(tmp / "s", 1));
  StoreInfo info = store.info();
  EXPECT_EQ(info.type, "file");
  EXPECT_EQ(info.location, (tmp / "s").string());
  EXPECT_EQ(info.records, -1);
  EXPECT_EQ(info.bytes, -1);
  EXPECT_TRUE(store.shared_across_processes());
}

// ---- opening the directory ----

TEST(FileStoreTest, ReopeningWithAnotherShardDepthIsBadConfig) {
  TempDir tmp;
  { FileStore store(file_options(tmp / "s", 1)); }
  { FileStore again(file_options(tmp / "s", 1)); }
  try {
    FileStore store(file_options(tmp / "s", 2));
    FAIL() << "opened with another depth";
  } catch (const Error& e) {
    EXPECT_EQ(e.code_value(), errc::bad_config);
    EXPECT_NE(std::string(e.what()).find("store.shard_depth"), std::string::npos) << e.what();
  }
}

TEST(FileStoreTest, WorldWritableDirectoryIsRefused) {
  TempDir tmp;
  fs::create_directory(tmp / "s");
  fs::permissions(tmp / "s", fs::perms::all);
  EXPECT_EQ(error_of([&] { FileStore store(file_options(tmp / "s", 1)); }), errc::bad_config);
}

TEST(FileStoreTest, ExistingDirectoryKeepsItsMode) {
  TempDir tmp;
  fs::create_directory(tmp / "s");
  fs::permissions(tmp / "s", fs::perms::owner_all | fs::perms::group_read | fs::perms::group_exec);
  FileStore store(file_options(tmp / "s", 1));
  EXPECT_EQ(testing::mode_of(tmp / "s"), 0750u);
}

TEST(FileStoreTest, MissingParentIsIo) {
  TempDir tmp;
  EXPECT_EQ(error_of([&] { FileStore store(file_options(tmp / "no" / "such" / "s", 1)); }), errc::io);
}

TEST(FileStoreConfigTest, DefaultsComeFromTheRegistry) {
  TempDir tmp;
  StoreType type = Registry::global().store("file");
  EXPECT_TRUE(type.shared_across_processes);
  nlohmann::json section = {{"type", "file"}};
  type.validate(section, tmp.path());
  EXPECT_FALSE(fs::exists(tmp / "sessions"));  // validate has no side effects
  std::unique_ptr<Store> store = type.create(section, tmp.path());
  auto* file = dynamic_cast<FileStore*>(store.get());
  ASSERT_NE(file, nullptr);
  EXPECT_EQ(file->options().path, tmp / "sessions");
  EXPECT_EQ(file->options().shard_depth, 1);
  EXPECT_EQ(file->options().durability, FileDurability::durable);
  EXPECT_EQ(file->options().max_record_bytes, std::size_t{1} << 20);
  EXPECT_EQ(file->options().temp_max_age, std::chrono::seconds(3600));
  EXPECT_EQ(store->info().location, (tmp / "sessions").string());
}

TEST(FileStoreConfigTest, EveryKeyIsRead) {
  TempDir tmp;
  nlohmann::json section = {
      {"type", "file"}, {"path", (tmp / "abs").string()}, {"shard_depth", 2}, {"durability", "nosync"}};
  std::unique_ptr<Store> store = Registry::global().store("file").create(section, "/nonexistent");
  auto* file = dynamic_cast<FileStore*>(store.get());
  ASSERT_NE(file, nullptr);
  EXPECT_EQ(file->options().path, tmp / "abs");
  EXPECT_EQ(file->options().shard_depth, 2);
  EXPECT_EQ(file->options().durability, FileDurability::nosync);
}

TEST(FileStoreConfigTest, BadValuesAndUnknownKeysAreBadConfigNamingTheKey) {
  TempDir tmp;
  StoreType type = Registry::global().store("file");
  const std::vector<std::pair<nlohmann::json, std::string>> cases = {
      {{{"type", "file"}, {"colour", "red"}}, "store.colour"},
      {{{"type", "file"}, {"max_record_bytes", 10}}, "store.max_record_bytes"},
      {{{"type", "file"}, {"shard_depth", 3}}, "store.shard_depth"},
      {{{"type", "file"}, {"shard_depth", -1}}, "store.shard_depth"},
      {{{"type", "file"}, {"shard_depth", "1"}}, "store.shard_depth"},
      {{{"type", "file"}, {"durability", "fast"}}, "store.durability"},
      {{{"type", "file"}, {"path", ""}}, "store.path"},
      {{{"type", "file"}, {"path", 7}}, "store.path"},
  };
  for (const auto& [section, key] : cases) {
    SCOPED_TRACE(section.dump());
    try {
      type.validate(section, tmp.path());
      ADD_FAILURE() << "accepted";
    } catch (const Error& e) {
      EXPECT_EQ(e.code_value(), errc::bad_config);
      EXPECT_EQ(std::string(e.what()).rfind(key, 0), 0u) << e.what();
    }
  }
  EXPECT_TRUE(testing::tree(tmp.path()).empty());
}

// ---- concurrency within one process ----

TEST(FileStoreTest, ThreadsOnDifferentIdsDoNotInterfere) {
  TempDir tmp;
  FileStore store(file_options(tmp / "s", 1));
  std::vector<std::thread> threads;
  std::atomic<int> bad{0};
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      const std::string id = new_id();
      for (std::uint64_t i = 0; i < 200; ++i) {
        store.save(id, testing::make_record(i, 10 + i * 13 % 3000), kLater);
        auto r = store.load(id);
        if (!r || testing::check_record(*r) != i) ++bad;
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(bad.load(), 0);
  EXPECT_TRUE(testing::files_with_prefix(tmp / "s", ".tmp.").empty());
}

}  // namespace
}  // namespace sessionkit

// 8 processes x M increments of one session counter through SessionManager,
// on the file store with the shm and the fcntl lock managers, end at exactly
// 8 x M. Forked children (shm) and unrelated exec'd processes (fcntl) both.
#include <gtest/gtest.h>

#include <chrono>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "locks/shm_lock_manager.hpp"
#include "sessionkit/config.hpp"
#include "sessionkit/session.hpp"
#include "sessionkit/session_manager.hpp"
#include "tests/support/test_support.hpp"

namespace sessionkit {
namespace {

using testing::TempDir;

constexpr int kProcesses = 8;

// Opens the session `cookie` names `count` times and increments "n" by one.
// Exits 2 if a request got a new session instead of the shared one.
int increment(const std::string& config_json, const std::string& cookie, int count) {
  SessionManager manager(Config::from_json(nlohmann::json::parse(config_json)));
  for (int i = 0; i < count; ++i) {
    Session s = manager.open(cookie);
    if (s.is_new()) return 2;
    nlohmann::json& d = s.data();
    d["n"] = d.value("n", 0) + 1;
    s.save();
  }
  return 0;
}

SESSIONKIT_TEST_HELPER(file_store_increment) {
  if (args.size() != 3) return 64;
  return increment(args[0], args[1], std::stoi(args[2]));
}

struct StressCase {
  const char* name;
  const char* locks;  // "shm" or "fcntl"
  const char* durability;
  bool exec;  // unrelated processes (spawn_helper) rather than forked children
  int increments;
};

class FileStoreStressTest : public ::testing::TestWithParam<StressCase> {};

TEST_P(FileStoreStressTest, EightProcessesIncrementOneCounterExactly) {
  const StressCase& c = GetParam();
  TempDir tmp;
  const std::string shm_name = testing::unique_name("file-stress");
  // Every increment must get the lock: a waiter may sit behind the other seven
  // processes' whole runs (no lock is fair), two fsyncs per save on a busy
  // disk, so the wait is far above the default 5 s.
  nlohmann::json locks = {{"type", c.locks}, {"wait_ms", 120'000}};
  if (std::string(c.locks) == "shm") locks["name"] = shm_name;
  if (std::string(c.locks) == "fcntl") locks["path"] = (tmp / "locks").string();
  const nlohmann::json doc = {
      {"store", {{"type", "file"}, {"path", (tmp / "sessions").string()}, {"durability", c.durability}}},
      {"locks", locks},
      // Sweeps run inside requests too, under slot 0, against live records.
      {"gc", {{"every_n_requests", 50}}}};
  const std::string config_json = doc.dump();

  std::string cookie;
  {
    SessionManager manager(Config::from_json(doc));
    Session s = manager.open("");
    s.data()["n"] = 0;
    s.save();
    std::optional<std::string> set_cookie = manager.set_cookie(s);
    ASSERT_TRUE(set_cookie.has_value());
    cookie = set_cookie->substr(0, set_cookie->find(';'));  // "sid=<value>"
  }

  const auto start = std::chrono::steady_clock::now();
  std::vector<pid_t> children;
  for (int p = 0; p < kProcesses; ++p) {
    if (c.exec) {
      children.push_back(
          testing::spawn_helper("file_store_increment", {config_json, cookie, std::to_string(c.increments)}));
    } else {
      children.push_back(testing::fork_child([&] { return increment(config_json, cookie, c.increments); }));
    }
  }
  for (pid_t pid : children) EXPECT_EQ(testing::wait_child(pid), 0);
  const auto elapsed = std::chrono::steady_clock::now() - start;

  {
    SessionManager manager(Config::from_json(doc));
    Session s = manager.open(cookie);
    EXPECT_FALSE(s.is_new());
    EXPECT_EQ(s.data().value("n", -1), kProcesses * c.increments);
  }
  std::printf("[          ] %d x %d increments in %lld ms\n", kProcesses, c.increments,
              static_cast<long long>(std::chrono::duration_cast<std::chrono::milliseconds>(elapsed).count()));
  if (std::string(c.locks) == "shm") ShmLockManager::remove(shm_name);
}

INSTANTIATE_TEST_SUITE_P(Locks, FileStoreStressTest,
                         // Durable saves cost two fsyncs (~10 ms here), so fewer of them.
                         ::testing::Values(StressCase{"shm_forked_durable", "shm", "durable", false, 25},
                                           StressCase{"fcntl_exec_nosync", "fcntl", "nosync", true, 150},
                                           StressCase{"shm_exec_nosync", "shm", "nosync", true, 150},
                                           StressCase{"fcntl_forked_durable", "fcntl", "durable", false, 25}),
                         [](const auto& param_info) { return std::string(param_info.param.name); });

}  // namespace
}  // namespace sessionkit

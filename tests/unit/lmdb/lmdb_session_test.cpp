// The LMDB store under SessionManager: N processes x M increments of one
// session counter end at exactly N x M, with the shm and the fcntl lock
// managers, for unrelated (exec'd) processes and for forked children; and
// the manager's sweep removing idle sessions through the expiry index.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/mman.h>

#include <filesystem>
#include <fstream>
#include <ostream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "backends/lmdb/lmdb_store.hpp"
#include "sessionkit/clock.hpp"
#include "sessionkit/config.hpp"
#include "sessionkit/error.hpp"
#include "sessionkit/session.hpp"
#include "sessionkit/session_manager.hpp"
#include "tests/support/test_support.hpp"

namespace sessionkit {
namespace {

using sessionkit::testing::TempDir;

constexpr int kProcesses = 8;
constexpr int kIncrements = 150;
// Every increment must get the lock, and no lock is fair: a waiter may sit
// behind the other processes' whole runs (fsyncs included on a busy disk), far
// beyond the default locks.wait_ms of 5 s.
constexpr int kLockWaitMs = 120'000;

// "sid=<value>; Path=/; ..." -> "sid=<value>", what a browser sends back.
std::string cookie_header(const SessionManager& m, const Session& s) {
  std::optional<std::string> set = m.set_cookie(s);
  if (!set) throw std::runtime_error("no Set-Cookie for a new session");
  return set->substr(0, set->find(';'));
}

// Increments "n" `count` times; returns non-zero when the session was not
// found (a new one would silently restart the count).
int increment(SessionManager& m, const std::string& cookie, int count) {
  for (int i = 0; i < count; ++i) {
    Session s = m.open(cookie);
    if (s.is_new()) return 2;
    nlohmann::json& d = s.data();
    d["n"] = d.value("n", 0) + 1;
    s.save();
  }
  return 0;
}

SESSIONKIT_TEST_HELPER(lmdb_session_increment) {
  // args: config JSON, cookie header, count.
  SessionManager m(Config::from_json(nlohmann::json::parse(args.at(0))));
  return increment(m, args.at(1), std::stoi(args.at(2)));
}

struct StressCase {
  const char* locks;  // "shm" or "fcntl"
  bool fork;          // forked children (after_fork) or exec'd unrelated processes
};

void PrintTo(const StressCase& c, std::ostream* os) {
  *os << c.locks << (c.fork ? " locks, forked" : " locks, exec'd");
}

class LmdbSessionStress : public ::testing::TestWithParam<StressCase> {
 protected:
  void TearDown() override {
    if (!shm_name_.empty()) shm_unlink(("/sessionkit-" + shm_name_).c_str());
  }

  nlohmann::json config_doc(const std::string& durability) {
    nlohmann::json locks;
    if (std::string(GetParam().locks) == "shm") {
      shm_name_ = sessionkit::testing::unique_name("lmdbtest");
      locks = {{"type", "shm"}, {"name", shm_name_}};
    } else {
      locks = {{"type", "fcntl"}, {"path", (dir_ / "sessions.locks").string()}};
    }
    locks["wait_ms"] = kLockWaitMs;
    return {
        {"store", {{"type", "lmdb"}, {"path", (dir_ / "sessions.mdb").string()}, {"durability", durability}}},
        {"locks", locks}};
  }

  TempDir dir_;
  std::string shm_name_;
};

TEST_P(LmdbSessionStress, ProcessesIncrementOneCounterExactly) {
  const nlohmann::json doc = config_doc("nosync");
  SessionManager m(Config::from_json(doc));
  std::string cookie;
  {
    Session s = m.open("");
    ASSERT_TRUE(s.is_new());
    s.data()["n"] = 0;
    s.save();
    cookie = cookie_header(m, s);
  }
  ASSERT_EQ(cookie.rfind("sid=", 0), 0u) << cookie;

  std::vector<pid_t> pids;
  for (int p = 0; p < kProcesses; ++p) {
    if (GetParam().fork) {
      pids.push_back(sessionkit::testing::fork_child([&] {
        m.after_fork();
        return increment(m, cookie, kIncrements);
      }));
    } else {
      pids.push_back(sessionkit::testing::spawn_helper("lmdb_session_increment",
                                                       {doc.dump(), cookie, std::to_string(kIncrements)}));
    }
  }
  for (pid_t pid : pids) EXPECT_EQ(sessionkit::testing::wait_child(pid), 0);

  Session s = m.open(cookie);
  EXPECT_FALSE(s.is_new());
  EXPECT_EQ(s.data().value("n", -1), kProcesses * kIncrements);
}

INSTANTIATE_TEST_SUITE_P(Locks, LmdbSessionStress,
                         ::testing::Values(StressCase{"shm", false}, StressCase{"shm", true},
                                           StressCase{"fcntl", false}, StressCase{"fcntl", true}),
                         [](const ::testing::TestParamInfo<StressCase>& p) {
                           return std::string(p.param.locks) + (p.param.fork ? "Forked" : "Exec");
                         });

// A process killed while it holds a session's lock: the next open of that
// session gets the lock back at once, says it recovered it from a dead owner,
// counts it, and reads the last saved record.
TEST(LmdbSession, OpenAfterTheHolderWasKilledReportsTheDeadOwner) {
  TempDir dir;
  const std::string shm = sessionkit::testing::unique_name("lmdbdead");
  const nlohmann::json doc = {
      {"store", {{"type", "lmdb"}, {"path", (dir / "sessions.mdb").string()}, {"durability", "nosync"}}},
      {"locks", {{"type", "shm"}, {"name", shm}, {"wait_ms", kLockWaitMs}}}};
  SessionManager m(Config::from_json(doc));
  std::string cookie;
  {
    Session s = m.open("");
    s.data()["n"] = 7;
    s.save();
    cookie = cookie_header(m, s);
  }
  pid_t pid = sessionkit::testing::fork_child([&] {
    m.after_fork();
    Session s = m.open(cookie);
    if (s.is_new()) return 3;
    s.data()["n"] = 8;  // changed, never saved: the holder dies first
    ::raise(SIGKILL);
    return 4;
  });
  EXPECT_EQ(sessionkit::testing::wait_child(pid), 128 + SIGKILL);
  EXPECT_EQ(m.stats().owner_deaths, 0u);
  Session s = m.open(cookie);
  EXPECT_FALSE(s.is_new());
  EXPECT_TRUE(s.recovered_from_dead_owner());
  EXPECT_EQ(s.data().value("n", -1), 7);
  s.unlock();
  EXPECT_EQ(m.stats().owner_deaths, 1u);
  Session again = m.open(cookie);
  EXPECT_FALSE(again.recovered_from_dead_owner());
  again.unlock();
  EXPECT_EQ(m.stats().owner_deaths, 1u);
  shm_unlink(("/sessionkit-" + shm).c_str());
}

TEST(LmdbSession, DefaultConfigIsADurableLmdbStoreWithShmLocks) {
  // A config file without "store" and without locks.type: the default LMDB
  // store (durable, fsync per commit), sessions.mdb beside the file, and shm
  // locks; 4 processes count exactly with it. Only the region's name is set,
  // so that the test does not share the default region with anything else.
  TempDir dir;
  const std::string shm_name = sessionkit::testing::unique_name("lmdbtest");
  const std::filesystem::path file = dir / "sessions.json";
  std::ofstream(file) << nlohmann::json({{"locks", {{"name", shm_name}, {"wait_ms", kLockWaitMs}}}}).dump();
  const Config config = Config::from_file(file);
  EXPECT_EQ(config.store.type, "lmdb");
  EXPECT_EQ(config.locks.type, "shm");
  SessionManager m(config);
  EXPECT_TRUE(std::filesystem::is_regular_file(dir / "sessions.mdb"));
  EXPECT_TRUE(std::filesystem::exists("/dev/shm/sessionkit-" + shm_name));
  std::string cookie;
  {
    Session s = m.open("");
    s.data()["n"] = 0;
    s.save();
    cookie = cookie_header(m, s);
  }
  std::vector<pid_t> pids;
  for (int p = 0; p < 4; ++p) {
    pids.push_back(sessionkit::testing::fork_child([&] {
      m.after_fork();
      return increment(m, cookie, 25);
    }));
  }
  for (pid_t pid : pids) EXPECT_EQ(sessionkit::testing::wait_child(pid), 0);
  Session s = m.open(cookie);
  EXPECT_EQ(s.data().value("n", -1), 100);
  shm_unlink(("/sessionkit-" + shm_name).c_str());
}

class ManualClock final : public Clock {
 public:
  explicit ManualClock(std::chrono::system_clock::time_point t) : now_(t) {}
  std::chrono::system_clock::time_point now() const override { return now_; }
  void advance(std::chrono::seconds d) { now_ += d; }

 private:
  std::chrono::system_clock::time_point now_;
};

TEST(LmdbSession, SweepThroughTheManagerRemovesOnlyIdleSessions) {
  TempDir dir;
  auto clock = std::make_shared<ManualClock>(std::chrono::system_clock::now());
  const nlohmann::json doc = {{"store", {{"type", "lmdb"}, {"path", (dir / "s.mdb").string()}}},
                              {"locks", {{"type", "thread"}}},
                              {"timeouts", {{"idle_s", 60}}},
                              {"gc", {{"every_n_requests", 0}}}};
  SessionManager m(Config::from_json(doc), clock);
  std::vector<std::string> cookies;
  for (int i = 0; i < 10; ++i) {
    Session s = m.open("");
    s.data()["i"] = i;
    s.save();
    cookies.push_back(cookie_header(m, s));
  }
  clock->advance(std::chrono::seconds(40));
  for (int i = 0; i < 3; ++i) {  // three sessions stay in use
    Session s = m.open(cookies[static_cast<std::size_t>(i)]);
    ASSERT_FALSE(s.is_new());
    s.data()["seen"] = true;
    s.save();
  }
  clock->advance(std::chrono::seconds(30));  // the other seven are 70 s idle
  SweepResult r = m.sweep(std::chrono::milliseconds(100));
  EXPECT_TRUE(r.complete);
  EXPECT_EQ(r.removed, 7u);
  auto& store = dynamic_cast<LmdbStore&>(m.store());
  EXPECT_EQ(store.info().records, 3);
  EXPECT_EQ(store.check_consistency(), "");
  for (int i = 0; i < 10; ++i) {
    Session s = m.open(cookies[static_cast<std::size_t>(i)]);
    EXPECT_EQ(s.is_new(), i >= 3) << i;
  }
}

}  // namespace
}  // namespace sessionkit

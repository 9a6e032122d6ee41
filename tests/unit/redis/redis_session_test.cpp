// SessionManager on the Redis store and Redis locks: exact counts from many
// processes and from two "machines", bad data in Redis, Redis going away or
// hanging mid-run, and the lease-lost save (once the core has the seam).
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "sessionkit/config.hpp"
#include "sessionkit/error.hpp"
#include "sessionkit/registry.hpp"
#include "sessionkit/session.hpp"
#include "sessionkit/session_manager.hpp"
#include "tests/support/test_support.hpp"
#include "tests/unit/redis/redis_test_support.hpp"

using namespace std::chrono_literals;

namespace sessionkit {
namespace {

using testing::create_counter;
using testing::fork_child;
using testing::increment;
using testing::RawRedis;
using testing::read_counter;
using testing::RedisServer;
using testing::spawn_helper;
using testing::wait_child;
using SteadyClock = std::chrono::steady_clock;

constexpr int kProcesses = 8;
constexpr int kIncrements = 100;

template <typename Fn>
std::string code_of(Fn&& fn) {
  try {
    fn();
    return "none";
  } catch (const Error& e) {
    return to_string(e.code_value());
  }
}

// One "machine": its own config object and SessionManager pointed at the test
// server, `threads` threads each incrementing the counter `increments` times.
// args: port prefix cookie increments threads
SESSIONKIT_TEST_HELPER(redis_machine) {
  if (args.size() != 5) return 100;
  nlohmann::json doc = {{"store", {{"type", "redis"}, {"port", std::stoi(args[0])}, {"prefix", args[1]}}},
                        {"locks",
                         {{"type", "redis"},
                          {"port", std::stoi(args[0])},
                          {"prefix", args[1]},
                          {"slots", 64},
                          {"resource_slots", 8},
                          {"wait_ms", 10'000}}},
                        {"gc", {{"every_n_requests", 0}}}};
  SessionManager m(Config::from_json(doc));
  const std::string cookie = args[2];
  const int increments = std::stoi(args[3]);
  std::atomic<int> failed{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < std::stoi(args[4]); ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < increments; ++i) {
        try {
          if (!increment(m, cookie)) failed.fetch_add(1);
        } catch (const std::exception& e) {
          std::fprintf(stderr, "redis_machine: %s\n", e.what());
          failed.fetch_add(1);
        }
      }
    });
  }
  for (auto& t : threads) t.join();
  return failed.load() == 0 ? 0 : 1;
}

class RedisSessionTest : public ::testing::Test {
 protected:
  RedisServer server_;
};

// kProcesses forked processes, each with its own SessionManager on `config`,
// increment one new counter kIncrements times each; returns its final value.
long long count_in_forked_processes(const Config& config) {
  std::string cookie;
  {
    SessionManager m(config);
    cookie = create_counter(m);
  }
  std::vector<pid_t> children;
  for (int p = 0; p < kProcesses; ++p) {
    children.push_back(fork_child([&] {
      SessionManager m(config);  // each child builds its own
      for (int i = 0; i < kIncrements; ++i) {
        if (!increment(m, cookie)) return 1;
      }
      return 0;
    }));
  }
  for (pid_t c : children) EXPECT_EQ(wait_child(c), 0);
  SessionManager m(config);
  return read_counter(m, cookie);
}

TEST_F(RedisSessionTest, ForkedProcessesCountExactly) {
  EXPECT_EQ(count_in_forked_processes(testing::redis_config(server_, "fork:")), kProcesses * kIncrements);
}

// Redis locks use the same slot_for(id) scheme as the others, so they can
// guard the LMDB or file store of one machine: 8 processes count exactly.
TEST_F(RedisSessionTest, RedisLocksGuardLmdbAndFileStores) {
  const std::vector<std::string> stores = Registry::global().store_types();
  int ran = 0;
  for (const std::string type : {"lmdb", "file"}) {
    if (std::find(stores.begin(), stores.end(), type) == stores.end()) continue;
    SCOPED_TRACE(type);
    ++ran;
    testing::TempDir dir;
    nlohmann::json doc = testing::redis_config_json(server_, type + ":");
    doc["store"] = {{"type", type},
                    {"path", (dir / (type == "lmdb" ? "sessions.mdb" : "sessions")).string()},
                    {"durability", "nosync"}};
    EXPECT_EQ(count_in_forked_processes(Config::from_json(doc)), kProcesses * kIncrements);
  }
  EXPECT_GT(ran, 0) << "neither the lmdb nor the file store is built in";
}

TEST_F(RedisSessionTest, TwoMachinesCountExactly) {
  const std::string prefix = "machines:";
  std::string cookie;
  {
    SessionManager m(testing::redis_config(server_, prefix));
    cookie = create_counter(m);
  }
  const std::vector<std::string> args = {std::to_string(server_.port()), prefix, cookie,
                                         std::to_string(kIncrements), "3"};
  pid_t one = spawn_helper("redis_machine", args);
  pid_t two = spawn_helper("redis_machine", args);
  EXPECT_EQ(wait_child(one), 0);
  EXPECT_EQ(wait_child(two), 0);
  SessionManager m(testing::redis_config(server_, prefix));
  EXPECT_EQ(read_counter(m, cookie), 2 * 3 * kIncrements);
}

TEST_F(RedisSessionTest, ForeignValueOrTypeUnderTheKeyIsANewSession) {
  SessionManager m(testing::redis_config(server_, "bad:"));
  RawRedis raw(server_);

  std::string cookie = create_counter(m);
  std::string id = cookie.substr(cookie.find('=') + 1);
  raw.command({"SET", "bad:" + id, "\x93\x01\x02 not a record"});
  {
    Session s = m.open(cookie);
    EXPECT_TRUE(s.is_new());
    EXPECT_NE(s.id(), id);
  }
  EXPECT_EQ(m.stats().corrupt_records, 1u);
  EXPECT_FALSE(raw.exists("bad:" + id));  // the core removed the damaged record

  cookie = create_counter(m);
  id = cookie.substr(cookie.find('=') + 1);
  raw.command({"DEL", "bad:" + id});
  raw.command({"HSET", "bad:" + id, "n", "5"});  // WRONGTYPE for GET
  {
    Session s = m.open(cookie);
    EXPECT_TRUE(s.is_new());
  }
  EXPECT_EQ(m.stats().corrupt_records, 2u);
  EXPECT_FALSE(raw.exists("bad:" + id));
}

// Redis stopped (and, second round, killed) mid-run: opens and saves fail
// fast with unavailable, within the timeouts; once Redis is back on the same
// port the same SessionManager works again.
TEST_F(RedisSessionTest, RedisGoneMidRunFailsFastThenRecovers) {
  // Through the server's Unix socket: its path is this test's alone, while a
  // freed TCP port could be taken by another test's server meanwhile.
  nlohmann::json doc =
      testing::redis_config_json(server_, "gone:", {{"connect_timeout_ms", 300}, {"command_timeout_ms", 300}},
                                 {{"connect_timeout_ms", 300}, {"command_timeout_ms", 300}});
  for (const char* section : {"store", "locks"}) {
    doc[section].erase("host");
    doc[section].erase("port");
    doc[section]["unix_socket"] = server_.unix_socket().string();
  }
  SessionManager m(Config::from_json(doc));
  const auto bound = 3 * (300ms + 300ms);
  for (int round = 0; round < 2; ++round) {
    const std::string cookie = create_counter(m);
    ASSERT_TRUE(increment(m, cookie));
    Session open_session = m.open(cookie);
    open_session.data()["n"] = 100;

    if (round == 0) {
      server_.stop();
    } else {
      server_.kill();
    }
    auto start = SteadyClock::now();
    EXPECT_EQ(code_of([&] { m.open(cookie); }), "unavailable");
    // From a thread that holds no slot: this thread may re-enter open_session's
    // slot for a new id without asking Redis, which is right.
    std::thread([&] { EXPECT_EQ(code_of([&] { m.open(""); }), "unavailable"); }).join();
    EXPECT_EQ(code_of([&] { open_session.save(); }), "unavailable");
    EXPECT_LT(SteadyClock::now() - start, bound);
    start = SteadyClock::now();
    EXPECT_EQ(code_of([&] { open_session.unlock(); }),
              "unavailable");  // the save fails; the unlock is counted
    EXPECT_LT(SteadyClock::now() - start, bound);
    EXPECT_FALSE(open_session.locked());

    server_.start();  // empty: persistence is off in the fixture
    const std::string again = create_counter(m);
    EXPECT_TRUE(increment(m, again));
    EXPECT_TRUE(increment(m, again));
    EXPECT_EQ(read_counter(m, again), 2);
  }
}

// A hung Redis (SIGSTOP): requests end at the command timeout with
// unavailable instead of hanging, and work again after it resumes.
TEST_F(RedisSessionTest, HungRedisTimesOutThenRecovers) {
  const nlohmann::json timeouts = {{"connect_timeout_ms", 200}, {"command_timeout_ms", 200}};
  nlohmann::json locks = timeouts;
  // A lock SET that timed out may still run after the server resumes and keep
  // that slot for one lease; keep the lease short for the rest of the test
  // (and the lock wait shorter still: a lease must outlast the wait).
  locks["lease_ms"] = 1000;
  locks["wait_ms"] = 900;
  SessionManager m(testing::redis_config(server_, "hung:", locks, timeouts));
  const std::string cookie = create_counter(m);
  ASSERT_TRUE(increment(m, cookie));

  server_.pause();
  const auto start = SteadyClock::now();
  EXPECT_EQ(code_of([&] { m.open(cookie); }), "unavailable");
  EXPECT_LT(SteadyClock::now() - start, 3 * (200ms + 200ms));
  server_.resume();

  // The stray lease ends 1 s after the delayed SET runs; a request waits
  // 0.9 s, so on a loaded machine it may take a few tries to get the slot.
  bool incremented = false;
  const auto give_up = SteadyClock::now() + 10s;
  while (!incremented && SteadyClock::now() < give_up) {
    try {
      incremented = increment(m, cookie);
    } catch (const Error& e) {
      if (e.code_value() != errc::unavailable) throw;
    }
  }
  ASSERT_TRUE(incremented);
  EXPECT_EQ(read_counter(m, cookie), 2);
}

TEST_F(RedisSessionTest, ResourceLocksExcludeOtherManagers) {
  SessionManager a(testing::redis_config(server_, "res:"));
  SessionManager b(testing::redis_config(server_, "res:"));
  {
    ResourceLock held = a.lock_resource("nightly-report", 1s);
    EXPECT_FALSE(b.try_lock_resource("nightly-report").has_value());
    const auto start = SteadyClock::now();
    EXPECT_EQ(code_of([&] { b.lock_resource("nightly-report", 100ms); }), "unavailable");
    EXPECT_GE(SteadyClock::now() - start, 100ms);
  }
  EXPECT_TRUE(b.try_lock_resource("nightly-report").has_value());
}

// The whole lease-expiry story through SessionManager: Session calls
// LockManager::check_held(slot) right before Store::save, so the stalled
// writer's late save is refused instead of overwriting the other's update.
TEST_F(RedisSessionTest, StalledWriterLosesLeaseAndItsSaveIsAborted) {
  // Two managers on one lock table: the stalled writer's with a 300 ms lease,
  // the other's long enough that no stall of the test itself can end it.
  SessionManager stalled_m(testing::redis_config(server_, "lease:", {{"lease_ms", 300}, {"wait_ms", 200}}));
  SessionManager m(testing::redis_config(server_, "lease:", {{"lease_ms", 30'000}, {"wait_ms", 20'000}}));
  const std::string cookie = create_counter(m);
  std::atomic<bool> a_opened{false};
  std::string a_error;
  std::thread stalled([&] {
    Session s = stalled_m.open(cookie);
    a_opened = true;
    s.data()["n"] = s.data().value("n", 0) + 1;
    std::this_thread::sleep_for(700ms);  // well past the 300 ms lease
    a_error = code_of([&] { s.save(); });
  });
  while (!a_opened.load()) std::this_thread::sleep_for(1ms);
  {
    Session s = m.open(cookie);  // waits for the lease to run out
    s.data()["n"] = s.data().value("n", 0) + 10;
    s.save();
  }
  stalled.join();
  EXPECT_EQ(a_error, "aborted");
  EXPECT_EQ(read_counter(m, cookie), 10);  // the other writer's update survived
}

}  // namespace
}  // namespace sessionkit

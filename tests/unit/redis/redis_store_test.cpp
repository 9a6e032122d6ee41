// RedisStore against a real redis-server: layout and TTLs, for_each, bad data,
// connection settings, the pool, fork, and a server that goes away or hangs.
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <map>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "backends/redis/redis_config.hpp"
#include "backends/redis/redis_store.hpp"
#include "session_id.hpp"
#include "sessionkit/error.hpp"
#include "tests/support/test_support.hpp"
#include "tests/unit/redis/redis_test_support.hpp"

using namespace std::chrono_literals;

namespace sessionkit {
namespace {

using testing::fork_child;
using testing::RawRedis;
using testing::RedisServer;
using testing::wait_child;
using SysClock = std::chrono::system_clock;
using SteadyClock = std::chrono::steady_clock;

std::unique_ptr<RedisStore> make_store(const nlohmann::json& section) {
  return std::make_unique<RedisStore>(redis::parse_store_section(section, "/"));
}

// The errc a call throws, or "none".
template <typename Fn>
std::string code_of(Fn&& fn) {
  try {
    fn();
    return "none";
  } catch (const Error& e) {
    return to_string(e.code_value());
  }
}

class RedisStoreTest : public ::testing::Test {
 protected:
  nlohmann::json section(const std::string& prefix = "t:") const {
    return testing::redis_store_section(server_, prefix);
  }

  RedisServer server_;
};

TEST_F(RedisStoreTest, SaveLoadRemove) {
  auto store = make_store(section());
  const std::string id = detail::generate_session_id();
  const std::string record("bin\0ary\xff record", 16);
  EXPECT_EQ(store->load(id), std::nullopt);
  store->save(id, record, SysClock::now() + 60s);
  EXPECT_EQ(store->load(id), record);
  store->save(id, "second", SysClock::now() + 60s);
  EXPECT_EQ(store->load(id), "second");
  EXPECT_TRUE(store->remove(id));
  EXPECT_EQ(store->load(id), std::nullopt);
  EXPECT_FALSE(store->remove(id));
}

TEST_F(RedisStoreTest, RecordsLiveUnderThePrefixWithARedisTtl) {
  auto store = make_store(section("app1:"));
  RawRedis raw(server_);
  const std::string id = detail::generate_session_id();
  const auto before = SteadyClock::now();
  store->save(id, "rec", SysClock::now() + 5s);
  EXPECT_EQ(store->key_for(id), "app1:" + id);
  EXPECT_EQ(raw.get("app1:" + id), "rec");
  const long long ttl = raw.pttl("app1:" + id);
  // 5 s less what has run down since the save (rounded up, plus Redis's ms).
  EXPECT_GE(ttl,
            5000 - std::chrono::ceil<std::chrono::milliseconds>(SteadyClock::now() - before).count() - 1);
  EXPECT_LE(ttl, 5000);

  // A record already past its expiry gets the shortest TTL and is gone at once.
  const std::string dead = detail::generate_session_id();
  store->save(dead, "old", SysClock::now() - 10s);
  std::this_thread::sleep_for(20ms);
  EXPECT_FALSE(raw.exists("app1:" + dead));
  EXPECT_EQ(store->load(dead), std::nullopt);
}

TEST_F(RedisStoreTest, SweepHasNothingToDo) {
  auto store = make_store(section());
  store->save(detail::generate_session_id(), "rec", SysClock::now() + 60s);
  SweepResult r = store->sweep(SysClock::now() + 1h, 5ms);
  EXPECT_TRUE(r.complete);
  EXPECT_EQ(r.examined, 0u);
  EXPECT_EQ(r.removed, 0u);
}

TEST_F(RedisStoreTest, InfoNamesTheServer) {
  auto store = make_store(section());
  StoreInfo info = store->info();
  EXPECT_EQ(info.type, "redis");
  EXPECT_EQ(info.location, "redis://127.0.0.1:" + std::to_string(server_.port()) + "/0");
  EXPECT_EQ(info.records, -1);
  EXPECT_EQ(info.bytes, -1);
  EXPECT_TRUE(store->shared_across_processes());
}

TEST_F(RedisStoreTest, IdsAreRechecked) {
  auto store = make_store(section());
  EXPECT_EQ(code_of([&] { store->load("../etc/passwd"); }), "invalid_argument");
  EXPECT_EQ(code_of([&] { store->save("lock:1", "x", SysClock::now() + 1s); }), "invalid_argument");
  EXPECT_EQ(code_of([&] { store->remove(""); }), "invalid_argument");
}

TEST_F(RedisStoreTest, ForEachListsOnlySessionRecordsUnderThePrefix) {
  // A prefix with glob characters: SCAN MATCH must take it literally.
  const std::string prefix = "t[1]*:";
  auto store = make_store(section(prefix));
  RawRedis raw(server_);
  std::map<std::string, std::string> expected;
  for (int i = 0; i < 2500; ++i) {  // more than one SCAN step (COUNT 1000)
    const std::string id = detail::generate_session_id();
    expected[id] = "record " + std::to_string(i);
    store->save(id, expected[id], SysClock::now() + 60s);
  }
  const std::string other_id = detail::generate_session_id();
  raw.command({"SET", prefix + "lock:7", "token"});
  raw.command({"SET", prefix + "lock:layout", "64/8"});
  raw.command({"SET", prefix + "junk", "x"});
  raw.command({"SET", "t1:" + other_id, "another prefix the unescaped pattern would match"});
  raw.command({"SET", "other:" + other_id, "another tenant"});
  raw.command({"HSET", prefix + other_id, "f", "v"});  // not a string: skipped

  std::map<std::string, std::string> seen;
  store->for_each([&](std::string_view id, std::string_view record) {
    seen.emplace(std::string(id), std::string(record));
    return true;
  });
  EXPECT_EQ(seen.size(), expected.size());
  EXPECT_TRUE(seen == expected);

  int calls = 0;
  store->for_each([&](std::string_view, std::string_view) {
    ++calls;
    return false;
  });
  EXPECT_EQ(calls, 1);
}

TEST_F(RedisStoreTest, ForeignBytesAreHandedOverAndOtherTypesAreDataLoss) {
  auto store = make_store(section());
  RawRedis raw(server_);
  const std::string id = detail::generate_session_id();
  raw.command({"SET", "t:" + id, "not a sessionkit record"});
  EXPECT_EQ(store->load(id), "not a sessionkit record");  // the core's decoder judges it
  raw.command({"DEL", "t:" + id});
  raw.command({"HSET", "t:" + id, "field", "value"});
  EXPECT_EQ(code_of([&] { store->load(id); }), "data_loss");
  EXPECT_TRUE(store->remove(id));  // DEL works on any type: the core clears it this way
  EXPECT_EQ(store->load(id), std::nullopt);
}

TEST_F(RedisStoreTest, UnixSocketAndDb) {
  auto store = make_store(
      {{"type", "redis"}, {"unix_socket", server_.unix_socket().string()}, {"db", 3}, {"prefix", "t:"}});
  EXPECT_EQ(store->info().location, "unix://" + server_.unix_socket().string() + "?db=3");
  const std::string id = detail::generate_session_id();
  store->save(id, "in db 3", SysClock::now() + 60s);
  EXPECT_EQ(store->load(id), "in db 3");
  RawRedis raw(server_);
  EXPECT_FALSE(raw.exists("t:" + id));  // db 0
  raw.command({"SELECT", "3"});
  EXPECT_EQ(raw.get("t:" + id), "in db 3");

  auto bad_db = make_store({{"type", "redis"}, {"port", server_.port()}, {"db", 5000}});
  try {
    bad_db->load(id);
    FAIL() << "SELECT 5000 accepted";
  } catch (const Error& e) {
    EXPECT_EQ(e.code_value(), errc::bad_config);
    EXPECT_EQ(std::string(e.what()).rfind("store.db:", 0), 0u) << e.what();
  }
}

TEST(RedisStoreAuthTest, PasswordAndAclUser) {
  RedisServer server(RedisServer::Options{"s3cret-pw"});
  const std::string id = detail::generate_session_id();
  nlohmann::json base = testing::redis_store_section(server, "t:");

  nlohmann::json good = base;
  good["password"] = "s3cret-pw";
  auto store = make_store(good);
  store->save(id, "authenticated", SysClock::now() + 60s);
  EXPECT_EQ(store->load(id), "authenticated");

  auto expect_password_error = [&](const nlohmann::json& s) {
    try {
      make_store(s)->load(id);
      FAIL() << "no error for " << s.dump();
    } catch (const Error& e) {
      EXPECT_EQ(e.code_value(), errc::bad_config) << e.what();
      EXPECT_EQ(std::string(e.what()).rfind("store.password:", 0), 0u) << e.what();
      EXPECT_EQ(std::string(e.what()).find("s3cret"), std::string::npos) << "password leaked: " << e.what();
    }
  };
  nlohmann::json wrong = base;
  wrong["password"] = "wrong";
  expect_password_error(wrong);
  expect_password_error(base);  // no AUTH at all: NOAUTH on the first command

  // An ACL user (Redis >= 6) that may only touch keys under "t:".
  RawRedis raw(server);
  ASSERT_TRUE(raw.command({"AUTH", "s3cret-pw"}).is_status("OK"));
  ASSERT_TRUE(raw.command({"ACL", "SETUSER", "app", "on", ">app-pw", "~t:*", "+@all"}).is_status("OK"));
  nlohmann::json acl = base;
  acl["user"] = "app";
  acl["password"] = "app-pw";
  EXPECT_EQ(make_store(acl)->load(id), "authenticated");
  acl["prefix"] = "u:";
  try {
    make_store(acl)->save(id, "x", SysClock::now() + 60s);
    FAIL() << "write outside the user's keys accepted";
  } catch (const Error& e) {
    EXPECT_EQ(e.code_value(), errc::bad_config) << e.what();
    EXPECT_EQ(std::string(e.what()).rfind("store.user:", 0), 0u) << e.what();
  }
}

TEST_F(RedisStoreTest, RedisOutOfMemoryIsResourceExhausted) {
  auto store = make_store(section());
  RawRedis raw(server_);
  const std::string id = detail::generate_session_id();
  store->save(id, "before", SysClock::now() + 60s);
  ASSERT_TRUE(raw.command({"CONFIG", "SET", "maxmemory-policy", "noeviction"}).is_status("OK"));
  ASSERT_TRUE(raw.command({"CONFIG", "SET", "maxmemory", "1"}).is_status("OK"));
  EXPECT_EQ(code_of([&] { store->save(id, "after", SysClock::now() + 60s); }), "resource_exhausted");
  EXPECT_EQ(store->load(id), "before");  // the previous record is intact and readable
  ASSERT_TRUE(raw.command({"CONFIG", "SET", "maxmemory", "0"}).is_status("OK"));
  store->save(id, "after", SysClock::now() + 60s);
  EXPECT_EQ(store->load(id), "after");
}

// Idle connections the server closed (a client timeout, CLIENT KILL, a
// proxy) are replaced before use: the caller sees no error.
TEST_F(RedisStoreTest, ConnectionsClosedByTheServerAreReplacedQuietly) {
  nlohmann::json s = section();
  auto store = make_store(s);
  RawRedis raw(server_);
  const std::string id = detail::generate_session_id();
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {  // several pooled connections
    threads.emplace_back([&] {
      for (int i = 0; i < 20; ++i) store->save(id, "rec", SysClock::now() + 60s);
    });
  }
  for (auto& t : threads) t.join();
  const std::size_t pooled = store->open_connections();
  EXPECT_GE(pooled, 1u);
  const redis::Reply killed = raw.command({"CLIENT", "KILL", "TYPE", "normal", "SKIPME", "yes"});
  EXPECT_EQ(killed.integer(), static_cast<long long>(pooled));
  std::this_thread::sleep_for(20ms);  // let the FINs arrive
  for (std::size_t i = 0; i < pooled + 1; ++i) EXPECT_EQ(store->load(id), "rec");
}

// Redis stopped mid-run: calls fail fast with unavailable, within the
// timeouts, and work again on the same store once Redis is back.
TEST_F(RedisStoreTest, RedisGoneIsUnavailableThenRecovers) {
  auto store = make_store(section());  // connect 500 ms, command 500 ms
  const std::string id = detail::generate_session_id();
  store->save(id, "before", SysClock::now() + 60s);
  EXPECT_EQ(store->open_connections(), 1u);

  server_.stop();
  const auto bound = 3 * (500ms + 500ms);
  for (int i = 0; i < 3; ++i) {
    const auto start = SteadyClock::now();
    EXPECT_EQ(code_of([&] { store->load(id); }), "unavailable");
    EXPECT_EQ(code_of([&] { store->save(id, "during", SysClock::now() + 60s); }), "unavailable");
    EXPECT_LT(SteadyClock::now() - start, bound);
  }
  EXPECT_EQ(store->open_connections(), 0u);

  server_.start();  // same port, empty (no persistence)
  EXPECT_EQ(store->load(id), std::nullopt);
  store->save(id, "after", SysClock::now() + 60s);
  EXPECT_EQ(store->load(id), "after");
}

// A hung server (SIGSTOP): the kernel still accepts, nothing answers. Calls
// end at the command timeout, not later, and work after it resumes.
TEST_F(RedisStoreTest, HungRedisTimesOut) {
  nlohmann::json s = section();
  s["command_timeout_ms"] = 200;
  s["connect_timeout_ms"] = 200;
  auto store = make_store(s);
  const std::string id = detail::generate_session_id();
  store->save(id, "before", SysClock::now() + 60s);

  server_.pause();
  const auto start = SteadyClock::now();
  EXPECT_EQ(code_of([&] { store->load(id); }), "unavailable");
  const auto first = SteadyClock::now() - start;
  EXPECT_GE(first, 150ms);  // it did wait for an answer
  EXPECT_LT(first, 3 * (200ms + 200ms));
  const auto again = SteadyClock::now();
  EXPECT_EQ(code_of([&] { store->save(id, "during", SysClock::now() + 60s); }), "unavailable");
  EXPECT_LT(SteadyClock::now() - again, 3 * (200ms + 200ms));

  server_.resume();
  // The timed-out SET had reached the server's socket: Redis may run it after
  // waking up. A timeout says "unknown", not "not written" (docs/redis.md).
  const std::optional<std::string> now = store->load(id);
  EXPECT_TRUE(now == "before" || now == "during") << now.value_or("(none)");
  const std::string fresh = detail::generate_session_id();
  store->save(fresh, "after", SysClock::now() + 60s);
  EXPECT_EQ(store->load(fresh), "after");
}

TEST_F(RedisStoreTest, ThreadsShareABoundedPool) {
  nlohmann::json s = section();
  s["max_connections"] = 3;
  // A thread waits up to command_timeout_ms for a free connection, and the
  // pool is not fair: on a loaded machine one of twelve threads can wait long.
  s["command_timeout_ms"] = 60'000;
  auto store = make_store(s);
  std::atomic<int> failures{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 12; ++t) {
    threads.emplace_back([&] {
      const std::string id = detail::generate_session_id();
      for (int i = 0; i < 50; ++i) {
        const std::string rec = std::to_string(i);
        store->save(id, rec, SysClock::now() + 60s);
        if (store->load(id) != rec) failures.fetch_add(1);
        if (store->open_connections() > 3) failures.fetch_add(1000);
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(failures.load(), 0);
  EXPECT_LE(store->open_connections(), 3u);
  EXPECT_GE(store->open_connections(), 1u);
}

// A forked child must not use the parent's connection (replies would
// interleave). With after_fork() and without it (the pool notices the pid),
// parent and child both keep working at the same time.
TEST_F(RedisStoreTest, ForkedChildrenUseTheirOwnConnections) {
  auto store = make_store(section());
  const std::string parent_id = detail::generate_session_id();
  store->save(parent_id, "parent", SysClock::now() + 60s);  // the parent now has a pooled connection
  for (bool call_after_fork : {true, false}) {
    pid_t child = fork_child([&] {
      if (call_after_fork) store->after_fork();
      const std::string id = detail::generate_session_id();
      for (int i = 0; i < 300; ++i) {
        const std::string rec = "child " + std::to_string(i);
        store->save(id, rec, SysClock::now() + 60s);
        if (store->load(id) != rec) return 1;
        if (store->load(parent_id) != "parent") return 2;
      }
      return store->open_connections() == 1 ? 0 : 3;
    });
    for (int i = 0; i < 300; ++i) {
      ASSERT_EQ(store->load(parent_id), "parent");
    }
    EXPECT_EQ(wait_child(child), 0) << "after_fork called: " << call_after_fork;
  }
  EXPECT_EQ(store->load(parent_id), "parent");
}

}  // namespace
}  // namespace sessionkit

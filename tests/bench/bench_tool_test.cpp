// sessionkit-bench as users run it: a short run per store and lock manager,
// read back through --json (and --csv), with the exact operation counts, the
// verification (every acknowledged update found, none lost), the baseline the
// ratio is taken against, and the exit status for bad usage and a dead server.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "tests/support/test_support.hpp"
#if SESSIONKIT_HAVE_REDIS
#include <hiredis/hiredis.h>

#include "tests/support/redis_server.hpp"
#endif

extern char** environ;

namespace sessionkit {
namespace {

std::string slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

struct Outcome {
  int status = -1;  // exit status, or 128 + signal
  std::string out;  // stdout
  std::string err;  // stderr
};

// Runs sessionkit-bench with `args`, stdout and stderr captured.
Outcome run_bench(const std::vector<std::string>& args) {
  testing::TempDir dir;
  const std::string out_path = (dir / "out").string();
  const std::string err_path = (dir / "err").string();
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 1, out_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
  posix_spawn_file_actions_addopen(&actions, 2, err_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
  std::vector<std::string> all{SESSIONKIT_TEST_BENCH};
  all.insert(all.end(), args.begin(), args.end());
  std::vector<char*> argv;
  for (std::string& a : all) argv.push_back(a.data());
  argv.push_back(nullptr);
  pid_t pid = -1;
  const int rc = posix_spawn(&pid, argv[0], &actions, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  Outcome o;
  if (rc != 0) {
    ADD_FAILURE() << "posix_spawn " << argv[0] << ": " << rc;
    return o;
  }
  o.status = testing::wait_child(pid);
  o.out = slurp(out_path);
  o.err = slurp(err_path);
  return o;
}

// The JSON object of a --json run; fails the test when there is none.
nlohmann::json json_of(const Outcome& o) {
  EXPECT_EQ(o.status, 0) << o.err;
  try {
    return nlohmann::json::parse(o.out);
  } catch (const nlohmann::json::exception& e) {
    ADD_FAILURE() << "not one JSON object: " << e.what() << "\n" << o.out << o.err;
    return nlohmann::json::object();
  }
}

// A run of `ops` operations with no update lost and none counted twice, its
// ratio taken against the baseline named `baseline`.
void expect_verified(const nlohmann::json& r, std::uint64_t ops, const std::string& baseline) {
  EXPECT_EQ(r.value("ops", 0u), ops);
  EXPECT_EQ(r.value("lost_updates", 1u), 0u);
  EXPECT_EQ(r.value("unacknowledged_updates", 1u), 0u);
  EXPECT_EQ(r.value("errors", 1u), 0u);
  EXPECT_EQ(r.value("lock_timeouts", 1u), 0u);
  EXPECT_EQ(r.value("baseline", ""), baseline);
  ASSERT_TRUE(r.contains("ratio") && r["ratio"].is_number()) << r.dump();
  const double expected = r["ops_per_sec"].get<double>() / r["baseline_ops_per_sec"].get<double>();
  EXPECT_NEAR(r["ratio"].get<double>(), expected, expected * 1e-9);
  EXPECT_GT(r["p99_us"].get<double>(), 0.0);
  EXPECT_LE(r["p50_us"].get<double>(), r["p99_us"].get<double>());
}

TEST(BenchTool, MemoryStoreWithThreadsCountsEveryUpdate) {
  const nlohmann::json r = json_of(
      run_bench({"--store", "memory", "--threads", "2", "--ops", "2000", "--sessions", "50", "--json"}));
  EXPECT_EQ(r.value("store", ""), "memory");
  EXPECT_EQ(r.value("locks", ""), "thread");
  expect_verified(r, 2000, "raw store load+save");
  EXPECT_EQ(r.value("acknowledged", 0u), 2000u);
  EXPECT_EQ(r.value("store_records", 0), 50);
}

#if SESSIONKIT_HAVE_LMDB
TEST(BenchTool, LmdbTwoProcessesOnAHotSetLoseNothing) {
  const nlohmann::json r =
      json_of(run_bench({"--store", "lmdb", "--locks", "shm", "--durability", "nosync", "--procs", "2",
                         "--hot", "0.9", "--ops", "1000", "--sessions", "20", "--json"}));
  EXPECT_EQ(r.value("locks", ""), "shm");
  EXPECT_EQ(r.value("procs", 0), 2);
  expect_verified(r, 1000, "raw LMDB get+put");
  EXPECT_EQ(r.value("acknowledged", 0u), 1000u);
  EXPECT_EQ(r.value("store_records", 0), 20);
  EXPECT_TRUE(r["raw_lock_ops_per_sec"].is_number());
}

TEST(BenchTool, SweepWritesOneCsvRowPerPoint) {
  const Outcome o = run_bench(
      {"--store", "lmdb", "--durability", "nosync", "--sweep", "procs=1,2", "--ops", "200", "--csv"});
  ASSERT_EQ(o.status, 0) << o.err;
  std::vector<std::string> lines;
  for (std::size_t at = 0; at < o.out.size();) {
    const std::size_t end = o.out.find('\n', at);
    lines.push_back(o.out.substr(at, end - at));
    at = end == std::string::npos ? o.out.size() : end + 1;
  }
  ASSERT_EQ(lines.size(), 3u) << o.out;
  EXPECT_NE(lines[0].find("ops_per_sec"), std::string::npos) << lines[0];
  EXPECT_EQ(lines[1].rfind("procs,1,lmdb,shm,1,", 0), 0u) << lines[1];
  EXPECT_EQ(lines[2].rfind("procs,2,lmdb,shm,2,", 0), 0u) << lines[2];
}
#endif

#if SESSIONKIT_HAVE_FILE
TEST(BenchTool, FileStoreWithFcntlLocksAndReadsVerifies) {
  const nlohmann::json r = json_of(run_bench({"--store", "file", "--locks", "fcntl", "--durability", "nosync",
                                              "--read-only-share", "0.5", "--ops", "600", "--json"}));
  EXPECT_EQ(r.value("locks", ""), "fcntl");
  expect_verified(r, 600, "raw store load+save");
  // About half the operations only read: they are not acknowledged updates.
  EXPECT_GT(r.value("acknowledged", 0u), 0u);
  EXPECT_LT(r.value("acknowledged", 600u), 600u);
}
#endif

TEST(BenchTool, BadUsageExitsTwoNamingTheProblem) {
  Outcome o = run_bench({"--redis", "nohost"});
  EXPECT_EQ(o.status, 2);
  EXPECT_NE(o.err.find("--redis wants HOST:PORT"), std::string::npos) << o.err;
  o = run_bench({"--threads", "0"});
  EXPECT_EQ(o.status, 2);
  EXPECT_NE(o.err.find("--threads wants an integer in [1, 256]"), std::string::npos) << o.err;
  o = run_bench({"--plot", "x.svg"});
  EXPECT_EQ(o.status, 2);
  EXPECT_NE(o.err.find("--plot needs --sweep"), std::string::npos) << o.err;
}

#if SESSIONKIT_HAVE_REDIS
// Keys in the server's database 0.
long long key_count(const testing::RedisServer& server) {
  redisContext* c = redisConnect(server.host().c_str(), server.port());
  if (c == nullptr || c->err != 0) {
    ADD_FAILURE() << "cannot connect to the test redis-server";
    if (c != nullptr) redisFree(c);
    return -1;
  }
  auto* reply = static_cast<redisReply*>(redisCommand(c, "DBSIZE"));
  const long long n = reply != nullptr && reply->type == REDIS_REPLY_INTEGER ? reply->integer : -1;
  if (reply != nullptr) freeReplyObject(reply);
  redisFree(c);
  return n;
}

TEST(BenchTool, RedisStoreAndLocksAgainstRawGetSetLeaveNoKeys) {
  testing::RedisServer server;
  const std::string address = "127.0.0.1:" + std::to_string(server.port());
  const nlohmann::json r = json_of(run_bench({"--store", "redis", "--redis", address, "--procs", "2", "--ops",
                                              "400", "--sessions", "30", "--json"}));
  EXPECT_EQ(r.value("store", ""), "redis");
  EXPECT_EQ(r.value("locks", ""), "redis");  // the default locks of --store redis
  expect_verified(r, 400, "raw Redis GET+SET");
  EXPECT_EQ(r.value("acknowledged", 0u), 400u);
  EXPECT_TRUE(r["raw_store_ops_per_sec"].is_number());
  EXPECT_TRUE(r["raw_lock_ops_per_sec"].is_number());
  EXPECT_EQ(key_count(server), 0);  // sessions, baselines and lock layout keys all removed
}

TEST(BenchTool, RedisOverItsUnixSocketAndRedisLocksOverLmdb) {
  testing::RedisServer server;
  nlohmann::json r = json_of(run_bench({"--store", "redis", "--redis", server.unix_socket().string(), "--ops",
                                        "200", "--sessions", "10", "--json"}));
  expect_verified(r, 200, "raw Redis GET+SET");
#if SESSIONKIT_HAVE_LMDB
  r = json_of(run_bench({"--store", "lmdb", "--durability", "nosync", "--locks", "redis", "--redis",
                         "127.0.0.1:" + std::to_string(server.port()), "--procs", "2", "--hot", "0.9",
                         "--ops", "400", "--sessions", "10", "--json"}));
  EXPECT_EQ(r.value("locks", ""), "redis");
  expect_verified(r, 400, "raw LMDB get+put");
  EXPECT_EQ(r.value("acknowledged", 0u), 400u);
#endif
  EXPECT_EQ(key_count(server), 0);
}

TEST(BenchTool, RedisThatIsDownFailsWithStatusThreeNamingIt) {
  int port = 0;
  {
    testing::RedisServer server;
    port = server.port();
  }  // killed: nothing listens on the port any more
  const Outcome o =
      run_bench({"--store", "redis", "--redis", "127.0.0.1:" + std::to_string(port), "--ops", "10"});
  EXPECT_EQ(o.status, 3);
  EXPECT_NE(o.err.find("redis://127.0.0.1:" + std::to_string(port) + "/0: connect"), std::string::npos)
      << o.err;
}
#endif

}  // namespace
}  // namespace sessionkit

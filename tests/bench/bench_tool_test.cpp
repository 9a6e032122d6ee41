// sessionkit-bench as users run it: a short run per store and lock manager,
// read back through --json (and --csv), with the exact operation counts, the
// verification (every acknowledged update found, none lost), the baseline the
// ratio is taken against, and the exit status for bad usage and a dead server.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>
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

// sessionkit-bench started with `args`, stdout and stderr going to files.
class BenchProcess {
 public:
  explicit BenchProcess(const std::vector<std::string>& args) {
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_addopen(&actions, 1, out_path().c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
    posix_spawn_file_actions_addopen(&actions, 2, err_path().c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
    std::vector<std::string> all{SESSIONKIT_TEST_BENCH};
    all.insert(all.end(), args.begin(), args.end());
    std::vector<char*> argv;
    for (std::string& a : all) argv.push_back(a.data());
    argv.push_back(nullptr);
    const int rc = posix_spawn(&pid_, argv[0], &actions, nullptr, argv.data(), environ);
    posix_spawn_file_actions_destroy(&actions);
    if (rc != 0) {
      ADD_FAILURE() << "posix_spawn " << argv[0] << ": " << rc;
      pid_ = -1;
    }
  }
  // Sends it `sig`.
  void signal(int sig) const {
    if (pid_ > 0) kill(pid_, sig);
  }
  // Waits for it to exit.
  Outcome finish() {
    Outcome o;
    if (pid_ < 0) return o;
    o.status = testing::wait_child(pid_);
    pid_ = -1;
    o.out = slurp(out_path());
    o.err = slurp(err_path());
    return o;
  }
  ~BenchProcess() {
    if (pid_ > 0) {
      kill(pid_, SIGKILL);
      testing::wait_child(pid_);
    }
  }

 private:
  std::string out_path() const { return (dir_ / "out").string(); }
  std::string err_path() const { return (dir_ / "err").string(); }

  testing::TempDir dir_;
  pid_t pid_ = -1;
};

Outcome run_bench(const std::vector<std::string>& args) { return BenchProcess(args).finish(); }

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

// Ctrl-C in a 60 s run: the run stops at once, prints what it measured so far
// (verified, as a full run is) and exits 0.
TEST(BenchTool, InterruptPrintsWhatWasMeasuredSoFar) {
  BenchProcess bench(
      {"--store", "memory", "--threads", "2", "--seconds", "60", "--sessions", "50", "--json"});
  std::this_thread::sleep_for(std::chrono::milliseconds(1500));
  const auto interrupted = std::chrono::steady_clock::now();
  bench.signal(SIGINT);
  const Outcome o = bench.finish();
  EXPECT_LT(std::chrono::steady_clock::now() - interrupted, std::chrono::seconds(5));
  const nlohmann::json r = json_of(o);
  const std::uint64_t ops = r.value("ops", 0u);
  EXPECT_GT(ops, 0u);
  EXPECT_EQ(r.value("acknowledged", 0u), ops);
  EXPECT_EQ(r.value("lost_updates", 1u), 0u);
  EXPECT_EQ(r.value("unacknowledged_updates", 1u), 0u);
  EXPECT_LT(r.value("seconds", 60.0), 5.0);
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
// The keys in the server's database 0 (KEYS: the test server holds a few).
std::vector<std::string> keys_of(const testing::RedisServer& server) {
  std::vector<std::string> keys;
  redisContext* c = redisConnect(server.host().c_str(), server.port());
  if (c == nullptr || c->err != 0) {
    ADD_FAILURE() << "cannot connect to the test redis-server";
    if (c != nullptr) redisFree(c);
    return keys;
  }
  auto* reply = static_cast<redisReply*>(redisCommand(c, "KEYS *"));
  if (reply != nullptr && reply->type == REDIS_REPLY_ARRAY) {
    for (std::size_t i = 0; i < reply->elements; ++i)
      keys.emplace_back(reply->element[i]->str, reply->element[i]->len);
  }
  if (reply != nullptr) freeReplyObject(reply);
  redisFree(c);
  return keys;
}

long long key_count(const testing::RedisServer& server) {
  return static_cast<long long>(keys_of(server).size());
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

// A Redis that answers nothing: a port bound by this test but not listening,
// so connecting is refused (no other process can take it meanwhile).
TEST(BenchTool, RedisThatIsDownFailsWithStatusThreeNamingIt) {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  ASSERT_GE(fd, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  socklen_t len = sizeof addr;
  ASSERT_EQ(getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len), 0);
  const std::string port = std::to_string(ntohs(addr.sin_port));
  const Outcome o = run_bench({"--store", "redis", "--redis", "127.0.0.1:" + port, "--ops", "10"});
  close(fd);
  EXPECT_EQ(o.status, 3);
  EXPECT_NE(o.err.find("redis://127.0.0.1:" + port + "/0: connect"), std::string::npos) << o.err;
}

// Redis killed in the middle of a run with worker processes and threads: the
// bench neither crashes nor hangs; it ends with status 3 naming the server.
TEST(BenchTool, RedisKilledMidRunEndsTheRunWithStatusThree) {
  testing::RedisServer server;
  BenchProcess bench({"--store", "redis", "--redis", "127.0.0.1:" + std::to_string(server.port()), "--procs",
                      "2", "--threads", "2", "--seconds", "30", "--sessions", "20"});
  // The sessions exist once the run is set up; the run then lasts 30 s.
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  while (key_count(server) < 20 && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  ASSERT_GE(key_count(server), 20);
  server.kill();
  const auto killed = std::chrono::steady_clock::now();
  const Outcome o = bench.finish();
  EXPECT_EQ(o.status, 3) << o.err;
  EXPECT_NE(o.err.find("redis://127.0.0.1:" + std::to_string(server.port()) + "/0"), std::string::npos)
      << o.err;
  // The slice under way runs out (30 s in 5 slices: 6 s), every operation in
  // it fails, and the run ends there instead of measuring the other 24 s.
  EXPECT_LT(std::chrono::steady_clock::now() - killed, std::chrono::seconds(20));
}

// With --config the store belongs to the user: the run removes its own
// sessions and baseline keys and leaves the configuration's lock layout.
TEST(BenchTool, ConfigRunOnRedisRemovesOnlyWhatItWrote) {
  testing::RedisServer server;
  testing::TempDir dir;
  const nlohmann::json connection = {{"port", server.port()}, {"prefix", "app:"}};
  nlohmann::json doc = {{"store", {{"type", "redis"}}}, {"locks", {{"type", "redis"}, {"slots", 64}}}};
  doc["store"].update(connection);
  doc["locks"].update(connection);
  const std::string file = (dir / "sessions.json").string();
  std::ofstream(file) << doc.dump();
  const nlohmann::json r =
      json_of(run_bench({"--config", file, "--ops", "300", "--sessions", "25", "--json"}));
  expect_verified(r, 300, "raw Redis GET+SET");
  EXPECT_EQ(keys_of(server), std::vector<std::string>{"app:lock:layout"});
}
#endif

}  // namespace
}  // namespace sessionkit

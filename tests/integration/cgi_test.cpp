// sessionkit-cgi-demo behind a real Apache httpd (mod_cgid): one process per
// request, run as httpd's User (www-data) when the tests run as root. Also the
// per-request start-up cost, measured by running the program directly.
#include <gtest/gtest.h>

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <thread>

#include <nlohmann/json.hpp>

#include "adapters/cgi/cgi_headers.hpp"
#include "locks/shm_lock_manager.hpp"
#include "sessionkit/cgi.hpp"
#include "tests/support/http_client.hpp"
#include "tests/support/httpd_fixture.hpp"
#include "tests/support/httpd_server.hpp"
#include "tests/support/integration_support.hpp"
#include "tests/support/test_support.hpp"

namespace sessionkit::testing {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

class CgiTest : public HttpdFixture {
 protected:
  CgiTest() : HttpdFixture("cgi") {}

  // Starts httpd (event MPM, mod_cgid) with /cgi mapped to sessionkit-cgi-demo.
  // `cgi_env`: extra SetEnv lines for the /cgi location.
  void start(const nlohmann::json& store_section = {}, int wait_ms = 5000, const std::string& locks = "shm",
             const std::string& cgi_env = "") {
    const fs::path program = install_program(SESSIONKIT_TEST_CGI_DEMO, dir_ / "bin");
    const std::string extra = "ScriptSock \"" + (dir_ / "cgid.sock").string() + "\"\n" +
                              "ScriptAlias /cgi \"" + program.string() + "\"\n" +
                              "<Location /cgi>\n  SetEnv SESSIONKIT_CONFIG \"" + config_path() +
                              "\"\n  SetEnv SESSIONKIT_TEST_HOOKS 1\n" + cgi_env + "</Location>\n" +
                              "<Location /cgi/secure>\n  SetEnv HTTPS on\n</Location>\n";
    server_ = std::make_unique<HttpdServer>(
        dir_.path(), HttpdOptions{"event",
                                  "",
                                  true,
                                  {apache_module("alias"), apache_module("env"), apache_module("cgid")},
                                  extra,
                                  "www-data"});
    nlohmann::json config = session_config(server_->data_dir(), region_, "lmdb", wait_ms);
    if (!store_section.is_null()) config["store"] = store_section;
    if (locks != "shm") config["locks"] = {{"type", locks}};
    write_config(config);
    ASSERT_TRUE(server_->start()) << server_->error_log();
  }
};

TEST_F(CgiTest, CookieRoundTripHelloAndBadCookies) {
  ASSERT_NO_FATAL_FAILURE(start());
  HttpClient client(port());
  HttpResponse hello = client.get("/cgi/hello");
  EXPECT_EQ(hello.status, 200) << server_->error_log();
  EXPECT_EQ(hello.body, "hello");
  EXPECT_TRUE(hello.header("set-cookie").empty());

  std::string cookie;
  ASSERT_NO_FATAL_FAILURE(expect_session_created_and_found(
      client, "/cgi/demo", "", [&] { return server_->error_log(); }, &cookie));

  const std::string forged = forged_cookie(cookie);
  for (const std::string& bad : {forged, std::string("sid=../../etc/passwd"), std::string("sid=")}) {
    HttpResponse r = client.get("/cgi/demo", bad);
    EXPECT_EQ(r.status, 200);
    EXPECT_EQ(r.body, "1") << bad;
    EXPECT_NE(r.cookie(), cookie);
  }
  EXPECT_EQ(client.get("/cgi/demo", cookie).body, "3");

  HttpResponse secure = client.get("/cgi/secure/demo");  // HTTPS=on in the environment
  EXPECT_EQ(secure.body, "1");
  EXPECT_NE(secure.header("set-cookie").find("; Secure"), std::string::npos) << secure.header("set-cookie");
}

// 8 connections x 100 requests on one session: 800 processes, every increment lands.
TEST_F(CgiTest, NoLostUpdatesAcrossProcesses) {
#if defined(__SANITIZE_ADDRESS__)
  // An instrumented process costs about five times as much to start, and the
  // count is exact either way: 8 x 25 under AddressSanitizer.
  constexpr int kRequests = 25;
#else
  constexpr int kRequests = 100;
#endif
  // Under AddressSanitizer, the leak check at exit would double what each
  // process costs again; the other CGI tests keep it (and fail on a report).
  ASSERT_NO_FATAL_FAILURE(start({}, 5000, "shm", "  SetEnv ASAN_OPTIONS detect_leaks=0\n"));
  HttpClient client(port());
  HttpResponse created = client.get("/cgi/demo");
  ASSERT_EQ(created.body, "1") << server_->error_log();
  const std::string cookie = created.cookie();
  EXPECT_EQ(hammer(port(), "/cgi/demo", cookie, 8, kRequests), 8 * kRequests) << server_->error_log();
  EXPECT_EQ(client.get("/cgi/demo", cookie).body, std::to_string(8 * kRequests + 2));
}

TEST_F(CgiTest, LockDeadlineIs503WithRetryAfter) {
  ASSERT_NO_FATAL_FAILURE(start({}, 1000));
  HttpClient client(port());
  const std::string cookie = client.get("/cgi/demo").cookie();
  std::thread slow([&] {
    HttpClient c(port());
    EXPECT_EQ(c.get("/cgi/demo?sleep_ms=5000", cookie).body, "2");
  });
  // mod_cgid logs the program's stderr as it comes: the lock is held from then on.
  ASSERT_TRUE(
      eventually([&] { return server_->error_log().find("holding the session lock") != std::string::npos; },
                 std::chrono::seconds(30)))
      << server_->error_log();
  const auto start = Clock::now();
  HttpResponse busy = client.get("/cgi/demo", cookie);
  const auto waited = Clock::now() - start;
  EXPECT_EQ(busy.status, 503);
  EXPECT_EQ(busy.header("retry-after"), "1");
  EXPECT_EQ(busy.body, "503 Service Unavailable\n");
  EXPECT_GE(waited, std::chrono::milliseconds(950));  // locks.wait_ms = 1000
  slow.join();
  EXPECT_EQ(client.get("/cgi/demo", cookie).body, "3");
  EXPECT_NE(server_->error_log().find("sessionkit-cgi-demo: sessionkit: session lock slot"),
            std::string::npos)
      << server_->error_log();
}

TEST_F(CgiTest, MemoryStoreIsRefusedWith500) {
  // With the thread locks it needs (memory + shm is refused by every adapter's config check).
  ASSERT_NO_FATAL_FAILURE(start({{"type", "memory"}}, 5000, "thread"));
  HttpClient client(port());
  HttpResponse r = client.get("/cgi/demo");
  EXPECT_EQ(r.status, 500);
  EXPECT_EQ(r.body, "500 Internal Server Error\n");  // the reason goes to the log only
  EXPECT_TRUE(r.header("set-cookie").empty());
  EXPECT_TRUE(eventually(
      [&] { return server_->error_log().find("each request is a new process") != std::string::npos; },
      std::chrono::seconds(30)))
      << server_->error_log();
  EXPECT_EQ(client.get("/cgi/hello").body, "hello");  // the baseline needs no configuration
}

// The environment the web server sets decides the cookie and Secure.
TEST(CgiHelpers, ReadCookieAndHttpsFromTheEnvironment) {
  ::unsetenv("HTTPS");
  ::unsetenv("REQUEST_SCHEME");
  ::setenv("HTTP_COOKIE", "sid=abc; x=1", 1);
  EXPECT_EQ(cgi::cookie_header(), "sid=abc; x=1");
  EXPECT_FALSE(cgi::is_https());
  ::setenv("HTTPS", "ON", 1);
  EXPECT_TRUE(cgi::is_https());
  EXPECT_TRUE(cgi::request_info().secure_transport);
  ::setenv("HTTPS", "off", 1);
  EXPECT_FALSE(cgi::is_https());
  ::setenv("REQUEST_SCHEME", "https", 1);
  EXPECT_TRUE(cgi::is_https());
  ::unsetenv("HTTPS");
  ::unsetenv("REQUEST_SCHEME");
  ::unsetenv("HTTP_COOKIE");
  EXPECT_EQ(cgi::cookie_header(), "");
}

TEST(CgiHelpers, RefusesProcessLocalConfigurations) {
  auto code_and_message = [](const nlohmann::json& doc) -> std::pair<errc, std::string> {
    try {
      cgi::check_config(Config::from_json(doc));
    } catch (const Error& e) {
      return {e.code_value(), e.what()};
    }
    return {errc{}, ""};
  };
  auto memory = code_and_message({{"store", {{"type", "memory"}}}});
  EXPECT_EQ(memory.first, errc::bad_config);
  EXPECT_NE(
      memory.second.find("store.type: the \"memory\" store cannot serve CGI: each request is a new process"),
      std::string::npos)
      << memory.second;
  TempDir dir;
  auto thread = code_and_message(
      {{"store", {{"type", "lmdb"}, {"path", (dir / "s.mdb").string()}}}, {"locks", {{"type", "thread"}}}});
  EXPECT_EQ(thread.first, errc::bad_config);
  EXPECT_NE(thread.second.find("locks.type: \"thread\" locks cannot serve CGI"), std::string::npos)
      << thread.second;
  auto none = code_and_message(
      {{"store", {{"type", "lmdb"}, {"path", (dir / "s.mdb").string()}}}, {"locks", {{"type", "none"}}}});
  EXPECT_EQ(none.second, "");  // the explicit opt-out stays allowed
  try {
    cgi::load_config(nullptr);
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    EXPECT_EQ(e.code_value(), errc::bad_config);
  }
}

TEST(CgiHelpers, HeaderBlockAndResponseSplitting) {
  EXPECT_EQ(cgi::detail::header_block(200, "text/plain", std::string("sid=x; Path=/"), {{"X-A", "1"}}),
            "Status: 200 OK\r\nContent-Type: text/plain\r\nSet-Cookie: sid=x; Path=/\r\nX-A: 1\r\n\r\n");
  EXPECT_EQ(cgi::detail::error_response(503),
            "Status: 503 Service Unavailable\r\nContent-Type: text/plain\r\nRetry-After: 1\r\n\r\n"
            "503 Service Unavailable\n");
  EXPECT_EQ(
      cgi::detail::error_response(500),
      "Status: 500 Internal Server Error\r\nContent-Type: text/plain\r\n\r\n500 Internal Server Error\n");
  for (auto bad : {std::make_pair(std::string("text/plain\r\nX: y"), std::string("ok")),
                   std::make_pair(std::string("text/plain"), std::string("a\nb"))}) {
    try {
      cgi::detail::header_block(200, bad.first, std::nullopt, {{"X-B", bad.second}});
      ADD_FAILURE() << "accepted " << bad.first << " / " << bad.second;
    } catch (const Error& e) {
      EXPECT_EQ(e.code_value(), errc::invalid_argument);
    }
  }
  EXPECT_EQ(cgi::error_status(Error(errc::unavailable, "busy")), 503);
  EXPECT_EQ(cgi::error_status(Error(errc::resource_exhausted, "full")), 500);
}

// One run of the demo program outside any web server.
struct CgiRun {
  int status = -1;
  std::string out;
  std::string err;
  double wall_ms = 0;
};

CgiRun run_cgi(const fs::path& program, const std::vector<std::string>& environment) {
  TempDir tmp;
  const fs::path out = tmp / "out";
  const fs::path err = tmp / "err";
  std::vector<std::string> env_storage = environment;
  std::vector<char*> envp;
  for (std::string& e : env_storage) envp.push_back(e.data());
  envp.push_back(nullptr);
  std::string path = program.string();
  char* argv[] = {path.data(), nullptr};
  const auto start = Clock::now();
  std::fflush(nullptr);
  const pid_t pid = fork();
  if (pid == 0) {
    if (!std::freopen(out.c_str(), "w", stdout) || !std::freopen(err.c_str(), "w", stderr)) _exit(126);
    execve(path.c_str(), argv, envp.data());
    _exit(127);
  }
  CgiRun run;
  run.status = wait_child(pid);
  run.wall_ms = std::chrono::duration<double, std::milli>(Clock::now() - start).count();
  run.out = read_file(out);
  run.err = read_file(err);
  return run;
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0 : v[v.size() / 2];
}

// What every CGI request pays before its session work: the config parse, the
// lock region attach and the store open (SESSIONKIT_CGI_TIMING), and the
// whole process against the /hello baseline (exec without sessionkit work).
TEST(CgiStartup, CostPerRequestIsSmall) {
  TempDir dir;
  const std::string region = unique_name("cgi-startup");
  const fs::path config = dir / "sessions.json";
  std::ofstream(config) << nlohmann::json{
      {"store", {{"type", "lmdb"}, {"path", (dir / "sessions.mdb").string()}, {"durability", "nosync"}}},
      {"locks", {{"type", "shm"}, {"name", region}, {"wait_ms", 5000}}},
      {"gc", {{"every_n_requests", 0}}},
  }.dump();
  const fs::path program = SESSIONKIT_TEST_CGI_DEMO;
  const std::vector<std::string> base = {"REQUEST_METHOD=GET", "SESSIONKIT_CONFIG=" + config.string(),
                                         "SESSIONKIT_CGI_TIMING=1"};
  auto with = [&](std::vector<std::string> extra) {
    std::vector<std::string> env = base;
    env.insert(env.end(), extra.begin(), extra.end());
    return env;
  };
  CgiRun first = run_cgi(program, with({"REQUEST_URI=/cgi/demo"}));
  ASSERT_EQ(first.status, 0) << first.err;
  ASSERT_EQ(first.out.rfind("Status: 200 OK\r\n", 0), 0u) << first.out;
  const std::size_t at = first.out.find("Set-Cookie: ");
  ASSERT_NE(at, std::string::npos) << first.out;
  const std::string cookie = first.out.substr(at + 12, first.out.find(';', at) - at - 12);

  constexpr int kRuns = 25;
  std::vector<double> config_ms, manager_ms, request_ms, demo_wall, hello_wall;
  for (int i = 0; i < kRuns; ++i) {
    CgiRun run = run_cgi(program, with({"REQUEST_URI=/cgi/demo", "HTTP_COOKIE=" + cookie}));
    ASSERT_EQ(run.status, 0) << run.err;
    ASSERT_EQ(run.out.substr(run.out.find("\r\n\r\n") + 4), std::to_string(i + 2));
    long long config_us = -1, manager_us = -1, request_us = -1;
    const std::size_t timing = run.err.find("timing: ");
    ASSERT_NE(timing, std::string::npos) << run.err;
    ASSERT_EQ(std::sscanf(run.err.c_str() + timing, "timing: config_us=%lld manager_us=%lld request_us=%lld",
                          &config_us, &manager_us, &request_us),
              3)
        << run.err;
    config_ms.push_back(static_cast<double>(config_us) / 1000);
    manager_ms.push_back(static_cast<double>(manager_us) / 1000);
    request_ms.push_back(static_cast<double>(request_us) / 1000);
    demo_wall.push_back(run.wall_ms);
    CgiRun hello = run_cgi(program, with({"REQUEST_URI=/cgi/hello"}));
    ASSERT_EQ(hello.out, "Status: 200 OK\r\nContent-Type: text/plain\r\n\r\nhello");
    hello_wall.push_back(hello.wall_ms);
  }
  std::printf(
      "CGI start-up, median of %d runs: config parse %.3f ms, SessionManager (shm attach + LMDB open) "
      "%.3f ms, open+save %.3f ms; whole process (fork+exec+exit): demo %.2f ms, hello %.2f ms\n",
      kRuns, median(config_ms), median(manager_ms), median(request_ms), median(demo_wall),
      median(hello_wall));
  ::testing::Test::RecordProperty("startup_ms", std::to_string(median(config_ms) + median(manager_ms)));
  // Generous: a regression to something like a full map initialisation per
  // request is orders of magnitude above this, a loaded CI machine is not.
#if defined(__SANITIZE_ADDRESS__)
  constexpr double kLimitMs = 100.0;  // instrumented code, and a shadow page per first touch
#else
  constexpr double kLimitMs = 20.0;
#endif
  EXPECT_LT(median(config_ms) + median(manager_ms), kLimitMs);
  ShmLockManager::remove(region);
}

}  // namespace
}  // namespace sessionkit::testing

// mod_sessionkit inside a real Apache httpd, under the prefork and event MPMs.
#include <gtest/gtest.h>

#include <pwd.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <fstream>
#include <thread>

#include "locks/shm_lock_manager.hpp"
#include "tests/support/http_client.hpp"
#include "tests/support/httpd_fixture.hpp"
#include "tests/support/httpd_server.hpp"
#include "tests/support/integration_support.hpp"

namespace sessionkit::testing {
namespace {

namespace fs = std::filesystem;

class HttpdTest : public HttpdFixture, public ::testing::WithParamInterface<std::string> {
 protected:
  HttpdTest() : HttpdFixture("httpd") {}

  // Writes the sessionkit config and starts httpd with the MPM under test.
  void start(const std::string& store = "lmdb", const std::string& extra = "",
             std::vector<std::string> modules = {}, int wait_ms = 3000) {
    server_ = std::make_unique<HttpdServer>(
        dir_.path(), HttpdOptions{GetParam(), config_path(), true, std::move(modules), extra, "www-data"});
    write_config(session_config(server_->data_dir(), region_, store, wait_ms));
    ASSERT_TRUE(server_->start()) << server_->error_log();
  }

  // True once a request holds the lock of the session `cookie` ("sid=<id>")
  // names: its slot in the shm region, probed from this process.
  bool wait_until_locked(const std::string& cookie) {
    ShmLockOptions o;
    o.name = region_;  // and the default layout, as the config above
    ShmLockManager probe(o);
    const std::uint32_t slot = probe.slot_for(cookie.substr(cookie.find('=') + 1));
    return eventually(
        [&] {
          if (probe.try_lock(slot) == LockStatus::timed_out) return true;
          probe.unlock(slot);
          return false;
        },
        std::chrono::seconds(30), std::chrono::milliseconds(5));
  }

  // How many times httpd has (re)started so far, by its notice in the log.
  std::size_t generations() const {
    const std::string log = server_->error_log();
    std::size_t n = 0;
    for (std::size_t at = log.find("resuming normal operations"); at != std::string::npos;
         at = log.find("resuming normal operations", at + 1)) {
      ++n;
    }
    return n;
  }
  // Sends a graceful restart and waits until httpd says it is done.
  bool graceful_restart() {
    const std::size_t before = generations();
    server_->graceful_restart();
    return eventually([&] { return generations() != before; }, std::chrono::seconds(30));
  }
};

TEST_P(HttpdTest, CookieRoundTripAndBadCookies) {
  start();
  HttpClient client(port());
  std::string cookie;
  ASSERT_NO_FATAL_FAILURE(expect_session_created_and_found(
      client, "/demo", "", [&] { return server_->error_log(); }, &cookie));
  expect_bad_cookies_start_new_sessions(client, "/demo", cookie);
}

TEST_P(HttpdTest, RedirectsAndSubrequestsReuseTheSession) {
  start();
  HttpClient client(port());
  const std::string cookie = client.get("/demo").cookie();
  // Outer handler and redirected handler both increment the one locked session:
  // a second lock would wait 3 s and answer 503 (so the statuses and bodies
  // below show that none did, on a machine of any speed).
  HttpResponse redirected = client.get("/demo?redirect=/demo", cookie);
  EXPECT_EQ(redirected.status, 200) << server_->error_log();
  EXPECT_EQ(redirected.body, "3");
  HttpResponse sub = client.get("/demo?subreq=/demo", cookie);
  EXPECT_EQ(sub.status, 200) << server_->error_log();
  EXPECT_EQ(sub.body, "5 5");
  EXPECT_EQ(client.get("/demo", cookie).body, "6");
}

// The session is created by the example module (it counts "visits", not "n"),
// so the demo handler's counter starts at 0 and must end at exactly 16 x 200.
void no_lost_updates(int port) {
  HttpClient client(port);
  HttpResponse created = client.get("/visits");
  ASSERT_EQ(created.status, 200);
  const std::string cookie = created.cookie();
  EXPECT_EQ(hammer(port, "/demo", cookie, 16, 200), 3200);
  HttpResponse last = client.get("/demo", cookie);
  EXPECT_EQ(last.body, "3201");
}

const std::vector<std::string> kVisits = {"visits_module " SESSIONKIT_TEST_MOD_VISITS};
const std::string kVisitsLocation = "<Location /visits>\n  SetHandler visits\n</Location>\n";

// Every request must get the lock: sixteen queue for one session, and no
// lock is fair, so the wait is far above the 3 s of the other tests.
constexpr int kHammerWaitMs = 60'000;

TEST_P(HttpdTest, NoLostUpdatesWithLmdb) {
  start("lmdb", kVisitsLocation, kVisits, kHammerWaitMs);
  no_lost_updates(port());
}

// The file store under prefork (the MPM mod_python users ran).
class HttpdFileStoreTest : public HttpdTest {};

TEST_P(HttpdFileStoreTest, NoLostUpdates) {
  start("file", kVisitsLocation, kVisits, kHammerWaitMs);
  no_lost_updates(port());
}

TEST_P(HttpdFileStoreTest, StoreFailureIs500AndLogged) {
  start("file");
  HttpClient client(port());
  const std::string cookie = client.get("/demo").cookie();
  // The children run unprivileged: read-only store directories make saves fail.
  set_directory_modes(server_->data_dir() / "sessions", 0555);
  HttpResponse r = client.get("/demo", cookie);
  EXPECT_EQ(r.status, 500);
  EXPECT_EQ(r.body.find("sessionkit"), std::string::npos);  // the reason goes to the log, not the client
  set_directory_modes(server_->data_dir() / "sessions", 0700);
  EXPECT_NE(server_->error_log().find("sessionkit: "), std::string::npos);
  EXPECT_EQ(client.get("/demo", cookie).body, "2");
}

TEST_P(HttpdTest, LockDeadlineIs503WithRetryAfter) {
  start();
  HttpClient client(port());
  const std::string cookie = client.get("/demo").cookie();
  std::thread slow([&] {
    HttpClient c(port());
    EXPECT_EQ(c.get("/demo?sleep_ms=8000", cookie).body, "2");
  });
  // Held from now for 8 s: ample time for the next request to reach the lock
  // and wait out its 3 s there.
  ASSERT_TRUE(wait_until_locked(cookie)) << server_->error_log();
  const auto start = std::chrono::steady_clock::now();
  HttpResponse busy = client.get("/demo", cookie);
  const auto waited = std::chrono::steady_clock::now() - start;
  EXPECT_EQ(busy.status, 503);
  EXPECT_EQ(busy.header("retry-after"), "1");
  EXPECT_GE(waited, std::chrono::milliseconds(2900));  // locks.wait_ms = 3000
  slow.join();
  EXPECT_EQ(client.get("/demo", cookie).body, "3");
  EXPECT_NE(server_->error_log().find("still busy after 3000 ms"), std::string::npos);
}

std::size_t open_descriptors(pid_t pid) {
  std::size_t n = 0;
  for (const auto& e : fs::directory_iterator("/proc/" + std::to_string(pid) + "/fd")) {
    (void)e;
    ++n;
  }
  return n;
}

TEST_P(HttpdTest, LockRegionBelongsToTheChildrenAndSurvivesRestarts) {
  start();
  HttpClient client(port());
  const std::string cookie = client.get("/demo").cookie();
  struct stat st {};
  const std::string region = "/dev/shm/sessionkit-" + region_;
  ASSERT_EQ(stat(region.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0600u);
  if (geteuid() == 0) {
    EXPECT_EQ(st.st_uid, getpwnam("www-data")->pw_uid);
  }
  const std::size_t fds = open_descriptors(server_->pid());
  for (int i = 0; i < 3; ++i) {
    ASSERT_TRUE(graceful_restart()) << server_->error_log();
    ASSERT_EQ(client.get("/demo", cookie).status, 200) << server_->error_log();
  }
  EXPECT_EQ(open_descriptors(server_->pid()), fds);  // no descriptor leaks per restart
  ASSERT_EQ(stat(region.c_str(), &st), 0);           // the same region, still there
  EXPECT_EQ(client.get("/demo", cookie).body, "5");
}

TEST_P(HttpdTest, ExampleModuleLogsInAndOut) {
  start("lmdb", kVisitsLocation, kVisits);
  HttpClient client(port());
  HttpResponse guest = client.get("/visits");
  EXPECT_EQ(guest.body, "guest: 1 visits\n");
  const std::string guest_cookie = guest.cookie();
  HttpResponse login = client.get("/visits?login=ada", guest_cookie);
  EXPECT_EQ(login.body, "ada: 2 visits\n");
  const std::string ada_cookie = login.cookie();
  ASSERT_FALSE(ada_cookie.empty());  // a new id after login
  EXPECT_NE(ada_cookie, guest_cookie);
  EXPECT_EQ(client.get("/visits", guest_cookie).body, "guest: 1 visits\n");  // the old id is dead
  EXPECT_EQ(client.get("/visits", ada_cookie).body, "ada: 3 visits\n");
  HttpResponse logout = client.get("/visits?logout", ada_cookie);
  EXPECT_EQ(logout.body, "bye\n");
  EXPECT_NE(logout.header("set-cookie").find("sid=; Path=/; Max-Age=0"), std::string::npos)
      << logout.header("set-cookie");
  EXPECT_EQ(client.get("/visits", ada_cookie).body, "guest: 1 visits\n");
}

TEST_P(HttpdTest, KilledLockHolderDoesNotHangTheSession) {
  start();
  HttpClient client(port());
  const std::string cookie = client.get("/demo").cookie();
  std::thread slow([&] {
    HttpClient c(port());
    c.get("/demo?sleep_ms=20000", cookie);  // dies with its child
  });
  ASSERT_TRUE(wait_until_locked(cookie)) << server_->error_log();
  for (pid_t child : server_->children()) kill(child, SIGKILL);  // the holder among them
  slow.join();
  const auto start = std::chrono::steady_clock::now();
  HttpResponse next;
  for (int i = 0; i < 50 && next.status != 200; ++i) {
    HttpClient c(port());
    next = c.get("/demo", cookie);
    if (next.status != 200) std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  EXPECT_EQ(next.status, 200) << server_->error_log();
  EXPECT_TRUE(next.header("set-cookie").empty());
  EXPECT_EQ(next.body, "2");  // the killed request never saved
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(8));
}

TEST_P(HttpdTest, GracefulRestartKeepsSessions) {
  start();
  HttpClient first(port());
  const std::string cookie = first.get("/demo").cookie();
  std::atomic<bool> stop{false};
  std::atomic<int> ok{0};
  std::atomic<int> reset{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      HttpClient c(port());
      while (!stop.load()) {
        HttpResponse r = c.get("/demo", cookie);
        if (r.status == 200) ok.fetch_add(1);
        if (!r.header("set-cookie").empty()) reset.fetch_add(1);
      }
    });
  }
  // Requests flow before the restart, during it, and after it is done.
  auto wait_for_ok = [&](int n) {
    eventually([&] { return ok.load() >= n; }, std::chrono::seconds(30), std::chrono::milliseconds(10));
  };
  wait_for_ok(20);
  EXPECT_TRUE(graceful_restart()) << server_->error_log();
  wait_for_ok(ok.load() + 20);
  stop.store(true);
  for (auto& t : threads) t.join();
  EXPECT_EQ(reset.load(), 0);  // never a new session
  HttpClient after(port());
  HttpResponse r = after.get("/demo", cookie);
  ASSERT_EQ(r.status, 200) << server_->error_log();
  // Every answered request counted; one may have been processed but its answer lost in the restart.
  const int n = std::stoi(r.body);
  EXPECT_GE(n, ok.load() + 2);
  EXPECT_LE(n, ok.load() + 2 + 4);
  EXPECT_GT(ok.load(), 0);
}

TEST_P(HttpdTest, BadConfigStopsHttpdNamingFileAndKey) {
  server_ = std::make_unique<HttpdServer>(dir_.path(),
                                          HttpdOptions{GetParam(), config_path(), true, {}, "", "www-data"});
  std::ofstream(config_path())
      << R"({"store": {"type": "lmdb", "path": "x.mdb"}, "cookie": {"same_site": "lax"}})";
  EXPECT_FALSE(server_->start());
  const std::string log = server_->error_log();
  EXPECT_NE(log.find(config_path() + ": cookie.same_site"), std::string::npos) << log;
}

INSTANTIATE_TEST_SUITE_P(Mpm, HttpdFileStoreTest, ::testing::Values("prefork"),
                         [](const ::testing::TestParamInfo<std::string>& p) { return p.param; });
INSTANTIATE_TEST_SUITE_P(Mpm, HttpdTest, ::testing::Values("prefork", "event"),
                         [](const ::testing::TestParamInfo<std::string>& p) { return p.param; });

}  // namespace
}  // namespace sessionkit::testing

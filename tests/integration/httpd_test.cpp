// mod_sessionkit inside a real Apache httpd, under the prefork, worker and event MPMs.
#include <gtest/gtest.h>

#include <pwd.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <fstream>
#include <thread>

#include "cookie_signer.hpp"
#include "locks/shm_lock_manager.hpp"
#include "session_id.hpp"
#include "tests/support/http_client.hpp"
#include "tests/support/httpd_fixture.hpp"
#include "tests/support/httpd_server.hpp"
#include "tests/support/integration_support.hpp"

namespace sessionkit::testing {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

class HttpdTest : public HttpdFixture, public ::testing::WithParamInterface<std::string> {
 protected:
  HttpdTest() : HttpdFixture("httpd") {}

  // Writes the sessionkit config and starts httpd with the MPM under test.
  void start(const std::string& store = "lmdb", const std::string& extra = "",
             std::vector<std::string> modules = {}, int wait_ms = 3000) {
    server_ = std::make_unique<HttpdServer>(
        dir_.path(), HttpdOptions{GetParam(), config_path(), true, std::move(modules), extra, "www-data"});
    nlohmann::json config = session_config(server_->data_dir(), region_, store, wait_ms);
    config.merge_patch(config_patch_);
    write_config(config);
    start_server();
  }

  // Starts server_ and checks that it runs the MPM under test (httpd loads
  // exactly one).
  void start_server() {
    ASSERT_TRUE(server_->start()) << server_->error_log();
    const std::string maps = read_file("/proc/" + std::to_string(server_->pid()) + "/maps");
    ASSERT_NE(maps.find("/mod_mpm_" + GetParam() + ".so"), std::string::npos) << maps;
  }

  // The pid the demo handler logs when ?sleep_ms=N holds a session's lock
  // (the most recent one), or -1 before any did.
  pid_t lock_holder() const {
    const std::string log = server_->error_log();
    const std::string mark = "sessionkit: test hook: pid ";
    const std::size_t at = log.rfind(mark);
    return at == std::string::npos ? -1 : static_cast<pid_t>(std::stol(log.substr(at + mark.size())));
  }

  // True once a request holds the lock of the session `cookie` ("sid=<id>",
  // or "sid=<id>.<signature>") names: its slot in the shm region, probed from
  // this process.
  bool wait_until_locked(const std::string& cookie) {
    ShmLockOptions o;
    o.name = region_;  // and the default layout, as the config above
    ShmLockManager probe(o);
    const std::string value = cookie.substr(cookie.find('=') + 1);
    const std::uint32_t slot = probe.slot_for(value.substr(0, value.find('.')));
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

  // Merged (RFC 7386) into the session_config() that start() writes.
  nlohmann::json config_patch_ = nlohmann::json::object();
};

TEST_P(HttpdTest, CookieRoundTripAndBadCookies) {
  ASSERT_NO_FATAL_FAILURE(start());
  HttpClient client(port());
  std::string cookie;
  ASSERT_NO_FATAL_FAILURE(expect_session_created_and_found(
      client, "/demo", "", [&] { return server_->error_log(); }, &cookie));
  expect_bad_cookies_start_new_sessions(client, "/demo", cookie);
}

TEST_P(HttpdTest, RedirectsAndSubrequestsReuseTheSession) {
  ASSERT_NO_FATAL_FAILURE(start());
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
  ASSERT_NO_FATAL_FAILURE(start("lmdb", kVisitsLocation, kVisits, kHammerWaitMs));
  no_lost_updates(port());
}

// The file store under prefork (the MPM mod_python users ran).
class HttpdFileStoreTest : public HttpdTest {};

TEST_P(HttpdFileStoreTest, NoLostUpdates) {
  ASSERT_NO_FATAL_FAILURE(start("file", kVisitsLocation, kVisits, kHammerWaitMs));
  no_lost_updates(port());
}

TEST_P(HttpdFileStoreTest, StoreFailureIs500AndLogged) {
  ASSERT_NO_FATAL_FAILURE(start("file"));
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
  ASSERT_NO_FATAL_FAILURE(start());
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
  ASSERT_NO_FATAL_FAILURE(start());
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
  ASSERT_NO_FATAL_FAILURE(start("lmdb", kVisitsLocation, kVisits));
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

// The child holding a session's lock is SIGKILLed (that one only): the very
// next request for the session gets the lock at once (robust mutex, not the
// deadline) and continues from the last saved count.
TEST_P(HttpdTest, KilledLockHolderDoesNotHangTheSession) {
  // Far above any stall here: a request that got the lock only at its
  // deadline would take 10 s and answer 503.
  constexpr int kWaitMs = 10'000;
  ASSERT_NO_FATAL_FAILURE(start("lmdb", "", {}, kWaitMs));
  HttpClient client(port());
  const std::string cookie = client.get("/demo").cookie();
  ASSERT_EQ(client.get("/demo", cookie).body, "2");  // the last saved value
  HttpResponse killed;
  std::jthread slow([&] {
    HttpClient c(port());
    killed = c.get("/demo?sleep_ms=20000", cookie);  // dies with its child
  });
  ASSERT_TRUE(eventually([&] { return lock_holder() > 0; }, std::chrono::seconds(30)))
      << server_->error_log();
  const pid_t holder = lock_holder();
  ASSERT_TRUE(wait_until_locked(cookie)) << server_->error_log();
  const std::vector<pid_t> children = server_->children();
  ASSERT_NE(std::find(children.begin(), children.end(), holder), children.end())
      << "pid " << holder << " is not a child of httpd";
  ASSERT_EQ(kill(holder, SIGKILL), 0);
  slow.join();
  EXPECT_EQ(killed.status, 0);  // no answer: its process is gone, and it never saved

  HttpClient next_client(port());  // `client`'s connection may have been the killed child's
  const auto start = Clock::now();
  HttpResponse next = next_client.get("/demo", cookie);
  const auto elapsed = Clock::now() - start;
  EXPECT_EQ(next.status, 200) << server_->error_log();
  EXPECT_TRUE(next.header("set-cookie").empty());
  EXPECT_EQ(next.body, "3");
  EXPECT_LT(elapsed, std::chrono::milliseconds(kWaitMs / 2));  // well within locks.wait_ms
  EXPECT_EQ(next_client.get("/demo", cookie).body, "4");       // and the slot keeps working
}

TEST_P(HttpdTest, GracefulRestartKeepsSessions) {
  ASSERT_NO_FATAL_FAILURE(start());
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

// 32 random bytes, padded base64 (openssl rand -base64 32): the signed-cookie test's key.
constexpr const char* kSigningKey = "5OwPckSqlMEL1ONC9e+MIs2yTkxvkXKaL3rep4sqEWM=";

// With cookie.signing_keys the cookie is "sid=<id>.<signature>"
// (core/src/cookie_signer.hpp). A known id whose signature was altered gets a
// new session and a new cookie, and the session it names is neither destroyed
// nor advanced; so do the bare id and a correctly signed id never issued.
TEST_P(HttpdTest, AlteredSignatureOnAKnownIdGetsANewSession) {
  config_patch_ = {{"cookie", {{"signing_keys", {kSigningKey}}}}};
  ASSERT_NO_FATAL_FAILURE(start());
  HttpClient client(port());
  std::string cookie;
  ASSERT_NO_FATAL_FAILURE(expect_session_created_and_found(
      client, "/demo", "", [&] { return server_->error_log(); }, &cookie));
  constexpr std::size_t kSignatureLength = 43;  // base64url of an HMAC-SHA256
  ASSERT_EQ(cookie.size(), 4 + detail::kIdLength + 1 + kSignatureLength) << cookie;
  ASSERT_EQ(cookie[4 + detail::kIdLength], '.') << cookie;
  const std::string id = cookie.substr(4, detail::kIdLength);
  std::string raw_key;
  ASSERT_TRUE(detail::base64_decode(kSigningKey, raw_key));
  const detail::CookieSigner signer({raw_key});
  ASSERT_EQ("sid=" + signer.encode(id), cookie);  // signed with the configured key

  // Fresh session `bad` got: counter 1, a signed cookie for another id, which
  // then finds that new session.
  auto expect_new_session = [&](const std::string& bad) {
    HttpResponse r = client.get("/demo", bad);
    EXPECT_EQ(r.status, 200) << bad;
    EXPECT_EQ(r.body, "1") << bad;
    expect_new_session_cookie(r.header("set-cookie"));
    const std::string fresh = r.cookie();
    EXPECT_EQ(fresh.size(), cookie.size()) << fresh;
    EXPECT_NE(fresh.substr(4, detail::kIdLength), id) << bad;
    EXPECT_EQ(client.get("/demo", fresh).body, "2") << fresh;
  };

  std::string forged = cookie;
  char& flipped = forged[4 + detail::kIdLength + 1 + kSignatureLength / 2];  // mid-signature
  flipped = flipped == 'A' ? 'B' : 'A';
  expect_new_session(forged);
  EXPECT_EQ(client.get("/demo", cookie).body, "3");  // the real session survived the forgery

  expect_new_session("sid=" + id);                                            // unsigned
  expect_new_session("sid=" + signer.encode(detail::generate_session_id()));  // never issued
  EXPECT_EQ(client.get("/demo", cookie).body, "4");
}

// "secure": "auto" (the default): mod_sessionkit asks mod_ssl whether the
// connection is HTTPS, and the cookie carries Secure there and not over plain
// HTTP, on one server and one store.
TEST_P(HttpdTest, SecureAttributeFollowsTheConnection) {
  HttpdOptions options{GetParam(), config_path(), true, {}, "", "www-data"};
  options.virtual_hosts = {{"", "", /*tls=*/true}};
  server_ = std::make_unique<HttpdServer>(dir_.path(), std::move(options));
  nlohmann::json config = session_config(server_->data_dir(), region_, "lmdb", 3000);
  ASSERT_FALSE(config["cookie"].contains("secure"));  // the default, "auto"
  write_config(config);
  ASSERT_NO_FATAL_FAILURE(start_server());

  HttpClient https(server_->virtual_host_port(0), 30000, server_->certificate_path().string());
  HttpClient http(port());

  HttpResponse over_tls = https.get("/demo");
  ASSERT_EQ(over_tls.status, 200) << server_->error_log();
  EXPECT_EQ(over_tls.body, "1");
  EXPECT_EQ(over_tls.header("set-cookie"),
            over_tls.cookie() + "; Path=/; Max-Age=3600; Secure; HttpOnly; SameSite=Strict");

  HttpResponse plain = http.get("/demo");
  ASSERT_EQ(plain.status, 200) << server_->error_log();
  EXPECT_EQ(plain.body, "1");
  EXPECT_EQ(plain.header("set-cookie"), plain.cookie() + "; Path=/; Max-Age=3600; HttpOnly; SameSite=Strict");

  // Each session continues, over its own kind of connection.
  HttpResponse again = https.get("/demo", over_tls.cookie());
  EXPECT_EQ(again.body, "2");
  EXPECT_EQ(again.header("set-cookie"), "");
  EXPECT_EQ(http.get("/demo", plain.cookie()).body, "2");

  // The virtual host really is TLS-only: plain HTTP to it is refused by mod_ssl.
  EXPECT_EQ(HttpClient(server_->virtual_host_port(0)).get("/demo").status, 400);
}

// The main server's SessionKitConfig, a virtual host with its own (another
// cookie name, store file and lock region) and one without (it inherits the
// main server's), each on a port of its own.
TEST_P(HttpdTest, VirtualHostWithItsOwnConfigKeepsItsOwnSessions) {
  const std::string vhost_config = (dir_ / "vhost.json").string();
  HttpdOptions options{GetParam(), config_path(), true, {}, "", "www-data"};
  options.virtual_hosts = {{vhost_config, ""}, {"", ""}};
  server_ = std::make_unique<HttpdServer>(dir_.path(), std::move(options));
  const fs::path main_store = server_->data_dir() / "sessions.mdb";
  const fs::path vhost_store = server_->data_dir() / "vhost.mdb";
  const std::string vhost_region = another_region("httpd-vhost");
  nlohmann::json main_config = session_config(server_->data_dir(), region_, "lmdb", 3000);
  ASSERT_EQ(main_config["store"]["path"], main_store.string());
  write_config(main_config);
  nlohmann::json own = session_config(server_->data_dir(), vhost_region, "lmdb", 3000);
  own["store"]["path"] = vhost_store.string();
  own["cookie"]["name"] = "vsid";
  std::ofstream(vhost_config) << own.dump(2);
  ASSERT_NO_FATAL_FAILURE(start_server());

  HttpClient main_host(port());
  HttpClient own_host(server_->virtual_host_port(0));
  HttpClient inheriting_host(server_->virtual_host_port(1));
  // `cookie` continues a session at `host`: 200, `count`, no Set-Cookie.
  auto expect_count = [&](HttpClient& host, const std::string& cookie, const std::string& count) {
    HttpResponse r = host.get("/demo", cookie);
    EXPECT_EQ(r.status, 200) << server_->error_log();
    EXPECT_EQ(r.body, count) << cookie;
    EXPECT_TRUE(r.header("set-cookie").empty()) << cookie << ": " << r.header("set-cookie");
  };
  // `cookie` starts a new session at `host`: counter 1 and a `name` cookie for
  // another id than `not_id`. Returns that cookie.
  auto expect_new = [&](HttpClient& host, const std::string& cookie, const std::string& name,
                        const std::string& not_id) {
    HttpResponse r = host.get("/demo", cookie);
    EXPECT_EQ(r.status, 200) << server_->error_log();
    EXPECT_EQ(r.body, "1") << cookie;
    EXPECT_EQ(r.cookie().substr(0, name.size() + 1), name + "=") << r.header("set-cookie");
    EXPECT_NE(r.cookie(), name + "=" + not_id);
    return r.cookie();
  };

  const std::string a = expect_new(main_host, "", "sid", "");
  const std::string b = expect_new(own_host, "", "vsid", "");
  ASSERT_FALSE(a.empty());
  ASSERT_FALSE(b.empty());
  const std::string a_id = a.substr(4);
  const std::string b_id = b.substr(5);
  expect_count(main_host, a, "2");
  expect_count(own_host, b, "2");

  // A's id means nothing at B, under A's cookie name or B's, nor B's at A:
  // separate stores, so each starts a new session.
  expect_new(own_host, a, "vsid", a_id);
  expect_new(own_host, "vsid=" + a_id, "vsid", a_id);
  expect_new(main_host, "sid=" + b_id, "sid", b_id);

  // A browser sends both cookies to both ports: each host picks its own (and
  // "vsid=" first is no "sid=" to the main host).
  const std::string both = b + "; " + a;
  expect_count(main_host, both, "3");
  expect_count(own_host, both, "3");
  // The host without a SessionKitConfig of its own shares the main server's sessions.
  expect_count(inheriting_host, both, "4");
  expect_new(inheriting_host, "sid=" + b_id, "sid", b_id);
  expect_count(main_host, a, "5");

  EXPECT_TRUE(fs::is_regular_file(main_store)) << main_store;
  EXPECT_TRUE(fs::is_regular_file(vhost_store)) << vhost_store;
  EXPECT_TRUE(fs::exists("/dev/shm/sessionkit-" + region_));
  EXPECT_TRUE(fs::exists("/dev/shm/sessionkit-" + vhost_region));
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

// A store directory httpd's User cannot write: httpd does not start, and says
// which config, which User and what failed; nothing is created there. Once
// the directory is the User's, the same config starts and serves.
TEST_P(HttpdTest, StoreHttpdsUserCannotOpenStopsHttpd) {
  if (geteuid() != 0)
    GTEST_SKIP() << "needs root: httpd's children run as www-data only when it starts as root";
  server_ = std::make_unique<HttpdServer>(dir_.path(),
                                          HttpdOptions{GetParam(), config_path(), true, {}, "", "www-data"});
  const fs::path closed = dir_.path() / "root-only";
  fs::create_directories(closed);
  fs::permissions(closed, fs::perms::owner_all | fs::perms::group_exec | fs::perms::others_exec);
  nlohmann::json config = session_config(server_->data_dir(), region_, "lmdb", 3000);
  config["store"]["path"] = (closed / "sessions.mdb").string();
  write_config(config);
  ASSERT_FALSE(server_->start());  // (a server that started is stopped by the fixture)
  const std::string log = server_->error_log();
  EXPECT_NE(log.find("sessionkit: SessionKitConfig " + config_path() +
                     ": store: httpd's User \"www-data\" cannot open it: lmdb open " +
                     (closed / "sessions.mdb").string() + ": Permission denied"),
            std::string::npos)
      << log;
  EXPECT_TRUE(fs::is_empty(closed));

  passwd* www = getpwnam("www-data");
  ASSERT_NE(www, nullptr);
  ASSERT_EQ(chown(closed.c_str(), www->pw_uid, www->pw_gid), 0);
  ASSERT_NO_FATAL_FAILURE(start_server());
  HttpClient client(port());
  HttpResponse r = client.get("/demo");
  EXPECT_EQ(r.status, 200) << server_->error_log();
  EXPECT_EQ(r.body, "1");
  struct stat st {};
  ASSERT_EQ(stat((closed / "sessions.mdb").c_str(), &st), 0);
  EXPECT_EQ(st.st_uid, www->pw_uid);  // created by the check, as the User
}

INSTANTIATE_TEST_SUITE_P(Mpm, HttpdFileStoreTest, ::testing::Values("prefork"),
                         [](const ::testing::TestParamInfo<std::string>& p) { return p.param; });
INSTANTIATE_TEST_SUITE_P(Mpm, HttpdTest, ::testing::Values("prefork", "worker", "event"),
                         [](const ::testing::TestParamInfo<std::string>& p) { return p.param; });

}  // namespace
}  // namespace sessionkit::testing

// sessionkit-fcgi-demo behind a real Apache httpd (mod_proxy_fcgi), and one
// configuration shared by mod_sessionkit, the FastCGI worker and the CGI
// program. The worker runs as httpd's User (www-data) when the tests run as
// root, as it would in production, so that the LMDB files and the lock region
// are usable by all three.
#include <gtest/gtest.h>

#include <fcgiapp.h>
#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <fstream>
#include <thread>

#include <nlohmann/json.hpp>

#include "sessionkit/fastcgi.hpp"
#include "tests/support/http_client.hpp"
#include "tests/support/httpd_fixture.hpp"
#include "tests/support/httpd_server.hpp"
#include "tests/support/integration_support.hpp"
#include "tests/support/test_support.hpp"

namespace sessionkit::testing {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

// sessionkit-fcgi-demo as a process of its own (its own process group), as
// www-data when the test runs as root; its stderr goes to `log`.
class FcgiWorker {
 public:
  FcgiWorker(fs::path program, fs::path log) : program_(std::move(program)), log_(std::move(log)) {}
  ~FcgiWorker() { kill_all(); }
  FcgiWorker(const FcgiWorker&) = delete;
  FcgiWorker& operator=(const FcgiWorker&) = delete;

  void start(const std::vector<std::string>& args) {
    kill_all();
    std::vector<std::string> storage{program_.string()};
    storage.insert(storage.end(), args.begin(), args.end());
    std::vector<char*> argv;
    for (std::string& a : storage) argv.push_back(a.data());
    argv.push_back(nullptr);
    uid_t uid = 0;
    gid_t gid = 0;
    const bool drop = geteuid() == 0;
    if (drop) {
      passwd* pw = getpwnam("www-data");
      ASSERT_NE(pw, nullptr);
      uid = pw->pw_uid;
      gid = pw->pw_gid;
    }
    const int fd = ::open(log_.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    ASSERT_GE(fd, 0);
    std::fflush(nullptr);
    pid_ = fork();
    ASSERT_GE(pid_, 0);
    if (pid_ == 0) {
      setpgid(0, 0);
      dup2(fd, STDOUT_FILENO);
      dup2(fd, STDERR_FILENO);
      sigset_t none;
      sigemptyset(&none);
      sigprocmask(SIG_SETMASK, &none, nullptr);
      if (drop && (setgroups(0, nullptr) != 0 || setgid(gid) != 0 || setuid(uid) != 0)) _exit(126);
      execv(program_.c_str(), argv.data());
      _exit(127);
    }
    ::close(fd);
  }

  // SIGTERM to the parent; its exit status (128 + signal when killed), or -1
  // when it is still running after `limit` (then it is killed).
  int stop(std::chrono::milliseconds limit = std::chrono::seconds(20)) {
    if (pid_ <= 0) return -1;
    ::kill(pid_, SIGTERM);
    int status = 0;
    const bool exited = eventually([&] { return waitpid(pid_, &status, WNOHANG) == pid_; }, limit);
    if (!exited) {
      kill_all();
      return -1;
    }
    pid_ = -1;
    if (WIFEXITED(status)) return WEXITSTATUS(status);
    return WIFSIGNALED(status) ? 128 + WTERMSIG(status) : -1;
  }

  // Waits for the process to exit by itself (start-up refusals).
  int wait_exit() {
    const int rc = wait_child(pid_);
    pid_ = -1;
    return rc;
  }

  void kill_all() {
    if (pid_ <= 0) return;
    ::kill(-pid_, SIGKILL);
    waitpid(pid_, nullptr, 0);
    pid_ = -1;
  }

  pid_t pid() const { return pid_; }
  std::vector<pid_t> workers() const { return pid_ > 0 ? children_of(pid_) : std::vector<pid_t>{}; }
  std::string log() const { return read_file(log_); }

  // The pid of the worker that logged the most recent "holding the session lock"
  // ("sessionkit-fcgi-demo[PID]: test hook: holding the session lock ...").
  pid_t lock_holder() const {
    const std::string text = log();
    const std::size_t at = text.rfind("]: test hook: holding the session lock");
    if (at == std::string::npos) return -1;
    const std::size_t open = text.rfind('[', at);
    return open == std::string::npos ? -1
                                     : static_cast<pid_t>(std::stoi(text.substr(open + 1, at - open - 1)));
  }

 private:
  fs::path program_;
  fs::path log_;
  pid_t pid_ = -1;
};

class FastCgiTest : public HttpdFixture {
 protected:
  FastCgiTest() : HttpdFixture("fcgi") {}

  // Starts httpd (event MPM) proxying /fcgi/ to a worker on a free port, then
  // the worker with `workers` processes x `threads` threads.
  void start(int workers, int threads, const std::string& store = "lmdb", int wait_ms = 5000,
             const std::string& extra = "") {
    fcgi_port_ = free_port();
    const std::string proxy = "ProxyPass /fcgi/ fcgi://127.0.0.1:" + std::to_string(fcgi_port_) +
                              "/ retry=0\n" + "<Location /fcgi/secure/>\n  SetEnv HTTPS on\n</Location>\n" +
                              extra;
    std::vector<std::string> modules = {apache_module("proxy"), apache_module("proxy_fcgi"),
                                        apache_module("env")};
    if (with_cgi_) {
      modules.push_back(apache_module("alias"));
      modules.push_back(apache_module("cgid"));
    }
    server_ = std::make_unique<HttpdServer>(
        dir_.path(), HttpdOptions{"event", with_cgi_ ? config_path() : "", true, modules, proxy, "www-data"});
    write_config(session_config(server_->data_dir(), region_, store, wait_ms));
    ASSERT_TRUE(server_->start()) << server_->error_log();
    worker_ = std::make_unique<FcgiWorker>(install_program(SESSIONKIT_TEST_FCGI_DEMO, dir_ / "bin"),
                                           dir_ / "worker.log");
    start_worker(workers, threads);
  }

  void start_worker(int workers, int threads) {
    worker_->start({"--config", config_path(), "--socket", "127.0.0.1:" + std::to_string(fcgi_port_),
                    "--workers", std::to_string(workers), "--threads", std::to_string(threads),
                    "--test-hooks"});
    // Through httpd, as a client would see it: 503 until the worker listens.
    HttpClient client(port());
    ASSERT_TRUE(eventually([&] { return client.get("/fcgi/hello").status == 200; }, std::chrono::seconds(15)))
        << worker_->log() << server_->error_log();
    ASSERT_TRUE(eventually([&] { return worker_->workers().size() == static_cast<std::size_t>(workers); },
                           std::chrono::seconds(30)));
  }

  void TearDown() override {
    if (worker_) {
      const std::string log = worker_->log();
      worker_->kill_all();
      expect_no_sanitizer_report(log);
    }
    HttpdFixture::TearDown();
  }

  bool with_cgi_ = false;  // also mod_cgid, and mod_sessionkit configured
  int fcgi_port_ = 0;
  std::unique_ptr<FcgiWorker> worker_;
};

TEST_F(FastCgiTest, CookieRoundTripHelloAndBadCookies) {
  ASSERT_NO_FATAL_FAILURE(start(2, 2));
  HttpClient client(port());
  HttpResponse hello = client.get("/fcgi/hello");
  EXPECT_EQ(hello.status, 200);
  EXPECT_EQ(hello.body, "hello");
  EXPECT_TRUE(hello.header("set-cookie").empty());

  std::string cookie;
  ASSERT_NO_FATAL_FAILURE(expect_session_created_and_found(
      client, "/fcgi/demo", "?x=1", [&] { return worker_->log() + server_->error_log(); }, &cookie));
  expect_bad_cookies_start_new_sessions(client, "/fcgi/demo", cookie);

  // HTTPS=on among the FastCGI params (SetEnv here; mod_ssl in production): Secure.
  HttpResponse secure = client.get("/fcgi/secure/demo");
  EXPECT_EQ(secure.body, "1");
  EXPECT_NE(secure.header("set-cookie").find("; Secure"), std::string::npos) << secure.header("set-cookie");
}

// 16 connections x 200 requests on one session, 4 worker processes x 4
// threads: every increment lands.
TEST_F(FastCgiTest, NoLostUpdatesAcrossWorkerProcesses) {
  ASSERT_NO_FATAL_FAILURE(start(4, 4));
  HttpClient client(port());
  HttpResponse created = client.get("/fcgi/demo");
  ASSERT_EQ(created.body, "1");
  const std::string cookie = created.cookie();
  EXPECT_EQ(hammer(port(), "/fcgi/demo", cookie, 16, 200), 3200) << server_->error_log();
  EXPECT_EQ(client.get("/fcgi/demo", cookie).body, "3202");
  EXPECT_EQ(worker_->workers().size(), 4u);  // none died on the way
}

TEST_F(FastCgiTest, LockDeadlineIs503WithRetryAfter) {
  ASSERT_NO_FATAL_FAILURE(start(2, 2, "lmdb", 1000));
  HttpClient client(port());
  const std::string cookie = client.get("/fcgi/demo").cookie();
  std::thread slow([&] {
    HttpClient c(port());
    EXPECT_EQ(c.get("/fcgi/demo?sleep_ms=5000", cookie).body, "2");
  });
  ASSERT_TRUE(eventually([&] { return worker_->lock_holder() > 0; }, std::chrono::seconds(30)));
  const auto start = Clock::now();
  HttpResponse busy = client.get("/fcgi/demo", cookie);
  const auto waited = Clock::now() - start;
  EXPECT_EQ(busy.status, 503);
  EXPECT_EQ(busy.header("retry-after"), "1");
  EXPECT_EQ(busy.body.find("sessionkit"), std::string::npos) << busy.body;  // the reason goes to the log
  EXPECT_GE(waited, std::chrono::milliseconds(950));                        // locks.wait_ms = 1000
  slow.join();
  EXPECT_EQ(client.get("/fcgi/demo", cookie).body, "3");
  // request.err reaches httpd's error log through mod_proxy_fcgi.
  EXPECT_NE(server_->error_log().find("sessionkit: session lock slot"), std::string::npos)
      << server_->error_log();
}

TEST_F(FastCgiTest, StoreFailureIs500AndLogged) {
  ASSERT_NO_FATAL_FAILURE(start(1, 2, "file"));
  HttpClient client(port());
  const std::string cookie = client.get("/fcgi/demo").cookie();
  // The worker runs unprivileged: read-only store directories make saves fail.
  set_directory_modes(server_->data_dir() / "sessions", 0555);
  HttpResponse r = client.get("/fcgi/demo", cookie);
  set_directory_modes(server_->data_dir() / "sessions", 0700);
  EXPECT_EQ(r.status, 500);
  EXPECT_TRUE(r.header("retry-after").empty());
  EXPECT_EQ(r.body, "500 Internal Server Error\n");
  EXPECT_NE(server_->error_log().find("Got error 'sessionkit: "), std::string::npos) << server_->error_log();
  EXPECT_EQ(client.get("/fcgi/demo", cookie).body, "2");
}

// A worker killed while it holds a session's lock: other sessions are served
// meanwhile, the next request for that session gets the lock at once (robust
// mutex, not the deadline), and the parent starts a replacement.
TEST_F(FastCgiTest, KilledLockHolderDoesNotHangTheSession) {
  // A wait far longer than any stall here: a request that got the lock only
  // at its deadline would take 15 s (and answer 503), one served at once not.
  ASSERT_NO_FATAL_FAILURE(start(4, 2, "lmdb", 15'000));
  HttpClient client(port());
  const std::string cookie = client.get("/fcgi/demo").cookie();
  std::thread slow([&] {
    HttpClient c(port());
    c.get("/fcgi/demo?sleep_ms=20000", cookie);  // dies with its worker
  });
  ASSERT_TRUE(eventually([&] { return worker_->lock_holder() > 0; }, std::chrono::seconds(30)));
  const pid_t holder = worker_->lock_holder();
  {
    HttpClient other(port());
    const auto start = Clock::now();
    EXPECT_EQ(other.get("/fcgi/demo").body, "1");  // another session, while the lock is held
    // Not queued behind the 20 s request.
    EXPECT_LT(Clock::now() - start, std::chrono::seconds(10));
  }
  ASSERT_EQ(::kill(holder, SIGKILL), 0);
  slow.join();
  const auto start = Clock::now();
  HttpResponse next = client.get("/fcgi/demo", cookie);
  EXPECT_EQ(next.status, 200) << worker_->log() << server_->error_log();
  EXPECT_TRUE(next.header("set-cookie").empty());
  EXPECT_EQ(next.body, "2");  // the killed request never saved
  // At once (robust mutex), well inside locks.wait_ms.
  EXPECT_LT(Clock::now() - start, std::chrono::seconds(10));
  EXPECT_TRUE(eventually(
      [&] {
        std::vector<pid_t> now = worker_->workers();
        return now.size() == 4 && std::find(now.begin(), now.end(), holder) == now.end();
      },
      std::chrono::seconds(30)));
  EXPECT_NE(worker_->log().find("(pid " + std::to_string(holder) + ") was killed by signal 9"),
            std::string::npos)
      << worker_->log();
  EXPECT_EQ(client.get("/fcgi/demo", cookie).body, "3");
}

// SIGTERM to the parent: the request in flight completes with 200 and its
// session is saved, then every process exits and the parent's status is 0.
TEST_F(FastCgiTest, SigtermDrainsInFlightRequests) {
  ASSERT_NO_FATAL_FAILURE(start(2, 2));
  HttpClient client(port());
  const std::string cookie = client.get("/fcgi/demo").cookie();
  HttpResponse slow_answer;
  std::thread slow([&] {
    HttpClient c(port());
    slow_answer = c.get("/fcgi/demo?sleep_ms=3000", cookie);
  });
  ASSERT_TRUE(eventually([&] { return worker_->lock_holder() > 0; }, std::chrono::seconds(30)));
  const std::vector<pid_t> workers = worker_->workers();
  const auto start = Clock::now();
  EXPECT_EQ(worker_->stop(), 0) << worker_->log();
  slow.join();
  EXPECT_GE(Clock::now() - start, std::chrono::milliseconds(1000));  // it waited for the request
  EXPECT_EQ(slow_answer.status, 200) << worker_->log() << server_->error_log();
  EXPECT_EQ(slow_answer.body, "2");
  for (pid_t w : workers) EXPECT_NE(::kill(w, 0), 0) << "worker " << w << " outlived the parent";
  EXPECT_NE(worker_->log().find("SIGTERM: stopping 2 workers"), std::string::npos) << worker_->log();
  EXPECT_EQ(client.get("/fcgi/hello").status, 503);  // nobody listens any more

  ASSERT_NO_FATAL_FAILURE(start_worker(2, 2));
  EXPECT_EQ(client.get("/fcgi/demo", cookie).body, "3");  // the drained request's save is there
}

TEST_F(FastCgiTest, RefusesProcessLocalConfigurationsWithSeveralWorkers) {
  fs::permissions(dir_.path(), fs::perms::owner_all | fs::perms::others_exec);  // www-data reads the config
  const fs::path program = install_program(SESSIONKIT_TEST_FCGI_DEMO, dir_ / "bin");
  for (const auto& [doc, message] : std::vector<std::pair<nlohmann::json, std::string>>{
           {{{"store", {{"type", "memory"}}}},
            "store.type: the \"memory\" store lives in one process, but --workers 2 runs 2 worker processes"},
           {{{"store", {{"type", "lmdb"}, {"path", (dir_ / "s.mdb").string()}}},
             {"locks", {{"type", "thread"}}}},
            "locks.type: \"thread\" locks exclude threads of one process only"}}) {
    std::ofstream(config_path()) << doc.dump();
    const fs::path log = dir_ / "refused.log";
    fs::remove(log);
    FcgiWorker worker(program, log);
    worker.start({"--config", config_path(), "--socket", "127.0.0.1:" + std::to_string(free_port()),
                  "--workers", "2"});
    EXPECT_EQ(worker.wait_exit(), 1);
    EXPECT_NE(worker.log().find(message), std::string::npos) << worker.log();
  }
}

// The helpers read the FastCGI params the web server sent.
TEST(FastCgiHelpers, ReadCookieAndHttpsFromParams) {
  auto request_with = [](std::vector<std::string>& params, std::vector<char*>& envp) {
    envp.clear();
    for (std::string& p : params) envp.push_back(p.data());
    envp.push_back(nullptr);
    FCGX_Request request{};
    request.envp = envp.data();
    return request;
  };
  std::vector<char*> envp;
  std::vector<std::string> plain = {"HTTP_COOKIE=sid=abc; x=1", "REQUEST_SCHEME=http"};
  FCGX_Request r = request_with(plain, envp);
  EXPECT_EQ(fastcgi::cookie_header(r), "sid=abc; x=1");
  EXPECT_FALSE(fastcgi::is_https(r));
  EXPECT_EQ(fastcgi::param(r, "MISSING"), "");
  for (std::vector<std::string> secure :
       {std::vector<std::string>{"HTTPS=on"}, std::vector<std::string>{"HTTPS=ON"},
        std::vector<std::string>{"HTTPS=1"}, std::vector<std::string>{"REQUEST_SCHEME=https"}}) {
    FCGX_Request s = request_with(secure, envp);
    EXPECT_TRUE(fastcgi::is_https(s)) << secure[0];
    EXPECT_TRUE(fastcgi::request_info(s).secure_transport);
    EXPECT_EQ(fastcgi::cookie_header(s), "");
  }
  std::vector<std::string> off = {"HTTPS=off"};
  EXPECT_FALSE(fastcgi::is_https(request_with(off, envp)));
  EXPECT_EQ(fastcgi::error_status(Error(errc::unavailable, "busy")), 503);
  EXPECT_EQ(fastcgi::error_status(Error(errc::io, "disk")), 500);
  EXPECT_EQ(fastcgi::error_status(std::runtime_error("other")), 500);
}

// One configuration, three adapters in one httpd: mod_sessionkit
// (SetHandler sessionkit-demo), the FastCGI worker and the CGI program read
// and update the same session.
TEST_F(FastCgiTest, OneSessionAcrossModSessionkitFastCgiAndCgi) {
  with_cgi_ = true;
  const fs::path cgi = install_program(SESSIONKIT_TEST_CGI_DEMO, dir_ / "bin");
  ASSERT_NO_FATAL_FAILURE(start(
      2, 2, "lmdb", 5000,
      "ScriptSock \"" + (dir_ / "cgid.sock").string() + "\"\n" + "ScriptAlias /cgi \"" + cgi.string() +
          "\"\n" + "<Location /cgi>\n  SetEnv SESSIONKIT_CONFIG \"" + config_path() + "\"\n</Location>\n"));
  HttpClient client(port());
  HttpResponse first = client.get("/demo");  // mod_sessionkit
  ASSERT_EQ(first.status, 200) << server_->error_log();
  EXPECT_EQ(first.body, "1");
  const std::string cookie = first.cookie();
  HttpResponse second = client.get("/fcgi/demo", cookie);
  EXPECT_EQ(second.body, "2") << worker_->log() << server_->error_log();
  EXPECT_TRUE(second.header("set-cookie").empty());
  HttpResponse third = client.get("/cgi/demo", cookie);
  EXPECT_EQ(third.body, "3") << server_->error_log();
  EXPECT_TRUE(third.header("set-cookie").empty());
  EXPECT_EQ(client.get("/demo", cookie).body, "4");
  // And the other way round: created by the CGI program, read by the others.
  const std::string cgi_cookie = client.get("/cgi/demo").cookie();
  ASSERT_FALSE(cgi_cookie.empty());
  EXPECT_EQ(client.get("/fcgi/demo", cgi_cookie).body, "2");
  EXPECT_EQ(client.get("/demo", cgi_cookie).body, "3");
  if (geteuid() == 0) {
    // Every file the three share belongs to httpd's User.
    const uid_t www = getpwnam("www-data")->pw_uid;
    for (const fs::path& p : {server_->data_dir() / "sessions.mdb", server_->data_dir() / "sessions.mdb-lock",
                              fs::path("/dev/shm/sessionkit-" + region_)}) {
      struct stat st {};
      ASSERT_EQ(stat(p.c_str(), &st), 0) << p;
      EXPECT_EQ(st.st_uid, www) << p;
    }
  }
}

}  // namespace
}  // namespace sessionkit::testing

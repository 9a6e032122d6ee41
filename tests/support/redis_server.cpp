#include "tests/support/redis_server.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <system_error>
#include <thread>
#include <vector>

namespace sessionkit::testing {
namespace {

using Clock = std::chrono::steady_clock;

[[noreturn]] void throw_errno(const std::string& what) {
  throw std::system_error(errno, std::generic_category(), what);
}

std::filesystem::path make_dir() {
  const char* base = std::getenv("TMPDIR");
  std::string tmpl =
      std::string(base != nullptr && *base != '\0' ? base : "/tmp") + "/sessionkit-redis-XXXXXX";
  if (::mkdtemp(tmpl.data()) == nullptr) throw_errno("mkdtemp");
  return tmpl;
}

std::string redis_binary() {
  const char* env = std::getenv("SESSIONKIT_REDIS_SERVER");
  return env != nullptr && *env != '\0' ? env : "redis-server";
}

sockaddr_in loopback(int port) {
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<std::uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  return addr;
}

// Waits for `events` on fd until `deadline`; false on timeout.
bool wait_fd(int fd, short events, Clock::time_point deadline) {
  for (;;) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
    if (left.count() <= 0) return false;
    pollfd p{fd, events, 0};
    const int n = ::poll(&p, 1, static_cast<int>(left.count()));
    if (n > 0) return true;
    if (n < 0 && errno != EINTR) return false;
  }
}

}  // namespace

int pick_free_port() {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) throw_errno("socket");
  sockaddr_in addr = loopback(0);
  if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    const int err = errno;
    ::close(fd);
    throw std::system_error(err, std::generic_category(), "bind 127.0.0.1:0");
  }
  socklen_t len = sizeof addr;
  if (::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    const int err = errno;
    ::close(fd);
    throw std::system_error(err, std::generic_category(), "getsockname");
  }
  ::close(fd);  // never listened on: no TIME_WAIT, Redis can bind it at once
  return ntohs(addr.sin_port);
}

RedisServer::RedisServer() : RedisServer(Options{}) {}

RedisServer::RedisServer(Options options) : options_(std::move(options)), dir_(make_dir()) {
  try {
    for (int attempt = 0; attempt < 5; ++attempt) {
      port_ = pick_free_port();
      if (launch()) return;
    }
    throw std::runtime_error("redis-server did not start on 127.0.0.1 (5 ports tried); log:\n" + log());
  } catch (...) {
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
    throw;
  }
}

RedisServer::~RedisServer() {
  // SIGKILL: nothing to flush (persistence is off), and a SIGTERM shutdown
  // waits for Redis's next cron tick (up to 100 ms) in every test.
  kill();
  std::error_code ec;
  std::filesystem::remove_all(dir_, ec);
}

bool RedisServer::launch() {
  // clang-format off
  std::vector<std::string> args = {
      redis_binary(),
      "--port", std::to_string(port_),
      "--bind", "127.0.0.1",
      "--unixsocket", unix_socket().string(),
      "--unixsocketperm", "700",
      "--save", "",              // no RDB snapshots
      "--appendonly", "no",      // no AOF
      "--dir", dir_.string(),
      "--daemonize", "no",       // stay our child, so waitpid works
      "--logfile", (dir_ / "redis.log").string(),
  };
  // clang-format on
  if (!options_.password.empty()) {
    args.push_back("--requirepass");
    args.push_back(options_.password);
  }
  std::vector<char*> argv;
  for (std::string& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  const std::string out = (dir_ / "redis.out").string();
  const pid_t parent = ::getpid();

  std::fflush(nullptr);
  const pid_t pid = ::fork();
  if (pid < 0) throw_errno("fork");
  if (pid == 0) {
    // Die with the test; a test that crashes must not leave servers behind.
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (::getppid() != parent) _exit(126);
    // The caller may have blocked signals (SIGPIPE around Redis commands).
    sigset_t none;
    sigemptyset(&none);
    ::sigprocmask(SIG_SETMASK, &none, nullptr);
    const int devnull = ::open("/dev/null", O_RDONLY);
    const int log = ::open(out.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0600);
    if (devnull >= 0) ::dup2(devnull, 0);
    if (log >= 0) {
      ::dup2(log, 1);
      ::dup2(log, 2);
    }
    ::execvp(argv[0], argv.data());
    std::fprintf(stderr, "exec %s: %s\n", argv[0], std::strerror(errno));
    _exit(127);
  }
  pid_ = pid;
  paused_ = false;

  const auto deadline = Clock::now() + std::chrono::seconds(10);
  while (Clock::now() < deadline) {
    int status = 0;
    const pid_t r = ::waitpid(pid_, &status, WNOHANG);
    if (r == pid_) {
      pid_ = -1;
      return false;
    }
    if (ping(std::chrono::milliseconds(100))) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  kill();
  throw std::runtime_error("redis-server on port " + std::to_string(port_) +
                           " did not answer within 10 s; log:\n" + log());
}

void RedisServer::start() {
  if (running()) throw std::logic_error("RedisServer::start: already running");
  if (!launch()) {
    throw std::runtime_error("redis-server could not restart on port " + std::to_string(port_) + "; log:\n" +
                             log());
  }
}

void RedisServer::stop() {
  if (!running()) return;
  if (paused_) resume();
  ::kill(pid_, SIGTERM);
  const auto deadline = Clock::now() + std::chrono::seconds(10);
  int status = 0;
  for (;;) {
    const pid_t r = ::waitpid(pid_, &status, WNOHANG);
    if (r == pid_ || (r < 0 && errno != EINTR)) break;
    if (Clock::now() >= deadline) {
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, &status, 0);
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  pid_ = -1;
}

void RedisServer::kill() {
  if (!running()) return;
  ::kill(pid_, SIGKILL);
  int status = 0;
  while (::waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
  }
  pid_ = -1;
  paused_ = false;
}

void RedisServer::pause() {
  if (!running()) throw std::logic_error("RedisServer::pause: not running");
  ::kill(pid_, SIGSTOP);
  // Wait until it is really stopped, so the caller's next command hangs.
  int status = 0;
  while (::waitpid(pid_, &status, WUNTRACED) < 0 && errno == EINTR) {
  }
  paused_ = true;
}

void RedisServer::resume() {
  if (!running() || !paused_) return;
  ::kill(pid_, SIGCONT);
  paused_ = false;
}

bool RedisServer::ping(std::chrono::milliseconds timeout) const {
  const auto deadline = Clock::now() + timeout;
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0) return false;
  sockaddr_in addr = loopback(port_);
  bool ok = false;
  do {
    if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
      if (errno != EINPROGRESS || !wait_fd(fd, POLLOUT, deadline)) break;
      int err = 0;
      socklen_t len = sizeof err;
      if (::getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0 || err != 0) break;
    }
    static const char kPing[] = "PING\r\n";
    if (::send(fd, kPing, sizeof kPing - 1, MSG_NOSIGNAL) != static_cast<ssize_t>(sizeof kPing - 1)) break;
    if (!wait_fd(fd, POLLIN, deadline)) break;
    char c = 0;
    // "+PONG", or "-NOAUTH ..." / "-LOADING ..." from a server that is up.
    ok = ::recv(fd, &c, 1, 0) == 1 && (c == '+' || c == '-');
  } while (false);
  ::close(fd);
  return ok;
}

std::string RedisServer::log() const {
  std::ostringstream text;
  for (const char* name : {"redis.out", "redis.log"}) {
    std::ifstream in(dir_ / name);
    if (in) text << in.rdbuf();
  }
  return text.str();
}

}  // namespace sessionkit::testing

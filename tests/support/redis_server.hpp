// RedisServer: a real redis-server for one test (or benchmark), on a free
// 127.0.0.1 port and a Unix socket in a fresh directory, with persistence off.
//
//   testing::RedisServer redis;              // started; throws if it cannot be
//   config["store"] = {{"type", "redis"}, {"port", redis.port()}};
//   redis.stop();  ... redis.start();        // "Redis went away", same port
//
// The binary is $SESSIONKIT_REDIS_SERVER or `redis-server` on PATH. Redis has
// no "port 0", so the port is found by binding a socket to port 0 and closing
// it; if another process takes it before Redis binds, start() tries another
// (only on the first start: restarts keep the port, as clients expect).
// The server gets PR_SET_PDEATHSIG, so it dies with the process that started
// it (create the fixture on the main thread). Uses only POSIX, no gtest and no
// hiredis, so benchmarks can use it too.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <filesystem>
#include <string>

namespace sessionkit::testing {

class RedisServer {
 public:
  struct Options {
    std::string password;  // --requirepass when non-empty
  };

  // Starts the server and waits until it answers PING.
  RedisServer();
  explicit RedisServer(Options options);
  ~RedisServer();  // kills it (SIGKILL) and removes its directory
  RedisServer(const RedisServer&) = delete;
  RedisServer& operator=(const RedisServer&) = delete;

  std::string host() const { return "127.0.0.1"; }
  int port() const { return port_; }
  std::filesystem::path unix_socket() const { return dir_ / "redis.sock"; }
  pid_t pid() const { return pid_; }
  bool running() const { return pid_ > 0; }

  // SIGTERM, then waits for the process. No-op when stopped.
  void stop();
  // SIGKILL, then waits for the process (a crash: nothing is flushed).
  void kill();
  // Starts it again on the same port and socket; waits until it answers.
  void start();
  void restart() {
    stop();
    start();
  }
  // SIGSTOP / SIGCONT: connections are still accepted by the kernel but
  // nothing is answered, as with a hung or swapped-out server.
  void pause();
  void resume();

  // True when a PING on a new connection gets any reply within `timeout`.
  bool ping(std::chrono::milliseconds timeout = std::chrono::milliseconds(200)) const;

  // The server's log (for failure messages).
  std::string log() const;

 private:
  bool launch();  // false when the server exited before answering (port taken)

  Options options_;
  std::filesystem::path dir_;
  int port_ = 0;
  pid_t pid_ = -1;
  bool paused_ = false;
};

// A port nobody listens on right now (bind to port 0, read it, close).
int pick_free_port();

}  // namespace sessionkit::testing

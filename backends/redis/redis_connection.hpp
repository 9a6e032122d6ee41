// RedisConnectionPool: the connections one Redis store or lock manager uses,
// and the mapping of hiredis failures onto sessionkit::errc.
//
// Connections are opened lazily (the first command opens one), so a process
// can start while Redis is down and answer 503 until it is back. Each command
// leases one connection for its round trip; idle connections are kept, up to
// ConnectionOptions::max_connections in total. When all are leased a command
// waits for one until its command timeout, then fails with errc::unavailable.
//
// Errors a command can throw:
//   unavailable  Redis could not be reached or did not answer within the
//                connect/command timeouts (the connection is dropped), or all
//                connections stayed busy. A command on a reused connection
//                that fails fast (the server closed it: a restart) is retried
//                once on a fresh connection when it is idempotent; a timeout
//                is never retried, so no command blocks longer than about
//                connect_timeout + command_timeout.
//   bad_config   Redis refused AUTH or SELECT: the message names the key
//                ("store.password", "locks.db").
// Error replies from Redis are returned as replies; map_reply_error() turns
// them into an Error with the code the caller should act on.
//
// Fork: connections must not be shared by two processes (their replies would
// interleave). after_fork() forgets the parent's connections without writing
// to them (no QUIT: it closes the child's copy of each descriptor only); a pool
// used in a child that did not call it notices the fork (a pthread_atfork
// child handler counts forks) and does the same.
// Descriptors are close-on-exec.
//
// Signals: writing to a connection the server has closed raises SIGPIPE, which
// would kill a process that has not ignored it (CGI programs usually have
// not). Each command blocks SIGPIPE in the calling thread and discards one it
// caused; sessionkit installs no signal handler.
//
// Thread safety: all methods may be called from any thread at once.
#pragma once

#include <sys/types.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "sessionkit/error.hpp"

struct redisContext;
struct redisReply;

namespace sessionkit::redis {

struct ConnectionOptions {
  std::string host = "127.0.0.1";  // TCP host name or address; unused with unix_socket
  std::uint16_t port = 6379;
  std::string unix_socket;  // path of a Unix socket; when set, host/port are unused
  std::uint32_t db = 0;     // SELECTed on every new connection
  std::string user;         // ACL user (Redis >= 6): AUTH user password; needs password
  std::string password;     // empty: no AUTH
  std::chrono::milliseconds connect_timeout{1000};  // TCP/Unix connect, per attempt
  // Bounds each socket read and write of a command (SO_RCVTIMEO/SO_SNDTIMEO).
  std::chrono::milliseconds command_timeout{1000};
  std::uint32_t max_connections = 8;  // per pool (per store or lock manager, per process)
  // The config section these came from ("store" or "locks"), for messages.
  std::string section = "store";
};

// "redis://127.0.0.1:6379/0" or "unix:///run/redis.sock?db=0". Never the password.
std::string describe(const ConnectionOptions& options);

// An owned hiredis reply.
class Reply {
 public:
  Reply() = default;
  explicit Reply(redisReply* r) noexcept : r_(r) {}
  Reply(Reply&& other) noexcept : r_(other.r_) { other.r_ = nullptr; }
  Reply& operator=(Reply&& other) noexcept;
  Reply(const Reply&) = delete;
  Reply& operator=(const Reply&) = delete;
  ~Reply();

  int type() const noexcept;  // REDIS_REPLY_*
  bool is_nil() const noexcept;
  bool is_error() const noexcept;
  bool is_string() const noexcept;
  bool is_status(std::string_view text) const noexcept;  // "+OK"
  bool is_integer() const noexcept;
  // The bytes of a string, status or error reply.
  std::string_view str() const noexcept;
  long long integer() const noexcept;
  std::size_t elements() const noexcept;
  // Element `i` of an array reply, borrowed (valid while this Reply lives).
  const redisReply* element(std::size_t i) const noexcept;
  const redisReply* get() const noexcept { return r_; }

 private:
  redisReply* r_ = nullptr;
};

// Throws the Error an error reply (or a reply of an unexpected type) calls for:
//   LOADING, BUSY, MASTERDOWN, READONLY, TRYAGAIN, CLUSTERDOWN -> unavailable
//   OOM                                                         -> resource_exhausted
//   NOAUTH, WRONGPASS                                           -> bad_config (<section>.password)
//   NOPERM                                                      -> bad_config (<section>.user)
//   WRONGTYPE                                                   -> data_loss
//   anything else                                               -> io
// `what` names the operation ("GET sessionkit:<id>").
[[noreturn]] void throw_reply_error(const Reply& reply, const ConnectionOptions& options,
                                    const std::string& what);

// An unavailable error after the command had been sent: Redis may or may not
// have executed it. Thrown only for commands marked not idempotent.
class AmbiguousError : public Error {
 public:
  AmbiguousError(const std::string& message, bool timed_out)
      : Error(errc::unavailable, message), timed_out_(timed_out) {}
  // True when the command timed out (the server may still execute it later);
  // false when the connection broke.
  bool timed_out() const noexcept { return timed_out_; }

 private:
  bool timed_out_;
};

// Opens one connection as `options` say: connect timeout, command timeout
// (SO_RCVTIMEO/SO_SNDTIMEO), close-on-exec, AUTH and SELECT. The caller owns
// it (redisFree). Throws unavailable when Redis cannot be reached or answers
// LOADING/BUSY/MASTERDOWN/TRYAGAIN to AUTH or SELECT, bad_config when it
// refuses them otherwise, io when the timeouts cannot be set. The pools below
// use it, and so does sessionkit-bench's raw baseline.
redisContext* connect(const ConnectionOptions& options);

// `text` with the glob characters of SCAN's MATCH escaped, to match it literally.
std::string glob_escape(std::string_view text);

enum class Idempotent { yes, no };

class ConnectionPool {
 public:
  explicit ConnectionPool(ConnectionOptions options);
  ~ConnectionPool();
  ConnectionPool(const ConnectionPool&) = delete;
  ConnectionPool& operator=(const ConnectionPool&) = delete;

  // Sends one command (binary-safe arguments) and returns its reply, which may
  // be an error reply. Throws as described at the top of this file; a command
  // marked Idempotent::no is not retried, and a failure after it was sent is
  // an AmbiguousError.
  Reply command(const std::vector<std::string_view>& args, Idempotent idempotent = Idempotent::yes);
  Reply command(std::initializer_list<std::string_view> args, Idempotent idempotent = Idempotent::yes) {
    return command(std::vector<std::string_view>(args), idempotent);
  }

  // Sends `commands` in one pipeline on one connection and returns their
  // replies in order. Every command must be idempotent (the whole pipeline is
  // retried once as for command()).
  std::vector<Reply> pipeline(const std::vector<std::vector<std::string>>& commands);

  // Forgets the connections inherited from the parent (see the top of the file).
  void after_fork();

  // Connections currently open by this process (idle + leased).
  std::size_t open_connections() const;

  const ConnectionOptions& options() const noexcept { return options_; }

 private:
  struct Lease;
  struct State;

  Lease acquire();
  void release(Lease& lease, bool healthy);
  redisContext* connect() const;
  State& state();
  void reset_after_fork(std::uint64_t generation);

  template <typename Fn>
  auto run(Fn&& fn, Idempotent idempotent, std::string_view what);

  const ConnectionOptions options_;
  const std::string description_;
  // The fork generation (forks counted in children) the connections belong to.
  std::atomic<std::uint64_t> generation_;
  std::mutex fork_mu_;  // serialises reset_after_fork
  std::unique_ptr<State> state_;
};

}  // namespace sessionkit::redis

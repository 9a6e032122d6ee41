#include "backends/redis/redis_connection.hpp"

#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <unistd.h>

#include <cerrno>
#include <optional>

#include <hiredis/hiredis.h>

namespace sessionkit::redis {
namespace {

timeval to_timeval(std::chrono::milliseconds ms) {
  timeval tv{};
  tv.tv_sec = static_cast<time_t>(ms.count() / 1000);
  tv.tv_usec = static_cast<suseconds_t>((ms.count() % 1000) * 1000);
  return tv;
}

bool starts_with(std::string_view text, std::string_view prefix) {
  return text.size() >= prefix.size() && text.substr(0, prefix.size()) == prefix;
}

// Blocks SIGPIPE in this thread for one command and discards a SIGPIPE the
// command raised (a write to a connection the server closed). Only a failed
// command can have raised one, so the success path costs two sigmask calls.
class SigpipeBlock {
 public:
  SigpipeBlock() {
    sigemptyset(&pipe_);
    sigaddset(&pipe_, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &pipe_, &old_);
  }
  ~SigpipeBlock() {
    if (sigismember(&old_, SIGPIPE) == 1) return;  // the caller blocks it: leave it alone
    if (failed_) {
      sigset_t pending;
      sigemptyset(&pending);
      if (sigpending(&pending) == 0 && sigismember(&pending, SIGPIPE) == 1) {
        const timespec zero{0, 0};
        const int saved = errno;
        while (sigtimedwait(&pipe_, nullptr, &zero) < 0 && errno == EINTR) {
        }
        errno = saved;
      }
    }
    pthread_sigmask(SIG_SETMASK, &old_, nullptr);
  }
  SigpipeBlock(const SigpipeBlock&) = delete;
  SigpipeBlock& operator=(const SigpipeBlock&) = delete;
  void failed() { failed_ = true; }

 private:
  sigset_t pipe_;
  sigset_t old_;
  bool failed_ = false;
};

// Closes the descriptor and frees the context without writing to the socket
// (hiredis sends nothing on free: no QUIT).
void free_context(redisContext* ctx) noexcept {
  if (ctx != nullptr) redisFree(ctx);
}

// True when an idle connection has something to read: the server closed it
// (EOF) or sent something unasked. Either way it must not be reused.
bool looks_stale(const redisContext* ctx) {
  pollfd p{};
  p.fd = ctx->fd;
  p.events = POLLIN;
  const int n = ::poll(&p, 1, 0);
  return n != 0;  // readable, hung up, error, or poll itself failed
}

// Incremented in every forked child (pthread_atfork), so a pool can tell
// that it is used in a child without a getpid() system call per command.
// glibc unregisters the handler when a module holding it is unloaded.
std::atomic<std::uint64_t> g_fork_generation{0};

void note_fork_in_child() { g_fork_generation.fetch_add(1, std::memory_order_relaxed); }

std::uint64_t current_generation() {
  static std::once_flag once;
  std::call_once(once, [] { ::pthread_atfork(nullptr, nullptr, &note_fork_in_child); });
  return g_fork_generation.load(std::memory_order_relaxed);
}

}  // namespace

std::string describe(const ConnectionOptions& o) {
  if (!o.unix_socket.empty()) return "unix://" + o.unix_socket + "?db=" + std::to_string(o.db);
  const bool v6 = o.host.find(':') != std::string::npos;
  return "redis://" + (v6 ? "[" + o.host + "]" : o.host) + ":" + std::to_string(o.port) + "/" +
         std::to_string(o.db);
}

// ---- Reply ----

Reply& Reply::operator=(Reply&& other) noexcept {
  if (this != &other) {
    if (r_ != nullptr) freeReplyObject(r_);
    r_ = other.r_;
    other.r_ = nullptr;
  }
  return *this;
}

Reply::~Reply() {
  if (r_ != nullptr) freeReplyObject(r_);
}

int Reply::type() const noexcept { return r_ == nullptr ? 0 : r_->type; }
bool Reply::is_nil() const noexcept { return type() == REDIS_REPLY_NIL; }
bool Reply::is_error() const noexcept { return type() == REDIS_REPLY_ERROR; }
bool Reply::is_string() const noexcept { return type() == REDIS_REPLY_STRING; }
bool Reply::is_integer() const noexcept { return type() == REDIS_REPLY_INTEGER; }
bool Reply::is_status(std::string_view text) const noexcept {
  return type() == REDIS_REPLY_STATUS && str() == text;
}

std::string_view Reply::str() const noexcept {
  if (r_ == nullptr || r_->str == nullptr) return {};
  return std::string_view(r_->str, r_->len);
}

long long Reply::integer() const noexcept { return r_ == nullptr ? 0 : r_->integer; }
std::size_t Reply::elements() const noexcept { return type() == REDIS_REPLY_ARRAY ? r_->elements : 0; }
const redisReply* Reply::element(std::size_t i) const noexcept {
  return i < elements() ? r_->element[i] : nullptr;
}

void throw_reply_error(const Reply& reply, const ConnectionOptions& options, const std::string& what) {
  const std::string where = describe(options) + ": " + what + ": ";
  if (!reply.is_error()) {
    throw Error(errc::io, where + "unexpected reply of type " + std::to_string(reply.type()));
  }
  const std::string_view text = reply.str();
  const std::string message = where + std::string(text);
  for (std::string_view busy : {"LOADING", "BUSY", "MASTERDOWN", "READONLY", "TRYAGAIN", "CLUSTERDOWN"}) {
    if (starts_with(text, busy)) throw Error(errc::unavailable, message);
  }
  if (starts_with(text, "OOM")) throw Error(errc::resource_exhausted, message);
  if (starts_with(text, "NOAUTH") || starts_with(text, "WRONGPASS")) {
    throw Error(errc::bad_config, options.section + ".password: " + message);
  }
  if (starts_with(text, "NOPERM")) throw Error(errc::bad_config, options.section + ".user: " + message);
  if (starts_with(text, "WRONGTYPE")) throw Error(errc::data_loss, message);
  throw Error(errc::io, message);
}

// ---- ConnectionPool ----

struct ConnectionPool::State {
  std::mutex mu;
  std::condition_variable cv;
  std::vector<redisContext*> idle;  // guarded by mu
  std::size_t open = 0;             // idle + leased, guarded by mu
};

struct ConnectionPool::Lease {
  State* state = nullptr;
  redisContext* ctx = nullptr;
  bool reused = false;  // taken from the idle list rather than freshly connected
};

ConnectionPool::ConnectionPool(ConnectionOptions options)
    : options_(std::move(options)),
      description_(describe(options_)),
      generation_(current_generation()),
      state_(std::make_unique<State>()) {}

ConnectionPool::~ConnectionPool() {
  if (generation_.load() != current_generation()) {
    // Destroyed in a child that never used the pool: the parent's connections
    // must not be touched beyond closing our copies (see reset_after_fork).
    reset_after_fork(current_generation());
  }
  std::lock_guard lock(state_->mu);
  for (redisContext* ctx : state_->idle) free_context(ctx);
  state_->idle.clear();
}

ConnectionPool::State& ConnectionPool::state() {
  const std::uint64_t now = current_generation();
  if (generation_.load(std::memory_order_acquire) != now) reset_after_fork(now);
  return *state_;
}

void ConnectionPool::reset_after_fork(std::uint64_t now) {
  std::lock_guard guard(fork_mu_);
  if (generation_.load(std::memory_order_relaxed) == now) return;
  State* old = state_.release();
  // The child has one thread. If no parent thread was inside the pool at
  // fork(), the copied mutex is free and the idle list consistent: close our
  // copies of those descriptors (the parent keeps its own). The old State is
  // never destroyed here: its condition variable may count parent threads as
  // waiters, and destroying it would wait for them forever.
  if (old->mu.try_lock()) {
    for (redisContext* ctx : old->idle) free_context(ctx);
    old->idle.clear();
    old->mu.unlock();
  }
  state_.reset(new State());
  generation_.store(now, std::memory_order_release);
}

void ConnectionPool::after_fork() {
  const std::uint64_t now = current_generation();
  if (generation_.load(std::memory_order_acquire) != now) {
    reset_after_fork(now);
    return;
  }
  // Same process (no fork happened): just drop the idle connections.
  std::vector<redisContext*> idle;
  {
    std::lock_guard lock(state_->mu);
    idle.swap(state_->idle);
    state_->open -= idle.size();
  }
  for (redisContext* ctx : idle) free_context(ctx);
}

std::size_t ConnectionPool::open_connections() const {
  std::lock_guard lock(state_->mu);
  return state_->open;
}

std::string glob_escape(std::string_view text) {
  std::string out;
  for (char c : text) {
    if (c == '*' || c == '?' || c == '[' || c == ']' || c == '\\') out += '\\';
    out += c;
  }
  return out;
}

redisContext* connect(const ConnectionOptions& options) {
  const std::string description = describe(options);
  const timeval connect_tv = to_timeval(options.connect_timeout);
  redisContext* ctx = options.unix_socket.empty()
                          ? redisConnectWithTimeout(options.host.c_str(), options.port, connect_tv)
                          : redisConnectUnixWithTimeout(options.unix_socket.c_str(), connect_tv);
  if (ctx == nullptr) throw Error(errc::unavailable, description + ": connect: out of memory");
  if (ctx->err != 0) {
    const std::string message = description + ": connect: " + ctx->errstr;
    free_context(ctx);
    throw Error(errc::unavailable, message);
  }
  // Exec'd programs (CGI children) must not inherit the connection.
  const int flags = ::fcntl(ctx->fd, F_GETFD);
  if (flags >= 0) ::fcntl(ctx->fd, F_SETFD, flags | FD_CLOEXEC);
  if (redisSetTimeout(ctx, to_timeval(options.command_timeout)) != REDIS_OK) {
    const std::string message = description + ": setting the command timeout: " + ctx->errstr;
    free_context(ctx);
    throw Error(errc::io, message);
  }
  if (options.unix_socket.empty()) redisEnableKeepAlive(ctx);  // best effort: finds dead peers of idle links
  // hiredis frees its read buffer after every reply larger than 16 KiB and
  // grows it again for the next one; keep it instead (a connection holds at
  // most one buffer as large as the largest record it has read).
  ctx->reader->maxbuf = 0;

  auto setup = [&](std::vector<std::string_view> args, const std::string& key, const char* what) {
    std::vector<const char*> argv;
    std::vector<std::size_t> lens;
    for (std::string_view a : args) {
      argv.push_back(a.data());
      lens.push_back(a.size());
    }
    SigpipeBlock block;
    Reply reply(static_cast<redisReply*>(
        redisCommandArgv(ctx, static_cast<int>(argv.size()), argv.data(), lens.data())));
    if (reply.get() == nullptr) {
      block.failed();
      const std::string message = description + ": " + what + ": " + ctx->errstr;
      free_context(ctx);
      throw Error(errc::unavailable, message);
    }
    if (reply.is_error()) {
      const std::string message = options.section + "." + key + ": " + description + " refused " + what +
                                  ": " + std::string(reply.str());
      free_context(ctx);
      // LOADING and the like are transient; a refusal of AUTH or SELECT is not.
      for (std::string_view busy : {"LOADING", "BUSY", "MASTERDOWN", "TRYAGAIN"}) {
        if (starts_with(reply.str(), busy)) throw Error(errc::unavailable, message);
      }
      throw Error(errc::bad_config, message);
    }
  };
  if (!options.password.empty()) {
    if (options.user.empty()) {
      setup({"AUTH", options.password}, "password", "AUTH");
    } else {
      setup({"AUTH", options.user, options.password}, "password", "AUTH");
    }
  }
  if (options.db != 0) {
    const std::string db = std::to_string(options.db);
    setup({"SELECT", db}, "db", "SELECT");
  }
  return ctx;
}

redisContext* ConnectionPool::connect() const { return redis::connect(options_); }

ConnectionPool::Lease ConnectionPool::acquire() {
  State& s = state();
  Lease lease;
  lease.state = &s;
  {
    std::unique_lock lock(s.mu);
    const auto deadline = std::chrono::steady_clock::now() + options_.command_timeout;
    while (s.idle.empty() && s.open >= options_.max_connections) {
      if (s.cv.wait_until(lock, deadline) == std::cv_status::timeout && s.idle.empty() &&
          s.open >= options_.max_connections) {
        throw Error(errc::unavailable, description_ + ": all " + std::to_string(options_.max_connections) +
                                           " connections stayed busy for " +
                                           std::to_string(options_.command_timeout.count()) + " ms");
      }
    }
    if (!s.idle.empty()) {
      lease.ctx = s.idle.back();
      s.idle.pop_back();
      lease.reused = true;
    } else {
      ++s.open;
    }
  }
  if (lease.ctx != nullptr && looks_stale(lease.ctx)) {
    // Closed by the server while idle (a restart, a client timeout): replace
    // it now rather than fail the command on it.
    free_context(lease.ctx);
    lease.ctx = nullptr;
    lease.reused = false;
  }
  if (lease.ctx == nullptr) {
    try {
      lease.ctx = connect();
    } catch (...) {
      std::lock_guard lock(s.mu);
      --s.open;
      s.cv.notify_one();
      throw;
    }
  }
  return lease;
}

void ConnectionPool::release(Lease& lease, bool healthy) {
  State& s = *lease.state;
  if (lease.state != state_.get()) {
    // Leased before a fork was noticed: that connection belongs to the parent.
    free_context(lease.ctx);
    lease.ctx = nullptr;
    return;
  }
  if (!healthy) {
    free_context(lease.ctx);
    lease.ctx = nullptr;
  }
  std::lock_guard lock(s.mu);
  if (lease.ctx != nullptr) {
    s.idle.push_back(lease.ctx);
  } else {
    --s.open;
  }
  lease.ctx = nullptr;
  s.cv.notify_one();
}

// Runs fn(ctx) -> std::optional<T> on a leased connection; nullopt means the
// connection failed (ctx->err is set). Applies the retry rule at the top of
// the header.
template <typename Fn>
auto ConnectionPool::run(Fn&& fn, Idempotent idempotent, std::string_view what) {
  for (int attempt = 0;; ++attempt) {
    Lease lease = acquire();
    std::optional result = [&] {
      SigpipeBlock block;
      errno = 0;
      try {
        auto r = fn(lease.ctx);
        if (!r) block.failed();
        return r;
      } catch (...) {  // std::bad_alloc: the connection's state is unknown
        release(lease, false);
        throw;
      }
    }();
    if (result) {
      release(lease, true);
      return std::move(*result);
    }
    const int err = errno;
    // hiredis reports a read that hit SO_RCVTIMEO as an I/O error whose errno
    // is EAGAIN; the errstr check covers builds that clobber errno on the way.
    const std::string_view errstr(lease.ctx->errstr);
    const bool timed_out =
        lease.ctx->err == REDIS_ERR_IO && (err == EAGAIN || err == EWOULDBLOCK || err == ETIMEDOUT ||
                                           errstr.find("temporarily unavailable") != std::string_view::npos ||
                                           errstr.find("timed out") != std::string_view::npos);
    const std::string message =
        description_ + ": " + std::string(what) + ": " +
        (timed_out ? "no answer within " + std::to_string(options_.command_timeout.count()) +
                         " ms (command_timeout_ms)"
                   : std::string(lease.ctx->errstr));
    const bool reused = lease.reused;
    release(lease, false);
    if (idempotent == Idempotent::no) throw AmbiguousError(message, timed_out);
    if (attempt > 0 || timed_out || !reused) throw Error(errc::unavailable, message);
    // A reused connection broke at once: the server probably restarted. One
    // retry on a fresh connection, which fails fast if it is really down.
  }
}

Reply ConnectionPool::command(const std::vector<std::string_view>& args, Idempotent idempotent) {
  std::vector<const char*> argv;
  std::vector<std::size_t> lens;
  argv.reserve(args.size());
  lens.reserve(args.size());
  for (std::string_view a : args) {
    argv.push_back(a.data());
    lens.push_back(a.size());
  }
  return run(
      [&](redisContext* ctx) -> std::optional<Reply> {
        auto* r = static_cast<redisReply*>(
            redisCommandArgv(ctx, static_cast<int>(argv.size()), argv.data(), lens.data()));
        if (r == nullptr) return std::nullopt;
        return Reply(r);
      },
      idempotent, args.empty() ? std::string_view("command") : args.front());
}

std::vector<Reply> ConnectionPool::pipeline(const std::vector<std::vector<std::string>>& commands) {
  return run(
      [&](redisContext* ctx) -> std::optional<std::vector<Reply>> {
        std::vector<const char*> argv;
        std::vector<std::size_t> lens;
        for (const auto& cmd : commands) {
          argv.clear();
          lens.clear();
          for (const std::string& a : cmd) {
            argv.push_back(a.data());
            lens.push_back(a.size());
          }
          if (redisAppendCommandArgv(ctx, static_cast<int>(argv.size()), argv.data(), lens.data()) !=
              REDIS_OK) {
            return std::nullopt;
          }
        }
        std::vector<Reply> replies;
        replies.reserve(commands.size());
        for (std::size_t i = 0; i < commands.size(); ++i) {
          void* r = nullptr;
          if (redisGetReply(ctx, &r) != REDIS_OK || r == nullptr) return std::nullopt;
          replies.emplace_back(static_cast<redisReply*>(r));
        }
        return replies;
      },
      Idempotent::yes, "pipeline");
}

}  // namespace sessionkit::redis

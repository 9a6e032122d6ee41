#include "bench/tool/raw_redis.hpp"

#include <hiredis/hiredis.h>

#include <mutex>
#include <stdexcept>
#include <string_view>

namespace sessionkit::bench {
namespace {

struct ContextFree {
  void operator()(redisContext* c) const { redisFree(c); }
};
using Context = std::unique_ptr<redisContext, ContextFree>;

struct ReplyFree {
  void operator()(redisReply* r) const { freeReplyObject(r); }
};
using ReplyPtr = std::unique_ptr<redisReply, ReplyFree>;

// One command; throws on a lost connection or an error reply.
ReplyPtr run(redisContext* ctx, std::initializer_list<std::string_view> args) {
  constexpr std::size_t kMaxArgs = 8;
  if (args.size() > kMaxArgs) throw std::logic_error("redis: too many arguments");
  const char* argv[kMaxArgs];
  std::size_t lens[kMaxArgs];
  int argc = 0;
  for (std::string_view a : args) {
    argv[argc] = a.data();
    lens[argc] = a.size();
    ++argc;
  }
  ReplyPtr reply(static_cast<redisReply*>(redisCommandArgv(ctx, argc, argv, lens)));
  if (!reply) throw std::runtime_error(std::string("redis: ") + ctx->errstr);
  if (reply->type == REDIS_REPLY_ERROR)
    throw std::runtime_error("redis: " + std::string(reply->str, reply->len));
  return reply;
}

class RawRedisWorker final : public ProcessWorker {
 public:
  RawRedisWorker(const redis::ConnectionOptions& connection, const std::string& prefix,
                 const std::vector<std::string>& ids, std::chrono::milliseconds ttl)
      : connection_(connection), ttl_ms_(std::to_string(ttl.count())) {
    keys_.reserve(ids.size());
    for (const std::string& id : ids) keys_.push_back(prefix + id);
  }

  bool op(std::uint64_t index, bool read_only, SharedCounters& shared) override {
    try {
      Context ctx = take();
      ReplyPtr got = run(ctx.get(), {"GET", keys_[index]});
      if (got->type != REDIS_REPLY_STRING) {
        shared.errors.fetch_add(1);
      } else if (!read_only) {
        run(ctx.get(), {"SET", keys_[index], std::string_view(got->str, got->len), "PX", ttl_ms_});
      }
      give_back(std::move(ctx));
    } catch (const std::exception&) {
      // Redis unreachable, or the connection broke (then it is dropped, and
      // the thread's next operation opens another).
      shared.errors.fetch_add(1);
    }
    return false;
  }

 private:
  // A connection of this process, each used by one thread at a time.
  Context take() {
    {
      std::lock_guard lock(mu_);
      if (!idle_.empty()) {
        Context c = std::move(idle_.back());
        idle_.pop_back();
        return c;
      }
    }
    return Context(redis::connect(connection_));
  }
  void give_back(Context c) {
    std::lock_guard lock(mu_);
    idle_.push_back(std::move(c));
  }

  const redis::ConnectionOptions connection_;
  std::vector<std::string> keys_;
  const std::string ttl_ms_;
  std::mutex mu_;
  std::vector<Context> idle_;
};

}  // namespace

void populate_raw_redis(const redis::ConnectionOptions& connection, const std::string& prefix,
                        const std::vector<std::string>& ids, const std::string& record,
                        std::chrono::milliseconds ttl) {
  Context ctx(redis::connect(connection));
  const std::string ttl_ms = std::to_string(ttl.count());
  for (const std::string& id : ids) run(ctx.get(), {"SET", prefix + id, record, "PX", ttl_ms});
}

std::unique_ptr<ProcessWorker> make_raw_redis_worker(const redis::ConnectionOptions& connection,
                                                     const std::string& prefix,
                                                     const std::vector<std::string>& ids,
                                                     std::chrono::milliseconds ttl) {
  return std::make_unique<RawRedisWorker>(connection, prefix, ids, ttl);
}

std::uint64_t remove_redis_keys(const redis::ConnectionOptions& connection, const std::string& prefix) {
  Context ctx(redis::connect(connection));
  const std::string pattern = redis::glob_escape(prefix) + "*";
  std::uint64_t removed = 0;
  std::string cursor = "0";
  do {
    ReplyPtr page = run(ctx.get(), {"SCAN", cursor, "MATCH", pattern, "COUNT", "1000"});
    if (page->type != REDIS_REPLY_ARRAY || page->elements != 2)
      throw std::runtime_error("redis: odd SCAN reply");
    cursor.assign(page->element[0]->str, page->element[0]->len);
    const redisReply* keys = page->element[1];
    for (std::size_t i = 0; i < keys->elements; ++i) {
      ReplyPtr n = run(ctx.get(), {"UNLINK", std::string_view(keys->element[i]->str, keys->element[i]->len)});
      removed += static_cast<std::uint64_t>(n->integer);
    }
  } while (cursor != "0");
  return removed;
}

}  // namespace sessionkit::bench

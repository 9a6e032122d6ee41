#include "tests/unit/redis/redis_test_support.hpp"

#include <sys/time.h>

#include <cstdio>
#include <stdexcept>
#include <vector>

#include <hiredis/hiredis.h>

#include "sessionkit/session.hpp"

namespace sessionkit::testing {

nlohmann::json redis_store_section(const RedisServer& server, const std::string& prefix) {
  return {{"type", "redis"},  {"host", server.host()},     {"port", server.port()},
          {"prefix", prefix}, {"connect_timeout_ms", 500}, {"command_timeout_ms", 500}};
}

nlohmann::json redis_lock_section(const RedisServer& server, const std::string& prefix) {
  nlohmann::json s = redis_store_section(server, prefix);
  s["slots"] = 64;
  s["resource_slots"] = 8;
  s["wait_ms"] = 10'000;
  return s;
}

nlohmann::json redis_config_json(const RedisServer& server, const std::string& prefix,
                                 const nlohmann::json& locks_extra, const nlohmann::json& store_extra) {
  nlohmann::json store = redis_store_section(server, prefix);
  store.update(store_extra);
  nlohmann::json locks = redis_lock_section(server, prefix);
  locks.update(locks_extra);
  return {{"store", store}, {"locks", locks}, {"gc", {{"every_n_requests", 0}}}};
}

Config redis_config(const RedisServer& server, const std::string& prefix, const nlohmann::json& locks_extra,
                    const nlohmann::json& store_extra) {
  return Config::from_json(redis_config_json(server, prefix, locks_extra, store_extra));
}

RawRedis::RawRedis(const RedisServer& server) {
  const timeval tv{2, 0};
  ctx_ = redisConnectWithTimeout(server.host().c_str(), server.port(), tv);
  if (ctx_ == nullptr || ctx_->err != 0) {
    const std::string why = ctx_ != nullptr ? ctx_->errstr : "out of memory";
    if (ctx_ != nullptr) redisFree(ctx_);
    throw std::runtime_error("RawRedis: connect: " + why);
  }
  redisSetTimeout(ctx_, tv);
}

RawRedis::~RawRedis() { redisFree(ctx_); }

redis::Reply RawRedis::command(std::initializer_list<std::string_view> args) {
  std::vector<const char*> argv;
  std::vector<std::size_t> lens;
  for (std::string_view a : args) {
    argv.push_back(a.data());
    lens.push_back(a.size());
  }
  auto* r = static_cast<redisReply*>(
      redisCommandArgv(ctx_, static_cast<int>(argv.size()), argv.data(), lens.data()));
  if (r == nullptr) throw std::runtime_error(std::string("RawRedis: ") + ctx_->errstr);
  return redis::Reply(r);
}

std::optional<std::string> RawRedis::get(const std::string& key) {
  redis::Reply r = command({"GET", key});
  if (r.is_nil()) return std::nullopt;
  if (!r.is_string()) throw std::runtime_error("RawRedis: GET " + key + ": " + std::string(r.str()));
  return std::string(r.str());
}

long long RawRedis::pttl(const std::string& key) { return command({"PTTL", key}).integer(); }

bool RawRedis::exists(const std::string& key) { return command({"EXISTS", key}).integer() == 1; }

std::string cookie_from(const std::optional<std::string>& set_cookie) {
  if (!set_cookie) throw std::runtime_error("cookie_from: no Set-Cookie value");
  return set_cookie->substr(0, set_cookie->find(';'));
}

std::string create_counter(SessionManager& manager) {
  Session s = manager.open("");
  s.data()["n"] = 0;
  s.save();
  return cookie_from(manager.set_cookie(s));
}

bool increment(SessionManager& manager, const std::string& cookie) {
  Session s = manager.open(cookie);
  if (s.is_new()) {
    std::fprintf(stderr, "increment: the session came back new\n");
    return false;
  }
  auto& d = s.data();
  d["n"] = d.value("n", 0LL) + 1;
  s.save();
  return true;
}

long long read_counter(SessionManager& manager, const std::string& cookie) {
  Session s = manager.open(cookie);
  if (s.is_new()) return -1;
  return s.data().value("n", -1LL);
}

}  // namespace sessionkit::testing

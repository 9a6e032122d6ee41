// Helpers shared by the Redis tests: config sections pointing at a test
// server, a direct hiredis connection for planting and inspecting keys, and a
// session counter increment.
#pragma once

#include <initializer_list>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "backends/redis/redis_connection.hpp"
#include "sessionkit/config.hpp"
#include "sessionkit/session_manager.hpp"
#include "tests/support/redis_server.hpp"

struct redisContext;

namespace sessionkit::testing {

// {"type": "redis", "host", "port", "prefix", timeouts} for `server`.
nlohmann::json redis_store_section(const RedisServer& server, const std::string& prefix);
// The same plus "slots" (64: small, so tests meet collisions if they exist).
nlohmann::json redis_lock_section(const RedisServer& server, const std::string& prefix);
// Redis store + Redis locks, GC off. `locks_extra` and `store_extra` are merged
// into their sections.
nlohmann::json redis_config_json(const RedisServer& server, const std::string& prefix,
                                 const nlohmann::json& locks_extra = nlohmann::json::object(),
                                 const nlohmann::json& store_extra = nlohmann::json::object());
Config redis_config(const RedisServer& server, const std::string& prefix,
                    const nlohmann::json& locks_extra = nlohmann::json::object(),
                    const nlohmann::json& store_extra = nlohmann::json::object());

// A plain hiredis connection to the test server, outside sessionkit.
class RawRedis {
 public:
  explicit RawRedis(const RedisServer& server);
  ~RawRedis();
  RawRedis(const RawRedis&) = delete;
  RawRedis& operator=(const RawRedis&) = delete;

  // Throws std::runtime_error when the connection fails.
  redis::Reply command(std::initializer_list<std::string_view> args);
  std::optional<std::string> get(const std::string& key);
  long long pttl(const std::string& key);  // -2: no key, -1: no expiry
  bool exists(const std::string& key);

 private:
  redisContext* ctx_;
};

// "sid=<value>" from a Set-Cookie value, as a browser sends it back.
std::string cookie_from(const std::optional<std::string>& set_cookie);

// Creates a session holding {"n": 0}; returns its Cookie header.
std::string create_counter(SessionManager& manager);

// open(cookie), n += 1, save(); returns false (and says why on stderr) when
// the session came back new, which would lose counts.
bool increment(SessionManager& manager, const std::string& cookie);

// n of the session, read through a fresh open(); -1 when it came back new.
long long read_counter(SessionManager& manager, const std::string& cookie);

}  // namespace sessionkit::testing

// The "redis" store and lock manager sections: defaults, and every bad value
// refused with errc::bad_config naming its key, before anything connects.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "backends/redis/redis_config.hpp"
#include "sessionkit/config.hpp"
#include "sessionkit/error.hpp"
#include "sessionkit/session_manager.hpp"

namespace sessionkit {
namespace {

using nlohmann::json;

// The errc and message of Config::from_json(doc), or "ok".
std::string outcome(const json& doc) {
  try {
    Config::from_json(doc);
    return "ok";
  } catch (const Error& e) {
    return std::string(to_string(e.code_value())) + ": " + e.what();
  }
}

json with_store(json store) { return {{"store", store}, {"locks", {{"type", "redis"}}}}; }
json with_locks(json locks) { return {{"store", {{"type", "redis"}}}, {"locks", locks}}; }

TEST(RedisConfigTest, DefaultsAreDocumented) {
  RedisStoreOptions s = redis::parse_store_section({{"type", "redis"}}, "/");
  EXPECT_EQ(s.connection.host, "127.0.0.1");
  EXPECT_EQ(s.connection.port, 6379);
  EXPECT_EQ(s.connection.unix_socket, "");
  EXPECT_EQ(s.connection.db, 0u);
  EXPECT_EQ(s.connection.user, "");
  EXPECT_EQ(s.connection.password, "");
  EXPECT_EQ(s.connection.connect_timeout.count(), 1000);
  EXPECT_EQ(s.connection.command_timeout.count(), 1000);
  EXPECT_EQ(s.connection.max_connections, 8u);
  EXPECT_EQ(s.connection.section, "store");
  EXPECT_EQ(s.prefix, "sessionkit:");
  EXPECT_EQ(redis::describe(s.connection), "redis://127.0.0.1:6379/0");

  RedisLockOptions l = redis::parse_lock_section({{"type", "redis"}}, "/");
  EXPECT_EQ(l.slots, 1024u);
  EXPECT_EQ(l.resource_slots, 64u);
  EXPECT_EQ(l.lease.count(), 30'000);
  EXPECT_EQ(l.prefix, "sessionkit:");
  EXPECT_EQ(l.connection.section, "locks");
}

TEST(RedisConfigTest, EveryKeyIsRead) {
  RedisStoreOptions s = redis::parse_store_section({{"type", "redis"},
                                                    {"host", "redis.internal"},
                                                    {"port", 6380},
                                                    {"db", 3},
                                                    {"user", "app"},
                                                    {"password", "secret"},
                                                    {"prefix", "myapp:s:"},
                                                    {"connect_timeout_ms", 250},
                                                    {"command_timeout_ms", 750},
                                                    {"max_connections", 2}},
                                                   "/");
  EXPECT_EQ(s.connection.host, "redis.internal");
  EXPECT_EQ(s.connection.port, 6380);
  EXPECT_EQ(s.connection.db, 3u);
  EXPECT_EQ(s.connection.user, "app");
  EXPECT_EQ(s.connection.password, "secret");
  EXPECT_EQ(s.prefix, "myapp:s:");
  EXPECT_EQ(s.connection.connect_timeout.count(), 250);
  EXPECT_EQ(s.connection.command_timeout.count(), 750);
  EXPECT_EQ(s.connection.max_connections, 2u);
  // The password never appears in descriptions.
  EXPECT_EQ(redis::describe(s.connection), "redis://redis.internal:6380/3");

  RedisLockOptions l = redis::parse_lock_section({{"type", "redis"},
                                                  {"unix_socket", "run/redis.sock"},
                                                  {"slots", 16},
                                                  {"resource_slots", 2},
                                                  {"wait_ms", 100},
                                                  {"lease_ms", 2000}},
                                                 "/srv/app");
  EXPECT_EQ(l.connection.unix_socket, "/srv/app/run/redis.sock");  // relative to the config file
  EXPECT_EQ(l.slots, 16u);
  EXPECT_EQ(l.resource_slots, 2u);
  EXPECT_EQ(l.lease.count(), 2000);
  EXPECT_EQ(redis::describe(l.connection), "unix:///srv/app/run/redis.sock?db=0");
}

TEST(RedisConfigTest, BadStoreValuesNameTheKey) {
  struct Case {
    json store;
    std::string starts;
  };
  const std::vector<Case> cases = {
      {{{"type", "redis"}, {"colour", "red"}}, "bad_config: store.colour: unknown key"},
      {{{"type", "redis"}, {"port", 0}}, "bad_config: store.port:"},
      {{{"type", "redis"}, {"port", 65536}}, "bad_config: store.port:"},
      {{{"type", "redis"}, {"port", "6379"}}, "bad_config: store.port:"},
      {{{"type", "redis"}, {"host", ""}}, "bad_config: store.host:"},
      {{{"type", "redis"}, {"host", "a b"}}, "bad_config: store.host:"},
      {{{"type", "redis"}, {"host", "h"}, {"unix_socket", "/run/redis.sock"}}, "bad_config: store.host:"},
      {{{"type", "redis"}, {"port", 6379}, {"unix_socket", "/run/redis.sock"}}, "bad_config: store.port:"},
      {{{"type", "redis"}, {"unix_socket", ""}}, "bad_config: store.unix_socket:"},
      {{{"type", "redis"}, {"unix_socket", "/" + std::string(200, 'x')}}, "bad_config: store.unix_socket:"},
      {{{"type", "redis"}, {"db", -1}}, "bad_config: store.db:"},
      {{{"type", "redis"}, {"user", "app"}}, "bad_config: store.user:"},
      {{{"type", "redis"}, {"password", ""}}, "bad_config: store.password:"},
      {{{"type", "redis"}, {"prefix", ""}}, "bad_config: store.prefix:"},
      {{{"type", "redis"}, {"prefix", "has space"}}, "bad_config: store.prefix:"},
      {{{"type", "redis"}, {"prefix", std::string("nul\0x", 5)}}, "bad_config: store.prefix:"},
      {{{"type", "redis"}, {"prefix", std::string(129, 'p')}}, "bad_config: store.prefix:"},
      {{{"type", "redis"}, {"connect_timeout_ms", 0}}, "bad_config: store.connect_timeout_ms:"},
      {{{"type", "redis"}, {"command_timeout_ms", 600'001}}, "bad_config: store.command_timeout_ms:"},
      {{{"type", "redis"}, {"max_connections", 0}}, "bad_config: store.max_connections:"},
      // Lock-only keys are unknown in the store section.
      {{{"type", "redis"}, {"lease_ms", 1000}}, "bad_config: store.lease_ms: unknown key"},
  };
  for (const Case& c : cases) {
    const std::string got = outcome(with_store(c.store));
    EXPECT_EQ(got.substr(0, c.starts.size()), c.starts) << c.store.dump() << " -> " << got;
  }
}

TEST(RedisConfigTest, BadLockValuesNameTheKey) {
  struct Case {
    json locks;
    std::string starts;
  };
  const std::vector<Case> cases = {
      {{{"type", "redis"}, {"lease_ms", 5}}, "bad_config: locks.lease_ms:"},
      {{{"type", "redis"}, {"lease_ms", 5000}},
       "bad_config: locks.lease_ms: must be longer than locks.wait_ms (5000 ms), got 5000"},
      {{{"type", "redis"}, {"lease_ms", 1000}, {"wait_ms", 2000}},
       "bad_config: locks.lease_ms: must be longer than locks.wait_ms (2000 ms), got 1000: raise"},
      {{{"type", "redis"}, {"wait_ms", 60000}},
       "bad_config: locks.lease_ms: must be longer than locks.wait_ms (60000 ms), got 30000 (the default): "
       "raise"},
      {{{"type", "redis"}, {"lease_ms", "long"}}, "bad_config: locks.lease_ms:"},
      {{{"type", "redis"}, {"slots", 1}}, "bad_config: locks.slots:"},
      {{{"type", "redis"}, {"resource_slots", 0}}, "bad_config: locks.resource_slots:"},
      {{{"type", "redis"}, {"wait_ms", -1}}, "bad_config: locks.wait_ms:"},
      {{{"type", "redis"}, {"port", 70000}}, "bad_config: locks.port:"},
      {{{"type", "redis"}, {"prefix", "\x01"}}, "bad_config: locks.prefix:"},
      {{{"type", "redis"}, {"name", "shm-name"}}, "bad_config: locks.name: unknown key"},
  };
  for (const Case& c : cases) {
    const std::string got = outcome(with_locks(c.locks));
    EXPECT_EQ(got.substr(0, c.starts.size()), c.starts) << c.locks.dump() << " -> " << got;
  }
}

TEST(RedisConfigTest, ValidConfigBuildsWithoutConnecting) {
  // Nothing listens on port 1: building must still work (connections are
  // lazy), so an application can start while Redis is down.
  json doc = {{"store", {{"type", "redis"}, {"port", 1}}}, {"locks", {{"type", "redis"}, {"port", 1}}}};
  EXPECT_EQ(outcome(doc), "ok");
  SessionManager m(Config::from_json(doc));
  EXPECT_EQ(m.store().info().type, "redis");
  EXPECT_EQ(m.store().info().location, "redis://127.0.0.1:1/0");
  EXPECT_EQ(m.locks().type(), "redis");
  EXPECT_TRUE(m.locks().shared_across_processes());
}

}  // namespace
}  // namespace sessionkit

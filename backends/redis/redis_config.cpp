#include "backends/redis/redis_config.hpp"

#include <sys/un.h>

#include <nlohmann/json.hpp>

#include "config_reader.hpp"
#include "locks/lock_options.hpp"

namespace sessionkit::redis {
namespace {

using detail::ConfigReader;

bool printable_without_space(std::string_view s) {
  for (char c : s) {
    if (c <= ' ' || c > '~') return false;
  }
  return true;
}

ConnectionOptions read_connection(ConfigReader& r, const std::string& section,
                                  const std::filesystem::path& base_dir) {
  ConnectionOptions o;
  o.section = section;
  if (r.has("unix_socket")) {
    if (r.has("host")) r.fail("host", "host and unix_socket exclude each other: give one");
    if (r.has("port")) r.fail("port", "not used with unix_socket");
    o.unix_socket = r.path("unix_socket", "", base_dir).string();
    // sockaddr_un::sun_path holds 108 bytes with the terminating NUL.
    if (o.unix_socket.size() >= sizeof(sockaddr_un{}.sun_path)) {
      r.fail("unix_socket",
             "path longer than " + std::to_string(sizeof(sockaddr_un{}.sun_path) - 1) + " bytes");
    }
  } else {
    o.host = r.string("host", o.host);
    if (o.host.empty() || o.host.size() > 255 || !printable_without_space(o.host)) {
      r.fail("host", "expected a host name or address");
    }
    o.port = static_cast<std::uint16_t>(r.uint("port", o.port, 1, 65535));
  }
  o.db = static_cast<std::uint32_t>(r.uint("db", o.db, 0, 65535));
  o.user = r.string("user", "");
  o.password = r.string("password", "");
  if (!o.user.empty() && o.password.empty()) r.fail("user", "an ACL user needs a password");
  if (r.has("user") && o.user.empty()) r.fail("user", "empty; leave the key out for the default user");
  if (r.has("password") && o.password.empty()) r.fail("password", "empty; leave the key out for no AUTH");
  o.connect_timeout = std::chrono::milliseconds(r.uint("connect_timeout_ms", 1000, 1, 600'000));
  o.command_timeout = std::chrono::milliseconds(r.uint("command_timeout_ms", 1000, 1, 600'000));
  o.max_connections = static_cast<std::uint32_t>(r.uint("max_connections", o.max_connections, 1, 1024));
  return o;
}

std::string read_prefix(ConfigReader& r) {
  std::string prefix = r.string("prefix", "sessionkit:");
  if (prefix.empty() || prefix.size() > 128 || !printable_without_space(prefix)) {
    r.fail("prefix", "expected 1 to 128 printable ASCII characters without spaces");
  }
  return prefix;
}

}  // namespace

RedisStoreOptions parse_store_section(const nlohmann::json& section, const std::filesystem::path& base_dir) {
  ConfigReader r(section, "store");
  r.string("type", "redis");
  RedisStoreOptions o;
  o.connection = read_connection(r, "store", base_dir);
  o.prefix = read_prefix(r);
  r.finish();
  return o;
}

RedisLockOptions parse_lock_section(const nlohmann::json& section, const std::filesystem::path& base_dir) {
  ConfigReader r(section, "locks");
  r.string("type", "redis");
  RedisLockOptions o;
  const detail::LockLayoutOptions layout = detail::read_lock_layout(r);
  o.slots = layout.slots;
  o.resource_slots = layout.resource_slots;
  o.connection = read_connection(r, "locks", base_dir);
  o.prefix = read_prefix(r);
  o.lease = std::chrono::milliseconds(r.uint("lease_ms", 30'000, 10, 3'600'000));
  // A waiter must give up before the lease of a live holder can run out under
  // it, or a slow request would lose its lock to a mere waiter.
  if (o.lease <= layout.wait) {
    r.fail("lease_ms", "must be longer than locks.wait_ms (" + std::to_string(layout.wait.count()) +
                           " ms), got " + std::to_string(o.lease.count()) +
                           (section.contains("lease_ms") ? "" : " (the default)") +
                           ": raise lease_ms or lower wait_ms");
  }
  r.finish();
  return o;
}

}  // namespace sessionkit::redis

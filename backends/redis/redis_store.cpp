#include "backends/redis/redis_store.hpp"

#include <algorithm>

#include <hiredis/hiredis.h>

#include "session_id.hpp"

namespace sessionkit {
namespace {

// Keys per SCAN step and per pipelined batch of GETs in for_each().
constexpr const char* kScanCount = "1000";

}  // namespace

RedisStore::RedisStore(RedisStoreOptions options)
    : options_(std::move(options)), pool_(options_.connection) {}

RedisStore::~RedisStore() = default;

std::string RedisStore::key_for(std::string_view id) const {
  std::string key = options_.prefix;
  key.append(id);
  return key;
}

std::string RedisStore::checked_key(std::string_view id, const char* call) const {
  if (!detail::is_valid_session_id(id)) {
    throw Error(errc::invalid_argument, std::string("RedisStore::") + call + ": not a session id");
  }
  return key_for(id);
}

std::optional<std::string> RedisStore::load(std::string_view id) {
  const std::string key = checked_key(id, "load");
  redis::Reply reply = pool_.command({"GET", key});
  if (reply.is_nil()) return std::nullopt;
  // Any string is handed to the core, which decodes it and reports foreign
  // bytes as data_loss; another type under the key (WRONGTYPE) is data_loss here.
  if (reply.is_string()) return std::string(reply.str());
  redis::throw_reply_error(reply, options_.connection, "GET " + key);
}

void RedisStore::save(std::string_view id, std::string_view record, TimePoint expires_at) {
  const std::string key = checked_key(id, "save");
  // Redis counts the TTL from when it runs the SET, against this process's
  // clock reading now; the core checks the record's own expiry on load anyway.
  const auto ttl =
      std::chrono::duration_cast<std::chrono::milliseconds>(expires_at - std::chrono::system_clock::now());
  const std::string px = std::to_string(std::max<std::int64_t>(1, ttl.count()));
  redis::Reply reply = pool_.command({"SET", key, record, "PX", px});
  if (!reply.is_status("OK")) redis::throw_reply_error(reply, options_.connection, "SET " + key);
}

bool RedisStore::remove(std::string_view id) {
  const std::string key = checked_key(id, "remove");
  redis::Reply reply = pool_.command({"DEL", key});
  if (!reply.is_integer()) redis::throw_reply_error(reply, options_.connection, "DEL " + key);
  return reply.integer() > 0;
}

SweepResult RedisStore::sweep(TimePoint, std::chrono::milliseconds) {
  // Records carry a Redis TTL (SET ... PX): Redis deletes expired ones itself.
  SweepResult result;
  result.complete = true;
  return result;
}

void RedisStore::for_each(const std::function<bool(std::string_view, std::string_view)>& fn) {
  const std::string pattern = redis::glob_escape(options_.prefix) + "*";
  std::string cursor = "0";
  do {
    redis::Reply scan = pool_.command({"SCAN", cursor, "MATCH", pattern, "COUNT", kScanCount});
    if (scan.elements() != 2 || scan.element(0)->type != REDIS_REPLY_STRING ||
        scan.element(1)->type != REDIS_REPLY_ARRAY) {
      redis::throw_reply_error(scan, options_.connection, "SCAN " + pattern);
    }
    cursor.assign(scan.element(0)->str, scan.element(0)->len);
    const redisReply* keys = scan.element(1);
    std::vector<std::string> ids;
    std::vector<std::vector<std::string>> gets;
    for (std::size_t i = 0; i < keys->elements; ++i) {
      const redisReply* k = keys->element[i];
      if (k->type != REDIS_REPLY_STRING) continue;
      std::string_view key(k->str, k->len);
      if (key.size() < options_.prefix.size()) continue;
      std::string_view id = key.substr(options_.prefix.size());
      if (!detail::is_valid_session_id(id)) continue;  // lock keys and other tenants' keys
      ids.emplace_back(id);
      gets.push_back({"GET", std::string(key)});
    }
    if (gets.empty()) continue;
    // The connection goes back to the pool before fn runs: fn may call the store.
    std::vector<redis::Reply> values = pool_.pipeline(gets);
    for (std::size_t i = 0; i < ids.size(); ++i) {
      if (!values[i].is_string()) continue;  // expired since SCAN, or not a string
      if (!fn(ids[i], values[i].str())) return;
    }
  } while (cursor != "0");
}

StoreInfo RedisStore::info() const {
  StoreInfo info;
  info.type = "redis";
  info.location = redis::describe(options_.connection);
  // Counting would mean a SCAN over the whole db; DBSIZE counts other keys too.
  info.records = -1;
  info.bytes = -1;
  return info;
}

void RedisStore::after_fork() { pool_.after_fork(); }

}  // namespace sessionkit

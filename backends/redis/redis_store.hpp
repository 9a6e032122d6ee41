// RedisStore ("redis"): session records as Redis string values, for servers
// on several machines (docs/redis.md).
//
// Layout: the record of session <id> is the value of key <prefix><id>, written
// with SET key record PX <ms until expires_at>, so Redis deletes it on its own
// when it expires; load is GET, remove is DEL. The core still checks each
// record's own expiry on load, so a late expiry in Redis never revives a dead
// session. Keys under the prefix that are not session ids (the lock manager's
// "<prefix>lock:..." keys) are ignored by for_each().
//
// sweep() has nothing to do (Redis expires keys itself) and returns
// SweepResult{complete = true} at once.
//
// Threads and processes: every method may be called from any thread; records
// are shared by every process and machine using the same Redis, db and prefix.
// Connections come from a RedisConnectionPool (redis_connection.hpp): opened
// on first use, at most max_connections per store and process.
//
// Fork: after_fork() drops the inherited connections without writing to them;
// a child that forgets gets the same from the pool when it notices the fork.
//
// Errors: an id that is not a session id is invalid_argument. Redis down or
// not answering within the timeouts is unavailable (adapters answer 503); a
// key holding another Redis type than a string (WRONGTYPE) is data_loss, like
// a record that fails to decode; Redis out of memory on save is
// resource_exhausted; AUTH/SELECT refused is bad_config; other error replies
// are io.
#pragma once

#include <string>

#include "backends/redis/redis_connection.hpp"
#include "sessionkit/store.hpp"

namespace sessionkit {

struct RedisStoreOptions {
  redis::ConnectionOptions connection;  // section "store"
  // Prepended to every key. Several applications (or test runs) can share one
  // Redis db by using distinct prefixes.
  std::string prefix = "sessionkit:";
};

class RedisStore final : public Store {
 public:
  // Connects lazily: constructing never touches the network.
  explicit RedisStore(RedisStoreOptions options);
  ~RedisStore() override;

  std::optional<std::string> load(std::string_view id) override;
  void save(std::string_view id, std::string_view record, TimePoint expires_at) override;
  bool remove(std::string_view id) override;
  SweepResult sweep(TimePoint now, std::chrono::milliseconds budget) override;
  void for_each(const std::function<bool(std::string_view id, std::string_view record)>& fn) override;
  StoreInfo info() const override;
  bool shared_across_processes() const override { return true; }
  void after_fork() override;

  // The Redis key of `id`.
  std::string key_for(std::string_view id) const;
  const RedisStoreOptions& options() const noexcept { return options_; }
  // Connections this process has open for the store (tests, diagnostics).
  std::size_t open_connections() const { return pool_.open_connections(); }

 private:
  std::string checked_key(std::string_view id, const char* call) const;

  const RedisStoreOptions options_;
  mutable redis::ConnectionPool pool_;
};

}  // namespace sessionkit

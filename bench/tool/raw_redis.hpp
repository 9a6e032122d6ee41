// The raw Redis baseline, as redis-benchmark measures a server: GET + SET PX
// of the same record bytes over plain hiredis connections (one per thread),
// with no pool, locks, codec or retries. Also removes what a run left in Redis.
#pragma once

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "backends/redis/redis_connection.hpp"
#include "bench/tool/phase.hpp"

namespace sessionkit::bench {

// Stores `record` under `prefix` + id for every id, expiring after `ttl`.
void populate_raw_redis(const redis::ConnectionOptions& connection, const std::string& prefix,
                        const std::vector<std::string>& ids, const std::string& record,
                        std::chrono::milliseconds ttl);

// A worker whose threads each open their own connection (call after fork).
std::unique_ptr<ProcessWorker> make_raw_redis_worker(const redis::ConnectionOptions& connection,
                                                     const std::string& prefix,
                                                     const std::vector<std::string>& ids,
                                                     std::chrono::milliseconds ttl);

// Deletes every key that starts with `prefix` (SCAN + UNLINK); returns how many.
std::uint64_t remove_redis_keys(const redis::ConnectionOptions& connection, const std::string& prefix);

}  // namespace sessionkit::bench

#include "backends/redis/redis_lock_manager.hpp"

#include <openssl/evp.h>
#include <openssl/rand.h>

#include <algorithm>
#include <functional>
#include <random>

#include "session_id.hpp"

namespace sessionkit {
namespace {

constexpr auto kFirstBackoff = std::chrono::microseconds(1000);
constexpr auto kMaxBackoff = std::chrono::microseconds(50'000);

// KEYS[1] = lock key, ARGV[1] = token.
const std::string kReleaseScript =
    "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) else return 0 end";
// KEYS[1] = lock key, ARGV[1] = token, ARGV[2] = lease in ms.
const std::string kRenewScript =
    "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('pexpire', KEYS[1], ARGV[2]) "
    "else return 0 end";

// The SHA1 hex digest EVALSHA names a script by. Computed here instead of
// asking SCRIPT LOAD: the same digest, without a round trip per connection.
std::string sha1_hex(const std::string& text) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int size = 0;
  if (EVP_Digest(text.data(), text.size(), digest, &size, EVP_sha1(), nullptr) != 1) {
    throw Error(errc::io, "RedisLockManager: SHA1 of a Lua script failed");
  }
  return detail::hex_encode(digest, size);
}

const std::string& release_sha() {
  static const std::string sha = sha1_hex(kReleaseScript);
  return sha;
}

const std::string& renew_sha() {
  static const std::string sha = sha1_hex(kRenewScript);
  return sha;
}

// Back-off jitter only: need not be unpredictable, just different per thread.
std::chrono::microseconds jittered(std::chrono::microseconds backoff) {
  thread_local std::minstd_rand rng(static_cast<std::minstd_rand::result_type>(
      std::random_device{}() ^ std::hash<std::thread::id>{}(std::this_thread::get_id())));
  std::uniform_int_distribution<std::int64_t> half(backoff.count() / 2, backoff.count());
  return std::chrono::microseconds(half(rng));
}

}  // namespace

RedisLockManager::RedisLockManager(RedisLockOptions options)
    : LockManager(options.slots, options.resource_slots),
      options_(std::move(options)),
      lease_ms_(std::to_string(options_.lease.count())),
      pool_(options_.connection),
      slot_table_(new Slot[static_cast<std::size_t>(options_.slots) + options_.resource_slots]) {}

RedisLockManager::~RedisLockManager() = default;

std::string RedisLockManager::key_for(std::uint32_t slot) const {
  return options_.prefix + "lock:" + std::to_string(slot);
}

RedisLockManager::Token RedisLockManager::new_token() {
  unsigned char raw[16];
  if (RAND_bytes(raw, sizeof raw) != 1) {
    throw Error(errc::io,
                "RedisLockManager: RAND_bytes failed; no lock token without a working random source");
  }
  const std::string hex = detail::hex_encode(raw, sizeof raw);
  Token token;
  std::copy(hex.begin(), hex.end(), token.begin());
  return token;
}

void RedisLockManager::ensure_layout() {
  if (layout_checked_.load(std::memory_order_acquire)) return;
  const std::string key = options_.prefix + "lock:layout";
  const std::string layout = std::to_string(slots()) + "/" + std::to_string(resource_slots());
  redis::Reply set = pool_.command({"SET", key, layout, "NX"});
  if (!set.is_status("OK")) {
    if (!set.is_nil()) redis::throw_reply_error(set, options_.connection, "SET " + key);
    redis::Reply get = pool_.command({"GET", key});
    if (get.is_string() && get.str() != layout) {
      throw Error(errc::bad_config,
                  "locks.slots: " + redis::describe(options_.connection) + " key " + key + " says \"" +
                      std::string(get.str()) + "\" (slots/resource_slots) but this process has \"" + layout +
                      "\"; every process must use the same layout (or another prefix), or their locks do "
                      "not exclude each other");
    }
    if (get.is_error()) redis::throw_reply_error(get, options_.connection, "GET " + key);
  }
  layout_checked_.store(true, std::memory_order_release);
}

bool RedisLockManager::try_set(std::uint32_t slot, const Token& token) {
  const std::string key = key_for(slot);
  const std::string_view value(token.data(), token.size());
  redis::Reply reply;
  try {
    reply = pool_.command({"SET", key, value, "NX", "PX", lease_ms_}, redis::Idempotent::no);
  } catch (const redis::AmbiguousError& e) {
    // A timed-out SET may still run when the server wakes up; the slot is
    // then taken for one lease by a token nobody holds (docs/redis.md).
    if (e.timed_out()) throw;
    // The connection broke after the SET was sent: it may have run. Ask.
    redis::Reply get = pool_.command({"GET", key});
    if (get.is_string()) return get.str() == value;
    if (get.is_nil()) return false;
    redis::throw_reply_error(get, options_.connection, "GET " + key);
  }
  if (reply.is_status("OK")) return true;
  if (reply.is_nil()) return false;
  redis::throw_reply_error(reply, options_.connection, "SET " + key + " NX");
}

void RedisLockManager::remember(std::uint32_t slot, const Token& token) {
  Slot& s = slot_table_[slot];
  std::lock_guard lock(s.mu);
  s.holders.push_back(Holder{std::this_thread::get_id(), token});
}

bool RedisLockManager::find_token(std::uint32_t slot, Token* token, bool take) {
  Slot& s = slot_table_[slot];
  std::lock_guard lock(s.mu);
  const auto me = std::this_thread::get_id();
  auto it =
      std::find_if(s.holders.begin(), s.holders.end(), [me](const Holder& h) { return h.thread == me; });
  if (it == s.holders.end()) return false;
  *token = it->token;
  if (take) s.holders.erase(it);
  return true;
}

LockStatus RedisLockManager::try_lock_slot(std::uint32_t slot) {
  ensure_layout();
  const Token token = new_token();
  if (!try_set(slot, token)) return LockStatus::timed_out;
  remember(slot, token);
  return LockStatus::acquired;
}

LockStatus RedisLockManager::lock_slot(std::uint32_t slot, Deadline deadline) {
  ensure_layout();
  // One token for the whole wait, so an ambiguous attempt can recognise itself.
  const Token token = new_token();
  std::chrono::microseconds backoff = kFirstBackoff;
  for (;;) {
    if (try_set(slot, token)) {
      remember(slot, token);
      return LockStatus::acquired;
    }
    const auto now = std::chrono::steady_clock::now();
    if (now >= deadline) return LockStatus::timed_out;
    const auto left = std::chrono::duration_cast<std::chrono::microseconds>(deadline - now);
    std::this_thread::sleep_for(std::min(jittered(backoff), left));
    backoff = std::min(backoff * 2, kMaxBackoff);
  }
}

redis::Reply RedisLockManager::run_script(const std::string& script, const std::string& sha,
                                          std::vector<std::string_view> keys_and_args) {
  std::vector<std::string_view> args{"EVALSHA", sha, "1"};
  args.insert(args.end(), keys_and_args.begin(), keys_and_args.end());
  redis::Reply reply = pool_.command(args);
  if (reply.is_error() && reply.str().substr(0, 8) == "NOSCRIPT") {
    // Not in this server's script cache (a restart, SCRIPT FLUSH): EVAL
    // sends the text and caches it for the next EVALSHA.
    args[0] = "EVAL";
    args[1] = script;
    reply = pool_.command(args);
  }
  return reply;
}

void RedisLockManager::unlock_slot(std::uint32_t slot) {
  Token token;
  if (!find_token(slot, &token, /*take=*/true)) return;
  try {
    const std::string key = key_for(slot);
    redis::Reply reply =
        run_script(kReleaseScript, release_sha(), {key, std::string_view(token.data(), token.size())});
    if (!reply.is_integer()) {
      unlock_errors_.fetch_add(1, std::memory_order_relaxed);
    } else if (reply.integer() == 0) {
      leases_lost_.fetch_add(1, std::memory_order_relaxed);
    }
  } catch (const Error&) {
    // The lease frees the slot on its own; the caller can do nothing better.
    unlock_errors_.fetch_add(1, std::memory_order_relaxed);
  }
}

void RedisLockManager::check_held(std::uint32_t slot) {
  Token token;
  if (!held_by_this_thread(slot) || !find_token(slot, &token, /*take=*/false)) {
    throw Error(errc::failed_precondition,
                "RedisLockManager::check_held: this thread does not hold slot " + std::to_string(slot));
  }
  const std::string key = key_for(slot);
  redis::Reply reply =
      run_script(kRenewScript, renew_sha(), {key, std::string_view(token.data(), token.size()), lease_ms_});
  if (!reply.is_integer()) redis::throw_reply_error(reply, options_.connection, "renewing " + key);
  if (reply.integer() != 1) {
    throw Error(errc::aborted, "lock slot " + std::to_string(slot) + " (" + key +
                                   ") was lost: held longer than locks.lease_ms (" + lease_ms_ +
                                   " ms) and possibly taken by another process; not writing");
  }
}

void RedisLockManager::reopen_after_fork() {
  pool_.after_fork();
  // The child holds none of the parent's locks: forget every token. A slot
  // mutex copied while a parent thread held it cannot be unlocked here; then
  // the whole table is replaced (and the copy leaked: destroying a locked
  // mutex is undefined).
  const std::size_t n = static_cast<std::size_t>(slots()) + resource_slots();
  bool all_free = true;
  std::size_t locked = 0;
  for (; locked < n; ++locked) {
    if (!slot_table_[locked].mu.try_lock()) {
      all_free = false;
      break;
    }
    slot_table_[locked].holders.clear();
  }
  for (std::size_t i = 0; i < locked; ++i) slot_table_[i].mu.unlock();
  if (!all_free) {
    (void)slot_table_.release();
    slot_table_.reset(new Slot[n]);
  }
}

}  // namespace sessionkit

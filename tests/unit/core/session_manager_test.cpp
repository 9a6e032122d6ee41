#include "sessionkit/session_manager.hpp"

#include <gtest/gtest.h>

#include <atomic>
#include <thread>

#include <nlohmann/json.hpp>

#include "record_codec.hpp"
#include "session_id.hpp"
#include "sessionkit/error.hpp"
#include "sessionkit/lock_manager.hpp"
#include "sessionkit/registry.hpp"
#include "sessionkit/store.hpp"

namespace sessionkit {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;

class FakeClock : public Clock {
 public:
  std::chrono::system_clock::time_point now() const override { return t_.load(); }
  void advance(std::chrono::milliseconds d) { t_.store(t_.load() + d); }

 private:
  std::atomic<std::chrono::system_clock::time_point> t_{
      std::chrono::system_clock::time_point(milliseconds(1'700'000'000'000))};
};

errc code_of(const std::function<void()>& fn) {
  try {
    fn();
  } catch (const Error& e) {
    return e.code_value();
  }
  return errc{};
}

// "sid=<value>" from a Set-Cookie value, as a browser would send it back.
std::string cookie_from(const std::optional<std::string>& set_cookie) {
  EXPECT_TRUE(set_cookie.has_value());
  if (!set_cookie) return "";
  return set_cookie->substr(0, set_cookie->find(';'));
}

class SessionManagerTest : public ::testing::Test {
 protected:
  SessionManager make(nlohmann::json doc = nlohmann::json::object()) {
    if (!doc.contains("gc")) doc["gc"] = {{"every_n_requests", 0}};
    if (!doc.contains("store")) doc["store"] = {{"type", "memory"}};
    return SessionManager(Config::from_json(doc), clock);
  }
  std::shared_ptr<FakeClock> clock = std::make_shared<FakeClock>();
};

TEST_F(SessionManagerTest, NewSessionThenRoundTrip) {
  SessionManager m = make();
  std::string cookie;
  {
    Session s = m.open("");
    EXPECT_TRUE(s.is_new());
    EXPECT_TRUE(detail::is_valid_session_id(s.id()));
    EXPECT_EQ(s.created(), clock->now());
    s.data()["n"] = 1;
    s.save();
    auto sc = m.set_cookie(s);
    ASSERT_TRUE(sc);
    EXPECT_EQ(*sc, "sid=" + s.id() + "; Path=/; HttpOnly; SameSite=Lax");
    cookie = cookie_from(sc);
  }
  clock->advance(seconds(10));
  Session s = m.open("theme=dark; " + cookie);
  EXPECT_FALSE(s.is_new());
  EXPECT_EQ(s.data()["n"], 1);
  EXPECT_EQ(s.last_accessed(), clock->now() - seconds(10));
  EXPECT_FALSE(m.set_cookie(s));  // nothing to send for a resumed session
  Stats st = m.stats();
  EXPECT_EQ(st.created, 1u);
  EXPECT_EQ(st.resumed, 1u);
  EXPECT_EQ(st.no_cookie, 1u);
}

TEST_F(SessionManagerTest, BadClientInputGetsANewSessionAndACounter) {
  SessionManager m =
      make({{"cookie", {{"signing_keys", {"c2Vzc2lvbmtpdC10ZXN0LWtleS1udW1iZXItb25lLTEyMzQ1Njc4"}}}}});
  std::string cookie;
  std::string id;
  {
    Session s = m.open("");
    id = s.id();
    cookie = cookie_from(m.set_cookie(s));
  }
  EXPECT_EQ(cookie.size(), 4u + 43 + 1 + 43);
  std::string forged = cookie;
  forged.back() = forged.back() == 'A' ? 'B' : 'A';
  const std::string unknown_signed = [&] {
    SessionManager other =
        make({{"cookie", {{"signing_keys", {"c2Vzc2lvbmtpdC10ZXN0LWtleS1udW1iZXItb25lLTEyMzQ1Njc4"}}}}});
    Session s = other.open("");
    s.invalidate();  // never stored anywhere
    return "sid=" + s.id() + cookie.substr(4 + 43);
  }();
  const char* malformed[] = {"sid=", "sid=../../etc/passwd", "sid=%2e%2e%2f", "sid=\"\"", ";;;", "sid"};
  for (const char* header : malformed) {
    Session s = m.open(header);
    EXPECT_TRUE(s.is_new()) << header;
    EXPECT_NE(s.id(), id);
    EXPECT_TRUE(m.set_cookie(s).has_value());
  }
  {
    Session s = m.open(forged);
    EXPECT_TRUE(s.is_new());
  }
  {
    Session s = m.open("sid=" + id);  // the bare id while signing is on
    EXPECT_TRUE(s.is_new());
  }
  {
    Session s = m.open(std::string("sid=") + std::string(10 * 1024, 'A'));
    EXPECT_TRUE(s.is_new());
  }
  {
    Session s = m.open(cookie);
    EXPECT_FALSE(s.is_new());
    EXPECT_EQ(s.id(), id);
  }
  Stats st = m.stats();
  EXPECT_EQ(st.bad_signatures, 1u);
  EXPECT_EQ(st.malformed_cookies, 6u);  // 4 bad values + bare id + 10 KB
  EXPECT_EQ(st.no_cookie, 3u);          // "", ";;;", "sid"
  EXPECT_EQ(st.resumed, 1u);
  (void)unknown_signed;
}

TEST_F(SessionManagerTest, UnknownIdIsNeverAdopted) {
  SessionManager m = make();
  const std::string id = detail::generate_session_id();
  Session s = m.open("sid=" + id);
  EXPECT_TRUE(s.is_new());
  EXPECT_EQ(s.data(), nlohmann::json::object());
  EXPECT_NE(s.id(), id);
  EXPECT_EQ(m.stats().unknown_ids, 1u);
  s.save();
  EXPECT_FALSE(m.store().load(id));
}

TEST_F(SessionManagerTest, DuplicateCookiesTryEachValue) {
  SessionManager m = make();
  std::string cookie;
  {
    Session s = m.open("");
    s.data()["who"] = "me";
    cookie = cookie_from(m.set_cookie(s));
  }
  Session s = m.open("sid=junk; sid=" + detail::generate_session_id() + "; " + cookie);
  EXPECT_FALSE(s.is_new());
  EXPECT_EQ(s.data()["who"], "me");
}

TEST_F(SessionManagerTest, IdleAndAbsoluteTimeoutsAreEnforcedOnOpen) {
  SessionManager m = make({{"timeouts", {{"idle_s", 60}, {"absolute_s", 300}, {"touch_fraction", 0}}}});
  std::string cookie;
  {
    Session s = m.open("");
    s.data()["x"] = 1;
    cookie = cookie_from(m.set_cookie(s));
  }
  clock->advance(seconds(59));
  { EXPECT_FALSE(m.open(cookie).is_new()); }  // touched: idle restarts
  clock->advance(seconds(59));
  { EXPECT_FALSE(m.open(cookie).is_new()); }
  clock->advance(seconds(60));
  {
    Session s = m.open(cookie);
    EXPECT_TRUE(s.is_new());
  }
  EXPECT_EQ(m.stats().expired, 1u);

  {
    Session s = m.open("");
    s.data()["x"] = 1;
    cookie = cookie_from(m.set_cookie(s));
  }
  for (int i = 0; i < 5; ++i) {
    clock->advance(seconds(50));
    Session s = m.open(cookie);
    ASSERT_FALSE(s.is_new()) << i;  // 250 s in, always active
  }
  clock->advance(seconds(50));  // 300 s: the absolute limit
  EXPECT_TRUE(m.open(cookie).is_new());
  EXPECT_EQ(m.stats().expired, 2u);
}

TEST_F(SessionManagerTest, PerSessionTimeoutPersists) {
  SessionManager m = make({{"timeouts", {{"idle_s", 60}}}});
  std::string cookie;
  {
    Session s = m.open("");
    s.set_timeout(seconds(600));
    EXPECT_EQ(s.timeout(), seconds(600));
    cookie = cookie_from(m.set_cookie(s));
  }
  clock->advance(seconds(300));
  Session s = m.open(cookie);
  EXPECT_FALSE(s.is_new());
  EXPECT_EQ(s.timeout(), seconds(600));
  EXPECT_EQ(code_of([&] { s.set_timeout(seconds(0)); }), errc::invalid_argument);
}

TEST_F(SessionManagerTest, LazyWriteSkipsUnchangedUntilTouchIsDue) {
  SessionManager m = make({{"timeouts", {{"idle_s", 1000}, {"touch_fraction", 0.1}}}});
  std::string cookie;
  {
    Session s = m.open("");
    s.data()["n"] = 1;
    cookie = cookie_from(m.set_cookie(s));
  }
  EXPECT_EQ(m.stats().saves, 1u);
  clock->advance(seconds(50));
  { Session s = m.open(cookie); }  // unchanged, touch not due (100 s)
  EXPECT_EQ(m.stats().unchanged, 1u);
  EXPECT_EQ(m.stats().touches, 0u);
  clock->advance(seconds(60));
  { Session s = m.open(cookie); }  // 110 s since the stored access: touch
  EXPECT_EQ(m.stats().touches, 1u);
  {
    Session s = m.open(cookie);
    EXPECT_EQ(s.last_accessed(), clock->now());
    s.data()["n"] = 2;
    s.save();  // changed: written
    s.data()["n"] = 3;
    s.save();  // changed again, lock still held
    EXPECT_TRUE(s.locked());
  }
  EXPECT_EQ(m.stats().saves, 3u);
  Session s = m.open(cookie);
  EXPECT_EQ(s.data()["n"], 3);
  EXPECT_EQ(s.generation(), 4u);
}

TEST_F(SessionManagerTest, AutosaveOffWritesOnlyOnSave) {
  SessionManager m = make({{"session", {{"autosave", false}}}});
  std::string cookie;
  {
    Session s = m.open("");
    s.data()["n"] = 1;
    s.save();
    s.data()["n"] = 2;  // dropped
    cookie = cookie_from(m.set_cookie(s));
  }
  Session s = m.open(cookie);
  EXPECT_EQ(s.data()["n"], 1);
}

TEST_F(SessionManagerTest, InvalidateDeletesAndClearsTheCookie) {
  SessionManager m = make();
  std::string cookie;
  std::string id;
  {
    Session s = m.open("");
    id = s.id();
    cookie = cookie_from(m.set_cookie(s));
  }
  {
    Session s = m.open(cookie);
    s.invalidate();
    EXPECT_FALSE(m.store().load(id));
    EXPECT_TRUE(s.data().empty());
    auto sc = m.set_cookie(s);
    ASSERT_TRUE(sc);
    EXPECT_EQ(sc->rfind("sid=; Path=/; Max-Age=0", 0), 0u) << *sc;
    s.data()["x"] = 1;
    s.save();  // a no-op after invalidate
  }
  EXPECT_FALSE(m.store().load(id));
  EXPECT_TRUE(m.open(cookie).is_new());
}

TEST_F(SessionManagerTest, RegenerateKeepsDataAndKillsTheOldIdAtOnce) {
  SessionManager m = make();
  std::string old_cookie;
  std::string old_id;
  {
    Session s = m.open("");
    s.data()["user"] = "ada";
    old_id = s.id();
    old_cookie = cookie_from(m.set_cookie(s));
  }
  std::string new_cookie;
  {
    Session s = m.open(old_cookie);
    s.regenerate_id();
    EXPECT_NE(s.id(), old_id);
    EXPECT_TRUE(s.regenerated());
    EXPECT_FALSE(m.store().load(old_id));  // dead before the request ends
    EXPECT_TRUE(m.store().load(s.id()));
    new_cookie = cookie_from(m.set_cookie(s));
    EXPECT_EQ(new_cookie, "sid=" + s.id());
  }
  EXPECT_TRUE(m.open(old_cookie).is_new());
  Session s = m.open(new_cookie);
  EXPECT_FALSE(s.is_new());
  EXPECT_EQ(s.data()["user"], "ada");
  EXPECT_EQ(m.stats().regenerated, 1u);
}

TEST_F(SessionManagerTest, UnlockReleasesAndFurtherWritesAreRefused) {
  SessionManager m = make();
  Session s = m.open("");
  s.data()["n"] = 1;
  s.unlock();
  EXPECT_FALSE(s.locked());
  EXPECT_EQ(s.data()["n"], 1);
  EXPECT_EQ(code_of([&] { s.save(); }), errc::failed_precondition);
  EXPECT_EQ(code_of([&] { s.invalidate(); }), errc::failed_precondition);
  EXPECT_EQ(code_of([&] { s.regenerate_id(); }), errc::failed_precondition);
  // Another thread can take the session at once.
  const std::string cookie = cookie_from(m.set_cookie(s));
  std::thread([&] {
    Session t = m.open(cookie);
    EXPECT_FALSE(t.is_new());
    EXPECT_EQ(t.data()["n"], 1);
  }).join();
}

TEST_F(SessionManagerTest, DiscardReleasesWithoutSaving) {
  SessionManager m = make();
  std::string cookie;
  {
    Session s = m.open("");
    s.data()["n"] = 1;
    cookie = cookie_from(m.set_cookie(s));
  }
  {
    Session s = m.open(cookie);
    s.data()["n"] = 2;
    s.discard();
    EXPECT_FALSE(s.locked());
    EXPECT_EQ(code_of([&] { s.save(); }), errc::failed_precondition);
    std::thread([&] { EXPECT_EQ(m.open(cookie).data()["n"], 1); }).join();  // unlocked, unchanged
  }
  EXPECT_EQ(m.open(cookie).data()["n"], 1);
}

TEST_F(SessionManagerTest, SameSessionTwiceInOneThreadDoesNotDeadlock) {
  SessionManager m = make({{"locks", {{"type", "thread"}, {"wait_ms", 200}}}});
  std::string cookie;
  {
    Session s = m.open("");
    s.data()["n"] = 1;
    cookie = cookie_from(m.set_cookie(s));
  }
  Session a = m.open(cookie);
  Session b = m.open(cookie);  // re-enters the held slot instead of waiting 200 ms and failing
  EXPECT_EQ(a.id(), b.id());
  a.data()["n"] = 2;
  a.save();
  EXPECT_EQ(b.data()["n"], 1);  // b is its own snapshot, taken at its open
  EXPECT_EQ(m.stats().locks.reentries, 1u);
  a.unlock();
  // b still holds the slot: another thread must wait.
  std::thread([&] { EXPECT_EQ(code_of([&] { m.open(cookie); }), errc::unavailable); }).join();
  b.unlock();
  EXPECT_EQ(m.stats().lock_timeouts, 1u);
}

TEST_F(SessionManagerTest, LockDeadlineIsUnavailable) {
  SessionManager m = make({{"locks", {{"type", "thread"}, {"wait_ms", 50}}}});
  Session s = m.open("");
  const std::string cookie = cookie_from(m.set_cookie(s));
  s.save();
  std::thread([&] {
    const auto start = std::chrono::steady_clock::now();
    EXPECT_EQ(code_of([&] { m.open(cookie); }), errc::unavailable);
    EXPECT_GE(std::chrono::steady_clock::now() - start, milliseconds(50));
  }).join();
}

TEST_F(SessionManagerTest, ManyThreadsLoseNoUpdate) {
  // Every open must get the lock; an unfair mutex may keep one thread waiting
  // through many of the others' turns on a loaded machine.
  SessionManager m = make({{"locks", {{"type", "thread"}, {"wait_ms", 120'000}}}});
  std::string cookie;
  {
    Session s = m.open("");
    s.data()["n"] = 0;
    cookie = cookie_from(m.set_cookie(s));
  }
  constexpr int kThreads = 8;
  constexpr int kIncrements = 2000;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < kIncrements; ++i) {
        Session s = m.open(cookie);
        ASSERT_FALSE(s.is_new());
        s.data()["n"] = s.data()["n"].get<int>() + 1;
        s.save();
      }
    });
  }
  for (auto& t : threads) t.join();
  Session s = m.open(cookie);
  EXPECT_EQ(s.data()["n"], kThreads * kIncrements);
  EXPECT_EQ(m.stats().saves, 1u + kThreads * kIncrements);
}

TEST_F(SessionManagerTest, LimitsAreEnforcedOnSaveAndThePreviousRecordSurvives) {
  SessionManager m = make({{"limits", {{"max_record_bytes", 1024}, {"max_depth", 3}}}});
  std::string cookie;
  {
    Session s = m.open("");
    s.data()["n"] = 1;
    cookie = cookie_from(m.set_cookie(s));
  }
  {
    Session s = m.open(cookie);
    s.data()["big"] = std::string(2000, 'x');
    EXPECT_EQ(code_of([&] { s.save(); }), errc::resource_exhausted);
    s.data().erase("big");
    s.data()["deep"] = {{"a", {{"b", {{"c", 1}}}}}};
    EXPECT_EQ(code_of([&] { s.save(); }), errc::invalid_argument);
    s.data() = nlohmann::json::array();
    EXPECT_EQ(code_of([&] { s.save(); }), errc::invalid_argument);
  }  // the destructor's autosave fails too, and is counted
  EXPECT_EQ(m.stats().save_errors, 1u);
  Session s = m.open(cookie);
  EXPECT_EQ(s.data(), (nlohmann::json{{"n", 1}}));
}

TEST_F(SessionManagerTest, CorruptRecordIsDataLossAndANewSession) {
  SessionManager m = make();
  std::string cookie;
  std::string id;
  {
    Session s = m.open("");
    id = s.id();
    cookie = cookie_from(m.set_cookie(s));
  }
  const auto later = std::chrono::system_clock::now() + std::chrono::hours(1);
  const std::int64_t now_ms =
      std::chrono::duration_cast<milliseconds>(clock->now().time_since_epoch()).count();
  const std::string garbage[] = {
      "", "garbage", std::string(48, '\0'),
      detail::encode_record(detail::RecordHeader{now_ms, now_ms, 60, 0, 1}, "\xc1")};
  for (const std::string& g : garbage) {
    m.store().save(id, g, later);
    Session s = m.open(cookie);
    EXPECT_TRUE(s.is_new());
    EXPECT_EQ(s.data(), nlohmann::json::object());
    s.invalidate();
    EXPECT_FALSE(m.store().load(id));  // the corrupt record is gone
  }
  EXPECT_EQ(m.stats().corrupt_records, 4u);

  // A corrupt record under the first cookie, a good one under the second:
  // the good one opens, with its own data and nothing of the other.
  std::string good_cookie;
  {
    Session s = m.open("");
    s.data()["who"] = "good";
    good_cookie = cookie_from(m.set_cookie(s));
  }
  m.store().save(id, detail::encode_record(detail::RecordHeader{now_ms, now_ms, 60, 0, 1}, "\x81\xa1k"),
                 later);
  Session s = m.open(cookie + "; " + good_cookie);
  EXPECT_FALSE(s.is_new());
  EXPECT_EQ(s.data(), nlohmann::json({{"who", "good"}}));
  s.save();
  EXPECT_EQ(m.stats().unchanged, 1u);  // compared with the good record, not the corrupt one
  EXPECT_EQ(m.stats().corrupt_records, 5u);
}

// A store whose next `failures` remove() calls fail; otherwise the memory store.
class RemoveFailsStore final : public Store {
 public:
  static inline std::atomic<int> failures{0};
  explicit RemoveFailsStore(std::unique_ptr<Store> inner) : inner_(std::move(inner)) {}
  std::optional<std::string> load(std::string_view id) override { return inner_->load(id); }
  void save(std::string_view id, std::string_view record, TimePoint expires_at) override {
    inner_->save(id, record, expires_at);
  }
  bool remove(std::string_view id) override {
    if (failures.fetch_sub(1) > 0) throw Error(errc::io, "remove failed (test)");
    return inner_->remove(id);
  }
  SweepResult sweep(TimePoint now, std::chrono::milliseconds budget) override {
    return inner_->sweep(now, budget);
  }
  void for_each(const std::function<bool(std::string_view, std::string_view)>& fn) override {
    inner_->for_each(fn);
  }
  StoreInfo info() const override { return inner_->info(); }
  bool shared_across_processes() const override { return false; }

 private:
  std::unique_ptr<Store> inner_;
};

TEST_F(SessionManagerTest, RegenerateThatCannotRemoveTheOldRecordLeavesTheSessionWhole) {
  StoreType memory = Registry::global().store("memory");
  StoreType flaky = memory;
  flaky.create = [memory](const nlohmann::json& section, const std::filesystem::path& dir) {
    nlohmann::json inner = section;
    inner["type"] = "memory";
    return std::make_unique<RemoveFailsStore>(memory.create(inner, dir));
  };
  flaky.validate = [memory](const nlohmann::json& section, const std::filesystem::path& dir) {
    nlohmann::json inner = section;
    inner["type"] = "memory";
    memory.validate(inner, dir);
  };
  Registry::global().add_store("test-remove-fails", flaky);
  SessionManager m = make({{"store", {{"type", "test-remove-fails"}}}});
  std::string cookie;
  std::string id;
  {
    Session s = m.open("");
    s.data()["user"] = "ada";
    id = s.id();
    cookie = cookie_from(m.set_cookie(s));
  }
  {
    Session s = m.open(cookie);
    s.data()["step"] = 2;
    RemoveFailsStore::failures = 1;  // the old record's removal
    EXPECT_EQ(code_of([&] { s.regenerate_id(); }), errc::io);
    EXPECT_EQ(s.id(), id);
    EXPECT_FALSE(s.regenerated());
    EXPECT_EQ(m.set_cookie(s), std::nullopt);  // the client keeps its cookie
    s.save();  // the change reaches the old record: it is compared with that record
  }
  Session s = m.open(cookie);
  EXPECT_FALSE(s.is_new());
  EXPECT_EQ(s.data(), nlohmann::json({{"user", "ada"}, {"step", 2}}));
  std::size_t records = 0;
  m.store().for_each([&](std::string_view, std::string_view) { return ++records > 0; });
  EXPECT_EQ(records, 1u);  // the record written under the new id was removed again
}

TEST_F(SessionManagerTest, SweepAndEveryNRequestsGc) {
  // A budget no stall can exhaust: the one sweep must remove all five.
  SessionManager m =
      make({{"timeouts", {{"idle_s", 60}}}, {"gc", {{"every_n_requests", 10}, {"budget_ms", 60'000}}}});
  for (int i = 0; i < 5; ++i) {
    Session s = m.open("");
    s.data()["i"] = i;
  }
  EXPECT_EQ(m.store().info().records, 5);
  clock->advance(seconds(61));
  for (int i = 0; i < 4; ++i) m.open("").invalidate();
  EXPECT_EQ(m.stats().sweeps, 0u);
  m.open("").invalidate();  // the 10th request sweeps first
  EXPECT_EQ(m.stats().sweeps, 1u);
  EXPECT_EQ(m.stats().swept, 5u);
  EXPECT_EQ(m.store().info().records, 0);
  SweepResult r = m.sweep(milliseconds(10));
  EXPECT_TRUE(r.complete);
  EXPECT_EQ(r.removed, 0u);
}

TEST_F(SessionManagerTest, SecureFollowsTheConfigAndTheTransport) {
  SessionManager automatic = make();
  {
    Session s = automatic.open("", RequestInfo{true});
    EXPECT_NE(automatic.set_cookie(s)->find("; Secure"), std::string::npos);
  }
  {
    Session s = automatic.open("", RequestInfo{false});
    EXPECT_EQ(automatic.set_cookie(s)->find("; Secure"), std::string::npos);
  }
  SessionManager always = make({{"cookie", {{"name", "__Host-sid"}, {"secure", true}, {"max_age_s", 3600}}}});
  Session s = always.open("");
  EXPECT_EQ(*always.set_cookie(s),
            "__Host-sid=" + s.id() + "; Path=/; Max-Age=3600; Secure; HttpOnly; SameSite=Lax");
}

TEST_F(SessionManagerTest, ResourceLocksExcludeAndKeepTheOrderRule) {
  SessionManager m = make();
  {
    ResourceLock r = m.lock_resource("ledger", milliseconds(100));
    EXPECT_TRUE(r.owns_lock());
    EXPECT_FALSE(r.recovered_from_dead_owner());
    std::thread([&] {
      EXPECT_FALSE(m.try_lock_resource("ledger").has_value());
      EXPECT_EQ(code_of([&] { m.lock_resource("ledger", milliseconds(20)); }), errc::unavailable);
    }).join();
    // Holding a resource, opening a session is refused rather than risking deadlock.
    EXPECT_EQ(code_of([&] { m.open(""); }), errc::failed_precondition);
    ResourceLock moved = std::move(r);
    EXPECT_FALSE(r.owns_lock());
    EXPECT_TRUE(moved.owns_lock());
  }
  std::thread([&] {
    auto r = m.try_lock_resource("ledger");
    EXPECT_TRUE(r.has_value());
  }).join();
  // Session first, then resource: allowed.
  Session s = m.open("");
  ResourceLock r = m.lock_resource("ledger", milliseconds(100));
  EXPECT_TRUE(r.owns_lock());
  EXPECT_EQ(code_of([&] { m.lock_resource("", milliseconds(1)); }), errc::invalid_argument);
}

}  // namespace
}  // namespace sessionkit

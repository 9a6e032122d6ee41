#include "sessionkit/config.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <fstream>

#include <nlohmann/json.hpp>

#include "sessionkit/error.hpp"
#include "sessionkit/lock_manager.hpp"
#include "sessionkit/registry.hpp"
#include "tests/support/test_support.hpp"

namespace sessionkit {
namespace {

// The message of the bad_config error `doc` raises, or "" if it is accepted.
std::string rejection(const nlohmann::json& doc) {
  try {
    Config::from_json(doc);
  } catch (const Error& e) {
    EXPECT_EQ(e.code_value(), errc::bad_config) << e.what();
    return e.what();
  }
  return "";
}

bool have_store(const std::string& type) {
  auto stores = Registry::global().store_types();
  return std::find(stores.begin(), stores.end(), type) != stores.end();
}

TEST(ConfigTest, DefaultsAreDocumentedOnes) {
  Config c = Config::from_json(nlohmann::json::object());
  // LMDB with shm locks when LMDB is built in, else the memory store.
  EXPECT_EQ(c.store.type, have_store("lmdb") ? "lmdb" : "memory");
  EXPECT_EQ(c.locks.type, have_store("lmdb") ? "shm" : "thread");
  EXPECT_EQ(*c.store.section, nlohmann::json({{"type", c.store.type}}));
  EXPECT_EQ(c.locks.section->at("type"), c.locks.type);
  const Config built;
  EXPECT_EQ(built.store.type, c.store.type);
  EXPECT_EQ(*built.locks.section, *c.locks.section);  // both resolve against the working directory
  EXPECT_EQ(c.cookie.name, "sid");
  EXPECT_EQ(c.cookie.path, "/");
  EXPECT_EQ(c.cookie.secure, SecureMode::automatic);
  EXPECT_TRUE(c.cookie.http_only);
  EXPECT_EQ(c.cookie.same_site, SameSite::lax);
  EXPECT_EQ(c.timeouts.idle, std::chrono::seconds(1800));
  EXPECT_EQ(c.timeouts.absolute, std::chrono::seconds(86400));
  EXPECT_EQ(c.gc.every_n_requests, 1000u);
  EXPECT_EQ(c.gc.budget, std::chrono::milliseconds(2));
  EXPECT_EQ(c.limits.max_record_bytes, 65536u);
  EXPECT_EQ(c.limits.max_depth, 64u);
  EXPECT_TRUE(c.session.autosave);
}

// The region of default shm locks is named after the store's canonical path:
// "sk-" and 32 hex digits, the same for every config that reaches one store.
TEST(ConfigTest, DefaultShmRegionIsNamedAfterTheStorePath) {
  if (!have_store("lmdb") || !have_store("file")) GTEST_SKIP() << "needs the lmdb and file stores";
  auto name_of = [](const nlohmann::json& doc, const std::string& base) {
    const Config c = Config::from_json(doc, base);
    return c.locks.section->value("name", std::string("(none)"));
  };
  const std::string a = name_of(nlohmann::json::object(), "/srv/app-a");
  EXPECT_EQ(a.size(), 35u) << a;
  EXPECT_EQ(a.rfind("sk-", 0), 0u) << a;
  EXPECT_EQ(a.find_first_not_of("0123456789abcdef", 3), std::string::npos) << a;
  EXPECT_NE(name_of(nlohmann::json::object(), "/srv/app-b"), a);  // another store, another region
  // One store reached from two config directories, and written two ways.
  EXPECT_EQ(name_of({{"store", {{"path", "/srv/app-a/sessions.mdb"}}}}, "/etc/other"), a);
  EXPECT_EQ(name_of({{"store", {{"path", "../app-a/./sessions.mdb"}}}}, "/srv/app-b"), a);
  // Explicit shm without a name, and a typeless section, get it too.
  EXPECT_EQ(name_of({{"locks", {{"type", "shm"}}}}, "/srv/app-a"), a);
  EXPECT_EQ(name_of({{"locks", {{"slots", 64}}}}, "/srv/app-a"), a);
  // A name that is given stays; a file store is named after its directory.
  EXPECT_EQ(name_of({{"locks", {{"name", "mine"}}}}, "/srv/app-a"), "mine");
  const std::string file = name_of({{"store", {{"type", "file"}}}}, "/srv/app-a");
  EXPECT_EQ(file.rfind("sk-", 0), 0u);
  EXPECT_NE(file, a);
  // Locks of other types get no name.
  EXPECT_EQ(name_of({{"locks", {{"type", "thread"}}}}, "/srv/app-a"), "(none)");
}

TEST(ConfigTest, DefaultLocksFollowTheStore) {
  auto locks_of = [](const nlohmann::json& doc) { return Config::from_json(doc).locks.type; };
  EXPECT_EQ(locks_of({{"store", {{"type", "memory"}}}}), "thread");
  // A locks section without a type keeps its keys and takes the store's default.
  Config c = Config::from_json({{"store", {{"type", "memory"}}}, {"locks", {{"slots", 64}}}});
  EXPECT_EQ(c.locks.type, "thread");
  EXPECT_EQ(c.locks.section->at("slots"), 64);
  // Named locks are taken as written, also with a store that has a default.
  EXPECT_EQ(locks_of({{"store", {{"type", "memory"}}}, {"locks", {{"type", "none"}}}}), "none");
  if (have_store("lmdb")) {
    EXPECT_EQ(locks_of({{"store", {{"type", "lmdb"}, {"path", "/var/lib/app/s.mdb"}}}}), "shm");
    EXPECT_EQ(locks_of({{"store", {{"path", "/var/lib/app/s.mdb"}}}}), "shm");  // type lmdb by default
    EXPECT_EQ(locks_of({{"locks", {{"type", "thread"}}}}), "thread");
  }
  if (have_store("file")) {
    EXPECT_EQ(locks_of({{"store", {{"type", "file"}}}}), "shm");
  }
  if (have_store("redis")) {
    EXPECT_NE(rejection({{"store", {{"type", "redis"}}}})
                  .find("locks: needs a section: the \"redis\" store has no default lock manager"),
              std::string::npos);
    EXPECT_NE(rejection({{"store", {{"type", "redis"}}}, {"locks", {{"wait_ms", 100}}}})
                  .find("locks.type: the \"redis\" store has no default lock manager"),
              std::string::npos);
    EXPECT_NE(
        rejection({{"store", {{"type", "redis"}}}, {"locks", "redis"}}).find("locks: expected a JSON object"),
        std::string::npos);
    EXPECT_EQ(locks_of({{"store", {{"type", "redis"}}}, {"locks", {{"type", "redis"}}}}), "redis");
  }
  // An unknown store is reported as such, not as a locks problem.
  EXPECT_NE(rejection({{"store", {{"type", "dbm"}}}}).find("store.type: unknown store type"),
            std::string::npos);
}

TEST(ConfigTest, DesignExampleIsAcceptedAsWritten) {
  nlohmann::json doc = nlohmann::json::parse(R"({
    "store":   { "type": "lmdb", "path": "/var/lib/myapp/sessions.mdb", "map_size_mb": 1024, "durability": "nosync" },
    "locks":   { "type": "shm", "name": "myapp-sessions", "slots": 1024, "wait_ms": 5000 },
    "cookie":  { "name": "sid", "path": "/", "same_site": "Lax", "http_only": true, "secure": "auto",
                 "signing_keys": ["c2Vzc2lvbmtpdC10ZXN0LWtleS1udW1iZXItb25lLTEyMzQ1Njc4",
                                  "c2Vzc2lvbmtpdC10ZXN0LWtleS1udW1iZXItdHdvLTEyMzQ1Njc4OTA="] },
    "timeouts": { "idle_s": 1800, "absolute_s": 86400 },
    "gc":      { "every_n_requests": 1000, "budget_ms": 2 },
    "limits":  { "max_record_bytes": 65536, "max_depth": 64 }
  })");
  auto stores = Registry::global().store_types();
  auto lockers = Registry::global().lock_manager_types();
  bool have_lmdb = std::find(stores.begin(), stores.end(), "lmdb") != stores.end();
  bool have_shm = std::find(lockers.begin(), lockers.end(), "shm") != lockers.end();
  // Until both back ends are built in, the sections they own fall back to
  // in-process types; every other key is checked as written.
  if (!have_lmdb || !have_shm) {
    doc["store"] = {{"type", "memory"}};
    doc["locks"] = {{"type", "thread"}, {"slots", 1024}, {"wait_ms", 5000}};
  }
  Config c = Config::from_json(doc);
  EXPECT_EQ(c.cookie.signing_keys.size(), 2u);
  EXPECT_EQ(c.cookie.signing_keys[0], "sessionkit-test-key-number-one-12345678");
  EXPECT_EQ(c.cookie.secure, SecureMode::automatic);
  EXPECT_EQ(c.gc.every_n_requests, 1000u);
}

TEST(ConfigTest, UnknownKeysAreRejectedByName) {
  EXPECT_NE(rejection({{"colour", 1}}).find("colour: unknown key"), std::string::npos);
  EXPECT_NE(rejection({{"cookie", {{"nmae", "x"}}}}).find("cookie.nmae: unknown key"), std::string::npos);
  EXPECT_NE(rejection({{"timeouts", {{"idle", 5}}}}).find("timeouts.idle: unknown key"), std::string::npos);
  EXPECT_NE(rejection({{"store", {{"type", "memory"}, {"path", "/x"}}}}).find("store.path: unknown key"),
            std::string::npos);
  EXPECT_NE(rejection({{"locks", {{"type", "thread"}, {"nmae", "x"}}}}).find("locks.nmae: unknown key"),
            std::string::npos);
}

TEST(ConfigTest, WrongTypesAndBadValuesNameTheKey) {
  EXPECT_NE(rejection({{"timeouts", {{"idle_s", "600"}}}}).find("timeouts.idle_s"), std::string::npos);
  EXPECT_NE(rejection({{"timeouts", {{"idle_s", 0}}}}).find("timeouts.idle_s"), std::string::npos);
  EXPECT_NE(rejection({{"timeouts", {{"idle_s", -5}}}}).find("timeouts.idle_s"), std::string::npos);
  EXPECT_NE(rejection({{"timeouts", {{"touch_fraction", 2.0}}}}).find("timeouts.touch_fraction"),
            std::string::npos);
  EXPECT_NE(rejection({{"cookie", {{"secure", "yes"}}}}).find("cookie.secure"), std::string::npos);
  EXPECT_NE(rejection({{"cookie", {{"same_site", "lax"}}}}).find("cookie.same_site"), std::string::npos);
  EXPECT_NE(rejection({{"cookie", {{"name", "s id"}}}}).find("cookie.name"), std::string::npos);
  EXPECT_NE(rejection({{"cookie", {{"path", "no-slash"}}}}).find("cookie.path"), std::string::npos);
  EXPECT_NE(rejection({{"cookie", {{"signing_keys", {"short"}}}}}).find("cookie.signing_keys[0]"),
            std::string::npos);
  EXPECT_NE(
      rejection({{"cookie", {{"signing_keys", {"c2hvcnQ="}}}}}).find("cookie.signing_keys[0]: a signing key"),
      std::string::npos);
  EXPECT_NE(rejection({{"cookie", {{"signing_keys", "abc"}}}}).find("cookie.signing_keys"),
            std::string::npos);
  EXPECT_NE(rejection({{"limits", {{"max_depth", 0}}}}).find("limits.max_depth"), std::string::npos);
  EXPECT_NE(rejection({{"gc", {{"budget_ms", 0}}}}).find("gc.budget_ms"), std::string::npos);
  EXPECT_NE(rejection({{"session", {{"autosave", 1}}}}).find("session.autosave"), std::string::npos);
  EXPECT_NE(rejection({{"store", {{"type", "dbm"}}}}).find("store.type: unknown store type \"dbm\""),
            std::string::npos);
  EXPECT_NE(rejection({{"store", {{"type", 3}}}}).find("store.type"), std::string::npos);
  EXPECT_NE(rejection({{"locks", {{"type", "global"}}}}).find("locks.type: unknown lock manager type"),
            std::string::npos);
  EXPECT_NE(rejection({{"locks", {{"type", "thread"}, {"slots", 1}}}}).find("locks.slots"),
            std::string::npos);
  EXPECT_NE(rejection({{"store", "memory"}}).find("store: expected a JSON object"), std::string::npos);
  EXPECT_NE(rejection(nlohmann::json::array()).find("expected a JSON object"), std::string::npos);
}

TEST(ConfigTest, CookiePrefixesAndSameSiteNoneAreChecked) {
  EXPECT_NE(rejection({{"cookie", {{"name", "__Host-sid"}}}}).find("__Host-"), std::string::npos);
  EXPECT_EQ(rejection({{"cookie", {{"name", "__Host-sid"}, {"secure", true}}}}), "");
  EXPECT_NE(rejection({{"cookie", {{"name", "__Host-sid"}, {"secure", true}, {"domain", "a.org"}}}})
                .find("__Host-"),
            std::string::npos);
  EXPECT_NE(rejection({{"cookie", {{"name", "__Secure-sid"}, {"secure", "auto"}}}}).find("__Secure-"),
            std::string::npos);
  EXPECT_NE(rejection({{"cookie", {{"same_site", "None"}, {"secure", false}}}}).find("cookie.same_site"),
            std::string::npos);
  EXPECT_EQ(rejection({{"cookie", {{"same_site", "None"}, {"secure", true}}}}), "");
}

TEST(ConfigTest, ProcessLocalStoreRefusesCrossProcessLocks) {
  LockManagerType shared;
  shared.shared_across_processes = true;
  shared.validate = [](const nlohmann::json&, const std::filesystem::path&) {};
  shared.create = [](const nlohmann::json&, const std::filesystem::path&) -> std::unique_ptr<LockManager> {
    return nullptr;
  };
  Registry::global().add_lock_manager("test-cross-process", shared);
  std::string msg = rejection({{"store", {{"type", "memory"}}}, {"locks", {{"type", "test-cross-process"}}}});
  EXPECT_NE(msg.find("store.type: the \"memory\" store keeps sessions inside one process"), std::string::npos)
      << msg;
}

TEST(ConfigTest, FromFileNamesTheFile) {
  testing::TempDir dir;
  const auto path = dir / "sessions.json";
  try {
    Config::from_file(path);
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(e.code_value(), errc::bad_config);
    EXPECT_NE(std::string(e.what()).find(path.string() + ": cannot be read"), std::string::npos);
  }
  std::ofstream(path) << "{ \"cookie\": { \"name\": ";
  try {
    Config::from_file(path);
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("not valid JSON"), std::string::npos);
  }
  std::ofstream(path, std::ios::trunc) << R"({ "gc": { "budget_ms": "2" } })";
  try {
    Config::from_file(path);
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(path.string() + ": gc.budget_ms"), std::string::npos) << e.what();
  }
  std::ofstream(path, std::ios::trunc) << R"({ "cookie": { "name": "app" } })";
  Config c = Config::from_file(path);
  EXPECT_EQ(c.cookie.name, "app");
  EXPECT_EQ(c.base_dir, dir.path());
}

}  // namespace
}  // namespace sessionkit

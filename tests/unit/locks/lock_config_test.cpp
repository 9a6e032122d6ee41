// The "locks" section of shm and fcntl: every bad value is Error(bad_config)
// naming its key, from validate() and from create() alike.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "locks/shm_lock_manager.hpp"
#include "sessionkit/config.hpp"
#include "sessionkit/error.hpp"
#include "sessionkit/registry.hpp"
#include "tests/support/test_support.hpp"

namespace sessionkit {
namespace {

// The bad_config message both validate() and create() give for `section`,
// or "" when validate() accepts it.
std::string rejection(const nlohmann::json& section) {
  const LockManagerType t = Registry::global().lock_manager(section.at("type").get<std::string>());
  std::string validate_message, create_message;
  try {
    t.validate(section, "/tmp");
  } catch (const Error& e) {
    EXPECT_EQ(e.code_value(), errc::bad_config) << e.what();
    validate_message = e.what();
  }
  if (validate_message.empty()) return "";
  try {
    t.create(section, "/tmp");
    ADD_FAILURE() << "create() accepted what validate() refused: " << section.dump();
  } catch (const Error& e) {
    EXPECT_EQ(e.code_value(), errc::bad_config) << e.what();
    create_message = e.what();
  }
  EXPECT_EQ(create_message, validate_message);
  return validate_message;
}

#define EXPECT_REJECTED_NAMING(section, key)                                \
  do {                                                                      \
    const std::string message = rejection(section);                         \
    EXPECT_NE(message.find(key), std::string::npos)                         \
        << "section " << (section).dump() << " gave \"" << message << "\""; \
  } while (0)

TEST(LockConfigTest, BothTypesAreRegistered) {
  auto types = Registry::global().lock_manager_types();
  EXPECT_NE(std::find(types.begin(), types.end(), "shm"), types.end());
  EXPECT_NE(std::find(types.begin(), types.end(), "fcntl"), types.end());
}

TEST(LockConfigTest, ValidSectionsAreAccepted) {
  EXPECT_EQ(rejection({{"type", "shm"}}), "");
  EXPECT_EQ(rejection({{"type", "shm"},
                       {"name", "myapp-sessions"},
                       {"slots", 1024},
                       {"resource_slots", 64},
                       {"wait_ms", 5000},
                       {"owner", "root"}}),
            "");
  EXPECT_EQ(rejection({{"type", "fcntl"}}), "");
  EXPECT_EQ(rejection({{"type", "fcntl"},
                       {"path", "x.locks"},
                       {"slots", 8},
                       {"resource_slots", 1},
                       {"wait_ms", 0},
                       {"owner", "root"}}),
            "");
}

TEST(LockConfigTest, UnknownKeyIsNamed) {
  EXPECT_REJECTED_NAMING(nlohmann::json({{"type", "shm"}, {"colour", "red"}}), "locks.colour");
  EXPECT_REJECTED_NAMING(nlohmann::json({{"type", "fcntl"}, {"name", "x"}}), "locks.name");
  EXPECT_REJECTED_NAMING(nlohmann::json({{"type", "shm"}, {"path", "x"}}), "locks.path");
}

TEST(LockConfigTest, TooFewSlotsAreNamed) {
  for (const char* type : {"shm", "fcntl"}) {
    EXPECT_REJECTED_NAMING(nlohmann::json({{"type", type}, {"slots", 1}}), "locks.slots");
    EXPECT_REJECTED_NAMING(nlohmann::json({{"type", type}, {"resource_slots", 0}}), "locks.resource_slots");
    EXPECT_REJECTED_NAMING(nlohmann::json({{"type", type}, {"slots", "many"}}), "locks.slots");
    EXPECT_REJECTED_NAMING(nlohmann::json({{"type", type}, {"wait_ms", -1}}), "locks.wait_ms");
  }
}

TEST(LockConfigTest, BadShmNamesAreNamed) {
  for (const std::string& bad : {std::string(""), std::string("a/b"), std::string("/leading"),
                                 std::string("has space"), std::string("tab\there"), std::string("nul\0x", 5),
                                 std::string("caf\xc3\xa9"), std::string(201, 'n')}) {
    EXPECT_REJECTED_NAMING(nlohmann::json({{"type", "shm"}, {"name", bad}}), "locks.name");
  }
  EXPECT_REJECTED_NAMING(nlohmann::json({{"type", "shm"}, {"name", 7}}), "locks.name");
  EXPECT_EQ(rejection({{"type", "shm"}, {"name", std::string(200, 'n')}}), "");
}

TEST(LockConfigTest, BadPathAndOwnerAreNamed) {
  EXPECT_REJECTED_NAMING(nlohmann::json({{"type", "fcntl"}, {"path", ""}}), "locks.path");
  for (const char* type : {"shm", "fcntl"}) {
    EXPECT_REJECTED_NAMING(nlohmann::json({{"type", type}, {"owner", "no-such-user-sessionkit"}}),
                           "locks.owner");
    EXPECT_REJECTED_NAMING(nlohmann::json({{"type", type}, {"owner", ""}}), "locks.owner");
    EXPECT_REJECTED_NAMING(nlohmann::json({{"type", type}, {"owner", 0}}), "locks.owner");
  }
}

TEST(LockConfigTest, WholeConfigRejectsABadLocksSection) {
  try {
    Config::from_json({{"locks", {{"type", "shm"}, {"name", "a/b"}}}});
    ADD_FAILURE() << "accepted locks.name \"a/b\"";
  } catch (const Error& e) {
    EXPECT_EQ(e.code_value(), errc::bad_config);
    EXPECT_NE(std::string(e.what()).find("locks.name"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace sessionkit

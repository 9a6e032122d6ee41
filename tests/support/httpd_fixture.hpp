// The GoogleTest fixture shared by the integration tests that start their own
// Apache httpd: a temporary directory for it, a lock region name of the
// test's, and the server, which TearDown() stops before checking its logs for
// AddressSanitizer reports and removing the region (and any other region the
// test asked for).
//
// Subclasses construct the server (their modules and locations differ) and
// write config_path() before starting it. A parameterised suite adds
// ::testing::WithParamInterface<T> to its subclass.
#pragma once

#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "tests/support/httpd_server.hpp"
#include "tests/support/test_support.hpp"

namespace sessionkit::testing {

class HttpdFixture : public ::testing::Test {
 protected:
  // `region_prefix` names the suite in the shm region's name (unique per test).
  explicit HttpdFixture(const std::string& region_prefix);

  void TearDown() override;

  // Where the sessionkit config goes: sessions.json in dir_.
  std::string config_path() const;
  // Writes `config` to config_path().
  void write_config(const nlohmann::json& config) const;
  int port() const { return server_->port(); }
  // Another lock region name unique to this test (a second config's), removed
  // by TearDown() as region_ is.
  std::string another_region(const std::string& prefix);

  TempDir dir_;
  std::string region_;
  std::unique_ptr<HttpdServer> server_;

 private:
  std::vector<std::string> other_regions_;
};

}  // namespace sessionkit::testing

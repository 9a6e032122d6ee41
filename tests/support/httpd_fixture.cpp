#include "tests/support/httpd_fixture.hpp"

#include <fstream>

#include "locks/shm_lock_manager.hpp"
#include "tests/support/integration_support.hpp"

namespace sessionkit::testing {

HttpdFixture::HttpdFixture(const std::string& region_prefix) : region_(unique_name(region_prefix)) {}

void HttpdFixture::TearDown() {
  if (server_) {
    server_->stop();
    expect_no_sanitizer_report(server_->error_log());
  }
  ShmLockManager::remove(region_);
  for (const std::string& region : other_regions_) ShmLockManager::remove(region);
}

std::string HttpdFixture::another_region(const std::string& prefix) {
  other_regions_.push_back(unique_name(prefix));
  return other_regions_.back();
}

std::string HttpdFixture::config_path() const { return (dir_.path() / "sessions.json").string(); }

void HttpdFixture::write_config(const nlohmann::json& config) const {
  std::ofstream(config_path()) << config.dump(2);
}

}  // namespace sessionkit::testing

#include "tests/support/integration_support.hpp"

#include <gtest/gtest.h>

#include <sys/stat.h>

#include <atomic>
#include <fstream>
#include <sstream>

#include "tests/support/http_client.hpp"

namespace sessionkit::testing {

namespace fs = std::filesystem;

std::string read_file(const fs::path& path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

std::vector<pid_t> children_of(pid_t parent) {
  std::vector<pid_t> out;
  for (const auto& entry : fs::directory_iterator("/proc")) {
    const std::string name = entry.path().filename().string();
    if (name.find_first_not_of("0123456789") != std::string::npos) continue;
    std::ifstream stat(entry.path() / "stat");
    std::string line;
    if (!std::getline(stat, line)) continue;
    // pid (comm) state ppid ...: comm may hold spaces, so parse after the last ')'.
    const auto close = line.rfind(')');
    if (close == std::string::npos) continue;
    std::istringstream rest(line.substr(close + 2));
    char state = 0;
    pid_t ppid = 0;
    rest >> state >> ppid;
    if (ppid == parent && state != 'Z') out.push_back(static_cast<pid_t>(std::stoi(name)));
  }
  return out;
}

fs::path install_program(const fs::path& program, const fs::path& dir) {
  fs::create_directories(dir);
  const auto rx = fs::perms::owner_all | fs::perms::group_read | fs::perms::group_exec |
                  fs::perms::others_read | fs::perms::others_exec;
  fs::permissions(dir, rx);
  const fs::path target = dir / program.filename();
  fs::copy_file(program, target, fs::copy_options::overwrite_existing);
  fs::permissions(target, rx);
  return target;
}

nlohmann::json session_config(const fs::path& data_dir, const std::string& region, const std::string& store,
                              int wait_ms) {
  nlohmann::json store_section = {{"type", store}, {"durability", "nosync"}};
  store_section["path"] = (data_dir / (store == "lmdb" ? "sessions.mdb" : "sessions")).string();
  return {
      {"store", store_section},
      {"locks", {{"type", "shm"}, {"name", region}, {"wait_ms", wait_ms}}},
      {"cookie", {{"same_site", "Strict"}, {"max_age_s", 3600}}},
      {"gc", {{"every_n_requests", 0}}},
  };
}

int hammer(int port, const std::string& target, const std::string& cookie, int connections, int requests) {
  std::atomic<int> ok{0};
  std::vector<std::thread> threads;
  for (int c = 0; c < connections; ++c) {
    threads.emplace_back([&] {
      HttpClient client(port);
      for (int i = 0; i < requests; ++i) {
        HttpResponse r = client.get(target, cookie);
        if (r.status == 200 && r.header("set-cookie").empty()) ok.fetch_add(1);
      }
    });
  }
  for (auto& t : threads) t.join();
  return ok.load();
}

void set_directory_modes(const fs::path& root, mode_t mode) {
  ASSERT_EQ(chmod(root.c_str(), mode), 0) << root;
  for (const auto& e : fs::recursive_directory_iterator(root)) {
    if (e.is_directory()) {
      ASSERT_EQ(chmod(e.path().c_str(), mode), 0) << e.path();
    }
  }
}

std::string forged_cookie(const std::string& cookie) {
  return cookie.substr(0, cookie.size() - 1) + (cookie.back() == 'A' ? "E" : "A");
}

void expect_new_session_cookie(const std::string& set_cookie) {
  EXPECT_EQ(set_cookie.substr(0, 4), "sid=");
  EXPECT_NE(set_cookie.find("; Path=/; Max-Age=3600; HttpOnly; SameSite=Strict"), std::string::npos)
      << set_cookie;
  EXPECT_EQ(set_cookie.find("Secure"), std::string::npos) << set_cookie;  // plain HTTP, "secure": "auto"
}

void expect_session_created_and_found(HttpClient& client, const std::string& demo, const std::string& query,
                                      const std::function<std::string()>& logs, std::string* cookie) {
  HttpResponse first = client.get(demo);
  ASSERT_EQ(first.status, 200) << logs();
  EXPECT_EQ(first.body, "1");
  EXPECT_EQ(first.header("content-type"), "text/plain");
  expect_new_session_cookie(first.header("set-cookie"));
  *cookie = first.cookie();

  HttpResponse second = client.get(demo + query, *cookie);
  EXPECT_EQ(second.status, 200);
  EXPECT_EQ(second.body, "2");
  EXPECT_TRUE(second.header("set-cookie").empty());
}

void expect_bad_cookies_start_new_sessions(HttpClient& client, const std::string& demo,
                                           const std::string& cookie) {
  for (const std::string& bad : {forged_cookie(cookie), std::string("sid=../../etc/passwd"),
                                 std::string("sid=") + std::string(43, 'A'), std::string("sid=")}) {
    HttpResponse r = client.get(demo, bad);
    EXPECT_EQ(r.status, 200);
    EXPECT_EQ(r.body, "1") << bad;
    EXPECT_FALSE(r.cookie().empty());
    EXPECT_NE(r.cookie(), cookie);
  }
  EXPECT_EQ(client.get(demo, cookie).body, "3");  // the real session was untouched
}

void expect_no_sanitizer_report(const std::string& log) {
  EXPECT_EQ(log.find("AddressSanitizer"), std::string::npos) << log;
}

}  // namespace sessionkit::testing

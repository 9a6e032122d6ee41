// Helpers shared by the integration tests that run sessionkit behind a real
// Apache httpd (httpd_test, fastcgi_test, cgi_test): the sessionkit config
// they write, programs httpd's User must run, concurrent request loops, and
// polling for what another process does.
//
// These live apart from test_support.hpp because only the integration
// binaries link them (and tests/unit/file has a read_file() of its own).
#pragma once

#include <sys/types.h>

#include <chrono>
#include <filesystem>
#include <functional>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

namespace sessionkit::testing {

// Polls `pred` every `poll` until it holds (true) or `limit` passes (false).
// Another process decides when it holds, so there is nothing to wait on but time.
template <typename Pred>
bool eventually(Pred pred, std::chrono::milliseconds limit,
                std::chrono::milliseconds poll = std::chrono::milliseconds(20)) {
  const auto deadline = std::chrono::steady_clock::now() + limit;
  while (!pred()) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(poll);
  }
  return true;
}

// The whole file, or "" when it cannot be read.
std::string read_file(const std::filesystem::path& path);

// The live (non-zombie) children of `parent`, from /proc.
std::vector<pid_t> children_of(pid_t parent);

// Copies `program` into `dir` (created) and makes both readable and runnable
// by everyone: httpd's User must run it, wherever the build tree lives.
std::filesystem::path install_program(const std::filesystem::path& program, const std::filesystem::path& dir);

// The sessionkit config the integration tests share: `store` ("lmdb" or
// "file", nosync) under `data_dir`, shm locks in `region` waiting `wait_ms`,
// SameSite=Strict cookies of one hour, and no request-driven GC (so counts
// stay exact). Callers override sections for the other cases.
nlohmann::json session_config(const std::filesystem::path& data_dir, const std::string& region,
                              const std::string& store, int wait_ms);

// `connections` threads, each on its own keep-alive connection, GET `target`
// with `cookie` `requests` times. Returns how many answers were 200 without a
// Set-Cookie (the session was found, locked and saved; not a new one).
int hammer(int port, const std::string& target, const std::string& cookie, int connections, int requests);

// Sets `mode` on `root` and every directory below it: 0555 makes a file
// store's saves fail for an unprivileged server, 0700 undoes it.
void set_directory_modes(const std::filesystem::path& root, mode_t mode);

// `cookie` ("sid=<id>") with its last character changed: well-formed, and
// never a session that exists.
std::string forged_cookie(const std::string& cookie);

// Checks the Set-Cookie header of a new session under session_config() over
// plain HTTP: the "sid" cookie, Path=/, one hour, HttpOnly, SameSite=Strict,
// and no Secure ("secure": "auto").
void expect_new_session_cookie(const std::string& set_cookie);

class HttpClient;

// The first half of the cookie contract of the demo handler at `demo` (it
// counts requests per session): a request without a cookie creates a session
// (200, body "1", text/plain, the Set-Cookie of expect_new_session_cookie),
// and that cookie sent back to `demo + query` finds it ("2", no Set-Cookie).
// Stores the cookie in `*cookie`; a fatal failure stops here (callers wrap the
// call in ASSERT_NO_FATAL_FAILURE). `logs` is read only to explain a failure.
void expect_session_created_and_found(HttpClient& client, const std::string& demo, const std::string& query,
                                      const std::function<std::string()>& logs, std::string* cookie);

// The second half: a forged, a path-traversal, an over-long (43 'A's) and an
// empty id each start a new session at `demo` ("1" and a cookie other than
// `cookie`), and `cookie`'s session, at "2" before, is untouched ("3" after).
void expect_bad_cookies_start_new_sessions(HttpClient& client, const std::string& demo,
                                           const std::string& cookie);

// Fails the current test when `log` holds an AddressSanitizer report.
void expect_no_sanitizer_report(const std::string& log);

}  // namespace sessionkit::testing

// Helpers shared by sessionkit's tests: temporary directories, child
// processes, and helper modes that let a test binary re-run itself.
//
// A helper mode is a function registered in the test binary:
//
//   SESSIONKIT_TEST_HELPER(increment) { ...; return 0; }   // args: const std::vector<std::string>&
//
// and started with spawn_helper("increment", {"a", "b"}), which execs this
// binary as `<self> --sessionkit-helper increment a b` (an unrelated process,
// not a fork). fork_child() runs a function in a forked child instead.
#pragma once

#include <sys/types.h>

#include <filesystem>
#include <functional>
#include <string>
#include <vector>

namespace sessionkit::testing {

// A fresh directory under $TMPDIR (or /tmp), removed with its contents.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::filesystem::path& path() const { return path_; }
  std::filesystem::path operator/(const std::string& name) const { return path_ / name; }

 private:
  std::filesystem::path path_;
};

// Forks; the child runs fn and _exits with its return value (exceptions: 120).
pid_t fork_child(const std::function<int()>& fn);

// Waits for pid: its exit status, or 128 + signal number when killed.
int wait_child(pid_t pid);

// Execs this test binary in helper mode `name` with `args`.
pid_t spawn_helper(const std::string& name, const std::vector<std::string>& args);

// A name unique to this process and call, for shm regions and the like.
std::string unique_name(const std::string& prefix);

using HelperFn = int (*)(const std::vector<std::string>& args);
struct HelperRegistration {
  HelperRegistration(const char* name, HelperFn fn);
};

// Runs the helper named by argv when argv[1] is --sessionkit-helper;
// returns -1 otherwise. Called by the shared test main().
int run_helper_if_requested(int argc, char** argv);

}  // namespace sessionkit::testing

#define SESSIONKIT_TEST_HELPER(name)                                                              \
  static int sessionkit_helper_##name(const std::vector<std::string>& args);                      \
  static const ::sessionkit::testing::HelperRegistration sessionkit_helper_reg_##name(#name,       \
                                                                 &sessionkit_helper_##name);      \
  static int sessionkit_helper_##name([[maybe_unused]] const std::vector<std::string>& args)

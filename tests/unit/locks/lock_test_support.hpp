// Shared pieces of the lock manager tests: building a shm or fcntl manager
// from its JSON config (the way applications do), pipes for parent/child
// hand-shakes, and the file counter the multi-process tests increment.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>

#include <nlohmann/json.hpp>

#include "sessionkit/lock_manager.hpp"

namespace sessionkit::testing {

// A lock manager kind under test and where its state lives: the region name
// for "shm", an absolute lock-file path for "fcntl".
struct LockTarget {
  std::string kind;
  std::string where;

  // {"type": kind, "name"|"path": where, "slots": .., "resource_slots": ..} plus `extra`.
  nlohmann::json config(std::uint32_t slots = 64, std::uint32_t resource_slots = 8,
                        const nlohmann::json& extra = nlohmann::json::object()) const;
  // Builds the manager through Registry::global(), as SessionManager does.
  std::unique_ptr<LockManager> open(std::uint32_t slots = 64, std::uint32_t resource_slots = 8) const;
  // The path whose presence in /proc/self/fd would mean a leaked descriptor.
  std::string fd_needle() const;
};

// A pipe; both ends O_CLOEXEC unless made inheritable for an exec'd helper.
class Pipe {
 public:
  Pipe();
  ~Pipe();
  Pipe(const Pipe&) = delete;
  Pipe& operator=(const Pipe&) = delete;

  int read_fd() const { return fds_[0]; }
  int write_fd() const { return fds_[1]; }
  void make_read_end_inheritable();
  void make_write_end_inheritable();
  void close_read();
  void close_write();
  void write_byte(char c);
  // The next byte; throws on EOF or error.
  char read_byte();

 private:
  int fds_[2];
};

// Writes one byte to a raw descriptor (helpers get descriptor numbers as args).
void write_byte_to(int fd, char c);
// Blocks until `fd` reaches EOF (every write end closed) and returns.
void wait_for_eof(int fd);

// The counter file: a 20-digit decimal number, rewritten in place.
void write_counter(const std::filesystem::path& file, std::uint64_t value);
std::uint64_t read_counter(const std::filesystem::path& file);

// `increments` times: lock `slot`, read the counter, yield, write it + 1,
// unlock. Returns 0 on success, a non-zero code saying what went wrong.
int increment_counter(LockManager& locks, std::uint32_t slot, const std::filesystem::path& file,
                      int increments);

// Sleeps until killed (a child that must die holding a lock).
[[noreturn]] void sleep_forever();

inline LockManager::Deadline in(std::chrono::milliseconds ms) {
  return std::chrono::steady_clock::now() + ms;
}

// Makes the "test-shared-memory" store type available: the memory store,
// registered as shared so that Config accepts it with shm/fcntl locks. Used
// only where a single process touches sessions and the others only lock.
void register_test_shared_store();

}  // namespace sessionkit::testing

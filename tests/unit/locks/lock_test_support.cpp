#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cinttypes>
#include <cstdio>
#include <mutex>
#include <stdexcept>
#include <system_error>
#include <thread>

#include "backends/memory/memory_store.hpp"
#include "sessionkit/registry.hpp"
#include "tests/unit/locks/lock_test_support.hpp"

namespace sessionkit::testing {

nlohmann::json LockTarget::config(std::uint32_t slots, std::uint32_t resource_slots,
                                  const nlohmann::json& extra) const {
  nlohmann::json j = {{"type", kind}, {"slots", slots}, {"resource_slots", resource_slots}};
  j[kind == "shm" ? "name" : "path"] = where;
  for (auto it = extra.begin(); it != extra.end(); ++it) j[it.key()] = it.value();
  return j;
}

std::unique_ptr<LockManager> LockTarget::open(std::uint32_t slots, std::uint32_t resource_slots) const {
  return Registry::global().lock_manager(kind).create(config(slots, resource_slots), "/");
}

std::string LockTarget::fd_needle() const { return kind == "shm" ? "/dev/shm/sessionkit-" + where : where; }

Pipe::Pipe() {
  if (::pipe2(fds_, O_CLOEXEC) != 0) throw std::system_error(errno, std::generic_category(), "pipe2");
}

Pipe::~Pipe() {
  close_read();
  close_write();
}

void Pipe::make_read_end_inheritable() { ::fcntl(fds_[0], F_SETFD, 0); }
void Pipe::make_write_end_inheritable() { ::fcntl(fds_[1], F_SETFD, 0); }

void Pipe::close_read() {
  if (fds_[0] >= 0) ::close(fds_[0]);
  fds_[0] = -1;
}

void Pipe::close_write() {
  if (fds_[1] >= 0) ::close(fds_[1]);
  fds_[1] = -1;
}

void Pipe::write_byte(char c) { write_byte_to(fds_[1], c); }

char Pipe::read_byte() {
  char c = 0;
  for (;;) {
    ssize_t n = ::read(fds_[0], &c, 1);
    if (n == 1) return c;
    if (n == 0) throw std::runtime_error("pipe: unexpected EOF");
    if (errno != EINTR) throw std::system_error(errno, std::generic_category(), "read(pipe)");
  }
}

void write_byte_to(int fd, char c) {
  while (::write(fd, &c, 1) != 1) {
    if (errno != EINTR) throw std::system_error(errno, std::generic_category(), "write(pipe)");
  }
}

void wait_for_eof(int fd) {
  char c;
  for (;;) {
    ssize_t n = ::read(fd, &c, 1);
    if (n == 0) return;
    if (n < 0 && errno != EINTR) throw std::system_error(errno, std::generic_category(), "read(pipe)");
  }
}

void write_counter(const std::filesystem::path& file, std::uint64_t value) {
  int fd = ::open(file.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (fd < 0) throw std::system_error(errno, std::generic_category(), "open(counter)");
  char buf[32];
  int n = std::snprintf(buf, sizeof buf, "%020" PRIu64, value);
  bool ok = ::pwrite(fd, buf, static_cast<std::size_t>(n), 0) == n;
  ::close(fd);
  if (!ok) throw std::runtime_error("pwrite(counter) failed");
}

std::uint64_t read_counter(const std::filesystem::path& file) {
  int fd = ::open(file.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) throw std::system_error(errno, std::generic_category(), "open(counter)");
  char buf[21] = {};
  ssize_t n = ::pread(fd, buf, 20, 0);
  ::close(fd);
  if (n != 20) throw std::runtime_error("counter file is short");
  return std::strtoull(buf, nullptr, 10);
}

int increment_counter(LockManager& locks, std::uint32_t slot, const std::filesystem::path& file,
                      int increments) {
  int fd = ::open(file.c_str(), O_RDWR | O_CLOEXEC);
  if (fd < 0) return 2;
  for (int i = 0; i < increments; ++i) {
    if (locks.lock(slot, in(std::chrono::seconds(20))) == LockStatus::timed_out) {
      ::close(fd);
      return 3;
    }
    char buf[32] = {};
    if (::pread(fd, buf, 20, 0) != 20) return 4;
    const std::uint64_t v = std::strtoull(buf, nullptr, 10);
    // Widen the window between read and write: without the lock, another
    // process would now read the same value and one increment would be lost.
    std::this_thread::yield();
    int n = std::snprintf(buf, sizeof buf, "%020" PRIu64, v + 1);
    if (::pwrite(fd, buf, static_cast<std::size_t>(n), 0) != n) return 5;
    locks.unlock(slot);
  }
  ::close(fd);
  return 0;
}

void sleep_forever() {
  for (;;) ::pause();
}

void register_test_shared_store() {
  static std::once_flag once;
  std::call_once(once, [] {
    StoreType t;
    t.shared_across_processes = true;
    t.validate = [](const nlohmann::json&, const std::filesystem::path&) {};
    t.create = [](const nlohmann::json&, const std::filesystem::path&) -> std::unique_ptr<Store> {
      return std::make_unique<MemoryStore>();
    };
    Registry::global().add_store("test-shared-memory", std::move(t));
  });
}

}  // namespace sessionkit::testing

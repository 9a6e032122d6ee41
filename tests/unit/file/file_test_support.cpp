#include "tests/unit/file/file_test_support.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <cstring>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <system_error>

#include "session_id.hpp"

namespace sessionkit::testing {

FileStoreOptions file_options(const std::filesystem::path& dir, int shard_depth, FileDurability durability) {
  FileStoreOptions o;
  o.path = dir;
  o.shard_depth = shard_depth;
  o.durability = durability;
  return o;
}

std::string new_id() { return detail::generate_session_id(); }

std::filesystem::path record_path(const std::filesystem::path& dir, const std::string& id, int shard_depth) {
  std::filesystem::path p = dir;
  if (shard_depth >= 1) p /= id.substr(0, 2);
  if (shard_depth >= 2) p /= id.substr(2, 2);
  return p / id;
}

std::map<std::string, std::string> tree(const std::filesystem::path& root) {
  std::map<std::string, std::string> out;
  for (auto it = std::filesystem::recursive_directory_iterator(root); it != std::filesystem::end(it); ++it) {
    struct stat st {};
    ::lstat(it->path().c_str(), &st);
    std::ostringstream desc;
    desc << std::oct << st.st_mode << " " << std::dec << st.st_size;
    out[std::filesystem::relative(it->path(), root).string()] = desc.str();
  }
  return out;
}

std::vector<std::filesystem::path> files_with_prefix(const std::filesystem::path& root,
                                                     std::string_view prefix) {
  std::vector<std::filesystem::path> out;
  for (const auto& e : std::filesystem::recursive_directory_iterator(root)) {
    if (e.path().filename().string().rfind(prefix, 0) == 0) out.push_back(e.path());
  }
  return out;
}

unsigned mode_of(const std::filesystem::path& p) {
  struct stat st {};
  if (::lstat(p.c_str(), &st) != 0) throw std::system_error(errno, std::generic_category(), p.string());
  return st.st_mode & 07777;
}

std::string make_record(std::uint64_t counter, std::size_t size) {
  const std::string digits = std::to_string(counter);
  std::string out = digits + ":" + std::to_string(size) + ":";
  const std::size_t prefix = out.size();
  while (out.size() < size) out += digits;
  out.resize(std::max(size, prefix));
  return out;
}

std::optional<std::uint64_t> check_record(std::string_view record) {
  std::size_t c1 = record.find(':');
  if (c1 == std::string_view::npos || c1 == 0) return std::nullopt;
  std::size_t c2 = record.find(':', c1 + 1);
  if (c2 == std::string_view::npos) return std::nullopt;
  std::string digits(record.substr(0, c1));
  std::uint64_t counter = 0;
  std::size_t size = 0;
  try {
    counter = std::stoull(digits);
    size = std::stoull(std::string(record.substr(c1 + 1, c2 - c1 - 1)));
  } catch (...) {
    return std::nullopt;
  }
  std::string expected = make_record(counter, size);
  if (record != expected) return std::nullopt;
  return counter;
}

std::string read_file(const std::filesystem::path& p) {
  std::ifstream in(p, std::ios::binary);
  if (!in) throw std::runtime_error("cannot read " + p.string());
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

void write_file(const std::filesystem::path& p, std::string_view content) {
  std::ofstream out(p, std::ios::binary | std::ios::trunc);
  out.write(content.data(), static_cast<std::streamsize>(content.size()));
  if (!out) throw std::runtime_error("cannot write " + p.string());
}

namespace {

std::uint32_t crc32c(std::uint32_t crc, const unsigned char* p, std::size_t n) {
  for (std::size_t i = 0; i < n; ++i) {
    crc ^= p[i];
    for (int k = 0; k < 8; ++k) crc = (crc & 1) != 0 ? (crc >> 1) ^ 0x82F63B78u : crc >> 1;
  }
  return crc;
}

void put_be(unsigned char* p, std::uint64_t v, int bytes) {
  for (int i = bytes - 1; i >= 0; --i) {
    p[i] = static_cast<unsigned char>(v & 0xFF);
    v >>= 8;
  }
}

}  // namespace

std::string file_record_bytes(std::string_view payload, std::int64_t expires_ms) {
  // An independent encoder of the documented format, so the tests check the
  // store against docs/formats.md rather than against itself.
  unsigned char h[kFileHeaderSize];
  std::memcpy(h, "SKF1", 4);
  put_be(h + 4, static_cast<std::uint64_t>(expires_ms), 8);
  put_be(h + 12, payload.size(), 4);
  std::uint32_t crc = crc32c(0xFFFFFFFFu, h, 16);
  crc = crc32c(crc, reinterpret_cast<const unsigned char*>(payload.data()), payload.size());
  put_be(h + 16, crc ^ 0xFFFFFFFFu, 4);
  return std::string(reinterpret_cast<const char*>(h), kFileHeaderSize) + std::string(payload);
}

}  // namespace sessionkit::testing

#include "session_id.hpp"

#include <array>

#include <openssl/evp.h>
#include <openssl/rand.h>

#include "sessionkit/error.hpp"

namespace sessionkit::detail {
namespace {

RandBytesFn g_rand_bytes = &RAND_bytes;

// 0: not in the base64url alphabet; else the 6-bit value + 1.
constexpr unsigned char url_value(char c) {
  if (c >= 'A' && c <= 'Z') return static_cast<unsigned char>(c - 'A' + 1);
  if (c >= 'a' && c <= 'z') return static_cast<unsigned char>(c - 'a' + 27);
  if (c >= '0' && c <= '9') return static_cast<unsigned char>(c - '0' + 53);
  if (c == '-') return 63;
  if (c == '_') return 64;
  return 0;
}

constexpr std::array<unsigned char, 256> kUrlValues = [] {
  std::array<unsigned char, 256> t{};
  for (int c = 0; c < 256; ++c) t[static_cast<std::size_t>(c)] = url_value(static_cast<char>(c));
  return t;
}();

unsigned char url_value_of(char c) { return kUrlValues[static_cast<unsigned char>(c)]; }

}  // namespace

void set_rand_bytes_for_testing(RandBytesFn fn) { g_rand_bytes = fn != nullptr ? fn : &RAND_bytes; }

std::string base64url_encode(const unsigned char* data, std::size_t size) {
  std::string out(4 * ((size + 2) / 3) + 1, '\0');
  int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()), data, static_cast<int>(size));
  out.resize(static_cast<std::size_t>(n));
  while (!out.empty() && out.back() == '=') out.pop_back();
  for (char& c : out) {
    if (c == '+') c = '-';
    if (c == '/') c = '_';
  }
  return out;
}

bool base64_decode(std::string_view text, std::string& out) {
  if (text.empty() || text.size() % 4 != 0) return false;
  std::size_t padding = 0;
  for (std::size_t i = 0; i < text.size(); ++i) {
    char c = text[i];
    bool alpha =
        (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '+' || c == '/';
    if (c == '=') {
      if (i + 2 < text.size()) return false;  // '=' only in the last two places
      ++padding;
    } else if (!alpha || padding > 0) {
      return false;
    }
  }
  out.assign(text.size() / 4 * 3, '\0');
  int n = EVP_DecodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                          reinterpret_cast<const unsigned char*>(text.data()), static_cast<int>(text.size()));
  if (n < 0) return false;
  out.resize(static_cast<std::size_t>(n) - padding);
  return true;
}

std::string generate_session_id() {
  unsigned char bytes[kIdBytes];
  if (g_rand_bytes(bytes, static_cast<int>(kIdBytes)) != 1) {
    throw Error(errc::io, "RAND_bytes failed: no session id can be generated safely");
  }
  return base64url_encode(bytes, kIdBytes);
}

std::string hex_encode(const unsigned char* data, std::size_t size) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out(2 * size, '\0');
  for (std::size_t i = 0; i < size; ++i) {
    out[2 * i] = kHex[data[i] >> 4];
    out[2 * i + 1] = kHex[data[i] & 0xf];
  }
  return out;
}

bool is_valid_session_id(std::string_view id) noexcept {
  if (id.size() != kIdLength) return false;
  for (char c : id) {
    if (url_value_of(c) == 0) return false;
  }
  // 43 characters carry 258 bits; the last character's low 2 bits must be 0.
  return ((url_value_of(id.back()) - 1) & 0x3) == 0;
}

}  // namespace sessionkit::detail

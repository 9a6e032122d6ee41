// Session ids: 32 bytes from OpenSSL's RAND_bytes, base64url without padding
// (43 characters). Validation is an exact match of length and alphabet, and of
// the last character's unused bits, so each id has one spelling.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace sessionkit::detail {

inline constexpr std::size_t kIdBytes = 32;
inline constexpr std::size_t kIdLength = 43;

// Throws Error(errc::io) when the random generator fails; never falls back.
std::string generate_session_id();

bool is_valid_session_id(std::string_view id) noexcept;

std::string base64url_encode(const unsigned char* data, std::size_t size);
// Lower-case hex, two digits a byte.
std::string hex_encode(const unsigned char* data, std::size_t size);
// Standard alphabet, padded (RFC 4648 section 4); nullopt-like empty return +
// false when `text` is not exactly that.
bool base64_decode(std::string_view text, std::string& out);

// Test seam: replaces RAND_bytes (nullptr restores it). Not thread-safe.
using RandBytesFn = int (*)(unsigned char* buf, int num);
void set_rand_bytes_for_testing(RandBytesFn fn);

}  // namespace sessionkit::detail

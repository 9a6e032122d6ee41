// SipHash-2-4 (Aumasson & Bernstein): a keyed 64-bit hash, used to spread
// session ids and resource names over lock slots.
#pragma once

#include <cstdint>
#include <string_view>

namespace sessionkit::detail {

std::uint64_t siphash24(std::uint64_t k0, std::uint64_t k1, std::string_view data) noexcept;

// The fixed key every sessionkit process uses for slot assignment: slots must
// agree across unrelated processes, and ids are random, so a secret key would
// buy nothing.
std::uint64_t slot_hash(std::string_view data) noexcept;

}  // namespace sessionkit::detail

// The keys every lock manager section shares: "slots", "resource_slots",
// "wait_ms". Each lock manager's validate/create reads them with this.
#pragma once

#include <chrono>
#include <cstdint>

#include "config_reader.hpp"

namespace sessionkit::detail {

struct LockLayoutOptions {
  std::uint32_t slots = 1024;            // slot 0 + session slots
  std::uint32_t resource_slots = 64;     // application resource slots
  std::chrono::milliseconds wait{5000};  // how long open() waits for a session's slot
};

inline LockLayoutOptions read_lock_layout(ConfigReader& r) {
  LockLayoutOptions o;
  o.slots = static_cast<std::uint32_t>(r.uint("slots", o.slots, 2, 1u << 20));
  o.resource_slots = static_cast<std::uint32_t>(r.uint("resource_slots", o.resource_slots, 1, 1u << 16));
  o.wait = std::chrono::milliseconds(r.uint("wait_ms", 5000, 0, 3'600'000));
  return o;
}

}  // namespace sessionkit::detail

// Any Cookie header: parsing, signature checks and a full SessionManager::open
// must never crash, never throw, and never adopt an id the store lacks.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include <nlohmann/json.hpp>

#include "cookie.hpp"
#include "cookie_signer.hpp"
#include "session_id.hpp"
#include "sessionkit/sessionkit.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace sessionkit;
  static SessionManager* manager = [] {
    return new SessionManager(Config::from_json(
        {{"store", {{"type", "memory"}}},
         {"gc", {{"every_n_requests", 0}}},
         {"cookie", {{"signing_keys", {"c2Vzc2lvbmtpdC1mdXp6LWtleS0xMjM0NTY3ODkwMTIzNDU2"}}}}}));
  }();
  static detail::CookieSigner unsigned_signer({});
  const std::string_view header(reinterpret_cast<const char*>(data), size);
  for (std::string_view value : detail::find_cookie_values(header, "sid", 8)) {
    bool bad = false;
    if (auto id = unsigned_signer.decode(value, &bad)) {
      if (!detail::is_valid_session_id(*id)) __builtin_trap();
    }
  }
  Session s = manager->open(header);
  if (!s.is_new()) __builtin_trap();  // the store is empty: nothing may be adopted
  if (!detail::is_valid_session_id(s.id())) __builtin_trap();
  s.invalidate();
  return 0;
}

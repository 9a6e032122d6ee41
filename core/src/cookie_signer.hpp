// CookieSigner: HMAC-SHA256 signatures on cookie values, with a key ring.
//
// Signed value: <id> "." <base64url(HMAC-SHA256(key, "sessionkit.v1." <id>))>.
// The first key signs; every key verifies (rotation: add the new key first,
// drop the old one after the cookie lifetime). Comparison is constant-time.
// Thread-safe after construction.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace sessionkit::detail {

class CookieSigner {
 public:
  // `keys`: raw key bytes; empty means unsigned cookies (value == id).
  explicit CookieSigner(const std::vector<std::string>& keys);
  ~CookieSigner();
  CookieSigner(const CookieSigner&) = delete;
  CookieSigner& operator=(const CookieSigner&) = delete;

  bool enabled() const noexcept { return !keys_.empty(); }

  // The cookie value for `id`.
  std::string encode(std::string_view id) const;

  // The id inside `value` when its shape is right and (if signing is on) a key
  // verifies it; nullopt otherwise. `bad_signature` tells a well-formed value
  // with a wrong signature apart from a malformed one.
  std::optional<std::string_view> decode(std::string_view value, bool* bad_signature) const;

 private:
  struct Key;
  std::string mac(const Key& key, std::string_view id) const;

  std::vector<std::unique_ptr<Key>> keys_;
};

}  // namespace sessionkit::detail

#include "cookie_signer.hpp"

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/params.h>

#include "session_id.hpp"
#include "sessionkit/error.hpp"

namespace sessionkit::detail {
namespace {

constexpr std::string_view kContext = "sessionkit.v1.";
constexpr std::size_t kMacLength = 43;  // base64url of 32 bytes

[[noreturn]] void openssl_failure(const char* what) {
  throw Error(errc::io, std::string("OpenSSL HMAC: ") + what + " failed");
}

}  // namespace

// A MAC context initialised with one key; each use works on a copy, so the
// key schedule is computed once and concurrent use needs no lock.
struct CookieSigner::Key {
  EVP_MAC* mac = nullptr;
  EVP_MAC_CTX* ctx = nullptr;
  ~Key() {
    EVP_MAC_CTX_free(ctx);
    EVP_MAC_free(mac);
  }
};

CookieSigner::CookieSigner(const std::vector<std::string>& keys) {
  for (const std::string& raw : keys) {
    auto key = std::make_unique<Key>();
    key->mac = EVP_MAC_fetch(nullptr, "HMAC", nullptr);
    if (key->mac == nullptr) openssl_failure("EVP_MAC_fetch");
    key->ctx = EVP_MAC_CTX_new(key->mac);
    if (key->ctx == nullptr) openssl_failure("EVP_MAC_CTX_new");
    char digest[] = "SHA256";
    OSSL_PARAM params[] = {OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, digest, 0),
                           OSSL_PARAM_construct_end()};
    if (EVP_MAC_init(key->ctx, reinterpret_cast<const unsigned char*>(raw.data()), raw.size(), params) != 1) {
      openssl_failure("EVP_MAC_init");
    }
    keys_.push_back(std::move(key));
  }
}

CookieSigner::~CookieSigner() = default;

std::string CookieSigner::mac(const Key& key, std::string_view id) const {
  std::unique_ptr<EVP_MAC_CTX, void (*)(EVP_MAC_CTX*)> ctx(EVP_MAC_CTX_dup(key.ctx), &EVP_MAC_CTX_free);
  if (!ctx) openssl_failure("EVP_MAC_CTX_dup");
  unsigned char out[EVP_MAX_MD_SIZE];
  std::size_t out_len = 0;
  if (EVP_MAC_update(ctx.get(), reinterpret_cast<const unsigned char*>(kContext.data()), kContext.size()) !=
          1 ||
      EVP_MAC_update(ctx.get(), reinterpret_cast<const unsigned char*>(id.data()), id.size()) != 1 ||
      EVP_MAC_final(ctx.get(), out, &out_len, sizeof(out)) != 1) {
    openssl_failure("EVP_MAC_update/final");
  }
  return base64url_encode(out, out_len);
}

std::string CookieSigner::encode(std::string_view id) const {
  if (keys_.empty()) return std::string(id);
  std::string value(id);
  value.push_back('.');
  value.append(mac(*keys_.front(), id));
  return value;
}

std::optional<std::string_view> CookieSigner::decode(std::string_view value, bool* bad_signature) const {
  *bad_signature = false;
  if (keys_.empty()) {
    if (!is_valid_session_id(value)) return std::nullopt;
    return value;
  }
  if (value.size() != kIdLength + 1 + kMacLength || value[kIdLength] != '.') return std::nullopt;
  std::string_view id = value.substr(0, kIdLength);
  std::string_view sig = value.substr(kIdLength + 1);
  if (!is_valid_session_id(id)) return std::nullopt;
  for (const auto& key : keys_) {
    std::string expected = mac(*key, id);
    if (expected.size() == sig.size() && CRYPTO_memcmp(expected.data(), sig.data(), sig.size()) == 0) {
      return id;
    }
  }
  *bad_signature = true;
  return std::nullopt;
}

}  // namespace sessionkit::detail

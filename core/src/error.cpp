#include "sessionkit/error.hpp"

namespace sessionkit {
namespace {

class Category final : public std::error_category {
 public:
  const char* name() const noexcept override { return "sessionkit"; }
  std::string message(int value) const override { return to_string(static_cast<errc>(value)); }
};

}  // namespace

const char* to_string(errc e) noexcept {
  switch (e) {
    case errc::invalid_argument: return "invalid_argument";
    case errc::not_found: return "not_found";
    case errc::resource_exhausted: return "resource_exhausted";
    case errc::data_loss: return "data_loss";
    case errc::unavailable: return "unavailable";
    case errc::aborted: return "aborted";
    case errc::failed_precondition: return "failed_precondition";
    case errc::io: return "io";
    case errc::bad_config: return "bad_config";
  }
  return "unknown";
}

const std::error_category& error_category() noexcept {
  static const Category category;
  return category;
}

std::error_code make_error_code(errc e) noexcept { return {static_cast<int>(e), error_category()}; }

Error::Error(errc code, const std::string& message) : std::system_error(make_error_code(code), message) {}

}  // namespace sessionkit

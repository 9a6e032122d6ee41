// Any bytes read back from a store: decoding either yields a well-formed
// session or throws Error(data_loss); nothing else, and never a crash.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include <nlohmann/json.hpp>

#include "record_codec.hpp"
#include "sessionkit/error.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace sessionkit;
  const std::string_view bytes(reinterpret_cast<const char*>(data), size);
  for (std::string_view input : {bytes, bytes.substr(bytes.size() < 48 ? 0 : 48)}) {
    try {
      nlohmann::json j = detail::decode_payload(input, 16);
      if (!j.is_object()) __builtin_trap();
      // Whatever decodes must encode again within the same limit.
      (void)detail::encode_payload(j, 16);
    } catch (const Error& e) {
      if (e.code_value() != errc::data_loss) __builtin_trap();
    }
  }
  try {
    detail::DecodedRecord r = detail::decode_record(bytes);
    if (r.payload.size() + detail::kRecordHeaderSize != bytes.size()) __builtin_trap();
  } catch (const Error& e) {
    if (e.code_value() != errc::data_loss) __builtin_trap();
  }
  return 0;
}

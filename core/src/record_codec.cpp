#include "record_codec.hpp"

#include <cstring>
#include <vector>

#include <nlohmann/json.hpp>

#include "sessionkit/error.hpp"

namespace sessionkit::detail {
namespace {

constexpr char kMagic[3] = {'S', 'K', 'R'};

void put_be(std::string& out, std::uint64_t v, int bytes) {
  for (int i = bytes - 1; i >= 0; --i) out.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}

std::uint64_t get_be(const unsigned char* p, int bytes) {
  std::uint64_t v = 0;
  for (int i = 0; i < bytes; ++i) v = (v << 8) | p[i];
  return v;
}

[[noreturn]] void corrupt(const std::string& why) { throw Error(errc::data_loss, "session record: " + why); }

// Depth of `j` is within `max` (an object holding scalars has depth 1).
// Recursion stops at max + 1 levels, so hostile nesting cannot overflow the stack.
bool depth_within(const nlohmann::json& j, std::uint32_t max, std::uint32_t depth) {
  if (!j.is_structured()) return true;
  if (depth + 1 > max) return false;
  for (const auto& child : j) {
    if (!depth_within(child, max, depth + 1)) return false;
  }
  return true;
}

// Builds the DOM like nlohmann's own SAX parser, but refuses nesting deeper
// than the limit before it recurses further.
class DepthLimitedSax {
 public:
  DepthLimitedSax(nlohmann::json& result, std::uint32_t max_depth)
      : dom_(result, false), max_depth_(max_depth) {}

  bool null() { return dom_.null(); }
  bool boolean(bool v) { return dom_.boolean(v); }
  bool number_integer(nlohmann::json::number_integer_t v) { return dom_.number_integer(v); }
  bool number_unsigned(nlohmann::json::number_unsigned_t v) { return dom_.number_unsigned(v); }
  bool number_float(nlohmann::json::number_float_t v, const std::string& s) {
    return dom_.number_float(v, s);
  }
  bool string(std::string& v) { return dom_.string(v); }
  bool binary(nlohmann::json::binary_t& v) { return dom_.binary(v); }
  bool start_object(std::size_t n) { return enter() && dom_.start_object(n); }
  bool key(std::string& k) { return dom_.key(k); }
  bool end_object() {
    --depth_;
    return dom_.end_object();
  }
  bool start_array(std::size_t n) { return enter() && dom_.start_array(n); }
  bool end_array() {
    --depth_;
    return dom_.end_array();
  }
  bool parse_error(std::size_t, const std::string&, const nlohmann::detail::exception&) {
    failed_ = true;
    return false;
  }
  bool too_deep() const { return too_deep_; }

 private:
  bool enter() {
    if (++depth_ > max_depth_) {
      too_deep_ = true;
      return false;
    }
    return true;
  }

  nlohmann::detail::json_sax_dom_parser<nlohmann::json> dom_;
  std::uint32_t max_depth_;
  std::uint32_t depth_ = 0;
  bool too_deep_ = false;
  bool failed_ = false;
};

}  // namespace

std::string encode_record(const RecordHeader& h, std::string_view payload) {
  std::string out;
  out.reserve(kRecordHeaderSize + payload.size());
  out.append(kMagic, sizeof(kMagic));
  out.push_back(static_cast<char>(kRecordVersion));
  put_be(out, 0, 4);  // flags, reserved
  put_be(out, static_cast<std::uint64_t>(h.created_ms), 8);
  put_be(out, static_cast<std::uint64_t>(h.last_access_ms), 8);
  put_be(out, h.idle_timeout_s, 4);
  put_be(out, static_cast<std::uint64_t>(h.absolute_deadline_ms), 8);
  put_be(out, h.generation, 8);
  put_be(out, payload.size(), 4);
  out.append(payload);
  return out;
}

DecodedRecord decode_record(std::string_view bytes) {
  if (bytes.size() < kRecordHeaderSize) corrupt("shorter than its header");
  const auto* p = reinterpret_cast<const unsigned char*>(bytes.data());
  if (std::memcmp(p, kMagic, sizeof(kMagic)) != 0) corrupt("bad magic");
  if (p[3] != kRecordVersion) corrupt("unknown version " + std::to_string(p[3]));
  if (get_be(p + 4, 4) != 0) corrupt("unknown flags");
  DecodedRecord r;
  r.header.created_ms = static_cast<std::int64_t>(get_be(p + 8, 8));
  r.header.last_access_ms = static_cast<std::int64_t>(get_be(p + 16, 8));
  r.header.idle_timeout_s = static_cast<std::uint32_t>(get_be(p + 24, 4));
  r.header.absolute_deadline_ms = static_cast<std::int64_t>(get_be(p + 28, 8));
  r.header.generation = get_be(p + 36, 8);
  std::uint64_t payload_size = get_be(p + 44, 4);
  if (payload_size != bytes.size() - kRecordHeaderSize) corrupt("payload length does not match the record");
  if (r.header.created_ms < 0 || r.header.last_access_ms < 0 || r.header.absolute_deadline_ms < 0 ||
      r.header.idle_timeout_s == 0) {
    corrupt("impossible timestamps");
  }
  r.payload = bytes.substr(kRecordHeaderSize);
  return r;
}

std::string encode_payload(const nlohmann::json& data, std::uint32_t max_depth) {
  if (!data.is_object()) {
    throw Error(errc::invalid_argument,
                std::string("session data must be a JSON object, not ") + data.type_name());
  }
  if (!depth_within(data, max_depth, 0)) {
    throw Error(errc::invalid_argument,
                "session data nests deeper than limits.max_depth (" + std::to_string(max_depth) + ")");
  }
  std::string out;
  nlohmann::json::to_msgpack(data, nlohmann::detail::output_adapter<char>(out));
  return out;
}

nlohmann::json decode_payload(std::string_view payload, std::uint32_t max_depth) {
  nlohmann::json result;
  DepthLimitedSax sax(result, max_depth);
  bool ok = false;
  try {
    ok = nlohmann::json::sax_parse(payload.begin(), payload.end(), &sax,
                                   nlohmann::json::input_format_t::msgpack,
                                   /*strict=*/true);
  } catch (const nlohmann::json::exception& e) {
    corrupt(std::string("payload: ") + e.what());
  }
  if (sax.too_deep()) corrupt("payload nests deeper than limits.max_depth");
  if (!ok) corrupt("payload is not valid MessagePack");
  if (!result.is_object()) corrupt("payload is not an object");
  return result;
}

}  // namespace sessionkit::detail

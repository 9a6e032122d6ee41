#include "record_codec.hpp"

#include <algorithm>
#include <cstring>
#include <vector>

#include <nlohmann/json.hpp>

#include "sessionkit/error.hpp"

namespace sessionkit::detail {
namespace {

constexpr char kMagic[3] = {'S', 'K', 'R'};

void put_be(char* out, std::uint64_t v, int bytes) {
  for (int i = bytes - 1; i >= 0; --i) *out++ = static_cast<char>((v >> (8 * i)) & 0xff);
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

// Builds the DOM like nlohmann's own SAX DOM parser, but moves each string
// and key into place instead of copying it (binary values are still copied),
// and refuses nesting deeper than the limit before it recurses further.
class DepthLimitedSax {
 public:
  using json = nlohmann::json;

  DepthLimitedSax(json& result, std::uint32_t max_depth) : root_(result), max_depth_(max_depth) {}

  bool null() { return put(nullptr); }
  bool boolean(bool v) { return put(v); }
  bool number_integer(json::number_integer_t v) { return put(v); }
  bool number_unsigned(json::number_unsigned_t v) { return put(v); }
  bool number_float(json::number_float_t v, const std::string&) { return put(v); }
  bool string(std::string& v) { return put(std::move(v)); }
  bool binary(json::binary_t& v) { return put(std::move(v)); }
  bool start_object(std::size_t) { return enter(json::object()); }
  bool key(std::string& k) {
    // nlohmann's reader sends keys only inside an object; refuse anything else.
    if (stack_.empty() || !stack_.back()->is_object()) return false;
    key_ = &(*stack_.back())[std::move(k)];
    return true;
  }
  bool end_object() {
    stack_.pop_back();
    return true;
  }
  bool start_array(std::size_t) { return enter(json::array()); }
  bool end_array() {
    stack_.pop_back();
    return true;
  }
  bool parse_error(std::size_t, const std::string&, const nlohmann::detail::exception&) { return false; }
  bool too_deep() const { return too_deep_; }

 private:
  // Places a finished value: the root, the next array element, or the value of
  // the last key. Returns where it went.
  template <typename V>
  json* place(V&& v) {
    if (stack_.empty()) {
      root_ = json(std::forward<V>(v));
      return &root_;
    }
    json* parent = stack_.back();
    if (parent->is_array()) {
      parent->push_back(json(std::forward<V>(v)));
      return &parent->back();
    }
    if (key_ == nullptr) throw Error(errc::data_loss, "session record: payload: a value without a key");
    *key_ = json(std::forward<V>(v));
    return key_;
  }
  template <typename V>
  bool put(V&& v) {
    place(std::forward<V>(v));
    return true;
  }
  bool enter(json container) {
    if (stack_.size() + 1 > max_depth_) {
      too_deep_ = true;
      return false;
    }
    stack_.push_back(place(std::move(container)));
    return true;
  }

  json& root_;
  std::uint32_t max_depth_;
  std::vector<json*> stack_;  // the open objects and arrays, innermost last
  json* key_ = nullptr;       // the value slot of the last key read
  bool too_deep_ = false;
};

// Appends the MessagePack of `data` to `out`, after checking that it is an
// object within `max_depth`.
void append_payload(std::string& out, const nlohmann::json& data, std::uint32_t max_depth) {
  if (!data.is_object()) {
    throw Error(errc::invalid_argument,
                std::string("session data must be a JSON object, not ") + data.type_name());
  }
  if (!depth_within(data, max_depth, 0)) {
    throw Error(errc::invalid_argument,
                "session data nests deeper than limits.max_depth (" + std::to_string(max_depth) + ")");
  }
  nlohmann::json::to_msgpack(data, nlohmann::detail::output_adapter<char>(out));
}

}  // namespace

void set_record_header(std::string& record, const RecordHeader& h) {
  if (record.size() < kRecordHeaderSize) {
    throw Error(errc::invalid_argument, "set_record_header: the record has no room for its header");
  }
  char* p = record.data();
  std::memcpy(p, kMagic, sizeof(kMagic));
  p[3] = static_cast<char>(kRecordVersion);
  put_be(p + 4, 0, 4);  // flags, reserved
  put_be(p + 8, static_cast<std::uint64_t>(h.created_ms), 8);
  put_be(p + 16, static_cast<std::uint64_t>(h.last_access_ms), 8);
  put_be(p + 24, h.idle_timeout_s, 4);
  put_be(p + 28, static_cast<std::uint64_t>(h.absolute_deadline_ms), 8);
  put_be(p + 36, h.generation, 8);
  put_be(p + 44, record.size() - kRecordHeaderSize, 4);
}

std::string encode_record(const RecordHeader& h, std::string_view payload) {
  std::string out;
  out.reserve(kRecordHeaderSize + payload.size());
  out.resize(kRecordHeaderSize);
  out.append(payload);
  set_record_header(out, h);
  return out;
}

std::string_view record_payload(std::string_view record) {
  return record.size() < kRecordHeaderSize ? std::string_view() : record.substr(kRecordHeaderSize);
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
  std::string out;
  append_payload(out, data, max_depth);
  return out;
}

std::string encode_record(const nlohmann::json& data, std::uint32_t max_depth, std::size_t capacity) {
  std::string out;
  out.reserve(std::max(capacity, kRecordHeaderSize + 16));
  out.resize(kRecordHeaderSize);
  append_payload(out, data, max_depth);
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

// The session record: a fixed 48-byte header followed by the MessagePack
// encoding of the data object. docs/formats.md describes the bytes.
//
// Everything read back is hostile until checked: decode_record() validates the
// magic, version, lengths and timestamps, and decode_payload() parses with a
// depth limit. Both throw Error(errc::data_loss) for anything wrong.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include <nlohmann/json_fwd.hpp>

namespace sessionkit::detail {

inline constexpr std::size_t kRecordHeaderSize = 48;
inline constexpr std::uint8_t kRecordVersion = 1;

struct RecordHeader {
  std::int64_t created_ms = 0;            // Unix epoch milliseconds
  std::int64_t last_access_ms = 0;        // last stored access
  std::uint32_t idle_timeout_s = 0;       // > 0
  std::int64_t absolute_deadline_ms = 0;  // 0: none
  std::uint64_t generation = 0;           // writes so far, this one included
};

struct DecodedRecord {
  RecordHeader header;
  std::string_view payload;  // points into the decoded bytes
};

std::string encode_record(const RecordHeader& header, std::string_view payload);
DecodedRecord decode_record(std::string_view bytes);

// The save path builds a record in one buffer: encode_record(data, ...) leaves
// room for the header, record_payload() compares the payload with the stored
// one, and set_record_header() fills the header in once it is known.
// `capacity` sizes the buffer (the stored record's size avoids regrowing it).
// Throws like encode_payload().
std::string encode_record(const nlohmann::json& data, std::uint32_t max_depth, std::size_t capacity);
// Writes the header into the first kRecordHeaderSize bytes, the payload length
// included. Throws Error(invalid_argument) when `record` is shorter than that.
void set_record_header(std::string& record, const RecordHeader& header);
// The bytes after the header; empty when `record` has none.
std::string_view record_payload(std::string_view record);

// MessagePack of `data`. Throws Error(invalid_argument) unless `data` is an
// object nested at most `max_depth` levels.
std::string encode_payload(const nlohmann::json& data, std::uint32_t max_depth);
// The object in `payload`; Error(data_loss) when it is not a well-formed
// MessagePack object within `max_depth`.
nlohmann::json decode_payload(std::string_view payload, std::uint32_t max_depth);

}  // namespace sessionkit::detail

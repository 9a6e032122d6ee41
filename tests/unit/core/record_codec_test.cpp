#include "record_codec.hpp"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "sessionkit/error.hpp"

namespace sessionkit::detail {
namespace {

errc code_of(const std::function<void()>& fn) {
  try {
    fn();
  } catch (const Error& e) {
    return e.code_value();
  }
  return errc{};
}

RecordHeader sample_header() {
  RecordHeader h;
  h.created_ms = 1'700'000'000'000;
  h.last_access_ms = 1'700'000'100'000;
  h.idle_timeout_s = 1800;
  h.absolute_deadline_ms = 1'700'086'400'000;
  h.generation = 7;
  return h;
}

TEST(RecordCodecTest, RoundTrip) {
  nlohmann::json data = {{"n", 3}, {"name", "ada"}, {"list", {1, 2, {{"x", true}}}}, {"f", 1.5}};
  std::string payload = encode_payload(data, 64);
  std::string record = encode_record(sample_header(), payload);
  ASSERT_EQ(record.size(), kRecordHeaderSize + payload.size());
  DecodedRecord r = decode_record(record);
  EXPECT_EQ(r.header.created_ms, 1'700'000'000'000);
  EXPECT_EQ(r.header.last_access_ms, 1'700'000'100'000);
  EXPECT_EQ(r.header.idle_timeout_s, 1800u);
  EXPECT_EQ(r.header.absolute_deadline_ms, 1'700'086'400'000);
  EXPECT_EQ(r.header.generation, 7u);
  EXPECT_EQ(decode_payload(r.payload, 64), data);
}

TEST(RecordCodecTest, EveryKindOfValueRoundTrips) {
  nlohmann::json data = {
      {"null", nullptr},
      {"t", true},
      {"neg", -5},
      {"big", 18'446'744'073'709'551'615ull},
      {"pi", 3.25},
      {"long", std::string(300, 'x')},
      {"bin", nlohmann::json::binary({1, 2, 3})},
      {"ext", nlohmann::json::binary({4, 5}, 42)},
      {"rows", {{{"a", {1, {2, {3}}}}, {"b", "c"}}, nlohmann::json::array(), nlohmann::json::object(), "s"}},
      {"nested", {{"x", {{"y", {{"z", "deep"}}}}}, {"after", 1}}},
  };
  nlohmann::json back = decode_payload(encode_payload(data, 64), 64);
  EXPECT_EQ(back, data);
  EXPECT_EQ(back["ext"].get_binary().subtype(), 42u);
  EXPECT_FALSE(back["bin"].get_binary().has_subtype());
  // A repeated key keeps its last value, as nlohmann's own parser does, also
  // when the first one was a container.
  EXPECT_EQ(decode_payload(std::string("\x82\xa1k\x01\xa1k\x02", 7), 64), nlohmann::json({{"k", 2}}));
  EXPECT_EQ(decode_payload(std::string("\x82\xa1k\x81\xa1x\x91\x01\xa1k\xa1s", 12), 64),
            nlohmann::json({{"k", "s"}}));
  // An array of objects that grows past any small capacity keeps every element.
  nlohmann::json rows = nlohmann::json::array();
  for (int i = 0; i < 100; ++i) rows.push_back({{"i", i}, {"sub", {i, {{"j", -i}}}}});
  nlohmann::json table = {{"rows", rows}};
  EXPECT_EQ(decode_payload(encode_payload(table, 64), 64), table);
}

TEST(RecordCodecTest, RecordBuiltInPlaceMatchesTheTwoStepOne) {
  nlohmann::json data = {{"n", 3}, {"pad", std::string(200, 'p')}};
  std::string record = encode_record(data, 64, 0);
  ASSERT_EQ(record.size(), kRecordHeaderSize + encode_payload(data, 64).size());
  EXPECT_EQ(record_payload(record), encode_payload(data, 64));
  set_record_header(record, sample_header());
  EXPECT_EQ(record, encode_record(sample_header(), encode_payload(data, 64)));
  EXPECT_EQ(decode_record(record).header.generation, 7u);
  EXPECT_EQ(record_payload(""), "");
  EXPECT_EQ(record_payload(record.substr(0, kRecordHeaderSize)), "");
  std::string short_record(kRecordHeaderSize - 1, '\0');
  EXPECT_EQ(code_of([&] { set_record_header(short_record, sample_header()); }), errc::invalid_argument);
  EXPECT_EQ(code_of([&] { encode_record(nlohmann::json::array(), 64, 100); }), errc::invalid_argument);
}

TEST(RecordCodecTest, CorruptHeadersAreDataLoss) {
  std::string good = encode_record(sample_header(), encode_payload({{"a", 1}}, 64));
  EXPECT_EQ(code_of([&] { decode_record(""); }), errc::data_loss);
  EXPECT_EQ(code_of([&] { decode_record(good.substr(0, 47)); }), errc::data_loss);
  EXPECT_EQ(code_of([&] { decode_record(good.substr(0, good.size() - 1)); }), errc::data_loss);
  EXPECT_EQ(code_of([&] { decode_record(good + "x"); }), errc::data_loss);
  std::string bad = good;
  bad[0] = 'X';
  EXPECT_EQ(code_of([&] { decode_record(bad); }), errc::data_loss);
  bad = good;
  bad[3] = 2;  // version
  EXPECT_EQ(code_of([&] { decode_record(bad); }), errc::data_loss);
  bad = good;
  bad[44] = '\xff';  // payload length claims ~4 GiB
  EXPECT_EQ(code_of([&] { decode_record(bad); }), errc::data_loss);
  bad = good;
  bad[8] = '\x80';  // negative creation time
  EXPECT_EQ(code_of([&] { decode_record(bad); }), errc::data_loss);
  bad = good;
  for (int i = 24; i < 28; ++i) bad[i] = 0;  // idle timeout 0
  EXPECT_EQ(code_of([&] { decode_record(bad); }), errc::data_loss);
}

TEST(RecordCodecTest, HostilePayloadsAreDataLoss) {
  EXPECT_EQ(code_of([&] { decode_payload("", 64); }), errc::data_loss);
  EXPECT_EQ(code_of([&] { decode_payload("\xc1", 64); }), errc::data_loss);          // never-used byte
  EXPECT_EQ(code_of([&] { decode_payload("\x93\x01\x02", 64); }), errc::data_loss);  // array, not object
  EXPECT_EQ(code_of([&] { decode_payload("\x81\xa1", 64); }), errc::data_loss);      // truncated
  EXPECT_EQ(code_of([&] { decode_payload("\x81\x01\x02", 64); }), errc::data_loss);  // non-string key
  EXPECT_EQ(code_of([&] { decode_payload(std::string("\x80\x80", 2), 64); }), errc::data_loss);  // trailing
  // A string header claiming 4 GiB in a 6-byte payload.
  EXPECT_EQ(code_of([&] { decode_payload(std::string("\x81\xa1k\xdb\xff\xff\xff\xff", 8), 64); }),
            errc::data_loss);
  // An array header claiming 4 billion elements.
  EXPECT_EQ(code_of([&] { decode_payload(std::string("\x81\xa1k\xdd\xff\xff\xff\xff", 8), 64); }),
            errc::data_loss);
  // 100,000 nested arrays: refused at the depth limit, no stack overflow.
  std::string deep = "\x81\xa1k";
  deep.append(100000, '\x91');
  deep.push_back('\x01');
  EXPECT_EQ(code_of([&] { decode_payload(deep, 64); }), errc::data_loss);
}

TEST(RecordCodecTest, DepthLimitIsExact) {
  nlohmann::json data = nlohmann::json::object();
  nlohmann::json* cur = &data;
  for (int i = 1; i < 5; ++i) {  // depth 5: object + 4 nested objects
    (*cur)["k"] = nlohmann::json::object();
    cur = &(*cur)["k"];
  }
  std::string payload = encode_payload(data, 5);
  EXPECT_EQ(decode_payload(payload, 5), data);
  EXPECT_EQ(code_of([&] { decode_payload(payload, 4); }), errc::data_loss);
  EXPECT_EQ(code_of([&] { encode_payload(data, 4); }), errc::invalid_argument);
  EXPECT_EQ(code_of([&] { encode_payload(nlohmann::json::array(), 64); }), errc::invalid_argument);
}

}  // namespace
}  // namespace sessionkit::detail

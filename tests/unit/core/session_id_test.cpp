#include "session_id.hpp"

#include <gtest/gtest.h>

#include <set>

#include "siphash.hpp"
#include "sessionkit/error.hpp"

namespace sessionkit::detail {
namespace {

TEST(SessionIdTest, GeneratedIdsAreValidAndDistinct) {
  std::set<std::string> seen;
  for (int i = 0; i < 1000; ++i) {
    std::string id = generate_session_id();
    ASSERT_EQ(id.size(), kIdLength);
    ASSERT_TRUE(is_valid_session_id(id)) << id;
    seen.insert(id);
  }
  EXPECT_EQ(seen.size(), 1000u);
}

TEST(SessionIdTest, ValidationIsAnExactMatch) {
  const std::string good = generate_session_id();
  EXPECT_TRUE(is_valid_session_id(good));
  EXPECT_FALSE(is_valid_session_id(""));
  EXPECT_FALSE(is_valid_session_id(good.substr(0, 42)));
  EXPECT_FALSE(is_valid_session_id(good + "A"));
  EXPECT_FALSE(is_valid_session_id(std::string(10 * 1024, 'A')));
  std::string with_nul = good;
  with_nul[10] = '\0';
  EXPECT_FALSE(is_valid_session_id(with_nul));
  for (char bad : std::string("+/=.%~ \t\"';\\")) {
    std::string s = good;
    s[5] = bad;
    EXPECT_FALSE(is_valid_session_id(s)) << "char " << int(bad);
  }
  EXPECT_FALSE(is_valid_session_id("../../../../../../../../../../../etc/passwd"));
  // The last character carries 2 unused bits, which must be zero: one spelling per id.
  std::string s = std::string(42, 'A') + "A";
  EXPECT_TRUE(is_valid_session_id(s));
  s.back() = 'E';
  EXPECT_TRUE(is_valid_session_id(s));
  s.back() = 'B';
  EXPECT_FALSE(is_valid_session_id(s));
  s.back() = '_';
  EXPECT_FALSE(is_valid_session_id(s));
}

int failing_rand(unsigned char*, int) { return 0; }

TEST(SessionIdTest, RandomFailureIsAnErrorNeverAFallback) {
  set_rand_bytes_for_testing(&failing_rand);
  try {
    generate_session_id();
    set_rand_bytes_for_testing(nullptr);
    FAIL() << "expected Error";
  } catch (const Error& e) {
    set_rand_bytes_for_testing(nullptr);
    EXPECT_EQ(e.code_value(), errc::io);
  }
  EXPECT_TRUE(is_valid_session_id(generate_session_id()));
}

TEST(SessionIdTest, Base64RoundTripAndStrictness) {
  std::string out;
  ASSERT_TRUE(base64_decode("aGVsbG8=", out));
  EXPECT_EQ(out, "hello");
  ASSERT_TRUE(base64_decode("aGVsbG8h", out));
  EXPECT_EQ(out, "hello!");
  ASSERT_TRUE(base64_decode("aGk=", out));
  EXPECT_EQ(out, "hi");
  ASSERT_TRUE(base64_decode("aA==", out));
  EXPECT_EQ(out, "h");
  EXPECT_FALSE(base64_decode("aGVsbG8", out));    // unpadded
  EXPECT_FALSE(base64_decode("aGV=bG8h", out));   // '=' inside
  EXPECT_FALSE(base64_decode("aGVs bG8", out));   // space
  EXPECT_FALSE(base64_decode("aGVsbG8-", out));   // url alphabet
  EXPECT_FALSE(base64_decode("", out));
  const unsigned char bytes[] = {0xfb, 0xff, 0x00};
  EXPECT_EQ(base64url_encode(bytes, 3), "-_8A");
  EXPECT_EQ(base64url_encode(bytes, 2), "-_8");
}

TEST(SipHashTest, ReferenceVectors) {
  // From the SipHash paper, appendix A: key 00..0f, message 00..0e.
  const std::uint64_t k0 = 0x0706050403020100ULL;
  const std::uint64_t k1 = 0x0f0e0d0c0b0a0908ULL;
  std::string msg;
  for (int i = 0; i < 15; ++i) msg.push_back(static_cast<char>(i));
  EXPECT_EQ(siphash24(k0, k1, msg), 0xa129ca6149be45e5ULL);
  EXPECT_EQ(siphash24(k0, k1, ""), 0x726fdb47dd0e0e31ULL);
  // `openssl mac SIPHASH` prints this one's bytes little-endian: 6224939A79F5F593.
  EXPECT_EQ(siphash24(k0, k1, msg.substr(0, 8)), 0x93f5f5799a932462ULL);
}

}  // namespace
}  // namespace sessionkit::detail

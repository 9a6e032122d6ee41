#include "cookie.hpp"

#include <gtest/gtest.h>

#include "cookie_signer.hpp"
#include "session_id.hpp"

namespace sessionkit::detail {
namespace {

using V = std::vector<std::string_view>;

TEST(CookieParseTest, FindsTheNamedCookie) {
  EXPECT_EQ(find_cookie_values("sid=abc", "sid", 4), V{"abc"});
  EXPECT_EQ(find_cookie_values("a=1; sid=abc; b=2", "sid", 4), V{"abc"});
  EXPECT_EQ(find_cookie_values("a=1;sid=abc;b=2", "sid", 4), V{"abc"});
  EXPECT_EQ(find_cookie_values("  sid =  abc  ;", "sid", 4), V{"abc"});
  EXPECT_EQ(find_cookie_values("sid=\"abc\"", "sid", 4), V{"abc"});
  EXPECT_EQ(find_cookie_values("sid=a=b", "sid", 4), V{"a=b"});
  EXPECT_EQ(find_cookie_values("\tsid=abc\t", "sid", 4), V{"abc"});
}

TEST(CookieParseTest, DuplicatesKeepHeaderOrderUpToTheCap) {
  EXPECT_EQ(find_cookie_values("sid=1; sid=2; x=3; sid=4", "sid", 4), (V{"1", "2", "4"}));
  EXPECT_EQ(find_cookie_values("sid=1; sid=2; sid=3; sid=4; sid=5", "sid", 2), (V{"1", "2"}));
}

TEST(CookieParseTest, BadCookieCorpusNeverMatchesOrCrashes) {
  const char* corpus[] = {
      "", ";", ";;;;", "=", "==", "sid", "sidx=1", "xsid=1", "SID=1", "s id=1", "sid:1",
      "\"sid\"=1", ";sid", "sid;=1", "=sid", "name=value", "\x01\x02\x03", "a=1, sid2=2",
  };
  for (const char* header : corpus) {
    EXPECT_TRUE(find_cookie_values(header, "sid", 4).empty()) << header;
  }
  // Present but empty or junk values are returned for the signer to reject.
  EXPECT_EQ(find_cookie_values("sid=", "sid", 4), V{""});
  EXPECT_EQ(find_cookie_values("sid=\"", "sid", 4), V{"\""});
  EXPECT_EQ(find_cookie_values("sid=\"\"", "sid", 4), V{""});
  std::string huge(100000, 'x');
  EXPECT_TRUE(find_cookie_values(huge, "sid", 4).empty());
  std::string many;
  for (int i = 0; i < 10000; ++i) many += "sid=" + std::to_string(i) + ";";
  EXPECT_EQ(find_cookie_values(many, "sid", 4).size(), 4u);
}

TEST(SetCookieTest, DefaultsAreSafe) {
  CookieOptions o;
  EXPECT_EQ(format_set_cookie(o, "VALUE", false, false), "sid=VALUE; Path=/; HttpOnly; SameSite=Lax");
  EXPECT_EQ(format_set_cookie(o, "VALUE", true, false), "sid=VALUE; Path=/; Secure; HttpOnly; SameSite=Lax");
}

TEST(SetCookieTest, AllAttributesAndDeletion) {
  CookieOptions o;
  o.name = "app";
  o.path = "/shop";
  o.domain = "example.org";
  o.max_age_s = 3600;
  o.http_only = false;
  o.same_site = SameSite::strict;
  EXPECT_EQ(format_set_cookie(o, "V", true, false),
            "app=V; Path=/shop; Domain=example.org; Max-Age=3600; Secure; SameSite=Strict");
  EXPECT_EQ(format_set_cookie(o, "V", false, true),
            "app=; Path=/shop; Domain=example.org; Max-Age=0; Expires=Thu, 01 Jan 1970 00:00:00 GMT; "
            "SameSite=Strict");
}

TEST(CookieNameTest, TokensOnly) {
  EXPECT_TRUE(is_cookie_name("sid"));
  EXPECT_TRUE(is_cookie_name("__Host-sid"));
  EXPECT_FALSE(is_cookie_name(""));
  EXPECT_FALSE(is_cookie_name("s id"));
  EXPECT_FALSE(is_cookie_name("s;id"));
  EXPECT_FALSE(is_cookie_name("s=id"));
  EXPECT_FALSE(is_attribute_value("/a b"));
  EXPECT_TRUE(is_attribute_value("/a/b"));
}

class CookieSignerTest : public ::testing::Test {
 protected:
  std::string key1 = std::string(32, 'k');
  std::string key2 = std::string(48, 'q');
  std::string id = generate_session_id();
};

TEST_F(CookieSignerTest, UnsignedModeAcceptsBareIdsOnly) {
  CookieSigner signer({});
  bool bad = true;
  EXPECT_EQ(signer.encode(id), id);
  EXPECT_EQ(signer.decode(id, &bad), std::optional<std::string_view>(id));
  EXPECT_FALSE(bad);
  EXPECT_FALSE(signer.decode(id + ".x", &bad));
  EXPECT_FALSE(bad);
  EXPECT_FALSE(signer.decode("", &bad));
}

TEST_F(CookieSignerTest, SignsWithFirstKeyVerifiesWithAll) {
  CookieSigner old_ring({key2});
  CookieSigner ring({key1, key2});
  const std::string value = ring.encode(id);
  ASSERT_EQ(value.size(), 43u + 1 + 43);
  EXPECT_EQ(value.substr(0, 43), id);
  bool bad = true;
  EXPECT_EQ(ring.decode(value, &bad), std::optional<std::string_view>(id));
  EXPECT_FALSE(bad);
  // A cookie signed before rotation still verifies.
  EXPECT_EQ(ring.decode(old_ring.encode(id), &bad), std::optional<std::string_view>(id));
  // The old ring does not know the new key.
  EXPECT_FALSE(old_ring.decode(value, &bad));
  EXPECT_TRUE(bad);
}

TEST_F(CookieSignerTest, ForgedTruncatedAndMalformedAreRejected) {
  CookieSigner ring({key1});
  const std::string value = ring.encode(id);
  bool bad = false;
  std::string forged = value;
  forged.back() = forged.back() == 'A' ? 'B' : 'A';
  EXPECT_FALSE(ring.decode(forged, &bad));
  EXPECT_TRUE(bad);
  // Someone else's id with this id's signature.
  std::string swapped = generate_session_id() + value.substr(43);
  EXPECT_FALSE(ring.decode(swapped, &bad));
  EXPECT_TRUE(bad);
  EXPECT_FALSE(ring.decode(value.substr(0, value.size() - 1), &bad));
  EXPECT_FALSE(bad);
  EXPECT_FALSE(ring.decode(id, &bad));  // unsigned value while signing is on
  EXPECT_FALSE(bad);
  std::string dotless = value;
  dotless[43] = '_';
  EXPECT_FALSE(ring.decode(dotless, &bad));
  EXPECT_FALSE(bad);
}

}  // namespace
}  // namespace sessionkit::detail

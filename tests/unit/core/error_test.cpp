#include "sessionkit/error.hpp"

#include <gtest/gtest.h>

namespace sessionkit {
namespace {

TEST(ErrorTest, CarriesCodeCategoryAndMessage) {
  Error e(errc::unavailable, "slot 7 busy");
  EXPECT_EQ(e.code_value(), errc::unavailable);
  EXPECT_EQ(e.code(), make_error_code(errc::unavailable));
  EXPECT_STREQ(e.code().category().name(), "sessionkit");
  EXPECT_EQ(std::string(e.what()), "slot 7 busy: unavailable");
}

TEST(ErrorTest, EveryCodeHasItsName) {
  EXPECT_STREQ(to_string(errc::invalid_argument), "invalid_argument");
  EXPECT_STREQ(to_string(errc::resource_exhausted), "resource_exhausted");
  EXPECT_STREQ(to_string(errc::data_loss), "data_loss");
  EXPECT_STREQ(to_string(errc::failed_precondition), "failed_precondition");
  EXPECT_STREQ(to_string(errc::bad_config), "bad_config");
  std::error_code ec = errc::aborted;  // is_error_code_enum
  EXPECT_EQ(ec.message(), "aborted");
}

}  // namespace
}  // namespace sessionkit

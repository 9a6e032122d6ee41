// Cookie header parsing (RFC 6265 section 5.4 request syntax, read leniently
// as browsers send it) and Set-Cookie formatting.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

#include "sessionkit/config.hpp"

namespace sessionkit::detail {

// The values of every cookie called `name` in a Cookie header, in header
// order, with surrounding double quotes removed; at most `max_values`.
// Pairs without '=', empty names and junk between semicolons are skipped.
std::vector<std::string_view> find_cookie_values(std::string_view header, std::string_view name,
                                                 std::size_t max_values);

// The Set-Cookie value for `value` (empty with max_age 0 deletes the cookie).
std::string format_set_cookie(const CookieOptions& options, std::string_view value, bool secure,
                              bool delete_cookie);

// RFC 6265 cookie-name (an RFC 7230 token).
bool is_cookie_name(std::string_view name) noexcept;
// Characters allowed in Path and Domain attribute values.
bool is_attribute_value(std::string_view value) noexcept;

}  // namespace sessionkit::detail

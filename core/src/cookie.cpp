#include "cookie.hpp"

namespace sessionkit::detail {
namespace {

bool is_ows(char c) { return c == ' ' || c == '\t'; }

std::string_view trim(std::string_view s) {
  while (!s.empty() && is_ows(s.front())) s.remove_prefix(1);
  while (!s.empty() && is_ows(s.back())) s.remove_suffix(1);
  return s;
}

bool is_tchar(char c) {
  if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9')) return true;
  switch (c) {
    case '!':
    case '#':
    case '$':
    case '%':
    case '&':
    case '\'':
    case '*':
    case '+':
    case '-':
    case '.':
    case '^':
    case '_':
    case '`':
    case '|':
    case '~': return true;
    default: return false;
  }
}

}  // namespace

std::vector<std::string_view> find_cookie_values(std::string_view header, std::string_view name,
                                                 std::size_t max_values) {
  std::vector<std::string_view> values;
  while (!header.empty() && values.size() < max_values) {
    std::size_t semi = header.find(';');
    std::string_view pair = header.substr(0, semi);
    header = semi == std::string_view::npos ? std::string_view() : header.substr(semi + 1);
    std::size_t eq = pair.find('=');
    if (eq == std::string_view::npos) continue;
    if (trim(pair.substr(0, eq)) != name) continue;
    std::string_view value = trim(pair.substr(eq + 1));
    if (value.size() >= 2 && value.front() == '"' && value.back() == '"') {
      value = value.substr(1, value.size() - 2);
    }
    values.push_back(value);
  }
  return values;
}

std::string format_set_cookie(const CookieOptions& o, std::string_view value, bool secure,
                              bool delete_cookie) {
  std::string out;
  out.reserve(128);
  out.append(o.name).append("=").append(delete_cookie ? std::string_view() : value);
  if (!o.path.empty()) out.append("; Path=").append(o.path);
  if (!o.domain.empty()) out.append("; Domain=").append(o.domain);
  if (delete_cookie) {
    out.append("; Max-Age=0; Expires=Thu, 01 Jan 1970 00:00:00 GMT");
  } else if (o.max_age_s) {
    out.append("; Max-Age=").append(std::to_string(*o.max_age_s));
  }
  if (secure) out.append("; Secure");
  if (o.http_only) out.append("; HttpOnly");
  switch (o.same_site) {
    case SameSite::strict: out.append("; SameSite=Strict"); break;
    case SameSite::lax: out.append("; SameSite=Lax"); break;
    case SameSite::none: out.append("; SameSite=None"); break;
  }
  return out;
}

bool is_cookie_name(std::string_view name) noexcept {
  if (name.empty()) return false;
  for (char c : name) {
    if (!is_tchar(c)) return false;
  }
  return true;
}

bool is_attribute_value(std::string_view value) noexcept {
  for (char c : value) {
    auto u = static_cast<unsigned char>(c);
    if (u < 0x21 || u > 0x7e || c == ';' || c == ',') return false;
  }
  return true;
}

}  // namespace sessionkit::detail

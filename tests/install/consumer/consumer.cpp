// A program outside the sessionkit tree, built against an installed copy.
#include <sessionkit/sessionkit.hpp>

#include <cstdio>

int main() {
  sessionkit::SessionManager manager(
      sessionkit::Config::from_json({{"store", {{"type", "memory"}}}, {"gc", {{"every_n_requests", 0}}}}));
  std::string cookie;
  {
    sessionkit::Session s = manager.open("");
    s.data()["n"] = 1;
    std::string set_cookie = *manager.set_cookie(s);
    cookie = set_cookie.substr(0, set_cookie.find(';'));
  }
  sessionkit::Session s = manager.open(cookie);
  s.data()["n"] = s.data()["n"].get<int>() + 1;
  std::printf("n=%d\n", s.data()["n"].get<int>());
  return s.is_new() ? 1 : 0;
}

// visits_cgi: a complete CGI program that counts each visitor's requests with
// sessionkit (docs/adapters.md). The web server sets SESSIONKIT_CONFIG
// (Apache: SetEnv SESSIONKIT_CONFIG /etc/myapp/sessions.json).
#include <cstdio>
#include <cstdlib>

#include "sessionkit/cgi.hpp"

int main() {
  try {
    sessionkit::SessionManager manager(sessionkit::cgi::load_config(std::getenv("SESSIONKIT_CONFIG")));
    sessionkit::Session s = sessionkit::cgi::open(manager);
    const int visits = s.data().value("visits", 0) + 1;
    s.data()["visits"] = visits;
    s.save();
    sessionkit::cgi::write_headers(manager, s);  // Status, Content-Type, Set-Cookie
    std::printf("%d visits\n", visits);
    return 0;
  } catch (const std::exception& e) {
    sessionkit::cgi::write_error(e);  // 503 + Retry-After, or 500; the reason to stderr (the error log)
    return 1;
  }
}

// mod_visits: a complete module that keeps per-user state with sessionkit.
//
//   LoadModule sessionkit_module modules/mod_sessionkit.so   # first: it provides the API
//   LoadModule visits_module modules/mod_visits.so
//   SessionKitConfig /etc/myapp/sessions.json
//   <Location /visits>
//       SetHandler visits
//   </Location>
//
// GET /visits            counts this user's visits
// GET /visits?login=NAME remembers NAME under a fresh session id (against fixation)
// GET /visits?logout     ends the session and clears the cookie
#include <httpd.h>
// httpd.h first: the other httpd headers rely on its types.
#include <http_config.h>
#include <http_protocol.h>

#include <cstring>
#include <string>

#include "sessionkit/httpd.hpp"

namespace {

int visits_handler(request_rec* r) {
  if (r->handler == nullptr || std::strcmp(r->handler, "visits") != 0) return DECLINED;
  try {
    sessionkit::Session& s = sessionkit::httpd::session(r);
    const std::string args = r->args != nullptr ? r->args : "";
    if (args == "logout") {
      s.invalidate();
      ap_set_content_type(r, "text/plain");
      ap_rputs("bye\n", r);
      return OK;
    }
    if (args.rfind("login=", 0) == 0) {
      s.regenerate_id();
      s.data()["user"] = args.substr(6);
    }
    nlohmann::json& data = s.data();
    const int visits = data.value("visits", 0) + 1;
    data["visits"] = visits;
    s.save();
    ap_set_content_type(r, "text/plain");
    ap_rprintf(r, "%s: %d visits\n", data.value("user", std::string("guest")).c_str(), visits);
    return OK;
  } catch (const std::exception& e) {
    return sessionkit::httpd::error_status(r, e);
  }
}

void register_hooks(apr_pool_t*) { ap_hook_handler(visits_handler, nullptr, nullptr, APR_HOOK_MIDDLE); }

}  // namespace

extern "C" {
module AP_MODULE_DECLARE_DATA visits_module = {
    STANDARD20_MODULE_STUFF, nullptr, nullptr, nullptr, nullptr, nullptr, register_hooks,
#if defined(AP_MODULE_FLAG_NONE)
    AP_MODULE_FLAG_NONE,
#endif
};
}

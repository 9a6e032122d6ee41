// The per-request session API of sessionkit/httpd.hpp and the output filter
// that sends Set-Cookie and releases the session at the end of the response.
#include <httpd.h>
// httpd.h first: the other httpd headers rely on its types.
#include <http_config.h>
#include <http_log.h>
#include <http_protocol.h>
#include <http_request.h>
#include <http_ssl.h>
#include <util_filter.h>

#include <pthread.h>
#include <strings.h>

#include <cstring>
#include <optional>
#include <string>
#include <vector>

#include "adapters/httpd/httpd_internal.hpp"
#include "sessionkit/httpd.hpp"

APLOG_USE_MODULE(sessionkit);

namespace sessionkit::httpd {
namespace {

using detail::child_managers;

// One per request chain (original request, its internal redirects and
// subrequests), kept in the original request's request_config.
struct RequestSession {
  SessionManager* manager = nullptr;
  std::optional<Session> session;
  pthread_t opener{};
  bool cookie_sent = false;
};

// The request whose pool and request_config hold the session: the first
// request of the redirect chain of the top-level main request.
request_rec* original_request(request_rec* r) {
  while (r->main != nullptr) r = r->main;
  while (r->prev != nullptr) r = r->prev;
  return r;
}

// The request whose filters and headers are live now: the top-level main
// request (after redirects, the last one of the chain).
request_rec* active_main_request(request_rec* r) {
  while (r->main != nullptr) r = r->main;
  return r;
}

RequestSession* find(request_rec* r) {
  return static_cast<RequestSession*>(
      ap_get_module_config(original_request(r)->request_config, &sessionkit_module));
}

// Saves (per autosave) and unlocks. Failures are logged: the response is
// already on its way.
void release(request_rec* r, RequestSession& rs, const char* where) {
  if (!rs.session || !rs.session->locked()) return;
  if (!pthread_equal(rs.opener, pthread_self())) {
    ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r,
                  "sessionkit: session released from another thread (%s); its lock stays held until this "
                  "process exits",
                  where);
    return;
  }
  try {
    rs.session->unlock();
  } catch (const std::exception& e) {
    ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r, "sessionkit: saving the session failed (%s): %s", where,
                  e.what());
  }
}

apr_status_t cleanup_request_session(void* data) {
  auto* rs = static_cast<RequestSession*>(data);
  if (rs->session && rs->session->locked()) {
    if (pthread_equal(rs->opener, pthread_self())) {
      try {
        rs->session->unlock();
      } catch (...) {
      }
    } else {
      ap_log_error(APLOG_MARK, APLOG_ERR, 0, nullptr,
                   "sessionkit: request pool cleaned up on another thread with its session still locked");
    }
  }
  delete rs;
  return APR_SUCCESS;
}

// Puts this session's Set-Cookie (if one is due) into err_headers_out,
// replacing the one put there earlier for it (the session may have been
// regenerated or invalidated since) and keeping other modules' cookies.
void put_cookie(request_rec* r, RequestSession& rs) {
  if (!rs.session) return;
  apr_table_t* headers = active_main_request(r)->err_headers_out;
  const std::string prefix = rs.manager->config().cookie.name + "=";
  struct Others {
    const std::string* prefix;
    std::vector<std::string> values;
  } others{&prefix, {}};
  apr_table_do(
      [](void* data, const char*, const char* value) -> int {
        auto* o = static_cast<Others*>(data);
        if (std::strncmp(value, o->prefix->c_str(), o->prefix->size()) != 0) o->values.emplace_back(value);
        return 1;
      },
      &others, headers, "Set-Cookie", nullptr);
  apr_table_unset(headers, "Set-Cookie");
  for (const std::string& v : others.values) apr_table_add(headers, "Set-Cookie", v.c_str());  // copies
  if (auto value = rs.manager->set_cookie(*rs.session)) apr_table_add(headers, "Set-Cookie", value->c_str());
}

void ensure_filter(request_rec* r) {
  request_rec* main = active_main_request(r);
  for (ap_filter_t* f = main->output_filters; f != nullptr; f = f->next) {
    if (f->frec != nullptr && f->frec->name != nullptr && strcasecmp(f->frec->name, detail::kFilterName) == 0)
      return;
  }
  ap_add_output_filter(detail::kFilterName, nullptr, main, main->connection);
}

}  // namespace

namespace detail {

const char* const kFilterName = "SESSIONKIT_SESSION";

// Output filter: Set-Cookie before the first bytes (headers are generated
// further down the chain), release at end of stream.
apr_status_t session_output_filter(ap_filter_t* f, apr_bucket_brigade* bb) {
  request_rec* r = f->r;
  if (r->main != nullptr) return ap_pass_brigade(f->next, bb);
  RequestSession* rs = find(r);
  if (rs == nullptr || !rs->session) return ap_pass_brigade(f->next, bb);
  if (!rs->cookie_sent) {
    rs->cookie_sent = true;  // headers go out with this brigade
    try {
      put_cookie(r, *rs);
    } catch (const std::exception& e) {
      ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r, "sessionkit: Set-Cookie failed: %s", e.what());
    }
  }
  bool eos = false;
  for (apr_bucket* b = APR_BRIGADE_FIRST(bb); b != APR_BRIGADE_SENTINEL(bb); b = APR_BUCKET_NEXT(b)) {
    if (APR_BUCKET_IS_EOS(b)) eos = true;
  }
  if (eos) {
    release(r, *rs, "end of response");
    ap_remove_output_filter(f);
  }
  return ap_pass_brigade(f->next, bb);
}

// insert_filter hook: internal redirects start a fresh filter chain; keep
// ours on it when the chain already has a session.
void insert_session_filter(request_rec* r) {
  if (r->main != nullptr) return;
  RequestSession* rs = find(r);
  if (rs != nullptr && rs->session) ensure_filter(r);
}

}  // namespace detail

SessionManager* manager(request_rec* r) noexcept {
  const detail::ServerConfig* conf = detail::server_config(r->server);
  if (conf == nullptr || conf->config_path == nullptr) return nullptr;
  auto it = child_managers().find(conf->config_path);
  return it == child_managers().end() ? nullptr : it->second.get();
}

bool has_session(request_rec* r) noexcept {
  RequestSession* rs = find(r);
  return rs != nullptr && rs->session.has_value();
}

Session& session(request_rec* r) {
  request_rec* original = original_request(r);
  RequestSession* rs = find(r);
  if (rs != nullptr && rs->session) return *rs->session;
  SessionManager* m = manager(r);
  if (m == nullptr) {
    const detail::ServerConfig* conf = detail::server_config(r->server);
    std::string why =
        conf == nullptr || conf->config_path == nullptr
            ? std::string("no SessionKitConfig applies to this server")
            : "the session manager for " + std::string(conf->config_path) +
                  " could not be started in this process: " + detail::child_failures()[conf->config_path];
    throw Error(errc::failed_precondition, why);
  }
  if (rs == nullptr) {
    rs = new RequestSession();
    rs->manager = m;
    apr_pool_cleanup_register(original->pool, rs, cleanup_request_session, apr_pool_cleanup_null);
    ap_set_module_config(original->request_config, &sessionkit_module, rs);
  }
  request_rec* main = active_main_request(r);
  const char* cookie = apr_table_get(main->headers_in, "Cookie");
  RequestInfo info;
  info.secure_transport = ap_ssl_conn_is_ssl(main->connection) != 0;
  rs->session.emplace(m->open(cookie != nullptr ? cookie : "", info));
  rs->opener = pthread_self();
  // Now as well as in the filter: an error response may skip content filters.
  put_cookie(r, *rs);
  ensure_filter(main);
  return *rs->session;
}

int error_status(request_rec* r, const std::exception& e) noexcept {
  // The request failed: its unsaved changes are dropped and the session is
  // released now, so other requests for it need not wait for this one's end.
  if (RequestSession* rs = find(r); rs != nullptr && rs->session) rs->session->discard();
  const auto* err = dynamic_cast<const Error*>(&e);
  if (err != nullptr && err->code_value() == errc::unavailable) {
    ap_log_rerror(APLOG_MARK, APLOG_WARNING, 0, r, "sessionkit: %s", e.what());
    apr_table_setn(r->err_headers_out, "Retry-After", "1");
    return HTTP_SERVICE_UNAVAILABLE;
  }
  ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r, "sessionkit: %s", e.what());
  return HTTP_INTERNAL_SERVER_ERROR;
}

}  // namespace sessionkit::httpd

// mod_sessionkit: sessionkit inside Apache httpd.
//
// Directives (server and virtual-host context):
//   SessionKitConfig /path/to/config.json   the sessionkit configuration of this (virtual) server
//   SessionKitTestHooks On|Off              lets sessionkit-demo honour ?sleep_ms=N (tests only;
//                                           logs the pid of the process holding the lock)
//
// Lifecycle (docs/adapters.md):
//   post_config (parent, as root): every config file is read and checked; a bad
//     one stops httpd with a message naming the file and the key. The lock
//     region (shm) or lock file (fcntl) is created here, owned by httpd's User,
//     so every child attaches to the same one. A store kept in local files is
//     opened once in a forked process running as httpd's User, and closed:
//     one that User cannot open stops httpd with the reason.
//   child_init (each child, after it dropped privileges): one SessionManager
//     per config file: the lock region attached by name, the store opened
//     (LMDB after fork, as the LMDB caveats require).
// Handlers: sessionkit-demo (increments n, stores a 200-byte pad, answers n)
// and sessionkit-hello (answers without touching sessions, the baseline).
#include <ap_mpm.h>
#include <apr_strings.h>
#include <http_config.h>
#include <http_core.h>
#include <http_log.h>
#include <http_protocol.h>
#include <http_request.h>
#include <httpd.h>
#include <mpm_common.h>
#include <unixd.h>
#include <util_filter.h>

#include <fcntl.h>
#include <grp.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <thread>

#include "adapters/httpd/httpd_internal.hpp"
#include "sessionkit/httpd.hpp"

APLOG_USE_MODULE(sessionkit);

namespace sk = sessionkit;
namespace skh = sessionkit::httpd;

namespace sessionkit::httpd::detail {

apr_status_t session_output_filter(ap_filter_t* f, apr_bucket_brigade* bb);
void insert_session_filter(request_rec* r);

ServerConfig* server_config(server_rec* s) noexcept {
  return static_cast<ServerConfig*>(ap_get_module_config(s->module_config, &sessionkit_module));
}

std::map<std::string, std::unique_ptr<SessionManager>>& child_managers() {
  static auto* managers = new std::map<std::string, std::unique_ptr<SessionManager>>();
  return *managers;
}

std::map<std::string, std::string>& child_failures() {
  static auto* failures = new std::map<std::string, std::string>();
  return *failures;
}

}  // namespace sessionkit::httpd::detail

namespace {

using skh::detail::server_config;
using skh::detail::ServerConfig;

// Lock managers the parent holds so the region outlives every child
// generation; replaced on each (graceful) restart, released with pconf.
std::map<std::string, std::unique_ptr<sk::LockManager>>* g_parent_locks = nullptr;

void* create_server_config(apr_pool_t* p, server_rec*) {
  return new (apr_pcalloc(p, sizeof(ServerConfig))) ServerConfig();
}

void* merge_server_config(apr_pool_t* p, void* base_v, void* add_v) {
  auto* base = static_cast<ServerConfig*>(base_v);
  auto* add = static_cast<ServerConfig*>(add_v);
  auto* merged = new (apr_pcalloc(p, sizeof(ServerConfig))) ServerConfig();
  merged->config_path = add->config_path != nullptr ? add->config_path : base->config_path;
  merged->test_hooks = add->test_hooks != -1 ? add->test_hooks : base->test_hooks;
  return merged;
}

const char* set_config_path(cmd_parms* cmd, void*, const char* arg) {
  ServerConfig* conf = server_config(cmd->server);
  conf->config_path = ap_server_root_relative(cmd->pool, arg);
  if (conf->config_path == nullptr)
    return apr_pstrcat(cmd->pool, "SessionKitConfig: bad path ", arg, nullptr);
  return nullptr;
}

const char* set_test_hooks(cmd_parms* cmd, void*, int on) {
  server_config(cmd->server)->test_hooks = on != 0 ? 1 : 0;
  return nullptr;
}

const command_rec sessionkit_commands[] = {
    AP_INIT_TAKE1("SessionKitConfig",
                  reinterpret_cast<cmd_func>(reinterpret_cast<void (*)()>(set_config_path)), nullptr,
                  RSRC_CONF, "path of the sessionkit JSON configuration for this (virtual) server"),
    AP_INIT_FLAG("SessionKitTestHooks",
                 reinterpret_cast<cmd_func>(reinterpret_cast<void (*)()>(set_test_hooks)), nullptr, RSRC_CONF,
                 "On: sessionkit-demo honours ?sleep_ms=N while it holds the session (tests only)"),
    {nullptr, {nullptr}, nullptr, 0, RAW_ARGS, nullptr},
};

// The config as the children will use it: when httpd starts as root, the lock
// region or file is handed to httpd's User unless the config names an owner.
sk::Config child_config(const char* path) {
  sk::Config config = sk::Config::from_file(path);
  const std::string& type = config.locks.type;
  if (geteuid() == 0 && (type == "shm" || type == "fcntl") && !config.locks.section->contains("owner") &&
      ap_unixd_config.user_name != nullptr) {
    auto section = std::make_shared<nlohmann::json>(*config.locks.section);
    (*section)["owner"] = ap_unixd_config.user_name;
    config.locks.section = section;
    config.validate();
  }
  return config;
}

// Opens the store once, in a child process running as httpd's User (as every
// child will), and closes it: a store that User cannot open then stops httpd
// at start with the reason, instead of every child answering 500. Only stores
// kept in local files (those with a StoreType::location) are opened here; a
// Redis store is reached over the network and checked by the children.
void check_store_opens_as_user(const sk::Config& config) {
  const sk::StoreType type = sk::Registry::global().store(config.store.type);
  if (!type.location) return;
  int fds[2];
  if (pipe2(fds, O_CLOEXEC) != 0) throw sk::Error(sk::errc::io, std::string("pipe: ") + std::strerror(errno));
  const pid_t pid = fork();
  if (pid < 0) {
    const int err = errno;
    close(fds[0]);
    close(fds[1]);
    throw sk::Error(sk::errc::io, std::string("fork: ") + std::strerror(err));
  }
  if (pid == 0) {  // the parent is single-threaded here: C++ is safe until _exit
    close(fds[0]);
    std::string error;
    try {
      if (geteuid() == 0 && (initgroups(ap_unixd_config.user_name, ap_unixd_config.group_id) != 0 ||
                             setgid(ap_unixd_config.group_id) != 0 || setuid(ap_unixd_config.user_id) != 0)) {
        throw sk::Error(sk::errc::io, std::string("cannot become httpd's User: ") + std::strerror(errno));
      }
      type.create(*config.store.section, config.base_dir);  // opened, then closed at once
    } catch (const std::exception& e) {
      error = e.what();
    }
    if (!error.empty()) (void)!write(fds[1], error.data(), error.size());
    _exit(error.empty() ? 0 : 1);
  }
  close(fds[1]);
  std::string error;
  char buf[512];
  for (ssize_t n; (n = read(fds[0], buf, sizeof(buf))) != 0;) {
    if (n > 0) {
      error.append(buf, static_cast<std::size_t>(n));
    } else if (errno != EINTR) {
      break;
    }
  }
  close(fds[0]);
  int status = 0;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  if (WIFEXITED(status) && WEXITSTATUS(status) == 0) return;
  const std::string who = geteuid() == 0 && ap_unixd_config.user_name != nullptr
                              ? std::string("httpd's User \"") + ap_unixd_config.user_name + "\""
                              : std::string("httpd");
  throw sk::Error(sk::errc::bad_config, "store: " + who + " cannot open it: " +
                                            (error.empty() ? std::string("the check died") : error));
}

apr_status_t release_parent_locks(void*) {
  delete g_parent_locks;
  g_parent_locks = nullptr;
  return APR_SUCCESS;
}

int post_config(apr_pool_t* pconf, apr_pool_t*, apr_pool_t*, server_rec* main_server) {
  int daemons = 1;
  ap_mpm_query(AP_MPMQ_MAX_DAEMONS, &daemons);
  auto* locks = new std::map<std::string, std::unique_ptr<sk::LockManager>>();
  for (server_rec* s = main_server; s != nullptr; s = s->next) {
    const ServerConfig* conf = server_config(s);
    if (conf == nullptr || conf->config_path == nullptr || locks->count(conf->config_path) != 0) continue;
    const char* path = conf->config_path;
    try {
      sk::Config config = child_config(path);
      if (!sk::Registry::global().store(config.store.type).shared_across_processes && daemons > 1) {
        throw sk::Error(sk::errc::bad_config, std::string(path) + ": store.type: the \"" + config.store.type +
                                                  "\" store lives in one process, but this MPM runs up to " +
                                                  std::to_string(daemons) +
                                                  " child processes; use lmdb, file or redis");
      }
      (*locks)[path] = sk::Registry::global()
                           .lock_manager(config.locks.type)
                           .create(*config.locks.section, config.base_dir);
      check_store_opens_as_user(config);
    } catch (const std::exception& e) {
      ap_log_error(APLOG_MARK, APLOG_CRIT, 0, s, "sessionkit: SessionKitConfig %s: %s", path, e.what());
      delete locks;
      return HTTP_INTERNAL_SERVER_ERROR;  // httpd refuses to start
    }
  }
  release_parent_locks(nullptr);
  g_parent_locks = locks;
  apr_pool_cleanup_register(pconf, nullptr, release_parent_locks, apr_pool_cleanup_null);
  return OK;
}

void child_init(apr_pool_t*, server_rec* main_server) {
  auto& managers = skh::detail::child_managers();
  auto& failures = skh::detail::child_failures();
  for (server_rec* s = main_server; s != nullptr; s = s->next) {
    const ServerConfig* conf = server_config(s);
    if (conf == nullptr || conf->config_path == nullptr || managers.count(conf->config_path) != 0) continue;
    try {
      managers[conf->config_path] = std::make_unique<sk::SessionManager>(child_config(conf->config_path));
    } catch (const std::exception& e) {
      failures[conf->config_path] = e.what();
      ap_log_error(APLOG_MARK, APLOG_ERR, 0, s, "sessionkit: SessionKitConfig %s: cannot start: %s",
                   conf->config_path, e.what());
    }
  }
}

// The value of `key` in the query string ("" when absent).
std::string query_value(request_rec* r, const char* key) {
  if (r->args == nullptr) return "";
  const std::string args = r->args;
  const std::string prefix = std::string(key) + "=";
  for (std::size_t pos = 0; pos < args.size();) {
    std::size_t end = args.find('&', pos);
    if (end == std::string::npos) end = args.size();
    if (args.compare(pos, prefix.size(), prefix) == 0)
      return args.substr(pos + prefix.size(), end - pos - prefix.size());
    pos = end + 1;
  }
  return "";
}

int demo_handler(request_rec* r) {
  if (r->handler == nullptr) return DECLINED;
  const bool demo = std::strcmp(r->handler, "sessionkit-demo") == 0;
  const bool hello = std::strcmp(r->handler, "sessionkit-hello") == 0;
  if (!demo && !hello) return DECLINED;
  if (r->method_number != M_GET && r->method_number != M_POST) return HTTP_METHOD_NOT_ALLOWED;
  ap_set_content_type(r, "text/plain");
  if (hello) {
    if (!r->header_only) ap_rputs("hello", r);
    return OK;
  }
  try {
    sk::Session& s = skh::session(r);
    nlohmann::json& data = s.data();
    data["n"] = data.value("n", std::int64_t{0}) + 1;
    data["pad"] = std::string(200, 'p');
    if (server_config(r->server)->test_hooks == 1) {
      // Test-only paths: hold the session a while; re-enter it through an
      // internal redirect or a subrequest (which must reuse this session).
      if (long long ms = std::atoll(query_value(r, "sleep_ms").c_str()); ms > 0) {
        // Names this process, so a test can kill the one that holds the lock.
        // NOTICE: httpd logs it whatever the LogLevel.
        ap_log_rerror(APLOG_MARK, APLOG_NOTICE, 0, r,
                      "sessionkit: test hook: pid %ld holding the session lock for %lld ms",
                      static_cast<long>(getpid()), ms);
        std::this_thread::sleep_for(std::chrono::milliseconds(ms));
      }
      if (std::string target = query_value(r, "redirect"); !target.empty()) {
        ap_internal_redirect(apr_pstrdup(r->pool, target.c_str()), r);
        return OK;
      }
      if (std::string target = query_value(r, "subreq"); !target.empty()) {
        request_rec* sub = ap_sub_req_lookup_uri(target.c_str(), r, r->output_filters);
        const int rc = sub->status == HTTP_OK ? ap_run_sub_req(sub) : sub->status;
        ap_destroy_sub_req(sub);
        if (rc != OK) return rc;
        if (!r->header_only) ap_rputs(" ", r);
      }
    }
    s.save();
    if (!r->header_only) ap_rputs(std::to_string(data["n"].get<std::int64_t>()).c_str(), r);
    return OK;
  } catch (const std::exception& e) {
    return skh::error_status(r, e);
  }
}

void register_hooks(apr_pool_t*) {
  ap_hook_post_config(post_config, nullptr, nullptr, APR_HOOK_MIDDLE);
  ap_hook_child_init(child_init, nullptr, nullptr, APR_HOOK_MIDDLE);
  ap_hook_handler(demo_handler, nullptr, nullptr, APR_HOOK_MIDDLE);
  ap_hook_insert_filter(skh::detail::insert_session_filter, nullptr, nullptr, APR_HOOK_MIDDLE);
  // Error responses replace the content filters; put ours back for them too.
  ap_hook_insert_error_filter(skh::detail::insert_session_filter, nullptr, nullptr, APR_HOOK_MIDDLE);
  ap_register_output_filter(skh::detail::kFilterName, skh::detail::session_output_filter, nullptr,
                            AP_FTYPE_CONTENT_SET);
}

}  // namespace

extern "C" {
module AP_MODULE_DECLARE_DATA sessionkit_module = {
    STANDARD20_MODULE_STUFF, nullptr,        nullptr, create_server_config, merge_server_config,
    sessionkit_commands,     register_hooks,
#if defined(AP_MODULE_FLAG_NONE)
    AP_MODULE_FLAG_NONE,
#endif
};
}

// State shared by mod_sessionkit's module glue and the request API.
#pragma once

#include <httpd.h>

#include <map>
#include <memory>
#include <string>

#include "sessionkit/sessionkit.hpp"

extern "C" module AP_MODULE_DECLARE_DATA sessionkit_module;

namespace sessionkit::httpd::detail {

// Per virtual host, from the SessionKitConfig and SessionKitTestHooks directives.
struct ServerConfig {
  const char* config_path = nullptr;  // absolute, or nullptr when unset
  int test_hooks = -1;                // -1 unset, 0 off, 1 on
};

ServerConfig* server_config(server_rec* s) noexcept;

// The managers of this child process, one per distinct config file, built in
// child_init and read-only afterwards.
std::map<std::string, std::unique_ptr<SessionManager>>& child_managers();
// Why a config's manager could not be built in this child (logged per request).
std::map<std::string, std::string>& child_failures();

extern const char* const kFilterName;

}  // namespace sessionkit::httpd::detail

// Starts a real Apache httpd (Debian's apache2 binary) for integration tests:
// its own config file, a free port on 127.0.0.1, its own pid and log files,
// under a directory of the test's. Runs in the foreground as a child of the
// test; stop() (or the destructor) ends it.
//
// When the test runs as root, httpd starts as root and its children run as
// `user` (www-data), as in production: the directory is made traversable and
// data_dir() is owned by that user.
#pragma once

#include <sys/types.h>

#include <cstddef>
#include <filesystem>
#include <string>
#include <vector>

namespace sessionkit::testing {

// A <VirtualHost> listening on a port of its own (chosen by start(), like the
// main server's), with ServerName 127.0.0.1. It inherits the main server's
// <Location> sections and SessionKitTestHooks.
struct HttpdVirtualHost {
  std::string config_json;  // its own SessionKitConfig ("": it inherits the main server's)
  std::string extra;        // inside <VirtualHost>
  // HTTPS (mod_ssl) with a self-signed certificate for 127.0.0.1, made for
  // this server: HttpdServer::certificate_path().
  bool tls = false;
};

struct HttpdOptions {
  std::string mpm = "prefork";            // prefork, worker or event
  std::string config_json;                // SessionKitConfig path ("" for none)
  bool test_hooks = true;                 // SessionKitTestHooks On
  std::vector<std::string> load_modules;  // extra "name path" LoadModule lines, after mod_sessionkit
  std::string extra;                      // appended to httpd.conf
  std::string user = "www-data";
  // When this test binary runs under AddressSanitizer, the modules it built
  // (mod_sessionkit) need the ASan runtime loaded first: start httpd with it
  // (and libstdc++) in LD_PRELOAD, and with detect_leaks=0 (httpd's own
  // allocations at exit are not ours to report). No effect without ASan.
  bool preload_sanitizer_runtime = true;
  std::vector<HttpdVirtualHost> virtual_hosts{};  // {}: callers may leave it out of HttpdOptions{...}
};

// A LoadModule argument for Debian's module `name`: "alias" gives
// "alias_module /usr/lib/apache2/modules/mod_alias.so".
std::string apache_module(const std::string& name);

class HttpdServer {
 public:
  // `dir`: an existing directory for config, logs and data.
  HttpdServer(std::filesystem::path dir, HttpdOptions options);
  ~HttpdServer();
  HttpdServer(const HttpdServer&) = delete;
  HttpdServer& operator=(const HttpdServer&) = delete;

  // Writes httpd.conf and starts httpd; true once /hello answers 200 on every
  // port (the main server's and each virtual host's). False
  // when httpd exits instead (read error_log()) or does not answer in time.
  bool start();
  void stop();
  // apachectl -k graceful: SIGUSR1 to the parent.
  void graceful_restart();

  int port() const { return port_; }
  // The port of options.virtual_hosts[i].
  int virtual_host_port(std::size_t i) const { return virtual_host_ports_.at(i); }
  pid_t pid() const { return pid_; }
  // httpd's child processes (workers) right now.
  std::vector<pid_t> children() const;
  std::string error_log() const;
  const std::filesystem::path& data_dir() const { return data_dir_; }
  // The certificate TLS virtual hosts present (PEM): what an HTTPS client
  // trusts. Written by the constructor when a virtual host has `tls`.
  std::filesystem::path certificate_path() const { return dir_ / "tls-cert.pem"; }
  // The directory owned by httpd's user, for stores.
  static std::string module_path();

 private:
  bool launch();  // start() on one port

  std::filesystem::path dir_;
  std::filesystem::path data_dir_;
  HttpdOptions options_;
  int port_ = 0;
  std::vector<int> virtual_host_ports_;
  pid_t pid_ = -1;
};

}  // namespace sessionkit::testing

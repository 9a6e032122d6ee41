#include "tests/support/httpd_server.hpp"

#include <pwd.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <fstream>
#include <memory>
#include <sstream>
#include <thread>

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include "tests/support/http_client.hpp"
#include "tests/support/integration_support.hpp"

namespace sessionkit::testing {

namespace fs = std::filesystem;

std::string apache_module(const std::string& name) {
  return name + "_module /usr/lib/apache2/modules/mod_" + name + ".so";
}

namespace {

bool answers_hello(int port, const std::string& tls_ca_file = "") {
  HttpClient client(port, 1000, tls_ca_file);
  return client.get("/hello").status == 200;
}

// A P-256 key and a self-signed certificate naming 127.0.0.1 (subject and
// subjectAltName), valid for a day, as PEM files.
void write_self_signed_certificate(const fs::path& cert_path, const fs::path& key_path) {
  auto fail = [](const char* what) { throw std::runtime_error(std::string("test certificate: ") + what); };
  std::unique_ptr<EVP_PKEY, decltype(&EVP_PKEY_free)> key(EVP_EC_gen("P-256"), &EVP_PKEY_free);
  std::unique_ptr<X509, decltype(&X509_free)> cert(X509_new(), &X509_free);
  if (!key || !cert) fail("out of memory");
  X509_NAME* name = X509_get_subject_name(cert.get());
  if (X509_set_version(cert.get(), 2) != 1 || ASN1_INTEGER_set(X509_get_serialNumber(cert.get()), 1) != 1 ||
      X509_gmtime_adj(X509_getm_notBefore(cert.get()), -3600) == nullptr ||
      X509_gmtime_adj(X509_getm_notAfter(cert.get()), 86400) == nullptr ||
      X509_set_pubkey(cert.get(), key.get()) != 1 ||
      X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
                                 reinterpret_cast<const unsigned char*>("127.0.0.1"), -1, -1, 0) != 1 ||
      X509_set_issuer_name(cert.get(), name) != 1) {
    fail("cannot fill in the certificate");
  }
  X509V3_CTX ctx;
  X509V3_set_ctx_nodb(&ctx);
  X509V3_set_ctx(&ctx, cert.get(), cert.get(), nullptr, nullptr, 0);
  for (auto [nid, value] : {std::pair{NID_subject_alt_name, "IP:127.0.0.1"},
                            std::pair{NID_basic_constraints, "critical,CA:TRUE"}}) {
    X509_EXTENSION* ext = X509V3_EXT_conf_nid(nullptr, &ctx, nid, value);
    if (ext == nullptr || X509_add_ext(cert.get(), ext, -1) != 1) fail("cannot add an extension");
    X509_EXTENSION_free(ext);
  }
  if (X509_sign(cert.get(), key.get(), EVP_sha256()) == 0) fail("cannot sign");
  auto write_pem = [&](const fs::path& path, auto&& write) {
    std::unique_ptr<BIO, decltype(&BIO_free)> out(BIO_new_file(path.c_str(), "w"), &BIO_free);
    if (!out || write(out.get()) != 1) fail("cannot write a PEM file");
  };
  write_pem(cert_path, [&](BIO* out) { return PEM_write_bio_X509(out, cert.get()); });
  write_pem(key_path, [&](BIO* out) {
    return PEM_write_bio_PrivateKey(out, key.get(), nullptr, nullptr, 0, nullptr, nullptr);
  });
  fs::permissions(key_path, fs::perms::owner_read | fs::perms::owner_write);
}

bool uses_tls(const HttpdOptions& o) {
  return std::any_of(o.virtual_hosts.begin(), o.virtual_hosts.end(),
                     [](const HttpdVirtualHost& v) { return v.tls; });
}

}  // namespace

std::string HttpdServer::module_path() { return SESSIONKIT_TEST_MOD_SESSIONKIT; }

HttpdServer::HttpdServer(fs::path dir, HttpdOptions options)
    : dir_(std::move(dir)), data_dir_(dir_ / "data"), options_(std::move(options)) {
  fs::create_directories(data_dir_);
  if (geteuid() == 0) {
    // The children run as options_.user: they must reach the data directory.
    fs::permissions(dir_, fs::perms::owner_all | fs::perms::group_exec | fs::perms::others_exec);
    if (passwd* pw = getpwnam(options_.user.c_str())) {
      if (chown(data_dir_.c_str(), pw->pw_uid, pw->pw_gid) != 0)
        throw std::runtime_error("chown data dir failed");
    }
  }
  if (uses_tls(options_)) write_self_signed_certificate(certificate_path(), dir_ / "tls-key.pem");
}

HttpdServer::~HttpdServer() { stop(); }

bool HttpdServer::start() {
  // free_port() was free a moment ago only: another process (a test's client
  // socket, another server) may take it before httpd binds it. Then httpd
  // exits at once saying so, and another port is tried.
  for (int attempt = 0; attempt < 5; ++attempt) {
    if (launch()) return true;
    if (pid_ > 0 || error_log().find("Address already in use") == std::string::npos) return false;
  }
  return false;
}

bool HttpdServer::launch() {
  port_ = free_port();
  virtual_host_ports_.clear();
  for (std::size_t i = 0; i < options_.virtual_hosts.size(); ++i) {
    int p = free_port();
    // free_port() may hand out a port again once it is closed.
    while (p == port_ || std::find(virtual_host_ports_.begin(), virtual_host_ports_.end(), p) !=
                             virtual_host_ports_.end()) {
      p = free_port();
    }
    virtual_host_ports_.push_back(p);
  }
  std::ostringstream conf;
  conf << "ServerRoot \"" << dir_.string() << "\"\n"
       << "DefaultRuntimeDir \"" << dir_.string() << "\"\n"
       << "PidFile \"" << (dir_ / "httpd.pid").string() << "\"\n"
       << "Mutex file:" << dir_.string() << " default\n"
       << "Listen 127.0.0.1:" << port_ << "\n"
       << "ServerName 127.0.0.1\n"
       << "ErrorLog \"" << (dir_ / "error.log").string() << "\"\n"
       << "LogLevel warn\n"
       << "LoadModule " << apache_module("mpm_" + options_.mpm) << "\n";
  if (options_.mpm == "prefork") {
    conf << "StartServers 20\nMinSpareServers 5\nMaxSpareServers 40\nServerLimit 48\nMaxRequestWorkers 48\n";
  } else {
    conf << "StartServers 2\nServerLimit 4\nThreadsPerChild 25\nMaxRequestWorkers 100\nMinSpareThreads 25\n"
            "MaxSpareThreads 100\n";
  }
  conf << "LoadModule " << apache_module("authz_core") << "\n"
       << "<Location />\n  Require all granted\n</Location>\n"
       << "KeepAlive On\nMaxKeepAliveRequests 0\nKeepAliveTimeout 30\n"
       << "LoadModule sessionkit_module " << module_path() << "\n";
  if (uses_tls(options_)) conf << "LoadModule " << apache_module("ssl") << "\n";
  for (const std::string& m : options_.load_modules) conf << "LoadModule " << m << "\n";
  if (geteuid() == 0) conf << "User " << options_.user << "\nGroup " << options_.user << "\n";
  if (!options_.config_json.empty()) conf << "SessionKitConfig \"" << options_.config_json << "\"\n";
  conf << "SessionKitTestHooks " << (options_.test_hooks ? "On" : "Off") << "\n"
       << "<Location /demo>\n  SetHandler sessionkit-demo\n</Location>\n"
       << "<Location /hello>\n  SetHandler sessionkit-hello\n</Location>\n"
       << options_.extra << "\n";
  for (std::size_t i = 0; i < options_.virtual_hosts.size(); ++i) {
    const HttpdVirtualHost& vhost = options_.virtual_hosts[i];
    const std::string address = "127.0.0.1:" + std::to_string(virtual_host_ports_[i]);
    conf << "Listen " << address << "\n"
         << "<VirtualHost " << address << ">\n"
         << "  ServerName 127.0.0.1\n";
    if (!vhost.config_json.empty()) conf << "  SessionKitConfig \"" << vhost.config_json << "\"\n";
    if (vhost.tls) {
      conf << "  SSLEngine on\n"
           << "  SSLCertificateFile \"" << certificate_path().string() << "\"\n"
           << "  SSLCertificateKeyFile \"" << (dir_ / "tls-key.pem").string() << "\"\n";
    }
    conf << vhost.extra << "\n</VirtualHost>\n";
  }
  const fs::path conf_path = dir_ / "httpd.conf";
  std::ofstream(conf_path) << conf.str();

  // The environment of httpd, built before fork: the child may only exec.
  std::vector<std::string> env;
  for (char** e = environ; *e != nullptr; ++e) env.emplace_back(*e);
  if (options_.preload_sanitizer_runtime) {
    // The ASan runtime first; then libstdc++, which httpd (C) would only get
    // with the module: ASan resolves its __cxa_throw interceptor at start-up,
    // and without it the module's first throw is a CHECK failure.
    std::string runtime;
    std::string cxx_runtime;
    std::ifstream maps("/proc/self/maps");
    for (std::string line; std::getline(maps, line);) {
      const auto slash = line.find('/');
      if (slash == std::string::npos) continue;
      if (runtime.empty() && line.find("/libasan.so", slash) != std::string::npos)
        runtime = line.substr(slash);
      if (cxx_runtime.empty() && line.find("/libstdc++.so", slash) != std::string::npos) {
        cxx_runtime = line.substr(slash);
      }
    }
    if (!runtime.empty()) {
      if (!cxx_runtime.empty()) runtime += ":" + cxx_runtime;
      std::string asan_options = "ASAN_OPTIONS=";
      for (auto it = env.begin(); it != env.end();) {
        if (it->rfind("ASAN_OPTIONS=", 0) == 0) asan_options = *it + ":";
        if (it->rfind("ASAN_OPTIONS=", 0) == 0 || it->rfind("LD_PRELOAD=", 0) == 0) {
          it = env.erase(it);
        } else {
          ++it;
        }
      }
      env.push_back("LD_PRELOAD=" + runtime);
      env.push_back(asan_options + "detect_leaks=0");
    }
  }
  std::vector<char*> envp;
  for (std::string& e : env) envp.push_back(e.data());
  envp.push_back(nullptr);

  pid_ = fork();
  if (pid_ < 0) return false;
  if (pid_ == 0) {
    // Its own process group: httpd signals its whole group on shutdown.
    setpgid(0, 0);
    const std::string log = (dir_ / "stderr.log").string();
    if (FILE* f = std::freopen(log.c_str(), "w", stderr)) (void)f;
    execle("/usr/sbin/apache2", "apache2", "-f", conf_path.c_str(), "-DFOREGROUND",
           static_cast<char*>(nullptr), envp.data());
    _exit(127);
  }
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  while (std::chrono::steady_clock::now() < deadline) {
    int status = 0;
    if (waitpid(pid_, &status, WNOHANG) == pid_) {
      pid_ = -1;
      return false;
    }
    bool all = answers_hello(port_);
    for (std::size_t i = 0; all && i < virtual_host_ports_.size(); ++i) {
      all = answers_hello(virtual_host_ports_[i],
                          options_.virtual_hosts[i].tls ? certificate_path().string() : std::string());
    }
    if (all) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return false;
}

void HttpdServer::stop() {
  if (pid_ <= 0) return;
  kill(pid_, SIGTERM);
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(15);
  int status = 0;
  while (waitpid(pid_, &status, WNOHANG) == 0) {
    if (std::chrono::steady_clock::now() > deadline) {
      kill(pid_, SIGKILL);
      waitpid(pid_, &status, 0);
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  // Children that outlive the parent (killed parent) must not keep the port.
  for (pid_t child : children()) kill(child, SIGKILL);
  pid_ = -1;
}

void HttpdServer::graceful_restart() {
  if (pid_ > 0) kill(pid_, SIGUSR1);
}

std::vector<pid_t> HttpdServer::children() const {
  return pid_ > 0 ? children_of(pid_) : std::vector<pid_t>{};
}

std::string HttpdServer::error_log() const {
  return read_file(dir_ / "error.log") + read_file(dir_ / "stderr.log");
}

}  // namespace sessionkit::testing

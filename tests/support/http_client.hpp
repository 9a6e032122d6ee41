// A minimal HTTP/1.1 client for integration tests: GET over one keep-alive
// connection to 127.0.0.1, plain or TLS (OpenSSL), Content-Length and chunked
// bodies.
#pragma once

#include <map>
#include <string>
#include <vector>

struct ssl_ctx_st;
struct ssl_st;

namespace sessionkit::testing {

struct HttpResponse {
  int status = 0;                                           // 0: no response (connection failed or closed)
  std::map<std::string, std::vector<std::string>> headers;  // lower-case names
  std::string body;

  // The first value of header `name` (lower-case), or "".
  std::string header(const std::string& name) const;
  // "name=value" of the first Set-Cookie, as a browser would send it back; "".
  std::string cookie() const;
};

class HttpClient {
 public:
  // Plain HTTP, or with `tls_ca_file` HTTPS: the server's certificate must
  // chain to that file and name 127.0.0.1.
  explicit HttpClient(int port, int timeout_ms = 30000, std::string tls_ca_file = "");
  ~HttpClient();
  HttpClient(const HttpClient&) = delete;
  HttpClient& operator=(const HttpClient&) = delete;

  // Sends GET `target` with an optional Cookie header. A request on a kept-alive
  // connection the server has closed meanwhile is retried once on a new one.
  HttpResponse get(const std::string& target, const std::string& cookie = "");

 private:
  bool connect_now();
  void close_now();
  HttpResponse exchange(const std::string& request);
  // The connection's bytes, through TLS when there is a session: false on
  // error, EOF or timeout.
  bool send_all(const std::string& bytes);
  bool receive_some();

  int port_;
  int timeout_ms_;
  std::string tls_ca_file_;
  int fd_ = -1;
  ssl_ctx_st* tls_context_ = nullptr;
  ssl_st* tls_ = nullptr;
  std::string buffer_;
};

// A TCP port on 127.0.0.1 that was free a moment ago.
int free_port();

}  // namespace sessionkit::testing

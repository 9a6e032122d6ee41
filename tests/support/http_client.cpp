#include "tests/support/http_client.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <stdexcept>

#include <openssl/ssl.h>
#include <openssl/x509v3.h>

namespace sessionkit::testing {

std::string HttpResponse::header(const std::string& name) const {
  auto it = headers.find(name);
  return it == headers.end() || it->second.empty() ? "" : it->second.front();
}

std::string HttpResponse::cookie() const {
  std::string set_cookie = header("set-cookie");
  return set_cookie.substr(0, set_cookie.find(';'));
}

HttpClient::HttpClient(int port, int timeout_ms, std::string tls_ca_file)
    : port_(port), timeout_ms_(timeout_ms), tls_ca_file_(std::move(tls_ca_file)) {}

HttpClient::~HttpClient() {
  close_now();
  SSL_CTX_free(tls_context_);
}

bool HttpClient::connect_now() {
  close_now();
  fd_ = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd_ < 0) return false;
  int one = 1;
  setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<std::uint16_t>(port_));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    close_now();
    return false;
  }
  if (tls_ca_file_.empty()) return true;
  // The handshake blocks: bound it like every read.
  timeval tv{timeout_ms_ / 1000, (timeout_ms_ % 1000) * 1000};
  setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  setsockopt(fd_, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
  if (tls_context_ == nullptr) {
    tls_context_ = SSL_CTX_new(TLS_client_method());
    if (tls_context_ == nullptr ||
        SSL_CTX_load_verify_locations(tls_context_, tls_ca_file_.c_str(), nullptr) != 1) {
      throw std::runtime_error("HttpClient: cannot load " + tls_ca_file_);
    }
    SSL_CTX_set_verify(tls_context_, SSL_VERIFY_PEER, nullptr);
  }
  tls_ = SSL_new(tls_context_);
  if (tls_ == nullptr || X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(tls_), "127.0.0.1") != 1 ||
      SSL_set_fd(tls_, fd_) != 1 || SSL_connect(tls_) != 1) {
    close_now();
    return false;
  }
  return true;
}

void HttpClient::close_now() {
  if (tls_ != nullptr) SSL_free(tls_);
  tls_ = nullptr;
  if (fd_ >= 0) close(fd_);
  fd_ = -1;
  buffer_.clear();
}

bool HttpClient::send_all(const std::string& bytes) {
  for (std::size_t sent = 0; sent < bytes.size();) {
    const std::size_t left = bytes.size() - sent;
    const ssize_t n = tls_ != nullptr ? SSL_write(tls_, bytes.data() + sent, static_cast<int>(left))
                                      : send(fd_, bytes.data() + sent, left, MSG_NOSIGNAL);
    if (n <= 0) return false;
    sent += static_cast<std::size_t>(n);
  }
  return true;
}

bool HttpClient::receive_some() {
  if (tls_ == nullptr || SSL_pending(tls_) == 0) {
    pollfd p{fd_, POLLIN, 0};
    if (poll(&p, 1, timeout_ms_) <= 0) return false;
  }
  char chunk[16384];
  const ssize_t n =
      tls_ != nullptr ? SSL_read(tls_, chunk, sizeof(chunk)) : recv(fd_, chunk, sizeof(chunk), 0);
  if (n <= 0) return false;
  buffer_.append(chunk, static_cast<std::size_t>(n));
  return true;
}

HttpResponse HttpClient::get(const std::string& target, const std::string& cookie) {
  std::string request = "GET " + target + " HTTP/1.1\r\nHost: 127.0.0.1\r\n";
  if (!cookie.empty()) request += "Cookie: " + cookie + "\r\n";
  request += "\r\n";
  const bool reused = fd_ >= 0;
  HttpResponse r = exchange(request);
  if (r.status == 0 && reused) r = exchange(request);  // the server closed an idle connection
  return r;
}

HttpResponse HttpClient::exchange(const std::string& request) {
  HttpResponse r;
  if (fd_ < 0 && !connect_now()) return r;
  if (!send_all(request)) {
    close_now();
    return r;
  }
  // Reads until `pred` holds on buffer_; false on EOF, error or timeout.
  auto fill_until = [&](const auto& pred) {
    while (!pred()) {
      if (!receive_some()) return false;
    }
    return true;
  };
  if (!fill_until([&] { return buffer_.find("\r\n\r\n") != std::string::npos; })) {
    close_now();
    return r;
  }
  const std::size_t head_end = buffer_.find("\r\n\r\n");
  std::string head = buffer_.substr(0, head_end);
  buffer_.erase(0, head_end + 4);
  std::size_t line_end = head.find("\r\n");
  std::string status_line = head.substr(0, line_end);
  if (status_line.size() < 12) {
    close_now();
    return r;
  }
  const int status = std::atoi(status_line.c_str() + 9);
  std::size_t pos = line_end == std::string::npos ? head.size() : line_end + 2;
  while (pos < head.size()) {
    std::size_t end = head.find("\r\n", pos);
    if (end == std::string::npos) end = head.size();
    std::string line = head.substr(pos, end - pos);
    pos = end + 2;
    auto colon = line.find(':');
    if (colon == std::string::npos) continue;
    std::string name = line.substr(0, colon);
    std::transform(name.begin(), name.end(), name.begin(), [](unsigned char c) { return std::tolower(c); });
    std::string value = line.substr(colon + 1);
    value.erase(0, value.find_first_not_of(" \t"));
    r.headers[name].push_back(value);
  }
  if (r.header("transfer-encoding") == "chunked") {
    while (true) {
      if (!fill_until([&] { return buffer_.find("\r\n") != std::string::npos; })) {
        close_now();
        return HttpResponse{};
      }
      const std::size_t size_end = buffer_.find("\r\n");
      const std::size_t size = std::stoul(buffer_.substr(0, size_end), nullptr, 16);
      if (!fill_until([&] { return buffer_.size() >= size_end + 2 + size + 2; })) {
        close_now();
        return HttpResponse{};
      }
      r.body.append(buffer_, size_end + 2, size);
      buffer_.erase(0, size_end + 2 + size + 2);
      if (size == 0) break;
    }
  } else {
    const std::string length = r.header("content-length");
    const std::size_t size = length.empty() ? 0 : std::stoul(length);
    if (!fill_until([&] { return buffer_.size() >= size; })) {
      close_now();
      return HttpResponse{};
    }
    r.body = buffer_.substr(0, size);
    buffer_.erase(0, size);
  }
  r.status = status;
  if (r.header("connection") == "close") close_now();
  return r;
}

int free_port() {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) throw std::runtime_error("socket failed");
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  socklen_t len = sizeof(addr);
  if (bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 ||
      getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    close(fd);
    throw std::runtime_error("bind to a free port failed");
  }
  const int port = ntohs(addr.sin_port);
  close(fd);
  return port;
}

}  // namespace sessionkit::testing

// visits_fcgi: a complete single-process FastCGI program that counts each
// visitor's requests with sessionkit (docs/adapters.md). For several worker
// processes, see sessionkit-fcgi-demo (adapters/fastcgi/demo/).
//
//   visits_fcgi /etc/myapp/sessions.json 127.0.0.1:9000
#include <fcgiapp.h>

#include <cstdio>
#include <string>

#include "sessionkit/fastcgi.hpp"

int main(int argc, char** argv) {
  if (argc != 3) {
    std::fprintf(stderr, "usage: visits_fcgi CONFIG HOST:PORT|PATH\n");
    return 2;
  }
  try {
    sessionkit::SessionManager manager(sessionkit::Config::from_file(argv[1]));
    if (FCGX_Init() != 0) return 1;
    const int listen_fd = FCGX_OpenSocket(argv[2], 128);
    if (listen_fd < 0) {
      std::perror(argv[2]);
      return 1;
    }
    FCGX_Request request;
    FCGX_InitRequest(&request, listen_fd, 0);
    while (FCGX_Accept_r(&request) == 0) {
      try {
        sessionkit::Session s = sessionkit::fastcgi::open(manager, request);
        const int visits = s.data().value("visits", 0) + 1;
        s.data()["visits"] = visits;
        s.save();
        sessionkit::fastcgi::write_headers(request, manager, s);  // Status, Content-Type, Set-Cookie
        s.unlock();                                               // before the client reads: it may be slow
        const std::string body = std::to_string(visits) + " visits\n";
        FCGX_PutStr(body.data(), static_cast<int>(body.size()), request.out);
      } catch (const std::exception& e) {
        sessionkit::fastcgi::write_error(request,
                                         e);  // 503 + Retry-After, or 500; the reason to the error log
      }
      FCGX_Finish_r(&request);
    }
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "visits_fcgi: %s\n", e.what());
    return 1;
  }
}

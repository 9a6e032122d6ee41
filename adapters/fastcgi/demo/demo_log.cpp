#include "adapters/fastcgi/demo/demo_log.hpp"

#include <unistd.h>

#include <cstdarg>
#include <cstdio>

namespace sessionkit::fcgi_demo {

void log(const char* format, ...) noexcept {
  char line[1024];
  int used = std::snprintf(line, sizeof(line), "sessionkit-fcgi-demo[%d]: ", static_cast<int>(getpid()));
  if (used < 0) return;
  va_list args;
  va_start(args, format);
  const int more =
      std::vsnprintf(line + used, sizeof(line) - static_cast<std::size_t>(used) - 1, format, args);
  va_end(args);
  if (more > 0) used += more;
  if (used > static_cast<int>(sizeof(line)) - 2) used = static_cast<int>(sizeof(line)) - 2;  // truncated
  line[used++] = '\n';
  ssize_t rc = ::write(STDERR_FILENO, line, static_cast<std::size_t>(used));
  (void)rc;  // nowhere left to report a failing stderr
}

}  // namespace sessionkit::fcgi_demo

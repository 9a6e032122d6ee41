#include "adapters/fastcgi/demo/demo_options.hpp"

#include <cstdlib>
#include <stdexcept>
#include <string_view>

namespace sessionkit::fcgi_demo {

const char* const kUsage =
    "usage: sessionkit-fcgi-demo --config FILE [--socket HOST:PORT|:PORT|PATH] [--workers N] [--threads T]\n"
    "                            [--backlog N] [--test-hooks]\n"
    "A FastCGI responder: increments the session's integer n, stores a 200-byte pad, answers n;\n"
    "any path ending in /hello answers \"hello\" without sessions. SIGTERM drains and exits 0.\n";

namespace {

int to_int(const std::string& name, const std::string& value, int low, int high) {
  char* end = nullptr;
  const long v = std::strtol(value.c_str(), &end, 10);
  if (value.empty() || *end != '\0' || v < low || v > high) {
    throw std::invalid_argument(name + ": expected an integer in [" + std::to_string(low) + ", " +
                                std::to_string(high) + "], got \"" + value + "\"");
  }
  return static_cast<int>(v);
}

}  // namespace

DemoOptions parse_options(int argc, char** argv, bool& help) {
  DemoOptions o;
  help = false;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    std::string value;
    bool has_value = false;
    if (auto eq = arg.find('='); arg.rfind("--", 0) == 0 && eq != std::string::npos) {
      value = arg.substr(eq + 1);
      arg.resize(eq);
      has_value = true;
    }
    auto next = [&]() -> std::string {
      if (has_value) return value;
      if (i + 1 >= argc) throw std::invalid_argument(arg + ": missing value");
      return argv[++i];
    };
    if (arg == "--help" || arg == "-h") {
      help = true;
      return o;
    } else if (arg == "--config") {
      o.config_path = next();
    } else if (arg == "--socket") {
      o.socket = next();
    } else if (arg == "--workers") {
      o.workers = to_int(arg, next(), 1, 256);
    } else if (arg == "--threads") {
      o.threads = to_int(arg, next(), 1, 256);
    } else if (arg == "--backlog") {
      o.backlog = to_int(arg, next(), 1, 65535);
    } else if (arg == "--test-hooks" && !has_value) {
      o.test_hooks = true;
    } else {
      throw std::invalid_argument("unknown option " + std::string(argv[i]));
    }
  }
  if (o.config_path.empty()) throw std::invalid_argument("--config FILE is required");
  if (o.socket.empty()) throw std::invalid_argument("--socket: empty");
  return o;
}

}  // namespace sessionkit::fcgi_demo

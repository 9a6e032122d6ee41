// Command-line options of sessionkit-fcgi-demo.
#pragma once

#include <string>

namespace sessionkit::fcgi_demo {

struct DemoOptions {
  // --config FILE (required): the sessionkit JSON configuration.
  std::string config_path;
  // --socket HOST:PORT, :PORT (all addresses) or PATH (a Unix socket), as FCGX_OpenSocket takes it.
  std::string socket = ":9000";
  // --workers N: prefork worker processes sharing the socket, 1..256.
  int workers = 2;
  // --threads T: accept loops, hence requests served at once, per worker, 1..256.
  int threads = 4;
  // --backlog N: the listen() queue.
  int backlog = 128;
  // --test-hooks: honour ?sleep_ms=N while holding the session (tests only).
  bool test_hooks = false;
};

extern const char* const kUsage;

// Parses argv ("--name value" or "--name=value"). Throws std::invalid_argument
// naming the bad option; `help` is set (and nothing else checked) for --help.
DemoOptions parse_options(int argc, char** argv, bool& help);

}  // namespace sessionkit::fcgi_demo

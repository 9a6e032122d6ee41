// Command-line options of sessionkit-bench.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace sessionkit::bench {

enum class Format { table, json, csv };

struct Options {
  std::string config_file;  // --config: a sessionkit JSON config; shorthands ignored
  std::string store;        // --store lmdb|file|memory|redis (default: lmdb when built)
  std::string locks;        // --locks shm|fcntl|thread|none|redis (default: shm, thread for memory)
  // --redis HOST:PORT or a Unix socket path: the server of redis stores and locks.
  std::string redis_host = "127.0.0.1";
  std::uint16_t redis_port = 6379;
  std::string redis_socket;          // set: used instead of host and port
  std::string durability;            // --durability for lmdb/file (default: the store's own)
  bool write_map = false;            // --write-map: lmdb "write_map": true
  unsigned shards = 1;               // --shards N: lmdb "shards": N
  std::string dir;                   // --dir: where stores and lock files go (default: a temp dir)
  std::uint32_t slots = 1024;        // --slots
  int procs = 1;                     // --procs: forked worker processes
  int threads = 1;                   // --threads per process
  std::uint64_t sessions = 1000;     // --sessions: working set
  std::uint64_t value_bytes = 200;   // --value-bytes: the "pad" string stored with the counter
  double hot = 0.0;                  // --hot F: share of operations on the hot set (8 sessions)
  bool distinct = false;             // --distinct: each worker has its own sessions (no sharing)
  double seconds = 5.0;              // --seconds S
  std::optional<std::uint64_t> ops;  // --ops N (total, instead of --seconds)
  double read_only_share = 0.0;      // --read-only-share R: operations that only read
  bool baselines = true;             // --no-baseline turns them off
  Format format = Format::table;     // --json, --csv
  std::string sweep_param;           // --sweep procs=1,2,4
  std::vector<std::string> sweep_values;
  std::string plot_file;  // --plot FILE.svg
};

// Parses argv; on --help prints usage and exits 0; on a bad option prints the
// problem and usage to stderr and exits 2.
Options parse_options(int argc, char** argv);

// Applies `param=value` (a --sweep point) to `o`; false for an unknown param.
bool apply_sweep_value(Options& o, const std::string& param, const std::string& value, std::string* error);

}  // namespace sessionkit::bench

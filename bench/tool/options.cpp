#include "bench/tool/options.hpp"

#include <cstdio>
#include <cstdlib>
#include <stdexcept>
#include <string_view>

namespace sessionkit::bench {
namespace {

constexpr const char* kUsage = R"(usage: sessionkit-bench [options]

Runs full session request cycles (open from a cookie, read, modify, save,
unlock) through SessionManager, verifies every counter at the end, and prints
throughput and latency beside baselines measured in the same run.

Store and locks:
  --config FILE            a sessionkit JSON configuration (overrides the shorthands)
  --store lmdb|file|memory|redis   (default lmdb)
  --locks shm|fcntl|thread|none|redis  (default shm; thread with --store memory,
                           redis with --store redis)
  --redis HOST:PORT|PATH   the Redis server of redis stores and locks (default 127.0.0.1:6379;
                           a path is a Unix socket). Keys go under a prefix of their own,
                           removed at the end of the run
  --durability MODE        lmdb: durable|nometasync|nosync, file: durable|nosync
  --write-map              lmdb: "write_map": true (MDB_WRITEMAP, see docs/lmdb.md)
  --shards N               lmdb: "shards": N environments, ids spread by hash (default 1)
  --dir PATH               directory for stores and lock files (default: a fresh temp dir)
  --slots N                lock slots (default 1024)
Workload:
  --procs N                forked worker processes (default 1)
  --threads T              threads per process (default 1)
  --sessions K             working set of sessions (default 1000)
  --value-bytes B          bytes of padding stored with each counter (default 200)
  --hot F                  share of operations on a hot set of 8 sessions (default 0)
  --distinct               each worker (process x thread) uses its own sessions, none shared
                           (its hot set too); needs --sessions >= procs x threads
  --read-only-share R      share of operations that read without saving (default 0)
  --seconds S | --ops N    run length (default 5 seconds)
  --no-baseline            skip the baselines
Output:
  --json | --csv           one JSON object per run / CSV rows (default: a table)
  --sweep P=V1,V2,...      one run per value; P is procs, threads, slots, value-bytes,
                           sessions, hot or read-only-share
  --plot FILE.svg          with --sweep: chart throughput against P (needs gnuplot)

Exit status: 0 when every counter matched, 1 on lost updates, 2 on bad usage,
3 when the run failed.
)";

[[noreturn]] void usage_error(const std::string& msg) {
  std::fprintf(stderr, "sessionkit-bench: %s\n\n%s", msg.c_str(), kUsage);
  std::exit(2);
}

std::uint64_t to_uint(const std::string& name, const std::string& v, std::uint64_t min, std::uint64_t max) {
  try {
    std::size_t used = 0;
    if (v.empty() || v[0] == '-') throw std::invalid_argument(v);
    unsigned long long n = std::stoull(v, &used);
    if (used != v.size() || n < min || n > max) throw std::out_of_range(v);
    return n;
  } catch (const std::exception&) {
    usage_error(name + " wants an integer in [" + std::to_string(min) + ", " + std::to_string(max) +
                "], got \"" + v + "\"");
  }
}

double to_double(const std::string& name, const std::string& v, double min, double max) {
  try {
    std::size_t used = 0;
    double d = std::stod(v, &used);
    if (used != v.size() || !(d >= min && d <= max)) throw std::out_of_range(v);
    return d;
  } catch (const std::exception&) {
    usage_error(name + " wants a number in [" + std::to_string(min) + ", " + std::to_string(max) +
                "], got \"" + v + "\"");
  }
}

}  // namespace

bool apply_sweep_value(Options& o, const std::string& param, const std::string& value, std::string* error) {
  if (param == "procs") {
    o.procs = static_cast<int>(to_uint("procs", value, 1, 256));
  } else if (param == "threads") {
    o.threads = static_cast<int>(to_uint("threads", value, 1, 256));
  } else if (param == "slots") {
    o.slots = static_cast<std::uint32_t>(to_uint("slots", value, 2, 1u << 20));
  } else if (param == "value-bytes") {
    o.value_bytes = to_uint("value-bytes", value, 0, 16u << 20);
  } else if (param == "sessions") {
    o.sessions = to_uint("sessions", value, 1, 100'000'000);
  } else if (param == "hot") {
    o.hot = to_double("hot", value, 0, 1);
  } else if (param == "read-only-share") {
    o.read_only_share = to_double("read-only-share", value, 0, 1);
  } else {
    *error = "cannot sweep \"" + param + "\"";
    return false;
  }
  return true;
}

Options parse_options(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    std::string value;
    bool has_inline = false;
    if (auto eq = arg.find('='); arg.starts_with("--") && eq != std::string::npos) {
      value = arg.substr(eq + 1);
      arg = arg.substr(0, eq);
      has_inline = true;
    }
    auto next = [&]() -> std::string {
      if (has_inline) return value;
      if (i + 1 >= argc) usage_error(arg + " needs a value");
      return argv[++i];
    };
    if (arg == "--help" || arg == "-h") {
      std::fputs(kUsage, stdout);
      std::exit(0);
    } else if (arg == "--config") {
      o.config_file = next();
    } else if (arg == "--store") {
      o.store = next();
    } else if (arg == "--locks") {
      o.locks = next();
    } else if (arg == "--redis") {
      const std::string address = next();
      const auto colon = address.rfind(':');
      if (address.find('/') != std::string::npos) {
        o.redis_socket = address;
      } else if (colon == std::string::npos || colon == 0) {
        usage_error("--redis wants HOST:PORT or a Unix socket path (holding a '/'), got \"" + address + "\"");
      } else {
        o.redis_host = address.substr(0, colon);
        o.redis_port =
            static_cast<std::uint16_t>(to_uint("--redis port", address.substr(colon + 1), 1, 65535));
      }
    } else if (arg == "--durability") {
      o.durability = next();
    } else if (arg == "--write-map") {
      o.write_map = true;
    } else if (arg == "--shards") {
      o.shards = static_cast<unsigned>(to_uint(arg, next(), 1, 256));
    } else if (arg == "--dir") {
      o.dir = next();
    } else if (arg == "--slots") {
      o.slots = static_cast<std::uint32_t>(to_uint(arg, next(), 2, 1u << 20));
    } else if (arg == "--procs") {
      o.procs = static_cast<int>(to_uint(arg, next(), 1, 256));
    } else if (arg == "--threads") {
      o.threads = static_cast<int>(to_uint(arg, next(), 1, 256));
    } else if (arg == "--sessions") {
      o.sessions = to_uint(arg, next(), 1, 100'000'000);
    } else if (arg == "--value-bytes") {
      o.value_bytes = to_uint(arg, next(), 0, 16u << 20);
    } else if (arg == "--distinct") {
      o.distinct = true;
    } else if (arg == "--hot") {
      o.hot = to_double(arg, next(), 0, 1);
    } else if (arg == "--read-only-share") {
      o.read_only_share = to_double(arg, next(), 0, 1);
    } else if (arg == "--seconds") {
      o.seconds = to_double(arg, next(), 0.01, 86400);
    } else if (arg == "--ops") {
      o.ops = to_uint(arg, next(), 1, 1ULL << 40);
    } else if (arg == "--no-baseline") {
      o.baselines = false;
    } else if (arg == "--json") {
      o.format = Format::json;
    } else if (arg == "--csv") {
      o.format = Format::csv;
    } else if (arg == "--sweep") {
      std::string spec = next();
      auto eq = spec.find('=');
      if (eq == std::string::npos || eq + 1 >= spec.size()) usage_error("--sweep wants P=V1,V2,...");
      o.sweep_param = spec.substr(0, eq);
      std::string_view rest = std::string_view(spec).substr(eq + 1);
      while (!rest.empty()) {
        auto comma = rest.find(',');
        o.sweep_values.emplace_back(rest.substr(0, comma));
        rest = comma == std::string_view::npos ? std::string_view() : rest.substr(comma + 1);
      }
      Options probe = o;
      for (const std::string& v : o.sweep_values) {
        std::string error;
        if (!apply_sweep_value(probe, o.sweep_param, v, &error)) usage_error(error);
      }
    } else if (arg == "--plot") {
      o.plot_file = next();
    } else {
      usage_error("unknown option " + arg);
    }
  }
  if (!o.plot_file.empty() && o.sweep_param.empty()) usage_error("--plot needs --sweep");
  if (o.distinct) {
    std::vector<Options> runs{o};
    for (const std::string& v : o.sweep_values) {
      std::string error;
      runs.push_back(o);
      apply_sweep_value(runs.back(), o.sweep_param, v, &error);
    }
    for (const Options& r : runs) {
      if (r.sessions < static_cast<std::uint64_t>(r.procs) * static_cast<std::uint64_t>(r.threads)) {
        usage_error("--distinct needs --sessions >= procs x threads (" + std::to_string(r.procs) + " x " +
                    std::to_string(r.threads) + ")");
      }
    }
  }
  return o;
}

}  // namespace sessionkit::bench

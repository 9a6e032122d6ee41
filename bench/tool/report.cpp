#include "bench/tool/report.hpp"

#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <sstream>
#include <vector>

#include <nlohmann/json.hpp>

namespace sessionkit::bench {
namespace {

std::string fmt(const char* format, double v) {
  char buf[64];
  std::snprintf(buf, sizeof(buf), format, v);
  return buf;
}

std::string opt(const std::optional<double>& v, const char* format = "%.0f") {
  return v ? fmt(format, *v) : std::string("-");
}

std::string describe(const RunResult& r) {
  const Options& o = r.options;
  std::ostringstream s;
  s << "store " << r.store;
  std::vector<std::string> traits;
  if (!o.durability.empty()) traits.push_back(o.durability);
  if (o.write_map) traits.push_back("write_map");
  if (o.shards > 1) traits.push_back(std::to_string(o.shards) + " shards");
  for (std::size_t i = 0; i < traits.size(); ++i) s << (i == 0 ? " (" : ", ") << traits[i];
  if (!traits.empty()) s << ")";
  s << ", locks " << r.locks << ", " << o.procs << " proc x " << o.threads << " thread, " << o.sessions
    << (o.distinct ? " distinct" : "") << " sessions, " << o.value_bytes << "-byte values, hot " << o.hot
    << ", read-only " << o.read_only_share;
  return s.str();
}

}  // namespace

void print_table(std::FILE* out, const std::vector<RunResult>& runs, const std::string& sweep_param) {
  if (runs.empty()) return;
  if (sweep_param.empty()) {
    const RunResult& r = runs.front();
    std::fprintf(out, "sessionkit-bench: %s\n", describe(r).c_str());
    std::fprintf(out,
                 "  %-22s %12.0f ops/s   p50 %.1f us   p99 %.1f us   p99.9 %.1f us   (%llu ops in %.2f s)\n",
                 "session cycle", r.ops_per_sec, r.p50_us, r.p99_us, r.p999_us,
                 static_cast<unsigned long long>(r.ops), r.seconds);
    if (r.baseline_ops_per_sec) {
      std::fprintf(out, "  %-22s %12.0f ops/s   session cycle / baseline = %.2f\n", r.baseline_name.c_str(),
                   *r.baseline_ops_per_sec, r.ratio().value_or(0));
    }
    if (r.raw_store_ops_per_sec && r.baseline_name != "raw store load+save") {
      std::fprintf(out, "  %-22s %12.0f ops/s\n", "raw store load+save", *r.raw_store_ops_per_sec);
    }
    if (r.raw_lock_ops_per_sec)
      std::fprintf(out, "  %-22s %12.0f ops/s\n", "raw lock+unlock", *r.raw_lock_ops_per_sec);
    std::fprintf(out, "  lock waits %llu, lock timeouts %llu, owner-death recoveries %llu, errors %llu\n",
                 static_cast<unsigned long long>(r.lock_waits),
                 static_cast<unsigned long long>(r.lock_timeouts),
                 static_cast<unsigned long long>(r.owner_deaths), static_cast<unsigned long long>(r.errors));
    auto known = [](std::int64_t n, const char* unit) {
      return n < 0 ? std::string("? ") + unit : std::to_string(n) + " " + unit;
    };
    std::fprintf(out, "  verified: %llu acknowledged updates, %llu lost, %llu unacknowledged; store %s, %s\n",
                 static_cast<unsigned long long>(r.acknowledged),
                 static_cast<unsigned long long>(r.lost_updates),
                 static_cast<unsigned long long>(r.extra_updates), known(r.store_records, "records").c_str(),
                 known(r.store_bytes, "bytes").c_str());
    if (r.interrupted) {
      std::fprintf(out, "  (interrupted: partial run; baselines shown only where they ran)\n");
    }
    return;
  }
  std::fprintf(out, "sessionkit-bench: %s; sweeping %s\n", describe(runs.front()).c_str(),
               sweep_param.c_str());
  std::fprintf(out, "%14s %12s %9s %9s %12s %7s %12s %12s %8s %6s\n", sweep_param.c_str(), "ops/s", "p50 us",
               "p99 us", "baseline", "ratio", "raw store", "raw locks", "waits", "lost");
  for (const RunResult& r : runs) {
    std::fprintf(out, "%14s %12.0f %9.1f %9.1f %12s %7s %12s %12s %8llu %6llu%s\n", r.sweep_value.c_str(),
                 r.ops_per_sec, r.p50_us, r.p99_us, opt(r.baseline_ops_per_sec).c_str(),
                 opt(r.ratio(), "%.2f").c_str(), opt(r.raw_store_ops_per_sec).c_str(),
                 opt(r.raw_lock_ops_per_sec).c_str(), static_cast<unsigned long long>(r.lock_waits),
                 static_cast<unsigned long long>(r.lost_updates), r.interrupted ? "  (interrupted)" : "");
  }
}

nlohmann::json to_json(const RunResult& r, const std::string& sweep_param) {
  auto optional = [](const std::optional<double>& v) {
    return v ? nlohmann::json(*v) : nlohmann::json(nullptr);
  };
  const Options& o = r.options;
  nlohmann::json j = {
      {"store", r.store},
      {"locks", r.locks},
      {"durability", o.durability.empty() ? nlohmann::json(nullptr) : nlohmann::json(o.durability)},
      {"write_map", o.write_map},
      {"shards", o.shards},
      {"distinct", o.distinct},
      {"procs", o.procs},
      {"threads", o.threads},
      {"sessions", o.sessions},
      {"value_bytes", o.value_bytes},
      {"hot", o.hot},
      {"read_only_share", o.read_only_share},
      {"seconds", r.seconds},
      {"ops", r.ops},
      {"ops_per_sec", r.ops_per_sec},
      {"p50_us", r.p50_us},
      {"p99_us", r.p99_us},
      {"p999_us", r.p999_us},
      {"lock_waits", r.lock_waits},
      {"lock_timeouts", r.lock_timeouts},
      {"owner_deaths", r.owner_deaths},
      {"errors", r.errors},
      {"acknowledged", r.acknowledged},
      {"lost_updates", r.lost_updates},
      {"unacknowledged_updates", r.extra_updates},
      {"store_records", r.store_records},
      {"store_bytes", r.store_bytes},
      {"baseline", r.baseline_name.empty() ? nlohmann::json(nullptr) : nlohmann::json(r.baseline_name)},
      {"baseline_ops_per_sec", optional(r.baseline_ops_per_sec)},
      {"ratio", optional(r.ratio())},
      {"raw_store_ops_per_sec", optional(r.raw_store_ops_per_sec)},
      {"raw_lock_ops_per_sec", optional(r.raw_lock_ops_per_sec)},
      {"interrupted", r.interrupted},
  };
  if (!sweep_param.empty()) {
    j["sweep_param"] = sweep_param;
    j["sweep_value"] = r.sweep_value;
  }
  return j;
}

std::string csv_header() {
  return "sweep_param,sweep_value,store,locks,procs,threads,sessions,value_bytes,hot,read_only_share,seconds,"
         "ops,"
         "ops_per_sec,p50_us,p99_us,p999_us,baseline,baseline_ops_per_sec,ratio,raw_store_ops_per_sec,"
         "raw_lock_ops_per_sec,lock_waits,lock_timeouts,owner_deaths,errors,acknowledged,lost_updates,"
         "unacknowledged_updates,store_records,store_bytes";
}

std::string csv_row(const RunResult& r, const std::string& sweep_param) {
  const Options& o = r.options;
  std::ostringstream s;
  s << sweep_param << ',' << r.sweep_value << ',' << r.store << ',' << r.locks << ',' << o.procs << ','
    << o.threads << ',' << o.sessions << ',' << o.value_bytes << ',' << o.hot << ',' << o.read_only_share
    << ',' << fmt("%.3f", r.seconds) << ',' << r.ops << ',' << fmt("%.1f", r.ops_per_sec) << ','
    << fmt("%.2f", r.p50_us) << ',' << fmt("%.2f", r.p99_us) << ',' << fmt("%.2f", r.p999_us) << ','
    << r.baseline_name << ',' << (r.baseline_ops_per_sec ? fmt("%.1f", *r.baseline_ops_per_sec) : "") << ','
    << (r.ratio() ? fmt("%.3f", *r.ratio()) : "") << ','
    << (r.raw_store_ops_per_sec ? fmt("%.1f", *r.raw_store_ops_per_sec) : "") << ','
    << (r.raw_lock_ops_per_sec ? fmt("%.1f", *r.raw_lock_ops_per_sec) : "") << ',' << r.lock_waits << ','
    << r.lock_timeouts << ',' << r.owner_deaths << ',' << r.errors << ',' << r.acknowledged << ','
    << r.lost_updates << ',' << r.extra_updates << ',' << r.store_records << ',' << r.store_bytes;
  return s.str();
}

bool plot_svg(const std::vector<RunResult>& runs, const std::string& sweep_param,
              const std::string& svg_file) {
  if (std::system("command -v gnuplot >/dev/null 2>&1") != 0) {
    std::fprintf(stderr,
                 "sessionkit-bench: gnuplot is not installed (apt-get install gnuplot-nox); no chart drawn, "
                 "the CSV follows\n");
    return false;
  }
  char data_path[] = "/tmp/sessionkit-bench-plot-XXXXXX";
  int fd = mkstemp(data_path);
  if (fd < 0) return false;
  close(fd);
  {
    std::ofstream data(data_path);
    data << csv_header() << '\n';
    for (const RunResult& r : runs) data << csv_row(r, sweep_param) << '\n';
  }
  char script_path[] = "/tmp/sessionkit-bench-gp-XXXXXX";
  fd = mkstemp(script_path);
  if (fd < 0) return false;
  close(fd);
  {
    std::ofstream gp(script_path);
    gp << "set terminal svg size 900,540 dynamic enhanced background rgb 'white'\n"
       << "set output '" << svg_file << "'\n"
       << "set datafile separator ','\n"
       << "set title 'sessionkit-bench: " << runs.front().store << " + " << runs.front().locks << "'\n"
       << "set xlabel '" << sweep_param << "'\nset ylabel 'operations per second'\nset yrange [0:*]\n"
       << "set grid\nset key left top\n"
       << "plot '" << data_path << "' every ::1 using 2:13 with linespoints lw 2 title 'session cycle'";
    if (runs.front().baseline_ops_per_sec) {
      gp << ", '' every ::1 using 2:18 with linespoints lw 2 title '" << runs.front().baseline_name << "'";
    }
    gp << '\n';
  }
  const std::string cmd = std::string("gnuplot ") + script_path;
  const int rc = std::system(cmd.c_str());
  unlink(data_path);
  unlink(script_path);
  if (rc != 0) {
    std::fprintf(stderr, "sessionkit-bench: gnuplot failed; the CSV follows\n");
    return false;
  }
  return true;
}

}  // namespace sessionkit::bench

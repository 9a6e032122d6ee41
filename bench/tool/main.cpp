// sessionkit-bench: the throughput benchmark users run on their own hardware.
// See --help and docs/benchmarks.md.
#include <csignal>
#include <cstdio>
#include <exception>

#include <nlohmann/json.hpp>

#include "bench/tool/options.hpp"
#include "bench/tool/report.hpp"
#include "bench/tool/workload.hpp"

namespace {

volatile std::sig_atomic_t g_interrupted = 0;

void on_sigint(int) { g_interrupted = 1; }

}  // namespace

int main(int argc, char** argv) {
  using namespace sessionkit::bench;
  Options options = parse_options(argc, argv);
  std::signal(SIGINT, on_sigint);
  std::signal(SIGPIPE, SIG_IGN);  // a Redis that closes a connection is an error, not the end

  std::vector<std::string> points = options.sweep_values;
  if (points.empty()) points.emplace_back();
  std::vector<RunResult> runs;
  bool lost = false;
  if (options.format == Format::csv) std::printf("%s\n", csv_header().c_str());
  for (const std::string& value : points) {
    Options point = options;
    std::string unused;
    if (!value.empty()) apply_sweep_value(point, options.sweep_param, value, &unused);
    try {
      runs.push_back(run_once(point, value, &g_interrupted));
    } catch (const std::exception& e) {
      std::fprintf(stderr, "sessionkit-bench: %s\n", e.what());
      return 3;
    }
    const RunResult& r = runs.back();
    lost = lost || r.lost_updates > 0 || r.extra_updates > 0;
    if (options.format == Format::json) std::printf("%s\n", to_json(r, options.sweep_param).dump().c_str());
    if (options.format == Format::csv) std::printf("%s\n", csv_row(r, options.sweep_param).c_str());
    std::fflush(stdout);
    if (g_interrupted != 0) break;
  }
  if (options.format == Format::table) print_table(stdout, runs, options.sweep_param);
  if (!options.plot_file.empty()) {
    if (plot_svg(runs, options.sweep_param, options.plot_file)) {
      std::fprintf(stderr, "sessionkit-bench: chart written to %s\n", options.plot_file.c_str());
    } else if (options.format != Format::csv) {
      std::printf("%s\n", csv_header().c_str());
      for (const RunResult& r : runs) std::printf("%s\n", csv_row(r, options.sweep_param).c_str());
    }
  }
  if (lost) {
    std::fprintf(stderr,
                 "sessionkit-bench: LOST UPDATES: stored counters differ from acknowledged updates\n");
    return 1;
  }
  return 0;
}

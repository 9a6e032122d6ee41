// Output of sessionkit-bench: a table, JSON objects or CSV rows, and a chart.
#pragma once

#include <cstdio>
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "bench/tool/workload.hpp"

namespace sessionkit::bench {

void print_table(std::FILE* out, const std::vector<RunResult>& runs, const std::string& sweep_param);
nlohmann::json to_json(const RunResult& r, const std::string& sweep_param);
std::string csv_header();
std::string csv_row(const RunResult& r, const std::string& sweep_param);

// Draws ops/s (and the baseline) against the swept parameter with gnuplot.
// Returns false, after saying why on stderr, when gnuplot is missing or fails.
bool plot_svg(const std::vector<RunResult>& runs, const std::string& sweep_param,
              const std::string& svg_file);

}  // namespace sessionkit::bench

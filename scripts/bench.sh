#!/usr/bin/env bash
# Sets up, builds (Release) and runs sessionkit's main job: a short throughput
# benchmark of the session cycle, with its baseline measured in the same run.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/install-deps.sh
cmake -S . -B build/release -G Ninja -DCMAKE_BUILD_TYPE=Release -DSESSIONKIT_BUILD_BENCHMARKS=ON >/dev/null
cmake --build build/release -j "$(nproc)" --target sessionkit_core_bench
build/release/bench/sessionkit_core_bench --benchmark_min_time=0.5 \
  --benchmark_filter='BM_SessionCycle_Memory|BM_Baseline_MemoryStoreLoadSave'

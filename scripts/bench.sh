#!/usr/bin/env bash
# Sets up, builds (Release) and runs sessionkit's main job: sessionkit-bench, a
# short throughput run of the full session cycle with its baselines measured in
# the same run. Extra arguments go to sessionkit-bench (see --help).
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/install-deps.sh
cmake -S . -B build/release -G Ninja -DCMAKE_BUILD_TYPE=Release -DSESSIONKIT_BUILD_BENCHMARKS=ON >/dev/null
cmake --build build/release -j "$(nproc)" --target sessionkit-bench
build/release/bench/sessionkit-bench --store lmdb --locks shm --durability nosync --seconds 3 "$@"

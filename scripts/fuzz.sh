#!/usr/bin/env bash
# Builds the libFuzzer targets with clang (ASan + UBSan) and runs each for
# SECONDS (default 20) from the seed corpus in tests/fuzz/corpus.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-20}
bash scripts/install-deps.sh
cmake -S . -B build/fuzz -G Ninja -DCMAKE_CXX_COMPILER=clang++ -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DSESSIONKIT_BUILD_FUZZ=ON -DSESSIONKIT_WITH_LMDB=OFF -DSESSIONKIT_WITH_FILE=OFF >/dev/null
cmake --build build/fuzz -j "$(nproc)" --target cookie_fuzz record_fuzz
for target in cookie record; do
  work=$(mktemp -d)
  cp tests/fuzz/corpus/$target/* "$work"/
  echo "== fuzz: ${target}_fuzz for ${seconds}s"
  build/fuzz/tests/fuzz/${target}_fuzz -max_total_time="$seconds" -max_len=4096 -print_final_stats=1 "$work" 2>&1 |
    grep -E "^(#[0-9]+ +DONE|stat::number_of_executed_units|==[0-9]+==ERROR|SUMMARY)" || true
  rm -rf "$work"
done

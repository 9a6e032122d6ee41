#!/usr/bin/env bash
# Sets up, builds and runs every sessionkit test, twice: a RelWithDebInfo build
# (with the benchmarks compiled too), then an AddressSanitizer +
# UndefinedBehaviorSanitizer build. Servers the integration tests need (Apache,
# redis-server) are started and stopped by the tests themselves on 127.0.0.1.
#
#   bash scripts/test.sh            # both builds
#   SESSIONKIT_SANITIZE=0 bash scripts/test.sh   # the plain build only
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/install-deps.sh

jobs=$(nproc)
# Every back end and adapter, so that every test runs.
features=(-DSESSIONKIT_WITH_LMDB=ON -DSESSIONKIT_WITH_FILE=ON -DSESSIONKIT_WITH_REDIS=ON -DSESSIONKIT_WITH_HTTPD=ON
          -DSESSIONKIT_WITH_FASTCGI=ON -DSESSIONKIT_WITH_CGI=ON)
configure_and_build() {
  local dir=$1
  shift
  cmake -S . -B "$dir" -G Ninja -DSESSIONKIT_BUILD_TESTS=ON "${features[@]}" "$@" >/dev/null
  cmake --build "$dir" -j "$jobs"
}

echo "== build: RelWithDebInfo"
configure_and_build build/test -DCMAKE_BUILD_TYPE=RelWithDebInfo -DSESSIONKIT_BUILD_BENCHMARKS=ON
echo "== tests: RelWithDebInfo"
# The file store's GC test runs at full size here (100k expired + 100k live);
# the sanitizer run keeps its default 5k + 5k.
SESSIONKIT_FILE_GC_RECORDS=100000 ctest --test-dir build/test --output-on-failure -j "$jobs"

if [ "${SESSIONKIT_SANITIZE:-1}" != "0" ]; then
  echo "== build: AddressSanitizer + UndefinedBehaviorSanitizer"
  configure_and_build build/asan -DCMAKE_BUILD_TYPE=RelWithDebInfo -DSESSIONKIT_SANITIZE=ON
  echo "== tests: AddressSanitizer + UndefinedBehaviorSanitizer"
  # The install test builds an outside consumer, which carries no sanitizer
  # flags. The Apache tests start apache2 with the sanitizer runtime preloaded.
  ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
    ctest --test-dir build/asan --output-on-failure -j "$jobs" -E '^install\.'
fi

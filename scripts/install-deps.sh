#!/usr/bin/env bash
# Installs the Debian 12 packages sessionkit builds, tests and benchmarks with.
# Idempotent: installs only what is missing. Must run as root (or with sudo on PATH).
set -euo pipefail

packages=(
  build-essential cmake ninja-build pkg-config
  liblmdb-dev libssl-dev nlohmann-json3-dev
  googletest libgtest-dev libgmock-dev libbenchmark-dev
)
if [ "${SESSIONKIT_DEPS:-full}" = "full" ]; then
  packages+=(libfcgi-dev apache2 apache2-dev libhiredis-dev redis-server wrk gnuplot-nox curl)
fi

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done
[ ${#missing[@]} -eq 0 ] && exit 0

as_root=()
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null || { echo "install-deps: need root to install: ${missing[*]}" >&2; exit 1; }
  as_root=(sudo)
fi
echo "install-deps: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
"${as_root[@]}" apt-get update -qq
"${as_root[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null

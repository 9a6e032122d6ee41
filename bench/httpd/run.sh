#!/usr/bin/env bash
# mod_sessionkit throughput: wrk against SetHandler sessionkit-demo (LMDB
# nosync, shm locks, existing sessions) and sessionkit-hello (no sessions) in
# the same Apache, at concurrency 1, 8 and 32; prints requests/s, p99 and the
# demo/hello ratio. Usage: bench/httpd/run.sh BUILD_DIR [MPM] [SECONDS]
set -euo pipefail
build=$(realpath "${1:?usage: run.sh BUILD_DIR [prefork|worker|event] [SECONDS]}")
mpm=${2:-event}
seconds=${3:-5}
here=$(cd "$(dirname "$0")" && pwd)
module="$build/adapters/httpd/mod_sessionkit.so"
[ -f "$module" ] || { echo "no $module: build with -DSESSIONKIT_WITH_HTTPD=ON" >&2; exit 2; }
command -v wrk >/dev/null || { echo "wrk is missing: apt-get install wrk" >&2; exit 2; }

dir=$(mktemp -d /tmp/sessionkit-httpd-bench-XXXXXX)
chmod 755 "$dir"
mkdir -p "$dir/data"
user=$(id -un)
if [ "$(id -u)" -eq 0 ]; then user=www-data; chown www-data:www-data "$dir/data"; fi
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])' 2>/dev/null ||
       echo 18080)
region="bench-$$"
cat > "$dir/sessions.json" <<JSON
{ "store": { "type": "lmdb", "path": "$dir/data/sessions.mdb", "durability": "nosync", "map_size_mb": 256 },
  "locks": { "type": "shm", "name": "$region", "wait_ms": 5000 },
  "gc": { "every_n_requests": 0 } }
JSON
case "$mpm" in
  prefork) tuning="StartServers 40
MinSpareServers 40
MaxSpareServers 80
ServerLimit 80
MaxRequestWorkers 80" ;;
  *) tuning="StartServers 2
ServerLimit 4
ThreadsPerChild 32
MaxRequestWorkers 128
MinSpareThreads 64
MaxSpareThreads 128" ;;
esac
cat > "$dir/httpd.conf" <<CONF
ServerRoot "$dir"
DefaultRuntimeDir "$dir"
PidFile "$dir/httpd.pid"
Mutex file:$dir default
Listen 127.0.0.1:$port
ServerName 127.0.0.1
ErrorLog "$dir/error.log"
LogLevel warn
LoadModule mpm_${mpm}_module /usr/lib/apache2/modules/mod_mpm_${mpm}.so
LoadModule authz_core_module /usr/lib/apache2/modules/mod_authz_core.so
LoadModule sessionkit_module $module
$tuning
$( [ "$(id -u)" -eq 0 ] && printf 'User www-data\nGroup www-data\n' )
KeepAlive On
MaxKeepAliveRequests 0
SessionKitConfig "$dir/sessions.json"
<Location />
  Require all granted
</Location>
<Location /demo>
  SetHandler sessionkit-demo
</Location>
<Location /hello>
  SetHandler sessionkit-hello
</Location>
CONF

cleanup() {
  [ -f "$dir/httpd.pid" ] && kill "$(cat "$dir/httpd.pid")" 2>/dev/null || true
  sleep 1
  rm -f "/dev/shm/sessionkit-$region"
  rm -rf "$dir"
}
trap cleanup EXIT
/usr/sbin/apache2 -f "$dir/httpd.conf" -k start
for _ in $(seq 100); do curl -fs "http://127.0.0.1:$port/hello" >/dev/null && break; sleep 0.1; done

# The working set: 256 sessions created before the measurement.
for _ in $(seq 256); do
  curl -fs -D - -o /dev/null "http://127.0.0.1:$port/demo" | tr -d '\r' | sed -n 's/^Set-Cookie: \([^;]*\).*/\1/p'
done > "$dir/cookies.txt"
[ "$(wc -l < "$dir/cookies.txt")" -eq 256 ] || { echo "session set-up failed" >&2; cat "$dir/error.log" >&2; exit 1; }

measure() {  # target concurrency -> "req/s p99_ms"
  local out
  out=$(wrk -t "$(( $2 < 4 ? $2 : 4 ))" -c "$2" -d "${seconds}s" --latency -s "$here/cookies.lua" \
        "http://127.0.0.1:$port$1" -- "$dir/cookies.txt")
  local rps p99
  rps=$(awk '/^Requests\/sec/ {print $2}' <<<"$out")
  p99=$(awk '$1 == "99%" {v=$2; if (v ~ /us$/) {sub(/us$/,"",v); v=v/1000} else if (v ~ /ms$/) {sub(/ms$/,"",v)} else if (v ~ /s$/) {sub(/s$/,"",v); v=v*1000}; print v}' <<<"$out")
  echo "$rps $p99"
}

echo "mod_sessionkit ($mpm MPM, LMDB nosync + shm, 256 existing sessions, ${seconds}s per point)"
printf '%12s %14s %12s %14s %12s %8s\n' concurrency demo_req/s demo_p99_ms hello_req/s hello_p99_ms ratio
for c in 1 8 32; do
  read -r demo_rps demo_p99 < <(measure /demo "$c")
  read -r hello_rps hello_p99 < <(measure /hello "$c")
  ratio=$(awk -v a="$demo_rps" -v b="$hello_rps" 'BEGIN { printf "%.2f", (b > 0 ? a / b : 0) }')
  printf '%12s %14s %12s %14s %12s %8s\n' "$c" "$demo_rps" "$demo_p99" "$hello_rps" "$hello_p99" "$ratio"
done
if grep -q "sessionkit: " "$dir/error.log"; then echo "error log:" >&2; grep "sessionkit: " "$dir/error.log" | tail -5 >&2; fi

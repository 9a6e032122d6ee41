#!/usr/bin/env bash
# FastCGI and CGI throughput: wrk against sessionkit-fcgi-demo behind Apache's
# mod_proxy_fcgi (/fcgi/demo vs /fcgi/hello, the same worker answering without
# sessions) and against sessionkit-cgi-demo behind mod_cgid (/cgi/demo vs
# /cgi/hello, the same program exiting before any sessionkit work), all in one
# Apache (event MPM). LMDB nosync + shm locks, 256 existing sessions used
# round robin. Prints requests/s, p99 and the demo/hello ratio.
#
# Usage: bench/fcgi/run.sh BUILD_DIR [SECONDS] [WORKERS] [THREADS]
#   BUILD_DIR  configured with -DSESSIONKIT_WITH_FASTCGI=ON -DSESSIONKIT_WITH_CGI=ON
#   SECONDS    per measured point (default 5)
#   WORKERS x THREADS   of the FastCGI worker (default 2 x 8)
set -euo pipefail
build=$(realpath "${1:?usage: run.sh BUILD_DIR [SECONDS] [WORKERS] [THREADS]}")
seconds=${2:-5}
workers=${3:-2}
threads=${4:-8}
here=$(cd "$(dirname "$0")" && pwd)
fcgi_demo="$build/adapters/fastcgi/sessionkit-fcgi-demo"
cgi_demo="$build/adapters/cgi/sessionkit-cgi-demo"
for f in "$fcgi_demo" "$cgi_demo"; do
  [ -x "$f" ] || { echo "no $f: build with -DSESSIONKIT_WITH_FASTCGI=ON -DSESSIONKIT_WITH_CGI=ON" >&2; exit 2; }
done
command -v wrk >/dev/null || { echo "wrk is missing: apt-get install wrk" >&2; exit 2; }
modules=/usr/lib/apache2/modules

dir=$(mktemp -d /tmp/sessionkit-fcgi-bench-XXXXXX)
chmod 755 "$dir"
mkdir -p "$dir/data" "$dir/bin"
# httpd's User runs the CGI program: copy it where that user can reach it.
cp "$fcgi_demo" "$cgi_demo" "$dir/bin/"
chmod 755 "$dir/bin" "$dir/bin/"*
as_user=()
if [ "$(id -u)" -eq 0 ]; then
  chown www-data:www-data "$dir/data"
  as_user=(setpriv --reuid=www-data --regid=www-data --init-groups)
fi
free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}
port=$(free_port)
fcgi_port=$(free_port)
region="fcgi-bench-$$"
cat > "$dir/sessions.json" <<JSON
{ "store": { "type": "lmdb", "path": "$dir/data/sessions.mdb", "durability": "nosync", "map_size_mb": 256 },
  "locks": { "type": "shm", "name": "$region", "wait_ms": 5000 },
  "gc": { "every_n_requests": 0 } }
JSON
cat > "$dir/httpd.conf" <<CONF
ServerRoot "$dir"
DefaultRuntimeDir "$dir"
PidFile "$dir/httpd.pid"
Mutex file:$dir default
Listen 127.0.0.1:$port
ServerName 127.0.0.1
ErrorLog "$dir/error.log"
LogLevel warn
LoadModule mpm_event_module $modules/mod_mpm_event.so
LoadModule authz_core_module $modules/mod_authz_core.so
LoadModule proxy_module $modules/mod_proxy.so
LoadModule proxy_fcgi_module $modules/mod_proxy_fcgi.so
LoadModule alias_module $modules/mod_alias.so
LoadModule env_module $modules/mod_env.so
LoadModule cgid_module $modules/mod_cgid.so
StartServers 2
ServerLimit 4
ThreadsPerChild 32
MaxRequestWorkers 128
MinSpareThreads 64
MaxSpareThreads 128
$( [ "$(id -u)" -eq 0 ] && printf 'User www-data\nGroup www-data\n' )
KeepAlive On
MaxKeepAliveRequests 0
ScriptSock "$dir/cgid.sock"
<Location />
  Require all granted
</Location>
ProxyPass /fcgi/ fcgi://127.0.0.1:$fcgi_port/ retry=0
ScriptAlias /cgi "$dir/bin/sessionkit-cgi-demo"
<Location /cgi>
  SetEnv SESSIONKIT_CONFIG "$dir/sessions.json"
</Location>
CONF

worker_pid=
cleanup() {
  [ -n "$worker_pid" ] && kill -TERM "$worker_pid" 2>/dev/null && wait "$worker_pid" 2>/dev/null || true
  [ -f "$dir/httpd.pid" ] && kill "$(cat "$dir/httpd.pid")" 2>/dev/null || true
  sleep 1
  rm -f "/dev/shm/sessionkit-$region"
  rm -rf "$dir"
}
trap cleanup EXIT
/usr/sbin/apache2 -f "$dir/httpd.conf" -k start
"${as_user[@]}" "$dir/bin/sessionkit-fcgi-demo" --config "$dir/sessions.json" --socket "127.0.0.1:$fcgi_port" \
  --workers "$workers" --threads "$threads" 2> "$dir/worker.log" &
worker_pid=$!
for _ in $(seq 100); do curl -fs "http://127.0.0.1:$port/fcgi/hello" >/dev/null && break; sleep 0.1; done

# The working set: 256 sessions created before the measurement (through the
# FastCGI worker; the CGI program uses the same ones).
for _ in $(seq 256); do
  curl -fs -D - -o /dev/null "http://127.0.0.1:$port/fcgi/demo" | tr -d '\r' | sed -n 's/^Set-Cookie: \([^;]*\).*/\1/p'
done > "$dir/cookies.txt"
if [ "$(wc -l < "$dir/cookies.txt")" -ne 256 ]; then
  echo "session set-up failed" >&2; cat "$dir/worker.log" "$dir/error.log" >&2; exit 1
fi

measure() {  # target concurrency -> "req/s p99_ms"
  local out
  out=$(wrk -t "$(( $2 < 4 ? $2 : 4 ))" -c "$2" -d "${seconds}s" --latency -s "$here/../httpd/cookies.lua" \
        "http://127.0.0.1:$port$1" -- "$dir/cookies.txt")
  local rps p99
  rps=$(awk '/^Requests\/sec/ {print $2}' <<<"$out")
  p99=$(awk '$1 == "99%" {v=$2; if (v ~ /us$/) {sub(/us$/,"",v); v=v/1000} else if (v ~ /ms$/) {sub(/ms$/,"",v)} else if (v ~ /s$/) {sub(/s$/,"",v); v=v*1000}; print v}' <<<"$out")
  if grep -q "Non-2xx" <<<"$out"; then echo "warning: $(grep Non-2xx <<<"$out") for $1 at c=$2" >&2; fi
  echo "$rps $p99"
}

table() {  # title demo hello concurrencies...
  local title=$1 demo=$2 hello=$3
  shift 3
  echo "$title"
  printf '%12s %14s %12s %14s %12s %8s\n' concurrency demo_req/s demo_p99_ms hello_req/s hello_p99_ms ratio
  for c in "$@"; do
    read -r demo_rps demo_p99 < <(measure "$demo" "$c")
    read -r hello_rps hello_p99 < <(measure "$hello" "$c")
    ratio=$(awk -v a="$demo_rps" -v b="$hello_rps" 'BEGIN { printf "%.2f", (b > 0 ? a / b : 0) }')
    printf '%12s %14s %12s %14s %12s %8s\n' "$c" "$demo_rps" "$demo_p99" "$hello_rps" "$hello_p99" "$ratio"
  done
}

table "FastCGI: sessionkit-fcgi-demo, $workers workers x $threads threads, via mod_proxy_fcgi (LMDB nosync + shm, 256 sessions, ${seconds}s per point)" \
  /fcgi/demo /fcgi/hello 1 8 32
echo
table "CGI: sessionkit-cgi-demo via mod_cgid (one process per request; same store and sessions)" \
  /cgi/demo /cgi/hello 1 8
for log in "$dir/worker.log" "$dir/error.log"; do
  if grep -q "sessionkit: " "$log"; then echo "$log:" >&2; grep "sessionkit: " "$log" | tail -5 >&2; fi
done

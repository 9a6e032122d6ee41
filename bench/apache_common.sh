# shellcheck shell=bash disable=SC2154  # port, region, seconds: set by the caller, see below
# Shared by the Apache benchmarks (bench/httpd/run.sh, bench/fcgi/run.sh):
# a throw-away Apache httpd on 127.0.0.1 with the sessionkit config they
# share, a working set of sessions, and wrk measurements of a demo target
# against its no-session baseline. Sourced, not run; the caller sets
# `set -euo pipefail`.
#
# The caller sets, before calling what uses them:
#   dir       the bench directory (apache_make_dir)
#   region    the shm lock region name
#   port      httpd's port
#   seconds   wrk's duration per measured point
# and may set worker_pid (a FastCGI worker for apache_cleanup to stop).

apache_modules=/usr/lib/apache2/modules
bench_lua="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/httpd/cookies.lua"

# A TCP port on 127.0.0.1 that was free a moment ago.
apache_free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# apache_make_dir NAME: a fresh /tmp/sessionkit-NAME-bench-XXXXXX with data/
# for the store. httpd's children run as www-data when started as root: the
# directory must be traversable and data/ theirs.
apache_make_dir() {
  dir=$(mktemp -d "/tmp/sessionkit-$1-bench-XXXXXX")
  chmod 755 "$dir"
  mkdir -p "$dir/data"
  if [ "$(id -u)" -eq 0 ]; then chown www-data:www-data "$dir/data"; fi
}

# Writes $dir/sessions.json: LMDB nosync, shm locks, no request-driven GC.
# SESSIONKIT_BENCH_WRITE_MAP=1 adds "write_map": true to the store (docs/lmdb.md).
apache_write_sessions_json() {
  local write_map=""
  if [ "${SESSIONKIT_BENCH_WRITE_MAP:-0}" = 1 ]; then write_map=', "write_map": true'; fi
  cat > "$dir/sessions.json" <<JSON
{ "store": { "type": "lmdb", "path": "$dir/data/sessions.mdb", "durability": "nosync", "map_size_mb": 256$write_map },
  "locks": { "type": "shm", "name": "$region", "wait_ms": 5000 },
  "gc": { "every_n_requests": 0 } }
JSON
}

# apache_conf_head MPM: the first lines of httpd.conf (paths, listener, log,
# the MPM and authz_core); the caller adds its modules and tuning after them.
apache_conf_head() {
  cat <<CONF
ServerRoot "$dir"
DefaultRuntimeDir "$dir"
PidFile "$dir/httpd.pid"
Mutex file:$dir default
Listen 127.0.0.1:$port
ServerName 127.0.0.1
ErrorLog "$dir/error.log"
LogLevel warn
LoadModule mpm_${1}_module $apache_modules/mod_mpm_${1}.so
LoadModule authz_core_module $apache_modules/mod_authz_core.so
CONF
}

# The tuning of the threaded MPMs (worker, event): 128 threads in up to 4 children.
apache_threaded_tuning() {
  cat <<CONF
StartServers 2
ServerLimit 4
ThreadsPerChild 32
MaxRequestWorkers 128
MinSpareThreads 64
MaxSpareThreads 128
CONF
}

# The User/Group lines (only as root), keep-alive without a request limit.
apache_conf_common() {
  if [ "$(id -u)" -eq 0 ]; then printf 'User www-data\nGroup www-data\n'; else echo; fi
  cat <<CONF
KeepAlive On
MaxKeepAliveRequests 0
CONF
}

# Stops the FastCGI worker (if any) and httpd, removes the lock region and $dir.
apache_cleanup() {
  [ -n "${worker_pid:-}" ] && kill -TERM "$worker_pid" 2>/dev/null && wait "$worker_pid" 2>/dev/null || true
  [ -f "$dir/httpd.pid" ] && kill "$(cat "$dir/httpd.pid")" 2>/dev/null || true
  sleep 1
  rm -f "/dev/shm/sessionkit-$region"
  rm -rf "$dir"
}

apache_start() {
  /usr/sbin/apache2 -f "$dir/httpd.conf" -k start
}

# apache_wait_for PATH: up to 10 s until httpd answers PATH with a 2xx.
apache_wait_for() {
  for _ in $(seq 100); do curl -fs "http://127.0.0.1:$port$1" >/dev/null && break; sleep 0.1; done
}

# bench_create_sessions PATH LOG...: the working set, 256 sessions created
# through PATH before the measurement, one "sid=..." a line in
# $dir/cookies.txt. Exits 1 with the LOGs on stderr when a request failed.
bench_create_sessions() {
  local target=$1
  shift
  for _ in $(seq 256); do
    curl -fs -D - -o /dev/null "http://127.0.0.1:$port$target" | tr -d '\r' | sed -n 's/^Set-Cookie: \([^;]*\).*/\1/p'
  done > "$dir/cookies.txt"
  if [ "$(wc -l < "$dir/cookies.txt")" -ne 256 ]; then
    echo "session set-up failed" >&2; cat "$@" >&2; exit 1
  fi
}

bench_measure() {  # target concurrency -> "req/s p99_ms"
  local out
  out=$(wrk -t "$(( $2 < 4 ? $2 : 4 ))" -c "$2" -d "${seconds}s" --latency -s "$bench_lua" \
        "http://127.0.0.1:$port$1" -- "$dir/cookies.txt")
  local rps p99
  rps=$(awk '/^Requests\/sec/ {print $2}' <<<"$out")
  p99=$(awk '$1 == "99%" {v=$2; if (v ~ /us$/) {sub(/us$/,"",v); v=v/1000} else if (v ~ /ms$/) {sub(/ms$/,"",v)} else if (v ~ /s$/) {sub(/s$/,"",v); v=v*1000}; print v}' <<<"$out")
  if grep -q "Non-2xx" <<<"$out"; then echo "warning: $(grep Non-2xx <<<"$out") for $1 at c=$2" >&2; fi
  echo "$rps $p99"
}

# bench_table TITLE DEMO HELLO CONCURRENCY...: one row a concurrency, the demo
# target against its baseline. The two run in turn, in $rounds slices (default
# 3) of $seconds / $rounds each, rounded up to whole seconds, so that a machine whose speed drifts
# during the run slows both alike: req/s is the mean of a target's slices,
# p99 the worst of them.
bench_table() {
  local title=$1 demo=$2 hello=$3
  shift 3
  local n=${rounds:-3}
  local whole=$seconds
  # wrk takes whole seconds: each slice is SECONDS / rounds rounded up.
  seconds=$(awk -v s="$whole" -v n="$n" 'BEGIN { v = int((s + n - 1) / n); printf "%d", (v < 1 ? 1 : v) }')
  echo "$title"
  printf '%12s %14s %12s %14s %12s %8s\n' concurrency demo_req/s demo_p99_ms hello_req/s hello_p99_ms ratio
  for c in "$@"; do
    local samples=""
    for _ in $(seq "$n"); do
      read -r demo_rps demo_p99 < <(bench_measure "$demo" "$c")
      read -r hello_rps hello_p99 < <(bench_measure "$hello" "$c")
      samples+="$demo_rps $demo_p99 $hello_rps $hello_p99"$'\n'
    done
    awk -v c="$c" '
      NF == 4 { n++; d += $1; h += $3; if ($2 + 0 > dp) dp = $2 + 0; if ($4 + 0 > hp) hp = $4 + 0 }
      END { if (n == 0) { printf "%12s  no wrk output\n", c; exit }
            printf "%12s %14.2f %12s %14.2f %12s %8.3f\n", c, d / n, dp, h / n, hp, (h > 0 ? d / h : 0) }' \
      <<<"$samples"
  done
  seconds=$whole
}

# bench_report_errors LOG...: the last sessionkit errors of each LOG, on stderr.
bench_report_errors() {
  local log
  for log in "$@"; do
    if grep -q "sessionkit: " "$log"; then echo "$log:" >&2; grep "sessionkit: " "$log" | tail -5 >&2; fi
  done
}

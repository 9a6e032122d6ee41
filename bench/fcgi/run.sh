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
# shellcheck source=SCRIPTDIR/../apache_common.sh
source "$here/../apache_common.sh"
fcgi_demo="$build/adapters/fastcgi/sessionkit-fcgi-demo"
cgi_demo="$build/adapters/cgi/sessionkit-cgi-demo"
for f in "$fcgi_demo" "$cgi_demo"; do
  [ -x "$f" ] || { echo "no $f: build with -DSESSIONKIT_WITH_FASTCGI=ON -DSESSIONKIT_WITH_CGI=ON" >&2; exit 2; }
done
command -v wrk >/dev/null || { echo "wrk is missing: apt-get install wrk" >&2; exit 2; }

apache_make_dir fcgi
mkdir -p "$dir/bin"
# httpd's User runs the CGI program: copy it where that user can reach it.
cp "$fcgi_demo" "$cgi_demo" "$dir/bin/"
chmod 755 "$dir/bin" "$dir/bin/"*
as_user=()
if [ "$(id -u)" -eq 0 ]; then as_user=(setpriv --reuid=www-data --regid=www-data --init-groups); fi
port=$(apache_free_port)
fcgi_port=$(apache_free_port)
region="fcgi-bench-$$"
apache_write_sessions_json
cat > "$dir/httpd.conf" <<CONF
$(apache_conf_head event)
LoadModule proxy_module $apache_modules/mod_proxy.so
LoadModule proxy_fcgi_module $apache_modules/mod_proxy_fcgi.so
LoadModule alias_module $apache_modules/mod_alias.so
LoadModule env_module $apache_modules/mod_env.so
LoadModule cgid_module $apache_modules/mod_cgid.so
$(apache_threaded_tuning)
$(apache_conf_common)
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
trap apache_cleanup EXIT
apache_start
"${as_user[@]}" "$dir/bin/sessionkit-fcgi-demo" --config "$dir/sessions.json" --socket "127.0.0.1:$fcgi_port" \
  --workers "$workers" --threads "$threads" 2> "$dir/worker.log" &
worker_pid=$!
apache_wait_for /fcgi/hello

# The working set is created through the FastCGI worker; the CGI program uses
# the same sessions.
bench_create_sessions /fcgi/demo "$dir/worker.log" "$dir/error.log"

bench_table "FastCGI: sessionkit-fcgi-demo, $workers workers x $threads threads, via mod_proxy_fcgi (LMDB nosync + shm, 256 sessions, ${seconds}s per point)" \
  /fcgi/demo /fcgi/hello 1 8 32
echo
bench_table "CGI: sessionkit-cgi-demo via mod_cgid (one process per request; same store and sessions)" \
  /cgi/demo /cgi/hello 1 8
bench_report_errors "$dir/worker.log" "$dir/error.log"

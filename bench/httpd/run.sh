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
# shellcheck source=SCRIPTDIR/../apache_common.sh
source "$here/../apache_common.sh"
module="$build/adapters/httpd/mod_sessionkit.so"
[ -f "$module" ] || { echo "no $module: build with -DSESSIONKIT_WITH_HTTPD=ON" >&2; exit 2; }
command -v wrk >/dev/null || { echo "wrk is missing: apt-get install wrk" >&2; exit 2; }

apache_make_dir httpd
port=$(apache_free_port 2>/dev/null || echo 18080)
region="bench-$$"
apache_write_sessions_json
case "$mpm" in
  prefork) tuning="StartServers 40
MinSpareServers 40
MaxSpareServers 80
ServerLimit 80
MaxRequestWorkers 80" ;;
  *) tuning=$(apache_threaded_tuning) ;;
esac
cat > "$dir/httpd.conf" <<CONF
$(apache_conf_head "$mpm")
LoadModule sessionkit_module $module
$tuning
$(apache_conf_common)
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

trap apache_cleanup EXIT
apache_start
apache_wait_for /hello
bench_create_sessions /demo "$dir/error.log"

bench_table "mod_sessionkit ($mpm MPM, LMDB nosync + shm, 256 existing sessions, ${seconds}s per point)" \
  /demo /hello 1 8 32
bench_report_errors "$dir/error.log"

#!/usr/bin/env bash
# The control plane under load while replicating: `wrk` against /sync/status and /metrics
# during a catch-up, against the same catch-up without it.
#
# Per round (ROUNDS rounds, alternating so that drift on a shared machine hits both alike):
# the daemon stopped, N inserts into bench.h1 (bench_workload, transactions of 1000 rows), the
# daemon started from its checkpoint and timed until the last row's document is there
# (bench_loader wait), once quiet and once with two wrk processes running for the whole
# catch-up (one on /sync/status, one on /metrics; 1 thread, C connections each, keep-alive).
# Prints rows/s for both, their ratio (target: the load costs <= 10 % of the throughput), and
# wrk's requests/s and latency percentiles per endpoint.
#   bench/http_load.sh [--rows N] [--rounds R] [--connections C] [--out DIR]
# Defaults: 100 000 rows, 2 rounds, 4 connections per endpoint, out bench/results/http.
# wrk comes from Debian (installed if missing).
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
ROWS=100000 ROUNDS=2 CONNS=4 OUT=""
BUILD=${MS_BENCH_BUILD:-build-bench}
usage() { echo "usage: $0 [--rows N] [--rounds R] [--connections C] [--out DIR]" >&2; exit 64; }
while [ $# -gt 0 ]; do
  case "$1" in
    --rows) ROWS=${2:?}; shift 2 ;;
    --rounds) ROUNDS=${2:?}; shift 2 ;;
    --connections) CONNS=${2:?}; shift 2 ;;
    --out) OUT=${2:?}; shift 2 ;;
    *) usage ;;
  esac
done
[[ $ROWS =~ ^[1-9][0-9]*$ && $ROUNDS =~ ^[1-9][0-9]*$ && $CONNS =~ ^[1-9][0-9]*$ ]] || usage
cd "$ROOT"
if ! command -v wrk > /dev/null; then
  sudo=(); [ "$(id -u)" = 0 ] || sudo=(sudo)
  "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends wrk > /dev/null
fi
[ -n "$OUT" ] || OUT=bench/results/http
mkdir -p "$OUT"; OUT=$(cd "$OUT" && pwd)
[ -f "$BUILD/build.ninja" ] || meson setup "$BUILD" -Dbuildtype=debugoptimized > /dev/null
if ! out=$(ninja -C "$BUILD" mysync bench_loader bench_workload 2>&1); then echo "$out" >&2; exit 1; fi
MYSYNC=$ROOT/$BUILD/mysync LOADER=$ROOT/$BUILD/bench_loader WORKLOAD=$ROOT/$BUILD/bench_workload

. bench/lib.sh
DAEMON_PID="" WRK_PIDS=()
BENCH_PIDS() { echo "${WRK_PIDS[@]}" $DAEMON_PID; }
bench_start http
URI=$MS_RIG_MONGO_URI MDB=httpbench
wl() { "$WORKLOAD" --port "$MS_RIG_MARIADB_PORT" --user rig --password rig-admin --db bench "$@"; }
wl --create --prefix h > /dev/null
"$LOADER" drop "$URI" "$MDB"

start_daemon() { # the daemon; sets PORT from its "http listening ... port=N" line
  env -i PATH="$PATH" HOME="$HOME" \
    MYSQL_HOST=127.0.0.1 MYSQL_PORT="$MS_RIG_MARIADB_PORT" MYSQL_USER="$MS_RIG_MYSYNC_USER" \
    MYSQL_PASSWORD="$MS_RIG_MYSYNC_PASSWORD" MYSQL_DATABASE=bench MONGODB_URI="$URI" \
    MONGODB_DATABASE="$MDB" SYNC_MODE=binlog SYNC_TABLES=bench.h1 LOG_LEVEL=info \
    HTTP_LISTEN=127.0.0.1:0 "$MYSYNC" 2>> "$WORK/daemon.log" &
  DAEMON_PID=$!
  for _ in $(seq 1 600); do
    PORT=$(sed -n 's/.*http listening.* port=\([0-9]*\).*/\1/p' "$WORK/daemon.log" | tail -n 1)
    [ -n "$PORT" ] && grep -q "replicating into" "$WORK/daemon.log" && return 0
    sleep 0.02
  done
  echo "http_load: the daemon did not start; its log:" >&2; tail -n 20 "$WORK/daemon.log" >&2; exit 1
}
stop_daemon() {
  local rc=0
  kill -TERM "$DAEMON_PID"; wait "$DAEMON_PID" || rc=$?; DAEMON_PID=""
  [ "$rc" = 0 ] || { echo "http_load: the daemon exited $rc" >&2; tail -n 20 "$WORK/daemon.log" >&2; exit 1; }
}

start_daemon   # the initial snapshot of the empty table and a checkpoint
stop_daemon
: > "$WORK/quiet"; : > "$WORK/loaded"
for round in $(seq 1 "$ROUNDS"); do
  for mode in quiet loaded; do
    wl --prefix h --mix 1:0:0 --txn 1000 --changes "$ROWS" --seed "$round" > /dev/null
    last=$(mariadb --no-defaults -h127.0.0.1 -P"$MS_RIG_MARIADB_PORT" -urig -prig-admin -N -e "SELECT MAX(id) FROM bench.h1")
    : > "$WORK/daemon.log"
    t0=$(date +%s.%N)
    start_daemon
    if [ "$mode" = loaded ]; then
      WRK_PIDS=()
      for path in /sync/status /metrics; do
        wrk -t1 -c"$CONNS" -d600s --latency "http://127.0.0.1:$PORT$path" > "$WORK/wrk-$round-${path//\//_}.txt" 2>&1 &
        WRK_PIDS+=($!)
      done
    fi
    t1=$("$LOADER" wait "$URI" "$MDB" h1 "$last" 900 2> /dev/null)
    dcpu=$(cpu_of "$DAEMON_PID") wcpu=0
    if [ "$mode" = loaded ]; then
      for p in "${WRK_PIDS[@]}"; do
        wcpu=$(awk -v a="$wcpu" -v b="$(cpu_of "$p")" 'BEGIN{printf "%.2f", a + b}')
        kill -INT "$p" 2> /dev/null || true; wait "$p" 2> /dev/null || true
      done
      WRK_PIDS=()
    fi
    stop_daemon
    secs=$(awk -v a="$t1" -v b="$t0" 'BEGIN{printf "%.2f", a - b}')
    echo "$secs $dcpu $wcpu" >> "$WORK/$mode"
    echo "   round $round, $mode: $ROWS rows in $secs s (daemon CPU $dcpu s, wrk CPU $wcpu s)" >&2
  done
done

best() { sort -g "$1" | head -n 1 | cut -d' ' -f1; }
Q=$(best "$WORK/quiet") L=$(best "$WORK/loaded")
QC=$(sort -g "$WORK/quiet" | head -n 1 | cut -d' ' -f2) LC=$(sort -g "$WORK/loaded" | head -n 1 | cut -d' ' -f2)
WC=$(sort -g "$WORK/loaded" | head -n 1 | cut -d' ' -f3)
{
  printf '\ncontrol plane under wrk while replicating (%d rows per catch-up, best of %d, %s)\n' "$ROWS" "$ROUNDS" "$(date -u +%Y-%m-%d)"
  awk -v n="$ROWS" -v q="$Q" -v l="$L" 'BEGIN {
    printf "%-44s %8.2f s %10.0f rows/s\n", "replication, control plane idle", q, n / q
    printf "%-44s %8.2f s %10.0f rows/s\n", "replication, wrk on /sync/status + /metrics", l, n / l
    printf "%-44s %8.3f   (target >= 0.90)\n", "ratio loaded / idle (rows/s)", q / l }'
  printf '%-44s %8s s idle, %s s loaded; wrk used %s CPU s\n' "daemon CPU during the best runs" "$QC" "$LC" "$WC"
  for f in "$WORK"/wrk-*.txt; do
    ep=$(basename "$f" .txt); ep=${ep#wrk-}
    awk -v ep="$ep" '/Requests\/sec/ {rps = $2} /^ +50%/ {p50 = $2} /^ +99%/ {p99 = $2}
      /requests in/ {n = $1} /Socket errors|Non-2xx/ {err = err " " $0}
      END {printf "wrk %-36s %9s req/s  p50 %8s  p99 %8s  (%s requests%s)\n", ep, rps, p50, p99, n, err}' "$f"
  done
} | tee "$OUT/summary.txt"
{
  echo "section,metric,value,unit"
  echo "http-load,idle_rows_per_s,$(awk -v n="$ROWS" -v q="$Q" 'BEGIN{printf "%.0f", n / q}'),rows/s"
  echo "http-load,loaded_rows_per_s,$(awk -v n="$ROWS" -v l="$L" 'BEGIN{printf "%.0f", n / l}'),rows/s"
  echo "http-load,ratio_loaded_vs_idle,$(awk -v q="$Q" -v l="$L" 'BEGIN{printf "%.3f", q / l}'),x"
  for f in "$WORK"/wrk-*.txt; do
    ep=$(basename "$f" .txt); ep=${ep#wrk-*-}
    awk -v ep="$ep" '/Requests\/sec/ {print "http-load,wrk" ep "_req_per_s," $2 ",req/s"}' "$f"
  done
} > "$OUT/results.csv"
cp "$WORK"/wrk-*.txt "$OUT/"

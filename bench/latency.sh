#!/usr/bin/env bash
# Latency, memory, a mixed workload and a CPU profile of one running daemon (binlog mode,
# generic strategy) on the rig's MariaDB and mongo-java-server, driven by bench_workload.
#
#   burst     first (so that the steady figure comes before any burst): 1 000 rows/s for 2S s,
#             a 10x burst (10 000 rows/s) for S/2 s, 1 000 rows/s for S s: latency over the
#             whole sequence and RSS per phase.
#   latency   commit-to-visible latency at steady insert rates (default 100, 1 000 and
#             10 000 rows/s, S seconds each, transactions every 10 ms): each row carries a
#             marker (the client's clock at its transaction's start); `bench_loader latency`
#             polls MongoDB for the new _ids and records when each document is first seen.
#             p50/p95/p99/max per rate, and the rate the daemon actually applied (a rate above
#             what the MongoDB-wire server takes builds a backlog: the latency then grows over
#             the run and says how long the backlog took to drain).
#   big       one transaction of BIG rows (INSERT ... SELECT, default 1 000 000): time until
#             every document is there, peak RSS.
#   mixed     the daemon stopped, MIXED changes of bench_workload's default mix (60 % inserts,
#             30 % updates, 10 % deletes, transactions of 1-100 rows, 200-byte rows, 4 tables,
#             seed 42), then the daemon started from its checkpoint and timed until a sentinel
#             row written after them is there (rows/s); the daemon runs under `perf record`
#             from this start to its exit (self time per function into profile.txt);
#             `mysync verify` then compares every table.
# RSS (VmRSS of the daemon) is sampled every 200 ms throughout, with the phase, into rss.csv.
#
#   bench/latency.sh [--seconds S] [--rates "R1 R2 ..."] [--big N] [--mixed N] [--out DIR]
#                    [--flush-ms MS] [--no-perf]
# Defaults: S 10, rates "100 1000 10000", big 1000000, mixed 200000, out bench/results/latency,
# SYNC_FLUSH_MS 100 (the daemon's default). Writes DIR/results.csv (section,metric,value,unit),
# DIR/latency-*.csv, DIR/rss.csv, DIR/profile.txt and prints a summary.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
SECS=10 RATES="100 1000 10000" BIG=1000000 MIXED=200000 OUT="" FLUSH_MS=100 PERF=1
BUILD=${MS_BENCH_BUILD:-build-bench}
usage() {
  echo "usage: $0 [--seconds S] [--rates \"R1 R2 ...\"] [--big N] [--mixed N] [--out DIR]" \
       "[--flush-ms MS] [--no-perf]" >&2
  exit 64
}
while [ $# -gt 0 ]; do
  case "$1" in
    --seconds) SECS=${2:?}; shift 2 ;;
    --rates) RATES=${2:?}; shift 2 ;;
    --big) BIG=${2:?}; shift 2 ;;
    --mixed) MIXED=${2:?}; shift 2 ;;
    --out) OUT=${2:?}; shift 2 ;;
    --flush-ms) FLUSH_MS=${2:?}; shift 2 ;;
    --no-perf) PERF=0; shift ;;
    *) usage ;;
  esac
done
[[ $SECS =~ ^[1-9][0-9]*$ && $BIG =~ ^[0-9]+$ && $MIXED =~ ^[0-9]+$ && $FLUSH_MS =~ ^[1-9][0-9]*$ ]] || usage
for r in $RATES; do [[ $r =~ ^[1-9][0-9]*$ ]] || usage; done
cd "$ROOT"
[ -n "$OUT" ] || OUT=bench/results/latency
mkdir -p "$OUT"; OUT=$(cd "$OUT" && pwd)
(meson setup "$BUILD" -Dbuildtype=debugoptimized > /dev/null 2>&1 || true)
if ! out=$(ninja -C "$BUILD" mysync bench_loader bench_workload 2>&1); then echo "$out" >&2; exit 1; fi
MYSYNC=$ROOT/$BUILD/mysync LOADER=$ROOT/$BUILD/bench_loader WORKLOAD=$ROOT/$BUILD/bench_workload
if [ "$PERF" = 1 ] && ! perf record -q -o /dev/null true > /dev/null 2>&1; then
  echo "latency: perf cannot record here (perf_event_paranoid?); profiling skipped" >&2
  PERF=0
fi

. bench/lib.sh
DAEMON_PID="" SAMPLER_PID="" PERF_PID=""
BENCH_PIDS() { echo $PERF_PID $SAMPLER_PID $DAEMON_PID; }
bench_start latency
URI=$MS_RIG_MONGO_URI MDB=latbench
sql() { mariadb --no-defaults -h127.0.0.1 -P"$MS_RIG_MARIADB_PORT" -urig -prig-admin "$@"; }
wl() { "$WORKLOAD" --port "$MS_RIG_MARIADB_PORT" --user rig --password rig-admin --db bench "$@"; }
RESULTS=$OUT/results.csv
echo "section,metric,value,unit" > "$RESULTS"
res() { echo "$1,$2,$3,$4" >> "$RESULTS"; }
kv() { sed -n "s/.*\\b$1=\\([^ ]*\\).*/\\1/p" <<< "$2"; }
phase() { echo "$1" > "$WORK/phase"; echo "== $1" >&2; }

sql -e "SET GLOBAL max_binlog_size = 1073741824"
wl --create --prefix lat > /dev/null
wl --create --prefix big > /dev/null
wl --create --prefix m --tables 4 > /dev/null
TABLES=bench.lat1,bench.big1,bench.m1,bench.m2,bench.m3,bench.m4
"$LOADER" drop "$URI" "$MDB"

start_daemon() { # start_daemon LOG [PERF_DATA]: the daemon (under perf record if asked), up
  # once it logs that it replicates
  local wrap=()
  [ -z "${2:-}" ] || wrap=(perf record -q -g -F 999 -o "$2" --)
  env -i PATH="$PATH" HOME="$HOME" \
    MYSQL_HOST=127.0.0.1 MYSQL_PORT="$MS_RIG_MARIADB_PORT" MYSQL_USER="$MS_RIG_MYSYNC_USER" \
    MYSQL_PASSWORD="$MS_RIG_MYSYNC_PASSWORD" MYSQL_DATABASE=bench MONGODB_URI="$URI" \
    MONGODB_DATABASE="$MDB" SYNC_MODE=binlog SYNC_TABLES="$TABLES" SYNC_FLUSH_MS="$FLUSH_MS" \
    LOG_LEVEL=info HTTP_LISTEN=127.0.0.1:0 "${wrap[@]}" "$MYSYNC" 2>> "$1" &
  DAEMON_PID=$!
  if [ -n "${2:-}" ]; then # perf's child is the daemon
    PERF_PID=$DAEMON_PID DAEMON_PID=""
    for _ in $(seq 1 200); do
      DAEMON_PID=$(pgrep -P "$PERF_PID" -x mysync || true)
      [ -z "$DAEMON_PID" ] || break
      sleep 0.05
    done
    [ -n "$DAEMON_PID" ] || { echo "latency: perf did not start the daemon" >&2; exit 1; }
  fi
  for _ in $(seq 1 600); do
    grep -q "replicating into" "$1" && return 0
    kill -0 "$DAEMON_PID" 2> /dev/null || break
    sleep 0.05
  done
  echo "latency: the daemon did not start; its log:" >&2; tail -n 30 "$1" >&2; exit 1
}
RSS_T0=$(date +%s.%N)
start_sampler() { # VmRSS of the daemon every 200 ms: "seconds rss_kib phase" (seconds since
  # this script's start, across daemon restarts)
  local pid=$DAEMON_PID t0=$RSS_T0
  (
    while kill -0 "$pid" 2> /dev/null; do
      r=$(awk '/^VmRSS:/ {print $2}' "/proc/$pid/status" 2> /dev/null) || break
      echo "$(awk -v a="$(date +%s.%N)" -v b="$t0" 'BEGIN{printf "%.2f", a - b}') $r $(cat "$WORK/phase")"
      sleep 0.2
    done
  ) >> "$WORK/rss" &
  SAMPLER_PID=$!
}
stop_daemon() { # SIGTERM; it must exit 0
  local rc=0
  [ -z "$SAMPLER_PID" ] || { kill "$SAMPLER_PID" 2> /dev/null || true; wait "$SAMPLER_PID" 2> /dev/null || true; SAMPLER_PID=""; }
  kill -TERM "$DAEMON_PID"
  if [ -n "$PERF_PID" ]; then # the daemon is perf's child: perf exits with its status
    wait "$PERF_PID" || rc=$?
    PERF_PID=""
  else
    wait "$DAEMON_PID" || rc=$?
  fi
  DAEMON_PID=""
  if [ "$rc" != 0 ]; then
    echo "latency: the daemon exited $rc on SIGTERM; its log:" >&2; tail -n 30 "$WORK/daemon.log" >&2; exit 1
  fi
}

phase start
: > "$WORK/rss"
start_daemon "$WORK/daemon.log"
start_sampler
phase idle
sleep 3

# latency SECTION RATE SECONDS: the rows of one paced insert run into lat1, watched
run_rate() {
  local section=$1 rate=$2 secs=$3 first n txn out gen
  first=$(sql -N -e "SELECT COALESCE(MAX(id), 0) + 1 FROM bench.lat1")
  n=$((rate * secs)); txn=$((rate / 100)); [ "$txn" -ge 1 ] || txn=1
  "$LOADER" latency "$URI" "$MDB" lat1 "$first" "$n" $((secs * 20 + 120)) \
    "$OUT/latency-$section.csv" > "$WORK/lat.out" 2> "$WORK/lat.err" &
  local watcher=$!
  gen=$(wl --prefix lat --mix 1:0:0 --txn "$txn" --rate "$rate" --changes "$n" --seed "$rate")
  if ! wait "$watcher"; then cat "$WORK/lat.err" >&2; exit 1; fi
  out=$(cat "$WORK/lat.out")
  echo "   $section: offered $(kv rows_per_s "$gen") rows/s: $out" >&2
  LAST_GEN=$gen LAST_LAT=$out
}

# burst: steady, 10x, steady; latency over all three, RSS per phase
first=$(sql -N -e "SELECT COALESCE(MAX(id), 0) + 1 FROM bench.lat1")
nb=$((1000 * 2 * SECS + 10000 * (SECS / 2 > 0 ? SECS / 2 : 1) + 1000 * SECS))
"$LOADER" latency "$URI" "$MDB" lat1 "$first" "$nb" $((SECS * 40 + 300)) "$OUT/latency-burst.csv" \
  > "$WORK/lat.out" 2> "$WORK/lat.err" &
watcher=$!
phase steady; wl --prefix lat --mix 1:0:0 --txn 10 --rate 1000 --changes $((1000 * 2 * SECS)) --seed 1 > /dev/null
phase burst; wl --prefix lat --mix 1:0:0 --txn 100 --rate 10000 --changes $((10000 * (SECS / 2 > 0 ? SECS / 2 : 1))) --seed 2 > /dev/null
phase after; wl --prefix lat --mix 1:0:0 --txn 10 --rate 1000 --changes $((1000 * SECS)) --seed 3 > /dev/null
if ! wait "$watcher"; then cat "$WORK/lat.err" >&2; exit 1; fi
phase drained
sleep 2
LAST_LAT=$(cat "$WORK/lat.out")
echo "   burst sequence: $LAST_LAT" >&2
for m in p50_ms p95_ms p99_ms max_ms; do res latency-burst "$m" "$(kv $m "$LAST_LAT")" ms; done

for rate in $RATES; do
  phase "rate-$rate"
  run_rate "rate-$rate" "$rate" "$SECS"
  for m in p50_ms p95_ms p99_ms max_ms; do res "latency-$rate" "$m" "$(kv $m "$LAST_LAT")" ms; done
  res "latency-$rate" applied_rows_per_s "$(kv applied_per_s "$LAST_LAT")" rows/s
  res "latency-$rate" offered_rows_per_s "$(kv rows_per_s "$LAST_GEN")" rows/s
  res "latency-$rate" poll_ms "$(kv poll_ms "$LAST_LAT")" ms
done

# one transaction of BIG rows
if [ "$BIG" -gt 0 ]; then
  phase big
  t0=$(date +%s.%N)
  sql -D bench -e "INSERT INTO bench.big1 SELECT seq, seq % 100000, seq * 7, (seq % 100000) / 100,
    '2024-01-01' + INTERVAL seq SECOND, 0, CONCAT('name-', seq), REPEAT('x', 100)
    FROM seq_1_to_$BIG"
  t1=$(date +%s.%N)
  tv=$("$LOADER" wait "$URI" "$MDB" big1 "$BIG" $((BIG / 100 + 600)) 2> /dev/null)
  secs=$(awk -v a="$tv" -v b="$t0" 'BEGIN{printf "%.2f", a - b}')
  echo "   one transaction of $BIG rows: committed in $(awk -v a="$t1" -v b="$t0" 'BEGIN{printf "%.2f", a - b}') s, all documents after $secs s" >&2
  res big rows "$BIG" rows
  res big seconds_to_visible "$secs" s
  res big rows_per_s "$(awk -v n="$BIG" -v s="$secs" 'BEGIN{printf "%.0f", n / s}')" rows/s
  phase big-done
  sleep 2
fi

# mixed: changes made while the daemon is stopped, then caught up from the checkpoint
if [ "$MIXED" -gt 0 ]; then
  phase mixed-stop
  stop_daemon
  gen=$(wl --prefix m --tables 4 --changes "$MIXED" --mix 60:30:10 --txn 1-100 --width 200 --seed 42)
  sentinel=$(sql -N -e "SELECT COALESCE(MAX(id), 0) + 1 FROM bench.lat1")
  sql -e "INSERT INTO bench.lat1 (id, k, marker) VALUES ($sentinel, 0, 0)"
  echo "   generated: $gen" >&2
  t0=$(date +%s.%N)
  start_daemon "$WORK/daemon.log" "$([ "$PERF" = 1 ] && echo "$WORK/perf.data")"
  start_sampler
  phase mixed
  tv=$("$LOADER" wait "$URI" "$MDB" lat1 "$sentinel" $((MIXED / 100 + 600)) 2> /dev/null) || {
    echo "latency: the mixed workload did not arrive; daemon log:" >&2; tail -n 30 "$WORK/daemon.log" >&2; exit 1; }
  secs=$(awk -v a="$tv" -v b="$t0" 'BEGIN{printf "%.2f", a - b}')
  phase mixed-done
  echo "   mixed: $MIXED changes applied in $secs s (from the daemon's start)" >&2
  res mixed changes "$(kv changes "$gen")" rows
  res mixed seconds "$secs" s
  res mixed rows_per_s "$(awk -v n="$(kv changes "$gen")" -v s="$secs" 'BEGIN{printf "%.0f", n / s}')" rows/s
  vrc=0
  env -i PATH="$PATH" HOME="$HOME" MYSQL_HOST=127.0.0.1 MYSQL_PORT="$MS_RIG_MARIADB_PORT" \
    MYSQL_USER="$MS_RIG_MYSYNC_USER" MYSQL_PASSWORD="$MS_RIG_MYSYNC_PASSWORD" \
    MYSQL_DATABASE=bench MONGODB_URI="$URI" MONGODB_DATABASE="$MDB" SYNC_TABLES="$TABLES" \
    "$MYSYNC" verify --table bench.m1 --table bench.m2 --table bench.m3 --table bench.m4 \
    --table bench.lat1 --json > "$WORK/verify.json" 2> "$WORK/verify.err" || vrc=$?
  compared=$(grep -o '"compared" : [0-9]*' "$WORK/verify.json" | awk '{s += $3} END {print s + 0}')
  bad=$(grep -oE '"(missing|different|extra)" : [0-9]+' "$WORK/verify.json" | awk '{s += $3} END {print s + 0}')
  echo "   verify: exit $vrc, $compared rows compared, $bad missing/different/extra" >&2
  res mixed verify_exit "$vrc" code
  res mixed verify_compared "$compared" rows
  res mixed verify_mismatches "$bad" rows
fi
phase stop
stop_daemon
if [ -s "$WORK/perf.data" ]; then
  # self time per function over the daemon's whole catch-up run (start-up to exit)
  perf report -i "$WORK/perf.data" --stdio --no-children --sort dso,symbol --percent-limit 0.8 \
    2> /dev/null | grep -E '^ +[0-9.]+%' | sed 's/ *- *- *$//' | head -n 30 > "$OUT/profile.txt" || true
fi

# RSS per phase: median and peak
cp "$WORK/rss" "$OUT/rss.csv.tmp"
{ echo "seconds,rss_kib,phase"; tr ' ' ',' < "$OUT/rss.csv.tmp"; } > "$OUT/rss.csv"
rm -f "$OUT/rss.csv.tmp"
for p in idle steady burst after big mixed; do
  read -r med peak < <(awk -v p="$p" '$3 == p {print $2}' "$WORK/rss" | sort -n |
    awk '{v[++n] = $1} END {
      if (n == 0) { print "- -"; exit }
      printf "%.1f %.1f\n", v[int((n + 1) / 2)] / 1024, v[n] / 1024 }')
  [ "$med" = - ] && continue
  res "rss-$p" median "$med" MiB
  res "rss-$p" peak "$peak" MiB
done
res rss-all peak "$(awk '$2 > h {h = $2} END {printf "%.1f", h / 1024}' "$WORK/rss")" MiB
cp "$WORK/daemon.log" "$OUT/daemon.log"
echo "== results: $RESULTS" >&2
column -s, -t < "$RESULTS"

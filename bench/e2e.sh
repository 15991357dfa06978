#!/usr/bin/env bash
# End-to-end throughput: the daemon (binlog -> decode -> map -> MongoDB bulk writes ->
# checkpoint) against a bare libmongoc loader writing the same documents, per MongoDB-wire
# target of the rig (mongo-java-server, FerretDB v1).
#
# Workload: N inserts (default 200 000) into bench.items on the rig's MariaDB, in transactions
# of 1000 rows, 10 columns (BIGINT PK, INT, INT UNSIGNED, BIGINT, VARCHAR, DECIMAL(12,2),
# SMALLINT, DATETIME(3), TEXT, TINYINT). Per target and run:
#   mysync   a fresh database holding a checkpoint at the position before the inserts; the
#            daemon is started and timed until `items` holds N documents (polled by
#            `bench_loader wait`), then stopped with SIGTERM (it must exit 0). The time includes
#            its start-up and reading + decoding the binlog.
#   insert   `bench_loader load ... insert`: the documents the daemon wrote (exported after
#            the first run) as unordered insert bulks of the same batch size; writes only
#            (timed by the loader; the same poller runs meanwhile, as its load is not free).
#   upsert   the same as unordered replaceOne({_id}, doc, {upsert: true}) bulks, as the
#            daemon's sink sends them; writes only.
# Prints a table per target with the best of R runs, rows/s, the client's and the server's
# CPU seconds, and the ratios mysync / loader (target: >= 0.90 of the bare loader).
#   bench/e2e.sh [--rows N] [--runs R] [--target mongo|ferret|both] [--batch B]
#                [--log-level L] [--keep DIR [--perf]] [--timeout S] [--force]
# Defaults: 200 000 rows, 3 runs, target mongo, batch 1000 (SYNC_BATCH_SIZE), LOG_LEVEL info.
# --keep DIR keeps the daemon's logs (daemon-TARGET-RUN.log) and the exported documents
# (TARGET.bson, concatenated BSON, for `bench_loader load`); --perf also records the daemon of
# each target's first run with `perf record -g` (DIR/perf-TARGET.data, for `perf report -i`).
# --timeout: seconds the daemon gets to deliver every row (default 600 + N/100).
# FerretDB v1 (SQLite) scans the whole collection for each update by a numeric _id, so its
# upserts are quadratic: ferret is refused above 5000 rows unless --force.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
ROWS=200000 RUNS=3 TARGET=mongo BATCH=1000 TXN=1000 LOG_LEVEL_D=info KEEP="" PERF=0 TIMEOUT="" FORCE=0
BUILD=${MS_BENCH_BUILD:-build-bench}
usage() {
  echo "usage: $0 [--rows N] [--runs R] [--target mongo|ferret|both] [--batch B]" \
       "[--log-level L] [--keep DIR [--perf]] [--timeout S] [--force]" >&2
  exit 64
}
while [ $# -gt 0 ]; do
  case "$1" in
    --rows) ROWS=${2:?}; shift 2 ;;
    --runs) RUNS=${2:?}; shift 2 ;;
    --target) TARGET=${2:?}; shift 2 ;;
    --batch) BATCH=${2:?}; shift 2 ;;
    --log-level) LOG_LEVEL_D=${2:?}; shift 2 ;;
    --keep) KEEP=${2:?}; shift 2 ;;
    --perf) PERF=1; shift ;;
    --timeout) TIMEOUT=${2:?}; shift 2 ;;
    --force) FORCE=1; shift ;;
    *) usage ;;
  esac
done
[[ $ROWS =~ ^[1-9][0-9]*$ && $RUNS =~ ^[1-9][0-9]*$ && $BATCH =~ ^[1-9][0-9]*$ ]] || usage
[ -n "$TIMEOUT" ] || TIMEOUT=$((ROWS / 100 + 600))
[[ $TIMEOUT =~ ^[1-9][0-9]*$ ]] || usage
if [ "$TARGET" != mongo ] && [ "$ROWS" -gt 5000 ] && [ "$FORCE" = 0 ]; then
  echo "e2e: FerretDB v1 (SQLite) reads the whole collection for every replaceOne/update/delete" \
       "whose _id is a number (its _id pushdown covers strings and ObjectIds only), so upserts" \
       "of $ROWS rows take hours; use --rows <= 5000 for ferret (or --force)" >&2
  exit 64
fi
case "$TARGET" in
  mongo) TARGETS=(mongo) ;;
  ferret) TARGETS=(ferret) ;;
  both) TARGETS=(mongo ferret) ;;
  *) usage ;;
esac
cd "$ROOT"
(meson setup "$BUILD" > /dev/null 2>&1 || true)
if ! out=$(ninja -C "$BUILD" mysync bench_loader 2>&1); then echo "$out" >&2; exit 1; fi
MYSYNC=$ROOT/$BUILD/mysync LOADER=$ROOT/$BUILD/bench_loader
[ "$PERF" = 0 ] || [ -n "$KEEP" ] || usage
[ "$PERF" = 0 ] || command -v perf > /dev/null || { echo "e2e: --perf needs perf" >&2; exit 69; }
if [ -n "$KEEP" ]; then mkdir -p "$KEEP"; KEEP=$(cd "$KEEP" && pwd); fi

. bench/lib.sh
DAEMON_PID="" PERF_PID="" POLL_PID=""
BENCH_PIDS() { echo $PERF_PID $DAEMON_PID $POLL_PID; }
bench_start e2e mariadb "${TARGETS[@]}"
sql() { mariadb --no-defaults -h127.0.0.1 -P"$MS_RIG_MARIADB_PORT" -urig -prig-admin "$@"; }
uri_of() { if [ "$1" = mongo ]; then echo "$MS_RIG_MONGO_URI"; else echo "$MS_RIG_FERRET_URI"; fi; }
pid_of() { cat "$RIG/$1/pid"; }
sub() { awk -v a="$1" -v b="$2" 'BEGIN{printf "%.2f", a - b}'; }

echo "== generating $ROWS inserts into bench.items in transactions of $TXN rows" >&2
sql -e "SET GLOBAL max_binlog_size = 1073741824"
sql -e "FLUSH BINARY LOGS"
sql <<'SQL'
CREATE DATABASE bench;
CREATE TABLE bench.items (id BIGINT PRIMARY KEY, a INT, b INT UNSIGNED, c BIGINT,
  name VARCHAR(64), price DECIMAL(12,2), qty SMALLINT, created DATETIME(3), note TEXT,
  flag TINYINT);
SQL
read -r BINLOG_FILE BINLOG_POS _ < <(sql -N -e "SHOW MASTER STATUS")
{
  echo "USE bench;"
  for ((lo = 1; lo <= ROWS; lo += TXN)); do
    hi=$((lo + TXN - 1)); [ "$hi" -le "$ROWS" ] || hi=$ROWS
    echo "INSERT INTO items SELECT seq, seq % 1000, seq * 7, seq * 1000003, CONCAT('name-', seq),
      (seq % 100000) / 100, seq % 300,
      '2024-01-01 00:00:00' + INTERVAL seq SECOND + INTERVAL (seq % 1000) * 1000 MICROSECOND,
      REPEAT('x', 20 + seq % 40), seq % 2 FROM seq_${lo}_to_${hi};"
  done
} | sql
read -r END_FILE END_POS _ < <(sql -N -e "SHOW MASTER STATUS")
[ "$END_FILE" = "$BINLOG_FILE" ] || { echo "e2e: the binlog rotated during the load" >&2; exit 70; }
echo "== binlog $BINLOG_FILE:$BINLOG_POS..$END_POS ($(( (END_POS - BINLOG_POS) / 1048576 )) MiB)" >&2

# run_mysync TARGET DB RUN: appends "seconds daemon_cpu server_cpu mariadb_cpu peak_rss_kib"
# to $WORK/TARGET.mysync. Runs in this shell (not in $(...)), so the EXIT trap knows the daemon.
run_mysync() {
  local t=$1 db=$2 run=$3 uri t0 t1 cpu scpu0 scpu mcpu0 mcpu hwm n rc=0 decimal=decimal128
  uri=$(uri_of "$t")
  if [ "$t" = ferret ]; then decimal=string; fi
  "$LOADER" drop "$uri" "$db"
  "$LOADER" checkpoint "$uri" "$db" "$BINLOG_FILE" "$BINLOG_POS"
  scpu0=$(cpu_of "$(pid_of "$t")"); mcpu0=$(cpu_of "$(pid_of mariadb)")
  t0=$(date +%s.%N)
  env -i PATH="$PATH" HOME="$HOME" \
    MYSQL_HOST=127.0.0.1 MYSQL_PORT="$MS_RIG_MARIADB_PORT" MYSQL_USER="$MS_RIG_MYSYNC_USER" \
    MYSQL_PASSWORD="$MS_RIG_MYSYNC_PASSWORD" MYSQL_DATABASE=bench MONGODB_URI="$uri" \
    MONGODB_DATABASE="$db" SYNC_MODE=binlog SYNC_TABLES=bench.items SYNC_BATCH_SIZE="$BATCH" \
    SYNC_DECIMAL_AS="$decimal" LOG_LEVEL="$LOG_LEVEL_D" HTTP_LISTEN=127.0.0.1:0 \
    "$MYSYNC" 2> "$WORK/daemon-$t-$run.log" &
  DAEMON_PID=$!
  if [ "$PERF" = 1 ] && [ "$run" = 1 ]; then
    # `perf record -p` follows only the threads that exist when it attaches: wait for the
    # pipeline's reader and sink threads (a few ms after the start)
    for _ in $(seq 1 100); do
      grep -q "replicating into" "$WORK/daemon-$t-$run.log" && break
      sleep 0.01
    done
    perf record -q -g -F 499 -o "$KEEP/perf-$t.data" -p "$DAEMON_PID" > /dev/null 2>&1 &
    PERF_PID=$!
  fi
  if ! t1=$("$LOADER" wait "$uri" "$db" items "$ROWS" "$TIMEOUT" 2> "$WORK/wait.err"); then
    cat "$WORK/wait.err" >&2
    echo "e2e: the daemon did not deliver $ROWS documents; its log:" >&2
    tail -n 30 "$WORK/daemon-$t-$run.log" >&2
    [ -z "$KEEP" ] || cp "$WORK/daemon-$t-$run.log" "$KEEP/"
    exit 1
  fi
  hwm=$(awk '/^VmHWM:/ {print $2}' "/proc/$DAEMON_PID/status")
  cpu=$(cpu_of "$DAEMON_PID")
  scpu=$(sub "$(cpu_of "$(pid_of "$t")")" "$scpu0"); mcpu=$(sub "$(cpu_of "$(pid_of mariadb)")" "$mcpu0")
  if [ -n "$PERF_PID" ]; then
    kill -INT "$PERF_PID" 2> /dev/null || true
    wait "$PERF_PID" 2> /dev/null || true
    PERF_PID=""
  fi
  kill -TERM "$DAEMON_PID"
  wait "$DAEMON_PID" || rc=$?
  DAEMON_PID=""
  [ -z "$KEEP" ] || cp "$WORK/daemon-$t-$run.log" "$KEEP/"
  if [ "$rc" != 0 ]; then
    echo "e2e: the daemon exited $rc on SIGTERM; its log:" >&2
    tail -n 30 "$WORK/daemon-$t-$run.log" >&2
    exit 1
  fi
  n=$("$LOADER" count "$uri" "$db" items)
  [ "$n" = "$ROWS" ] || { echo "e2e: $db.items holds $n documents, not $ROWS" >&2; exit 1; }
  RESULT="$(sub "$t1" "$t0") $cpu $scpu $mcpu $hwm"
  sed 's/^bench_loader: wait: /   (poll: /; s/$/)/' "$WORK/wait.err" >&2
  echo "$RESULT" >> "$WORK/$t.mysync"
}

# run_loader TARGET DB insert|upsert: appends "seconds loader_cpu server_cpu" to $WORK/TARGET.HOW
run_loader() {
  local t=$1 db=$2 how=$3 uri scpu0 out n secs cpu
  uri=$(uri_of "$t")
  "$LOADER" drop "$uri" "$db"
  scpu0=$(cpu_of "$(pid_of "$t")")
  # the same poller as in the daemon's runs, so that both bear its load on the server
  "$LOADER" wait "$uri" "$db" items "$ROWS" "$TIMEOUT" > /dev/null 2> "$WORK/wait.err" &
  POLL_PID=$!
  out=$("$LOADER" load "$uri" "$db" items "$WORK/$t.bson" "$BATCH" "$how")
  if ! wait "$POLL_PID"; then cat "$WORK/wait.err" >&2; exit 1; fi
  POLL_PID=""
  sed 's/^bench_loader: wait: /   (poll: /; s/$/)/' "$WORK/wait.err" >&2
  read -r n secs cpu <<< "$out"
  [ "$n" = "$ROWS" ] || { echo "e2e: the export holds $n documents, not $ROWS" >&2; exit 1; }
  RESULT="$secs $cpu $(sub "$(cpu_of "$(pid_of "$t")")" "$scpu0")"
  echo "$RESULT" >> "$WORK/$t.$how"
  "$LOADER" drop "$uri" "$db"
}

for t in "${TARGETS[@]}"; do
  uri=$(uri_of "$t")
  : > "$WORK/$t.mysync"; : > "$WORK/$t.insert"; : > "$WORK/$t.upsert"
  for run in $(seq 1 "$RUNS"); do
    db="e2e_${t}_$run"
    run_mysync "$t" "$db" "$run"
    echo "   $t run $run: mysync $RESULT (s, daemon CPU s, server CPU s, MariaDB CPU s, VmHWM KiB)" >&2
    if [ "$run" = 1 ]; then
      "$LOADER" export "$uri" "$db" items "$WORK/$t.bson" > /dev/null
      [ -z "$KEEP" ] || cp "$WORK/$t.bson" "$KEEP/"
    fi
    "$LOADER" drop "$uri" "$db"
    for how in insert upsert; do
      run_loader "$t" "e2e_${t}_${how}_$run" "$how"
      echo "   $t run $run: $how $RESULT (s, loader CPU s, server CPU s)" >&2
    done
  done
done

for t in "${TARGETS[@]}"; do
  name=$([ "$t" = mongo ] && echo "mongo-java-server" || echo "FerretDB v1 (SQLite)")
  m=$(sort -g "$WORK/$t.mysync" | head -n1)
  i=$(sort -g "$WORK/$t.insert" | head -n1)
  u=$(sort -g "$WORK/$t.upsert" | head -n1)
  med() { sort -g "$1" | awk '{v[NR] = $1} END {print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2}'; }
  mm=$(med "$WORK/$t.mysync"); mi=$(med "$WORK/$t.insert"); mu=$(med "$WORK/$t.upsert")
  hwm=$(awk '$5 > h {h = $5} END {print h}' "$WORK/$t.mysync")
  printf '\n%s: %d rows (%d-row transactions), batch %d, best of %d (%s)\n' \
    "$name" "$ROWS" "$TXN" "$BATCH" "$RUNS" "$(date -u +%Y-%m-%d)"
  printf '%-48s %9s %10s %9s %12s %12s\n' "method" "best s" "rows/s" "median s" "client CPU s" \
    "server CPU s"
  awk -v n="$ROWS" -v m="$m" -v i="$i" -v u="$u" -v mm="$mm" -v mi="$mi" -v mu="$mu" 'BEGIN {
    split(m, a, " "); split(i, b, " "); split(u, c, " ")
    f = "%-48s %9.2f %10.0f %9.2f %12.2f %12.2f\n"
    printf f, "mysync end-to-end (binlog -> documents)", a[1], n / a[1], mm, a[2], a[3]
    printf f, "bench_loader insert (unordered bulk)", b[1], n / b[1], mi, b[2], b[3]
    printf f, "bench_loader replaceOne upsert (unordered bulk)", c[1], n / c[1], mu, c[2], c[3]
    printf "%-48s %9.3g   (median %.3g; target >= 0.90)\n", "ratio mysync / loader upsert (rows/s)", c[1] / a[1], mu / mm
    printf "%-48s %9.3g   (median %.3g)\n", "ratio mysync / loader insert (rows/s)", b[1] / a[1], mi / mm
    printf "%-48s %9.2f\n", "MariaDB CPU s during the best mysync run", a[4]
  }'
  printf '%-48s %9.1f MiB\n' "daemon peak RSS (VmHWM, max over runs)" "$(awk -v h="$hwm" 'BEGIN{print h / 1024}')"
done

#!/usr/bin/env bash
# Backfill throughput: `mysync --full --table bench.items` (keyset chunks read from MariaDB,
# mapped, bulk-written, progress saved per chunk) against the bare libmongoc loader writing the
# same documents, on mongo-java-server (the rig's).
#
# Per run: a fresh target database; mysync --full is timed from its start to its exit (start-up,
# reading, mapping, writing and the progress saves included); then `bench_loader load` writes
# the documents mysync wrote (exported after the first run) as unordered bulks of the same
# size, as inserts and as replaceOne upserts (what the backfill sends: a resumed or repeated
# backfill must be idempotent). Prints the best of R runs, rows/s and the ratios
# mysync / loader (target: >= 0.90 of the bare loader).
#   bench/backfill.sh [--rows N] [--runs R] [--chunk C] [--batch B]
# Defaults: 200 000 rows, 3 runs, chunk 5000 (SYNC_SNAPSHOT_CHUNK_SIZE), batch 1000.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
ROWS=200000 RUNS=3 CHUNK=5000 BATCH=1000
BUILD=${MS_BENCH_BUILD:-build-bench}
usage() { echo "usage: $0 [--rows N] [--runs R] [--chunk C] [--batch B]" >&2; exit 64; }
while [ $# -gt 0 ]; do
  case "$1" in
    --rows) ROWS=${2:?}; shift 2 ;;
    --runs) RUNS=${2:?}; shift 2 ;;
    --chunk) CHUNK=${2:?}; shift 2 ;;
    --batch) BATCH=${2:?}; shift 2 ;;
    *) usage ;;
  esac
done
[[ $ROWS =~ ^[1-9][0-9]*$ && $RUNS =~ ^[1-9][0-9]*$ && $CHUNK =~ ^[1-9][0-9]*$ &&
   $BATCH =~ ^[1-9][0-9]*$ ]] || usage
cd "$ROOT"
(meson setup "$BUILD" > /dev/null 2>&1 || true)
if ! out=$(ninja -C "$BUILD" mysync bench_loader 2>&1); then echo "$out" >&2; exit 1; fi
MYSYNC=$ROOT/$BUILD/mysync LOADER=$ROOT/$BUILD/bench_loader

. bench/lib.sh
bench_start backfill
sql() { mariadb --no-defaults -h127.0.0.1 -P"$MS_RIG_MARIADB_PORT" -urig -prig-admin "$@"; }
URI=$MS_RIG_MONGO_URI

echo "== $ROWS rows into bench.items" >&2
sql <<SQL
SET SESSION sql_log_bin = 0;
CREATE DATABASE bench;
CREATE TABLE bench.items (id BIGINT PRIMARY KEY, a INT, b INT UNSIGNED, c BIGINT,
  name VARCHAR(64), price DECIMAL(12,2), qty SMALLINT, created DATETIME(3), note TEXT,
  flag TINYINT);
INSERT INTO bench.items SELECT seq, seq % 1000, seq * 7, seq * 1000003, CONCAT('name-', seq),
  (seq % 100000) / 100, seq % 300,
  '2024-01-01 00:00:00' + INTERVAL seq SECOND + INTERVAL (seq % 1000) * 1000 MICROSECOND,
  REPEAT('x', 20 + seq % 40), seq % 2 FROM bench.seq_1_to_$ROWS;
ANALYZE TABLE bench.items;
SQL

best() { sort -n "$1" | head -1; }
rate() { awk -v n="$ROWS" -v s="$1" 'BEGIN{printf "%.0f", n / s}'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN{printf "%.2f", b / a}'; }

for run in $(seq 1 "$RUNS"); do
  db=bench_bf_$run
  "$LOADER" drop "$URI" "$db"
  t0=$(date +%s.%N)
  env -i PATH="$PATH" HOME="$HOME" \
    MYSQL_HOST=127.0.0.1 MYSQL_PORT="$MS_RIG_MARIADB_PORT" MYSQL_USER="$MS_RIG_MYSYNC_USER" \
    MYSQL_PASSWORD="$MS_RIG_MYSYNC_PASSWORD" MYSQL_DATABASE=bench MONGODB_URI="$URI" \
    MONGODB_DATABASE="$db" SYNC_BATCH_SIZE="$BATCH" SYNC_SNAPSHOT_CHUNK_SIZE="$CHUNK" \
    LOG_LEVEL=warn "$MYSYNC" --full --table bench.items > "$WORK/full-$run.out" 2> "$WORK/full-$run.log" ||
    { echo "backfill: mysync --full failed:" >&2; tail -n 20 "$WORK/full-$run.log" >&2; exit 1; }
  t1=$(date +%s.%N)
  n=$("$LOADER" count "$URI" "$db" items)
  [ "$n" = "$ROWS" ] || { echo "backfill: $db.items holds $n documents, not $ROWS" >&2; exit 1; }
  awk -v a="$t0" -v b="$t1" 'BEGIN{printf "%.3f\n", b - a}' >> "$WORK/mysync"
  echo "   run $run: mysync --full $(tail -1 "$WORK/mysync") s ($(cat "$WORK/full-$run.out"))" >&2
  if [ "$run" = 1 ]; then "$LOADER" export "$URI" "$db" items "$WORK/docs.bson"; fi
  "$LOADER" drop "$URI" "$db"
  for how in insert upsert; do
    "$LOADER" drop "$URI" "${db}_$how"
    read -r _ secs _ < <("$LOADER" load "$URI" "${db}_$how" items "$WORK/docs.bson" "$BATCH" "$how")
    echo "$secs" >> "$WORK/$how"
    "$LOADER" drop "$URI" "${db}_$how"
  done
done
M=$(best "$WORK/mysync") I=$(best "$WORK/insert") U=$(best "$WORK/upsert")
printf '\nbackfill of %d rows (chunk %d, batch %d), mongo-java-server, best of %d runs\n' \
  "$ROWS" "$CHUNK" "$BATCH" "$RUNS"
printf '%-28s %10s %12s\n' "writer" "seconds" "rows/s"
printf '%-28s %10s %12s\n' "mysync --full" "$M" "$(rate "$M")"
printf '%-28s %10s %12s\n' "bare loader, upserts" "$U" "$(rate "$U")"
printf '%-28s %10s %12s\n' "bare loader, inserts" "$I" "$(rate "$I")"
printf 'ratio mysync / loader upserts: %s   mysync / loader inserts: %s   (target >= 0.90)\n' \
  "$(ratio "$M" "$U")" "$(ratio "$M" "$I")"

#!/usr/bin/env bash
# The benchmark harness: one command that measures what users care about on this machine and
# prints ratios (absolute times are noisy on shared machines; ratios much less).
#
#   bench/run.sh [--quick] [--out DIR] [--only decode,e2e,backfill,latency] [--seed S]
#
# Runs, each on its own rig (MariaDB with binlog + mongo-java-server, on loopback ports):
#   decode    bench/decode.sh: `mysync binlog-dump --file` against `mariadb-binlog --verbose
#             --base64-output=decode-rows` on one binlog of bench_workload changes (4 tables,
#             60/30/10 insert/update/delete, transactions of 1-1000 rows, 200-byte rows), and
#             the in-process decode figure of bench_decode.
#   e2e       bench/e2e.sh: binlog -> documents with the daemon against the bare libmongoc
#             loader writing the same documents (the sink's limit), rows/s and ratio.
#   backfill  bench/backfill.sh: `mysync --full` against the same loader.
#   latency   bench/latency.sh: commit-to-visible p50/p95/p99 at 100, 1 000 and 10 000 rows/s,
#             a 10x burst, a 1 M-row transaction, a mixed workload caught up from the checkpoint
#             (then `mysync verify`), RSS sampled throughout, a perf profile of the hot path.
# Full size by default (1 M decoded changes, 200 k rows end to end and backfilled, 10 s per
# rate, a 1 M-row transaction, 200 k mixed changes: about 25 minutes); --quick is about a tenth
# (about 6 minutes).
#
# Output in DIR (default bench/results/latest): results.csv (section,metric,value,unit), each
# part's log (decode.txt, e2e.txt, backfill.txt, latency/), profile.txt, bench.png (throughput,
# latency per rate, RSS over time; gnuplot, installed from Debian if missing), and a table with
# the targets on stdout.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
QUICK=0 OUT="" ONLY="decode,e2e,backfill,latency" SEED=42
usage() { echo "usage: $0 [--quick] [--out DIR] [--only decode,e2e,backfill,latency] [--seed S]" >&2; exit 64; }
while [ $# -gt 0 ]; do
  case "$1" in
    --quick) QUICK=1; shift ;;
    --out) OUT=${2:?}; shift 2 ;;
    --only) ONLY=${2:?}; shift 2 ;;
    --seed) SEED=${2:?}; shift 2 ;;
    -h|--help) sed -n '2,26p' "$0"; exit 0 ;;
    *) usage ;;
  esac
done
[[ $SEED =~ ^[0-9]+$ ]] || usage
cd "$ROOT"
. tests/support/deps.sh
ms_install_deps
need=()
command -v gnuplot > /dev/null || need+=(gnuplot-nox)   # bench.png
[ -x /usr/bin/time ] || need+=(time)                    # decode.sh: CPU seconds
command -v perf > /dev/null || need+=(linux-perf)       # latency.sh: the profile
if [ ${#need[@]} -gt 0 ]; then
  echo "bench: installing ${need[*]}" >&2
  sudo=(); [ "$(id -u)" = 0 ] || sudo=(sudo)
  "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    "${need[@]}" > /dev/null 2>&1 || echo "bench: could not install ${need[*]}" >&2
fi
bash tests/support/rig.sh prepare > /dev/null
[ -n "$OUT" ] || OUT=bench/results/latest
mkdir -p "$OUT"; OUT=$(cd "$OUT" && pwd)
export MS_BENCH_BUILD=${MS_BENCH_BUILD:-build-bench}
[ -f "$MS_BENCH_BUILD/build.ninja" ] || meson setup "$MS_BENCH_BUILD" -Dbuildtype=debugoptimized > /dev/null
ninja -C "$MS_BENCH_BUILD" > /dev/null

if [ "$QUICK" = 1 ]; then
  DEC=(--rows 200000 --runs 2) E2E=(--rows 20000 --runs 1) BF=(--rows 20000 --runs 1)
  LAT=(--seconds 5 --big 100000 --mixed 20000)
else
  DEC=(--rows 1000000 --runs 3) E2E=(--rows 200000 --runs 2) BF=(--rows 200000 --runs 2)
  LAT=(--seconds 10 --big 1000000 --mixed 200000)
fi
RESULTS=$OUT/results.csv
echo "section,metric,value,unit" > "$RESULTS"
res() { echo "$1,$2,$3,$4" >> "$RESULTS"; }
want() { [[ ",$ONLY," == *",$1,"* ]]; }
started=$(date +%s)

if want decode; then
  echo "== decode (bench/decode.sh ${DEC[*]})" >&2
  bash bench/decode.sh "${DEC[@]}" --build "$MS_BENCH_BUILD" \
    --workload "--tables 4 --mix 60:30:10 --txn 1-1000 --width 200 --seed $SEED" 2>&1 | tee "$OUT/decode.txt" >&2
  # the same on decode.sh's fixed narrow rows (10 columns, ~120 bytes; the figures of earlier
  # bench/README.md entries)
  echo "== decode, narrow rows (bench/decode.sh ${DEC[*]})" >&2
  bash bench/decode.sh "${DEC[@]}" --build "$MS_BENCH_BUILD" 2>&1 | tee "$OUT/decode-narrow.txt" >&2
  for s in decode decode-narrow; do
    awk -v s="$s" '/^mysync binlog-dump/ {print s ",mysync_rows_per_s," $(NF-1) ",rows/s"; print s ",mysync_ns_per_row," $NF ",ns"}
       /^mariadb-binlog/ {print s ",mariadb_binlog_rows_per_s," $(NF-1) ",rows/s"}
       /^bench_decode/ {print s ",in_process_rows_per_s," $(NF-1) ",rows/s"; print s ",in_process_ns_per_row," $NF ",ns"}
       /^ratio mysync \/ mariadb-binlog/ {v = $0; sub(/.*\) +/, "", v); sub(/x.*/, "", v); print s ",ratio_vs_mariadb_binlog," v ",x"}' \
      "$OUT/$s.txt" >> "$RESULTS"
  done
fi
if want e2e; then
  echo "== end to end (bench/e2e.sh ${E2E[*]})" >&2
  bash bench/e2e.sh "${E2E[@]}" 2>&1 | tee "$OUT/e2e.txt" >&2
  awk '/^mysync end-to-end/ {print "e2e,mysync_rows_per_s," $(NF-3) ",rows/s"}
       /^bench_loader insert/ {print "e2e,loader_insert_rows_per_s," $(NF-3) ",rows/s"}
       /^bench_loader replaceOne upsert/ {print "e2e,loader_upsert_rows_per_s," $(NF-3) ",rows/s"}
       /^ratio mysync \/ loader upsert/ {for (i = 1; i <= NF; i++) if ($i ~ /^[0-9.]+$/) {print "e2e,ratio_vs_loader_upsert," $i ",x"; break}}
       /^ratio mysync \/ loader insert/ {for (i = 1; i <= NF; i++) if ($i ~ /^[0-9.]+$/) {print "e2e,ratio_vs_loader_insert," $i ",x"; break}}
       /^daemon peak RSS/ {print "e2e,daemon_peak_rss," $(NF-1) ",MiB"}' "$OUT/e2e.txt" >> "$RESULTS"
fi
if want backfill; then
  echo "== backfill (bench/backfill.sh ${BF[*]})" >&2
  bash bench/backfill.sh "${BF[@]}" 2>&1 | tee "$OUT/backfill.txt" >&2
  awk '/^mysync --full/ {print "backfill,mysync_rows_per_s," $NF ",rows/s"}
       /^bare loader, upserts/ {print "backfill,loader_upsert_rows_per_s," $NF ",rows/s"}
       /^bare loader, inserts/ {print "backfill,loader_insert_rows_per_s," $NF ",rows/s"}
       /^ratio mysync \/ loader upserts:/ {print "backfill,ratio_vs_loader_upsert," $6 ",x"; print "backfill,ratio_vs_loader_insert," $11 ",x"}' \
    "$OUT/backfill.txt" >> "$RESULTS"
fi
if want latency; then
  echo "== latency, memory, mixed workload, profile (bench/latency.sh ${LAT[*]})" >&2
  bash bench/latency.sh "${LAT[@]}" --out "$OUT/latency" 2>&1 | tee "$OUT/latency.txt" >&2
  tail -n +2 "$OUT/latency/results.csv" >> "$RESULTS"
  cp "$OUT/latency/profile.txt" "$OUT/profile.txt" 2> /dev/null || true
fi

# --- the table, with the targets -----------------------------------------------------------
val() { awk -F, -v s="$1" -v m="$2" '$1 == s && $2 == m {v = $3} END {print v}' "$RESULTS"; }
check() { # check LABEL VALUE OP LIMIT
  local v=$2
  if [ -z "$v" ]; then printf '%-52s %12s   %s\n' "$1" "-" "(not run)"; return; fi
  if awk -v v="$v" -v l="$4" -v op="$3" 'BEGIN{exit !((op == ">=" && v >= l) || (op == "<=" && v <= l))}'; then
    printf '%-52s %12s   target %s %s: met\n' "$1" "$v" "$3" "$4"
  else
    printf '%-52s %12s   target %s %s: NOT MET\n' "$1" "$v" "$3" "$4"
  fi
}
{
  echo
  echo "mysync benchmarks, $(date -u +%Y-%m-%dT%H:%MZ), $(nproc) cores, $( [ "$QUICK" = 1 ] && echo quick || echo full) size, $(( $(date +%s) - started )) s"
  echo
  column -s, -t < "$RESULTS"
  echo
  echo "targets"
  check "decode: binlog-dump / mariadb-binlog (x), workload" "$(val decode ratio_vs_mariadb_binlog)" ">=" 5
  check "decode: binlog-dump / mariadb-binlog (x), narrow rows" "$(val decode-narrow ratio_vs_mariadb_binlog)" ">=" 5
  check "end to end: mysync / bare loader upsert (x)" "$(val e2e ratio_vs_loader_upsert)" ">=" 0.9
  check "backfill: mysync --full / bare loader upsert (x)" "$(val backfill ratio_vs_loader_upsert)" ">=" 0.9
  check "steady RSS at 1 000 rows/s (MiB, median)" "$(val rss-steady median)" "<=" 50
  check "peak RSS, 10x burst (MiB)" "$(val rss-burst peak)" "<=" 100
  check "peak RSS, 1 M-row transaction (MiB)" "$(val rss-big peak)" "<=" 100
  check "mixed workload: rows differing after verify" "$(val mixed verify_mismatches)" "<=" 0
  if [ -s "$OUT/profile.txt" ]; then
    echo
    echo "hot path (perf, the daemon catching up the mixed workload; self time)"
    head -n 12 "$OUT/profile.txt"
  fi
} | tee "$OUT/summary.txt"

# --- the plot ------------------------------------------------------------------------------
if command -v gnuplot > /dev/null; then
  tp=$OUT/throughput.dat lp=$OUT/latency.dat
  : > "$tp"
  for row in "e2e mysync_rows_per_s e2e:mysync" "e2e loader_upsert_rows_per_s e2e:loader-upsert" \
             "e2e loader_insert_rows_per_s e2e:loader-insert" "backfill mysync_rows_per_s backfill:mysync" \
             "backfill loader_upsert_rows_per_s backfill:loader-upsert" "mixed rows_per_s mixed:mysync" \
             "big rows_per_s 1M-txn:mysync"; do
    set -- $row
    v=$(val "$1" "$2"); [ -z "$v" ] || echo "\"$3\" $v" >> "$tp"
  done
  : > "$lp"
  for s in $(awk -F, '$1 ~ /^latency-/ && $2 == "p50_ms" {print $1}' "$RESULTS"); do
    echo "\"${s#latency-}\" $(val "$s" p50_ms) $(val "$s" p95_ms) $(val "$s" p99_ms)" >> "$lp"
  done
  rss=$OUT/latency/rss.csv
  gnuplot <<GP 2> "$OUT/gnuplot.err" || echo "bench: gnuplot failed (see $OUT/gnuplot.err)" >&2
set terminal pngcairo size 1500,450 noenhanced font ",9"
set output "$OUT/bench.png"
set multiplot layout 1,3 title "mysync, $(date -u +%Y-%m-%d), $(nproc) cores, mongo-java-server"
set style data histograms
set style fill solid 0.8
set boxwidth 0.8
set title "throughput (rows/s)"
set yrange [0:*]
set xtics rotate by -30
set grid ytics
unset key
plot "$tp" using 2:xtic(1) lc rgb "#4477aa"
set title "commit -> visible latency (ms, log) by offered rows/s"
set yrange [*:*]
set key top left
set logscale y
set style histogram clustered gap 1
plot "$lp" using 2:xtic(1) title "p50" lc rgb "#66ccee", "" using 3 title "p95" lc rgb "#4477aa", "" using 4 title "p99" lc rgb "#223355"
unset logscale y
set style data lines
set title "daemon RSS over the latency run (MiB; phases: burst, rates, 1M txn, mixed)"
set yrange [0:*]
set xtics norotate
set xlabel "seconds"
unset key
set datafile separator ","
plot "$rss" every ::1 using 1:(\$2/1024) with lines lw 2 lc rgb "#aa3377"
unset multiplot
GP
  [ -s "$OUT/bench.png" ] && echo "plot: $OUT/bench.png" >&2
fi
echo "results: $RESULTS" >&2

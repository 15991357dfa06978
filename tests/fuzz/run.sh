#!/usr/bin/env bash
# A time-boxed libFuzzer run of every harness (CI runs it through tests/run.sh):
#
#   tests/fuzz/run.sh [--seconds N] [--only binlog|mysqljson|config|ddl] [--keep-corpus]
#
# Builds build-fuzz (clang, -Dfuzz=true, ASan + UBSan), writes the seed corpora
# (tests/fuzz/seeds.sh), then runs each harness for N seconds (default 60), one at a time under
# nice. Exits non-zero on any crash, sanitizer report, leak, timeout (10 s for one input) or
# out-of-memory, printing the saved input ("artifact"): fix the bug, then move the artifact to
# tests/data/fuzz/<harness>-<what>.bin, where the unit tests replay it. The corpus grows in
# build-fuzz/fuzz/corpus/<harness>, emptied at the start of each run unless --keep-corpus.
# FUZZ_SEED: libFuzzer's random seed (default 1, repeatable; give long runs a new one).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$ROOT"

seconds=60 keep=0
harnesses=(binlog mysqljson config ddl)
while [ $# -gt 0 ]; do
  case "$1" in
    --seconds) seconds=$2; shift 2 ;;
    --only) harnesses=("$2"); shift 2 ;;
    --keep-corpus) keep=1; shift ;;
    -h|--help) sed -n '2,12p' "$0"; exit 0 ;;
    *) echo "tests/fuzz/run.sh: unknown argument $1" >&2; exit 64 ;;
  esac
done

build=build-fuzz
work=$build/fuzz
if [ ! -f "$build/build.ninja" ]; then
  log=$(mktemp)
  if ! CC=clang meson setup "$build" -Dfuzz=true -Db_sanitize=address,undefined \
      -Db_lundef=false > "$log" 2>&1; then
    cat "$log"; rm -f "$log"; exit 1
  fi
  rm -f "$log"
fi
ninja -C "$build" "${harnesses[@]/#/fuzz_}"
bash tests/fuzz/seeds.sh "$build" "$work/seeds"

# UBSan only prints unless told to stop: a report must end the run as a crash
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1}

failed=0 passed=0
for h in "${harnesses[@]}"; do
  corpus=$work/corpus/$h artifacts=$work/artifacts/$h log=$work/$h.log
  [ "$keep" = 1 ] || rm -rf "$corpus"
  rm -rf "$artifacts"
  mkdir -p "$corpus" "$artifacts"
  start=$(date +%s)
  # new inputs go to the first directory (corpus), the seeds stay as they were; a fixed
  # random seed (FUZZ_SEED, default 1) so that a CI run explores the same inputs each time
  # and a red CI is a regression, not a lucky find (long runs: a new seed, see README)
  if nice -n 19 "$build/fuzz_$h" -seed="${FUZZ_SEED:-1}" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 \
      -print_final_stats=1 -artifact_prefix="$artifacts/" "$corpus" "$work/seeds/$h" \
      > "$log" 2>&1; then
    verdict=ok
    passed=$((passed + 1))
  else
    verdict=FAILED
    failed=$((failed + 1))
  fi
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n1)
  printf 'fuzz_%s: %s (%d s, %s execs, corpus %d files, log %s)\n' "$h" "$verdict" \
    $(($(date +%s) - start)) "${execs:-?}" "$(find "$corpus" -type f | wc -l)" "$log"
  if [ "$verdict" != ok ]; then
    grep -E '^(==[0-9]+==ERROR|SUMMARY|.*runtime error)' "$log" | head -n 5 || true
    tail -n 40 "$log"
    for a in "$artifacts"/*; do
      [ -e "$a" ] && echo "artifact: $ROOT/$a (replay: $build/fuzz_$h $a)"
    done
  fi
done
echo "fuzz: $passed passed, $failed failed"
[ "$failed" = 0 ]

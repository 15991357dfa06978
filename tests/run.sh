#!/usr/bin/env bash
# The test command: installs what is missing, builds (-Werror), starts the rig (MariaDB with
# and without binlog, mongo-java-server, FerretDB), runs every suite, prints a summary and
# exits non-zero on any failure. Servers are stopped on exit, whatever happens.
#
#   tests/run.sh              unit + integration + faults suites, then the deploy suite
#                             (static checks of deploy/ and the man page; no servers)
#   tests/run.sh --sanitize   also an ASan+UBSan build running every suite, valgrind on the
#                             unit suite, and a short libFuzzer run of each harness
#                             (tests/fuzz/run.sh, FUZZ_SECONDS each, default 45; clang)
#                             (always on in CI, i.e. when CI=true)
#   tests/run.sh --suite unit only one suite (unit, integration, faults, deploy, or fuzz:
#                             only the libFuzzer run)
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
. tests/support/deps.sh

SANITIZE=0
SUITES=(unit integration faults deploy)
while [ $# -gt 0 ]; do
  case "$1" in
    --sanitize) SANITIZE=1; shift ;;
    --suite) SUITES=("$2"); shift 2 ;;
    -h|--help) sed -n '2,13p' "$0"; exit 0 ;;
    *) echo "tests/run.sh: unknown argument $1" >&2; exit 64 ;;
  esac
done
[ "${CI:-}" = true ] && SANITIZE=1
FUZZ=0
if [ "${SUITES[*]}" = fuzz ]; then
  FUZZ=1 SUITES=()
elif [ "$SANITIZE" = 1 ] && [[ " ${SUITES[*]} " == *" unit "* ]]; then
  FUZZ=1
fi

ms_install_deps

configure() { # configure DIR [meson options...]: quiet unless it fails
  local dir=$1 log; shift
  log=$(mktemp)
  if [ -f "$dir/build.ninja" ]; then
    meson configure "$dir" "$@" > "$log" 2>&1 || { cat "$log"; rm -f "$log"; return 1; }
  else
    meson setup "$dir" "$@" > "$log" 2>&1 || { cat "$log"; rm -f "$log"; return 1; }
  fi
  rm -f "$log"
  ninja -C "$dir"
}

echo "== build (-Werror)"
configure build -Dwerror=true -Dbuildtype=debugoptimized
if [ "$SANITIZE" = 1 ]; then
  echo "== build with AddressSanitizer + UndefinedBehaviorSanitizer"
  configure build-asan -Dwerror=true -Dbuildtype=debug -Db_sanitize=address,undefined -Db_lundef=false
fi

RIG=""
# (an if, not [ ] &&: under set -e a false test as the trap's last command made the exit
# status 1 for every run without a rig, e.g. --suite unit)
cleanup() { if [ -n "$RIG" ]; then bash tests/support/rig.sh stop --dir "$RIG"; fi; }
trap cleanup EXIT INT TERM
if [[ " ${SUITES[*]} " == *" integration "* || " ${SUITES[*]} " == *" faults "* ]]; then
  echo "== rig"
  bash tests/support/rig.sh prepare
  RIG=$(bash tests/support/rig.sh start --owner $$)
  export MS_RIG_DIR=$RIG
fi

passed=0; failed=0; programs_ok=0; programs_bad=0; status=0
run_suite() { # run_suite BUILDDIR SUITE [meson test args...]
  local dir=$1 suite=$2; shift 2
  local setup=""
  [ "${1:-}" = "--setup" ] && setup=$2
  local log
  echo "== $suite ($dir${*:+, $*})"
  log=$(mktemp)
  if ! meson test -C "$dir" --suite "$suite" --print-errorlogs "$@" 2>&1 | tee "$log"; then
    status=1
  fi
  # meson's summary counts test programs ("Ok: N", "Fail: N", "Timeout: N"); cmocka's lines
  # in meson's test log count the cases inside them.
  local tl="$dir/meson-logs/testlog${setup:+-$setup}.txt" bad
  grep -q '^Ok:' "$log" || status=1   # no summary: the runner itself failed
  bad=$(awk '/^(Fail|Timeout|Unexpected Pass):/{s+=$NF} END{print s+0}' "$log")
  programs_ok=$((programs_ok + $(awk '/^Ok:/{print $2}' "$log" | tail -n1)))
  programs_bad=$((programs_bad + bad))
  local cases_bad
  cases_bad=$(sed -n 's/^\[  FAILED  \] \([0-9]*\) test(s).*/\1/p' "$tl" | awk '{s+=$1} END{print s+0}')
  passed=$((passed + $(sed -n 's/^\[  PASSED  \] \([0-9]*\) test(s).*/\1/p' "$tl" | awk '{s+=$1} END{print s+0}')))
  failed=$((failed + cases_bad))
  # a crashed or timed-out program may report no cmocka line: count it as a failure
  if [ "$bad" != 0 ] && [ "$cases_bad" = 0 ]; then failed=$((failed + bad)); fi
  rm -f "$log"
}

export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
# glibc writes its fatal messages (heap corruption, failed asserts) to the terminal unless
# told otherwise: into the logs instead, so that an abort in a suite says why
export LIBC_FATAL_STDERR_=1
for s in "${SUITES[@]}"; do run_suite build "$s"; done
if [ "$SANITIZE" = 1 ]; then
  for s in "${SUITES[@]}"; do [ "$s" = deploy ] || run_suite build-asan "$s"; done
  if [[ " ${SUITES[*]} " == *" unit "* ]]; then
    run_suite build unit --setup valgrind
  fi
fi
# libFuzzer: each harness for FUZZ_SECONDS, counted as one test program (longer runs: README)
if [ "$FUZZ" = 1 ]; then
  echo "== fuzz (libFuzzer, ${FUZZ_SECONDS:-45} s per harness)"
  log=$(mktemp)
  bash tests/fuzz/run.sh --seconds "${FUZZ_SECONDS:-45}" 2>&1 | tee "$log" || status=1
  fuzz_ok=$(sed -n 's/^fuzz: \([0-9]*\) passed, \([0-9]*\) failed$/\1/p' "$log")
  fuzz_bad=$(sed -n 's/^fuzz: \([0-9]*\) passed, \([0-9]*\) failed$/\2/p' "$log")
  [ -n "$fuzz_ok" ] || { fuzz_ok=0 fuzz_bad=1; } # no summary: the build or the seeds failed
  programs_ok=$((programs_ok + fuzz_ok))
  programs_bad=$((programs_bad + fuzz_bad))
  failed=$((failed + fuzz_bad)) # no cmocka line for them either
  rm -f "$log"
fi

echo
echo "test programs: $programs_ok passed, $programs_bad failed"
echo "summary: $passed passed, $failed failed"
[ "$failed" = 0 ] && [ "$programs_bad" = 0 ] || status=1
exit $status

#!/usr/bin/env bash
# Builds the fuzz harnesses' seed corpora from the repository's test vectors, afresh:
#
#   tests/fuzz/seeds.sh BUILDDIR OUTDIR
#
#   OUTDIR/binlog     the binlog files of tests/data/binlogs and ../shared/binlogs
#   OUTDIR/mysqljson  test_mysqljson's vectors: binary JSON, text JSON, JSON diffs
#   OUTDIR/config     config/*.yaml and test_config's cases (YAML, then NUL-separated env)
#   OUTDIR/ddl        test_schema's DDL statements
#
# and, in each, the saved artifacts of that harness (tests/data/fuzz/<harness>-*). BUILDDIR is
# a meson build with the unit tests (-Dtests=true, the default): the test programs write their
# own vectors (MS_FUZZ_SEEDS), so the seeds follow the tests without a copy in the repository.
set -euo pipefail

if [ $# -ne 2 ]; then
  sed -n '2,12p' "$0" >&2
  exit 64
fi
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
build=$1 out=$2

ninja -C "$build" tests/test_mysqljson tests/test_config tests/test_schema > /dev/null
for h in binlog mysqljson config ddl; do
  rm -rf "${out:?}/$h"
  mkdir -p "$out/$h"
done

shopt -s nullglob
cp "$ROOT"/tests/data/binlogs/*.binlog "$out/binlog/"
shared="$ROOT/../shared/binlogs"
if [ -d "$shared" ]; then
  for f in "$shared"/*/*; do
    # one directory per source repository: keep its name, file names repeat across them
    cp "$f" "$out/binlog/$(basename "$(dirname "$f")")-$(basename "$f")"
  done
else
  echo "seeds: $shared is missing: binlog seeds from tests/data/binlogs only" >&2
fi
MS_FUZZ_SEEDS="$out/mysqljson" "$build/tests/test_mysqljson"
MS_FUZZ_SEEDS="$out/config" "$build/tests/test_config"
MS_FUZZ_SEEDS="$out/ddl" "$build/tests/test_schema"
cp "$ROOT"/config/*.yaml "$out/config/"
for h in binlog mysqljson config ddl; do
  for f in "$ROOT"/tests/data/fuzz/"$h"-*; do
    cp "$f" "$out/$h/"
  done
  echo "seeds: $h $(find "$out/$h" -type f | wc -l) files"
done

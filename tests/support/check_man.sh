#!/usr/bin/env bash
# check_man.sh PAGE MYSYNC: the generated mysync(1) renders without a warning (groff -ww,
# man -l) and names every long option of `mysync --help`.
set -euo pipefail
page=$1 mysync=$2
err=$(groff -man -Tutf8 -ww -z "$page" 2>&1) || { echo "groff failed: $err"; exit 1; }
[ -z "$err" ] || { echo "groff warnings:"; echo "$err"; exit 1; }
text=$(MANWIDTH=100 man --warnings -l "$page" 2>/tmp/check_man.$$) || { cat /tmp/check_man.$$; exit 1; }
if [ -s /tmp/check_man.$$ ]; then echo "man warnings:"; cat /tmp/check_man.$$; rm -f /tmp/check_man.$$; exit 1; fi
rm -f /tmp/check_man.$$
missing=0
for opt in $("$mysync" --help | grep -o -- '--[a-z][a-z-]*' | sort -u); do
  grep -qF -- "$opt" <<<"$text" || { echo "mysync(1) does not mention $opt"; missing=1; }
done
for word in SIGHUP SIGTERM READY=1 WATCHDOG=1 'EXIT STATUS'; do
  grep -qF -- "$word" <<<"$text" || { echo "mysync(1) does not mention $word"; missing=1; }
done
[ "$missing" = 0 ] && echo "mysync(1): renders cleanly, every option documented"
exit $missing

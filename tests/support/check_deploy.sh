#!/usr/bin/env bash
# check_deploy.sh ROOT METRICS_EXPORT MYSYNC: static checks of deploy/ (meson suite 'deploy').
# No Docker engine, no cluster, no systemd as PID 1 needed: systemd-analyze verify and
# security --offline, promtool check/test, then tests/support/check_deploy.py (compose,
# Dockerfile, k8s consistency; every metric the dashboard and alerts use is exported).
set -euo pipefail
root=$(realpath "$1") export_bin=$(realpath "$2") mysync=$(realpath "$3")
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
status=0
step() { echo "== $*"; }

step "systemd-analyze verify deploy/systemd/mysync.service"
# the unit as installed: ExecStart pointing at this build, mysync(1) findable (Documentation=)
mkdir -p "$tmp/unit" "$tmp/man/man1"
sed "s#/usr/local/bin/mysync#$mysync#" "$root/deploy/systemd/mysync.service" > "$tmp/unit/mysync.service"
if [ -f "$(dirname "$mysync")/mysync.1" ]; then
  cp "$(dirname "$mysync")/mysync.1" "$tmp/man/man1/"
  man_opt=(--man=yes)
else
  man_opt=(--man=no)
fi
if ! out=$(MANPATH="$tmp/man" systemd-analyze verify "${man_opt[@]}" "$tmp/unit/mysync.service" 2>&1) || [ -n "$out" ]; then
  echo "$out"; status=1
fi
# hardening must not regress: exposure 2.0 ("OK") at most (it is 1.4)
if ! systemd-analyze security --offline=true --threshold=20 "$tmp/unit/mysync.service" > "$tmp/sec.txt" 2>&1; then
  tail -n 3 "$tmp/sec.txt"; status=1
else
  grep -o 'Overall exposure level.*' "$tmp/sec.txt" || true
fi

step "promtool check rules / test rules / check config"
promtool check rules "$root/deploy/prometheus/alerts.yml" || status=1
(cd "$root/deploy/prometheus" && promtool test rules alerts_test.yml) || status=1
promtool check config --syntax-only "$root/deploy/prometheus/prometheus.yml" || status=1

step "compose, Dockerfile, k8s, metric names (check_deploy.py)"
"$export_bin" > "$tmp/metrics.txt"
python3 "$root/tests/support/check_deploy.py" --root "$root" --exported "$tmp/metrics.txt" \
  --mysync "$mysync" || status=1

exit $status

#!/usr/bin/env bash
# Regenerates the MariaDB binlog vectors of this directory from types.sql with the test rig's
# MariaDB (binlog ROW, FULL image, FULL metadata): one plain file, one with
# log_bin_compress=ON (compressed rows/query events). Also writes what mariadb-binlog
# decodes from each (*.mariadb-binlog.txt), the reference the golden *.jsonl were checked
# against. Run it when the workload changes; commit the results.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../../.." && pwd)
rig=$(bash "$root/tests/support/rig.sh" start mariadb)
trap 'bash "$root/tests/support/rig.sh" stop --dir "$rig"' EXIT
. "$rig/rig.env"
sql() { mariadb --no-defaults -h127.0.0.1 -P"$MS_RIG_MARIADB_PORT" -urig -prig-admin "$@"; }
ver=$(sql -N -e "SELECT SUBSTRING_INDEX(VERSION(), '-', 1)")
capture() { # capture NAME: run the workload into a fresh binlog file and copy it here
  sql -e "FLUSH BINARY LOGS"
  local f
  f=$(sql -N -e "SHOW MASTER STATUS" | awk '{print $1}')
  sql < "$here/types.sql"
  sql -e "FLUSH BINARY LOGS"
  cp "$MS_RIG_MARIADB_BINLOG_DIR/$f" "$here/$1"
  mariadb-binlog --no-defaults --verbose --base64-output=decode-rows "$here/$1" \
    > "$here/$1.mariadb-binlog.txt"
}
capture "mariadb-$ver-types.binlog"
sql -e "SET GLOBAL log_bin_compress = ON; SET GLOBAL log_bin_compress_min_len = 10"
capture "mariadb-$ver-compressed.binlog"
echo "vectors written to $here"

#!/usr/bin/env bash
# mysync demo on an embedded default: installs what is missing, builds mysync, starts a local
# MariaDB (binlog ROW) and a MongoDB-wire server (mongo-java-server), loads a sample shop,
# runs mysync against them with a small load generator, and tells you where to look.
#
#   deploy/demo.sh            run, then stop the servers
#   deploy/demo.sh --keep     leave the servers running (prints how to stop them)
#   MS_DEMO_SECONDS=30        length of the load phase (default 10)
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
. tests/support/deps.sh
KEEP=0
[ "${1:-}" = "--keep" ] && KEEP=1

echo "== installing what is missing, building"
ms_install_deps
[ -f build/build.ninja ] || meson setup build >/dev/null
ninja -C build >/dev/null

echo "== starting MariaDB and mongo-java-server"
RIG=$(bash tests/support/rig.sh start mariadb mongo)
[ "$KEEP" = 1 ] || trap 'bash tests/support/rig.sh stop --dir "$RIG"' EXIT INT TERM
get() { grep "^$1=" "$RIG/rig.env" | cut -d= -f2-; }
PORT=$(get MS_RIG_MARIADB_PORT)
export MS_DEMO_MYSQL="-h127.0.0.1 -P$PORT -u$(get MS_RIG_ADMIN_USER) -p$(get MS_RIG_ADMIN_PASSWORD)"

echo "== loading the sample shop (deploy/demo/shop.sql)"
# shellcheck disable=SC2086
mariadb --no-defaults $MS_DEMO_MYSQL < deploy/demo/shop.sql
# shellcheck disable=SC2086
mariadb --no-defaults $MS_DEMO_MYSQL -t shop -e "
  SELECT 'products' AS tbl, COUNT(*) AS rows_ FROM products UNION ALL
  SELECT 'categories', COUNT(*) FROM categories UNION ALL SELECT 'customers', COUNT(*) FROM customers
  UNION ALL SELECT 'orders', COUNT(*) FROM orders UNION ALL SELECT 'order_items', COUNT(*) FROM order_items
  UNION ALL SELECT 'inventory', COUNT(*) FROM inventory"

# mysync runs from environment variables alone; keep them in a file you can source.
cat > "$RIG/mysync.env" <<ENV
MYSQL_HOST=127.0.0.1
MYSQL_PORT=$PORT
MYSQL_USER=$(get MS_RIG_MYSYNC_USER)
MYSQL_PASSWORD=$(get MS_RIG_MYSYNC_PASSWORD)
MYSQL_DATABASE=shop
MONGODB_URI=$(get MS_RIG_MONGO_URI)
MONGODB_DATABASE=shop
SYNC_TABLES=products,categories,customers,orders,order_items,inventory
HTTP_LISTEN=127.0.0.1:8080
ENV
set -a; . "$RIG/mysync.env"; set +a

echo "== mysync --check-config"
build/mysync --check-config | sed -n '1,20p'
echo "   ..."
echo "== mysync (daemon)"
status=0
build/mysync || status=$?
if [ "$status" != 0 ]; then
  echo "demo: mysync could not reach the servers (exit $status)" >&2
  exit "$status"
fi

# shellcheck disable=SC2086
before=$(mariadb --no-defaults $MS_DEMO_MYSQL -N -e "SHOW MASTER STATUS" | awk '{print $1":"$2}')
echo "== load generator for ${MS_DEMO_SECONDS:-10}s (deploy/demo/load.sh)"
bash deploy/demo/load.sh "${MS_DEMO_SECONDS:-10}"
# shellcheck disable=SC2086
after=$(mariadb --no-defaults $MS_DEMO_MYSQL -N -e "SHOW MASTER STATUS" | awk '{print $1":"$2}')

CHANGES="${TMPDIR:-/tmp}/mysync-demo-changes.jsonl"
echo "== the load as mysync decodes it from the server's binlog (binlog-dump --from-server)"
build/mysync binlog-dump --from-server --start "$before" --no-follow 2>/dev/null > "$CHANGES"
echo "   $(wc -l < "$CHANGES") row changes decoded; the first three:"
head -n 3 "$CHANGES" | cut -c1-400

cat <<TXT

== where to look
  MariaDB:   mariadb --no-defaults $MS_DEMO_MYSQL shop
             binlog moved from $before to $after during the load
  MongoDB:   $(get MS_RIG_MONGO_URI)  (database "shop"; any MongoDB client or driver)
  mysync:    set -a; . $RIG/mysync.env; set +a; build/mysync --check-config
             build/mysync binlog-dump --from-server      (live decoded changes; Ctrl-C stops)
  decoded:   $CHANGES

  This build checks both servers and decodes the live binlog (every column type, exact
  values, as the documents will be written); writing them into MongoDB arrives with the
  CDC pipeline, and status/metrics on http://127.0.0.1:8080 with the control plane. The
  demo grows with them.
TXT
if [ "$KEEP" = 1 ]; then
  echo "  Servers keep running; stop them with: tests/support/rig.sh stop --dir $RIG"
else
  echo "  The servers stop when this script ends: run deploy/demo.sh --keep to explore them."
fi

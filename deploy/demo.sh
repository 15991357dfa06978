#!/usr/bin/env bash
# mysync demo on an embedded default: installs what is missing, builds mysync, starts a local
# MariaDB (binlog ROW) and a MongoDB-wire server (mongo-java-server), loads a sample shop,
# runs mysync against them while a load generator changes the shop, and shows the changes
# arriving in MongoDB live.
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
# How the shop's tables become documents (README "Strategies"): orders embed their items with
# live totals, products carry their category name and stock; the demo's inventory table
# names its columns warehouse/quantity, mapped to the strategy's warehouse_id/on_hand.
cat > "$RIG/mysync.yaml" <<'YAML'
tables:
  products: {strategy: products}      # + categories
  orders: {strategy: orders}          # + order_items
  customers:
    strategy: customers
    pii: {phone: redact}
  inventory:
    strategy: inventory
    columns: {warehouse_id: warehouse, on_hand: quantity}
YAML

echo "== mysync --check-config"
build/mysync --check-config --config "$RIG/mysync.yaml" | sed -n '1,12p'
echo "   ..."
echo "== mysync (daemon), in the background: log in $RIG/mysync.log"
build/mysync --config "$RIG/mysync.yaml" > "$RIG/mysync.log" 2>&1 &
MYSYNC_PID=$!
stop_mysync() { kill -TERM "$MYSYNC_PID" 2>/dev/null && wait "$MYSYNC_PID" 2>/dev/null || true; }
if [ "$KEEP" = 1 ]; then trap stop_mysync EXIT INT TERM; else
  trap 'stop_mysync; bash tests/support/rig.sh stop --dir "$RIG"' EXIT INT TERM; fi
for _ in $(seq 1 100); do
  grep -q "replicating into" "$RIG/mysync.log" && break
  if ! kill -0 "$MYSYNC_PID" 2>/dev/null; then
    cat "$RIG/mysync.log" >&2; echo "demo: mysync exited" >&2; exit 1
  fi
  sleep 0.1
done
sed 's/^/   /' "$RIG/mysync.log"

my() { mariadb --no-defaults $MS_DEMO_MYSQL -N shop -e "$1"; } # shellcheck disable=SC2086
peek() { build/demo_peek "$(get MS_RIG_MONGO_URI)" shop "$@"; }
first_order=$(my "SELECT IFNULL(MAX(id), 0) FROM orders")
before=$(my "SHOW MASTER STATUS" | awk '{print $1":"$2}')
echo "== load generator for ${MS_DEMO_SECONDS:-10}s (deploy/demo/load.sh), replicated live"
bash deploy/demo/load.sh "${MS_DEMO_SECONDS:-10}" &
LOAD_PID=$!
while kill -0 "$LOAD_PID" 2>/dev/null; do
  printf '   orders since start: MariaDB %s, MongoDB %s\n' \
    "$(my "SELECT COUNT(*) FROM orders WHERE id > $first_order")" \
    "$(peek orders "{\"_id\": {\"\$gt\": $first_order}}" --count)"
  sleep 2
done
wait "$LOAD_PID"
sleep 1
m_orders=$(my "SELECT COUNT(*) FROM orders WHERE id > $first_order")
g_orders=$(peek orders "{\"_id\": {\"\$gt\": $first_order}}" --count)
echo "   after the load:      MariaDB $m_orders, MongoDB $g_orders"
echo "== the newest order in MongoDB (items embedded, exact total), and its rows in MariaDB"
newest=$(my "SELECT MAX(id) FROM orders")
peek orders "{\"_id\": $newest}" | cut -c1-700
my "SELECT o.id, o.status, i.sku, i.qty, i.unit_price, i.qty * i.unit_price AS line_total
    FROM orders o JOIN order_items i ON i.order_id = o.id WHERE o.id = $newest ORDER BY i.id"
echo "== a product whose stock moved, with its category and stock per warehouse"
peek products '{"stock.total": {"$exists": true}}' --sort -_id --limit 1 | cut -c1-500
echo "== mysync's checkpoint (_mysync_checkpoints): where a restart resumes"
peek _mysync_checkpoints
echo "== stopping mysync (SIGTERM: flush, checkpoint, exit 0)"
stop_mysync
tail -n 2 "$RIG/mysync.log" | sed 's/^/   /'
after=$(my "SHOW MASTER STATUS" | awk '{print $1":"$2}')

cat <<TXT

== where to look
  MariaDB:   mariadb --no-defaults $MS_DEMO_MYSQL shop
             binlog moved from $before to $after during the load
  MongoDB:   $(get MS_RIG_MONGO_URI)  (database "shop"; any MongoDB client, or
             build/demo_peek $(get MS_RIG_MONGO_URI) shop orders --limit 5)
  mysync:    set -a; . $RIG/mysync.env; set +a; build/mysync --config $RIG/mysync.yaml
                                                   (replicate again)
             build/mysync binlog-dump --from-server --start $before --no-follow
                                                   (the decoded changes, one JSON line each)
  Rows that existed before mysync first started arrive with a snapshot (mysync --full,
  issue 5); until then MongoDB holds what changed since. Status and metrics on
  http://127.0.0.1:8080 arrive with the control plane.
TXT
if [ "$KEEP" = 1 ]; then
  echo "  Servers keep running; stop them with: tests/support/rig.sh stop --dir $RIG"
else
  echo "  The servers stop when this script ends: run deploy/demo.sh --keep to explore them."
fi

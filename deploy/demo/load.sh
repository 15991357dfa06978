#!/usr/bin/env bash
# A small, bounded load on the sample shop: new orders with items, price changes, stock moves,
# status changes and deletes, in transactions. Usage: load.sh SECONDS (mariadb client options
# in $MS_DEMO_MYSQL, e.g. "-h127.0.0.1 -P3306 -urig -ppw").
set -euo pipefail
secs=${1:-10}
end=$(( $(date +%s) + secs ))
i=0
while [ "$(date +%s)" -lt "$end" ]; do
  i=$((i + 1))
  # shellcheck disable=SC2086
  mariadb --no-defaults $MS_DEMO_MYSQL shop <<SQL
START TRANSACTION;
INSERT INTO orders (customer_id, status) VALUES (1 + FLOOR(RAND() * 200), 'pending');
SET @o = LAST_INSERT_ID();
INSERT INTO order_items (order_id, product_id, sku, qty, unit_price)
  SELECT @o, id, sku, 1 + FLOOR(RAND() * 3), price FROM products ORDER BY RAND() LIMIT 3;
UPDATE inventory SET quantity = GREATEST(quantity - 1, 0) WHERE product_id IN
  (SELECT product_id FROM order_items WHERE order_id = @o);
COMMIT;
UPDATE products SET price = ROUND(price * (0.95 + RAND() / 10), 2) WHERE id = 1 + FLOOR(RAND() * 500);
UPDATE orders SET status = 'paid' WHERE status = 'pending' ORDER BY RAND() LIMIT 1;
DELETE FROM order_items WHERE order_id = (SELECT MIN(id) FROM orders WHERE status = 'cancelled') LIMIT 1;
SQL
  sleep 0.2
done
echo "load: $i rounds in ${secs}s"

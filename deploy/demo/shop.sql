-- Sample shop for the demo: categories, products, customers, orders, order_items, inventory.
-- Rows are generated with recursive CTEs (deterministic, no external data).
SET NAMES utf8mb4;
DROP DATABASE IF EXISTS shop;
CREATE DATABASE shop CHARACTER SET utf8mb4 COLLATE utf8mb4_general_ci;
USE shop;

CREATE TABLE categories (
  id INT UNSIGNED PRIMARY KEY,
  name VARCHAR(80) NOT NULL,
  parent_id INT UNSIGNED NULL,
  KEY (parent_id)
);

CREATE TABLE products (
  id BIGINT UNSIGNED AUTO_INCREMENT PRIMARY KEY,
  sku VARCHAR(32) NOT NULL UNIQUE,
  name VARCHAR(200) NOT NULL,
  description TEXT,
  category_id INT UNSIGNED,
  price DECIMAL(12,2) NOT NULL,
  currency CHAR(3) NOT NULL DEFAULT 'EUR',
  attributes JSON,
  status ENUM('active','draft','discontinued') NOT NULL DEFAULT 'active',
  created_at DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
  updated_at DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6) ON UPDATE CURRENT_TIMESTAMP(6),
  KEY (category_id), KEY (updated_at)
);

CREATE TABLE customers (
  id BIGINT UNSIGNED AUTO_INCREMENT PRIMARY KEY,
  email VARCHAR(190) NOT NULL UNIQUE,
  first_name VARCHAR(80), last_name VARCHAR(80), phone VARCHAR(32),
  address_line1 VARCHAR(200), city VARCHAR(80), postal_code VARCHAR(16), country CHAR(2),
  created_at DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
  updated_at DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6) ON UPDATE CURRENT_TIMESTAMP(6),
  KEY (updated_at)
);

CREATE TABLE orders (
  id BIGINT UNSIGNED AUTO_INCREMENT PRIMARY KEY,
  customer_id BIGINT UNSIGNED NOT NULL,
  status ENUM('pending','paid','shipped','delivered','cancelled') NOT NULL DEFAULT 'pending',
  currency CHAR(3) NOT NULL DEFAULT 'EUR',
  placed_at DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
  updated_at DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6) ON UPDATE CURRENT_TIMESTAMP(6),
  KEY (customer_id), KEY (placed_at), KEY (updated_at)
);

CREATE TABLE order_items (
  id BIGINT UNSIGNED AUTO_INCREMENT PRIMARY KEY,
  order_id BIGINT UNSIGNED NOT NULL,
  product_id BIGINT UNSIGNED NOT NULL,
  sku VARCHAR(32) NOT NULL,
  qty INT UNSIGNED NOT NULL,
  unit_price DECIMAL(12,2) NOT NULL,
  KEY (order_id)
);

CREATE TABLE inventory (
  product_id BIGINT UNSIGNED NOT NULL,
  warehouse VARCHAR(16) NOT NULL,
  quantity INT NOT NULL,
  reserved INT NOT NULL DEFAULT 0,
  updated_at DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6) ON UPDATE CURRENT_TIMESTAMP(6),
  PRIMARY KEY (product_id, warehouse)
);

INSERT INTO categories VALUES
  (1,'Electronics',NULL),(2,'Phones',1),(3,'Laptops',1),(4,'Audio',1),
  (5,'Home & Kitchen',NULL),(6,'Cookware',5),(7,'Coffee',5),
  (8,'Books',NULL),(9,'Fiction',8),(10,'Non-fiction',8),
  (11,'Outdoor',NULL),(12,'Camping',11);

INSERT INTO products (sku, name, description, category_id, price, currency, attributes, status,
                      created_at, updated_at)
WITH RECURSIVE seq(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM seq WHERE n < 500)
SELECT CONCAT('SKU-', LPAD(n, 6, '0')),
       CONCAT(ELT(1 + n % 6, 'Compact', 'Pro', 'Classic', 'Ultra', 'Eco', 'Smart'), ' ',
              ELT(1 + n % 11, 'Phone', 'Laptop', 'Headphones', 'Pan', 'Espresso Maker', 'Novel',
                  'Field Guide', 'Tent', 'Speaker', 'Kettle', 'Lantern'), ' ', n),
       CONCAT('Item ', n, ' — ', ELT(1 + n % 3, 'bestseller', 'new arrival', 'limited edition')),
       2 + n % 11,
       ROUND(4.99 + (n * 37 % 2000) + (n % 100) / 100, 2),
       ELT(1 + n % 3, 'EUR', 'USD', 'GBP'),
       JSON_OBJECT('color', ELT(1 + n % 4, 'black', 'white', 'red', 'blue'),
                   'weight_g', 100 + n * 7 % 3000,
                   'tags', JSON_ARRAY(ELT(1 + n % 3, 'gift', 'sale', 'eco'), 'shop')),
       ELT(1 + (n % 20 = 0) + (n % 45 = 0), 'active', 'draft', 'discontinued'),
       NOW(6) - INTERVAL (500 - n) HOUR, NOW(6) - INTERVAL (500 - n) MINUTE
FROM seq;

INSERT INTO customers (email, first_name, last_name, phone, address_line1, city, postal_code, country)
WITH RECURSIVE seq(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM seq WHERE n < 200)
SELECT CONCAT(LOWER(ELT(1 + n % 8, 'ana','ben','chloé','dmitri','emma','farid','greta','hiro')),
              '.', n, '@example.com'),
       ELT(1 + n % 8, 'Ana', 'Ben', 'Chloé', 'Dmitri', 'Emma', 'Farid', 'Greta', 'Hiro'),
       ELT(1 + n % 7, 'García', 'Müller', 'Nguyen', 'Okafor', 'Rossi', 'Smith', 'Østergaard'),
       CONCAT('+49 30 ', LPAD(n * 7919 % 10000000, 7, '0')),
       CONCAT(n, ' ', ELT(1 + n % 4, 'Main Street', 'Rue de Rivoli', 'Königstraße', 'Calle Mayor')),
       ELT(1 + n % 5, 'Berlin', 'Paris', 'Madrid', 'Lisbon', 'Copenhagen'),
       LPAD(n * 31 % 99999, 5, '0'),
       ELT(1 + n % 5, 'DE', 'FR', 'ES', 'PT', 'DK')
FROM seq;

INSERT INTO orders (customer_id, status, currency, placed_at)
WITH RECURSIVE seq(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM seq WHERE n < 300)
SELECT 1 + n * 13 % 200, ELT(1 + n % 5, 'pending','paid','shipped','delivered','cancelled'),
       'EUR', NOW(6) - INTERVAL (300 - n) HOUR
FROM seq;

INSERT INTO order_items (order_id, product_id, sku, qty, unit_price)
WITH RECURSIVE seq(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM seq WHERE n < 900)
SELECT 1 + (n - 1) DIV 3, p.id, p.sku, 1 + n % 4, p.price
FROM seq JOIN products p ON p.id = 1 + n * 17 % 500;

INSERT INTO inventory (product_id, warehouse, quantity, reserved)
SELECT p.id, w.name, (p.id * 13 + LENGTH(w.name)) % 250, p.id % 5
FROM products p CROSS JOIN (SELECT 'BER-1' AS name UNION ALL SELECT 'MAD-2') w;

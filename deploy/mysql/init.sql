-- MySQL 8.4 for deploy/docker-compose.yml: run once by the image's entrypoint, after it has
-- created MYSQL_DATABASE and MYSQL_USER (mysync, all privileges on the database). The grants
-- binlog replication needs (README "Production setup: MySQL 8.x"):
GRANT SELECT, RELOAD, SHOW DATABASES, REPLICATION SLAVE, REPLICATION CLIENT ON *.* TO 'mysync'@'%';

-- a small sample to watch arrive in MongoDB
CREATE TABLE IF NOT EXISTS shop.kv (
  id INT PRIMARY KEY,
  name VARCHAR(64) NOT NULL,
  qty INT NOT NULL DEFAULT 0,
  updated_at TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3) ON UPDATE CURRENT_TIMESTAMP(3)
);
INSERT INTO shop.kv (id, name, qty) VALUES (1, 'first', 1), (2, 'second', 2);

/* The entity strategies end to end on a sample shop, against the rig's MariaDB and
 * mongo-java-server: realistic traffic (an order created with its items, items added, changed
 * and removed, items that arrive before their order, an order cancelled and one deleted with its
 * items, a category renamed, stock moved between warehouses, a customer updated, invalid rows)
 * must end in exactly the documents below; a SIGKILL in the middle changes nothing, and
 * replaying the whole stream from the first checkpoint over the result gives the same
 * documents again (idempotent writes, aggregates recomputed, never deltas). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <mongoc/mongoc.h>
#include <mysql.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "testutil.h"
#include "tu_daemon.h"

#define DB      "itshop"
#define PII_KEY "it-shop-pii-key"

static const char *const schema[] = {
    "DROP DATABASE IF EXISTS " DB,
    "CREATE DATABASE " DB,
    "CREATE TABLE " DB ".categories (id INT PRIMARY KEY, name VARCHAR(80) NOT NULL, parent_id "
    "INT NULL)",
    "CREATE TABLE " DB ".products (id BIGINT UNSIGNED PRIMARY KEY, sku VARCHAR(32) NOT NULL, "
    "name VARCHAR(200), description TEXT, category_id INT, price DECIMAL(12,2), currency CHAR(3), "
    "attributes JSON, status ENUM('active','draft','discontinued'), created_at DATETIME, "
    "updated_at DATETIME)",
    "CREATE TABLE " DB ".customers (id BIGINT UNSIGNED PRIMARY KEY, email VARCHAR(190), "
    "first_name VARCHAR(80), last_name VARCHAR(80), phone VARCHAR(32), address_line1 "
    "VARCHAR(200), city VARCHAR(80), postal_code VARCHAR(16), country CHAR(2), marketing_opt_in "
    "TINYINT(1), created_at DATETIME, updated_at DATETIME)",
    "CREATE TABLE " DB ".orders (id BIGINT UNSIGNED PRIMARY KEY, customer_id BIGINT UNSIGNED, "
    "status ENUM('pending','paid','shipped','cancelled'), currency CHAR(3), placed_at DATETIME, "
    "updated_at DATETIME)",
    "CREATE TABLE " DB ".order_items (id BIGINT UNSIGNED PRIMARY KEY, order_id BIGINT UNSIGNED, "
    "product_id BIGINT UNSIGNED, sku VARCHAR(32), qty INT, unit_price DECIMAL(12,2), KEY "
    "(order_id))",
    /* the demo's column names: mapped through tables.inventory.columns */
    "CREATE TABLE " DB ".inventory (product_id BIGINT UNSIGNED, warehouse VARCHAR(16), quantity "
    "INT, reserved INT, updated_at DATETIME, PRIMARY KEY (product_id, warehouse))",
    NULL,
};

static const char config_yaml[] = "tables:\n"
                                  "  products: {strategy: products}\n"
                                  "  orders: {strategy: orders}\n"
                                  "  customers:\n"
                                  "    strategy: customers\n"
                                  "    pii: {phone: redact, last_name: hash}\n"
                                  "  inventory:\n"
                                  "    strategy: inventory\n"
                                  "    columns: {warehouse_id: warehouse, on_hand: quantity}\n";

/* The traffic, in steps; the daemon is SIGKILLed and restarted after step `kill_after`. */
static const char *const steps[] = {
    "INSERT INTO categories VALUES (1,'Books',NULL),(2,'Games',NULL)",
    "INSERT INTO products VALUES (1,'BK-1','Dune','A desert planet',1,9.99,'EUR',"
    "'{\"pages\": 412, \"tags\": [\"scifi\"]}','active','2024-01-02 03:04:05',"
    "'2024-01-02 03:04:05'), (2,'GM-1','Chess',NULL,2,25.00,'EUR',NULL,'active',"
    "'2024-01-02 03:04:05','2024-01-02 03:04:05')",
    "INSERT INTO inventory VALUES (1,'north',10,2,'2024-01-03 00:00:00'),"
    "(1,'south',5,0,'2024-01-03 00:00:00'),(2,'north',3,0,'2024-01-03 00:00:00')",
    "INSERT INTO customers VALUES (1,'Alice.Smith@Example.COM','Alice','Smith',"
    "'+44 20 7946 0000','1 High St','London','N1 9GU','GB',1,'2024-01-01 00:00:00',"
    "'2024-01-01 00:00:00')",
    /* an order created with its items in one transaction */
    "BEGIN; INSERT INTO orders VALUES (100,1,'pending','EUR','2024-02-01 10:00:00',"
    "'2024-02-01 10:00:00'); INSERT INTO order_items VALUES (1000,100,1,'BK-1',2,9.99),"
    "(1001,100,2,'GM-1',1,25.00); COMMIT",
    /* add, change, remove items */
    "INSERT INTO order_items VALUES (1002,100,1,'BK-1',1,9.99)",
    "UPDATE order_items SET qty = 3 WHERE id = 1000",
    "DELETE FROM order_items WHERE id = 1001",
    /* an item before its order, in one transaction; and one whose order comes later */
    "BEGIN; INSERT INTO order_items VALUES (1003,101,2,'GM-1',2,25.00); INSERT INTO orders "
    "VALUES (101,1,'paid','EUR','2024-02-02 00:00:00','2024-02-02 00:00:00'); COMMIT",
    "INSERT INTO order_items VALUES (1004,102,1,'BK-1',4,9.99)",
    "INSERT INTO orders VALUES (102,1,'pending','EUR','2024-02-03 00:00:00',"
    "'2024-02-03 00:00:00')",
    /* cancel an order */
    "UPDATE orders SET status = 'cancelled', updated_at = '2024-02-05 00:00:00' WHERE id = 100",
    /* rename a category */
    "UPDATE categories SET name = 'Novels' WHERE id = 1",
    /* move stock between warehouses */
    "BEGIN; UPDATE inventory SET quantity = 6 WHERE product_id = 1 AND warehouse = 'north'; "
    "UPDATE inventory SET quantity = 9 WHERE product_id = 1 AND warehouse = 'south'; COMMIT",
    /* update a customer */
    "UPDATE customers SET email = 'Alice@Example.ORG', city = 'Leeds', marketing_opt_in = 0, "
    "updated_at = '2024-03-02 00:00:00' WHERE id = 1",
    /* delete an order, then its items */
    "BEGIN; DELETE FROM orders WHERE id = 101; DELETE FROM order_items WHERE order_id = 101; "
    "COMMIT",
    /* invalid rows: dead-lettered, the stream goes on */
    "INSERT INTO products VALUES (3,'','Nameless',NULL,1,1.00,'EUR',NULL,'draft',"
    "'2024-01-02 03:04:05','2024-01-02 03:04:05')",
    "INSERT INTO order_items VALUES (1005,100,1,'BK-1',-1,9.99)",
    /* a price change */
    "UPDATE products SET price = 10.49, updated_at = '2024-03-01 00:00:00' WHERE id = 1",
    NULL,
};
#define KILL_AFTER 9

#define D(s) "{\"$date\": \"" s "\"}"
#define N(s) "{\"$numberDecimal\": \"" s "\"}"

static const char *const want_products[] = {
    "{\"_id\": 1, \"sku\": \"BK-1\", \"name\": \"Dune\", \"description\": \"A desert planet\", "
    "\"price\": " N("10.49") ", \"currency\": \"EUR\", \"attributes\": {\"pages\": 412, "
                             "\"tags\": [\"scifi\"]}, \"status\": \"active\", \"created_at\": " D(
                                 "2024-01-02T03:04:05Z") ", \"updated_at\": " D("2024-03-01T00:00:"
                                                                                "00Z") ", "
                                                                                       "\"category"
                                                                                       "\": "
                                                                                       "{\"id\": "
                                                                                       "1, "
                                                                                       "\"name\": "
                                                                                       "\"Novels\"}"
                                                                                       ", "
                                                                                       "\"stock\": "
                                                                                       "{\"north\":"
                                                                                       " 4, "
                                                                                       "\"south\": "
                                                                                       "9, "
                                                                                       "\"total\": "
                                                                                       "13}}",
    "{\"_id\": 2, \"sku\": \"GM-1\", \"name\": \"Chess\", \"description\": null, \"price\": " N(
        "25.00") ", \"currency\": \"EUR\", \"attributes\": null, \"status\": \"active\", "
                 "\"created_at\": " D("2024-01-02T03:04:05Z") ", \"updated_at\": " D(
                     "2024-01-02T03:04:05Z") ", \"category\": {\"id\": 2, \"name\": \"Games\"}, "
                                             "\"stock\": {\"north\": 3, \"total\": 3}}",
    NULL,
};

static const char *const want_orders[] = {
    "{\"_id\": 100, \"customer_id\": 1, \"status\": \"cancelled\", \"currency\": \"EUR\", "
    "\"placed_at\": " D("2024-02-01T10:00:00Z") ", \"updated_at\": " D(
        "2024-02-05T00:00:00Z") ", \"items\": [{\"item_id\": 1000, \"product_id\": 1, \"sku\": "
                                "\"BK-1\", \"qty\": 3, "
                                "\"unit_price\": " N("9.99") ", \"line_total\": " N(
                                    "29.97") "}, {\"item_id\": 1002, "
                                             "\"product_id\": 1, \"sku\": \"BK-1\", \"qty\": 1, "
                                             "\"unit_price\": " N("9.99") ", \"line_total\": " N(
                                                 "9.99") "}], "
                                                         "\"item_"
                                                         "count\": "
                                                         "2, "
                                                         "\"total\":"
                                                         " " N("39."
                                                               "96") "}",
    "{\"_id\": 102, \"customer_id\": 1, \"status\": \"pending\", \"currency\": \"EUR\", "
    "\"placed_at\": " D("2024-02-03T00:00:00Z") ", \"updated_at\": " D(
        "2024-02-03T00:00:00Z") ", \"items\": [{\"item_id\": 1004, \"product_id\": 1, \"sku\": "
                                "\"BK-1\", \"qty\": 4, "
                                "\"unit_price\": " N("9.99") ", \"line_total\": " N(
                                    "39.96") "}], \"item_count\": 1, "
                                             "\"total\": " N("39.96") "}",
    NULL,
};

static const char *const want_inventory[] = {
    "{\"_id\": {\"product_id\": 1, \"warehouse_id\": \"north\"}, \"product_id\": 1, "
    "\"warehouse_id\": \"north\", \"on_hand\": 6, \"reserved\": 2, \"available\": 4, "
    "\"updated_at\": " D("2024-01-03T00:00:00Z") "}",
    "{\"_id\": {\"product_id\": 1, \"warehouse_id\": \"south\"}, \"product_id\": 1, "
    "\"warehouse_id\": \"south\", \"on_hand\": 9, \"reserved\": 0, \"available\": 9, "
    "\"updated_at\": " D("2024-01-03T00:00:00Z") "}",
    "{\"_id\": {\"product_id\": 2, \"warehouse_id\": \"north\"}, \"product_id\": 2, "
    "\"warehouse_id\": \"north\", \"on_hand\": 3, \"reserved\": 0, \"available\": 3, "
    "\"updated_at\": " D("2024-01-03T00:00:00Z") "}",
    NULL,
};

/* The customer, with last_name as the hex HMAC-SHA256 of "Smith" under PII_KEY. */
static char *want_customer(void)
{
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    char hex[2 * EVP_MAX_MD_SIZE + 1], *json;

    assert_non_null(HMAC(EVP_sha256(), PII_KEY, (int)strlen(PII_KEY),
                         (const unsigned char *)"Smith", 5, mac, &len));
    for (unsigned i = 0; i < len; i++) {
        snprintf(hex + 2 * i, 3, "%02x", mac[i]);
    }
    json = bson_strdup_printf(
        "{\"_id\": 1, \"email\": \"alice@example.org\", \"name\": {\"first\": \"Alice\", "
        "\"last\": \"%s\"}, \"phone\": \"[REDACTED]\", \"address\": {\"line1\": \"1 High St\", "
        "\"city\": \"Leeds\", \"postal_code\": \"N1 9GU\", \"country\": \"GB\"}, "
        "\"marketing_opt_in\": false, \"created_at\": " D(
            "2024-01-01T00:00:00Z") ", "
                                    "\"updated_at\": " D("2024-03-02T00:00:00Z") "}",
        hex);
    return json;
}

/* Decimals as strings (SYNC_DECIMAL_AS=string, for FerretDB): {"$numberDecimal": "x"} -> "x". */
static bool decimals_as_strings;

static char *as_configured(const char *doc)
{
    static const char tag[] = "{\"$numberDecimal\": ";
    char *out = malloc(strlen(doc) + 1), *o = out;

    while (*doc != '\0') {
        if (decimals_as_strings && strncmp(doc, tag, strlen(tag)) == 0) {
            const char *v = doc + strlen(tag), *end = strchr(v + 1, '"');
            memcpy(o, v, (size_t)(end + 1 - v));
            o += end + 1 - v;
            doc = end + 2; /* past the closing quote and brace */
            continue;
        }
        *o++ = *doc++;
    }
    *o = '\0';
    return out;
}

/* The expected documents of a collection in tu_dump_canonical's form. */
static char *expected(const char *const *docs)
{
    char **lines = NULL, *out;
    size_t n = 0;

    for (; docs[n] != NULL; n++) {
        char *d = as_configured(docs[n]);
        lines = realloc(lines, (n + 1) * sizeof(char *));
        lines[n] = tu_canonical_json(d);
        free(d);
    }
    out = tu_join_sorted(lines, n);
    return out;
}

/* Polls until coll holds exactly want (a liveness limit, not a speed assertion). */
static void wait_docs(struct tu_daemon *d, mongoc_client_t *c, const char *coll, const char *want)
{
    int64_t until = tu_now_ms() + TU_CONVERGE_LIMIT_S * 1000;
    char *got = NULL;

    for (;;) {
        free(got);
        got = tu_dump_canonical(c, DB, coll, NULL);
        if (strcmp(got, want) == 0) {
            break;
        }
        if (tu_now_ms() > until) {
            char msg[8192];
            snprintf(msg, sizeof(msg), "%s.%s after %d s:\n--- want\n%s--- got\n%s", DB, coll,
                     TU_CONVERGE_LIMIT_S, want, got);
            free(got);
            tu_daemon_fail(d, msg);
        }
        if (d->pid > 0 && !tu_daemon_alive(d)) {
            d->pid = -1;
            tu_daemon_fail(d, "mysync exited while converging");
        }
        tu_sleep_ms(100);
    }
    free(got);
}

static void check_all(struct tu_daemon *d, mongoc_client_t *c)
{
    const char *one_customer[] = {NULL, NULL};
    char *w;
    char *cust = want_customer();

    one_customer[0] = cust;
    w = expected(want_products);
    wait_docs(d, c, "products", w);
    free(w);
    w = expected(want_orders);
    wait_docs(d, c, "orders", w);
    free(w);
    w = expected(want_inventory);
    wait_docs(d, c, "inventory", w);
    free(w);
    w = expected(one_customer);
    wait_docs(d, c, "customers", w);
    free(w);
    bson_free(cust);
}

/* The checkpoint document's position. */
static bool checkpoint(mongoc_client_t *c, char *file, size_t n, int64_t *pos)
{
    bson_t filter = BSON_INITIALIZER, doc;
    bson_iter_t it;
    bool ok;

    BSON_APPEND_UTF8(&filter, "_id", "binlog");
    ok = tu_find_one(c, DB, "_mysync_checkpoints", &filter, &doc);
    if (ok) {
        assert_true(bson_iter_init_find(&it, &doc, "file"));
        snprintf(file, n, "%s", bson_iter_utf8(&it, NULL));
        assert_true(bson_iter_init_find(&it, &doc, "pos"));
        *pos = bson_iter_as_int64(&it);
        bson_destroy(&doc);
    }
    bson_destroy(&filter);
    return ok;
}

static void set_checkpoint(mongoc_client_t *c, const char *file, int64_t pos)
{
    mongoc_collection_t *col = mongoc_client_get_collection(c, DB, "_mysync_checkpoints");
    bson_t sel = BSON_INITIALIZER, upd = BSON_INITIALIZER, set;
    bson_error_t err;

    BSON_APPEND_UTF8(&sel, "_id", "binlog");
    BSON_APPEND_DOCUMENT_BEGIN(&upd, "$set", &set);
    BSON_APPEND_UTF8(&set, "file", file);
    BSON_APPEND_INT64(&set, "pos", pos);
    BSON_APPEND_UTF8(&set, "gtid", "");
    bson_append_document_end(&upd, &set);
    if (!mongoc_collection_update_one(col, &sel, &upd, NULL, NULL, &err)) {
        fail_msg("resetting the checkpoint: %s", err.message);
    }
    bson_destroy(&sel);
    bson_destroy(&upd);
    mongoc_collection_destroy(col);
}

static int64_t count_dead(mongoc_client_t *c, const char *source)
{
    mongoc_collection_t *col = mongoc_client_get_collection(c, DB, "_mysync_dead_letters");
    bson_t q = BSON_INITIALIZER;
    bson_error_t err;
    int64_t n;

    BSON_APPEND_UTF8(&q, "source", source);
    n = mongoc_collection_count_documents(col, &q, NULL, NULL, NULL, &err);
    bson_destroy(&q);
    mongoc_collection_destroy(col);
    return n;
}

/* A report's count, failing with the verify output when it is not want. */
static void expect_count(struct tu_daemon *d, const bson_t *rep, const char *log, const char *table,
                         const char *field, int64_t want)
{
    int64_t got = tu_report_int(rep, table, field);

    if (got != want) {
        char msg[200];
        snprintf(msg, sizeof(msg), "verify %s: %s = %lld, want %lld", table, field, (long long)got,
                 (long long)want);
        fail_msg("%s\n--- verify output ---\n%s", msg, log);
    }
    (void)d;
}

/* mysync verify computes, from the rows as they are now, the documents the strategies write;
 * after the stream they must be the documents in MongoDB. Then damage is found and named. */
static void verify_agrees(struct tu_daemon *d, mongoc_client_t *c)
{
    static const char *const tables[] = {"products", "orders", "customers", "inventory", NULL};
    static const char *const args[] = {"--table",   "products", "--table",   "orders", "--table",
                                       "customers", "--table",  "inventory", NULL};
    bson_t rep, *filter = bson_new(), *upd;
    char *log = NULL;
    int rc = tu_verify(d, args, &rep, &log);
    mongoc_collection_t *orders = mongoc_client_get_collection(c, DB, "orders");
    mongoc_collection_t *products = mongoc_client_get_collection(c, DB, "products");
    const bson_t *doc;
    mongoc_cursor_t *cur;
    bson_iter_t it;
    bson_t oid = BSON_INITIALIZER, pid = BSON_INITIALIZER;

    if (rc != 0) {
        fail_msg("verify after the stream: exit %d\n%s", rc, log);
    }
    for (size_t i = 0; tables[i] != NULL; i++) {
        char name[64];
        snprintf(name, sizeof(name), DB ".%s", tables[i]);
        expect_count(d, &rep, log, name, "missing", 0);
        expect_count(d, &rep, log, name, "different", 0);
        expect_count(d, &rep, log, name, "extra", 0);
        if (tu_report_int(&rep, name, "compared") < 1) {
            fail_msg("verify compared no %s row\n%s", tables[i], log);
        }
    }
    bson_destroy(&rep);
    free(log);

    /* order_items are part of the orders documents: refused, naming the table to verify */
    rc = tu_verify(d, (const char *const[]){"--table", "order_items", NULL}, &rep, &log);
    if (rc != 78 || strstr(log, "orders") == NULL) {
        fail_msg("verify order_items: exit %d, want 78 naming orders\n%s", rc, log);
    }
    bson_destroy(&rep);
    free(log);

    /* an order's status changed and a product deleted behind mysync's back */
    cur = mongoc_collection_find_with_opts(orders, filter, NULL, NULL);
    assert_true(mongoc_cursor_next(cur, &doc));
    assert_true(bson_iter_init_find(&it, doc, "_id"));
    bson_append_iter(&oid, "_id", 3, &it);
    mongoc_cursor_destroy(cur);
    upd = BCON_NEW("$set", "{", "status", BCON_UTF8("tampered"), "}");
    assert_true(mongoc_collection_update_one(orders, &oid, upd, NULL, NULL, NULL));
    cur = mongoc_collection_find_with_opts(products, filter, NULL, NULL);
    assert_true(mongoc_cursor_next(cur, &doc));
    assert_true(bson_iter_init_find(&it, doc, "_id"));
    bson_append_iter(&pid, "_id", 3, &it);
    mongoc_cursor_destroy(cur);
    assert_true(mongoc_collection_delete_one(products, &pid, NULL, NULL, NULL));
    rc = tu_verify(d, (const char *const[]){"--table", "orders", "--table", "products", NULL}, &rep,
                   &log);
    if (rc != 65) {
        fail_msg("verify after damage: exit %d, want 65\n%s", rc, log);
    }
    expect_count(d, &rep, log, DB ".orders", "different", 1);
    expect_count(d, &rep, log, DB ".orders", "missing", 0);
    expect_count(d, &rep, log, DB ".products", "missing", 1);
    expect_count(d, &rep, log, DB ".products", "different", 0);
    if (strstr(log, "\"field\" : \"status\"") == NULL || strstr(log, "tampered") == NULL) {
        fail_msg("the report does not name the status field\n%s", log);
    }
    bson_destroy(&rep);
    free(log);
    bson_destroy(&oid);
    bson_destroy(&pid);
    bson_destroy(upd);
    bson_destroy(filter);
    mongoc_collection_destroy(orders);
    mongoc_collection_destroy(products);
}

static void shop_traffic(const struct tu_target *t)
{
    MYSQL *m = tu_mysql_admin(NULL);
    mongoc_client_t *c = tu_mongo(t);
    struct tu_daemon d;
    char *cfgpath = tu_write_temp(config_yaml);
    char file0[256], file1[256];
    int64_t pos0, pos1;

    decimals_as_strings = t->ferret;
    tu_drop_db(c, DB);
    for (size_t i = 0; schema[i] != NULL; i++) {
        tu_sql(m, schema[i]);
    }
    assert_int_equal(mysql_select_db(m, DB), 0);
    tu_daemon_init(&d, t, DB, DB);
    tu_daemon_config(&d, cfgpath);
    tu_daemon_env(&d, "SYNC_PII_KEY=%s", PII_KEY);
    if (t->ferret) {
        tu_daemon_env(&d, "SYNC_DECIMAL_AS=string"); /* FerretDB v1 has no Decimal128 */
    }
    tu_daemon_start(&d);
    tu_daemon_wait_ready(&d);
    assert_true(checkpoint(c, file0, sizeof(file0), &pos0));

    for (size_t i = 0; steps[i] != NULL; i++) {
        tu_sql(m, steps[i]);
        if (i == KILL_AFTER) {
            /* a crash mid-stream: the restart replays from the checkpoint */
            tu_sleep_ms(300);
            assert_int_equal(tu_daemon_signal(&d, SIGKILL), 128 + SIGKILL);
            tu_daemon_start(&d);
            tu_daemon_wait_ready(&d);
        }
    }
    check_all(&d, c);
    assert_true(count_dead(c, DB ".products") >= 1);
    assert_true(count_dead(c, DB ".order_items") >= 1);

    /* the strategies' indexes exist */
    {
        char *idx = NULL;
        mongoc_collection_t *col = mongoc_client_get_collection(c, DB, "products");
        mongoc_cursor_t *cur = mongoc_collection_find_indexes_with_opts(col, NULL);
        const bson_t *doc;
        bool sku = false;
        while (mongoc_cursor_next(cur, &doc)) {
            idx = bson_as_relaxed_extended_json(doc, NULL);
            sku |= strstr(idx, "\"sku\"") != NULL && strstr(idx, "\"unique\" : true") != NULL;
            if (!sku && strstr(idx, "\"sku\"") != NULL) {
                fprintf(stderr, "sku index: %s\n", idx);
            }
            bson_free(idx);
        }
        mongoc_cursor_destroy(cur);
        mongoc_collection_destroy(col);
        assert_true(sku);
    }

    /* replay everything from the first checkpoint over the result: the same documents */
    assert_int_equal(tu_daemon_signal(&d, SIGTERM), 0);
    assert_true(checkpoint(c, file1, sizeof(file1), &pos1));
    set_checkpoint(c, file0, pos0);
    tu_daemon_start(&d);
    tu_daemon_wait_ready(&d);
    {
        int64_t until = tu_now_ms() + TU_CONVERGE_LIMIT_S * 1000, pos = 0;
        char file[256] = "";
        while (!(strcmp(file, file1) == 0 && pos >= pos1)) {
            if (tu_now_ms() > until) {
                tu_daemon_fail(&d, "the replay did not reach the old checkpoint");
            }
            tu_sleep_ms(100);
            checkpoint(c, file, sizeof(file), &pos);
        }
    }
    check_all(&d, c);
    verify_agrees(&d, c);

    tu_end_run(&d, c, m);
    unlink(cfgpath);
    free(cfgpath);
}

static void shop_traffic_exact_documents(void **state)
{
    (void)state;
    shop_traffic(&tu_java);
}

/* The same traffic into FerretDB v1 (decimals as strings): the same documents. */
static void shop_traffic_on_ferretdb(void **state)
{
    (void)state;
    shop_traffic(&tu_ferret);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(shop_traffic_exact_documents),
        cmocka_unit_test(shop_traffic_on_ferretdb),
    };
    return tu_finish(cmocka_run_group_tests(tests, NULL, NULL));
}

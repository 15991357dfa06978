/* The entity strategies products, orders and inventory: each case is a change in (JSON images)
 * against a fake source (tables of JSON rows), and the operations that get written out, as
 * text, RESOLVE ops replaced by what the strategy's resolve() makes of them (as the pipeline
 * does at write time). Plus the decimal arithmetic the totals use. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mysync/strategy.h"

/* ---- the fake source ---- */

struct ftable {
    const char *name; /* "shop.products" */
    const char *rows; /* JSON array of rows */
};

static const struct ftable source[] = {
    {"shop.products",
     "[{\"id\": 1, \"sku\": \"BK-1\", \"name\": \"Dune\", \"description\": null, \"category_id\": "
     "3, "
     "\"price\": {\"$numberDecimal\": \"9.99\"}, \"currency\": \"EUR\", \"attributes\": "
     "\"{\\\"pages\\\": 412}\", \"status\": \"active\"},"
     " {\"id\": 2, \"sku\": \"BK-2\", \"name\": \"Emma\", \"description\": null, \"category_id\": "
     "4, "
     "\"price\": {\"$numberDecimal\": \"5.00\"}, \"currency\": \"EUR\", \"attributes\": null, "
     "\"status\": \"active\"},"
     " {\"id\": 5, \"sku\": \"\", \"name\": \"bad\", \"category_id\": null, \"price\": null, "
     "\"currency\": null, \"attributes\": null, \"status\": \"draft\"}]"},
    {"shop.categories", "[{\"id\": 3, \"name\": \"Books\", \"parent_id\": null}]"},
    {"shop.inventory",
     "[{\"product_id\": 1, \"warehouse_id\": 1, \"on_hand\": 10, \"reserved\": 2},"
     " {\"product_id\": 1, \"warehouse_id\": 2, \"on_hand\": 5, \"reserved\": 0},"
     " {\"product_id\": 2, \"warehouse_id\": 1, \"on_hand\": -4, \"reserved\": 0}]"},
    {"shop.orders",
     "[{\"id\": 10, \"customer_id\": 7, \"status\": \"new\", \"currency\": \"EUR\"},"
     " {\"id\": 11, \"customer_id\": 8, \"status\": \"paid\", \"currency\": \"EUR\"},"
     " {\"id\": 12, \"customer_id\": 9, \"status\": \"new\", \"currency\": \"EUR\"}]"},
    {"shop.order_items",
     "[{\"id\": 100, \"order_id\": 10, \"product_id\": 1, \"sku\": \"BK-1\", \"qty\": 3, "
     "\"unit_price\": {\"$numberDecimal\": \"19.99\"}},"
     " {\"id\": 101, \"order_id\": 10, \"product_id\": 2, \"sku\": \"BK-2\", \"qty\": 1, "
     "\"unit_price\": {\"$numberDecimal\": \"0.01\"}},"
     " {\"id\": 102, \"order_id\": 11, \"product_id\": 2, \"sku\": \"BK-2\", \"qty\": 2, "
     "\"unit_price\": {\"$numberDecimal\": \"5.00\"}}]"},
};

static bool fake_rows(void *u, const char *db, const char *table, const char *column,
                      const bson_value_t *value, bson_t *out, size_t *n, struct ms_error *err)
{
    char name[200];
    bson_t arr;
    bson_error_t berr;
    bson_iter_t it;

    (void)u;
    *n = 0;
    snprintf(name, sizeof(name), "%s.%s", db, table);
    for (size_t i = 0; i < sizeof(source) / sizeof(source[0]); i++) {
        if (strcmp(source[i].name, name) != 0) {
            continue;
        }
        assert_true(bson_init_from_json(&arr, source[i].rows, -1, &berr));
        assert_true(bson_iter_init(&it, &arr));
        while (bson_iter_next(&it)) {
            bson_t row;
            bson_iter_t v;
            const uint8_t *data;
            uint32_t len;
            char key[16];
            bson_iter_document(&it, &len, &data);
            assert_true(bson_init_static(&row, data, len));
            if (bson_iter_init_find(&v, &row, column)) {
                const bson_value_t *rv = bson_iter_value(&v);
                bson_t a = BSON_INITIALIZER, b = BSON_INITIALIZER;
                bson_append_value(&a, "v", 1, rv);
                bson_append_value(&b, "v", 1, value);
                if (rv->value_type == value->value_type && bson_equal(&a, &b)) {
                    snprintf(key, sizeof(key), "%zu", (*n)++);
                    BSON_APPEND_DOCUMENT(out, key, &row);
                }
                bson_destroy(&a);
                bson_destroy(&b);
            }
        }
        bson_destroy(&arr);
        return true;
    }
    ms_error_set(err, MS_ERR_MYSQL, 1146, "Table '%s' doesn't exist", name);
    return false;
}

/* ---- configuration ---- */

static struct ms_table_cfg tables[5];
static struct ms_config cfg;

static void setup_cfg(int decimal_as)
{
    static const char *const names[][3] = {{"products", "products", NULL},
                                           {"categories", "products", NULL},
                                           {"orders", "orders", NULL},
                                           {"order_items", "orders", NULL},
                                           {"inventory", "inventory", NULL}};
    memset(&cfg, 0, sizeof(cfg));
    memset(tables, 0, sizeof(tables));
    for (size_t i = 0; i < 5; i++) {
        tables[i].name = (char *)names[i][0];
        tables[i].strategy = (char *)names[i][1];
        tables[i].date_as = tables[i].datetime_as = tables[i].time_as = -1;
    }
    cfg.tables = tables;
    cfg.ntables = 5;
    cfg.mysql_database = "shop";
    cfg.collection_products = "products";
    cfg.collection_orders = "orders";
    cfg.collection_customers = "customers";
    cfg.collection_inventory = "inventory";
    cfg.sync_decimal_as = decimal_as;
}

/* ---- cases ---- */

struct shop_case {
    const char *name;
    const struct ms_strategy *s;
    const char *table; /* role = table name */
    enum ms_change_op op;
    const char *before, *after;
    bool complete;
    int decimal_as;
    const char *expect; /* ops, one per line: KIND collection id [doc]; or "ERROR: text" */
};

/* The whole product documents the fake source gives: a product's recomputation (new product,
 * new category, any stock change) writes all of it. */
#define P1_DOC                                                                                     \
    "SET products { \"_id\" : 1 } { \"sku\" : \"BK-1\", \"name\" : \"Dune\", \"description\" : "   \
    "null, \"price\" : { \"$numberDecimal\" : \"9.99\" }, \"currency\" : \"EUR\", \"attributes\" " \
    ": { \"pages\" : 412 }, \"status\" : \"active\", \"category\" : { \"id\" : 3, \"name\" : "     \
    "\"Books\" }, \"stock\" : { \"1\" : 8, \"2\" : 5, \"total\" : 13 } }\n"
#define P2_DOC                                                                                     \
    "SET products { \"_id\" : 2 } { \"sku\" : \"BK-2\", \"name\" : \"Emma\", \"description\" : "   \
    "null, \"price\" : { \"$numberDecimal\" : \"5.00\" }, \"currency\" : \"EUR\", \"attributes\" " \
    ": null, \"status\" : \"active\", \"category\" : { \"id\" : 4, \"name\" : null }, \"stock\" "  \
    ": { \"total\" : 0 } }\n"

#define P      (&ms_strategy_products)
#define O      (&ms_strategy_orders)
#define I      (&ms_strategy_inventory)
#define DEC128 MS_DECIMAL_AS_DECIMAL128

static const struct shop_case cases[] = {
    /* products */
    {"product insert: own columns, then category name and stock from the source", P, "products",
     MS_CHANGE_INSERT, NULL,
     "{\"id\": 1, \"sku\": \"BK-1\", \"name\": \"Dune\", \"description\": null, \"category_id\": "
     "3, "
     "\"price\": {\"$numberDecimal\": \"9.99\"}, \"currency\": \"EUR\", \"attributes\": "
     "\"{\\\"pages\\\": 412}\", \"status\": \"active\"}",
     true, DEC128,
     "SET products { \"_id\" : 1 } { \"sku\" : \"BK-1\", \"name\" : \"Dune\", \"description\" : "
     "null, \"price\" : { \"$numberDecimal\" : \"9.99\" }, \"currency\" : \"EUR\", \"attributes\" "
     ": { \"pages\" : 412 }, \"status\" : \"active\" }\n" P1_DOC},
    {"product without SKU is refused", P, "products", MS_CHANGE_INSERT, NULL,
     "{\"id\": 5, \"sku\": null, \"name\": \"x\", \"category_id\": null, \"price\": null}", true,
     DEC128, "ERROR: product without SKU (column sku is empty)"},
    {"product with an empty SKU is refused", P, "products", MS_CHANGE_UPDATE,
     "{\"id\": 5, \"sku\": \"A\", \"name\": \"x\", \"category_id\": null, \"price\": null}",
     "{\"id\": 5, \"sku\": \"\", \"name\": \"x\", \"category_id\": null, \"price\": null}", true,
     DEC128, "ERROR: product without SKU (column sku is empty)"},
    {"product with a negative price is refused", P, "products", MS_CHANGE_INSERT, NULL,
     "{\"id\": 6, \"sku\": \"Z\", \"price\": {\"$numberDecimal\": \"-1.00\"}}", true, DEC128,
     "ERROR: product with a negative price (column price)"},
    {"product attributes that are not JSON are refused", P, "products", MS_CHANGE_UPDATE,
     "{\"id\": 1, \"sku\": \"BK-1\", \"category_id\": 3, \"attributes\": null}",
     "{\"id\": 1, \"sku\": \"BK-1\", \"category_id\": 3, \"attributes\": \"{pages: }\"}", true,
     DEC128, "ERROR: column attributes does not hold JSON"},
    {"product rename: own columns only (same category)", P, "products", MS_CHANGE_UPDATE,
     "{\"id\": 2, \"sku\": \"BK-2\", \"name\": \"Emma\", \"category_id\": 4}",
     "{\"id\": 2, \"sku\": \"BK-2\", \"name\": \"Emma!\", \"category_id\": 4}", true, DEC128,
     "SET products { \"_id\" : 2 } { \"sku\" : \"BK-2\", \"name\" : \"Emma!\" }\n"},
    {"product moved to another category: the name is looked up", P, "products", MS_CHANGE_UPDATE,
     "{\"id\": 2, \"sku\": \"BK-2\", \"name\": \"Emma\", \"category_id\": 3}",
     "{\"id\": 2, \"sku\": \"BK-2\", \"name\": \"Emma\", \"category_id\": 4}", true, DEC128,
     "SET products { \"_id\" : 2 } { \"sku\" : \"BK-2\", \"name\" : \"Emma\" }\n" P2_DOC},
    {"product MINIMAL update: only what changed", P, "products", MS_CHANGE_UPDATE, "{\"id\": 2}",
     "{\"name\": \"E.\"}", false, DEC128, "SET products { \"_id\" : 2 } { \"name\" : \"E.\" }\n"},
    {"product delete", P, "products", MS_CHANGE_DELETE,
     "{\"id\": 2, \"sku\": \"BK-2\", \"category_id\": 4}", NULL, true, DEC128,
     "DELETE products { \"_id\" : 2 }\n"},
    {"product gone from the source by the time it resolves: nothing more", P, "products",
     MS_CHANGE_INSERT, NULL, "{\"id\": 9, \"sku\": \"G\", \"category_id\": 3}", true, DEC128,
     "SET products { \"_id\" : 9 } { \"sku\" : \"G\" }\n"},
    {"category rename: every product of it", P, "categories", MS_CHANGE_UPDATE,
     "{\"id\": 3, \"name\": \"Books\", \"parent_id\": null}",
     "{\"id\": 3, \"name\": \"Novels\", \"parent_id\": null}", true, DEC128,
     "SET_MANY products { \"category.id\" : 3 } { \"category.name\" : \"Novels\" }\n"},
    {"category insert names products that referred to it", P, "categories", MS_CHANGE_INSERT, NULL,
     "{\"id\": 4, \"name\": \"Classics\", \"parent_id\": 3}", true, DEC128,
     "SET_MANY products { \"category.id\" : 4 } { \"category.name\" : \"Classics\" }\n"},
    {"category delete: its products keep the id, lose the name", P, "categories", MS_CHANGE_DELETE,
     "{\"id\": 3, \"name\": \"Books\", \"parent_id\": null}", NULL, true, DEC128,
     "SET_MANY products { \"category.id\" : 3 } { \"category.name\" : null }\n"},
    {"category MINIMAL update without the name: nothing", P, "categories", MS_CHANGE_UPDATE,
     "{\"id\": 3}", "{\"parent_id\": 1}", false, DEC128, ""},

    /* orders */
    {"order insert: own columns, then its items, counts and exact total", O, "orders",
     MS_CHANGE_INSERT, NULL,
     "{\"id\": 10, \"customer_id\": 7, \"status\": \"new\", \"currency\": \"EUR\"}", true, DEC128,
     "SET orders { \"_id\" : 10 } { \"customer_id\" : 7, \"status\" : \"new\", \"currency\" : "
     "\"EUR\" }\n"
     "SET orders { \"_id\" : 10 } { \"customer_id\" : 7, \"status\" : \"new\", \"currency\" : "
     "\"EUR\", \"items\" : [ { \"item_id\" : 100, \"product_id\" : 1, \"sku\" : \"BK-1\", \"qty\" "
     ": 3, \"unit_price\" : { \"$numberDecimal\" : \"19.99\" }, \"line_total\" : { "
     "\"$numberDecimal\" : \"59.97\" } }, { \"item_id\" : 101, \"product_id\" : 2, \"sku\" : "
     "\"BK-2\", \"qty\" : 1, \"unit_price\" : { \"$numberDecimal\" : \"0.01\" }, \"line_total\" : "
     "{ \"$numberDecimal\" : \"0.01\" } } ], \"item_count\" : 2, \"total\" : { \"$numberDecimal\" "
     ": \"59.98\" } }\n"},
    {"order totals as strings (decimal_as string)", O, "order_items", MS_CHANGE_DELETE,
     "{\"id\": 103, \"order_id\": 11, \"product_id\": 2, \"sku\": \"BK-2\", \"qty\": 1, "
     "\"unit_price\": \"5.00\"}",
     NULL, true, MS_DECIMAL_AS_STRING,
     "SET orders { \"_id\" : 11 } { \"customer_id\" : 8, \"status\" : \"paid\", \"currency\" : "
     "\"EUR\", \"items\" : [ { \"item_id\" : 102, \"product_id\" : 2, \"sku\" : \"BK-2\", \"qty\" "
     ": 2, \"unit_price\" : { \"$numberDecimal\" : \"5.00\" }, \"line_total\" : \"10.00\" } ], "
     "\"item_count\" : 1, \"total\" : \"10.00\" }\n"},
    {"order without items: empty list, zero total", O, "orders", MS_CHANGE_INSERT, NULL,
     "{\"id\": 12, \"customer_id\": 9, \"status\": \"new\", \"currency\": \"EUR\"}", true, DEC128,
     "SET orders { \"_id\" : 12 } { \"customer_id\" : 9, \"status\" : \"new\", \"currency\" : "
     "\"EUR\" }\n"
     "SET orders { \"_id\" : 12 } { \"customer_id\" : 9, \"status\" : \"new\", \"currency\" : "
     "\"EUR\", \"items\" : [  ], \"item_count\" : 0, \"total\" : { \"$numberDecimal\" : \"0\" } "
     "}\n"},
    {"order status change: own columns only", O, "orders", MS_CHANGE_UPDATE,
     "{\"id\": 11, \"customer_id\": 8, \"status\": \"new\", \"currency\": \"EUR\"}",
     "{\"id\": 11, \"customer_id\": 8, \"status\": \"cancelled\", \"currency\": \"EUR\"}", true,
     DEC128,
     "SET orders { \"_id\" : 11 } { \"customer_id\" : 8, \"status\" : \"cancelled\", "
     "\"currency\" : \"EUR\" }\n"},
    {"order delete", O, "orders", MS_CHANGE_DELETE, "{\"id\": 11, \"status\": \"new\"}", NULL, true,
     DEC128, "DELETE orders { \"_id\" : 11 }\n"},
    {"item moved between orders: both recomputed", O, "order_items", MS_CHANGE_UPDATE,
     "{\"id\": 102, \"order_id\": 12, \"product_id\": 2, \"sku\": \"BK-2\", \"qty\": 2, "
     "\"unit_price\": 5}",
     "{\"id\": 102, \"order_id\": 11, \"product_id\": 2, \"sku\": \"BK-2\", \"qty\": 2, "
     "\"unit_price\": 5}",
     true, DEC128,
     "SET orders { \"_id\" : 12 } { \"customer_id\" : 9, \"status\" : \"new\", \"currency\" : "
     "\"EUR\", \"items\" : [  ], \"item_count\" : 0, \"total\" : { \"$numberDecimal\" : \"0\" } "
     "}\n"
     "SET orders { \"_id\" : 11 } { \"customer_id\" : 8, \"status\" : \"paid\", \"currency\" : "
     "\"EUR\", \"items\" : [ { \"item_id\" : 102, \"product_id\" : 2, \"sku\" : \"BK-2\", \"qty\" "
     ": 2, \"unit_price\" : { \"$numberDecimal\" : \"5.00\" }, \"line_total\" : { "
     "\"$numberDecimal\" : \"10.00\" } } ], \"item_count\" : 1, \"total\" : { \"$numberDecimal\" "
     ": \"10.00\" } }\n"},
    {"item of an order the source does not have: nothing written", O, "order_items",
     MS_CHANGE_INSERT, NULL,
     "{\"id\": 200, \"order_id\": 99, \"product_id\": 2, \"sku\": \"BK-2\", \"qty\": 1, "
     "\"unit_price\": 5}",
     true, DEC128, ""},
    {"item with a negative quantity is refused", O, "order_items", MS_CHANGE_INSERT, NULL,
     "{\"id\": 201, \"order_id\": 10, \"product_id\": 2, \"sku\": \"BK-2\", \"qty\": -1, "
     "\"unit_price\": 5}",
     true, DEC128, "ERROR: order item with a negative quantity (column qty)"},
    {"item without an order is refused", O, "order_items", MS_CHANGE_INSERT, NULL,
     "{\"id\": 202, \"order_id\": null, \"product_id\": 2, \"sku\": \"BK-2\", \"qty\": 1, "
     "\"unit_price\": 5}",
     true, DEC128, "ERROR: order item without an order (column order_id is NULL)"},

    /* inventory */
    {"inventory insert: the row's document, then the product's stock", I, "inventory",
     MS_CHANGE_INSERT, NULL,
     "{\"product_id\": 1, \"warehouse_id\": 2, \"on_hand\": 5, \"reserved\": 0, \"updated_at\": "
     "null}",
     true, DEC128,
     "REPLACE inventory { \"_id\" : { \"product_id\" : 1, \"warehouse_id\" : 2 } } { \"_id\" : { "
     "\"product_id\" : 1, \"warehouse_id\" : 2 }, \"product_id\" : 1, \"warehouse_id\" : 2, "
     "\"on_hand\" : 5, \"reserved\" : 0, \"available\" : 5, \"updated_at\" : null }\n" P1_DOC},
    {"stock with a negative row left out (it is dead-lettered when it comes)", I, "inventory",
     MS_CHANGE_DELETE, "{\"product_id\": 2, \"warehouse_id\": 3, \"on_hand\": 1, \"reserved\": 0}",
     NULL, true, DEC128,
     "DELETE inventory { \"_id\" : { \"product_id\" : 2, \"warehouse_id\" : 3 } }\n" P2_DOC},
    {"negative on_hand is refused", I, "inventory", MS_CHANGE_UPDATE,
     "{\"product_id\": 1, \"warehouse_id\": 1, \"on_hand\": 1, \"reserved\": 0}",
     "{\"product_id\": 1, \"warehouse_id\": 1, \"on_hand\": -1, \"reserved\": 0}", true, DEC128,
     "ERROR: inventory row with a negative quantity (on_hand)"},
    {"row moved to another product: both stocks", I, "inventory", MS_CHANGE_UPDATE,
     "{\"product_id\": 2, \"warehouse_id\": 1, \"on_hand\": 3, \"reserved\": 1}",
     "{\"product_id\": 1, \"warehouse_id\": 1, \"on_hand\": 3, \"reserved\": 1}", true, DEC128,
     "DELETE inventory { \"_id\" : { \"product_id\" : 2, \"warehouse_id\" : 1 } }\n"
     "REPLACE inventory { \"_id\" : { \"product_id\" : 1, \"warehouse_id\" : 1 } } { \"_id\" : { "
     "\"product_id\" : 1, \"warehouse_id\" : 1 }, \"product_id\" : 1, \"warehouse_id\" : 1, "
     "\"on_hand\" : 3, \"reserved\" : 1, \"available\" : 2 }\n" P2_DOC P1_DOC},
    {"partial image: re-read the whole row", I, "inventory", MS_CHANGE_UPDATE,
     "{\"product_id\": 1, \"warehouse_id\": 1}", "{\"on_hand\": 4}", false, DEC128,
     "REREAD inventory { \"_id\" : { \"product_id\" : 1, \"warehouse_id\" : 1 } }\n" P1_DOC},
    {"stock of a product the source does not have: nothing", I, "inventory", MS_CHANGE_INSERT, NULL,
     "{\"product_id\": 77, \"warehouse_id\": 1, \"on_hand\": 1, \"reserved\": 0}", true, DEC128,
     "REPLACE inventory { \"_id\" : { \"product_id\" : 77, \"warehouse_id\" : 1 } } { \"_id\" : "
     "{ \"product_id\" : 77, \"warehouse_id\" : 1 }, \"product_id\" : 77, \"warehouse_id\" : 1, "
     "\"on_hand\" : 1, \"reserved\" : 0, \"available\" : 1 }\n"},
};

static const char *kind_name(enum ms_op_kind k)
{
    switch (k) {
    case MS_OP_REPLACE:
        return "REPLACE";
    case MS_OP_SET:
        return "SET";
    case MS_OP_DELETE:
        return "DELETE";
    case MS_OP_REREAD:
        return "REREAD";
    case MS_OP_SET_MANY:
        return "SET_MANY";
    case MS_OP_RESOLVE:
        return "RESOLVE";
    }
    return "?";
}

static void print_op(bson_string_t *s, const struct ms_op *op)
{
    char *id = bson_as_relaxed_extended_json(&op->id, NULL);
    bson_string_append_printf(s, "%s %s %s", kind_name(op->kind), op->collection, id);
    bson_free(id);
    if (!bson_empty(&op->doc)) {
        char *doc = bson_as_relaxed_extended_json(&op->doc, NULL);
        bson_string_append_printf(s, " %s", doc);
        bson_free(doc);
    }
    bson_string_append(s, "\n");
}

static void parse(const char *json, bson_t *out)
{
    bson_error_t berr;

    if (!bson_init_from_json(out, json, -1, &berr)) {
        fail_msg("bad JSON in a case: %s: %s", berr.message, json);
    }
}

static void run_case(const struct shop_case *c)
{
    const char *pk[] = {"id"};
    const char *ipk[] = {"product_id", "warehouse_id"};
    bool inv = c->s == I;
    struct ms_change chg = {.op = c->op,
                            .db = "shop",
                            .table = c->table,
                            .role = c->table,
                            .after_complete = c->complete,
                            .position = "bin.000001:4",
                            .pk = inv ? ipk : pk,
                            .npk = inv ? 2 : 1};
    struct ms_lookup lk = {.rows = fake_rows};
    struct ms_error err = {0};
    struct ms_ops ops;
    bson_t before, after;
    bson_string_t *got = bson_string_new(NULL);
    void *ctx = NULL;

    setup_cfg(c->decimal_as);
    for (size_t i = 0; i < cfg.ntables; i++) {
        if (strcmp(cfg.tables[i].name, c->table) == 0) {
            chg.tcfg = &cfg.tables[i];
        }
    }
    if (c->before != NULL) {
        parse(c->before, &before);
        chg.before = &before;
    }
    if (c->after != NULL) {
        parse(c->after, &after);
        chg.after = &after;
    }
    assert_true(c->s->init(&ctx, &cfg, &err));
    ms_ops_init(&ops);
    if (!c->s->validate(ctx, &chg, &err) || !c->s->map(ctx, &chg, &ops, &err)) {
        bson_string_append_printf(got, "ERROR: %s", err.msg);
    } else {
        for (size_t i = 0; i < ops.n; i++) {
            if (ops.v[i].kind != MS_OP_RESOLVE) {
                print_op(got, &ops.v[i]);
                continue;
            }
            struct ms_ops res;
            ms_ops_init(&res);
            if (!c->s->resolve(ctx, &ops.v[i], &lk, &res, &err)) {
                bson_string_append_printf(got, "RESOLVE ERROR: %s\n", err.msg);
            }
            for (size_t k = 0; k < res.n; k++) {
                print_op(got, &res.v[k]);
            }
            ms_ops_cleanup(&res);
        }
    }
    if (strncmp(c->expect, "ERROR: ", 7) == 0 ? strncmp(got->str, c->expect, strlen(c->expect))
                                              : strcmp(got->str, c->expect)) {
        fail_msg("case '%s':\n--- expected\n%s\n--- got\n%s", c->name, c->expect, got->str);
    }
    bson_string_free(got, true);
    ms_ops_cleanup(&ops);
    c->s->destroy(ctx);
    if (c->before != NULL) {
        bson_destroy(&before);
    }
    if (c->after != NULL) {
        bson_destroy(&after);
    }
}

static void shop_cases(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        run_case(&cases[i]);
    }
}

/* ---- decimals ---- */

struct dec_case {
    const char *a, *op, *b, *expect; /* expect NULL: the operation must refuse (overflow) */
};

static const struct dec_case dec_cases[] = {
    {"19.99", "*", "3", "59.97"},
    {"59.97", "+", "0.01", "59.98"},
    {"0.1", "+", "0.2", "0.3"},
    {"-1.50", "*", "2", "-3.00"},
    {"1E+2", "+", "1", "101"},
    {"0.000", "+", "5", "5.000"},
    {"12345678901234567890", "*", "12345678901234567890", NULL},
    {"99999999999999999999999999999999999999", "+", "1", NULL},
    {"1.005", "*", "1000", "1005.000"},
};

static void decimals(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(dec_cases) / sizeof(dec_cases[0]); i++) {
        const struct dec_case *c = &dec_cases[i];
        bson_value_t va = {.value_type = BSON_TYPE_UTF8}, vb = {.value_type = BSON_TYPE_UTF8};
        struct ms_decimal a, b, r;
        char out[64];
        bool ok;

        va.value.v_utf8.str = (char *)c->a;
        va.value.v_utf8.len = (uint32_t)strlen(c->a);
        vb.value.v_utf8.str = (char *)c->b;
        vb.value.v_utf8.len = (uint32_t)strlen(c->b);
        assert_true(ms_decimal_from_value(&va, &a));
        assert_true(ms_decimal_from_value(&vb, &b));
        ok = c->op[0] == '*' ? ms_decimal_mul(&a, &b, &r) : ms_decimal_add(&a, &b, &r);
        if (c->expect == NULL) {
            if (ok) {
                fail_msg("%s %s %s should overflow", c->a, c->op, c->b);
            }
            continue;
        }
        assert_true(ok);
        ms_decimal_to_string(&r, out, sizeof(out));
        if (strcmp(out, c->expect) != 0) {
            fail_msg("%s %s %s = %s, expected %s", c->a, c->op, c->b, out, c->expect);
        }
    }
    /* doubles through their shortest text, Decimal128 and refusals */
    bson_value_t d = {.value_type = BSON_TYPE_DOUBLE};
    struct ms_decimal x;
    char out[64];
    d.value.v_double = 0.1;
    assert_true(ms_decimal_from_value(&d, &x));
    ms_decimal_to_string(&x, out, sizeof(out));
    assert_string_equal(out, "0.1");
    d.value_type = BSON_TYPE_DECIMAL128;
    assert_true(bson_decimal128_from_string("NaN", &d.value.v_decimal128));
    assert_false(ms_decimal_from_value(&d, &x));
    assert_true(bson_decimal128_from_string("-0.0050", &d.value.v_decimal128));
    assert_true(ms_decimal_from_value(&d, &x));
    ms_decimal_to_string(&x, out, sizeof(out));
    assert_string_equal(out, "-0.0050");
    d.value_type = BSON_TYPE_BOOL;
    assert_false(ms_decimal_from_value(&d, &x));
}

/* a role the strategy does not have is refused at init */
static void bad_role(void **state)
{
    struct ms_error err = {0};
    void *ctx = NULL;

    (void)state;
    setup_cfg(DEC128);
    tables[3].role = "lines";
    snprintf(tables[3].where, sizeof(tables[3].where), "cfg.yaml:9:3");
    assert_false(ms_strategy_orders.init(&ctx, &cfg, &err));
    assert_non_null(
        strstr(err.msg, "cfg.yaml:9:3: tables.order_items.role: 'lines' is not a role"));
    tables[3].role = NULL;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(shop_cases),
        cmocka_unit_test(decimals),
        cmocka_unit_test(bad_role),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

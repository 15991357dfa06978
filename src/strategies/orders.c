/* The orders strategy: orders(id, customer_id, status, currency, placed_at, updated_at) +
 * order_items(id, order_id, product_id, sku, qty, unit_price) ->
 *   {_id, customer_id, status, currency, placed_at, updated_at,
 *    items: [{item_id, product_id, sku, qty, unit_price, line_total}], item_count, total}
 * (column names configurable: tables.<t>.columns; other columns go in as they are).
 *
 * An order's own columns are $set from its event. items, item_count (the number of lines) and
 * total (the sum of qty x unit_price, exact) are recomputed from the source's order_items rows
 * of that order whenever one of them changes, or when the order itself arrives: a value, never
 * a delta, so replays and any order of parent and child events converge, and items that
 * arrive before their order are not lost (the order's arrival reads them again). A
 * recomputation for an order the source no longer has writes nothing (its delete removes the
 * document). */
#include "mysync/strategy.h"
#include "shop.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const roles[] = {"orders", "order_items", NULL};

/* Lines per order a recomputation reads (the pipeline's lookup limit applies too). */
struct orders {
    const struct ms_config *cfg;
};

static bool orders_init(void **ctx, const struct ms_config *cfg, struct ms_error *err)
{
    struct orders *o;

    if (!shop_check_roles(cfg, &ms_strategy_orders, err)) {
        return false;
    }
    o = calloc(1, sizeof(*o));
    if (o == NULL) {
        ms_error_set(err, MS_ERR_SYSTEM, 12, "out of memory");
        return false;
    }
    o->cfg = cfg;
    *ctx = o;
    return true;
}

static void orders_destroy(void *ctx)
{
    free(ctx);
}

static const char *collection(const struct orders *o)
{
    return shop_collection(o->cfg, "orders", "orders", o->cfg->collection_orders);
}

static const char *orders_collection(void *ctx, const struct ms_table_cfg *tcfg, const char *role)
{
    (void)tcfg;
    return strcmp(role, "orders") == 0 ? collection(ctx) : NULL;
}

static bool is_items(const struct ms_change *c)
{
    return strcmp(c->role, "order_items") == 0;
}

/* An item's quantities: qty and unit_price not negative. */
static bool item_valid(const bson_t *row, const struct ms_table_cfg *tcfg, struct ms_error *err)
{
    const char *c_qty = ms_strategy_column(tcfg, "qty");
    const char *c_price = ms_strategy_column(tcfg, "unit_price");
    bson_iter_t it;
    struct ms_decimal d;

    if (shop_has_value(row, c_qty, &it) && shop_decimal(&it, &d) && ms_decimal_sign(&d) < 0) {
        ms_error_set(err, MS_ERR_STRATEGY, 20, "order item with a negative quantity (column %s)",
                     c_qty);
        return false;
    }
    if (shop_has_value(row, c_price, &it) && shop_decimal(&it, &d) && ms_decimal_sign(&d) < 0) {
        ms_error_set(err, MS_ERR_STRATEGY, 21, "order item with a negative unit price (column %s)",
                     c_price);
        return false;
    }
    return true;
}

static bool orders_validate(void *ctx, const struct ms_change *c, struct ms_error *err)
{
    const char *c_id = ms_strategy_column(c->tcfg, "id");
    bson_iter_t it;

    (void)ctx;
    if (!shop_has_value(c->op == MS_CHANGE_INSERT ? c->after : c->before, c_id, &it)) {
        ms_error_set(err, MS_ERR_STRATEGY, 10, "%s %s: the row has no %s", c->role, c->table, c_id);
        return false;
    }
    if (!is_items(c) || c->op == MS_CHANGE_DELETE) {
        return true;
    }
    if ((c->after_complete || shop_find(c->after, ms_strategy_column(c->tcfg, "order_id"), &it)) &&
        !shop_has_value(c->after, ms_strategy_column(c->tcfg, "order_id"), &it)) {
        ms_error_set(err, MS_ERR_STRATEGY, 22, "order item without an order (column %s is NULL)",
                     ms_strategy_column(c->tcfg, "order_id"));
        return false;
    }
    return item_valid(c->after, c->tcfg, err);
}

static bool add_resolve(struct orders *o, struct ms_ops *out, const char *db,
                        const bson_value_t *order_id, const char *kind, const bson_value_t *item_id)
{
    struct ms_op *op = ms_ops_add(out, MS_OP_RESOLVE, collection(o));

    if (op == NULL) {
        return false;
    }
    if (order_id != NULL) {
        bson_append_value(&op->id, "_id", 3, order_id);
    } else {
        BSON_APPEND_NULL(&op->id, "_id"); /* found through the item */
    }
    BSON_APPEND_UTF8(&op->doc, "db", db);
    BSON_APPEND_UTF8(&op->doc, "kind", kind);
    if (item_id != NULL) {
        bson_append_value(&op->doc, "item", 4, item_id);
    }
    return true;
}

static const char *const own_skip[] = {"id", NULL};

static bool map_order(struct orders *o, const struct ms_change *c, struct ms_ops *out,
                      struct ms_error *err)
{
    const char *c_id = ms_strategy_column(c->tcfg, "id");
    bson_iter_t old_id, new_id;
    struct ms_op *op;
    bool key_changed = false;

    if (c->op == MS_CHANGE_DELETE) {
        shop_find(c->before, c_id, &old_id);
        op = ms_ops_add(out, MS_OP_DELETE, collection(o));
        bson_append_iter(&op->id, "_id", 3, &old_id);
        return true;
    }
    if (c->op == MS_CHANGE_UPDATE) {
        shop_find(c->before, c_id, &old_id);
        if (shop_find(c->after, c_id, &new_id) &&
            !shop_value_equal(bson_iter_value(&old_id), bson_iter_value(&new_id))) {
            key_changed = true;
            op = ms_ops_add(out, MS_OP_DELETE, collection(o));
            bson_append_iter(&op->id, "_id", 3, &old_id);
        } else {
            new_id = old_id;
        }
    } else {
        shop_find(c->after, c_id, &new_id);
    }
    if (!c->needs_reread) {
        op = ms_ops_add(out, MS_OP_SET, collection(o));
        bson_append_iter(&op->id, "_id", 3, &new_id);
        if (!shop_append_fields(&op->doc, c->after, c->tcfg, own_skip, NULL, o->cfg->sync_pii_key,
                                err)) {
            return false;
        }
        if (bson_empty(&op->doc)) {
            out->n--;
            bson_destroy(&op->id);
            bson_destroy(&op->doc);
        }
    }
    /* a new order (or one that needs a re-read) reads its items: they may have come first */
    if (c->op == MS_CHANGE_INSERT || key_changed || c->needs_reread) {
        return add_resolve(o, out, c->db, bson_iter_value(&new_id), "order", NULL);
    }
    return true;
}

static bool map_item(struct orders *o, const struct ms_change *c, struct ms_ops *out)
{
    const char *c_oid = ms_strategy_column(c->tcfg, "order_id");
    const char *c_id = ms_strategy_column(c->tcfg, "id");
    bson_iter_t before_oid, after_oid, iid;
    bool hb = shop_has_value(c->before, c_oid, &before_oid);
    bool ha = shop_has_value(c->after, c_oid, &after_oid);

    if (hb && ha && !shop_value_equal(bson_iter_value(&before_oid), bson_iter_value(&after_oid))) {
        /* moved to another order: the old order loses it */
        if (!add_resolve(o, out, c->db, bson_iter_value(&before_oid), "order", NULL)) {
            return false;
        }
    }
    if (ha) {
        return add_resolve(o, out, c->db, bson_iter_value(&after_oid), "order", NULL);
    }
    if (hb) {
        /* a delete, or an update whose (MINIMAL) after image leaves order_id out: unchanged */
        return add_resolve(o, out, c->db, bson_iter_value(&before_oid), "order", NULL);
    }
    if (c->op != MS_CHANGE_DELETE &&
        shop_find(c->op == MS_CHANGE_INSERT ? c->after : c->before, c_id, &iid)) {
        /* a MINIMAL image names no order: find it through the item's row (a MINIMAL delete
         * cannot be followed: the orders strategy wants binlog_row_image FULL or NOBLOB) */
        return add_resolve(o, out, c->db, NULL, "item", bson_iter_value(&iid));
    }
    return true;
}

static bool orders_map(void *ctx, const struct ms_change *c, struct ms_ops *out,
                       struct ms_error *err)
{
    struct orders *o = ctx;

    return is_items(c) ? map_item(o, c, out) : map_order(o, c, out, err);
}

/* items, item_count and total from the order's rows of order_items. */
static bool append_items(struct orders *o, bson_t *doc, const bson_t *rows,
                         const struct ms_table_cfg *icfg, struct ms_error *err)
{
    const char *c_id = ms_strategy_column(icfg, "id");
    const char *c_oid = ms_strategy_column(icfg, "order_id");
    const char *c_pid = ms_strategy_column(icfg, "product_id");
    const char *c_sku = ms_strategy_column(icfg, "sku");
    const char *c_qty = ms_strategy_column(icfg, "qty");
    const char *c_price = ms_strategy_column(icfg, "unit_price");
    const char *const skip[] = {"id", "order_id", "product_id", "sku", "qty", "unit_price", NULL};
    struct ms_decimal total = {0, 0};
    bool total_known = true;
    int32_t count = 0;
    bson_t items;
    bson_iter_t r;
    char key[16];

    (void)c_oid;
    BSON_APPEND_ARRAY_BEGIN(doc, "items", &items);
    if (bson_iter_init(&r, rows)) {
        while (bson_iter_next(&r)) {
            const uint8_t *data;
            uint32_t len;
            bson_t row, item;
            bson_iter_t v, qty, price;
            struct ms_decimal dq, dp, line, sum;
            struct ms_error verr = {0};
            bool have_line = false;

            if (!BSON_ITER_HOLDS_DOCUMENT(&r)) {
                continue;
            }
            bson_iter_document(&r, &len, &data);
            if (!bson_init_static(&row, data, len) || !item_valid(&row, icfg, &verr)) {
                continue; /* dead-lettered when it arrived */
            }
            snprintf(key, sizeof(key), "%d", count++);
            BSON_APPEND_DOCUMENT_BEGIN(&items, key, &item);
            const struct {
                const char *field, *col;
            } f[] = {{"item_id", c_id},
                     {"product_id", c_pid},
                     {"sku", c_sku},
                     {"qty", c_qty},
                     {"unit_price", c_price}};
            for (size_t i = 0; i < sizeof(f) / sizeof(f[0]); i++) {
                if (shop_find(&row, f[i].col, &v)) {
                    bson_append_iter(&item, f[i].field, -1, &v);
                } else {
                    BSON_APPEND_NULL(&item, f[i].field);
                }
            }
            if (shop_has_value(&row, c_qty, &qty) && shop_has_value(&row, c_price, &price) &&
                shop_decimal(&qty, &dq) && shop_decimal(&price, &dp) &&
                ms_decimal_mul(&dq, &dp, &line)) {
                have_line = ms_decimal_append(&item, "line_total", &line, o->cfg->sync_decimal_as);
            }
            if (!have_line) {
                BSON_APPEND_NULL(&item, "line_total");
                total_known = false;
            } else if (total_known) {
                if (ms_decimal_add(&total, &line, &sum)) {
                    total = sum;
                } else {
                    total_known = false;
                }
            }
            if (!shop_append_fields(&item, &row, icfg, skip, NULL, o->cfg->sync_pii_key, err)) {
                return false;
            }
            bson_append_document_end(&items, &item);
        }
    }
    bson_append_array_end(doc, &items);
    BSON_APPEND_INT32(doc, "item_count", count);
    if (!total_known || !ms_decimal_append(doc, "total", &total, o->cfg->sync_decimal_as)) {
        BSON_APPEND_NULL(doc, "total");
    }
    return true;
}

static bool orders_resolve(void *ctx, const struct ms_op *rop, const struct ms_lookup *lk,
                           struct ms_ops *out, struct ms_error *err)
{
    struct orders *o = ctx;
    char db[128], table[128], idb[128], itable[128];
    const struct ms_table_cfg *tcfg, *icfg;
    bson_iter_t it, kind, id;
    const char *reqdb;
    bson_t row, items = BSON_INITIALIZER, irow = BSON_INITIALIZER;
    bson_value_t order_id;
    bool found, ok = false;
    size_t n = 0;
    struct ms_op *op;

    if (!bson_iter_init_find(&it, &rop->doc, "db") || !BSON_ITER_HOLDS_UTF8(&it) ||
        !bson_iter_init_find(&kind, &rop->doc, "kind") || !BSON_ITER_HOLDS_UTF8(&kind) ||
        !bson_iter_init_find(&id, &rop->id, "_id")) {
        ms_error_set(err, MS_ERR_STRATEGY, 1, "orders: malformed resolve request");
        return false;
    }
    reqdb = bson_iter_utf8(&it, NULL);
    ms_strategy_role_table(o->cfg, "orders", "orders", reqdb, db, sizeof(db), table, sizeof(table));
    ms_strategy_role_table(o->cfg, "orders", "order_items", reqdb, idb, sizeof(idb), itable,
                           sizeof(itable));
    tcfg = ms_config_table(o->cfg, db, table);
    icfg = ms_config_table(o->cfg, idb, itable);
    bson_value_copy(bson_iter_value(&id), &order_id);
    if (strcmp(bson_iter_utf8(&kind, NULL), "item") == 0) {
        /* which order an item belongs to, from the item's row */
        bson_iter_t item, oid;
        bson_destroy(&irow);
        if (!bson_iter_init_find(&item, &rop->doc, "item") ||
            !shop_lookup_one(lk, idb, itable, ms_strategy_column(icfg, "id"),
                             bson_iter_value(&item), &irow, &found, err)) {
            bson_init(&irow);
            goto done;
        }
        if (!found || !shop_has_value(&irow, ms_strategy_column(icfg, "order_id"), &oid)) {
            ok = true;
            bson_init(&row);
            goto done_row;
        }
        bson_value_destroy(&order_id);
        bson_value_copy(bson_iter_value(&oid), &order_id);
    }
    if (!shop_lookup_one(lk, db, table, ms_strategy_column(tcfg, "id"), &order_id, &row, &found,
                         err)) {
        goto done;
    }
    if (!found) {
        ok = true; /* gone since: its delete event removes the document */
        goto done_row;
    }
    if (!lk->rows(lk->u, idb, itable, ms_strategy_column(icfg, "order_id"), &order_id, &items, &n,
                  err)) {
        goto done_row;
    }
    op = ms_ops_add(out, MS_OP_SET, collection(o));
    bson_append_value(&op->id, "_id", 3, &order_id);
    if (!shop_append_fields(&op->doc, &row, tcfg, own_skip, NULL, o->cfg->sync_pii_key, err) ||
        !append_items(o, &op->doc, &items, icfg, err)) {
        goto done_row;
    }
    ok = true;
done_row:
    bson_destroy(&row);
done:
    bson_value_destroy(&order_id);
    bson_destroy(&items);
    bson_destroy(&irow);
    return ok;
}

static bool orders_indexes(void *ctx, struct ms_index **out, size_t *n, struct ms_error *err)
{
    struct orders *o = ctx;
    static const char *const fields[] = {"customer_id", "placed_at"};
    struct ms_index *v = calloc(2, sizeof(*v));

    if (v == NULL) {
        ms_error_set(err, MS_ERR_SYSTEM, 12, "out of memory");
        return false;
    }
    for (size_t i = 0; i < 2; i++) {
        snprintf(v[i].collection, sizeof(v[i].collection), "%s", collection(o));
        snprintf(v[i].name, sizeof(v[i].name), "%s_1", fields[i]);
        bson_init(&v[i].keys);
        BSON_APPEND_INT32(&v[i].keys, fields[i], 1);
    }
    *out = v;
    *n = 2;
    return true;
}

const struct ms_strategy ms_strategy_orders = {
    .name = "orders",
    .source_tables = roles,
    .init = orders_init,
    .destroy = orders_destroy,
    .validate = orders_validate,
    .map = orders_map,
    .resolve = orders_resolve,
    .indexes = orders_indexes,
    .collection = orders_collection,
};

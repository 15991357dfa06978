/* The inventory strategy: inventory(product_id, warehouse_id, on_hand, reserved, updated_at) ->
 *   inventory: {_id: {product_id, warehouse_id}, product_id, warehouse_id, on_hand, reserved,
 *               available: on_hand - reserved, updated_at}
 *   products:  stock: {<warehouse_id>: available, ..., total: sum}   (when products are
 *              replicated by the products strategy)
 * (column names configurable: tables.<t>.columns; other columns go in as they are).
 *
 * The inventory document is replaced from complete images (a partial image is re-read: available
 * needs both quantities). A product's stock is recomputed from all its inventory rows in the
 * source at write time, so moves between warehouses and replays converge; never a delta. */
#include "mysync/strategy.h"
#include "shop.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const roles[] = {"inventory", NULL};

struct inventory {
    const struct ms_config *cfg;
    bool stock; /* a products table is replicated by the products strategy */
};

static bool inventory_init(void **ctx, const struct ms_config *cfg, struct ms_error *err)
{
    struct inventory *v;

    if (!shop_check_roles(cfg, &ms_strategy_inventory, err)) {
        return false;
    }
    v = calloc(1, sizeof(*v));
    if (v == NULL) {
        ms_error_set(err, MS_ERR_SYSTEM, 12, "out of memory");
        return false;
    }
    v->cfg = cfg;
    for (size_t i = 0; i < cfg->ntables; i++) {
        const struct ms_table_cfg *t = &cfg->tables[i];
        const char *dot = strchr(t->name, '.');
        const char *role = t->role != NULL ? t->role : (dot != NULL ? dot + 1 : t->name);
        if (t->strategy != NULL && strcmp(t->strategy, "products") == 0 &&
            strcmp(role, "products") == 0) {
            v->stock = true;
        }
    }
    *ctx = v;
    return true;
}

static void inventory_destroy(void *ctx)
{
    free(ctx);
}

static const char *collection(const struct inventory *v, const struct ms_table_cfg *tcfg)
{
    return tcfg != NULL && tcfg->collection != NULL ? tcfg->collection
                                                    : v->cfg->collection_inventory;
}

static const char *inventory_collection(void *ctx, const struct ms_table_cfg *tcfg,
                                        const char *role)
{
    (void)role;
    return collection(ctx, tcfg);
}

static const char *products_collection(const struct inventory *v)
{
    return shop_collection(v->cfg, "products", "products", v->cfg->collection_products);
}

static bool inventory_validate(void *ctx, const struct ms_change *c, struct ms_error *err)
{
    const char *cols[] = {ms_strategy_column(c->tcfg, "product_id"),
                          ms_strategy_column(c->tcfg, "warehouse_id")};
    const char *qty[] = {ms_strategy_column(c->tcfg, "on_hand"),
                         ms_strategy_column(c->tcfg, "reserved")};
    const bson_t *img = c->op == MS_CHANGE_INSERT ? c->after : c->before;
    bson_iter_t it;
    struct ms_decimal d;

    (void)ctx;
    for (size_t i = 0; i < 2; i++) {
        /* a MINIMAL before image may carry only a surrogate key: then the after image */
        if (!shop_has_value(img, cols[i], &it) &&
            (c->after == NULL || !shop_has_value(c->after, cols[i], &it)) &&
            (c->after_complete || c->op == MS_CHANGE_DELETE || shop_find(img, cols[i], &it))) {
            ms_error_set(err, MS_ERR_STRATEGY, 30, "inventory row without %s", cols[i]);
            return false;
        }
    }
    if (c->op == MS_CHANGE_DELETE) {
        return true;
    }
    for (size_t i = 0; i < 2; i++) {
        if (shop_has_value(c->after, qty[i], &it) && shop_decimal(&it, &d) &&
            ms_decimal_sign(&d) < 0) {
            ms_error_set(err, MS_ERR_STRATEGY, 31, "inventory row with a negative quantity (%s)",
                         qty[i]);
            return false;
        }
    }
    return true;
}

/* {_id: {product_id, warehouse_id}} of an image; false when it lacks either. */
static bool doc_id(const bson_t *row, const struct ms_table_cfg *tcfg, bson_t *id)
{
    bson_iter_t p, w;
    bson_t sub;

    if (!shop_has_value(row, ms_strategy_column(tcfg, "product_id"), &p) ||
        !shop_has_value(row, ms_strategy_column(tcfg, "warehouse_id"), &w)) {
        return false;
    }
    BSON_APPEND_DOCUMENT_BEGIN(id, "_id", &sub);
    bson_append_iter(&sub, "product_id", -1, &p);
    bson_append_iter(&sub, "warehouse_id", -1, &w);
    bson_append_document_end(id, &sub);
    return true;
}

static bool add_stock(struct inventory *v, struct ms_ops *out, const char *db, const bson_t *row,
                      const struct ms_table_cfg *tcfg)
{
    bson_iter_t p;
    struct ms_op *op;

    if (!v->stock || !shop_has_value(row, ms_strategy_column(tcfg, "product_id"), &p)) {
        return true;
    }
    op = ms_ops_add(out, MS_OP_RESOLVE, products_collection(v));
    if (op == NULL) {
        return false;
    }
    bson_append_iter(&op->id, "_id", 3, &p);
    BSON_APPEND_UTF8(&op->doc, "db", db);
    BSON_APPEND_UTF8(&op->doc, "kind", "stock");
    return true;
}

static bool inventory_map(void *ctx, const struct ms_change *c, struct ms_ops *out,
                          struct ms_error *err)
{
    struct inventory *v = ctx;
    const char *const skip[] = {"product_id", "warehouse_id", "on_hand", "reserved", NULL};
    bson_t old_id = BSON_INITIALIZER, new_id = BSON_INITIALIZER;
    bson_iter_t on, res, p, w;
    struct ms_op *op;
    bool ok = false, have_old, moved;

    have_old = c->before != NULL && doc_id(c->before, c->tcfg, &old_id);
    if (c->op == MS_CHANGE_DELETE) {
        if (have_old) {
            op = ms_ops_add(out, MS_OP_DELETE, collection(v, c->tcfg));
            bson_concat(&op->id, &old_id);
        }
        ok = add_stock(v, out, c->db, c->before, c->tcfg);
        goto done;
    }
    if (!c->after_complete || c->needs_reread) {
        /* available needs both quantities, the _id both key columns: the whole row */
        if (c->npk == 0) {
            ms_error_set(err, MS_ERR_STRATEGY, 32, "inventory: a partial image without a key");
            goto done;
        }
        op = ms_ops_add(out, MS_OP_REREAD, collection(v, c->tcfg));
        if (!ms_strategy_key(c->op == MS_CHANGE_UPDATE ? c->before : c->after, c->pk, c->npk,
                             &op->id)) {
            ms_error_set(err, MS_ERR_STRATEGY, 32, "inventory: the change lacks its key");
            goto done;
        }
        /* a move between products cannot be seen in a partial image: recompute the old one */
        ok = !have_old || add_stock(v, out, c->db, c->before, c->tcfg);
        goto done;
    }
    if (!doc_id(c->after, c->tcfg, &new_id)) {
        ms_error_set(err, MS_ERR_STRATEGY, 30, "inventory row without product_id/warehouse_id");
        goto done;
    }
    moved = have_old && !bson_equal(&old_id, &new_id);
    if (moved) {
        op = ms_ops_add(out, MS_OP_DELETE, collection(v, c->tcfg));
        bson_concat(&op->id, &old_id);
    }
    op = ms_ops_add(out, MS_OP_REPLACE, collection(v, c->tcfg));
    bson_concat(&op->id, &new_id);
    bson_concat(&op->doc, &new_id);
    shop_find(c->after, ms_strategy_column(c->tcfg, "product_id"), &p);
    shop_find(c->after, ms_strategy_column(c->tcfg, "warehouse_id"), &w);
    bson_append_iter(&op->doc, "product_id", -1, &p);
    bson_append_iter(&op->doc, "warehouse_id", -1, &w);
    if (shop_find(c->after, ms_strategy_column(c->tcfg, "on_hand"), &on)) {
        bool hr = shop_find(c->after, ms_strategy_column(c->tcfg, "reserved"), &res);
        bson_append_iter(&op->doc, "on_hand", -1, &on);
        if (hr) {
            bson_append_iter(&op->doc, "reserved", -1, &res);
        }
        shop_append_available(&op->doc, "available", &on, hr ? &res : NULL,
                              v->cfg->sync_decimal_as);
    }
    if (!shop_append_fields(&op->doc, c->after, c->tcfg, skip, NULL, v->cfg->sync_pii_key, err)) {
        goto done;
    }
    if (moved) {
        bson_iter_t op_, np_;
        shop_find(c->before, ms_strategy_column(c->tcfg, "product_id"), &op_);
        np_ = p;
        if (!shop_value_equal(bson_iter_value(&op_), bson_iter_value(&np_)) &&
            !add_stock(v, out, c->db, c->before, c->tcfg)) {
            goto done;
        }
    }
    ok = add_stock(v, out, c->db, c->after, c->tcfg);
done:
    bson_destroy(&old_id);
    bson_destroy(&new_id);
    return ok;
}

/* stock of one product: the whole product document recomputed (the products strategy's), so a
 * product first touched by its stock is complete too; nothing when the product is not in the
 * source (yet: its arrival reads the stock). */
static bool inventory_resolve(void *ctx, const struct ms_op *rop, const struct ms_lookup *lk,
                              struct ms_ops *out, struct ms_error *err)
{
    struct inventory *v = ctx;

    return shop_resolve_product(v->cfg, rop, lk, out, err);
}

static bool inventory_indexes(void *ctx, struct ms_index **out, size_t *n, struct ms_error *err)
{
    struct inventory *v = ctx;
    char db[128], table[128];
    struct ms_index *x = calloc(1, sizeof(*x));

    if (x == NULL) {
        ms_error_set(err, MS_ERR_SYSTEM, 12, "out of memory");
        return false;
    }
    ms_strategy_role_table(v->cfg, "inventory", "inventory", v->cfg->mysql_database, db, sizeof(db),
                           table, sizeof(table));
    snprintf(x->collection, sizeof(x->collection), "%s",
             collection(v, ms_config_table(v->cfg, db, table)));
    snprintf(x->name, sizeof(x->name), "product_id_1");
    bson_init(&x->keys);
    BSON_APPEND_INT32(&x->keys, "product_id", 1);
    *out = x;
    *n = 1;
    return true;
}

const struct ms_strategy ms_strategy_inventory = {
    .name = "inventory",
    .source_tables = roles,
    .init = inventory_init,
    .destroy = inventory_destroy,
    .validate = inventory_validate,
    .map = inventory_map,
    .resolve = inventory_resolve,
    .indexes = inventory_indexes,
    .collection = inventory_collection,
};

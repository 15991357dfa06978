/* The products strategy: products(id, sku, name, description, category_id, price, currency,
 * attributes JSON, status, created_at, updated_at) + categories(id, name, parent_id) ->
 *   {_id, sku, name, description, price, currency, category: {id, name}, attributes: {...},
 *    status, created_at, updated_at, stock: {<warehouse_id>: available, total}}
 * (column names configurable: tables.<t>.columns; other columns of products go in as they are).
 *
 * A product's own columns are $set from its event, so stock (kept by the inventory strategy)
 * and the category survive. What needs other rows is resolved at write time from the source:
 * a new product (or a new category_id) reads its category's name and its inventory; a
 * category insert/rename/delete updates the embedded name in every product of that category
 * (updateMany on category.id). Everything written is a value, never a delta. */
#include "mysync/strategy.h"
#include "shop.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const roles[] = {"products", "categories", NULL};

struct products {
    const struct ms_config *cfg;
};

static bool products_init(void **ctx, const struct ms_config *cfg, struct ms_error *err)
{
    struct products *p;

    if (!shop_check_roles(cfg, &ms_strategy_products, err)) {
        return false;
    }
    p = calloc(1, sizeof(*p));
    if (p == NULL) {
        ms_error_set(err, MS_ERR_SYSTEM, 12, "out of memory");
        return false;
    }
    p->cfg = cfg;
    *ctx = p;
    return true;
}

static void products_destroy(void *ctx)
{
    free(ctx);
}

static const char *collection(const struct products *p)
{
    return shop_collection(p->cfg, "products", "products", p->cfg->collection_products);
}

static const char *products_collection(void *ctx, const struct ms_table_cfg *tcfg, const char *role)
{
    (void)tcfg;
    return strcmp(role, "products") == 0 ? collection(ctx) : NULL;
}

static bool is_categories(const struct ms_change *c)
{
    return strcmp(c->role, "categories") == 0;
}

static bool products_validate(void *ctx, const struct ms_change *c, struct ms_error *err)
{
    const char *c_id = ms_strategy_column(c->tcfg, "id");
    const char *c_sku = ms_strategy_column(c->tcfg, "sku");
    const char *c_price = ms_strategy_column(c->tcfg, "price");
    bson_iter_t it;
    struct ms_decimal d;

    (void)ctx;
    if (!shop_has_value(c->op == MS_CHANGE_INSERT ? c->after : c->before, c_id, &it)) {
        ms_error_set(err, MS_ERR_STRATEGY, 10, "%s %s: the row has no %s", c->role, c->table, c_id);
        return false;
    }
    if (is_categories(c) || c->op == MS_CHANGE_DELETE) {
        return true;
    }
    /* the after image; a partial one is checked for the columns it carries */
    if ((c->after_complete || shop_find(c->after, c_sku, &it)) &&
        (!shop_has_value(c->after, c_sku, &it) || !BSON_ITER_HOLDS_UTF8(&it) ||
         bson_iter_utf8(&it, NULL)[0] == '\0')) {
        ms_error_set(err, MS_ERR_STRATEGY, 11, "product without SKU (column %s is empty)", c_sku);
        return false;
    }
    if (shop_has_value(c->after, c_price, &it) && shop_decimal(&it, &d) &&
        ms_decimal_sign(&d) < 0) {
        ms_error_set(err, MS_ERR_STRATEGY, 12, "product with a negative price (column %s)",
                     c_price);
        return false;
    }
    return true;
}

/* RESOLVE request: {db, kind: "product"} for the product doc {_id} */
static bool add_resolve(struct products *p, struct ms_ops *out, const struct ms_change *c,
                        const bson_iter_t *id)
{
    struct ms_op *op = ms_ops_add(out, MS_OP_RESOLVE, collection(p));

    if (op == NULL) {
        return false;
    }
    bson_append_iter(&op->id, "_id", 3, id);
    BSON_APPEND_UTF8(&op->doc, "db", c->db);
    BSON_APPEND_UTF8(&op->doc, "kind", "product");
    return true;
}

static const char *const own_skip[] = {"id", "category_id", NULL};

static bool map_product(struct products *p, const struct ms_change *c, struct ms_ops *out,
                        struct ms_error *err)
{
    const char *c_id = ms_strategy_column(c->tcfg, "id");
    const char *c_cat = ms_strategy_column(c->tcfg, "category_id");
    bson_iter_t old_id, new_id, ocat, ncat;
    struct ms_op *op;
    bool key_changed = false;

    if (c->op == MS_CHANGE_DELETE) {
        shop_find(c->before, c_id, &old_id);
        op = ms_ops_add(out, MS_OP_DELETE, collection(p));
        bson_append_iter(&op->id, "_id", 3, &old_id);
        return true;
    }
    if (c->op == MS_CHANGE_UPDATE) {
        shop_find(c->before, c_id, &old_id);
        if (shop_find(c->after, c_id, &new_id) &&
            !shop_value_equal(bson_iter_value(&old_id), bson_iter_value(&new_id))) {
            key_changed = true;
            op = ms_ops_add(out, MS_OP_DELETE, collection(p));
            bson_append_iter(&op->id, "_id", 3, &old_id);
        } else {
            new_id = old_id;
        }
    } else {
        shop_find(c->after, c_id, &new_id);
    }
    if (c->needs_reread) {
        op = ms_ops_add(out, MS_OP_REREAD, collection(p));
        bson_append_iter(&op->id, "_id", 3, &new_id);
        return true;
    }
    op = ms_ops_add(out, MS_OP_SET, collection(p));
    bson_append_iter(&op->id, "_id", 3, &new_id);
    if (!shop_append_fields(&op->doc, c->after, c->tcfg, own_skip, "attributes",
                            p->cfg->sync_pii_key, err)) {
        return false;
    }
    if (bson_empty(&op->doc)) {
        /* only the key was in a MINIMAL image: nothing to set */
        out->n--;
        bson_destroy(&op->id);
        bson_destroy(&op->doc);
    }
    /* the category's name and the stock come from other tables */
    bool cat_changed = c->op == MS_CHANGE_INSERT || key_changed;
    if (!cat_changed && shop_find(c->after, c_cat, &ncat)) {
        cat_changed = !shop_find(c->before, c_cat, &ocat) ||
                      !shop_value_equal(bson_iter_value(&ocat), bson_iter_value(&ncat));
    }
    return !cat_changed || add_resolve(p, out, c, &new_id);
}

/* categories: the name embedded in every product of the category */
static bool map_category(struct products *p, const struct ms_change *c, struct ms_ops *out,
                         struct ms_error *err)
{
    const char *c_id = ms_strategy_column(c->tcfg, "id");
    const char *c_name = ms_strategy_column(c->tcfg, "name");
    bson_iter_t oid, nid, name;
    struct ms_op *op;

    (void)err;
    if (c->before != NULL && shop_find(c->before, c_id, &oid) &&
        (c->after == NULL || (shop_find(c->after, c_id, &nid) &&
                              !shop_value_equal(bson_iter_value(&oid), bson_iter_value(&nid))))) {
        /* deleted, or renumbered: its products lose the name */
        op = ms_ops_add(out, MS_OP_SET_MANY, collection(p));
        bson_append_iter(&op->id, "category.id", -1, &oid);
        BSON_APPEND_NULL(&op->doc, "category.name");
    }
    if (c->after == NULL || !shop_find(c->after, c_name, &name)) {
        return true; /* a delete, or a MINIMAL image without the name: it did not change */
    }
    if (!shop_find(c->after, c_id, &nid) && !shop_find(c->before, c_id, &nid)) {
        return true;
    }
    op = ms_ops_add(out, MS_OP_SET_MANY, collection(p));
    bson_append_iter(&op->id, "category.id", -1, &nid);
    bson_append_iter(&op->doc, "category.name", -1, &name);
    return true;
}

static bool products_map(void *ctx, const struct ms_change *c, struct ms_ops *out,
                         struct ms_error *err)
{
    struct products *p = ctx;

    return is_categories(c) ? map_category(p, c, out, err) : map_product(p, c, out, err);
}

static bool products_resolve(void *ctx, const struct ms_op *rop, const struct ms_lookup *lk,
                             struct ms_ops *out, struct ms_error *err)
{
    struct products *p = ctx;
    char db[128], table[128], cdb[128], ctable[128], idb[128], itable[128];
    const struct ms_table_cfg *tcfg, *ccfg, *icfg;
    bson_iter_t it, id, cat;
    const char *reqdb;
    bson_t row, crow, inv = BSON_INITIALIZER, cdoc;
    bool found, cfound = false, ok = false;
    size_t ninv = 0;
    struct ms_op *op;

    if (!bson_iter_init_find(&it, &rop->doc, "db") || !BSON_ITER_HOLDS_UTF8(&it) ||
        !bson_iter_init_find(&id, &rop->id, "_id")) {
        ms_error_set(err, MS_ERR_STRATEGY, 1, "products: malformed resolve request");
        return false;
    }
    reqdb = bson_iter_utf8(&it, NULL);
    ms_strategy_role_table(p->cfg, "products", "products", reqdb, db, sizeof(db), table,
                           sizeof(table));
    ms_strategy_role_table(p->cfg, "products", "categories", reqdb, cdb, sizeof(cdb), ctable,
                           sizeof(ctable));
    ms_strategy_role_table(p->cfg, "inventory", "inventory", reqdb, idb, sizeof(idb), itable,
                           sizeof(itable));
    tcfg = ms_config_table(p->cfg, db, table);
    ccfg = ms_config_table(p->cfg, cdb, ctable);
    icfg = ms_config_table(p->cfg, idb, itable);

    if (!shop_lookup_one(lk, db, table, ms_strategy_column(tcfg, "id"), bson_iter_value(&id), &row,
                         &found, err)) {
        return false;
    }
    bson_init(&crow);
    if (!found) {
        ok = true; /* deleted since: its delete event removes the document */
        goto done;
    }
    {
        /* a row that fails validation now is left alone (it was or will be dead-lettered) */
        struct ms_change chk = {.op = MS_CHANGE_INSERT,
                                .db = db,
                                .table = table,
                                .after = &row,
                                .after_complete = true,
                                .tcfg = tcfg,
                                .role = "products"};
        struct ms_error verr = {0};
        if (!products_validate(ctx, &chk, &verr)) {
            ok = true;
            goto done;
        }
    }
    if (shop_has_value(&row, ms_strategy_column(tcfg, "category_id"), &cat)) {
        bson_destroy(&crow);
        if (!shop_lookup_one(lk, cdb, ctable, ms_strategy_column(ccfg, "id"), bson_iter_value(&cat),
                             &crow, &cfound, err)) {
            goto done;
        }
    }
    if (!lk->rows(lk->u, idb, itable, ms_strategy_column(icfg, "product_id"), bson_iter_value(&id),
                  &inv, &ninv, err)) {
        if (err->retryable) {
            goto done;
        }
        /* no inventory table: products without stock */
        bson_reinit(&inv);
        ninv = 0;
        ms_error_clear(err);
    }
    op = ms_ops_add(out, MS_OP_SET, collection(p));
    bson_append_iter(&op->id, "_id", 3, &id);
    if (!shop_append_fields(&op->doc, &row, tcfg, own_skip, "attributes", p->cfg->sync_pii_key,
                            err)) {
        goto done;
    }
    if (shop_has_value(&row, ms_strategy_column(tcfg, "category_id"), &cat)) {
        bson_iter_t cname;
        BSON_APPEND_DOCUMENT_BEGIN(&op->doc, "category", &cdoc);
        bson_append_iter(&cdoc, "id", 2, &cat);
        if (cfound && shop_find(&crow, ms_strategy_column(ccfg, "name"), &cname)) {
            bson_append_iter(&cdoc, "name", 4, &cname);
        } else {
            BSON_APPEND_NULL(&cdoc, "name");
        }
        bson_append_document_end(&op->doc, &cdoc);
    } else {
        BSON_APPEND_NULL(&op->doc, "category");
    }
    if (!shop_append_stock(&op->doc, "stock", &inv, icfg, p->cfg->sync_decimal_as, err)) {
        goto done;
    }
    ok = true;
done:
    bson_destroy(&row);
    bson_destroy(&crow);
    bson_destroy(&inv);
    return ok;
}

bool shop_resolve_product(const struct ms_config *cfg, const struct ms_op *rop,
                          const struct ms_lookup *lk, struct ms_ops *out, struct ms_error *err)
{
    struct products p = {.cfg = cfg};

    return products_resolve(&p, rop, lk, out, err);
}

static bool products_indexes(void *ctx, struct ms_index **out, size_t *n, struct ms_error *err)
{
    struct products *p = ctx;
    struct ms_index *v = calloc(2, sizeof(*v));

    if (v == NULL) {
        ms_error_set(err, MS_ERR_SYSTEM, 12, "out of memory");
        return false;
    }
    snprintf(v[0].collection, sizeof(v[0].collection), "%s", collection(p));
    snprintf(v[0].name, sizeof(v[0].name), "sku_1");
    bson_init(&v[0].keys);
    BSON_APPEND_INT32(&v[0].keys, "sku", 1);
    v[0].unique = true;
    v[0].sparse = true; /* a product document made by its stock before its own row has no sku */
    snprintf(v[1].collection, sizeof(v[1].collection), "%s", collection(p));
    snprintf(v[1].name, sizeof(v[1].name), "category.id_1");
    bson_init(&v[1].keys);
    BSON_APPEND_INT32(&v[1].keys, "category.id", 1);
    *out = v;
    *n = 2;
    return true;
}

const struct ms_strategy ms_strategy_products = {
    .name = "products",
    .source_tables = roles,
    .init = products_init,
    .destroy = products_destroy,
    .validate = products_validate,
    .map = products_map,
    .resolve = products_resolve,
    .indexes = products_indexes,
    .collection = products_collection,
};

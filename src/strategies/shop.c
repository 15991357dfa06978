/* What the entity strategies share (shop.h): field mapping under configured column names,
 * JSON-in-text columns, stock totals, lookups of one row. */
#include "mysync/strategy.h"
#include "shop.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- shop.h: shared by the entity strategies ------------------------------------------ */

bool shop_find(const bson_t *row, const char *col, bson_iter_t *it)
{
    return row != NULL && bson_iter_init_find(it, row, col);
}

bool shop_has_value(const bson_t *row, const char *col, bson_iter_t *it)
{
    return shop_find(row, col, it) && bson_iter_type(it) != BSON_TYPE_NULL;
}

bool shop_value_equal(const bson_value_t *a, const bson_value_t *b)
{
    bson_t wa = BSON_INITIALIZER, wb = BSON_INITIALIZER;
    bool eq;

    if (a->value_type != b->value_type) {
        return false;
    }
    bson_append_value(&wa, "v", 1, a);
    bson_append_value(&wb, "v", 1, b);
    eq = bson_equal(&wa, &wb);
    bson_destroy(&wa);
    bson_destroy(&wb);
    return eq;
}

bool shop_append_json(bson_t *out, const char *key, const bson_iter_t *it, struct ms_error *err)
{
    bson_t wrapped, sub;
    bson_error_t berr;
    bson_iter_t v;
    bson_string_t *text;
    uint32_t len;
    const char *s;
    bool ok;

    if (bson_iter_type(it) != BSON_TYPE_UTF8) {
        return bson_append_iter(out, key, -1, it); /* native JSON, null, ... */
    }
    s = bson_iter_utf8(it, &len);
    text = bson_string_new("{\"v\": ");
    bson_string_append(text, s);
    bson_string_append(text, "\n}");
    ok = bson_init_from_json(&wrapped, text->str, text->len, &berr);
    bson_string_free(text, true);
    if (!ok || !bson_iter_init_find(&v, &wrapped, "v") || bson_count_keys(&wrapped) != 1) {
        if (ok) {
            bson_destroy(&wrapped);
        }
        ms_error_set(err, MS_ERR_STRATEGY, 3, "column %s does not hold JSON: %.120s", key,
                     ok ? "more than one value" : berr.message);
        return false;
    }
    (void)sub;
    ok = bson_append_iter(out, key, -1, &v);
    bson_destroy(&wrapped);
    return ok;
}

/* The logical name of an actual column (tcfg->columns maps logical -> actual). */
static const char *logical_of(const struct ms_table_cfg *tcfg, const char *col)
{
    if (tcfg != NULL) {
        for (size_t i = 0; i < tcfg->columns.n; i++) {
            if (strcmp(tcfg->columns.v[i].v, col) == 0) {
                return tcfg->columns.v[i].k;
            }
        }
    }
    return col;
}

bool shop_append_fields(bson_t *out, const bson_t *row, const struct ms_table_cfg *tcfg,
                        const char *const *skip, const char *json_field, const char *pii_key,
                        struct ms_error *err)
{
    bson_iter_t it;

    if (!bson_iter_init(&it, row)) {
        return true;
    }
    while (bson_iter_next(&it)) {
        const char *name = logical_of(tcfg, bson_iter_key(&it));
        bool skipped = false;
        enum ms_pii_action act;

        for (size_t i = 0; skip != NULL && skip[i] != NULL; i++) {
            skipped |= strcmp(skip[i], name) == 0;
        }
        if (skipped) {
            continue;
        }
        if (tcfg != NULL && tcfg->exclude.n > 0) {
            for (size_t i = 0; i < tcfg->exclude.n; i++) {
                skipped |= strcmp(tcfg->exclude.v[i], name) == 0 ||
                           strcmp(tcfg->exclude.v[i], bson_iter_key(&it)) == 0;
            }
            if (skipped) {
                continue;
            }
        }
        if (json_field != NULL && strcmp(name, json_field) == 0) {
            if (!shop_append_json(out, name, &it, err)) {
                return false;
            }
            continue;
        }
        act = ms_pii_action(tcfg, name);
        if (act != MS_PII_KEEP) {
            if (!ms_pii_append(out, name, bson_iter_value(&it), act, pii_key,
                               pii_key != NULL ? strlen(pii_key) : 0, err)) {
                return false;
            }
            continue;
        }
        bson_append_iter(out, name, -1, &it);
    }
    return true;
}

bool shop_decimal(const bson_iter_t *it, struct ms_decimal *out)
{
    return ms_decimal_from_value(bson_iter_value((bson_iter_t *)it), out);
}

static bool is_int(const bson_iter_t *it)
{
    return bson_iter_type(it) == BSON_TYPE_INT32 || bson_iter_type(it) == BSON_TYPE_INT64;
}

bool shop_append_available(bson_t *out, const char *key, const bson_iter_t *on_hand,
                           const bson_iter_t *reserved, int decimal_as)
{
    struct ms_decimal a, b, nb, r;

    if (bson_iter_type(on_hand) == BSON_TYPE_NULL) {
        return BSON_APPEND_NULL(out, key);
    }
    if (reserved == NULL || bson_iter_type(reserved) == BSON_TYPE_NULL) {
        return bson_append_iter(out, key, -1, on_hand);
    }
    if (is_int(on_hand) && is_int(reserved)) {
        int64_t v = bson_iter_as_int64(on_hand) - bson_iter_as_int64(reserved);
        return v >= INT32_MIN && v <= INT32_MAX ? BSON_APPEND_INT32(out, key, (int32_t)v)
                                                : BSON_APPEND_INT64(out, key, v);
    }
    if (!shop_decimal(on_hand, &a) || !shop_decimal(reserved, &b)) {
        return BSON_APPEND_NULL(out, key);
    }
    nb = b;
    nb.coef = -nb.coef;
    if (!ms_decimal_add(&a, &nb, &r)) {
        return BSON_APPEND_NULL(out, key);
    }
    return ms_decimal_append(out, key, &r, decimal_as);
}

bool shop_append_stock(bson_t *out, const char *key, const bson_t *rows,
                       const struct ms_table_cfg *inv_tcfg, int decimal_as, struct ms_error *err)
{
    const char *c_wh = ms_strategy_column(inv_tcfg, "warehouse_id");
    const char *c_on = ms_strategy_column(inv_tcfg, "on_hand");
    const char *c_res = ms_strategy_column(inv_tcfg, "reserved");
    struct ms_decimal total = {0, 0};
    bool all_int = true;
    int64_t itotal = 0;
    bson_t stock;
    bson_iter_t r;

    (void)err;
    BSON_APPEND_DOCUMENT_BEGIN(out, key, &stock);
    if (bson_iter_init(&r, rows)) {
        while (bson_iter_next(&r)) {
            bson_t row, one = BSON_INITIALIZER;
            const uint8_t *data;
            uint32_t len;
            bson_iter_t wh, on, res, av;
            char whkey[64];
            struct ms_decimal d, t;

            if (!BSON_ITER_HOLDS_DOCUMENT(&r)) {
                continue;
            }
            bson_iter_document(&r, &len, &data);
            if (!bson_init_static(&row, data, len) || !shop_has_value(&row, c_wh, &wh) ||
                !shop_find(&row, c_on, &on)) {
                continue;
            }
            bool have_res = shop_find(&row, c_res, &res);
            if ((shop_decimal(&on, &d) && ms_decimal_sign(&d) < 0) ||
                (have_res && shop_decimal(&res, &d) && ms_decimal_sign(&d) < 0)) {
                continue; /* dead-lettered when it arrived */
            }
            if (BSON_ITER_HOLDS_UTF8(&wh)) {
                snprintf(whkey, sizeof(whkey), "%s", bson_iter_utf8(&wh, NULL));
            } else if (is_int(&wh)) {
                snprintf(whkey, sizeof(whkey), "%lld", (long long)bson_iter_as_int64(&wh));
            } else {
                continue;
            }
            if (whkey[0] == '\0' || whkey[0] == '$' || strchr(whkey, '.') != NULL ||
                strcmp(whkey, "total") == 0) {
                continue; /* cannot be a field name */
            }
            shop_append_available(&one, "v", &on, have_res ? &res : NULL, decimal_as);
            if (bson_iter_init_find(&av, &one, "v")) {
                bson_append_iter(&stock, whkey, -1, &av);
                if (is_int(&av)) {
                    itotal += bson_iter_as_int64(&av);
                    d.coef = bson_iter_as_int64(&av);
                    d.exp = 0;
                } else {
                    all_int = false;
                    if (!shop_decimal(&av, &d)) {
                        d.coef = 0;
                        d.exp = 0;
                    }
                }
                if (ms_decimal_add(&total, &d, &t)) {
                    total = t;
                }
            }
            bson_destroy(&one);
        }
    }
    if (all_int) {
        if (itotal >= INT32_MIN && itotal <= INT32_MAX) {
            BSON_APPEND_INT32(&stock, "total", (int32_t)itotal);
        } else {
            BSON_APPEND_INT64(&stock, "total", itotal);
        }
    } else {
        ms_decimal_append(&stock, "total", &total, decimal_as);
    }
    return bson_append_document_end(out, &stock);
}

/* Looks one row up by a column; *found false when there is none. */
bool shop_lookup_one(const struct ms_lookup *lk, const char *db, const char *table, const char *col,
                     const bson_value_t *v, bson_t *row, bool *found, struct ms_error *err)
{
    bson_t rows = BSON_INITIALIZER;
    size_t n = 0;
    bson_iter_t it;

    *found = false;
    if (!lk->rows(lk->u, db, table, col, v, &rows, &n, err)) {
        bson_destroy(&rows);
        return false;
    }
    if (n > 0 && bson_iter_init_find(&it, &rows, "0") && BSON_ITER_HOLDS_DOCUMENT(&it)) {
        const uint8_t *data;
        uint32_t len;
        bson_iter_document(&it, &len, &data);
        bson_t tmp;
        if (bson_init_static(&tmp, data, len)) {
            bson_copy_to(&tmp, row);
            *found = true;
        }
    }
    bson_destroy(&rows);
    if (!*found) {
        bson_init(row);
    }
    return true;
}

bool shop_check_roles(const struct ms_config *cfg, const struct ms_strategy *s,
                      struct ms_error *err)
{
    for (size_t i = 0; i < cfg->ntables; i++) {
        const struct ms_table_cfg *t = &cfg->tables[i];
        char roles[200] = "";
        bool known = false;

        if (t->strategy == NULL || strcmp(t->strategy, s->name) != 0 || t->role == NULL) {
            continue;
        }
        for (size_t k = 0; s->source_tables[k] != NULL; k++) {
            known |= strcmp(s->source_tables[k], t->role) == 0;
            snprintf(roles + strlen(roles), sizeof(roles) - strlen(roles), "%s%s",
                     k > 0 ? ", " : "", s->source_tables[k]);
        }
        if (!known) {
            ms_error_set(err, MS_ERR_CONFIG, MS_CONFIG_BAD_VALUE,
                         "%s: tables.%s.role: '%s' is not a role of the %s strategy (%s)", t->where,
                         t->name, t->role, s->name, roles);
            return false;
        }
    }
    return true;
}

const char *shop_collection(const struct ms_config *cfg, const char *strategy, const char *role,
                            const char *fallback)
{
    char db[128], table[128];
    const struct ms_table_cfg *t;

    ms_strategy_role_table(cfg, strategy, role, cfg->mysql_database, db, sizeof(db), table,
                           sizeof(table));
    t = ms_config_table(cfg, db, table);
    return t != NULL && t->collection != NULL ? t->collection : fallback;
}

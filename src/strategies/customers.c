/* The customers strategy: customers(id, email, first_name, last_name, phone, address_line1,
 * city, postal_code, country, marketing_opt_in, created_at, updated_at) ->
 *   {_id: id, email, name: {first, last}, phone,
 *    address: {line1, city, postal_code, country}, marketing_opt_in, created_at, updated_at,
 *    <any other column under its own name>}
 * Column names are configurable (tables.<t>.columns: logical -> actual); fields are written in
 * this order, a column the table does not have is left out, a subdocument none of whose
 * columns is there too.
 *   email             lower-cased (ASCII letters; other UTF-8 bytes as they are), then pii,
 *                     so one address always hashes the same
 *   marketing_opt_in  TINYINT 0/1 -> false/true (any non-zero integer: true); NULL stays null
 *   pii               tables.<t>.pii by logical name (email, first_name, phone, ...); `id`
 *                     can only be kept (it is the _id)
 *   exclude           logical or actual names of fields to leave out (not id)
 * A row without a usable email (missing, null, empty, not exactly one '@' with text on both
 * sides) is refused (dead-lettered). Complete image -> REPLACE; partial image -> REREAD (the
 * nested fields need the whole row); delete -> DELETE; a changed id -> DELETE old + the new.
 * Index: email_1 (not unique: the source does not promise it). */
#include "mysync/strategy.h"
#include "shop.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static const char *const roles[] = {"customers", NULL};

/* The document's fields in order: logical column, subdocument (or NULL), field name. */
static const struct field {
    const char *logical, *group, *key;
} fields[] = {
    {"email", NULL, "email"},
    {"first_name", "name", "first"},
    {"last_name", "name", "last"},
    {"phone", NULL, "phone"},
    {"address_line1", "address", "line1"},
    {"city", "address", "city"},
    {"postal_code", "address", "postal_code"},
    {"country", "address", "country"},
    {"marketing_opt_in", NULL, "marketing_opt_in"},
    {"created_at", NULL, "created_at"},
    {"updated_at", NULL, "updated_at"},
};
#define NFIELDS (sizeof(fields) / sizeof(fields[0]))

/* Logical names of the columns the document is built from (the others go in as they are). */
static const char *const own[] = {
    "id",   "email",       "first_name", "last_name",        "phone",      "address_line1",
    "city", "postal_code", "country",    "marketing_opt_in", "created_at", "updated_at",
    NULL};

struct customers {
    const struct ms_config *cfg; /* borrowed; may be NULL */
    const char *pii_key;
    size_t pii_key_len;
};

static bool is_own(const char *logical)
{
    for (size_t i = 0; own[i] != NULL; i++) {
        if (strcmp(own[i], logical) == 0) {
            return true;
        }
    }
    return false;
}

static bool check_entry(const struct ms_config *cfg, const struct ms_table_cfg *t,
                        struct ms_error *err)
{
    static const char *const unused[] = {"include", "rename", "json"};
    const size_t counts[] = {t->include.n, t->rename.n, t->json.n};

    if (t->role != NULL && strcmp(t->role, "customers") != 0) {
        ms_error_set(err, MS_ERR_CONFIG, MS_CONFIG_BAD_VALUE,
                     "%s: tables.%s.role: '%s' is not a role of the customers strategy "
                     "(customers)",
                     t->where, t->name, t->role);
        return false;
    }
    for (size_t i = 0; i < sizeof(counts) / sizeof(counts[0]); i++) {
        if (counts[i] > 0) {
            ms_error_set(err, MS_ERR_CONFIG, MS_CONFIG_BAD_VALUE,
                         "%s: tables.%s.%s: not an option of the customers strategy (columns, "
                         "collection, exclude, pii)",
                         t->where, t->name, unused[i]);
            return false;
        }
    }
    for (size_t i = 0; i < t->columns.n; i++) {
        if (!is_own(t->columns.v[i].k)) {
            ms_error_set(err, MS_ERR_CONFIG, MS_CONFIG_BAD_VALUE,
                         "%s: tables.%s.columns.%s: not a column of the customers strategy (id, "
                         "email, first_name, last_name, phone, address_line1, city, "
                         "postal_code, country, marketing_opt_in, created_at, updated_at)",
                         t->where, t->name, t->columns.v[i].k);
            return false;
        }
    }
    for (size_t i = 0; i < t->pii.n; i++) {
        const char *f = t->pii.v[i].k, *act = t->pii.v[i].v;
        if (strcasecmp(act, "keep") != 0 && strcasecmp(act, "drop") != 0 &&
            strcasecmp(act, "redact") != 0 && strcasecmp(act, "hash") != 0) {
            ms_error_set(err, MS_ERR_CONFIG, MS_CONFIG_BAD_VALUE,
                         "%s: tables.%s.pii.%s: '%s' is not keep, drop, redact or hash", t->where,
                         t->name, f, act);
            return false;
        }
        if (strcmp(f, "id") == 0 && strcasecmp(act, "keep") != 0) {
            ms_error_set(err, MS_ERR_CONFIG, MS_CONFIG_BAD_VALUE,
                         "%s: tables.%s.pii.id: the id is the document's _id: it can only be "
                         "kept",
                         t->where, t->name);
            return false;
        }
        if (strcasecmp(act, "hash") == 0 &&
            (cfg->sync_pii_key == NULL || cfg->sync_pii_key[0] == '\0')) {
            ms_error_set(err, MS_ERR_CONFIG, MS_CONFIG_MISSING,
                         "%s: tables.%s.pii.%s: hash needs a key: set sync.pii_key "
                         "(SYNC_PII_KEY) or sync.pii_key_file",
                         t->where, t->name, f);
            return false;
        }
    }
    return true;
}

static bool is_customers_entry(const struct ms_table_cfg *t)
{
    return t->strategy != NULL && strcmp(t->strategy, "customers") == 0;
}

static bool customers_init(void **ctx, const struct ms_config *cfg, struct ms_error *err)
{
    struct customers *cu;

    *ctx = NULL;
    for (size_t i = 0; cfg != NULL && i < cfg->ntables; i++) {
        if (is_customers_entry(&cfg->tables[i]) && !check_entry(cfg, &cfg->tables[i], err)) {
            return false;
        }
    }
    cu = calloc(1, sizeof(*cu));
    if (cu == NULL) {
        ms_error_set(err, MS_ERR_SYSTEM, 12, "out of memory");
        return false;
    }
    cu->cfg = cfg;
    if (cfg != NULL && cfg->sync_pii_key != NULL) {
        cu->pii_key = cfg->sync_pii_key;
        cu->pii_key_len = strlen(cfg->sync_pii_key);
    }
    *ctx = cu;
    return true;
}

static void customers_destroy(void *ctx)
{
    free(ctx);
}

static const char *default_collection(const struct customers *cu)
{
    return cu->cfg != NULL && cu->cfg->collection_customers != NULL ? cu->cfg->collection_customers
                                                                    : "customers";
}

static const char *collection(const struct customers *cu, const struct ms_table_cfg *tcfg)
{
    return tcfg != NULL && tcfg->collection != NULL ? tcfg->collection : default_collection(cu);
}

static const char *customers_collection(void *ctx, const struct ms_table_cfg *tcfg,
                                        const char *role)
{
    (void)role;
    return collection(ctx, tcfg);
}

/* The id for messages: numbers and strings as they are. */
static void id_text(const bson_iter_t *it, char *out, size_t outsz)
{
    if (BSON_ITER_HOLDS_INT32(it)) {
        snprintf(out, outsz, "%d", (int)bson_iter_int32(it));
    } else if (BSON_ITER_HOLDS_INT64(it)) {
        snprintf(out, outsz, "%lld", (long long)bson_iter_int64(it));
    } else if (BSON_ITER_HOLDS_UTF8(it)) {
        snprintf(out, outsz, "%.64s", bson_iter_utf8(it, NULL));
    } else {
        snprintf(out, outsz, "?");
    }
}

/* NULL when the email is usable, else why not (the value itself stays out of messages). */
static const char *email_problem(const bson_t *row, const char *col)
{
    bson_iter_t it;
    const char *s, *at;
    uint32_t len;

    if (!shop_has_value(row, col, &it) || !BSON_ITER_HOLDS_UTF8(&it)) {
        return "missing";
    }
    s = bson_iter_utf8(&it, &len);
    if (len == 0) {
        return "missing (empty)";
    }
    at = memchr(s, '@', len);
    if (at == NULL || at == s || at == s + len - 1 ||
        memchr(at + 1, '@', len - (size_t)(at + 1 - s)) != NULL) {
        return "invalid (needs exactly one '@' with text on both sides)";
    }
    return NULL;
}

static bool check_email(const struct ms_change *c, const bson_t *row, const bson_iter_t *id,
                        struct ms_error *err)
{
    const char *col = ms_strategy_column(c->tcfg, "email");
    const char *why = email_problem(row, col);
    char idt[80];

    if (why == NULL) {
        return true;
    }
    id_text(id, idt, sizeof(idt));
    ms_error_set(err, MS_ERR_STRATEGY, 30, "customers %s: email %s (column %s of %s.%s)", idt, why,
                 col, c->db, c->table);
    return false;
}

static bool no_id(const struct ms_change *c, struct ms_error *err)
{
    ms_error_set(err, MS_ERR_STRATEGY, 31, "customers: a row of %s.%s has no %s", c->db, c->table,
                 ms_strategy_column(c->tcfg, "id"));
    return false;
}

/* The new id of an insert or update (a MINIMAL after image may leave it out: unchanged). */
static bool new_id(const struct ms_change *c, bson_iter_t *id)
{
    const char *col = ms_strategy_column(c->tcfg, "id");

    return shop_find(c->after, col, id) || shop_find(c->before, col, id);
}

static bool customers_validate(void *ctx, const struct ms_change *c, struct ms_error *err)
{
    const char *c_id = ms_strategy_column(c->tcfg, "id");
    bson_iter_t id, it;

    (void)ctx;
    if (c->op == MS_CHANGE_DELETE) {
        return shop_find(c->before, c_id, &id) || no_id(c, err);
    }
    if (!new_id(c, &id)) {
        return no_id(c, err);
    }
    /* a partial image is checked for the email when it carries it */
    if (c->after_complete || shop_find(c->after, ms_strategy_column(c->tcfg, "email"), &it)) {
        return check_email(c, c->after, &id, err);
    }
    return true;
}

static bool excluded(const struct ms_table_cfg *t, const char *logical)
{
    const char *actual = ms_strategy_column(t, logical);

    for (size_t i = 0; t != NULL && i < t->exclude.n; i++) {
        if (strcmp(t->exclude.v[i], logical) == 0 || strcmp(t->exclude.v[i], actual) == 0) {
            return true;
        }
    }
    return false;
}

/* One field after its conversion and pii action. */
static bool append_one(const struct customers *cu, const struct ms_table_cfg *t, bson_t *out,
                       const struct field *f, const bson_iter_t *it, struct ms_error *err)
{
    bson_value_t v = *bson_iter_value((bson_iter_t *)it);
    char small[256], *lower = NULL;
    bool ok;

    if (strcmp(f->logical, "email") == 0 && v.value_type == BSON_TYPE_UTF8) {
        uint32_t n = v.value.v_utf8.len;
        lower = n < sizeof(small) ? small : malloc(n + 1);
        if (lower == NULL) {
            ms_error_set(err, MS_ERR_SYSTEM, 12, "out of memory");
            return false;
        }
        for (uint32_t i = 0; i < n; i++) {
            char ch = v.value.v_utf8.str[i];
            lower[i] = ch >= 'A' && ch <= 'Z' ? (char)(ch - 'A' + 'a') : ch;
        }
        lower[n] = '\0';
        v.value.v_utf8.str = lower;
    } else if (strcmp(f->logical, "marketing_opt_in") == 0) {
        if (v.value_type == BSON_TYPE_INT32) {
            v.value_type = BSON_TYPE_BOOL;
            v.value.v_bool = bson_iter_int32(it) != 0;
        } else if (v.value_type == BSON_TYPE_INT64) {
            v.value_type = BSON_TYPE_BOOL;
            v.value.v_bool = bson_iter_int64(it) != 0;
        }
    }
    ok = ms_pii_append(out, f->key, &v, ms_pii_action(t, f->logical), cu->pii_key, cu->pii_key_len,
                       err);
    if (lower != small) {
        free(lower);
    }
    return ok;
}

/* The whole document of a complete row. */
static bool build_doc(const struct customers *cu, const struct ms_change *c, bson_t *doc,
                      const bson_iter_t *id, struct ms_error *err)
{
    const struct ms_table_cfg *t = c->tcfg;

    bson_append_iter(doc, "_id", 3, id);
    for (size_t i = 0; i < NFIELDS;) {
        const char *group = fields[i].group;
        bson_t sub = BSON_INITIALIZER, *dst = group != NULL ? &sub : doc;
        size_t j = i;
        bool ok = true;

        /* a field, or the run of fields of one subdocument */
        do {
            bson_iter_t it;
            if (!excluded(t, fields[j].logical) &&
                shop_find(c->after, ms_strategy_column(t, fields[j].logical), &it)) {
                ok = append_one(cu, t, dst, &fields[j], &it, err);
            }
            j++;
        } while (ok && group != NULL && j < NFIELDS && fields[j].group != NULL &&
                 strcmp(fields[j].group, group) == 0);
        if (ok && group != NULL && !bson_empty(&sub)) {
            BSON_APPEND_DOCUMENT(doc, group, &sub);
        }
        bson_destroy(&sub);
        if (!ok) {
            return false;
        }
        i = j;
    }
    return shop_append_fields(doc, c->after, t, own, NULL, cu->pii_key, err);
}

/* Appends an op of {_id: id}; NULL (err set) when out of memory. */
static struct ms_op *add_op(struct ms_ops *out, enum ms_op_kind kind, const char *coll,
                            const bson_iter_t *id, struct ms_error *err)
{
    struct ms_op *op = ms_ops_add(out, kind, coll);

    if (op == NULL) {
        ms_error_set(err, MS_ERR_SYSTEM, 12, "out of memory");
        return NULL;
    }
    bson_append_iter(&op->id, "_id", 3, id);
    return op;
}

static bool customers_map(void *ctx, const struct ms_change *c, struct ms_ops *out,
                          struct ms_error *err)
{
    const struct customers *cu = ctx;
    const char *coll = collection(cu, c->tcfg);
    const char *c_id = ms_strategy_column(c->tcfg, "id");
    bson_iter_t oid, nid;
    struct ms_op *op;
    size_t n0 = out->n;
    bool ok = false;

    if (c->op == MS_CHANGE_DELETE) {
        if (!shop_find(c->before, c_id, &oid)) {
            return no_id(c, err);
        }
        return add_op(out, MS_OP_DELETE, coll, &oid, err) != NULL;
    }
    if (!new_id(c, &nid)) {
        return no_id(c, err);
    }
    if (c->op == MS_CHANGE_UPDATE && shop_find(c->before, c_id, &oid) &&
        !shop_value_equal(bson_iter_value(&oid), bson_iter_value(&nid)) &&
        add_op(out, MS_OP_DELETE, coll, &oid, err) == NULL) {
        goto done;
    }
    if (c->needs_reread || !c->after_complete) {
        /* name and address are subdocuments: a $set of some of their columns would wipe the
         * others, so the whole row is read again */
        ok = add_op(out, MS_OP_REREAD, coll, &nid, err) != NULL;
        goto done;
    }
    /* validate() ran on the change; a re-read row comes back here without it */
    if (!check_email(c, c->after, &nid, err)) {
        goto done;
    }
    op = add_op(out, MS_OP_REPLACE, coll, &nid, err);
    ok = op != NULL && build_doc(cu, c, &op->doc, &nid, err);
done:
    while (!ok && out->n > n0) {
        /* nothing half-done goes out */
        out->n--;
        bson_destroy(&out->v[out->n].id);
        bson_destroy(&out->v[out->n].doc);
    }
    return ok;
}

static bool customers_indexes(void *ctx, struct ms_index **out, size_t *n, struct ms_error *err)
{
    const struct customers *cu = ctx;
    const struct ms_config *cfg = cu->cfg;
    size_t cap = 1 + (cfg != NULL ? cfg->ntables : 0), k = 0;
    struct ms_index *v = calloc(cap, sizeof(*v));

    if (v == NULL) {
        ms_error_set(err, MS_ERR_SYSTEM, 12, "out of memory");
        return false;
    }
    /* one per collection the customers go to */
    for (size_t i = 0; i <= (cfg != NULL ? cfg->ntables : 0); i++) {
        const char *coll;
        bool seen = false;
        if (cfg != NULL && i < cfg->ntables) {
            if (!is_customers_entry(&cfg->tables[i])) {
                continue;
            }
            coll = collection(cu, &cfg->tables[i]);
        } else if (k == 0) {
            coll = default_collection(cu);
        } else {
            continue;
        }
        for (size_t j = 0; j < k; j++) {
            seen |= strcmp(v[j].collection, coll) == 0;
        }
        if (seen) {
            continue;
        }
        snprintf(v[k].collection, sizeof(v[k].collection), "%s", coll);
        snprintf(v[k].name, sizeof(v[k].name), "email_1");
        bson_init(&v[k].keys);
        BSON_APPEND_INT32(&v[k].keys, "email", 1);
        v[k].unique = false;
        k++;
    }
    *out = v;
    *n = k;
    return true;
}

const struct ms_strategy ms_strategy_customers = {
    .name = "customers",
    .source_tables = roles,
    .init = customers_init,
    .destroy = customers_destroy,
    .validate = customers_validate,
    .map = customers_map,
    .resolve = NULL,
    .indexes = customers_indexes,
    .collection = customers_collection,
};

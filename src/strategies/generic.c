/* The generic strategy: one document per row, in the collection named after the table,
 * _id = primary key. Complete images replace the document; partial images (binlog_row_image
 * MINIMAL or NOBLOB) $set only the columns they carry, so nothing else is overwritten.
 *
 * A table's `tables:` entry (chg->tcfg) shapes the document:
 *   collection  the target collection (default: the table's name)
 *   include     only these columns in the body / exclude: all but these (not both); the key
 *               columns are in _id whatever these say
 *   rename      column -> field path; a dotted path nests ({address: {city}}); the columns of
 *               one subdocument go in in column order, the subdocument where its first column
 *               is. A path that is both a value and a parent, or two columns on one path, is
 *               refused at init; so is an empty segment, a segment starting with '$' and _id.
 *               A column keeps its own name, taken literally (no nesting), when not renamed;
 *               if that name is also a rename's field (or its parent), the row is refused.
 *   json        text columns holding JSON, parsed (a native JSON value passes as it is);
 *               text that is not JSON: the row is refused (dead-lettered)
 *   pii         column -> keep/drop/redact/hash (ms_pii_append, key sync.pii_key), applied
 *               after json; a dropped column is left out like an excluded one (a
 *               subdocument whose columns are all dropped is not written). Key columns can
 *               only be kept: their values are the _id, which is
 *               also how a row is re-read from the source; a key column listed in sync.keys
 *               is refused at init, a primary-key column (known from the events only) makes
 *               every change of the table refused.
 * A partial image $sets the mapped columns it carries, unless one of them nests ($set of
 * {address: {city}} would wipe address.line1): then the row is re-read (MS_OP_REREAD) and
 * mapped again from a complete image. Without an entry (or with one that only names the
 * collection) the document is the row as it is. */
#include "mysync/strategy.h"
#include "shop.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

struct gtable {
    const struct ms_table_cfg *tcfg;
    bool plain;  /* no include, exclude, rename, json or pii: the row as it is */
    bool nested; /* some rename has a dotted path */
    bool pii;    /* some pii action other than keep */
};

struct generic {
    const struct ms_config *cfg; /* borrowed; NULL when init had none */
    struct gtable *t;            /* the entries of cfg->tables with strategy NULL or "generic" */
    size_t nt;
    const char *pii_key; /* borrowed from the configuration */
    size_t pii_key_len;
};

static bool strlist_has(const struct ms_strlist *l, const char *s)
{
    for (size_t i = 0; i < l->n; i++) {
        if (strcmp(l->v[i], s) == 0) {
            return true;
        }
    }
    return false;
}

/* path is prefix[0..plen) followed by '.' */
static bool under(const char *path, const char *prefix, size_t plen)
{
    return strncmp(path, prefix, plen) == 0 && path[plen] == '.';
}

static bool valid_action(const char *v)
{
    static const char *const actions[] = {"keep", "drop", "redact", "hash"};

    for (size_t i = 0; i < sizeof(actions) / sizeof(actions[0]); i++) {
        if (strcasecmp(v, actions[i]) == 0) {
            return true;
        }
    }
    return false;
}

/* "db.table" and "table" name the same table when the table parts agree and at most one
 * names a database. */
static bool same_table(const char *a, const char *b)
{
    const char *da = strchr(a, '.'), *db = strchr(b, '.');

    if (strcmp(a, b) == 0) {
        return true;
    }
    if (da != NULL && db == NULL) {
        return strcmp(da + 1, b) == 0;
    }
    if (db != NULL && da == NULL) {
        return strcmp(db + 1, a) == 0;
    }
    return false;
}

/* Is col one of the columns sync.keys gives table t ("table:col+col")? */
static bool configured_key(const struct ms_config *cfg, const struct ms_table_cfg *t,
                           const char *col)
{
    size_t clen = strlen(col);

    for (size_t i = 0; i < cfg->sync_keys.n; i++) {
        const char *spec = cfg->sync_keys.v[i], *colon = strrchr(spec, ':');
        char name[256];

        if (colon == NULL) {
            continue;
        }
        snprintf(name, sizeof(name), "%.*s", (int)(colon - spec), spec);
        if (!same_table(name, t->name)) {
            continue;
        }
        for (const char *p = colon + 1; *p != '\0';) {
            const char *end = strchr(p, '+');
            size_t n = end != NULL ? (size_t)(end - p) : strlen(p);
            if (n == clen && strncmp(p, col, n) == 0) {
                return true;
            }
            p += n + (end != NULL ? 1 : 0);
        }
    }
    return false;
}

static bool bad_path(const struct ms_table_cfg *t, const char *col, const char *path,
                     const char *why, struct ms_error *err)
{
    ms_error_set(err, MS_ERR_CONFIG, MS_CONFIG_BAD_VALUE, "%s: tables.%s.rename.%s: '%s' %s",
                 t->where, t->name, col, path, why);
    return false;
}

/* Two field paths of the document that cannot both be there (equal, or one the other's
 * parent); a and b name where they come from. */
static bool clash(const struct ms_table_cfg *t, const char *pa, const char *a, const char *pb,
                  const char *b, struct ms_error *err)
{
    size_t la = strlen(pa), lb = strlen(pb);

    if (strcmp(pa, pb) == 0) {
        ms_error_set(err, MS_ERR_CONFIG, MS_CONFIG_BAD_VALUE,
                     "%s: tables.%s.rename: %s and %s both give the field '%s'", t->where, t->name,
                     a, b, pa);
        return true;
    }
    if (la < lb ? under(pb, pa, la) : under(pa, pb, lb)) {
        ms_error_set(err, MS_ERR_CONFIG, MS_CONFIG_BAD_VALUE,
                     "%s: tables.%s.rename: '%s' (%s) is both a value and the parent of '%s' "
                     "(%s)",
                     t->where, t->name, la < lb ? pa : pb, la < lb ? a : b, la < lb ? pb : pa,
                     la < lb ? b : a);
        return true;
    }
    return false;
}

/* Refuses what the generic strategy cannot do with an entry. */
static bool check_table(const struct ms_config *cfg, const struct ms_table_cfg *t,
                        struct ms_error *err)
{
    const struct ms_kvlist *rn = &t->rename;

    if (t->include.n > 0 && t->exclude.n > 0) {
        ms_error_set(err, MS_ERR_CONFIG, MS_CONFIG_BAD_VALUE,
                     "%s: tables.%s: include and exclude cannot both be set (include: only these "
                     "columns; exclude: all but these)",
                     t->where, t->name);
        return false;
    }
    if (t->columns.n > 0) {
        ms_error_set(err, MS_ERR_CONFIG, MS_CONFIG_BAD_VALUE,
                     "%s: tables.%s.columns: the generic strategy takes columns by their own "
                     "names (use rename to name the fields)",
                     t->where, t->name);
        return false;
    }
    for (size_t i = 0; i < rn->n; i++) {
        const char *path = rn->v[i].v, *seg = path;

        if (path[0] == '\0') {
            return bad_path(t, rn->v[i].k, path, "is empty", err);
        }
        for (;;) {
            const char *dot = strchr(seg, '.');
            size_t n = dot != NULL ? (size_t)(dot - seg) : strlen(seg);
            if (n == 0) {
                return bad_path(t, rn->v[i].k, path, "has an empty segment", err);
            }
            if (seg[0] == '$') {
                return bad_path(t, rn->v[i].k, path, "has a segment starting with '$'", err);
            }
            if (seg == path && n == 3 && strncmp(seg, "_id", 3) == 0) {
                return bad_path(t, rn->v[i].k, path, "would replace the _id (the key)", err);
            }
            if (dot == NULL) {
                break;
            }
            seg = dot + 1;
        }
        for (size_t j = 0; j < i; j++) {
            char a[200], b[200];
            snprintf(a, sizeof(a), "column %s", rn->v[j].k);
            snprintf(b, sizeof(b), "column %s", rn->v[i].k);
            if (clash(t, rn->v[j].v, a, path, b, err)) {
                return false;
            }
        }
        /* the included columns that keep their own names are known fields too */
        for (size_t j = 0; j < t->include.n; j++) {
            const char *col = t->include.v[j];
            char a[200], b[200];
            if (ms_kvlist_get(rn, col) != NULL) {
                continue;
            }
            snprintf(a, sizeof(a), "included column %s", col);
            snprintf(b, sizeof(b), "column %s", rn->v[i].k);
            if (clash(t, col, a, path, b, err)) {
                return false;
            }
        }
    }
    for (size_t i = 0; i < t->pii.n; i++) {
        const char *col = t->pii.v[i].k, *act = t->pii.v[i].v;
        if (!valid_action(act)) {
            ms_error_set(err, MS_ERR_CONFIG, MS_CONFIG_BAD_VALUE,
                         "%s: tables.%s.pii.%s: '%s' is not keep, drop, redact or hash", t->where,
                         t->name, col, act);
            return false;
        }
        if (strcasecmp(act, "hash") == 0 &&
            (cfg->sync_pii_key == NULL || cfg->sync_pii_key[0] == '\0')) {
            ms_error_set(err, MS_ERR_CONFIG, MS_CONFIG_MISSING,
                         "%s: tables.%s.pii.%s: hash needs a key: set sync.pii_key "
                         "(SYNC_PII_KEY) or sync.pii_key_file",
                         t->where, t->name, col);
            return false;
        }
        if (strcasecmp(act, "keep") != 0 && configured_key(cfg, t, col)) {
            ms_error_set(err, MS_ERR_CONFIG, MS_CONFIG_BAD_VALUE,
                         "%s: tables.%s.pii.%s: %s is a key column (sync.keys): its value is "
                         "the _id, so it can only be kept",
                         t->where, t->name, col, col);
            return false;
        }
    }
    return true;
}

static void compile_table(const struct ms_table_cfg *t, struct gtable *g)
{
    memset(g, 0, sizeof(*g));
    g->tcfg = t;
    for (size_t i = 0; i < t->rename.n; i++) {
        g->nested |= strchr(t->rename.v[i].v, '.') != NULL;
    }
    for (size_t i = 0; i < t->pii.n; i++) {
        g->pii |= strcasecmp(t->pii.v[i].v, "keep") != 0;
    }
    g->plain =
        t->include.n == 0 && t->exclude.n == 0 && t->rename.n == 0 && t->json.n == 0 && !g->pii;
}

static bool generic_init(void **ctx, const struct ms_config *cfg, struct ms_error *err)
{
    struct generic *gs = calloc(1, sizeof(*gs));

    *ctx = NULL;
    if (gs != NULL && cfg != NULL && cfg->ntables > 0) {
        gs->t = calloc(cfg->ntables, sizeof(*gs->t));
    }
    if (gs == NULL || (cfg != NULL && cfg->ntables > 0 && gs->t == NULL)) {
        free(gs);
        ms_error_set(err, MS_ERR_SYSTEM, 12, "out of memory");
        return false;
    }
    for (size_t i = 0; cfg != NULL && i < cfg->ntables; i++) {
        const struct ms_table_cfg *t = &cfg->tables[i];
        if (t->strategy != NULL && strcmp(t->strategy, "generic") != 0) {
            continue;
        }
        if (!check_table(cfg, t, err)) {
            free(gs->t);
            free(gs);
            return false;
        }
        compile_table(t, &gs->t[gs->nt++]);
    }
    gs->cfg = cfg;
    if (cfg != NULL && cfg->sync_pii_key != NULL) {
        gs->pii_key = cfg->sync_pii_key;
        gs->pii_key_len = strlen(cfg->sync_pii_key);
    }
    *ctx = gs;
    return true;
}

static void generic_destroy(void *ctx)
{
    struct generic *gs = ctx;

    if (gs != NULL) {
        free(gs->t);
        free(gs);
    }
}

static const struct gtable *find_table(const struct generic *gs, const struct ms_table_cfg *t)
{
    for (size_t i = 0; gs != NULL && i < gs->nt; i++) {
        if (gs->t[i].tcfg == t) {
            return &gs->t[i];
        }
    }
    for (size_t i = 0; gs != NULL && i < gs->nt; i++) {
        if (strcmp(gs->t[i].tcfg->name, t->name) == 0) {
            return &gs->t[i];
        }
    }
    return NULL;
}

/* Equal BSON values of the key columns in two images (only columns both carry). */
static bool same_key(const bson_t *a, const bson_t *b, const char *const *pk, size_t npk)
{
    for (size_t i = 0; i < npk; i++) {
        bson_iter_t ia, ib;
        if (!bson_iter_init_find(&ia, a, pk[i]) || !bson_iter_init_find(&ib, b, pk[i])) {
            continue; /* MINIMAL after image: an unchanged key column is absent */
        }
        if (!shop_value_equal(bson_iter_value(&ia), bson_iter_value(&ib))) {
            return false;
        }
    }
    return true;
}

/* doc = {_id: ..., every column of row} */
static void full_doc(bson_t *doc, const bson_t *id, const bson_t *row)
{
    bson_iter_t it;

    bson_concat(doc, id);
    if (bson_iter_init(&it, row)) {
        while (bson_iter_next(&it)) {
            bson_append_iter(doc, bson_iter_key(&it), -1, &it);
        }
    }
}

/* ---- configured mapping --------------------------------------------------------------- */

struct mapping {
    const struct generic *gs;
    const struct ms_table_cfg *t;
    const struct ms_change *c;
    const bson_t *row;
};

/* The column is in the document: included, not excluded, not pii: drop (so a subdocument
 * whose columns are all dropped is not written empty). */
static bool in_body(const struct ms_table_cfg *t, const char *col)
{
    if (t->include.n > 0 ? !strlist_has(&t->include, col) : strlist_has(&t->exclude, col)) {
        return false;
    }
    return t->pii.n == 0 || ms_pii_action(t, col) != MS_PII_DROP;
}

/* The column's value under key: JSON text parsed, then the pii action. */
static bool append_field(const struct mapping *m, bson_t *out, const char *key,
                         const bson_iter_t *it, struct ms_error *err)
{
    const char *col = bson_iter_key(it);
    enum ms_pii_action act = ms_pii_action(m->t, col);
    bson_t parsed = BSON_INITIALIZER;
    bson_iter_t v = *it;
    bool ok = false;

    if (strlist_has(&m->t->json, col)) {
        if (!shop_append_json(&parsed, col, it, err) || !bson_iter_init_find(&v, &parsed, col)) {
            ms_error_prefix(err, "%s.%s at %s", m->c->db, m->c->table,
                            m->c->position != NULL ? m->c->position : "?");
            goto done;
        }
    }
    if (act == MS_PII_KEEP) {
        ok = bson_append_iter(out, key, -1, &v);
    } else {
        ok = ms_pii_append(out, key, bson_iter_value(&v), act, m->gs->pii_key, m->gs->pii_key_len,
                           err);
    }
done:
    bson_destroy(&parsed);
    return ok;
}

/* Does a body column before index upto nest under prefix[0..plen)? Then its group is done. */
static bool group_seen(const struct mapping *m, const char *prefix, size_t plen, size_t upto)
{
    bson_iter_t it;
    size_t i = 0;

    if (!bson_iter_init(&it, m->row)) {
        return false;
    }
    while (i++ < upto && bson_iter_next(&it)) {
        const char *col = bson_iter_key(&it), *path = ms_kvlist_get(&m->t->rename, col);
        if (path != NULL && in_body(m->t, col) && under(path, prefix, plen)) {
            return true;
        }
    }
    return false;
}

/* The subdocument prefix[0..plen) (named prefix[segoff..plen)) with every body column from
 * index first on that nests under it, in column order. */
static bool append_group(const struct mapping *m, bson_t *out, const char *prefix, size_t plen,
                         size_t segoff, size_t first, struct ms_error *err)
{
    bson_t sub;
    bson_iter_t it;
    size_t idx = 0;
    bool ok = true;

    bson_append_document_begin(out, prefix + segoff, (int)(plen - segoff), &sub);
    if (bson_iter_init(&it, m->row)) {
        for (; ok && bson_iter_next(&it); idx++) {
            const char *col = bson_iter_key(&it), *path, *rest, *dot;
            if (idx < first) {
                continue;
            }
            path = ms_kvlist_get(&m->t->rename, col);
            if (path == NULL || !under(path, prefix, plen) || !in_body(m->t, col)) {
                continue;
            }
            rest = path + plen + 1;
            dot = strchr(rest, '.');
            if (dot == NULL) {
                ok = append_field(m, &sub, rest, &it, err);
            } else if (!group_seen(m, path, (size_t)(dot - path), idx)) {
                ok = append_group(m, &sub, path, (size_t)(dot - path), plen + 1, idx, err);
            }
        }
    }
    bson_append_document_end(out, &sub);
    return ok;
}

/* A column that keeps its own name where a rename puts a field (or its parent). */
static const char *collision(const struct ms_table_cfg *t, const char *col)
{
    size_t n = strlen(col);

    for (size_t i = 0; i < t->rename.n; i++) {
        const char *path = t->rename.v[i].v;
        if ((strcmp(path, col) == 0 || under(path, col, n)) && in_body(t, t->rename.v[i].k)) {
            return t->rename.v[i].k;
        }
    }
    return NULL;
}

/* Appends the mapped columns of m->row to out. */
static bool append_body(const struct mapping *m, bson_t *out, struct ms_error *err)
{
    bson_iter_t it;
    size_t idx = 0;
    bool ok = true;

    if (!bson_iter_init(&it, m->row)) {
        return true;
    }
    for (; ok && bson_iter_next(&it); idx++) {
        const char *col = bson_iter_key(&it), *path, *dot, *other;
        if (!in_body(m->t, col)) {
            continue;
        }
        path = ms_kvlist_get(&m->t->rename, col);
        dot = path != NULL ? strchr(path, '.') : NULL;
        other = path == NULL ? collision(m->t, col) : NULL;
        if (other != NULL) {
            ms_error_set(err, MS_ERR_STRATEGY, 6,
                         "%s.%s at %s: column %s and the rename of column %s give the same "
                         "field (tables.%s.rename)",
                         m->c->db, m->c->table, m->c->position != NULL ? m->c->position : "?", col,
                         other, m->t->name);
            return false;
        }
        if (path == NULL) {
            ok = append_field(m, out, col, &it, err);
        } else if (dot == NULL) {
            ok = append_field(m, out, path, &it, err);
        } else if (!group_seen(m, path, (size_t)(dot - path), idx)) {
            ok = append_group(m, out, path, (size_t)(dot - path), 0, idx, err);
        }
    }
    return ok;
}

/* Does a body column of the partial image nest? Its $set would wipe its siblings. */
static bool partial_nests(const struct mapping *m)
{
    bson_iter_t it;

    if (!bson_iter_init(&it, m->row)) {
        return false;
    }
    while (bson_iter_next(&it)) {
        const char *col = bson_iter_key(&it), *path = ms_kvlist_get(&m->t->rename, col);
        if (path != NULL && strchr(path, '.') != NULL && in_body(m->t, col)) {
            return true;
        }
    }
    return false;
}

/* ---- map ------------------------------------------------------------------------------ */

static bool key_error(const struct ms_change *c, struct ms_error *err)
{
    ms_error_set(err, MS_ERR_STRATEGY, 2,
                 "%s.%s: the change at %s does not carry its primary key (%zu column%s)", c->db,
                 c->table, c->position != NULL ? c->position : "?", c->npk, c->npk == 1 ? "" : "s");
    return false;
}

/* Appends an op of id; NULL (err set) when out of memory. */
static struct ms_op *add_op(struct ms_ops *out, enum ms_op_kind kind, const char *coll,
                            const bson_t *id, struct ms_error *err)
{
    struct ms_op *op = ms_ops_add(out, kind, coll);

    if (op == NULL) {
        ms_error_set(err, MS_ERR_SYSTEM, 12, "out of memory");
        return NULL;
    }
    bson_concat(&op->id, id);
    return op;
}

/* Removes the ops from index n0 on. */
static void drop_ops(struct ms_ops *out, size_t n0)
{
    while (out->n > n0) {
        out->n--;
        bson_destroy(&out->v[out->n].id);
        bson_destroy(&out->v[out->n].doc);
    }
}

static bool generic_map(void *ctx, const struct ms_change *c, struct ms_ops *out,
                        struct ms_error *err)
{
    const struct generic *gs = ctx;
    const struct gtable *g = NULL;
    struct gtable local;
    struct mapping m = {.gs = gs, .t = c->tcfg, .c = c};
    bson_t old_id = BSON_INITIALIZER, new_id = BSON_INITIALIZER;
    const char *coll = c->table;
    struct ms_op *op;
    size_t n0 = out->n;
    bool ok = false;

    if (c->npk == 0) {
        ms_error_set(err, MS_ERR_STRATEGY, 1,
                     "%s.%s has no primary key: configure a key for it or leave it out", c->db,
                     c->table);
        return false;
    }
    if (c->tcfg != NULL) {
        if (c->tcfg->collection != NULL) {
            coll = c->tcfg->collection;
        }
        g = find_table(gs, c->tcfg);
        if (g == NULL) {
            /* an entry init did not see: checked and compiled for this change */
            struct ms_config none = {0};
            if (!check_table(gs != NULL && gs->cfg != NULL ? gs->cfg : &none, c->tcfg, err)) {
                return false;
            }
            compile_table(c->tcfg, &local);
            g = &local;
        }
        if (g->plain) {
            g = NULL;
        }
    }
    for (size_t i = 0; g != NULL && g->pii && i < c->npk; i++) {
        if (ms_pii_action(c->tcfg, c->pk[i]) != MS_PII_KEEP) {
            ms_error_set(err, MS_ERR_STRATEGY, 5,
                         "%s.%s: tables.%s.pii.%s: %s is a key column: its value is the _id, so "
                         "it can only be kept",
                         c->db, c->table, c->tcfg->name, c->pk[i], c->pk[i]);
            return false;
        }
    }
    switch (c->op) {
    case MS_CHANGE_DELETE:
        if (!ms_strategy_key(c->before, c->pk, c->npk, &old_id)) {
            ok = key_error(c, err);
            goto done;
        }
        ok = add_op(out, MS_OP_DELETE, coll, &old_id, err) != NULL;
        break;
    case MS_CHANGE_INSERT:
    case MS_CHANGE_UPDATE: {
        const bson_t *keysrc = c->after;
        bool key_changed = false;
        if (c->op == MS_CHANGE_UPDATE) {
            /* the key of a MINIMAL after image may be absent: take it from before */
            if (!ms_strategy_key(c->before, c->pk, c->npk, &old_id)) {
                ok = key_error(c, err);
                goto done;
            }
            key_changed = !same_key(c->before, c->after, c->pk, c->npk);
            if (!key_changed) {
                keysrc = NULL;
                bson_concat(&new_id, &old_id);
            }
        }
        if (keysrc != NULL && !ms_strategy_key(keysrc, c->pk, c->npk, &new_id)) {
            ok = key_error(c, err);
            goto done;
        }
        if (key_changed && add_op(out, MS_OP_DELETE, coll, &old_id, err) == NULL) {
            goto done;
        }
        m.row = c->after;
        if (c->needs_reread || (key_changed && !c->after_complete) ||
            (g != NULL && !c->after_complete && g->nested && partial_nests(&m))) {
            /* the event alone cannot give the new document */
            if (add_op(out, MS_OP_REREAD, coll, &new_id, err) == NULL) {
                goto done;
            }
        } else if (c->after_complete) {
            op = add_op(out, MS_OP_REPLACE, coll, &new_id, err);
            if (op == NULL) {
                goto done;
            }
            if (g == NULL) {
                full_doc(&op->doc, &new_id, c->after);
            } else {
                bson_concat(&op->doc, &new_id);
                if (!append_body(&m, &op->doc, err)) {
                    goto done;
                }
            }
        } else {
            op = add_op(out, MS_OP_SET, coll, &new_id, err);
            if (op == NULL) {
                goto done;
            }
            if (g == NULL) {
                bson_concat(&op->doc, c->after);
            } else {
                if (!append_body(&m, &op->doc, err)) {
                    goto done;
                }
                if (bson_empty(&op->doc)) {
                    /* only columns left out of the document changed: nothing to write */
                    drop_ops(out, out->n - 1);
                }
            }
        }
        ok = true;
        break;
    }
    }
done:
    if (!ok) {
        drop_ops(out, n0); /* nothing half-done goes out */
    }
    bson_destroy(&old_id);
    bson_destroy(&new_id);
    return ok;
}

const struct ms_strategy ms_strategy_generic = {
    .name = "generic",
    .source_tables = NULL,
    .init = generic_init,
    .destroy = generic_destroy,
    .map = generic_map,
    .indexes = NULL,
};

/* The generic strategy: one document per row, in the collection named after the table,
 * _id = primary key. Complete images replace the document; partial images (binlog_row_image
 * MINIMAL or NOBLOB) $set only the columns they carry, so nothing else is overwritten. */
#include "mysync/strategy.h"

#include <stdio.h>
#include <string.h>

static bool generic_init(void **ctx, const struct ms_config *cfg, struct ms_error *err)
{
    (void)cfg;
    (void)err;
    *ctx = NULL;
    return true;
}

static void generic_destroy(void *ctx)
{
    (void)ctx;
}

/* Equal BSON values of the key columns in two images (only columns both carry). */
static bool same_key(const bson_t *a, const bson_t *b, const char *const *pk, size_t npk)
{
    for (size_t i = 0; i < npk; i++) {
        bson_iter_t ia, ib;
        const bson_value_t *va, *vb;
        if (!bson_iter_init_find(&ia, a, pk[i]) || !bson_iter_init_find(&ib, b, pk[i])) {
            continue; /* MINIMAL after image: an unchanged key column is absent */
        }
        va = bson_iter_value(&ia);
        vb = bson_iter_value(&ib);
        if (va->value_type != vb->value_type) {
            return false;
        }
        bson_t wa = BSON_INITIALIZER, wb = BSON_INITIALIZER;
        bool eq;
        bson_append_value(&wa, "v", 1, va);
        bson_append_value(&wb, "v", 1, vb);
        eq = bson_equal(&wa, &wb);
        bson_destroy(&wa);
        bson_destroy(&wb);
        if (!eq) {
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

static bool key_error(const struct ms_change *c, struct ms_error *err)
{
    ms_error_set(err, MS_ERR_STRATEGY, 2,
                 "%s.%s: the change at %s does not carry its primary key (%zu column%s)", c->db,
                 c->table, c->position != NULL ? c->position : "?", c->npk, c->npk == 1 ? "" : "s");
    return false;
}

static bool generic_map(void *ctx, const struct ms_change *c, struct ms_ops *out,
                        struct ms_error *err)
{
    bson_t old_id = BSON_INITIALIZER, new_id = BSON_INITIALIZER;
    struct ms_op *op;
    bool ok = false;

    (void)ctx;
    if (c->npk == 0) {
        ms_error_set(err, MS_ERR_STRATEGY, 1,
                     "%s.%s has no primary key: configure a key for it or leave it out", c->db,
                     c->table);
        return false;
    }
    switch (c->op) {
    case MS_CHANGE_DELETE:
        if (!ms_strategy_key(c->before, c->pk, c->npk, &old_id)) {
            ok = key_error(c, err);
            goto done;
        }
        op = ms_ops_add(out, MS_OP_DELETE, c->table);
        bson_concat(&op->id, &old_id);
        ok = true;
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
        if (key_changed) {
            op = ms_ops_add(out, MS_OP_DELETE, c->table);
            bson_concat(&op->id, &old_id);
        }
        if (c->needs_reread || (key_changed && !c->after_complete)) {
            /* the event alone cannot give the new document */
            op = ms_ops_add(out, MS_OP_REREAD, c->table);
            bson_concat(&op->id, &new_id);
        } else if (c->after_complete) {
            op = ms_ops_add(out, MS_OP_REPLACE, c->table);
            bson_concat(&op->id, &new_id);
            full_doc(&op->doc, &new_id, c->after);
        } else {
            op = ms_ops_add(out, MS_OP_SET, c->table);
            bson_concat(&op->id, &new_id);
            bson_concat(&op->doc, c->after);
        }
        ok = true;
        break;
    }
    }
done:
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

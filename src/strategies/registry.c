#include "mysync/strategy.h"

#include <stdlib.h>
#include <string.h>

static const struct ms_strategy *const registry[] = {
    &ms_strategy_generic,   &ms_strategy_products,  &ms_strategy_orders,
    &ms_strategy_customers, &ms_strategy_inventory, NULL,
};

const struct ms_strategy *const *ms_strategy_all(void)
{
    return registry;
}

const struct ms_strategy *ms_strategy_find(const char *name)
{
    for (size_t i = 0; registry[i] != NULL; i++) {
        if (strcmp(registry[i]->name, name) == 0) {
            return registry[i];
        }
    }
    return NULL;
}

bool ms_strategy_registry_valid(struct ms_error *err)
{
    for (size_t i = 0; registry[i] != NULL; i++) {
        const struct ms_strategy *s = registry[i];
        if (s->name == NULL || s->init == NULL || s->destroy == NULL || s->map == NULL) {
            ms_error_set(err, MS_ERR_STRATEGY, 1, "strategy #%zu is incomplete", i);
            return false;
        }
        for (size_t j = 0; j < i; j++) {
            if (strcmp(registry[j]->name, s->name) == 0) {
                ms_error_set(err, MS_ERR_STRATEGY, 1, "strategy '%s' is registered twice", s->name);
                return false;
            }
        }
    }
    return true;
}

void ms_ops_init(struct ms_ops *ops)
{
    memset(ops, 0, sizeof(*ops));
}

void ms_ops_clear(struct ms_ops *ops)
{
    for (size_t i = 0; i < ops->n; i++) {
        bson_destroy(&ops->v[i].id);
        bson_destroy(&ops->v[i].doc);
    }
    ops->n = 0;
}

void ms_ops_cleanup(struct ms_ops *ops)
{
    ms_ops_clear(ops);
    free(ops->v);
    ops->v = NULL;
    ops->cap = 0;
}

struct ms_op *ms_ops_add(struct ms_ops *ops, enum ms_op_kind kind, const char *collection)
{
    struct ms_op *op;

    if (ops->n == ops->cap) {
        /* not realloc: a bson_t that outgrew its inline buffer points into itself, so it
         * moves only through bson_steal() */
        size_t cap = ops->cap > 0 ? ops->cap * 2 : 8;
        struct ms_op *nv = malloc(cap * sizeof(*nv));
        if (nv == NULL) {
            return NULL;
        }
        for (size_t i = 0; i < ops->n; i++) {
            nv[i].kind = ops->v[i].kind;
            memcpy(nv[i].collection, ops->v[i].collection, sizeof(nv[i].collection));
            bson_steal(&nv[i].id, &ops->v[i].id);
            bson_steal(&nv[i].doc, &ops->v[i].doc);
        }
        free(ops->v);
        ops->v = nv;
        ops->cap = cap;
    }
    op = &ops->v[ops->n++];
    op->kind = kind;
    snprintf(op->collection, sizeof(op->collection), "%s", collection);
    bson_init(&op->id);
    bson_init(&op->doc);
    return op;
}

bool ms_strategy_key(const bson_t *row, const char *const *pk, size_t npk, bson_t *id)
{
    bson_iter_t it;

    if (npk == 0) {
        return false;
    }
    if (npk == 1) {
        if (!bson_iter_init_find(&it, row, pk[0])) {
            return false;
        }
        return bson_append_iter(id, "_id", 3, &it);
    }
    bson_t key;
    BSON_APPEND_DOCUMENT_BEGIN(id, "_id", &key);
    for (size_t i = 0; i < npk; i++) {
        if (!bson_iter_init_find(&it, row, pk[i])) {
            bson_append_document_end(id, &key);
            return false;
        }
        bson_append_iter(&key, pk[i], -1, &it);
    }
    return bson_append_document_end(id, &key);
}

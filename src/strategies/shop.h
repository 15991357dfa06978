/* Private to src/strategies: what the entity strategies (products, orders, inventory, customers)
 * share beyond the public helpers of strategy.h. Not a module header: nothing outside
 * src/strategies includes it. */
#ifndef MYSYNC_STRATEGIES_SHOP_H
#define MYSYNC_STRATEGIES_SHOP_H

#include "mysync/strategy.h"

/* The value of column col in row; false when the image does not carry it. */
bool shop_find(const bson_t *row, const char *col, bson_iter_t *it);
/* Present and not NULL. */
bool shop_has_value(const bson_t *row, const char *col, bson_iter_t *it);
/* Two values equal in type and bytes. */
bool shop_value_equal(const bson_value_t *a, const bson_value_t *b);

/* Appends the columns of row under their logical names (tcfg->columns reversed; other columns
 * under their own names), skipping the logical names in skip (NULL-terminated), parsing the
 * logical column json_field (JSON text -> document; NULL: none) and applying tcfg->pii.
 * false (MS_ERR_STRATEGY) for invalid JSON, (MS_ERR_CONFIG) for pii hash without a key. */
bool shop_append_fields(bson_t *out, const bson_t *row, const struct ms_table_cfg *tcfg,
                        const char *const *skip, const char *json_field, const char *pii_key,
                        struct ms_error *err);

/* Appends key: the JSON text of it parsed (a document or array value passes as is; null stays
 * null). false with MS_ERR_STRATEGY when the text is not JSON. */
bool shop_append_json(bson_t *out, const char *key, const bson_iter_t *it, struct ms_error *err);

/* value as a decimal; false when it is null or not a number. */
bool shop_decimal(const bson_iter_t *it, struct ms_decimal *out);

/* A product's stock from its inventory rows ({"0": row, ...}, as ms_lookup gives them):
 * {<warehouse_id>: on_hand - reserved, ..., total: sum}, appended as key. Rows with a
 * negative quantity are left out (they are dead-lettered when they arrive). */
bool shop_append_stock(bson_t *out, const char *key, const bson_t *rows,
                       const struct ms_table_cfg *inv_tcfg, int decimal_as, struct ms_error *err);

/* available = on_hand - reserved as a value of the columns' kind (integers stay integers). */
bool shop_append_available(bson_t *out, const char *key, const bson_iter_t *on_hand,
                           const bson_iter_t *reserved, int decimal_as);

/* The first row of db.table whose col equals v, into row (initialised here, empty when none;
 * *found says which). false: the lookup failed (err says whether to retry). */
bool shop_lookup_one(const struct ms_lookup *lk, const char *db, const char *table, const char *col,
                     const bson_value_t *v, bson_t *row, bool *found, struct ms_error *err);

/* The products strategy's recomputation of one product document ({_id} of rop, request
 * {db}): its own columns, category {id, name} and stock from the source's current rows, as one
 * $set; nothing when the source has no such (valid) product. The inventory strategy's stock
 * changes use it too, so a product document is whole whichever table touched it first. */
bool shop_resolve_product(const struct ms_config *cfg, const struct ms_op *rop,
                          const struct ms_lookup *lk, struct ms_ops *out, struct ms_error *err);

/* Refuses (MS_ERR_CONFIG) a tables: entry of strategy s whose role s does not have. */
bool shop_check_roles(const struct ms_config *cfg, const struct ms_strategy *s,
                      struct ms_error *err);

/* The collection of a strategy's role table: its tables.<t>.collection, else fallback (the
 * sync.collections.* option). */
const char *shop_collection(const struct ms_config *cfg, const char *strategy, const char *role,
                            const char *fallback);

#endif

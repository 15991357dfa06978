/* Strategies map row changes to MongoDB operations: a vtable and a registry (after redis's
 * ConnectionType / wlroots' *_impl, ../shared/STYLE.md). map() does no I/O, so every
 * strategy is unit-testable without servers; what needs other rows (an order's items, a
 * product's stock, a category's name) is asked for with an MS_OP_RESOLVE operation, which the
 * pipeline hands back to the strategy's resolve() at write time together with a lookup into
 * the source (a fake one in unit tests). Writes stay idempotent under replay: full documents,
 * $set of values or of totals recomputed from the source's rows, never $inc of deltas.
 *
 * Routing: every replicated table has one strategy (tables.<t>.strategy in the config file,
 * SYNC_STRATEGY_<TABLE> in the environment, else generic) and a role inside it (the logical
 * table it plays: "order_items"; default its own name). */
#ifndef MYSYNC_STRATEGY_H
#define MYSYNC_STRATEGY_H

#include <bson/bson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "mysync/config.h"
#include "mysync/error.h"

enum ms_change_op { MS_CHANGE_INSERT = 1, MS_CHANGE_UPDATE = 2, MS_CHANGE_DELETE = 3 };

/* One row change, borrowed by map() for the call. */
struct ms_change {
    enum ms_change_op op;
    const char *db;
    const char *table;
    const bson_t *before;  /* NULL for inserts */
    const bson_t *after;   /* NULL for deletes */
    bool after_complete;   /* the after image holds every column of the table (FULL image) */
    bool needs_reread;     /* a value could not be decoded from the event alone (partial JSON) */
    const char *const *pk; /* primary-key column names, in key order */
    size_t npk;
    const char *position;            /* "file:pos" or GTID, for dead letters and logs */
    const struct ms_table_cfg *tcfg; /* the table's `tables:` entry, or NULL */
    const char *role;                /* the table's role in the strategy (never NULL) */
};

enum ms_op_kind {
    MS_OP_REPLACE = 1,  /* replaceOne({_id}, doc, upsert) */
    MS_OP_SET = 2,      /* updateOne({_id}, {$set: doc}, upsert): only these fields */
    MS_OP_DELETE = 3,   /* deleteOne({_id}) */
    MS_OP_REREAD = 4,   /* read the row by key from the source, then map it again as a complete
                           insert (a row gone since: map it as a delete) */
    MS_OP_SET_MANY = 5, /* updateMany(filter, {$set: doc}), no upsert; filter in `id` */
    MS_OP_RESOLVE = 6,  /* call the strategy's resolve() at write time with doc as the request */
};

struct ms_op {
    enum ms_op_kind kind;
    char collection[128];
    bson_t id;  /* {"_id": value}; SET_MANY: the filter document */
    bson_t doc; /* REPLACE: the whole document incl. _id; SET, SET_MANY: the fields to set;
                   RESOLVE: the strategy's request; else empty */
};

struct ms_ops {
    struct ms_op *v;
    size_t n, cap;
};

void ms_ops_init(struct ms_ops *ops);
void ms_ops_clear(struct ms_ops *ops); /* destroys the ops, keeps the array */
void ms_ops_cleanup(struct ms_ops *ops);
/* Appends an op; id and doc are initialised empty for the caller to fill. NULL when out of
 * memory. */
struct ms_op *ms_ops_add(struct ms_ops *ops, enum ms_op_kind kind, const char *collection);

struct ms_index {
    char collection[128];
    char name[128];
    bson_t keys;
    bool unique;
    bool sparse; /* documents without the field are not indexed (unique only where present) */
};

/* Reads from the source for resolve(): the rows of db.table whose column equals value, in
 * primary-key order, appended to out (initialised by the caller) as {"0": row, "1": row, ...}
 * with the values the binlog decoder would give. *n gets the count. A lookup that fails for
 * now (lost connection) is retried by the pipeline, not by the strategy: return false. */
struct ms_lookup {
    bool (*rows)(void *u, const char *db, const char *table, const char *column,
                 const bson_value_t *value, bson_t *out, size_t *n, struct ms_error *err);
    void *u;
};

struct ms_strategy {
    const char *name;
    /* The roles (logical source tables) it consumes, NULL-terminated; by default the table of
     * a role has the role's name. NULL = any table (generic). */
    const char *const *source_tables;
    /* Reads the configuration (cfg->tables entries naming this strategy; cfg is borrowed for
     * the context's life) and refuses what it cannot use (MS_ERR_CONFIG). */
    bool (*init)(void **ctx, const struct ms_config *cfg, struct ms_error *err);
    void (*destroy)(void *ctx);
    /* A row the strategy cannot take (a product without SKU, a negative quantity): false with
     * MS_ERR_STRATEGY and the reason; the pipeline dead-letters it and goes on. May be NULL. */
    bool (*validate)(void *ctx, const struct ms_change *chg, struct ms_error *err);
    /* Appends the operations of one change. false (MS_ERR_STRATEGY): dead-lettered. */
    bool (*map)(void *ctx, const struct ms_change *chg, struct ms_ops *out, struct ms_error *err);
    /* Turns one MS_OP_RESOLVE op (that map emitted) into operations, reading the source through
     * lk. Lookups see the source as it is now (at or after the change), so what is written is
     * recomputed from current rows: any order of events converges. NULL when map never emits
     * RESOLVE. false with a retryable error: the pipeline retries; otherwise dead-lettered. */
    bool (*resolve)(void *ctx, const struct ms_op *op, const struct ms_lookup *lk,
                    struct ms_ops *out, struct ms_error *err);
    /* Indexes to create at start-up (idempotently); *out is a malloc'ed array the caller frees
     * (bson_destroy of each keys, then free). May be NULL. */
    bool (*indexes)(void *ctx, struct ms_index **out, size_t *n, struct ms_error *err);
    /* The collection whose documents the rows of role (in the table configured by tcfg, may be
     * NULL) are, for a sweep of the documents no row maps to after a re-snapshot: a table with
     * no rows left still names the collection to empty. NULL: documents of other entities
     * (inventory's stock in products). May be NULL. */
    const char *(*collection)(void *ctx, const struct ms_table_cfg *tcfg, const char *role);
};

/* The registry: every strategy, in a fixed order. */
const struct ms_strategy *const *ms_strategy_all(void);
const struct ms_strategy *ms_strategy_find(const char *name);
/* True when names are unique and every entry has name, init, destroy and map. */
bool ms_strategy_registry_valid(struct ms_error *err);

/* Appends {"_id": key} to id from the key columns of row (single column -> its value,
 * composite -> {col: value, ...} in key order); false when a key column is missing. */
bool ms_strategy_key(const bson_t *row, const char *const *pk, size_t npk, bson_t *id);

/* ---- helpers shared by the strategies (src/strategies/common.c) ---- */

/* The actual column name of a logical one: tcfg->columns[logical], else logical. */
const char *ms_strategy_column(const struct ms_table_cfg *tcfg, const char *logical);

/* The table playing role for a strategy: the first cfg->tables entry with that strategy and
 * role (its name, "db.table" split), else the role's own name in default_db. */
void ms_strategy_role_table(const struct ms_config *cfg, const char *strategy, const char *role,
                            const char *default_db, char *db, size_t dbsz, char *table,
                            size_t tablesz);

/* Exact decimal arithmetic for money (line totals, order totals): a coefficient of up to 38
 * digits and a decimal exponent. */
struct ms_decimal {
    __int128 coef;
    int32_t exp; /* value = coef * 10^exp */
};

/* From a Decimal128 (finite), an integer, a decimal string ("12.50", "-3", "1E+2") or a double
 * (through its shortest round-trip text, for decimal_as=double). false for NaN, infinities,
 * other types and more than 38 digits. */
bool ms_decimal_from_value(const bson_value_t *v, struct ms_decimal *out);
/* false on overflow (more than 38 digits). */
bool ms_decimal_add(const struct ms_decimal *a, const struct ms_decimal *b, struct ms_decimal *out);
bool ms_decimal_mul(const struct ms_decimal *a, const struct ms_decimal *b, struct ms_decimal *out);
int ms_decimal_sign(const struct ms_decimal *a);
/* Plain text ("-12.50"); buffer of at least 48 bytes. */
void ms_decimal_to_string(const struct ms_decimal *a, char *out, size_t outsz);
/* Appends the value as sync.decimal_as says (Decimal128, string or double); false when it does
 * not fit a Decimal128 (more than 34 digits). */
bool ms_decimal_append(bson_t *doc, const char *key, const struct ms_decimal *a, int decimal_as);

/* ---- personal data (src/strategies/pii.c) ---- */

/* The action configured for field (tables.<t>.pii), MS_PII_KEEP when none. */
enum ms_pii_action ms_pii_action(const struct ms_table_cfg *tcfg, const char *field);

/* Appends value under key to doc after the action: KEEP as is, DROP nothing, REDACT the string
 * "[REDACTED]", HASH the lower-case hex HMAC-SHA256 (64 characters) under key_bytes of the
 * value's canonical text (strings as they are, numbers in decimal, dates ISO-8601 UTC,
 * binary as bytes). null stays null for every action but DROP. false (MS_ERR_CONFIG) for HASH
 * without a key. */
bool ms_pii_append(bson_t *doc, const char *key, const bson_value_t *value,
                   enum ms_pii_action action, const char *hmac_key, size_t hmac_key_len,
                   struct ms_error *err);

extern const struct ms_strategy ms_strategy_generic;
extern const struct ms_strategy ms_strategy_products;
extern const struct ms_strategy ms_strategy_orders;
extern const struct ms_strategy ms_strategy_customers;
extern const struct ms_strategy ms_strategy_inventory;

#endif

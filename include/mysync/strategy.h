/* Strategies map row changes to MongoDB operations: a vtable and a registry (after redis's
 * ConnectionType / wlroots' *_impl, ../shared/STYLE.md). map() does no I/O, so every
 * strategy is unit-testable without servers. Writes stay idempotent under replay: full
 * documents or $set of values, never $inc of deltas. */
#ifndef MYSYNC_STRATEGY_H
#define MYSYNC_STRATEGY_H

#include <bson/bson.h>
#include <stdbool.h>
#include <stddef.h>

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
    const char *position; /* "file:pos" or GTID, for dead letters and logs */
};

enum ms_op_kind {
    MS_OP_REPLACE = 1, /* replaceOne({_id}, doc, upsert) */
    MS_OP_SET = 2,     /* updateOne({_id}, {$set: doc}, upsert): only the columns present */
    MS_OP_DELETE = 3,  /* deleteOne({_id}) */
    MS_OP_REREAD = 4,  /* read the row by key from the source, then replace (or delete) */
};

struct ms_op {
    enum ms_op_kind kind;
    char collection[128];
    bson_t id;  /* {"_id": value} */
    bson_t doc; /* REPLACE: the whole document incl. _id; SET: the fields to set; else empty */
};

struct ms_ops {
    struct ms_op *v;
    size_t n, cap;
};

void ms_ops_init(struct ms_ops *ops);
void ms_ops_clear(struct ms_ops *ops); /* destroys the ops, keeps the array */
void ms_ops_cleanup(struct ms_ops *ops);
/* Appends an op; id and doc are initialised empty for the caller to fill. */
struct ms_op *ms_ops_add(struct ms_ops *ops, enum ms_op_kind kind, const char *collection);

struct ms_index {
    char collection[128];
    char name[128];
    bson_t keys;
    bool unique;
};

struct ms_strategy {
    const char *name;
    /* Tables the strategy consumes (NULL-terminated); NULL = any table (generic). */
    const char *const *source_tables;
    bool (*init)(void **ctx, const struct ms_config *cfg, struct ms_error *err);
    void (*destroy)(void *ctx);
    bool (*map)(void *ctx, const struct ms_change *chg, struct ms_ops *out, struct ms_error *err);
    /* Indexes to create at start-up (idempotently); out is an array the callee fills. */
    bool (*indexes)(void *ctx, struct ms_index **out, size_t *n, struct ms_error *err);
};

/* The registry: every strategy, in a fixed order. */
const struct ms_strategy *const *ms_strategy_all(void);
const struct ms_strategy *ms_strategy_find(const char *name);
/* True when names are unique and every entry has name, init, destroy and map. */
bool ms_strategy_registry_valid(struct ms_error *err);

/* Appends {"_id": key} to id from the key columns of row (single column -> its value,
 * composite -> {col: value, ...} in key order); false when a key column is missing. */
bool ms_strategy_key(const bson_t *row, const char *const *pk, size_t npk, bson_t *id);

extern const struct ms_strategy ms_strategy_generic;

#endif

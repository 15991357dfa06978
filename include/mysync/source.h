/* Reading rows from the source over SQL, on a connection of its own: the re-read of one row by
 * its key (changes the binlog event alone cannot complete: a partial JSON diff without a before
 * value, a key change under binlog_row_image=MINIMAL), and later snapshots. Values map to BSON
 * exactly as the binlog decoder maps them (README "Type mapping", struct ms_value_opts), so a
 * row read here equals the row decoded from its binlog event. */
#ifndef MYSYNC_SOURCE_H
#define MYSYNC_SOURCE_H

#include <bson/bson.h>
#include <stdbool.h>
#include <stddef.h>

#include "mysync/config.h"
#include "mysync/error.h"
#include "mysync/rows.h"

struct ms_source;

/* Connects lazily, on the first read; cfg and opts are borrowed for the source's life. */
struct ms_source *ms_source_new(const struct ms_config *cfg, const struct ms_value_opts *opts);
void ms_source_destroy(struct ms_source *s);

/* Reads the row of db.table whose primary key equals id ({"_id": value} for a one-column key,
 * {"_id": {col: value, ...}} for a composite one; pk names the key columns in key order).
 * *found = false when there is no such row (it was deleted since). row (initialised by the
 * caller) gets {column: value, ...} for every column, in table order. Errors: retryable for a
 * lost connection; not retryable for an unknown table or a key that does not fit. */
bool ms_source_read_row(struct ms_source *s, const char *db, const char *table,
                        const char *const *pk, size_t npk, const bson_t *id, bson_t *row,
                        bool *found, struct ms_error *err);

/* Forgets cached statements and definitions of db.table (after DDL); NULL table: all of db;
 * NULL db: everything. */
void ms_source_invalidate(struct ms_source *s, const char *db, const char *table);

#endif

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
#include <stdint.h>

#include "mysync/config.h"
#include "mysync/error.h"
#include "mysync/rows.h"

struct ms_source;

/* Connects lazily, on the first read; cfg and opts are borrowed for the source's life (opts
 * NULL: the defaults). A source holds one connection and is used by one thread at a time. */
struct ms_source *ms_source_new(const struct ms_config *cfg, const struct ms_value_opts *opts);
void ms_source_destroy(struct ms_source *s);

/* Reads the row of db.table whose primary key equals id ({"_id": value} for a one-column key,
 * {"_id": {col: value, ...}} for a composite one; pk names the key columns in key order).
 * *found = false when there is no such row (it was deleted since). row (initialised by the
 * caller) gets {column: value, ...} for every column, in table order. Errors: retryable for a
 * lost connection; not retryable for an unknown table or a key that does not fit.
 *
 * Key values are taken as the decoder writes them under the same options (Decimal128 for
 * BIGINT UNSIGNED above 2^63-1, an array of labels for SET, binary, ...). A Date of a
 * DATETIME/TIMESTAMP key matches the stored value to the millisecond, and a double of a
 * DECIMAL key (decimal_as=double) every value that converts to it: rows that differ only
 * below that precision share one _id, and the first one found is returned. A NULL key value
 * matches NULL (sync.keys columns), except in DATETIME/TIMESTAMP/DECIMAL-as-double columns.
 * The statement per table and key is prepared once and kept.
 *
 * Error codes: MS_ERR_MYSQL with the server's or client's number (retryable for lost
 * connections, deadlocks and lock waits; ER_NO_SUCH_TABLE 1146 for an unknown table);
 * MS_ERR_DECODE/MS_DECODE_SCHEMA for a key that does not fit (no _id, another number of
 * fields, a key column the table lacks, a BSON type the column cannot hold);
 * MS_ERR_DECODE/MS_DECODE_UNSUPPORTED for a column type that cannot be read back or matched
 * (VECTOR, a GEOMETRY or JSON key). MySQL's native JSON type (not MariaDB's) can only be
 * read back as text: an opaque DECIMAL inside a document becomes a double there, where the
 * binlog's binary JSON gives a Decimal128. */
bool ms_source_read_row(struct ms_source *s, const char *db, const char *table,
                        const char *const *pk, size_t npk, const bson_t *id, bson_t *row,
                        bool *found, struct ms_error *err);

/* Reads every row of db.table whose column equals value (SELECT ... WHERE column = ? ORDER BY
 * the primary key LIMIT limit + 1), appending each to rows (initialised by the caller) as the
 * next element of an array-like document {"0": row, "1": row, ...} (numbering goes on from the
 * elements rows already has), each row exactly as ms_source_read_row() gives it. *n gets the
 * number appended. Rows come in primary key order; a table without a primary key has no ORDER
 * BY (the server's order). More than limit matching rows: false, MS_ERR_DECODE/MS_DECODE_SCHEMA
 * (not retryable), nothing appended; on any failure rows stays as it was and *n is 0. value is
 * matched as a key value is in ms_source_read_row (same conversions and the same precision: a
 * Date matches every DATETIME/TIMESTAMP value of its millisecond, a double every DECIMAL value
 * converting to it); a null value matches no row (true, *n = 0, no query). The statement per
 * (db, table, column) is prepared once and kept; ms_source_invalidate() drops it with the
 * table's others. Errors as ms_source_read_row() (a column the table lacks: MS_DECODE_SCHEMA,
 * a JSON or GEOMETRY column: MS_DECODE_UNSUPPORTED); a lost connection is retryable and the
 * next call reconnects; a statement the table changed under is prepared again once. */
bool ms_source_read_rows(struct ms_source *s, const char *db, const char *table, const char *column,
                         const bson_value_t *value, size_t limit, bson_t *rows, size_t *n,
                         struct ms_error *err);

/* Forgets cached statements and definitions of db.table (after DDL); NULL table: all of db;
 * NULL db: everything. */
void ms_source_invalidate(struct ms_source *s, const char *db, const char *table);

/* ---- Keyset scans (snapshots, backfill, polling, verify) ----------------------------------
 * Reads db.table in the order of some columns (the primary key, or a change column then the
 * key) a chunk at a time with keyset pagination: SELECT every column FROM t WHERE [(where)
 * AND] (c1, c2, ...) > (cursor) ORDER BY c1, c2, ... LIMIT n, never OFFSET, as prepared
 * statements (identifiers quoted, cursor values bound as parameters in the column's own type,
 * so the comparison is exact: a DATETIME(6) to the microsecond, a DECIMAL to its last digit, a
 * string in the column's collation). Rows are streamed from the server (never the whole chunk
 * in memory) and come as ms_source_read_row() gives them. The order columns must identify a
 * row (end with the primary key), else rows sharing a cursor value can be skipped. Column
 * types that cannot be a cursor: GEOMETRY, JSON, UUID, INET (a clear error at the first
 * chunk). A NULL in a nullable order column sorts first, as in MySQL.
 *
 * A scan uses its source's connection: the source must not be used for anything else while the
 * scan lives. A lost connection is a retryable error; the next chunk reconnects and goes on
 * after the last row delivered. */
struct ms_scan;

/* order names the columns (at least one); where is extra SQL ANDed to the condition (the
 * operator's own text, as --where gives it; NULL: none). Nothing is read yet. */
struct ms_scan *ms_scan_new(struct ms_source *s, const char *db, const char *table,
                            const char *const *order, size_t norder, const char *where);
void ms_scan_destroy(struct ms_scan *sc);

/* Called per row. row NULL: a value of this row does not decode (err says which, an
 * MS_ERR_DECODE); returning true skips the row (e.g. it was dead-lettered). false stops the
 * chunk: with err set the row was not taken (the cursor stays before it), without, it was. */
typedef bool (*ms_scan_row_fn)(void *arg, const bson_t *row, struct ms_error *err);

/* Reads up to limit rows after the cursor, calling fn for each in order; *n gets the number
 * delivered (fewer than limit: the scan reached the end). */
bool ms_scan_chunk(struct ms_scan *sc, size_t limit, ms_scan_row_fn fn, void *arg, size_t *n,
                   struct ms_error *err);

/* The cursor (after the last row delivered) as a BSON document that ms_scan_seek() takes back
 * exactly (for progress stored in MongoDB); empty before the first row. */
void ms_scan_cursor(const struct ms_scan *sc, bson_t *out);

/* Sets the cursor from ms_scan_cursor()'s document (empty: from the start). Checked at the
 * next chunk against the table's columns: a cursor that does not fit them is
 * MS_ERR_DECODE/MS_DECODE_SCHEMA. */
bool ms_scan_seek(struct ms_scan *sc, const bson_t *cursor, struct ms_error *err);

/* For progress displays: the server's estimate of the table's rows
 * (information_schema.TABLES.TABLE_ROWS; exact for some engines), -1 if unknown. */
int64_t ms_source_estimate_rows(struct ms_source *s, const char *db, const char *table,
                                struct ms_error *err);

#endif

/* Table definitions from information_schema, on a connection of their own, cached per table
 * and invalidated by DDL seen in the stream. They fill in what a TABLE_MAP lacks: column
 * names, signedness and ENUM/SET labels when binlog_row_metadata is MINIMAL, the primary
 * key, and MariaDB's JSON columns (LONGTEXT with a json_valid check), which the binlog
 * cannot tell from text. information_schema shows the current definition, not the one an
 * old event was written with: a table map whose column count differs is left alone. */
#ifndef MYSYNC_SCHEMA_H
#define MYSYNC_SCHEMA_H

#include <stdbool.h>
#include <stddef.h>

#include "mysync/config.h"
#include "mysync/error.h"
#include "mysync/rows.h"

struct ms_schema;

/* Connects lazily, on the first lookup. */
struct ms_schema *ms_schema_new(const struct ms_config *cfg);
void ms_schema_destroy(struct ms_schema *s);

/* Completes tm from the cached definition of tm->db.tm->table (loading it first if
 * needed): names, signedness, ENUM/SET labels where the map has none, is_json_text, the
 * primary key where the map has none. A table with another column count is left alone
 * (returns true, *applied false). */
bool ms_schema_enrich(struct ms_schema *s, struct ms_table_map *tm, bool *applied,
                      struct ms_error *err);

/* Forgets cached definitions a statement may change (ALTER/RENAME/DROP/TRUNCATE/CREATE ...;
 * everything in db when the statement cannot be narrowed down). Returns true when it was
 * DDL. */
bool ms_schema_note_query(struct ms_schema *s, const char *db, size_t db_len, const char *sql,
                          size_t sql_len);

/* What a DDL statement does to the rows of tables, as far as documents are concerned. */
enum ms_ddl_kind {
    MS_DDL_OTHER = 0, /* nothing a document follows (or not understood) */
    MS_DDL_ALTER,     /* ALTER TABLE t ...: its rows may change without row events */
    MS_DDL_RENAME,    /* RENAME TABLE a TO b [, c TO d ...] (ALTER TABLE a RENAME TO b too) */
    MS_DDL_TRUNCATE,  /* TRUNCATE [TABLE] t: every row gone without row events */
};

#define MS_DDL_MAX_TABLES 16

struct ms_ddl {
    enum ms_ddl_kind kind;
    size_t n;
    struct {
        char db[200], name[200]; /* db: the statement's or the event's default database */
    } table[MS_DDL_MAX_TABLES], to[MS_DDL_MAX_TABLES]; /* to: MS_DDL_RENAME's new names */
    /* MS_DDL_ALTER: every clause leaves the rows' values as they are (indexes other than the
     * primary key, foreign keys and checks, column defaults, table options), so no snapshot
     * is needed. false for anything else or not understood. */
    bool rows_kept;
};

/* Parses the tables of an ALTER TABLE, RENAME TABLE or TRUNCATE statement (db: the event's
 * default database, for unqualified names). Anything else, or a statement it cannot read:
 * kind MS_DDL_OTHER. */
void ms_schema_parse_ddl(const char *db, size_t db_len, const char *sql, size_t sql_len,
                         struct ms_ddl *out);

/* Parses MySQL's COLUMN_TYPE list "enum('a','b''c')" / "set(...)" into labels. */
bool ms_schema_parse_labels(const char *column_type, char ***labels, size_t *n);

#endif

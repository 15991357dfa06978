/* Arbitrary bytes as the SQL of a QUERY event, with the event's default database "db":
 * ms_schema_parse_ddl must never crash and must keep what it promises. The same input parses
 * to the same result; a kind other than OTHER names 1..MS_DDL_MAX_TABLES tables, each a
 * NUL-terminated non-empty name; rows_kept only for ALTER; and rows_kept is never kept once a
 * clause that changes rows (", DROP COLUMN zz") is appended to a statement without comments
 * or quotes (the classifier must not stop reading early). */
#include <stdlib.h>
#include <string.h>

#include "fuzz_driver.h"
#include "mysync/schema.h"

static void check_names(const struct ms_ddl *d, size_t i, bool to)
{
    const char *db = to ? d->to[i].db : d->table[i].db;
    const char *name = to ? d->to[i].name : d->table[i].name;

    if (memchr(db, 0, sizeof(d->table[i].db)) == NULL ||
        memchr(name, 0, sizeof(d->table[i].name)) == NULL || name[0] == '\0') {
        ms_fuzz_fail("table %zu: a name not NUL-terminated or empty", i);
    }
}

/* No NUL, quote, comment or statement end: text appended to it is read as SQL. */
static bool plain(const uint8_t *data, size_t size)
{
    for (size_t i = 0; i < size; i++) {
        if (data[i] == 0 || strchr("'\"`#-/\\;", data[i]) != NULL) {
            return false;
        }
    }
    return true;
}

void ms_fuzz_ddl_one(const uint8_t *data, size_t size)
{
    struct ms_ddl *a = malloc(sizeof(*a)), *b = malloc(sizeof(*b));

    if (a == NULL || b == NULL) {
        abort();
    }
    ms_schema_parse_ddl("db", 2, (const char *)data, size, a);
    ms_schema_parse_ddl("db", 2, (const char *)data, size, b);
    if (memcmp(a, b, sizeof(*a)) != 0) {
        ms_fuzz_fail("the same statement parsed twice differs");
    }
    if (a->kind == MS_DDL_OTHER ? a->n != 0 : a->n < 1 || a->n > MS_DDL_MAX_TABLES) {
        ms_fuzz_fail("kind %d with %zu tables", (int)a->kind, a->n);
    }
    for (size_t i = 0; i < a->n; i++) {
        check_names(a, i, false);
        if (a->kind == MS_DDL_RENAME) {
            check_names(a, i, true);
        }
    }
    if (a->rows_kept && a->kind != MS_DDL_ALTER) {
        ms_fuzz_fail("rows_kept for kind %d", (int)a->kind);
    }
    if (a->kind == MS_DDL_ALTER && a->rows_kept && size < 4096 && plain(data, size)) {
        static const char tail[] = ", DROP COLUMN zz";
        char *sql = malloc(size + sizeof(tail));
        if (sql == NULL) {
            abort();
        }
        memcpy(sql, data, size);
        memcpy(sql + size, tail, sizeof(tail));
        ms_schema_parse_ddl("db", 2, sql, size + sizeof(tail) - 1, b);
        if (b->kind == MS_DDL_ALTER && b->rows_kept) {
            ms_fuzz_fail("rows_kept still set with \"%s\" appended", tail);
        }
        free(sql);
    }
    free(a);
    free(b);
}

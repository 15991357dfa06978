/* The pure parts of the schema cache: ENUM/SET label lists, DDL detection and the tables a DDL
 * statement changes rows of. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "mysync/schema.h"

static void labels(void **state)
{
    static const struct {
        const char *type;
        bool ok;
        size_t n;
        const char *want[4];
    } cases[] = {
        {"enum('a','b')", true, 2, {"a", "b"}},
        {"enum('y''q','')", true, 2, {"y'q", ""}},
        {"set('p','q,r','s')", true, 3, {"p", "q,r", "s"}},
        {"enum('caf\xc3\xa9')", true, 1, {"caf\xc3\xa9"}},
        {"enum('a\\'b')", true, 1, {"a'b"}},
        {"enum('unterminated)", false, 0, {NULL}},
        {"enum('a'", false, 0, {NULL}},
        {"int unsigned", false, 0, {NULL}},
    };
    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char **v;
        size_t n;
        bool ok = ms_schema_parse_labels(cases[i].type, &v, &n);
        if (ok != cases[i].ok) {
            fail_msg("%s: ok=%d", cases[i].type, ok);
        }
        if (!ok) {
            continue;
        }
        assert_int_equal(n, cases[i].n);
        for (size_t j = 0; j < n; j++) {
            assert_string_equal(v[j], cases[i].want[j]);
            free(v[j]);
        }
        free(v);
    }
}

static void ddl_detection(void **state)
{
    static const struct {
        const char *sql;
        bool ddl;
    } cases[] = {
        {"ALTER TABLE t ADD c INT", true},
        {"  alter table t drop c", true},
        {"/* generated */ RENAME TABLE a TO b", true},
        {"DROP TABLE t", true},
        {"TRUNCATE t", true},
        {"CREATE TABLE t (a INT)", true},
        {"BEGIN", false},
        {"COMMIT", false},
        {"INSERT INTO altered VALUES (1)", false},
        {"ALTERNATIVE", false},
        {"/* unterminated", false},
        {"", false},
    };
    struct ms_schema *s = ms_schema_new(NULL);

    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        bool got = ms_schema_note_query(s, "db", 2, cases[i].sql, strlen(cases[i].sql));
        if (got != cases[i].ddl) {
            fail_msg("'%s': ddl=%d", cases[i].sql, got);
        }
    }
    ms_schema_destroy(s);
}

/* ms_schema_parse_ddl: kind and tables ("db.t" or "db.a>db.b" for renames, ' '-separated). */
static void ddl_tables(void **state)
{
    static const struct {
        const char *sql;
        enum ms_ddl_kind kind;
        const char *tables;
    } cases[] = {
        {"ALTER TABLE t ADD c INT", MS_DDL_ALTER, "db.t"},
        {"/* x */ alter online ignore table `s`.`we``ird` modify k bigint", MS_DDL_ALTER,
         "s.we`ird"},
        {"ALTER TABLE IF EXISTS s.t DROP COLUMN c", MS_DDL_ALTER, "s.t"},
        {"ALTER TABLE t RENAME COLUMN a TO b", MS_DDL_ALTER, "db.t"},
        {"ALTER TABLE t RENAME INDEX a TO b", MS_DDL_ALTER, "db.t"},
        {"ALTER TABLE t ADD c VARCHAR(9) DEFAULT 'rename to x'", MS_DDL_ALTER, "db.t"},
        {"ALTER TABLE t RENAME TO u", MS_DDL_RENAME, "db.t>db.u"},
        {"ALTER TABLE t RENAME AS s2.u", MS_DDL_RENAME, "db.t>s2.u"},
        {"ALTER TABLE t ADD x INT, RENAME u", MS_DDL_RENAME, "db.t>db.u"},
        {"RENAME TABLE a TO b", MS_DDL_RENAME, "db.a>db.b"},
        {"rename table a to a_old, `new` TO s.a", MS_DDL_RENAME, "db.a>db.a_old db.new>s.a"},
        {"TRUNCATE TABLE s.t", MS_DDL_TRUNCATE, "s.t"},
        {"truncate t -- comment", MS_DDL_TRUNCATE, "db.t"},
        {"DROP TABLE t", MS_DDL_OTHER, ""},
        {"ALTER DATABASE db CHARACTER SET utf8mb4", MS_DDL_OTHER, ""},
        {"RENAME USER a TO b", MS_DDL_OTHER, ""},
        {"RENAME TABLE a TO", MS_DDL_OTHER, ""},
        {"INSERT INTO t VALUES (1)", MS_DDL_OTHER, ""},
        {"", MS_DDL_OTHER, ""},
    };

    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct ms_ddl d;
        char got[1000] = "";
        ms_schema_parse_ddl("db", 2, cases[i].sql, strlen(cases[i].sql), &d);
        for (size_t k = 0; k < d.n; k++) {
            size_t o = strlen(got);
            if (d.kind == MS_DDL_RENAME) {
                snprintf(got + o, sizeof(got) - o, "%s%s.%s>%s.%s", k > 0 ? " " : "", d.table[k].db,
                         d.table[k].name, d.to[k].db, d.to[k].name);
            } else {
                snprintf(got + o, sizeof(got) - o, "%s%s.%s", k > 0 ? " " : "", d.table[k].db,
                         d.table[k].name);
            }
        }
        if (d.kind != cases[i].kind || strcmp(got, cases[i].tables) != 0) {
            fail_msg("'%s': kind %d tables '%s', want %d '%s'", cases[i].sql, (int)d.kind, got,
                     (int)cases[i].kind, cases[i].tables);
        }
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(labels),
        cmocka_unit_test(ddl_detection),
        cmocka_unit_test(ddl_tables),
    };
    return cmocka_run_group_tests_name("schema", tests, NULL, NULL);
}

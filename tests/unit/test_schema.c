/* The pure parts of the schema cache: ENUM/SET label lists and DDL detection. */
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

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(labels),
        cmocka_unit_test(ddl_detection),
    };
    return cmocka_run_group_tests_name("schema", tests, NULL, NULL);
}

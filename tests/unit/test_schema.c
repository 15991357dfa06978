/* The pure parts of the schema cache: ENUM/SET label lists, DDL detection and the tables a DDL
 * statement changes rows of. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "fuzz_driver.h"
#include "mysync/schema.h"
#include "testutil.h"

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
static const struct {
    const char *sql;
    enum ms_ddl_kind kind;
    const char *tables;
} table_cases[] = {
    {"ALTER TABLE t ADD c INT", MS_DDL_ALTER, "db.t"},
    {"/* x */ alter online ignore table `s`.`we``ird` modify k bigint", MS_DDL_ALTER, "s.we`ird"},
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

static void ddl_tables(void **state)
{

    (void)state;
    for (size_t i = 0; i < sizeof(table_cases) / sizeof(table_cases[0]); i++) {
        struct ms_ddl d;
        char got[1000] = "";
        ms_schema_parse_ddl("db", 2, table_cases[i].sql, strlen(table_cases[i].sql), &d);
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
        if (d.kind != table_cases[i].kind || strcmp(got, table_cases[i].tables) != 0) {
            fail_msg("'%s': kind %d tables '%s', want %d '%s'", table_cases[i].sql, (int)d.kind,
                     got, (int)table_cases[i].kind, table_cases[i].tables);
        }
    }
}

/* ms_schema_parse_ddl: which ALTER TABLE statements leave the rows as they are (no snapshot);
 * anything not understood must say false. */
static const struct {
    const char *sql;
    bool kept;
} kept_cases[] = {
    {"ALTER TABLE t ADD INDEX i (a)", true},
    {"alter table s.t add key (a, b), add unique u (c), drop index j", true},
    {"ALTER TABLE t ADD FULLTEXT KEY f (txt), ADD SPATIAL INDEX g (geo)", true},
    {"ALTER TABLE t ADD CONSTRAINT fk FOREIGN KEY (a) REFERENCES p (id) ON DELETE CASCADE", true},
    {"ALTER TABLE t ADD CONSTRAINT UNIQUE (a)", true},
    {"ALTER TABLE t ADD CONSTRAINT c CHECK (a > 0), DROP CONSTRAINT d", true},
    {"ALTER TABLE t DROP FOREIGN KEY fk, DROP CHECK c", true},
    {"ALTER TABLE t RENAME INDEX a TO b, RENAME KEY c TO d", true},
    {"ALTER TABLE t ALTER INDEX i INVISIBLE", true},
    {"ALTER TABLE t ALTER COLUMN c SET DEFAULT 'x, y', ALTER d DROP DEFAULT", true},
    {"ALTER TABLE t ENGINE=InnoDB", true},
    {"ALTER TABLE t COMMENT = 'add column x, modify y' , AUTO_INCREMENT=100", true},
    {"ALTER TABLE t ROW_FORMAT=COMPRESSED KEY_BLOCK_SIZE=8", true},
    {"ALTER TABLE t ADD INDEX (a), ALGORITHM=INPLACE, LOCK=NONE", true},
    {"ALTER TABLE t FORCE", true},
    {"ALTER TABLE t DEFAULT CHARSET utf8mb4", true},
    {"ALTER TABLE t CHARACTER SET = latin1 COLLATE latin1_bin", true},
    {"/* c */ ALTER TABLE `t` ADD INDEX `i` (`a`(10)) COMMENT 'drop column'", true},
    {"ALTER TABLE t ORDER BY a", true},
    /* rows (or their identity) change */
    {"ALTER TABLE t ADD c INT", false},
    {"ALTER TABLE t ADD COLUMN c INT DEFAULT 5, ADD INDEX (c)", false},
    {"ALTER TABLE t ADD INDEX (a), DROP COLUMN b", false},
    {"ALTER TABLE t ADD PRIMARY KEY (a)", false},
    {"ALTER TABLE t ADD CONSTRAINT pk PRIMARY KEY (a)", false},
    {"ALTER TABLE t DROP PRIMARY KEY", false},
    {"ALTER TABLE t DROP CONSTRAINT `PRIMARY`", false},
    {"ALTER TABLE t DROP c", false},
    {"ALTER TABLE t MODIFY c BIGINT", false},
    {"ALTER TABLE t CHANGE a b INT", false},
    {"ALTER TABLE t RENAME COLUMN a TO b", false},
    {"ALTER TABLE t CONVERT TO CHARACTER SET utf8mb4", false},
    {"ALTER TABLE t DROP PARTITION p0", false},
    {"ALTER TABLE t TRUNCATE PARTITION p0", false},
    {"ALTER TABLE t EXCHANGE PARTITION p0 WITH TABLE u", false},
    {"ALTER TABLE t PARTITION BY HASH(a) PARTITIONS 4", false},
    {"ALTER TABLE t ADD key_col INT", false},
    {"ALTER TABLE t ADD `index` INT", false},
    {"ALTER TABLE t ALTER COLUMN c SET DEFAULT 1, MODIFY d INT", false},
    {"ALTER IGNORE TABLE t ADD UNIQUE (a)", false},
    {"ALTER TABLE t", false},
    {"ALTER TABLE t ADD INDEX (a", false},
};

static void ddl_rows_kept(void **state)
{

    (void)state;
    for (size_t i = 0; i < sizeof(kept_cases) / sizeof(kept_cases[0]); i++) {
        struct ms_ddl d;
        ms_schema_parse_ddl("db", 2, kept_cases[i].sql, strlen(kept_cases[i].sql), &d);
        if (d.kind != MS_DDL_ALTER || d.rows_kept != kept_cases[i].kept) {
            fail_msg("'%s': kind %d rows_kept %d, want %d", kept_cases[i].sql, (int)d.kind,
                     (int)d.rows_kept, (int)kept_cases[i].kept);
        }
    }
    /* the fuzz harness's properties on every statement, and its saved artifacts */
    for (size_t i = 0; i < sizeof(kept_cases) / sizeof(kept_cases[0]); i++) {
        ms_fuzz_ddl_one((const uint8_t *)kept_cases[i].sql, strlen(kept_cases[i].sql));
    }
    for (size_t i = 0; i < sizeof(table_cases) / sizeof(table_cases[0]); i++) {
        ms_fuzz_ddl_one((const uint8_t *)table_cases[i].sql, strlen(table_cases[i].sql));
    }
    tu_fuzz_replay("ddl-", ms_fuzz_ddl_one);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(labels),
        cmocka_unit_test(ddl_detection),
        cmocka_unit_test(ddl_tables),
        cmocka_unit_test(ddl_rows_kept),
    };
    if (tu_fuzz_seeds_dir() != NULL) { /* tests/fuzz/seeds.sh: the statements as seeds */
        for (size_t i = 0; i < sizeof(table_cases) / sizeof(table_cases[0]); i++) {
            tu_fuzz_seed(table_cases[i].sql, strlen(table_cases[i].sql), "tables-%02zu", i);
        }
        for (size_t i = 0; i < sizeof(kept_cases) / sizeof(kept_cases[0]); i++) {
            tu_fuzz_seed(kept_cases[i].sql, strlen(kept_cases[i].sql), "kept-%02zu", i);
        }
        return 0;
    }
    return cmocka_run_group_tests_name("schema", tests, NULL, NULL);
}

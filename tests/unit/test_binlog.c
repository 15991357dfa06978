/* Binlog event parsing and row decoding against real captured binlogs: every file is read
 * to its end and its row changes must equal a golden JSON-lines file (wal2json style:
 * input + expected output). Goldens were checked value by value against the source
 * repositories' own tests (../shared/binlogs/README.txt) or mariadb-binlog's decoding
 * (the .mariadb-binlog.txt files in tests/data/binlogs). Regenerate a golden after a deliberate
 * change with MS_UPDATE_GOLDEN=1 and review the diff. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fuzz_driver.h"
#include "mysync/binlog.h"
#include "testutil.h"

struct vector {
    const char *file;   /* relative to the source root */
    const char *golden; /* relative to tests/data/binlogs/expected/ */
};

static const struct vector vectors[] = {
    {"../shared/binlogs/rust_mysql_common/json.binlog.000001", "json.binlog.000001.jsonl"},
    {"../shared/binlogs/rust_mysql_common/transaction_compression.000001",
     "transaction_compression.000001.jsonl"},
    {"../shared/binlogs/rust_mysql_common/mariadb-bin.000001", "mariadb-bin.000001.jsonl"},
    {"../shared/binlogs/rust_mysql_common/mysql-enum-string-set.000001",
     "mysql-enum-string-set.000001.jsonl"},
    {"../shared/binlogs/rust_mysql_common/binlog-invisible-columns.000001",
     "binlog-invisible-columns.000001.jsonl"},
    {"../shared/binlogs/rust_mysql_common/binlog_transaction_with_GTID_TAG.000001",
     "binlog_transaction_with_GTID_TAG.000001.jsonl"},
    {"../shared/binlogs/mysql-binlog-connector-rust/mysql-bin.000057", "mysql-bin.000057.jsonl"},
    {"../shared/binlogs/mysql-binlog-connector-java/mysql-bin.compressed",
     "mysql-bin.compressed.jsonl"},
    {"tests/data/binlogs/mariadb-10.11.19-types.binlog", "mariadb-10.11.19-types.jsonl"},
    {"tests/data/binlogs/mariadb-10.11.19-compressed.binlog", "mariadb-10.11.19-compressed.jsonl"},
};

static char *path_of(const char *rel)
{
    const char *root = getenv("MS_SOURCE_ROOT");
    size_t n;
    char *p;

    if (root == NULL) {
        fail_msg("MS_SOURCE_ROOT is not set (run through meson test)");
    }
    n = strlen(root) + strlen(rel) + 2;
    p = malloc(n);
    snprintf(p, n, "%s/%s", root, rel);
    return p;
}

/* Dumps path; returns the JSON lines (malloc'd); fails the test on a decode error. */
static char *dump(const char *path, struct ms_dump_stats *stats, bool expect_ok)
{
    struct ms_value_opts vo = {0};
    struct ms_error err = {0};
    char *out = NULL;
    size_t n = 0;
    FILE *f = open_memstream(&out, &n);
    bool ok = ms_binlog_dump_file(path, 0, &vo, f, stats, &err);

    fclose(f);
    if (expect_ok && !ok) {
        fail_msg("%s: %s", path, err.msg);
    }
    if (!expect_ok && !ok) {
        assert_int_not_equal(err.domain, MS_ERR_NONE);
        assert_true(strlen(err.msg) > 0);
    }
    return out;
}

static void golden(void **state)
{
    const struct vector *v = *state;
    char *path = path_of(v->file), gpath_rel[512], *gpath, *expected;
    struct ms_dump_stats stats;
    struct stat st;
    char *out;

    if (stat(path, &st) != 0) {
        fail_msg("%s is missing: the shared test vectors must sit beside the repository", path);
    }
    out = dump(path, &stats, true);
    /* read to its very end */
    assert_int_equal(stats.end_pos, (uint64_t)st.st_size);
    snprintf(gpath_rel, sizeof(gpath_rel), "tests/data/binlogs/expected/%s", v->golden);
    gpath = path_of(gpath_rel);
    if (getenv("MS_UPDATE_GOLDEN") != NULL) {
        FILE *f = fopen(gpath, "wb");
        fputs(out, f);
        fclose(f);
    }
    expected = tu_slurp(gpath, NULL);
    if (expected == NULL) {
        fail_msg("golden file %s is missing", gpath);
    }
    if (strcmp(out, expected) != 0) {
        fail_msg("%s: decoded changes differ from %s\n--- got ---\n%s", v->file, gpath, out);
    }
    free(expected);
    free(gpath);
    free(out);
    free(path);
}

/* A flipped bit anywhere after the magic must not crash; in an event body covered by a
 * CRC32 it must be reported. */
static void corruption_detected(void **state)
{
    char *src = path_of("tests/data/binlogs/mariadb-10.11.19-types.binlog");
    size_t len;
    char *data = tu_slurp(src, &len), tmp[] = "/tmp/mysync-binlog-XXXXXX";
    int fd = mkstemp(tmp);

    assert_non_null(data);
    struct ms_dump_stats stats;
    size_t detected = 0, tried = 0;

    (void)state;
    assert_true(fd >= 0);
    close(fd);
    for (size_t off = 4; off < len; off += 97) {
        FILE *f;
        char *out;
        data[off] ^= 0x10;
        f = fopen(tmp, "wb");
        fwrite(data, 1, len, f);
        fclose(f);
        out = dump(tmp, &stats, false);
        free(out);
        data[off] ^= 0x10;
        tried++;
        if (stats.end_pos != len) {
            detected++;
        }
    }
    /* every event carries a CRC32: every flip is caught */
    assert_int_equal(detected, tried);
    unlink(tmp);
    free(data);
    free(src);
}

/* Files cut anywhere read up to the last whole event and never crash. */
static void truncation_safe(void **state)
{
    char *src = path_of("tests/data/binlogs/mariadb-10.11.19-compressed.binlog");
    size_t len;
    char *data = tu_slurp(src, &len), tmp[] = "/tmp/mysync-binlog-XXXXXX";
    int fd = mkstemp(tmp);

    assert_non_null(data);
    struct ms_dump_stats stats;

    (void)state;
    close(fd);
    for (size_t cut = 5; cut < len; cut += 61) {
        FILE *f = fopen(tmp, "wb");
        char *out;
        fwrite(data, 1, cut, f);
        fclose(f);
        out = dump(tmp, &stats, false);
        assert_true(stats.end_pos <= cut);
        free(out);
    }
    unlink(tmp);
    free(data);
    free(src);
}

/* The same workload logged with and without log_bin_compress decodes to the same changes. */
static void compressed_equals_plain(void **state)
{
    char *a = path_of("tests/data/binlogs/mariadb-10.11.19-types.binlog");
    char *b = path_of("tests/data/binlogs/mariadb-10.11.19-compressed.binlog");
    struct ms_dump_stats sa, sb;
    char *oa = dump(a, &sa, true), *ob = dump(b, &sb, true);
    char *la, *lb, *sa_save = NULL, *sb_save = NULL;
    size_t n = 0;

    (void)state;
    assert_true(sa.changes > 0);
    assert_int_equal(sa.changes, sb.changes);
    /* compare lines without "pos", "gtid" and "ts", which differ between the captures */
    la = strtok_r(oa, "\n", &sa_save);
    lb = strtok_r(ob, "\n", &sb_save);
    while (la != NULL && lb != NULL) {
        const char *ka = strstr(la, "\"db\""), *kb = strstr(lb, "\"db\"");
        assert_non_null(ka);
        assert_non_null(kb);
        assert_string_equal(ka, kb);
        n++;
        la = strtok_r(NULL, "\n", &sa_save);
        lb = strtok_r(NULL, "\n", &sb_save);
    }
    assert_null(la);
    assert_null(lb);
    assert_int_equal(n, sa.changes);
    free(oa);
    free(ob);
    free(a);
    free(b);
}

static void packed_ints(void **state)
{
    static const struct {
        uint8_t bytes[9];
        size_t len, used;
        uint64_t value;
        bool ok;
    } cases[] = {
        {{0x00}, 1, 1, 0, true},
        {{0xfa}, 1, 1, 250, true},
        {{0xfc, 0x34, 0x12}, 3, 3, 0x1234, true},
        {{0xfd, 0x01, 0x02, 0x03}, 4, 4, 0x030201, true},
        {{0xfe, 1, 2, 3, 4, 5, 6, 7, 8}, 9, 9, 0x0807060504030201ULL, true},
        {{0xfc, 0x34}, 2, 0, 0, false},
        {{0xfb}, 1, 0, 0, false},
        {{0}, 0, 0, 0, false},
    };
    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        size_t used = 0;
        uint64_t v = 0;
        bool ok = ms_binlog_packed_int(cases[i].bytes, cases[i].len, &used, &v);
        assert_int_equal(ok, cases[i].ok);
        if (ok) {
            assert_int_equal(used, cases[i].used);
            assert_true(v == cases[i].value);
        }
    }
}

/* Database, table and column names become MongoDB collection and field names: a TABLE_MAP
 * whose names are not UTF-8 (or hold a NUL) is refused (the fuzzer's
 * binlog-column-name-not-utf8.bin made the row decoder emit such BSON keys). */
static void names_must_be_utf8(void **state)
{
    char *src = path_of("tests/data/binlogs/mariadb-10.11.19-types.binlog");
    size_t len, off = 4;
    char *data = tu_slurp(src, &len);
    struct ms_binlog_parser *p = ms_binlog_parser_new();
    bool seen = false;

    (void)state;
    assert_non_null(data);
    while (!seen && off + 19 <= len) {
        uint32_t elen;
        struct ms_event ev;
        struct ms_error err = {0};
        memcpy(&elen, data + off + 9, 4);
        assert_true(ms_binlog_parse(p, (const uint8_t *)data + off, elen, &ev, &err));
        if (ev.h.type == MS_EV_TABLE_MAP && ev.u.table_map.map->cols[0].name != NULL) {
            const char *col = ev.u.table_map.map->cols[0].name;
            size_t db_at = (size_t)(ev.body - (const uint8_t *)data) + 8 + 1;
            char key[80];
            char *at;
            /* the first column's name, length-prefixed, in the COLUMN_NAME metadata */
            key[0] = (char)strlen(col);
            snprintf(key + 1, sizeof(key) - 1, "%s", col);
            at = memmem(data + off, elen, key, strlen(col) + 1);
            assert_non_null(at);
            seen = true;
            ms_binlog_parser_set_verify(p, false);
            for (int c = 0; c < 3; c++) {
                char *where = c == 0 ? data + db_at : at + 1;
                char was = *where;
                *where = c == 2 ? '\0' : (char)0xc0;
                assert_false(ms_binlog_parse(p, (const uint8_t *)data + off, elen, &ev, &err));
                assert_non_null(strstr(err.msg, c == 0 ? "database or table name is not UTF-8"
                                                       : "malformed optional metadata"));
                *where = was;
            }
        }
        off += elen;
    }
    assert_true(seen);
    ms_binlog_parser_destroy(p);
    free(data);
    free(src);
}

/* A rows event whose column bitmaps select no column has rows of no bytes: both row readers
 * refuse the first one instead of returning it forever (the daemon and binlog-dump hung on
 * the fuzzer's binlog-row-of-no-columns.bin, a TABLE_MAP and a WRITE_ROWS of 4 columns with
 * an empty bitmap and 4 bytes of rows). */
static void row_of_no_columns_refused(void **state)
{
    char *src = path_of("tests/data/fuzz/binlog-row-of-no-columns.bin");
    size_t len, off = 0, rows = 0; /* (events without a file's magic) */
    char *data = tu_slurp(src, &len);
    struct ms_binlog_parser *p = ms_binlog_parser_new();

    (void)state;
    assert_non_null(data);
    ms_binlog_parser_set_verify(p, false);
    while (off + 19 <= len) {
        uint32_t elen;
        struct ms_event ev;
        struct ms_error err = {0};
        memcpy(&elen, data + off + 9, 4);
        assert_true(ms_binlog_parse(p, (const uint8_t *)data + off, elen, &ev, &err));
        if (ms_binlog_is_rows_event(ev.h.type)) {
            struct ms_value_opts vo = {0};
            struct ms_buf out = {0};
            size_t roff = 0;
            bson_t before, after;
            assert_false(ms_binlog_rows_next(p, &ev, &roff, &vo, &before, &after, &err));
            assert_non_null(strstr(err.msg, "row of no columns"));
            bson_destroy(&before);
            bson_destroy(&after);
            roff = 0;
            ms_error_clear(&err);
            assert_false(ms_binlog_rows_write_json(&ev, ms_binlog_rows_json_keys(p, &ev), &roff,
                                                   &vo, ", ", 2, &out, &err));
            assert_non_null(strstr(err.msg, "row of no columns"));
            assert_int_equal(out.len, 0);
            assert_int_equal(roff, 0);
            ms_buf_free(&out);
            rows++;
        }
        off += elen;
    }
    assert_int_equal(rows, 1);
    ms_binlog_parser_destroy(p);
    free(data);
    free(src);
}

/* Every input the fuzzer ever found trouble with (tests/data/fuzz/) replays cleanly. */
static void fuzz_artifacts_replay(void **state)
{
    (void)state;
    assert_true(tu_fuzz_replay("binlog-", ms_fuzz_binlog_one) > 0);
}

int main(void)
{
    struct CMUnitTest tests[sizeof(vectors) / sizeof(vectors[0]) + 8];
    size_t n = 0;

    for (size_t i = 0; i < sizeof(vectors) / sizeof(vectors[0]); i++) {
        tests[n++] =
            (struct CMUnitTest){vectors[i].golden, golden, NULL, NULL, (void *)&vectors[i]};
    }
    tests[n++] = (struct CMUnitTest)cmocka_unit_test(corruption_detected);
    tests[n++] = (struct CMUnitTest)cmocka_unit_test(truncation_safe);
    tests[n++] = (struct CMUnitTest)cmocka_unit_test(compressed_equals_plain);
    tests[n++] = (struct CMUnitTest)cmocka_unit_test(packed_ints);
    tests[n++] = (struct CMUnitTest)cmocka_unit_test(names_must_be_utf8);
    tests[n++] = (struct CMUnitTest)cmocka_unit_test(row_of_no_columns_refused);
    tests[n++] = (struct CMUnitTest)cmocka_unit_test(fuzz_artifacts_replay);
    return _cmocka_run_group_tests("binlog", tests, n, NULL, NULL);
}

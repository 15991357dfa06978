/* MySQL binary JSON, MariaDB text JSON and JSON diffs -> BSON, as data: byte vectors (hex)
 * with the Extended JSON they must decode to, real ones captured from MySQL binlogs first.
 * Every vector is then fed truncated at every length and mutated at every offset: the
 * decoders may accept or refuse such input, but must neither crash nor read out of bounds
 * (run under ASan: meson setup -Db_sanitize=address,undefined). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_driver.h"
#include "mysync/mysqljson.h"
#include "testutil.h"

/* ---------------------------------------------------------------------------------------
 * Helpers
 * ------------------------------------------------------------------------------------- */

static int hexval(char c)
{
    if (c >= '0' && c <= '9') {
        return c - '0';
    }
    if (c >= 'a' && c <= 'f') {
        return c - 'a' + 10;
    }
    if (c >= 'A' && c <= 'F') {
        return c - 'A' + 10;
    }
    return -1;
}

/* Hex (spaces allowed) -> malloc'd bytes of exactly the decoded size (ASan sees any
 * read past the end). */
static uint8_t *unhex(const char *hex, size_t *len)
{
    size_t n = 0, cap = strlen(hex) / 2 + 1;
    uint8_t *out = malloc(cap);
    int hi = -1;

    assert_non_null(out);
    for (const char *h = hex; *h != '\0'; h++) {
        int v;
        if (*h == ' ') {
            continue;
        }
        v = hexval(*h);
        assert_true(v >= 0);
        if (hi < 0) {
            hi = v;
        } else {
            out[n++] = (uint8_t)(hi * 16 + v);
            hi = -1;
        }
    }
    assert_true(hi < 0);
    *len = n;
    return out;
}

/* An exact-size heap copy of p[0, n). */
static uint8_t *dup_bytes(const uint8_t *p, size_t n)
{
    uint8_t *d = malloc(n > 0 ? n : 1);

    assert_non_null(d);
    if (n > 0) {
        memcpy(d, p, n);
    }
    return d;
}

/* Asserts that doc equals the Extended JSON expect, byte for byte (types, key order). */
static void assert_doc(const char *name, const bson_t *doc, const char *expect)
{
    bson_error_t berr;
    bson_t *want = bson_new_from_json((const uint8_t *)expect, -1, &berr);

    if (want == NULL) {
        fail_msg("%s: bad expectation %s: %s", name, expect, berr.message);
    }
    if (!bson_equal(doc, want)) {
        char *got = bson_as_canonical_extended_json(doc, NULL);
        char *exp = bson_as_canonical_extended_json(want, NULL);
        print_error("%s:\n  got      %s\n  expected %s\n", name, got, exp);
        bson_free(got);
        bson_free(exp);
        bson_destroy(want);
        fail();
    }
    bson_destroy(want);
}

/* Whatever a decoder appended must be valid BSON, and a failure must leave parent as it
 * was. Used by the robustness loops. */
static void check_outcome(bool ok, const bson_t *parent, uint32_t len_before,
                          const struct ms_error *err)
{
    size_t off;

    assert_true(bson_validate(parent, BSON_VALIDATE_NONE, &off));
    if (ok) {
        char *j = bson_as_relaxed_extended_json(parent, NULL);
        bson_free(j);
    } else {
        assert_int_equal(parent->len, len_before);
        assert_int_equal(err->domain, MS_ERR_DECODE);
        assert_true(err->msg[0] != '\0');
    }
}

/* ---------------------------------------------------------------------------------------
 * Binary JSON -> BSON
 * ------------------------------------------------------------------------------------- */

struct bin_case {
    const char *name;
    const char *hex;    /* the JSON column value, after its length prefix */
    const char *expect; /* Extended JSON of {"v": value}; NULL: must be refused */
};

/* Captured from real servers (see /work/shared/binlogs/README.txt for the files' origin).
 * Offsets are of the first value byte, after the column's 4-byte length prefix. */
static const struct bin_case real_cases[] = {
    /* rust_mysql_common/json.binlog.000001 (MySQL 8.0.22), table
     * t(id INT, json_col JSON, name VARCHAR(100) AS (json_col->>'$.name'),
     *   age INT AS (json_col->'$.age')): the generated columns name/age of the same row
     * images (and the CREATE TABLE in the QUERY event at 570) confirm each value. The
     * rust_mysql_common test that reads this file only round-trips the events. */
    {"json.binlog.000001 WRITE_ROWS_v2 @1059 (file offset 1099), id 1",
     "0003003300190003001c000400200004000518000c24000c2f00616765646174616e616d650a787878"
     "78787878787878034a6f65",
     "{\"v\": {\"age\": 24, \"data\": \"xxxxxxxxxx\", \"name\": \"Joe\"}}"},
    {"json.binlog.000001 WRITE_ROWS_v2 @1409 (file offset 1449), id 2",
     "0003003300190003001c000400200004000520000c24000c2f00616765646174616e616d650a797979"
     "7979797979797903537565",
     "{\"v\": {\"age\": 32, \"data\": \"yyyyyyyyyy\", \"name\": \"Sue\"}}"},
    {"json.binlog.000001 WRITE_ROWS_v2 @1759 (file offset 1799), id 3",
     "0003003400190003001c000400200004000528000c24000c2f00616765646174616e616d650a7a7a7a"
     "7a7a7a7a7a7a7a0450657465",
     "{\"v\": {\"age\": 40, \"data\": \"zzzzzzzzzz\", \"name\": \"Pete\"}}"},
    {"json.binlog.000001 UPDATE_ROWS_v2 @2612 (file offset 2723), id 1 after image",
     "0003003300190003001c000400200004000519000c24000c2f00616765646174616e616d650a787878"
     "78787878787878034a6f65",
     "{\"v\": {\"age\": 25, \"data\": \"xxxxxxxxxx\", \"name\": \"Joe\"}}"},
    /* mysql-binlog-connector-rust/mysql-bin.000057 (MySQL 8.0.31): TRANSACTION_PAYLOAD
     * @730, zstd; in the decompressed payload the WRITE_ROWS_v2 event @1029 holds the
     * value at payload offset 1126 (the UPDATE_ROWS_v2 @306 holds the same bytes at 406
     * and 572). Expected value from the ROWS_QUERY event @669 of the same payload:
     * "insert into test_table_3 values(6666, ..., '{"c": 1}', ...)"; the repository's
     * own test only counts the events. */
    {"mysql-bin.000057 payload@730 WRITE_ROWS_v2 @1029 (payload offset 1126)",
     "0001000c000b00010005010063", "{\"v\": {\"c\": 1}}"},
    /* rust_mysql_common test-data/binlogs/json-opaque.binlog (added in ec8c2ae5, snapshot
     * 0648371c; not in /work/shared/binlogs), table foo.test(a JSON), one WRITE_ROWS_v2
     * per value. Expected values from that repository's src/binlog/mod.rs test
     * binlog_event_roundtrip ("json-opaque.binlog", events i == 10..24), which prints
     * them the way MySQL does; we keep DECIMAL as Decimal128 and other opaque values as
     * binary (MySQL prints "base64:type15:VQ=="). */
    {"json-opaque.binlog WRITE_ROWS_v2 @736 (file offset 772): VARCHAR opaque",
     "0001000f000b0001000f0c00610f0155",
     "{\"v\": {\"a\": {\"$binary\": {\"base64\": \"VQ==\", \"subType\": \"00\"}}}}"},
    {"json-opaque.binlog WRITE_ROWS_v2 @846 (file offset 882): DATE opaque",
     "00010016000b0001000f0c00620a080000000000e48b19", "{\"v\": {\"b\": \"2012-03-18\"}}"},
    {"json-opaque.binlog WRITE_ROWS_v2 @963 (file offset 999): DATETIME opaque",
     "00010016000b0001000f0c00630c08000000adb7e48b19",
     "{\"v\": {\"c\": \"2012-03-18 11:30:45.000000\"}}"},
    {"json-opaque.binlog WRITE_ROWS_v2 @1080 (file offset 1116): TIME opaque",
     "00010016000b0001000f0c00630b08f1fb09ee77050000", "{\"v\": {\"c\": \"87:31:46.654321\"}}"},
    {"json-opaque.binlog WRITE_ROWS_v2 @1197 (file offset 1233): DECIMAL(6,3) opaque",
     "00010014000b0001000f0c0064f6060603807b01c8",
     "{\"v\": {\"d\": {\"$numberDecimal\": \"123.456\"}}}"},
    {"json-opaque.binlog WRITE_ROWS_v2 @1312 (file offset 1348): DECIMAL(11,2) opaque",
     "00010015000b0001000f0c0065f6070b028000000900",
     "{\"v\": {\"e\": {\"$numberDecimal\": \"9.00\"}}}"},
    {"json-opaque.binlog WRITE_ROWS_v2 @1428 (file offset 1464): array of int/bool",
     "0001001c000b000100020c006504001000050000050100040100040200",
     "{\"v\": {\"e\": [0, 1, true, false]}}"},
    {"json-opaque.binlog WRITE_ROWS_v2 @1551 (file offset 1587): null member",
     "0001000c000b00010004000065", "{\"v\": {\"e\": null}}"},
};

/* Built by hand after sql/json_binary.cc (the encoder used reproduces the real vectors
 * above byte for byte). Objects keep MySQL's key order: shorter keys first. */
static const struct bin_case hand_cases[] = {
    {"literal null", "0400", "{\"v\": null}"},
    {"literal true", "0401", "{\"v\": true}"},
    {"literal false", "0402", "{\"v\": false}"},
    {"int16 min", "050080", "{\"v\": -32768}"},
    {"uint16 max", "06ffff", "{\"v\": 65535}"},
    {"int32 min", "0700000080", "{\"v\": -2147483648}"},
    {"uint32 max -> int64", "08ffffffff", "{\"v\": {\"$numberLong\": \"4294967295\"}}"},
    {"int64 stays int64", "090500000000000000", "{\"v\": {\"$numberLong\": \"5\"}}"},
    {"int64 min", "090000000000000080", "{\"v\": {\"$numberLong\": \"-9223372036854775808\"}}"},
    {"uint64 <= INT64_MAX -> int64", "0affffffffffffff7f",
     "{\"v\": {\"$numberLong\": \"9223372036854775807\"}}"},
    {"uint64 max -> Decimal128", "0affffffffffffffff",
     "{\"v\": {\"$numberDecimal\": \"18446744073709551615\"}}"},
    {"double", "0b0000000000000c40", "{\"v\": 3.5}"},
    {"double negative exponent", "0b2f30b7b3a7c9aa81",
     "{\"v\": {\"$numberDouble\": \"-1.25E-300\"}}"},
    {"empty string", "0c00", "{\"v\": \"\"}"},
    {"string 200 bytes (2-byte length)",
     "0cc801616161616161616161616161616161616161616161616161616161616161616161616161616161"
     "616161616161616161616161616161616161616161616161616161616161616161616161616161616161"
     "616161616161616161616161616161616161616161616161616161616161616161616161616161616161"
     "616161616161616161616161616161616161616161616161616161616161616161616161616161616161"
     "6161616161616161616161616161616161616161616161616161616161616161616161",
     "{\"v\": \"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
     "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
     "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\"}"},
    {"unicode string with NUL", "0c0bc3bce282acf09f9880007a", "{\"v\": \"ü€😀\\u0000z\"}"},
    {"empty object", "0000000400", "{\"v\": {}}"},
    {"empty array", "0200000400", "{\"v\": []}"},
    {"empty large object", "010000000008000000", "{\"v\": {}}"},
    {"empty large array", "030000000008000000", "{\"v\": []}"},
    {"small array, every scalar kind",
     "020a003c0004000004010004020005ffff06ffff0722000826000c2a000b2c00093400a086010000286b"
     "ee0178000000000000f83ff9ffffffffffffff",
     "{\"v\": [null, true, false, -1, 65535, 100000, {\"$numberLong\": \"4000000000\"}"
     ", \"x\", 1.5, {\"$numberLong\": \"-7\"}]}"},
    {"large array, int32/uint32 inlined",
     "030a0000004c00000004000000000401000000040200000005ffff000006ffff000007a0860100080028"
     "6bee0c3a0000000b3c00000009440000000178000000000000f83ff9ffffffffffffff",
     "{\"v\": [null, true, false, -1, 65535, 100000, {\"$numberLong\": \"4000000000\"}"
     ", \"x\", 1.5, {\"$numberLong\": \"-7\"}]}"},
    {"large object holding a small object",
     "01030000004f0000002900000001002a00000002002c00000003000501000000002f000000033d000000"
     "61626263636301000e000b0001000c0c00630164020000001200000005010000000502000000",
     "{\"v\": {\"a\": 1, \"bb\": {\"c\": \"d\"}, \"ccc\": [1, 2]}}"},
    {"nested arrays and objects",
     "00020057001200010013000100021400003400616b02002000050100020a0002001600050200000a0001"
     "000c000b00010004000062010023000b000100000c0078010017000b000100020c007901000b00020700"
     "00000400",
     "{\"v\": {\"a\": [1, [2, {\"b\": null}]], \"k\": {\"x\": {\"y\": [[]]}}}}"},
    {"unicode keys in MySQL order",
     "0003003d00190001001a000600200008000500000c28000c2c007ae697a5e69cacd0bad0bbd18ed18703"
     "e8aa9e10d0b7d0bdd0b0d187d0b5d0bdd0b8d0b5",
     "{\"v\": {\"z\": 0, \"日本\": \"語\", \"ключ\": \"значение\"}}"},
    {"decimal", "0ff60b13097ef204c72df8a432ea",
     "{\"v\": {\"$numberDecimal\": \"-1234567890.123456789\"}}"},
    {"decimal only fraction", "0ff6030202b2", "{\"v\": {\"$numberDecimal\": \"0.50\"}}"},
    {"decimal negative small", "0ff60403027ffe", "{\"v\": {\"$numberDecimal\": \"-0.01\"}}"},
    {"decimal 34 digits", "0ff61222008012d687350e34c02f075f79287735f2",
     "{\"v\": {\"$numberDecimal\": \"1234567890123456789012345678901234\"}}"},
    {"decimal 65 digits -> string",
     "0ff620411e80bc614e35b7bf87350e34c02f075f79075bcd1500bc614e35b7bf87037a",
     "{\"v\": \"12345678901234567890123456789012345.123456789012345678901234567890\"}"},
    {"date", "0f0a0800000000001e9519", "{\"v\": \"2015-01-15\"}"},
    {"time", "0f0b080000001976010000", "{\"v\": \"23:24:25.000000\"}"},
    {"negative time", "0f0b080000000591cbffff", "{\"v\": \"-838:59:59.000000\"}"},
    {"datetime", "0f0c0800000019761f9519", "{\"v\": \"2015-01-15 23:24:25.000000\"}"},
    {"timestamp with microseconds", "0f070840e2010100fe6319",
     "{\"v\": \"1999-12-31 00:00:01.123456\"}"},
    {"opaque blob -> binary", "0ffc0400ff6162",
     "{\"v\": {\"$binary\": {\"base64\": \"AP9hYg==\", \"subType\": \"00\"}}}"},
    /* Refused. */
    {"empty type 0x0d", "0d", NULL},
    {"unknown type 0xff", "ff00", NULL},
    {"unknown literal", "0403", NULL},
    {"int16 truncated", "0501", NULL},
    {"double truncated", "0b000000000000f0", NULL},
    {"string longer than the value", "0c05616263", NULL},
    {"string length of 6 bytes", "0c808080808000", NULL},
    {"string length over 32 bits", "0c8080808010", NULL},
    {"string not UTF-8", "0c02c328", NULL},
    {"string overlong UTF-8", "0c02c0af", NULL},
    /* libbson's validator with NULs allowed takes it (fuzz: mysqljson-overlong-nul.bin) */
    {"string overlong NUL", "0c0361c080", NULL},
    {"string with NUL", "0c03610062", "{\"v\": \"a\\u0000b\"}"},
    {"object key not UTF-8", "0001000c000b000100050100ff", NULL},
    {"object key with NUL",
     "0001000c000b000100050100"
     "00",
     NULL},
    {"object key beyond its size",
     "0001000c000c000100050100"
     "61",
     NULL},
    {"object size beyond the value", "0001000d000b00010005010061", NULL},
    {"entries beyond the object size", "0005000c000b00010005010061", NULL},
    {"array value offset beyond its size", "020100070008070000ffff", NULL},
    {"array header truncated", "0201", NULL},
    {"large array header truncated", "0301000000", NULL},
    {"nested type unknown", "02010007000d0000", NULL},
    {"opaque length beyond the value", "0ff60506", NULL},
    {"decimal digits out of range",
     "0ff6030100"
     "8a",
     NULL},
    {"decimal precision 0", "0ff603000080", NULL},
    {"decimal scale above precision",
     "0ff604010280"
     "00",
     NULL},
    {"decimal wrong length",
     "0ff604010080"
     "0000",
     NULL},
    {"date 7 bytes", "0f0a0700000000000000", NULL},
    {"datetime hour 24", "0f0c080000000080039519", NULL},
    {"time microseconds 1000000", "0f0b0840420f0000000000", NULL},
};

/* A case that expects a value (expect) or a refusal (expect == NULL, the parent untouched). */
static void check_case(const char *name, bool ok, const struct ms_error *err, const bson_t *doc,
                       const char *expect)
{
    if (expect == NULL) {
        if (ok) {
            char *j = bson_as_canonical_extended_json(doc, NULL);
            fail_msg("%s: accepted as %s", name, j);
        }
        assert_int_equal(err->domain, MS_ERR_DECODE);
        assert_int_equal(err->code, MS_MYSQLJSON_MALFORMED);
        assert_int_equal(bson_count_keys(doc), 0);
    } else {
        if (!ok) {
            fail_msg("%s: %s", name, err->msg);
        }
        assert_doc(name, doc, expect);
    }
}

static void run_bin_cases(const struct bin_case *cases, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        const struct bin_case *c = &cases[i];
        struct ms_error err = {0};
        bson_t doc = BSON_INITIALIZER;
        size_t len;
        uint8_t *p = unhex(c->hex, &len);
        bool ok = ms_mysqljson_to_bson(p, len, &doc, "v", &err);

        check_case(c->name, ok, &err, &doc, c->expect);
        bson_destroy(&doc);
        free(p);
    }
}

static void test_bin_real(void **state)
{
    (void)state;
    run_bin_cases(real_cases, sizeof(real_cases) / sizeof(real_cases[0]));
}

static void test_bin_hand(void **state)
{
    (void)state;
    run_bin_cases(hand_cases, sizeof(hand_cases) / sizeof(hand_cases[0]));
}

static void test_bin_empty_is_null(void **state)
{
    bson_t doc = BSON_INITIALIZER;
    struct ms_error err = {0};

    (void)state;
    assert_true(ms_mysqljson_to_bson(NULL, 0, &doc, "v", &err));
    assert_doc("len 0", &doc, "{\"v\": null}");
    bson_destroy(&doc);
}

/* A failure leaves the parent untouched, and the parent keeps what it had. */
static void test_bin_parent_untouched(void **state)
{
    bson_t doc = BSON_INITIALIZER;
    struct ms_error err = {0};
    size_t len;
    /* {"a": 1, "b": <type 0x0d>}: fails after the first member was decoded. */
    size_t badlen;
    uint8_t *bad = unhex("00 0200 1400 12000100 13000100 050100 0d0000 6162", &badlen);
    uint8_t *good = unhex("0c026869", &len);

    (void)state;
    BSON_APPEND_INT32(&doc, "id", 7);
    assert_false(ms_mysqljson_to_bson(bad, badlen, &doc, "j", &err));
    assert_doc("after failure", &doc, "{\"id\": 7}");
    assert_true(ms_mysqljson_to_bson(good, len, &doc, "j", &err));
    assert_doc("after success", &doc, "{\"id\": 7, \"j\": \"hi\"}");
    bson_destroy(&doc);
    free(bad);
    free(good);
}

/* depth nested small arrays: [[[...[]...]]]. */
static uint8_t *nested_arrays(int depth, size_t *len)
{
    size_t n = 1 + (size_t)depth * 7 - 3;
    uint8_t *p = malloc(n);
    size_t off = 1;

    assert_non_null(p);
    p[0] = 0x02;
    for (int d = 0; d < depth; d++) {
        size_t size = (size_t)(depth - d) * 7 - 3; /* this array's bytes */
        if (d == depth - 1) {
            memcpy(p + off, "\x00\x00\x04\x00", 4);
            off += 4;
            break;
        }
        p[off] = 1;
        p[off + 1] = 0;
        p[off + 2] = (uint8_t)(size & 0xff);
        p[off + 3] = (uint8_t)(size >> 8);
        p[off + 4] = 0x02;
        p[off + 5] = 7;
        p[off + 6] = 0;
        off += 7;
    }
    assert_int_equal(off, n);
    *len = n;
    return p;
}

static void test_bin_depth_limit(void **state)
{
    struct ms_error err = {0};
    size_t len;

    (void)state;
    for (int depth = MS_MYSQLJSON_MAX_DEPTH - 1; depth <= MS_MYSQLJSON_MAX_DEPTH + 1; depth++) {
        bson_t doc = BSON_INITIALIZER;
        uint8_t *p = nested_arrays(depth, &len);
        bool ok = ms_mysqljson_to_bson(p, len, &doc, "v", &err);
        if (depth <= MS_MYSQLJSON_MAX_DEPTH) {
            assert_true(ok);
        } else {
            assert_false(ok);
            assert_non_null(strstr(err.msg, "nesting"));
        }
        bson_destroy(&doc);
        free(p);
    }
    {
        bson_t doc = BSON_INITIALIZER;
        uint8_t *p = nested_arrays(5000, &len);
        assert_false(ms_mysqljson_to_bson(p, len, &doc, "v", &err));
        bson_destroy(&doc);
        free(p);
    }
}

/* Entries that all point at one shared container would expand exponentially; MySQL never
 * writes them, and the decoder refuses them. */
static void test_bin_shared_entries_refused(void **state)
{
    enum { N = 2000 };
    size_t inner = 4 + 3 * (size_t)N, outer_hdr = 8 + 5 * (size_t)N;
    size_t len = 1 + outer_hdr + inner;
    uint8_t *p = calloc(1, len);
    struct ms_error err = {0};
    bson_t doc = BSON_INITIALIZER;

    (void)state;
    assert_non_null(p);
    /* Large outer array of N entries, all at the inner array. */
    p[0] = 0x03;
    p[1] = N & 0xff;
    p[2] = N >> 8;
    p[5] = (uint8_t)((outer_hdr + inner) & 0xff);
    p[6] = (uint8_t)((outer_hdr + inner) >> 8);
    p[7] = (uint8_t)((outer_hdr + inner) >> 16);
    for (size_t i = 0; i < N; i++) {
        uint8_t *e = p + 9 + 5 * i;
        e[0] = 0x02;
        e[1] = (uint8_t)(outer_hdr & 0xff);
        e[2] = (uint8_t)(outer_hdr >> 8);
    }
    /* Small inner array of N inline int16 zeros. */
    {
        uint8_t *a = p + 1 + outer_hdr;
        a[0] = N & 0xff;
        a[1] = N >> 8;
        a[2] = (uint8_t)(inner & 0xff);
        a[3] = (uint8_t)(inner >> 8);
        for (size_t i = 0; i < N; i++) {
            a[4 + 3 * i] = 0x05;
        }
    }
    assert_false(ms_mysqljson_to_bson(p, len, &doc, "v", &err));
    assert_non_null(strstr(err.msg, "overlap"));
    bson_destroy(&doc);
    free(p);
}

static void test_bin_errors_and_arguments(void **state)
{
    struct ms_error err = {0};
    bson_t doc = BSON_INITIALIZER;
    const uint8_t one[] = {0x04, 0x00};

    (void)state;
    assert_false(ms_mysqljson_to_bson(one, sizeof(one), NULL, "v", &err));
    assert_false(ms_mysqljson_to_bson(one, sizeof(one), &doc, NULL, &err));
    assert_false(ms_mysqljson_to_bson(NULL, 3, &doc, "v", NULL)); /* err may be NULL */
    assert_false(ms_mysqljson_to_bson((const uint8_t *)"\x0d", 1, &doc, "v", &err));
    assert_int_equal(err.domain, MS_ERR_DECODE);
    assert_int_equal(err.code, MS_MYSQLJSON_MALFORMED);
    assert_non_null(strstr(err.msg, "unknown value type"));
    bson_destroy(&doc);
}

/* Every vector truncated at every length, and with one byte changed at every offset. */
static void fuzz_bin_one(const uint8_t *p, size_t len)
{
    static const uint8_t mut[] = {0x00, 0x01, 0x02, 0x03, 0x04, 0x0c, 0x0f, 0x7f, 0x80, 0xff};
    bson_t doc = BSON_INITIALIZER;

    BSON_APPEND_INT32(&doc, "id", 1);
    for (size_t l = 0; l <= len; l++) {
        uint8_t *d = dup_bytes(p, l);
        struct ms_error err = {0};
        uint32_t before = doc.len;
        bool ok = ms_mysqljson_to_bson(d, l, &doc, "v", &err);
        check_outcome(ok, &doc, before, &err);
        free(d);
        bson_reinit(&doc);
        BSON_APPEND_INT32(&doc, "id", 1);
    }
    for (size_t i = 0; i < len; i++) {
        for (size_t m = 0; m < sizeof(mut) + 1; m++) {
            uint8_t *d = dup_bytes(p, len);
            struct ms_error err = {0};
            uint32_t before = doc.len;
            bool ok;
            d[i] = m < sizeof(mut) ? mut[m] : (uint8_t)(d[i] ^ 0x01);
            ok = ms_mysqljson_to_bson(d, len, &doc, "v", &err);
            check_outcome(ok, &doc, before, &err);
            free(d);
            bson_reinit(&doc);
            BSON_APPEND_INT32(&doc, "id", 1);
        }
    }
    bson_destroy(&doc);
}

static void test_bin_robust(void **state)
{
    const struct bin_case *sets[] = {real_cases, hand_cases};
    const size_t counts[] = {sizeof(real_cases) / sizeof(real_cases[0]),
                             sizeof(hand_cases) / sizeof(hand_cases[0])};

    (void)state;
    for (size_t s = 0; s < 2; s++) {
        for (size_t i = 0; i < counts[s]; i++) {
            size_t len;
            uint8_t *p = unhex(sets[s][i].hex, &len);
            fuzz_bin_one(p, len);
            free(p);
        }
    }
}

/* ---------------------------------------------------------------------------------------
 * Text JSON (MariaDB) -> BSON
 * ------------------------------------------------------------------------------------- */

struct text_case {
    const char *name;
    const char *json;
    const char *expect; /* Extended JSON of {"v": value}; NULL: must be refused */
};

static const struct text_case text_cases[] = {
    {"int32", "1", "{\"v\": 1}"},
    {"negative zero is an integer", "-0", "{\"v\": 0}"},
    {"int64", "2147483648", "{\"v\": {\"$numberLong\": \"2147483648\"}}"},
    {"int64 max", "9223372036854775807", "{\"v\": {\"$numberLong\": \"9223372036854775807\"}}"},
    {"int64 min", "-9223372036854775808", "{\"v\": {\"$numberLong\": \"-9223372036854775808\"}}"},
    /* libbson alone: "out of range" errors, and 2^64 silently becomes 0. */
    {"int64 max + 1 -> Decimal128", "9223372036854775808",
     "{\"v\": {\"$numberDecimal\": \"9223372036854775808\"}}"},
    {"int64 min - 1 -> Decimal128", "-9223372036854775809",
     "{\"v\": {\"$numberDecimal\": \"-9223372036854775809\"}}"},
    {"2^64 -> Decimal128", "18446744073709551616",
     "{\"v\": {\"$numberDecimal\": \"18446744073709551616\"}}"},
    {"39-digit integer -> its text", "123456789012345678901234567890123456789",
     "{\"v\": \"123456789012345678901234567890123456789\"}"},
    {"double", "1.5", "{\"v\": 1.5}"},
    {"exponent makes a double", "1E2", "{\"v\": 100.0}"},
    {"double rounding as strtod", "0.1", "{\"v\": {\"$numberDouble\": \"0.1\"}}"},
    /* libbson alone: "out of range". */
    {"beyond double range -> Decimal128", "1.5e400", "{\"v\": {\"$numberDecimal\": \"1.5E+400\"}}"},
    {"beyond double range, negative", "-1.5e400", "{\"v\": {\"$numberDecimal\": \"-1.5E+400\"}}"},
    {"beyond Decimal128 range -> its text", "1e99999", "{\"v\": \"1e99999\"}"},
    {"below double range -> 0.0", "1e-400", "{\"v\": 0.0}"},
    {"true", "true", "{\"v\": true}"},
    {"false", " false ", "{\"v\": false}"},
    {"null", "null", "{\"v\": null}"},
    {"string", "\"h\\u00e9llo \\\"q\\\" \\\\ \\/ \\n\"",
     "{\"v\": \"h\\u00e9llo \\\"q\\\" \\\\ / \\n\"}"},
    {"string with NUL", "\"a\\u0000b\"", "{\"v\": \"a\\u0000b\"}"},
    {"surrogate pair", "\"\\ud83d\\ude00\"", "{\"v\": \"\xf0\x9f\x98\x80\"}"},
    {"raw UTF-8", "\"日本語\"", "{\"v\": \"日本語\"}"},
    {"empty object", "{}", "{\"v\": {}}"},
    {"empty array", " [ ] ", "{\"v\": []}"},
    {"object keeps key order", "{\"b\": 1, \"a\": [true, false, null], \"c\": {\"d\": \"e\"}}",
     "{\"v\": {\"b\": 1, \"a\": [true, false, null], \"c\": {\"d\": \"e\"}}}"},
    {"whitespace everywhere", " \t\r\n[ 1 ,\n 2 ,{ \"a\" :\t3 } ]\n",
     "{\"v\": [1, 2, {\"a\": 3}]}"},
    {"duplicate keys are kept", "{\"a\": 1, \"a\": 2}", "{\"v\": {\"a\": 1, \"a\": 2}}"},
    {"big numbers inside containers", "{\"n\": [18446744073709551616, 1.5e400, 7]}",
     "{\"v\": {\"n\": [{\"$numberDecimal\": \"18446744073709551616\"}, "
     "{\"$numberDecimal\": \"1.5E+400\"}, 7]}}"},
    /* Refused. */
    {"empty text", "", NULL},
    {"only whitespace", "  ", NULL},
    {"two values", "1 2", NULL},
    {"injected member", "1, \"w\": 2", NULL},
    {"injected document", "1}, {\"a\": 2", NULL},
    {"trailing document", "1} {\"a\": 2", NULL},
    {"trailing garbage", "[1]x", NULL},
    {"NaN", "NaN", NULL},
    {"Infinity", "Infinity", NULL},
    {"-Infinity", "-Infinity", NULL},
    {"lone minus", "-", NULL},
    {"leading zero", "01", NULL},
    {"no fraction digits", "1.", NULL},
    {"no integer digits", ".5", NULL},
    {"no exponent digits", "1e", NULL},
    {"plus sign", "+1", NULL},
    {"trailing comma in array", "[1,]", NULL},
    {"trailing comma in object", "{\"a\": 1,}", NULL},
    {"missing colon", "{\"a\" 1}", NULL},
    {"unquoted key", "{a: 1}", NULL},
    {"single quotes", "'a'", NULL},
    {"bad escape", "\"\\x\"", NULL},
    {"short \\u escape", "\"\\u12\"", NULL},
    {"raw tab in string", "\"a\tb\"", NULL},
    {"unterminated string", "\"abc", NULL},
    {"unterminated array", "[1, 2", NULL},
    {"unterminated object", "{\"a\": 1", NULL},
    {"mismatched brackets", "[1}", NULL},
    {"invalid UTF-8", "\"\xff\"", NULL},
    {"NUL in a key", "{\"a\\u0000\": 1}", NULL},
    {"lone surrogate", "\"\\ud800\"", NULL},
    {"truncated literal", "tru", NULL},
    {"misspelt literal", "nulL", NULL},
    {"comment", "[1] // c", NULL},
};

static void test_text_cases(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(text_cases) / sizeof(text_cases[0]); i++) {
        const struct text_case *c = &text_cases[i];
        struct ms_error err = {0};
        bson_t doc = BSON_INITIALIZER;
        size_t len = strlen(c->json);
        char *p = (char *)dup_bytes((const uint8_t *)c->json, len);
        bool ok = ms_textjson_to_bson(p, len, &doc, "v", &err);

        check_case(c->name, ok, &err, &doc, c->expect);
        bson_destroy(&doc);
        free(p);
    }
}

/* Keys starting with '$' stay plain keys (libbson alone reads Extended JSON there), and so
 * do keys starting with U+0001 (used internally to protect the former). */
static void test_text_dollar_keys(void **state)
{
    static const char *const json =
        "{\"$oid\": \"5f0000000000000000000000\", \"a\": {\"$date\": 1}, "
        "\"\\u0024numberDecimal\": \"1\", \"\\u0001x\": [{\"$regex\": \"a\", \"$options\": \"\"}],"
        " \"$\": {\"$numberLong\": \"5\"}}";
    struct ms_error err = {0};
    bson_t doc = BSON_INITIALIZER, *want;

    (void)state;
    if (!ms_textjson_to_bson(json, strlen(json), &doc, "v", &err)) {
        fail_msg("%s", err.msg);
    }
    want = BCON_NEW("v", "{", "$oid", BCON_UTF8("5f0000000000000000000000"), "a", "{", "$date",
                    BCON_INT32(1), "}", "$numberDecimal", BCON_UTF8("1"), "\x01x", "[", "{",
                    "$regex", BCON_UTF8("a"), "$options", BCON_UTF8(""), "}", "]", "$", "{",
                    "$numberLong", BCON_UTF8("5"), "}", "}");
    if (!bson_equal(&doc, want)) {
        char *got = bson_as_canonical_extended_json(&doc, NULL);
        fail_msg("got %s", got);
    }
    bson_destroy(want);
    bson_destroy(&doc);
}

static char *nest_text(int depth, bool objects)
{
    size_t cap = (size_t)depth * 6 + 8, n = 0;
    char *s = malloc(cap);

    assert_non_null(s);
    for (int i = 0; i < depth; i++) {
        if (objects) {
            memcpy(s + n, "{\"a\":", 5);
            n += 5;
        } else {
            s[n++] = '[';
        }
    }
    s[n++] = '1';
    for (int i = 0; i < depth; i++) {
        s[n++] = objects ? '}' : ']';
    }
    s[n] = '\0';
    return s;
}

static void test_text_depth_limit(void **state)
{
    (void)state;
    for (int objects = 0; objects <= 1; objects++) {
        for (int depth = MS_TEXTJSON_MAX_DEPTH - 1; depth <= MS_TEXTJSON_MAX_DEPTH + 1; depth++) {
            struct ms_error err = {0};
            bson_t doc = BSON_INITIALIZER;
            char *s = nest_text(depth, objects);
            bool ok = ms_textjson_to_bson(s, strlen(s), &doc, "v", &err);
            if (depth <= MS_TEXTJSON_MAX_DEPTH) {
                if (!ok) {
                    fail_msg("depth %d: %s", depth, err.msg);
                }
            } else {
                assert_false(ok);
                assert_non_null(strstr(err.msg, "nesting"));
            }
            bson_destroy(&doc);
            free(s);
        }
    }
    {
        /* A big number at the deepest level is one more level for libbson. */
        struct ms_error err = {0};
        bson_t doc = BSON_INITIALIZER;
        char *s = nest_text(MS_TEXTJSON_MAX_DEPTH, true);
        char *big = malloc(strlen(s) + 32);
        char *one = strchr(s, '1');
        assert_non_null(big);
        snprintf(big, strlen(s) + 32, "%.*s18446744073709551616%s", (int)(one - s), s, one + 1);
        if (!ms_textjson_to_bson(big, strlen(big), &doc, "v", &err)) {
            fail_msg("%s", err.msg);
        }
        bson_destroy(&doc);
        free(big);
        free(s);
    }
}

static void test_text_parent_untouched(void **state)
{
    struct ms_error err = {0};
    bson_t doc = BSON_INITIALIZER;

    (void)state;
    BSON_APPEND_INT32(&doc, "id", 7);
    assert_false(ms_textjson_to_bson("[1, 2", 5, &doc, "j", &err));
    assert_false(ms_textjson_to_bson("{\"$oid\": 1, \"x\": ", 17, &doc, "j", &err));
    assert_false(ms_textjson_to_bson(NULL, 1, &doc, "j", &err));
    assert_false(ms_textjson_to_bson("1", 1, NULL, "j", &err));
    assert_doc("after failures", &doc, "{\"id\": 7}");
    /* The length is what counts, not a terminating NUL. */
    assert_true(ms_textjson_to_bson("[1, 2]garbage", 6, &doc, "j", &err));
    assert_false(ms_textjson_to_bson("[1]\0", 4, &doc, "k", &err));
    assert_doc("after success", &doc, "{\"id\": 7, \"j\": [1, 2]}");
    bson_destroy(&doc);
}

static void test_text_robust(void **state)
{
    static const char mut[] = {'{', '}', '[', ']', '"', '\\', ',',    ':',    '0',   '-',
                               'e', '.', '$', 'u', ' ', '\0', '\x01', '\xff', '\xc3'};
    bson_t doc = BSON_INITIALIZER;

    (void)state;
    for (size_t c = 0; c < sizeof(text_cases) / sizeof(text_cases[0]); c++) {
        const char *src = text_cases[c].json;
        size_t len = strlen(src);
        for (size_t l = 0; l <= len; l++) {
            char *d = (char *)dup_bytes((const uint8_t *)src, l);
            struct ms_error err = {0};
            uint32_t before = doc.len;
            bool ok = ms_textjson_to_bson(d, l, &doc, "v", &err);
            check_outcome(ok, &doc, before, &err);
            free(d);
            bson_reinit(&doc);
        }
        for (size_t i = 0; i < len; i++) {
            for (size_t m = 0; m < sizeof(mut); m++) {
                char *d = (char *)dup_bytes((const uint8_t *)src, len);
                struct ms_error err = {0};
                uint32_t before = doc.len;
                bool ok;
                d[i] = mut[m];
                ok = ms_textjson_to_bson(d, len, &doc, "v", &err);
                check_outcome(ok, &doc, before, &err);
                free(d);
                bson_reinit(&doc);
            }
        }
    }
    bson_destroy(&doc);
}

/* ---------------------------------------------------------------------------------------
 * JSON diffs (PARTIAL_UPDATE_ROWS_EVENT)
 * ------------------------------------------------------------------------------------- */

/* Binary JSON values used by the diffs below: 26, 9, "new", true, null,
 * {"x": 1, "yy": [true]} and [1, "two"]. */
#define J_26   "051a00"
#define J_9    "050900"
#define J_NEW  "0c036e6577"
#define J_TRUE "0401"
#define J_NULL "0400"
#define J_OBJ  "0002001c00120001001300020005010002150078797901000700040100"
#define J_ARR  "0202000e000501000c0a000374776f"

enum { R = 0, I = 1, D = 2 }; /* REPLACE, INSERT, REMOVE */

struct diff_spec {
    int op;
    const char *path;
    const char *value; /* hex binary JSON; NULL for REMOVE */
};

struct diff_case {
    const char *name;
    const char *before;        /* Extended JSON of {"v": old value} */
    struct diff_spec diffs[4]; /* op -1 ends */
    const char *expect;        /* Extended JSON of {"v": new value}; NULL: refused */
    uint32_t code;             /* expected error code when refused */
};

/* clang-format off */
#define END {-1, NULL, NULL}
/* clang-format on */
#define CANT MS_MYSQLJSON_CANNOT_APPLY

static const struct diff_case diff_cases[] = {
    {"replace member",
     "{\"v\": {\"a\": 1, \"b\": 2}}",
     {{R, "$.a", J_26}, END},
     "{\"v\": {\"a\": 26, \"b\": 2}}"},
    {"replace nested array element",
     "{\"v\": {\"a\": {\"b\": [1, 2, 3]}}}",
     {{R, "$.a.b[1]", J_NEW}, END},
     "{\"v\": {\"a\": {\"b\": [1, \"new\", 3]}}}"},
    {"replace with object and array values",
     "{\"v\": [0, {\"k\": 0}]}",
     {{R, "$[0]", J_OBJ}, {R, "$[1].k", J_ARR}, END},
     "{\"v\": [{\"x\": 1, \"yy\": [true]}, {\"k\": [1, \"two\"]}]}"},
    {"replace [last] and [last-1]",
     "{\"v\": [1, 2, 3]}",
     {{R, "$[last]", J_9}, {R, "$[last - 1]", J_NULL}, END},
     "{\"v\": [1, null, 9]}"},
    {"insert member in MySQL key order",
     "{\"v\": {\"a\": 1, \"ccc\": 3}}",
     {{I, "$.bb", J_NEW}, {I, "$.b", J_TRUE}, {I, "$.zzzz", J_9}, END},
     "{\"v\": {\"a\": 1, \"b\": true, \"bb\": \"new\", \"ccc\": 3, \"zzzz\": 9}}"},
    {"insert member into empty object",
     "{\"v\": {\"o\": {}}}",
     {{I, "$.o.k", J_9}, END},
     "{\"v\": {\"o\": {\"k\": 9}}}"},
    {"insert into array at an index",
     "{\"v\": [1, 2, 3]}",
     {{I, "$[1]", J_9}, END},
     "{\"v\": [1, 9, 2, 3]}"},
    {"insert into array at 0 and past the end",
     "{\"v\": {\"a\": [1]}}",
     {{I, "$.a[0]", J_NULL}, {I, "$.a[100]", J_9}, END},
     "{\"v\": {\"a\": [null, 1, 9]}}"},
    {"insert into empty array", "{\"v\": []}", {{I, "$[0]", J_TRUE}, END}, "{\"v\": [true]}"},
    {"remove member",
     "{\"v\": {\"a\": 1, \"b\": 2, \"c\": 3}}",
     {{D, "$.b", NULL}, END},
     "{\"v\": {\"a\": 1, \"c\": 3}}"},
    {"remove array elements renumbers",
     "{\"v\": [0, 1, 2, 3]}",
     {{D, "$[0]", NULL}, {D, "$[last]", NULL}, END},
     "{\"v\": [1, 2]}"},
    {"remove nested",
     "{\"v\": {\"a\": [{\"b\": 1, \"c\": 2}]}}",
     {{D, "$.a[0].c", NULL}, END},
     "{\"v\": {\"a\": [{\"b\": 1}]}}"},
    {"quoted members",
     "{\"v\": {\"b c\": {\"a\\\"q\": 1, \"\\u00fc\": 2}}}",
     {{R, "$.\"b c\".\"a\\\"q\"", J_9}, {D, "$.\"b c\".\"\\u00fc\"", NULL}, END},
     "{\"v\": {\"b c\": {\"a\\\"q\": 9}}}"},
    {"quoted member with surrogate pair",
     "{\"v\": {\"\xf0\x9f\x98\x80\": 1}}",
     {{R, "$.\"\\ud83d\\ude00\"", J_9}, END},
     "{\"v\": {\"\xf0\x9f\x98\x80\": 9}}"},
    {"unquoted unicode member",
     "{\"v\": {\"ключ\": 1}}",
     {{R, "$.ключ", J_9}, END},
     "{\"v\": {\"ключ\": 9}}"},
    {"whitespace in the path",
     "{\"v\": {\"a\": [0, 1]}}",
     {{R, " $ . a [ 1 ] ", J_9}, END},
     "{\"v\": {\"a\": [0, 9]}}"},
    {"diffs in order",
     "{\"v\": {\"a\": [1], \"b\": 2}}",
     {{R, "$.b", J_ARR}, {I, "$.b[1]", J_9}, {D, "$.a", NULL}, {I, "$.a", J_NULL}},
     "{\"v\": {\"a\": null, \"b\": [1, 9, \"two\"]}}"},
    {"empty diff vector", "{\"v\": {\"a\": 1}}", {END}, "{\"v\": {\"a\": 1}}"},
    /* Cannot be applied: the caller re-reads the row. */
    {"replace missing member", "{\"v\": {\"a\": 1}}", {{R, "$.b", J_9}, END}, NULL, CANT},
    {"remove missing member", "{\"v\": {\"a\": 1}}", {{D, "$.b", NULL}, END}, NULL, CANT},
    {"insert existing member", "{\"v\": {\"a\": 1}}", {{I, "$.a", J_9}, END}, NULL, CANT},
    {"insert under missing parent", "{\"v\": {\"a\": 1}}", {{I, "$.x.y", J_9}, END}, NULL, CANT},
    {"path through a scalar", "{\"v\": {\"a\": 1}}", {{R, "$.a.b", J_9}, END}, NULL, CANT},
    {"index on an object", "{\"v\": {\"a\": 1}}", {{R, "$[0]", J_9}, END}, NULL, CANT},
    {"insert index on an object", "{\"v\": {\"a\": 1}}", {{I, "$[0]", J_9}, END}, NULL, CANT},
    {"member on an array", "{\"v\": [1]}", {{R, "$.a", J_9}, END}, NULL, CANT},
    {"replace index out of range", "{\"v\": [1]}", {{R, "$[1]", J_9}, END}, NULL, CANT},
    {"remove index out of range", "{\"v\": [1]}", {{D, "$[last-1]", NULL}, END}, NULL, CANT},
    {"diff on a scalar document", "{\"v\": 5}", {{R, "$[0]", J_9}, END}, NULL, CANT},
    {"root path", "{\"v\": {\"a\": 1}}", {{R, "$", J_9}, END}, NULL, CANT},
    {"member wildcard", "{\"v\": {\"a\": 1}}", {{R, "$.*", J_9}, END}, NULL, CANT},
    {"array wildcard", "{\"v\": [1]}", {{D, "$[*]", NULL}, END}, NULL, CANT},
    {"ellipsis", "{\"v\": {\"a\": 1}}", {{R, "$**.a", J_9}, END}, NULL, CANT},
    {"range", "{\"v\": [1, 2]}", {{D, "$[0 to 1]", NULL}, END}, NULL, CANT},
    {"no dollar", "{\"v\": {\"a\": 1}}", {{R, ".a", J_9}, END}, NULL, CANT},
    {"empty member name", "{\"v\": {\"a\": 1}}", {{R, "$.", J_9}, END}, NULL, CANT},
    {"index beyond 32 bits", "{\"v\": [1]}", {{R, "$[4294967296]", J_9}, END}, NULL, CANT},
    {"unterminated quoted member", "{\"v\": {\"a\": 1}}", {{R, "$.\"a", J_9}, END}, NULL, CANT},
    {"lone surrogate in member",
     "{\"v\": {\"a\": 1}}",
     {{R, "$.\"\\ud800\"", J_9}, END},
     NULL,
     CANT},
    {"NUL in member", "{\"v\": {\"a\": 1}}", {{R, "$.\"\\u0000\"", J_9}, END}, NULL, CANT},
    {"second diff fails",
     "{\"v\": {\"a\": 1}}",
     {{R, "$.a", J_9}, {R, "$.b", J_9}, END},
     NULL,
     CANT},
    /* Not decodable. */
    {"value not binary JSON",
     "{\"v\": {\"a\": 1}}",
     {{R, "$.a", "0d"}, END},
     NULL,
     MS_MYSQLJSON_MALFORMED},
};

static void put_lenenc(uint8_t *out, size_t *n, size_t v)
{
    if (v < 251) {
        out[(*n)++] = (uint8_t)v;
    } else {
        out[(*n)++] = 0xfc;
        out[(*n)++] = (uint8_t)(v & 0xff);
        out[(*n)++] = (uint8_t)(v >> 8);
    }
}

/* The diff vector of c as bytes (malloc'd, exact size). */
static uint8_t *build_diffs(const struct diff_case *c, size_t *len)
{
    uint8_t buf[4096];
    size_t n = 0;

    for (size_t i = 0; i < 4 && c->diffs[i].op >= 0; i++) {
        const struct diff_spec *d = &c->diffs[i];
        size_t pl = strlen(d->path);
        buf[n++] = (uint8_t)d->op;
        put_lenenc(buf, &n, pl);
        memcpy(buf + n, d->path, pl);
        n += pl;
        if (d->value != NULL) {
            size_t vl;
            uint8_t *v = unhex(d->value, &vl);
            put_lenenc(buf, &n, vl);
            memcpy(buf + n, v, vl);
            n += vl;
            free(v);
        }
        assert_true(n < sizeof(buf) - 512);
    }
    *len = n;
    return dup_bytes(buf, n);
}

static bson_t *doc_from_json(const char *json)
{
    bson_error_t berr;
    bson_t *b = bson_new_from_json((const uint8_t *)json, -1, &berr);

    if (b == NULL) {
        fail_msg("bad test JSON %s: %s", json, berr.message);
    }
    return b;
}

static void test_diff_cases(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(diff_cases) / sizeof(diff_cases[0]); i++) {
        const struct diff_case *c = &diff_cases[i];
        struct ms_error err = {0};
        bson_t *before = doc_from_json(c->before), after;
        size_t len;
        uint8_t *p = build_diffs(c, &len);
        bool ok = ms_mysqljson_apply_diffs(before, "v", p, len, &after, &err);

        if (c->expect == NULL) {
            if (ok) {
                char *j = bson_as_canonical_extended_json(&after, NULL);
                fail_msg("%s: applied as %s", c->name, j);
            }
            assert_int_equal(err.domain, MS_ERR_DECODE);
            if (err.code != c->code) {
                fail_msg("%s: code %u (%s), expected %u", c->name, err.code, err.msg, c->code);
            }
        } else {
            if (!ok) {
                fail_msg("%s: %s", c->name, err.msg);
            }
            assert_doc(c->name, &after, c->expect);
        }
        bson_destroy(&after);
        bson_destroy(before);
        free(p);
    }
}

/* json.binlog.000001 (MySQL 8.0.22): PARTIAL_UPDATE_ROWS_EVENT @3750 (binlog_row_value_options
 * = PARTIAL_JSON), first row (id 1): the JSON column's diff vector at file offset 3794 (after
 * its 4-byte length 11): REPLACE '$.age' with int16 26, i.e. the statement was a JSON_SET /
 * JSON_REPLACE of age + 1. The before image of that event holds only the id, so the old value
 * is the after image of the UPDATE_ROWS_v2 @2612 (file offset 2723, age 25). The event's own
 * generated column age (= json_col->'$.age') is 26 in the same after image. */
struct diff_real_case {
    const char *name, *before_hex, *diff_hex, *expect;
};

static const struct diff_real_case diff_real_cases[] = {
    {"json.binlog.000001 PARTIAL_UPDATE_ROWS @3750 row id 1 (file offset 3794)",
     "0003003300190003001c000400200004000519000c24000c2f00616765646174616e616d650a7878"
     "7878787878787878034a6f65",
     "0005242e61676503051a00",
     "{\"v\": {\"age\": 26, \"data\": \"xxxxxxxxxx\", \"name\": \"Joe\"}}"},
    /* Row id 3 of the same event: diff at file offset 3858, old value the after image
     * of id 3 in UPDATE_ROWS_v2 @2612 (file offset 3005, age 41). */
    {"json.binlog.000001 PARTIAL_UPDATE_ROWS @3750 row id 3",
     "0003003400190003001c000400200004000529000c24000c2f00616765646174616e616d650a7a7a"
     "7a7a7a7a7a7a7a7a0450657465",
     "0005242e61676503052a00",
     "{\"v\": {\"age\": 42, \"data\": \"zzzzzzzzzz\", \"name\": \"Pete\"}}"},
};

static void test_diff_real(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(diff_real_cases) / sizeof(diff_real_cases[0]); i++) {
        const struct diff_real_case *c = &diff_real_cases[i];
        struct ms_error err = {0};
        bson_t before = BSON_INITIALIZER, after;
        size_t blen, dlen;
        uint8_t *b = unhex(c->before_hex, &blen);
        uint8_t *d = unhex(c->diff_hex, &dlen);

        assert_true(ms_mysqljson_to_bson(b, blen, &before, "v", &err));
        if (!ms_mysqljson_apply_diffs(&before, "v", d, dlen, &after, &err)) {
            fail_msg("%s: %s", c->name, err.msg);
        }
        assert_doc(c->name, &after, c->expect);
        bson_destroy(&after);
        bson_destroy(&before);
        free(b);
        free(d);
    }
}

static void test_diff_framing(void **state)
{
    static const struct {
        const char *name, *hex;
        uint32_t code;
    } bad[] = {
        {"unknown operation", "03 03 242e61", MS_MYSQLJSON_MALFORMED},
        {"path length beyond the vector", "02 09 242e61", MS_MYSQLJSON_MALFORMED},
        {"path length prefix 0xfb", "02 fb", MS_MYSQLJSON_MALFORMED},
        {"path length prefix 0xff", "02 ff 00", MS_MYSQLJSON_MALFORMED},
        {"path length prefix truncated", "02 fc 03", MS_MYSQLJSON_MALFORMED},
        {"path length 8 bytes, huge", "02 fe ffffffffffffffff 242e61", MS_MYSQLJSON_MALFORMED},
        {"value missing", "00 03 242e61", MS_MYSQLJSON_MALFORMED},
        {"value length beyond the vector", "00 03 242e61 05 0501", MS_MYSQLJSON_MALFORMED},
        {"path length 0xfc-encoded", "02 fc 0300 242e61", 0},
        {"value length 0xfd-encoded", "00 03 242e61 fd 030000 050900", 0},
        {"empty value is null", "00 03 242e61 00", 0},
    };
    bson_t *before = doc_from_json("{\"v\": {\"a\": 1}}");

    (void)state;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct ms_error err = {0};
        bson_t after;
        size_t len;
        uint8_t *p = unhex(bad[i].hex, &len);
        bool ok = ms_mysqljson_apply_diffs(before, "v", p, len, &after, &err);
        if (bad[i].code == 0) {
            if (!ok) {
                fail_msg("%s: %s", bad[i].name, err.msg);
            }
        } else {
            if (ok) {
                fail_msg("%s: accepted", bad[i].name);
            }
            assert_int_equal(err.code, bad[i].code);
        }
        bson_destroy(&after);
        free(p);
    }
    bson_destroy(before);
}

static void test_diff_arguments(void **state)
{
    struct ms_error err = {0};
    bson_t *before = doc_from_json("{\"v\": {\"a\": 1}, \"n\": null}"), after;
    const uint8_t remove_a[] = {0x02, 0x03, '$', '.', 'a'};

    (void)state;
    /* The after document is initialised even on failure. */
    assert_false(ms_mysqljson_apply_diffs(NULL, "v", remove_a, 5, &after, &err));
    assert_int_equal(err.code, MS_MYSQLJSON_MALFORMED);
    bson_destroy(&after);
    assert_false(ms_mysqljson_apply_diffs(before, "missing", remove_a, 5, &after, &err));
    assert_int_equal(err.code, MS_MYSQLJSON_CANNOT_APPLY);
    bson_destroy(&after);
    assert_false(ms_mysqljson_apply_diffs(before, "n", remove_a, 5, &after, &err));
    assert_int_equal(err.code, MS_MYSQLJSON_CANNOT_APPLY);
    bson_destroy(&after);
    assert_false(ms_mysqljson_apply_diffs(before, "v", NULL, 5, &after, NULL));
    bson_destroy(&after);
    /* Only the column's key is in after; before is not modified. */
    assert_true(ms_mysqljson_apply_diffs(before, "v", remove_a, 5, &after, &err));
    assert_doc("after", &after, "{\"v\": {}}");
    assert_doc("before", before, "{\"v\": {\"a\": 1}, \"n\": null}");
    bson_destroy(&after);
    bson_destroy(before);
}

static void test_diff_robust(void **state)
{
    static const uint8_t mut[] = {0x00, 0x01, 0x02, 0x03, 0x05, 0x0c, 0x22, 0x24, 0x2a,
                                  0x2e, 0x5b, 0x5d, 0x5c, 0x7f, 0x80, 0xfb, 0xfc, 0xff};

    (void)state;
    for (size_t c = 0; c < sizeof(diff_cases) / sizeof(diff_cases[0]); c++) {
        bson_t *before = doc_from_json(diff_cases[c].before);
        size_t len;
        uint8_t *p = build_diffs(&diff_cases[c], &len);
        for (size_t l = 0; l <= len; l++) {
            struct ms_error err = {0};
            bson_t after;
            uint8_t *d = dup_bytes(p, l);
            size_t off;
            if (ms_mysqljson_apply_diffs(before, "v", d, l, &after, &err)) {
                assert_true(bson_validate(&after, BSON_VALIDATE_NONE, &off));
            } else {
                assert_int_equal(err.domain, MS_ERR_DECODE);
            }
            bson_destroy(&after);
            free(d);
        }
        for (size_t i = 0; i < len; i++) {
            for (size_t m = 0; m < sizeof(mut); m++) {
                struct ms_error err = {0};
                bson_t after;
                uint8_t *d = dup_bytes(p, len);
                size_t off;
                d[i] = mut[m];
                if (ms_mysqljson_apply_diffs(before, "v", d, len, &after, &err)) {
                    assert_true(bson_validate(&after, BSON_VALIDATE_NONE, &off));
                } else {
                    assert_int_equal(err.domain, MS_ERR_DECODE);
                }
                bson_destroy(&after);
                free(d);
            }
        }
        free(p);
        bson_destroy(before);
    }
}

/* Every input the fuzzer found trouble with (tests/data/fuzz/mysqljson-*) replays cleanly. */
static void test_fuzz_artifacts_replay(void **state)
{
    (void)state;
    tu_fuzz_replay("mysqljson-", ms_fuzz_mysqljson_one);
}

/* ---------------------------------------------------------------------------------------
 * Fuzz seeds (MS_FUZZ_SEEDS, tests/fuzz/seeds.sh): the vectors above in the input format of
 * tests/fuzz/mysqljson_driver.c
 * ------------------------------------------------------------------------------------- */

/* A diff seed: its first byte is where the driver splits the input, 1 + the before value's
 * length: [split][before value][diff vector]. */
static void seed_diff(const uint8_t *before, size_t blen, const uint8_t *diff, size_t dlen,
                      const char *name, size_t i)
{
    uint8_t *p = malloc(1 + blen + dlen);

    assert_non_null(p);
    assert_true(blen < 255);
    p[0] = (uint8_t)(1 + blen);
    memcpy(p + 1, before, blen);
    memcpy(p + 1 + blen, diff, dlen);
    tu_fuzz_seed(p, 1 + blen + dlen, "%s-%02zu", name, i);
    free(p);
}

static void write_seeds(void)
{
    const struct bin_case *sets[] = {real_cases, hand_cases};
    const size_t counts[] = {sizeof(real_cases) / sizeof(real_cases[0]),
                             sizeof(hand_cases) / sizeof(hand_cases[0])};
    size_t olen, alen;
    uint8_t *obj = unhex(J_OBJ, &olen), *arr = unhex(J_ARR, &alen);

    for (size_t s = 0; s < 2; s++) {
        for (size_t i = 0; i < counts[s]; i++) {
            size_t len;
            uint8_t *p = unhex(sets[s][i].hex, &len);
            tu_fuzz_seed(p, len, "bin-%s-%02zu", s == 0 ? "real" : "hand", i);
            free(p);
        }
    }
    for (size_t i = 0; i < sizeof(text_cases) / sizeof(text_cases[0]); i++) {
        tu_fuzz_seed(text_cases[i].json, strlen(text_cases[i].json), "text-%02zu", i);
    }
    for (size_t i = 0; i < sizeof(diff_real_cases) / sizeof(diff_real_cases[0]); i++) {
        size_t blen, dlen;
        uint8_t *b = unhex(diff_real_cases[i].before_hex, &blen);
        uint8_t *d = unhex(diff_real_cases[i].diff_hex, &dlen);
        seed_diff(b, blen, d, dlen, "diff-real", i);
        free(b);
        free(d);
    }
    /* The diff cases' old values are Extended JSON: their diffs go with one of the binary
     * values above instead, an array for a path that starts with an index. */
    for (size_t i = 0; i < sizeof(diff_cases) / sizeof(diff_cases[0]); i++) {
        const char *path = diff_cases[i].diffs[0].path;
        bool index = path != NULL && strncmp(path, "$[", 2) == 0;
        size_t dlen;
        uint8_t *d = build_diffs(&diff_cases[i], &dlen);
        seed_diff(index ? arr : obj, index ? alen : olen, d, dlen, "diff", i);
        free(d);
    }
    free(obj);
    free(arr);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bin_real),
        cmocka_unit_test(test_bin_hand),
        cmocka_unit_test(test_bin_empty_is_null),
        cmocka_unit_test(test_bin_parent_untouched),
        cmocka_unit_test(test_bin_depth_limit),
        cmocka_unit_test(test_bin_shared_entries_refused),
        cmocka_unit_test(test_bin_errors_and_arguments),
        cmocka_unit_test(test_bin_robust),
        cmocka_unit_test(test_text_cases),
        cmocka_unit_test(test_text_dollar_keys),
        cmocka_unit_test(test_text_depth_limit),
        cmocka_unit_test(test_text_parent_untouched),
        cmocka_unit_test(test_text_robust),
        cmocka_unit_test(test_diff_cases),
        cmocka_unit_test(test_diff_real),
        cmocka_unit_test(test_diff_framing),
        cmocka_unit_test(test_diff_arguments),
        cmocka_unit_test(test_diff_robust),
        cmocka_unit_test(test_fuzz_artifacts_replay),
    };

    if (tu_fuzz_seeds_dir() != NULL) {
        write_seeds();
        return 0;
    }
    return cmocka_run_group_tests(tests, NULL, NULL);
}

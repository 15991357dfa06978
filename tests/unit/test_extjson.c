/* ms_extjson_append writes exactly what libbson's bson_as_relaxed_extended_json writes, for
 * every type it handles: checked on hand-picked edge values and on generated documents. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "mysync/extjson.h"

static void assert_like_libbson(const bson_t *doc)
{
    struct ms_buf b = {0};
    char *want = bson_as_relaxed_extended_json(doc, NULL);

    assert_non_null(want);
    assert_true(ms_extjson_append(&b, doc));
    b.p[b.len] = '\0';
    if (strcmp(b.p, want) != 0) {
        fail_msg("\n got: %s\nwant: %s", b.p, want);
    }
    bson_free(want);
    ms_buf_free(&b);
}

static void edges(void **state)
{
    bson_t d = BSON_INITIALIZER, e = BSON_INITIALIZER, a, sub;
    bson_decimal128_t dec;
    static const double doubles[] = {3.0,
                                     -0.0,
                                     0.0,
                                     1e300,
                                     -1e-300,
                                     1e-7,
                                     0.1,
                                     123456789012.0,
                                     2.5e15,
                                     4.9e-324,
                                     1.7976931348623157e308};
    static const int64_t dates[] = {0,
                                    1,
                                    999,
                                    1000,
                                    -1,
                                    -86400000LL,
                                    253402300799999LL,
                                    253402300800000LL,
                                    1700000000123LL,
                                    -30610224000000LL};
    char key[16];

    (void)state;
    assert_like_libbson(&e);
    BSON_APPEND_DOCUMENT(&d, "empty", &e);
    BSON_APPEND_ARRAY_BEGIN(&d, "ea", &a);
    bson_append_array_end(&d, &a);
    BSON_APPEND_UTF8(&d, "s",
                     "q\"b\\/\x01\x1f\x7f\n\t\r\b\f \xc3\xa9 \xe2\x80\xa8 \xf0\x9f\x8d\xb0");
    BSON_APPEND_UTF8(&d, "k\"e\ty", "");
    for (size_t i = 0; i < sizeof(doubles) / sizeof(doubles[0]); i++) {
        snprintf(key, sizeof(key), "d%zu", i);
        BSON_APPEND_DOUBLE(&d, key, doubles[i]);
    }
    BSON_APPEND_DOUBLE(&d, "nan", NAN);
    BSON_APPEND_DOUBLE(&d, "inf", INFINITY);
    BSON_APPEND_DOUBLE(&d, "ninf", -INFINITY);
    for (size_t i = 0; i < sizeof(dates) / sizeof(dates[0]); i++) {
        snprintf(key, sizeof(key), "t%zu", i);
        BSON_APPEND_DATE_TIME(&d, key, dates[i]);
    }
    for (uint32_t n = 0; n < 7; n++) {
        snprintf(key, sizeof(key), "b%u", n);
        bson_append_binary(&d, key, -1, n % 2 ? BSON_SUBTYPE_USER : BSON_SUBTYPE_BINARY,
                           (const uint8_t *)"\x00\xff\x10\x80xyz", n);
    }
    BSON_APPEND_BOOL(&d, "t", true);
    BSON_APPEND_BOOL(&d, "f", false);
    BSON_APPEND_NULL(&d, "n");
    BSON_APPEND_INT64(&d, "imin", INT64_MIN);
    BSON_APPEND_INT64(&d, "imax", INT64_MAX);
    BSON_APPEND_INT32(&d, "j", -5);
    BSON_APPEND_INT32(&d, "jmin", INT32_MIN);
    bson_decimal128_from_string("-12345678901234567890.123456789", &dec);
    BSON_APPEND_DECIMAL128(&d, "dec", &dec);
    bson_decimal128_from_string("0E-30", &dec);
    BSON_APPEND_DECIMAL128(&d, "dec0", &dec);
    BSON_APPEND_DOCUMENT_BEGIN(&d, "sub", &sub);
    BSON_APPEND_ARRAY_BEGIN(&sub, "arr", &a);
    BSON_APPEND_INT32(&a, "0", 1);
    BSON_APPEND_UTF8(&a, "1", "x");
    bson_append_array_end(&sub, &a);
    bson_append_document_end(&d, &sub);
    assert_like_libbson(&d);
    bson_destroy(&d);
}

static uint64_t rng = 0x9e3779b97f4a7c15ULL;

static uint64_t next(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

static void random_string(char *s, size_t max)
{
    static const char *const pieces[] = {
        "a",   "Z",    "0",    " ",    "\"",       "\\",           "/",
        "\n",  "\x01", "\x1f", "\x7f", "\xc3\xa9", "\xe2\x82\xac", "\xf0\x9f\x8d\xb0",
        "key", "$"};
    size_t n = 0, count = next() % 12;

    for (size_t i = 0; i < count; i++) {
        const char *p = pieces[next() % (sizeof(pieces) / sizeof(pieces[0]))];
        size_t l = strlen(p);
        if (n + l + 1 >= max) {
            break;
        }
        memcpy(s + n, p, l);
        n += l;
    }
    s[n] = '\0';
}

static void fill(bson_t *d, int depth)
{
    size_t n = next() % 8;
    char key[64], str[64];
    bson_t child;
    bson_decimal128_t dec;
    double dv;
    uint64_t bits;

    for (size_t i = 0; i < n; i++) {
        random_string(key, sizeof(key));
        switch (next() % 11) {
        case 0:
            random_string(str, sizeof(str));
            BSON_APPEND_UTF8(d, key, str);
            break;
        case 1:
            BSON_APPEND_INT32(d, key, (int32_t)next());
            break;
        case 2:
            BSON_APPEND_INT64(d, key, (int64_t)next());
            break;
        case 3:
            bits = next();
            memcpy(&dv, &bits, sizeof(dv)); /* any bit pattern: NaN, inf, subnormals */
            BSON_APPEND_DOUBLE(d, key, dv);
            break;
        case 4:
            BSON_APPEND_DATE_TIME(d, key,
                                  (int64_t)(next() % 600000000000000ULL) - 100000000000000LL);
            break;
        case 5:
            snprintf(str, sizeof(str), "%s%llu.%llu", next() % 2 ? "-" : "",
                     (unsigned long long)(next() % 1000000000000ULL),
                     (unsigned long long)(next() % 100000));
            bson_decimal128_from_string(str, &dec);
            BSON_APPEND_DECIMAL128(d, key, &dec);
            break;
        case 6:
            random_string(str, sizeof(str));
            bson_append_binary(d, key, -1, BSON_SUBTYPE_BINARY, (const uint8_t *)str,
                               (uint32_t)strlen(str));
            break;
        case 7:
            BSON_APPEND_NULL(d, key);
            break;
        case 8:
            BSON_APPEND_BOOL(d, key, next() % 2);
            break;
        case 9:
            if (depth < 4) {
                BSON_APPEND_DOCUMENT_BEGIN(d, key, &child);
                fill(&child, depth + 1);
                bson_append_document_end(d, &child);
            }
            break;
        default:
            if (depth < 4) {
                bson_t arr;
                size_t m = next() % 4;
                BSON_APPEND_ARRAY_BEGIN(d, key, &arr);
                for (size_t j = 0; j < m; j++) {
                    char idx[16];
                    snprintf(idx, sizeof(idx), "%zu", j);
                    BSON_APPEND_INT64(&arr, idx, (int64_t)next());
                }
                bson_append_array_end(d, &arr);
            }
            break;
        }
    }
}

static void generated(void **state)
{
    (void)state;
    for (int i = 0; i < 5000; i++) {
        bson_t d = BSON_INITIALIZER;
        fill(&d, 0);
        assert_like_libbson(&d);
        bson_destroy(&d);
    }
}

static void unknown_type_refused(void **state)
{
    bson_t d = BSON_INITIALIZER;
    bson_oid_t oid;
    struct ms_buf b = {0};

    (void)state;
    BSON_APPEND_INT32(&d, "a", 1);
    bson_oid_init_from_string(&oid, "0123456789abcdef01234567");
    BSON_APPEND_OID(&d, "_id", &oid);
    assert_true(ms_extjson_append(&b, &d) == false);
    assert_int_equal(b.len, 0); /* nothing half-written */
    ms_buf_free(&b);
    bson_destroy(&d);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(edges),
        cmocka_unit_test(generated),
        cmocka_unit_test(unknown_type_refused),
    };
    return cmocka_run_group_tests_name("extjson", tests, NULL, NULL);
}

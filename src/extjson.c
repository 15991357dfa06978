#include "mysync/extjson.h"

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#ifdef __SSE2__
#include <emmintrin.h>
#endif

void ms_buf_reset(struct ms_buf *b)
{
    b->len = 0;
}

void ms_buf_free(struct ms_buf *b)
{
    free(b->p);
    b->p = NULL;
    b->len = b->cap = 0;
}

bool ms_buf_grow(struct ms_buf *b, size_t more)
{
    char *np;
    size_t cap;

    if (b->len + more + 1 <= b->cap) {
        return true;
    }
    cap = b->cap > 0 ? b->cap : 4096;
    while (cap < b->len + more + 1) {
        cap *= 2;
    }
    np = realloc(b->p, cap);
    if (np == NULL) {
        return false;
    }
    b->p = np;
    b->cap = cap;
    return true;
}

#define reserve ms_buf_reserve
#define put     ms_buf_put

#define PUTS(b, lit) put((b), (lit), sizeof(lit) - 1)

size_t ms_extjson_plain_len(const char *s, size_t n)
{
    size_t i = 0;

#ifdef __SSE2__
    {
        /* signed compares: bytes >= 0x80 are negative, so "< 0x20" catches them too */
        const __m128i space = _mm_set1_epi8(0x20), quote = _mm_set1_epi8('"'),
                      bslash = _mm_set1_epi8('\\'), del = _mm_set1_epi8(0x7f);

        for (; i + 16 <= n; i += 16) {
            __m128i v = _mm_loadu_si128((const __m128i *)(const void *)(s + i));
            __m128i bad =
                _mm_or_si128(_mm_or_si128(_mm_cmplt_epi8(v, space), _mm_cmpeq_epi8(v, quote)),
                             _mm_or_si128(_mm_cmpeq_epi8(v, bslash), _mm_cmpeq_epi8(v, del)));
            unsigned m = (unsigned)_mm_movemask_epi8(bad);
            if (m != 0) {
                return i + (size_t)__builtin_ctz(m);
            }
        }
    }
#endif
    for (; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c < 0x20 || c >= 0x7f || c == '"' || c == '\\') {
            break;
        }
    }
    return i;
}

/* A JSON string with libbson's escapes: \" \\ \b \f \n \r \t, \u00XX below 0x20; the rest
 * (UTF-8, 0x7f, '/') as is. */
static bool put_string(struct ms_buf *b, const char *s, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    size_t start = 0, i = ms_extjson_plain_len(s, n);

    if (!reserve(b, n + 2)) {
        return false;
    }
    b->p[b->len++] = '"';
    for (; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        char esc[6];
        size_t elen = 2;
        if (c >= 0x20 && c != '"' && c != '\\') {
            continue;
        }
        if (!put(b, s + start, i - start)) {
            return false;
        }
        esc[0] = '\\';
        switch (c) {
        case '"':
            esc[1] = '"';
            break;
        case '\\':
            esc[1] = '\\';
            break;
        case '\b':
            esc[1] = 'b';
            break;
        case '\f':
            esc[1] = 'f';
            break;
        case '\n':
            esc[1] = 'n';
            break;
        case '\r':
            esc[1] = 'r';
            break;
        case '\t':
            esc[1] = 't';
            break;
        default:
            esc[1] = 'u';
            esc[2] = '0';
            esc[3] = '0';
            esc[4] = hex[c >> 4];
            esc[5] = hex[c & 15];
            elen = 6;
            break;
        }
        if (!put(b, esc, elen)) {
            return false;
        }
        start = i + 1;
    }
    return put(b, s + start, n - start) && put(b, "\"", 1);
}

const char ms_extjson_pairs[201] =
    "00010203040506070809101112131415161718192021222324252627282930313233343536373839"
    "40414243444546474849505152535455565758596061626364656667686970717273747576777879"
    "8081828384858687888990919293949596979899";

#define pairs ms_extjson_pairs

const uint64_t ms_extjson_pow10[20] = {1ULL,
                                       10ULL,
                                       100ULL,
                                       1000ULL,
                                       10000ULL,
                                       100000ULL,
                                       1000000ULL,
                                       10000000ULL,
                                       100000000ULL,
                                       1000000000ULL,
                                       10000000000ULL,
                                       100000000000ULL,
                                       1000000000000ULL,
                                       10000000000000ULL,
                                       100000000000000ULL,
                                       1000000000000000ULL,
                                       10000000000000000ULL,
                                       100000000000000000ULL,
                                       1000000000000000000ULL,
                                       10000000000000000000ULL};

static bool put_int(struct ms_buf *b, int64_t v)
{
    return ms_buf_put_int(b, v);
}

/* n as exactly width digits (zero-padded) at p; wider numbers get all their digits. */
static size_t digits(char *p, unsigned n, int width)
{
    char tmp[12];
    int o = (int)sizeof(tmp);

    do {
        tmp[--o] = (char)('0' + n % 10);
        n /= 10;
        width--;
    } while (n != 0 || width > 0);
    memcpy(p, tmp + o, sizeof(tmp) - (size_t)o);
    return sizeof(tmp) - (size_t)o;
}

static bool put_double(struct ms_buf *b, double d)
{
    char tmp[40];
    int n;

    if (isnan(d)) {
        return PUTS(b, "{ \"$numberDouble\" : \"NaN\" }");
    }
    if (isinf(d)) {
        return d > 0 ? PUTS(b, "{ \"$numberDouble\" : \"Infinity\" }")
                     : PUTS(b, "{ \"$numberDouble\" : \"-Infinity\" }");
    }
    n = snprintf(tmp, sizeof(tmp), "%.20g", d);
    if (strspn(tmp, "0123456789-") == (size_t)n) {
        memcpy(tmp + n, ".0", 3);
        n += 2;
    }
    return put(b, tmp, (size_t)n);
}

/* Days since 1970-01-01 -> proleptic Gregorian date (H. Hinnant's civil_from_days), for
 * days >= 0. */
static void civil(int64_t z, unsigned *year, unsigned *month, unsigned *day)
{
    uint64_t era, doe, yoe, doy, mp;

    z += 719468;
    era = (uint64_t)z / 146097;
    doe = (uint64_t)z - era * 146097;
    yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    mp = (5 * doy + 2) / 153;
    *day = (unsigned)(doy - (153 * mp + 2) / 5 + 1);
    *month = (unsigned)(mp < 10 ? mp + 3 : mp - 9);
    *year = (unsigned)(yoe + era * 400 + (*month <= 2));
}

static void two(char *p, unsigned n)
{
    memcpy(p, pairs + 2 * n, 2);
}

#define MAX_DATE_MS INT64_C(253402300800000) /* 10000-01-01: beyond it, as gmtime says */

static bool put_date(struct ms_buf *b, int64_t ms)
{
    unsigned year, mon, mday, hour, min, sec;
    int frac;

    if (ms < 0) {
        return PUTS(b, "{ \"$date\" : { \"$numberLong\" : \"") && put_int(b, ms) &&
               PUTS(b, "\" } }");
    }
    frac = (int)(ms % 1000);
    if (ms < MAX_DATE_MS) {
        int64_t secs = ms / 1000;
        unsigned tod = (unsigned)(secs % 86400);
        civil(secs / 86400, &year, &mon, &mday);
        hour = tod / 3600;
        min = tod / 60 % 60;
        sec = tod % 60;
    } else {
        time_t secs = (time_t)(ms / 1000);
        struct tm tm;
        gmtime_r(&secs, &tm);
        year = (unsigned)(tm.tm_year + 1900);
        mon = (unsigned)tm.tm_mon + 1;
        mday = (unsigned)tm.tm_mday;
        hour = (unsigned)tm.tm_hour;
        min = (unsigned)tm.tm_min;
        sec = (unsigned)tm.tm_sec;
    }
    return ms_extjson_put_date_parts(b, year, mon, mday, hour, min, sec, (unsigned)frac);
}

bool ms_extjson_put_date_parts(struct ms_buf *b, unsigned year, unsigned mon, unsigned mday,
                               unsigned hour, unsigned min, unsigned sec, unsigned msec)
{
    char *tmp;
    size_t o;

    if (!reserve(b, 64)) {
        return false;
    }
    tmp = b->p + b->len;
    memcpy(tmp, "{ \"$date\" : \"", 13);
    o = 13;
    if (year <= 9999) {
        two(tmp + o, year / 100);
        two(tmp + o + 2, year % 100);
        o += 4;
    } else {
        o += digits(tmp + o, year, 4);
    }
    tmp[o++] = '-';
    two(tmp + o, mon);
    tmp[o + 2] = '-';
    two(tmp + o + 3, mday);
    tmp[o + 5] = 'T';
    two(tmp + o + 6, hour);
    tmp[o + 8] = ':';
    two(tmp + o + 9, min);
    tmp[o + 11] = ':';
    two(tmp + o + 12, sec);
    o += 14;
    if (msec != 0) {
        tmp[o++] = '.';
        tmp[o++] = (char)('0' + msec / 100);
        two(tmp + o, msec % 100);
        o += 2;
    }
    memcpy(tmp + o, "Z\" }", 4);
    b->len += o + 4;
    return true;
}

static bool put_binary(struct ms_buf *b, bson_subtype_t st, const uint8_t *d, uint32_t n)
{
    static const char tbl[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    char tail[40];
    size_t o;
    int tn;

    if (!PUTS(b, "{ \"$binary\" : { \"base64\" : \"") || !reserve(b, ((size_t)n + 2) / 3 * 4)) {
        return false;
    }
    o = b->len;
    for (uint32_t i = 0; i < n; i += 3) {
        uint32_t v = (uint32_t)d[i] << 16;
        if (i + 1 < n) {
            v |= (uint32_t)d[i + 1] << 8;
        }
        if (i + 2 < n) {
            v |= d[i + 2];
        }
        b->p[o++] = tbl[v >> 18 & 63];
        b->p[o++] = tbl[v >> 12 & 63];
        b->p[o++] = i + 1 < n ? tbl[v >> 6 & 63] : '=';
        b->p[o++] = i + 2 < n ? tbl[v & 63] : '=';
    }
    b->len = o;
    tn = snprintf(tail, sizeof(tail), "\", \"subType\" : \"%02x\" } }", (unsigned)st);
    return put(b, tail, (size_t)tn);
}

static bool put_iter(struct ms_buf *b, bson_iter_t *it, bool array, int depth);

static bool put_value(struct ms_buf *b, bson_iter_t *it, int depth)
{
    switch (bson_iter_type(it)) {
    case BSON_TYPE_UTF8: {
        uint32_t n;
        const char *s = bson_iter_utf8(it, &n);
        return put_string(b, s, n);
    }
    case BSON_TYPE_INT32:
        return put_int(b, bson_iter_int32(it));
    case BSON_TYPE_INT64:
        return put_int(b, bson_iter_int64(it));
    case BSON_TYPE_DOUBLE:
        return put_double(b, bson_iter_double(it));
    case BSON_TYPE_BOOL:
        return bson_iter_bool(it) ? PUTS(b, "true") : PUTS(b, "false");
    case BSON_TYPE_NULL:
        return PUTS(b, "null");
    case BSON_TYPE_DATE_TIME:
        return put_date(b, bson_iter_date_time(it));
    case BSON_TYPE_DECIMAL128: {
        bson_decimal128_t dec;
        char s[BSON_DECIMAL128_STRING];
        bson_iter_decimal128(it, &dec);
        bson_decimal128_to_string(&dec, s);
        return PUTS(b, "{ \"$numberDecimal\" : \"") && put(b, s, strlen(s)) && PUTS(b, "\" }");
    }
    case BSON_TYPE_BINARY: {
        bson_subtype_t st;
        uint32_t n;
        const uint8_t *d;
        bson_iter_binary(it, &st, &n, &d);
        return put_binary(b, st, d, n);
    }
    case BSON_TYPE_DOCUMENT:
    case BSON_TYPE_ARRAY: {
        bson_iter_t child;
        if (depth > 200 || !bson_iter_recurse(it, &child)) {
            return false;
        }
        return put_iter(b, &child, bson_iter_type(it) == BSON_TYPE_ARRAY, depth + 1);
    }
    default:
        return false; /* oid, regex, timestamp, ...: not produced by the decoder */
    }
}

/* "{ k : v, ... }" / "[ v, ... ]"; nested empty containers are "{  }" / "[  ]" as libbson
 * writes them. */
static bool put_iter(struct ms_buf *b, bson_iter_t *it, bool array, int depth)
{
    bool first = true;

    if (!(array ? PUTS(b, "[ ") : PUTS(b, "{ "))) {
        return false;
    }
    while (bson_iter_next(it)) {
        if (!first && !PUTS(b, ", ")) {
            return false;
        }
        first = false;
        if (!array) {
            const char *k = bson_iter_key(it);
            if (!put_string(b, k, strlen(k)) || !PUTS(b, " : ")) {
                return false;
            }
        }
        if (!put_value(b, it, depth)) {
            return false;
        }
    }
    return array ? PUTS(b, " ]") : PUTS(b, " }");
}

bool ms_extjson_append(struct ms_buf *b, const bson_t *doc)
{
    size_t mark = b->len;
    bson_iter_t it;

    if (bson_empty(doc)) {
        return PUTS(b, "{ }");
    }
    if (bson_iter_init(&it, doc) && put_iter(b, &it, false, 0)) {
        return true;
    }
    b->len = mark;
    return false;
}

bool ms_extjson_append_nested(struct ms_buf *b, const bson_t *doc)
{
    size_t mark = b->len;
    bson_iter_t it;

    if (bson_iter_init(&it, doc) && put_iter(b, &it, false, 0)) {
        return true;
    }
    b->len = mark;
    return false;
}

bool ms_extjson_put_raw(struct ms_buf *b, const char *s, size_t n)
{
    return put(b, s, n);
}

bool ms_extjson_put_string(struct ms_buf *b, const char *s, size_t n)
{
    return put_string(b, s, n);
}

bool ms_extjson_put_int(struct ms_buf *b, int64_t v)
{
    return put_int(b, v);
}

bool ms_extjson_put_date(struct ms_buf *b, int64_t ms)
{
    return put_date(b, ms);
}

bool ms_extjson_put_double(struct ms_buf *b, double d)
{
    return put_double(b, d);
}

bool ms_extjson_put_decimal128(struct ms_buf *b, const bson_decimal128_t *d)
{
    char s[BSON_DECIMAL128_STRING];

    bson_decimal128_to_string(d, s);
    return PUTS(b, "{ \"$numberDecimal\" : \"") && put(b, s, strlen(s)) && PUTS(b, "\" }");
}

bool ms_extjson_put_binary(struct ms_buf *b, bson_subtype_t st, const uint8_t *data, uint32_t n)
{
    return put_binary(b, st, data, n);
}

bool ms_extjson_put_first_value(struct ms_buf *b, const bson_t *doc)
{
    size_t mark = b->len, pre;
    struct ms_buf key = {0};
    bson_iter_t it;
    char *json;
    size_t jlen;
    bool ok;

    if (!bson_iter_init(&it, doc) || !bson_iter_next(&it)) {
        return false;
    }
    if (put_value(b, &it, 0)) {
        return true;
    }
    b->len = mark;
    /* a type put_value leaves to libbson: its text of the value in { "key" : value } */
    json = bson_as_relaxed_extended_json(doc, NULL);
    if (json == NULL || !put_string(&key, bson_iter_key(&it), strlen(bson_iter_key(&it)))) {
        bson_free(json);
        ms_buf_free(&key);
        return false;
    }
    pre = 2 + key.len + 3;
    jlen = strlen(json);
    ok = jlen >= pre + 2 && put(b, json + pre, jlen - pre - 2);
    bson_free(json);
    ms_buf_free(&key);
    return ok;
}

#include "mysync/extjson.h"

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

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

static bool reserve(struct ms_buf *b, size_t more)
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

static bool put(struct ms_buf *b, const char *s, size_t n)
{
    if (!reserve(b, n)) {
        return false;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    return true;
}

#define PUTS(b, lit) put((b), (lit), sizeof(lit) - 1)

/* A JSON string with libbson's escapes: \" \\ \b \f \n \r \t, \u00XX below 0x20; the rest
 * (UTF-8, 0x7f, '/') as is. */
static bool put_string(struct ms_buf *b, const char *s, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    size_t start = 0;

    if (!reserve(b, n + 2)) {
        return false;
    }
    b->p[b->len++] = '"';
    for (size_t i = 0; i < n; i++) {
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

/* Decimal digits of v, without printf (it was a quarter of binlog-dump's time). */
static bool put_int(struct ms_buf *b, int64_t v)
{
    char tmp[24];
    size_t o = sizeof(tmp);
    uint64_t u = v < 0 ? (uint64_t)0 - (uint64_t)v : (uint64_t)v;

    do {
        tmp[--o] = (char)('0' + u % 10);
        u /= 10;
    } while (u != 0);
    if (v < 0) {
        tmp[--o] = '-';
    }
    return put(b, tmp + o, sizeof(tmp) - o);
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

static bool put_date(struct ms_buf *b, int64_t ms)
{
    char tmp[80];
    size_t o;
    time_t secs;
    struct tm tm;
    int frac;

    if (ms < 0) {
        return PUTS(b, "{ \"$date\" : { \"$numberLong\" : \"") && put_int(b, ms) &&
               PUTS(b, "\" } }");
    }
    secs = (time_t)(ms / 1000);
    frac = (int)(ms % 1000);
    gmtime_r(&secs, &tm);
    memcpy(tmp, "{ \"$date\" : \"", 13);
    o = 13;
    o += digits(tmp + o, (unsigned)(tm.tm_year + 1900), 4);
    tmp[o++] = '-';
    o += digits(tmp + o, (unsigned)tm.tm_mon + 1, 2);
    tmp[o++] = '-';
    o += digits(tmp + o, (unsigned)tm.tm_mday, 2);
    tmp[o++] = 'T';
    o += digits(tmp + o, (unsigned)tm.tm_hour, 2);
    tmp[o++] = ':';
    o += digits(tmp + o, (unsigned)tm.tm_min, 2);
    tmp[o++] = ':';
    o += digits(tmp + o, (unsigned)tm.tm_sec, 2);
    if (frac != 0) {
        tmp[o++] = '.';
        o += digits(tmp + o, (unsigned)frac, 3);
    }
    memcpy(tmp + o, "Z\" }", 4);
    o += 4;
    return put(b, tmp, o);
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

/* MySQL 8 binary JSON, MariaDB text JSON and MySQL partial-update JSON diffs -> BSON.
 *
 * Formats as documented by MySQL's sources (read, not copied): sql/json_binary.cc (storage
 * format), sql/json_diff.cc (diff vector, apply_json_diffs), sql/json_path.cc (path text),
 * mysys/my_time.cc (packed temporal values), strings/decimal.cc (decimal2bin).
 *
 * Everything reads through (pointer, remaining length) pairs checked before each access, and
 * every loop is bounded by the input: the functions are fed to a fuzzer. */
#include "mysync/mysqljson.h"

#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The value of a macro as a string literal. */
#define STR_(x) #x
#define STR(x)  STR_(x)

static bool fail(struct ms_error *err, uint32_t code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static bool fail(struct ms_error *err, uint32_t code, const char *fmt, ...)
{
    char msg[sizeof(err->msg)];
    va_list ap;

    if (err == NULL) {
        return false;
    }
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    ms_error_set(err, MS_ERR_DECODE, code, "%s", msg);
    return false;
}

/* Unsigned little-endian integer of n <= 8 bytes. */
static uint64_t le(const uint8_t *p, size_t n)
{
    uint64_t v = 0;

    for (size_t i = n; i > 0; i--) {
        v = (v << 8) | p[i - 1];
    }
    return v;
}

/* Unsigned big-endian integer of n <= 8 bytes. */
static uint64_t be(const uint8_t *p, size_t n)
{
    uint64_t v = 0;

    for (size_t i = 0; i < n; i++) {
        v = (v << 8) | p[i];
    }
    return v;
}

/* Appends s as Decimal128 when it has at most 34 significant digits and Decimal128 holds it
 * exactly, else as its text: nothing is rounded. s is a decimal number ("-12.50", "1.5e400"). */
static bool append_decimal_or_string(bson_t *dst, const char *key, int klen, const char *s,
                                     size_t slen)
{
    bson_decimal128_t dec;
    size_t sig = 0;
    bool leading = true;

    for (size_t i = 0; i < slen && s[i] != 'e' && s[i] != 'E'; i++) {
        if (s[i] < '0' || s[i] > '9') {
            continue;
        }
        if (leading && s[i] == '0') {
            continue;
        }
        leading = false;
        sig++;
    }
    if (sig <= 34) {
        /* libbson 1.23's bson_decimal128_from_string_w_len reads past len (valgrind shows
         * it), so it gets a NUL-terminated copy */
        char small[128], *z = slen < sizeof(small) ? small : malloc(slen + 1);
        bool ok;
        if (z == NULL) {
            return false;
        }
        memcpy(z, s, slen);
        z[slen] = '\0';
        ok = bson_decimal128_from_string(z, &dec);
        if (z != small) {
            free(z);
        }
        if (ok) {
            return bson_append_decimal128(dst, key, klen, &dec);
        }
    }
    return bson_append_utf8(dst, key, klen, s, (int)slen);
}

/* ---------------------------------------------------------------------------------------
 * Binary JSON
 * ------------------------------------------------------------------------------------- */

enum {
    JB_SMALL_OBJECT = 0x00,
    JB_LARGE_OBJECT = 0x01,
    JB_SMALL_ARRAY = 0x02,
    JB_LARGE_ARRAY = 0x03,
    JB_LITERAL = 0x04,
    JB_INT16 = 0x05,
    JB_UINT16 = 0x06,
    JB_INT32 = 0x07,
    JB_UINT32 = 0x08,
    JB_INT64 = 0x09,
    JB_UINT64 = 0x0a,
    JB_DOUBLE = 0x0b,
    JB_STRING = 0x0c,
    JB_OPAQUE = 0x0f,
};

enum { JB_NULL = 0x00, JB_TRUE = 0x01, JB_FALSE = 0x02 };

/* The MySQL field types whose opaque JSON values we turn into something readable. */
enum { FT_TIMESTAMP = 7, FT_DATE = 10, FT_TIME = 11, FT_DATETIME = 12, FT_NEWDECIMAL = 246 };

struct jb {
    const uint8_t *base; /* start of the whole value: offsets in messages are from here */
    /* Bytes the decoder may still emit. MySQL never lets two entries share bytes, so a
     * document emits at most about its own size; crafted entries pointing at the same
     * container again and again would otherwise expand exponentially. */
    uint64_t budget;
    struct ms_error *err;
};

static bool jb_bad(struct jb *c, const uint8_t *at, const char *what)
{
    return fail(c->err, MS_MYSQLJSON_MALFORMED, "binary JSON: %s at offset %zu", what,
                (size_t)(at - c->base));
}

static bool jb_spend(struct jb *c, const uint8_t *at, uint64_t n)
{
    if (n > c->budget) {
        return jb_bad(c, at, "entries overlap (value larger than its encoding)");
    }
    c->budget -= n;
    return true;
}

/* MySQL's variable-length length: 7 bits per byte, least significant first, high bit set
 * on all but the last byte; at most 5 bytes, at most UINT32_MAX. */
static bool read_varlen(const uint8_t *p, size_t n, uint32_t *out, size_t *used)
{
    uint64_t v = 0;

    for (size_t i = 0; i < n && i < 5; i++) {
        v |= (uint64_t)(p[i] & 0x7f) << (7 * i);
        if ((p[i] & 0x80) == 0) {
            if (v > UINT32_MAX) {
                return false;
            }
            *out = (uint32_t)v;
            *used = i + 1;
            return true;
        }
    }
    return false;
}

static bool jb_value(struct jb *c, uint8_t type, const uint8_t *p, size_t n, bson_t *dst,
                     const char *key, int klen, int depth);

/* Packed temporal value (my_time.cc: TIME_to_longlong_{datetime,time}_packed) -> the text
 * MySQL prints for it in JSON. */
static bool jb_temporal(struct jb *c, uint8_t ft, const uint8_t *d, size_t dn, bson_t *dst,
                        const char *key, int klen)
{
    char s[64];
    uint64_t u, frac;
    bool neg;
    int w;

    if (dn != 8) {
        return jb_bad(c, d, "temporal opaque value is not 8 bytes");
    }
    u = le(d, 8);
    neg = (u >> 63) != 0;
    if (neg) {
        u = 0 - u;
    }
    frac = u & 0xffffff;
    u >>= 24;
    if (frac > 999999) {
        return jb_bad(c, d, "temporal value with invalid microseconds");
    }
    if (ft == FT_TIME) {
        uint64_t hour = u >> 12, minute = (u >> 6) & 63, second = u & 63;
        if (hour > 838 || minute > 59 || second > 59) {
            return jb_bad(c, d, "invalid TIME value");
        }
        w = snprintf(s, sizeof(s), "%s%02u:%02u:%02u.%06u", neg ? "-" : "", (unsigned)hour,
                     (unsigned)minute, (unsigned)second, (unsigned)frac);
    } else {
        uint64_t ymd = u >> 17, hms = u & 0x1ffff;
        uint64_t day = ymd & 31, ym = ymd >> 5, month = ym % 13, year = ym / 13;
        uint64_t hour = hms >> 12, minute = (hms >> 6) & 63, second = hms & 63;
        if (neg || year > 9999 || hour > 23 || minute > 59 || second > 59) {
            return jb_bad(c, d, "invalid DATE/DATETIME value");
        }
        if (ft == FT_DATE) {
            w = snprintf(s, sizeof(s), "%04u-%02u-%02u", (unsigned)year, (unsigned)month,
                         (unsigned)day);
        } else {
            w = snprintf(s, sizeof(s), "%04u-%02u-%02u %02u:%02u:%02u.%06u", (unsigned)year,
                         (unsigned)month, (unsigned)day, (unsigned)hour, (unsigned)minute,
                         (unsigned)second, (unsigned)frac);
        }
    }
    if (w < 0 || (size_t)w >= sizeof(s)) {
        return jb_bad(c, d, "temporal value does not format");
    }
    return bson_append_utf8(dst, key, klen, s, w);
}

/* Appends v as exactly `digits` decimal digits (zero-padded) to out. */
static void put_digits(char *out, size_t *pos, uint32_t v, unsigned digits)
{
    for (unsigned i = digits; i > 0; i--) {
        out[*pos + i - 1] = (char)('0' + v % 10);
        v /= 10;
    }
    *pos += digits;
}

/* Opaque NEWDECIMAL: precision byte, scale byte, then MySQL's binary decimal (decimal2bin):
 * groups of 9 digits in 4 big-endian bytes, leftover digits in 1-4 bytes, sign in the top
 * bit of the first byte (set = positive), every byte inverted when negative. */
static bool jb_decimal(struct jb *c, const uint8_t *d, size_t dn, bson_t *dst, const char *key,
                       int klen)
{
    static const uint8_t dig2bytes[10] = {0, 1, 1, 2, 2, 3, 3, 4, 4, 4};
    static const uint32_t pow10[10] = {1,      10,      100,      1000,      10000,
                                       100000, 1000000, 10000000, 100000000, 1000000000};
    uint8_t b[40];
    char digits[80], s[96];
    unsigned prec, scale, intg, intg0, intg0x, frac0, frac0x;
    size_t size, off = 0, pos = 0, ipos, spos = 0, first;
    uint8_t mask;

    if (dn < 2) {
        return jb_bad(c, d, "DECIMAL opaque value truncated");
    }
    prec = d[0];
    scale = d[1];
    if (prec < 1 || prec > 65 || scale > 30 || scale > prec) {
        return jb_bad(c, d, "DECIMAL precision/scale out of range");
    }
    intg = prec - scale;
    intg0 = intg / 9;
    intg0x = intg % 9;
    frac0 = scale / 9;
    frac0x = scale % 9;
    size = intg0 * 4 + dig2bytes[intg0x] + frac0 * 4 + dig2bytes[frac0x];
    if (dn - 2 != size || size > sizeof(b)) {
        return jb_bad(c, d, "DECIMAL opaque value has the wrong length");
    }
    memcpy(b, d + 2, size);
    mask = (b[0] & 0x80) ? 0x00 : 0xff;
    b[0] ^= 0x80;
    for (size_t i = 0; i < size; i++) {
        b[i] ^= mask;
    }
    if (intg0x > 0) {
        uint32_t v = (uint32_t)be(b, dig2bytes[intg0x]);
        if (v >= pow10[intg0x]) {
            return jb_bad(c, d, "invalid DECIMAL digits");
        }
        put_digits(digits, &pos, v, intg0x);
        off += dig2bytes[intg0x];
    }
    for (unsigned i = 0; i < intg0 + frac0; i++) {
        uint32_t v = (uint32_t)be(b + off, 4);
        if (v >= pow10[9]) {
            return jb_bad(c, d, "invalid DECIMAL digits");
        }
        put_digits(digits, &pos, v, 9);
        off += 4;
    }
    if (frac0x > 0) {
        uint32_t v = (uint32_t)be(b + off, dig2bytes[frac0x]);
        if (v >= pow10[frac0x]) {
            return jb_bad(c, d, "invalid DECIMAL digits");
        }
        put_digits(digits, &pos, v, frac0x);
    }
    /* digits holds intg integer digits then scale fraction digits. */
    for (first = 0; first + 1 < intg && digits[first] == '0'; first++) {
    }
    if (mask != 0) {
        s[spos++] = '-';
    }
    if (intg == 0) {
        s[spos++] = '0';
    }
    ipos = intg - first;
    memcpy(s + spos, digits + first, ipos);
    spos += ipos;
    if (scale > 0) {
        s[spos++] = '.';
        memcpy(s + spos, digits + intg, scale);
        spos += scale;
    }
    return append_decimal_or_string(dst, key, klen, s, spos);
}

static bool jb_opaque(struct jb *c, const uint8_t *p, size_t n, bson_t *dst, const char *key,
                      int klen)
{
    uint32_t dlen;
    size_t used;
    uint8_t ft;
    const uint8_t *d;

    if (n < 1) {
        return jb_bad(c, p, "opaque value truncated");
    }
    ft = p[0];
    if (!read_varlen(p + 1, n - 1, &dlen, &used) || dlen > n - 1 - used) {
        return jb_bad(c, p, "opaque value length out of bounds");
    }
    d = p + 1 + used;
    if (!jb_spend(c, p, dlen)) {
        return false;
    }
    switch (ft) {
    case FT_NEWDECIMAL:
        return jb_decimal(c, d, dlen, dst, key, klen);
    case FT_DATE:
    case FT_TIME:
    case FT_DATETIME:
    case FT_TIMESTAMP:
        return jb_temporal(c, ft, d, dlen, dst, key, klen);
    default:
        return bson_append_binary(dst, key, klen, BSON_SUBTYPE_BINARY, d, dlen);
    }
}

/* Is a value of this type stored inside its value entry rather than at an offset? */
static bool jb_inlined(uint8_t type, bool large)
{
    switch (type) {
    case JB_LITERAL:
    case JB_INT16:
    case JB_UINT16:
        return true;
    case JB_INT32:
    case JB_UINT32:
        return large;
    default:
        return false;
    }
}

/* Object or array at p; n bytes are available from p (the rest of the enclosing container). */
static bool jb_container(struct jb *c, bool object, bool large, const uint8_t *p, size_t n,
                         bson_t *dst, const char *key, int klen, int depth)
{
    size_t os = large ? 4 : 2, ke = os + 2, ve = 1 + os;
    uint64_t count, bytes, header;
    bson_t child;
    bool ok = true;

    if (depth >= MS_MYSQLJSON_MAX_DEPTH) {
        return jb_bad(c, p, "nesting deeper than " STR(MS_MYSQLJSON_MAX_DEPTH));
    }
    if (n < 2 * os) {
        return jb_bad(c, p, "container header truncated");
    }
    count = le(p, os);
    bytes = le(p + os, os);
    if (bytes > n) {
        return jb_bad(c, p, "container size beyond the available bytes");
    }
    header = 2 * os + count * (object ? ke + ve : ve);
    if (header > bytes) {
        return jb_bad(c, p, "container entries beyond its size");
    }
    if (!jb_spend(c, p, header)) {
        return false;
    }
    if (object) {
        ok = bson_append_document_begin(dst, key, klen, &child);
    } else {
        ok = bson_append_array_begin(dst, key, klen, &child);
    }
    if (!ok) {
        return jb_bad(c, p, "BSON document too large");
    }
    for (uint64_t i = 0; i < count && ok; i++) {
        const uint8_t *vent = p + 2 * os + (object ? count * ke : 0) + i * ve;
        const char *ck;
        char ibuf[16];
        int cklen;
        uint8_t vt = vent[0];

        if (object) {
            const uint8_t *kent = p + 2 * os + i * ke;
            uint64_t koff = le(kent, os), kl = le(kent + os, 2);
            if (koff > bytes || kl > bytes - koff) {
                ok = jb_bad(c, kent, "object key out of bounds");
                break;
            }
            ck = (const char *)p + koff;
            cklen = (int)kl;
            if (!bson_utf8_validate(ck, kl, false)) {
                ok = jb_bad(c, p + koff, "object key is not UTF-8 (or holds NUL)");
                break;
            }
            if (!jb_spend(c, p + koff, kl)) {
                ok = false;
                break;
            }
        } else {
            cklen = (int)bson_uint32_to_string((uint32_t)i, &ck, ibuf, sizeof(ibuf));
        }
        if (jb_inlined(vt, large)) {
            ok = jb_value(c, vt, vent + 1, os, &child, ck, cklen, depth + 1);
        } else {
            uint64_t voff = le(vent + 1, os);
            if (voff >= bytes) {
                ok = jb_bad(c, vent, "value offset out of bounds");
                break;
            }
            ok = jb_value(c, vt, p + voff, (size_t)(bytes - voff), &child, ck, cklen, depth + 1);
        }
    }
    if (object) {
        if (!bson_append_document_end(dst, &child) && ok) {
            ok = jb_bad(c, p, "BSON document too large");
        }
    } else {
        if (!bson_append_array_end(dst, &child) && ok) {
            ok = jb_bad(c, p, "BSON document too large");
        }
    }
    return ok;
}

/* Value of the given type whose bytes start at p; n bytes are available. */
static bool jb_value(struct jb *c, uint8_t type, const uint8_t *p, size_t n, bson_t *dst,
                     const char *key, int klen, int depth)
{
    static const size_t width[] = {
        [JB_LITERAL] = 1, [JB_INT16] = 2, [JB_UINT16] = 2, [JB_INT32] = 4,
        [JB_UINT32] = 4,  [JB_INT64] = 8, [JB_UINT64] = 8, [JB_DOUBLE] = 8};
    uint64_t u;
    bool ok;

    if (type >= JB_LITERAL && type <= JB_DOUBLE && n < width[type]) {
        return jb_bad(c, p, "scalar truncated");
    }
    switch (type) {
    case JB_SMALL_OBJECT:
    case JB_LARGE_OBJECT:
        return jb_container(c, true, type == JB_LARGE_OBJECT, p, n, dst, key, klen, depth);
    case JB_SMALL_ARRAY:
    case JB_LARGE_ARRAY:
        return jb_container(c, false, type == JB_LARGE_ARRAY, p, n, dst, key, klen, depth);
    case JB_LITERAL:
        if (p[0] == JB_NULL) {
            ok = bson_append_null(dst, key, klen);
        } else if (p[0] == JB_TRUE || p[0] == JB_FALSE) {
            ok = bson_append_bool(dst, key, klen, p[0] == JB_TRUE);
        } else {
            return jb_bad(c, p, "unknown literal");
        }
        break;
    case JB_INT16:
        ok = bson_append_int32(dst, key, klen, (int16_t)(uint16_t)le(p, 2));
        break;
    case JB_UINT16:
        ok = bson_append_int32(dst, key, klen, (int32_t)le(p, 2));
        break;
    case JB_INT32:
        ok = bson_append_int32(dst, key, klen, (int32_t)(uint32_t)le(p, 4));
        break;
    case JB_UINT32:
        ok = bson_append_int64(dst, key, klen, (int64_t)le(p, 4));
        break;
    case JB_INT64: {
        int64_t v;
        u = le(p, 8);
        memcpy(&v, &u, sizeof(v));
        ok = bson_append_int64(dst, key, klen, v);
        break;
    }
    case JB_UINT64:
        u = le(p, 8);
        if (u <= INT64_MAX) {
            ok = bson_append_int64(dst, key, klen, (int64_t)u);
        } else {
            char s[24];
            int w = snprintf(s, sizeof(s), "%" PRIu64, u);
            ok = w > 0 && append_decimal_or_string(dst, key, klen, s, (size_t)w);
        }
        break;
    case JB_DOUBLE: {
        double d;
        u = le(p, 8);
        memcpy(&d, &u, sizeof(d));
        ok = bson_append_double(dst, key, klen, d);
        break;
    }
    case JB_STRING: {
        uint32_t slen;
        size_t used;
        if (!read_varlen(p, n, &slen, &used) || slen > n - used) {
            return jb_bad(c, p, "string length out of bounds");
        }
        if (!jb_spend(c, p, slen)) {
            return false;
        }
        /* NUL is allowed (JSON's \u0000), but not as libbson's allow_null also lets it in:
         * the overlong "\xc0\x80" (0xc0 never appears in UTF-8; found by fuzzing) */
        if (!bson_utf8_validate((const char *)p + used, slen, true) ||
            memchr(p + used, 0xc0, slen) != NULL) {
            return jb_bad(c, p, "string is not UTF-8");
        }
        ok = bson_append_utf8(dst, key, klen, (const char *)p + used, (int)slen);
        break;
    }
    case JB_OPAQUE:
        return jb_opaque(c, p, n, dst, key, klen);
    default:
        return jb_bad(c, p, "unknown value type");
    }
    if (!ok) {
        return jb_bad(c, p, "BSON document too large");
    }
    return true;
}

bool ms_mysqljson_to_bson(const uint8_t *p, size_t len, bson_t *parent, const char *key,
                          struct ms_error *err)
{
    struct jb c = {.base = p, .budget = 2 * (uint64_t)len + 64, .err = err};
    bson_t tmp;
    bool ok;

    if (parent == NULL || key == NULL || (p == NULL && len > 0)) {
        return fail(err, MS_MYSQLJSON_MALFORMED, "binary JSON: invalid arguments");
    }
    if (len == 0) {
        if (!bson_append_null(parent, key, -1)) {
            return fail(err, MS_MYSQLJSON_MALFORMED, "binary JSON: BSON document too large");
        }
        return true;
    }
    /* Decode into a scratch document so that parent is untouched on failure. */
    bson_init(&tmp);
    ok = jb_value(&c, p[0], p + 1, len - 1, &tmp, key, -1, 0);
    if (ok && !bson_concat(parent, &tmp)) {
        ok = fail(err, MS_MYSQLJSON_MALFORMED, "binary JSON: BSON document too large");
    }
    bson_destroy(&tmp);
    return ok;
}

/* ---------------------------------------------------------------------------------------
 * Text JSON
 *
 * libbson's JSON parser is an Extended JSON parser, and on its own it: reads {"$oid": ...},
 * {"$date": ...}, {"$numberDecimal": ...} and the like as BSON types; wraps integers beyond
 * the uint64 range silently (18446744073709551616 -> 0) and rejects the rest of those beyond
 * int64; rejects doubles beyond the double range (1.5e400); accepts NaN and Infinity; and,
 * since a scalar has to be wrapped as {"v": <text>}, would let text such as `1, "w": 2` or
 * `1} {"x": 2` through. So the text is first checked here against RFC 8259 and rewritten
 * for libbson: big numbers become {"$numberDecimal": "..."} (or strings), and every key
 * starting with '$' or U+0001 gets a U+0001 prefix that is taken off again afterwards.
 * ------------------------------------------------------------------------------------- */

struct sbuf {
    char *p;
    size_t n, cap;
    bool oom;
};

static void sb_put(struct sbuf *b, const char *s, size_t n)
{
    if (b->oom) {
        return;
    }
    if (n > b->cap - b->n) {
        size_t cap = b->cap == 0 ? 256 : b->cap;
        char *np;
        while (n > cap - b->n) {
            if (cap > SIZE_MAX / 2) {
                b->oom = true;
                return;
            }
            cap *= 2;
        }
        np = realloc(b->p, cap);
        if (np == NULL) {
            b->oom = true;
            return;
        }
        b->p = np;
        b->cap = cap;
    }
    memcpy(b->p + b->n, s, n);
    b->n += n;
}

static void sb_str(struct sbuf *b, const char *s)
{
    sb_put(b, s, strlen(s));
}

struct tj {
    const char *s;
    size_t n, i;
    struct sbuf out;
    bool escaped; /* some key got the U+0001 prefix */
    struct ms_error *err;
};

static bool tj_bad(struct tj *t, const char *what)
{
    return fail(t->err, MS_MYSQLJSON_MALFORMED, "invalid JSON text: %s at offset %zu", what, t->i);
}

static void tj_ws(struct tj *t)
{
    while (t->i < t->n &&
           (t->s[t->i] == ' ' || t->s[t->i] == '\t' || t->s[t->i] == '\n' || t->s[t->i] == '\r')) {
        t->i++;
    }
}

static int hexval(char ch)
{
    if (ch >= '0' && ch <= '9') {
        return ch - '0';
    }
    if (ch >= 'a' && ch <= 'f') {
        return ch - 'a' + 10;
    }
    if (ch >= 'A' && ch <= 'F') {
        return ch - 'A' + 10;
    }
    return -1;
}

/* Four hex digits at s (n bytes available) -> code unit, or -1. */
static long hex4(const char *s, size_t n)
{
    long v = 0;

    if (n < 4) {
        return -1;
    }
    for (size_t i = 0; i < 4; i++) {
        int h = hexval(s[i]);
        if (h < 0) {
            return -1;
        }
        v = v * 16 + h;
    }
    return v;
}

/* String at t->i (on the opening quote); copied through, with the key prefix when needed. */
static bool tj_string(struct tj *t, bool is_key)
{
    size_t start = ++t->i, end;
    bool prefix = false;

    while (t->i < t->n && t->s[t->i] != '"') {
        unsigned char ch = (unsigned char)t->s[t->i];
        if (ch < 0x20) {
            return tj_bad(t, "control character in string");
        }
        if (ch == '\\') {
            if (t->i + 1 >= t->n) {
                return tj_bad(t, "string truncated");
            }
            switch (t->s[t->i + 1]) {
            case '"':
            case '\\':
            case '/':
            case 'b':
            case 'f':
            case 'n':
            case 'r':
            case 't':
                t->i += 2;
                break;
            case 'u':
                if (hex4(t->s + t->i + 2, t->n - t->i - 2) < 0) {
                    return tj_bad(t, "invalid \\u escape");
                }
                t->i += 6;
                break;
            default:
                return tj_bad(t, "invalid escape");
            }
        } else {
            t->i++;
        }
    }
    if (t->i >= t->n) {
        return tj_bad(t, "string truncated");
    }
    end = t->i++;
    if (!bson_utf8_validate(t->s + start, end - start, false)) {
        return tj_bad(t, "string is not UTF-8");
    }
    if (is_key && end > start) {
        long first = -1;
        if (t->s[start] == '$') {
            first = '$';
        } else if (t->s[start] == '\\' && end - start >= 6 && t->s[start + 1] == 'u') {
            first = hex4(t->s + start + 2, end - start - 2);
        }
        prefix = first == '$' || first == 0x01;
    }
    sb_put(&t->out, "\"", 1);
    if (prefix) {
        sb_str(&t->out, "\\u0001");
        t->escaped = true;
    }
    sb_put(&t->out, t->s + start, end - start);
    sb_put(&t->out, "\"", 1);
    return true;
}

/* A number too big for libbson: Decimal128 if exact, else its text. */
static void tj_big_number(struct tj *t, const char *tok, size_t len)
{
    bson_t probe = BSON_INITIALIZER;
    bson_iter_t it;

    if (append_decimal_or_string(&probe, "v", 1, tok, len) &&
        bson_iter_init_find(&it, &probe, "v") && BSON_ITER_HOLDS_DECIMAL128(&it)) {
        sb_str(&t->out, "{\"$numberDecimal\":\"");
        sb_put(&t->out, tok, len);
        sb_str(&t->out, "\"}");
    } else {
        sb_put(&t->out, "\"", 1);
        sb_put(&t->out, tok, len);
        sb_put(&t->out, "\"", 1);
    }
    bson_destroy(&probe);
}

static bool tj_number(struct tj *t)
{
    size_t start = t->i, len;
    bool neg = false, is_float = false;
    uint64_t mag = 0;
    bool overflow = false;
    const char *tok;

    if (t->s[t->i] == '-') {
        neg = true;
        t->i++;
    }
    if (t->i >= t->n || t->s[t->i] < '0' || t->s[t->i] > '9') {
        return tj_bad(t, "invalid number");
    }
    if (t->s[t->i] == '0') {
        t->i++;
    } else {
        while (t->i < t->n && t->s[t->i] >= '0' && t->s[t->i] <= '9') {
            unsigned dgt = (unsigned)(t->s[t->i] - '0');
            if (mag > (UINT64_MAX - dgt) / 10) {
                overflow = true;
            } else {
                mag = mag * 10 + dgt;
            }
            t->i++;
        }
    }
    if (t->i < t->n && t->s[t->i] == '.') {
        is_float = true;
        t->i++;
        if (t->i >= t->n || t->s[t->i] < '0' || t->s[t->i] > '9') {
            return tj_bad(t, "invalid number");
        }
        while (t->i < t->n && t->s[t->i] >= '0' && t->s[t->i] <= '9') {
            t->i++;
        }
    }
    if (t->i < t->n && (t->s[t->i] == 'e' || t->s[t->i] == 'E')) {
        is_float = true;
        t->i++;
        if (t->i < t->n && (t->s[t->i] == '+' || t->s[t->i] == '-')) {
            t->i++;
        }
        if (t->i >= t->n || t->s[t->i] < '0' || t->s[t->i] > '9') {
            return tj_bad(t, "invalid number");
        }
        while (t->i < t->n && t->s[t->i] >= '0' && t->s[t->i] <= '9') {
            t->i++;
        }
    }
    tok = t->s + start;
    len = t->i - start;
    if (!is_float) {
        uint64_t limit = neg ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX;
        if (overflow || mag > limit) {
            tj_big_number(t, tok, len);
        } else {
            sb_put(&t->out, tok, len);
        }
        return true;
    }
    {
        /* strtod needs a terminated copy; libbson parses doubles with strtod as well. */
        char small[128];
        char *copy = len < sizeof(small) ? small : malloc(len + 1);
        double d;
        if (copy == NULL) {
            return fail(t->err, MS_MYSQLJSON_MALFORMED, "out of memory");
        }
        memcpy(copy, tok, len);
        copy[len] = '\0';
        errno = 0;
        d = strtod(copy, NULL);
        if (copy != small) {
            free(copy);
        }
        if (errno == ERANGE && isinf(d)) {
            tj_big_number(t, tok, len);
        } else {
            sb_put(&t->out, tok, len);
        }
    }
    return true;
}

static bool tj_literal(struct tj *t, const char *word)
{
    size_t wl = strlen(word);

    if (t->n - t->i < wl || memcmp(t->s + t->i, word, wl) != 0) {
        return tj_bad(t, "invalid literal");
    }
    sb_put(&t->out, word, wl);
    t->i += wl;
    return true;
}

static bool tj_value(struct tj *t, int depth)
{
    char open, close;

    tj_ws(t);
    if (t->i >= t->n) {
        return tj_bad(t, "value expected");
    }
    switch (t->s[t->i]) {
    case '{':
    case '[':
        break;
    case '"':
        return tj_string(t, false);
    case 't':
        return tj_literal(t, "true");
    case 'f':
        return tj_literal(t, "false");
    case 'n':
        return tj_literal(t, "null");
    default:
        return tj_number(t);
    }
    if (depth >= MS_TEXTJSON_MAX_DEPTH) {
        return tj_bad(t, "nesting deeper than " STR(MS_TEXTJSON_MAX_DEPTH));
    }
    open = t->s[t->i];
    close = open == '{' ? '}' : ']';
    sb_put(&t->out, &open, 1);
    t->i++;
    tj_ws(t);
    if (t->i < t->n && t->s[t->i] == close) {
        sb_put(&t->out, &close, 1);
        t->i++;
        return true;
    }
    for (;;) {
        if (open == '{') {
            tj_ws(t);
            if (t->i >= t->n || t->s[t->i] != '"') {
                return tj_bad(t, "member name expected");
            }
            if (!tj_string(t, true)) {
                return false;
            }
            tj_ws(t);
            if (t->i >= t->n || t->s[t->i] != ':') {
                return tj_bad(t, "':' expected");
            }
            sb_put(&t->out, ":", 1);
            t->i++;
        }
        if (!tj_value(t, depth + 1)) {
            return false;
        }
        tj_ws(t);
        if (t->i < t->n && t->s[t->i] == ',') {
            sb_put(&t->out, ",", 1);
            t->i++;
            continue;
        }
        if (t->i < t->n && t->s[t->i] == close) {
            sb_put(&t->out, &close, 1);
            t->i++;
            return true;
        }
        return tj_bad(t, open == '{' ? "',' or '}' expected" : "',' or ']' expected");
    }
}

/* Copies the value at it to dst under key, taking the U+0001 prefix off object keys. */
static bool unprefix_copy(bson_t *dst, const char *key, int klen, const bson_iter_t *it)
{
    bson_iter_t sub;
    bson_t child;
    bool is_doc = BSON_ITER_HOLDS_DOCUMENT(it), ok = true;

    if (!is_doc && !BSON_ITER_HOLDS_ARRAY(it)) {
        return bson_append_iter(dst, key, klen, it);
    }
    if (!bson_iter_recurse(it, &sub)) {
        return false;
    }
    if (is_doc) {
        ok = bson_append_document_begin(dst, key, klen, &child);
    } else {
        ok = bson_append_array_begin(dst, key, klen, &child);
    }
    if (!ok) {
        return false;
    }
    while (ok && bson_iter_next(&sub)) {
        const char *k = bson_iter_key(&sub);
        if (is_doc && k[0] == '\x01') {
            k++;
        }
        ok = unprefix_copy(&child, k, -1, &sub);
    }
    if (is_doc) {
        ok = bson_append_document_end(dst, &child) && ok;
    } else {
        ok = bson_append_array_end(dst, &child) && ok;
    }
    return ok;
}

bool ms_textjson_to_bson(const char *json, size_t len, bson_t *parent, const char *key,
                         struct ms_error *err)
{
    struct tj t = {.s = json, .n = len, .err = err};
    bson_t doc, tmp;
    bson_error_t berr;
    bson_iter_t it;
    bool ok = false, have_doc = false;

    if (parent == NULL || key == NULL || (json == NULL && len > 0)) {
        return fail(err, MS_MYSQLJSON_MALFORMED, "JSON text: invalid arguments");
    }
    sb_str(&t.out, "{\"v\":");
    if (!tj_value(&t, 0)) {
        goto done;
    }
    tj_ws(&t);
    if (t.i != t.n) {
        tj_bad(&t, "trailing characters");
        goto done;
    }
    sb_put(&t.out, "}", 1);
    if (t.out.oom || t.out.n > (size_t)SSIZE_MAX) {
        fail(err, MS_MYSQLJSON_MALFORMED, "JSON text: out of memory");
        goto done;
    }
    if (!bson_init_from_json(&doc, t.out.p, (ssize_t)t.out.n, &berr)) {
        fail(err, MS_MYSQLJSON_MALFORMED, "JSON text: %s", berr.message);
        goto done;
    }
    have_doc = true;
    if (!bson_iter_init_find(&it, &doc, "v") || bson_count_keys(&doc) != 1) {
        fail(err, MS_MYSQLJSON_MALFORMED, "JSON text: not a single value");
        goto done;
    }
    if (!t.escaped) {
        ok = bson_append_iter(parent, key, -1, &it);
    } else {
        bson_init(&tmp);
        ok = unprefix_copy(&tmp, key, -1, &it) && bson_concat(parent, &tmp);
        bson_destroy(&tmp);
    }
    if (!ok) {
        fail(err, MS_MYSQLJSON_MALFORMED, "JSON text: BSON document too large");
    }
done:
    if (have_doc) {
        bson_destroy(&doc);
    }
    free(t.out.p);
    return ok;
}

/* ---------------------------------------------------------------------------------------
 * JSON diffs (PARTIAL_UPDATE_ROWS_EVENT)
 *
 * Diff vector: a sequence of { operation (1 byte: 0 REPLACE, 1 INSERT, 2 REMOVE), path
 * (net length-encoded length + path text), value for REPLACE/INSERT (net length-encoded
 * length + binary JSON) }. The path is what Json_path::to_string prints: "$", then legs
 * ".name", ".\"quoted name\"", "[n]", "[last]", "[last-n]".
 * ------------------------------------------------------------------------------------- */

enum { OP_REPLACE = 0, OP_INSERT = 1, OP_REMOVE = 2 };

#define MAX_LEGS MS_MYSQLJSON_MAX_DEPTH

struct leg {
    bool member;
    bool from_end;  /* [last-n] */
    uint32_t index; /* [n], or n of [last-n] */
    const char *name;
    size_t nlen;
};

struct diffctx {
    int op;
    const struct leg *legs;
    size_t nlegs;
    const bson_iter_t *value; /* new value (REPLACE, INSERT) */
    struct ms_error *err;
};

/* Net length-encoded integer: < 251 itself; 0xfc + 2 bytes; 0xfd + 3; 0xfe + 8 (LE). */
static bool netlen(const uint8_t *p, size_t n, uint64_t *v, size_t *used)
{
    static const size_t width[4] = {0, 2, 3, 8};
    size_t w;

    if (n < 1) {
        return false;
    }
    if (p[0] < 251) {
        *v = p[0];
        *used = 1;
        return true;
    }
    if (p[0] < 0xfc || p[0] > 0xfe) {
        return false;
    }
    w = width[p[0] - 0xfb];
    if (n - 1 < w) {
        return false;
    }
    *v = le(p + 1, w);
    *used = 1 + w;
    return true;
}

static bool cannot(struct ms_error *err, const char *what, const char *path, size_t plen)
{
    int show = plen > 80 ? 80 : (int)plen;

    return fail(err, MS_MYSQLJSON_CANNOT_APPLY, "JSON diff on '%.*s': %s", show, path, what);
}

static void path_ws(const char *s, size_t n, size_t *i)
{
    while (*i < n && (s[*i] == ' ' || s[*i] == '\t' || s[*i] == '\n' || s[*i] == '\r')) {
        (*i)++;
    }
}

static bool path_uint(const char *s, size_t n, size_t *i, uint32_t *v)
{
    uint64_t x = 0;
    size_t start = *i;

    while (*i < n && s[*i] >= '0' && s[*i] <= '9') {
        x = x * 10 + (uint64_t)(s[*i] - '0');
        if (x > UINT32_MAX) {
            return false;
        }
        (*i)++;
    }
    *v = (uint32_t)x;
    return *i > start;
}

static void put_utf8(char *out, size_t *o, uint32_t cp)
{
    if (cp < 0x80) {
        out[(*o)++] = (char)cp;
    } else if (cp < 0x800) {
        out[(*o)++] = (char)(0xc0 | (cp >> 6));
        out[(*o)++] = (char)(0x80 | (cp & 0x3f));
    } else if (cp < 0x10000) {
        out[(*o)++] = (char)(0xe0 | (cp >> 12));
        out[(*o)++] = (char)(0x80 | ((cp >> 6) & 0x3f));
        out[(*o)++] = (char)(0x80 | (cp & 0x3f));
    } else {
        out[(*o)++] = (char)(0xf0 | (cp >> 18));
        out[(*o)++] = (char)(0x80 | ((cp >> 12) & 0x3f));
        out[(*o)++] = (char)(0x80 | ((cp >> 6) & 0x3f));
        out[(*o)++] = (char)(0x80 | (cp & 0x3f));
    }
}

/* Quoted member name at s[*i] (the opening quote): JSON string escapes decoded into out
 * (which has room for n bytes: a decoded name is never longer than its text). */
static bool path_quoted(const char *s, size_t n, size_t *i, char *out, size_t *olen)
{
    size_t o = 0;

    (*i)++;
    while (*i < n && s[*i] != '"') {
        unsigned char ch = (unsigned char)s[*i];
        long cp;
        if (ch < 0x20) {
            return false;
        }
        if (ch != '\\') {
            out[o++] = (char)ch;
            (*i)++;
            continue;
        }
        if (*i + 1 >= n) {
            return false;
        }
        switch (s[*i + 1]) {
        case '"':
        case '\\':
        case '/':
            out[o++] = s[*i + 1];
            *i += 2;
            continue;
        case 'b':
            out[o++] = '\b';
            *i += 2;
            continue;
        case 'f':
            out[o++] = '\f';
            *i += 2;
            continue;
        case 'n':
            out[o++] = '\n';
            *i += 2;
            continue;
        case 'r':
            out[o++] = '\r';
            *i += 2;
            continue;
        case 't':
            out[o++] = '\t';
            *i += 2;
            continue;
        case 'u':
            break;
        default:
            return false;
        }
        cp = hex4(s + *i + 2, n - *i - 2);
        if (cp < 0) {
            return false;
        }
        *i += 6;
        if (cp >= 0xd800 && cp <= 0xdbff) {
            long lo;
            if (n - *i < 2 || s[*i] != '\\' || s[*i + 1] != 'u') {
                return false;
            }
            lo = hex4(s + *i + 2, n - *i - 2);
            if (lo < 0xdc00 || lo > 0xdfff) {
                return false;
            }
            *i += 6;
            cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
        } else if (cp >= 0xdc00 && cp <= 0xdfff) {
            return false;
        }
        put_utf8(out, &o, (uint32_t)cp);
    }
    if (*i >= n) {
        return false;
    }
    (*i)++;
    *olen = o;
    return true;
}

/* Parses path text into legs; names are decoded into names (n + 1 bytes). */
static bool parse_path(const char *s, size_t n, struct leg *legs, size_t *nlegs, char *names,
                       struct ms_error *err)
{
    size_t i = 0, used = 0;

    *nlegs = 0;
    path_ws(s, n, &i);
    if (i >= n || s[i] != '$') {
        return cannot(err, "path does not start with '$'", s, n);
    }
    i++;
    for (;;) {
        struct leg *l;
        path_ws(s, n, &i);
        if (i >= n) {
            return true;
        }
        if (*nlegs == MAX_LEGS) {
            return cannot(err, "path too deep", s, n);
        }
        l = &legs[*nlegs];
        memset(l, 0, sizeof(*l));
        if (s[i] == '.') {
            i++;
            path_ws(s, n, &i);
            if (i >= n) {
                return cannot(err, "member name expected", s, n);
            }
            l->member = true;
            l->name = names + used;
            if (s[i] == '*') {
                return cannot(err, "wildcards are not supported", s, n);
            }
            if (s[i] == '"') {
                if (!path_quoted(s, n, &i, names + used, &l->nlen)) {
                    return cannot(err, "invalid quoted member name", s, n);
                }
            } else {
                size_t start = i;
                while (i < n && s[i] != '.' && s[i] != '[' && s[i] != ' ' && s[i] != '\t' &&
                       s[i] != '\n' && s[i] != '\r') {
                    if (s[i] == '*' || s[i] == '"') {
                        return cannot(err, "invalid member name", s, n);
                    }
                    i++;
                }
                l->nlen = i - start;
                memcpy(names + used, s + start, l->nlen);
            }
            if (l->nlen == 0 || !bson_utf8_validate(l->name, l->nlen, false)) {
                return cannot(err, "invalid member name", s, n);
            }
            used += l->nlen;
        } else if (s[i] == '[') {
            i++;
            path_ws(s, n, &i);
            if (i < n && s[i] == '*') {
                return cannot(err, "wildcards are not supported", s, n);
            }
            if (n - i >= 4 && memcmp(s + i, "last", 4) == 0) {
                l->from_end = true;
                i += 4;
                path_ws(s, n, &i);
                if (i < n && s[i] == '-') {
                    i++;
                    path_ws(s, n, &i);
                    if (!path_uint(s, n, &i, &l->index)) {
                        return cannot(err, "invalid array index", s, n);
                    }
                }
            } else if (!path_uint(s, n, &i, &l->index)) {
                return cannot(err, "invalid array index", s, n);
            }
            path_ws(s, n, &i);
            if (i >= n || s[i] != ']') {
                return cannot(err, "array ranges are not supported", s, n);
            }
            i++;
        } else if (s[i] == '*') {
            return cannot(err, "wildcards are not supported", s, n);
        } else {
            return cannot(err, "invalid path", s, n);
        }
        (*nlegs)++;
    }
}

/* MySQL's object key order: shorter keys first, then bytewise. */
static int keycmp(const char *a, size_t al, const char *b, size_t bl)
{
    if (al != bl) {
        return al < bl ? -1 : 1;
    }
    return memcmp(a, b, al);
}

static bool rewrite(struct diffctx *d, bson_t *dst, const char *key, int klen,
                    const bson_iter_t *it, size_t li, const char *path, size_t plen);

static bool rewrite_object(struct diffctx *d, bson_t *child, bson_iter_t *sub, size_t li,
                           const char *path, size_t plen)
{
    const struct leg *l = &d->legs[li];
    bool last = li + 1 == d->nlegs, found = false, ok = true, placed = false;

    if (!l->member) {
        return cannot(d->err, "array index on an object", path, plen);
    }
    if (last && d->op == OP_INSERT) {
        bson_iter_t probe = *sub;
        while (bson_iter_next(&probe)) {
            if (keycmp(bson_iter_key(&probe), strlen(bson_iter_key(&probe)), l->name, l->nlen) ==
                0) {
                return cannot(d->err, "member to insert exists", path, plen);
            }
        }
    }
    while (ok && bson_iter_next(sub)) {
        const char *k = bson_iter_key(sub);
        int c = keycmp(k, strlen(k), l->name, l->nlen);
        if (last && d->op == OP_INSERT) {
            if (!placed && c > 0) {
                ok = bson_append_iter(child, l->name, (int)l->nlen, d->value);
                placed = true;
            }
            ok = ok && bson_append_iter(child, NULL, 0, sub);
            continue;
        }
        if (c != 0) {
            ok = bson_append_iter(child, NULL, 0, sub);
            continue;
        }
        found = true;
        if (!last) {
            ok = rewrite(d, child, k, -1, sub, li + 1, path, plen);
            if (!ok) {
                return false;
            }
        } else if (d->op == OP_REPLACE) {
            ok = bson_append_iter(child, k, -1, d->value);
        }
        /* OP_REMOVE: leave it out. */
    }
    if (ok && last && d->op == OP_INSERT && !placed) {
        ok = bson_append_iter(child, l->name, (int)l->nlen, d->value);
        found = true;
    }
    if (!ok) {
        return fail(d->err, MS_MYSQLJSON_MALFORMED, "JSON diff: BSON document too large");
    }
    if (!found && !(last && d->op == OP_INSERT)) {
        return cannot(d->err, "member not found", path, plen);
    }
    return true;
}

static bool rewrite_array(struct diffctx *d, bson_t *child, bson_iter_t *sub, size_t li,
                          const char *path, size_t plen)
{
    const struct leg *l = &d->legs[li];
    bool last = li + 1 == d->nlegs, ok = true, within;
    bson_iter_t probe = *sub;
    uint32_t size = 0, pos, i = 0, o = 0;
    char ibuf[16];
    const char *ik;
    int iklen;

    if (l->member) {
        return cannot(d->err, "member name on an array", path, plen);
    }
    while (bson_iter_next(&probe)) {
        size++;
    }
    /* Json_array_index: [n] clamps to the size, [last-n] counts from the end. */
    within = l->index < size;
    if (l->from_end) {
        pos = within ? size - 1 - l->index : 0;
    } else {
        pos = within ? l->index : size;
    }
    if (!within && !(last && d->op == OP_INSERT)) {
        return cannot(d->err, "array index out of range", path, plen);
    }
    while (ok && bson_iter_next(sub)) {
        if (i == pos) {
            if (last && d->op == OP_INSERT) {
                iklen = (int)bson_uint32_to_string(o++, &ik, ibuf, sizeof(ibuf));
                ok = bson_append_iter(child, ik, iklen, d->value);
            } else if (!last) {
                iklen = (int)bson_uint32_to_string(o++, &ik, ibuf, sizeof(ibuf));
                if (!rewrite(d, child, ik, iklen, sub, li + 1, path, plen)) {
                    return false;
                }
                i++;
                continue;
            } else if (d->op == OP_REPLACE) {
                iklen = (int)bson_uint32_to_string(o++, &ik, ibuf, sizeof(ibuf));
                ok = bson_append_iter(child, ik, iklen, d->value);
                i++;
                continue;
            } else {
                i++; /* OP_REMOVE */
                continue;
            }
        }
        iklen = (int)bson_uint32_to_string(o++, &ik, ibuf, sizeof(ibuf));
        ok = ok && bson_append_iter(child, ik, iklen, sub);
        i++;
    }
    if (ok && last && d->op == OP_INSERT && pos == size) {
        iklen = (int)bson_uint32_to_string(o, &ik, ibuf, sizeof(ibuf));
        ok = bson_append_iter(child, ik, iklen, d->value);
    }
    if (!ok) {
        return fail(d->err, MS_MYSQLJSON_MALFORMED, "JSON diff: BSON document too large");
    }
    return true;
}

/* Appends to dst under key the value at it with legs [li, nlegs) of the diff applied. */
static bool rewrite(struct diffctx *d, bson_t *dst, const char *key, int klen,
                    const bson_iter_t *it, size_t li, const char *path, size_t plen)
{
    bool is_doc = BSON_ITER_HOLDS_DOCUMENT(it), ok;
    bson_iter_t sub;
    bson_t child;

    if (!is_doc && !BSON_ITER_HOLDS_ARRAY(it)) {
        return cannot(d->err, "path goes through a scalar", path, plen);
    }
    if (!bson_iter_recurse(it, &sub)) {
        return fail(d->err, MS_MYSQLJSON_MALFORMED, "JSON diff: corrupt before image");
    }
    if (is_doc) {
        ok = bson_append_document_begin(dst, key, klen, &child);
    } else {
        ok = bson_append_array_begin(dst, key, klen, &child);
    }
    if (!ok) {
        return fail(d->err, MS_MYSQLJSON_MALFORMED, "JSON diff: BSON document too large");
    }
    if (is_doc) {
        ok = rewrite_object(d, &child, &sub, li, path, plen);
        if (!bson_append_document_end(dst, &child) && ok) {
            ok = fail(d->err, MS_MYSQLJSON_MALFORMED, "JSON diff: BSON document too large");
        }
    } else {
        ok = rewrite_array(d, &child, &sub, li, path, plen);
        if (!bson_append_array_end(dst, &child) && ok) {
            ok = fail(d->err, MS_MYSQLJSON_MALFORMED, "JSON diff: BSON document too large");
        }
    }
    return ok;
}

/* Applies one diff to *cur ({key: value}), replacing *cur with the result. */
static bool apply_one(bson_t **cur, const char *key, struct diffctx *d, const char *path,
                      size_t plen)
{
    bson_t *next;
    bson_iter_t it;
    bool ok;

    if (d->nlegs == 0) {
        return cannot(d->err, "diff on the root value", path, plen);
    }
    if (!bson_iter_init_find(&it, *cur, key)) {
        return cannot(d->err, "no before value", path, plen);
    }
    next = bson_new();
    ok = rewrite(d, next, key, -1, &it, 0, path, plen);
    if (!ok) {
        bson_destroy(next);
        return false;
    }
    bson_destroy(*cur);
    *cur = next;
    return true;
}

bool ms_mysqljson_apply_diffs(const bson_t *before, const char *key, const uint8_t *p, size_t len,
                              bson_t *after, struct ms_error *err)
{
    struct leg *legs = NULL;
    bson_t *cur = NULL;
    bson_iter_t it;
    char *names = NULL;
    size_t off = 0;
    bool ok = false;

    bson_init(after);
    if (before == NULL || key == NULL || (p == NULL && len > 0)) {
        fail(err, MS_MYSQLJSON_MALFORMED, "JSON diff: invalid arguments");
        goto done;
    }
    if (!bson_iter_init_find(&it, before, key) || BSON_ITER_HOLDS_NULL(&it)) {
        cannot(err, "no before value", "", 0);
        goto done;
    }
    cur = bson_new();
    if (!bson_append_iter(cur, key, -1, &it)) {
        fail(err, MS_MYSQLJSON_MALFORMED, "JSON diff: BSON document too large");
        goto done;
    }
    legs = calloc(MAX_LEGS, sizeof(*legs));
    if (legs == NULL) {
        fail(err, MS_MYSQLJSON_MALFORMED, "JSON diff: out of memory");
        goto done;
    }
    while (off < len) {
        struct diffctx d = {.op = p[off], .legs = legs, .err = err};
        uint64_t plen, vlen;
        size_t used;
        const char *path;
        bson_t val = BSON_INITIALIZER;
        bson_iter_t vit;
        bool applied;

        if (d.op > OP_REMOVE) {
            fail(err, MS_MYSQLJSON_MALFORMED, "JSON diff: unknown operation %d at offset %zu", d.op,
                 off);
            goto done;
        }
        off++;
        if (!netlen(p + off, len - off, &plen, &used) || plen > len - off - used) {
            fail(err, MS_MYSQLJSON_MALFORMED, "JSON diff: path length out of bounds at %zu", off);
            goto done;
        }
        off += used;
        path = (const char *)p + off;
        off += (size_t)plen;
        free(names);
        names = malloc((size_t)plen + 1);
        if (names == NULL) {
            fail(err, MS_MYSQLJSON_MALFORMED, "JSON diff: out of memory");
            goto done;
        }
        if (!parse_path(path, (size_t)plen, legs, &d.nlegs, names, err)) {
            goto done;
        }
        if (d.op != OP_REMOVE) {
            if (!netlen(p + off, len - off, &vlen, &used) || vlen > len - off - used) {
                fail(err, MS_MYSQLJSON_MALFORMED, "JSON diff: value length out of bounds at %zu",
                     off);
                goto done;
            }
            off += used;
            if (!ms_mysqljson_to_bson(p + off, (size_t)vlen, &val, "v", err)) {
                ms_error_prefix(err, "JSON diff value");
                bson_destroy(&val);
                goto done;
            }
            off += (size_t)vlen;
            bson_iter_init_find(&vit, &val, "v");
            d.value = &vit;
        }
        applied = apply_one(&cur, key, &d, path, (size_t)plen);
        bson_destroy(&val);
        if (!applied) {
            goto done;
        }
    }
    bson_destroy(after);
    ok = bson_steal(after, cur);
    cur = NULL;
    if (!ok) {
        bson_init(after);
        fail(err, MS_MYSQLJSON_MALFORMED, "JSON diff: cannot move the result");
    }
done:
    if (cur != NULL) {
        bson_destroy(cur);
    }
    free(legs);
    free(names);
    return ok;
}

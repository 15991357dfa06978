/* Row-image values -> BSON. The formats are those of MySQL's and MariaDB's Field::pack()
 * as read back by log_event.cc (log_event_print_value) and my_time.cc / decimal.cc: every
 * length comes from the TABLE_MAP metadata or from a length prefix, and every read is
 * checked against the bytes that are left. No allocation on the common path: integers,
 * temporal values and UTF-8 / ASCII-only latin1 strings go straight into the document;
 * only converted strings that outgrow a stack buffer use the heap. */
#include "mysync/rows.h"

#include <errno.h>
#include <iconv.h>
#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "mysync/extjson.h"
#include "mysync/mysqljson.h"

#ifdef __SSE2__
#include <emmintrin.h>
#endif

#define MAX_FSP           6
#define DEC_MAX_PRECISION 65
#define DEC_MAX_SCALE     38 /* MariaDB; MySQL stops at 30 */
#define DEC128_MAX_DIGITS 34
#define MAX_INFLATED      (256u << 20) /* far above what a BSON document can hold */

/* MariaDB column compression (COMPRESSED attribute): own binlog types. */

/* ---- small readers ------------------------------------------------------------------ */

static uint64_t le(const uint8_t *p, size_t n)
{
    uint64_t v = 0;

    for (size_t i = n; i > 0; i--) {
        v = v << 8 | p[i - 1];
    }
    return v;
}

static uint64_t be(const uint8_t *p, size_t n)
{
    uint64_t v = 0;

    for (size_t i = 0; i < n; i++) {
        v = v << 8 | p[i];
    }
    return v;
}

static const char *type_name(uint8_t type)
{
    switch (type) {
    case MS_T_DECIMAL:
        return "DECIMAL";
    case MS_T_TINY:
        return "TINYINT";
    case MS_T_SHORT:
        return "SMALLINT";
    case MS_T_LONG:
        return "INT";
    case MS_T_FLOAT:
        return "FLOAT";
    case MS_T_DOUBLE:
        return "DOUBLE";
    case MS_T_NULL:
        return "NULL";
    case MS_T_TIMESTAMP:
        return "TIMESTAMP";
    case MS_T_LONGLONG:
        return "BIGINT";
    case MS_T_INT24:
        return "MEDIUMINT";
    case MS_T_DATE:
    case MS_T_NEWDATE:
        return "DATE";
    case MS_T_TIME:
        return "TIME";
    case MS_T_DATETIME:
        return "DATETIME";
    case MS_T_YEAR:
        return "YEAR";
    case MS_T_VARCHAR:
        return "VARCHAR";
    case MS_T_BIT:
        return "BIT";
    case MS_T_TIMESTAMP2:
        return "TIMESTAMP(fsp)";
    case MS_T_DATETIME2:
        return "DATETIME(fsp)";
    case MS_T_TIME2:
        return "TIME(fsp)";
    case MS_T_TYPED_ARRAY:
        return "TYPED_ARRAY";
    case MS_T_VECTOR:
        return "VECTOR";
    case MS_T_JSON:
        return "JSON";
    case MS_T_NEWDECIMAL:
        return "DECIMAL";
    case MS_T_ENUM:
        return "ENUM";
    case MS_T_SET:
        return "SET";
    case MS_T_TINY_BLOB:
    case MS_T_MEDIUM_BLOB:
    case MS_T_LONG_BLOB:
    case MS_T_BLOB:
        return "BLOB/TEXT";
    case MS_T_VAR_STRING:
        return "VAR_STRING";
    case MS_T_STRING:
        return "CHAR";
    case MS_T_GEOMETRY:
        return "GEOMETRY";
    case MS_T_BLOB_COMPRESSED:
        return "BLOB COMPRESSED";
    case MS_T_VARCHAR_COMPRESSED:
        return "VARCHAR COMPRESSED";
    default:
        return "unknown type";
    }
}

struct charset;

/* The value's context: where it goes, and what error messages name. A value is either
 * appended to a BSON document (doc) or written as relaxed Extended JSON (json), in exactly
 * the bytes src/extjson.c writes for the BSON value (binlog-dump's lines). */
struct vctx {
    const struct ms_column *col;
    const char *key;
    uint8_t type; /* effective type (the real type of a STRING column) */
    struct ms_error *err;
    bson_t *doc;              /* BSON mode */
    struct ms_buf *json;      /* JSON mode (doc NULL) */
    const uint8_t *end;       /* JSON mode: the end of the readable bytes after the value */
    const struct charset *cs; /* the column's charset when known in advance, else NULL */
};

static bool vfail(const struct vctx *c, uint32_t code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static bool vfail(const struct vctx *c, uint32_t code, const char *fmt, ...)
{
    char what[160];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(what, sizeof(what), fmt, ap);
    va_end(ap);
    ms_error_set(c->err, MS_ERR_DECODE, code, "column %s (%s): %s", c->key, type_name(c->type),
                 what);
    return false;
}

static bool need(const struct vctx *c, size_t avail, size_t n)
{
    if (avail < n) {
        return vfail(c, MS_DECODE_MALFORMED, "truncated value: needs %zu bytes, %zu left", n,
                     avail);
    }
    return true;
}

static bool out_of_memory(const struct vctx *c, size_t n)
{
    ms_error_set(c->err, MS_ERR_SYSTEM, ENOMEM, "column %s (%s): out of memory for %zu bytes",
                 c->key, type_name(c->type), n);
    return false;
}

static bool append_failed(const struct vctx *c)
{
    return vfail(c, MS_DECODE_MALFORMED, "value does not fit in a BSON document");
}

/* ---- numbers ------------------------------------------------------------------------ */

/* ---- output: a BSON element or its JSON text ----------------------------------------- */

static bool json_oom(const struct vctx *c)
{
    return out_of_memory(c, c->json->len);
}

static bool emit_null(const struct vctx *c)
{
    if (c->json != NULL) {
        return ms_buf_put(c->json, "null", 4) || json_oom(c);
    }
    return bson_append_null(c->doc, c->key, -1) || append_failed(c);
}

static bool emit_int32(const struct vctx *c, int32_t v)
{
    if (c->json != NULL) {
        return ms_extjson_put_int(c->json, v) || json_oom(c);
    }
    return bson_append_int32(c->doc, c->key, -1, v) || append_failed(c);
}

static bool emit_int64(const struct vctx *c, int64_t v)
{
    if (c->json != NULL) {
        return ms_extjson_put_int(c->json, v) || json_oom(c);
    }
    return bson_append_int64(c->doc, c->key, -1, v) || append_failed(c);
}

/* int32 when it fits, else int64 (both print the same) */
static bool emit_i64(const struct vctx *c, int64_t v)
{
    if (c->json != NULL) {
        return ms_extjson_put_int(c->json, v) || json_oom(c);
    }
    if (v >= INT32_MIN && v <= INT32_MAX) {
        return bson_append_int32(c->doc, c->key, -1, (int32_t)v) || append_failed(c);
    }
    return bson_append_int64(c->doc, c->key, -1, v) || append_failed(c);
}

static bool emit_double(const struct vctx *c, double v)
{
    if (c->json != NULL) {
        return ms_extjson_put_double(c->json, v) || json_oom(c);
    }
    return bson_append_double(c->doc, c->key, -1, v) || append_failed(c);
}

static bool emit_dec128(const struct vctx *c, const bson_decimal128_t *d)
{
    if (c->json != NULL) {
        return ms_extjson_put_decimal128(c->json, d) || json_oom(c);
    }
    return bson_append_decimal128(c->doc, c->key, -1, d) || append_failed(c);
}

static bool emit_date(const struct vctx *c, int64_t ms)
{
    if (c->json != NULL) {
        return ms_extjson_put_date(c->json, ms) || json_oom(c);
    }
    return bson_append_date_time(c->doc, c->key, -1, ms) || append_failed(c);
}

static bool emit_text(const struct vctx *c, const char *s, size_t n)
{
    if (c->json != NULL) {
        return ms_extjson_put_string(c->json, s, n) || json_oom(c);
    }
    return (n <= INT_MAX && bson_append_utf8(c->doc, c->key, -1, s, (int)n)) || append_failed(c);
}

static bool emit_binary(const struct vctx *c, const uint8_t *s, size_t n)
{
    if (n > UINT32_MAX) {
        return append_failed(c);
    }
    if (c->json != NULL) {
        return ms_extjson_put_binary(c->json, BSON_SUBTYPE_BINARY, s, (uint32_t)n) || json_oom(c);
    }
    return bson_append_binary(c->doc, c->key, -1, BSON_SUBTYPE_BINARY, s, (uint32_t)n) ||
           append_failed(c);
}

/* Values built as BSON in both modes (arrays, JSON documents): the document to append them
 * to, a scratch one in JSON mode that complex_done then writes out. */
static bson_t *complex_doc(const struct vctx *c, bson_t *scratch)
{
    if (c->json == NULL) {
        return c->doc;
    }
    bson_init(scratch);
    return scratch;
}

static bool complex_done(const struct vctx *c, bson_t *scratch, bool ok)
{
    if (c->json == NULL) {
        return ok;
    }
    if (ok && !ms_extjson_put_first_value(c->json, scratch)) {
        ok = vfail(c, MS_DECODE_UNSUPPORTED, "value cannot be written as JSON");
    }
    bson_destroy(scratch);
    return ok;
}

static bool emit_u64(const struct vctx *c, uint64_t v)
{
    bson_decimal128_t d;

    if (v <= INT64_MAX) {
        return emit_i64(c, (int64_t)v);
    }
    /* exact: coefficient v, exponent 0 (biased 6176 in bits 49..62 of the high word) */
    d.high = UINT64_C(0x3040000000000000);
    d.low = v;
    return emit_dec128(c, &d);
}

static bool decode_int(const struct vctx *c, const uint8_t *p, size_t avail, size_t n, size_t *used)
{
    uint64_t u;

    if (!need(c, avail, n)) {
        return false;
    }
    u = le(p, n);
    *used = n;
    if (c->col->is_unsigned) {
        return emit_u64(c, u);
    }
    if (n < 8 && (u >> (8 * n - 1)) != 0) {
        u |= ~UINT64_C(0) << (8 * n); /* sign-extend */
    }
    return emit_i64(c, (int64_t)u);
}

static const uint8_t dig2bytes[10] = {0, 1, 1, 2, 2, 3, 3, 4, 4, 4};
static const uint32_t pow10_u32[10] = {1,      10,      100,      1000,      10000,
                                       100000, 1000000, 10000000, 100000000, 1000000000};

static size_t decimal_bin_size(unsigned precision, unsigned scale)
{
    unsigned intg = precision - scale;

    return (size_t)(intg / 9) * 4 + dig2bytes[intg % 9] + (size_t)(scale / 9) * 4 +
           dig2bytes[scale % 9];
}

/* MySQL's packed DECIMAL (decimal2bin): the integer digits, then the fraction digits, in
 * groups of 9 per 4 big-endian bytes, the partial group (dig2bytes) on the outer side of
 * each part. The first byte's top bit is flipped (set for positive numbers) and a negative
 * number is stored with every byte inverted. digits gets precision digits (integer part
 * zero-padded, then scale fraction digits). */
static bool unpack_decimal(const struct vctx *c, const uint8_t *p, size_t avail, unsigned precision,
                           unsigned scale, char *digits, bool *neg, size_t *used)
{
    unsigned intg = precision - scale;
    unsigned groups[4][2] = {
        /* {count, digits per group} in storage order */
        {intg % 9 != 0 ? 1 : 0, intg % 9},
        {intg / 9, 9},
        {scale / 9, 9},
        {scale % 9 != 0 ? 1 : 0, scale % 9},
    };
    uint8_t buf[40];
    size_t size = decimal_bin_size(precision, scale), off = 0, nd = 0;
    uint8_t mask;

    if (!need(c, avail, size)) {
        return false;
    }
    if (size == 0 || size > sizeof(buf)) {
        return vfail(c, MS_DECODE_MALFORMED, "impossible DECIMAL(%u,%u)", precision, scale);
    }
    memcpy(buf, p, size);
    *neg = (buf[0] & 0x80) == 0;
    mask = *neg ? 0xff : 0x00;
    buf[0] ^= 0x80;
    for (size_t i = 0; i < size; i++) {
        buf[i] ^= mask;
    }
    for (size_t g = 0; g < 4; g++) {
        unsigned ndig = groups[g][1];
        size_t nbytes = ndig == 9 ? 4 : dig2bytes[ndig];

        for (unsigned k = 0; k < groups[g][0]; k++) {
            uint32_t v = (uint32_t)be(buf + off, nbytes);

            if (v >= pow10_u32[ndig]) {
                return vfail(c, MS_DECODE_MALFORMED, "corrupt DECIMAL(%u,%u) digits", precision,
                             scale);
            }
            for (unsigned d = ndig; d > 0; d--) {
                digits[nd + d - 1] = (char)('0' + v % 10);
                v /= 10;
            }
            nd += ndig;
            off += nbytes;
        }
    }
    *used = size;
    return true;
}

static const char dec_open[] = "{ \"$numberDecimal\" : \"";

static bool decode_decimal(const struct vctx *c, const uint8_t *p, size_t avail, size_t *used,
                           const struct ms_value_opts *opts)
{
    unsigned precision = c->col->meta >> 8, scale = c->col->meta & 0xff;
    char digits[DEC_MAX_PRECISION + 1];
    char text[DEC_MAX_PRECISION + 8]; /* "-", digits, ".", NUL */
    size_t t = 0, first, ndig;
    bool neg = false, zero;

    if (precision == 0 || precision > DEC_MAX_PRECISION || scale > precision ||
        scale > DEC_MAX_SCALE) {
        return vfail(c, MS_DECODE_MALFORMED, "bad metadata DECIMAL(%u,%u)", precision, scale);
    }
    if (!unpack_decimal(c, p, avail, precision, scale, digits, &neg, used)) {
        return false;
    }
    ndig = precision;
    for (first = 0; first < ndig && digits[first] == '0'; first++) {
    }
    zero = first == ndig;
    /* exact text as MySQL prints it: no leading zeros, "0" before the point, all scale
     * digits after it; a negative zero (never stored by the server) prints as zero */
    if (neg && !zero) {
        text[t++] = '-';
    }
    if (first >= precision - scale) {
        text[t++] = '0';
    } else {
        memcpy(text + t, digits + first, precision - scale - first);
        t += precision - scale - first;
    }
    if (scale > 0) {
        text[t++] = '.';
        memcpy(text + t, digits + (precision - scale), scale);
        t += scale;
    }
    text[t] = '\0';

    if (opts->decimal_as == MS_DEC_STRING) {
        return emit_text(c, text, t);
    }
    if (opts->decimal_as == MS_DEC_DOUBLE) {
        return emit_double(c, strtod(text, NULL));
    }
    {
        /* Decimal128: coefficient = the significant digits, exponent -scale. Trailing zeros
         * of the fraction are dropped only when that makes the coefficient fit (the value
         * stays exact, the printed scale shrinks); beyond 34 significant digits the exact
         * text is stored instead. */
        size_t last = ndig; /* one past the last digit kept */
        int exponent = -(int)scale;
        bson_decimal128_t d;
        unsigned __int128 coef = 0;

        if (!zero) {
            while (last - first > DEC128_MAX_DIGITS && exponent < 0 && digits[last - 1] == '0') {
                last--;
                exponent++;
            }
            if (last - first > DEC128_MAX_DIGITS) {
                return emit_text(c, text, t);
            }
            for (size_t i = first; i < last; i++) {
                coef = coef * 10 + (unsigned)(digits[i] - '0');
            }
        }
        /* IEEE 754-2008 BID encoding, built directly (the text round trip through
         * bson_decimal128_from_string cost more than the rest of the value): at most 34
         * digits, so the coefficient is below 2^113 and the exponent within -6176..6111 */
        d.high = (neg && !zero ? 1ULL << 63 : 0) | (uint64_t)(exponent + 6176) << 49 |
                 ((uint64_t)(coef >> 64) & ((1ULL << 49) - 1));
        d.low = (uint64_t)coef;
        if (c->json != NULL && last == ndig &&
            (int)(zero ? 1 : ndig - first) - 1 - (int)scale >= -6) {
            /* what bson_decimal128_to_string prints here (no exponent form: the adjusted
             * exponent is >= -6) is the exact text already built */
            return (ms_buf_reserve(c->json, t + 24) &&
                    ms_buf_put(c->json, dec_open, sizeof(dec_open) - 1) &&
                    ms_buf_put(c->json, text, t) && ms_buf_put(c->json, "\" }", 3)) ||
                   json_oom(c);
        }
        return emit_dec128(c, &d);
    }
}

static bool decode_float(const struct vctx *c, const uint8_t *p, size_t avail, size_t *used)
{
    double v;

    if (c->type == MS_T_FLOAT) {
        uint32_t bits;
        float f;

        if (!need(c, avail, 4)) {
            return false;
        }
        bits = (uint32_t)le(p, 4);
        memcpy(&f, &bits, sizeof(f));
        v = (double)f;
        *used = 4;
    } else {
        uint64_t bits;

        if (!need(c, avail, 8)) {
            return false;
        }
        bits = le(p, 8);
        memcpy(&v, &bits, sizeof(v));
        *used = 8;
    }
    return emit_double(c, v);
}

static bool decode_bit(const struct vctx *c, const uint8_t *p, size_t avail, size_t *used)
{
    /* metadata: low byte bits % 8, high byte bits / 8 */
    unsigned rem = c->col->meta & 0xff, full = c->col->meta >> 8;
    size_t n = full + (rem > 0 ? 1 : 0);

    if (rem > 7 || n == 0 || n > 8) {
        return vfail(c, MS_DECODE_MALFORMED, "bad metadata BIT(%u)", full * 8 + rem);
    }
    if (!need(c, avail, n)) {
        return false;
    }
    *used = n;
    /* always int64 (type-stable); BIT(64) values >= 2^63 keep their bits, read as negative */
    return emit_int64(c, (int64_t)be(p, n));
}

/* ---- dates and times ---------------------------------------------------------------- */

struct mtime {
    unsigned year, month, day, hour, minute, second;
    uint32_t usec;
    bool neg;
};

int64_t ms_rows_days_from_civil(int64_t y, unsigned m, unsigned d)
{
    /* H. Hinnant's algorithm */
    int64_t era;
    unsigned yoe, doy, doe;

    y -= m <= 2;
    era = (y >= 0 ? y : y - 399) / 400;
    yoe = (unsigned)(y - era * 400);
    doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
    doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + (int64_t)doe - 719468;
}

void ms_rows_civil_from_days(int64_t z, int64_t *year, unsigned *month, unsigned *day)
{
    int64_t era, y;
    unsigned doe, yoe, doy, mp;

    z += 719468;
    era = (z >= 0 ? z : z - 146096) / 146097;
    doe = (unsigned)(z - era * 146097);
    yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    y = (int64_t)yoe + era * 400;
    doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    mp = (5 * doy + 2) / 153;
    *day = doy - (153 * mp + 2) / 5 + 1;
    *month = mp < 10 ? mp + 3 : mp - 9;
    *year = y + (*month <= 2);
}

static void civil_from_days(int64_t z, struct mtime *t)
{
    int64_t year;
    unsigned month, day;

    ms_rows_civil_from_days(z, &year, &month, &day);
    t->day = day;
    t->month = month;
    t->year = (unsigned)year;
}

static unsigned days_in_month(unsigned y, unsigned m)
{
    static const uint8_t dim[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};

    if (m == 2 && y % 4 == 0 && (y % 100 != 0 || y % 400 == 0)) {
        return 29;
    }
    return dim[m - 1];
}

/* A date that a BSON Date can hold: no zero parts, no 2020-02-31 (ALLOW_INVALID_DATES). */
static bool real_date(const struct mtime *t)
{
    return t->year >= 1 && t->year <= 9999 && t->month >= 1 && t->month <= 12 && t->day >= 1 &&
           t->day <= days_in_month(t->year, t->month);
}

static bool real_datetime(const struct mtime *t)
{
    return real_date(t) && t->hour <= 23 && t->minute <= 59 && t->second <= 59;
}

/* ".ffffff" cut to fsp digits, as MySQL prints fractional seconds */
static size_t format_frac(char *out, size_t cap, uint32_t usec, unsigned fsp)
{
    char six[8];

    if (fsp == 0) {
        out[0] = '\0';
        return 0;
    }
    snprintf(six, sizeof(six), "%06" PRIu32, usec);
    return (size_t)snprintf(out, cap, ".%.*s", (int)fsp, six);
}

static size_t format_datetime(char *out, size_t cap, const struct mtime *t, unsigned fsp)
{
    char frac[12];

    format_frac(frac, sizeof(frac), t->usec, fsp);
    return (size_t)snprintf(out, cap, "%04u-%02u-%02u %02u:%02u:%02u%s", t->year, t->month, t->day,
                            t->hour, t->minute, t->second, frac);
}

static bool append_date(const struct vctx *c, const struct mtime *t,
                        const struct ms_value_opts *opts)
{
    char s[32];
    int n = snprintf(s, sizeof(s), "%04u-%02u-%02u", t->year, t->month, t->day);

    if (opts->date_as_string || !real_date(t)) {
        return emit_text(c, s, (size_t)n);
    }
    return emit_date(c, ms_rows_days_from_civil(t->year, t->month, t->day) * 86400000);
}

/* DATETIME: a wall-clock value at opts->source_utc_offset. */
static bool append_datetime(const struct vctx *c, const struct mtime *t, unsigned fsp,
                            const struct ms_value_opts *opts)
{
    int64_t secs;

    if (!real_datetime(t) || opts->datetime_as_string || (opts->time_keep_micros && fsp > 3)) {
        char s[40];
        size_t n = format_datetime(s, sizeof(s), t, fsp);
        return emit_text(c, s, n);
    }
    if (c->json != NULL && opts->source_utc_offset == 0 && t->year >= 1970) {
        /* the Date's text is the wall clock itself: no round trip through milliseconds */
        return ms_extjson_put_date_parts(c->json, t->year, t->month, t->day, t->hour, t->minute,
                                         t->second, t->usec / 1000) ||
               json_oom(c);
    }
    secs = ms_rows_days_from_civil(t->year, t->month, t->day) * 86400 + t->hour * 3600 +
           t->minute * 60 + t->second - opts->source_utc_offset;
    return emit_date(c, secs * 1000 + t->usec / 1000);
}

/* TIMESTAMP: seconds since the epoch (UTC); 0 is the zero timestamp. */
static bool append_timestamp(const struct vctx *c, uint32_t secs, uint32_t usec, unsigned fsp,
                             const struct ms_value_opts *opts)
{
    if (secs == 0 || opts->datetime_as_string || (opts->time_keep_micros && fsp > 3)) {
        struct mtime t = {0};
        char s[40];
        size_t n;

        if (secs != 0) {
            civil_from_days(secs / 86400, &t);
            t.hour = secs % 86400 / 3600;
            t.minute = secs % 3600 / 60;
            t.second = secs % 60;
            t.usec = usec;
        }
        n = format_datetime(s, sizeof(s), &t, fsp);
        return emit_text(c, s, n);
    }
    return emit_date(c, (int64_t)secs * 1000 + usec / 1000);
}

static bool append_time(const struct vctx *c, const struct mtime *t, unsigned fsp,
                        const struct ms_value_opts *opts)
{
    char s[40], frac[12];
    int n;

    if (opts->time_as_seconds) {
        double v = (double)t->hour * 3600 + t->minute * 60 + t->second + t->usec / 1e6;
        return emit_double(c, t->neg ? -v : v);
    }
    format_frac(frac, sizeof(frac), t->usec, fsp);
    n = snprintf(s, sizeof(s), "%s%02u:%02u:%02u%s", t->neg ? "-" : "", t->hour, t->minute,
                 t->second, frac);
    return emit_text(c, s, (size_t)n);
}

static bool check_fsp(const struct vctx *c, unsigned fsp)
{
    if (fsp > MAX_FSP) {
        return vfail(c, MS_DECODE_MALFORMED, "bad metadata: fractional-second precision %u", fsp);
    }
    return true;
}

/* Fractional seconds of the *2 types: (fsp + 1) / 2 big-endian bytes, in units of
 * 1/100 s (fsp 1-2), 1/10000 s (3-4) or microseconds (5-6). Non-negative values only. */
static bool read_frac(const struct vctx *c, const uint8_t *p, unsigned fsp, uint32_t *usec)
{
    static const uint32_t unit[4] = {0, 10000, 100, 1};
    size_t nb = (fsp + 1) / 2;

    *usec = nb == 0 ? 0 : (uint32_t)be(p, nb) * unit[nb];
    if (*usec > 999999) {
        return vfail(c, MS_DECODE_MALFORMED, "bad fractional seconds");
    }
    return true;
}

static bool decode_temporal(const struct vctx *c, const uint8_t *p, size_t avail, size_t *used,
                            const struct ms_value_opts *opts)
{
    struct mtime t = {0};
    unsigned fsp = 0;

    switch (c->type) {
    case MS_T_YEAR:
        if (!need(c, avail, 1)) {
            return false;
        }
        *used = 1;
        return emit_int32(c, p[0] == 0 ? 0 : 1900 + p[0]);
    case MS_T_DATE:
    case MS_T_NEWDATE: {
        uint32_t v;

        if (!need(c, avail, 3)) {
            return false;
        }
        v = (uint32_t)le(p, 3);
        t.day = v & 31;
        t.month = v >> 5 & 15;
        t.year = v >> 9;
        *used = 3;
        return append_date(c, &t, opts);
    }
    case MS_T_DATETIME: {
        /* pre-5.6 DATETIME: 8 bytes, the decimal number YYYYMMDDhhmmss */
        uint64_t v, d, tod;

        if (!need(c, avail, 8)) {
            return false;
        }
        v = le(p, 8);
        if (v > UINT64_C(99999999999999)) {
            return vfail(c, MS_DECODE_MALFORMED, "impossible value %" PRIu64, v);
        }
        d = v / 1000000;
        tod = v % 1000000;
        t.year = (unsigned)(d / 10000);
        t.month = (unsigned)(d / 100 % 100);
        t.day = (unsigned)(d % 100);
        t.hour = (unsigned)(tod / 10000);
        t.minute = (unsigned)(tod / 100 % 100);
        t.second = (unsigned)(tod % 100);
        *used = 8;
        return append_datetime(c, &t, 0, opts);
    }
    case MS_T_DATETIME2: {
        /* 5 bytes big-endian, offset 2^39: 17 bits year*13+month, 5 day, 5 hour, 6 minute,
         * 6 second; then the fraction */
        uint64_t v;
        uint64_t ym, hms;

        fsp = c->col->meta;
        if (!check_fsp(c, fsp) || !need(c, avail, 5 + (fsp + 1) / 2)) {
            return false;
        }
        v = be(p, 5);
        if (v < UINT64_C(0x8000000000)) {
            return vfail(c, MS_DECODE_MALFORMED, "negative DATETIME");
        }
        v -= UINT64_C(0x8000000000);
        ym = v >> 22;
        hms = v & 0x1ffff;
        t.year = (unsigned)(ym / 13);
        t.month = (unsigned)(ym % 13);
        t.day = (unsigned)(v >> 17 & 31);
        t.hour = (unsigned)(hms >> 12);
        t.minute = (unsigned)(hms >> 6 & 63);
        t.second = (unsigned)(hms & 63);
        if (!read_frac(c, p + 5, fsp, &t.usec)) {
            return false;
        }
        *used = 5 + (fsp + 1) / 2;
        return append_datetime(c, &t, fsp, opts);
    }
    case MS_T_TIMESTAMP:
        if (!need(c, avail, 4)) {
            return false;
        }
        *used = 4;
        return append_timestamp(c, (uint32_t)le(p, 4), 0, 0, opts);
    case MS_T_TIMESTAMP2: {
        uint32_t usec;

        fsp = c->col->meta;
        if (!check_fsp(c, fsp) || !need(c, avail, 4 + (fsp + 1) / 2) ||
            !read_frac(c, p + 4, fsp, &usec)) {
            return false;
        }
        *used = 4 + (fsp + 1) / 2;
        return append_timestamp(c, (uint32_t)be(p, 4), usec, fsp, opts);
    }
    case MS_T_TIME: {
        /* pre-5.6 TIME: 3 bytes little-endian, the signed decimal number hhmmss */
        int32_t v;

        if (!need(c, avail, 3)) {
            return false;
        }
        v = (int32_t)le(p, 3);
        if (v & 0x800000) {
            v -= 0x1000000;
        }
        t.neg = v < 0;
        v = t.neg ? -v : v;
        t.hour = (unsigned)(v / 10000);
        t.minute = (unsigned)(v / 100 % 100);
        t.second = (unsigned)(v % 100);
        *used = 3;
        return append_time(c, &t, 0, opts);
    }
    case MS_T_TIME2: {
        /* my_time_packed_from_binary(): 3 bytes big-endian, offset 0x800000 (1 sign bit,
         * 1 unused, 10 hour, 6 minute, 6 second), then the fraction; a negative value with
         * a fraction borrows one second from the integer part. Packed = int << 24 | frac. */
        int64_t intpart, frac, packed;
        uint64_t hms;
        size_t nb;

        fsp = c->col->meta;
        if (!check_fsp(c, fsp)) {
            return false;
        }
        nb = 3 + (fsp + 1) / 2;
        if (!need(c, avail, nb)) {
            return false;
        }
        intpart = (int64_t)be(p, 3) - 0x800000;
        switch ((fsp + 1) / 2) {
        case 0:
            packed = intpart * (INT64_C(1) << 24);
            break;
        case 1:
            frac = p[3];
            if (intpart < 0 && frac != 0) {
                intpart++;
                frac -= 0x100;
            }
            packed = intpart * (INT64_C(1) << 24) + frac * 10000;
            break;
        case 2:
            frac = (int64_t)be(p + 3, 2);
            if (intpart < 0 && frac != 0) {
                intpart++;
                frac -= 0x10000;
            }
            packed = intpart * (INT64_C(1) << 24) + frac * 100;
            break;
        default:
            packed = (int64_t)be(p, 6) - INT64_C(0x800000000000);
            break;
        }
        t.neg = packed < 0;
        if (t.neg) {
            packed = -packed;
        }
        hms = (uint64_t)packed >> 24;
        t.usec = (uint32_t)(packed & 0xffffff);
        t.hour = (unsigned)(hms >> 12 & 1023);
        t.minute = (unsigned)(hms >> 6 & 63);
        t.second = (unsigned)(hms & 63);
        if (t.usec > 999999 || t.minute > 59 || t.second > 59) {
            return vfail(c, MS_DECODE_MALFORMED, "impossible TIME value");
        }
        *used = nb;
        return append_time(c, &t, fsp, opts);
    }
    default:
        return vfail(c, MS_DECODE_UNSUPPORTED, "not a temporal type");
    }
}

/* ---- character sets ----------------------------------------------------------------- */

enum cs_kind { K_UTF8, K_LATIN1, K_ASCII, K_BINARY, K_ICONV, K_NONE };

struct charset {
    const char *name;
    const char *iconv; /* glibc name, for K_ICONV */
    uint8_t kind;
};

enum {
    CS_UTF8MB4,
    CS_UTF8MB3,
    CS_LATIN1,
    CS_ASCII,
    CS_BINARY,
    CS_ARMSCII8,
    CS_BIG5,
    CS_CP1250,
    CS_CP1251,
    CS_CP1256,
    CS_CP1257,
    CS_CP850,
    CS_CP852,
    CS_CP866,
    CS_CP932,
    CS_DEC8,
    CS_EUCJPMS,
    CS_EUCKR,
    CS_GB18030,
    CS_GB2312,
    CS_GBK,
    CS_GEOSTD8,
    CS_GREEK,
    CS_HEBREW,
    CS_HP8,
    CS_KEYBCS2,
    CS_KOI8R,
    CS_KOI8U,
    CS_LATIN2,
    CS_LATIN5,
    CS_LATIN7,
    CS_MACCE,
    CS_MACROMAN,
    CS_SJIS,
    CS_SWE7,
    CS_TIS620,
    CS_UCS2,
    CS_UJIS,
    CS_UTF16,
    CS_UTF16LE,
    CS_UTF32,
};

static const struct charset charsets[] = {
    [CS_UTF8MB4] = {"utf8mb4", NULL, K_UTF8},
    [CS_UTF8MB3] = {"utf8mb3", NULL, K_UTF8},
    [CS_LATIN1] = {"latin1", NULL, K_LATIN1},
    [CS_ASCII] = {"ascii", NULL, K_ASCII},
    [CS_BINARY] = {"binary", NULL, K_BINARY},
    [CS_ARMSCII8] = {"armscii8", "ARMSCII-8", K_ICONV},
    [CS_BIG5] = {"big5", "BIG5", K_ICONV},
    [CS_CP1250] = {"cp1250", "CP1250", K_ICONV},
    [CS_CP1251] = {"cp1251", "CP1251", K_ICONV},
    [CS_CP1256] = {"cp1256", "CP1256", K_ICONV},
    [CS_CP1257] = {"cp1257", "CP1257", K_ICONV},
    [CS_CP850] = {"cp850", "CP850", K_ICONV},
    [CS_CP852] = {"cp852", "CP852", K_ICONV},
    [CS_CP866] = {"cp866", "CP866", K_ICONV},
    [CS_CP932] = {"cp932", "CP932", K_ICONV},
    [CS_DEC8] = {"dec8", "DEC-MCS", K_ICONV},
    [CS_EUCJPMS] = {"eucjpms", "EUC-JP-MS", K_ICONV},
    [CS_EUCKR] = {"euckr", "EUC-KR", K_ICONV},
    [CS_GB18030] = {"gb18030", "GB18030", K_ICONV},
    [CS_GB2312] = {"gb2312", "EUC-CN", K_ICONV},
    [CS_GBK] = {"gbk", "GBK", K_ICONV},
    [CS_GEOSTD8] = {"geostd8", "GEORGIAN-PS", K_ICONV},
    [CS_GREEK] = {"greek", "ISO-8859-7", K_ICONV},
    [CS_HEBREW] = {"hebrew", "ISO-8859-8", K_ICONV},
    [CS_HP8] = {"hp8", "HP-ROMAN8", K_ICONV},
    [CS_KEYBCS2] = {"keybcs2", NULL, K_NONE}, /* no glibc converter */
    [CS_KOI8R] = {"koi8r", "KOI8-R", K_ICONV},
    [CS_KOI8U] = {"koi8u", "KOI8-U", K_ICONV},
    [CS_LATIN2] = {"latin2", "ISO-8859-2", K_ICONV},
    [CS_LATIN5] = {"latin5", "ISO-8859-9", K_ICONV},
    [CS_LATIN7] = {"latin7", "ISO-8859-13", K_ICONV},
    [CS_MACCE] = {"macce", "MAC-CENTRALEUROPE", K_ICONV},
    [CS_MACROMAN] = {"macroman", "MACINTOSH", K_ICONV},
    [CS_SJIS] = {"sjis", "SJIS", K_ICONV},
    [CS_SWE7] = {"swe7", "ISO646-SE", K_ICONV},
    [CS_TIS620] = {"tis620", "TIS-620", K_ICONV},
    [CS_UCS2] = {"ucs2", "UCS-2BE", K_ICONV},
    [CS_UJIS] = {"ujis", "EUC-JP", K_ICONV},
    [CS_UTF16] = {"utf16", "UTF-16BE", K_ICONV},
    [CS_UTF16LE] = {"utf16le", "UTF-16LE", K_ICONV},
    [CS_UTF32] = {"utf32", "UTF-32BE", K_ICONV},
};

/* Collation id -> character set, as ranges of ids. Generated from MariaDB 10.11's
 * information_schema.COLLATION_CHARACTER_SET_APPLICABILITY (ID, CHARACTER_SET_NAME; ids
 * 1-247, 576-738 and 1025-1270 for the nopad variants, 2048-3271 for uca1400) plus MySQL 8's
 * own ids (76 utf8mb3_tolower_ci, 248-250 gb18030, 255-323 utf8mb4_*_0900_*), which no
 * MariaDB id reuses. Ids below 248 mean the same character set on both servers. */
static const struct coll_range {
    uint16_t first, last;
    uint8_t cs;
} coll_ranges[] = {
    {1, 1, CS_BIG5},           {2, 2, CS_LATIN2},         {3, 3, CS_DEC8},
    {4, 4, CS_CP850},          {5, 5, CS_LATIN1},         {6, 6, CS_HP8},
    {7, 7, CS_KOI8R},          {8, 8, CS_LATIN1},         {9, 9, CS_LATIN2},
    {10, 10, CS_SWE7},         {11, 11, CS_ASCII},        {12, 12, CS_UJIS},
    {13, 13, CS_SJIS},         {14, 14, CS_CP1251},       {15, 15, CS_LATIN1},
    {16, 16, CS_HEBREW},       {18, 18, CS_TIS620},       {19, 19, CS_EUCKR},
    {20, 20, CS_LATIN7},       {21, 21, CS_LATIN2},       {22, 22, CS_KOI8U},
    {23, 23, CS_CP1251},       {24, 24, CS_GB2312},       {25, 25, CS_GREEK},
    {26, 26, CS_CP1250},       {27, 27, CS_LATIN2},       {28, 28, CS_GBK},
    {29, 29, CS_CP1257},       {30, 30, CS_LATIN5},       {31, 31, CS_LATIN1},
    {32, 32, CS_ARMSCII8},     {33, 33, CS_UTF8MB3},      {34, 34, CS_CP1250},
    {35, 35, CS_UCS2},         {36, 36, CS_CP866},        {37, 37, CS_KEYBCS2},
    {38, 38, CS_MACCE},        {39, 39, CS_MACROMAN},     {40, 40, CS_CP852},
    {41, 42, CS_LATIN7},       {43, 43, CS_MACCE},        {44, 44, CS_CP1250},
    {45, 46, CS_UTF8MB4},      {47, 49, CS_LATIN1},       {50, 52, CS_CP1251},
    {53, 53, CS_MACROMAN},     {54, 55, CS_UTF16},        {56, 56, CS_UTF16LE},
    {57, 57, CS_CP1256},       {58, 59, CS_CP1257},       {60, 61, CS_UTF32},
    {62, 62, CS_UTF16LE},      {63, 63, CS_BINARY},       {64, 64, CS_ARMSCII8},
    {65, 65, CS_ASCII},        {66, 66, CS_CP1250},       {67, 67, CS_CP1256},
    {68, 68, CS_CP866},        {69, 69, CS_DEC8},         {70, 70, CS_GREEK},
    {71, 71, CS_HEBREW},       {72, 72, CS_HP8},          {73, 73, CS_KEYBCS2},
    {74, 74, CS_KOI8R},        {75, 75, CS_KOI8U},        {76, 76, CS_UTF8MB3},
    {77, 77, CS_LATIN2},       {78, 78, CS_LATIN5},       {79, 79, CS_LATIN7},
    {80, 80, CS_CP850},        {81, 81, CS_CP852},        {82, 82, CS_SWE7},
    {83, 83, CS_UTF8MB3},      {84, 84, CS_BIG5},         {85, 85, CS_EUCKR},
    {86, 86, CS_GB2312},       {87, 87, CS_GBK},          {88, 88, CS_SJIS},
    {89, 89, CS_TIS620},       {90, 90, CS_UCS2},         {91, 91, CS_UJIS},
    {92, 93, CS_GEOSTD8},      {94, 94, CS_LATIN1},       {95, 96, CS_CP932},
    {97, 98, CS_EUCJPMS},      {99, 99, CS_CP1250},       {101, 124, CS_UTF16},
    {128, 151, CS_UCS2},       {159, 159, CS_UCS2},       {160, 183, CS_UTF32},
    {192, 215, CS_UTF8MB3},    {223, 223, CS_UTF8MB3},    {224, 247, CS_UTF8MB4},
    {248, 250, CS_GB18030},    {255, 323, CS_UTF8MB4},    {576, 578, CS_UTF8MB3},
    {608, 610, CS_UTF8MB4},    {640, 642, CS_UCS2},       {672, 674, CS_UTF16},
    {736, 738, CS_UTF32},      {1025, 1025, CS_BIG5},     {1027, 1027, CS_DEC8},
    {1028, 1028, CS_CP850},    {1030, 1030, CS_HP8},      {1031, 1031, CS_KOI8R},
    {1032, 1032, CS_LATIN1},   {1033, 1033, CS_LATIN2},   {1034, 1034, CS_SWE7},
    {1035, 1035, CS_ASCII},    {1036, 1036, CS_UJIS},     {1037, 1037, CS_SJIS},
    {1040, 1040, CS_HEBREW},   {1042, 1042, CS_TIS620},   {1043, 1043, CS_EUCKR},
    {1046, 1046, CS_KOI8U},    {1048, 1048, CS_GB2312},   {1049, 1049, CS_GREEK},
    {1050, 1050, CS_CP1250},   {1052, 1052, CS_GBK},      {1054, 1054, CS_LATIN5},
    {1056, 1056, CS_ARMSCII8}, {1057, 1057, CS_UTF8MB3},  {1059, 1059, CS_UCS2},
    {1060, 1060, CS_CP866},    {1061, 1061, CS_KEYBCS2},  {1062, 1062, CS_MACCE},
    {1063, 1063, CS_MACROMAN}, {1064, 1064, CS_CP852},    {1065, 1065, CS_LATIN7},
    {1067, 1067, CS_MACCE},    {1069, 1070, CS_UTF8MB4},  {1071, 1071, CS_LATIN1},
    {1074, 1075, CS_CP1251},   {1077, 1077, CS_MACROMAN}, {1078, 1079, CS_UTF16},
    {1080, 1080, CS_UTF16LE},  {1081, 1081, CS_CP1256},   {1082, 1083, CS_CP1257},
    {1084, 1085, CS_UTF32},    {1086, 1086, CS_UTF16LE},  {1088, 1088, CS_ARMSCII8},
    {1089, 1089, CS_ASCII},    {1090, 1090, CS_CP1250},   {1091, 1091, CS_CP1256},
    {1092, 1092, CS_CP866},    {1093, 1093, CS_DEC8},     {1094, 1094, CS_GREEK},
    {1095, 1095, CS_HEBREW},   {1096, 1096, CS_HP8},      {1097, 1097, CS_KEYBCS2},
    {1098, 1098, CS_KOI8R},    {1099, 1099, CS_KOI8U},    {1101, 1101, CS_LATIN2},
    {1102, 1102, CS_LATIN5},   {1103, 1103, CS_LATIN7},   {1104, 1104, CS_CP850},
    {1105, 1105, CS_CP852},    {1106, 1106, CS_SWE7},     {1107, 1107, CS_UTF8MB3},
    {1108, 1108, CS_BIG5},     {1109, 1109, CS_EUCKR},    {1110, 1110, CS_GB2312},
    {1111, 1111, CS_GBK},      {1112, 1112, CS_SJIS},     {1113, 1113, CS_TIS620},
    {1114, 1114, CS_UCS2},     {1115, 1115, CS_UJIS},     {1116, 1117, CS_GEOSTD8},
    {1119, 1120, CS_CP932},    {1121, 1122, CS_EUCJPMS},  {1125, 1125, CS_UTF16},
    {1147, 1147, CS_UTF16},    {1152, 1152, CS_UCS2},     {1174, 1174, CS_UCS2},
    {1184, 1184, CS_UTF32},    {1206, 1206, CS_UTF32},    {1216, 1216, CS_UTF8MB3},
    {1238, 1238, CS_UTF8MB3},  {1248, 1248, CS_UTF8MB4},  {1270, 1270, CS_UTF8MB4},
    {2048, 2215, CS_UTF8MB3},  {2232, 2247, CS_UTF8MB3},  {2304, 2471, CS_UTF8MB4},
    {2488, 2503, CS_UTF8MB4},  {2560, 2727, CS_UCS2},     {2744, 2759, CS_UCS2},
    {2816, 2983, CS_UTF16},    {3000, 3015, CS_UTF16},    {3072, 3239, CS_UTF32},
    {3256, 3271, CS_UTF32},
};

static const struct charset *charset_of(uint16_t collation)
{
    size_t lo = 0, hi = sizeof(coll_ranges) / sizeof(coll_ranges[0]);

    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;

        if (collation < coll_ranges[mid].first) {
            hi = mid;
        } else if (collation > coll_ranges[mid].last) {
            lo = mid + 1;
        } else {
            return &charsets[coll_ranges[mid].cs];
        }
    }
    return NULL;
}

/* MySQL's latin1 is Windows-1252, with the five holes (0x81 0x8D 0x8F 0x90 0x9D) mapped to
 * the C1 controls of the same value. 0xA0-0xFF are U+00A0-U+00FF. */
static const uint16_t cp1252_80[32] = {
    0x20AC, 0x0081, 0x201A, 0x0192, 0x201E, 0x2026, 0x2020, 0x2021, 0x02C6, 0x2030, 0x0160,
    0x2039, 0x0152, 0x008D, 0x017D, 0x008F, 0x0090, 0x2018, 0x2019, 0x201C, 0x201D, 0x2022,
    0x2013, 0x2014, 0x02DC, 0x2122, 0x0161, 0x203A, 0x0153, 0x009D, 0x017E, 0x0178,
};

/* Strict UTF-8 (no overlongs, no surrogates, nothing above U+10FFFF); 4-byte sequences
 * allowed. Returns the offset of the first bad byte, or n. */
static size_t utf8_check(const uint8_t *s, size_t n)
{
    size_t i = 0;

    while (i < n) {
        uint8_t b = s[i];
        size_t len;
        uint8_t lo = 0x80, hi = 0xbf;

        if (b < 0x80) {
            /* skip ASCII 8 bytes at a time */
            while (i + 8 <= n) {
                uint64_t w;
                memcpy(&w, s + i, 8);
                if ((w & UINT64_C(0x8080808080808080)) != 0) {
                    break;
                }
                i += 8;
            }
            if (i < n && s[i] < 0x80) {
                i++;
            }
            continue;
        }
        if (b >= 0xc2 && b <= 0xdf) {
            len = 2;
        } else if (b >= 0xe0 && b <= 0xef) {
            len = 3;
            lo = b == 0xe0 ? 0xa0 : 0x80;
            hi = b == 0xed ? 0x9f : 0xbf;
        } else if (b >= 0xf0 && b <= 0xf4) {
            len = 4;
            lo = b == 0xf0 ? 0x90 : 0x80;
            hi = b == 0xf4 ? 0x8f : 0xbf;
        } else {
            return i;
        }
        if (n - i < len || s[i + 1] < lo || s[i + 1] > hi) {
            return i;
        }
        for (size_t k = 2; k < len; k++) {
            if ((s[i + k] & 0xc0) != 0x80) {
                return i;
            }
        }
        i += len;
    }
    return n;
}

/* Output of a conversion: a stack buffer, the heap beyond it. */
struct sbuf {
    char *p;
    size_t len, cap;
    bool heap;
    char stack[1024];
};

static void sbuf_init(struct sbuf *b)
{
    b->p = b->stack;
    b->len = 0;
    b->cap = sizeof(b->stack);
    b->heap = false;
}

static void sbuf_cleanup(struct sbuf *b)
{
    if (b->heap) {
        free(b->p);
    }
}

static bool sbuf_reserve(struct sbuf *b, size_t want)
{
    char *np;
    size_t cap;

    if (want <= b->cap) {
        return true;
    }
    cap = want > b->cap * 2 ? want : b->cap * 2;
    if (b->heap) {
        np = realloc(b->p, cap);
    } else {
        np = malloc(cap);
        if (np != NULL) {
            memcpy(np, b->p, b->len);
        }
    }
    if (np == NULL) {
        return false;
    }
    b->p = np;
    b->cap = cap;
    b->heap = true;
    return true;
}

static bool latin1_to_utf8(const uint8_t *s, size_t n, struct sbuf *out)
{
    char *o;

    if (n > (SIZE_MAX - 1) / 3 || !sbuf_reserve(out, n * 3)) {
        return false;
    }
    o = out->p;
    for (size_t i = 0; i < n; i++) {
        uint32_t cp = s[i] >= 0x80 && s[i] < 0xa0 ? cp1252_80[s[i] - 0x80] : s[i];

        if (cp < 0x80) {
            *o++ = (char)cp;
        } else if (cp < 0x800) {
            *o++ = (char)(0xc0 | cp >> 6);
            *o++ = (char)(0x80 | (cp & 0x3f));
        } else {
            *o++ = (char)(0xe0 | cp >> 12);
            *o++ = (char)(0x80 | (cp >> 6 & 0x3f));
            *o++ = (char)(0x80 | (cp & 0x3f));
        }
    }
    out->len = (size_t)(o - out->p);
    return true;
}

static bool iconv_to_utf8(const struct vctx *c, const struct charset *cs, const uint8_t *s,
                          size_t n, struct sbuf *out)
{
    iconv_t cd = iconv_open("UTF-8", cs->iconv);
    char *in = (char *)s;
    size_t inleft = n;
    bool ok = false;

    if (cd == (iconv_t)-1) {
        return vfail(c, MS_DECODE_UNSUPPORTED, "no converter for character set %s", cs->name);
    }
    if (n > (SIZE_MAX - 16) / 4 || !sbuf_reserve(out, n * 3 + 16)) {
        out_of_memory(c, n);
        goto done;
    }
    while (inleft > 0) {
        char *o = out->p + out->len;
        size_t oleft = out->cap - out->len;
        size_t r = iconv(cd, &in, &inleft, &o, &oleft);
        int e = errno;

        out->len = (size_t)(o - out->p);
        if (r != (size_t)-1) {
            continue;
        }
        if (e != E2BIG) {
            vfail(c, MS_DECODE_CHARSET, "invalid %s string (bad bytes at offset %zu)", cs->name,
                  n - inleft);
            goto done;
        }
        if (!sbuf_reserve(out, out->cap * 2)) {
            out_of_memory(c, n);
            goto done;
        }
    }
    for (;;) {
        /* end in the initial shift state (stateful encodings) */
        char *o = out->p + out->len;
        size_t oleft = out->cap - out->len;
        size_t r = iconv(cd, NULL, NULL, &o, &oleft);
        int e = errno;

        out->len = (size_t)(o - out->p);
        if (r != (size_t)-1) {
            break;
        }
        if (e != E2BIG || !sbuf_reserve(out, out->cap * 2)) {
            vfail(c, MS_DECODE_CHARSET, "invalid %s string (incomplete at its end)", cs->name);
            goto done;
        }
    }
    ok = true;
done:
    iconv_close(cd);
    return ok;
}

enum text_as { AS_STRING, AS_CHAR, AS_JSON };

/* A character value in the column's charset -> a BSON string (or, for binary collations, BSON
 * binary). CHAR drops trailing spaces (PAD SPACE), MariaDB's JSON columns parse as JSON. */
static bool append_chars(const struct vctx *c, const uint8_t *s, size_t n, enum text_as as)
{
    const struct ms_column *col = c->col;
    const struct charset *cs;
    struct sbuf buf;
    const char *u = (const char *)s;
    size_t un = n, bad;
    bool ok;

    if (col->is_binary || col->collation == 63) {
        return emit_binary(c, s, n);
    }
    if (col->collation == 0) {
        /* charset unknown (no metadata): UTF-8 when it is, else the raw bytes */
        if (utf8_check(s, n) != n) {
            return emit_binary(c, s, n);
        }
        cs = &charsets[CS_UTF8MB4];
    } else {
        cs = c->cs != NULL ? c->cs : charset_of(col->collation);
        if (cs == NULL) {
            return vfail(c, MS_DECODE_UNSUPPORTED, "unknown collation id %u", col->collation);
        }
    }
    if (c->json != NULL && as != AS_JSON &&
        (cs->kind == K_UTF8 || cs->kind == K_LATIN1 || cs->kind == K_ASCII) &&
        ms_extjson_plain_len(u, n) == n) {
        /* printable ASCII without quotes or backslashes: valid in all three, the same in
         * UTF-8, and written as it is (one pass over the bytes instead of three) */
        if (as == AS_CHAR) {
            while (un > 0 && u[un - 1] == ' ') {
                un--;
            }
        }
        if (!ms_buf_reserve(c->json, un + 2 + 32)) {
            return json_oom(c);
        }
        c->json->p[c->json->len] = '"';
        if (u == (const char *)s && c->end != NULL && (size_t)(c->end - s) >= un + 32) {
            /* whole 32-byte blocks: they stay inside the row buffer */
            for (size_t i = 0; i < un; i += 32) {
                memcpy(c->json->p + c->json->len + 1 + i, u + i, 32);
            }
        } else {
            memcpy(c->json->p + c->json->len + 1, u, un);
        }
        c->json->p[c->json->len + 1 + un] = '"';
        c->json->len += un + 2;
        return true;
    }
    sbuf_init(&buf);
    switch (cs->kind) {
    case K_UTF8:
        bad = utf8_check(s, n);
        if (bad != n) {
            return vfail(c, MS_DECODE_CHARSET, "invalid UTF-8 (%s) at byte %zu of %zu", cs->name,
                         bad, n);
        }
        break;
    case K_ASCII:
        for (size_t i = 0; i < n; i++) {
            if (s[i] >= 0x80) {
                return vfail(c, MS_DECODE_CHARSET, "byte 0x%02x at %zu is not ascii", s[i], i);
            }
        }
        break;
    case K_LATIN1:
        for (bad = 0; bad < n && s[bad] < 0x80; bad++) {
        }
        if (bad < n) {
            if (!latin1_to_utf8(s, n, &buf)) {
                return out_of_memory(c, n);
            }
            u = buf.p;
            un = buf.len;
        }
        break;
    case K_ICONV:
        if (!iconv_to_utf8(c, cs, s, n, &buf)) {
            sbuf_cleanup(&buf);
            return false;
        }
        u = buf.p;
        un = buf.len;
        break;
    case K_BINARY:
        return emit_binary(c, s, n);
    default:
        return vfail(c, MS_DECODE_UNSUPPORTED, "no converter for character set %s", cs->name);
    }
    if (as == AS_CHAR) {
        while (un > 0 && u[un - 1] == ' ') {
            un--;
        }
    }
    if (as == AS_JSON) {
        bson_t scratch, *doc = complex_doc(c, &scratch);
        ok = ms_textjson_to_bson(u, un, doc, c->key, c->err);
        if (!ok) {
            ms_error_prefix(c->err, "column %s (JSON text)", c->key);
        }
        ok = complex_done(c, &scratch, ok);
    } else {
        ok = emit_text(c, u, un);
    }
    sbuf_cleanup(&buf);
    return ok;
}

/* ---- strings, blobs and friends ----------------------------------------------------- */

/* A value with an nbytes little-endian length prefix. */
static bool read_prefixed(const struct vctx *c, const uint8_t *p, size_t avail, size_t nbytes,
                          const uint8_t **v, size_t *len, size_t *used)
{
    uint64_t n;

    if (nbytes < 1 || nbytes > 4) {
        return vfail(c, MS_DECODE_MALFORMED, "bad metadata: %zu length bytes", nbytes);
    }
    if (!need(c, avail, nbytes)) {
        return false;
    }
    n = le(p, nbytes);
    if (n > avail - nbytes) {
        return vfail(c, MS_DECODE_MALFORMED, "truncated value: length %" PRIu64 ", %zu bytes left",
                     n, avail - nbytes);
    }
    *v = p + nbytes;
    *len = (size_t)n;
    *used = nbytes + (size_t)n;
    return true;
}

static bool decode_enum(const struct vctx *c, const uint8_t *p, size_t avail, size_t n,
                        size_t *used)
{
    const struct ms_column *col = c->col;
    uint32_t v;

    if (n != 1 && n != 2) {
        return vfail(c, MS_DECODE_MALFORMED, "bad metadata: ENUM of %zu bytes", n);
    }
    if (!need(c, avail, n)) {
        return false;
    }
    v = (uint32_t)le(p, n);
    *used = n;
    if (col->enum_values == NULL) {
        /* labels unknown (no metadata): the index */
        return emit_int32(c, (int32_t)v);
    }
    if (v == 0) {
        /* the index of the invalid value '' */
        return emit_text(c, "", 0);
    }
    if (v > col->n_enum) {
        return vfail(c, MS_DECODE_MALFORMED, "ENUM index %" PRIu32 " beyond its %zu labels", v,
                     col->n_enum);
    }
    return emit_text(c, col->enum_values[v - 1], strlen(col->enum_values[v - 1]));
}

static bool decode_set(const struct vctx *c, const uint8_t *p, size_t avail, size_t n, size_t *used)
{
    const struct ms_column *col = c->col;
    uint64_t bits;
    bson_t arr, scratch, *doc;
    uint32_t k = 0;
    bool ok;

    if (n < 1 || n > 8) {
        return vfail(c, MS_DECODE_MALFORMED, "bad metadata: SET of %zu bytes", n);
    }
    if (!need(c, avail, n)) {
        return false;
    }
    bits = le(p, n);
    *used = n;
    if (col->set_values == NULL) {
        return emit_int64(c, (int64_t)bits);
    }
    if (col->n_set < 64 && (bits >> col->n_set) != 0) {
        return vfail(c, MS_DECODE_MALFORMED, "SET bits 0x%" PRIx64 " beyond its %zu labels", bits,
                     col->n_set);
    }
    doc = complex_doc(c, &scratch);
    ok = bson_append_array_begin(doc, c->key, -1, &arr);
    if (ok) {
        for (unsigned i = 0; i < 64; i++) {
            if ((bits >> i & 1) != 0) {
                char idx[16];
                const char *ks;
                size_t kl = bson_uint32_to_string(k++, &ks, idx, sizeof(idx));

                bson_append_utf8(&arr, ks, (int)kl, col->set_values[i], -1);
            }
        }
        ok = bson_append_array_end(doc, &arr);
    }
    return complex_done(c, &scratch, ok || append_failed(c));
}

static bool decode_vector(const struct vctx *c, const uint8_t *v, size_t len)
{
    bson_t arr, scratch, *doc;
    bool ok;

    if (len % 4 != 0) {
        return vfail(c, MS_DECODE_MALFORMED, "VECTOR of %zu bytes", len);
    }
    doc = complex_doc(c, &scratch);
    ok = bson_append_array_begin(doc, c->key, -1, &arr);
    if (ok) {
        for (size_t i = 0; i < len / 4; i++) {
            char idx[16];
            const char *ks;
            size_t kl = bson_uint32_to_string((uint32_t)i, &ks, idx, sizeof(idx));
            uint32_t bits = (uint32_t)le(v + 4 * i, 4);
            float f;

            memcpy(&f, &bits, sizeof(f));
            bson_append_double(&arr, ks, (int)kl, (double)f);
        }
        ok = bson_append_array_end(doc, &arr);
    }
    return complex_done(c, &scratch, ok || append_failed(c));
}

static bool decode_string(struct vctx *c, const uint8_t *p, size_t avail, size_t *used)
{
    /* CHAR, BINARY, ENUM and SET share MYSQL_TYPE_STRING: the metadata's first byte is the
     * real type, with the top bits of lengths above 255 folded into it (XOR 0x30). */
    uint8_t b0 = (uint8_t)(c->col->meta >> 8), b1 = (uint8_t)(c->col->meta & 0xff);
    uint8_t real;
    size_t length;
    const uint8_t *v;
    size_t len;

    if ((b0 & 0x30) != 0x30) {
        length = b1 | ((size_t)((b0 & 0x30) ^ 0x30) << 4);
        real = (uint8_t)(b0 | 0x30);
    } else {
        length = b1;
        real = b0;
    }
    if (c->col->type == MS_T_STRING &&
        (c->col->real_type == MS_T_STRING || c->col->real_type == MS_T_ENUM ||
         c->col->real_type == MS_T_SET)) {
        real = c->col->real_type;
    } else if (c->col->type == MS_T_ENUM || c->col->type == MS_T_SET) {
        real = c->col->type;
    }
    c->type = real;
    switch (real) {
    case MS_T_ENUM:
        return decode_enum(c, p, avail, length, used);
    case MS_T_SET:
        return decode_set(c, p, avail, length, used);
    case MS_T_STRING:
        if (!read_prefixed(c, p, avail, length < 256 ? 1 : 2, &v, &len, used)) {
            return false;
        }
        if ((c->col->is_binary || c->col->collation == 63) && len < length) {
            /* BINARY(n): the server strips the 0x00 padding when logging; put it back, as
             * SELECT returns it */
            uint8_t padded[1024];

            if (length > sizeof(padded)) {
                return vfail(c, MS_DECODE_MALFORMED, "bad metadata: BINARY(%zu)", length);
            }
            memcpy(padded, v, len);
            memset(padded + len, 0, length - len);
            return emit_binary(c, padded, length);
        }
        return append_chars(c, v, len, AS_CHAR);
    default:
        return vfail(c, MS_DECODE_MALFORMED, "bad metadata: real type %u", real);
    }
}

/* MariaDB's COMPRESSED columns (field_comp.cc): an empty value, or a header byte whose high
 * nibble is the method (0 stored as is, 8 zlib), bit 3 "raw deflate, no zlib wrapper" and
 * bits 0-2 the number of big-endian bytes of the original length that follow. */
static bool decode_compressed(const struct vctx *c, const uint8_t *v, size_t len)
{
    struct sbuf buf;
    size_t nlen;
    uint64_t orig;
    z_stream zs;
    bool ok;
    int zr;

    if (len == 0 || v[0] >> 4 == 0) {
        return append_chars(c, v + (len > 0), len - (len > 0),
                            c->col->is_json_text ? AS_JSON : AS_STRING);
    }
    if (v[0] >> 4 != 8) {
        return vfail(c, MS_DECODE_UNSUPPORTED, "compression method %u", v[0] >> 4);
    }
    nlen = v[0] & 7;
    if (len - 1 < nlen || len - 1 - nlen > UINT_MAX) {
        return vfail(c, MS_DECODE_MALFORMED, "truncated compressed value");
    }
    orig = be(v + 1, nlen);
    if (orig > MAX_INFLATED) {
        return vfail(c, MS_DECODE_MALFORMED, "compressed value of %" PRIu64 " bytes", orig);
    }
    sbuf_init(&buf);
    if (!sbuf_reserve(&buf, (size_t)orig + 1)) {
        return out_of_memory(c, (size_t)orig);
    }
    memset(&zs, 0, sizeof(zs));
    zs.next_in = (Bytef *)(v + 1 + nlen);
    zs.avail_in = (uInt)(len - 1 - nlen);
    zs.next_out = (Bytef *)buf.p;
    zs.avail_out = (uInt)orig;
    if (inflateInit2(&zs, (v[0] & 8) != 0 ? -MAX_WBITS : MAX_WBITS) != Z_OK) {
        sbuf_cleanup(&buf);
        return vfail(c, MS_DECODE_MALFORMED, "zlib init failed");
    }
    zr = inflate(&zs, Z_FINISH);
    inflateEnd(&zs);
    if (zr != Z_STREAM_END) {
        sbuf_cleanup(&buf);
        return vfail(c, MS_DECODE_MALFORMED, "corrupt compressed value (zlib %d)", zr);
    }
    ok = append_chars(c, (const uint8_t *)buf.p, zs.total_out,
                      c->col->is_json_text ? AS_JSON : AS_STRING);
    sbuf_cleanup(&buf);
    return ok;
}

/* ---- entry points ------------------------------------------------------------------- */

/* One non-NULL value of c->col at p, into c's document or JSON buffer. */
static bool decode_value(struct vctx *c, const uint8_t *p, size_t avail, size_t *used,
                         const struct ms_value_opts *opts)
{
    const struct ms_column *col = c->col;
    const uint8_t *v;
    size_t len, u = 0;
    bool ok;

    *used = 0;
    switch (col->type) {
    case MS_T_TINY:
        ok = decode_int(c, p, avail, 1, &u);
        break;
    case MS_T_SHORT:
        ok = decode_int(c, p, avail, 2, &u);
        break;
    case MS_T_INT24:
        ok = decode_int(c, p, avail, 3, &u);
        break;
    case MS_T_LONG:
        ok = decode_int(c, p, avail, 4, &u);
        break;
    case MS_T_LONGLONG:
        ok = decode_int(c, p, avail, 8, &u);
        break;
    case MS_T_FLOAT:
    case MS_T_DOUBLE:
        ok = decode_float(c, p, avail, &u);
        break;
    case MS_T_NEWDECIMAL:
        ok = decode_decimal(c, p, avail, &u, opts);
        break;
    case MS_T_YEAR:
    case MS_T_DATE:
    case MS_T_NEWDATE:
    case MS_T_TIME:
    case MS_T_TIME2:
    case MS_T_DATETIME:
    case MS_T_DATETIME2:
    case MS_T_TIMESTAMP:
    case MS_T_TIMESTAMP2:
        ok = decode_temporal(c, p, avail, &u, opts);
        break;
    case MS_T_BIT:
        ok = decode_bit(c, p, avail, &u);
        break;
    case MS_T_NULL:
        ok = emit_null(c);
        break;
    case MS_T_VARCHAR:
    case MS_T_VAR_STRING:
        ok = read_prefixed(c, p, avail, col->meta < 256 ? 1 : 2, &v, &len, &u) &&
             append_chars(c, v, len, AS_STRING);
        break;
    case MS_T_STRING:
    case MS_T_ENUM:
    case MS_T_SET:
        ok = decode_string(c, p, avail, &u);
        break;
    case MS_T_TINY_BLOB:
    case MS_T_MEDIUM_BLOB:
    case MS_T_LONG_BLOB:
    case MS_T_BLOB:
        ok = read_prefixed(c, p, avail, col->meta, &v, &len, &u) &&
             append_chars(c, v, len, col->is_json_text ? AS_JSON : AS_STRING);
        break;
    case MS_T_JSON:
        ok = read_prefixed(c, p, avail, col->meta, &v, &len, &u);
        if (ok) {
            bson_t scratch, *doc = complex_doc(c, &scratch);
            ok = ms_mysqljson_to_bson(v, len, doc, c->key, c->err);
            if (!ok) {
                ms_error_prefix(c->err, "column %s (JSON)", c->key);
            }
            ok = complex_done(c, &scratch, ok);
        }
        break;
    case MS_T_GEOMETRY:
        /* 4-byte SRID, then WKB */
        ok = read_prefixed(c, p, avail, col->meta, &v, &len, &u);
        if (ok && len < 4) {
            ok = vfail(c, MS_DECODE_MALFORMED, "GEOMETRY value of %zu bytes has no SRID", len);
        }
        if (ok) {
            ok = emit_binary(c, v + 4, len - 4);
        }
        break;
    case MS_T_BLOB_COMPRESSED:
    case MS_T_VARCHAR_COMPRESSED:
        ok = read_prefixed(c, p, avail,
                           col->type == MS_T_BLOB_COMPRESSED ? col->meta
                           : col->meta < 256                 ? 1
                                                             : 2,
                           &v, &len, &u) &&
             decode_compressed(c, v, len);
        break;
    case MS_T_VECTOR:
        ok = read_prefixed(c, p, avail, col->meta, &v, &len, &u) && decode_vector(c, v, len);
        break;
    default:
        /* old DECIMAL (pre-5.0 tables), TYPED_ARRAY (never in row images), unknown codes */
        ok = vfail(c, MS_DECODE_UNSUPPORTED, "column type %u is not supported", col->type);
        break;
    }
    if (ok) {
        *used = u;
    }
    return ok;
}

bool ms_rows_decode_value(const struct ms_column *col, const uint8_t *p, size_t avail, size_t *used,
                          bson_t *doc, const char *key, const struct ms_value_opts *opts,
                          struct ms_error *err)
{
    static const struct ms_value_opts defaults = {0};
    struct vctx c = {col, key, col->type, err, doc, NULL, NULL, NULL};

    return decode_value(&c, p, avail, used, opts != NULL ? opts : &defaults);
}

/* Columns in a row image: the bits set among the first ncols of present. */
static size_t count_present(const uint8_t *present, size_t ncols)
{
    size_t n = 0, full = ncols / 8;

    static const uint8_t nibble[16] = {0, 1, 1, 2, 1, 2, 2, 3, 1, 2, 2, 3, 2, 3, 3, 4};

    for (size_t i = 0; i < full; i++) {
        n += (size_t)(nibble[present[i] & 15] + nibble[present[i] >> 4]);
    }
    if (ncols % 8 != 0) {
        unsigned last = present[full] & ((1u << (ncols % 8)) - 1);
        n += (size_t)(nibble[last & 15] + nibble[last >> 4]);
    }
    return n;
}

static bool null_bitmap_truncated(const struct ms_table_map *tm, size_t avail, size_t nullbytes,
                                  struct ms_error *err)
{
    ms_error_set(err, MS_ERR_DECODE, MS_DECODE_MALFORMED,
                 "table %s.%s: row image truncated in its NULL bitmap (%zu of %zu bytes)",
                 tm->db != NULL ? tm->db : "?", tm->table != NULL ? tm->table : "?", avail,
                 nullbytes);
    return false;
}

bool ms_rows_decode_image(const struct ms_table_map *tm, const uint8_t *present, const uint8_t *p,
                          size_t avail, size_t *used, bson_t *doc, const struct ms_value_opts *opts,
                          struct ms_error *err)
{
    const char *db = tm->db != NULL ? tm->db : "?", *table = tm->table != NULL ? tm->table : "?";
    size_t nullbytes, off, k = 0;
    const uint8_t *nulls = p;
    struct ms_error bad_text = {0};

    *used = 0;
    nullbytes = (count_present(present, tm->ncols) + 7) / 8;
    if (avail < nullbytes) {
        return null_bitmap_truncated(tm, avail, nullbytes, err);
    }
    off = nullbytes;
    for (size_t i = 0; i < tm->ncols; i++) {
        const struct ms_column *col = &tm->cols[i];
        char fallback[32];
        const char *key = col->name;
        size_t u;

        if ((present[i / 8] >> (i % 8) & 1) == 0) {
            continue;
        }
        if (key == NULL) {
            snprintf(fallback, sizeof(fallback), "col_%zu", i);
            key = fallback;
        }
        if ((nulls[k / 8] >> (k % 8) & 1) != 0) {
            if (!bson_append_null(doc, key, -1)) {
                ms_error_set(err, MS_ERR_DECODE, MS_DECODE_MALFORMED,
                             "table %s.%s: row does not fit in a BSON document", db, table);
                return false;
            }
        } else {
            if (!ms_rows_decode_value(col, p + off, avail - off, &u, doc, key, opts, err)) {
                struct ms_column raw = *col;
                struct ms_error e2 = {0};
                /* text that is invalid in its character set: the value is kept as its bytes
                 * and the rest of the row decoded, so the caller can skip just this row */
                raw.is_binary = true;
                if (err == NULL || err->domain != MS_ERR_DECODE || err->code != MS_DECODE_CHARSET ||
                    !ms_rows_decode_value(&raw, p + off, avail - off, &u, doc, key, opts, &e2)) {
                    ms_error_prefix(err, "table %s.%s", db, table);
                    return false;
                }
                if (bad_text.domain == MS_ERR_NONE) {
                    bad_text = *err;
                }
                ms_error_clear(err);
            }
            off += u;
        }
        k++;
    }
    *used = off;
    if (bad_text.domain != MS_ERR_NONE) {
        *err = bad_text;
        ms_error_prefix(err, "table %s.%s", db, table);
        return false;
    }
    return true;
}

struct ms_rows_json_keys {
    size_t ncols;
    char **name; /* the column's key: its name, or "col_<n>" */
    char **sep;  /* ", \"<key, escaped>\" : ", readable in whole 32-byte blocks */
    size_t *sep_len;
    const struct charset **cs; /* charset_of(collation), NULL for collation 0 */
};

struct ms_rows_json_keys *ms_rows_json_keys_new(const struct ms_table_map *tm)
{
    struct ms_rows_json_keys *k = calloc(1, sizeof(*k));
    size_t n = tm->ncols > 0 ? tm->ncols : 1;

    if (k == NULL) {
        return NULL;
    }
    k->name = calloc(n, sizeof(*k->name));
    k->sep = calloc(n, sizeof(*k->sep));
    k->sep_len = calloc(n, sizeof(*k->sep_len));
    k->cs = calloc(n, sizeof(*k->cs));
    if (k->name == NULL || k->sep == NULL || k->sep_len == NULL || k->cs == NULL) {
        goto fail;
    }
    k->ncols = tm->ncols;
    for (size_t i = 0; i < tm->ncols; i++) {
        struct ms_buf b = {0};
        char fallback[32];
        const char *name = tm->cols[i].name;

        if (name == NULL) {
            snprintf(fallback, sizeof(fallback), "col_%zu", i);
            name = fallback;
        }
        k->cs[i] = tm->cols[i].collation != 0 ? charset_of(tm->cols[i].collation) : NULL;
        k->name[i] = strdup(name);
        if (k->name[i] == NULL || !ms_buf_put(&b, ", ", 2) ||
            !ms_extjson_put_string(&b, name, strlen(name)) || !ms_buf_put(&b, " : ", 3)) {
            ms_buf_free(&b);
            goto fail;
        }
        k->sep[i] = calloc(1, b.len + 32);
        if (k->sep[i] == NULL) {
            ms_buf_free(&b);
            goto fail;
        }
        memcpy(k->sep[i], b.p, b.len);
        k->sep_len[i] = b.len;
        ms_buf_free(&b);
    }
    return k;
fail:
    ms_rows_json_keys_destroy(k);
    return NULL;
}

void ms_rows_json_keys_destroy(struct ms_rows_json_keys *k)
{
    if (k == NULL) {
        return;
    }
    for (size_t i = 0; i < k->ncols; i++) {
        free(k->name != NULL ? k->name[i] : NULL);
        free(k->sep != NULL ? k->sep[i] : NULL);
    }
    free(k->name);
    free(k->sep);
    free(k->sep_len);
    free(k->cs);
    free(k);
}

/* ms_extjson_plain_len(s, n) == n, reading s in whole 16-byte blocks when end allows */
static inline bool plain_text(const uint8_t *s, size_t n, const uint8_t *end)
{
#ifdef __SSE2__
    if ((size_t)(end - s) >= n + 16) {
        const __m128i space = _mm_set1_epi8(0x20), quote = _mm_set1_epi8('"'),
                      bslash = _mm_set1_epi8('\\'), del = _mm_set1_epi8(0x7f);

        for (size_t i = 0; i < n; i += 16) {
            __m128i v = _mm_loadu_si128((const __m128i *)(const void *)(s + i));
            __m128i bad =
                _mm_or_si128(_mm_or_si128(_mm_cmplt_epi8(v, space), _mm_cmpeq_epi8(v, quote)),
                             _mm_or_si128(_mm_cmpeq_epi8(v, bslash), _mm_cmpeq_epi8(v, del)));
            unsigned m = (unsigned)_mm_movemask_epi8(bad);

            if (n - i < 16) {
                m &= (1u << (n - i)) - 1; /* the bytes after the value do not count */
            }
            if (m != 0) {
                return false;
            }
        }
        return true;
    }
#endif
    return ms_extjson_plain_len((const char *)s, n) == n;
}

/* DECIMAL(p,s) with p <= 34, s <= 18 and at most 18 integer digits, as Decimal128 in the
 * text bson_decimal128_to_string gives it when that text has no exponent (see
 * decode_decimal): integer and fraction read as two 64-bit numbers, no digit string. False,
 * with nothing written, for anything else. */
static inline bool fast_decimal(const struct ms_column *col, const uint8_t *p, size_t avail,
                                size_t *used, struct ms_buf *out)
{
    unsigned precision = col->meta >> 8, scale = col->meta & 0xff, intg, nsig;
    uint8_t buf[40], mask;
    uint64_t ip = 0, fp = 0;
    size_t size, o = 0, nb;
    uint32_t v;
    bool neg, zero;
    char *d;

    if (precision == 0 || precision > DEC128_MAX_DIGITS || scale > precision || scale > 18 ||
        precision - scale > 18) {
        return false;
    }
    intg = precision - scale;
    size = decimal_bin_size(precision, scale);
    if (avail < size || size > sizeof(buf)) {
        return false;
    }
    memcpy(buf, p, size);
    neg = (buf[0] & 0x80) == 0;
    mask = neg ? 0xff : 0x00;
    buf[0] ^= 0x80;
    for (size_t i = 0; i < size; i++) {
        buf[i] ^= mask;
    }
    if (intg % 9 != 0) {
        nb = dig2bytes[intg % 9];
        ip = be(buf, nb);
        if (ip >= pow10_u32[intg % 9]) {
            return false;
        }
        o = nb;
    }
    for (unsigned k = 0; k < intg / 9; k++, o += 4) {
        v = (uint32_t)be(buf + o, 4);
        if (v >= pow10_u32[9]) {
            return false;
        }
        ip = ip * pow10_u32[9] + v;
    }
    for (unsigned k = 0; k < scale / 9; k++, o += 4) {
        v = (uint32_t)be(buf + o, 4);
        if (v >= pow10_u32[9]) {
            return false;
        }
        fp = fp * pow10_u32[9] + v;
    }
    if (scale % 9 != 0) {
        v = (uint32_t)be(buf + o, dig2bytes[scale % 9]);
        if (v >= pow10_u32[scale % 9]) {
            return false;
        }
        fp = fp * pow10_u32[scale % 9] + v;
    }
    zero = ip == 0 && fp == 0;
    {
        char tmp[20];
        nsig = ip > 0   ? (unsigned)ms_u64_digits(tmp, ip) + scale
               : fp > 0 ? (unsigned)ms_u64_digits(tmp, fp)
                        : 1;
    }
    if ((int)nsig - 1 - (int)scale < -6 || !ms_buf_reserve(out, sizeof(dec_open) + 48)) {
        return false; /* the exponent form: decode_value */
    }
    d = out->p + out->len;
    memcpy(d, dec_open, sizeof(dec_open) - 1);
    d += sizeof(dec_open) - 1;
    if (neg && !zero) {
        *d++ = '-';
    }
    d += ms_u64_digits(d, ip);
    if (scale > 0) {
        *d++ = '.';
        for (unsigned i = scale; i > 0; i--) {
            d[i - 1] = (char)('0' + fp % 10);
            fp /= 10;
        }
        d += scale;
    }
    memcpy(d, "\" }", 3);
    out->len = (size_t)(d + 3 - out->p);
    *used = size;
    return true;
}

/* The commonest values written without decode_value's dispatch: integers that print as
 * integers, printable-ASCII strings of ASCII-compatible charsets, DATETIME(fsp) that is a
 * Date from 1970 on at UTC. Returns false, having written nothing, for anything else
 * (including every malformed value): decode_value then writes it or reports the error. */
static inline bool fast_value(const struct ms_column *col, const struct charset *cs,
                              const uint8_t *p, size_t avail, const uint8_t *end, size_t *used,
                              struct ms_buf *out, const struct ms_value_opts *opts)
{
    size_t n, lb, len;
    uint64_t u;

    switch (col->type) {
    case MS_T_TINY:
        n = 1;
        goto integer;
    case MS_T_SHORT:
        n = 2;
        goto integer;
    case MS_T_INT24:
        n = 3;
        goto integer;
    case MS_T_LONG:
        n = 4;
        goto integer;
    case MS_T_LONGLONG:
        n = 8;
    integer:
        if (avail < n) {
            return false;
        }
        u = le(p, n);
        if (col->is_unsigned) {
            if (u > INT64_MAX) {
                return false;
            }
        } else if (n < 8 && (u >> (8 * n - 1)) != 0) {
            u |= ~UINT64_C(0) << (8 * n);
        }
        *used = n;
        return ms_buf_put_int(out, (int64_t)u);
    case MS_T_VARCHAR:
    case MS_T_VAR_STRING:
        lb = col->meta < 256 ? 1 : 2;
        goto text;
    case MS_T_TINY_BLOB:
    case MS_T_MEDIUM_BLOB:
    case MS_T_LONG_BLOB:
    case MS_T_BLOB:
        if (col->is_json_text || col->meta < 1 || col->meta > 4) {
            return false;
        }
        lb = col->meta;
    text:
        if (cs == NULL || col->is_binary || col->collation == 63 ||
            (cs->kind != K_UTF8 && cs->kind != K_LATIN1 && cs->kind != K_ASCII) || avail < lb) {
            return false;
        }
        len = (size_t)le(p, lb);
        if (len > avail - lb || !plain_text(p + lb, len, end) ||
            !ms_buf_reserve(out, len + 2 + 32)) {
            return false;
        }
        p += lb;
        out->p[out->len] = '"';
        if ((size_t)(end - p) >= len + 32) {
            for (size_t i = 0; i < len; i += 32) {
                memcpy(out->p + out->len + 1 + i, p + i, 32);
            }
        } else {
            memcpy(out->p + out->len + 1, p, len);
        }
        out->p[out->len + 1 + len] = '"';
        out->len += len + 2;
        *used = lb + len;
        return true;
    case MS_T_NEWDECIMAL:
        return opts->decimal_as == MS_DEC_DECIMAL128 && fast_decimal(col, p, avail, used, out);
    case MS_T_DATETIME2: {
        static const uint32_t unit[4] = {0, 10000, 100, 1};
        struct mtime t;
        unsigned fsp = col->meta;
        size_t nf = (fsp + 1) / 2;
        uint64_t v;

        if (fsp > MAX_FSP || avail < 5 + nf || opts->source_utc_offset != 0 ||
            opts->datetime_as_string || (opts->time_keep_micros && fsp > 3)) {
            return false;
        }
        v = be(p, 5);
        if (v < UINT64_C(0x8000000000)) {
            return false;
        }
        v -= UINT64_C(0x8000000000);
        t.year = (unsigned)((v >> 22) / 13);
        t.month = (unsigned)((v >> 22) % 13);
        t.day = (unsigned)(v >> 17 & 31);
        t.hour = (unsigned)((v & 0x1ffff) >> 12);
        t.minute = (unsigned)(v >> 6 & 63);
        t.second = (unsigned)(v & 63);
        t.usec = nf == 0 ? 0 : (uint32_t)be(p + 5, nf) * unit[nf];
        if (t.usec > 999999 || t.year < 1970 || !real_datetime(&t)) {
            return false;
        }
        *used = 5 + nf;
        return ms_extjson_put_date_parts(out, t.year, t.month, t.day, t.hour, t.minute, t.second,
                                         t.usec / 1000);
    }
    default:
        return false;
    }
}

bool ms_rows_image_to_json(const struct ms_table_map *tm, const struct ms_rows_json_keys *keys,
                           const uint8_t *present, const uint8_t *p, size_t avail, size_t *used,
                           struct ms_buf *out, const struct ms_value_opts *opts,
                           struct ms_error *err)
{
    static const struct ms_value_opts defaults = {0};
    struct vctx c = {NULL, NULL, 0, err, NULL, out, p + avail, NULL};
    size_t nullbytes, off, k = 0, mark = out->len;
    const uint8_t *nulls = p;
    bool first = true;

    *used = 0;
    if (opts == NULL) {
        opts = &defaults;
    }
    if (keys->ncols != tm->ncols) {
        ms_error_set(err, MS_ERR_DECODE, MS_DECODE_SCHEMA,
                     "table %s.%s: JSON keys for %zu columns, the table has %zu",
                     tm->db != NULL ? tm->db : "?", tm->table != NULL ? tm->table : "?",
                     keys->ncols, tm->ncols);
        return false;
    }
    nullbytes = (count_present(present, tm->ncols) + 7) / 8;
    if (avail < nullbytes) {
        return null_bitmap_truncated(tm, avail, nullbytes, err);
    }
    if (!ms_buf_put(out, "{ ", 2)) {
        goto oom;
    }
    off = nullbytes;
    for (size_t i = 0; i < tm->ncols; i++) {
        size_t u, skip = first ? 2 : 0;

        if ((present[i / 8] >> (i % 8) & 1) == 0) {
            continue;
        }
        first = false;
        if (!ms_buf_put_blocks(out, keys->sep[i] + skip, keys->sep_len[i] - skip)) {
            goto oom;
        }
        if ((nulls[k / 8] >> (k % 8) & 1) != 0) {
            if (!ms_buf_put(out, "null", 4)) {
                goto oom;
            }
        } else if (fast_value(&tm->cols[i], keys->cs[i], p + off, avail - off, p + avail, &u, out,
                              opts)) {
            off += u;
        } else {
            c.col = &tm->cols[i];
            c.key = keys->name[i];
            c.type = c.col->type;
            c.cs = keys->cs[i];
            if (!decode_value(&c, p + off, avail - off, &u, opts)) {
                ms_error_prefix(err, "table %s.%s", tm->db != NULL ? tm->db : "?",
                                tm->table != NULL ? tm->table : "?");
                out->len = mark;
                return false;
            }
            off += u;
        }
        k++;
    }
    if (!ms_buf_put(out, " }", 2)) {
        goto oom;
    }
    *used = off;
    return true;
oom:
    out->len = mark;
    ms_error_set(err, MS_ERR_SYSTEM, ENOMEM, "table %s.%s: out of memory for a JSON row",
                 tm->db != NULL ? tm->db : "?", tm->table != NULL ? tm->table : "?");
    return false;
}

bool ms_rows_column_meta(uint8_t type, const uint8_t *p, size_t avail, size_t *used, uint16_t *meta)
{
    size_t n;

    switch (type) {
    case MS_T_FLOAT:
    case MS_T_DOUBLE:
    case MS_T_TINY_BLOB:
    case MS_T_MEDIUM_BLOB:
    case MS_T_LONG_BLOB:
    case MS_T_BLOB:
    case MS_T_GEOMETRY:
    case MS_T_JSON:
    case MS_T_VECTOR:
    case MS_T_TIME2:
    case MS_T_DATETIME2:
    case MS_T_TIMESTAMP2:
    case MS_T_BLOB_COMPRESSED:
        n = 1;
        break;
    case MS_T_VARCHAR:
    case MS_T_VAR_STRING:
    case MS_T_BIT:
    case MS_T_NEWDECIMAL:
    case MS_T_STRING:
    case MS_T_ENUM:
    case MS_T_SET:
    case MS_T_VARCHAR_COMPRESSED:
        n = 2;
        break;
    case MS_T_TYPED_ARRAY: {
        /* MySQL 8: the element type, then that type's own metadata */
        size_t inner = 0;

        if (avail < 1 || p[0] == MS_T_TYPED_ARRAY ||
            !ms_rows_column_meta(p[0], p + 1, avail - 1, &inner, meta)) {
            return false;
        }
        *used = 1 + inner;
        return true;
    }
    default:
        n = 0;
        break;
    }
    if (avail < n) {
        return false;
    }
    *used = n;
    switch (n) {
    case 0:
        *meta = 0;
        break;
    case 1:
        *meta = p[0];
        break;
    default:
        if (type == MS_T_NEWDECIMAL || type == MS_T_STRING || type == MS_T_ENUM ||
            type == MS_T_SET) {
            *meta = (uint16_t)(p[0] << 8 | p[1]); /* precision, scale / real type, length */
        } else {
            *meta = (uint16_t)(p[0] | p[1] << 8); /* little-endian */
        }
        break;
    }
    return true;
}

static void free_labels(char **v, size_t n)
{
    if (v == NULL) {
        return;
    }
    for (size_t i = 0; i < n; i++) {
        free(v[i]);
    }
    free(v);
}

void ms_table_map_free(struct ms_table_map *tm)
{
    if (tm == NULL) {
        return;
    }
    for (size_t i = 0; tm->cols != NULL && i < tm->ncols; i++) {
        free(tm->cols[i].name);
        free_labels(tm->cols[i].enum_values, tm->cols[i].n_enum);
        free_labels(tm->cols[i].set_values, tm->cols[i].n_set);
        free(tm->cols[i].label_len);
    }
    free(tm->cols);
    free(tm->pk);
    free(tm->db);
    free(tm->table);
    free(tm);
}

void ms_value_opts_from_config(struct ms_value_opts *vo, const struct ms_config *cfg)
{
    memset(vo, 0, sizeof(*vo));
    vo->decimal_as = cfg->sync_decimal_as == MS_DECIMAL_AS_STRING   ? MS_DEC_STRING
                     : cfg->sync_decimal_as == MS_DECIMAL_AS_DOUBLE ? MS_DEC_DOUBLE
                                                                    : MS_DEC_DECIMAL128;
    vo->date_as_string = cfg->sync_date_as == 1;
    vo->time_keep_micros = cfg->sync_datetime_micros;
    vo->source_utc_offset = cfg->sync_source_utc_offset;
}

void ms_value_opts_for_table(struct ms_value_opts *vo, const struct ms_value_opts *base,
                             const struct ms_table_cfg *tcfg)
{
    *vo = *base;
    if (tcfg == NULL) {
        return;
    }
    if (tcfg->date_as >= 0) {
        vo->date_as_string = tcfg->date_as == 1;
    }
    if (tcfg->datetime_as >= 0) {
        vo->datetime_as_string = tcfg->datetime_as == 1;
    }
    if (tcfg->time_as >= 0) {
        vo->time_as_seconds = tcfg->time_as == 1;
    }
}

bool ms_rows_labels_to_utf8(uint16_t collation, char **labels, const size_t *lens, size_t n,
                            struct ms_error *err)
{
    const struct charset *cs = collation != 0 ? charset_of(collation) : NULL;
    bool convert = cs != NULL && (cs->kind == K_LATIN1 || cs->kind == K_ICONV);
    /* UCS-2, UTF-16, UTF-32: not a superset of ASCII ("x" is 00 78 in UCS-2) */
    bool wide = cs != NULL && cs->kind == K_ICONV &&
                (strncmp(cs->iconv, "UCS-2", 5) == 0 || strncmp(cs->iconv, "UTF-16", 6) == 0 ||
                 strncmp(cs->iconv, "UTF-32", 6) == 0);

    for (size_t i = 0; labels != NULL && i < n; i++) {
        const uint8_t *s = (const uint8_t *)labels[i];
        size_t len = lens != NULL ? lens[i] : strlen(labels[i]), k;
        struct sbuf buf;
        char *u;
        for (k = 0; k < len && s[k] < 0x80 && s[k] != 0; k++) {
        }
        if (k == len && !wide) {
            continue; /* ASCII: the same bytes in every supported set */
        }
        if (wide && len == 0) {
            continue; /* the empty label */
        }
        if (!convert) {
            /* decode_enum/decode_set emit labels as BSON strings: UTF-8 only (the other
             * labels of a binary or unknown set have no text to stand for; found by fuzzing) */
            if ((cs != NULL && cs->kind == K_ASCII) || utf8_check(s, len) != len ||
                memchr(s, 0, len) != NULL) {
                ms_error_set(err, MS_ERR_DECODE, MS_DECODE_CHARSET, "label %zu is not %s", i + 1,
                             cs != NULL && cs->kind != K_BINARY ? cs->name : "UTF-8");
                return false;
            }
            continue;
        }
        sbuf_init(&buf);
        if (cs->kind == K_LATIN1) {
            if (!latin1_to_utf8(s, len, &buf)) {
                sbuf_cleanup(&buf);
                ms_error_set(err, MS_ERR_DECODE, MS_DECODE_CHARSET, "out of memory");
                return false;
            }
        } else {
            iconv_t cd = iconv_open("UTF-8", cs->iconv);
            char *in = labels[i], *o;
            size_t inleft = len, oleft;
            if (cd == (iconv_t)-1 || !sbuf_reserve(&buf, len * 4 + 16)) {
                if (cd != (iconv_t)-1) {
                    iconv_close(cd);
                }
                sbuf_cleanup(&buf);
                ms_error_set(err, MS_ERR_DECODE, MS_DECODE_UNSUPPORTED,
                             "no converter for character set %s", cs->name);
                return false;
            }
            o = buf.p;
            oleft = buf.cap;
            if (iconv(cd, &in, &inleft, &o, &oleft) == (size_t)-1 ||
                iconv(cd, NULL, NULL, &o, &oleft) == (size_t)-1) {
                iconv_close(cd);
                sbuf_cleanup(&buf);
                ms_error_set(err, MS_ERR_DECODE, MS_DECODE_CHARSET, "invalid %s label", cs->name);
                return false;
            }
            iconv_close(cd);
            buf.len = (size_t)(o - buf.p);
        }
        u = malloc(buf.len + 1);
        if (u == NULL) {
            sbuf_cleanup(&buf);
            ms_error_set(err, MS_ERR_DECODE, MS_DECODE_CHARSET, "out of memory");
            return false;
        }
        memcpy(u, buf.p, buf.len);
        u[buf.len] = '\0';
        sbuf_cleanup(&buf);
        free(labels[i]);
        labels[i] = u;
    }
    return true;
}

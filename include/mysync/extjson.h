/* Relaxed Extended JSON, written straight into a growing buffer in exactly the layout of
 * libbson's bson_as_relaxed_extended_json (so output is interchangeable), without its cost:
 * libbson's writer took ~6 us of the 7 us per row change of binlog-dump (bench/README.md).
 * Handles the types the decoder produces; anything else returns false and the caller uses
 * libbson for that document. */
#ifndef MYSYNC_EXTJSON_H
#define MYSYNC_EXTJSON_H

#include <bson/bson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

struct ms_buf {
    char *p;
    size_t len, cap; /* cap keeps one byte beyond len free (for a terminating NUL) */
};

void ms_buf_reset(struct ms_buf *b);
void ms_buf_free(struct ms_buf *b);

/* Makes room for more bytes beyond len (and the spare one); false when out of memory. */
bool ms_buf_grow(struct ms_buf *b, size_t more);

static inline bool ms_buf_reserve(struct ms_buf *b, size_t more)
{
    return b->len + more + 1 <= b->cap || ms_buf_grow(b, more);
}

/* Appends n bytes; the inline fast path of ms_extjson_put_raw for the decoder's writer. */
static inline bool ms_buf_put(struct ms_buf *b, const void *s, size_t n)
{
    if (!ms_buf_reserve(b, n)) {
        return false;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    return true;
}

/* Appends the n bytes at s in 32-byte blocks (fixed-size copies, no memcpy call for short
 * pieces): s must be readable up to n rounded up to a multiple of 32. */
static inline bool ms_buf_put_blocks(struct ms_buf *b, const void *s, size_t n)
{
    char *d;

    if (!ms_buf_reserve(b, n + 32)) {
        return false;
    }
    d = b->p + b->len;
    for (size_t i = 0; i < n; i += 32) {
        memcpy(d + i, (const char *)s + i, 32);
    }
    b->len += n;
    return true;
}

extern const char ms_extjson_pairs[201];    /* "00".."99" */
extern const uint64_t ms_extjson_pow10[20]; /* 10^0..10^19 */

/* The decimal digits of u at dst (at most 20); returns their number. The count comes from the
 * bit length (log10(2) ~ 1233 / 4096) and one comparison, the digits four at a time: the
 * generic loop (a table scan for the count, a 64-bit division per two digits) was 40 % of
 * binlog-dump's row writing on rows of wide random integers. */
static inline size_t ms_u64_digits(char *dst, uint64_t u)
{
    unsigned t = ((64u - (unsigned)__builtin_clzll(u | 1)) * 1233u) >> 12;
    unsigned n = t + 1 - ((u | 1) < ms_extjson_pow10[t]);
    char *e = dst + n;

    while (u >= 10000) {
        unsigned r = (unsigned)(u % 10000);
        u /= 10000;
        e -= 4;
        memcpy(e, ms_extjson_pairs + 2 * (r / 100), 2);
        memcpy(e + 2, ms_extjson_pairs + 2 * (r % 100), 2);
    }
    if (u >= 100) {
        unsigned r = (unsigned)u % 100;
        u /= 100;
        e -= 2;
        memcpy(e, ms_extjson_pairs + 2 * r, 2);
    }
    if (u >= 10) {
        memcpy(e - 2, ms_extjson_pairs + 2 * u, 2);
    } else {
        e[-1] = (char)('0' + u);
    }
    return n;
}

/* Appends the decimal digits of v, two at a time, straight into the buffer (printf was a
 * quarter of binlog-dump's time, a copy through a temporary another tenth). */
static inline bool ms_buf_put_int(struct ms_buf *b, int64_t v)
{
    uint64_t u = v < 0 ? (uint64_t)0 - (uint64_t)v : (uint64_t)v;

    if (!ms_buf_reserve(b, 21)) {
        return false;
    }
    if (v < 0) {
        b->p[b->len++] = '-';
    }
    b->len += ms_u64_digits(b->p + b->len, u);
    return true;
}

/* Length of the longest prefix of s made of printable ASCII other than '"' and '\\': bytes a
 * JSON string holds as they are and that are valid in every ASCII-compatible charset. */
size_t ms_extjson_plain_len(const char *s, size_t n);

/* Appends doc as relaxed Extended JSON. On false (a type it does not write, or no memory)
 * b holds what it had before the call. */
bool ms_extjson_append(struct ms_buf *b, const bson_t *doc);

/* Pieces for writing a document field by field (binlog-dump's lines) in the same layout:
 * a nested document (an empty one is "{  }" as libbson writes nested ones), a JSON
 * string, an integer, a Date. They return false only when out of memory (or, for the
 * document, on a type not handled). */
bool ms_extjson_append_nested(struct ms_buf *b, const bson_t *doc);
bool ms_extjson_put_raw(struct ms_buf *b, const char *s, size_t n);
bool ms_extjson_put_string(struct ms_buf *b, const char *s, size_t n);
bool ms_extjson_put_int(struct ms_buf *b, int64_t v);
bool ms_extjson_put_date(struct ms_buf *b, int64_t ms);
/* The Date of a UTC wall-clock time from 1970-01-01 on (ms_extjson_put_date without the
 * conversion to and from milliseconds): mon 1-12, mday 1-31, msec 0-999. */
bool ms_extjson_put_date_parts(struct ms_buf *b, unsigned year, unsigned mon, unsigned mday,
                               unsigned hour, unsigned min, unsigned sec, unsigned msec);
/* A double, a Decimal128 and a binary value, as in a document (the same bytes). */
bool ms_extjson_put_double(struct ms_buf *b, double d);
bool ms_extjson_put_decimal128(struct ms_buf *b, const bson_decimal128_t *d);
bool ms_extjson_put_binary(struct ms_buf *b, bson_subtype_t st, const uint8_t *data, uint32_t n);
/* The value of doc's first element, as it is written inside a document. False when doc is
 * empty or out of memory; a value of a type this writer does not handle is written by
 * libbson. */
bool ms_extjson_put_first_value(struct ms_buf *b, const bson_t *doc);

#endif

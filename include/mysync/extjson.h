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

struct ms_buf {
    char *p;
    size_t len, cap;
};

void ms_buf_reset(struct ms_buf *b);
void ms_buf_free(struct ms_buf *b);

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

#endif

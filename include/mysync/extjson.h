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

#endif

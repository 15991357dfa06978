/* MySQL 8 binary JSON (the JSON column's storage format, as it appears in row images) ->
 * BSON, MariaDB text JSON -> BSON, and MySQL's partial-update JSON diffs
 * (PARTIAL_UPDATE_ROWS_EVENT). Pure functions over bounded buffers; malformed input returns
 * false (MS_ERR_DECODE), never reads out of bounds. */
#ifndef MYSYNC_MYSQLJSON_H
#define MYSYNC_MYSQLJSON_H

#include <bson/bson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "mysync/error.h"

/* MS_ERR_DECODE codes set by this module. */
enum ms_mysqljson_code {
    /* A JSON diff cannot be applied to the before image (missing member or element, path
     * through a scalar, wildcard or range path, root path, no before value): the caller
     * re-reads the row from the source instead. */
    MS_MYSQLJSON_CANNOT_APPLY = MS_DECODE_CANNOT_APPLY,
    /* The bytes are not binary JSON / a diff vector / JSON text, or exceed a limit below. */
    MS_MYSQLJSON_MALFORMED = MS_DECODE_MALFORMED,
};

/* Deepest nesting of arrays and objects accepted in binary JSON (MySQL's own limit). */
#define MS_MYSQLJSON_MAX_DEPTH 100
/* Deepest nesting accepted in text JSON (libbson's parser stops a little below 100 levels;
 * MariaDB's JSON functions stop at 32). */
#define MS_TEXTJSON_MAX_DEPTH 90

/* Appends the JSON value stored in [p, p + len) to parent under key: objects as embedded
 * documents (members in stored order, which is MySQL's key order), arrays as arrays,
 * strings as UTF-8, int16/uint16/int32 as int32, uint32/int64 as int64, uint64 as int64 up
 * to INT64_MAX and Decimal128 above, doubles, true/false, null. Opaque values: DECIMAL as
 * Decimal128 (its exact text as a string when it has more than 34 significant digits),
 * DATE/TIME/DATETIME/TIMESTAMP as strings as MySQL prints them in JSON ("2015-01-15",
 * "23:24:25.000000", "2015-01-15 23:24:25.000000"), any other opaque type as binary
 * (subtype 0). len 0 means JSON null (MySQL writes an empty value for a JSON NULL-literal in
 * some versions). On failure parent is unchanged. */
bool ms_mysqljson_to_bson(const uint8_t *p, size_t len, bson_t *parent, const char *key,
                          struct ms_error *err);

/* Text JSON (MariaDB's JSON columns are LONGTEXT) -> the same BSON shapes, via libbson's
 * parser after a strict RFC 8259 check of its own. Any value is accepted at top level.
 * Numbers: integers as int32 when they fit, else int64; integers beyond int64 and finite
 * numbers beyond the double range (1.5e400) as Decimal128, or as their text when Decimal128
 * cannot hold them exactly; other numbers with a fraction or exponent as doubles (values
 * below the double range become 0 or subnormal). Keys starting with '$' stay plain keys
 * (libbson alone would read {"$oid": ...} as Extended JSON). Duplicate keys are kept. On
 * failure parent is unchanged. */
bool ms_textjson_to_bson(const char *json, size_t len, bson_t *parent, const char *key,
                         struct ms_error *err);

/* Applies a MySQL JSON diff vector (the partial value of a JSON column in the after image
 * of a PARTIAL_UPDATE_ROWS event, after the column's length prefix) to the column's old
 * value. before holds that value under key, as ms_mysqljson_to_bson produced it (borrowed).
 * after is initialised here and receives {key: new value}, each diff applied in order with
 * the semantics of MySQL's apply_json_diffs: REPLACE needs the path to exist, INSERT needs
 * its parent to exist (a new member is placed in MySQL's key order; an array index past the
 * end appends), REMOVE needs the path to exist. Paths: $, .member, ."quoted member", [n],
 * [last], [last-n]. A diff that cannot be applied sets MS_MYSQLJSON_CANNOT_APPLY (re-read
 * the row); undecodable bytes set MS_MYSQLJSON_MALFORMED. The caller destroys after, even
 * on failure. */
bool ms_mysqljson_apply_diffs(const bson_t *before, const char *key, const uint8_t *p, size_t len,
                              bson_t *after, struct ms_error *err);

#endif

/* Row images of binlog ROWS events -> BSON, from a table map's column types and metadata.
 * Pure functions over bounded buffers: malformed input returns false with an MS_ERR_DECODE
 * error, never reads outside [p, p + avail). No I/O (unit-testable, fuzzable). */
#ifndef MYSYNC_ROWS_H
#define MYSYNC_ROWS_H

#include <bson/bson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "mysync/config.h"
#include "mysync/error.h"
#include "mysync/extjson.h"

/* Binlog column type codes (the values of enum_field_types in MySQL/MariaDB). */
enum ms_coltype {
    MS_T_DECIMAL = 0, /* old DECIMAL, never in row events of 5.0+ servers */
    MS_T_TINY = 1,
    MS_T_SHORT = 2,
    MS_T_LONG = 3,
    MS_T_FLOAT = 4,
    MS_T_DOUBLE = 5,
    MS_T_NULL = 6,
    MS_T_TIMESTAMP = 7,
    MS_T_LONGLONG = 8,
    MS_T_INT24 = 9,
    MS_T_DATE = 10,
    MS_T_TIME = 11,
    MS_T_DATETIME = 12,
    MS_T_YEAR = 13,
    MS_T_NEWDATE = 14,
    MS_T_VARCHAR = 15,
    MS_T_BIT = 16,
    MS_T_TIMESTAMP2 = 17,
    MS_T_DATETIME2 = 18,
    MS_T_TIME2 = 19,
    MS_T_TYPED_ARRAY = 20,      /* MySQL 8 replication of multi-valued indexes; not in row images */
    MS_T_BLOB_COMPRESSED = 140, /* MariaDB column compression (the engine inflates) */
    MS_T_VARCHAR_COMPRESSED = 141, /* MariaDB column compression */
    MS_T_VECTOR = 242,             /* MySQL 9 */
    MS_T_JSON = 245,
    MS_T_NEWDECIMAL = 246,
    MS_T_ENUM = 247,
    MS_T_SET = 248,
    MS_T_TINY_BLOB = 249,
    MS_T_MEDIUM_BLOB = 250,
    MS_T_LONG_BLOB = 251,
    MS_T_BLOB = 252,
    MS_T_VAR_STRING = 253,
    MS_T_STRING = 254,
    MS_T_GEOMETRY = 255,
};

/* How some types are written to BSON (config: sync.decimal_as, ...). */
enum ms_decimal_mode { MS_DEC_DECIMAL128 = 0, MS_DEC_STRING = 1, MS_DEC_DOUBLE = 2 };

struct ms_value_opts {
    enum ms_decimal_mode decimal_as;
    bool date_as_string;       /* DATE -> "YYYY-MM-DD" instead of a Date at UTC midnight */
    bool time_keep_micros;     /* DATETIME/TIMESTAMP with fsp > 3 as the string
                                  "YYYY-MM-DD HH:MM:SS.ffffff" (exact) instead of a Date
                                  (millisecond precision) */
    int32_t source_utc_offset; /* seconds east of UTC that DATETIME values are written in */
    bool datetime_as_string;   /* DATETIME/TIMESTAMP always as "YYYY-MM-DD HH:MM:SS[.ffffff]"
                                  (TIMESTAMP in UTC) (tables.<t>.datetime_as: string) */
    bool time_as_seconds;      /* TIME as a double of seconds (tables.<t>.time_as: seconds) */
};

/* opts adjusted by a table's date_as / datetime_as / time_as (tcfg may be NULL). */
void ms_value_opts_for_table(struct ms_value_opts *vo, const struct ms_value_opts *base,
                             const struct ms_table_cfg *tcfg);

/* The value options the configuration asks for (sync.decimal_as, date_as, datetime_micros,
 * source_timezone). */
void ms_value_opts_from_config(struct ms_value_opts *vo, const struct ms_config *cfg);

struct ms_column {
    char *name;        /* from metadata or information_schema; NULL -> "col_<n>" */
    uint8_t type;      /* enum ms_coltype, as in the TABLE_MAP (STRING may hide ENUM/SET) */
    uint8_t real_type; /* for MS_T_STRING: MS_T_STRING, MS_T_ENUM or MS_T_SET (from meta) */
    uint16_t meta;     /* the TABLE_MAP metadata of this column, decoded to 16 bits as
                          MySQL's log_event.cc does (see ms_rows_column_meta) */
    bool nullable;
    bool is_unsigned;   /* SIGNEDNESS metadata, or information_schema */
    bool is_json_text;  /* MariaDB JSON alias: LONGTEXT with json_valid(): parse to a doc */
    bool is_binary;     /* binary collation (63): strings become BSON binary */
    uint16_t collation; /* collation id (COLUMN_CHARSET / DEFAULT_CHARSET); 0 unknown */
    uint8_t geometry_type;
    char **enum_values; /* ENUM labels in order (value n is enum_values[n-1]) */
    size_t n_enum;
    char **set_values; /* SET labels, bit i = set_values[i] */
    size_t n_set;
    /* the byte lengths of the ENUM or SET labels as the TABLE_MAP gave them (in the column's
     * character set: UCS-2, UTF-16 and UTF-32 labels hold NUL bytes), until they are
     * converted to UTF-8; NULL afterwards */
    size_t *label_len;
};

struct ms_table_map {
    uint64_t table_id;
    char *db;
    char *table;
    size_t ncols;
    struct ms_column *cols;
    size_t *pk; /* indexes of primary-key columns, in key order */
    size_t npk;
};

void ms_table_map_free(struct ms_table_map *tm);

/* Days since 1970-01-01 of a proleptic Gregorian date (negative before). */
int64_t ms_rows_days_from_civil(int64_t y, unsigned m, unsigned d);
/* The inverse: the proleptic Gregorian date of day z since 1970-01-01. */
void ms_rows_civil_from_days(int64_t z, int64_t *year, unsigned *month, unsigned *day);

/* Converts ENUM/SET labels (n strings, replaced in place) from the character set of collation
 * to UTF-8; labels of UTF-8, ASCII, binary and unknown (0) collations are left as they are,
 * and must be UTF-8 (ASCII for ascii). len: the labels' byte lengths (NULL: NUL-terminated;
 * needed for UCS-2, UTF-16 and UTF-32, whose labels hold NUL bytes). False with an
 * MS_ERR_DECODE error when a label does not convert or is not UTF-8. */
bool ms_rows_labels_to_utf8(uint16_t collation, char **labels, const size_t *len, size_t n,
                            struct ms_error *err);

/* Decodes one non-NULL value of col at p and appends it to doc under key. *used gets the
 * bytes consumed. */
bool ms_rows_decode_value(const struct ms_column *col, const uint8_t *p, size_t avail, size_t *used,
                          bson_t *doc, const char *key, const struct ms_value_opts *opts,
                          struct ms_error *err);

/* Decodes one row image: the NULL bitmap (one bit per column present in `present`, a
 * bitmap of ncols bits), then the values. Appends {column name: value} for every present
 * column to doc. *used gets the image's length. Text invalid in its character set fails with
 * {MS_ERR_DECODE, MS_DECODE_CHARSET} after the whole image is decoded (such values as BSON
 * binary): *used is then the image's length too, so the caller may skip the row. */
bool ms_rows_decode_image(const struct ms_table_map *tm, const uint8_t *present, const uint8_t *p,
                          size_t avail, size_t *used, bson_t *doc, const struct ms_value_opts *opts,
                          struct ms_error *err);

/* A table map's column keys pre-rendered for ms_rows_image_to_json (names escaped once per
 * table map, not once per value). Built from tm's column names as they are at the call:
 * rebuild after renaming columns. */
struct ms_rows_json_keys;
struct ms_rows_json_keys *ms_rows_json_keys_new(const struct ms_table_map *tm);
void ms_rows_json_keys_destroy(struct ms_rows_json_keys *keys);

/* As ms_rows_decode_image, but appends the image to out as relaxed Extended JSON, in the
 * bytes ms_extjson_append_nested writes for the document ms_rows_decode_image builds (with
 * no document in between: binlog-dump's path). keys come from ms_rows_json_keys_new(tm).
 * On false out is as it was. */
bool ms_rows_image_to_json(const struct ms_table_map *tm, const struct ms_rows_json_keys *keys,
                           const uint8_t *present, const uint8_t *p, size_t avail, size_t *used,
                           struct ms_buf *out, const struct ms_value_opts *opts,
                           struct ms_error *err);

/* Bytes of metadata that column type `type` takes in a TABLE_MAP's metadata block, and its
 * decoded 16-bit value; false on a truncated block. */
bool ms_rows_column_meta(uint8_t type, const uint8_t *p, size_t avail, size_t *used,
                         uint16_t *meta);

#endif

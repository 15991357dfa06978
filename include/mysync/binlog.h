/* Binlog events: one parser for the network stream and binlog files alike. It knows format
 * descriptions (checksum algorithm, post-header lengths), verifies CRC32, follows rotates,
 * tracks GTIDs (MySQL, MySQL 9 tagged, MariaDB), keeps the table maps, unpacks MySQL
 * transaction payloads (zstd) and MariaDB compressed events (zlib), and walks row images.
 * Unknown event types are skipped by their length. Malformed input returns false with an
 * MS_ERR_DECODE error; nothing reads outside the buffer it was given. */
#ifndef MYSYNC_BINLOG_H
#define MYSYNC_BINLOG_H

#include <bson/bson.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stddef.h>
#include <stdint.h>

#include "mysync/config.h"
#include "mysync/error.h"
#include "mysync/reader.h"
#include "mysync/rows.h"

enum ms_event_type {
    MS_EV_QUERY = 2,
    MS_EV_STOP = 3,
    MS_EV_ROTATE = 4,
    MS_EV_FORMAT_DESCRIPTION = 15,
    MS_EV_XID = 16,
    MS_EV_TABLE_MAP = 19,
    MS_EV_WRITE_ROWS_V1 = 23,
    MS_EV_UPDATE_ROWS_V1 = 24,
    MS_EV_DELETE_ROWS_V1 = 25,
    MS_EV_HEARTBEAT = 27,
    MS_EV_ROWS_QUERY = 29,
    MS_EV_WRITE_ROWS = 30,
    MS_EV_UPDATE_ROWS = 31,
    MS_EV_DELETE_ROWS = 32,
    MS_EV_GTID = 33,
    MS_EV_ANONYMOUS_GTID = 34,
    MS_EV_PREVIOUS_GTIDS = 35,
    MS_EV_PARTIAL_UPDATE_ROWS = 39,
    MS_EV_TRANSACTION_PAYLOAD = 40,
    MS_EV_HEARTBEAT_V2 = 41,
    MS_EV_GTID_TAGGED = 42,
    MS_EV_MARIA_ANNOTATE_ROWS = 160,
    MS_EV_MARIA_BINLOG_CHECKPOINT = 161,
    MS_EV_MARIA_GTID = 162,
    MS_EV_MARIA_GTID_LIST = 163,
    MS_EV_MARIA_START_ENCRYPTION = 164,
    MS_EV_MARIA_QUERY_COMPRESSED = 165,
    MS_EV_MARIA_WRITE_ROWS_COMPRESSED_V1 = 166,
    MS_EV_MARIA_UPDATE_ROWS_COMPRESSED_V1 = 167,
    MS_EV_MARIA_DELETE_ROWS_COMPRESSED_V1 = 168,
    MS_EV_MARIA_WRITE_ROWS_COMPRESSED = 169,
    MS_EV_MARIA_UPDATE_ROWS_COMPRESSED = 170,
    MS_EV_MARIA_DELETE_ROWS_COMPRESSED = 171,
};

enum ms_row_op { MS_ROW_INSERT = 1, MS_ROW_UPDATE = 2, MS_ROW_DELETE = 3 };

#define MS_BINLOG_HEADER_LEN 19
#define MS_GTID_MAX          160

struct ms_event_header {
    uint32_t timestamp;
    uint8_t type;
    uint32_t server_id;
    uint32_t event_size;
    uint32_t log_pos; /* end position of the event in its file (0 inside payloads) */
    uint16_t flags;
};

/* A parsed event. Pointers borrow from the buffer given to ms_binlog_parse (or from the
 * parser's scratch space for decompressed events) until the next call. */
struct ms_event {
    struct ms_event_header h;
    const uint8_t *body; /* after the common header, checksum excluded */
    size_t body_len;
    union {
        struct {
            const char *file; /* not NUL-terminated */
            size_t file_len;
            uint64_t pos;
        } rotate;
        struct {
            const char *db, *sql;
            size_t db_len, sql_len;
        } query;
        struct {
            uint64_t xid;
        } xid;
        struct {
            const struct ms_table_map *map; /* owned by the parser */
        } table_map;
        struct {
            const struct ms_table_map *map; /* NULL if no TABLE_MAP was seen for the id */
            uint64_t table_id;
            enum ms_row_op op;
            bool partial_json; /* PARTIAL_UPDATE_ROWS: after images may carry diffs */
            size_t ncols;
            const uint8_t *present;  /* columns in the before image (or the only image) */
            const uint8_t *present2; /* columns in the after image (updates) */
            const uint8_t *rows;     /* the row images */
            size_t rows_len;
        } rows;
        struct {
            const uint8_t *data; /* uncompressed inner events (no checksums) */
            size_t len;
        } payload;
    } u;
};

/* Parser state shared by all events of a stream: format description, table maps,
 * current file, position and GTID. */
struct ms_binlog_parser;

struct ms_binlog_parser *ms_binlog_parser_new(void);
void ms_binlog_parser_destroy(struct ms_binlog_parser *p);

/* While held, the table maps (and JSON keys) that a TABLE_MAP or the end of a statement
 * replaces stay allocated, so that rows events parsed before keep pointing at valid maps;
 * hold=false frees them (binlog-dump's batches of rows events across statements). */
void ms_binlog_parser_hold_maps(struct ms_binlog_parser *p, bool hold);

/* Verify CRC32 footers (default true). */
void ms_binlog_parser_set_verify(struct ms_binlog_parser *p, bool verify);

/* The checksum algorithm (0 none, 1 CRC32) to assume before a format description arrives:
 * a server's dump starts with a fake ROTATE that already carries the negotiated checksum. */
void ms_binlog_parser_expect_checksum(struct ms_binlog_parser *p, int alg);

/* Parses the event in [buf, buf + len) (header included, checksum included when the format
 * description announced one) into *ev and updates the parser state (FDE, table maps,
 * GTID, rotate). */
bool ms_binlog_parse(struct ms_binlog_parser *p, const uint8_t *buf, size_t len,
                     struct ms_event *ev, struct ms_error *err);

/* Iterates the events inside a TRANSACTION_PAYLOAD event (ev->u.payload): *off starts at 0;
 * returns true with *inner parsed, false at the end (err unset) or on an error (err set). */
bool ms_binlog_payload_next(struct ms_binlog_parser *p, const struct ms_event *payload, size_t *off,
                            struct ms_event *inner, struct ms_error *err);

/* Walks the rows of a rows event: *off starts at 0. before/after are initialised by the
 * callee and destroyed by the caller (also on failure); for inserts only after is filled,
 * for deletes only before. Returns false at the end (err unset, err->domain 0) or on error. */
bool ms_binlog_rows_next(struct ms_binlog_parser *p, const struct ms_event *ev, size_t *off,
                         const struct ms_value_opts *opts, bson_t *before, bson_t *after,
                         struct ms_error *err);

/* After ms_binlog_rows_next returned false: the row was read whole but holds text that is
 * invalid in its character set ({MS_ERR_DECODE, MS_DECODE_CHARSET}). *off is past the row and
 * before/after hold it with such values as BSON binary, so the caller may set the row aside (a
 * dead letter) and go on with the next one. */
bool ms_binlog_rows_bad_text(const struct ms_error *err);

/* The column keys of ev's table map pre-rendered for ms_binlog_rows_write_json, kept by the
 * parser as long as the map (until a TABLE_MAP replaces it or follows a statement's end,
 * or ms_binlog_parser_table_mut is called). NULL when ev has no table map, or out of
 * memory. */
const struct ms_rows_json_keys *ms_binlog_rows_json_keys(struct ms_binlog_parser *p,
                                                         const struct ms_event *ev);

/* As ms_binlog_rows_next for an event without JSON diffs (!ev->u.rows.partial_json), but
 * the row goes to out as relaxed Extended JSON with no BSON in between: the before image
 * (null for inserts), then the mid_len bytes of mid, then the after image (null for
 * deletes), each in the bytes ms_extjson_append_nested writes for ms_binlog_rows_next's
 * documents. keys: ms_binlog_rows_json_keys(p, ev). Returns false at the end
 * (err->domain MS_ERR_NONE) or on error; out is as it was on false. Reads only ev, its
 * table map and keys: threads may write rows of different events at once as long as the
 * parser parses nothing meanwhile. */
bool ms_binlog_rows_write_json(const struct ms_event *ev, const struct ms_rows_json_keys *keys,
                               size_t *off, const struct ms_value_opts *opts, const char *mid,
                               size_t mid_len, struct ms_buf *out, struct ms_error *err);

/* Columns of the last row from ms_binlog_rows_next that could not be decoded from the event
 * alone: JSON diffs of a PARTIAL_UPDATE_ROWS event whose before image lacks the value
 * (binlog_row_image=MINIMAL). They are absent from `after`; the row must be re-read from
 * the source by its key. Names are borrowed until the next call. */
size_t ms_binlog_rows_unresolved(const struct ms_binlog_parser *p, const char *const **names);

/* Current GTID text ("domain-server-seq" for MariaDB, "uuid:n" or "uuid:tag:n" for MySQL),
 * "" when none. The server's checksum algorithm: 0 none, 1 CRC32. */
const char *ms_binlog_parser_gtid(const struct ms_binlog_parser *p);
int ms_binlog_parser_checksum(const struct ms_binlog_parser *p);
const char *ms_binlog_parser_server_version(const struct ms_binlog_parser *p);

/* The parser's table map for an id, for completing it (schema cache); NULL if unknown. */
struct ms_table_map *ms_binlog_parser_table_mut(struct ms_binlog_parser *p, uint64_t table_id);

/* Looks up a table map by id (NULL if unknown). */
const struct ms_table_map *ms_binlog_parser_table(const struct ms_binlog_parser *p,
                                                  uint64_t table_id);

/* Length-encoded integer (MySQL "packed" integer) at p; false when truncated. */
bool ms_binlog_packed_int(const uint8_t *p, size_t avail, size_t *used, uint64_t *out);

const char *ms_binlog_event_name(uint8_t type);

/* True for every kind of rows event (v1, v2, partial JSON, MariaDB compressed). */
bool ms_binlog_is_rows_event(uint8_t type);

/* ---- binlog files and binlog-dump -------------------------------------------------------- */

struct ms_dump_stats {
    uint64_t events;  /* events read, payload-inner events included */
    uint64_t changes; /* row changes printed */
    uint64_t end_pos; /* offset after the last whole event */
};

/* Reads the binlog file at path from byte offset start (0 or 4 = its first event; the
 * format description is always read first) to its end, writing each row change as one line
 * of relaxed Extended JSON to out:
 *   {"pos": N, "gtid": "...", "ts": {"$date": ...}, "db": "...", "table": "...",
 *    "op": "insert|update|delete", "before": {...}|null, "after": {...}|null
 *    [, "unresolved": ["column", ...]]}   (see ms_binlog_rows_unresolved)
 * pos is the offset of the event carrying the change (of its TRANSACTION_PAYLOAD for
 * compressed transactions). A partial event at the end (a file still being written) ends the
 * read; stats->end_pos says where. */
bool ms_binlog_dump_file(const char *path, uint64_t start, const struct ms_value_opts *opts,
                         FILE *out, struct ms_dump_stats *stats, struct ms_error *err);

/* The same from a server's binlog dump (ro: start, server id, stop_at_end), each line also
 * carrying "file". Runs until *stop becomes non-zero (checked at least every heartbeat),
 * the end of a non-blocking dump, or an error. */
bool ms_binlog_dump_server(const struct ms_config *cfg, const struct ms_reader_opts *ro,
                           const struct ms_value_opts *opts, FILE *out, struct ms_dump_stats *stats,
                           volatile sig_atomic_t *stop, struct ms_error *err);

#endif

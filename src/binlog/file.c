#define MS_LOG_DOMAIN "binlog"

#include "mysync/binlog.h"
#include "mysync/extjson.h"
#include "mysync/log.h"
#include "mysync/reader.h"
#include "mysync/schema.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

static const uint8_t magic[4] = {0xfe, 'b', 'i', 'n'};

struct dump {
    struct ms_binlog_parser *parser;
    const struct ms_value_opts *opts;
    FILE *out;
    struct ms_dump_stats *stats;
    const char *file;         /* server mode: the current binlog file, printed with each change */
    struct ms_buf buf;        /* the line being written */
    struct ms_schema *schema; /* server mode: completes table maps from information_schema */
    uint64_t txn_index;       /* row changes seen in the current transaction */
    uint64_t skip_until;      /* after a reconnect: changes of it already printed */
};

static const char *op_name(enum ms_row_op op)
{
    return op == MS_ROW_INSERT ? "insert" : op == MS_ROW_UPDATE ? "update" : "delete";
}

#define RAW(b, lit) ms_extjson_put_raw((b), (lit), sizeof(lit) - 1)

/* One change as a JSON line, written field by field into d->buf (the same bytes libbson
 * would write for the equivalent document; see tests/unit/test_extjson.c). */
static bool write_line(struct dump *d, const struct ms_event *ev, uint64_t pos,
                       const bson_t *before, const bson_t *after)
{
    const struct ms_table_map *tm = ev->u.rows.map;
    const char *gtid = ms_binlog_parser_gtid(d->parser), *op = op_name(ev->u.rows.op);
    struct ms_buf *b = &d->buf;
    const char *const *names;
    size_t nu = ms_binlog_rows_unresolved(d->parser, &names);

    ms_buf_reset(b);
    if (!RAW(b, "{ ")) {
        return false;
    }
    if (d->file != NULL && !(RAW(b, "\"file\" : ") &&
                             ms_extjson_put_string(b, d->file, strlen(d->file)) && RAW(b, ", "))) {
        return false;
    }
    if (!(RAW(b, "\"pos\" : ") && ms_extjson_put_int(b, (int64_t)pos) && RAW(b, ", \"gtid\" : ") &&
          ms_extjson_put_string(b, gtid, strlen(gtid)) && RAW(b, ", \"ts\" : ") &&
          ms_extjson_put_date(b, (int64_t)ev->h.timestamp * 1000) && RAW(b, ", \"db\" : ") &&
          ms_extjson_put_string(b, tm->db, strlen(tm->db)) && RAW(b, ", \"table\" : ") &&
          ms_extjson_put_string(b, tm->table, strlen(tm->table)) && RAW(b, ", \"op\" : ") &&
          ms_extjson_put_string(b, op, strlen(op)) && RAW(b, ", \"before\" : "))) {
        return false;
    }
    if (ev->u.rows.op == MS_ROW_INSERT ? !RAW(b, "null") : !ms_extjson_append_nested(b, before)) {
        return false;
    }
    if (!RAW(b, ", \"after\" : ")) {
        return false;
    }
    if (ev->u.rows.op == MS_ROW_DELETE ? !RAW(b, "null") : !ms_extjson_append_nested(b, after)) {
        return false;
    }
    if (nu > 0) {
        if (!RAW(b, ", \"unresolved\" : [ ")) {
            return false;
        }
        for (size_t i = 0; i < nu; i++) {
            if ((i > 0 && !RAW(b, ", ")) || !ms_extjson_put_string(b, names[i], strlen(names[i]))) {
                return false;
            }
        }
        if (!RAW(b, " ]")) {
            return false;
        }
    }
    return RAW(b, " }\n");
}

static bool dump_rows(struct dump *d, const struct ms_event *ev, uint64_t pos, struct ms_error *err)
{
    size_t off = 0;
    bson_t before, after;

    while (ms_binlog_rows_next(d->parser, ev, &off, d->opts, &before, &after, err)) {
        if (d->txn_index++ >= d->skip_until) {
            /* (skipped: replayed after a reconnect, printed before the connection was lost) */
            if (write_line(d, ev, pos, &before, &after)) {
                fwrite(d->buf.p, 1, d->buf.len, d->out);
            } else {
                /* a type the writer does not handle: let libbson write the line */
                bson_t line = BSON_INITIALIZER;
                char *json;
                if (d->file != NULL) {
                    BSON_APPEND_UTF8(&line, "file", d->file);
                }
                BSON_APPEND_INT64(&line, "pos", (int64_t)pos);
                BSON_APPEND_UTF8(&line, "gtid", ms_binlog_parser_gtid(d->parser));
                BSON_APPEND_DATE_TIME(&line, "ts", (int64_t)ev->h.timestamp * 1000);
                BSON_APPEND_UTF8(&line, "db", ev->u.rows.map->db);
                BSON_APPEND_UTF8(&line, "table", ev->u.rows.map->table);
                BSON_APPEND_UTF8(&line, "op", op_name(ev->u.rows.op));
                if (ev->u.rows.op == MS_ROW_INSERT) {
                    BSON_APPEND_NULL(&line, "before");
                } else {
                    BSON_APPEND_DOCUMENT(&line, "before", &before);
                }
                if (ev->u.rows.op == MS_ROW_DELETE) {
                    BSON_APPEND_NULL(&line, "after");
                } else {
                    BSON_APPEND_DOCUMENT(&line, "after", &after);
                }
                json = bson_as_relaxed_extended_json(&line, NULL);
                if (json != NULL) {
                    fprintf(d->out, "%s\n", json);
                    bson_free(json);
                }
                bson_destroy(&line);
            }
            d->stats->changes++;
        }
        bson_destroy(&before);
        bson_destroy(&after);
    }
    bson_destroy(&before);
    bson_destroy(&after);
    return err == NULL || err->domain == MS_ERR_NONE;
}

static bool handle(struct dump *d, const struct ms_event *ev, uint64_t pos, struct ms_error *err)
{
    d->stats->events++;
    switch (ev->h.type) {
    case MS_EV_TABLE_MAP:
        if (d->schema != NULL) {
            struct ms_table_map *tm =
                ms_binlog_parser_table_mut(d->parser, ev->u.table_map.map->table_id);
            struct ms_error serr = {0};
            bool applied;
            if (tm != NULL && !ms_schema_enrich(d->schema, tm, &applied, &serr)) {
                /* e.g. the table was dropped since: decode with what the event says */
                ms_log(MS_LOG_WARN, "%s.%s: no definition from information_schema (%s)", tm->db,
                       tm->table, serr.msg);
            }
        }
        return true;
    case MS_EV_QUERY:
    case MS_EV_MARIA_QUERY_COMPRESSED:
        if (d->schema != NULL) {
            ms_schema_note_query(d->schema, ev->u.query.db, ev->u.query.db_len, ev->u.query.sql,
                                 ev->u.query.sql_len);
        }
        return true;
    case MS_EV_TRANSACTION_PAYLOAD: {
        size_t off = 0;
        struct ms_event inner;
        while (ms_binlog_payload_next(d->parser, ev, &off, &inner, err)) {
            if (!handle(d, &inner, pos, err)) {
                return false;
            }
        }
        return err->domain == MS_ERR_NONE;
    }
    default:
        return ms_binlog_is_rows_event(ev->h.type) ? dump_rows(d, ev, pos, err) : true;
    }
}

static bool parse_at(struct dump *d, const uint8_t *base, size_t size, size_t off,
                     struct ms_event *ev, size_t *evlen, bool *partial, struct ms_error *err)
{
    uint32_t len;

    *partial = false;
    if (size - off < MS_BINLOG_HEADER_LEN) {
        *partial = true;
        return false;
    }
    len = (uint32_t)base[off + 9] | (uint32_t)base[off + 10] << 8 | (uint32_t)base[off + 11] << 16 |
          (uint32_t)base[off + 12] << 24;
    if (len < MS_BINLOG_HEADER_LEN) {
        ms_error_set(err, MS_ERR_DECODE, MS_DECODE_MALFORMED,
                     "event at offset %zu has an impossible size %u", off, len);
        return false;
    }
    if (len > size - off) {
        *partial = true;
        return false;
    }
    *evlen = len;
    if (!ms_binlog_parse(d->parser, base + off, len, ev, err)) {
        ms_error_prefix(err, "offset %zu", off);
        return false;
    }
    return true;
}

bool ms_binlog_dump_file(const char *path, uint64_t start, const struct ms_value_opts *opts,
                         FILE *out, struct ms_dump_stats *stats, struct ms_error *err)
{
    int fd = open(path, O_RDONLY);
    struct stat st;
    const uint8_t *base = NULL;
    size_t size = 0, off = 4, evlen = 0;
    struct dump d = {.opts = opts, .out = out, .stats = stats};
    struct ms_event ev;
    bool ok = false, partial = false;

    memset(stats, 0, sizeof(*stats));
    ms_error_clear(err);
    if (fd < 0 || fstat(fd, &st) != 0) {
        ms_error_set(err, MS_ERR_SYSTEM, (uint32_t)errno, "%s: %s", path, strerror(errno));
        goto done;
    }
    size = (size_t)st.st_size;
    if (size < 4) {
        ms_error_set(err, MS_ERR_DECODE, MS_DECODE_MALFORMED, "%s: not a binlog file (too short)",
                     path);
        goto done;
    }
    base = mmap(NULL, size, PROT_READ, MAP_PRIVATE, fd, 0);
    if (base == MAP_FAILED) {
        base = NULL;
        ms_error_set(err, MS_ERR_SYSTEM, (uint32_t)errno, "%s: mmap: %s", path, strerror(errno));
        goto done;
    }
    madvise((void *)base, size, MADV_SEQUENTIAL);
    if (memcmp(base, magic, 4) != 0) {
        ms_error_set(err, MS_ERR_DECODE, MS_DECODE_MALFORMED,
                     "%s: not a binlog file (no \\xfebin magic)", path);
        goto done;
    }
    d.parser = ms_binlog_parser_new();
    /* the format description first, whatever the start */
    if (!parse_at(&d, base, size, 4, &ev, &evlen, &partial, err)) {
        if (partial) {
            ms_error_set(err, MS_ERR_DECODE, MS_DECODE_MALFORMED,
                         "%s: truncated format description", path);
        }
        goto done;
    }
    if (ev.h.type != MS_EV_FORMAT_DESCRIPTION) {
        ms_error_set(err, MS_ERR_DECODE, MS_DECODE_MALFORMED,
                     "%s: first event is %s, not a format description", path,
                     ms_binlog_event_name(ev.h.type));
        goto done;
    }
    stats->events++;
    off = 4 + evlen;
    if (start > off) {
        if (start >= size) {
            ms_error_set(err, MS_ERR_DECODE, MS_DECODE_MALFORMED,
                         "%s: --start %llu is past the end (%zu bytes)", path,
                         (unsigned long long)start, size);
            goto done;
        }
        off = (size_t)start;
    }
    while (off < size) {
        if (!parse_at(&d, base, size, off, &ev, &evlen, &partial, err)) {
            if (partial) {
                ms_log(MS_LOG_WARN, "%s: partial event at offset %zu (file still being written?)",
                       path, off);
                break;
            }
            goto done;
        }
        if (!handle(&d, &ev, off, err)) {
            ms_error_prefix(err, "%s: offset %zu", path, off);
            goto done;
        }
        off += evlen;
    }
    stats->end_pos = off;
    ok = true;
done:
    ms_buf_free(&d.buf);
    ms_binlog_parser_destroy(d.parser);
    if (base != NULL) {
        munmap((void *)base, size);
    }
    if (fd >= 0) {
        close(fd);
    }
    return ok;
}

static bool is_transaction_start(uint8_t type)
{
    return type == MS_EV_GTID || type == MS_EV_ANONYMOUS_GTID || type == MS_EV_GTID_TAGGED ||
           type == MS_EV_MARIA_GTID;
}

/* Sleeps about ms (+-20 %), waking early when *stop is set. */
static void backoff_sleep(int64_t ms, volatile sig_atomic_t *stop)
{
    int64_t jittered = ms * (80 + rand() % 41) / 100;

    for (int64_t slept = 0; slept < jittered && (stop == NULL || !*stop); slept += 50) {
        struct timespec ts = {0, 50 * 1000000L};
        nanosleep(&ts, NULL);
    }
}

bool ms_binlog_dump_server(const struct ms_config *cfg, const struct ms_reader_opts *ro,
                           const struct ms_value_opts *opts, FILE *out, struct ms_dump_stats *stats,
                           volatile sig_atomic_t *stop, struct ms_error *err)
{
    struct ms_reader *r = NULL;
    struct ms_reader_opts o = *ro;
    struct dump d = {.opts = opts, .out = out, .stats = stats};
    char file[512] = "", txn_file[512] = "";
    uint64_t txn_pos = 0;
    int64_t delay_ms = 100;
    const uint8_t *buf;
    size_t len;
    struct ms_event ev;
    bool ok = false;

    memset(stats, 0, sizeof(*stats));
    d.file = file;
    d.schema = ms_schema_new(cfg);
    while (stop == NULL || !*stop) {
        /* (re)connect: the first time from the requested position, after a loss from the
         * start of the transaction that was being read */
        if (txn_file[0] != '\0') {
            o.file = txn_file;
            o.pos = txn_pos;
        }
        r = ms_reader_open(cfg, &o, err);
        if (r == NULL) {
            if (err->retryable && !ro->stop_at_end) {
                ms_log(MS_LOG_WARN, "%s; retrying in %lld ms", err->msg, (long long)delay_ms);
                backoff_sleep(delay_ms, stop);
                delay_ms = delay_ms * 2 > 30000 ? 30000 : delay_ms * 2;
                continue;
            }
            break;
        }
        snprintf(file, sizeof(file), "%s", ms_reader_start_file(r));
        if (txn_file[0] == '\0') {
            snprintf(txn_file, sizeof(txn_file), "%s", file);
            txn_pos = ms_reader_start_pos(r);
        }
        /* a restarted server may reuse table ids: start from a clean parser */
        ms_binlog_parser_destroy(d.parser);
        d.parser = ms_binlog_parser_new();
        ms_binlog_parser_expect_checksum(d.parser, ms_reader_checksum(r));
        d.skip_until = d.txn_index;
        d.txn_index = 0;
        while (stop == NULL || !*stop) {
            uint64_t pos;
            if (!ms_reader_next(r, &buf, &len, err)) {
                break;
            }
            delay_ms = 100; /* the stream is alive again */
            if (!ms_binlog_parse(d.parser, buf, len, &ev, err)) {
                break;
            }
            if (ev.h.type == MS_EV_ROTATE) {
                snprintf(file, sizeof(file), "%.*s", (int)ev.u.rotate.file_len, ev.u.rotate.file);
                continue;
            }
            pos = ev.h.log_pos >= ev.h.event_size ? ev.h.log_pos - ev.h.event_size : 0;
            if (ev.h.type == MS_EV_HEARTBEAT || ev.h.type == MS_EV_FORMAT_DESCRIPTION) {
                continue;
            }
            if (is_transaction_start(ev.h.type)) {
                /* the transaction we resumed at keeps its skip count; a new one starts
                 * from nothing */
                if (strcmp(txn_file, file) != 0 || txn_pos != pos) {
                    d.skip_until = 0;
                }
                snprintf(txn_file, sizeof(txn_file), "%s", file);
                txn_pos = pos;
                d.txn_index = 0;
            }
            if (!handle(&d, &ev, pos, err)) {
                ms_error_prefix(err, "%s:%llu", file, (unsigned long long)pos);
                break;
            }
            stats->end_pos = ev.h.log_pos;
            fflush(out);
        }
        ms_reader_close(r);
        r = NULL;
        if (stop != NULL && *stop) {
            break;
        }
        if (err->domain == MS_ERR_NONE) {
            ok = true; /* the end of a non-blocking dump */
            break;
        }
        if (!err->retryable || ro->stop_at_end) {
            break;
        }
        ms_log_kv(MS_LOG_WARN,
                  ((struct ms_log_field[]){MS_LF_STR("file", txn_file),
                                           MS_LF_INT("pos", (int64_t)txn_pos),
                                           MS_LF_INT("retry_in_ms", delay_ms)}),
                  "%s; resuming from the start of the interrupted transaction", err->msg);
        backoff_sleep(delay_ms, stop);
        delay_ms = delay_ms * 2 > 30000 ? 30000 : delay_ms * 2;
    }
    if (stop != NULL && *stop) {
        ok = true;
    }
    ms_buf_free(&d.buf);
    ms_schema_destroy(d.schema);
    ms_binlog_parser_destroy(d.parser);
    return ok;
}

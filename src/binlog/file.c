#define MS_LOG_DOMAIN "binlog"

#include "mysync/binlog.h"
#include "mysync/extjson.h"
#include "mysync/log.h"
#include "mysync/reader.h"
#include "mysync/schema.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
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
    struct ms_buf buf;        /* lines not yet given to out (the line being written last) */
    struct ms_buf head;       /* the start of every line of the current rows event */
    struct ms_schema *schema; /* server mode: completes table maps from information_schema */
    uint64_t txn_index;       /* row changes seen in the current transaction */
    uint64_t skip_until;      /* after a reconnect: changes of it already printed */
};

static const char *op_name(enum ms_row_op op)
{
    return op == MS_ROW_INSERT ? "insert" : op == MS_ROW_UPDATE ? "update" : "delete";
}

#define RAW(b, lit) ms_extjson_put_raw((b), (lit), sizeof(lit) - 1)

#define OUT_CHUNK (1u << 20) /* lines are handed to out in chunks of about this size */

/* Hands the buffered lines to out. A FILE on a file descriptor gets them by write(2) after
 * its own buffer: fwrite would first copy them into that buffer (a tenth of the dump's
 * time for output the size of the binlog times four). */
static void flush_lines(struct dump *d)
{
    int fd;
    size_t done = 0;

    if (d->buf.len == 0) {
        return;
    }
    fd = fileno(d->out);
    if (fd < 0 || fflush(d->out) != 0) {
        fwrite(d->buf.p, 1, d->buf.len, d->out);
        d->buf.len = 0;
        return;
    }
    while (done < d->buf.len) {
        ssize_t w = write(fd, d->buf.p + done, d->buf.len - done);
        if (w < 0 && errno == EINTR) {
            continue;
        }
        if (w <= 0) {
            break; /* as fwrite: the dump goes on (the reader has gone, the disk is full) */
        }
        done += (size_t)w;
    }
    d->buf.len = 0;
}

/* The line up to its before image: the same for every row of an event. */
static bool write_head(struct dump *d, const struct ms_event *ev, uint64_t pos, struct ms_buf *b)
{
    const struct ms_table_map *tm = ev->u.rows.map;
    const char *gtid = ms_binlog_parser_gtid(d->parser), *op = op_name(ev->u.rows.op);

    if (!RAW(b, "{ ")) {
        return false;
    }
    if (d->file != NULL && !(RAW(b, "\"file\" : ") &&
                             ms_extjson_put_string(b, d->file, strlen(d->file)) && RAW(b, ", "))) {
        return false;
    }
    return RAW(b, "\"pos\" : ") && ms_extjson_put_int(b, (int64_t)pos) && RAW(b, ", \"gtid\" : ") &&
           ms_extjson_put_string(b, gtid, strlen(gtid)) && RAW(b, ", \"ts\" : ") &&
           ms_extjson_put_date(b, (int64_t)ev->h.timestamp * 1000) && RAW(b, ", \"db\" : ") &&
           ms_extjson_put_string(b, tm->db, strlen(tm->db)) && RAW(b, ", \"table\" : ") &&
           ms_extjson_put_string(b, tm->table, strlen(tm->table)) && RAW(b, ", \"op\" : ") &&
           ms_extjson_put_string(b, op, strlen(op)) && RAW(b, ", \"before\" : ");
}

static const char after_key[] = ", \"after\" : ";

/* The rows of an event without JSON diffs, one line each, written straight from the row
 * images (ms_binlog_rows_write_json, no BSON in between) after head (the line's start,
 * readable in whole 32-byte blocks). The first *skip rows are left out (server mode, after
 * a reconnect; *skip counts down). Touches nothing shared: the lines go to b. */
static bool write_rows(const struct ms_event *ev, const struct ms_rows_json_keys *keys,
                       const char *head, size_t head_len, const struct ms_value_opts *opts,
                       struct ms_buf *b, uint64_t *skip, uint64_t *changes, struct ms_error *err)
{
    size_t off = 0;

    for (;;) {
        size_t mark = b->len;

        if (!ms_buf_put_blocks(b, head, head_len)) {
            ms_error_set(err, MS_ERR_SYSTEM, ENOMEM, "out of memory for a line");
            return false;
        }
        if (!ms_binlog_rows_write_json(ev, keys, &off, opts, after_key, sizeof(after_key) - 1, b,
                                       err)) {
            b->len = mark;
            return err == NULL || err->domain == MS_ERR_NONE;
        }
        if (*skip > 0) {
            /* replayed after a reconnect, printed before the connection was lost */
            (*skip)--;
            b->len = mark;
            continue;
        }
        if (!RAW(b, " }\n")) {
            ms_error_set(err, MS_ERR_SYSTEM, ENOMEM, "out of memory for a line");
            return false;
        }
        (*changes)++;
    }
}

/* Rows of an event without JSON diffs, written now (server mode, and events the file mode
 * does not batch). */
static bool dump_rows_json(struct dump *d, const struct ms_event *ev, uint64_t pos,
                           struct ms_error *err)
{
    uint64_t skip = d->skip_until > d->txn_index ? d->skip_until - d->txn_index : 0;
    uint64_t changes = 0, skipped;
    bool ok;

    ms_buf_reset(&d->head);
    /* (and room to read it in whole 32-byte blocks) */
    if (ev->u.rows.map != NULL &&
        (!write_head(d, ev, pos, &d->head) || !ms_buf_reserve(&d->head, 32))) {
        ms_error_set(err, MS_ERR_SYSTEM, ENOMEM, "out of memory for a line");
        return false;
    }
    skipped = skip;
    ok = write_rows(ev, ms_binlog_rows_json_keys(d->parser, ev), d->head.p, d->head.len, d->opts,
                    &d->buf, &skip, &changes, err);
    d->txn_index += changes + (skipped - skip);
    d->stats->changes += changes;
    if (d->buf.len >= OUT_CHUNK) {
        flush_lines(d);
    }
    return ok;
}

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

    if (!ev->u.rows.partial_json) {
        return dump_rows_json(d, ev, pos, err);
    }
    flush_lines(d);
    while (ms_binlog_rows_next(d->parser, ev, &off, d->opts, &before, &after, err)) {
        if (d->txn_index++ >= d->skip_until) {
            /* (skipped: replayed after a reconnect, printed before the connection was lost) */
            if (write_line(d, ev, pos, &before, &after)) {
                flush_lines(d);
            } else {
                /* a type the writer does not handle: let libbson write the line */
                bson_t line = BSON_INITIALIZER;
                char *json;

                ms_buf_reset(&d->buf); /* the part write_line wrote */
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

/* ---- file mode: rows events written by two threads ----------------------------------- *
 * Parsing (checksums, table maps) stays sequential; the lines of up to BATCH_EVENTS rows
 * events (a batch) are written by this thread and a worker at once, each into its own
 * buffer, the worker taking the earlier half, and then in file order, so the output is the
 * same bytes as one thread's. A batch spans the other events of its transactions (GTID,
 * BEGIN, XID, the TABLE_MAP before every statement): the parser holds the table maps its rows
 * events point to until the batch is written. Only events that write lines themselves or
 * change how what follows is read (a compressed transaction, a format description) end it.
 * On 2 cores this takes the dump from ~0.22 s to ~0.13 s (bench/README.md). */

#define BATCH_EVENTS 256
#define BATCH_BYTES  (2u << 20) /* of row images, ~4x as much JSON */

struct job {
    struct ms_event ev; /* a rows event whose images are in the mapped file */
    const struct ms_rows_json_keys *keys;
    size_t off;  /* of the event in the file, for errors */
    size_t head; /* its lines' start: head_len bytes at heads.p + head */
    size_t head_len;
};

struct half {
    size_t first, last; /* jobs [first, last) */
    struct ms_buf out;
    uint64_t changes;
    bool failed;
    size_t failed_off;
    struct ms_error err;
};

enum { W_IDLE, W_POSTED, W_DONE, W_QUIT };

struct batch {
    struct job *jobs;
    size_t njobs, cap, bytes;
    struct ms_buf heads;
    struct half half[2]; /* [0]: the worker's (earlier jobs), [1]: this thread's */
    const struct ms_value_opts *opts;
    bool have_worker, worker_failed;
    pthread_t worker;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int state;
};

static void run_half(struct batch *bt, struct half *h)
{
    uint64_t none = 0;

    h->out.len = 0;
    h->changes = 0;
    h->failed = false;
    ms_error_clear(&h->err);
    for (size_t i = h->first; i < h->last; i++) {
        const struct job *j = &bt->jobs[i];
        if (!write_rows(&j->ev, j->keys, bt->heads.p + j->head, j->head_len, bt->opts, &h->out,
                        &none, &h->changes, &h->err)) {
            h->failed = true;
            h->failed_off = j->off;
            return;
        }
    }
}

static void *worker_main(void *arg)
{
    struct batch *bt = arg;

    pthread_mutex_lock(&bt->mu);
    for (;;) {
        while (bt->state != W_POSTED && bt->state != W_QUIT) {
            pthread_cond_wait(&bt->cv, &bt->mu);
        }
        if (bt->state == W_QUIT) {
            break;
        }
        pthread_mutex_unlock(&bt->mu);
        run_half(bt, &bt->half[0]);
        pthread_mutex_lock(&bt->mu);
        bt->state = W_DONE;
        pthread_cond_broadcast(&bt->cv);
    }
    pthread_mutex_unlock(&bt->mu);
    return NULL;
}

static void batch_init(struct batch *bt, const struct ms_value_opts *opts)
{
    memset(bt, 0, sizeof(*bt));
    bt->opts = opts;
    pthread_mutex_init(&bt->mu, NULL);
    pthread_cond_init(&bt->cv, NULL);
}

static void batch_cleanup(struct batch *bt)
{
    if (bt->have_worker) {
        pthread_mutex_lock(&bt->mu);
        bt->state = W_QUIT;
        pthread_cond_broadcast(&bt->cv);
        pthread_mutex_unlock(&bt->mu);
        pthread_join(bt->worker, NULL);
    }
    pthread_cond_destroy(&bt->cv);
    pthread_mutex_destroy(&bt->mu);
    free(bt->jobs);
    ms_buf_free(&bt->heads);
    ms_buf_free(&bt->half[0].out);
    ms_buf_free(&bt->half[1].out);
}

/* Adds a rows event to the batch; false when out of memory. */
static bool batch_add(struct dump *d, struct batch *bt, const struct ms_event *ev,
                      const struct ms_rows_json_keys *keys, size_t off)
{
    struct job *j;

    if (bt->njobs == bt->cap) {
        size_t cap = bt->cap > 0 ? bt->cap * 2 : 64;
        struct job *nj = realloc(bt->jobs, cap * sizeof(*nj));
        if (nj == NULL) {
            return false;
        }
        bt->jobs = nj;
        bt->cap = cap;
    }
    j = &bt->jobs[bt->njobs];
    j->ev = *ev;
    j->keys = keys;
    j->off = off;
    j->head = bt->heads.len;
    /* (and room to read the heads in whole 32-byte blocks) */
    if (!write_head(d, ev, off, &bt->heads) || !ms_buf_reserve(&bt->heads, 32)) {
        bt->heads.len = j->head;
        return false;
    }
    j->head_len = bt->heads.len - j->head;
    bt->njobs++;
    bt->bytes += ev->u.rows.rows_len;
    return true;
}

static bool batch_full(const struct batch *bt)
{
    return bt->njobs >= BATCH_EVENTS || bt->bytes >= BATCH_BYTES;
}

static void write_out(struct dump *d, struct ms_buf *b)
{
    struct ms_buf keep = d->buf;

    d->buf = *b; /* (flush_lines writes d->buf) */
    flush_lines(d);
    *b = d->buf;
    d->buf = keep;
}

/* Writes the batch's lines (both threads), in file order, and empties it. False, with err
 * set as handle() would have set it, when an event fails: the lines before it are out. */
static bool batch_run(struct dump *d, struct batch *bt, const char *path, struct ms_error *err)
{
    size_t split = 0, acc = 0;
    bool ok = true;

    if (bt->njobs == 0) {
        return true;
    }
    flush_lines(d); /* lines written before the batch's */
    /* the worker's share: the first jobs, half of the bytes */
    while (split < bt->njobs - 1 && 2 * (acc + bt->jobs[split].ev.u.rows.rows_len) <= bt->bytes) {
        acc += bt->jobs[split].ev.u.rows.rows_len;
        split++;
    }
    bt->half[0].first = 0;
    bt->half[0].last = split;
    bt->half[1].first = split;
    bt->half[1].last = bt->njobs;
    if (split > 0 && !bt->have_worker && !bt->worker_failed) {
        bt->have_worker = pthread_create(&bt->worker, NULL, worker_main, bt) == 0;
        bt->worker_failed = !bt->have_worker;
    }
    if (split > 0 && bt->have_worker) {
        pthread_mutex_lock(&bt->mu);
        bt->state = W_POSTED;
        pthread_cond_broadcast(&bt->cv);
        pthread_mutex_unlock(&bt->mu);
        run_half(bt, &bt->half[1]);
        pthread_mutex_lock(&bt->mu);
        while (bt->state != W_DONE) {
            pthread_cond_wait(&bt->cv, &bt->mu);
        }
        bt->state = W_IDLE;
        pthread_mutex_unlock(&bt->mu);
    } else {
        run_half(bt, &bt->half[0]);
        if (!bt->half[0].failed) {
            run_half(bt, &bt->half[1]);
        }
    }
    for (int h = 0; h < 2 && ok; h++) {
        struct half *hf = &bt->half[h];
        write_out(d, &hf->out);
        d->stats->changes += hf->changes;
        if (hf->failed) {
            *err = hf->err;
            ms_error_prefix(err, "%s: offset %zu", path, hf->failed_off);
            ok = false;
        }
    }
    bt->njobs = 0;
    bt->bytes = 0;
    bt->heads.len = 0;
    /* the maps its events pointed to can go */
    ms_binlog_parser_hold_maps(d->parser, false);
    ms_binlog_parser_hold_maps(d->parser, true);
    return ok;
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
    struct batch bt;
    bool ok = false, partial = false;

    memset(stats, 0, sizeof(*stats));
    ms_error_clear(err);
    batch_init(&bt, opts);
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
    ms_binlog_parser_hold_maps(d.parser, true); /* released as each batch is written */
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
        const struct ms_rows_json_keys *keys;

        /* a compressed transaction writes its rows itself, a format description changes how
         * what follows is read: the batch is written first */
        if (bt.njobs > 0 && size - off > 4 &&
            (base[off + 4] == MS_EV_TRANSACTION_PAYLOAD ||
             base[off + 4] == MS_EV_FORMAT_DESCRIPTION) &&
            !batch_run(&d, &bt, path, err)) {
            goto done;
        }
        if (!parse_at(&d, base, size, off, &ev, &evlen, &partial, err)) {
            struct ms_error perr = *err;
            if (!batch_run(&d, &bt, path, err)) {
                goto done; /* an earlier event's error */
            }
            *err = perr;
            if (partial) {
                ms_log(MS_LOG_WARN, "%s: partial event at offset %zu (file still being written?)",
                       path, off);
                break;
            }
            goto done;
        }
        keys = ms_binlog_is_rows_event(ev.h.type) ? ms_binlog_rows_json_keys(d.parser, &ev) : NULL;
        if (keys != NULL && !ev.u.rows.partial_json &&
            (uintptr_t)ev.u.rows.rows >= (uintptr_t)base &&
            (uintptr_t)ev.u.rows.rows <= (uintptr_t)(base + size) &&
            batch_add(&d, &bt, &ev, keys, off)) {
            stats->events++;
            if (batch_full(&bt) && !batch_run(&d, &bt, path, err)) {
                goto done;
            }
        } else {
            /* rows events written here (JSON diffs, images inflated into the parser's scratch
             * space, no table map) keep their place after the batch's; other events write
             * nothing here */
            if ((ms_binlog_is_rows_event(ev.h.type) || ev.h.type == MS_EV_TRANSACTION_PAYLOAD ||
                 d.schema != NULL) &&
                !batch_run(&d, &bt, path, err)) {
                goto done;
            }
            if (!handle(&d, &ev, off, err)) {
                ms_error_prefix(err, "%s: offset %zu", path, off);
                goto done;
            }
        }
        off += evlen;
    }
    if (!batch_run(&d, &bt, path, err)) {
        goto done;
    }
    stats->end_pos = off;
    ok = true;
done:
    flush_lines(&d);
    batch_cleanup(&bt);
    ms_buf_free(&d.buf);
    ms_buf_free(&d.head);
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
            flush_lines(&d);
            fflush(out);
        }
        flush_lines(&d); /* the rows of an event cut short, before its error */
        fflush(out);
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
    flush_lines(&d);
    ms_buf_free(&d.buf);
    ms_buf_free(&d.head);
    ms_schema_destroy(d.schema);
    ms_binlog_parser_destroy(d.parser);
    return ok;
}

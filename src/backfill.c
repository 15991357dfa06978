/* Snapshots and backfill (include/mysync/backfill.h). */
#define MS_LOG_DOMAIN "backfill"

#include "mysync/backfill.h"
#include "mysync/clock.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "mysync/log.h"
#include "mysync/mysql.h"
#include "mysync/sink.h"
#include "mysync/source.h"

#define MAX_QUEUED 64

struct ms_backfill {
    const struct ms_config *cfg;
    struct ms_pipeline *p;
    mongoc_client_pool_t *pool;
    struct ms_sink *sink; /* progress documents */
    MYSQL *conn;          /* watermarks */
    MYSQL_STMT *wm;       /* INSERT INTO signal (kind, table_name, run, chunk) */
    bool watermarks;      /* the signal table is there and writable */
    int fault_delay_ms;   /* test-only fault: pause at each chunk's first row (README) */
    char sig_db[200], sig_name[200];

    /* the daemon's worker */
    pthread_t thread;
    bool started;
    volatile sig_atomic_t stop;
    volatile sig_atomic_t *ext_stop; /* the daemon's stop flag */
    pthread_mutex_t mu;
    pthread_cond_t cv;
    char *queued[MAX_QUEUED];
    size_t nqueued;
    char current[420];
    uint64_t cur_rows;
    int64_t cur_estimate;
    bson_t last;   /* the last finished snapshot, for the status */
    int64_t swept; /* documents deleted by the re-snapshot sweep (-1: none ran) */
};

static void split_spec(const char *spec, const char *defdb, char *db, size_t dbsz, char *name,
                       size_t namesz)
{
    const char *dot = strchr(spec, '.');

    if (dot != NULL) {
        snprintf(db, dbsz, "%.*s", (int)(dot - spec), spec);
        snprintf(name, namesz, "%s", dot + 1);
    } else {
        snprintf(db, dbsz, "%s", defdb != NULL ? defdb : "");
        snprintf(name, namesz, "%s", spec);
    }
}

/* `name`, backticks doubled. */
static void ident(char *out, size_t outsz, const char *name)
{
    size_t o = 0;

    if (outsz < 3) {
        return;
    }
    out[o++] = '`';
    for (const char *p = name; *p != '\0' && o + 3 < outsz; p++) {
        out[o++] = *p;
        if (*p == '`') {
            out[o++] = '`';
        }
    }
    out[o++] = '`';
    out[o] = '\0';
}

/* The signal table, created if missing; the watermark statement. */
static void watermarks_setup(struct ms_backfill *b)
{
    char sql[1200], q[2][420];
    static const char insert_fmt[] =
        "INSERT INTO %s.%s (kind, table_name, run, chunk) VALUES (?, ?, ?, ?)";
    struct ms_error err = {0};

    if (b->sig_name[0] == '\0') {
        ms_log(MS_LOG_INFO, "sync.signal_table is empty: backfill chunks without watermarks");
        return;
    }
    ident(q[0], sizeof(q[0]), b->sig_db);
    ident(q[1], sizeof(q[1]), b->sig_name);
    snprintf(sql, sizeof(sql),
             "CREATE TABLE IF NOT EXISTS %s.%s (id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY, "
             "kind VARCHAR(32) NOT NULL, table_name VARCHAR(400) NOT NULL, run VARCHAR(64) NOT "
             "NULL, chunk BIGINT NOT NULL DEFAULT 0, created_at TIMESTAMP(6) NOT NULL DEFAULT "
             "CURRENT_TIMESTAMP(6)) COMMENT 'mysync snapshot watermarks (README: Snapshots "
             "beside the stream)'",
             q[0], q[1]);
    if (mysql_query(b->conn, sql) != 0) {
        ms_mysql_error(b->conn, "creating the signal table", &err);
        ms_log(MS_LOG_WARN,
               "no snapshot watermarks (%s): a daemon streaming the same tables meanwhile may "
               "keep a stale document for a row changed while its chunk was copied, until the "
               "row's next change. GRANT CREATE, INSERT, DELETE ON %s.%s to the mysync user, or "
               "create it (README \"Snapshots beside the stream\")",
               err.msg, b->sig_db, b->sig_name);
        return;
    }
    snprintf(sql, sizeof(sql), insert_fmt, q[0], q[1]);
    b->wm = mysql_stmt_init(b->conn);
    if (b->wm == NULL || mysql_stmt_prepare(b->wm, sql, (unsigned long)strlen(sql)) != 0) {
        ms_log(MS_LOG_WARN, "no snapshot watermarks: preparing the insert into %s.%s failed: %s",
               b->sig_db, b->sig_name, b->wm != NULL ? mysql_stmt_error(b->wm) : "out of memory");
        if (b->wm != NULL) {
            mysql_stmt_close(b->wm);
            b->wm = NULL;
        }
        return;
    }
    b->watermarks = true;
}

struct ms_backfill *ms_backfill_new(const struct ms_config *cfg, struct ms_pipeline *p,
                                    struct ms_error *err)
{
    struct ms_backfill *b = calloc(1, sizeof(*b));
    struct ms_sink_opts so = {.max_retries = -1, .retry_delay_ms = cfg->sync_retry_delay_ms};

    if (b == NULL) {
        ms_error_set(err, MS_ERR_SYSTEM, ENOMEM, "out of memory");
        return NULL;
    }
    b->cfg = cfg;
    b->p = p;
    pthread_mutex_init(&b->mu, NULL);
    pthread_cond_init(&b->cv, NULL);
    bson_init(&b->last);
    b->swept = -1;
    if (cfg->sync_signal_table != NULL && cfg->sync_signal_table[0] != '\0') {
        split_spec(cfg->sync_signal_table, cfg->mysql_database, b->sig_db, sizeof(b->sig_db),
                   b->sig_name, sizeof(b->sig_name));
    }
    b->conn = ms_mysql_connect(cfg, err);
    if (b->conn == NULL || mysql_query(b->conn, "SET autocommit = 1") != 0) {
        if (b->conn != NULL) {
            ms_mysql_error(b->conn, "setting up the backfill connection", err);
        }
        ms_backfill_destroy(b);
        return NULL;
    }
    b->pool = ms_sink_pool_new(cfg, err);
    if (b->pool == NULL) {
        ms_backfill_destroy(b);
        return NULL;
    }
    b->sink = ms_sink_new(b->pool, cfg->mongodb_database, &so, err);
    if (b->sink == NULL) {
        ms_backfill_destroy(b);
        return NULL;
    }
    watermarks_setup(b);
    if (getenv("MYSYNC_FAULT_BACKFILL_DELAY_MS") != NULL) {
        b->fault_delay_ms = atoi(getenv("MYSYNC_FAULT_BACKFILL_DELAY_MS"));
        ms_log(MS_LOG_WARN, "fault injection: each backfill chunk waits %d ms before it is written",
               b->fault_delay_ms);
    }
    return b;
}

void ms_backfill_destroy(struct ms_backfill *b)
{
    if (b == NULL) {
        return;
    }
    ms_backfill_stop(b);
    if (b->wm != NULL) {
        mysql_stmt_close(b->wm);
    }
    if (b->conn != NULL) {
        mysql_close(b->conn);
    }
    ms_sink_destroy(b->sink);
    if (b->pool != NULL) {
        mongoc_client_pool_destroy(b->pool);
    }
    for (size_t i = 0; i < b->nqueued; i++) {
        free(b->queued[i]);
    }
    bson_destroy(&b->last);
    pthread_mutex_destroy(&b->mu);
    pthread_cond_destroy(&b->cv);
    free(b);
}

/* INSERT of one watermark row (its own transaction). */
static bool watermark(struct ms_backfill *b, const char *kind, const char *table, const char *run,
                      int64_t chunk, struct ms_error *err)
{
    MYSQL_BIND par[4];
    unsigned long len[3] = {strlen(kind), strlen(table), strlen(run)};

    memset(par, 0, sizeof(par));
    par[0].buffer_type = MYSQL_TYPE_STRING;
    par[0].buffer = (void *)kind;
    par[0].length = &len[0];
    par[1].buffer_type = MYSQL_TYPE_STRING;
    par[1].buffer = (void *)table;
    par[1].length = &len[1];
    par[2].buffer_type = MYSQL_TYPE_STRING;
    par[2].buffer = (void *)run;
    par[2].length = &len[2];
    par[3].buffer_type = MYSQL_TYPE_LONGLONG;
    par[3].buffer = &chunk;
    if (mysql_stmt_bind_param(b->wm, par) != 0 || mysql_stmt_execute(b->wm) != 0) {
        ms_error_set(err, MS_ERR_MYSQL, mysql_stmt_errno(b->wm),
                     "writing a watermark into %s.%s: %s", b->sig_db, b->sig_name,
                     mysql_stmt_error(b->wm));
        err->retryable = true;
        return false;
    }
    return true;
}

/* The watermark connection again, after a lost one. */
static bool watermarks_reconnect(struct ms_backfill *b, struct ms_error *err)
{
    if (b->wm != NULL) {
        mysql_stmt_close(b->wm);
        b->wm = NULL;
    }
    if (b->conn != NULL) {
        mysql_close(b->conn);
    }
    b->watermarks = false;
    b->conn = ms_mysql_connect(b->cfg, err);
    if (b->conn == NULL) {
        err->retryable = true;
        return false;
    }
    watermarks_setup(b);
    return true;
}

static uint64_t fnv1a(const char *s)
{
    uint64_t h = 1469598103934665603ULL;

    for (; *s != '\0'; s++) {
        h = (h ^ (uint8_t)*s) * 1099511628211ULL;
    }
    return h;
}

static void random_run(char *out, size_t outsz)
{
    uint8_t r[8] = {0};
    int fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);

    if (fd < 0 || read(fd, r, sizeof(r)) != (ssize_t)sizeof(r)) {
        uint64_t v = (uint64_t)ms_clock_wall_ms() ^ ((uint64_t)getpid() << 32);
        memcpy(r, &v, sizeof(r));
    }
    if (fd >= 0) {
        close(fd);
    }
    snprintf(out, outsz, "%02x%02x%02x%02x%02x%02x%02x%02x", r[0], r[1], r[2], r[3], r[4], r[5],
             r[6], r[7]);
}

/* ---- one table ---- */

struct chunk_ctx {
    struct ms_backfill *b;
    const char *db, *table;
    uint64_t rows, bad;
    bool delayed;
    char position[120];
};

static bool on_row(void *arg, const bson_t *row, struct ms_error *err)
{
    struct chunk_ctx *c = arg;
    struct ms_error why;

    if (row == NULL) {
        /* a value that does not decode: dead-lettered, the copy goes on */
        why = *err;
        ms_error_clear(err);
        c->bad++;
        ms_log(MS_LOG_WARN, "%s.%s: a row cannot be read (%s): dead-lettered", c->db, c->table,
               why.msg);
        return ms_pipeline_push_bad_row(c->b->p, c->db, c->table, &why, c->position, err);
    }
    if (c->b->fault_delay_ms > 0 && !c->delayed) {
        /* the chunk was read (one consistent read) and is written late: the widest race with
         * a concurrent stream, for the tests of the watermark windows */
        struct timespec ts = {c->b->fault_delay_ms / 1000,
                              (c->b->fault_delay_ms % 1000) * 1000000L};
        nanosleep(&ts, NULL);
        c->delayed = true;
    }
    c->rows++;
    return ms_pipeline_push_row(c->b->p, c->db, c->table, row, c->position, true, err);
}

static void fmt_count(char *out, size_t outsz, uint64_t v)
{
    char raw[32];
    size_t n, o = 0;

    snprintf(raw, sizeof(raw), "%" PRIu64, v);
    n = strlen(raw);
    for (size_t i = 0; i < n && o + 2 < outsz; i++) {
        if (i > 0 && (n - i) % 3 == 0) {
            out[o++] = ',';
        }
        out[o++] = raw[i];
    }
    out[o] = '\0';
}

static void fmt_eta(char *out, size_t outsz, double s)
{
    if (s < 0 || s > 99 * 3600) {
        snprintf(out, outsz, "--:--");
    } else if (s >= 3600) {
        snprintf(out, outsz, "%d:%02d:%02d", (int)s / 3600, ((int)s / 60) % 60, (int)s % 60);
    } else {
        snprintf(out, outsz, "%d:%02d", (int)s / 60, (int)s % 60);
    }
}

static void show_progress(const struct ms_backfill_opts *o, const char *table, uint64_t done,
                          int64_t total, double rate, bool final)
{
    char d[32], t[32], eta[32];
    double frac = total > 0 ? (double)done / (double)total : 0;

    if (frac > 1) {
        frac = 1; /* the estimate is an estimate */
    }
    fmt_count(d, sizeof(d), done);
    fmt_count(t, sizeof(t), total > 0 ? (uint64_t)total : 0);
    fmt_eta(eta, sizeof(eta),
            total > 0 && rate > 0 && (double)total > (double)done
                ? ((double)total - (double)done) / rate
                : (final ? 0 : -1));
    if (o->progress == MS_BACKFILL_BAR) {
        char bar[41];
        int fill = (int)(frac * 40);
        for (int i = 0; i < 40; i++) {
            bar[i] = i < fill ? '#' : '.';
        }
        bar[40] = '\0';
        fprintf(stderr, "\r%s [%s] %5.1f%% %s/~%s rows %8.0f rows/s ETA %s%s", table, bar,
                frac * 100, d, t, rate, eta, final ? "\n" : "  ");
        fflush(stderr);
    } else if (o->progress == MS_BACKFILL_LINES) {
        ms_log_kv(MS_LOG_INFO,
                  ((struct ms_log_field[]){
                      MS_LF_INT("rows", (int64_t)done), MS_LF_INT("estimate", total),
                      MS_LF_INT("rows_per_s", (int64_t)rate), MS_LF_STR("eta", eta)}),
                  "%s: %s rows of about %s (%.1f%%)", table, d, t, frac * 100);
    }
}

/* A chunk read and queued whose progress is saved once its rows are written. */
struct pending {
    bool set;
    uint64_t mark;
    bson_t prog;
};

/* Waits for the pending chunk's rows, then saves its progress. */
static bool save_pending(struct ms_backfill *b, const char *id, struct pending *pend,
                         struct ms_error *err)
{
    bool ok;

    if (!pend->set) {
        return true;
    }
    ok = ms_pipeline_wait_mark(b->p, pend->mark, err) &&
         ms_sink_state_save(b->sink, id, &pend->prog, err);
    if (ok) {
        bson_destroy(&pend->prog);
        pend->set = false;
    }
    return ok;
}

bool ms_backfill_table(struct ms_backfill *b, const char *spec, const struct ms_backfill_opts *o,
                       struct ms_backfill_result *res, struct ms_error *err)
{
    struct ms_pipeline_table pt;
    struct ms_source *src = NULL;
    struct ms_scan *sc = NULL;
    char id[700], qualified[420], run[32];
    const char *kind = o->kind != NULL ? o->kind : "backfill";
    const char *where = o->where != NULL && o->where[0] != '\0' ? o->where : NULL;
    int64_t chunk = o->chunk_size > 0 ? o->chunk_size : b->cfg->sync_snapshot_chunk_size;
    bson_t stored = BSON_INITIALIZER, cursor = BSON_INITIALIZER;
    bool found = false, ok = false;
    int64_t started = ms_clock_mono_ms(), last_show = 0, run_started_wall = ms_clock_wall_ms();
    uint64_t base_rows = 0, dead0, mark = 0;
    int failures = 0;
    struct pending pend = {.set = false};
    struct ms_pipeline_stats st;

    memset(res, 0, sizeof(*res));
    res->estimate = -1;
    if (!ms_pipeline_find_table(b->p, spec, &pt)) {
        ms_error_set(err, MS_ERR_CONFIG, MS_CONFIG_BAD_VALUE,
                     "%s is not a replicated table (or does not exist)", spec);
        return false;
    }
    snprintf(qualified, sizeof(qualified), "%s.%s", pt.db, pt.name);
    if (where != NULL) {
        snprintf(id, sizeof(id), "%s:%s:%s:%016" PRIx64, b->cfg->sync_pipeline, kind, qualified,
                 fnv1a(where));
    } else {
        snprintf(id, sizeof(id), "%s:%s:%s", b->cfg->sync_pipeline, kind, qualified);
    }
    if (!o->fresh && !ms_sink_state_load(b->sink, id, &stored, &found, err)) {
        goto done;
    }
    if (found) {
        bson_iter_t it;
        char state[32] = "";
        if (bson_iter_init_find(&it, &stored, "state") && BSON_ITER_HOLDS_UTF8(&it)) {
            snprintf(state, sizeof(state), "%s", bson_iter_utf8(&it, NULL));
        }
        if (strcmp(state, "done") == 0 && strcmp(kind, "snapshot") == 0) {
            res->skipped = true;
            ok = true;
            ms_log(MS_LOG_INFO, "%s: snapshot already done", qualified);
            goto done;
        }
        if (strcmp(state, "running") == 0) {
            bson_iter_t c;
            if (bson_iter_init_find(&it, &stored, "cursor") && BSON_ITER_HOLDS_DOCUMENT(&it)) {
                uint32_t len;
                const uint8_t *data;
                bson_t sub;
                bson_iter_document(&it, &len, &data);
                if (bson_init_static(&sub, data, len)) {
                    bson_concat(&cursor, &sub);
                }
            }
            if (bson_iter_init_find(&c, &stored, "rows") && BSON_ITER_HOLDS_INT64(&c)) {
                base_rows = (uint64_t)bson_iter_int64(&c);
            }
            if (bson_iter_init_find(&c, &stored, "started_at") && BSON_ITER_HOLDS_DATE_TIME(&c)) {
                run_started_wall = bson_iter_date_time(&c);
            }
            res->resumed = true;
        }
    }

    src = ms_source_new(b->cfg, pt.vo);
    sc = src != NULL ? ms_scan_new(src, pt.db, pt.name, pt.key, pt.nkey, where) : NULL;
    if (sc == NULL) {
        ms_error_set(err, MS_ERR_SYSTEM, ENOMEM, "out of memory");
        goto done;
    }
    if (!ms_scan_seek(sc, &cursor, err)) {
        goto done;
    }
    res->estimate = ms_source_estimate_rows(src, pt.db, pt.name, err);
    ms_error_clear(err);
    random_run(run, sizeof(run));
    res->watermarks = b->watermarks;
    ms_log_kv(MS_LOG_INFO,
              ((struct ms_log_field[]){MS_LF_STR("run", run), MS_LF_INT("chunk_size", chunk),
                                       MS_LF_INT("estimate", res->estimate),
                                       MS_LF_INT("resumed_at_rows", (int64_t)base_rows),
                                       MS_LF_STR("watermarks", b->watermarks ? "on" : "off")}),
              "%s: %s %s%s", qualified, res->resumed ? "resuming the" : "starting a", kind,
              where != NULL ? " (with --where)" : "");
    ms_pipeline_get_stats(b->p, &st);
    dead0 = st.dead_lettered;
    pthread_mutex_lock(&b->mu);
    snprintf(b->current, sizeof(b->current), "%s", qualified);
    b->cur_rows = base_rows;
    b->cur_estimate = res->estimate;
    pthread_mutex_unlock(&b->mu);

    for (;;) {
        struct chunk_ctx cc = {.b = b, .db = pt.db, .table = pt.name};
        size_t n = 0;
        bson_t prog = BSON_INITIALIZER, cur = BSON_INITIALIZER;
        bool wm = b->watermarks;
        bool chunk_ok;

        if ((o->stop != NULL && *o->stop) || (b->ext_stop != NULL && *b->ext_stop)) {
            ms_error_set(err, MS_ERR_SYSTEM, ECANCELED,
                         "%s: stopped after %" PRIu64 " rows (progress kept: run it again to "
                         "go on)",
                         qualified, base_rows + res->rows);
            break;
        }
        snprintf(cc.position, sizeof(cc.position), "%s %s chunk %" PRIu64, kind, run,
                 res->chunks + 1);
        ms_error_clear(err);
        chunk_ok = !wm || watermark(b, "snapshot-window-open", qualified, run,
                                    (int64_t)res->chunks + 1, err);
        if (chunk_ok) {
            chunk_ok = ms_scan_chunk(sc, (size_t)chunk, on_row, &cc, &n, err);
        }
        if (wm || !chunk_ok) {
            /* whatever was queued is written before the window closes */
            if (!ms_pipeline_barrier(b->p, err)) {
                break; /* the pipeline failed or stops: its error */
            }
        } else if (!ms_pipeline_mark(b->p, &mark, err)) {
            break;
        }
        /* without a window to close, the next chunk is read while this one's last rows are
         * written: its progress is saved once they are (pend) */
        if (chunk_ok && wm) {
            chunk_ok = watermark(b, "snapshot-window-close", qualified, run,
                                 (int64_t)res->chunks + 1, err);
        }
        res->rows += cc.rows;
        res->dead += cc.bad;
        if (!chunk_ok) {
            /* rows delivered before the failure are written; the cursor is after them */
            if (!err->retryable || ++failures > (int)b->cfg->sync_max_retries + 5) {
                ms_error_prefix(err, "%s", qualified);
                break;
            }
            ms_log(MS_LOG_WARN, "%s: %s; retrying the chunk", qualified, err->msg);
            {
                struct timespec ts = {0, 200 * 1000000L * (failures < 10 ? failures : 10)};
                nanosleep(&ts, NULL);
            }
            if (wm) {
                struct ms_error rerr = {0};
                watermarks_reconnect(b, &rerr);
            }
            continue;
        }
        failures = 0;
        res->chunks++;
        ms_scan_cursor(sc, &cur);
        BSON_APPEND_UTF8(&prog, "kind", kind);
        BSON_APPEND_UTF8(&prog, "table", qualified);
        if (where != NULL) {
            BSON_APPEND_UTF8(&prog, "where", where);
        }
        BSON_APPEND_UTF8(&prog, "state", n < (size_t)chunk ? "done" : "running");
        BSON_APPEND_DOCUMENT(&prog, "cursor", &cur);
        BSON_APPEND_INT64(&prog, "rows", (int64_t)(base_rows + res->rows));
        BSON_APPEND_INT64(&prog, "chunks", (int64_t)res->chunks);
        BSON_APPEND_UTF8(&prog, "run", run);
        BSON_APPEND_DATE_TIME(&prog, "started_at", run_started_wall);
        bson_destroy(&cur);
        if (wm || n < (size_t)chunk) {
            /* saved now: after the barrier, or the last chunk (after the one before it) */
            ok = save_pending(b, id, &pend, err) &&
                 (wm || ms_pipeline_wait_mark(b->p, mark, err)) &&
                 ms_sink_state_save(b->sink, id, &prog, err);
            bson_destroy(&prog);
        } else {
            ok = save_pending(b, id, &pend, err);
            if (ok) {
                pend.mark = mark;
                bson_copy_to(&prog, &pend.prog);
                pend.set = true;
            }
            bson_destroy(&prog);
        }
        if (!ok) {
            break;
        }
        ok = false;
        pthread_mutex_lock(&b->mu);
        b->cur_rows = base_rows + res->rows;
        pthread_mutex_unlock(&b->mu);
        if (n < (size_t)chunk) {
            ok = true; /* the end */
            break;
        }
        if (o->progress != MS_BACKFILL_QUIET &&
            ms_clock_mono_ms() - last_show >= (o->progress == MS_BACKFILL_BAR ? 200 : 5000)) {
            double secs = (double)(ms_clock_mono_ms() - started) / 1000.0;
            show_progress(o, qualified, base_rows + res->rows, res->estimate,
                          secs > 0 ? (double)res->rows / secs : 0, false);
            last_show = ms_clock_mono_ms();
        }
    }
    if (pend.set) {
        /* stopped or failed after a chunk whose progress waits: kept if it was written */
        struct ms_error perr = {0};
        if (!save_pending(b, id, &pend, &perr)) {
            ms_log(MS_LOG_DEBUG, "%s: the last chunk's progress is not saved (%s)", qualified,
                   perr.msg);
            bson_destroy(&pend.prog);
        }
    }
    res->seconds = (double)(ms_clock_mono_ms() - started) / 1000.0;
    res->rows_total = base_rows + res->rows;
    ms_pipeline_get_stats(b->p, &st);
    if (st.dead_lettered > dead0 + res->dead) {
        res->dead = st.dead_lettered - dead0; /* refused by the strategy, counted by the sink */
    }
    if (o->progress == MS_BACKFILL_BAR) {
        show_progress(o, qualified, res->rows_total, res->estimate,
                      res->seconds > 0 ? (double)res->rows / res->seconds : 0, true);
    }
    if (b->watermarks) {
        /* the daemon ignores deletes of the signal table: tidy up this run's rows (and those
         * of runs killed a day ago or more) */
        char sql[1200], q[2][420];
        MYSQL_STMT *del = mysql_stmt_init(b->conn);
        MYSQL_BIND par[1];
        unsigned long len = (unsigned long)strlen(run);

        ident(q[0], sizeof(q[0]), b->sig_db);
        ident(q[1], sizeof(q[1]), b->sig_name);
        snprintf(sql, sizeof(sql),
                 "DELETE FROM %s.%s WHERE run = ? OR created_at < NOW() - INTERVAL 1 DAY", q[0],
                 q[1]);
        memset(par, 0, sizeof(par));
        par[0].buffer_type = MYSQL_TYPE_STRING;
        par[0].buffer = run;
        par[0].length = &len;
        if (del == NULL || mysql_stmt_prepare(del, sql, (unsigned long)strlen(sql)) != 0 ||
            mysql_stmt_bind_param(del, par) != 0 || mysql_stmt_execute(del) != 0) {
            ms_log(MS_LOG_DEBUG, "tidying the signal table: %s",
                   del != NULL ? mysql_stmt_error(del) : "out of memory");
        }
        if (del != NULL) {
            mysql_stmt_close(del);
        }
    }
done:
    pthread_mutex_lock(&b->mu);
    b->current[0] = '\0';
    pthread_mutex_unlock(&b->mu);
    ms_scan_destroy(sc);
    ms_source_destroy(src);
    bson_destroy(&stored);
    bson_destroy(&cursor);
    return ok;
}

/* ---- the daemon's worker ---- */

/* Logs how a snapshot of table ended and keeps it for the status. */
static void record_last(struct ms_backfill *b, const char *table,
                        const struct ms_backfill_result *r, bool ok, const struct ms_error *err)
{
    if (ok) {
        ms_log_kv(MS_LOG_INFO,
                  ((struct ms_log_field[]){MS_LF_INT("rows", (int64_t)r->rows_total),
                                           MS_LF_INT("dead_lettered", (int64_t)r->dead),
                                           MS_LF_INT("ms", (int64_t)(r->seconds * 1000))}),
                  "%s: snapshot %s", table, r->skipped ? "was already done" : "done");
    } else {
        ms_log(MS_LOG_ERROR, "snapshot of %s: %s", table, err->msg);
    }
    pthread_mutex_lock(&b->mu);
    bson_reinit(&b->last);
    BSON_APPEND_UTF8(&b->last, "table", table);
    BSON_APPEND_BOOL(&b->last, "ok", ok);
    BSON_APPEND_INT64(&b->last, "rows", (int64_t)r->rows_total);
    BSON_APPEND_INT64(&b->last, "dead_lettered", (int64_t)r->dead);
    BSON_APPEND_DOUBLE(&b->last, "seconds", r->seconds);
    BSON_APPEND_DATE_TIME(&b->last, "finished_at", ms_clock_wall_ms());
    if (!ok) {
        BSON_APPEND_UTF8(&b->last, "error", err->msg);
    }
    pthread_mutex_unlock(&b->mu);
}

static bool keep_key(void *u, const char *collection, const bson_t *id)
{
    return ms_pipeline_key_seen(u, collection, id);
}

/* After a re-snapshot of every primary table (the stream held): deletes the documents that no
 * row was copied to, those of rows deleted while the binlog was lost. */
static bool sweep(struct ms_backfill *b, struct ms_error *err)
{
    const char *const *colls;
    size_t n;
    uint64_t total = 0;

    if (!ms_pipeline_barrier(b->p, err)) {
        return false;
    }
    n = ms_pipeline_keys_collections(b->p, &colls);
    for (size_t i = 0; i < n; i++) {
        uint64_t deleted = 0;
        if (!ms_sink_sweep(b->sink, colls[i], keep_key, b->p, &deleted, err)) {
            return false;
        }
        total += deleted;
        ms_log_kv(MS_LOG_INFO,
                  ((struct ms_log_field[]){MS_LF_STR("collection", colls[i]),
                                           MS_LF_INT("deleted", (int64_t)deleted)}),
                  "re-snapshot sweep: documents no row maps to any more deleted");
    }
    pthread_mutex_lock(&b->mu);
    b->swept = (int64_t)total;
    pthread_mutex_unlock(&b->mu);
    return true;
}

/* The initial snapshot: every primary table, then the stream. */
static void initial_snapshot(struct ms_backfill *b)
{
    const char *reason = ms_pipeline_snapshot_reason(b->p);
    char id[300];
    bson_t state = BSON_INITIALIZER;
    bool found = false, resume = false, ok = true;
    /* after a purged checkpoint, documents of rows deleted meanwhile must go: every row's
     * document is noted and the others are swept at the end */
    bool sweeps = ms_pipeline_snapshot_sweeps(b->p);
    struct ms_error err = {0};

    snprintf(id, sizeof(id), "%s:initial-snapshot", b->cfg->sync_pipeline);
    if (reason == NULL) {
        bson_iter_t it;
        if (ms_sink_state_load(b->sink, id, &state, &found, &err) && found &&
            bson_iter_init_find(&it, &state, "state") && BSON_ITER_HOLDS_UTF8(&it) &&
            strcmp(bson_iter_utf8(&it, NULL), "running") == 0) {
            resume = true; /* a restart cut the last one short */
            sweeps = bson_iter_init_find(&it, &state, "sweep") && BSON_ITER_HOLDS_BOOL(&it) &&
                     bson_iter_bool(&it);
        }
        bson_destroy(&state);
        if (!resume) {
            ms_pipeline_start_stream(b->p);
            return;
        }
        reason = "resuming the snapshot a restart cut short";
        if (sweeps) {
            /* the keys noted before the restart are gone, and the sweep needs every row's */
            reason = "the re-snapshot a restart cut short, again from its start for the sweep";
            resume = false;
        }
    } else {
        bson_destroy(&state);
        bson_init(&state);
        BSON_APPEND_UTF8(&state, "state", "running");
        BSON_APPEND_UTF8(&state, "reason", reason);
        BSON_APPEND_BOOL(&state, "sweep", sweeps);
        BSON_APPEND_DATE_TIME(&state, "started_at", ms_clock_wall_ms());
        if (!ms_sink_state_save(b->sink, id, &state, &err)) {
            ms_log(MS_LOG_ERROR, "initial snapshot: %s", err.msg);
            bson_destroy(&state);
            ms_pipeline_start_stream(b->p);
            return;
        }
        bson_destroy(&state);
    }
    ms_log(MS_LOG_INFO, "initial snapshot (%s): copying the replicated tables, then streaming",
           reason);
    if (sweeps) {
        ms_pipeline_keys_begin(b->p);
    }
    for (size_t i = 0; ok && i < ms_pipeline_table_count(b->p) && !b->stop; i++) {
        struct ms_pipeline_table pt;
        struct ms_backfill_opts o = {
            .kind = "snapshot", .fresh = !resume, .progress = MS_BACKFILL_LINES, .stop = &b->stop};
        struct ms_backfill_result r;
        char spec[420];

        if (!ms_pipeline_table_at(b->p, i, &pt) || !pt.primary) {
            continue;
        }
        snprintf(spec, sizeof(spec), "%s.%s", pt.db, pt.name);
        ok = ms_backfill_table(b, spec, &o, &r, &err);
        record_last(b, spec, &r, ok, &err);
    }
    if (ok && !b->stop && sweeps) {
        ok = sweep(b, &err);
    }
    ms_pipeline_keys_end(b->p);
    if (ok && !b->stop) {
        bson_init(&state);
        BSON_APPEND_UTF8(&state, "state", "done");
        BSON_APPEND_DATE_TIME(&state, "finished_at", ms_clock_wall_ms());
        if (!ms_sink_state_save(b->sink, id, &state, &err)) {
            ms_log(MS_LOG_ERROR, "initial snapshot: %s", err.msg);
        }
        bson_destroy(&state);
        ms_log(MS_LOG_INFO, "initial snapshot done: streaming from the position taken before it");
    } else if (!ok) {
        ms_log(MS_LOG_ERROR,
               "initial snapshot failed (%s): streaming anyway; the snapshot resumes at the next "
               "start",
               err.msg);
    }
    if (!b->stop) {
        ms_pipeline_start_stream(b->p);
    }
}

static void *worker_main(void *arg)
{
    struct ms_backfill *b = arg;

    initial_snapshot(b);
    for (;;) {
        char *spec;
        struct ms_backfill_opts o = {
            .kind = "snapshot", .fresh = true, .progress = MS_BACKFILL_LINES, .stop = &b->stop};
        struct ms_backfill_result r;
        struct ms_error err = {0};
        bool ok;

        pthread_mutex_lock(&b->mu);
        while (b->nqueued == 0 && !b->stop) {
            pthread_cond_wait(&b->cv, &b->mu);
        }
        if (b->stop) {
            pthread_mutex_unlock(&b->mu);
            break;
        }
        spec = b->queued[0];
        memmove(b->queued, b->queued + 1, (b->nqueued - 1) * sizeof(char *));
        b->nqueued--;
        snprintf(b->current, sizeof(b->current), "%s", spec);
        pthread_mutex_unlock(&b->mu);
        ok = ms_backfill_table(b, spec, &o, &r, &err);
        record_last(b, spec, &r, ok, &err);
        free(spec);
    }
    return NULL;
}

bool ms_backfill_start(struct ms_backfill *b, volatile sig_atomic_t *stop, struct ms_error *err)
{
    b->ext_stop = stop;
    if (pthread_create(&b->thread, NULL, worker_main, b) != 0) {
        ms_error_set(err, MS_ERR_SYSTEM, errno, "cannot start the snapshot thread");
        return false;
    }
    b->started = true;
    return true;
}

static bool enqueue(struct ms_backfill *b, const char *spec, bool again, struct ms_error *err);

bool ms_backfill_enqueue(struct ms_backfill *b, const char *spec, struct ms_error *err)
{
    return enqueue(b, spec, false, err);
}

bool ms_backfill_enqueue_again(struct ms_backfill *b, const char *spec, struct ms_error *err)
{
    return enqueue(b, spec, true, err);
}

static bool enqueue(struct ms_backfill *b, const char *spec, bool again, struct ms_error *err)
{
    struct ms_pipeline_table pt;
    char qualified[420];
    bool dup = false;

    if (!ms_pipeline_find_table(b->p, spec, &pt)) {
        ms_error_set(err, MS_ERR_CONFIG, MS_CONFIG_BAD_VALUE, "%s is not a replicated table", spec);
        return false;
    }
    snprintf(qualified, sizeof(qualified), "%s.%s", pt.db, pt.name);
    pthread_mutex_lock(&b->mu);
    dup = !again && strcmp(b->current, qualified) == 0;
    for (size_t i = 0; i < b->nqueued; i++) {
        dup |= strcmp(b->queued[i], qualified) == 0;
    }
    if (dup || b->nqueued == MAX_QUEUED) {
        pthread_mutex_unlock(&b->mu);
        ms_error_set(err, MS_ERR_HTTP, 409,
                     dup ? "a snapshot of %s is already queued or running"
                         : "too many snapshots queued (%s refused)",
                     qualified);
        return false;
    }
    b->queued[b->nqueued++] = strdup(qualified);
    pthread_cond_signal(&b->cv);
    pthread_mutex_unlock(&b->mu);
    ms_log(MS_LOG_INFO, "snapshot of %s queued", qualified);
    return true;
}

void ms_backfill_status(struct ms_backfill *b, bson_t *out)
{
    bson_t q;

    pthread_mutex_lock(&b->mu);
    BSON_APPEND_UTF8(out, "state", b->current[0] != '\0' ? "running" : "idle");
    if (b->current[0] != '\0') {
        BSON_APPEND_UTF8(out, "table", b->current);
        BSON_APPEND_INT64(out, "rows", (int64_t)b->cur_rows);
        BSON_APPEND_INT64(out, "estimate", b->cur_estimate);
    }
    BSON_APPEND_ARRAY_BEGIN(out, "queued", &q);
    for (size_t i = 0; i < b->nqueued; i++) {
        char k[16];
        snprintf(k, sizeof(k), "%zu", i);
        BSON_APPEND_UTF8(&q, k, b->queued[i]);
    }
    bson_append_array_end(out, &q);
    if (!bson_empty(&b->last)) {
        BSON_APPEND_DOCUMENT(out, "last", &b->last);
    }
    if (b->swept >= 0) {
        BSON_APPEND_INT64(out, "swept", b->swept);
    }
    pthread_mutex_unlock(&b->mu);
}

void ms_backfill_stop(struct ms_backfill *b)
{
    if (b == NULL || !b->started) {
        return;
    }
    pthread_mutex_lock(&b->mu);
    b->stop = 1;
    pthread_cond_broadcast(&b->cv);
    pthread_mutex_unlock(&b->mu);
    pthread_join(b->thread, NULL);
    b->started = false;
}

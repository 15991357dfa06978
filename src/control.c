/* The control plane bound to the pipeline (include/mysync/control.h). */
#define MS_LOG_DOMAIN "control"

#include "mysync/control.h"
#include "mysync/poller.h"

#include "mysync/backfill.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "mysync/log.h"

struct ms_control {
    _Atomic(struct ms_pipeline *) p;         /* NULL while starting */
    _Atomic(struct ms_backfill *) snapshots; /* POST /sync/snapshot; NULL: none */
    struct ms_scheduler *sched;              /* poll mode (set before p is published) */
    struct ms_poller *poller;
    char mode[16];
    char mode_reason[160];
};

/* ---- rendering ------------------------------------------------------------------------- */

void ms_control_iso_time(int64_t ms, char *out, size_t outsz)
{
    time_t secs = (time_t)(ms / 1000);
    struct tm tm;

    gmtime_r(&secs, &tm);
    snprintf(out, outsz, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900, tm.tm_mon + 1,
             tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, (int)(ms % 1000));
}

/* key: the time as ISO-8601 UTC, or null for 0 ("not yet"). */
static void append_time(bson_t *doc, const char *key, int64_t ms)
{
    char iso[40];

    if (ms <= 0) {
        BSON_APPEND_NULL(doc, key);
        return;
    }
    ms_control_iso_time(ms, iso, sizeof(iso));
    BSON_APPEND_UTF8(doc, key, iso);
}

static void append_u64(bson_t *doc, const char *key, uint64_t v)
{
    BSON_APPEND_INT64(doc, key, v > INT64_MAX ? INT64_MAX : (int64_t)v);
}

double ms_control_lag_seconds(const struct ms_control_view *v)
{
    int64_t lag;

    if (!v->ready || v->stats.idle || v->stats.checkpoint_event_ms <= 0) {
        return 0;
    }
    lag = v->now_ms - v->stats.checkpoint_event_ms;
    return lag > 0 ? (double)lag / 1000.0 : 0;
}

/* Bulk writes acknowledged per write attempted (1 before the first). */
static double success_rate(const struct ms_pipeline_stats *s)
{
    return s->write_attempts > 0 ? (double)s->batches / (double)s->write_attempts : 1.0;
}

static const char *state_of(const struct ms_control_view *v)
{
    if (!v->ready) {
        return "starting";
    }
    if (v->stats.fatal) {
        return "failed";
    }
    if (v->has_schedule && v->schedule.paused_by_error) {
        return "failed";
    }
    return v->stats.paused ? "paused" : "running";
}

void ms_control_status(const struct ms_control_view *v, bson_t *out)
{
    const struct ms_pipeline_stats *s = &v->stats;
    bson_t sub, tab;

    BSON_APPEND_UTF8(out, "state", state_of(v));
    BSON_APPEND_BOOL(out, "sync_enabled", v->ready && !s->paused);
    BSON_APPEND_BOOL(out, "paused", s->paused);
    BSON_APPEND_UTF8(out, "mode", v->mode != NULL ? v->mode : "");
    BSON_APPEND_UTF8(out, "mode_reason", v->mode_reason != NULL ? v->mode_reason : "");
    if (v->has_schedule) {
        append_time(out, "last_sync", v->schedule.last_ok_ms);
        if (v->schedule.paused) {
            BSON_APPEND_NULL(out, "next_sync");
        } else {
            append_time(out, "next_sync", v->schedule.next_ms);
        }
    } else {
        append_time(out, "last_sync", s->last_checkpoint_ms);
        BSON_APPEND_NULL(out, "next_sync"); /* binlog mode is continuous */
    }
    if (s->interval_seconds % 60 == 0) {
        BSON_APPEND_INT64(out, "sync_interval_minutes", s->interval_seconds / 60);
    } else {
        BSON_APPEND_DOUBLE(out, "sync_interval_minutes", (double)s->interval_seconds / 60.0);
    }
    BSON_APPEND_INT64(out, "sync_interval_seconds", s->interval_seconds);
    BSON_APPEND_INT64(out, "tables_synced", (int64_t)v->ntables);
    BSON_APPEND_DOCUMENT_BEGIN(out, "tables", &sub);
    for (size_t i = 0; i < v->ntables; i++) {
        const struct ms_pipeline_table_stats *t = &v->tables[i];
        BSON_APPEND_DOCUMENT_BEGIN(&sub, t->name, &tab);
        append_u64(&tab, "inserted", t->inserted);
        append_u64(&tab, "updated", t->updated);
        append_u64(&tab, "deleted", t->deleted);
        append_u64(&tab, "dead_lettered", t->dead_lettered);
        append_time(&tab, "last_event", t->last_event_ms);
        bson_append_document_end(&sub, &tab);
    }
    bson_append_document_end(out, &sub);
    BSON_APPEND_DOCUMENT_BEGIN(out, "collections", &sub);
    for (size_t i = 0; i < v->ncollections; i++) {
        const struct ms_pipeline_collection_stats *c = &v->collections[i];
        BSON_APPEND_DOCUMENT_BEGIN(&sub, c->name, &tab);
        append_u64(&tab, "upserted", c->upserted);
        append_u64(&tab, "matched", c->matched);
        append_u64(&tab, "deleted", c->deleted);
        append_u64(&tab, "dead_lettered", c->dead_lettered);
        bson_append_document_end(&sub, &tab);
    }
    bson_append_document_end(out, &sub);
    BSON_APPEND_DOCUMENT_BEGIN(out, "binlog", &sub);
    BSON_APPEND_UTF8(&sub, "file", s->file);
    append_u64(&sub, "position", s->pos);
    BSON_APPEND_UTF8(&sub, "gtid", s->gtid);
    append_time(&sub, "event_time", s->checkpoint_event_ms);
    bson_append_document_end(out, &sub);
    BSON_APPEND_DOUBLE(out, "lag_seconds", ms_control_lag_seconds(v));
    append_u64(out, "queue_depth", s->queue_depth);
    BSON_APPEND_DOCUMENT_BEGIN(out, "sync_metrics", &sub);
    append_u64(&sub, "total_records", s->ops_applied);
    BSON_APPEND_DOUBLE(&sub, "last_sync_duration", s->last_batch_seconds);
    BSON_APPEND_DOUBLE(&sub, "success_rate", success_rate(s));
    append_u64(&sub, "events", s->events);
    append_u64(&sub, "changes", s->changes);
    append_u64(&sub, "batches", s->batches);
    append_u64(&sub, "dead_lettered", s->dead_lettered);
    append_u64(&sub, "retries", s->retries);
    append_u64(&sub, "reconnects", s->reconnects);
    bson_append_document_end(out, &sub);
}

static uint64_t error_count(const struct ms_pipeline_stats *s)
{
    uint64_t n = 0;

    for (size_t i = 0; i < MS_PIPELINE_NCOMPONENTS; i++) {
        n += s->errors[i];
    }
    return n;
}

bool ms_control_health(const struct ms_control_view *v, bson_t *out)
{
    const struct ms_pipeline_stats *s = &v->stats;
    bool healthy = v->ready && !s->fatal && s->mysql_up && s->mongodb_up &&
                   !(v->has_schedule && v->schedule.paused_by_error);
    const char *last;

    if (!v->ready) {
        last = "starting";
    } else if (s->fatal || (v->has_schedule && v->schedule.paused_by_error)) {
        last = "failed";
    } else if (!s->mysql_up || !s->mongodb_up) {
        last = "retrying";
    } else {
        last = s->paused ? "paused" : "ok";
    }
    BSON_APPEND_UTF8(out, "status", healthy ? "ok" : v->ready ? "unhealthy" : "starting");
    BSON_APPEND_UTF8(out, "mysql_connection", v->ready && s->mysql_up ? "ok" : "down");
    BSON_APPEND_UTF8(out, "mongodb_connection", v->ready && s->mongodb_up ? "ok" : "down");
    BSON_APPEND_UTF8(out, "last_sync_status", last);
    append_time(out, "last_success", s->last_success_ms);
    append_u64(out, "pending_operations", s->queue_depth + s->pending_ops);
    append_u64(out, "error_count", error_count(s));
    BSON_APPEND_BOOL(out, "paused", s->paused);
    if (v->has_schedule &&
        (v->schedule.paused_by_error || v->schedule.failed_streak > 0 || v->schedule.attempt > 0)) {
        BSON_APPEND_UTF8(out, "last_error", v->schedule.last_error.msg);
    }
    return healthy;
}

void ms_control_metrics(const struct ms_control_view *v, struct ms_metrics *m)
{
    const struct ms_pipeline_stats *s = &v->stats;
    static const char *const results[] = {"upserted", "matched", "deleted", "dead_lettered"};

    if (v->has_schedule) {
        const struct ms_scheduler_status *st = &v->schedule;
        ms_metrics_family(m, "mysync_poll_runs_total", "counter",
                          "Polling runs (poll mode), by result: ok, failed (gave up), retry.");
        ms_metrics_u64(m, "mysync_poll_runs_total", (const char *[]){"result", "ok", NULL},
                       st->runs_ok);
        ms_metrics_u64(m, "mysync_poll_runs_total", (const char *[]){"result", "failed", NULL},
                       st->runs_failed);
        ms_metrics_u64(m, "mysync_poll_runs_total", (const char *[]){"result", "retry", NULL},
                       st->retries);
        ms_metrics_family(m, "mysync_poll_failing", "gauge",
                          "1 while polling runs fail (retrying, or paused by repeated failures).");
        ms_metrics_u64(m, "mysync_poll_failing", NULL,
                       st->paused_by_error || st->failed_streak > 0 || st->attempt > 0);
        ms_metrics_family(m, "mysync_poll_next_run_timestamp_seconds", "gauge",
                          "When the next polling run is due (Unix time).");
        ms_metrics_u64(m, "mysync_poll_next_run_timestamp_seconds", NULL,
                       st->next_ms > 0 ? (uint64_t)(st->next_ms / 1000) : 0);
    }
    ms_metrics_family(m, "mysync_events_total", "counter",
                      "Row changes read from the binlog, by table (db.table) and operation.");
    for (size_t i = 0; i < v->ntables; i++) {
        const struct ms_pipeline_table_stats *t = &v->tables[i];
        const uint64_t n[] = {t->inserted, t->updated, t->deleted};
        const char *const ops[] = {"insert", "update", "delete"};
        for (size_t k = 0; k < 3; k++) {
            ms_metrics_u64(m, "mysync_events_total",
                           (const char *[]){"table", t->name, "op", ops[k], NULL}, n[k]);
        }
    }
    ms_metrics_family(m, "mysync_documents_written_total", "counter",
                      "Writes MongoDB acknowledged, by collection and result (upserted: a new "
                      "document, matched: an existing one, deleted, dead_lettered: refused).");
    for (size_t i = 0; i < v->ncollections; i++) {
        const struct ms_pipeline_collection_stats *c = &v->collections[i];
        const uint64_t n[] = {c->upserted, c->matched, c->deleted, c->dead_lettered};
        for (size_t k = 0; k < 4; k++) {
            ms_metrics_u64(m, "mysync_documents_written_total",
                           (const char *[]){"collection", c->name, "result", results[k], NULL},
                           n[k]);
        }
    }
    ms_metrics_family(m, "mysync_batch_size", "histogram",
                      "Writes per bulk write to MongoDB (after coalescing).");
    ms_metrics_histogram_write(m, "mysync_batch_size", NULL, &s->batch_size);
    ms_metrics_family(m, "mysync_batch_duration_seconds", "histogram",
                      "Duration of a bulk write to MongoDB, retries included.");
    ms_metrics_histogram_write(m, "mysync_batch_duration_seconds", NULL, &s->batch_seconds);
    ms_metrics_family(m, "mysync_replication_lag_seconds", "gauge",
                      "Seconds between now and the event time of the last transaction "
                      "checkpointed; 0 when caught up and idle.");
    ms_metrics_double(m, "mysync_replication_lag_seconds", NULL, ms_control_lag_seconds(v));
    ms_metrics_family(m, "mysync_queue_depth", "gauge",
                      "Items waiting between the binlog reader and the MongoDB writer.");
    ms_metrics_u64(m, "mysync_queue_depth", NULL, s->queue_depth);
    ms_metrics_family(m, "mysync_pending_operations", "gauge",
                      "Operations batched in the writer, not yet written.");
    ms_metrics_u64(m, "mysync_pending_operations", NULL, s->pending_ops);
    ms_metrics_family(m, "mysync_dead_letters_total", "counter",
                      "Changes written to the dead-letter collection instead of their target.");
    ms_metrics_u64(m, "mysync_dead_letters_total", NULL, s->dead_lettered);
    ms_metrics_family(m, "mysync_errors_total", "counter",
                      "Errors by component (mysql: binlog connection, re-reads; mongodb: "
                      "failed bulk writes that were retried; decode; strategy; other).");
    for (int c = 0; c < MS_PIPELINE_NCOMPONENTS; c++) {
        ms_metrics_u64(m, "mysync_errors_total",
                       (const char *[]){"component", ms_pipeline_component_name(c), NULL},
                       s->errors[c]);
    }
    ms_metrics_family(m, "mysync_up", "gauge",
                      "1 when the server is reachable as the pipeline last saw it (mysql: the "
                      "binlog connection; mongodb: the last write, checkpoint or probe).");
    ms_metrics_u64(m, "mysync_up", (const char *[]){"target", "mysql", NULL},
                   v->ready && s->mysql_up);
    ms_metrics_u64(m, "mysync_up", (const char *[]){"target", "mongodb", NULL},
                   v->ready && s->mongodb_up);
    ms_metrics_family(m, "mysync_last_success_timestamp_seconds", "gauge",
                      "Unix time of the last acknowledged bulk write or checkpoint (0: none "
                      "since start).");
    ms_metrics_double(m, "mysync_last_success_timestamp_seconds", NULL,
                      (double)s->last_success_ms / 1000.0);
    ms_metrics_family(m, "mysync_checkpoint_timestamp_seconds", "gauge",
                      "Event time (unix) of the transaction the checkpoint points after.");
    ms_metrics_double(m, "mysync_checkpoint_timestamp_seconds", NULL,
                      (double)s->checkpoint_event_ms / 1000.0);
    ms_metrics_family(m, "mysync_binlog_events_total", "counter", "Binlog events read.");
    ms_metrics_u64(m, "mysync_binlog_events_total", NULL, s->events);
    ms_metrics_family(m, "mysync_write_retries_total", "counter",
                      "Bulk writes repeated after a transient MongoDB failure.");
    ms_metrics_u64(m, "mysync_write_retries_total", NULL, s->retries);
    ms_metrics_family(m, "mysync_source_reconnects_total", "counter",
                      "Reconnections of the binlog reader to the source.");
    ms_metrics_u64(m, "mysync_source_reconnects_total", NULL, s->reconnects);
    ms_metrics_family(m, "mysync_paused", "gauge", "1 while replication is paused.");
    ms_metrics_u64(m, "mysync_paused", NULL, s->paused);
    ms_metrics_family(m, "mysync_sync_interval_seconds", "gauge",
                      "The sync interval (the polling scheduler's period).");
    ms_metrics_u64(m, "mysync_sync_interval_seconds", NULL,
                   s->interval_seconds > 0 ? (uint64_t)s->interval_seconds : 0);
    ms_metrics_family(m, "mysync_poll_runs_total", "counter",
                      "Polling runs by result (polling mode; 0 in binlog mode).");
    ms_metrics_u64(m, "mysync_poll_runs_total", (const char *[]){"result", "success", NULL}, 0);
    ms_metrics_u64(m, "mysync_poll_runs_total", (const char *[]){"result", "failure", NULL}, 0);
}

/* ---- the HTTP control interface -------------------------------------------------------- */

/* A view of c's pipeline; tables and collections are malloc'd (view_cleanup). */
static struct ms_pipeline *view_take(struct ms_control *c, struct ms_control_view *v)
{
    struct ms_pipeline *p = atomic_load(&c->p);
    struct timespec ts;

    memset(v, 0, sizeof(*v));
    clock_gettime(CLOCK_REALTIME, &ts);
    v->now_ms = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
    v->mode = "";
    v->mode_reason = "";
    if (p == NULL) {
        return NULL;
    }
    v->ready = true;
    v->mode = c->mode; /* written before p was published */
    v->mode_reason = c->mode_reason;
    ms_pipeline_get_stats(p, &v->stats);
    if (c->sched != NULL) {
        v->has_schedule = true;
        ms_scheduler_status(c->sched, &v->schedule);
        v->stats.paused = v->stats.paused || v->schedule.paused;
        /* no binlog connection: the source is down while runs fail on it */
        v->stats.mysql_up = !((v->schedule.failed_streak > 0 || v->schedule.attempt > 0) &&
                              v->schedule.last_error.domain == MS_ERR_MYSQL);
        v->stats.interval_seconds = v->schedule.interval_s;
    }
    struct ms_pipeline_table_stats *t;
    struct ms_pipeline_collection_stats *col;
    v->ntables = ms_pipeline_get_tables(p, &t);
    v->tables = t;
    v->ncollections = ms_pipeline_get_collections(p, &col);
    v->collections = col;
    return p;
}

static void view_cleanup(struct ms_control_view *v)
{
    free((void *)v->tables);
    free((void *)v->collections);
}

static void on_status(void *ctx, bson_t *out)
{
    struct ms_control_view v;

    struct ms_control *c = ctx;
    struct ms_backfill *b = atomic_load(&c->snapshots);

    view_take(ctx, &v);
    ms_control_status(&v, out);
    if (v.ready && v.has_schedule) {
        const struct ms_scheduler_status *st = &v.schedule;
        bson_t sub;
        BSON_APPEND_DOCUMENT_BEGIN(out, "poll", &sub);
        BSON_APPEND_BOOL(&sub, "running", st->running);
        BSON_APPEND_BOOL(&sub, "paused_by_error", st->paused_by_error);
        append_u64(&sub, "runs", st->runs);
        append_u64(&sub, "runs_ok", st->runs_ok);
        append_u64(&sub, "runs_failed", st->runs_failed);
        append_u64(&sub, "retries", st->retries);
        BSON_APPEND_INT64(&sub, "failed_streak", st->failed_streak);
        append_time(&sub, "last_start", st->last_start_ms);
        append_time(&sub, "last_end", st->last_end_ms);
        if (st->last_error.domain != MS_ERR_NONE) {
            BSON_APPEND_UTF8(&sub, "last_error", st->last_error.msg);
            append_time(&sub, "last_error_at", st->last_error_ms);
        } else {
            BSON_APPEND_NULL(&sub, "last_error");
        }
        if (c->poller != NULL) {
            ms_poller_status(c->poller, &sub);
        }
        bson_append_document_end(out, &sub);
    }
    view_cleanup(&v);
    if (b != NULL) {
        bson_t sub;
        BSON_APPEND_DOCUMENT_BEGIN(out, "snapshot", &sub);
        ms_backfill_status(b, &sub);
        bson_append_document_end(out, &sub);
    }
}

static bool on_health(void *ctx, bson_t *out)
{
    struct ms_control_view v;
    bool healthy;

    view_take(ctx, &v);
    healthy = ms_control_health(&v, out);
    view_cleanup(&v);
    return healthy;
}

static void on_metrics(void *ctx, struct ms_metrics *out)
{
    struct ms_control_view v;

    view_take(ctx, &v);
    ms_control_metrics(&v, out);
    view_cleanup(&v);
}

static struct ms_pipeline *running(struct ms_control *c, struct ms_error *err)
{
    struct ms_pipeline *p = atomic_load(&c->p);

    if (p == NULL) {
        ms_error_set(err, MS_ERR_HTTP, 503, "starting: replication is not running yet");
    }
    return p;
}

/* Pause or resume (both idempotent); out: the new state. */
static bool set_paused(struct ms_control *c, bool pause, bson_t *out, struct ms_error *err)
{
    struct ms_pipeline *p = running(c, err);
    bool paused;

    if (p == NULL) {
        return false;
    }
    if (pause) {
        ms_pipeline_pause(p);
        if (c->sched != NULL) {
            ms_scheduler_pause(c->sched);
        }
    } else {
        ms_pipeline_resume(p);
        if (c->sched != NULL) {
            ms_scheduler_resume(c->sched);
        }
    }
    paused = ms_pipeline_is_paused(p);
    BSON_APPEND_BOOL(out, "paused", paused);
    BSON_APPEND_BOOL(out, "sync_enabled", !paused);
    return true;
}

static bool on_pause(void *ctx, bson_t *out, struct ms_error *err)
{
    return set_paused(ctx, true, out, err);
}

static bool on_resume(void *ctx, bson_t *out, struct ms_error *err)
{
    return set_paused(ctx, false, out, err);
}

static bool on_trigger(void *ctx, const char *table, bson_t *out, struct ms_error *err)
{
    struct ms_control *c = ctx;
    struct ms_pipeline *p = running(c, err);

    if (p == NULL) {
        return false;
    }
    if (ms_pipeline_is_paused(p)) {
        ms_error_set(err, MS_ERR_HTTP, 409, "replication is paused: POST /sync/resume first");
        return false;
    }
    if (!ms_pipeline_trigger(p, table, err)) {
        err->domain = MS_ERR_HTTP;
        err->code = 404;
        return false;
    }
    BSON_APPEND_BOOL(out, "accepted", true);
    BSON_APPEND_UTF8(out, "mode", c->mode);
    if (c->sched != NULL) {
        bool now = ms_scheduler_trigger(c->sched);
        BSON_APPEND_UTF8(out, "action",
                         now ? "poll every table now"
                             : "poll every table again right after the run "
                               "under way");
    } else {
        BSON_APPEND_UTF8(out, "action", "flush the pending batch and save the checkpoint");
    }
    if (table != NULL) {
        BSON_APPEND_UTF8(out, "table", table);
    } else {
        BSON_APPEND_NULL(out, "table");
    }
    return true;
}

static bool on_snapshot(void *ctx, const char *table, bson_t *out, struct ms_error *err)
{
    struct ms_control *c = ctx;
    struct ms_backfill *b = atomic_load(&c->snapshots);

    if (running(c, err) == NULL) {
        return false;
    }
    if (b == NULL) {
        ms_error_set(err, MS_ERR_HTTP, 409, "snapshots need binlog mode");
        return false;
    }
    if (table == NULL) {
        ms_error_set(err, MS_ERR_HTTP, 400, "name the table: POST /sync/snapshot?table=NAME");
        return false;
    }
    if (!ms_backfill_enqueue(b, table, err)) {
        if (err->domain != MS_ERR_HTTP) {
            err->domain = MS_ERR_HTTP;
            err->code = 404;
        }
        return false;
    }
    BSON_APPEND_BOOL(out, "accepted", true);
    BSON_APPEND_UTF8(out, "table", table);
    BSON_APPEND_UTF8(out, "action", "snapshot the table beside the stream (watch /sync/status)");
    return true;
}

static bool on_set_interval(void *ctx, int64_t seconds, bson_t *out, struct ms_error *err)
{
    struct ms_pipeline *p = running(ctx, err);

    if (p == NULL) {
        return false;
    }
    if (((struct ms_control *)ctx)->sched != NULL &&
        !ms_scheduler_set_interval(((struct ms_control *)ctx)->sched, seconds, err)) {
        err->domain = MS_ERR_HTTP;
        err->code = 400;
        return false;
    }
    ms_pipeline_set_interval(p, seconds);
    BSON_APPEND_INT64(out, "sync_interval_seconds", seconds);
    if (seconds % 60 == 0) {
        BSON_APPEND_INT64(out, "sync_interval_minutes", seconds / 60);
    } else {
        BSON_APPEND_DOUBLE(out, "sync_interval_minutes", (double)seconds / 60.0);
    }
    return true;
}

struct ms_control *ms_control_new(void)
{
    struct ms_control *c = calloc(1, sizeof(*c));

    if (c == NULL) {
        abort();
    }
    atomic_init(&c->p, NULL);
    return c;
}

void ms_control_attach(struct ms_control *c, struct ms_pipeline *p, const char *mode,
                       const char *mode_reason)
{
    snprintf(c->mode, sizeof(c->mode), "%s", mode);
    snprintf(c->mode_reason, sizeof(c->mode_reason), "%s", mode_reason);
    atomic_store(&c->p, p); /* after the strings: a reader that sees p sees them */
}

void ms_control_http(struct ms_control *c, struct ms_http_control *out)
{
    *out = (struct ms_http_control){
        .ctx = c,
        .status = on_status,
        .health = on_health,
        .metrics = on_metrics,
        .pause = on_pause,
        .resume = on_resume,
        .trigger = on_trigger,
        .snapshot = on_snapshot,
        .set_interval = on_set_interval,
    };
}

void ms_control_set_poll(struct ms_control *c, struct ms_scheduler *s, struct ms_poller *pl)
{
    c->sched = s;
    c->poller = pl;
}

void ms_control_set_snapshots(struct ms_control *c, struct ms_backfill *b)
{
    atomic_store(&c->snapshots, b);
}

void ms_control_destroy(struct ms_control *c)
{
    free(c);
}

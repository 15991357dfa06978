/* The control plane's view of the replication: binds the HTTP server's control interface
 * (struct ms_http_control) to a pipeline, and renders /sync/status, /sync/health and the
 * mysync_* metrics from a snapshot of its counters. The renderers are pure (a view in, a
 * document or text out), so they are unit-tested with crafted views.
 *
 * Lag: 0 when the pipeline is idle and caught up (nothing queued or batched, and the reader's
 * last event from the source was a heartbeat, i.e. the source has nothing newer); otherwise the
 * time since the event time of the last transaction whose checkpoint was saved. */
#ifndef MYSYNC_CONTROL_H
#define MYSYNC_CONTROL_H

#include <bson/bson.h>
#include <stdbool.h>
#include <stdint.h>

#include "mysync/http.h"
#include "mysync/metrics.h"
#include "mysync/pipeline.h"
#include "mysync/scheduler.h"

/* What the renderers read: one consistent snapshot. */
struct ms_control_view {
    bool ready;              /* false while the daemon starts (no pipeline yet) */
    const char *mode;        /* "binlog" ("poll" with the scheduler) */
    const char *mode_reason; /* why that mode, e.g. "SYNC_MODE=binlog" */
    int64_t now_ms;          /* wall clock, ms since the epoch */
    struct ms_pipeline_stats stats;
    const struct ms_pipeline_table_stats *tables;
    size_t ntables;
    const struct ms_pipeline_collection_stats *collections;
    size_t ncollections;
    /* poll mode: the scheduler's state (next_sync, runs, a failing or self-paused schedule) */
    bool has_schedule;
    struct ms_scheduler_status schedule;
};

double ms_control_lag_seconds(const struct ms_control_view *v);

/* /sync/status: out is an initialised, empty document. */
void ms_control_status(const struct ms_control_view *v, bson_t *out);

/* /sync/health: true when healthy (ready, no fatal error, both servers up). */
bool ms_control_health(const struct ms_control_view *v, bson_t *out);

/* Every mysync_* family (process_* and build info are the server's). */
void ms_control_metrics(const struct ms_control_view *v, struct ms_metrics *out);

/* "2026-11-22T23:30:00.123Z" (UTC), for ms since the epoch. */
void ms_control_iso_time(int64_t ms, char *out, size_t outsz);

struct ms_control;

struct ms_control *ms_control_new(void);

/* From now on the control plane serves p (borrowed: stop the HTTP server before destroying p).
 * Until then it answers "starting". mode and mode_reason are copied. */
void ms_control_attach(struct ms_control *c, struct ms_pipeline *p, const char *mode,
                       const char *mode_reason);

/* The HTTP control interface bound to c (c must outlive the server). */
void ms_control_http(struct ms_control *c, struct ms_http_control *out);

/* POST /sync/snapshot queues snapshots on b, and /sync/status shows them (b borrowed; NULL:
 * none). */
struct ms_backfill;
void ms_control_set_snapshots(struct ms_control *c, struct ms_backfill *b);

/* Poll mode: pause, resume, trigger and the interval drive the scheduler s too, and
 * /sync/status shows it and the poller's tables (both borrowed; set before the pipeline is
 * attached). */
struct ms_poller;
void ms_control_set_poll(struct ms_control *c, struct ms_scheduler *s, struct ms_poller *pl);

void ms_control_destroy(struct ms_control *c);

#endif

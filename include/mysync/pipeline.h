/* The replication pipeline: reader -> decoder -> strategy -> batcher -> sink -> checkpoint.
 * A reader thread reads the binlog, decodes the rows of the configured tables and maps them to
 * MongoDB operations through the strategies; a sink thread batches them (SYNC_BATCH_SIZE
 * operations or SYNC_FLUSH_MS, whichever first; changes to one _id coalesce in order), writes
 * them, and saves the checkpoint only once everything up to a transaction boundary is
 * acknowledged. A bounded queue joins the two: a slow sink stops the reader. */
#ifndef MYSYNC_PIPELINE_H
#define MYSYNC_PIPELINE_H

#include <signal.h>
#include <stdbool.h>
#include <stdint.h>

#include "mysync/config.h"
#include "mysync/error.h"

struct ms_pipeline;

/* Counters and state, for logs, /sync/status and /metrics (a consistent copy). */
struct ms_pipeline_stats {
    uint64_t events;         /* binlog events read */
    uint64_t changes;        /* row changes of the configured tables */
    uint64_t ops_applied;    /* MongoDB operations acknowledged (after coalescing) */
    uint64_t batches;        /* bulk flushes */
    uint64_t dead_lettered;  /* changes sent to the dead-letter collection */
    uint64_t retries;        /* write retries after transient failures */
    uint64_t reconnects;     /* reader reconnections */
    uint64_t queue_depth;    /* items waiting between reader and sink */
    char file[256];          /* last checkpoint */
    uint64_t pos;
    char gtid[512];
    int64_t checkpoint_event_ms; /* event time of the last checkpoint (ms since the epoch) */
    int64_t checkpoint_wall_ms;  /* when it was saved */
};

/* Checks both servers and the configured tables (each must exist and have a primary key or a
 * configured key), loads the checkpoint and checks that its binlog file is still on the server.
 * Errors say what to fix; err->code carries a sysexits code for the CLI (EX_CONFIG for bad
 * tables, EX_UNAVAILABLE for unreachable servers or a purged checkpoint). */
struct ms_pipeline *ms_pipeline_new(const struct ms_config *cfg, struct ms_error *err);

/* Replicates until *stop becomes non-zero (then flushes what was read, saves the checkpoint
 * and returns true) or a fatal error (returns false; the checkpoint stays at the last
 * acknowledged transaction). Lost connections to either server are retried, never fatal. */
bool ms_pipeline_run(struct ms_pipeline *p, volatile sig_atomic_t *stop, struct ms_error *err);

void ms_pipeline_get_stats(struct ms_pipeline *p, struct ms_pipeline_stats *out);

void ms_pipeline_destroy(struct ms_pipeline *p);

#endif

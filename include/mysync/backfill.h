/* Snapshots and backfill: copies tables through a running pipeline (the same strategies,
 * batching, dead letters and counters as the stream), a chunk at a time in key order with
 * keyset pagination (ms_scan), resumable from progress stored in MongoDB beside the
 * checkpoints.
 *
 * Beside a daemon streaming the same tables, each chunk is framed by watermark rows in the
 * signal table (sync.signal_table): open, read the chunk, write it and wait until MongoDB
 * acknowledged it, close. The streaming daemon sees both watermarks in the binlog and queues its
 * own operations on that table's documents from inside the window again after the close, so a
 * chunk row read before a concurrent change and written after it never stays (README
 * "Snapshots beside the stream"; the idea of Netflix's DBLog and Debezium's incremental
 * snapshots, turned around: the chunk is written before the close, not at it).
 *
 * Used by `mysync --full` (a pipeline of its own, backfill_only), the daemon's initial snapshot
 * (sync.snapshot) and POST /sync/snapshot (a worker thread beside the stream). */
#ifndef MYSYNC_BACKFILL_H
#define MYSYNC_BACKFILL_H

#include <bson/bson.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>

#include "mysync/config.h"
#include "mysync/error.h"
#include "mysync/pipeline.h"

enum ms_backfill_progress {
    MS_BACKFILL_QUIET = 0, /* log lines at the start and end only */
    MS_BACKFILL_LINES,     /* a progress line every few seconds (not a terminal) */
    MS_BACKFILL_BAR,       /* a live bar on stderr (a terminal) */
};

struct ms_backfill_opts {
    const char *where;  /* extra SQL condition (--where), NULL: every row */
    int64_t chunk_size; /* rows per chunk; 0: sync.snapshot_chunk_size */
    enum ms_backfill_progress progress;
    /* "backfill" (mysync --full: a finished one starts over when run again) or "snapshot" (the
     * daemon's: a finished table is skipped until a new snapshot is started with fresh) */
    const char *kind;
    bool fresh;                  /* ignore stored progress: start at the first row */
    volatile sig_atomic_t *stop; /* non-zero: stop after the current chunk (progress kept) */
};

struct ms_backfill_result {
    uint64_t rows;       /* rows read in this run */
    uint64_t rows_total; /* rows of the whole backfill (resumed runs included) */
    uint64_t dead;       /* rows dead-lettered (unreadable or refused by the strategy) */
    uint64_t chunks;
    int64_t estimate; /* the server's row estimate at the start, -1 unknown */
    double seconds;
    bool resumed;    /* went on from stored progress */
    bool skipped;    /* already done (kind "snapshot") */
    bool watermarks; /* chunks were framed by watermarks */
};

struct ms_backfill;

/* Connections of its own to both servers (the pipeline p, borrowed, must be running while
 * tables are copied). Creates the signal table when it may (a user without CREATE gets no
 * watermarks, logged once). */
struct ms_backfill *ms_backfill_new(const struct ms_config *cfg, struct ms_pipeline *p,
                                    struct ms_error *err);
void ms_backfill_destroy(struct ms_backfill *b);

/* Copies one table ("t" or "db.t", a table p replicates). Errors: MS_ERR_CONFIG for a table
 * that is not replicated or a bad --where; MS_ERR_MYSQL/MONGO when a server fails for longer
 * than the retries; MS_ERR_SYSTEM ECANCELED when stopped (progress kept: run it again). */
bool ms_backfill_table(struct ms_backfill *b, const char *spec, const struct ms_backfill_opts *o,
                       struct ms_backfill_result *res, struct ms_error *err);

/* ---- the daemon's snapshot worker ---- */

/* Starts the worker thread. initial: first the daemon's initial snapshot of every primary
 * table (reason from ms_pipeline_snapshot_reason(), or the resumption of one a restart cut
 * short), then ms_pipeline_start_stream(). Without one the stream starts at once. stop: the
 * daemon's stop flag (snapshots end after their current chunk when it is set). */
bool ms_backfill_start(struct ms_backfill *b, volatile sig_atomic_t *stop, struct ms_error *err);

/* Queues a snapshot of one replicated table beside the stream (POST /sync/snapshot).
 * MS_ERR_CONFIG/MS_CONFIG_BAD_VALUE for a table not replicated; {MS_ERR_HTTP, 409} when it is
 * already queued or running. Thread-safe, returns at once. */
bool ms_backfill_enqueue(struct ms_backfill *b, const char *spec, struct ms_error *err);

/* The same for a table whose rows changed under a snapshot that may be running (DDL): a running
 * one does not count, so another follows it; one already queued does (409). */
bool ms_backfill_enqueue_again(struct ms_backfill *b, const char *spec, struct ms_error *err);

/* {state: idle|running, table, rows, estimate, queued: [...], last: {table, rows, seconds,
 * dead, finished_at}} for /sync/status. Thread-safe. */
void ms_backfill_status(struct ms_backfill *b, bson_t *out);

/* Stops the worker after its current chunk and joins it. */
void ms_backfill_stop(struct ms_backfill *b);

#endif

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
#include "mysync/metrics.h"
#include "mysync/rows.h"
#include "mysync/strategy.h"
#include <bson/bson.h>

struct ms_pipeline;

/* Where errors come from, for mysync_errors_total{component} and /sync/health. */
enum ms_pipeline_component {
    MS_PIPELINE_MYSQL = 0, /* the source: lost or refused binlog connections, failed re-reads */
    MS_PIPELINE_MONGODB,   /* the target: bulk writes repeated after a transient failure */
    MS_PIPELINE_DECODE,    /* binlog events or row images that do not decode */
    MS_PIPELINE_STRATEGY,  /* rows a strategy could not map (dead-lettered) */
    MS_PIPELINE_OTHER,     /* anything else (system errors) */
    MS_PIPELINE_NCOMPONENTS
};

/* "mysql", "mongodb", "decode", "strategy", "other". */
const char *ms_pipeline_component_name(enum ms_pipeline_component c);

/* Counters and state, for logs, /sync/status and /metrics (a consistent copy). */
struct ms_pipeline_stats {
    uint64_t events;        /* binlog events read */
    uint64_t changes;       /* row changes of the configured tables */
    uint64_t ops_applied;   /* MongoDB operations acknowledged (after coalescing) */
    uint64_t batches;       /* bulk flushes */
    uint64_t dead_lettered; /* changes sent to the dead-letter collection */
    uint64_t retries;       /* write retries after transient failures */
    uint64_t reconnects;    /* reader reconnections */
    uint64_t queue_depth;   /* items waiting between reader and sink */
    char file[256];         /* last checkpoint */
    uint64_t pos;
    char gtid[512];
    int64_t checkpoint_event_ms; /* event time of the last checkpoint (ms since the epoch) */
    int64_t checkpoint_wall_ms;  /* when it was saved */

    /* For the control plane (/sync/status, /sync/health, /metrics). Times are wall clock, ms
     * since the epoch, 0 for "not yet". */
    bool paused;     /* ms_pipeline_pause(), or sync.enabled false at start-up */
    bool fatal;      /* replication stopped on an error */
    bool mysql_up;   /* the binlog connection works (false from a failure to the next connect) */
    bool mongodb_up; /* the last write, checkpoint or probe of MongoDB succeeded */
    bool idle;       /* nothing queued or batched, and the reader is at the source's end (a
                      * heartbeat came after its last event): caught up, lag 0 */
    uint64_t pending_ops;       /* operations batched in the sink, not yet written */
    int64_t interval_seconds;   /* sync interval (ms_pipeline_set_interval) */
    int64_t last_success_ms;    /* last acknowledged bulk write or checkpoint */
    int64_t last_checkpoint_ms; /* last checkpoint saved by this process */
    double last_batch_seconds;  /* duration of the last bulk write */
    uint64_t write_attempts;    /* bulk writes tried (batches + retries + failures) */
    uint64_t errors[MS_PIPELINE_NCOMPONENTS];
    struct ms_metrics_histogram batch_size;    /* writes per bulk write (after coalescing) */
    struct ms_metrics_histogram batch_seconds; /* duration of a bulk write, retries included */
};

/* One replicated table: the row changes read from the binlog (every table the pipeline
 * replicates, including tables that appear later when sync.tables is empty). */
struct ms_pipeline_table_stats {
    char name[160];    /* "db.table" */
    uint64_t inserted; /* row changes read, by kind */
    uint64_t updated;
    uint64_t deleted;
    uint64_t dead_lettered; /* changes that could not be mapped or completed (a re-read that
                             * failed); writes MongoDB refused count per collection */
    int64_t last_event_ms;  /* event time of the last change read; 0: none since start */
};

/* One target collection: what MongoDB acknowledged (mysync_documents_written_total). */
struct ms_pipeline_collection_stats {
    char name[128];
    uint64_t upserted;      /* upserts and $sets that inserted a document */
    uint64_t matched;       /* upserts and $sets that found their document */
    uint64_t deleted;       /* deletes that removed a document */
    uint64_t dead_lettered; /* writes MongoDB refused, now dead letters */
};

/* How a pipeline is used besides the daemon's plain streaming. */
struct ms_pipeline_opts {
    /* No binlog: rows come only from ms_pipeline_push_row() (mysync --full). No checkpoint is
     * read or written and the source's binlog may be off. */
    bool backfill_only;
    /* backfill_only: the tables to set up ("t" in mysql.database or "db.t") instead of the
     * configured ones (their tables: entries still route them). */
    const char *const *tables;
    size_t ntables;
    /* Streaming: the reader waits for ms_pipeline_start_stream() (a snapshot first). */
    bool defer_stream;
    /* backfill_only, for reading (mysync verify): creates no index; ms_pipeline_run is not
     * called. */
    bool read_only;
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

/* As ms_pipeline_new() with options (NULL: the defaults). */
struct ms_pipeline *ms_pipeline_new_opts(const struct ms_config *cfg,
                                         const struct ms_pipeline_opts *opts, struct ms_error *err);

/* Why the tables should be snapshotted before streaming (sync.snapshot): NULL when not; else
 * the reason ("first start", "the checkpoint's binlog was purged"). In the latter case the
 * pipeline starts at the source's current position, saved as the checkpoint. */
const char *ms_pipeline_snapshot_reason(const struct ms_pipeline *p);

/* True when the snapshot_reason is a purged checkpoint: documents of rows deleted while the
 * binlog was lost are still in MongoDB, so the snapshot should end with a sweep (below). */
bool ms_pipeline_snapshot_sweeps(const struct ms_pipeline *p);

/* ---- the sweep after a re-snapshot: documents no row maps to are deleted ----------------
 * ms_pipeline_keys_begin: from now on the sink notes the _id of every document written for rows
 * queued by ms_pipeline_push_row (REPLACE and SET upserts, resolves included), per collection
 * (8 bytes each). After ms_pipeline_barrier: ms_pipeline_keys_collections lists the collections
 * to sweep (those written, and those the primary tables' documents live in, so that a table
 * with no rows left is swept too) and ms_pipeline_key_seen says whether a document was written;
 * ms_pipeline_keys_end frees the keys. Only correct while nothing else writes those
 * collections (the stream held by opts.defer_stream), and only for a snapshot of every primary
 * table from its start. */
void ms_pipeline_keys_begin(struct ms_pipeline *p);
size_t ms_pipeline_keys_collections(struct ms_pipeline *p, const char *const **out);
bool ms_pipeline_key_seen(struct ms_pipeline *p, const char *collection, const bson_t *id);
void ms_pipeline_keys_end(struct ms_pipeline *p);

/* Lets a reader held by opts.defer_stream start (at the checkpoint). Thread-safe. */
void ms_pipeline_start_stream(struct ms_pipeline *p);

/* ---- producers: snapshots and backfill feed rows through the same strategies, batching,
 * dead letters and counters as the stream --------------------------------------------------- */

/* A replicated table, as a producer needs it (strings stable for the pipeline's life). */
struct ms_pipeline_table {
    const char *db, *name;
    const char *const *key; /* the columns identifying a row (primary key or sync.keys) */
    size_t nkey;
    const struct ms_value_opts *vo; /* the options its rows are decoded with */
    const char *strategy, *role;
    /* A snapshot of the table is needed for its documents: generic tables, and the first role
     * of an entity strategy (orders, not order_items: an order's snapshot reads its items). */
    bool primary;
};

/* The tables set up at start-up (index i < count); tables found later while streaming an empty
 * sync.tables are not listed. Thread-safe. */
size_t ms_pipeline_table_count(struct ms_pipeline *p);
bool ms_pipeline_table_at(struct ms_pipeline *p, size_t i, struct ms_pipeline_table *out);
/* spec: "t" (in mysql.database) or "db.t". false when the pipeline does not replicate it. */
bool ms_pipeline_find_table(struct ms_pipeline *p, const char *spec, struct ms_pipeline_table *out);

/* Queues a whole row of a replicated table as an insert (a snapshot row): the table's strategy
 * maps it (a row it refuses goes to the dead letters) and the sink writes it in queue order
 * with the stream's changes. position names it in dead letters and logs. likely_new: its
 * documents are probably not in MongoDB yet (a snapshot, not a poll), so they are written
 * insert-first (ms_write.insert_first; the result is the same either way). Blocks while the
 * queue is full; false when the pipeline failed (err says why). */
bool ms_pipeline_push_row(struct ms_pipeline *p, const char *db, const char *table,
                          const bson_t *row, const char *position, bool likely_new,
                          struct ms_error *err);

/* Queues the delete of a row (polling: a soft-deleted row, or one reconciliation found gone):
 * before holds at least the key columns (a whole row for entity strategies, whose deletes
 * read more than the key). As ms_pipeline_push_row otherwise. */
bool ms_pipeline_push_delete(struct ms_pipeline *p, const char *db, const char *table,
                             const bson_t *before, const char *position, struct ms_error *err);

/* What the table's strategy makes of a whole row (as a snapshot would queue it) without
 * writing anything: validation, map, and the resolves it asks for, with lookups into the
 * source as it is now. out (initialised by the caller) gets the operations to write (REPLACE,
 * SET, SET_MANY, DELETE). A row the strategy refuses: false with MS_ERR_STRATEGY (it would be
 * dead-lettered); a lookup that failed: false with its error (retryable for a lost
 * connection). For mysync verify: only while the pipeline is not running. */
bool ms_pipeline_expected_ops(struct ms_pipeline *p, const char *db, const char *table,
                              const bson_t *row, struct ms_ops *out, struct ms_error *err);

/* Queues a row that could not be read (why) for the dead letters. */
bool ms_pipeline_push_bad_row(struct ms_pipeline *p, const char *db, const char *table,
                              const struct ms_error *why, const char *position,
                              struct ms_error *err);

/* Waits until everything queued before the call is written and acknowledged by MongoDB (or
 * dead-lettered). false when the pipeline stops or fails first. */
bool ms_pipeline_barrier(struct ms_pipeline *p, struct ms_error *err);

/* ms_pipeline_barrier in two halves: mark queues the barrier (its number in *seq) and returns
 * at once; wait_mark waits until everything queued before mark seq is written. A producer
 * goes on reading while its last rows are written (backfill chunks without watermarks). */
bool ms_pipeline_mark(struct ms_pipeline *p, uint64_t *seq, struct ms_error *err);
bool ms_pipeline_wait_mark(struct ms_pipeline *p, uint64_t seq, struct ms_error *err);

/* Operations replayed at the close of snapshot watermark windows (see README "Snapshots"). */
uint64_t ms_pipeline_windows_replayed(struct ms_pipeline *p);

/* A consistent copy, taken under a lock that is never held during I/O: safe and quick from any
 * thread. */
void ms_pipeline_get_stats(struct ms_pipeline *p, struct ms_pipeline_stats *out);

/* Copies of the per-table and per-collection counters (malloc'd array in *out, free() it;
 * *out may be NULL when the count is 0). Thread-safe, no I/O. */
size_t ms_pipeline_get_tables(struct ms_pipeline *p, struct ms_pipeline_table_stats **out);
size_t ms_pipeline_get_collections(struct ms_pipeline *p,
                                   struct ms_pipeline_collection_stats **out);

/* Pause: the sink takes nothing more from the queue, writes nothing and saves no checkpoint
 * (a bulk write already under way finishes); the queue fills and the reader waits, so the
 * binlog position is held. Resume goes on from there: nothing is lost. Idempotent, thread-safe,
 * return at once. A stop while paused writes nothing more (the checkpoint stays; a restart
 * replays what was read). */
void ms_pipeline_pause(struct ms_pipeline *p);
void ms_pipeline_resume(struct ms_pipeline *p);
bool ms_pipeline_is_paused(struct ms_pipeline *p);

/* Binlog mode: asks the sink to write its pending batch and save the checkpoint now (within
 * 200 ms) instead of at the batch size or SYNC_FLUSH_MS. table ("t" in mysql.database, or
 * "db.t"; NULL: all) must be a replicated table: false with {MS_ERR_CONFIG,
 * MS_CONFIG_BAD_VALUE} otherwise. The flush covers every table either way. */
bool ms_pipeline_trigger(struct ms_pipeline *p, const char *table, struct ms_error *err);

/* The sync interval in seconds (sync.interval_*; the polling scheduler's period). Stored for
 * the scheduler and reported in the stats; binlog replication is continuous and ignores it. */
void ms_pipeline_set_interval(struct ms_pipeline *p, int64_t seconds);

/* Called from the reader thread when the stream shows DDL that changed a replicated table's rows
 * without row events (ALTER TABLE, the new name of a RENAME TABLE): snapshot(ctx, "db.t") should
 * copy the table again beside the stream (the daemon queues ms_backfill_enqueue_again). Set it
 * before ms_pipeline_run. TRUNCATE of a table with a collection of its own is followed by the
 * pipeline itself: the collection's documents are deleted in stream order. */
void ms_pipeline_on_ddl(struct ms_pipeline *p, void (*snapshot)(void *ctx, const char *table),
                        void *ctx);

void ms_pipeline_destroy(struct ms_pipeline *p);

#endif

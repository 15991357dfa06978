/* Timestamp polling (SYNC_MODE=poll, or auto without a usable binlog): each run reads, per
 * replicated table, the rows whose change column (sync.change_column, default updated_at) is
 * at or after where the previous run started, minus sync.poll_lookback, in keyset order on
 * (change column, key) so rows sharing one timestamp are never skipped, and feeds them through
 * a backfill_only pipeline (the same strategies, batching, dead letters and counters as the
 * stream). A row whose soft-delete column (sync.soft_delete_column, default deleted_at, where
 * the table has it) is not NULL is deleted. Every sync.reconcile_interval a run also compares
 * the keys of each table that owns documents with the documents' _ids and deletes those whose
 * row is gone (hard deletes).
 *
 * The tracker of each table (where the run started, its cursor, whether it finished) is saved
 * in _mysync_checkpoints (`<pipeline>:poll:db.t`) after every acknowledged chunk, so a restart
 * goes on inside an unfinished run, or from where the last finished one started. The first run
 * copies the whole table. */
#ifndef MYSYNC_POLLER_H
#define MYSYNC_POLLER_H

#include <bson/bson.h>
#include <signal.h>
#include <stdbool.h>

#include "mysync/config.h"
#include "mysync/error.h"
#include "mysync/pipeline.h"
#include "mysync/scheduler.h"

struct ms_poller;

/* Checks every table of p (a backfill_only pipeline, borrowed): its change column must exist
 * (else MS_ERR_CONFIG naming the option to set). Connections of its own to both servers. */
struct ms_poller *ms_poller_new(const struct ms_config *cfg, struct ms_pipeline *p,
                                volatile sig_atomic_t *stop, struct ms_error *err);
void ms_poller_destroy(struct ms_poller *pl);

/* One run over every table (an ms_scheduler_fn: arg is the poller). A lost connection is
 * MS_RUN_RETRY, anything else that stops the run MS_RUN_CRITICAL; rows that do not map go to
 * the dead letters and the run goes on. */
enum ms_run_result ms_poller_run(void *arg, struct ms_error *err);

/* {"tables": {"db.t": {rows_last_run, deleted_last_run, rows_total, last_run_at, from,
 * change_column, soft_delete_column, reconciled_at, reconcile_deleted}}} for /sync/status. */
void ms_poller_status(struct ms_poller *pl, bson_t *out);

#endif

/* mysync verify: compares a table's rows in the source with the documents its strategy would
 * write for them, as they are in MongoDB now.
 *
 * Three levels, cheapest first: counts (the source's COUNT(*) against the collection's
 * documents), then chunks of rows in key order (a keyset scan, as the backfill reads them)
 * whose expected documents are hashed and compared with the hash of the documents found under
 * the same _ids, then, only inside a chunk whose hashes differ, the keys themselves: missing
 * (no document), different (with the fields that differ), and, after a scan of the
 * collection's _ids, extra (a document that no row maps to). Documents compare as values: the
 * order of their fields does not matter, their types and array orders do.
 *
 * Expected documents come from the table's strategy exactly as a snapshot would write them
 * (ms_pipeline_expected_ops: validation, map, resolves reading the source now). Rows the
 * strategy refuses are counted, not compared (they sit in the dead letters). On a live source
 * rows change while they are compared: a difference on a row written in the last seconds may be
 * replication lag, so run verify again, or pause the writers, before acting on one. */
#ifndef MYSYNC_VERIFY_H
#define MYSYNC_VERIFY_H

#include <bson/bson.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "mysync/config.h"
#include "mysync/error.h"

struct ms_verify_opts {
    const char *table;           /* "t" (in mysql.database) or "db.t" */
    int64_t sample;              /* > 0: about this many rows chosen at random; 0: every row */
    int64_t chunk_size;          /* rows per chunk; 0: 1000 */
    size_t max_report;           /* keys listed per kind; 0: 20 */
    uint64_t seed;               /* the sample's seed; 0: from the clock */
    volatile sig_atomic_t *stop; /* non-zero: stop after the current chunk (MS_ERR_SYSTEM,
                                    ECANCELED) */
};

struct ms_verify_result {
    char table[300];      /* "db.t" */
    char collection[128]; /* where its documents are (the first collection the strategy wrote;
                             "" when no row was mapped) */
    uint64_t source_rows; /* COUNT(*) in the source */
    uint64_t documents;   /* documents in that collection */
    uint64_t rows_read;   /* rows scanned */
    uint64_t compared;    /* rows whose documents were compared (all but refused/unreadable,
                             or the sample) */
    uint64_t chunks, chunks_differ;
    uint64_t missing, different, extra; /* mismatches */
    uint64_t refused;                   /* rows the strategy refuses (dead letters) */
    uint64_t unreadable;                /* rows that do not decode (dead letters) */
    bool sampled;                       /* only a sample: no scan for extra documents */
    double seconds;
    /* {"missing": [{"collection", "_id"}...], "different": [{"collection", "_id", "fields":
     * [{"field", "source", "document"}]}...], "extra": [...], "refused": [{"_id", "reason"}]},
     * at most max_report entries each */
    bson_t details;
};

void ms_verify_result_cleanup(struct ms_verify_result *r);

/* Connects to both servers (read only: nothing is written to either) and compares. true when
 * the comparison ran to its end (res says whether it matched: missing + different + extra ==
 * 0); false with err (MS_ERR_CONFIG for a table that is not replicated or not the one holding
 * its documents, e.g. order_items whose documents are the orders'; MS_ERR_MYSQL/MONGO for the
 * servers). res is initialised either way and must be cleaned up. */
bool ms_verify_table(const struct ms_config *cfg, const struct ms_verify_opts *o,
                     struct ms_verify_result *res, struct ms_error *err);

/* The report an operator reads (counts, then each mismatch with what to do), as text; or the
 * result as one JSON document (json). */
void ms_verify_print(const struct ms_verify_result *r, bool json, FILE *out);

#endif

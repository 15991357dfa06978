/* The MongoDB side: the client pool built from the configuration, server checks, and the
 * batched idempotent writer (coalescing per _id, one bulk write per collection, retries of
 * transient errors, dead letters for documents MongoDB refuses and for changes the pipeline
 * cannot map), the checkpoint store and index creation. */
#ifndef MYSYNC_SINK_H
#define MYSYNC_SINK_H

#include <mongoc/mongoc.h>
#include <stdbool.h>

#include "mysync/config.h"
#include "mysync/error.h"

struct ms_mongo_info {
    char version[64]; /* buildInfo.version */
    int32_t max_wire_version;
};

/* Calls mongoc_init() once per process; safe to call repeatedly. */
void ms_sink_global_init(void);

/* A client pool for cfg->mongodb_uri (appname "mysync", 5 s server selection unless the URI
 * says otherwise). NULL on a bad URI. Free with mongoc_client_pool_destroy(). */
mongoc_client_pool_t *ms_sink_pool_new(const struct ms_config *cfg, struct ms_error *err);

/* Pings the server and reads its version. err is retryable for network failures. */
bool ms_sink_ping(mongoc_client_pool_t *pool, struct ms_mongo_info *info, struct ms_error *err);

/* ---- The writer (src/sink/writer.c): batched, idempotent writes, dead letters, checkpoints ----
 */

/* Largest document MongoDB stores (its BSON object limit); larger ones are dead-lettered
 * without a round trip. */
#define MS_SINK_MAX_DOC_SIZE (16 * 1024 * 1024)

enum ms_write_kind {
    MS_WRITE_UPSERT = 1,   /* replaceOne({_id}, doc, {upsert: true}) */
    MS_WRITE_DELETE = 2,   /* deleteOne({_id}) */
    MS_WRITE_SET = 3,      /* updateOne({_id}, {$set: doc}, {upsert: true}): some fields only */
    MS_WRITE_SET_MANY = 4, /* updateMany(filter, {$set: doc}), no upsert: a barrier (every write
                              before it in the call is applied first, every write after it
                              later); never coalesced. doc's names may be dotted paths
                              ({"category.name": v} sets one field of a subdocument) */
};

/* One change for one document. Everything is borrowed for the duration of the call. */
struct ms_write {
    enum ms_write_kind kind;
    const char *collection;
    const bson_t *id;     /* exactly {"_id": <value>} (scalar, or a subdocument for composite keys);
                           * SET_MANY: the filter (any non-empty query document) */
    const bson_t *doc;    /* UPSERT: the full document with the same _id; SET: the fields to set,
                           * without _id (a row image with some columns); SET_MANY: the non-empty
                           * fields or paths to set, none of them _id or a path into it; ignored
                           * for DELETE */
    const char *source;   /* for dead letters: "db.table" (may be NULL) */
    const char *position; /* for dead letters: "file:pos" or the GTID of the change (may be NULL) */
    /* UPSERT: the document is probably new (a snapshot row, an inserted row). It is sent as an
     * insert and replaced only where its _id exists (a duplicate-key refusal): the same result
     * as the upsert, cheaper for the server when the _id is new. A collection where half of
     * the inserts of a bulk were refused gets upserts for its next 64 bulks. */
    bool insert_first;
};

struct ms_sink_opts {
    int max_retries;        /* retries of a transient failure; < 0: forever (never skip data) */
    int64_t retry_delay_ms; /* first backoff (0: 1000), doubling, +-20 % jitter, capped at 30 s */
    const char *dead_letter_collection; /* NULL: "_mysync_dead_letters" */
    const char *checkpoint_collection;  /* NULL: "_mysync_checkpoints" */
};

/* One collection's share of an ms_sink_apply() result. */
struct ms_sink_collection_result {
    const char *collection; /* borrowed from the writes */
    uint64_t upserted, matched, deleted, dead_lettered;
};

/* What one ms_sink_apply() did (meaningful when it returns true). After a transient failure
 * the replay of an already applied write counts as matched, not upserted. */
struct ms_sink_result {
    uint64_t upserted;      /* upserts and sets that inserted a new document */
    uint64_t matched;       /* upserts and sets that found their document (changed or not), plus
                             * the documents every SET_MANY matched */
    uint64_t modified;      /* of those, documents whose content changed */
    uint64_t deleted;       /* deletes that removed a document (deleting a missing one is fine) */
    uint64_t dead_lettered; /* writes refused by MongoDB, now in the dead-letter collection */
    uint64_t retries;       /* bulk writes repeated after a transient failure */
};

struct ms_sink;

/* A sink writing into `database` through `pool` (borrowed: it must outlive the sink). Does no
 * I/O, so it succeeds while MongoDB is down. opts NULL: retry forever, 1 s first delay, default
 * collection names. */
struct ms_sink *ms_sink_new(mongoc_client_pool_t *pool, const char *database,
                            const struct ms_sink_opts *opts, struct ms_error *err);
void ms_sink_destroy(struct ms_sink *s);

/* Makes every call on s stop retrying (for shutdown; it cannot be undone): a retry loop that is
 * waiting returns at once, and later transient failures return at once, both with
 * err {MS_ERR_SYSTEM, ECANCELED, retryable}. Thread-safe; calls already in a server round trip
 * finish it first (at most the pool's serverSelectionTimeoutMS / socket timeout). */
void ms_sink_cancel(struct ms_sink *s);

/* Ends the backoff waits of retry loops now (each tries again at once; the backoff goes on
 * growing): for a caller that knows the server is back (a ping succeeded), so a write does not
 * wait out a long delay after an outage. Thread-safe. */
void ms_sink_wake(struct ms_sink *s);

/* Deletes every document of collection (a TRUNCATE of its only source table), retrying
 * transient errors like the writes; *deleted (may be NULL) gets the count. */
bool ms_sink_delete_all(struct ms_sink *s, const char *collection, uint64_t *deleted,
                        struct ms_error *err);

/* Deletes the documents of collection that keep(u, collection, id) does not want, id being
 * {"_id": value} as read: the sweep after a re-snapshot. Reads only
 * the _ids; deletes by _id in unordered bulks; retries transient errors like the writes.
 * *deleted (may be NULL) gets the count. */
bool ms_sink_sweep(struct ms_sink *s, const char *collection,
                   bool (*keep)(void *u, const char *collection, const bson_t *id), void *u,
                   uint64_t *deleted, struct ms_error *err);

/* Applies n writes. Writes to one (collection, _id) coalesce, in order, into one (int32, int64
 * and integral double _ids that are equal numbers are the same _id, as in MongoDB):
 *   anything, then UPSERT -> the UPSERT;     anything, then DELETE -> the DELETE;
 *   UPSERT, then SET      -> the UPSERT with the SET's fields applied (a named field keeps its
 *                            place with the new value, new fields are appended);
 *   SET, then SET         -> one SET of both sets of fields (the later value wins);
 *   DELETE, then SET      -> an UPSERT of {_id, the SET's fields} (the row was re-created).
 * A SET never removes or changes a field it does not name; one with no fields makes sure the
 * document exists ({$setOnInsert: {_id}}). Then per collection, in order of first appearance,
 * unordered bulk writes: upserts and sets, then deletes, each bulk sized to be one write command
 * (maxWriteBatchSize, maxMessageSizeBytes).
 *
 * A SET_MANY splits the call: the writes before it are applied as above (coalesced among
 * themselves only, duplicate keys retried, dead letters written), then the SET_MANY alone
 * (updateMany(filter, {$set: doc}), no upsert: nothing happens when nothing matches), then the
 * writes after it. It is not atomic: one refused midway (a duplicate key on the second of two
 * documents) may have changed some of the matching documents, as in MongoDB.
 *
 * An upsert or set refused for a duplicate key (11000, a unique secondary index) is tried once
 * more after every other write of its segment (the writes between two SET_MANYs), since
 * coalescing may have reordered changes that never broke uniqueness at the source (P1 sku A->C,
 * P2 B->A, P1 C->B: P1's final B cannot go in before P2 leaves B, nor P2's A before P1 leaves
 * A). The retry replays each such document through its state after each of its writes, all in
 * the order of the writes (P1 C, P2 A, P1 B), one statement at a time; a state before the last
 * that is refused again is skipped. Only when the last one is refused again is the write
 * dead-lettered; the document may then hold one of its intermediate states (each a state the
 * row had at the source) rather than its state before the call. FerretDB v1 fails the whole
 * command (InternalError, "UNIQUE constraint failed") when an update of an existing document
 * hits a unique index: the writer writes that bulk again in halves, down to the refused
 * statements, and treats their refusal as 11000, so the outcome is the same as on MongoDB.
 *
 * Transient failures (network, server selection, not primary, shutdown, write concern errors,
 * the RetryableWriteError label, ...) repeat the bulk with backoff: replaying replaces, $sets
 * and deletes is idempotent. When max_retries is exhausted or the sink is cancelled: false with
 * err->retryable. A write MongoDB refuses for itself (a write error on that one operation:
 * duplicate key on a unique index, an invalid field name, _id changed, a document over
 * MS_SINK_MAX_DOC_SIZE (checked before sending, error code 10334), a SET field name that $set
 * would misread ("", "$x", or "a.b", a path), ...) goes to the dead-letter collection and the
 * rest is applied. A reply that does not account for every statement
 * (FerretDB v1 stops an unordered bulk at the first refusal and names the wrong statement) is
 * resolved by writing that bulk again in halves, down to the refused statements (upserts and
 * sets alike). A SET_MANY that the server or the writer refuses (a duplicate key, a path that
 * cannot be created, a field path with an empty part or a part starting with '$', a filter
 * FerretDB refuses with BadValue or FailedToParse) is dead-lettered the same way. Any other
 * error (authorization, bad namespace, ...): false, not retryable. An invalid write (unknown
 * kind, no collection, id not {_id: v}, UPSERT or SET without a document, a SET document naming
 * _id, a SET_MANY with an empty or missing filter or document or setting _id) fails the whole
 * call before any I/O: false, {MS_ERR_SYSTEM, EINVAL}, not retryable. Returns true when every
 * write is applied or dead-lettered.
 *
 * A dead letter is upserted under a key derived from the change, so replaying a batch does not
 * duplicate it:
 *   {_id: {collection, doc_id, position}, collection, source, position,
 *    op: "upsert"|"set"|"delete"|"set_many", doc_id, error: {code, codeName?, message}, at: Date,
 *    document_size?, document? | document_bson?}
 * For a SET_MANY, doc_id is its filter: embedded at the top level (as text, like _id.doc_id,
 * when the server refuses it embedded: FerretDB with dotted or '$' keys), and its canonical
 * Extended JSON text in _id (no server takes every filter inside an _id).
 * It describes the write as sent, after coalescing (position: the last change's; a SET merged
 * into an upsert is op "upsert" with the merged document). error is the server's, or {code: 22,
 * codeName: "ClientValidation"} when libmongoc or the writer refuses the statement itself
 * (top-level '$' keys, empty keys, the SET field names and SET_MANY paths above), {code: 11000,
 * codeName: "DuplicateKey"} for FerretDB's InternalError on a unique index, or {code: 10334,
 * codeName: "BSONObjectTooLarge"} for the size check. document_size is set for upserts, sets
 * and set_manys. document is the refused document (for a SET or SET_MANY: its fields), embedded;
 * document_bson the same as raw BSON bytes (binary) when the server refuses to store it embedded
 * (FerretDB: invalid keys, dotted keys, nested arrays); neither when it would not fit into 16 MB
 * with the envelope.
 *
 * res may be NULL. Calls on one sink may run in parallel (each takes its own pooled client). */
bool ms_sink_apply(struct ms_sink *s, const struct ms_write *w, size_t n,
                   struct ms_sink_result *res, struct ms_error *err);

/* ms_sink_apply(), also counting per collection: per (room for per_cap entries, the caller's)
 * receives one entry per collection written, in order of first appearance, and *nper how many
 * (collections beyond per_cap are in res's totals only). Meaningful when it returns true. */
bool ms_sink_apply_per_collection(struct ms_sink *s, const struct ms_write *w, size_t n,
                                  struct ms_sink_result *res, struct ms_sink_collection_result *per,
                                  size_t per_cap, size_t *nper, struct ms_error *err);

/* Dead-letters a change that never reached MongoDB (the pipeline could not map it, e.g. a row
 * lacking its primary key), in the same collection as ms_sink_apply()'s dead letters:
 *   {_id: {source, position, doc_hash}, collection, source, position, op,
 *    error: {code: why->code, codeName: ms_error_domain_name(why->domain), message: why->msg},
 *    at: Date, document_size?, document? | document_bson?}
 * doc_hash is 16 hex digits of a 64-bit FNV-1a hash of doc's bytes (null without doc), so
 * calling again with the same arguments (a replay) rewrites the same dead letter rather than
 * adding one; the rows of one event differ by it. collection and position (NULL: stored as
 * null) and doc (NULL: no document) may be NULL; source ("db.table") and op ("insert",
 * "update", "delete", ...) are required; strings given are non-empty UTF-8. document, document_bson
 * and document_size as in ms_sink_apply() (doc is embedded, or raw when the server refuses it
 * embedded, or omitted when too large). Transient failures are retried as in ms_sink_apply()
 * (false with err->retryable when the retries run out or the sink is cancelled); bad arguments:
 * false, {MS_ERR_SYSTEM, EINVAL}. Everything is borrowed for the duration of the call. */
bool ms_sink_dead_letter(struct ms_sink *s, const char *collection, const char *source,
                         const char *position, const char *op, const bson_t *doc,
                         const struct ms_error *why, struct ms_error *err);

struct ms_checkpoint {
    char file[256];        /* binlog file name, "" in GTID or polling mode */
    uint64_t pos;          /* at most INT64_MAX */
    char gtid[512];        /* GTID set or "" */
    int64_t event_time_ms; /* time of the last applied event (ms since the epoch) */
};

/* One document per pipeline in the checkpoint collection:
 * {_id: pipeline, file, pos, gtid, event_time: Date, updated_at: Date}. Saved with
 * replaceOne(upsert) and write concern {w: "majority", j: true, wtimeout: 10 s}; when the server
 * refuses that concern (no journal, not a replica set), with its default from then on.
 * Transient failures retry as in ms_sink_apply(). */
bool ms_sink_checkpoint_save(struct ms_sink *s, const char *pipeline,
                             const struct ms_checkpoint *cp, struct ms_error *err);

/* Other state kept beside the checkpoints (snapshot and backfill progress, poll trackers): one
 * document per id in the checkpoint collection, written as a whole (doc's fields, plus _id and
 * updated_at) with the checkpoint's write concern. load appends the stored document to out
 * (initialised by the caller); *found false when there is none. */
bool ms_sink_state_save(struct ms_sink *s, const char *id, const bson_t *doc, struct ms_error *err);
bool ms_sink_state_load(struct ms_sink *s, const char *id, bson_t *out, bool *found,
                        struct ms_error *err);

/* Reads the checkpoint of pipeline: *found = false (and cp zeroed) when there is none. */
bool ms_sink_checkpoint_load(struct ms_sink *s, const char *pipeline, struct ms_checkpoint *cp,
                             bool *found, struct ms_error *err);

/* Creates an index (createIndexes) unless the same one exists; name NULL: MongoDB's default
 * ("sku_1"). An existing index of that name with other keys or options is an error (except on
 * FerretDB v1, which compares names only). ms_sink_ensure_index_opts() with {unique: true} or
 * nothing. */
bool ms_sink_ensure_index(struct ms_sink *s, const char *collection, const bson_t *keys,
                          bool unique, const char *name, struct ms_error *err);

/* The same with opts (NULL: none; borrowed) merged into the index specification, e.g.
 * {unique: true, sparse: true} or {unique: true, partialFilterExpression: {sku: {$type:
 * "string"}}}; opts naming "key" or "name": {MS_ERR_SYSTEM, EINVAL}. Calling it again with the
 * same specification is fine. A server refusing an option: false, {MS_ERR_MONGO, its code}, not
 * retryable. What the servers do with documents lacking the field (the rig's two tested in
 * it_sink index_options; MongoDB as documented, for reference):
 *   MongoDB            unique: one such document (a missing field indexes as null); unique +
 *                      sparse: any number; unique + partialFilterExpression: those outside the
 *                      filter are not indexed.
 *   mongo-java-server  unique and unique + sparse as MongoDB (two explicit nulls collide under
 *                      sparse too, as in MongoDB); partialFilterExpression is accepted and kept
 *                      in listIndexes but not applied: the index is a plain unique one
 *                      (documents lacking the field, or outside the filter, collide).
 *   FerretDB v1        partialFilterExpression is refused (NotImplemented, 238); sparse is
 *                      accepted but dropped (not in listIndexes); every unique index ignores
 *                      documents lacking the field (any number of them), while explicit nulls
 *                      collide. So {unique, sparse} behaves as in MongoDB for missing fields.
 * Portable choice for "unique when present": {unique: true, sparse: true}, with the field left
 * out (not null) when there is no value. */
bool ms_sink_ensure_index_opts(struct ms_sink *s, const char *collection, const bson_t *keys,
                               const bson_t *opts, const char *name, struct ms_error *err);

#endif

/* The MongoDB writer: coalesced, unordered bulk writes keyed by _id, retried through transient
 * failures (replaying a replace, a $set or a delete is idempotent), writes refused for a
 * duplicate key retried once after the rest of their segment, updateMany barriers (SET_MANY),
 * dead letters for the writes MongoDB refuses one by one and for changes the pipeline cannot
 * map, the checkpoint store and indexes. Contracts are in include/mysync/sink.h. */
#define MS_LOG_DOMAIN "sink"

#include "mysync/sink.h"
#include "mysync/clock.h"
#include "mysync/bsonutil.h"
#include "mysync/log.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define DEFAULT_RETRY_DELAY_MS 1000
#define MAX_RETRY_DELAY_MS     30000
#define DEFAULT_DEAD_LETTERS   "_mysync_dead_letters"
#define DEFAULT_CHECKPOINTS    "_mysync_checkpoints"
#define CHECKPOINT_WTIMEOUT_MS 10000
/* A server message kept in a dead letter is cut here (some servers quote the whole document). */
#define ERRMSG_MAX 1024
/* _id values in log lines are cut here: logs never carry documents. */
#define LOG_ID_MAX 200
/* Bytes a write statement adds to its document ({q: ..., u: ..., upsert: true, multi: false}),
 * rounded up, and the part of a message kept for the command itself (lsid, writeConcern, ...). */
#define STATEMENT_OVERHEAD 64
#define MESSAGE_RESERVE    (64 * 1024)
/* Room for the element header of "document" inside a dead letter. */
#define DEAD_LETTER_SLACK 64

/* BSONObjectTooLarge: the server's own code, used for the documents we refuse before sending. */
#define CODE_TOO_LARGE 10334
/* DuplicateKey: a unique index refused the write. */
#define CODE_DUPLICATE_KEY 11000
/* InternalError: FerretDB v1's answer to an update that hits a unique index. */
#define CODE_INTERNAL_ERROR 1

struct ms_sink {
    mongoc_client_pool_t *pool; /* borrowed */
    char *database;
    char *dead_letters;
    char *checkpoints;
    int max_retries;
    int64_t retry_delay_ms;
    atomic_bool cp_default_wc; /* the server refused {w: majority, j: true} for checkpoints */
    atomic_bool cancelled;
    atomic_uint_fast64_t seed; /* jitter */
    pthread_mutex_t mu;        /* with cv: backoff waits that ms_sink_cancel() interrupts */
    uint64_t wakes;            /* under mu: ms_sink_wake() calls (a backoff wait ends early) */
    pthread_cond_t cv;
    /* under mu: collections whose insert-first writes mostly met existing _ids lately: the
     * bulks left to send as upserts */
    struct {
        char collection[128];
        uint32_t upsert_bulks;
    } ifirst[16];
};

/* State of one public call: its pooled client, retry count and the server's limits. */
struct call {
    struct ms_sink *s;
    mongoc_client_t *client;
    uint64_t rng;
    uint64_t retries;
    bool have_limits;
    int64_t max_batch, max_message, max_doc;
};

/* A dead letter to write: what was refused, where it came from and why. */
struct letter {
    const char *collection; /* NULL: the change never reached a collection */
    const char *source;
    const char *position;
    const char *op;   /* "upsert", "set", "delete", "set_many", or the caller's ("insert", ...) */
    const bson_t *id; /* {_id: v}: keyed by (collection, _id, position); NULL: by a hash of doc */
    const bson_t *filter; /* SET_MANY: its filter, keyed by (collection, filter, position) */
    const bson_t *doc;    /* the refused document or fields, NULL: none */
    int64_t code;
    const char *code_name; /* NULL or "": none */
    const char *msg;
};

/* One write statement of a bulk and, once known, why MongoDB refused it. */
struct item {
    enum ms_write_kind kind;     /* after coalescing (a SET may have become an UPSERT) */
    const bson_t *filter;        /* {_id: ...}; SET_MANY: the caller's filter */
    const bson_t *doc;           /* UPSERT: replacement; SET, SET_MANY: to $set; DELETE: NULL */
    const struct ms_write *w;    /* the (last coalesced) change, for its dead letter */
    const struct letter *letter; /* dead letters: the letter this item writes */
    bool insert_first;           /* UPSERT sent as an insert first (ms_write.insert_first) */
    bool as_insert;              /* sent as an insert by the last attempt */
    bool fallback;               /* the insert met an existing _id: to be sent as an upsert */
    bool applied;                /* acknowledged: not sent again */
    bool rejected;
    int32_t code;
    char code_name[64];
    char *msg; /* malloc'd once rejected */
};

struct counts {
    int64_t upserted, matched, modified, deleted;
};

enum outcome {
    OUT_DONE,      /* applied (per-item refusals are recorded in the items) */
    OUT_TRANSIENT, /* retry after a backoff */
    OUT_FATAL,     /* give up, not retryable */
    OUT_AGAIN,     /* retry at once, not counted (a setting was adapted to the server) */
};

typedef enum outcome (*attempt_fn)(struct call *c, void *arg, bson_error_t *berr);

/* ---- small helpers --------------------------------------------------------------------- */

static uint64_t splitmix64(uint64_t *state)
{
    uint64_t z = (*state += 0x9E3779B97F4A7C15ULL);

    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

/* A copy of s cut to at most max bytes on a UTF-8 character boundary. */
static char *dup_utf8_cut(const char *s, size_t max)
{
    size_t n = strlen(s);

    if (n > max) {
        n = max;
        while (n > 0 && ((unsigned char)s[n] & 0xC0) == 0x80) {
            n--;
        }
    }
    if (!bson_utf8_validate(s, n, false)) {
        return strdup("(message is not valid UTF-8)");
    }
    return strndup(s, n);
}

/* n zeroed bson_t: the type is declared 128-byte aligned, which calloc does not promise. */
static bson_t *bson_array_new(size_t n)
{
    size_t align = _Alignof(bson_t);
    size_t bytes = ((n > 0 ? n : 1) * sizeof(bson_t) + align - 1) / align * align;
    bson_t *a = aligned_alloc(align, bytes);

    if (a != NULL) {
        memset(a, 0, bytes);
    }
    return a;
}

static void append_str_or_null(bson_t *b, const char *key, const char *v)
{
    if (v != NULL) {
        bson_append_utf8(b, key, -1, v, -1);
    } else {
        bson_append_null(b, key, -1);
    }
}

/* The _id of a write (a SET_MANY's whole filter) as relaxed Extended JSON, cut for a log line. */
static void id_for_log(const bson_t *id, char *out, size_t outsz)
{
    bson_iter_t it;
    bson_t tmp = BSON_INITIALIZER;
    char *json;
    size_t len;

    if (bson_iter_init_find(&it, id, "_id")) {
        bson_append_iter(&tmp, "v", 1, &it);
    } else {
        bson_append_document(&tmp, "v", 1, id);
    }
    json = bson_as_relaxed_extended_json(&tmp, &len);
    bson_destroy(&tmp);
    if (json == NULL) {
        snprintf(out, outsz, "?");
        return;
    }
    /* { "v" : <value> } -> <value> */
    if (len > 9 && strncmp(json, "{ \"v\" : ", 8) == 0) {
        json[len - 2] = '\0';
        snprintf(out, outsz, "%s", json + 8);
    } else {
        snprintf(out, outsz, "%s", json);
    }
    if (strlen(out) + 1 == outsz && outsz > 4) {
        memcpy(out + outsz - 4, "...", 4);
    }
    bson_free(json);
}

static void mongo_fail(struct ms_error *err, const bson_error_t *berr, bool retryable,
                       const char *doing)
{
    char msg[sizeof(berr->message)];

    ms_log_redact(berr->message, msg, sizeof(msg));
    ms_error_set(err, MS_ERR_MONGO, berr->code, "%s: %s", doing, msg);
    if (err != NULL) {
        err->retryable = retryable;
    }
}

/* ---- what is transient ----------------------------------------------------------------- */

/* Server error codes after which the same write can succeed later. */
static bool transient_code(int64_t code)
{
    switch (code) {
    case 6:     /* HostUnreachable */
    case 7:     /* HostNotFound */
    case 24:    /* LockTimeout */
    case 46:    /* LockBusy */
    case 50:    /* MaxTimeMSExpired */
    case 64:    /* WriteConcernFailed (wtimeout) */
    case 89:    /* NetworkTimeout */
    case 91:    /* ShutdownInProgress */
    case 112:   /* WriteConflict */
    case 189:   /* PrimarySteppedDown */
    case 202:   /* NetworkInterfaceExceededTimeLimit */
    case 262:   /* ExceededTimeLimit */
    case 365:   /* TemporarilyUnavailable */
    case 9001:  /* SocketException */
    case 10058: /* LegacyNotPrimary */
    case 10107: /* NotWritablePrimary */
    case 11600: /* InterruptedAtShutdown */
    case 11602: /* InterruptedDueToReplStateChange */
    case 13388: /* StaleConfig */
    case 13435: /* NotPrimaryNoSecondaryOk */
    case 13436: /* NotPrimaryOrSecondary */
    case 16500: /* RequestRateTooLarge (Cosmos DB) */
        return true;
    default:
        return false;
    }
}

/* libmongoc's error of a whole operation. Server codes arrive in the SERVER domain with error
 * API 2 (ms_sink_pool_new) and in QUERY / COMMAND / COLLECTION with the legacy API. */
static bool transient_error(const bson_error_t *e)
{
    switch (e->domain) {
    case MONGOC_ERROR_STREAM:           /* connect, read, write, timeouts */
    case MONGOC_ERROR_SERVER_SELECTION: /* no writable server (yet) */
    case MONGOC_ERROR_WRITE_CONCERN:    /* written, but not as durably as asked: replay */
        return true;
    case MONGOC_ERROR_PROTOCOL: /* a garbled reply, but an old server stays old */
        return e->code != MONGOC_ERROR_PROTOCOL_BAD_WIRE_VERSION;
    case MONGOC_ERROR_SERVER:
    case MONGOC_ERROR_QUERY:
    case MONGOC_ERROR_COMMAND:
    case MONGOC_ERROR_COLLECTION:
        return transient_code(e->code);
    default:
        return false;
    }
}

/* ---- backoff and the retry loop -------------------------------------------------------- */

static int64_t backoff_ms(struct call *c, int retry)
{
    int64_t d = c->s->retry_delay_ms;
    double f;

    for (int i = 1; i < retry && d < MAX_RETRY_DELAY_MS; i++) {
        d *= 2;
    }
    if (d > MAX_RETRY_DELAY_MS) {
        d = MAX_RETRY_DELAY_MS;
    }
    f = 0.8 + 0.4 * (double)(splitmix64(&c->rng) >> 11) / 9007199254740992.0; /* [0.8, 1.2) */
    d = (int64_t)((double)d * f);
    if (d > MAX_RETRY_DELAY_MS) {
        d = MAX_RETRY_DELAY_MS;
    }
    return d < 1 ? 1 : d;
}

/* Waits ms unless the sink is cancelled (false) or woken (ms_sink_wake) first. */
static bool pause_ms(struct ms_sink *s, int64_t ms)
{
    struct timespec until;
    bool cancelled;
    uint64_t wakes;

    clock_gettime(CLOCK_MONOTONIC, &until);
    until.tv_sec += ms / 1000;
    until.tv_nsec += (long)(ms % 1000) * 1000000L;
    if (until.tv_nsec >= 1000000000L) {
        until.tv_sec++;
        until.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&s->mu);
    wakes = s->wakes;
    while (!atomic_load(&s->cancelled) && s->wakes == wakes) {
        if (pthread_cond_timedwait(&s->cv, &s->mu, &until) == ETIMEDOUT) {
            break;
        }
    }
    cancelled = atomic_load(&s->cancelled);
    pthread_mutex_unlock(&s->mu);
    return !cancelled;
}

static void cancelled_error(struct ms_error *err, const bson_error_t *berr, const char *what,
                            int retry)
{
    mongo_fail(err, berr, true, what);
    ms_error_prefix(err, "cancelled after %d %s", retry, retry == 1 ? "retry" : "retries");
    if (err != NULL) {
        err->domain = MS_ERR_SYSTEM;
        err->code = ECANCELED;
    }
}

/* Runs fn until it is done, fails for good, or the retries run out. */
static bool with_retries(struct call *c, const char *what, const char *collection, attempt_fn fn,
                         void *arg, struct ms_error *err)
{
    struct ms_sink *s = c->s;
    int retry = 0;

    for (;;) {
        bson_error_t berr;
        enum outcome o;
        int64_t delay;

        memset(&berr, 0, sizeof(berr));
        o = fn(c, arg, &berr);
        if (o == OUT_DONE) {
            return true;
        }
        if (o == OUT_AGAIN) {
            continue;
        }
        if (o == OUT_FATAL) {
            mongo_fail(err, &berr, false, what);
            return false;
        }
        if (s->max_retries >= 0 && retry >= s->max_retries) {
            mongo_fail(err, &berr, true, what);
            ms_error_prefix(err, "gave up after %d %s", retry, retry == 1 ? "retry" : "retries");
            return false;
        }
        if (atomic_load(&s->cancelled)) {
            cancelled_error(err, &berr, what, retry);
            return false;
        }
        retry++;
        delay = backoff_ms(c, retry);
        ms_log_kv(MS_LOG_WARN,
                  ((struct ms_log_field[]){
                      MS_LF_STR("op", what), MS_LF_STR("collection", collection),
                      MS_LF_INT("attempt", retry), MS_LF_INT("delay_ms", delay),
                      MS_LF_INT("code", berr.code), MS_LF_STR("error", berr.message)}),
                  "transient MongoDB error, retrying");
        c->retries++;
        if (!pause_ms(s, delay)) {
            cancelled_error(err, &berr, what, retry);
            return false;
        }
    }
}

static void call_init(struct call *c, struct ms_sink *s)
{
    memset(c, 0, sizeof(*c));
    c->s = s;
    c->rng = atomic_fetch_add(&s->seed, 0x9E3779B97F4A7C15ULL) ^ (uint64_t)ms_clock_mono_ms();
    c->client = mongoc_client_pool_pop(s->pool);
}

static void call_cleanup(struct call *c)
{
    if (c->client != NULL) {
        mongoc_client_pool_push(c->s->pool, c->client);
        c->client = NULL;
    }
}

/* The server's batch limits, read from its hello reply (cached per call). */
static bool fetch_limits(struct call *c, bson_error_t *berr)
{
    mongoc_server_description_t *sd;
    const bson_t *hello;
    bson_iter_t it;

    if (c->have_limits) {
        return true;
    }
    sd = mongoc_client_select_server(c->client, true, NULL, berr);
    if (sd == NULL) {
        return false;
    }
    c->max_batch = 100000;
    c->max_message = 48000000;
    c->max_doc = MS_SINK_MAX_DOC_SIZE;
    hello = mongoc_server_description_hello_response(sd);
    if (bson_iter_init_find(&it, hello, "maxWriteBatchSize") && BSON_ITER_HOLDS_NUMBER(&it) &&
        bson_iter_as_int64(&it) > 0) {
        c->max_batch = bson_iter_as_int64(&it);
    }
    if (bson_iter_init_find(&it, hello, "maxMessageSizeBytes") && BSON_ITER_HOLDS_NUMBER(&it) &&
        bson_iter_as_int64(&it) > 4 * MESSAGE_RESERVE) {
        c->max_message = bson_iter_as_int64(&it);
    }
    if (bson_iter_init_find(&it, hello, "maxBsonObjectSize") && BSON_ITER_HOLDS_NUMBER(&it) &&
        bson_iter_as_int64(&it) > 0 && bson_iter_as_int64(&it) < c->max_doc) {
        c->max_doc = bson_iter_as_int64(&it);
    }
    mongoc_server_description_destroy(sd);
    c->have_limits = true;
    return true;
}

/* ---- bulk writes of items --------------------------------------------------------------- */

static void item_reject(struct item *it, int32_t code, const char *code_name, const char *msg)
{
    free(it->msg);
    it->rejected = true;
    it->code = code;
    snprintf(it->code_name, sizeof(it->code_name), "%s", code_name != NULL ? code_name : "");
    it->msg = dup_utf8_cut(msg != NULL ? msg : "", ERRMSG_MAX);
}

static void items_cleanup(struct item *items, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(items[i].msg);
        items[i].msg = NULL;
    }
}

static int64_t reply_int(const bson_t *reply, const char *key)
{
    bson_iter_t it;

    if (bson_iter_init_find(&it, reply, key) && BSON_ITER_HOLDS_NUMBER(&it)) {
        return bson_iter_as_int64(&it);
    }
    return 0;
}

/* The first document of the array reply[key], if any. */
static bool reply_first(const bson_t *reply, const char *key, bson_iter_t *doc)
{
    bson_iter_t it;

    return bson_iter_init_find(&it, reply, key) && BSON_ITER_HOLDS_ARRAY(&it) &&
           bson_iter_recurse(&it, doc) && bson_iter_next(doc) && BSON_ITER_HOLDS_DOCUMENT(doc);
}

/* {code, codeName, errmsg} of a write error or write concern error document. */
static void error_doc(const bson_iter_t *doc, int32_t *code, const char **code_name,
                      const char **msg)
{
    bson_iter_t f;

    *code = 0;
    *code_name = NULL;
    *msg = NULL;
    if (!bson_iter_recurse(doc, &f)) {
        return;
    }
    while (bson_iter_next(&f)) {
        if (strcmp(bson_iter_key(&f), "code") == 0 && BSON_ITER_HOLDS_NUMBER(&f)) {
            *code = (int32_t)bson_iter_as_int64(&f);
        } else if (strcmp(bson_iter_key(&f), "codeName") == 0 && BSON_ITER_HOLDS_UTF8(&f)) {
            *code_name = bson_iter_utf8(&f, NULL);
        } else if (strcmp(bson_iter_key(&f), "errmsg") == 0 && BSON_ITER_HOLDS_UTF8(&f)) {
            *msg = bson_iter_utf8(&f, NULL);
        }
    }
}

/* Outcome of one bulk (one write command). Each bulk is a single command, so libmongoc's
 * merged error describes that command alone (with several, an unordered bulk reports a later
 * network error as the first write error: the unsent statements would look applied). */
static enum outcome classify_bulk(bool ok, const bson_t *reply, bson_error_t *berr)
{
    bson_iter_t it, arr, doc;
    int32_t code;
    const char *name, *msg;

    if (ok) {
        return OUT_DONE;
    }
    if (mongoc_error_has_label(reply, "RetryableWriteError")) {
        return OUT_TRANSIENT;
    }
    if (reply_first(reply, "writeConcernErrors", &doc)) {
        error_doc(&doc, &code, &name, &msg);
        bson_set_error(berr, MONGOC_ERROR_WRITE_CONCERN, (uint32_t)code, "write concern error: %s",
                       msg != NULL ? msg : "");
        return OUT_TRANSIENT;
    }
    if (bson_iter_init_find(&it, reply, "writeErrors") && BSON_ITER_HOLDS_ARRAY(&it) &&
        bson_iter_recurse(&it, &arr)) {
        bool any = false;
        while (bson_iter_next(&arr)) {
            if (!BSON_ITER_HOLDS_DOCUMENT(&arr)) {
                continue;
            }
            any = true;
            error_doc(&arr, &code, &name, &msg);
            if (transient_code(code)) {
                bson_set_error(berr, MONGOC_ERROR_SERVER, (uint32_t)code, "%s",
                               msg != NULL ? msg : "");
                return OUT_TRANSIENT;
            }
        }
        if (any) {
            return OUT_DONE; /* refusals of single statements: the caller records them */
        }
    }
    return transient_error(berr) ? OUT_TRANSIENT : OUT_FATAL;
}

static bool server_error(const bson_error_t *e)
{
    return e->domain == MONGOC_ERROR_SERVER || e->domain == MONGOC_ERROR_QUERY ||
           e->domain == MONGOC_ERROR_COMMAND || e->domain == MONGOC_ERROR_COLLECTION;
}

/* FerretDB v1 fails a whole update command with InternalError when an update of an existing
 * document hits a unique index (SQLite: "UNIQUE constraint failed", PostgreSQL: "duplicate key
 * value violates unique constraint"): the statements before it are applied, the rest are not.
 * MongoDB and mongo-java-server give a write error 11000 for that statement alone. */
static bool unique_violation(const bson_error_t *e)
{
    return server_error(e) && e->code == CODE_INTERNAL_ERROR &&
           (strstr(e->message, "UNIQUE constraint failed") != NULL ||
            strstr(e->message, "duplicate key value violates unique constraint") != NULL);
}

/* A command refused for its query or update (BadValue, FailedToParse): FerretDB v1 answers a
 * bad SET_MANY filter so, where MongoDB gives a write error for the statement. */
static bool statement_refused(const bson_error_t *e)
{
    return server_error(e) && (e->code == 2 || e->code == 9);
}

/* Items [pos, n) of one collection, written chunk by chunk. */
struct chunk_run {
    const char *collection;
    struct item *items;
    size_t n;
    size_t pos; /* first item of the chunk */
    size_t hi;  /* fixed: the chunk is exactly [pos, hi) */
    bool fixed;
    size_t end;          /* set by a successful attempt: first item of the next chunk */
    bool ambiguous;      /* set by a successful attempt: the reply cannot be mapped to items */
    struct counts delta; /* set by a successful attempt */
    size_t nfallback;    /* set by a successful attempt: inserts that met an existing _id */
};

static size_t write_error_count(const bson_t *reply)
{
    bson_iter_t it, arr;
    size_t n = 0;

    if (bson_iter_init_find(&it, reply, "writeErrors") && BSON_ITER_HOLDS_ARRAY(&it) &&
        bson_iter_recurse(&it, &arr)) {
        while (bson_iter_next(&arr)) {
            n++;
        }
    }
    return n;
}

/* Write errors naming statements that were sent as inserts (map: statement -> item). */
static size_t insert_errors(const bson_t *reply, const struct item *items, const size_t *map,
                            size_t nsent)
{
    bson_iter_t it, arr, f;
    size_t n = 0;

    if (bson_iter_init_find(&it, reply, "writeErrors") && BSON_ITER_HOLDS_ARRAY(&it) &&
        bson_iter_recurse(&it, &arr)) {
        while (bson_iter_next(&arr)) {
            if (BSON_ITER_HOLDS_DOCUMENT(&arr) && bson_iter_recurse(&arr, &f) &&
                bson_iter_find(&f, "index") && BSON_ITER_HOLDS_NUMBER(&f)) {
                int64_t index = nsent == 1 ? 0 : bson_iter_as_int64(&f);
                n += index >= 0 && (size_t)index < nsent && items[map[index]].as_insert;
            }
        }
    }
    return n;
}

/* Whether a reply with write errors can be mapped to its statements. An unordered bulk of
 * upserting replacements and $set updates accounts for each statement once: upserted, matched
 * or refused. FerretDB v1 does not: it stops at the first refusal, names statement 0 and counts
 * nothing, so the statements after it would look applied. Inserts: mongo-java-server counts
 * the refused ones as inserted too, so an insert count at least as large as the inserts not
 * refused is taken as all of them. Deletes cannot be checked this way (a missing document is
 * not counted), so several deletes with a refusal are never taken at their word. */
static bool reply_accounts(const bson_t *reply, bool deletes, size_t nsent, size_t nerrors,
                           size_t ninserts, size_t nerr_ins)
{
    if (nsent == 1) {
        return true; /* whatever index it names, the refusal is this statement's */
    }
    if (deletes) {
        return false;
    }
    return (size_t)(reply_int(reply, "nUpserted") + reply_int(reply, "nMatched")) + nerrors -
                   nerr_ins ==
               nsent - ninserts &&
           (size_t)reply_int(reply, "nInserted") + nerr_ins >= ninserts;
}

/* A document that goes as an insert exactly as it would as a replacement: its _id is the
 * filter's, the same type and bytes (an insert would take the document's where the
 * replacement is refused), no key starting with '$' at any depth, none empty (libmongoc
 * refuses a replacement with a top-level '$' key but lets an insert of it through, and
 * MongoDB 5 stores it). The others go as upserts, whose verdict stays what it always was. */
static bool insertable(const bson_t *filter, const bson_t *doc)
{
    bson_iter_t b;
    bson_error_t e;
    bson_t id = BSON_INITIALIZER;
    bool same;

    if (!bson_iter_init_find(&b, doc, "_id")) {
        return false;
    }
    bson_append_iter(&id, "_id", 3, &b);
    same = id.len == filter->len && memcmp(bson_get_data(&id), bson_get_data(filter), id.len) == 0;
    bson_destroy(&id);
    if (!same) {
        return false;
    }
    return bson_validate_with_error(doc,
                                    BSON_VALIDATE_UTF8 | BSON_VALIDATE_UTF8_ALLOW_NULL |
                                        BSON_VALIDATE_EMPTY_KEYS | BSON_VALIDATE_DOLLAR_KEYS,
                                    &e);
}

/* Whether insert-first writes to collection are sent as inserts now (one call per bulk). */
static bool insert_first_on(struct ms_sink *s, const char *collection)
{
    bool on = true;

    pthread_mutex_lock(&s->mu);
    for (size_t i = 0; i < sizeof(s->ifirst) / sizeof(s->ifirst[0]); i++) {
        if (s->ifirst[i].upsert_bulks > 0 && strcmp(s->ifirst[i].collection, collection) == 0) {
            s->ifirst[i].upsert_bulks--;
            on = false;
            break;
        }
    }
    pthread_mutex_unlock(&s->mu);
    return on;
}

/* Half of a bulk's inserts met existing _ids (a backfill run again, a replay): upserts for a
 * while. */
static void insert_first_off(struct ms_sink *s, const char *collection)
{
    size_t slot = 0;

    pthread_mutex_lock(&s->mu);
    for (size_t i = 0; i < sizeof(s->ifirst) / sizeof(s->ifirst[0]); i++) {
        if (strcmp(s->ifirst[i].collection, collection) == 0) {
            slot = i;
            break;
        }
        if (s->ifirst[i].upsert_bulks < s->ifirst[slot].upsert_bulks) {
            slot = i;
        }
    }
    snprintf(s->ifirst[slot].collection, sizeof(s->ifirst[slot].collection), "%s", collection);
    s->ifirst[slot].upsert_bulks = 64;
    pthread_mutex_unlock(&s->mu);
}

/* Records the write errors of a successful bulk in the items they name. */
static bool record_write_errors(struct chunk_run *r, const bson_t *reply, const size_t *map,
                                size_t nsent, bson_error_t *berr)
{
    bson_iter_t it, arr, f;
    bool *seen = NULL;
    bool ok = false;

    if (!bson_iter_init_find(&it, reply, "writeErrors") || !BSON_ITER_HOLDS_ARRAY(&it) ||
        !bson_iter_recurse(&it, &arr)) {
        return true;
    }
    seen = calloc(nsent, sizeof(*seen));
    if (seen == NULL) {
        bson_set_error(berr, MONGOC_ERROR_CLIENT, 0, "out of memory");
        return false;
    }
    while (bson_iter_next(&arr)) {
        int64_t index = -1;
        int32_t code;
        const char *name, *msg;

        if (!BSON_ITER_HOLDS_DOCUMENT(&arr)) {
            continue;
        }
        if (bson_iter_recurse(&arr, &f) && bson_iter_find(&f, "index") &&
            BSON_ITER_HOLDS_NUMBER(&f)) {
            index = bson_iter_as_int64(&f);
        }
        if (nsent == 1) {
            index = 0;
        }
        if (index < 0 || (size_t)index >= nsent || seen[index]) {
            bson_set_error(berr, MONGOC_ERROR_COMMAND, MONGOC_ERROR_COMMAND_INVALID_ARG,
                           "the server reported a write error for statement %lld of %zu",
                           (long long)index, nsent);
            goto done;
        }
        seen[index] = true;
        error_doc(&arr, &code, &name, &msg);
        if (code == CODE_DUPLICATE_KEY && r->items[map[index]].as_insert) {
            r->items[map[index]].fallback = true; /* the _id exists: replaced next */
            r->nfallback++;
            continue;
        }
        item_reject(&r->items[map[index]], code, name, msg);
    }
    ok = true;
done:
    free(seen);
    return ok;
}

/* The update of a SET item: {$set: fields}. Without fields, {$setOnInsert: {_id}}: the
 * document exists afterwards and nothing else changes (MongoDB before 5.0 refuses an empty
 * $set). */
static void set_update(const struct item *it, bson_t *update)
{
    bson_init(update);
    if (bson_empty(it->doc)) {
        bson_append_document(update, "$setOnInsert", -1, it->filter);
    } else {
        bson_append_document(update, "$set", -1, it->doc);
    }
}

static enum outcome chunk_attempt(struct call *c, void *arg, bson_error_t *berr)
{
    struct chunk_run *r = arg;
    mongoc_collection_t *coll = NULL;
    mongoc_bulk_operation_t *bulk = NULL;
    bson_t *bulk_opts = NULL, *upsert_opts = NULL, *insert_opts = NULL;
    bson_t reply, update;
    bool executed = false;
    size_t *map = NULL, nsent = 0, nerrors, end, ninserts = 0, nerr_ins = 0;
    int64_t bytes = 0;
    bool deletes, inserts = true;
    enum outcome o = OUT_FATAL;

    if (!fetch_limits(c, berr)) {
        return transient_error(berr) ? OUT_TRANSIENT : OUT_FATAL;
    }
    /* One chunk = what one write command carries: updates (replacements and $set) or deletes,
     * maxWriteBatchSize statements, maxMessageSizeBytes. */
    deletes = r->items[r->pos].kind == MS_WRITE_DELETE;
    for (end = r->pos; !r->fixed && end < r->n && (int64_t)(end - r->pos) < c->max_batch; end++) {
        const struct item *it = &r->items[end];
        int64_t sz =
            (int64_t)it->filter->len + (it->doc != NULL ? it->doc->len : 0) + STATEMENT_OVERHEAD;
        if ((it->kind == MS_WRITE_DELETE) != deletes ||
            (end > r->pos && bytes + sz > c->max_message - MESSAGE_RESERVE)) {
            break;
        }
        bytes += sz;
    }
    if (r->fixed) {
        end = r->hi;
    }

    map = malloc((end - r->pos) * sizeof(*map));
    bulk_opts = BCON_NEW("ordered", BCON_BOOL(false));
    upsert_opts = BCON_NEW("upsert", BCON_BOOL(true));
    /* insertable() has validated the document, with stricter flags than libmongoc's */
    insert_opts = BCON_NEW("validate", BCON_BOOL(false));
    if (map == NULL || bulk_opts == NULL || upsert_opts == NULL || insert_opts == NULL) {
        bson_set_error(berr, MONGOC_ERROR_CLIENT, 0, "out of memory");
        goto done;
    }
    coll = mongoc_client_get_collection(c->client, c->s->database, r->collection);
    bulk = mongoc_collection_create_bulk_operation_with_opts(coll, bulk_opts);
    for (size_t i = r->pos; i < end; i++) {
        if (r->items[i].insert_first && !r->items[i].fallback) {
            inserts = insert_first_on(c->s, r->collection);
            break;
        }
    }
    for (size_t i = r->pos; i < end; i++) {
        struct item *it = &r->items[i];
        bson_error_t aerr;
        bool added;

        it->as_insert = false;
        if (it->rejected || it->applied) {
            continue;
        }
        if (it->doc != NULL && (int64_t)it->doc->len > c->max_doc) {
            char msg[160];
            snprintf(msg, sizeof(msg), "document is %u bytes, over the server's %lld-byte limit",
                     it->doc->len, (long long)c->max_doc);
            item_reject(it, CODE_TOO_LARGE, "BSONObjectTooLarge", msg);
            continue;
        }
        memset(&aerr, 0, sizeof(aerr));
        if (it->kind == MS_WRITE_UPSERT && it->insert_first && !it->fallback && inserts &&
            insertable(it->filter, it->doc) &&
            mongoc_bulk_operation_insert_with_opts(bulk, it->doc, insert_opts, &aerr)) {
            /* (one libmongoc refuses anyway goes as the upsert below, which decides) */
            added = true;
            it->as_insert = true;
            ninserts++;
        } else if (it->kind == MS_WRITE_UPSERT) {
            memset(&aerr, 0, sizeof(aerr));
            /* libmongoc refuses top-level '$' keys and empty keys here, without a round trip */
            added = mongoc_bulk_operation_replace_one_with_opts(bulk, it->filter, it->doc,
                                                                upsert_opts, &aerr);
        } else if (it->kind == MS_WRITE_SET) {
            set_update(it, &update);
            added = mongoc_bulk_operation_update_one_with_opts(bulk, it->filter, &update,
                                                               upsert_opts, &aerr);
            bson_destroy(&update);
        } else if (it->kind == MS_WRITE_SET_MANY) {
            bson_init(&update);
            bson_append_document(&update, "$set", -1, it->doc);
            added =
                mongoc_bulk_operation_update_many_with_opts(bulk, it->filter, &update, NULL, &aerr);
            bson_destroy(&update);
        } else {
            added = mongoc_bulk_operation_remove_one_with_opts(bulk, it->filter, NULL, &aerr);
        }
        if (!added) {
            char msg[sizeof(aerr.message) + 40];
            snprintf(msg, sizeof(msg), "refused by libmongoc: %s", aerr.message);
            item_reject(it, (int32_t)aerr.code, "ClientValidation", msg);
            continue;
        }
        map[nsent++] = i;
    }
    memset(&r->delta, 0, sizeof(r->delta));
    r->ambiguous = false;
    r->nfallback = 0;
    if (nsent == 0) {
        r->end = end;
        o = OUT_DONE;
        goto done;
    }
    executed = true;
    o = classify_bulk(mongoc_bulk_operation_execute(bulk, &reply, berr) != 0, &reply, berr);
    if (o == OUT_FATAL &&
        (unique_violation(berr) ||
         (nsent == 1 && r->items[map[0]].kind == MS_WRITE_SET_MANY && statement_refused(berr)))) {
        /* a refusal of one statement, reported for the whole command */
        if (nsent == 1 && r->items[map[0]].as_insert && unique_violation(berr)) {
            r->items[map[0]].fallback = true; /* the _id exists: replaced next */
            r->nfallback = 1;
        } else if (nsent == 1) {
            char msg[sizeof(berr->message) + 40];
            bool dup = unique_violation(berr);
            snprintf(msg, sizeof(msg), "%s%s", dup ? "duplicate key: " : "", berr->message);
            item_reject(&r->items[map[0]], dup ? CODE_DUPLICATE_KEY : (int32_t)berr->code,
                        dup ? "DuplicateKey" : NULL, msg);
        } else {
            ms_log_kv(MS_LOG_INFO,
                      ((struct ms_log_field[]){MS_LF_STR("collection", r->collection),
                                               MS_LF_INT("statements", (int64_t)nsent),
                                               MS_LF_INT("code", berr->code)}),
                      "bulk failed on a unique index; isolating the refused statements");
            r->ambiguous = true;
        }
        r->end = end;
        o = OUT_DONE;
        goto done;
    }
    if (o != OUT_DONE) {
        goto done;
    }
    nerrors = write_error_count(&reply);
    nerr_ins = ninserts > 0 ? insert_errors(&reply, r->items, map, nsent) : 0;
    if (nerrors > 0 && !reply_accounts(&reply, deletes, nsent, nerrors, ninserts, nerr_ins)) {
        /* which statements were applied is unknown: the caller bisects the chunk */
        ms_log_kv(MS_LOG_INFO,
                  ((struct ms_log_field[]){MS_LF_STR("collection", r->collection),
                                           MS_LF_INT("statements", (int64_t)nsent),
                                           MS_LF_INT("write_errors", (int64_t)nerrors),
                                           MS_LF_INT("upserted", reply_int(&reply, "nUpserted")),
                                           MS_LF_INT("matched", reply_int(&reply, "nMatched"))}),
                  "bulk reply does not account for every statement; isolating the refused ones");
        r->ambiguous = true;
        r->end = end;
        goto done;
    }
    if (!record_write_errors(r, &reply, map, nsent, berr)) {
        o = OUT_FATAL;
        goto done;
    }
    /* the inserts not refused (mongo-java-server's nInserted counts the refused ones too) */
    r->delta.upserted = reply_int(&reply, "nUpserted") + (int64_t)(ninserts - nerr_ins);
    r->delta.matched = reply_int(&reply, "nMatched");
    r->delta.modified = reply_int(&reply, "nModified");
    r->delta.deleted = reply_int(&reply, "nRemoved");
    r->end = end;
    for (size_t i = 0; i < nsent; i++) {
        struct item *it = &r->items[map[i]];
        it->applied = !it->rejected && !it->fallback;
    }
    if (ninserts >= 8 && r->nfallback * 2 >= ninserts) {
        insert_first_off(c->s, r->collection);
    }
done:
    if (executed) {
        bson_destroy(&reply);
    }
    mongoc_bulk_operation_destroy(bulk);
    mongoc_collection_destroy(coll);
    bson_destroy(bulk_opts);
    bson_destroy(upsert_opts);
    bson_destroy(insert_opts);
    free(map);
    return o;
}

static void counts_add(struct counts *k, const struct counts *d)
{
    k->upserted += d->upserted;
    k->matched += d->matched;
    k->modified += d->modified;
    k->deleted += d->deleted;
}

static bool bisect(struct call *c, const struct chunk_run *parent, size_t lo, size_t hi,
                   struct counts *k, struct ms_error *err);

/* Sends [lo, hi) again for the inserts that met existing _ids: as upserts now (what was
 * applied or refused is skipped). */
static bool resend_fallbacks(struct call *c, const struct chunk_run *parent, size_t lo, size_t hi,
                             struct counts *k, struct ms_error *err)
{
    struct chunk_run r = {.collection = parent->collection,
                          .items = parent->items,
                          .n = parent->n,
                          .pos = lo,
                          .hi = hi,
                          .fixed = true};

    if (!with_retries(c, "bulk write", r.collection, chunk_attempt, &r, err)) {
        return false;
    }
    counts_add(k, &r.delta);
    return !r.ambiguous || bisect(c, &r, r.pos, r.hi, k, err);
}

/* Writes items [lo, hi) again in halves, down to single statements where a reply stays
 * ambiguous. Replaying what the ambiguous bulk did apply is idempotent (it counts as matched). */
static bool bisect(struct call *c, const struct chunk_run *parent, size_t lo, size_t hi,
                   struct counts *k, struct ms_error *err)
{
    size_t mid = lo + (hi - lo) / 2;
    size_t bounds[2][2] = {{lo, mid}, {mid, hi}};

    for (int h = 0; h < 2; h++) {
        struct chunk_run r = {.collection = parent->collection,
                              .items = parent->items,
                              .n = parent->n,
                              .pos = bounds[h][0],
                              .hi = bounds[h][1],
                              .fixed = true};
        if (r.pos == r.hi) {
            continue;
        }
        if (!with_retries(c, "bulk write", r.collection, chunk_attempt, &r, err)) {
            return false;
        }
        counts_add(k, &r.delta);
        if (r.ambiguous && !bisect(c, &r, r.pos, r.hi, k, err)) {
            return false;
        }
        if (!r.ambiguous && r.nfallback > 0 && !resend_fallbacks(c, &r, r.pos, r.hi, k, err)) {
            return false;
        }
    }
    return true;
}

/* Writes items (upserts and sets before deletes) to collection; refusals stay in the items. */
static bool run_items(struct call *c, const char *collection, struct item *items, size_t n,
                      struct counts *k, struct ms_error *err)
{
    struct chunk_run r = {.collection = collection, .items = items, .n = n};

    while (r.pos < n) {
        if (!with_retries(c, "bulk write", collection, chunk_attempt, &r, err)) {
            return false;
        }
        counts_add(k, &r.delta);
        if (r.ambiguous && !bisect(c, &r, r.pos, r.end, k, err)) {
            return false;
        }
        if (!r.ambiguous && r.nfallback > 0 && !resend_fallbacks(c, &r, r.pos, r.end, k, err)) {
            return false;
        }
        r.pos = r.end;
    }
    return true;
}

/* ---- dead letters ---------------------------------------------------------------------- */

static uint64_t fnv1a(uint64_t h, const void *p, size_t n)
{
    const unsigned char *b = p;

    for (size_t i = 0; i < n; i++) {
        h = (h ^ b[i]) * 0x100000001B3ULL;
    }
    return h;
}

static const char *kind_op(enum ms_write_kind kind)
{
    switch (kind) {
    case MS_WRITE_UPSERT:
        return "upsert";
    case MS_WRITE_SET:
        return "set";
    case MS_WRITE_DELETE:
        return "delete";
    case MS_WRITE_SET_MANY:
        return "set_many";
    }
    return "?";
}

/* The letter of a refused item of ms_sink_apply(): the write as it was sent (after coalescing). */
static void letter_of_item(const struct item *it, struct letter *l)
{
    memset(l, 0, sizeof(*l));
    l->collection = it->w->collection;
    l->source = it->w->source;
    l->position = it->w->position;
    l->op = kind_op(it->kind);
    if (it->kind == MS_WRITE_SET_MANY) {
        l->filter = it->filter;
    } else {
        l->id = it->w->id;
    }
    l->doc = it->kind != MS_WRITE_DELETE ? it->doc : NULL;
    l->code = it->code;
    l->code_name = it->code_name;
    l->msg = it->msg != NULL ? it->msg : "";
}

/* A dead letter: its key (filter) and document. raw: the refused document as BSON bytes
 * instead of embedded (and a SET_MANY's filter as text). */
static void dead_letter_build(const struct letter *l, bool raw, bson_t *filter, bson_t *dl)
{
    bson_iter_t idit;
    bool have_id = l->id != NULL && bson_iter_init_find(&idit, l->id, "_id");
    char *filter_json = NULL;
    bson_t key, e;

    bson_init(filter);
    bson_append_document_begin(filter, "_id", 3, &key);
    if (l->filter != NULL) {
        /* a filter may hold what no server takes inside an _id ("$gt", "a.b"): its canonical
         * Extended JSON, one text per filter, keys the letter */
        filter_json = bson_as_canonical_extended_json(l->filter, NULL);
        bson_append_utf8(&key, "collection", -1, l->collection, -1);
        bson_append_utf8(&key, "doc_id", -1, filter_json != NULL ? filter_json : "?", -1);
        append_str_or_null(&key, "position", l->position);
    } else if (have_id) {
        bson_append_utf8(&key, "collection", -1, l->collection, -1);
        bson_append_iter(&key, "doc_id", -1, &idit);
        append_str_or_null(&key, "position", l->position);
    } else {
        /* a change that never reached a collection has no _id: the row itself identifies it
         * among the rows of its event */
        char hash[17];
        append_str_or_null(&key, "source", l->source);
        append_str_or_null(&key, "position", l->position);
        if (l->doc != NULL) {
            snprintf(hash, sizeof(hash), "%016llx",
                     (unsigned long long)fnv1a(0xCBF29CE484222325ULL, bson_get_data(l->doc),
                                               l->doc->len));
            bson_append_utf8(&key, "doc_hash", -1, hash, -1);
        } else {
            bson_append_null(&key, "doc_hash", -1);
        }
    }
    bson_append_document_end(filter, &key);

    bson_init(dl);
    bson_concat(dl, filter);
    append_str_or_null(dl, "collection", l->collection);
    append_str_or_null(dl, "source", l->source);
    append_str_or_null(dl, "position", l->position);
    bson_append_utf8(dl, "op", -1, l->op, -1);
    if (l->filter != NULL && !raw) {
        bson_append_document(dl, "doc_id", -1, l->filter);
    } else if (l->filter != NULL) {
        bson_append_utf8(dl, "doc_id", -1, filter_json != NULL ? filter_json : "?", -1);
    } else if (have_id) {
        bson_append_iter(dl, "doc_id", -1, &idit);
    }
    bson_append_document_begin(dl, "error", -1, &e);
    if (l->code >= INT32_MIN && l->code <= INT32_MAX) {
        bson_append_int32(&e, "code", -1, (int32_t)l->code);
    } else {
        bson_append_int64(&e, "code", -1, l->code);
    }
    if (l->code_name != NULL && l->code_name[0] != '\0') {
        bson_append_utf8(&e, "codeName", -1, l->code_name, -1);
    }
    bson_append_utf8(&e, "message", -1, l->msg != NULL ? l->msg : "", -1);
    bson_append_document_end(dl, &e);
    bson_append_date_time(dl, "at", -1, ms_clock_wall_ms());
    if (l->doc != NULL) {
        bson_append_int64(dl, "document_size", -1, l->doc->len);
        if ((int64_t)dl->len + l->doc->len + DEAD_LETTER_SLACK > MS_SINK_MAX_DOC_SIZE) {
            /* the envelope says what and why; the document itself cannot be kept */
        } else if (raw) {
            bson_append_binary(dl, "document_bson", -1, BSON_SUBTYPE_BINARY, bson_get_data(l->doc),
                               l->doc->len);
        } else {
            bson_append_document(dl, "document", -1, l->doc);
        }
    }
    bson_free(filter_json);
}

/* What a log line or an error names a dead letter by: its _id and collection, or its source
 * and position. */
static void letter_for_log(const struct letter *l, char *out, size_t outsz)
{
    char id[LOG_ID_MAX];

    if (l->id != NULL) {
        id_for_log(l->id, id, sizeof(id));
        snprintf(out, outsz, "_id %s of %s", id, l->collection);
    } else {
        snprintf(out, outsz, "the %s of %s at %s", l->op, l->source != NULL ? l->source : "?",
                 l->position != NULL ? l->position : "?");
    }
}

/* Dead letters being written: items pointing at their own filter and document. */
struct dead_letters {
    struct item *items;
    bson_t *filters, *docs;
    size_t n, cap;
};

static bool dead_letters_alloc(struct dead_letters *d, size_t cap)
{
    d->items = calloc(cap, sizeof(*d->items));
    d->filters = bson_array_new(cap);
    d->docs = bson_array_new(cap);
    d->cap = cap;
    return d->items != NULL && d->filters != NULL && d->docs != NULL;
}

static void dead_letters_add(struct dead_letters *d, const struct letter *l, bool raw)
{
    struct item *it = &d->items[d->n];

    dead_letter_build(l, raw, &d->filters[d->n], &d->docs[d->n]);
    it->kind = MS_WRITE_UPSERT;
    it->filter = &d->filters[d->n];
    it->doc = &d->docs[d->n];
    it->letter = l;
    d->n++;
}

static void dead_letters_free(struct dead_letters *d)
{
    for (size_t i = 0; i < d->n; i++) {
        bson_destroy(&d->filters[i]);
        bson_destroy(&d->docs[i]);
    }
    if (d->items != NULL) {
        items_cleanup(d->items, d->n);
    }
    free(d->items);
    free(d->filters);
    free(d->docs);
    memset(d, 0, sizeof(*d));
}

/* A dead letter whose upsert met its own _id: the same letter (its _id is made of where the
 * change came from and what it held) is there already, written before a replay. mongo-java-server
 * answers so where its _id index lost a document upserted with a document _id (README: test server
 * quirks); MongoDB when two upserts of one _id race. Not a refusal. */
static bool letter_exists(const struct item *it)
{
    return it->rejected && it->code == CODE_DUPLICATE_KEY && it->msg != NULL &&
           strstr(it->msg, "index: _id_") != NULL;
}

/* Upserts the dead letters letters[0, n). A dead letter the server refuses embedded (FerretDB
 * checks keys and arrays inside subdocuments too) is written again with the document as raw
 * BSON; if that is refused too, the call fails. */
static bool write_letters(struct call *c, const struct letter *letters, size_t n,
                          struct ms_error *err)
{
    struct dead_letters d = {0}, raw = {0};
    struct counts k = {0};
    size_t nraw = 0;
    bool ok = false;

    if (!dead_letters_alloc(&d, n)) {
        ms_error_set(err, MS_ERR_SYSTEM, ENOMEM, "dead letters: out of memory");
        goto done;
    }
    for (size_t i = 0; i < n; i++) {
        dead_letters_add(&d, &letters[i], false);
    }
    if (!run_items(c, c->s->dead_letters, d.items, d.n, &k, err)) {
        goto done;
    }
    for (size_t i = 0; i < d.n; i++) {
        nraw += d.items[i].rejected && !letter_exists(&d.items[i]) ? 1 : 0;
    }
    if (nraw > 0) {
        if (!dead_letters_alloc(&raw, nraw)) {
            ms_error_set(err, MS_ERR_SYSTEM, ENOMEM, "dead letters: out of memory");
            goto done;
        }
        for (size_t i = 0; i < d.n; i++) {
            if (d.items[i].rejected && !letter_exists(&d.items[i])) {
                dead_letters_add(&raw, d.items[i].letter, true);
            }
        }
        if (!run_items(c, c->s->dead_letters, raw.items, raw.n, &k, err)) {
            goto done;
        }
        for (size_t i = 0; i < raw.n; i++) {
            if (raw.items[i].rejected && !letter_exists(&raw.items[i])) {
                char what[LOG_ID_MAX + 200];
                letter_for_log(raw.items[i].letter, what, sizeof(what));
                ms_error_set(err, MS_ERR_MONGO, (uint32_t)raw.items[i].code,
                             "the dead letter for %s was refused: %s", what,
                             raw.items[i].msg != NULL ? raw.items[i].msg : "");
                goto done;
            }
        }
    }
    ok = true;
done:
    dead_letters_free(&d);
    dead_letters_free(&raw);
    return ok;
}

/* Writes the dead letters of the refused items among items[0, n). */
static bool write_dead_letters(struct call *c, struct item *items, size_t n, size_t nrej,
                               struct ms_sink_result *res, struct ms_error *err)
{
    struct letter *letters = calloc(nrej, sizeof(*letters));
    const struct item **origins = calloc(nrej, sizeof(*origins));
    size_t m = 0;
    bool ok = false;

    if (letters == NULL || origins == NULL) {
        ms_error_set(err, MS_ERR_SYSTEM, ENOMEM, "dead letters: out of memory");
        goto done;
    }
    for (size_t i = 0; i < n && m < nrej; i++) {
        if (items[i].rejected) {
            origins[m] = &items[i];
            letter_of_item(&items[i], &letters[m++]);
        }
    }
    if (!write_letters(c, letters, m, err)) {
        goto done;
    }
    for (size_t i = 0; i < m; i++) {
        const struct item *o = origins[i];
        char id[LOG_ID_MAX];

        id_for_log(o->w->id, id, sizeof(id));
        ms_log_kv(MS_LOG_WARN,
                  ((struct ms_log_field[]){
                      MS_LF_STR("collection", o->w->collection),
                      MS_LF_STR(o->kind == MS_WRITE_SET_MANY ? "filter" : "_id", id),
                      MS_LF_STR("op", letters[i].op), MS_LF_STR("source", o->w->source),
                      MS_LF_STR("position", o->w->position), MS_LF_INT("code", o->code),
                      MS_LF_STR("dead_letters", c->s->dead_letters)}),
                  "write refused by MongoDB, dead-lettered");
        res->dead_lettered++;
    }
    ok = true;
done:
    free(letters);
    free(origins);
    return ok;
}

/* ---- planning: validation, coalescing, grouping ---------------------------------------- */

/* Appends the value at it under key with numbers in one form: MongoDB matches an _id of
 * int32 1, int64 1 and double 1.0 alike, so they must coalesce alike. */
static void canon_append(bson_t *out, const char *key, const bson_iter_t *it)
{
    bson_iter_t sub;
    bson_t child;
    double d;

    switch (bson_iter_type(it)) {
    case BSON_TYPE_INT32:
        bson_append_int64(out, key, -1, bson_iter_int32(it));
        break;
    case BSON_TYPE_INT64:
        bson_append_int64(out, key, -1, bson_iter_int64(it));
        break;
    case BSON_TYPE_DOUBLE:
        d = bson_iter_double(it);
        if (d >= -9223372036854775808.0 && d < 9223372036854775808.0 && (double)(int64_t)d == d) {
            bson_append_int64(out, key, -1, (int64_t)d);
        } else {
            bson_append_double(out, key, -1, d);
        }
        break;
    case BSON_TYPE_DOCUMENT:
    case BSON_TYPE_ARRAY:
        if (bson_iter_type(it) == BSON_TYPE_DOCUMENT) {
            bson_append_document_begin(out, key, -1, &child);
        } else {
            bson_append_array_begin(out, key, -1, &child);
        }
        if (bson_iter_recurse(it, &sub)) {
            while (bson_iter_next(&sub)) {
                canon_append(&child, bson_iter_key(&sub), &sub);
            }
        }
        if (bson_iter_type(it) == BSON_TYPE_DOCUMENT) {
            bson_append_document_end(out, &child);
        } else {
            bson_append_array_end(out, &child);
        }
        break;
    default:
        bson_append_iter(out, key, -1, it);
        break;
    }
}

struct group {
    const char *collection;
    struct item *items; /* upserts and sets, then deletes */
    size_t n, nup;
};

/* What remains of a write after coalescing. */
struct survivor {
    enum ms_write_kind kind;
    const bson_t *doc; /* the write's own, or merged */
    bson_t *merged;    /* owned: the SET's fields applied to what came before */
    bool superseded;   /* a later write to the same (collection, _id) replaces this one */
    size_t prev;       /* the write to the same (collection, _id) before this one, or SIZE_MAX */
};

struct plan {
    struct item *items; /* the surviving writes, grouped */
    size_t nitems;
    struct group *groups;
    size_t ngroups;
    struct survivor *surv; /* one per write */
    size_t nsurv;
};

static void plan_free(struct plan *p)
{
    if (p->items != NULL) {
        items_cleanup(p->items, p->nitems);
    }
    for (size_t i = 0; i < p->nsurv; i++) {
        bson_destroy(p->surv[i].merged);
    }
    free(p->items);
    free(p->groups);
    free(p->surv);
    memset(p, 0, sizeof(*p));
}

/* Whether a SET_MANY's field names an _id (itself or a path into it). */
static bool names_id(const char *k)
{
    return strncmp(k, "_id", 3) == 0 && (k[3] == '\0' || k[3] == '.');
}

static bool write_valid(const struct ms_write *w, size_t i, struct ms_error *err)
{
    bson_iter_t it;
    const char *why = NULL;

    if (w->kind != MS_WRITE_UPSERT && w->kind != MS_WRITE_SET && w->kind != MS_WRITE_DELETE &&
        w->kind != MS_WRITE_SET_MANY) {
        why = "unknown kind";
    } else if (w->collection == NULL || w->collection[0] == '\0') {
        why = "no collection";
    } else if (w->kind == MS_WRITE_SET_MANY) {
        if (w->id == NULL || !bson_iter_init(&it, w->id) || !bson_iter_next(&it)) {
            why = "set_many without a filter (a non-empty query document)";
        } else if (w->doc == NULL || !bson_iter_init(&it, w->doc) || !bson_iter_next(&it)) {
            why = "set_many without fields to set";
        } else {
            do {
                if (names_id(bson_iter_key(&it))) {
                    why = "set_many of _id (the fields to set name other fields only)";
                }
            } while (why == NULL && bson_iter_next(&it));
        }
    } else if (w->id == NULL || !bson_iter_init(&it, w->id) || !bson_iter_next(&it) ||
               strcmp(bson_iter_key(&it), "_id") != 0 || bson_iter_next(&it)) {
        why = "id is not {\"_id\": value}";
    } else if (w->kind == MS_WRITE_UPSERT && w->doc == NULL) {
        why = "upsert without a document";
    } else if (w->kind == MS_WRITE_SET && (w->doc == NULL || !bson_iter_init(&it, w->doc))) {
        why = "set without a document";
    } else if (w->kind == MS_WRITE_SET) {
        while (why == NULL && bson_iter_next(&it)) {
            if (strcmp(bson_iter_key(&it), "_id") == 0) {
                why = "set of _id (the fields to set name the document's other fields only)";
            }
        }
    }
    if (why != NULL) {
        ms_error_set(err, MS_ERR_SYSTEM, EINVAL, "ms_sink_apply: write %zu: %s", i, why);
        return false;
    }
    return true;
}

/* The last field named key in doc, compared as bytes (never as a dotted path). BSON allows a
 * key twice; the last one is what a $set leaves. */
static bool find_last(const bson_t *doc, const char *key, bson_iter_t *out)
{
    bson_iter_t it;
    bool found = false;

    if (!bson_iter_init(&it, doc)) {
        return false;
    }
    while (bson_iter_next(&it)) {
        if (strcmp(bson_iter_key(&it), key) == 0) {
            *out = it;
            found = true;
        }
    }
    return found;
}

/* base with the fields of set applied, as a $set would leave it: base's fields in their place
 * (with set's value where set names them), then set's other fields in set's order. NULL when
 * out of memory or over libbson's size limit. */
static bson_t *merge_set(const bson_t *base, const bson_t *set)
{
    bson_t *out = bson_new();
    bson_iter_t it, v;
    bool ok = true;

    if (!bson_iter_init(&it, base)) {
        ok = false;
    }
    while (ok && bson_iter_next(&it)) {
        const char *k = bson_iter_key(&it);
        ok = bson_append_iter(out, k, -1, find_last(set, k, &v) ? &v : &it);
    }
    if (ok && !bson_iter_init(&it, set)) {
        ok = false;
    }
    while (ok && bson_iter_next(&it)) {
        const char *k = bson_iter_key(&it);
        bson_iter_t later = it, in_base;
        bool again = false;

        while (!again && bson_iter_next(&later)) {
            again = strcmp(bson_iter_key(&later), k) == 0;
        }
        if (!again && !find_last(base, k, &in_base)) {
            ok = bson_append_iter(out, k, -1, &it);
        }
    }
    if (!ok) {
        bson_destroy(out);
        return NULL;
    }
    return out;
}

/* What survives of write wi following prev, the surviving write to the same (collection, _id);
 * prev is left as it is. index: wi's place in the call, for the error message. */
static bool combine(const struct ms_write *wi, size_t index, const struct survivor *prev,
                    struct survivor *cur, struct ms_error *err)
{
    cur->kind = wi->kind;
    cur->doc = wi->kind != MS_WRITE_DELETE ? wi->doc : NULL;
    cur->merged = NULL;
    if (wi->kind == MS_WRITE_SET) {
        /* DELETE then SET re-creates the row with only these fields; UPSERT then SET is the
         * upsert with them; SET then SET sets both, the later winning */
        cur->kind = prev->kind == MS_WRITE_SET ? MS_WRITE_SET : MS_WRITE_UPSERT;
        cur->merged = merge_set(prev->kind == MS_WRITE_DELETE ? wi->id : prev->doc, wi->doc);
        if (cur->merged == NULL) {
            ms_error_set(err, MS_ERR_SYSTEM, ENOMEM,
                         "ms_sink_apply: write %zu: the merged document is too large", index);
            return false;
        }
        cur->doc = cur->merged;
    }
    return true;
}

/* Write i follows surv[j], the surviving write to the same (collection, _id): what survives. */
static bool coalesce_pair(const struct ms_write *w, size_t i, size_t base, struct survivor *prev,
                          struct survivor *cur, struct ms_error *err)
{
    prev->superseded = true;
    if (!combine(&w[i], base + i, prev, cur, err)) {
        return false;
    }
    bson_destroy(prev->merged);
    prev->merged = NULL;
    prev->doc = NULL;
    return true;
}

/* Coalesces the writes per (collection, _id), in order: surv[i] says what survives of w[i].
 * base: w[0]'s place in the call, for error messages. */
static bool coalesce(const struct ms_write *w, size_t n, size_t base, struct survivor *surv,
                     struct ms_error *err)
{
    bson_t *canon = bson_array_new(n);
    size_t cap = 16, *slots = NULL, ninit = 0;
    bool ok = false;

    while (cap < 2 * n) {
        cap *= 2;
    }
    slots = malloc(cap * sizeof(*slots));
    if (canon == NULL || slots == NULL) {
        ms_error_set(err, MS_ERR_SYSTEM, ENOMEM, "ms_sink_apply: out of memory");
        goto done;
    }
    for (size_t i = 0; i < cap; i++) {
        slots[i] = SIZE_MAX;
    }
    for (size_t i = 0; i < n; i++) {
        bson_iter_t it;
        uint64_t h;
        size_t slot;

        surv[i].kind = w[i].kind;
        surv[i].doc = w[i].kind != MS_WRITE_DELETE ? w[i].doc : NULL;
        surv[i].prev = SIZE_MAX;
        bson_init(&canon[i]);
        ninit++;
        bson_iter_init_find(&it, w[i].id, "_id");
        canon_append(&canon[i], "_id", &it);
        h = fnv1a(0xCBF29CE484222325ULL, w[i].collection, strlen(w[i].collection) + 1);
        h = fnv1a(h, bson_get_data(&canon[i]), canon[i].len);
        for (slot = (size_t)h & (cap - 1);; slot = (slot + 1) & (cap - 1)) {
            size_t j = slots[slot];
            if (j == SIZE_MAX) {
                slots[slot] = i;
                break;
            }
            if (canon[j].len == canon[i].len && strcmp(w[j].collection, w[i].collection) == 0 &&
                memcmp(bson_get_data(&canon[j]), bson_get_data(&canon[i]), canon[i].len) == 0) {
                if (!coalesce_pair(w, i, base, &surv[j], &surv[i], err)) {
                    goto done;
                }
                surv[i].prev = j;
                slots[slot] = i;
                break;
            }
        }
    }
    ok = true;
done:
    for (size_t i = 0; i < ninit; i++) {
        bson_destroy(&canon[i]);
    }
    free(canon);
    free(slots);
    return ok;
}

/* Refuses, before sending, the fields a $set would not take as the column names they are: ""
 * and "$x" (not storable), "a.b" (a path into field a: it would change a field the SET does
 * not name). */
static void check_set_fields(struct item *it)
{
    bson_iter_t f;

    if (!bson_iter_init(&f, it->doc)) {
        return;
    }
    while (bson_iter_next(&f)) {
        const char *k = bson_iter_key(&f);
        char msg[200];

        if (k[0] != '\0' && k[0] != '$' && strchr(k, '.') == NULL) {
            continue;
        }
        snprintf(msg, sizeof(msg), "field name '%.100s' cannot be set with $set: %s", k,
                 k[0] == '\0'  ? "it is empty"
                 : k[0] == '$' ? "it starts with '$'"
                               : "'.' would make it a path into another field");
        item_reject(it, MONGOC_ERROR_COMMAND_INVALID_ARG, "ClientValidation", msg);
        return;
    }
}

/* Refuses, before sending, the paths of a SET_MANY that are not storable: an empty part ("",
 * "a..b", "a.") or a part starting with '$'. Dotted paths are its point ({"category.name": x}
 * sets one field of a subdocument). */
static void check_set_many_fields(struct item *it)
{
    bson_iter_t f;

    if (!bson_iter_init(&f, it->doc)) {
        return;
    }
    while (bson_iter_next(&f)) {
        const char *k = bson_iter_key(&f), *part = k;
        bool bad = false;
        char msg[200];

        for (;;) {
            size_t len = strcspn(part, ".");
            if (len == 0 || part[0] == '$') {
                bad = true;
                break;
            }
            if (part[len] == '\0') {
                break;
            }
            part += len + 1;
        }
        if (!bad) {
            continue;
        }
        snprintf(msg, sizeof(msg), "field path '%.100s' cannot be set with $set: %s", k,
                 part[0] == '$' ? "a part starts with '$'" : "a part is empty");
        item_reject(it, MONGOC_ERROR_COMMAND_INVALID_ARG, "ClientValidation", msg);
        return;
    }
}

/* Coalesces and groups the writes (valid, no SET_MANY) by collection (in order of first
 * appearance), upserts and sets before deletes; documents over the BSON limit and field names
 * a $set would misread are refused here. base: w[0]'s place in the call, for error messages. */
static bool plan_build(const struct ms_write *w, size_t n, size_t base, struct plan *p,
                       struct ms_error *err)
{
    size_t *group_of = NULL, *fill = NULL, gcap = 0, last = SIZE_MAX;
    bool ok = false;

    memset(p, 0, sizeof(*p));
    p->surv = calloc(n, sizeof(*p->surv));
    group_of = calloc(n, sizeof(*group_of));
    if (p->surv == NULL || group_of == NULL) {
        ms_error_set(err, MS_ERR_SYSTEM, ENOMEM, "ms_sink_apply: out of memory");
        goto done;
    }
    p->nsurv = n;
    if (!coalesce(w, n, base, p->surv, err)) {
        goto done;
    }
    for (size_t i = 0; i < n; i++) {
        size_t g;

        if (p->surv[i].superseded) {
            continue;
        }
        if (last != SIZE_MAX && strcmp(p->groups[last].collection, w[i].collection) == 0) {
            g = last;
        } else {
            for (g = 0; g < p->ngroups; g++) {
                if (strcmp(p->groups[g].collection, w[i].collection) == 0) {
                    break;
                }
            }
            if (g == p->ngroups) {
                if (p->ngroups == gcap) {
                    size_t ncap = gcap == 0 ? 4 : gcap * 2;
                    struct group *ng = realloc(p->groups, ncap * sizeof(*ng));
                    if (ng == NULL) {
                        ms_error_set(err, MS_ERR_SYSTEM, ENOMEM, "ms_sink_apply: out of memory");
                        goto done;
                    }
                    p->groups = ng;
                    gcap = ncap;
                }
                memset(&p->groups[g], 0, sizeof(p->groups[g]));
                p->groups[g].collection = w[i].collection;
                p->ngroups++;
            }
        }
        last = g;
        group_of[i] = g;
        p->groups[g].n++;
        p->groups[g].nup += p->surv[i].kind != MS_WRITE_DELETE ? 1 : 0;
        p->nitems++;
    }
    p->items = calloc(p->nitems > 0 ? p->nitems : 1, sizeof(*p->items));
    fill = calloc(p->ngroups > 0 ? p->ngroups * 2 : 1, sizeof(*fill));
    if (p->items == NULL || fill == NULL) {
        ms_error_set(err, MS_ERR_SYSTEM, ENOMEM, "ms_sink_apply: out of memory");
        goto done;
    }
    for (size_t g = 0, at = 0; g < p->ngroups; g++) {
        p->groups[g].items = &p->items[at];
        at += p->groups[g].n;
    }
    for (size_t i = 0; i < n; i++) {
        const struct survivor *sv = &p->surv[i];
        struct group *g;
        struct item *it;

        if (sv->superseded) {
            continue;
        }
        g = &p->groups[group_of[i]];
        if (sv->kind != MS_WRITE_DELETE) {
            it = &g->items[fill[2 * group_of[i]]++];
            it->doc = sv->doc;
        } else {
            it = &g->items[g->nup + fill[2 * group_of[i] + 1]++];
        }
        it->kind = sv->kind;
        it->filter = w[i].id;
        it->w = &w[i];
        /* the write's own document, not one merged from a SET */
        it->insert_first =
            sv->kind == MS_WRITE_UPSERT && w[i].kind == MS_WRITE_UPSERT && w[i].insert_first;
        if (it->doc != NULL && it->doc->len > MS_SINK_MAX_DOC_SIZE) {
            char msg[160];
            snprintf(msg, sizeof(msg), "document is %u bytes, over the %d-byte BSON limit",
                     it->doc->len, MS_SINK_MAX_DOC_SIZE);
            item_reject(it, CODE_TOO_LARGE, "BSONObjectTooLarge", msg);
        } else if (it->kind == MS_WRITE_SET) {
            check_set_fields(it);
        }
    }
    ok = true;
done:
    free(group_of);
    free(fill);
    if (!ok) {
        plan_free(p);
    }
    return ok;
}

/* ---- public API ------------------------------------------------------------------------ */

static bool name_ok(const char *s)
{
    return s != NULL && s[0] != '\0' && strlen(s) < 120 && strpbrk(s, "$") == NULL;
}

struct ms_sink *ms_sink_new(mongoc_client_pool_t *pool, const char *database,
                            const struct ms_sink_opts *opts, struct ms_error *err)
{
    struct ms_sink *s = NULL;
    struct ms_sink_opts o = {.max_retries = -1};
    pthread_condattr_t ca;

    if (opts != NULL) {
        o = *opts;
    }
    if (o.retry_delay_ms == 0) {
        o.retry_delay_ms = DEFAULT_RETRY_DELAY_MS;
    }
    if (o.dead_letter_collection == NULL) {
        o.dead_letter_collection = DEFAULT_DEAD_LETTERS;
    }
    if (o.checkpoint_collection == NULL) {
        o.checkpoint_collection = DEFAULT_CHECKPOINTS;
    }
    if (pool == NULL || database == NULL || database[0] == '\0' || strlen(database) >= 64 ||
        strpbrk(database, "/\\. \"$") != NULL) {
        ms_error_set(err, MS_ERR_CONFIG, MS_CONFIG_BAD_VALUE, "sink: invalid database name '%s'",
                     database != NULL ? database : "(null)");
        return NULL;
    }
    if (!name_ok(o.dead_letter_collection) || !name_ok(o.checkpoint_collection) ||
        o.retry_delay_ms < 0) {
        ms_error_set(err, MS_ERR_CONFIG, MS_CONFIG_BAD_VALUE,
                     "sink: invalid options (collection names, retry delay)");
        return NULL;
    }
    s = calloc(1, sizeof(*s));
    if (s == NULL) {
        ms_error_set(err, MS_ERR_SYSTEM, ENOMEM, "sink: out of memory");
        return NULL;
    }
    s->pool = pool;
    s->max_retries = o.max_retries;
    s->retry_delay_ms = o.retry_delay_ms;
    s->database = strdup(database);
    s->dead_letters = strdup(o.dead_letter_collection);
    s->checkpoints = strdup(o.checkpoint_collection);
    atomic_init(&s->cp_default_wc, false);
    atomic_init(&s->cancelled, false);
    atomic_init(&s->seed, (uint64_t)ms_clock_wall_ms() ^ (uint64_t)(uintptr_t)s);
    pthread_mutex_init(&s->mu, NULL);
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&s->cv, &ca);
    pthread_condattr_destroy(&ca);
    if (s->database == NULL || s->dead_letters == NULL || s->checkpoints == NULL) {
        ms_error_set(err, MS_ERR_SYSTEM, ENOMEM, "sink: out of memory");
        ms_sink_destroy(s);
        return NULL;
    }
    return s;
}

void ms_sink_destroy(struct ms_sink *s)
{
    if (s == NULL) {
        return;
    }
    pthread_cond_destroy(&s->cv);
    pthread_mutex_destroy(&s->mu);
    free(s->database);
    free(s->dead_letters);
    free(s->checkpoints);
    free(s);
}

void ms_sink_cancel(struct ms_sink *s)
{
    if (s == NULL) {
        return;
    }
    pthread_mutex_lock(&s->mu);
    atomic_store(&s->cancelled, true);
    pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->mu);
}

void ms_sink_wake(struct ms_sink *s)
{
    if (s == NULL) {
        return;
    }
    pthread_mutex_lock(&s->mu);
    s->wakes++;
    pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->mu);
}

/* The caller's room for per-collection counts (ms_sink_apply_per_collection). */
struct per_collection {
    struct ms_sink_collection_result *v;
    size_t cap, n;
};

/* The entry of collection (added when there is room; NULL when there is none). */
static struct ms_sink_collection_result *per_entry(struct per_collection *per,
                                                   const char *collection)
{
    for (size_t i = 0; i < per->n; i++) {
        if (strcmp(per->v[i].collection, collection) == 0) {
            return &per->v[i];
        }
    }
    if (per->n == per->cap) {
        return NULL;
    }
    per->v[per->n] = (struct ms_sink_collection_result){.collection = collection};
    return &per->v[per->n++];
}

/* Writes one collection's items; refusals stay in the items (dead letters come after the
 * duplicate-key retries of the segment). */
static bool flush_group(struct call *c, struct group *g, struct ms_sink_result *res,
                        struct per_collection *per, struct ms_error *err)
{
    struct counts k = {0};
    int64_t t0 = ms_clock_mono_ms();
    size_t nrej = 0;

    if (!run_items(c, g->collection, g->items, g->n, &k, err)) {
        return false;
    }
    res->upserted += (uint64_t)k.upserted;
    res->matched += (uint64_t)k.matched;
    res->modified += (uint64_t)k.modified;
    res->deleted += (uint64_t)k.deleted;
    for (size_t i = 0; i < g->n; i++) {
        nrej += g->items[i].rejected ? 1 : 0;
    }
    {
        struct ms_sink_collection_result *e = per_entry(per, g->collection);
        if (e != NULL) {
            e->upserted += (uint64_t)k.upserted;
            e->matched += (uint64_t)k.matched;
            e->deleted += (uint64_t)k.deleted;
        }
    }
    ms_log_kv(MS_LOG_DEBUG,
              ((struct ms_log_field[]){
                  MS_LF_STR("collection", g->collection), MS_LF_INT("upserted", k.upserted),
                  MS_LF_INT("matched", k.matched), MS_LF_INT("deleted", k.deleted),
                  MS_LF_INT("refused", (int64_t)nrej),
                  MS_LF_INT("duration_ms", ms_clock_mono_ms() - t0)}),
              "bulk flushed");
    return true;
}

/* ---- duplicate keys: one more try after the rest of the segment ------------------------ */

/* One statement of the replay of a write refused for a duplicate key: the state of its
 * document after one of the segment's writes to it. */
struct step {
    size_t write;          /* index in the segment */
    size_t deferred;       /* which refused item */
    bool last;             /* the item's own (final) state */
    struct survivor state; /* kind and document; merged owned */
};

static int step_cmp(const void *a, const void *b)
{
    const struct step *x = a, *y = b;

    return x->write < y->write ? -1 : x->write > y->write ? 1 : 0;
}

/* Upserts and sets refused for a duplicate key are tried once more, now that every other write
 * of the segment is applied (a delete, or a move of the value to another document, may have
 * freed the value). Coalescing can order two documents' final states so that neither fits
 * (P1 sku A->C, P2 B->A, P1 C->B: P1's B before P2 leaves B, P2's A before P1 leaves A), so
 * each refused document is replayed through its states after each of its writes, all in the
 * order of the writes (P1 C, P2 A, P1 B). A step before the last one that is refused is
 * skipped (the later states carry everything); the last one's refusal stays the item's, and
 * it is dead-lettered as before. */
static bool retry_duplicates(struct call *c, const struct ms_write *w, size_t base, struct plan *p,
                             struct ms_sink_result *res, struct ms_error *err)
{
    struct item **deferred = NULL;
    struct counts *per = NULL;
    struct step *steps = NULL;
    size_t nd = 0, nsteps = 0, fixed = 0;
    int64_t t0 = ms_clock_mono_ms();
    bool ok = false;

    for (size_t i = 0; i < p->nitems; i++) {
        const struct item *it = &p->items[i];

        if (it->rejected && it->code == CODE_DUPLICATE_KEY && it->kind != MS_WRITE_DELETE) {
            nd++;
            for (size_t j = (size_t)(it->w - w); j != SIZE_MAX; j = p->surv[j].prev) {
                nsteps++;
            }
        }
    }
    if (nd == 0) {
        return true;
    }
    deferred = calloc(nd, sizeof(*deferred));
    per = calloc(nd, sizeof(*per));
    steps = calloc(nsteps, sizeof(*steps));
    if (deferred == NULL || per == NULL || steps == NULL) {
        ms_error_set(err, MS_ERR_SYSTEM, ENOMEM, "ms_sink_apply: out of memory");
        goto done;
    }
    nd = 0;
    nsteps = 0;
    for (size_t i = 0; i < p->nitems; i++) {
        struct item *it = &p->items[i];
        size_t first = nsteps;

        if (!it->rejected || it->code != CODE_DUPLICATE_KEY || it->kind == MS_WRITE_DELETE) {
            continue;
        }
        deferred[nd] = it;
        for (size_t j = (size_t)(it->w - w); j != SIZE_MAX; j = p->surv[j].prev) {
            steps[nsteps].write = j;
            steps[nsteps].deferred = nd;
            nsteps++;
        }
        for (size_t lo = first, hi = nsteps - 1; lo < hi; lo++, hi--) {
            size_t t = steps[lo].write;
            steps[lo].write = steps[hi].write;
            steps[hi].write = t;
        }
        steps[nsteps - 1].last = true;
        for (size_t k = first; k < nsteps; k++) {
            const struct ms_write *wk = &w[steps[k].write];
            struct survivor *st = &steps[k].state;

            if (k == first) {
                st->kind = wk->kind;
                st->doc = wk->kind != MS_WRITE_DELETE ? wk->doc : NULL;
            } else if (!combine(wk, base + steps[k].write, &steps[k - 1].state, st, err)) {
                goto done;
            }
        }
        nd++;
    }
    qsort(steps, nsteps, sizeof(*steps), step_cmp);
    ms_log_kv(MS_LOG_INFO,
              ((struct ms_log_field[]){MS_LF_INT("writes", (int64_t)nd),
                                       MS_LF_INT("statements", (int64_t)nsteps)}),
              "writes refused for a duplicate key: trying them again after the rest of the batch, "
              "in the order of the changes");
    for (size_t k = 0; k < nsteps; k++) {
        const struct step *st = &steps[k];
        const struct ms_write *wk = &w[st->write];
        struct item *orig = deferred[st->deferred];
        struct item si = {.kind = st->state.kind, .filter = wk->id, .doc = st->state.doc, .w = wk};
        struct counts d = {0};

        if (si.kind == MS_WRITE_SET) {
            check_set_fields(&si);
        }
        if (!run_items(c, wk->collection, &si, 1, &d, err)) {
            items_cleanup(&si, 1);
            goto done;
        }
        counts_add(&per[st->deferred], &d);
        if (st->last && si.rejected) {
            item_reject(orig, si.code, si.code_name, si.msg);
        } else if (st->last) {
            free(orig->msg);
            orig->msg = NULL;
            orig->rejected = false;
            fixed++;
            if (per[st->deferred].upserted > 0) {
                res->upserted++;
            } else {
                res->matched++;
                res->modified += per[st->deferred].modified > 0 ? 1 : 0;
            }
        }
        items_cleanup(&si, 1);
    }
    ms_log_kv(MS_LOG_INFO,
              ((struct ms_log_field[]){MS_LF_INT("applied", (int64_t)fixed),
                                       MS_LF_INT("refused_again", (int64_t)(nd - fixed)),
                                       MS_LF_INT("duration_ms", ms_clock_mono_ms() - t0)}),
              "writes refused for a duplicate key tried again");
    ok = true;
done:
    for (size_t k = 0; steps != NULL && k < nsteps; k++) {
        bson_destroy(steps[k].state.merged);
    }
    free(steps);
    free(per);
    free(deferred);
    return ok;
}

/* ---- applying a call: segments between SET_MANY barriers ------------------------------- */

/* Applies w[0, n) (valid, no SET_MANY): coalesced bulks per collection, then the writes refused
 * for a duplicate key once more, then the dead letters. base: w[0]'s place in the call. */
static bool apply_segment(struct call *c, const struct ms_write *w, size_t n, size_t base,
                          struct ms_sink_result *res, struct per_collection *per,
                          struct ms_error *err)
{
    struct plan p;
    size_t nrej = 0;
    bool ok = false;

    if (!plan_build(w, n, base, &p, err)) {
        return false;
    }
    for (size_t g = 0; g < p.ngroups; g++) {
        if (!flush_group(c, &p.groups[g], res, per, err)) {
            goto done;
        }
    }
    if (!retry_duplicates(c, w, base, &p, res, err)) {
        goto done;
    }
    for (size_t i = 0; i < p.nitems; i++) {
        nrej += p.items[i].rejected ? 1 : 0;
    }
    if (nrej > 0 && !write_dead_letters(c, p.items, p.nitems, nrej, res, err)) {
        goto done;
    }
    for (size_t i = 0; i < p.nitems && nrej > 0; i++) {
        struct ms_sink_collection_result *e =
            p.items[i].rejected ? per_entry(per, p.items[i].w->collection) : NULL;
        if (e != NULL) {
            e->dead_lettered++;
        }
    }
    ok = true;
done:
    plan_free(&p);
    return ok;
}

/* One SET_MANY: updateMany(filter, {$set: doc}), a statement of its own; refused: a dead
 * letter. */
static bool apply_set_many(struct call *c, const struct ms_write *w, struct ms_sink_result *res,
                           struct per_collection *per, struct ms_error *err)
{
    struct item it = {.kind = MS_WRITE_SET_MANY, .filter = w->id, .doc = w->doc, .w = w};
    struct counts k = {0};
    int64_t t0 = ms_clock_mono_ms();
    bool ok = false;

    check_set_many_fields(&it);
    if (!run_items(c, w->collection, &it, 1, &k, err)) {
        goto done;
    }
    res->matched += (uint64_t)k.matched;
    res->modified += (uint64_t)k.modified;
    if (it.rejected && !write_dead_letters(c, &it, 1, 1, res, err)) {
        goto done;
    }
    {
        struct ms_sink_collection_result *e = per_entry(per, w->collection);
        if (e != NULL) {
            e->matched += (uint64_t)k.matched;
            e->dead_lettered += it.rejected ? 1 : 0;
        }
    }
    ms_log_kv(MS_LOG_DEBUG,
              ((struct ms_log_field[]){
                  MS_LF_STR("collection", w->collection), MS_LF_INT("matched", k.matched),
                  MS_LF_INT("modified", k.modified), MS_LF_INT("refused", it.rejected ? 1 : 0),
                  MS_LF_INT("duration_ms", ms_clock_mono_ms() - t0)}),
              "set_many applied");
    ok = true;
done:
    items_cleanup(&it, 1);
    return ok;
}

bool ms_sink_apply(struct ms_sink *s, const struct ms_write *w, size_t n,
                   struct ms_sink_result *res, struct ms_error *err)
{
    return ms_sink_apply_per_collection(s, w, n, res, NULL, 0, NULL, err);
}

bool ms_sink_apply_per_collection(struct ms_sink *s, const struct ms_write *w, size_t n,
                                  struct ms_sink_result *res, struct ms_sink_collection_result *per,
                                  size_t per_cap, size_t *nper, struct ms_error *err)
{
    struct ms_sink_result local;
    struct per_collection pc = {per, per != NULL ? per_cap : 0, 0};
    struct call c;
    bool ok = false;

    if (res == NULL) {
        res = &local;
    }
    memset(res, 0, sizeof(*res));
    if (nper != NULL) {
        *nper = 0;
    }
    if (s == NULL || (n > 0 && w == NULL)) {
        ms_error_set(err, MS_ERR_SYSTEM, EINVAL, "ms_sink_apply: no sink or no writes");
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        if (!write_valid(&w[i], i, err)) {
            return false;
        }
    }
    if (n == 0) {
        return true;
    }
    call_init(&c, s);
    /* a SET_MANY is a barrier: the writes before it are applied first, those after it later */
    for (size_t i = 0, start = 0; i <= n; i++) {
        if (i < n && w[i].kind != MS_WRITE_SET_MANY) {
            continue;
        }
        if (i > start && !apply_segment(&c, w + start, i - start, start, res, &pc, err)) {
            goto done;
        }
        if (i < n && !apply_set_many(&c, &w[i], res, &pc, err)) {
            goto done;
        }
        start = i + 1;
    }
    ok = true;
done:
    res->retries = c.retries;
    if (nper != NULL) {
        *nper = pc.n;
    }
    call_cleanup(&c);
    return ok;
}

static bool str_ok(const char *s, bool may_be_null)
{
    if (s == NULL) {
        return may_be_null;
    }
    return s[0] != '\0' && bson_utf8_validate(s, strlen(s), false);
}

bool ms_sink_dead_letter(struct ms_sink *s, const char *collection, const char *source,
                         const char *position, const char *op, const bson_t *doc,
                         const struct ms_error *why, struct ms_error *err)
{
    struct letter l;
    struct call c;
    char why_msg[sizeof(why->msg) + 1];
    char *msg;
    bool ok;

    if (s == NULL || why == NULL || !str_ok(collection, true) || !str_ok(source, false) ||
        !str_ok(position, true) || !str_ok(op, false)) {
        ms_error_set(err, MS_ERR_SYSTEM, EINVAL,
                     "ms_sink_dead_letter: no sink, no reason, or a missing, empty or invalid "
                     "name (source, position, op, collection)");
        return false;
    }
    /* why->msg is NUL-terminated by ms_error_set(), but a reason is the caller's data */
    snprintf(why_msg, sizeof(why_msg), "%.*s", (int)strnlen(why->msg, sizeof(why->msg)), why->msg);
    msg = dup_utf8_cut(why_msg, ERRMSG_MAX);
    if (msg == NULL) {
        ms_error_set(err, MS_ERR_SYSTEM, ENOMEM, "ms_sink_dead_letter: out of memory");
        return false;
    }
    l = (struct letter){.collection = collection,
                        .source = source,
                        .position = position,
                        .op = op,
                        .doc = doc,
                        .code = why->code,
                        .code_name = ms_error_domain_name(why->domain),
                        .msg = msg};
    call_init(&c, s);
    ok = write_letters(&c, &l, 1, err);
    call_cleanup(&c);
    if (ok) {
        ms_log_kv(MS_LOG_WARN,
                  ((struct ms_log_field[]){
                      MS_LF_STR("collection", collection), MS_LF_STR("source", source),
                      MS_LF_STR("position", position), MS_LF_STR("op", op),
                      MS_LF_STR("domain", ms_error_domain_name(why->domain)),
                      MS_LF_INT("code", why->code), MS_LF_STR("dead_letters", s->dead_letters)}),
                  "change not applied, dead-lettered");
    } else {
        ms_error_prefix(err, "dead letter for the %s of %s at %s", op, source,
                        position != NULL ? position : "?");
    }
    free(msg);
    return ok;
}

/* ---- checkpoints ----------------------------------------------------------------------- */

struct cp_save {
    const char *pipeline;
    const bson_t *doc;
};

/* Codes of a server refusing the write concern itself (no journal, not a replica set). */
static bool write_concern_refused(const bson_error_t *e)
{
    switch (e->code) {
    case 2:   /* BadValue: "cannot use 'j' option when a host does not have journaling" */
    case 9:   /* FailedToParse */
    case 14:  /* TypeMismatch */
    case 79:  /* UnknownReplWriteConcern */
    case 100: /* UnsatisfiableWriteConcern */
        return e->domain == MONGOC_ERROR_SERVER || e->domain == MONGOC_ERROR_QUERY ||
               e->domain == MONGOC_ERROR_COMMAND || e->domain == MONGOC_ERROR_WRITE_CONCERN;
    default:
        return false;
    }
}

static enum outcome cp_save_attempt(struct call *c, void *arg, bson_error_t *berr)
{
    struct cp_save *a = arg;
    mongoc_collection_t *coll =
        mongoc_client_get_collection(c->client, c->s->database, c->s->checkpoints);
    bson_t *filter = BCON_NEW("_id", BCON_UTF8(a->pipeline));
    bool default_wc = atomic_load(&c->s->cp_default_wc);
    bson_t *opts;
    bson_t reply;
    bool ok;

    if (default_wc) {
        opts = BCON_NEW("upsert", BCON_BOOL(true));
    } else {
        opts = BCON_NEW("upsert", BCON_BOOL(true), "writeConcern", "{", "w", BCON_UTF8("majority"),
                        "j", BCON_BOOL(true), "wtimeout", BCON_INT32(CHECKPOINT_WTIMEOUT_MS), "}");
    }
    ok = mongoc_collection_replace_one(coll, filter, a->doc, opts, &reply, berr);
    bson_destroy(&reply);
    bson_destroy(opts);
    bson_destroy(filter);
    mongoc_collection_destroy(coll);
    if (ok) {
        return OUT_DONE;
    }
    if (!default_wc && write_concern_refused(berr)) {
        atomic_store(&c->s->cp_default_wc, true);
        ms_log_kv(MS_LOG_INFO,
                  ((struct ms_log_field[]){MS_LF_INT("code", berr->code),
                                           MS_LF_STR("error", berr->message)}),
                  "the server refuses write concern {w: majority, j: true}; checkpoints use its "
                  "default write concern");
        return OUT_AGAIN;
    }
    return transient_error(berr) ? OUT_TRANSIENT : OUT_FATAL;
}

bool ms_sink_checkpoint_save(struct ms_sink *s, const char *pipeline,
                             const struct ms_checkpoint *cp, struct ms_error *err)
{
    struct cp_save a = {.pipeline = pipeline};
    struct call c;
    bson_t doc = BSON_INITIALIZER;
    bool ok;

    if (s == NULL || pipeline == NULL || pipeline[0] == '\0' || cp == NULL ||
        strnlen(cp->file, sizeof(cp->file)) == sizeof(cp->file) ||
        strnlen(cp->gtid, sizeof(cp->gtid)) == sizeof(cp->gtid) || cp->pos > INT64_MAX) {
        ms_error_set(err, MS_ERR_SYSTEM, EINVAL, "checkpoint save: invalid arguments");
        bson_destroy(&doc);
        return false;
    }
    bson_append_utf8(&doc, "_id", 3, pipeline, -1);
    bson_append_utf8(&doc, "file", -1, cp->file, -1);
    bson_append_int64(&doc, "pos", -1, (int64_t)cp->pos);
    bson_append_utf8(&doc, "gtid", -1, cp->gtid, -1);
    bson_append_date_time(&doc, "event_time", -1, cp->event_time_ms);
    bson_append_date_time(&doc, "updated_at", -1, ms_clock_wall_ms());
    a.doc = &doc;
    call_init(&c, s);
    ok = with_retries(&c, "checkpoint save", s->checkpoints, cp_save_attempt, &a, err);
    call_cleanup(&c);
    bson_destroy(&doc);
    return ok;
}

struct cp_load {
    const char *pipeline;
    bson_t *doc; /* a copy of the checkpoint document, NULL when there is none */
};

static enum outcome cp_load_attempt(struct call *c, void *arg, bson_error_t *berr)
{
    struct cp_load *a = arg;
    mongoc_collection_t *coll =
        mongoc_client_get_collection(c->client, c->s->database, c->s->checkpoints);
    bson_t *filter = BCON_NEW("_id", BCON_UTF8(a->pipeline));
    bson_t *opts = BCON_NEW("limit", BCON_INT64(1));
    mongoc_cursor_t *cur = mongoc_collection_find_with_opts(coll, filter, opts, NULL);
    const bson_t *got;
    enum outcome o = OUT_DONE;

    bson_destroy(a->doc);
    a->doc = NULL;
    if (mongoc_cursor_next(cur, &got)) {
        a->doc = bson_copy(got);
    }
    if (mongoc_cursor_error(cur, berr)) {
        bson_destroy(a->doc);
        a->doc = NULL;
        o = transient_error(berr) ? OUT_TRANSIENT : OUT_FATAL;
    }
    mongoc_cursor_destroy(cur);
    bson_destroy(opts);
    bson_destroy(filter);
    mongoc_collection_destroy(coll);
    return o;
}

static bool cp_parse(const bson_t *doc, const char *pipeline, struct ms_checkpoint *cp,
                     struct ms_error *err)
{
    bson_iter_t it;
    const char *bad = NULL;

    if (!bson_iter_init(&it, doc)) {
        bad = "document";
    }
    while (bad == NULL && bson_iter_next(&it)) {
        const char *k = bson_iter_key(&it);
        uint32_t len;
        const char *v;

        if (strcmp(k, "file") == 0 || strcmp(k, "gtid") == 0) {
            char *dst = k[0] == 'f' ? cp->file : cp->gtid;
            size_t cap = k[0] == 'f' ? sizeof(cp->file) : sizeof(cp->gtid);
            if (!BSON_ITER_HOLDS_UTF8(&it)) {
                bad = k;
                continue;
            }
            v = bson_iter_utf8(&it, &len);
            if (len >= cap) {
                bad = k;
                continue;
            }
            memcpy(dst, v, len);
            dst[len] = '\0';
        } else if (strcmp(k, "pos") == 0) {
            if (!BSON_ITER_HOLDS_NUMBER(&it) || bson_iter_as_int64(&it) < 0) {
                bad = k;
                continue;
            }
            cp->pos = (uint64_t)bson_iter_as_int64(&it);
        } else if (strcmp(k, "event_time") == 0) {
            if (!BSON_ITER_HOLDS_DATE_TIME(&it)) {
                bad = k;
                continue;
            }
            cp->event_time_ms = bson_iter_date_time(&it);
        }
    }
    if (bad != NULL) {
        ms_error_set(err, MS_ERR_MONGO, 0, "checkpoint '%s' is malformed: field '%s'", pipeline,
                     bad);
        return false;
    }
    return true;
}

bool ms_sink_checkpoint_load(struct ms_sink *s, const char *pipeline, struct ms_checkpoint *cp,
                             bool *found, struct ms_error *err)
{
    struct cp_load a = {.pipeline = pipeline};
    struct call c;
    bool ok = false;

    if (cp != NULL) {
        memset(cp, 0, sizeof(*cp));
    }
    if (found != NULL) {
        *found = false;
    }
    if (s == NULL || pipeline == NULL || pipeline[0] == '\0' || cp == NULL || found == NULL) {
        ms_error_set(err, MS_ERR_SYSTEM, EINVAL, "checkpoint load: invalid arguments");
        return false;
    }
    call_init(&c, s);
    if (!with_retries(&c, "checkpoint load", s->checkpoints, cp_load_attempt, &a, err)) {
        goto done;
    }
    if (a.doc != NULL) {
        if (!cp_parse(a.doc, pipeline, cp, err)) {
            memset(cp, 0, sizeof(*cp));
            goto done;
        }
        *found = true;
    }
    ok = true;
done:
    call_cleanup(&c);
    bson_destroy(a.doc);
    return ok;
}

bool ms_sink_state_save(struct ms_sink *s, const char *id, const bson_t *doc, struct ms_error *err)
{
    struct cp_save a = {.pipeline = id};
    struct call c;
    bson_t full = BSON_INITIALIZER;
    bson_iter_t it;
    bool ok;

    if (s == NULL || id == NULL || id[0] == '\0' || doc == NULL) {
        ms_error_set(err, MS_ERR_SYSTEM, EINVAL, "state save: invalid arguments");
        bson_destroy(&full);
        return false;
    }
    bson_append_utf8(&full, "_id", 3, id, -1);
    if (bson_iter_init(&it, doc)) {
        while (bson_iter_next(&it)) {
            if (strcmp(bson_iter_key(&it), "_id") != 0) {
                bson_append_iter(&full, NULL, 0, &it);
            }
        }
    }
    bson_append_date_time(&full, "updated_at", -1, ms_clock_wall_ms());
    a.doc = &full;
    call_init(&c, s);
    ok = with_retries(&c, "state save", s->checkpoints, cp_save_attempt, &a, err);
    call_cleanup(&c);
    bson_destroy(&full);
    return ok;
}

bool ms_sink_state_load(struct ms_sink *s, const char *id, bson_t *out, bool *found,
                        struct ms_error *err)
{
    struct cp_load a = {.pipeline = id};
    struct call c;
    bool ok;

    *found = false;
    if (s == NULL || id == NULL || id[0] == '\0' || out == NULL) {
        ms_error_set(err, MS_ERR_SYSTEM, EINVAL, "state load: invalid arguments");
        return false;
    }
    call_init(&c, s);
    ok = with_retries(&c, "state load", s->checkpoints, cp_load_attempt, &a, err);
    call_cleanup(&c);
    if (ok && a.doc != NULL) {
        *found = true;
        bson_concat(out, a.doc);
    }
    bson_destroy(a.doc);
    return ok;
}

/* ---- every document of a collection (a TRUNCATE) ---------------------------------------- */

struct delete_all {
    const char *collection;
    int64_t deleted;
};

static enum outcome delete_all_attempt(struct call *c, void *arg, bson_error_t *berr)
{
    struct delete_all *a = arg;
    mongoc_collection_t *col =
        mongoc_client_get_collection(c->client, c->s->database, a->collection);
    bson_t filter = BSON_INITIALIZER, reply;
    bson_iter_t it;
    bool ok = mongoc_collection_delete_many(col, &filter, NULL, &reply, berr);

    if (ok && bson_iter_init_find(&it, &reply, "deletedCount") && BSON_ITER_HOLDS_NUMBER(&it)) {
        a->deleted += bson_iter_as_int64(&it); /* a retry adds what remained */
    }
    bson_destroy(&reply);
    bson_destroy(&filter);
    mongoc_collection_destroy(col);
    if (ok) {
        return OUT_DONE;
    }
    return transient_error(berr) ? OUT_TRANSIENT : OUT_FATAL;
}

/* One attempt function run as a public call: a pooled client, retries of transient errors. */
static bool one_call(struct ms_sink *s, const char *what, const char *collection, attempt_fn fn,
                     void *arg, struct ms_error *err)
{
    struct call c;
    bool ok;

    call_init(&c, s);
    ok = with_retries(&c, what, collection, fn, arg, err);
    call_cleanup(&c);
    return ok;
}

bool ms_sink_delete_all(struct ms_sink *s, const char *collection, uint64_t *deleted,
                        struct ms_error *err)
{
    struct delete_all a = {.collection = collection};
    bool ok;

    if (s == NULL || collection == NULL || collection[0] == '\0') {
        ms_error_set(err, MS_ERR_SYSTEM, EINVAL, "delete all: invalid arguments");
        return false;
    }
    ok = one_call(s, "delete all", collection, delete_all_attempt, &a, err);
    if (!ok) {
        ms_error_prefix(err, "deleting every document of %s", collection);
    }
    if (deleted != NULL) {
        *deleted = (uint64_t)a.deleted;
    }
    return ok;
}

#define SWEEP_ROUND 10000 /* stale _ids held at once: more are deleted in further rounds */

struct sweep {
    const char *collection;
    bool (*keep)(void *u, const char *collection, const bson_t *id);
    void *u;
    int64_t deleted;
};

/* One round: reads every _id, deletes up to SWEEP_ROUND unwanted ones. *more: the round
 * stopped at the limit. */
static enum outcome sweep_round(struct call *c, struct sweep *a, bool *more, bson_error_t *berr)
{
    mongoc_collection_t *col =
        mongoc_client_get_collection(c->client, c->s->database, a->collection);
    bson_t filter = BSON_INITIALIZER, stale = BSON_INITIALIZER;
    bson_t *opts = BCON_NEW("projection", "{", "_id", BCON_INT32(1), "}");
    mongoc_cursor_t *cur = mongoc_collection_find_with_opts(col, &filter, opts, NULL);
    const bson_t *doc;
    uint32_t n = 0;
    bool ok;

    *more = false;
    while (mongoc_cursor_next(cur, &doc)) {
        bson_iter_t id;
        bson_t idq = BSON_INITIALIZER;
        bool keep;

        if (!bson_iter_init_find(&id, doc, "_id")) {
            bson_destroy(&idq);
            continue;
        }
        bson_append_iter(&idq, "_id", 3, &id);
        keep = a->keep(a->u, a->collection, &idq);
        if (!keep) {
            char k[16];
            const char *key;
            bson_uint32_to_string(n++, &key, k, sizeof(k));
            BSON_APPEND_DOCUMENT(&stale, key, &idq);
        }
        bson_destroy(&idq);
        if (n == SWEEP_ROUND) {
            *more = true;
            break;
        }
    }
    ok = !mongoc_cursor_error(cur, berr);
    mongoc_cursor_destroy(cur);
    if (ok && n > 0) {
        bson_t *bopts = BCON_NEW("ordered", BCON_BOOL(false));
        mongoc_bulk_operation_t *bulk =
            mongoc_collection_create_bulk_operation_with_opts(col, bopts);
        bson_iter_t it;
        bson_t reply;

        bson_iter_init(&it, &stale);
        while (bson_iter_next(&it)) {
            bson_t q;
            const uint8_t *data;
            uint32_t len;
            bson_iter_document(&it, &len, &data);
            if (bson_init_static(&q, data, len)) {
                mongoc_bulk_operation_remove_one_with_opts(bulk, &q, NULL, NULL);
            }
        }
        ok = mongoc_bulk_operation_execute(bulk, &reply, berr) != 0;
        if (ok) {
            bson_iter_t r;
            if (bson_iter_init_find(&r, &reply, "nRemoved") && BSON_ITER_HOLDS_NUMBER(&r)) {
                a->deleted += bson_iter_as_int64(&r);
            }
        }
        bson_destroy(&reply);
        mongoc_bulk_operation_destroy(bulk);
        bson_destroy(bopts);
    }
    bson_destroy(opts);
    bson_destroy(&stale);
    bson_destroy(&filter);
    mongoc_collection_destroy(col);
    if (ok) {
        return OUT_DONE;
    }
    return transient_error(berr) ? OUT_TRANSIENT : OUT_FATAL;
}

static enum outcome sweep_attempt(struct call *c, void *arg, bson_error_t *berr)
{
    struct sweep *a = arg;
    bool more = true;
    enum outcome o = OUT_DONE;

    while (more && o == OUT_DONE) {
        o = sweep_round(c, a, &more, berr);
    }
    return o;
}

bool ms_sink_sweep(struct ms_sink *s, const char *collection,
                   bool (*keep)(void *u, const char *collection, const bson_t *id), void *u,
                   uint64_t *deleted, struct ms_error *err)
{
    struct sweep a = {.collection = collection, .keep = keep, .u = u};
    bool ok;

    if (s == NULL || collection == NULL || collection[0] == '\0' || keep == NULL) {
        ms_error_set(err, MS_ERR_SYSTEM, EINVAL, "sweep: invalid arguments");
        return false;
    }
    ok = one_call(s, "sweep", collection, sweep_attempt, &a, err);
    if (!ok) {
        ms_error_prefix(err, "sweeping %s", collection);
    }
    if (deleted != NULL) {
        *deleted = (uint64_t)a.deleted;
    }
    return ok;
}

/* ---- indexes --------------------------------------------------------------------------- */

struct index_cmd {
    const bson_t *cmd;
};

static enum outcome index_attempt(struct call *c, void *arg, bson_error_t *berr)
{
    struct index_cmd *a = arg;
    mongoc_database_t *db = mongoc_client_get_database(c->client, c->s->database);
    bson_t reply;
    bool ok = mongoc_database_write_command_with_opts(db, a->cmd, NULL, &reply, berr);

    bson_destroy(&reply);
    mongoc_database_destroy(db);
    if (ok) {
        return OUT_DONE;
    }
    return transient_error(berr) ? OUT_TRANSIENT : OUT_FATAL;
}

bool ms_sink_ensure_index(struct ms_sink *s, const char *collection, const bson_t *keys,
                          bool unique, const char *name, struct ms_error *err)
{
    bson_t opts = BSON_INITIALIZER;
    bool ok;

    if (unique) {
        bson_append_bool(&opts, "unique", -1, true);
    }
    ok = ms_sink_ensure_index_opts(s, collection, keys, &opts, name, err);
    bson_destroy(&opts);
    return ok;
}

bool ms_sink_ensure_index_opts(struct ms_sink *s, const char *collection, const bson_t *keys,
                               const bson_t *opts, const char *name, struct ms_error *err)
{
    struct index_cmd a;
    struct call c;
    char *generated = NULL;
    bson_t cmd = BSON_INITIALIZER, arr, spec;
    bson_iter_t it;
    bool ok;

    if (s == NULL || collection == NULL || collection[0] == '\0' || keys == NULL ||
        bson_empty(keys) || (opts != NULL && !bson_iter_init(&it, opts))) {
        ms_error_set(err, MS_ERR_SYSTEM, EINVAL, "ensure index: invalid arguments");
        bson_destroy(&cmd);
        return false;
    }
    while (opts != NULL && bson_iter_next(&it)) {
        const char *k = bson_iter_key(&it);
        if (strcmp(k, "key") == 0 || strcmp(k, "name") == 0) {
            ms_error_set(err, MS_ERR_SYSTEM, EINVAL,
                         "ensure index: option '%s' is an argument of its own", k);
            bson_destroy(&cmd);
            return false;
        }
    }
    if (name == NULL) {
        generated = mongoc_collection_keys_to_index_string(keys);
        name = generated;
    }
    bson_append_utf8(&cmd, "createIndexes", -1, collection, -1);
    bson_append_array_begin(&cmd, "indexes", -1, &arr);
    bson_append_document_begin(&arr, "0", 1, &spec);
    bson_append_document(&spec, "key", -1, keys);
    bson_append_utf8(&spec, "name", -1, name != NULL ? name : "", -1);
    if (opts != NULL) {
        bson_concat(&spec, opts);
    }
    bson_append_document_end(&arr, &spec);
    bson_append_array_end(&cmd, &arr);
    a.cmd = &cmd;
    call_init(&c, s);
    ok = with_retries(&c, "create index", collection, index_attempt, &a, err);
    call_cleanup(&c);
    if (!ok) {
        ms_error_prefix(err, "index %s on %s", name != NULL ? name : "?", collection);
    }
    bson_free(generated);
    bson_destroy(&cmd);
    return ok;
}

/* The bare libmongoc side of bench/e2e.sh, and the small MongoDB client steps the script needs:
 *
 *   bench_loader load URI DB COLL FILE BATCH insert|upsert
 *       writes the documents of FILE (concatenated BSON) into DB.COLL in unordered bulk writes
 *       of BATCH documents: plain inserts, or replaceOne({_id}, doc, {upsert: true}) as the
 *       daemon's sink sends them. Prints "docs seconds cpu_seconds"; only the writes are timed
 *       (FILE is read and the server pinged before the clock starts).
 *   bench_loader export URI DB COLL FILE     every document of DB.COLL, by _id, into FILE
 *   bench_loader wait URI DB COLL N TIMEOUT_S [POLL_MS]
 *       polls (every POLL_MS, default 250) until DB.COLL holds the document {_id: N} and N
 *       documents in all; prints the wall-clock time (CLOCK_REALTIME, seconds since the
 *       epoch) when it first did. Exit 1 on timeout.
 *   bench_loader latency URI DB COLL FIRST COUNT TIMEOUT_S CSV [POLL_MS]
 *       commit-to-visible latency of the documents {_id: FIRST} .. {_id: FIRST + COUNT - 1}
 *       (inserted by bench_workload with its `marker` column: CLOCK_REALTIME in microseconds at
 *       the transaction's start): polls {_id: {$in: [the next unseen ids]}} (at most 256),
 *       POLL_MS apart (default 5), and records, per document, the time it was first seen
 *       minus its marker, into CSV ("id,latency_us"). Prints "n=N p50_ms= p95_ms= p99_ms=
 *       max_ms= mean_ms= applied_per_s= polls= poll_ms=" (applied_per_s: documents per
 *       second from the first marker to the last document seen; poll_ms: the mean duration
 *       of one poll, the resolution together with POLL_MS). Exit 1 if not all were seen
 *       within TIMEOUT_S.
 *   bench_loader count URI DB COLL           the exact number of documents
 *   bench_loader checkpoint URI DB FILE POS  the daemon's checkpoint document: resume at FILE:POS
 *   bench_loader drop URI DB                 drops the database
 *
 * Exit 0 on success, 1 on a MongoDB error, 64 on a bad command line. */
#include <bson/bson.h>
#include <errno.h>
#include <mongoc/mongoc.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "bench_util.h"

#define POLL_MS 250 /* default; polling every 20 ms slowed mongo-java-server's writes by 10 % */

static double cpu_s(void)
{
    struct rusage ru;

    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
           (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
}

/* libmongoc's messages, without the warning FerretDB v1 causes at every client's end (it has
 * no endSessions command). */
static void on_log(mongoc_log_level_t level, const char *domain, const char *msg, void *data)
{
    (void)data;
    if (level <= MONGOC_LOG_LEVEL_WARNING && strstr(msg, "endSessions") == NULL) {
        fprintf(stderr, "bench_loader: %s: %s\n", domain, msg);
    }
}

static mongoc_client_t *connect_uri(const char *uri_str)
{
    bson_error_t err;
    mongoc_uri_t *uri = mongoc_uri_new_with_error(uri_str, &err);
    mongoc_client_t *c;

    if (uri == NULL) {
        fprintf(stderr, "bench_loader: bad URI: %s\n", err.message);
        return NULL;
    }
    c = mongoc_client_new_from_uri(uri);
    mongoc_uri_destroy(uri);
    if (c != NULL) {
        mongoc_client_set_appname(c, "bench_loader");
    }
    return c;
}

static bool ping(mongoc_client_t *c)
{
    bson_t *cmd = BCON_NEW("ping", BCON_INT32(1));
    bson_error_t err;
    bool ok = mongoc_client_command_simple(c, "admin", cmd, NULL, NULL, &err);

    if (!ok) {
        fprintf(stderr, "bench_loader: ping: %s\n", err.message);
    }
    bson_destroy(cmd);
    return ok;
}

/* {count: coll} (the collection's document count; no filter, so no scan on MongoDB). */
static bool count_docs(mongoc_client_t *c, const char *db, const char *coll, int64_t *n)
{
    bson_t *cmd = BCON_NEW("count", BCON_UTF8(coll));
    bson_t reply;
    bson_error_t err;
    bson_iter_t it;
    bool ok = mongoc_client_command_simple(c, db, cmd, NULL, &reply, &err);

    if (!ok) {
        fprintf(stderr, "bench_loader: count: %s\n", err.message);
    } else if (bson_iter_init_find(&it, &reply, "n") && BSON_ITER_HOLDS_NUMBER(&it)) {
        *n = bson_iter_as_int64(&it);
    } else {
        fprintf(stderr, "bench_loader: count: no 'n' in the reply\n");
        ok = false;
    }
    bson_destroy(&reply);
    bson_destroy(cmd);
    return ok;
}

/* Is {_id: id} in db.coll? false also when the server is not reachable (yet). */
static bool id_exists(mongoc_client_t *c, const char *db, const char *coll, int64_t id)
{
    mongoc_collection_t *cl = mongoc_client_get_collection(c, db, coll);
    bson_t *filter = id <= INT32_MAX ? BCON_NEW("_id", BCON_INT32((int32_t)id))
                                     : BCON_NEW("_id", BCON_INT64(id));
    bson_t *opts = BCON_NEW("limit", BCON_INT64(1), "projection", "{", "_id", BCON_INT32(1), "}");
    mongoc_cursor_t *cur = mongoc_collection_find_with_opts(cl, filter, opts, NULL);
    const bson_t *doc;
    bool found = mongoc_cursor_next(cur, &doc);

    mongoc_cursor_destroy(cur);
    bson_destroy(opts);
    bson_destroy(filter);
    mongoc_collection_destroy(cl);
    return found;
}

/* Waits for the document with _id N (the workload's keys are 1..N, inserted in order, so it
 * comes with the last bulk), then checks {count} >= N, polling the count only if not (an
 * unordered bulk may apply out of order). Polls find-by-_id rather than count, and not too
 * often: on mongo-java-server a count took ~180 ms at 200 k documents, and even finds every
 * 20 ms slowed the writes being measured by ~10 %. */
static int cmd_wait(mongoc_client_t *c, char **a)
{
    int64_t want, timeout_s, n = 0, polls = 0;
    double deadline, in_poll = 0, seen = 0;
    int64_t poll_ms = POLL_MS;
    struct timespec pause;
    bool found = false;

    if (!bench_parse_i64("bench_loader", a[2], 1, INT64_MAX, &want) ||
        !bench_parse_i64("bench_loader", a[3], 1, 86400, &timeout_s) ||
        (a[4] != NULL && !bench_parse_i64("bench_loader", a[4], 1, 10000, &poll_ms))) {
        return 64;
    }
    pause.tv_sec = poll_ms / 1000;
    pause.tv_nsec = (long)(poll_ms % 1000) * 1000000L;
    deadline = bench_now_s(CLOCK_MONOTONIC) + (double)timeout_s;
    for (;;) {
        double t0 = bench_now_s(CLOCK_MONOTONIC);
        if (!found) {
            found = id_exists(c, a[0], a[1], want);
            seen =
                bench_now_s(CLOCK_REALTIME); /* when it was seen (the count that follows is slow) */
            in_poll += bench_now_s(CLOCK_MONOTONIC) - t0;
            if (found && !count_docs(c, a[0], a[1], &n)) {
                return 1;
            }
        } else {
            /* rows still missing after _id N: done when the count says so */
            if (!count_docs(c, a[0], a[1], &n)) {
                return 1;
            }
            seen = bench_now_s(CLOCK_REALTIME);
        }
        polls++;
        if (found && n >= want) {
            printf("%.6f\n", seen);
            /* the polls' own load on the server, to check that it stays negligible */
            fprintf(stderr, "bench_loader: wait: %lld polls, %.2f ms each\n", (long long)polls,
                    in_poll * 1000 / (double)polls);
            return 0;
        }
        if (bench_now_s(CLOCK_MONOTONIC) > deadline) {
            fprintf(stderr, "bench_loader: after %lld s, %s.%s %s _id %lld (count %lld of %lld)\n",
                    (long long)timeout_s, a[0], a[1], found ? "holds" : "lacks", (long long)want,
                    (long long)n, (long long)want);
            return 1;
        }
        nanosleep(&pause, NULL);
    }
}

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;

    return x < y ? -1 : x > y;
}

static int cmd_latency(mongoc_client_t *c, char **a)
{
    enum { WINDOW = 256 }; /* ~20 µs per id on mongo-java-server: a 1024-id poll took 24 ms */
    int64_t first, count, timeout_s, poll_ms = 5, next, seen_n = 0, polls = 0;
    int64_t first_marker = INT64_MAX, last_seen = 0;
    mongoc_collection_t *cl;
    int64_t *lat, *sorted;
    double deadline, in_poll = 0, sum = 0;
    struct timespec pause;
    FILE *csv;
    int rc = 0;

    if (!bench_parse_i64("bench_loader", a[2], 0, INT64_MAX / 2, &first) ||
        !bench_parse_i64("bench_loader", a[3], 1, 100000000, &count) ||
        !bench_parse_i64("bench_loader", a[4], 1, 86400, &timeout_s) ||
        (a[6] != NULL && !bench_parse_i64("bench_loader", a[6], 0, 10000, &poll_ms))) {
        return 64;
    }
    csv = fopen(a[5], "w");
    if (csv == NULL) {
        fprintf(stderr, "bench_loader: %s: %s\n", a[5], strerror(errno));
        return 1;
    }
    lat = malloc((size_t)count * sizeof(*lat));
    sorted = malloc((size_t)count * sizeof(*sorted));
    for (int64_t i = 0; i < count; i++) {
        lat[i] = -1;
    }
    pause.tv_sec = poll_ms / 1000;
    pause.tv_nsec = (long)(poll_ms % 1000) * 1000000L;
    cl = mongoc_client_get_collection(c, a[0], a[1]);
    deadline = bench_now_s(CLOCK_MONOTONIC) + (double)timeout_s;
    next = 0;
    while (next < count) {
        bson_t filter = BSON_INITIALIZER, in, *opts;
        mongoc_cursor_t *cur;
        const bson_t *doc;
        bson_error_t err;
        int64_t got = 0, asked = 0;
        double t0 = bench_now_s(CLOCK_MONOTONIC);
        char key[24];

        if (t0 > deadline) {
            fprintf(stderr, "bench_loader: latency: after %lld s, %lld of %lld documents seen\n",
                    (long long)timeout_s, (long long)seen_n, (long long)count);
            rc = 1;
            break;
        }
        BSON_APPEND_DOCUMENT_BEGIN(&filter, "_id", &in);
        {
            bson_t arr;
            BSON_APPEND_ARRAY_BEGIN(&in, "$in", &arr);
            for (int64_t i = next; i < count && i < next + WINDOW; i++) {
                if (lat[i] < 0) {
                    snprintf(key, sizeof(key), "%lld", (long long)asked++);
                    bson_append_int64(&arr, key, -1, first + i);
                }
            }
            bson_append_array_end(&in, &arr);
        }
        bson_append_document_end(&filter, &in);
        opts = BCON_NEW("projection", "{", "marker", BCON_INT32(1), "}");
        cur = mongoc_collection_find_with_opts(cl, &filter, opts, NULL);
        while (mongoc_cursor_next(cur, &doc)) {
            bson_iter_t it;
            int64_t id, marker, at = bench_now_us();
            if (!bson_iter_init_find(&it, doc, "_id") || !BSON_ITER_HOLDS_NUMBER(&it)) {
                continue;
            }
            id = bson_iter_as_int64(&it) - first;
            if (id < 0 || id >= count || lat[id] >= 0 || !bson_iter_init_find(&it, doc, "marker") ||
                !BSON_ITER_HOLDS_NUMBER(&it)) {
                continue;
            }
            marker = bson_iter_as_int64(&it);
            lat[id] = at > marker ? at - marker : 0;
            first_marker = marker < first_marker ? marker : first_marker;
            last_seen = at > last_seen ? at : last_seen;
            got++;
        }
        if (mongoc_cursor_error(cur, &err)) {
            fprintf(stderr, "bench_loader: latency: %s (retrying)\n", err.message);
        }
        mongoc_cursor_destroy(cur);
        bson_destroy(opts);
        bson_destroy(&filter);
        in_poll += bench_now_s(CLOCK_MONOTONIC) - t0;
        polls++;
        seen_n += got;
        while (next < count && lat[next] >= 0) {
            next++;
        }
        if (poll_ms > 0) {
            nanosleep(&pause, NULL); /* also after a find: polling flat out took server time
                                      * from the writes being measured */
        }
    }
    mongoc_collection_destroy(cl);
    fprintf(csv, "id,latency_us\n");
    for (int64_t i = 0; i < count; i++) {
        if (lat[i] >= 0) {
            fprintf(csv, "%lld,%lld\n", (long long)(first + i), (long long)lat[i]);
        }
    }
    fclose(csv);
    {
        int64_t n = 0;
        for (int64_t i = 0; i < count; i++) {
            if (lat[i] >= 0) {
                sorted[n++] = lat[i];
                sum += (double)lat[i];
            }
        }
        qsort(sorted, (size_t)n, sizeof(*sorted), cmp_i64);
        if (n > 0) {
#define PCT(p) ((double)sorted[(int64_t)((double)(n - 1) * (p) + 0.5)] / 1000.0)
            printf("n=%lld p50_ms=%.2f p95_ms=%.2f p99_ms=%.2f max_ms=%.2f mean_ms=%.2f "
                   "applied_per_s=%.0f polls=%lld poll_ms=%.2f\n",
                   (long long)n, PCT(0.50), PCT(0.95), PCT(0.99), PCT(1.0), sum / (double)n / 1000,
                   last_seen > first_marker ? (double)n * 1e6 / (double)(last_seen - first_marker)
                                            : 0.0,
                   (long long)polls, polls ? in_poll * 1000 / (double)polls : 0.0);
#undef PCT
        }
    }
    free(lat);
    free(sorted);
    return rc;
}

static int cmd_count(mongoc_client_t *c, char **a)
{
    int64_t n;

    if (!count_docs(c, a[0], a[1], &n)) {
        return 1;
    }
    printf("%lld\n", (long long)n);
    return 0;
}

static int cmd_checkpoint(mongoc_client_t *c, char **a)
{
    mongoc_collection_t *coll = mongoc_client_get_collection(c, a[0], "_mysync_checkpoints");
    int64_t pos, now_ms = (int64_t)(bench_now_s(CLOCK_REALTIME) * 1000);
    bson_t *filter = NULL, *doc = NULL, *opts = NULL;
    bson_error_t err;
    int rc = 64;

    if (!bench_parse_i64("bench_loader", a[2], 4, INT64_MAX, &pos)) {
        goto done;
    }
    filter = BCON_NEW("_id", BCON_UTF8("binlog"));
    doc = BCON_NEW("_id", BCON_UTF8("binlog"), "file", BCON_UTF8(a[1]), "pos", BCON_INT64(pos),
                   "gtid", BCON_UTF8(""), "event_time", BCON_DATE_TIME(now_ms), "updated_at",
                   BCON_DATE_TIME(now_ms));
    opts = BCON_NEW("upsert", BCON_BOOL(true));
    rc = 0;
    if (!mongoc_collection_replace_one(coll, filter, doc, opts, NULL, &err)) {
        fprintf(stderr, "bench_loader: checkpoint: %s\n", err.message);
        rc = 1;
    }
done:
    bson_destroy(filter);
    bson_destroy(doc);
    bson_destroy(opts);
    mongoc_collection_destroy(coll);
    return rc;
}

static int cmd_drop(mongoc_client_t *c, char **a)
{
    mongoc_database_t *db = mongoc_client_get_database(c, a[0]);
    bson_error_t err;
    int rc = 0;

    if (!mongoc_database_drop(db, &err)) {
        fprintf(stderr, "bench_loader: drop %s: %s\n", a[0], err.message);
        rc = 1;
    }
    mongoc_database_destroy(db);
    return rc;
}

static int cmd_export(mongoc_client_t *c, char **a)
{
    mongoc_collection_t *coll = mongoc_client_get_collection(c, a[0], a[1]);
    bson_t *opts = BCON_NEW("sort", "{", "_id", BCON_INT32(1), "}");
    bson_t filter = BSON_INITIALIZER;
    mongoc_cursor_t *cur = mongoc_collection_find_with_opts(coll, &filter, opts, NULL);
    const bson_t *doc;
    bson_error_t err;
    FILE *f = fopen(a[2], "wb");
    long long n = 0;
    int rc = 0;

    if (f == NULL) {
        fprintf(stderr, "bench_loader: %s: %s\n", a[2], strerror(errno));
        rc = 1;
        goto done;
    }
    while (mongoc_cursor_next(cur, &doc)) {
        if (fwrite(bson_get_data(doc), 1, doc->len, f) != doc->len) {
            fprintf(stderr, "bench_loader: %s: %s\n", a[2], strerror(errno));
            rc = 1;
            goto done;
        }
        n++;
    }
    if (mongoc_cursor_error(cur, &err)) {
        fprintf(stderr, "bench_loader: export: %s\n", err.message);
        rc = 1;
        goto done;
    }
    printf("%lld\n", n);
done:
    if (f != NULL && fclose(f) != 0 && rc == 0) {
        fprintf(stderr, "bench_loader: %s: %s\n", a[2], strerror(errno));
        rc = 1;
    }
    mongoc_cursor_destroy(cur);
    bson_destroy(&filter);
    bson_destroy(opts);
    mongoc_collection_destroy(coll);
    return rc;
}

struct docs {
    bson_t **v;
    size_t n, cap;
};

static void docs_free(struct docs *d)
{
    for (size_t i = 0; i < d->n; i++) {
        bson_destroy(d->v[i]);
    }
    free(d->v);
}

static bool docs_read(const char *path, struct docs *d)
{
    bson_error_t err;
    bson_reader_t *r = bson_reader_new_from_file(path, &err);
    const bson_t *doc;
    bool eof = false;

    if (r == NULL) {
        fprintf(stderr, "bench_loader: %s: %s\n", path, err.message);
        return false;
    }
    while ((doc = bson_reader_read(r, &eof)) != NULL) {
        if (d->n == d->cap) {
            d->cap = d->cap != 0 ? d->cap * 2 : 1024;
            d->v = realloc(d->v, d->cap * sizeof(*d->v));
            if (d->v == NULL) {
                abort();
            }
        }
        d->v[d->n++] = bson_copy(doc);
    }
    bson_reader_destroy(r);
    if (!eof) {
        fprintf(stderr, "bench_loader: %s: malformed BSON after %zu documents\n", path, d->n);
        return false;
    }
    return true;
}

/* One unordered bulk per batch; upserts as the daemon's sink sends them (replaceOne, filter
 * {_id}). */
static bool write_batch(mongoc_collection_t *coll, bson_t **v, size_t n, bool upsert)
{
    bson_t *bulk_opts = BCON_NEW("ordered", BCON_BOOL(false));
    bson_t *upsert_opts = BCON_NEW("upsert", BCON_BOOL(true));
    mongoc_bulk_operation_t *bulk =
        mongoc_collection_create_bulk_operation_with_opts(coll, bulk_opts);
    bson_error_t err;
    bson_t reply;
    bool ok = true;

    for (size_t i = 0; ok && i < n; i++) {
        if (upsert) {
            bson_t filter = BSON_INITIALIZER;
            bson_iter_t it;
            if (!bson_iter_init_find(&it, v[i], "_id")) {
                fprintf(stderr, "bench_loader: a document without _id\n");
                ok = false;
            } else {
                bson_append_iter(&filter, "_id", 3, &it);
                ok = mongoc_bulk_operation_replace_one_with_opts(bulk, &filter, v[i], upsert_opts,
                                                                 &err);
            }
            bson_destroy(&filter);
        } else {
            ok = mongoc_bulk_operation_insert_with_opts(bulk, v[i], NULL, &err);
        }
        if (!ok && err.code != 0) {
            fprintf(stderr, "bench_loader: %s\n", err.message);
        }
    }
    if (ok && mongoc_bulk_operation_execute(bulk, &reply, &err) == 0) {
        fprintf(stderr, "bench_loader: bulk write: %s\n", err.message);
        ok = false;
    }
    if (ok) {
        bson_destroy(&reply);
    }
    mongoc_bulk_operation_destroy(bulk);
    bson_destroy(bulk_opts);
    bson_destroy(upsert_opts);
    return ok;
}

static int cmd_load(mongoc_client_t *c, char **a)
{
    struct docs d = {0};
    mongoc_collection_t *coll = NULL;
    int64_t batch;
    bool upsert;
    double t0, c0;
    int rc = 64;

    if (!bench_parse_i64("bench_loader", a[3], 1, 100000, &batch)) {
        goto done;
    }
    if (strcmp(a[4], "insert") != 0 && strcmp(a[4], "upsert") != 0) {
        fprintf(stderr, "bench_loader: load: insert or upsert, not '%s'\n", a[4]);
        goto done;
    }
    upsert = strcmp(a[4], "upsert") == 0;
    rc = 1;
    if (!docs_read(a[2], &d) || !ping(c)) {
        goto done;
    }
    coll = mongoc_client_get_collection(c, a[0], a[1]);
    t0 = bench_now_s(CLOCK_MONOTONIC);
    c0 = cpu_s();
    for (size_t i = 0; i < d.n; i += (size_t)batch) {
        size_t n = d.n - i < (size_t)batch ? d.n - i : (size_t)batch;
        if (!write_batch(coll, &d.v[i], n, upsert)) {
            goto done;
        }
    }
    printf("%zu %.6f %.6f\n", d.n, bench_now_s(CLOCK_MONOTONIC) - t0, cpu_s() - c0);
    rc = 0;
done:
    mongoc_collection_destroy(coll);
    docs_free(&d);
    return rc;
}

static const struct {
    const char *name;
    int nargs, optargs;                       /* after the URI: required, optional */
    int (*run)(mongoc_client_t *c, char **a); /* a: the arguments after the URI */
} commands[] = {
    {"load", 5, 0, cmd_load},       {"export", 3, 0, cmd_export},
    {"wait", 4, 1, cmd_wait},       {"count", 2, 0, cmd_count},
    {"latency", 6, 1, cmd_latency}, {"checkpoint", 3, 0, cmd_checkpoint},
    {"drop", 1, 0, cmd_drop},
};

int main(int argc, char **argv)
{
    mongoc_client_t *c;
    int rc = 64;

    for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++) {
        if (argc < 2 || strcmp(argv[1], commands[i].name) != 0) {
            continue;
        }
        if (argc < 3 + commands[i].nargs || argc > 3 + commands[i].nargs + commands[i].optargs) {
            break;
        }
        mongoc_init();
        mongoc_log_set_handler(on_log, NULL);
        c = connect_uri(argv[2]);
        rc = c != NULL ? commands[i].run(c, argv + 3) : 1;
        mongoc_client_destroy(c);
        mongoc_cleanup();
        return rc;
    }
    fprintf(stderr, "usage: bench_loader load URI DB COLL FILE BATCH insert|upsert\n"
                    "       bench_loader export URI DB COLL FILE\n"
                    "       bench_loader wait URI DB COLL N TIMEOUT_S [POLL_MS]\n"
                    "       bench_loader latency URI DB COLL FIRST COUNT TIMEOUT_S CSV [POLL_MS]\n"
                    "       bench_loader count URI DB COLL\n"
                    "       bench_loader checkpoint URI DB FILE POS\n"
                    "       bench_loader drop URI DB\n");
    return rc;
}

/* Timestamp polling (include/mysync/poller.h). */
#define MS_LOG_DOMAIN "poller"
#include "mysync/poller.h"

#include <errno.h>
#include <mongoc/mongoc.h>
#include <mysql.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "mysync/bsonutil.h"
#include "mysync/clock.h"
#include "mysync/log.h"
#include "mysync/mysql.h"
#include "mysync/sink.h"
#include "mysync/source.h"
#include "mysync/strategy.h"

struct ptable {
    char db[200], name[200], spec[420], id[600];
    const char *const *key;
    size_t nkey;
    const struct ms_value_opts *vo;
    bool primary;
    char change[200];
    bool temporal;  /* DATE/DATETIME/TIMESTAMP: the look-back applies */
    char soft[200]; /* "" none */
    struct ms_source *src;
    /* for the status, under the poller's mu */
    uint64_t rows_last, deleted_last, rows_total, reconcile_deleted;
    int64_t last_run_ms, reconciled_ms;
    char from[64];
};

struct ms_poller {
    const struct ms_config *cfg;
    struct ms_pipeline *p;
    volatile sig_atomic_t *stop;
    MYSQL *conn;
    mongoc_client_pool_t *pool;
    struct ms_sink *sink;
    struct ptable *t;
    size_t nt;
    pthread_mutex_t mu;
};

/* ---- set-up --------------------------------------------------------------------------- */

static bool connect_source(struct ms_poller *pl, struct ms_error *err)
{
    if (pl->conn != NULL && mysql_ping(pl->conn) == 0) {
        return true;
    }
    if (pl->conn != NULL) {
        mysql_close(pl->conn);
    }
    pl->conn = ms_mysql_connect(pl->cfg, err);
    return pl->conn != NULL;
}

/* The type of db.t.col ("" when the column is not there). */
static bool column_type(struct ms_poller *pl, const char *db, const char *t, const char *col,
                        char *type, size_t typesz, struct ms_error *err)
{
    MYSQL_STMT *st = mysql_stmt_init(pl->conn);
    static const char q[] = "SELECT DATA_TYPE FROM information_schema.COLUMNS WHERE "
                            "TABLE_SCHEMA = ? AND TABLE_NAME = ? AND COLUMN_NAME = ?";
    MYSQL_BIND in[3], out[1];
    unsigned long lens[3] = {strlen(db), strlen(t), strlen(col)}, olen = 0;
    bool ok = false;

    type[0] = '\0';
    memset(in, 0, sizeof(in));
    memset(out, 0, sizeof(out));
    in[0].buffer_type = in[1].buffer_type = in[2].buffer_type = MYSQL_TYPE_STRING;
    in[0].buffer = (void *)db;
    in[1].buffer = (void *)t;
    in[2].buffer = (void *)col;
    for (int i = 0; i < 3; i++) {
        in[i].buffer_length = lens[i];
        in[i].length = &lens[i];
    }
    out[0].buffer_type = MYSQL_TYPE_STRING;
    out[0].buffer = type;
    out[0].buffer_length = typesz - 1;
    out[0].length = &olen;
    if (st == NULL || mysql_stmt_prepare(st, q, sizeof(q) - 1) != 0 ||
        mysql_stmt_bind_param(st, in) != 0 || mysql_stmt_bind_result(st, out) != 0 ||
        mysql_stmt_execute(st) != 0) {
        ms_mysql_error(pl->conn, "reading information_schema.COLUMNS", err);
        goto done;
    }
    if (mysql_stmt_fetch(st) == 0) {
        type[olen < typesz ? olen : typesz - 1] = '\0';
    } else {
        type[0] = '\0';
    }
    ok = true;
done:
    if (st != NULL) {
        mysql_stmt_close(st);
    }
    return ok;
}

void ms_poller_destroy(struct ms_poller *pl)
{
    if (pl == NULL) {
        return;
    }
    for (size_t i = 0; i < pl->nt; i++) {
        ms_source_destroy(pl->t[i].src);
    }
    free(pl->t);
    ms_sink_destroy(pl->sink);
    if (pl->pool != NULL) {
        mongoc_client_pool_destroy(pl->pool);
    }
    if (pl->conn != NULL) {
        mysql_close(pl->conn);
    }
    pthread_mutex_destroy(&pl->mu);
    free(pl);
}

struct ms_poller *ms_poller_new(const struct ms_config *cfg, struct ms_pipeline *p,
                                volatile sig_atomic_t *stop, struct ms_error *err)
{
    struct ms_poller *pl = calloc(1, sizeof(*pl));
    struct ms_sink_opts so = {.max_retries = -1, .retry_delay_ms = cfg->sync_retry_delay_ms};
    size_t n = ms_pipeline_table_count(p);

    if (pl == NULL || (pl->t = calloc(n + 1, sizeof(*pl->t))) == NULL) {
        free(pl);
        ms_error_set(err, MS_ERR_SYSTEM, ENOMEM, "out of memory");
        return NULL;
    }
    pl->cfg = cfg;
    pl->p = p;
    pl->stop = stop;
    pthread_mutex_init(&pl->mu, NULL);
    if (!connect_source(pl, err)) {
        goto fail;
    }
    pl->pool = ms_sink_pool_new(cfg, err);
    if (pl->pool == NULL ||
        (pl->sink = ms_sink_new(pl->pool, cfg->mongodb_database, &so, err)) == NULL) {
        goto fail;
    }
    for (size_t i = 0; i < n; i++) {
        struct ms_pipeline_table pt;
        struct ptable *t = &pl->t[pl->nt];
        const struct ms_table_cfg *tc;
        const char *change, *soft;
        char type[64];

        if (!ms_pipeline_table_at(p, i, &pt)) {
            continue;
        }
        tc = ms_config_table(cfg, pt.db, pt.name);
        snprintf(t->db, sizeof(t->db), "%s", pt.db);
        snprintf(t->name, sizeof(t->name), "%s", pt.name);
        snprintf(t->spec, sizeof(t->spec), "%s.%s", pt.db, pt.name);
        snprintf(t->id, sizeof(t->id), "%s:poll:%s", cfg->sync_pipeline, t->spec);
        t->key = pt.key;
        t->nkey = pt.nkey;
        t->vo = pt.vo;
        t->primary = pt.primary;
        change =
            tc != NULL && tc->change_column != NULL ? tc->change_column : cfg->sync_change_column;
        soft = tc != NULL && tc->soft_delete_column != NULL ? tc->soft_delete_column
                                                            : cfg->sync_soft_delete_column;
        if (change == NULL || change[0] == '\0') {
            ms_error_set(err, MS_ERR_CONFIG, MS_CONFIG_BAD_VALUE,
                         "poll mode: no change column for %s (sync.change_column)", t->spec);
            goto fail;
        }
        if (!column_type(pl, t->db, t->name, change, type, sizeof(type), err)) {
            goto fail;
        }
        if (type[0] == '\0') {
            ms_error_set(err, MS_ERR_CONFIG, MS_CONFIG_BAD_VALUE,
                         "poll mode: %s has no column %s to find changed rows by: set "
                         "tables.%s.change_column (or SYNC_CHANGE_COLUMN) to a column every "
                         "write updates (a DATETIME/TIMESTAMP such as updated_at, or an "
                         "increasing version number)",
                         t->spec, change, t->name);
            goto fail;
        }
        snprintf(t->change, sizeof(t->change), "%s", change);
        t->temporal = strcmp(type, "datetime") == 0 || strcmp(type, "timestamp") == 0 ||
                      strcmp(type, "date") == 0;
        if (!t->temporal && strstr(type, "int") == NULL && strcmp(type, "decimal") != 0) {
            ms_error_set(err, MS_ERR_CONFIG, MS_CONFIG_BAD_VALUE,
                         "poll mode: %s.%s is a %s: a change column must be a DATETIME, "
                         "TIMESTAMP, DATE or an integer",
                         t->spec, change, type);
            goto fail;
        }
        if (soft != NULL && soft[0] != '\0') {
            if (!column_type(pl, t->db, t->name, soft, type, sizeof(type), err)) {
                goto fail;
            }
            if (type[0] != '\0') {
                snprintf(t->soft, sizeof(t->soft), "%s", soft);
            }
        }
        t->src = ms_source_new(cfg, t->vo);
        if (t->src == NULL) {
            ms_error_set(err, MS_ERR_SYSTEM, ENOMEM, "out of memory");
            goto fail;
        }
        ms_log(MS_LOG_INFO, "poll %s: changes by %s (%s)%s%s", t->spec, t->change,
               t->temporal ? "look-back applies" : "compared as is",
               t->soft[0] != '\0' ? ", soft deletes by " : "", t->soft[0] != '\0' ? t->soft : "");
        pl->nt++;
    }
    return pl;
fail:
    ms_poller_destroy(pl);
    return NULL;
}

/* ---- one table ------------------------------------------------------------------------ */

struct tracker {
    char state[16]; /* "", "running", "done" */
    char low[64];   /* where this run reads from ("" = the whole table) */
    char next[64];  /* where the next run reads from */
    bson_t cursor;
    int64_t reconciled_ms;
};

static void doc_str(const bson_t *d, const char *k, char *out, size_t outsz)
{
    bson_iter_t it;

    out[0] = '\0';
    if (bson_iter_init_find(&it, d, k) && BSON_ITER_HOLDS_UTF8(&it)) {
        snprintf(out, outsz, "%s", bson_iter_utf8(&it, NULL));
    }
}

static bool tracker_load(struct ms_poller *pl, const struct ptable *t, struct tracker *tr,
                         struct ms_error *err)
{
    bson_t doc = BSON_INITIALIZER;
    bool found = false;
    bson_iter_t it;

    memset(tr, 0, sizeof(*tr));
    bson_init(&tr->cursor);
    if (!ms_sink_state_load(pl->sink, t->id, &doc, &found, err)) {
        bson_destroy(&doc);
        return false;
    }
    if (found) {
        doc_str(&doc, "state", tr->state, sizeof(tr->state));
        doc_str(&doc, "low", tr->low, sizeof(tr->low));
        doc_str(&doc, "next", tr->next, sizeof(tr->next));
        if (bson_iter_init_find(&it, &doc, "cursor") && BSON_ITER_HOLDS_DOCUMENT(&it)) {
            const uint8_t *data;
            uint32_t len;
            bson_t c;
            bson_iter_document(&it, &len, &data);
            if (bson_init_static(&c, data, len)) {
                bson_concat(&tr->cursor, &c);
            }
        }
        if (bson_iter_init_find(&it, &doc, "reconciled_at") && BSON_ITER_HOLDS_DATE_TIME(&it)) {
            tr->reconciled_ms = bson_iter_date_time(&it);
        }
    }
    bson_destroy(&doc);
    return true;
}

static bool tracker_save(struct ms_poller *pl, const struct ptable *t, const struct tracker *tr,
                         uint64_t rows, struct ms_error *err)
{
    bson_t doc = BSON_INITIALIZER;
    bool ok;

    BSON_APPEND_UTF8(&doc, "state", tr->state);
    BSON_APPEND_UTF8(&doc, "table", t->spec);
    BSON_APPEND_UTF8(&doc, "change_column", t->change);
    BSON_APPEND_UTF8(&doc, "low", tr->low);
    BSON_APPEND_UTF8(&doc, "next", tr->next);
    BSON_APPEND_DOCUMENT(&doc, "cursor", &tr->cursor);
    BSON_APPEND_INT64(&doc, "rows", (int64_t)rows);
    BSON_APPEND_DATE_TIME(&doc, "saved_at", ms_clock_wall_ms());
    if (tr->reconciled_ms > 0) {
        BSON_APPEND_DATE_TIME(&doc, "reconciled_at", tr->reconciled_ms);
    }
    ok = ms_sink_state_save(pl->sink, t->id, &doc, err);
    bson_destroy(&doc);
    return ok;
}

/* The newest change value now, as text ("" for an empty table). */
static bool newest(struct ms_poller *pl, const struct ptable *t, char *out, size_t outsz,
                   struct ms_error *err)
{
    char qd[420], qt[420], qc[420], sql[1400];
    MYSQL_RES *res;
    MYSQL_ROW row;

    out[0] = '\0';
    if (!connect_source(pl, err)) {
        return false;
    }
    ms_mysql_quote_ident(qd, sizeof(qd), t->db);
    ms_mysql_quote_ident(qt, sizeof(qt), t->name);
    ms_mysql_quote_ident(qc, sizeof(qc), t->change);
    snprintf(sql, sizeof(sql), "SELECT CAST(MAX(%s) AS CHAR) FROM %s.%s", qc, qd, qt);
    if (mysql_query(pl->conn, sql) != 0 || (res = mysql_store_result(pl->conn)) == NULL) {
        ms_mysql_error(pl->conn, "reading the newest change", err);
        return false;
    }
    row = mysql_fetch_row(res);
    if (row != NULL && row[0] != NULL) {
        snprintf(out, outsz, "%s", row[0]);
    }
    mysql_free_result(res);
    return true;
}

struct chunk_ctx {
    struct ms_poller *pl;
    struct ptable *t;
    uint64_t rows, deleted;
    struct ms_error fail;
    bool failed;
};

static bool soft_deleted(const struct ptable *t, const bson_t *row)
{
    bson_iter_t it;

    return t->soft[0] != '\0' && bson_iter_init_find(&it, row, t->soft) &&
           !BSON_ITER_HOLDS_NULL(&it);
}

static bool on_row(void *arg, const bson_t *row, struct ms_error *err)
{
    struct chunk_ctx *c = arg;
    struct ms_error perr = {0};
    bool ok;

    if (row == NULL) {
        ok = ms_pipeline_push_bad_row(c->pl->p, c->t->db, c->t->name, err, "poll", &perr);
        ms_error_clear(err);
    } else if (soft_deleted(c->t, row)) {
        ok = ms_pipeline_push_delete(c->pl->p, c->t->db, c->t->name, row, "poll", &perr);
        c->deleted += ok ? 1 : 0;
    } else {
        ok = ms_pipeline_push_row(c->pl->p, c->t->db, c->t->name, row, "poll", false, &perr);
    }
    if (!ok) {
        c->fail = perr;
        c->failed = true;
        return false;
    }
    c->rows++;
    return true;
}

/* Keys of the table's rows against its documents' _ids: documents whose row is gone are
 * deleted through the strategy (a delete of the key). */
static bool reconcile(struct ms_poller *pl, struct ptable *t, uint64_t *deleted,
                      struct ms_error *err);

static bool poll_table(struct ms_poller *pl, struct ptable *t, struct ms_error *err)
{
    struct tracker tr;
    struct chunk_ctx c = {.pl = pl, .t = t};
    const char *order[65];
    char where[700] = "", lowq[200];
    struct ms_scan *sc = NULL;
    int64_t chunk =
        pl->cfg->sync_snapshot_chunk_size > 0 ? pl->cfg->sync_snapshot_chunk_size : 5000;
    bool ok = false, resumed;
    uint64_t rdel = 0;

    if (!tracker_load(pl, t, &tr, err)) {
        return false;
    }
    resumed = strcmp(tr.state, "running") == 0;
    if (!resumed) {
        char next[64];
        if (!newest(pl, t, next, sizeof(next), err)) {
            goto done;
        }
        snprintf(tr.low, sizeof(tr.low), "%s", tr.next);
        if (next[0] != '\0') {
            snprintf(tr.next, sizeof(tr.next), "%s", next);
        }
        bson_reinit(&tr.cursor);
        snprintf(tr.state, sizeof(tr.state), "running");
        if (tr.reconciled_ms == 0) {
            tr.reconciled_ms = ms_clock_wall_ms(); /* the first run copies everything */
        }
        if (!tracker_save(pl, t, &tr, 0, err)) {
            goto done;
        }
    }
    if (tr.low[0] != '\0') {
        char qc[420];
        unsigned long n;
        if (!connect_source(pl, err)) {
            goto done;
        }
        n = mysql_real_escape_string(pl->conn, lowq, tr.low, (unsigned long)strlen(tr.low));
        lowq[n] = '\0';
        ms_mysql_quote_ident(qc, sizeof(qc), t->change);
        if (t->temporal) {
            snprintf(where, sizeof(where), "%s >= '%s' - INTERVAL %lld MICROSECOND", qc, lowq,
                     (long long)pl->cfg->sync_poll_lookback_ms * 1000);
        } else {
            snprintf(where, sizeof(where), "%s >= '%s'", qc, lowq);
        }
    }
    order[0] = t->change;
    for (size_t i = 0; i < t->nkey && i < 64; i++) {
        order[i + 1] = t->key[i];
    }
    sc = ms_scan_new(t->src, t->db, t->name, order, t->nkey + 1, where[0] != '\0' ? where : NULL);
    if (sc == NULL) {
        ms_error_set(err, MS_ERR_SYSTEM, ENOMEM, "out of memory");
        goto done;
    }
    if (resumed && !bson_empty(&tr.cursor) && !ms_scan_seek(sc, &tr.cursor, err)) {
        goto done;
    }
    if (resumed) {
        ms_log(MS_LOG_INFO, "poll %s: going on with the run a restart cut short", t->spec);
    }
    for (;;) {
        size_t n = 0;
        if (*pl->stop) {
            ms_error_set(err, MS_ERR_SYSTEM, ECANCELED, "stopping");
            goto done;
        }
        if (!ms_scan_chunk(sc, (size_t)chunk, on_row, &c, &n, err)) {
            if (c.failed) {
                *err = c.fail;
            }
            goto done;
        }
        if (!ms_pipeline_barrier(pl->p, err)) {
            goto done;
        }
        bson_reinit(&tr.cursor);
        ms_scan_cursor(sc, &tr.cursor);
        if (n < (size_t)chunk) {
            break;
        }
        if (!tracker_save(pl, t, &tr, c.rows, err)) {
            goto done;
        }
    }
    if (t->primary && pl->cfg->sync_reconcile_interval_ms > 0 &&
        ms_clock_wall_ms() - tr.reconciled_ms >= pl->cfg->sync_reconcile_interval_ms) {
        if (!reconcile(pl, t, &rdel, err)) {
            goto done;
        }
        tr.reconciled_ms = ms_clock_wall_ms();
    }
    snprintf(tr.state, sizeof(tr.state), "done");
    if (!tracker_save(pl, t, &tr, c.rows, err)) {
        goto done;
    }
    ok = true;
done:
    pthread_mutex_lock(&pl->mu);
    t->rows_last = c.rows;
    t->deleted_last = c.deleted + rdel;
    t->rows_total += c.rows;
    t->reconcile_deleted += rdel;
    t->last_run_ms = ms_clock_wall_ms();
    t->reconciled_ms = tr.reconciled_ms;
    snprintf(t->from, sizeof(t->from), "%s", tr.low);
    pthread_mutex_unlock(&pl->mu);
    if (ok) {
        ms_log_kv(
            MS_LOG_INFO,
            ((struct ms_log_field[]){MS_LF_INT("rows", (int64_t)c.rows),
                                     MS_LF_INT("soft_deleted", (int64_t)c.deleted),
                                     MS_LF_INT("reconciled_deleted", (int64_t)rdel),
                                     MS_LF_STR("from", tr.low[0] != '\0' ? tr.low : "the start")}),
            "poll %s: done", t->spec);
    }
    ms_scan_destroy(sc);
    bson_destroy(&tr.cursor);
    return ok;
}

/* ---- reconciliation ------------------------------------------------------------------- */

struct keys {
    uint64_t *h;
    size_t n, cap;
    struct ptable *t;
    struct ms_poller *pl;
    char coll[128]; /* from the strategy's ops for the first row */
    bson_t first;   /* that row */
    bool have_first;
};

static int u64_cmp(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

    return x < y ? -1 : x > y;
}

static bool on_key(void *arg, const bson_t *row, struct ms_error *err)
{
    struct keys *k = arg;
    bson_t id = BSON_INITIALIZER, *cid;

    if (row == NULL) {
        ms_error_clear(err); /* a row that does not decode still exists: its key is unknown, so
                                nothing is deleted on its account below (see on_doc) */
        return true;
    }
    if (!k->have_first) {
        bson_copy_to(row, &k->first);
        k->have_first = true;
    }
    if (!ms_strategy_key(row, k->t->key, k->t->nkey, &id)) {
        bson_destroy(&id);
        return true;
    }
    cid = ms_bson_canonical(&id);
    if (k->n == k->cap) {
        k->cap = k->cap != 0 ? k->cap * 2 : 4096;
        k->h = realloc(k->h, k->cap * sizeof(*k->h));
        if (k->h == NULL) {
            abort();
        }
    }
    k->h[k->n++] = ms_bson_id_hash("", cid);
    bson_destroy(cid);
    bson_destroy(&id);
    return true;
}

/* {_id: v} -> {pk0: v}; {_id: {c: v, ...}} -> {c: v, ...} */
static void key_image(const struct ptable *t, const bson_t *idq, bson_t *out)
{
    bson_iter_t i, sub;

    if (!bson_iter_init_find(&i, idq, "_id")) {
        return;
    }
    if (t->nkey == 1) {
        bson_append_iter(out, t->key[0], -1, &i);
    } else if (BSON_ITER_HOLDS_DOCUMENT(&i) && bson_iter_recurse(&i, &sub)) {
        while (bson_iter_next(&sub)) {
            bson_append_iter(out, bson_iter_key(&sub), -1, &sub);
        }
    }
}

static bool reconcile(struct ms_poller *pl, struct ptable *t, uint64_t *deleted,
                      struct ms_error *err)
{
    struct keys k = {.t = t, .pl = pl};
    struct ms_scan *sc = ms_scan_new(t->src, t->db, t->name, t->key, t->nkey, NULL);
    mongoc_client_t *mc = NULL;
    mongoc_collection_t *col = NULL;
    mongoc_cursor_t *cur = NULL;
    bson_t filter = BSON_INITIALIZER, *opts = NULL;
    const bson_t *doc;
    bson_error_t berr;
    struct ms_ops ops;
    bool ok = false;
    uint64_t unmapped = 0;

    ms_ops_init(&ops);
    bson_init(&k.first);
    *deleted = 0;
    if (sc == NULL) {
        ms_error_set(err, MS_ERR_SYSTEM, ENOMEM, "out of memory");
        goto done;
    }
    for (;;) { /* every key, in chunks */
        size_t n = 0;
        if (!ms_scan_chunk(sc, 10000, on_key, &k, &n, err)) {
            goto done;
        }
        if (n < 10000) {
            break;
        }
    }
    ms_scan_destroy(sc);
    sc = NULL;
    if (!k.have_first) {
        ms_log(MS_LOG_INFO,
               "poll %s: no rows; reconciliation skipped (its collection is "
               "named by the strategy's writes)",
               t->spec);
        ok = true;
        goto done;
    }
    /* the collection the table's documents are in: the strategy says, for one row */
    if (!ms_pipeline_expected_ops(pl->p, t->db, t->name, &k.first, &ops, err) || ops.n == 0) {
        ms_log(MS_LOG_WARN, "poll %s: reconciliation skipped: %s", t->spec,
               err->msg[0] != '\0' ? err->msg : "the strategy writes nothing for a row");
        ms_error_clear(err);
        ok = true;
        goto done;
    }
    snprintf(k.coll, sizeof(k.coll), "%s", ops.v[0].collection);
    qsort(k.h, k.n, sizeof(*k.h), u64_cmp);
    mc = mongoc_client_pool_pop(pl->pool);
    col = mongoc_client_get_collection(mc, pl->cfg->mongodb_database, k.coll);
    opts = BCON_NEW("projection", "{", "_id", BCON_INT32(1), "}");
    cur = mongoc_collection_find_with_opts(col, &filter, opts, NULL);
    while (mongoc_cursor_next(cur, &doc)) {
        bson_iter_t id;
        bson_t idq = BSON_INITIALIZER, *cid, row, before = BSON_INITIALIZER;
        uint64_t h;
        bool found = false;
        if (!bson_iter_init_find(&id, doc, "_id")) {
            bson_destroy(&idq);
            bson_destroy(&before);
            continue;
        }
        bson_append_iter(&idq, "_id", 3, &id);
        cid = ms_bson_canonical(&idq);
        h = ms_bson_id_hash("", cid);
        bson_destroy(cid);
        if (bsearch(&h, k.h, k.n, sizeof(*k.h), u64_cmp) != NULL) {
            bson_destroy(&idq);
            bson_destroy(&before);
            continue;
        }
        /* not among the keys read: is the row there now (inserted since)? */
        bson_init(&row);
        if (!ms_source_read_row(t->src, t->db, t->name, t->key, t->nkey, &idq, &row, &found, err)) {
            bson_destroy(&row);
            bson_destroy(&idq);
            bson_destroy(&before);
            if (err->retryable) {
                goto done;
            }
            unmapped++; /* an _id that is not a key of this table: not ours to delete */
            ms_error_clear(err);
            continue;
        }
        bson_destroy(&row);
        if (!found) {
            key_image(t, &idq, &before);
            if (!ms_pipeline_push_delete(pl->p, t->db, t->name, &before, "reconcile", err)) {
                bson_destroy(&idq);
                bson_destroy(&before);
                goto done;
            }
            (*deleted)++;
        }
        bson_destroy(&idq);
        bson_destroy(&before);
    }
    if (mongoc_cursor_error(cur, &berr)) {
        ms_error_set(err, MS_ERR_MONGO, berr.code, "reading %s.%s: %s", pl->cfg->mongodb_database,
                     k.coll, berr.message);
        err->retryable = true;
        goto done;
    }
    if (!ms_pipeline_barrier(pl->p, err)) {
        goto done;
    }
    if (unmapped > 0) {
        ms_log(MS_LOG_WARN,
               "poll %s: %llu documents of %s have an _id that is not a key of the table; "
               "reconciliation leaves them",
               t->spec, (unsigned long long)unmapped, k.coll);
    }
    ms_log(MS_LOG_INFO, "poll %s: reconciled %zu keys with %s: %llu documents deleted", t->spec,
           k.n, k.coll, (unsigned long long)*deleted);
    ok = true;
done:
    if (cur != NULL) {
        mongoc_cursor_destroy(cur);
    }
    if (opts != NULL) {
        bson_destroy(opts);
    }
    if (col != NULL) {
        mongoc_collection_destroy(col);
    }
    if (mc != NULL) {
        mongoc_client_pool_push(pl->pool, mc);
    }
    bson_destroy(&filter);
    ms_ops_cleanup(&ops);
    bson_destroy(&k.first);
    free(k.h);
    ms_scan_destroy(sc);
    return ok;
}

/* ---- runs and status ------------------------------------------------------------------ */

enum ms_run_result ms_poller_run(void *arg, struct ms_error *err)
{
    struct ms_poller *pl = arg;

    for (size_t i = 0; i < pl->nt; i++) {
        if (!poll_table(pl, &pl->t[i], err)) {
            if (err->domain == MS_ERR_SYSTEM && err->code == ECANCELED) {
                return MS_RUN_RETRY; /* stopping: the tracker keeps the place */
            }
            ms_error_prefix(err, "poll %s", pl->t[i].spec);
            ms_log(err->retryable ? MS_LOG_WARN : MS_LOG_ERROR, "%s", err->msg);
            return err->retryable ? MS_RUN_RETRY : MS_RUN_CRITICAL;
        }
    }
    return MS_RUN_OK;
}

void ms_poller_status(struct ms_poller *pl, bson_t *out)
{
    bson_t tables, one;

    pthread_mutex_lock(&pl->mu);
    BSON_APPEND_DOCUMENT_BEGIN(out, "tables", &tables);
    for (size_t i = 0; i < pl->nt; i++) {
        const struct ptable *t = &pl->t[i];
        BSON_APPEND_DOCUMENT_BEGIN(&tables, t->spec, &one);
        BSON_APPEND_UTF8(&one, "change_column", t->change);
        if (t->soft[0] != '\0') {
            BSON_APPEND_UTF8(&one, "soft_delete_column", t->soft);
        } else {
            BSON_APPEND_NULL(&one, "soft_delete_column");
        }
        BSON_APPEND_INT64(&one, "rows_last_run", (int64_t)t->rows_last);
        BSON_APPEND_INT64(&one, "deleted_last_run", (int64_t)t->deleted_last);
        BSON_APPEND_INT64(&one, "rows_total", (int64_t)t->rows_total);
        BSON_APPEND_INT64(&one, "reconcile_deleted", (int64_t)t->reconcile_deleted);
        if (t->last_run_ms > 0) {
            BSON_APPEND_DATE_TIME(&one, "last_run_at", t->last_run_ms);
        } else {
            BSON_APPEND_NULL(&one, "last_run_at");
        }
        if (t->reconciled_ms > 0) {
            BSON_APPEND_DATE_TIME(&one, "reconciled_at", t->reconciled_ms);
        } else {
            BSON_APPEND_NULL(&one, "reconciled_at");
        }
        BSON_APPEND_UTF8(&one, "from", t->from);
        bson_append_document_end(&tables, &one);
    }
    bson_append_document_end(out, &tables);
    pthread_mutex_unlock(&pl->mu);
}

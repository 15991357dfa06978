/* The replication pipeline (include/mysync/pipeline.h).
 *
 *   reader thread: binlog -> parser -> schema -> strategy -> queue
 *   sink thread:   queue -> batch -> MongoDB bulk writes -> checkpoint
 *
 * The queue carries two kinds of items in stream order: the MongoDB operations of one row
 * change, and transaction boundaries (the binlog position just after a commit). The sink thread
 * saves a boundary as the checkpoint only after every operation before it is acknowledged, so a
 * restart resumes at a commit and replays at most the changes written after it; the writes are
 * idempotent (whole documents, $set of values, deletes), so the replay converges.
 *
 * On a lost source connection the reader resumes from the last boundary it queued (replaying a
 * partly read transaction is harmless for the same reason). */
#define MS_LOG_DOMAIN "pipeline"

#include "mysync/pipeline.h"
#include "mysync/clock.h"

#include <errno.h>
#include <malloc.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "mysync/binlog.h"
#include "mysync/bsonutil.h"
#include "mysync/log.h"
#include "mysync/mysql.h"
#include "mysync/reader.h"
#include "mysync/schema.h"
#include "mysync/sink.h"
#include "mysync/source.h"
#include "mysync/strategy.h"

/* sysexits codes carried in err->code by ms_pipeline_new's caller-facing errors */
#define QUEUE_MAX_BYTES    (64u * 1024 * 1024)
#define IDLE_CHECKPOINT_MS 1000
#define SHUTDOWN_GRACE_MS  10000
#define RECONNECT_MAX_MS   30000
#define RECONNECT_FIRST_MS 100
/* Rows one lookup of a resolve may return (an order's items, a product's stock). */
#define LOOKUP_MAX_ROWS 100000

/* ---- tables ------------------------------------------------------------------------- */

/* A replicated table: from sync.tables, or discovered in mysql.database when the list is
 * empty. key: configured key columns (sync.keys), else NULL (the primary key of the table
 * map / information_schema). */
struct table {
    char *db, *name;
    char **key;
    size_t nkey;
    bool warned; /* a problem already logged once */
    /* routing (route_table): the strategy, its context, the table's role in it */
    const struct ms_table_cfg *tcfg;
    const struct ms_strategy *strategy;
    void *sctx;
    const char *role; /* tcfg->role, a strategy's source_tables entry or name: stable */
    const struct ms_value_opts *vo; /* the pipeline's, or an own_source's */
    struct ms_source *source;       /* where its re-reads go */
    char **pkcols; /* the primary key's columns from information_schema (check_table) */
    size_t npkcols;
};

/* A table routed to an entity strategy because another of its tables is (products ->
 * categories), found on the source at start-up. */
struct implied {
    char *db, *name;
    const struct ms_strategy *strategy;
    const char *role;
};

#define MAX_STRATEGIES 16

struct own_source {
    struct ms_value_opts vo; /* borrowed by s for its life */
    struct ms_source *s;
};

/* ---- queue items -------------------------------------------------------------------- */

enum item_kind {
    IT_OPS = 1,      /* the operations of one row change */
    IT_BOUNDARY = 2, /* a transaction ended here */
    IT_DEAD = 3,     /* a change the strategy could not map: to the dead letters */
    IT_DDL = 4,      /* DDL seen: forget cached definitions of db */
    IT_MARK = 5,     /* a barrier: write everything before it, then say so (mark) */
    IT_TRUNCATE = 6, /* a TRUNCATE of a table with a collection of its own: delete every
                        document of collection `table` (after writing everything before it) */
};

struct item {
    enum item_kind kind;
    struct item *next;
    size_t bytes;
    struct ms_ops ops; /* IT_OPS */
    char *db, *table;  /* IT_OPS (for re-reads), IT_DEAD, IT_DDL (db) */
    char **pk;         /* IT_OPS with a REREAD op: key columns */
    size_t npk;
    /* IT_OPS: who mapped it, for re-reads and resolves at write time */
    const struct ms_strategy *strategy;
    void *sctx;
    const struct ms_table_cfg *tcfg;
    const char *role;
    const struct ms_value_opts *vo; /* the table's (stable: p->vo or a source's) */
    struct ms_source *src;          /* where its re-reads go */
    struct ms_ops res;              /* RESOLVE/REREAD ops expanded at write time */
    size_t *res_end;                /* per op: end of its expansion in res */
    char position[300];             /* "file:pos" of the change */
    char source[300];               /* "db.table" */
    struct ms_checkpoint cp;        /* IT_BOUNDARY */
    bson_t row;                     /* IT_DEAD: {before, after} */
    char op[8];                     /* IT_DEAD: insert|update|delete */
    uint64_t mark;                  /* IT_MARK: its sequence number */
    struct ms_error why;            /* IT_DEAD */
    bool keyed;                     /* IT_OPS: a producer's row under ms_pipeline_keys_begin */
    /* IT_OPS: its documents are probably new, so they are written insert-first
     * (ms_write.insert_first): the REPLACE ops map made (an inserted row), and those its
     * resolves made too (a snapshot row) */
    bool fresh, fresh_resolved;
};

struct queue {
    pthread_mutex_t mu;
    pthread_cond_t not_empty, not_full;
    struct item *head, *tail;
    size_t n, bytes, max_n, max_bytes;
};

struct ms_pipeline {
    const struct ms_config *cfg;
    struct ms_value_opts vo;
    struct table *tables;
    size_t ntables;
    bool all_tables; /* sync.tables empty: every table of mysql.database */

    mongoc_client_pool_t *pool;
    struct ms_sink *sink;
    struct ms_source *source;

    void *sctx[MAX_STRATEGIES]; /* per registry entry */
    bool sinit[MAX_STRATEGIES];
    struct implied *implied;
    size_t nimplied;
    struct own_source **own; /* sources of tables with value options of their own */
    size_t nown;

    struct ms_checkpoint start; /* where reading starts */
    uint32_t server_id;

    struct queue q;
    pthread_mutex_t mu; /* guards stats, fatal, the flags below */
    struct ms_pipeline_stats stats;
    /* Flags read across threads without the mutex (queue waits test them under the queue's
     * lock): atomics, so no lock order between the two mutexes is needed. */
    atomic_bool stopping; /* stop reading: set by run() or a fatal error */
    atomic_bool reader_done;
    atomic_bool sink_done;
    atomic_bool fatal;     /* fatal_err is set (under mu) before this */
    atomic_bool cancelled; /* the shutdown grace ran out: write nothing more */
    struct ms_error fatal_err;

    /* The control plane's state and counters (functions at the end of this file). */
    atomic_bool paused;    /* the sink takes nothing from the queue */
    atomic_bool trigger;   /* flush and checkpoint now; the sink clears it */
    atomic_bool caught_up; /* the reader's last event was a heartbeat */
    atomic_bool sink_idle; /* nothing batched, no boundary waiting */
    atomic_uint_fast64_t pending_ops;
    atomic_int_fast64_t interval_s;
    atomic_int_fast64_t mongo_ok_ms;        /* monotonic time of the last MongoDB success */
    struct ms_pipeline_table_stats *tstats; /* under mu; index = index in tables */
    size_t ntstats;
    struct ms_pipeline_collection_stats *cstats; /* under mu */
    size_t ncstats;
    pthread_t prober; /* probes MongoDB while no write says whether it is up */
    bool prober_started;

    /* Producers besides the binlog reader (snapshots, backfill: ms_pipeline_push_row). */
    struct ms_pipeline_opts opts;
    pthread_mutex_t tmu;   /* other threads' table lookups vs the reader's table_add */
    atomic_bool stream_go; /* the reader may start (ms_pipeline_start_stream) */
    pthread_mutex_t mark_mu;
    pthread_cond_t mark_cv;
    uint64_t mark_next, mark_done; /* under mark_mu */
    const char *snapshot_reason;   /* why a snapshot should precede streaming, or NULL */
    char snapshot_why[400];
    char sig_db[200], sig_name[200]; /* sync.signal_table (sig_name "" = none) */
    uint64_t windows_replayed;       /* operations replayed at the close of watermark windows */
    /* ms_pipeline_on_ddl: a table whose rows a DDL statement changed without row events */
    void (*ddl_snapshot)(void *ctx, const char *table);
    void *ddl_ctx;
    bool snapshot_sweep; /* the snapshot_reason is a purged checkpoint */
    /* ms_pipeline_keys_begin: _id fingerprints of the documents written for producers' rows
     * (written by the sink thread, read after a barrier) */
    atomic_bool keys_on;
    uint64_t *keys;
    size_t nkeys, capkeys;
    bool keys_sorted;
    char **kcolls; /* the collections they are in */
    size_t nkcolls;
};

/* Control-plane hooks in the reader and sink loops (defined at the end of this file). */
static void ctl_init(struct ms_pipeline *p);
static void ctl_cleanup(struct ms_pipeline *p);
static void ctl_table_added(struct ms_pipeline *p, const struct table *t);
static void ctl_error(struct ms_pipeline *p, const struct ms_error *err);
static void ctl_reader_error(struct ms_pipeline *p, const struct ms_error *err);
static void ctl_mysql_up(struct ms_pipeline *p);
static void ctl_rows(struct ms_pipeline *p, const struct table *t, int op, uint64_t n, uint32_t ts);
static void ctl_dead(struct ms_pipeline *p, const char *db, const char *table);
static void ctl_flush(struct ms_pipeline *p, const struct ms_sink_result *res,
                      const struct ms_sink_collection_result *per, size_t nper, size_t nwrites,
                      int64_t started_ms, bool ok);
static void ctl_checkpoint_saved(struct ms_pipeline *p);
static void ctl_sink_state(struct ms_pipeline *p, size_t nops, bool idle);
static void ctl_fill_stats(struct ms_pipeline *p, struct ms_pipeline_stats *out);
static void ctl_start(struct ms_pipeline *p);
static void ctl_stop(struct ms_pipeline *p);

static void set_fatal(struct ms_pipeline *p, const struct ms_error *err)
{
    pthread_mutex_lock(&p->mu);
    if (!atomic_load(&p->fatal)) {
        p->fatal_err = *err;
        atomic_store(&p->fatal, true);
    }
    atomic_store(&p->stopping, true);
    pthread_mutex_unlock(&p->mu);
    pthread_mutex_lock(&p->q.mu);
    pthread_cond_broadcast(&p->q.not_full);
    pthread_cond_broadcast(&p->q.not_empty);
    pthread_mutex_unlock(&p->q.mu);
}

static bool is_stopping(struct ms_pipeline *p)
{
    return atomic_load(&p->stopping);
}

/* ---- items and the queue ------------------------------------------------------------ */

static struct item *item_new(enum item_kind kind)
{
    struct item *it = calloc(1, sizeof(*it));

    if (it == NULL) {
        abort(); /* out of memory: nothing sensible to do in a replication daemon */
    }
    it->kind = kind;
    it->bytes = sizeof(*it);
    ms_ops_init(&it->ops);
    ms_ops_init(&it->res);
    bson_init(&it->row);
    return it;
}

static void item_free(struct item *it)
{
    if (it == NULL) {
        return;
    }
    ms_ops_cleanup(&it->ops);
    ms_ops_cleanup(&it->res);
    free(it->res_end);
    bson_destroy(&it->row);
    free(it->db);
    free(it->table);
    for (size_t i = 0; i < it->npk; i++) {
        free(it->pk[i]);
    }
    free(it->pk);
    free(it);
}

static void queue_init(struct queue *q, size_t max_n, size_t max_bytes)
{
    memset(q, 0, sizeof(*q));
    pthread_mutex_init(&q->mu, NULL);
    pthread_cond_init(&q->not_empty, NULL);
    pthread_cond_init(&q->not_full, NULL);
    q->max_n = max_n;
    q->max_bytes = max_bytes;
}

static void queue_destroy(struct queue *q)
{
    while (q->head != NULL) {
        struct item *it = q->head;
        q->head = it->next;
        item_free(it);
    }
    pthread_mutex_destroy(&q->mu);
    pthread_cond_destroy(&q->not_empty);
    pthread_cond_destroy(&q->not_full);
}

/* Blocks while the queue is full (back-pressure); an item larger than the byte limit still
 * goes in once the queue is empty. False (item freed) when the pipeline stops meanwhile. */
static bool queue_push(struct ms_pipeline *p, struct item *it)
{
    struct queue *q = &p->q;

    pthread_mutex_lock(&q->mu);
    while ((q->n >= q->max_n || (q->n > 0 && q->bytes + it->bytes > q->max_bytes)) &&
           !atomic_load(&p->fatal) && !atomic_load(&p->stopping)) {
        pthread_cond_wait(&q->not_full, &q->mu);
    }
    if (atomic_load(&p->fatal)) {
        pthread_mutex_unlock(&q->mu);
        item_free(it);
        return false;
    }
    if (q->tail != NULL) {
        q->tail->next = it;
    } else {
        q->head = it;
    }
    q->tail = it;
    q->n++;
    q->bytes += it->bytes;
    pthread_cond_signal(&q->not_empty);
    pthread_mutex_unlock(&q->mu);
    return true;
}

/* Waits until deadline_ms (monotonic; < 0: 200 ms) for an item. NULL on timeout. */
static struct item *queue_pop(struct queue *q, int64_t deadline_ms)
{
    struct item *it;
    struct timespec ts;
    int64_t until = deadline_ms >= 0 ? deadline_ms : ms_clock_mono_ms() + 200;

    pthread_mutex_lock(&q->mu);
    while (q->head == NULL) {
        int64_t left = until - ms_clock_mono_ms();
        if (left <= 0) {
            pthread_mutex_unlock(&q->mu);
            return NULL;
        }
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_sec += left / 1000;
        ts.tv_nsec += (left % 1000) * 1000000L;
        if (ts.tv_nsec >= 1000000000L) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000L;
        }
        pthread_cond_timedwait(&q->not_empty, &q->mu, &ts);
    }
    it = q->head;
    q->head = it->next;
    if (q->head == NULL) {
        q->tail = NULL;
    }
    q->n--;
    q->bytes -= it->bytes;
    pthread_cond_signal(&q->not_full);
    pthread_mutex_unlock(&q->mu);
    it->next = NULL;
    return it;
}

static size_t queue_depth(struct queue *q)
{
    size_t n;

    pthread_mutex_lock(&q->mu);
    n = q->n;
    pthread_mutex_unlock(&q->mu);
    return n;
}

/* ---- table selection ------------------------------------------------------------------ */

static bool is_system_db(const char *db)
{
    static const char *const sys[] = {"mysql", "information_schema", "performance_schema", "sys",
                                      NULL};
    for (size_t i = 0; sys[i] != NULL; i++) {
        if (strcmp(db, sys[i]) == 0) {
            return true;
        }
    }
    return false;
}

static bool is_signal_table(const struct ms_pipeline *p, const char *db, const char *name)
{
    return p->sig_name[0] != '\0' && strcmp(db, p->sig_db) == 0 && strcmp(name, p->sig_name) == 0;
}

static struct table *table_find(struct ms_pipeline *p, const char *db, const char *name)
{
    for (size_t i = 0; i < p->ntables; i++) {
        if (strcmp(p->tables[i].db, db) == 0 && strcmp(p->tables[i].name, name) == 0) {
            return &p->tables[i];
        }
    }
    return NULL;
}

static int strategy_index(const struct ms_strategy *s)
{
    const struct ms_strategy *const *all = ms_strategy_all();

    for (int i = 0; all[i] != NULL && i < MAX_STRATEGIES; i++) {
        if (all[i] == s) {
            return i;
        }
    }
    return -1;
}

/* The source a table's reads go through: the pipeline's, or one with the table's own value
 * options (so a re-read row equals its binlog image under those options). */
/* Sources for tables with value options of their own (tables.<t>.date_as, ...): made at
 * start-up for every such entry, read-only afterwards (the reader and sink threads both look
 * them up). NULL: the table uses the pipeline's options and source. */
static struct own_source *own_source_find(const struct ms_pipeline *p,
                                          const struct ms_value_opts *vo)
{
    if (memcmp(vo, &p->vo, sizeof(*vo)) == 0) {
        return NULL;
    }
    for (size_t i = 0; i < p->nown; i++) {
        if (memcmp(&p->own[i]->vo, vo, sizeof(*vo)) == 0) {
            return p->own[i];
        }
    }
    return NULL;
}

static void own_sources_setup(struct ms_pipeline *p)
{
    for (size_t i = 0; i < p->cfg->ntables; i++) {
        struct ms_value_opts vo;
        struct own_source *o;

        ms_value_opts_for_table(&vo, &p->vo, &p->cfg->tables[i]);
        if (memcmp(&vo, &p->vo, sizeof(vo)) == 0 || own_source_find(p, &vo) != NULL) {
            continue;
        }
        p->own = realloc(p->own, (p->nown + 1) * sizeof(*p->own));
        o = calloc(1, sizeof(*o));
        if (p->own == NULL || o == NULL) {
            abort();
        }
        o->vo = vo;
        o->s = ms_source_new(p->cfg, &o->vo);
        p->own[p->nown++] = o;
    }
}

/* The source reads of db.table go through, and the options its values are decoded with. */
static struct ms_source *source_for(const struct ms_pipeline *p, const char *db, const char *table,
                                    const struct ms_value_opts **vo)
{
    struct ms_value_opts v;
    const struct own_source *o;

    ms_value_opts_for_table(&v, &p->vo, ms_config_table(p->cfg, db, table));
    o = own_source_find(p, &v);
    if (vo != NULL) {
        *vo = o != NULL ? &o->vo : &p->vo;
    }
    return o != NULL ? o->s : p->source;
}

/* Strategy, role and value options of a table: tables.<t> (or SYNC_STRATEGY_<T>), else a role
 * implied by a sibling table, else generic with the table as its own role. */
static void route_table(struct ms_pipeline *p, struct table *t)
{
    const char *sname = NULL;

    t->tcfg = ms_config_table(p->cfg, t->db, t->name);
    t->strategy = &ms_strategy_generic;
    t->role = t->name;
    if (t->tcfg != NULL && t->tcfg->strategy != NULL) {
        sname = t->tcfg->strategy;
    }
    if (sname != NULL && ms_strategy_find(sname) != NULL) {
        t->strategy = ms_strategy_find(sname);
        if (t->tcfg->role != NULL) {
            t->role = t->tcfg->role;
        }
    } else if (t->tcfg == NULL || t->tcfg->strategy == NULL) {
        for (size_t i = 0; i < p->nimplied; i++) {
            if (strcmp(p->implied[i].db, t->db) == 0 && strcmp(p->implied[i].name, t->name) == 0) {
                t->strategy = p->implied[i].strategy;
                t->role = p->implied[i].role;
            }
        }
    }
    if (t->strategy->source_tables != NULL) {
        /* a stable copy of the role: the strategy's own string */
        for (size_t i = 0; t->strategy->source_tables[i] != NULL; i++) {
            if (strcmp(t->strategy->source_tables[i], t->role) == 0) {
                t->role = t->strategy->source_tables[i];
            }
        }
    }
    int si = strategy_index(t->strategy);
    t->sctx = si >= 0 ? p->sctx[si] : NULL;
    t->source = source_for(p, t->db, t->name, &t->vo);
}

static struct table *table_add(struct ms_pipeline *p, const char *db, const char *name)
{
    struct table *t;

    pthread_mutex_lock(&p->tmu); /* producers look tables up from other threads */
    t = realloc(p->tables, (p->ntables + 1) * sizeof(*t));
    if (t == NULL) {
        abort();
    }
    p->tables = t;
    t = &p->tables[p->ntables++];
    memset(t, 0, sizeof(*t));
    t->db = strdup(db);
    t->name = strdup(name);
    if (p->sinit[0]) {
        route_table(p, t); /* a table discovered while streaming */
    }
    pthread_mutex_unlock(&p->tmu);
    ctl_table_added(p, t);
    return t;
}

/* The table a row event belongs to, or NULL when it is not replicated. With an empty
 * sync.tables every table of mysql.database is (new ones included). */
static struct table *table_select(struct ms_pipeline *p, const char *db, const char *name)
{
    struct table *t = table_find(p, db, name);

    if (t != NULL || !p->all_tables || is_signal_table(p, db, name)) {
        return t;
    }
    if (p->cfg->mysql_database != NULL ? strcmp(db, p->cfg->mysql_database) != 0
                                       : is_system_db(db)) {
        return NULL;
    }
    return table_add(p, db, name);
}

static void split_qualified(const char *spec, const char *defdb, char *db, size_t dbsz, char *name,
                            size_t namesz)
{
    const char *dot = strchr(spec, '.');

    if (dot != NULL) {
        snprintf(db, dbsz, "%.*s", (int)(dot - spec), spec);
        snprintf(name, namesz, "%s", dot + 1);
    } else {
        snprintf(db, dbsz, "%s", defdb != NULL ? defdb : "");
        snprintf(name, namesz, "%s", spec);
    }
}

/* Runs a query with one row of string results; *found false when it returns no row. */
static bool query_row(MYSQL *c, const char *sql, char **out, size_t nout, size_t outsz, bool *found,
                      struct ms_error *err)
{
    MYSQL_RES *res;
    MYSQL_ROW row;

    *found = false;
    if (mysql_query(c, sql) != 0 || (res = mysql_store_result(c)) == NULL) {
        ms_mysql_error(c, sql, err);
        return false;
    }
    row = mysql_fetch_row(res);
    if (row != NULL) {
        *found = true;
        for (size_t i = 0; i < nout && i < mysql_num_fields(res); i++) {
            snprintf(out[i], outsz, "%s", row[i] != NULL ? row[i] : "");
        }
    }
    mysql_free_result(res);
    return true;
}

static void escape(MYSQL *c, char *out, size_t outsz, const char *s)
{
    size_t n = strlen(s);

    if (n * 2 + 1 > outsz) {
        n = (outsz - 1) / 2;
    }
    mysql_real_escape_string(c, out, s, (unsigned long)n);
}

/* Checks one configured table: it exists, and has a primary key or a configured key whose
 * columns exist. */
static bool check_table(MYSQL *c, struct table *t, struct ms_error *err)
{
    char edb[300], etab[300], sql[1200], count[32], *outs[1] = {count};
    bool found;

    escape(c, edb, sizeof(edb), t->db);
    escape(c, etab, sizeof(etab), t->name);
    snprintf(sql, sizeof(sql),
             "SELECT TABLE_TYPE FROM information_schema.TABLES WHERE TABLE_SCHEMA='%s' AND "
             "TABLE_NAME='%s'",
             edb, etab);
    if (!query_row(c, sql, outs, 1, sizeof(count), &found, err)) {
        return false;
    }
    if (!found) {
        ms_error_set(err, MS_ERR_CONFIG, 1,
                     "sync.tables: %s.%s does not exist on the source (or the user may not see "
                     "it: GRANT SELECT ON %s.* TO the mysync user)",
                     t->db, t->name, t->db);
        return false;
    }
    if (strcmp(count, "BASE TABLE") != 0 && strcmp(count, "SYSTEM VERSIONED") != 0) {
        ms_error_set(err, MS_ERR_CONFIG, 1,
                     "sync.tables: %s.%s is a %s, not a table: views have no binlog rows", t->db,
                     t->name, count);
        return false;
    }
    if (t->nkey > 0) {
        for (size_t i = 0; i < t->nkey; i++) {
            char ecol[300];
            escape(c, ecol, sizeof(ecol), t->key[i]);
            snprintf(sql, sizeof(sql),
                     "SELECT COUNT(*) FROM information_schema.COLUMNS WHERE TABLE_SCHEMA='%s' "
                     "AND TABLE_NAME='%s' AND COLUMN_NAME='%s'",
                     edb, etab, ecol);
            if (!query_row(c, sql, outs, 1, sizeof(count), &found, err)) {
                return false;
            }
            if (strcmp(count, "0") == 0) {
                ms_error_set(err, MS_ERR_CONFIG, 1,
                             "sync.keys: %s.%s has no column '%s' for its configured key", t->db,
                             t->name, t->key[i]);
                return false;
            }
        }
        return true;
    }
    snprintf(sql, sizeof(sql),
             "SELECT COUNT(*) FROM information_schema.STATISTICS WHERE TABLE_SCHEMA='%s' AND "
             "TABLE_NAME='%s' AND INDEX_NAME='PRIMARY'",
             edb, etab);
    if (!query_row(c, sql, outs, 1, sizeof(count), &found, err)) {
        return false;
    }
    if (strcmp(count, "0") != 0) {
        MYSQL_RES *res;
        MYSQL_ROW row;
        snprintf(sql, sizeof(sql),
                 "SELECT COLUMN_NAME FROM information_schema.STATISTICS WHERE TABLE_SCHEMA='%s' "
                 "AND TABLE_NAME='%s' AND INDEX_NAME='PRIMARY' ORDER BY SEQ_IN_INDEX",
                 edb, etab);
        if (mysql_query(c, sql) != 0 || (res = mysql_store_result(c)) == NULL) {
            ms_mysql_error(c, "reading the primary key", err);
            return false;
        }
        for (size_t i = 0; i < t->npkcols; i++) {
            free(t->pkcols[i]);
        }
        t->npkcols = 0;
        t->pkcols = realloc(t->pkcols, (mysql_num_rows(res) + 1) * sizeof(char *));
        if (t->pkcols == NULL) {
            abort();
        }
        while ((row = mysql_fetch_row(res)) != NULL) {
            t->pkcols[t->npkcols++] = strdup(row[0] != NULL ? row[0] : "");
        }
        mysql_free_result(res);
    }
    if (strcmp(count, "0") == 0) {
        ms_error_set(err, MS_ERR_CONFIG, 1,
                     "%s.%s has no primary key, so its rows cannot be matched to documents: add "
                     "one, or name the columns that identify a row in sync.keys (SYNC_KEYS=\"%s.%s:"
                     "col1+col2\")",
                     t->db, t->name, t->db, t->name);
        return false;
    }
    return true;
}

/* Strategy names and roles of the tables: section, checked before anything runs. */
static bool check_routes(const struct ms_config *cfg, struct ms_error *err)
{
    for (size_t i = 0; i < cfg->ntables; i++) {
        const struct ms_table_cfg *t = &cfg->tables[i];
        const struct ms_strategy *s;
        const char *dot = strchr(t->name, '.'), *role;
        bool known = false;

        if (t->strategy == NULL) {
            if (t->role != NULL) {
                ms_error_set(err, MS_ERR_CONFIG, 1, "%s: tables.%s: a role needs a strategy",
                             t->where, t->name);
                return false;
            }
            continue;
        }
        s = ms_strategy_find(t->strategy);
        if (s == NULL) {
            char names[200] = "";
            for (const struct ms_strategy *const *a = ms_strategy_all(); *a != NULL; a++) {
                snprintf(names + strlen(names), sizeof(names) - strlen(names), "%s%s",
                         names[0] != '\0' ? ", " : "", (*a)->name);
            }
            ms_error_set(err, MS_ERR_CONFIG, 1,
                         "%s: tables.%s.strategy: unknown strategy '%s' (one of %s)", t->where,
                         t->name, t->strategy, names);
            return false;
        }
        if (s->source_tables == NULL) {
            continue;
        }
        role = t->role != NULL ? t->role : (dot != NULL ? dot + 1 : t->name);
        char roles[200] = "";
        for (size_t k = 0; s->source_tables[k] != NULL; k++) {
            known |= strcmp(s->source_tables[k], role) == 0;
            snprintf(roles + strlen(roles), sizeof(roles) - strlen(roles), "%s%s",
                     k > 0 ? ", " : "", s->source_tables[k]);
        }
        if (!known) {
            ms_error_set(err, MS_ERR_CONFIG, 1,
                         "%s: tables.%s: the %s strategy has no table '%s': set tables.%s.role "
                         "to one of %s",
                         t->where, t->name, s->name, role, t->name, roles);
            return false;
        }
    }
    return true;
}

/* A strategy named for one of its tables takes its other tables too when they exist under
 * their role's name, in the same database, and have no entry of their own (products brings
 * categories, orders brings order_items). */
static bool imply_roles(struct ms_pipeline *p, MYSQL *c, struct ms_error *err)
{
    const struct ms_config *cfg = p->cfg;

    for (size_t i = 0; i < cfg->ntables; i++) {
        const struct ms_table_cfg *t = &cfg->tables[i];
        const struct ms_strategy *s = t->strategy != NULL ? ms_strategy_find(t->strategy) : NULL;
        char db[200], name[200];

        if (s == NULL || s->source_tables == NULL) {
            continue;
        }
        split_qualified(t->name, cfg->mysql_database, db, sizeof(db), name, sizeof(name));
        for (size_t k = 0; s->source_tables[k] != NULL; k++) {
            const char *role = s->source_tables[k];
            char rdb[200], rtable[200], edb[300], etab[300], sql[800], cnt[32], *outs[1] = {cnt};
            bool found, taken = false;

            ms_strategy_role_table(cfg, s->name, role, db, rdb, sizeof(rdb), rtable,
                                   sizeof(rtable));
            for (size_t j = 0; j < cfg->ntables; j++) {
                const struct ms_table_cfg *o = &cfg->tables[j];
                const char *odot = strchr(o->name, '.');
                const char *orole = o->role != NULL ? o->role : (odot ? odot + 1 : o->name);
                if (o->strategy != NULL && strcmp(o->strategy, s->name) == 0 &&
                    strcmp(orole, role) == 0) {
                    taken = true; /* configured */
                }
            }
            if (taken || ms_config_table(cfg, rdb, rtable) != NULL) {
                continue;
            }
            for (size_t j = 0; j < p->nimplied; j++) {
                taken |=
                    strcmp(p->implied[j].db, rdb) == 0 && strcmp(p->implied[j].name, rtable) == 0;
            }
            if (taken) {
                continue;
            }
            escape(c, edb, sizeof(edb), rdb);
            escape(c, etab, sizeof(etab), rtable);
            snprintf(sql, sizeof(sql),
                     "SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA='%s' AND "
                     "TABLE_NAME='%s'",
                     edb, etab);
            if (!query_row(c, sql, outs, 1, sizeof(cnt), &found, err)) {
                return false;
            }
            if (strcmp(cnt, "0") == 0) {
                continue;
            }
            p->implied = realloc(p->implied, (p->nimplied + 1) * sizeof(*p->implied));
            if (p->implied == NULL) {
                abort();
            }
            p->implied[p->nimplied].db = strdup(rdb);
            p->implied[p->nimplied].name = strdup(rtable);
            p->implied[p->nimplied].strategy = s;
            p->implied[p->nimplied].role = role;
            p->nimplied++;
            if (table_find(p, rdb, rtable) == NULL) {
                table_add(p, rdb, rtable);
            }
            ms_log(MS_LOG_INFO, "%s.%s goes to the %s strategy as its %s table", rdb, rtable,
                   s->name, role);
        }
    }
    return true;
}

/* Creates every strategy's context (each checks its part of the configuration). */
static bool init_strategies(struct ms_pipeline *p, struct ms_error *err)
{
    const struct ms_strategy *const *all = ms_strategy_all();

    for (int i = 0; all[i] != NULL; i++) {
        if (i >= MAX_STRATEGIES) {
            ms_error_set(err, MS_ERR_SYSTEM, EINVAL, "too many strategies");
            return false;
        }
        if (!all[i]->init(&p->sctx[i], p->cfg, err)) {
            ms_error_prefix(err, "strategy %s", all[i]->name);
            return false;
        }
        p->sinit[i] = true;
    }
    return true;
}

/* The indexes of every strategy that has a table, created (idempotently) before streaming. */
static bool ensure_indexes(struct ms_pipeline *p, struct ms_error *err)
{
    const struct ms_strategy *const *all = ms_strategy_all();

    for (int i = 0; all[i] != NULL && i < MAX_STRATEGIES; i++) {
        struct ms_index *ix = NULL;
        size_t n = 0;
        bool used = false, ok = true;

        for (size_t t = 0; t < p->ntables; t++) {
            used |= p->tables[t].strategy == all[i];
        }
        if (!used || all[i]->indexes == NULL) {
            continue;
        }
        if (!all[i]->indexes(p->sctx[i], &ix, &n, err)) {
            return false;
        }
        for (size_t k = 0; k < n; k++) {
            bson_t opts = BSON_INITIALIZER;
            if (ix[k].unique) {
                BSON_APPEND_BOOL(&opts, "unique", true);
            }
            if (ix[k].sparse) {
                BSON_APPEND_BOOL(&opts, "sparse", true);
            }
            if (ok && !ms_sink_ensure_index_opts(p->sink, ix[k].collection, &ix[k].keys, &opts,
                                                 ix[k].name[0] != '\0' ? ix[k].name : NULL, err)) {
                ms_error_prefix(err, "creating index %s on %s", ix[k].name, ix[k].collection);
                ok = false;
            }
            bson_destroy(&opts);
            bson_destroy(&ix[k].keys);
        }
        free(ix);
        if (!ok) {
            return false;
        }
    }
    return true;
}

static bool setup_keys_and_check(struct ms_pipeline *p, MYSQL *c, struct ms_error *err, bool all);

static bool setup_tables(struct ms_pipeline *p, MYSQL *c, struct ms_error *err)
{
    const struct ms_config *cfg = p->cfg;
    char db[200], name[200];

    if (p->opts.backfill_only && p->opts.ntables > 0) {
        /* mysync --full: the tables named, keyed like the daemon keys them */
        for (size_t i = 0; i < p->opts.ntables; i++) {
            split_qualified(p->opts.tables[i], cfg->mysql_database, db, sizeof(db), name,
                            sizeof(name));
            if (db[0] == '\0') {
                ms_error_set(err, MS_ERR_CONFIG, 1,
                             "--table %s names no database: set mysql.database (MYSQL_DATABASE) "
                             "or write 'database.%s'",
                             p->opts.tables[i], p->opts.tables[i]);
                return false;
            }
            if (table_find(p, db, name) == NULL) {
                table_add(p, db, name);
            }
        }
        return setup_keys_and_check(p, c, err, false);
    }
    p->all_tables = cfg->sync_tables.n == 0;
    for (size_t i = 0; i < cfg->sync_tables.n; i++) {
        split_qualified(cfg->sync_tables.v[i], cfg->mysql_database, db, sizeof(db), name,
                        sizeof(name));
        if (table_find(p, db, name) == NULL) {
            table_add(p, db, name);
        }
    }
    return setup_keys_and_check(p, c, err, true);
}

/* sync.keys, then (all: every table of mysql.database, the tables: entries) the implied roles
 * and a check of every table. */
static bool setup_keys_and_check(struct ms_pipeline *p, MYSQL *c, struct ms_error *err, bool all)
{
    const struct ms_config *cfg = p->cfg;
    char db[200], name[200];

    for (size_t i = 0; i < cfg->sync_keys.n; i++) {
        const char *spec = cfg->sync_keys.v[i], *colon = strchr(spec, ':');
        char tspec[400];
        struct table *t;
        snprintf(tspec, sizeof(tspec), "%.*s", (int)(colon - spec), spec);
        split_qualified(tspec, cfg->mysql_database, db, sizeof(db), name, sizeof(name));
        t = table_find(p, db, name);
        if (t == NULL && !all) {
            continue; /* not among the tables named */
        }
        if (t == NULL) {
            if (!p->all_tables) {
                ms_error_set(err, MS_ERR_CONFIG, 1, "sync.keys: %s.%s is not in sync.tables", db,
                             name);
                return false;
            }
            t = table_add(p, db, name);
        }
        for (const char *s = colon + 1; *s != '\0';) {
            const char *plus = strchr(s, '+');
            size_t len = plus != NULL ? (size_t)(plus - s) : strlen(s);
            t->key = realloc(t->key, (t->nkey + 1) * sizeof(char *));
            t->key[t->nkey++] = strndup(s, len);
            s += len + (plus != NULL ? 1 : 0);
        }
    }
    if (all && p->all_tables && cfg->mysql_database != NULL) {
        /* every base table of the database, checked now like listed ones */
        char edb[300], sql[600];
        MYSQL_RES *res;
        MYSQL_ROW row;
        escape(c, edb, sizeof(edb), cfg->mysql_database);
        snprintf(sql, sizeof(sql),
                 "SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA='%s' AND "
                 "TABLE_TYPE IN ('BASE TABLE','SYSTEM VERSIONED') ORDER BY TABLE_NAME",
                 edb);
        if (mysql_query(c, sql) != 0 || (res = mysql_store_result(c)) == NULL) {
            ms_mysql_error(c, "listing the tables of mysql.database", err);
            return false;
        }
        while ((row = mysql_fetch_row(res)) != NULL) {
            if (table_find(p, cfg->mysql_database, row[0]) == NULL &&
                !is_signal_table(p, cfg->mysql_database, row[0])) {
                table_add(p, cfg->mysql_database, row[0]);
            }
        }
        mysql_free_result(res);
    }
    /* a table with a tables: entry (or SYNC_STRATEGY_<T>) is replicated too */
    for (size_t i = 0; all && i < cfg->ntables; i++) {
        split_qualified(cfg->tables[i].name, cfg->mysql_database, db, sizeof(db), name,
                        sizeof(name));
        if (db[0] == '\0') {
            ms_error_set(err, MS_ERR_CONFIG, 1,
                         "%s: tables.%s names no database: set mysql.database (MYSQL_DATABASE) "
                         "or write 'database.%s'",
                         cfg->tables[i].where, cfg->tables[i].name, cfg->tables[i].name);
            return false;
        }
        if (table_find(p, db, name) == NULL) {
            table_add(p, db, name);
        }
    }
    if (!imply_roles(p, c, err)) {
        return false;
    }
    for (size_t i = 0; i < p->ntables; i++) {
        if (!check_table(c, &p->tables[i], err)) {
            return false;
        }
    }
    return true;
}

/* ---- start position ------------------------------------------------------------------ */

/* Is file:pos still on the server? (SHOW BINARY LOGS lists the files and their sizes.) */
static bool position_available(MYSQL *c, const struct ms_checkpoint *cp, bool *available,
                               char *first, size_t firstsz, struct ms_error *err)
{
    MYSQL_RES *res;
    MYSQL_ROW row;

    *available = false;
    first[0] = '\0';
    if (mysql_query(c, "SHOW BINARY LOGS") != 0 || (res = mysql_store_result(c)) == NULL) {
        ms_mysql_error(c, "SHOW BINARY LOGS", err);
        return false;
    }
    while ((row = mysql_fetch_row(res)) != NULL) {
        if (first[0] == '\0') {
            snprintf(first, firstsz, "%s", row[0]);
        }
        if (strcmp(row[0], cp->file) == 0 && strtoull(row[1], NULL, 10) >= cp->pos) {
            *available = true;
        }
    }
    mysql_free_result(res);
    return true;
}

static bool current_position(MYSQL *c, struct ms_checkpoint *cp, struct ms_error *err)
{
    char file[256], pos[32], *outs[2] = {file, pos};
    bool found;

    if (!query_row(c, "SHOW MASTER STATUS", outs, 2, sizeof(file), &found, err)) {
        return false;
    }
    if (!found) {
        ms_error_set(err, MS_ERR_MYSQL, 1,
                     "SHOW MASTER STATUS returned nothing: binary logging is off on the source");
        return false;
    }
    memset(cp, 0, sizeof(*cp));
    snprintf(cp->file, sizeof(cp->file), "%s", file);
    cp->pos = strtoull(pos, NULL, 10);
    cp->event_time_ms = ms_clock_wall_ms();
    return true;
}

/* FerretDB v1 names itself in buildInfo; it has no Decimal128. */
static bool target_is_ferretdb(mongoc_client_pool_t *pool)
{
    mongoc_client_t *c = mongoc_client_pool_pop(pool);
    bson_t cmd = BSON_INITIALIZER, reply;
    bson_iter_t it;
    bool ferret = false;

    BSON_APPEND_INT32(&cmd, "buildInfo", 1);
    if (mongoc_client_command_simple(c, "admin", &cmd, NULL, &reply, NULL)) {
        ferret = bson_iter_init_find(&it, &reply, "ferretdbVersion") ||
                 (bson_iter_init_find(&it, &reply, "ferretdb") && true);
    }
    bson_destroy(&reply);
    bson_destroy(&cmd);
    mongoc_client_pool_push(pool, c);
    return ferret;
}

struct ms_pipeline *ms_pipeline_new(const struct ms_config *cfg, struct ms_error *err)
{
    return ms_pipeline_new_opts(cfg, NULL, err);
}

struct ms_pipeline *ms_pipeline_new_opts(const struct ms_config *cfg,
                                         const struct ms_pipeline_opts *opts, struct ms_error *err)
{
    struct ms_pipeline *p = calloc(1, sizeof(*p));
    struct ms_sink_opts so = {.max_retries = -1, .retry_delay_ms = cfg->sync_retry_delay_ms};
    struct ms_mysql_info mi;
    struct ms_mongo_info gi;
    MYSQL *c = NULL;
    bool found;

    if (p == NULL) {
        ms_error_set(err, MS_ERR_SYSTEM, ENOMEM, "out of memory");
        return NULL;
    }
    p->cfg = cfg;
    if (opts != NULL) {
        p->opts = *opts;
    }
    pthread_mutex_init(&p->mu, NULL);
    pthread_mutex_init(&p->tmu, NULL);
    pthread_mutex_init(&p->mark_mu, NULL);
    pthread_cond_init(&p->mark_cv, NULL);
    atomic_store(&p->stream_go, !p->opts.defer_stream);
    if (cfg->sync_signal_table != NULL && cfg->sync_signal_table[0] != '\0') {
        split_qualified(cfg->sync_signal_table, cfg->mysql_database, p->sig_db, sizeof(p->sig_db),
                        p->sig_name, sizeof(p->sig_name));
    }
    ctl_init(p);
    queue_init(&p->q, (size_t)(cfg->sync_batch_size * 4 > 4096 ? cfg->sync_batch_size * 4 : 4096),
               QUEUE_MAX_BYTES);
    ms_value_opts_from_config(&p->vo, cfg);
    p->server_id = ms_reader_default_server_id(cfg);

    if (!check_routes(cfg, err) || !init_strategies(p, err)) {
        goto fail;
    }
    c = ms_mysql_connect(cfg, err);
    if (c == NULL || !ms_mysql_probe(c, &mi, err) ||
        (!p->opts.backfill_only && !ms_reader_preflight(c, err)) || !setup_tables(p, c, err)) {
        goto fail;
    }

    p->pool = ms_sink_pool_new(cfg, err);
    if (p->pool == NULL || !ms_sink_ping(p->pool, &gi, err)) {
        goto fail;
    }
    if (cfg->sync_decimal_as == MS_DECIMAL_AS_DECIMAL128 && target_is_ferretdb(p->pool)) {
        ms_error_set(err, MS_ERR_CONFIG, 1,
                     "the target is FerretDB (%s), which has no Decimal128: set "
                     "sync.decimal_as to string or double (SYNC_DECIMAL_AS=string keeps DECIMAL "
                     "values exact)",
                     gi.version);
        goto fail;
    }
    p->sink = ms_sink_new(p->pool, cfg->mongodb_database, &so, err);
    if (p->sink == NULL) {
        goto fail;
    }
    if (p->opts.backfill_only) {
        found = false; /* the daemon's checkpoint is not ours to read or move */
    } else if (!ms_sink_checkpoint_load(p->sink, cfg->sync_pipeline, &p->start, &found, err)) {
        goto fail;
    }
    if (p->opts.backfill_only) {
        /* nothing to position */
    } else if (found && p->start.file[0] != '\0') {
        bool available;
        char first[256];
        if (!position_available(c, &p->start, &available, first, sizeof(first), err)) {
            goto fail;
        }
        if (!available && cfg->sync_snapshot == MS_SNAPSHOT_WHEN_NEEDED) {
            snprintf(p->snapshot_why, sizeof(p->snapshot_why),
                     "the checkpoint %s:%llu is no longer on the source (binlog purged; the "
                     "oldest file is %s)",
                     p->start.file, (unsigned long long)p->start.pos,
                     first[0] != '\0' ? first : "none");
            p->snapshot_reason = p->snapshot_why;
            p->snapshot_sweep = true;
            ms_log(MS_LOG_WARN,
                   "%s: sync.snapshot=when_needed takes a new snapshot, then streams "
                   "from the current position",
                   p->snapshot_why);
            if (!current_position(c, &p->start, err) ||
                !ms_sink_checkpoint_save(p->sink, cfg->sync_pipeline, &p->start, err)) {
                goto fail;
            }
            available = true;
        }
        if (!available) {
            ms_error_set(err, MS_ERR_MYSQL, 1236,
                         "the checkpoint %s:%llu is no longer on the source (binlog purged; the "
                         "oldest file is %s): changes since then are lost to the binlog. "
                         "Recover with a re-snapshot: start with SYNC_SNAPSHOT=when_needed (it "
                         "copies every replicated table again, then streams from the current "
                         "position)",
                         p->start.file, (unsigned long long)p->start.pos,
                         first[0] != '\0' ? first : "none");
            goto fail;
        }
        ms_log_kv(MS_LOG_INFO,
                  ((struct ms_log_field[]){MS_LF_STR("file", p->start.file),
                                           MS_LF_INT("pos", (int64_t)p->start.pos),
                                           MS_LF_STR("gtid", p->start.gtid)}),
                  "resuming from the checkpoint");
    } else {
        if (!current_position(c, &p->start, err) ||
            !ms_sink_checkpoint_save(p->sink, cfg->sync_pipeline, &p->start, err)) {
            goto fail;
        }
        if (cfg->sync_snapshot != MS_SNAPSHOT_NEVER) {
            snprintf(p->snapshot_why, sizeof(p->snapshot_why), "first start (no checkpoint)");
            p->snapshot_reason = p->snapshot_why;
        }
        ms_log_kv(MS_LOG_INFO,
                  ((struct ms_log_field[]){MS_LF_STR("file", p->start.file),
                                           MS_LF_INT("pos", (int64_t)p->start.pos)}),
                  cfg->sync_snapshot != MS_SNAPSHOT_NEVER
                      ? "no checkpoint: position taken before the initial snapshot"
                      : "no checkpoint: starting at the source's current position "
                        "(sync.snapshot=never: earlier rows need mysync --full)");
    }
    mysql_close(c);
    c = NULL;

    p->source = ms_source_new(cfg, &p->vo);
    own_sources_setup(p);
    for (size_t i = 0; i < p->ntables; i++) {
        route_table(p, &p->tables[i]);
    }
    if (!p->opts.read_only && !ensure_indexes(p, err)) {
        goto fail;
    }
    pthread_mutex_lock(&p->mu);
    snprintf(p->stats.file, sizeof(p->stats.file), "%s", p->start.file);
    p->stats.pos = p->start.pos;
    snprintf(p->stats.gtid, sizeof(p->stats.gtid), "%s", p->start.gtid);
    p->stats.checkpoint_event_ms = p->start.event_time_ms;
    p->stats.checkpoint_wall_ms = ms_clock_wall_ms();
    pthread_mutex_unlock(&p->mu);
    return p;
fail:
    if (c != NULL) {
        mysql_close(c);
    }
    ms_pipeline_destroy(p);
    return NULL;
}

void ms_pipeline_destroy(struct ms_pipeline *p)
{
    if (p == NULL) {
        return;
    }
    ms_pipeline_keys_end(p);
    for (int i = 0; i < MAX_STRATEGIES && ms_strategy_all()[i] != NULL; i++) {
        if (p->sinit[i]) {
            ms_strategy_all()[i]->destroy(p->sctx[i]);
        }
    }
    for (size_t i = 0; i < p->nown; i++) {
        ms_source_destroy(p->own[i]->s);
        free(p->own[i]);
    }
    free(p->own);
    for (size_t i = 0; i < p->nimplied; i++) {
        free(p->implied[i].db);
        free(p->implied[i].name);
    }
    free(p->implied);
    ms_source_destroy(p->source);
    ms_sink_destroy(p->sink);
    if (p->pool != NULL) {
        mongoc_client_pool_destroy(p->pool);
    }
    for (size_t i = 0; i < p->ntables; i++) {
        free(p->tables[i].db);
        free(p->tables[i].name);
        for (size_t k = 0; k < p->tables[i].nkey; k++) {
            free(p->tables[i].key[k]);
        }
        free(p->tables[i].key);
        for (size_t k = 0; k < p->tables[i].npkcols; k++) {
            free(p->tables[i].pkcols[k]);
        }
        free(p->tables[i].pkcols);
    }
    free(p->tables);
    pthread_mutex_destroy(&p->tmu);
    pthread_mutex_destroy(&p->mark_mu);
    pthread_cond_destroy(&p->mark_cv);
    ctl_cleanup(p);
    queue_destroy(&p->q);
    pthread_mutex_destroy(&p->mu);
    free(p);
}

void ms_pipeline_get_stats(struct ms_pipeline *p, struct ms_pipeline_stats *out)
{
    pthread_mutex_lock(&p->mu);
    *out = p->stats;
    pthread_mutex_unlock(&p->mu);
    out->queue_depth = queue_depth(&p->q);
    ctl_fill_stats(p, out);
}

/* ---- the reader thread ---------------------------------------------------------------- */

/* A snapshot watermark window (README "Snapshots beside the stream"): a backfill chunk of
 * table db.name is being read and written between its open and close watermarks. The stream's
 * operations on that table's documents inside the window are kept and queued again after the
 * close, so a chunk row read before a change and written after it never stays: the replayed
 * operations (idempotent values, recomputations) end at the newest state. */
struct window {
    char db[200], name[200], run[80];
    const struct ms_strategy *strategy; /* the table's: its documents' producer */
    bool generic;                       /* generic: only this table's rows */
    uint32_t opened_ts;                 /* event time of the open watermark */
    struct item **items;
    size_t n, cap, bytes;
    bool overflow; /* more than WINDOW_MAX_BYTES: not kept (logged) */
};

#define WINDOW_MAX_BYTES   ((size_t)256 << 20)
#define WINDOW_MAX_SECONDS 900 /* a window left open (a backfill killed) closes by itself */

struct rd {
    struct ms_pipeline *p;
    struct ms_binlog_parser *parser;
    struct ms_schema *schema;
    char file[256];
    bool in_begin;           /* between BEGIN and COMMIT/XID */
    struct ms_checkpoint at; /* the last boundary queued: where a reconnect resumes */
    char gtid[512];          /* GTID of the transaction being read */
    uint64_t events, changes;
    struct window *win; /* open watermark windows */
    size_t nwin;
    struct ms_checkpoint hold; /* while a window is open, checkpoints stay here (before its
                                * open watermark): a restart sees the window whole */
};

static bool window_close(struct rd *r, size_t i, const char *why);

static bool push_boundary(struct rd *r, uint64_t end_pos, uint32_t ts)
{
    struct item *it;

    r->in_begin = false;
    if (end_pos == 0) {
        return true; /* an artificial event: no position to resume from */
    }
    snprintf(r->at.file, sizeof(r->at.file), "%s", r->file);
    r->at.pos = end_pos;
    snprintf(r->at.gtid, sizeof(r->at.gtid), "%s", r->gtid);
    r->at.event_time_ms = (int64_t)ts * 1000;
    for (size_t i = r->nwin; i > 0; i--) {
        if (ts > r->win[i - 1].opened_ts + WINDOW_MAX_SECONDS &&
            !window_close(r, i - 1, "open too long (was its backfill stopped?)")) {
            return false;
        }
    }
    it = item_new(IT_BOUNDARY);
    it->cp = r->nwin > 0 ? r->hold : r->at;
    return queue_push(r->p, it);
}

static void key_names(const struct table *t, const struct ms_table_map *tm, const char **names,
                      size_t *n)
{
    *n = 0;
    if (t->nkey > 0) {
        for (size_t i = 0; i < t->nkey && i < 64; i++) {
            names[(*n)++] = t->key[i];
        }
        return;
    }
    for (size_t i = 0; i < tm->npk && i < 64; i++) {
        if (tm->pk[i] < tm->ncols && tm->cols[tm->pk[i]].name != NULL) {
            names[(*n)++] = tm->cols[tm->pk[i]].name;
        }
    }
}

/* An IT_DEAD item for a change the strategy refused. */
static struct item *dead_item(const struct ms_change *chg, const char *position,
                              const struct ms_error *why)
{
    struct item *it = item_new(IT_DEAD);

    it->db = strdup(chg->db);
    it->table = strdup(chg->table);
    snprintf(it->position, sizeof(it->position), "%s", position);
    snprintf(it->op, sizeof(it->op), "%s",
             chg->op == MS_CHANGE_INSERT   ? "insert"
             : chg->op == MS_CHANGE_UPDATE ? "update"
                                           : "delete");
    if (chg->before != NULL) {
        BSON_APPEND_DOCUMENT(&it->row, "before", chg->before);
    }
    if (chg->after != NULL) {
        BSON_APPEND_DOCUMENT(&it->row, "after", chg->after);
    }
    it->why = *why;
    it->bytes += it->row.len;
    return it;
}

/* validate + map through the table's strategy. */
static bool strategy_map(const struct table *t, const struct ms_change *chg, struct ms_ops *out,
                         struct ms_error *err)
{
    if (t->strategy->validate != NULL && !t->strategy->validate(t->sctx, chg, err)) {
        return false;
    }
    return t->strategy->map(t->sctx, chg, out, err);
}

static struct item *item_clone(const struct item *src)
{
    struct item *it = item_new(src->kind);

    for (size_t i = 0; i < src->ops.n; i++) {
        const struct ms_op *o = &src->ops.v[i];
        struct ms_op *c = ms_ops_add(&it->ops, o->kind, o->collection);
        if (c == NULL || !bson_concat(&c->id, &o->id) || !bson_concat(&c->doc, &o->doc)) {
            abort();
        }
    }
    it->bytes = src->bytes;
    it->db = src->db != NULL ? strdup(src->db) : NULL;
    it->table = src->table != NULL ? strdup(src->table) : NULL;
    if (src->npk > 0) {
        it->pk = calloc(src->npk, sizeof(char *));
        for (size_t i = 0; i < src->npk; i++) {
            it->pk[i] = strdup(src->pk[i]);
        }
        it->npk = src->npk;
    }
    it->strategy = src->strategy;
    it->sctx = src->sctx;
    it->tcfg = src->tcfg;
    it->role = src->role;
    it->vo = src->vo;
    it->src = src->src;
    memcpy(it->position, src->position, sizeof(it->position));
    memcpy(it->source, src->source, sizeof(it->source));
    return it;
}

/* The reader's operations on documents of an open window's table are kept for its replay. */
static void window_keep(struct rd *r, const struct item *it)
{
    for (size_t i = 0; i < r->nwin; i++) {
        struct window *w = &r->win[i];
        bool match = w->generic ? strcmp(it->db, w->db) == 0 && strcmp(it->table, w->name) == 0
                                : it->strategy == w->strategy;
        if (!match || w->overflow) {
            continue;
        }
        if (w->bytes + it->bytes > WINDOW_MAX_BYTES) {
            ms_log(MS_LOG_ERROR,
                   "snapshot window of %s.%s: more than %zu MB of changes while one chunk was "
                   "copied; they are not replayed, so documents of rows changed meanwhile may be "
                   "stale: run the backfill again with a smaller --chunk-size",
                   w->db, w->name, WINDOW_MAX_BYTES >> 20);
            for (size_t k = 0; k < w->n; k++) {
                item_free(w->items[k]);
            }
            w->n = 0;
            w->overflow = true;
            continue;
        }
        if (w->n == w->cap) {
            w->cap = w->cap > 0 ? w->cap * 2 : 64;
            w->items = realloc(w->items, w->cap * sizeof(*w->items));
            if (w->items == NULL) {
                abort();
            }
        }
        w->items[w->n++] = item_clone(it);
        w->bytes += it->bytes;
    }
}

/* Validates and maps chg through t's strategy and queues the operations (or a dead letter).
 * r: the binlog reader (open windows keep a copy), NULL for a producer's row; likely_new: a
 * producer's row whose documents are probably not there yet (a snapshot). */
static bool queue_change(struct ms_pipeline *p, struct rd *r, struct table *t,
                         const struct ms_change *chg, bool likely_new)
{
    struct item *it = item_new(IT_OPS);
    struct ms_error merr = {0};
    bool reread = false;

    it->keyed = r == NULL && atomic_load(&p->keys_on);
    it->fresh = chg->op == MS_CHANGE_INSERT && (r != NULL || likely_new);
    it->fresh_resolved = r == NULL && likely_new;

    if (!strategy_map(t, chg, &it->ops, &merr)) {
        /* a row the strategy cannot take: keep it in the dead letters, go on */
        item_free(it);
        if (!t->warned) {
            ms_log(MS_LOG_ERROR, "%s.%s: %s (dead-lettered; further ones are counted)", chg->db,
                   chg->table, merr.msg);
            t->warned = true;
        }
        ctl_error(p, &merr);
        return queue_push(p, dead_item(chg, chg->position, &merr));
    }
    for (size_t i = 0; i < it->ops.n; i++) {
        it->bytes += it->ops.v[i].doc.len + it->ops.v[i].id.len + sizeof(struct ms_op);
        reread |= it->ops.v[i].kind == MS_OP_REREAD;
    }
    it->db = strdup(chg->db);
    it->table = strdup(chg->table);
    snprintf(it->position, sizeof(it->position), "%s", chg->position);
    snprintf(it->source, sizeof(it->source), "%s.%s", chg->db, chg->table);
    it->strategy = t->strategy;
    it->sctx = t->sctx;
    it->tcfg = t->tcfg;
    it->role = t->role;
    it->vo = t->vo;
    it->src = t->source;
    if (reread) {
        it->pk = calloc(chg->npk, sizeof(char *));
        it->npk = chg->npk;
        for (size_t i = 0; i < chg->npk; i++) {
            it->pk[i] = strdup(chg->pk[i]);
        }
    }
    if (r != NULL) {
        if (r->nwin > 0) {
            window_keep(r, it);
        }
        r->changes++;
    }
    return queue_push(p, it);
}

/* The change a row of a rows event makes: operation, table, images, and its position
 * ("file:pos", written into position). */
static void row_change(const struct rd *r, const struct ms_event *ev, uint64_t pos, bson_t *before,
                       bson_t *after, char *position, size_t n, struct ms_change *chg)
{
    const struct ms_table_map *tm = ev->u.rows.map;

    snprintf(position, n, "%s:%llu", r->file, (unsigned long long)pos);
    chg->op = ev->u.rows.op == MS_ROW_INSERT   ? MS_CHANGE_INSERT
              : ev->u.rows.op == MS_ROW_UPDATE ? MS_CHANGE_UPDATE
                                               : MS_CHANGE_DELETE;
    chg->db = tm->db;
    chg->table = tm->table;
    chg->before = chg->op == MS_CHANGE_INSERT ? NULL : before;
    chg->after = chg->op == MS_CHANGE_DELETE ? NULL : after;
    chg->position = position;
}

static bool map_change(struct rd *r, struct table *t, const struct ms_event *ev, uint64_t pos,
                       bson_t *before, bson_t *after, struct ms_error *err)
{
    const struct ms_table_map *tm = ev->u.rows.map;
    const char *pk[64];
    size_t npk;
    const char *const *unres;
    struct ms_change chg = {0};
    char position[300];

    (void)err;
    key_names(t, tm, pk, &npk);
    row_change(r, ev, pos, before, after, position, sizeof(position), &chg);
    chg.after_complete = chg.after != NULL && (size_t)bson_count_keys(after) == tm->ncols;
    chg.needs_reread = ms_binlog_rows_unresolved(r->parser, &unres) > 0;
    chg.pk = pk;
    chg.npk = npk;
    chg.position = position;
    chg.tcfg = t->tcfg;
    chg.role = t->role;
    return queue_change(r->p, r, t, &chg, false);
}

/* A row whose text is invalid in its character set (ms_binlog_rows_bad_text: a latin1 column
 * read with a utf8mb4 label, ...): to the dead letters with the error and the row (such values
 * as binary), and the stream goes on. err: the decode error, cleared here. */
static bool bad_text_row(struct rd *r, struct table *t, const struct ms_event *ev, uint64_t pos,
                         bson_t *before, bson_t *after, struct ms_error *err)
{
    const struct ms_table_map *tm = ev->u.rows.map;
    struct ms_change chg = {0};
    struct ms_error why = *err;
    char position[300];

    ms_error_clear(err);
    row_change(r, ev, pos, before, after, position, sizeof(position), &chg);
    if (!t->warned) {
        ms_log(MS_LOG_ERROR, "%s.%s at %s: %s (dead-lettered; further ones are counted)", tm->db,
               tm->table, position, why.msg);
        t->warned = true;
    }
    ctl_error(r->p, &why);
    r->changes++;
    return queue_push(r->p, dead_item(&chg, position, &why));
}

/* ---- snapshot watermarks (the signal table) ------------------------------------------- */

static void window_free(struct window *w)
{
    for (size_t k = 0; k < w->n; k++) {
        item_free(w->items[k]);
    }
    free(w->items);
}

/* Queues the window's kept operations again (after everything the chunk wrote) and forgets
 * the window. */
static bool window_close(struct rd *r, size_t i, const char *why)
{
    struct window w = r->win[i];
    bool ok = true;
    size_t k;

    r->win[i] = r->win[--r->nwin];
    if (why != NULL) {
        ms_log(MS_LOG_WARN, "snapshot window of %s.%s (run %s) closed: %s", w.db, w.name, w.run,
               why);
    }
    for (k = 0; k < w.n && ok; k++) {
        ok = queue_push(r->p, w.items[k]);
    }
    pthread_mutex_lock(&r->p->mu);
    r->p->windows_replayed += k;
    pthread_mutex_unlock(&r->p->mu);
    for (; k < w.n; k++) {
        item_free(w.items[k]);
    }
    w.n = 0;
    window_free(&w);
    ms_log_kv(MS_LOG_DEBUG,
              ((struct ms_log_field[]){MS_LF_STR("table", w.name), MS_LF_STR("run", w.run)}),
              "snapshot window closed");
    return ok;
}

static const char *doc_str(const bson_t *doc, const char *key, char *buf, size_t bufsz)
{
    bson_iter_t it;
    uint32_t n;
    const char *v;

    buf[0] = '\0';
    if (bson_iter_init_find_case(&it, doc, key) && BSON_ITER_HOLDS_UTF8(&it)) {
        v = bson_iter_utf8(&it, &n);
        snprintf(buf, bufsz, "%.*s", (int)n, v);
    }
    return buf;
}

/* A watermark row: {kind: snapshot-window-open|snapshot-window-close, table_name: "db.t", run}. */
static bool on_watermark(struct rd *r, const bson_t *row, uint32_t ts)
{
    struct ms_pipeline *p = r->p;
    char kind[64], tname[420], run[80], db[200], name[200];
    struct table *t;
    size_t i;

    doc_str(row, "kind", kind, sizeof(kind));
    doc_str(row, "table_name", tname, sizeof(tname));
    doc_str(row, "run", run, sizeof(run));
    split_qualified(tname, p->cfg->mysql_database, db, sizeof(db), name, sizeof(name));
    t = table_find(p, db, name);
    if (t == NULL ||
        (strcmp(kind, "snapshot-window-open") != 0 && strcmp(kind, "snapshot-window-close") != 0)) {
        return true; /* not a table of ours, or another signal */
    }
    for (i = 0; i < r->nwin; i++) {
        if (strcmp(r->win[i].db, db) == 0 && strcmp(r->win[i].name, name) == 0) {
            break;
        }
    }
    if (strcmp(kind, "snapshot-window-close") == 0) {
        if (i == r->nwin) {
            ms_log(MS_LOG_WARN,
                   "snapshot window of %s.%s (run %s) closes without having been seen open (it "
                   "opened before the checkpoint, or was closed for its size or age): documents "
                   "of rows changed during that chunk may be stale until their next change",
                   db, name, run);
            return true;
        }
        return window_close(r, i, NULL);
    }
    if (i < r->nwin && !window_close(r, i, "a new window of the same table opened")) {
        return false;
    }
    if (r->nwin == 0) {
        r->hold = r->at; /* the boundary before this transaction */
    }
    r->win = realloc(r->win, (r->nwin + 1) * sizeof(*r->win));
    if (r->win == NULL) {
        abort();
    }
    memset(&r->win[r->nwin], 0, sizeof(r->win[0]));
    snprintf(r->win[r->nwin].db, sizeof(r->win[0].db), "%s", db);
    snprintf(r->win[r->nwin].name, sizeof(r->win[0].name), "%s", name);
    snprintf(r->win[r->nwin].run, sizeof(r->win[0].run), "%s", run);
    r->win[r->nwin].strategy = t->strategy;
    r->win[r->nwin].generic = t->strategy == &ms_strategy_generic;
    r->win[r->nwin].opened_ts = ts;
    r->nwin++;
    ms_log_kv(MS_LOG_DEBUG,
              ((struct ms_log_field[]){MS_LF_STR("table", name), MS_LF_STR("run", run)}),
              "snapshot window open");
    return true;
}

static bool on_signal_rows(struct rd *r, const struct ms_event *ev, struct ms_error *err)
{
    size_t off = 0;
    bson_t before, after;
    bool ok = true;

    while (ok && ms_binlog_rows_next(r->parser, ev, &off, &r->p->vo, &before, &after, err)) {
        if (ev->u.rows.op == MS_ROW_INSERT) {
            ok = on_watermark(r, &after, ev->h.timestamp);
        }
        bson_destroy(&before);
        bson_destroy(&after);
    }
    if (ok) {
        bson_destroy(&before);
        bson_destroy(&after);
        ok = err->domain == MS_ERR_NONE;
    }
    return ok;
}

static bool on_rows(struct rd *r, const struct ms_event *ev, uint64_t pos, struct ms_error *err)
{
    const struct ms_table_map *tm = ev->u.rows.map;
    struct table *t;
    size_t off = 0;
    bson_t before, after;
    bool ok = true;
    uint64_t nrows = 0;

    if (tm == NULL) {
        ms_error_set(err, MS_ERR_DECODE, MS_DECODE_MALFORMED,
                     "rows event for table id %llu without its TABLE_MAP",
                     (unsigned long long)ev->u.rows.table_id);
        return false;
    }
    if (is_signal_table(r->p, tm->db, tm->table)) {
        return on_signal_rows(r, ev, err);
    }
    t = table_select(r->p, tm->db, tm->table);
    if (t == NULL) {
        return true; /* not replicated: not even decoded */
    }
    for (;;) {
        if (ms_binlog_rows_next(r->parser, ev, &off, t->vo, &before, &after, err)) {
            ok = map_change(r, t, ev, pos, &before, &after, err);
        } else if (ms_binlog_rows_bad_text(err)) {
            ok = bad_text_row(r, t, ev, pos, &before, &after, err);
        } else {
            break; /* the end, or an error */
        }
        bson_destroy(&before);
        bson_destroy(&after);
        nrows++;
        if (!ok) {
            break;
        }
    }
    ctl_rows(r->p, t, (int)ev->u.rows.op, nrows, ev->h.timestamp);
    if (ok) {
        bson_destroy(&before);
        bson_destroy(&after);
        ok = err->domain == MS_ERR_NONE;
        if (!ok) {
            ms_error_prefix(err, "%s.%s", tm->db, tm->table);
        }
    }
    return ok;
}

static bool query_is(const struct ms_event *ev, const char *word)
{
    size_t n = strlen(word);

    return ev->u.query.sql_len >= n && strncasecmp(ev->u.query.sql, word, n) == 0 &&
           (ev->u.query.sql_len == n || ev->u.query.sql[n] == ' ' || ev->u.query.sql[n] == ';');
}

/* The collection of a generic table: its tables: entry's, else the table's name. */
static const char *generic_collection(const struct table *t)
{
    return t->tcfg != NULL && t->tcfg->collection != NULL ? t->tcfg->collection : t->name;
}

/* The collection a generic table writes, when no other replicated table writes it too (NULL:
 * an entity strategy's table, or a shared collection). */
static const char *own_collection(struct ms_pipeline *p, const struct table *t)
{
    const char *coll;

    if (t->strategy != &ms_strategy_generic) {
        return NULL;
    }
    coll = generic_collection(t);
    for (size_t i = 0; i < p->ntables; i++) {
        const struct table *o = &p->tables[i];
        const char *oc;
        if (o == t) {
            continue;
        }
        oc = o->strategy != &ms_strategy_generic ? o->role : generic_collection(o);
        if (oc != NULL && strcmp(oc, coll) == 0) {
            return NULL;
        }
    }
    return coll;
}

static void ddl_snapshot(struct ms_pipeline *p, const struct table *t, const char *why)
{
    char name[420];

    if (p->ddl_snapshot == NULL) {
        return;
    }
    if (t->strategy->source_tables != NULL && t->role != NULL &&
        strcmp(t->role, t->strategy->source_tables[0]) != 0) {
        /* a table whose rows are part of another's documents (order_items): its entity's
         * first table is copied (as verify compares it) */
        const struct table *first = NULL;
        for (size_t i = 0; i < p->ntables && first == NULL; i++) {
            if (p->tables[i].strategy == t->strategy && p->tables[i].role != NULL &&
                strcmp(p->tables[i].role, t->strategy->source_tables[0]) == 0) {
                first = &p->tables[i];
            }
        }
        if (first == NULL) {
            return;
        }
        t = first;
    }
    snprintf(name, sizeof(name), "%s.%s", t->db, t->name);
    ms_log_kv(MS_LOG_INFO, ((struct ms_log_field[]){MS_LF_STR("table", name)}),
              "%s: its rows may have changed without row events; snapshotting it beside the "
              "stream",
              why);
    p->ddl_snapshot(p->ddl_ctx, name);
}

/* DDL that changes rows without row events: ALTER TABLE (defaults of new columns, dropped or
 * retyped ones) and RENAME TABLE (a new name with rows) snapshot the table, TRUNCATE deletes
 * the documents of a table with a collection of its own. */
static bool on_ddl(struct rd *r, const struct ms_event *ev)
{
    struct ms_pipeline *p = r->p;
    struct ms_ddl *ddl = malloc(sizeof(*ddl));
    bool ok = true;

    if (ddl == NULL) {
        abort();
    }
    ms_schema_parse_ddl(ev->u.query.db, ev->u.query.db_len, ev->u.query.sql, ev->u.query.sql_len,
                        ddl);
    for (size_t i = 0; i < ddl->n && ok; i++) {
        struct table *t;
        switch (ddl->kind) {
        case MS_DDL_ALTER:
            t = table_select(p, ddl->table[i].db, ddl->table[i].name);
            if (t != NULL && ddl->rows_kept) {
                ms_log(MS_LOG_INFO,
                       "ALTER TABLE %s.%s changes indexes, defaults or options only: no "
                       "snapshot",
                       t->db, t->name);
            } else if (t != NULL) {
                ddl_snapshot(p, t, "ALTER TABLE");
            }
            break;
        case MS_DDL_RENAME:
            if (table_find(p, ddl->table[i].db, ddl->table[i].name) != NULL) {
                ms_log(MS_LOG_WARN,
                       "%s.%s renamed to %s.%s: its documents stay where they are (DDL is not "
                       "replicated)",
                       ddl->table[i].db, ddl->table[i].name, ddl->to[i].db, ddl->to[i].name);
            }
            t = table_select(p, ddl->to[i].db, ddl->to[i].name);
            if (t != NULL) {
                ddl_snapshot(p, t, "RENAME TABLE");
            }
            break;
        case MS_DDL_TRUNCATE:
            t = table_select(p, ddl->table[i].db, ddl->table[i].name);
            if (t != NULL) {
                const char *coll = own_collection(p, t);
                if (coll == NULL) {
                    ms_log(MS_LOG_WARN,
                           "TRUNCATE of %s.%s: its documents are part of a collection other "
                           "tables write too, so they stay (run mysync --full for the tables "
                           "of that collection)",
                           t->db, t->name);
                } else {
                    struct item *it = item_new(IT_TRUNCATE);
                    it->db = strdup(t->db);
                    it->table = strdup(coll);
                    snprintf(it->source, sizeof(it->source), "%s.%s", t->db, t->name);
                    ok = queue_push(p, it);
                }
            }
            break;
        default:
            break;
        }
    }
    free(ddl);
    return ok;
}

static bool on_event(struct rd *r, const struct ms_event *ev, uint64_t pos, uint64_t end_pos,
                     struct ms_error *err)
{
    r->events++;
    switch (ev->h.type) {
    case MS_EV_GTID:
    case MS_EV_GTID_TAGGED:
    case MS_EV_ANONYMOUS_GTID:
        /* MySQL: a BEGIN query follows for DML; DDL comes alone */
        snprintf(r->gtid, sizeof(r->gtid), "%s", ms_binlog_parser_gtid(r->parser));
        r->in_begin = false;
        return true;
    case MS_EV_MARIA_GTID:
        /* MariaDB: the GTID event is the BEGIN, unless flagged standalone (DDL) */
        snprintf(r->gtid, sizeof(r->gtid), "%s", ms_binlog_parser_gtid(r->parser));
        r->in_begin = !(ev->body_len >= 13 && (ev->body[12] & 1) != 0);
        return true;
    case MS_EV_XID:
        return push_boundary(r, end_pos, ev->h.timestamp);
    case MS_EV_QUERY:
    case MS_EV_MARIA_QUERY_COMPRESSED:
        if (query_is(ev, "BEGIN")) {
            r->in_begin = true;
            return true;
        }
        if (query_is(ev, "COMMIT") || query_is(ev, "ROLLBACK")) {
            return push_boundary(r, end_pos, ev->h.timestamp);
        }
        if (ms_schema_note_query(r->schema, ev->u.query.db, ev->u.query.db_len, ev->u.query.sql,
                                 ev->u.query.sql_len)) {
            struct item *it = item_new(IT_DDL);
            it->db = strndup(ev->u.query.db, ev->u.query.db_len);
            if (!queue_push(r->p, it) || !on_ddl(r, ev)) {
                return false;
            }
        }
        /* a statement outside BEGIN..COMMIT (DDL) is a transaction of its own */
        return r->in_begin ? true : push_boundary(r, end_pos, ev->h.timestamp);
    case MS_EV_TABLE_MAP: {
        struct ms_table_map *tm =
            ms_binlog_parser_table_mut(r->parser, ev->u.table_map.map->table_id);
        if (tm != NULL && (table_select(r->p, tm->db, tm->table) != NULL ||
                           is_signal_table(r->p, tm->db, tm->table))) {
            struct ms_error serr = {0};
            bool applied;
            if (!ms_schema_enrich(r->schema, tm, &applied, &serr)) {
                ms_log(MS_LOG_WARN, "%s.%s: no definition from information_schema (%s)", tm->db,
                       tm->table, serr.msg);
            }
        }
        return true;
    }
    case MS_EV_TRANSACTION_PAYLOAD: {
        size_t off = 0;
        struct ms_event inner;
        while (ms_binlog_payload_next(r->parser, ev, &off, &inner, err)) {
            if (!on_event(r, &inner, pos, end_pos, err)) {
                return false;
            }
        }
        return err->domain == MS_ERR_NONE;
    }
    default:
        return ms_binlog_is_rows_event(ev->h.type) ? on_rows(r, ev, pos, err) : true;
    }
}

/* Sleeps about ms (+-20 %), waking early when the pipeline stops. */
static void backoff_sleep(struct ms_pipeline *p, int64_t ms)
{
    int64_t jittered = ms * (80 + rand() % 41) / 100;

    for (int64_t slept = 0; slept < jittered && !is_stopping(p); slept += 50) {
        struct timespec ts = {0, 50 * 1000000L};
        nanosleep(&ts, NULL);
    }
}

static void *reader_main(void *arg)
{
    struct ms_pipeline *p = arg;
    struct rd r = {.p = p};
    struct ms_error err = {0};
    int64_t delay_ms = RECONNECT_FIRST_MS;
    bool connected_once = false;

    r.schema = ms_schema_new(p->cfg);
    r.at = p->start;
    while (!atomic_load(&p->stream_go) && !is_stopping(p)) {
        struct timespec ts = {0, 20 * 1000000L}; /* a snapshot first */
        nanosleep(&ts, NULL);
    }
    while (!is_stopping(p)) {
        struct ms_reader_opts ro = {.server_id = p->server_id, .file = r.at.file, .pos = r.at.pos};
        struct ms_reader *rdr;
        const uint8_t *buf;
        size_t len;
        struct ms_event ev;

        if (ro.pos < 4) {
            ro.pos = 4;
        }
        ms_error_clear(&err);
        rdr = ms_reader_open(p->cfg, &ro, &err);
        if (rdr == NULL) {
            ctl_reader_error(p, &err);
            if (!err.retryable) {
                break;
            }
            ms_log_kv(MS_LOG_WARN, ((struct ms_log_field[]){MS_LF_INT("retry_in_ms", delay_ms)}),
                      "binlog: %s", err.msg);
            backoff_sleep(p, delay_ms);
            delay_ms = delay_ms * 2 > RECONNECT_MAX_MS ? RECONNECT_MAX_MS : delay_ms * 2;
            continue;
        }
        if (connected_once) {
            pthread_mutex_lock(&p->mu);
            p->stats.reconnects++;
            pthread_mutex_unlock(&p->mu);
        }
        connected_once = true;
        ctl_mysql_up(p);
        ms_log_kv(MS_LOG_INFO,
                  ((struct ms_log_field[]){MS_LF_STR("file", ms_reader_start_file(rdr)),
                                           MS_LF_INT("pos", (int64_t)ms_reader_start_pos(rdr)),
                                           MS_LF_INT("server_id", p->server_id)}),
                  "reading the binlog");
        snprintf(r.file, sizeof(r.file), "%s", ms_reader_start_file(rdr));
        /* a restarted server may reuse table ids: a clean parser per connection */
        ms_binlog_parser_destroy(r.parser);
        r.parser = ms_binlog_parser_new();
        ms_binlog_parser_expect_checksum(r.parser, ms_reader_checksum(rdr));
        r.in_begin = false;
        while (!is_stopping(p)) {
            uint64_t pos;
            uint64_t events0 = r.events, changes0 = r.changes;
            if (!ms_reader_next(rdr, &buf, &len, &err)) {
                break;
            }
            delay_ms = RECONNECT_FIRST_MS; /* the stream is alive */
            if (!ms_binlog_parse(r.parser, buf, len, &ev, &err)) {
                break;
            }
            if (ev.h.type == MS_EV_ROTATE) {
                snprintf(r.file, sizeof(r.file), "%.*s", (int)ev.u.rotate.file_len,
                         ev.u.rotate.file);
                continue;
            }
            if (ev.h.type == MS_EV_HEARTBEAT || ev.h.type == MS_EV_HEARTBEAT_V2 ||
                ev.h.type == MS_EV_FORMAT_DESCRIPTION) {
                /* a heartbeat: the server has nothing newer, the reader is at its end */
                atomic_store(&p->caught_up, ev.h.type != MS_EV_FORMAT_DESCRIPTION);
                continue;
            }
            atomic_store(&p->caught_up, false);
            pos = ev.h.log_pos >= ev.h.event_size ? ev.h.log_pos - ev.h.event_size : 0;
            if (!on_event(&r, &ev, pos, ev.h.log_pos, &err)) {
                if (err.domain != MS_ERR_NONE) {
                    ms_error_prefix(&err, "%s:%llu", r.file, (unsigned long long)pos);
                }
                break;
            }
            pthread_mutex_lock(&p->mu);
            p->stats.events += r.events - events0;
            p->stats.changes += r.changes - changes0;
            pthread_mutex_unlock(&p->mu);
        }
        ms_reader_close(rdr);
        if (is_stopping(p)) {
            break;
        }
        ctl_reader_error(p, &err);
        if (err.domain == MS_ERR_NONE || !err.retryable) {
            if (err.domain == MS_ERR_NONE) {
                ms_error_set(&err, MS_ERR_MYSQL, 1, "the binlog dump ended unexpectedly");
            }
            break;
        }
        ms_log_kv(MS_LOG_WARN,
                  ((struct ms_log_field[]){MS_LF_STR("file", r.at.file),
                                           MS_LF_INT("pos", (int64_t)r.at.pos),
                                           MS_LF_INT("retry_in_ms", delay_ms)}),
                  "binlog: %s; resuming after the last whole transaction", err.msg);
        backoff_sleep(p, delay_ms);
        delay_ms = delay_ms * 2 > RECONNECT_MAX_MS ? RECONNECT_MAX_MS : delay_ms * 2;
    }
    if (!is_stopping(p) && err.domain != MS_ERR_NONE) {
        set_fatal(p, &err);
    }
    ms_binlog_parser_destroy(r.parser);
    ms_schema_destroy(r.schema);
    for (size_t i = 0; i < r.nwin; i++) {
        window_free(&r.win[i]); /* never replayed: the checkpoint is held before them */
    }
    free(r.win);
    atomic_store(&p->reader_done, true);
    pthread_mutex_lock(&p->q.mu);
    pthread_cond_broadcast(&p->q.not_empty);
    pthread_mutex_unlock(&p->q.mu);
    return NULL;
}

/* ---- the sink thread ------------------------------------------------------------------ */

struct batch {
    struct item **items; /* the IT_OPS items whose operations are in the batch */
    size_t nitems, capitems;
    size_t nops;
    int64_t first_ms; /* when the oldest operation arrived (monotonic) */
    struct ms_write *w;
    size_t nw, capw;
    struct ms_sink_collection_result *cres; /* room for per-collection counts */
    size_t capcres;
};

static void batch_add(struct batch *b, struct item *it)
{
    if (b->nitems == b->capitems) {
        b->capitems = b->capitems != 0 ? b->capitems * 2 : 256;
        b->items = realloc(b->items, b->capitems * sizeof(*b->items));
        if (b->items == NULL) {
            abort();
        }
    }
    if (b->nitems == 0) {
        b->first_ms = ms_clock_mono_ms();
    }
    b->items[b->nitems++] = it;
    b->nops += it->ops.n;
}

static void batch_clear(struct batch *b)
{
    for (size_t i = 0; i < b->nitems; i++) {
        item_free(b->items[i]);
    }
    b->nitems = 0;
    b->nops = 0;
    b->nw = 0;
}

static struct ms_write *batch_write(struct batch *b)
{
    if (b->nw == b->capw) {
        b->capw = b->capw != 0 ? b->capw * 2 : 256;
        b->w = realloc(b->w, b->capw * sizeof(*b->w));
        if (b->w == NULL) {
            abort();
        }
    }
    memset(&b->w[b->nw], 0, sizeof(*b->w));
    return &b->w[b->nw++];
}

/* Lookups for resolve(): rows of any source table, through the source with that table's value
 * options. */
static bool lookup_rows(void *u, const char *db, const char *table, const char *column,
                        const bson_value_t *value, bson_t *out, size_t *n, struct ms_error *err)
{
    struct ms_pipeline *p = u;

    return ms_source_read_rows(source_for(p, db, table, NULL), db, table, column, value,
                               LOOKUP_MAX_ROWS, out, n, err);
}

/* The key columns of a re-read row as a delete's before image: {_id: v} -> {pk0: v},
 * {_id: {c: v, ...}} -> {c: v, ...}. */
static void key_image(const struct item *it, const bson_t *id, bson_t *before)
{
    bson_iter_t i, sub;

    if (!bson_iter_init_find(&i, id, "_id")) {
        return;
    }
    if (it->npk == 1) {
        bson_append_iter(before, it->pk[0], -1, &i);
    } else if (BSON_ITER_HOLDS_DOCUMENT(&i) && bson_iter_recurse(&i, &sub)) {
        while (bson_iter_next(&sub)) {
            bson_append_iter(before, bson_iter_key(&sub), -1, &sub);
        }
    }
}

/* Moves ops that may be written from src to dst (RESOLVE/REREAD from a resolve are dropped:
 * one level only). */
static void take_ops(struct ms_ops *dst, struct ms_ops *src)
{
    for (size_t i = 0; i < src->n; i++) {
        struct ms_op *o = &src->v[i], *d;
        if (o->kind == MS_OP_RESOLVE || o->kind == MS_OP_REREAD) {
            continue;
        }
        d = ms_ops_add(dst, o->kind, o->collection);
        if (d == NULL) {
            abort();
        }
        bson_destroy(&d->id);
        bson_destroy(&d->doc);
        bson_steal(&d->id, &o->id);
        bson_steal(&d->doc, &o->doc);
        bson_init(&o->id);
        bson_init(&o->doc);
    }
    ms_ops_clear(src);
}

/* One RESOLVE op through its strategy; out gets what to write. */
static bool expand_resolve(struct ms_pipeline *p, const struct item *it, const struct ms_op *op,
                           struct ms_ops *out, struct ms_error *err)
{
    struct ms_lookup lk = {.rows = lookup_rows, .u = p};
    struct ms_ops tmp;
    bool ok;

    if (it->strategy == NULL || it->strategy->resolve == NULL) {
        ms_error_set(err, MS_ERR_STRATEGY, 1, "%s: the %s strategy cannot resolve", it->source,
                     it->strategy != NULL ? it->strategy->name : "?");
        return false;
    }
    ms_ops_init(&tmp);
    ok = it->strategy->resolve(it->sctx, op, &lk, &tmp, err);
    if (ok) {
        take_ops(out, &tmp);
    }
    ms_ops_cleanup(&tmp);
    return ok;
}

/* A REREAD: the row as the source has it now (at or after the change), mapped again by the
 * strategy as a complete insert (a row gone since: as a delete of its key). */
static bool expand_reread(struct ms_pipeline *p, const struct item *it, const struct ms_op *op,
                          struct ms_ops *out, struct ms_error *err)
{
    bson_t row, key = BSON_INITIALIZER;
    bool found, ok;
    struct ms_change chg = {0};
    struct ms_ops tmp;
    struct table t = {0};

    bson_init(&row);
    if (!ms_source_read_row(it->src != NULL ? it->src : p->source, it->db, it->table,
                            (const char *const *)it->pk, it->npk, &op->id, &row, &found, err)) {
        bson_destroy(&row);
        bson_destroy(&key);
        return false;
    }
    chg.db = it->db;
    chg.table = it->table;
    chg.pk = (const char *const *)it->pk;
    chg.npk = it->npk;
    chg.position = it->position;
    chg.tcfg = it->tcfg;
    chg.role = it->role;
    if (found) {
        chg.op = MS_CHANGE_INSERT;
        chg.after = &row;
        chg.after_complete = true;
    } else {
        key_image(it, &op->id, &key);
        chg.op = MS_CHANGE_DELETE;
        chg.before = &key;
    }
    t.strategy = it->strategy;
    t.sctx = it->sctx;
    ms_ops_init(&tmp);
    ok = strategy_map(&t, &chg, &tmp, err);
    for (size_t i = 0; ok && i < tmp.n; i++) {
        if (tmp.v[i].kind == MS_OP_RESOLVE) {
            ok = expand_resolve(p, it, &tmp.v[i], out, err);
        }
    }
    if (ok) {
        take_ops(out, &tmp);
    }
    ms_ops_cleanup(&tmp);
    bson_destroy(&row);
    bson_destroy(&key);
    return ok;
}

/* Resolves one RESOLVE/REREAD op, retrying what may pass (a lost connection) for as long as
 * it takes; false with a non-retryable error when the op cannot be done. */
static bool expand_op(struct ms_pipeline *p, struct item *it, const struct ms_op *op,
                      struct ms_error *err)
{
    int64_t delay = RECONNECT_FIRST_MS;
    size_t mark = it->res.n;

    for (;;) {
        bool ok = op->kind == MS_OP_REREAD ? expand_reread(p, it, op, &it->res, err)
                                           : expand_resolve(p, it, op, &it->res, err);
        if (ok) {
            return true;
        }
        while (it->res.n > mark) { /* a partial expansion is dropped */
            it->res.n--;
            bson_destroy(&it->res.v[it->res.n].id);
            bson_destroy(&it->res.v[it->res.n].doc);
        }
        if (!err->retryable || is_stopping(p)) {
            ms_error_prefix(err, "%s %s",
                            op->kind == MS_OP_REREAD ? "re-reading a row of"
                                                     : "resolving a change of",
                            it->source);
            return false;
        }
        ms_log(MS_LOG_WARN, "%s: %s; retrying", it->source, err->msg);
        backoff_sleep(p, delay);
        delay = delay * 2 > RECONNECT_MAX_MS ? RECONNECT_MAX_MS : delay * 2;
    }
}

/* A REREAD that cannot be done (not a transient failure): the change goes to the dead
 * letters with its key, and the stream goes on. */
static bool dead_letter_op(struct ms_pipeline *p, const struct item *it, const struct ms_op *op,
                           struct ms_error *err)
{
    struct ms_error why = *err;

    ms_log(MS_LOG_ERROR, "%s (dead-lettered)", why.msg);
    ms_error_clear(err);
    if (!ms_sink_dead_letter(p->sink, op->collection, it->source, it->position, "update", &op->id,
                             &why, err)) {
        return false;
    }
    ctl_error(p, &why);
    ctl_dead(p, it->db, it->table);
    pthread_mutex_lock(&p->mu);
    p->stats.dead_lettered++;
    pthread_mutex_unlock(&p->mu);
    return true;
}

/* The fingerprint of {"_id": value} in collection, numbers in one form (ms_bson_canonical_id). */
static uint64_t key_hash(const char *collection, const bson_t *id)
{
    bson_t *cid = ms_bson_canonical_id(id);
    uint64_t h = ms_bson_id_hash(collection, cid);

    bson_destroy(cid);
    return h;
}

/* Adds collection to the ones to sweep, once. */
static void kcoll_add(struct ms_pipeline *p, const char *collection)
{
    for (size_t i = 0; i < p->nkcolls; i++) {
        if (strcmp(p->kcolls[i], collection) == 0) {
            return;
        }
    }
    p->kcolls = realloc(p->kcolls, (p->nkcolls + 1) * sizeof(*p->kcolls));
    if (p->kcolls == NULL || (p->kcolls[p->nkcolls] = strdup(collection)) == NULL) {
        abort();
    }
    p->nkcolls++;
}

/* A document written for a producer's row under ms_pipeline_keys_begin (sink thread). */
static void note_key(struct ms_pipeline *p, const struct ms_op *op)
{
    if (op->kind != MS_OP_REPLACE && op->kind != MS_OP_SET) {
        return; /* deletes and updateMany create no document */
    }
    kcoll_add(p, op->collection);
    if (p->nkeys == p->capkeys) {
        p->capkeys = p->capkeys != 0 ? p->capkeys * 2 : 4096;
        p->keys = realloc(p->keys, p->capkeys * sizeof(*p->keys));
        if (p->keys == NULL) {
            abort();
        }
    }
    p->keys[p->nkeys++] = key_hash(op->collection, &op->id);
    p->keys_sorted = false;
}

static void add_write(struct batch *b, const struct item *it, const struct ms_op *op, bool fresh)
{
    struct ms_write *w = batch_write(b);

    w->insert_first = fresh && op->kind == MS_OP_REPLACE;
    w->collection = op->collection;
    w->id = &op->id;
    w->source = it->source;
    w->position = it->position;
    w->doc = &op->doc;
    switch (op->kind) {
    case MS_OP_REPLACE:
        w->kind = MS_WRITE_UPSERT;
        break;
    case MS_OP_SET:
        w->kind = MS_WRITE_SET;
        break;
    case MS_OP_SET_MANY:
        w->kind = MS_WRITE_SET_MANY;
        break;
    case MS_OP_DELETE:
        w->kind = MS_WRITE_DELETE;
        w->doc = NULL;
        break;
    case MS_OP_REREAD:
    case MS_OP_RESOLVE:
        b->nw--; /* expanded before: not written as such */
        break;
    }
}

static bool flush(struct ms_pipeline *p, struct batch *b, struct ms_error *err)
{
    struct ms_sink_result res = {0};
    int64_t started_ms;
    size_t ncres = 0;

    if (b->nitems == 0) {
        return true;
    }
    /* first what needs the source (re-reads, resolves): the writes point into it->res */
    for (size_t i = 0; i < b->nitems; i++) {
        struct item *it = b->items[i];
        bool any = false;
        for (size_t k = 0; k < it->ops.n; k++) {
            any |= it->ops.v[k].kind == MS_OP_REREAD || it->ops.v[k].kind == MS_OP_RESOLVE;
        }
        if (!any || it->res_end != NULL) {
            continue; /* nothing to expand, or expanded by an earlier try of this batch */
        }
        it->res_end = calloc(it->ops.n, sizeof(size_t));
        if (it->res_end == NULL) {
            abort();
        }
        for (size_t k = 0; k < it->ops.n; k++) {
            const struct ms_op *op = &it->ops.v[k];
            if ((op->kind == MS_OP_REREAD || op->kind == MS_OP_RESOLVE) &&
                !expand_op(p, it, op, err)) {
                if (err->retryable) {
                    free(it->res_end);
                    it->res_end = NULL;
                    ms_ops_clear(&it->res);
                    return false; /* stopping */
                }
                /* e.g. the table is gone since: the change cannot be completed */
                if (!dead_letter_op(p, it, op, err)) {
                    return false;
                }
            }
            it->res_end[k] = it->res.n;
        }
    }
    b->nw = 0;
    for (size_t i = 0; i < b->nitems; i++) {
        const struct item *it = b->items[i];
        size_t start = 0;
        for (size_t k = 0; k < it->ops.n; k++) {
            const struct ms_op *op = &it->ops.v[k];
            if (op->kind == MS_OP_REREAD || op->kind == MS_OP_RESOLVE) {
                for (size_t j = start; j < it->res_end[k]; j++) {
                    add_write(b, it, &it->res.v[j], it->fresh_resolved);
                    if (it->keyed) {
                        note_key(p, &it->res.v[j]);
                    }
                }
                start = it->res_end[k];
            } else {
                add_write(b, it, op, it->fresh);
                if (it->keyed) {
                    note_key(p, op);
                }
            }
        }
    }
    if (b->capcres < b->nw) { /* room for per-collection counts: at most one per write */
        free(b->cres);
        b->cres = calloc(b->capw, sizeof(*b->cres));
        if (b->cres == NULL) {
            abort();
        }
        b->capcres = b->capw;
    }
    started_ms = ms_clock_mono_ms();
    if (!ms_sink_apply_per_collection(p->sink, b->w, b->nw, &res, b->cres, b->capcres, &ncres,
                                      err)) {
        ctl_flush(p, &res, NULL, 0, b->nw, started_ms, false);
        return false;
    }
    ctl_flush(p, &res, b->cres, ncres, b->nw, started_ms, true);
    pthread_mutex_lock(&p->mu);
    p->stats.ops_applied += res.upserted + res.matched + res.deleted;
    p->stats.batches++;
    p->stats.dead_lettered += res.dead_lettered;
    p->stats.retries += res.retries;
    pthread_mutex_unlock(&p->mu);
    ms_log_kv(MS_LOG_DEBUG,
              ((struct ms_log_field[]){MS_LF_INT("writes", (int64_t)b->nw),
                                       MS_LF_INT("upserted", (int64_t)res.upserted),
                                       MS_LF_INT("matched", (int64_t)res.matched),
                                       MS_LF_INT("deleted", (int64_t)res.deleted),
                                       MS_LF_INT("dead_lettered", (int64_t)res.dead_lettered)}),
              "batch written");
    batch_clear(b);
    return true;
}

static bool save_checkpoint(struct ms_pipeline *p, const struct ms_checkpoint *cp,
                            struct ms_error *err)
{
    if (!ms_sink_checkpoint_save(p->sink, p->cfg->sync_pipeline, cp, err)) {
        return false;
    }
    pthread_mutex_lock(&p->mu);
    snprintf(p->stats.file, sizeof(p->stats.file), "%s", cp->file);
    p->stats.pos = cp->pos;
    snprintf(p->stats.gtid, sizeof(p->stats.gtid), "%s", cp->gtid);
    p->stats.checkpoint_event_ms = cp->event_time_ms;
    p->stats.checkpoint_wall_ms = ms_clock_wall_ms();
    pthread_mutex_unlock(&p->mu);
    ctl_checkpoint_saved(p);
    ms_log_kv(
        MS_LOG_DEBUG,
        ((struct ms_log_field[]){MS_LF_STR("file", cp->file), MS_LF_INT("pos", (int64_t)cp->pos)}),
        "checkpoint saved");
    return true;
}

static bool dead_letter(struct ms_pipeline *p, const struct item *it, struct ms_error *err)
{
    char source[400];

    snprintf(source, sizeof(source), "%s.%s", it->db, it->table);
    if (!ms_sink_dead_letter(p->sink, it->table, source, it->position, it->op, &it->row, &it->why,
                             err)) {
        return false;
    }
    ctl_dead(p, it->db, it->table);
    pthread_mutex_lock(&p->mu);
    p->stats.dead_lettered++;
    pthread_mutex_unlock(&p->mu);
    return true;
}

#define TRIM_AFTER_ITEMS 4096 /* malloc_trim when idle after at least this many items */

static void *sink_main(void *arg)
{
    struct ms_pipeline *p = arg;
    struct batch b = {0};
    struct ms_checkpoint pending = {0}; /* newest boundary read, not yet saved */
    bool have_pending = false;
    int64_t last_save = ms_clock_mono_ms();
    struct ms_error err = {0};
    bool ok = true;
    struct item *held = NULL; /* taken from the queue just as a pause began */
    size_t since_trim = 0;    /* items taken since the heap was last trimmed */

    for (;;) {
        int64_t deadline = -1;
        struct item *it;
        bool done, trig;

        if (atomic_load(&p->cancelled)) {
            /* what is still queued or batched is after the checkpoint: a restart replays it */
            ms_error_set(&err, MS_ERR_SYSTEM, ECANCELED,
                         "stopped before MongoDB took everything read (the checkpoint stays at "
                         "the last acknowledged transaction; a restart replays the rest)");
            ok = false;
            break;
        }

        ctl_sink_state(p, b.nops, b.nitems == 0 && !have_pending);
        if (atomic_load(&p->paused)) {
            struct timespec ts = {0, 50 * 1000000L};
            if (is_stopping(p)) {
                ms_log(MS_LOG_INFO, "stopped while paused: what was read and not written is "
                                    "replayed from the checkpoint at the next start");
                break;
            }
            nanosleep(&ts, NULL);
            continue;
        }
        if (b.nitems > 0) {
            deadline = b.first_ms + p->cfg->sync_flush_ms;
        } else if (have_pending) {
            deadline = last_save + IDLE_CHECKPOINT_MS;
        }
        if (deadline > ms_clock_mono_ms() + 200) {
            deadline = ms_clock_mono_ms() + 200; /* a trigger or a pause is seen within 200 ms */
        }
        it = held != NULL ? held : queue_pop(&p->q, deadline);
        held = NULL;
        if (it != NULL && atomic_load(&p->paused) && !is_stopping(p)) {
            held = it; /* kept for the resume: nothing is applied once paused */
            continue;
        }
        if (it == NULL && b.nitems == 0 && since_trim >= TRIM_AFTER_ITEMS) {
            /* idle after a burst: give the queue's pages back (glibc keeps freed memory
             * otherwise, and RSS would stay at the backlog's high-water mark) */
            malloc_trim(0);
            since_trim = 0;
        }
        if (it != NULL) {
            since_trim++;
            switch (it->kind) {
            case IT_OPS:
                batch_add(&b, it);
                it = NULL;
                break;
            case IT_BOUNDARY:
                pending = it->cp;
                have_pending = true;
                break;
            case IT_DEAD:
                ok = dead_letter(p, it, &err);
                break;
            case IT_MARK:
                /* everything before it written: the producer waiting on it goes on */
                ok = flush(p, &b, &err);
                if (ok) {
                    pthread_mutex_lock(&p->mark_mu);
                    p->mark_done = it->mark;
                    pthread_cond_broadcast(&p->mark_cv);
                    pthread_mutex_unlock(&p->mark_mu);
                }
                break;
            case IT_TRUNCATE: {
                uint64_t n = 0;
                ok = flush(p, &b, &err) && ms_sink_delete_all(p->sink, it->table, &n, &err);
                if (ok) {
                    ms_log_kv(MS_LOG_INFO,
                              ((struct ms_log_field[]){MS_LF_STR("table", it->source),
                                                       MS_LF_STR("collection", it->table),
                                                       MS_LF_INT("deleted", (int64_t)n)}),
                              "TRUNCATE: every document of the collection deleted");
                }
                break;
            }
            case IT_DDL:
                ms_source_invalidate(p->source, it->db, NULL);
                for (size_t i = 0; i < p->nown; i++) {
                    ms_source_invalidate(p->own[i]->s, it->db, NULL);
                }
                break;
            }
            item_free(it);
            if (!ok) {
                break;
            }
        }
        if (atomic_load(&p->paused) && !is_stopping(p)) {
            continue;
        }
        trig = atomic_exchange(&p->trigger, false);
        done = atomic_load(&p->reader_done) && queue_depth(&p->q) == 0;
        if (b.nops >= (size_t)p->cfg->sync_batch_size ||
            (b.nitems > 0 &&
             (trig || done || ms_clock_mono_ms() >= b.first_ms + p->cfg->sync_flush_ms))) {
            if (!flush(p, &b, &err)) {
                ok = false;
                break;
            }
            if (have_pending) {
                /* every operation before the boundary is acknowledged */
                if (!save_checkpoint(p, &pending, &err)) {
                    ok = false;
                    break;
                }
                have_pending = false;
                last_save = ms_clock_mono_ms();
            }
        } else if (have_pending && b.nitems == 0 &&
                   (trig || done || ms_clock_mono_ms() >= last_save + IDLE_CHECKPOINT_MS)) {
            /* transactions of other tables moved the position */
            if (!save_checkpoint(p, &pending, &err)) {
                ok = false;
                break;
            }
            have_pending = false;
            last_save = ms_clock_mono_ms();
        }
        if (done && b.nitems == 0 && !have_pending) {
            break;
        }
    }
    if (!ok) {
        ctl_error(p, &err);
        set_fatal(p, &err);
    }
    item_free(held);
    batch_clear(&b);
    free(b.cres);
    free(b.items);
    free(b.w);
    atomic_store(&p->sink_done, true);
    return NULL;
}

bool ms_pipeline_run(struct ms_pipeline *p, volatile sig_atomic_t *stop, struct ms_error *err)
{
    pthread_t reader, sinker;
    int64_t stop_at = -1;
    bool cancelled = false, done = false;

    if (pthread_create(&sinker, NULL, sink_main, p) != 0) {
        ms_error_set(err, MS_ERR_SYSTEM, errno, "cannot start the sink thread");
        return false;
    }
    if (!p->opts.backfill_only && pthread_create(&reader, NULL, reader_main, p) != 0) {
        ms_error_set(err, MS_ERR_SYSTEM, errno, "cannot start the reader thread");
        set_fatal(p, err);
        pthread_join(sinker, NULL);
        return false;
    }
    ctl_start(p);
    ms_log_kv(MS_LOG_INFO,
              ((struct ms_log_field[]){MS_LF_INT("tables", (int64_t)p->ntables),
                                       MS_LF_INT("batch_size", p->cfg->sync_batch_size),
                                       MS_LF_INT("flush_ms", p->cfg->sync_flush_ms)}),
              "replicating into %s", p->cfg->mongodb_database);
    while (!done) {
        struct timespec ts = {0, 50 * 1000000L};
        nanosleep(&ts, NULL);
        if (stop != NULL && *stop && stop_at < 0) {
            ms_log(MS_LOG_INFO, "stopping: writing what was read, then saving the checkpoint");
            stop_at = ms_clock_mono_ms();
            atomic_store(&p->stopping, true);
            if (p->opts.backfill_only) {
                atomic_store(&p->reader_done, true); /* no reader: the producers are done */
            }
            pthread_mutex_lock(&p->q.mu);
            pthread_cond_broadcast(&p->q.not_full);
            pthread_mutex_unlock(&p->q.mu);
        }
        if (stop_at >= 0 && !cancelled && ms_clock_mono_ms() - stop_at > SHUTDOWN_GRACE_MS) {
            ms_log(MS_LOG_WARN,
                   "MongoDB did not take the last batch within %d s: giving up on "
                   "it (the checkpoint stays before it; a restart replays it)",
                   SHUTDOWN_GRACE_MS / 1000);
            atomic_store(&p->cancelled, true);
            ms_sink_cancel(p->sink);
            cancelled = true;
        }
        done = atomic_load(&p->sink_done);
        if (atomic_load(&p->fatal) && stop_at < 0) {
            stop_at =
                ms_clock_mono_ms(); /* the grace period also bounds the last flush after an error */
        }
    }
    if (!p->opts.backfill_only) {
        pthread_join(reader, NULL);
    }
    pthread_join(sinker, NULL);
    ctl_stop(p);
    pthread_mutex_lock(&p->mark_mu);
    pthread_cond_broadcast(&p->mark_cv); /* producers waiting on a barrier give up */
    pthread_mutex_unlock(&p->mark_mu);
    if (atomic_load(&p->fatal)) {
        *err = p->fatal_err;
        return false;
    }
    if (!p->opts.backfill_only) {
        ms_log(MS_LOG_INFO, "stopped at %s:%llu", p->stats.file, (unsigned long long)p->stats.pos);
    }
    return true;
}

/* ---- the control plane: pause, trigger, interval, counters -------------------------------- */

#define PROBE_MS      2000 /* MongoDB is pinged when no write has succeeded for this long */
#define PROBE_DOWN_MS 250  /* and this often while it is down */

static const double batch_size_bounds[] = {1,    5,    10,   25,    50,    100,   250,   500,
                                           1000, 2500, 5000, 10000, 25000, 50000, 100000};
static const double batch_seconds_bounds[] = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
                                              0.5,   1,      2.5,   5,    10,    30,   60};

const char *ms_pipeline_component_name(enum ms_pipeline_component c)
{
    static const char *const names[] = {"mysql", "mongodb", "decode", "strategy", "other"};

    return (unsigned)c < MS_PIPELINE_NCOMPONENTS ? names[c] : "other";
}

static void ctl_init(struct ms_pipeline *p)
{
    atomic_init(&p->paused, !p->cfg->sync_enabled);
    atomic_init(&p->trigger, false);
    atomic_init(&p->caught_up, false);
    atomic_init(&p->sink_idle, true);
    atomic_init(&p->pending_ops, 0);
    atomic_init(&p->interval_s, ms_config_interval_seconds(p->cfg));
    atomic_init(&p->mongo_ok_ms, ms_clock_mono_ms());
    /* ms_pipeline_new reaches both servers before anything runs; a failure says otherwise */
    p->stats.mysql_up = true;
    p->stats.mongodb_up = true;
    ms_metrics_histogram_init(&p->stats.batch_size, batch_size_bounds,
                              sizeof(batch_size_bounds) / sizeof(batch_size_bounds[0]));
    ms_metrics_histogram_init(&p->stats.batch_seconds, batch_seconds_bounds,
                              sizeof(batch_seconds_bounds) / sizeof(batch_seconds_bounds[0]));
    if (!p->cfg->sync_enabled) {
        ms_log(MS_LOG_INFO, "sync.enabled is false: starting paused (POST /sync/resume starts "
                            "replicating)");
    }
}

static void ctl_cleanup(struct ms_pipeline *p)
{
    free(p->tstats);
    free(p->cstats);
    p->tstats = NULL;
    p->cstats = NULL;
}

/* Grows *arr (*n entries of size bytes) by one zeroed entry and returns it. */
static void *append_zeroed(void **arr, size_t *n, size_t size)
{
    char *a = realloc(*arr, (*n + 1) * size);

    if (a == NULL) {
        abort();
    }
    *arr = a;
    memset(a + *n * size, 0, size);
    return a + (*n)++ * size;
}

/* Called by table_add: the counters of table i are tstats[i]. */
static void ctl_table_added(struct ms_pipeline *p, const struct table *t)
{
    struct ms_pipeline_table_stats *ts;

    pthread_mutex_lock(&p->mu);
    ts = append_zeroed((void **)&p->tstats, &p->ntstats, sizeof(*ts));
    snprintf(ts->name, sizeof(ts->name), "%s.%s", t->db, t->name);
    pthread_mutex_unlock(&p->mu);
}

static enum ms_pipeline_component component_of(const struct ms_error *err)
{
    switch (err->domain) {
    case MS_ERR_MYSQL:
        return MS_PIPELINE_MYSQL;
    case MS_ERR_MONGO:
        return MS_PIPELINE_MONGODB;
    case MS_ERR_DECODE:
        return MS_PIPELINE_DECODE;
    case MS_ERR_STRATEGY:
        return MS_PIPELINE_STRATEGY;
    default:
        return MS_PIPELINE_OTHER;
    }
}

/* Counts an error; source_down: the binlog connection failed or could not be opened, so the
 * source counts as down until the reader connects again. */
static void count_error(struct ms_pipeline *p, const struct ms_error *err, bool source_down)
{
    if (err == NULL || err->domain == MS_ERR_NONE) {
        return;
    }
    pthread_mutex_lock(&p->mu);
    p->stats.errors[component_of(err)]++;
    if (source_down && err->domain == MS_ERR_MYSQL) {
        p->stats.mysql_up = false;
    }
    pthread_mutex_unlock(&p->mu);
}

static void ctl_error(struct ms_pipeline *p, const struct ms_error *err)
{
    count_error(p, err, false);
}

static void ctl_reader_error(struct ms_pipeline *p, const struct ms_error *err)
{
    count_error(p, err, true);
}

static void ctl_mysql_up(struct ms_pipeline *p)
{
    pthread_mutex_lock(&p->mu);
    p->stats.mysql_up = true;
    pthread_mutex_unlock(&p->mu);
}

/* n row changes of one rows event (one table, one kind) were read. */
static void ctl_rows(struct ms_pipeline *p, const struct table *t, int op, uint64_t n, uint32_t ts)
{
    size_t i = (size_t)(t - p->tables);

    if (n == 0) {
        return;
    }
    pthread_mutex_lock(&p->mu);
    if (i < p->ntstats) {
        struct ms_pipeline_table_stats *s = &p->tstats[i];
        if (op == MS_ROW_INSERT) {
            s->inserted += n;
        } else if (op == MS_ROW_UPDATE) {
            s->updated += n;
        } else {
            s->deleted += n;
        }
        s->last_event_ms = (int64_t)ts * 1000;
    }
    pthread_mutex_unlock(&p->mu);
}

static void ctl_dead(struct ms_pipeline *p, const char *db, const char *table)
{
    char name[sizeof(p->tstats[0].name)];

    snprintf(name, sizeof(name), "%s.%s", db != NULL ? db : "", table != NULL ? table : "");
    pthread_mutex_lock(&p->mu);
    for (size_t i = 0; i < p->ntstats; i++) {
        if (strcmp(p->tstats[i].name, name) == 0) {
            p->tstats[i].dead_lettered++;
            break;
        }
    }
    pthread_mutex_unlock(&p->mu);
}

static struct ms_pipeline_collection_stats *collection_stats(struct ms_pipeline *p,
                                                             const char *name)
{
    struct ms_pipeline_collection_stats *cs;

    for (size_t i = 0; i < p->ncstats; i++) {
        if (strcmp(p->cstats[i].name, name) == 0) {
            return &p->cstats[i];
        }
    }
    cs = append_zeroed((void **)&p->cstats, &p->ncstats, sizeof(*cs));
    snprintf(cs->name, sizeof(cs->name), "%s", name);
    return cs;
}

/* A bulk write of nwrites writes ended (ok: acknowledged). */
static void ctl_flush(struct ms_pipeline *p, const struct ms_sink_result *res,
                      const struct ms_sink_collection_result *per, size_t nper, size_t nwrites,
                      int64_t started_ms, bool ok)
{
    double secs = (double)(ms_clock_mono_ms() - started_ms) / 1000.0;

    pthread_mutex_lock(&p->mu);
    p->stats.write_attempts += 1 + res->retries;
    p->stats.errors[MS_PIPELINE_MONGODB] += res->retries;
    if (ok) {
        ms_metrics_histogram_observe(&p->stats.batch_size, (double)nwrites);
        ms_metrics_histogram_observe(&p->stats.batch_seconds, secs);
        p->stats.last_batch_seconds = secs;
        p->stats.last_success_ms = ms_clock_wall_ms();
        p->stats.mongodb_up = true;
        for (size_t i = 0; i < nper; i++) {
            const struct ms_sink_collection_result *r = &per[i];
            struct ms_pipeline_collection_stats *cs = collection_stats(p, r->collection);
            cs->upserted += r->upserted;
            cs->matched += r->matched;
            cs->deleted += r->deleted;
            cs->dead_lettered += r->dead_lettered;
        }
    }
    pthread_mutex_unlock(&p->mu);
    if (ok) {
        atomic_store(&p->mongo_ok_ms, ms_clock_mono_ms());
    }
}

static void ctl_checkpoint_saved(struct ms_pipeline *p)
{
    pthread_mutex_lock(&p->mu);
    p->stats.last_checkpoint_ms = p->stats.checkpoint_wall_ms;
    p->stats.last_success_ms = p->stats.checkpoint_wall_ms;
    p->stats.mongodb_up = true;
    pthread_mutex_unlock(&p->mu);
    atomic_store(&p->mongo_ok_ms, ms_clock_mono_ms());
}

static void ctl_sink_state(struct ms_pipeline *p, size_t nops, bool idle)
{
    atomic_store(&p->pending_ops, (uint_fast64_t)nops);
    atomic_store(&p->sink_idle, idle);
}

static void ctl_fill_stats(struct ms_pipeline *p, struct ms_pipeline_stats *out)
{
    out->paused = atomic_load(&p->paused);
    out->fatal = atomic_load(&p->fatal);
    out->pending_ops = (uint64_t)atomic_load(&p->pending_ops);
    out->interval_seconds = (int64_t)atomic_load(&p->interval_s);
    out->idle = out->queue_depth == 0 && atomic_load(&p->sink_idle) && atomic_load(&p->caught_up);
}

/* Pings MongoDB while no write or checkpoint has said for PROBE_MS whether it is up (an idle
 * pipeline, or a sink stuck retrying), so mongodb_up follows the server. Ends with the sink. */
static void *probe_main(void *arg)
{
    struct ms_pipeline *p = arg;
    int64_t next = ms_clock_mono_ms() + PROBE_MS;

    while (!atomic_load(&p->sink_done)) {
        struct timespec ts = {0, 100 * 1000000L};
        struct ms_mongo_info info;
        struct ms_error err = {0};
        bool up;

        nanosleep(&ts, NULL);
        if (ms_clock_mono_ms() < next) {
            continue;
        }
        pthread_mutex_lock(&p->mu);
        up = p->stats.mongodb_up;
        pthread_mutex_unlock(&p->mu);
        /* while it is down, every PROBE_DOWN_MS: its return is noticed at once */
        next = ms_clock_mono_ms() + (up ? PROBE_MS : PROBE_DOWN_MS);
        if (ms_clock_mono_ms() - (int64_t)atomic_load(&p->mongo_ok_ms) < PROBE_MS) {
            continue;
        }
        up = ms_sink_ping(p->pool, &info, &err);
        pthread_mutex_lock(&p->mu);
        if (p->stats.mongodb_up != up) {
            ms_log(up ? MS_LOG_INFO : MS_LOG_WARN, "MongoDB is %s%s%s", up ? "up" : "down",
                   up ? "" : ": ", up ? "" : err.msg);
        }
        p->stats.mongodb_up = up;
        pthread_mutex_unlock(&p->mu);
        if (up) {
            /* no write succeeded for PROBE_MS but the server answers: a write waiting out its
             * backoff (up to 30 s after a long outage) tries again now */
            ms_sink_wake(p->sink);
        }
    }
    return NULL;
}

static void ctl_start(struct ms_pipeline *p)
{
    p->prober_started = pthread_create(&p->prober, NULL, probe_main, p) == 0;
}

static void ctl_stop(struct ms_pipeline *p)
{
    if (p->prober_started) {
        pthread_join(p->prober, NULL);
        p->prober_started = false;
    }
}

void ms_pipeline_pause(struct ms_pipeline *p)
{
    if (!atomic_exchange(&p->paused, true)) {
        ms_log(MS_LOG_INFO, "paused: nothing more is written until resumed");
    }
}

void ms_pipeline_resume(struct ms_pipeline *p)
{
    if (atomic_exchange(&p->paused, false)) {
        ms_log(MS_LOG_INFO, "resumed");
    }
}

bool ms_pipeline_is_paused(struct ms_pipeline *p)
{
    return atomic_load(&p->paused);
}

bool ms_pipeline_trigger(struct ms_pipeline *p, const char *table, struct ms_error *err)
{
    if (table != NULL) {
        char db[200], name[200], full[sizeof(p->tstats[0].name)];
        bool found = false;
        split_qualified(table, p->cfg->mysql_database, db, sizeof(db), name, sizeof(name));
        snprintf(full, sizeof(full), "%s.%s", db, name);
        pthread_mutex_lock(&p->mu);
        for (size_t i = 0; i < p->ntstats && !found; i++) {
            found = strcmp(p->tstats[i].name, full) == 0;
        }
        pthread_mutex_unlock(&p->mu);
        if (!found) {
            ms_error_set(err, MS_ERR_CONFIG, MS_CONFIG_BAD_VALUE, "%s is not a replicated table",
                         full);
            return false;
        }
    }
    atomic_store(&p->trigger, true);
    ms_log(MS_LOG_INFO, "trigger: writing the pending batch and saving the checkpoint now");
    return true;
}

void ms_pipeline_on_ddl(struct ms_pipeline *p, void (*snapshot)(void *ctx, const char *table),
                        void *ctx)
{
    p->ddl_snapshot = snapshot;
    p->ddl_ctx = ctx;
}

void ms_pipeline_set_interval(struct ms_pipeline *p, int64_t seconds)
{
    atomic_store(&p->interval_s, seconds);
    ms_log_kv(MS_LOG_INFO, ((struct ms_log_field[]){MS_LF_INT("seconds", seconds)}),
              "sync interval set");
}

/* A malloc'd copy of *src (*n entries of size bytes), both read under p->mu. */
static size_t copy_locked(struct ms_pipeline *p, void *const *src, const size_t *n, size_t size,
                          void **out)
{
    size_t count;

    pthread_mutex_lock(&p->mu);
    count = *n;
    *out = count > 0 ? malloc(count * size) : NULL;
    if (*out != NULL) {
        memcpy(*out, *src, count * size);
    } else {
        count = 0;
    }
    pthread_mutex_unlock(&p->mu);
    return count;
}

size_t ms_pipeline_get_tables(struct ms_pipeline *p, struct ms_pipeline_table_stats **out)
{
    return copy_locked(p, (void *const *)&p->tstats, &p->ntstats, sizeof(**out), (void **)out);
}

size_t ms_pipeline_get_collections(struct ms_pipeline *p, struct ms_pipeline_collection_stats **out)
{
    return copy_locked(p, (void *const *)&p->cstats, &p->ncstats, sizeof(**out), (void **)out);
}

/* ---- producers ------------------------------------------------------------------------ */

bool ms_pipeline_snapshot_sweeps(const struct ms_pipeline *p)
{
    return p->snapshot_reason != NULL && p->snapshot_sweep;
}

void ms_pipeline_keys_begin(struct ms_pipeline *p)
{
    ms_pipeline_keys_end(p);
    atomic_store(&p->keys_on, true);
}

static void table_public(const struct table *t, struct ms_pipeline_table *out);

static int key_cmp(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* Sorted once the sink has written them all (after a barrier), for bsearch. */
static void keys_sort(struct ms_pipeline *p)
{
    if (!p->keys_sorted) {
        qsort(p->keys, p->nkeys, sizeof(*p->keys), key_cmp);
        p->keys_sorted = true;
    }
}

size_t ms_pipeline_keys_collections(struct ms_pipeline *p, const char *const **out)
{
    keys_sort(p);
    pthread_mutex_lock(&p->tmu);
    for (size_t i = 0; i < p->ntables; i++) {
        const struct table *t = &p->tables[i];
        struct ms_pipeline_table pt;
        const char *coll = NULL;

        table_public(t, &pt);
        if (!pt.primary) {
            continue;
        }
        if (t->strategy == &ms_strategy_generic) {
            coll = generic_collection(t);
        } else if (t->strategy->collection != NULL) {
            coll = t->strategy->collection(t->sctx, t->tcfg, t->role);
        }
        if (coll != NULL) {
            kcoll_add(p, coll);
        }
    }
    pthread_mutex_unlock(&p->tmu);
    *out = (const char *const *)p->kcolls;
    return p->nkcolls;
}

bool ms_pipeline_key_seen(struct ms_pipeline *p, const char *collection, const bson_t *id)
{
    uint64_t h = key_hash(collection, id);

    keys_sort(p);
    return bsearch(&h, p->keys, p->nkeys, sizeof(*p->keys), key_cmp) != NULL;
}

void ms_pipeline_keys_end(struct ms_pipeline *p)
{
    atomic_store(&p->keys_on, false);
    free(p->keys);
    p->keys = NULL;
    p->nkeys = p->capkeys = 0;
    p->keys_sorted = false;
    for (size_t i = 0; i < p->nkcolls; i++) {
        free(p->kcolls[i]);
    }
    free(p->kcolls);
    p->kcolls = NULL;
    p->nkcolls = 0;
}

const char *ms_pipeline_snapshot_reason(const struct ms_pipeline *p)
{
    return p->snapshot_reason;
}

void ms_pipeline_start_stream(struct ms_pipeline *p)
{
    atomic_store(&p->stream_go, true);
}

uint64_t ms_pipeline_windows_replayed(struct ms_pipeline *p)
{
    uint64_t n;

    pthread_mutex_lock(&p->mu);
    n = p->windows_replayed;
    pthread_mutex_unlock(&p->mu);
    return n;
}

static void table_public(const struct table *t, struct ms_pipeline_table *out)
{
    memset(out, 0, sizeof(*out));
    out->db = t->db;
    out->name = t->name;
    out->key = (const char *const *)(t->nkey > 0 ? t->key : t->pkcols);
    out->nkey = t->nkey > 0 ? t->nkey : t->npkcols;
    out->vo = t->vo;
    out->strategy = t->strategy->name;
    out->role = t->role;
    out->primary = t->strategy->source_tables == NULL ||
                   (t->role != NULL && strcmp(t->role, t->strategy->source_tables[0]) == 0);
}

size_t ms_pipeline_table_count(struct ms_pipeline *p)
{
    size_t n;

    pthread_mutex_lock(&p->tmu);
    n = p->ntables;
    pthread_mutex_unlock(&p->tmu);
    return n;
}

bool ms_pipeline_table_at(struct ms_pipeline *p, size_t i, struct ms_pipeline_table *out)
{
    bool ok;

    pthread_mutex_lock(&p->tmu);
    ok = i < p->ntables;
    if (ok) {
        table_public(&p->tables[i], out);
    }
    pthread_mutex_unlock(&p->tmu);
    return ok;
}

bool ms_pipeline_find_table(struct ms_pipeline *p, const char *spec, struct ms_pipeline_table *out)
{
    char db[200], name[200];
    const struct table *t;

    split_qualified(spec, p->cfg->mysql_database, db, sizeof(db), name, sizeof(name));
    pthread_mutex_lock(&p->tmu);
    t = table_find(p, db, name);
    if (t != NULL) {
        table_public(t, out);
    }
    pthread_mutex_unlock(&p->tmu);
    return t != NULL;
}

/* A copy of db.table's entry (its pointers stay valid: tables only grow). */
static bool table_copy(struct ms_pipeline *p, const char *db, const char *table, struct table *out,
                       struct ms_error *err)
{
    const struct table *t;

    pthread_mutex_lock(&p->tmu);
    t = table_find(p, db, table);
    if (t != NULL) {
        *out = *t;
    }
    pthread_mutex_unlock(&p->tmu);
    if (t == NULL) {
        ms_error_set(err, MS_ERR_CONFIG, MS_CONFIG_BAD_VALUE, "%s.%s is not replicated", db, table);
        return false;
    }
    return true;
}

/* A producer's change of t: a whole row (after) or a delete (before). */
static void producer_change(const struct table *t, enum ms_change_op op, const bson_t *before,
                            const bson_t *after, const char *position, struct ms_change *chg)
{
    memset(chg, 0, sizeof(*chg));
    chg->op = op;
    chg->db = t->db;
    chg->table = t->name;
    chg->before = before;
    chg->after = after;
    chg->after_complete = after != NULL;
    chg->pk = (const char *const *)(t->nkey > 0 ? t->key : t->pkcols);
    chg->npk = t->nkey > 0 ? t->nkey : t->npkcols;
    chg->position = position;
    chg->tcfg = t->tcfg;
    chg->role = t->role;
}

bool ms_pipeline_push_row(struct ms_pipeline *p, const char *db, const char *table,
                          const bson_t *row, const char *position, bool likely_new,
                          struct ms_error *err)
{
    struct table t;
    struct ms_change chg = {0};

    if (!table_copy(p, db, table, &t, err)) {
        return false;
    }
    producer_change(&t, MS_CHANGE_INSERT, NULL, row, position != NULL ? position : "snapshot",
                    &chg);
    t.warned = true; /* a producer reports refused rows itself */
    if (!queue_change(p, NULL, &t, &chg, likely_new)) {
        *err = p->fatal_err;
        return false;
    }
    return true;
}

bool ms_pipeline_push_delete(struct ms_pipeline *p, const char *db, const char *table,
                             const bson_t *before, const char *position, struct ms_error *err)
{
    struct table t;
    struct ms_change chg = {0};

    if (!table_copy(p, db, table, &t, err)) {
        return false;
    }
    producer_change(&t, MS_CHANGE_DELETE, before, NULL, position != NULL ? position : "poll", &chg);
    t.warned = true;
    if (!queue_change(p, NULL, &t, &chg, false)) {
        *err = p->fatal_err;
        return false;
    }
    return true;
}

bool ms_pipeline_expected_ops(struct ms_pipeline *p, const char *db, const char *table,
                              const bson_t *row, struct ms_ops *out, struct ms_error *err)
{
    struct ms_lookup lk = {.rows = lookup_rows, .u = p};
    struct table t;
    struct ms_change chg = {0};
    struct ms_ops tmp;
    bool ok;

    if (!table_copy(p, db, table, &t, err)) {
        return false;
    }
    producer_change(&t, MS_CHANGE_INSERT, NULL, row, "verify", &chg);
    ms_ops_init(&tmp);
    ok = strategy_map(&t, &chg, &tmp, err);
    for (size_t i = 0; ok && i < tmp.n; i++) {
        struct ms_ops res;
        if (tmp.v[i].kind == MS_OP_REREAD) {
            ms_error_set(err, MS_ERR_STRATEGY, 1,
                         "%s.%s: the %s strategy asked to read a whole row again", db, table,
                         t.strategy->name);
            ok = false;
        } else if (tmp.v[i].kind == MS_OP_RESOLVE) {
            if (t.strategy->resolve == NULL) {
                ms_error_set(err, MS_ERR_STRATEGY, 1, "%s.%s: the %s strategy cannot resolve", db,
                             table, t.strategy->name);
                ok = false;
                break;
            }
            ms_ops_init(&res);
            ok = t.strategy->resolve(t.sctx, &tmp.v[i], &lk, &res, err);
            if (ok) {
                take_ops(out, &res);
            }
            ms_ops_cleanup(&res);
        } else { /* in the order the sink would write them */
            struct ms_op *o = ms_ops_add(out, tmp.v[i].kind, tmp.v[i].collection);
            if (o == NULL) {
                abort();
            }
            bson_destroy(&o->id);
            bson_destroy(&o->doc);
            bson_steal(&o->id, &tmp.v[i].id);
            bson_steal(&o->doc, &tmp.v[i].doc);
            bson_init(&tmp.v[i].id);
            bson_init(&tmp.v[i].doc);
        }
    }
    ms_ops_cleanup(&tmp);
    return ok;
}

bool ms_pipeline_push_bad_row(struct ms_pipeline *p, const char *db, const char *table,
                              const struct ms_error *why, const char *position,
                              struct ms_error *err)
{
    struct item *it = item_new(IT_DEAD);

    it->db = strdup(db);
    it->table = strdup(table);
    snprintf(it->position, sizeof(it->position), "%s", position != NULL ? position : "snapshot");
    snprintf(it->op, sizeof(it->op), "insert");
    it->why = *why;
    ctl_error(p, why);
    if (!queue_push(p, it)) {
        *err = p->fatal_err;
        return false;
    }
    return true;
}

bool ms_pipeline_barrier(struct ms_pipeline *p, struct ms_error *err)
{
    uint64_t seq;

    return ms_pipeline_mark(p, &seq, err) && ms_pipeline_wait_mark(p, seq, err);
}

bool ms_pipeline_mark(struct ms_pipeline *p, uint64_t *seq, struct ms_error *err)
{
    struct item *it = item_new(IT_MARK);

    pthread_mutex_lock(&p->mark_mu);
    *seq = ++p->mark_next;
    pthread_mutex_unlock(&p->mark_mu);
    it->mark = *seq;
    if (!queue_push(p, it)) {
        *err = p->fatal_err;
        return false;
    }
    return true;
}

bool ms_pipeline_wait_mark(struct ms_pipeline *p, uint64_t seq, struct ms_error *err)
{
    bool ok;

    pthread_mutex_lock(&p->mark_mu);
    while (p->mark_done < seq && !atomic_load(&p->fatal) && !atomic_load(&p->sink_done) &&
           !atomic_load(&p->cancelled)) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_nsec += 100 * 1000000L;
        if (ts.tv_nsec >= 1000000000L) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000L;
        }
        pthread_cond_timedwait(&p->mark_cv, &p->mark_mu, &ts);
    }
    ok = p->mark_done >= seq;
    pthread_mutex_unlock(&p->mark_mu);
    if (!ok) {
        if (atomic_load(&p->fatal)) {
            pthread_mutex_lock(&p->mu);
            *err = p->fatal_err;
            pthread_mutex_unlock(&p->mu);
        } else {
            ms_error_set(err, MS_ERR_SYSTEM, ECANCELED, "the pipeline stopped");
        }
    }
    return ok;
}

/* The daemon end to end, against the rig's real MariaDB (binlog ROW) and MongoDB-wire servers:
 * every column type arrives with its documented BSON type, composite keys, key changes and
 * deletes; SIGTERM flushes and checkpoints; SIGKILL during a mixed workload and a MariaDB
 * restart both converge row by row; bad set-ups are refused with a message that says what to
 * do, before anything is written.
 *
 * Waiting for replication polls MongoDB until the expected state appears or a generous limit
 * passes (a liveness bound, not a speed assertion: bench/ measures speed). Sizes are reduced
 * in CI; MS_FULL_FAULTS=1 runs the full-size crash loop. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <mongoc/mongoc.h>
#include <mysql.h>
#include <pthread.h>
#include <stdatomic.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "testutil.h"
#include "tu_daemon.h"

/* The table most cases replicate, in a fresh database itp. */
#define KV_SCHEMA                                                                                  \
    "DROP DATABASE IF EXISTS itp; CREATE DATABASE itp; CREATE TABLE itp.kv (id INT PRIMARY "       \
    "KEY, n INT, s VARCHAR(40), v BIGINT)"

/* ---- every type, composite keys, key changes, deletes -------------------------------- */

/* The final state the golden change stream (binlog-dump of types.sql, checked against the
 * README type table by it_binlog and the unit tests) implies for one table, as relaxed JSON
 * lines {_id, columns...}, sorted. */
static char *golden_final_state(const char *table, const char *const *pk, size_t npk)
{
    char path[1024], *text, *save = NULL, *line;
    bson_t *docs[64] = {0};
    bson_t *ids[64] = {0};
    size_t n = 0;
    char **lines = NULL, *out;
    size_t cnt = 0;

    snprintf(path, sizeof(path),
             "%s/tests/data/binlogs/expected/mariadb-10.11.19-types.server.jsonl",
             getenv("MS_SOURCE_ROOT"));
    text = tu_slurp(path, NULL);
    assert_non_null(text);
    for (line = strtok_r(text, "\n", &save); line != NULL; line = strtok_r(NULL, "\n", &save)) {
        bson_error_t err;
        bson_t *ch = bson_new_from_json((const uint8_t *)line, -1, &err);
        bson_iter_t it, sub;
        const char *op;
        bson_t before, after, id = BSON_INITIALIZER;
        uint32_t blen;
        const uint8_t *bdata;
        if (ch == NULL) {
            fail_msg("golden line: %s", err.message);
        }
        assert_true(bson_iter_init_find(&it, ch, "table"));
        if (strcmp(bson_iter_utf8(&it, NULL), table) != 0) {
            bson_destroy(ch);
            continue;
        }
        assert_true(bson_iter_init_find(&it, ch, "op"));
        op = bson_iter_utf8(&it, NULL);
        /* the key from before (update, delete) or after (insert) */
        const char *img = strcmp(op, "insert") == 0 ? "before" : "before";
        (void)img;
        bson_init(&before);
        bson_init(&after);
        if (bson_iter_init_find(&it, ch, "before") && BSON_ITER_HOLDS_DOCUMENT(&it)) {
            bson_iter_document(&it, &blen, &bdata);
            bson_destroy(&before);
            bson_init_static(&before, bdata, blen);
        }
        if (bson_iter_init_find(&it, ch, "after") && BSON_ITER_HOLDS_DOCUMENT(&it)) {
            bson_iter_document(&it, &blen, &bdata);
            bson_destroy(&after);
            bson_init_static(&after, bdata, blen);
        }
        /* remove the old key, then add the new row */
        if (strcmp(op, "insert") != 0) {
            bson_t k = BSON_INITIALIZER;
            for (size_t i = 0; i < npk; i++) {
                assert_true(bson_iter_init_find(&sub, &before, pk[i]));
                bson_append_iter(&k, pk[i], -1, &sub);
            }
            for (size_t i = 0; i < n; i++) {
                if (docs[i] != NULL && bson_equal(ids[i], &k)) {
                    bson_destroy(docs[i]);
                    bson_destroy(ids[i]);
                    docs[i] = NULL;
                }
            }
            bson_destroy(&k);
        }
        if (strcmp(op, "delete") != 0) {
            bson_t *k = bson_new(), *doc = bson_new();
            for (size_t i = 0; i < npk; i++) {
                assert_true(bson_iter_init_find(&sub, &after, pk[i]));
                bson_append_iter(k, pk[i], -1, &sub);
            }
            if (npk == 1) {
                assert_true(bson_iter_init_find(&sub, &after, pk[0]));
                bson_append_iter(doc, "_id", 3, &sub);
            } else {
                BSON_APPEND_DOCUMENT(doc, "_id", k);
            }
            bson_concat(doc, &after);
            assert_true(n < 64);
            ids[n] = k;
            docs[n++] = doc;
        }
        bson_destroy(&id);
        bson_destroy(ch);
    }
    for (size_t i = 0; i < n; i++) {
        if (docs[i] == NULL) {
            continue;
        }
        lines = realloc(lines, (cnt + 1) * sizeof(char *));
        lines[cnt++] = bson_as_relaxed_extended_json(docs[i], NULL);
        bson_destroy(docs[i]);
        bson_destroy(ids[i]);
    }
    out = tu_join_sorted(lines, cnt);
    free(text);
    return out;
}

/* Documented BSON types of single values (README "Type mapping"), as data. */
struct type_case {
    const char *table;
    int id; /* _id (tables with an INT key) */
    const char *field;
    bson_type_t type;
    const char *canonical; /* the value as canonical extended JSON, {"v": ...} */
};

static const struct type_case type_cases[] = {
    {"t_int", 1, "ti", BSON_TYPE_INT32, "{ \"v\" : { \"$numberInt\" : \"-128\" } }"},
    {"t_int", 1, "iu", BSON_TYPE_INT64, "{ \"v\" : { \"$numberLong\" : \"4294967295\" } }"},
    {"t_int", 1, "bi", BSON_TYPE_INT64,
     "{ \"v\" : { \"$numberLong\" : \"-9223372036854775808\" } }"},
    {"t_int", 1, "biu", BSON_TYPE_DECIMAL128,
     "{ \"v\" : { \"$numberDecimal\" : \"18446744073709551615\" } }"},
    {"t_int", 1, "f", BSON_TYPE_DOUBLE, "{ \"v\" : { \"$numberDouble\" : \"-1.5\" } }"},
    {"t_int", 1, "d", BSON_TYPE_DOUBLE, "{ \"v\" : { \"$numberDouble\" : \"2.25\" } }"},
    {"t_int", 1, "b", BSON_TYPE_INT64, "{ \"v\" : { \"$numberLong\" : \"682\" } }"},
    {"t_int", 1, "y", BSON_TYPE_INT32, "{ \"v\" : { \"$numberInt\" : \"2024\" } }"},
    {"t_int", 3, "ti", BSON_TYPE_EOD, NULL}, /* row 3 was deleted */
    {"t_dec", 2, "d2", BSON_TYPE_DECIMAL128, "{ \"v\" : { \"$numberDecimal\" : \"-0.01\" } }"},
    {"t_dec", 1, "d4", BSON_TYPE_DECIMAL128,
     "{ \"v\" : { \"$numberDecimal\" : \"123456.7890\" } }"},
    /* 38 significant digits: more than Decimal128's 34, kept exact as a string */
    {"t_dec", 1, "d7", BSON_TYPE_UTF8, "{ \"v\" : \"12345678.123456789012345678901234567890\" }"},
    {"t_time", 1, "dt", BSON_TYPE_DATE_TIME,
     "{ \"v\" : { \"$date\" : { \"$numberLong\" : \"1709164800000\" } } }"},
    {"t_time", 1, "t0", BSON_TYPE_UTF8, "{ \"v\" : \"-838:59:59\" }"},
    {"t_time", 1, "dt3", BSON_TYPE_DATE_TIME,
     "{ \"v\" : { \"$date\" : { \"$numberLong\" : \"1\" } } }"},
    {"t_time", 1, "ts0", BSON_TYPE_DATE_TIME,
     "{ \"v\" : { \"$date\" : { \"$numberLong\" : \"1000\" } } }"},
    {"t_time", 2, "ts0", BSON_TYPE_NULL, "{ \"v\" : null }"},
    {"t_str", 1, "c", BSON_TYPE_UTF8, "{ \"v\" : \"pad\" }"},
    {"t_str", 1, "vb", BSON_TYPE_BINARY,
     "{ \"v\" : { \"$binary\" : { \"base64\" : \"AP8Q\", \"subType\" : \"00\" } } }"},
    {"t_str", 1, "e", BSON_TYPE_UTF8, "{ \"v\" : \"green\" }"},
    {"t_str", 1, "s", BSON_TYPE_ARRAY, "{ \"v\" : [ \"b\", \"c\" ] }"},
    {"t_str", 2, "s", BSON_TYPE_ARRAY, "{ \"v\" : [  ] }"},
    {"t_str", 1, "l1", BSON_TYPE_UTF8, "{ \"v\" : \"d\xc3\xa9j\xc3\xa0 \xe2\x82\xac\" }"},
    {"t_str", 1, "js", BSON_TYPE_DOCUMENT, NULL},
    {"t_str", 1, "g", BSON_TYPE_BINARY, NULL},
};

static void check_type_cases(mongoc_client_t *c, const char *db)
{
    for (size_t i = 0; i < sizeof(type_cases) / sizeof(type_cases[0]); i++) {
        const struct type_case *tc = &type_cases[i];
        bson_t filter = BSON_INITIALIZER, doc;
        bson_iter_t it;
        bool found;
        BSON_APPEND_INT32(&filter, "_id", tc->id);
        found = tu_find_one(c, db, tc->table, &filter, &doc);
        bson_destroy(&filter);
        if (tc->type == BSON_TYPE_EOD) {
            if (found) {
                fail_msg("%s _id %d should have been deleted", tc->table, tc->id);
            }
            continue;
        }
        if (!found) {
            fail_msg("%s _id %d missing", tc->table, tc->id);
        }
        if (!bson_iter_init_find(&it, &doc, tc->field)) {
            fail_msg("%s _id %d: no field %s", tc->table, tc->id, tc->field);
        }
        if (bson_iter_type(&it) != tc->type) {
            fail_msg("%s _id %d %s: BSON type 0x%02x, want 0x%02x", tc->table, tc->id, tc->field,
                     (unsigned)bson_iter_type(&it), (unsigned)tc->type);
        }
        if (tc->canonical != NULL) {
            bson_t v = BSON_INITIALIZER;
            char *json;
            bson_append_iter(&v, "v", 1, &it);
            json = bson_as_canonical_extended_json(&v, NULL);
            if (strcmp(json, tc->canonical) != 0) {
                fail_msg("%s _id %d %s: %s, want %s", tc->table, tc->id, tc->field, json,
                         tc->canonical);
            }
            bson_free(json);
            bson_destroy(&v);
        }
        bson_destroy(&doc);
    }
}

static void every_type_arrives(void **state)
{
    static const struct {
        const char *table;
        const char *pk[2];
        size_t npk;
    } tables[] = {{"t_int", {"id"}, 1},
                  {"t_dec", {"id"}, 1},
                  {"t_time", {"id"}, 1},
                  {"t_str", {"id"}, 1},
                  {"t_comp", {"a", "b"}, 2}};
    MYSQL *m = tu_mysql_admin(NULL);
    mongoc_client_t *c = tu_mongo(&tu_java);
    struct tu_daemon d;
    char path[1024], *workload;
    const char *db = "itp_types";

    (void)state;
    tu_drop_db(c, db);
    /* the workload recreates database vec: the daemon replicates every table of it, new ones
     * included. It starts empty: it_binlog leaves the workload's tables behind, and an initial
     * snapshot of them would race the workload's DROP DATABASE (rows a DROP removes never reach
     * the binlog as row events, so their documents would stay). */
    tu_sql(m, "DROP DATABASE IF EXISTS vec; CREATE DATABASE vec");
    tu_daemon_init(&d, &tu_java, "vec", db);
    tu_daemon_start(&d);
    tu_daemon_wait_ready(&d);
    snprintf(path, sizeof(path), "%s/tests/data/binlogs/types.sql", getenv("MS_SOURCE_ROOT"));
    workload = tu_slurp(path, NULL);
    assert_non_null(workload);
    tu_sql(m, workload);
    for (size_t t = 0; t < sizeof(tables) / sizeof(tables[0]); t++) {
        char *want = golden_final_state(tables[t].table, tables[t].pk, tables[t].npk), *got = NULL;
        int64_t until = tu_now_ms() + TU_CONVERGE_LIMIT_S * 1000;
        for (;;) {
            free(got);
            got = tu_dump_collection(c, db, tables[t].table, NULL);
            if (strcmp(got, want) == 0) {
                break;
            }
            if (tu_now_ms() > until) {
                char msg[8192];
                snprintf(msg, sizeof(msg), "%s differs:\n got:\n%s\nwant:\n%s", tables[t].table,
                         got, want);
                tu_daemon_fail(&d, msg);
            }
            tu_sleep_ms(100);
        }
        free(got);
        free(want);
    }
    check_type_cases(c, db);
    assert_int_equal(tu_daemon_signal(&d, SIGTERM), 0);
    free(workload);
    tu_daemon_cleanup(&d);
    mongoc_client_destroy(c);
    mysql_close(m);
}

/* ---- SIGTERM, checkpoint, resume ----------------------------------------------------- */

static const char *const kv_fields[] = {"id", "n", "s", "v"};
#define KV_QUERY(t) "SELECT id, n, IFNULL(s, 'NULL'), v FROM " t " ORDER BY id"

static void sigterm_checkpoints_and_resumes(void **state)
{
    MYSQL *m = tu_mysql_admin(NULL);
    mongoc_client_t *c = tu_mongo(&tu_java);
    struct tu_daemon d;
    const char *db = "itp_resume";
    bson_t filter = BSON_INITIALIZER, cp;
    bson_iter_t it;
    char *status;

    (void)state;
    tu_drop_db(c, db);
    tu_sql(m, KV_SCHEMA "; CREATE TABLE itp.other (id INT PRIMARY "
                        "KEY)");
    tu_daemon_init(&d, &tu_java, "itp", db);
    tu_daemon_env(&d, "SYNC_TABLES=kv");
    tu_daemon_start(&d);
    tu_daemon_wait_ready(&d);
    tu_sql(m, "INSERT INTO itp.kv VALUES (1, 10, 'a', 100), (2, 20, 'b', 200), (3, 30, NULL, 300)");
    tu_sql(m, "INSERT INTO itp.other VALUES (1), (2)"); /* not replicated */
    tu_wait_converged(&d, m, c, db, "kv", KV_QUERY("itp.kv"), kv_fields, 4);
    assert_int_equal(tu_daemon_signal(&d, SIGTERM), 0);
    {
        size_t n;
        char *other = tu_dump_collection(c, db, "other", &n);
        assert_int_equal(n, 0);
        free(other);
    }
    /* the checkpoint is where the source is now: every change before it is in MongoDB */
    BSON_APPEND_UTF8(&filter, "_id", "binlog");
    assert_true(tu_find_one(c, db, "_mysync_checkpoints", &filter, &cp));
    status = tu_query_lines(m, "SHOW MASTER STATUS");
    {
        char want[512];
        assert_true(bson_iter_init_find(&it, &cp, "file"));
        snprintf(want, sizeof(want), "%s|", bson_iter_utf8(&it, NULL));
        assert_true(bson_iter_init_find(&it, &cp, "pos"));
        snprintf(want + strlen(want), sizeof(want) - strlen(want), "%lld|",
                 (long long)bson_iter_as_int64(&it));
        if (strncmp(status, want, strlen(want)) != 0) {
            fail_msg("checkpoint %s, source at %s", want, status);
        }
    }
    free(status);
    bson_destroy(&cp);
    bson_destroy(&filter);
    /* changes while it is down arrive after the restart */
    tu_sql(m, "UPDATE itp.kv SET n = n + 1, s = 'changed' WHERE id = 2; DELETE FROM itp.kv WHERE "
              "id = 1; INSERT INTO itp.kv VALUES (4, 40, 'd', 400)");
    tu_daemon_start(&d);
    tu_wait_converged(&d, m, c, db, "kv", KV_QUERY("itp.kv"), kv_fields, 4);
    assert_int_equal(tu_daemon_signal(&d, SIGINT), 0);
    tu_daemon_cleanup(&d);
    mongoc_client_destroy(c);
    mysql_close(m);
}

/* ---- crash loop and source restart --------------------------------------------------- */

struct workload {
    int ops;       /* transactions to run */
    int key_space; /* ids 1..key_space */
    bool tolerate_disconnects;
    /* filled by workload_start: the rig's values are read in the test's thread only */
    char user[64], password[64];
    unsigned port;
    atomic_int done;
    char error[512];
};

/* Mixed inserts, updates (some changing the key), deletes and multi-row transactions on
 * itp.kv, from a connection of its own. With tolerate_disconnects, a lost connection is
 * reopened and the work goes on (what committed is the truth either way). */
static void *workload_main(void *arg)
{
    struct workload *w = arg;
    MYSQL *m = NULL;
    unsigned seed = 12345;

    for (int i = 0; i < w->ops; i++) {
        char q[1024];
        int id = 1 + (int)(rand_r(&seed) % (unsigned)w->key_space);
        int kind = (int)(rand_r(&seed) % 10);
        if (m == NULL) {
            m = mysql_init(NULL);
            if (mysql_real_connect(m, "127.0.0.1", w->user, w->password, "itp", w->port, NULL,
                                   CLIENT_MULTI_STATEMENTS) == NULL) {
                mysql_close(m);
                m = NULL;
                if (!w->tolerate_disconnects) {
                    snprintf(w->error, sizeof(w->error), "workload connect failed");
                    break;
                }
                tu_sleep_ms(200);
                i--;
                continue;
            }
        }
        if (kind < 4) {
            snprintf(q, sizeof(q),
                     "INSERT INTO kv VALUES (%d, %d, 'ins-%d', %lld) ON DUPLICATE KEY UPDATE "
                     "n = VALUES(n), s = VALUES(s), v = VALUES(v)",
                     id, i, i, (long long)i * 1000003LL);
        } else if (kind < 7) {
            snprintf(q, sizeof(q), "UPDATE kv SET n = n + 1, s = CONCAT('upd-', %d) WHERE id = %d",
                     i, id);
        } else if (kind < 8) {
            int to = 1 + (int)(rand_r(&seed) % (unsigned)w->key_space);
            snprintf(q, sizeof(q), "UPDATE IGNORE kv SET id = %d WHERE id = %d", to, id);
        } else if (kind < 9) {
            snprintf(q, sizeof(q), "DELETE FROM kv WHERE id = %d", id);
        } else {
            snprintf(q, sizeof(q),
                     "START TRANSACTION; INSERT IGNORE INTO kv VALUES (%d, 1, 'txn', 1), (%d, 2, "
                     "NULL, 2); UPDATE kv SET v = v + 1 WHERE id BETWEEN %d AND %d; DELETE FROM "
                     "kv WHERE id = %d; COMMIT",
                     id, 1 + (id % w->key_space), id, id + 20,
                     1 + (int)(rand_r(&seed) % (unsigned)w->key_space));
        }
        if (!tu_sql_try(m, q)) {
            if (!w->tolerate_disconnects) {
                snprintf(w->error, sizeof(w->error), "%s: %s", q, mysql_error(m));
                break;
            }
            mysql_close(m);
            m = NULL;
            tu_sleep_ms(100);
        }
    }
    if (m != NULL) {
        mysql_close(m);
    }
    atomic_store(&w->done, 1);
    return NULL;
}

static void workload_start(pthread_t *th, struct workload *w)
{
    snprintf(w->user, sizeof(w->user), "%s", tu_rig("MS_RIG_ADMIN_USER"));
    snprintf(w->password, sizeof(w->password), "%s", tu_rig("MS_RIG_ADMIN_PASSWORD"));
    w->port = (unsigned)atoi(tu_rig("MS_RIG_MARIADB_PORT"));
    assert_int_equal(pthread_create(th, NULL, workload_main, w), 0);
}

static int env_int(const char *name, int dflt)
{
    const char *v = getenv(name);
    return v != NULL && *v != '\0' ? atoi(v) : dflt;
}

static void sigkill_loop_converges(void **state)
{
    bool full = getenv("MS_FULL_FAULTS") != NULL;
    struct workload w = {.ops = full ? 20000 : 3000, .key_space = full ? 5000 : 800};
    int kills = full ? 30 : 6;
    MYSQL *m = tu_mysql_admin(NULL);
    mongoc_client_t *c = tu_mongo(&tu_java);
    struct tu_daemon d;
    const char *db = "itp_crash";
    pthread_t th;
    unsigned seed = (unsigned)env_int("MS_SEED", 777);

    (void)state;
    tu_drop_db(c, db);
    tu_sql(m, KV_SCHEMA);
    tu_daemon_init(&d, &tu_java, "itp", db);
    tu_daemon_env(&d, "SYNC_TABLES=kv");
    tu_daemon_env(&d, "SYNC_BATCH_SIZE=200");
    tu_daemon_start(&d);
    tu_daemon_wait_ready(&d);
    workload_start(&th, &w);
    for (int k = 0; k < kills && !atomic_load(&w.done); k++) {
        tu_sleep_ms(200 + (int)(rand_r(&seed) % 1200));
        assert_int_equal(tu_daemon_signal(&d, SIGKILL), 128 + SIGKILL);
        tu_daemon_start(&d);
        tu_daemon_wait_ready(&d);
    }
    pthread_join(th, NULL);
    if (w.error[0] != '\0') {
        tu_daemon_fail(&d, w.error);
    }
    tu_wait_converged(&d, m, c, db, "kv", KV_QUERY("itp.kv"), kv_fields, 4);
    tu_end_run(&d, c, m);
}

static void mariadb_restart_converges(void **state)
{
    struct workload w = {.ops = 2000, .key_space = 500, .tolerate_disconnects = true};
    MYSQL *m;
    mongoc_client_t *c = tu_mongo(&tu_java);
    struct tu_daemon d;
    const char *db = "itp_restart";
    pthread_t th;
    char *log;

    (void)state;
    tu_drop_db(c, db);
    m = tu_mysql_admin(NULL);
    tu_sql(m, KV_SCHEMA);
    mysql_close(m);
    tu_daemon_init(&d, &tu_java, "itp", db);
    tu_daemon_env(&d, "SYNC_TABLES=kv");
    tu_daemon_start(&d);
    tu_daemon_wait_ready(&d);
    workload_start(&th, &w);
    tu_sleep_ms(800);
    assert_true(tu_rig_ctl("restart", "mariadb"));
    pthread_join(th, NULL);
    m = tu_mysql_admin(NULL);
    tu_wait_converged(&d, m, c, db, "kv", KV_QUERY("itp.kv"), kv_fields, 4);
    log = tu_slurp(d.log, NULL);
    if (log == NULL || strstr(log, "resuming after the last whole transaction") == NULL) {
        tu_daemon_fail(&d, "no reconnect in the log: the restart did not interrupt the stream");
    }
    free(log);
    tu_end_run(&d, c, m);
}

/* ---- partial row images ------------------------------------------------------------ */

static void minimal_image_sets_only_its_columns(void **state)
{
    MYSQL *m = tu_mysql_admin(NULL);
    mongoc_client_t *c = tu_mongo(&tu_java);
    struct tu_daemon d;
    const char *db = "itp_minimal";

    (void)state;
    tu_drop_db(c, db);
    tu_sql(m, KV_SCHEMA);
    tu_sql(m, "INSERT INTO itp.kv VALUES (1, 10, 'a', 100), (2, 20, 'b', 200), (3, 30, 'c', 300)");
    tu_daemon_init(&d, &tu_java, "itp", db);
    tu_daemon_env(&d, "SYNC_TABLES=kv");
    tu_daemon_start(&d);
    tu_daemon_wait_ready(&d);
    /* rows that exist before the daemon started are not in MongoDB (no snapshot): a MINIMAL
     * update must then not invent a document from the key alone... it creates {_id, changed
     * columns}; so first let full-image inserts bring the rows over */
    tu_sql(m, "DELETE FROM itp.kv; INSERT INTO itp.kv VALUES (1, 10, 'a', 100), (2, 20, 'b', 200), "
              "(3, 30, 'c', 300)");
    tu_wait_converged(&d, m, c, db, "kv", KV_QUERY("itp.kv"), kv_fields, 4);
    tu_sql(m,
           "SET SESSION binlog_row_image = 'MINIMAL'; UPDATE itp.kv SET n = 11 WHERE id = 1; "
           "UPDATE itp.kv SET s = 'bb', v = 201 WHERE id = 2; UPDATE itp.kv SET id = 30 WHERE "
           "id = 3; DELETE FROM itp.kv WHERE id = 2; INSERT INTO itp.kv VALUES (5, 50, 'e', 500)");
    tu_sql(m, "SET SESSION binlog_row_image = 'FULL'");
    tu_wait_converged(&d, m, c, db, "kv", KV_QUERY("itp.kv"), kv_fields, 4);
    tu_end_run(&d, c, m);
}

/* ---- poison rows, large transactions, FerretDB --------------------------------------- */

static void poison_row_is_dead_lettered(void **state)
{
    MYSQL *m = tu_mysql_admin(NULL);
    mongoc_client_t *c = tu_mongo(&tu_java);
    struct tu_daemon d;
    const char *db = "itp_poison";
    bson_t filter = BSON_INITIALIZER, dl;
    bson_iter_t it;

    (void)state;
    tu_drop_db(c, db);
    tu_sql(m, KV_SCHEMA "; CREATE TABLE itp.bad (id INT PRIMARY "
                        "KEY, `$where` INT)");
    tu_daemon_init(&d, &tu_java, "itp", db);
    tu_daemon_start(&d);
    tu_daemon_wait_ready(&d);
    tu_sql(m, "INSERT INTO itp.kv VALUES (1, 1, 'before', 1)");
    tu_sql(m, "INSERT INTO itp.bad VALUES (7, 1)");
    tu_sql(m, "INSERT INTO itp.kv VALUES (2, 2, 'after', 2)");
    tu_wait_converged(&d, m, c, db, "kv", KV_QUERY("itp.kv"), kv_fields, 4);
    /* the refused row is in the dead letters with its position; the stream went on */
    BSON_APPEND_UTF8(&filter, "collection", "bad");
    if (!tu_find_one(c, db, "_mysync_dead_letters", &filter, &dl)) {
        tu_daemon_fail(&d, "no dead letter for the refused row");
    }
    assert_true(bson_iter_init_find(&it, &dl, "source"));
    assert_string_equal(bson_iter_utf8(&it, NULL), "itp.bad");
    assert_true(bson_iter_init_find(&it, &dl, "position"));
    assert_non_null(strchr(bson_iter_utf8(&it, NULL), ':'));
    bson_destroy(&dl);
    bson_destroy(&filter);
    tu_end_run(&d, c, m);
}

static void large_transaction_arrives_whole(void **state)
{
    int rows = getenv("MS_FULL_FAULTS") != NULL ? 1000000 : 30000;
    MYSQL *m = tu_mysql_admin(NULL);
    mongoc_client_t *c = tu_mongo(&tu_java);
    struct tu_daemon d;
    const char *db = "itp_large";

    (void)state;
    tu_drop_db(c, db);
    tu_sql(m, KV_SCHEMA);
    tu_daemon_init(&d, &tu_java, "itp", db);
    tu_daemon_env(&d, "SYNC_BATCH_SIZE=1000");
    tu_daemon_start(&d);
    tu_daemon_wait_ready(&d);
    /* one transaction of many rows */
    tu_sqlf(
        m,
        "SET SESSION max_recursive_iterations = %d; INSERT INTO itp.kv WITH RECURSIVE seq(i) AS "
        "(SELECT 1 UNION ALL SELECT i + 1 FROM seq WHERE i < %d) SELECT i, i %% 97, CONCAT('r', "
        "i), i * 3 FROM seq",
        rows + 10, rows);
    tu_wait_converged(&d, m, c, db, "kv", KV_QUERY("itp.kv"), kv_fields, 4);
    tu_end_run(&d, c, m);
}

static void ferretdb_with_decimals_as_strings(void **state)
{
    MYSQL *m = tu_mysql_admin(NULL);
    mongoc_client_t *c = tu_mongo(&tu_ferret);
    struct tu_daemon d;
    const char *db = "itp_ferret";
    char *log;
    bson_t filter = BSON_INITIALIZER, doc;
    bson_iter_t it;

    (void)state;
    tu_drop_db(c, db);
    tu_sql(m, "DROP DATABASE IF EXISTS itp; CREATE DATABASE itp; CREATE TABLE itp.kv (id INT "
              "PRIMARY KEY, n INT, s VARCHAR(40), v BIGINT, price DECIMAL(10,2))");
    /* refused with the default decimal128, before anything is written */
    tu_daemon_init(&d, &tu_ferret, "itp", db);
    assert_int_equal(tu_daemon_run_to_exit(&d, &log), 78);
    assert_non_null(strstr(log, "SYNC_DECIMAL_AS=string"));
    free(log);
    tu_daemon_cleanup(&d);
    tu_daemon_init(&d, &tu_ferret, "itp", db);
    tu_daemon_env(&d, "SYNC_DECIMAL_AS=string");
    tu_daemon_start(&d);
    tu_daemon_wait_ready(&d);
    tu_sql(m, "INSERT INTO itp.kv VALUES (1, 1, 'x', 10, 19.99), (2, 2, NULL, 20, -0.50); UPDATE "
              "itp.kv SET n = 5 WHERE id = 2; INSERT INTO itp.kv VALUES (3, 3, 'y', 30, 0); DELETE "
              "FROM itp.kv WHERE id = 3");
    tu_wait_converged(&d, m, c, db, "kv", KV_QUERY("itp.kv"), kv_fields, 4);
    BSON_APPEND_INT32(&filter, "_id", 2);
    assert_true(tu_find_one(c, db, "kv", &filter, &doc));
    assert_true(bson_iter_init_find(&it, &doc, "price"));
    assert_int_equal(bson_iter_type(&it), BSON_TYPE_UTF8);
    assert_string_equal(bson_iter_utf8(&it, NULL), "-0.50");
    bson_destroy(&doc);
    bson_destroy(&filter);
    tu_end_run(&d, c, m);
}

/* ---- refusals ------------------------------------------------------------------------ */

static void refuses_bad_setups_before_writing(void **state)
{
    MYSQL *m = tu_mysql_admin(NULL);
    mongoc_client_t *c = tu_mongo(&tu_java);
    struct tu_daemon d;
    const char *db = "itp_refuse";
    char *log;
    size_t n;

    (void)state;
    tu_drop_db(c, db);
    tu_sql(m, "DROP DATABASE IF EXISTS itp; CREATE DATABASE itp; CREATE TABLE itp.nokey (a INT, b "
              "VARCHAR(10)); CREATE TABLE itp.kv (id INT PRIMARY KEY, n INT, s VARCHAR(40), v "
              "BIGINT)");

    /* a table without a primary key */
    tu_daemon_init(&d, &tu_java, "itp", db);
    tu_daemon_env(&d, "SYNC_TABLES=kv,nokey");
    assert_int_equal(tu_daemon_run_to_exit(&d, &log), 78);
    assert_non_null(strstr(log, "itp.nokey has no primary key"));
    assert_non_null(strstr(log, "SYNC_KEYS"));
    free(log);
    tu_daemon_cleanup(&d);

    /* a table that does not exist */
    tu_daemon_init(&d, &tu_java, "itp", db);
    tu_daemon_env(&d, "SYNC_TABLES=kv,missing");
    assert_int_equal(tu_daemon_run_to_exit(&d, &log), 78);
    assert_non_null(strstr(log, "itp.missing does not exist"));
    free(log);
    tu_daemon_cleanup(&d);

    /* nothing was written by either */
    free(tu_dump_collection(c, db, "_mysync_checkpoints", &n));
    assert_int_equal(n, 0);

    /* a checkpoint whose binlog file is gone: exit 69, name the recovery, touch nothing */
    {
        mongoc_collection_t *col = mongoc_client_get_collection(c, db, "_mysync_checkpoints");
        bson_t cp = BSON_INITIALIZER;
        bson_error_t err;
        char *before, *after;
        BSON_APPEND_UTF8(&cp, "_id", "binlog");
        BSON_APPEND_UTF8(&cp, "file", "purged-bin.000001");
        BSON_APPEND_INT64(&cp, "pos", 4);
        BSON_APPEND_UTF8(&cp, "gtid", "");
        if (!mongoc_collection_insert_one(col, &cp, NULL, NULL, &err)) {
            fail_msg("insert: %s", err.message);
        }
        bson_destroy(&cp);
        mongoc_collection_destroy(col);
        before = tu_dump_collection(c, db, "_mysync_checkpoints", NULL);
        tu_daemon_init(&d, &tu_java, "itp", db);
        tu_daemon_env(&d, "SYNC_TABLES=kv");
        assert_int_equal(tu_daemon_run_to_exit(&d, &log), 69);
        assert_non_null(strstr(log, "no longer on the source"));
        assert_non_null(strstr(log, "SYNC_SNAPSHOT=when_needed"));
        free(log);
        tu_daemon_cleanup(&d);
        after = tu_dump_collection(c, db, "_mysync_checkpoints", NULL);
        assert_string_equal(before, after);
        free(before);
        free(after);
    }

    /* with a configured key the key-less table replicates */
    tu_drop_db(c, db);
    tu_daemon_init(&d, &tu_java, "itp", db);
    tu_daemon_env(&d, "SYNC_TABLES=nokey");
    tu_daemon_env(&d, "SYNC_KEYS=nokey:a+b");
    tu_daemon_start(&d);
    tu_daemon_wait_ready(&d);
    tu_sql(m, "INSERT INTO itp.nokey VALUES (1, 'x'), (1, 'y'); UPDATE itp.nokey SET b = 'z' WHERE "
              "b = 'y'");
    {
        const char *want = "{ \"_id\" : { \"a\" : 1, \"b\" : \"x\" }, \"a\" : 1, \"b\" : \"x\" }\n"
                           "{ \"_id\" : { \"a\" : 1, \"b\" : \"z\" }, \"a\" : 1, \"b\" : \"z\" }\n";
        int64_t until = tu_now_ms() + TU_CONVERGE_LIMIT_S * 1000;
        char *got = NULL;
        for (;;) {
            free(got);
            got = tu_dump_collection(c, db, "nokey", NULL);
            if (strcmp(got, want) == 0) {
                break;
            }
            if (tu_now_ms() > until) {
                tu_daemon_fail(&d, got);
            }
            tu_sleep_ms(100);
        }
        free(got);
    }
    tu_end_run(&d, c, m);
}

/* MongoDB goes away mid-stream (stopped cleanly: mongo-java-server loses its last second of
 * writes on SIGKILL, see the README) and comes back: the writes wait and retry, nothing is
 * skipped. */
static void mongo_restart_converges(void **state)
{
    struct workload w = {.ops = 1500, .key_space = 400};
    MYSQL *m = tu_mysql_admin(NULL);
    mongoc_client_t *c;
    struct tu_daemon d;
    const char *db = "itp_mongo_restart";
    pthread_t th;

    (void)state;
    c = tu_mongo(&tu_java);
    tu_drop_db(c, db);
    mongoc_client_destroy(c);
    tu_sql(m, KV_SCHEMA);
    tu_daemon_init(&d, &tu_java, "itp", db);
    tu_daemon_env(&d, "SYNC_TABLES=kv");
    tu_daemon_start(&d);
    tu_daemon_wait_ready(&d);
    workload_start(&th, &w);
    tu_sleep_ms(500);
    assert_true(tu_rig_ctl("stop-service", "mongo"));
    tu_sleep_ms(2000); /* the workload goes on; the daemon's writes fail and wait */
    assert_true(tu_rig_ctl("start-service", "mongo"));
    pthread_join(th, NULL);
    if (w.error[0] != '\0') {
        tu_daemon_fail(&d, w.error);
    }
    c = tu_mongo(&tu_java);
    tu_wait_converged(&d, m, c, db, "kv", KV_QUERY("itp.kv"), kv_fields, 4);
    tu_end_run(&d, c, m);
}

/* SIGTERM while MongoDB is away: the daemon gives the last batch its grace period, then exits
 * 75 without moving the checkpoint; the next run writes what the stopped one could not. */
static void stop_while_mongo_down_exits_75_and_replays(void **state)
{
    MYSQL *m = tu_mysql_admin(NULL);
    mongoc_client_t *c;
    struct tu_daemon d;
    const char *db = "itp_stop_down";

    (void)state;
    c = tu_mongo(&tu_java);
    tu_drop_db(c, db);
    mongoc_client_destroy(c);
    tu_sql(m, KV_SCHEMA);
    tu_daemon_init(&d, &tu_java, "itp", db);
    tu_daemon_env(&d, "SYNC_TABLES=kv");
    tu_daemon_start(&d);
    tu_daemon_wait_ready(&d);
    tu_sql(m, "INSERT INTO itp.kv VALUES (1, 1, 'first', 1)");
    c = tu_mongo(&tu_java);
    tu_wait_converged(&d, m, c, db, "kv", KV_QUERY("itp.kv"), kv_fields, 4);
    mongoc_client_destroy(c);
    assert_true(tu_rig_ctl("stop-service", "mongo"));
    tu_sql(m, "INSERT INTO itp.kv VALUES (2, 2, 'while down', 2)");
    tu_sleep_ms(500);
    assert_int_equal(tu_daemon_signal(&d, SIGTERM), 75);
    assert_true(tu_rig_ctl("start-service", "mongo"));
    c = tu_mongo(&tu_java);
    tu_daemon_start(&d);
    tu_wait_converged(&d, m, c, db, "kv", KV_QUERY("itp.kv"), kv_fields, 4);
    tu_end_run(&d, c, m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(every_type_arrives),
        cmocka_unit_test(sigterm_checkpoints_and_resumes),
        cmocka_unit_test(refuses_bad_setups_before_writing),
        cmocka_unit_test(minimal_image_sets_only_its_columns),
        cmocka_unit_test(poison_row_is_dead_lettered),
        cmocka_unit_test(ferretdb_with_decimals_as_strings),
        cmocka_unit_test(large_transaction_arrives_whole),
        cmocka_unit_test(sigkill_loop_converges),
        cmocka_unit_test(mariadb_restart_converges),
        cmocka_unit_test(mongo_restart_converges),
        cmocka_unit_test(stop_while_mongo_down_exits_75_and_replays),
    };

    mongoc_init();
    tu_rig("MS_RIG_MARIADB_PORT"); /* start the rig before the first test */
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    mongoc_cleanup();
    return tu_finish(rc);
}

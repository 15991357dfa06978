/* Timestamp polling against the rig's MariaDB without binlog and mongo-java-server:
 * - SYNC_MODE=auto chooses polling and says why (binlog off);
 * - the first run copies 1 500 rows that share one updated_at, in chunks of 200 (keyset on
 *   (updated_at, id): rows sharing a timestamp are never skipped);
 * - inserts, updates, a soft delete (deleted_at set) and a hard delete (found by the
 *   reconciliation pass) arrive;
 * - a row committed with an updated_at older than the newest one seen (inside the look-back
 *   window) arrives;
 * - after SIGTERM and changes made meanwhile, a restart goes on from the tracker saved in
 *   _mysync_checkpoints instead of copying the table again, and converges.
 * Every comparison is of every row: SQL text against the documents' fields. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <mongoc/mongoc.h>
#include <mysql.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"
#include "tu_daemon.h"

#define DB    "itpoll"
#define QUERY "SELECT id, v, IFNULL(n, 'NULL') FROM " DB ".t WHERE deleted_at IS NULL ORDER BY id"
static const char *const fields[] = {"_id", "v", "n"};

/* Replaces NAME=... in the daemon's environment. */
static void set_env(struct tu_daemon *d, const char *name, const char *value)
{
    size_t k = strlen(name);

    for (size_t i = 0; i < d->nenv; i++) {
        if (strncmp(d->env[i], name, k) == 0 && d->env[i][k] == '=') {
            snprintf(d->env[i], sizeof(d->env[i]), "%s=%s", name, value);
            return;
        }
    }
    tu_daemon_env(d, "%s=%s", name, value);
}

/* The table's tracker documents (with state "done" only if done_only). */
static int64_t tracker_count(mongoc_client_t *c, bool done_only)
{
    mongoc_collection_t *col = mongoc_client_get_collection(c, DB, "_mysync_checkpoints");
    bson_t *q = done_only
                    ? BCON_NEW("_id", BCON_UTF8("binlog:poll:" DB ".t"), "state", BCON_UTF8("done"))
                    : BCON_NEW("_id", BCON_UTF8("binlog:poll:" DB ".t"));
    int64_t n = mongoc_collection_count_documents(col, q, NULL, NULL, NULL, NULL);

    bson_destroy(q);
    mongoc_collection_destroy(col);
    return n;
}

/* One tracker for the table, seen in state "done" between two runs: a run starts every
 * second and marks it "running" meanwhile, so the done state is waited for, not sampled. */
static void expect_tracker_done(struct tu_daemon *d, mongoc_client_t *c)
{
    int64_t deadline = tu_now_ms() + 60000;

    assert_int_equal(tracker_count(c, false), 1);
    while (tracker_count(c, true) != 1) {
        if (tu_now_ms() > deadline) {
            tu_daemon_fail(d, "the tracker of " DB ".t was never seen in state done");
        }
        tu_sleep_ms(20);
    }
}

static void poll_converges(void **state)
{
    MYSQL *m = tu_mysql_admin("MS_RIG_MARIADB_NOBINLOG_PORT");
    mongoc_client_t *c = tu_mongo(&tu_java);
    struct tu_daemon d;
    char *log;

    (void)state;
    tu_drop_db(c, DB);
    tu_sql(m, "DROP DATABASE IF EXISTS " DB "; CREATE DATABASE " DB);
    tu_sql(m, "CREATE TABLE " DB ".t (id INT PRIMARY KEY, v VARCHAR(40), n INT NULL, updated_at "
              "DATETIME(6) NOT NULL, deleted_at DATETIME NULL, KEY (updated_at, id))");
    tu_sql(m, "INSERT INTO " DB ".t SELECT seq, CONCAT('v', seq), IF(seq % 7 = 0, NULL, seq), "
              "'2024-01-01 00:00:00', NULL FROM " DB ".seq_1_to_1500");

    tu_daemon_init(&d, &tu_java, DB, DB);
    set_env(&d, "MYSQL_PORT", tu_rig("MS_RIG_MARIADB_NOBINLOG_PORT"));
    set_env(&d, "SYNC_MODE", "auto");
    tu_daemon_env(&d, "SYNC_INTERVAL_SECONDS=1");
    tu_daemon_env(&d, "SYNC_SNAPSHOT_CHUNK_SIZE=200");
    tu_daemon_env(&d, "SYNC_RECONCILE_INTERVAL=1s");
    tu_daemon_env(&d, "SYNC_POLL_LOOKBACK=5s");
    tu_daemon_start(&d);
    tu_wait_converged(&d, m, c, DB, "t", QUERY, fields, 3);
    log = tu_slurp(d.log, NULL);
    if (strstr(log, "binlog replication is not possible") == NULL ||
        strstr(log, "polling every 1 s (SYNC_MODE=auto: binlog replication is not possible") ==
            NULL) {
        free(log);
        tu_daemon_fail(&d, "SYNC_MODE=auto did not say it polls and why");
    }
    free(log);

    /* inserts, updates (the change column moves), a soft delete, a hard delete */
    tu_sql(m, "INSERT INTO " DB ".t VALUES (2001, 'new', 1, NOW(6), NULL), (2002, 'new2', NULL, "
              "NOW(6), NULL)");
    tu_sql(m,
           "UPDATE " DB ".t SET v = 'updated', n = -5, updated_at = NOW(6) WHERE id IN (5, 700)");
    tu_sql(m, "UPDATE " DB ".t SET deleted_at = NOW(), updated_at = NOW(6) WHERE id = 6");
    tu_sql(m, "DELETE FROM " DB ".t WHERE id = 8");
    tu_wait_converged(&d, m, c, DB, "t", QUERY, fields, 3);

    /* a write that committed late: its updated_at is older than the newest already seen, but
     * inside the look-back window */
    tu_sql(m, "UPDATE " DB ".t SET v = 'newest', updated_at = NOW(6) WHERE id = 10");
    tu_wait_converged(&d, m, c, DB, "t", QUERY, fields, 3);
    tu_sql(m, "INSERT INTO " DB ".t VALUES (3000, 'late', 3, NOW(6) - INTERVAL 2 SECOND, NULL)");
    tu_wait_converged(&d, m, c, DB, "t", QUERY, fields, 3);
    expect_tracker_done(&d, c);

    /* stop, change rows meanwhile, start: the tracker, not a new copy */
    assert_int_equal(tu_daemon_signal(&d, SIGTERM), 0);
    tu_sql(m, "UPDATE " DB ".t SET v = 'while-stopped', updated_at = NOW(6) WHERE id = 11");
    tu_sql(m, "INSERT INTO " DB ".t VALUES (3001, 'while-stopped', 1, NOW(6), NULL)");
    tu_daemon_start(&d);
    tu_wait_converged(&d, m, c, DB, "t", QUERY, fields, 3);
    log = tu_slurp(d.log, NULL);
    if (strstr(log + d.log_start, "poll " DB ".t: done") == NULL ||
        strstr(log + d.log_start, "from=\"the start\"") != NULL) {
        free(log);
        tu_daemon_fail(&d, "the restart did not go on from the tracker");
    }
    free(log);
    tu_end_run(&d, c, m);
}

/* A table without the change column: a clear refusal naming the option (exit 78). */
static void missing_change_column_refused(void **state)
{
    MYSQL *m = tu_mysql_admin("MS_RIG_MARIADB_NOBINLOG_PORT");
    struct tu_daemon d;
    char *log = NULL;
    int rc;

    (void)state;
    tu_sql(m, "DROP DATABASE IF EXISTS " DB "_bad; CREATE DATABASE " DB "_bad");
    tu_sql(m, "CREATE TABLE " DB "_bad.k (id INT PRIMARY KEY, v INT)");
    tu_daemon_init(&d, &tu_java, DB "_bad", DB "_bad");
    set_env(&d, "MYSQL_PORT", tu_rig("MS_RIG_MARIADB_NOBINLOG_PORT"));
    set_env(&d, "SYNC_MODE", "poll");
    rc = tu_daemon_run_to_exit(&d, &log);
    if (rc != 78 || strstr(log, "has no column updated_at") == NULL ||
        strstr(log, "tables.k.change_column") == NULL) {
        fail_msg("exit %d, want 78 naming the option\n%s", rc, log);
    }
    free(log);
    tu_daemon_cleanup(&d);
    mysql_close(m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(poll_converges),
        cmocka_unit_test(missing_change_column_refused),
    };
    int rc;

    mongoc_init();
    tu_rig("MS_RIG_MARIADB_NOBINLOG_PORT");
    rc = cmocka_run_group_tests(tests, NULL, NULL);
    mongoc_cleanup();
    return tu_finish(rc);
}

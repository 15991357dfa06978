/* The binlog reader against the rig's real MariaDB, through the mysync binary:
 * binlog-dump --from-server decodes every column type as the golden file says, follows
 * live changes, stops on SIGTERM, and refuses unusable sources with a message that says
 * what to do. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <fcntl.h>
#include <mysql.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "testutil.h"

/* env for the mysync binary: the rig's MariaDB as the least-privileged mysync user */
static void mysync_env(const char **env, char bufs[][128], const char *port_key, const char *user,
                       const char *password)
{
    snprintf(bufs[0], 128, "MYSQL_PORT=%s", tu_rig(port_key));
    snprintf(bufs[1], 128, "MYSQL_USER=%s", user != NULL ? user : tu_rig("MS_RIG_MYSYNC_USER"));
    snprintf(bufs[2], 128, "MYSQL_PASSWORD=%s",
             password != NULL ? password : tu_rig("MS_RIG_MYSYNC_PASSWORD"));
    env[0] = bufs[0];
    env[1] = bufs[1];
    env[2] = bufs[2];
    env[3] = NULL;
}

/* Compares JSON lines from the "db" key on (file, pos, gtid and ts differ per capture). */
static void assert_same_changes(const char *got, const char *want)
{
    char *g = strdup(got), *w = strdup(want), *gs = NULL, *ws = NULL;
    char *gl = strtok_r(g, "\n", &gs), *wl = strtok_r(w, "\n", &ws);
    size_t n = 0;

    while (gl != NULL && wl != NULL) {
        const char *a = strstr(gl, "\"db\""), *b = strstr(wl, "\"db\"");
        if (a == NULL || b == NULL || strcmp(a, b) != 0) {
            fail_msg("change %zu differs:\n got: %s\nwant: %s", n, gl, wl);
        }
        n++;
        gl = strtok_r(NULL, "\n", &gs);
        wl = strtok_r(NULL, "\n", &ws);
    }
    if (gl != NULL || wl != NULL) {
        fail_msg("change count differs after %zu changes (extra: %s)", n, gl != NULL ? gl : wl);
    }
    free(g);
    free(w);
}

/* The golden differs from the file-mode one only in the MariaDB JSON column "js": over the
 * network information_schema tells that it is JSON (LONGTEXT + json_valid), so it arrives as
 * a document; a file alone cannot say so and keeps the text. */
/* The whole file; the test fails when it cannot be read. */
static char *slurp_ok(const char *path)
{
    char *s = tu_slurp(path, NULL);

    if (s == NULL) {
        fail_msg("cannot read %s", path);
    }
    return s;
}

static void every_type_over_the_network(void **state)
{
    MYSQL *m = tu_mysql_admin(NULL);
    char file[256], start[300], bufs[3][128], golden[1024];
    const char *env[4];
    unsigned long long pos;
    char *workload, *want;
    struct tu_proc p;

    (void)state;
    snprintf(golden, sizeof(golden), "%s/tests/data/binlogs/types.sql", getenv("MS_SOURCE_ROOT"));
    workload = slurp_ok(golden);
    tu_sql(m, "FLUSH BINARY LOGS");
    tu_master_status(m, file, sizeof(file), &pos);
    tu_sql(m, workload);
    snprintf(start, sizeof(start), "%s:4", file);
    mysync_env(env, bufs, "MS_RIG_MARIADB_PORT", NULL, NULL);
    const char *argv[] = {getenv("MS_MYSYNC"), "binlog-dump", "--from-server", "--start", start,
                          "--no-follow",       NULL};
    assert_true(tu_run(argv, env, 60, &p));
    if (p.status != 0) {
        fail_msg("binlog-dump exit %d: %s", p.status, p.err);
    }
    snprintf(golden, sizeof(golden),
             "%s/tests/data/binlogs/expected/mariadb-10.11.19-types.server.jsonl",
             getenv("MS_SOURCE_ROOT"));
    want = slurp_ok(golden);
    assert_same_changes(p.out, want);
    free(want);
    free(workload);
    tu_proc_cleanup(&p);
    mysql_close(m);
}

/* Starts `mysync binlog-dump --from-server` (following) with stdout into fd. */
static pid_t spawn_follow(const char **env, int fd)
{
    pid_t pid = fork();

    if (pid == 0) {
        char *const argv[] = {getenv("MS_MYSYNC"), "binlog-dump", "--from-server", NULL};
        char *const envp[] = {(char *)env[0], (char *)env[1], (char *)env[2], NULL};
        dup2(fd, 1);
        execve(argv[0], argv, envp);
        _exit(127);
    }
    return pid;
}

static void follows_live_changes_and_stops_on_sigterm(void **state)
{
    MYSQL *m = tu_mysql_admin(NULL);
    char bufs[3][128], out[] = "/tmp/mysync-follow-XXXXXX";
    const char *env[4];
    int fd = mkstemp(out);
    pid_t pid;
    int status;
    char *got = NULL;
    time_t deadline;

    (void)state;
    tu_sql(m, "CREATE DATABASE IF NOT EXISTS it_follow");
    tu_sql(m, "CREATE TABLE IF NOT EXISTS it_follow.t (id INT PRIMARY KEY, v VARCHAR(20))");
    mysync_env(env, bufs, "MS_RIG_MARIADB_PORT", NULL, NULL);
    pid = spawn_follow(env, fd);
    sleep(1); /* the dump starts at the current position */
    tu_sql(m, "INSERT INTO it_follow.t VALUES (1, 'live one')");
    deadline = time(NULL) + 20;
    while (time(NULL) < deadline) {
        free(got);
        got = slurp_ok(out);
        if (strstr(got, "live one") != NULL) {
            break;
        }
        usleep(50000);
    }
    assert_non_null(strstr(got, "\"after\" : { \"id\" : 1, \"v\" : \"live one\" }"));
    kill(pid, SIGTERM);
    /* stops within a heartbeat period (1 s) or two */
    deadline = time(NULL) + 10;
    while (waitpid(pid, &status, WNOHANG) == 0) {
        if (time(NULL) > deadline) {
            kill(pid, SIGKILL);
            fail_msg("binlog-dump did not stop after SIGTERM");
        }
        usleep(50000);
    }
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
    free(got);
    close(fd);
    unlink(out);
    tu_sql(m, "DROP DATABASE it_follow");
    mysql_close(m);
}

static void expect_refusal(const char *port_key, const char *user, const char *password,
                           const char *start, const char *message)
{
    char bufs[3][128];
    const char *env[4];
    struct tu_proc p;
    const char *argv[] = {getenv("MS_MYSYNC"),
                          "binlog-dump",
                          "--from-server",
                          "--no-follow",
                          start != NULL ? "--start" : NULL,
                          start,
                          NULL};

    mysync_env(env, bufs, port_key, user, password);
    assert_true(tu_run(argv, env, 60, &p));
    if (p.status != 69 || strstr(p.err, message) == NULL) {
        fail_msg("expected exit 69 and \"%s\", got exit %d: %s", message, p.status, p.err);
    }
    tu_proc_cleanup(&p);
}

static void refuses_binlog_off(void **state)
{
    (void)state;
    expect_refusal("MS_RIG_MARIADB_NOBINLOG_PORT", NULL, NULL, NULL,
                   "binary logging is off on the source (log_bin=OFF)");
}

static void refuses_statement_format(void **state)
{
    MYSQL *m = tu_mysql_admin(NULL);

    (void)state;
    tu_sql(m, "SET GLOBAL binlog_format = 'STATEMENT'");
    expect_refusal("MS_RIG_MARIADB_PORT", NULL, NULL, NULL,
                   "binlog_format is STATEMENT on the source, ROW is needed");
    tu_sql(m, "SET GLOBAL binlog_format = 'ROW'");
    mysql_close(m);
}

static void refuses_purged_position(void **state)
{
    (void)state;
    expect_refusal("MS_RIG_MARIADB_PORT", NULL, NULL, "mysql-bin.999999:4",
                   "is no longer on the server (purged)");
    expect_refusal("MS_RIG_MARIADB_PORT", NULL, NULL, "mysql-bin.999999:4", "mysync --full");
}

static void refuses_missing_privilege(void **state)
{
    MYSQL *m = tu_mysql_admin(NULL);

    (void)state;
    tu_sql(m, "CREATE USER IF NOT EXISTS 'noreplica'@'127.0.0.1' IDENTIFIED BY 'pw-noreplica'");
    tu_sql(m, "GRANT SELECT, BINLOG MONITOR ON *.* TO 'noreplica'@'127.0.0.1'");
    expect_refusal("MS_RIG_MARIADB_PORT", "noreplica", "pw-noreplica", NULL,
                   "missing privilege: GRANT REPLICATION SLAVE");
    tu_sql(m, "DROP USER 'noreplica'@'127.0.0.1'");
    mysql_close(m);
}

/* binlog-dump --from-server of what was written since file:pos, to the end; exit 0. */
static void dump_since(const char *file, unsigned long long pos, struct tu_proc *p)
{
    char start[300], bufs[3][128];
    const char *env[4];

    snprintf(start, sizeof(start), "%s:%llu", file, pos);
    mysync_env(env, bufs, "MS_RIG_MARIADB_PORT", NULL, NULL);
    const char *argv[] = {getenv("MS_MYSYNC"), "binlog-dump", "--from-server", "--start", start,
                          "--no-follow",       NULL};
    assert_true(tu_run(argv, env, 60, p));
    assert_int_equal(p->status, 0);
}

/* MariaDB's default binlog_row_metadata=NO_LOG carries no names, signedness or charsets:
 * information_schema completes them, and detects MariaDB JSON (LONGTEXT + json_valid). */
static void no_metadata_completed_from_information_schema(void **state)
{
    MYSQL *m = tu_mysql_admin(NULL);
    char file[256];
    unsigned long long pos;
    struct tu_proc p;

    (void)state;
    tu_sql(m, "SET GLOBAL binlog_row_metadata = 'NO_LOG'");
    tu_sql(m, "DROP DATABASE IF EXISTS it_sc");
    tu_sql(m, "CREATE DATABASE it_sc");
    tu_sql(m, "CREATE TABLE it_sc.t (a INT UNSIGNED, b VARCHAR(5), big BIGINT UNSIGNED, "
              "e ENUM('x','y''q'), s SET('p','q'), js JSON, l1 VARCHAR(10) CHARACTER SET latin1, "
              "bl BLOB, PRIMARY KEY (b, a))");
    tu_master_status(m, file, sizeof(file), &pos);
    tu_sql(m, "INSERT INTO it_sc.t VALUES (4294967295, 'k', 18446744073709551615, 'y''q', 'p,q', "
              "'{\"n\": [1, {\"x\": null}]}', 'd\xc3\xa9j\xc3\xa0 \xe2\x82\xac', 0x00ff)");
    tu_sql(m, "SET GLOBAL binlog_row_metadata = 'FULL'");
    dump_since(file, pos, &p);
    if (strstr(p.out,
               "\"after\" : { \"a\" : 4294967295, \"b\" : \"k\", \"big\" : { "
               "\"$numberDecimal\" : \"18446744073709551615\" }, \"e\" : \"y'q\", "
               "\"s\" : [ \"p\", \"q\" ], \"js\" : { \"n\" : [ 1, { \"x\" : null } ] "
               "}, \"l1\" : \"d\xc3\xa9j\xc3\xa0 \xe2\x82\xac\", \"bl\" : { "
               "\"$binary\" : { \"base64\" : \"AP8=\", \"subType\" : \"00\" } } }") == NULL) {
        fail_msg("unexpected decoding:\n%s\n%s", p.out, p.err);
    }
    tu_proc_cleanup(&p);
    tu_sql(m, "DROP DATABASE it_sc");
    mysql_close(m);
}

/* ENUM, SET and text columns in UCS-2, UTF-16, UTF-16LE and UTF-32: with FULL metadata the
 * TABLE_MAP carries the labels in the column's character set, where they hold NUL bytes (they
 * decoded as "" before); with NO_LOG information_schema gives them. Both decode to UTF-8. */
static void wide_charset_labels(void **state)
{
    static const char *const modes[] = {"FULL", "NO_LOG"};
    MYSQL *m = tu_mysql_admin(NULL);

    (void)state;
    for (size_t k = 0; k < 2; k++) {
        char file[256];
        unsigned long long pos;
        struct tu_proc p;
        static const char *const want[] = {
            "\"after\" : { \"id\" : 1, \"a\" : \"yy\", \"b\" : [ \"q\", \"\xc3\x9f\" ], \"c\" : "
            "\"\xe2\x82\xac\", \"d\" : \"mn\", \"v\" : \"Gr\xc3\xbc\xc3\x9f \xf0\x9f\x98\x80\" }",
            "\"after\" : { \"id\" : 2, \"a\" : \"\xc3\xbc\", \"b\" : [ \"p\" ], \"c\" : \"k\", "
            "\"d\" : \"\xe2\x82\xac\", \"v\" : \"x\" }",
            "\"after\" : { \"id\" : 3, \"a\" : \"x\", \"b\" : [  ], \"c\" : null, \"d\" : "
            "\"mn\", \"v\" : \"\" }",
        };

        char set_mode[80];
        snprintf(set_mode, sizeof(set_mode), "SET GLOBAL binlog_row_metadata = '%s'", modes[k]);
        tu_sql(m, set_mode);
        tu_sql(m, "DROP DATABASE IF EXISTS it_wide");
        tu_sql(m, "CREATE DATABASE it_wide");
        tu_sql(m, "CREATE TABLE it_wide.t (id INT PRIMARY KEY, "
                  "a ENUM('x','yy','\xc3\xbc') CHARACTER SET ucs2, "
                  "b SET('p','q','\xc3\x9f') CHARACTER SET utf16, "
                  "c ENUM('k','\xe2\x82\xac') CHARACTER SET utf32, "
                  "d ENUM('mn','\xe2\x82\xac') CHARACTER SET utf16le, "
                  "v VARCHAR(20) CHARACTER SET utf16)");
        tu_master_status(m, file, sizeof(file), &pos);
        tu_sql(m, "INSERT INTO it_wide.t VALUES (1, 'yy', 'q,\xc3\x9f', '\xe2\x82\xac', 'mn', "
                  "'Gr\xc3\xbc\xc3\x9f \xf0\x9f\x98\x80'), (2, '\xc3\xbc', 'p', 'k', "
                  "'\xe2\x82\xac', 'x'), (3, 'x', '', NULL, 'mn', '')");
        tu_sql(m, "SET GLOBAL binlog_row_metadata = 'FULL'");
        dump_since(file, pos, &p);
        for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
            if (strstr(p.out, want[i]) == NULL) {
                fail_msg("binlog_row_metadata=%s: no\n%s\nin\n%s\n%s", modes[k], want[i], p.out,
                         p.err);
            }
        }
        tu_proc_cleanup(&p);
    }
    tu_sql(m, "DROP DATABASE it_wide");
    mysql_close(m);
}

static size_t count_of(const char *hay, const char *needle)
{
    size_t n = 0;

    for (const char *p = strstr(hay, needle); p != NULL; p = strstr(p + 1, needle)) {
        n++;
    }
    return n;
}

/* MariaDB restarted mid-stream: the dump reconnects with backoff, resumes from the start of
 * the interrupted transaction and prints every change exactly once. */
static void follow_survives_mariadb_restart(void **state)
{
    MYSQL *m = tu_mysql_admin(NULL);
    char bufs[3][128], out[] = "/tmp/mysync-restart-XXXXXX";
    const char *env[4];
    int fd = mkstemp(out), status;
    pid_t pid;
    char *got = NULL;
    time_t deadline;

    (void)state;
    tu_sql(m, "CREATE DATABASE IF NOT EXISTS it_restart");
    tu_sql(m, "CREATE TABLE IF NOT EXISTS it_restart.t (id INT PRIMARY KEY, v VARCHAR(20))");
    mysync_env(env, bufs, "MS_RIG_MARIADB_PORT", NULL, NULL);
    pid = spawn_follow(env, fd);
    sleep(1);
    tu_sql(m, "INSERT INTO it_restart.t VALUES (1, 'before restart'), (2, 'also before')");
    mysql_close(m);
    assert_true(tu_rig_ctl("restart", "mariadb"));
    m = tu_mysql_admin(NULL);
    tu_sql(m, "INSERT INTO it_restart.t VALUES (3, 'after restart')");
    deadline = time(NULL) + 60;
    while (time(NULL) < deadline) {
        free(got);
        got = slurp_ok(out);
        if (strstr(got, "after restart") != NULL) {
            break;
        }
        usleep(100000);
    }
    kill(pid, SIGTERM);
    waitpid(pid, &status, 0);
    assert_int_equal(count_of(got, "\"before restart\""), 1);
    assert_int_equal(count_of(got, "\"also before\""), 1);
    if (count_of(got, "\"after restart\"") != 1) {
        fail_msg("the change after the restart did not arrive exactly once:\n%s", got);
    }
    free(got);
    close(fd);
    unlink(out);
    tu_sql(m, "DROP DATABASE it_restart");
    mysql_close(m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(every_type_over_the_network),
        cmocka_unit_test(follows_live_changes_and_stops_on_sigterm),
        cmocka_unit_test(refuses_binlog_off),
        cmocka_unit_test(refuses_statement_format),
        cmocka_unit_test(refuses_purged_position),
        cmocka_unit_test(refuses_missing_privilege),
        cmocka_unit_test(no_metadata_completed_from_information_schema),
        cmocka_unit_test(wide_charset_labels),
        cmocka_unit_test(follow_survives_mariadb_restart),
    };
    return tu_finish(cmocka_run_group_tests_name("binlog", tests, NULL, NULL));
}

/* The daemon's lifecycle against the rig (MariaDB, mongo-java-server): SIGHUP reloads the
 * configuration file (log level and HTTP token take effect at once, the log names what changed
 * and never a secret, an option that needs a restart is reported and keeps its value, a file
 * that does not load changes nothing), SIGTERM during a write load exits 0 within the bound,
 * and, when built with libsystemd, the sd_notify messages (READY, STATUS, WATCHDOG, STOPPING)
 * arrive on a NOTIFY_SOCKET the test owns, as systemd would receive them.
 *
 * Waits poll until the expected state appears or a generous limit passes (liveness bounds);
 * the stop bound is the daemon's documented one (10 s for MongoDB to take the last batch)
 * plus slack for a loaded machine. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <curl/curl.h>
#include <mongoc/mongoc.h>
#include <mysql.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "mysync_build.h"
#include "testutil.h"
#include "tu_daemon.h"

#define MYSQL_DB   "itl"
#define OLD_TOKEN  "itl-old-token-a41f9c"
#define NEW_TOKEN  "itl-new-token-77e02b"
#define STOP_BOUND 20 /* seconds: SIGTERM to exit, 10 s daemon bound + slack */

/* ---- HTTP ------------------------------------------------------------------------------- */

/* One request; the status code (0: no response). body: malloc'd answer, or NULL to drop it. */
static long http(int port, const char *method, const char *path, const char *token, char **body)
{
    CURL *c = curl_easy_init();
    struct curl_slist *hdrs = NULL;
    char url[256], hdr[128], *sink = NULL;
    long code = 0;

    snprintf(url, sizeof(url), "http://127.0.0.1:%d%s", port, path);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 30L);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, tu_append_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, body != NULL ? body : &sink);
    if (strcmp(method, "GET") != 0) {
        curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, "");
    }
    if (token != NULL) {
        snprintf(hdr, sizeof(hdr), "Authorization: Bearer %s", token);
        hdrs = curl_slist_append(hdrs, hdr);
        curl_easy_setopt(c, CURLOPT_HTTPHEADER, hdrs);
    }
    if (curl_easy_perform(c) == CURLE_OK) {
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &code);
    }
    curl_slist_free_all(hdrs);
    curl_easy_cleanup(c);
    free(sink);
    return code;
}

/* ---- the notify socket (what systemd listens on) ---------------------------------------- */

struct notify {
    int fd;
    char path[108];
    pthread_t thread;
    pthread_mutex_t mu;
    char *got; /* every message received, each followed by "\n--\n" */
    size_t len;
};

static struct notify nt = {.fd = -1};

/* Drains the socket all the time: a full datagram queue would block the daemon's sd_notify. */
static void *notify_reader(void *arg)
{
    char buf[4096];

    (void)arg;
    for (;;) {
        ssize_t n = recv(nt.fd, buf, sizeof(buf) - 1, 0);
        if (n < 0) {
            return NULL; /* closed by the teardown */
        }
        pthread_mutex_lock(&nt.mu);
        nt.got = realloc(nt.got, nt.len + (size_t)n + 5);
        memcpy(nt.got + nt.len, buf, (size_t)n);
        memcpy(nt.got + nt.len + n, "\n--\n", 5);
        nt.len += (size_t)n + 4;
        pthread_mutex_unlock(&nt.mu);
    }
}

static void notify_open(void)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};

    snprintf(nt.path, sizeof(nt.path), "/tmp/itl-notify-%d", (int)getpid());
    unlink(nt.path);
    snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", nt.path);
    nt.fd = socket(AF_UNIX, SOCK_DGRAM, 0);
    assert_true(nt.fd >= 0);
    assert_int_equal(bind(nt.fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    pthread_mutex_init(&nt.mu, NULL);
    assert_int_equal(pthread_create(&nt.thread, NULL, notify_reader, NULL), 0);
}

/* Waits until a message containing needle arrived. */
static bool notify_wait(const char *needle, int limit_s)
{
    int64_t until = tu_now_ms() + (int64_t)limit_s * 1000;

    while (tu_now_ms() < until) {
        bool found;
        pthread_mutex_lock(&nt.mu);
        found = nt.got != NULL && strstr(nt.got, needle) != NULL;
        pthread_mutex_unlock(&nt.mu);
        if (found) {
            return true;
        }
        tu_sleep_ms(50);
    }
    return false;
}

static size_t notify_count(const char *needle)
{
    size_t n = 0;

    pthread_mutex_lock(&nt.mu);
    for (const char *p = nt.got; p != NULL && (p = strstr(p, needle)) != NULL; p++) {
        n++;
    }
    pthread_mutex_unlock(&nt.mu);
    return n;
}

/* ---- the daemon ------------------------------------------------------------------------- */

static struct tu_bg daemon_bg;
static char config_path[128];
static char mongo_db[32];
static int port;
static MYSQL *my;
static mongoc_client_t *mongo;

static void write_config(const char *text)
{
    FILE *f = fopen(config_path, "w");

    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static void write_config_with(const char *level, const char *token, int interval_s, int batch_size)
{
    char text[512];

    snprintf(text, sizeof(text),
             "log:\n  level: %s\nhttp:\n  token: \"%s\"\nsync:\n  interval_seconds: %d\n"
             "  batch_size: %d\n",
             level, token, interval_s, batch_size);
    write_config(text);
}

static char *daemon_log(void)
{
    char *log = tu_slurp(daemon_bg.log, NULL);

    assert_non_null(log);
    return log;
}

static void daemon_fail(const char *what)
{
    static char text[32768]; /* fail_msg does not return: nothing may be left to free */
    char *log = tu_slurp(daemon_bg.log, NULL);

    snprintf(text, sizeof(text), "%s", log != NULL ? log : "(none)");
    free(log);
    fail_msg("%s\n--- mysync log ---\n%s", what, text);
}

static size_t count(const char *hay, const char *needle)
{
    size_t n = 0;

    for (const char *p = hay; (p = strstr(p, needle)) != NULL; p++) {
        n++;
    }
    return n;
}

/* Waits until the log holds needle at least n times. */
static void wait_log_count(const char *needle, size_t n, int limit_s)
{
    int64_t until = tu_now_ms() + (int64_t)limit_s * 1000;

    for (;;) {
        char *log = daemon_log();
        size_t k = count(log, needle);
        free(log);
        if (k >= n) {
            return;
        }
        if (tu_now_ms() > until || !tu_bg_alive(&daemon_bg)) {
            char what[256];
            snprintf(what, sizeof(what), "the log does not show \"%s\" %zu times", needle, n);
            daemon_fail(what);
        }
        tu_sleep_ms(50);
    }
}

/* SIGHUP, then the reload's outcome line (the n-th of its kind). */
static void sighup(const char *outcome, size_t n)
{
    assert_int_equal(kill(daemon_bg.pid, SIGHUP), 0);
    wait_log_count(outcome, n, 30);
}

static void assert_no_secret_in_log(void)
{
    char *log = daemon_log();

    if (strstr(log, OLD_TOKEN) != NULL || strstr(log, NEW_TOKEN) != NULL) {
        daemon_fail("a token appears in the log");
    }
    free(log);
}

static int64_t count_docs(void)
{
    mongoc_collection_t *coll = mongoc_client_get_collection(mongo, mongo_db, "kv");
    bson_t filter = BSON_INITIALIZER;
    int64_t n = mongoc_collection_count_documents(coll, &filter, NULL, NULL, NULL, NULL);

    bson_destroy(&filter);
    mongoc_collection_destroy(coll);
    return n;
}

static void wait_docs(int64_t want, int limit_s)
{
    int64_t until = tu_now_ms() + (int64_t)limit_s * 1000;

    while (count_docs() != want) {
        if (tu_now_ms() > until) {
            daemon_fail("the documents did not arrive");
        }
        tu_sleep_ms(100);
    }
}

static int group_setup(void **state)
{
    const char *argv[5];
    const char *envp[16];
    char env[16][256];
    size_t ne = 0;
    char *log, *at;

    (void)state;
    curl_global_init(CURL_GLOBAL_DEFAULT);
    mongoc_init();
    my = tu_mysql_admin(NULL);
    tu_sql(my, "DROP DATABASE IF EXISTS " MYSQL_DB "; CREATE DATABASE " MYSQL_DB
               "; CREATE TABLE " MYSQL_DB ".kv (id INT PRIMARY KEY, n INT)");
    mongo = tu_mongo(&tu_java);
    snprintf(mongo_db, sizeof(mongo_db), "itl_%d", (int)getpid());
    snprintf(config_path, sizeof(config_path), "/tmp/itl-config-%d.yaml", (int)getpid());
    write_config_with("info", OLD_TOKEN, 3600, 1000);
    notify_open();

#define ENV(...) (snprintf(env[ne], sizeof(env[0]), __VA_ARGS__), envp[ne] = env[ne], ne++)
    ENV("MYSQL_HOST=127.0.0.1");
    ENV("MYSQL_PORT=%s", tu_rig("MS_RIG_MARIADB_PORT"));
    ENV("MYSQL_USER=%s", tu_rig("MS_RIG_MYSYNC_USER"));
    ENV("MYSQL_PASSWORD=%s", tu_rig("MS_RIG_MYSYNC_PASSWORD"));
    ENV("MYSQL_DATABASE=" MYSQL_DB);
    ENV("MONGODB_URI=%s/?serverSelectionTimeoutMS=5000", tu_rig("MS_RIG_MONGO_URI"));
    ENV("MONGODB_DATABASE=%s", mongo_db);
    ENV("SYNC_MODE=binlog");
    ENV("SYNC_FLUSH_MS=50");
    ENV("HTTP_LISTEN=127.0.0.1:0");
    ENV("NOTIFY_SOCKET=%s", nt.path);
    ENV("WATCHDOG_USEC=1000000"); /* a keep-alive every 0.5 s */
    envp[ne] = NULL;
#undef ENV
    argv[0] = getenv("MS_MYSYNC");
    argv[1] = "--config";
    argv[2] = config_path;
    argv[3] = NULL;
    assert_true(tu_bg_start(&daemon_bg, argv, envp));
    log = tu_bg_wait_log(&daemon_bg, "replicating into", 60);
    if (log == NULL) {
        daemon_fail("mysync did not start replicating");
    }
    at = strstr(log, "http listening");
    at = at != NULL ? strstr(at, " port=") : NULL;
    port = at != NULL ? (int)strtol(at + 6, NULL, 10) : 0;
    free(log);
    if (port <= 0) {
        daemon_fail("no \"http listening ... port=N\" line");
    }
    return 0;
}

static int group_teardown(void **state)
{
    mongoc_database_t *d = mongoc_client_get_database(mongo, mongo_db);

    (void)state;
    tu_bg_cleanup(&daemon_bg);
    mongoc_database_drop(d, NULL);
    mongoc_database_destroy(d);
    mongoc_client_destroy(mongo);
    mysql_close(my);
    shutdown(nt.fd, SHUT_RDWR);
    close(nt.fd);
    pthread_join(nt.thread, NULL);
    unlink(nt.path);
    unlink(config_path);
    free(nt.got);
    mongoc_cleanup();
    curl_global_cleanup();
    return 0;
}

/* ---- the cases -------------------------------------------------------------------------- */

static void systemd_ready_status_watchdog(void **state)
{
    (void)state;
    if (!MYSYNC_HAVE_SYSTEMD) {
        /* the build has no libsystemd: nothing is sent (checked), the rest works the same */
        tu_sleep_ms(1500);
        assert_int_equal(notify_count("READY=1"), 0);
        skip();
    }
    if (!notify_wait("READY=1", 30)) {
        daemon_fail("no READY=1 on NOTIFY_SOCKET");
    }
    if (!notify_wait("STATUS=replicating: lag ", 30)) {
        daemon_fail("no STATUS=replicating line on NOTIFY_SOCKET");
    }
    size_t dogs = notify_count("WATCHDOG=1");
    tu_sleep_ms(2000);
    if (notify_count("WATCHDOG=1") < dogs + 2) {
        daemon_fail("WATCHDOG=1 is not sent every WATCHDOG_USEC/2");
    }
}

static void sighup_reloads_level_and_token(void **state)
{
    char *log, *body = NULL;

    (void)state;
    /* before: the old token works, a wrong one is refused, info level (no request lines) */
    assert_int_equal(http(port, "POST", "/sync/pause", OLD_TOKEN, NULL), 200);
    assert_int_equal(http(port, "POST", "/sync/resume", OLD_TOKEN, NULL), 200);
    assert_int_equal(http(port, "POST", "/sync/resume", NEW_TOKEN, NULL), 403);
    log = daemon_log();
    assert_null(strstr(log, "path=/sync/resume"));
    free(log);

    write_config_with("debug", NEW_TOKEN, 90, 1000);
    sighup("configuration reloaded from", 1);

    assert_int_equal(http(port, "POST", "/sync/resume", OLD_TOKEN, NULL), 403);
    assert_int_equal(http(port, "POST", "/sync/resume", NEW_TOKEN, NULL), 200);
    assert_int_equal(http(port, "GET", "/sync/status", NULL, &body), 200);
    if (strstr(body, "\"sync_interval_seconds\" : 90") == NULL) {
        fail_msg("the reloaded interval is not in /sync/status: %s", body);
    }
    free(body);
    /* the debug level is live: the request just made is logged */
    wait_log_count("path=/sync/resume", 1, 10);

    log = daemon_log();
    if (strstr(log, "reload: log.level changed") == NULL ||
        strstr(log, "reload: http.token changed") == NULL ||
        strstr(log, "reload: sync.interval_seconds changed") == NULL ||
        strstr(log, "from=info to=debug") == NULL) {
        fail_msg("the reload does not name what changed:\n%s", log);
    }
    free(log);
    assert_no_secret_in_log();
}

static void sighup_reports_restart_needed(void **state)
{
    char *log;

    (void)state;
    write_config_with("debug", NEW_TOKEN, 90, 500);
    sighup("configuration reloaded from", 2);
    log = daemon_log();
    if (strstr(log, "reload: sync.batch_size changed, but it needs a restart") == NULL) {
        fail_msg("a change that needs a restart is not reported:\n%s", log);
    }
    free(log);
    /* nothing else changed: the token stays */
    assert_int_equal(http(port, "POST", "/sync/resume", NEW_TOKEN, NULL), 200);
}

static void sighup_with_a_bad_file_keeps_the_running_config(void **state)
{
    char *log;

    (void)state;
    write_config("log:\n  level: [unclosed\nhttp:\n  token: \"" OLD_TOKEN "\"\n");
    sighup("does not load; the running configuration stays", 1);
    write_config("log:\n  level: loud\n");
    sighup("does not load; the running configuration stays", 2);
    log = daemon_log();
    if (strstr(log, "log.level") == NULL) {
        fail_msg("the refused value is not named:\n%s", log);
    }
    free(log);
    assert_true(tu_bg_alive(&daemon_bg));
    assert_int_equal(http(port, "POST", "/sync/resume", OLD_TOKEN, NULL), 403);
    assert_int_equal(http(port, "POST", "/sync/resume", NEW_TOKEN, NULL), 200);
    /* replication goes on */
    tu_sql(my, "INSERT INTO " MYSQL_DB ".kv VALUES (1, 1), (2, 2)");
    wait_docs(2, 60);
    assert_no_secret_in_log();
}

/* The dashboard and the alerts use only metrics (and labels) this running daemon exports. */
static void dashboards_and_alerts_use_live_metrics(void **state)
{
    char *body = NULL, *path, root[512];
    struct tu_proc p;

    (void)state;
    assert_int_equal(http(port, "GET", "/metrics", NULL, &body), 200);
    path = tu_write_temp(body);
    snprintf(root, sizeof(root), "%s", getenv("MS_SOURCE_ROOT"));
    const char *check[64];
    char script[600];
    snprintf(script, sizeof(script), "%s/tests/support/check_deploy.py", root);
    check[0] = getenv("MS_PYTHON");
    check[1] = script;
    check[2] = "--root";
    check[3] = root;
    check[4] = "--exported";
    check[5] = path;
    check[6] = "--only";
    check[7] = "metrics";
    check[8] = NULL;
    assert_true(tu_run(check, NULL, 60, &p));
    if (p.status != 0) {
        fail_msg("check_deploy.py on the live /metrics:\n%s%s", p.out, p.err);
    }
    tu_proc_cleanup(&p);
    unlink(path);
    free(path);
    free(body);
}

static void sigterm_under_load_exits_0_within_the_bound(void **state)
{
    char q[64];
    int64_t t0;
    int rc;

    (void)state;
    /* one large transaction and then a stream of small ones, still arriving at the stop */
    tu_sql(my, "INSERT INTO " MYSQL_DB ".kv SELECT seq, seq FROM " MYSQL_DB ".seq_3_to_20000");
    for (int i = 0; i < 50; i++) {
        snprintf(q, sizeof(q), "UPDATE " MYSQL_DB ".kv SET n = n + 1 WHERE id = %d", 3 + i);
        tu_sql(my, q);
    }
    t0 = tu_now_ms();
    rc = tu_bg_stop(&daemon_bg, SIGTERM, STOP_BOUND);
    print_message("SIGTERM to exit: %" PRId64 " ms\n", tu_now_ms() - t0);
    if (rc != 0) {
        daemon_fail("SIGTERM did not end in exit 0 within the bound");
    }
    wait_log_count("stopping: writing what was read", 1, 1);
    if (MYSYNC_HAVE_SYSTEMD && !notify_wait("STOPPING=1", 5)) {
        daemon_fail("no STOPPING=1 on NOTIFY_SOCKET");
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(systemd_ready_status_watchdog),
        cmocka_unit_test(sighup_reloads_level_and_token),
        cmocka_unit_test(sighup_reports_restart_needed),
        cmocka_unit_test(sighup_with_a_bad_file_keeps_the_running_config),
        cmocka_unit_test(dashboards_and_alerts_use_live_metrics),
        cmocka_unit_test(sigterm_under_load_exits_0_within_the_bound),
    };
    return tu_finish(cmocka_run_group_tests_name("lifecycle", tests, group_setup, group_teardown));
}

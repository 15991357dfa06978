/* The fault suite (issue 9): the daemon against the rig's MariaDB (binlog ROW) and
 * mongo-java-server while things go wrong, each scenario ending with a row-by-row comparison of
 * MariaDB and MongoDB by `mysync verify` (0 missing, 0 different, 0 extra, exit 0):
 *
 *   sigkill_at_random_points   SIGKILL of the daemon at random points of a mixed workload
 *                              (inserts, updates, deletes, key changes, transactions of 1 to
 *                              10 000 rows), many times
 *   mongo_outage               the MongoDB-wire server stopped mid-stream and started again: 503
 *                              from /sync/health all along, the queue and RSS bounded, the stream
 *                              back soon after the server (measured and printed)
 *   mariadb_restart_rotations  MariaDB restarted mid-stream, binlogs rotated (FLUSH BINARY LOGS)
 *                              many times under the workload
 *   purged_checkpoint          the checkpoint's binlog purged: refused with exit 69 and the
 *                              documented message; SYNC_SNAPSHOT=when_needed copies and converges
 *   one_huge_transaction       one transaction of (full size) 1 M rows: RSS bounded, the
 *                              checkpoint moves only at its end
 *   poison_rows                a document over 16 MiB, invalid UTF-8 (a latin1 column read with a
 *                              utf8mb4 label), rows a strategy refuses: dead letters, the stream
 *                              goes on; the runbook's replay repairs what can be repaired
 *   ddl_mid_stream             ADD/DROP/RENAME COLUMN, MODIFY, RENAME TABLE, TRUNCATE under load
 *
 * Reduced sizes by default (CI); MS_FAULTS_FULL=1 runs the full sizes. Random points come from
 * one seed, printed at the start (MS_FAULTS_SEED=N replays a run). Each scenario prints one line
 * "faults: <scenario> iterations=.. faults=.. rows_compared=.. missing=.. different=.. extra=..".
 * Waits poll for a condition with generous deadlines (liveness bounds); times are printed, never
 * asserted. The workload is bench_workload (MS_BENCH_WORKLOAD, built by meson). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <curl/curl.h>
#include <inttypes.h>
#include <mongoc/mongoc.h>
#include <mysql.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "testutil.h"
#include "tu_daemon.h"

#if defined(__SANITIZE_ADDRESS__)
#define UNDER_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define UNDER_ASAN 1
#endif
#endif
#ifndef UNDER_ASAN
#define UNDER_ASAN 0
#endif

#define BATCH      500 /* SYNC_BATCH_SIZE of every scenario */
#define DEADLINE_S 600 /* liveness bound of a convergence (sanitizers, a loaded machine) */

static bool full;
static uint64_t seed, rng;

static int64_t size(int64_t reduced, int64_t full_size)
{
    return full ? full_size : reduced;
}

static uint64_t rnd(void)
{
    rng ^= rng >> 12;
    rng ^= rng << 25;
    rng ^= rng >> 27;
    return rng * 2685821657736338717ULL;
}

/* Each scenario draws from its own sequence (seed and name): one replays alone the same. */
static void scenario_seed(const char *name)
{
    rng = seed * 0x9E3779B97F4A7C15ULL + 0x2545F4914F6CDD1DULL;
    for (const char *c = name; *c != '\0'; c++) {
        rng = (rng ^ (uint64_t)(unsigned char)*c) * 0x100000001B3ULL;
    }
    rng |= 1;
}

static int64_t rnd_in(int64_t lo, int64_t hi)
{
    return lo + (int64_t)(rnd() % (uint64_t)(hi - lo + 1));
}

/* ---- what a failed scenario leaves behind is put back (per-test teardown) --------------- */

static struct tu_bg live_workload; /* a bench_workload phase still running (pid > 0) */
static bool mongo_stopped, metadata_changed;

static int teardown(void **state)
{
    (void)state;
    if (live_workload.pid > 0) {
        tu_bg_cleanup(&live_workload);
    }
    live_workload.pid = -1;
    if (mongo_stopped) {
        tu_rig_ctl("start-service", "mongo");
        mongo_stopped = false;
    }
    if (metadata_changed) {
        MYSQL *m = tu_mysql_admin(NULL);
        tu_sql_try(m, "SET GLOBAL binlog_row_metadata = FULL");
        mysql_close(m);
        metadata_changed = false;
    }
    return 0;
}

/* ---- the control plane ----------------------------------------------------------------- */

/* The port of the daemon's current run ("http listening ... port=N"), waited for. */
static int http_port(struct tu_daemon *d)
{
    int64_t until = tu_now_ms() + 60000;

    for (;;) {
        size_t len = 0;
        char *log = tu_slurp(d->log, &len), *at = NULL;
        int port = 0;
        if (log != NULL && len >= d->log_start) {
            at = strstr(log + d->log_start, "http listening");
            at = at != NULL ? strstr(at, " port=") : NULL;
        }
        if (at != NULL) {
            port = atoi(at + 6);
        }
        free(log);
        if (port > 0) {
            return port;
        }
        if (tu_now_ms() > until || !tu_daemon_alive(d)) {
            tu_daemon_fail(d, "no \"http listening ... port=N\" line");
        }
        tu_sleep_ms(50);
    }
}

/* One request: the status code (0: no answer); the JSON body in *doc (empty when not JSON). */
static long http(int port, const char *method, const char *path, bson_t *doc)
{
    CURL *c = curl_easy_init();
    char url[256], *body = NULL;
    long code = 0;

    snprintf(url, sizeof(url), "http://127.0.0.1:%d%s", port, path);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 30L);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, tu_append_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &body);
    if (strcmp(method, "GET") != 0) {
        curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, "");
    }
    if (curl_easy_perform(c) == CURLE_OK) {
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &code);
    }
    curl_easy_cleanup(c);
    if (doc != NULL) {
        bson_error_t err;
        if (body == NULL || !bson_init_from_json(doc, body, -1, &err)) {
            bson_init(doc);
        }
    }
    free(body);
    return code;
}

/* A number at a dotted path of a JSON document (-1 when absent). */
static double jnum(const bson_t *doc, const char *path)
{
    bson_iter_t it, d;

    if (!bson_iter_init(&it, doc) || !bson_iter_find_descendant(&it, path, &d) ||
        !BSON_ITER_HOLDS_NUMBER(&d)) {
        return -1;
    }
    return bson_iter_as_double(&d);
}

static const char *jstr(const bson_t *doc, const char *path)
{
    bson_iter_t it, d;

    if (!bson_iter_init(&it, doc) || !bson_iter_find_descendant(&it, path, &d) ||
        !BSON_ITER_HOLDS_UTF8(&d)) {
        return "";
    }
    return bson_iter_utf8(&d, NULL);
}

/* The checkpoint /sync/status reports, as "file:pos". */
static void status_checkpoint(const bson_t *st, char *out, size_t n)
{
    snprintf(out, n, "%s:%.0f", jstr(st, "binlog.file"), jnum(st, "binlog.position"));
}

/* Resident memory of a process in KiB (0 when it is gone). */
static int64_t rss_kib(pid_t pid)
{
    char path[64], line[256];
    int64_t kib = 0;
    FILE *f;

    snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
    f = fopen(path, "r");
    while (f != NULL && fgets(line, sizeof(line), f) != NULL) {
        if (strncmp(line, "VmRSS:", 6) == 0) {
            kib = strtoll(line + 6, NULL, 10);
        }
    }
    if (f != NULL) {
        fclose(f);
    }
    return kib;
}

/* ---- the workload (bench_workload) ------------------------------------------------------ */

/* bench_workload phases: each runs `args` plus --changes (what is left, up to chunk) and a seed
 * of its own, in the background; a finished phase is counted and the next started until
 * `target` changes are made. tolerate: a phase that fails (MariaDB restarted under it) counts
 * what it reported nothing and is not an error. */
struct wl {
    struct tu_bg bg;
    bool running, tolerate;
    char args[600];
    int64_t target, chunk, done, keychanges, txns;
    int64_t next_start_ms; /* after a failed phase: not before (its server is away) */
    int phases, failed;
};

static void wl_argv(const char *args, const char *extra, char *buf, size_t n, const char **argv,
                    size_t max)
{
    size_t k = 0;
    char *save = NULL;

    snprintf(buf, n, "--host 127.0.0.1 --port %s --user %s --password %s %s %s",
             tu_rig("MS_RIG_MARIADB_PORT"), tu_rig("MS_RIG_ADMIN_USER"),
             tu_rig("MS_RIG_ADMIN_PASSWORD"), args, extra);
    argv[k++] = getenv("MS_BENCH_WORKLOAD");
    for (char *t = strtok_r(buf, " ", &save); t != NULL && k + 1 < max;
         t = strtok_r(NULL, " ", &save)) {
        argv[k++] = t;
    }
    argv[k] = NULL;
}

static const char *const wl_env[] = {"ASAN_OPTIONS=detect_leaks=0", NULL};

/* Runs bench_workload to its end (for set-ups): its output line, malloc'd. */
static char *wl_run(const char *args)
{
    char buf[1200];
    const char *argv[64];
    struct tu_proc p;
    char *out;

    wl_argv(args, "", buf, sizeof(buf), argv, 64);
    if (argv[0] == NULL) {
        fail_msg("MS_BENCH_WORKLOAD is not set (meson sets it)");
    }
    assert_true(tu_run(argv, wl_env, 1800, &p));
    if (p.status != 0) {
        fail_msg("bench_workload %s: exit %d\n%s%s", args, p.status, p.out, p.err);
    }
    out = strdup(p.out);
    tu_proc_cleanup(&p);
    return out;
}

static int64_t kv_int(const char *s, const char *key)
{
    char k[64];
    const char *at;

    snprintf(k, sizeof(k), "%s=", key);
    at = s != NULL ? strstr(s, k) : NULL;
    return at != NULL ? strtoll(at + strlen(k), NULL, 10) : -1;
}

static void wl_init(struct wl *w, const char *args, int64_t target, int64_t chunk)
{
    memset(w, 0, sizeof(*w));
    w->bg.pid = -1;
    snprintf(w->args, sizeof(w->args), "%s", args);
    w->target = target;
    w->chunk = chunk;
}

static void wl_start(struct wl *w)
{
    char buf[1200], extra[80];
    const char *argv[64];
    int64_t n = w->target - w->done < w->chunk ? w->target - w->done : w->chunk;

    snprintf(extra, sizeof(extra), "--changes %" PRId64 " --seed %" PRIu64, n, rnd() % 1000000000);
    wl_argv(w->args, extra, buf, sizeof(buf), argv, 64);
    assert_true(tu_bg_start(&w->bg, argv, wl_env));
    w->running = true;
    live_workload = w->bg; /* the teardown's copy: killed if the scenario fails */
    w->phases++;
}

/* Reaps a finished phase and starts the next while changes are left. True while a phase runs. */
static bool wl_step(struct wl *w)
{
    if (w->running && !tu_bg_alive(&w->bg)) {
        char *out = tu_slurp(w->bg.log, NULL);
        live_workload.pid = -1; /* reaped */
        w->running = false;
        tu_bg_cleanup(&w->bg);
        if (w->bg.status != 0 && !w->tolerate) {
            char msg[2048];
            snprintf(msg, sizeof(msg), "bench_workload exited %d: %.1500s", w->bg.status,
                     out != NULL ? out : "");
            free(out);
            fail_msg("%s", msg);
        }
        if (w->bg.status == 0) {
            w->done += kv_int(out, "changes");
            w->keychanges += kv_int(out, "keychanges");
            w->txns += kv_int(out, "txns");
        } else {
            w->failed++;
            w->next_start_ms = tu_now_ms() + 500;
        }
        free(out);
    }
    if (!w->running && w->done < w->target && tu_now_ms() >= w->next_start_ms) {
        wl_start(w);
    }
    return w->running;
}

/* Waits for the target (and the last phase). */
static void wl_finish(struct wl *w)
{
    int64_t until = tu_now_ms() + (int64_t)DEADLINE_S * 3000;

    while (wl_step(w) || w->done < w->target) {
        if (tu_now_ms() > until) {
            fail_msg("the workload did not finish");
        }
        tu_sleep_ms(50);
    }
}

/* ---- set-up and the final comparison ----------------------------------------------------- */

/* Fails with what and keeps the daemon's whole log (cmocka cuts long messages short). */
static void daemon_fail(struct tu_daemon *d, const char *what)
{
    char keep[128];
    char *log = tu_slurp(d->log, NULL);
    FILE *f;

    snprintf(keep, sizeof(keep), "/tmp/itf-failed-%d-%lld.log", (int)getpid(),
             (long long)tu_now_ms());
    f = fopen(keep, "w");
    if (f != NULL && log != NULL) {
        fputs(log, f);
    }
    if (f != NULL) {
        fclose(f);
    }
    free(log);
    printf("faults: the daemon's log is in %s\n", keep);
    tu_daemon_fail(d, what);
}

/* A new database on both sides; mysync may keep its snapshot watermarks in it (README
 * "Snapshots beside the stream"). */
static void fresh(MYSQL *m, mongoc_client_t *c, const char *db)
{
    tu_sqlf(m,
            "DROP DATABASE IF EXISTS %s; CREATE DATABASE %s; GRANT CREATE, INSERT, DELETE ON "
            "%s.mysync_signal TO 'mysync'@'127.0.0.1'",
            db, db, db);
    tu_drop_db(c, db);
}

static void daemon_init(struct tu_daemon *d, const char *db)
{
    tu_daemon_init(d, &tu_java, db, db);
    tu_daemon_env(d, "SYNC_BATCH_SIZE=%d", BATCH);
}

struct totals {
    int64_t compared, missing, different, extra, refused;
};

/* Waits for the pipeline to be caught up (status lag 0 and nothing queued), then runs verify
 * on the tables until it matches or the deadline passes; the last reports are added to *t and
 * must show 0 missing, different and extra with exit 0. */
static void converge(struct tu_daemon *d, const char *const *tables, struct totals *t)
{
    int64_t until = tu_now_ms() + (int64_t)DEADLINE_S * 1000;
    int port = http_port(d), rc = -1, runs = 0;
    const char *args[16];
    size_t n = 0;
    bson_t reports;
    char *log = NULL;

    for (size_t i = 0; tables[i] != NULL && n + 3 < 16; i++) {
        args[n++] = "--table";
        args[n++] = tables[i];
    }
    args[n] = NULL;
    for (;;) {
        bson_t st;
        long code = http(port, "GET", "/sync/status", &st);
        bool idle = code == 200 && jnum(&st, "lag_seconds") == 0 && jnum(&st, "queue_depth") == 0;
        bson_destroy(&st);
        if (!tu_daemon_alive(d)) {
            d->pid = -1;
            daemon_fail(d, "mysync exited while converging");
        }
        if (idle) {
            free(log);
            rc = tu_verify(d, args, &reports, &log);
            runs++;
            if (rc == 0) {
                break;
            }
            bson_destroy(&reports);
        }
        if (tu_now_ms() > until) {
            char msg[8192];
            snprintf(msg, sizeof(msg),
                     "not converged after %d s (%d verify runs); last verify (exit %d):\n%.6000s",
                     DEADLINE_S, runs, rc, log != NULL ? log : "(not run: never idle)");
            free(log);
            daemon_fail(d, msg);
        }
        tu_sleep_ms(runs > 0 ? 1000 : 200);
    }
    for (size_t i = 0; tables[i] != NULL; i++) {
        bson_iter_t it;
        bool found = false;
        /* reports are keyed by "db.table" */
        if (bson_iter_init(&it, &reports)) {
            while (bson_iter_next(&it)) {
                const char *k = bson_iter_key(&it), *kd = strchr(k, '.');
                if (strcmp(k, tables[i]) == 0 || (kd != NULL && strcmp(kd + 1, tables[i]) == 0)) {
                    found = true;
                    t->compared += tu_report_int(&reports, k, "compared");
                    t->missing += tu_report_int(&reports, k, "missing");
                    t->different += tu_report_int(&reports, k, "different");
                    t->extra += tu_report_int(&reports, k, "extra");
                    t->refused += tu_report_int(&reports, k, "refused") +
                                  tu_report_int(&reports, k, "unreadable");
                }
            }
        }
        if (!found) {
            fail_msg("no verify report for %s:\n%s", tables[i], log);
        }
    }
    bson_destroy(&reports);
    free(log);
    assert_int_equal(rc, 0);
    assert_int_equal(t->missing, 0);
    assert_int_equal(t->different, 0);
    assert_int_equal(t->extra, 0);
}

static void summary(const char *scenario, int64_t iterations, int64_t faults,
                    const struct totals *t, const char *more)
{
    printf("faults: %s seed=%" PRIu64 " size=%s iterations=%" PRId64 " faults=%" PRId64
           " rows_compared=%" PRId64 " missing=%" PRId64 " different=%" PRId64 " extra=%" PRId64
           "%s%s\n",
           scenario, seed, full ? "full" : "reduced", iterations, faults, t->compared, t->missing,
           t->different, t->extra, more[0] != '\0' ? " " : "", more);
    fflush(stdout);
}

/* ---- SIGKILL at random points ------------------------------------------------------------ */

static void sigkill_at_random_points(void **state)
{
    const char *db = "itf_kill";
    MYSQL *m = tu_mysql_admin(NULL);
    mongoc_client_t *c = tu_mongo(&tu_java);
    struct tu_daemon d;
    struct wl w;
    struct totals t = {0};
    int kills = (int)size(25, 60);
    char more[200];
    int64_t t0 = tu_now_ms();

    (void)state;
    scenario_seed(__func__);
    fresh(m, c, db);
    free(wl_run("--db itf_kill --tables 3 --create"));
    daemon_init(&d, db);
    tu_daemon_start(&d);
    tu_daemon_wait_ready(&d);
    /* transactions of 1 to 10 000 rows (log-uniform: mostly small), every kind of change */
    wl_init(&w, "--db itf_kill --tables 3 --mix 45:25:15:15 --txn 1-10000 --txn-log --width 150",
            size(40000, 150000), size(5000, 15000));
    wl_start(&w);
    for (int k = 0; k < kills; k++) {
        int64_t at = tu_now_ms() + rnd_in(50, 1500);
        while (tu_now_ms() < at) {
            wl_step(&w);
            tu_sleep_ms(10);
        }
        if (!tu_daemon_alive(&d)) {
            d.pid = -1;
            daemon_fail(&d, "mysync exited by itself");
        }
        assert_int_equal(tu_daemon_signal(&d, SIGKILL), 128 + SIGKILL);
        tu_sleep_ms((int)rnd_in(0, 300)); /* the workload goes on while it is down */
        tu_daemon_start(&d);
        if (rnd() % 2 == 0) {
            tu_daemon_wait_ready(&d); /* else the next kill may come during the start-up */
        }
    }
    tu_daemon_wait_ready(&d);
    wl_finish(&w);
    converge(&d, (const char *[]){"t1", "t2", "t3", NULL}, &t);
    snprintf(more, sizeof(more),
             "changes=%" PRId64 " keychanges=%" PRId64 " txns=%" PRId64 " seconds=%.0f", w.done,
             w.keychanges, w.txns, (double)(tu_now_ms() - t0) / 1000);
    summary("sigkill_at_random_points", kills, kills, &t, more);
    tu_end_run(&d, c, m);
}

/* ---- MongoDB away -------------------------------------------------------------------------- */

static void mongo_outage(void **state)
{
    const char *db = "itf_outage";
    MYSQL *m = tu_mysql_admin(NULL);
    mongoc_client_t *c = tu_mongo(&tu_java);
    struct tu_daemon d;
    struct wl w;
    struct totals t = {0};
    int outage_ms = (int)size(8000, 30000), port, samples = 0, healthy_after = 0;
    int64_t rss0, rss_peak = 0, queue_peak = 0, first_503 = -1, t_stop, t_back, resume_ms = -1,
                  health_ms = -1;
    double applied0;
    char more[400];
    bson_t st;

    (void)state;
    scenario_seed(__func__);
    fresh(m, c, db);
    mongoc_client_destroy(c);
    free(wl_run("--db itf_outage --create"));
    daemon_init(&d, db);
    tu_daemon_start(&d);
    tu_daemon_wait_ready(&d);
    port = http_port(&d);
    /* a steady stream before, during and after the outage */
    wl_init(&w, "--db itf_outage --mix 55:25:10:10 --txn 1-40 --rate 2000 --width 300",
            2000 * (int64_t)(outage_ms / 1000 + 15), INT64_MAX / 4);
    wl_start(&w);
    tu_sleep_ms(4000);
    rss0 = rss_kib(d.pid);
    assert_true(tu_rig_ctl("stop-service", "mongo"));
    mongo_stopped = true;
    t_stop = tu_now_ms();
    while (tu_now_ms() - t_stop < outage_ms) {
        long code = http(port, "GET", "/sync/health", &st);
        bool down = code == 503 && strcmp(jstr(&st, "mongodb_connection"), "down") == 0;
        int64_t rss = rss_kib(d.pid);
        bson_destroy(&st);
        if (down && first_503 < 0) {
            first_503 = tu_now_ms() - t_stop;
        } else if (!down && first_503 >= 0) {
            healthy_after++; /* healthy again while the server is still down */
        }
        if (http(port, "GET", "/sync/status", &st) == 200 &&
            jnum(&st, "queue_depth") > (double)queue_peak) {
            queue_peak = (int64_t)jnum(&st, "queue_depth");
        }
        bson_destroy(&st);
        rss_peak = rss > rss_peak ? rss : rss_peak;
        samples++;
        wl_step(&w);
        tu_sleep_ms(200);
    }
    assert_int_equal(http(port, "GET", "/sync/status", &st), 200);
    applied0 = jnum(&st, "sync_metrics.total_records");
    bson_destroy(&st);
    assert_true(tu_rig_ctl("start-service", "mongo"));
    mongo_stopped = false;
    t_back = tu_now_ms();
    /* the stream resumes: the first acknowledged write after the server is back */
    while (resume_ms < 0 || health_ms < 0) {
        long code = http(port, "GET", "/sync/status", &st);
        if (code == 200 && resume_ms < 0 && jnum(&st, "sync_metrics.total_records") > applied0) {
            resume_ms = tu_now_ms() - t_back;
        }
        bson_destroy(&st);
        if (health_ms < 0 && http(port, "GET", "/sync/health", NULL) == 200) {
            health_ms = tu_now_ms() - t_back;
        }
        if (tu_now_ms() - t_back > DEADLINE_S * 1000) {
            daemon_fail(&d, "no write acknowledged after MongoDB came back");
        }
        wl_step(&w);
        tu_sleep_ms(10);
    }
    wl_finish(&w);
    c = tu_mongo(&tu_java);
    converge(&d, (const char *[]){"t1", NULL}, &t);
    snprintf(more, sizeof(more),
             "outage_s=%.0f changes=%" PRId64 " first_503_ms=%" PRId64 " health_samples=%d "
             "resume_ms=%" PRId64 " healthy_ms=%" PRId64 " queue_peak=%" PRId64
             " rss_before_mib=%.1f rss_peak_mib=%.1f",
             outage_ms / 1000.0, w.done, first_503, samples, resume_ms, health_ms, queue_peak,
             rss0 / 1024.0, rss_peak / 1024.0);
    summary("mongo_outage", 1, 1, &t, more);
    if (first_503 < 0) {
        daemon_fail(&d, "/sync/health never answered 503 with mongodb_connection down");
    }
    assert_int_equal(healthy_after, 0);
    /* back-pressure: the queue holds at most 4 x the batch size, at least 4096 items (README),
     * and memory stays flat */
    assert_true(queue_peak <= (4 * BATCH > 4096 ? 4 * BATCH : 4096));
    assert_true(rss_peak - rss0 < (UNDER_ASAN ? 512 : 128) * 1024);
    tu_end_run(&d, c, m);
}

/* ---- MariaDB restarted, binlogs rotated ----------------------------------------------------- */

static void mariadb_restart_rotations(void **state)
{
    const char *db = "itf_maria";
    MYSQL *m = tu_mysql_admin(NULL);
    mongoc_client_t *c = tu_mongo(&tu_java);
    struct tu_daemon d;
    struct wl w;
    struct totals t = {0};
    int restarts = (int)size(2, 8), rotations = (int)size(40, 400), rotated = 0;
    char more[300], *log;

    (void)state;
    scenario_seed(__func__);
    fresh(m, c, db);
    free(wl_run("--db itf_maria --tables 2 --create"));
    daemon_init(&d, db);
    tu_daemon_start(&d);
    tu_daemon_wait_ready(&d);
    wl_init(&w, "--db itf_maria --tables 2 --mix 50:25:15:10 --txn 1-2000 --txn-log --rate 3000",
            size(30000, 200000), size(3000, 10000));
    w.tolerate = true; /* a phase dies with its server */
    wl_start(&w);
    /* rotations under the workload, at random moments */
    while (rotated < rotations) {
        tu_sleep_ms((int)rnd_in(20, 250));
        tu_sql(m, "FLUSH BINARY LOGS");
        rotated++;
        wl_step(&w);
    }
    /* restarts in the middle of the stream (and of transactions) */
    for (int k = 0; k < restarts; k++) {
        int64_t at = tu_now_ms() + rnd_in(300, 2500);
        while (tu_now_ms() < at) {
            wl_step(&w);
            tu_sleep_ms(10);
        }
        mysql_close(m);
        assert_true(tu_rig_ctl("restart", "mariadb"));
        m = tu_mysql_admin(NULL);
        for (int r = 0; r < 3; r++) { /* and a few rotations right after it */
            tu_sql(m, "FLUSH BINARY LOGS");
            rotated++;
        }
        wl_step(&w);
    }
    wl_finish(&w);
    converge(&d, (const char *[]){"t1", "t2", NULL}, &t);
    log = tu_slurp(d.log, NULL);
    if (log == NULL || strstr(log, "resuming after the last whole transaction") == NULL) {
        free(log);
        daemon_fail(&d, "no reconnect in the log: the restarts did not interrupt the stream");
    }
    free(log);
    snprintf(more, sizeof(more), "restarts=%d rotations=%d changes=%" PRId64 " phases_cut=%d",
             restarts, rotated, w.done, w.failed);
    summary("mariadb_restart_rotations", restarts, restarts + rotated, &t, more);
    tu_end_run(&d, c, m);
}

/* ---- the checkpoint's binlog purged -----------------------------------------------------------
 */

static void purged_checkpoint(void **state)
{
    const char *db = "itf_purge";
    MYSQL *m = tu_mysql_admin(NULL);
    mongoc_client_t *c = tu_mongo(&tu_java);
    struct tu_daemon d;
    struct wl w;
    struct totals t = {0};
    char file[256], *log, *before, *after, more[200];
    unsigned long long pos;
    int flushes = (int)size(3, 20);

    (void)state;
    scenario_seed(__func__);
    fresh(m, c, db);
    free(wl_run("--db itf_purge --tables 2 --create"));
    daemon_init(&d, db);
    tu_daemon_start(&d);
    tu_daemon_wait_ready(&d);
    free(wl_run("--db itf_purge --tables 2 --mix 50:25:15:10 --txn 1-500 --txn-log --changes 3000 "
                "--seed 11"));
    converge(&d, (const char *[]){"t1", "t2", NULL}, &t);
    assert_int_equal(tu_daemon_signal(&d, SIGTERM), 0);
    /* while it is down: inserts, updates, deletes and key changes (the documents of the rows
     * deleted or re-keyed meanwhile are swept after the re-snapshot), then the binlogs are
     * purged */
    free(wl_run("--db itf_purge --tables 2 --mix 50:25:15:10 --txn 1-500 --changes 3000 "
                "--seed 12"));
    for (int i = 0; i < flushes; i++) {
        tu_sql(m, "FLUSH BINARY LOGS");
    }
    tu_master_status(m, file, sizeof(file), &pos);
    /* the stopped daemon's dump thread may hold its file for a moment (the server notices the
     * closed connection at its next heartbeat), and a file in use is not purged: again until
     * only the current file is left */
    for (int64_t until = tu_now_ms() + 120000;;) {
        char *logs;
        tu_sqlf(m, "PURGE BINARY LOGS TO '%s'", file);
        logs = tu_query_lines(m, "SHOW BINARY LOGS");
        if (strchr(logs, '\n') == logs + strlen(logs) - 1 &&
            strncmp(logs, file, strlen(file)) == 0) {
            free(logs);
            break;
        }
        if (tu_now_ms() > until) {
            fail_msg("binlogs not purged to %s:\n%s", file, logs);
        }
        free(logs);
        tu_sleep_ms(250);
    }
    before = tu_dump_collection(c, db, "_mysync_checkpoints", NULL);
    assert_int_equal(tu_daemon_run_to_exit(&d, &log), 69);
    if (strstr(log, "no longer on the source") == NULL ||
        strstr(log, "SYNC_SNAPSHOT=when_needed") == NULL) {
        fail_msg("the refusal does not say what happened and what to do:\n%s", log);
    }
    free(log);
    after = tu_dump_collection(c, db, "_mysync_checkpoints", NULL);
    assert_string_equal(before, after); /* nothing written */
    free(before);
    free(after);
    /* when_needed: copies the tables again, sweeps the documents no row maps to any more and
     * streams from the position it takes first, with a workload going on from then */
    tu_daemon_env(&d, "SYNC_SNAPSHOT=when_needed");
    tu_daemon_start(&d);
    tu_daemon_wait_ready(&d);
    wl_init(&w, "--db itf_purge --tables 2 --mix 50:25:15:10 --txn 1-500 --txn-log --rate 3000",
            size(5000, 50000), size(5000, 10000));
    wl_start(&w);
    wl_finish(&w);
    memset(&t, 0, sizeof(t));
    converge(&d, (const char *[]){"t1", "t2", NULL}, &t);
    log = tu_slurp(d.log, NULL);
    assert_non_null(log);
    if (strstr(log + d.log_start, "purged") == NULL) {
        free(log);
        daemon_fail(&d, "the when_needed run does not say why it snapshots");
    }
    if (strstr(log + d.log_start, "re-snapshot sweep") == NULL) {
        free(log);
        daemon_fail(&d, "the when_needed run did not sweep");
    }
    free(log);
    snprintf(more, sizeof(more), "flushes=%d purged_to=%s exit=69 then when_needed", flushes, file);
    summary("purged_checkpoint", 1, 1, &t, more);
    tu_end_run(&d, c, m);
}

/* ---- one huge transaction ------------------------------------------------------------------- */

/* An admin connection for long statements (tu_mysql_admin's read timeout is 30 s). */
static MYSQL *mysql_long(void)
{
    MYSQL *m = mysql_init(NULL);
    unsigned int timeout = 3600;

    mysql_options(m, MYSQL_OPT_READ_TIMEOUT, &timeout);
    mysql_options(m, MYSQL_OPT_WRITE_TIMEOUT, &timeout);
    if (mysql_real_connect(
            m, "127.0.0.1", tu_rig("MS_RIG_ADMIN_USER"), tu_rig("MS_RIG_ADMIN_PASSWORD"), NULL,
            (unsigned)atoi(tu_rig("MS_RIG_MARIADB_PORT")), NULL, CLIENT_MULTI_STATEMENTS) == NULL) {
        fail_msg("connect: %s", mysql_error(m));
    }
    return m;
}

/* Waits until the daemon's checkpoint is the source's current position. */
static void wait_checkpoint_at_source(struct tu_daemon *d, MYSQL *m, char *cp, size_t n)
{
    int port = http_port(d);
    int64_t until = tu_now_ms() + DEADLINE_S * 1000;
    char file[256], got[300] = "";
    unsigned long long pos;

    tu_master_status(m, file, sizeof(file), &pos);
    snprintf(cp, n, "%s:%llu", file, pos);
    for (;;) {
        bson_t st;
        if (http(port, "GET", "/sync/status", &st) == 200) {
            status_checkpoint(&st, got, sizeof(got));
        }
        bson_destroy(&st);
        if (strcmp(got, cp) == 0) {
            return;
        }
        if (tu_now_ms() > until) {
            char msg[800];
            snprintf(msg, sizeof(msg), "checkpoint %s, the source at %s", got, cp);
            daemon_fail(d, msg);
        }
        tu_sleep_ms(100);
    }
}

static void one_huge_transaction(void **state)
{
    const char *db = "itf_huge";
    MYSQL *m = tu_mysql_admin(NULL);
    mongoc_client_t *c = tu_mongo(&tu_java);
    struct tu_daemon d;
    struct totals t = {0};
    int64_t rows = size(60000, 1000000), rss0, rss_peak = 0, written_before_end = 0;
    int port, samples = 0, held = 0;
    char cp0[300], cp_end[320], file[256], more[400];
    unsigned long long pos;
    double applied0;
    int64_t t0;
    bson_t st;

    (void)state;
    scenario_seed(__func__);
    fresh(m, c, db);
    tu_sql(m, "CREATE TABLE itf_huge.big (id BIGINT PRIMARY KEY, k INT, v BIGINT, s VARCHAR(40))");
    tu_sqlf(m, "INSERT INTO itf_huge.big VALUES (0, 0, 0, 'before')");
    daemon_init(&d, db);
    tu_daemon_start(&d);
    tu_daemon_wait_ready(&d);
    port = http_port(&d);
    tu_sqlf(m, "INSERT INTO itf_huge.big VALUES (-1, 0, 0, 'before too')");
    converge(&d, (const char *[]){"big", NULL}, &t);
    wait_checkpoint_at_source(&d, m, cp0, sizeof(cp0));
    assert_int_equal(http(port, "GET", "/sync/status", &st), 200);
    applied0 = jnum(&st, "sync_metrics.total_records");
    bson_destroy(&st);
    rss0 = rss_kib(d.pid);
    t0 = tu_now_ms();
    /* one transaction: inserts, then updates and deletes of some of them */
    mysql_close(m);
    m = mysql_long();
    tu_sqlf(m,
            "SET SESSION max_recursive_iterations = %" PRId64 "; BEGIN; INSERT INTO itf_huge.big "
            "WITH RECURSIVE seq(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM seq WHERE i < %" PRId64
            ") SELECT i, i %% 97, i * 3, CONCAT('row-', i) FROM seq; UPDATE itf_huge.big SET v = "
            "v + 1, s = 'updated' WHERE id %% 10 = 0; DELETE FROM itf_huge.big WHERE id %% 7 = 0; "
            "COMMIT",
            rows + 10, rows);
    tu_master_status(m, file, sizeof(file), &pos);
    snprintf(cp_end, sizeof(cp_end), "%s:%llu", file, pos);
    /* until the checkpoint is at the commit: it is the one before the transaction or its end,
     * never a point inside it, however many of its documents are written */
    for (int64_t until = tu_now_ms() + DEADLINE_S * 1000;;) {
        char cp[300];
        int64_t rss = rss_kib(d.pid);
        rss_peak = rss > rss_peak ? rss : rss_peak;
        if (http(port, "GET", "/sync/status", &st) != 200) {
            daemon_fail(&d, "/sync/status failed");
        }
        status_checkpoint(&st, cp, sizeof(cp));
        samples++;
        if (strcmp(cp, cp_end) == 0) {
            bson_destroy(&st);
            break;
        }
        if (strcmp(cp, cp0) != 0) {
            char msg[800];
            snprintf(msg, sizeof(msg),
                     "checkpoint %s inside the transaction (before it: %s, its end: %s)", cp, cp0,
                     cp_end);
            bson_destroy(&st);
            daemon_fail(&d, msg);
        }
        if (jnum(&st, "sync_metrics.total_records") > applied0) {
            held++; /* documents of it written, the checkpoint still before it */
            written_before_end = (int64_t)(jnum(&st, "sync_metrics.total_records") - applied0);
        }
        bson_destroy(&st);
        if (tu_now_ms() > until) {
            daemon_fail(&d, "the checkpoint did not reach the end of the transaction");
        }
        tu_sleep_ms(100);
    }
    converge(&d, (const char *[]){"big", NULL}, &t);
    snprintf(more, sizeof(more),
             "rows=%" PRId64 " row_changes=%" PRId64 " seconds=%.1f status_samples=%d "
             "samples_held_mid_txn=%d writes_acked_before_checkpoint=%" PRId64
             " rss_before_mib=%.1f rss_peak_mib=%.1f",
             rows, rows + rows / 10 + rows / 7, (double)(tu_now_ms() - t0) / 1000, samples, held,
             written_before_end, rss0 / 1024.0, rss_peak / 1024.0);
    summary("one_huge_transaction", 1, 0, &t, more);
    /* bounded: the queue's 64 MiB and a batch, not the transaction */
    assert_true(rss_peak - rss0 < (UNDER_ASAN ? 768 : 256) * 1024);
    tu_end_run(&d, c, m);
}

/* ---- poison rows ------------------------------------------------------------------------------
 */

static int64_t count_docs(mongoc_client_t *c, const char *db, const char *coll,
                          const bson_t *filter)
{
    mongoc_collection_t *col = mongoc_client_get_collection(c, db, coll);
    bson_error_t err;
    bson_t empty = BSON_INITIALIZER;
    int64_t n = mongoc_collection_count_documents(col, filter != NULL ? filter : &empty, NULL, NULL,
                                                  NULL, &err);
    mongoc_collection_destroy(col);
    if (n < 0) {
        fail_msg("count %s.%s: %s", db, coll, err.message);
    }
    return n;
}

static void poison_rows(void **state)
{
    const char *db = "itf_poison";
    MYSQL *m = tu_mysql_admin(NULL);
    mongoc_client_t *c = tu_mongo(&tu_java);
    struct tu_daemon d;
    struct wl w;
    struct totals t = {0};
    int64_t dead, poison = 0;
    char more[300], cfg_path[64];
    FILE *f;

    (void)state;
    scenario_seed(__func__);
    fresh(m, c, db);
    free(wl_run("--db itf_poison --create"));
    tu_sql(m, "CREATE TABLE itf_poison.big (id INT PRIMARY KEY, body LONGTEXT);"
              "CREATE TABLE itf_poison.lat (id INT PRIMARY KEY, s VARCHAR(40) CHARACTER SET "
              "latin1, n INT);"
              "CREATE TABLE itf_poison.orders (id BIGINT UNSIGNED PRIMARY KEY, customer_id "
              "BIGINT UNSIGNED, status ENUM('pending','paid','shipped','cancelled'), currency "
              "CHAR(3), placed_at DATETIME, updated_at DATETIME);"
              "CREATE TABLE itf_poison.order_items (id BIGINT UNSIGNED PRIMARY KEY, order_id "
              "BIGINT UNSIGNED, product_id BIGINT UNSIGNED, sku VARCHAR(32), qty INT, unit_price "
              "DECIMAL(12,2), KEY (order_id))");
    snprintf(cfg_path, sizeof(cfg_path), "/tmp/itf-poison-XXXXXX");
    {
        int fd = mkstemp(cfg_path);
        assert_true(fd >= 0);
        f = fdopen(fd, "w");
        fputs("tables:\n  orders: {strategy: orders}\n", f);
        fclose(f);
    }
    daemon_init(&d, db);
    tu_daemon_config(&d, cfg_path);
    tu_daemon_start(&d);
    tu_daemon_wait_ready(&d);
    /* a workload goes on all along: the poison must not stop it */
    wl_init(&w, "--db itf_poison --mix 55:25:10:10 --txn 1-50 --rate 1500", size(15000, 60000),
            INT64_MAX / 4);
    wl_start(&w);
    /* a document over MongoDB's 16 MiB, between good rows, and a good row made too large */
    tu_sql(m, "INSERT INTO itf_poison.big VALUES (1, 'small'), (2, REPEAT('x', 17 * 1024 * 1024)),"
              " (3, 'small too')");
    tu_sql(m, "INSERT INTO itf_poison.big VALUES (4, 'grows'); UPDATE itf_poison.big SET body = "
              "REPEAT('y', 16 * 1024 * 1024 + 100) WHERE id = 4; INSERT INTO itf_poison.big "
              "VALUES (5, 'after')");
    poison += 2;
    /* rows the orders strategy refuses (README: negative quantity, an item without its order),
     * beside good ones */
    tu_sql(m, "BEGIN; INSERT INTO itf_poison.orders VALUES (1, 7, 'paid', 'EUR', '2024-02-01 "
              "10:00:00', '2024-02-01 10:00:00'); INSERT INTO itf_poison.order_items VALUES "
              "(10, 1, 1, 'A', 2, 1.50), (11, 1, 2, 'B', -3, 2.00); COMMIT");
    tu_sql(m, "INSERT INTO itf_poison.orders VALUES (2, 8, 'pending', 'EUR', '2024-02-02 "
              "10:00:00', '2024-02-02 10:00:00'); INSERT INTO itf_poison.order_items VALUES "
              "(20, 2, 1, 'A', 1, 1.50)");
    /* invalid UTF-8: latin1 bytes written while the binlog carries no charsets, read after the
     * column became utf8mb4 (the label comes from information_schema: as on MySQL 5.7 and
     * MariaDB before 10.5). The daemon is stopped meanwhile so it reads them afterwards. */
    assert_int_equal(tu_daemon_signal(&d, SIGTERM), 0);
    metadata_changed = true;
    tu_sql(m, "SET GLOBAL binlog_row_metadata = NO_LOG");
    {
        MYSQL *m2 = tu_mysql_admin(NULL); /* a session that sees the new setting */
        tu_sql(m2, "INSERT INTO itf_poison.lat VALUES (1, 'plain', 1), (2, 'caf\xc3\xa9', 2), (3, "
                   "'na\xc3\xafve', 3), (4, 'plain too', 4)");
        tu_sql(m2, "UPDATE itf_poison.lat SET n = n + 10");
        mysql_close(m2);
    }
    tu_sql(m, "SET GLOBAL binlog_row_metadata = FULL");
    metadata_changed = false;
    tu_sql(m, "ALTER TABLE itf_poison.lat MODIFY s VARCHAR(40) CHARACTER SET utf8mb4");
    tu_sql(m, "INSERT INTO itf_poison.lat VALUES (5, 'after', 5)");
    tu_daemon_start(&d);
    tu_daemon_wait_ready(&d);
    tu_sql(m, "INSERT INTO itf_poison.big VALUES (6, 'last')");
    wl_finish(&w);
    /* the stream went on past each of them */
    {
        int64_t until = tu_now_ms() + DEADLINE_S * 1000;
        bson_t *q = BCON_NEW("_id", BCON_INT32(6));
        while (count_docs(c, db, "big", q) == 0) {
            if (tu_now_ms() > until || !tu_daemon_alive(&d)) {
                bson_destroy(q);
                daemon_fail(&d, "the stream stopped at the poison rows");
            }
            tu_sleep_ms(100);
        }
        bson_destroy(q);
    }
    /* dead letters: the two large documents, the refused item, the undecodable rows */
    {
        bson_t *q = BCON_NEW("source", BCON_UTF8("itf_poison.big"));
        assert_int_equal(count_docs(c, db, "_mysync_dead_letters", q), 2);
        bson_destroy(q);
        q = BCON_NEW("source", BCON_UTF8("itf_poison.order_items"));
        if (count_docs(c, db, "_mysync_dead_letters", q) < 1) {
            daemon_fail(&d, "no dead letter for the refused order item");
        }
        bson_destroy(q);
        q = BCON_NEW("source", BCON_UTF8("itf_poison.lat"));
        if (count_docs(c, db, "_mysync_dead_letters", q) < 2) {
            daemon_fail(&d, "no dead letters for the rows with invalid UTF-8");
        }
        bson_destroy(q);
        dead = count_docs(c, db, "_mysync_dead_letters", NULL);
    }
    /* the runbook: the rows whose cause is fixed (the column is utf8mb4 now) are replayed */
    {
        struct tu_daemon r = d;
        char *log;
        r.pid = -1;
        tu_daemon_args(&r, "--full", "--table", "lat", "--where", "id IN (2, 3)", NULL);
        snprintf(r.log, sizeof(r.log), "/tmp/itf-replay-XXXXXX");
        close(mkstemp(r.log));
        assert_int_equal(tu_daemon_run_to_exit(&r, &log), 0);
        free(log);
        unlink(r.log);
    }
    converge(&d, (const char *[]){"t1", "big", "lat", "orders", NULL}, &t);
    snprintf(more, sizeof(more),
             "dead_letters=%" PRId64 " refused_by_verify=%" PRId64 " changes=%" PRId64, dead,
             t.refused, w.done);
    summary("poison_rows", 1, poison + 3, &t, more);
    unlink(cfg_path);
    tu_end_run(&d, c, m);
}

/* ---- DDL mid-stream -----------------------------------------------------------------------------
 */

static void ddl_mid_stream(void **state)
{
    const char *db = "itf_ddl";
    static const char *const ddl[] = {
        "ALTER TABLE itf_ddl.t1 ADD COLUMN extra INT NOT NULL DEFAULT 7",
        "ALTER TABLE itf_ddl.t1 ADD COLUMN note VARCHAR(20) DEFAULT 'n' AFTER k",
        "ALTER TABLE itf_ddl.t1 RENAME COLUMN extra TO extra2",
        "ALTER TABLE itf_ddl.t1 MODIFY extra2 VARCHAR(20) NOT NULL DEFAULT 'seven'",
        "ALTER TABLE itf_ddl.t1 MODIFY k BIGINT NOT NULL",
        "ALTER TABLE itf_ddl.t1 DROP COLUMN note",
        "ALTER TABLE itf_ddl.t1 MODIFY price DECIMAL(14,3)",
        "ALTER TABLE itf_ddl.t1 DROP COLUMN extra2",
        "ALTER TABLE itf_ddl.t1 ADD INDEX k_idx (k), ALGORITHM=INPLACE", /* rows unchanged */
        "TRUNCATE TABLE itf_ddl.t2",
        NULL,
    };
    MYSQL *m = tu_mysql_admin(NULL);
    mongoc_client_t *c = tu_mongo(&tu_java);
    struct tu_daemon d;
    struct wl w;
    struct totals t = {0};
    int steps = 0;
    int64_t old_docs, total = 0;
    char more[300];

    (void)state;
    scenario_seed(__func__);
    fresh(m, c, db);
    free(wl_run("--db itf_ddl --tables 2 --create"));
    daemon_init(&d, db);
    tu_daemon_start(&d);
    tu_daemon_wait_ready(&d);
    wl_init(&w, "--db itf_ddl --tables 2 --mix 50:25:15:10 --txn 1-200 --txn-log",
            size(20000, 100000), size(2000, 5000));
    wl_start(&w);
    for (size_t i = 0; ddl[i] != NULL; i++) {
        int64_t at = tu_now_ms() + rnd_in(200, 1500);
        while (tu_now_ms() < at) {
            wl_step(&w);
            tu_sleep_ms(10);
        }
        tu_sql(m, ddl[i]);
        steps++;
    }
    wl_finish(&w);
    total = w.done;
    /* RENAME TABLE: the new name is a table of its own, snapshotted by the daemon (the old
     * name's documents stay where they are: README Limits), while the workload goes on under
     * the new name */
    tu_sql(m, "RENAME TABLE itf_ddl.t2 TO itf_ddl.r1");
    steps++;
    wl_init(&w, "--db itf_ddl --prefix r --tables 1 --mix 50:25:15:10 --txn 1-200 --txn-log",
            size(5000, 20000), size(5000, 20000));
    wl_finish(&w);
    converge(&d, (const char *[]){"t1", "r1", NULL}, &t);
    {
        char *log = tu_slurp(d.log, NULL);
        const char *const want[] = {"ALTER TABLE: its rows may have changed",
                                    "ALTER TABLE itf_ddl.t1 changes indexes, defaults or "
                                    "options only: no snapshot",
                                    "RENAME TABLE: its rows may have changed",
                                    "TRUNCATE: every document of the collection deleted", NULL};
        for (size_t i = 0; want[i] != NULL; i++) {
            if (log == NULL || strstr(log, want[i]) == NULL) {
                char msg[200];
                free(log);
                snprintf(msg, sizeof(msg), "no \"%s\" in the log", want[i]);
                daemon_fail(&d, msg);
            }
        }
        free(log);
    }
    old_docs = count_docs(c, db, "t2", NULL);
    snprintf(more, sizeof(more),
             "ddl_statements=%d changes=%" PRId64 " old_name_documents=%" PRId64, steps,
             total + w.done, old_docs);
    summary("ddl_mid_stream", steps, steps, &t, more);
    tu_end_run(&d, c, m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(sigkill_at_random_points, teardown),
        cmocka_unit_test_teardown(mongo_outage, teardown),
        cmocka_unit_test_teardown(mariadb_restart_rotations, teardown),
        cmocka_unit_test_teardown(purged_checkpoint, teardown),
        cmocka_unit_test_teardown(one_huge_transaction, teardown),
        cmocka_unit_test_teardown(poison_rows, teardown),
        cmocka_unit_test_teardown(ddl_mid_stream, teardown),
    };
    const char *s = getenv("MS_FAULTS_SEED");
    int rc;

    live_workload.pid = -1;
    full = getenv("MS_FAULTS_FULL") != NULL && strcmp(getenv("MS_FAULTS_FULL"), "0") != 0;
    seed = s != NULL && *s != '\0' ? strtoull(s, NULL, 10)
                                   : ((uint64_t)time(NULL) * 2654435761u) ^ (uint64_t)getpid();
    printf("faults: seed=%" PRIu64 " size=%s (replay: MS_FAULTS_SEED=%" PRIu64 "%s)\n", seed,
           full ? "full" : "reduced", seed, full ? " MS_FAULTS_FULL=1" : "");
    fflush(stdout);
    if (getenv("MS_TEST_FILTER") != NULL) {
        cmocka_set_test_filter(getenv("MS_TEST_FILTER"));
    }
    curl_global_init(CURL_GLOBAL_DEFAULT);
    mongoc_init();
    tu_rig("MS_RIG_MARIADB_PORT"); /* start the rig before the first test */
    rc = cmocka_run_group_tests_name("faults", tests, NULL, NULL);
    mongoc_cleanup();
    curl_global_cleanup();
    return tu_finish(rc);
}

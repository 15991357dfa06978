#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "testutil.h"
#include "tu_daemon.h"

/* ---- MariaDB ------------------------------------------------------------------------- */

void tu_sqlf(MYSQL *m, const char *fmt, ...)
{
    char q[8192];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(q, sizeof(q), fmt, ap);
    va_end(ap);
    tu_sql(m, q);
}

/* ---- MongoDB ------------------------------------------------------------------------- */

const struct tu_target tu_java = {"mongo-java-server", "MS_RIG_MONGO_URI", false};
const struct tu_target tu_ferret = {"FerretDB", "MS_RIG_FERRET_URI", true};

mongoc_client_t *tu_mongo(const struct tu_target *t)
{
    char uri[256];
    mongoc_client_t *c;

    snprintf(uri, sizeof(uri), "%s/?serverSelectionTimeoutMS=20000", tu_rig(t->uri_key));
    c = mongoc_client_new(uri);
    assert_non_null(c);
    mongoc_client_set_error_api(c, MONGOC_ERROR_API_VERSION_2);
    return c;
}

/* Every document of db.coll as one relaxed-JSON line each, sorted (for comparisons and
 * failure messages). */
char *tu_join_sorted(char **lines, size_t n)
{
    size_t len = 1;
    char *out;

    for (size_t i = 1; i < n; i++) { /* insertion sort: small sets */
        for (size_t k = i; k > 0 && strcmp(lines[k - 1], lines[k]) > 0; k--) {
            char *t = lines[k];
            lines[k] = lines[k - 1];
            lines[k - 1] = t;
        }
    }
    for (size_t i = 0; i < n; i++) {
        len += strlen(lines[i]) + 1;
    }
    out = malloc(len);
    out[0] = '\0';
    for (size_t i = 0, o = 0; i < n; i++) {
        size_t l = strlen(lines[i]);
        memcpy(out + o, lines[i], l);
        out[o + l] = '\n';
        o += l + 1;
        out[o] = '\0';
        bson_free(lines[i]);
    }
    free(lines);
    return out;
}

/* doc with the keys of every subdocument sorted (arrays keep their order). */
static void sort_keys(const bson_t *in, bson_t *out, bool array)
{
    bson_iter_t it;
    const char *keys[512];
    size_t n = 0;

    if (!bson_iter_init(&it, in)) {
        return;
    }
    while (bson_iter_next(&it) && n < 512) {
        keys[n++] = bson_iter_key(&it);
    }
    for (size_t i = 1; i < n && !array; i++) {
        for (size_t k = i; k > 0 && strcmp(keys[k - 1], keys[k]) > 0; k--) {
            const char *t = keys[k];
            keys[k] = keys[k - 1];
            keys[k - 1] = t;
        }
    }
    for (size_t i = 0; i < n; i++) {
        bson_iter_init_find(&it, in, keys[i]);
        if (BSON_ITER_HOLDS_DOCUMENT(&it) || BSON_ITER_HOLDS_ARRAY(&it)) {
            bool arr = BSON_ITER_HOLDS_ARRAY(&it);
            const uint8_t *data;
            uint32_t len;
            bson_t sub, child;
            if (arr) {
                bson_iter_array(&it, &len, &data);
            } else {
                bson_iter_document(&it, &len, &data);
            }
            bson_init_static(&sub, data, len);
            if (arr) {
                bson_append_array_begin(out, keys[i], -1, &child);
            } else {
                bson_append_document_begin(out, keys[i], -1, &child);
            }
            sort_keys(&sub, &child, arr);
            if (arr) {
                bson_append_array_end(out, &child);
            } else {
                bson_append_document_end(out, &child);
            }
        } else {
            bson_append_iter(out, keys[i], -1, &it);
        }
    }
}

char *tu_canonical_json(const char *json)
{
    bson_t in, out = BSON_INITIALIZER;
    bson_error_t err;
    char *s;

    if (!bson_init_from_json(&in, json, -1, &err)) {
        fail_msg("bad JSON in a test: %s: %s", err.message, json);
    }
    sort_keys(&in, &out, false);
    s = bson_as_relaxed_extended_json(&out, NULL);
    bson_destroy(&in);
    bson_destroy(&out);
    return s;
}

static char *dump(mongoc_client_t *c, const char *db, const char *coll, size_t *n, bool canonical);

char *tu_dump_collection(mongoc_client_t *c, const char *db, const char *coll, size_t *n)
{
    return dump(c, db, coll, n, false);
}

char *tu_dump_canonical(mongoc_client_t *c, const char *db, const char *coll, size_t *n)
{
    return dump(c, db, coll, n, true);
}

static char *dump(mongoc_client_t *c, const char *db, const char *coll, size_t *n, bool canonical)
{
    mongoc_collection_t *col = mongoc_client_get_collection(c, db, coll);
    bson_t q = BSON_INITIALIZER;
    mongoc_cursor_t *cur = mongoc_collection_find_with_opts(col, &q, NULL, NULL);
    const bson_t *doc;
    char **lines = NULL, *out;
    size_t cnt = 0;
    bson_error_t err;

    while (mongoc_cursor_next(cur, &doc)) {
        lines = realloc(lines, (cnt + 1) * sizeof(char *));
        if (canonical) {
            bson_t sorted = BSON_INITIALIZER;
            sort_keys(doc, &sorted, false);
            lines[cnt++] = bson_as_relaxed_extended_json(&sorted, NULL);
            bson_destroy(&sorted);
        } else {
            lines[cnt++] = bson_as_relaxed_extended_json(doc, NULL);
        }
    }
    if (mongoc_cursor_error(cur, &err)) {
        fail_msg("find %s.%s: %s", db, coll, err.message);
    }
    mongoc_cursor_destroy(cur);
    mongoc_collection_destroy(col);
    bson_destroy(&q);
    out = tu_join_sorted(lines, cnt);
    if (n != NULL) {
        *n = cnt;
    }
    return out;
}

bool tu_find_one(mongoc_client_t *c, const char *db, const char *coll, const bson_t *filter,
                 bson_t *out)
{
    mongoc_collection_t *col = mongoc_client_get_collection(c, db, coll);
    mongoc_cursor_t *cur = mongoc_collection_find_with_opts(col, filter, NULL, NULL);
    const bson_t *doc;
    bool found = mongoc_cursor_next(cur, &doc);

    if (found) {
        bson_copy_to(doc, out);
    }
    mongoc_cursor_destroy(cur);
    mongoc_collection_destroy(col);
    return found;
}

void tu_drop_db(mongoc_client_t *c, const char *db)
{
    mongoc_database_t *d = mongoc_client_get_database(c, db);
    mongoc_database_drop(d, NULL);
    mongoc_database_destroy(d);
}

/* ---- the daemon ---------------------------------------------------------------------- */

void tu_daemon_env(struct tu_daemon *d, const char *fmt, ...)
{
    va_list ap;

    assert_true(d->nenv < 23);
    va_start(ap, fmt);
    vsnprintf(d->env[d->nenv++], sizeof(d->env[0]), fmt, ap);
    va_end(ap);
}

/* The environment of a daemon replicating mysql_db into mongo_db on target t (more with
 * daemon_env before daemon_start). */
void tu_daemon_init(struct tu_daemon *d, const struct tu_target *t, const char *mysql_db,
                    const char *mongo_db)
{
    memset(d, 0, sizeof(*d));
    d->pid = -1;
    snprintf(d->log, sizeof(d->log), "/tmp/it-pipeline-XXXXXX");
    int fd = mkstemp(d->log);
    assert_true(fd >= 0);
    close(fd);
    tu_daemon_env(d, "MYSQL_HOST=127.0.0.1");
    tu_daemon_env(d, "MYSQL_PORT=%s", tu_rig("MS_RIG_MARIADB_PORT"));
    tu_daemon_env(d, "MYSQL_USER=%s", tu_rig("MS_RIG_MYSYNC_USER"));
    tu_daemon_env(d, "MYSQL_PASSWORD=%s", tu_rig("MS_RIG_MYSYNC_PASSWORD"));
    tu_daemon_env(d, "MYSQL_DATABASE=%s", mysql_db);
    tu_daemon_env(d, "MONGODB_URI=%s/?serverSelectionTimeoutMS=5000", tu_rig(t->uri_key));
    tu_daemon_env(d, "MONGODB_DATABASE=%s", mongo_db);
    tu_daemon_env(d, "SYNC_MODE=binlog");
    tu_daemon_env(d, "SYNC_FLUSH_MS=50");
    tu_daemon_env(d, "SYNC_RETRY_DELAY=200ms");
    tu_daemon_env(d, "HTTP_LISTEN=127.0.0.1:0"); /* any free port: never a clash with 8080 */
    tu_daemon_env(d, "PATH=/usr/bin:/bin");
    for (const char *const *v =
             (const char *const[]){"ASAN_OPTIONS", "UBSAN_OPTIONS", "LSAN_OPTIONS", NULL};
         *v != NULL; v++) {
        if (getenv(*v) != NULL) {
            tu_daemon_env(d, "%s=%s", *v, getenv(*v));
        }
    }
}

void tu_daemon_config(struct tu_daemon *d, const char *path)
{
    snprintf(d->config, sizeof(d->config), "%s", path);
}

void tu_daemon_args(struct tu_daemon *d, ...)
{
    va_list ap;
    const char *a;

    d->nargs = 0;
    va_start(ap, d);
    while ((a = va_arg(ap, const char *)) != NULL && d->nargs < 12) {
        snprintf(d->args[d->nargs++], sizeof(d->args[0]), "%s", a);
    }
    va_end(ap);
}

void tu_daemon_start(struct tu_daemon *d)
{
    char *envp[25];
    pid_t pid;

    for (size_t i = 0; i < d->nenv; i++) {
        envp[i] = d->env[i];
    }
    envp[d->nenv] = NULL;
    {
        size_t len = 0;
        char *old = tu_slurp(d->log, &len);
        d->log_start = old != NULL ? len : 0;
        free(old);
    }
    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        int fd = open(d->log, O_WRONLY | O_APPEND);
        char *argv[20] = {getenv("MS_MYSYNC")};
        size_t n = 1;
        if (d->config[0] != '\0') {
            argv[n++] = "--config";
            argv[n++] = d->config;
        }
        for (size_t i = 0; i < d->nargs; i++) {
            argv[n++] = d->args[i];
        }
        argv[n] = NULL;
        dup2(fd, 1);
        dup2(fd, 2);
        execve(argv[0], argv, envp);
        _exit(127);
    }
    d->pid = pid;
}

/* Sends sig and waits for the exit; returns the exit code (128 + signal when killed). */
int tu_daemon_signal(struct tu_daemon *d, int sig)
{
    int status = 0;
    int64_t until = tu_now_ms() + 60000;

    if (d->pid <= 0) {
        return -1;
    }
    kill(d->pid, sig);
    while (waitpid(d->pid, &status, WNOHANG) == 0) {
        if (tu_now_ms() > until) {
            kill(d->pid, SIGKILL);
            waitpid(d->pid, &status, 0);
            d->pid = -1;
            fail_msg("mysync did not stop within 60 s of signal %d", sig);
        }
        tu_sleep_ms(20);
    }
    d->pid = -1;
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

/* Runs the daemon to its exit (for refusals); returns the exit code, the log in *log. */
int tu_daemon_run_to_exit(struct tu_daemon *d, char **log)
{
    int status;
    int64_t until = tu_now_ms() + 600000; /* liveness only: a backfill under sanitizers */

    tu_daemon_start(d);
    while (waitpid(d->pid, &status, WNOHANG) == 0) {
        if (tu_now_ms() > until) {
            kill(d->pid, SIGKILL);
            fail_msg("mysync did not exit by itself");
        }
        tu_sleep_ms(20);
    }
    d->pid = -1;
    *log = tu_slurp(d->log, NULL);
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

int tu_verify(const struct tu_daemon *d, const char *const *args, bson_t *reports, char **log)
{
    struct tu_daemon v = *d;
    int rc, fd;

    bson_init(reports);
    v.pid = -1;
    snprintf(v.log, sizeof(v.log), "/tmp/it-verify-XXXXXX");
    fd = mkstemp(v.log);
    assert_true(fd >= 0);
    close(fd);
    tu_daemon_env(&v, "LOG_LEVEL=warn");
    v.nargs = 0;
    snprintf(v.args[v.nargs++], sizeof(v.args[0]), "verify");
    for (size_t i = 0; args[i] != NULL && v.nargs + 2 < 12; i++) {
        snprintf(v.args[v.nargs++], sizeof(v.args[0]), "%s", args[i]);
    }
    snprintf(v.args[v.nargs++], sizeof(v.args[0]), "--json");
    rc = tu_daemon_run_to_exit(&v, log);
    unlink(v.log);
    for (char *line = *log; line != NULL && *line != '\0';) {
        char *nl = strchr(line, '\n');
        size_t len = nl != NULL ? (size_t)(nl - line) : strlen(line);
        if (len > 0 && line[0] == '{') {
            bson_error_t err;
            bson_t *doc = bson_new_from_json((const uint8_t *)line, (ssize_t)len, &err);
            bson_iter_t it;
            if (doc == NULL) {
                fail_msg("verify printed a line that is not JSON (%s):\n%.*s", err.message,
                         (int)len, line);
            }
            if (bson_iter_init_find(&it, doc, "table") && BSON_ITER_HOLDS_UTF8(&it)) {
                BSON_APPEND_DOCUMENT(reports, bson_iter_utf8(&it, NULL), doc);
            }
            bson_destroy(doc);
        }
        line = nl != NULL ? nl + 1 : NULL;
    }
    return rc;
}

int64_t tu_report_int(const bson_t *reports, const char *table, const char *field)
{
    bson_iter_t it, sub;

    if (!bson_iter_init_find(&it, reports, table) || !BSON_ITER_HOLDS_DOCUMENT(&it) ||
        !bson_iter_recurse(&it, &sub) || !bson_iter_find(&sub, field)) {
        return -1;
    }
    return bson_iter_as_int64(&sub);
}

bool tu_daemon_alive(struct tu_daemon *d)
{
    int status;

    return d->pid > 0 && waitpid(d->pid, &status, WNOHANG) == 0;
}

void tu_daemon_fail(struct tu_daemon *d, const char *what)
{
    char *log = tu_slurp(d->log, NULL);

    if (d->pid > 0) {
        kill(d->pid, SIGKILL);
        waitpid(d->pid, NULL, 0);
    }
    fail_msg("%s\n--- mysync log ---\n%s", what, log != NULL ? log : "(none)");
}

void tu_daemon_cleanup(struct tu_daemon *d)
{
    if (d->pid > 0) {
        kill(d->pid, SIGKILL);
        waitpid(d->pid, NULL, 0);
    }
    unlink(d->log);
}

/* Waits for the daemon's "replicating" line (it has checked everything and saved its start
 * position), so changes made afterwards are in its stream. */
void tu_daemon_wait_ready(struct tu_daemon *d)
{
    int64_t until = tu_now_ms() + 60000;

    for (;;) {
        size_t len = 0;
        char *log = tu_slurp(d->log, &len);
        bool ready = log != NULL && len >= d->log_start &&
                     strstr(log + d->log_start, "replicating into") != NULL;
        free(log);
        if (ready) {
            return;
        }
        if (!tu_daemon_alive(d)) {
            d->pid = -1;
            tu_daemon_fail(d, "mysync exited before replicating");
        }
        if (tu_now_ms() > until) {
            tu_daemon_fail(d, "mysync not replicating after 60 s");
        }
        tu_sleep_ms(50);
    }
}

/* ---- expectations -------------------------------------------------------------------- */

/* Rows of a MariaDB query, each row as "c1|c2|..." ("NULL" for NULL), sorted, one per line. */
char *tu_query_lines(MYSQL *m, const char *q)
{
    MYSQL_RES *r = NULL;
    MYSQL_ROW row;
    char *out = calloc(1, 1);
    size_t len = 0;

    if (mysql_query(m, q) != 0 || (r = mysql_store_result(m)) == NULL) {
        fail_msg("%s: %s", q, mysql_error(m));
    }
    while ((row = mysql_fetch_row(r)) != NULL) {
        char line[1024];
        size_t o = 0;
        for (unsigned i = 0; i < mysql_num_fields(r); i++) {
            o += (size_t)snprintf(line + o, sizeof(line) - o, "%s%s", i > 0 ? "|" : "",
                                  row[i] != NULL ? row[i] : "NULL");
        }
        out = realloc(out, len + o + 2);
        memcpy(out + len, line, o);
        len += o;
        out[len++] = '\n';
        out[len] = '\0';
    }
    mysql_free_result(r);
    return out;
}

/* The same columns from the MongoDB documents (fields in the given order), sorted like
 * ORDER BY the first (integer) column. */
char *tu_mongo_lines(mongoc_client_t *c, const char *db, const char *coll,
                     const char *const *fields, size_t nfields)
{
    mongoc_collection_t *col = mongoc_client_get_collection(c, db, coll);
    bson_t q = BSON_INITIALIZER, opts = BSON_INITIALIZER, sort;
    mongoc_cursor_t *cur;
    const bson_t *doc;
    char *out = calloc(1, 1);
    size_t len = 0;
    bson_error_t err;

    BSON_APPEND_DOCUMENT_BEGIN(&opts, "sort", &sort);
    BSON_APPEND_INT32(&sort, "_id", 1);
    bson_append_document_end(&opts, &sort);
    cur = mongoc_collection_find_with_opts(col, &q, &opts, NULL);
    while (mongoc_cursor_next(cur, &doc)) {
        char line[1024];
        size_t o = 0;
        for (size_t i = 0; i < nfields; i++) {
            bson_iter_t it;
            char v[512];
            if (!bson_iter_init_find(&it, doc, fields[i])) {
                snprintf(v, sizeof(v), "MISSING");
            } else if (BSON_ITER_HOLDS_NULL(&it)) {
                snprintf(v, sizeof(v), "NULL");
            } else if (BSON_ITER_HOLDS_INT32(&it)) {
                snprintf(v, sizeof(v), "%d", bson_iter_int32(&it));
            } else if (BSON_ITER_HOLDS_INT64(&it)) {
                snprintf(v, sizeof(v), "%lld", (long long)bson_iter_int64(&it));
            } else if (BSON_ITER_HOLDS_UTF8(&it)) {
                snprintf(v, sizeof(v), "%s", bson_iter_utf8(&it, NULL));
            } else {
                snprintf(v, sizeof(v), "TYPE%d", (int)bson_iter_type(&it));
            }
            o += (size_t)snprintf(line + o, sizeof(line) - o, "%s%s", i > 0 ? "|" : "", v);
        }
        out = realloc(out, len + o + 2);
        memcpy(out + len, line, o);
        len += o;
        out[len++] = '\n';
        out[len] = '\0';
    }
    if (mongoc_cursor_error(cur, &err)) {
        fail_msg("find: %s", err.message);
    }
    mongoc_cursor_destroy(cur);
    mongoc_collection_destroy(col);
    bson_destroy(&q);
    bson_destroy(&opts);
    return out;
}

/* Polls until MongoDB's rows equal MariaDB's (query: the same columns, ORDER BY the key). */
void tu_wait_converged(struct tu_daemon *d, MYSQL *m, mongoc_client_t *c, const char *mongo_db,
                       const char *coll, const char *query, const char *const *fields,
                       size_t nfields)
{
    int64_t until = tu_now_ms() + TU_CONVERGE_LIMIT_S * 1000;
    char *want = tu_query_lines(m, query), *got = NULL;

    for (;;) {
        free(got);
        got = tu_mongo_lines(c, mongo_db, coll, fields, nfields);
        if (strcmp(got, want) == 0) {
            break;
        }
        if (tu_now_ms() > until) {
            /* the first differing line */
            const char *a = got, *b = want;
            while (*a != '\0' && *a == *b) {
                a++, b++;
            }
            while (a > got && a[-1] != '\n') {
                a--, b--;
            }
            char msg[2048];
            snprintf(msg, sizeof(msg),
                     "%s.%s not equal to the source after %d s; first difference:\n"
                     " mongo: %.200s\nsource: %.200s",
                     mongo_db, coll, TU_CONVERGE_LIMIT_S, a, b);
            free(got);
            free(want);
            tu_daemon_fail(d, msg);
        }
        if (d->pid > 0 && !tu_daemon_alive(d)) {
            d->pid = -1;
            tu_daemon_fail(d, "mysync exited while converging");
        }
        tu_sleep_ms(100);
    }
    free(got);
    free(want);
}

/* A case's end: the daemon stops cleanly on SIGTERM (exit 0), then everything is released. */
void tu_end_run(struct tu_daemon *d, mongoc_client_t *c, MYSQL *m)
{
    assert_int_equal(tu_daemon_signal(d, SIGTERM), 0);
    tu_daemon_cleanup(d);
    mongoc_client_destroy(c);
    mysql_close(m);
}

/* The HTTP control plane against a running daemon (the rig's MariaDB and mongo-java-server),
 * with real requests (libcurl): every endpoint and every error code (400, 401, 403, 404, 405
 * with Allow, 409, 413, 202, 503 while MongoDB or MariaDB is stopped), pause really holding the
 * changes and the checkpoint and resume delivering them, trigger flushing at once, the interval
 * in the status, the token rules on loopback and other listeners, slow and greedy clients, a
 * port clash, no secret in any response, and /metrics checked by the Prometheus client's
 * parser (tests/support/check_metrics.py), which is itself shown to refuse malformed text.
 *
 * Waits poll until the expected state appears or a generous limit passes (liveness bounds, not
 * speed assertions); the latency figures printed are measurements, not limits. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <curl/curl.h>
#include <mongoc/mongoc.h>
#include <mysql.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "testutil.h"

#define TOKEN    "it-http-token-6c1f0e"
#define BEARER   "Bearer " TOKEN
#define MYSQL_DB "ith"

/* ---- HTTP ------------------------------------------------------------------------------- */

struct resp {
    long code; /* 0: no HTTP response (connection refused or closed) */
    char *body;
    size_t len;
    char allow[128], www[128], ctype[128];
    double secs;
};

static size_t on_body(char *p, size_t sz, size_t n, void *ud)
{
    struct resp *r = ud;

    r->body = realloc(r->body, r->len + sz * n + 1);
    memcpy(r->body + r->len, p, sz * n);
    r->len += sz * n;
    r->body[r->len] = '\0';
    return sz * n;
}

/* Keeps the value of header name (without CRLF) in out. */
static void header_value(const char *line, size_t len, const char *name, char *out, size_t outsz)
{
    size_t nl = strlen(name);

    if (len > nl + 1 && strncasecmp(line, name, nl) == 0 && line[nl] == ':') {
        const char *v = line + nl + 1;
        size_t vl = len - nl - 1;
        while (vl > 0 && *v == ' ') {
            v++, vl--;
        }
        while (vl > 0 && (v[vl - 1] == '\r' || v[vl - 1] == '\n')) {
            vl--;
        }
        snprintf(out, outsz, "%.*s", (int)vl, v);
    }
}

static size_t on_header(char *p, size_t sz, size_t n, void *ud)
{
    struct resp *r = ud;

    header_value(p, sz * n, "Allow", r->allow, sizeof(r->allow));
    header_value(p, sz * n, "WWW-Authenticate", r->www, sizeof(r->www));
    header_value(p, sz * n, "Content-Type", r->ctype, sizeof(r->ctype));
    return sz * n;
}

struct upload {
    const char *p;
    size_t left;
};

static size_t on_read(char *buf, size_t sz, size_t n, void *ud)
{
    struct upload *u = ud;
    size_t k = sz * n < u->left ? sz * n : u->left;

    memcpy(buf, u->p, k);
    u->p += k;
    u->left -= k;
    return k;
}

static void resp_free(struct resp *r)
{
    free(r->body);
    memset(r, 0, sizeof(*r));
}

/* One request. auth: the Authorization header's value or NULL; chunked: the body is sent
 * without a Content-Length. Fails the test if a secret shows in the answer. */
static long http(int port, const char *method, const char *path, const char *auth, const char *body,
                 bool chunked, struct resp *r)
{
    CURL *c = curl_easy_init();
    struct curl_slist *hdrs = NULL;
    struct upload up = {body, body != NULL ? strlen(body) : 0};
    char url[512], hdr[300];
    int64_t t0 = tu_now_ms();

    memset(r, 0, sizeof(*r));
    r->body = calloc(1, 1);
    snprintf(url, sizeof(url), "http://127.0.0.1:%d%s", port, path);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 30L);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, r);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, r);
    if (strcmp(method, "HEAD") == 0) {
        curl_easy_setopt(c, CURLOPT_NOBODY, 1L);
    } else if (strcmp(method, "GET") != 0) {
        curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    }
    if (chunked) {
        curl_easy_setopt(c, CURLOPT_UPLOAD, 1L); /* no size given: chunked */
        curl_easy_setopt(c, CURLOPT_READFUNCTION, on_read);
        curl_easy_setopt(c, CURLOPT_READDATA, &up);
    } else if (body != NULL) {
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, (long)strlen(body));
    } else if (strcmp(method, "POST") == 0 || strcmp(method, "PUT") == 0) {
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, "");
    }
    if (auth != NULL) {
        snprintf(hdr, sizeof(hdr), "Authorization: %s", auth);
        hdrs = curl_slist_append(hdrs, hdr);
    }
    hdrs = curl_slist_append(hdrs, "Expect:");
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, hdrs);
    if (curl_easy_perform(c) == CURLE_OK) {
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r->code);
    }
    r->secs = (double)(tu_now_ms() - t0) / 1000.0;
    curl_slist_free_all(hdrs);
    curl_easy_cleanup(c);
    if (strstr(r->body, TOKEN) != NULL ||
        strstr(r->body, tu_rig("MS_RIG_MYSYNC_PASSWORD")) != NULL ||
        strstr(r->body, tu_rig("MS_RIG_ADMIN_PASSWORD")) != NULL) {
        fail_msg("%s %s: a secret in the answer:\n%s", method, path, r->body);
    }
    return r->code;
}

/* Expects code; fails with the body otherwise. */
static void expect(int port, const char *method, const char *path, const char *auth,
                   const char *body, long code, struct resp *r)
{
    if (http(port, method, path, auth, body, false, r) != code) {
        fail_msg("%s %s: HTTP %ld, want %ld\n%s", method, path, r->code, code, r->body);
    }
}

/* ---- JSON ------------------------------------------------------------------------------- */

static bson_t *json(const struct resp *r)
{
    bson_error_t err;
    bson_t *doc = bson_new_from_json((const uint8_t *)r->body, (ssize_t)r->len, &err);

    if (doc == NULL) {
        fail_msg("not JSON (%s):\n%s", err.message, r->body);
    }
    return doc;
}

/* The value at a path of keys (a key may hold dots: "tables", "ith.kv", "inserted"). */
static bool find_path(const bson_t *doc, bson_iter_t *out, const char *const *keys)
{
    bson_iter_t it;
    bson_t sub;
    const bson_t *cur = doc;
    uint32_t len;
    const uint8_t *data;

    for (size_t i = 0; keys[i] != NULL; i++) {
        if (!bson_iter_init_find(&it, cur, keys[i])) {
            return false;
        }
        if (keys[i + 1] == NULL) {
            *out = it;
            return true;
        }
        if (!BSON_ITER_HOLDS_DOCUMENT(&it)) {
            return false;
        }
        bson_iter_document(&it, &len, &data);
        if (!bson_init_static(&sub, data, len)) {
            return false;
        }
        cur = &sub;
    }
    return false;
}

static bson_iter_t must(const bson_t *doc, const char *const *keys)
{
    bson_iter_t it;

    if (!find_path(doc, &it, keys)) {
        char *j = bson_as_relaxed_extended_json(doc, NULL);
        fail_msg("no %s%s%s in %s", keys[0], keys[1] != NULL ? "." : "",
                 keys[1] != NULL ? keys[1] : "", j);
    }
    return it;
}

static int64_t num(const bson_t *doc, const char *const *keys)
{
    bson_iter_t it = must(doc, keys);

    return BSON_ITER_HOLDS_DOUBLE(&it) ? (int64_t)bson_iter_double(&it) : bson_iter_as_int64(&it);
}

static bool flag(const bson_t *doc, const char *key)
{
    bson_iter_t it = must(doc, (const char *[]){key, NULL});

    assert_true(BSON_ITER_HOLDS_BOOL(&it));
    return bson_iter_bool(&it);
}

static const char *str(const bson_t *doc, const char *const *keys)
{
    bson_iter_t it = must(doc, keys);

    if (!BSON_ITER_HOLDS_UTF8(&it)) {
        fail_msg("%s is not a string", keys[0]);
    }
    return bson_iter_utf8(&it, NULL);
}

/* GET path on port as a document (code must be want). */
static bson_t *get_json(int port, const char *path, long want)
{
    struct resp r;
    bson_t *doc;

    expect(port, "GET", path, NULL, NULL, want, &r);
    doc = json(&r);
    resp_free(&r);
    return doc;
}

/* ---- servers ---------------------------------------------------------------------------- */

static void sqlf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static void sqlf(const char *fmt, ...)
{
    char q[4096];
    va_list ap;
    MYSQL *m = tu_mysql_admin(NULL); /* a new connection: MariaDB may have been restarted */

    va_start(ap, fmt);
    vsnprintf(q, sizeof(q), fmt, ap);
    va_end(ap);
    tu_sql(m, q);
    mysql_close(m);
}

static mongoc_client_t *mongo(void)
{
    char uri[256];
    mongoc_client_t *c;

    snprintf(uri, sizeof(uri), "%s/?serverSelectionTimeoutMS=20000", tu_rig("MS_RIG_MONGO_URI"));
    c = mongoc_client_new(uri);
    assert_non_null(c);
    return c;
}

/* Documents of db.kv with _id in [lo, hi]. */
static int64_t count_ids(const char *db, int lo, int hi)
{
    mongoc_client_t *c = mongo();
    mongoc_collection_t *col = mongoc_client_get_collection(c, db, "kv");
    bson_t *filter = BCON_NEW("_id", "{", "$gte", BCON_INT32(lo), "$lte", BCON_INT32(hi), "}");
    bson_error_t err;
    int64_t n = mongoc_collection_count_documents(col, filter, NULL, NULL, NULL, &err);

    if (n < 0) {
        fail_msg("count %s.kv: %s", db, err.message);
    }
    bson_destroy(filter);
    mongoc_collection_destroy(col);
    mongoc_client_destroy(c);
    return n;
}

static void wait_ids(const char *db, int lo, int hi, int64_t want, int limit_s)
{
    int64_t until = tu_now_ms() + (int64_t)limit_s * 1000;

    while (count_ids(db, lo, hi) != want) {
        if (tu_now_ms() > until) {
            fail_msg("%s.kv: %lld documents with _id %d..%d after %d s, want %lld", db,
                     (long long)count_ids(db, lo, hi), lo, hi, limit_s, (long long)want);
        }
        tu_sleep_ms(100);
    }
}

/* The checkpoint of pipeline "binlog" in db: "file:pos". */
static void checkpoint(const char *db, char *out, size_t outsz)
{
    mongoc_client_t *c = mongo();
    mongoc_collection_t *col = mongoc_client_get_collection(c, db, "_mysync_checkpoints");
    bson_t *filter = BCON_NEW("_id", BCON_UTF8("binlog"));
    mongoc_cursor_t *cur = mongoc_collection_find_with_opts(col, filter, NULL, NULL);
    const bson_t *doc;
    bson_iter_t f, p;

    if (!mongoc_cursor_next(cur, &doc) || !bson_iter_init_find(&f, doc, "file") ||
        !bson_iter_init_find(&p, doc, "pos")) {
        fail_msg("no checkpoint in %s", db);
    }
    snprintf(out, outsz, "%s:%lld", bson_iter_utf8(&f, NULL), (long long)bson_iter_as_int64(&p));
    mongoc_cursor_destroy(cur);
    bson_destroy(filter);
    mongoc_collection_destroy(col);
    mongoc_client_destroy(c);
}

static void drop_db(const char *name)
{
    mongoc_client_t *c = mongo();
    mongoc_database_t *d = mongoc_client_get_database(c, name);

    mongoc_database_drop(d, NULL);
    mongoc_database_destroy(d);
    mongoc_client_destroy(c);
}

/* ---- daemons ---------------------------------------------------------------------------- */

struct env {
    char v[24][256];
    const char *p[25];
    size_t n;
};

/* Adds "NAME=value", replacing an earlier value of NAME. */
static void env_add(struct env *e, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void env_add(struct env *e, const char *fmt, ...)
{
    char kv[256];
    size_t i = 0, klen;
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(kv, sizeof(kv), fmt, ap);
    va_end(ap);
    klen = strcspn(kv, "=") + 1;
    while (i < e->n && strncmp(e->v[i], kv, klen) != 0) {
        i++;
    }
    assert_true(i < 24);
    snprintf(e->v[i], sizeof(e->v[0]), "%s", kv);
    e->p[i] = e->v[i];
    if (i == e->n) {
        e->n++;
        e->p[e->n] = NULL;
    }
}

/* A daemon replicating ith into mongo_db, control plane on listen (more with env_add). */
static void env_init(struct env *e, const char *mongo_db, const char *listen)
{
    memset(e, 0, sizeof(*e));
    env_add(e, "MYSQL_HOST=127.0.0.1");
    env_add(e, "MYSQL_PORT=%s", tu_rig("MS_RIG_MARIADB_PORT"));
    env_add(e, "MYSQL_USER=%s", tu_rig("MS_RIG_MYSYNC_USER"));
    env_add(e, "MYSQL_PASSWORD=%s", tu_rig("MS_RIG_MYSYNC_PASSWORD"));
    env_add(e, "MYSQL_DATABASE=" MYSQL_DB);
    env_add(e, "MONGODB_URI=%s/?serverSelectionTimeoutMS=3000", tu_rig("MS_RIG_MONGO_URI"));
    env_add(e, "MONGODB_DATABASE=%s", mongo_db);
    env_add(e, "SYNC_MODE=binlog");
    env_add(e, "SYNC_FLUSH_MS=50");
    env_add(e, "SYNC_RETRY_DELAY=200ms");
    env_add(e, "HTTP_LISTEN=%s", listen);
}

static void daemon_fail(struct tu_bg *b, const char *what)
{
    char *log = tu_slurp(b->log, NULL);

    tu_bg_cleanup(b);
    fail_msg("%s\n--- mysync log ---\n%s", what, log != NULL ? log : "(none)");
}

/* Starts the daemon and waits until it replicates; returns its HTTP port. */
static int daemon_start(struct tu_bg *b, const struct env *e)
{
    const char *argv[] = {getenv("MS_MYSYNC"), NULL};
    char *log, *at;
    int port;

    assert_true(tu_bg_start(b, argv, e->p));
    log = tu_bg_wait_log(b, "replicating into", 60);
    if (log == NULL) {
        daemon_fail(b, "mysync did not start replicating");
    }
    at = strstr(log, "http listening");
    at = at != NULL ? strstr(at, " port=") : NULL;
    port = at != NULL ? (int)strtol(at + 6, NULL, 10) : 0;
    free(log);
    if (port <= 0) {
        daemon_fail(b, "no \"http listening ... port=N\" line");
    }
    return port;
}

static void daemon_stop_clean(struct tu_bg *b)
{
    int rc = tu_bg_stop(b, SIGTERM, 60);

    if (rc != 0) {
        daemon_fail(b, "SIGTERM did not end in exit 0");
    }
    tu_bg_cleanup(b);
}

/* The target databases of this run: new names each run (mongo-java-server's H2 store, once
 * restarted, can keep the _id index of a dropped collection: a reused name then fails). */
static char db_a[32], db_b[32], db_c[32];

/* Daemon A serves most cases: a token, loopback, every change of ith into db_a. */
static struct tu_bg daemon_a;
static int port_a;

static int group_setup(void **state)
{
    struct env e;

    (void)state;
    curl_global_init(CURL_GLOBAL_DEFAULT);
    mongoc_init();
    sqlf("DROP DATABASE IF EXISTS " MYSQL_DB "; CREATE DATABASE " MYSQL_DB
         "; CREATE TABLE " MYSQL_DB ".kv (id INT PRIMARY KEY, n INT)");
    snprintf(db_a, sizeof(db_a), "ith_%d_a", (int)getpid());
    snprintf(db_b, sizeof(db_b), "ith_%d_b", (int)getpid());
    snprintf(db_c, sizeof(db_c), "ith_%d_c", (int)getpid());
    env_init(&e, db_a, "127.0.0.1:0");
    env_add(&e, "HTTP_TOKEN=" TOKEN);
    port_a = daemon_start(&daemon_a, &e);
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    tu_bg_cleanup(&daemon_a);
    drop_db(db_a);
    drop_db(db_b);
    drop_db(db_c);
    mongoc_cleanup();
    curl_global_cleanup();
    return 0;
}

/* ---- the cases -------------------------------------------------------------------------- */

static void status_and_health(void **state)
{
    struct resp r;
    bson_t *doc;
    bson_iter_t it;

    (void)state;
    sqlf("INSERT INTO " MYSQL_DB ".kv VALUES (1, 1), (2, 2); UPDATE " MYSQL_DB
         ".kv SET n = 3 WHERE id = 1; DELETE FROM " MYSQL_DB ".kv WHERE id = 2");
    wait_ids(db_a, 1, 2, 1, 60);
    expect(port_a, "GET", "/sync/status", NULL, NULL, 200, &r);
    assert_string_equal(r.ctype, "application/json");
    doc = json(&r);
    resp_free(&r);
    assert_true(flag(doc, "sync_enabled"));
    assert_false(flag(doc, "paused"));
    assert_string_equal(str(doc, (const char *[]){"mode", NULL}), "binlog");
    assert_string_equal(str(doc, (const char *[]){"mode_reason", NULL}), "SYNC_MODE=binlog");
    assert_non_null(strstr(str(doc, (const char *[]){"last_sync", NULL}), "Z"));
    it = must(doc, (const char *[]){"next_sync", NULL});
    assert_true(BSON_ITER_HOLDS_NULL(&it));
    assert_int_equal(num(doc, (const char *[]){"sync_interval_minutes", NULL}), 60);
    assert_int_equal(num(doc, (const char *[]){"tables_synced", NULL}), 1);
    assert_int_equal(num(doc, (const char *[]){"tables", "ith.kv", "inserted", NULL}), 2);
    assert_int_equal(num(doc, (const char *[]){"tables", "ith.kv", "updated", NULL}), 1);
    assert_int_equal(num(doc, (const char *[]){"tables", "ith.kv", "deleted", NULL}), 1);
    assert_int_equal(num(doc, (const char *[]){"tables", "ith.kv", "dead_lettered", NULL}), 0);
    assert_non_null(
        strstr(str(doc, (const char *[]){"tables", "ith.kv", "last_event", NULL}), "Z"));
    assert_true(num(doc, (const char *[]){"collections", "kv", "upserted", NULL}) >= 1);
    assert_non_null(strstr(str(doc, (const char *[]){"binlog", "file", NULL}), "mysql-bin."));
    assert_true(num(doc, (const char *[]){"binlog", "position", NULL}) > 4);
    assert_non_null(strstr(str(doc, (const char *[]){"binlog", "gtid", NULL}), "0-1-"));
    assert_true(num(doc, (const char *[]){"lag_seconds", NULL}) >= 0);
    assert_true(num(doc, (const char *[]){"sync_metrics", "total_records", NULL}) >= 1);
    must(doc, (const char *[]){"sync_metrics", "last_sync_duration", NULL});
    assert_int_equal(num(doc, (const char *[]){"sync_metrics", "success_rate", NULL}), 1);
    bson_destroy(doc);

    expect(port_a, "GET", "/sync/health", NULL, NULL, 200, &r);
    doc = json(&r);
    resp_free(&r);
    assert_string_equal(str(doc, (const char *[]){"mysql_connection", NULL}), "ok");
    assert_string_equal(str(doc, (const char *[]){"mongodb_connection", NULL}), "ok");
    assert_string_equal(str(doc, (const char *[]){"last_sync_status", NULL}), "ok");
    assert_int_equal(num(doc, (const char *[]){"pending_operations", NULL}), 0);
    assert_int_equal(num(doc, (const char *[]){"error_count", NULL}), 0);
    bson_destroy(doc);

    /* caught up and idle: lag 0 once a heartbeat has followed the last event */
    tu_sleep_ms(2500);
    doc = get_json(port_a, "/sync/status", 200);
    assert_int_equal(num(doc, (const char *[]){"lag_seconds", NULL}), 0);
    bson_destroy(doc);

    expect(port_a, "HEAD", "/sync/status", NULL, NULL, 200, &r);
    assert_int_equal(r.len, 0);
    resp_free(&r);
}

static void error_codes(void **state)
{
    static const struct {
        const char *method, *path, *auth, *body;
        long code;
        const char *allow, *in_body;
    } cases[] = {
        {"GET", "/nope", NULL, NULL, 404, NULL, "no such endpoint"},
        {"GET", "/", NULL, NULL, 404, NULL, NULL},
        {"GET", "/sync/status/", NULL, NULL, 404, NULL, NULL},
        {"POST", "/sync/status", BEARER, NULL, 405, "GET, HEAD", NULL},
        {"DELETE", "/metrics", NULL, NULL, 405, "GET, HEAD", NULL},
        {"GET", "/sync/pause", NULL, NULL, 405, "POST", NULL},
        {"PUT", "/sync/trigger", BEARER, NULL, 405, "POST", NULL},
        {"POST", "/sync/interval", BEARER, "{\"minutes\": 5}", 405, "PUT", NULL},
        {"POST", "/sync/pause", "Bearer wrong-token", NULL, 403, NULL, "invalid token"},
        {"POST", "/sync/pause", "Bearer " TOKEN "x", NULL, 403, NULL, NULL},
        {"PUT", "/sync/interval", "Bearer nope", "{\"minutes\": 5}", 403, NULL, NULL},
        {"PUT", "/sync/interval", BEARER, "{\"minutes\": 0}", 400, NULL, "between 1 and 10080"},
        {"PUT", "/sync/interval", BEARER, "{\"seconds\": 604801}", 400, NULL, "between"},
        {"PUT", "/sync/interval", BEARER, "{\"minutes\": ", 400, NULL, "not a JSON object"},
        {"PUT", "/sync/interval", BEARER, "", 400, NULL, "empty body"},
        {"PUT", "/sync/interval", BEARER, "{\"hours\": 1}", 400, NULL, "unknown field"},
        {"POST", "/sync/trigger?table=no_such_table", BEARER, NULL, 404, NULL,
         "ith.no_such_table is not a replicated table"},
        {"POST", "/sync/trigger", BEARER, NULL, 202, NULL, "\"accepted\" : true"},
        {"POST", "/sync/trigger?table=kv", BEARER, NULL, 202, NULL, "\"table\" : \"kv\""},
        {"POST", "/sync/trigger?table=ith.kv", BEARER, NULL, 202, NULL, NULL},
    };
    struct resp r;
    char *big = malloc(5001);

    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        http(port_a, cases[i].method, cases[i].path, cases[i].auth, cases[i].body, false, &r);
        if (r.code != cases[i].code ||
            (cases[i].allow != NULL && strcmp(r.allow, cases[i].allow) != 0) ||
            (cases[i].in_body != NULL && strstr(r.body, cases[i].in_body) == NULL)) {
            fail_msg("%s %s: HTTP %ld (Allow: %s), want %ld (Allow: %s, body with '%s')\n%s",
                     cases[i].method, cases[i].path, r.code, r.allow, cases[i].code,
                     cases[i].allow ? cases[i].allow : "-",
                     cases[i].in_body ? cases[i].in_body : "-", r.body);
        }
        if (r.code >= 400) {
            bson_destroy(json(&r)); /* errors are JSON too */
        }
        resp_free(&r);
    }
    /* no credentials or another scheme: 401 with the challenge */
    for (const char *const *a = (const char *const[]){"", "Basic Zm9vOmJhcg==", "Bearer", NULL};
         *a != NULL; a++) {
        http(port_a, "POST", "/sync/pause", (*a)[0] != '\0' ? *a : NULL, NULL, false, &r);
        if (r.code != 401 || strncmp(r.www, "Bearer", 6) != 0) {
            fail_msg("'%s': HTTP %ld, WWW-Authenticate '%s'", *a, r.code, r.www);
        }
        resp_free(&r);
    }
    /* bodies over 4 KiB: announced, and chunked (no Content-Length) */
    memset(big, 'a', 5000);
    big[5000] = '\0';
    expect(port_a, "PUT", "/sync/interval", BEARER, big, 413, &r);
    resp_free(&r);
    assert_int_equal(http(port_a, "PUT", "/sync/interval", BEARER, big, true, &r), 413);
    resp_free(&r);
    free(big);
    /* a chunked body that goes on and on: 413 or the connection closed, never read whole */
    big = malloc(200001);
    memset(big, 'a', 200000);
    big[200000] = '\0';
    http(port_a, "PUT", "/sync/interval", BEARER, big, true, &r);
    if (r.code != 0 && r.code != 413) {
        fail_msg("a 200 kB chunked body: HTTP %ld", r.code);
    }
    resp_free(&r);
    free(big);
    expect(port_a, "GET", "/sync/health", NULL, NULL, 200, &r); /* the server is fine */
    resp_free(&r);
    /* 409: a trigger while paused */
    expect(port_a, "POST", "/sync/pause", BEARER, NULL, 200, &r);
    resp_free(&r);
    expect(port_a, "POST", "/sync/trigger", BEARER, NULL, 409, &r);
    resp_free(&r);
    expect(port_a, "POST", "/sync/resume", BEARER, NULL, 200, &r);
    resp_free(&r);
    /* GETs are open: no credentials needed, wrong ones ignored */
    expect(port_a, "GET", "/sync/health", "Bearer wrong", NULL, 200, &r);
    resp_free(&r);
}

static void interval_in_status(void **state)
{
    static const struct {
        const char *body;
        int64_t seconds;
        double minutes;
    } cases[] = {
        {"{\"minutes\": 5}", 300, 5},
        {"{\"seconds\": 90}", 90, 1.5},
        {"{\"minutes\": 60}", 3600, 60},
    };

    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct resp r;
        bson_t *doc;
        bson_iter_t it;
        expect(port_a, "PUT", "/sync/interval", BEARER, cases[i].body, 200, &r);
        doc = json(&r);
        assert_int_equal(num(doc, (const char *[]){"sync_interval_seconds", NULL}),
                         cases[i].seconds);
        bson_destroy(doc);
        resp_free(&r);
        doc = get_json(port_a, "/sync/status", 200);
        assert_int_equal(num(doc, (const char *[]){"sync_interval_seconds", NULL}),
                         cases[i].seconds);
        it = must(doc, (const char *[]){"sync_interval_minutes", NULL});
        assert_true(bson_iter_as_double(&it) == cases[i].minutes);
        bson_destroy(doc);
    }
}

/* Runs the Prometheus client's parser on text with the required sample names: its exit. */
static int check_metrics(const char *text, const char *const *required, char **out)
{
    char *path = tu_write_temp(text), script[1024];
    const char *argv[40] = {getenv("MS_PYTHON"), script, path};
    size_t n = 3;
    struct tu_proc p;

    snprintf(script, sizeof(script), "%s/tests/support/check_metrics.py", getenv("MS_SOURCE_ROOT"));
    for (size_t i = 0; required != NULL && required[i] != NULL && n < 39; i++) {
        argv[n++] = required[i];
    }
    argv[n] = NULL;
    assert_true(tu_run(argv, NULL, 60, &p));
    unlink(path);
    free(path);
    *out = strdup(p.out[0] != '\0' ? p.out : p.err);
    tu_proc_cleanup(&p);
    return p.status;
}

static void metrics_parse(void **state)
{
    static const char *const required[] = {
        "mysync_events_total",
        "mysync_documents_written_total",
        "mysync_batch_size_bucket",
        "mysync_batch_size_sum",
        "mysync_batch_size_count",
        "mysync_batch_duration_seconds_bucket",
        "mysync_replication_lag_seconds",
        "mysync_queue_depth",
        "mysync_dead_letters_total",
        "mysync_errors_total",
        "mysync_up",
        "mysync_last_success_timestamp_seconds",
        "mysync_poll_runs_total",
        "process_resident_memory_bytes",
        "process_cpu_seconds_total",
        "process_open_fds",
        "process_max_fds",
        "process_start_time_seconds",
        "process_virtual_memory_bytes",
        NULL,
    };
    /* malformed or inconsistent expositions the checker must refuse */
    static const char *const bad[] = {
        "# HELP a_total A.\n# TYPE a_total counter\na_total{x=\"1\" 1\n",
        "# HELP a_total A.\n# TYPE a_total counter\na_total one\n",
        "# TYPE a_total counter\na_total 1\n",
        ("# HELP h H.\n# TYPE h histogram\nh_bucket{le=\"1\"} 5\nh_bucket{le=\"2\"} 3\n"
         "h_bucket{le=\"+Inf\"} 5\nh_sum 1\nh_count 5\n"),
        "# HELP h H.\n# TYPE h histogram\nh_bucket{le=\"1\"} 1\nh_sum 1\nh_count 1\n",
        "# HELP a_total A.\n# TYPE a_total counter\na_total 1\na_total 2\n",
        "# HELP g G.\n# TYPE g gauge\ng 1",
    };
    struct resp r;
    char *verdict;

    (void)state;
    expect(port_a, "GET", "/metrics", NULL, NULL, 200, &r);
    assert_string_equal(r.ctype, "text/plain; version=0.0.4; charset=utf-8");
    if (check_metrics(r.body, required, &verdict) != 0) {
        fail_msg("/metrics refused by the Prometheus parser:\n%s\n--- exposition ---\n%s", verdict,
                 r.body);
    }
    print_message("check_metrics.py: %s", verdict);
    free(verdict);
    /* values: the rows of status_and_health, both servers up */
    for (const char *const *want =
             (const char *const[]){"mysync_events_total{table=\"ith.kv\",op=\"insert\"} 2\n",
                                   "mysync_events_total{table=\"ith.kv\",op=\"update\"} 1\n",
                                   "mysync_events_total{table=\"ith.kv\",op=\"delete\"} 1\n",
                                   "mysync_up{target=\"mysql\"} 1\n",
                                   "mysync_up{target=\"mongodb\"} 1\n",
                                   "mysync_poll_runs_total{result=\"success\"} 0\n", NULL};
         *want != NULL; want++) {
        if (strstr(r.body, *want) == NULL) {
            fail_msg("'%s' not in\n%s", *want, r.body);
        }
    }
    resp_free(&r);
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        if (check_metrics(bad[i], NULL, &verdict) == 0) {
            fail_msg("the checker accepted a bad exposition:\n%s", bad[i]);
        }
        free(verdict);
    }
}

static void pause_holds_resume_delivers(void **state)
{
    struct resp r;
    bson_t *doc;
    char cp0[300], cp1[300];
    int64_t inserted0;

    (void)state;
    expect(port_a, "POST", "/sync/pause", BEARER, NULL, 200, &r);
    doc = json(&r);
    assert_true(flag(doc, "paused"));
    assert_false(flag(doc, "sync_enabled"));
    bson_destroy(doc);
    resp_free(&r);
    expect(port_a, "POST", "/sync/pause", BEARER, NULL, 200, &r); /* idempotent */
    resp_free(&r);
    tu_sleep_ms(300); /* a bulk write under way when the pause came finishes */
    checkpoint(db_a, cp0, sizeof(cp0));
    doc = get_json(port_a, "/sync/status", 200);
    inserted0 = num(doc, (const char *[]){"tables", "ith.kv", "inserted", NULL});
    bson_destroy(doc);

    for (int t = 0; t < 5; t++) {
        sqlf("INSERT INTO " MYSQL_DB ".kv VALUES (%d, 0), (%d, 0), (%d, 0), (%d, 0), (%d, 0), "
             "(%d, 0), (%d, 0), (%d, 0), (%d, 0), (%d, 0)",
             100 + t * 10, 101 + t * 10, 102 + t * 10, 103 + t * 10, 104 + t * 10, 105 + t * 10,
             106 + t * 10, 107 + t * 10, 108 + t * 10, 109 + t * 10);
    }
    tu_sleep_ms(2500); /* many flush intervals (50 ms) and idle checkpoints (1 s) */
    assert_int_equal(count_ids(db_a, 100, 149), 0);
    checkpoint(db_a, cp1, sizeof(cp1));
    assert_string_equal(cp1, cp0);
    doc = get_json(port_a, "/sync/status", 200);
    assert_true(flag(doc, "paused"));
    assert_string_equal(str(doc, (const char *[]){"state", NULL}), "paused");
    /* the reader read them: they wait between reader and writer */
    assert_int_equal(num(doc, (const char *[]){"tables", "ith.kv", "inserted", NULL}),
                     inserted0 + 50);
    assert_true(num(doc, (const char *[]){"queue_depth", NULL}) > 0);
    bson_destroy(doc);
    doc = get_json(port_a, "/sync/health", 200); /* paused is not unhealthy */
    assert_string_equal(str(doc, (const char *[]){"last_sync_status", NULL}), "paused");
    assert_true(num(doc, (const char *[]){"pending_operations", NULL}) > 0);
    bson_destroy(doc);

    expect(port_a, "POST", "/sync/resume", BEARER, NULL, 200, &r);
    doc = json(&r);
    assert_false(flag(doc, "paused"));
    bson_destroy(doc);
    resp_free(&r);
    expect(port_a, "POST", "/sync/resume", BEARER, NULL, 200, &r); /* idempotent */
    resp_free(&r);
    wait_ids(db_a, 100, 149, 50, 60);
    for (int64_t until = tu_now_ms() + 10000; strcmp(cp1, cp0) == 0 && tu_now_ms() < until;) {
        tu_sleep_ms(100);
        checkpoint(db_a, cp1, sizeof(cp1));
    }
    assert_string_not_equal(cp1, cp0);
}

/* With a 60 s flush interval and a huge batch, a change waits; a trigger writes it at once. */
static void trigger_flushes_now(void **state)
{
    struct tu_bg b;
    struct env e;
    struct resp r;
    bson_t *doc;
    bson_iter_t it;
    int port;

    (void)state;
    env_init(&e, db_b, "127.0.0.1:0");
    env_add(&e, "HTTP_TOKEN=" TOKEN);
    env_add(&e, "SYNC_FLUSH_MS=60000");
    env_add(&e, "SYNC_BATCH_SIZE=100000");
    port = daemon_start(&b, &e);
    sqlf("INSERT INTO " MYSQL_DB ".kv VALUES (500, 5)");
    tu_sleep_ms(1500);
    if (count_ids(db_b, 500, 500) != 0) {
        daemon_fail(&b, "the change was written before the trigger");
    }
    doc = get_json(port, "/sync/status", 200);
    it = must(doc, (const char *[]){"last_sync", NULL}); /* no checkpoint saved yet */
    assert_true(BSON_ITER_HOLDS_NULL(&it));
    bson_destroy(doc);
    expect(port, "POST", "/sync/trigger?table=kv", BEARER, NULL, 202, &r);
    resp_free(&r);
    wait_ids(db_b, 500, 500, 1, 5);
    for (int64_t until = tu_now_ms() + 5000;; tu_sleep_ms(50)) {
        doc = get_json(port, "/sync/status", 200);
        bool saved =
            find_path(doc, &it, (const char *[]){"last_sync", NULL}) && BSON_ITER_HOLDS_UTF8(&it);
        bson_destroy(doc);
        if (saved) {
            break;
        }
        if (tu_now_ms() > until) {
            daemon_fail(&b, "no checkpoint saved after the trigger");
        }
    }
    daemon_stop_clean(&b);
}

/* Without a token, changes are accepted on a loopback listener only; SYNC_ENABLED=false; port
 * clashes and "off". */
static void token_rules_and_listeners(void **state)
{
    struct tu_bg b;
    struct env e;
    struct resp r;
    bson_t *doc;
    struct tu_proc p;
    char clash[64];
    const char *argv[] = {getenv("MS_MYSYNC"), NULL};
    int port;

    (void)state;
    /* no token on loopback: accepted; SYNC_ENABLED=false starts paused */
    env_init(&e, db_c, "127.0.0.1:0");
    env_add(&e, "SYNC_ENABLED=false");
    port = daemon_start(&b, &e);
    doc = get_json(port, "/sync/status", 200);
    assert_string_equal(str(doc, (const char *[]){"state", NULL}), "paused");
    bson_destroy(doc);
    expect(port, "POST", "/sync/resume", NULL, NULL, 200, &r);
    resp_free(&r);
    doc = get_json(port, "/sync/status", 200);
    assert_string_equal(str(doc, (const char *[]){"state", NULL}), "running");
    bson_destroy(doc);
    expect(port, "POST", "/sync/pause", NULL, NULL, 200, &r);
    resp_free(&r);
    daemon_stop_clean(&b); /* stopped while paused: still exit 0 */

    env_init(&e, db_c, "0.0.0.0:0");
    port = daemon_start(&b, &e);
    expect(port, "POST", "/sync/pause", NULL, NULL, 403, &r);
    assert_non_null(strstr(r.body, "no HTTP_TOKEN is configured"));
    resp_free(&r);
    expect(port, "POST", "/sync/pause", "Bearer anything", NULL, 403, &r);
    resp_free(&r);
    expect(port, "GET", "/sync/status", NULL, NULL, 200, &r);
    resp_free(&r);
    daemon_stop_clean(&b);

    /* the port of daemon A is taken: refused at once, before any server is contacted */
    snprintf(clash, sizeof(clash), "127.0.0.1:%d", port_a);
    env_init(&e, db_c, clash);
    assert_true(tu_run(argv, e.p, 60, &p));
    if (p.status != 69 || strstr(p.err, "Address already in use") == NULL ||
        strstr(p.err, "connected to MySQL") != NULL) {
        fail_msg("port clash: exit %d\n%s", p.status, p.err);
    }
    tu_proc_cleanup(&p);
    /* off: no server (the run ends at the table check) */
    env_init(&e, db_c, "off");
    env_add(&e, "SYNC_TABLES=no_such_table");
    assert_true(tu_run(argv, e.p, 60, &p));
    if (p.status != 78 || strstr(p.err, "http.listen is off") == NULL ||
        strstr(p.err, "http listening") != NULL) {
        fail_msg("http.listen off: exit %d\n%s", p.status, p.err);
    }
    tu_proc_cleanup(&p);
}

static int raw_connect(int port)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    int fd = socket(AF_INET, SOCK_STREAM, 0);

    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_true(fd >= 0);
    assert_int_equal(connect(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    return fd;
}

/* A stalled client is cut after the timeout and blocks nobody meanwhile; one address gets a
 * bounded number of connections. */
static void slow_and_greedy_clients(void **state)
{
    static const char partial[] = "GET /sync/status HTTP/1.1\r\nHost: x\r\n";
    struct resp r;
    int fd = raw_connect(port_a), fds[16];
    int64_t t0 = tu_now_ms(), closed_after;
    struct pollfd pfd = {fd, POLLIN, 0};
    char c;

    (void)state;
    assert_int_equal(write(fd, partial, sizeof(partial) - 1), (ssize_t)sizeof(partial) - 1);
    expect(port_a, "GET", "/sync/health", NULL, NULL, 200, &r);
    assert_true(r.secs < 2);
    resp_free(&r);
    assert_int_equal(poll(&pfd, 1, 20000), 1);
    assert_true(read(fd, &c, 1) <= 0); /* closed without an answer */
    closed_after = tu_now_ms() - t0;
    close(fd);
    print_message("a stalled request was cut after %.1f s\n", (double)closed_after / 1000.0);
    assert_true(closed_after >= 8000 && closed_after <= 15000);

    for (int i = 0; i < 16; i++) {
        fds[i] = raw_connect(port_a);
    }
    tu_sleep_ms(200);
    if (http(port_a, "GET", "/sync/health", NULL, NULL, false, &r) != 0) {
        fail_msg("a 17th connection from one address was served (HTTP %ld)", r.code);
    }
    resp_free(&r);
    for (int i = 0; i < 16; i++) {
        close(fds[i]);
    }
    tu_sleep_ms(300);
    expect(port_a, "GET", "/sync/health", NULL, NULL, 200, &r);
    resp_free(&r);
}

/* Measured, not asserted beyond a liveness bound: request latencies on a kept-alive
 * connection while the daemon replicates. */
static void latency_figures(void **state)
{
    static const char *const paths[] = {"/sync/status", "/metrics", "/sync/health"};
    CURL *c = curl_easy_init();
    struct resp r = {0};

    (void)state;
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &r);
    for (size_t k = 0; k < 3; k++) {
        double t[200], sum = 0;
        char url[256];
        snprintf(url, sizeof(url), "http://127.0.0.1:%d%s", port_a, paths[k]);
        curl_easy_setopt(c, CURLOPT_URL, url);
        for (int i = 0; i < 200; i++) {
            double secs = 0;
            r.len = 0;
            assert_int_equal(curl_easy_perform(c), CURLE_OK);
            curl_easy_getinfo(c, CURLINFO_TOTAL_TIME, &secs);
            t[i] = secs * 1e6;
            sum += t[i];
        }
        for (int i = 1; i < 200; i++) { /* insertion sort */
            for (int j = i; j > 0 && t[j - 1] > t[j]; j--) {
                double x = t[j];
                t[j] = t[j - 1];
                t[j - 1] = x;
            }
        }
        print_message("%-13s 200 requests: median %.0f us, p99 %.0f us, mean %.0f us, %zu bytes\n",
                      paths[k], t[100], t[198], sum / 200, r.len);
        assert_true(t[100] < 100000);
    }
    free(r.body);
    curl_easy_cleanup(c);
}

/* Polls /sync/health until it answers code with key = value. */
static void wait_health(long code, const char *key, const char *value, int limit_s)
{
    int64_t until = tu_now_ms() + (int64_t)limit_s * 1000;

    for (;;) {
        struct resp r;
        bool match = false;
        if (http(port_a, "GET", "/sync/health", NULL, NULL, false, &r) == code) {
            bson_t *doc = json(&r);
            match = strcmp(str(doc, (const char *[]){key, NULL}), value) == 0;
            bson_destroy(doc);
        }
        if (match) {
            resp_free(&r);
            return;
        }
        if (tu_now_ms() > until) {
            fail_msg("/sync/health not %ld with %s %s after %d s: HTTP %ld\n%s", code, key, value,
                     limit_s, r.code, r.body);
        }
        resp_free(&r);
        tu_sleep_ms(250);
    }
}

static void expect_metric(const char *line)
{
    struct resp r;

    expect(port_a, "GET", "/metrics", NULL, NULL, 200, &r);
    if (strstr(r.body, line) == NULL) {
        fail_msg("'%s' not in /metrics", line);
    }
    resp_free(&r);
}

static void unhealthy_while_a_server_is_down(void **state)
{
    struct resp r;
    double slowest = 0;

    (void)state;
    assert_true(tu_rig_ctl("stop-service", "mongo"));
    sqlf("INSERT INTO " MYSQL_DB ".kv VALUES (900, 9)"); /* the writer now retries */
    wait_health(503, "mongodb_connection", "down", 30);
    expect_metric("mysync_up{target=\"mongodb\"} 0\n");
    for (int i = 0; i < 20; i++) { /* replication is stuck; HTTP is not */
        expect(port_a, "GET", "/sync/status", NULL, NULL, 200, &r);
        slowest = r.secs > slowest ? r.secs : slowest;
        resp_free(&r);
    }
    print_message("GET /sync/status while MongoDB is down: slowest of 20 %.1f ms\n",
                  slowest * 1000);
    assert_true(slowest < 1.0);
    assert_true(tu_rig_ctl("start-service", "mongo"));
    wait_health(200, "mongodb_connection", "ok", 60);
    wait_ids(db_a, 900, 900, 1, 60);

    assert_true(tu_rig_ctl("stop-service", "mariadb"));
    wait_health(503, "mysql_connection", "down", 30);
    expect_metric("mysync_up{target=\"mysql\"} 0\n");
    assert_true(tu_rig_ctl("start-service", "mariadb"));
    wait_health(200, "mysql_connection", "ok", 90);
    sqlf("INSERT INTO " MYSQL_DB ".kv VALUES (901, 9)");
    wait_ids(db_a, 901, 901, 1, 60);
}

static void sigterm_exits_clean(void **state)
{
    (void)state;
    daemon_stop_clean(&daemon_a);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(status_and_health),
        cmocka_unit_test(error_codes),
        cmocka_unit_test(interval_in_status),
        cmocka_unit_test(metrics_parse),
        cmocka_unit_test(pause_holds_resume_delivers),
        cmocka_unit_test(trigger_flushes_now),
        cmocka_unit_test(token_rules_and_listeners),
        cmocka_unit_test(slow_and_greedy_clients),
        cmocka_unit_test(latency_figures),
        cmocka_unit_test(unhealthy_while_a_server_is_down),
        cmocka_unit_test(sigterm_exits_clean),
    };
    return tu_finish(cmocka_run_group_tests_name("http", tests, group_setup, group_teardown));
}

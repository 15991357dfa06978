/* The HTTP control plane (include/mysync/http.h) on libmicrohttpd.
 *
 * One internal polling thread serves every connection, with a connection limit, a per-address
 * limit, an idle timeout and a small per-connection memory pool, so slow or greedy clients
 * cannot starve the server. A request is routed on its first call (headers only): unknown
 * paths, wrong methods, missing or wrong credentials and announced oversized bodies are
 * answered before any body is read. */
#define MS_LOG_DOMAIN "http"

#include "mysync/http.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <microhttpd.h>
#include <netdb.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "mysync/config.h"
#include "mysync/log.h"
#include "mysync_build.h"

#define PER_IP_CONNECTIONS 16
#define CONNECTION_MEMORY  (32 * 1024) /* request line and headers must fit */

struct ms_http {
    struct MHD_Daemon *daemon;
    struct ms_http_control ctl;
    pthread_mutex_t token_mu; /* guards token: SIGHUP may replace it while requests run */
    char *token;              /* NULL: none */
    bool loopback;
    int port;
    /* The last answer of each GET route, reused while younger than MS_HTTP_CACHE_US. Touched
     * only by libmicrohttpd's one internal thread; a POST or PUT drops them all. */
    struct {
        struct MHD_Response *r;
        unsigned code;
        int64_t at_us;
    } cache[3]; /* H_STATUS, H_HEALTH, H_METRICS */
    bool niced; /* the server thread's priority lowered (on its first request) */
};

enum handler {
    H_STATUS,
    H_HEALTH,
    H_METRICS,
    H_TRIGGER,
    H_PAUSE,
    H_RESUME,
    H_INTERVAL,
    H_SNAPSHOT
};

struct route {
    const char *path;
    const char *method; /* GET routes answer HEAD too */
    const char *allow;
    enum handler h;
};

static const struct route routes[] = {
    {"/sync/status", "GET", "GET, HEAD", H_STATUS}, {"/sync/health", "GET", "GET, HEAD", H_HEALTH},
    {"/metrics", "GET", "GET, HEAD", H_METRICS},    {"/sync/trigger", "POST", "POST", H_TRIGGER},
    {"/sync/pause", "POST", "POST", H_PAUSE},       {"/sync/resume", "POST", "POST", H_RESUME},
    {"/sync/interval", "PUT", "PUT", H_INTERVAL},   {"/sync/snapshot", "POST", "POST", H_SNAPSHOT},
};

/* The body of a POST or PUT, collected across calls of the access handler. */
struct request {
    const struct route *route;
    size_t len;
    size_t dropped; /* bytes past the limit, read and dropped */
    bool too_large;
    char body[MS_HTTP_MAX_BODY + 1];
};

/* ---- pure parts ------------------------------------------------------------------------ */

bool ms_http_disabled(const char *spec)
{
    return spec == NULL || spec[0] == '\0' || strcasecmp(spec, "off") == 0;
}

bool ms_http_token_equal(const char *expected, const char *presented)
{
    size_t m = strlen(expected), n = strlen(presented);
    unsigned char diff = (unsigned char)(m != n);

    /* every byte of the presented token is compared (with the expected one's, or with 0
     * past its end): the time depends on what the client sent, not on the secret */
    for (size_t i = 0; i < n; i++) {
        unsigned char e = i < m ? (unsigned char)expected[i] : 0;
        diff |= (unsigned char)(e ^ (unsigned char)presented[i]);
    }
    return m > 0 && diff == 0;
}

enum ms_http_auth ms_http_authorize(const char *token, bool loopback, const char *authorization)
{
    const char *cred;

    if (token == NULL || token[0] == '\0') {
        return loopback ? MS_HTTP_AUTH_OK : MS_HTTP_AUTH_NO_TOKEN;
    }
    if (authorization == NULL || strncasecmp(authorization, "Bearer ", 7) != 0) {
        return MS_HTTP_AUTH_MISSING;
    }
    cred = authorization + 7;
    while (*cred == ' ') {
        cred++;
    }
    if (*cred == '\0') {
        return MS_HTTP_AUTH_MISSING;
    }
    return ms_http_token_equal(token, cred) ? MS_HTTP_AUTH_OK : MS_HTTP_AUTH_WRONG;
}

bool ms_http_addr_is_loopback(const struct sockaddr *sa)
{
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)sa;
        return (ntohl(in->sin_addr.s_addr) >> 24) == 127;
    }
    if (sa->sa_family == AF_INET6) {
        const struct in6_addr *a = &((const struct sockaddr_in6 *)sa)->sin6_addr;
        return IN6_IS_ADDR_LOOPBACK(a) || (IN6_IS_ADDR_V4MAPPED(a) && a->s6_addr[12] == 127);
    }
    return false;
}

/* An integral number of a JSON value, or false. */
static bool iter_integer(const bson_iter_t *it, int64_t *out)
{
    switch (bson_iter_type(it)) {
    case BSON_TYPE_INT32:
        *out = bson_iter_int32(it);
        return true;
    case BSON_TYPE_INT64:
        *out = bson_iter_int64(it);
        return true;
    case BSON_TYPE_DOUBLE: {
        double d = bson_iter_double(it);
        if (d != d || d < -1e15 || d > 1e15 || (double)(int64_t)d != d) {
            return false;
        }
        *out = (int64_t)d;
        return true;
    }
    default:
        return false;
    }
}

bool ms_http_parse_interval(const char *body, size_t len, int64_t *seconds, struct ms_error *err)
{
    bson_error_t berr;
    bson_t *doc;
    bson_iter_t it;
    const char *key = NULL;
    int64_t v = 0, max = 0, unit = 1;
    bool ok = false;

    if (len == 0) {
        ms_error_set(err, MS_ERR_HTTP, 400,
                     "empty body: send {\"minutes\": N} or {\"seconds\": N}");
        return false;
    }
    while (len > 0 && (*body == ' ' || *body == '\t' || *body == '\r' || *body == '\n')) {
        body++;
        len--;
    }
    if (len == 0 || *body != '{') { /* libbson would take a top-level array as a document */
        ms_error_set(err, MS_ERR_HTTP, 400, "the body is not a JSON object");
        return false;
    }
    doc = bson_new_from_json((const uint8_t *)body, (ssize_t)len, &berr);
    if (doc == NULL) {
        ms_error_set(err, MS_ERR_HTTP, 400, "the body is not a JSON object: %s", berr.message);
        return false;
    }
    if (!bson_iter_init(&it, doc)) {
        ms_error_set(err, MS_ERR_HTTP, 400, "the body is not a JSON object");
        goto done;
    }
    while (bson_iter_next(&it)) {
        const char *k = bson_iter_key(&it);
        if (strcmp(k, "minutes") != 0 && strcmp(k, "seconds") != 0) {
            ms_error_set(err, MS_ERR_HTTP, 400,
                         "unknown field '%.64s': send {\"minutes\": N} or {\"seconds\": N}", k);
            goto done;
        }
        if (key != NULL) {
            ms_error_set(err, MS_ERR_HTTP, 400, "give one of \"minutes\" or \"seconds\", not both");
            goto done;
        }
        key = k;
        if (!iter_integer(&it, &v)) {
            ms_error_set(err, MS_ERR_HTTP, 400, "\"%s\" must be an integer", k);
            goto done;
        }
    }
    if (key == NULL) {
        ms_error_set(err, MS_ERR_HTTP, 400, "send {\"minutes\": N} or {\"seconds\": N}");
        goto done;
    }
    if (strcmp(key, "minutes") == 0) {
        max = 10080;
        unit = 60;
    } else {
        max = 604800;
    }
    if (v < 1 || v > max) {
        ms_error_set(err, MS_ERR_HTTP, 400, "\"%s\" must be between 1 and %lld", key,
                     (long long)max);
        goto done;
    }
    *seconds = v * unit;
    ok = true;
done:
    bson_destroy(doc);
    return ok;
}

/* ---- responses ------------------------------------------------------------------------- */

static struct MHD_Response *make_response(const char *ctype, const char *body, size_t len,
                                          const struct route *allow, bool challenge)
{
    struct MHD_Response *r =
        MHD_create_response_from_buffer(len, (void *)body, MHD_RESPMEM_MUST_COPY);

    if (r == NULL) {
        return NULL;
    }
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, ctype);
    MHD_add_response_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
    MHD_add_response_header(r, "X-Content-Type-Options", "nosniff");
    if (allow != NULL) {
        MHD_add_response_header(r, MHD_HTTP_HEADER_ALLOW, allow->allow);
    }
    if (challenge) {
        MHD_add_response_header(r, MHD_HTTP_HEADER_WWW_AUTHENTICATE, "Bearer realm=\"mysync\"");
    }
    return r;
}

static enum MHD_Result send_body(struct MHD_Connection *c, unsigned code, const char *ctype,
                                 const char *body, size_t len, const struct route *allow,
                                 bool challenge)
{
    struct MHD_Response *r = make_response(ctype, body, len, allow, challenge);
    enum MHD_Result ret;

    if (r == NULL) {
        return MHD_NO;
    }
    ret = MHD_queue_response(c, code, r);
    MHD_destroy_response(r);
    return ret;
}

static enum MHD_Result send_json(struct MHD_Connection *c, unsigned code, const bson_t *doc,
                                 const struct route *allow, bool challenge)
{
    size_t len;
    char *json = bson_as_relaxed_extended_json(doc, &len);
    char *body;
    enum MHD_Result ret;

    if (json == NULL) {
        return MHD_NO;
    }
    body = malloc(len + 2);
    if (body == NULL) {
        bson_free(json);
        return MHD_NO;
    }
    memcpy(body, json, len);
    body[len] = '\n';
    body[len + 1] = '\0';
    ret = send_body(c, code, "application/json", body, len + 1, allow, challenge);
    free(body);
    bson_free(json);
    return ret;
}

static enum MHD_Result send_error(struct MHD_Connection *c, unsigned code, const char *msg,
                                  const struct route *allow, bool challenge)
{
    bson_t doc = BSON_INITIALIZER;
    enum MHD_Result ret;

    BSON_APPEND_UTF8(&doc, "error", msg);
    BSON_APPEND_INT32(&doc, "status", (int32_t)code);
    ret = send_json(c, code, &doc, allow, challenge);
    bson_destroy(&doc);
    return ret;
}

/* ---- handlers -------------------------------------------------------------------------- */

static int64_t mono_us(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static void cache_drop(struct ms_http *h)
{
    for (size_t i = 0; i < sizeof(h->cache) / sizeof(h->cache[0]); i++) {
        if (h->cache[i].r != NULL) {
            MHD_destroy_response(h->cache[i].r); /* queued copies keep their reference */
            h->cache[i].r = NULL;
        }
    }
}

/* GET /sync/status, /sync/health, /metrics. Rendering one takes 40-80 us (a stats snapshot,
 * BSON to JSON, /proc for process_*); under a client polling flat out that starved the
 * replication it reports on, so an answer is reused for MS_HTTP_CACHE_US: a scraper or a
 * dashboard sees data at most that old, and a POST or PUT drops the cache so that its effect
 * shows in the next GET. */
static enum MHD_Result serve_get(struct ms_http *h, struct MHD_Connection *c, enum handler which)
{
    size_t slot = which == H_STATUS ? 0 : which == H_HEALTH ? 1 : 2;
    int64_t now = mono_us();
    struct MHD_Response *r;
    unsigned code = MHD_HTTP_OK;

    if (h->cache[slot].r != NULL && now - h->cache[slot].at_us < MS_HTTP_CACHE_US) {
        return MHD_queue_response(c, h->cache[slot].code, h->cache[slot].r);
    }
    if (which == H_METRICS) {
        struct ms_metrics m;
        ms_metrics_init(&m);
        h->ctl.metrics(h->ctl.ctx, &m);
        ms_metrics_family(&m, "mysync_build_info", "gauge",
                          "Always 1; the version of mysync in the label.");
        ms_metrics_u64(&m, "mysync_build_info", (const char *[]){"version", MYSYNC_VERSION, NULL},
                       1);
        ms_metrics_process(&m);
        r = make_response("text/plain; version=0.0.4; charset=utf-8", m.data != NULL ? m.data : "",
                          m.len, NULL, false);
        ms_metrics_cleanup(&m);
    } else {
        bson_t doc = BSON_INITIALIZER;
        size_t len;
        char *json, *body = NULL;

        if (which == H_STATUS) {
            h->ctl.status(h->ctl.ctx, &doc);
        } else if (!h->ctl.health(h->ctl.ctx, &doc)) {
            code = MHD_HTTP_SERVICE_UNAVAILABLE;
        }
        json = bson_as_relaxed_extended_json(&doc, &len);
        bson_destroy(&doc);
        if (json != NULL && (body = malloc(len + 1)) != NULL) {
            memcpy(body, json, len);
            body[len] = '\n';
        }
        bson_free(json);
        r = body != NULL ? make_response("application/json", body, len + 1, NULL, false) : NULL;
        free(body);
    }
    if (r == NULL) {
        return MHD_NO;
    }
    if (h->cache[slot].r != NULL) {
        MHD_destroy_response(h->cache[slot].r);
    }
    h->cache[slot].r = r;
    h->cache[slot].code = code;
    h->cache[slot].at_us = now;
    return MHD_queue_response(c, code, r);
}

static enum MHD_Result serve_change(struct ms_http *h, struct MHD_Connection *c, struct request *rq)
{
    bson_t doc = BSON_INITIALIZER;
    struct ms_error err = {0};
    enum MHD_Result ret;
    unsigned code = MHD_HTTP_OK;
    bool ok = true;

    cache_drop(h);
    switch (rq->route->h) {
    case H_PAUSE:
        ok = h->ctl.pause(h->ctl.ctx, &doc, &err);
        break;
    case H_RESUME:
        ok = h->ctl.resume(h->ctl.ctx, &doc, &err);
        break;
    case H_TRIGGER: {
        const char *table = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "table");
        if (table != NULL && table[0] == '\0') {
            table = NULL;
        }
        ok = h->ctl.trigger(h->ctl.ctx, table, &doc, &err);
        code = MHD_HTTP_ACCEPTED;
        break;
    }
    case H_SNAPSHOT: {
        const char *table = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "table");
        if (table != NULL && table[0] == '\0') {
            table = NULL;
        }
        if (h->ctl.snapshot == NULL) {
            ms_error_set(&err, MS_ERR_HTTP, 404, "no snapshots here");
            ok = false;
        } else {
            ok = h->ctl.snapshot(h->ctl.ctx, table, &doc, &err);
        }
        code = MHD_HTTP_ACCEPTED;
        break;
    }
    case H_INTERVAL: {
        int64_t seconds;
        ok = ms_http_parse_interval(rq->body, rq->len, &seconds, &err) &&
             h->ctl.set_interval(h->ctl.ctx, seconds, &doc, &err);
        break;
    }
    default:
        ms_error_set(&err, MS_ERR_HTTP, 500, "no handler");
        ok = false;
        break;
    }
    if (!ok) {
        unsigned status = err.domain == MS_ERR_HTTP && err.code >= 400 && err.code < 600
                              ? err.code
                              : MHD_HTTP_INTERNAL_SERVER_ERROR;
        ret = send_error(c, status, err.msg, NULL, false);
    } else {
        ret = send_json(c, code, &doc, NULL, false);
    }
    bson_destroy(&doc);
    return ret;
}

static const struct route *find_route(const char *url, const char *method, bool *path_known)
{
    *path_known = false;
    for (size_t i = 0; i < sizeof(routes) / sizeof(routes[0]); i++) {
        if (strcmp(routes[i].path, url) != 0) {
            continue;
        }
        *path_known = true;
        if (strcmp(routes[i].method, method) == 0 ||
            (strcmp(routes[i].method, "GET") == 0 && strcmp(method, "HEAD") == 0)) {
            return &routes[i];
        }
        return NULL;
    }
    return NULL;
}

static const struct route *route_of_path(const char *url)
{
    for (size_t i = 0; i < sizeof(routes) / sizeof(routes[0]); i++) {
        if (strcmp(routes[i].path, url) == 0) {
            return &routes[i];
        }
    }
    return NULL;
}

/* The first call for a request (headers read): routing, credentials, the announced size.
 * Returns a response already queued (*done), or the request state for the body. */
static enum MHD_Result first_call(struct ms_http *h, struct MHD_Connection *c, const char *url,
                                  const char *method, void **con_cls)
{
    bool known;
    const struct route *r = find_route(url, method, &known);
    const char *len_hdr, *auth;
    enum ms_http_auth decision;
    struct request *rq;
    char msg[200];

    if (r == NULL) {
        if (!known) {
            return send_error(c, MHD_HTTP_NOT_FOUND, "no such endpoint", NULL, false);
        }
        const struct route *any = route_of_path(url);
        snprintf(msg, sizeof(msg), "%s is not allowed on %s (allowed: %s)", method, url,
                 any->allow);
        return send_error(c, MHD_HTTP_METHOD_NOT_ALLOWED, msg, any, false);
    }
    if (strcmp(r->method, "GET") == 0) {
        return serve_get(h, c, r->h);
    }
    auth = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_AUTHORIZATION);
    pthread_mutex_lock(&h->token_mu);
    decision = ms_http_authorize(h->token, h->loopback, auth);
    pthread_mutex_unlock(&h->token_mu);
    switch (decision) {
    case MS_HTTP_AUTH_OK:
        break;
    case MS_HTTP_AUTH_MISSING:
        return send_error(c, MHD_HTTP_UNAUTHORIZED,
                          "credentials required: Authorization: Bearer <HTTP_TOKEN>", NULL, true);
    case MS_HTTP_AUTH_WRONG:
        return send_error(c, MHD_HTTP_FORBIDDEN, "invalid token", NULL, false);
    case MS_HTTP_AUTH_NO_TOKEN:
        return send_error(c, MHD_HTTP_FORBIDDEN,
                          "no HTTP_TOKEN is configured: changes are accepted only on a loopback "
                          "listener; set HTTP_TOKEN (or HTTP_TOKEN_FILE)",
                          NULL, false);
    }
    len_hdr = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
    if (len_hdr != NULL && strtoull(len_hdr, NULL, 10) > MS_HTTP_MAX_BODY) {
        snprintf(msg, sizeof(msg), "the body is larger than %d bytes", MS_HTTP_MAX_BODY);
        return send_error(c, 413, msg, NULL, false);
    }
    rq = calloc(1, sizeof(*rq));
    if (rq == NULL) {
        return MHD_NO;
    }
    rq->route = r;
    *con_cls = rq;
    return MHD_YES;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url,
                                  const char *method, const char *version, const char *upload,
                                  size_t *upload_size, void **con_cls)
{
    struct ms_http *h = cls;
    struct request *rq = *con_cls;
    enum MHD_Result ret;
    int64_t t0 = mono_us();

    (void)version;
    if (!h->niced) {
        /* The server thread yields to replication: a client polling flat out then slows down
         * instead of taking the CPU the reader, the writer and the servers need (Linux nice
         * values are per thread). */
        h->niced = true;
        if (setpriority(PRIO_PROCESS, (id_t)syscall(SYS_gettid), MS_HTTP_NICE) != 0) {
            ms_log(MS_LOG_DEBUG, "http: could not lower the server thread's priority");
        }
    }
    if (rq == NULL) {
        ret = first_call(h, c, url, method, con_cls);
        if (*con_cls != NULL) {
            return ret; /* a body may follow */
        }
    } else if (*upload_size > 0) {
        size_t n = *upload_size;
        if (rq->len + n > MS_HTTP_MAX_BODY) {
            rq->too_large = true; /* chunked, without Content-Length: read and dropped */
            rq->dropped += n;
            if (rq->dropped > 16 * MS_HTTP_MAX_BODY) {
                return MHD_NO; /* a stream that does not end: the connection is closed */
            }
        } else {
            memcpy(rq->body + rq->len, upload, n);
            rq->len += n;
        }
        *upload_size = 0;
        return MHD_YES;
    } else if (rq->too_large) {
        char msg[80];
        snprintf(msg, sizeof(msg), "the body is larger than %d bytes", MS_HTTP_MAX_BODY);
        ret = send_error(c, 413, msg, NULL, false);
    } else {
        rq->body[rq->len] = '\0';
        ret = serve_change(h, c, rq);
    }
    if (ms_log_enabled(MS_LOG_DEBUG)) {
        ms_log_kv(MS_LOG_DEBUG,
                  ((struct ms_log_field[]){MS_LF_STR("method", method), MS_LF_STR("path", url),
                                           MS_LF_INT("duration_us", mono_us() - t0)}),
                  "request");
    }
    return ret;
}

static void on_completed(void *cls, struct MHD_Connection *c, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
    (void)cls;
    (void)c;
    (void)toe;
    free(*con_cls);
    *con_cls = NULL;
}

static void on_mhd_log(void *cls, const char *fmt, va_list ap)
    __attribute__((format(printf, 2, 0)));

static void on_mhd_log(void *cls, const char *fmt, va_list ap)
{
    char msg[512];
    size_t n;

    (void)cls;
    if (!ms_log_enabled(MS_LOG_DEBUG)) {
        return;
    }
    vsnprintf(msg, sizeof(msg), fmt, ap);
    n = strlen(msg);
    while (n > 0 && (msg[n - 1] == '\n' || msg[n - 1] == '\r')) {
        msg[--n] = '\0';
    }
    ms_log(MS_LOG_DEBUG, "libmicrohttpd: %s", msg);
}

/* ---- the server ------------------------------------------------------------------------ */

/* A listening socket on host:port; -1 with err set. */
static int listen_on(const char *spec, struct sockaddr_storage *bound, struct ms_error *err)
{
    char host[256], port_s[16];
    int port, fd = -1, one = 1, rc;
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM, .ai_flags = AI_NUMERICSERV}, *res = NULL;
    socklen_t blen = sizeof(*bound);

    if (!ms_config_parse_listen(spec, host, sizeof(host), &port)) {
        ms_error_set(err, MS_ERR_HTTP, 0, "http.listen: '%s' is not host:port", spec);
        return -1;
    }
    snprintf(port_s, sizeof(port_s), "%d", port);
    rc = getaddrinfo(host, port_s, &hints, &res);
    if (rc != 0) {
        ms_error_set(err, MS_ERR_HTTP, 0, "http.listen %s: %s", spec, gai_strerror(rc));
        return -1;
    }
    fd = socket(res->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        ms_error_set(err, MS_ERR_HTTP, (uint32_t)errno, "http.listen %s: socket: %s", spec,
                     strerror(errno));
        goto fail;
    }
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (bind(fd, res->ai_addr, res->ai_addrlen) != 0 || listen(fd, 64) != 0) {
        ms_error_set(err, MS_ERR_HTTP, (uint32_t)errno,
                     "http.listen %s: %s (set HTTP_LISTEN to a free host:port, or off)", spec,
                     strerror(errno));
        goto fail;
    }
    if (getsockname(fd, (struct sockaddr *)bound, &blen) != 0) {
        ms_error_set(err, MS_ERR_HTTP, (uint32_t)errno, "http.listen %s: getsockname: %s", spec,
                     strerror(errno));
        goto fail;
    }
    freeaddrinfo(res);
    return fd;
fail:
    if (fd >= 0) {
        close(fd);
    }
    freeaddrinfo(res);
    return -1;
}

struct ms_http *ms_http_new(const struct ms_http_opts *opts, const struct ms_http_control *control,
                            struct ms_error *err)
{
    struct ms_http *h;
    struct sockaddr_storage bound;
    char addr[INET6_ADDRSTRLEN] = "";
    int fd;
    unsigned flags = MHD_USE_AUTO_INTERNAL_THREAD | MHD_USE_ERROR_LOG;

    fd = listen_on(opts->listen, &bound, err);
    if (fd < 0) {
        return NULL;
    }
    h = calloc(1, sizeof(*h));
    if (h == NULL) {
        close(fd);
        ms_error_set(err, MS_ERR_SYSTEM, ENOMEM, "out of memory");
        return NULL;
    }
    h->ctl = *control;
    pthread_mutex_init(&h->token_mu, NULL);
    h->token = opts->token != NULL && opts->token[0] != '\0' ? strdup(opts->token) : NULL;
    h->loopback = ms_http_addr_is_loopback((struct sockaddr *)&bound);
    if (bound.ss_family == AF_INET6) {
        struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&bound;
        h->port = ntohs(in6->sin6_port);
        inet_ntop(AF_INET6, &in6->sin6_addr, addr, sizeof(addr));
        flags |= MHD_USE_IPv6;
    } else {
        struct sockaddr_in *in = (struct sockaddr_in *)&bound;
        h->port = ntohs(in->sin_port);
        inet_ntop(AF_INET, &in->sin_addr, addr, sizeof(addr));
    }
    h->daemon = MHD_start_daemon(flags, 0, NULL, NULL, on_request, h, MHD_OPTION_EXTERNAL_LOGGER,
                                 on_mhd_log, NULL, MHD_OPTION_LISTEN_SOCKET, fd,
                                 MHD_OPTION_CONNECTION_LIMIT, (unsigned)MS_HTTP_MAX_CONNECTIONS,
                                 MHD_OPTION_PER_IP_CONNECTION_LIMIT, (unsigned)PER_IP_CONNECTIONS,
                                 MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)MS_HTTP_TIMEOUT_S,
                                 MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)CONNECTION_MEMORY,
                                 MHD_OPTION_NOTIFY_COMPLETED, on_completed, NULL, MHD_OPTION_END);
    if (h->daemon == NULL) {
        ms_error_set(err, MS_ERR_HTTP, 0, "http.listen %s: the HTTP server did not start",
                     opts->listen);
        close(fd);
        ms_http_destroy(h);
        return NULL;
    }
    if (h->token == NULL && !h->loopback) {
        ms_log(MS_LOG_WARN, "no HTTP_TOKEN and a non-loopback listener: POST and PUT endpoints "
                            "refuse every request");
    }
    ms_log_kv(MS_LOG_INFO,
              ((struct ms_log_field[]){MS_LF_STR("address", addr), MS_LF_INT("port", h->port),
                                       MS_LF_STR("auth", h->token != NULL ? "token"
                                                         : h->loopback    ? "loopback"
                                                                          : "refused")}),
              "http listening");
    return h;
}

int ms_http_port(const struct ms_http *h)
{
    return h->port;
}

void ms_http_destroy(struct ms_http *h)
{
    if (h == NULL) {
        return;
    }
    if (h->daemon != NULL) {
        MHD_stop_daemon(h->daemon);
    }
    cache_drop(h);
    free(h->token);
    pthread_mutex_destroy(&h->token_mu);
    free(h);
}

void ms_http_set_token(struct ms_http *h, const char *token)
{
    char *copy = token != NULL && token[0] != '\0' ? strdup(token) : NULL;
    char *old;

    pthread_mutex_lock(&h->token_mu);
    old = h->token;
    h->token = copy;
    pthread_mutex_unlock(&h->token_mu);
    free(old);
    if (copy == NULL && !h->loopback) {
        ms_log(MS_LOG_WARN, "no HTTP_TOKEN and a non-loopback listener: POST and PUT endpoints "
                            "refuse every request");
    }
}

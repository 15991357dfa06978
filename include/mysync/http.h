/* The HTTP control plane (libmicrohttpd): status, health, runtime control and Prometheus
 * metrics. The server knows nothing of the pipeline: it calls a small control interface (struct
 * ms_http_control), which the daemon binds to the CDC pipeline and the polling scheduler can
 * bind to itself the same way.
 *
 *   GET  /sync/status      200 control->status
 *   GET  /sync/health      200 or 503 control->health
 *   GET  /metrics          200 control->metrics, then the process_* metrics
 *   POST /sync/trigger     202 control->trigger (?table=NAME)
 *   POST /sync/snapshot    202 control->snapshot (?table=NAME, required)
 *   POST /sync/pause       200 control->pause
 *   POST /sync/resume      200 control->resume
 *   PUT  /sync/interval    200 control->set_interval ({"minutes": N} or {"seconds": N})
 *
 * POST and PUT need "Authorization: Bearer <token>": none -> 401 (WWW-Authenticate), a wrong one
 * -> 403 (constant-time compare). Without a configured token they are refused (403) unless the
 * listener is a loopback address. GETs are open. Unknown path 404, wrong method 405 with Allow,
 * a body over max_body 413, bad JSON or range 400. Responses are JSON built with libbson, except
 * /metrics (text format 0.0.4).
 *
 * One internal thread serves every connection (epoll or poll), so the callbacks must be quick
 * and must not block: they copy a snapshot under a short lock and set flags. */
#ifndef MYSYNC_HTTP_H
#define MYSYNC_HTTP_H

#include <bson/bson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "mysync/error.h"
#include "mysync/metrics.h"

/* The control interface. out documents are initialised (empty) by the server and destroyed by
 * it after the call. Errors carry {MS_ERR_HTTP, <HTTP status>} and a message for the client. */
struct ms_http_control {
    void *ctx;
    void (*status)(void *ctx, bson_t *out);
    bool (*health)(void *ctx, bson_t *out); /* true: healthy (200); false: 503 */
    void (*metrics)(void *ctx, struct ms_metrics *out);
    bool (*pause)(void *ctx, bson_t *out, struct ms_error *err);  /* out: the new state */
    bool (*resume)(void *ctx, bson_t *out, struct ms_error *err); /* out: the new state */
    /* table: NULL for every table. */
    bool (*trigger)(void *ctx, const char *table, bson_t *out, struct ms_error *err);
    bool (*set_interval)(void *ctx, int64_t seconds, bson_t *out, struct ms_error *err);
    /* NULL: 404 for the route. */
    bool (*snapshot)(void *ctx, const char *table, bson_t *out, struct ms_error *err);
};

#define MS_HTTP_MAX_BODY        4096   /* bytes of a request body */
#define MS_HTTP_CACHE_US        200000 /* a GET answer is reused this long (POST/PUT drop it) */
#define MS_HTTP_NICE            19 /* the server thread's nice value: it yields to replication */
#define MS_HTTP_MAX_CONNECTIONS 64
#define MS_HTTP_TIMEOUT_S       10 /* an idle connection is closed after this */

struct ms_http_opts {
    const char *listen; /* host:port (port 0: any free port) */
    const char *token;  /* bearer token for POST/PUT; NULL or "": none */
};

struct ms_http;

/* True when spec (http.listen) turns the server off: NULL, "" or "off". */
bool ms_http_disabled(const char *spec);

/* Binds opts->listen and starts serving. control is copied; its ctx must outlive the server.
 * Errors name the address (MS_ERR_HTTP, code: errno of the failing call, or 0). */
struct ms_http *ms_http_new(const struct ms_http_opts *opts, const struct ms_http_control *control,
                            struct ms_error *err);

/* The port bound (the real one when the configuration said 0). */
int ms_http_port(const struct ms_http *h);

/* Replaces the bearer token (NULL or "": none) for the requests that follow; thread-safe
 * (SIGHUP reload). The token is copied. */
void ms_http_set_token(struct ms_http *h, const char *token);

/* Stops serving: waits for the server thread; requests in progress are cut. Accepts NULL. */
void ms_http_destroy(struct ms_http *h);

/* ---- pure parts, for the server and its tests ----------------------------------------- */

enum ms_http_auth {
    MS_HTTP_AUTH_OK = 0,
    MS_HTTP_AUTH_MISSING,  /* no Bearer credentials: 401 */
    MS_HTTP_AUTH_WRONG,    /* credentials that do not match: 403 */
    MS_HTTP_AUTH_NO_TOKEN, /* no token configured and the listener is not loopback: 403 */
};

/* The decision for a mutating request. token: the configured one (NULL or "": none);
 * loopback: the listener is a loopback address; authorization: the request's header or NULL.
 * The scheme is case-insensitive ("Bearer", "bearer"); the token is compared in time that
 * does not depend on the configured token's content. */
enum ms_http_auth ms_http_authorize(const char *token, bool loopback, const char *authorization);

/* Compares a presented secret with the expected one in time that depends only on the length of
 * the presented one. */
bool ms_http_token_equal(const char *expected, const char *presented);

/* 127.0.0.0/8, ::1 and IPv4-mapped 127.0.0.0/8. */
bool ms_http_addr_is_loopback(const struct sockaddr *sa);

/* Parses a PUT /sync/interval body: exactly one of {"minutes": N} (1..10080) or {"seconds": N}
 * (1..604800), N an integer (an integral double is accepted). *seconds is the interval.
 * false with {MS_ERR_HTTP, 400} and the reason. */
bool ms_http_parse_interval(const char *body, size_t len, int64_t *seconds, struct ms_error *err);

#endif

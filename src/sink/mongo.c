#define MS_LOG_DOMAIN "sink"

#include "mysync/sink.h"
#include "mysync/log.h"

#include <pthread.h>
#include <string.h>

static pthread_once_t init_once = PTHREAD_ONCE_INIT;

/* libmongoc logs through us: one format, one level, and the same redaction. */
static void mongoc_to_ms_log(mongoc_log_level_t level, const char *domain, const char *message,
                             void *ud)
{
    enum ms_log_level l;
    char component[48];

    (void)ud;
    switch (level) {
    case MONGOC_LOG_LEVEL_ERROR:
    case MONGOC_LOG_LEVEL_CRITICAL:
        l = MS_LOG_ERROR;
        break;
    case MONGOC_LOG_LEVEL_WARNING:
        l = MS_LOG_WARN;
        break;
    case MONGOC_LOG_LEVEL_MESSAGE:
    case MONGOC_LOG_LEVEL_INFO:
        l = MS_LOG_INFO;
        break;
    case MONGOC_LOG_LEVEL_DEBUG:
        l = MS_LOG_DEBUG;
        break;
    default:
        l = MS_LOG_TRACE;
        break;
    }
    if (ms_log_enabled(l)) {
        snprintf(component, sizeof(component), "mongoc.%s", domain != NULL ? domain : "");
        ms_log_emit(l, component, NULL, 0, "%s", message);
    }
}

static void do_init(void)
{
    mongoc_log_set_handler(mongoc_to_ms_log, NULL);
    mongoc_init();
}

void ms_sink_global_init(void)
{
    pthread_once(&init_once, do_init);
}

static void set_mongo_error(struct ms_error *err, const bson_error_t *berr, const char *doing)
{
    char msg[sizeof(berr->message)];

    ms_log_redact(berr->message, msg, sizeof(msg));
    ms_error_set(err, MS_ERR_MONGO, berr->code, "%s: %s", doing, msg);
    if (err != NULL) {
        err->retryable = berr->domain == MONGOC_ERROR_STREAM ||
                         berr->domain == MONGOC_ERROR_SERVER_SELECTION ||
                         (berr->domain == MONGOC_ERROR_SERVER &&
                          (berr->code == 91 || berr->code == 189 || berr->code == 10107 ||
                           berr->code == 11600 || berr->code == 11602 || berr->code == 13435));
    }
}

mongoc_client_pool_t *ms_sink_pool_new(const struct ms_config *cfg, struct ms_error *err)
{
    bson_error_t berr;
    mongoc_uri_t *uri = mongoc_uri_new_with_error(cfg->mongodb_uri, &berr);
    mongoc_client_pool_t *pool;

    ms_sink_global_init();
    if (uri == NULL) {
        set_mongo_error(err, &berr, "mongodb.uri");
        return NULL;
    }
    if (!mongoc_uri_has_option(uri, MONGOC_URI_SERVERSELECTIONTIMEOUTMS)) {
        mongoc_uri_set_option_as_int32(uri, MONGOC_URI_SERVERSELECTIONTIMEOUTMS, 5000);
    }
    if (!mongoc_uri_has_option(uri, MONGOC_URI_APPNAME)) {
        mongoc_uri_set_appname(uri, "mysync");
    }
    pool = mongoc_client_pool_new_with_error(uri, &berr);
    mongoc_uri_destroy(uri);
    if (pool == NULL) {
        set_mongo_error(err, &berr, "creating the MongoDB client pool");
        return NULL;
    }
    mongoc_client_pool_set_error_api(pool, MONGOC_ERROR_API_VERSION_2);
    return pool;
}

/* Runs {name: 1} against admin. reply is always initialised. */
static bool admin_command(mongoc_client_t *client, const char *name, bson_t *reply,
                          bson_error_t *berr)
{
    bson_t cmd = BSON_INITIALIZER;
    bool ok;

    BSON_APPEND_INT32(&cmd, name, 1);
    ok = mongoc_client_command_simple(client, "admin", &cmd, NULL, reply, berr);
    bson_destroy(&cmd);
    return ok;
}

bool ms_sink_ping(mongoc_client_pool_t *pool, struct ms_mongo_info *info, struct ms_error *err)
{
    mongoc_client_t *client = mongoc_client_pool_pop(pool);
    bson_t reply;
    bson_error_t berr;
    bson_iter_t it;
    bool ok = false;

    memset(info, 0, sizeof(*info));
    if (!admin_command(client, "ping", &reply, &berr)) {
        set_mongo_error(err, &berr, "cannot reach MongoDB (ping)");
        bson_destroy(&reply);
        goto done;
    }
    bson_destroy(&reply);
    if (admin_command(client, "buildInfo", &reply, &berr) &&
        bson_iter_init_find(&it, &reply, "version") && BSON_ITER_HOLDS_UTF8(&it)) {
        snprintf(info->version, sizeof(info->version), "%s", bson_iter_utf8(&it, NULL));
    }
    bson_destroy(&reply);
    /* "hello" (MongoDB 4.4.2+), else the legacy "isMaster" (mongo-java-server) */
    for (int i = 0; i < 2 && info->max_wire_version == 0; i++) {
        if (admin_command(client, i == 0 ? "hello" : "isMaster", &reply, &berr) &&
            bson_iter_init_find(&it, &reply, "maxWireVersion") && BSON_ITER_HOLDS_NUMBER(&it)) {
            info->max_wire_version = (int32_t)bson_iter_as_int64(&it);
        }
        bson_destroy(&reply);
    }
    ok = true;
done:
    mongoc_client_pool_push(pool, client);
    return ok;
}

/* The MongoDB side: client pool built from the configuration, server checks.
 * (The bulk writer, checkpoint store and dead letters join this module with the CDC core.) */
#ifndef MYSYNC_SINK_H
#define MYSYNC_SINK_H

#include <mongoc/mongoc.h>
#include <stdbool.h>

#include "mysync/config.h"
#include "mysync/error.h"

struct ms_mongo_info {
    char version[64]; /* buildInfo.version */
    int32_t max_wire_version;
};

/* Calls mongoc_init() once per process; safe to call repeatedly. */
void ms_sink_global_init(void);

/* A client pool for cfg->mongodb_uri (appname "mysync", 5 s server selection unless the URI
 * says otherwise). NULL on a bad URI. Free with mongoc_client_pool_destroy(). */
mongoc_client_pool_t *ms_sink_pool_new(const struct ms_config *cfg, struct ms_error *err);

/* Pings the server and reads its version. err is retryable for network failures. */
bool ms_sink_ping(mongoc_client_pool_t *pool, struct ms_mongo_info *info, struct ms_error *err);

#endif

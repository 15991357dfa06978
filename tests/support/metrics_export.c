/* Prints the /metrics text the daemon serves, rendered by the daemon's own code from a view
 * with one table and one collection (ms_control_metrics, then what the HTTP server appends:
 * mysync_build_info and ms_metrics_process, as src/http/server.c does). check_deploy.py takes
 * the exported metric names and labels from it, so the dashboard and alerts can only use
 * names the daemon exports. it_lifecycle runs the same check on a live daemon's /metrics. */
#include <stdio.h>
#include <string.h>

#include "mysync/control.h"
#include "mysync/metrics.h"
#include "mysync_build.h"

int main(void)
{
    struct ms_pipeline_table_stats t = {.inserted = 1, .updated = 1, .deleted = 1};
    struct ms_pipeline_collection_stats c = {.upserted = 1};
    struct ms_control_view v = {.ready = true,
                                .mode = "binlog",
                                .mode_reason = "SYNC_MODE=binlog",
                                .now_ms = 1,
                                .tables = &t,
                                .ntables = 1,
                                .collections = &c,
                                .ncollections = 1};
    struct ms_metrics m;

    snprintf(t.name, sizeof(t.name), "shop.kv");
    snprintf(c.name, sizeof(c.name), "kv");
    ms_metrics_init(&m);
    ms_control_metrics(&v, &m);
    ms_metrics_family(&m, "mysync_build_info", "gauge",
                      "Always 1; the version of mysync in the label.");
    ms_metrics_u64(&m, "mysync_build_info", (const char *[]){"version", MYSYNC_VERSION, NULL}, 1);
    ms_metrics_process(&m);
    fputs(m.data != NULL ? m.data : "", stdout);
    ms_metrics_cleanup(&m);
    return 0;
}

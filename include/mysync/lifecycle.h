/* The daemon's lifecycle around a running pipeline: systemd notifications and SIGHUP reload.
 *
 * Notifications go through libsystemd's sd_notify when mysync is built with it (meson option
 * `systemd`, a feature); otherwise every ms_lifecycle_notify() is a no-op and the daemon works
 * the same (run it as Type=exec then). Under Type=notify the daemon sends READY=1 once the
 * pipeline is checked and about to replicate, STATUS= lines (lag, changes, checkpoint) every
 * few seconds, STOPPING=1 on SIGTERM/SIGINT, and WATCHDOG=1 at half of WatchdogSec= as long as
 * the supervisor thread can take a snapshot of the pipeline and the pipeline is not failed.
 *
 * Reload (SIGHUP): the configuration is loaded again with ms_config_load (the same file, the
 * same environment, the same validation). A file that does not load or validate changes
 * nothing: the error is logged and the running configuration stays. Otherwise every option
 * that differs is logged by key (secrets as "***"): the reloadable ones are applied (log.level,
 * http.token / http.token_file, sync.interval_*, sync.enabled), the others are reported as
 * needing a restart and keep their running value. */
#ifndef MYSYNC_LIFECYCLE_H
#define MYSYNC_LIFECYCLE_H

#include <signal.h>
#include <stdbool.h>

#include "mysync/config.h"
#include "mysync/error.h"
#include "mysync/http.h"
#include "mysync/pipeline.h"
#include "mysync/scheduler.h"

/* True when this build sends systemd notifications (libsystemd). */
bool ms_lifecycle_has_systemd(void);

/* sd_notify(0, state) ("READY=1", "STATUS=...", several lines allowed); nothing without
 * libsystemd or outside systemd (no NOTIFY_SOCKET). */
void ms_lifecycle_notify(const char *state);

struct ms_lifecycle_opts {
    const char *config_path;        /* --config FILE, or NULL (environment only) */
    const struct ms_config *cfg;    /* the configuration the daemon runs with (borrowed) */
    struct ms_pipeline *pipeline;   /* borrowed */
    struct ms_scheduler *scheduler; /* poll mode: a reloaded interval reaches it (borrowed) */
    struct ms_http *http;           /* borrowed; NULL when http.listen is off */
    volatile sig_atomic_t *stop;    /* set by SIGTERM/SIGINT (read only) */
    volatile sig_atomic_t *reload;  /* set by SIGHUP; cleared by the supervisor */
};

struct ms_lifecycle;

/* Starts the supervisor thread (reload, STATUS, WATCHDOG) and sends READY=1. Everything in
 * opts is borrowed until ms_lifecycle_stop(). */
struct ms_lifecycle *ms_lifecycle_start(const struct ms_lifecycle_opts *opts, struct ms_error *err);

/* Reloads the configuration now (what SIGHUP does; called from the supervisor thread).
 * false (and nothing changed) when the configuration does not load; err says why. */
bool ms_lifecycle_reload(struct ms_lifecycle *lc, struct ms_error *err);

/* Stops and joins the supervisor thread, frees everything. Accepts NULL. */
void ms_lifecycle_stop(struct ms_lifecycle *lc);

#endif

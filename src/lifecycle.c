/* The daemon's lifecycle: systemd notifications and SIGHUP reload (include/mysync/lifecycle.h).
 *
 * Signal handlers only set flags (src/main.c); this supervisor thread looks at them every
 * TICK_MS and does the work: reloading, STATUS lines, watchdog keep-alives. */
#define MS_LOG_DOMAIN "lifecycle"

#include "mysync/lifecycle.h"
#include "mysync/clock.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "mysync/control.h"
#include "mysync/log.h"
#include "mysync_build.h"

#if MYSYNC_HAVE_SYSTEMD
#include <systemd/sd-daemon.h>
#endif

#define TICK_MS      100
#define STATUS_EVERY 5000 /* ms between STATUS= updates */

struct ms_lifecycle {
    struct ms_lifecycle_opts o;
    /* What SIGHUP last applied (o.cfg at first; later an owned copy). Reloadable options are
     * compared with it; the others with o.cfg, which is what actually runs. */
    struct ms_config *applied;
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool quit;
    uint64_t watchdog_usec; /* 0: no watchdog requested */
};

bool ms_lifecycle_has_systemd(void)
{
    return MYSYNC_HAVE_SYSTEMD != 0;
}

void ms_lifecycle_notify(const char *state)
{
#if MYSYNC_HAVE_SYSTEMD
    int rc = sd_notify(0, state);
    if (rc < 0) {
        ms_log(MS_LOG_DEBUG, "sd_notify failed: %s", strerror(-rc));
    }
#else
    (void)state;
#endif
}

/* ---- reload ------------------------------------------------------------------------------ */

struct reload {
    struct ms_lifecycle *lc;
    const struct ms_config *next;
    bool restart_pass; /* false: reloadable options (vs applied); true: the others (vs o.cfg) */
    bool level, token, interval, enabled;
    size_t applied, not_live, restart;
    char names[512]; /* keys that changed, for the summary line */
};

static void add_name(struct reload *r, const char *key)
{
    size_t len = strlen(r->names);

    snprintf(r->names + len, sizeof(r->names) - len, "%s%s", len > 0 ? ", " : "", key);
}

static void on_change(const struct ms_config_change *c, void *ud)
{
    struct reload *r = ud;

    if (c->reloadable == r->restart_pass) {
        return; /* the other pass's business */
    }
    add_name(r, c->key);
    if (!c->reloadable) {
        r->restart++;
        ms_log_kv(MS_LOG_WARN,
                  ((struct ms_log_field[]){MS_LF_STR("key", c->key), MS_LF_STR("running", c->from),
                                           MS_LF_STR("file", c->to)}),
                  "reload: %s changed, but it needs a restart: the running value stays", c->key);
        return;
    }
    if (strcmp(c->key, "log.level") == 0) {
        r->level = true;
    } else if (strcmp(c->key, "http.token") == 0 || strcmp(c->key, "http.token_file") == 0) {
        r->token = true;
    } else if (strncmp(c->key, "sync.interval_", 14) == 0) {
        r->interval = true;
    } else if (strcmp(c->key, "sync.enabled") == 0) {
        r->enabled = true;
    } else {
        /* reloadable for the polling scheduler; the binlog pipeline reads it at start */
        r->not_live++;
        ms_log_kv(MS_LOG_WARN,
                  ((struct ms_log_field[]){MS_LF_STR("key", c->key), MS_LF_STR("from", c->from),
                                           MS_LF_STR("to", c->to)}),
                  "reload: %s changed; binlog replication reads it at start only: it applies "
                  "after a restart",
                  c->key);
        return;
    }
    r->applied++;
    ms_log_kv(MS_LOG_INFO,
              ((struct ms_log_field[]){MS_LF_STR("key", c->key), MS_LF_STR("from", c->from),
                                       MS_LF_STR("to", c->to)}),
              "reload: %s changed", c->key);
}

bool ms_lifecycle_reload(struct ms_lifecycle *lc, struct ms_error *err)
{
    struct ms_config *next = calloc(1, sizeof(*next));
    struct reload r = {.lc = lc};
    const char *from = lc->o.config_path != NULL ? lc->o.config_path : "the environment";

    if (next == NULL) {
        ms_error_set(err, MS_ERR_SYSTEM, ENOMEM, "out of memory");
        return false;
    }
    ms_lifecycle_notify("RELOADING=1");
    if (!ms_config_load(next, lc->o.config_path, NULL, err)) {
        ms_log(MS_LOG_ERROR,
               "reload: the configuration from %s does not load; the running configuration "
               "stays: %s",
               from, err != NULL ? err->msg : "invalid configuration");
        ms_config_cleanup(next);
        free(next);
        ms_lifecycle_notify("READY=1");
        return false;
    }
    r.next = next;
    ms_config_diff(lc->applied, next, on_change, &r);
    r.restart_pass = true;
    ms_config_diff(lc->o.cfg, next, on_change, &r);

    if (r.token && lc->o.http != NULL) {
        ms_http_set_token(lc->o.http, next->http_token);
    }
    if (r.interval) {
        ms_pipeline_set_interval(lc->o.pipeline, ms_config_interval_seconds(next));
        if (lc->o.scheduler != NULL) {
            ms_scheduler_set_interval(lc->o.scheduler, ms_config_interval_seconds(next), NULL);
        }
    }
    if (r.enabled) {
        if (next->sync_enabled) {
            ms_pipeline_resume(lc->o.pipeline);
        } else {
            ms_pipeline_pause(lc->o.pipeline);
        }
    }
    ms_log_kv(
        MS_LOG_INFO,
        ((struct ms_log_field[]){MS_LF_INT("applied", (int64_t)r.applied),
                                 MS_LF_INT("restart_needed", (int64_t)(r.restart + r.not_live)),
                                 MS_LF_STR("changed", r.names)}),
        "configuration reloaded from %s", from);
    /* last, so that the lines above show even when the new level hides them from now on */
    if (r.level) {
        ms_log_set_level((enum ms_log_level)next->log_level);
    }
    if (lc->applied != lc->o.cfg) {
        ms_config_cleanup(lc->applied);
        free(lc->applied);
    }
    lc->applied = next;
    ms_lifecycle_notify("READY=1");
    return true;
}

/* ---- supervisor thread ------------------------------------------------------------------ */

static void send_status(struct ms_lifecycle *lc, const char *prefix)
{
    struct ms_control_view v = {.ready = true, .now_ms = ms_clock_wall_ms()};
    char msg[512];

    ms_pipeline_get_stats(lc->o.pipeline, &v.stats);
    snprintf(msg, sizeof(msg),
             "STATUS=%s: lag %.1f s, %" PRIu64 " changes, %" PRIu64 " dead letters, checkpoint "
             "%s:%" PRIu64,
             prefix != NULL                           ? prefix
             : v.stats.fatal                          ? "failed"
             : v.stats.paused                         ? "paused"
             : v.stats.mysql_up && v.stats.mongodb_up ? "replicating"
                                                      : "retrying (a server is down)",
             ms_control_lag_seconds(&v), v.stats.changes, v.stats.dead_lettered,
             v.stats.file[0] != '\0' ? v.stats.file : "-", v.stats.pos);
    ms_lifecycle_notify(msg);
}

static void watchdog(struct ms_lifecycle *lc)
{
    struct ms_pipeline_stats st;

    /* taking the snapshot needs the pipeline's lock: a wedged pipeline stops the keep-alives */
    ms_pipeline_get_stats(lc->o.pipeline, &st);
    if (!st.fatal) {
        ms_lifecycle_notify("WATCHDOG=1");
    }
}

static void *supervise(void *arg)
{
    struct ms_lifecycle *lc = arg;
    int64_t next_status = ms_clock_mono_ms() + STATUS_EVERY, next_dog = ms_clock_mono_ms();
    bool stopping = false;

    pthread_mutex_lock(&lc->mu);
    while (!lc->quit) {
        struct timespec until;
        int64_t t;

        pthread_mutex_unlock(&lc->mu);
        if (*lc->o.reload) {
            struct ms_error err = {0};
            *lc->o.reload = 0;
            ms_log(MS_LOG_INFO, "SIGHUP: reloading the configuration");
            (void)ms_lifecycle_reload(lc, &err);
        }
        t = ms_clock_mono_ms();
        if (*lc->o.stop && !stopping) {
            stopping = true;
            ms_lifecycle_notify("STOPPING=1\nSTATUS=stopping: writing what was read and saving "
                                "the checkpoint");
        }
        if (!stopping && t >= next_status) {
            send_status(lc, NULL);
            next_status = t + STATUS_EVERY;
        }
        if (lc->watchdog_usec > 0 && t >= next_dog) {
            watchdog(lc);
            next_dog = t + (int64_t)(lc->watchdog_usec / 2000);
        }
        pthread_mutex_lock(&lc->mu);
        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_nsec += TICK_MS * 1000000L;
        if (until.tv_nsec >= 1000000000L) {
            until.tv_sec++;
            until.tv_nsec -= 1000000000L;
        }
        if (!lc->quit) {
            pthread_cond_timedwait(&lc->cv, &lc->mu, &until);
        }
    }
    pthread_mutex_unlock(&lc->mu);
    return NULL;
}

struct ms_lifecycle *ms_lifecycle_start(const struct ms_lifecycle_opts *opts, struct ms_error *err)
{
    struct ms_lifecycle *lc = calloc(1, sizeof(*lc));
    int rc;

    if (lc == NULL) {
        ms_error_set(err, MS_ERR_SYSTEM, ENOMEM, "out of memory");
        return NULL;
    }
    lc->o = *opts;
    lc->applied = (struct ms_config *)opts->cfg; /* never modified nor freed through here */
    pthread_mutex_init(&lc->mu, NULL);
    pthread_cond_init(&lc->cv, NULL);
#if MYSYNC_HAVE_SYSTEMD
    if (sd_watchdog_enabled(0, &lc->watchdog_usec) <= 0) {
        lc->watchdog_usec = 0;
    }
#endif
    rc = pthread_create(&lc->thread, NULL, supervise, lc);
    if (rc != 0) {
        ms_error_set(err, MS_ERR_SYSTEM, (uint32_t)rc, "cannot start the supervisor thread: %s",
                     strerror(rc));
        pthread_cond_destroy(&lc->cv);
        pthread_mutex_destroy(&lc->mu);
        free(lc);
        return NULL;
    }
    ms_log_kv(
        MS_LOG_DEBUG,
        ((struct ms_log_field[]){MS_LF_STR("systemd", ms_lifecycle_has_systemd() ? "yes" : "no"),
                                 MS_LF_INT("watchdog_ms", (int64_t)(lc->watchdog_usec / 1000))}),
        "lifecycle supervisor started");
    ms_lifecycle_notify("READY=1");
    send_status(lc, NULL);
    return lc;
}

void ms_lifecycle_stop(struct ms_lifecycle *lc)
{
    if (lc == NULL) {
        return;
    }
    pthread_mutex_lock(&lc->mu);
    lc->quit = true;
    pthread_cond_signal(&lc->cv);
    pthread_mutex_unlock(&lc->mu);
    pthread_join(lc->thread, NULL);
    if (lc->applied != lc->o.cfg) {
        ms_config_cleanup(lc->applied);
        free(lc->applied);
    }
    pthread_cond_destroy(&lc->cv);
    pthread_mutex_destroy(&lc->mu);
    free(lc);
}

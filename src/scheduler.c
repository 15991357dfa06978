/* The polling scheduler (include/mysync/scheduler.h).
 *
 * All state sits in one struct ms_scheduler_status behind one mutex; the functions below
 * read the clock once under it. The runner waits on a CLOCK_MONOTONIC condition variable
 * that every change it cares about signals. */
#define MS_LOG_DOMAIN "scheduler"

#include "mysync/scheduler.h"
#include "mysync/clock.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "mysync/log.h"

#define TICK_MS             200 /* the runner looks at *stop and the clock at least this often */
#define DEFAULT_FAILED_RUNS 3

/* What the pending next run is, which decides how set_interval moves it. */
enum next_kind {
    NEXT_INTERVAL, /* an interval after base_ms */
    NEXT_RETRY,    /* a backoff after base_ms */
    NEXT_NOW,      /* brought to now by trigger or resume */
};

struct ms_scheduler {
    pthread_mutex_t mu;
    pthread_cond_t cv; /* CLOCK_MONOTONIC; broadcast on trigger, resume, set_interval, end */
    const struct ms_scheduler_clock *clock;
    double jitter;
    int64_t max_retries, retry_delay_ms, max_failed_runs;
    uint64_t rng; /* splitmix64 state */
    /* The uniform draw in [0, 1) that jitters the pending interval: drawn at creation and when
     * a run begins, used when it ends, and again by set_interval, so that changing the
     * interval scales the delay instead of drawing a new one. */
    double draw;
    enum next_kind next_kind;
    int64_t base_ms; /* the last run's end, or creation */
    bool runner;     /* an ms_scheduler_run() is active */
    struct ms_scheduler_status st;
};

static int64_t real_now(void *u)
{
    (void)u;
    return ms_clock_wall_ms();
}

static const struct ms_scheduler_clock real_clock = {.now_ms = real_now};

/* ---- jitter ------------------------------------------------------------------------------- */

static uint64_t splitmix64(uint64_t *state)
{
    uint64_t z = (*state += 0x9e3779b97f4a7c15ULL);

    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static double next_draw(struct ms_scheduler *s)
{
    return (double)(splitmix64(&s->rng) >> 11) * 0x1.0p-53; /* 53 random bits: [0, 1) */
}

/* ms spread over the integers of [ms - span, ms + span], span = ms * jitter rounded down, by a
 * draw u in [0, 1). Integer bounds inside ms * [1 - jitter, 1 + jitter], whatever the
 * rounding: no delay ever falls outside them. */
static int64_t jittered(const struct ms_scheduler *s, int64_t ms, double u)
{
    int64_t span = (int64_t)((double)ms * s->jitter);
    int64_t off = (int64_t)(u * (double)(2 * span + 1));

    if (off > 2 * span) {
        off = 2 * span;
    }
    return ms - span + off;
}

static int64_t interval_ms(const struct ms_scheduler *s)
{
    return s->st.interval_s * 1000;
}

/* retry_delay_ms * 2^(attempt - 1), capped at the interval (before jitter). */
static int64_t backoff_ms(const struct ms_scheduler *s, int64_t attempt)
{
    int64_t d = s->retry_delay_ms, cap = interval_ms(s);

    for (int64_t i = 1; i < attempt && d > 0 && d < cap; i++) {
        d *= 2;
    }
    return d < cap ? d : cap;
}

/* ---- state, under s->mu --------------------------------------------------------------------- */

static int64_t now_ms(const struct ms_scheduler *s)
{
    return s->clock->now_ms(s->clock->u);
}

static void schedule_interval(struct ms_scheduler *s, int64_t from)
{
    s->st.next_ms = from + jittered(s, interval_ms(s), s->draw);
    s->next_kind = NEXT_INTERVAL;
}

/* Nothing is ever scheduled further than a jittered interval ahead (backoffs are capped at
 * it), unless the wall clock went back: then the next run comes an interval from now rather
 * than after the step. */
static void refresh(struct ms_scheduler *s, int64_t now)
{
    int64_t ms = interval_ms(s);

    if (s->st.running || s->st.next_ms - now <= ms + (int64_t)((double)ms * s->jitter)) {
        return;
    }
    ms_log(MS_LOG_WARN,
           "the wall clock went back: the next sync run was %" PRId64 " s ahead, more than an "
           "interval; it moves to an interval from now",
           (s->st.next_ms - now) / 1000);
    s->st.next_ms = now + jittered(s, ms, s->draw);
    if (s->base_ms > now) {
        s->base_ms = now;
    }
}

static bool due_locked(const struct ms_scheduler *s, int64_t now)
{
    return !s->st.paused && !s->st.running && now >= s->st.next_ms;
}

static bool begin_locked(struct ms_scheduler *s, int64_t now)
{
    if (s->st.running || s->st.paused) {
        return false;
    }
    s->st.running = true;
    s->st.trigger_pending = false;
    s->st.last_start_ms = now;
    s->st.runs++;
    s->draw = next_draw(s);
    ms_log(MS_LOG_DEBUG, "sync run starting (attempt %" PRId64 ")", s->st.attempt + 1);
    return true;
}

static void keep_error(struct ms_scheduler *s, const struct ms_error *err, int64_t now)
{
    if (err != NULL && (err->domain != MS_ERR_NONE || err->msg[0] != '\0')) {
        s->st.last_error = *err;
        s->st.last_error.msg[sizeof(s->st.last_error.msg) - 1] = '\0';
    } else {
        ms_error_set(&s->st.last_error, MS_ERR_SYSTEM, 0, "the sync run failed (no error given)");
    }
    s->st.last_error_ms = now;
}

/* A run that gave up (critical, or retries exhausted). */
static void failed_run(struct ms_scheduler *s, int64_t now, const char *why)
{
    s->st.runs_failed++;
    s->st.attempt = 0;
    s->st.failed_streak++;
    schedule_interval(s, now);
    if (s->max_failed_runs > 0 && s->st.failed_streak >= s->max_failed_runs) {
        s->st.paused = true;
        s->st.paused_by_error = true;
        ms_log_kv(MS_LOG_ERROR,
                  ((struct ms_log_field[]){
                      MS_LF_INT("failed_streak", s->st.failed_streak),
                      MS_LF_STR("error_domain", ms_error_domain_name(s->st.last_error.domain)),
                      MS_LF_INT("error_code", s->st.last_error.code)}),
                  "sync run failed (%s), %" PRId64 " in a row: syncing is paused until resumed: %s",
                  why, s->st.failed_streak, s->st.last_error.msg);
        return;
    }
    ms_log_kv(MS_LOG_WARN,
              ((struct ms_log_field[]){
                  MS_LF_INT("failed_streak", s->st.failed_streak),
                  MS_LF_INT("next_in_ms", s->st.next_ms - now),
                  MS_LF_STR("error_domain", ms_error_domain_name(s->st.last_error.domain)),
                  MS_LF_INT("error_code", s->st.last_error.code)}),
              "sync run failed (%s); the next in %" PRId64 " s: %s", why,
              (s->st.next_ms - now) / 1000, s->st.last_error.msg);
}

static void end_locked(struct ms_scheduler *s, enum ms_run_result r, const struct ms_error *err)
{
    int64_t now = now_ms(s), took;

    if (!s->st.running) {
        ms_log(MS_LOG_WARN, "ms_scheduler_end without a run under way: ignored");
        return;
    }
    s->st.running = false;
    s->st.last_end_ms = now;
    s->base_ms = now;
    took = now - s->st.last_start_ms;
    switch (r) {
    case MS_RUN_OK:
        s->st.runs_ok++;
        s->st.attempt = 0;
        s->st.failed_streak = 0;
        s->st.last_ok_ms = now;
        schedule_interval(s, now);
        ms_log_kv(MS_LOG_INFO,
                  ((struct ms_log_field[]){MS_LF_INT("duration_ms", took),
                                           MS_LF_INT("next_in_ms", s->st.next_ms - now)}),
                  "sync run succeeded in %" PRId64 " ms; the next in %" PRId64 " s", took,
                  (s->st.next_ms - now) / 1000);
        break;
    case MS_RUN_RETRY:
        keep_error(s, err, now);
        if (s->st.attempt < s->max_retries) {
            s->st.attempt++;
            s->st.retries++;
            s->st.next_ms = now + jittered(s, backoff_ms(s, s->st.attempt), next_draw(s));
            s->next_kind = NEXT_RETRY;
            ms_log_kv(
                MS_LOG_WARN,
                ((struct ms_log_field[]){
                    MS_LF_INT("attempt", s->st.attempt), MS_LF_INT("max_retries", s->max_retries),
                    MS_LF_INT("retry_in_ms", s->st.next_ms - now),
                    MS_LF_STR("error_domain", ms_error_domain_name(s->st.last_error.domain)),
                    MS_LF_INT("error_code", s->st.last_error.code)}),
                "sync run failed, retry %" PRId64 " of %" PRId64 " in %" PRId64 " ms: %s",
                s->st.attempt, s->max_retries, s->st.next_ms - now, s->st.last_error.msg);
            break;
        }
        failed_run(s, now, "retries exhausted");
        break;
    case MS_RUN_CRITICAL:
    default:
        keep_error(s, err, now);
        failed_run(s, now, "critical");
        break;
    }
    if (s->st.trigger_pending) {
        s->st.trigger_pending = false;
        if (!s->st.paused_by_error) {
            s->st.next_ms = now;
            s->next_kind = NEXT_NOW;
        }
    }
    pthread_cond_broadcast(&s->cv);
}

/* ---- public ------------------------------------------------------------------------------- */

static bool check_opts(const struct ms_scheduler_opts *o, struct ms_error *err)
{
    if (o == NULL) {
        ms_error_set(err, MS_ERR_CONFIG, MS_CONFIG_BAD_VALUE, "scheduler: no options");
        return false;
    }
    if (o->interval_s < 1 || o->interval_s > MS_SCHEDULER_MAX_INTERVAL_S) {
        ms_error_set(err, MS_ERR_CONFIG, MS_CONFIG_BAD_VALUE,
                     "scheduler: interval %" PRId64 " s is out of range (allowed 1..%lld)",
                     o->interval_s, MS_SCHEDULER_MAX_INTERVAL_S);
        return false;
    }
    if (!(o->jitter >= 0.0 && o->jitter < 1.0)) { /* NaN too */
        ms_error_set(err, MS_ERR_CONFIG, MS_CONFIG_BAD_VALUE,
                     "scheduler: jitter %g is out of range (allowed 0 to less than 1)", o->jitter);
        return false;
    }
    if (o->max_retries < 0 || o->retry_delay_ms < 0) {
        ms_error_set(err, MS_ERR_CONFIG, MS_CONFIG_BAD_VALUE,
                     "scheduler: max_retries %" PRId64 " and retry_delay %" PRId64
                     " ms must not be negative",
                     o->max_retries, o->retry_delay_ms);
        return false;
    }
    if (o->clock != NULL && o->clock->now_ms == NULL) {
        ms_error_set(err, MS_ERR_CONFIG, MS_CONFIG_BAD_VALUE, "scheduler: clock without now_ms");
        return false;
    }
    return true;
}

struct ms_scheduler *ms_scheduler_new(const struct ms_scheduler_opts *o, struct ms_error *err)
{
    struct ms_scheduler *s;
    pthread_condattr_t ca;
    int64_t now;

    if (!check_opts(o, err)) {
        return NULL;
    }
    s = calloc(1, sizeof(*s));
    if (s == NULL) {
        ms_error_set(err, MS_ERR_SYSTEM, ENOMEM, "out of memory");
        return NULL;
    }
    s->clock = o->clock != NULL ? o->clock : &real_clock;
    s->jitter = o->jitter;
    s->max_retries = o->max_retries;
    s->retry_delay_ms = o->retry_delay_ms;
    s->max_failed_runs = o->max_failed_runs != 0 ? o->max_failed_runs : DEFAULT_FAILED_RUNS;
    s->rng = o->seed != 0 ? o->seed
                          : (uint64_t)ms_clock_wall_ms() ^ ((uint64_t)getpid() << 32) ^
                                (uint64_t)(uintptr_t)s;
    pthread_mutex_init(&s->mu, NULL);
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&s->cv, &ca);
    pthread_condattr_destroy(&ca);

    now = now_ms(s);
    s->st.interval_s = o->interval_s;
    s->st.paused = o->start_paused;
    s->base_ms = now;
    s->draw = next_draw(s);
    schedule_interval(s, now);
    return s;
}

void ms_scheduler_destroy(struct ms_scheduler *s)
{
    if (s == NULL) {
        return;
    }
    pthread_cond_destroy(&s->cv);
    pthread_mutex_destroy(&s->mu);
    free(s);
}

bool ms_scheduler_due(struct ms_scheduler *s)
{
    bool due;
    int64_t now;

    pthread_mutex_lock(&s->mu);
    now = now_ms(s);
    refresh(s, now);
    due = due_locked(s, now);
    pthread_mutex_unlock(&s->mu);
    return due;
}

bool ms_scheduler_begin(struct ms_scheduler *s)
{
    bool ok;

    pthread_mutex_lock(&s->mu);
    ok = begin_locked(s, now_ms(s));
    pthread_mutex_unlock(&s->mu);
    return ok;
}

void ms_scheduler_end(struct ms_scheduler *s, enum ms_run_result r, const struct ms_error *err)
{
    pthread_mutex_lock(&s->mu);
    end_locked(s, r, err);
    pthread_mutex_unlock(&s->mu);
}

bool ms_scheduler_trigger(struct ms_scheduler *s)
{
    const char *what;
    int64_t now;

    pthread_mutex_lock(&s->mu);
    now = now_ms(s);
    if (s->st.paused) {
        what = "sync run trigger ignored: syncing is paused";
    } else if (s->st.running) {
        s->st.trigger_pending = true;
        what = "sync run triggered: it starts when the one under way ends";
    } else {
        if (s->st.next_ms > now) {
            s->st.next_ms = now;
        }
        s->next_kind = NEXT_NOW;
        what = NULL;
        pthread_cond_broadcast(&s->cv);
    }
    pthread_mutex_unlock(&s->mu);
    ms_log(MS_LOG_INFO, "%s", what != NULL ? what : "sync run triggered");
    return what == NULL;
}

void ms_scheduler_pause(struct ms_scheduler *s)
{
    pthread_mutex_lock(&s->mu);
    s->st.paused = true;
    pthread_mutex_unlock(&s->mu);
    ms_log(MS_LOG_INFO, "syncing paused");
}

void ms_scheduler_resume(struct ms_scheduler *s)
{
    int64_t now;

    pthread_mutex_lock(&s->mu);
    now = now_ms(s);
    s->st.paused = false;
    s->st.paused_by_error = false;
    s->st.failed_streak = 0;
    if (!s->st.running && s->st.next_ms < now) {
        s->st.next_ms = now;
    }
    pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->mu);
    ms_log(MS_LOG_INFO, "syncing resumed");
}

bool ms_scheduler_set_interval(struct ms_scheduler *s, int64_t seconds, struct ms_error *err)
{
    int64_t now, old;

    if (seconds < 1 || seconds > MS_SCHEDULER_MAX_INTERVAL_S) {
        ms_error_set(err, MS_ERR_CONFIG, MS_CONFIG_BAD_VALUE,
                     "sync interval %" PRId64 " s is out of range (allowed 1..%lld)", seconds,
                     MS_SCHEDULER_MAX_INTERVAL_S);
        return false;
    }
    pthread_mutex_lock(&s->mu);
    now = now_ms(s);
    old = s->st.interval_s;
    s->st.interval_s = seconds;
    if (!s->st.running) { /* else end() schedules with the new interval */
        switch (s->next_kind) {
        case NEXT_INTERVAL:
            schedule_interval(s, s->base_ms);
            break;
        case NEXT_RETRY:
            if (s->st.next_ms > s->base_ms + interval_ms(s)) {
                s->st.next_ms = s->base_ms + interval_ms(s);
            }
            break;
        case NEXT_NOW:
            break;
        }
        if (s->st.next_ms < now) {
            s->st.next_ms = now;
        }
    }
    pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->mu);
    ms_log(MS_LOG_INFO, "sync interval changed from %" PRId64 " s to %" PRId64 " s", old, seconds);
    return true;
}

void ms_scheduler_status(struct ms_scheduler *s, struct ms_scheduler_status *out)
{
    int64_t now;

    pthread_mutex_lock(&s->mu);
    now = now_ms(s);
    refresh(s, now);
    *out = s->st;
    if (s->st.running) {
        out->next_ms = now + jittered(s, interval_ms(s), s->draw);
    }
    pthread_mutex_unlock(&s->mu);
}

/* ---- the runner --------------------------------------------------------------------------- */

static void wait_ms(struct ms_scheduler *s, int64_t ms)
{
    struct timespec until;

    clock_gettime(CLOCK_MONOTONIC, &until);
    until.tv_sec += (time_t)(ms / 1000);
    until.tv_nsec += (long)(ms % 1000) * 1000000L;
    if (until.tv_nsec >= 1000000000L) {
        until.tv_sec++;
        until.tv_nsec -= 1000000000L;
    }
    pthread_cond_timedwait(&s->cv, &s->mu, &until);
}

bool ms_scheduler_run(struct ms_scheduler *s, ms_scheduler_fn fn, void *arg,
                      volatile sig_atomic_t *stop)
{
    pthread_mutex_lock(&s->mu);
    if (s->runner) {
        pthread_mutex_unlock(&s->mu);
        ms_log(MS_LOG_ERROR, "a scheduler runner is already active: not starting another");
        return false;
    }
    s->runner = true;
    ms_log(MS_LOG_DEBUG, "scheduler runner started");
    while (*stop == 0) {
        int64_t now = now_ms(s), wait;

        refresh(s, now);
        if (due_locked(s, now)) {
            struct ms_error err = {0};
            enum ms_run_result r;

            begin_locked(s, now);
            pthread_mutex_unlock(&s->mu);
            r = fn(arg, &err);
            pthread_mutex_lock(&s->mu);
            end_locked(s, r, &err);
            continue;
        }
        /* not due: paused, a run begun by someone else, or next still ahead */
        wait = s->st.paused || s->st.running ? TICK_MS : s->st.next_ms - now;
        wait_ms(s, wait < TICK_MS ? wait : TICK_MS);
    }
    s->runner = false;
    pthread_mutex_unlock(&s->mu);
    ms_log(MS_LOG_DEBUG, "scheduler runner stopped");
    return true;
}

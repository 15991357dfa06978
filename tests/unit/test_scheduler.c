/* The polling scheduler on a fake clock: jitter bounds, interval changes, no overlapping runs,
 * retries and backoff, pause and resume; then the runner thread, on the fake clock and on the
 * real one. Nothing waits in real time but the runner tests, and they assert no durations. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mysync/log.h"
#include "mysync/scheduler.h"
#include "testutil.h"

#define T0 1700000000000LL /* the fake clock's start, wall ms */

/* Atomic: the runner tests read it on another thread. */
struct fake_clock {
    _Atomic int64_t now;
};

static int64_t fake_now(void *u)
{
    return atomic_load(&((struct fake_clock *)u)->now);
}

static struct fake_clock fc;
static const struct ms_scheduler_clock fake = {.now_ms = fake_now, .u = &fc};

static void set_now(int64_t ms)
{
    atomic_store(&fc.now, ms);
}

static int64_t now(void)
{
    return atomic_load(&fc.now);
}

static void advance(int64_t ms)
{
    atomic_fetch_add(&fc.now, ms);
}

/* A scheduler on the fake clock, reset to T0; o's seed 0 becomes 42 (deterministic). */
static struct ms_scheduler *make(struct ms_scheduler_opts o)
{
    struct ms_error err = {0};
    struct ms_scheduler *s;

    set_now(T0);
    o.clock = &fake;
    if (o.seed == 0) {
        o.seed = 42;
    }
    s = ms_scheduler_new(&o, &err);
    if (s == NULL) {
        fail_msg("ms_scheduler_new: %s", err.msg);
    }
    return s;
}

static struct ms_scheduler_status status(struct ms_scheduler *s)
{
    struct ms_scheduler_status st;

    ms_scheduler_status(s, &st);
    assert_int_equal(st.runs, st.runs_ok + st.runs_failed + st.retries + (st.running ? 1 : 0));
    return st;
}

static int64_t next_ms(struct ms_scheduler *s)
{
    return status(s).next_ms;
}

/* One run at the current fake time, taking took_ms; err's message is msg (non-OK results). */
static void run_once(struct ms_scheduler *s, enum ms_run_result r, int64_t took_ms, const char *msg)
{
    struct ms_error err = {0};

    assert_true(ms_scheduler_begin(s));
    advance(took_ms);
    if (msg != NULL) {
        ms_error_set(&err, MS_ERR_MYSQL, 2003, "%s", msg);
    }
    ms_scheduler_end(s, r, msg != NULL ? &err : NULL);
}

/* ---- options ------------------------------------------------------------------------------ */

struct opts_case {
    const char *name;
    struct ms_scheduler_opts o;
    const char *error; /* expected substring; NULL = accepted */
};

static const struct opts_case opts_cases[] = {
    {"minimal", {.interval_s = 1}, NULL},
    {"longest", {.interval_s = MS_SCHEDULER_MAX_INTERVAL_S, .jitter = 0.99}, NULL},
    {"zero interval", {.interval_s = 0}, "interval 0 s is out of range"},
    {"negative interval", {.interval_s = -5}, "interval -5 s is out of range"},
    {"interval too long", {.interval_s = MS_SCHEDULER_MAX_INTERVAL_S + 1}, "out of range"},
    {"negative jitter", {.interval_s = 60, .jitter = -0.1}, "jitter -0.1 is out of range"},
    {"jitter 1", {.interval_s = 60, .jitter = 1.0}, "jitter 1 is out of range"},
    {"negative retries", {.interval_s = 60, .max_retries = -1}, "must not be negative"},
    {"negative retry delay", {.interval_s = 60, .retry_delay_ms = -1}, "must not be negative"},
};

static void options(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(opts_cases) / sizeof(opts_cases[0]); i++) {
        const struct opts_case *c = &opts_cases[i];
        struct ms_error err = {0};
        struct ms_scheduler *s = ms_scheduler_new(&c->o, &err);

        if (c->error == NULL && s == NULL) {
            fail_msg("%s: rejected: %s", c->name, err.msg);
        }
        if (c->error != NULL) {
            if (s != NULL || strstr(err.msg, c->error) == NULL) {
                fail_msg("%s: want an error with '%s', got '%s'", c->name, c->error, err.msg);
            }
            assert_int_equal(err.domain, MS_ERR_CONFIG);
            assert_int_equal(err.code, MS_CONFIG_BAD_VALUE);
        }
        ms_scheduler_destroy(s);
    }

    struct ms_scheduler_opts nan = {.interval_s = 60, .jitter = NAN};
    assert_null(ms_scheduler_new(&nan, NULL));
    assert_null(ms_scheduler_new(NULL, NULL));
    ms_scheduler_destroy(NULL);
}

/* ---- 1. jitter bounds --------------------------------------------------------------------- */

#define JITTER_RUNS 10000

struct jitter_case {
    int64_t interval_s;
    double jitter;
    int64_t lo_ms, hi_ms; /* interval * (1 - jitter), interval * (1 + jitter) */
};

static const struct jitter_case jitter_cases[] = {
    {3600, 0.10, 3240000, 3960000},
    {60, 0.25, 45000, 75000},
    {7, 0.50, 3500, 10500},
    {1, 0.10, 900, 1100},
    {604800, 0.10, 544320000, 665280000},
    {3600, 0.0, 3600000, 3600000}, /* no jitter: exact */
    {1, 0.0, 1000, 1000},
};

static void jitter_bounds(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(jitter_cases) / sizeof(jitter_cases[0]); i++) {
        const struct jitter_case *c = &jitter_cases[i];
        struct ms_scheduler *s = make((struct ms_scheduler_opts){
            .interval_s = c->interval_s, .jitter = c->jitter, .seed = 1000 + i});
        int64_t lo = INT64_MAX, hi = INT64_MIN, mid = c->interval_s * 1000;
        int64_t tol = (c->hi_ms - c->lo_ms) / 100; /* "near the bounds": within 1 % of the range */
        size_t below = 0, above = 0;

        for (int k = 0; k < JITTER_RUNS; k++) {
            int64_t d;

            set_now(next_ms(s));
            run_once(s, MS_RUN_OK, 0, NULL);
            d = next_ms(s) - now();
            if (d < c->lo_ms || d > c->hi_ms) {
                fail_msg("interval %lld s, jitter %g: delay %lld ms outside [%lld, %lld]",
                         (long long)c->interval_s, c->jitter, (long long)d, (long long)c->lo_ms,
                         (long long)c->hi_ms);
            }
            lo = d < lo ? d : lo;
            hi = d > hi ? d : hi;
            below += d < mid;
            above += d > mid;
        }
        assert_true(lo - c->lo_ms <= tol);
        assert_true(c->hi_ms - hi <= tol);
        if (c->jitter > 0) { /* both halves of the range are used, about evenly */
            assert_true(below > JITTER_RUNS * 4 / 10);
            assert_true(above > JITTER_RUNS * 4 / 10);
        } else {
            assert_int_equal(lo, mid);
            assert_int_equal(hi, mid);
        }
        assert_int_equal(status(s).runs_ok, JITTER_RUNS);
        ms_scheduler_destroy(s);
    }
}

/* The same seed gives the same delays; another seed others. */
static void jitter_seeded(void **state)
{
    static const uint64_t seeds[] = {7, 7, 8};
    int64_t d[3][16];
    int same = 0;

    (void)state;
    for (size_t i = 0; i < 3; i++) {
        struct ms_scheduler *s =
            make((struct ms_scheduler_opts){.interval_s = 3600, .jitter = 0.1, .seed = seeds[i]});

        for (int k = 0; k < 16; k++) {
            set_now(next_ms(s));
            run_once(s, MS_RUN_OK, 0, NULL);
            d[i][k] = next_ms(s) - now();
        }
        ms_scheduler_destroy(s);
    }
    assert_memory_equal(d[0], d[1], sizeof(d[0]));
    for (int k = 0; k < 16; k++) {
        same += d[0][k] == d[2][k];
    }
    assert_true(same < 4);
}

/* ---- 2. interval change ------------------------------------------------------------------- */

struct interval_case {
    const char *name;
    int64_t interval_s;
    bool ran;           /* a run ended at the base (else the base is the creation, T0) */
    int64_t now_off_ms; /* set_interval is called at base + this */
    int64_t set_to;
    bool ok;
    int64_t want_next_off_ms; /* from the base; -1 = now (due at once) */
};

static const struct interval_case interval_cases[] = {
    {"shorter, before any run", 3600, false, 10000, 60, true, 60000},
    {"longer, before any run", 60, false, 10000, 7200, true, 7200000},
    {"shorter, after a run", 3600, true, 10000, 120, true, 120000},
    {"longer, after a run", 60, true, 30000, 600, true, 600000},
    {"shorter than the time since the run: due now", 3600, true, 200000, 60, true, -1},
    {"unchanged", 600, true, 1000, 600, true, 600000},
    {"the longest", 60, false, 10000, MS_SCHEDULER_MAX_INTERVAL_S, true,
     MS_SCHEDULER_MAX_INTERVAL_S * 1000},
    {"zero rejected", 3600, true, 10000, 0, false, 3600000},
    {"negative rejected", 3600, true, 10000, -60, false, 3600000},
    {"too long rejected", 3600, false, 10000, MS_SCHEDULER_MAX_INTERVAL_S + 1, false, 3600000},
};

static void interval_change(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(interval_cases) / sizeof(interval_cases[0]); i++) {
        const struct interval_case *c = &interval_cases[i];
        struct ms_scheduler *s = make((struct ms_scheduler_opts){.interval_s = c->interval_s});
        struct ms_error err = {0};
        struct ms_scheduler_status st;
        int64_t base = T0, want;
        bool ok;

        if (c->ran) {
            set_now(next_ms(s));
            run_once(s, MS_RUN_OK, 1500, NULL);
            base = now();
        }
        set_now(base + c->now_off_ms);
        ok = ms_scheduler_set_interval(s, c->set_to, &err);
        st = status(s);
        want = c->want_next_off_ms < 0 ? now() : base + c->want_next_off_ms;
        if (ok != c->ok || st.next_ms != want) {
            fail_msg("%s: ok %d (want %d), next base%+lld ms (want %+lld): %s", c->name, ok, c->ok,
                     (long long)(st.next_ms - base), (long long)(want - base), err.msg);
        }
        assert_int_equal(st.interval_s, c->ok ? c->set_to : c->interval_s);
        assert_int_equal(ms_scheduler_due(s), c->want_next_off_ms < 0);
        if (!c->ok) {
            assert_int_equal(err.domain, MS_ERR_CONFIG);
            assert_int_equal(err.code, MS_CONFIG_BAD_VALUE);
            assert_non_null(strstr(err.msg, "out of range"));
        }
        ms_scheduler_destroy(s);
    }
}

/* With jitter, a new interval scales the same draw rather than drawing again. */
static void interval_change_jittered(void **state)
{
    struct ms_scheduler *s = make((struct ms_scheduler_opts){.interval_s = 3600, .jitter = 0.1});
    int64_t d0 = next_ms(s) - T0, d1;

    (void)state;
    assert_true(ms_scheduler_set_interval(s, 60, NULL));
    d1 = next_ms(s) - T0;
    assert_in_range(d1, 54000, 66000);
    assert_true(llabs(d1 - d0 / 60) <= 2);
    assert_true(ms_scheduler_set_interval(s, 3600, NULL));
    assert_true(llabs(next_ms(s) - T0 - d0) <= 60);
    ms_scheduler_destroy(s);
}

/* During a run the new interval applies to the next; a triggered run stays due; a pending
 * retry comes no later than the new interval. */
static void interval_change_states(void **state)
{
    struct ms_scheduler *s = make(
        (struct ms_scheduler_opts){.interval_s = 3600, .max_retries = 5, .retry_delay_ms = 60000});

    (void)state;
    set_now(next_ms(s));
    assert_true(ms_scheduler_begin(s));
    assert_int_equal(next_ms(s), now() + 3600000); /* running: "if it ended now" */
    assert_true(ms_scheduler_set_interval(s, 60, NULL));
    assert_int_equal(next_ms(s), now() + 60000);
    advance(5000);
    ms_scheduler_end(s, MS_RUN_OK, NULL);
    assert_int_equal(next_ms(s), now() + 60000);

    assert_true(ms_scheduler_trigger(s));
    assert_true(ms_scheduler_set_interval(s, 7200, NULL));
    assert_true(ms_scheduler_due(s));

    run_once(s, MS_RUN_RETRY, 0, "down"); /* retry 1 in 60 s */
    assert_int_equal(next_ms(s), now() + 60000);
    assert_true(ms_scheduler_set_interval(s, 10, NULL));
    assert_int_equal(next_ms(s), now() + 10000);
    assert_int_equal(status(s).attempt, 1);
    ms_scheduler_destroy(s);
}

/* ---- 3. no overlap ------------------------------------------------------------------------ */

static void no_overlap(void **state)
{
    struct ms_scheduler *s = make((struct ms_scheduler_opts){.interval_s = 600});
    struct ms_scheduler_status st;

    (void)state;
    assert_false(ms_scheduler_due(s));
    assert_true(ms_scheduler_begin(s)); /* a forced run, not due */
    assert_false(ms_scheduler_begin(s));
    assert_false(ms_scheduler_due(s));
    advance(700000); /* even past the due time */
    assert_false(ms_scheduler_due(s));
    assert_false(ms_scheduler_begin(s));

    /* triggers during the run: one more run right after it, not two */
    assert_false(ms_scheduler_trigger(s));
    assert_false(ms_scheduler_trigger(s));
    assert_true(status(s).trigger_pending);
    ms_scheduler_end(s, MS_RUN_OK, NULL);
    st = status(s);
    assert_false(st.trigger_pending);
    assert_int_equal(st.next_ms, now());
    assert_true(ms_scheduler_due(s));
    run_once(s, MS_RUN_OK, 100, NULL);
    assert_false(ms_scheduler_due(s));
    assert_int_equal(next_ms(s), now() + 600000);
    assert_int_equal(status(s).runs, 2);

    /* a trigger when idle: due at once, and only once */
    advance(1000);
    assert_true(ms_scheduler_trigger(s));
    assert_true(ms_scheduler_trigger(s));
    assert_true(ms_scheduler_due(s));
    run_once(s, MS_RUN_OK, 0, NULL);
    assert_false(ms_scheduler_due(s));

    /* an end without a run changes nothing */
    st = status(s);
    ms_scheduler_end(s, MS_RUN_CRITICAL, NULL);
    assert_int_equal(status(s).runs_failed, st.runs_failed);
    assert_int_equal(status(s).next_ms, st.next_ms);
    ms_scheduler_destroy(s);
}

/* ---- 4. retries --------------------------------------------------------------------------- */

#define MAXSTEPS 8

struct step {
    const char *what; /* also the error message of a failing step; NULL ends the list */
    enum ms_run_result r;
    int64_t delay_ms; /* next - end (jitter 0) */
    int64_t attempt, streak;
    bool paused;
};

struct retry_case {
    const char *name;
    int64_t interval_s, max_retries, retry_delay_ms, max_failed_runs;
    struct step steps[MAXSTEPS];
};

static const struct retry_case retry_cases[] = {
    {"backoff doubles, then the run fails",
     60,
     3,
     1000,
     3,
     {{"r1", MS_RUN_RETRY, 1000, 1, 0},
      {"r2", MS_RUN_RETRY, 2000, 2, 0},
      {"r3", MS_RUN_RETRY, 4000, 3, 0},
      {"r4", MS_RUN_RETRY, 60000, 0, 1},
      {"ok", MS_RUN_OK, 60000, 0, 0}}},
    {"backoff capped at the interval",
     3,
     5,
     1000,
     0,
     {{"r1", MS_RUN_RETRY, 1000, 1, 0},
      {"r2", MS_RUN_RETRY, 2000, 2, 0},
      {"r3", MS_RUN_RETRY, 3000, 3, 0},
      {"r4", MS_RUN_RETRY, 3000, 4, 0},
      {"r5", MS_RUN_RETRY, 3000, 5, 0},
      {"r6", MS_RUN_RETRY, 3000, 0, 1}}},
    {"first delay above the interval",
     2,
     2,
     5000,
     0,
     {{"r1", MS_RUN_RETRY, 2000, 1, 0},
      {"r2", MS_RUN_RETRY, 2000, 2, 0},
      {"r3", MS_RUN_RETRY, 2000, 0, 1}}},
    {"no retry delay: retries at once",
     60,
     2,
     0,
     0,
     {{"r1", MS_RUN_RETRY, 0, 1, 0},
      {"r2", MS_RUN_RETRY, 0, 2, 0},
      {"r3", MS_RUN_RETRY, 60000, 0, 1}}},
    {"critical skips the retries",
     60,
     3,
     1000,
     3,
     {{"c1", MS_RUN_CRITICAL, 60000, 0, 1},
      {"r1", MS_RUN_RETRY, 1000, 1, 1},
      {"c2", MS_RUN_CRITICAL, 60000, 0, 2},
      {"ok", MS_RUN_OK, 60000, 0, 0},
      {"c3", MS_RUN_CRITICAL, 60000, 0, 1}}},
    {"no retries",
     60,
     0,
     1000,
     3,
     {{"r1", MS_RUN_RETRY, 60000, 0, 1}, {"r2", MS_RUN_RETRY, 60000, 0, 2}}},
    {"pauses itself after max_failed_runs",
     60,
     1,
     1000,
     2,
     {{"r1", MS_RUN_RETRY, 1000, 1, 0},
      {"r2", MS_RUN_RETRY, 60000, 0, 1},
      {"c1", MS_RUN_CRITICAL, 60000, 0, 2, true}}},
    {"pauses itself after 3 by default",
     60,
     0,
     1000,
     0,
     {{"c1", MS_RUN_CRITICAL, 60000, 0, 1},
      {"c2", MS_RUN_CRITICAL, 60000, 0, 2},
      {"c3", MS_RUN_CRITICAL, 60000, 0, 3, true}}},
    {"never pauses itself",
     60,
     0,
     1000,
     -1,
     {{"c1", MS_RUN_CRITICAL, 60000, 0, 1},
      {"c2", MS_RUN_CRITICAL, 60000, 0, 2},
      {"c3", MS_RUN_CRITICAL, 60000, 0, 3},
      {"c4", MS_RUN_CRITICAL, 60000, 0, 4},
      {"r5", MS_RUN_RETRY, 60000, 0, 5}}},
};

static void retries(void **state)
{
    char *log = NULL;
    size_t loglen = 0;
    FILE *mem = open_memstream(&log, &loglen);

    (void)state;
    ms_log_set_level(MS_LOG_WARN);
    ms_log_set_stream(mem);
    for (size_t i = 0; i < sizeof(retry_cases) / sizeof(retry_cases[0]); i++) {
        const struct retry_case *c = &retry_cases[i];
        struct ms_scheduler *s =
            make((struct ms_scheduler_opts){.interval_s = c->interval_s,
                                            .max_retries = c->max_retries,
                                            .retry_delay_ms = c->retry_delay_ms,
                                            .max_failed_runs = c->max_failed_runs});
        const char *last_error = "";
        uint64_t failed = 0, retried = 0;

        for (size_t k = 0; k < MAXSTEPS && c->steps[k].what != NULL; k++) {
            const struct step *p = &c->steps[k];
            struct ms_scheduler_status st;

            set_now(next_ms(s));
            if (!ms_scheduler_due(s)) {
                fail_msg("%s, step %s: not due", c->name, p->what);
            }
            run_once(s, p->r, 500, p->r != MS_RUN_OK ? p->what : NULL);
            st = status(s);
            if (p->r != MS_RUN_OK) {
                last_error = p->what;
                retried += st.attempt > 0;
                failed += st.attempt == 0;
            }
            if (st.next_ms - st.last_end_ms != p->delay_ms || st.attempt != p->attempt ||
                st.failed_streak != p->streak || st.paused_by_error != p->paused ||
                st.paused != p->paused) {
                fail_msg("%s, step %s: delay %lld attempt %lld streak %lld paused %d/%d, want "
                         "%lld %lld %lld %d",
                         c->name, p->what, (long long)(st.next_ms - st.last_end_ms),
                         (long long)st.attempt, (long long)st.failed_streak, st.paused,
                         st.paused_by_error, (long long)p->delay_ms, (long long)p->attempt,
                         (long long)p->streak, p->paused);
            }
            assert_string_equal(st.last_error.msg, last_error);
            assert_int_equal(st.retries, retried);
            assert_int_equal(st.runs_failed, failed);
            if (p->paused) { /* no further run until resumed */
                set_now(st.next_ms + 1);
                assert_false(ms_scheduler_due(s));
                assert_false(ms_scheduler_begin(s));
                assert_null(c->steps[k + 1].what);
            }
        }
        ms_scheduler_destroy(s);
    }
    ms_log_set_stream(NULL);
    ms_log_set_level(MS_LOG_ERROR);
    fclose(mem);
    /* the delays were scheduled right, not mended by the clock-went-back guard */
    assert_null(strstr(log, "clock went back"));
    assert_non_null(strstr(log, "sync run failed, retry 1 of 3 in 1000 ms: r1"));
    free(log);
}

/* With jitter, the k-th retry waits retry_delay * 2^(k-1), capped at the interval, +-jitter. */
static void retries_jittered(void **state)
{
    struct ms_scheduler *s = make((struct ms_scheduler_opts){
        .interval_s = 600, .jitter = 0.1, .max_retries = 12, .retry_delay_ms = 1000, .seed = 99});

    (void)state;
    for (int64_t k = 1; k <= 12; k++) {
        int64_t base = 1000LL << (k - 1), d;

        base = base < 600000 ? base : 600000;
        set_now(next_ms(s));
        run_once(s, MS_RUN_RETRY, 0, "connection refused");
        d = next_ms(s) - now();
        if (d < base - base / 10 || d > base + base / 10) {
            fail_msg("retry %lld: %lld ms outside %lld +- 10 %%", (long long)k, (long long)d,
                     (long long)base);
        }
    }
    ms_scheduler_destroy(s);
}

/* Paused by error: the error stays in the status, nothing runs, triggers are refused; resume
 * clears the pause and the streak, not the error (history). */
static void paused_by_error(void **state)
{
    struct ms_scheduler *s =
        make((struct ms_scheduler_opts){.interval_s = 60, .max_failed_runs = 1});
    struct ms_error err = {0};
    struct ms_scheduler_status st;
    char *log = NULL;
    size_t loglen = 0;
    FILE *mem = open_memstream(&log, &loglen);

    (void)state;
    ms_log_set_stream(mem);
    set_now(next_ms(s));
    assert_true(ms_scheduler_begin(s));
    assert_false(ms_scheduler_trigger(s)); /* pending, but dropped when it pauses itself */
    ms_error_set(&err, MS_ERR_MYSQL, 1045, "Access denied for user 'sync'");
    ms_scheduler_end(s, MS_RUN_CRITICAL, &err);
    ms_log_set_stream(NULL);
    fclose(mem);
    assert_non_null(strstr(log, "syncing is paused until resumed: Access denied for user"));
    free(log);

    st = status(s);
    assert_true(st.paused);
    assert_true(st.paused_by_error);
    assert_false(st.trigger_pending);
    assert_int_equal(st.last_error.domain, MS_ERR_MYSQL);
    assert_int_equal(st.last_error.code, 1045);
    assert_string_equal(st.last_error.msg, "Access denied for user 'sync'");
    assert_int_equal(st.last_error_ms, now());
    assert_int_equal(st.next_ms, now() + 60000);
    advance(120000);
    assert_false(ms_scheduler_due(s));
    assert_false(ms_scheduler_trigger(s));

    ms_scheduler_resume(s);
    st = status(s);
    assert_false(st.paused);
    assert_false(st.paused_by_error);
    assert_int_equal(st.failed_streak, 0);
    assert_int_equal(st.next_ms, now());
    assert_string_equal(st.last_error.msg, "Access denied for user 'sync'");
    assert_true(ms_scheduler_due(s));
    run_once(s, MS_RUN_OK, 10, NULL);
    st = status(s);
    assert_int_equal(st.last_ok_ms, now());
    assert_int_equal(st.runs_ok, 1);
    assert_int_equal(st.runs_failed, 1);

    /* a failure without an error still shows one */
    set_now(st.next_ms);
    run_once(s, MS_RUN_CRITICAL, 0, NULL);
    assert_non_null(strstr(status(s).last_error.msg, "no error given"));
    ms_scheduler_destroy(s);
}

/* ---- 5. pause and resume ------------------------------------------------------------------ */

static void pause_resume(void **state)
{
    struct ms_scheduler *s =
        make((struct ms_scheduler_opts){.interval_s = 600, .start_paused = true});
    int64_t next = next_ms(s);

    (void)state;
    assert_int_equal(next, T0 + 600000);
    assert_true(status(s).paused);
    assert_false(status(s).paused_by_error);
    set_now(next + 5000);
    assert_false(ms_scheduler_due(s));
    assert_false(ms_scheduler_begin(s));
    assert_false(ms_scheduler_trigger(s)); /* refused, and not remembered */
    assert_false(status(s).trigger_pending);

    ms_scheduler_resume(s); /* next is past: due at once */
    assert_int_equal(next_ms(s), now());
    assert_true(ms_scheduler_due(s));
    run_once(s, MS_RUN_OK, 1000, NULL);
    next = next_ms(s);
    assert_int_equal(next, now() + 600000);

    /* paused with next ahead, resumed after it passed */
    ms_scheduler_pause(s);
    set_now(next + 1);
    assert_false(ms_scheduler_due(s));
    ms_scheduler_resume(s);
    assert_true(ms_scheduler_due(s));
    assert_int_equal(next_ms(s), now());

    /* paused during a run: it ends normally, the next waits for resume */
    assert_true(ms_scheduler_begin(s));
    ms_scheduler_pause(s);
    advance(2000);
    ms_scheduler_end(s, MS_RUN_OK, NULL);
    next = next_ms(s);
    assert_int_equal(next, now() + 600000);
    assert_true(status(s).paused);
    ms_scheduler_resume(s); /* next still ahead: unchanged */
    assert_int_equal(next_ms(s), next);
    assert_false(ms_scheduler_due(s));
    set_now(next);
    assert_true(ms_scheduler_due(s));
    ms_scheduler_destroy(s);
}

/* next is never left further than one interval ahead when the wall clock steps back. */
static void clock_steps_back(void **state)
{
    struct ms_scheduler *s = make((struct ms_scheduler_opts){.interval_s = 600});

    (void)state;
    set_now(next_ms(s));
    run_once(s, MS_RUN_OK, 0, NULL);
    set_now(now() - 2 * 3600 * 1000);
    assert_int_equal(next_ms(s), now() + 600000);
    assert_false(ms_scheduler_due(s));
    advance(600000);
    assert_true(ms_scheduler_due(s));
    ms_scheduler_destroy(s);
}

/* ---- 6. the runner ------------------------------------------------------------------------ */

/* fn for the runner tests: counts calls, the most callers inside at once, and optionally
 * blocks on a gate so that the test knows a run is under way. */
struct probe {
    atomic_int calls, inside, max_inside;
    atomic_bool gate_closed;
    atomic_int results[4]; /* what the first calls return; then MS_RUN_OK */
};

static enum ms_run_result probe_fn(void *arg, struct ms_error *err)
{
    struct probe *p = arg;
    int in = atomic_fetch_add(&p->inside, 1) + 1;
    int max = atomic_load(&p->max_inside);
    int call = atomic_fetch_add(&p->calls, 1);
    enum ms_run_result r =
        call < 4 ? (enum ms_run_result)atomic_load(&p->results[call]) : MS_RUN_OK;

    while (in > max && !atomic_compare_exchange_weak(&p->max_inside, &max, in)) {
    }
    while (atomic_load(&p->gate_closed)) {
        tu_sleep_ms(1);
    }
    if (r != MS_RUN_OK) {
        ms_error_set(err, MS_ERR_MONGO, 13053, "server selection timeout (call %d)", call);
    }
    atomic_fetch_sub(&p->inside, 1);
    return r;
}

struct runner {
    pthread_t thread;
    struct ms_scheduler *s;
    struct probe *p;
    volatile sig_atomic_t stop;
    bool returned;
};

static void *runner_main(void *arg)
{
    struct runner *r = arg;

    r->returned = ms_scheduler_run(r->s, probe_fn, r->p, &r->stop);
    return NULL;
}

/* Waits for cond, giving up (a failure, not a timing assertion) after a minute. */
#define WAIT_FOR(cond)                                                                             \
    do {                                                                                           \
        int64_t until_ = tu_now_ms() + 60000;                                                      \
        while (!(cond)) {                                                                          \
            if (tu_now_ms() > until_) {                                                            \
                fail_msg("gave up waiting for %s", #cond);                                         \
            }                                                                                      \
            tu_sleep_ms(2);                                                                        \
        }                                                                                          \
    } while (0)

static void runner_real_clock(void **state)
{
    struct ms_scheduler_opts o = {.interval_s = 3600, .jitter = 0.1};
    struct probe p = {0};
    struct runner r = {.p = &p};
    volatile sig_atomic_t stop2 = 0;
    struct ms_scheduler_status st;

    (void)state;
    r.s = ms_scheduler_new(&o, NULL); /* the real clock, a seed from time and pid */
    assert_non_null(r.s);
    assert_int_equal(pthread_create(&r.thread, NULL, runner_main, &r), 0);

    assert_true(ms_scheduler_trigger(r.s));
    WAIT_FOR(status(r.s).runs_ok == 1);
    assert_int_equal(atomic_load(&p.calls), 1);
    st = status(r.s);
    assert_true(st.next_ms - st.last_end_ms >= 3240000);
    assert_false(ms_scheduler_run(r.s, probe_fn, &p, &stop2)); /* one runner at a time */

    /* a slow run: triggers during it give one more run after it, never two at once */
    atomic_store(&p.gate_closed, true);
    assert_true(ms_scheduler_trigger(r.s));
    WAIT_FOR(atomic_load(&p.inside) == 1);
    assert_false(ms_scheduler_trigger(r.s));
    assert_false(ms_scheduler_trigger(r.s));
    assert_false(ms_scheduler_begin(r.s));
    atomic_store(&p.gate_closed, false);
    WAIT_FOR(status(r.s).runs_ok == 3);
    st = status(r.s);
    assert_false(st.trigger_pending);
    assert_true(st.next_ms - st.last_end_ms >= 3240000);
    assert_int_equal(st.runs, 3);

    /* stops while paused too */
    ms_scheduler_pause(r.s);
    r.stop = 1;
    assert_int_equal(pthread_join(r.thread, NULL), 0);
    assert_true(r.returned);
    assert_int_equal(atomic_load(&p.calls), 3);
    assert_int_equal(atomic_load(&p.max_inside), 1);
    ms_scheduler_destroy(r.s);
}

/* The runner on the fake clock: it notices the time passing, retries after the backoff, and
 * puts fn's error into the status. */
static void runner_fake_clock(void **state)
{
    struct probe p = {.results = {MS_RUN_RETRY}};
    struct runner r = {.p = &p};
    struct ms_scheduler_status st;

    (void)state;
    r.s = make(
        (struct ms_scheduler_opts){.interval_s = 60, .max_retries = 2, .retry_delay_ms = 5000});
    assert_int_equal(pthread_create(&r.thread, NULL, runner_main, &r), 0);
    set_now(T0 + 60000);
    WAIT_FOR(status(r.s).retries == 1);
    st = status(r.s);
    assert_int_equal(st.attempt, 1);
    assert_int_equal(st.next_ms, T0 + 65000);
    assert_int_equal(st.last_error.domain, MS_ERR_MONGO);
    assert_string_equal(st.last_error.msg, "server selection timeout (call 0)");
    advance(5000);
    WAIT_FOR(status(r.s).runs_ok == 1);
    st = status(r.s);
    assert_int_equal(st.attempt, 0);
    assert_int_equal(st.next_ms, T0 + 125000);
    r.stop = 1;
    assert_int_equal(pthread_join(r.thread, NULL), 0);
    assert_true(r.returned);
    assert_int_equal(atomic_load(&p.calls), 2);
    ms_scheduler_destroy(r.s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(options),
        cmocka_unit_test(jitter_bounds),
        cmocka_unit_test(jitter_seeded),
        cmocka_unit_test(interval_change),
        cmocka_unit_test(interval_change_jittered),
        cmocka_unit_test(interval_change_states),
        cmocka_unit_test(no_overlap),
        cmocka_unit_test(retries),
        cmocka_unit_test(retries_jittered),
        cmocka_unit_test(paused_by_error),
        cmocka_unit_test(pause_resume),
        cmocka_unit_test(clock_steps_back),
        cmocka_unit_test(runner_real_clock),
        cmocka_unit_test(runner_fake_clock),
    };

    ms_log_set_level(MS_LOG_ERROR); /* thousands of runs; paused_by_error reads its own line */
    return cmocka_run_group_tests_name("scheduler", tests, NULL, NULL);
}

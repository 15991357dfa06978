/* The polling scheduler: when the next sync runs, and what happens after it (issue 6).
 *
 * A run is due every interval, stretched or shrunk by a random factor in [1 - jitter,
 * 1 + jitter] (so that replicas started together spread out). Runs never overlap. A run that
 * reports a transient failure (MS_RUN_RETRY: a server is down) is retried after a backoff that
 * doubles from retry_delay_ms, capped at the interval; once max_retries retries have failed
 * too, or at once for MS_RUN_CRITICAL (configuration, permissions, schema), the run counts as
 * failed and the next one comes a whole interval later. After max_failed_runs failed runs in a
 * row the scheduler pauses itself ("paused_by_error") and keeps the error for status, health
 * and metrics, until ms_scheduler_resume().
 *
 * The state machine (due/begin/end and the controls) is pure logic on the times an injectable
 * clock gives, so tests drive it with a fake clock; ms_scheduler_run() is the thread loop that
 * the daemon runs on top of it. Every function is thread-safe (one mutex per scheduler). */
#ifndef MYSYNC_SCHEDULER_H
#define MYSYNC_SCHEDULER_H

#include <signal.h>
#include <stdbool.h>
#include <stdint.h>

#include "mysync/error.h"

/* The longest interval accepted (a year): keeps every millisecond sum far from overflow. */
#define MS_SCHEDULER_MAX_INTERVAL_S (366LL * 24 * 3600)

/* Where the scheduler reads the time. Every time it keeps and reports is this clock's. */
struct ms_scheduler_clock {
    int64_t (*now_ms)(void *u); /* wall clock, ms since the epoch */
    void *u;
};

struct ms_scheduler_opts {
    int64_t interval_s;      /* 1..MS_SCHEDULER_MAX_INTERVAL_S */
    double jitter;           /* fraction in [0, 1): 0.10 = each delay is interval * [0.9, 1.1] */
    int64_t max_retries;     /* >= 0: retries of a run before it counts as failed; 0 = none */
    int64_t retry_delay_ms;  /* >= 0: first retry's delay; doubles with each retry, capped at
                                the interval, then jittered like the interval */
    int64_t max_failed_runs; /* failed runs in a row after which the scheduler pauses itself
                                (the error kept); 0 = the default, 3; < 0 = never */
    uint64_t seed;           /* jitter PRNG seed (deterministic tests); 0 = from time and pid */
    const struct ms_scheduler_clock *clock; /* borrowed until destroy; NULL = the real clock */
    bool start_paused;
};

enum ms_run_result {
    MS_RUN_OK = 0,
    MS_RUN_RETRY = 1,    /* transient (connection errors): retried after a backoff */
    MS_RUN_CRITICAL = 2, /* configuration, permission, schema: no retry, the run failed */
};

/* One sync run, called by ms_scheduler_run() with no scheduler lock held. On failure it fills
 * *err (never NULL here) with what status should show. */
typedef enum ms_run_result (*ms_scheduler_fn)(void *arg, struct ms_error *err);

struct ms_scheduler_status {
    bool paused;          /* by ms_scheduler_pause(), start_paused, or by itself (below) */
    bool paused_by_error; /* max_failed_runs failed runs in a row; last_error says why */
    bool running;         /* between begin and end */
    bool trigger_pending; /* a trigger came during the run: one more run right after it */
    int64_t interval_s;
    /* When the next run starts (wall ms); always known:
     * - idle: the due time (the past when due now, or while paused: it runs at resume);
     * - running: when the next would start if this run ended now with MS_RUN_OK (the jitter of
     *   that interval is drawn when the run begins, so this is exact). */
    int64_t next_ms;
    int64_t last_start_ms, last_end_ms, last_ok_ms, last_error_ms; /* 0 = never */
    /* Every begin() counts in runs; every end() in exactly one of runs_ok, runs_failed (gave
     * up: critical, or retries exhausted) and retries (a retry was scheduled), so
     * runs == runs_ok + runs_failed + retries + running. */
    uint64_t runs, runs_ok, runs_failed, retries;
    int64_t attempt;       /* retries of the current run so far (0: none pending) */
    int64_t failed_streak; /* failed runs in a row (reset by an OK run and by resume) */
    /* The latest failure's error (domain MS_ERR_NONE: none yet). It stays after a later OK
     * run, as history: "failing now" is failed_streak > 0, attempt > 0 or paused_by_error. */
    struct ms_error last_error;
};

/* The first run is due one jittered interval after creation; call ms_scheduler_trigger() for
 * one at once. Fails (MS_ERR_CONFIG, MS_CONFIG_BAD_VALUE) on options out of range. */
struct ms_scheduler *ms_scheduler_new(const struct ms_scheduler_opts *o, struct ms_error *err);

/* Accepts NULL. No ms_scheduler_run() may still be running on s. */
void ms_scheduler_destroy(struct ms_scheduler *s);

/* ---- the state machine; "now" is always the clock's ---------------------------------------- */

/* Not paused, no run under way, and now >= next. */
bool ms_scheduler_due(struct ms_scheduler *s);

/* Starts a run (due or not: a caller may force one): false when one is under way (runs never
 * overlap) or when paused. */
bool ms_scheduler_begin(struct ms_scheduler *s);

/* Ends the run begun last (nothing without one) and computes the next:
 * - MS_RUN_OK: now + interval * jitter factor;
 * - MS_RUN_RETRY: while retries so far < max_retries, now + the backoff; else a failed run;
 * - MS_RUN_CRITICAL: a failed run;
 * - a failed run: now + interval * jitter factor, and after max_failed_runs in a row the
 *   scheduler pauses itself (paused_by_error).
 * err (NULL allowed) is copied into last_error for RETRY and CRITICAL. A trigger that came
 * during the run makes the next run due at once (unless the scheduler paused itself). */
void ms_scheduler_end(struct ms_scheduler *s, enum ms_run_result r, const struct ms_error *err);

/* Makes a run due now: true. False when paused (nothing remembered), or when a run is under
 * way: then one more run comes right after it ends (however many triggers came meanwhile).
 * During a retry backoff the triggered run is that retry, brought forward. */
bool ms_scheduler_trigger(struct ms_scheduler *s);

/* A run under way finishes; no other begins until resume. */
void ms_scheduler_pause(struct ms_scheduler *s);

/* Clears paused, paused_by_error and the failed streak; a next run already past is due now. */
void ms_scheduler_resume(struct ms_scheduler *s);

/* Seconds in 1..MS_SCHEDULER_MAX_INTERVAL_S, else false (MS_ERR_CONFIG, MS_CONFIG_BAD_VALUE)
 * and nothing changes. An interval-based next run moves to the last run's end (or creation,
 * before any) plus the new interval with the same jitter factor, or to now if that is past; a
 * pending retry comes no later than the last end plus the new interval; a triggered run stays
 * due. */
bool ms_scheduler_set_interval(struct ms_scheduler *s, int64_t seconds, struct ms_error *err);

void ms_scheduler_status(struct ms_scheduler *s, struct ms_scheduler_status *out);

/* ---- the runner ---------------------------------------------------------------------------- */

/* Runs the loop on the calling thread (fn and stop non-NULL; stop is borrowed, typically the
 * flag a signal handler sets): waits until a run is due (waking at once on trigger,
 * resume, set_interval and end, and at least every 200 ms to look at *stop and the clock),
 * then begin, fn, end. Returns true when *stop != 0 (looked at between runs: a run under way
 * finishes first); false at once when another ms_scheduler_run() is active on s. Waits are
 * timed on CLOCK_MONOTONIC and recomputed from the clock at every wake-up: a step of the wall
 * clock never stalls the loop. (Forward, it makes a run due early; back, it delays the next
 * one by at most an interval, as next is never kept further than a jittered interval ahead.) */
bool ms_scheduler_run(struct ms_scheduler *s, ms_scheduler_fn fn, void *arg,
                      volatile sig_atomic_t *stop);

#endif

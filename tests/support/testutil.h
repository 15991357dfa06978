/* Helpers shared by the cmocka tests: run a program and capture its output, temp files,
 * and the rig's servers (tests/support/rig.sh) for integration tests. */
#ifndef MYSYNC_TESTUTIL_H
#define MYSYNC_TESTUTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <mysql.h>

struct tu_proc {
    int status; /* exit code, or 128 + signal */
    char *out;  /* captured stdout (NUL-terminated) */
    char *err;  /* captured stderr */
};

/* Runs argv[0] with a clean environment (PATH, HOME, TMPDIR, plus envp "K=V" entries),
 * captures stdout and stderr, kills it after timeout_s. Returns false if it cannot start. */
bool tu_run(const char *const *argv, const char *const *envp, int timeout_s, struct tu_proc *p);
void tu_proc_cleanup(struct tu_proc *p);

/* Monotonic milliseconds (for waits and durations), and a sleep of ms milliseconds. */
int64_t tu_now_ms(void);

/* A test program's exit: the number of failed tests. After a failure it ends with _exit, which
 * skips LeakSanitizer's report of what the failed test's longjmp left allocated, so the failure
 * stays at the end of the log where meson's excerpt shows it. */
int tu_finish(int failures);

/* A libcurl write callback: appends the bytes to the NUL-terminated string *(char **)ud. */
size_t tu_append_body(char *p, size_t sz, size_t n, void *ud);
void tu_sleep_ms(int ms);

/* A program running in the background (a daemon), its stdout and stderr in a temp log file. */
struct tu_bg {
    pid_t pid;  /* -1 once it has exited */
    int status; /* exit code, or 128 + signal, once it has exited */
    char log[256];
};

/* Starts argv[0] with a clean environment like tu_run; false if it cannot start. */
bool tu_bg_start(struct tu_bg *b, const char *const *argv, const char *const *envp);

/* Still running? (Reaps it and sets status when it has exited.) */
bool tu_bg_alive(struct tu_bg *b);

/* Waits until the log contains needle: the whole log (malloc'd), or NULL when the program
 * exited or timeout_s passed first. */
char *tu_bg_wait_log(struct tu_bg *b, const char *needle, int timeout_s);

/* Sends sig and waits up to timeout_s for the exit: the exit code (128 + signal), or -1 when
 * it had to be killed. */
int tu_bg_stop(struct tu_bg *b, int sig, int timeout_s);

/* Kills it if still running and removes the log. */
void tu_bg_cleanup(struct tu_bg *b);

/* Reads a whole file into a new NUL-terminated buffer (its length in *len when non-NULL);
 * NULL when it cannot be read. */
char *tu_slurp(const char *path, size_t *len);

/* Replays every fuzz artifact tests/data/fuzz/<prefix>* (under MS_SOURCE_ROOT) through one, a
 * fuzz driver (tests/fuzz/fuzz_driver.h), each from an exact-size heap copy. Returns how many
 * there were; fails the test when the directory cannot be read. */
size_t tu_fuzz_replay(const char *prefix, void (*one)(const uint8_t *data, size_t size));

/* With MS_FUZZ_SEEDS=DIR in the environment, a unit test program writes its vectors to DIR as
 * fuzz seeds (tests/fuzz/seeds.sh) instead of running its tests: DIR, or NULL. */
const char *tu_fuzz_seeds_dir(void);

/* Writes p[0, n) as the seed file DIR/<name>; exits the program when it cannot. */
void tu_fuzz_seed(const void *p, size_t n, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Writes content to a new temp file; returns its malloc'd path. */
char *tu_write_temp(const char *content);

/* Value of a rig variable (MS_RIG_MARIADB_PORT, MS_RIG_MONGO_URI, ...). Reads
 * $MS_RIG_DIR/rig.env; with no MS_RIG_DIR, starts a rig owned by this process first
 * (stopped by its watchdog when the process exits). Aborts the test run if the rig
 * cannot start: integration tests never skip. The string is borrowed until exit. */
const char *tu_rig(const char *key);

/* Runs "rig.sh CMD SERVICE" on the current rig (restart, stop-service, ...). */
bool tu_rig_ctl(const char *cmd, const char *service);

/* A connection to the rig's MariaDB as its admin user (multi-statements, utf8mb4, 30 s read
 * timeout); port_key NULL = MS_RIG_MARIADB_PORT. Fails the test when it cannot connect. */
MYSQL *tu_mysql_admin(const char *port_key);

/* Runs q (several statements allowed; every result is drained): false when any fails. */
bool tu_sql_try(MYSQL *m, const char *q);

/* The same, failing the test (with the statement and the server's error) when any fails. */
void tu_sql(MYSQL *m, const char *q);

/* SHOW MASTER STATUS: the current binlog file and position. */
void tu_master_status(MYSQL *m, char *file, size_t n, unsigned long long *pos);

#endif

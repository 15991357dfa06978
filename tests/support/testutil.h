/* Helpers shared by the cmocka tests: run a program and capture its output, temp files,
 * and the rig's servers (tests/support/rig.sh) for integration tests. */
#ifndef MYSYNC_TESTUTIL_H
#define MYSYNC_TESTUTIL_H

#include <stdbool.h>
#include <stddef.h>

struct tu_proc {
    int status; /* exit code, or 128 + signal */
    char *out;  /* captured stdout (NUL-terminated) */
    char *err;  /* captured stderr */
};

/* Runs argv[0] with a clean environment (PATH, HOME, TMPDIR, plus envp "K=V" entries),
 * captures stdout and stderr, kills it after timeout_s. Returns false if it cannot start. */
bool tu_run(const char *const *argv, const char *const *envp, int timeout_s, struct tu_proc *p);
void tu_proc_cleanup(struct tu_proc *p);

/* Reads a whole file into a new NUL-terminated buffer (its length in *len when non-NULL);
 * NULL when it cannot be read. */
char *tu_slurp(const char *path, size_t *len);

/* Writes content to a new temp file; returns its malloc'd path. */
char *tu_write_temp(const char *content);

/* Value of a rig variable (MS_RIG_MARIADB_PORT, MS_RIG_MONGO_URI, ...). Reads
 * $MS_RIG_DIR/rig.env; with no MS_RIG_DIR, starts a rig owned by this process first
 * (stopped by its watchdog when the process exits). Aborts the test run if the rig
 * cannot start: integration tests never skip. The string is borrowed until exit. */
const char *tu_rig(const char *key);

/* Runs "rig.sh CMD SERVICE" on the current rig (restart, stop-service, ...). */
bool tu_rig_ctl(const char *cmd, const char *service);

#endif

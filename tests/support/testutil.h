/* Helpers shared by the cmocka tests: run a program and capture its output, temp files,
 * and the rig's servers (tests/support/rig.sh) for integration tests. */
#ifndef MYSYNC_TESTUTIL_H
#define MYSYNC_TESTUTIL_H

#include <stdbool.h>
#include <stddef.h>

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

/* The daemon and the MongoDB side for integration tests: start mysync against the rig,
 * signal it, wait for it, compare MariaDB rows with MongoDB documents (polling with a generous
 * liveness limit, never a speed assertion). Moved out of it_pipeline so every integration test
 * drives the daemon the same way. */
#ifndef MYSYNC_TU_DAEMON_H
#define MYSYNC_TU_DAEMON_H

#include <mongoc/mongoc.h>
#include <mysql.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "testutil.h" /* tu_now_ms, tu_sleep_ms */

/* Longest wait for replication to converge (a liveness bound). */
#define TU_CONVERGE_LIMIT_S 120

struct tu_target {
    const char *name;
    const char *uri_key;
    bool ferret;
};

struct tu_daemon {
    pid_t pid;
    char log[64];
    size_t log_start; /* the log's size when the current run started */
    char env[24][256];
    size_t nenv;
    char config[256];   /* --config FILE when set (tu_daemon_config) */
    char args[12][256]; /* more arguments (tu_daemon_args), e.g. --full --table t */
    size_t nargs;
};

extern const struct tu_target tu_java, tu_ferret;

void tu_sqlf(MYSQL *m, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

mongoc_client_t *tu_mongo(const struct tu_target *t);

/* Every document of db.coll as one relaxed-JSON line each, sorted (for comparisons and
 * failure messages). */
char *tu_dump_collection(mongoc_client_t *c, const char *db, const char *coll, size_t *n);

/* The same with the keys of every (sub)document sorted: documents compare whatever order
 * their fields were written in. */
char *tu_dump_canonical(mongoc_client_t *c, const char *db, const char *coll, size_t *n);

/* lines (each bson_malloc'ed; the array malloc'ed) sorted and joined, one per line ending in
 * a newline; frees them. */
char *tu_join_sorted(char **lines, size_t n);

/* One JSON document in that form (bson_free() it). */
char *tu_canonical_json(const char *json);

bool tu_find_one(mongoc_client_t *c, const char *db, const char *coll, const bson_t *filter,
                 bson_t *out);

void tu_drop_db(mongoc_client_t *c, const char *db);

void tu_daemon_env(struct tu_daemon *d, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* The environment of a daemon replicating mysql_db into mongo_db on target t (more with
 * daemon_env before daemon_start). */
void tu_daemon_init(struct tu_daemon *d, const struct tu_target *t, const char *mysql_db,
                    const char *mongo_db);

/* Runs the daemon with --config path (a YAML file; the environment still overrides it). */
void tu_daemon_config(struct tu_daemon *d, const char *path);
/* Command-line arguments after --config (NULL-terminated list); replaces earlier ones. */
void tu_daemon_args(struct tu_daemon *d, ...);

void tu_daemon_start(struct tu_daemon *d);

/* Sends sig and waits for the exit; returns the exit code (128 + signal when killed). */
int tu_daemon_signal(struct tu_daemon *d, int sig);

/* Runs the daemon to its exit (for refusals); returns the exit code, the log in *log. */
int tu_daemon_run_to_exit(struct tu_daemon *d, char **log);

bool tu_daemon_alive(struct tu_daemon *d);

void tu_daemon_fail(struct tu_daemon *d, const char *what);

void tu_daemon_cleanup(struct tu_daemon *d);

/* Waits for the daemon's "replicating" line (it has checked everything and saved its start
 * position), so changes made afterwards are in its stream. */
void tu_daemon_wait_ready(struct tu_daemon *d);

/* Runs `mysync verify <args> --json` (args NULL-terminated: "--table", "t", ...) with d's
 * environment and config (d
 * itself may be running: a copy is used, with a log of its own). reports (initialised here) gets
 * {"db.t": report, ...} from the JSON lines; *log (malloc'ed) the whole output. Returns the
 * exit code. */
int tu_verify(const struct tu_daemon *d, const char *const *args, bson_t *reports, char **log);

/* A verify report's count field (-1 when absent). */
int64_t tu_report_int(const bson_t *reports, const char *table, const char *field);

/* Rows of a MariaDB query, each row as "c1|c2|..." ("NULL" for NULL), sorted, one per line. */
char *tu_query_lines(MYSQL *m, const char *q);

/* The same columns from the MongoDB documents (fields in the given order), sorted like
 * ORDER BY the first (integer) column. */
char *tu_mongo_lines(mongoc_client_t *c, const char *db, const char *coll,
                     const char *const *fields, size_t nfields);

/* Polls until MongoDB's rows equal MariaDB's (query: the same columns, ORDER BY the key). */
void tu_wait_converged(struct tu_daemon *d, MYSQL *m, mongoc_client_t *c, const char *mongo_db,
                       const char *coll, const char *query, const char *const *fields,
                       size_t nfields);

/* A case's end: the daemon stops cleanly on SIGTERM (exit 0), then everything is released. */
void tu_end_run(struct tu_daemon *d, mongoc_client_t *c, MYSQL *m);

#endif

/* mysync command line: the daemon, one-shot backfill, binlog-dump, verify, --check-config.
 * Exit codes follow sysexits.h (see usage() and README "Exit codes"). */
#define MS_LOG_DOMAIN "main"

#include "mysync/backfill.h"
#include "mysync/binlog.h"
#include "mysync/config.h"
#include "mysync/control.h"
#include "mysync/http.h"
#include "mysync/lifecycle.h"
#include "mysync/log.h"
#include "mysync/mysql.h"
#include "mysync/pipeline.h"
#include "mysync/poller.h"
#include "mysync/reader.h"
#include "mysync/sink.h"
#include "mysync/verify.h"
#include "mysync_build.h"

#include <errno.h>
#include <getopt.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sysexits.h>
#include <unistd.h>

enum command { CMD_DAEMON, CMD_FULL, CMD_BINLOG_DUMP, CMD_VERIFY, CMD_CHECK_CONFIG };

struct cli {
    enum command cmd;
    const char *config;
    const char **tables;
    size_t ntables;
    const char *where;
    long chunk_size;
    const char *file;
    const char *start;
    bool from_server;
    bool no_follow;
    long sample;
    bool json;
};

enum {
    OPT_CHECK_CONFIG = 256,
    OPT_FULL,
    OPT_WHERE,
    OPT_CHUNK_SIZE,
    OPT_FILE,
    OPT_START,
    OPT_FROM_SERVER,
    OPT_SAMPLE,
    OPT_CONFIG_REFERENCE,
    OPT_NO_FOLLOW,
    OPT_JSON,
};

static const struct option long_options[] = {
    {"config", required_argument, NULL, 'c'},
    {"check-config", no_argument, NULL, OPT_CHECK_CONFIG},
    {"full", no_argument, NULL, OPT_FULL},
    {"table", required_argument, NULL, 't'},
    {"where", required_argument, NULL, OPT_WHERE},
    {"chunk-size", required_argument, NULL, OPT_CHUNK_SIZE},
    {"file", required_argument, NULL, OPT_FILE},
    {"start", required_argument, NULL, OPT_START},
    {"from-server", no_argument, NULL, OPT_FROM_SERVER},
    {"no-follow", no_argument, NULL, OPT_NO_FOLLOW},
    {"sample", required_argument, NULL, OPT_SAMPLE},
    {"json", no_argument, NULL, OPT_JSON},
    {"config-reference", no_argument, NULL, OPT_CONFIG_REFERENCE},
    {"help", no_argument, NULL, 'h'},
    {"version", no_argument, NULL, 'V'},
    {NULL, 0, NULL, 0},
};

static void usage(FILE *out)
{
    fputs(
        "Usage:\n"
        "  mysync [--config FILE]                 run the replication daemon\n"
        "  mysync --full --table NAME [--table NAME ...] [--where SQL] [--chunk-size N]\n"
        "                                         one-shot backfill of tables\n"
        "  mysync binlog-dump --file PATH [--start POS]\n"
        "  mysync binlog-dump --from-server [--start FILE:POS] [--no-follow]\n"
        "                                         print decoded row changes as JSON lines\n"
        "  mysync verify --table NAME [--table NAME ...] [--sample N] [--chunk-size N] [--json]\n"
        "                                         compare source rows with their documents\n"
        "  mysync --check-config [--config FILE]  validate, print the effective configuration\n"
        "                                         (secrets redacted) and exit\n"
        "\n"
        "Options:\n"
        "  -c, --config FILE      YAML configuration file; environment variables override it\n"
        "  -t, --table NAME       table (repeatable), `table` or `db.table`\n"
        "      --where SQL        backfill only rows matching this condition\n"
        "      --chunk-size N     rows per chunk (--full, verify)\n"
        "      --file PATH        binlog file to read (binlog-dump)\n"
        "      --start POS        start position: byte offset (--file) or FILE:POS\n"
        "      --from-server      read the binlog from the configured server (binlog-dump)\n"
        "      --no-follow        stop at the server's current end instead of following\n"
        "      --sample N         verify about N random rows only (verify)\n"
        "      --json             the verify report as one JSON document per table\n"
        "      --config-reference print every configuration key as a Markdown table\n"
        "  -h, --help             this text\n"
        "  -V, --version          print the version\n"
        "\n"
        "Configuration: see config/mysync.example.yaml and README.md; every key also has an\n"
        "environment variable (MYSQL_*, MONGODB_*, SYNC_*, HTTP_*, LOG_*).\n"
        "\n"
        "Exit codes (sysexits.h):\n"
        "  0   success\n"
        "  64  EX_USAGE        bad command line\n"
        "  65  EX_DATAERR      data mismatch found (verify) or malformed input (binlog)\n"
        "  66  EX_NOINPUT      an input file cannot be opened\n"
        "  69  EX_UNAVAILABLE  a server is unreachable or refuses us, or the binlog position is\n"
        "                      gone\n"
        "  70  EX_SOFTWARE     internal error\n"
        "  74  EX_IOERR        input/output error (files)\n"
        "  75  EX_TEMPFAIL     stopped before MongoDB took the last batch (a restart replays it)\n"
        "  78  EX_CONFIG       invalid configuration\n",
        out);
}

static bool parse_long(const char *s, long min, long *out)
{
    char *end;
    long v = strtol(s, &end, 10);

    if (end == s || *end != '\0' || v < min) {
        return false;
    }
    *out = v;
    return true;
}

/* Returns 0 to go on, or an exit code. */
static int parse_cli(int argc, char **argv, struct cli *cli)
{
    int c;
    bool check = false, full = false;

    memset(cli, 0, sizeof(*cli));
    while ((c = getopt_long(argc, argv, "c:t:hV", long_options, NULL)) != -1) {
        switch (c) {
        case 'c':
            cli->config = optarg;
            break;
        case 't':
            cli->tables = realloc(cli->tables, (cli->ntables + 1) * sizeof(char *));
            cli->tables[cli->ntables++] = optarg;
            break;
        case OPT_CHECK_CONFIG:
            check = true;
            break;
        case OPT_FULL:
            full = true;
            break;
        case OPT_WHERE:
            cli->where = optarg;
            break;
        case OPT_CHUNK_SIZE:
            if (!parse_long(optarg, 1, &cli->chunk_size)) {
                fprintf(stderr, "mysync: --chunk-size: '%s' is not a positive integer\n", optarg);
                return EX_USAGE;
            }
            break;
        case OPT_FILE:
            cli->file = optarg;
            break;
        case OPT_START:
            cli->start = optarg;
            break;
        case OPT_FROM_SERVER:
            cli->from_server = true;
            break;
        case OPT_NO_FOLLOW:
            cli->no_follow = true;
            break;
        case OPT_SAMPLE:
            if (!parse_long(optarg, 1, &cli->sample)) {
                fprintf(stderr, "mysync: --sample: '%s' is not a positive integer\n", optarg);
                return EX_USAGE;
            }
            break;
        case OPT_JSON:
            cli->json = true;
            break;
        case OPT_CONFIG_REFERENCE:
            ms_config_print_reference(stdout);
            exit(EX_OK);
        case 'h':
            usage(stdout);
            exit(EX_OK);
        case 'V':
            printf("mysync %s\n", MYSYNC_VERSION);
            exit(EX_OK);
        default:
            fputs("Try 'mysync --help'.\n", stderr);
            return EX_USAGE;
        }
    }
    if (optind < argc) {
        const char *sub = argv[optind];
        if (strcmp(sub, "binlog-dump") == 0) {
            cli->cmd = CMD_BINLOG_DUMP;
        } else if (strcmp(sub, "verify") == 0) {
            cli->cmd = CMD_VERIFY;
        } else {
            fprintf(stderr, "mysync: unknown command '%s'. Try 'mysync --help'.\n", sub);
            return EX_USAGE;
        }
        if (optind + 1 < argc) {
            fprintf(stderr, "mysync: unexpected argument '%s'\n", argv[optind + 1]);
            return EX_USAGE;
        }
    }
    if (check + full + (cli->cmd != CMD_DAEMON) > 1) {
        fputs("mysync: --check-config, --full, binlog-dump and verify exclude each other\n",
              stderr);
        return EX_USAGE;
    }
    if (check) {
        cli->cmd = CMD_CHECK_CONFIG;
    } else if (full) {
        cli->cmd = CMD_FULL;
    }
    /* Each option belongs to the commands that use it. */
    if (cli->ntables > 0 && cli->cmd != CMD_FULL && cli->cmd != CMD_VERIFY) {
        fputs("mysync: --table goes with --full or verify\n", stderr);
        return EX_USAGE;
    }
    if (cli->where != NULL && cli->cmd != CMD_FULL) {
        fputs("mysync: --where goes with --full\n", stderr);
        return EX_USAGE;
    }
    if (cli->chunk_size != 0 && cli->cmd != CMD_FULL && cli->cmd != CMD_VERIFY) {
        fputs("mysync: --chunk-size goes with --full or verify\n", stderr);
        return EX_USAGE;
    }
    if ((cli->file != NULL || cli->from_server || cli->start != NULL || cli->no_follow) &&
        cli->cmd != CMD_BINLOG_DUMP) {
        fputs("mysync: --file, --from-server, --start and --no-follow go with binlog-dump\n",
              stderr);
        return EX_USAGE;
    }
    if ((cli->sample != 0 || cli->json) && cli->cmd != CMD_VERIFY) {
        fputs("mysync: --sample and --json go with verify\n", stderr);
        return EX_USAGE;
    }
    if ((cli->cmd == CMD_FULL || cli->cmd == CMD_VERIFY) && cli->ntables == 0) {
        fputs("mysync: name at least one --table\n", stderr);
        return EX_USAGE;
    }
    if (cli->cmd == CMD_BINLOG_DUMP && (cli->file != NULL) == cli->from_server) {
        fputs("mysync: binlog-dump needs exactly one of --file PATH or --from-server\n", stderr);
        return EX_USAGE;
    }
    return 0;
}

/* Connects to both servers and reports what it finds; the daemon's first step. */
static int preflight(const struct ms_config *cfg, bool *binlog_ok, char *why, size_t whysz)
{
    struct ms_error err = {0};
    struct ms_mysql_info mi;
    struct ms_mongo_info gi;
    mongoc_client_pool_t *pool;
    MYSQL *conn;
    char uri[1024];
    int rc = EX_OK;

    conn = ms_mysql_connect(cfg, &err);
    if (conn == NULL) {
        ms_log(MS_LOG_ERROR, "%s", err.msg);
        return EX_UNAVAILABLE;
    }
    if (!ms_mysql_probe(conn, &mi, &err)) {
        ms_log(MS_LOG_ERROR, "%s", err.msg);
        mysql_close(conn);
        return EX_UNAVAILABLE;
    }
    *binlog_ok = cfg->sync_mode != MS_SYNC_MODE_POLL;
    snprintf(why, whysz, "%s",
             cfg->sync_mode == MS_SYNC_MODE_POLL ? "SYNC_MODE=poll"
             : cfg->sync_mode == MS_SYNC_MODE_BINLOG
                 ? "SYNC_MODE=binlog"
                 : "SYNC_MODE=auto: the source's binlog is usable (ROW format)");
    if (cfg->sync_mode != MS_SYNC_MODE_POLL && !ms_reader_preflight(conn, &err)) {
        *binlog_ok = false;
        if (cfg->sync_mode == MS_SYNC_MODE_BINLOG) {
            ms_log(MS_LOG_ERROR, "SYNC_MODE=binlog: %s", err.msg);
            mysql_close(conn);
            return EX_UNAVAILABLE;
        }
        ms_log(MS_LOG_WARN, "binlog replication is not possible (%s): SYNC_MODE=auto will poll",
               err.msg);
        snprintf(why, whysz, "SYNC_MODE=auto: binlog replication is not possible (%s)", err.msg);
    }
    mysql_close(conn);
    ms_log_kv(MS_LOG_INFO,
              ((struct ms_log_field[]){MS_LF_STR("version", mi.version),
                                       MS_LF_STR("log_bin", mi.log_bin ? "ON" : "OFF"),
                                       MS_LF_STR("binlog_format", mi.binlog_format),
                                       MS_LF_STR("binlog_row_image", mi.binlog_row_image),
                                       MS_LF_STR("binlog_row_metadata", mi.binlog_row_metadata),
                                       MS_LF_INT("server_id", mi.server_id)}),
              "connected to MySQL at %s:%d", cfg->mysql_host, (int)cfg->mysql_port);

    ms_config_redact_uri(cfg->mongodb_uri, uri, sizeof(uri));
    pool = ms_sink_pool_new(cfg, &err);
    if (pool == NULL || !ms_sink_ping(pool, &gi, &err)) {
        ms_log(MS_LOG_ERROR, "%s (uri %s)", err.msg, uri);
        rc = EX_UNAVAILABLE;
    } else {
        ms_log_kv(MS_LOG_INFO,
                  ((struct ms_log_field[]){MS_LF_STR("version", gi.version),
                                           MS_LF_INT("max_wire_version", gi.max_wire_version),
                                           MS_LF_STR("database", cfg->mongodb_database)}),
                  "connected to MongoDB at %s", uri);
    }
    if (pool != NULL) {
        mongoc_client_pool_destroy(pool);
    }
    return rc;
}

static volatile sig_atomic_t stop_requested;
static volatile sig_atomic_t reload_requested; /* SIGHUP: src/lifecycle.c reloads */

static void on_signal(int sig)
{
    (void)sig;
    stop_requested = 1;
}

static void on_sighup(int sig)
{
    (void)sig;
    reload_requested = 1;
}

static int binlog_dump(const struct cli *cli, const struct ms_config *cfg)
{
    struct ms_value_opts vo;
    struct ms_dump_stats stats;
    struct ms_error err = {0};
    static char outbuf[1 << 20];
    bool ok;

    ms_value_opts_from_config(&vo, cfg);
    setvbuf(stdout, outbuf, _IOFBF, sizeof(outbuf));
    if (cli->from_server) {
        struct ms_reader_opts ro = {.server_id = ms_reader_default_server_id(cfg),
                                    .stop_at_end = cli->no_follow};
        char file[512];
        if (cli->start != NULL) {
            const char *colon = strrchr(cli->start, ':');
            char *end;
            if (colon == NULL || colon == cli->start) {
                fprintf(stderr, "mysync: --start: '%s' is not FILE:POS\n", cli->start);
                return EX_USAGE;
            }
            snprintf(file, sizeof(file), "%.*s", (int)(colon - cli->start), cli->start);
            ro.file = file;
            ro.pos = strtoull(colon + 1, &end, 10);
            if (end == colon + 1 || *end != '\0') {
                fprintf(stderr, "mysync: --start: '%s' is not FILE:POS\n", cli->start);
                return EX_USAGE;
            }
        }
        signal(SIGINT, on_signal);
        signal(SIGTERM, on_signal);
        ok = ms_binlog_dump_server(cfg, &ro, &vo, stdout, &stats, &stop_requested, &err);
    } else {
        uint64_t start = 0;
        if (cli->start != NULL) {
            char *end;
            start = strtoull(cli->start, &end, 10);
            if (end == cli->start || *end != '\0') {
                fprintf(stderr, "mysync: --start: '%s' is not a byte offset\n", cli->start);
                return EX_USAGE;
            }
        }
        ok = ms_binlog_dump_file(cli->file, start, &vo, stdout, &stats, &err);
    }
    fflush(stdout);
    if (!ok) {
        ms_log(MS_LOG_ERROR, "%s", err.msg);
        return err.domain == MS_ERR_SYSTEM  ? EX_NOINPUT
               : err.domain == MS_ERR_MYSQL ? EX_UNAVAILABLE
                                            : EX_DATAERR;
    }
    ms_log_kv(MS_LOG_INFO,
              ((struct ms_log_field[]){MS_LF_INT("events", (int64_t)stats.events),
                                       MS_LF_INT("changes", (int64_t)stats.changes),
                                       MS_LF_INT("end_pos", (int64_t)stats.end_pos)}),
              "binlog-dump done");
    return EX_OK;
}

/* Exit code for an error of the pipeline. */
static int exit_code(const struct ms_error *err)
{
    switch (err->domain) {
    case MS_ERR_CONFIG:
        return EX_CONFIG;
    case MS_ERR_DECODE:
        return EX_DATAERR;
    case MS_ERR_MYSQL:
    case MS_ERR_MONGO:
        return EX_UNAVAILABLE;
    case MS_ERR_SYSTEM:
        return err->code == ECANCELED ? EX_TEMPFAIL : EX_SOFTWARE;
    default:
        return EX_SOFTWARE;
    }
}

/* ---- mysync --full ---- */

struct full_job {
    const struct cli *cli;
    const struct ms_config *cfg;
    struct ms_backfill *b;
    struct ms_pipeline *p;
    int rc;
};

static void *full_main(void *arg)
{
    struct full_job *j = arg;
    struct ms_backfill_opts o = {.where = j->cli->where,
                                 .chunk_size = j->cli->chunk_size,
                                 .progress =
                                     isatty(STDERR_FILENO) ? MS_BACKFILL_BAR : MS_BACKFILL_LINES,
                                 .kind = "backfill",
                                 .stop = &stop_requested};

    j->rc = EX_OK;
    for (size_t i = 0; i < j->cli->ntables && j->rc == EX_OK; i++) {
        struct ms_backfill_result r;
        struct ms_error err = {0};
        char rate[64];

        if (!ms_backfill_table(j->b, j->cli->tables[i], &o, &r, &err)) {
            ms_log(MS_LOG_ERROR, "%s", err.msg);
            j->rc = err.domain == MS_ERR_SYSTEM && err.code == ECANCELED ? EX_TEMPFAIL
                                                                         : exit_code(&err);
        }
        snprintf(rate, sizeof(rate), "%.0f rows/s",
                 r.seconds > 0 ? (double)r.rows / r.seconds : 0.0);
        printf("%s: %s%llu rows in %.1f s (%s), %llu dead-lettered%s%s\n", j->cli->tables[i],
               j->rc == EX_OK ? "" : "stopped after ", (unsigned long long)r.rows_total, r.seconds,
               rate, (unsigned long long)r.dead, r.resumed ? ", resumed from stored progress" : "",
               r.watermarks ? "" : ", without watermarks");
        fflush(stdout);
        if (r.dead > 0) {
            ms_log(MS_LOG_WARN,
                   "%s: %llu rows went to the dead-letter collection (_mysync_dead_letters) "
                   "with the reason",
                   j->cli->tables[i], (unsigned long long)r.dead);
        }
    }
    stop_requested = 1; /* the pipeline writes what is left and returns */
    return NULL;
}

/* One-shot backfill: a pipeline without binlog (the same strategies and sink), the tables
 * copied in key order, progress in MongoDB so that a second run goes on. */
static int full_run(const struct cli *cli, const struct ms_config *cfg)
{
    struct ms_pipeline_opts po = {
        .backfill_only = true, .tables = (const char *const *)cli->tables, .ntables = cli->ntables};
    struct ms_error err = {0};
    struct full_job j = {.cli = cli, .cfg = cfg};
    pthread_t t;
    int rc;

    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);
    signal(SIGPIPE, SIG_IGN);
    j.p = ms_pipeline_new_opts(cfg, &po, &err);
    if (j.p == NULL) {
        ms_log(MS_LOG_ERROR, "%s", err.msg);
        return exit_code(&err);
    }
    j.b = ms_backfill_new(cfg, j.p, &err);
    if (j.b == NULL) {
        ms_log(MS_LOG_ERROR, "%s", err.msg);
        ms_pipeline_destroy(j.p);
        return exit_code(&err);
    }
    if (pthread_create(&t, NULL, full_main, &j) != 0) {
        ms_log(MS_LOG_ERROR, "cannot start the backfill thread");
        ms_backfill_destroy(j.b);
        ms_pipeline_destroy(j.p);
        return EX_OSERR;
    }
    rc = ms_pipeline_run(j.p, &stop_requested, &err) ? EX_OK : exit_code(&err);
    if (rc != EX_OK) {
        ms_log(MS_LOG_ERROR, "%s", err.msg);
    }
    pthread_join(t, NULL);
    if (rc == EX_OK) {
        rc = j.rc;
    }
    ms_backfill_destroy(j.b);
    ms_pipeline_destroy(j.p);
    return rc;
}

/* mysync verify: each table compared, its report on stdout; 65 when any differs. */
static int verify_run(const struct cli *cli, const struct ms_config *cfg)
{
    int rc = EX_OK;

    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);
    signal(SIGPIPE, SIG_IGN);
    for (size_t i = 0; i < cli->ntables; i++) {
        struct ms_verify_opts o = {.table = cli->tables[i],
                                   .sample = cli->sample,
                                   .chunk_size = cli->chunk_size,
                                   .stop = &stop_requested};
        struct ms_verify_result r;
        struct ms_error err = {0};

        if (!ms_verify_table(cfg, &o, &r, &err)) {
            ms_log(MS_LOG_ERROR, "verify %s: %s", cli->tables[i], err.msg);
            ms_verify_result_cleanup(&r);
            return err.domain == MS_ERR_SYSTEM && err.code == ECANCELED ? EX_TEMPFAIL
                                                                        : exit_code(&err);
        }
        ms_verify_print(&r, cli->json, stdout);
        fflush(stdout);
        if (r.missing + r.different + r.extra > 0) {
            rc = EX_DATAERR;
        }
        ms_verify_result_cleanup(&r);
    }
    return rc;
}

/* The lifecycle supervisor (SIGHUP reload, sd_notify) of either mode; NULL after logging why. */
static struct ms_lifecycle *lifecycle_start(const struct ms_config *cfg, const char *config_path,
                                            struct ms_pipeline *p, struct ms_scheduler *sched,
                                            struct ms_http *http)
{
    struct ms_error err = {0};
    struct ms_lifecycle *lc =
        ms_lifecycle_start(&(struct ms_lifecycle_opts){.config_path = config_path,
                                                       .cfg = cfg,
                                                       .pipeline = p,
                                                       .scheduler = sched,
                                                       .http = http,
                                                       .stop = &stop_requested,
                                                       .reload = &reload_requested},
                           &err);

    if (lc == NULL) {
        ms_log(MS_LOG_ERROR, "%s", err.msg);
    }
    return lc;
}

struct poll_job {
    struct ms_scheduler *sched;
    struct ms_poller *pl;
};

static void *poll_main(void *arg)
{
    struct poll_job *j = arg;

    ms_scheduler_run(j->sched, ms_poller_run, j->pl, &stop_requested);
    return NULL;
}

/* Poll mode: a pipeline without binlog fed by the poller, on the scheduler's runs. */
static int poll_run(const struct ms_config *cfg, const char *config_path, struct ms_control *ctl,
                    struct ms_http **http, const char *why)
{
    struct ms_pipeline_opts po = {.backfill_only = true};
    struct ms_error err = {0};
    struct ms_pipeline *p = NULL;
    struct ms_lifecycle *lc = NULL;
    struct poll_job j = {0};
    pthread_t t;
    bool started = false;
    int rc = EX_OK;

    p = ms_pipeline_new_opts(cfg, &po, &err);
    if (p == NULL || (j.pl = ms_poller_new(cfg, p, &stop_requested, &err)) == NULL) {
        ms_log(MS_LOG_ERROR, "%s", err.msg);
        rc = exit_code(&err);
        goto done;
    }
    j.sched =
        ms_scheduler_new(&(struct ms_scheduler_opts){.interval_s = ms_config_interval_seconds(cfg),
                                                     .jitter = 0.10,
                                                     .max_retries = cfg->sync_max_retries,
                                                     .retry_delay_ms = cfg->sync_retry_delay_ms,
                                                     .start_paused = !cfg->sync_enabled},
                         &err);
    if (j.sched == NULL) {
        ms_log(MS_LOG_ERROR, "%s", err.msg);
        rc = EX_CONFIG;
        goto done;
    }
    ms_scheduler_trigger(j.sched); /* the first run at once */
    ms_control_set_poll(ctl, j.sched, j.pl);
    ms_control_attach(ctl, p, "poll", why);
    ms_log(MS_LOG_INFO, "polling every %lld s (%s)", (long long)ms_config_interval_seconds(cfg),
           why);
    lc = lifecycle_start(cfg, config_path, p, j.sched, *http);
    if (lc == NULL) {
        rc = EX_SOFTWARE;
        goto done;
    }
    if (pthread_create(&t, NULL, poll_main, &j) != 0) {
        ms_log(MS_LOG_ERROR, "cannot start the polling thread");
        rc = EX_OSERR;
        goto done;
    }
    started = true;
    if (!ms_pipeline_run(p, &stop_requested, &err)) {
        ms_log(MS_LOG_ERROR, "replication stopped: %s", err.msg);
        rc = exit_code(&err);
        stop_requested = 1;
    }
done:
    if (started) {
        pthread_join(t, NULL);
    }
    ms_lifecycle_stop(lc);
    ms_http_destroy(*http); /* no request may touch the scheduler, poller or pipeline now */
    *http = NULL;
    ms_poller_destroy(j.pl);
    ms_scheduler_destroy(j.sched);
    ms_pipeline_destroy(p);
    return rc;
}

/* The control plane on http.listen (NULL when it is off); it answers "starting" until the
 * pipeline is attached. */
static struct ms_http *http_start(const struct ms_config *cfg, struct ms_control *ctl,
                                  struct ms_error *err)
{
    struct ms_http_opts opts = {.listen = cfg->http_listen, .token = cfg->http_token};
    struct ms_http_control hc;

    if (ms_http_disabled(cfg->http_listen)) {
        ms_log(MS_LOG_INFO, "http.listen is off: no control plane");
        return NULL;
    }
    ms_control_http(ctl, &hc);
    return ms_http_new(&opts, &hc, err);
}

/* The daemon: binds the control plane, checks both servers, then replicates until
 * SIGTERM/SIGINT (flush, checkpoint, exit 0) or a fatal error. SIGHUP reloads what can change
 * live (src/lifecycle.c); under systemd it reports READY, STATUS, WATCHDOG and STOPPING. */
/* ms_pipeline_on_ddl: a table DDL changed without row events is copied again beside the
 * stream (one already queued covers it). */
static void ddl_snapshot(void *ctx, const char *table)
{
    struct ms_error err = {0};

    if (!ms_backfill_enqueue_again(ctx, table, &err) && err.code != 409) {
        ms_log(MS_LOG_WARN, "snapshot of %s after DDL: %s", table, err.msg);
    }
}

static int daemon_run(const struct ms_config *cfg, const char *config_path)
{
    struct ms_error err = {0};
    struct ms_pipeline *p = NULL;
    struct ms_control *ctl = ms_control_new();
    struct ms_http *http = NULL;
    struct ms_backfill *snaps = NULL;
    struct ms_lifecycle *lc = NULL;
    bool binlog_ok;
    char why[400];
    int rc;

    /* a stop during start-up is honoured as soon as replication begins (nothing to flush); a
     * SIGHUP during start-up is applied once the supervisor runs */
    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);
    signal(SIGHUP, on_sighup);
    signal(SIGPIPE, SIG_IGN);
    ms_lifecycle_notify("STATUS=starting: checking MySQL and MongoDB");
    http = http_start(cfg, ctl, &err);
    if (http == NULL && err.domain != MS_ERR_NONE) {
        ms_log(MS_LOG_ERROR, "%s", err.msg);
        rc = EX_UNAVAILABLE;
        goto done;
    }
    rc = preflight(cfg, &binlog_ok, why, sizeof(why));
    if (rc != EX_OK) {
        goto done;
    }
    if (!binlog_ok) {
        rc = poll_run(cfg, config_path, ctl, &http, why);
        goto done;
    }
    {
        struct ms_pipeline_opts po = {.defer_stream = true}; /* the snapshot worker starts it */
        p = ms_pipeline_new_opts(cfg, &po, &err);
    }
    if (p == NULL) {
        ms_log(MS_LOG_ERROR, "%s", err.msg);
        rc = exit_code(&err);
        goto done;
    }
    snaps = ms_backfill_new(cfg, p, &err);
    if (snaps == NULL || !ms_backfill_start(snaps, &stop_requested, &err)) {
        ms_log(MS_LOG_ERROR, "%s", err.msg);
        rc = exit_code(&err);
        goto done;
    }
    ms_control_set_snapshots(ctl, snaps);
    ms_pipeline_on_ddl(p, ddl_snapshot, snaps);
    ms_control_attach(ctl, p, "binlog", why);
    lc = lifecycle_start(cfg, config_path, p, NULL, http);
    if (lc == NULL) {
        rc = EX_SOFTWARE;
        goto done;
    }
    if (!ms_pipeline_run(p, &stop_requested, &err)) {
        ms_log(MS_LOG_ERROR, "replication stopped: %s", err.msg);
        rc = exit_code(&err);
    }
done:
    ms_lifecycle_stop(lc); /* before the pipeline and the HTTP server it borrows */
    ms_http_destroy(http); /* no request may touch the pipeline once it goes */
    ms_backfill_destroy(snaps);
    ms_pipeline_destroy(p);
    ms_control_destroy(ctl);
    return rc;
}

int main(int argc, char **argv)
{
    struct cli cli;
    struct ms_config cfg;
    struct ms_error err = {0};
    int rc = parse_cli(argc, argv, &cli);

    if (rc != 0) {
        free(cli.tables);
        return rc;
    }
    ms_sink_global_init(); /* libmongoc (URI checks in config too) logs through ms_log */
    if (!ms_config_load(&cfg, cli.config, NULL, &err)) {
        fprintf(stderr, "mysync: configuration error: %s\n", err.msg);
        ms_config_cleanup(&cfg);
        free(cli.tables);
        mongoc_cleanup();
        return EX_CONFIG;
    }
    ms_log_set_level((enum ms_log_level)cfg.log_level);
    ms_log_set_format((enum ms_log_format)cfg.log_format);

    switch (cli.cmd) {
    case CMD_CHECK_CONFIG:
        ms_config_print(&cfg, stdout);
        rc = EX_OK;
        break;
    case CMD_DAEMON:
        ms_log(MS_LOG_INFO, "mysync %s starting (mode %s)", MYSYNC_VERSION,
               cfg.sync_mode == MS_SYNC_MODE_BINLOG ? "binlog"
               : cfg.sync_mode == MS_SYNC_MODE_POLL ? "poll"
                                                    : "auto");
        rc = daemon_run(&cfg, cli.config);
        break;
    case CMD_BINLOG_DUMP:
        rc = binlog_dump(&cli, &cfg);
        break;
    case CMD_FULL:
        rc = full_run(&cli, &cfg);
        break;
    case CMD_VERIFY:
        rc = verify_run(&cli, &cfg);
        break;
    }
    ms_config_cleanup(&cfg);
    free(cli.tables);
    mongoc_cleanup();
    return rc;
}

/* Configuration: one option table (redis's createIntConfig rows) drives the YAML file,
 * the environment, validation, --check-config and the README reference.
 * Precedence, lowest first: defaults < YAML file < environment. Inside one layer a
 * discrete key (mysql.host) beats the same field taken from mysql.url. */
#ifndef MYSYNC_CONFIG_H
#define MYSYNC_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "mysync/error.h"

enum ms_sync_mode { MS_SYNC_MODE_BINLOG, MS_SYNC_MODE_POLL, MS_SYNC_MODE_AUTO };
enum ms_snapshot_mode { MS_SNAPSHOT_INITIAL, MS_SNAPSHOT_NEVER, MS_SNAPSHOT_WHEN_NEEDED };
enum ms_ssl_mode {
    MS_SSL_DISABLED,
    MS_SSL_PREFERRED,
    MS_SSL_REQUIRED,
    MS_SSL_VERIFY_CA,
    MS_SSL_VERIFY_IDENTITY,
};
enum ms_decimal_as { MS_DECIMAL_AS_DECIMAL128, MS_DECIMAL_AS_STRING, MS_DECIMAL_AS_DOUBLE };

/* Where an option's effective value came from. */
enum ms_config_origin {
    MS_ORIGIN_DEFAULT = 0,
    MS_ORIGIN_FILE,
    MS_ORIGIN_ENV,
    MS_ORIGIN_URL,     /* expanded from mysql.url */
    MS_ORIGIN_DERIVED, /* computed from other options */
};

struct ms_strlist {
    char **v;
    size_t n;
};

/* What a field that carries personal data becomes in the document (tables.<t>.pii). */
enum ms_pii_action {
    MS_PII_KEEP = 0,
    MS_PII_DROP = 1,   /* left out of the document */
    MS_PII_REDACT = 2, /* the string "[REDACTED]" (null stays null) */
    MS_PII_HASH = 3,   /* hex HMAC-SHA256 of the value's text under sync.pii_key */
};

struct ms_kv {
    char *k, *v;
};

struct ms_kvlist {
    struct ms_kv *v;
    size_t n;
};

/* One entry of the `tables:` section: how one source table is mapped. Every member is
 * optional; -1 / NULL / empty means "the default" (the global option, the strategy's own). */
struct ms_table_cfg {
    char *name;          /* "table" or "db.table", as written */
    char *strategy;      /* registry name; NULL = generic (or SYNC_STRATEGY_<TABLE>) */
    char *role;          /* which of the strategy's source tables this is ("order_items");
                            NULL = the table's own name */
    char *collection;    /* target collection; NULL = the strategy's (generic: the table name) */
    char *change_column; /* poll mode; NULL = sync.change_column */
    char *soft_delete_column;  /* poll mode; NULL = sync.soft_delete_column, "" = none */
    struct ms_kvlist columns;  /* entity strategies: logical column -> actual column name */
    struct ms_strlist include; /* generic: only these columns (key columns always kept) */
    struct ms_strlist exclude; /* generic: all but these columns */
    struct ms_kvlist rename;   /* generic: column -> field path; a dotted path nests */
    struct ms_strlist json;    /* generic: text columns holding JSON, parsed into documents */
    struct ms_kvlist pii;      /* column (logical name for entity strategies) -> "keep",
                                  "drop", "redact" or "hash" */
    int date_as;               /* -1, or as sync.date_as */
    int datetime_as;           /* -1, 0 date, 1 string "YYYY-MM-DD HH:MM:SS[.ffffff]" */
    int time_as;               /* -1, 0 string "HH:MM:SS[.ffffff]", 1 seconds (double) */
    char where[160];           /* file:line:column of the entry, for errors */
};

struct ms_config {
    char *file; /* the YAML file loaded, or NULL */

    char *mysql_url;
    char *mysql_host;
    int64_t mysql_port;
    char *mysql_user;
    char *mysql_password;
    char *mysql_password_file;
    char *mysql_database;
    char *mysql_charset;
    int mysql_ssl_mode; /* enum ms_ssl_mode */
    char *mysql_ssl_ca;

    char *mongodb_uri;
    char *mongodb_database;

    bool sync_enabled;
    int sync_mode; /* enum ms_sync_mode */
    struct ms_strlist sync_tables;
    int64_t sync_batch_size;
    int64_t sync_flush_ms;
    int64_t sync_interval_minutes;
    int64_t sync_interval_seconds; /* 0 = use minutes */
    int64_t sync_max_retries;
    int64_t sync_retry_delay_ms;
    int64_t sync_server_id; /* 0 = derive at start-up */
    int sync_decimal_as;    /* enum ms_decimal_as */
    int sync_date_as;       /* 0 date, 1 string */
    bool sync_datetime_micros;
    char *sync_source_timezone;     /* "UTC" or "+HH:MM" / "-HH:MM" */
    int32_t sync_source_utc_offset; /* derived from sync_source_timezone, seconds east of UTC */
    struct ms_strlist sync_keys;    /* "table:col+col" or "db.table:col" */
    char *sync_pipeline;            /* checkpoint name */
    int sync_snapshot;              /* enum ms_snapshot_mode */
    int64_t sync_snapshot_chunk_size;
    char *sync_signal_table; /* "" or NULL: no watermarks */
    char *sync_change_column;
    char *sync_soft_delete_column;
    int64_t sync_poll_lookback_ms;
    int64_t sync_reconcile_interval_ms;
    char *collection_products;
    char *collection_orders;
    char *collection_customers;
    char *collection_inventory;
    char *sync_pii_key; /* HMAC key for pii: hash (secret) */
    char *sync_pii_key_file;

    /* The `tables:` section, then SYNC_STRATEGY_<TABLE>=strategy[:role] from the environment
     * (an entry per variable, merged into the file's entry of that table). */
    struct ms_table_cfg *tables;
    size_t ntables;

    char *http_listen;
    char *http_token;
    char *http_token_file;

    int log_level;  /* enum ms_log_level */
    int log_format; /* enum ms_log_format */

    /* Private: origin of each option, indexed like the option table. */
    unsigned char *origin;
};

/* Fills cfg with defaults, then the YAML file (path may be NULL), then the environment
 * (envp: NULL-terminated "NAME=value" strings; NULL = the process environment), then
 * validates and derives. On failure cfg is still safe to ms_config_cleanup().
 * Errors name the file, line and column, or the environment variable, and the key.
 * Every secret found is registered with ms_log_add_secret(). */
bool ms_config_load(struct ms_config *cfg, const char *path, const char *const *envp,
                    struct ms_error *err);

void ms_config_cleanup(struct ms_config *cfg);

/* Writes the effective configuration as YAML, secrets as "***", each value commented
 * with its origin (default, file, env VAR, ...). */
void ms_config_print(const struct ms_config *cfg, FILE *out);

/* Writes the configuration reference (every key, env var, default, range) as a Markdown
 * table: README.md carries this output, checked by a unit test. */
void ms_config_print_reference(FILE *out);

/* Effective sync interval in seconds (interval_seconds when set, else minutes * 60). */
int64_t ms_config_interval_seconds(const struct ms_config *cfg);

/* The tables: entry of db.table (matched as "db.table", or "table" when db is
 * mysql.database), or NULL. */
const struct ms_table_cfg *ms_config_table(const struct ms_config *cfg, const char *db,
                                           const char *table);

/* Value of key in l, or NULL. */
const char *ms_kvlist_get(const struct ms_kvlist *l, const char *key);

/* Parses mysql://user:pass@host:port/db (percent-decoded) into cfg's mysql fields. */
bool ms_config_parse_mysql_url(struct ms_config *cfg, const char *url, struct ms_error *err);

/* Splits "host:port" or "[v6]:port" (port 0..65535) into host and port; false when malformed.
 * Does not accept "off" (http.listen's switch, checked by the caller). */
bool ms_config_parse_listen(const char *s, char *host, size_t hostsz, int *port);

/* Copies uri to out with any password replaced by "***". */
void ms_config_redact_uri(const char *uri, char *out, size_t outsz);

/* One option whose effective value differs between two configurations (ms_config_diff). */
struct ms_config_change {
    const char *key; /* "log.level"; "tables" for the tables: section */
    bool reloadable; /* the option table's flag: SIGHUP may apply it */
    char from[256];  /* the values as --check-config prints them: secrets "***", URI */
    char to[256];    /* passwords redacted, unset "null" */
};

/* Calls fn for every option whose value differs between a and b (in table order), then once
 * with key "tables" when the tables: sections differ (entries, strategies, roles,
 * collections). Secrets are compared, never shown. Returns the number of differences. */
size_t ms_config_diff(const struct ms_config *a, const struct ms_config *b,
                      void (*fn)(const struct ms_config_change *change, void *ud), void *ud);

/* The option key closest to name (edit distance), or NULL when none is close. */
const char *ms_config_suggest_key(const char *name);

#endif

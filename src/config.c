#define MS_LOG_DOMAIN "config"

#include "mysync/config.h"
#include "mysync/log.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <mongoc/mongoc.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <yaml.h>

extern char **environ;

enum opt_type {
    OPT_STR,
    OPT_SECRET, /* string never printed */
    OPT_URI,    /* string printed with its password redacted */
    OPT_INT,
    OPT_BOOL,
    OPT_ENUM,
    OPT_LIST,      /* comma-separated, or a YAML sequence */
    OPT_DURATION,  /* "250ms", "5s", "2m", "1h"; a bare number is seconds; stored in ms */
    OPT_LISTEN,    /* host:port */
    OPT_MYSQL_URL, /* expands into the mysql.* fields */
};

struct option {
    const char *key; /* dotted YAML path */
    const char *env;
    enum opt_type type;
    size_t offset;
    const char *def; /* default, parsed like any input; NULL = unset */
    int64_t min, max;
    const char *const *values; /* OPT_ENUM names, index = stored value */
    bool reloadable;           /* SIGHUP may change it (applied by the daemon) */
    const char *help;
};

static const char *const ssl_modes[] = {"disabled",  "preferred",       "required",
                                        "verify_ca", "verify_identity", NULL};
static const char *const sync_modes[] = {"binlog", "poll", "auto", NULL};
static const char *const snapshot_modes[] = {"initial", "never", "when_needed", NULL};
static const char *const decimal_as[] = {"decimal128", "string", "double", NULL};
static const char *const date_as[] = {"date", "string", NULL};
static const char *const log_levels[] = {"error", "warn", "info", "debug", "trace", NULL};
static const char *const log_formats[] = {"text", "json", NULL};

#define OFF(f) offsetof(struct ms_config, f)

/* The one table. Keep sections contiguous: ms_config_print nests by key prefix. */
static const struct option options[] = {
    {"mysql.url", "MYSQL_URL", OPT_MYSQL_URL, OFF(mysql_url), NULL, 0, 0, NULL, false,
     "Alternative to the discrete keys: `mysql://user:pass@host:port/db` (percent-encoded; "
     "`?ssl-mode=` and `?charset=` accepted). Discrete keys of the same layer win."},
    {"mysql.host", "MYSQL_HOST", OPT_STR, OFF(mysql_host), "127.0.0.1", 0, 0, NULL, false,
     "Source server host name or address (`localhost` uses the Unix socket)."},
    {"mysql.port", "MYSQL_PORT", OPT_INT, OFF(mysql_port), "3306", 1, 65535, NULL, false,
     "Source server TCP port."},
    {"mysql.user", "MYSQL_USER", OPT_STR, OFF(mysql_user), "mysync", 0, 0, NULL, false,
     "User; needs SELECT, REPLICATION SLAVE and REPLICATION CLIENT for binlog mode."},
    {"mysql.password", "MYSQL_PASSWORD", OPT_SECRET, OFF(mysql_password), NULL, 0, 0, NULL, false,
     "Password. Never printed or logged."},
    {"mysql.password_file", "MYSQL_PASSWORD_FILE", OPT_STR, OFF(mysql_password_file), NULL, 0, 0,
     NULL, false,
     "File holding the password (one trailing newline stripped); wins over `mysql.password`."},
    {"mysql.database", "MYSQL_DATABASE", OPT_STR, OFF(mysql_database), NULL, 0, 0, NULL, false,
     "Default schema for unqualified table names."},
    {"mysql.charset", "MYSQL_CHARSET", OPT_STR, OFF(mysql_charset), "utf8mb4", 0, 0, NULL, false,
     "Connection character set."},
    {"mysql.ssl_mode", "MYSQL_SSL_MODE", OPT_ENUM, OFF(mysql_ssl_mode), "preferred", 0, 0,
     ssl_modes, false,
     "TLS to the source: disabled, preferred, required, verify_ca, verify_identity."},
    {"mysql.ssl_ca", "MYSQL_SSL_CA", OPT_STR, OFF(mysql_ssl_ca), NULL, 0, 0, NULL, false,
     "CA certificate file (PEM) for verify_ca / verify_identity."},

    {"mongodb.uri", "MONGODB_URI", OPT_URI, OFF(mongodb_uri), "mongodb://127.0.0.1:27017", 0, 0,
     NULL, false, "MongoDB connection string (credentials are redacted in all output)."},
    {"mongodb.database", "MONGODB_DATABASE", OPT_STR, OFF(mongodb_database), NULL, 0, 0, NULL,
     false, "Target database. Default: the URI's database, else `mysql.database`, else `mysync`."},

    {"sync.enabled", "SYNC_ENABLED", OPT_BOOL, OFF(sync_enabled), "true", 0, 0, NULL, true,
     "Start replicating at start-up (false: start paused)."},
    {"sync.mode", "SYNC_MODE", OPT_ENUM, OFF(sync_mode), "auto", 0, 0, sync_modes, false,
     "binlog (CDC), poll (timestamp polling) or auto (binlog when the source allows it)."},
    {"sync.tables", "SYNC_TABLES", OPT_LIST, OFF(sync_tables), NULL, 0, 0, NULL, false,
     "Tables to replicate: `table` (in `mysql.database`) or `db.table`; comma list or sequence."},
    {"sync.batch_size", "SYNC_BATCH_SIZE", OPT_INT, OFF(sync_batch_size), "1000", 1, 100000, NULL,
     false, "Operations per bulk write; a batch flushes at this size or `sync.flush_ms`."},
    {"sync.flush_ms", "SYNC_FLUSH_MS", OPT_INT, OFF(sync_flush_ms), "100", 1, 60000, NULL, false,
     "Longest time a change waits in a partial batch, in milliseconds."},
    {"sync.interval_minutes", "SYNC_INTERVAL_MINUTES", OPT_INT, OFF(sync_interval_minutes), "60", 1,
     10080, NULL, true, "Polling interval in minutes (poll mode)."},
    {"sync.interval_seconds", "SYNC_INTERVAL_SECONDS", OPT_INT, OFF(sync_interval_seconds), "0", 0,
     604800, NULL, true, "Polling interval in seconds; when non-zero it wins over minutes."},
    {"sync.max_retries", "SYNC_MAX_RETRIES", OPT_INT, OFF(sync_max_retries), "5", 0, 1000, NULL,
     true, "Retries of a failed run or write before it counts as a critical failure."},
    {"sync.retry_delay", "SYNC_RETRY_DELAY", OPT_DURATION, OFF(sync_retry_delay_ms), "5s", 10,
     3600000, NULL, true,
     "First retry delay (doubles each retry, with jitter): `500ms`, `5s`, `2m`; bare number = s."},
    {"sync.server_id", "SYNC_SERVER_ID", OPT_INT, OFF(sync_server_id), "0", 0, 4294967295LL, NULL,
     false,
     "Replica server id for the binlog dump (must differ from every server's id); 0 = "
     "derived at start-up."},
    {"sync.decimal_as", "SYNC_DECIMAL_AS", OPT_ENUM, OFF(sync_decimal_as), "decimal128", 0, 0,
     decimal_as, false,
     "DECIMAL columns as decimal128 (exact), string (exact) or double (for targets without "
     "Decimal128, e.g. FerretDB v1)."},
    {"sync.date_as", "SYNC_DATE_AS", OPT_ENUM, OFF(sync_date_as), "date", 0, 0, date_as, false,
     "DATE columns as a BSON date at UTC midnight, or as the string `YYYY-MM-DD`."},
    {"sync.datetime_micros", "SYNC_DATETIME_MICROS", OPT_BOOL, OFF(sync_datetime_micros), "false",
     0, 0, NULL, false,
     "Keep microseconds: DATETIME/TIMESTAMP with fractional precision above 3 as the string "
     "`YYYY-MM-DD HH:MM:SS.ffffff` instead of a millisecond BSON date."},
    {"sync.source_timezone", "SYNC_SOURCE_TIMEZONE", OPT_STR, OFF(sync_source_timezone), "UTC", 0,
     0, NULL, false,
     "Time zone DATETIME values are written in at the source: `UTC` or a fixed offset "
     "`+HH:MM`/`-HH:MM` (TIMESTAMP is always UTC in the binlog)."},
    {"sync.keys", "SYNC_KEYS", OPT_LIST, OFF(sync_keys), NULL, 0, 0, NULL, false,
     "Keys for tables without a primary key: `table:col` or `db.table:col1+col2` (the columns "
     "must identify a row; they become `_id`)."},
    {"sync.snapshot", "SYNC_SNAPSHOT", OPT_ENUM, OFF(sync_snapshot), "initial", 0, 0,
     snapshot_modes, false,
     "initial: a first start (no checkpoint) copies the replicated tables, then streams from "
     "the binlog position taken before the copy; never: stream only; when_needed: as initial, "
     "and also re-snapshot when the checkpoint's binlog file was purged."},
    {"sync.snapshot_chunk_size", "SYNC_SNAPSHOT_CHUNK_SIZE", OPT_INT, OFF(sync_snapshot_chunk_size),
     "5000", 1, 1000000, NULL, false,
     "Rows per snapshot/backfill chunk: one keyset query, one watermark window, one progress "
     "save (`--chunk-size` overrides)."},
    {"sync.change_column", "SYNC_CHANGE_COLUMN", OPT_STR, OFF(sync_change_column), "updated_at", 0,
     0, NULL, false,
     "Poll mode: the column that changes with every write of a row (a DATETIME/TIMESTAMP, or "
     "an increasing integer); `tables.<t>.change_column` per table. Index it with the key."},
    {"sync.soft_delete_column", "SYNC_SOFT_DELETE_COLUMN", OPT_STR, OFF(sync_soft_delete_column),
     "deleted_at", 0, 0, NULL, false,
     "Poll mode: a row whose column of this name is not NULL is deleted from MongoDB (tables "
     "without the column: none); `tables.<t>.soft_delete_column` per table, empty: none."},
    {"sync.poll_lookback", "SYNC_POLL_LOOKBACK", OPT_DURATION, OFF(sync_poll_lookback_ms), "60s",
     0, 86400000, NULL, true,
     "Poll mode: each run re-reads rows whose change column is this much older than the newest "
     "one the previous run started from (writes that committed late); re-reads are harmless."},
    {"sync.reconcile_interval", "SYNC_RECONCILE_INTERVAL", OPT_DURATION,
     OFF(sync_reconcile_interval_ms), "1h", 0, 604800000LL, NULL, true,
     "Poll mode: how often a run also compares keys to delete the documents of rows deleted "
     "for good (hard deletes); 0: never."},
    {"sync.signal_table", "SYNC_SIGNAL_TABLE", OPT_STR, OFF(sync_signal_table), "mysync_signal", 0,
     0, NULL, false,
     "Table (in `mysql.database`, or `db.table`) for snapshot watermarks, created by mysync when "
     "it may; empty: no watermarks (a backfill then must not run beside a daemon streaming the "
     "same tables)."},
    {"sync.pipeline", "SYNC_PIPELINE", OPT_STR, OFF(sync_pipeline), "binlog", 0, 0, NULL, false,
     "Name of this pipeline's checkpoint in `_mysync_checkpoints` (one per source and target "
     "database)."},
    {"sync.collections.products", "SYNC_PRODUCTS_COLLECTION", OPT_STR, OFF(collection_products),
     "products", 0, 0, NULL, false, "Collection of the products strategy."},
    {"sync.collections.orders", "SYNC_ORDERS_COLLECTION", OPT_STR, OFF(collection_orders), "orders",
     0, 0, NULL, false, "Collection of the orders strategy."},
    {"sync.collections.customers", "SYNC_CUSTOMERS_COLLECTION", OPT_STR, OFF(collection_customers),
     "customers", 0, 0, NULL, false, "Collection of the customers strategy."},
    {"sync.collections.inventory", "SYNC_INVENTORY_COLLECTION", OPT_STR, OFF(collection_inventory),
     "inventory", 0, 0, NULL, false, "Collection of the inventory strategy."},

    {"sync.pii_key", "SYNC_PII_KEY", OPT_SECRET, OFF(sync_pii_key), NULL, 0, 0, NULL, false,
     "Key of `pii: hash` (HMAC-SHA256): the same key gives the same hashes, so documents can "
     "still be joined on a hashed field. Never printed or logged."},
    {"sync.pii_key_file", "SYNC_PII_KEY_FILE", OPT_STR, OFF(sync_pii_key_file), NULL, 0, 0, NULL,
     false, "File holding the PII key; wins over `sync.pii_key`."},

    {"http.listen", "HTTP_LISTEN", OPT_LISTEN, OFF(http_listen), "127.0.0.1:8080", 0, 0, NULL,
     false,
     "Control-plane address `host:port` (`[::1]:8080` for IPv6; port 0: any free port, logged); "
     "loopback by default; `off` (or empty in the file) disables the HTTP server."},
    {"http.token", "HTTP_TOKEN", OPT_SECRET, OFF(http_token), NULL, 0, 0, NULL, true,
     "Bearer token required by POST/PUT endpoints. Never printed or logged."},
    {"http.token_file", "HTTP_TOKEN_FILE", OPT_STR, OFF(http_token_file), NULL, 0, 0, NULL, true,
     "File holding the token; wins over `http.token`."},

    {"log.level", "LOG_LEVEL", OPT_ENUM, OFF(log_level), "info", 0, 0, log_levels, true,
     "error, warn, info, debug or trace."},
    {"log.format", "LOG_FORMAT", OPT_ENUM, OFF(log_format), "text", 0, 0, log_formats, false,
     "text, or json (one object per line: ts, level, component, msg, fields)."},
};

#define NOPTIONS (sizeof(options) / sizeof(options[0]))

#define FIELD(cfg, o, type) ((type *)((char *)(cfg) + (o)->offset))

/* ---- small helpers ---------------------------------------------------------------- */

static void strlist_clear(struct ms_strlist *l)
{
    for (size_t i = 0; i < l->n; i++) {
        free(l->v[i]);
    }
    free(l->v);
    l->v = NULL;
    l->n = 0;
}

static void set_str(char **slot, const char *v)
{
    free(*slot);
    *slot = v != NULL ? strdup(v) : NULL;
}

static char *trim(char *s)
{
    char *e;

    while (isspace((unsigned char)*s)) {
        s++;
    }
    e = s + strlen(s);
    while (e > s && isspace((unsigned char)e[-1])) {
        *--e = '\0';
    }
    return s;
}

static size_t edit_distance(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    size_t row[128];

    if (lb >= sizeof(row) / sizeof(row[0])) {
        return SIZE_MAX;
    }
    for (size_t j = 0; j <= lb; j++) {
        row[j] = j;
    }
    for (size_t i = 1; i <= la; i++) {
        size_t prev = row[0];
        row[0] = i;
        for (size_t j = 1; j <= lb; j++) {
            size_t cur = row[j];
            size_t cost =
                tolower((unsigned char)a[i - 1]) == tolower((unsigned char)b[j - 1]) ? 0 : 1;
            size_t best = prev + cost;
            if (row[j] + 1 < best) {
                best = row[j] + 1;
            }
            if (row[j - 1] + 1 < best) {
                best = row[j - 1] + 1;
            }
            row[j] = best;
            prev = cur;
        }
    }
    return row[lb];
}

static const char *leaf(const char *key)
{
    const char *dot = strrchr(key, '.');
    return dot != NULL ? dot + 1 : key;
}

const char *ms_config_suggest_key(const char *name)
{
    const char *best = NULL;
    size_t bestd = SIZE_MAX;
    size_t limit = strlen(name) / 3 + 1;

    if (limit < 2) {
        limit = 2;
    }
    for (size_t i = 0; i < NOPTIONS; i++) {
        size_t d = edit_distance(name, options[i].key);
        if (d < bestd) {
            bestd = d;
            best = options[i].key;
        }
    }
    if (bestd <= limit) {
        return best;
    }
    /* Right key, wrong section: "mysql.batch_size" -> "sync.batch_size". */
    for (size_t i = 0; i < NOPTIONS; i++) {
        if (edit_distance(leaf(name), leaf(options[i].key)) <= 1) {
            return options[i].key;
        }
    }
    return NULL;
}

static const char *suggest_env(const char *name)
{
    const char *best = NULL;
    size_t bestd = SIZE_MAX;

    for (size_t i = 0; i < NOPTIONS; i++) {
        size_t d = edit_distance(name, options[i].env);
        if (d < bestd) {
            bestd = d;
            best = options[i].env;
        }
    }
    return bestd <= 3 ? best : NULL;
}

static const struct option *find_option(const char *key)
{
    for (size_t i = 0; i < NOPTIONS; i++) {
        if (strcmp(options[i].key, key) == 0) {
            return &options[i];
        }
    }
    return NULL;
}

static bool is_section(const char *key)
{
    size_t n = strlen(key);

    for (size_t i = 0; i < NOPTIONS; i++) {
        if (strncmp(options[i].key, key, n) == 0 && options[i].key[n] == '.') {
            return true;
        }
    }
    return false;
}

/* ---- value parsing ------------------------------------------------------------------ */

static bool parse_int(const char *s, int64_t *out)
{
    char *end;
    long long v;

    errno = 0;
    v = strtoll(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0') {
        return false;
    }
    *out = v;
    return true;
}

static bool parse_bool(const char *s, bool *out)
{
    static const char *const yes[] = {"true", "yes", "on", "1"};
    static const char *const no[] = {"false", "no", "off", "0"};

    for (size_t i = 0; i < 4; i++) {
        if (strcasecmp(s, yes[i]) == 0) {
            *out = true;
            return true;
        }
        if (strcasecmp(s, no[i]) == 0) {
            *out = false;
            return true;
        }
    }
    return false;
}

static bool parse_duration_ms(const char *s, int64_t *out)
{
    char *end;
    double v;
    double mult = 1000.0;

    errno = 0;
    v = strtod(s, &end);
    if (errno != 0 || end == s || v < 0) {
        return false;
    }
    if (*end == '\0' || strcmp(end, "s") == 0) {
        mult = 1000.0;
    } else if (strcmp(end, "ms") == 0) {
        mult = 1.0;
    } else if (strcmp(end, "m") == 0) {
        mult = 60000.0;
    } else if (strcmp(end, "h") == 0) {
        mult = 3600000.0;
    } else {
        return false;
    }
    if (v * mult > (double)INT64_MAX / 2) {
        return false;
    }
    *out = (int64_t)(v * mult + 0.5);
    return true;
}

/* host:port, [v6]:port. Port 0 is allowed (any free port; tests use it). */
bool ms_config_parse_listen(const char *s, char *host, size_t hostsz, int *port)
{
    const char *colon;
    int64_t p;
    size_t n;

    if (s[0] == '[') {
        const char *close = strchr(s, ']');
        if (close == NULL || close[1] != ':') {
            return false;
        }
        n = (size_t)(close - s - 1);
        colon = close + 1;
        s++;
    } else {
        colon = strrchr(s, ':');
        if (colon == NULL) {
            return false;
        }
        n = (size_t)(colon - s);
    }
    if (n == 0 || n >= hostsz || !parse_int(colon + 1, &p) || p < 0 || p > 65535) {
        return false;
    }
    memcpy(host, s, n);
    host[n] = '\0';
    *port = (int)p;
    return true;
}

/* Sets option o from text s. where = "FILE:LINE:COL" or "environment variable X". */
static bool apply(struct ms_config *cfg, const struct option *o, const char *s,
                  enum ms_config_origin origin, const char *where, struct ms_error *err)
{
    const char *shown = (o->type == OPT_SECRET || o->type == OPT_URI || o->type == OPT_MYSQL_URL)
                            ? "(value hidden)"
                            : s;

    switch (o->type) {
    case OPT_STR:
    case OPT_SECRET:
    case OPT_URI:
        set_str(FIELD(cfg, o, char *), s);
        break;
    case OPT_MYSQL_URL:
        if (!ms_config_parse_mysql_url(cfg, s, err)) {
            ms_error_prefix(err, "%s: %s", where, o->key);
            return false;
        }
        set_str(FIELD(cfg, o, char *), s);
        for (size_t i = 0; i < NOPTIONS; i++) {
            const char *k = options[i].key;
            if (strcmp(k, "mysql.host") == 0 || strcmp(k, "mysql.port") == 0 ||
                strcmp(k, "mysql.user") == 0 || strcmp(k, "mysql.password") == 0 ||
                strcmp(k, "mysql.database") == 0) {
                /* only fields the URL named were changed; marking all is close enough */
                cfg->origin[i] = MS_ORIGIN_URL;
            }
        }
        break;
    case OPT_INT: {
        int64_t v;
        if (!parse_int(s, &v)) {
            ms_error_set(err, MS_ERR_CONFIG, MS_CONFIG_BAD_VALUE,
                         "%s: %s: '%s' is not an integer (allowed %" PRId64 "..%" PRId64 ")", where,
                         o->key, shown, o->min, o->max);
            return false;
        }
        if (v < o->min || v > o->max) {
            ms_error_set(err, MS_ERR_CONFIG, MS_CONFIG_BAD_VALUE,
                         "%s: %s: %" PRId64 " is out of range (allowed %" PRId64 "..%" PRId64 ")",
                         where, o->key, v, o->min, o->max);
            return false;
        }
        *FIELD(cfg, o, int64_t) = v;
        break;
    }
    case OPT_BOOL:
        if (!parse_bool(s, FIELD(cfg, o, bool))) {
            ms_error_set(err, MS_ERR_CONFIG, MS_CONFIG_BAD_VALUE,
                         "%s: %s: '%s' is not a boolean (allowed true/false, yes/no, on/off, 1/0)",
                         where, o->key, shown);
            return false;
        }
        break;
    case OPT_ENUM: {
        char allowed[160] = "";
        for (int i = 0; o->values[i] != NULL; i++) {
            if (strcasecmp(s, o->values[i]) == 0) {
                *FIELD(cfg, o, int) = i;
                goto done;
            }
            if (i > 0) {
                strncat(allowed, ", ", sizeof(allowed) - strlen(allowed) - 1);
            }
            strncat(allowed, o->values[i], sizeof(allowed) - strlen(allowed) - 1);
        }
        ms_error_set(err, MS_ERR_CONFIG, MS_CONFIG_BAD_VALUE, "%s: %s: '%s' is not one of: %s",
                     where, o->key, shown, allowed);
        return false;
    }
    case OPT_LIST: {
        struct ms_strlist *l = FIELD(cfg, o, struct ms_strlist);
        char *copy = strdup(s), *p = copy;
        strlist_clear(l);
        while (p != NULL) {
            char *comma = strchr(p, ',');
            char *item;
            if (comma != NULL) {
                *comma = '\0';
            }
            item = trim(p);
            if (item[0] == '\0') {
                ms_error_set(err, MS_ERR_CONFIG, MS_CONFIG_BAD_VALUE,
                             "%s: %s: empty element in list '%s'", where, o->key, s);
                free(copy);
                return false;
            }
            l->v = realloc(l->v, (l->n + 1) * sizeof(char *));
            l->v[l->n++] = strdup(item);
            p = comma != NULL ? comma + 1 : NULL;
        }
        free(copy);
        break;
    }
    case OPT_DURATION: {
        int64_t ms;
        if (!parse_duration_ms(s, &ms)) {
            ms_error_set(err, MS_ERR_CONFIG, MS_CONFIG_BAD_VALUE,
                         "%s: %s: '%s' is not a duration (e.g. 500ms, 5s, 2m, 1h; bare number = "
                         "seconds)",
                         where, o->key, shown);
            return false;
        }
        if (ms < o->min || ms > o->max) {
            ms_error_set(err, MS_ERR_CONFIG, MS_CONFIG_BAD_VALUE,
                         "%s: %s: '%s' is out of range (allowed %" PRId64 "ms..%" PRId64 "s)",
                         where, o->key, s, o->min, o->max / 1000);
            return false;
        }
        *FIELD(cfg, o, int64_t) = ms;
        break;
    }
    case OPT_LISTEN: {
        char host[256];
        int port;
        if (s[0] == '\0' || strcasecmp(s, "off") == 0) {
            set_str(FIELD(cfg, o, char *), "off"); /* no control plane */
            break;
        }
        if (!ms_config_parse_listen(s, host, sizeof(host), &port)) {
            ms_error_set(err, MS_ERR_CONFIG, MS_CONFIG_BAD_VALUE,
                         "%s: %s: '%s' is not host:port (e.g. 127.0.0.1:8080, [::1]:8080, "
                         "0.0.0.0:8080; port 0..65535; or off)",
                         where, o->key, s);
            return false;
        }
        set_str(FIELD(cfg, o, char *), s);
        break;
    }
    }
done:
    cfg->origin[o - options] = (unsigned char)origin;
    return true;
}

/* ---- mysql:// URLs ------------------------------------------------------------------ */

static int hexval(int c)
{
    if (c >= '0' && c <= '9') {
        return c - '0';
    }
    c = tolower(c);
    if (c >= 'a' && c <= 'f') {
        return c - 'a' + 10;
    }
    return -1;
}

/* Percent-decodes [s, s+n) into a new string; NULL on a bad escape or an embedded NUL. */
static char *pct_decode(const char *s, size_t n)
{
    char *out = malloc(n + 1);
    size_t o = 0;

    for (size_t i = 0; i < n; i++) {
        if (s[i] != '%') {
            out[o++] = s[i];
            continue;
        }
        int hi = i + 2 < n ? hexval((unsigned char)s[i + 1]) : -1;
        int lo = i + 2 < n ? hexval((unsigned char)s[i + 2]) : -1;
        if (hi < 0 || lo < 0 || (hi == 0 && lo == 0)) {
            free(out);
            return NULL;
        }
        out[o++] = (char)(hi * 16 + lo);
        i += 2;
    }
    out[o] = '\0';
    return out;
}

static bool url_component(char **slot, const char *s, size_t n, const char *what,
                          struct ms_error *err)
{
    char *v = pct_decode(s, n);

    if (v == NULL) {
        ms_error_set(err, MS_ERR_CONFIG, MS_CONFIG_BAD_VALUE, "bad percent-encoding in the %s",
                     what);
        return false;
    }
    free(*slot);
    *slot = v;
    return true;
}

bool ms_config_parse_mysql_url(struct ms_config *cfg, const char *url, struct ms_error *err)
{
    const char *p, *auth_end, *host_end, *path, *query;
    size_t n;

    if (strncasecmp(url, "mysql://", 8) == 0) {
        p = url + 8;
    } else if (strncasecmp(url, "mariadb://", 10) == 0) {
        p = url + 10;
    } else {
        ms_error_set(err, MS_ERR_CONFIG, MS_CONFIG_BAD_VALUE,
                     "expected mysql://user:password@host:port/database");
        return false;
    }
    /* authority ends at the first '/', '?' or end; userinfo ends at its last '@' */
    n = strcspn(p, "/?");
    host_end = p + n;
    auth_end = NULL;
    for (const char *q = p; q < host_end; q++) {
        if (*q == '@') {
            auth_end = q;
        }
    }
    if (auth_end != NULL) {
        const char *colon = memchr(p, ':', (size_t)(auth_end - p));
        if (colon != NULL) {
            if (!url_component(&cfg->mysql_user, p, (size_t)(colon - p), "user name", err) ||
                !url_component(&cfg->mysql_password, colon + 1, (size_t)(auth_end - colon - 1),
                               "password", err)) {
                return false;
            }
            ms_log_add_secret(cfg->mysql_password);
        } else if (!url_component(&cfg->mysql_user, p, (size_t)(auth_end - p), "user name", err)) {
            return false;
        }
        p = auth_end + 1;
    }
    /* host[:port] or [v6][:port] */
    {
        const char *hs = p, *he, *portp = NULL;
        if (*p == '[') {
            const char *close = memchr(p, ']', (size_t)(host_end - p));
            if (close == NULL) {
                ms_error_set(err, MS_ERR_CONFIG, MS_CONFIG_BAD_VALUE, "unterminated [ in host");
                return false;
            }
            hs = p + 1;
            he = close;
            if (close + 1 < host_end) {
                if (close[1] != ':') {
                    ms_error_set(err, MS_ERR_CONFIG, MS_CONFIG_BAD_VALUE, "bad text after ]");
                    return false;
                }
                portp = close + 2;
            }
        } else {
            const char *colon = memchr(p, ':', (size_t)(host_end - p));
            he = colon != NULL ? colon : host_end;
            portp = colon != NULL ? colon + 1 : NULL;
        }
        if (he > hs && !url_component(&cfg->mysql_host, hs, (size_t)(he - hs), "host", err)) {
            return false;
        }
        if (portp != NULL) {
            char buf[16];
            int64_t port;
            size_t pn = (size_t)(host_end - portp);
            if (pn == 0 || pn >= sizeof(buf)) {
                ms_error_set(err, MS_ERR_CONFIG, MS_CONFIG_BAD_VALUE, "bad port");
                return false;
            }
            memcpy(buf, portp, pn);
            buf[pn] = '\0';
            if (!parse_int(buf, &port) || port < 1 || port > 65535) {
                ms_error_set(err, MS_ERR_CONFIG, MS_CONFIG_BAD_VALUE,
                             "port '%s' is not in 1..65535", buf);
                return false;
            }
            cfg->mysql_port = port;
        }
    }
    path = host_end;
    query = strchr(path, '?');
    if (*path == '/') {
        size_t dn = (query != NULL ? (size_t)(query - path) : strlen(path)) - 1;
        if (dn > 0 && !url_component(&cfg->mysql_database, path + 1, dn, "database", err)) {
            return false;
        }
    }
    if (query != NULL) {
        char *copy = strdup(query + 1), *save = NULL;
        bool ok = true;
        for (char *kv = strtok_r(copy, "&", &save); kv != NULL && ok;
             kv = strtok_r(NULL, "&", &save)) {
            char *eq = strchr(kv, '=');
            const struct option *o = NULL;
            if (eq == NULL) {
                ok = false;
                ms_error_set(err, MS_ERR_CONFIG, MS_CONFIG_BAD_VALUE,
                             "URL parameter '%s' has no value", kv);
                break;
            }
            *eq = '\0';
            if (strcmp(kv, "ssl-mode") == 0 || strcmp(kv, "ssl_mode") == 0 ||
                strcmp(kv, "sslmode") == 0) {
                o = find_option("mysql.ssl_mode");
            } else if (strcmp(kv, "charset") == 0) {
                o = find_option("mysql.charset");
            } else if (strcmp(kv, "ssl-ca") == 0 || strcmp(kv, "ssl_ca") == 0) {
                o = find_option("mysql.ssl_ca");
            }
            if (o == NULL) {
                ms_error_set(err, MS_ERR_CONFIG, MS_CONFIG_BAD_VALUE,
                             "URL parameter '%s' is not known (ssl-mode, ssl-ca, charset)", kv);
                ok = false;
                break;
            }
            char *val = pct_decode(eq + 1, strlen(eq + 1));
            if (val == NULL) {
                ms_error_set(err, MS_ERR_CONFIG, MS_CONFIG_BAD_VALUE,
                             "bad percent-encoding in URL parameter '%s'", kv);
                ok = false;
                break;
            }
            ok = apply(cfg, o, val, MS_ORIGIN_URL, "URL parameter", err);
            free(val);
        }
        free(copy);
        return ok;
    }
    return true;
}

void ms_config_redact_uri(const char *uri, char *out, size_t outsz)
{
    const char *scheme = strstr(uri, "://");
    const char *auth, *at = NULL, *end, *colon;

    if (outsz == 0) {
        return;
    }
    if (scheme == NULL) {
        snprintf(out, outsz, "%s", uri);
        return;
    }
    auth = scheme + 3;
    end = auth + strcspn(auth, "/?#");
    for (const char *q = auth; q < end; q++) {
        if (*q == '@') {
            at = q;
        }
    }
    colon = at != NULL ? memchr(auth, ':', (size_t)(at - auth)) : NULL;
    if (colon == NULL) {
        snprintf(out, outsz, "%s", uri);
        return;
    }
    snprintf(out, outsz, "%.*s:***%s", (int)(colon - uri), uri, at);
}

/* ---- layers ------------------------------------------------------------------------- */

struct pending {
    const struct option *opt;
    char *value;
    char where[600];
};

struct walk {
    const char *file;
    yaml_document_t *doc;
    struct pending *items;
    size_t n;
    struct ms_error *err;
    struct ms_config *cfg;
};

static bool parse_tables(struct walk *w, yaml_node_t *map);

static void mark_where(char *buf, size_t n, const char *file, yaml_mark_t m)
{
    snprintf(buf, n, "%s:%zu:%zu", file, m.line + 1, m.column + 1);
}

static bool is_yaml_null(const yaml_node_t *node)
{
    const char *v = (const char *)node->data.scalar.value;

    return node->data.scalar.style == YAML_PLAIN_SCALAR_STYLE &&
           (v[0] == '\0' || strcmp(v, "~") == 0 || strcmp(v, "null") == 0 ||
            strcmp(v, "Null") == 0 || strcmp(v, "NULL") == 0);
}

static bool walk_mapping(struct walk *w, yaml_node_t *map, const char *prefix)
{
    char where[600];

    for (yaml_node_pair_t *pair = map->data.mapping.pairs.start; pair < map->data.mapping.pairs.top;
         pair++) {
        yaml_node_t *k = yaml_document_get_node(w->doc, pair->key);
        yaml_node_t *v = yaml_document_get_node(w->doc, pair->value);
        char key[256];
        const struct option *o;

        mark_where(where, sizeof(where), w->file, k->start_mark);
        if (k->type != YAML_SCALAR_NODE) {
            ms_error_set(w->err, MS_ERR_CONFIG, MS_CONFIG_SYNTAX, "%s: a key must be a plain name",
                         where);
            return false;
        }
        snprintf(key, sizeof(key), "%s%s%s", prefix, prefix[0] != '\0' ? "." : "",
                 (const char *)k->data.scalar.value);
        for (yaml_node_pair_t *prev = map->data.mapping.pairs.start; prev < pair; prev++) {
            yaml_node_t *pk = yaml_document_get_node(w->doc, prev->key);
            if (pk->type == YAML_SCALAR_NODE && strcmp((const char *)pk->data.scalar.value,
                                                       (const char *)k->data.scalar.value) == 0) {
                ms_error_set(w->err, MS_ERR_CONFIG, MS_CONFIG_SYNTAX, "%s: duplicate key '%s'",
                             where, key);
                return false;
            }
        }
        if (strcmp(key, "tables") == 0) {
            if (v->type == YAML_SCALAR_NODE && is_yaml_null(v)) {
                continue;
            }
            if (!parse_tables(w, v)) {
                return false;
            }
            continue;
        }
        if (is_section(key)) {
            if (v->type == YAML_SCALAR_NODE && is_yaml_null(v)) {
                continue; /* "mysql:" with nothing under it */
            }
            if (v->type != YAML_MAPPING_NODE) {
                mark_where(where, sizeof(where), w->file, v->start_mark);
                ms_error_set(w->err, MS_ERR_CONFIG, MS_CONFIG_BAD_VALUE,
                             "%s: '%s' is a section: expected a mapping of keys under it", where,
                             key);
                return false;
            }
            if (!walk_mapping(w, v, key)) {
                return false;
            }
            continue;
        }
        o = find_option(key);
        if (o == NULL) {
            const char *hint = ms_config_suggest_key(key);
            if (hint != NULL) {
                ms_error_set(w->err, MS_ERR_CONFIG, MS_CONFIG_UNKNOWN_KEY,
                             "%s: unknown key '%s' (did you mean '%s'?)", where, key, hint);
            } else {
                ms_error_set(w->err, MS_ERR_CONFIG, MS_CONFIG_UNKNOWN_KEY,
                             "%s: unknown key '%s' (see config/mysync.example.yaml)", where, key);
            }
            return false;
        }
        mark_where(where, sizeof(where), w->file, v->start_mark);
        struct pending *it;
        bson_string_t *joined;
        switch (v->type) {
        case YAML_SCALAR_NODE:
            if (is_yaml_null(v)) {
                continue;
            }
            w->items = realloc(w->items, (w->n + 1) * sizeof(*w->items));
            it = &w->items[w->n++];
            it->opt = o;
            it->value = strdup((const char *)v->data.scalar.value);
            snprintf(it->where, sizeof(it->where), "%s", where);
            break;
        case YAML_SEQUENCE_NODE:
            if (o->type != OPT_LIST) {
                ms_error_set(w->err, MS_ERR_CONFIG, MS_CONFIG_BAD_VALUE,
                             "%s: %s takes a single value, not a list", where, key);
                return false;
            }
            joined = bson_string_new(NULL);
            for (yaml_node_item_t *i = v->data.sequence.items.start; i < v->data.sequence.items.top;
                 i++) {
                yaml_node_t *e = yaml_document_get_node(w->doc, *i);
                if (e->type != YAML_SCALAR_NODE || strchr((char *)e->data.scalar.value, ',')) {
                    char ew[600];
                    mark_where(ew, sizeof(ew), w->file, e->start_mark);
                    ms_error_set(w->err, MS_ERR_CONFIG, MS_CONFIG_BAD_VALUE,
                                 "%s: %s: each element must be a single name", ew, key);
                    bson_string_free(joined, true);
                    return false;
                }
                if (joined->len > 0) {
                    bson_string_append_c(joined, ',');
                }
                bson_string_append(joined, (const char *)e->data.scalar.value);
            }
            if (joined->len == 0) {
                bson_string_free(joined, true);
                continue;
            }
            w->items = realloc(w->items, (w->n + 1) * sizeof(*w->items));
            it = &w->items[w->n++];
            it->opt = o;
            it->value = bson_string_free(joined, false);
            snprintf(it->where, sizeof(it->where), "%s", where);
            break;
        default:
            ms_error_set(w->err, MS_ERR_CONFIG, MS_CONFIG_BAD_VALUE,
                         "%s: %s takes a value, not a mapping", where, key);
            return false;
        }
    }
    return true;
}

static bool load_file(struct ms_config *cfg, const char *path, struct ms_error *err)
{
    FILE *f = fopen(path, "rb");
    yaml_parser_t parser;
    yaml_document_t doc;
    struct walk w = {.file = path, .doc = &doc, .err = err, .cfg = cfg};
    yaml_node_t *root;
    bool ok = false;

    if (f == NULL) {
        ms_error_set(err, MS_ERR_CONFIG, MS_CONFIG_IO, "%s: cannot open: %s", path,
                     strerror(errno));
        return false;
    }
    yaml_parser_initialize(&parser);
    yaml_parser_set_input_file(&parser, f);
    if (!yaml_parser_load(&parser, &doc)) {
        yaml_mark_t m = parser.problem_mark, c = parser.context_mark;
        if (parser.context != NULL) {
            ms_error_set(err, MS_ERR_CONFIG, MS_CONFIG_SYNTAX,
                         "%s:%zu:%zu: YAML syntax error: %s (%s started at line %zu, column %zu)",
                         path, m.line + 1, m.column + 1,
                         parser.problem != NULL ? parser.problem : "unknown", parser.context,
                         c.line + 1, c.column + 1);
        } else {
            ms_error_set(err, MS_ERR_CONFIG, MS_CONFIG_SYNTAX, "%s:%zu:%zu: YAML syntax error: %s",
                         path, m.line + 1, m.column + 1,
                         parser.problem != NULL ? parser.problem : "unknown");
        }
        yaml_parser_delete(&parser);
        fclose(f);
        return false;
    }
    root = yaml_document_get_root_node(&doc);
    if (root == NULL || (root->type == YAML_SCALAR_NODE && is_yaml_null(root))) {
        ok = true; /* empty file: nothing to apply */
        goto done;
    }
    if (root->type != YAML_MAPPING_NODE) {
        ms_error_set(err, MS_ERR_CONFIG, MS_CONFIG_SYNTAX,
                     "%s:%zu:%zu: the top level must be a mapping (mysql:, mongodb:, sync:, ...)",
                     path, root->start_mark.line + 1, root->start_mark.column + 1);
        goto done;
    }
    if (!walk_mapping(&w, root, "")) {
        goto done;
    }
    /* mysql.url first: discrete keys of the same layer win over it */
    ok = true;
    for (int pass = 0; pass < 2 && ok; pass++) {
        for (size_t i = 0; i < w.n && ok; i++) {
            if ((w.items[i].opt->type == OPT_MYSQL_URL) == (pass == 0)) {
                ok = apply(cfg, w.items[i].opt, w.items[i].value, MS_ORIGIN_FILE, w.items[i].where,
                           err);
            }
        }
    }
done:
    for (size_t i = 0; i < w.n; i++) {
        free(w.items[i].value);
    }
    free(w.items);
    yaml_document_delete(&doc);
    yaml_parser_delete(&parser);
    fclose(f);
    return ok;
}

/* ---- the tables: section -------------------------------------------------------------- */

static void kvlist_clear(struct ms_kvlist *l)
{
    for (size_t i = 0; i < l->n; i++) {
        free(l->v[i].k);
        free(l->v[i].v);
    }
    free(l->v);
    l->v = NULL;
    l->n = 0;
}

static void kvlist_put(struct ms_kvlist *l, const char *k, const char *v)
{
    for (size_t i = 0; i < l->n; i++) {
        if (strcmp(l->v[i].k, k) == 0) {
            set_str(&l->v[i].v, v);
            return;
        }
    }
    l->v = realloc(l->v, (l->n + 1) * sizeof(*l->v));
    if (l->v == NULL) {
        abort();
    }
    l->v[l->n].k = strdup(k);
    l->v[l->n].v = strdup(v);
    l->n++;
}

const char *ms_kvlist_get(const struct ms_kvlist *l, const char *key)
{
    for (size_t i = 0; l != NULL && i < l->n; i++) {
        if (strcmp(l->v[i].k, key) == 0) {
            return l->v[i].v;
        }
    }
    return NULL;
}

static void strlist_add(struct ms_strlist *l, const char *v)
{
    l->v = realloc(l->v, (l->n + 1) * sizeof(*l->v));
    if (l->v == NULL) {
        abort();
    }
    l->v[l->n++] = strdup(v);
}

static void table_cfg_clear(struct ms_table_cfg *t)
{
    free(t->name);
    free(t->strategy);
    free(t->role);
    free(t->collection);
    free(t->change_column);
    free(t->soft_delete_column);
    kvlist_clear(&t->columns);
    strlist_clear(&t->include);
    strlist_clear(&t->exclude);
    kvlist_clear(&t->rename);
    strlist_clear(&t->json);
    kvlist_clear(&t->pii);
}

static struct ms_table_cfg *table_cfg_get(struct ms_config *cfg, const char *name)
{
    struct ms_table_cfg *t;

    for (size_t i = 0; i < cfg->ntables; i++) {
        if (strcmp(cfg->tables[i].name, name) == 0) {
            return &cfg->tables[i];
        }
    }
    cfg->tables = realloc(cfg->tables, (cfg->ntables + 1) * sizeof(*cfg->tables));
    if (cfg->tables == NULL) {
        abort();
    }
    t = &cfg->tables[cfg->ntables++];
    memset(t, 0, sizeof(*t));
    t->name = strdup(name);
    t->date_as = t->datetime_as = t->time_as = -1;
    return t;
}

/* The keys of one tables: entry, and what each takes. */
enum tkey_type { TK_STR, TK_LIST, TK_MAP, TK_ENUM };
static const char *const datetime_as[] = {"date", "string", NULL};
static const char *const time_as[] = {"string", "seconds", NULL};
static const char *const pii_actions[] = {"keep", "drop", "redact", "hash", NULL};
static const struct {
    const char *key;
    enum tkey_type type;
    const char *const *values;
} table_keys[] = {
    {"strategy", TK_STR, NULL},
    {"role", TK_STR, NULL},
    {"collection", TK_STR, NULL},
    {"change_column", TK_STR, NULL},
    {"soft_delete_column", TK_STR, NULL},
    {"columns", TK_MAP, NULL},
    {"include", TK_LIST, NULL},
    {"exclude", TK_LIST, NULL},
    {"rename", TK_MAP, NULL},
    {"json", TK_LIST, NULL},
    {"pii", TK_MAP, pii_actions},
    {"date_as", TK_ENUM, date_as},
    {"datetime_as", TK_ENUM, datetime_as},
    {"time_as", TK_ENUM, time_as},
};

static bool scalar_of(struct walk *w, yaml_node_t *n, const char *what, const char **out)
{
    char where[600];

    if (n->type != YAML_SCALAR_NODE || is_yaml_null(n) || n->data.scalar.length == 0) {
        mark_where(where, sizeof(where), w->file, n->start_mark);
        ms_error_set(w->err, MS_ERR_CONFIG, MS_CONFIG_BAD_VALUE, "%s: %s: expected a name", where,
                     what);
        return false;
    }
    *out = (const char *)n->data.scalar.value;
    return true;
}

static int enum_index(const char *const *values, const char *v)
{
    for (int i = 0; values[i] != NULL; i++) {
        if (strcmp(values[i], v) == 0) {
            return i;
        }
    }
    return -1;
}

static bool parse_table_entry(struct walk *w, const char *name, yaml_node_t *map,
                              struct ms_table_cfg *t)
{
    char where[600], what[400];

    mark_where(t->where, sizeof(t->where), w->file, map->start_mark);
    if (map->type == YAML_SCALAR_NODE && is_yaml_null(map)) {
        return true;
    }
    if (map->type != YAML_MAPPING_NODE) {
        mark_where(where, sizeof(where), w->file, map->start_mark);
        ms_error_set(w->err, MS_ERR_CONFIG, MS_CONFIG_BAD_VALUE,
                     "%s: tables.%s: expected a mapping (strategy:, collection:, ...)", where,
                     name);
        return false;
    }
    for (yaml_node_pair_t *pair = map->data.mapping.pairs.start; pair < map->data.mapping.pairs.top;
         pair++) {
        yaml_node_t *k = yaml_document_get_node(w->doc, pair->key);
        yaml_node_t *v = yaml_document_get_node(w->doc, pair->value);
        const char *key, *sv;
        size_t ki;

        mark_where(where, sizeof(where), w->file, k->start_mark);
        if (k->type != YAML_SCALAR_NODE) {
            ms_error_set(w->err, MS_ERR_CONFIG, MS_CONFIG_SYNTAX, "%s: a key must be a plain name",
                         where);
            return false;
        }
        key = (const char *)k->data.scalar.value;
        for (ki = 0; ki < sizeof(table_keys) / sizeof(table_keys[0]); ki++) {
            if (strcmp(table_keys[ki].key, key) == 0) {
                break;
            }
        }
        if (ki == sizeof(table_keys) / sizeof(table_keys[0])) {
            ms_error_set(w->err, MS_ERR_CONFIG, MS_CONFIG_UNKNOWN_KEY,
                         "%s: unknown key 'tables.%s.%s' (one of strategy, role, collection, "
                         "columns, include, exclude, rename, json, pii, date_as, datetime_as, "
                         "time_as)",
                         where, name, key);
            return false;
        }
        snprintf(what, sizeof(what), "tables.%s.%s", name, key);
        if (v->type == YAML_SCALAR_NODE && is_yaml_null(v)) {
            continue;
        }
        switch (table_keys[ki].type) {
        case TK_STR:
        case TK_ENUM: {
            char **slot = NULL;
            if (!scalar_of(w, v, what, &sv)) {
                return false;
            }
            if (table_keys[ki].type == TK_ENUM) {
                int e = enum_index(table_keys[ki].values, sv);
                if (e < 0) {
                    mark_where(where, sizeof(where), w->file, v->start_mark);
                    ms_error_set(w->err, MS_ERR_CONFIG, MS_CONFIG_BAD_VALUE,
                                 "%s: %s: '%s' is not one of %s, %s", where, what, sv,
                                 table_keys[ki].values[0], table_keys[ki].values[1]);
                    return false;
                }
                *(strcmp(key, "date_as") == 0       ? &t->date_as
                  : strcmp(key, "datetime_as") == 0 ? &t->datetime_as
                                                    : &t->time_as) = e;
                break;
            }
            slot = strcmp(key, "strategy") == 0        ? &t->strategy
                   : strcmp(key, "role") == 0          ? &t->role
                   : strcmp(key, "change_column") == 0 ? &t->change_column
                   : strcmp(key, "soft_delete_column") == 0 ? &t->soft_delete_column
                                                             : &t->collection;
            set_str(slot, sv);
            break;
        }
        case TK_LIST: {
            struct ms_strlist *l = strcmp(key, "include") == 0   ? &t->include
                                   : strcmp(key, "exclude") == 0 ? &t->exclude
                                                                 : &t->json;
            if (v->type == YAML_SCALAR_NODE) {
                /* a comma list, as in the environment */
                char *copy = strdup((const char *)v->data.scalar.value), *save = NULL;
                for (char *tok = strtok_r(copy, ",", &save); tok != NULL;
                     tok = strtok_r(NULL, ",", &save)) {
                    char *tt = trim(tok);
                    if (tt[0] != '\0') {
                        strlist_add(l, tt);
                    }
                }
                free(copy);
                break;
            }
            if (v->type != YAML_SEQUENCE_NODE) {
                mark_where(where, sizeof(where), w->file, v->start_mark);
                ms_error_set(w->err, MS_ERR_CONFIG, MS_CONFIG_BAD_VALUE,
                             "%s: %s: expected a list of column names", where, what);
                return false;
            }
            for (yaml_node_item_t *i = v->data.sequence.items.start; i < v->data.sequence.items.top;
                 i++) {
                if (!scalar_of(w, yaml_document_get_node(w->doc, *i), what, &sv)) {
                    return false;
                }
                strlist_add(l, sv);
            }
            break;
        }
        case TK_MAP: {
            struct ms_kvlist *l = strcmp(key, "columns") == 0  ? &t->columns
                                  : strcmp(key, "rename") == 0 ? &t->rename
                                                               : &t->pii;
            if (v->type != YAML_MAPPING_NODE) {
                mark_where(where, sizeof(where), w->file, v->start_mark);
                ms_error_set(w->err, MS_ERR_CONFIG, MS_CONFIG_BAD_VALUE,
                             "%s: %s: expected a mapping of column: value", where, what);
                return false;
            }
            for (yaml_node_pair_t *e = v->data.mapping.pairs.start; e < v->data.mapping.pairs.top;
                 e++) {
                const char *ek, *ev;
                yaml_node_t *vn = yaml_document_get_node(w->doc, e->value);
                if (!scalar_of(w, yaml_document_get_node(w->doc, e->key), what, &ek) ||
                    !scalar_of(w, vn, what, &ev)) {
                    return false;
                }
                if (table_keys[ki].values != NULL && enum_index(table_keys[ki].values, ev) < 0) {
                    mark_where(where, sizeof(where), w->file, vn->start_mark);
                    ms_error_set(w->err, MS_ERR_CONFIG, MS_CONFIG_BAD_VALUE,
                                 "%s: %s.%s: '%s' is not one of keep, drop, redact, hash", where,
                                 what, ek, ev);
                    return false;
                }
                if (ms_kvlist_get(l, ek) != NULL) {
                    mark_where(where, sizeof(where), w->file, vn->start_mark);
                    ms_error_set(w->err, MS_ERR_CONFIG, MS_CONFIG_SYNTAX,
                                 "%s: %s: duplicate key '%s'", where, what, ek);
                    return false;
                }
                kvlist_put(l, ek, ev);
            }
            break;
        }
        }
    }
    return true;
}

static bool parse_tables(struct walk *w, yaml_node_t *map)
{
    char where[600];

    if (map->type != YAML_MAPPING_NODE) {
        mark_where(where, sizeof(where), w->file, map->start_mark);
        ms_error_set(w->err, MS_ERR_CONFIG, MS_CONFIG_BAD_VALUE,
                     "%s: 'tables' is a section: expected table names, each with its mapping",
                     where);
        return false;
    }
    for (yaml_node_pair_t *pair = map->data.mapping.pairs.start; pair < map->data.mapping.pairs.top;
         pair++) {
        yaml_node_t *k = yaml_document_get_node(w->doc, pair->key);
        const char *name;

        if (!scalar_of(w, k, "tables", &name)) {
            return false;
        }
        for (size_t i = 0; i < w->cfg->ntables; i++) {
            if (strcmp(w->cfg->tables[i].name, name) == 0) {
                mark_where(where, sizeof(where), w->file, k->start_mark);
                ms_error_set(w->err, MS_ERR_CONFIG, MS_CONFIG_SYNTAX,
                             "%s: duplicate key 'tables.%s'", where, name);
                return false;
            }
        }
        if (!parse_table_entry(w, name, yaml_document_get_node(w->doc, pair->value),
                               table_cfg_get(w->cfg, name))) {
            return false;
        }
    }
    return true;
}

/* SYNC_STRATEGY_<TABLE>=strategy[:role]: <TABLE> is matched against the tables: entries and
 * sync.tables case-insensitively ("." written as "__" for db.table); a table named nowhere is
 * taken as written, lower-cased. */
static bool load_env_strategies(struct ms_config *cfg, const char *const *envp,
                                struct ms_error *err)
{
    for (const char *const *e = envp; *e != NULL; e++) {
        const char *eq = strchr(*e, '='), *val, *colon;
        char up[160], name[160] = "";
        struct ms_table_cfg *t;
        size_t n;

        if (strncmp(*e, "SYNC_STRATEGY_", 14) != 0 || eq == NULL) {
            continue;
        }
        n = (size_t)(eq - *e) - 14;
        val = eq + 1;
        if (n == 0 || n >= sizeof(up) || val[0] == '\0') {
            continue;
        }
        memcpy(up, *e + 14, n);
        up[n] = '\0';
        /* the environment's name of a table: upper case, "." -> "__" */
        for (size_t pass = 0; pass < 2 && name[0] == '\0'; pass++) {
            size_t count = pass == 0 ? cfg->ntables : cfg->sync_tables.n;
            for (size_t i = 0; i < count; i++) {
                const char *cand = pass == 0 ? cfg->tables[i].name : cfg->sync_tables.v[i];
                char envname[160];
                size_t o = 0;
                for (const char *c = cand; *c != '\0' && o + 2 < sizeof(envname); c++) {
                    if (*c == '.') {
                        envname[o++] = '_';
                        envname[o++] = '_';
                    } else {
                        envname[o++] = (char)toupper((unsigned char)*c);
                    }
                }
                envname[o] = '\0';
                if (strcmp(envname, up) == 0) {
                    snprintf(name, sizeof(name), "%s", cand);
                    break;
                }
            }
        }
        if (name[0] == '\0') {
            size_t o = 0;
            for (size_t i = 0; up[i] != '\0' && o + 1 < sizeof(name); i++) {
                if (up[i] == '_' && up[i + 1] == '_') {
                    name[o++] = '.';
                    i++;
                } else {
                    name[o++] = (char)tolower((unsigned char)up[i]);
                }
            }
            name[o] = '\0';
        }
        t = table_cfg_get(cfg, name);
        colon = strchr(val, ':');
        free(t->strategy);
        t->strategy = colon != NULL ? strndup(val, (size_t)(colon - val)) : strdup(val);
        if (colon != NULL && colon[1] != '\0') {
            set_str(&t->role, colon + 1);
        }
        if (t->where[0] == '\0') {
            snprintf(t->where, sizeof(t->where), "environment variable SYNC_STRATEGY_%s", up);
        }
    }
    (void)err;
    return true;
}

const struct ms_table_cfg *ms_config_table(const struct ms_config *cfg, const char *db,
                                           const char *table)
{
    char full[300];

    snprintf(full, sizeof(full), "%s.%s", db, table);
    for (size_t i = 0; i < cfg->ntables; i++) {
        if (strcmp(cfg->tables[i].name, full) == 0) {
            return &cfg->tables[i];
        }
    }
    if (cfg->mysql_database != NULL && strcmp(cfg->mysql_database, db) == 0) {
        for (size_t i = 0; i < cfg->ntables; i++) {
            if (strcmp(cfg->tables[i].name, table) == 0) {
                return &cfg->tables[i];
            }
        }
    }
    return NULL;
}

static const char *env_get(const char *const *envp, const char *name)
{
    size_t n = strlen(name);

    for (const char *const *e = envp; *e != NULL; e++) {
        if (strncmp(*e, name, n) == 0 && (*e)[n] == '=') {
            return *e + n + 1;
        }
    }
    return NULL;
}

static bool load_env(struct ms_config *cfg, const char *const *envp, struct ms_error *err)
{
    char where[128];

    /* Unknown SYNC_* names are typos of ours: refuse them rather than silently ignore. */
    for (const char *const *e = envp; *e != NULL; e++) {
        char name[128];
        const char *eq = strchr(*e, '=');
        size_t n = eq != NULL ? (size_t)(eq - *e) : strlen(*e);
        bool known = false;

        if (strncmp(*e, "SYNC_", 5) != 0 || n >= sizeof(name) ||
            strncmp(*e, "SYNC_STRATEGY_", 14) == 0) {
            continue;
        }
        memcpy(name, *e, n);
        name[n] = '\0';
        for (size_t i = 0; i < NOPTIONS; i++) {
            if (strcmp(options[i].env, name) == 0) {
                known = true;
            }
        }
        if (!known) {
            const char *hint = suggest_env(name);
            ms_error_set(err, MS_ERR_CONFIG, MS_CONFIG_UNKNOWN_KEY,
                         "unknown environment variable %s%s%s%s", name,
                         hint != NULL ? " (did you mean " : "", hint != NULL ? hint : "",
                         hint != NULL ? "?)" : "");
            return false;
        }
    }
    for (int pass = 0; pass < 2; pass++) {
        for (size_t i = 0; i < NOPTIONS; i++) {
            const struct option *o = &options[i];
            const char *v = env_get(envp, o->env);
            if ((o->type == OPT_MYSQL_URL) != (pass == 0) || v == NULL || v[0] == '\0') {
                continue; /* empty = unset, as docker-compose writes "VAR=" */
            }
            snprintf(where, sizeof(where), "environment variable %s", o->env);
            if (!apply(cfg, o, v, MS_ORIGIN_ENV, where, err)) {
                return false;
            }
        }
    }
    return load_env_strategies(cfg, envp, err);
}

static bool read_secret_file(const char *key, const char *path, char **out, struct ms_error *err)
{
    FILE *f = fopen(path, "rb");
    char buf[4096];
    size_t n;

    if (f == NULL) {
        ms_error_set(err, MS_ERR_CONFIG, MS_CONFIG_IO, "%s: cannot read '%s': %s", key, path,
                     strerror(errno));
        return false;
    }
    n = fread(buf, 1, sizeof(buf) - 1, f);
    if (!feof(f)) {
        fclose(f);
        ms_error_set(err, MS_ERR_CONFIG, MS_CONFIG_BAD_VALUE, "%s: '%s' is larger than %zu bytes",
                     key, path, sizeof(buf) - 1);
        return false;
    }
    fclose(f);
    buf[n] = '\0';
    if (n > 0 && buf[n - 1] == '\n') {
        buf[--n] = '\0';
    }
    if (n > 0 && buf[n - 1] == '\r') {
        buf[--n] = '\0';
    }
    set_str(out, buf);
    ms_log_add_secret(*out);
    return true;
}

static void set_origin(struct ms_config *cfg, const char *key, enum ms_config_origin origin)
{
    const struct option *o = find_option(key);

    cfg->origin[o - options] = (unsigned char)origin;
}

/* sync.source_timezone: "UTC" (also "Z", "GMT") or a fixed offset "+HH:MM" / "-HH:MM". */
static bool parse_timezone(struct ms_config *cfg, struct ms_error *err)
{
    const char *tz = cfg->sync_source_timezone;
    int h, m, n = 0;

    if (strcasecmp(tz, "UTC") == 0 || strcmp(tz, "Z") == 0 || strcasecmp(tz, "GMT") == 0) {
        cfg->sync_source_utc_offset = 0;
        return true;
    }
    if ((tz[0] == '+' || tz[0] == '-') && strlen(tz) == 6 &&
        sscanf(tz + 1, "%2d:%2d%n", &h, &m, &n) == 2 && n == 5 && h <= 14 && m < 60) {
        cfg->sync_source_utc_offset = (tz[0] == '-' ? -1 : 1) * (h * 3600 + m * 60);
        return true;
    }
    ms_error_set(err, MS_ERR_CONFIG, MS_CONFIG_BAD_VALUE,
                 "sync.source_timezone: '%s' is not UTC or a fixed offset like +02:00 (named "
                 "zones with daylight saving are not supported: their DATETIME values can be "
                 "ambiguous)",
                 tz);
    return false;
}

static bool validate(struct ms_config *cfg, struct ms_error *err)
{
    mongoc_uri_t *uri;
    bson_error_t berr;

    if (cfg->mysql_password_file != NULL) {
        if (!read_secret_file("mysql.password_file", cfg->mysql_password_file, &cfg->mysql_password,
                              err)) {
            return false;
        }
        set_origin(cfg, "mysql.password", MS_ORIGIN_DERIVED);
    }
    if (cfg->http_token_file != NULL) {
        if (!read_secret_file("http.token_file", cfg->http_token_file, &cfg->http_token, err)) {
            return false;
        }
        set_origin(cfg, "http.token", MS_ORIGIN_DERIVED);
    }
    if (cfg->sync_pii_key_file != NULL) {
        if (!read_secret_file("sync.pii_key_file", cfg->sync_pii_key_file, &cfg->sync_pii_key,
                              err)) {
            return false;
        }
        set_origin(cfg, "sync.pii_key", MS_ORIGIN_DERIVED);
    }
    ms_log_add_secret(cfg->mysql_password);
    ms_log_add_secret(cfg->http_token);
    ms_log_add_secret(cfg->sync_pii_key);
    for (size_t i = 0; i < cfg->ntables; i++) {
        const struct ms_table_cfg *t = &cfg->tables[i];
        const char *dot = strchr(t->name, '.');
        if ((dot != NULL && (dot == t->name || dot[1] == '\0' || strchr(dot + 1, '.') != NULL)) ||
            strlen(t->name) > 129) {
            ms_error_set(err, MS_ERR_CONFIG, MS_CONFIG_BAD_VALUE,
                         "%s: tables: '%s' is not 'table' or 'database.table'", t->where, t->name);
            return false;
        }
        if (t->collection != NULL &&
            (t->collection[0] == '\0' || t->collection[0] == '$' ||
             strchr(t->collection, '\0') - t->collection > 120 || strstr(t->collection, "..") ||
             strncmp(t->collection, "system.", 7) == 0)) {
            ms_error_set(err, MS_ERR_CONFIG, MS_CONFIG_BAD_VALUE,
                         "%s: tables.%s.collection: '%s' is not a usable collection name", t->where,
                         t->name, t->collection);
            return false;
        }
        if (t->include.n > 0 && t->exclude.n > 0) {
            ms_error_set(err, MS_ERR_CONFIG, MS_CONFIG_BAD_VALUE,
                         "%s: tables.%s: include and exclude cannot both be set", t->where,
                         t->name);
            return false;
        }
    }

    /* Register the URI's password before libmongoc sees it: its messages may quote it. */
    {
        const char *scheme = strstr(cfg->mongodb_uri, "://");
        if (scheme != NULL) {
            const char *auth = scheme + 3, *end = auth + strcspn(auth, "/?#"), *at = NULL;
            for (const char *q = auth; q < end; q++) {
                if (*q == '@') {
                    at = q;
                }
            }
            const char *colon = at != NULL ? memchr(auth, ':', (size_t)(at - auth)) : NULL;
            if (colon != NULL && at > colon + 1) {
                char *pw = strndup(colon + 1, (size_t)(at - colon - 1));
                ms_log_add_secret(pw);
                free(pw);
            }
        }
    }
    uri = mongoc_uri_new_with_error(cfg->mongodb_uri, &berr);
    if (uri == NULL) {
        char msg[sizeof(berr.message)];
        ms_log_redact(berr.message, msg, sizeof(msg));
        ms_error_set(err, MS_ERR_CONFIG, MS_CONFIG_BAD_VALUE, "mongodb.uri: %s", msg);
        return false;
    }
    ms_log_add_secret(mongoc_uri_get_password(uri));
    if (cfg->mongodb_database == NULL) {
        const char *db = mongoc_uri_get_database(uri);
        set_str(&cfg->mongodb_database,
                db != NULL ? db : (cfg->mysql_database != NULL ? cfg->mysql_database : "mysync"));
        set_origin(cfg, "mongodb.database", MS_ORIGIN_DERIVED);
    }
    mongoc_uri_destroy(uri);
    if (strpbrk(cfg->mongodb_database, "/\\. \"$") != NULL || cfg->mongodb_database[0] == '\0' ||
        strlen(cfg->mongodb_database) > 63) {
        bool derived = cfg->origin[find_option("mongodb.database") - options] == MS_ORIGIN_DERIVED;
        ms_error_set(err, MS_ERR_CONFIG, MS_CONFIG_BAD_VALUE,
                     "mongodb.database: '%s'%s is not a valid MongoDB database name (1..63 chars, "
                     "none of /\\. \"$)%s",
                     cfg->mongodb_database,
                     derived ? " (derived from the URI or mysql.database)" : "",
                     derived ? ": set mongodb.database (MONGODB_DATABASE)" : "");
        return false;
    }
    if (!parse_timezone(cfg, err)) {
        return false;
    }
    for (size_t i = 0; i < cfg->sync_keys.n; i++) {
        const char *k = cfg->sync_keys.v[i], *colon = strchr(k, ':');
        if (colon == NULL || colon == k || colon[1] == '\0' || colon[1] == '+' ||
            k[strlen(k) - 1] == '+' || strstr(k, "++") != NULL) {
            ms_error_set(err, MS_ERR_CONFIG, MS_CONFIG_BAD_VALUE,
                         "sync.keys: '%s' is not 'table:column' or 'db.table:col1+col2'", k);
            return false;
        }
    }
    if (cfg->sync_pipeline[0] == '\0' || strlen(cfg->sync_pipeline) > 200) {
        ms_error_set(err, MS_ERR_CONFIG, MS_CONFIG_BAD_VALUE,
                     "sync.pipeline: must be 1..200 characters");
        return false;
    }
    for (size_t i = 0; i < cfg->sync_tables.n; i++) {
        const char *t = cfg->sync_tables.v[i];
        const char *dot = strchr(t, '.');
        if ((dot != NULL && (dot == t || dot[1] == '\0' || strchr(dot + 1, '.') != NULL)) ||
            strlen(t) > 129) {
            ms_error_set(err, MS_ERR_CONFIG, MS_CONFIG_BAD_VALUE,
                         "sync.tables: '%s' is not 'table' or 'database.table'", t);
            return false;
        }
        if (dot == NULL && cfg->mysql_database == NULL) {
            ms_error_set(err, MS_ERR_CONFIG, MS_CONFIG_MISSING,
                         "sync.tables: '%s' names no database: set mysql.database "
                         "(MYSQL_DATABASE) or write 'database.%s'",
                         t, t);
            return false;
        }
    }
    return true;
}

/* ---- public ------------------------------------------------------------------------- */

bool ms_config_load(struct ms_config *cfg, const char *path, const char *const *envp,
                    struct ms_error *err)
{
    memset(cfg, 0, sizeof(*cfg));
    cfg->origin = calloc(NOPTIONS, 1);
    for (size_t i = 0; i < NOPTIONS; i++) {
        if (options[i].def != NULL &&
            !apply(cfg, &options[i], options[i].def, MS_ORIGIN_DEFAULT, "default", err)) {
            return false; /* a bad table entry: caught by the unit tests */
        }
    }
    if (path != NULL) {
        cfg->file = strdup(path);
        if (!load_file(cfg, path, err)) {
            return false;
        }
    }
    if (!load_env(cfg, envp != NULL ? envp : (const char *const *)environ, err)) {
        return false;
    }
    return validate(cfg, err);
}

void ms_config_cleanup(struct ms_config *cfg)
{
    if (cfg == NULL) {
        return;
    }
    for (size_t i = 0; i < NOPTIONS; i++) {
        const struct option *o = &options[i];
        switch (o->type) {
        case OPT_STR:
        case OPT_SECRET:
        case OPT_URI:
        case OPT_LISTEN:
        case OPT_MYSQL_URL:
            free(*FIELD(cfg, o, char *));
            *FIELD(cfg, o, char *) = NULL;
            break;
        case OPT_LIST:
            strlist_clear(FIELD(cfg, o, struct ms_strlist));
            break;
        default:
            break;
        }
    }
    for (size_t i = 0; i < cfg->ntables; i++) {
        table_cfg_clear(&cfg->tables[i]);
    }
    free(cfg->tables);
    cfg->tables = NULL;
    cfg->ntables = 0;
    free(cfg->file);
    free(cfg->origin);
    cfg->file = NULL;
    cfg->origin = NULL;
}

int64_t ms_config_interval_seconds(const struct ms_config *cfg)
{
    return cfg->sync_interval_seconds > 0 ? cfg->sync_interval_seconds
                                          : cfg->sync_interval_minutes * 60;
}

static void yaml_quote(FILE *out, const char *s)
{
    fputc('"', out);
    for (; *s != '\0'; s++) {
        if (*s == '"' || *s == '\\') {
            fputc('\\', out);
        }
        fputc(*s, out);
    }
    fputc('"', out);
}

static void print_value(const struct ms_config *cfg, const struct option *o, FILE *out)
{
    char buf[1024];

    switch (o->type) {
    case OPT_STR:
    case OPT_LISTEN: {
        const char *s = *FIELD(cfg, o, char *);
        if (s == NULL) {
            fputs("null", out);
        } else {
            yaml_quote(out, s); /* not a secret: printed as is */
        }
        break;
    }
    case OPT_SECRET:
        fputs(*FIELD(cfg, o, char *) != NULL ? "\"***\"" : "null", out);
        break;
    case OPT_URI:
    case OPT_MYSQL_URL: {
        const char *s = *FIELD(cfg, o, char *);
        if (s == NULL) {
            fputs("null", out);
            break;
        }
        ms_config_redact_uri(s, buf, sizeof(buf));
        yaml_quote(out, buf);
        break;
    }
    case OPT_INT:
        fprintf(out, "%" PRId64, *FIELD(cfg, o, int64_t));
        break;
    case OPT_BOOL:
        fputs(*FIELD(cfg, o, bool) ? "true" : "false", out);
        break;
    case OPT_ENUM:
        fputs(o->values[*FIELD(cfg, o, int)], out);
        break;
    case OPT_LIST: {
        const struct ms_strlist *l = FIELD(cfg, o, struct ms_strlist);
        fputc('[', out);
        for (size_t i = 0; i < l->n; i++) {
            if (i > 0) {
                fputs(", ", out);
            }
            yaml_quote(out, l->v[i]);
        }
        fputc(']', out);
        break;
    }
    case OPT_DURATION: {
        int64_t ms = *FIELD(cfg, o, int64_t);
        if (ms % 1000 == 0) {
            fprintf(out, "%" PRId64 "s", ms / 1000);
        } else {
            fprintf(out, "%" PRId64 "ms", ms);
        }
        break;
    }
    }
}

/* Number of leading dotted components a and b share, not counting their leaves. */
static size_t shared_sections(const char *a, const char *b)
{
    size_t n = 0;

    for (size_t i = 0; a[i] != '\0' && a[i] == b[i]; i++) {
        if (a[i] == '.') {
            n++;
        }
    }
    return n;
}

void ms_config_print(const struct ms_config *cfg, FILE *out)
{
    static const char *const origins[] = {"default", "file", "env", "from mysql.url", "derived"};
    const char *prev = "";

    fprintf(out, "# mysync effective configuration (secrets shown as \"***\")\n");
    if (cfg->file != NULL) {
        fprintf(out, "# file: %s\n", cfg->file);
    }
    for (size_t i = 0; i < NOPTIONS; i++) {
        const struct option *o = &options[i];
        const char *k = o->key, *part = k;
        size_t keep = shared_sections(prev, k), depth = 0;

        /* open the sections this key does not share with the previous one */
        for (const char *dot = strchr(part, '.'); dot != NULL; dot = strchr(part, '.')) {
            if (depth >= keep) {
                fprintf(out, "%*s%.*s:\n", (int)(depth * 2), "", (int)(dot - part), part);
            }
            depth++;
            part = dot + 1;
        }
        fprintf(out, "%*s%s: ", (int)(depth * 2), "", part);
        print_value(cfg, o, out);
        if (cfg->origin[i] == MS_ORIGIN_ENV) {
            fprintf(out, "  # env %s\n", o->env);
        } else {
            fprintf(out, "  # %s\n", origins[cfg->origin[i]]);
        }
        prev = k;
    }
    if (cfg->ntables > 0) {
        fputs("tables:\n", out);
    }
    for (size_t i = 0; i < cfg->ntables; i++) {
        const struct ms_table_cfg *t = &cfg->tables[i];
        const char *strs[][2] = {
            {"strategy", t->strategy},
            {"role", t->role},
            {"collection", t->collection},
            {"change_column", t->change_column},
            {"soft_delete_column", t->soft_delete_column},
            {"date_as", t->date_as >= 0 ? date_as[t->date_as] : NULL},
            {"datetime_as", t->datetime_as >= 0 ? datetime_as[t->datetime_as] : NULL},
            {"time_as", t->time_as >= 0 ? time_as[t->time_as] : NULL}};
        const struct {
            const char *k;
            const struct ms_strlist *l;
        } lists[] = {{"include", &t->include}, {"exclude", &t->exclude}, {"json", &t->json}};
        const struct {
            const char *k;
            const struct ms_kvlist *l;
        } maps[] = {{"columns", &t->columns}, {"rename", &t->rename}, {"pii", &t->pii}};

        fputs("  ", out);
        yaml_quote(out, t->name);
        fprintf(out, ":  # %s\n", t->where);
        for (size_t k = 0; k < sizeof(strs) / sizeof(strs[0]); k++) {
            if (strs[k][1] != NULL) {
                fprintf(out, "    %s: ", strs[k][0]);
                yaml_quote(out, strs[k][1]);
                fputc('\n', out);
            }
        }
        for (size_t k = 0; k < sizeof(lists) / sizeof(lists[0]); k++) {
            if (lists[k].l->n > 0) {
                fprintf(out, "    %s: [", lists[k].k);
                for (size_t j = 0; j < lists[k].l->n; j++) {
                    fputs(j > 0 ? ", " : "", out);
                    yaml_quote(out, lists[k].l->v[j]);
                }
                fputs("]\n", out);
            }
        }
        for (size_t k = 0; k < sizeof(maps) / sizeof(maps[0]); k++) {
            if (maps[k].l->n > 0) {
                fprintf(out, "    %s:\n", maps[k].k);
                for (size_t j = 0; j < maps[k].l->n; j++) {
                    fputs("      ", out);
                    yaml_quote(out, maps[k].l->v[j].k);
                    fputs(": ", out);
                    yaml_quote(out, maps[k].l->v[j].v);
                    fputc('\n', out);
                }
            }
        }
    }
}

void ms_config_print_reference(FILE *out)
{
    fputs("| Key (YAML) | Environment | Type | Default | Allowed | Description |\n", out);
    fputs("|---|---|---|---|---|---|\n", out);
    for (size_t i = 0; i < NOPTIONS; i++) {
        const struct option *o = &options[i];
        static const char *const types[] = {"string", "secret", "URI",      "integer",   "boolean",
                                            "enum",   "list",   "duration", "host:port", "URL"};
        char allowed[200] = "";

        if (o->type == OPT_INT) {
            snprintf(allowed, sizeof(allowed), "%" PRId64 "..%" PRId64, o->min, o->max);
        } else if (o->type == OPT_DURATION) {
            snprintf(allowed, sizeof(allowed), "%" PRId64 "ms..%" PRId64 "s", o->min,
                     o->max / 1000);
        } else if (o->type == OPT_ENUM) {
            for (int j = 0; o->values[j] != NULL; j++) {
                if (j > 0) {
                    strncat(allowed, ", ", sizeof(allowed) - strlen(allowed) - 1);
                }
                strncat(allowed, o->values[j], sizeof(allowed) - strlen(allowed) - 1);
            }
        }
        fprintf(out, "| `%s` | `%s` | %s | %s%s%s | %s | %s%s |\n", o->key, o->env, types[o->type],
                o->def != NULL ? "`" : "", o->def != NULL ? o->def : "—", o->def != NULL ? "`" : "",
                allowed, o->help, o->reloadable ? " (reloadable)" : "");
    }
}

/* ---- differences (SIGHUP reload) ----------------------------------------------------- */

static bool str_equal(const char *a, const char *b)
{
    if (a == NULL || b == NULL) {
        return a == b;
    }
    return strcmp(a, b) == 0;
}

static bool value_equal(const struct ms_config *a, const struct ms_config *b,
                        const struct option *o)
{
    switch (o->type) {
    case OPT_STR:
    case OPT_SECRET:
    case OPT_URI:
    case OPT_LISTEN:
    case OPT_MYSQL_URL:
        return str_equal(*FIELD(a, o, char *), *FIELD(b, o, char *));
    case OPT_INT:
    case OPT_DURATION:
        return *FIELD(a, o, int64_t) == *FIELD(b, o, int64_t);
    case OPT_BOOL:
        return *FIELD(a, o, bool) == *FIELD(b, o, bool);
    case OPT_ENUM:
        return *FIELD(a, o, int) == *FIELD(b, o, int);
    case OPT_LIST: {
        const struct ms_strlist *x = FIELD(a, o, struct ms_strlist);
        const struct ms_strlist *y = FIELD(b, o, struct ms_strlist);
        if (x->n != y->n) {
            return false;
        }
        for (size_t i = 0; i < x->n; i++) {
            if (strcmp(x->v[i], y->v[i]) != 0) {
                return false;
            }
        }
        return true;
    }
    }
    return true;
}

/* The value as --check-config prints it (secrets "***"), cut to fit. */
static void value_text(const struct ms_config *cfg, const struct option *o, char *out, size_t n)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);

    out[0] = '\0';
    if (f == NULL) {
        return;
    }
    print_value(cfg, o, f);
    fclose(f);
    len = buf != NULL ? strlen(buf) : 0;
    if (len >= 2 && buf[0] == '"' && buf[len - 1] == '"') {
        snprintf(out, n, "%.*s", (int)(len - 2), buf + 1); /* a log field, not YAML */
    } else {
        snprintf(out, n, "%s", buf != NULL ? buf : "");
    }
    free(buf);
}

static bool tables_equal(const struct ms_config *a, const struct ms_config *b)
{
    if (a->ntables != b->ntables) {
        return false;
    }
    for (size_t i = 0; i < a->ntables; i++) {
        const struct ms_table_cfg *x = &a->tables[i], *y = &b->tables[i];
        if (!str_equal(x->name, y->name) || !str_equal(x->strategy, y->strategy) ||
            !str_equal(x->role, y->role) || !str_equal(x->collection, y->collection)) {
            return false;
        }
    }
    return true;
}

size_t ms_config_diff(const struct ms_config *a, const struct ms_config *b,
                      void (*fn)(const struct ms_config_change *change, void *ud), void *ud)
{
    struct ms_config_change c;
    size_t n = 0;

    for (size_t i = 0; i < NOPTIONS; i++) {
        const struct option *o = &options[i];
        if (value_equal(a, b, o)) {
            continue;
        }
        memset(&c, 0, sizeof(c));
        c.key = o->key;
        c.reloadable = o->reloadable;
        value_text(a, o, c.from, sizeof(c.from));
        value_text(b, o, c.to, sizeof(c.to));
        fn(&c, ud);
        n++;
    }
    if (!tables_equal(a, b)) {
        memset(&c, 0, sizeof(c));
        c.key = "tables";
        snprintf(c.from, sizeof(c.from), "%zu entries", a->ntables);
        snprintf(c.to, sizeof(c.to), "%zu entries", b->ntables);
        fn(&c, ud);
        n++;
    }
    return n;
}

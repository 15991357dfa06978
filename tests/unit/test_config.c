/* Configuration cases as data: a YAML file (or none) and an environment go in; either
 * lines of the --check-config output or an error message must come out. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fuzz_driver.h"
#include "mysync/config.h"
#include "mysync/log.h"
#include "mysync/sink.h"
#include "testutil.h"

#define MAXE 8

struct config_case {
    const char *name;
    const char *yaml;         /* file content, or NULL for no file */
    const char *env[MAXE];    /* "NAME=value" */
    const char *error;        /* expected error substring; NULL = must load */
    const char *expect[MAXE]; /* substrings of the printed configuration */
    const char *forbid[MAXE]; /* must not appear in the printed configuration */
};

static const struct config_case cases[] = {
    {.name = "defaults",
     .expect = {"  host: \"127.0.0.1\"  # default", "  port: 3306  # default",
                "  batch_size: 1000  # default", "  flush_ms: 100  # default",
                "  interval_minutes: 60  # default", "  listen: \"127.0.0.1:8080\"  # default",
                "  mode: auto  # default", "  database: \"mysync\"  # derived"}},
    {.name = "file values",
     .yaml = "mysql:\n  host: db.internal\n  port: 3307\n  database: shop\n"
             "sync:\n  tables: [products, orders]\n  batch_size: 500\n  mode: binlog\n"
             "  retry_delay: 250ms\n  collections:\n    products: catalog\n",
     .expect = {"  host: \"db.internal\"  # file", "  port: 3307  # file",
                "  tables: [\"products\", \"orders\"]  # file", "  batch_size: 500  # file",
                "  mode: binlog  # file", "  retry_delay: 250ms  # file",
                "    products: \"catalog\"  # file", "  database: \"shop\"  # derived"}},
    {.name = "env wins over file",
     .yaml = "mysql:\n  host: from-file\n  port: 3307\n",
     .env = {"MYSQL_HOST=from-env", "SYNC_BATCH_SIZE=42", "SYNC_PRODUCTS_COLLECTION=p2"},
     .expect = {"  host: \"from-env\"  # env MYSQL_HOST", "  port: 3307  # file",
                "  batch_size: 42  # env SYNC_BATCH_SIZE", "    products: \"p2\"  # env"}},
    {.name = "env only, block sequence and booleans",
     .env = {"SYNC_ENABLED=no", "SYNC_TABLES=a, shop.b ,c", "MYSQL_DATABASE=shop",
             "LOG_FORMAT=JSON", "SYNC_INTERVAL_SECONDS=30"},
     .expect = {"  enabled: false  # env SYNC_ENABLED", "[\"a\", \"shop.b\", \"c\"]",
                "  format: json  # env LOG_FORMAT", "  interval_seconds: 30  # env"}},
    {.name = "block sequence in yaml",
     .yaml = "mysql:\n  database: shop\nsync:\n  tables:\n    - products\n    - other.t\n",
     .expect = {"  tables: [\"products\", \"other.t\"]  # file"}},
    {.name = "mysql url with percent-decoding",
     .env =
         {"MYSQL_URL=mysql://app%2Buser:p%40ss%3Aw0rd@db.example:3310/my%20shop?ssl-mode=disabled",
          "MONGODB_DATABASE=shop"},
     .expect = {"  host: \"db.example\"  # from mysql.url", "  port: 3310  # from mysql.url",
                "  user: \"app+user\"  # from mysql.url", "  password: \"***\"",
                "  database: \"my shop\"", "  ssl_mode: disabled",
                "  url: \"mysql://app%2Buser:***@db.example:3310/"},
     .forbid = {"p%40ss", "p@ss:w0rd"}},
    {.name = "mysql url ipv6 and discrete env wins",
     .env = {"MYSQL_URL=mysql://u@[::1]:3311/db", "MYSQL_PORT=4000"},
     .expect = {"  host: \"::1\"  # from mysql.url", "  port: 4000  # env MYSQL_PORT",
                "  user: \"u\"  # from mysql.url"}},
    {.name = "discrete file key beats file url",
     .yaml = "mysql:\n  host: h2\n  url: mysql://u:p@h1:1234/d\n",
     .expect = {"  host: \"h2\"  # file", "  port: 1234  # from mysql.url"}},
    {.name = "mongodb uri credentials redacted, database from uri",
     .env = {"MONGODB_URI=mongodb://admin:s3cr3t-pw@127.0.0.1:27017/appdb?authSource=admin"},
     .expect = {"  uri: \"mongodb://admin:***@127.0.0.1:27017/appdb?authSource=admin\"",
                "  database: \"appdb\"  # derived"},
     .forbid = {"s3cr3t-pw"}},
    {.name = "secrets never printed",
     .env = {"MYSQL_PASSWORD=pa55-word", "HTTP_TOKEN=tok-123456"},
     .expect = {"  password: \"***\"  # env MYSQL_PASSWORD", "  token: \"***\"  # env"},
     .forbid = {"pa55-word", "tok-123456"}},
    {.name = "empty env value means unset",
     .env = {"MYSQL_HOST=", "SYNC_BATCH_SIZE="},
     .expect = {"  host: \"127.0.0.1\"  # default", "  batch_size: 1000  # default"}},
    {.name = "empty file", .yaml = "", .expect = {"  port: 3306  # default"}},
    {.name = "comment-only file and empty section",
     .yaml = "# nothing\nmysql:\n",
     .expect = {"  port: 3306  # default"}},
    {.name = "interval seconds wins",
     .env = {"SYNC_INTERVAL_SECONDS=90"},
     .expect = {"  interval_seconds: 90"}},

    /* errors */
    {.name = "yaml syntax error names file line column",
     .yaml = "mysql:\n  host: [db\n  port: 1\n",
     .error = ":3:"},
    {.name = "yaml syntax error text",
     .yaml = "mysql:\n  host: \"unterminated\n",
     .error = "YAML syntax error"},
    {.name = "unknown key with suggestion",
     .yaml = "mysql:\n  hots: x\n",
     .error = ":2:3: unknown key 'mysql.hots' (did you mean 'mysql.host'?)"},
    {.name = "key in wrong section",
     .yaml = "mysql:\n  batch_size: 10\n",
     .error = "unknown key 'mysql.batch_size' (did you mean 'sync.batch_size'?)"},
    {.name = "unknown top-level section",
     .yaml = "mysqll:\n  host: x\n",
     .error = "unknown key 'mysqll'"},
    {.name = "unknown key far from anything",
     .yaml = "zzzzzzzz: 1\n",
     .error = "unknown key 'zzzzzzzz' (see config/mysync.example.yaml)"},
    {.name = "duplicate key",
     .yaml = "mysql:\n  host: a\n  host: b\n",
     .error = ":3:3: duplicate key 'mysql.host'"},
    {.name = "out of range names key and range",
     .yaml = "sync:\n  batch_size: 0\n",
     .error = ":2:15: sync.batch_size: 0 is out of range (allowed 1..100000)"},
    {.name = "not an integer",
     .env = {"MYSQL_PORT=33o6"},
     .error = "environment variable MYSQL_PORT: mysql.port: '33o6' is not an integer (allowed "
              "1..65535)"},
    {.name = "bad enum lists allowed values",
     .env = {"SYNC_MODE=stream"},
     .error = "'stream' is not one of: binlog, poll, auto"},
    {.name = "bad bool", .yaml = "sync:\n  enabled: maybe\n", .error = "is not a boolean"},
    {.name = "bad duration", .env = {"SYNC_RETRY_DELAY=5 parsecs"}, .error = "is not a duration"},
    {.name = "duration out of range", .env = {"SYNC_RETRY_DELAY=1ms"}, .error = "out of range"},
    {.name = "bad listen", .env = {"HTTP_LISTEN=8080"}, .error = "is not host:port"},
    {.name = "bad listen port",
     .env = {"HTTP_LISTEN=127.0.0.1:70000"},
     .error = "is not host:port"},
    {.name = "listen off",
     .yaml = "http:\n  listen: \"\"\n",
     .env = {"HTTP_LISTEN=OFF"},
     .expect = {"  listen: \"off\"  # env HTTP_LISTEN"}},
    {.name = "listen empty in the file",
     .yaml = "http:\n  listen: \"\"\n",
     .expect = {"  listen: \"off\"  # file"}},
    {.name = "listen any port",
     .env = {"HTTP_LISTEN=[::1]:0"},
     .expect = {"  listen: \"[::1]:0\"  # env HTTP_LISTEN"}},
    {.name = "unknown SYNC_ env with suggestion",
     .env = {"SYNC_BATCH_SZIE=5"},
     .error = "unknown environment variable SYNC_BATCH_SZIE (did you mean SYNC_BATCH_SIZE?)"},
    {.name = "section given a scalar",
     .yaml = "mysql: localhost\n",
     .error = "'mysql' is a section"},
    {.name = "scalar key given a mapping",
     .yaml = "mysql:\n  host:\n    a: b\n",
     .error = "mysql.host takes a value, not a mapping"},
    {.name = "list for scalar key",
     .yaml = "mysql:\n  host: [a, b]\n",
     .error = "mysql.host takes a single value, not a list"},
    {.name = "top level not a mapping",
     .yaml = "- a\n- b\n",
     .error = "top level must be a mapping"},
    {.name = "bad url scheme",
     .env = {"MYSQL_URL=postgres://x"},
     .error = "expected mysql://user:password@host:port/database"},
    {.name = "bad url percent",
     .env = {"MYSQL_URL=mysql://u:%zz@h/d"},
     .error = "bad percent-encoding in the password"},
    {.name = "bad url port", .env = {"MYSQL_URL=mysql://u@h:99999/d"}, .error = "not in 1..65535"},
    {.name = "bad url parameter",
     .env = {"MYSQL_URL=mysql://u@h/d?foo=1"},
     .error = "URL parameter 'foo' is not known"},
    {.name = "bad mongodb uri", .env = {"MONGODB_URI=http://x"}, .error = "mongodb.uri:"},
    {.name = "bad mongodb uri keeps password out",
     .env = {"MONGODB_URI=mongodb://u:hunter2hunter2@h:99999999"},
     .error = "mongodb.uri:"},
    {.name = "derived mongodb database must be valid",
     .env = {"MYSQL_DATABASE=my shop"},
     .error = "'my shop' (derived from the URI or mysql.database) is not a valid MongoDB "
              "database name (1..63 chars, none of /\\. \"$): set mongodb.database"},
    {.name = "unqualified table needs a database",
     .env = {"SYNC_TABLES=products"},
     .error = "sync.tables: 'products' names no database"},
    {.name = "bad qualified table",
     .env = {"SYNC_TABLES=a.b.c", "MYSQL_DATABASE=x"},
     .error = "'a.b.c' is not 'table' or 'database.table'"},
    {.name = "empty list element",
     .env = {"SYNC_TABLES=a,,b", "MYSQL_DATABASE=x"},
     .error = "empty element"},
    {.name = "missing password file",
     .env = {"MYSQL_PASSWORD_FILE=/nonexistent/pw"},
     .error = "mysql.password_file: cannot read '/nonexistent/pw'"},

    /* the tables: section */
    {.name = "tables: every key",
     .yaml = "mysql:\n  database: shop\ntables:\n  products: {strategy: products}\n"
             "  shop.stock:\n    strategy: inventory\n    role: inventory\n"
             "    columns: {on_hand: quantity}\n  audit:\n    collection: audit_log\n"
             "    exclude: [secret]\n    rename: {city: address.city}\n    json: a, b\n"
             "    pii: {email: hash, phone: redact}\n    date_as: string\n"
             "    datetime_as: string\n    time_as: seconds\n",
     .env = {"SYNC_PII_KEY=k3y-value"},
     .expect = {"  \"products\":  # ", "    strategy: \"products\"", "  \"shop.stock\":",
                "    role: \"inventory\"", "      \"on_hand\": \"quantity\"",
                "    json: [\"a\", \"b\"]", "      \"city\": \"address.city\"",
                "    time_as: \"seconds\""},
     .forbid = {"k3y-value"}},
    {.name = "SYNC_STRATEGY_<TABLE> adds or overrides a table's strategy and role",
     .yaml = "mysql:\n  database: shop\ntables:\n  order_lines: {strategy: generic}\n",
     .env = {"SYNC_STRATEGY_ORDER_LINES=orders:order_items", "SYNC_STRATEGY_SHOP__ORDERS=orders"},
     .expect = {"  \"order_lines\":  # ", "    strategy: \"orders\"",
                "    role: \"order_items\"", "  \"shop.orders\":  # environment variable "
                                              "SYNC_STRATEGY_SHOP__ORDERS"}},
    {.name = "tables: unknown key named with its place",
     .yaml = "tables:\n  products:\n    strategy: products\n    colums: {a: b}\n",
     .error = ":4:5: unknown key 'tables.products.colums'"},
    {.name = "tables: bad pii action",
     .yaml = "tables:\n  customers:\n    pii: {email: encrypt}\n",
     .error = "tables.customers.pii.email: 'encrypt' is not one of keep, drop, redact, hash"},
    {.name = "tables: bad representation",
     .yaml = "tables:\n  t:\n    time_as: minutes\n",
     .error = "tables.t.time_as: 'minutes' is not one of string, seconds"},
    {.name = "tables: include and exclude together",
     .yaml = "mysql:\n  database: d\ntables:\n  t:\n    include: [a]\n    exclude: [b]\n",
     .error = "tables.t: include and exclude cannot both be set"},
    {.name = "tables: a list where a mapping belongs",
     .yaml = "tables:\n  t:\n    rename: [a, b]\n",
     .error = "tables.t.rename: expected a mapping of column: value"},
    {.name = "tables: duplicate table",
     .yaml = "tables:\n  t: {collection: a}\n  t: {collection: b}\n",
     .error = "duplicate key 'tables.t'"},
    {.name = "tables: bad collection name",
     .yaml = "mysql:\n  database: d\ntables:\n  t: {collection: $bad}\n",
     .error = "tables.t.collection: '$bad' is not a usable collection name"},
};

static char *print_config(const struct ms_config *cfg)
{
    char *buf = NULL;
    size_t n = 0;
    FILE *f = open_memstream(&buf, &n);

    ms_config_print(cfg, f);
    fclose(f);
    return buf;
}

static void run_case(void **state)
{
    const struct config_case *c = *state;
    struct ms_config cfg;
    struct ms_error err = {0};
    char *path = c->yaml != NULL ? tu_write_temp(c->yaml) : NULL;
    bool ok;

    ms_log_clear_secrets(); /* the registry is per process; cases are independent */
    ok = ms_config_load(&cfg, path, c->env, &err);

    if (c->error != NULL) {
        if (ok || strstr(err.msg, c->error) == NULL) {
            fail_msg("case '%s': expected error containing \"%s\", got %s \"%s\"", c->name,
                     c->error, ok ? "success" : "error", err.msg);
        }
        assert_int_equal(err.domain, MS_ERR_CONFIG);
        /* errors never carry secrets either */
        assert_null(strstr(err.msg, "hunter2hunter2"));
        if (c->yaml != NULL && strstr(c->error, "environment") == NULL) {
            assert_non_null(strstr(err.msg, path)); /* the file is named */
        }
    } else {
        char *out;
        if (!ok) {
            fail_msg("case '%s': unexpected error: %s", c->name, err.msg);
        }
        out = print_config(&cfg);
        for (size_t i = 0; i < MAXE && c->expect[i] != NULL; i++) {
            if (strstr(out, c->expect[i]) == NULL) {
                fail_msg("case '%s': missing \"%s\" in:\n%s", c->name, c->expect[i], out);
            }
        }
        for (size_t i = 0; i < MAXE && c->forbid[i] != NULL; i++) {
            if (strstr(out, c->forbid[i]) != NULL) {
                fail_msg("case '%s': \"%s\" must not appear in:\n%s", c->name, c->forbid[i], out);
            }
        }
        free(out);
    }
    ms_config_cleanup(&cfg);
    if (path != NULL) {
        unlink(path);
        free(path);
    }
}

static void password_file_read_and_redacted(void **state)
{
    char *pw = tu_write_temp("file-secret-9\n");
    char env[512];
    const char *envp[] = {env, "MYSQL_PASSWORD=ignored-one", NULL};
    struct ms_config cfg;
    struct ms_error err = {0};
    char *out;

    (void)state;
    snprintf(env, sizeof(env), "MYSQL_PASSWORD_FILE=%s", pw);
    assert_true(ms_config_load(&cfg, NULL, envp, &err));
    assert_string_equal(cfg.mysql_password, "file-secret-9"); /* newline stripped, file wins */
    out = print_config(&cfg);
    assert_null(strstr(out, "file-secret-9"));
    assert_non_null(strstr(out, "  password: \"***\"  # derived"));
    free(out);
    ms_config_cleanup(&cfg);
    unlink(pw);
    free(pw);
}

static void typed_values(void **state)
{
    const char *envp[] = {"SYNC_RETRY_DELAY=2m",    "SYNC_INTERVAL_MINUTES=5",
                          "SYNC_DECIMAL_AS=string", "SYNC_SERVER_ID=4294967295",
                          "LOG_LEVEL=debug",        NULL};
    struct ms_config cfg;
    struct ms_error err = {0};

    (void)state;
    assert_true(ms_config_load(&cfg, NULL, envp, &err));
    assert_int_equal(cfg.sync_retry_delay_ms, 120000);
    assert_int_equal(ms_config_interval_seconds(&cfg), 300);
    assert_int_equal(cfg.sync_decimal_as, MS_DECIMAL_AS_STRING);
    assert_int_equal(cfg.sync_server_id, 4294967295LL);
    assert_int_equal(cfg.log_level, MS_LOG_DEBUG);
    assert_true(cfg.sync_enabled);
    ms_config_cleanup(&cfg);
}

static void redact_uri(void **state)
{
    static const char *const in_out[][2] = {
        {"mongodb://u:p@h:1/db", "mongodb://u:***@h:1/db"},
        {"mongodb://u@h", "mongodb://u@h"},
        {"mongodb://h:27017/?x=a@b", "mongodb://h:27017/?x=a@b"},
        {"mysql://a:b:c@host/db", "mysql://a:***@host/db"},
        {"mongodb://u:p@a@h", "mongodb://u:***@h"},
        {"not a uri", "not a uri"},
    };
    char out[256];

    (void)state;
    for (size_t i = 0; i < sizeof(in_out) / sizeof(in_out[0]); i++) {
        ms_config_redact_uri(in_out[i][0], out, sizeof(out));
        assert_string_equal(out, in_out[i][1]);
    }
}

static void suggestions(void **state)
{
    (void)state;
    assert_string_equal(ms_config_suggest_key("sync.batchsize"), "sync.batch_size");
    assert_string_equal(ms_config_suggest_key("log.levl"), "log.level");
    assert_string_equal(ms_config_suggest_key("http.tokn"), "http.token");
    assert_null(ms_config_suggest_key("completely.unrelated.thing"));
}

/* README.md carries the reference table produced from the option table. */
/* config/mysync.example.yaml loads, and names every key's environment variable. */
/* The whole file; the test fails when it cannot be read. */
static char *slurp_ok(const char *path)
{
    char *s = tu_slurp(path, NULL);

    if (s == NULL) {
        fail_msg("cannot read %s", path);
    }
    return s;
}

static void example_config_complete(void **state)
{
    const char *root = getenv("MS_SOURCE_ROOT");
    const char *empty[] = {NULL};
    char path[1024], *example, *ref = NULL;
    size_t n = 0;
    FILE *f;
    struct ms_config cfg;
    struct ms_error err = {0};

    (void)state;
    assert_non_null(root);
    snprintf(path, sizeof(path), "%s/config/mysync.example.yaml", root);
    if (!ms_config_load(&cfg, path, empty, &err)) {
        fail_msg("%s", err.msg);
    }
    ms_config_cleanup(&cfg);
    example = slurp_ok(path);
    f = open_memstream(&ref, &n);
    ms_config_print_reference(f);
    fclose(f);
    /* each reference row is "| `key` | `ENV` | ..." */
    for (char *row = strstr(ref, "\n| `"); row != NULL; row = strstr(row + 1, "\n| `")) {
        char env[64];
        char *e = strstr(row, "| `") != NULL ? strstr(row + 4, "| `") : NULL;
        assert_non_null(e);
        e += 3;
        snprintf(env, sizeof(env), "%.*s", (int)strcspn(e, "`"), e);
        if (strstr(example, env) == NULL) {
            fail_msg("config/mysync.example.yaml does not document %s", env);
        }
    }
    free(example);
    free(ref);
}

/* README.md carries the reference table produced from the option table. */
static void readme_reference_current(void **state)
{
    const char *root = getenv("MS_SOURCE_ROOT");
    char path[1024], *ref = NULL, *readme;
    size_t n = 0;
    FILE *f;

    (void)state;
    assert_non_null(root);
    f = open_memstream(&ref, &n);
    ms_config_print_reference(f);
    fclose(f);
    snprintf(path, sizeof(path), "%s/README.md", root);
    readme = slurp_ok(path);
    if (strstr(readme, ref) == NULL) {
        fail_msg("README.md's configuration table is stale: regenerate it with "
                 "`build/mysync --config-reference`");
    }
    free(readme);
    free(ref);
}

/* ms_config_diff (SIGHUP reload): each case loads two environments and lists the differences
 * as "key reloadable from->to" lines; secrets show as ***. */
struct diff_case {
    const char *a[4], *b[4];
    const char *want;
};

static const struct diff_case diff_cases[] = {
    {{NULL}, {NULL}, ""},
    {{"LOG_LEVEL=info", NULL}, {"LOG_LEVEL=debug", NULL}, "log.level 1 info->debug\n"},
    {{"HTTP_TOKEN=old-secret-1", NULL},
     {"HTTP_TOKEN=new-secret-2", NULL},
     "http.token 1 ***->***\n"},
    {{NULL}, {"HTTP_TOKEN=new-secret-2", NULL}, "http.token 1 null->***\n"},
    {{"SYNC_BATCH_SIZE=10", "SYNC_INTERVAL_SECONDS=5", NULL},
     {"SYNC_BATCH_SIZE=20", "SYNC_INTERVAL_SECONDS=5", NULL},
     "sync.batch_size 0 10->20\n"},
    {{"SYNC_TABLES=d.a,d.b", NULL},
     {"SYNC_TABLES=d.a", NULL},
     "sync.tables 0 [\"d.a\", \"d.b\"]->[\"d.a\"]\n"},
    {{"SYNC_RETRY_DELAY=5s", "SYNC_ENABLED=true", NULL},
     {"SYNC_RETRY_DELAY=500ms", "SYNC_ENABLED=false", NULL},
     "sync.enabled 1 true->false\nsync.retry_delay 1 5s->500ms\n"},
    {{"MONGODB_URI=mongodb://u:pw-one@h1/", NULL},
     {"MONGODB_URI=mongodb://u:pw-two@h2/", NULL},
     "mongodb.uri 0 mongodb://u:***@h1/->mongodb://u:***@h2/\n"},
    {{NULL}, {"SYNC_STRATEGY_ORDERS=orders", NULL}, "tables 0 0 entries->1 entries\n"},
};

static void collect_change(const struct ms_config_change *c, void *ud)
{
    char *out = ud;
    size_t len = strlen(out);

    snprintf(out + len, 2048 - len, "%s %d %s->%s\n", c->key, (int)c->reloadable, c->from, c->to);
}

static void diff_cases_run(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(diff_cases) / sizeof(diff_cases[0]); i++) {
        const struct diff_case *c = &diff_cases[i];
        struct ms_config a, b;
        struct ms_error err = {0};
        char got[2048] = "";
        size_t n;

        if (!ms_config_load(&a, NULL, c->a, &err) || !ms_config_load(&b, NULL, c->b, &err)) {
            fail_msg("diff case %zu: %s", i, err.msg);
        }
        n = ms_config_diff(&a, &b, collect_change, got);
        if (strcmp(got, c->want) != 0) {
            fail_msg("diff case %zu:\n got: %s\nwant: %s", i, got, c->want);
        }
        size_t lines = 0;
        for (const char *p = c->want; *p != '\0'; p++) {
            lines += *p == '\n';
        }
        assert_int_equal(n, lines);
        assert_null(strstr(got, "secret"));
        assert_null(strstr(got, "pw-"));
        ms_config_cleanup(&a);
        ms_config_cleanup(&b);
    }
}

/* Every input the fuzzer found trouble with (tests/data/fuzz/config-*) replays cleanly. */
static void fuzz_artifacts_replay(void **state)
{
    (void)state;
    tu_fuzz_replay("config-", ms_fuzz_config_one);
}

/* Fuzz seeds (MS_FUZZ_SEEDS, tests/fuzz/seeds.sh) in tests/fuzz/config_driver.c's input
 * format: the file's YAML, then each environment entry after a NUL. */
static void seed_config(const char *yaml, const char *const *env, size_t nenv, const char *name,
                        size_t i)
{
    char buf[8192];
    size_t n = 0;

    for (size_t e = 0; e <= nenv; e++) {
        const char *part = e == 0 ? (yaml != NULL ? yaml : "") : env[e - 1];
        size_t len = strlen(part);
        assert_true(n + len + 1 < sizeof(buf));
        if (e > 0) {
            buf[n++] = '\0';
        }
        memcpy(buf + n, part, len);
        n += len;
    }
    tu_fuzz_seed(buf, n, "%s-%02zu", name, i);
}

static void write_seeds(void)
{
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        size_t nenv = 0;
        while (nenv < MAXE && cases[i].env[nenv] != NULL) {
            nenv++;
        }
        seed_config(cases[i].yaml, cases[i].env, nenv, "case", i);
    }
    for (size_t i = 0; i < sizeof(diff_cases) / sizeof(diff_cases[0]); i++) {
        for (size_t side = 0; side < 2; side++) {
            const char *const *env = side == 0 ? diff_cases[i].a : diff_cases[i].b;
            size_t nenv = 0;
            while (nenv < 4 && env[nenv] != NULL) {
                nenv++;
            }
            seed_config(NULL, env, nenv, side == 0 ? "diff-a" : "diff-b", i);
        }
    }
}

int main(void)
{
    struct CMUnitTest tests[sizeof(cases) / sizeof(cases[0]) + 10];
    size_t n = 0;

    if (tu_fuzz_seeds_dir() != NULL) {
        write_seeds();
        return 0;
    }

    ms_sink_global_init(); /* libmongoc (URI validation) logs through ms_log */
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        tests[n++] = (struct CMUnitTest){cases[i].name, run_case, NULL, NULL, (void *)&cases[i]};
    }
    tests[n++] = (struct CMUnitTest)cmocka_unit_test(password_file_read_and_redacted);
    tests[n++] = (struct CMUnitTest)cmocka_unit_test(typed_values);
    tests[n++] = (struct CMUnitTest)cmocka_unit_test(redact_uri);
    tests[n++] = (struct CMUnitTest)cmocka_unit_test(suggestions);
    tests[n++] = (struct CMUnitTest)cmocka_unit_test(readme_reference_current);
    tests[n++] = (struct CMUnitTest)cmocka_unit_test(example_config_complete);
    tests[n++] = (struct CMUnitTest)cmocka_unit_test(diff_cases_run);
    tests[n++] = (struct CMUnitTest)cmocka_unit_test(fuzz_artifacts_replay);
    return _cmocka_run_group_tests("config", tests, n, NULL, NULL);
}

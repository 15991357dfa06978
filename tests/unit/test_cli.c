/* The command-line contract, run as a real process: arguments and environment in; exit
 * code (sysexits.h) and output out. No servers: unreachable ones are part of the cases. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>

#include "testutil.h"

#define MAXA 10

struct cli_case {
    const char *name;
    const char *args[MAXA];
    const char *env[MAXA];
    int status;
    const char *out[4]; /* substrings of stdout */
    const char *err[4]; /* substrings of stderr */
    const char *forbid; /* in neither stream */
};

static const struct cli_case cases[] = {
    {"help lists every command",
     {"--help"},
     {NULL},
     EX_OK,
     {"mysync --full --table NAME", "binlog-dump --file PATH", "verify --table NAME",
      "78  EX_CONFIG"}},
    {"version", {"--version"}, {NULL}, EX_OK, {"mysync 0."}},
    {"unknown option", {"--bogus"}, {NULL}, EX_USAGE, {NULL}, {"Try 'mysync --help'"}},
    {"unknown command", {"frobnicate"}, {NULL}, EX_USAGE, {NULL}, {"unknown command 'frobnicate'"}},
    {"full needs a table", {"--full"}, {NULL}, EX_USAGE, {NULL}, {"name at least one --table"}},
    {"table without full", {"--table", "x"}, {NULL}, EX_USAGE, {NULL}, {"--table goes with"}},
    {"binlog-dump needs a source",
     {"binlog-dump"},
     {NULL},
     EX_USAGE,
     {NULL},
     {"exactly one of --file PATH or --from-server"}},
    {"binlog-dump both sources",
     {"binlog-dump", "--file", "x", "--from-server"},
     {NULL},
     EX_USAGE,
     {NULL},
     {"exactly one of"}},
    {"verify needs a table", {"verify"}, {NULL}, EX_USAGE, {NULL}, {"at least one --table"}},
    {"bad chunk size",
     {"--full", "--table", "t", "--chunk-size", "0"},
     {NULL},
     EX_USAGE,
     {NULL},
     {"--chunk-size: '0' is not a positive integer"}},
    {"commands exclude each other",
     {"--check-config", "--full", "--table", "t"},
     {NULL},
     EX_USAGE,
     {NULL},
     {"exclude each other"}},
    {"check-config prints and redacts",
     {"--check-config"},
     {"MYSQL_PASSWORD=very-secret-1", "MONGODB_URI=mongodb://u:very-secret-2@h/db"},
     EX_OK,
     {"password: \"***\"  # env MYSQL_PASSWORD", "uri: \"mongodb://u:***@h/db\""},
     {NULL},
     "very-secret"},
    {"config error exits EX_CONFIG",
     {"--check-config"},
     {"SYNC_BATCH_SIZE=-1"},
     EX_CONFIG,
     {NULL},
     {"configuration error: environment variable SYNC_BATCH_SIZE"}},
    {"missing config file",
     {"--check-config", "--config", "/nonexistent/mysync.yaml"},
     {NULL},
     EX_CONFIG,
     {NULL},
     {"/nonexistent/mysync.yaml: cannot open"}},
    {"daemon with unreachable mysql exits EX_UNAVAILABLE",
     {NULL},
     {"MYSQL_PORT=1", "MYSQL_PASSWORD=very-secret-3", "LOG_FORMAT=json"},
     EX_UNAVAILABLE,
     {NULL},
     {"\"level\" : \"error\"", "cannot connect to MySQL at 127.0.0.1:1"},
     "very-secret"},
    {"daemon logs no secret at trace level",
     {NULL},
     {"MYSQL_PORT=1", "MYSQL_PASSWORD=very-secret-4", "LOG_LEVEL=trace",
      "MONGODB_URI=mongodb://u:very-secret-5@127.0.0.1:1/?serverSelectionTimeoutMS=200"},
     EX_UNAVAILABLE,
     {NULL},
     {"cannot connect to MySQL"},
     "very-secret"},
    {"backfill with unreachable mysql exits EX_UNAVAILABLE",
     {"--full", "--table", "products"},
     {"MYSQL_PORT=1", "MYSQL_PASSWORD=very-secret-6"},
     EX_UNAVAILABLE,
     {NULL},
     {"cannot connect to MySQL at 127.0.0.1:1"},
     "very-secret"},
    {"verify with MySQL unreachable: 69, no secret",
     {"verify", "--table", "products", "--json"},
     {"MYSQL_PORT=1", "MYSQL_PASSWORD=very-secret-7"},
     EX_UNAVAILABLE,
     {NULL},
     {"cannot connect to MySQL at 127.0.0.1:1"},
     "very-secret"},
    {"--json goes with verify", {"--full", "--table", "t", "--json"}, {NULL}, EX_USAGE, {NULL},
     {"--sample and --json go with verify"}},
    {"--where does not go with verify", {"verify", "--table", "t", "--where", "id > 1"}, {NULL},
     EX_USAGE, {NULL}, {"--where goes with --full"}},
};

static void run_case(void **state)
{
    const struct cli_case *c = *state;
    const char *argv[MAXA + 2];
    struct tu_proc p;
    size_t n = 0;

    argv[n++] = getenv("MS_MYSYNC");
    assert_non_null(argv[0]);
    for (size_t i = 0; i < MAXA && c->args[i] != NULL; i++) {
        argv[n++] = c->args[i];
    }
    argv[n] = NULL;
    assert_true(tu_run(argv, c->env, 60, &p));
    if (p.status != c->status) {
        fail_msg("case '%s': exit %d, expected %d\nstdout: %s\nstderr: %s", c->name, p.status,
                 c->status, p.out, p.err);
    }
    for (size_t i = 0; i < 4 && c->out[i] != NULL; i++) {
        if (strstr(p.out, c->out[i]) == NULL) {
            fail_msg("case '%s': stdout lacks \"%s\":\n%s", c->name, c->out[i], p.out);
        }
    }
    for (size_t i = 0; i < 4 && c->err[i] != NULL; i++) {
        if (strstr(p.err, c->err[i]) == NULL) {
            fail_msg("case '%s': stderr lacks \"%s\":\n%s", c->name, c->err[i], p.err);
        }
    }
    if (c->forbid != NULL) {
        assert_null(strstr(p.out, c->forbid));
        assert_null(strstr(p.err, c->forbid));
    }
    tu_proc_cleanup(&p);
}

int main(void)
{
    struct CMUnitTest tests[sizeof(cases) / sizeof(cases[0])];

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        tests[i] = (struct CMUnitTest){cases[i].name, run_case, NULL, NULL, (void *)&cases[i]};
    }
    return _cmocka_run_group_tests("cli", tests, sizeof(cases) / sizeof(cases[0]), NULL, NULL);
}

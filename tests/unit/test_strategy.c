/* Strategies: the registry is consistent, and the generic strategy maps row changes to
 * MongoDB operations as the cases below say (change in, operations out, as text). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mysync/strategy.h"

struct map_case {
    const char *name;
    enum ms_change_op op;
    const char *before, *after; /* JSON or NULL */
    bool complete, reread;
    const char *pk[3];
    const char *expect; /* ops, one per line: KIND collection id [doc]; or "ERROR: text" */
};

static const struct map_case cases[] = {
    {"insert, single key",
     MS_CHANGE_INSERT,
     NULL,
     "{\"id\": 7, \"name\": \"a\"}",
     true,
     false,
     {"id"},
     "REPLACE t { \"_id\" : 7 } { \"_id\" : 7, \"id\" : 7, \"name\" : \"a\" }\n"},
    {"insert, composite key in key order",
     MS_CHANGE_INSERT,
     NULL,
     "{\"a\": 1, \"b\": \"x\", \"v\": 10}",
     true,
     false,
     {"b", "a"},
     "REPLACE t { \"_id\" : { \"b\" : \"x\", \"a\" : 1 } } { \"_id\" : { \"b\" : \"x\", \"a\" : 1 "
     "}, \"a\" : 1, \"b\" : \"x\", \"v\" : 10 }\n"},
    {"update, full image",
     MS_CHANGE_UPDATE,
     "{\"id\": 7, \"name\": \"a\"}",
     "{\"id\": 7, \"name\": \"b\"}",
     true,
     false,
     {"id"},
     "REPLACE t { \"_id\" : 7 } { \"_id\" : 7, \"id\" : 7, \"name\" : \"b\" }\n"},
    {"update, MINIMAL image sets only what changed",
     MS_CHANGE_UPDATE,
     "{\"id\": 7}",
     "{\"name\": \"b\"}",
     false,
     false,
     {"id"},
     "SET t { \"_id\" : 7 } { \"name\" : \"b\" }\n"},
    {"update, NOBLOB image keeps the blob",
     MS_CHANGE_UPDATE,
     "{\"id\": 7, \"n\": 1}",
     "{\"id\": 7, \"n\": 2}",
     false,
     false,
     {"id"},
     "SET t { \"_id\" : 7 } { \"id\" : 7, \"n\" : 2 }\n"},
    {"update changing the key",
     MS_CHANGE_UPDATE,
     "{\"id\": 7, \"name\": \"a\"}",
     "{\"id\": 8, \"name\": \"a\"}",
     true,
     false,
     {"id"},
     "DELETE t { \"_id\" : 7 }\nREPLACE t { \"_id\" : 8 } { \"_id\" : 8, \"id\" : 8, \"name\" : "
     "\"a\" }\n"},
    {"composite key change",
     MS_CHANGE_UPDATE,
     "{\"a\": 1, \"b\": \"y\", \"v\": 20}",
     "{\"a\": 1, \"b\": \"z\", \"v\": 20}",
     true,
     false,
     {"a", "b"},
     "DELETE t { \"_id\" : { \"a\" : 1, \"b\" : \"y\" } }\nREPLACE t { \"_id\" : { \"a\" : 1, "
     "\"b\" : \"z\" } } { \"_id\" : { \"a\" : 1, \"b\" : \"z\" }, \"a\" : 1, \"b\" : \"z\", "
     "\"v\" : 20 }\n"},
    {"key type change is a key change",
     MS_CHANGE_UPDATE,
     "{\"id\": 7}",
     "{\"id\": {\"$numberLong\": \"7\"}}",
     true,
     false,
     {"id"},
     "DELETE t { \"_id\" : 7 }\nREPLACE t { \"_id\" : 7 } { \"_id\" : 7, \"id\" : 7 }\n"},
    {"MINIMAL key change needs the row",
     MS_CHANGE_UPDATE,
     "{\"id\": 7}",
     "{\"id\": 9}",
     false,
     false,
     {"id"},
     "DELETE t { \"_id\" : 7 }\nREREAD t { \"_id\" : 9 }\n"},
    {"unresolved JSON diff needs the row",
     MS_CHANGE_UPDATE,
     "{\"id\": 4}",
     "{\"name\": \"Joe\", \"age\": 26}",
     false,
     true,
     {"id"},
     "REREAD t { \"_id\" : 4 }\n"},
    {"delete",
     MS_CHANGE_DELETE,
     "{\"id\": 7, \"name\": \"a\"}",
     NULL,
     false,
     false,
     {"id"},
     "DELETE t { \"_id\" : 7 }\n"},
    {"delete, composite",
     MS_CHANGE_DELETE,
     "{\"a\": 2, \"b\": \"x\", \"v\": 30}",
     NULL,
     false,
     false,
     {"a", "b"},
     "DELETE t { \"_id\" : { \"a\" : 2, \"b\" : \"x\" } }\n"},
    {"null key value is still a key",
     MS_CHANGE_INSERT,
     NULL,
     "{\"k\": null, \"v\": 1}",
     true,
     false,
     {"k"},
     "REPLACE t { \"_id\" : null } { \"_id\" : null, \"k\" : null, \"v\" : 1 }\n"},
    {"no primary key",
     MS_CHANGE_INSERT,
     NULL,
     "{\"v\": 1}",
     true,
     false,
     {NULL},
     "ERROR: t has no primary key"},
    {"key column missing from the image",
     MS_CHANGE_DELETE,
     "{\"v\": 1}",
     NULL,
     false,
     false,
     {"id"},
     "ERROR: does not carry its primary key"},
};

static const char *const kinds[] = {"?", "REPLACE", "SET", "DELETE", "REREAD"};

static void run_case(void **state)
{
    const struct map_case *c = *state;
    bson_error_t berr;
    bson_t *before = NULL, *after = NULL;
    struct ms_change chg = {.op = c->op,
                            .db = "d",
                            .table = "t",
                            .after_complete = c->complete,
                            .needs_reread = c->reread,
                            .pk = c->pk,
                            .position = "f:1"};
    struct ms_ops ops;
    struct ms_error err = {0};
    char *got = NULL;
    size_t gotlen = 0;
    FILE *f;
    void *ctx = NULL;

    while (chg.npk < 3 && c->pk[chg.npk] != NULL) {
        chg.npk++;
    }
    if (c->before != NULL &&
        (before = bson_new_from_json((const uint8_t *)c->before, -1, &berr)) == NULL) {
        fail_msg("bad before: %s", berr.message);
    }
    if (c->after != NULL &&
        (after = bson_new_from_json((const uint8_t *)c->after, -1, &berr)) == NULL) {
        fail_msg("bad after: %s", berr.message);
    }
    chg.before = before;
    chg.after = after;
    ms_ops_init(&ops);
    assert_true(ms_strategy_generic.init(&ctx, NULL, &err));
    f = open_memstream(&got, &gotlen);
    if (!ms_strategy_generic.map(ctx, &chg, &ops, &err)) {
        fprintf(f, "ERROR: %s", err.msg);
    }
    for (size_t i = 0; i < ops.n; i++) {
        char *id = bson_as_relaxed_extended_json(&ops.v[i].id, NULL);
        fprintf(f, "%s %s %s", kinds[ops.v[i].kind], ops.v[i].collection, id);
        bson_free(id);
        if (!bson_empty(&ops.v[i].doc)) {
            char *doc = bson_as_relaxed_extended_json(&ops.v[i].doc, NULL);
            fprintf(f, " %s", doc);
            bson_free(doc);
        }
        fputc('\n', f);
    }
    fclose(f);
    if (strncmp(c->expect, "ERROR: ", 7) == 0) {
        if (strncmp(got, "ERROR: ", 7) != 0 || strstr(got, c->expect + 7) == NULL) {
            fail_msg("case '%s': got\n%s\nwant an error containing '%s'", c->name, got,
                     c->expect + 7);
        }
    } else if (strcmp(got, c->expect) != 0) {
        fail_msg("case '%s':\n got: %s\nwant: %s", c->name, got, c->expect);
    }
    free(got);
    ms_strategy_generic.destroy(ctx);
    ms_ops_cleanup(&ops);
    if (before != NULL) {
        bson_destroy(before);
    }
    if (after != NULL) {
        bson_destroy(after);
    }
}

/* ms_ops grows past its first capacity with documents larger than libbson's inline buffer:
 * every document stays intact (a bson_t moved by realloc would point into freed memory). */
static void ops_grow_keeps_documents(void **state)
{
    struct ms_ops ops;
    char big[300];

    (void)state;
    memset(big, 'x', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    ms_ops_init(&ops);
    for (int i = 0; i < 100; i++) {
        struct ms_op *op = ms_ops_add(&ops, MS_OP_REPLACE, "c");
        assert_non_null(op);
        BSON_APPEND_INT32(&op->id, "_id", i);
        BSON_APPEND_INT32(&op->doc, "_id", i);
        BSON_APPEND_UTF8(&op->doc, "big", big);
    }
    for (int i = 0; i < 100; i++) {
        bson_iter_t it;
        assert_true(bson_validate(&ops.v[i].doc, BSON_VALIDATE_NONE, NULL));
        assert_true(bson_iter_init_find(&it, &ops.v[i].doc, "_id"));
        assert_int_equal(bson_iter_int32(&it), i);
        assert_true(bson_iter_init_find(&it, &ops.v[i].doc, "big"));
        assert_string_equal(bson_iter_utf8(&it, NULL), big);
        BSON_APPEND_UTF8(&ops.v[i].doc, "more", big); /* still growable in place */
        assert_true(bson_iter_init_find(&it, &ops.v[i].doc, "more"));
    }
    ms_ops_cleanup(&ops);
}

static void registry_consistent(void **state)
{
    struct ms_error err = {0};

    (void)state;
    assert_true(ms_strategy_registry_valid(&err));
    assert_ptr_equal(ms_strategy_find("generic"), &ms_strategy_generic);
    assert_null(ms_strategy_find("nope"));
    assert_non_null(ms_strategy_all()[0]);
}

int main(void)
{
    struct CMUnitTest tests[sizeof(cases) / sizeof(cases[0]) + 2];
    size_t n = 0;

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        tests[n++] = (struct CMUnitTest){cases[i].name, run_case, NULL, NULL, (void *)&cases[i]};
    }
    tests[n++] = (struct CMUnitTest)cmocka_unit_test(registry_consistent);
    tests[n++] = (struct CMUnitTest)cmocka_unit_test(ops_grow_keeps_documents);
    return _cmocka_run_group_tests("strategy", tests, n, NULL, NULL);
}

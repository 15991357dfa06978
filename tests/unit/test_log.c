/* Logging: level filter, text and JSON line formats, structured fields, secret redaction. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <bson/bson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MS_LOG_DOMAIN "test"
#include "mysync/log.h"

static char *buf;
static size_t buflen;
static FILE *mem;

static int setup(void **state)
{
    (void)state;
    mem = open_memstream(&buf, &buflen);
    ms_log_set_stream(mem);
    ms_log_set_level(MS_LOG_INFO);
    ms_log_set_format(MS_LOG_FORMAT_TEXT);
    ms_log_clear_secrets();
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    ms_log_set_stream(NULL);
    fclose(mem);
    free(buf);
    buf = NULL;
    ms_log_clear_secrets();
    return 0;
}

static const char *output(void)
{
    fflush(mem);
    return buf;
}

static void level_filter(void **state)
{
    (void)state;
    ms_log(MS_LOG_DEBUG, "hidden %d", 1);
    ms_log(MS_LOG_INFO, "shown %d", 2);
    ms_log(MS_LOG_ERROR, "also shown");
    assert_null(strstr(output(), "hidden"));
    assert_non_null(strstr(output(), "info  [test] shown 2"));
    assert_non_null(strstr(output(), "error [test] also shown"));
    ms_log_set_level(MS_LOG_TRACE);
    ms_log(MS_LOG_TRACE, "now visible");
    assert_non_null(strstr(output(), "trace [test] now visible"));
}

static void text_fields(void **state)
{
    (void)state;
    ms_log_kv(
        MS_LOG_INFO,
        ((struct ms_log_field[]){MS_LF_STR("table", "shop.products"), MS_LF_INT("rows", 42),
                                 MS_LF_DBL("duration_ms", 1.5), MS_LF_STR("note", "has space")}),
        "batch written");
    assert_non_null(strstr(output(), "batch written table=shop.products rows=42 "
                                     "duration_ms=1.500 note=\"has space\""));
}

static void json_lines(void **state)
{
    bson_error_t err;
    bson_t *doc;
    bson_iter_t it;
    char *line;

    (void)state;
    ms_log_set_format(MS_LOG_FORMAT_JSON);
    ms_log_kv(MS_LOG_WARN,
              ((struct ms_log_field[]){MS_LF_STR("table", "t\"q"), MS_LF_INT("rows", 7)}),
              "quote \" and newline\n here");
    line = strdup(output());
    line[strcspn(line, "\n")] = '\0'; /* one line per record: the \n in msg is escaped */
    doc = bson_new_from_json((const uint8_t *)line, -1, &err);
    if (doc == NULL) {
        fail_msg("not JSON: %s (%s)", line, err.message);
    }
    assert_true(bson_iter_init_find(&it, doc, "level"));
    assert_string_equal(bson_iter_utf8(&it, NULL), "warn");
    assert_true(bson_iter_init_find(&it, doc, "component"));
    assert_string_equal(bson_iter_utf8(&it, NULL), "test");
    assert_true(bson_iter_init_find(&it, doc, "msg"));
    assert_string_equal(bson_iter_utf8(&it, NULL), "quote \" and newline\n here");
    assert_true(bson_iter_init_find(&it, doc, "table"));
    assert_string_equal(bson_iter_utf8(&it, NULL), "t\"q");
    assert_true(bson_iter_init_find(&it, doc, "rows"));
    assert_int_equal(bson_iter_as_int64(&it), 7);
    assert_true(bson_iter_init_find(&it, doc, "ts"));
    assert_int_equal(strlen(bson_iter_utf8(&it, NULL)), strlen("2026-01-01T00:00:00.000Z"));
    bson_destroy(doc);
    free(line);
}

static void secrets_redacted(void **state)
{
    char out[128];

    (void)state;
    ms_log_add_secret("hunter2");
    ms_log_add_secret("hunter2-long"); /* the longest match wins */
    ms_log_add_secret("");             /* ignored */
    ms_log(MS_LOG_ERROR, "auth failed for mongodb://u:hunter2@h and hunter2-long!");
    ms_log_kv(MS_LOG_INFO, ((struct ms_log_field[]){MS_LF_STR("uri", "x:hunter2@y")}), "f");
    assert_null(strstr(output(), "hunter2"));
    assert_non_null(strstr(output(), "mongodb://u:***@h and ***!"));
    assert_non_null(strstr(output(), "uri=x:***@y"));
    ms_log_set_format(MS_LOG_FORMAT_JSON);
    ms_log(MS_LOG_ERROR, "json hunter2");
    assert_null(strstr(output(), "hunter2"));
    ms_log_redact("a hunter2 b", out, sizeof(out));
    assert_string_equal(out, "a *** b");
}

static void level_names(void **state)
{
    enum ms_log_level l;

    (void)state;
    assert_true(ms_log_level_parse("WARNING", &l));
    assert_int_equal(l, MS_LOG_WARN);
    assert_true(ms_log_level_parse("trace", &l));
    assert_int_equal(l, MS_LOG_TRACE);
    assert_false(ms_log_level_parse("loud", &l));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(level_filter, setup, teardown),
        cmocka_unit_test_setup_teardown(text_fields, setup, teardown),
        cmocka_unit_test_setup_teardown(json_lines, setup, teardown),
        cmocka_unit_test_setup_teardown(secrets_redacted, setup, teardown),
        cmocka_unit_test_setup_teardown(level_names, setup, teardown),
    };
    return cmocka_run_group_tests_name("log", tests, NULL, NULL);
}

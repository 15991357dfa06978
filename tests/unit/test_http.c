/* The control plane's pure parts: Prometheus text rendering (families, label escaping, number
 * formatting, cumulative histograms), the mysync_* metrics, status and health documents and
 * the lag rule from a crafted view, the authorization decision, the constant-time token
 * compare, loopback detection, and the PUT /sync/interval body parser. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <bson/bson.h>
#include <math.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mysync/control.h"
#include "mysync/http.h"
#include "mysync/metrics.h"

/* ---- exposition ------------------------------------------------------------------------ */

static void number_formatting(void **state)
{
    static const struct {
        double v;
        const char *want;
    } cases[] = {
        {0, "0"},         {1, "1"},           {0.005, "0.005"},
        {2.5, "2.5"},     {0.1, "0.1"},       {1e21, "1e+21"},
        {-3.25, "-3.25"}, {100000, "100000"}, {1795409124.634, "1795409124.634"},
    };
    static const double round_trip[] = {1.0 / 3, 0.1 + 0.2, 1e-300, 123456789.123456789};
    char out[40];

    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        ms_metrics_format_double(cases[i].v, out, sizeof(out));
        assert_string_equal(out, cases[i].want);
    }
    for (size_t i = 0; i < sizeof(round_trip) / sizeof(round_trip[0]); i++) {
        ms_metrics_format_double(round_trip[i], out, sizeof(out));
        if (strtod(out, NULL) != round_trip[i]) {
            fail_msg("%.17g printed as %s, which reads back differently", round_trip[i], out);
        }
    }
    ms_metrics_format_double(INFINITY, out, sizeof(out));
    assert_string_equal(out, "+Inf");
    ms_metrics_format_double(-INFINITY, out, sizeof(out));
    assert_string_equal(out, "-Inf");
    ms_metrics_format_double(NAN, out, sizeof(out));
    assert_string_equal(out, "NaN");
}

static void family_and_escaping(void **state)
{
    struct ms_metrics m;

    (void)state;
    ms_metrics_init(&m);
    ms_metrics_family(&m, "x_total", "counter", "Help with a \\ backslash\nand a newline.");
    ms_metrics_u64(&m, "x_total", NULL, 18446744073709551615ULL);
    ms_metrics_u64(&m, "x_total",
                   (const char *[]){"table", "we\"ird\\na\nme", "op", "insert", NULL}, 3);
    ms_metrics_double(&m, "x_total", (const char *[]){"a", "", NULL}, 0.25);
    assert_string_equal(m.data, "# HELP x_total Help with a \\\\ backslash\\nand a newline.\n"
                                "# TYPE x_total counter\n"
                                "x_total 18446744073709551615\n"
                                "x_total{table=\"we\\\"ird\\\\na\\nme\",op=\"insert\"} 3\n"
                                "x_total{a=\"\"} 0.25\n");
    ms_metrics_cleanup(&m);
}

static void histogram_buckets_are_cumulative(void **state)
{
    static const double bounds[] = {1, 5, 10};
    static const double obs[] = {0.5, 1, 3, 5, 5.5, 100, 7};
    struct ms_metrics_histogram h;
    struct ms_metrics m;

    (void)state;
    ms_metrics_histogram_init(&h, bounds, 3);
    for (size_t i = 0; i < sizeof(obs) / sizeof(obs[0]); i++) {
        ms_metrics_histogram_observe(&h, obs[i]);
    }
    ms_metrics_init(&m);
    ms_metrics_histogram_write(&m, "b", (const char *[]){"c", "x", NULL}, &h);
    /* le is inclusive: 1 falls in le="1", 5 in le="5" */
    assert_string_equal(m.data, "b_bucket{c=\"x\",le=\"1\"} 2\n"
                                "b_bucket{c=\"x\",le=\"5\"} 4\n"
                                "b_bucket{c=\"x\",le=\"10\"} 6\n"
                                "b_bucket{c=\"x\",le=\"+Inf\"} 7\n"
                                "b_sum{c=\"x\"} 122\n"
                                "b_count{c=\"x\"} 7\n");
    ms_metrics_cleanup(&m);
    /* no observations: every bucket 0, no labels */
    ms_metrics_histogram_init(&h, bounds, 3);
    ms_metrics_init(&m);
    ms_metrics_histogram_write(&m, "b", NULL, &h);
    assert_string_equal(m.data, "b_bucket{le=\"1\"} 0\nb_bucket{le=\"5\"} 0\n"
                                "b_bucket{le=\"10\"} 0\nb_bucket{le=\"+Inf\"} 0\nb_sum 0\n"
                                "b_count 0\n");
    ms_metrics_cleanup(&m);
}

static void process_metrics(void **state)
{
    static const char *const names[] = {
        "process_cpu_seconds_total",
        "process_resident_memory_bytes",
        "process_virtual_memory_bytes",
        "process_start_time_seconds",
        "process_open_fds",
        "process_max_fds",
    };
    struct ms_metrics m;
    char line[128];

    (void)state;
    ms_metrics_init(&m);
    ms_metrics_process(&m);
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        snprintf(line, sizeof(line), "\n%s ", names[i]);
        if (strstr(m.data, line) == NULL) {
            fail_msg("no %s in\n%s", names[i], m.data);
        }
    }
    /* this process has stdin/stdout/stderr at least, and a resident size */
    assert_true(strtod(strstr(m.data, "\nprocess_open_fds ") + 18, NULL) >= 3);
    assert_true(strtod(strstr(m.data, "\nprocess_resident_memory_bytes ") + 31, NULL) > 0);
    ms_metrics_cleanup(&m);
}

/* ---- the control plane's documents ------------------------------------------------------ */

static const struct ms_pipeline_table_stats tables[] = {
    {"shop.products", 5, 2, 1, 1, 1795409124000},
    {"shop.od\"d", 0, 0, 0, 0, 0},
};
static const struct ms_pipeline_collection_stats collections[] = {
    {"products", 4, 2, 1, 1},
};

static struct ms_control_view crafted(void)
{
    struct ms_control_view v = {.ready = true,
                                .mode = "binlog",
                                .mode_reason = "SYNC_MODE=binlog",
                                .now_ms = 1795409130500,
                                .tables = tables,
                                .ntables = 2,
                                .collections = collections,
                                .ncollections = 1};
    static const double sb[] = {1, 10, 100};

    snprintf(v.stats.file, sizeof(v.stats.file), "mysql-bin.000007");
    v.stats.pos = 4242;
    snprintf(v.stats.gtid, sizeof(v.stats.gtid), "0-1-99");
    v.stats.checkpoint_event_ms = 1795409124000;
    v.stats.last_checkpoint_ms = 1795409125000;
    v.stats.last_success_ms = 1795409125000;
    v.stats.mysql_up = v.stats.mongodb_up = true;
    v.stats.interval_seconds = 90;
    v.stats.ops_applied = 8;
    v.stats.batches = 3;
    v.stats.write_attempts = 4;
    v.stats.queue_depth = 2;
    v.stats.pending_ops = 5;
    v.stats.errors[MS_PIPELINE_MONGODB] = 1;
    v.stats.errors[MS_PIPELINE_STRATEGY] = 2;
    ms_metrics_histogram_init(&v.stats.batch_size, sb, 3);
    ms_metrics_histogram_init(&v.stats.batch_seconds, sb, 3);
    ms_metrics_histogram_observe(&v.stats.batch_size, 7);
    return v;
}

static char *json_of(const bson_t *doc)
{
    return bson_as_relaxed_extended_json(doc, NULL);
}

static void expect_in(const char *text, const char *const *want)
{
    for (size_t i = 0; want[i] != NULL; i++) {
        if (strstr(text, want[i]) == NULL) {
            fail_msg("'%s' not in\n%s", want[i], text);
        }
    }
}

static void status_document(void **state)
{
    struct ms_control_view v = crafted();
    bson_t doc = BSON_INITIALIZER;
    char *json;

    (void)state;
    ms_control_status(&v, &doc);
    json = json_of(&doc);
    expect_in(json, (const char *[]){
                        "\"state\" : \"running\"", "\"sync_enabled\" : true", "\"paused\" : false",
                        "\"mode\" : \"binlog\"", "\"mode_reason\" : \"SYNC_MODE=binlog\"",
                        "\"last_sync\" : \"2026-11-23T04:45:25.000Z\"", "\"next_sync\" : null",
                        "\"sync_interval_minutes\" : 1.5", "\"sync_interval_seconds\" : 90",
                        "\"tables_synced\" : 2",
                        "\"shop.products\" : { \"inserted\" : 5, \"updated\" : 2, \"deleted\" : 1, "
                        "\"dead_lettered\" : 1, \"last_event\" : \"2026-11-23T04:45:24.000Z\" }",
                        "\"shop.od\\\"d\" : { \"inserted\" : 0, \"updated\" : 0, \"deleted\" : 0, "
                        "\"dead_lettered\" : 0, \"last_event\" : null }",
                        "\"products\" : { \"upserted\" : 4, \"matched\" : 2, \"deleted\" : 1, "
                        "\"dead_lettered\" : 1 }",
                        "\"binlog\" : { \"file\" : \"mysql-bin.000007\", \"position\" : 4242, "
                        "\"gtid\" : \"0-1-99\"",
                        "\"lag_seconds\" : 6.5", "\"total_records\" : 8", "\"success_rate\" : 0.75",
                        NULL});
    bson_free(json);
    bson_destroy(&doc);

    /* paused, idle (lag 0); starting */
    v.stats.paused = true;
    v.stats.idle = true;
    bson_init(&doc);
    ms_control_status(&v, &doc);
    json = json_of(&doc);
    expect_in(json, (const char *[]){"\"state\" : \"paused\"", "\"sync_enabled\" : false",
                                     "\"paused\" : true", "\"lag_seconds\" : 0.0", NULL});
    bson_free(json);
    bson_destroy(&doc);
    v.ready = false;
    bson_init(&doc);
    ms_control_status(&v, &doc);
    json = json_of(&doc);
    expect_in(json, (const char *[]){"\"state\" : \"starting\"", NULL});
    bson_free(json);
    bson_destroy(&doc);
}

static void health_document(void **state)
{
    static const struct {
        const char *name;
        bool ready, fatal, mysql_up, mongodb_up, paused;
        bool healthy;
        const char *want[4];
    } cases[] = {
        {"ok",
         true,
         false,
         true,
         true,
         false,
         true,
         {"\"status\" : \"ok\"", "\"last_sync_status\" : \"ok\"", "\"pending_operations\" : 7",
          "\"error_count\" : 3"}},
        {"paused is healthy",
         true,
         false,
         true,
         true,
         true,
         true,
         {"\"last_sync_status\" : \"paused\"", "\"paused\" : true"}},
        {"mongodb down",
         true,
         false,
         true,
         false,
         false,
         false,
         {"\"status\" : \"unhealthy\"", "\"mongodb_connection\" : \"down\"",
          "\"mysql_connection\" : \"ok\"", "\"last_sync_status\" : \"retrying\""}},
        {"mysql down",
         true,
         false,
         false,
         true,
         false,
         false,
         {"\"mysql_connection\" : \"down\"", "\"mongodb_connection\" : \"ok\""}},
        {"fatal", true, true, true, true, false, false, {"\"last_sync_status\" : \"failed\""}},
        {"starting",
         false,
         false,
         true,
         true,
         false,
         false,
         {"\"status\" : \"starting\"", "\"last_sync_status\" : \"starting\""}},
    };

    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct ms_control_view v = crafted();
        bson_t doc = BSON_INITIALIZER;
        char *json;
        v.ready = cases[i].ready;
        v.stats.fatal = cases[i].fatal;
        v.stats.mysql_up = cases[i].mysql_up;
        v.stats.mongodb_up = cases[i].mongodb_up;
        v.stats.paused = cases[i].paused;
        if (ms_control_health(&v, &doc) != cases[i].healthy) {
            fail_msg("%s: healthy should be %d", cases[i].name, cases[i].healthy);
        }
        json = json_of(&doc);
        for (size_t k = 0; k < 4 && cases[i].want[k] != NULL; k++) {
            if (strstr(json, cases[i].want[k]) == NULL) {
                fail_msg("%s: '%s' not in %s", cases[i].name, cases[i].want[k], json);
            }
        }
        bson_free(json);
        bson_destroy(&doc);
    }
}

static void mysync_metrics(void **state)
{
    struct ms_control_view v = crafted();
    struct ms_metrics m;

    (void)state;
    ms_metrics_init(&m);
    ms_control_metrics(&v, &m);
    expect_in(m.data,
              (const char *[]){
                  "# TYPE mysync_events_total counter\n",
                  "mysync_events_total{table=\"shop.products\",op=\"insert\"} 5\n",
                  "mysync_events_total{table=\"shop.products\",op=\"delete\"} 1\n",
                  "mysync_events_total{table=\"shop.od\\\"d\",op=\"update\"} 0\n",
                  "mysync_documents_written_total{collection=\"products\",result=\"matched\"} 2\n",
                  "mysync_documents_written_total{collection=\"products\",result=\"dead_"
                  "lettered\"} 1\n",
                  "# TYPE mysync_batch_size histogram\n",
                  "mysync_batch_size_bucket{le=\"1\"} 0\nmysync_batch_size_bucket{le=\"10\"} 1\n",
                  "mysync_batch_size_count 1\n",
                  "# TYPE mysync_batch_duration_seconds histogram\n",
                  "mysync_replication_lag_seconds 6.5\n",
                  "mysync_queue_depth 2\n",
                  "mysync_dead_letters_total 0\n",
                  "mysync_errors_total{component=\"mongodb\"} 1\n",
                  "mysync_errors_total{component=\"strategy\"} 2\n",
                  "mysync_errors_total{component=\"decode\"} 0\n",
                  "mysync_up{target=\"mysql\"} 1\nmysync_up{target=\"mongodb\"} 1\n",
                  "mysync_last_success_timestamp_seconds 1795409125\n",
                  "mysync_poll_runs_total{result=\"success\"} 0\n",
                  "mysync_poll_runs_total{result=\"failure\"} 0\n",
                  NULL});
    /* every family has its HELP right before its TYPE */
    for (const char *t = strstr(m.data, "# TYPE "); t != NULL; t = strstr(t + 1, "# TYPE ")) {
        char name[96];
        const char *prev = t - 1;
        sscanf(t + 7, "%95s", name);
        while (prev > m.data && prev[-1] != '\n') {
            prev--;
        }
        if (strncmp(prev, "# HELP ", 7) != 0 || strncmp(prev + 7, name, strlen(name)) != 0) {
            fail_msg("no HELP line before TYPE of %s", name);
        }
    }
    ms_metrics_cleanup(&m);
}

/* ---- authorization, interval bodies ------------------------------------------------------ */

static void authorization(void **state)
{
    static const struct {
        const char *token;
        bool loopback;
        const char *header;
        enum ms_http_auth want;
    } cases[] = {
        {"s3cret", true, "Bearer s3cret", MS_HTTP_AUTH_OK},
        {"s3cret", false, "Bearer s3cret", MS_HTTP_AUTH_OK},
        {"s3cret", false, "bearer   s3cret", MS_HTTP_AUTH_OK},
        {"s3cret", true, NULL, MS_HTTP_AUTH_MISSING}, /* a token binds loopback too */
        {"s3cret", false, "Basic czNjcmV0", MS_HTTP_AUTH_MISSING},
        {"s3cret", false, "Bearer", MS_HTTP_AUTH_MISSING},
        {"s3cret", false, "Bearer ", MS_HTTP_AUTH_MISSING},
        {"s3cret", false, "Bearer s3cre", MS_HTTP_AUTH_WRONG},
        {"s3cret", false, "Bearer s3cret2", MS_HTTP_AUTH_WRONG},
        {"s3cret", false, "Bearer S3CRET", MS_HTTP_AUTH_WRONG},
        {NULL, true, NULL, MS_HTTP_AUTH_OK},
        {"", true, "Bearer whatever", MS_HTTP_AUTH_OK},
        {NULL, false, NULL, MS_HTTP_AUTH_NO_TOKEN},
        {NULL, false, "Bearer guess", MS_HTTP_AUTH_NO_TOKEN},
    };

    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        enum ms_http_auth got =
            ms_http_authorize(cases[i].token, cases[i].loopback, cases[i].header);
        if (got != cases[i].want) {
            fail_msg("case %zu (%s, %s): %d, want %d", i, cases[i].token ? cases[i].token : "-",
                     cases[i].header ? cases[i].header : "-", got, cases[i].want);
        }
    }
    assert_true(ms_http_token_equal("abc", "abc"));
    assert_false(ms_http_token_equal("abc", "ab"));
    assert_false(ms_http_token_equal("abc", "abcd"));
    assert_false(ms_http_token_equal("abc", ""));
    assert_false(ms_http_token_equal("", ""));
}

static void loopback_addresses(void **state)
{
    static const struct {
        const char *addr;
        bool loopback;
    } cases[] = {
        {"127.0.0.1", true},
        {"127.9.8.7", true},
        {"0.0.0.0", false},
        {"10.0.0.1", false},
        {"::1", true},
        {"::", false},
        {"fe80::1", false},
        {"::ffff:127.0.0.1", true},
        {"::ffff:10.0.0.1", false},
    };

    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct sockaddr_storage ss = {0};
        if (strchr(cases[i].addr, ':') != NULL) {
            struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&ss;
            in6->sin6_family = AF_INET6;
            assert_int_equal(inet_pton(AF_INET6, cases[i].addr, &in6->sin6_addr), 1);
        } else {
            struct sockaddr_in *in = (struct sockaddr_in *)&ss;
            in->sin_family = AF_INET;
            assert_int_equal(inet_pton(AF_INET, cases[i].addr, &in->sin_addr), 1);
        }
        if (ms_http_addr_is_loopback((struct sockaddr *)&ss) != cases[i].loopback) {
            fail_msg("%s: loopback should be %d", cases[i].addr, cases[i].loopback);
        }
    }
    assert_true(ms_http_disabled(NULL));
    assert_true(ms_http_disabled(""));
    assert_true(ms_http_disabled("OFF"));
    assert_false(ms_http_disabled("127.0.0.1:0"));
}

static void interval_bodies(void **state)
{
    static const struct {
        const char *body;
        int64_t seconds; /* 0: refused */
        const char *error;
    } cases[] = {
        {"{\"minutes\": 5}", 300, NULL},
        {"{\"seconds\": 45}", 45, NULL},
        {"{\"minutes\": 10080}", 604800, NULL},
        {"{\"seconds\": 604800}", 604800, NULL},
        {"{\"minutes\": 2.0}", 120, NULL},
        {"{ \"seconds\" : 1 }", 1, NULL},
        {"", 0, "empty body"},
        {"garbage", 0, "not a JSON object"},
        {"{\"minutes\": 5", 0, "not a JSON object"},
        {"[5]", 0, "not a JSON object"},
        {"{}", 0, "send {\"minutes\": N} or {\"seconds\": N}"},
        {"{\"minutes\": 0}", 0, "between 1 and 10080"},
        {"{\"minutes\": 10081}", 0, "between 1 and 10080"},
        {"{\"seconds\": 0}", 0, "between 1 and 604800"},
        {"{\"seconds\": -5}", 0, "between 1 and 604800"},
        {"{\"seconds\": 99999999999}", 0, "between 1 and 604800"},
        {"{\"minutes\": 1.5}", 0, "must be an integer"},
        {"{\"minutes\": \"5\"}", 0, "must be an integer"},
        {"{\"minutes\": true}", 0, "must be an integer"},
        {"{\"minutes\": null}", 0, "must be an integer"},
        {"{\"minutes\": 5, \"seconds\": 5}", 0, "not both"},
        {"{\"hours\": 1}", 0, "unknown field 'hours'"},
    };

    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct ms_error err = {0};
        int64_t secs = 0;
        bool ok = ms_http_parse_interval(cases[i].body, strlen(cases[i].body), &secs, &err);
        if (cases[i].seconds != 0) {
            if (!ok || secs != cases[i].seconds) {
                fail_msg("'%s': %s %lld (%s)", cases[i].body, ok ? "ok" : "refused",
                         (long long)secs, err.msg);
            }
            continue;
        }
        if (ok || err.domain != MS_ERR_HTTP || err.code != 400 ||
            strstr(err.msg, cases[i].error) == NULL) {
            fail_msg("'%s': want 400 with '%s', got %s (%u/%u %s)", cases[i].body, cases[i].error,
                     ok ? "ok" : "refused", err.domain, err.code, err.msg);
        }
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(number_formatting),
        cmocka_unit_test(family_and_escaping),
        cmocka_unit_test(histogram_buckets_are_cumulative),
        cmocka_unit_test(process_metrics),
        cmocka_unit_test(status_document),
        cmocka_unit_test(health_document),
        cmocka_unit_test(mysync_metrics),
        cmocka_unit_test(authorization),
        cmocka_unit_test(loopback_addresses),
        cmocka_unit_test(interval_bodies),
    };
    return cmocka_run_group_tests_name("http", tests, NULL, NULL);
}

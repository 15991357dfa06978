/* The body of the libFuzzer harness (tests/fuzz/fuzz_binlog.c), also replayed over every
 * saved artifact by the unit tests (tests/unit/test_binlog.c): arbitrary bytes as binlog
 * events. Every event is parsed, payloads are unpacked, every row image is decoded twice: to
 * BSON (ms_binlog_rows_next, the daemon's path) and straight to JSON
 * (ms_binlog_rows_write_json, binlog-dump's path), which must agree byte for byte. Nothing
 * may crash, hang, leak or read out of bounds (ASan/UBSan/LSan, valgrind). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_driver.h"
#include "mysync/binlog.h"
#include "mysync/extjson.h"

static const char mid[] = ", \"after\" : ";

/* The value options of a rows event, from the low byte of its header's timestamp (any value
 * to the decoder): every configurable way of writing values gets fuzzed. */
static void opts_of(const struct ms_event *ev, struct ms_value_opts *vo)
{
    static const int32_t offsets[] = {0, 3600, -5 * 3600, 5 * 3600 + 1800};
    uint32_t t = ev->h.timestamp;

    memset(vo, 0, sizeof(*vo));
    vo->decimal_as = (enum ms_decimal_mode)((t & 3) % 3);
    vo->date_as_string = (t & 4) != 0;
    vo->time_keep_micros = (t & 8) != 0;
    vo->datetime_as_string = (t & 16) != 0;
    vo->time_as_seconds = (t & 32) != 0;
    vo->source_utc_offset = offsets[(t >> 6) & 3];
}

/* What ms_binlog_rows_write_json must have written for the row rows_next decoded. */
static void expect_json(const struct ms_event *ev, const bson_t *before, const bson_t *after,
                        struct ms_buf *b)
{
    bool ok;

    ms_buf_reset(b);
    ok = ev->u.rows.op == MS_ROW_INSERT ? ms_extjson_put_raw(b, "null", 4)
                                        : ms_extjson_append_nested(b, before);
    ok = ok && ms_extjson_put_raw(b, mid, sizeof(mid) - 1);
    ok = ok && (ev->u.rows.op == MS_ROW_DELETE ? ms_extjson_put_raw(b, "null", 4)
                                               : ms_extjson_append_nested(b, after));
    if (!ok) {
        ms_fuzz_fail("ms_extjson_append_nested declined a document of rows_next");
    }
}

static void rows(struct ms_binlog_parser *p, const struct ms_event *ev)
{
    const struct ms_rows_json_keys *keys =
        ev->u.rows.partial_json ? NULL : ms_binlog_rows_json_keys(p, ev);
    struct ms_value_opts vo;
    struct ms_error err = {0}, jerr = {0};
    struct ms_buf json = {0}, want = {0};
    size_t off = 0, joff = 0;
    bson_t before, after;

    opts_of(ev, &vo);
    for (;;) {
        size_t prev = off;
        bool ok = ms_binlog_rows_next(p, ev, &off, &vo, &before, &after, &err);
        if (ok && off <= prev) {
            /* its callers would loop forever */
            ms_fuzz_fail("a row of no bytes at %zu of %zu (%u columns)", off, ev->u.rows.rows_len,
                         (unsigned)ev->u.rows.ncols);
        }
        if (ok) {
            ms_fuzz_check_doc(&before);
            ms_fuzz_check_doc(&after);
        }
        if (keys != NULL) {
            bool jok;
            ms_buf_reset(&json);
            jok =
                ms_binlog_rows_write_json(ev, keys, &joff, &vo, mid, sizeof(mid) - 1, &json, &jerr);
            if (jok != ok) {
                ms_fuzz_fail("row at %zu: rows_next %s (%s), rows_write_json %s (%s)", prev,
                             ok ? "ok" : "failed", err.msg, jok ? "ok" : "failed", jerr.msg);
            }
            if (ok) {
                expect_json(ev, &before, &after, &want);
                if (joff != off || json.len != want.len || memcmp(json.p, want.p, json.len) != 0) {
                    ms_fuzz_fail("row at %zu: rows_write_json wrote (to %zu)\n  %.*s\n"
                                 "rows_next's documents (to %zu)\n  %.*s",
                                 prev, joff, (int)json.len, json.p, off, (int)want.len, want.p);
                }
            }
        }
        bson_destroy(&before);
        bson_destroy(&after);
        if (!ok) {
            break;
        }
    }
    ms_buf_free(&json);
    ms_buf_free(&want);
}

static void handle(struct ms_binlog_parser *p, const struct ms_event *ev, int depth)
{
    uint8_t t = ev->h.type;

    if (t == MS_EV_TRANSACTION_PAYLOAD && depth == 0) {
        struct ms_error err = {0};
        struct ms_event inner;
        size_t off = 0;
        while (ms_binlog_payload_next(p, ev, &off, &inner, &err)) {
            handle(p, &inner, depth + 1);
        }
    } else if (ms_binlog_is_rows_event(t)) {
        rows(p, ev);
    }
}

void ms_fuzz_binlog_one(const uint8_t *data, size_t size)
{
    struct ms_binlog_parser *p = ms_binlog_parser_new();
    size_t off = 0;

    /* seeds are whole binlog files: skip their magic */
    if (size >= 4 && memcmp(data,
                            "\xfe"
                            "bin",
                            4) == 0) {
        off = 4;
    }
    ms_binlog_parser_set_verify(p, false); /* let mutations past the CRC32 check */
    while (size - off >= 19) {
        uint32_t len;
        struct ms_event ev;
        struct ms_error err = {0};
        memcpy(&len, data + off + 9, 4);
        if (len < 19 || len > size - off) {
            break;
        }
        /* an exact-size heap copy, so ASan sees any read past the event */
        uint8_t *copy = malloc(len);
        memcpy(copy, data + off, len);
        if (ms_binlog_parse(p, copy, len, &ev, &err)) {
            handle(p, &ev, 0);
        }
        free(copy);
        off += len;
    }
    ms_binlog_parser_destroy(p);
}

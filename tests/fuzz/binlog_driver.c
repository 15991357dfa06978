/* The body of the libFuzzer harness (tests/fuzz/fuzz_binlog.c), also replayed over every
 * saved artifact by the unit tests (tests/unit/test_binlog.c): arbitrary bytes as binlog
 * events. Every event is parsed, payloads are unpacked, every row image is decoded. Nothing
 * may crash, hang, leak or read out of bounds (ASan/UBSan/LSan, valgrind). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_driver.h"
#include "mysync/binlog.h"

static void rows(struct ms_binlog_parser *p, const struct ms_event *ev)
{
    struct ms_value_opts vo = {0};
    struct ms_error err = {0};
    size_t off = 0;
    bson_t before, after;
    int guard = 0;

    while (guard++ < 10000 && ms_binlog_rows_next(p, ev, &off, &vo, &before, &after, &err)) {
        bson_destroy(&before);
        bson_destroy(&after);
    }
    bson_destroy(&before);
    bson_destroy(&after);
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

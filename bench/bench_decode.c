/* In-process decode speed: parses every event of a binlog file and decodes every row image
 * to BSON (what the daemon does before mapping), printing nothing per row; with "json",
 * writes every row's images as Extended JSON into a buffer instead (binlog-dump's path, one
 * thread, no output). Reports row changes, seconds, rows/s and ns/row.
 * Usage: bench_decode FILE [RUNS] [json] */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "mysync/binlog.h"

static double now(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static bool as_json;

static int decode_rows(struct ms_binlog_parser *p, const struct ms_event *ev, uint64_t *rows,
                       struct ms_error *err)
{
    struct ms_value_opts vo = {0};
    size_t off = 0;
    bson_t before, after;

    if (as_json && !ev->u.rows.partial_json) {
        static struct ms_buf out;
        const struct ms_rows_json_keys *keys = ms_binlog_rows_json_keys(p, ev);
        ms_buf_reset(&out);
        while (ms_binlog_rows_write_json(ev, keys, &off, &vo, ", ", 2, &out, err)) {
            (*rows)++;
        }
        return err->domain == MS_ERR_NONE ? 0 : -1;
    }

    while (ms_binlog_rows_next(p, ev, &off, &vo, &before, &after, err)) {
        (*rows)++;
        bson_destroy(&before);
        bson_destroy(&after);
    }
    bson_destroy(&before);
    bson_destroy(&after);
    return err->domain == MS_ERR_NONE ? 0 : -1;
}

static int handle(struct ms_binlog_parser *p, const struct ms_event *ev, uint64_t *rows,
                  struct ms_error *err)
{
    if (ev->h.type == MS_EV_TRANSACTION_PAYLOAD) {
        size_t off = 0;
        struct ms_event inner;
        while (ms_binlog_payload_next(p, ev, &off, &inner, err)) {
            if (handle(p, &inner, rows, err) != 0) {
                return -1;
            }
        }
        return err->domain == MS_ERR_NONE ? 0 : -1;
    }
    if (ms_binlog_is_rows_event(ev->h.type)) {
        return decode_rows(p, ev, rows, err);
    }
    return 0;
}

int main(int argc, char **argv)
{
    int fd, runs = argc > 2 ? atoi(argv[2]) : 3;
    struct stat st;
    const uint8_t *base;
    double best = 1e30;
    uint64_t rows = 0;

    as_json = argc > 3 && strcmp(argv[3], "json") == 0;
    if (argc < 2 || (fd = open(argv[1], O_RDONLY)) < 0 || fstat(fd, &st) != 0) {
        fprintf(stderr, "usage: bench_decode BINLOG [RUNS]\n");
        return 64;
    }
    base = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
    for (int r = 0; r < runs; r++) {
        struct ms_binlog_parser *p = ms_binlog_parser_new();
        struct ms_error err = {0};
        size_t off = 4;
        double t0 = now(), dt;
        rows = 0;
        while (off + 19 <= (size_t)st.st_size) {
            uint32_t len;
            struct ms_event ev;
            memcpy(&len, base + off + 9, 4);
            if (len < 19 || off + len > (size_t)st.st_size) {
                break;
            }
            if (!ms_binlog_parse(p, base + off, len, &ev, &err) ||
                handle(p, &ev, &rows, &err) != 0) {
                fprintf(stderr, "offset %zu: %s\n", off, err.msg);
                return 65;
            }
            off += len;
        }
        dt = now() - t0;
        if (dt < best) {
            best = dt;
        }
        ms_binlog_parser_destroy(p);
    }
    printf("%s rows %llu  best %.3f s  %.0f rows/s  %.0f "
           "ns/row\n",
           as_json ? "decode to JSON (in process, 1 thread)   "
                   : "decode-only (in process)                  ",
           (unsigned long long)rows, best, (double)rows / best, best * 1e9 / (double)rows);
    return 0;
}

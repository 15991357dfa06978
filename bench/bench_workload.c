/* The benchmarks' workload generator: row changes on MariaDB/MySQL, deterministic for a seed.
 *
 *   bench_workload [options]
 *     --host H --port P --user U --password W   the server (or MYSQL_PWD for the password)
 *     --db NAME          database (default bench); created with the tables if missing
 *     --tables K         tables t1..tK (default 1)
 *     --prefix P         table name prefix (default t)
 *     --changes N        row changes to make (default 10000; 0 with --seconds: no limit)
 *     --seconds S        stop after S seconds (default: no limit)
 *     --mix I:U:D[:K]    relative weights of inserts, updates, deletes and key changes
 *                        (default 60:30:10:0)
 *     --txn MIN[-MAX]    rows per transaction, uniform in MIN..MAX (default 1-100)
 *     --txn-log          transaction sizes log-uniform in MIN..MAX instead: as many of 1-10 rows
 *                        as of 1 000-10 000 (mostly small ones, some large)
 *     --width BYTES      approximate row width: the TEXT payload takes what the other
 *                        columns leave (default 200)
 *     --rate R           rows per second, paced by transaction (default 0: as fast as possible)
 *     --seed S           the random sequence (default 1): the same seed on the same starting
 *                        data makes the same changes
 *     --create           only create the database and the tables, then exit
 *
 * Tables: (id BIGINT PRIMARY KEY, k INT, v BIGINT, price DECIMAL(12,2), ts DATETIME(6),
 * marker BIGINT, name VARCHAR(64), payload TEXT). Inserts take the next ids of their table;
 * updates, deletes and key changes pick random live rows (the live ids are read at start, so
 * successive runs continue from the data). A key change gives a row the next id of its table
 * (UPDATE ... SET id = <new>, v = v + 1 WHERE id = <old>). `marker` holds CLOCK_REALTIME in
 * microseconds, taken when the transaction begins, in every row it inserts or updates: the latency
 * benchmark subtracts it from the moment the document becomes visible (so a latency includes the
 * transaction's own statements and COMMIT: under a millisecond for the small transactions it uses).
 * A transaction is one multi-row INSERT, one UPDATE ... WHERE id IN (...), one UPDATE per key
 * change and one DELETE ... WHERE id IN (...) per table it touches (in that order), so the rows
 * events are the ones applications produce in bulk.
 *
 * Prints one line: "changes=N inserts=N updates=N deletes=N keychanges=N txns=N seconds=S
 * rows_per_s=R first_id=F" (first_id: the first id inserted into t1). Exit 0, 1 on a server error,
 * 64 on a bad command line. */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <mysql.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bench_util.h"

struct table {
    char name[80];
    int64_t *live; /* ids of the rows that exist */
    size_t nlive, cap;
    int64_t next_id;
};

struct opts {
    const char *host, *user, *password, *db, *prefix;
    unsigned port;
    int64_t tables, changes, width, seed, txn_min, txn_max;
    double seconds, rate;
    bool create_only, txn_log;
    int64_t mix[4];
};

static uint64_t rng_state;

/* xorshift64*: small, fast and the same everywhere */
static uint64_t rnd(void)
{
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return rng_state * 2685821657736338717ULL;
}

static uint64_t rnd_below(uint64_t n)
{
    return n == 0 ? 0 : rnd() % n;
}

/* A growing string buffer; aborts on out of memory (a benchmark tool). */
struct sbuf {
    char *p;
    size_t len, cap;
};

static void sb_need(struct sbuf *b, size_t n)
{
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 4096;
        while (cap < b->len + n + 1) {
            cap *= 2;
        }
        b->p = realloc(b->p, cap);
        if (b->p == NULL) {
            fprintf(stderr, "bench_workload: out of memory\n");
            exit(1);
        }
        b->cap = cap;
    }
}

static void sb_printf(struct sbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void sb_printf(struct sbuf *b, const char *fmt, ...)
{
    va_list ap;
    int n;

    va_start(ap, fmt);
    n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    sb_need(b, (size_t)n);
    va_start(ap, fmt);
    vsnprintf(b->p + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
}

static void sb_letters(struct sbuf *b, int64_t n)
{
    static const char alphabet[] = "abcdefghijklmnopqrstuvwxyz0123456789";

    sb_need(b, (size_t)n);
    for (int64_t i = 0; i < n; i++) {
        b->p[b->len++] = alphabet[rnd_below(sizeof(alphabet) - 1)];
    }
    b->p[b->len] = '\0';
}

static bool sql(MYSQL *m, const char *q)
{
    if (mysql_query(m, q) != 0) {
        fprintf(stderr, "bench_workload: %s\n  in: %.200s\n", mysql_error(m), q);
        return false;
    }
    return true;
}

static void live_add(struct table *t, int64_t id)
{
    if (t->nlive == t->cap) {
        t->cap = t->cap ? t->cap * 2 : 1024;
        t->live = realloc(t->live, t->cap * sizeof(*t->live));
        if (t->live == NULL) {
            fprintf(stderr, "bench_workload: out of memory\n");
            exit(1);
        }
    }
    t->live[t->nlive++] = id;
}

static bool table_open(MYSQL *m, const struct opts *o, struct table *t, int64_t i)
{
    char q[512];
    MYSQL_RES *res;
    MYSQL_ROW row;

    snprintf(t->name, sizeof(t->name), "%s%" PRId64, o->prefix, i);
    snprintf(q, sizeof(q),
             "CREATE TABLE IF NOT EXISTS `%s`.`%s` (id BIGINT PRIMARY KEY, k INT NOT NULL, "
             "v BIGINT, price DECIMAL(12,2), ts DATETIME(6), marker BIGINT, name VARCHAR(64), "
             "payload TEXT)",
             o->db, t->name);
    if (!sql(m, q)) {
        return false;
    }
    snprintf(q, sizeof(q), "SELECT id FROM `%s`.`%s` ORDER BY id", o->db, t->name);
    if (!sql(m, q) || (res = mysql_use_result(m)) == NULL) {
        return false;
    }
    t->next_id = 1;
    while ((row = mysql_fetch_row(res)) != NULL) {
        int64_t id = strtoll(row[0], NULL, 10);
        live_add(t, id);
        if (id >= t->next_id) {
            t->next_id = id + 1;
        }
    }
    mysql_free_result(res);
    return true;
}

/* One transaction of n changes spread over the tables. */
static bool run_txn(MYSQL *m, const struct opts *o, struct table *tabs, int64_t n, int64_t count[4])
{
    struct {
        int64_t ins, upd, del, key;
    } per[o->tables];
    struct sbuf b = {0};
    int64_t total = o->mix[0] + o->mix[1] + o->mix[2] + o->mix[3], marker;
    bool ok = true;

    memset(per, 0, sizeof(per));
    for (int64_t i = 0; i < n; i++) {
        int64_t t = (int64_t)rnd_below((uint64_t)o->tables),
                r = (int64_t)rnd_below((uint64_t)total);
        if (r < o->mix[0] || tabs[t].nlive == 0) {
            per[t].ins++;
        } else if (r < o->mix[0] + o->mix[1]) {
            per[t].upd++;
        } else if (r < o->mix[0] + o->mix[1] + o->mix[2]) {
            per[t].del++;
        } else {
            per[t].key++;
        }
    }
    if (!sql(m, "BEGIN")) {
        return false;
    }
    marker = bench_now_us();
    for (int64_t t = 0; t < o->tables && ok; t++) {
        struct table *tb = &tabs[t];
        int64_t pay = o->width > 70 ? o->width - 70 : 0;

        if (per[t].ins > 0) {
            b.len = 0;
            sb_printf(&b,
                      "INSERT INTO `%s`.`%s` (id, k, v, price, ts, marker, name, payload) VALUES ",
                      o->db, tb->name);
            for (int64_t i = 0; i < per[t].ins; i++) {
                int64_t id = tb->next_id++;
                uint64_t r = rnd();
                sb_printf(&b,
                          "%s(%" PRId64 ", %u, %" PRId64 ", %u.%02u, "
                          "'2024-01-01' + INTERVAL %u SECOND, %" PRId64 ", 'name-%" PRId64 "', '",
                          i ? ", " : "", id, (unsigned)(r % 100000), (int64_t)(r >> 20),
                          (unsigned)(r % 1000000), (unsigned)(r % 100), (unsigned)(r % 100000000),
                          marker, id);
                sb_letters(&b, pay == 0 ? 0 : pay / 2 + (int64_t)rnd_below((uint64_t)pay));
                sb_printf(&b, "')");
                live_add(tb, id);
            }
            ok = sql(m, b.p);
            count[0] += per[t].ins;
        }
        if (ok && per[t].upd > 0) {
            b.len = 0;
            sb_printf(&b,
                      "UPDATE `%s`.`%s` SET v = v + 1, k = %u, marker = %" PRId64
                      ", ts = ts + INTERVAL 1 SECOND WHERE id IN (",
                      o->db, tb->name, (unsigned)rnd_below(100000), marker);
            for (int64_t i = 0; i < per[t].upd; i++) {
                sb_printf(&b, "%s%" PRId64, i ? ", " : "", tb->live[rnd_below(tb->nlive)]);
            }
            sb_printf(&b, ")");
            ok = sql(m, b.p);
            count[1] += per[t].upd;
        }
        for (int64_t i = 0; ok && i < per[t].key && tb->nlive > 0; i++) {
            size_t at = rnd_below(tb->nlive);
            int64_t to = tb->next_id++;
            b.len = 0;
            sb_printf(&b,
                      "UPDATE `%s`.`%s` SET id = %" PRId64 ", v = v + 1, marker = %" PRId64
                      " WHERE id = %" PRId64,
                      o->db, tb->name, to, marker, tb->live[at]);
            tb->live[at] = to;
            ok = sql(m, b.p);
            count[3]++;
        }
        if (ok && per[t].del > 0) {
            int64_t k = 0;
            b.len = 0;
            sb_printf(&b, "DELETE FROM `%s`.`%s` WHERE id IN (", o->db, tb->name);
            for (int64_t i = 0; i < per[t].del && tb->nlive > 0; i++, k++) {
                size_t at = rnd_below(tb->nlive);
                sb_printf(&b, "%s%" PRId64, i ? ", " : "", tb->live[at]);
                tb->live[at] = tb->live[--tb->nlive];
            }
            sb_printf(&b, ")");
            ok = k == 0 || sql(m, b.p);
            count[2] += k;
        }
    }
    free(b.p);
    return ok && sql(m, "COMMIT");
}

static int usage(void)
{
    fprintf(stderr,
            "usage: bench_workload [--host H] [--port P] [--user U] [--password W] "
            "[--db D] [--tables K] [--prefix P] [--changes N] [--seconds S] "
            "[--mix I:U:D[:K]] [--txn MIN[-MAX]] [--txn-log] [--width B] [--rate R] [--seed S] "
            "[--create]\n");
    return 64;
}

int main(int argc, char **argv)
{
    struct opts o = {.host = "127.0.0.1",
                     .user = "root",
                     .password = getenv("MYSQL_PWD"),
                     .db = "bench",
                     .prefix = "t",
                     .port = 3306,
                     .tables = 1,
                     .changes = 10000,
                     .width = 200,
                     .seed = 1,
                     .txn_min = 1,
                     .txn_max = 100,
                     .mix = {60, 30, 10, 0}};
    int64_t v, count[4] = {0, 0, 0, 0}, done = 0, txns = 0, first_id;
    struct table *tabs;
    double t0;
    char q[256];
    MYSQL *m;

    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *val = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(a, "--create") == 0) {
            o.create_only = true;
            continue;
        }
        if (strcmp(a, "--txn-log") == 0) {
            o.txn_log = true;
            continue;
        }
        if (val == NULL) {
            return usage();
        }
        i++;
        if (strcmp(a, "--host") == 0) {
            o.host = val;
        } else if (strcmp(a, "--port") == 0) {
            if (!bench_parse_i64("bench_workload", val, 1, 65535, &v)) {
                return 64;
            }
            o.port = (unsigned)v;
        } else if (strcmp(a, "--user") == 0) {
            o.user = val;
        } else if (strcmp(a, "--password") == 0) {
            o.password = val;
        } else if (strcmp(a, "--db") == 0) {
            o.db = val;
        } else if (strcmp(a, "--prefix") == 0) {
            o.prefix = val;
        } else if (strcmp(a, "--tables") == 0) {
            if (!bench_parse_i64("bench_workload", val, 1, 1000, &o.tables)) {
                return 64;
            }
        } else if (strcmp(a, "--changes") == 0) {
            if (!bench_parse_i64("bench_workload", val, 0, INT64_MAX / 2, &o.changes)) {
                return 64;
            }
        } else if (strcmp(a, "--seconds") == 0) {
            if (!bench_parse_i64("bench_workload", val, 1, 86400, &v)) {
                return 64;
            }
            o.seconds = (double)v;
        } else if (strcmp(a, "--rate") == 0) {
            if (!bench_parse_i64("bench_workload", val, 0, 10000000, &v)) {
                return 64;
            }
            o.rate = (double)v;
        } else if (strcmp(a, "--width") == 0) {
            if (!bench_parse_i64("bench_workload", val, 1, 1 << 20, &o.width)) {
                return 64;
            }
        } else if (strcmp(a, "--seed") == 0) {
            if (!bench_parse_i64("bench_workload", val, 0, INT64_MAX, &o.seed)) {
                return 64;
            }
        } else if (strcmp(a, "--mix") == 0) {
            long long x, y, z, k = 0;
            char tail;
            int got = sscanf(val, "%lld:%lld:%lld:%lld%c", &x, &y, &z, &k, &tail);
            if ((got != 3 && got != 4) || x < 0 || y < 0 || z < 0 || k < 0 || x + y + z + k == 0 ||
                x + y + z + k > 1000000) {
                fprintf(stderr, "bench_workload: --mix wants I:U:D[:K] weights, e.g. 60:30:10 or "
                                "50:25:15:10\n");
                return 64;
            }
            o.mix[0] = x, o.mix[1] = y, o.mix[2] = z, o.mix[3] = k;
        } else if (strcmp(a, "--txn") == 0) {
            long long lo, hi;
            char tail;
            int n = sscanf(val, "%lld-%lld%c", &lo, &hi, &tail);
            if (n == 1) {
                hi = lo;
            }
            if ((n != 1 && n != 2) || lo < 1 || hi < lo || hi > 10000000) {
                fprintf(stderr, "bench_workload: --txn wants MIN or MIN-MAX rows, e.g. 1-100\n");
                return 64;
            }
            o.txn_min = lo, o.txn_max = hi;
        } else {
            return usage();
        }
    }
    if (o.changes == 0 && o.seconds == 0) {
        fprintf(stderr, "bench_workload: --changes 0 needs --seconds\n");
        return 64;
    }
    rng_state = (uint64_t)o.seed * 0x9E3779B97F4A7C15ULL + 0x2545F4914F6CDD1DULL;

    m = mysql_init(NULL);
    if (m == NULL ||
        mysql_real_connect(m, o.host, o.user, o.password, NULL, o.port, NULL, 0) == NULL) {
        fprintf(stderr, "bench_workload: connecting to %s:%u: %s\n", o.host, o.port,
                m ? mysql_error(m) : "out of memory");
        return 1;
    }
    snprintf(q, sizeof(q), "CREATE DATABASE IF NOT EXISTS `%s`", o.db);
    if (!sql(m, q)) {
        return 1;
    }
    tabs = calloc((size_t)o.tables, sizeof(*tabs));
    for (int64_t i = 0; i < o.tables; i++) {
        if (!table_open(m, &o, &tabs[i], i + 1)) {
            return 1;
        }
    }
    first_id = tabs[0].next_id;
    if (o.create_only) {
        o.changes = 0;
        o.seconds = -1;
    }
    t0 = bench_now_s(CLOCK_MONOTONIC);
    while (o.changes == 0 || done < o.changes) {
        int64_t n = o.txn_min + (int64_t)rnd_below((uint64_t)(o.txn_max - o.txn_min + 1));
        if (o.txn_log) { /* exp of a uniform value in [log MIN, log (MAX + 1)) */
            double lo = log((double)o.txn_min), hi = log((double)o.txn_max + 1);
            n = (int64_t)exp(lo + (hi - lo) * (double)(rnd() >> 11) * 0x1.0p-53);
            n = n < o.txn_min ? o.txn_min : n > o.txn_max ? o.txn_max : n;
        }
        double el = bench_now_s(CLOCK_MONOTONIC) - t0;

        if (o.seconds != 0 && el >= o.seconds) {
            break;
        }
        if (o.changes > 0 && n > o.changes - done) {
            n = o.changes - done;
        }
        if (o.rate > 0) {
            double due = (double)done / o.rate; /* this transaction's start on the schedule */
            if (due > el) {
                struct timespec ts = {.tv_sec = (time_t)(due - el),
                                      .tv_nsec =
                                          (long)((due - el - (double)(time_t)(due - el)) * 1e9)};
                nanosleep(&ts, NULL);
            }
        }
        if (!run_txn(m, &o, tabs, n, count)) {
            return 1;
        }
        done += n;
        txns++;
    }
    {
        double secs = bench_now_s(CLOCK_MONOTONIC) - t0;
        int64_t all = count[0] + count[1] + count[2] + count[3];
        printf("changes=%" PRId64 " inserts=%" PRId64 " updates=%" PRId64 " deletes=%" PRId64
               " keychanges=%" PRId64 " txns=%" PRId64 " seconds=%.3f rows_per_s=%.0f"
               " first_id=%" PRId64 "\n",
               all, count[0], count[1], count[2], count[3], txns, secs,
               secs > 0 ? (double)all / secs : 0, first_id);
    }
    for (int64_t i = 0; i < o.tables; i++) {
        free(tabs[i].live);
    }
    free(tabs);
    mysql_close(m);
    return 0;
}

/* Small helpers shared by the bench programs (bench_loader, bench_workload). */
#ifndef MYSYNC_BENCH_UTIL_H
#define MYSYNC_BENCH_UTIL_H

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

/* Seconds on clock clk. */
static inline double bench_now_s(clockid_t clk)
{
    struct timespec ts;

    clock_gettime(clk, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* CLOCK_REALTIME in microseconds (the workload's markers, the latency watcher's sightings). */
static inline int64_t bench_now_us(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* s as a whole number in min..max; false, having said so on stderr as prog, otherwise. */
static inline bool bench_parse_i64(const char *prog, const char *s, int64_t min, int64_t max,
                                   int64_t *out)
{
    char *end;
    long long v;

    errno = 0;
    v = strtoll(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0' || v < min || v > max) {
        fprintf(stderr, "%s: '%s' is not a number in %lld..%lld\n", prog, s, (long long)min,
                (long long)max);
        return false;
    }
    *out = v;
    return true;
}

#endif

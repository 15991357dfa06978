/* Milliseconds from the two clocks every module times things with: monotonic for deadlines
 * and durations, wall for what is stored or shown (ms since the epoch). Header-only. */
#ifndef MYSYNC_CLOCK_H
#define MYSYNC_CLOCK_H

#include <stdint.h>
#include <time.h>

static inline int64_t ms_clock_mono_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static inline int64_t ms_clock_wall_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

#endif

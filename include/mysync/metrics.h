/* Prometheus text exposition, format 0.0.4: a growable text buffer, metric families with their
 * HELP and TYPE lines, samples with escaped label values, cumulative histograms, and the
 * standard process_* metrics read from /proc/self. Everything but ms_metrics_process() is pure
 * (no I/O), so the renderers are unit-tested byte for byte.
 *
 * A family's samples must follow its ms_metrics_family() line (the format requires a family's
 * lines to be contiguous); names are the caller's constants and are not checked here. */
#ifndef MYSYNC_METRICS_H
#define MYSYNC_METRICS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The text being built. Out of memory aborts (as elsewhere in the daemon). */
struct ms_metrics {
    char *data; /* NUL-terminated; NULL until something is written */
    size_t len, cap;
};

void ms_metrics_init(struct ms_metrics *m);
void ms_metrics_cleanup(struct ms_metrics *m);

/* Appends printf-formatted text. */
void ms_metrics_printf(struct ms_metrics *m, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* "# HELP name help" (help escaped: backslash and newline) and "# TYPE name type";
 * type is counter, gauge, histogram or untyped. */
void ms_metrics_family(struct ms_metrics *m, const char *name, const char *type, const char *help);

/* One sample line. labels: NULL, or a NULL-terminated list of name, value pairs
 * ((const char *[]){"table", t, "op", "insert", NULL}); values are escaped (\\, \", \n). */
void ms_metrics_u64(struct ms_metrics *m, const char *name, const char *const *labels, uint64_t v);
void ms_metrics_double(struct ms_metrics *m, const char *name, const char *const *labels, double v);

/* Writes v as Prometheus expects it: the shortest text that reads back as v, "+Inf", "-Inf",
 * "NaN". */
void ms_metrics_format_double(double v, char *out, size_t outsz);

#define MS_METRICS_MAX_BUCKETS 20

/* A histogram with fixed upper bounds. counts[] are per bucket (not cumulative); counts[nbounds]
 * holds the observations above the last bound. Not thread-safe: the owner guards it. */
struct ms_metrics_histogram {
    size_t nbounds;
    double bounds[MS_METRICS_MAX_BUCKETS]; /* ascending */
    uint64_t counts[MS_METRICS_MAX_BUCKETS + 1];
    uint64_t count;
    double sum;
};

/* bounds: n ascending values, n <= MS_METRICS_MAX_BUCKETS (more are ignored). */
void ms_metrics_histogram_init(struct ms_metrics_histogram *h, const double *bounds, size_t n);
void ms_metrics_histogram_observe(struct ms_metrics_histogram *h, double v);

/* name_bucket{labels...,le="b"} with cumulative counts, the le="+Inf" bucket (= count),
 * name_sum and name_count. */
void ms_metrics_histogram_write(struct ms_metrics *m, const char *name, const char *const *labels,
                                const struct ms_metrics_histogram *h);

/* The standard process metrics of the calling process (Linux /proc/self, getrlimit):
 * process_cpu_seconds_total, process_resident_memory_bytes, process_virtual_memory_bytes,
 * process_start_time_seconds, process_open_fds, process_max_fds. A value that cannot be read
 * is left out with its family. */
void ms_metrics_process(struct ms_metrics *m);

#endif

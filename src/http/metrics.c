/* Prometheus text exposition (include/mysync/metrics.h). */
#define MS_LOG_DOMAIN "metrics"

#include "mysync/metrics.h"

#include <dirent.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

void ms_metrics_init(struct ms_metrics *m)
{
    memset(m, 0, sizeof(*m));
}

void ms_metrics_cleanup(struct ms_metrics *m)
{
    free(m->data);
    memset(m, 0, sizeof(*m));
}

static void reserve(struct ms_metrics *m, size_t more)
{
    size_t need = m->len + more + 1;

    if (need <= m->cap) {
        return;
    }
    m->cap = m->cap != 0 ? m->cap : 4096;
    while (m->cap < need) {
        m->cap *= 2;
    }
    m->data = realloc(m->data, m->cap);
    if (m->data == NULL) {
        abort(); /* out of memory: as everywhere in the daemon */
    }
}

static void append(struct ms_metrics *m, const char *s, size_t n)
{
    reserve(m, n);
    memcpy(m->data + m->len, s, n);
    m->len += n;
    m->data[m->len] = '\0';
}

void ms_metrics_printf(struct ms_metrics *m, const char *fmt, ...)
{
    va_list ap;
    int n;

    va_start(ap, fmt);
    n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n <= 0) {
        return;
    }
    reserve(m, (size_t)n);
    va_start(ap, fmt);
    vsnprintf(m->data + m->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    m->len += (size_t)n;
}

/* Escapes backslash and newline (HELP text), and the double quote too in label values. */
static void append_escaped(struct ms_metrics *m, const char *s, bool quote)
{
    for (; *s != '\0'; s++) {
        if (*s == '\\') {
            append(m, "\\\\", 2);
        } else if (*s == '\n') {
            append(m, "\\n", 2);
        } else if (*s == '"' && quote) {
            append(m, "\\\"", 2);
        } else {
            append(m, s, 1);
        }
    }
}

void ms_metrics_family(struct ms_metrics *m, const char *name, const char *type, const char *help)
{
    ms_metrics_printf(m, "# HELP %s ", name);
    append_escaped(m, help, false);
    ms_metrics_printf(m, "\n# TYPE %s %s\n", name, type);
}

/* name{k="v",...,extra_k="extra_v"} and the space before the value. */
static void series(struct ms_metrics *m, const char *name, const char *const *labels,
                   const char *extra_k, const char *extra_v)
{
    bool any = false;

    append(m, name, strlen(name));
    for (size_t i = 0; labels != NULL && labels[i] != NULL && labels[i + 1] != NULL; i += 2) {
        ms_metrics_printf(m, "%s%s=\"", any ? "," : "{", labels[i]);
        append_escaped(m, labels[i + 1], true);
        append(m, "\"", 1);
        any = true;
    }
    if (extra_k != NULL) {
        ms_metrics_printf(m, "%s%s=\"%s\"", any ? "," : "{", extra_k, extra_v);
        any = true;
    }
    append(m, any ? "} " : " ", any ? 2 : 1);
}

void ms_metrics_u64(struct ms_metrics *m, const char *name, const char *const *labels, uint64_t v)
{
    series(m, name, labels, NULL, NULL);
    ms_metrics_printf(m, "%llu\n", (unsigned long long)v);
}

void ms_metrics_format_double(double v, char *out, size_t outsz)
{
    if (isnan(v)) {
        snprintf(out, outsz, "NaN");
        return;
    }
    if (isinf(v)) {
        snprintf(out, outsz, "%s", v > 0 ? "+Inf" : "-Inf");
        return;
    }
    /* the shortest of 15..17 significant digits that reads back as v: 0.005, not
     * 0.0050000000000000001 */
    for (int prec = 15; prec <= 17; prec++) {
        snprintf(out, outsz, "%.*g", prec, v);
        if (strtod(out, NULL) == v) {
            return;
        }
    }
}

void ms_metrics_double(struct ms_metrics *m, const char *name, const char *const *labels, double v)
{
    char num[40];

    ms_metrics_format_double(v, num, sizeof(num));
    series(m, name, labels, NULL, NULL);
    ms_metrics_printf(m, "%s\n", num);
}

void ms_metrics_histogram_init(struct ms_metrics_histogram *h, const double *bounds, size_t n)
{
    memset(h, 0, sizeof(*h));
    h->nbounds = n < MS_METRICS_MAX_BUCKETS ? n : MS_METRICS_MAX_BUCKETS;
    memcpy(h->bounds, bounds, h->nbounds * sizeof(double));
}

void ms_metrics_histogram_observe(struct ms_metrics_histogram *h, double v)
{
    size_t i = 0;

    while (i < h->nbounds && v > h->bounds[i]) {
        i++;
    }
    h->counts[i]++;
    h->count++;
    h->sum += v;
}

void ms_metrics_histogram_write(struct ms_metrics *m, const char *name, const char *const *labels,
                                const struct ms_metrics_histogram *h)
{
    char series_name[128], le[40];
    uint64_t cum = 0;

    snprintf(series_name, sizeof(series_name), "%s_bucket", name);
    for (size_t i = 0; i < h->nbounds; i++) {
        cum += h->counts[i];
        ms_metrics_format_double(h->bounds[i], le, sizeof(le));
        series(m, series_name, labels, "le", le);
        ms_metrics_printf(m, "%llu\n", (unsigned long long)cum);
    }
    series(m, series_name, labels, "le", "+Inf");
    ms_metrics_printf(m, "%llu\n", (unsigned long long)h->count);
    snprintf(series_name, sizeof(series_name), "%s_sum", name);
    ms_metrics_double(m, series_name, labels, h->sum);
    snprintf(series_name, sizeof(series_name), "%s_count", name);
    ms_metrics_u64(m, series_name, labels, h->count);
}

/* ---- process_* ------------------------------------------------------------------------- */

/* Fields of /proc/self/stat (proc(5)) the process metrics need. */
struct proc_stat {
    unsigned long long utime, stime, starttime, vsize;
    long long rss;
};

static bool read_proc_stat(struct proc_stat *ps)
{
    char buf[2048], *p;
    FILE *f = fopen("/proc/self/stat", "r");
    size_t n;
    int got;

    if (f == NULL) {
        return false;
    }
    n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = '\0';
    /* the command name may hold spaces and parentheses: fields start after the last ')' */
    p = strrchr(buf, ')');
    if (p == NULL) {
        return false;
    }
    /* fields 3.. : state ppid pgrp session tty_nr tpgid flags minflt cminflt majflt cmajflt
     * utime(14) stime(15) cutime cstime priority nice num_threads itrealvalue starttime(22)
     * vsize(23) rss(24) */
    got = sscanf(p + 1,
                 " %*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu %*d %*d %*d %*d %*d "
                 "%*d %llu %llu %lld",
                 &ps->utime, &ps->stime, &ps->starttime, &ps->vsize, &ps->rss);
    return got == 5;
}

/* Boot time (btime of /proc/stat), seconds since the epoch; 0 when unknown. */
static long long boot_time(void)
{
    char line[256];
    long long bt = 0;
    FILE *f = fopen("/proc/stat", "r");

    if (f == NULL) {
        return 0;
    }
    while (fgets(line, sizeof(line), f) != NULL) {
        if (strncmp(line, "btime ", 6) == 0) {
            bt = strtoll(line + 6, NULL, 10);
            break;
        }
    }
    fclose(f);
    return bt;
}

static long open_fds(void)
{
    DIR *d = opendir("/proc/self/fd");
    struct dirent *e;
    long n = 0;

    if (d == NULL) {
        return -1;
    }
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] != '.') {
            n++;
        }
    }
    closedir(d);
    return n > 0 ? n - 1 : 0; /* the directory's own descriptor */
}

void ms_metrics_process(struct ms_metrics *m)
{
    struct proc_stat ps;
    long ticks = sysconf(_SC_CLK_TCK), page = sysconf(_SC_PAGESIZE), fds = open_fds();
    long long bt = boot_time();
    struct rlimit rl;

    if (ticks <= 0) {
        ticks = 100;
    }
    if (read_proc_stat(&ps)) {
        ms_metrics_family(m, "process_cpu_seconds_total", "counter",
                          "Total user and system CPU time spent in seconds.");
        ms_metrics_double(m, "process_cpu_seconds_total", NULL,
                          (double)(ps.utime + ps.stime) / (double)ticks);
        ms_metrics_family(m, "process_resident_memory_bytes", "gauge",
                          "Resident memory size in bytes.");
        ms_metrics_u64(m, "process_resident_memory_bytes", NULL,
                       ps.rss > 0 ? (uint64_t)ps.rss * (uint64_t)(page > 0 ? page : 4096) : 0);
        ms_metrics_family(m, "process_virtual_memory_bytes", "gauge",
                          "Virtual memory size in bytes.");
        ms_metrics_u64(m, "process_virtual_memory_bytes", NULL, ps.vsize);
        if (bt > 0) {
            ms_metrics_family(m, "process_start_time_seconds", "gauge",
                              "Start time of the process since unix epoch in seconds.");
            ms_metrics_double(m, "process_start_time_seconds", NULL,
                              (double)bt + (double)ps.starttime / (double)ticks);
        }
    }
    if (fds >= 0) {
        ms_metrics_family(m, "process_open_fds", "gauge", "Number of open file descriptors.");
        ms_metrics_u64(m, "process_open_fds", NULL, (uint64_t)fds);
    }
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
        ms_metrics_family(m, "process_max_fds", "gauge",
                          "Maximum number of open file descriptors.");
        ms_metrics_double(m, "process_max_fds", NULL,
                          rl.rlim_cur == RLIM_INFINITY ? INFINITY : (double)rl.rlim_cur);
    }
}

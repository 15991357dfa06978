#include "mysync/log.h"

#include <bson/bson.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#define MAX_SECRETS 16

static _Atomic int log_level = MS_LOG_INFO;
static _Atomic int log_format = MS_LOG_FORMAT_TEXT;
static FILE *log_stream;
static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;
static char *secrets[MAX_SECRETS];
static size_t nsecrets;

static const char *const level_names[] = {"error", "warn", "info", "debug", "trace"};

void ms_log_set_level(enum ms_log_level level)
{
    atomic_store(&log_level, (int)level);
}

void ms_log_set_format(enum ms_log_format format)
{
    atomic_store(&log_format, (int)format);
}

enum ms_log_level ms_log_get_level(void)
{
    return (enum ms_log_level)atomic_load(&log_level);
}

void ms_log_set_stream(FILE *stream)
{
    pthread_mutex_lock(&log_lock);
    log_stream = stream;
    pthread_mutex_unlock(&log_lock);
}

void ms_log_add_secret(const char *secret)
{
    if (secret == NULL || secret[0] == '\0') {
        return;
    }
    pthread_mutex_lock(&log_lock);
    for (size_t i = 0; i < nsecrets; i++) {
        if (strcmp(secrets[i], secret) == 0) {
            goto done;
        }
    }
    if (nsecrets < MAX_SECRETS) {
        secrets[nsecrets++] = strdup(secret);
    }
done:
    pthread_mutex_unlock(&log_lock);
}

void ms_log_clear_secrets(void)
{
    pthread_mutex_lock(&log_lock);
    for (size_t i = 0; i < nsecrets; i++) {
        free(secrets[i]);
        secrets[i] = NULL;
    }
    nsecrets = 0;
    pthread_mutex_unlock(&log_lock);
}

/* Caller holds log_lock (or accepts a racy read during set-up). */
static void redact_locked(const char *s, char *out, size_t outsz)
{
    size_t o = 0;

    if (outsz == 0) {
        return;
    }
    while (*s != '\0' && o + 1 < outsz) {
        size_t hit = 0;
        for (size_t i = 0; i < nsecrets; i++) {
            size_t n = strlen(secrets[i]);
            if (n > hit && strncmp(s, secrets[i], n) == 0) {
                hit = n;
            }
        }
        if (hit > 0) {
            for (const char *r = "***"; *r != '\0' && o + 1 < outsz; r++) {
                out[o++] = *r;
            }
            s += hit;
        } else {
            out[o++] = *s++;
        }
    }
    out[o] = '\0';
}

void ms_log_redact(const char *s, char *out, size_t outsz)
{
    pthread_mutex_lock(&log_lock);
    redact_locked(s, out, outsz);
    pthread_mutex_unlock(&log_lock);
}

bool ms_log_level_parse(const char *name, enum ms_log_level *out)
{
    for (size_t i = 0; i < sizeof(level_names) / sizeof(level_names[0]); i++) {
        if (strcasecmp(name, level_names[i]) == 0) {
            *out = (enum ms_log_level)i;
            return true;
        }
    }
    if (strcasecmp(name, "warning") == 0) {
        *out = MS_LOG_WARN;
        return true;
    }
    return false;
}

const char *ms_log_level_name(enum ms_log_level level)
{
    if ((int)level >= 0 && (size_t)level < sizeof(level_names) / sizeof(level_names[0])) {
        return level_names[level];
    }
    return "unknown";
}

static void format_time(char *buf, size_t n)
{
    struct timespec ts;
    struct tm tm;

    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    snprintf(buf, n, "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ", tm.tm_year + 1900, tm.tm_mon + 1,
             tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, ts.tv_nsec / 1000000L);
}

/* Appends a text-format value, quoted when it holds spaces, quotes or '='. */
static void text_value(bson_string_t *line, const char *v)
{
    if (strpbrk(v, " \t\"=") == NULL && v[0] != '\0') {
        bson_string_append(line, v);
        return;
    }
    bson_string_append_c(line, '"');
    for (; *v != '\0'; v++) {
        if (*v == '"' || *v == '\\') {
            bson_string_append_c(line, '\\');
        }
        bson_string_append_c(line, *v);
    }
    bson_string_append_c(line, '"');
}

void ms_log_emit(enum ms_log_level level, const char *component, const struct ms_log_field *fields,
                 size_t nfields, const char *fmt, ...)
{
    char raw[2048], msg[2048], when[40], val[1024];
    va_list ap;
    FILE *out;

    va_start(ap, fmt);
    vsnprintf(raw, sizeof(raw), fmt, ap);
    va_end(ap);
    format_time(when, sizeof(when));

    pthread_mutex_lock(&log_lock);
    out = log_stream != NULL ? log_stream : stderr;
    redact_locked(raw, msg, sizeof(msg));

    if (atomic_load(&log_format) == MS_LOG_FORMAT_JSON) {
        bson_t doc = BSON_INITIALIZER;
        char *json;

        BSON_APPEND_UTF8(&doc, "ts", when);
        BSON_APPEND_UTF8(&doc, "level", ms_log_level_name(level));
        BSON_APPEND_UTF8(&doc, "component", component);
        BSON_APPEND_UTF8(&doc, "msg", msg);
        for (size_t i = 0; i < nfields; i++) {
            switch (fields[i].type) {
            case MS_LOG_FIELD_STR:
                redact_locked(fields[i].v.s != NULL ? fields[i].v.s : "", val, sizeof(val));
                BSON_APPEND_UTF8(&doc, fields[i].key, val);
                break;
            case MS_LOG_FIELD_INT:
                BSON_APPEND_INT64(&doc, fields[i].key, fields[i].v.i);
                break;
            case MS_LOG_FIELD_DOUBLE:
                BSON_APPEND_DOUBLE(&doc, fields[i].key, fields[i].v.d);
                break;
            }
        }
        json = bson_as_relaxed_extended_json(&doc, NULL);
        if (json != NULL) {
            fprintf(out, "%s\n", json);
            bson_free(json);
        }
        bson_destroy(&doc);
    } else {
        bson_string_t *line = bson_string_new(NULL);

        bson_string_append_printf(line, "%s %-5s [%s] %s", when, ms_log_level_name(level),
                                  component, msg);
        for (size_t i = 0; i < nfields; i++) {
            bson_string_append_printf(line, " %s=", fields[i].key);
            switch (fields[i].type) {
            case MS_LOG_FIELD_STR:
                redact_locked(fields[i].v.s != NULL ? fields[i].v.s : "", val, sizeof(val));
                text_value(line, val);
                break;
            case MS_LOG_FIELD_INT:
                bson_string_append_printf(line, "%" PRId64, fields[i].v.i);
                break;
            case MS_LOG_FIELD_DOUBLE:
                bson_string_append_printf(line, "%.3f", fields[i].v.d);
                break;
            }
        }
        fprintf(out, "%s\n", line->str);
        bson_string_free(line, true);
    }
    fflush(out);
    pthread_mutex_unlock(&log_lock);
}

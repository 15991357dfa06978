/* Logging to stderr, text or JSON lines (after redis's serverLog: the level is checked
 * before anything is formatted). Each .c file defines MS_LOG_DOMAIN before including this
 * header; it becomes the "component" of every line. */
#ifndef MYSYNC_LOG_H
#define MYSYNC_LOG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

enum ms_log_level {
    MS_LOG_ERROR = 0,
    MS_LOG_WARN = 1,
    MS_LOG_INFO = 2,
    MS_LOG_DEBUG = 3,
    MS_LOG_TRACE = 4,
};

enum ms_log_format {
    MS_LOG_FORMAT_TEXT = 0,
    MS_LOG_FORMAT_JSON = 1,
};

enum ms_log_field_type {
    MS_LOG_FIELD_STR,
    MS_LOG_FIELD_INT,
    MS_LOG_FIELD_DOUBLE,
};

/* A structured field: table, op, rows, duration_ms, ... (JSON keys, or key=value in text). */
struct ms_log_field {
    const char *key;
    enum ms_log_field_type type;
    union {
        const char *s;
        int64_t i;
        double d;
    } v;
};

#define MS_LF_STR(k, val)                                                                          \
    ((struct ms_log_field){.key = (k), .type = MS_LOG_FIELD_STR, .v.s = (val)})
#define MS_LF_INT(k, val)                                                                          \
    ((struct ms_log_field){.key = (k), .type = MS_LOG_FIELD_INT, .v.i = (val)})
#define MS_LF_DBL(k, val)                                                                          \
    ((struct ms_log_field){.key = (k), .type = MS_LOG_FIELD_DOUBLE, .v.d = (val)})

/* Level and format may change at run time (SIGHUP); both are atomic. */
void ms_log_set_level(enum ms_log_level level);
void ms_log_set_format(enum ms_log_format format);
enum ms_log_level ms_log_get_level(void);

/* Redirects output (tests); NULL restores stderr. The stream is borrowed. */
void ms_log_set_stream(FILE *stream);

/* Registers a secret (copied): every occurrence in a message or field is written as "***".
 * A defence in depth: code should not pass secrets to the log in the first place. */
void ms_log_add_secret(const char *secret);
void ms_log_clear_secrets(void);

/* Copies s to out (size outsz) with every registered secret replaced by "***". */
void ms_log_redact(const char *s, char *out, size_t outsz);

bool ms_log_level_parse(const char *name, enum ms_log_level *out);
const char *ms_log_level_name(enum ms_log_level level);

static inline bool ms_log_enabled(enum ms_log_level level)
{
    return level <= ms_log_get_level();
}

void ms_log_emit(enum ms_log_level level, const char *component, const struct ms_log_field *fields,
                 size_t nfields, const char *fmt, ...) __attribute__((format(printf, 5, 6)));

#define ms_log(level, ...)                                                                         \
    do {                                                                                           \
        if (ms_log_enabled(level)) {                                                               \
            ms_log_emit((level), MS_LOG_DOMAIN, NULL, 0, __VA_ARGS__);                             \
        }                                                                                          \
    } while (0)

/* ms_log_kv(MS_LOG_INFO, ((struct ms_log_field[]){MS_LF_STR("table", t), MS_LF_INT("rows", n)}),
 *           "batch written") */
#define ms_log_kv(level, fields, ...)                                                              \
    do {                                                                                           \
        if (ms_log_enabled(level)) {                                                               \
            ms_log_emit((level), MS_LOG_DOMAIN, (fields), sizeof(fields) / sizeof((fields)[0]),    \
                        __VA_ARGS__);                                                              \
        }                                                                                          \
    } while (0)

#endif

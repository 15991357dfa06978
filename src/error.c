#include "mysync/error.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

void ms_error_set(struct ms_error *err, uint32_t domain, uint32_t code, const char *fmt, ...)
{
    va_list ap;

    if (err == NULL) {
        return;
    }
    err->domain = domain;
    err->code = code;
    err->retryable = false;
    va_start(ap, fmt);
    vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
    va_end(ap);
}

void ms_error_clear(struct ms_error *err)
{
    if (err != NULL) {
        memset(err, 0, sizeof(*err));
    }
}

void ms_error_prefix(struct ms_error *err, const char *fmt, ...)
{
    char prefix[128];
    char old[sizeof(err->msg)];
    va_list ap;

    if (err == NULL) {
        return;
    }
    va_start(ap, fmt);
    vsnprintf(prefix, sizeof(prefix), fmt, ap);
    va_end(ap);
    memcpy(old, err->msg, sizeof(old));
    snprintf(err->msg, sizeof(err->msg), "%s: %s", prefix, old);
}

const char *ms_error_domain_name(uint32_t domain)
{
    static const char *const names[] = {
        [MS_ERR_NONE] = "none",     [MS_ERR_CONFIG] = "config", [MS_ERR_MYSQL] = "mysql",
        [MS_ERR_MONGO] = "mongodb", [MS_ERR_DECODE] = "decode", [MS_ERR_STRATEGY] = "strategy",
        [MS_ERR_HTTP] = "http",     [MS_ERR_SYSTEM] = "system",
    };

    if (domain < sizeof(names) / sizeof(names[0]) && names[domain] != NULL) {
        return names[domain];
    }
    return "unknown";
}

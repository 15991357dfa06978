/* Errors as out-parameters, after libbson's bson_error_t (../shared/STYLE.md). */
#ifndef MYSYNC_ERROR_H
#define MYSYNC_ERROR_H

#include <stdbool.h>
#include <stdint.h>

/* Where an error comes from. The numeric values are stable: they appear in logs. */
enum ms_error_domain {
    MS_ERR_NONE = 0,
    MS_ERR_CONFIG = 1,   /* configuration file, environment, command line */
    MS_ERR_MYSQL = 2,    /* the source server (libmariadb) */
    MS_ERR_MONGO = 3,    /* the sink server (libmongoc) */
    MS_ERR_DECODE = 4,   /* binlog events and row images */
    MS_ERR_STRATEGY = 5, /* mapping rows to documents */
    MS_ERR_HTTP = 6,     /* control plane */
    MS_ERR_SYSTEM = 7,   /* files, memory, threads (errno) */
};

/* Codes inside a domain. CONFIG codes are ours; MYSQL and MONGO codes carry the
 * server's own error number (mysql_errno(), bson_error_t.code). */
enum ms_config_code {
    MS_CONFIG_SYNTAX = 1,      /* YAML does not parse */
    MS_CONFIG_UNKNOWN_KEY = 2, /* key not in the option table */
    MS_CONFIG_BAD_VALUE = 3,   /* value of the wrong type or out of range */
    MS_CONFIG_MISSING = 4,     /* a required value is absent */
    MS_CONFIG_IO = 5,          /* a file named by the configuration cannot be read */
};

/* MS_ERR_DECODE codes (binlog events, row images, JSON). */
enum ms_decode_code {
    MS_DECODE_MALFORMED = 1,    /* truncated or impossible bytes, bad metadata, CRC mismatch */
    MS_DECODE_SCHEMA = 2,       /* a rows event and its table map disagree */
    MS_DECODE_CHARSET = 3,      /* a string that is not valid in its character set */
    MS_DECODE_UNSUPPORTED = 4,  /* a type, collation or format this build does not decode */
    MS_DECODE_CANNOT_APPLY = 5, /* a JSON diff does not apply to the before image: re-read */
};

struct ms_error {
    uint32_t domain;
    uint32_t code;
    bool retryable; /* the top loop may retry the operation after a backoff */
    char msg[256];
};

/* Sets *err (when err is non-NULL); msg is printf-formatted and truncated to fit. */
void ms_error_set(struct ms_error *err, uint32_t domain, uint32_t code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Clears *err (when non-NULL). */
void ms_error_clear(struct ms_error *err);

/* Prefixes the message of an already set error: "prefix: old message". */
void ms_error_prefix(struct ms_error *err, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Stable lower-case name of a domain ("config", "mysql", ...). */
const char *ms_error_domain_name(uint32_t domain);

#endif

/* Fuzz drivers: shared by the libFuzzer harnesses and the unit tests that replay artifacts.
 * A driver aborts when the code under test breaks a property it promises; the sanitizers
 * catch the rest. */
#ifndef MYSYNC_FUZZ_DRIVER_H
#define MYSYNC_FUZZ_DRIVER_H

#include <bson/bson.h>
#include <stddef.h>
#include <stdint.h>

/* Parses data as binlog events (a file's magic is skipped), decoding every row image. */
void ms_fuzz_binlog_one(const uint8_t *data, size_t size);

/* Binary JSON, text JSON and JSON diffs. */
void ms_fuzz_mysqljson_one(const uint8_t *data, size_t size);

/* A YAML configuration file (and, after a NUL, NUL-separated environment entries). */
void ms_fuzz_config_one(const uint8_t *data, size_t size);

/* The SQL of a QUERY event through ms_schema_parse_ddl. */
void ms_fuzz_ddl_one(const uint8_t *data, size_t size);

/* Reports a broken property on stderr and aborts (libFuzzer saves the input as a crash). */
void ms_fuzz_fail(const char *fmt, ...) __attribute__((noreturn, format(printf, 1, 2)));

/* Aborts unless doc is valid BSON with UTF-8 strings and ms_extjson_append writes exactly
 * libbson's relaxed Extended JSON for it (or declines it). */
void ms_fuzz_check_doc(const bson_t *doc);

#endif

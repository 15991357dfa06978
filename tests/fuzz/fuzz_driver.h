/* Fuzz drivers: shared by the libFuzzer harnesses and the unit tests that replay artifacts. */
#ifndef MYSYNC_FUZZ_DRIVER_H
#define MYSYNC_FUZZ_DRIVER_H

#include <stddef.h>
#include <stdint.h>

/* Parses data as binlog events (a file's magic is skipped), decoding every row image. */
void ms_fuzz_binlog_one(const uint8_t *data, size_t size);

/* Binary JSON, text JSON and JSON diffs. */
void ms_fuzz_mysqljson_one(const uint8_t *data, size_t size);

/* A YAML configuration file (and, after a NUL, one environment entry). */
void ms_fuzz_config_one(const uint8_t *data, size_t size);

#endif

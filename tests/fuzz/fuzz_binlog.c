/* libFuzzer entry point for tests/fuzz/binlog_driver.c. Build: CC=clang meson setup
 * build-fuzz -Dfuzz=true -Dtests=false -Db_sanitize=address,undefined -Db_lundef=false;
 * run: build-fuzz/fuzz_binlog CORPUS_DIR (seeds: ../shared/binlogs, tests/data/binlogs).
 * Every artifact it finds goes to tests/data/fuzz/ and is replayed by test_binlog. */
#include <stddef.h>
#include <stdint.h>

#include "fuzz_driver.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    ms_fuzz_binlog_one(data, size);
    return 0;
}

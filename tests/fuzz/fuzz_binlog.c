/* libFuzzer entry point for tests/fuzz/binlog_driver.c. tests/fuzz/run.sh builds and runs
 * every harness (build-fuzz: CC=clang, -Dfuzz=true, ASan + UBSan) on seeds made by
 * tests/fuzz/seeds.sh (here: the binlog files of tests/data/binlogs and ../shared/binlogs).
 * Every artifact it finds goes to tests/data/fuzz/binlog-*.bin and is replayed by test_binlog. */
#include <stddef.h>
#include <stdint.h>

#include "fuzz_driver.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    ms_fuzz_binlog_one(data, size);
    return 0;
}

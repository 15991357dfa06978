/* libFuzzer entry point for tests/fuzz/ddl_driver.c (see fuzz_binlog.c for building and
 * running; seeds: test_schema's statements). Every artifact it finds goes to
 * tests/data/fuzz/ddl-*.bin and is replayed by test_schema. */
#include <stddef.h>
#include <stdint.h>

#include "fuzz_driver.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    ms_fuzz_ddl_one(data, size);
    return 0;
}

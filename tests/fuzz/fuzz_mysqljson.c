/* libFuzzer entry point for tests/fuzz/mysqljson_driver.c (see fuzz_binlog.c for building and
 * running; seeds: test_mysqljson's vectors). Every artifact it finds goes to
 * tests/data/fuzz/mysqljson-*.bin and is replayed by test_mysqljson. */
#include <stddef.h>
#include <stdint.h>

#include "fuzz_driver.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    ms_fuzz_mysqljson_one(data, size);
    return 0;
}

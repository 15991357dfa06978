/* libFuzzer entry point for tests/fuzz/config_driver.c (see fuzz_binlog.c for building and
 * running; seeds: test_config's vectors). Every artifact it finds goes to
 * tests/data/fuzz/config-*.bin and is replayed by test_config. */
#include <stddef.h>
#include <stdint.h>

#include "fuzz_driver.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    ms_fuzz_config_one(data, size);
    return 0;
}

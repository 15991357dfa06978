/* libFuzzer entry point for tests/fuzz/config_driver.c (see fuzz_binlog.c for building and
 * running). No artifact yet: the first one goes to tests/data/fuzz/config-*.bin, with a replay
 * in test_config like test_binlog's fuzz_artifacts_replay. */
#include <stddef.h>
#include <stdint.h>

#include "fuzz_driver.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    ms_fuzz_config_one(data, size);
    return 0;
}

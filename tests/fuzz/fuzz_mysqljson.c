/* libFuzzer entry point for tests/fuzz/mysqljson_driver.c (see fuzz_binlog.c for building and
 * running). No artifact yet: the first one goes to tests/data/fuzz/mysqljson-*.bin, with a replay
 * in test_mysqljson like test_binlog's fuzz_artifacts_replay. */
#include <stddef.h>
#include <stdint.h>

#include "fuzz_driver.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    ms_fuzz_mysqljson_one(data, size);
    return 0;
}

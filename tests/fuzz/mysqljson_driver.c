/* Arbitrary bytes through the JSON decoders: MySQL binary JSON, text JSON, and JSON diffs
 * applied to the decoded value (the first byte splits the input between value and diff). */
#include <stdlib.h>
#include <string.h>

#include "fuzz_driver.h"
#include "mysync/mysqljson.h"

void ms_fuzz_mysqljson_one(const uint8_t *data, size_t size)
{
    struct ms_error err = {0};
    bson_t doc = BSON_INITIALIZER, after;
    size_t split = size > 0 ? data[0] % (size + 1) : 0;
    uint8_t *copy = malloc(size + 1);

    memcpy(copy, data, size); /* exact-size heap copies: ASan sees overreads */
    ms_mysqljson_to_bson(copy, size, &doc, "v", &err);
    ms_textjson_to_bson((const char *)copy, size, &doc, "t", &err);
    if (split > 1) {
        bson_t before = BSON_INITIALIZER;
        if (ms_mysqljson_to_bson(copy + 1, split - 1, &before, "v", &err)) {
            if (ms_mysqljson_apply_diffs(&before, "v", copy + split, size - split, &after, &err)) {
                bson_destroy(&after);
            } else {
                bson_destroy(&after);
            }
        }
        bson_destroy(&before);
    }
    bson_destroy(&doc);
    free(copy);
}

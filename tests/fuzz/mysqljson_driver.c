/* Arbitrary bytes through the JSON decoders: MySQL binary JSON, text JSON, and JSON diffs
 * applied to the decoded value (the first byte splits the input between value and diff).
 * A decoder either appends a well-formed value (ms_fuzz_check_doc) or fails with a decode
 * error and leaves its parent as it was. */
#include <stdlib.h>
#include <string.h>

#include "fuzz_driver.h"
#include "mysync/mysqljson.h"

static void check(bool ok, const bson_t *parent, uint32_t len_before, const struct ms_error *err)
{
    if (!ok && (parent->len != len_before || err->domain != MS_ERR_DECODE || err->msg[0] == '\0')) {
        ms_fuzz_fail(
            "a refusal changed its parent (%u -> %u bytes) or set no decode error (%u: %s)",
            len_before, parent->len, err->domain, err->msg);
    }
    ms_fuzz_check_doc(parent);
}

void ms_fuzz_mysqljson_one(const uint8_t *data, size_t size)
{
    struct ms_error err = {0};
    bson_t doc = BSON_INITIALIZER, after;
    size_t split = size > 0 ? data[0] % (size + 1) : 0;
    uint8_t *copy = malloc(size > 0 ? size : 1);
    uint32_t len;
    bool ok;

    /* exact-size heap copies: ASan sees overreads */
    memcpy(copy, data, size);
    len = doc.len;
    ms_error_clear(&err);
    ok = ms_mysqljson_to_bson(copy, size, &doc, "v", &err);
    check(ok, &doc, len, &err);
    len = doc.len;
    ms_error_clear(&err);
    ok = ms_textjson_to_bson((const char *)copy, size, &doc, "t", &err);
    check(ok, &doc, len, &err);
    if (split > 1) {
        bson_t before = BSON_INITIALIZER;
        if (ms_mysqljson_to_bson(copy + 1, split - 1, &before, "v", &err)) {
            ms_error_clear(&err);
            ok = ms_mysqljson_apply_diffs(&before, "v", copy + split, size - split, &after, &err);
            if (ok) {
                ms_fuzz_check_doc(&after);
            } else if (err.domain != MS_ERR_DECODE) {
                ms_fuzz_fail("a diff failed without a decode error (%u: %s)", err.domain, err.msg);
            }
            bson_destroy(&after);
        }
        bson_destroy(&before);
    }
    bson_destroy(&doc);
    free(copy);
}

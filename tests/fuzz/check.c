/* The properties every document a decoder hands on must have, checked by the fuzz drivers
 * (and so by the unit tests replaying their artifacts). A violation is reported and aborts:
 * libFuzzer saves the input as a crash. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_driver.h"
#include "mysync/extjson.h"

static void dump_and_abort(const char *what, const bson_t *doc, size_t off)
{
    const uint8_t *p = bson_get_data(doc);

    fprintf(stderr, "fuzz check: %s (document of %u bytes, offset %zu):\n", what, doc->len, off);
    for (size_t i = off > 32 ? off - 32 : 0; i < doc->len && i < off + 32; i++) {
        fprintf(stderr, "%s%02x", i == off ? " [" : " ", p[i]);
    }
    fprintf(stderr, "\n");
    abort();
}

void ms_fuzz_check_doc(const bson_t *doc)
{
    struct ms_buf b = {0};
    size_t off = 0;
    char *want;

    /* MongoDB refuses strings that are not UTF-8; JSON's \u0000 makes NULs legal in them */
    if (!bson_validate(doc, BSON_VALIDATE_UTF8 | BSON_VALIDATE_UTF8_ALLOW_NULL, &off)) {
        dump_and_abort("not valid BSON with UTF-8 strings", doc, off);
    }
    /* binlog-dump's writer declines a type it does not handle, else writes libbson's bytes */
    want = bson_as_relaxed_extended_json(doc, NULL);
    if (want == NULL) {
        dump_and_abort("libbson cannot write it as Extended JSON", doc, 0);
    }
    if (ms_extjson_append(&b, doc) && (b.len != strlen(want) || memcmp(b.p, want, b.len) != 0)) {
        fprintf(stderr, "fuzz check: ms_extjson_append wrote\n  %.*s\nlibbson\n  %s\n", (int)b.len,
                b.p, want);
        abort();
    }
    bson_free(want);
    ms_buf_free(&b);
}

/* The properties every document a decoder hands on must have, checked by the fuzz drivers
 * (and so by the unit tests replaying their artifacts). A violation is reported and aborts:
 * libFuzzer saves the input as a crash. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_driver.h"
#include "mysync/extjson.h"

void ms_fuzz_fail(const char *fmt, ...)
{
    va_list ap;

    fprintf(stderr, "fuzz check: ");
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\n");
    abort();
}

static void violated(const char *what, const char *s, size_t n)
{
    char hex[3 * 64 + 1] = "";

    for (size_t i = 0; i < n && i < 64; i++) {
        snprintf(hex + 3 * i, sizeof(hex) - 3 * i, " %02x", (unsigned char)s[i]);
    }
    ms_fuzz_fail("%s:%s", what, hex);
}

/* Every key and string is UTF-8 (NULs allowed in strings, as JSON's \u0000): MongoDB refuses
 * anything else. (bson_validate's BSON_VALIDATE_UTF8 lets "\xf6" through in libbson 1.23.) */
static void check_utf8(bson_iter_t *it)
{
    while (bson_iter_next(it)) {
        const char *key = bson_iter_key(it), *s;
        bson_iter_t child;
        uint32_t n;

        if (!bson_utf8_validate(key, strlen(key), false)) {
            violated("a key is not UTF-8", key, strlen(key));
        }
        if (BSON_ITER_HOLDS_UTF8(it)) {
            s = bson_iter_utf8(it, &n);
            /* (allow_null also lets the overlong NUL "\xc0\x80" through) */
            if (!bson_utf8_validate(s, n, true) || memchr(s, 0xc0, n) != NULL) {
                violated("a string is not UTF-8", s, n);
            }
        } else if ((BSON_ITER_HOLDS_DOCUMENT(it) || BSON_ITER_HOLDS_ARRAY(it)) &&
                   bson_iter_recurse(it, &child)) {
            check_utf8(&child);
        }
    }
}

void ms_fuzz_check_doc(const bson_t *doc)
{
    struct ms_buf b = {0};
    bson_iter_t it;
    size_t off = 0;
    char *want;

    if (!bson_validate(doc, BSON_VALIDATE_NONE, &off) || !bson_iter_init(&it, doc)) {
        violated("not valid BSON", (const char *)bson_get_data(doc) + off, doc->len - off);
    }
    check_utf8(&it);
    /* binlog-dump's writer declines a type it does not handle, else writes libbson's bytes */
    want = bson_as_relaxed_extended_json(doc, NULL);
    if (want == NULL) {
        violated("libbson cannot write it as Extended JSON", (const char *)bson_get_data(doc),
                 doc->len);
    }
    if (ms_extjson_append(&b, doc) && (b.len != strlen(want) || memcmp(b.p, want, b.len) != 0)) {
        ms_fuzz_fail("ms_extjson_append wrote\n  %.*s\nlibbson\n  %s", (int)b.len, b.p, want);
    }
    bson_free(want);
    ms_buf_free(&b);
}

/* Documents as values (include/mysync/bsonutil.h). */
#include "mysync/bsonutil.h"

#include <stdlib.h>
#include <string.h>

struct kv {
    const char *key;
    bson_iter_t it;
};

static int kv_cmp(const void *a, const void *b)
{
    return strcmp(((const struct kv *)a)->key, ((const struct kv *)b)->key);
}

static void canon_into(bson_t *out, const bson_t *in, bool array, bool numbers);

static void canon_value(bson_t *out, const char *key, const bson_iter_t *it, bool numbers)
{
    if (numbers && (BSON_ITER_HOLDS_INT32(it) || BSON_ITER_HOLDS_INT64(it))) {
        bson_append_int64(out, key, -1, bson_iter_as_int64(it));
        return;
    }
    if (numbers && BSON_ITER_HOLDS_DOUBLE(it)) {
        double d = bson_iter_double(it);
        if (d >= -9223372036854775808.0 && d < 9223372036854775808.0 && d == (double)(int64_t)d) {
            bson_append_int64(out, key, -1, (int64_t)d);
            return;
        }
    }
    if (BSON_ITER_HOLDS_DOCUMENT(it) || BSON_ITER_HOLDS_ARRAY(it)) {
        bool array = BSON_ITER_HOLDS_ARRAY(it);
        const uint8_t *data;
        uint32_t len;
        bson_t in, sub;
        if (array) {
            bson_iter_array(it, &len, &data);
        } else {
            bson_iter_document(it, &len, &data);
        }
        if (!bson_init_static(&in, data, len)) {
            bson_append_iter(out, key, -1, it);
            return;
        }
        if (array) {
            bson_append_array_begin(out, key, -1, &sub);
        } else {
            bson_append_document_begin(out, key, -1, &sub);
        }
        canon_into(&sub, &in, array, numbers);
        if (array) {
            bson_append_array_end(out, &sub);
        } else {
            bson_append_document_end(out, &sub);
        }
        return;
    }
    bson_append_iter(out, key, -1, it);
}

static void canon_into(bson_t *out, const bson_t *in, bool array, bool numbers)
{
    struct kv *v = NULL;
    size_t n = 0, cap = 0;
    bson_iter_t it;

    if (!bson_iter_init(&it, in)) {
        return;
    }
    while (bson_iter_next(&it)) {
        if (n == cap) {
            cap = cap != 0 ? cap * 2 : 16;
            v = realloc(v, cap * sizeof(*v));
            if (v == NULL) {
                abort();
            }
        }
        v[n].key = bson_iter_key(&it);
        v[n].it = it;
        n++;
    }
    if (!array) {
        qsort(v, n, sizeof(*v), kv_cmp);
    }
    for (size_t i = 0; i < n; i++) {
        canon_value(out, v[i].key, &v[i].it, numbers);
    }
    free(v);
}

bson_t *ms_bson_canonical(const bson_t *in)
{
    bson_t *out = bson_new();

    canon_into(out, in, false, false);
    return out;
}

bson_t *ms_bson_canonical_id(const bson_t *in)
{
    bson_t *out = bson_new();

    canon_into(out, in, false, true);
    return out;
}

uint64_t ms_fnv64(uint64_t h, const void *p, size_t n)
{
    const uint8_t *b = p;

    for (size_t i = 0; i < n; i++) {
        h ^= b[i];
        h *= 0x100000001b3ULL;
    }
    return h;
}

uint64_t ms_bson_id_hash(const char *collection, const bson_t *cid)
{
    uint64_t h = ms_fnv64(MS_FNV_BASIS, collection, strlen(collection) + 1);
    return ms_fnv64(h, bson_get_data(cid), cid->len);
}

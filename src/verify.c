/* mysync verify (include/mysync/verify.h): counts, per-chunk hashes, then the differing keys. */
#define MS_LOG_DOMAIN "verify"
#include "mysync/verify.h"

#include <errno.h>
#include <mongoc/mongoc.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "mysync/bsonutil.h"
#include "mysync/clock.h"
#include "mysync/log.h"
#include "mysync/mysql.h"
#include "mysync/pipeline.h"
#include "mysync/sink.h"
#include "mysync/source.h"
#include "mysync/strategy.h"

#define DEFAULT_CHUNK  1000
#define DEFAULT_REPORT 20
#define PROGRESS_MS    5000
#define VALUE_SHOWN    160 /* characters of a value in a report */

/* ---- expected documents ------------------------------------------------------------------ */

/* bson_t members are pointers: a bson_t that outgrew its inline buffer points into itself, and
 * these arrays are sorted and grown. */
struct entry {
    char coll[128];
    bson_t *id;  /* {"_id": v} as the strategy wrote it (the query uses it) */
    bson_t *cid; /* canonical id */
    bson_t *doc; /* the document as the sink would leave it */
    bool present;
    size_t seq; /* order of creation: the later of two equal keys wins */
};

struct entries {
    struct entry *v;
    size_t n, cap;
};

static void entries_clear(struct entries *e)
{
    for (size_t i = 0; i < e->n; i++) {
        bson_destroy(e->v[i].id);
        bson_destroy(e->v[i].cid);
        bson_destroy(e->v[i].doc);
    }
    e->n = 0;
}

static void entries_free(struct entries *e)
{
    entries_clear(e);
    free(e->v);
    e->v = NULL;
    e->cap = 0;
}

static bool id_of(const bson_t *idq, bson_iter_t *out)
{
    return bson_iter_init_find(out, idq, "_id");
}

/* The entry of (coll, id) among e[from..], created empty if none. */
static struct entry *entry_get(struct entries *e, size_t from, const char *coll, const bson_t *idq)
{
    bson_t *cid = ms_bson_canonical(idq);
    struct entry *x;

    for (size_t i = e->n; i > from; i--) {
        x = &e->v[i - 1];
        if (strcmp(x->coll, coll) == 0 && x->cid->len == cid->len &&
            memcmp(bson_get_data(x->cid), bson_get_data(cid), cid->len) == 0) {
            bson_destroy(cid);
            return x;
        }
    }
    if (e->n == e->cap) {
        e->cap = e->cap != 0 ? e->cap * 2 : 1024;
        e->v = realloc(e->v, e->cap * sizeof(*e->v));
        if (e->v == NULL) {
            abort();
        }
    }
    x = &e->v[e->n];
    memset(x, 0, sizeof(*x));
    snprintf(x->coll, sizeof(x->coll), "%s", coll);
    x->id = bson_copy(idq);
    x->cid = cid;
    x->doc = bson_new();
    x->seq = e->n;
    e->n++;
    return x;
}

/* $set of one path ("a" or "a.b.c") in doc, as MongoDB does it. */
static void set_path(bson_t *doc, const char *path, const bson_iter_t *val)
{
    const char *dot = strchr(path, '.');
    size_t klen = dot != NULL ? (size_t)(dot - path) : strlen(path);
    bson_t out = BSON_INITIALIZER, sub;
    bson_iter_t it;
    bool done = false;

    if (bson_iter_init(&it, doc)) {
        while (bson_iter_next(&it)) {
            const char *k = bson_iter_key(&it);
            if (strlen(k) != klen || memcmp(k, path, klen) != 0) {
                bson_append_iter(&out, k, -1, &it);
                continue;
            }
            done = true;
            if (dot == NULL) {
                bson_append_iter(&out, k, (int)klen, val);
                continue;
            }
            bson_init(&sub);
            if (BSON_ITER_HOLDS_DOCUMENT(&it)) {
                const uint8_t *data;
                uint32_t len;
                bson_t in;
                bson_iter_document(&it, &len, &data);
                if (bson_init_static(&in, data, len)) {
                    bson_concat(&sub, &in);
                }
            }
            set_path(&sub, dot + 1, val);
            bson_append_document(&out, k, (int)klen, &sub);
            bson_destroy(&sub);
        }
    }
    if (!done) {
        if (dot == NULL) {
            bson_append_iter(&out, path, (int)klen, val);
        } else {
            bson_init(&sub);
            set_path(&sub, dot + 1, val);
            bson_append_document(&out, path, (int)klen, &sub);
            bson_destroy(&sub);
        }
    }
    bson_reinit(doc);
    bson_concat(doc, &out);
    bson_destroy(&out);
}

/* Applies one row's operations to the entries made since from. */
static void apply_ops(struct entries *e, size_t from, const struct ms_ops *ops)
{
    for (size_t i = 0; i < ops->n; i++) {
        const struct ms_op *op = &ops->v[i];
        struct entry *x;
        bson_iter_t id, f;

        if (op->kind == MS_OP_SET_MANY || !id_of(&op->id, &id)) {
            continue; /* other documents than this row's */
        }
        x = entry_get(e, from, op->collection, &op->id);
        switch (op->kind) {
        case MS_OP_REPLACE:
            bson_reinit(x->doc);
            if (!bson_has_field(&op->doc, "_id")) {
                bson_append_iter(x->doc, "_id", 3, &id);
            }
            bson_concat(x->doc, &op->doc);
            x->present = true;
            break;
        case MS_OP_SET:
            if (!x->present) {
                bson_reinit(x->doc);
                bson_append_iter(x->doc, "_id", 3, &id); /* an upsert */
                x->present = true;
            }
            if (bson_iter_init(&f, &op->doc)) {
                while (bson_iter_next(&f)) {
                    set_path(x->doc, bson_iter_key(&f), &f);
                }
            }
            break;
        case MS_OP_DELETE:
            bson_reinit(x->doc);
            x->present = false;
            break;
        default:
            break;
        }
    }
}

static int entry_cmp(const void *a, const void *b)
{
    const struct entry *x = a, *y = b;
    int c = strcmp(x->coll, y->coll);

    if (c == 0 && x->cid->len != y->cid->len) {
        c = x->cid->len < y->cid->len ? -1 : 1;
    }
    if (c == 0) {
        c = memcmp(bson_get_data(x->cid), bson_get_data(y->cid), x->cid->len);
    }
    if (c == 0 && x->seq != y->seq) {
        c = x->seq < y->seq ? -1 : 1;
    }
    return c;
}

static bool same_key(const struct entry *x, const struct entry *y)
{
    return strcmp(x->coll, y->coll) == 0 && x->cid->len == y->cid->len &&
           memcmp(bson_get_data(x->cid), bson_get_data(y->cid), x->cid->len) == 0;
}

/* Sorted by key, one entry per key (the last written), expected-absent ones dropped. */
static void entries_settle(struct entries *e)
{
    size_t w = 0;

    qsort(e->v, e->n, sizeof(*e->v), entry_cmp);
    for (size_t i = 0; i < e->n; i++) {
        bool last = i + 1 == e->n || !same_key(&e->v[i], &e->v[i + 1]);
        if (!last || !e->v[i].present) {
            bson_destroy(e->v[i].id);
            bson_destroy(e->v[i].cid);
            bson_destroy(e->v[i].doc);
            continue;
        }
        e->v[w++] = e->v[i];
    }
    e->n = w;
}

/* ---- the run ----------------------------------------------------------------------------- */

struct run {
    const struct ms_config *cfg;
    const struct ms_verify_opts *o;
    struct ms_verify_result *res;
    struct ms_pipeline *p;
    struct ms_pipeline_table pt;
    mongoc_client_t *mc;
    struct entries exp; /* this chunk's expected documents */
    uint64_t *keys;     /* hashes of every expected key (extra documents), full runs */
    size_t nkeys, capkeys;
    char **colls; /* collections written */
    size_t ncolls;
    size_t max_report;
    uint64_t rng;
    double sample_p; /* probability of a row being compared (1: all) */
    struct ms_error fail;
    bool failed;
    bson_t missing, different, extra, refused; /* arrays being built */
    uint32_t nmissing, ndifferent, nextra, nrefused;
};

static uint64_t next_rand(uint64_t *s)
{ /* splitmix64 */
    uint64_t z = (*s += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static void note_collection(struct run *r, const char *coll)
{
    for (size_t i = 0; i < r->ncolls; i++) {
        if (strcmp(r->colls[i], coll) == 0) {
            return;
        }
    }
    r->colls = realloc(r->colls, (r->ncolls + 1) * sizeof(*r->colls));
    if (r->colls == NULL || (r->colls[r->ncolls] = strdup(coll)) == NULL) {
        abort();
    }
    r->ncolls++;
    if (r->res->collection[0] == '\0') {
        snprintf(r->res->collection, sizeof(r->res->collection), "%s", coll);
    }
}

static void report_key(bson_t *arr, uint32_t *n, size_t max, const char *coll, const bson_t *idq,
                       const char *reason)
{
    char k[16];
    const char *key;
    bson_t item;
    bson_iter_t id;

    if (*n >= max) {
        return;
    }
    bson_uint32_to_string((*n)++, &key, k, sizeof(k));
    bson_append_document_begin(arr, key, -1, &item);
    if (coll != NULL) {
        BSON_APPEND_UTF8(&item, "collection", coll);
    }
    if (idq != NULL && id_of(idq, &id)) {
        bson_append_iter(&item, "_id", 3, &id);
    }
    if (reason != NULL) {
        BSON_APPEND_UTF8(&item, "reason", reason);
    }
    bson_append_document_end(arr, &item);
}

/* A value as relaxed extended JSON, cut to VALUE_SHOWN characters. */
static void value_text(const bson_iter_t *it, char *out, size_t outsz)
{
    bson_t d = BSON_INITIALIZER;
    char *j;
    size_t len;

    if (it == NULL) {
        snprintf(out, outsz, "(absent)");
        bson_destroy(&d);
        return;
    }
    bson_append_iter(&d, "v", 1, it);
    j = bson_as_relaxed_extended_json(&d, &len);
    if (j != NULL && len > 8) { /* { "v" : X } */
        const char *v = j + 8;
        size_t vl = len - 8 - 2;
        if (vl > VALUE_SHOWN) {
            snprintf(out, outsz, "%.*s...", VALUE_SHOWN, v);
        } else {
            snprintf(out, outsz, "%.*s", (int)vl, v);
        }
    } else {
        snprintf(out, outsz, "?");
    }
    bson_free(j);
    bson_destroy(&d);
}

static bool value_equal(const bson_iter_t *a, const bson_iter_t *b)
{
    bson_t x = BSON_INITIALIZER, y = BSON_INITIALIZER;
    bool eq;

    /* the raw encodings, through one-field documents */
    bson_append_iter(&x, "v", 1, a);
    bson_append_iter(&y, "v", 1, b);
    eq = x.len == y.len && memcmp(bson_get_data(&x), bson_get_data(&y), x.len) == 0;
    bson_destroy(&x);
    bson_destroy(&y);
    return eq;
}

/* The differing top-level fields of two canonical documents, into fields (an array). */
static void diff_fields(const bson_t *want, const bson_t *got, bson_t *fields)
{
    bson_iter_t a, b;
    uint32_t n = 0;
    char k[16], sv[VALUE_SHOWN + 8], dv[VALUE_SHOWN + 8];
    const char *key;

    if (bson_iter_init(&a, want)) {
        while (bson_iter_next(&a)) {
            bool has = bson_iter_init_find(&b, got, bson_iter_key(&a));
            if (has && value_equal(&a, &b)) {
                continue;
            }
            bson_t f;
            value_text(&a, sv, sizeof(sv));
            value_text(has ? &b : NULL, dv, sizeof(dv));
            bson_uint32_to_string(n++, &key, k, sizeof(k));
            bson_append_document_begin(fields, key, -1, &f);
            BSON_APPEND_UTF8(&f, "field", bson_iter_key(&a));
            BSON_APPEND_UTF8(&f, "source", sv);
            BSON_APPEND_UTF8(&f, "document", dv);
            bson_append_document_end(fields, &f);
        }
    }
    if (bson_iter_init(&b, got)) {
        while (bson_iter_next(&b)) {
            if (bson_iter_init_find(&a, want, bson_iter_key(&b))) {
                continue;
            }
            bson_t f;
            value_text(&b, dv, sizeof(dv));
            bson_uint32_to_string(n++, &key, k, sizeof(k));
            bson_append_document_begin(fields, key, -1, &f);
            BSON_APPEND_UTF8(&f, "field", bson_iter_key(&b));
            BSON_APPEND_UTF8(&f, "source", "(absent)");
            BSON_APPEND_UTF8(&f, "document", dv);
            bson_append_document_end(fields, &f);
        }
    }
}

struct found {
    bson_t *cid, *doc; /* canonical */
};

static int found_cmp(const void *a, const void *b)
{
    const struct found *x = a, *y = b;

    if (x->cid->len != y->cid->len) {
        return x->cid->len < y->cid->len ? -1 : 1;
    }
    return memcmp(bson_get_data(x->cid), bson_get_data(y->cid), x->cid->len);
}

static uint64_t doc_hash(const bson_t *cid, const bson_t *cdoc)
{
    uint64_t a = ms_fnv64(MS_FNV_BASIS, bson_get_data(cid), cid->len);
    uint64_t b = ms_fnv64(MS_FNV_BASIS, bson_get_data(cdoc), cdoc->len);
    return a ^ (b * 0x9e3779b97f4a7c15ULL);
}

/* Compares the entries [lo, hi) (one collection, sorted by key) with MongoDB. */
static bool compare_collection(struct run *r, size_t lo, size_t hi, bool *differ,
                               struct ms_error *err)
{
    const char *coll = r->exp.v[lo].coll;
    mongoc_collection_t *c = mongoc_client_get_collection(r->mc, r->cfg->mongodb_database, coll);
    bson_t filter = BSON_INITIALIZER, in, arr;
    const bson_t *doc;
    mongoc_cursor_t *cur;
    struct found *f = NULL;
    size_t nf = 0, capf = hi - lo + 1;
    uint64_t hexp = 0, hgot = 0;
    bson_error_t berr;
    bool ok = true;

    /* {_id: {$in: [...]}}; for composite keys (documents) {$or: [{_id: ...}, ...]}:
     * mongo-java-server's _id index loses entries after an $in of documents (measured with
     * 1.47.0: a third of the keys no longer found by equality afterwards) */
    bson_iter_t first;
    bool docs = id_of(r->exp.v[lo].id, &first) && BSON_ITER_HOLDS_DOCUMENT(&first);
    if (docs) {
        bson_append_array_begin(&filter, "$or", 3, &arr);
    } else {
        bson_append_document_begin(&filter, "_id", 3, &in);
        bson_append_array_begin(&in, "$in", 3, &arr);
    }
    for (size_t i = lo; i < hi; i++) {
        char k[16];
        const char *key;
        bson_iter_t id;
        bson_uint32_to_string((uint32_t)(i - lo), &key, k, sizeof(k));
        if (docs) {
            bson_append_document(&arr, key, -1, r->exp.v[i].id);
        } else if (id_of(r->exp.v[i].id, &id)) {
            bson_append_iter(&arr, key, -1, &id);
        }
        hexp += doc_hash(r->exp.v[i].cid, r->exp.v[i].doc);
    }
    if (docs) {
        bson_append_array_end(&filter, &arr);
    } else {
        bson_append_array_end(&in, &arr);
        bson_append_document_end(&filter, &in);
    }
    f = calloc(capf, sizeof(*f));
    if (f == NULL) {
        abort();
    }
    cur = mongoc_collection_find_with_opts(c, &filter, NULL, NULL);
    while (mongoc_cursor_next(cur, &doc)) {
        bson_iter_t id;
        bson_t idq = BSON_INITIALIZER;
        if (!bson_iter_init_find(&id, doc, "_id")) {
            bson_destroy(&idq);
            continue;
        }
        if (nf == capf) {
            capf *= 2;
            f = realloc(f, capf * sizeof(*f));
            if (f == NULL) {
                abort();
            }
        }
        bson_append_iter(&idq, "_id", 3, &id);
        f[nf].cid = ms_bson_canonical(&idq);
        f[nf].doc = ms_bson_canonical(doc);
        hgot += doc_hash(f[nf].cid, f[nf].doc);
        nf++;
        bson_destroy(&idq);
    }
    if (mongoc_cursor_error(cur, &berr)) {
        ms_error_set(err, MS_ERR_MONGO, berr.code, "reading %s.%s: %s", r->cfg->mongodb_database,
                     coll, berr.message);
        err->retryable = true;
        ok = false;
        goto done;
    }
    r->res->compared += hi - lo;
    if (nf == hi - lo && hexp == hgot) {
        goto done; /* the chunk's hashes agree */
    }
    *differ = true;
    qsort(f, nf, sizeof(*f), found_cmp);
    for (size_t i = lo; i < hi; i++) {
        struct entry *x = &r->exp.v[i];
        struct found key = {.cid = x->cid}, *g = bsearch(&key, f, nf, sizeof(*f), found_cmp);
        if (g == NULL) {
            r->res->missing++;
            report_key(&r->missing, &r->nmissing, r->max_report, coll, x->id, NULL);
            continue;
        }
        if (g->doc->len == x->doc->len &&
            memcmp(bson_get_data(g->doc), bson_get_data(x->doc), x->doc->len) == 0) {
            continue;
        }
        r->res->different++;
        if (r->ndifferent < r->max_report) {
            char k[16];
            const char *akey;
            bson_t item, fields;
            bson_iter_t id;
            bson_uint32_to_string(r->ndifferent++, &akey, k, sizeof(k));
            bson_append_document_begin(&r->different, akey, -1, &item);
            BSON_APPEND_UTF8(&item, "collection", coll);
            if (id_of(x->id, &id)) {
                bson_append_iter(&item, "_id", 3, &id);
            }
            bson_append_array_begin(&item, "fields", 6, &fields);
            diff_fields(x->doc, g->doc, &fields);
            bson_append_array_end(&item, &fields);
            bson_append_document_end(&r->different, &item);
        }
    }
done:
    for (size_t i = 0; i < nf; i++) {
        bson_destroy(f[i].cid);
        bson_destroy(f[i].doc);
    }
    free(f);
    mongoc_cursor_destroy(cur);
    bson_destroy(&filter);
    mongoc_collection_destroy(c);
    return ok;
}

/* The chunk's expected documents against MongoDB. */
static bool compare_chunk(struct run *r, struct ms_error *err)
{
    bool differ = false;

    entries_settle(&r->exp);
    for (size_t i = 0; i < r->exp.n; i++) {
        note_collection(r, r->exp.v[i].coll);
        if (r->sample_p >= 1.0) {
            if (r->nkeys == r->capkeys) {
                r->capkeys = r->capkeys != 0 ? r->capkeys * 2 : 4096;
                r->keys = realloc(r->keys, r->capkeys * sizeof(*r->keys));
                if (r->keys == NULL) {
                    abort();
                }
            }
            r->keys[r->nkeys++] = ms_bson_id_hash(r->exp.v[i].coll, r->exp.v[i].cid);
        }
        bson_t *c = ms_bson_canonical(r->exp.v[i].doc);
        bson_destroy(r->exp.v[i].doc);
        r->exp.v[i].doc = c;
    }
    for (size_t lo = 0; lo < r->exp.n;) {
        size_t hi = lo + 1;
        while (hi < r->exp.n && strcmp(r->exp.v[hi].coll, r->exp.v[lo].coll) == 0) {
            hi++;
        }
        if (!compare_collection(r, lo, hi, &differ, err)) {
            return false;
        }
        lo = hi;
    }
    r->res->chunks++;
    r->res->chunks_differ += differ ? 1 : 0;
    entries_clear(&r->exp);
    return true;
}

/* A document of ops that MongoDB would refuse for itself (the sink's dead letters): over the
 * 16 MiB limit, or a top-level field name that is empty or starts with '$'. */
static bool unstorable(const struct ms_ops *ops, struct ms_error *why)
{
    for (size_t i = 0; i < ops->n; i++) {
        const struct ms_op *op = &ops->v[i];
        bson_iter_t it;

        if (op->kind != MS_OP_REPLACE && op->kind != MS_OP_SET) {
            continue;
        }
        if (op->doc.len > MS_SINK_MAX_DOC_SIZE) {
            ms_error_set(why, MS_ERR_STRATEGY, 1,
                         "the document is %u bytes, over MongoDB's %d-byte limit (dead-lettered)",
                         op->doc.len, MS_SINK_MAX_DOC_SIZE);
            return true;
        }
        if (!bson_iter_init(&it, &op->doc)) {
            continue;
        }
        while (bson_iter_next(&it)) {
            const char *k = bson_iter_key(&it);
            if (k[0] == '\0' || k[0] == '$') {
                ms_error_set(why, MS_ERR_STRATEGY, 1,
                             "field name '%.100s' cannot be stored in MongoDB (dead-lettered)", k);
                return true;
            }
        }
    }
    return false;
}

static bool on_row(void *arg, const bson_t *row, struct ms_error *err)
{
    struct run *r = arg;
    struct ms_ops ops;
    struct ms_error why = {0};
    size_t from = r->exp.n;

    r->res->rows_read++;
    if (row == NULL) {
        r->res->unreadable++;
        report_key(&r->refused, &r->nrefused, r->max_report, NULL, NULL, err->msg);
        ms_error_clear(err);
        return true;
    }
    if (r->sample_p < 1.0 && (double)(next_rand(&r->rng) >> 11) * 0x1.0p-53 >= r->sample_p) {
        return true;
    }
    ms_ops_init(&ops);
    if (!ms_pipeline_expected_ops(r->p, r->pt.db, r->pt.name, row, &ops, &why)) {
        ms_ops_cleanup(&ops);
        if (why.domain == MS_ERR_STRATEGY) {
            bson_t id = BSON_INITIALIZER;
            r->res->refused++;
            if (ms_strategy_key(row, r->pt.key, r->pt.nkey, &id)) {
                report_key(&r->refused, &r->nrefused, r->max_report, NULL, &id, why.msg);
            }
            bson_destroy(&id);
            return true;
        }
        r->fail = why;
        r->failed = true;
        return false; /* the row is read again by the next chunk */
    }
    if (unstorable(&ops, &why)) {
        /* MongoDB refuses such a document: the stream dead-letters it, so it is not compared
         * (and a document it left from before is not extra) */
        bson_t id = BSON_INITIALIZER;
        for (size_t i = 0; i < ops.n && r->sample_p >= 1.0; i++) {
            bson_t *cid;
            if (ops.v[i].kind != MS_OP_REPLACE && ops.v[i].kind != MS_OP_SET) {
                continue;
            }
            if (r->nkeys == r->capkeys) {
                r->capkeys = r->capkeys != 0 ? r->capkeys * 2 : 4096;
                r->keys = realloc(r->keys, r->capkeys * sizeof(*r->keys));
                if (r->keys == NULL) {
                    abort();
                }
            }
            cid = ms_bson_canonical(&ops.v[i].id);
            r->keys[r->nkeys++] = ms_bson_id_hash(ops.v[i].collection, cid);
            bson_destroy(cid);
        }
        ms_ops_cleanup(&ops);
        r->res->refused++;
        if (ms_strategy_key(row, r->pt.key, r->pt.nkey, &id)) {
            report_key(&r->refused, &r->nrefused, r->max_report, NULL, &id, why.msg);
        }
        bson_destroy(&id);
        return true;
    }
    apply_ops(&r->exp, from, &ops);
    ms_ops_cleanup(&ops);
    return true;
}

static bool count_rows(const struct ms_config *cfg, const char *db, const char *table, uint64_t *n,
                       struct ms_error *err)
{
    MYSQL *c = ms_mysql_connect(cfg, err);
    char qd[400], qt[400], sql[900];
    MYSQL_RES *res;
    MYSQL_ROW row;
    bool ok = false;

    if (c == NULL) {
        return false;
    }
    ms_mysql_quote_ident(qd, sizeof(qd), db);
    ms_mysql_quote_ident(qt, sizeof(qt), table);
    snprintf(sql, sizeof(sql), "SELECT COUNT(*) FROM %s.%s", qd, qt);
    if (mysql_query(c, sql) != 0 || (res = mysql_store_result(c)) == NULL) {
        ms_mysql_error(c, "counting rows", err);
        mysql_close(c);
        return false;
    }
    row = mysql_fetch_row(res);
    if (row != NULL && row[0] != NULL) {
        *n = strtoull(row[0], NULL, 10);
        ok = true;
    } else {
        ms_error_set(err, MS_ERR_MYSQL, 1, "counting rows of %s.%s: no result", db, table);
    }
    mysql_free_result(res);
    mysql_close(c);
    return ok;
}

static int u64_cmp(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* Documents of the written collections that no row maps to (full runs). */
static bool find_extra(struct run *r, struct ms_error *err)
{
    qsort(r->keys, r->nkeys, sizeof(*r->keys), u64_cmp);
    for (size_t ci = 0; ci < r->ncolls; ci++) {
        mongoc_collection_t *c =
            mongoc_client_get_collection(r->mc, r->cfg->mongodb_database, r->colls[ci]);
        bson_t filter = BSON_INITIALIZER;
        bson_t *opts = BCON_NEW("projection", "{", "_id", BCON_INT32(1), "}");
        mongoc_cursor_t *cur = mongoc_collection_find_with_opts(c, &filter, opts, NULL);
        const bson_t *doc;
        bson_error_t berr;
        bool ok = true;

        while (mongoc_cursor_next(cur, &doc)) {
            bson_iter_t id;
            bson_t idq = BSON_INITIALIZER, *cid;
            uint64_t h;
            if (!bson_iter_init_find(&id, doc, "_id")) {
                bson_destroy(&idq);
                continue;
            }
            bson_append_iter(&idq, "_id", 3, &id);
            cid = ms_bson_canonical(&idq);
            h = ms_bson_id_hash(r->colls[ci], cid);
            if (bsearch(&h, r->keys, r->nkeys, sizeof(*r->keys), u64_cmp) == NULL) {
                r->res->extra++;
                report_key(&r->extra, &r->nextra, r->max_report, r->colls[ci], &idq, NULL);
            }
            bson_destroy(cid);
            bson_destroy(&idq);
        }
        if (mongoc_cursor_error(cur, &berr)) {
            ms_error_set(err, MS_ERR_MONGO, berr.code, "reading %s.%s: %s",
                         r->cfg->mongodb_database, r->colls[ci], berr.message);
            ok = false;
        }
        mongoc_cursor_destroy(cur);
        bson_destroy(opts);
        bson_destroy(&filter);
        mongoc_collection_destroy(c);
        if (!ok) {
            return false;
        }
    }
    return true;
}

static bool count_documents(struct run *r, struct ms_error *err)
{
    mongoc_collection_t *c;
    bson_t filter = BSON_INITIALIZER;
    bson_error_t berr;
    int64_t n;

    if (r->res->collection[0] == '\0') {
        return true;
    }
    c = mongoc_client_get_collection(r->mc, r->cfg->mongodb_database, r->res->collection);
    n = mongoc_collection_count_documents(c, &filter, NULL, NULL, NULL, &berr);
    bson_destroy(&filter);
    mongoc_collection_destroy(c);
    if (n < 0) {
        ms_error_set(err, MS_ERR_MONGO, berr.code, "counting %s.%s: %s", r->cfg->mongodb_database,
                     r->res->collection, berr.message);
        return false;
    }
    r->res->documents = (uint64_t)n;
    return true;
}

void ms_verify_result_cleanup(struct ms_verify_result *r)
{
    if (r != NULL) {
        bson_destroy(&r->details);
        bson_init(&r->details);
    }
}

bool ms_verify_table(const struct ms_config *cfg, const struct ms_verify_opts *o,
                     struct ms_verify_result *res, struct ms_error *err)
{
    struct ms_pipeline_opts po = {
        .backfill_only = true, .read_only = true, .tables = &o->table, .ntables = 1};
    struct run r = {.cfg = cfg, .o = o, .res = res, .sample_p = 1.0};
    mongoc_client_pool_t *pool = NULL;
    struct ms_source *src = NULL;
    struct ms_scan *sc = NULL;
    int64_t t0 = ms_clock_mono_ms(), last_log = t0;
    int64_t chunk = o->chunk_size > 0 ? o->chunk_size : DEFAULT_CHUNK;
    bool ok = false;

    memset(res, 0, sizeof(*res));
    bson_init(&res->details);
    bson_init(&r.missing);
    bson_init(&r.different);
    bson_init(&r.extra);
    bson_init(&r.refused);
    r.max_report = o->max_report > 0 ? o->max_report : DEFAULT_REPORT;
    r.rng = o->seed != 0 ? o->seed : (uint64_t)ms_clock_wall_ms() ^ ((uint64_t)getpid() << 32);

    r.p = ms_pipeline_new_opts(cfg, &po, err);
    if (r.p == NULL) {
        goto done;
    }
    if (!ms_pipeline_find_table(r.p, o->table, &r.pt)) {
        ms_error_set(err, MS_ERR_CONFIG, MS_CONFIG_BAD_VALUE, "%s is not replicated", o->table);
        goto done;
    }
    snprintf(res->table, sizeof(res->table), "%s.%s", r.pt.db, r.pt.name);
    if (!r.pt.primary) {
        const struct ms_strategy *s = ms_strategy_find(r.pt.strategy);
        ms_error_set(err, MS_ERR_CONFIG, MS_CONFIG_BAD_VALUE,
                     "%s plays the role %s of the %s strategy: its rows are part of the "
                     "documents of the strategy's first table (%s); verify that table",
                     res->table, r.pt.role, r.pt.strategy,
                     s != NULL && s->source_tables != NULL && s->source_tables[0] != NULL
                         ? s->source_tables[0]
                         : "?");
        goto done;
    }
    if (!count_rows(cfg, r.pt.db, r.pt.name, &res->source_rows, err)) {
        goto done;
    }
    if (o->sample > 0 && (uint64_t)o->sample < res->source_rows) {
        r.sample_p = (double)o->sample / (double)res->source_rows;
        res->sampled = true;
    }
    pool = ms_sink_pool_new(cfg, err);
    if (pool == NULL) {
        goto done;
    }
    r.mc = mongoc_client_pool_pop(pool);
    src = ms_source_new(cfg, r.pt.vo);
    sc = ms_scan_new(src, r.pt.db, r.pt.name, r.pt.key, r.pt.nkey, NULL);
    if (src == NULL || sc == NULL) {
        ms_error_set(err, MS_ERR_SYSTEM, ENOMEM, "out of memory");
        goto done;
    }
    ms_log(MS_LOG_INFO, "verify %s: %llu rows in the source%s", res->table,
           (unsigned long long)res->source_rows, res->sampled ? ", comparing a sample" : "");
    for (;;) {
        size_t n = 0;
        if (o->stop != NULL && *o->stop) {
            ms_error_set(err, MS_ERR_SYSTEM, ECANCELED, "verify of %s stopped", res->table);
            goto done;
        }
        if (!ms_scan_chunk(sc, (size_t)chunk, on_row, &r, &n, err)) {
            if (r.failed) {
                *err = r.fail;
            }
            goto done;
        }
        if (!compare_chunk(&r, err)) {
            goto done;
        }
        if (ms_clock_mono_ms() - last_log >= PROGRESS_MS) {
            last_log = ms_clock_mono_ms();
            ms_log(MS_LOG_INFO, "verify %s: %llu of %llu rows read, %llu mismatches so far",
                   res->table, (unsigned long long)res->rows_read,
                   (unsigned long long)res->source_rows,
                   (unsigned long long)(res->missing + res->different));
        }
        if (n < (size_t)chunk) {
            break;
        }
    }
    if (!res->sampled && !find_extra(&r, err)) {
        goto done;
    }
    if (!count_documents(&r, err)) {
        goto done;
    }
    ok = true;
done:
    res->seconds = (double)(ms_clock_mono_ms() - t0) / 1000.0;
    BSON_APPEND_ARRAY(&res->details, "missing", &r.missing);
    BSON_APPEND_ARRAY(&res->details, "different", &r.different);
    BSON_APPEND_ARRAY(&res->details, "extra", &r.extra);
    BSON_APPEND_ARRAY(&res->details, "refused", &r.refused);
    bson_destroy(&r.missing);
    bson_destroy(&r.different);
    bson_destroy(&r.extra);
    bson_destroy(&r.refused);
    entries_free(&r.exp);
    free(r.keys);
    for (size_t i = 0; i < r.ncolls; i++) {
        free(r.colls[i]);
    }
    free(r.colls);
    ms_scan_destroy(sc);
    ms_source_destroy(src);
    if (r.mc != NULL) {
        mongoc_client_pool_push(pool, r.mc);
    }
    if (pool != NULL) {
        mongoc_client_pool_destroy(pool);
    }
    ms_pipeline_destroy(r.p);
    return ok;
}

/* ---- the report -------------------------------------------------------------------------- */

static void print_list(const bson_t *details, const char *kind, uint64_t total, FILE *out)
{
    bson_iter_t it, arr, item, f;
    uint64_t shown = 0;

    if (!bson_iter_init_find(&it, details, kind) || !bson_iter_recurse(&it, &arr)) {
        return;
    }
    while (bson_iter_next(&arr)) {
        char id[VALUE_SHOWN + 8] = "?";
        if (!bson_iter_recurse(&arr, &item)) {
            continue;
        }
        if (bson_iter_find(&item, "_id")) {
            value_text(&item, id, sizeof(id));
        }
        bson_iter_recurse(&arr, &item);
        if (bson_iter_find(&item, "reason")) {
            fprintf(out, "    _id %s: %s\n", id, bson_iter_utf8(&item, NULL));
        } else {
            fprintf(out, "    _id %s\n", id);
        }
        bson_iter_recurse(&arr, &item);
        if (bson_iter_find(&item, "fields") && bson_iter_recurse(&item, &f)) {
            while (bson_iter_next(&f)) {
                bson_iter_t g;
                const char *field = "?", *sv = "?", *dv = "?";
                if (bson_iter_recurse(&f, &g) && bson_iter_find(&g, "field")) {
                    field = bson_iter_utf8(&g, NULL);
                }
                if (bson_iter_recurse(&f, &g) && bson_iter_find(&g, "source")) {
                    sv = bson_iter_utf8(&g, NULL);
                }
                if (bson_iter_recurse(&f, &g) && bson_iter_find(&g, "document")) {
                    dv = bson_iter_utf8(&g, NULL);
                }
                fprintf(out, "      %s: source %s, document %s\n", field, sv, dv);
            }
        }
        shown++;
    }
    if (total > shown) {
        fprintf(out, "    ... and %llu more\n", (unsigned long long)(total - shown));
    }
}

void ms_verify_print(const struct ms_verify_result *r, bool json, FILE *out)
{
    uint64_t bad = r->missing + r->different + r->extra;

    if (json) {
        bson_t d = BSON_INITIALIZER;
        char *j;
        BSON_APPEND_UTF8(&d, "table", r->table);
        BSON_APPEND_UTF8(&d, "collection", r->collection);
        BSON_APPEND_BOOL(&d, "match", bad == 0);
        BSON_APPEND_BOOL(&d, "sampled", r->sampled);
        BSON_APPEND_INT64(&d, "source_rows", (int64_t)r->source_rows);
        BSON_APPEND_INT64(&d, "documents", (int64_t)r->documents);
        BSON_APPEND_INT64(&d, "rows_read", (int64_t)r->rows_read);
        BSON_APPEND_INT64(&d, "compared", (int64_t)r->compared);
        BSON_APPEND_INT64(&d, "chunks", (int64_t)r->chunks);
        BSON_APPEND_INT64(&d, "chunks_differ", (int64_t)r->chunks_differ);
        BSON_APPEND_INT64(&d, "missing", (int64_t)r->missing);
        BSON_APPEND_INT64(&d, "different", (int64_t)r->different);
        BSON_APPEND_INT64(&d, "extra", (int64_t)r->extra);
        BSON_APPEND_INT64(&d, "refused", (int64_t)r->refused);
        BSON_APPEND_INT64(&d, "unreadable", (int64_t)r->unreadable);
        BSON_APPEND_DOUBLE(&d, "seconds", r->seconds);
        BSON_APPEND_DOCUMENT(&d, "details", &r->details);
        j = bson_as_relaxed_extended_json(&d, NULL);
        fprintf(out, "%s\n", j != NULL ? j : "{}");
        bson_free(j);
        bson_destroy(&d);
        return;
    }
    fprintf(out, "verify %s -> %s%s\n", r->table,
            r->collection[0] != '\0' ? r->collection : "(no documents expected)",
            r->sampled ? " (a sample)" : "");
    fprintf(out, "  counts: %llu rows in the source, %llu documents in the collection\n",
            (unsigned long long)r->source_rows, (unsigned long long)r->documents);
    fprintf(out, "  chunks: %llu compared, %llu with differences; %llu rows read, %llu compared\n",
            (unsigned long long)r->chunks, (unsigned long long)r->chunks_differ,
            (unsigned long long)r->rows_read, (unsigned long long)r->compared);
    fprintf(out, "  missing: %llu (rows without their document)\n", (unsigned long long)r->missing);
    print_list(&r->details, "missing", r->missing, out);
    fprintf(out, "  different: %llu (documents that differ from what the row maps to)\n",
            (unsigned long long)r->different);
    print_list(&r->details, "different", r->different, out);
    if (r->sampled) {
        fprintf(out, "  extra: not looked for in a sample\n");
    } else {
        fprintf(out, "  extra: %llu (documents no row maps to)\n", (unsigned long long)r->extra);
        print_list(&r->details, "extra", r->extra, out);
    }
    if (r->refused + r->unreadable > 0) {
        fprintf(out,
                "  not compared: %llu rows the strategy refuses, %llu that do not decode "
                "(their dead letters are in _mysync_dead_letters)\n",
                (unsigned long long)r->refused, (unsigned long long)r->unreadable);
        print_list(&r->details, "refused", r->refused + r->unreadable, out);
    }
    if (bad == 0) {
        fprintf(out, "  result: MATCH (%.1f s)\n", r->seconds);
        return;
    }
    fprintf(out, "  result: MISMATCH, %llu keys (%.1f s)\n", (unsigned long long)bad, r->seconds);
    fprintf(out,
            "  to repair: a row changed in the last seconds may only be lagging (check lag in "
            "/sync/status and run verify again); otherwise `mysync --full --table %s` rewrites "
            "every row's document, and extra documents are deleted by hand (README "
            "\"Operations runbook\")\n",
            r->table);
}

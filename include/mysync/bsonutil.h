/* Documents as values: a canonical form (keys sorted at every level; array order and value
 * types kept) and a 64-bit fingerprint of it, for comparing documents whatever order their
 * fields were written in (mysync verify, polling's reconciliation). */
#ifndef MYSYNC_BSONUTIL_H
#define MYSYNC_BSONUTIL_H

#include <bson/bson.h>
#include <stddef.h>
#include <stdint.h>

/* A new document (bson_destroy() it): in with the keys of every (sub)document sorted. */
bson_t *ms_bson_canonical(const bson_t *in);

/* As ms_bson_canonical, with every int32, int64 and integral double as int64: the form of an
 * _id in which values MongoDB finds equal are equal bytes (a sweep must not take an int32 _id
 * for another than the int64 it was upserted with). */
bson_t *ms_bson_canonical_id(const bson_t *in);

/* FNV-1a over bytes, continuing from h (MS_FNV_BASIS to start): a fingerprint, not a defence. */
#define MS_FNV_BASIS 0xcbf29ce484222325ULL
uint64_t ms_fnv64(uint64_t h, const void *p, size_t n);

/* The fingerprint of a canonical {"_id": value} (ms_bson_canonical) in a collection. */
uint64_t ms_bson_id_hash(const char *collection, const bson_t *cid);

#endif

#define MS_LOG_DOMAIN "binlog"

#include "mysync/binlog.h"
#include "mysync/log.h"
#include "mysync/mysqljson.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>
#include <zstd.h>

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#define HAVE_CLMUL_CRC 1
#endif

#define STMT_END_F  0x0001
#define MAX_PAYLOAD (1024u * 1024u * 1024u) /* refuse to inflate beyond 1 GiB */

struct map_slot {
    uint64_t id;
    struct ms_table_map *map;
    struct ms_rows_json_keys *keys; /* built at the first ms_binlog_rows_next_json */
};

struct ms_binlog_parser {
    bool have_fde;
    bool verify;
    int checksum; /* 0 none, 1 CRC32 */
    uint8_t post_header[256];
    char server_version[51];
    bool is_mariadb;
    struct map_slot *maps;
    size_t nmaps, capmaps;
    bool clear_maps; /* a statement ended: drop its table maps at the next TABLE_MAP */
    /* ms_binlog_parser_hold_maps: maps dropped or replaced meanwhile, freed at the release */
    bool hold;
    struct map_slot *grave;
    size_t ngrave, capgrave;
    char gtid[MS_GTID_MAX];
    uint8_t *scratch; /* decompressed transaction payload */
    size_t scratch_cap;
    uint8_t *scratch2; /* decompressed MariaDB rows / query */
    size_t scratch2_cap;
    ZSTD_DCtx *zstd;
    char *unresolved[8]; /* partial JSON columns of the last row left for a re-read */
    size_t nunresolved;
};

/* ---- CRC32 ---------------------------------------------------------------------------- */

#ifdef HAVE_CLMUL_CRC
/* CRC-32 (zlib's) of len bytes, len >= 64 and a multiple of 16, by carry-less multiplication:
 * folding 4x128 bits at a time, then Barrett reduction (Intel, "Fast CRC Computation for
 * Generic Polynomials Using PCLMULQDQ", 2009; the constants of zlib's crc32_simd.c). crc is
 * the running CRC before its final inversion. ~10x zlib's table-driven crc32 (which took 8 %
 * of binlog-dump's time). */
__attribute__((target("pclmul,sse4.1"))) static uint32_t crc32_clmul(const uint8_t *buf, size_t len,
                                                                     uint32_t crc)
{
    const __m128i k1k2 = _mm_set_epi64x(0x01c6e41596, 0x0154442bd4);
    const __m128i k3k4 = _mm_set_epi64x(0x00ccaa009e, 0x01751997d0);
    const __m128i k5k0 = _mm_set_epi64x(0, 0x0163cd6124);
    const __m128i poly = _mm_set_epi64x(0x01f7011641, 0x01db710641);
    const __m128i mask32 = _mm_setr_epi32(~0, 0, ~0, 0);
    __m128i x1, x2, x3, x4, x5, x6, x7, x8;

    x1 = _mm_loadu_si128((const __m128i *)(const void *)(buf + 0x00));
    x2 = _mm_loadu_si128((const __m128i *)(const void *)(buf + 0x10));
    x3 = _mm_loadu_si128((const __m128i *)(const void *)(buf + 0x20));
    x4 = _mm_loadu_si128((const __m128i *)(const void *)(buf + 0x30));
    x1 = _mm_xor_si128(x1, _mm_cvtsi32_si128((int)crc));
    buf += 64;
    len -= 64;
    while (len >= 64) {
        x5 = _mm_clmulepi64_si128(x1, k1k2, 0x00);
        x6 = _mm_clmulepi64_si128(x2, k1k2, 0x00);
        x7 = _mm_clmulepi64_si128(x3, k1k2, 0x00);
        x8 = _mm_clmulepi64_si128(x4, k1k2, 0x00);
        x1 = _mm_clmulepi64_si128(x1, k1k2, 0x11);
        x2 = _mm_clmulepi64_si128(x2, k1k2, 0x11);
        x3 = _mm_clmulepi64_si128(x3, k1k2, 0x11);
        x4 = _mm_clmulepi64_si128(x4, k1k2, 0x11);
        x1 = _mm_xor_si128(_mm_xor_si128(x1, x5),
                           _mm_loadu_si128((const __m128i *)(const void *)(buf + 0x00)));
        x2 = _mm_xor_si128(_mm_xor_si128(x2, x6),
                           _mm_loadu_si128((const __m128i *)(const void *)(buf + 0x10)));
        x3 = _mm_xor_si128(_mm_xor_si128(x3, x7),
                           _mm_loadu_si128((const __m128i *)(const void *)(buf + 0x20)));
        x4 = _mm_xor_si128(_mm_xor_si128(x4, x8),
                           _mm_loadu_si128((const __m128i *)(const void *)(buf + 0x30)));
        buf += 64;
        len -= 64;
    }
    /* fold the four lanes into one */
    x5 = _mm_clmulepi64_si128(x1, k3k4, 0x00);
    x1 = _mm_clmulepi64_si128(x1, k3k4, 0x11);
    x1 = _mm_xor_si128(_mm_xor_si128(x1, x2), x5);
    x5 = _mm_clmulepi64_si128(x1, k3k4, 0x00);
    x1 = _mm_clmulepi64_si128(x1, k3k4, 0x11);
    x1 = _mm_xor_si128(_mm_xor_si128(x1, x3), x5);
    x5 = _mm_clmulepi64_si128(x1, k3k4, 0x00);
    x1 = _mm_clmulepi64_si128(x1, k3k4, 0x11);
    x1 = _mm_xor_si128(_mm_xor_si128(x1, x4), x5);
    while (len >= 16) {
        x2 = _mm_loadu_si128((const __m128i *)(const void *)buf);
        x5 = _mm_clmulepi64_si128(x1, k3k4, 0x00);
        x1 = _mm_clmulepi64_si128(x1, k3k4, 0x11);
        x1 = _mm_xor_si128(_mm_xor_si128(x1, x2), x5);
        buf += 16;
        len -= 16;
    }
    /* 128 -> 64 bits */
    x2 = _mm_clmulepi64_si128(x1, k3k4, 0x10);
    x1 = _mm_xor_si128(_mm_srli_si128(x1, 8), x2);
    x2 = _mm_srli_si128(x1, 4);
    x1 = _mm_and_si128(x1, mask32);
    x1 = _mm_clmulepi64_si128(x1, k5k0, 0x00);
    x1 = _mm_xor_si128(x1, x2);
    /* Barrett reduction to 32 bits */
    x2 = _mm_and_si128(x1, mask32);
    x2 = _mm_clmulepi64_si128(x2, poly, 0x10);
    x2 = _mm_and_si128(x2, mask32);
    x2 = _mm_clmulepi64_si128(x2, poly, 0x00);
    x1 = _mm_xor_si128(x1, x2);
    return (uint32_t)_mm_extract_epi32(x1, 1);
}
#endif

/* zlib's crc32(crc, buf, len), by carry-less multiplication where the CPU has it. */
static uint32_t crc32_of(uint32_t crc, const uint8_t *buf, size_t len)
{
#ifdef HAVE_CLMUL_CRC
    if (len >= 64 && __builtin_cpu_supports("pclmul") && __builtin_cpu_supports("sse4.1")) {
        size_t chunk = len & ~(size_t)15;
        crc = ~crc32_clmul(buf, chunk, ~crc);
        buf += chunk;
        len -= chunk;
    }
#endif
    return (uint32_t)crc32_z(crc, buf, len);
}

/* ---- little helpers ------------------------------------------------------------------ */

static uint16_t u16le(const uint8_t *p)
{
    return (uint16_t)(p[0] | p[1] << 8);
}

static uint32_t u32le(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint64_t uNle(const uint8_t *p, size_t n)
{
    uint64_t v = 0;

    for (size_t i = 0; i < n; i++) {
        v |= (uint64_t)p[i] << (8 * i);
    }
    return v;
}

static bool fail(struct ms_error *err, const struct ms_event_header *h, const char *what)
{
    ms_error_set(err, MS_ERR_DECODE, MS_DECODE_MALFORMED,
                 "%s event (type %u, %u bytes, end pos %u): %s",
                 h != NULL ? ms_binlog_event_name(h->type) : "?", h != NULL ? h->type : 0,
                 h != NULL ? h->event_size : 0, h != NULL ? h->log_pos : 0, what);
    return false;
}

bool ms_binlog_packed_int(const uint8_t *p, size_t avail, size_t *used, uint64_t *out)
{
    size_t n;

    if (avail < 1) {
        return false;
    }
    switch (p[0]) {
    case 0xfc:
        n = 2;
        break;
    case 0xfd:
        n = 3;
        break;
    case 0xfe:
        n = 8;
        break;
    case 0xfb: /* NULL marker: not valid where a length is expected */
    case 0xff:
        return false;
    default:
        *out = p[0];
        *used = 1;
        return true;
    }
    if (avail < 1 + n) {
        return false;
    }
    *out = uNle(p + 1, n);
    *used = 1 + n;
    return true;
}

static size_t popcount_bits(const uint8_t *bitmap, size_t nbits)
{
    size_t n = 0;

    for (size_t i = 0; i < nbits; i++) {
        n += (bitmap[i / 8] >> (i % 8)) & 1;
    }
    return n;
}

static bool ensure(uint8_t **buf, size_t *cap, size_t need)
{
    uint8_t *nb;

    if (*cap >= need) {
        return true;
    }
    nb = realloc(*buf, need);
    if (nb == NULL) {
        return false;
    }
    *buf = nb;
    *cap = need;
    return true;
}

const char *ms_binlog_event_name(uint8_t type)
{
    switch (type) {
    case 1:
        return "START_V3";
    case MS_EV_QUERY:
        return "QUERY";
    case MS_EV_STOP:
        return "STOP";
    case MS_EV_ROTATE:
        return "ROTATE";
    case 5:
        return "INTVAR";
    case 13:
        return "RAND";
    case 14:
        return "USER_VAR";
    case MS_EV_FORMAT_DESCRIPTION:
        return "FORMAT_DESCRIPTION";
    case MS_EV_XID:
        return "XID";
    case MS_EV_TABLE_MAP:
        return "TABLE_MAP";
    case MS_EV_WRITE_ROWS_V1:
        return "WRITE_ROWS_V1";
    case MS_EV_UPDATE_ROWS_V1:
        return "UPDATE_ROWS_V1";
    case MS_EV_DELETE_ROWS_V1:
        return "DELETE_ROWS_V1";
    case 26:
        return "INCIDENT";
    case MS_EV_HEARTBEAT:
        return "HEARTBEAT";
    case 28:
        return "IGNORABLE";
    case MS_EV_ROWS_QUERY:
        return "ROWS_QUERY";
    case MS_EV_WRITE_ROWS:
        return "WRITE_ROWS";
    case MS_EV_UPDATE_ROWS:
        return "UPDATE_ROWS";
    case MS_EV_DELETE_ROWS:
        return "DELETE_ROWS";
    case MS_EV_GTID:
        return "GTID";
    case MS_EV_ANONYMOUS_GTID:
        return "ANONYMOUS_GTID";
    case MS_EV_PREVIOUS_GTIDS:
        return "PREVIOUS_GTIDS";
    case 36:
        return "TRANSACTION_CONTEXT";
    case 37:
        return "VIEW_CHANGE";
    case 38:
        return "XA_PREPARE";
    case MS_EV_PARTIAL_UPDATE_ROWS:
        return "PARTIAL_UPDATE_ROWS";
    case MS_EV_TRANSACTION_PAYLOAD:
        return "TRANSACTION_PAYLOAD";
    case MS_EV_HEARTBEAT_V2:
        return "HEARTBEAT_V2";
    case MS_EV_GTID_TAGGED:
        return "GTID_TAGGED";
    case MS_EV_MARIA_ANNOTATE_ROWS:
        return "ANNOTATE_ROWS";
    case MS_EV_MARIA_BINLOG_CHECKPOINT:
        return "BINLOG_CHECKPOINT";
    case MS_EV_MARIA_GTID:
        return "MARIADB_GTID";
    case MS_EV_MARIA_GTID_LIST:
        return "GTID_LIST";
    case MS_EV_MARIA_START_ENCRYPTION:
        return "START_ENCRYPTION";
    case MS_EV_MARIA_QUERY_COMPRESSED:
        return "QUERY_COMPRESSED";
    case MS_EV_MARIA_WRITE_ROWS_COMPRESSED_V1:
        return "WRITE_ROWS_COMPRESSED_V1";
    case MS_EV_MARIA_UPDATE_ROWS_COMPRESSED_V1:
        return "UPDATE_ROWS_COMPRESSED_V1";
    case MS_EV_MARIA_DELETE_ROWS_COMPRESSED_V1:
        return "DELETE_ROWS_COMPRESSED_V1";
    case MS_EV_MARIA_WRITE_ROWS_COMPRESSED:
        return "WRITE_ROWS_COMPRESSED";
    case MS_EV_MARIA_UPDATE_ROWS_COMPRESSED:
        return "UPDATE_ROWS_COMPRESSED";
    case MS_EV_MARIA_DELETE_ROWS_COMPRESSED:
        return "DELETE_ROWS_COMPRESSED";
    default:
        return "UNKNOWN";
    }
}

bool ms_binlog_is_rows_event(uint8_t type)
{
    return (type >= MS_EV_WRITE_ROWS_V1 && type <= MS_EV_DELETE_ROWS_V1) ||
           (type >= MS_EV_WRITE_ROWS && type <= MS_EV_DELETE_ROWS) ||
           type == MS_EV_PARTIAL_UPDATE_ROWS ||
           (type >= MS_EV_MARIA_WRITE_ROWS_COMPRESSED_V1 &&
            type <= MS_EV_MARIA_DELETE_ROWS_COMPRESSED);
}

/* ---- parser lifecycle ------------------------------------------------------------------ */

struct ms_binlog_parser *ms_binlog_parser_new(void)
{
    struct ms_binlog_parser *p = calloc(1, sizeof(*p));

    if (p == NULL) {
        return NULL;
    }
    p->verify = true;
    p->checksum = 0;
    return p;
}

/* A map (and its keys) no longer current: freed, or kept while maps are held. */
static void drop_map(struct ms_binlog_parser *p, const struct map_slot *s)
{
    if (p->hold) {
        if (p->ngrave == p->capgrave) {
            size_t cap = p->capgrave > 0 ? p->capgrave * 2 : 64;
            struct map_slot *g = realloc(p->grave, cap * sizeof(*g));
            if (g == NULL) {
                abort();
            }
            p->grave = g;
            p->capgrave = cap;
        }
        p->grave[p->ngrave++] = *s;
        return;
    }
    ms_table_map_free(s->map);
    ms_rows_json_keys_destroy(s->keys);
}

static void clear_maps(struct ms_binlog_parser *p)
{
    for (size_t i = 0; i < p->nmaps; i++) {
        drop_map(p, &p->maps[i]);
    }
    p->nmaps = 0;
    p->clear_maps = false;
}

void ms_binlog_parser_hold_maps(struct ms_binlog_parser *p, bool hold)
{
    p->hold = hold;
    if (!hold) {
        for (size_t i = 0; i < p->ngrave; i++) {
            ms_table_map_free(p->grave[i].map);
            ms_rows_json_keys_destroy(p->grave[i].keys);
        }
        p->ngrave = 0;
    }
}

static void clear_unresolved(struct ms_binlog_parser *p)
{
    for (size_t i = 0; i < p->nunresolved; i++) {
        free(p->unresolved[i]);
    }
    p->nunresolved = 0;
}

size_t ms_binlog_rows_unresolved(const struct ms_binlog_parser *p, const char *const **names)
{
    *names = (const char *const *)p->unresolved;
    return p->nunresolved;
}

void ms_binlog_parser_destroy(struct ms_binlog_parser *p)
{
    if (p == NULL) {
        return;
    }
    clear_unresolved(p);
    ms_binlog_parser_hold_maps(p, false);
    clear_maps(p);
    free(p->maps);
    free(p->grave);
    free(p->scratch);
    free(p->scratch2);
    if (p->zstd != NULL) {
        ZSTD_freeDCtx(p->zstd);
    }
    free(p);
}

void ms_binlog_parser_set_verify(struct ms_binlog_parser *p, bool verify)
{
    p->verify = verify;
}

void ms_binlog_parser_expect_checksum(struct ms_binlog_parser *p, int alg)
{
    p->checksum = alg;
}

const char *ms_binlog_parser_gtid(const struct ms_binlog_parser *p)
{
    return p->gtid;
}

int ms_binlog_parser_checksum(const struct ms_binlog_parser *p)
{
    return p->checksum;
}

const char *ms_binlog_parser_server_version(const struct ms_binlog_parser *p)
{
    return p->server_version;
}

struct ms_table_map *ms_binlog_parser_table_mut(struct ms_binlog_parser *p, uint64_t table_id)
{
    for (size_t i = p->nmaps; i > 0; i--) {
        if (p->maps[i - 1].id == table_id) {
            /* the caller may rename columns: keys are rebuilt when next needed */
            ms_rows_json_keys_destroy(p->maps[i - 1].keys);
            p->maps[i - 1].keys = NULL;
            return p->maps[i - 1].map;
        }
    }
    return NULL;
}

const struct ms_table_map *ms_binlog_parser_table(const struct ms_binlog_parser *p,
                                                  uint64_t table_id)
{
    for (size_t i = p->nmaps; i > 0; i--) {
        if (p->maps[i - 1].id == table_id) {
            return p->maps[i - 1].map;
        }
    }
    return NULL;
}

/* Post-header length of an event type: from the FDE, or the v4 defaults before one. */
static size_t post_header_len(const struct ms_binlog_parser *p, uint8_t type)
{
    if (p->have_fde && type >= 1 && p->post_header[type - 1] != 0) {
        return p->post_header[type - 1];
    }
    switch (type) {
    case MS_EV_QUERY:
    case MS_EV_MARIA_QUERY_COMPRESSED:
        return 13;
    case MS_EV_ROTATE:
        return 8;
    case MS_EV_TABLE_MAP:
        return 8;
    case MS_EV_WRITE_ROWS_V1:
    case MS_EV_UPDATE_ROWS_V1:
    case MS_EV_DELETE_ROWS_V1:
    case MS_EV_MARIA_WRITE_ROWS_COMPRESSED_V1:
    case MS_EV_MARIA_UPDATE_ROWS_COMPRESSED_V1:
    case MS_EV_MARIA_DELETE_ROWS_COMPRESSED_V1:
        return 8;
    case MS_EV_WRITE_ROWS:
    case MS_EV_UPDATE_ROWS:
    case MS_EV_DELETE_ROWS:
    case MS_EV_PARTIAL_UPDATE_ROWS:
    case MS_EV_MARIA_WRITE_ROWS_COMPRESSED:
    case MS_EV_MARIA_UPDATE_ROWS_COMPRESSED:
    case MS_EV_MARIA_DELETE_ROWS_COMPRESSED:
        return 10;
    default:
        return 0;
    }
}

/* ---- individual events ----------------------------------------------------------------- */

static bool version_at_least(const char *v, int a, int b, int c)
{
    int x = 0, y = 0, z = 0;

    if (sscanf(v, "%d.%d.%d", &x, &y, &z) < 2) {
        return false;
    }
    if (x != a) {
        return x > a;
    }
    if (y != b) {
        return y > b;
    }
    return z >= c;
}

static bool parse_fde(struct ms_binlog_parser *p, const uint8_t *buf, size_t len,
                      struct ms_event *ev, struct ms_error *err)
{
    const uint8_t *b = buf + MS_BINLOG_HEADER_LEN;
    size_t blen = len - MS_BINLOG_HEADER_LEN, nph;
    bool aware;

    if (blen < 2 + 50 + 4 + 1) {
        return fail(err, &ev->h, "format description too short");
    }
    memcpy(p->server_version, b + 2, 50);
    p->server_version[50] = '\0';
    p->is_mariadb = strstr(p->server_version, "MariaDB") != NULL;
    if (b[56] != MS_BINLOG_HEADER_LEN) {
        return fail(err, &ev->h, "unsupported common header length (binlog v4 expected)");
    }
    /* checksum-aware servers end the FDE with the algorithm byte and a checksum */
    aware = p->is_mariadb ? version_at_least(p->server_version, 5, 3, 0)
                          : version_at_least(p->server_version, 5, 6, 1);
    if (aware) {
        if (blen < 57 + 5) {
            return fail(err, &ev->h, "format description too short for its checksum");
        }
        p->checksum = b[blen - 5] == 1 ? 1 : 0;
        if (b[blen - 5] != 0 && b[blen - 5] != 1 && b[blen - 5] != 0xff) {
            return fail(err, &ev->h, "unknown checksum algorithm");
        }
        if (b[blen - 5] == 0xff) {
            p->checksum = 0;
        }
        nph = blen - 57 - 5;
        if (p->checksum == 1 && p->verify) {
            /* As MySQL's event_checksum_test: the FDE's checksum is computed with the
             * LOG_EVENT_BINLOG_IN_USE_F flag clear (the server clears it in place when it
             * closes the file, without rewriting the checksum). */
            uint8_t flags[2] = {(uint8_t)(buf[17] & ~0x01), buf[18]};
            uint32_t want = u32le(buf + len - 4);
            uint32_t got = crc32_of(0, buf, 17);
            got = crc32_of(got, flags, 2);
            got = crc32_of(got, buf + 19, len - 4 - 19);
            if (want != (uint32_t)got) {
                return fail(err, &ev->h, "CRC32 mismatch");
            }
        }
        ev->body_len = blen - (p->checksum == 1 ? 4 : 0);
    } else {
        p->checksum = 0;
        nph = blen - 57;
    }
    memset(p->post_header, 0, sizeof(p->post_header));
    memcpy(p->post_header, b + 57, nph > sizeof(p->post_header) ? sizeof(p->post_header) : nph);
    p->have_fde = true;
    return true;
}

static bool parse_table_map(struct ms_binlog_parser *p, struct ms_event *ev, struct ms_error *err);

static bool parse_rows(struct ms_binlog_parser *p, struct ms_event *ev, struct ms_error *err);

static bool decompress_maria(struct ms_binlog_parser *p, const uint8_t *src, size_t srclen,
                             const uint8_t **out, size_t *outlen, struct ms_event *ev,
                             struct ms_error *err)
{
    /* MariaDB (log_bin_compress): 1 byte 0x80 | n, n bytes big-endian uncompressed length,
     * then a zlib stream */
    size_t n, want = 0;
    uLongf got;

    if (srclen < 1 || (src[0] & 0xe0) != 0x80) {
        return fail(err, &ev->h, "bad compressed-event header");
    }
    n = src[0] & 0x07;
    if (n < 1 || n > 4 || srclen < 1 + n) {
        return fail(err, &ev->h, "bad compressed-event length");
    }
    for (size_t i = 0; i < n; i++) {
        want = want << 8 | src[1 + i];
    }
    if (want > MAX_PAYLOAD || !ensure(&p->scratch2, &p->scratch2_cap, want + 1)) {
        return fail(err, &ev->h, "compressed event too large");
    }
    got = (uLongf)want;
    if (uncompress(p->scratch2, &got, src + 1 + n, (uLong)(srclen - 1 - n)) != Z_OK ||
        got != want) {
        return fail(err, &ev->h, "zlib decompression failed");
    }
    *out = p->scratch2;
    *outlen = want;
    return true;
}

static bool parse_query(struct ms_binlog_parser *p, struct ms_event *ev, struct ms_error *err)
{
    size_t ph = post_header_len(p, ev->h.type);
    const uint8_t *b = ev->body;
    size_t n = ev->body_len, db_len, sv_len, off;

    if (ph < 13 || n < ph) {
        return fail(err, &ev->h, "query event too short");
    }
    db_len = b[8];
    sv_len = u16le(b + 11);
    off = ph + sv_len;
    if (off + db_len + 1 > n) {
        return fail(err, &ev->h, "query event truncated");
    }
    ev->u.query.db = (const char *)b + off;
    ev->u.query.db_len = db_len;
    off += db_len + 1;
    if (ev->h.type == MS_EV_MARIA_QUERY_COMPRESSED) {
        const uint8_t *sql;
        size_t sql_len;
        if (!decompress_maria(p, b + off, n - off, &sql, &sql_len, ev, err)) {
            return false;
        }
        ev->u.query.sql = (const char *)sql;
        ev->u.query.sql_len = sql_len;
    } else {
        ev->u.query.sql = (const char *)b + off;
        ev->u.query.sql_len = n - off;
    }
    return true;
}

static void hex_uuid(const uint8_t *sid, char *out)
{
    static const char hex[] = "0123456789abcdef";
    size_t o = 0;

    for (int i = 0; i < 16; i++) {
        if (i == 4 || i == 6 || i == 8 || i == 10) {
            out[o++] = '-';
        }
        out[o++] = hex[sid[i] >> 4];
        out[o++] = hex[sid[i] & 15];
    }
    out[o] = '\0';
}

/* MySQL serialization library varlen unsigned integer: the number of trailing one bits of
 * the first byte gives the count of extra bytes; the value follows little-endian in the
 * remaining bits (9 bytes for a full 64-bit value). */
static bool mysql_varint(const uint8_t *p, size_t avail, size_t *used, uint64_t *out)
{
    size_t extra = 0;
    uint64_t v;

    if (avail < 1) {
        return false;
    }
    while (extra < 8 && (p[0] >> extra & 1) != 0) {
        extra++;
    }
    if (avail < 1 + extra) {
        return false;
    }
    if (extra == 8) {
        v = uNle(p + 1, 8);
    } else {
        v = (uint64_t)(p[0] >> (extra + 1));
        for (size_t i = 0; i < extra; i++) {
            v |= (uint64_t)p[1 + i] << (8 * i + 7 - extra);
        }
    }
    *used = 1 + extra;
    *out = v;
    return true;
}

/* MySQL 8.4+/9 GTID_TAGGED_LOG_EVENT, serialization format version 2: a version byte, the
 * payload size, the last non-ignorable field id, then (field id, value) pairs: 0 flags,
 * 1 uuid (16 varlen bytes), 2 gno (zig-zag signed), 3 tag (length + text), 4..5 signed,
 * 6..11 unsigned. Only uuid, tag and gno are kept: the GTID "uuid:tag:gno". */
static bool parse_gtid_tagged(struct ms_binlog_parser *p, struct ms_event *ev, struct ms_error *err)
{
    const uint8_t *b = ev->body;
    size_t n = ev->body_len, off = 1, used;
    uint64_t size, lnif, field, v;
    uint8_t sid[16] = {0};
    char tag[40] = "", uuid[40];
    uint64_t gno = 0;

    if (n < 1 || b[0] != 2) {
        return fail(err, &ev->h, "tagged GTID: unsupported serialization version");
    }
    if (!mysql_varint(b + off, n - off, &used, &size)) {
        return fail(err, &ev->h, "tagged GTID: bad payload size");
    }
    off += used;
    if (!mysql_varint(b + off, n - off, &used, &lnif)) {
        return fail(err, &ev->h, "tagged GTID: bad field id");
    }
    off += used;
    if (size > n) {
        return fail(err, &ev->h, "tagged GTID: payload larger than the event");
    }
    n = (size_t)size;
    while (off < n) {
        if (!mysql_varint(b + off, n - off, &used, &field)) {
            return fail(err, &ev->h, "tagged GTID: bad field id");
        }
        off += used;
        if (field == 1) {
            for (int i = 0; i < 16; i++) {
                if (!mysql_varint(b + off, n - off, &used, &v) || v > 255) {
                    return fail(err, &ev->h, "tagged GTID: bad uuid");
                }
                sid[i] = (uint8_t)v;
                off += used;
            }
        } else if (field == 3) {
            if (!mysql_varint(b + off, n - off, &used, &v) || v >= sizeof(tag) ||
                v > n - off - used) {
                return fail(err, &ev->h, "tagged GTID: bad tag");
            }
            off += used;
            memcpy(tag, b + off, (size_t)v);
            tag[v] = '\0';
            off += (size_t)v;
        } else if (field <= 11) {
            if (!mysql_varint(b + off, n - off, &used, &v)) {
                return fail(err, &ev->h, "tagged GTID: bad field value");
            }
            off += used;
            if (field == 2) {
                if (v & 1) {
                    return fail(err, &ev->h, "tagged GTID: negative gno");
                }
                gno = v >> 1; /* zig-zag */
            }
        } else if (field <= lnif) {
            return fail(err, &ev->h, "tagged GTID: unknown non-ignorable field");
        } else {
            break; /* an ignorable field of a newer server: its size is unknown */
        }
    }
    hex_uuid(sid, uuid);
    if (tag[0] != '\0') {
        snprintf(p->gtid, sizeof(p->gtid), "%s:%s:%" PRIu64, uuid, tag, gno);
    } else {
        snprintf(p->gtid, sizeof(p->gtid), "%s:%" PRIu64, uuid, gno);
    }
    return true;
}

static bool parse_body(struct ms_binlog_parser *p, struct ms_event *ev, struct ms_error *err)
{
    const uint8_t *b = ev->body;
    size_t n = ev->body_len;

    switch (ev->h.type) {
    case MS_EV_ROTATE: {
        size_t ph = post_header_len(p, MS_EV_ROTATE);
        if (n < ph || ph < 8) {
            return fail(err, &ev->h, "rotate event too short");
        }
        ev->u.rotate.pos = uNle(b, 8);
        ev->u.rotate.file = (const char *)b + ph;
        ev->u.rotate.file_len = n - ph;
        return true;
    }
    case MS_EV_QUERY:
    case MS_EV_MARIA_QUERY_COMPRESSED:
        return parse_query(p, ev, err);
    case MS_EV_XID:
        if (n < 8) {
            return fail(err, &ev->h, "xid event too short");
        }
        ev->u.xid.xid = uNle(b, 8);
        return true;
    case MS_EV_GTID:
    case MS_EV_ANONYMOUS_GTID: {
        char uuid[40];
        if (n < 25) {
            return fail(err, &ev->h, "GTID event too short");
        }
        if (ev->h.type == MS_EV_ANONYMOUS_GTID) {
            p->gtid[0] = '\0';
        } else {
            hex_uuid(b + 1, uuid);
            snprintf(p->gtid, sizeof(p->gtid), "%s:%" PRIu64, uuid, uNle(b + 17, 8));
        }
        return true;
    }
    case MS_EV_GTID_TAGGED:
        return parse_gtid_tagged(p, ev, err);
    case MS_EV_MARIA_GTID:
        if (n < 13) {
            return fail(err, &ev->h, "MariaDB GTID event too short");
        }
        snprintf(p->gtid, sizeof(p->gtid), "%u-%u-%" PRIu64, u32le(b + 8), ev->h.server_id,
                 uNle(b, 8));
        return true;
    case MS_EV_MARIA_GTID_LIST: {
        uint32_t count;
        size_t o = 0;
        if (n < 4) {
            return fail(err, &ev->h, "GTID list too short");
        }
        count = u32le(b) & 0x0fffffff;
        if ((size_t)count * 16 + 4 > n) {
            return fail(err, &ev->h, "GTID list truncated");
        }
        p->gtid[0] = '\0';
        for (uint32_t i = 0; i < count && o + 48 < sizeof(p->gtid); i++) {
            const uint8_t *e = b + 4 + (size_t)i * 16;
            int w = snprintf(p->gtid + o, sizeof(p->gtid) - o, "%s%u-%u-%" PRIu64, i > 0 ? "," : "",
                             u32le(e), u32le(e + 4), uNle(e + 8, 8));
            o += (size_t)w;
        }
        return true;
    }
    case MS_EV_TABLE_MAP:
        return parse_table_map(p, ev, err);
    case MS_EV_WRITE_ROWS_V1:
    case MS_EV_UPDATE_ROWS_V1:
    case MS_EV_DELETE_ROWS_V1:
    case MS_EV_WRITE_ROWS:
    case MS_EV_UPDATE_ROWS:
    case MS_EV_DELETE_ROWS:
    case MS_EV_PARTIAL_UPDATE_ROWS:
    case MS_EV_MARIA_WRITE_ROWS_COMPRESSED_V1:
    case MS_EV_MARIA_UPDATE_ROWS_COMPRESSED_V1:
    case MS_EV_MARIA_DELETE_ROWS_COMPRESSED_V1:
    case MS_EV_MARIA_WRITE_ROWS_COMPRESSED:
    case MS_EV_MARIA_UPDATE_ROWS_COMPRESSED:
    case MS_EV_MARIA_DELETE_ROWS_COMPRESSED:
        return parse_rows(p, ev, err);
    case MS_EV_TRANSACTION_PAYLOAD: {
        /* fields: (type, length, value) packed ints until type 0; then the payload */
        uint64_t type, flen, val = 0, comp = 0, usize = 0, psize = 0;
        size_t off = 0, used;
        while (true) {
            if (!ms_binlog_packed_int(b + off, n - off, &used, &type)) {
                return fail(err, &ev->h, "payload header truncated");
            }
            off += used;
            if (type == 0) {
                break;
            }
            if (!ms_binlog_packed_int(b + off, n - off, &used, &flen) || flen > n - off - used) {
                return fail(err, &ev->h, "payload header field truncated");
            }
            off += used;
            if (!ms_binlog_packed_int(b + off, (size_t)flen, &used, &val)) {
                val = 0;
            }
            if (type == 1) {
                psize = val;
            } else if (type == 2) {
                comp = val;
            } else if (type == 3) {
                usize = val;
            }
            off += (size_t)flen;
        }
        if (psize == 0 || psize > n - off) {
            psize = n - off;
        }
        if (comp == 255) { /* NONE */
            ev->u.payload.data = b + off;
            ev->u.payload.len = (size_t)psize;
            return true;
        }
        if (comp != 0) {
            return fail(err, &ev->h, "unknown payload compression");
        }
        if (usize == 0) {
            unsigned long long fs = ZSTD_getFrameContentSize(b + off, (size_t)psize);
            if (fs == ZSTD_CONTENTSIZE_ERROR || fs == ZSTD_CONTENTSIZE_UNKNOWN) {
                return fail(err, &ev->h, "zstd payload without a size");
            }
            usize = fs;
        }
        if (usize > MAX_PAYLOAD || !ensure(&p->scratch, &p->scratch_cap, (size_t)usize + 1)) {
            return fail(err, &ev->h, "transaction payload too large");
        }
        if (p->zstd == NULL && (p->zstd = ZSTD_createDCtx()) == NULL) {
            return fail(err, &ev->h, "out of memory");
        }
        size_t got =
            ZSTD_decompressDCtx(p->zstd, p->scratch, (size_t)usize, b + off, (size_t)psize);
        if (ZSTD_isError(got) || got != usize) {
            return fail(err, &ev->h, "zstd decompression failed");
        }
        ev->u.payload.data = p->scratch;
        ev->u.payload.len = (size_t)usize;
        return true;
    }
    default:
        return true; /* known-but-unused and unknown events: skipped by their length */
    }
}

static bool parse_event(struct ms_binlog_parser *p, const uint8_t *buf, size_t len,
                        struct ms_event *ev, bool has_checksum, struct ms_error *err)
{
    memset(ev, 0, sizeof(*ev));
    if (len < MS_BINLOG_HEADER_LEN) {
        return fail(err, NULL, "event shorter than its header");
    }
    ev->h.timestamp = u32le(buf);
    ev->h.type = buf[4];
    ev->h.server_id = u32le(buf + 5);
    ev->h.event_size = u32le(buf + 9);
    ev->h.log_pos = u32le(buf + 13);
    ev->h.flags = u16le(buf + 17);
    if (ev->h.event_size != len) {
        return fail(err, &ev->h, "event size does not match its buffer");
    }
    ev->body = buf + MS_BINLOG_HEADER_LEN;
    ev->body_len = len - MS_BINLOG_HEADER_LEN;
    if (ev->h.type == MS_EV_FORMAT_DESCRIPTION) {
        if (!has_checksum) {
            return fail(err, &ev->h, "format description inside a payload");
        }
        return parse_fde(p, buf, len, ev, err);
    }
    if (has_checksum && p->checksum == 1) {
        if (ev->body_len < 4) {
            return fail(err, &ev->h, "event too short for its checksum");
        }
        ev->body_len -= 4;
        if (p->verify) {
            uint32_t want = u32le(buf + len - 4);
            uint32_t got = crc32_of(0, buf, len - 4);
            if (want != got) {
                return fail(err, &ev->h, "CRC32 mismatch");
            }
        }
    }
    return parse_body(p, ev, err);
}

bool ms_binlog_parse(struct ms_binlog_parser *p, const uint8_t *buf, size_t len,
                     struct ms_event *ev, struct ms_error *err)
{
    return parse_event(p, buf, len, ev, true, err);
}

bool ms_binlog_payload_next(struct ms_binlog_parser *p, const struct ms_event *payload, size_t *off,
                            struct ms_event *inner, struct ms_error *err)
{
    const uint8_t *d = payload->u.payload.data;
    size_t n = payload->u.payload.len;
    uint32_t size;

    ms_error_clear(err);
    if (*off >= n) {
        return false;
    }
    if (n - *off < MS_BINLOG_HEADER_LEN) {
        return fail(err, &payload->h, "truncated event inside the payload");
    }
    size = u32le(d + *off + 9);
    if (size < MS_BINLOG_HEADER_LEN || size > n - *off) {
        return fail(err, &payload->h, "bad event size inside the payload");
    }
    if (!parse_event(p, d + *off, size, inner, false, err)) {
        return false;
    }
    *off += size;
    return true;
}

/* ---- TABLE_MAP ------------------------------------------------------------------------ */

static bool is_numeric(uint8_t t)
{
    switch (t) {
    case MS_T_DECIMAL:
    case MS_T_TINY:
    case MS_T_SHORT:
    case MS_T_LONG:
    case MS_T_FLOAT:
    case MS_T_DOUBLE:
    case MS_T_LONGLONG:
    case MS_T_INT24:
    case MS_T_NEWDECIMAL:
        return true;
    default:
        return false;
    }
}

static uint8_t real_type(const struct ms_column *c)
{
    return c->type == MS_T_STRING ? c->real_type : c->type;
}

static bool is_enum_set(const struct ms_column *c)
{
    uint8_t t = real_type(c);
    return t == MS_T_ENUM || t == MS_T_SET;
}

/* The columns that COLUMN_CHARSET / DEFAULT_CHARSET metadata counts (the servers'
 * is_character_type): strings and blobs, and GEOMETRY ("base class is blob for geom type"),
 * MariaDB's compressed columns and MySQL 9's VECTOR; not ENUM/SET (they have their own
 * metadata) nor JSON. */
static bool is_character(const struct ms_column *c)
{
    switch (real_type(c)) {
    case MS_T_STRING:
    case MS_T_VAR_STRING:
    case MS_T_VARCHAR:
    case MS_T_BLOB:
    case MS_T_TINY_BLOB:
    case MS_T_MEDIUM_BLOB:
    case MS_T_LONG_BLOB:
    case MS_T_GEOMETRY:
    case MS_T_BLOB_COMPRESSED:
    case MS_T_VARCHAR_COMPRESSED:
    case MS_T_VECTOR:
        return true;
    default:
        return false;
    }
}

static void free_str_list(char **v, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(v[i]);
    }
    free(v);
}

/* Reads n length-prefixed strings into a new array; false when truncated. */
/* count length-prefixed strings, as they are (NUL-terminated copies; *lens gets their byte
 * lengths, since UCS-2/UTF-16/UTF-32 labels hold NUL bytes). */
static bool read_str_list(const uint8_t *b, size_t n, size_t *off, size_t count, char ***out,
                          size_t **lens)
{
    char **v = calloc(count > 0 ? count : 1, sizeof(char *));
    size_t *l = calloc(count > 0 ? count : 1, sizeof(size_t));
    size_t used;
    uint64_t len;

    if (v == NULL || l == NULL) {
        free(v);
        free(l);
        return false;
    }
    for (size_t i = 0; i < count; i++) {
        if (!ms_binlog_packed_int(b + *off, n - *off, &used, &len) || len > n - *off - used ||
            (v[i] = malloc((size_t)len + 1)) == NULL) {
            for (size_t j = 0; j < i; j++) {
                free(v[j]);
            }
            free(v);
            free(l);
            return false;
        }
        *off += used;
        memcpy(v[i], b + *off, (size_t)len);
        v[i][len] = '\0';
        l[i] = (size_t)len;
        *off += (size_t)len;
    }
    *out = v;
    free(*lens); /* (a repeated field: the last one counts) */
    *lens = l;
    return true;
}

/* Applies collations to the columns selected by pick (character or enum/set columns):
 * DEFAULT form (default, then (index, collation) pairs) or per-column form. */
static bool read_charsets(struct ms_table_map *tm, const uint8_t *b, size_t n, bool per_column,
                          bool (*pick)(const struct ms_column *))
{
    size_t off = 0, used, k = 0;
    uint64_t v, idx;

    if (per_column) {
        for (size_t i = 0; i < tm->ncols; i++) {
            if (!pick(&tm->cols[i])) {
                continue;
            }
            if (!ms_binlog_packed_int(b + off, n - off, &used, &v)) {
                return false;
            }
            off += used;
            tm->cols[i].collation = (uint16_t)v;
        }
        return true;
    }
    if (!ms_binlog_packed_int(b, n, &used, &v)) {
        return false;
    }
    off = used;
    for (size_t i = 0; i < tm->ncols; i++) {
        if (pick(&tm->cols[i])) {
            tm->cols[i].collation = (uint16_t)v;
        }
    }
    while (off < n) {
        if (!ms_binlog_packed_int(b + off, n - off, &used, &idx)) {
            return false;
        }
        off += used;
        if (!ms_binlog_packed_int(b + off, n - off, &used, &v)) {
            return false;
        }
        off += used;
        /* idx counts only the picked columns */
        k = 0;
        for (size_t i = 0; i < tm->ncols; i++) {
            if (pick(&tm->cols[i]) && k++ == idx) {
                tm->cols[i].collation = (uint16_t)v;
                break;
            }
        }
    }
    return true;
}

static bool parse_optional_metadata(struct ms_table_map *tm, const uint8_t *b, size_t n)
{
    size_t off = 0, used;
    uint64_t type, len;

    while (off < n) {
        const uint8_t *f;
        size_t fo = 0;

        type = b[off++];
        if (!ms_binlog_packed_int(b + off, n - off, &used, &len) || len > n - off - used) {
            return false;
        }
        off += used;
        f = b + off;
        off += (size_t)len;
        switch (type) {
        case 1: { /* SIGNEDNESS: one bit per numeric column, most significant bit first */
            size_t k = 0;
            for (size_t i = 0; i < tm->ncols; i++) {
                if (!is_numeric(tm->cols[i].type)) {
                    continue;
                }
                if (k / 8 >= len) {
                    return false;
                }
                tm->cols[i].is_unsigned = (f[k / 8] >> (7 - k % 8)) & 1;
                k++;
            }
            break;
        }
        case 2: /* DEFAULT_CHARSET */
        case 3: /* COLUMN_CHARSET */
            if (!read_charsets(tm, f, (size_t)len, type == 3, is_character)) {
                return false;
            }
            break;
        case 10: /* ENUM_AND_SET_DEFAULT_CHARSET */
        case 11: /* ENUM_AND_SET_COLUMN_CHARSET */
            if (!read_charsets(tm, f, (size_t)len, type == 11, is_enum_set)) {
                return false;
            }
            break;
        case 4: /* COLUMN_NAME */
            for (size_t i = 0; i < tm->ncols; i++) {
                uint64_t l;
                if (!ms_binlog_packed_int(f + fo, (size_t)len - fo, &used, &l) ||
                    l > len - fo - used) {
                    return false;
                }
                fo += used;
                /* a BSON key: UTF-8 without NUL, as servers write names (found by fuzzing) */
                if (!bson_utf8_validate((const char *)f + fo, (size_t)l, false)) {
                    return false;
                }
                free(tm->cols[i].name);
                tm->cols[i].name = strndup((const char *)f + fo, (size_t)l);
                fo += (size_t)l;
            }
            break;
        case 5: /* SET_STR_VALUE */
        case 6: /* ENUM_STR_VALUE */
            for (size_t i = 0; i < tm->ncols; i++) {
                struct ms_column *c = &tm->cols[i];
                uint64_t count;
                if (real_type(c) != (type == 5 ? MS_T_SET : MS_T_ENUM)) {
                    continue;
                }
                if (!ms_binlog_packed_int(f + fo, (size_t)len - fo, &used, &count) || count > len) {
                    return false;
                }
                fo += used;
                /* a repeated field (malformed input, found by fuzzing) replaces the first */
                free_str_list(type == 5 ? c->set_values : c->enum_values,
                              type == 5 ? c->n_set : c->n_enum);
                if (type == 5) {
                    c->set_values = NULL;
                    c->n_set = 0;
                } else {
                    c->enum_values = NULL;
                    c->n_enum = 0;
                }
                if (!read_str_list(f, (size_t)len, &fo, (size_t)count,
                                   type == 5 ? &c->set_values : &c->enum_values, &c->label_len)) {
                    return false;
                }
                if (type == 5) {
                    c->n_set = (size_t)count;
                } else {
                    c->n_enum = (size_t)count;
                }
            }
            break;
        case 7: /* GEOMETRY_TYPE */
            for (size_t i = 0; i < tm->ncols; i++) {
                uint64_t g;
                if (tm->cols[i].type != MS_T_GEOMETRY) {
                    continue;
                }
                if (!ms_binlog_packed_int(f + fo, (size_t)len - fo, &used, &g)) {
                    return false;
                }
                fo += used;
                tm->cols[i].geometry_type = (uint8_t)g;
            }
            break;
        case 8: /* SIMPLE_PRIMARY_KEY */
        case 9: /* PRIMARY_KEY_WITH_PREFIX: (index, prefix) pairs */
            free(tm->pk);
            tm->pk = calloc(tm->ncols > 0 ? tm->ncols : 1, sizeof(size_t));
            tm->npk = 0;
            while (fo < len) {
                uint64_t idx, prefix;
                if (!ms_binlog_packed_int(f + fo, (size_t)len - fo, &used, &idx) ||
                    idx >= tm->ncols || tm->npk >= tm->ncols) {
                    return false;
                }
                fo += used;
                if (type == 9) {
                    if (!ms_binlog_packed_int(f + fo, (size_t)len - fo, &used, &prefix)) {
                        return false;
                    }
                    fo += used;
                }
                tm->pk[tm->npk++] = (size_t)idx;
            }
            break;
        default: /* COLUMN_VISIBILITY and future kinds */
            break;
        }
    }
    return true;
}

static bool parse_table_map(struct ms_binlog_parser *p, struct ms_event *ev, struct ms_error *err)
{
    const uint8_t *b = ev->body;
    size_t n = ev->body_len, ph = post_header_len(p, MS_EV_TABLE_MAP), off, used;
    uint64_t ncols, meta_len;
    struct ms_table_map *tm;
    const uint8_t *types;

    if (ph < 6 || n < ph + 2) {
        return fail(err, &ev->h, "table map too short");
    }
    if (p->clear_maps) {
        clear_maps(p);
    }
    tm = calloc(1, sizeof(*tm));
    tm->table_id = ph == 6 ? u32le(b) : uNle(b, 6);
    off = ph;
    if (off + 1 + b[off] + 1 > n) {
        goto truncated;
    }
    if (!bson_utf8_validate((const char *)b + off + 1, b[off], false)) {
        goto bad_name;
    }
    tm->db = strndup((const char *)b + off + 1, b[off]);
    off += 1 + b[off] + 1;
    if (off + 1 > n || off + 1 + b[off] + 1 > n) {
        goto truncated;
    }
    if (!bson_utf8_validate((const char *)b + off + 1, b[off], false)) {
        goto bad_name;
    }
    tm->table = strndup((const char *)b + off + 1, b[off]);
    off += 1 + b[off] + 1;
    if (!ms_binlog_packed_int(b + off, n - off, &used, &ncols) || ncols > 4096 ||
        ncols > n - off - used) {
        goto truncated;
    }
    off += used;
    types = b + off;
    off += (size_t)ncols;
    tm->ncols = (size_t)ncols;
    tm->cols = calloc(tm->ncols > 0 ? tm->ncols : 1, sizeof(struct ms_column));
    if (!ms_binlog_packed_int(b + off, n - off, &used, &meta_len) || meta_len > n - off - used) {
        goto truncated;
    }
    off += used;
    {
        size_t mo = 0;
        for (size_t i = 0; i < tm->ncols; i++) {
            struct ms_column *c = &tm->cols[i];
            size_t mu = 0;
            c->type = types[i];
            if (!ms_rows_column_meta(c->type, b + off + mo, (size_t)meta_len - mo, &mu, &c->meta)) {
                goto truncated;
            }
            mo += mu;
            if (c->type == MS_T_STRING) {
                uint8_t b0 = (uint8_t)(c->meta >> 8);
                c->real_type = (b0 & 0x30) != 0x30 ? (uint8_t)(b0 | 0x30) : b0;
            } else {
                c->real_type = c->type;
            }
        }
    }
    off += (size_t)meta_len;
    if (n - off < (tm->ncols + 7) / 8) {
        goto truncated;
    }
    for (size_t i = 0; i < tm->ncols; i++) {
        tm->cols[i].nullable = (b[off + i / 8] >> (i % 8)) & 1;
    }
    off += (tm->ncols + 7) / 8;
    if (!parse_optional_metadata(tm, b + off, n - off)) {
        ms_table_map_free(tm);
        return fail(err, &ev->h, "malformed optional metadata");
    }
    for (size_t i = 0; i < tm->ncols; i++) {
        struct ms_column *c = &tm->cols[i];
        c->is_binary = c->collation == 63;
        /* ENUM/SET labels arrive in the column's character set: store them as UTF-8 */
        if (!ms_rows_labels_to_utf8(c->collation, c->enum_values,
                                    c->enum_values != NULL ? c->label_len : NULL, c->n_enum, err) ||
            !ms_rows_labels_to_utf8(c->collation, c->set_values,
                                    c->set_values != NULL ? c->label_len : NULL, c->n_set, err)) {
            ms_error_prefix(err, "%s.%s column %zu labels", tm->db, tm->table, i + 1);
            ms_table_map_free(tm);
            return false;
        }
        free(c->label_len); /* UTF-8 and NUL-terminated from here on */
        c->label_len = NULL;
    }
    /* replace a map with the same id, else append */
    for (size_t i = 0; i < p->nmaps; i++) {
        if (p->maps[i].id == tm->table_id) {
            drop_map(p, &p->maps[i]);
            p->maps[i].map = tm;
            p->maps[i].keys = NULL;
            ev->u.table_map.map = tm;
            return true;
        }
    }
    if (p->nmaps == p->capmaps) {
        size_t cap = p->capmaps > 0 ? p->capmaps * 2 : 16;
        struct map_slot *nm = realloc(p->maps, cap * sizeof(*nm));
        if (nm == NULL) {
            ms_table_map_free(tm);
            return fail(err, &ev->h, "out of memory");
        }
        p->maps = nm;
        p->capmaps = cap;
    }
    p->maps[p->nmaps].id = tm->table_id;
    p->maps[p->nmaps].map = tm;
    p->maps[p->nmaps].keys = NULL;
    p->nmaps++;
    ev->u.table_map.map = tm;
    return true;
truncated:
    ms_table_map_free(tm);
    return fail(err, &ev->h, "table map truncated");
bad_name:
    /* names go to MongoDB (collections, field names) and into JSON: servers write UTF-8 */
    ms_table_map_free(tm);
    return fail(err, &ev->h, "database or table name is not UTF-8");
}

/* ---- rows events ------------------------------------------------------------------------ */

static bool parse_rows(struct ms_binlog_parser *p, struct ms_event *ev, struct ms_error *err)
{
    const uint8_t *b = ev->body;
    size_t n = ev->body_len, ph = post_header_len(p, ev->h.type), off, used, bm;
    uint64_t ncols;
    uint16_t flags;
    uint8_t t = ev->h.type;
    bool compressed =
        t >= MS_EV_MARIA_WRITE_ROWS_COMPRESSED_V1 && t <= MS_EV_MARIA_DELETE_ROWS_COMPRESSED;

    if (ph < 6 || n < ph) {
        return fail(err, &ev->h, "rows event too short");
    }
    ev->u.rows.table_id = ph == 6 ? u32le(b) : uNle(b, 6);
    flags = u16le(b + (ph == 6 ? 4 : 6));
    off = ph;
    if (ph >= 10) { /* v2: extra data, its length includes the 2 length bytes */
        uint16_t extra = u16le(b + 8);
        if (extra < 2 || off + extra - 2 > n) {
            return fail(err, &ev->h, "rows event extra data truncated");
        }
        off += extra - 2u;
    }
    switch (t) {
    case MS_EV_WRITE_ROWS_V1:
    case MS_EV_WRITE_ROWS:
    case MS_EV_MARIA_WRITE_ROWS_COMPRESSED_V1:
    case MS_EV_MARIA_WRITE_ROWS_COMPRESSED:
        ev->u.rows.op = MS_ROW_INSERT;
        break;
    case MS_EV_DELETE_ROWS_V1:
    case MS_EV_DELETE_ROWS:
    case MS_EV_MARIA_DELETE_ROWS_COMPRESSED_V1:
    case MS_EV_MARIA_DELETE_ROWS_COMPRESSED:
        ev->u.rows.op = MS_ROW_DELETE;
        break;
    default:
        ev->u.rows.op = MS_ROW_UPDATE;
        break;
    }
    ev->u.rows.partial_json = t == MS_EV_PARTIAL_UPDATE_ROWS;
    if (!ms_binlog_packed_int(b + off, n - off, &used, &ncols) || ncols > 4096) {
        return fail(err, &ev->h, "rows event column count truncated");
    }
    off += used;
    ev->u.rows.ncols = (size_t)ncols;
    bm = ((size_t)ncols + 7) / 8;
    if (n - off < bm * (ev->u.rows.op == MS_ROW_UPDATE ? 2 : 1)) {
        return fail(err, &ev->h, "rows event bitmaps truncated");
    }
    ev->u.rows.present = b + off;
    off += bm;
    ev->u.rows.present2 = ev->u.rows.present;
    if (ev->u.rows.op == MS_ROW_UPDATE) {
        ev->u.rows.present2 = b + off;
        off += bm;
    }
    if (compressed) {
        if (!decompress_maria(p, b + off, n - off, &ev->u.rows.rows, &ev->u.rows.rows_len, ev,
                              err)) {
            return false;
        }
    } else {
        ev->u.rows.rows = b + off;
        ev->u.rows.rows_len = n - off;
    }
    ev->u.rows.map = ms_binlog_parser_table(p, ev->u.rows.table_id);
    if (flags & STMT_END_F) {
        p->clear_maps = true;
    }
    return true;
}

/* After image of a PARTIAL_UPDATE_ROWS row whose JSON columns may hold diffs: decoded column
 * by column, diffs applied to the before image's values. */
static bool decode_partial_after(struct ms_binlog_parser *parser, const struct ms_table_map *tm,
                                 const uint8_t *present, const uint8_t *partial, const uint8_t *p,
                                 size_t avail, size_t *used, const bson_t *before, bson_t *after,
                                 const struct ms_value_opts *opts, struct ms_error *err)
{
    size_t npresent = popcount_bits(present, tm->ncols), nb = (npresent + 7) / 8, off = nb;
    size_t k = 0, j = 0;
    char fallback[32];

    if (avail < nb) {
        ms_error_set(err, MS_ERR_DECODE, MS_DECODE_MALFORMED,
                     "%s.%s: partial after image truncated", tm->db, tm->table);
        return false;
    }
    for (size_t i = 0; i < tm->ncols; i++) {
        const struct ms_column *c = &tm->cols[i];
        const char *name = c->name;
        bool is_null, is_partial = false;
        if (!((present[i / 8] >> (i % 8)) & 1)) {
            continue;
        }
        if (name == NULL) {
            snprintf(fallback, sizeof(fallback), "col_%zu", i);
            name = fallback;
        }
        is_null = (p[k / 8] >> (k % 8)) & 1;
        k++;
        if (c->type == MS_T_JSON) {
            is_partial = partial != NULL && ((partial[j / 8] >> (j % 8)) & 1);
            j++;
        }
        if (is_null) {
            BSON_APPEND_NULL(after, name);
            continue;
        }
        if (is_partial) {
            size_t lb = c->meta, dlen;
            bson_t diffed;
            bson_iter_t it;
            if (lb < 1 || lb > 4 || avail - off < lb) {
                ms_error_set(err, MS_ERR_DECODE, MS_DECODE_MALFORMED,
                             "%s.%s.%s: JSON diff truncated", tm->db, tm->table, name);
                return false;
            }
            dlen = (size_t)uNle(p + off, lb);
            off += lb;
            if (dlen > avail - off) {
                ms_error_set(err, MS_ERR_DECODE, MS_DECODE_MALFORMED,
                             "%s.%s.%s: JSON diff truncated", tm->db, tm->table, name);
                return false;
            }
            if (!ms_mysqljson_apply_diffs(before, name, p + off, dlen, &diffed, err)) {
                bson_destroy(&diffed);
                if (err == NULL || err->code != MS_MYSQLJSON_CANNOT_APPLY ||
                    parser->nunresolved == sizeof(parser->unresolved) / sizeof(char *)) {
                    return false;
                }
                /* not applicable to this before image: the row is re-read instead */
                parser->unresolved[parser->nunresolved++] = strdup(name);
                ms_error_clear(err);
                off += dlen;
                continue;
            }
            if (bson_iter_init_find(&it, &diffed, name)) {
                bson_append_iter(after, name, -1, &it);
            }
            bson_destroy(&diffed);
            off += dlen;
        } else {
            size_t u = 0;
            if (!ms_rows_decode_value(c, p + off, avail - off, &u, after, name, opts, err)) {
                return false;
            }
            off += u;
        }
    }
    *used = off;
    return true;
}

/* A row whose images hold no column (bitmaps selecting none) takes no bytes: its readers would
 * never get past it (found by fuzzing). Servers never write one. */
#define NO_COLUMNS "row of no columns (the column bitmaps select none)"

/* The checks before each row of ms_binlog_rows_next*: false at the end or on error. */
static bool rows_ready(const struct ms_event *ev, size_t off, struct ms_error *err)
{
    const struct ms_table_map *tm = ev->u.rows.map;

    if (off >= ev->u.rows.rows_len) {
        return false;
    }
    if (tm == NULL) {
        return fail(err, &ev->h, "rows event for a table id without a TABLE_MAP");
    }
    if (tm->ncols != ev->u.rows.ncols) {
        ms_error_set(err, MS_ERR_DECODE, MS_DECODE_SCHEMA,
                     "%s.%s: rows event has %zu columns, its table map %zu", tm->db, tm->table,
                     ev->u.rows.ncols, tm->ncols);
        return false;
    }
    return true;
}

const struct ms_rows_json_keys *ms_binlog_rows_json_keys(struct ms_binlog_parser *p,
                                                         const struct ms_event *ev)
{
    const struct ms_table_map *tm = ev->u.rows.map;

    for (size_t i = p->nmaps; i > 0 && tm != NULL; i--) {
        if (p->maps[i - 1].map == tm) {
            if (p->maps[i - 1].keys == NULL) {
                p->maps[i - 1].keys = ms_rows_json_keys_new(tm);
            }
            return p->maps[i - 1].keys;
        }
    }
    return NULL;
}

bool ms_binlog_rows_write_json(const struct ms_event *ev, const struct ms_rows_json_keys *keys,
                               size_t *off, const struct ms_value_opts *opts, const char *mid,
                               size_t mid_len, struct ms_buf *out, struct ms_error *err)
{
    const struct ms_table_map *tm = ev->u.rows.map;
    const uint8_t *r = ev->u.rows.rows;
    size_t n = ev->u.rows.rows_len, used = 0, o = *off, mark = out->len;
    bool ok = false;

    if (err != NULL && err->domain != MS_ERR_NONE) {
        ms_error_clear(err); /* (a full clear per row cost as much as a column) */
    }
    if (!rows_ready(ev, o, err)) {
        return false;
    }
    if (ev->u.rows.partial_json) {
        return fail(err, &ev->h, "JSON diffs need ms_binlog_rows_next");
    }
    if (keys == NULL) {
        return fail(err, &ev->h, "no JSON keys for the table map (out of memory)");
    }
    if (ev->u.rows.op == MS_ROW_INSERT) {
        ok = ms_buf_put(out, "null", 4);
    } else {
        ok = ms_rows_image_to_json(tm, keys, ev->u.rows.present, r + o, n - o, &used, out, opts,
                                   err);
        o += used;
    }
    ok = ok && ms_buf_put(out, mid, mid_len);
    if (ok && ev->u.rows.op == MS_ROW_DELETE) {
        ok = ms_buf_put(out, "null", 4);
    } else if (ok) {
        ok = ms_rows_image_to_json(tm, keys, ev->u.rows.present2, r + o, n - o, &used, out, opts,
                                   err);
        o += used;
    }
    if (ok && o == *off) {
        ok = fail(err, &ev->h, NO_COLUMNS);
    }
    if (!ok) {
        if (err == NULL || err->domain == MS_ERR_NONE) {
            fail(err, &ev->h, "out of memory");
        }
        out->len = mark;
        return false;
    }
    *off = o;
    return true;
}

bool ms_binlog_rows_next(struct ms_binlog_parser *p, const struct ms_event *ev, size_t *off,
                         const struct ms_value_opts *opts, bson_t *before, bson_t *after,
                         struct ms_error *err)
{
    const struct ms_table_map *tm = ev->u.rows.map;
    const uint8_t *r = ev->u.rows.rows;
    size_t n = ev->u.rows.rows_len, used = 0, start;
    struct ms_error bad_text = {0}; /* the row is whole, but a text value is invalid */

    bson_init(before);
    bson_init(after);
    ms_error_clear(err);
    clear_unresolved(p);
    if (!rows_ready(ev, *off, err)) {
        return false;
    }
    start = *off;
    if (ev->u.rows.op != MS_ROW_INSERT) {
        if (!ms_rows_decode_image(tm, ev->u.rows.present, r + *off, n - *off, &used, before, opts,
                                  err)) {
            if (!ms_binlog_rows_bad_text(err)) {
                return false;
            }
            bad_text = *err;
            ms_error_clear(err);
        }
        *off += used;
    }
    if (ev->u.rows.op != MS_ROW_DELETE) {
        const uint8_t *partial = NULL;
        if (ev->u.rows.partial_json) {
            uint64_t value_options;
            size_t u;
            if (!ms_binlog_packed_int(r + *off, n - *off, &u, &value_options)) {
                return fail(err, &ev->h, "partial update value options truncated");
            }
            *off += u;
            if (value_options & 1) {
                size_t njson = 0;
                for (size_t i = 0; i < tm->ncols; i++) {
                    if (tm->cols[i].type == MS_T_JSON &&
                        ((ev->u.rows.present2[i / 8] >> (i % 8)) & 1)) {
                        njson++;
                    }
                }
                if (n - *off < (njson + 7) / 8) {
                    return fail(err, &ev->h, "partial update bitmap truncated");
                }
                partial = r + *off;
                *off += (njson + 7) / 8;
            }
        }
        if (partial != NULL) {
            if (!decode_partial_after(p, tm, ev->u.rows.present2, partial, r + *off, n - *off,
                                      &used, before, after, opts, err)) {
                return false;
            }
        } else if (!ms_rows_decode_image(tm, ev->u.rows.present2, r + *off, n - *off, &used, after,
                                         opts, err)) {
            if (!ms_binlog_rows_bad_text(err)) {
                return false;
            }
            if (bad_text.domain == MS_ERR_NONE) {
                bad_text = *err;
            }
            ms_error_clear(err);
        }
        *off += used;
    }
    if (*off == start) {
        return fail(err, &ev->h, NO_COLUMNS);
    }
    if (bad_text.domain != MS_ERR_NONE) {
        if (err != NULL) {
            *err = bad_text;
        }
        return false;
    }
    return true;
}

bool ms_binlog_rows_bad_text(const struct ms_error *err)
{
    return err != NULL && err->domain == MS_ERR_DECODE && err->code == MS_DECODE_CHARSET;
}

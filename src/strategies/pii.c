/* Personal data in documents (tables.<t>.pii): keep, drop, redact or hash a field.
 *
 * A hash is the lower-case hex HMAC-SHA256, under sync.pii_key, of the value's canonical text,
 * so equal values give equal hashes across tables, runs and hosts with the same key (joins and
 * counts keep working) while the value cannot be recovered or guessed without the key:
 *   string      its UTF-8 bytes          int32/int64  decimal ("42", "-7")
 *   double      shortest text that reads back to the same double (%.15g, %.16g or %.17g;
 *               "nan", "inf", "-inf")
 *   Decimal128  bson_decimal128_to_string ("12.50")
 *   bool        "true" / "false"         date         ISO-8601 UTC with milliseconds
 *   binary      its bytes                                 ("2024-01-02T03:04:05.000Z")
 *   document, array and any other type: its relaxed Extended JSON as libbson prints it
 *   ({ "a" : 1 }, [ 1, 2 ]).
 * null stays null for every action but DROP. */
#include "mysync/strategy.h"

#include <inttypes.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

enum ms_pii_action ms_pii_action(const struct ms_table_cfg *tcfg, const char *field)
{
    const char *v = tcfg != NULL ? ms_kvlist_get(&tcfg->pii, field) : NULL;

    if (v == NULL || strcasecmp(v, "keep") == 0) {
        return MS_PII_KEEP;
    }
    if (strcasecmp(v, "redact") == 0) {
        return MS_PII_REDACT;
    }
    if (strcasecmp(v, "hash") == 0) {
        return MS_PII_HASH;
    }
    /* "drop", and anything else: the configuration refuses unknown actions, and personal data
     * must not leak through one that slipped by */
    return MS_PII_DROP;
}

/* The text of a value as libbson's relaxed Extended JSON writes it, without the wrapper
 * document: { "v" : X } -> X. Freed with bson_free. */
static char *relaxed_json(const bson_value_t *value, size_t *len)
{
    bson_t wrap = BSON_INITIALIZER;
    size_t n = 0;
    char *s;

    bson_append_value(&wrap, "v", 1, value);
    s = bson_as_relaxed_extended_json(&wrap, &n);
    bson_destroy(&wrap);
    if (s == NULL) {
        return NULL;
    }
    /* "{ \"v\" : " ... " }" */
    if (n >= 10 && strncmp(s, "{ \"v\" : ", 8) == 0 && strcmp(s + n - 2, " }") == 0) {
        n -= 10;
        memmove(s, s + 8, n);
        s[n] = '\0';
    }
    *len = n;
    return s;
}

static void iso_date(int64_t ms, char *out, size_t outsz)
{
    int64_t secs = ms / 1000, frac = ms % 1000;
    time_t t;
    struct tm tm;

    if (frac < 0) {
        frac += 1000;
        secs--;
    }
    t = (time_t)secs;
    if (gmtime_r(&t, &tm) == NULL) {
        snprintf(out, outsz, "%" PRId64, ms);
        return;
    }
    snprintf(out, outsz, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900, tm.tm_mon + 1,
             tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, (int)frac);
}

static void shortest_double(double d, char *out, size_t outsz)
{
    for (int prec = 15; prec <= 17; prec++) {
        snprintf(out, outsz, "%.*g", prec, d);
        if (strtod(out, NULL) == d) {
            return;
        }
    }
}

/* HMAC-SHA256 of the canonical text of value, in hex (65 bytes with the NUL). */
static bool hash_value(const bson_value_t *value, const char *key, size_t keylen, char hex[65],
                       struct ms_error *err)
{
    char buf[64];
    const void *data = buf;
    size_t len = 0;
    char *owned = NULL;
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    bool ok;

    switch (value->value_type) {
    case BSON_TYPE_UTF8:
        data = value->value.v_utf8.str;
        len = value->value.v_utf8.len;
        break;
    case BSON_TYPE_INT32:
        len = (size_t)snprintf(buf, sizeof(buf), "%" PRId32, value->value.v_int32);
        break;
    case BSON_TYPE_INT64:
        len = (size_t)snprintf(buf, sizeof(buf), "%" PRId64, value->value.v_int64);
        break;
    case BSON_TYPE_DOUBLE:
        shortest_double(value->value.v_double, buf, sizeof(buf));
        len = strlen(buf);
        break;
    case BSON_TYPE_DECIMAL128:
        bson_decimal128_to_string(&value->value.v_decimal128, buf);
        len = strlen(buf);
        break;
    case BSON_TYPE_BOOL:
        data = value->value.v_bool ? "true" : "false";
        len = strlen(data);
        break;
    case BSON_TYPE_DATE_TIME:
        iso_date(value->value.v_datetime, buf, sizeof(buf));
        len = strlen(buf);
        break;
    case BSON_TYPE_BINARY:
        data = value->value.v_binary.data;
        len = value->value.v_binary.data_len;
        break;
    default:
        owned = relaxed_json(value, &len);
        if (owned == NULL) {
            ms_error_set(err, MS_ERR_STRATEGY, 20, "pii: a value of type 0x%02x has no text",
                         (unsigned)value->value_type);
            return false;
        }
        data = owned;
        break;
    }
    /* HMAC() is the one-shot API that OpenSSL 3 keeps (HMAC_CTX_* are deprecated) */
    ok = HMAC(EVP_sha256(), key, (int)keylen, len > 0 ? data : (const void *)"", len, md, &mdlen) !=
             NULL &&
         mdlen == 32;
    bson_free(owned);
    if (!ok) {
        ms_error_set(err, MS_ERR_SYSTEM, 1, "pii: HMAC-SHA256 failed (OpenSSL)");
        return false;
    }
    for (unsigned int i = 0; i < mdlen; i++) {
        static const char digits[] = "0123456789abcdef";
        hex[2 * i] = digits[md[i] >> 4];
        hex[2 * i + 1] = digits[md[i] & 15];
    }
    hex[64] = '\0';
    return true;
}

bool ms_pii_append(bson_t *doc, const char *key, const bson_value_t *value,
                   enum ms_pii_action action, const char *hmac_key, size_t hmac_key_len,
                   struct ms_error *err)
{
    char hex[65];

    switch (action) {
    case MS_PII_DROP:
        return true;
    case MS_PII_KEEP:
        return bson_append_value(doc, key, -1, value);
    case MS_PII_REDACT:
        if (value->value_type == BSON_TYPE_NULL) {
            return BSON_APPEND_NULL(doc, key);
        }
        return BSON_APPEND_UTF8(doc, key, "[REDACTED]");
    case MS_PII_HASH:
        /* checked before looking at the value, so a missing key shows on the first row */
        if (hmac_key == NULL || hmac_key_len == 0) {
            ms_error_set(err, MS_ERR_CONFIG, MS_CONFIG_MISSING,
                         "pii: hash of %s needs a key (sync.pii_key / SYNC_PII_KEY)", key);
            return false;
        }
        if (value->value_type == BSON_TYPE_NULL) {
            return BSON_APPEND_NULL(doc, key);
        }
        if (!hash_value(value, hmac_key, hmac_key_len, hex, err)) {
            return false;
        }
        return bson_append_utf8(doc, key, -1, hex, 64);
    }
    ms_error_set(err, MS_ERR_STRATEGY, 21, "pii: unknown action %d for %s", (int)action, key);
    return false;
}

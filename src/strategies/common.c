/* Helpers the strategies share: configured column names, the table of a role, and exact
 * decimal arithmetic for money (a line total is qty x unit_price, an order total their sum:
 * doubles would round, Decimal128 has no arithmetic in libbson). */
#include "mysync/strategy.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *ms_strategy_column(const struct ms_table_cfg *tcfg, const char *logical)
{
    const char *v = tcfg != NULL ? ms_kvlist_get(&tcfg->columns, logical) : NULL;

    return v != NULL ? v : logical;
}

void ms_strategy_role_table(const struct ms_config *cfg, const char *strategy, const char *role,
                            const char *default_db, char *db, size_t dbsz, char *table,
                            size_t tablesz)
{
    for (size_t i = 0; i < cfg->ntables; i++) {
        const struct ms_table_cfg *t = &cfg->tables[i];
        const char *trole, *dot;

        if (t->strategy == NULL || strcmp(t->strategy, strategy) != 0) {
            continue;
        }
        dot = strchr(t->name, '.');
        trole = t->role != NULL ? t->role : (dot != NULL ? dot + 1 : t->name);
        if (strcmp(trole, role) != 0) {
            continue;
        }
        if (dot != NULL) {
            snprintf(db, dbsz, "%.*s", (int)(dot - t->name), t->name);
            snprintf(table, tablesz, "%s", dot + 1);
        } else {
            snprintf(db, dbsz, "%s", default_db != NULL ? default_db : "");
            snprintf(table, tablesz, "%s", t->name);
        }
        return;
    }
    snprintf(db, dbsz, "%s", default_db != NULL ? default_db : "");
    snprintf(table, tablesz, "%s", role);
}

/* ---- decimals ------------------------------------------------------------------------- */

#define DEC_MAX_DIGITS 38

static const __int128 TEN38 = (__int128)10000000000000000000ULL * (__int128)10000000000000000000ULL;

static __int128 abs128(__int128 v)
{
    return v < 0 ? -v : v;
}

static int digits(__int128 v)
{
    int n = 1;

    v = abs128(v);
    while (v >= 10) {
        v /= 10;
        n++;
    }
    return n;
}

/* coef * 10^k without overflow past 38 digits. */
static bool scale_up(__int128 coef, int k, __int128 *out)
{
    for (int i = 0; i < k; i++) {
        if (abs128(coef) >= TEN38 / 10) {
            return false;
        }
        coef *= 10;
    }
    *out = coef;
    return true;
}

/* "-12.50", "1E+2", "0.000" -> coefficient and exponent, keeping the scale written
 * (12.50 is 1250E-2, not 125E-1): totals keep the column's scale. */
static bool parse_decimal(const char *s, struct ms_decimal *out)
{
    __int128 coef = 0;
    int32_t exp = 0;
    bool neg = false, any = false, dot = false;
    int nd = 0;

    if (*s == '-' || *s == '+') {
        neg = *s == '-';
        s++;
    }
    for (; *s != '\0'; s++) {
        if (*s >= '0' && *s <= '9') {
            any = true;
            if (coef == 0 && *s == '0') {
                if (dot) {
                    exp--;
                }
                continue; /* leading zeros count nothing */
            }
            if (++nd > DEC_MAX_DIGITS) {
                return false;
            }
            coef = coef * 10 + (*s - '0');
            if (dot) {
                exp--;
            }
        } else if (*s == '.' && !dot) {
            dot = true;
        } else if ((*s == 'e' || *s == 'E') && any) {
            char *end;
            long e = strtol(s + 1, &end, 10);
            if (*end != '\0' || end == s + 1 || e > 10000 || e < -10000) {
                return false;
            }
            exp += (int32_t)e;
            break;
        } else {
            return false;
        }
    }
    if (!any) {
        return false;
    }
    out->coef = neg ? -coef : coef;
    out->exp = exp;
    return true;
}

bool ms_decimal_from_value(const bson_value_t *v, struct ms_decimal *out)
{
    char buf[BSON_DECIMAL128_STRING + 8];

    switch (v->value_type) {
    case BSON_TYPE_DECIMAL128:
        bson_decimal128_to_string(&v->value.v_decimal128, buf);
        if (strpbrk(buf, "NnIi") != NULL) {
            return false; /* NaN, Infinity */
        }
        return parse_decimal(buf, out);
    case BSON_TYPE_INT32:
        out->coef = v->value.v_int32;
        out->exp = 0;
        return true;
    case BSON_TYPE_INT64:
        out->coef = v->value.v_int64;
        out->exp = 0;
        return true;
    case BSON_TYPE_UTF8:
        if (v->value.v_utf8.len >= sizeof(buf) ||
            memchr(v->value.v_utf8.str, 0, v->value.v_utf8.len) != NULL) {
            return false;
        }
        memcpy(buf, v->value.v_utf8.str, v->value.v_utf8.len);
        buf[v->value.v_utf8.len] = '\0';
        return parse_decimal(buf, out);
    case BSON_TYPE_DOUBLE: {
        double d = v->value.v_double;
        if (d != d || d - d != 0) {
            return false;
        }
        /* the shortest text that reads back as d: 0.1 stays 0.1 */
        for (int prec = 1; prec <= 17; prec++) {
            snprintf(buf, sizeof(buf), "%.*g", prec, d);
            if (strtod(buf, NULL) == d) {
                break;
            }
        }
        return parse_decimal(buf, out);
    }
    default:
        return false;
    }
}

bool ms_decimal_add(const struct ms_decimal *a, const struct ms_decimal *b, struct ms_decimal *out)
{
    struct ms_decimal x = *a, y = *b;
    __int128 sum;

    /* bring both to the smaller exponent */
    if (x.exp > y.exp) {
        struct ms_decimal t = x;
        x = y;
        y = t;
    }
    if (!scale_up(y.coef, y.exp - x.exp, &y.coef)) {
        return false;
    }
    sum = x.coef + y.coef;
    if (abs128(sum) >= TEN38) {
        return false;
    }
    out->coef = sum;
    out->exp = x.exp;
    return true;
}

bool ms_decimal_mul(const struct ms_decimal *a, const struct ms_decimal *b, struct ms_decimal *out)
{
    if (a->coef == 0 || b->coef == 0) {
        out->coef = 0;
        out->exp = a->exp + b->exp;
        return true;
    }
    if (digits(a->coef) + digits(b->coef) > DEC_MAX_DIGITS + 1) {
        return false;
    }
    if (abs128(a->coef) > (TEN38 - 1) / abs128(b->coef)) {
        return false;
    }
    out->coef = a->coef * b->coef;
    out->exp = a->exp + b->exp;
    return true;
}

int ms_decimal_sign(const struct ms_decimal *a)
{
    return a->coef < 0 ? -1 : a->coef > 0 ? 1 : 0;
}

void ms_decimal_to_string(const struct ms_decimal *a, char *out, size_t outsz)
{
    char d[48];
    int n = 0;
    __int128 c = abs128(a->coef);
    size_t o = 0;
    char buf[128];

    do {
        d[n++] = (char)('0' + (int)(c % 10));
        c /= 10;
    } while (c > 0);
    if (a->coef < 0) {
        buf[o++] = '-';
    }
    if (a->exp >= 0) {
        for (int i = n - 1; i >= 0; i--) {
            buf[o++] = d[i];
        }
        for (int32_t i = 0; i < a->exp && o + 1 < sizeof(buf); i++) {
            buf[o++] = '0';
        }
    } else {
        int frac = -a->exp;
        if (frac + 4 > (int)sizeof(buf) - 48) {
            frac = (int)sizeof(buf) - 52; /* not reached for money */
        }
        if (n <= frac) {
            buf[o++] = '0';
            buf[o++] = '.';
            for (int i = 0; i < frac - n; i++) {
                buf[o++] = '0';
            }
            for (int i = n - 1; i >= 0; i--) {
                buf[o++] = d[i];
            }
        } else {
            for (int i = n - 1; i >= 0; i--) {
                buf[o++] = d[i];
                if (i == frac) {
                    buf[o++] = '.';
                }
            }
        }
    }
    buf[o] = '\0';
    snprintf(out, outsz, "%s", buf);
}

bool ms_decimal_append(bson_t *doc, const char *key, const struct ms_decimal *a, int decimal_as)
{
    char s[160];
    bson_decimal128_t d;

    ms_decimal_to_string(a, s, sizeof(s));
    switch (decimal_as) {
    case MS_DECIMAL_AS_STRING:
        return BSON_APPEND_UTF8(doc, key, s);
    case MS_DECIMAL_AS_DOUBLE:
        return BSON_APPEND_DOUBLE(doc, key, strtod(s, NULL));
    default:
        if (digits(a->coef) > 34 || !bson_decimal128_from_string(s, &d)) {
            return false;
        }
        return BSON_APPEND_DECIMAL128(doc, key, &d);
    }
}

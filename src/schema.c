#define MS_LOG_DOMAIN "schema"

#include "mysync/schema.h"
#include "mysync/log.h"
#include "mysync/mysql.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

struct col_def {
    char *name;
    bool is_unsigned;
    bool is_json;   /* MariaDB: json_valid() check on a text column */
    bool is_binary; /* BLOB/BINARY/VARBINARY without a collation */
    uint16_t collation;
    char **labels; /* ENUM or SET labels */
    size_t nlabels;
};

struct table_def {
    char *db, *table;
    struct col_def *cols;
    size_t ncols;
    char **pk;
    size_t npk;
};

struct ms_schema {
    const struct ms_config *cfg;
    MYSQL *conn;
    bool is_mariadb;
    struct table_def *defs;
    size_t ndefs, capdefs;
};

static void free_labels(char **v, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(v[i]);
    }
    free(v);
}

static void free_def(struct table_def *d)
{
    for (size_t i = 0; i < d->ncols; i++) {
        free(d->cols[i].name);
        free_labels(d->cols[i].labels, d->cols[i].nlabels);
    }
    free(d->cols);
    free_labels(d->pk, d->npk);
    free(d->db);
    free(d->table);
    memset(d, 0, sizeof(*d));
}

struct ms_schema *ms_schema_new(const struct ms_config *cfg)
{
    struct ms_schema *s = calloc(1, sizeof(*s));

    if (s != NULL) {
        s->cfg = cfg;
    }
    return s;
}

static void clear_cache(struct ms_schema *s)
{
    for (size_t i = 0; i < s->ndefs; i++) {
        free_def(&s->defs[i]);
    }
    s->ndefs = 0;
}

void ms_schema_destroy(struct ms_schema *s)
{
    if (s == NULL) {
        return;
    }
    clear_cache(s);
    free(s->defs);
    if (s->conn != NULL) {
        mysql_close(s->conn);
    }
    free(s);
}

bool ms_schema_parse_labels(const char *t, char ***labels, size_t *n)
{
    const char *p = strchr(t, '(');
    char **v = NULL;
    size_t count = 0;

    *labels = NULL;
    *n = 0;
    if (p == NULL) {
        return false;
    }
    p++;
    while (*p == '\'') {
        char *label = malloc(strlen(p) + 1);
        size_t o = 0;
        p++;
        for (;;) {
            if (*p == '\0') {
                free(label);
                free_labels(v, count);
                return false;
            }
            if (*p == '\'' && p[1] == '\'') { /* '' is a quote inside a label */
                label[o++] = '\'';
                p += 2;
                continue;
            }
            if (*p == '\'') {
                p++;
                break;
            }
            if (*p == '\\' && p[1] != '\0') { /* MariaDB may backslash-escape */
                p++;
            }
            label[o++] = *p++;
        }
        label[o] = '\0';
        v = realloc(v, (count + 1) * sizeof(char *));
        v[count++] = label;
        if (*p == ',') {
            p++;
        }
    }
    if (*p != ')') {
        free_labels(v, count);
        return false;
    }
    *labels = v;
    *n = count;
    return true;
}

static bool ensure_conn(struct ms_schema *s, struct ms_error *err)
{
    if (s->conn != NULL && mysql_ping(s->conn) == 0) {
        return true;
    }
    if (s->conn != NULL) {
        mysql_close(s->conn);
    }
    s->conn = ms_mysql_connect(s->cfg, err);
    if (s->conn == NULL) {
        return false;
    }
    s->is_mariadb = strstr(mysql_get_server_info(s->conn), "MariaDB") != NULL;
    return true;
}

static MYSQL_RES *query(struct ms_schema *s, const char *sql, struct ms_error *err)
{
    MYSQL_RES *r;

    if (mysql_query(s->conn, sql) != 0 || (r = mysql_store_result(s->conn)) == NULL) {
        ms_mysql_error(s->conn, "reading information_schema", err);
        return NULL;
    }
    return r;
}

static struct table_def *load(struct ms_schema *s, const char *db, const char *table,
                              struct ms_error *err)
{
    char edb[2 * 64 + 1], etable[2 * 64 + 1], sql[1024];
    struct table_def d = {0};
    MYSQL_RES *r;
    MYSQL_ROW row;

    if (strlen(db) > 64 || strlen(table) > 64 || !ensure_conn(s, err)) {
        return NULL;
    }
    mysql_real_escape_string(s->conn, edb, db, (unsigned long)strlen(db));
    mysql_real_escape_string(s->conn, etable, table, (unsigned long)strlen(table));
    snprintf(sql, sizeof(sql),
             "SELECT c.COLUMN_NAME, c.COLUMN_TYPE, c.DATA_TYPE, co.ID FROM "
             "information_schema.COLUMNS c LEFT JOIN information_schema.COLLATIONS co ON "
             "co.COLLATION_NAME = c.COLLATION_NAME WHERE c.TABLE_SCHEMA = '%s' AND "
             "c.TABLE_NAME = '%s' ORDER BY c.ORDINAL_POSITION",
             edb, etable);
    if ((r = query(s, sql, err)) == NULL) {
        return NULL;
    }
    d.ncols = (size_t)mysql_num_rows(r);
    d.cols = calloc(d.ncols > 0 ? d.ncols : 1, sizeof(struct col_def));
    for (size_t i = 0; (row = mysql_fetch_row(r)) != NULL && i < d.ncols; i++) {
        struct col_def *c = &d.cols[i];
        const char *ctype = row[1] != NULL ? row[1] : "", *dtype = row[2] != NULL ? row[2] : "";
        c->name = strdup(row[0] != NULL ? row[0] : "");
        c->is_unsigned = strstr(ctype, "unsigned") != NULL;
        c->collation = row[3] != NULL ? (uint16_t)strtoul(row[3], NULL, 10) : 0;
        c->is_binary =
            row[3] == NULL && (strstr(dtype, "blob") != NULL || strcasecmp(dtype, "binary") == 0 ||
                               strcasecmp(dtype, "varbinary") == 0);
        if (strncasecmp(ctype, "enum(", 5) == 0 || strncasecmp(ctype, "set(", 4) == 0) {
            ms_schema_parse_labels(ctype, &c->labels, &c->nlabels);
        }
    }
    mysql_free_result(r);

    snprintf(sql, sizeof(sql),
             "SELECT COLUMN_NAME FROM information_schema.KEY_COLUMN_USAGE WHERE TABLE_SCHEMA = "
             "'%s' AND TABLE_NAME = '%s' AND CONSTRAINT_NAME = 'PRIMARY' ORDER BY "
             "ORDINAL_POSITION",
             edb, etable);
    if ((r = query(s, sql, err)) == NULL) {
        free_def(&d);
        return NULL;
    }
    d.pk = calloc((size_t)mysql_num_rows(r) + 1, sizeof(char *));
    while ((row = mysql_fetch_row(r)) != NULL) {
        d.pk[d.npk++] = strdup(row[0]);
    }
    mysql_free_result(r);

    /* MariaDB's JSON type is LONGTEXT with a json_valid(`col`) check constraint */
    if (s->is_mariadb) {
        snprintf(sql, sizeof(sql),
                 "SELECT CHECK_CLAUSE FROM information_schema.CHECK_CONSTRAINTS WHERE "
                 "CONSTRAINT_SCHEMA = '%s' AND TABLE_NAME = '%s'",
                 edb, etable);
        if ((r = query(s, sql, err)) == NULL) {
            free_def(&d);
            return NULL;
        }
        while ((row = mysql_fetch_row(r)) != NULL) {
            for (size_t i = 0; row[0] != NULL && i < d.ncols; i++) {
                char want[160];
                snprintf(want, sizeof(want), "json_valid(`%s`)", d.cols[i].name);
                if (strcasestr(row[0], want) != NULL) {
                    d.cols[i].is_json = true;
                }
            }
        }
        mysql_free_result(r);
    }
    if (d.ncols == 0) {
        ms_error_set(err, MS_ERR_MYSQL, 0, "%s.%s: no such table in information_schema", db, table);
        free_def(&d);
        return NULL;
    }
    d.db = strdup(db);
    d.table = strdup(table);
    if (s->ndefs == s->capdefs) {
        s->capdefs = s->capdefs > 0 ? s->capdefs * 2 : 16;
        s->defs = realloc(s->defs, s->capdefs * sizeof(*s->defs));
    }
    s->defs[s->ndefs] = d;
    ms_log_kv(MS_LOG_DEBUG,
              ((struct ms_log_field[]){MS_LF_STR("db", db), MS_LF_STR("table", table),
                                       MS_LF_INT("columns", (int64_t)d.ncols),
                                       MS_LF_INT("pk_columns", (int64_t)d.npk)}),
              "table definition loaded");
    return &s->defs[s->ndefs++];
}

static char **copy_labels(char **v, size_t n)
{
    char **out = calloc(n > 0 ? n : 1, sizeof(char *));

    for (size_t i = 0; i < n; i++) {
        out[i] = strdup(v[i]);
    }
    return out;
}

bool ms_schema_enrich(struct ms_schema *s, struct ms_table_map *tm, bool *applied,
                      struct ms_error *err)
{
    struct table_def *d = NULL;

    *applied = false;
    for (size_t i = 0; i < s->ndefs; i++) {
        if (strcmp(s->defs[i].db, tm->db) == 0 && strcmp(s->defs[i].table, tm->table) == 0) {
            d = &s->defs[i];
        }
    }
    if (d == NULL && (d = load(s, tm->db, tm->table, err)) == NULL) {
        return false;
    }
    if (d->ncols != tm->ncols) {
        ms_log(MS_LOG_DEBUG, "%s.%s: %zu columns in the binlog, %zu now: not enriched", tm->db,
               tm->table, tm->ncols, d->ncols);
        return true;
    }
    for (size_t i = 0; i < tm->ncols; i++) {
        struct ms_column *c = &tm->cols[i];
        const struct col_def *cd = &d->cols[i];
        uint8_t real = c->type == MS_T_STRING ? c->real_type : c->type;
        if (c->name == NULL) {
            c->name = strdup(cd->name);
        }
        c->is_unsigned = c->is_unsigned || cd->is_unsigned;
        c->is_json_text = cd->is_json;
        if (c->collation == 0 && cd->collation != 0) {
            c->collation = cd->collation;
        }
        if (c->collation == 0 && cd->is_binary) {
            c->collation = 63;
        }
        c->is_binary = c->collation == 63;
        if (real == MS_T_ENUM && c->n_enum == 0 && cd->nlabels > 0) {
            c->enum_values = copy_labels(cd->labels, cd->nlabels);
            c->n_enum = cd->nlabels;
        } else if (real == MS_T_SET && c->n_set == 0 && cd->nlabels > 0) {
            c->set_values = copy_labels(cd->labels, cd->nlabels);
            c->n_set = cd->nlabels;
        }
    }
    if (tm->npk == 0 && d->npk > 0) {
        free(tm->pk);
        tm->pk = calloc(d->npk, sizeof(size_t));
        for (size_t k = 0; k < d->npk; k++) {
            for (size_t i = 0; i < tm->ncols; i++) {
                if (strcmp(d->cols[i].name, d->pk[k]) == 0) {
                    tm->pk[tm->npk++] = i;
                }
            }
        }
    }
    *applied = true;
    return true;
}

bool ms_schema_note_query(struct ms_schema *s, const char *db, size_t db_len, const char *sql,
                          size_t sql_len)
{
    static const char *const ddl[] = {"ALTER", "RENAME", "DROP", "TRUNCATE", "CREATE"};
    size_t i = 0;

    (void)db;
    (void)db_len;
    /* skip white space and leading C-style comments (servers may prefix DDL with them) */
    while (i < sql_len) {
        if (isspace((unsigned char)sql[i])) {
            i++;
        } else if (i + 1 < sql_len && sql[i] == '/' && sql[i + 1] == '*') {
            const char *end = NULL;
            for (size_t j = i + 2; j + 1 < sql_len; j++) {
                if (sql[j] == '*' && sql[j + 1] == '/') {
                    end = sql + j + 2;
                    break;
                }
            }
            if (end == NULL) {
                return false;
            }
            i = (size_t)(end - sql);
        } else {
            break;
        }
    }
    for (size_t k = 0; k < sizeof(ddl) / sizeof(ddl[0]); k++) {
        size_t n = strlen(ddl[k]);
        if (sql_len - i > n && strncasecmp(sql + i, ddl[k], n) == 0 &&
            !isalnum((unsigned char)sql[i + n]) && sql[i + n] != '_') {
            /* DDL is rare: forget everything rather than parse SQL */
            clear_cache(s);
            return true;
        }
    }
    return false;
}

/* ---- DDL statements ---------------------------------------------------------------------- */

struct lex {
    const char *s;
    size_t n, i;
};

static void lex_space(struct lex *l)
{
    while (l->i < l->n) {
        if (isspace((unsigned char)l->s[l->i])) {
            l->i++;
        } else if (l->i + 1 < l->n && l->s[l->i] == '/' && l->s[l->i + 1] == '*') {
            size_t j = l->i + 2;
            while (j + 1 < l->n && !(l->s[j] == '*' && l->s[j + 1] == '/')) {
                j++;
            }
            l->i = j + 2 <= l->n ? j + 2 : l->n;
        } else if (l->s[l->i] == '#' ||
                   (l->i + 2 < l->n && l->s[l->i] == '-' && l->s[l->i + 1] == '-' &&
                    isspace((unsigned char)l->s[l->i + 2]))) {
            while (l->i < l->n && l->s[l->i] != '\n') {
                l->i++;
            }
        } else {
            return;
        }
    }
}

/* The next word is kw (case-insensitive, whole word): consumes it. */
static bool lex_kw(struct lex *l, const char *kw)
{
    size_t k = strlen(kw);

    lex_space(l);
    if (l->n - l->i < k || strncasecmp(l->s + l->i, kw, k) != 0 ||
        (l->i + k < l->n && (isalnum((unsigned char)l->s[l->i + k]) || l->s[l->i + k] == '_' ||
                             l->s[l->i + k] == '$'))) {
        return false;
    }
    l->i += k;
    return true;
}

/* One identifier, `quoted` (`` inside) or bare. */
static bool lex_ident(struct lex *l, char *out, size_t outsz)
{
    size_t o = 0;

    lex_space(l);
    if (l->i < l->n && l->s[l->i] == '`') {
        l->i++;
        while (l->i < l->n) {
            if (l->s[l->i] == '`') {
                if (l->i + 1 < l->n && l->s[l->i + 1] == '`') {
                    l->i++;
                } else {
                    break;
                }
            }
            if (l->s[l->i] == '\0') {
                return false; /* not in an identifier (found by fuzzing) */
            }
            if (o + 1 < outsz) {
                out[o++] = l->s[l->i];
            }
            l->i++;
        }
        if (l->i >= l->n) {
            return false;
        }
        l->i++;
    } else {
        while (l->i < l->n && (isalnum((unsigned char)l->s[l->i]) || l->s[l->i] == '_' ||
                               l->s[l->i] == '$' || (unsigned char)l->s[l->i] >= 0x80)) {
            if (o + 1 < outsz) {
                out[o++] = l->s[l->i];
            }
            l->i++;
        }
    }
    out[o] = '\0';
    return o > 0;
}

/* [db.]name */
static bool lex_table(struct lex *l, const char *db, size_t db_len, char *odb, char *oname,
                      size_t sz)
{
    char first[200];

    if (!lex_ident(l, first, sizeof(first))) {
        return false;
    }
    lex_space(l);
    if (l->i < l->n && l->s[l->i] == '.') {
        l->i++;
        snprintf(odb, sz, "%s", first);
        return lex_ident(l, oname, sz);
    }
    snprintf(odb, sz, "%.*s", (int)db_len, db != NULL ? db : "");
    snprintf(oname, sz, "%s", first);
    return true;
}

static bool lex_char(struct lex *l, char c)
{
    lex_space(l);
    if (l->i < l->n && l->s[l->i] == c) {
        l->i++;
        return true;
    }
    return false;
}

/* Skips one token: a quoted string or identifier, a parenthesised group, or a character.
 * false when a quote or a parenthesis is not closed. */
static bool lex_skip_token(struct lex *l)
{
    char c;

    lex_space(l);
    if (l->i >= l->n) {
        return true;
    }
    c = l->s[l->i];
    if (c == '\'' || c == '"' || c == '`') {
        l->i++;
        while (l->i < l->n) {
            if (l->s[l->i] == '\\' && c != '`') {
                l->i += 2;
            } else if (l->s[l->i] == c) {
                l->i++;
                if (l->i < l->n && l->s[l->i] == c) {
                    l->i++; /* doubled quote */
                } else {
                    return true;
                }
            } else {
                l->i++;
            }
        }
        l->i = l->n;
        return false;
    }
    if (c == '(') {
        int depth = 0;
        do {
            lex_space(l);
            if (l->i >= l->n) {
                return false;
            }
            c = l->s[l->i];
            if (c == '(') {
                depth++, l->i++;
            } else if (c == ')') {
                depth--, l->i++;
            } else if (c == '\'' || c == '"' || c == '`') {
                if (!lex_skip_token(l)) {
                    return false;
                }
            } else {
                l->i++;
            }
        } while (depth > 0);
        return true;
    }
    l->i++;
    return true;
}

static bool lex_kw_any(struct lex *l, const char *const *kws)
{
    for (size_t i = 0; kws[i] != NULL; i++) {
        if (lex_kw(l, kws[i])) {
            return true;
        }
    }
    return false;
}

/* One ALTER TABLE clause (l bounded to it) that leaves every row's values as they are. */
static bool clause_keeps_rows(struct lex *l)
{
    static const char *const index_words[] = {"INDEX",  "KEY",     "FULLTEXT", "SPATIAL",
                                              "UNIQUE", "FOREIGN", "CHECK",    NULL};
    static const char *const options[] = {"ENGINE",
                                          "COMMENT",
                                          "AUTO_INCREMENT",
                                          "ROW_FORMAT",
                                          "KEY_BLOCK_SIZE",
                                          "STATS_AUTO_RECALC",
                                          "STATS_PERSISTENT",
                                          "STATS_SAMPLE_PAGES",
                                          "PACK_KEYS",
                                          "CHECKSUM",
                                          "TABLE_CHECKSUM",
                                          "DELAY_KEY_WRITE",
                                          "ALGORITHM",
                                          "LOCK",
                                          "FORCE",
                                          "PAGE_CHECKSUM",
                                          "TRANSACTIONAL",
                                          "MAX_ROWS",
                                          "MIN_ROWS",
                                          "AVG_ROW_LENGTH",
                                          "INSERT_METHOD",
                                          "CHARSET",
                                          "COLLATE",
                                          "PAGE_COMPRESSED",
                                          "PAGE_COMPRESSION_LEVEL",
                                          "IETF_QUOTES",
                                          "SEQUENCE",
                                          NULL};
    char name[200];

    if (lex_kw(l, "ADD")) {
        if (lex_kw(l, "CONSTRAINT")) { /* [name] {UNIQUE|FOREIGN|CHECK|PRIMARY} */
            static const char *const kinds[] = {"UNIQUE", "FOREIGN", "CHECK", "PRIMARY", NULL};
            struct lex peek = *l;
            if (!lex_kw_any(&peek, kinds)) {
                (void)(lex_kw(l, "IF") && lex_kw(l, "NOT") && lex_kw(l, "EXISTS"));
                lex_ident(l, name, sizeof(name));
            }
        }
        return lex_kw_any(l, index_words); /* not PRIMARY KEY: the documents' _id */
    }
    if (lex_kw(l, "DROP")) {
        if (lex_kw(l, "CONSTRAINT")) {
            (void)(lex_kw(l, "IF") && lex_kw(l, "EXISTS"));
            return lex_ident(l, name, sizeof(name)) && strcasecmp(name, "PRIMARY") != 0;
        }
        return lex_kw(l, "INDEX") || lex_kw(l, "KEY") || lex_kw(l, "FOREIGN") || lex_kw(l, "CHECK");
    }
    if (lex_kw(l, "RENAME")) {
        return lex_kw(l, "INDEX") || lex_kw(l, "KEY");
    }
    if (lex_kw(l, "ALTER")) {
        if (lex_kw(l, "INDEX") || lex_kw(l, "KEY") || lex_kw(l, "CHECK") ||
            lex_kw(l, "CONSTRAINT")) {
            return true; /* visibility, enforcement */
        }
        lex_kw(l, "COLUMN");
        (void)(lex_kw(l, "IF") && lex_kw(l, "EXISTS"));
        if (!lex_ident(l, name, sizeof(name))) {
            return false;
        }
        return (lex_kw(l, "SET") &&
                (lex_kw(l, "DEFAULT") || lex_kw(l, "VISIBLE") || lex_kw(l, "INVISIBLE"))) ||
               lex_kw(l, "DROP"); /* DROP DEFAULT */
    }
    if (lex_kw(l, "DEFAULT")) {
        return lex_kw(l, "CHARSET") || lex_kw(l, "CHARACTER") || lex_kw(l, "COLLATE");
    }
    if (lex_kw(l, "CHARACTER")) {
        return lex_kw(l, "SET");
    }
    if (lex_kw(l, "ORDER")) {
        return lex_kw(l, "BY"); /* the rows' order on disk */
    }
    return lex_kw_any(l, options);
}

/* Every clause of the ALTER TABLE after the table name (l->i) keeps the rows' values. */
static bool alter_keeps_rows(struct lex *l)
{
    size_t clauses = 0;

    for (;;) {
        struct lex c;
        size_t start;

        lex_space(l);
        if (l->i >= l->n || l->s[l->i] == ';') {
            break;
        }
        start = l->i;
        while (l->i < l->n && l->s[l->i] != ',' && l->s[l->i] != ';') {
            if (!lex_skip_token(l)) {
                return false;
            }
            lex_space(l);
        }
        c = (struct lex){l->s + start, l->i - start, 0};
        if (!clause_keeps_rows(&c)) {
            return false;
        }
        clauses++;
        if (l->i < l->n && l->s[l->i] == ',') {
            l->i++;
        }
    }
    return clauses > 0;
}

void ms_schema_parse_ddl(const char *db, size_t db_len, const char *sql, size_t sql_len,
                         struct ms_ddl *out)
{
    struct lex l = {sql, sql_len, 0};

    memset(out, 0, sizeof(*out));
    if (lex_kw(&l, "TRUNCATE")) {
        lex_kw(&l, "TABLE");
        if (lex_table(&l, db, db_len, out->table[0].db, out->table[0].name,
                      sizeof(out->table[0].db))) {
            out->kind = MS_DDL_TRUNCATE;
            out->n = 1;
        }
        return;
    }
    if (lex_kw(&l, "RENAME")) {
        if (!lex_kw(&l, "TABLE") && !lex_kw(&l, "TABLES")) {
            return;
        }
        do {
            size_t k = out->n;
            if (k == MS_DDL_MAX_TABLES ||
                !lex_table(&l, db, db_len, out->table[k].db, out->table[k].name,
                           sizeof(out->table[k].db)) ||
                !lex_kw(&l, "TO") ||
                !lex_table(&l, db, db_len, out->to[k].db, out->to[k].name, sizeof(out->to[k].db))) {
                out->n = 0;
                return;
            }
            out->n++;
        } while (lex_char(&l, ','));
        out->kind = MS_DDL_RENAME;
        return;
    }
    if (lex_kw(&l, "ALTER")) {
        bool ignore;
        lex_kw(&l, "ONLINE");
        ignore = lex_kw(&l, "IGNORE"); /* ADD UNIQUE deletes the duplicates, without events */
        if (!lex_kw(&l, "TABLE")) {
            return;
        }
        if (lex_kw(&l, "IF")) {
            if (!lex_kw(&l, "EXISTS")) {
                return;
            }
        }
        if (!lex_table(&l, db, db_len, out->table[0].db, out->table[0].name,
                       sizeof(out->table[0].db))) {
            return;
        }
        out->n = 1;
        out->kind = MS_DDL_ALTER;
        {
            struct lex a = l;
            out->rows_kept = !ignore && alter_keeps_rows(&a);
        }
        /* ALTER TABLE a RENAME [TO|AS] b (alone: a rename; with other clauses the new name is
         * read too, and the table is altered under it) */
        {
            struct lex r = l;
            int depth = 0;
            while (r.i < r.n) {
                char c = r.s[r.i];
                if (c == '(') {
                    depth++;
                } else if (c == ')') {
                    depth--;
                } else if (c == '\'' || c == '"') { /* a string literal: skip it */
                    r.i++;
                    while (r.i < r.n && r.s[r.i] != c) {
                        r.i += r.s[r.i] == '\\' ? 2 : 1;
                    }
                } else if (depth == 0 &&
                           (r.i == 0 || (!isalnum((unsigned char)r.s[r.i - 1]) &&
                                         r.s[r.i - 1] != '_' && r.s[r.i - 1] != '`')) &&
                           lex_kw(&r, "RENAME")) {
                    if (lex_kw(&r, "COLUMN") || lex_kw(&r, "INDEX") || lex_kw(&r, "KEY")) {
                        continue;
                    }
                    if (!lex_kw(&r, "TO")) {
                        lex_kw(&r, "AS");
                    }
                    if (lex_table(&r, db, db_len, out->to[0].db, out->to[0].name,
                                  sizeof(out->to[0].db))) {
                        out->kind = MS_DDL_RENAME;
                        out->rows_kept = false; /* (ALTER only; found by fuzzing) */
                    }
                    return;
                }
                r.i++;
            }
        }
    }
}

/* Rows read back from the source by key (or every row with a given column value), mapped to
 * BSON by the binlog decoder itself.
 *
 * One mapping, not two: each value fetched over the binary protocol is re-encoded in the
 * row-image format the binlog would carry for it (Field::pack(): little-endian integers,
 * packed DECIMAL, DATETIME2/TIMESTAMP2/TIME2, length-prefixed strings) and handed to
 * ms_rows_decode_value() with a column description equal to what a TABLE_MAP with FULL
 * metadata, completed from information_schema (schema.c), would give. Character-set
 * conversion, CHAR padding, BINARY(n) padding, MariaDB JSON text, SET labels and the
 * value options then cannot drift from the binlog path.
 *
 * What the SELECT returns is made to be what the binlog holds:
 * - character_set_results = binary: strings arrive in their column's own character set
 *   (the decoder converts them, from information_schema's collation id);
 * - time_zone = +00:00: TIMESTAMP arrives as UTC wall time, re-encoded as epoch seconds;
 * - ENUM and SET are selected as `col`+0: the index and bit set the binlog stores;
 * - MariaDB's UUID/INET4/INET6 as CAST(`col` AS BINARY(n)), the bytes the binlog stores;
 * - GEOMETRY arrives as MariaDB stores it (4-byte SRID, then WKB), as in the binlog;
 * - FLOAT and DOUBLE arrive as their binary values (no print-and-reparse). */
#define MS_LOG_DOMAIN "source"

#include "mysync/source.h"
#include "mysync/log.h"
#include "mysync/mysql.h"
#include "mysync/mysqljson.h"
#include "mysync/schema.h"

#include <errmsg.h>
#include <errno.h>
#include <mysqld_error.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* bytes reserved in front of every variable-length fetch buffer for the row-image length
 * prefix, so a fetched value is decoded where it lies */
#define PREFIX       4
#define VAR_MIN      256
#define VAR_KEEP     (1u << 20) /* larger fetch buffers are given back after the read */
#define DEC_MAX_PREC 65
#define DEC_MAX_FRAC 38

/* How a column is fetched and re-encoded. */
enum kind {
    K_INT,       /* TINYINT..BIGINT: LONGLONG -> width bytes little-endian */
    K_FLOAT,     /* FLOAT: the 4-byte float */
    K_DOUBLE,    /* DOUBLE */
    K_DECIMAL,   /* text -> packed DECIMAL */
    K_DATE,      /* MYSQL_TIME -> 3 bytes */
    K_DATETIME,  /* MYSQL_TIME -> DATETIME2 */
    K_TIMESTAMP, /* MYSQL_TIME (UTC) -> TIMESTAMP2 */
    K_TIME,      /* MYSQL_TIME -> TIME2 */
    K_YEAR,      /* LONGLONG -> 1 byte */
    K_BIT,       /* raw big-endian bytes */
    K_ENUM,      /* `col`+0 -> 1 or 2 bytes */
    K_SET,       /* `col`+0 -> 8 bytes */
    K_CHAR,      /* CHAR, BINARY, UUID, INET: 1- or 2-byte length prefix */
    K_VARCHAR,   /* VARCHAR, VARBINARY: 1- or 2-byte length prefix */
    K_BLOB,      /* TEXT and BLOB families: 4-byte length prefix */
    K_GEOMETRY,  /* SRID + WKB, 4-byte length prefix */
    K_JSON,      /* MySQL's JSON type: SELECT gives text, not the binary format */
};

struct scol {
    struct ms_column col; /* as the binlog's table map (completed) would describe it */
    enum kind kind;
    unsigned width;      /* K_INT: bytes; K_CHAR: octet length; K_VARCHAR: max octets */
    unsigned cast_bytes; /* UUID/INET: selected as CAST(... AS BINARY(cast_bytes)) */
    unsigned fsp;
    char *data_type; /* information_schema DATA_TYPE, for messages */
    /* fetch buffers */
    union {
        int64_t i;
        float f;
        double d;
        MYSQL_TIME t;
    } v;
    uint8_t *var; /* PREFIX bytes, then the value */
    size_t varcap;
    unsigned long length;
    my_bool is_null, error;
};

/* One key parameter's storage. */
struct pbuf {
    union {
        int64_t i;
        double d;
        MYSQL_TIME t;
    } v;
    char text[80];
    char *heap;
    unsigned long length;
};

/* How a key column is matched. */
enum key_form {
    KF_EQUAL,  /* `col` <=> ?  (a NULL of a sync.keys column matches NULL) */
    KF_RANGE,  /* `col` BETWEEN ? AND ?: DATETIME/TIMESTAMP, whose Date has milliseconds only */
    KF_DOUBLE, /* `col` BETWEEN ? AND ? AND `col` + 0e0 = ?: DECIMAL under decimal_as=double;
                * equality with a double would round the double to the column's scale */
};

struct key {
    size_t col; /* index in cols */
    enum key_form form;
    size_t par; /* its first parameter */
};

/* A table's definition and one prepared statement: by key (read_row: pk names the key
 * columns, LIMIT 1) or, many, by one column's value (read_rows: pk is that column, ORDER BY the
 * primary key, LIMIT ? as the last parameter). Identity: (db, table, many, pk). */
struct stable {
    char *db, *table;
    char **pk;
    size_t npk;
    bool many;
    char **order; /* many: the primary key's columns (none: no ORDER BY) */
    size_t norder;
    struct scol *cols;
    size_t ncols;
    struct key *keys; /* npk */
    MYSQL_STMT *stmt;
    MYSQL_BIND *res; /* ncols */
    MYSQL_BIND *par;
    struct pbuf *pbufs;
    size_t npar;
};

struct ms_source {
    const struct ms_config *cfg;
    const struct ms_value_opts *opts;
    MYSQL *conn;
    bool is_mariadb;
    struct stable **tables;
    size_t ntables, captables;
};

/* ---- small helpers ------------------------------------------------------------------ */

struct sql {
    char *p;
    size_t len, cap;
    bool oom;
};

static void sql_add(struct sql *q, const char *s, size_t n)
{
    if (q->oom) {
        return;
    }
    if (q->len + n + 1 > q->cap) {
        size_t cap = q->cap > 0 ? q->cap : 256;
        char *np;

        while (cap < q->len + n + 1) {
            cap *= 2;
        }
        np = realloc(q->p, cap);
        if (np == NULL) {
            q->oom = true;
            return;
        }
        q->p = np;
        q->cap = cap;
    }
    memcpy(q->p + q->len, s, n);
    q->len += n;
    q->p[q->len] = '\0';
}

static void sql_str(struct sql *q, const char *s)
{
    sql_add(q, s, strlen(s));
}

/* `name`, backticks doubled */
static void sql_ident(struct sql *q, const char *name)
{
    sql_add(q, "`", 1);
    for (const char *p = name; *p != '\0'; p++) {
        sql_add(q, p, 1);
        if (*p == '`') {
            sql_add(q, "`", 1);
        }
    }
    sql_add(q, "`", 1);
}

/* 'text', escaped for the connection's character set */
static void sql_literal(struct sql *q, MYSQL *conn, const char *s)
{
    size_t n = strlen(s);
    char *e = malloc(2 * n + 1);

    if (e == NULL) {
        q->oom = true;
        return;
    }
    mysql_real_escape_string(conn, e, s, (unsigned long)n);
    sql_add(q, "'", 1);
    sql_str(q, e);
    sql_add(q, "'", 1);
    free(e);
}

static bool out_of_memory(struct ms_error *err)
{
    ms_error_set(err, MS_ERR_SYSTEM, ENOMEM, "out of memory");
    return false;
}

/* Errors that mean the connection is gone (the next call reconnects). MariaDB answers a
 * killed connection's next command with 1927 ER_CONNECTION_KILLED, or the socket is closed
 * (2013, then 2006). */
static bool is_lost(unsigned int code)
{
    switch (code) {
    case CR_CONNECTION_ERROR:
    case CR_CONN_HOST_ERROR:
    case CR_SERVER_GONE_ERROR:
    case CR_SERVER_LOST:
    case CR_SERVER_LOST_EXTENDED:
    case ER_CONNECTION_KILLED:
    case ER_SERVER_SHUTDOWN:
    case ER_CON_COUNT_ERROR:
        return true;
    default:
        return false;
    }
}

static bool is_transient(unsigned int code)
{
    return is_lost(code) || code == ER_LOCK_DEADLOCK || code == ER_LOCK_WAIT_TIMEOUT;
}

static void stmt_error(MYSQL_STMT *st, const char *doing, const char *db, const char *table,
                       struct ms_error *err)
{
    unsigned int code = mysql_stmt_errno(st);
    char msg[256];

    ms_log_redact(mysql_stmt_error(st), msg, sizeof(msg));
    ms_error_set(err, MS_ERR_MYSQL, code, "%s %s.%s: %s (error %u)", doing, db, table, msg, code);
    if (err != NULL) {
        err->retryable = is_transient(code);
    }
}

static void conn_error(MYSQL *conn, const char *doing, struct ms_error *err)
{
    ms_mysql_error(conn, doing, err);
    if (err != NULL && is_lost(mysql_errno(conn))) {
        err->retryable = true;
    }
}

static int64_t floor_div(int64_t a, int64_t b)
{
    return a / b - (a % b != 0 && (a < 0) != (b < 0));
}

static void put_le(uint8_t *p, uint64_t v, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        p[i] = (uint8_t)(v >> (8 * i));
    }
}

static void put_be(uint8_t *p, uint64_t v, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        p[n - 1 - i] = (uint8_t)(v >> (8 * i));
    }
}

static void free_labels(char **v, size_t n)
{
    for (size_t i = 0; v != NULL && i < n; i++) {
        free(v[i]);
    }
    free(v);
}

/* ---- table definitions and statements ----------------------------------------------- */

static void free_table(struct stable *t)
{
    if (t == NULL) {
        return;
    }
    if (t->stmt != NULL) {
        mysql_stmt_close(t->stmt);
    }
    for (size_t i = 0; t->cols != NULL && i < t->ncols; i++) {
        struct scol *c = &t->cols[i];
        free(c->col.name);
        free_labels(c->col.enum_values, c->col.n_enum);
        free_labels(c->col.set_values, c->col.n_set);
        free(c->data_type);
        free(c->var);
    }
    for (size_t i = 0; t->pbufs != NULL && i < t->npar; i++) {
        free(t->pbufs[i].heap);
    }
    free_labels(t->pk, t->npk);
    free_labels(t->order, t->norder);
    free(t->cols);
    free(t->keys);
    free(t->res);
    free(t->par);
    free(t->pbufs);
    free(t->db);
    free(t->table);
    free(t);
}

static void disconnect(struct ms_source *s)
{
    for (size_t i = 0; i < s->ntables; i++) {
        free_table(s->tables[i]);
    }
    s->ntables = 0;
    if (s->conn != NULL) {
        mysql_close(s->conn);
        s->conn = NULL;
    }
}

static bool ensure_conn(struct ms_source *s, struct ms_error *err)
{
    if (s->conn != NULL) {
        return true;
    }
    s->conn = ms_mysql_connect(s->cfg, err);
    if (s->conn == NULL) {
        return false;
    }
    s->is_mariadb = strstr(mysql_get_server_info(s->conn), "MariaDB") != NULL;
    /* parameters in UTF-8 (BSON strings), results untranslated (each column in its own
     * character set, as in the binlog), TIMESTAMP in UTC (the binlog's epoch seconds), and
     * every SELECT its own transaction (a server-wide autocommit=0 would pin a snapshot) */
    if (mysql_set_character_set(s->conn, "utf8mb4") != 0 ||
        mysql_query(s->conn, "SET autocommit = 1, character_set_results = binary, "
                             "time_zone = '+00:00'") != 0) {
        conn_error(s->conn, "setting up the re-read connection", err);
        mysql_close(s->conn);
        s->conn = NULL;
        return false;
    }
    ms_log(MS_LOG_DEBUG, "re-read connection open (thread %lu)", mysql_thread_id(s->conn));
    return true;
}

static bool same_pk(const struct stable *t, bool many, const char *const *pk, size_t npk)
{
    if (t->many != many || t->npk != npk) {
        return false;
    }
    for (size_t i = 0; i < npk; i++) {
        if (strcmp(t->pk[i], pk[i]) != 0) {
            return false;
        }
    }
    return true;
}

static void drop_table_at(struct ms_source *s, size_t i)
{
    free_table(s->tables[i]);
    s->tables[i] = s->tables[--s->ntables];
}

static void drop_table(struct ms_source *s, struct stable *t)
{
    for (size_t i = 0; i < s->ntables; i++) {
        if (s->tables[i] == t) {
            drop_table_at(s, i);
            return;
        }
    }
}

/* One information_schema.COLUMNS row -> the column's kind and binlog description. */
static bool describe(struct scol *c, MYSQL_ROW row, const char *db, const char *table,
                     struct ms_error *err)
{
    const char *dt = row[1] != NULL ? row[1] : "", *ct = row[2] != NULL ? row[2] : "";
    unsigned long octets = row[3] != NULL ? strtoul(row[3], NULL, 10) : 0;
    unsigned prec = row[4] != NULL ? (unsigned)strtoul(row[4], NULL, 10) : 0;
    unsigned scale = row[5] != NULL ? (unsigned)strtoul(row[5], NULL, 10) : 0;
    struct ms_column *col = &c->col;
    static const struct {
        const char *name;
        uint8_t type;
        unsigned width;
    } ints[] = {{"tinyint", MS_T_TINY, 1},
                {"smallint", MS_T_SHORT, 2},
                {"mediumint", MS_T_INT24, 3},
                {"int", MS_T_LONG, 4},
                {"bigint", MS_T_LONGLONG, 8}};
    static const char *const blobs[] = {"tinytext",   "text",     "mediumtext",
                                        "longtext",   "tinyblob", "blob",
                                        "mediumblob", "longblob", NULL};
    static const char *const geoms[] = {
        "geometry",        "point",        "linestring",         "polygon", "multipoint",
        "multilinestring", "multipolygon", "geometrycollection", NULL};

    c->fsp = row[6] != NULL ? (unsigned)strtoul(row[6], NULL, 10) : 0;
    c->data_type = strdup(dt);
    col->name = strdup(row[0] != NULL ? row[0] : "");
    col->collation = row[7] != NULL ? (uint16_t)strtoul(row[7], NULL, 10) : 0;
    col->is_unsigned = strstr(ct, "unsigned") != NULL;
    col->nullable = true;
    if (c->data_type == NULL || col->name == NULL) {
        return out_of_memory(err);
    }
    for (size_t i = 0; i < sizeof(ints) / sizeof(ints[0]); i++) {
        if (strcasecmp(dt, ints[i].name) == 0) {
            c->kind = K_INT;
            col->type = ints[i].type;
            c->width = ints[i].width;
            return true;
        }
    }
    for (size_t i = 0; blobs[i] != NULL; i++) {
        if (strcasecmp(dt, blobs[i]) == 0) {
            c->kind = K_BLOB;
            col->type = MS_T_BLOB;
            col->meta = 4;
            if (col->collation == 0) {
                col->collation = 63; /* the BLOB family has no collation: binary */
            }
            return true;
        }
    }
    for (size_t i = 0; geoms[i] != NULL; i++) {
        if (strcasecmp(dt, geoms[i]) == 0) {
            c->kind = K_GEOMETRY;
            col->type = MS_T_GEOMETRY;
            col->meta = 4;
            return true;
        }
    }
    if (strcasecmp(dt, "float") == 0) {
        c->kind = K_FLOAT;
        col->type = MS_T_FLOAT;
        col->meta = 4;
    } else if (strcasecmp(dt, "double") == 0) {
        c->kind = K_DOUBLE;
        col->type = MS_T_DOUBLE;
        col->meta = 8;
    } else if (strcasecmp(dt, "decimal") == 0) {
        if (prec == 0 || prec > DEC_MAX_PREC || scale > prec || scale > DEC_MAX_FRAC) {
            ms_error_set(err, MS_ERR_DECODE, MS_DECODE_UNSUPPORTED,
                         "%s.%s column %s: DECIMAL(%u,%u) is out of range", db, table, col->name,
                         prec, scale);
            return false;
        }
        c->kind = K_DECIMAL;
        col->type = MS_T_NEWDECIMAL;
        col->meta = (uint16_t)(prec << 8 | scale);
    } else if (strcasecmp(dt, "date") == 0) {
        c->kind = K_DATE;
        col->type = MS_T_DATE;
    } else if (strcasecmp(dt, "datetime") == 0) {
        c->kind = K_DATETIME;
        col->type = MS_T_DATETIME2;
        col->meta = (uint16_t)c->fsp;
    } else if (strcasecmp(dt, "timestamp") == 0) {
        c->kind = K_TIMESTAMP;
        col->type = MS_T_TIMESTAMP2;
        col->meta = (uint16_t)c->fsp;
    } else if (strcasecmp(dt, "time") == 0) {
        c->kind = K_TIME;
        col->type = MS_T_TIME2;
        col->meta = (uint16_t)c->fsp;
    } else if (strcasecmp(dt, "year") == 0) {
        c->kind = K_YEAR;
        col->type = MS_T_YEAR;
    } else if (strcasecmp(dt, "bit") == 0) {
        if (prec == 0 || prec > 64) {
            ms_error_set(err, MS_ERR_DECODE, MS_DECODE_UNSUPPORTED,
                         "%s.%s column %s: BIT(%u) is out of range", db, table, col->name, prec);
            return false;
        }
        c->kind = K_BIT;
        col->type = MS_T_BIT;
        col->meta = (uint16_t)((prec / 8) << 8 | prec % 8);
    } else if (strcasecmp(dt, "enum") == 0 || strcasecmp(dt, "set") == 0) {
        bool is_enum = strcasecmp(dt, "enum") == 0;
        char **labels;
        size_t n;

        if (!ms_schema_parse_labels(ct, &labels, &n)) {
            ms_error_set(err, MS_ERR_DECODE, MS_DECODE_UNSUPPORTED,
                         "%s.%s column %s: cannot read the labels of %s", db, table, col->name, ct);
            return false;
        }
        col->type = MS_T_STRING;
        if (is_enum) {
            c->kind = K_ENUM;
            c->width = n < 256 ? 1 : 2;
            col->real_type = MS_T_ENUM;
            col->enum_values = labels;
            col->n_enum = n;
        } else {
            c->kind = K_SET;
            c->width = 8;
            col->real_type = MS_T_SET;
            col->set_values = labels;
            col->n_set = n;
        }
        col->meta = (uint16_t)(col->real_type << 8 | c->width);
    } else if (strcasecmp(dt, "char") == 0 || strcasecmp(dt, "binary") == 0 ||
               strcasecmp(dt, "uuid") == 0 || strcasecmp(dt, "inet6") == 0 ||
               strcasecmp(dt, "inet4") == 0) {
        /* MariaDB's UUID/INET types are fixed binary strings in the binlog */
        if (strcasecmp(dt, "uuid") == 0 || strcasecmp(dt, "inet6") == 0) {
            c->cast_bytes = 16;
        } else if (strcasecmp(dt, "inet4") == 0) {
            c->cast_bytes = 4;
        }
        if (c->cast_bytes != 0) {
            octets = c->cast_bytes;
        }
        if (octets > 1023) {
            ms_error_set(err, MS_ERR_DECODE, MS_DECODE_UNSUPPORTED,
                         "%s.%s column %s: CHAR of %lu bytes", db, table, col->name, octets);
            return false;
        }
        c->kind = K_CHAR;
        c->width = (unsigned)octets;
        col->type = MS_T_STRING;
        col->real_type = MS_T_STRING;
        /* the real type, with bits 8-9 of the length folded into it (XOR 0x30) */
        col->meta = (uint16_t)((MS_T_STRING ^ ((octets >> 4) & 0x30)) << 8 | (octets & 0xff));
        if (col->collation == 0) {
            col->collation = 63;
        }
    } else if (strcasecmp(dt, "varchar") == 0 || strcasecmp(dt, "varbinary") == 0) {
        if (octets > 65535) {
            ms_error_set(err, MS_ERR_DECODE, MS_DECODE_UNSUPPORTED,
                         "%s.%s column %s: VARCHAR of %lu bytes", db, table, col->name, octets);
            return false;
        }
        c->kind = K_VARCHAR;
        c->width = (unsigned)octets;
        col->type = MS_T_VARCHAR;
        col->meta = (uint16_t)octets;
        if (col->collation == 0) {
            col->collation = 63;
        }
    } else if (strcasecmp(dt, "json") == 0) {
        c->kind = K_JSON;
        col->type = MS_T_JSON;
        col->meta = 4;
    } else {
        ms_error_set(err, MS_ERR_DECODE, MS_DECODE_UNSUPPORTED,
                     "%s.%s column %s: type %s cannot be re-read", db, table, col->name, ct);
        return false;
    }
    col->is_binary = col->collation == 63;
    return true;
}

/* MariaDB's JSON columns: LONGTEXT with a json_valid(`col`) check, found as schema.c finds
 * them (so both paths agree on which columns are documents). */
static bool load_json_checks(struct ms_source *s, struct stable *t, struct ms_error *err)
{
    struct sql q = {0};
    MYSQL_RES *r;
    MYSQL_ROW row;

    sql_str(&q, "SELECT CHECK_CLAUSE FROM information_schema.CHECK_CONSTRAINTS WHERE "
                "CONSTRAINT_SCHEMA = ");
    sql_literal(&q, s->conn, t->db);
    sql_str(&q, " AND TABLE_NAME = ");
    sql_literal(&q, s->conn, t->table);
    if (q.oom) {
        free(q.p);
        return out_of_memory(err);
    }
    if (mysql_query(s->conn, q.p) != 0 || (r = mysql_store_result(s->conn)) == NULL) {
        free(q.p);
        conn_error(s->conn, "reading information_schema.CHECK_CONSTRAINTS", err);
        return false;
    }
    free(q.p);
    while ((row = mysql_fetch_row(r)) != NULL) {
        for (size_t i = 0; row[0] != NULL && i < t->ncols; i++) {
            struct sql want = {0};

            sql_str(&want, "json_valid(`");
            sql_str(&want, t->cols[i].col.name);
            sql_str(&want, "`)");
            if (want.p != NULL && strcasestr(row[0], want.p) != NULL) {
                t->cols[i].col.is_json_text = true;
            }
            free(want.p);
        }
    }
    mysql_free_result(r);
    return true;
}

static bool load_columns(struct ms_source *s, struct stable *t, struct ms_error *err)
{
    struct sql q = {0};
    MYSQL_RES *r;
    MYSQL_ROW row;
    bool ok = true;

    sql_str(&q, "SELECT c.COLUMN_NAME, c.DATA_TYPE, c.COLUMN_TYPE, c.CHARACTER_OCTET_LENGTH, "
                "c.NUMERIC_PRECISION, c.NUMERIC_SCALE, c.DATETIME_PRECISION, co.ID FROM "
                "information_schema.COLUMNS c LEFT JOIN information_schema.COLLATIONS co ON "
                "co.COLLATION_NAME = c.COLLATION_NAME WHERE c.TABLE_SCHEMA = ");
    sql_literal(&q, s->conn, t->db);
    sql_str(&q, " AND c.TABLE_NAME = ");
    sql_literal(&q, s->conn, t->table);
    sql_str(&q, " ORDER BY c.ORDINAL_POSITION");
    if (q.oom) {
        free(q.p);
        return out_of_memory(err);
    }
    if (mysql_query(s->conn, q.p) != 0 || (r = mysql_store_result(s->conn)) == NULL) {
        free(q.p);
        conn_error(s->conn, "reading information_schema.COLUMNS", err);
        return false;
    }
    free(q.p);
    t->ncols = (size_t)mysql_num_rows(r);
    if (t->ncols == 0) {
        mysql_free_result(r);
        ms_error_set(err, MS_ERR_MYSQL, ER_NO_SUCH_TABLE, "re-reading %s.%s: no such table", t->db,
                     t->table);
        return false;
    }
    t->cols = calloc(t->ncols, sizeof(*t->cols));
    if (t->cols == NULL) {
        mysql_free_result(r);
        t->ncols = 0;
        return out_of_memory(err);
    }
    for (size_t i = 0; i < t->ncols && ok; i++) {
        row = mysql_fetch_row(r);
        if (row == NULL) {
            t->ncols = i;
            break;
        }
        ok = describe(&t->cols[i], row, t->db, t->table, err);
    }
    mysql_free_result(r);
    if (ok && s->is_mariadb) {
        ok = load_json_checks(s, t, err);
    }
    return ok;
}

/* The primary key's columns in key order, for ORDER BY (none: the table has no primary key). */
static bool load_primary_key(struct ms_source *s, struct stable *t, struct ms_error *err)
{
    struct sql q = {0};
    MYSQL_RES *r;
    MYSQL_ROW row;
    size_t n;

    sql_str(&q, "SELECT COLUMN_NAME FROM information_schema.STATISTICS WHERE TABLE_SCHEMA = ");
    sql_literal(&q, s->conn, t->db);
    sql_str(&q, " AND TABLE_NAME = ");
    sql_literal(&q, s->conn, t->table);
    sql_str(&q, " AND INDEX_NAME = 'PRIMARY' ORDER BY SEQ_IN_INDEX");
    if (q.oom) {
        free(q.p);
        return out_of_memory(err);
    }
    if (mysql_query(s->conn, q.p) != 0 || (r = mysql_store_result(s->conn)) == NULL) {
        free(q.p);
        conn_error(s->conn, "reading information_schema.STATISTICS", err);
        return false;
    }
    free(q.p);
    n = (size_t)mysql_num_rows(r);
    t->order = calloc(n > 0 ? n : 1, sizeof(char *));
    if (t->order == NULL) {
        mysql_free_result(r);
        return out_of_memory(err);
    }
    while (t->norder < n && (row = mysql_fetch_row(r)) != NULL) {
        t->order[t->norder] = strdup(row[0] != NULL ? row[0] : "");
        if (t->order[t->norder] == NULL) {
            mysql_free_result(r);
            return out_of_memory(err);
        }
        t->norder++;
    }
    mysql_free_result(r);
    return true;
}

static enum key_form key_form(const struct ms_source *s, const struct scol *c)
{
    if (c->kind == K_DATETIME || c->kind == K_TIMESTAMP) {
        return KF_RANGE;
    }
    if (c->kind == K_DECIMAL && s->opts->decimal_as == MS_DEC_DOUBLE) {
        return KF_DOUBLE;
    }
    return KF_EQUAL;
}

static size_t form_params(enum key_form f)
{
    return f == KF_EQUAL ? 1 : f == KF_RANGE ? 2 : 3;
}

/* "SELECT col, col+0 (ENUM, SET), CAST(col AS BINARY(n)) (UUID, INET), ...": every column
 * of t in table order, each selected so that bind_results() can fetch it. */
static void sql_select_list(struct sql *q, const struct stable *t)
{
    sql_str(q, "SELECT ");
    for (size_t i = 0; i < t->ncols; i++) {
        const struct scol *c = &t->cols[i];
        char cast[48];

        if (i > 0) {
            sql_str(q, ", ");
        }
        if (c->cast_bytes != 0) {
            sql_str(q, "CAST(");
        }
        sql_ident(q, c->col.name);
        if (c->kind == K_ENUM || c->kind == K_SET) {
            sql_str(q, "+0");
        }
        if (c->cast_bytes != 0) {
            snprintf(cast, sizeof(cast), " AS BINARY(%u))", c->cast_bytes);
            sql_str(q, cast);
        }
    }
}

/* res[0..ncols): one result binding per column, into the column's fetch buffers. */
static bool bind_results(struct stable *t, MYSQL_BIND *res, struct ms_error *err)
{
    for (size_t i = 0; i < t->ncols; i++) {
        struct scol *c = &t->cols[i];
        MYSQL_BIND *b = &res[i];

        b->length = &c->length;
        b->is_null = &c->is_null;
        b->error = &c->error;
        b->is_unsigned = c->col.is_unsigned;
        switch (c->kind) {
        case K_INT:
        case K_YEAR:
        case K_ENUM:
        case K_SET:
            b->buffer_type = MYSQL_TYPE_LONGLONG;
            b->buffer = &c->v.i;
            b->is_unsigned = c->kind == K_INT ? c->col.is_unsigned : 1;
            break;
        case K_FLOAT:
            b->buffer_type = MYSQL_TYPE_FLOAT;
            b->buffer = &c->v.f;
            break;
        case K_DOUBLE:
            b->buffer_type = MYSQL_TYPE_DOUBLE;
            b->buffer = &c->v.d;
            break;
        case K_DATE:
            b->buffer_type = MYSQL_TYPE_DATE;
            b->buffer = &c->v.t;
            break;
        case K_DATETIME:
            b->buffer_type = MYSQL_TYPE_DATETIME;
            b->buffer = &c->v.t;
            break;
        case K_TIMESTAMP:
            b->buffer_type = MYSQL_TYPE_TIMESTAMP;
            b->buffer = &c->v.t;
            break;
        case K_TIME:
            b->buffer_type = MYSQL_TYPE_TIME;
            b->buffer = &c->v.t;
            break;
        default:
            c->varcap = VAR_MIN;
            c->var = malloc(c->varcap);
            if (c->var == NULL) {
                return out_of_memory(err);
            }
            b->buffer_type = MYSQL_TYPE_BLOB;
            b->buffer = c->var + PREFIX;
            b->buffer_length = c->varcap - PREFIX;
            break;
        }
    }
    return true;
}

/* SELECT every column FROM `db`.`table` WHERE key LIMIT 1 (many: WHERE column ORDER BY the
 * primary key LIMIT ?), prepared; the result and parameter bindings. */
static bool prepare(struct ms_source *s, struct stable *t, struct ms_error *err)
{
    struct sql q = {0};
    bool ok = false;

    t->keys = calloc(t->npk, sizeof(*t->keys));
    if (t->keys == NULL) {
        return out_of_memory(err);
    }
    for (size_t k = 0; k < t->npk; k++) {
        size_t i;

        for (i = 0; i < t->ncols && strcmp(t->cols[i].col.name, t->pk[k]) != 0; i++) {
        }
        if (i == t->ncols) {
            /* column names are case-insensitive in MySQL */
            for (i = 0; i < t->ncols && strcasecmp(t->cols[i].col.name, t->pk[k]) != 0; i++) {
            }
        }
        if (i == t->ncols) {
            ms_error_set(err, MS_ERR_DECODE, MS_DECODE_SCHEMA,
                         "re-reading %s.%s: %s column %s is not in the table", t->db, t->table,
                         t->many ? "lookup" : "key", t->pk[k]);
            return false;
        }
        if (t->cols[i].kind == K_GEOMETRY || t->cols[i].kind == K_JSON ||
            t->cols[i].col.is_json_text) {
            ms_error_set(err, MS_ERR_DECODE, MS_DECODE_UNSUPPORTED,
                         "re-reading %s.%s: %s column %s of type %s cannot be matched", t->db,
                         t->table, t->many ? "lookup" : "key", t->pk[k], t->cols[i].data_type);
            return false;
        }
        t->keys[k].col = i;
        t->keys[k].form = key_form(s, &t->cols[i]);
        t->keys[k].par = t->npar;
        t->npar += form_params(t->keys[k].form);
    }

    sql_select_list(&q, t);
    sql_str(&q, " FROM ");
    sql_ident(&q, t->db);
    sql_str(&q, ".");
    sql_ident(&q, t->table);
    sql_str(&q, " WHERE ");
    for (size_t k = 0; k < t->npk; k++) {
        if (k > 0) {
            sql_str(&q, " AND ");
        }
        sql_ident(&q, t->cols[t->keys[k].col].col.name);
        if (t->keys[k].form == KF_EQUAL) {
            sql_str(&q, " <=> ?");
        } else {
            sql_str(&q, " BETWEEN ? AND ?");
        }
        if (t->keys[k].form == KF_DOUBLE) {
            sql_str(&q, " AND ");
            sql_ident(&q, t->cols[t->keys[k].col].col.name);
            sql_str(&q, " + 0e0 = ?");
        }
    }
    if (t->many) {
        for (size_t k = 0; k < t->norder; k++) {
            sql_str(&q, k == 0 ? " ORDER BY " : ", ");
            sql_ident(&q, t->order[k]);
        }
        sql_str(&q, " LIMIT ?");
        t->npar++; /* the last parameter: the row limit */
    } else {
        sql_str(&q, " LIMIT 1");
    }
    if (q.oom) {
        free(q.p);
        return out_of_memory(err);
    }

    t->res = calloc(t->ncols, sizeof(*t->res));
    t->par = calloc(t->npar, sizeof(*t->par));
    t->pbufs = calloc(t->npar, sizeof(*t->pbufs));
    if (t->res == NULL || t->par == NULL || t->pbufs == NULL) {
        out_of_memory(err);
        goto done;
    }
    t->stmt = mysql_stmt_init(s->conn);
    if (t->stmt == NULL) {
        out_of_memory(err);
        goto done;
    }
    if (mysql_stmt_prepare(t->stmt, q.p, (unsigned long)q.len) != 0) {
        stmt_error(t->stmt, "preparing the re-read of", t->db, t->table, err);
        goto done;
    }
    if (mysql_stmt_field_count(t->stmt) != t->ncols || mysql_stmt_param_count(t->stmt) != t->npar) {
        ms_error_set(err, MS_ERR_MYSQL, 0,
                     "re-reading %s.%s: the statement has %u columns and %lu "
                     "parameters, %zu and %zu expected (table changed?)",
                     t->db, t->table, mysql_stmt_field_count(t->stmt),
                     mysql_stmt_param_count(t->stmt), t->ncols, t->npar);
        goto done;
    }
    if (!bind_results(t, t->res, err)) {
        goto done;
    }
    ok = true;
    ms_log(MS_LOG_DEBUG, "re-read statement for %s.%s: %s", t->db, t->table, q.p);
done:
    free(q.p);
    return ok;
}

static struct stable *load_table(struct ms_source *s, const char *db, const char *table, bool many,
                                 const char *const *pk, size_t npk, struct ms_error *err)
{
    struct stable *t = calloc(1, sizeof(*t));

    if (t == NULL) {
        out_of_memory(err);
        return NULL;
    }
    t->many = many;
    t->db = strdup(db);
    t->table = strdup(table);
    t->pk = calloc(npk, sizeof(char *));
    if (t->db == NULL || t->table == NULL || t->pk == NULL) {
        goto fail;
    }
    for (size_t k = 0; k < npk; k++) {
        t->pk[k] = strdup(pk[k]);
        if (t->pk[k] == NULL) {
            goto fail;
        }
        t->npk++;
    }
    if (!load_columns(s, t, err) || (many && !load_primary_key(s, t, err)) || !prepare(s, t, err)) {
        free_table(t);
        return NULL;
    }
    if (s->ntables == s->captables) {
        size_t cap = s->captables > 0 ? s->captables * 2 : 16;
        struct stable **nt = realloc(s->tables, cap * sizeof(*nt));

        if (nt == NULL) {
            goto fail;
        }
        s->tables = nt;
        s->captables = cap;
    }
    s->tables[s->ntables++] = t;
    return t;
fail:
    free_table(t);
    out_of_memory(err);
    return NULL;
}

/* ---- key parameters ----------------------------------------------------------------- */

/* A finite Decimal128 as plain decimal text ("-123.45", "18446744073709551615"), never in
 * exponent form; false for NaN, infinities and exponents no column type could hold. */
static bool dec128_plain(const bson_decimal128_t *d, char *out, size_t cap)
{
    bool neg = d->high >> 63 != 0;
    int exponent;
    unsigned __int128 coef;
    char digits[48];
    size_t nd = 0, o = 0;

    if ((d->high >> 61 & 3) == 3) {
        return false; /* NaN, infinity, or a coefficient beyond 34 digits (non-canonical) */
    }
    exponent = (int)(d->high >> 49 & 0x3fff) - 6176;
    coef = (unsigned __int128)(d->high & ((UINT64_C(1) << 49) - 1)) << 64 | d->low;
    do {
        digits[nd++] = (char)('0' + (int)(coef % 10));
        coef /= 10;
    } while (coef != 0 && nd < sizeof(digits));
    if (exponent > DEC_MAX_PREC || exponent < -(DEC_MAX_PREC + DEC_MAX_FRAC) ||
        nd + (size_t)(exponent > 0 ? exponent : -exponent) + 4 > cap) {
        return false;
    }
    if (neg && !(nd == 1 && digits[0] == '0')) {
        out[o++] = '-';
    }
    if (exponent >= 0) {
        while (nd > 0) {
            out[o++] = digits[--nd];
        }
        for (int i = 0; i < exponent; i++) {
            out[o++] = '0';
        }
    } else {
        size_t frac = (size_t)-exponent;

        if (nd <= frac) {
            out[o++] = '0';
        }
        while (nd > frac) {
            out[o++] = digits[--nd];
        }
        out[o++] = '.';
        for (size_t i = frac; i > 0; i--) {
            out[o++] = i <= nd ? digits[i - 1] : '0';
        }
    }
    out[o] = '\0';
    return true;
}

static bool key_misfit(const struct stable *t, const struct scol *c, const bson_iter_t *v,
                       struct ms_error *err)
{
    ms_error_set(err, MS_ERR_DECODE, MS_DECODE_SCHEMA,
                 "re-reading %s.%s: a key value of BSON type 0x%02x does not fit column %s (%s)",
                 t->db, t->table, (unsigned)bson_iter_type(v), c->col.name, c->data_type);
    return false;
}

static void bind_text(MYSQL_BIND *b, struct pbuf *pb, enum enum_field_types type, const char *s,
                      size_t n)
{
    pb->length = (unsigned long)n;
    b->buffer_type = type;
    b->buffer = (void *)s;
    b->buffer_length = (unsigned long)n;
    b->length = &pb->length;
}

/* ms since the epoch -> a MYSQL_TIME at offset seconds east of UTC; false when the year is
 * outside what any column holds. */
static bool date_to_time(int64_t ms, int32_t offset, bool date_only, MYSQL_TIME *t)
{
    int64_t secs = floor_div(ms, 1000) + offset, days = floor_div(secs, 86400), year;
    int64_t sod = secs - days * 86400;
    unsigned month, day;

    ms_rows_civil_from_days(days, &year, &month, &day);
    if (year < 0 || year > 9999) {
        return false;
    }
    memset(t, 0, sizeof(*t));
    t->year = (unsigned)year;
    t->month = month;
    t->day = day;
    if (date_only) {
        t->time_type = MYSQL_TIMESTAMP_DATE;
        return true;
    }
    t->hour = (unsigned)(sod / 3600);
    t->minute = (unsigned)(sod / 60 % 60);
    t->second = (unsigned)(sod % 60);
    t->second_part = (unsigned long)(ms - floor_div(ms, 1000) * 1000) * 1000;
    t->time_type = MYSQL_TIMESTAMP_DATETIME;
    return true;
}

/* SET labels -> "a,b" (the SET's own text form) */
static bool join_labels(bson_iter_t *v, struct pbuf *pb)
{
    bson_iter_t a;
    size_t n = 0, cap = 0;
    char *p = NULL;

    if (!bson_iter_recurse(v, &a)) {
        return false;
    }
    while (bson_iter_next(&a)) {
        uint32_t len;
        const char *s;

        if (!BSON_ITER_HOLDS_UTF8(&a)) {
            free(p);
            return false;
        }
        s = bson_iter_utf8(&a, &len);
        if (n + len + 2 > cap) {
            char *np;
            cap = (n + len + 2) * 2;
            np = realloc(p, cap);
            if (np == NULL) {
                free(p);
                return false;
            }
            p = np;
        }
        if (n > 0) {
            p[n++] = ',';
        }
        memcpy(p + n, s, len);
        n += len;
    }
    if (p == NULL) {
        p = strdup("");
        if (p == NULL) {
            return false;
        }
    }
    p[n] = '\0';
    free(pb->heap);
    pb->heap = p;
    pb->length = (unsigned long)n;
    return true;
}

/* The next double after d towards +inf (dir > 0) or -inf, for finite d. */
static double next_double(double d, int dir)
{
    uint64_t bits;

    if (d == 0) {
        return dir > 0 ? 4.9406564584124654e-324 : -4.9406564584124654e-324;
    }
    memcpy(&bits, &d, sizeof(bits));
    if ((d > 0) == (dir > 0)) {
        bits++;
    } else {
        bits--;
    }
    memcpy(&d, &bits, sizeof(d));
    return d;
}

/* DECIMAL under decimal_as=double: the decoder's strtod() of the exact text. The rows whose
 * value converts to d lie strictly between d's neighbours (two steps out, whatever the
 * rounding of the bounds to the column's scale); `col` + 0e0 = d then picks them exactly
 * (the server converts DECIMAL to double through its text, as the decoder does). */
static bool bind_double_decimal(const struct stable *t, const struct scol *c, bson_iter_t *v,
                                MYSQL_BIND *b, struct pbuf *pb, struct ms_error *err)
{
    double d;

    if (BSON_ITER_HOLDS_DOUBLE(v)) {
        d = bson_iter_double(v);
    } else if (BSON_ITER_HOLDS_INT32(v) || BSON_ITER_HOLDS_INT64(v)) {
        d = (double)bson_iter_as_int64(v);
    } else {
        return key_misfit(t, c, v, err);
    }
    if (d != d || d - d != 0) {
        return key_misfit(t, c, v, err); /* NaN, infinities */
    }
    pb[0].v.d = next_double(next_double(d, -1), -1);
    pb[1].v.d = next_double(next_double(d, 1), 1);
    pb[2].v.d = d;
    for (size_t i = 0; i < 3; i++) {
        b[i].buffer_type = MYSQL_TYPE_DOUBLE;
        b[i].buffer = &pb[i].v.d;
    }
    return true;
}

/* Binds key column k's parameter(s) from the BSON value v (as the decoder wrote it). */
static bool bind_key(struct ms_source *s, struct stable *t, size_t k, bson_iter_t *v,
                     struct ms_error *err)
{
    const struct key *key = &t->keys[k];
    const struct scol *c = &t->cols[key->col];
    MYSQL_BIND *b = &t->par[key->par];
    struct pbuf *pb = &t->pbufs[key->par];
    const struct ms_value_opts *opts = s->opts;
    bson_type_t bt = bson_iter_type(v);
    uint32_t len;
    const char *str;

    memset(b, 0, sizeof(*b) * form_params(key->form));
    if (bt == BSON_TYPE_NULL) {
        for (size_t i = 0; i < form_params(key->form); i++) {
            b[i].buffer_type = MYSQL_TYPE_NULL;
        }
        return true;
    }
    if (key->form == KF_DOUBLE) {
        return bind_double_decimal(t, c, v, b, pb, err);
    }
    switch (c->kind) {
    case K_INT:
    case K_YEAR:
    case K_BIT:
    case K_ENUM:
    case K_SET:
        if (bt == BSON_TYPE_INT32 || bt == BSON_TYPE_INT64) {
            pb->v.i = bt == BSON_TYPE_INT32 ? bson_iter_int32(v) : bson_iter_int64(v);
            b->buffer_type = MYSQL_TYPE_LONGLONG;
            b->buffer = &pb->v.i;
            /* BIT(64) values above 2^63 are int64 with their bits kept */
            b->is_unsigned = c->kind == K_BIT;
            return true;
        }
        if (c->kind == K_INT && bt == BSON_TYPE_DECIMAL128) {
            /* BIGINT UNSIGNED above 2^63-1; bound as an unsigned integer (a string would
             * be compared as a double) */
            bson_decimal128_t d;
            char *end;
            unsigned long long u;

            bson_iter_decimal128(v, &d);
            if (!dec128_plain(&d, pb->text, sizeof(pb->text)) || pb->text[0] == '-' ||
                strchr(pb->text, '.') != NULL) {
                return key_misfit(t, c, v, err);
            }
            errno = 0;
            u = strtoull(pb->text, &end, 10);
            if (errno != 0 || *end != '\0') {
                return key_misfit(t, c, v, err);
            }
            pb->v.i = (int64_t)u;
            b->buffer_type = MYSQL_TYPE_LONGLONG;
            b->buffer = &pb->v.i;
            b->is_unsigned = 1;
            return true;
        }
        if (c->kind == K_ENUM && bt == BSON_TYPE_UTF8) {
            str = bson_iter_utf8(v, &len);
            bind_text(b, pb, MYSQL_TYPE_STRING, str, len);
            return true;
        }
        if (c->kind == K_SET && bt == BSON_TYPE_ARRAY) {
            if (!join_labels(v, pb)) {
                return key_misfit(t, c, v, err);
            }
            bind_text(b, pb, MYSQL_TYPE_STRING, pb->heap, pb->length);
            return true;
        }
        return key_misfit(t, c, v, err);
    case K_FLOAT:
    case K_DOUBLE:
        if (bt != BSON_TYPE_DOUBLE) {
            return key_misfit(t, c, v, err);
        }
        pb->v.d = bson_iter_double(v);
        b->buffer_type = MYSQL_TYPE_DOUBLE;
        b->buffer = &pb->v.d;
        return true;
    case K_DECIMAL:
        if (bt == BSON_TYPE_DECIMAL128) {
            bson_decimal128_t d;

            bson_iter_decimal128(v, &d);
            if (!dec128_plain(&d, pb->text, sizeof(pb->text))) {
                return key_misfit(t, c, v, err);
            }
            /* a decimal parameter: compared as a decimal, exactly */
            bind_text(b, pb, MYSQL_TYPE_NEWDECIMAL, pb->text, strlen(pb->text));
            return true;
        }
        if (bt == BSON_TYPE_UTF8) { /* decimal_as=string, or beyond Decimal128 */
            str = bson_iter_utf8(v, &len);
            bind_text(b, pb, MYSQL_TYPE_NEWDECIMAL, str, len);
            return true;
        }
        return key_misfit(t, c, v, err);
    case K_DATE:
        if (bt == BSON_TYPE_DATE_TIME) {
            if (!date_to_time(bson_iter_date_time(v), 0, true, &pb->v.t)) {
                return key_misfit(t, c, v, err);
            }
            b->buffer_type = MYSQL_TYPE_DATE;
            b->buffer = &pb->v.t;
            return true;
        }
        if (bt == BSON_TYPE_UTF8) {
            str = bson_iter_utf8(v, &len);
            bind_text(b, pb, MYSQL_TYPE_STRING, str, len);
            return true;
        }
        return key_misfit(t, c, v, err);
    case K_DATETIME:
    case K_TIMESTAMP:
        if (bt == BSON_TYPE_DATE_TIME) {
            /* a Date keeps milliseconds: the stored value lies in [t, t + 999 us] */
            int32_t off = c->kind == K_DATETIME ? opts->source_utc_offset : 0;

            if (!date_to_time(bson_iter_date_time(v), off, false, &pb->v.t)) {
                return key_misfit(t, c, v, err);
            }
            pb[1].v.t = pb->v.t;
            pb[1].v.t.second_part += 999;
            b[0].buffer_type = b[1].buffer_type = MYSQL_TYPE_DATETIME;
            b[0].buffer = &pb[0].v.t;
            b[1].buffer = &pb[1].v.t;
            return true;
        }
        if (bt == BSON_TYPE_UTF8) { /* exact: micros kept, or a zero/invalid date */
            str = bson_iter_utf8(v, &len);
            bind_text(&b[0], &pb[0], MYSQL_TYPE_STRING, str, len);
            bind_text(&b[1], &pb[1], MYSQL_TYPE_STRING, str, len);
            return true;
        }
        return key_misfit(t, c, v, err);
    case K_TIME:
        if (bt != BSON_TYPE_UTF8) {
            return key_misfit(t, c, v, err);
        }
        str = bson_iter_utf8(v, &len);
        bind_text(b, pb, MYSQL_TYPE_STRING, str, len);
        return true;
    case K_CHAR:
    case K_VARCHAR:
    case K_BLOB:
        if (bt == BSON_TYPE_UTF8) {
            str = bson_iter_utf8(v, &len);
            bind_text(b, pb, MYSQL_TYPE_STRING, str, len);
            return true;
        }
        if (bt == BSON_TYPE_BINARY) {
            const uint8_t *bin;
            bson_subtype_t sub;

            bson_iter_binary(v, &sub, &len, &bin);
            /* a binary string: compared byte by byte (UUID/INET accept their 16 or 4 bytes) */
            bind_text(b, pb, MYSQL_TYPE_BLOB, (const char *)bin, len);
            return true;
        }
        return key_misfit(t, c, v, err);
    default:
        return key_misfit(t, c, v, err);
    }
}

/* Binds every key parameter from id ({"_id": value} or {"_id": {col: value, ...}}). */
static bool bind_keys(struct ms_source *s, struct stable *t, const bson_t *id, struct ms_error *err)
{
    bson_iter_t it, sub;

    if (!bson_iter_init_find(&it, id, "_id")) {
        ms_error_set(err, MS_ERR_DECODE, MS_DECODE_SCHEMA,
                     "re-reading %s.%s: the key document has no _id", t->db, t->table);
        return false;
    }
    if (t->npk == 1) {
        return bind_key(s, t, 0, &it, err);
    }
    if (!BSON_ITER_HOLDS_DOCUMENT(&it) || !bson_iter_recurse(&it, &sub)) {
        ms_error_set(err, MS_ERR_DECODE, MS_DECODE_SCHEMA,
                     "re-reading %s.%s: the key has %zu columns but _id is not a document", t->db,
                     t->table, t->npk);
        return false;
    }
    {
        size_t n = 0;
        bson_iter_t cnt = sub;

        while (bson_iter_next(&cnt)) {
            n++;
        }
        if (n != t->npk) {
            ms_error_set(err, MS_ERR_DECODE, MS_DECODE_SCHEMA,
                         "re-reading %s.%s: _id has %zu fields, the key has %zu columns", t->db,
                         t->table, n, t->npk);
            return false;
        }
    }
    for (size_t k = 0; k < t->npk; k++) {
        bson_iter_t f = sub;

        if (!bson_iter_find(&f, t->pk[k])) {
            ms_error_set(err, MS_ERR_DECODE, MS_DECODE_SCHEMA,
                         "re-reading %s.%s: _id has no field for key column %s", t->db, t->table,
                         t->pk[k]);
            return false;
        }
        if (!bind_key(s, t, k, &f, err)) {
            return false;
        }
    }
    return true;
}

/* ---- values -> row-image bytes -> BSON ---------------------------------------------- */

/* DECIMAL text ("-123.4500") -> MySQL's packed form (decimal2bin), the inverse of rows.c's
 * unpack_decimal. */
static bool pack_decimal(const char *s, size_t n, unsigned prec, unsigned scale, uint8_t *out,
                         size_t *outlen)
{
    static const uint8_t dig2bytes[10] = {0, 1, 1, 2, 2, 3, 3, 4, 4, 4};
    unsigned intg = prec - scale;
    char digits[DEC_MAX_PREC];
    size_t i = 0, ni, nf = 0, off = 0, nd = 0;
    const char *ip, *fp = NULL;
    bool neg = false;
    unsigned groups[4][2] = {
        {intg % 9 != 0 ? 1 : 0, intg % 9},
        {intg / 9, 9},
        {scale / 9, 9},
        {scale % 9 != 0 ? 1 : 0, scale % 9},
    };

    if (i < n && (s[i] == '-' || s[i] == '+')) {
        neg = s[i] == '-';
        i++;
    }
    while (i < n && s[i] == '0') {
        i++;
    }
    ip = s + i;
    for (ni = 0; i < n && s[i] >= '0' && s[i] <= '9'; i++) {
        ni++;
    }
    if (i < n && s[i] == '.') {
        fp = s + ++i;
        for (; i < n && s[i] >= '0' && s[i] <= '9'; i++) {
            nf++;
        }
    }
    if (i != n || ni > intg || nf > scale) {
        return false;
    }
    memset(digits, '0', prec);
    memcpy(digits + (intg - ni), ip, ni);
    if (fp != NULL) {
        memcpy(digits + intg, fp, nf);
    }
    for (size_t g = 0; g < 4; g++) {
        unsigned ndig = groups[g][1];
        size_t nbytes = ndig == 9 ? 4 : dig2bytes[ndig];

        for (unsigned k = 0; k < groups[g][0]; k++) {
            uint32_t v = 0;

            for (unsigned d = 0; d < ndig; d++) {
                v = v * 10 + (uint32_t)(digits[nd++] - '0');
            }
            put_be(out + off, v, nbytes);
            off += nbytes;
        }
    }
    if (neg) {
        bool zero = true;

        for (size_t d = 0; d < prec; d++) {
            zero = zero && digits[d] == '0';
        }
        for (size_t b = 0; b < off && !zero; b++) {
            out[b] = (uint8_t)~out[b];
        }
    }
    out[0] ^= 0x80;
    *outlen = off;
    return true;
}

/* The fraction of DATETIME2/TIMESTAMP2: (fsp + 1) / 2 big-endian bytes. */
static size_t put_frac(uint8_t *p, unsigned long usec, unsigned fsp)
{
    switch ((fsp + 1) / 2) {
    case 1:
        put_be(p, usec / 10000, 1);
        return 1;
    case 2:
        put_be(p, usec / 100, 2);
        return 2;
    case 3:
        put_be(p, usec, 3);
        return 3;
    default:
        return 0;
    }
}

/* my_time_packed_to_binary(): the integer part floor-divided, the fraction the truncated
 * remainder (the decoder's my_time_packed_from_binary() undoes exactly this). */
static size_t put_time2(uint8_t *p, const MYSQL_TIME *t, unsigned fsp)
{
    uint64_t hours = (uint64_t)t->day * 24 + t->hour;
    int64_t intpart = (int64_t)(hours << 12 | t->minute << 6 | t->second);
    int64_t packed = intpart * (INT64_C(1) << 24) + (int64_t)t->second_part;
    int64_t ip, frac;

    if (t->neg) {
        packed = -packed;
    }
    ip = floor_div(packed, INT64_C(1) << 24);
    frac = packed % (INT64_C(1) << 24);
    switch ((fsp + 1) / 2) {
    case 0:
        put_be(p, (uint64_t)(0x800000 + ip), 3);
        return 3;
    case 1:
        put_be(p, (uint64_t)(0x800000 + ip), 3);
        p[3] = (uint8_t)(int8_t)(frac / 10000);
        return 4;
    case 2:
        put_be(p, (uint64_t)(0x800000 + ip), 3);
        put_be(p + 3, (uint16_t)(int16_t)(frac / 100), 2);
        return 5;
    default:
        put_be(p, (uint64_t)(packed + INT64_C(0x800000000000)), 6);
        return 6;
    }
}

static bool value_error(const struct stable *t, const struct scol *c, const char *what,
                        struct ms_error *err)
{
    ms_error_set(err, MS_ERR_DECODE, MS_DECODE_MALFORMED, "re-reading %s.%s column %s (%s): %s",
                 t->db, t->table, c->col.name, c->data_type, what);
    return false;
}

/* Appends column c's fetched value to row, through the binlog decoder. */
static bool append_value(const struct ms_source *s, const struct stable *t, struct scol *c,
                         bson_t *row, struct ms_error *err)
{
    uint8_t buf[64];
    const uint8_t *p = buf;
    size_t n = 0, used;
    const MYSQL_TIME *tm = &c->v.t;

    if (c->is_null) {
        if (!bson_append_null(row, c->col.name, -1)) {
            return value_error(t, c, "row does not fit in a BSON document", err);
        }
        return true;
    }
    switch (c->kind) {
    case K_INT:
        put_le(buf, (uint64_t)c->v.i, c->width);
        n = c->width;
        break;
    case K_FLOAT: {
        uint32_t bits;
        memcpy(&bits, &c->v.f, 4);
        put_le(buf, bits, 4);
        n = 4;
        break;
    }
    case K_DOUBLE: {
        uint64_t bits;
        memcpy(&bits, &c->v.d, 8);
        put_le(buf, bits, 8);
        n = 8;
        break;
    }
    case K_DECIMAL:
        if (!pack_decimal((const char *)c->var + PREFIX, c->length, c->col.meta >> 8,
                          c->col.meta & 0xff, buf, &n)) {
            return value_error(t, c, "the server's DECIMAL text does not fit its precision", err);
        }
        break;
    case K_YEAR:
        buf[0] = (uint8_t)(c->v.i >= 1901 && c->v.i <= 2155 ? c->v.i - 1900 : 0);
        n = 1;
        break;
    case K_DATE:
        put_le(buf, tm->day | tm->month << 5 | (uint64_t)tm->year << 9, 3);
        n = 3;
        break;
    case K_DATETIME: {
        uint64_t ym = (uint64_t)tm->year * 13 + tm->month;
        uint64_t v = (ym << 5 | tm->day) << 17 | tm->hour << 12 | tm->minute << 6 | tm->second;
        put_be(buf, v + UINT64_C(0x8000000000), 5);
        n = 5 + put_frac(buf + 5, tm->second_part, c->fsp);
        break;
    }
    case K_TIMESTAMP: {
        int64_t secs = 0;
        if (tm->year != 0 || tm->month != 0 || tm->day != 0) {
            secs = ms_rows_days_from_civil(tm->year, tm->month, tm->day) * 86400 + tm->hour * 3600 +
                   tm->minute * 60 + tm->second;
        }
        if (secs < 0 || secs > UINT32_MAX) {
            return value_error(t, c, "TIMESTAMP out of range", err);
        }
        put_be(buf, (uint64_t)secs, 4);
        n = 4 + put_frac(buf + 4, tm->second_part, c->fsp);
        break;
    }
    case K_TIME:
        n = put_time2(buf, tm, c->fsp);
        break;
    case K_BIT: {
        size_t want = (c->col.meta >> 8) + ((c->col.meta & 0xff) != 0);
        const uint8_t *v = c->var + PREFIX;
        size_t have = c->length;

        memset(buf, 0, want);
        /* right-aligned, big-endian */
        while (have > want) {
            v++;
            have--;
        }
        memcpy(buf + want - have, v, have);
        n = want;
        break;
    }
    case K_ENUM:
        put_le(buf, (uint64_t)c->v.i, c->width);
        n = c->width;
        break;
    case K_SET:
        put_le(buf, (uint64_t)c->v.i, 8);
        n = 8;
        break;
    case K_CHAR:
    case K_VARCHAR: {
        /* 1 length byte below 256 bytes of declared length, else 2 */
        size_t nb = c->width < 256 ? 1 : 2;

        if (c->length > (nb == 1 ? 255u : 65535u)) {
            return value_error(t, c, "value longer than the column", err);
        }
        put_le(c->var + PREFIX - nb, c->length, nb);
        p = c->var + PREFIX - nb;
        n = nb + c->length;
        break;
    }
    case K_BLOB:
    case K_GEOMETRY:
        if (c->length > UINT32_MAX) {
            return value_error(t, c, "value beyond 4 GiB", err);
        }
        put_le(c->var, c->length, PREFIX);
        p = c->var;
        n = PREFIX + c->length;
        break;
    case K_JSON:
        /* MySQL's JSON: SELECT gives text, not the binlog's binary format */
        if (!ms_textjson_to_bson((const char *)c->var + PREFIX, c->length, row, c->col.name, err)) {
            ms_error_prefix(err, "re-reading %s.%s column %s (JSON)", t->db, t->table, c->col.name);
            return false;
        }
        return true;
    }
    if (!ms_rows_decode_value(&c->col, p, n, &used, row, c->col.name, s->opts, err)) {
        ms_error_prefix(err, "re-reading %s.%s", t->db, t->table);
        return false;
    }
    return true;
}

/* Fetches values longer than their buffers again, into bigger ones. res: the result binding
 * the statement was fetched with (t->res for re-reads, a scan's own for scans): its buffers
 * follow the moved ones, so the caller binds it again before the next row. */
static bool fetch_long_values(struct stable *t, MYSQL_BIND *res, struct ms_error *err)
{
    for (size_t i = 0; i < t->ncols; i++) {
        struct scol *c = &t->cols[i];
        MYSQL_BIND b;

        if (c->var == NULL || c->is_null || c->length <= c->varcap - PREFIX) {
            continue;
        }
        if (c->length > SIZE_MAX - PREFIX - 1) {
            ms_error_set(err, MS_ERR_SYSTEM, ENOMEM, "re-reading %s.%s: value of %lu bytes", t->db,
                         t->table, c->length);
            return false;
        }
        {
            size_t cap = (size_t)c->length + PREFIX;
            uint8_t *nv = realloc(c->var, cap);

            if (nv == NULL) {
                return out_of_memory(err);
            }
            c->var = nv;
            c->varcap = cap;
        }
        res[i].buffer = c->var + PREFIX;
        res[i].buffer_length = c->varcap - PREFIX;
        b = res[i];
        if (mysql_stmt_fetch_column(t->stmt, &b, (unsigned int)i, 0) != 0) {
            stmt_error(t->stmt, "re-reading", t->db, t->table, err);
            return false;
        }
    }
    return true;
}

/* A cached statement keeps small fetch buffers only: one large value read once does not
 * hold its memory for the table's lifetime. res: the binding that points at them. */
static void give_back_buffers(struct stable *t, MYSQL_BIND *res)
{
    for (size_t i = 0; i < t->ncols; i++) {
        struct scol *c = &t->cols[i];
        uint8_t *nv;

        if (c->var == NULL || c->varcap <= VAR_KEEP) {
            continue;
        }
        nv = malloc(VAR_MIN);
        if (nv == NULL) {
            continue;
        }
        free(c->var);
        c->var = nv;
        c->varcap = VAR_MIN;
        res[i].buffer = c->var + PREFIX;
        res[i].buffer_length = c->varcap - PREFIX;
    }
}

enum run_result {
    RUN_OK,
    RUN_FAILED,
    RUN_STALE,   /* the table may have changed under the statement: prepare again, try again */
    RUN_REFUSED, /* more rows than asked for: the statement itself is fine */
};

/* Binds t's parameters and results and executes its statement. */
static enum run_result execute(struct stable *t, struct ms_error *err)
{
    if (mysql_stmt_bind_param(t->stmt, t->par) != 0 ||
        mysql_stmt_bind_result(t->stmt, t->res) != 0) {
        stmt_error(t->stmt, "binding the re-read of", t->db, t->table, err);
        return RUN_FAILED;
    }
    if (mysql_stmt_execute(t->stmt) != 0) {
        stmt_error(t->stmt, "re-reading", t->db, t->table, err);
        /* anything but a lost connection: the table may have changed under the
         * statement; one more try with a fresh definition */
        return is_lost(mysql_stmt_errno(t->stmt)) ? RUN_FAILED : RUN_STALE;
    }
    if (mysql_stmt_field_count(t->stmt) != t->ncols) {
        mysql_stmt_free_result(t->stmt);
        ms_error_set(err, MS_ERR_MYSQL, 0, "re-reading %s.%s: the table changed", t->db, t->table);
        return RUN_STALE;
    }
    return RUN_OK;
}

/* Appends the row just fetched to dst, column by column, through the decoder. */
static bool decode_row(const struct ms_source *s, struct stable *t, MYSQL_BIND *res, bson_t *dst,
                       struct ms_error *err)
{
    if (!fetch_long_values(t, res, err)) {
        return false;
    }
    for (size_t i = 0; i < t->ncols; i++) {
        if (!append_value(s, t, &t->cols[i], dst, err)) {
            return false;
        }
    }
    return true;
}

static enum run_result run(struct ms_source *s, struct stable *t, bson_t *row, bool *found,
                           struct ms_error *err)
{
    enum run_result res = execute(t, err);
    int rc;

    if (res != RUN_OK) {
        return res;
    }
    res = RUN_FAILED;
    rc = mysql_stmt_fetch(t->stmt);
    if (rc == MYSQL_NO_DATA) {
        *found = false;
        res = RUN_OK;
    } else if (rc == 0 || rc == MYSQL_DATA_TRUNCATED) {
        *found = true;
        if (decode_row(s, t, t->res, row, err)) {
            res = RUN_OK;
        }
    } else {
        stmt_error(t->stmt, "re-reading", t->db, t->table, err);
    }
    mysql_stmt_free_result(t->stmt);
    give_back_buffers(t, t->res);
    return res;
}

/* Runs a many statement (its key parameter bound) for at most limit rows, each appended to out
 * as a document named by the next index from first; *n gets the count. More rows: RUN_REFUSED. */
static enum run_result run_many(struct ms_source *s, struct stable *t, size_t limit, bson_t *out,
                                size_t first, size_t *n, struct ms_error *err)
{
    MYSQL_BIND *b = &t->par[t->npar - 1];
    struct pbuf *pb = &t->pbufs[t->npar - 1];
    enum run_result res;

    /* LIMIT limit + 1: one row more than allowed says there are too many */
    memset(b, 0, sizeof(*b));
    pb->v.i = (int64_t)(limit < UINT64_MAX ? (uint64_t)limit + 1 : UINT64_MAX);
    b->buffer_type = MYSQL_TYPE_LONGLONG;
    b->buffer = &pb->v.i;
    b->is_unsigned = 1;
    *n = 0;
    res = execute(t, err);
    if (res != RUN_OK) {
        return res;
    }
    for (;;) {
        int rc = mysql_stmt_fetch(t->stmt);
        char key[24];
        bson_t child;
        bool ok;

        if (rc == MYSQL_NO_DATA) {
            break;
        }
        if (rc != 0 && rc != MYSQL_DATA_TRUNCATED) {
            stmt_error(t->stmt, "reading rows of", t->db, t->table, err);
            res = RUN_FAILED;
            break;
        }
        if (*n == limit) {
            ms_error_set(err, MS_ERR_DECODE, MS_DECODE_SCHEMA,
                         "reading rows of %s.%s by %s: more than %zu rows match", t->db, t->table,
                         t->pk[0], limit);
            res = RUN_REFUSED;
            break;
        }
        snprintf(key, sizeof(key), "%zu", first + *n);
        if (!bson_append_document_begin(out, key, -1, &child)) {
            ms_error_set(err, MS_ERR_DECODE, MS_DECODE_MALFORMED,
                         "reading rows of %s.%s: the rows do not fit in a BSON document", t->db,
                         t->table);
            res = RUN_FAILED;
            break;
        }
        ok = decode_row(s, t, t->res, &child, err);
        bson_append_document_end(out, &child);
        if (!ok) {
            res = RUN_FAILED;
            break;
        }
        (*n)++;
        /* a long value moved its fetch buffer: the next row is fetched into the new one */
        if (mysql_stmt_bind_result(t->stmt, t->res) != 0) {
            stmt_error(t->stmt, "binding the rows of", t->db, t->table, err);
            res = RUN_FAILED;
            break;
        }
    }
    mysql_stmt_free_result(t->stmt);
    give_back_buffers(t, t->res);
    return res;
}

static struct stable *find_table(struct ms_source *s, const char *db, const char *table, bool many,
                                 const char *const *pk, size_t npk)
{
    for (size_t i = 0; i < s->ntables; i++) {
        struct stable *c = s->tables[i];
        if (strcmp(c->db, db) == 0 && strcmp(c->table, table) == 0 && same_pk(c, many, pk, npk)) {
            return c;
        }
    }
    return NULL;
}

/* ---- public ------------------------------------------------------------------------- */

struct ms_source *ms_source_new(const struct ms_config *cfg, const struct ms_value_opts *opts)
{
    static const struct ms_value_opts defaults = {0};
    struct ms_source *s = calloc(1, sizeof(*s));

    if (s != NULL) {
        s->cfg = cfg;
        s->opts = opts != NULL ? opts : &defaults;
    }
    return s;
}

void ms_source_destroy(struct ms_source *s)
{
    if (s == NULL) {
        return;
    }
    disconnect(s);
    free(s->tables);
    free(s);
}

bool ms_source_read_row(struct ms_source *s, const char *db, const char *table,
                        const char *const *pk, size_t npk, const bson_t *id, bson_t *row,
                        bool *found, struct ms_error *err)
{
    struct ms_error local;
    bool ok = false;

    if (err == NULL) {
        err = &local; /* the retry decisions below read it */
    }
    if (found != NULL) {
        *found = false;
    }
    ms_error_clear(err);
    if (s == NULL || db == NULL || table == NULL || id == NULL || row == NULL || found == NULL ||
        (npk > 0 && pk == NULL)) {
        ms_error_set(err, MS_ERR_DECODE, MS_DECODE_SCHEMA, "re-reading a row: missing argument");
        return false;
    }
    if (npk == 0) {
        ms_error_set(err, MS_ERR_DECODE, MS_DECODE_SCHEMA, "re-reading %s.%s: no key columns given",
                     db, table);
        return false;
    }
    for (size_t k = 0; k < npk; k++) {
        if (pk[k] == NULL) {
            ms_error_set(err, MS_ERR_DECODE, MS_DECODE_SCHEMA,
                         "re-reading %s.%s: key column %zu has no name", db, table, k);
            return false;
        }
    }
    for (int attempt = 0; attempt < 2; attempt++) {
        struct stable *t = NULL;
        enum run_result r;

        if (!ensure_conn(s, err)) {
            break;
        }
        t = find_table(s, db, table, false, pk, npk);
        if (t == NULL && (t = load_table(s, db, table, false, pk, npk, err)) == NULL) {
            if (err->retryable) {
                disconnect(s);
            }
            break;
        }
        if (!bind_keys(s, t, id, err)) {
            break;
        }
        r = run(s, t, row, found, err);
        if (r == RUN_OK) {
            ok = true;
            break;
        }
        if (err->retryable) {
            /* the connection is gone or the server refused for now: the caller retries,
             * the next call reconnects and prepares again */
            if (is_lost(err->code)) {
                disconnect(s);
            }
            break;
        }
        drop_table(s, t);
        if (r != RUN_STALE) {
            break;
        }
    }
    return ok;
}

bool ms_source_read_rows(struct ms_source *s, const char *db, const char *table, const char *column,
                         const bson_value_t *value, size_t limit, bson_t *rows, size_t *n,
                         struct ms_error *err)
{
    const char *lookup[1] = {column};
    struct ms_error local;
    bson_t holder = BSON_INITIALIZER, got = BSON_INITIALIZER;
    size_t first, count = 0;
    bool ok = false;

    if (err == NULL) {
        err = &local; /* the retry decisions below read it */
    }
    if (n != NULL) {
        *n = 0;
    }
    ms_error_clear(err);
    if (s == NULL || db == NULL || table == NULL || column == NULL || value == NULL ||
        rows == NULL || n == NULL) {
        ms_error_set(err, MS_ERR_DECODE, MS_DECODE_SCHEMA, "reading rows: missing argument");
        goto done;
    }
    if (value->value_type == BSON_TYPE_NULL) {
        ok = true; /* = NULL is never true */
        goto done;
    }
    /* the value in a document of its own: bind_key() reads it through an iterator, and string
     * parameters point into it until the statement has run */
    if (!bson_append_value(&holder, "v", 1, value)) {
        ms_error_set(err, MS_ERR_DECODE, MS_DECODE_SCHEMA,
                     "reading rows of %s.%s: the value of %s is not a BSON value", db, table,
                     column);
        goto done;
    }
    first = (size_t)bson_count_keys(rows);
    for (int attempt = 0; attempt < 2; attempt++) {
        struct stable *t;
        enum run_result r;
        bson_iter_t v;

        if (!ensure_conn(s, err)) {
            break;
        }
        t = find_table(s, db, table, true, lookup, 1);
        if (t == NULL && (t = load_table(s, db, table, true, lookup, 1, err)) == NULL) {
            if (err->retryable) {
                disconnect(s);
            }
            break;
        }
        if (!bson_iter_init_find(&v, &holder, "v") || !bind_key(s, t, 0, &v, err)) {
            break;
        }
        bson_reinit(&got);
        r = run_many(s, t, limit, &got, first, &count, err);
        if (r == RUN_OK) {
            ok = true;
            break;
        }
        if (r == RUN_REFUSED) {
            break;
        }
        if (err->retryable) {
            if (is_lost(err->code)) {
                disconnect(s);
            }
            break;
        }
        drop_table(s, t);
        if (r != RUN_STALE) {
            break;
        }
    }
    if (ok && !bson_concat(rows, &got)) {
        ms_error_set(err, MS_ERR_DECODE, MS_DECODE_MALFORMED,
                     "reading rows of %s.%s: the rows do not fit in a BSON document", db, table);
        ok = false;
    }
    if (ok) {
        *n = count;
    }
done:
    bson_destroy(&holder);
    bson_destroy(&got);
    return ok;
}

void ms_source_invalidate(struct ms_source *s, const char *db, const char *table)
{
    if (s == NULL) {
        return;
    }
    for (size_t i = s->ntables; i > 0; i--) {
        const struct stable *t = s->tables[i - 1];

        if ((db == NULL || strcmp(t->db, db) == 0) &&
            (table == NULL || strcmp(t->table, table) == 0)) {
            drop_table_at(s, i - 1);
        }
    }
}

/* ---- keyset scans ------------------------------------------------------------------- */

/* One order column's cursor value, in the type its parameter is bound with. */
struct ccur {
    size_t col;     /* index in t->cols */
    bool nullable;  /* information_schema IS_NULLABLE: the NULL-aware condition */
    int extra;      /* index of its utf8mb4 text in the extra results (strings), or -1 */
    my_bool null;   /* the cursor row's value is NULL */
    int64_t i;      /* integers, YEAR, ENUM/SET numbers, BIT as a number */
    double d;       /* FLOAT, DOUBLE */
    MYSQL_TIME tm;  /* temporal types */
    uint8_t *bytes; /* DECIMAL text, strings */
    unsigned long len;
    size_t cap;
};

/* A string column's text in utf8mb4, selected besides its raw value for the cursor. */
struct cextra {
    uint8_t *buf;
    size_t cap;
    unsigned long length;
    my_bool is_null, error;
};

struct ms_scan {
    struct ms_source *s;
    char *db, *table, *where;
    char **order;
    size_t norder;
    MYSQL *conn;       /* the connection the statements belong to; NULL: not prepared */
    struct stable *t;  /* columns and fetch buffers (not in s->tables) */
    MYSQL_STMT *first; /* no cursor yet */
    MYSQL_STMT *next;  /* after the cursor */
    MYSQL_BIND *res;   /* ncols + nextra */
    struct cextra *extras;
    size_t nextra;
    MYSQL_BIND *par; /* next's parameters; the last one is the LIMIT */
    size_t npar;
    uint64_t limit;
    struct ccur *cur;
    bool have_cursor;
    bson_t *seek; /* a cursor given by ms_scan_seek(), applied once prepared */
};

static void scan_unprepare(struct ms_scan *sc)
{
    if (sc->t != NULL) {
        sc->t->stmt = NULL; /* ours, closed below */
        free_table(sc->t);
        sc->t = NULL;
    }
    if (sc->first != NULL) {
        mysql_stmt_close(sc->first);
    }
    if (sc->next != NULL) {
        mysql_stmt_close(sc->next);
    }
    sc->first = sc->next = NULL;
    for (size_t i = 0; i < sc->nextra; i++) {
        free(sc->extras[i].buf);
    }
    free(sc->extras);
    sc->extras = NULL;
    sc->nextra = 0;
    free(sc->res);
    free(sc->par);
    sc->res = sc->par = NULL;
    sc->npar = 0;
    sc->conn = NULL;
}

struct ms_scan *ms_scan_new(struct ms_source *s, const char *db, const char *table,
                            const char *const *order, size_t norder, const char *where)
{
    struct ms_scan *sc = calloc(1, sizeof(*sc));

    if (sc == NULL) {
        return NULL;
    }
    sc->s = s;
    sc->db = strdup(db);
    sc->table = strdup(table);
    sc->where = where != NULL && where[0] != '\0' ? strdup(where) : NULL;
    sc->order = calloc(norder > 0 ? norder : 1, sizeof(char *));
    sc->cur = calloc(norder > 0 ? norder : 1, sizeof(*sc->cur));
    if (sc->db == NULL || sc->table == NULL || sc->order == NULL || sc->cur == NULL ||
        (where != NULL && where[0] != '\0' && sc->where == NULL)) {
        ms_scan_destroy(sc);
        return NULL;
    }
    for (size_t i = 0; i < norder; i++) {
        sc->order[i] = strdup(order[i]);
        if (sc->order[i] == NULL) {
            ms_scan_destroy(sc);
            return NULL;
        }
        sc->norder++;
    }
    return sc;
}

void ms_scan_destroy(struct ms_scan *sc)
{
    if (sc == NULL) {
        return;
    }
    scan_unprepare(sc);
    for (size_t i = 0; i < sc->norder; i++) {
        free(sc->order[i]);
        free(sc->cur[i].bytes);
    }
    if (sc->seek != NULL) {
        bson_destroy(sc->seek);
    }
    free(sc->order);
    free(sc->cur);
    free(sc->db);
    free(sc->table);
    free(sc->where);
    free(sc);
}

static bool scan_is_string(const struct scol *c)
{
    return c->kind == K_CHAR || c->kind == K_VARCHAR || c->kind == K_BLOB;
}

/* Which order columns are nullable (information_schema.COLUMNS.IS_NULLABLE). */
static bool scan_nullability(struct ms_scan *sc, struct ms_error *err)
{
    struct sql q = {0};
    MYSQL_RES *r;
    MYSQL_ROW row;

    sql_str(&q, "SELECT COLUMN_NAME, IS_NULLABLE FROM information_schema.COLUMNS WHERE "
                "TABLE_SCHEMA = ");
    sql_literal(&q, sc->s->conn, sc->db);
    sql_str(&q, " AND TABLE_NAME = ");
    sql_literal(&q, sc->s->conn, sc->table);
    if (q.oom) {
        free(q.p);
        return out_of_memory(err);
    }
    if (mysql_query(sc->s->conn, q.p) != 0 || (r = mysql_store_result(sc->s->conn)) == NULL) {
        free(q.p);
        conn_error(sc->s->conn, "reading information_schema.COLUMNS", err);
        return false;
    }
    free(q.p);
    while ((row = mysql_fetch_row(r)) != NULL) {
        for (size_t k = 0; k < sc->norder; k++) {
            if (row[0] != NULL && strcasecmp(row[0], sc->t->cols[sc->cur[k].col].col.name) == 0) {
                sc->cur[k].nullable = row[1] != NULL && strcmp(row[1], "YES") == 0;
            }
        }
    }
    mysql_free_result(r);
    return true;
}

/* The order columns' places and types; the statements; the result bindings. */
static bool scan_prepare(struct ms_scan *sc, struct ms_error *err)
{
    struct ms_source *s = sc->s;
    struct sql head = {0}, q1 = {0}, q2 = {0};
    struct stable *t = calloc(1, sizeof(*t));
    bool ok = false;

    if (t == NULL) {
        return out_of_memory(err);
    }
    sc->t = t;
    t->db = strdup(sc->db);
    t->table = strdup(sc->table);
    if (t->db == NULL || t->table == NULL) {
        return out_of_memory(err);
    }
    if (!load_columns(s, t, err)) {
        return false;
    }
    for (size_t k = 0; k < sc->norder; k++) {
        size_t i;
        const struct scol *c;

        for (i = 0; i < t->ncols && strcasecmp(t->cols[i].col.name, sc->order[k]) != 0; i++) {
        }
        if (i == t->ncols) {
            ms_error_set(err, MS_ERR_DECODE, MS_DECODE_SCHEMA,
                         "scanning %s.%s: order column %s is not in the table", sc->db, sc->table,
                         sc->order[k]);
            return false;
        }
        c = &t->cols[i];
        if (c->kind == K_GEOMETRY || c->kind == K_JSON || c->col.is_json_text ||
            c->cast_bytes != 0) {
            ms_error_set(err, MS_ERR_DECODE, MS_DECODE_UNSUPPORTED,
                         "scanning %s.%s: column %s of type %s cannot order a keyset scan (use "
                         "another key: sync.keys)",
                         sc->db, sc->table, c->col.name, c->data_type);
            return false;
        }
        sc->cur[k].col = i;
        sc->cur[k].extra = scan_is_string(c) && !c->col.is_binary ? (int)sc->nextra++ : -1;
    }
    if (!scan_nullability(sc, err)) {
        return false;
    }

    sql_select_list(&head, t);
    for (size_t k = 0; k < sc->norder; k++) {
        if (sc->cur[k].extra >= 0) {
            sql_str(&head, ", CONVERT(");
            sql_ident(&head, t->cols[sc->cur[k].col].col.name);
            sql_str(&head, " USING utf8mb4)");
        }
    }
    sql_str(&head, " FROM ");
    sql_ident(&head, sc->db);
    sql_str(&head, ".");
    sql_ident(&head, sc->table);

    /* first: [WHERE (where)] ORDER BY ... LIMIT ? */
    sql_add(&q1, head.p != NULL ? head.p : "", head.len);
    if (sc->where != NULL) {
        sql_str(&q1, " WHERE (");
        sql_str(&q1, sc->where);
        sql_str(&q1, ")");
    }
    /* next: WHERE [(where) AND] (c1 > ? OR (c1 <=> ? AND c2 > ?) OR ...) */
    sql_add(&q2, head.p != NULL ? head.p : "", head.len);
    sql_str(&q2, " WHERE ");
    if (sc->where != NULL) {
        sql_str(&q2, "(");
        sql_str(&q2, sc->where);
        sql_str(&q2, ") AND ");
    }
    sql_str(&q2, "(");
    sc->npar = 0;
    for (size_t k = 0; k < sc->norder; k++) {
        const char *name = t->cols[sc->cur[k].col].col.name;

        sql_str(&q2, k > 0 ? " OR (" : "(");
        for (size_t j = 0; j < k; j++) {
            sql_ident(&q2, t->cols[sc->cur[j].col].col.name);
            sql_str(&q2, " <=> ? AND ");
            sc->npar++;
        }
        if (sc->cur[k].nullable) {
            /* NULLs sort first: after a NULL comes every non-NULL value */
            sql_str(&q2, "(");
            sql_ident(&q2, name);
            sql_str(&q2, " > ? OR (? IS NULL AND ");
            sql_ident(&q2, name);
            sql_str(&q2, " IS NOT NULL))");
            sc->npar += 2;
        } else {
            sql_ident(&q2, name);
            sql_str(&q2, " > ?");
            sc->npar++;
        }
        sql_str(&q2, ")");
    }
    sql_str(&q2, ")");
    for (size_t k = 0; k < sc->norder; k++) {
        const char *tail = k == 0 ? " ORDER BY " : ", ";
        sql_str(&q1, tail);
        sql_str(&q2, tail);
        sql_ident(&q1, t->cols[sc->cur[k].col].col.name);
        sql_ident(&q2, t->cols[sc->cur[k].col].col.name);
    }
    sql_str(&q1, " LIMIT ?");
    sql_str(&q2, " LIMIT ?");
    sc->npar++;
    if (head.oom || q1.oom || q2.oom) {
        out_of_memory(err);
        goto done;
    }

    sc->res = calloc(t->ncols + sc->nextra, sizeof(*sc->res));
    sc->extras = calloc(sc->nextra > 0 ? sc->nextra : 1, sizeof(*sc->extras));
    sc->par = calloc(sc->npar, sizeof(*sc->par));
    if (sc->res == NULL || sc->extras == NULL || sc->par == NULL) {
        out_of_memory(err);
        goto done;
    }
    if (!bind_results(t, sc->res, err)) {
        goto done;
    }
    for (size_t x = 0; x < sc->nextra; x++) {
        struct cextra *e = &sc->extras[x];
        MYSQL_BIND *b = &sc->res[t->ncols + x];

        e->cap = VAR_MIN;
        e->buf = malloc(e->cap);
        if (e->buf == NULL) {
            out_of_memory(err);
            goto done;
        }
        b->buffer_type = MYSQL_TYPE_BLOB;
        b->buffer = e->buf;
        b->buffer_length = e->cap;
        b->length = &e->length;
        b->is_null = &e->is_null;
        b->error = &e->error;
    }
    sc->first = mysql_stmt_init(s->conn);
    sc->next = mysql_stmt_init(s->conn);
    if (sc->first == NULL || sc->next == NULL) {
        out_of_memory(err);
        goto done;
    }
    if (mysql_stmt_prepare(sc->first, q1.p, (unsigned long)q1.len) != 0) {
        stmt_error(sc->first, "preparing the scan of", sc->db, sc->table, err);
        goto done;
    }
    if (mysql_stmt_prepare(sc->next, q2.p, (unsigned long)q2.len) != 0) {
        stmt_error(sc->next, "preparing the scan of", sc->db, sc->table, err);
        goto done;
    }
    if (mysql_stmt_field_count(sc->next) != t->ncols + sc->nextra ||
        mysql_stmt_param_count(sc->next) != sc->npar || mysql_stmt_param_count(sc->first) != 1) {
        ms_error_set(err, MS_ERR_MYSQL, 0, "scanning %s.%s: the statement does not fit the table",
                     sc->db, sc->table);
        goto done;
    }
    sc->conn = s->conn;
    ok = true;
    ms_log(MS_LOG_DEBUG, "scan statement for %s.%s: %s", sc->db, sc->table, q2.p);
done:
    free(head.p);
    free(q1.p);
    free(q2.p);
    return ok;
}

/* Binds one cursor value as parameter b. */
static void scan_bind_value(const struct ms_scan *sc, struct ccur *cv, MYSQL_BIND *b)
{
    const struct scol *c = &sc->t->cols[cv->col];

    memset(b, 0, sizeof(*b));
    b->is_null = &cv->null;
    switch (c->kind) {
    case K_INT:
    case K_YEAR:
    case K_ENUM:
    case K_SET:
    case K_BIT:
        b->buffer_type = MYSQL_TYPE_LONGLONG;
        b->buffer = &cv->i;
        b->is_unsigned = c->kind == K_INT ? c->col.is_unsigned : c->kind != K_YEAR;
        break;
    case K_FLOAT:
    case K_DOUBLE:
        b->buffer_type = MYSQL_TYPE_DOUBLE;
        b->buffer = &cv->d;
        break;
    case K_DATE:
    case K_DATETIME:
    case K_TIMESTAMP:
    case K_TIME:
        b->buffer_type = c->kind == K_DATE        ? MYSQL_TYPE_DATE
                         : c->kind == K_DATETIME  ? MYSQL_TYPE_DATETIME
                         : c->kind == K_TIMESTAMP ? MYSQL_TYPE_TIMESTAMP
                                                  : MYSQL_TYPE_TIME;
        b->buffer = &cv->tm;
        break;
    case K_DECIMAL:
        b->buffer_type = MYSQL_TYPE_NEWDECIMAL;
        b->buffer = cv->bytes != NULL ? (void *)cv->bytes : (void *)"";
        b->buffer_length = cv->len;
        break;
    default: /* strings: utf8mb4 text, or the bytes of a binary string */
        b->buffer_type = cv->extra >= 0 ? MYSQL_TYPE_STRING : MYSQL_TYPE_BLOB;
        b->buffer = cv->bytes != NULL ? (void *)cv->bytes : (void *)"";
        b->buffer_length = cv->len;
        break;
    }
}

static bool cur_set_bytes(struct ccur *cv, const uint8_t *p, unsigned long n, struct ms_error *err)
{
    if (n + 1 > cv->cap) {
        uint8_t *nb = realloc(cv->bytes, n + 1);
        if (nb == NULL) {
            return out_of_memory(err);
        }
        cv->bytes = nb;
        cv->cap = n + 1;
    }
    if (n > 0) {
        memcpy(cv->bytes, p, n);
    }
    cv->bytes[n] = 0;
    cv->len = n;
    return true;
}

/* The row just fetched becomes the cursor. */
static bool scan_capture(struct ms_scan *sc, struct ms_error *err)
{
    for (size_t k = 0; k < sc->norder; k++) {
        struct ccur *cv = &sc->cur[k];
        struct scol *c = &sc->t->cols[cv->col];

        cv->null = c->is_null;
        if (c->is_null) {
            continue;
        }
        switch (c->kind) {
        case K_INT:
        case K_YEAR:
        case K_ENUM:
        case K_SET:
            cv->i = c->v.i;
            break;
        case K_BIT: {
            uint64_t v = 0;
            for (unsigned long b = 0; b < c->length && b < 8; b++) {
                v = v << 8 | c->var[PREFIX + b];
            }
            cv->i = (int64_t)v;
            break;
        }
        case K_FLOAT:
            cv->d = c->v.f;
            break;
        case K_DOUBLE:
            cv->d = c->v.d;
            break;
        case K_DATE:
        case K_DATETIME:
        case K_TIMESTAMP:
        case K_TIME:
            cv->tm = c->v.t;
            break;
        default:
            if (cv->extra >= 0) {
                struct cextra *e = &sc->extras[cv->extra];
                if (!cur_set_bytes(cv, e->buf, e->length, err)) {
                    return false;
                }
            } else if (!cur_set_bytes(cv, c->var + PREFIX, c->length, err)) {
                return false;
            }
            break;
        }
    }
    sc->have_cursor = true;
    return true;
}

/* Extra (utf8mb4) values longer than their buffers: fetched again into bigger ones. */
static bool scan_fetch_extras(struct ms_scan *sc, MYSQL_STMT *st, struct ms_error *err)
{
    for (size_t x = 0; x < sc->nextra; x++) {
        struct cextra *e = &sc->extras[x];
        MYSQL_BIND *b = &sc->res[sc->t->ncols + x];

        if (e->is_null || e->length <= e->cap) {
            continue;
        }
        {
            uint8_t *nb = realloc(e->buf, (size_t)e->length);
            if (nb == NULL) {
                return out_of_memory(err);
            }
            e->buf = nb;
            e->cap = (size_t)e->length;
        }
        b->buffer = e->buf;
        b->buffer_length = e->cap;
        if (mysql_stmt_fetch_column(st, b, (unsigned int)(sc->t->ncols + x), 0) != 0) {
            stmt_error(st, "scanning", sc->db, sc->table, err);
            return false;
        }
    }
    return true;
}

/* The cursor document: {"v": [value per order column]} (see ms_scan_cursor). */
static bool scan_apply_seek(struct ms_scan *sc, struct ms_error *err)
{
    bson_iter_t it, arr;
    size_t k = 0;
    bson_t *doc = sc->seek;

    sc->seek = NULL;
    sc->have_cursor = false;
    if (bson_empty(doc)) {
        bson_destroy(doc);
        return true;
    }
    if (!bson_iter_init_find(&it, doc, "v") || !BSON_ITER_HOLDS_ARRAY(&it) ||
        !bson_iter_recurse(&it, &arr)) {
        goto misfit;
    }
    while (bson_iter_next(&arr)) {
        struct ccur *cv;
        const struct scol *c;

        if (k == sc->norder) {
            goto misfit;
        }
        cv = &sc->cur[k++];
        c = &sc->t->cols[cv->col];
        cv->null = BSON_ITER_HOLDS_NULL(&arr);
        if (cv->null) {
            continue;
        }
        switch (c->kind) {
        case K_INT:
        case K_YEAR:
        case K_ENUM:
        case K_SET:
        case K_BIT:
            if (!BSON_ITER_HOLDS_INT64(&arr)) {
                goto misfit;
            }
            cv->i = bson_iter_int64(&arr);
            break;
        case K_FLOAT:
        case K_DOUBLE:
            if (!BSON_ITER_HOLDS_DOUBLE(&arr)) {
                goto misfit;
            }
            cv->d = bson_iter_double(&arr);
            break;
        case K_DATE:
        case K_DATETIME:
        case K_TIMESTAMP:
        case K_TIME: {
            /* [year, month, day, hour, minute, second, microsecond, negative] */
            bson_iter_t f;
            int64_t v[8];
            size_t nf = 0;
            if (!BSON_ITER_HOLDS_ARRAY(&arr) || !bson_iter_recurse(&arr, &f)) {
                goto misfit;
            }
            while (bson_iter_next(&f) && nf < 8) {
                if (!BSON_ITER_HOLDS_INT64(&f)) {
                    goto misfit;
                }
                v[nf++] = bson_iter_int64(&f);
            }
            if (nf != 8) {
                goto misfit;
            }
            memset(&cv->tm, 0, sizeof(cv->tm));
            cv->tm.year = (unsigned)v[0];
            cv->tm.month = (unsigned)v[1];
            cv->tm.day = (unsigned)v[2];
            cv->tm.hour = (unsigned)v[3];
            cv->tm.minute = (unsigned)v[4];
            cv->tm.second = (unsigned)v[5];
            cv->tm.second_part = (unsigned long)v[6];
            cv->tm.neg = v[7] != 0;
            cv->tm.time_type = c->kind == K_DATE   ? MYSQL_TIMESTAMP_DATE
                               : c->kind == K_TIME ? MYSQL_TIMESTAMP_TIME
                                                   : MYSQL_TIMESTAMP_DATETIME;
            break;
        }
        default: {
            const uint8_t *p = NULL;
            uint32_t n = 0;
            if (BSON_ITER_HOLDS_UTF8(&arr) && (c->kind == K_DECIMAL || cv->extra >= 0)) {
                p = (const uint8_t *)bson_iter_utf8(&arr, &n);
            } else if (BSON_ITER_HOLDS_BINARY(&arr) && cv->extra < 0 && c->kind != K_DECIMAL) {
                bson_subtype_t st;
                bson_iter_binary(&arr, &st, &n, &p);
            } else {
                goto misfit;
            }
            if (!cur_set_bytes(cv, p, n, err)) {
                bson_destroy(doc);
                return false;
            }
            break;
        }
        }
    }
    if (k != sc->norder) {
        goto misfit;
    }
    sc->have_cursor = true;
    bson_destroy(doc);
    return true;
misfit:
    bson_destroy(doc);
    ms_error_set(err, MS_ERR_DECODE, MS_DECODE_SCHEMA,
                 "scanning %s.%s: the stored cursor does not fit the table's order columns (did "
                 "the table change?)",
                 sc->db, sc->table);
    return false;
}

bool ms_scan_seek(struct ms_scan *sc, const bson_t *cursor, struct ms_error *err)
{
    (void)err;
    if (sc->seek != NULL) {
        bson_destroy(sc->seek);
    }
    sc->seek = cursor != NULL ? bson_copy(cursor) : bson_new();
    sc->have_cursor = false;
    return sc->seek != NULL;
}

void ms_scan_cursor(const struct ms_scan *sc, bson_t *out)
{
    bson_t arr;

    if (sc->seek != NULL) {
        bson_concat(out, sc->seek); /* not applied yet: still the one given */
        return;
    }
    if (!sc->have_cursor) {
        return;
    }
    bson_append_array_begin(out, "v", 1, &arr);
    for (size_t k = 0; k < sc->norder; k++) {
        const struct ccur *cv = &sc->cur[k];
        const struct scol *c = &sc->t->cols[cv->col];
        char key[16];

        snprintf(key, sizeof(key), "%zu", k);
        if (cv->null) {
            bson_append_null(&arr, key, -1);
            continue;
        }
        switch (c->kind) {
        case K_INT:
        case K_YEAR:
        case K_ENUM:
        case K_SET:
        case K_BIT:
            bson_append_int64(&arr, key, -1, cv->i);
            break;
        case K_FLOAT:
        case K_DOUBLE:
            bson_append_double(&arr, key, -1, cv->d);
            break;
        case K_DATE:
        case K_DATETIME:
        case K_TIMESTAMP:
        case K_TIME: {
            bson_t f;
            int64_t v[8] = {cv->tm.year,
                            cv->tm.month,
                            cv->tm.day,
                            cv->tm.hour,
                            cv->tm.minute,
                            cv->tm.second,
                            (int64_t)cv->tm.second_part,
                            cv->tm.neg ? 1 : 0};
            bson_append_array_begin(&arr, key, -1, &f);
            for (int i = 0; i < 8; i++) {
                char fk[4];
                snprintf(fk, sizeof(fk), "%d", i);
                bson_append_int64(&f, fk, -1, v[i]);
            }
            bson_append_array_end(&arr, &f);
            break;
        }
        default:
            if (c->kind == K_DECIMAL || cv->extra >= 0) {
                bson_append_utf8(&arr, key, -1,
                                 (const char *)(cv->bytes ? cv->bytes : (uint8_t *)""),
                                 (int)cv->len);
            } else {
                bson_append_binary(&arr, key, -1, BSON_SUBTYPE_BINARY, cv->bytes,
                                   (uint32_t)cv->len);
            }
            break;
        }
    }
    bson_append_array_end(out, &arr);
}

/* One chunk on prepared statements. */
static enum run_result scan_run(struct ms_scan *sc, size_t limit, ms_scan_row_fn fn, void *arg,
                                size_t *n, struct ms_error *err)
{
    struct stable *t = sc->t;
    MYSQL_STMT *st = sc->have_cursor ? sc->next : sc->first;
    MYSQL_BIND *lim = &sc->par[sc->npar - 1];
    enum run_result res = RUN_OK;
    bson_t row;

    if (sc->have_cursor) {
        size_t p = 0;
        for (size_t k = 0; k < sc->norder; k++) {
            for (size_t j = 0; j < k; j++) {
                scan_bind_value(sc, &sc->cur[j], &sc->par[p++]);
            }
            scan_bind_value(sc, &sc->cur[k], &sc->par[p++]);
            if (sc->cur[k].nullable) {
                scan_bind_value(sc, &sc->cur[k], &sc->par[p++]);
            }
        }
    }
    memset(lim, 0, sizeof(*lim));
    sc->limit = limit;
    lim->buffer_type = MYSQL_TYPE_LONGLONG;
    lim->buffer = &sc->limit;
    lim->is_unsigned = 1;
    if (mysql_stmt_bind_param(st, sc->have_cursor ? sc->par : lim) != 0 ||
        mysql_stmt_bind_result(st, sc->res) != 0) {
        stmt_error(st, "binding the scan of", sc->db, sc->table, err);
        return RUN_FAILED;
    }
    if (mysql_stmt_execute(st) != 0) {
        stmt_error(st, "scanning", sc->db, sc->table, err);
        return is_lost(mysql_stmt_errno(st)) ? RUN_FAILED : RUN_STALE;
    }
    t->stmt = st; /* for fetch_long_values */
    for (;;) {
        int rc = mysql_stmt_fetch(st);
        bool ok;

        if (rc == MYSQL_NO_DATA) {
            break;
        }
        if (rc != 0 && rc != MYSQL_DATA_TRUNCATED) {
            stmt_error(st, "scanning", sc->db, sc->table, err);
            res = RUN_FAILED;
            break;
        }
        bson_init(&row);
        ok = decode_row(sc->s, t, sc->res, &row, err) && scan_fetch_extras(sc, st, err);
        if (!ok && err->domain == MS_ERR_DECODE) {
            /* a value that does not decode: the callback may take it as a bad row */
            ok = fn(arg, NULL, err);
            if (ok) {
                ms_error_clear(err);
                if (!scan_capture(sc, err)) {
                    ok = false;
                } else {
                    (*n)++;
                }
            }
        } else if (ok) {
            ok = fn(arg, &row, err);
            if (ok || err->domain == MS_ERR_NONE) {
                /* delivered (a callback that stops without an error took its row) */
                if (!scan_capture(sc, err)) {
                    ok = false;
                } else {
                    (*n)++;
                }
            }
        }
        bson_destroy(&row);
        if (!ok) {
            res = err->domain == MS_ERR_NONE ? RUN_OK : RUN_REFUSED;
            break;
        }
        if (mysql_stmt_bind_result(st, sc->res) != 0) {
            stmt_error(st, "scanning", sc->db, sc->table, err);
            res = RUN_FAILED;
            break;
        }
    }
    t->stmt = NULL;
    mysql_stmt_free_result(st);
    give_back_buffers(t, sc->res);
    return res;
}

bool ms_scan_chunk(struct ms_scan *sc, size_t limit, ms_scan_row_fn fn, void *arg, size_t *n,
                   struct ms_error *err)
{
    struct ms_error local;

    if (err == NULL) {
        err = &local;
    }
    ms_error_clear(err);
    *n = 0;
    if (limit == 0) {
        return true;
    }
    for (int attempt = 0; attempt < 2; attempt++) {
        enum run_result r;

        if (!ensure_conn(sc->s, err)) {
            return false;
        }
        if (sc->conn != sc->s->conn) {
            bson_t *seek = sc->seek;
            scan_unprepare(sc);
            if (!scan_prepare(sc, err)) {
                if (err->retryable) {
                    scan_unprepare(sc);
                    disconnect(sc->s);
                }
                return false;
            }
            if (seek != NULL && !scan_apply_seek(sc, err)) {
                return false;
            }
        } else if (sc->seek != NULL && !scan_apply_seek(sc, err)) {
            return false;
        }
        r = scan_run(sc, limit, fn, arg, n, err);
        if (r == RUN_OK) {
            return true;
        }
        if (r == RUN_REFUSED || *n > 0) {
            return false; /* the callback's error, or a failure after rows went out */
        }
        if (err->retryable) {
            if (is_lost(err->code)) {
                scan_unprepare(sc);
                disconnect(sc->s);
            }
            return false;
        }
        if (r != RUN_STALE) {
            return false;
        }
        /* the table may have changed under the statements: once more with a fresh definition
         * (the cursor is kept) */
        {
            bson_t *keep = bson_new();
            ms_scan_cursor(sc, keep);
            scan_unprepare(sc);
            sc->seek = keep;
        }
    }
    return false;
}

int64_t ms_source_estimate_rows(struct ms_source *s, const char *db, const char *table,
                                struct ms_error *err)
{
    struct sql q = {0};
    MYSQL_RES *r;
    MYSQL_ROW row;
    int64_t n = -1;

    if (!ensure_conn(s, err)) {
        return -1;
    }
    sql_str(&q, "SELECT TABLE_ROWS FROM information_schema.TABLES WHERE TABLE_SCHEMA = ");
    sql_literal(&q, s->conn, db);
    sql_str(&q, " AND TABLE_NAME = ");
    sql_literal(&q, s->conn, table);
    if (q.oom) {
        free(q.p);
        out_of_memory(err);
        return -1;
    }
    if (mysql_query(s->conn, q.p) != 0 || (r = mysql_store_result(s->conn)) == NULL) {
        free(q.p);
        conn_error(s->conn, "reading information_schema.TABLES", err);
        return -1;
    }
    free(q.p);
    row = mysql_fetch_row(r);
    if (row != NULL && row[0] != NULL) {
        n = strtoll(row[0], NULL, 10);
    }
    mysql_free_result(r);
    return n;
}

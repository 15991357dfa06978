#define MS_LOG_DOMAIN "reader"

#include "mysync/reader.h"
#include "mysync/log.h"
#include "mysync/mysql.h"

#include <errmsg.h>
#include <mariadb_rpl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

struct ms_reader {
    MYSQL *conn;
    MARIADB_RPL *rpl;
    int checksum;
    char file[512];
    uint64_t pos;
};

static bool run(MYSQL *m, const char *sql, struct ms_error *err)
{
    if (mysql_query(m, sql) != 0) {
        ms_mysql_error(m, sql, err);
        return false;
    }
    return true;
}

/* First column of the first row of a query, copied into out. */
static bool query_value(MYSQL *m, const char *sql, int col, char *out, size_t outsz,
                        struct ms_error *err)
{
    MYSQL_RES *res;
    MYSQL_ROW row;
    bool ok = false;

    if (!run(m, sql, err)) {
        return false;
    }
    res = mysql_store_result(m);
    if (res == NULL) {
        ms_mysql_error(m, sql, err);
        return false;
    }
    row = mysql_fetch_row(res);
    if (row != NULL && (int)mysql_num_fields(res) > col && row[col] != NULL) {
        snprintf(out, outsz, "%s", row[col]);
        ok = true;
    } else {
        ms_error_set(err, MS_ERR_MYSQL, 0, "%s returned no value", sql);
    }
    mysql_free_result(res);
    return ok;
}

/* Checks what the binlog reader needs, with the fix in each message. */
bool ms_reader_preflight(MYSQL *m, struct ms_error *err)
{
    struct ms_mysql_info info;

    if (!ms_mysql_probe(m, &info, err)) {
        return false;
    }
    if (!info.log_bin) {
        ms_error_set(err, MS_ERR_MYSQL, 0,
                     "binary logging is off on the source (log_bin=OFF): start it with "
                     "--log-bin --binlog-format=ROW (see README, server setup), or use "
                     "SYNC_MODE=poll");
        return false;
    }
    if (strcmp(info.binlog_format, "ROW") != 0) {
        ms_error_set(err, MS_ERR_MYSQL, 0,
                     "binlog_format is %s on the source, ROW is needed: SET GLOBAL "
                     "binlog_format = 'ROW' and set it in the server configuration (existing "
                     "sessions keep their format until they reconnect)",
                     info.binlog_format);
        return false;
    }
    if (info.binlog_row_image[0] != '\0' && strcmp(info.binlog_row_image, "FULL") != 0) {
        ms_log(MS_LOG_WARN,
               "binlog_row_image is %s: only the columns present in each row image are "
               "applied; FULL gives complete documents",
               info.binlog_row_image);
    }
    return true;
}

/* Turns the server's dump errors into messages that say what to do. */
static void explain_dump_error(struct ms_reader *r, struct ms_error *err)
{
    if (err == NULL) {
        return;
    }
    if (err->code == 1236 && (strstr(err->msg, "Could not find first log file") != NULL ||
                              strstr(err->msg, "purged") != NULL)) {
        char was[sizeof(err->msg)];
        snprintf(was, sizeof(was), "%s", err->msg);
        ms_error_set(err, MS_ERR_MYSQL, 1236,
                     "binlog position %s:%llu is no longer on the server (purged): the changes "
                     "since then cannot be streamed; re-snapshot the tables with `mysync --full` "
                     "(or SYNC_SNAPSHOT=when_needed) [%s]",
                     r->file, (unsigned long long)r->pos, was);
    } else if (err->code == 1227 || err->code == 1045 || err->code == 1044) {
        ms_error_prefix(err, "missing privilege: GRANT REPLICATION SLAVE, REPLICATION CLIENT "
                             "(MariaDB: BINLOG MONITOR), SELECT ON *.* TO the mysync user");
    }
    err->retryable = false;
}

struct ms_reader *ms_reader_open(const struct ms_config *cfg, const struct ms_reader_opts *o,
                                 struct ms_error *err)
{
    struct ms_reader *r = calloc(1, sizeof(*r));
    int hb_ms = o->heartbeat_ms > 0 ? o->heartbeat_ms : 1000;
    unsigned int timeout_s = (unsigned int)((hb_ms * 3 + 999) / 1000);
    char sql[256], alg[32];
    unsigned int flags = o->stop_at_end ? MARIADB_RPL_BINLOG_DUMP_NON_BLOCK : 0;

    if (r == NULL) {
        ms_error_set(err, MS_ERR_SYSTEM, 0, "out of memory");
        return NULL;
    }
    r->conn = ms_mysql_connect_timeout(cfg, timeout_s < 2 ? 2 : timeout_s, err);
    if (r->conn == NULL) {
        goto fail;
    }
    if (!ms_reader_preflight(r->conn, err)) {
        goto fail;
    }
    /* Checksums: ask for events as the server writes them, and learn the algorithm. */
    if (!query_value(r->conn, "SELECT @@global.binlog_checksum", 0, alg, sizeof(alg), err)) {
        goto fail;
    }
    r->checksum = strcasecmp(alg, "CRC32") == 0 ? 1 : 0;
    if (!run(r->conn, "SET @master_binlog_checksum = @@global.binlog_checksum", err)) {
        goto fail;
    }
    /* MySQL 8.0.26+ reads the source_ spelling; older servers and MariaDB ignore it. */
    mysql_query(r->conn, "SET @source_binlog_checksum = @@global.binlog_checksum");
    /* MariaDB: announce a GTID-aware replica so GTID events are sent as such. */
    mysql_query(r->conn, "SET @mariadb_slave_capability = 4");
    snprintf(sql, sizeof(sql), "SET @master_heartbeat_period = %lld", (long long)hb_ms * 1000000LL);
    if (!run(r->conn, sql, err)) {
        goto fail;
    }
    if (o->file != NULL) {
        snprintf(r->file, sizeof(r->file), "%s", o->file);
        r->pos = o->pos >= 4 ? o->pos : 4;
    } else {
        char pos[32];
        /* SHOW MASTER STATUS: MariaDB and MySQL up to 8.3; 8.4+ spells it BINARY LOG */
        const char *show = "SHOW MASTER STATUS";
        if (!query_value(r->conn, show, 0, r->file, sizeof(r->file), err)) {
            show = "SHOW BINARY LOG STATUS";
            if (!query_value(r->conn, show, 0, r->file, sizeof(r->file), err)) {
                explain_dump_error(r, err);
                ms_error_prefix(err, "cannot read the current binlog position");
                goto fail;
            }
        }
        if (!query_value(r->conn, show, 1, pos, sizeof(pos), err)) {
            goto fail;
        }
        r->pos = strtoull(pos, NULL, 10);
    }
    r->rpl = mariadb_rpl_init(r->conn);
    if (r->rpl == NULL) {
        ms_error_set(err, MS_ERR_MYSQL, 0, "mariadb_rpl_init failed");
        goto fail;
    }
    mariadb_rpl_optionsv(r->rpl, MARIADB_RPL_FILENAME, r->file, strlen(r->file));
    mariadb_rpl_optionsv(r->rpl, MARIADB_RPL_START, (unsigned long)r->pos);
    mariadb_rpl_optionsv(r->rpl, MARIADB_RPL_SERVER_ID, o->server_id);
    mariadb_rpl_optionsv(r->rpl, MARIADB_RPL_FLAGS, flags);
    if (mariadb_rpl_open(r->rpl) != 0) {
        ms_mysql_error(r->conn, "starting the binlog dump", err);
        goto fail;
    }
    ms_log_kv(
        MS_LOG_INFO,
        ((struct ms_log_field[]){MS_LF_STR("file", r->file), MS_LF_INT("pos", (int64_t)r->pos),
                                 MS_LF_INT("server_id", o->server_id),
                                 MS_LF_STR("checksum", r->checksum ? "CRC32" : "NONE")}),
        "binlog dump started");
    return r;
fail:
    ms_reader_close(r);
    return NULL;
}

bool ms_reader_next(struct ms_reader *r, const uint8_t **event, size_t *len, struct ms_error *err)
{
    unsigned long n;
    const uint8_t *p;

    ms_error_clear(err);
    n = mysql_net_read_packet(r->conn);
    if (n == packet_error || n == 0) {
        unsigned int code = mysql_errno(r->conn);
        ms_mysql_error(r->conn, "reading the binlog stream", err);
        if (code == 1236 || code == 1227) {
            explain_dump_error(r, err);
            return false;
        }
        if (err != NULL) {
            /* a silent connection (read timeout) or a lost one: reconnect and resume */
            err->retryable = true;
            if (code == 0) {
                ms_error_set(err, MS_ERR_MYSQL, CR_SERVER_LOST,
                             "binlog stream lost (no event or heartbeat in time)");
                err->retryable = true;
            }
        }
        return false;
    }
    p = r->conn->net.read_pos;
    if (p[0] == 0xfe && n < 9) {
        return false; /* EOF: end of a non-blocking dump */
    }
    if (p[0] == 0xff) {
        /* an error packet: 0xff, 2-byte code, '#', 5-byte state, message */
        unsigned int code = n >= 3 ? (unsigned int)(p[1] | p[2] << 8) : 0;
        size_t off = n > 9 && p[3] == '#' ? 9 : 3;
        ms_error_set(err, MS_ERR_MYSQL, code, "binlog dump: %.*s (error %u)",
                     n > off ? (int)(n - off) : 0, (const char *)p + off, code);
        explain_dump_error(r, err);
        return false;
    }
    if (p[0] != 0x00 || n < 1 + 19) {
        ms_error_set(err, MS_ERR_DECODE, MS_DECODE_MALFORMED,
                     "binlog dump: unexpected packet (status 0x%02x, %lu bytes)", p[0], n);
        return false;
    }
    *event = p + 1;
    *len = n - 1;
    return true;
}

int ms_reader_checksum(const struct ms_reader *r)
{
    return r->checksum;
}

const char *ms_reader_start_file(const struct ms_reader *r)
{
    return r->file;
}

uint64_t ms_reader_start_pos(const struct ms_reader *r)
{
    return r->pos;
}

void ms_reader_close(struct ms_reader *r)
{
    if (r == NULL) {
        return;
    }
    if (r->rpl != NULL) {
        /* mariadb_rpl_close would free the connection's buffers; close the connection
         * ourselves afterwards */
        mariadb_rpl_close(r->rpl);
    }
    if (r->conn != NULL) {
        mysql_close(r->conn);
    }
    free(r);
}

/* The replica id of this process: configured, else derived from the host name and pid,
 * kept away from 1 (the usual id of a primary) and from the small ids people configure. */
uint32_t ms_reader_default_server_id(const struct ms_config *cfg)
{
    char host[256] = "";
    uint32_t h = 2166136261u;

    if (cfg->sync_server_id != 0) {
        return (uint32_t)cfg->sync_server_id;
    }
    gethostname(host, sizeof(host) - 1);
    for (const char *c = host; *c != '\0'; c++) {
        h = (h ^ (uint8_t)*c) * 16777619u;
    }
    h = (h ^ (uint32_t)getpid()) * 16777619u;
    return 1000000u + h % 3000000000u;
}

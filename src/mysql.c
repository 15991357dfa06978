#define MS_LOG_DOMAIN "mysql"

#include "mysync/mysql.h"
#include "mysync/log.h"

#include <errmsg.h>
#include <mysqld_error.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static bool is_retryable(unsigned int code)
{
    switch (code) {
    case CR_CONNECTION_ERROR:
    case CR_CONN_HOST_ERROR:
    case CR_SERVER_GONE_ERROR:
    case CR_SERVER_LOST:
    case CR_SERVER_LOST_EXTENDED:
    case ER_CON_COUNT_ERROR:
    case ER_SERVER_SHUTDOWN:
    case ER_LOCK_DEADLOCK:
    case ER_LOCK_WAIT_TIMEOUT:
        return true;
    default:
        return false;
    }
}

void ms_mysql_error(MYSQL *conn, const char *doing, struct ms_error *err)
{
    unsigned int code = mysql_errno(conn);
    char msg[512];

    ms_log_redact(mysql_error(conn), msg, sizeof(msg));
    ms_error_set(err, MS_ERR_MYSQL, code, "%s: %s (error %u)", doing, msg, code);
    if (err != NULL) {
        err->retryable = is_retryable(code);
    }
}

static MYSQL *try_connect(const struct ms_config *cfg, bool tls, unsigned int read_timeout,
                          struct ms_error *err)
{
    MYSQL *m = mysql_init(NULL);
    unsigned int timeout = 10;
    char doing[512];

    if (m == NULL) {
        ms_error_set(err, MS_ERR_SYSTEM, 0, "mysql_init: out of memory");
        return NULL;
    }
    mysql_optionsv(m, MYSQL_OPT_CONNECT_TIMEOUT, &timeout);
    if (read_timeout > 0) {
        mysql_optionsv(m, MYSQL_OPT_READ_TIMEOUT, &read_timeout);
    }
    mysql_optionsv(m, MYSQL_SET_CHARSET_NAME, cfg->mysql_charset);
    if (tls) {
        my_bool enforce = 1;
        my_bool verify = cfg->mysql_ssl_mode >= MS_SSL_VERIFY_CA;
        mysql_optionsv(m, MYSQL_OPT_SSL_ENFORCE, &enforce);
        /* libmariadb has one switch for CA and host-name checks: verify_ca checks both. */
        mysql_optionsv(m, MYSQL_OPT_SSL_VERIFY_SERVER_CERT, &verify);
        if (cfg->mysql_ssl_ca != NULL) {
            mysql_optionsv(m, MYSQL_OPT_SSL_CA, cfg->mysql_ssl_ca);
        }
    }
    if (mysql_real_connect(m, cfg->mysql_host, cfg->mysql_user, cfg->mysql_password,
                           cfg->mysql_database, (unsigned int)cfg->mysql_port, NULL,
                           CLIENT_REMEMBER_OPTIONS) == NULL) {
        snprintf(doing, sizeof(doing), "cannot connect to MySQL at %s:%d as '%s'", cfg->mysql_host,
                 (int)cfg->mysql_port, cfg->mysql_user != NULL ? cfg->mysql_user : "");
        ms_mysql_error(m, doing, err);
        mysql_close(m);
        return NULL;
    }
    return m;
}

MYSQL *ms_mysql_connect(const struct ms_config *cfg, struct ms_error *err)
{
    return ms_mysql_connect_timeout(cfg, 0, err);
}

MYSQL *ms_mysql_connect_timeout(const struct ms_config *cfg, unsigned int read_timeout_s,
                                struct ms_error *err)
{
    MYSQL *m = try_connect(cfg, cfg->mysql_ssl_mode != MS_SSL_DISABLED, read_timeout_s, err);

    /* libmariadb 3.3 falls back to plain text when the server offers no TLS, even with
     * MYSQL_OPT_SSL_ENFORCE (measured against the rig's MariaDB, have_ssl=DISABLED):
     * "required" and stricter are enforced here, from the negotiated cipher. */
    if (m != NULL && cfg->mysql_ssl_mode >= MS_SSL_REQUIRED && mysql_get_ssl_cipher(m) == NULL) {
        ms_error_set(err, MS_ERR_MYSQL, 0,
                     "MySQL at %s:%d offers no TLS but mysql.ssl_mode is %s: enable TLS on the "
                     "server or lower MYSQL_SSL_MODE",
                     cfg->mysql_host, (int)cfg->mysql_port,
                     cfg->mysql_ssl_mode == MS_SSL_REQUIRED ? "required" : "verify_*");
        mysql_close(m);
        return NULL;
    }
    if (m != NULL) {
        ms_log(MS_LOG_DEBUG, "connected to %s:%d %s", cfg->mysql_host, (int)cfg->mysql_port,
               mysql_get_ssl_cipher(m) != NULL ? "with TLS" : "without TLS");
    }
    return m;
}

static void copy_upper(char *dst, size_t n, const char *src)
{
    size_t i;

    for (i = 0; i + 1 < n && src != NULL && src[i] != '\0'; i++) {
        dst[i] = (char)(src[i] >= 'a' && src[i] <= 'z' ? src[i] - 32 : src[i]);
    }
    dst[i] = '\0';
}

bool ms_mysql_probe(MYSQL *conn, struct ms_mysql_info *info, struct ms_error *err)
{
    MYSQL_RES *res;
    MYSQL_ROW row;

    memset(info, 0, sizeof(*info));
    snprintf(info->version, sizeof(info->version), "%s", mysql_get_server_info(conn));
    info->is_mariadb = strstr(info->version, "MariaDB") != NULL;
    if (mysql_query(conn, "SHOW GLOBAL VARIABLES WHERE Variable_name IN ('log_bin', "
                          "'binlog_format', 'binlog_row_image', 'binlog_row_metadata', "
                          "'binlog_checksum', 'server_id')") != 0) {
        ms_mysql_error(conn, "reading server variables", err);
        return false;
    }
    res = mysql_store_result(conn);
    if (res == NULL) {
        ms_mysql_error(conn, "reading server variables", err);
        return false;
    }
    while ((row = mysql_fetch_row(res)) != NULL) {
        const char *name = row[0], *val = row[1] != NULL ? row[1] : "";
        if (strcasecmp(name, "log_bin") == 0) {
            info->log_bin = strcasecmp(val, "ON") == 0 || strcmp(val, "1") == 0;
        } else if (strcasecmp(name, "binlog_format") == 0) {
            copy_upper(info->binlog_format, sizeof(info->binlog_format), val);
        } else if (strcasecmp(name, "binlog_row_image") == 0) {
            copy_upper(info->binlog_row_image, sizeof(info->binlog_row_image), val);
        } else if (strcasecmp(name, "binlog_row_metadata") == 0) {
            copy_upper(info->binlog_row_metadata, sizeof(info->binlog_row_metadata), val);
        } else if (strcasecmp(name, "binlog_checksum") == 0) {
            copy_upper(info->binlog_checksum, sizeof(info->binlog_checksum), val);
        } else if (strcasecmp(name, "server_id") == 0) {
            info->server_id = strtoll(val, NULL, 10);
        }
    }
    mysql_free_result(res);
    return true;
}

void ms_mysql_quote_ident(char *out, size_t outsz, const char *name)
{
    size_t w = 0;

    out[w++] = '`';
    for (; *name != '\0' && w + 3 < outsz; name++) {
        if (*name == '`') {
            out[w++] = '`';
        }
        out[w++] = *name;
    }
    out[w++] = '`';
    out[w] = '\0';
}

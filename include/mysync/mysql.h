/* Connections to the source server (libmariadb): TLS, charset, timeouts, and a probe of
 * the server settings the binlog reader depends on. */
#ifndef MYSYNC_MYSQL_H
#define MYSYNC_MYSQL_H

#include <mysql.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "mysync/config.h"
#include "mysync/error.h"

struct ms_mysql_info {
    char version[96];
    bool is_mariadb;
    bool log_bin;
    char binlog_format[16];       /* ROW, STATEMENT, MIXED */
    char binlog_row_image[16];    /* FULL, MINIMAL, NOBLOB */
    char binlog_row_metadata[16]; /* FULL, MINIMAL, NO_LOG; "" when the server has none */
    char binlog_checksum[16];     /* CRC32, NONE */
    int64_t server_id;
};

/* Opens a connection as configured (ssl_mode "preferred" falls back to plain text when the
 * server offers no TLS). Returns NULL and sets err (retryable for network-level failures).
 * The caller closes the handle with mysql_close(). */
MYSQL *ms_mysql_connect(const struct ms_config *cfg, struct ms_error *err);

/* The same with a socket read timeout (seconds; 0 = none): a read that waits longer fails
 * with a retryable error. */
MYSQL *ms_mysql_connect_timeout(const struct ms_config *cfg, unsigned int read_timeout_s,
                                struct ms_error *err);

/* Reads version and binlog settings into *info. */
bool ms_mysql_probe(MYSQL *conn, struct ms_mysql_info *info, struct ms_error *err);

/* An identifier quoted for SQL (`name`, backticks doubled), cut to fit outsz (>= 3). */
void ms_mysql_quote_ident(char *out, size_t outsz, const char *name);

/* Sets err from the connection's last error, prefixed with what was being done. */
void ms_mysql_error(MYSQL *conn, const char *doing, struct ms_error *err);

#endif

/* Reading the binlog from a server: libmariadb authenticates and sends the dump request;
 * raw event packets are then read with mysql_net_read_packet() and handed to our own parser
 * (../shared/README.md: libmariadb's own event fetch stops at event types it does not know).
 * The reader announces checksum support (events carry CRC32 when the server writes them),
 * asks for heartbeats, and treats a connection silent for 3 heartbeat periods as dead. */
#ifndef MYSYNC_READER_H
#define MYSYNC_READER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <mysql.h>

#include "mysync/config.h"
#include "mysync/error.h"

struct ms_reader_opts {
    uint32_t server_id; /* replica id; must differ from the source's */
    const char *file;   /* start file; NULL = the server's current file and position */
    uint64_t pos;       /* start position in file (4 = its beginning) */
    int heartbeat_ms;   /* heartbeat period asked from the server (default 1000) */
    bool stop_at_end;   /* non-blocking dump: end when the server has nothing more */
};

struct ms_reader;

/* Checks that the source can be read as a binlog (log_bin ON, binlog_format ROW; warns
 * about partial row images). err says what to change. */
bool ms_reader_preflight(MYSQL *conn, struct ms_error *err);

/* Connects (ms_mysql_connect), sets up checksum and heartbeat, starts the dump. */
struct ms_reader *ms_reader_open(const struct ms_config *cfg, const struct ms_reader_opts *o,
                                 struct ms_error *err);

/* Next raw event (header + body + checksum), borrowed until the next call. Returns false at
 * the end of a non-blocking dump (err->domain == 0) or on an error: retryable for lost
 * connections and silence beyond the heartbeat limit. */
bool ms_reader_next(struct ms_reader *r, const uint8_t **event, size_t *len, struct ms_error *err);

/* The checksum algorithm the events carry (0 none, 1 CRC32), for the parser. */
int ms_reader_checksum(const struct ms_reader *r);

/* The file and position the dump started at (resolved from the server when not given). */
const char *ms_reader_start_file(const struct ms_reader *r);
uint64_t ms_reader_start_pos(const struct ms_reader *r);

void ms_reader_close(struct ms_reader *r);

/* The replica server id: sync.server_id when set, else derived from the host name and pid
 * (1000000..3999999999: never 1, the usual id of a primary, nor the small ids people pick). */
uint32_t ms_reader_default_server_id(const struct ms_config *cfg);

#endif

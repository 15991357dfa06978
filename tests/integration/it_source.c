/* Re-reading rows by key (ms_source_read_row) against the rig's MariaDB: every row of tables
 * covering every type of the README's type mapping reads back as exactly the BSON the binlog
 * decoder makes of its INSERT, under several value options. The reference is the binlog
 * itself, decoded twice: in-process (exact BSON types: int32 vs int64) and by `mysync
 * binlog-dump --from-server` with the options in its environment (relaxed Extended JSON,
 * compared after a round trip through libbson). Then: a missing row, errors that say what is
 * wrong, a killed connection (retryable, then reconnected), DDL and invalidation. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <bson/bson.h>
#include <mysql.h>
#include <mysqld_error.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "mysync/binlog.h"
#include "mysync/config.h"
#include "mysync/reader.h"
#include "mysync/rows.h"
#include "mysync/schema.h"
#include "mysync/source.h"
#include "mysync/strategy.h"
#include "testutil.h"

/* ---- the workload ------------------------------------------------------------------- */

static const char workload[] =
    "SET NAMES utf8mb4; SET time_zone = '+00:00';"
    "DROP DATABASE IF EXISTS it_src; CREATE DATABASE it_src; USE it_src;"
    /* integers, floats, BIT, YEAR */
    "CREATE TABLE t_int (id INT PRIMARY KEY, ti TINYINT, tiu TINYINT UNSIGNED, si SMALLINT,"
    " siu SMALLINT UNSIGNED, mi MEDIUMINT, miu MEDIUMINT UNSIGNED, i INT, iu INT UNSIGNED,"
    " bi BIGINT, biu BIGINT UNSIGNED, f FLOAT, d DOUBLE, b1 BIT(1), b10 BIT(10), b64 BIT(64),"
    " y YEAR);"
    "INSERT INTO t_int VALUES"
    " (1, -128, 255, -32768, 65535, -8388608, 16777215, -2147483648, 4294967295,"
    "  -9223372036854775808, 18446744073709551615, -1.5, 2.25, 1, b'1010101010',"
    "  0xFFFFFFFFFFFFFFFF, 2155),"
    " (2, 127, 0, 32767, 0, 8388607, 0, 2147483647, 0, 9223372036854775807,"
    "  9223372036854775807, 3.4e38, -1e-300, 0, 0, 0x8000000000000000, 1901),"
    " (3, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,"
    "  NULL, NULL),"
    " (4, 0, 1, -1, 1, -1, 1, -1, 2147483648, -1, 9223372036854775808, 0.1, 0.1, 0, 1, 1, 0),"
    " (5, 1, 2, 3, 4, 5, 6, 7, 8, 4294967296, 18446744073709551614, 1.17549435e-38,"
    "  1.7976931348623157e308, 1, 1023, 0x7FFFFFFFFFFFFFFF, 2024),"
    " (6, -1, 128, -129, 32768, -32769, 8388608, 2147483646, 2147483647, -2147483649,"
    "  2147483648, 16777217, -0.0, 0, 512, 0x0000000100000000, 1970);"
    /* DECIMAL: under 9 digits, groups of 9, scale 38, beyond Decimal128's 34 digits */
    "CREATE TABLE t_dec (id INT PRIMARY KEY, d1 DECIMAL(1,0), d2 DECIMAL(4,2),"
    " d3 DECIMAL(9,9), d4 DECIMAL(10,4), d5 DECIMAL(18,9), d6 DECIMAL(20,10),"
    " d7 DECIMAL(38,30), d8 DECIMAL(65,30), d9 DECIMAL(65,0), d10 DECIMAL(38,38),"
    " d11 DECIMAL(34,0), d12 DECIMAL(12,3) UNSIGNED);"
    "INSERT INTO t_dec VALUES"
    " (1, 9, 99.99, 0.999999999, 123456.7890, 123456789.123456789, 1234567890.0123456789,"
    "  12345678.123456789012345678901234567890,"
    "  12345678901234567890123456789012345.123456789012345678901234567890,"
    "  99999999999999999999999999999999999999999999999999999999999999999,"
    "  0.12345678901234567890123456789012345678, 9999999999999999999999999999999999,"
    "  123456789.125),"
    " (2, -9, -0.01, -0.000000001, -0.5000, -1.000000001, -9999999999.9999999999,"
    "  -0.000000000000000000000000000001, -1.5, -1, -0.00000000000000000000000000000000000001,"
    "  -9999999999999999999999999999999999, 0),"
    " (3, 0, 0.00, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0.001),"
    " (4, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL),"
    " (5, 1, 10.5, 0.1, 100000.0001, 999999999.999999999, 1, 1.5, 100, 10, 0.5, 1, 1.1);"
    /* temporal types, every fsp */
    "CREATE TABLE t_time (id INT PRIMARY KEY, d DATE, y YEAR,"
    " t0 TIME, t1 TIME(1), t2 TIME(2), t3 TIME(3), t4 TIME(4), t5 TIME(5), t6 TIME(6),"
    " dt0 DATETIME, dt1 DATETIME(1), dt2 DATETIME(2), dt3 DATETIME(3), dt4 DATETIME(4),"
    " dt5 DATETIME(5), dt6 DATETIME(6),"
    " ts0 TIMESTAMP NULL, ts1 TIMESTAMP(1) NULL, ts2 TIMESTAMP(2) NULL, ts3 TIMESTAMP(3) NULL,"
    " ts4 TIMESTAMP(4) NULL, ts5 TIMESTAMP(5) NULL, ts6 TIMESTAMP(6) NULL);"
    "INSERT INTO t_time VALUES"
    " (1, '2024-02-29', 2024, '12:34:56', '12:34:56.7', '12:34:56.78', '12:34:56.789',"
    "  '12:34:56.7891', '12:34:56.78912', '12:34:56.789123',"
    "  '2024-02-29 23:59:59', '2024-02-29 23:59:59.9', '2024-02-29 23:59:59.99',"
    "  '2024-02-29 23:59:59.999', '2024-02-29 23:59:59.9999', '2024-02-29 23:59:59.99999',"
    "  '2024-02-29 23:59:59.999999',"
    "  '2024-06-01 12:00:00', '2024-06-01 12:00:00.1', '2024-06-01 12:00:00.12',"
    "  '2024-06-01 12:00:00.123', '2024-06-01 12:00:00.1234', '2024-06-01 12:00:00.12345',"
    "  '2024-06-01 12:00:00.123456'),"
    " (2, '0000-00-00', 0, '-838:59:59', '-00:00:00.5', '-00:00:01.01', '-01:02:03.004',"
    "  '-100:00:00.0001', '-838:59:58.99999', '-00:00:00.000001',"
    "  '0000-00-00 00:00:00', '2020-00-10 00:00:00.0', '2020-05-00 01:02:03.04',"
    "  '0000-00-00 00:00:00.000', '1000-01-01 00:00:00.0001', '1969-12-31 23:59:59.99999',"
    "  '1969-12-31 23:59:59.999999',"
    "  '1970-01-01 00:00:01', '1970-01-01 00:00:01.5', '1970-01-01 00:00:00.01',"
    "  '2038-01-19 03:14:07.999', '2038-01-19 03:14:07.9999', '2038-01-19 03:14:07.99999',"
    "  '2038-01-19 03:14:07.999999'),"
    " (3, '9999-12-31', 1901, '838:59:59', '838:59:58.9', '24:00:00.01', '-24:00:00.001',"
    "  '00:00:00.0001', '-00:00:00.00001', '838:59:58.999999',"
    "  '9999-12-31 23:59:59', '1000-01-01 00:00:00.1', '9999-12-31 23:59:59.99',"
    "  '1970-01-01 00:00:00.001', '9999-12-31 23:59:59.9999', '9999-12-31 23:59:59.99999',"
    "  '9999-12-31 23:59:59.999999',"
    "  '2001-09-09 01:46:40', NULL, NULL, NULL, NULL, NULL, '1999-12-31 23:59:59.000001'),"
    " (4, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,"
    "  NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL),"
    " (5, '1000-01-01', 1999, '00:00:00', '00:00:00.0', '-00:00:00.99', '00:00:00.000',"
    "  '-00:00:00.9999', '00:00:00.00000', '-838:59:59.000000',"
    "  '1000-01-01 00:00:00', '1969-12-31 23:59:59.9', '2000-01-01 00:00:00.00',"
    "  '2000-01-01 00:00:00.5', '2000-01-01 00:00:00.0005', '2000-01-01 00:00:00.00005',"
    "  '2000-01-01 00:00:00.000005',"
    "  '2000-01-01 00:00:00', '2000-01-01 00:00:00.0', '2000-01-01 00:00:00.00',"
    "  '2000-01-01 00:00:00.000', '2000-01-01 00:00:00.0000', '2000-01-01 00:00:00.00000',"
    "  '2000-01-01 00:00:00.000000');"
    "SET SESSION sql_mode = 'ALLOW_INVALID_DATES';"
    "INSERT INTO t_time (id, d, dt0, dt6) VALUES (6, '2021-02-31', '2021-02-31 10:00:00',"
    " '2021-04-31 10:00:00.000001');"
    "SET SESSION sql_mode = DEFAULT;"
    /* strings, binaries, ENUM, SET, MariaDB JSON, GEOMETRY, MariaDB's UUID/INET */
    "CREATE TABLE t_str (id INT PRIMARY KEY, c CHAR(10), c255 CHAR(255), vc VARCHAR(20),"
    " vc300 VARCHAR(300), bn BINARY(4), vb VARBINARY(10), tt TINYTEXT, tx TEXT, mt MEDIUMTEXT,"
    " lt LONGTEXT, tb TINYBLOB, bl BLOB, mb MEDIUMBLOB, lb LONGBLOB,"
    " e ENUM('red','green','blue','y''q','back\\\\slash'), s SET('a','b','c','d'),"
    " js JSON, g GEOMETRY, pt POINT, cb VARCHAR(10) COLLATE utf8mb4_bin,"
    " a3 CHAR(5) CHARACTER SET ascii, u UUID, i6 INET6, i4 INET4);"
    "INSERT INTO t_str VALUES"
    " (1, 'pad  ', REPEAT('x', 255), 'caf\xc3\xa9', REPEAT('y', 300), 'ab', 0x00ff10, 'tiny',"
    "  'text', 'medium', 'long \xf0\x9f\x8d\xb0', 0x01, 0x0203, 0x00, 0xfffe, 'blue', 'a,d',"
    "  '{\"k\": [1, 2.5, \"s\", null, true], \"o\": {\"n\": -3}, \"big\": 12345678901234567890}',"
    "  ST_GeomFromText('POINT(1 2)'), ST_GeomFromText('POINT(-1.5 3e10)', 4326), 'Bin',"
    "  'ascii', '6ccd780c-baba-1026-9564-5b8c656024db', '2001:db8::1', '192.168.0.1'),"
    " (2, '', '', '', '', '', '', '', '', '', '', '', '', '', '', 'red', '', '[]',"
    "  ST_GeomFromText('POLYGON((0 0, 1 0, 1 1, 0 0))'), NULL, '', '',"
    "  '00000000-0000-0000-0000-000000000000', '::', '0.0.0.0'),"
    " (3, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,"
    "  NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL),"
    " (4, '\xf0\x9f\x8d\xb0 x', REPEAT('\xf0\x9f\x8d\xb0', 255), ' lead', REPEAT('\xc3\xa9', 300),"
    "  0x00000000, 0x0000, REPEAT('z', 255), REPEAT('\xe2\x82\xac', 1000),"
    "  REPEAT('ab\xf0\x9f\x8d\xb0', 40000), REPEAT('long', 100000), REPEAT(0x00, 255),"
    "  REPEAT(0xab, 3000), REPEAT(0xcd, 70000), REPEAT(0xef, 300000), 'y''q', 'a,b,c,d',"
    "  '\"just a string\"', ST_GeomFromText('LINESTRING(0 0, 1 1, 2 5)'),"
    "  ST_GeomFromText('POINT(0 0)'), 'CASE', 'a b  ', 'ffffffff-ffff-ffff-ffff-ffffffffffff',"
    "  'ffff::ffff', '255.255.255.255'),"
    " (5, 'tab\\t', 'nl\\n', 'quote''s', 'back\\\\slash', 0x20202020, 0x20, ' ', '\\0', 'x',"
    "  '[1, {\"a\": [true, false, null]}, \"\xf0\x9f\x8d\xb0\"]', 0x0a, 0x0d, 0x5c, 0x27,"
    "  'back\\\\slash', 'c', '{\"a$b\": 1, \"nested\": {\"deep\": [[[]]]}, \"e\": 1.5e300}',"
    "  NULL, NULL, NULL, NULL, NULL, NULL, NULL),"
    " (6, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,"
    "  'green', 'b,c', '-0.5e-3', NULL, NULL, NULL, NULL, NULL, NULL, NULL),"
    " (7, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, 'not json', NULL, NULL, NULL,"
    "  NULL, NULL, NULL, 'null', NULL, NULL, NULL, NULL, NULL, NULL, NULL),"
    " (8, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,"
    "  NULL, NULL, '123456789012345678901234567890', NULL, NULL, NULL, NULL, NULL, NULL, NULL);"
    "SET SESSION sql_mode = '';"
    "INSERT INTO t_str (id, e) VALUES (9, 'no such label');"
    "SET SESSION sql_mode = DEFAULT;"
    /* latin1 (MySQL's latin1 is cp1252): converted to UTF-8 */
    "CREATE TABLE t_latin1 (id INT PRIMARY KEY, c CHAR(10), vc VARCHAR(40), tx TEXT,"
    " e ENUM('a','b'), s SET('x','y')) DEFAULT CHARSET latin1;"
    "INSERT INTO t_latin1 VALUES"
    " (1, 'd\xc3\xa9j\xc3\xa0', 'd\xc3\xa9j\xc3\xa0 \xe2\x82\xac', '\xc6\x92\xe2\x80\xb0\xc5\xb8"
    "\xc3\xbf', 'b', 'x,y'),"
    " (2, '\xc2\x81\xc2\x8d\xc2\x8f', '\xc2\x90\xc2\x9d', '\xc2\xa0\xc3\x80-\xc3\xbf', 'a', ''),"
    " (3, 'plain   ', 'ascii', '', NULL, NULL);"
    /* keys of every kind, one column and composite */
    "CREATE TABLE t_key (a BIGINT UNSIGNED, b DECIMAL(30,10), c VARCHAR(10) CHARACTER SET latin1,"
    " d VARBINARY(4), e DATETIME(6), f TIME(3), g DATE, h ENUM('x','y'), j BINARY(3),"
    " k TIMESTAMP(6) NOT NULL DEFAULT '2000-01-01 00:00:00', v INT,"
    " PRIMARY KEY (a, b, c, d, e, f, g, h, j, k));"
    "INSERT INTO t_key VALUES"
    " (18446744073709551615, 1.0000000001, 'd\xc3\xa9j\xc3\xa0', 0x00, '2024-01-01 "
    "00:00:00.123456',"
    "  '-01:00:00.5', '2024-01-01', 'x', 'a', '2024-01-01 00:00:00.000001', 1),"
    " (18446744073709551614, 1.0000000001, 'd\xc3\xa9j\xc3\xa0', 0x00, '2024-01-01 "
    "00:00:00.123456',"
    "  '-01:00:00.5', '2024-01-01', 'x', 'a', '2024-01-01 00:00:00.000001', 2),"
    " (18446744073709551615, 1.0000000002, 'd\xc3\xa9j\xc3\xa0', 0x00, '2024-01-01 "
    "00:00:00.123456',"
    "  '-01:00:00.5', '2024-01-01', 'x', 'a', '2024-01-01 00:00:00.000001', 3),"
    " (18446744073709551615, 1.0000000001, 'xyz', 0x00, '2024-01-01 00:00:00.123456',"
    "  '-01:00:00.5', '2024-01-01', 'x', 'a', '2024-01-01 00:00:00.000001', 4),"
    " (18446744073709551615, 1.0000000001, 'd\xc3\xa9j\xc3\xa0', 0x0000, "
    "  '2024-01-01 00:00:00.123456', '-01:00:00.5', '2024-01-01', 'x', 'a',"
    "  '2024-01-01 00:00:00.000001', 5),"
    " (18446744073709551615, 1.0000000001, 'd\xc3\xa9j\xc3\xa0', 0x00, '2024-01-01 00:00:00.124',"
    "  '-01:00:00.5', '2024-01-01', 'x', 'a', '2024-01-01 00:00:00.000001', 6),"
    " (18446744073709551615, 1.0000000001, 'd\xc3\xa9j\xc3\xa0', 0x00, '2024-01-01 "
    "00:00:00.123456',"
    "  '-01:00:00.501', '2024-01-01', 'x', 'a', '2024-01-01 00:00:00.000001', 7),"
    " (18446744073709551615, 1.0000000001, 'd\xc3\xa9j\xc3\xa0', 0x00, '2024-01-01 "
    "00:00:00.123456',"
    "  '-01:00:00.5', '0000-00-00', 'y', 'a\\0', '2024-01-01 00:00:00.000001', 8),"
    " (0, -1, '', '', '0000-00-00 00:00:00', '00:00:00', '2024-02-29', 'y', '',"
    "  '1970-01-01 00:00:01', 9),"
    " (1, 0, 'x', 0xff, '1969-12-31 23:59:59.999', '838:59:59', '1969-12-31', 'x', 'abc',"
    "  '2038-01-19 03:14:07.999', 10);"
    "CREATE TABLE t_kbig (k BIGINT UNSIGNED PRIMARY KEY, v INT);"
    "INSERT INTO t_kbig VALUES (18446744073709551615, 1), (18446744073709551614, 2),"
    " (9223372036854775808, 3), (9223372036854775807, 4), (0, 5);"
    "CREATE TABLE t_kneg (k BIGINT PRIMARY KEY, v INT);"
    "INSERT INTO t_kneg VALUES (-9223372036854775808, 1), (-1, 2), (2147483648, 3), (7, 4);"
    "CREATE TABLE t_kdec (k DECIMAL(65,30) PRIMARY KEY, v INT);"
    "INSERT INTO t_kdec VALUES (12345678901234567890123456789012345.123456789012345678901234567890,"
    " 1), (-98765432109876543210987654321098765.123456789012345678901234567891, 2), (-0.5, 3),"
    " (0.000000000000000000000000000001, 4), (100, 5);"
    "CREATE TABLE t_kdt0 (k DATETIME PRIMARY KEY, v INT);"
    "INSERT INTO t_kdt0 VALUES ('2024-01-01 00:00:00', 1), ('2024-01-01 00:00:01', 2),"
    " ('1000-01-01 00:00:00', 3), ('9999-12-31 23:59:59', 4), ('0000-00-00 00:00:00', 5);"
    "CREATE TABLE t_kts3 (k TIMESTAMP(3) PRIMARY KEY, v INT);"
    "INSERT INTO t_kts3 VALUES ('2024-01-01 00:00:00.001', 1), ('2024-01-01 00:00:00.002', 2),"
    " ('1970-01-01 00:00:01', 3);"
    "CREATE TABLE t_kbin (k BINARY(8) PRIMARY KEY, v INT);"
    "INSERT INTO t_kbin VALUES (0x01, 1), (0x0001, 2), (0xffffffffffffffff, 3), ('', 4);"
    "CREATE TABLE t_kuuid (k UUID PRIMARY KEY, v INT);"
    "INSERT INTO t_kuuid VALUES ('6ccd780c-baba-1026-9564-5b8c656024db', 1),"
    " ('6ccd780c-baba-1026-9564-5b8c656024dc', 2), ('00112233-4455-6677-8899-aabbccddeeff', 3);"
    "CREATE TABLE t_kset (k SET('a','b','c') PRIMARY KEY, v INT);"
    "INSERT INTO t_kset VALUES ('', 1), ('a', 2), ('a,c', 3), ('a,b,c', 4);"
    "CREATE TABLE t_kdbl (k DOUBLE PRIMARY KEY, f FLOAT, v INT);"
    "INSERT INTO t_kdbl VALUES (0.1, 0.1, 1), (0.30000000000000004, 0.3, 2), (-1e300, -1, 3);"
    "CREATE TABLE t_kbit (k BIT(64) PRIMARY KEY, y YEAR, v INT);"
    "INSERT INTO t_kbit VALUES (0xFFFFFFFFFFFFFFFF, 2000, 1), (0, 2001, 2), (1, NULL, 3);"
    "CREATE TABLE t_kfl (k FLOAT PRIMARY KEY, v INT);"
    "INSERT INTO t_kfl VALUES (0.1, 1), (3.4e38, 2), (-1.5, 3);"
    "CREATE TABLE t_ktime (k TIME(6) PRIMARY KEY, v INT);"
    "INSERT INTO t_ktime VALUES ('-838:59:59', 1), ('-00:00:00.000001', 2), ('00:00:00', 3),"
    " ('123:45:06.5', 4);"
    "CREATE TABLE t_kyear (k YEAR PRIMARY KEY, d DATE, v INT);"
    "INSERT INTO t_kyear VALUES (1901, '2024-02-29', 1), (2155, '0000-00-00', 2), (0, NULL, 3);"
    "CREATE TABLE t_klat (k VARCHAR(10) CHARACTER SET latin1 PRIMARY KEY, c CHAR(3), v INT);"
    "INSERT INTO t_klat VALUES ('\xe2\x82\xac', 'a', 1), ('\xc3\xa9', 'b  ', 2), ('z', 'c', 3);"
    "CREATE TABLE t_kchar (k CHAR(5) PRIMARY KEY, v INT);"
    "INSERT INTO t_kchar VALUES ('a', 1), ('a b', 2), ('\xf0\x9f\x8d\xb0', 3);"
    "CREATE TABLE `we``ird tab` (`k``ey` INT, `sp ace` VARCHAR(3), PRIMARY KEY (`k``ey`, `sp "
    "ace`));"
    "INSERT INTO `we``ird tab` VALUES (1, 'a'), (1, 'b');"
    "CREATE TABLE t_nopk (a INT, b VARCHAR(5), UNIQUE KEY (a));"
    "INSERT INTO t_nopk VALUES (1, 'x'), (NULL, 'y');";

/* ---- rig helpers -------------------------------------------------------------------- */

/* ---- value options under test ------------------------------------------------------- */

struct optset {
    const char *name;
    const char *env[5]; /* binlog-dump's environment for the same options */
    struct ms_value_opts vo;
};

static const struct optset optsets[] = {
    {"defaults", {NULL}, {MS_DEC_DECIMAL128, false, false, 0}},
    {"string/date-string/micros/+02:30",
     {"SYNC_DECIMAL_AS=string", "SYNC_DATE_AS=string", "SYNC_DATETIME_MICROS=true",
      "SYNC_SOURCE_TIMEZONE=+02:30", NULL},
     {MS_DEC_STRING, true, true, 9000}},
    {"double/-05:00",
     {"SYNC_DECIMAL_AS=double", "SYNC_SOURCE_TIMEZONE=-05:00", NULL},
     {MS_DEC_DOUBLE, false, false, -18000}},
};
#define NOPTS (sizeof(optsets) / sizeof(optsets[0]))

/* ---- the binlog's view ---------------------------------------------------------------- */

struct insert {
    char *table;
    char **pk;
    size_t npk;
    bson_t *after; /* decoded in-process: exact types (not movable: a pointer) */
};

struct fixture {
    struct ms_config cfg;
    char file[256];
    unsigned long long pos;
    struct insert *ins[NOPTS];
    size_t nins[NOPTS];
    char *dump[NOPTS]; /* binlog-dump's output */
};

static struct fixture fx;

static void load_config(struct ms_config *cfg, const char *const *extra)
{
    char port[64], user[128], pw[128];
    const char *env[16] = {port, user, pw, "MYSQL_SSL_MODE=disabled", "LOG_LEVEL=error"};
    size_t n = 5;
    struct ms_error err = {0};

    snprintf(port, sizeof(port), "MYSQL_PORT=%s", tu_rig("MS_RIG_MARIADB_PORT"));
    snprintf(user, sizeof(user), "MYSQL_USER=%s", tu_rig("MS_RIG_MYSYNC_USER"));
    snprintf(pw, sizeof(pw), "MYSQL_PASSWORD=%s", tu_rig("MS_RIG_MYSYNC_PASSWORD"));
    for (size_t i = 0; extra != NULL && extra[i] != NULL; i++) {
        env[n++] = extra[i];
    }
    env[n] = NULL;
    if (!ms_config_load(cfg, NULL, env, &err)) {
        fail_msg("config: %s", err.msg);
    }
}

/* Decodes the workload's INSERTs from the binlog as the daemon does: reader, parser, table
 * maps completed from information_schema. */
static void decode_binlog(size_t o)
{
    struct ms_reader_opts ro = {.server_id = 3999000000u + (uint32_t)getpid() % 100000,
                                .file = fx.file,
                                .pos = fx.pos,
                                .stop_at_end = true};
    struct ms_error err = {0};
    struct ms_reader *r = ms_reader_open(&fx.cfg, &ro, &err);
    struct ms_binlog_parser *p = ms_binlog_parser_new();
    struct ms_schema *sc = ms_schema_new(&fx.cfg);
    const uint8_t *buf;
    size_t len, cap = 0;
    struct ms_event ev;

    if (r == NULL) {
        fail_msg("reader: %s", err.msg);
    }
    ms_binlog_parser_expect_checksum(p, ms_reader_checksum(r));
    while (ms_reader_next(r, &buf, &len, &err)) {
        if (!ms_binlog_parse(p, buf, len, &ev, &err)) {
            fail_msg("parse: %s", err.msg);
        }
        if (ev.h.type == MS_EV_TABLE_MAP) {
            struct ms_table_map *tm = ms_binlog_parser_table_mut(p, ev.u.table_map.map->table_id);
            bool applied;
            struct ms_error serr = {0};
            if (tm != NULL && strcmp(tm->db, "it_src") == 0 &&
                !ms_schema_enrich(sc, tm, &applied, &serr)) {
                fail_msg("enrich: %s", serr.msg);
            }
        } else if (ms_binlog_is_rows_event(ev.h.type) && ev.u.rows.op == MS_ROW_INSERT &&
                   ev.u.rows.map != NULL && strcmp(ev.u.rows.map->db, "it_src") == 0) {
            const struct ms_table_map *tm = ev.u.rows.map;
            size_t off = 0;
            bson_t before, after;

            while (ms_binlog_rows_next(p, &ev, &off, &optsets[o].vo, &before, &after, &err)) {
                struct insert *in;

                if (fx.nins[o] == cap) {
                    cap = cap > 0 ? cap * 2 : 64;
                    fx.ins[o] = realloc(fx.ins[o], cap * sizeof(struct insert));
                }
                in = &fx.ins[o][fx.nins[o]++];
                in->table = strdup(tm->table);
                in->npk = tm->npk;
                in->pk = calloc(tm->npk + 1, sizeof(char *));
                for (size_t k = 0; k < tm->npk; k++) {
                    in->pk[k] = strdup(tm->cols[tm->pk[k]].name);
                }
                in->after = bson_copy(&after);
                bson_destroy(&before);
                bson_destroy(&after);
            }
            bson_destroy(&before);
            bson_destroy(&after);
            if (err.domain != MS_ERR_NONE) {
                fail_msg("rows: %s", err.msg);
            }
        }
    }
    if (err.domain != MS_ERR_NONE) {
        fail_msg("reader: %s", err.msg);
    }
    ms_schema_destroy(sc);
    ms_binlog_parser_destroy(p);
    ms_reader_close(r);
}

/* The same through `mysync binlog-dump --from-server --no-follow`, options from its env. */
static void run_binlog_dump(size_t o)
{
    char port[64], user[128], pw[128], start[300];
    const char *env[16] = {port, user, pw};
    size_t n = 3;
    struct tu_proc p;

    snprintf(port, sizeof(port), "MYSQL_PORT=%s", tu_rig("MS_RIG_MARIADB_PORT"));
    snprintf(user, sizeof(user), "MYSQL_USER=%s", tu_rig("MS_RIG_MYSYNC_USER"));
    snprintf(pw, sizeof(pw), "MYSQL_PASSWORD=%s", tu_rig("MS_RIG_MYSYNC_PASSWORD"));
    for (size_t i = 0; optsets[o].env[i] != NULL; i++) {
        env[n++] = optsets[o].env[i];
    }
    env[n] = NULL;
    snprintf(start, sizeof(start), "%s:%llu", fx.file, fx.pos);
    const char *argv[] = {getenv("MS_MYSYNC"), "binlog-dump", "--from-server", "--start", start,
                          "--no-follow",       NULL};
    assert_true(tu_run(argv, env, 120, &p));
    if (p.status != 0) {
        fail_msg("binlog-dump exit %d: %s", p.status, p.err);
    }
    fx.dump[o] = p.out;
    p.out = NULL;
    tu_proc_cleanup(&p);
}

static int setup(void **state)
{
    MYSQL *m = tu_mysql_admin(NULL);

    (void)state;
    load_config(&fx.cfg, NULL);
    tu_sql(m, "FLUSH BINARY LOGS");
    tu_master_status(m, fx.file, sizeof(fx.file), &fx.pos);
    tu_sql(m, workload);
    mysql_close(m);
    for (size_t o = 0; o < NOPTS; o++) {
        decode_binlog(o);
        run_binlog_dump(o);
    }
    return 0;
}

static int teardown(void **state)
{
    MYSQL *m = tu_mysql_admin(NULL);

    (void)state;
    tu_sql(m, "DROP DATABASE IF EXISTS it_src");
    mysql_close(m);
    for (size_t o = 0; o < NOPTS; o++) {
        for (size_t i = 0; i < fx.nins[o]; i++) {
            struct insert *in = &fx.ins[o][i];
            for (size_t k = 0; k < in->npk; k++) {
                free(in->pk[k]);
            }
            free(in->pk);
            free(in->table);
            bson_destroy(in->after);
        }
        free(fx.ins[o]);
        free(fx.dump[o]);
    }
    ms_config_cleanup(&fx.cfg);
    return 0;
}

/* ---- comparisons -------------------------------------------------------------------- */

static char *canonical(const bson_t *b)
{
    return bson_as_canonical_extended_json(b, NULL);
}

/* Fails with the first field that differs (name, and both values with their types). */
static void assert_same_bson(const bson_t *got, const bson_t *want, const char *what)
{
    bson_iter_t g, w;
    bool gn, wn;

    if (bson_equal(got, want)) {
        return;
    }
    bson_iter_init(&g, got);
    bson_iter_init(&w, want);
    for (;;) {
        gn = bson_iter_next(&g);
        wn = bson_iter_next(&w);
        if (!gn || !wn) {
            break;
        }
        bson_t gd = BSON_INITIALIZER, wd = BSON_INITIALIZER;
        bson_append_iter(&gd, NULL, -1, &g);
        bson_append_iter(&wd, NULL, -1, &w);
        if (!bson_equal(&gd, &wd)) {
            char *gs = canonical(&gd), *ws = canonical(&wd);
            print_error("%s: field differs\n  re-read: %s\n  binlog:  %s\n", what, gs, ws);
            bson_free(gs);
            bson_free(ws);
            bson_destroy(&gd);
            bson_destroy(&wd);
            fail();
        }
        bson_destroy(&gd);
        bson_destroy(&wd);
    }
    {
        char *gs = canonical(got), *ws = canonical(want);
        print_error("%s: documents differ\n  re-read: %s\n  binlog:  %s\n", what, gs, ws);
        bson_free(gs);
        bson_free(ws);
    }
    fail();
}

/* The "after" documents of binlog-dump's insert lines of it_src, in order, as the text it
 * printed (libbson's relaxed layout). Text, not parsed: libbson cannot read back its own
 * relaxed form of a Date past 9999-12-31 ("10000-01-01T04:59:59Z"). */
static size_t dump_afters(const char *out, char ***afters, char ***tables)
{
    static const char after_key[] = "\"after\" : ", table_key[] = "\"table\" : \"";
    size_t n = 0, cap = 0;
    const char *line = out;

    *afters = NULL;
    *tables = NULL;
    while (line != NULL && *line != '\0') {
        const char *nl = strchr(line, '\n');
        size_t ll = nl != NULL ? (size_t)(nl - line) : strlen(line);
        char *l = strndup(line, ll);
        char *a = strstr(l, after_key), *t = strstr(l, table_key);

        if (strstr(l, "\"db\" : \"it_src\"") != NULL && strstr(l, "\"op\" : \"insert\"") != NULL &&
            a != NULL && t != NULL && ll > 2 && strcmp(l + ll - 2, " }") == 0) {
            t += sizeof(table_key) - 1;
            a += sizeof(after_key) - 1;
            l[ll - 2] = '\0';
            if (n == cap) {
                cap = cap > 0 ? cap * 2 : 64;
                *afters = realloc(*afters, cap * sizeof(char *));
                *tables = realloc(*tables, cap * sizeof(char *));
            }
            (*afters)[n] = strdup(a);
            (*tables)[n] = strndup(t, strcspn(t, "\""));
            n++;
        }
        free(l);
        line = nl != NULL ? nl + 1 : NULL;
    }
    return n;
}

/* Every inserted row, re-read by its key, equals its binlog image under options o. */
static void every_row_as_the_binlog_has_it(size_t o)
{
    struct ms_source *src = ms_source_new(&fx.cfg, &optsets[o].vo);
    char **afters, **tables;
    size_t ndump = dump_afters(fx.dump[o], &afters, &tables);
    size_t checked = 0;

    print_message("options %s: %zu rows\n", optsets[o].name, fx.nins[o]);
    assert_true(fx.nins[o] >= 60);
    assert_int_equal(ndump, fx.nins[o]);
    for (size_t i = 0; i < fx.nins[o]; i++) {
        const struct insert *in = &fx.ins[o][i];
        bson_t id = BSON_INITIALIZER, row = BSON_INITIALIZER;
        struct ms_error err = {0};
        bool found = false;
        char what[200], *mine;

        snprintf(what, sizeof(what), "[%s] it_src.%s row %zu", optsets[o].name, in->table, i);
        if (in->npk == 0) {
            bson_destroy(&id);
            bson_destroy(&row);
            continue; /* t_nopk: keyed by sync.keys below */
        }
        if (!ms_strategy_key(in->after, (const char *const *)in->pk, in->npk, &id)) {
            fail_msg("%s: no key %s in the binlog image", what, in->pk[0]);
        }
        if (!ms_source_read_row(src, "it_src", in->table, (const char *const *)in->pk, in->npk, &id,
                                &row, &found, &err)) {
            fail_msg("%s: %s", what, err.msg);
        }
        if (!found) {
            char *ids = canonical(&id);
            fail_msg("%s: not found by %s", what, ids);
        }
        /* exact: every field, every BSON type */
        assert_same_bson(&row, in->after, what);
        /* and what binlog-dump printed for it */
        assert_string_equal(tables[i], in->table);
        mine = bson_as_relaxed_extended_json(&row, NULL);
        if (strcmp(mine, afters[i]) != 0) {
            fail_msg("%s: differs from binlog-dump\n  re-read: %s\n  dump:    %s", what, mine,
                     afters[i]);
        }
        bson_free(mine);
        bson_destroy(&id);
        bson_destroy(&row);
        checked++;
    }
    for (size_t i = 0; i < ndump; i++) {
        free(afters[i]);
        free(tables[i]);
    }
    free(afters);
    free(tables);
    print_message("options %s: %zu rows equal\n", optsets[o].name, checked);
    ms_source_destroy(src);
}

static void rows_equal_binlog_defaults(void **state)
{
    (void)state;
    every_row_as_the_binlog_has_it(0);
}

static void rows_equal_binlog_strings_micros_offset(void **state)
{
    (void)state;
    every_row_as_the_binlog_has_it(1);
}

static void rows_equal_binlog_double_negative_offset(void **state)
{
    (void)state;
    every_row_as_the_binlog_has_it(2);
}

/* ---- behaviour ---------------------------------------------------------------------- */

static bool read1(struct ms_source *src, const char *table, const char *const *pk, size_t npk,
                  const bson_t *id, bson_t *row, bool *found, struct ms_error *err)
{
    bson_reinit(row);
    memset(err, 0, sizeof(*err));
    return ms_source_read_row(src, "it_src", table, pk, npk, id, row, found, err);
}

static void missing_rows_are_not_found(void **state)
{
    struct ms_source *src = ms_source_new(&fx.cfg, &optsets[0].vo);
    const char *pk[] = {"id"}, *cpk[] = {"k`ey", "sp ace"}, *nopk[] = {"a"};
    bson_t *id, row = BSON_INITIALIZER;
    struct ms_error err;
    bool found = true;

    (void)state;
    id = BCON_NEW("_id", BCON_INT32(12345));
    assert_true(read1(src, "t_int", pk, 1, id, &row, &found, &err));
    assert_false(found);
    assert_true(bson_empty(&row));
    bson_destroy(id);

    /* a composite key in key order; then one value off */
    id = BCON_NEW("_id", "{", "k`ey", BCON_INT32(1), "sp ace", BCON_UTF8("b"), "}");
    assert_true(read1(src, "we`ird tab", cpk, 2, id, &row, &found, &err));
    assert_true(found);
    bson_destroy(id);
    id = BCON_NEW("_id", "{", "k`ey", BCON_INT32(1), "sp ace", BCON_UTF8("c"), "}");
    assert_true(read1(src, "we`ird tab", cpk, 2, id, &row, &found, &err));
    assert_false(found);
    bson_destroy(id);

    /* a BIGINT UNSIGNED key just beside a row: not a neighbour by double rounding */
    {
        bson_decimal128_t d;
        bson_t k = BSON_INITIALIZER;
        bson_decimal128_from_string("18446744073709551613", &d);
        BSON_APPEND_DECIMAL128(&k, "_id", &d);
        assert_true(read1(src, "t_kbig", (const char *[]){"k"}, 1, &k, &row, &found, &err));
        assert_false(found);
        bson_destroy(&k);
    }

    /* a table keyed by a UNIQUE column (sync.keys): NULL matches NULL */
    id = BCON_NEW("_id", BCON_NULL);
    assert_true(read1(src, "t_nopk", nopk, 1, id, &row, &found, &err));
    assert_true(found);
    {
        bson_iter_t it;
        assert_true(bson_iter_init_find(&it, &row, "b"));
        assert_string_equal(bson_iter_utf8(&it, NULL), "y");
    }
    bson_destroy(id);
    bson_destroy(&row);
    ms_source_destroy(src);
}

static void expect_error(struct ms_source *src, const char *table, const char *const *pk,
                         size_t npk, bson_t *id, uint32_t domain, const char *msg)
{
    bson_t row = BSON_INITIALIZER;
    struct ms_error err;
    bool found = true;

    if (read1(src, table, pk, npk, id, &row, &found, &err)) {
        fail_msg("%s: expected an error \"%s\"", table, msg);
    }
    if (err.domain != domain || err.retryable || strstr(err.msg, msg) == NULL) {
        fail_msg("%s: expected \"%s\" (domain %u, not retryable), got domain %u retryable %d: %s",
                 table, msg, domain, err.domain, err.retryable, err.msg);
    }
    assert_false(found);
    bson_destroy(&row);
    bson_destroy(id);
}

static void clear_errors(void **state)
{
    struct ms_source *src = ms_source_new(&fx.cfg, &optsets[0].vo);
    const char *id1[] = {"id"}, *comp[] = {"k`ey", "sp ace"};

    (void)state;
    expect_error(src, "no_such_table", id1, 1, BCON_NEW("_id", BCON_INT32(1)), 2, "no such table");
    expect_error(src, "t_int", (const char *[]){"nope"}, 1, BCON_NEW("_id", BCON_INT32(1)), 4,
                 "key column nope is not in the table");
    expect_error(src, "t_int", id1, 1, BCON_NEW("x", BCON_INT32(1)), 4, "has no _id");
    expect_error(src, "t_int", id1, 0, BCON_NEW("_id", BCON_INT32(1)), 4, "no key columns");
    expect_error(src, "we`ird tab", comp, 2, BCON_NEW("_id", BCON_INT32(1)), 4,
                 "_id is not a document");
    expect_error(src, "we`ird tab", comp, 2, BCON_NEW("_id", "{", "k`ey", BCON_INT32(1), "}"), 4,
                 "_id has 1 fields, the key has 2 columns");
    expect_error(src, "we`ird tab", comp, 2,
                 BCON_NEW("_id", "{", "k`ey", BCON_INT32(1), "other", BCON_UTF8("a"), "}"), 4,
                 "no field for key column sp ace");
    expect_error(src, "t_int", id1, 1, BCON_NEW("_id", BCON_UTF8("1")), 4,
                 "does not fit column id");
    expect_error(src, "t_kdbl", (const char *[]){"k"}, 1, BCON_NEW("_id", BCON_INT32(1)), 4,
                 "does not fit column k");
    expect_error(src, "t_kbig", (const char *[]){"k"}, 1, BCON_NEW("_id", BCON_DOUBLE(1.5)), 4,
                 "does not fit");
    expect_error(src, "t_str", (const char *[]){"js"}, 1, BCON_NEW("_id", BCON_UTF8("{}")), 4,
                 "cannot be matched");
    /* the source still works after all that */
    {
        bson_t *id = BCON_NEW("_id", BCON_INT32(1)), row = BSON_INITIALIZER;
        struct ms_error err;
        bool found = false;
        assert_true(read1(src, "t_int", id1, 1, id, &row, &found, &err));
        assert_true(found);
        bson_destroy(id);
        bson_destroy(&row);
    }
    ms_source_destroy(src);
}

/* Kills every connection of the mysync user (only the source's own is open now). */
static void kill_mysync_connections(MYSQL *m)
{
    MYSQL_RES *r;
    MYSQL_ROW row;
    char q[256];
    int killed = 0;

    snprintf(q, sizeof(q), "SELECT ID FROM information_schema.PROCESSLIST WHERE USER = '%s'",
             tu_rig("MS_RIG_MYSYNC_USER"));
    if (mysql_query(m, q) != 0 || (r = mysql_store_result(m)) == NULL) {
        fail_msg("processlist: %s", mysql_error(m));
    }
    while ((row = mysql_fetch_row(r)) != NULL) {
        snprintf(q, sizeof(q), "KILL %s", row[0]);
        if (mysql_query(m, q) == 0) {
            killed++;
        }
    }
    mysql_free_result(r);
    assert_true(killed >= 1);
    usleep(200000);
}

static void lost_connection_is_retryable_then_reconnects(void **state)
{
    struct ms_source *src = ms_source_new(&fx.cfg, &optsets[0].vo);
    const char *pk[] = {"id"};
    bson_t *id = BCON_NEW("_id", BCON_INT32(2)), row = BSON_INITIALIZER, first;
    struct ms_error err;
    bool found = false;
    MYSQL *m = tu_mysql_admin(NULL);

    (void)state;
    assert_true(read1(src, "t_str", pk, 1, id, &row, &found, &err) && found);
    bson_copy_to(&row, &first);
    for (int round = 0; round < 2; round++) {
        kill_mysync_connections(m);
        if (read1(src, "t_str", pk, 1, id, &row, &found, &err)) {
            fail_msg("read after KILL succeeded");
        }
        if (!err.retryable || err.domain != MS_ERR_MYSQL) {
            fail_msg("after KILL: domain %u retryable %d: %s", err.domain, err.retryable, err.msg);
        }
        print_message("after KILL: %s\n", err.msg);
        assert_true(read1(src, "t_str", pk, 1, id, &row, &found, &err));
        assert_true(found);
        assert_same_bson(&row, &first, "re-read after reconnecting");
    }
    /* a connection lost before the statement is prepared (lazy first read of a table) */
    kill_mysync_connections(m);
    {
        bson_t *k = BCON_NEW("_id", BCON_INT32(1));
        bool ok = read1(src, "t_time", pk, 1, k, &row, &found, &err);
        if (!ok) {
            assert_true(err.retryable);
            ok = read1(src, "t_time", pk, 1, k, &row, &found, &err);
        }
        assert_true(ok && found);
        bson_destroy(k);
    }
    bson_destroy(&first);
    bson_destroy(&row);
    bson_destroy(id);
    mysql_close(m);
    ms_source_destroy(src);
}

static void ddl_and_invalidation(void **state)
{
    struct ms_source *src = ms_source_new(&fx.cfg, &optsets[0].vo);
    const char *pk[] = {"id"};
    bson_t *id = BCON_NEW("_id", BCON_INT32(1)), row = BSON_INITIALIZER;
    struct ms_error err;
    bool found = false;
    bson_iter_t it;
    MYSQL *m = tu_mysql_admin(NULL);

    (void)state;
    tu_sql(m, "CREATE TABLE it_src.t_ddl (id INT PRIMARY KEY, a INT)");
    tu_sql(m, "INSERT INTO it_src.t_ddl VALUES (1, 10)");
    assert_true(read1(src, "t_ddl", pk, 1, id, &row, &found, &err) && found);
    assert_false(bson_iter_init_find(&it, &row, "b"));

    tu_sql(m, "ALTER TABLE it_src.t_ddl ADD COLUMN b VARCHAR(5) DEFAULT 'new'");
    ms_source_invalidate(src, "it_src", "t_ddl");
    assert_true(read1(src, "t_ddl", pk, 1, id, &row, &found, &err) && found);
    assert_true(bson_iter_init_find(&it, &row, "b"));
    assert_string_equal(bson_iter_utf8(&it, NULL), "new");

    /* a column dropped and no invalidation: the statement fails, the definition is read
     * again, the read goes on */
    tu_sql(m, "ALTER TABLE it_src.t_ddl DROP COLUMN a");
    if (!read1(src, "t_ddl", pk, 1, id, &row, &found, &err)) {
        fail_msg("after DROP COLUMN: %s", err.msg);
    }
    assert_true(found);
    assert_false(bson_iter_init_find(&it, &row, "a"));

    /* invalidating everything, and a table dropped since */
    ms_source_invalidate(src, NULL, NULL);
    tu_sql(m, "DROP TABLE it_src.t_ddl");
    assert_false(read1(src, "t_ddl", pk, 1, id, &row, &found, &err));
    assert_false(err.retryable);
    assert_non_null(strstr(err.msg, "no such table"));
    ms_source_invalidate(src, "it_src", NULL);

    bson_destroy(&row);
    bson_destroy(id);
    mysql_close(m);
    ms_source_destroy(src);
}

/* ENUM/SET labels of a latin1 column come out as UTF-8, from information_schema here and from
 * the table map's metadata (binlog_row_metadata=FULL: labels in the column's charset) in the
 * binlog. */
static void latin1_labels_are_utf8(void **state)
{
    struct ms_source *src = ms_source_new(&fx.cfg, &optsets[0].vo);
    const char *pk[] = {"id"};
    bson_t *id = BCON_NEW("_id", BCON_INT32(1)), row = BSON_INITIALIZER;
    bson_t *want = BCON_NEW("id", BCON_INT32(1), "e", BCON_UTF8("\xc3\xa9t\xc3\xa9"), "s", "[",
                            BCON_UTF8("\xc3\xa0"), BCON_UTF8("\xe2\x82\xac"), "]");
    struct ms_error err;
    bool found = false;
    MYSQL *m = tu_mysql_admin(NULL);

    (void)state;
    tu_sql(m, "CREATE TABLE it_src.t_lenum (id INT PRIMARY KEY, e ENUM('\xc3\xa9t\xc3\xa9', 'b'),"
              " s SET('\xc3\xa0', '\xe2\x82\xac', 'z')) DEFAULT CHARSET latin1");
    {
        char file[256], start[300], port[64], user[128], pw[128];
        unsigned long long pos;
        const char *env[] = {port, user, pw, NULL};
        struct tu_proc p;
        tu_master_status(m, file, sizeof(file), &pos);
        tu_sql(m, "INSERT INTO it_src.t_lenum VALUES (1, '\xc3\xa9t\xc3\xa9', "
                  "'\xc3\xa0,\xe2\x82\xac')");
        snprintf(port, sizeof(port), "MYSQL_PORT=%s", tu_rig("MS_RIG_MARIADB_PORT"));
        snprintf(user, sizeof(user), "MYSQL_USER=%s", tu_rig("MS_RIG_MYSYNC_USER"));
        snprintf(pw, sizeof(pw), "MYSQL_PASSWORD=%s", tu_rig("MS_RIG_MYSYNC_PASSWORD"));
        snprintf(start, sizeof(start), "%s:%llu", file, pos);
        const char *argv[] = {getenv("MS_MYSYNC"), "binlog-dump", "--from-server", "--start", start,
                              "--no-follow",       NULL};
        assert_true(tu_run(argv, env, 120, &p));
        assert_int_equal(p.status, 0);
        if (strstr(p.out, "\"e\" : \"\xc3\xa9t\xc3\xa9\", \"s\" : [ \"\xc3\xa0\", "
                          "\"\xe2\x82\xac\" ]") == NULL) {
            fail_msg("binlog labels not UTF-8: %s", p.out);
        }
        tu_proc_cleanup(&p);
    }
    assert_true(read1(src, "t_lenum", pk, 1, id, &row, &found, &err) && found);
    assert_same_bson(&row, want, "latin1 ENUM/SET labels");
    bson_destroy(want);
    /* and as keys */
    want = BCON_NEW("_id", "{", "e", BCON_UTF8("\xc3\xa9t\xc3\xa9"), "s", "[",
                    BCON_UTF8("\xc3\xa0"), BCON_UTF8("\xe2\x82\xac"), "]", "}");
    assert_true(read1(src, "t_lenum", (const char *[]){"e", "s"}, 2, want, &row, &found, &err));
    assert_true(found);
    bson_destroy(want);
    bson_destroy(&row);
    bson_destroy(id);
    mysql_close(m);
    ms_source_destroy(src);
}

/* ---- ms_source_read_rows ------------------------------------------------------------- */

static const char children[] =
    "CREATE TABLE it_src.t_child (id INT PRIMARY KEY, parent BIGINT UNSIGNED, name VARCHAR(20),"
    " at DATETIME(6), amount DECIMAL(10,2), note MEDIUMTEXT, KEY (parent), KEY (name));"
    "INSERT INTO it_src.t_child VALUES"
    " (5, 18446744073709551615, 'b', '2024-01-01 00:00:00.123', 5.50, 'five'),"
    " (9, 18446744073709551615, 'a', '2024-01-02 00:00:00', NULL, 'nine'),"
    " (2, 18446744073709551615, 'a', '2024-01-01 00:00:00.123', 2.00, NULL),"
    " (1, 7, 'a', '2024-01-01 00:00:00.123', 1.00, REPEAT('long', 100000)),"
    " (3, 7, 'caf\xc3\xa9', NULL, 3.00, 'three'),"
    " (4, NULL, NULL, NULL, 4.00, 'four'),"
    " (6, 9223372036854775808, 'a\xc3\xa9', '2024-01-01 00:00:00.1234', 6.00, 'six');"
    /* the primary key's order is not the columns' */
    "CREATE TABLE it_src.t_child2 (a INT, b INT, g INT, s VARCHAR(5), PRIMARY KEY (b, a));"
    "INSERT INTO it_src.t_child2 VALUES (1, 2, 1, 'x'), (2, 1, 1, 'y'), (3, 1, 1, 'z'),"
    " (0, 3, 1, 'w'), (9, 9, 2, 'v');";

/* The value of column col of the row of table with the one-column key id = key, as read_row
 * reads it (so under the source's options: the decoder's own form of the value). */
static bson_value_t value_of(struct ms_source *src, const char *table, int32_t key, const char *col)
{
    bson_t *id = BCON_NEW("_id", BCON_INT32(key)), row = BSON_INITIALIZER;
    struct ms_error err = {0};
    bson_value_t v;
    bson_iter_t it;
    bool found = false;

    if (!ms_source_read_row(src, "it_src", table, (const char *[]){"id"}, 1, id, &row, &found,
                            &err) ||
        !found) {
        fail_msg("%s %d: %s", table, key, err.msg);
    }
    assert_true(bson_iter_init_find(&it, &row, col));
    bson_value_copy(bson_iter_value(&it), &v);
    bson_destroy(&row);
    bson_destroy(id);
    return v;
}

/* Reads the rows of table by col = v (limit) and checks them: in order, the rows whose key
 * columns pk (values int32) are want ("2,5,9" for one key column, "1:2,..." for two), each
 * exactly what read_row gives for its key; appended after what rows already held. */
static void expect_rows(struct ms_source *src, const char *table, const char *const *pk, size_t npk,
                        const char *col, const bson_value_t *v, size_t limit, const char *want)
{
    bson_t rows = BSON_INITIALIZER, *pre = BCON_NEW("0", "{", "before", BCON_BOOL(true), "}");
    struct ms_error err = {0};
    char got[256] = "", what[160];
    size_t n = 99, i = 0;
    bson_iter_t it, r;

    snprintf(what, sizeof(what), "%s by %s (limit %zu)", table, col, limit);
    bson_concat(&rows, pre);
    if (!ms_source_read_rows(src, "it_src", table, col, v, limit, &rows, &n, &err)) {
        fail_msg("%s: %s", what, err.msg);
    }
    assert_int_equal(bson_count_keys(&rows), n + 1);
    assert_true(bson_iter_init(&it, &rows));
    while (bson_iter_next(&it)) {
        char key[24], part[48];
        bson_t row, id = BSON_INITIALIZER, again = BSON_INITIALIZER;
        uint32_t len;
        const uint8_t *data;
        bool found = false;

        snprintf(key, sizeof(key), "%zu", i);
        assert_string_equal(bson_iter_key(&it), key);
        assert_true(BSON_ITER_HOLDS_DOCUMENT(&it));
        bson_iter_document(&it, &len, &data);
        assert_true(bson_init_static(&row, data, len));
        if (i++ == 0) {
            assert_true(bson_iter_init_find(&r, &row, "before")); /* kept, not renumbered */
            continue;
        }
        part[0] = '\0';
        for (size_t k = 0; k < npk; k++) {
            char one[16];
            assert_true(bson_iter_init_find(&r, &row, pk[k]));
            snprintf(one, sizeof(one), "%s%d", k > 0 ? ":" : "", bson_iter_int32(&r));
            strncat(part, one, sizeof(part) - strlen(part) - 1);
        }
        if (got[0] != '\0') {
            strncat(got, ",", sizeof(got) - strlen(got) - 1);
        }
        strncat(got, part, sizeof(got) - strlen(got) - 1);
        /* the same row by its key */
        assert_true(ms_strategy_key(&row, pk, npk, &id));
        if (!ms_source_read_row(src, "it_src", table, pk, npk, &id, &again, &found, &err) ||
            !found) {
            fail_msg("%s: row %s by key: %s", what, part, err.msg);
        }
        assert_same_bson(&row, &again, what);
        bson_destroy(&id);
        bson_destroy(&again);
    }
    if (strcmp(got, want) != 0) {
        fail_msg("%s: rows %s, expected %s", what, got, want);
    }
    print_message("%s: %s\n", what, got[0] != '\0' ? got : "(none)");
    bson_destroy(&rows);
    bson_destroy(pre);
}

static void read_rows_by_column(void **state)
{
    const char *id[] = {"id"}, *ba[] = {"b", "a"};
    MYSQL *m = tu_mysql_admin(NULL);

    (void)state;
    tu_sql(m, children);
    for (size_t o = 0; o < NOPTS; o++) {
        struct ms_source *src = ms_source_new(&fx.cfg, &optsets[o].vo);
        bson_value_t big = value_of(src, "t_child", 5, "parent");
        bson_value_t seven = value_of(src, "t_child", 1, "parent");
        bson_value_t a = value_of(src, "t_child", 1, "name");
        bson_value_t cafe = value_of(src, "t_child", 3, "name");
        bson_value_t at = value_of(src, "t_child", 1, "at");
        bson_value_t amount = value_of(src, "t_child", 3, "amount");
        bson_value_t half = value_of(src, "t_child", 6, "parent");
        bson_value_t eight = {.value_type = BSON_TYPE_INT64, .value.v_int64 = 8};
        bson_value_t g1 = {.value_type = BSON_TYPE_INT32, .value.v_int32 = 1};

        print_message("options %s\n", optsets[o].name);
        /* BIGINT UNSIGNED above 2^63 (Decimal128), 2^63 itself, and a small one (int64) */
        assert_int_equal(big.value_type, BSON_TYPE_DECIMAL128);
        expect_rows(src, "t_child", id, 1, "parent", &big, 10, "2,5,9");
        expect_rows(src, "t_child", id, 1, "parent", &half, 10, "6");
        expect_rows(src, "t_child", id, 1, "parent", &seven, 10, "1,3");
        /* VARCHAR (a collation: 'a' is not 'aé'), with a long TEXT in one of the rows */
        expect_rows(src, "t_child", id, 1, "name", &a, 3, "1,2,9");
        expect_rows(src, "t_child", id, 1, "name", &cafe, 3, "3");
        /* DATETIME(6) as a Date (milliseconds: 6's .1234 shares the Date of the others' .123),
         * or exactly, as text, under datetime_micros */
        expect_rows(src, "t_child", id, 1, "at", &at, 10,
                    at.value_type == BSON_TYPE_DATE_TIME ? "1,2,5,6" : "1,2,5");
        /* DECIMAL as each option writes it: Decimal128, text, double */
        expect_rows(src, "t_child", id, 1, "amount", &amount, 10, "3");
        /* no row */
        expect_rows(src, "t_child", id, 1, "parent", &eight, 10, "");
        /* a composite primary key (b, a): rows in that order */
        expect_rows(src, "t_child2", ba, 2, "g", &g1, 10, "1:2,1:3,2:1,3:0");
        bson_value_destroy(&big);
        bson_value_destroy(&seven);
        bson_value_destroy(&a);
        bson_value_destroy(&cafe);
        bson_value_destroy(&at);
        bson_value_destroy(&amount);
        bson_value_destroy(&half);
        ms_source_destroy(src);
    }
    mysql_close(m);
}

static void read_rows_limits_nulls_errors(void **state)
{
    struct ms_source *src = ms_source_new(&fx.cfg, &optsets[0].vo);
    bson_t *pre = BCON_NEW("0", "{", "x", BCON_INT32(1), "}"), rows;
    bson_value_t a = {.value_type = BSON_TYPE_UTF8}, null = {.value_type = BSON_TYPE_NULL};
    bson_value_t one = {.value_type = BSON_TYPE_INT32, .value.v_int32 = 1};
    struct ms_error err;
    size_t n;

    (void)state;
    a.value.v_utf8.str = (char *)"a";
    a.value.v_utf8.len = 1;

    /* more rows than the limit: an error, and rows as it was */
    bson_copy_to(pre, &rows);
    memset(&err, 0, sizeof(err));
    n = 99;
    assert_false(ms_source_read_rows(src, "it_src", "t_child", "name", &a, 2, &rows, &n, &err));
    assert_int_equal(err.domain, MS_ERR_DECODE);
    assert_int_equal(err.code, MS_DECODE_SCHEMA);
    assert_false(err.retryable);
    assert_non_null(strstr(err.msg, "more than 2 rows"));
    assert_int_equal(n, 0);
    assert_true(bson_equal(&rows, pre));
    print_message("limit exceeded: %s\n", err.msg);
    /* limit 0: any row is too many; exactly the limit is fine; the connection goes on */
    assert_false(ms_source_read_rows(src, "it_src", "t_child", "name", &a, 0, &rows, &n, &err));
    assert_true(bson_equal(&rows, pre));
    assert_true(ms_source_read_rows(src, "it_src", "t_child", "name", &a, 3, &rows, &n, &err));
    assert_int_equal(n, 3);
    assert_int_equal(bson_count_keys(&rows), 4);
    bson_destroy(&rows);

    /* a null value matches no row, even in a column holding NULLs */
    bson_copy_to(pre, &rows);
    n = 99;
    assert_true(ms_source_read_rows(src, "it_src", "t_child", "parent", &null, 5, &rows, &n, &err));
    assert_int_equal(n, 0);
    assert_true(bson_equal(&rows, pre));

    /* a table without a primary key: no ORDER BY */
    assert_true(ms_source_read_rows(src, "it_src", "t_nopk", "a", &one, 5, &rows, &n, &err));
    assert_int_equal(n, 1);
    bson_destroy(&rows);

    /* errors say what is wrong, and leave rows alone */
    bson_copy_to(pre, &rows);
    assert_false(ms_source_read_rows(src, "it_src", "no_such", "a", &one, 5, &rows, &n, &err));
    assert_int_equal(err.domain, MS_ERR_MYSQL);
    assert_int_equal(err.code, ER_NO_SUCH_TABLE);
    assert_false(ms_source_read_rows(src, "it_src", "t_child", "nope", &one, 5, &rows, &n, &err));
    assert_int_equal(err.code, MS_DECODE_SCHEMA);
    assert_non_null(strstr(err.msg, "lookup column nope is not in the table"));
    assert_false(ms_source_read_rows(src, "it_src", "t_child", "name", &one, 5, &rows, &n, &err));
    assert_int_equal(err.code, MS_DECODE_SCHEMA);
    assert_non_null(strstr(err.msg, "does not fit column name"));
    assert_false(ms_source_read_rows(src, "it_src", "t_str", "js", &a, 5, &rows, &n, &err));
    assert_int_equal(err.code, MS_DECODE_UNSUPPORTED);
    assert_false(ms_source_read_rows(src, "it_src", "t_child", NULL, &a, 5, &rows, &n, &err));
    assert_false(ms_source_read_rows(src, "it_src", "t_child", "name", NULL, 5, &rows, &n, &err));
    assert_true(bson_equal(&rows, pre));
    bson_destroy(&rows);
    bson_destroy(pre);
    ms_source_destroy(src);
}

static void read_rows_after_ddl(void **state)
{
    struct ms_source *src = ms_source_new(&fx.cfg, &optsets[0].vo);
    bson_value_t g = {.value_type = BSON_TYPE_INT32, .value.v_int32 = 2};
    bson_t rows = BSON_INITIALIZER;
    struct ms_error err = {0};
    bson_iter_t it;
    size_t n;
    MYSQL *m = tu_mysql_admin(NULL);

    (void)state;
    tu_sql(m, "CREATE TABLE it_src.t_ddl2 (id INT PRIMARY KEY, g INT, a INT);"
              "INSERT INTO it_src.t_ddl2 VALUES (2, 2, 20), (1, 2, 10), (3, 3, 30)");
    assert_true(ms_source_read_rows(src, "it_src", "t_ddl2", "g", &g, 5, &rows, &n, &err));
    assert_int_equal(n, 2);
    assert_true(bson_iter_init(&it, &rows) && bson_iter_find_descendant(&it, "0.id", &it));
    assert_int_equal(bson_iter_int32(&it), 1);
    assert_false(bson_iter_init(&it, &rows) && bson_iter_find_descendant(&it, "0.b", &it));

    /* a new column, then invalidation: it appears */
    tu_sql(m, "ALTER TABLE it_src.t_ddl2 ADD COLUMN b VARCHAR(5) DEFAULT 'new'");
    ms_source_invalidate(src, "it_src", "t_ddl2");
    bson_reinit(&rows);
    assert_true(ms_source_read_rows(src, "it_src", "t_ddl2", "g", &g, 5, &rows, &n, &err));
    assert_int_equal(n, 2);
    assert_true(bson_iter_init(&it, &rows) && bson_iter_find_descendant(&it, "1.b", &it));
    assert_string_equal(bson_iter_utf8(&it, NULL), "new");

    /* a column dropped and no invalidation: the statement fails, is prepared again, goes on */
    tu_sql(m, "ALTER TABLE it_src.t_ddl2 DROP COLUMN a");
    bson_reinit(&rows);
    if (!ms_source_read_rows(src, "it_src", "t_ddl2", "g", &g, 5, &rows, &n, &err)) {
        fail_msg("after DROP COLUMN: %s", err.msg);
    }
    assert_int_equal(n, 2);
    assert_false(bson_iter_init(&it, &rows) && bson_iter_find_descendant(&it, "0.a", &it));

    /* the primary key changed: the order follows once invalidated */
    tu_sql(m, "ALTER TABLE it_src.t_ddl2 DROP PRIMARY KEY, ADD PRIMARY KEY (b, id);"
              "UPDATE it_src.t_ddl2 SET b = 'a' WHERE id = 2");
    ms_source_invalidate(src, "it_src", NULL);
    bson_reinit(&rows);
    assert_true(ms_source_read_rows(src, "it_src", "t_ddl2", "g", &g, 5, &rows, &n, &err));
    assert_true(bson_iter_init(&it, &rows) && bson_iter_find_descendant(&it, "0.id", &it));
    assert_int_equal(bson_iter_int32(&it), 2);

    /* a lost connection: retryable, then reconnected */
    kill_mysync_connections(m);
    bson_reinit(&rows);
    if (ms_source_read_rows(src, "it_src", "t_ddl2", "g", &g, 5, &rows, &n, &err)) {
        fail_msg("read_rows after KILL succeeded");
    }
    assert_true(err.retryable);
    assert_true(bson_empty(&rows));
    assert_true(ms_source_read_rows(src, "it_src", "t_ddl2", "g", &g, 5, &rows, &n, &err));
    assert_int_equal(n, 2);
    bson_destroy(&rows);
    mysql_close(m);
    ms_source_destroy(src);
}

/* Keyset scans (snapshots, backfill, verify) of values longer than the fetch buffers: each
 * row's long value is fetched again into a larger buffer, and the next rows of the same chunk
 * must be fetched into that one (the scan used to move the re-read statement's binding instead
 * of its own: a NULL dereference, or a freed buffer under the next row). */
struct scanned {
    size_t n;
    bool ok;
    char why[200];
};

static bool check_scanned(void *arg, const bson_t *row, struct ms_error *err)
{
    struct scanned *sc = arg;
    bson_iter_t it;
    int32_t id, len;
    const char *v;
    uint32_t vlen;

    (void)err;
    if (row == NULL || !bson_iter_init_find(&it, row, "id") || !BSON_ITER_HOLDS_INT32(&it)) {
        snprintf(sc->why, sizeof(sc->why), "row %zu: no id", sc->n);
        sc->ok = false;
        return true;
    }
    id = bson_iter_int32(&it);
    if (!bson_iter_init_find(&it, row, "len") || !BSON_ITER_HOLDS_INT32(&it)) {
        snprintf(sc->why, sizeof(sc->why), "row %d: no len", id);
        sc->ok = false;
        return true;
    }
    len = bson_iter_int32(&it);
    if (!bson_iter_init_find(&it, row, "s") || !BSON_ITER_HOLDS_UTF8(&it)) {
        snprintf(sc->why, sizeof(sc->why), "row %d: s is not a string", id);
        sc->ok = false;
        return true;
    }
    v = bson_iter_utf8(&it, &vlen);
    for (uint32_t i = 0; i < vlen && vlen == (uint32_t)len; i++) {
        if (v[i] != (char)('a' + id % 26)) {
            vlen = 0;
        }
    }
    if (vlen != (uint32_t)len) {
        snprintf(sc->why, sizeof(sc->why), "row %d: s is not %d x '%c'", id, len,
                 'a' + id % 26);
        sc->ok = false;
    }
    sc->n++;
    return true;
}

static void scan_long_values(void **state)
{
    static const int lens[] = {10, 300, 5, 5000, 252, 253, 2 << 20, 7, 300, 70000, 0, 1};
    const size_t nrows = sizeof(lens) / sizeof(lens[0]);
    struct ms_source *src = ms_source_new(&fx.cfg, &optsets[0].vo);
    const char *order[] = {"id"};
    MYSQL *m = tu_mysql_admin(NULL);
    struct ms_error err = {0};

    (void)state;
    tu_sql(m, "DROP TABLE IF EXISTS it_src.t_long; CREATE TABLE it_src.t_long (id INT PRIMARY "
              "KEY, s LONGTEXT, len INT)");
    for (size_t i = 0; i < nrows; i++) {
        char q[200];
        snprintf(q, sizeof(q), "INSERT INTO it_src.t_long VALUES (%zu, REPEAT('%c', %d), %d)", i,
                 (char)('a' + i % 26), lens[i], lens[i]);
        tu_sql(m, q);
    }
    /* one chunk with every row, then chunks of 3 (a scan's buffers given back in between) */
    for (size_t limit = nrows + 1; limit > 0; limit = limit == nrows + 1 ? 3 : 0) {
        struct ms_scan *sc = ms_scan_new(src, "it_src", "t_long", order, 1, NULL);
        struct scanned got = {.ok = true};
        size_t n;
        do {
            n = 0;
            if (!ms_scan_chunk(sc, limit, check_scanned, &got, &n, &err)) {
                fail_msg("scan: %s", err.msg);
            }
        } while (n == limit);
        if (!got.ok) {
            fail_msg("chunks of %zu: %s", limit, got.why);
        }
        assert_int_equal(got.n, nrows);
        ms_scan_destroy(sc);
    }
    mysql_close(m);
    ms_source_destroy(src);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(rows_equal_binlog_defaults),
        cmocka_unit_test(rows_equal_binlog_strings_micros_offset),
        cmocka_unit_test(rows_equal_binlog_double_negative_offset),
        cmocka_unit_test(missing_rows_are_not_found),
        cmocka_unit_test(clear_errors),
        cmocka_unit_test(lost_connection_is_retryable_then_reconnects),
        cmocka_unit_test(ddl_and_invalidation),
        cmocka_unit_test(latin1_labels_are_utf8),
        cmocka_unit_test(read_rows_by_column),
        cmocka_unit_test(read_rows_limits_nulls_errors),
        cmocka_unit_test(read_rows_after_ddl),
        cmocka_unit_test(scan_long_values),
    };

    return tu_finish(cmocka_run_group_tests(tests, setup, teardown));
}

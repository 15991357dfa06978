/* Mapping options: the generic strategy shaped by a `tables:` entry (collection, include,
 * exclude, rename with nesting, json, pii), the customers strategy, and the pii actions with
 * their HMAC-SHA256 vectors. Cases are data: a configuration entry and a change in, the
 * operations out as text (one per line: KIND collection id [doc]), or "ERROR: text" (the change
 * is refused) or "INIT: text" (the configuration is refused). Configurations are built here as
 * structs, not parsed from YAML. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mysync/strategy.h"

#define STRS(...)                                                                                  \
    {                                                                                              \
        (char *[]){__VA_ARGS__}, sizeof((char *[]){__VA_ARGS__}) / sizeof(char *)                  \
    }
#define KVS(...)                                                                                   \
    {                                                                                              \
        (struct ms_kv[]){__VA_ARGS__},                                                             \
            sizeof((struct ms_kv[]){__VA_ARGS__}) / sizeof(struct ms_kv)                           \
    }

static const char *const kinds[] = {"?",      "REPLACE",  "SET",    "DELETE",
                                    "REREAD", "SET_MANY", "RESOLVE"};

struct map_case {
    const char *name;
    struct ms_table_cfg t; /* t.strategy NULL: generic; t.name: the table */
    const char *pii_key;   /* sync.pii_key */
    const char *sync_key;  /* one sync.keys entry */
    enum ms_change_op op;
    const char *before, *after; /* JSON or NULL */
    bool complete, reread;
    const char *expect; /* ops, one per line; "ERROR: text" (map/validate); "INIT: text" */
};

/* ---- generic -------------------------------------------------------------------------- */

#define ROW3     "{\"id\": 1, \"a\": 2, \"b\": 3}"
#define ADDR_ROW "{\"id\": 1, \"line1\": \"1 Main St\", \"zip\": \"75001\", \"city\": \"Paris\"}"
#define ADDR_DOC                                                                                   \
    "{ \"_id\" : 1, \"id\" : 1, \"address\" : { \"line1\" : \"1 Main St\", \"city\" : \"Paris\" "  \
    "}, \"zip\" : \"75001\" }"
#define ADDR_RENAME KVS({"line1", "address.line1"}, {"city", "address.city"})
/* HMAC-SHA256 under "k" (checked with Python's hmac) */
#define H_EMAIL  "61c076494f281890668a904c22bcd1210afa4901d69b6d3e789de05cf267a731"
#define H_42     "7955074f51169f1f64053d8b2c403d7f41ee7ca4f3f9fe1c7b84f91083f2c50a"
#define H_DOC_A1 "08884b9e8ebe309c1a9d720f8a523f76c47fe2f118849aace71c3a683386cc11"

static const struct map_case generic_cases[] = {
    {.name = "entry with a collection only: the row as it is",
     .t = {.name = "t", .collection = "people"},
     .op = MS_CHANGE_INSERT,
     .after = ROW3,
     .complete = true,
     .expect =
         "REPLACE people { \"_id\" : 1 } { \"_id\" : 1, \"id\" : 1, \"a\" : 2, \"b\" : 3 }\n"},
    {.name = "include: only these columns (the key stays in _id)",
     .t = {.name = "t", .include = STRS("a")},
     .op = MS_CHANGE_INSERT,
     .after = ROW3,
     .complete = true,
     .expect = "REPLACE t { \"_id\" : 1 } { \"_id\" : 1, \"a\" : 2 }\n"},
    {.name = "exclude: all but these",
     .t = {.name = "t", .exclude = STRS("b")},
     .op = MS_CHANGE_INSERT,
     .after = ROW3,
     .complete = true,
     .expect = "REPLACE t { \"_id\" : 1 } { \"_id\" : 1, \"id\" : 1, \"a\" : 2 }\n"},
    {.name = "rename to a top-level field, key column too",
     .t = {.name = "t", .rename = KVS({"a", "alpha"}, {"id", "code"})},
     .op = MS_CHANGE_INSERT,
     .after = ROW3,
     .complete = true,
     .expect =
         "REPLACE t { \"_id\" : 1 } { \"_id\" : 1, \"code\" : 1, \"alpha\" : 2, \"b\" : 3 }\n"},
    {.name = "dotted renames nest, in column order, where the first one is",
     .t = {.name = "t", .rename = ADDR_RENAME},
     .op = MS_CHANGE_INSERT,
     .after = ADDR_ROW,
     .complete = true,
     .expect = "REPLACE t { \"_id\" : 1 } " ADDR_DOC "\n"},
    {.name = "subdocument in column order, not the rename list's",
     .t = {.name = "t", .rename = KVS({"city", "address.city"}, {"line1", "address.line1"})},
     .op = MS_CHANGE_INSERT,
     .after = ADDR_ROW,
     .complete = true,
     .expect = "REPLACE t { \"_id\" : 1 } " ADDR_DOC "\n"},
    {.name = "deeper nesting",
     .t = {.name = "t", .rename = KVS({"a", "x.y.p"}, {"b", "x.q"}, {"c", "x.y.r"})},
     .op = MS_CHANGE_INSERT,
     .after = "{\"id\": 1, \"a\": 1, \"b\": 2, \"c\": 3}",
     .complete = true,
     .expect =
         "REPLACE t { \"_id\" : 1 } { \"_id\" : 1, \"id\" : 1, \"x\" : { \"y\" : { \"p\" : 1, "
         "\"r\" : 3 }, \"q\" : 2 } }\n"},
    {.name = "an excluded column leaves its subdocument",
     .t = {.name = "t", .rename = ADDR_RENAME, .exclude = STRS("city")},
     .op = MS_CHANGE_INSERT,
     .after = ADDR_ROW,
     .complete = true,
     .expect = "REPLACE t { \"_id\" : 1 } { \"_id\" : 1, \"id\" : 1, \"address\" : { \"line1\" : "
               "\"1 Main St\" }, \"zip\" : \"75001\" }\n"},
    {.name = "a column keeping its name where a rename nests is refused",
     .t = {.name = "t", .rename = KVS({"city", "address.city"})},
     .op = MS_CHANGE_INSERT,
     .after = "{\"id\": 1, \"address\": \"x\", \"city\": \"Paris\"}",
     .complete = true,
     .expect = "ERROR: d.t at f:1: column address and the rename of column city give the same "
               "field"},
    {.name = "a column keeping its name where a rename goes is refused",
     .t = {.name = "t", .rename = KVS({"a", "b"})},
     .op = MS_CHANGE_INSERT,
     .after = ROW3,
     .complete = true,
     .expect = "ERROR: column b and the rename of column a give the same field"},
    {.name = "no clash when that column is excluded",
     .t = {.name = "t", .rename = KVS({"a", "b"}), .exclude = STRS("b")},
     .op = MS_CHANGE_INSERT,
     .after = ROW3,
     .complete = true,
     .expect = "REPLACE t { \"_id\" : 1 } { \"_id\" : 1, \"id\" : 1, \"b\" : 2 }\n"},
    {.name = "json: text parsed into a document",
     .t = {.name = "t", .json = STRS("attrs")},
     .op = MS_CHANGE_INSERT,
     .after = "{\"id\": 1, \"attrs\": \"{\\\"color\\\": \\\"red\\\", \\\"sizes\\\": [1, 2]}\"}",
     .complete = true,
     .expect = "REPLACE t { \"_id\" : 1 } { \"_id\" : 1, \"id\" : 1, \"attrs\" : { \"color\" : "
               "\"red\", \"sizes\" : [ 1, 2 ] } }\n"},
    {.name = "json: scalars and arrays",
     .t = {.name = "t", .json = STRS("n", "l", "s")},
     .op = MS_CHANGE_INSERT,
     .after = "{\"id\": 1, \"n\": \"42\", \"l\": \"[1, \\\"a\\\"]\", \"s\": \"\\\"x\\\"\"}",
     .complete = true,
     .expect = "REPLACE t { \"_id\" : 1 } { \"_id\" : 1, \"id\" : 1, \"n\" : 42, \"l\" : [ 1, "
               "\"a\" ], \"s\" : \"x\" }\n"},
    {.name = "json: a native JSON value passes, null stays null",
     .t = {.name = "t", .json = STRS("attrs", "more")},
     .op = MS_CHANGE_INSERT,
     .after = "{\"id\": 1, \"attrs\": {\"a\": 1}, \"more\": null}",
     .complete = true,
     .expect = "REPLACE t { \"_id\" : 1 } { \"_id\" : 1, \"id\" : 1, \"attrs\" : { \"a\" : 1 }, "
               "\"more\" : null }\n"},
    {.name = "json: text that is not JSON is refused",
     .t = {.name = "t", .json = STRS("attrs")},
     .op = MS_CHANGE_INSERT,
     .after = "{\"id\": 1, \"attrs\": \"{not json\"}",
     .complete = true,
     .expect = "ERROR: d.t at f:1: column attrs"},
    {.name = "json: two values are not one JSON text",
     .t = {.name = "t", .json = STRS("attrs")},
     .op = MS_CHANGE_INSERT,
     .after = "{\"id\": 1, \"attrs\": \"1, \\\"x\\\": 2\"}",
     .complete = true,
     .expect = "ERROR: d.t at f:1: column attrs"},
    {.name = "json into a nested field",
     .t = {.name = "t", .json = STRS("attrs"), .rename = KVS({"attrs", "meta.attrs"})},
     .op = MS_CHANGE_INSERT,
     .after = "{\"id\": 1, \"attrs\": \"[true]\"}",
     .complete = true,
     .expect = "REPLACE t { \"_id\" : 1 } { \"_id\" : 1, \"id\" : 1, \"meta\" : { \"attrs\" : [ "
               "true ] } }\n"},
    {.name = "pii: hash, redact, drop; null stays null",
     .t = {.name = "t",
           .pii = KVS({"email", "hash"}, {"phone", "redact"}, {"ssn", "drop"}, {"n", "hash"},
                      {"age", "hash"})},
     .pii_key = "k",
     .op = MS_CHANGE_INSERT,
     .after = "{\"id\": 1, \"email\": \"ann.lee@example.com\", \"phone\": \"+33 1\", \"ssn\": "
              "\"123\", \"n\": null, \"age\": 42}",
     .complete = true,
     .expect = "REPLACE t { \"_id\" : 1 } { \"_id\" : 1, \"id\" : 1, \"email\" : \"" H_EMAIL
               "\", \"phone\" : \"[REDACTED]\", \"n\" : null, \"age\" : \"" H_42 "\" }\n"},
    {.name = "pii after json: the hash of the document's text",
     .t = {.name = "t", .json = STRS("attrs"), .pii = KVS({"attrs", "hash"})},
     .pii_key = "k",
     .op = MS_CHANGE_INSERT,
     .after = "{\"id\": 1, \"attrs\": \"{\\\"a\\\":1}\"}",
     .complete = true,
     .expect =
         "REPLACE t { \"_id\" : 1 } { \"_id\" : 1, \"id\" : 1, \"attrs\" : \"" H_DOC_A1 "\" }\n"},
    {.name = "a subdocument whose columns are all dropped is left out",
     .t = {.name = "t", .rename = ADDR_RENAME, .pii = KVS({"line1", "drop"}, {"city", "drop"})},
     .op = MS_CHANGE_INSERT,
     .after = ADDR_ROW,
     .complete = true,
     .expect = "REPLACE t { \"_id\" : 1 } { \"_id\" : 1, \"id\" : 1, \"zip\" : \"75001\" }\n"},
    {.name = "pii on a renamed nested column",
     .t = {.name = "t", .rename = ADDR_RENAME, .pii = KVS({"line1", "redact"})},
     .op = MS_CHANGE_INSERT,
     .after = ADDR_ROW,
     .complete = true,
     .expect = "REPLACE t { \"_id\" : 1 } { \"_id\" : 1, \"id\" : 1, \"address\" : { \"line1\" : "
               "\"[REDACTED]\", \"city\" : \"Paris\" }, \"zip\" : \"75001\" }\n"},
    {.name = "pii other than keep on a primary-key column is refused",
     .t = {.name = "t", .pii = KVS({"id", "hash"})},
     .pii_key = "k",
     .op = MS_CHANGE_INSERT,
     .after = ROW3,
     .complete = true,
     .expect = "ERROR: tables.t.pii.id: id is a key column"},
    {.name = "partial image: $set of the mapped columns it carries",
     .t = {.name = "t", .rename = KVS({"a", "alpha"}), .exclude = STRS("b")},
     .op = MS_CHANGE_UPDATE,
     .before = "{\"id\": 1}",
     .after = "{\"a\": 5, \"b\": 6}",
     .expect = "SET t { \"_id\" : 1 } { \"alpha\" : 5 }\n"},
    {.name = "partial image: json parsed, pii applied",
     .t = {.name = "t", .json = STRS("attrs"), .pii = KVS({"ssn", "drop"})},
     .op = MS_CHANGE_UPDATE,
     .before = "{\"id\": 1}",
     .after = "{\"attrs\": \"[1]\", \"ssn\": \"123\"}",
     .expect = "SET t { \"_id\" : 1 } { \"attrs\" : [ 1 ] }\n"},
    {.name = "partial image with a nested column: re-read",
     .t = {.name = "t", .rename = ADDR_RENAME},
     .op = MS_CHANGE_UPDATE,
     .before = "{\"id\": 1}",
     .after = "{\"city\": \"Lyon\"}",
     .expect = "REREAD t { \"_id\" : 1 }\n"},
    {.name = "partial image without a nested column: $set",
     .t = {.name = "t", .rename = ADDR_RENAME},
     .op = MS_CHANGE_UPDATE,
     .before = "{\"id\": 1}",
     .after = "{\"zip\": \"69001\"}",
     .expect = "SET t { \"_id\" : 1 } { \"zip\" : \"69001\" }\n"},
    {.name = "partial image of excluded columns only: nothing to write",
     .t = {.name = "t", .exclude = STRS("b")},
     .op = MS_CHANGE_UPDATE,
     .before = "{\"id\": 1}",
     .after = "{\"b\": 6}",
     .expect = ""},
    {.name = "key change: delete the old, replace the new, in the collection",
     .t = {.name = "t", .collection = "people", .include = STRS("a")},
     .op = MS_CHANGE_UPDATE,
     .before = ROW3,
     .after = "{\"id\": 2, \"a\": 2, \"b\": 3}",
     .complete = true,
     .expect = "DELETE people { \"_id\" : 1 }\nREPLACE people { \"_id\" : 2 } { \"_id\" : 2, "
               "\"a\" : 2 }\n"},
    {.name = "delete in the collection",
     .t = {.name = "t", .collection = "people", .rename = ADDR_RENAME},
     .op = MS_CHANGE_DELETE,
     .before = ADDR_ROW,
     .expect = "DELETE people { \"_id\" : 1 }\n"},
    {.name = "unresolved JSON diff: re-read",
     .t = {.name = "t", .json = STRS("attrs")},
     .op = MS_CHANGE_UPDATE,
     .before = "{\"id\": 1}",
     .after = "{\"attrs\": \"{}\"}",
     .reread = true,
     .expect = "REREAD t { \"_id\" : 1 }\n"},
    /* refused at init */
    {.name = "include and exclude together",
     .t = {.name = "t", .include = STRS("a"), .exclude = STRS("b")},
     .expect = "INIT: m.yaml:7:3: tables.t: include and exclude cannot both be set"},
    {.name = "two columns on one field",
     .t = {.name = "t", .rename = KVS({"a", "x"}, {"b", "x"})},
     .expect = "INIT: m.yaml:7:3: tables.t.rename: column a and column b both give the field 'x'"},
    {.name = "a field that is both a value and a parent",
     .t = {.name = "t", .rename = KVS({"a", "x.y"}, {"b", "x"})},
     .expect = "INIT: 'x' (column b) is both a value and the parent of 'x.y' (column a)"},
    {.name = "an included column where a rename nests",
     .t = {.name = "t", .include = STRS("address", "city"), .rename = KVS({"city", "address.c"})},
     .expect = "INIT: 'address' (included column address) is both a value and the parent"},
    {.name = "empty rename",
     .t = {.name = "t", .rename = KVS({"a", ""})},
     .expect = "INIT: tables.t.rename.a: '' is empty"},
    {.name = "empty segment",
     .t = {.name = "t", .rename = KVS({"a", "x..y"})},
     .expect = "INIT: tables.t.rename.a: 'x..y' has an empty segment"},
    {.name = "trailing dot",
     .t = {.name = "t", .rename = KVS({"a", "x."})},
     .expect = "INIT: has an empty segment"},
    {.name = "operator-like segment",
     .t = {.name = "t", .rename = KVS({"a", "x.$y"})},
     .expect = "INIT: 'x.$y' has a segment starting with '$'"},
    {.name = "rename onto _id",
     .t = {.name = "t", .rename = KVS({"a", "_id"})},
     .expect = "INIT: would replace the _id"},
    {.name = "rename under _id",
     .t = {.name = "t", .rename = KVS({"a", "_id.x"})},
     .expect = "INIT: would replace the _id"},
    {.name = "hash without a key",
     .t = {.name = "t", .pii = KVS({"email", "hash"})},
     .expect = "INIT: tables.t.pii.email: hash needs a key: set sync.pii_key (SYNC_PII_KEY)"},
    {.name = "unknown pii action; the key stays out of the message",
     .t = {.name = "t", .pii = KVS({"email", "scramble"})},
     .pii_key = "TOPSECRETKEY",
     .expect = "INIT: tables.t.pii.email: 'scramble' is not keep, drop, redact or hash"},
    {.name = "pii on a sync.keys column",
     .t = {.name = "t", .pii = KVS({"code", "hash"})},
     .pii_key = "k",
     .sync_key = "d.t:region+code",
     .expect = "INIT: tables.t.pii.code: code is a key column (sync.keys)"},
    {.name = "columns is not a generic option",
     .t = {.name = "t", .columns = KVS({"email", "mail"})},
     .expect = "INIT: tables.t.columns: the generic strategy takes columns by their own names"},
};

/* ---- customers ------------------------------------------------------------------------ */

#define CR_NAME "\"first_name\": \"Ann\", \"last_name\": \"Lee\", "
#define CR_REST                                                                                    \
    "\"phone\": \"+33 1 23 45 67 89\", \"address_line1\": \"1 rue de Rivoli\", \"city\": "         \
    "\"Paris\", \"postal_code\": \"75001\", \"country\": \"FR\", "
#define CR_DATES                                                                                   \
    "\"created_at\": {\"$date\": \"2024-01-02T03:04:05Z\"}, \"updated_at\": {\"$date\": "          \
    "\"2024-01-02T03:04:05Z\"}"
#define CROW(id, email, optin)                                                                     \
    "{\"id\": " id ", \"email\": " email ", " CR_NAME CR_REST "\"marketing_opt_in\": " optin       \
    ", " CR_DATES ", \"loyalty_tier\": \"gold\"}"
#define ANN   "\"Ann.Lee@Example.COM\""
#define ROW42 CROW("42", ANN, "1")

#define CD_NAME  "\"name\" : { \"first\" : \"Ann\", \"last\" : \"Lee\" }, "
#define CD_PHONE "\"phone\" : \"+33 1 23 45 67 89\", "
#define CD_ADDR                                                                                    \
    "\"address\" : { \"line1\" : \"1 rue de Rivoli\", \"city\" : \"Paris\", \"postal_code\" : "    \
    "\"75001\", \"country\" : \"FR\" }, "
#define CD_DATES                                                                                   \
    "\"created_at\" : { \"$date\" : \"2024-01-02T03:04:05Z\" }, \"updated_at\" : { \"$date\" : "   \
    "\"2024-01-02T03:04:05Z\" }"
#define CD_TAIL(optin)                                                                             \
    "\"marketing_opt_in\" : " optin ", " CD_DATES ", \"loyalty_tier\" : \"gold\" }"
#define CDOC(id, optin)                                                                            \
    "{ \"_id\" : " id ", \"email\" : \"ann.lee@example.com\", " CD_NAME CD_PHONE CD_ADDR CD_TAIL(  \
        optin)

#define CUST(...)                                                                                  \
    {                                                                                              \
        .name = "customers", .strategy = "customers", __VA_ARGS__                                  \
    }

static const struct map_case customers_cases[] = {
    {.name = "customers: insert, the whole document",
     .t = CUST(),
     .op = MS_CHANGE_INSERT,
     .after = ROW42,
     .complete = true,
     .expect = "REPLACE customers { \"_id\" : 42 } " CDOC("42", "true") "\n"},
    {.name = "customers: opt-in 0 is false",
     .t = CUST(),
     .op = MS_CHANGE_INSERT,
     .after = CROW("42", ANN, "0"),
     .complete = true,
     .expect = "REPLACE customers { \"_id\" : 42 } " CDOC("42", "false") "\n"},
    {.name = "customers: opt-in NULL stays null",
     .t = CUST(),
     .op = MS_CHANGE_INSERT,
     .after = CROW("42", ANN, "null"),
     .complete = true,
     .expect = "REPLACE customers { \"_id\" : 42 } " CDOC("42", "null") "\n"},
    {.name = "customers: update with a full image replaces",
     .t = CUST(),
     .op = MS_CHANGE_UPDATE,
     .before = CROW("42", "\"old@example.com\"", "0"),
     .after = ROW42,
     .complete = true,
     .expect = "REPLACE customers { \"_id\" : 42 } " CDOC("42", "true") "\n"},
    {.name = "customers: update with a partial image re-reads",
     .t = CUST(),
     .op = MS_CHANGE_UPDATE,
     .before = "{\"id\": 42}",
     .after = "{\"city\": \"Lyon\"}",
     .expect = "REREAD customers { \"_id\" : 42 }\n"},
    {.name = "customers: unresolved image re-reads",
     .t = CUST(),
     .op = MS_CHANGE_UPDATE,
     .before = ROW42,
     .after = ROW42,
     .complete = true,
     .reread = true,
     .expect = "REREAD customers { \"_id\" : 42 }\n"},
    {.name = "customers: a new id deletes the old document",
     .t = CUST(),
     .op = MS_CHANGE_UPDATE,
     .before = ROW42,
     .after = CROW("43", ANN, "1"),
     .complete = true,
     .expect = "DELETE customers { \"_id\" : 42 }\nREPLACE customers { \"_id\" : 43 } " CDOC(
         "43", "true") "\n"},
    {.name = "customers: delete",
     .t = CUST(),
     .op = MS_CHANGE_DELETE,
     .before = ROW42,
     .expect = "DELETE customers { \"_id\" : 42 }\n"},
    {.name = "customers: delete of a row without a usable email",
     .t = CUST(),
     .op = MS_CHANGE_DELETE,
     .before = "{\"id\": 42, \"email\": null}",
     .expect = "DELETE customers { \"_id\" : 42 }\n"},
    {.name = "customers: email hashed after lower-casing, phone redacted",
     .t = CUST(.pii = KVS({"email", "hash"}, {"phone", "redact"})),
     .pii_key = "k",
     .op = MS_CHANGE_INSERT,
     .after = ROW42,
     .complete = true,
     .expect = "REPLACE customers { \"_id\" : 42 } { \"_id\" : 42, \"email\" : \"" H_EMAIL
               "\", " CD_NAME "\"phone\" : \"[REDACTED]\", " CD_ADDR CD_TAIL("true") "\n"},
    {.name = "customers: dropped fields leave their subdocuments",
     .t = CUST(.pii = KVS({"last_name", "drop"}, {"address_line1", "drop"})),
     .op = MS_CHANGE_INSERT,
     .after = ROW42,
     .complete = true,
     .expect = "REPLACE customers { \"_id\" : 42 } { \"_id\" : 42, \"email\" : "
               "\"ann.lee@example.com\", \"name\" : { \"first\" : \"Ann\" }, " CD_PHONE
               "\"address\" : { \"city\" : \"Paris\", \"postal_code\" : \"75001\", \"country\" : "
               "\"FR\" }, " CD_TAIL("true") "\n"},
    {.name = "customers: an empty subdocument is left out",
     .t = CUST(.pii = KVS({"first_name", "drop"}, {"last_name", "drop"})),
     .op = MS_CHANGE_INSERT,
     .after = ROW42,
     .complete = true,
     .expect = "REPLACE customers { \"_id\" : 42 } { \"_id\" : 42, \"email\" : "
               "\"ann.lee@example.com\", " CD_PHONE CD_ADDR CD_TAIL("true") "\n"},
    {.name = "customers: pii on another column, by its name",
     .t = CUST(.pii = KVS({"loyalty_tier", "redact"})),
     .op = MS_CHANGE_INSERT,
     .after = ROW42,
     .complete = true,
     .expect = "REPLACE customers { \"_id\" : 42 } { \"_id\" : 42, \"email\" : "
               "\"ann.lee@example.com\", " CD_NAME CD_PHONE CD_ADDR
               "\"marketing_opt_in\" : true, " CD_DATES ", \"loyalty_tier\" : \"[REDACTED]\" }\n"},
    {.name = "customers: configured column names and collection",
     .t = CUST(.collection = "clients",
               .columns = KVS({"id", "customer_id"}, {"email", "mail"}, {"city", "town"})),
     .op = MS_CHANGE_INSERT,
     .after = "{\"customer_id\": 7, \"mail\": \"X@Y.Z\", \"town\": \"Nice\"}",
     .complete = true,
     .expect = "REPLACE clients { \"_id\" : 7 } { \"_id\" : 7, \"email\" : \"x@y.z\", \"address\" "
               ": { \"city\" : \"Nice\" } }\n"},
    {.name = "customers: configured id column for delete and validation",
     .t = CUST(.columns = KVS({"id", "customer_id"})),
     .op = MS_CHANGE_INSERT,
     .after = "{\"customer_id\": 7, \"email\": \"nope\"}",
     .complete = true,
     .expect = "ERROR: customers 7: email invalid"},
    {.name = "customers: exclude by logical or actual name",
     .t = CUST(.exclude = STRS("phone", "loyalty_tier", "town"), .columns = KVS({"city", "town"})),
     .op = MS_CHANGE_INSERT,
     .after = "{\"id\": 1, \"email\": \"a@b\", \"phone\": \"1\", \"town\": \"Nice\", "
              "\"loyalty_tier\": \"gold\", \"country\": \"FR\"}",
     .complete = true,
     .expect = "REPLACE customers { \"_id\" : 1 } { \"_id\" : 1, \"email\" : \"a@b\", \"address\" "
               ": { \"country\" : \"FR\" } }\n"},
    {.name = "customers: a table with fewer columns",
     .t = CUST(),
     .op = MS_CHANGE_INSERT,
     .after = "{\"id\": 1, \"email\": \"a@b.c\"}",
     .complete = true,
     .expect = "REPLACE customers { \"_id\" : 1 } { \"_id\" : 1, \"email\" : \"a@b.c\" }\n"},
    {.name = "customers: UTF-8 left as it is by lower-casing",
     .t = CUST(),
     .op = MS_CHANGE_INSERT,
     .after = "{\"id\": 1, \"email\": \"\xc3\x89LODIE@Caf\xc3\xa9.FR\"}",
     .complete = true,
     .expect = "REPLACE customers { \"_id\" : 1 } { \"_id\" : 1, \"email\" : "
               "\"\xc3\x89lodie@caf\xc3\xa9.fr\" }\n"},
    {.name = "customers: email missing",
     .t = CUST(),
     .op = MS_CHANGE_INSERT,
     .after = "{\"id\": 42, \"first_name\": \"Ann\"}",
     .complete = true,
     .expect = "ERROR: customers 42: email missing (column email of d.customers)"},
    {.name = "customers: email null",
     .t = CUST(),
     .op = MS_CHANGE_INSERT,
     .after = CROW("42", "null", "1"),
     .complete = true,
     .expect = "ERROR: customers 42: email missing"},
    {.name = "customers: email empty",
     .t = CUST(),
     .op = MS_CHANGE_INSERT,
     .after = CROW("42", "\"\"", "1"),
     .complete = true,
     .expect = "ERROR: customers 42: email missing (empty)"},
    {.name = "customers: two @",
     .t = CUST(),
     .op = MS_CHANGE_INSERT,
     .after = CROW("42", "\"a@b@c\"", "1"),
     .complete = true,
     .expect = "ERROR: customers 42: email invalid (needs exactly one '@' with text on both "
               "sides)"},
    {.name = "customers: nothing before @",
     .t = CUST(),
     .op = MS_CHANGE_INSERT,
     .after = CROW("42", "\"@example.com\"", "1"),
     .complete = true,
     .expect = "ERROR: customers 42: email invalid"},
    {.name = "customers: nothing after @",
     .t = CUST(),
     .op = MS_CHANGE_INSERT,
     .after = CROW("\"c-9\"", "\"ann@\"", "1"),
     .complete = true,
     .expect = "ERROR: customers c-9: email invalid"},
    {.name = "customers: a partial image carrying a bad email",
     .t = CUST(),
     .op = MS_CHANGE_UPDATE,
     .before = "{\"id\": 42}",
     .after = "{\"email\": \"nobody\"}",
     .expect = "ERROR: customers 42: email invalid"},
    {.name = "customers: no id",
     .t = CUST(),
     .op = MS_CHANGE_INSERT,
     .after = "{\"email\": \"a@b\"}",
     .complete = true,
     .expect = "ERROR: customers: a row of d.customers has no id"},
    {.name = "customers: pii on the id",
     .t = CUST(.pii = KVS({"id", "hash"})),
     .pii_key = "k",
     .expect = "INIT: tables.customers.pii.id: the id is the document's _id"},
    {.name = "customers: hash without a key",
     .t = CUST(.pii = KVS({"email", "hash"})),
     .expect = "INIT: m.yaml:7:3: tables.customers.pii.email: hash needs a key: set sync.pii_key "
               "(SYNC_PII_KEY)"},
    {.name = "customers: unknown logical column",
     .t = CUST(.columns = KVS({"mail", "email_address"})),
     .expect = "INIT: tables.customers.columns.mail: not a column of the customers strategy"},
    {.name = "customers: generic options refused",
     .t = CUST(.rename = KVS({"email", "mail"})),
     .expect = "INIT: tables.customers.rename: not an option of the customers strategy"},
    {.name = "customers: unknown role",
     .t = CUST(.role = "clients"),
     .expect = "INIT: tables.customers.role: 'clients' is not a role of the customers strategy"},
};

/* ---- runner --------------------------------------------------------------------------- */

static bson_t *from_json(const char *s)
{
    bson_error_t berr;
    bson_t *b;

    if (s == NULL) {
        return NULL;
    }
    b = bson_new_from_json((const uint8_t *)s, -1, &berr);
    if (b == NULL) {
        fail_msg("bad JSON %s: %s", s, berr.message);
    }
    return b;
}

static char *ops_text(const struct ms_ops *ops, const char *error)
{
    char *got = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&got, &len);

    if (error != NULL) {
        fprintf(f, "ERROR: %s", error);
    }
    for (size_t i = 0; i < ops->n; i++) {
        char *id = bson_as_relaxed_extended_json(&ops->v[i].id, NULL);
        fprintf(f, "%s %s %s", kinds[ops->v[i].kind], ops->v[i].collection, id);
        bson_free(id);
        if (!bson_empty(&ops->v[i].doc)) {
            char *doc = bson_as_relaxed_extended_json(&ops->v[i].doc, NULL);
            fprintf(f, " %s", doc);
            bson_free(doc);
        }
        fputc('\n', f);
    }
    fclose(f);
    return got;
}

static void check_text(const char *name, const char *got, const char *expect, const char *prefix)
{
    size_t n = strlen(prefix);

    if (strncmp(expect, prefix, n) == 0) {
        if (strncmp(got, prefix, n) != 0 || strstr(got, expect + n) == NULL) {
            fail_msg("case '%s': got\n%s\nwant %scontaining '%s'", name, got, prefix, expect + n);
        }
    } else if (strcmp(got, expect) != 0) {
        fail_msg("case '%s':\n got: %s\nwant: %s", name, got, expect);
    }
}

static void run_case(void **state)
{
    const struct map_case *c = *state;
    const char *pk[] = {"id"};
    struct ms_table_cfg t = c->t;
    char *keys[] = {(char *)c->sync_key};
    struct ms_config cfg = {.mysql_database = "d",
                            .collection_customers = "customers",
                            .sync_pii_key = (char *)c->pii_key,
                            .sync_keys = {keys, c->sync_key != NULL ? 1 : 0},
                            .tables = &t,
                            .ntables = 1};
    const struct ms_strategy *s = t.strategy != NULL && strcmp(t.strategy, "customers") == 0
                                      ? &ms_strategy_customers
                                      : &ms_strategy_generic;
    bson_t *before = from_json(c->before), *after = from_json(c->after);
    struct ms_change chg = {.op = c->op,
                            .db = "d",
                            .table = t.name,
                            .before = before,
                            .after = after,
                            .after_complete = c->complete,
                            .needs_reread = c->reread,
                            .pk = pk,
                            .npk = 1,
                            .position = "f:1",
                            .tcfg = &t,
                            .role = t.name};
    struct ms_error err = {0};
    struct ms_ops ops;
    void *ctx = NULL;
    char *got;

    snprintf(t.where, sizeof(t.where), "m.yaml:7:3");
    ms_ops_init(&ops);
    if (!s->init(&ctx, &cfg, &err)) {
        char line[300];
        assert_int_equal(err.domain, MS_ERR_CONFIG);
        if (c->pii_key != NULL && strlen(c->pii_key) > 3) {
            assert_null(strstr(err.msg, c->pii_key));
        }
        snprintf(line, sizeof(line), "INIT: %s", err.msg);
        check_text(c->name, line, c->expect, "INIT: ");
        goto done;
    }
    if (strncmp(c->expect, "INIT: ", 6) == 0) {
        fail_msg("case '%s': init accepted the entry", c->name);
    }
    if ((s->validate != NULL && !s->validate(ctx, &chg, &err)) || !s->map(ctx, &chg, &ops, &err)) {
        assert_int_equal(err.domain, MS_ERR_STRATEGY);
        assert_int_equal(ops.n, 0); /* nothing half-done */
        got = ops_text(&ops, err.msg);
    } else {
        got = ops_text(&ops, NULL);
    }
    check_text(c->name, got, c->expect, "ERROR: ");
    free(got);
done:
    s->destroy(ctx);
    ms_ops_cleanup(&ops);
    bson_destroy(before);
    bson_destroy(after);
}

/* ---- pii ------------------------------------------------------------------------------ */

struct pii_case {
    const char *name;
    const char *value; /* {"v": value} */
    enum ms_pii_action action;
    const char *key;
    const char *expect; /* the document with the value under "f", or "ERROR: text" */
};

#define HK(hex) "{ \"f\" : \"" hex "\" }"

static const struct pii_case pii_cases[] = {
    {"RFC 4231 test case 2", "{\"v\": \"what do ya want for nothing?\"}", MS_PII_HASH, "Jefe",
     HK("5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843")},
    {"int32 in decimal", "{\"v\": 42}", MS_PII_HASH, "k", HK(H_42)},
    {"negative int32", "{\"v\": -7}", MS_PII_HASH, "k",
     HK("5c6f4a74196aba1080b9cb0ccf41250e53bd06542a6a5769e9069058fac9470b")},
    {"int64 in decimal", "{\"v\": {\"$numberLong\": \"9000000000\"}}", MS_PII_HASH, "k",
     HK("715982c82b058ed6f821e22fa463c7a0e291c50acf83acef9b8294accaed516b")},
    {"double, shortest text", "{\"v\": 0.1}", MS_PII_HASH, "k",
     HK("9a5dab30785bf20cf01eb78d84952de86b78677392e0d217c1d36fe103ccfbf1")},
    {"double with an exponent", "{\"v\": 1e300}", MS_PII_HASH, "k",
     HK("8f6e0faecb8727b8ec1c33aa5034b9e0496c2cfb570ac7a9cec87eab8e6dc6cb")},
    {"Decimal128 as written", "{\"v\": {\"$numberDecimal\": \"12.50\"}}", MS_PII_HASH, "k",
     HK("39072a29d308eadbf01991db9a5e7aa5d28e2434d854d6562fb93d9933d3c110")},
    {"bool true", "{\"v\": true}", MS_PII_HASH, "k",
     HK("0694304f2e818c63ded4a0752b7e5c0150eb1dd5da6210a25fec68854ea72de0")},
    {"bool false", "{\"v\": false}", MS_PII_HASH, "k",
     HK("95dd09484bc537b61175df8daa086874773102b5f3eb5bf6dfbe4fe39c0ba6ba")},
    {"date ISO-8601 UTC with ms", "{\"v\": {\"$date\": {\"$numberLong\": \"1704164645000\"}}}",
     MS_PII_HASH, "k", HK("ff46d6233307a6c3b132f51e0a63bff51cf92a387ea2935f07cf9e6ba3aaf34f")},
    {"date before 1970", "{\"v\": {\"$date\": {\"$numberLong\": \"-1\"}}}", MS_PII_HASH, "k",
     HK("438dcc7474c3157a6faabbf4aa7227468e2318b9121e8c065e0587fc6b55ffee")},
    {"binary as bytes", "{\"v\": {\"$binary\": {\"base64\": \"AAH/\", \"subType\": \"00\"}}}",
     MS_PII_HASH, "k", HK("de3028004fc87abcc7616fd3dc8149873f70417d8b738aa4e05fee434a309c35")},
    {"empty string", "{\"v\": \"\"}", MS_PII_HASH, "k",
     HK("8bb990c40a7d61cb97597a942125025be50ac8beb74436e3735b98893a7f6620")},
    {"document as relaxed JSON", "{\"v\": {\"a\": 1}}", MS_PII_HASH, "k", HK(H_DOC_A1)},
    {"array as relaxed JSON", "{\"v\": [1, 2]}", MS_PII_HASH, "k",
     HK("3794ece35600b14a0201c519bd22ffca4cb14d9ef21061a38528a03c768b188d")},
    {"hash keeps null", "{\"v\": null}", MS_PII_HASH, "k", "{ \"f\" : null }"},
    {"hash without a key", "{\"v\": \"x\"}", MS_PII_HASH, NULL,
     "ERROR: pii: hash of f needs a key (sync.pii_key / SYNC_PII_KEY)"},
    {"hash with an empty key, null value", "{\"v\": null}", MS_PII_HASH, "", "ERROR: needs a key"},
    {"keep", "{\"v\": {\"a\": 1}}", MS_PII_KEEP, NULL, "{ \"f\" : { \"a\" : 1 } }"},
    {"keep null", "{\"v\": null}", MS_PII_KEEP, NULL, "{ \"f\" : null }"},
    {"drop", "{\"v\": \"x\"}", MS_PII_DROP, NULL, "{ }"},
    {"drop null", "{\"v\": null}", MS_PII_DROP, NULL, "{ }"},
    {"redact", "{\"v\": 42}", MS_PII_REDACT, NULL, "{ \"f\" : \"[REDACTED]\" }"},
    {"redact keeps null", "{\"v\": null}", MS_PII_REDACT, NULL, "{ \"f\" : null }"},
};

static void run_pii_case(void **state)
{
    const struct pii_case *c = *state;
    bson_t *in = from_json(c->value), out = BSON_INITIALIZER;
    struct ms_error err = {0};
    bson_iter_t it;
    char *got;

    assert_true(bson_iter_init_find(&it, in, "v"));
    if (ms_pii_append(&out, "f", bson_iter_value(&it), c->action, c->key,
                      c->key != NULL ? strlen(c->key) : 0, &err)) {
        got = bson_as_relaxed_extended_json(&out, NULL);
        check_text(c->name, got, c->expect, "ERROR: ");
        bson_free(got);
    } else {
        char line[300];
        assert_int_equal(err.domain, MS_ERR_CONFIG);
        snprintf(line, sizeof(line), "ERROR: %s", err.msg);
        check_text(c->name, line, c->expect, "ERROR: ");
    }
    bson_destroy(&out);
    bson_destroy(in);
}

static void pii_actions(void **state)
{
    struct ms_table_cfg t = {.pii = KVS({"a", "keep"}, {"b", "drop"}, {"c", "redact"},
                                        {"d", "hash"}, {"e", "HASH"}, {"f", "typo"})};

    (void)state;
    assert_int_equal(ms_pii_action(NULL, "a"), MS_PII_KEEP);
    assert_int_equal(ms_pii_action(&t, "a"), MS_PII_KEEP);
    assert_int_equal(ms_pii_action(&t, "b"), MS_PII_DROP);
    assert_int_equal(ms_pii_action(&t, "c"), MS_PII_REDACT);
    assert_int_equal(ms_pii_action(&t, "d"), MS_PII_HASH);
    assert_int_equal(ms_pii_action(&t, "e"), MS_PII_HASH);
    assert_int_equal(ms_pii_action(&t, "f"), MS_PII_DROP); /* fails closed */
    assert_int_equal(ms_pii_action(&t, "zz"), MS_PII_KEEP);
}

/* ---- other checks --------------------------------------------------------------------- */

/* An entry init did not see (not in cfg->tables) is still checked and mapped. */
static void generic_unseen_entry(void **state)
{
    struct ms_table_cfg t = {.name = "t", .rename = KVS({"a", "x.a"})};
    struct ms_table_cfg bad = {.name = "t", .rename = KVS({"a", "$a"})};
    const char *pk[] = {"id"};
    bson_t *row = from_json(ROW3);
    struct ms_change chg = {.op = MS_CHANGE_INSERT,
                            .db = "d",
                            .table = "t",
                            .after = row,
                            .after_complete = true,
                            .pk = pk,
                            .npk = 1,
                            .position = "f:1",
                            .tcfg = &t,
                            .role = "t"};
    struct ms_error err = {0};
    struct ms_ops ops;
    void *ctx = NULL;
    char *got;

    (void)state;
    ms_ops_init(&ops);
    assert_true(ms_strategy_generic.init(&ctx, NULL, &err));
    assert_true(ms_strategy_generic.map(ctx, &chg, &ops, &err));
    got = ops_text(&ops, NULL);
    assert_string_equal(got, "REPLACE t { \"_id\" : 1 } { \"_id\" : 1, \"id\" : 1, \"x\" : { "
                             "\"a\" : 2 }, \"b\" : 3 }\n");
    free(got);
    chg.tcfg = &bad;
    assert_false(ms_strategy_generic.map(ctx, &chg, &ops, &err));
    assert_int_equal(ops.n, 1);
    assert_non_null(strstr(err.msg, "starting with '$'"));
    ms_strategy_generic.destroy(ctx);
    ms_ops_cleanup(&ops);
    bson_destroy(row);
}

/* init only checks the generic entries; other strategies' entries are theirs. */
static void generic_skips_other_entries(void **state)
{
    struct ms_table_cfg t[] = {
        {.name = "customers", .strategy = "customers", .columns = KVS({"email", "mail"})},
        {.name = "t", .strategy = "generic", .include = STRS("a")},
    };
    struct ms_config cfg = {.tables = t, .ntables = 2};
    struct ms_error err = {0};
    void *ctx = NULL;

    (void)state;
    assert_true(ms_strategy_generic.init(&ctx, &cfg, &err));
    ms_strategy_generic.destroy(ctx);
}

static void customers_indexes(void **state)
{
    struct ms_table_cfg t[] = {
        {.name = "shop.customers", .strategy = "customers", .collection = "clients"},
        {.name = "eu.customers", .strategy = "customers", .collection = "clients"},
        {.name = "us.customers", .strategy = "customers"},
        {.name = "other", .strategy = "generic", .collection = "x"},
    };
    struct ms_config cfg = {.collection_customers = "customers", .tables = t, .ntables = 4};
    struct ms_error err = {0};
    struct ms_index *ix = NULL;
    size_t n = 0;
    void *ctx = NULL;
    char *keys;

    (void)state;
    assert_string_equal(ms_strategy_customers.source_tables[0], "customers");
    assert_null(ms_strategy_customers.source_tables[1]);
    assert_true(ms_strategy_customers.init(&ctx, &cfg, &err));
    assert_true(ms_strategy_customers.indexes(ctx, &ix, &n, &err));
    assert_int_equal(n, 2);
    assert_string_equal(ix[0].collection, "clients");
    assert_string_equal(ix[1].collection, "customers");
    for (size_t i = 0; i < n; i++) {
        assert_string_equal(ix[i].name, "email_1");
        assert_false(ix[i].unique);
        keys = bson_as_relaxed_extended_json(&ix[i].keys, NULL);
        assert_string_equal(keys, "{ \"email\" : 1 }");
        bson_free(keys);
        bson_destroy(&ix[i].keys);
    }
    free(ix);
    ms_strategy_customers.destroy(ctx);

    /* no entry: the configured default collection */
    cfg.ntables = 0;
    cfg.collection_customers = "people";
    assert_true(ms_strategy_customers.init(&ctx, &cfg, &err));
    assert_true(ms_strategy_customers.indexes(ctx, &ix, &n, &err));
    assert_int_equal(n, 1);
    assert_string_equal(ix[0].collection, "people");
    bson_destroy(&ix[0].keys);
    free(ix);
    ms_strategy_customers.destroy(ctx);
}

#define NCASES(a) (sizeof(a) / sizeof((a)[0]))

int main(void)
{
    struct CMUnitTest
        tests[NCASES(generic_cases) + NCASES(customers_cases) + NCASES(pii_cases) + 4];
    size_t n = 0;

    for (size_t i = 0; i < NCASES(generic_cases); i++) {
        tests[n++] = (struct CMUnitTest){generic_cases[i].name, run_case, NULL, NULL,
                                         (void *)&generic_cases[i]};
    }
    for (size_t i = 0; i < NCASES(customers_cases); i++) {
        tests[n++] = (struct CMUnitTest){customers_cases[i].name, run_case, NULL, NULL,
                                         (void *)&customers_cases[i]};
    }
    for (size_t i = 0; i < NCASES(pii_cases); i++) {
        tests[n++] =
            (struct CMUnitTest){pii_cases[i].name, run_pii_case, NULL, NULL, (void *)&pii_cases[i]};
    }
    tests[n++] = (struct CMUnitTest)cmocka_unit_test(pii_actions);
    tests[n++] = (struct CMUnitTest)cmocka_unit_test(generic_unseen_entry);
    tests[n++] = (struct CMUnitTest)cmocka_unit_test(generic_skips_other_entries);
    tests[n++] = (struct CMUnitTest)cmocka_unit_test(customers_indexes);
    return _cmocka_run_group_tests("mapping", tests, n, NULL, NULL);
}

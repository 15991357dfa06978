/* demo_peek: look into a MongoDB collection from the demo (a minimal client, so the demo
 * needs no MongoDB shell).
 *   demo_peek URI DB COLL [FILTER_JSON] [--count] [--limit N] [--sort FIELD]
 * prints the matching documents as relaxed Extended JSON, one per line, or their count. */
#include <mongoc/mongoc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int main(int argc, char **argv)
{
    const char *filter_json = "{}", *sort = NULL;
    bool count = false;
    long limit = 0;
    mongoc_client_t *client;
    mongoc_collection_t *coll;
    bson_t *filter, opts = BSON_INITIALIZER;
    bson_error_t err;
    int rc = 0;

    if (argc < 4) {
        fprintf(stderr, "usage: %s URI DB COLL [FILTER_JSON] [--count] [--limit N] [--sort F]\n",
                argv[0]);
        return 64;
    }
    for (int i = 4; i < argc; i++) {
        if (strcmp(argv[i], "--count") == 0) {
            count = true;
        } else if (strcmp(argv[i], "--limit") == 0 && i + 1 < argc) {
            limit = strtol(argv[++i], NULL, 10);
        } else if (strcmp(argv[i], "--sort") == 0 && i + 1 < argc) {
            sort = argv[++i];
        } else {
            filter_json = argv[i];
        }
    }
    mongoc_init();
    filter = bson_new_from_json((const uint8_t *)filter_json, -1, &err);
    if (filter == NULL) {
        fprintf(stderr, "demo_peek: filter: %s\n", err.message);
        return 64;
    }
    client = mongoc_client_new(argv[1]);
    if (client == NULL) {
        fprintf(stderr, "demo_peek: bad URI\n");
        return 64;
    }
    coll = mongoc_client_get_collection(client, argv[2], argv[3]);
    if (count) {
        int64_t n = mongoc_collection_count_documents(coll, filter, NULL, NULL, NULL, &err);
        if (n < 0) {
            fprintf(stderr, "demo_peek: %s\n", err.message);
            rc = 69;
        } else {
            printf("%lld\n", (long long)n);
        }
    } else {
        mongoc_cursor_t *cur;
        const bson_t *doc;
        if (limit > 0) {
            BSON_APPEND_INT64(&opts, "limit", limit);
        }
        if (sort != NULL) {
            bson_t s;
            BSON_APPEND_DOCUMENT_BEGIN(&opts, "sort", &s);
            BSON_APPEND_INT32(&s, sort[0] == '-' ? sort + 1 : sort, sort[0] == '-' ? -1 : 1);
            bson_append_document_end(&opts, &s);
        }
        cur = mongoc_collection_find_with_opts(coll, filter, &opts, NULL);
        while (mongoc_cursor_next(cur, &doc)) {
            char *json = bson_as_relaxed_extended_json(doc, NULL);
            printf("%s\n", json);
            bson_free(json);
        }
        if (mongoc_cursor_error(cur, &err)) {
            fprintf(stderr, "demo_peek: %s\n", err.message);
            rc = 69;
        }
        mongoc_cursor_destroy(cur);
    }
    bson_destroy(&opts);
    bson_destroy(filter);
    mongoc_collection_destroy(coll);
    mongoc_client_destroy(client);
    mongoc_cleanup();
    return rc;
}

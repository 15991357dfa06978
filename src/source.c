/* Placeholder: being written (see include/mysync/source.h). */
#include "mysync/source.h"

#include <stdlib.h>

struct ms_source {
    const struct ms_config *cfg;
    const struct ms_value_opts *opts;
};

struct ms_source *ms_source_new(const struct ms_config *cfg, const struct ms_value_opts *opts)
{
    struct ms_source *s = calloc(1, sizeof(*s));
    if (s != NULL) {
        s->cfg = cfg;
        s->opts = opts;
    }
    return s;
}

void ms_source_destroy(struct ms_source *s)
{
    free(s);
}

bool ms_source_read_row(struct ms_source *s, const char *db, const char *table,
                        const char *const *pk, size_t npk, const bson_t *id, bson_t *row,
                        bool *found, struct ms_error *err)
{
    (void)s, (void)db, (void)table, (void)pk, (void)npk, (void)id, (void)row;
    *found = false;
    ms_error_set(err, MS_ERR_MYSQL, 1, "re-reading rows is not written yet");
    return false;
}

void ms_source_invalidate(struct ms_source *s, const char *db, const char *table)
{
    (void)s, (void)db, (void)table;
}

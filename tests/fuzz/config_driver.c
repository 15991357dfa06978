/* Arbitrary bytes as a YAML configuration file and, after the first NUL, NUL-separated
 * environment entries: loading must fail cleanly or succeed, never crash or leak. A loaded
 * configuration prints, and loading the same input again gives no difference for SIGHUP's
 * comparison (ms_config_diff). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fuzz_driver.h"
#include "mysync/config.h"
#include "mysync/log.h"

#define MAX_ENV 16

static void count_change(const struct ms_config_change *change, void *ud)
{
    (void)change;
    (*(size_t *)ud)++;
}

void ms_fuzz_config_one(const uint8_t *data, size_t size)
{
    char path[] = "/tmp/mysync-fuzz-config-XXXXXX";
    int fd = mkstemp(path);
    const uint8_t *nul = memchr(data, 0, size);
    char *env[MAX_ENV] = {NULL};
    const char *envp[MAX_ENV + 1] = {NULL};
    struct ms_config cfg, again;
    struct ms_error err = {0};
    size_t ylen = nul != NULL ? (size_t)(nul - data) : size, nenv = 0;

    if (fd < 0) {
        return;
    }
    if (write(fd, data, ylen) != (ssize_t)ylen) {
        close(fd);
        unlink(path);
        return;
    }
    close(fd);
    for (size_t off = ylen; off < size && nenv < MAX_ENV;) {
        const uint8_t *e = data + off + 1, *end = memchr(e, 0, size - off - 1);
        size_t n = end != NULL ? (size_t)(end - e) : size - off - 1;
        env[nenv] = strndup((const char *)e, n);
        envp[nenv] = env[nenv];
        nenv++;
        off += 1 + n;
    }
    if (ms_config_load(&cfg, path, envp, &err)) {
        FILE *out = fopen("/dev/null", "w");
        size_t changes = 0;
        if (out != NULL) {
            ms_config_print(&cfg, out);
            fclose(out);
        }
        if (!ms_config_load(&again, path, envp, &err)) {
            ms_fuzz_fail("loaded once, then refused: %s", err.msg);
        }
        if (ms_config_diff(&cfg, &again, count_change, &changes) != 0 || changes != 0) {
            ms_fuzz_fail("the same input loaded twice differs in %zu options", changes);
        }
        ms_config_cleanup(&again);
    } else if (err.domain == MS_ERR_NONE || err.msg[0] == '\0') {
        ms_fuzz_fail("refused without an error");
    }
    ms_config_cleanup(&cfg);
    ms_log_clear_secrets();
    for (size_t i = 0; i < nenv; i++) {
        free(env[i]);
    }
    unlink(path);
}

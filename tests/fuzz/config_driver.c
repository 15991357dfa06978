/* Arbitrary bytes as a YAML configuration file (and, split at the first NUL, as one
 * environment entry): loading must fail cleanly or succeed, never crash or leak. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fuzz_driver.h"
#include "mysync/config.h"
#include "mysync/log.h"

void ms_fuzz_config_one(const uint8_t *data, size_t size)
{
    char path[] = "/tmp/mysync-fuzz-config-XXXXXX";
    int fd = mkstemp(path);
    const uint8_t *nul = memchr(data, 0, size);
    char *env = NULL;
    const char *envp[2] = {NULL, NULL};
    struct ms_config cfg;
    struct ms_error err = {0};
    size_t ylen = nul != NULL ? (size_t)(nul - data) : size;

    if (fd < 0) {
        return;
    }
    if (write(fd, data, ylen) != (ssize_t)ylen) {
        close(fd);
        unlink(path);
        return;
    }
    close(fd);
    if (nul != NULL) {
        env = strndup((const char *)nul + 1, size - ylen - 1);
        envp[0] = env;
    }
    ms_config_load(&cfg, path, envp, &err);
    ms_config_cleanup(&cfg);
    ms_log_clear_secrets();
    free(env);
    unlink(path);
}

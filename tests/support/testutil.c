#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "testutil.h"

#include <dirent.h>
#include <errno.h>
#include <execinfo.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* A test program that aborts (glibc, libmongoc's BSON_ASSERT, a double free) says where: cmocka
 * catches SIGSEGV and friends but not SIGABRT. */
static void tu_on_abort(int sig)
{
    static const char msg[] = "\n*** SIGABRT in the test program; backtrace:\n";
    void *frames[64];
    int n = backtrace(frames, 64);

    (void)!write(STDERR_FILENO, msg, sizeof(msg) - 1);
    backtrace_symbols_fd(frames, n, STDERR_FILENO);
    signal(sig, SIG_DFL);
    raise(sig);
}

/* cmocka prints a failure's reason on stderr and its verdict on stdout; meson keeps the two
 * apart, so a reason was easy to lose in a CI excerpt. One line-buffered stream keeps each
 * reason right under its "[ RUN ]" line. */
size_t tu_append_body(char *p, size_t sz, size_t n, void *ud)
{
    char **body = ud;
    size_t old = *body != NULL ? strlen(*body) : 0;

    *body = realloc(*body, old + sz * n + 1);
    memcpy(*body + old, p, sz * n);
    (*body)[old + sz * n] = '\0';
    return sz * n;
}

int tu_finish(int failures)
{
    if (failures != 0) {
        fflush(NULL);
        _exit(failures > 125 ? 125 : failures);
    }
    return 0;
}

__attribute__((constructor)) static void tu_init(void)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    dup2(STDOUT_FILENO, STDERR_FILENO);
    setvbuf(stderr, NULL, _IONBF, 0);
    signal(SIGABRT, tu_on_abort);
}

struct buf {
    char *p;
    size_t n, cap;
};

static void buf_add(struct buf *b, const char *s, size_t n)
{
    if (b->n + n + 1 > b->cap) {
        b->cap = (b->n + n + 1) * 2;
        b->p = realloc(b->p, b->cap);
    }
    memcpy(b->p + b->n, s, n);
    b->n += n;
    b->p[b->n] = '\0';
}

/* In a forked child: a clean environment (PATH, HOME, TMPDIR, the sanitizers' options, then
 * envp), then exec argv[0]. Never returns. */
static void exec_clean(const char *const *argv, const char *const *envp)
{
    char *env[64];
    size_t n = 0;
    static const char *const keep[] = {"PATH",          "HOME",         "TMPDIR", "ASAN_OPTIONS",
                                       "UBSAN_OPTIONS", "LSAN_OPTIONS", NULL};

    for (size_t i = 0; keep[i] != NULL; i++) {
        const char *v = getenv(keep[i]);
        if (v != NULL) {
            size_t len = strlen(keep[i]) + strlen(v) + 2;
            env[n] = malloc(len);
            snprintf(env[n++], len, "%s=%s", keep[i], v);
        }
    }
    for (size_t i = 0; envp != NULL && envp[i] != NULL && n < 62; i++) {
        env[n++] = (char *)envp[i];
    }
    env[n] = NULL;
    execve(argv[0], (char *const *)argv, env);
    fprintf(stderr, "exec %s: %s\n", argv[0], strerror(errno));
    _exit(127);
}

bool tu_run(const char *const *argv, const char *const *envp, int timeout_s, struct tu_proc *p)
{
    int out[2], err[2];
    pid_t pid;
    struct buf bo = {0}, be = {0};
    time_t deadline = time(NULL) + timeout_s;
    int status = 0;
    bool open_o = true, open_e = true;

    memset(p, 0, sizeof(*p));
    if (pipe(out) != 0 || pipe(err) != 0) {
        return false;
    }
    pid = fork();
    if (pid < 0) {
        return false;
    }
    if (pid == 0) {
        dup2(out[1], 1);
        dup2(err[1], 2);
        close(out[0]);
        close(err[0]);
        close(out[1]);
        close(err[1]);
        exec_clean(argv, envp);
    }
    close(out[1]);
    close(err[1]);
    buf_add(&bo, "", 0);
    buf_add(&be, "", 0);
    while (open_o || open_e) {
        struct pollfd fds[2] = {{out[0], POLLIN, 0}, {err[0], POLLIN, 0}};
        char chunk[4096];
        int left = (int)(deadline - time(NULL));
        if (left <= 0) {
            kill(pid, SIGKILL);
            break;
        }
        if (poll(fds, 2, left * 1000) <= 0) {
            continue;
        }
        for (int i = 0; i < 2; i++) {
            if (fds[i].revents != 0 && (i == 0 ? open_o : open_e)) {
                ssize_t r = read(fds[i].fd, chunk, sizeof(chunk));
                if (r <= 0) {
                    if (i == 0) {
                        open_o = false;
                    } else {
                        open_e = false;
                    }
                    fds[i].fd = -1;
                } else {
                    buf_add(i == 0 ? &bo : &be, chunk, (size_t)r);
                }
            }
        }
        if (!open_o) {
            fds[0].fd = -1;
        }
    }
    close(out[0]);
    close(err[0]);
    waitpid(pid, &status, 0);
    p->status = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    p->out = bo.p;
    p->err = be.p;
    return true;
}

void tu_proc_cleanup(struct tu_proc *p)
{
    free(p->out);
    free(p->err);
    p->out = p->err = NULL;
}

int64_t tu_now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void tu_sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

bool tu_bg_start(struct tu_bg *b, const char *const *argv, const char *const *envp)
{
    const char *dir = getenv("TMPDIR") != NULL ? getenv("TMPDIR") : "/tmp";
    pid_t parent;
    int fd;

    memset(b, 0, sizeof(*b));
    b->pid = -1;
    snprintf(b->log, sizeof(b->log), "%s/mysync-bg.XXXXXX", dir);
    fd = mkstemp(b->log);
    if (fd < 0) {
        return false;
    }
    parent = getpid();
    b->pid = fork();
    if (b->pid < 0) {
        close(fd);
        return false;
    }
    if (b->pid == 0) {
        /* a test that fails leaves by longjmp and _exit (tu_finish), skipping the stop of what
         * it started: the kernel kills the daemon when the test program ends */
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent) {
            _exit(127);
        }
        dup2(fd, 1);
        dup2(fd, 2);
        close(fd);
        exec_clean(argv, envp);
    }
    close(fd);
    return true;
}

bool tu_bg_alive(struct tu_bg *b)
{
    int status;

    if (b->pid <= 0) {
        return false;
    }
    if (waitpid(b->pid, &status, WNOHANG) == b->pid) {
        b->status = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
        b->pid = -1;
        return false;
    }
    return true;
}

char *tu_bg_wait_log(struct tu_bg *b, const char *needle, int timeout_s)
{
    int64_t until = tu_now_ms() + (int64_t)timeout_s * 1000;

    for (;;) {
        char *log = tu_slurp(b->log, NULL);
        if (log != NULL && strstr(log, needle) != NULL) {
            return log;
        }
        free(log);
        if (!tu_bg_alive(b) || tu_now_ms() > until) {
            return NULL;
        }
        tu_sleep_ms(50);
    }
}

int tu_bg_stop(struct tu_bg *b, int sig, int timeout_s)
{
    int64_t until = tu_now_ms() + (int64_t)timeout_s * 1000;

    if (b->pid <= 0) {
        return b->status;
    }
    kill(b->pid, sig);
    while (tu_bg_alive(b)) {
        if (tu_now_ms() > until) {
            kill(b->pid, SIGKILL);
            waitpid(b->pid, NULL, 0);
            b->pid = -1;
            return -1;
        }
        tu_sleep_ms(20);
    }
    return b->status;
}

void tu_bg_cleanup(struct tu_bg *b)
{
    if (b->pid > 0) {
        kill(b->pid, SIGKILL);
        waitpid(b->pid, NULL, 0);
        b->pid = -1;
    }
    if (b->log[0] != '\0') {
        unlink(b->log);
        b->log[0] = '\0';
    }
}

char *tu_slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    char *s;
    long n;

    if (f == NULL) {
        return NULL;
    }
    fseek(f, 0, SEEK_END);
    n = ftell(f);
    fseek(f, 0, SEEK_SET);
    s = malloc((size_t)n + 1);
    if (s == NULL || fread(s, 1, (size_t)n, f) != (size_t)n) {
        free(s);
        fclose(f);
        return NULL;
    }
    s[n] = '\0';
    fclose(f);
    if (len != NULL) {
        *len = (size_t)n;
    }
    return s;
}

size_t tu_fuzz_replay(const char *prefix, void (*one)(const uint8_t *data, size_t size))
{
    const char *root = getenv("MS_SOURCE_ROOT");
    char dir[1024];
    DIR *d;
    struct dirent *e;
    size_t n = 0;

    if (root == NULL) {
        fail_msg("MS_SOURCE_ROOT is not set (run through meson test)");
    }
    snprintf(dir, sizeof(dir), "%s/tests/data/fuzz", root);
    d = opendir(dir);
    if (d == NULL) {
        fail_msg("%s: %s", dir, strerror(errno));
    }
    while ((e = readdir(d)) != NULL) {
        char path[2048];
        size_t len;
        char *data;
        uint8_t *copy;
        if (strncmp(e->d_name, prefix, strlen(prefix)) != 0) {
            continue;
        }
        snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
        data = tu_slurp(path, &len);
        if (data == NULL) {
            fail_msg("%s: cannot read", path);
        }
        copy = malloc(len > 0 ? len : 1); /* exact size: ASan sees any read past the end */
        memcpy(copy, data, len);
        print_message("replaying %s\n", e->d_name);
        one(copy, len);
        free(copy);
        free(data);
        n++;
    }
    closedir(d);
    return n;
}

const char *tu_fuzz_seeds_dir(void)
{
    const char *dir = getenv("MS_FUZZ_SEEDS");

    return dir != NULL && dir[0] != '\0' ? dir : NULL;
}

void tu_fuzz_seed(const void *p, size_t n, const char *fmt, ...)
{
    char name[256], path[1024];
    va_list ap;
    FILE *f;

    va_start(ap, fmt);
    vsnprintf(name, sizeof(name), fmt, ap);
    va_end(ap);
    snprintf(path, sizeof(path), "%s/%s", tu_fuzz_seeds_dir(), name);
    f = fopen(path, "wb");
    if (f == NULL || fwrite(p, 1, n, f) != n || fclose(f) != 0) {
        fprintf(stderr, "%s: cannot write the seed: %s\n", path, strerror(errno));
        exit(1);
    }
}

char *tu_write_temp(const char *content)
{
    const char *dir = getenv("TMPDIR") != NULL ? getenv("TMPDIR") : "/tmp";
    size_t n = strlen(dir) + 32;
    char *path = malloc(n);
    int fd;

    snprintf(path, n, "%s/mysync-test.XXXXXX", dir);
    fd = mkstemp(path);
    if (fd < 0 || write(fd, content, strlen(content)) != (ssize_t)strlen(content)) {
        abort();
    }
    close(fd);
    return path;
}

/* ---- rig ---------------------------------------------------------------------------- */

static char rig_dir[1024];
static char *rig_env; /* contents of rig.env */

static const char *rig_script(void)
{
    const char *s = getenv("MS_RIG_SCRIPT");

    if (s == NULL) {
        fprintf(stderr, "MS_RIG_SCRIPT is not set (meson test sets it)\n");
        abort();
    }
    return s;
}

static void rig_load(void)
{
    char path[1100];
    FILE *f;
    long n;

    snprintf(path, sizeof(path), "%s/rig.env", rig_dir);
    f = fopen(path, "rb");
    if (f == NULL) {
        fprintf(stderr, "rig: cannot read %s\n", path);
        abort();
    }
    fseek(f, 0, SEEK_END);
    n = ftell(f);
    fseek(f, 0, SEEK_SET);
    free(rig_env);
    rig_env = calloc(1, (size_t)n + 1);
    if (fread(rig_env, 1, (size_t)n, f) != (size_t)n) {
        abort();
    }
    fclose(f);
}

static void rig_ensure(void)
{
    if (rig_env != NULL) {
        return;
    }
    if (getenv("MS_RIG_DIR") != NULL && getenv("MS_RIG_DIR")[0] != '\0') {
        snprintf(rig_dir, sizeof(rig_dir), "%s", getenv("MS_RIG_DIR"));
    } else {
        char owner[32], cmd[1400];
        FILE *p;
        snprintf(owner, sizeof(owner), "%d", (int)getpid());
        snprintf(cmd, sizeof(cmd), "bash '%s' start --owner %s", rig_script(), owner);
        fprintf(stderr, "rig: no MS_RIG_DIR, starting servers for this test\n");
        p = popen(cmd, "r");
        if (p == NULL || fgets(rig_dir, sizeof(rig_dir), p) == NULL) {
            fprintf(stderr, "rig: could not start the servers (%s)\n", cmd);
            abort();
        }
        rig_dir[strcspn(rig_dir, "\n")] = '\0';
        if (pclose(p) != 0) {
            fprintf(stderr, "rig: start failed\n");
            abort();
        }
        setenv("MS_RIG_DIR", rig_dir, 1);
    }
    rig_load();
}

static char *values[256];
static size_t nvalues;

static void free_values(void)
{
    for (size_t i = 0; i < nvalues; i++) {
        free(values[i]);
    }
    nvalues = 0;
    free(rig_env);
    rig_env = NULL;
}

const char *tu_rig(const char *key)
{
    size_t klen = strlen(key);

    if (nvalues == 0) {
        atexit(free_values);
    }

    rig_ensure();
    for (const char *line = rig_env; line != NULL && *line != '\0';) {
        const char *nl = strchr(line, '\n');
        size_t len = nl != NULL ? (size_t)(nl - line) : strlen(line);
        if (len > klen && strncmp(line, key, klen) == 0 && line[klen] == '=') {
            const char *val = line + klen + 1;
            size_t vlen = len - klen - 1;
            char *v;
            /* each distinct value is kept once (callers hold the pointers): a test polling
             * tu_rig() in a loop must not run out of slots (it_http aborted at 256 calls) */
            for (size_t i = 0; i < nvalues; i++) {
                if (strlen(values[i]) == vlen && memcmp(values[i], val, vlen) == 0) {
                    return values[i];
                }
            }
            if (nvalues == sizeof(values) / sizeof(values[0])) {
                fprintf(stderr, "rig: more than %zu distinct rig.env values\n", nvalues);
                abort();
            }
            v = strndup(val, vlen);
            values[nvalues++] = v;
            return v;
        }
        line = nl != NULL ? nl + 1 : NULL;
    }
    fprintf(stderr, "rig: %s is not in %s/rig.env (service not started?)\n", key, rig_dir);
    abort();
}

bool tu_rig_ctl(const char *cmd, const char *service)
{
    char line[1600];
    bool ok;

    rig_ensure();
    snprintf(line, sizeof(line), "bash '%s' %s %s --dir '%s'", rig_script(), cmd, service, rig_dir);
    ok = system(line) == 0;
    rig_load();
    return ok;
}

/* ---- MariaDB ---------------------------------------------------------------------------- */

MYSQL *tu_mysql_admin(const char *port_key)
{
    MYSQL *m = mysql_init(NULL);
    unsigned int timeout = 30;

    mysql_options(m, MYSQL_OPT_READ_TIMEOUT, &timeout);
    if (port_key == NULL) {
        port_key = "MS_RIG_MARIADB_PORT";
    }
    if (mysql_real_connect(m, "127.0.0.1", tu_rig("MS_RIG_ADMIN_USER"),
                           tu_rig("MS_RIG_ADMIN_PASSWORD"), NULL, (unsigned)atoi(tu_rig(port_key)),
                           NULL, CLIENT_MULTI_STATEMENTS) == NULL) {
        fail_msg("connect to %s: %s", port_key, mysql_error(m));
    }
    mysql_set_character_set(m, "utf8mb4");
    return m;
}

bool tu_sql_try(MYSQL *m, const char *q)
{
    int rc;

    if (mysql_query(m, q) != 0) {
        return false;
    }
    do {
        MYSQL_RES *r = mysql_store_result(m);
        if (r != NULL) {
            mysql_free_result(r);
        }
        rc = mysql_next_result(m);
    } while (rc == 0);
    return rc < 0; /* > 0: a later statement failed */
}

void tu_sql(MYSQL *m, const char *q)
{
    if (!tu_sql_try(m, q)) {
        fail_msg("%.300s: %s", q, mysql_error(m));
    }
}

void tu_master_status(MYSQL *m, char *file, size_t n, unsigned long long *pos)
{
    MYSQL_RES *r = NULL;
    MYSQL_ROW row;

    if (mysql_query(m, "SHOW MASTER STATUS") != 0 || (r = mysql_store_result(m)) == NULL) {
        fail_msg("SHOW MASTER STATUS: %s", mysql_error(m));
    }
    row = mysql_fetch_row(r);
    if (row == NULL) {
        fail_msg("SHOW MASTER STATUS: no row (binary logging off?)");
    }
    snprintf(file, n, "%s", row[0]);
    *pos = strtoull(row[1], NULL, 10);
    mysql_free_result(r);
}

/* fj_util.c: what the field commands share: errors, times, atomic output
 * files, progress bars, signals. */
#include "fj.h"
#include "fy_cli.h"
#include "fy_fail.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#ifndef RENAME_NOREPLACE
#define RENAME_NOREPLACE (1u << 0)
#endif

fj_dir_command *fj_find_dir_command(const char *name)
{
    if (!strcmp(name, "verify"))
        return fj_cmd_verify;
    if (!strcmp(name, "import"))
        return fj_cmd_import;
    if (!strcmp(name, "salvage"))
        return fj_cmd_salvage;
    return NULL;
}

int fj_fail(ferry_err e)
{
    fprintf(stderr, FJ_PROG ": %s\n", ferry_last_error());
    return fy_cli_exit_code(e);
}

int fj_usage(const char *cmd, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, FJ_PROG " %s: ", cmd);
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\nTry '" FJ_PROG " --help'.\n");
    va_end(ap);
    return EX_USAGE;
}

ferry_err fj_json_line(fy_buf *out, uint64_t seq, const fy_record *r)
{
    ferry_err e = fy_buf_printf(out, "{\"seq\":%" PRIu64 ",\"insert_id\":", seq);
    if (!e) e = fy_json_emit_string(out, r->insert_id, r->insert_id_len);
    if (!e) e = fy_buf_printf(out, ",\"recorded_at\":%" PRId64, r->recorded_at_ms);
    if (!e) e = fy_record_clock_json(out, r); /* mono_ms, boot_id when recorded */
    if (!e) e = fy_buf_puts(out, ",\"event\":");
    if (!e) e = fy_json_emit(out, &r->event);
    if (!e) e = fy_buf_puts(out, "}\n");
    return e;
}

volatile sig_atomic_t fj_stop;

static void on_signal(int sig)
{
    (void)sig;
    fj_stop = 1;
}

void fj_catch_signals(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
}

/* ---- atomic output ------------------------------------------------------- */

ferry_err fj_out_open(fj_out *o, const char *path, int force)
{
    memset(o, 0, sizeof *o);
    o->fd = -1;
    fy_buf_init(&o->buf, 0);
    ferry_err e = fy_sha256_init(&o->sha);
    if (e)
        return e;
    if (!path || !strcmp(path, "-")) {
        o->fd = STDOUT_FILENO;
        o->is_stdout = 1;
        return FERRY_OK;
    }
    struct stat st;
    if (!force && lstat(path, &st) == 0)
        return fy_fail(FERRY_EACCES, "%s already exists (use --force to replace it)", path);
    if (force && lstat(path, &st) == 0 && S_ISDIR(st.st_mode))
        return fy_fail(FERRY_EACCES, "%s is a directory", path);
    o->path = strdup(path);
    size_t n = strlen(path) + 32;
    o->tmp = malloc(n);
    if (!o->path || !o->tmp)
        return fy_fail(FERRY_ENOMEM, "out of memory");
    const char *slash = strrchr(path, '/');
    int dirlen = slash ? (int)(slash - path + 1) : 0;
    snprintf(o->tmp, n, "%.*s.%s.tmp-XXXXXX", dirlen, path, slash ? slash + 1 : path);
    o->fd = mkstemp(o->tmp); /* mode 0600 */
    if (o->fd < 0) {
        int err = errno;
        free(o->tmp);
        o->tmp = NULL;
        return fy_fail(err == EACCES || err == EROFS ? FERRY_EACCES : err == ENOENT ? FERRY_ENOENT : FERRY_EIO,
                       "cannot create a file beside %s: %s", path, strerror(err));
    }
    return FERRY_OK;
}

static ferry_err flush_out(fj_out *o)
{
    size_t off = 0;
    while (off < o->buf.len) {
        ssize_t w = write(o->fd, o->buf.data + off, o->buf.len - off);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0)
            return fy_fail(FERRY_EIO, "writing %s: %s",
                           o->is_stdout ? "standard output" : o->path, strerror(errno));
        off += (size_t)w;
    }
    fy_buf_reset(&o->buf);
    return FERRY_OK;
}

ferry_err fj_out_write(void *arg, const void *p, size_t n)
{
    fj_out *o = arg;
    fy_sha256_update(&o->sha, p, n);
    o->bytes += n;
    ferry_err e = fy_buf_append(&o->buf, p, n);
    if (!e && o->buf.len >= (1u << 16))
        e = flush_out(o);
    return e;
}

void fj_fsync_dir(const char *path)
{
    int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd >= 0) {
        fsync(fd);
        close(fd);
    }
}

void fj_parent_of(const char *path, char *out, size_t n)
{
    snprintf(out, n, "%s", path);
    char *slash = strrchr(out, '/');
    while (slash && slash > out && slash[1] == '\0') { /* "dir/" */
        *slash = '\0';
        slash = strrchr(out, '/');
    }
    if (!slash)
        snprintf(out, n, ".");
    else if (slash == out)
        out[1] = '\0';
    else
        *slash = '\0';
}

static void fsync_dir_of(const char *path)
{
    char parent[4200];
    fj_parent_of(path, parent, sizeof parent);
    fj_fsync_dir(parent);
}

ferry_err fj_out_commit(fj_out *o, int force, char hex[2 * FY_CAP_DIGEST + 1])
{
    unsigned char digest[FY_CAP_DIGEST];
    ferry_err e = flush_out(o);
    if (!e)
        e = fy_sha256_final(&o->sha, digest);
    if (e)
        return e;
    fy_hex(digest, FY_CAP_DIGEST, hex);
    if (o->is_stdout)
        return FERRY_OK;
    if (fsync(o->fd) != 0)
        return fy_fail(FERRY_EIO, "flushing %s to disk: %s", o->tmp, strerror(errno));
    if (close(o->fd) != 0) {
        o->fd = -1;
        return fy_fail(FERRY_EIO, "closing %s: %s", o->tmp, strerror(errno));
    }
    o->fd = -1;
    int rc;
    if (force) {
        rc = rename(o->tmp, o->path);
    } else {
        /* Never over a file that appeared meanwhile. */
        rc = (int)syscall(SYS_renameat2, AT_FDCWD, o->tmp, AT_FDCWD, o->path, RENAME_NOREPLACE);
        if (rc != 0 && (errno == ENOSYS || errno == EINVAL)) {
            rc = link(o->tmp, o->path);
            if (rc == 0)
                unlink(o->tmp);
            else if (errno != EEXIST) {
                struct stat st;
                rc = lstat(o->path, &st) == 0 ? (errno = EEXIST, -1) : rename(o->tmp, o->path);
            }
        }
    }
    if (rc != 0) {
        int err = errno;
        return fy_fail(err == EEXIST ? FERRY_EACCES : FERRY_EIO, "cannot put %s in place: %s%s", o->path,
                       strerror(err), err == EEXIST ? " (use --force to replace it)" : "");
    }
    free(o->tmp);
    o->tmp = NULL;
    fsync_dir_of(o->path);
    return FERRY_OK;
}

void fj_out_abort(fj_out *o)
{
    if (o->fd >= 0 && !o->is_stdout)
        close(o->fd);
    o->fd = -1;
    if (o->tmp)
        unlink(o->tmp);
    free(o->tmp);
    free(o->path);
    o->tmp = o->path = NULL;
    fy_sha256_free(&o->sha);
    fy_buf_free(&o->buf);
}

ferry_err fj_map_file(const char *path, fj_map *m)
{
    memset(m, 0, sizeof *m);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return fy_fail(errno == ENOENT ? FERRY_ENOENT : errno == EACCES ? FERRY_EACCES : FERRY_EIO, "%s: %s", path,
                       strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        return fy_fail(FERRY_EINVAL, "%s is not a regular file", path);
    }
    if ((uint64_t)st.st_size > (uint64_t)SIZE_MAX / 2) {
        close(fd);
        return fy_fail(FERRY_ETOOBIG, "%s is too large to read here", path);
    }
    m->len = (size_t)st.st_size;
    if (m->len == 0) {
        close(fd);
        m->p = (const unsigned char *)"";
        return FERRY_OK;
    }
    void *p = mmap(NULL, m->len, PROT_READ, MAP_PRIVATE, fd, 0);
    int err = errno;
    close(fd);
    if (p == MAP_FAILED) {
        m->len = 0;
        return fy_fail(FERRY_EIO, "%s: cannot map the file: %s", path, strerror(err));
    }
    m->p = p;
    return FERRY_OK;
}

void fj_unmap(fj_map *m)
{
    if (m->len)
        munmap((void *)(uintptr_t)m->p, m->len);
    memset(m, 0, sizeof *m);
}

/* ---- progress --------------------------------------------------------------- */

void fj_progress_init(fj_progress *p, int wanted, const char *what, uint64_t total)
{
    p->on = wanted && isatty(STDERR_FILENO);
    p->what = what;
    p->total = total;
    p->last_ms = 0;
}

void fj_progress_tick(fj_progress *p, uint64_t done)
{
    if (!p->on)
        return;
    int64_t now = fy_now_ms();
    if (now - p->last_ms < 100 && done != p->total)
        return;
    p->last_ms = now;
    unsigned pct = p->total ? (unsigned)(done * 100 / p->total) : 100;
    char bar[31];
    unsigned fill = pct * 30 / 100;
    for (unsigned i = 0; i < 30; i++)
        bar[i] = i < fill ? '#' : '.';
    bar[30] = '\0';
    fprintf(stderr, "\r%s [%s] %3u%%  %" PRIu64 "/%" PRIu64 " records", p->what, bar, pct, done, p->total);
    fflush(stderr);
}

void fj_progress_end(fj_progress *p)
{
    if (p->on)
        fputc('\n', stderr);
    p->on = 0;
}

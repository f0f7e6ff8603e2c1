/* copyjournal.c: ferry-journal copy DEST: a consistent, compacted hot copy
 * of a live journal (LMDB's compacting copy, MDB_CP_COMPACT), for a machine
 * of the same architecture. Written into a temporary directory beside DEST
 * (0700, data.mdb 0600), fsync'd, then renamed into place; an existing DEST
 * is refused. The copy keeps the journal id: it is a backup, not a new
 * journal (record into one of them only). */
#include "fj.h"
#include "fy_cli.h"
#include "fy_fail.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#ifndef RENAME_NOREPLACE
#define RENAME_NOREPLACE (1u << 0)
#endif

int fj_cmd_copy(fy_journal *j, int argc, char **argv)
{
    static const struct option opts[] = {
        {"json", no_argument, NULL, 'J'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    int json = 0, c;
    optind = 0;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 'J': json = 1; break;
        case 'h': printf("Usage: " FJ_PROG " [-j DIR] copy DEST [--json]\n"); return EX_OK;
        default: return fj_usage("copy", "bad option");
        }
    }
    if (argc - optind != 1)
        return fj_usage("copy", "give one destination directory");
    const char *dest = argv[optind];
    struct stat st;
    if (lstat(dest, &st) == 0) {
        fprintf(stderr, FJ_PROG ": %s already exists; copy makes a new directory\n", dest);
        return EX_CANTCREAT;
    }
    size_t n = strlen(dest) + 32;
    char *tmp = malloc(n), *file = malloc(n + 16), parent[4200];
    if (!tmp || !file) {
        free(tmp), free(file);
        return fj_fail(fy_fail(FERRY_ENOMEM, "out of memory"));
    }
    size_t dl = strlen(dest);
    while (dl > 1 && dest[dl - 1] == '/') /* "dir/" */
        dl--;
    snprintf(tmp, n, "%.*s.tmp-XXXXXX", (int)dl, dest);
    fj_parent_of(dest, parent, sizeof parent);
    ferry_err e = FERRY_OK;
    int fd = -1, made = 0;
    if (!mkdtemp(tmp)) { /* mode 0700 */
        e = fy_fail(errno == EACCES || errno == EROFS ? FERRY_EACCES : errno == ENOENT ? FERRY_ENOENT : FERRY_EIO,
                    "cannot create a directory beside %s: %s", dest, strerror(errno));
    } else {
        made = 1;
        snprintf(file, n + 16, "%s/data.mdb", tmp);
        fd = open(file, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
        if (fd < 0)
            e = fy_fail(FERRY_EIO, "cannot create %s: %s", file, strerror(errno));
    }
    if (!e) {
        int rc = mdb_env_copyfd2(j->env, fd, MDB_CP_COMPACT);
        if (rc)
            e = fy_fail_lmdb(rc, "journal %s: compacting copy", j->path);
    }
    if (!e && fsync(fd) != 0)
        e = fy_fail(FERRY_EIO, "flushing %s to disk: %s", file, strerror(errno));
    if (fd >= 0 && close(fd) != 0 && !e)
        e = fy_fail(FERRY_EIO, "closing %s: %s", file, strerror(errno));
    if (!e) {
        fj_fsync_dir(tmp);
        int rc = (int)syscall(SYS_renameat2, AT_FDCWD, tmp, AT_FDCWD, dest, RENAME_NOREPLACE);
        if (rc != 0 && (errno == ENOSYS || errno == EINVAL))
            rc = lstat(dest, &st) == 0 ? (errno = EEXIST, -1) : rename(tmp, dest);
        if (rc != 0)
            e = fy_fail(errno == EEXIST || errno == ENOTEMPTY ? FERRY_EACCES : FERRY_EIO, "cannot put %s in place: %s",
                        dest, strerror(errno));
        else
            fj_fsync_dir(parent);
    }
    if (e && made) {
        unlink(file);
        rmdir(tmp);
    }
    uint64_t bytes = 0;
    if (!e) {
        snprintf(file, n + 16, "%s/data.mdb", dest);
        if (stat(file, &st) == 0)
            bytes = (uint64_t)st.st_size;
    }
    free(tmp);
    free(file);
    if (e)
        return fj_fail(e);
    char id[33];
    fy_hex(j->id, 16, id);
    if (json) {
        fy_buf b;
        fy_buf_init(&b, 0);
        fy_buf_puts(&b, "{\"journal\":");
        fy_json_emit_string(&b, j->path, strlen(j->path));
        fy_buf_puts(&b, ",\"copy\":");
        fy_json_emit_string(&b, dest, strlen(dest));
        fy_buf_printf(&b, ",\"journal_id\":\"%s\",\"bytes\":%" PRIu64 "}\n", id, bytes);
        fwrite(b.data, 1, b.len, stdout);
        fy_buf_free(&b);
    } else {
        printf("copied journal %s (%s) to %s: %" PRIu64 " bytes, compacted\n", j->path, id, dest, bytes);
    }
    return EX_OK;
}

/* bench_sys.c: clocks, /proc/self/io, file sizes, scratch directories and
 * the machine description for ferry-bench (Linux). */
#define _XOPEN_SOURCE 700 /* nftw */
#include "bench_sys.h"

#include <dirent.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <sys/vfs.h>
#include <time.h>
#include <unistd.h>

double bench_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

int64_t bench_write_bytes(void)
{
    FILE *f = fopen("/proc/self/io", "r");
    if (!f)
        return -1;
    char line[128];
    long long v = -1;
    while (fgets(line, sizeof line, f)) {
        if (sscanf(line, "write_bytes: %lld", &v) == 1)
            break;
    }
    fclose(f);
    return (int64_t)v;
}

void bench_file_size(const char *path, uint64_t *size, uint64_t *alloc)
{
    struct stat st;
    *size = *alloc = 0;
    if (stat(path, &st) != 0)
        return;
    *size = (uint64_t)st.st_size;
    *alloc = (uint64_t)st.st_blocks * 512u;
}

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st, (void)ftw;
    if (flag == FTW_DP)
        rmdir(path);
    else
        unlink(path);
    return 0;
}

void bench_rm_rf(const char *path)
{
    nftw(path, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

static void copy_str(char *out, size_t len, const char *s)
{
    if (len)
        snprintf(out, len, "%s", s);
}

int bench_fs_info(const char *path, char *type, size_t type_len, char *device, size_t device_len,
                  char *options, size_t options_len)
{
    copy_str(type, type_len, "unknown");
    copy_str(device, device_len, "?");
    copy_str(options, options_len, "");
    char real[4096];
    if (!realpath(path, real))
        copy_str(real, sizeof real, path);
    /* The mount with the longest mount point that is a prefix of path. */
    FILE *f = fopen("/proc/self/mounts", "r");
    size_t best = 0;
    if (f) {
        char line[8192];
        while (fgets(line, sizeof line, f)) {
            char dev[1024], mnt[4096], fstype[128], opts[2048];
            if (sscanf(line, "%1023s %4095s %127s %2047s", dev, mnt, fstype, opts) != 4)
                continue;
            size_t n = strlen(mnt);
            int prefix = strncmp(real, mnt, n) == 0 &&
                         (real[n] == '/' || real[n] == '\0' || (n == 1 && mnt[0] == '/'));
            if (prefix && n >= best) {
                best = n;
                copy_str(type, type_len, fstype);
                copy_str(device, device_len, dev);
                copy_str(options, options_len, opts);
            }
        }
        fclose(f);
    }
    /* statfs has the final word on RAM filesystems. */
    struct statfs sf;
    if (statfs(path, &sf) == 0) {
        unsigned long magic = (unsigned long)sf.f_type;
        if (magic == 0x01021994ul) { /* TMPFS_MAGIC */
            copy_str(type, type_len, "tmpfs");
            return 1;
        }
        if (magic == 0x858458f6ul) { /* RAMFS_MAGIC */
            copy_str(type, type_len, "ramfs");
            return 1;
        }
    }
    return !strcmp(type, "tmpfs") || !strcmp(type, "ramfs");
}

int bench_ext4_journal(const char *device)
{
    const char *name = strrchr(device, '/');
    name = name ? name + 1 : device;
    DIR *d = opendir("/proc/fs/jbd2");
    if (!d)
        return access("/proc/fs/ext4", F_OK) == 0 ? 0 : -1;
    size_t n = strlen(name);
    int found = 0;
    struct dirent *e;
    while ((e = readdir(d)))
        if (!strncmp(e->d_name, name, n) && e->d_name[n] == '-')
            found = 1;
    closedir(d);
    return found;
}

static int cpu_model(char *out, size_t len)
{
    static const char *const keys[] = {"model name", "Model", "Hardware", "cpu model", "Processor"};
    FILE *f = fopen("/proc/cpuinfo", "r");
    if (!f)
        return 0;
    char line[512];
    int found = 0;
    for (size_t k = 0; k < sizeof keys / sizeof keys[0] && !found; k++) {
        rewind(f);
        size_t kl = strlen(keys[k]);
        while (fgets(line, sizeof line, f)) {
            if (strncmp(line, keys[k], kl) != 0)
                continue;
            char *colon = strchr(line, ':');
            if (!colon || (line[kl] != ' ' && line[kl] != '\t' && line[kl] != ':'))
                continue;
            char *v = colon + 1;
            while (*v == ' ' || *v == '\t')
                v++;
            v[strcspn(v, "\n")] = '\0';
            if (*v) {
                copy_str(out, len, v);
                found = 1;
                break;
            }
        }
    }
    fclose(f);
    return found;
}

void bench_machine(char *out, size_t len)
{
    char model[256];
    if (!cpu_model(model, sizeof model))
        copy_str(model, sizeof model, "unknown CPU");
    struct utsname u;
    if (uname(&u) != 0)
        memset(&u, 0, sizeof u);
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    snprintf(out, len, "%ld CPUs, %s, %s %s %s", n, model, u.sysname, u.release, u.machine);
}

void bench_date(char *out, size_t len)
{
    time_t t = time(NULL);
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(out, len, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

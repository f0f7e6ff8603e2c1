/* powercut.c: an LD_PRELOAD shim that simulates power loss and I/O errors
 * for one tracked file (a journal's data.mdb). Test-only; never installed.
 *
 * Usage (set by tests/reliability/powercut.py, which also does the "reboot"):
 *   FERRY_PC_DIR=DIR      shared state: DIR/state (created by the runner, 4 KiB,
 *                         mapped by every process) and one DIR/log.PID per process
 *   FERRY_PC_FILE=PATH    the tracked file (absolute path of data.mdb)
 *   FERRY_PC_CUT=sync:N   cut the power at the Nth sync point (it does not
 *                         complete); write:N: right after the Nth write
 *   FERRY_PC_FAULT=KIND:OP:N[:persistent]   KIND eio|enospc, OP write|sync:
 *                         the Nth call fails (transient), or every call from
 *                         the Nth on until the runner sets state.fault_off
 *
 * Model. Every write to the tracked file first logs the pre-image of the
 * bytes it replaces; a successful fsync/fdatasync logs SYNC (every pending
 * write of the file becomes durable, whichever process wrote it: the page
 * cache is shared); a write through an O_DSYNC/O_SYNC descriptor (LMDB writes
 * its meta page that way: strace shows openat(data.mdb, O_WRONLY|O_DSYNC)
 * with LMDB 0.9.24) logs RSYNC for its range. A failed sync logs SYNCFAIL:
 * the kernel may have marked the pages clean without writing them
 * ("fsyncgate"), so those writes stay in doubt until rewritten. msync is
 * counted as a sync point but changes nothing (ferry never maps writable).
 *
 * Order across processes. All events of all processes take a number from one
 * 64-bit counter in the shared state (atomic fetch-add). The cut is a
 * fetch-or of its top bit: the value before it is the cut point, and every
 * later fetch-add sees the bit and makes its process SIGKILL itself before
 * acting. So nothing numbered after the cut happens, and everything numbered
 * before it is in a log. Writes to the tracked file are serialised by LMDB's
 * writer lock, so a pre-image read after taking a number is the content the
 * write replaces. Output of any kind (write, send, ...) takes a number too:
 * an acknowledgement printed or sent after the cut cannot exist, and one
 * printed before it follows the sync it reports. After every process is gone,
 * the runner merges the logs by number and rebuilds a possible disk state:
 * per 512-byte sector, the durable version or any later version written
 * before the cut (powercut.py, apply()).
 *
 * lock.mdb is left alone: it holds no data, and the first process to open
 * the environment after the "reboot" (no other process alive) takes LMDB's
 * exclusive lock and initialises it again, as after a real reboot. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#define CUT_BIT (1ull << 63)
#define REC_MAGIC 0x31524350u /* "PCR1" */
#define END_MAGIC 0x31444e45u /* "END1" */

enum { R_WRITE = 1, R_SYNC = 2, R_SYNCFAIL = 3, R_RSYNC = 4, R_RSYNCFAIL = 5, R_CUT = 6 };

/* The shared state file; offsets are fixed (powercut.py reads them). */
typedef struct pc_state {
    uint64_t magic;     /* 0 */
    uint64_t seq;       /* 8: global event counter, top bit = cut */
    uint64_t writes;    /* 16: writes to the tracked file */
    uint64_t syncs;     /* 24: sync points of the tracked file */
    uint64_t cut_seq;   /* 32: number of the cut, +1 (0: no cut) */
    uint64_t cut_pid;   /* 40 */
    uint64_t faults;    /* 48: errors injected */
    uint64_t fault_off; /* 56: set by the runner: persistent faults stop */
} pc_state;

typedef struct rec_hdr {
    uint32_t magic, type;
    uint64_t seq, off, len, size_before, prelen;
} rec_hdr;

static ssize_t (*real_write)(int, const void *, size_t);
static ssize_t (*real_pwrite)(int, const void *, size_t, off_t);
static ssize_t (*real_writev)(int, const struct iovec *, int);
static ssize_t (*real_pwritev)(int, const struct iovec *, int, off_t);
static ssize_t (*real_send)(int, const void *, size_t, int);
static ssize_t (*real_sendto)(int, const void *, size_t, int, __CONST_SOCKADDR_ARG, socklen_t);
static ssize_t (*real_sendmsg)(int, const struct msghdr *, int);
static int (*real_fsync)(int);
static int (*real_fdatasync)(int);
static int (*real_msync)(void *, size_t, int);
static int (*real_ftruncate)(int, off_t);

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_once_t once = PTHREAD_ONCE_INIT;
static pc_state *st;       /* NULL: shim inactive, calls pass through */
static char dirpath[3800], filepath[3800];
static int have_ino;
static dev_t t_dev;
static ino_t t_ino;
static int rfd = -1;       /* read-only descriptor of the tracked file */
static int logfd = -1;
static pid_t logpid;
static int cut_is_sync;    /* FERRY_PC_CUT kind */
static uint64_t cut_n;     /* 0: no cut */
static int fault_errno, fault_is_sync, fault_persistent;
static uint64_t fault_n;

/* dlsym returns an object pointer; POSIX guarantees the copy works. */
#define RESOLVE(name)                                  \
    do {                                               \
        void *p_ = dlsym(RTLD_NEXT, #name);            \
        memcpy(&real_##name, &p_, sizeof p_);          \
    } while (0)

static void init(void)
{
    RESOLVE(write); RESOLVE(pwrite); RESOLVE(writev); RESOLVE(pwritev);
    RESOLVE(send); RESOLVE(sendto); RESOLVE(sendmsg);
    RESOLVE(fsync); RESOLVE(fdatasync); RESOLVE(msync); RESOLVE(ftruncate);
    const char *d = getenv("FERRY_PC_DIR"), *f = getenv("FERRY_PC_FILE");
    if (!d || !f || strlen(d) >= sizeof dirpath - 32 || strlen(f) >= sizeof filepath)
        return;
    strcpy(dirpath, d);
    strcpy(filepath, f);
    const char *c = getenv("FERRY_PC_CUT");
    if (c && !strncmp(c, "sync:", 5))
        cut_is_sync = 1, cut_n = strtoull(c + 5, NULL, 10);
    else if (c && !strncmp(c, "write:", 6))
        cut_n = strtoull(c + 6, NULL, 10);
    const char *fl = getenv("FERRY_PC_FAULT");
    if (fl && *fl) {
        char kind[16] = "", op[16] = "", mode[16] = "";
        unsigned long long n = 0;
        if (sscanf(fl, "%15[a-z]:%15[a-z]:%llu:%15s", kind, op, &n, mode) >= 3) {
            fault_errno = !strcmp(kind, "enospc") ? ENOSPC : EIO;
            fault_is_sync = !strcmp(op, "sync");
            fault_n = n;
            fault_persistent = !strcmp(mode, "persistent");
        }
    }
    char p[4096];
    snprintf(p, sizeof p, "%s/state", dirpath);
    int fd = open(p, O_RDWR | O_CLOEXEC);
    if (fd < 0)
        return;
    void *m = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    close(fd);
    if (m != MAP_FAILED)
        st = m;
}

static void die_now(void)
{
    kill(getpid(), SIGKILL);
    for (;;)
        pause();
}

/* A number in the global order; never returns once the power is cut. */
static uint64_t ticket(void)
{
    uint64_t s = __atomic_fetch_add(&st->seq, 1, __ATOMIC_SEQ_CST);
    if (s & CUT_BIT)
        die_now();
    return s;
}

static void log_rec(uint32_t type, uint64_t seq, uint64_t off, uint64_t len, uint64_t size_before,
                    const void *pre, uint64_t prelen)
{
    if (logfd < 0 || logpid != getpid()) {
        char p[4096];
        snprintf(p, sizeof p, "%s/log.%d", dirpath, (int)getpid());
        if (logfd >= 0)
            close(logfd);
        logfd = open(p, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
        logpid = getpid();
        if (logfd < 0) {
            fprintf(stderr, "powercut: cannot open %s: %s\n", p, strerror(errno));
            abort();
        }
    }
    rec_hdr h = {REC_MAGIC, type, seq, off, len, size_before, prelen};
    uint32_t end = END_MAGIC;
    struct iovec iov[3] = {{&h, sizeof h}, {(void *)(uintptr_t)pre, (size_t)prelen}, {&end, sizeof end}};
    size_t want = sizeof h + (size_t)prelen + sizeof end;
    ssize_t w = real_writev(logfd, iov, 3);
    if (w < 0 || (size_t)w != want) {
        fprintf(stderr, "powercut: log write failed\n");
        abort();
    }
}

/* The cut: everything numbered after it never happens. */
static void cut_now(void)
{
    uint64_t old = __atomic_fetch_or(&st->seq, CUT_BIT, __ATOMIC_SEQ_CST);
    if (old & CUT_BIT)
        die_now();
    __atomic_store_n(&st->cut_pid, (uint64_t)getpid(), __ATOMIC_SEQ_CST);
    __atomic_store_n(&st->cut_seq, old + 1, __ATOMIC_SEQ_CST);
    log_rec(R_CUT, old, 0, 0, 0, NULL, 0);
    die_now();
}

static int tracked(int fd)
{
    pthread_once(&once, init);
    if (!st || fd < 0)
        return 0;
    struct stat sb, ts;
    if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode))
        return 0;
    if (!have_ino) {
        if (stat(filepath, &ts) != 0)
            return 0;
        t_dev = ts.st_dev, t_ino = ts.st_ino, have_ino = 1;
    }
    if (sb.st_dev == t_dev && sb.st_ino == t_ino)
        return 1;
    if (stat(filepath, &ts) == 0 && ts.st_dev == sb.st_dev && ts.st_ino == sb.st_ino) {
        /* The path now names another file: the logs would mix two files. */
        fprintf(stderr, "powercut: %s was replaced while tracked; not modelled\n", filepath);
        abort();
    }
    return 0;
}

/* Output that is not to the tracked file: only the cut check. */
static void gate(void)
{
    pthread_once(&once, init);
    if (st)
        ticket();
}

/* Whether the call counted as `count` (1-based) of its kind fails now. */
static int inject(int is_sync, uint64_t count)
{
    if (!fault_n || fault_is_sync != is_sync)
        return 0;
    int hit = fault_persistent ? count >= fault_n && !__atomic_load_n(&st->fault_off, __ATOMIC_SEQ_CST)
                               : count == fault_n;
    if (hit)
        __atomic_fetch_add(&st->faults, 1, __ATOMIC_SEQ_CST);
    return hit;
}

static void read_pre(uint64_t off, uint64_t len, unsigned char *buf, uint64_t *prelen, uint64_t *size)
{
    if (rfd < 0)
        rfd = open(filepath, O_RDONLY | O_CLOEXEC);
    struct stat sb;
    *size = rfd >= 0 && fstat(rfd, &sb) == 0 ? (uint64_t)sb.st_size : 0;
    *prelen = off >= *size ? 0 : (*size - off < len ? *size - off : len);
    uint64_t got = 0;
    while (got < *prelen) {
        ssize_t r = pread(rfd, buf + got, (size_t)(*prelen - got), (off_t)(off + got));
        if (r <= 0) {
            fprintf(stderr, "powercut: cannot read pre-image of %s: %s\n", filepath, strerror(errno));
            abort();
        }
        got += (uint64_t)r;
    }
}

/* A write of iov[0..n) at off (-1: the descriptor's position) to the tracked
 * file. Holds mu: the pre-image, the write and its log entries stay together. */
static ssize_t tracked_write(int fd, const struct iovec *iov, int n, off_t off)
{
    pthread_mutex_lock(&mu);
    uint64_t seq = ticket();
    uint64_t len = 0;
    for (int i = 0; i < n; i++)
        len += iov[i].iov_len;
    int fl = fcntl(fd, F_GETFL);
    int dsync = fl >= 0 && (fl & O_DSYNC);
    uint64_t nw = __atomic_add_fetch(&st->writes, 1, __ATOMIC_SEQ_CST);
    uint64_t ns = dsync ? __atomic_add_fetch(&st->syncs, 1, __ATOMIC_SEQ_CST) : 0;
    int sync_fault = dsync && inject(1, ns);
    if (inject(0, nw) || (sync_fault && fault_errno == ENOSPC)) {
        pthread_mutex_unlock(&mu);
        errno = fault_errno; /* nothing written */
        return -1;
    }
    uint64_t pos;
    if (off >= 0)
        pos = (uint64_t)off;
    else if (fl >= 0 && (fl & O_APPEND)) {
        struct stat sb;
        pos = fstat(fd, &sb) == 0 ? (uint64_t)sb.st_size : 0;
    } else
        pos = (uint64_t)lseek(fd, 0, SEEK_CUR);
    unsigned char *pre = malloc(len ? len : 1);
    if (!pre)
        abort();
    uint64_t prelen, size;
    read_pre(pos, len, pre, &prelen, &size);
    log_rec(R_WRITE, seq, pos, len, size, pre, prelen);
    free(pre);
    ssize_t w = off >= 0 ? real_pwritev(fd, iov, n, off) : real_writev(fd, iov, n);
    int saved = errno;
    if (cut_n && !cut_is_sync && nw == cut_n)
        cut_now(); /* the write is in the page cache, not yet on disk */
    if (dsync) {
        if (cut_n && cut_is_sync && ns == cut_n)
            cut_now();
        int fail = sync_fault; /* EIO: written, maybe not on disk */
        log_rec(fail ? R_RSYNCFAIL : R_RSYNC, ticket(), pos, len, 0, NULL, 0);
        if (fail) {
            pthread_mutex_unlock(&mu);
            errno = EIO; /* in the page cache, maybe not on disk */
            return -1;
        }
    }
    pthread_mutex_unlock(&mu);
    errno = saved;
    return w;
}

static int tracked_sync(int fd, int (*real)(int))
{
    pthread_mutex_lock(&mu);
    (void)ticket();
    uint64_t ns = __atomic_add_fetch(&st->syncs, 1, __ATOMIC_SEQ_CST);
    if (cut_n && cut_is_sync && ns == cut_n)
        cut_now();
    int fail = inject(1, ns);
    int rc = fail ? 0 : real(fd);
    int saved = errno;
    if (fail || rc != 0) {
        log_rec(R_SYNCFAIL, ticket(), 0, 0, 0, NULL, 0);
        pthread_mutex_unlock(&mu);
        errno = fail ? fault_errno : saved;
        return -1;
    }
    /* Numbered after it returned: nothing written later counts as synced. */
    log_rec(R_SYNC, ticket(), 0, 0, 0, NULL, 0);
    pthread_mutex_unlock(&mu);
    return 0;
}

/* ---- the interposed calls ------------------------------------------------ */

ssize_t write(int fd, const void *buf, size_t n)
{
    if (tracked(fd)) {
        struct iovec v = {(void *)(uintptr_t)buf, n};
        return tracked_write(fd, &v, 1, -1);
    }
    gate();
    return real_write(fd, buf, n);
}

ssize_t pwrite(int fd, const void *buf, size_t n, off_t off)
{
    if (tracked(fd)) {
        struct iovec v = {(void *)(uintptr_t)buf, n};
        return tracked_write(fd, &v, 1, off);
    }
    gate();
    return real_pwrite(fd, buf, n, off);
}

ssize_t pwrite64(int fd, const void *buf, size_t n, off_t off)
{
    return pwrite(fd, buf, n, off);
}

ssize_t writev(int fd, const struct iovec *iov, int n)
{
    if (tracked(fd))
        return tracked_write(fd, iov, n, -1);
    gate();
    return real_writev(fd, iov, n);
}

ssize_t pwritev(int fd, const struct iovec *iov, int n, off_t off)
{
    if (tracked(fd))
        return tracked_write(fd, iov, n, off);
    gate();
    return real_pwritev(fd, iov, n, off);
}

ssize_t pwritev64(int fd, const struct iovec *iov, int n, off_t off)
{
    return pwritev(fd, iov, n, off);
}

ssize_t send(int fd, const void *buf, size_t n, int flags)
{
    gate();
    return real_send(fd, buf, n, flags);
}

ssize_t sendto(int fd, const void *buf, size_t n, int flags, __CONST_SOCKADDR_ARG a, socklen_t al)
{
    gate();
    return real_sendto(fd, buf, n, flags, a, al);
}

ssize_t sendmsg(int fd, const struct msghdr *m, int flags)
{
    gate();
    return real_sendmsg(fd, m, flags);
}

int fsync(int fd)
{
    if (tracked(fd))
        return tracked_sync(fd, real_fsync);
    gate();
    return real_fsync(fd);
}

int fdatasync(int fd)
{
    if (tracked(fd))
        return tracked_sync(fd, real_fdatasync);
    gate();
    return real_fdatasync(fd);
}

/* LMDB 0.9 truncates data.mdb only with MDB_WRITEMAP, which ferry never
 * uses; a size change outside writes is not modelled, so it stops the test. */
int ftruncate(int fd, off_t len)
{
    if (tracked(fd)) {
        fprintf(stderr, "powercut: ftruncate of %s is not modelled\n", filepath);
        abort();
    }
    gate();
    return real_ftruncate(fd, len);
}

int msync(void *addr, size_t len, int flags)
{
    gate();
    if (st) {
        uint64_t ns = __atomic_add_fetch(&st->syncs, 1, __ATOMIC_SEQ_CST);
        if (cut_n && cut_is_sync && ns == cut_n)
            cut_now();
    }
    return real_msync(addr, len, flags);
}

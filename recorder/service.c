/* service.c: `ferry-record --listen PATH`, a local recording service with
 * group commit.
 *
 * Protocol (per connection). The client sends lines; each is one Amplitude
 * event JSON object. Every line that is neither blank nor a command gets
 * exactly one answer, in the order of the lines:
 *     ok SEQ          the event is durable under sequence number SEQ
 *     error REASON    it was not recorded; REASON is one line
 * Commands (lines starting with '#'):
 *     #ferry noack    from now on answer only errors (and syncs); no answer
 *     #ferry ack      back to one answer per line; no answer
 *     #ferry sync     answered `ok SEQ` once every earlier line is durable or
 *                     refused; SEQ is the last event recorded on this
 *                     connection (0: none)
 * A last line without a newline counts when the client shuts down its
 * sending side. Lines over 1 MiB are refused without being buffered.
 *
 * Threads. One I/O loop, in the caller's thread, owns every socket (epoll,
 * edge-triggered): it accepts, reads, splits lines, parses each event into
 * the group it is filling (ferry_batch_add_json) and writes the answers. One
 * committer thread commits each group with one ferry_record_batch (one
 * transaction, one fsync) and wakes the loop through an eventfd. While a
 * group commits, new lines gather in the next one: a lone event is handed
 * over at once, and many busy clients share each fsync. The loop hands its
 * group over when the committer is free and either the loop has gone once
 * through every connection with input (a round) or the group holds
 * HANDOFF_EVENTS events. A group is closed at GROUP_MAX_EVENTS events or
 * s->group_est bytes (est_bytes): a transaction may add at most half of the
 * journal's room, and at most GROUP_EST_CAP (larger groups, fewer fsyncs and
 * fewer pages rewritten per event when the committer is the bottleneck).
 *
 * Two I/O loops (FERRY_SERVICE_IO_THREADS=2 in the environment, two CPUs or
 * more): connections are dealt out to the loops in turn and each loop parses
 * into its own groups, which the one committer commits one after the other,
 * each in its own transaction (ferry.h cannot put two batches in one
 * transaction). On the 2-CPU development machine, shared with the clients,
 * two loops did not record more events per second than one, made each
 * transaction half as large (more fsyncs and device writes per event) and
 * slowed clients that keep one event in flight (tests/service/README.md,
 * measured when jansson's parse was most of the CPU; the yajl fast path
 * has since made the parse cheaper still). Hence one by default.
 *
 * Bounds. A connection with MAX_UNANSWERED lines awaiting their answers, or
 * answers the socket did not take, is not read until the client catches up;
 * the others go on. Complete lines are parsed straight from the loop's read
 * buffer; a connection keeps only its partial line (usually a few bytes), all
 * of them together at most INBUF_BUDGET bytes, one at most LINE_MAX_BYTES.
 * At most --max-clients connections: more are answered `error too many
 * clients` and closed.
 *
 * Memory. LMDB reads the journal through a memory map; every page the
 * committer reads (and, by the kernel's fault-around, its neighbours) stays
 * mapped and counts in the process's RSS although it is page cache, shared
 * and reclaimable. So that the service's RSS stays its own memory (and the
 * OOM killer does not pick it for the journal's size), the committer drops
 * those mappings between commits when they grew by TRIM_BYTES (maybe_trim). */
#define _GNU_SOURCE /* accept4, SO_PEERCRED */
#include "service.h"
#include "recorder_internal.h"
#include "fy_cli.h"
#include "fy_fail.h"
#include "fy_pagewalk.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <inttypes.h>
#include <pthread.h>
#include <pwd.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/mman.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#define LINE_MAX_BYTES (1u << 20)  /* longer lines are refused */
#define SCRATCH_BYTES (64u << 10)  /* a loop's read buffer */
#define READ_CHUNK (64u << 10)     /* one read into a connection's own buffer */
#define INBUF_BUDGET (32u << 20)   /* every connection's partial line together */
#define MAX_UNANSWERED 1024u       /* lines awaiting an answer, per connection */
#define OUT_CHUNK (16u << 10)      /* answers formatted per write */
#define GROUP_MAX_EVENTS 4096u
#define GROUP_EST_CAP (1u << 20)   /* journal bytes of one group, over 2.25 (est_bytes) */
#define HANDOFF_EVENTS 256u        /* hand a group over mid-round from this many */
#define DEFAULT_MAX_CLIENTS 256u
#define DRAIN_MS 5000              /* at shutdown: time left to write the last answers */
#define MAX_REASON 400u            /* bytes of an error reason */
#define MAX_LOOPS 2u               /* I/O loops (FERRY_SERVICE_IO_THREADS=2) */
#define TRIM_CHECK 8u              /* commits between looks at the mapped journal pages */
#define TRIM_BYTES (1u << 20)      /* mapped journal pages that the committer drops */

/* ---- state -------------------------------------------------------------- */

enum { IT_PENDING, IT_OK, IT_ERR, IT_SYNC };

/* A run of answers to consecutive lines. */
typedef struct item {
    unsigned char kind;
    unsigned char quiet; /* noack: no "ok" lines */
    unsigned char owned; /* msg was malloc'ed */
    uint32_t n;          /* lines still to answer */
    uint32_t index;      /* IT_PENDING: its first event's index in the group */
    uint64_t gen;        /* IT_PENDING: the group */
    uint64_t seq;        /* IT_OK: the sequence number of the next answer */
    char *msg;           /* IT_ERR: the reason */
} item;

typedef struct conn {
    int fd;
    unsigned long id;
    char *in; /* unparsed input: a partial line, or complete lines held back */
    size_t in_len, in_cap;
    char *out; /* formatted answers the socket did not take yet */
    size_t out_off, out_len;
    item *items; /* ring, in line order */
    size_t head, count, cap;
    size_t unanswered; /* lines in items */
    uint64_t lineno;
    uint64_t last_gen; /* the last group this connection put events in */
    uint64_t last_seq; /* the last event answered (for #ferry sync) */
    unsigned long n_ok, n_err;
    unsigned refs; /* groups holding events of this connection */
    long pid, uid;
    unsigned noack : 1, discarding : 1, eof : 1, closed : 1, readable : 1, backlog : 1, in_ready : 1,
        mem_wait : 1, want_out : 1, hup : 1;
    struct conn *prev, *next; /* the loop's connections, open or waiting for their groups */
} conn;

struct loop;

typedef struct cgroup {
    struct loop *owner;
    ferry_batch *b;
    uint64_t gen;
    size_t n, est;
    conn **conns; /* connections with events in it, each once */
    size_t nconns, cap;
    ferry_err err; /* the commit's result */
    uint64_t first_seq;
    char msg[512];
} cgroup;

typedef struct loop {
    struct svc *s;
    unsigned idx;
    pthread_t thread;
    int started;
    int ep, wake; /* wake: an eventfd for the committer, new connections, stop */
    char *scratch;
    cgroup groups[2];
    cgroup *fill;   /* being filled */
    cgroup *commit; /* with the committer while busy */
    uint64_t next_gen;
    int busy, group_blocked;
    atomic_int done; /* the committer finished `commit` */
    conn *all;
    conn **ready; /* connections with input to process, in round order */
    size_t nready, ready_cap;
    size_t inbuf_total;
    pthread_mutex_t imu; /* guards the inbox: connections accepted by loop 0 */
    conn **inbox;
    size_t ninbox, inbox_cap;
    int stop_begun;
    int drained;            /* loop 0: done, waiting for the other loops */
    int64_t drain_deadline; /* monotonic ms; 0: not draining yet */
    unsigned long long st_events, st_commits, st_refused;
} loop;

typedef struct svc {
    const char *prog;
    const fy_service_opts *o;
    const char *journal_dir;
    const ferry_options *jopts;
    unsigned max_clients;
    size_t page;
    size_t group_est; /* a group's bound in est_bytes units (set once the journal is open) */
    int lfd, sigfd;
    int made_socket; /* the socket file is ours: remove it at exit */
    dev_t sock_dev;
    ino_t sock_ino;
    loop loops[MAX_LOOPS];
    unsigned nloops, next_loop;
    pthread_t committer;
    int committer_started;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    cgroup *queue[MAX_LOOPS]; /* under mu: groups to commit, in order */
    unsigned qhead, qlen;
    int quit;                 /* under mu */
    int exit_code;            /* under mu: the first stop's */
    atomic_int stopping, hurry, full_logged;
    atomic_uint nconns;
    atomic_uint loops_running;
    /* loop 0 only */
    unsigned long next_id;
    int64_t fd_warned_ms;
    int spare_fd;
    unsigned long long st_conns, st_turned_away;
    ferry_journal *j; /* the committer's once it runs */
    /* committer only: when to trim the journal's mapped pages */
    unsigned trim_count;
    size_t shared_base;
    unsigned long long st_trims;
} svc;

static char MARK_LISTEN, MARK_SIGNAL, MARK_WAKE; /* epoll data of the non-connections */
static const char oom_reason[] = "out of memory in the service";

/* ---- small helpers ------------------------------------------------------ */

static void logmsg(const svc *s, const char *fmt, ...) FY_PRINTF(2, 3);
static void logmsg(const svc *s, const char *fmt, ...)
{
    char buf[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    fprintf(stderr, "%s: %s\n", s->prog, buf);
}

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* One printable line: control characters become spaces; at most MAX_REASON bytes. */
static void one_line(char *dst, size_t n, const char *src)
{
    size_t k = 0;
    for (; src[k] && k + 1 < n && k < MAX_REASON; k++) {
        unsigned char ch = (unsigned char)src[k];
        dst[k] = (ch < 0x20 || ch == 0x7f) ? ' ' : (char)ch;
    }
    dst[k] = '\0';
}

/* An event's share of s->group_est, from its line's length. The encoded
 * record is at most 2.25 times the JSON text plus what the recorder adds
 * (insert_id, time, the record's header: under 96 bytes): no JSON value
 * grows more than "1.5," (4 bytes) into a MessagePack double (9 bytes);
 * strings, integers, literals and containers shrink. Its footprint in the
 * journal follows the journal's rule (a node, or whole overflow pages for
 * records over half a page). The share is that worst footprint divided by
 * 2.25, so a group whose shares stay under s->group_est adds at most 2.25
 * times as many bytes: under half of the journal's room, the most a
 * transaction may add. Typical events count about their own size. */
static size_t est_bytes(const svc *s, size_t line_len)
{
    size_t rec = line_len * 9 / 4 + 96;
    if (rec > FERRY_MAX_RECORD_BYTES)
        rec = FERRY_MAX_RECORD_BYTES;
    size_t node = rec + 18;
    if (node > s->page / 2)
        node = (node + s->page - 1) / s->page * s->page + 16;
    return node * 4 / 9 + 1;
}

/* sd_notify without libsystemd: a datagram to $NOTIFY_SOCKET, if set. */
static void notify(const char *msg)
{
    const char *p = getenv("NOTIFY_SOCKET");
    struct sockaddr_un a;
    size_t n = p ? strlen(p) : 0;
    if (!p || (p[0] != '/' && p[0] != '@') || n >= sizeof a.sun_path)
        return;
    memset(&a, 0, sizeof a);
    a.sun_family = AF_UNIX;
    memcpy(a.sun_path, p, n);
    if (p[0] == '@')
        a.sun_path[0] = '\0'; /* abstract namespace */
    int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return;
    (void)!sendto(fd, msg, strlen(msg), MSG_NOSIGNAL, (struct sockaddr *)&a,
                  (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n));
    close(fd);
}

static void wake(loop *l)
{
    uint64_t one = 1;
    ssize_t w;
    do
        w = write(l->wake, &one, sizeof one);
    while (w < 0 && errno == EINTR);
}

/* ---- answers ------------------------------------------------------------ */

static item *item_at(const conn *c, size_t i) { return &c->items[(c->head + i) % c->cap]; }

static item *item_push(conn *c)
{
    if (c->count == c->cap) {
        size_t cap = c->cap ? c->cap * 2 : 8;
        item *p = malloc(cap * sizeof *p);
        if (!p)
            return NULL;
        for (size_t i = 0; i < c->count; i++)
            p[i] = *item_at(c, i);
        free(c->items);
        c->items = p;
        c->cap = cap;
        c->head = 0;
    }
    item *it = &c->items[(c->head + c->count) % c->cap];
    memset(it, 0, sizeof *it);
    c->count++;
    return it;
}

static void item_pop(conn *c)
{
    item *it = item_at(c, 0);
    if (it->owned)
        free(it->msg);
    c->head = (c->head + 1) % c->cap;
    if (--c->count == 0) {
        c->head = 0;
        if (c->cap > 64) { /* a backlog is gone: give its memory back */
            free(c->items);
            c->items = NULL;
            c->cap = 0;
        }
    }
}

static void conn_close(loop *l, conn *c);

/* Queues `error REASON` for one line. Returns -1 (and closes the connection)
 * when there is no memory to keep the answers in order. */
static int add_error(loop *l, conn *c, const char *fmt, ...) FY_PRINTF(3, 4);
static int add_error(loop *l, conn *c, const char *fmt, ...)
{
    char raw[1024], clean[MAX_REASON + 1];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(raw, sizeof raw, fmt, ap);
    va_end(ap);
    one_line(clean, sizeof clean, raw);
    item *it = item_push(c);
    if (!it) {
        logmsg(l->s, "connection %lu: out of memory; closing it", c->id);
        conn_close(l, c);
        return -1;
    }
    it->kind = IT_ERR;
    it->n = 1;
    it->msg = strdup(clean);
    it->owned = it->msg != NULL;
    if (!it->msg)
        it->msg = (char *)(uintptr_t)oom_reason;
    c->unanswered++;
    c->n_err++;
    l->st_refused++;
    if (l->s->o->verbose)
        logmsg(l->s, "connection %lu: %s", c->id, clean);
    return 0;
}

static void ready_add(loop *l, conn *c)
{
    if (c->in_ready || c->closed || !(c->readable || c->backlog))
        return;
    if (l->nready == l->ready_cap) {
        size_t cap = l->ready_cap ? l->ready_cap * 2 : 64;
        conn **p = realloc(l->ready, cap * sizeof *p);
        if (!p)
            return; /* it comes back with its next epoll event */
        l->ready = p;
        l->ready_cap = cap;
    }
    l->ready[l->nready++] = c;
    c->in_ready = 1;
}

static void in_set_cap(loop *l, conn *c, size_t cap)
{
    l->inbuf_total = l->inbuf_total - c->in_cap + cap;
    c->in_cap = cap;
}

static void in_free(loop *l, conn *c)
{
    free(c->in);
    c->in = NULL;
    c->in_len = 0;
    in_set_cap(l, c, 0);
}

static void want_out(loop *l, conn *c, int on)
{
    if (c->want_out == (unsigned)on)
        return;
    struct epoll_event ev = {.events = EPOLLIN | EPOLLRDHUP | EPOLLET | (on ? EPOLLOUT : 0u), .data.ptr = c};
    epoll_ctl(l->ep, EPOLL_CTL_MOD, c->fd, &ev);
    c->want_out = on ? 1u : 0u;
}

static void conn_close(loop *l, conn *c)
{
    if (c->closed)
        return;
    if (l->s->o->verbose)
        logmsg(l->s, "connection %lu closed: %lu recorded, %lu refused", c->id, c->n_ok, c->n_err);
    close(c->fd);
    c->fd = -1;
    c->closed = 1;
    in_free(l, c);
    free(c->out);
    c->out = NULL;
    c->out_len = c->out_off = 0;
    while (c->count)
        item_pop(c);
    free(c->items);
    c->items = NULL;
    c->cap = 0;
    c->unanswered = 0;
    atomic_fetch_sub(&l->s->nconns, 1u);
}

/* Frees closed connections that no group and no list refers to; called
 * between rounds, never while an epoll batch may still name them. */
static void reap(loop *l)
{
    conn *c = l->all;
    while (c) {
        conn *next = c->next;
        if (c->closed && c->refs == 0 && !c->in_ready) {
            if (c->prev)
                c->prev->next = c->next;
            else
                l->all = c->next;
            if (c->next)
                c->next->prev = c->prev;
            free(c);
        }
        c = next;
    }
}

static int input_done(const conn *c)
{
    return c->eof && !c->readable && c->in_len == 0 && !c->backlog && !c->discarding;
}

/* Writes p[0..n); what the socket does not take is kept for EPOLLOUT
 * (p may point into c->out). Returns 1 when all went out, 0 when the socket
 * is full, -1 when the client is gone (the connection is then closed). */
static int send_out(loop *l, conn *c, const char *p, size_t n)
{
    int from_out = c->out_len != 0;
    while (n) {
        ssize_t w = send(c->fd, p, n, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (w > 0) {
            p += w;
            n -= (size_t)w;
        } else if (w < 0 && errno == EINTR) {
            continue;
        } else if (w < 0 && errno == EAGAIN) {
            if (from_out) {
                c->out_off = (size_t)(p - c->out);
            } else {
                char *q = malloc(n);
                if (!q) {
                    conn_close(l, c);
                    return -1;
                }
                memcpy(q, p, n);
                c->out = q;
                c->out_off = 0;
            }
            c->out_len = n;
            want_out(l, c, 1);
            return 0;
        } else {
            conn_close(l, c);
            return -1;
        }
    }
    if (from_out) {
        free(c->out);
        c->out = NULL;
        c->out_off = c->out_len = 0;
    }
    want_out(l, c, 0);
    return 1;
}

/* Formats every answer that is due, in order, and writes it. */
static void flush(loop *l, conn *c)
{
    if (c->closed)
        return;
    if (c->out_len && send_out(l, c, c->out + c->out_off, c->out_len) <= 0)
        return;
    char buf[OUT_CHUNK];
    for (;;) {
        size_t len = 0;
        while (c->count && len + MAX_REASON + 32 < sizeof buf) {
            item *it = item_at(c, 0);
            if (it->kind == IT_PENDING)
                break;
            if (it->kind == IT_SYNC) {
                len += (size_t)snprintf(buf + len, sizeof buf - len, "ok %" PRIu64 "\n", c->last_seq);
                it->n = 0;
                c->unanswered--;
            }
            while (it->n && len + MAX_REASON + 32 < sizeof buf) {
                if (it->kind == IT_OK) {
                    if (!it->quiet)
                        len += (size_t)snprintf(buf + len, sizeof buf - len, "ok %" PRIu64 "\n", it->seq);
                    c->last_seq = it->seq;
                    if (it->seq)
                        it->seq++;
                } else {
                    len += (size_t)snprintf(buf + len, sizeof buf - len, "error %s\n", it->msg);
                }
                it->n--;
                c->unanswered--;
            }
            if (it->n == 0)
                item_pop(c);
        }
        if (len == 0)
            break;
        if (send_out(l, c, buf, len) <= 0)
            return;
    }
    ready_add(l, c); /* reading may go on */
    if (input_done(c) && c->count == 0)
        conn_close(l, c);
}

/* ---- the committer ------------------------------------------------------ */

/* File-backed pages mapped by this process (statm's "shared"), in bytes. */
static long mapped_file_bytes(const svc *s)
{
    char buf[128];
    int fd = open("/proc/self/statm", O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n <= 0)
        return -1;
    buf[n] = '\0';
    unsigned long size, resident, shared;
    if (sscanf(buf, "%lu %lu %lu", &size, &resident, &shared) != 3)
        return -1;
    return (long)(shared * s->page);
}

/* Between commits (committer thread): when the journal's mapped pages grew
 * by TRIM_BYTES, drop this process's mappings of them: MADV_DONTNEED on a
 * shared file mapping only unmaps; the pages stay in the page cache and a
 * later read maps them again. Safe here: only this thread uses the journal,
 * no transaction is open, and LMDB moves its map only inside its own calls
 * in this thread, so the range found is the journal's until madvise. */
static void maybe_trim(svc *s)
{
    if (!s->j || ++s->trim_count < TRIM_CHECK)
        return;
    s->trim_count = 0;
    long now = mapped_file_bytes(s);
    if (now < 0 || (size_t)now < s->shared_base + TRIM_BYTES)
        return;
    ferry_release_mapped_pages(s->j);
    s->st_trims++;
    now = mapped_file_bytes(s);
    if (now >= 0)
        s->shared_base = (size_t)now;
}

static void *committer(void *arg)
{
    svc *s = arg;
    long base = mapped_file_bytes(s);
    s->shared_base = base > 0 ? (size_t)base : 0;
    pthread_mutex_lock(&s->mu);
    for (;;) {
        while (!s->qlen && !s->quit)
            pthread_cond_wait(&s->cv, &s->mu);
        if (!s->qlen)
            break;
        cgroup *g = s->queue[s->qhead];
        s->qhead = (s->qhead + 1) % MAX_LOOPS;
        s->qlen--;
        pthread_mutex_unlock(&s->mu);
        uint64_t seq = 0;
        g->err = ferry_record_batch(s->j, g->b, &seq);
        g->first_seq = seq;
        if (g->err) {
            snprintf(g->msg, sizeof g->msg, "%s", ferry_last_error());
            ferry_batch_clear(g->b);
        }
        loop *l = g->owner;
        atomic_store_explicit(&l->done, 1, memory_order_release);
        wake(l);
        maybe_trim(s);
        pthread_mutex_lock(&s->mu);
    }
    pthread_mutex_unlock(&s->mu);
    return NULL;
}

static void handoff(loop *l)
{
    svc *s = l->s;
    cgroup *g = l->fill;
    l->fill = g == &l->groups[0] ? &l->groups[1] : &l->groups[0];
    l->fill->gen = ++l->next_gen;
    l->busy = 1;
    l->group_blocked = 0;
    l->commit = g;
    pthread_mutex_lock(&s->mu);
    s->queue[(s->qhead + s->qlen) % MAX_LOOPS] = g;
    s->qlen++;
    pthread_cond_signal(&s->cv);
    pthread_mutex_unlock(&s->mu);
}

static int fatal_error(ferry_err e)
{
    return e == FERRY_EIO || e == FERRY_ECORRUPT || e == FERRY_EFAILED || e == FERRY_EVERSION ||
           e == FERRY_EACCES || e == FERRY_ENOENT;
}

static void begin_stop(svc *s, int code, const char *why);

/* The committer finished the loop's group: answer its events. */
static void group_done(loop *l)
{
    svc *s = l->s;
    if (!l->busy || !atomic_load_explicit(&l->done, memory_order_acquire))
        return;
    atomic_store_explicit(&l->done, 0, memory_order_relaxed);
    cgroup *g = l->commit;
    l->commit = NULL;
    l->busy = 0;
    if (g->err) {
        char reason[MAX_REASON + 1];
        one_line(reason, sizeof reason, g->msg);
        snprintf(g->msg, sizeof g->msg, "%s", reason);
        if (g->err != FERRY_EFULL)
            logmsg(s, "recording %zu event(s) failed: %s", g->n, g->msg);
        else if (!atomic_exchange(&s->full_logged, 1))
            logmsg(s, "%s; refusing events until there is room", g->msg);
        l->st_refused += g->n;
    } else {
        if (atomic_exchange(&s->full_logged, 0))
            logmsg(s, "the journal takes events again");
        l->st_events += g->n;
        l->st_commits++;
    }
    for (size_t k = 0; k < g->nconns; k++) {
        conn *c = g->conns[k];
        c->refs--;
        if (c->closed)
            continue;
        for (size_t i = 0; i < c->count; i++) {
            item *it = item_at(c, i);
            if (it->kind != IT_PENDING || it->gen != g->gen)
                continue;
            if (g->err) {
                it->kind = IT_ERR;
                it->msg = strdup(g->msg);
                it->owned = it->msg != NULL;
                if (!it->msg)
                    it->msg = (char *)(uintptr_t)oom_reason;
                c->n_err += it->n;
            } else {
                it->kind = IT_OK;
                it->seq = g->first_seq ? g->first_seq + it->index : 0; /* 0: opted out */
                c->n_ok += it->n;
            }
        }
        flush(l, c);
    }
    ferry_err err = g->err;
    g->n = g->est = g->nconns = 0;
    g->err = FERRY_OK;
    if (fatal_error(err))
        begin_stop(s, fy_cli_exit_code(err), "the journal failed");
    if (!l->busy && l->fill->n && (l->group_blocked || l->stop_begun))
        handoff(l);
}

/* ---- reading and parsing ------------------------------------------------ */

static int can_take(const loop *l, const conn *c)
{
    if (l->stop_begun || c->closed || c->unanswered >= MAX_UNANSWERED || c->out_len || l->group_blocked)
        return 0;
    if (c->mem_wait && l->inbuf_total + READ_CHUNK > INBUF_BUDGET / l->s->nloops)
        return 0;
    return c->readable || c->backlog;
}

/* Queues the answer to the event just added to the group being filled. */
static int add_pending(loop *l, conn *c, size_t line_len)
{
    cgroup *g = l->fill;
    uint32_t idx = (uint32_t)g->n;
    if (c->last_gen != g->gen) {
        if (g->nconns == g->cap) {
            size_t cap = g->cap ? g->cap * 2 : 16;
            conn **p = realloc(g->conns, cap * sizeof *p);
            if (!p)
                return -1;
            g->conns = p;
            g->cap = cap;
        }
        g->conns[g->nconns++] = c;
        c->refs++;
        c->last_gen = g->gen;
    }
    g->n++;
    g->est += est_bytes(l->s, line_len);
    item *tail = c->count ? item_at(c, c->count - 1) : NULL;
    if (tail && tail->kind == IT_PENDING && tail->gen == g->gen && tail->index + tail->n == idx &&
        tail->quiet == c->noack) {
        tail->n++;
    } else {
        item *it = item_push(c);
        if (!it)
            return -1;
        it->kind = IT_PENDING;
        it->quiet = c->noack;
        it->gen = g->gen;
        it->index = idx;
        it->n = 1;
    }
    c->unanswered++;
    return 0;
}

static int is_blank(const char *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (p[i] != ' ' && p[i] != '\t')
            return 0;
    return 1;
}

/* What one client line (without its '\n') is: the protocol's grammar, apart
 * from the sockets so that tests/fuzz/fuzz_service.c can drive it. *len gets
 * the bytes that count: without a trailing '\r' and, for a command, without
 * trailing blanks. */
fy_line_kind fy_service_line(const char *p, size_t n, size_t *len)
{
    *len = n;
    if (n > LINE_MAX_BYTES)
        return FY_LINE_TOO_LONG;
    if (n && p[n - 1] == '\r')
        n--;
    *len = n;
    if (is_blank(p, n))
        return FY_LINE_BLANK;
    if (p[0] != '#')
        return FY_LINE_EVENT;
    while (n && (p[n - 1] == ' ' || p[n - 1] == '\t'))
        n--;
    *len = n;
    if (n == 12 && !memcmp(p, "#ferry noack", 12))
        return FY_LINE_NOACK;
    if (n == 10 && !memcmp(p, "#ferry ack", 10))
        return FY_LINE_ACK;
    if (n == 11 && !memcmp(p, "#ferry sync", 11))
        return FY_LINE_SYNC;
    return FY_LINE_BAD_COMMAND;
}

/* The one-line reason of an `error` answer (control characters become spaces). */
void fy_service_reason(char *dst, size_t n, const char *src) { one_line(dst, n, src); }

static void command(loop *l, conn *c, fy_line_kind kind, const char *p, size_t n)
{
    if (kind == FY_LINE_NOACK) {
        c->noack = 1;
    } else if (kind == FY_LINE_ACK) {
        c->noack = 0;
    } else if (kind == FY_LINE_SYNC) {
        item *it = item_push(c);
        if (!it) {
            logmsg(l->s, "connection %lu: out of memory; closing it", c->id);
            conn_close(l, c);
            return;
        }
        it->kind = IT_SYNC;
        it->n = 1;
        c->unanswered++;
    } else {
        add_error(l, c, "line %" PRIu64 ": unknown command '%.*s' (expected #ferry noack, #ferry ack or #ferry sync)",
                  c->lineno, (int)(n > 40 ? 40 : n), p);
    }
}

/* One complete line, without its newline. Returns 0 when it cannot be taken
 * now: the group being filled is full and the other one still committing. */
static int take_line(loop *l, conn *c, const char *p, size_t n)
{
    svc *s = l->s;
    size_t len;
    fy_line_kind kind = fy_service_line(p, n, &len);
    if (kind == FY_LINE_TOO_LONG) {
        c->lineno++;
        add_error(l, c, "line %" PRIu64 ": longer than %u bytes", c->lineno, LINE_MAX_BYTES);
        return 1;
    }
    if (kind == FY_LINE_BLANK) {
        c->lineno++;
        return 1;
    }
    if (kind != FY_LINE_EVENT) {
        c->lineno++;
        command(l, c, kind, p, len);
        return 1;
    }
    cgroup *g = l->fill;
    if (g->n && (g->n >= GROUP_MAX_EVENTS || g->est + est_bytes(s, len) > s->group_est)) {
        if (l->busy) {
            l->group_blocked = 1;
            return 0;
        }
        handoff(l);
        g = l->fill;
    }
    c->lineno++;
    ferry_err e = s->o->check ? s->o->check(s->o->check_arg, p, len) : FERRY_OK;
    if (!e)
        e = ferry_batch_add_json(g->b, p, len);
    if (e) {
        add_error(l, c, "line %" PRIu64 ": %s", c->lineno, ferry_last_error());
        return 1;
    }
    if (add_pending(l, c, len)) {
        /* The event is in the group but its answer cannot be queued: closing
         * is the only way to keep the answers in order. The event is still
         * recorded; the client never learns it, like a lost answer. */
        logmsg(s, "connection %lu: out of memory; closing it", c->id);
        conn_close(l, c);
        return 1;
    }
    if (!l->busy && l->fill->n >= HANDOFF_EVENTS)
        handoff(l);
    return 1;
}

/* Takes the complete lines of buf[0..len) (and, after the client's EOF, a
 * last line without a newline). Returns the bytes used; sets *held when lines
 * remain that cannot be taken now. The connection may be closed on return. */
static size_t parse(loop *l, conn *c, const char *buf, size_t len, int *held)
{
    size_t pos = 0;
    *held = 0;
    if (c->discarding) { /* the rest of a line that was too long */
        const char *nl = memchr(buf, '\n', len);
        if (!nl && !c->eof)
            return len;
        pos = nl ? (size_t)(nl - buf) + 1 : len;
        c->discarding = 0;
        c->lineno++;
        if (add_error(l, c, "line %" PRIu64 ": longer than %u bytes", c->lineno, LINE_MAX_BYTES))
            return pos;
    }
    while (pos < len && !c->closed) {
        const char *nl = memchr(buf + pos, '\n', len - pos);
        if (!nl && !c->eof)
            break; /* a partial line */
        if (c->unanswered >= MAX_UNANSWERED || c->out_len) {
            *held = 1;
            break;
        }
        size_t end = nl ? (size_t)(nl - buf) : len;
        if (!take_line(l, c, buf + pos, end - pos)) {
            *held = 1;
            break;
        }
        pos = nl ? end + 1 : len;
    }
    return pos;
}

/* Keeps buf[0..len) (outside c->in) as the connection's unparsed input. */
static int in_keep(loop *l, conn *c, const char *buf, size_t len)
{
    if (len == 0) {
        in_free(l, c);
        return 0;
    }
    if (len > c->in_cap || c->in_cap > 2 * len + 4096) {
        char *p = malloc(len);
        if (!p)
            return -1;
        free(c->in);
        c->in = p;
        in_set_cap(l, c, len);
    }
    memcpy(c->in, buf, len);
    c->in_len = len;
    return 0;
}

/* Drops the first `used` bytes of c->in. */
static void in_consume(loop *l, conn *c, size_t used)
{
    if (used == c->in_len) {
        in_free(l, c);
        return;
    }
    memmove(c->in, c->in + used, c->in_len - used);
    c->in_len -= used;
    if (c->in_cap > c->in_len + 2 * READ_CHUNK) {
        char *p = realloc(c->in, c->in_len + READ_CHUNK);
        if (p) {
            c->in = p;
            in_set_cap(l, c, c->in_len + READ_CHUNK);
        }
    }
}

/* After parsing: a partial line that is already too long is dropped, and the
 * rest of it skipped as it comes. */
static void after_parse(loop *l, conn *c, int held)
{
    c->backlog = held ? 1u : 0u;
    if (!held && c->in_len > LINE_MAX_BYTES) {
        in_free(l, c);
        c->discarding = 1;
    }
    flush(l, c);
}

/* One step for a connection with input: its held-back lines, or one read. */
static void process_conn(loop *l, conn *c)
{
    int held;
    if (c->backlog) {
        size_t used = parse(l, c, c->in, c->in_len, &held);
        if (c->closed)
            return;
        in_consume(l, c, used);
        after_parse(l, c, held);
        return;
    }
    char *buf;
    size_t have = c->in_len, room;
    int scratch = have <= SCRATCH_BYTES / 2;
    if (scratch) { /* the common case: complete lines are parsed from the loop's buffer */
        buf = l->scratch;
        if (have)
            memcpy(buf, c->in, have);
        room = SCRATCH_BYTES - have;
    } else { /* a long partial line grows in the connection's own buffer */
        size_t want = have + READ_CHUNK;
        if (want > c->in_cap) {
            size_t cap = c->in_cap * 2 > want ? c->in_cap * 2 : want;
            int fits = l->inbuf_total - c->in_cap + cap <= INBUF_BUDGET / l->s->nloops;
            char *p = fits ? realloc(c->in, cap) : NULL;
            if (!p) {
                c->mem_wait = 1; /* until other connections' long lines are done */
                return;
            }
            c->in = p;
            in_set_cap(l, c, cap);
        }
        c->mem_wait = 0;
        buf = c->in;
        room = READ_CHUNK;
    }
    ssize_t r = read(c->fd, buf + have, room);
    if (r < 0) {
        if (errno == EAGAIN)
            c->readable = 0;
        else if (errno != EINTR)
            conn_close(l, c); /* reset by the client: nothing can be answered */
        return;
    }
    if (r == 0) {
        c->eof = 1;
        c->readable = 0;
    } else if ((size_t)r < room && !c->hup) {
        /* Drained for now: edge-triggered epoll reports any later data. Not
         * after the client's shutdown, which was reported already: read on
         * to the end. */
        c->readable = 0;
    }
    size_t total = have + (size_t)r;
    size_t used = parse(l, c, buf, total, &held);
    if (c->closed)
        return;
    if (!scratch) {
        c->in_len = total;
        in_consume(l, c, used);
    } else if (in_keep(l, c, buf + used, total - used)) {
        logmsg(l->s, "connection %lu: out of memory; closing it", c->id);
        conn_close(l, c);
        return;
    }
    after_parse(l, c, held);
}

/* One pass over the connections with input: each gets one step. */
static void round_robin(loop *l)
{
    size_t n = l->nready, k = 0;
    for (size_t i = 0; i < n; i++) {
        conn *c = l->ready[i];
        if (can_take(l, c))
            process_conn(l, c);
        if (!c->closed && (c->readable || c->backlog))
            l->ready[k++] = c;
        else
            c->in_ready = 0;
        group_done(l); /* answer a finished commit without waiting for the round's end */
    }
    for (size_t i = n; i < l->nready; i++)
        l->ready[k++] = l->ready[i];
    l->nready = k;
}

static int has_work(const loop *l)
{
    for (size_t i = 0; i < l->nready; i++)
        if (can_take(l, l->ready[i]))
            return 1;
    return 0;
}

/* ---- connections -------------------------------------------------------- */

static void turn_away(int fd, const char *msg)
{
    (void)!send(fd, msg, strlen(msg), MSG_NOSIGNAL | MSG_DONTWAIT);
    close(fd);
}

/* A new connection joins loop l (l's thread). */
static void conn_join(loop *l, conn *c)
{
    struct epoll_event ev = {.events = EPOLLIN | EPOLLRDHUP | EPOLLET, .data.ptr = c};
    if (l->stop_begun || epoll_ctl(l->ep, EPOLL_CTL_ADD, c->fd, &ev)) {
        turn_away(c->fd, l->stop_begun ? "error the service is stopping\n" : "error out of memory in the service\n");
        atomic_fetch_sub(&l->s->nconns, 1u);
        free(c);
        return;
    }
    c->next = l->all;
    if (l->all)
        l->all->prev = c;
    l->all = c;
}

/* Connections loop 0 accepted for this loop. */
static void take_inbox(loop *l)
{
    pthread_mutex_lock(&l->imu);
    conn **box = l->inbox;
    size_t n = l->ninbox;
    l->inbox = NULL;
    l->ninbox = l->inbox_cap = 0;
    pthread_mutex_unlock(&l->imu);
    for (size_t i = 0; i < n; i++)
        conn_join(l, box[i]);
    free(box);
}

static void deal(svc *s, conn *c)
{
    loop *l = &s->loops[s->next_loop++ % s->nloops];
    if (l->idx == 0) {
        conn_join(l, c);
        return;
    }
    pthread_mutex_lock(&l->imu);
    if (l->ninbox == l->inbox_cap) {
        size_t cap = l->inbox_cap ? l->inbox_cap * 2 : 16;
        conn **p = realloc(l->inbox, cap * sizeof *p);
        if (!p) {
            pthread_mutex_unlock(&l->imu);
            conn_join(&s->loops[0], c);
            return;
        }
        l->inbox = p;
        l->inbox_cap = cap;
    }
    l->inbox[l->ninbox++] = c;
    pthread_mutex_unlock(&l->imu);
    wake(l);
}

/* Loop 0: new connections. */
static void accept_some(svc *s)
{
    for (int k = 0; k < 64; k++) {
        int fd = accept4(s->lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EINTR || errno == ECONNABORTED || errno == EPROTO)
                continue;
            if (errno == EMFILE || errno == ENFILE) {
                /* Out of descriptors: use the spare to take the connection
                 * and refuse it, rather than leave it to spin in epoll. */
                int64_t now = mono_ms();
                if (now - s->fd_warned_ms > 10000) {
                    logmsg(s, "out of file descriptors: turning connections away");
                    s->fd_warned_ms = now;
                }
                if (s->spare_fd >= 0) {
                    close(s->spare_fd);
                    fd = accept4(s->lfd, NULL, NULL, SOCK_CLOEXEC);
                    if (fd >= 0)
                        turn_away(fd, "error out of file descriptors; try again later\n");
                    s->spare_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
                }
            } else if (errno != EAGAIN) {
                logmsg(s, "accept: %s", strerror(errno));
            }
            return;
        }
        if (atomic_load(&s->nconns) >= s->max_clients) {
            s->st_turned_away++;
            turn_away(fd, "error too many clients; try again later\n");
            continue;
        }
        conn *c = calloc(1, sizeof *c);
        if (!c) {
            turn_away(fd, "error out of memory in the service\n");
            continue;
        }
        atomic_fetch_add(&s->nconns, 1u);
        c->fd = fd;
        c->id = ++s->next_id;
        c->pid = c->uid = -1;
        struct ucred cred;
        socklen_t cl = sizeof cred;
        if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &cl) == 0)
            c->pid = (long)cred.pid, c->uid = (long)cred.uid;
        s->st_conns++;
        if (s->o->verbose)
            logmsg(s, "connection %lu from pid %ld, uid %ld", c->id, c->pid, c->uid);
        deal(s, c);
    }
}

/* ---- stopping ----------------------------------------------------------- */

static void remove_socket(svc *s)
{
    struct stat st;
    if (!s->made_socket)
        return;
    s->made_socket = 0;
    /* Only our own: another service may have replaced a stale-looking one. */
    if (lstat(s->o->listen, &st) == 0 && st.st_dev == s->sock_dev && st.st_ino == s->sock_ino)
        unlink(s->o->listen);
}

/* Any thread: stop taking lines, record and answer what was taken, close. */
static void begin_stop(svc *s, int code, const char *why)
{
    pthread_mutex_lock(&s->mu);
    int first = !atomic_load(&s->stopping);
    if (first) {
        s->exit_code = code;
        atomic_store(&s->stopping, 1);
    }
    pthread_mutex_unlock(&s->mu);
    if (!first)
        return;
    logmsg(s, "stopping (%s): recording what was received, answering, closing", why);
    notify("STOPPING=1");
    remove_socket(s); /* new clients find no socket; the descriptor is closed at exit */
    for (unsigned i = 0; i < s->nloops; i++)
        wake(&s->loops[i]);
}

static void on_signal(svc *s)
{
    struct signalfd_siginfo si;
    while (read(s->sigfd, &si, sizeof si) == (ssize_t)sizeof si) {
        if (atomic_load(&s->stopping)) { /* a second signal: do not wait for slow readers */
            atomic_store(&s->hurry, 1);
            for (unsigned i = 0; i < s->nloops; i++)
                wake(&s->loops[i]);
            continue;
        }
        begin_stop(s, EX_OK, si.ssi_signo == SIGTERM ? "SIGTERM" : si.ssi_signo == SIGINT ? "SIGINT" : "SIGHUP");
    }
}

static int all_answered(const loop *l)
{
    for (const conn *c = l->all; c; c = c->next)
        if (!c->closed && (c->count || c->out_len))
            return 0;
    return 1;
}

/* ---- a loop ------------------------------------------------------------- */

static void *run_loop(void *arg)
{
    loop *l = arg;
    svc *s = l->s;
    struct epoll_event evs[64];
    for (;;) {
        if (atomic_load(&s->stopping) && !l->stop_begun) {
            l->stop_begun = 1;
            if (l->idx == 0)
                epoll_ctl(l->ep, EPOLL_CTL_DEL, s->lfd, NULL);
            if (!l->busy && l->fill->n)
                handoff(l);
        }
        if (l->stop_begun && !l->busy && l->fill->n == 0) {
            if (!l->drain_deadline) {
                l->drain_deadline = mono_ms() + DRAIN_MS;
                for (conn *c = l->all; c; c = c->next)
                    flush(l, c);
            }
            if (all_answered(l) || atomic_load(&s->hurry) || mono_ms() >= l->drain_deadline) {
                /* Loop 0 goes on handling signals until the others are done. */
                if (l->idx != 0 || atomic_load(&s->loops_running) == 1)
                    break;
                l->drained = 1;
            }
        }
        int timeout = has_work(l) ? 0 : -1;
        if (l->drain_deadline && !l->drained) {
            int64_t left = l->drain_deadline - mono_ms();
            timeout = left < 0 ? 0 : (int)left;
        }
        int n = epoll_wait(l->ep, evs, 64, timeout);
        if (n < 0 && errno != EINTR) {
            logmsg(s, "epoll_wait: %s", strerror(errno));
            begin_stop(s, EX_OSERR, "internal error");
            atomic_store(&s->hurry, 1);
            n = 0;
        }
        for (int i = 0; i < n; i++) {
            void *p = evs[i].data.ptr;
            if (p == &MARK_LISTEN) {
                if (!l->stop_begun)
                    accept_some(s);
            } else if (p == &MARK_SIGNAL) {
                on_signal(s);
            } else if (p == &MARK_WAKE) {
                uint64_t v;
                (void)!read(l->wake, &v, sizeof v);
                take_inbox(l);
            } else {
                conn *c = p;
                if (c->closed)
                    continue;
                if ((evs[i].events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) && !c->eof) {
                    if (evs[i].events & (EPOLLRDHUP | EPOLLHUP | EPOLLERR))
                        c->hup = 1;
                    c->readable = 1;
                    ready_add(l, c);
                }
                if ((evs[i].events & (EPOLLOUT | EPOLLHUP | EPOLLERR)) && c->out_len)
                    flush(l, c);
            }
        }
        group_done(l);
        round_robin(l);
        if (!l->busy && l->fill->n)
            handoff(l); /* the end of a round: whatever was gathered goes now */
        reap(l);
    }
    if (l->idx != 0) {
        atomic_fetch_sub(&s->loops_running, 1u);
        wake(&s->loops[0]);
    }
    return NULL;
}

/* ---- set-up ------------------------------------------------------------- */

static int parse_id(const char *what, const char *v, int is_group, unsigned *out, const char *prog)
{
    char *end;
    errno = 0;
    unsigned long n = strtoul(v, &end, 10);
    if (*v && !*end && !errno && n < 0xffffffffUL) {
        *out = (unsigned)n;
        return 0;
    }
    if (is_group) {
        struct group *g = getgrnam(v);
        if (g) {
            *out = (unsigned)g->gr_gid;
            return 0;
        }
    } else {
        struct passwd *p = getpwnam(v);
        if (p) {
            *out = (unsigned)p->pw_uid;
            return 0;
        }
    }
    return fy_cli_usage_error(prog, "%s %s: no such %s", what, v, is_group ? "group" : "user");
}

/* systemd socket activation: LISTEN_PID is this process and LISTEN_FDS=1.
 * Returns 1 with *fd = 3, 0 when not activated, or an exit code > 1. */
static int activated(svc *s, int *fd)
{
    const char *pid = getenv("LISTEN_PID"), *fds = getenv("LISTEN_FDS");
    if (!pid || !fds)
        return 0;
    char *end;
    long p = strtol(pid, &end, 10);
    if (*end || p != (long)getpid())
        return 0;
    long n = strtol(fds, &end, 10);
    int bad = *end || n != 1;
    unsetenv("LISTEN_PID");
    unsetenv("LISTEN_FDS");
    unsetenv("LISTEN_FDNAMES");
    if (bad) {
        logmsg(s, "socket activation: expected exactly one socket (LISTEN_FDS=1)");
        return EX_CONFIG;
    }
    int type = 0, listening = 0, domain = 0;
    socklen_t l1 = sizeof type, l2 = sizeof listening, l3 = sizeof domain;
    if (getsockopt(3, SOL_SOCKET, SO_TYPE, &type, &l1) || getsockopt(3, SOL_SOCKET, SO_ACCEPTCONN, &listening, &l2) ||
        getsockopt(3, SOL_SOCKET, SO_DOMAIN, &domain, &l3) || type != SOCK_STREAM || !listening || domain != AF_UNIX) {
        logmsg(s, "socket activation: descriptor 3 is not a listening Unix stream socket");
        return EX_CONFIG;
    }
    int fl = fcntl(3, F_GETFL);
    if (fl < 0 || fcntl(3, F_SETFL, fl | O_NONBLOCK) || fcntl(3, F_SETFD, FD_CLOEXEC)) {
        logmsg(s, "socket activation: descriptor 3: %s", strerror(errno));
        return EX_OSERR;
    }
    *fd = 3;
    return 1;
}

/* Binds and listens on o->listen. Returns 0 or an exit code. */
static int make_socket(svc *s, mode_t mode, unsigned uid, unsigned gid)
{
    const char *path = s->o->listen;
    struct sockaddr_un a;
    memset(&a, 0, sizeof a);
    a.sun_family = AF_UNIX;
    if (!*path || strlen(path) >= sizeof a.sun_path)
        return fy_cli_usage_error(s->prog, "--listen '%s': expected a socket path of 1 to %zu bytes", path,
                                  sizeof a.sun_path - 1);
    memcpy(a.sun_path, path, strlen(path));
    struct stat st;
    if (lstat(path, &st) == 0) {
        if (!S_ISSOCK(st.st_mode)) {
            logmsg(s, "%s exists and is not a socket; not replacing it", path);
            return EX_CANTCREAT;
        }
        int probe = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        int rc = probe < 0 ? -1 : connect(probe, (struct sockaddr *)&a, sizeof a);
        int err = errno;
        if (probe >= 0)
            close(probe);
        if (rc == 0) {
            logmsg(s, "another service is listening on %s", path);
            return EX_UNAVAILABLE;
        }
        if (err != ECONNREFUSED) {
            logmsg(s, "%s: cannot tell whether a service listens there: %s", path, strerror(err));
            return EX_CANTCREAT;
        }
        if (unlink(path) && errno != ENOENT) {
            logmsg(s, "cannot remove the stale socket %s: %s", path, strerror(errno));
            return EX_CANTCREAT;
        }
        logmsg(s, "removed a stale socket %s", path);
    }
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        logmsg(s, "socket: %s", strerror(errno));
        return EX_OSERR;
    }
    mode_t old = umask(0177); /* 0600 until chmod: nobody else connects in between */
    int rc = bind(fd, (struct sockaddr *)&a, sizeof a);
    int err = errno;
    umask(old);
    if (rc) {
        logmsg(s, "cannot create the socket %s: %s", path, strerror(err));
        close(fd);
        return err == EADDRINUSE ? EX_UNAVAILABLE : EX_CANTCREAT;
    }
    s->made_socket = 1;
    if (lstat(path, &st) == 0) {
        s->sock_dev = st.st_dev;
        s->sock_ino = st.st_ino;
    }
    const char *step = NULL;
    if ((uid != (unsigned)-1 || gid != (unsigned)-1) && chown(path, (uid_t)uid, (gid_t)gid))
        step = "setting its owner and group";
    else if (chmod(path, mode))
        step = "setting its mode";
    else if (listen(fd, SOMAXCONN))
        step = "listening";
    if (step) {
        logmsg(s, "socket %s: %s: %s", path, step, strerror(errno));
        close(fd);
        remove_socket(s);
        return EX_CANTCREAT;
    }
    s->lfd = fd;
    return 0;
}

static int loop_init(svc *s, loop *l, unsigned idx)
{
    l->s = s;
    l->idx = idx;
    l->fill = &l->groups[0];
    l->fill->gen = l->next_gen = 1;
    l->groups[0].owner = l->groups[1].owner = l;
    atomic_init(&l->done, 0);
    pthread_mutex_init(&l->imu, NULL);
    l->ep = epoll_create1(EPOLL_CLOEXEC);
    l->wake = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    l->scratch = malloc(SCRATCH_BYTES);
    struct epoll_event ew = {.events = EPOLLIN, .data.ptr = &MARK_WAKE};
    if (l->ep < 0 || l->wake < 0 || !l->scratch || ferry_batch_new(&l->groups[0].b) ||
        ferry_batch_new(&l->groups[1].b) || epoll_ctl(l->ep, EPOLL_CTL_ADD, l->wake, &ew))
        return -1;
    /* The journal's property policy is applied as each line is added, on
     * the loop's thread, not by the committer. */
    if (ferry_batch_use_policy_of(l->groups[0].b, s->j) || ferry_batch_use_policy_of(l->groups[1].b, s->j))
        return -1;
    if (idx == 0) {
        struct epoll_event el = {.events = EPOLLIN, .data.ptr = &MARK_LISTEN};
        struct epoll_event es = {.events = EPOLLIN, .data.ptr = &MARK_SIGNAL};
        if (epoll_ctl(l->ep, EPOLL_CTL_ADD, s->lfd, &el) || epoll_ctl(l->ep, EPOLL_CTL_ADD, s->sigfd, &es))
            return -1;
    }
    return 0;
}

static void loop_free(loop *l)
{
    for (conn *c = l->all; c; c = c->next)
        conn_close(l, c);
    for (conn *c = l->all; c; c = c->next)
        c->refs = 0, c->in_ready = 0;
    reap(l);
    for (size_t i = 0; i < l->ninbox; i++) {
        close(l->inbox[i]->fd);
        free(l->inbox[i]);
    }
    free(l->inbox);
    free(l->ready);
    for (int i = 0; i < 2; i++) {
        ferry_batch_free(l->groups[i].b);
        free(l->groups[i].conns);
    }
    free(l->scratch);
    if (l->ep >= 0)
        close(l->ep);
    if (l->wake >= 0)
        close(l->wake);
    pthread_mutex_destroy(&l->imu);
}

int fy_service_opts_given(const fy_service_opts *o)
{
    return o->socket_mode || o->socket_group || o->socket_owner || o->max_clients;
}

int fy_service_main(const char *prog, const fy_service_opts *o, const char *journal_dir, const ferry_options *jopts)
{
    static svc sv; /* one service per process */
    svc *s = &sv;
    memset(s, 0, sizeof *s);
    s->prog = prog;
    s->o = o;
    s->journal_dir = journal_dir;
    s->jopts = jopts;
    s->lfd = s->sigfd = s->spare_fd = -1;
    s->max_clients = DEFAULT_MAX_CLIENTS;
    long pg = sysconf(_SC_PAGESIZE), ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    s->page = pg > 0 ? (size_t)pg : 4096;
    /* One I/O loop unless FERRY_SERVICE_IO_THREADS=2 (and two CPUs): see the
     * comment at the top. */
    const char *nl = getenv("FERRY_SERVICE_IO_THREADS");
    s->nloops = nl && !strcmp(nl, "2") && ncpu >= 2 ? 2 : 1;
    for (unsigned i = 0; i < MAX_LOOPS; i++)
        s->loops[i].ep = s->loops[i].wake = -1;
    atomic_init(&s->stopping, 0);
    atomic_init(&s->hurry, 0);
    atomic_init(&s->full_logged, 0);
    atomic_init(&s->nconns, 0u);

    /* Option values first: nothing is created before they are known good. */
    mode_t mode = 0660;
    unsigned uid = (unsigned)-1, gid = (unsigned)-1;
    if (o->socket_mode) {
        char *end;
        errno = 0;
        unsigned long m = strtoul(o->socket_mode, &end, 8);
        if (!*o->socket_mode || *end || errno || m > 0777)
            return fy_cli_usage_error(prog, "--socket-mode %s: expected an octal mode such as 0660", o->socket_mode);
        mode = (mode_t)m;
    }
    if (o->max_clients) {
        char *end;
        errno = 0;
        unsigned long m = strtoul(o->max_clients, &end, 10);
        if (!*o->max_clients || *end || errno || m < 1 || m > 100000)
            return fy_cli_usage_error(prog, "--max-clients %s: expected a number from 1 to 100000", o->max_clients);
        s->max_clients = (unsigned)m;
    }
    int rc;
    if (o->socket_group && (rc = parse_id("--socket-group", o->socket_group, 1, &gid, prog)))
        return rc;
    if (o->socket_owner && (rc = parse_id("--socket-owner", o->socket_owner, 0, &uid, prog)))
        return rc;

    /* Enough descriptors for every client. */
    struct rlimit rl;
    rlim_t need = (rlim_t)s->max_clients + 64;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < need) {
        rl.rlim_cur = rl.rlim_max < need ? rl.rlim_max : need;
        setrlimit(RLIMIT_NOFILE, &rl);
    }

    /* Signals become readable events; SIGPIPE is off (send uses MSG_NOSIGNAL
     * too). Blocked before any thread starts, so that all inherit the mask. */
    sigset_t mask;
    sigemptyset(&mask);
    sigaddset(&mask, SIGTERM);
    sigaddset(&mask, SIGINT);
    sigaddset(&mask, SIGHUP);
    pthread_sigmask(SIG_BLOCK, &mask, NULL);
    struct sigaction ign, old_pipe;
    memset(&ign, 0, sizeof ign);
    ign.sa_handler = SIG_IGN;
    sigaction(SIGPIPE, &ign, &old_pipe);
    pthread_mutex_init(&s->mu, NULL);
    pthread_cond_init(&s->cv, NULL);

    int status = EX_OK, fd3 = -1;
    int act = activated(s, &fd3);
    if (act > 1) {
        status = act;
    } else if (act == 1) {
        s->lfd = fd3;
        if (o->socket_mode || o->socket_group || o->socket_owner)
            logmsg(s, "socket activation: the socket's mode and owner are systemd's (SocketMode=, SocketGroup=)");
    } else {
        status = make_socket(s, mode, uid, gid);
    }
    char damage[300];
    if (status == EX_OK && pw_journal_damaged(journal_dir, damage, sizeof damage)) {
        /* LMDB may abort on a damaged page: stop before it reads one (65:
         * contrib's unit does not restart; ferry-salvage.service repairs). */
        logmsg(s, "journal %s is damaged (%s): stop ferry-replay, then run `ferry-journal -j %s salvage`",
               journal_dir, damage, journal_dir);
        status = EX_DATAERR;
    }
    if (status == EX_OK) {
        ferry_err e = ferry_open(journal_dir, jopts, &s->j);
        if (e) {
            logmsg(s, "%s", ferry_last_error());
            status = fy_cli_exit_code(e);
        } else {
            /* What one commit may add, over est_bytes' 2.25. */
            uint64_t est = ferry_journal_max_txn_bytes(s->j) * 4 / 9;
            s->group_est = (size_t)(est && est < GROUP_EST_CAP ? est : GROUP_EST_CAP); /* 0: opted out */
        }
    }
    unsigned inited = 0;
    if (status == EX_OK) {
        s->sigfd = signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC);
        s->spare_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
        for (; inited < s->nloops && status == EX_OK; inited++)
            if (s->sigfd < 0 || loop_init(s, &s->loops[inited], inited)) {
                logmsg(s, "setting up: %s", errno ? strerror(errno) : "out of memory");
                status = EX_OSERR;
            }
    }
    if (status == EX_OK) {
        atomic_init(&s->loops_running, 1u);
        if (pthread_create(&s->committer, NULL, committer, s)) {
            logmsg(s, "cannot start the committer thread");
            status = EX_OSERR;
        } else {
            s->committer_started = 1;
        }
        for (unsigned i = 1; i < s->nloops && status == EX_OK; i++) {
            if (pthread_create(&s->loops[i].thread, NULL, run_loop, &s->loops[i])) {
                logmsg(s, "cannot start an I/O thread; serving with %u", i);
                s->nloops = i;
                break;
            }
            s->loops[i].started = 1;
            atomic_fetch_add(&s->loops_running, 1u);
        }
    }
    if (status == EX_OK) {
        logmsg(s, "listening on %s%s (journal %s, durability %s, at most %u clients)", o->listen,
               act == 1 ? " (socket from systemd)" : "", journal_dir,
               jopts && jopts->durability == FERRY_DURABILITY_RELAXED ? "relaxed" : "full", s->max_clients);
        notify("READY=1");
        run_loop(&s->loops[0]);
        for (unsigned i = 1; i < s->nloops; i++)
            if (s->loops[i].started)
                pthread_join(s->loops[i].thread, NULL);
        status = s->exit_code;
    }
    if (s->committer_started) {
        pthread_mutex_lock(&s->mu);
        s->quit = 1;
        pthread_cond_signal(&s->cv);
        pthread_mutex_unlock(&s->mu);
        pthread_join(s->committer, NULL);
    }
    if (s->committer_started) {
        unsigned long long events = 0, commits = 0, refused = 0;
        for (unsigned i = 0; i < inited; i++)
            events += s->loops[i].st_events, commits += s->loops[i].st_commits, refused += s->loops[i].st_refused;
        logmsg(s, "stopped: %llu event(s) recorded in %llu commit(s), %llu line(s) refused, %llu connection(s)%s",
               events, commits, refused, s->st_conns, s->st_turned_away ? " (some turned away: --max-clients)" : "");
    }
    for (unsigned i = 0; i < inited; i++)
        loop_free(&s->loops[i]);
    if (s->lfd >= 0)
        close(s->lfd);
    remove_socket(s);
    if (s->sigfd >= 0)
        close(s->sigfd);
    if (s->spare_fd >= 0)
        close(s->spare_fd);
    ferry_close(s->j);
    pthread_mutex_destroy(&s->mu);
    pthread_cond_destroy(&s->cv);
    sigaction(SIGPIPE, &old_pipe, NULL);
    /* SIGTERM, SIGINT and SIGHUP stay blocked: the program exits with the
     * returned status, and one of them arriving after the stop (a second
     * SIGTERM from systemd, say) must not turn a clean exit into a death by
     * signal. */
    return status;
}

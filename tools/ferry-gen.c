/* ferry-gen: deterministic, realistic supervisor event streams (JSON Lines of
 * Amplitude events) for tests, benchmarks and demos.
 *
 * Determinism: the output is a function of the arguments only (no wall clock,
 * no address or locale dependence, integer arithmetic only). The same
 * arguments give the same bytes on every machine for a given GEN_STREAM
 * version below; the version is bumped whenever a change alters the bytes.
 *
 * Model (data/README.md, ../shared/reference/supervisor-events.md §2-§5):
 * each device has an identity (32-hex uuid, supervisor and OS version, model),
 * one fleet app with N services and a chain of releases. Its scenarios are
 * laid out in time: the sequential ones (provisioning / first install,
 * config change, release update, crash loop, user actions) never overlap, so
 * that operation pairs stay unambiguous; the offline report-failure loop runs
 * in the background. Events at or after the end of the span are not
 * emitted. --truth writes what happened (operations with start, end and
 * outcome, per-release summaries, crash loops, offline windows) in the
 * shapes `ferry-journal timeline --json` prints. */
#include "ferry.h"
#include "fy_buf.h"
#include "fy_cli.h"
#include "fy_record.h"

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define PROG "ferry-gen"
#define GEN_STREAM 1                     /* bump when the bytes for given arguments change */
#define DEFAULT_START 1795939200000LL     /* 2026-11-29T08:00:00Z */
#define MAX_SVC 12
#define MAX_ATTEMPTS 8
#define MIN 60000LL
#define HOUR 3600000LL

/* ---- PRNG: splitmix64 seeding, xoshiro256** stream ---------------------- */

typedef struct rng {
    uint64_t s[4];
} rng;

static uint64_t splitmix(uint64_t *x)
{
    uint64_t z = (*x += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static uint64_t mix3(uint64_t a, uint64_t b, uint64_t c)
{
    uint64_t x = a;
    uint64_t h = splitmix(&x);
    x = h ^ (b * 0xd1342543de82ef95ull);
    h = splitmix(&x);
    x = h ^ (c * 0x9e3779b97f4a7c15ull + 0x632be59bd9b4e019ull);
    return splitmix(&x);
}

static void rng_seed(rng *r, uint64_t seed)
{
    uint64_t x = seed;
    for (int i = 0; i < 4; i++)
        r->s[i] = splitmix(&x);
}

static uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

static uint64_t rng_next(rng *r)
{
    uint64_t *s = r->s;
    uint64_t out = rotl(s[1] * 5, 7) * 9, t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return out;
}

/* Uniform in [0, n), n > 0, without modulo bias. */
static uint64_t rng_below(rng *r, uint64_t n)
{
    uint64_t lim = (0 - n) % n, x;
    do
        x = rng_next(r);
    while (x < lim);
    return x % n;
}

/* Uniform in [lo, hi]. */
static int64_t rr(rng *r, int64_t lo, int64_t hi)
{
    if (hi <= lo)
        return lo;
    return lo + (int64_t)rng_below(r, (uint64_t)(hi - lo) + 1u);
}

static int chance(rng *r, unsigned percent) { return rng_below(r, 100) < percent; }

static void rng_hex(rng *r, char *out, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++)
        out[i] = hex[rng_below(r, 16)];
    out[n] = '\0';
}

/* ---- the event vocabulary (names exactly as in the catalog) -------------- */

enum {
    E_NOTIFY, E_DELTA_DL, E_DOCKER_DL, E_DOWNLOADED, E_DL_ERROR, E_DELTA_STILL, E_TAKE_LOCKS, E_RELEASE_LOCKS,
    E_KILL, E_EXIT, E_STOP, E_REMOVAL, E_REMOVED, E_INSTALL, E_INSTALLED, E_START, E_STARTED, E_RESTART,
    E_SUP_START, E_BOOTSTRAP, E_BOOT_FAILED, E_BOOT_SUCCESS, E_NET_CREATE, E_VOL_CREATE, E_REPORT_FAIL,
    E_TAGS_FAIL, E_CFG_PROGRESS, E_CFG_SUCCESS, E_CFG_ERROR, E_BOOTCFG_PROGRESS, E_BOOTCFG_SUCCESS,
    E_BOOTCFG_ERROR, E_REBOOT_SCHEDULED, E_REBOOT, E_BLINK, E_GET_APP, E_RESTART_V1, E_PURGE, E_PURGE_SUCCESS,
    E_PURGE_ERROR, E_FIREWALL, E_COUNT
};

static const char *const EVENT_NAMES[E_COUNT] = {
    "Update notification", "Delta image download", "Docker image download", "Image downloaded",
    "Image download error", "Delta still processing remotely.", "Take update locks", "Release update locks",
    "Service kill", "Service exit", "Service stop", "Image removal", "Image removed", "Service install",
    "Service installed", "Service start", "Service started", "Service restart", "Supervisor start",
    "Device bootstrap", "Device bootstrap failed, retrying", "Device bootstrap success", "Network creation",
    "Volume creation", "Device state report failure", "Device tags report failure",
    "Apply config change in progress", "Apply config change success", "Apply config change error",
    "Apply boot config in progress", "Apply boot config success", "Apply boot config error", "Reboot scheduled",
    "Reboot", "Device blink", "GET app (v1)", "Restart container (v1)", "Purge data", "Purge data success",
    "Purge data error", "Firewall mode not applied due to error",
};

/* Property shapes (after the supervisor's whitelist, in its key order). */
enum {
    P_NONE, P_SVC, P_IMGF, P_IMGR, P_ERR_IMGF, P_ERR, P_ERRS, P_DELAY_ERR, P_APPID, P_APPID_ERRS, P_LOCK_TAKE,
    P_LOCK_REL
};

/* Error families (what the message says). */
enum { K_NONE, K_DOWNLOAD, K_REPORT, K_BOOTSTRAP, K_CONFIG, K_BOOTCFG, K_PURGE };

typedef struct gev {
    int64_t t;
    uint32_t order; /* insertion order: ties keep it */
    uint8_t type, props, errk, svc;
    uint16_t rel;
    uint32_t errseed;
} gev;

/* ---- devices ------------------------------------------------------------- */

typedef struct sup_version {
    const char *ver, *os;
    int locks;         /* Take/Release update locks (v16.2+) */
    int commit;        /* service objects carry commit (v12.10+) */
    int report_string; /* Device state report failure {error: "string"} (v13.0-v17.7) */
    int tags;          /* Device tags report failure (v17.8+) */
    int reboot_sched;  /* Reboot scheduled (v16.11+) */
} sup_version;

static const sup_version SUPS[] = {
    {"11.14.0", "2.58.3+rev1", 0, 0, 0, 0, 0},  {"12.11.0", "2.85.2+rev3", 0, 1, 0, 0, 0},
    {"13.1.11", "2.95.8", 0, 1, 1, 0, 0},       {"14.1.3", "2.108.27+rev1", 0, 1, 1, 0, 0},
    {"14.11.14", "2.115.18", 0, 1, 1, 0, 0},    {"16.4.6", "5.3.21", 1, 1, 1, 0, 0},
    {"16.12.1", "5.3.27+rev1", 1, 1, 1, 0, 1}, {"17.8.3", "6.0.13", 1, 1, 0, 1, 1},
};
#define N_SUPS (sizeof SUPS / sizeof SUPS[0])

static const char *const MODELS[] = {"raspberrypi4-64", "raspberrypi3", "raspberrypicm4-ioboard", "fincm3",
                                     "jetson-nano", "intel-nuc", "genericx86-64-ext", "beaglebone-black"};
static const char *const SVC_NAMES[MAX_SVC] = {"backend", "frontend", "proxy", "worker", "mqtt", "influxdb",
                                               "grafana", "sensor-reader", "gateway", "redis", "nginx",
                                               "telegraf"};

typedef struct release {
    int64_t id;
    char commit[33];
    int64_t image_id[MAX_SVC];
    char image_hex[MAX_SVC][33];
    char digest[MAX_SVC][65];
    unsigned changed; /* bit s: service s has a new image (else renamed in place) */
} release;

typedef struct device {
    char uuid[33];
    const sup_version *sup;
    const char *model;
    int64_t app_id;
    char app_uuid[33];
    int n_svc;
    int64_t svc_id[MAX_SVC];
    release *rel;
    size_t n_rel;
} device;

/* ---- options ------------------------------------------------------------- */

enum { S_FIRST_INSTALL = 1, S_BOOTSTRAP = 2, S_UPDATE = 4, S_CRASH = 8, S_OFFLINE = 16, S_CONFIG = 32,
       S_USER = 64 };
enum { V_PLAIN = 1, V_UNCHANGED = 2, V_DELTA_NOT_READY = 4, V_DOWNLOAD_FAILURE = 8, V_CRASH_AFTER = 16,
       V_CUT_OFF = 32 };

static const struct {
    const char *name;
    unsigned bit;
} SCENARIOS[] = {
    {"first-install", S_FIRST_INSTALL}, {"bootstrap-retry", S_BOOTSTRAP}, {"release-update", S_UPDATE},
    {"crash-loop", S_CRASH}, {"offline-report-failures", S_OFFLINE}, {"config-change", S_CONFIG},
    {"user-actions", S_USER},
}, VARIANTS[] = {
    {"plain", V_PLAIN}, {"unchanged-service", V_UNCHANGED}, {"delta-not-ready", V_DELTA_NOT_READY},
    {"download-failure", V_DOWNLOAD_FAILURE}, {"crash-after-update", V_CRASH_AFTER}, {"cut-off", V_CUT_OFF},
};

typedef struct opts {
    uint64_t seed;
    uint64_t devices;
    int64_t span_ms, start;
    unsigned scenarios, variants;
    int variants_given; /* else a random mix per update */
    int services; /* 0: 1 to 4 per device */
    uint64_t count; /* 0: no limit */
    uint64_t rate;  /* events/s, 0: as fast as possible */
    const char *truth;
} opts;

static opts O;
static device *DEV;

/* ---- truth --------------------------------------------------------------- */

enum { OP_DOWNLOAD, OP_REMOVAL, OP_KILL, OP_INSTALL, OP_START, OP_BOOTSTRAP, OP_CONFIG, OP_BOOTCFG, OP_PURGE };
static const char *const OP_NAMES[] = {"download", "removal", "kill", "install", "start", "bootstrap",
                                       "config", "boot-config", "purge"};
static const char *const OP_OK[] = {"downloaded", "removed", "stopped", "installed", "started", "success",
                                    "success", "success", "success"};

typedef struct top {
    uint32_t dev, order;
    uint8_t kind, failed, svc;
    uint16_t rel;
    int64_t start, end; /* end -1: cut off (then cut_at) */
    int64_t cut_at;     /* Supervisor start that cut it, -1 none */
    int64_t attempt[MAX_ATTEMPTS];
    unsigned n_attempt;
} top;

typedef struct truth {
    top *ops;
    size_t n, cap;
    int64_t *notify; /* (dev, t) pairs */
    size_t n_notify, cap_notify;
} truth;

static truth T;
static uint32_t truth_order;

typedef struct act act;

/* ---- sequence builders ------------------------------------------------------ */

typedef struct seqb {
    gev *ev;
    size_t n, cap;
    uint32_t dev;
    int collect; /* record truth (plan pass) */
    rng r;
} seqb;

static void *xrealloc(void *p, size_t n)
{
    void *q = realloc(p, n ? n : 1);
    if (!q) {
        fprintf(stderr, PROG ": out of memory\n");
        exit(EX_OSERR);
    }
    return q;
}

static void ev_add(seqb *b, int64_t t, int type, int props, int svc, int rel, int errk)
{
    if (b->n == b->cap) {
        b->cap = b->cap ? b->cap * 2 : 64;
        b->ev = xrealloc(b->ev, b->cap * sizeof *b->ev);
    }
    gev *e = &b->ev[b->n];
    e->t = t;
    e->order = (uint32_t)b->n;
    e->type = (uint8_t)type;
    e->props = (uint8_t)props;
    e->svc = (uint8_t)svc;
    e->rel = (uint16_t)rel;
    e->errk = (uint8_t)errk;
    e->errseed = errk ? (uint32_t)rng_next(&b->r) : 0;
    b->n++;
}

static size_t op_open(seqb *b, int kind, int svc, int rel, int64_t start)
{
    if (!b->collect)
        return SIZE_MAX;
    if (T.n == T.cap) {
        T.cap = T.cap ? T.cap * 2 : 256;
        T.ops = xrealloc(T.ops, T.cap * sizeof *T.ops);
    }
    top *o = &T.ops[T.n];
    memset(o, 0, sizeof *o);
    o->dev = b->dev;
    o->order = truth_order++;
    o->kind = (uint8_t)kind;
    o->svc = (uint8_t)svc;
    o->rel = (uint16_t)rel;
    o->start = start;
    o->end = -1;
    o->cut_at = -1;
    o->attempt[o->n_attempt++] = start;
    return T.n++;
}

static void op_attempt(size_t i, int64_t t)
{
    if (i != SIZE_MAX && T.ops[i].n_attempt < MAX_ATTEMPTS)
        T.ops[i].attempt[T.ops[i].n_attempt++] = t;
}

static void op_close(size_t i, int64_t end, int failed)
{
    if (i == SIZE_MAX)
        return;
    T.ops[i].end = end;
    T.ops[i].failed = (uint8_t)failed;
}

static void note_notify(seqb *b, int64_t t)
{
    if (!b->collect)
        return;
    if (T.n_notify + 2 > T.cap_notify) {
        T.cap_notify = T.cap_notify ? T.cap_notify * 2 : 64;
        T.notify = xrealloc(T.notify, T.cap_notify * sizeof *T.notify);
    }
    T.notify[T.n_notify++] = b->dev;
    T.notify[T.n_notify++] = t;
}

/* Kill, exit, stop for the services in mask, from t; returns the last stop. */
static int64_t kill_services(seqb *b, const device *d, unsigned mask, int rel, int64_t t)
{
    int64_t last = t;
    for (int s = 0; s < d->n_svc; s++) {
        if (!(mask & (1u << s)))
            continue;
        t += rr(&b->r, 2, 3);
        ev_add(b, t, E_KILL, P_SVC, s, rel, K_NONE);
        size_t op = op_open(b, OP_KILL, s, rel, t);
        /* one in five ignores SIGTERM and is killed at the 10 s stop timeout */
        int64_t ex = t + (chance(&b->r, 20) ? rr(&b->r, 10000, 10300) : rr(&b->r, 200, 2500));
        ev_add(b, ex, E_EXIT, P_SVC, s, rel, K_NONE);
        int64_t stop = ex + rr(&b->r, 50, 120);
        ev_add(b, stop, E_STOP, P_SVC, s, rel, K_NONE);
        op_close(op, stop, 0);
        if (stop > last)
            last = stop;
    }
    return last;
}

/* Install (optional), start for the services in mask; started[] gets each
 * service's Service started time; returns the last one. */
static int64_t start_services(seqb *b, const device *d, unsigned mask, int rel, int64_t t, int install,
                              int64_t started[MAX_SVC])
{
    int64_t last = t;
    for (int s = 0; s < d->n_svc; s++) {
        if (!(mask & (1u << s)))
            continue;
        t += rr(&b->r, 2, 3);
        int64_t st = t;
        if (install) {
            ev_add(b, t, E_INSTALL, P_SVC, s, rel, K_NONE);
            size_t op = op_open(b, OP_INSTALL, s, rel, t);
            int64_t done = t + rr(&b->r, 300, 600);
            ev_add(b, done, E_INSTALLED, P_SVC, s, rel, K_NONE);
            op_close(op, done, 0);
            st = done + rr(&b->r, 4, 8);
        }
        ev_add(b, st, E_START, P_SVC, s, rel, K_NONE);
        size_t op = op_open(b, OP_START, s, rel, st);
        int64_t up = st + rr(&b->r, 400, 900);
        ev_add(b, up, E_STARTED, P_SVC, s, rel, K_NONE);
        op_close(op, up, 0);
        started[s] = up;
        if (up > last)
            last = up;
    }
    return last;
}

/* Removal of the images of release rel for the services in mask. */
static int64_t remove_images(seqb *b, const device *d, unsigned mask, int rel, int64_t t)
{
    int64_t last = t;
    t += rr(&b->r, 200, 400);
    for (int s = 0; s < d->n_svc; s++) {
        if (!(mask & (1u << s)))
            continue;
        t += 3;
        ev_add(b, t, E_REMOVAL, P_IMGR, s, rel, K_NONE);
        size_t op = op_open(b, OP_REMOVAL, s, rel, t);
        int64_t done = t + rr(&b->r, 300, 1600);
        ev_add(b, done, E_REMOVED, P_IMGR, s, rel, K_NONE);
        op_close(op, done, 0);
        if (done > last)
            last = done;
    }
    return last;
}

/* One image's download plan: steps of kind NR (delta not ready yet), FAIL
 * (download error) and OK, each with a start and a result time. */
enum { STEP_NR, STEP_FAIL, STEP_OK };
typedef struct dl_plan {
    int n;
    int kind[MAX_ATTEMPTS];
    int64_t start[MAX_ATTEMPTS], result[MAX_ATTEMPTS];
} dl_plan;

static void plan_download(rng *r, dl_plan *p, int64_t t, int n_nr, int n_fail, int64_t dur)
{
    p->n = 0;
    for (int i = 0; i < n_nr; i++) {
        p->kind[p->n] = STEP_NR;
        p->start[p->n] = t;
        p->result[p->n] = t + rr(r, 300, 3000);
        t = p->result[p->n] + (15000LL << i) + rr(r, 0, 2000); /* backoff until the delta is ready */
        p->n++;
    }
    for (int i = 0; i < n_fail; i++) {
        p->kind[p->n] = STEP_FAIL;
        p->start[p->n] = t;
        p->result[p->n] = t + rr(r, 2000, 60000);
        t = p->result[p->n] + (4000LL << i) + rr(r, 0, 1000); /* the apply loop's backoff */
        p->n++;
    }
    p->kind[p->n] = STEP_OK;
    p->start[p->n] = t;
    p->result[p->n] = t + dur;
    p->n++;
}

/* Emits a plan up to time cut (inclusive). Returns 1 when the image was
 * downloaded by then; *open gets the op left open at the cut (or SIZE_MAX). */
static int emit_download(seqb *b, const dl_plan *p, int s, int rel, int dl_type, int64_t cut, size_t *open,
                         int64_t *done)
{
    size_t op = SIZE_MAX;
    int is_open = 0;
    *open = SIZE_MAX;
    for (int i = 0; i < p->n; i++) {
        if (p->start[i] > cut)
            break;
        ev_add(b, p->start[i], dl_type, P_IMGF, s, rel, K_NONE);
        if (is_open)
            op_attempt(op, p->start[i]);
        else
            op = op_open(b, OP_DOWNLOAD, s, rel, p->start[i]), is_open = 1;
        if (p->result[i] > cut) {
            *open = op;
            return 0;
        }
        if (p->kind[i] == STEP_NR) {
            ev_add(b, p->result[i], E_DELTA_STILL, P_NONE, s, rel, K_NONE);
        } else if (p->kind[i] == STEP_FAIL) {
            ev_add(b, p->result[i], E_DL_ERROR, P_ERR_IMGF, s, rel, K_DOWNLOAD);
            op_close(op, p->result[i], 1);
            is_open = 0;
        } else {
            ev_add(b, p->result[i], E_DOWNLOADED, P_IMGF, s, rel, K_NONE);
            op_close(op, p->result[i], 0);
            *done = p->result[i];
            return 1;
        }
    }
    if (is_open)
        *open = op;
    return 0;
}

typedef struct seq_result {
    int64_t end;        /* the last event */
    int64_t crash_from; /* crash-after-update: when the crash loop starts, else -1 */
    int crash_svc;
} seq_result;

/* A release update from release `from` to `to` (download-then-kill, deltas),
 * from ../shared/data/release-update-3-services.jsonl and its variants. */
static seq_result build_update(seqb *b, const device *d, int from, int to, unsigned variants, int64_t t)
{
    seq_result res = {t, -1, -1};
    const release *R = &d->rel[to];
    unsigned all = (1u << d->n_svc) - 1u, changed = R->changed & all;
    ev_add(b, t, E_NOTIFY, P_NONE, 0, to, K_NONE);
    note_notify(b, t);
    int fail_svc = (variants & V_DOWNLOAD_FAILURE) ? (int)rng_below(&b->r, (uint64_t)d->n_svc) : -1;
    dl_plan plan[MAX_SVC];
    int64_t tdl = t + rr(&b->r, 800, 2500), first_done = INT64_MAX, last_done = 0;
    for (int s = 0; s < d->n_svc; s++) {
        int is_changed = (changed >> s) & 1u;
        int n_nr = (variants & V_DELTA_NOT_READY) && is_changed ? (int)rr(&b->r, 1, 3) : 0;
        int n_fail = s == fail_svc ? (int)rr(&b->r, 1, 3) : 0;
        int64_t dur = is_changed ? rr(&b->r, 3000, 90000) : rr(&b->r, 100, 800);
        tdl += rr(&b->r, 2, 5);
        plan_download(&b->r, &plan[s], tdl, n_nr, n_fail, dur);
        int64_t done = plan[s].result[plan[s].n - 1];
        if (done < first_done)
            first_done = done;
        if (done > last_done)
            last_done = done;
    }
    int64_t cut = INT64_MAX;
    if ((variants & V_CUT_OFF) && last_done > tdl + 2)
        cut = rr(&b->r, first_done < last_done ? first_done : tdl + 1, last_done - 1); /* power cut */
    int64_t done_at = 0;
    unsigned pending = 0;
    size_t open[MAX_SVC];
    for (int s = 0; s < d->n_svc; s++) {
        int64_t dn = 0;
        if (emit_download(b, &plan[s], s, to, E_DELTA_DL, cut, &open[s], &dn)) {
            if (dn > done_at)
                done_at = dn;
        } else {
            pending |= 1u << s;
        }
    }
    if (pending) { /* the supervisor comes back and fetches what is missing */
        int64_t back = cut + rr(&b->r, 30000, 90000);
        ev_add(b, back, E_SUP_START, P_NONE, 0, to, K_NONE);
        for (int s = 0; s < d->n_svc; s++)
            if (open[s] != SIZE_MAX && b->collect)
                T.ops[open[s]].cut_at = back;
        int64_t t2 = back + rr(&b->r, 5000, 15000);
        for (int s = 0; s < d->n_svc; s++) {
            if (!(pending & (1u << s)))
                continue;
            t2 += rr(&b->r, 2, 5);
            dl_plan p2;
            plan_download(&b->r, &p2, t2, 0, 0, (changed >> s) & 1u ? rr(&b->r, 3000, 90000) : rr(&b->r, 100, 800));
            size_t o2;
            int64_t dn = 0;
            emit_download(b, &p2, s, to, E_DELTA_DL, INT64_MAX, &o2, &dn);
            if (dn > done_at)
                done_at = dn;
        }
    }
    int64_t tk = done_at + rr(&b->r, 30, 150);
    if (d->sup->locks) {
        ev_add(b, tk, E_TAKE_LOCKS, P_LOCK_TAKE, 0, to, K_NONE);
        tk += rr(&b->r, 20, 60);
    }
    int64_t stopped = changed ? kill_services(b, d, changed, from, tk) : tk;
    int64_t removed = remove_images(b, d, all, from, stopped);
    int64_t started[MAX_SVC] = {0};
    int64_t last = changed ? start_services(b, d, changed, to, removed + rr(&b->r, 80, 150), 1, started) : removed;
    if (d->sup->locks) {
        last += rr(&b->r, 80, 150);
        ev_add(b, last, E_RELEASE_LOCKS, P_LOCK_REL, 0, to, K_NONE);
    }
    res.end = last;
    if ((variants & V_CRASH_AFTER) && changed) {
        int s = 0;
        while (!(changed & (1u << s)))
            s++;
        res.crash_svc = s;
        res.crash_from = started[s] + rr(&b->r, 500, 20000);
    }
    return res;
}

/* Provisioning (bootstrap, with failures for bootstrap-retry) and the first
 * install of release 0 on a fresh device. */
static seq_result build_provision(seqb *b, const device *d, unsigned scen, int64_t t, int64_t retry_until)
{
    seq_result res = {t, -1, -1};
    ev_add(b, t, E_SUP_START, P_NONE, 0, 0, K_NONE);
    int64_t cur = t + rr(&b->r, 200, 2000);
    if (scen & S_BOOTSTRAP) {
        while (cur < retry_until) {
            ev_add(b, cur, E_BOOTSTRAP, P_NONE, 0, 0, K_NONE);
            size_t op = op_open(b, OP_BOOTSTRAP, 0, 0, cur);
            int64_t f = cur + (chance(&b->r, 70) ? rr(&b->r, 50, 3000) : rr(&b->r, 10000, 20000));
            ev_add(b, f, E_BOOT_FAILED, P_DELAY_ERR, 0, 0, K_BOOTSTRAP);
            op_close(op, f, 1);
            cur = f + 30000; /* bootstrapRetryDelay */
        }
    }
    ev_add(b, cur, E_BOOTSTRAP, P_NONE, 0, 0, K_NONE);
    size_t op = op_open(b, OP_BOOTSTRAP, 0, 0, cur);
    int64_t ok = cur + rr(&b->r, 300, 3000);
    ev_add(b, ok, E_BOOT_SUCCESS, P_NONE, 0, 0, K_NONE);
    op_close(op, ok, 0);
    res.end = ok;
    if (!(scen & S_FIRST_INSTALL))
        return res;
    int64_t n = ok + rr(&b->r, 1000, 5000);
    ev_add(b, n, E_NET_CREATE, P_NONE, 0, 0, K_NONE);
    int64_t vols = rr(&b->r, 0, 2);
    for (int64_t v = 0; v < vols; v++)
        ev_add(b, n += rr(&b->r, 50, 300), E_VOL_CREATE, P_NONE, 0, 0, K_NONE);
    int64_t done_at = n, tdl = n + rr(&b->r, 100, 600);
    for (int s = 0; s < d->n_svc; s++) {
        dl_plan p;
        tdl += rr(&b->r, 2, 5);
        plan_download(&b->r, &p, tdl, 0, 0, rr(&b->r, 20000, 300000)); /* full pulls: no delta source yet */
        size_t o;
        int64_t dn = 0;
        emit_download(b, &p, s, 0, E_DOCKER_DL, INT64_MAX, &o, &dn);
        if (dn > done_at)
            done_at = dn;
    }
    int64_t started[MAX_SVC];
    res.end = start_services(b, d, (1u << d->n_svc) - 1u, 0, done_at + rr(&b->r, 80, 150), 1, started);
    return res;
}

static seq_result build_config(seqb *b, const device *d, int64_t t)
{
    seq_result res = {t, -1, -1};
    int changes = chance(&b->r, 30) ? 2 : 1;
    for (int c = 0; c < changes; c++) {
        if (c)
            t = res.end + rr(&b->r, MIN, 10 * MIN);
        if (chance(&b->r, 35)) { /* boot config: applied, then a reboot */
            ev_add(b, t, E_BOOTCFG_PROGRESS, P_NONE, 0, 0, K_NONE);
            size_t op = op_open(b, OP_BOOTCFG, 0, 0, t);
            int64_t e = t + rr(&b->r, 200, 3000);
            if (chance(&b->r, 10)) {
                ev_add(b, e, E_BOOTCFG_ERROR, chance(&b->r, 50) ? P_ERRS : P_ERR, 0, 0, K_BOOTCFG);
                op_close(op, e, 1);
                res.end = e;
                continue;
            }
            ev_add(b, e, E_BOOTCFG_SUCCESS, P_NONE, 0, 0, K_NONE);
            op_close(op, e, 0);
            if (d->sup->reboot_sched)
                ev_add(b, e += rr(&b->r, 20, 200), E_REBOOT_SCHEDULED, P_NONE, 0, 0, K_NONE);
            ev_add(b, e += rr(&b->r, 1000, 5000), E_REBOOT, P_NONE, 0, 0, K_NONE);
            ev_add(b, e += rr(&b->r, 30000, 90000), E_SUP_START, P_NONE, 0, 0, K_NONE);
            res.end = e;
        } else {
            ev_add(b, t, E_CFG_PROGRESS, P_NONE, 0, 0, K_NONE);
            size_t op = op_open(b, OP_CONFIG, 0, 0, t);
            int64_t e = t + rr(&b->r, 50, 800);
            int bad = chance(&b->r, 12);
            ev_add(b, e, bad ? E_CFG_ERROR : E_CFG_SUCCESS, bad ? P_ERR : P_NONE, 0, 0, bad ? K_CONFIG : K_NONE);
            op_close(op, e, bad);
            if (!bad && chance(&b->r, 10))
                ev_add(b, e += rr(&b->r, 5, 50), E_FIREWALL, P_NONE, 0, 0, K_NONE);
            res.end = e;
        }
    }
    return res;
}

static seq_result build_user(seqb *b, const device *d, int rel, int64_t t)
{
    seq_result res = {t, -1, -1};
    int actions = (int)rr(&b->r, 1, 2);
    for (int a = 0; a < actions; a++) {
        if (a)
            t = res.end + rr(&b->r, MIN, 20 * MIN);
        switch (rng_below(&b->r, 4)) {
        case 0:
            ev_add(b, t, E_BLINK, P_NONE, 0, rel, K_NONE);
            res.end = t;
            break;
        case 1:
            ev_add(b, t, E_GET_APP, P_APPID, 0, rel, K_NONE);
            res.end = t;
            break;
        case 2: { /* POST /v1/restart: every service is killed and started again */
            ev_add(b, t, E_RESTART_V1, P_APPID, 0, rel, K_NONE);
            unsigned all = (1u << d->n_svc) - 1u;
            int64_t stopped = kill_services(b, d, all, rel, t + rr(&b->r, 20, 200));
            int64_t started[MAX_SVC];
            res.end = start_services(b, d, all, rel, stopped + rr(&b->r, 50, 300), 0, started);
            break;
        }
        default: {
            ev_add(b, t, E_PURGE, P_APPID, 0, rel, K_NONE);
            size_t op = op_open(b, OP_PURGE, 0, rel, t);
            int64_t e = t + rr(&b->r, 500, 5000);
            int bad = chance(&b->r, 15);
            ev_add(b, e, bad ? E_PURGE_ERROR : E_PURGE_SUCCESS, bad ? P_APPID_ERRS : P_APPID, 0, rel,
                   bad ? K_PURGE : K_NONE);
            op_close(op, e, bad);
            res.end = e;
            break;
        }
        }
    }
    return res;
}

/* ---- activities ------------------------------------------------------------- */

enum { A_PROVISION, A_UPDATE, A_CONFIG, A_USER, A_CRASH, A_OFFLINE };

struct act {
    int kind;
    uint32_t dev, idx;
    uint64_t seed;
    int64_t start, end; /* end: loops stop before it */
    /* parameters */
    int from, to, svc;
    unsigned variants, scen;
    int64_t until; /* provisioning: retry until */
    int mode;      /* crash loop: 0 dies at once (engine backoff), 1 runs a while */
    int64_t cycle;
    /* run state */
    int active;
    int64_t next_t;
    gev *ev;
    size_t n_ev, i_ev;
    rng r;
    int phase, k;
    int64_t base_t; /* offline: the last report failure */
    gev cur;
    uint64_t emitted, restarts;
    int64_t first_t, last_t; /* first and last event emitted */
};

static int cmp_gev(const void *a, const void *b)
{
    const gev *x = a, *y = b;
    if (x->t != y->t)
        return x->t < y->t ? -1 : 1;
    return x->order < y->order ? -1 : x->order > y->order;
}

/* Builds a sequential activity's events (collect: also its truth). */
static seq_result build_seq(act *a, seqb *b, int collect)
{
    memset(b, 0, sizeof *b);
    b->dev = a->dev;
    b->collect = collect;
    rng_seed(&b->r, a->seed);
    const device *d = &DEV[a->dev];
    seq_result res = {a->start, -1, -1};
    switch (a->kind) {
    case A_PROVISION: res = build_provision(b, d, a->scen, a->start, a->until); break;
    case A_UPDATE: res = build_update(b, d, a->from, a->to, a->variants, a->start); break;
    case A_CONFIG: res = build_config(b, d, a->start); break;
    case A_USER: res = build_user(b, d, a->from, a->start); break;
    default: break;
    }
    qsort(b->ev, b->n, sizeof *b->ev, cmp_gev);
    if (b->n && b->ev[b->n - 1].t > res.end)
        res.end = b->ev[b->n - 1].t;
    return res;
}

/* Crash loop: Service exit / Service restart pairs. Mode 0: the container
 * dies at once; the engine waits 100 ms doubling to a 60 s cap (~120
 * events/h). Mode 1: it runs `cycle` before dying; the engine restarts it at
 * once (cycle 15.5-59 s: ~120-465 events/h). */
static int crash_step(act *a)
{
    if (a->phase == 0) { /* the exit just emitted: restart next */
        int64_t delay = a->mode == 0 ? (a->k < 10 ? 100LL << a->k : 60000) : rr(&a->r, 100, 120);
        a->next_t += delay;
        a->phase = 1;
        a->cur.type = E_RESTART;
    } else {
        a->k++;
        a->next_t += a->mode == 0 ? rr(&a->r, 5, 40) : a->cycle - 110 + rr(&a->r, 0, 500);
        a->phase = 0;
        a->cur.type = E_EXIT;
    }
    a->cur.t = a->next_t;
    return a->next_t < a->end;
}

/* Offline: Device state report failure with the backoff 15, 30, 60, 120,
 * 240, 480 s then every 900 s; v17.8+ adds Device tags report failure. */
static int offline_step(act *a)
{
    static const int64_t backoff[] = {15000, 30000, 60000, 120000, 240000, 480000};
    const device *d = &DEV[a->dev];
    if (a->phase == 0 && d->sup->tags) {
        a->phase = 1;
        a->next_t += rr(&a->r, 100, 3000);
        a->cur.type = E_TAGS_FAIL;
        a->cur.props = P_ERR;
    } else {
        a->phase = 0;
        a->next_t = a->base_t + (a->k < 6 ? backoff[a->k] : 900000) + rr(&a->r, 0, 2000);
        a->base_t = a->next_t;
        a->k++;
        a->cur.type = E_REPORT_FAIL;
        a->cur.props = d->sup->report_string ? P_ERRS : P_ERR;
    }
    a->cur.t = a->next_t;
    a->cur.errseed = (uint32_t)rng_next(&a->r);
    return a->next_t < a->end;
}

/* ---- planning ------------------------------------------------------------- */

static act *ACTS;
static size_t N_ACTS, CAP_ACTS;

static act *new_act(uint32_t dev, int kind, int64_t start)
{
    if (N_ACTS == CAP_ACTS) {
        CAP_ACTS = CAP_ACTS ? CAP_ACTS * 2 : 256;
        ACTS = xrealloc(ACTS, CAP_ACTS * sizeof *ACTS);
    }
    act *a = &ACTS[N_ACTS++];
    memset(a, 0, sizeof *a);
    a->dev = dev;
    a->idx = (uint32_t)(N_ACTS - 1);
    a->kind = kind;
    a->start = start;
    a->end = INT64_MAX;
    a->seed = mix3(O.seed, dev, a->idx);
    return a;
}

static void new_release(device *d, rng *r)
{
    d->rel = xrealloc(d->rel, (d->n_rel + 1) * sizeof *d->rel);
    release *R = &d->rel[d->n_rel];
    const release *P = d->n_rel ? &d->rel[d->n_rel - 1] : NULL;
    memset(R, 0, sizeof *R);
    R->id = P ? P->id + rr(r, 10, 4000) : rr(r, 1500000, 2600000);
    rng_hex(r, R->commit, 32);
    int64_t img = P ? P->image_id[d->n_svc - 1] + rr(r, 1, 5000) : rr(r, 3000000, 5900000);
    for (int s = 0; s < d->n_svc; s++) {
        R->image_id[s] = img + s;
        rng_hex(r, R->image_hex[s], 32);
        rng_hex(r, R->digest[s], 64);
    }
    R->changed = (1u << d->n_svc) - 1u;
    d->n_rel++;
}

static void plan_device(uint32_t di)
{
    device *d = &DEV[di];
    rng r;
    rng_seed(&r, mix3(O.seed, di, 0xdeu));
    rng_hex(&r, d->uuid, 32);
    d->sup = &SUPS[rng_below(&r, N_SUPS)];
    d->model = MODELS[rng_below(&r, sizeof MODELS / sizeof MODELS[0])];
    d->app_id = rr(&r, 1000000, 2099999);
    rng_hex(&r, d->app_uuid, 32);
    d->n_svc = O.services ? O.services : (int)rr(&r, 1, 4);
    int64_t sid = rr(&r, 100000, 1999999);
    for (int s = 0; s < d->n_svc; s++)
        d->svc_id[s] = sid + s;
    new_release(d, &r); /* release 0: running at the start, or the first install */

    int64_t T0 = O.start, span = O.span_ms;
    unsigned sc = O.scenarios;
    int kinds[5], n = 0;
    if (sc & S_CONFIG)
        kinds[n++] = A_CONFIG;
    if (sc & S_UPDATE)
        kinds[n++] = A_UPDATE;
    if (sc & S_CRASH)
        kinds[n++] = A_CRASH;
    if (sc & S_USER)
        kinds[n++] = A_USER;
    for (int i = n - 1; i > 0; i--) { /* shuffle */
        int j = (int)rng_below(&r, (uint64_t)i + 1u);
        int x = kinds[i];
        kinds[i] = kinds[j];
        kinds[j] = x;
    }
    int provision = (sc & (S_FIRST_INSTALL | S_BOOTSTRAP)) != 0;
    int slots = n + provision;
    int64_t slot = slots ? span / slots : span, cursor = T0;
    int cur_rel = 0;
    if (provision) {
        act *a = new_act(di, A_PROVISION, T0 + rr(&r, 0, slot / 20));
        a->scen = sc;
        int64_t loop = (sc & S_BOOTSTRAP) ? rr(&r, slot * 3 / 10, slot * 6 / 10) : 0;
        if (loop > 2 * HOUR)
            loop = 2 * HOUR;
        a->until = a->start + loop;
        seqb b;
        seq_result res = build_seq(a, &b, O.truth != NULL);
        free(b.ev);
        cursor = res.end;
    }
    for (int i = 0; i < n; i++) {
        int64_t slot_start = T0 + (int64_t)(i + provision) * slot, slot_end = slot_start + slot;
        int64_t st = slot_start + rr(&r, 0, slot * 3 / 10);
        if (st < cursor + 5000)
            st = cursor + 5000;
        act *a = new_act(di, kinds[i], st);
        if (kinds[i] == A_CRASH) {
            a->svc = (int)rng_below(&r, (uint64_t)d->n_svc);
            a->to = cur_rel;
            a->mode = chance(&r, 40) ? 0 : 1;
            a->cycle = rr(&r, 15500, 59000);
            int64_t len = slot_end - st;
            a->end = st + (len > 10 * MIN ? rr(&r, 10 * MIN, len) : 10 * MIN);
            cursor = a->end;
            continue;
        }
        if (kinds[i] == A_UPDATE) {
            a->from = cur_rel;
            new_release(d, &r);
            a->to = cur_rel = (int)d->n_rel - 1;
            unsigned v = O.variants;
            if (!O.variants_given) { /* a realistic mix */
                v = chance(&r, 25) ? V_UNCHANGED : 0;
                v |= chance(&r, 20) ? V_DELTA_NOT_READY : 0;
                v |= chance(&r, 15) ? V_DOWNLOAD_FAILURE : 0;
                v |= chance(&r, 20) ? V_CRASH_AFTER : 0;
                v |= chance(&r, 10) ? V_CUT_OFF : 0;
            }
            if ((v & V_UNCHANGED) && d->n_svc > 1) /* one service keeps its image content */
                d->rel[a->to].changed &= ~(1u << rng_below(&r, (uint64_t)d->n_svc));
            a->variants = v;
        } else if (kinds[i] == A_USER) {
            a->from = cur_rel;
        }
        seqb b;
        seq_result res = build_seq(a, &b, O.truth != NULL);
        free(b.ev);
        cursor = res.end;
        if (res.crash_from >= 0) {
            act *c = new_act(di, A_CRASH, res.crash_from);
            c->svc = res.crash_svc;
            c->to = cur_rel;
            c->mode = chance(&r, 40) ? 0 : 1;
            c->cycle = rr(&r, 15500, 59000);
            int64_t len = slot_end - res.crash_from;
            c->end = res.crash_from + (len > 10 * MIN ? rr(&r, 10 * MIN, len) : 10 * MIN);
            cursor = c->end;
        }
    }
    if (sc & S_OFFLINE) {
        int64_t w0 = T0 + rr(&r, 0, span / 2), rem = T0 + span - w0;
        act *a = new_act(di, A_OFFLINE, w0);
        a->end = w0 + rr(&r, rem < HOUR ? rem : HOUR, rem);
    }
}

/* ---- rendering ---------------------------------------------------------------- */

static void put_str(fy_buf *b, const char *s) { fy_json_emit_string(b, s, strlen(s)); }

static void image_name(fy_buf *b, const release *R, int s)
{
    fy_buf_printf(b, "\"registry2.balena-cloud.com/v2/%s@sha256:%s\"", R->image_hex[s], R->digest[s]);
}

static void put_service(fy_buf *b, const device *d, int s, int rel)
{
    const release *R = &d->rel[rel];
    fy_buf_printf(b, "{\"appId\":%" PRId64 ",\"serviceId\":%" PRId64 ",\"serviceName\":", d->app_id, d->svc_id[s]);
    put_str(b, SVC_NAMES[s]);
    if (d->sup->commit)
        fy_buf_printf(b, ",\"commit\":\"%s\"", R->commit);
    fy_buf_printf(b, ",\"releaseId\":%" PRId64 "}", R->id);
}

static void put_image(fy_buf *b, const device *d, int s, int rel, int removal)
{
    const release *R = &d->rel[rel];
    fy_buf_puts(b, "{\"name\":");
    image_name(b, R, s);
    if (removal) {
        fy_buf_printf(b, ",\"appId\":%" PRId64 ",\"serviceId\":%" PRId64 ",\"serviceName\":", d->app_id, d->svc_id[s]);
        put_str(b, SVC_NAMES[s]);
        fy_buf_printf(b, ",\"imageId\":%" PRId64 ",\"releaseId\":%" PRId64 ",\"dependent\":0,\"appUuid\":\"%s\",\"commit\":\"%s\"}",
                      R->image_id[s], R->id, d->app_uuid, R->commit);
    } else {
        fy_buf_printf(b, ",\"appId\":%" PRId64 ",\"appUuid\":\"%s\",\"serviceId\":%" PRId64 ",\"serviceName\":",
                      d->app_id, d->app_uuid, d->svc_id[s]);
        put_str(b, SVC_NAMES[s]);
        fy_buf_printf(b, ",\"imageId\":%" PRId64 ",\"releaseId\":%" PRId64 ",\"commit\":\"%s\"}", R->image_id[s], R->id,
                      R->commit);
    }
}

/* A public cloud address (never a private range). */
static void ip(rng *r, fy_buf *b)
{
    static const int first[] = {3, 13, 18, 34, 35, 44, 52, 54};
    fy_buf_printf(b, "%d.%d.%d.%d", first[rng_below(r, 8)], (int)rr(r, 0, 255), (int)rr(r, 0, 255), (int)rr(r, 1, 254));
}

/* The error message of family k (no newline). */
static void error_message(fy_buf *b, rng *r, int k, const device *d, const gev *e)
{
    char hex[33];
    switch (k) {
    case K_DOWNLOAD: {
        const release *R = &d->rel[e->rel];
        switch (rng_below(r, 6)) {
        case 0:
            rng_hex(r, hex, 16);
            fy_buf_printf(b,
                          "(HTTP code 404) no such image - no such image: registry2.balena-cloud.com/v2/%s:delta-%s: No such image: registry2.balena-cloud.com/v2/%s:delta-%s ",
                          R->image_hex[e->svc], hex, R->image_hex[e->svc], hex);
            break;
        case 1:
            fy_buf_puts(b, "Get \"https://registry2.balena-cloud.com/v2/\": dial tcp: lookup registry2.balena-cloud.com: Temporary failure in name resolution");
            break;
        case 2:
            fy_buf_printf(b, "write /var/lib/docker/tmp/GetImageBlob%" PRId64 ": no space left on device", rr(r, 100000000, 999999999));
            break;
        case 3: fy_buf_puts(b, "Delta server responded with status code 504 (Gateway Timeout)"); break;
        case 4:
            fy_buf_puts(b, "Get \"https://delta.balena-cloud.com/api/v3/delta\": net/http: request canceled while waiting for connection (Client.Timeout exceeded while awaiting headers)");
            break;
        default:
            fy_buf_printf(b, "read tcp 10.0.%d.%d:%d->", (int)rr(r, 0, 9), (int)rr(r, 2, 250), (int)rr(r, 32768, 60999));
            ip(r, b);
            fy_buf_puts(b, ":443: read: connection reset by peer");
            break;
        }
        break;
    }
    case K_REPORT:
        switch (rng_below(r, 6)) {
        case 0: fy_buf_puts(b, "getaddrinfo EAI_AGAIN api.balena-cloud.com"); break;
        case 1: fy_buf_puts(b, "certificate is not yet valid"); break;
        case 2: fy_buf_puts(b, "connect ETIMEDOUT "); ip(r, b); fy_buf_puts(b, ":443"); break;
        case 3: fy_buf_puts(b, "socket hang up"); break;
        case 4: fy_buf_puts(b, "read ECONNRESET"); break;
        default: fy_buf_puts(b, "Client network socket disconnected before secure TLS connection was established"); break;
        }
        break;
    case K_BOOTSTRAP:
        switch (rng_below(r, 4)) {
        case 0: fy_buf_puts(b, "getaddrinfo ENOTFOUND api.balena-cloud.com"); break;
        case 1: fy_buf_puts(b, "connect ECONNREFUSED "); ip(r, b); fy_buf_puts(b, ":443"); break;
        case 2: fy_buf_puts(b, "Request error: unable to get local issuer certificate"); break;
        default: fy_buf_puts(b, "Request error: ESOCKETTIMEDOUT"); break;
        }
        break;
    case K_CONFIG: {
        static const char *const keys[] = {"SUPERVISOR_POLL_INTERVAL", "SUPERVISOR_DELTA_REQUEST_TIMEOUT",
                                           "HOST_FIREWALL_MODE", "SUPERVISOR_VPN_CONTROL"};
        fy_buf_printf(b, "Invalid value for %s", keys[rng_below(r, 4)]);
        break;
    }
    case K_BOOTCFG: {
        static const char *const keys[] = {"foo_bar", "gpu_mem_1024", "dtoverlay", "hdmi_force_hotplug"};
        fy_buf_printf(b, "Attempt to change blacklisted config value %s", keys[rng_below(r, 4)]);
        break;
    }
    case K_PURGE:
        fy_buf_printf(b, "Application with ID %" PRId64 " is not in the current state", d->app_id);
        break;
    default: fy_buf_puts(b, "Unknown error"); break;
    }
}

/* A node stack of bundled-JS frames: 300 to 3000 bytes in all. */
static void error_stack(fy_buf *b, rng *r, const char *msg, size_t msg_len)
{
    static const char *const fns[] = {
        NULL, "ApplicationManager.applyTarget", "Images.triggerFetch", "Object.fetchDelta", "DeviceState.applyStep",
        "IncomingMessage.<anonymous>", "Request._callback", "Request.self.callback", "ServiceManager.kill",
        "tryCatcher", "Promise._settlePromiseFromHandler", "async Promise.all (index 0)", "Object.provision",
        "APIBinder.reportCurrentState", "TLSSocket.emit", "DeviceConfig.setBootConfig",
    };
    static const char *const fixed[] = {
        "    at processTicksAndRejections (node:internal/process/task_queues:95:5)",
        "    at GetAddrInfoReqWrap.onlookup [as oncomplete] (node:dns:107:26)",
        "    at endReadableNT (node:internal/streams/readable:1400:12)",
        "    at TLSSocket.emit (node:events:529:35)",
        "    at new Promise (<anonymous>)",
    };
    size_t base = b->len;
    int64_t target = rr(r, 320, 2950);
    fy_buf_puts(b, "Error: ");
    fy_buf_append(b, msg, msg_len);
    fy_buf frame;
    fy_buf_init(&frame, 0);
    while ((int64_t)(b->len - base) < target) {
        fy_buf_reset(&frame);
        uint64_t pick = rng_below(r, 24);
        if (pick < 5)
            fy_buf_puts(&frame, fixed[pick]);
        else if (pick < 8)
            fy_buf_printf(&frame, "    at /usr/src/app/dist/app.js:%d:%d", (int)rr(r, 1, 600), (int)rr(r, 100, 1999999));
        else {
            const char *fn = fns[1 + rng_below(r, sizeof fns / sizeof fns[0] - 1)];
            if (!strcmp(fn, "tryCatcher"))
                fy_buf_printf(&frame, "    at tryCatcher (/usr/src/app/node_modules/bluebird/js/release/util.js:16:23)");
            else
                fy_buf_printf(&frame, "    at %s (/usr/src/app/dist/app.js:%d:%d)", fn, (int)rr(r, 1, 600),
                              (int)rr(r, 100, 1999999));
        }
        if (b->len - base + 1 + frame.len > 3000)
            break;
        fy_buf_putc(b, '\n');
        fy_buf_append(b, frame.data, frame.len);
    }
    fy_buf_free(&frame);
}

/* "error": {"message": ..., "stack": ...} or "error": "message". */
static void put_error(fy_buf *b, const device *d, const gev *e, int as_string)
{
    rng r;
    rng_seed(&r, mix3(O.seed, e->errseed, e->errk));
    fy_buf msg;
    fy_buf_init(&msg, 0);
    error_message(&msg, &r, e->errk, d, e);
    if (as_string) {
        fy_json_emit_string(b, msg.data, msg.len);
    } else {
        fy_buf stack;
        fy_buf_init(&stack, 0);
        error_stack(&stack, &r, msg.data, msg.len);
        fy_buf_puts(b, "{\"message\":");
        fy_json_emit_string(b, msg.data, msg.len);
        fy_buf_puts(b, ",\"stack\":");
        fy_json_emit_string(b, stack.data, stack.len);
        fy_buf_putc(b, '}');
        fy_buf_free(&stack);
    }
    fy_buf_free(&msg);
}

static void render(fy_buf *b, const device *d, const gev *e)
{
    fy_buf_puts(b, "{\"event_type\":");
    put_str(b, EVENT_NAMES[e->type]);
    fy_buf_printf(b, ",\"device_id\":\"%s\",\"time\":%" PRId64 ",\"event_properties\":{", d->uuid, e->t);
    switch (e->props) {
    case P_SVC: fy_buf_puts(b, "\"service\":"); put_service(b, d, e->svc, e->rel); break;
    case P_IMGF: fy_buf_puts(b, "\"image\":"); put_image(b, d, e->svc, e->rel, 0); break;
    case P_IMGR: fy_buf_puts(b, "\"image\":"); put_image(b, d, e->svc, e->rel, 1); break;
    case P_ERR_IMGF:
        fy_buf_puts(b, "\"error\":");
        put_error(b, d, e, 0);
        fy_buf_puts(b, ",\"image\":");
        put_image(b, d, e->svc, e->rel, 0);
        break;
    case P_ERR: fy_buf_puts(b, "\"error\":"); put_error(b, d, e, 0); break;
    case P_ERRS: fy_buf_puts(b, "\"error\":"); put_error(b, d, e, 1); break;
    case P_DELAY_ERR: fy_buf_puts(b, "\"delay\":30000,\"error\":"); put_error(b, d, e, 0); break;
    case P_APPID: fy_buf_printf(b, "\"appId\":%" PRId64, d->app_id); break;
    case P_APPID_ERRS:
        fy_buf_printf(b, "\"appId\":%" PRId64 ",\"error\":", d->app_id);
        put_error(b, d, e, 1);
        break;
    case P_LOCK_TAKE:
        fy_buf_printf(b, "\"appId\":\"%" PRId64 "\",\"force\":false,\"services\":[", d->app_id);
        for (int s = 0; s < d->n_svc; s++) {
            if (s)
                fy_buf_putc(b, ',');
            put_str(b, SVC_NAMES[s]);
        }
        fy_buf_putc(b, ']');
        break;
    case P_LOCK_REL: fy_buf_printf(b, "\"appId\":\"%" PRId64 "\"", d->app_id); break;
    default: break;
    }
    fy_buf_puts(b, "},\"app_version\":");
    put_str(b, d->sup->ver);
    fy_buf_puts(b, ",\"os_name\":\"balenaOS\",\"os_version\":");
    put_str(b, d->sup->os);
    fy_buf_puts(b, ",\"device_model\":");
    put_str(b, d->model);
    fy_buf_puts(b, "}\n");
}

/* ---- the run: a heap of activities keyed by (next event time, device, index) -- */

static act **HEAP;
static size_t N_HEAP;

static int before(const act *x, const act *y)
{
    if (x->next_t != y->next_t)
        return x->next_t < y->next_t;
    if (x->dev != y->dev)
        return x->dev < y->dev;
    return x->idx < y->idx;
}

static void heap_push(act *a)
{
    size_t i = N_HEAP++;
    HEAP[i] = a;
    while (i && before(HEAP[i], HEAP[(i - 1) / 2])) {
        act *t = HEAP[i];
        HEAP[i] = HEAP[(i - 1) / 2];
        HEAP[(i - 1) / 2] = t;
        i = (i - 1) / 2;
    }
}

static act *heap_pop(void)
{
    act *top_ = HEAP[0];
    HEAP[0] = HEAP[--N_HEAP];
    size_t i = 0;
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, m = i;
        if (l < N_HEAP && before(HEAP[l], HEAP[m]))
            m = l;
        if (r < N_HEAP && before(HEAP[r], HEAP[m]))
            m = r;
        if (m == i)
            break;
        act *t = HEAP[i];
        HEAP[i] = HEAP[m];
        HEAP[m] = t;
        i = m;
    }
    return top_;
}

/* Materializes an activity when its time comes. Returns 0 if it has nothing. */
static int activate(act *a)
{
    a->active = 1;
    rng_seed(&a->r, a->seed ^ 0x5eedu);
    memset(&a->cur, 0, sizeof a->cur);
    if (a->kind == A_CRASH) {
        a->cur.type = E_EXIT;
        a->cur.props = P_SVC;
        a->cur.svc = (uint8_t)a->svc;
        a->cur.rel = (uint16_t)a->to;
        a->next_t = a->cur.t = a->start;
        return a->start < a->end;
    }
    if (a->kind == A_OFFLINE) {
        int64_t first = a->start + rr(&a->r, 1000, 10000); /* the first failure comes soon */
        a->cur.errk = K_REPORT;
        a->next_t = a->base_t = first;
        a->k = 0;
        a->phase = 0;
        a->cur.t = first;
        a->cur.type = E_REPORT_FAIL;
        a->cur.props = DEV[a->dev].sup->report_string ? P_ERRS : P_ERR;
        a->cur.errseed = (uint32_t)rng_next(&a->r);
        return first < a->end;
    }
    seqb b;
    build_seq(a, &b, 0);
    a->ev = b.ev;
    a->n_ev = b.n;
    a->i_ev = 0;
    if (!a->n_ev)
        return 0;
    a->next_t = a->ev[0].t;
    return 1;
}

static const gev *current(act *a) { return a->kind == A_CRASH || a->kind == A_OFFLINE ? &a->cur : &a->ev[a->i_ev]; }

/* Moves to the next event; 0 when the activity is over. */
static int advance(act *a)
{
    if (a->kind == A_CRASH)
        return crash_step(a);
    if (a->kind == A_OFFLINE)
        return offline_step(a);
    if (++a->i_ev >= a->n_ev)
        return 0;
    a->next_t = a->ev[a->i_ev].t;
    return 1;
}

static void pace(uint64_t n)
{
    static struct timespec t0;
    if (n == 0)
        clock_gettime(CLOCK_MONOTONIC, &t0);
    /* event n is due n / rate seconds after the first */
    uint64_t due_ns = n * 1000000000ull / O.rate;
    struct timespec due = {t0.tv_sec + (time_t)(due_ns / 1000000000ull), t0.tv_nsec + (long)(due_ns % 1000000000ull)};
    if (due.tv_nsec >= 1000000000L)
        due.tv_sec++, due.tv_nsec -= 1000000000L;
    while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &due, NULL) == EINTR) {
    }
}

/* ---- truth output ---------------------------------------------------------------- */

static int cmp_top(const void *a, const void *b)
{
    const top *x = a, *y = b;
    if (x->dev != y->dev)
        return x->dev < y->dev ? -1 : 1;
    if (x->start != y->start)
        return x->start < y->start ? -1 : 1;
    return x->order < y->order ? -1 : x->order > y->order;
}

/* What a reader of the emitted stream can know about an op, given the span. */
typedef struct seen {
    int present, unmatched;
    int64_t end, cut_at;
    unsigned attempts;
} seen;

static seen observe(const top *o, int64_t span_end)
{
    seen v = {0, 0, -1, -1, 0};
    if (o->start >= span_end)
        return v;
    v.present = 1;
    for (unsigned i = 0; i < o->n_attempt; i++)
        v.attempts += o->attempt[i] < span_end;
    if (o->end >= 0 && o->end < span_end) {
        v.end = o->end;
    } else {
        v.unmatched = 1;
        if (o->cut_at >= 0 && o->cut_at < span_end)
            v.cut_at = o->cut_at;
    }
    return v;
}

static void put_op_subject(fy_buf *b, const device *d, const top *o)
{
    int svc_op = o->kind <= OP_START;
    if (svc_op) {
        fy_buf_puts(b, ",\"service\":");
        put_str(b, SVC_NAMES[o->svc]);
        fy_buf_printf(b, ",\"release_id\":%" PRId64, d->rel[o->rel].id);
    } else {
        fy_buf_puts(b, ",\"service\":null,\"release_id\":null");
    }
    if (o->kind == OP_DOWNLOAD || o->kind == OP_REMOVAL) {
        fy_buf_puts(b, ",\"image\":");
        image_name(b, &d->rel[o->rel], o->svc);
        fy_buf_printf(b, ",\"image_id\":%" PRId64, d->rel[o->rel].image_id[o->svc]);
    } else {
        fy_buf_puts(b, ",\"image\":null,\"image_id\":null");
    }
}

/* Per-release summary of device di (the definition in tools/timeline.h). */
static void truth_releases(fy_buf *b, uint32_t di, const top *ops, size_t n, int64_t span_end,
                           const uint64_t *restarts)
{
    const device *d = &DEV[di];
    for (size_t r = 0; r < d->n_rel; r++) {
        /* the core: downloads and installs of r, and each install's next start */
        unsigned char *in = calloc(n ? n : 1, 1);
        if (!in)
            exit(EX_OSERR);
        int any = 0;
        int64_t first = INT64_MAX;
        for (size_t i = 0; i < n; i++) {
            seen v = observe(&ops[i], span_end);
            if (!v.present || ops[i].rel != r || (ops[i].kind != OP_DOWNLOAD && ops[i].kind != OP_INSTALL))
                continue;
            in[i] = 1, any = 1;
            if (ops[i].start < first)
                first = ops[i].start;
            if (ops[i].kind == OP_INSTALL)
                for (size_t j = i + 1; j < n; j++)
                    if (observe(&ops[j], span_end).present && ops[j].kind == OP_START && ops[j].svc == ops[i].svc &&
                        ops[j].rel == r) {
                        in[j] = 1;
                        break;
                    }
        }
        if (!any) {
            free(in);
            continue;
        }
        int64_t lo = first, hi = first;
        for (size_t i = 0; i < n; i++)
            if (in[i]) {
                seen v = observe(&ops[i], span_end);
                int64_t f = v.unmatched ? ops[i].start : v.end;
                if (f > hi)
                    hi = f;
            }
        for (size_t i = 0; i < n; i++) { /* kills and removals inside the window */
            seen v = observe(&ops[i], span_end);
            if (!v.present || in[i] || (ops[i].kind != OP_KILL && ops[i].kind != OP_REMOVAL))
                continue;
            if (ops[i].start >= lo && ops[i].start <= hi) {
                in[i] = 1;
                int64_t f = v.unmatched ? ops[i].start : v.end;
                if (f > hi)
                    hi = f;
            }
        }
        int64_t start = first;
        int notified = 0;
        for (size_t k = 0; k + 1 < T.n_notify; k += 2) {
            int64_t t = T.notify[k + 1];
            if ((uint32_t)T.notify[k] == di && t <= first && first - t <= 900000 && t < span_end &&
                (!notified || t > start))
                start = t, notified = 1;
        }
        /* outcome: the last op of each (kind, subject) */
        unsigned nops = 0, errors = 0, unmatched = 0, started_mask = 0, installed_mask = 0;
        int incomplete = 0, failed = 0;
        int64_t end = 0;
        for (size_t i = 0; i < n; i++) {
            if (!in[i])
                continue;
            seen v = observe(&ops[i], span_end);
            nops++;
            if (v.unmatched)
                unmatched++;
            else if (ops[i].failed)
                errors++;
            if (!v.unmatched && v.end > end)
                end = v.end;
            if (ops[i].kind == OP_INSTALL && ops[i].rel == r && !v.unmatched && !ops[i].failed)
                installed_mask |= 1u << ops[i].svc;
            if (ops[i].kind == OP_START && !v.unmatched && !ops[i].failed)
                started_mask |= 1u << ops[i].svc;
            int last = 1;
            for (size_t j = i + 1; j < n; j++)
                if (in[j] && ops[j].kind == ops[i].kind && ops[j].svc == ops[i].svc && ops[j].rel == ops[i].rel)
                    last = 0;
            if (last && v.unmatched)
                incomplete = 1;
            else if (last && ops[i].failed)
                failed = 1;
        }
        for (int s = 0; s < d->n_svc; s++) {
            if (!(installed_mask & (1u << s)))
                continue;
            int has_start = 0;
            for (size_t i = 0; i < n; i++)
                has_start |= in[i] && ops[i].kind == OP_START && ops[i].svc == s && ops[i].rel == r;
            if (!has_start)
                incomplete = 1;
        }
        const char *outcome = incomplete ? "incomplete" : failed ? "failed" : "complete";
        fy_buf_printf(b, "{\"type\":\"release\",\"device_id\":\"%s\",\"release_id\":%" PRId64 ",\"start\":%" PRId64
                         ",\"notified\":%s",
                      d->uuid, d->rel[r].id, start, notified ? "true" : "false");
        if (incomplete)
            fy_buf_puts(b, ",\"end\":null,\"duration_ms\":null");
        else
            fy_buf_printf(b, ",\"end\":%" PRId64 ",\"duration_ms\":%" PRId64, end, end - start);
        unsigned started = 0;
        for (int s = 0; s < d->n_svc; s++)
            started += (started_mask >> s) & 1u;
        fy_buf_printf(b, ",\"outcome\":\"%s\",\"operations\":%u,\"errors\":%u,\"unmatched\":%u,\"services_started\":%u,\"restarts\":%" PRIu64 "}\n",
                      outcome, nops, errors, unmatched, started, restarts[r]);
        free(in);
    }
}

static int write_truth(const char *path)
{
    FILE *f = fopen(path, "w");
    if (!f) {
        fprintf(stderr, PROG ": %s: %s\n", path, strerror(errno));
        return EX_CANTCREAT;
    }
    int64_t span_end = O.start + O.span_ms;
    if (T.n)
        qsort(T.ops, T.n, sizeof *T.ops, cmp_top);
    fy_buf b;
    fy_buf_init(&b, 0);
    fy_buf_printf(&b, "{\"type\":\"span\",\"start\":%" PRId64 ",\"end\":%" PRId64 ",\"seed\":%" PRIu64
                      ",\"devices\":%" PRIu64 ",\"stream\":%d}\n",
                  O.start, span_end, O.seed, O.devices, GEN_STREAM);
    size_t i = 0;
    for (uint32_t di = 0; di < O.devices; di++) {
        const device *d = &DEV[di];
        size_t first = i;
        while (i < T.n && T.ops[i].dev == di)
            i++;
        for (size_t k = first; k < i; k++) {
            const top *o = &T.ops[k];
            seen v = observe(o, span_end);
            if (!v.present)
                continue;
            fy_buf_printf(&b, "{\"type\":\"operation\",\"device_id\":\"%s\",\"op\":\"%s\"", d->uuid, OP_NAMES[o->kind]);
            put_op_subject(&b, d, o);
            fy_buf_printf(&b, ",\"start\":%" PRId64, o->start);
            if (v.unmatched) {
                fy_buf_puts(&b, ",\"end\":null,\"duration_ms\":null,\"outcome\":\"unmatched\"");
            } else {
                const char *oc = o->failed ? (o->kind == OP_BOOTSTRAP ? "failed" : "error") : OP_OK[o->kind];
                fy_buf_printf(&b, ",\"end\":%" PRId64 ",\"duration_ms\":%" PRId64 ",\"outcome\":\"%s\"", v.end,
                              v.end - o->start, oc);
            }
            fy_buf_printf(&b, ",\"attempts\":%u", v.attempts);
            if (v.cut_at >= 0)
                fy_buf_printf(&b, ",\"cut_by\":\"Supervisor start\",\"cut_at\":%" PRId64 "}\n", v.cut_at);
            else
                fy_buf_puts(&b, ",\"cut_by\":null,\"cut_at\":null}\n");
        }
        uint64_t *restarts = calloc(d->n_rel, sizeof *restarts);
        if (!restarts)
            exit(EX_OSERR);
        for (size_t a = 0; a < N_ACTS; a++) {
            const act *x = &ACTS[a];
            if (x->dev != di || (x->kind != A_CRASH && x->kind != A_OFFLINE) || !x->emitted)
                continue;
            if (x->kind == A_CRASH) {
                restarts[x->to] += x->restarts;
                fy_buf_printf(&b, "{\"type\":\"crash_loop\",\"device_id\":\"%s\",\"service\":\"%s\",\"release_id\":%" PRId64
                                  ",\"mode\":\"%s\",\"start\":%" PRId64 ",\"end\":%" PRId64 ",\"events\":%" PRIu64 "}\n",
                              d->uuid, SVC_NAMES[x->svc], d->rel[x->to].id, x->mode ? "runs-then-dies" : "dies-at-once",
                              x->first_t, x->last_t, x->emitted);
            } else {
                fy_buf_printf(&b, "{\"type\":\"offline\",\"device_id\":\"%s\",\"start\":%" PRId64 ",\"end\":%" PRId64
                                  ",\"events\":%" PRIu64 "}\n",
                              d->uuid, x->start, x->end < span_end ? x->end : span_end, x->emitted);
            }
        }
        truth_releases(&b, di, T.ops + first, i - first, span_end, restarts);
        free(restarts);
        if (b.len > (1u << 16)) {
            fwrite(b.data, 1, b.len, f);
            fy_buf_reset(&b);
        }
    }
    fwrite(b.data, 1, b.len, f);
    fy_buf_free(&b);
    if (fclose(f) != 0) {
        fprintf(stderr, PROG ": %s: %s\n", path, strerror(errno));
        return EX_IOERR;
    }
    return EX_OK;
}

/* ---- main ------------------------------------------------------------------------ */

static void usage(FILE *f)
{
    fprintf(f,
"Usage: " PROG " [--seed K] [--devices M] [--hours H] [--scenario NAME]...\n"
"                 [--variant NAME]... [--services N] [--start MS] [--count N]\n"
"                 [--rate N] [--truth FILE]\n"
"\n"
"Writes a realistic stream of supervisor events, as JSON Lines of Amplitude\n"
"events (one per line, in time order), for M devices over H hours: the input\n"
"of `ferry-record --jsonl -` (or --listen), the tests and the benchmarks.\n"
"\n"
"  --seed K          PRNG seed (default 1). The same arguments give the same\n"
"                    bytes on every machine (stream format %d of this program)\n"
"  --devices M       number of devices (default 1)\n"
"  --hours H         time span, decimal hours, e.g. 24 or 0.5 (default 1)\n"
"  --start MS        start of the span, ms since the epoch (default\n"
"                    1795939200000 = 2026-11-29T08:00:00Z; never the clock)\n"
"  --scenario NAME   what happens on every device (repeatable; default all):\n"
"                    first-install   bootstrap, network, volumes, then N x\n"
"                                    download, install, start\n"
"                    bootstrap-retry Device bootstrap failures every 30 s\n"
"                                    (240 events/h), then success\n"
"                    release-update  1 + 11 N events (+2 lock events on\n"
"                                    supervisor 16.2+), with variants\n"
"                    crash-loop      Service exit/restart, 120 to 480 events/h\n"
"                                    for one service\n"
"                    offline-report-failures\n"
"                                    Device state report failure, backoff 15 s\n"
"                                    to 15 min (~10 the first hour, then 4/h)\n"
"                    config-change   config or boot config (+ reboot)\n"
"                    user-actions    blink, GET app, restart, purge\n"
"                    all             every one of them\n"
"  --variant NAME    release-update variants, combined (repeatable; default a\n"
"                    random mix per update): plain, unchanged-service,\n"
"                    delta-not-ready, download-failure, crash-after-update,\n"
"                    cut-off (power cut mid-download, then Supervisor start)\n"
"  --services N      services per device, 1 to %d (default 1 to 4 at random)\n"
"  --count N         stop after N events\n"
"  --rate N          write N events per second (flushing each line), e.g. to\n"
"                    feed `socat - UNIX-CONNECT:SOCK`; default: at once\n"
"  --truth FILE      write what happened as JSON Lines: every operation\n"
"                    (op, service, release_id, image, start, end, duration_ms,\n"
"                    outcome, attempts, cut_by, cut_at), per-release summaries,\n"
"                    crash loops and offline windows, in the shapes of\n"
"                    `ferry-journal timeline --json` (not with --count)\n"
"  -h, --help        show this help\n"
"  -V, --version     show the version\n"
"\n"
"Exit codes: 0 ok, 64 usage, 73 cannot create the truth file, 74 write error.\n",
            GEN_STREAM, MAX_SVC);
}

#define usage_error(...) fy_cli_usage_error(PROG, __VA_ARGS__)

static int parse_u64(const char *s, uint64_t *out)
{
    int64_t v;
    if (fy_cli_parse_i64(s, &v) || v < 0)
        return -1;
    *out = (uint64_t)v;
    return 0;
}

/* Decimal hours ("24", "0.5", "1.25") to ms, without floating point. */
static int parse_hours(const char *s, int64_t *ms)
{
    int64_t whole = 0, frac = 0, scale = HOUR;
    const char *p = s;
    if (!*p)
        return -1;
    for (; *p >= '0' && *p <= '9'; p++) {
        whole = whole * 10 + (*p - '0');
        if (whole > 100000)
            return -1;
    }
    if (*p == '.') {
        for (p++; *p >= '0' && *p <= '9'; p++) {
            if (scale >= 10) {
                scale /= 10;
                frac += (*p - '0') * scale;
            }
        }
    }
    if (*p || p == s)
        return -1;
    *ms = whole * HOUR + frac;
    return *ms > 0 ? 0 : -1;
}

int main(int argc, char **argv)
{
    enum { OPT_SEED = 256, OPT_DEVICES, OPT_HOURS, OPT_SCENARIO, OPT_VARIANT, OPT_SERVICES, OPT_START, OPT_COUNT,
           OPT_RATE, OPT_TRUTH };
    static const struct option longopts[] = {
        {"count", required_argument, NULL, OPT_COUNT},       {"devices", required_argument, NULL, OPT_DEVICES},
        {"help", no_argument, NULL, 'h'},                    {"hours", required_argument, NULL, OPT_HOURS},
        {"rate", required_argument, NULL, OPT_RATE},         {"scenario", required_argument, NULL, OPT_SCENARIO},
        {"seed", required_argument, NULL, OPT_SEED},         {"services", required_argument, NULL, OPT_SERVICES},
        {"start", required_argument, NULL, OPT_START},       {"truth", required_argument, NULL, OPT_TRUTH},
        {"variant", required_argument, NULL, OPT_VARIANT},   {"version", no_argument, NULL, 'V'},
        {NULL, 0, NULL, 0},
    };
    O.seed = 1;
    O.devices = 1;
    O.span_ms = HOUR;
    O.start = DEFAULT_START;
    int c;
    while ((c = getopt_long(argc, argv, "hV", longopts, NULL)) != -1) {
        uint64_t u;
        int64_t v;
        switch (c) {
        case 'h': usage(stdout); return EX_OK;
        case 'V': printf(PROG " %s (stream format %d)\n", ferry_version(), GEN_STREAM); return EX_OK;
        case OPT_SEED:
            if (parse_u64(optarg, &O.seed))
                return usage_error("--seed %s: expected a non-negative integer", optarg);
            break;
        case OPT_DEVICES:
            if (parse_u64(optarg, &O.devices) || O.devices < 1 || O.devices > 1000000)
                return usage_error("--devices %s: expected 1 to 1000000", optarg);
            break;
        case OPT_HOURS:
            if (parse_hours(optarg, &O.span_ms) || O.span_ms < 60000)
                return usage_error("--hours %s: expected decimal hours, at least one minute (0.017)", optarg);
            break;
        case OPT_START:
            if (fy_cli_parse_i64(optarg, &v) || v <= 0 || v > 32503680000000LL)
                return usage_error("--start %s: expected ms since the epoch", optarg);
            O.start = v;
            break;
        case OPT_SCENARIO: {
            int found = 0;
            if (!strcmp(optarg, "all")) {
                for (size_t i = 0; i < sizeof SCENARIOS / sizeof SCENARIOS[0]; i++)
                    O.scenarios |= SCENARIOS[i].bit;
                found = 1;
            }
            for (size_t i = 0; i < sizeof SCENARIOS / sizeof SCENARIOS[0]; i++)
                if (!strcmp(optarg, SCENARIOS[i].name))
                    O.scenarios |= SCENARIOS[i].bit, found = 1;
            if (!found)
                return usage_error("--scenario %s: unknown (see --help)", optarg);
            break;
        }
        case OPT_VARIANT: {
            int found = 0;
            for (size_t i = 0; i < sizeof VARIANTS / sizeof VARIANTS[0]; i++)
                if (!strcmp(optarg, VARIANTS[i].name))
                    O.variants |= VARIANTS[i].bit, found = 1, O.variants_given = 1;
            if (!found)
                return usage_error("--variant %s: unknown (see --help)", optarg);
            break;
        }
        case OPT_SERVICES:
            if (parse_u64(optarg, &u) || u < 1 || u > MAX_SVC)
                return usage_error("--services %s: expected 1 to %d", optarg, MAX_SVC);
            O.services = (int)u;
            break;
        case OPT_COUNT:
            if (parse_u64(optarg, &O.count) || O.count < 1)
                return usage_error("--count %s: expected a positive integer", optarg);
            break;
        case OPT_RATE:
            if (parse_u64(optarg, &O.rate) || O.rate < 1 || O.rate > 10000000)
                return usage_error("--rate %s: expected 1 to 10000000 events per second", optarg);
            break;
        case OPT_TRUTH: O.truth = optarg; break;
        default: return usage_error("%s", "invalid option");
        }
    }
    if (optind < argc)
        return usage_error("unexpected argument '%s'", argv[optind]);
    if (O.truth && O.count)
        return usage_error("%s", "--truth describes the whole span: it cannot be combined with --count");
    if (!O.scenarios)
        for (size_t i = 0; i < sizeof SCENARIOS / sizeof SCENARIOS[0]; i++)
            O.scenarios |= SCENARIOS[i].bit;
    O.variants &= ~(unsigned)V_PLAIN; /* plain = no variant flag; with others it adds nothing */

    signal(SIGPIPE, SIG_IGN);
    DEV = calloc(O.devices, sizeof *DEV);
    if (!DEV) {
        fprintf(stderr, PROG ": out of memory\n");
        return EX_OSERR;
    }
    for (uint32_t di = 0; di < O.devices; di++)
        plan_device(di);
    HEAP = xrealloc(NULL, (N_ACTS + 1) * sizeof *HEAP);
    for (size_t i = 0; i < N_ACTS; i++) {
        ACTS[i].next_t = ACTS[i].start;
        heap_push(&ACTS[i]);
    }

    static char obuf[1 << 16];
    setvbuf(stdout, obuf, _IOFBF, sizeof obuf);
    int64_t span_end = O.start + O.span_ms;
    uint64_t written = 0;
    int status = EX_OK;
    fy_buf line;
    fy_buf_init(&line, 0);
    while (N_HEAP && status == EX_OK && (!O.count || written < O.count)) {
        act *a = heap_pop();
        if (a->next_t >= span_end)
            break; /* everything left is later */
        if (!a->active) {
            if (activate(a) && a->next_t < span_end)
                heap_push(a);
            continue;
        }
        const gev *e = current(a);
        fy_buf_reset(&line);
        render(&line, &DEV[a->dev], e);
        if (O.rate)
            pace(written);
        if (fwrite(line.data, 1, line.len, stdout) != line.len || (O.rate && fflush(stdout) != 0))
            status = EX_IOERR;
        written++;
        if (!a->emitted)
            a->first_t = e->t;
        a->last_t = e->t;
        a->emitted++;
        if (e->type == E_RESTART)
            a->restarts++;
        if (advance(a) && a->next_t < span_end)
            heap_push(a);
        else {
            free(a->ev);
            a->ev = NULL;
        }
    }
    fy_buf_free(&line);
    if (status == EX_OK && fflush(stdout) != 0)
        status = EX_IOERR;
    if (status == EX_IOERR)
        fprintf(stderr, PROG ": writing output: %s\n", strerror(errno));
    if (status == EX_OK && O.truth)
        status = write_truth(O.truth);
    for (size_t i = 0; i < N_ACTS; i++)
        free(ACTS[i].ev);
    for (uint64_t di = 0; di < O.devices; di++)
        free(DEV[di].rel);
    free(DEV);
    free(ACTS);
    free(HEAP);
    free(T.ops);
    free(T.notify);
    return status;
}

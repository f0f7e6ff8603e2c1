/* timeline.c: operation timelines and event-type counts from a journal (the
 * rules are in timeline.h). */
#include "timeline.h"

#include "fy_buf.h"
#include "fy_cli.h"
#include "fy_fail.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define PROG "ferry-journal"
#define SCAN_CHUNK 1024 /* records per read transaction: never pin old pages for long */
#define NOTIFY_WINDOW_MS 900000 /* an Update notification this close before a release's first op starts it */
#define NONE INT64_MIN

/* ---- scanning ------------------------------------------------------------- */

ferry_err jt_scan(fy_journal *j, jt_visit visit, void *ctx, uint64_t *undecodable)
{
    uint64_t next = 0;
    *undecodable = 0;
    for (;;) {
        MDB_txn *txn;
        MDB_cursor *cur;
        ferry_err e = fy_txn_begin(j, MDB_RDONLY, &txn);
        if (e)
            return e;
        int rc = mdb_cursor_open(txn, j->events, &cur);
        if (rc) {
            mdb_txn_abort(txn);
            return fy_fail_lmdb(rc, "journal %s: reading events", j->path);
        }
        unsigned char kb[8];
        fy_put_be64(kb, next);
        MDB_val k = {8, kb}, d;
        int n = 0;
        for (rc = mdb_cursor_get(cur, &k, &d, MDB_SET_RANGE); !rc && n < SCAN_CHUNK;
             rc = mdb_cursor_get(cur, &k, &d, MDB_NEXT), n++) {
            uint64_t seq = fy_get_be64(k.mv_data);
            next = seq + 1;
            fy_record r;
            if (fy_record_decode(d.mv_data, d.mv_size, &r)) {
                fprintf(stderr, PROG ": journal %s: seq %" PRIu64 ": %s\n", j->path, seq, ferry_last_error());
                (*undecodable)++;
                continue;
            }
            int stop = visit(ctx, seq, &r);
            fy_record_free(&r);
            if (stop) {
                e = fy_fail(FERRY_ENOMEM, "out of memory");
                break;
            }
        }
        mdb_cursor_close(cur);
        mdb_txn_abort(txn);
        if (e)
            return e;
        if (rc == MDB_NOTFOUND)
            return FERRY_OK;
        if (rc)
            return fy_fail_lmdb(rc, "journal %s: reading events", j->path);
    }
}

/* ---- a string pool with interning ----------------------------------------- */

typedef struct pool {
    char **s;
    size_t *len;
    size_t n, cap;
    uint32_t *slots; /* id + 1 */
    size_t n_slots;
} pool;

static uint64_t hash_bytes(const char *s, size_t n)
{
    uint64_t h = 14695981039346656037ull;
    for (size_t i = 0; i < n; i++) {
        h ^= (unsigned char)s[i];
        h *= 1099511628211ull;
    }
    return h;
}

static void pool_free(pool *p)
{
    for (size_t i = 0; i < p->n; i++)
        free(p->s[i]);
    free(p->s);
    free(p->len);
    free(p->slots);
    memset(p, 0, sizeof *p);
}

static int pool_rehash(pool *p)
{
    size_t ns = p->n_slots ? p->n_slots * 2 : 256;
    uint32_t *slots = calloc(ns, sizeof *slots);
    if (!slots)
        return -1;
    for (size_t i = 0; i < p->n; i++) {
        size_t h = (size_t)hash_bytes(p->s[i], p->len[i]) & (ns - 1);
        while (slots[h])
            h = (h + 1) & (ns - 1);
        slots[h] = (uint32_t)(i + 1);
    }
    free(p->slots);
    p->slots = slots;
    p->n_slots = ns;
    return 0;
}

/* The id of s (added when new), or UINT32_MAX when out of memory. */
static uint32_t pool_intern(pool *p, const char *s, size_t n)
{
    if ((p->n + 1) * 2 > p->n_slots && pool_rehash(p))
        return UINT32_MAX;
    size_t mask = p->n_slots - 1, h = (size_t)hash_bytes(s, n) & mask;
    for (; p->slots[h]; h = (h + 1) & mask) {
        uint32_t id = p->slots[h] - 1;
        if (p->len[id] == n && memcmp(p->s[id], s, n) == 0)
            return id;
    }
    if (p->n == p->cap) {
        size_t nc = p->cap ? p->cap * 2 : 256;
        char **ns = realloc(p->s, nc * sizeof *ns);
        if (!ns)
            return UINT32_MAX;
        p->s = ns;
        size_t *nl = realloc(p->len, nc * sizeof *nl);
        if (!nl)
            return UINT32_MAX;
        p->len = nl;
        p->cap = nc;
    }
    char *copy = malloc(n + 1);
    if (!copy)
        return UINT32_MAX;
    memcpy(copy, s, n);
    copy[n] = '\0';
    p->s[p->n] = copy;
    p->len[p->n] = n;
    p->slots[h] = (uint32_t)(p->n + 1);
    return (uint32_t)p->n++;
}

/* ---- counting types ------------------------------------------------------- */

typedef struct count_ctx {
    pool names;
    uint64_t *counts;
    size_t cap;
} count_ctx;

static int count_visit(void *ctx, uint64_t seq, const fy_record *r)
{
    (void)seq;
    count_ctx *c = ctx;
    uint32_t id = pool_intern(&c->names, r->event_type, r->event_type_len);
    if (id == UINT32_MAX)
        return -1;
    if (id >= c->cap) {
        size_t nc = c->cap ? c->cap * 2 : 64;
        uint64_t *n = realloc(c->counts, nc * sizeof *n);
        if (!n)
            return -1;
        memset(n + c->cap, 0, (nc - c->cap) * sizeof *n);
        c->counts = n;
        c->cap = nc;
    }
    c->counts[id]++;
    return 0;
}

ferry_err jt_count_types(fy_journal *j, jt_type_count **out, size_t *n, uint64_t *undecodable)
{
    count_ctx c;
    memset(&c, 0, sizeof c);
    *out = NULL;
    *n = 0;
    ferry_err e = jt_scan(j, count_visit, &c, undecodable);
    jt_type_count *t = NULL;
    if (!e && c.names.n && !(t = calloc(c.names.n, sizeof *t)))
        e = fy_fail(FERRY_ENOMEM, "out of memory");
    if (!e) {
        for (size_t i = 0; i < c.names.n; i++) {
            t[i].name = c.names.s[i]; /* ownership moves */
            t[i].len = c.names.len[i];
            t[i].count = c.counts[i];
            c.names.s[i] = NULL;
        }
        *out = t;
        *n = c.names.n;
    }
    pool_free(&c.names);
    free(c.counts);
    return e;
}

void jt_free_types(jt_type_count *t, size_t n)
{
    for (size_t i = 0; t && i < n; i++)
        free(t[i].name);
    free(t);
}

/* ---- time parsing ----------------------------------------------------------- */


/* ---- event roles -------------------------------------------------------------- */

enum { OP_DOWNLOAD, OP_REMOVAL, OP_KILL, OP_INSTALL, OP_START, OP_BOOTSTRAP, OP_CONFIG, OP_BOOTCFG, OP_PURGE };
static const char *const OP_NAMES[] = {"download", "removal", "kill", "install", "start", "bootstrap",
                                       "config", "boot-config", "purge"};
enum { R_START, R_FINISH, R_CUT, R_NOTIFY, R_RESTART };
enum { SUBJ_NONE, SUBJ_SERVICE, SUBJ_IMAGE, SUBJ_APP };

typedef struct role {
    const char *name;
    uint8_t role, kind;
    const char *outcome; /* finish: the outcome word */
} role;

static const role ROLES[] = {
    {"Delta image download", R_START, OP_DOWNLOAD, NULL},
    {"Docker image download", R_START, OP_DOWNLOAD, NULL},
    {"Image downloaded", R_FINISH, OP_DOWNLOAD, "downloaded"},
    {"Image download error", R_FINISH, OP_DOWNLOAD, "error"},
    {"Image removal", R_START, OP_REMOVAL, NULL},
    {"Image removed", R_FINISH, OP_REMOVAL, "removed"},
    {"Image removal error", R_FINISH, OP_REMOVAL, "error"},
    {"Service kill", R_START, OP_KILL, NULL},
    {"Service stop", R_FINISH, OP_KILL, "stopped"},
    {"Service already stopped", R_FINISH, OP_KILL, "stopped"},
    {"Service already stopped and container removed", R_FINISH, OP_KILL, "stopped"},
    {"Service stop error", R_FINISH, OP_KILL, "error"},
    {"Service install", R_START, OP_INSTALL, NULL},
    {"Service installed", R_FINISH, OP_INSTALL, "installed"},
    {"Service install error", R_FINISH, OP_INSTALL, "error"},
    {"Service start", R_START, OP_START, NULL},
    {"Service started", R_FINISH, OP_START, "started"},
    {"Service start error", R_FINISH, OP_START, "error"},
    {"Device bootstrap", R_START, OP_BOOTSTRAP, NULL},
    {"Device bootstrap success", R_FINISH, OP_BOOTSTRAP, "success"},
    {"Device bootstrap failed, retrying", R_FINISH, OP_BOOTSTRAP, "failed"},
    {"Apply config change in progress", R_START, OP_CONFIG, NULL},
    {"Apply config change success", R_FINISH, OP_CONFIG, "success"},
    {"Apply config change error", R_FINISH, OP_CONFIG, "error"},
    {"Apply boot config in progress", R_START, OP_BOOTCFG, NULL},
    {"Apply boot config success", R_FINISH, OP_BOOTCFG, "success"},
    {"Apply boot config error", R_FINISH, OP_BOOTCFG, "error"},
    {"Purge data", R_START, OP_PURGE, NULL},
    {"Purge data success", R_FINISH, OP_PURGE, "success"},
    {"Purge data error", R_FINISH, OP_PURGE, "error"},
    {"Supervisor start", R_CUT, 0, NULL},
    {"Reboot", R_CUT, 0, NULL},
    {"Shutdown", R_CUT, 0, NULL},
    {"Update notification", R_NOTIFY, 0, NULL},
    {"Service restart", R_RESTART, 0, NULL},
};
#define N_ROLES (sizeof ROLES / sizeof ROLES[0])

static int subject_of(int kind)
{
    switch (kind) {
    case OP_DOWNLOAD:
    case OP_REMOVAL: return SUBJ_IMAGE;
    case OP_KILL:
    case OP_INSTALL:
    case OP_START: return SUBJ_SERVICE;
    case OP_PURGE: return SUBJ_APP;
    default: return SUBJ_NONE;
    }
}

static int find_role(const char *s, size_t n)
{
    for (size_t i = 0; i < N_ROLES; i++)
        if (strlen(ROLES[i].name) == n && memcmp(ROLES[i].name, s, n) == 0)
            return (int)i;
    return -1;
}

/* ---- collecting ------------------------------------------------------------------ */

typedef struct tev {
    int64_t t;
    uint64_t seq;
    uint32_t dev, key, svc, img, err;
    uint8_t role_idx;
    int64_t release_id, image_id;
} tev;

typedef struct tl_ctx {
    pool str;
    tev *ev;
    size_t n, cap;
    const char *want_device;
    int64_t since, until;
    uint64_t scanned;
} tl_ctx;

static const msgpack_object *get(const msgpack_object *map, const char *key)
{
    return map && map->type == MSGPACK_OBJECT_MAP ? fy_map_get(map, key) : NULL;
}

static int64_t get_int(const msgpack_object *map, const char *key)
{
    const msgpack_object *v = get(map, key);
    if (!v)
        return NONE;
    if (v->type == MSGPACK_OBJECT_POSITIVE_INTEGER && v->via.u64 <= (uint64_t)INT64_MAX)
        return (int64_t)v->via.u64;
    if (v->type == MSGPACK_OBJECT_NEGATIVE_INTEGER)
        return v->via.i64;
    if (v->type == MSGPACK_OBJECT_STR && v->via.str.size > 0 && v->via.str.size < 20) { /* lock events: "1873312" */
        int64_t x = 0;
        for (uint32_t i = 0; i < v->via.str.size; i++) {
            char ch = v->via.str.ptr[i];
            if (ch < '0' || ch > '9')
                return NONE;
            x = x * 10 + (ch - '0');
        }
        return x;
    }
    return NONE;
}

/* Interned string value of map[key]; UINT32_MAX - 1 when absent. */
#define NO_STR (UINT32_MAX - 1)
static uint32_t get_str(pool *p, const msgpack_object *map, const char *key)
{
    const msgpack_object *v = get(map, key);
    if (!v || v->type != MSGPACK_OBJECT_STR)
        return NO_STR;
    return pool_intern(p, v->via.str.ptr, v->via.str.size);
}

static int tl_visit(void *ctx, uint64_t seq, const fy_record *r)
{
    tl_ctx *c = ctx;
    c->scanned++;
    if (!r->device_id || (c->since != NONE && r->time_ms < c->since) || (c->until != NONE && r->time_ms >= c->until))
        return 0;
    if (c->want_device &&
        (strlen(c->want_device) != r->device_id_len || memcmp(c->want_device, r->device_id, r->device_id_len)))
        return 0;
    int ri = find_role(r->event_type, r->event_type_len);
    if (ri < 0)
        return 0;
    const role *ro = &ROLES[ri];
    tev e;
    memset(&e, 0, sizeof e);
    e.t = r->time_ms;
    e.seq = seq;
    e.role_idx = (uint8_t)ri;
    e.key = e.svc = e.img = e.err = NO_STR;
    e.release_id = e.image_id = NONE;
    if ((e.dev = pool_intern(&c->str, r->device_id, r->device_id_len)) == UINT32_MAX)
        return -1;
    const msgpack_object *props = fy_map_get(&r->event, "event_properties");
    char key[640];
    key[0] = '\0';
    if (ro->role == R_START || ro->role == R_FINISH || ro->role == R_RESTART) {
        int subj = ro->role == R_RESTART ? SUBJ_SERVICE : subject_of(ro->kind);
        if (subj == SUBJ_SERVICE) {
            const msgpack_object *s = get(props, "service");
            int64_t app = get_int(s, "appId"), sid = get_int(s, "serviceId");
            e.release_id = get_int(s, "releaseId");
            e.svc = get_str(&c->str, s, "serviceName");
            if (e.svc == UINT32_MAX)
                return -1;
            if (sid != NONE)
                snprintf(key, sizeof key, "S%" PRId64 "/%" PRId64 "/%" PRId64, app, sid, e.release_id);
            else
                snprintf(key, sizeof key, "S%" PRId64 "/%.500s/%" PRId64, app,
                         e.svc == NO_STR ? "" : c->str.s[e.svc], e.release_id);
        } else if (subj == SUBJ_IMAGE) {
            const msgpack_object *im = get(props, "image");
            e.img = get_str(&c->str, im, "name");
            e.svc = get_str(&c->str, im, "serviceName");
            if (e.img == UINT32_MAX || e.svc == UINT32_MAX)
                return -1;
            e.release_id = get_int(im, "releaseId");
            e.image_id = get_int(im, "imageId");
            if (e.img != NO_STR)
                snprintf(key, sizeof key, "I%.600s", c->str.s[e.img]);
            else
                snprintf(key, sizeof key, "I#%" PRId64, e.image_id);
        } else if (subj == SUBJ_APP) {
            snprintf(key, sizeof key, "P%" PRId64, get_int(props, "appId"));
        } else {
            snprintf(key, sizeof key, "D");
        }
        if ((e.key = pool_intern(&c->str, key, strlen(key))) == UINT32_MAX)
            return -1;
        if (ro->role == R_FINISH && (!strcmp(ro->outcome, "error") || !strcmp(ro->outcome, "failed"))) {
            const msgpack_object *er = get(props, "error");
            if (er && er->type == MSGPACK_OBJECT_MAP)
                er = get(er, "message");
            if (er && er->type == MSGPACK_OBJECT_STR)
                e.err = pool_intern(&c->str, er->via.str.ptr, er->via.str.size > 300 ? 300 : er->via.str.size);
            if (e.err == UINT32_MAX)
                return -1;
        }
    }
    if (c->n == c->cap) {
        size_t nc = c->cap ? c->cap * 2 : 1024;
        tev *ne = realloc(c->ev, nc * sizeof *ne);
        if (!ne)
            return -1;
        c->ev = ne;
        c->cap = nc;
    }
    c->ev[c->n++] = e;
    return 0;
}

/* ---- pairing -------------------------------------------------------------------- */

enum { OUT_OK, OUT_ERROR, OUT_UNMATCHED };

typedef struct op {
    uint32_t dev, key, svc, img, err;
    uint8_t kind, out;
    int finish_role, cut_role; /* -1 none */
    const char *outcome;
    int64_t release_id, image_id, start, end, cut_at;
    uint64_t start_seq, end_seq;
    unsigned attempts;
} op;

typedef struct rel_sum {
    uint32_t dev;
    int64_t release_id, start, end;
    int notified;
    const char *outcome;
    unsigned ops, errors, unmatched, started;
    uint64_t restarts;
} rel_sum;

typedef struct tl {
    tl_ctx c;
    op *ops;
    size_t n_ops, cap_ops;
    rel_sum *rels;
    size_t n_rels, cap_rels;
    uint64_t orphans;
} tl;

static int cmp_tev(const void *a, const void *b)
{
    const tev *x = a, *y = b;
    if (x->dev != y->dev)
        return x->dev < y->dev ? -1 : 1;
    if (x->t != y->t)
        return x->t < y->t ? -1 : 1;
    return x->seq < y->seq ? -1 : x->seq > y->seq;
}

static op *new_op(tl *T)
{
    if (T->n_ops == T->cap_ops) {
        size_t nc = T->cap_ops ? T->cap_ops * 2 : 256;
        op *n = realloc(T->ops, nc * sizeof *n);
        if (!n)
            return NULL;
        T->ops = n;
        T->cap_ops = nc;
    }
    op *o = &T->ops[T->n_ops++];
    memset(o, 0, sizeof *o);
    o->finish_role = o->cut_role = -1;
    o->end = o->cut_at = NONE;
    return o;
}

static void cut_op(op *o, int role_idx, int64_t t)
{
    o->out = OUT_UNMATCHED;
    o->outcome = "unmatched";
    o->cut_role = role_idx;
    o->cut_at = role_idx >= 0 ? t : NONE;
}

/* Pairs the events of one device, ev[0..n). */
static ferry_err pair_device(tl *T, const tev *ev, size_t n, size_t **open_buf, size_t *open_cap)
{
    size_t n_open = 0;
    for (size_t i = 0; i < n; i++) {
        const tev *e = &ev[i];
        const role *ro = &ROLES[e->role_idx];
        if (ro->role == R_CUT) {
            for (size_t k = 0; k < n_open; k++)
                cut_op(&T->ops[(*open_buf)[k]], e->role_idx, e->t);
            n_open = 0;
            continue;
        }
        if (ro->role != R_START && ro->role != R_FINISH)
            continue;
        size_t found = SIZE_MAX;
        for (size_t k = 0; k < n_open; k++) {
            const op *o = &T->ops[(*open_buf)[k]];
            if (o->kind == ro->kind && o->key == e->key) {
                found = k;
                break;
            }
        }
        if (ro->role == R_FINISH) {
            if (found == SIZE_MAX) {
                T->orphans++;
                continue;
            }
            op *o = &T->ops[(*open_buf)[found]];
            o->end = e->t;
            o->end_seq = e->seq;
            o->finish_role = e->role_idx;
            o->outcome = ro->outcome;
            o->out = strcmp(ro->outcome, "error") && strcmp(ro->outcome, "failed") ? OUT_OK : OUT_ERROR;
            o->err = e->err;
            (*open_buf)[found] = (*open_buf)[--n_open];
            continue;
        }
        if (found != SIZE_MAX) {
            op *o = &T->ops[(*open_buf)[found]];
            if (ro->kind == OP_DOWNLOAD) { /* the delta was not ready: another attempt */
                o->attempts++;
                continue;
            }
            cut_op(o, e->role_idx, e->t);
            (*open_buf)[found] = (*open_buf)[--n_open];
        }
        op *o = new_op(T);
        if (!o)
            return fy_fail(FERRY_ENOMEM, "out of memory");
        o->dev = e->dev;
        o->key = e->key;
        o->svc = e->svc;
        o->img = e->img;
        o->err = NO_STR;
        o->kind = ro->kind;
        o->release_id = e->release_id;
        o->image_id = e->image_id;
        o->start = e->t;
        o->start_seq = e->seq;
        o->attempts = 1;
        if (n_open == *open_cap) {
            size_t nc = *open_cap ? *open_cap * 2 : 32;
            size_t *nb = realloc(*open_buf, nc * sizeof *nb);
            if (!nb)
                return fy_fail(FERRY_ENOMEM, "out of memory");
            *open_buf = nb;
            *open_cap = nc;
        }
        (*open_buf)[n_open++] = T->n_ops - 1;
    }
    for (size_t k = 0; k < n_open; k++)
        cut_op(&T->ops[(*open_buf)[k]], -1, 0);
    return FERRY_OK;
}

static int64_t finish_or_start(const op *o) { return o->out == OUT_UNMATCHED ? o->start : o->end; }

/* Release summaries of one device: ops[0..n) in start order, ev its events. */
static ferry_err summarize_device(tl *T, size_t first_op, size_t n, const tev *ev, size_t n_ev)
{
    op *ops = T->ops + first_op;
    unsigned char *in = n ? malloc(n) : NULL;
    if (n && !in)
        return fy_fail(FERRY_ENOMEM, "out of memory");
    ferry_err e = FERRY_OK;
    for (size_t i = 0; i < n && !e; i++) {
        if (ops[i].kind != OP_DOWNLOAD && ops[i].kind != OP_INSTALL)
            continue;
        int64_t R = ops[i].release_id;
        int seen_before = 0;
        for (size_t k = 0; k < i && !seen_before; k++)
            seen_before = (ops[k].kind == OP_DOWNLOAD || ops[k].kind == OP_INSTALL) && ops[k].release_id == R;
        if (seen_before || R == NONE)
            continue;
        memset(in, 0, n);
        int64_t first = ops[i].start;
        for (size_t a = i; a < n; a++) {
            if ((ops[a].kind != OP_DOWNLOAD && ops[a].kind != OP_INSTALL) || ops[a].release_id != R)
                continue;
            in[a] = 1;
            if (ops[a].kind == OP_INSTALL)
                for (size_t b = a + 1; b < n; b++)
                    if (ops[b].kind == OP_START && ops[b].key == ops[a].key) {
                        in[b] = 1;
                        break;
                    }
        }
        int64_t hi = first;
        for (size_t a = i; a < n; a++)
            if (in[a] && finish_or_start(&ops[a]) > hi)
                hi = finish_or_start(&ops[a]);
        for (size_t a = 0; a < n; a++)
            if (!in[a] && (ops[a].kind == OP_KILL || ops[a].kind == OP_REMOVAL) && ops[a].start >= first &&
                ops[a].start <= hi) {
                in[a] = 1;
                if (finish_or_start(&ops[a]) > hi)
                    hi = finish_or_start(&ops[a]);
            }
        rel_sum s;
        memset(&s, 0, sizeof s);
        s.dev = ops[i].dev;
        s.release_id = R;
        s.start = first;
        for (size_t k = 0; k < n_ev; k++) { /* the last notification within the window before it */
            if (ROLES[ev[k].role_idx].role == R_NOTIFY && ev[k].t <= first && first - ev[k].t <= NOTIFY_WINDOW_MS)
                s.start = ev[k].t, s.notified = 1;
            if (ROLES[ev[k].role_idx].role == R_RESTART && ev[k].release_id == R)
                s.restarts++;
        }
        int incomplete = 0, failed = 0;
        int64_t end = NONE;
        for (size_t a = 0; a < n; a++) {
            if (!in[a])
                continue;
            s.ops++;
            s.unmatched += ops[a].out == OUT_UNMATCHED;
            s.errors += ops[a].out == OUT_ERROR;
            if (ops[a].out != OUT_UNMATCHED && ops[a].end > end)
                end = ops[a].end;
            int last = 1, started_first = 0;
            for (size_t b = a + 1; b < n && last; b++)
                if (in[b] && ops[b].kind == ops[a].kind && ops[b].key == ops[a].key)
                    last = 0;
            if (last && ops[a].out == OUT_UNMATCHED)
                incomplete = 1;
            else if (last && ops[a].out == OUT_ERROR)
                failed = 1;
            if (ops[a].kind == OP_START && ops[a].out == OUT_OK) {
                for (size_t b = 0; b < a; b++) /* count each service once */
                    started_first |= in[b] && ops[b].kind == OP_START && ops[b].out == OUT_OK && ops[b].key == ops[a].key;
                s.started += !started_first;
            }
            if (ops[a].kind == OP_INSTALL && ops[a].out == OUT_OK) {
                int has_start = 0;
                for (size_t b = 0; b < n && !has_start; b++)
                    has_start = in[b] && ops[b].kind == OP_START && ops[b].key == ops[a].key;
                if (!has_start)
                    incomplete = 1;
            }
        }
        s.outcome = incomplete ? "incomplete" : failed ? "failed" : "complete";
        s.end = incomplete ? NONE : end;
        if (T->n_rels == T->cap_rels) {
            size_t nc = T->cap_rels ? T->cap_rels * 2 : 32;
            rel_sum *nr = realloc(T->rels, nc * sizeof *nr);
            if (!nr) {
                e = fy_fail(FERRY_ENOMEM, "out of memory");
                break;
            }
            T->rels = nr;
            T->cap_rels = nc;
        }
        T->rels[T->n_rels++] = s;
    }
    free(in);
    return e;
}

/* ---- output ------------------------------------------------------------------------ */


static void duration(int64_t ms, char *out, size_t n)
{
    if (ms == NONE) {
        snprintf(out, n, "-");
        return;
    }
    int64_t h = ms / 3600000, m = ms / 60000 % 60, s = ms / 1000 % 60, f = ms % 1000;
    if (h)
        snprintf(out, n, "%" PRId64 "h%02" PRId64 "m%02" PRId64 ".%03" PRId64 "s", h, m, s, f);
    else if (m)
        snprintf(out, n, "%" PRId64 "m%02" PRId64 ".%03" PRId64 "s", m, s, f);
    else
        snprintf(out, n, "%" PRId64 ".%03" PRId64 "s", s, f);
}

static void json_str_or_null(fy_buf *b, const pool *p, uint32_t id)
{
    if (id == NO_STR || id == UINT32_MAX)
        fy_buf_puts(b, "null");
    else
        fy_json_emit_string(b, p->s[id], p->len[id]);
}

static void json_int_or_null(fy_buf *b, int64_t v)
{
    if (v == NONE)
        fy_buf_puts(b, "null");
    else
        fy_buf_printf(b, "%" PRId64, v);
}

static void put_op_json(fy_buf *b, const tl *T, const op *o)
{
    const pool *p = &T->c.str;
    fy_buf_puts(b, "{\"type\":\"operation\",\"device_id\":");
    json_str_or_null(b, p, o->dev);
    fy_buf_printf(b, ",\"op\":\"%s\",\"service\":", OP_NAMES[o->kind]);
    json_str_or_null(b, p, o->svc);
    fy_buf_puts(b, ",\"release_id\":");
    json_int_or_null(b, o->release_id);
    fy_buf_puts(b, ",\"image\":");
    json_str_or_null(b, p, o->img);
    fy_buf_puts(b, ",\"image_id\":");
    json_int_or_null(b, o->image_id);
    fy_buf_printf(b, ",\"start\":%" PRId64 ",\"end\":", o->start);
    json_int_or_null(b, o->out == OUT_UNMATCHED ? NONE : o->end);
    fy_buf_puts(b, ",\"duration_ms\":");
    json_int_or_null(b, o->out == OUT_UNMATCHED ? NONE : o->end - o->start);
    fy_buf_printf(b, ",\"outcome\":\"%s\",\"attempts\":%u,\"cut_by\":", o->outcome ? o->outcome : "unmatched",
                  o->attempts);
    if (o->cut_role >= 0)
        fy_json_emit_string(b, ROLES[o->cut_role].name, strlen(ROLES[o->cut_role].name));
    else
        fy_buf_puts(b, "null");
    fy_buf_puts(b, ",\"cut_at\":");
    json_int_or_null(b, o->cut_at);
    fy_buf_puts(b, ",\"finish_event\":");
    if (o->finish_role >= 0 && o->out != OUT_UNMATCHED)
        fy_json_emit_string(b, ROLES[o->finish_role].name, strlen(ROLES[o->finish_role].name));
    else
        fy_buf_puts(b, "null");
    fy_buf_puts(b, ",\"error\":");
    json_str_or_null(b, p, o->out == OUT_ERROR ? o->err : NO_STR);
    fy_buf_printf(b, ",\"start_seq\":%" PRIu64 ",\"end_seq\":", o->start_seq);
    json_int_or_null(b, o->out == OUT_UNMATCHED ? NONE : (int64_t)o->end_seq);
    fy_buf_puts(b, "}\n");
}

static void put_rel_json(fy_buf *b, const tl *T, const rel_sum *s)
{
    fy_buf_puts(b, "{\"type\":\"release\",\"device_id\":");
    json_str_or_null(b, &T->c.str, s->dev);
    fy_buf_printf(b, ",\"release_id\":%" PRId64 ",\"start\":%" PRId64 ",\"notified\":%s,\"end\":", s->release_id,
                  s->start, s->notified ? "true" : "false");
    json_int_or_null(b, s->end);
    fy_buf_puts(b, ",\"duration_ms\":");
    json_int_or_null(b, s->end == NONE ? NONE : s->end - s->start);
    fy_buf_printf(b, ",\"outcome\":\"%s\",\"operations\":%u,\"errors\":%u,\"unmatched\":%u,\"services_started\":%u,\"restarts\":%" PRIu64 "}\n",
                  s->outcome, s->ops, s->errors, s->unmatched, s->started, s->restarts);
}

static void put_subject(fy_buf *b, const tl *T, const op *o)
{
    const pool *p = &T->c.str;
    size_t k = b->len;
    if (o->svc != NO_STR)
        fy_buf_printf(b, "%.40s", p->s[o->svc]);
    if (o->kind == OP_DOWNLOAD || o->kind == OP_REMOVAL) {
        if (o->image_id != NONE)
            fy_buf_printf(b, " image %" PRId64, o->image_id);
    }
    if (o->release_id != NONE)
        fy_buf_printf(b, " (release %" PRId64 ")", o->release_id);
    if (b->len == k)
        fy_buf_puts(b, "-");
    while (b->len - k < 40)
        fy_buf_putc(b, ' ');
}

static void put_op_text(fy_buf *b, const tl *T, const op *o)
{
    char t1[40], t2[40], d[40];
    fy_cli_format_time(o->start, t1, sizeof t1);
    duration(o->out == OUT_UNMATCHED ? NONE : o->end - o->start, d, sizeof d);
    fy_buf_printf(b, "  %s  %-11s ", t1, OP_NAMES[o->kind]);
    put_subject(b, T, o);
    fy_buf_printf(b, " %12s  ", d);
    if (o->out == OUT_UNMATCHED) {
        if (o->cut_role >= 0) {
            fy_cli_format_time(o->cut_at, t2, sizeof t2);
            fy_buf_printf(b, "unmatched: cut off by %s at %s", ROLES[o->cut_role].name, t2);
        } else {
            fy_buf_puts(b, "unmatched: no finish in the stored events");
        }
    } else {
        fy_buf_puts(b, o->outcome);
        if (o->out == OUT_ERROR && o->err != NO_STR)
            fy_buf_printf(b, ": %.120s", T->c.str.s[o->err]);
    }
    if (o->attempts > 1)
        fy_buf_printf(b, " (%u attempts)", o->attempts);
    fy_buf_putc(b, '\n');
}

static void put_rel_text(fy_buf *b, const rel_sum *s)
{
    char t1[40], t2[40], d[40];
    fy_cli_format_time(s->start, t1, sizeof t1);
    fy_cli_format_time(s->end, t2, sizeof t2);
    duration(s->end == NONE ? NONE : s->end - s->start, d, sizeof d);
    fy_buf_printf(b, "  release %" PRId64 ": %s, %s -> %s (%s%s); %u service(s) started, %u operation(s), %u error(s), %u unmatched, %" PRIu64 " restart(s)\n",
                  s->release_id, s->outcome, t1, s->end == NONE ? "-" : t2, d,
                  s->notified ? " from the update notification" : "", s->started, s->ops, s->errors, s->unmatched,
                  s->restarts);
}

static int cmp_dev_name(const void *a, const void *b, const pool *p)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return strcmp(p->s[x], p->s[y]);
}

static const pool *sort_pool;
static int cmp_devs(const void *a, const void *b) { return cmp_dev_name(a, b, sort_pool); }

int jt_timeline_cmd(fy_journal *j, int argc, char **argv)
{
    tl T;
    memset(&T, 0, sizeof T);
    T.c.since = T.c.until = NONE;
    int json = 0;
    int64_t now = fy_now_ms();
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--json"))
            json = 1;
        else if (!strcmp(argv[i], "--device-id") && i + 1 < argc)
            T.c.want_device = argv[++i];
        else if ((!strcmp(argv[i], "--since") || !strcmp(argv[i], "--until")) && i + 1 < argc) {
            int64_t *dst = argv[i][2] == 's' ? &T.c.since : &T.c.until;
            if (fy_cli_parse_time(argv[i + 1], now, dst)) {
                fprintf(stderr,
                        PROG " timeline: %s %s: expected ms since the epoch, an ISO time (2026-11-29T08:00:00Z) or an age (90s, 15m, 2h, 7d)\nTry '" PROG " --help'.\n",
                        argv[i], argv[i + 1]);
                return EX_USAGE;
            }
            i++;
        } else {
            fprintf(stderr, PROG " timeline: unexpected argument '%s'\nTry '" PROG " --help'.\n", argv[i]);
            return EX_USAGE;
        }
    }
    uint64_t bad = 0;
    ferry_err e = jt_scan(j, tl_visit, &T.c, &bad);
    if (!e && T.c.n)
        qsort(T.c.ev, T.c.n, sizeof *T.c.ev, cmp_tev);
    /* per device: pair, then summarize */
    size_t *open_buf = NULL, open_cap = 0;
    uint32_t *devs = NULL;
    size_t n_devs = 0;
    size_t *dev_ops = NULL; /* first op index per device, n_devs + 1 */
    size_t *dev_ev = NULL;
    if (!e) {
        devs = malloc((T.c.n + 1) * sizeof *devs);
        dev_ops = malloc((T.c.n + 2) * sizeof *dev_ops);
        dev_ev = malloc((T.c.n + 2) * sizeof *dev_ev);
        if (!devs || !dev_ops || !dev_ev)
            e = fy_fail(FERRY_ENOMEM, "out of memory");
    }
    for (size_t i = 0; !e && i < T.c.n;) {
        size_t k = i;
        while (k < T.c.n && T.c.ev[k].dev == T.c.ev[i].dev)
            k++;
        devs[n_devs] = T.c.ev[i].dev;
        dev_ops[n_devs] = T.n_ops;
        dev_ev[n_devs] = i;
        e = pair_device(&T, T.c.ev + i, k - i, &open_buf, &open_cap);
        if (!e)
            e = summarize_device(&T, dev_ops[n_devs], T.n_ops - dev_ops[n_devs], T.c.ev + i, k - i);
        n_devs++;
        i = k;
    }
    free(open_buf);
    int status = EX_OK;
    if (e) {
        fprintf(stderr, PROG ": %s\n", ferry_last_error());
        status = fy_cli_exit_code(e);
    } else {
        dev_ops[n_devs] = T.n_ops;
        dev_ev[n_devs] = T.c.n;
        /* devices in device_id order; their index in the arrays above */
        uint32_t *order = malloc((n_devs + 1) * sizeof *order);
        uint32_t *pos = malloc((T.c.str.n + 1) * sizeof *pos);
        if (!order || !pos) {
            free(order);
            free(pos);
            fprintf(stderr, PROG ": out of memory\n");
            status = EX_OSERR;
        } else {
            for (size_t d = 0; d < n_devs; d++) {
                order[d] = devs[d];
                pos[devs[d]] = (uint32_t)d;
            }
            sort_pool = &T.c.str;
            qsort(order, n_devs, sizeof *order, cmp_devs);
            fy_buf b;
            fy_buf_init(&b, 0);
            uint64_t unmatched = 0;
            for (size_t i = 0; i < T.n_ops; i++)
                unmatched += T.ops[i].out == OUT_UNMATCHED;
            size_t r = 0;
            for (size_t oi = 0; oi < n_devs; oi++) {
                size_t d = pos[order[oi]];
                if (!json) {
                    fy_buf_puts(&b, "device ");
                    fy_buf_append(&b, T.c.str.s[devs[d]], T.c.str.len[devs[d]]);
                    fy_buf_printf(&b, "\n  %-24s  %-11s %-40s %12s  %s\n", "start", "operation", "subject", "duration",
                                  "outcome");
                }
                for (size_t i = dev_ops[d]; i < dev_ops[d + 1]; i++)
                    json ? put_op_json(&b, &T, &T.ops[i]) : put_op_text(&b, &T, &T.ops[i]);
                for (r = 0; r < T.n_rels; r++)
                    if (T.rels[r].dev == devs[d])
                        json ? put_rel_json(&b, &T, &T.rels[r]) : put_rel_text(&b, &T.rels[r]);
                if (b.len > (1u << 16)) {
                    fwrite(b.data, 1, b.len, stdout);
                    fy_buf_reset(&b);
                }
            }
            if (json)
                fy_buf_printf(&b, "{\"type\":\"summary\",\"events\":%" PRIu64 ",\"devices\":%zu,\"operations\":%zu,\"unmatched\":%" PRIu64 ",\"orphan_finishes\":%" PRIu64 ",\"releases\":%zu,\"undecodable\":%" PRIu64 "}\n",
                              T.c.scanned, n_devs, T.n_ops, unmatched, T.orphans, T.n_rels, bad);
            else
                fy_buf_printf(&b, "%zu device(s), %zu operation(s), %" PRIu64 " unmatched, %" PRIu64 " finish event(s) without a start, %zu release(s); from %" PRIu64 " stored event(s)\n",
                              n_devs, T.n_ops, unmatched, T.orphans, T.n_rels, T.c.scanned);
            fwrite(b.data, 1, b.len, stdout);
            fy_buf_free(&b);
            free(order);
            free(pos);
            if (fflush(stdout) != 0) {
                perror(PROG ": writing output");
                status = EX_IOERR;
            } else if (bad) {
                fprintf(stderr, PROG ": journal %s: %" PRIu64 " record(s) could not be decoded\n", j->path, bad);
                status = EX_DATAERR;
            }
        }
    }
    free(devs);
    free(dev_ops);
    free(dev_ev);
    free(T.ops);
    free(T.rels);
    free(T.c.ev);
    pool_free(&T.c.str);
    return status;
}

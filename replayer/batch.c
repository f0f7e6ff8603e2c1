/* batch.c: building one request from the journal, with per-device pacing. */
#define _GNU_SOURCE 1 /* tdestroy */
#include "rp.h"
#include "clock.h"
#include "fy_fail.h"
#include "fy_record.h"
#include "rewrite.h"

#include <search.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Pending events looked at per request, beyond the watermark: bounds the
 * work per request and the cursor's out-of-order list when some devices are
 * paused while others go ahead. */
#define RP_LOOKAHEAD 10000u

typedef struct dev {
    char *id;
    double tokens;
    int64_t refill_ms;
    int64_t paused_until_ms;
} dev;

/* Devices remembered at most (beyond it, idle ones are forgotten): a
 * --follow replayer meets new device and user ids for months. */
#define RP_MAX_DEVICES 4096u

struct rp_devices {
    void *root; /* tsearch tree of dev */
    size_t count;
    double rate;
    int64_t all_paused_until_ms;
};

static int dev_cmp(const void *a, const void *b) { return strcmp(((const dev *)a)->id, ((const dev *)b)->id); }

rp_devices *rp_devices_new(double rate_per_s)
{
    rp_devices *d = calloc(1, sizeof *d);
    if (d)
        d->rate = rate_per_s;
    return d;
}

static void dev_free(void *p)
{
    dev *x = p;
    free(x->id);
    free(x);
}

void rp_devices_free(rp_devices *d)
{
    if (!d)
        return;
    tdestroy(d->root, dev_free);
    free(d);
}

/* A device may send `burst` events at once, then `rate` per second: at most
 * 1.2 x rate in any one-second window, which is how Amplitude measures. */
static double burst(const rp_devices *d)
{
    return d->rate / 5.0 > 1.0 ? d->rate / 5.0 : 1.0;
}

/* A device neither paused nor short of tokens is exactly what a new entry
 * would be: forgetting it changes nothing. twalk() takes no argument, hence
 * the file-scope state (the replayer is single-threaded). */
static struct {
    const rp_devices *d;
    int64_t now;
    dev **idle;
    size_t n, cap;
} prune;

static void prune_visit(const void *node, VISIT which, int depth)
{
    (void)depth;
    if (which != postorder && which != leaf)
        return;
    dev *x = *(dev *const *)node;
    double tokens = x->tokens + (double)(prune.now - x->refill_ms) * prune.d->rate / 1000.0;
    if (x->paused_until_ms <= prune.now && (prune.d->rate <= 0 || tokens >= burst(prune.d)) && prune.n < prune.cap)
        prune.idle[prune.n++] = x;
}

static void devices_prune(rp_devices *d, int64_t now)
{
    prune.d = d, prune.now = now, prune.n = 0, prune.cap = d->count;
    prune.idle = malloc(d->count * sizeof *prune.idle + 1);
    if (!prune.idle)
        return;
    twalk(d->root, prune_visit);
    for (size_t i = 0; i < prune.n; i++) {
        tdelete(prune.idle[i], &d->root, dev_cmp);
        dev_free(prune.idle[i]);
        d->count--;
    }
    free(prune.idle);
    prune.idle = NULL;
}

static dev *dev_get(rp_devices *d, const char *id, int64_t now)
{
    dev key = {.id = (char *)(uintptr_t)id};
    void *found = tfind(&key, &d->root, dev_cmp);
    if (found)
        return *(dev **)found;
    dev *x = calloc(1, sizeof *x);
    if (!x || !(x->id = strdup(id))) {
        free(x);
        return NULL;
    }
    x->tokens = burst(d);
    x->refill_ms = now;
    if (d->count >= RP_MAX_DEVICES)
        devices_prune(d, now);
    if (!tsearch(x, &d->root, dev_cmp)) {
        dev_free(x);
        return NULL;
    }
    d->count++;
    return x;
}

void rp_devices_pause(rp_devices *d, const char *id, int64_t until_ms)
{
    dev *x = dev_get(d, id, rp_now_ms());
    if (x && until_ms > x->paused_until_ms)
        x->paused_until_ms = until_ms;
}

void rp_devices_pause_all(rp_devices *d, int64_t until_ms)
{
    if (until_ms > d->all_paused_until_ms)
        d->all_paused_until_ms = until_ms;
}

/* 0 when the device may send one more event now (and takes the token);
 * otherwise the time from which it may. */
static int64_t dev_take(rp_devices *d, dev *x, int64_t now)
{
    if (x->paused_until_ms > now)
        return x->paused_until_ms;
    if (d->rate <= 0)
        return 0;
    x->tokens += (double)(now - x->refill_ms) * d->rate / 1000.0;
    if (x->tokens > burst(d))
        x->tokens = burst(d);
    x->refill_ms = now;
    if (x->tokens < 1.0)
        return now + (int64_t)((1.0 - x->tokens) * 1000.0 / d->rate) + 1;
    x->tokens -= 1.0;
    return 0;
}

void rp_batch_init(rp_batch *b)
{
    memset(b, 0, sizeof *b);
    fy_buf_init(&b->body, 0);
}

static void batch_reset(rp_batch *b)
{
    for (size_t i = 0; i < b->n; i++)
        free(b->ids[i]);
    b->n = 0;
    fy_buf_reset(&b->body);
    b->corrupt_seq = b->too_big_seq = 0;
    b->corrupt_reason[0] = '\0';
    b->next_ready_ms = 0;
    b->pending_seen = 0;
    b->n_loss = 0;
    b->held = 0;
}

void rp_batch_free(rp_batch *b)
{
    batch_reset(b);
    free(b->seqs);
    free(b->ids);
    free(b->loss);
    fy_buf_free(&b->body);
}

static ferry_err batch_push(rp_batch *b, uint64_t seq, const char *id)
{
    if (b->n == b->cap) {
        size_t cap = b->cap ? b->cap * 2 : 256;
        uint64_t *s = realloc(b->seqs, cap * sizeof *s);
        if (!s)
            return fy_fail(FERRY_ENOMEM, "out of memory");
        b->seqs = s;
        char **i = realloc(b->ids, cap * sizeof *i);
        if (!i)
            return fy_fail(FERRY_ENOMEM, "out of memory");
        b->ids = i;
        b->cap = cap;
    }
    char *copy = strdup(id);
    if (!copy)
        return fy_fail(FERRY_ENOMEM, "out of memory");
    b->seqs[b->n] = seq;
    b->ids[b->n++] = copy;
    return FERRY_OK;
}

/* device_id, else "user:" + user_id: whom Amplitude paces and throttles. */
static void pacing_id(const fy_record *r, char *out, size_t n)
{
    if (r->device_id) {
        snprintf(out, n, "%.*s", (int)r->device_id_len, r->device_id);
        return;
    }
    const msgpack_object *u = fy_map_get(&r->event, "user_id");
    if (u && u->type == MSGPACK_OBJECT_STR)
        snprintf(out, n, "user:%.*s", (int)u->via.str.size, u->via.str.ptr);
    else
        snprintf(out, n, "-");
}

/* What the event is sent with instead of its recorded values (the time
 * correction of clock.h, the --ip mode); 1 when it must wait (held). */
static int overrides(const rp_batch *b, uint64_t seq, const fy_record *r, rp_overrides *o)
{
    memset(o, 0, sizeof *o);
    o->ip = (rp_ip_mode)b->ip_mode;
    if (!b->clock)
        return 0;
    int64_t delta;
    switch (rp_clock_judge(b->clock, seq, r, &delta)) {
    case RP_TIME_TRUSTED: break;
    case RP_TIME_HOLD: return 1;
    case RP_TIME_CORRECTED:
        /* The event's time moves with its record's clock reading: a time
         * the caller gave came from the same (wrong) device clock. */
        o->set_time = 1;
        o->time_ms = r->time_ms + delta;
        o->shift_session_ms = delta; /* a session's start came from the same clock */
        if (o->time_ms < 0)
            o->time_ms = 0;
        o->props[o->n_props].key = RP_PROP_ORIGINAL_TIME;
        o->props[o->n_props++].i = r->time_ms;
        break;
    case RP_TIME_UNCORRECTED:
        o->props[o->n_props].key = RP_PROP_UNCORRECTED;
        o->props[o->n_props++].is_true = 1;
        break;
    }
    return 0;
}

/* Adds one event's JSON; returns 1 when it does not fit (body unchanged). */
static int add_event(rp_batch *b, const fy_record *r, const rp_overrides *o, size_t max_bytes, ferry_err *e)
{
    size_t mark = b->body.len;
    if ((b->n && (*e = fy_buf_putc(&b->body, ','))) || (*e = rp_emit_event(&b->body, &r->event, o)))
        return 0;
    if (b->body.len + 2 > max_bytes) { /* room for the closing "]}" */
        b->body.len = mark;
        return 1;
    }
    return 0;
}

ferry_err rp_batch_build(fy_journal *j, const char *sink, rp_devices *dev_tab, const char *api_key,
                         size_t max_events, size_t max_bytes, rp_batch *b)
{
    batch_reset(b);
    int64_t now = rp_now_ms();
    if (dev_tab->all_paused_until_ms > now) {
        b->next_ready_ms = dev_tab->all_paused_until_ms;
        return FERRY_OK;
    }
    ferry_err e;
    /* No request-level client_upload_time, ever: Amplitude would shift every
     * event by (its receive time - client_upload_time) when that exceeds 60 s
     * (amplitude-api.md section 6), which is right only when that clock is
     * the one that stamped the events, with the same error then and now. A
     * journal is replayed later, often by another machine or after NTP set
     * the clock; times are corrected here instead (clock.h), from the
     * monotonic clock. Without it Amplitude takes its receive time: no shift. */
    if ((e = fy_buf_puts(&b->body, "{\"api_key\":")) ||
        (e = fy_json_emit_string(&b->body, api_key, strlen(api_key))) ||
        (e = fy_buf_puts(&b->body, ",\"events\":[")))
        return e;
    if ((e = rp_loss_build(j, sink, dev_tab, max_events, max_bytes, b)) || b->n_loss) /* losses go first */
        return e ? e : fy_buf_puts(&b->body, "]}");
    MDB_txn *txn;
    if ((e = fy_txn_begin(j, MDB_RDONLY, &txn)))
        return e;
    if (b->clock) { /* every record's clock reading, up to the newest */
        fy_stamp st;
        fy_stamp_now(&st);
        rp_clock_set_now(b->clock, &st);
        if ((e = rp_clock_catch_up(b->clock, j, txn))) {
            mdb_txn_abort(txn);
            return e;
        }
    }
    fy_cursor c;
    int found;
    MDB_cursor *cur = NULL;
    if ((e = fy_cursor_get(j, txn, sink, &c, &found))) {
        mdb_txn_abort(txn);
        return e;
    }
    int rc = mdb_cursor_open(txn, j->events, &cur);
    unsigned char kb[8];
    fy_put_be64(kb, c.delivered + 1);
    MDB_val k = {8, kb}, d;
    for (rc = rc ? rc : mdb_cursor_get(cur, &k, &d, MDB_SET_RANGE); rc == 0 && !e;
         rc = mdb_cursor_get(cur, &k, &d, MDB_NEXT)) {
        uint64_t seq = fy_get_be64(k.mv_data);
        if (fy_cursor_is_done(&c, seq))
            continue;
        if (++b->pending_seen > RP_LOOKAHEAD || b->n >= max_events)
            break;
        fy_record r;
        ferry_err de = fy_record_decode(d.mv_data, d.mv_size, &r);
        if (de == FERRY_ENOMEM) { /* not the record's fault: never dead-letter it for this */
            e = de;
            break;
        }
        if (de) {
            if (b->n == 0) { /* report it alone, so that it is dead-lettered */
                b->corrupt_seq = seq;
                snprintf(b->corrupt_reason, sizeof b->corrupt_reason, "%s", ferry_last_error());
            }
            break;
        }
        rp_overrides ov;
        if (overrides(b, seq, &r, &ov)) { /* held: look again in a second */
            b->held++;
            if (!b->next_ready_ms || now + 1000 < b->next_ready_ms)
                b->next_ready_ms = now + 1000;
            fy_record_free(&r);
            continue;
        }
        char id[300];
        pacing_id(&r, id, sizeof id);
        dev *x = dev_get(dev_tab, id, now);
        int64_t ready = x ? dev_take(dev_tab, x, now) : 0;
        if (ready) {
            if (!b->next_ready_ms || ready < b->next_ready_ms)
                b->next_ready_ms = ready;
        } else if (add_event(b, &r, &ov, max_bytes, &e)) {
            if (b->n == 0)
                b->too_big_seq = seq;
            if (x)
                x->tokens += 1.0; /* not sent after all */
            fy_record_free(&r);
            break;
        } else if (!e) {
            e = batch_push(b, seq, id);
        }
        fy_record_free(&r);
    }
    if (!e && rc && rc != MDB_NOTFOUND)
        e = fy_fail_lmdb(rc, "journal %s: reading events", j->path);
    mdb_cursor_close(cur);
    mdb_txn_abort(txn); /* the JSON is in our buffer: nothing points into the map now */
    fy_cursor_free(&c);
    if (!e)
        e = fy_buf_puts(&b->body, "]}");
    return e;
}

int64_t rp_devices_paused_until(const rp_devices *d, const char *id, int64_t now)
{
    if (d->all_paused_until_ms > now)
        return d->all_paused_until_ms;
    dev key = {.id = (char *)(uintptr_t)id};
    void *found = tfind(&key, &d->root, dev_cmp);
    int64_t until = found ? (*(dev **)found)->paused_until_ms : 0;
    return until > now ? until : 0;
}

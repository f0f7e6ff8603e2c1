/* loss.c: reporting eviction gaps to the destination as "[ferry] events
 * lost" events, exactly once (fy_gaps.h; FORMAT.md, "gaps").
 *
 * A loss request holds loss events only. Its gap rows are sealed in a
 * transaction committed before the request leaves, so what is sent never
 * changes; the insert_id is made from the journal id and the gap's seq
 * range, so a resend after a crash is deduplicated by the destination; the
 * rows are deleted in the transaction that records the acknowledgement. */
#include "rp.h"
#include "fy_fail.h"
#include "fy_gaps.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Loss events per request: a handful in practice; bounded anyway. */
#define RP_LOSS_MAX 100u

static ferry_err loss_push(rp_batch *b, uint64_t key_seq)
{
    if (b->n_loss == b->cap_loss) {
        size_t cap = b->cap_loss ? b->cap_loss * 2 : 16;
        uint64_t *p = realloc(b->loss, cap * sizeof *p);
        if (!p)
            return fy_fail(FERRY_ENOMEM, "out of memory");
        b->loss = p;
        b->cap_loss = cap;
    }
    b->loss[b->n_loss++] = key_seq;
    return FERRY_OK;
}

/* Whom the destination throttles for this gap (as batch.c names it). */
static void pacing_id(const fy_gap *g, char *out, size_t n)
{
    if (g->device_id)
        snprintf(out, n, "%s", g->device_id);
    else if (g->user_id)
        snprintf(out, n, "user:%s", g->user_id);
    else
        snprintf(out, n, "-");
}

/* Any gap rows for the destination? A read transaction: the common case
 * (none) never takes the writer's lock. */
static ferry_err any_gaps(fy_journal *j, const char *sink, size_t *n, size_t *open)
{
    MDB_txn *txn;
    fy_gap *g;
    *n = *open = 0;
    ferry_err e = fy_txn_begin(j, MDB_RDONLY, &txn);
    if (e)
        return e;
    e = fy_gaps_list(j, txn, sink, &g, n);
    mdb_txn_abort(txn);
    for (size_t i = 0; i < *n; i++)
        *open += !g[i].sealed;
    fy_gaps_free(g, *n);
    return e;
}

ferry_err rp_loss_build(fy_journal *j, const char *sink, const rp_devices *dev, size_t max_events,
                        size_t max_bytes, rp_batch *b)
{
    size_t n, open;
    b->n_loss = 0;
    ferry_err e = any_gaps(j, sink, &n, &open);
    if (e || n == 0)
        return e;
    MDB_txn *txn;
    if (open) { /* seal: committed before the request can leave */
        size_t sealed;
        if ((e = fy_txn_begin(j, 0, &txn)))
            return e;
        if ((e = fy_gaps_seal(j, txn, sink, &sealed))) {
            mdb_txn_abort(txn);
            return e;
        }
        if ((e = fy_txn_commit(j, txn, "sealing gaps")))
            return e;
    }
    fy_gap *g;
    if ((e = fy_txn_begin(j, MDB_RDONLY, &txn)))
        return e;
    e = fy_gaps_list(j, txn, sink, &g, &n);
    mdb_txn_abort(txn);
    if (e)
        return e;
    int64_t now = rp_now_ms();
    size_t start = b->body.len;
    for (size_t i = 0; i < n && !e && b->n_loss < RP_LOSS_MAX && b->n_loss < max_events; i++) {
        if (!g[i].sealed) /* opened after our seal: next time */
            continue;
        char id[300];
        pacing_id(&g[i], id, sizeof id);
        int64_t ready = rp_devices_paused_until(dev, id, now);
        if (ready) { /* throttled: wait like its events do */
            b->pending_seen++;
            if (!b->next_ready_ms || ready < b->next_ready_ms)
                b->next_ready_ms = ready;
            continue;
        }
        size_t mark = b->body.len;
        if ((b->n_loss && (e = fy_buf_putc(&b->body, ','))) || (e = fy_gap_event_json(j->id, &g[i], &b->body)))
            break;
        if (b->body.len + 2 > max_bytes && b->n_loss) {
            b->body.len = mark; /* the rest goes in the next request */
            break;
        }
        e = loss_push(b, g[i].key_seq);
    }
    fy_gaps_free(g, n);
    if (e) {
        b->body.len = start;
        b->n_loss = 0;
    }
    return e;
}

/* Whether gap g is the row an event of pacing id `id` (batch.c's naming)
 * was counted in. */
static int same_identity(const fy_gap *g, const char *id)
{
    if (g->device_id)
        return !strcmp(g->device_id, id);
    if (g->user_id)
        return !strncmp(id, "user:", 5) && !strcmp(g->user_id, id + 5);
    return 0;
}

/* Whether the events database still holds seq (an evicted one is gone). */
static ferry_err event_stored(fy_journal *j, MDB_txn *txn, uint64_t seq, int *stored)
{
    unsigned char kb[8];
    fy_put_be64(kb, seq);
    MDB_val k = fy_mval(kb, 8), d;
    int rc = mdb_get(txn, j->events, &k, &d);
    *stored = rc == 0;
    if (rc && rc != MDB_NOTFOUND)
        return fy_fail_lmdb(rc, "journal %s: reading event %" PRIu64, j->path, seq);
    return FERRY_OK;
}

/* Events of an acknowledged request that were evicted while it was in
 * flight (or between its read and its send) were counted lost for this
 * destination; they arrived after all. Their rows are still open: only this
 * replayer seals them, at its next step. */
static ferry_err unlose(fy_journal *j, MDB_txn *txn, const char *sink, const rp_batch *b)
{
    fy_gap *g;
    size_t n;
    ferry_err e = fy_gaps_list(j, txn, sink, &g, &n);
    if (e || n == 0)
        return e;
    for (size_t i = 0; i < b->n && !e; i++) {
        int stored;
        if ((e = event_stored(j, txn, b->seqs[i], &stored)) || stored)
            continue;
        fy_gap *hit = NULL, *shared = NULL;
        for (size_t x = 0; x < n && !hit; x++) {
            fy_gap *c = &g[x];
            if (c->sealed || c->count == 0 || c->first_seq > b->seqs[i] || c->last_seq < b->seqs[i])
                continue;
            if (same_identity(c, b->ids[i]))
                hit = c;
            else if (!c->device_id && !c->user_id)
                shared = c; /* over the row limit, or an undecodable record */
        }
        if ((hit = hit ? hit : shared)) {
            hit->count--;
            hit->dirty = 1;
        }
    }
    for (size_t x = 0; x < n && !e; x++)
        if (g[x].dirty)
            e = g[x].count ? fy_gaps_put(j, txn, &g[x]) : fy_gaps_del(j, txn, sink, g[x].key_seq);
    fy_gaps_free(g, n);
    return e;
}

ferry_err rp_loss_evicted(fy_journal *j, const rp_batch *b, size_t *n)
{
    MDB_txn *txn;
    *n = 0;
    if (!b->n)
        return FERRY_OK;
    ferry_err e = fy_txn_begin(j, MDB_RDONLY, &txn);
    if (e)
        return e;
    for (size_t i = 0; i < b->n && !e; i++) {
        int stored;
        if (!(e = event_stored(j, txn, b->seqs[i], &stored)) && !stored)
            (*n)++;
    }
    mdb_txn_abort(txn);
    return e;
}

ferry_err rp_loss_acked(fy_journal *j, MDB_txn *txn, const char *sink, const rp_batch *b)
{
    if (!b->n_loss)
        return unlose(j, txn, sink, b);
    fy_gap *g;
    size_t n;
    ferry_err e = fy_gaps_list(j, txn, sink, &g, &n);
    for (size_t i = 0; i < b->n_loss && !e; i++) {
        for (size_t k = 0; k < n; k++)
            if (g[k].key_seq == b->loss[i])
                fprintf(stderr, "ferry-replay: reported %" PRIu64 " lost event(s), seq %" PRIu64 "..%" PRIu64 "\n",
                        g[k].count, g[k].first_seq, g[k].last_seq);
        e = fy_gaps_del(j, txn, sink, b->loss[i]);
    }
    fy_gaps_free(g, n);
    return e;
}

ferry_err rp_loss_refused(fy_journal *j, const char *sink, const rp_batch *b, char *const *reasons, long status)
{
    MDB_txn *txn;
    ferry_err e = fy_txn_begin(j, 0, &txn);
    if (e)
        return e;
    for (size_t i = 0; i < b->n_loss && !e; i++) {
        if (reasons && !reasons[i])
            continue;
        fprintf(stderr, "ferry-replay: the loss report of gap %" PRIu64 " was refused (status %ld): %s; dropped\n",
                b->loss[i], status, reasons ? reasons[i] : "too large");
        e = fy_gaps_del(j, txn, sink, b->loss[i]);
    }
    if (e) {
        mdb_txn_abort(txn);
        return e;
    }
    return fy_txn_commit(j, txn, "dropping refused loss reports");
}

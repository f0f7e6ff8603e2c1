/* clock.c: trusting and correcting recorded times (the rules: clock.h). */
#define _GNU_SOURCE 1 /* tdestroy */
#include "clock.h"
#include "fy_cli.h"
#include "fy_fail.h"

#include <search.h>
#include <stdlib.h>
#include <string.h>

typedef struct segment {
    uint64_t first_seq;
    int64_t last_offset; /* wall - mono of the segment's latest record */
    int has_anchor;      /* a record at or after the floor */
    int64_t anchor_wall, anchor_mono;
} segment;

typedef struct boot {
    char id[FY_BOOT_ID_LEN + 1];
    segment *segs;
    size_t n, cap;
} boot;

struct rp_clock {
    void *boots; /* tsearch tree of boot */
    int64_t floor_ms, jump_ms;
    uint64_t observed;
    int have_now;
    fy_stamp now;
};

static int boot_cmp(const void *a, const void *b) { return strcmp(((const boot *)a)->id, ((const boot *)b)->id); }

static void boot_free(void *p)
{
    boot *b = p;
    free(b->segs);
    free(b);
}

rp_clock *rp_clock_new(int64_t floor_ms, int64_t jump_ms)
{
    rp_clock *c = calloc(1, sizeof *c);
    if (c) {
        c->floor_ms = floor_ms;
        c->jump_ms = jump_ms;
    }
    return c;
}

void rp_clock_free(rp_clock *c)
{
    if (!c)
        return;
    tdestroy(c->boots, boot_free);
    free(c);
}

uint64_t rp_clock_observed(const rp_clock *c) { return c->observed; }

void rp_clock_set_now(rp_clock *c, const fy_stamp *now)
{
    c->now = *now;
    c->have_now = now->mono_ms >= 0 && strlen(now->boot_id) == FY_BOOT_ID_LEN;
}

int64_t rp_clock_correct(int64_t anchor_wall, int64_t anchor_mono, int64_t mono)
{
    return anchor_wall + (mono - anchor_mono);
}

static boot *boot_find(const rp_clock *c, const char *id)
{
    boot key;
    memcpy(key.id, id, FY_BOOT_ID_LEN);
    key.id[FY_BOOT_ID_LEN] = '\0';
    void *found = tfind(&key, &c->boots, boot_cmp);
    return found ? *(boot **)found : NULL;
}

static int64_t absdiff(int64_t a, int64_t b) { return a > b ? a - b : b - a; }

ferry_err rp_clock_observe(rp_clock *c, uint64_t seq, const fy_record *r)
{
    if (seq > c->observed)
        c->observed = seq;
    if (!r->boot_id)
        return FERRY_OK;
    boot *b = boot_find(c, r->boot_id);
    if (!b) {
        if (!(b = calloc(1, sizeof *b)))
            return fy_fail(FERRY_ENOMEM, "out of memory");
        memcpy(b->id, r->boot_id, FY_BOOT_ID_LEN);
        if (!tsearch(b, &c->boots, boot_cmp)) {
            free(b);
            return fy_fail(FERRY_ENOMEM, "out of memory");
        }
    }
    int64_t offset = r->recorded_at_ms - r->mono_ms;
    segment *s = b->n ? &b->segs[b->n - 1] : NULL;
    if (!s || absdiff(offset, s->last_offset) > c->jump_ms) { /* the clock was set: a new segment */
        if (b->n == b->cap) {
            size_t cap = b->cap ? b->cap * 2 : 2;
            segment *p = realloc(b->segs, cap * sizeof *p);
            if (!p)
                return fy_fail(FERRY_ENOMEM, "out of memory");
            b->segs = p;
            b->cap = cap;
        }
        s = &b->segs[b->n++];
        memset(s, 0, sizeof *s);
        s->first_seq = seq;
    }
    s->last_offset = offset;
    if (!s->has_anchor && r->recorded_at_ms >= c->floor_ms) {
        s->has_anchor = 1;
        s->anchor_wall = r->recorded_at_ms;
        s->anchor_mono = r->mono_ms;
    }
    return FERRY_OK;
}

ferry_err rp_clock_catch_up(rp_clock *c, fy_journal *j, MDB_txn *txn)
{
    MDB_cursor *cur;
    int rc = mdb_cursor_open(txn, j->events, &cur);
    if (rc)
        return fy_fail_lmdb(rc, "journal %s: reading events", j->path);
    unsigned char kb[8];
    fy_put_be64(kb, c->observed + 1);
    MDB_val k = {8, kb}, d;
    ferry_err e = FERRY_OK;
    for (rc = mdb_cursor_get(cur, &k, &d, MDB_SET_RANGE); !rc && !e; rc = mdb_cursor_get(cur, &k, &d, MDB_NEXT)) {
        fy_record r; /* only the clock readings: the event is not decoded */
        uint64_t seq = fy_get_be64(k.mv_data);
        if (fy_record_peek_clock(d.mv_data, d.mv_size, &r)) {
            c->observed = seq;
            continue;
        }
        e = rp_clock_observe(c, seq, &r);
    }
    mdb_cursor_close(cur);
    if (!e && rc && rc != MDB_NOTFOUND)
        e = fy_fail_lmdb(rc, "journal %s: reading events", j->path);
    return e;
}

/* The segment holding seq: the last one starting at or before it. */
static size_t segment_of(const boot *b, uint64_t seq)
{
    size_t lo = 0, hi = b->n; /* segs[lo].first_seq <= seq (the first always is for observed seqs) */
    while (hi - lo > 1) {
        size_t mid = lo + (hi - lo) / 2;
        if (b->segs[mid].first_seq <= seq)
            lo = mid;
        else
            hi = mid;
    }
    return lo;
}

rp_time_verdict rp_clock_judge(const rp_clock *c, uint64_t seq, const fy_record *r, int64_t *delta_ms)
{
    *delta_ms = 0;
    const boot *b = r->boot_id ? boot_find(c, r->boot_id) : NULL;
    if (!b || !b->n) /* an older record: only the floor can judge it */
        return r->recorded_at_ms >= c->floor_ms ? RP_TIME_TRUSTED : RP_TIME_UNCORRECTED;
    size_t mine = segment_of(b, seq), trusted;
    int64_t aw, am;
    if (c->have_now && memcmp(c->now.boot_id, b->id, FY_BOOT_ID_LEN) == 0) {
        /* Our own boot: the clock now is the latest word on it. */
        if (c->now.wall_ms < c->floor_ms)
            return RP_TIME_HOLD;
        const segment *last = &b->segs[b->n - 1];
        if (absdiff(c->now.wall_ms - c->now.mono_ms, last->last_offset) <= c->jump_ms) {
            trusted = b->n - 1;
            aw = last->has_anchor ? last->anchor_wall : c->now.wall_ms;
            am = last->has_anchor ? last->anchor_mono : c->now.mono_ms;
        } else { /* set since the last record */
            trusted = b->n;
            aw = c->now.wall_ms;
            am = c->now.mono_ms;
        }
    } else {
        size_t k = b->n;
        while (k > 0 && !b->segs[k - 1].has_anchor)
            k--;
        if (k == 0)
            return RP_TIME_UNCORRECTED;
        trusted = k - 1;
        aw = b->segs[trusted].anchor_wall;
        am = b->segs[trusted].anchor_mono;
    }
    /* Its own segment, or one on the same clock (a record requeued or
     * imported later, or a boot's records interleaved with a step). */
    if (mine == trusted || absdiff(r->recorded_at_ms - r->mono_ms, aw - am) <= c->jump_ms)
        return RP_TIME_TRUSTED;
    int64_t wall = rp_clock_correct(aw, am, r->mono_ms);
    if (wall < 0) /* a damaged reading: never guess */
        return RP_TIME_UNCORRECTED;
    *delta_ms = wall - r->recorded_at_ms;
    return RP_TIME_CORRECTED;
}

/* The earliest believable time, unless --time-floor says otherwise: no
 * ferry existed before its first release, so no record can be older. Not
 * the build date: a newer replayer would then distrust a backlog or a capture
 * recorded by an older build, and test data would expire. An image that ships
 * recorder and replayer together may compile in its own build date
 * (cmake -DFERRY_TIME_FLOOR=YYYY-MM-DD). */
#ifndef FERRY_TIME_FLOOR
#define FERRY_TIME_FLOOR "2026-11-29"
#endif

int64_t rp_clock_default_floor_ms(void)
{
    int64_t ms = 0;
    if (fy_cli_parse_time(FERRY_TIME_FLOOR, 0, &ms) || ms < 0)
        return 0;
    return ms;
}

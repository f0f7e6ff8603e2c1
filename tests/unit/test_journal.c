/* test_journal.c: the LMDB journal layer on real environments in temporary
 * directories: sequence numbers, deletion, atomic appends, the size bound
 * (reject / evict-oldest / pruning of delivered events), cursors, versions. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <sys/stat.h>

#include <cmocka.h>

#include "test_util.h"

#define MiB (1ull << 20)

typedef struct fixture {
    char dir[512];
    fy_journal j;
    int open;
} fixture;

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof *f);
    if (!f)
        return -1;
    tu_tmpdir(f->dir, sizeof f->dir, "journal");
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    if (f->open)
        fy_journal_close(&f->j);
    tu_rmrf(f->dir);
    free(f);
    return 0;
}

static void jopen(fixture *f, uint64_t max_bytes)
{
    if (f->open)
        fy_journal_close(&f->j);
    fy_open_opts o = {.create = 1, .relaxed = 1, .max_bytes = max_bytes};
    ferry_err e = fy_journal_open(&f->j, f->dir, &o);
    if (e)
        fail_msg("open %s: %s", f->dir, ferry_last_error());
    f->open = 1;
}

static void jclose(fixture *f)
{
    if (f->open)
        fy_journal_close(&f->j);
    f->open = 0;
}

/* ---- a model of what the journal should hold ----------------------------- */

typedef struct model {
    fy_buf recs;   /* every record appended, back to back */
    size_t *ends;  /* record i (seq first + i) ends at ends[i] */
    size_t n, cap;
} model;

static void model_free(model *m)
{
    fy_buf_free(&m->recs);
    free(m->ends);
    memset(m, 0, sizeof *m);
}

/* Encodes a distinct event of about `size` bytes for seq-to-be `tag`. */
static void make_record(fy_buf *out, uint64_t tag, size_t size)
{
    char *pad = malloc(size + 1);
    assert_non_null(pad);
    for (size_t i = 0; i < size; i++)
        pad[i] = (char)('a' + (tag + i) % 26);
    pad[size] = '\0';
    json_t *ev = json_pack("{s:s,s:s,s:{s:I,s:s}}", "event_type", "fill", "device_id", "dev", "event_properties",
                           "tag", (json_int_t)tag, "pad", pad);
    free(pad);
    assert_non_null(ev);
    char iid[40];
    snprintf(iid, sizeof iid, "iid-%llu", (unsigned long long)tag);
    ferry_err e = fy_record_encode(ev, 1700000000000, iid, out);
    if (e)
        fail_msg("encode: %s", ferry_last_error());
    json_decref(ev);
}

/* Appends n records of about `size` bytes in one call; on success adds them to
 * the model (which must then hold seqs 1.. contiguous) and checks first_seq. */
static ferry_err append_n(fixture *f, model *m, size_t n, size_t size, int evict, uint64_t *first)
{
    fy_buf b;
    fy_buf_init(&b, 0);
    size_t ends[64];
    assert_true(n <= 64);
    for (size_t i = 0; i < n; i++) {
        make_record(&b, m->n + i + 1, size);
        ends[i] = b.len;
    }
    fy_rec_ref refs[64];
    for (size_t i = 0, start = 0; i < n; start = ends[i++]) {
        refs[i].data = b.data + start;
        refs[i].len = ends[i] - start;
    }
    uint64_t seq = 0;
    ferry_err e = fy_journal_append(&f->j, refs, n, evict, &seq);
    if (m->recs.limit == 0) /* a zeroed model: no cap */
        fy_buf_init(&m->recs, 0);
    if (!e) {
        if (m->n + n > m->cap) {
            m->cap = (m->n + n) * 2;
            m->ends = realloc(m->ends, m->cap * sizeof *m->ends);
            assert_non_null(m->ends);
        }
        size_t base = m->recs.len;
        assert_int_equal(fy_buf_append(&m->recs, b.data, b.len), FERRY_OK);
        for (size_t i = 0; i < n; i++)
            m->ends[m->n + i] = base + ends[i];
        if (seq != m->n + 1)
            fail_msg("append: first seq %llu, expected %zu", (unsigned long long)seq, m->n + 1);
        m->n += n;
    }
    if (first)
        *first = seq;
    fy_buf_free(&b);
    return e;
}

/* The journal holds exactly the model's records with seqs lo..hi (1-based). */
static void expect_holds(fixture *f, const model *m, uint64_t lo, uint64_t hi)
{
    tu_snapshot s;
    tu_snapshot_take(&f->j, &s);
    uint64_t want = hi >= lo ? hi - lo + 1 : 0;
    if (s.n != want)
        fail_msg("journal holds %zu events, expected %llu (seqs %llu..%llu)", s.n, (unsigned long long)want,
                 (unsigned long long)lo, (unsigned long long)hi);
    for (size_t i = 0; i < s.n; i++) {
        uint64_t seq = lo + i;
        if (s.ev[i].seq != seq)
            fail_msg("event %zu has seq %llu, expected %llu", i, (unsigned long long)s.ev[i].seq,
                     (unsigned long long)seq);
        size_t start = seq == 1 ? 0 : m->ends[seq - 2], end = m->ends[seq - 1];
        if (s.ev[i].len != end - start || memcmp(s.ev[i].data, m->recs.data + start, end - start) != 0)
            fail_msg("event %llu differs from what was appended", (unsigned long long)seq);
    }
    tu_snapshot_free(&s);
}

static void put_cursor(fixture *f, const char *sink, uint64_t delivered)
{
    MDB_txn *txn;
    fy_cursor c = {0};
    c.delivered = delivered;
    assert_int_equal(fy_txn_begin(&f->j, 0, &txn), FERRY_OK);
    assert_int_equal(fy_cursor_put(&f->j, txn, sink, &c), FERRY_OK);
    assert_int_equal(fy_txn_commit(&f->j, txn, "cursor"), FERRY_OK);
}

static uint64_t seq_next(fixture *f)
{
    MDB_txn *txn;
    uint64_t n;
    assert_int_equal(fy_txn_begin(&f->j, MDB_RDONLY, &txn), FERRY_OK);
    assert_int_equal(fy_seq_next(&f->j, txn, &n), FERRY_OK);
    mdb_txn_abort(txn);
    return n;
}

static uint64_t delete_events(fixture *f, uint64_t from, uint64_t to, uint64_t max)
{
    MDB_txn *txn;
    uint64_t n;
    assert_int_equal(fy_txn_begin(&f->j, 0, &txn), FERRY_OK);
    assert_int_equal(fy_events_delete(&f->j, txn, from, to, max, &n), FERRY_OK);
    assert_int_equal(fy_txn_commit(&f->j, txn, "delete"), FERRY_OK);
    return n;
}

/* ---- tests --------------------------------------------------------------- */

static void test_seq_starts_at_1_contiguous(void **state)
{
    fixture *f = *state;
    model m = {0};
    jopen(f, 0);
    assert_int_equal(seq_next(f), 1);
    uint64_t first;
    for (int i = 0; i < 5; i++) {
        assert_int_equal(append_n(f, &m, 1, 50, 0, &first), FERRY_OK);
        assert_int_equal(first, (uint64_t)i + 1);
    }
    assert_int_equal(append_n(f, &m, 3, 50, 0, &first), FERRY_OK);
    assert_int_equal(first, 6);
    assert_int_equal(seq_next(f), 9);
    MDB_txn *txn;
    uint64_t last;
    assert_int_equal(fy_txn_begin(&f->j, MDB_RDONLY, &txn), FERRY_OK);
    assert_int_equal(fy_seq_last(&f->j, txn, &last), FERRY_OK);
    mdb_txn_abort(txn);
    assert_int_equal(last, 8);
    expect_holds(f, &m, 1, 8);
    /* every stored record passes the decoder */
    tu_snapshot s;
    tu_snapshot_take(&f->j, &s);
    for (size_t i = 0; i < s.n; i++)
        assert_int_equal(fy_record_check(s.ev[i].data, s.ev[i].len), FERRY_OK);
    tu_snapshot_free(&s);
    /* and survive a reopen */
    jopen(f, 0);
    expect_holds(f, &m, 1, 8);
    model_free(&m);
}

static void test_seq_never_reused_after_delete(void **state)
{
    fixture *f = *state;
    model m = {0};
    jopen(f, 0);
    uint64_t first;
    assert_int_equal(append_n(f, &m, 10, 40, 0, &first), FERRY_OK);
    assert_int_equal(delete_events(f, 0, UINT64_MAX, 0), 10);
    assert_int_equal(tu_count(&f->j), 0);
    assert_int_equal(seq_next(f), 11);
    /* the model must hand out seq 11 next: pad it with a placeholder */
    fy_buf b;
    fy_buf_init(&b, 0);
    make_record(&b, 11, 40);
    fy_rec_ref ref = {b.data, b.len};
    assert_int_equal(fy_journal_append(&f->j, &ref, 1, 0, &first), FERRY_OK);
    assert_int_equal(first, 11);

    /* deleting everything again, then close and reopen: still never reused */
    assert_int_equal(delete_events(f, 0, UINT64_MAX, 0), 1);
    jopen(f, 0);
    assert_int_equal(seq_next(f), 12);
    assert_int_equal(fy_journal_append(&f->j, &ref, 1, 0, &first), FERRY_OK);
    assert_int_equal(first, 12);

    /* deleting the newest events only: their numbers are not handed out again */
    fy_rec_ref refs[5] = {{b.data, b.len}, {b.data, b.len}, {b.data, b.len}, {b.data, b.len}, {b.data, b.len}};
    assert_int_equal(fy_journal_append(&f->j, refs, 5, 0, &first), FERRY_OK);
    assert_int_equal(first, 13); /* 13..17 */
    assert_int_equal(delete_events(f, 16, 17, 0), 2);
    assert_int_equal(seq_next(f), 18);
    jopen(f, 0);
    assert_int_equal(fy_journal_append(&f->j, &ref, 1, 0, &first), FERRY_OK);
    assert_int_equal(first, 18);

    /* a range in the middle, and max_count taking the oldest first */
    assert_int_equal(delete_events(f, 14, 14, 0), 1);
    assert_int_equal(delete_events(f, 0, UINT64_MAX, 2), 2); /* 12 and 13 */
    tu_snapshot s;
    tu_snapshot_take(&f->j, &s);
    const uint64_t left[] = {15, 18};
    assert_int_equal(s.n, 2);
    for (size_t i = 0; i < 2; i++)
        assert_int_equal(s.ev[i].seq, left[i]);
    tu_snapshot_free(&s);
    assert_int_equal(seq_next(f), 19);
    /* an empty range deletes nothing and changes nothing */
    assert_int_equal(delete_events(f, 100, 200, 0), 0);
    assert_int_equal(seq_next(f), 19);
    fy_buf_free(&b);
    model_free(&m);
}

/* A batch refused by the size bound leaves nothing behind. */
static void test_batch_atomic_when_refused(void **state)
{
    fixture *f = *state;
    model m = {0};
    jopen(f, MiB);
    assert_int_equal(append_n(f, &m, 5, 100, 0, NULL), FERRY_OK);
    /* larger than half the quota in one batch: refused before anything is written */
    ferry_err e = append_n(f, &m, 64, 8000, 0, NULL);
    assert_int_equal(e, FERRY_EFULL);
    assert_error_mentions("smaller batches");
    expect_holds(f, &m, 1, 5);
    assert_int_equal(seq_next(f), 6);

    /* fill with batches until one is refused: the refused one left nothing */
    for (int i = 0; i < 1000 && !(e = append_n(f, &m, 20, 900, 0, NULL)); i++)
        ;
    assert_int_equal(e, FERRY_EFULL);
    expect_holds(f, &m, 1, m.n);
    assert_int_equal(seq_next(f), m.n + 1);
    model_free(&m);
}

/* A batch that fails because LMDB's map filled up (a reader pins the pages
 * that deletions freed, so the quota is not what runs out) leaves none of its
 * events behind, and the journal works again once the reader is gone. Under
 * evict-oldest the retry path may commit an eviction of its own before the
 * append fails: then exactly the oldest events are gone, and counted. */
static void lmdb_full_case(fixture *f, int evict)
{
    model m = {0};
    jopen(f, MiB);
    for (int i = 0; i < (evict ? 100 : 15); i++)
        assert_int_equal(append_n(f, &m, 20, 900, evict, NULL), FERRY_OK);
    MDB_txn *reader;
    assert_int_equal(fy_txn_begin(&f->j, MDB_RDONLY, &reader), FERRY_OK);
    tu_snapshot before;
    int failed = 0;
    for (int i = 0; i < 200 && !failed; i++) {
        tu_snapshot_take(&f->j, &before);
        uint64_t next = seq_next(f), evicted_before = tu_meta(&f->j, "evicted");
        fy_buf b;
        fy_buf_init(&b, 0);
        size_t ends[20];
        for (size_t k = 0; k < 20; k++) {
            make_record(&b, next + k, 900);
            ends[k] = b.len;
        }
        fy_rec_ref refs[20];
        for (size_t k = 0, start = 0; k < 20; start = ends[k++])
            refs[k].data = b.data + start, refs[k].len = ends[k] - start;
        uint64_t first;
        ferry_err e = fy_journal_append(&f->j, refs, 20, evict, &first);
        fy_buf_free(&b);
        if (e) {
            failed = 1;
            assert_int_equal(e, FERRY_EFULL);
            tu_snapshot after;
            tu_snapshot_take(&f->j, &after);
            /* what is left is the newest part of what was there, byte for byte */
            assert_true(after.n <= before.n);
            size_t gone = before.n - after.n;
            if (!evict)
                assert_int_equal(gone, 0);
            assert_int_equal(tu_meta(&f->j, "evicted") - evicted_before, gone);
            for (size_t k = 0; k < after.n; k++) {
                assert_int_equal(after.ev[k].seq, before.ev[gone + k].seq);
                assert_int_equal(after.ev[k].len, before.ev[gone + k].len);
                assert_memory_equal(after.ev[k].data, before.ev[gone + k].data, after.ev[k].len);
            }
            /* none of the batch: its numbers are still free */
            assert_int_equal(seq_next(f), next);
            tu_snapshot_free(&after);
        } else {
            assert_int_equal(first, next);
        }
        tu_snapshot_free(&before);
    }
    mdb_txn_abort(reader);
    assert_true(failed); /* a 1 MiB map with a pinned reader must fill */
    /* the journal is usable again */
    uint64_t first, next = seq_next(f);
    fy_buf b;
    fy_buf_init(&b, 0);
    make_record(&b, 1, 900);
    fy_rec_ref ref = {b.data, b.len};
    assert_int_equal(fy_journal_append(&f->j, &ref, 1, 1, &first), FERRY_OK);
    assert_int_equal(first, next);
    fy_buf_free(&b);
    model_free(&m);
}

static void test_batch_atomic_when_lmdb_fails_reject(void **state) { lmdb_full_case(*state, 0); }

static void test_batch_atomic_when_lmdb_fails_evict(void **state) { lmdb_full_case(*state, 1); }

static void test_size_bound_reject(void **state)
{
    fixture *f = *state;
    model m = {0};
    jopen(f, MiB);
    assert_int_equal(f->j.map_bytes, MiB);
    ferry_err e = FERRY_OK;
    int i;
    for (i = 0; i < 5000 && !e; i++)
        e = append_n(f, &m, 1, 700 + (size_t)(i % 7) * 100, 0, NULL);
    assert_int_equal(e, FERRY_EFULL);
    assert_error_mentions("full");
    assert_true(m.n > 300); /* most of the 75 % quota was usable */
    expect_holds(f, &m, 1, m.n);
    /* asking again changes nothing either, small or large */
    assert_int_equal(append_n(f, &m, 1, 2000, 0, NULL), FERRY_EFULL);
    assert_int_equal(append_n(f, &m, 10, 700, 0, NULL), FERRY_EFULL);
    expect_holds(f, &m, 1, m.n);
    assert_int_equal(tu_meta(&f->j, "evicted"), 0);
    assert_int_equal(tu_meta(&f->j, "pruned"), 0);
    /* the file stays within the bound */
    char path[600];
    snprintf(path, sizeof path, "%s/data.mdb", f->dir);
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    assert_true((uint64_t)st.st_size <= MiB);
    /* and after a reopen the journal is still full and intact */
    jopen(f, 0);
    assert_int_equal(f->j.map_bytes, MiB); /* 0 keeps the journal's bound */
    assert_int_equal(append_n(f, &m, 1, 700, 0, NULL), FERRY_EFULL);
    expect_holds(f, &m, 1, m.n);
    model_free(&m);
}

static void test_size_bound_evict_oldest(void **state)
{
    fixture *f = *state;
    model m = {0};
    jopen(f, MiB);
    const size_t total_batches = 150, per = 20; /* 3000 events of ~1 KB: ~4x the bound */
    for (size_t i = 0; i < total_batches; i++) {
        ferry_err e = append_n(f, &m, per, 900, 1, NULL);
        if (e)
            fail_msg("batch %zu: %s", i, ferry_last_error());
    }
    uint64_t evicted = tu_meta(&f->j, "evicted");
    uint64_t stored = tu_count(&f->j);
    assert_true(evicted > 0);
    assert_int_equal(evicted + stored, total_batches * per);
    /* exactly the oldest ones are gone; the rest is intact and contiguous */
    expect_holds(f, &m, evicted + 1, m.n);
    assert_int_equal(tu_meta(&f->j, "pruned"), 0);
    MDB_txn *txn;
    uint64_t live;
    assert_int_equal(fy_txn_begin(&f->j, MDB_RDONLY, &txn), FERRY_OK);
    assert_int_equal(fy_live_bytes(&f->j, txn, &live), FERRY_OK);
    mdb_txn_abort(txn);
    assert_true(live <= MiB / 100 * FY_QUOTA_PERCENT);
    char path[600];
    snprintf(path, sizeof path, "%s/data.mdb", f->dir);
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    assert_true((uint64_t)st.st_size <= MiB);
    model_free(&m);
}

static void test_delivered_pruned_first(void **state)
{
    fixture *f = *state;
    model m = {0};
    jopen(f, MiB);
    ferry_err e = FERRY_OK;
    for (int i = 0; i < 5000 && !e; i++)
        e = append_n(f, &m, 1, 900, 0, NULL);
    assert_int_equal(e, FERRY_EFULL);
    size_t full = m.n;
    uint64_t k = full / 2; /* the first half was delivered */
    put_cursor(f, FY_DEFAULT_SINK, k);

    /* appending now deletes delivered events only, oldest first */
    assert_int_equal(append_n(f, &m, 1, 900, 0, NULL), FERRY_OK);
    uint64_t pruned = tu_meta(&f->j, "pruned");
    assert_true(pruned > 0 && pruned <= k);
    expect_holds(f, &m, pruned + 1, m.n);

    /* keep going until refused: every delivered event went, no other one */
    for (int i = 0; i < 5000 && !(e = append_n(f, &m, 1, 900, 0, NULL)); i++)
        ;
    assert_int_equal(e, FERRY_EFULL);
    /* ferry.h: "When the journal is full (after deleting delivered events):
     * refuse new events" - so no delivered event may be left at this point */
    uint64_t pruned_at_full = tu_meta(&f->j, "pruned");
    if (pruned_at_full != k)
        fail_msg("refused with FERRY_EFULL (%s) while %llu delivered events were still stored (pruned %llu "
                 "of %llu)",
                 ferry_last_error(), (unsigned long long)(k - pruned_at_full),
                 (unsigned long long)pruned_at_full, (unsigned long long)k);
    assert_int_equal(tu_meta(&f->j, "evicted"), 0);
    expect_holds(f, &m, k + 1, m.n);
    model_free(&m);
}

/* A full journal (reject) in which a few events were delivered: deleting
 * those makes room for one more event, so the append must succeed. */
static void test_delivered_pruned_when_just_enough(void **state)
{
    fixture *f = *state;
    model m = {0};
    jopen(f, MiB);
    ferry_err e = FERRY_OK;
    for (int i = 0; i < 5000 && !e; i++)
        e = append_n(f, &m, 1, 900, 0, NULL);
    assert_int_equal(e, FERRY_EFULL);
    /* ten delivered events of ~1 KB: at least two whole pages once deleted,
     * for one event of ~1 KB */
    put_cursor(f, FY_DEFAULT_SINK, 10);
    e = append_n(f, &m, 1, 900, 0, NULL);
    if (e)
        fail_msg("append refused (%s) although deleting the 10 delivered events makes room for it",
                 ferry_last_error());
    uint64_t pruned = tu_meta(&f->j, "pruned");
    assert_true(pruned >= 1 && pruned <= 10);
    expect_holds(f, &m, pruned + 1, m.n);
    model_free(&m);
}

static void test_delivered_pruned_before_evicting(void **state)
{
    fixture *f = *state;
    model m = {0};
    jopen(f, MiB);
    for (int i = 0; i < 20; i++) /* 400 events: about 70 % of the quota */
        assert_int_equal(append_n(f, &m, 20, 900, 1, NULL), FERRY_OK);
    assert_int_equal(tu_meta(&f->j, "evicted"), 0);
    uint64_t k = 200;
    put_cursor(f, FY_DEFAULT_SINK, k);
    /* a second destination that has delivered less holds events back */
    put_cursor(f, "other", 150);
    MDB_txn *txn;
    uint64_t wm;
    assert_int_equal(fy_txn_begin(&f->j, MDB_RDONLY, &txn), FERRY_OK);
    assert_int_equal(fy_delivered_everywhere(&f->j, txn, &wm), FERRY_OK);
    mdb_txn_abort(txn);
    assert_int_equal(wm, 150);
    for (int i = 0; i < 100; i++) {
        assert_int_equal(append_n(f, &m, 20, 900, 1, NULL), FERRY_OK);
        uint64_t evicted = tu_meta(&f->j, "evicted"), pruned = tu_meta(&f->j, "pruned");
        assert_true(pruned <= 150);
        if (evicted)
            assert_int_equal(pruned, 150); /* nothing undelivered went before all delivered did */
    }
    uint64_t evicted = tu_meta(&f->j, "evicted");
    assert_true(evicted > 0);
    expect_holds(f, &m, 150 + evicted + 1, m.n);
    model_free(&m);
}

static void test_cursor_roundtrip(void **state)
{
    fixture *f = *state;
    jopen(f, 0);
    MDB_txn *txn;
    fy_cursor c;
    int found = 1;
    assert_int_equal(fy_txn_begin(&f->j, MDB_RDONLY, &txn), FERRY_OK);
    assert_int_equal(fy_cursor_get(&f->j, txn, FY_DEFAULT_SINK, &c, &found), FERRY_OK);
    assert_int_equal(found, 0);
    uint64_t wm = 1;
    assert_int_equal(fy_delivered_everywhere(&f->j, txn, &wm), FERRY_OK);
    assert_int_equal(wm, 0); /* no destination registered */
    mdb_txn_abort(txn);

    uint64_t above[1000];
    for (size_t i = 0; i < 1000; i++)
        above[i] = 1000 + i * 3;
    const fy_cursor cases[] = {
        {.delivered = 41, .sent = 7, .resent = 2, .dead = 1, .outside_window = 3, .last_success_ms = 1700000000000,
         .inflight_first_ms = 1700000000500, .attempted = 120, .above = (uint64_t[]){43, 47, 100}, .n_above = 3},
        {.delivered = UINT64_MAX, .sent = UINT64_MAX - 1, .resent = 0, .dead = (uint64_t)1 << 40,
         .outside_window = 255, .last_success_ms = INT64_MAX, .inflight_first_ms = INT64_MIN,
         .attempted = UINT64_MAX, .above = NULL, .n_above = 0},
        {.delivered = 0, .last_success_ms = -1, .above = above, .n_above = 1000},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const fy_cursor *w = &cases[i];
        assert_int_equal(fy_txn_begin(&f->j, 0, &txn), FERRY_OK);
        assert_int_equal(fy_cursor_put(&f->j, txn, "sink-x", w), FERRY_OK);
        assert_int_equal(fy_txn_commit(&f->j, txn, "cursor"), FERRY_OK);
        if (i == 2)
            jopen(f, 0); /* and across a reopen */
        assert_int_equal(fy_txn_begin(&f->j, MDB_RDONLY, &txn), FERRY_OK);
        assert_int_equal(fy_cursor_get(&f->j, txn, "sink-x", &c, &found), FERRY_OK);
        assert_int_equal(found, 1);
        assert_true(c.delivered == w->delivered);
        assert_true(c.sent == w->sent);
        assert_true(c.resent == w->resent);
        assert_true(c.dead == w->dead);
        assert_true(c.outside_window == w->outside_window);
        assert_true(c.last_success_ms == w->last_success_ms);
        assert_true(c.inflight_first_ms == w->inflight_first_ms);
        assert_true(c.attempted == w->attempted);
        assert_int_equal(c.n_above, w->n_above);
        if (w->n_above)
            assert_memory_equal(c.above, w->above, w->n_above * sizeof *w->above);
        fy_cursor_free(&c);
        assert_int_equal(fy_delivered_everywhere(&f->j, txn, &wm), FERRY_OK);
        assert_true(wm == w->delivered);
        /* other sinks are not affected */
        assert_int_equal(fy_cursor_get(&f->j, txn, FY_DEFAULT_SINK, &c, &found), FERRY_OK);
        assert_int_equal(found, 0);
        mdb_txn_abort(txn);
    }
}

/* ---- delivery bookkeeping (delivery.c) ------------------------------------ */

static void expect_cursor(const fy_cursor *c, uint64_t delivered, const uint64_t *above, size_t n_above)
{
    if (c->delivered != delivered || c->n_above != n_above ||
        (n_above && memcmp(c->above, above, n_above * sizeof *above) != 0)) {
        char got[256];
        int k = snprintf(got, sizeof got, "delivered %llu, above [", (unsigned long long)c->delivered);
        for (size_t i = 0; i < c->n_above && k > 0 && (size_t)k < sizeof got - 24; i++)
            k += snprintf(got + k, sizeof got - (size_t)k, "%s%llu", i ? "," : "", (unsigned long long)c->above[i]);
        fail_msg("cursor: %s], want delivered %llu and %zu above", got, (unsigned long long)delivered, n_above);
    }
}

static void mark(fixture *f, fy_cursor *c, const uint64_t *seqs, size_t n)
{
    MDB_txn *txn;
    assert_int_equal(fy_txn_begin(&f->j, MDB_RDONLY, &txn), FERRY_OK);
    assert_int_equal(fy_cursor_mark_done(&f->j, txn, c, seqs, n), FERRY_OK);
    mdb_txn_abort(txn);
}

static void test_cursor_mark_done(void **state)
{
    fixture *f = *state;
    model m = {0};
    jopen(f, 0);
    assert_int_equal(append_n(f, &m, 10, 20, 0, NULL), FERRY_OK); /* seqs 1..10 */
    fy_cursor c = {0};
    mark(f, &c, (uint64_t[]){3, 4}, 2); /* out of order: held above the watermark */
    expect_cursor(&c, 0, (uint64_t[]){3, 4}, 2);
    assert_true(fy_cursor_is_done(&c, 3) && fy_cursor_is_done(&c, 4));
    assert_false(fy_cursor_is_done(&c, 1) || fy_cursor_is_done(&c, 2) || fy_cursor_is_done(&c, 5));
    mark(f, &c, (uint64_t[]){1}, 1);
    expect_cursor(&c, 1, (uint64_t[]){3, 4}, 2);
    mark(f, &c, (uint64_t[]){2, 2}, 2); /* closes the gap; duplicates are harmless */
    expect_cursor(&c, 4, NULL, 0);
    mark(f, &c, (uint64_t[]){1, 3}, 2); /* already done: nothing changes */
    expect_cursor(&c, 4, NULL, 0);
    mark(f, &c, (uint64_t[]){5, 6, 10}, 3);
    expect_cursor(&c, 6, (uint64_t[]){10}, 1);
    assert_true(fy_cursor_is_done(&c, 10));
    assert_false(fy_cursor_is_done(&c, 7));
    mark(f, &c, (uint64_t[]){8}, 1);
    expect_cursor(&c, 6, (uint64_t[]){8, 10}, 2);
    /* events no longer stored count as done: 7 and 9 evicted */
    assert_int_equal(delete_events(f, 7, 7, 0), 1);
    assert_int_equal(delete_events(f, 9, 9, 0), 1);
    mark(f, &c, NULL, 0);
    expect_cursor(&c, 10, NULL, 0);
    fy_cursor_free(&c);
    model_free(&m);
}

static void test_cursor_mark_done_never_skips_future_events(void **state)
{
    fixture *f = *state;
    model m = {0};
    jopen(f, 0);
    assert_int_equal(append_n(f, &m, 5, 20, 0, NULL), FERRY_OK); /* 1..5 */
    fy_cursor c = {0};
    mark(f, &c, (uint64_t[]){1, 2, 3, 4, 5}, 5);
    expect_cursor(&c, 5, NULL, 0);
    /* the next event recorded after that is not done */
    uint64_t first;
    assert_int_equal(append_n(f, &m, 1, 20, 0, &first), FERRY_OK);
    assert_int_equal(first, 6);
    assert_false(fy_cursor_is_done(&c, 6));
    mark(f, &c, NULL, 0);
    expect_cursor(&c, 5, NULL, 0);
    fy_cursor_free(&c);
    model_free(&m);
}

static void test_events_prune(void **state)
{
    fixture *f = *state;
    model m = {0};
    jopen(f, 0);
    assert_int_equal(append_n(f, &m, 20, 30, 0, NULL), FERRY_OK);
    MDB_txn *txn;
    uint64_t n = 99;
    /* no destination registered: nothing is delivered anywhere */
    assert_int_equal(fy_txn_begin(&f->j, 0, &txn), FERRY_OK);
    assert_int_equal(fy_events_prune(&f->j, txn, 0, &n), FERRY_OK);
    assert_int_equal(fy_txn_commit(&f->j, txn, "prune"), FERRY_OK);
    assert_int_equal(n, 0);
    put_cursor(f, FY_DEFAULT_SINK, 12);
    put_cursor(f, "second", 8);
    assert_int_equal(fy_txn_begin(&f->j, 0, &txn), FERRY_OK);
    assert_int_equal(fy_events_prune(&f->j, txn, 5, &n), FERRY_OK); /* at most 5 */
    assert_int_equal(fy_txn_commit(&f->j, txn, "prune"), FERRY_OK);
    assert_int_equal(n, 5);
    expect_holds(f, &m, 6, 20);
    assert_int_equal(fy_txn_begin(&f->j, 0, &txn), FERRY_OK);
    assert_int_equal(fy_events_prune(&f->j, txn, 0, &n), FERRY_OK); /* up to the lowest watermark */
    assert_int_equal(fy_txn_commit(&f->j, txn, "prune"), FERRY_OK);
    assert_int_equal(n, 3);
    expect_holds(f, &m, 9, 20);
    assert_int_equal(tu_meta(&f->j, "pruned"), 8);
    assert_int_equal(tu_meta(&f->j, "evicted"), 0);
    model_free(&m);
}

static void test_dead_letters(void **state)
{
    fixture *f = *state;
    model m = {0};
    jopen(f, 0);
    assert_int_equal(append_n(f, &m, 10, 30, 0, NULL), FERRY_OK);
    tu_snapshot s;
    tu_snapshot_take(&f->j, &s);
    const tu_event *ev3 = &s.ev[2];
    assert_int_equal(ev3->seq, 3);

    char long_reason[700];
    memset(long_reason, 'r', sizeof long_reason - 1);
    long_reason[sizeof long_reason - 1] = '\0';
    MDB_txn *txn;
    assert_int_equal(fy_txn_begin(&f->j, 0, &txn), FERRY_OK);
    assert_int_equal(fy_dead_put(&f->j, txn, FY_DEFAULT_SINK, 3, 400, "invalid event_type", ev3->data, ev3->len),
                     FERRY_OK);
    assert_int_equal(fy_dead_put(&f->j, txn, "other", 3, -1, long_reason, ev3->data, ev3->len), FERRY_OK);
    char long_sink[400];
    memset(long_sink, 's', sizeof long_sink - 1);
    long_sink[sizeof long_sink - 1] = '\0';
    assert_int_equal(fy_dead_put(&f->j, txn, long_sink, 3, 400, "x", ev3->data, ev3->len), FERRY_EINVAL);
    assert_int_equal(fy_txn_commit(&f->j, txn, "dead"), FERRY_OK);

    /* read both back */
    assert_int_equal(fy_txn_begin(&f->j, 0, &txn), FERRY_OK);
    MDB_cursor *cur;
    assert_int_equal(mdb_cursor_open(txn, f->j.dead, &cur), 0);
    MDB_val k, d;
    fy_dead dl[2];
    int n = 0, rc;
    for (rc = mdb_cursor_get(cur, &k, &d, MDB_FIRST); rc == 0 && n < 3; rc = mdb_cursor_get(cur, &k, &d, MDB_NEXT)) {
        assert_true(n < 2);
        assert_int_equal(fy_dead_decode(&f->j, &k, &d, &dl[n]), FERRY_OK);
        n++;
    }
    mdb_cursor_close(cur);
    assert_int_equal(n, 2);
    assert_string_equal(dl[0].sink, FY_DEFAULT_SINK);
    assert_int_equal(dl[0].seq, 3);
    assert_int_equal(dl[0].status, 400);
    assert_string_equal(dl[0].reason, "invalid event_type");
    assert_true(dl[0].at_ms > 0);
    assert_int_equal(dl[0].rec_len, ev3->len);
    assert_memory_equal(dl[0].rec, ev3->data, ev3->len);
    assert_string_equal(dl[1].sink, "other");
    assert_true(dl[1].status == -1);
    assert_true(strlen(dl[1].reason) >= 100 && strlen(dl[1].reason) < sizeof dl[1].reason);
    assert_int_equal(fy_record_check(dl[1].rec, dl[1].rec_len), FERRY_OK);

    /* requeue: the same record under a new number, the dead row gone */
    uint64_t new_seq = 0;
    assert_int_equal(fy_dead_requeue(&f->j, txn, &dl[0], &new_seq), FERRY_OK);
    assert_int_equal(new_seq, 11);
    assert_int_equal(fy_txn_commit(&f->j, txn, "requeue"), FERRY_OK);
    tu_snapshot after;
    tu_snapshot_take(&f->j, &after);
    assert_int_equal(after.n, 11);
    assert_int_equal(after.ev[10].seq, 11);
    assert_int_equal(after.ev[10].len, ev3->len);
    assert_memory_equal(after.ev[10].data, ev3->data, ev3->len);
    tu_snapshot_free(&after);
    MDB_stat st;
    assert_int_equal(fy_txn_begin(&f->j, MDB_RDONLY, &txn), FERRY_OK);
    assert_int_equal(mdb_stat(txn, f->j.dead, &st), 0);
    mdb_txn_abort(txn);
    assert_int_equal(st.ms_entries, 1);

    /* malformed keys and values are refused */
    unsigned char bad_key[] = {'a', 'b', 'c'};
    MDB_val bk = {sizeof bad_key, bad_key}, bv = {3, (void *)(uintptr_t) "\x80\x80\x80"};
    fy_dead out;
    assert_int_equal(fy_dead_decode(&f->j, &bk, &bv, &out), FERRY_ECORRUPT);
    unsigned char ok_key[] = {'a', 0, 0, 0, 0, 0, 0, 0, 0, 1};
    MDB_val ok = {sizeof ok_key, ok_key}, hostile = {5, (void *)(uintptr_t) "\xdf\xff\xff\xff\xff"};
    assert_int_equal(fy_dead_decode(&f->j, &ok, &hostile, &out), FERRY_ECORRUPT);
    tu_snapshot_free(&s);
    model_free(&m);
}

/* Rewrites meta "format" with raw LMDB (no journal handle may be open). */
static void set_format(const char *dir, uint32_t major, uint32_t minor)
{
    MDB_env *env;
    MDB_txn *txn;
    MDB_dbi dbi;
    assert_int_equal(mdb_env_create(&env), 0);
    assert_int_equal(mdb_env_set_maxdbs(env, 8), 0);
    assert_int_equal(mdb_env_open(env, dir, 0, 0600), 0);
    assert_int_equal(mdb_txn_begin(env, NULL, 0, &txn), 0);
    assert_int_equal(mdb_dbi_open(txn, "meta", 0, &dbi), 0);
    unsigned char v[8];
    fy_put_be64(v, ((uint64_t)major << 32) | minor);
    MDB_val k = {6, (void *)(uintptr_t) "format"}, d = {8, v};
    assert_int_equal(mdb_put(txn, dbi, &k, &d, 0), 0);
    assert_int_equal(mdb_txn_commit(txn), 0);
    mdb_env_close(env);
}

static void test_format_versions(void **state)
{
    fixture *f = *state;
    jopen(f, 0);
    assert_int_equal(f->j.format_major, FY_FORMAT_MAJOR);
    assert_int_equal(f->j.format_minor, FY_FORMAT_MINOR);
    jclose(f);

    /* a newer minor version is read */
    set_format(f->dir, 1, 7);
    jopen(f, 0);
    assert_int_equal(f->j.format_minor, 7);
    jclose(f);

    /* a newer major version is refused, naming both versions */
    set_format(f->dir, 2, 0);
    fy_open_opts o = {.create = 1};
    assert_int_equal(fy_journal_open(&f->j, f->dir, &o), FERRY_EVERSION);
    assert_error_mentions("2.0");
    assert_error_mentions("1.");
    assert_error_mentions(f->dir);
    fy_open_opts ro = {.readonly = 1};
    assert_int_equal(fy_journal_open(&f->j, f->dir, &ro), FERRY_EVERSION);
    /* and so is an older one */
    set_format(f->dir, 0, 9);
    assert_int_equal(fy_journal_open(&f->j, f->dir, &o), FERRY_EVERSION);
    assert_error_mentions("0.9");
}

/* A directory holding some other program's LMDB environment. */
static void make_foreign_env(const char *dir, const char *dbname)
{
    MDB_env *env;
    MDB_txn *txn;
    MDB_dbi dbi;
    assert_int_equal(mdb_env_create(&env), 0);
    assert_int_equal(mdb_env_set_maxdbs(env, 4), 0);
    assert_int_equal(mdb_env_open(env, dir, 0, 0600), 0);
    assert_int_equal(mdb_txn_begin(env, NULL, 0, &txn), 0);
    assert_int_equal(mdb_dbi_open(txn, dbname, dbname ? MDB_CREATE : 0, &dbi), 0);
    MDB_val k = {5, (void *)(uintptr_t) "hello"}, d = {5, (void *)(uintptr_t) "world"};
    assert_int_equal(mdb_put(txn, dbi, &k, &d, 0), 0);
    assert_int_equal(mdb_txn_commit(txn), 0);
    mdb_env_close(env);
}

/* The foreign environment still holds exactly what it held. */
static void expect_foreign_untouched(const char *dir)
{
    MDB_env *env;
    MDB_txn *txn;
    MDB_dbi dbi;
    MDB_stat st;
    assert_int_equal(mdb_env_create(&env), 0);
    assert_int_equal(mdb_env_set_maxdbs(env, 8), 0);
    assert_int_equal(mdb_env_open(env, dir, MDB_RDONLY, 0600), 0);
    assert_int_equal(mdb_txn_begin(env, NULL, MDB_RDONLY, &txn), 0);
    assert_int_equal(mdb_dbi_open(txn, NULL, 0, &dbi), 0);
    assert_int_equal(mdb_stat(txn, dbi, &st), 0);
    assert_int_equal(st.ms_entries, 1); /* "hello" or the one named database */
    assert_int_equal(mdb_dbi_open(txn, "events", 0, &dbi), MDB_NOTFOUND);
    mdb_txn_abort(txn);
    mdb_env_close(env);
}

static void test_foreign_env_refused(void **state)
{
    fixture *f = *state;
    make_foreign_env(f->dir, NULL);
    fy_open_opts o = {.create = 1};
    ferry_err e = fy_journal_open(&f->j, f->dir, &o);
    assert_int_not_equal(e, FERRY_OK);
    assert_int_equal(e, FERRY_ECORRUPT);
    assert_error_mentions("not a ferry journal");
    fy_open_opts ro = {.readonly = 1};
    assert_int_equal(fy_journal_open(&f->j, f->dir, &ro), FERRY_ECORRUPT);
    expect_foreign_untouched(f->dir);
}

static void test_foreign_env_with_meta_db_refused(void **state)
{
    fixture *f = *state;
    /* another program's environment that happens to use a database called "meta" */
    make_foreign_env(f->dir, "meta");
    fy_open_opts o = {.create = 1};
    ferry_err e = fy_journal_open(&f->j, f->dir, &o);
    if (e == FERRY_OK) {
        fy_journal_close(&f->j);
        fail_msg("a foreign LMDB environment (database \"meta\" holding data) was opened as a journal");
    }
    expect_foreign_untouched(f->dir);
}

static void test_foreign_env_with_meta_key_refused(void **state)
{
    fixture *f = *state;
    /* a plain key "meta" in the main database (not a named database) */
    MDB_env *env;
    MDB_txn *txn;
    MDB_dbi dbi;
    assert_int_equal(mdb_env_create(&env), 0);
    assert_int_equal(mdb_env_open(env, f->dir, 0, 0600), 0);
    assert_int_equal(mdb_txn_begin(env, NULL, 0, &txn), 0);
    assert_int_equal(mdb_dbi_open(txn, NULL, 0, &dbi), 0);
    MDB_val k = {4, (void *)(uintptr_t) "meta"}, d = {5, (void *)(uintptr_t) "value"};
    assert_int_equal(mdb_put(txn, dbi, &k, &d, 0), 0);
    assert_int_equal(mdb_txn_commit(txn), 0);
    mdb_env_close(env);
    fy_open_opts o = {.create = 1};
    ferry_err e = fy_journal_open(&f->j, f->dir, &o);
    if (e == FERRY_OK) {
        fy_journal_close(&f->j);
        fail_msg("a foreign LMDB environment (plain key \"meta\") was opened as a journal");
    }
    assert_true(ferry_last_error()[0] != '\0');
    expect_foreign_untouched(f->dir);
}

/* A journal whose main database lost a database's record (a damaged page)
 * is refused as damaged, never given a new, empty database of that name. */
static void test_lost_database_record_refused(void **state)
{
    fixture *f = *state;
    static const char *const names[] = {"events", "cursors", "dead"};
    for (size_t i = 0; i < 3; i++) {
        jopen(f, 0);
        MDB_txn *txn;
        assert_int_equal(fy_txn_begin(&f->j, 0, &txn), FERRY_OK);
        uint64_t seq;
        assert_int_equal(fy_seq_next(&f->j, txn, &seq), FERRY_OK);
        assert_int_equal(fy_txn_commit(&f->j, txn, "seq"), FERRY_OK);
        fy_journal_close(&f->j);
        f->open = 0;
        /* what a lost record of the main database looks like to LMDB */
        MDB_env *env;
        MDB_dbi dbi;
        assert_int_equal(mdb_env_create(&env), 0);
        assert_int_equal(mdb_env_set_maxdbs(env, 8), 0);
        assert_int_equal(mdb_env_open(env, f->dir, 0, 0600), 0);
        assert_int_equal(mdb_txn_begin(env, NULL, 0, &txn), 0);
        assert_int_equal(mdb_dbi_open(txn, names[i], 0, &dbi), 0);
        assert_int_equal(mdb_drop(txn, dbi, 1), 0);
        assert_int_equal(mdb_txn_commit(txn), 0);
        mdb_env_close(env);
        fy_open_opts o = {.create = 1};
        assert_int_equal(fy_journal_open(&f->j, f->dir, &o), FERRY_ECORRUPT);
        assert_error_mentions("is damaged");
        assert_error_mentions(names[i]);
        assert_error_mentions("salvage");
        /* and nothing was made in its place */
        assert_int_equal(mdb_env_create(&env), 0);
        assert_int_equal(mdb_env_set_maxdbs(env, 8), 0);
        assert_int_equal(mdb_env_open(env, f->dir, MDB_RDONLY, 0600), 0);
        assert_int_equal(mdb_txn_begin(env, NULL, MDB_RDONLY, &txn), 0);
        assert_int_equal(mdb_dbi_open(txn, names[i], 0, &dbi), MDB_NOTFOUND);
        mdb_txn_abort(txn);
        mdb_env_close(env);
        tu_rmrf(f->dir);
    }
}

static void test_missing_journal(void **state)
{
    fixture *f = *state;
    char path[600];
    snprintf(path, sizeof path, "%s/not/there", f->dir);
    fy_open_opts ro = {.readonly = 1};
    assert_int_equal(fy_journal_open(&f->j, path, &ro), FERRY_ENOENT);
    assert_error_mentions(path);
    /* readonly wins over create: nothing is created */
    fy_open_opts ro_create = {.readonly = 1, .create = 1};
    assert_int_equal(fy_journal_open(&f->j, path, &ro_create), FERRY_ENOENT);
    fy_open_opts plain = {0};
    assert_int_equal(fy_journal_open(&f->j, path, &plain), FERRY_ENOENT);
    struct stat st;
    snprintf(path, sizeof path, "%s/not", f->dir);
    assert_int_not_equal(stat(path, &st), 0);
    /* an existing, empty directory is no journal either */
    assert_int_equal(fy_journal_open(&f->j, f->dir, &ro), FERRY_ENOENT);
}

static void test_create_and_bounds(void **state)
{
    fixture *f = *state;
    char path[600];
    snprintf(path, sizeof path, "%s/a/b/journal", f->dir);
    fy_open_opts small = {.create = 1, .max_bytes = MiB - 1};
    assert_int_equal(fy_journal_open(&f->j, path, &small), FERRY_EINVAL);
    assert_error_mentions("minimum");
    fy_open_opts o = {.create = 1};
    assert_int_equal(fy_journal_open(&f->j, path, &o), FERRY_OK);
    assert_int_equal(f->j.map_bytes, FY_DEFAULT_MAX_BYTES);
    fy_journal_close(&f->j);
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0700);
    snprintf(path, sizeof path, "%s/a/b/journal/data.mdb", f->dir);
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    /* readonly opens of an existing journal work and keep its bound */
    snprintf(path, sizeof path, "%s/a/b/journal", f->dir);
    fy_open_opts ro = {.readonly = 1};
    assert_int_equal(fy_journal_open(&f->j, path, &ro), FERRY_OK);
    assert_int_equal(f->j.map_bytes, FY_DEFAULT_MAX_BYTES);
    fy_journal_close(&f->j);
    /* a larger bound given at open grows it, and it sticks */
    fy_open_opts big = {.create = 1, .max_bytes = 2 * FY_DEFAULT_MAX_BYTES};
    assert_int_equal(fy_journal_open(&f->j, path, &big), FERRY_OK);
    assert_int_equal(f->j.map_bytes, 2 * FY_DEFAULT_MAX_BYTES);
    fy_buf rec;
    fy_buf_init(&rec, 0);
    make_record(&rec, 1, 10);
    fy_rec_ref ref = {rec.data, rec.len};
    uint64_t first;
    assert_int_equal(fy_journal_append(&f->j, &ref, 1, 0, &first), FERRY_OK);
    fy_buf_free(&rec);
    fy_journal_close(&f->j);
    assert_int_equal(fy_journal_open(&f->j, path, &o), FERRY_OK);
    assert_int_equal(f->j.map_bytes, 2 * FY_DEFAULT_MAX_BYTES);
    fy_journal_close(&f->j);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_seq_starts_at_1_contiguous, setup, teardown),
        cmocka_unit_test_setup_teardown(test_seq_never_reused_after_delete, setup, teardown),
        cmocka_unit_test_setup_teardown(test_batch_atomic_when_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_batch_atomic_when_lmdb_fails_reject, setup, teardown),
        cmocka_unit_test_setup_teardown(test_batch_atomic_when_lmdb_fails_evict, setup, teardown),
        cmocka_unit_test_setup_teardown(test_delivered_pruned_when_just_enough, setup, teardown),
        cmocka_unit_test_setup_teardown(test_size_bound_reject, setup, teardown),
        cmocka_unit_test_setup_teardown(test_size_bound_evict_oldest, setup, teardown),
        cmocka_unit_test_setup_teardown(test_delivered_pruned_first, setup, teardown),
        cmocka_unit_test_setup_teardown(test_delivered_pruned_before_evicting, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cursor_roundtrip, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cursor_mark_done, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cursor_mark_done_never_skips_future_events, setup, teardown),
        cmocka_unit_test_setup_teardown(test_events_prune, setup, teardown),
        cmocka_unit_test_setup_teardown(test_dead_letters, setup, teardown),
        cmocka_unit_test_setup_teardown(test_format_versions, setup, teardown),
        cmocka_unit_test_setup_teardown(test_foreign_env_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_foreign_env_with_meta_db_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_foreign_env_with_meta_key_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_lost_database_record_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_missing_journal, setup, teardown),
        cmocka_unit_test_setup_teardown(test_create_and_bounds, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

/* test_gaps.c: eviction gaps (format/gaps.c): recorded with the eviction,
 * one open row per destination and identity, extended by later evictions
 * (coalescing), never extended once sealed, per destination exact, bounded,
 * and their loss event. Real LMDB journals in a temporary directory. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include "test_util.h"
#include "fy_gaps.h"

#define MiB (1ull << 20)

typedef struct fixture {
    char dir[512];
    fy_journal j;
    int open;
    uint64_t appended;
} fixture;

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof *f);
    if (!f)
        return -1;
    tu_tmpdir(f->dir, sizeof f->dir, "gaps");
    fy_open_opts o = {.create = 1, .relaxed = 1, .max_bytes = MiB};
    if (fy_journal_open(&f->j, f->dir, &o))
        return -1;
    f->open = 1;
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

/* The identity of event seq: device "dev-<seq % ndev>"; with users, every
 * third device also has a user_id. Time: 1e12 + seq * 10. */
static void make_event(fy_buf *out, uint64_t seq, unsigned ndev, size_t pad_len)
{
    char dev[40], pad[1200];
    snprintf(dev, sizeof dev, "dev-%06llu", (unsigned long long)(seq % ndev));
    memset(pad, 'p', pad_len);
    pad[pad_len] = '\0';
    json_t *ev = json_pack("{s:s,s:s,s:I,s:{s:I,s:s}}", "event_type", "fill", "device_id", dev, "time",
                           (json_int_t)(1000000000000ll + (long long)seq * 10), "event_properties", "seq",
                           (json_int_t)seq, "pad", pad);
    assert_non_null(ev);
    if (seq % ndev % 3 == 1)
        json_object_set_new(ev, "user_id", json_string("user-one"));
    char iid[40];
    snprintf(iid, sizeof iid, "iid-%llu", (unsigned long long)seq);
    if (fy_record_encode(ev, 1700000000000 + (int64_t)seq, iid, out))
        fail_msg("encode: %s", ferry_last_error());
    json_decref(ev);
}

/* Appends `batches` batches of 20 events with evict-oldest. */
static void fill(fixture *f, unsigned batches, unsigned ndev)
{
    for (unsigned b = 0; b < batches; b++) {
        fy_buf buf;
        fy_buf_init(&buf, 0);
        size_t ends[20];
        fy_rec_ref refs[20];
        for (size_t i = 0; i < 20; i++) {
            make_event(&buf, f->appended + i + 1, ndev, 700);
            ends[i] = buf.len;
        }
        for (size_t i = 0, start = 0; i < 20; start = ends[i++])
            refs[i].data = buf.data + start, refs[i].len = ends[i] - start;
        uint64_t first;
        ferry_err e = fy_journal_append(&f->j, refs, 20, 1, &first);
        if (e)
            fail_msg("append: %s", ferry_last_error());
        assert_int_equal(first, f->appended + 1);
        f->appended += 20;
        fy_buf_free(&buf);
    }
}

static uint64_t evicted(fixture *f)
{
    MDB_txn *txn;
    uint64_t v;
    assert_int_equal(fy_txn_begin(&f->j, MDB_RDONLY, &txn), FERRY_OK);
    assert_int_equal(fy_meta_get_u64(&f->j, txn, "evicted", &v), FERRY_OK);
    mdb_txn_abort(txn);
    return v;
}

static void list(fixture *f, const char *sink, fy_gap **g, size_t *n)
{
    MDB_txn *txn;
    assert_int_equal(fy_txn_begin(&f->j, MDB_RDONLY, &txn), FERRY_OK);
    ferry_err e = fy_gaps_list(&f->j, txn, sink, g, n);
    mdb_txn_abort(txn);
    if (e)
        fail_msg("list: %s", ferry_last_error());
}

static uint64_t sum(const fy_gap *g, size_t n)
{
    uint64_t s = 0;
    for (size_t i = 0; i < n; i++)
        s += g[i].count;
    return s;
}

static void put_cursor(fixture *f, const char *sink, uint64_t delivered)
{
    MDB_txn *txn;
    fy_cursor c;
    memset(&c, 0, sizeof c);
    c.delivered = delivered;
    assert_int_equal(fy_txn_begin(&f->j, 0, &txn), FERRY_OK);
    assert_int_equal(fy_cursor_put(&f->j, txn, sink, &c), FERRY_OK);
    assert_int_equal(fy_txn_commit(&f->j, txn, "cursor"), FERRY_OK);
}

/* Checks each row against what seqs from..to (all lost for the row's
 * destination) say about their identities. */
static void expect_rows(const fy_gap *g, size_t n, unsigned ndev, uint64_t from, uint64_t to)
{
    assert_int_equal(n, ndev);
    for (size_t i = 0; i < n; i++) {
        unsigned d = (unsigned)(g[i].first_seq % ndev);
        uint64_t first = from + (d + ndev - from % ndev) % ndev, last = to - (to % ndev + ndev - d) % ndev;
        char dev[40];
        snprintf(dev, sizeof dev, "dev-%06u", d);
        assert_non_null(g[i].device_id);
        assert_string_equal(g[i].device_id, dev);
        if (d % 3 == 1)
            assert_string_equal(g[i].user_id, "user-one");
        else
            assert_null(g[i].user_id);
        assert_int_equal(g[i].first_seq, first);
        assert_int_equal(g[i].last_seq, last);
        assert_int_equal(g[i].count, (last - first) / ndev + 1);
        assert_int_equal(g[i].first_time, 1000000000000ll + (int64_t)first * 10);
        assert_int_equal(g[i].last_time, 1000000000000ll + (int64_t)last * 10);
        assert_int_equal(g[i].first_recorded, 1700000000000ll + (int64_t)first);
        assert_int_equal(g[i].last_recorded, 1700000000000ll + (int64_t)last);
    }
}

/* Many appends under pressure: one row per device, however many evictions. */
static void test_coalesced_per_device(void **state)
{
    fixture *f = *state;
    fill(f, 200, 5); /* 4,000 events of ~800 bytes in a 1 MiB journal */
    uint64_t ev = evicted(f);
    assert_true(ev > 1000);
    fy_gap *g;
    size_t n;
    list(f, NULL, &g, &n);
    assert_int_equal(sum(g, n), ev);
    expect_rows(g, n, 5, 1, ev);
    for (size_t i = 0; i < n; i++) {
        assert_string_equal(g[i].sink, FY_DEFAULT_SINK);
        assert_false(g[i].sealed);
    }
    fy_gaps_free(g, n);
}

/* A sealed row never changes: the next eviction opens new rows. */
static void test_sealed_rows_not_extended(void **state)
{
    fixture *f = *state;
    fill(f, 100, 4);
    uint64_t ev1 = evicted(f);
    assert_true(ev1 > 0);
    MDB_txn *txn;
    size_t sealed;
    assert_int_equal(fy_txn_begin(&f->j, 0, &txn), FERRY_OK);
    assert_int_equal(fy_gaps_seal(&f->j, txn, FY_DEFAULT_SINK, &sealed), FERRY_OK);
    assert_int_equal(fy_txn_commit(&f->j, txn, "seal"), FERRY_OK);
    assert_int_equal(sealed, 4);
    fy_gap *before, *g;
    size_t nb, n;
    list(f, FY_DEFAULT_SINK, &before, &nb);
    fill(f, 100, 4);
    uint64_t ev2 = evicted(f);
    assert_true(ev2 > ev1);
    list(f, FY_DEFAULT_SINK, &g, &n);
    assert_int_equal(n, 8);
    assert_int_equal(sum(g, n), ev2);
    fy_gap old[4], fresh[4];
    size_t no = 0, nf = 0;
    for (size_t i = 0; i < n; i++) {
        if (g[i].sealed)
            old[no++] = g[i];
        else
            fresh[nf++] = g[i];
    }
    assert_int_equal(no, 4);
    assert_int_equal(nf, 4);
    for (size_t i = 0; i < 4; i++) { /* unchanged, byte for byte in what matters */
        assert_int_equal(old[i].first_seq, before[i].first_seq);
        assert_int_equal(old[i].last_seq, before[i].last_seq);
        assert_int_equal(old[i].count, before[i].count);
    }
    expect_rows(old, no, 4, 1, ev1);
    expect_rows(fresh, nf, 4, ev1 + 1, ev2);
    /* Sealing again seals only the new ones. */
    assert_int_equal(fy_txn_begin(&f->j, 0, &txn), FERRY_OK);
    assert_int_equal(fy_gaps_seal(&f->j, txn, FY_DEFAULT_SINK, &sealed), FERRY_OK);
    /* ... and a reported gap is deleted by its first seq. */
    assert_int_equal(fy_gaps_del(&f->j, txn, FY_DEFAULT_SINK, old[0].first_seq), FERRY_OK);
    assert_int_equal(fy_txn_commit(&f->j, txn, "seal"), FERRY_OK);
    assert_int_equal(sealed, 4);
    fy_gaps_free(g, n);
    list(f, NULL, &g, &n);
    assert_int_equal(n, 7);
    fy_gaps_free(g, n);
    fy_gaps_free(before, nb);
}

/* Each destination loses only what it had not had. */
static void test_per_destination(void **state)
{
    fixture *f = *state;
    fill(f, 20, 3); /* 400 events, below the bound */
    assert_int_equal(evicted(f), 0);
    put_cursor(f, FY_DEFAULT_SINK, 250);
    put_cursor(f, "other", 100); /* holds 101.. back: they get evicted */
    fill(f, 200, 3);
    uint64_t ev = evicted(f);
    assert_true(ev > 200);
    fy_gap *a, *o;
    size_t na, no;
    list(f, FY_DEFAULT_SINK, &a, &na);
    list(f, "other", &o, &no);
    /* pruned: 1..100 (delivered everywhere); evicted: 101..100+ev */
    assert_int_equal(sum(o, no), ev);
    expect_rows(o, no, 3, 101, 100 + ev);
    assert_int_equal(sum(a, na), ev - 150);
    expect_rows(a, na, 3, 251, 100 + ev);
    fy_gaps_free(a, na);
    fy_gaps_free(o, no);
}

/* Very many identities: rows stay bounded, nothing goes uncounted. */
static void test_rows_bounded(void **state)
{
    fixture *f = *state;
    fill(f, 200, 100000); /* every event its own device */
    uint64_t ev = evicted(f);
    assert_true(ev > FY_GAPS_MAX_ROWS + 100);
    fy_gap *g;
    size_t n;
    list(f, NULL, &g, &n);
    assert_int_equal(n, FY_GAPS_MAX_ROWS + 1);
    assert_int_equal(sum(g, n), ev);
    size_t shared = 0;
    for (size_t i = 0; i < n; i++)
        if (!g[i].device_id && !g[i].user_id) {
            shared++;
            assert_int_equal(g[i].count, ev - FY_GAPS_MAX_ROWS);
        }
    assert_int_equal(shared, 1);
    fy_gaps_free(g, n);
    /* purge --all empties them */
    MDB_txn *txn;
    uint64_t cleared;
    assert_int_equal(fy_txn_begin(&f->j, 0, &txn), FERRY_OK);
    assert_int_equal(fy_gaps_clear(&f->j, txn, &cleared), FERRY_OK);
    assert_int_equal(fy_txn_commit(&f->j, txn, "clear"), FERRY_OK);
    assert_int_equal(cleared, FY_GAPS_MAX_ROWS + 1);
    list(f, NULL, &g, &n);
    assert_int_equal(n, 0);
    fy_gaps_free(g, n);
}

/* The loss event: valid JSON, deterministic insert_id, the gap's numbers. */
static void test_loss_event(void **state)
{
    (void)state;
    const unsigned char id[16] = {0xde, 0xad, 0xbe, 0xef, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12};
    fy_gap g;
    memset(&g, 0, sizeof g);
    snprintf(g.sink, sizeof g.sink, "amplitude");
    g.first_seq = 7, g.last_seq = 42, g.count = 30;
    g.first_time = 1795939200000, g.last_time = 1795939300000;
    g.first_recorded = 1795939200500, g.last_recorded = 1795939300500;
    char dev[] = "dev \"quoted\"";
    g.device_id = dev;
    char iid[96], iid2[96];
    fy_gap_insert_id(id, &g, iid);
    fy_gap_insert_id(id, &g, iid2);
    assert_string_equal(iid, "ferry-lost-deadbeef0102030405060708090a0b0c-7-42");
    assert_string_equal(iid, iid2);
    fy_buf b;
    fy_buf_init(&b, 0);
    assert_int_equal(fy_gap_event_json(id, &g, &b), FERRY_OK);
    json_error_t jerr;
    json_t *ev = json_loadb(b.data, b.len, 0, &jerr);
    if (!ev)
        fail_msg("not JSON: %s: %.*s", jerr.text, (int)b.len, b.data);
    assert_string_equal(json_string_value(json_object_get(ev, "event_type")), FY_LOSS_EVENT_TYPE);
    assert_string_equal(json_string_value(json_object_get(ev, "device_id")), "dev \"quoted\"");
    assert_null(json_object_get(ev, "user_id"));
    assert_string_equal(json_string_value(json_object_get(ev, "insert_id")), iid);
    assert_int_equal(json_integer_value(json_object_get(ev, "time")), 1795939200000);
    json_t *p = json_object_get(ev, "event_properties");
    assert_int_equal(json_integer_value(json_object_get(p, "count")), 30);
    assert_int_equal(json_integer_value(json_object_get(p, "first_seq")), 7);
    assert_int_equal(json_integer_value(json_object_get(p, "last_seq")), 42);
    assert_int_equal(json_integer_value(json_object_get(p, "last_time")), 1795939300000);
    assert_string_equal(json_string_value(json_object_get(p, "journal_id")), "deadbeef0102030405060708090a0b0c");
    assert_string_equal(json_string_value(json_object_get(p, "reason")), "evict-oldest");
    json_decref(ev);
    /* No identity (undecodable records, or the shared row): the journal stands in. */
    g.device_id = NULL;
    fy_buf_reset(&b);
    assert_int_equal(fy_gap_event_json(id, &g, &b), FERRY_OK);
    ev = json_loadb(b.data, b.len, 0, &jerr);
    assert_non_null(ev);
    assert_string_equal(json_string_value(json_object_get(ev, "device_id")),
                        "ferry-journal-deadbeef0102030405060708090a0b0c");
    json_decref(ev);
    fy_buf_free(&b);
}

/* Rows imported from a capture: keyed apart from the journal's own (even
 * with the same first_seq), sealed, never extended by later evictions,
 * imported once; their loss event names their own journal. */
static void test_imported_rows(void **state)
{
    fixture *f = *state;
    fill(f, 100, 2);
    fy_gap *own;
    size_t n_own;
    list(f, NULL, &own, &n_own);
    assert_int_equal(n_own, 2);
    const unsigned char other[16] = {0xab, 0xcd, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14};
    fy_gap g;
    memset(&g, 0, sizeof g);
    snprintf(g.sink, sizeof g.sink, "%s", FY_DEFAULT_SINK);
    g.imported = 1;
    memcpy(g.journal_id, other, 16);
    g.first_seq = own[0].first_seq, g.last_seq = own[0].first_seq + 10, g.count = 3; /* same first seq */
    g.first_time = g.last_time = 5;
    char dev[] = "far-device";
    g.device_id = dev;
    fy_gap batch[5];
    batch[0] = g;
    batch[1] = g; /* the same loss again: skipped when imported before */
    batch[2] = g;
    batch[2].last_seq++; /* another range: another loss */
    batch[3] = own[0]; /* this journal's own row coming back */
    batch[3].imported = 1;
    memcpy(batch[3].journal_id, f->j.id, 16);
    batch[4] = batch[3];
    batch[4].last_seq = 1; /* ours, no longer here: reported already */
    MDB_txn *txn;
    uint64_t added = 0, present = 0;
    assert_int_equal(fy_txn_begin(&f->j, 0, &txn), FERRY_OK);
    assert_int_equal(fy_gaps_import(&f->j, txn, batch, 1, &added, &present), FERRY_OK);
    assert_int_equal(fy_gaps_import(&f->j, txn, batch + 1, 4, &added, &present), FERRY_OK);
    assert_int_equal(fy_txn_commit(&f->j, txn, "import"), FERRY_OK);
    assert_int_equal(added, 2);
    assert_int_equal(present, 3);

    fy_gap *rows;
    size_t n;
    list(f, NULL, &rows, &n);
    assert_int_equal(n, 4);
    assert_int_equal(rows[2].key_seq, FY_GAP_IMPORTED_KEY);
    assert_int_equal(rows[3].key_seq, FY_GAP_IMPORTED_KEY + 1);
    for (size_t i = 2; i < 4; i++) {
        assert_true(rows[i].imported && rows[i].sealed);
        assert_memory_equal(rows[i].journal_id, other, 16);
        assert_memory_equal(fy_gap_journal(f->j.id, &rows[i]), other, 16);
        assert_int_equal(rows[i].first_seq, own[0].first_seq);
        assert_int_equal(rows[i].count, 3);
        assert_string_equal(rows[i].device_id, "far-device");
    }
    char iid[96], want[96];
    fy_gap_insert_id(f->j.id, &rows[2], iid);
    snprintf(want, sizeof want, "ferry-lost-abcd0102030405060708090a0b0c0d0e-%llu-%llu",
             (unsigned long long)own[0].first_seq, (unsigned long long)own[0].first_seq + 10);
    assert_string_equal(iid, want);
    assert_false(rows[0].imported);
    assert_memory_equal(fy_gap_journal(f->j.id, &rows[0]), f->j.id, 16);
    fy_gaps_free(rows, n);

    /* Later evictions extend the journal's own rows only. */
    uint64_t before = sum(own, n_own);
    fill(f, 50, 2);
    list(f, NULL, &rows, &n);
    assert_int_equal(n, 4);
    assert_int_equal(rows[0].count + rows[1].count, evicted(f));
    assert_true(rows[0].count + rows[1].count > before);
    assert_int_equal(rows[2].count + rows[3].count, 6);
    fy_gaps_free(rows, n);
    fy_gaps_free(own, n_own);
}

/* A reopened journal keeps its rows; a read-only open lists them. */
static void test_rows_survive_reopen(void **state)
{
    fixture *f = *state;
    fill(f, 100, 2);
    uint64_t ev = evicted(f);
    fy_journal_close(&f->j);
    f->open = 0;
    fy_open_opts o = {.readonly = 1};
    assert_int_equal(fy_journal_open(&f->j, f->dir, &o), FERRY_OK);
    f->open = 1;
    fy_gap *g;
    size_t n;
    list(f, NULL, &g, &n);
    assert_int_equal(n, 2);
    assert_int_equal(sum(g, n), ev);
    fy_gaps_free(g, n);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_coalesced_per_device, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sealed_rows_not_extended, setup, teardown),
        cmocka_unit_test_setup_teardown(test_per_destination, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rows_bounded, setup, teardown),
        cmocka_unit_test_setup_teardown(test_loss_event, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rows_survive_reopen, setup, teardown),
        cmocka_unit_test_setup_teardown(test_imported_rows, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

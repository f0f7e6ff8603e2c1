/* verify.c: ferry-journal verify [FILE]: every check a journal or a capture
 * allows, each problem reported with its place; exit 0 only when clean. */
#include "fj.h"
#include "fy_cli.h"
#include "fy_fail.h"
#include "fy_gaps.h"
#include "fy_pagewalk.h"

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

typedef struct report {
    const char *subject; /* file or journal path */
    int json;
    uint64_t n;
    fy_buf list; /* --json: the problems as JSON objects; text lines when held */
    int hold;    /* text: keep the lines in list (a walk that may be repeated) */
} report;

static void problem(report *r, const char *where, int64_t offset, const char *fmt, ...) FY_PRINTF(4, 5);
static void problem(report *r, const char *where, int64_t offset, const char *fmt, ...)
{
    char msg[600];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    r->n++;
    if (r->json) {
        if (r->list.len)
            fy_buf_putc(&r->list, ',');
        fy_buf_puts(&r->list, "{\"where\":");
        fy_json_emit_string(&r->list, where, strlen(where));
        if (offset >= 0)
            fy_buf_printf(&r->list, ",\"offset\":%" PRId64, offset);
        fy_buf_puts(&r->list, ",\"message\":");
        fy_json_emit_string(&r->list, msg, strlen(msg));
        fy_buf_putc(&r->list, '}');
        return;
    }
    fy_buf line;
    fy_buf_init(&line, 0);
    if (offset >= 0)
        fy_buf_printf(r->hold ? &r->list : &line, "%s: %s at offset %" PRId64 ": %s\n", r->subject, where, offset,
                      msg);
    else
        fy_buf_printf(r->hold ? &r->list : &line, "%s: %s: %s\n", r->subject, where, msg);
    if (line.len)
        fwrite(line.data, 1, line.len, stdout);
    fy_buf_free(&line);
}

/* ---- captures -------------------------------------------------------------- */

static void cap_problem(void *arg, const char *where, uint64_t offset, const char *msg)
{
    problem(arg, where, (int64_t)offset, "%s", msg);
}

static int verify_capture(const char *path, int json)
{
    fj_map m;
    ferry_err e = fj_map_file(path, &m);
    if (e)
        return fj_fail(e);
    report rp = {path, json, 0, {0}, 0};
    fy_buf_init(&rp.list, 0);
    unsigned char digest[FY_CAP_DIGEST];
    char hex[2 * FY_CAP_DIGEST + 1] = "", id[33] = "";
    if ((e = fy_sha256_two(m.p, m.len, NULL, 0, digest))) {
        fj_unmap(&m);
        return fj_fail(e);
    }
    fy_hex(digest, FY_CAP_DIGEST, hex);
    fy_capr r;
    uint64_t n = 0, devices_missing = 0;
    e = fy_capr_open(&r, m.p, m.len, cap_problem, &rp);
    int usable = e == FERRY_OK;
    if (e == FERRY_ENOMEM) {
        fy_capr_close(&r);
        fj_unmap(&m);
        return fj_fail(e);
    }
    while (usable) {
        fy_cap_entry en;
        int got = fy_capr_next(&r, &en);
        if (got < 0) {
            fy_capr_close(&r);
            fj_unmap(&m);
            return fj_fail(FERRY_EIO);
        }
        if (got == 0)
            break;
        n++;
        /* The header lists every device id of the records. */
        fy_record rec;
        if (en.intact && fy_record_decode(en.rec, en.rec_len, &rec) == FERRY_OK) {
            if (rec.device_id) {
                int found = 0;
                for (size_t i = 0; i < r.h.n_devices && !found; i++)
                    found = r.h.devices[i].n == rec.device_id_len &&
                            !memcmp(r.h.devices[i].p, rec.device_id, rec.device_id_len);
                if (!found && devices_missing++ == 0) {
                    char where[64];
                    snprintf(where, sizeof where, "record %" PRIu64 " (seq %" PRIu64 ")", en.ordinal, en.seq);
                    problem(&rp, where, (int64_t)en.offset, "device id not listed in the header");
                }
            }
            fy_record_free(&rec);
        }
        if (en.intact && (en.seq < r.h.first_seq || en.seq > r.h.last_seq)) {
            char where[64];
            snprintf(where, sizeof where, "record %" PRIu64 " (seq %" PRIu64 ")", en.ordinal, en.seq);
            problem(&rp, where, (int64_t)en.offset, "seq outside the header's range %" PRIu64 "..%" PRIu64,
                    r.h.first_seq, r.h.last_seq);
        }
    }
    if (usable)
        fy_hex(r.h.journal_id, 16, id);
    uint64_t problems = rp.n;
    char when[40];
    fy_cli_format_time(usable ? r.h.export_ms : 0, when, sizeof when);
    if (json) {
        fy_buf b;
        fy_buf_init(&b, 0);
        fy_buf_puts(&b, "{\"file\":");
        fy_json_emit_string(&b, path, strlen(path));
        fy_buf_printf(&b, ",\"kind\":\"capture\",\"ok\":%s,\"sha256\":\"%s\",\"bytes\":%zu", problems ? "false" : "true",
                      hex, m.len);
        if (usable) {
            fy_buf_printf(&b, ",\"version\":\"%u.%u\",\"journal_id\":\"%s\",\"records\":%" PRIu64
                              ",\"announced\":%" PRIu64 ",\"first_seq\":%" PRIu64 ",\"last_seq\":%" PRIu64
                              ",\"export_ms\":%" PRId64 ",\"devices\":%zu,\"gaps\":%zu,\"destinations\":[",
                          r.h.major, r.h.minor, id, n, r.h.count, r.h.first_seq, r.h.last_seq, r.h.export_ms,
                          r.h.n_devices, r.h.n_gaps);
            for (size_t i = 0; i < r.h.n_dests; i++) {
                if (i)
                    fy_buf_putc(&b, ',');
                fy_json_emit_string(&b, r.h.dests[i].p, r.h.dests[i].n);
            }
            fy_buf_puts(&b, "],\"filter\":");
            fy_json_emit_string(&b, r.h.filter.p, r.h.filter.n);
        }
        fy_buf_printf(&b, ",\"problems\":[%.*s]}\n", (int)rp.list.len, rp.list.data ? rp.list.data : "");
        fwrite(b.data, 1, b.len, stdout);
        fy_buf_free(&b);
    } else if (!problems) {
        printf("%s: OK: capture %u.%u of journal %s, %" PRIu64 " record(s), seq %" PRIu64 "..%" PRIu64
               ", %zu device(s), %zu unreported eviction gap(s), exported %s\n%s  %s\n",
               path, r.h.major, r.h.minor, id, n, r.h.first_seq, r.h.last_seq, r.h.n_devices, r.h.n_gaps, when, hex,
               path);
    } else {
        printf("%s: %" PRIu64 " problem(s) found; do not import this capture\n", path, problems);
    }
    fy_capr_close(&r);
    fj_unmap(&m);
    fy_buf_free(&rp.list);
    return problems ? EX_DATAERR : EX_OK;
}

/* ---- journals -------------------------------------------------------------- */

typedef struct jv {
    fy_journal *j;
    MDB_txn *txn;
    report *rp;
    uint64_t last; /* last seq handed out */
    int lmdb_failed;
    uint64_t damaged_dead; /* dead letters (status 0) holding a record that failed its check */
} jv;

static void lmdb_problem(jv *v, const char *where, int rc)
{
    problem(v->rp, where, -1, "LMDB: %s", mdb_strerror(rc));
    v->lmdb_failed = 1;
}

static void check_meta(jv *v)
{
    static const char *const u64_keys[] = {"created_ms", "seq_floor", "evicted", "pruned", "purged"};
    MDB_cursor *cur;
    MDB_val k, d;
    int rc = mdb_cursor_open(v->txn, v->j->meta, &cur);
    if (rc) {
        lmdb_problem(v, "meta", rc);
        return;
    }
    int seen_created = 0, seen_floor = 0;
    for (rc = mdb_cursor_get(cur, &k, &d, MDB_FIRST); !rc; rc = mdb_cursor_get(cur, &k, &d, MDB_NEXT)) {
        char key[64];
        snprintf(key, sizeof key, "meta %.*s", (int)(k.mv_size < 40 ? k.mv_size : 40), (const char *)k.mv_data);
        for (size_t i = 0; i < sizeof u64_keys / sizeof u64_keys[0]; i++) {
            if (k.mv_size != strlen(u64_keys[i]) || memcmp(k.mv_data, u64_keys[i], k.mv_size))
                continue;
            if (d.mv_size != 8) {
                problem(v->rp, key, -1, "%zu bytes, expected 8", d.mv_size);
                continue;
            }
            uint64_t val = fy_get_be64(d.mv_data);
            if (i == 0) {
                seen_created = 1;
                if (val == 0 || val > (uint64_t)fy_now_ms() + 86400000u)
                    problem(v->rp, key, -1, "implausible creation time %" PRIu64, val);
            } else if (i == 1) {
                seen_floor = 1;
                if (val == 0)
                    problem(v->rp, key, -1, "the sequence floor is 0 (sequence numbers start at 1)");
            }
        }
        if (k.mv_size == 6 && !memcmp(k.mv_data, "format", 6) && d.mv_size != 8)
            problem(v->rp, key, -1, "%zu bytes, expected 8", d.mv_size);
        if (k.mv_size == 10 && !memcmp(k.mv_data, "journal_id", 10) && d.mv_size != 16)
            problem(v->rp, key, -1, "%zu bytes, expected 16", d.mv_size);
    }
    mdb_cursor_close(cur);
    if (rc != MDB_NOTFOUND)
        lmdb_problem(v, "meta", rc);
    if (!seen_created)
        problem(v->rp, "meta created_ms", -1, "missing");
    if (!seen_floor)
        problem(v->rp, "meta seq_floor", -1, "missing");
}

static uint64_t check_events(jv *v)
{
    MDB_cursor *cur;
    MDB_val k, d;
    uint64_t prev = 0, n = 0;
    int rc = mdb_cursor_open(v->txn, v->j->events, &cur);
    if (rc) {
        lmdb_problem(v, "events", rc);
        return 0;
    }
    for (rc = mdb_cursor_get(cur, &k, &d, MDB_FIRST); !rc; rc = mdb_cursor_get(cur, &k, &d, MDB_NEXT)) {
        n++;
        if (k.mv_size != 8) {
            problem(v->rp, "events", -1, "key of %zu bytes after seq %" PRIu64 " (expected 8)", k.mv_size, prev);
            continue;
        }
        uint64_t seq = fy_get_be64(k.mv_data);
        char where[48];
        snprintf(where, sizeof where, "events seq %" PRIu64, seq);
        if (seq == 0)
            problem(v->rp, where, -1, "sequence number 0");
        if (seq <= prev && n > 1)
            problem(v->rp, where, -1, "does not increase (after %" PRIu64 ")", prev);
        prev = seq;
        if (fy_record_check(d.mv_data, d.mv_size))
            problem(v->rp, where, -1, "record invalid: %s", ferry_last_error());
    }
    if (rc == MDB_NOTFOUND) {
        /* The B-tree agrees with the scan: writers find the last event by
         * descending to it (MDB_LAST) and LMDB keeps a count of entries; a
         * damaged branch page can mislead either without the scan noticing. */
        MDB_stat ms;
        int lrc = mdb_cursor_get(cur, &k, &d, MDB_LAST);
        if (lrc == 0 && (k.mv_size != 8 || fy_get_be64(k.mv_data) != prev))
            problem(v->rp, "events", -1, "the last event found by the tree (key of %zu bytes) is not the last "
                    "one scanned (seq %" PRIu64 ")", k.mv_size, prev);
        else if (lrc && lrc != MDB_NOTFOUND)
            lmdb_problem(v, "events", lrc);
        if (mdb_stat(v->txn, v->j->events, &ms) == 0 && ms.ms_entries != n)
            problem(v->rp, "events", -1, "LMDB counts %zu events, the scan found %" PRIu64, ms.ms_entries, n);
    }
    mdb_cursor_close(cur);
    if (rc != MDB_NOTFOUND)
        lmdb_problem(v, "events", rc);
    return n;
}

typedef struct cur_row {
    char name[256];
    fy_cursor c;
    uint64_t dead_rows;
} cur_row;

static void check_cursors_and_dead(jv *v, uint64_t *n_dead)
{
    cur_row *rows = NULL;
    size_t n_rows = 0;
    MDB_cursor *cur;
    MDB_val k, d;
    int rc = mdb_cursor_open(v->txn, v->j->cursors, &cur);
    if (rc) {
        lmdb_problem(v, "cursors", rc);
        return;
    }
    for (rc = mdb_cursor_get(cur, &k, &d, MDB_FIRST); !rc; rc = mdb_cursor_get(cur, &k, &d, MDB_NEXT)) {
        if (k.mv_size == 0 || k.mv_size > 255 || memchr(k.mv_data, 0, k.mv_size)) {
            problem(v->rp, "cursors", -1, "a destination name of %zu bytes is invalid", k.mv_size);
            continue;
        }
        cur_row *nr = realloc(rows, (n_rows + 1) * sizeof *nr);
        if (!nr)
            break;
        rows = nr;
        cur_row *x = &rows[n_rows];
        memset(x, 0, sizeof *x);
        memcpy(x->name, k.mv_data, k.mv_size);
        char where[300];
        snprintf(where, sizeof where, "cursor %s", x->name);
        int found;
        if (fy_cursor_get(v->j, v->txn, x->name, &x->c, &found)) {
            problem(v->rp, where, -1, "%s", ferry_last_error());
            continue;
        }
        n_rows++;
        const fy_cursor *c = &x->c;
        if (c->delivered > v->last)
            problem(v->rp, where, -1, "delivered through seq %" PRIu64 ", above the last seq handed out (%" PRIu64 ")",
                    c->delivered, v->last);
        if (c->attempted > v->last)
            problem(v->rp, where, -1, "attempted seq %" PRIu64 " was never handed out (last %" PRIu64 ")", c->attempted,
                    v->last);
        for (size_t i = 0; i < c->n_above; i++) {
            if (c->above[i] <= c->delivered || (i && c->above[i] <= c->above[i - 1]) || c->above[i] > v->last) {
                problem(v->rp, where, -1, "out-of-order list is not ascending above the watermark within the "
                        "handed-out range (element %zu: %" PRIu64 ")", i, c->above[i]);
                break;
            }
        }
        if (c->last_success_ms < 0 || c->inflight_first_ms < 0)
            problem(v->rp, where, -1, "negative time");
    }
    mdb_cursor_close(cur);
    if (rc != MDB_NOTFOUND)
        lmdb_problem(v, "cursors", rc);

    rc = mdb_cursor_open(v->txn, v->j->dead, &cur);
    if (rc) {
        lmdb_problem(v, "dead", rc);
    } else {
        for (rc = mdb_cursor_get(cur, &k, &d, MDB_FIRST); !rc; rc = mdb_cursor_get(cur, &k, &d, MDB_NEXT)) {
            fy_dead x;
            (*n_dead)++;
            if (fy_dead_decode(v->j, &k, &d, &x)) {
                problem(v->rp, "dead", -1, "%s", ferry_last_error());
                continue;
            }
            char where[300];
            snprintf(where, sizeof where, "dead %s seq %" PRIu64, x.sink, x.seq);
            if (x.seq == 0 || x.seq > v->last)
                problem(v->rp, where, -1, "seq was never handed out (last %" PRIu64 ")", v->last);
            /* ferry-replay dead-letters a damaged record with status 0 and
             * keeps its bytes for forensics: counted, not a new problem. */
            if (fy_record_check(x.rec, x.rec_len)) {
                if (x.status == 0)
                    v->damaged_dead++;
                else
                    problem(v->rp, where, -1, "record invalid: %s", ferry_last_error());
            }
            cur_row *row = NULL;
            for (size_t i = 0; i < n_rows && !row; i++)
                if (!strcmp(rows[i].name, x.sink))
                    row = &rows[i];
            if (!row) {
                problem(v->rp, where, -1, "no cursor for destination %s", x.sink);
                continue;
            }
            row->dead_rows++;
            if (!fy_cursor_is_done(&row->c, x.seq))
                problem(v->rp, where, -1, "the cursor of %s does not count this dead event as done", x.sink);
        }
        mdb_cursor_close(cur);
        if (rc != MDB_NOTFOUND)
            lmdb_problem(v, "dead", rc);
    }
    for (size_t i = 0; i < n_rows; i++) {
        if (rows[i].dead_rows > rows[i].c.dead) {
            char where[300];
            snprintf(where, sizeof where, "cursor %s", rows[i].name);
            problem(v->rp, where, -1, "counts %" PRIu64 " dead event(s) but %" PRIu64 " dead letter(s) are stored",
                    rows[i].c.dead, rows[i].dead_rows);
        }
        fy_cursor_free(&rows[i].c);
    }
    free(rows);
}

static void check_imported(jv *v)
{
    MDB_dbi dbi;
    int exists;
    if (fy_imported_open(v->j, v->txn, 0, &dbi, &exists)) {
        problem(v->rp, FY_IMPORTED_DB, -1, "%s", ferry_last_error());
        return;
    }
    if (!exists)
        return;
    MDB_cursor *cur;
    MDB_val k, d;
    int rc = mdb_cursor_open(v->txn, dbi, &cur);
    if (rc) {
        lmdb_problem(v, FY_IMPORTED_DB, rc);
        return;
    }
    uint64_t bad = 0;
    for (rc = mdb_cursor_get(cur, &k, &d, MDB_FIRST); !rc; rc = mdb_cursor_get(cur, &k, &d, MDB_NEXT)) {
        if (k.mv_size != 24 || d.mv_size != 8 || fy_get_be64(d.mv_data) == 0 || fy_get_be64(d.mv_data) > v->last)
            if (bad++ == 0)
                problem(v->rp, FY_IMPORTED_DB, -1, "malformed row (key %zu bytes, value %zu bytes)", k.mv_size,
                        d.mv_size);
    }
    mdb_cursor_close(cur);
    if (rc != MDB_NOTFOUND)
        lmdb_problem(v, FY_IMPORTED_DB, rc);
    if (bad > 1)
        problem(v->rp, FY_IMPORTED_DB, -1, "%" PRIu64 " malformed rows in all", bad);
}

/* Eviction gaps (fy_gaps.h): every row decodes and is consistent. */
static void check_gaps(jv *v)
{
    fy_gap *g;
    size_t n;
    if (fy_gaps_list(v->j, v->txn, NULL, &g, &n)) {
        problem(v->rp, "gaps", -1, "%s", ferry_last_error());
        return;
    }
    for (size_t i = 0; i < n; i++) {
        /* An imported row counts another journal's seqs. */
        if (g[i].count == 0 || g[i].first_seq == 0 || g[i].first_seq > g[i].last_seq ||
            (!g[i].imported && g[i].last_seq > v->last) ||
            g[i].count > g[i].last_seq - g[i].first_seq + 1 || g[i].first_time > g[i].last_time) {
            char where[300];
            snprintf(where, sizeof where, "gap %" PRIu64 " of %s", g[i].key_seq, g[i].sink);
            problem(v->rp, where, -1, "inconsistent: seq %" PRIu64 "..%" PRIu64 ", count %" PRIu64,
                    g[i].first_seq, g[i].last_seq, g[i].count);
        }
    }
    fy_gaps_free(g, n);
}

static int verify_journal_lmdb(const char *dir, int json)
{
    fy_journal j;
    fy_open_opts o = {.readonly = 1};
    report rp = {dir, json, 0, {0}, 0};
    fy_buf_init(&rp.list, 0);
    ferry_err e = fy_journal_open(&j, dir, &o);
    if (e == FERRY_ENOENT || e == FERRY_EACCES || e == FERRY_ENOMEM)
        return fj_fail(e);
    uint64_t events = 0, dead = 0, damaged_dead = 0;
    int lmdb_failed = 0;
    if (e) {
        problem(&rp, "journal", -1, "%s", ferry_last_error());
        lmdb_failed = e != FERRY_EVERSION;
    } else {
        jv v = {&j, NULL, &rp, 0, 0, 0};
        if ((e = fy_txn_begin(&j, MDB_RDONLY, &v.txn))) {
            fy_journal_close(&j);
            return fj_fail(e);
        }
        if (fy_seq_last(&j, v.txn, &v.last))
            problem(&rp, "events", -1, "%s", ferry_last_error());
        check_meta(&v);
        events = check_events(&v);
        check_cursors_and_dead(&v, &dead);
        check_imported(&v);
        check_gaps(&v);
        lmdb_failed = v.lmdb_failed;
        damaged_dead = v.damaged_dead;
        mdb_txn_abort(v.txn);
        fy_journal_close(&j);
    }
    if (json) {
        fy_buf b;
        fy_buf_init(&b, 0);
        fy_buf_puts(&b, "{\"journal\":");
        fy_json_emit_string(&b, dir, strlen(dir));
        fy_buf_printf(&b, ",\"kind\":\"journal\",\"ok\":%s,\"events\":%" PRIu64 ",\"dead\":%" PRIu64
                          ",\"dead_damaged_records\":%" PRIu64 ",\"problems\":[%.*s]}\n",
                      rp.n ? "false" : "true", events, dead, damaged_dead, (int)rp.list.len, rp.list.data ? rp.list.data : "");
        fwrite(b.data, 1, b.len, stdout);
        fy_buf_free(&b);
    } else if (!rp.n) {
        printf("%s: OK: %" PRIu64 " event(s), %" PRIu64 " dead letter(s); records, sequence numbers, cursors and "
               "meta are consistent\n", dir, events, dead);
        if (damaged_dead)
            printf("%s: %" PRIu64 " dead letter(s) hold a damaged record (quarantined by ferry-replay; see "
                   FJ_PROG " dead)\n", dir, damaged_dead);
    } else {
        printf("%s: %" PRIu64 " problem(s) found\n", dir, rp.n);
    }
    fy_buf_free(&rp.list);
    if (!rp.n)
        return EX_OK;
    return lmdb_failed ? EX_IOERR : EX_DATAERR;
}

/* ---- pages (no LMDB) -------------------------------------------------------- */

static void page_problem(void *arg, uint64_t pgno, const char *msg)
{
    char where[48];
    if (pgno == UINT64_MAX)
        snprintf(where, sizeof where, "pages");
    else
        snprintf(where, sizeof where, "page %" PRIu64, pgno);
    problem(arg, where, -1, "%s", msg);
}

/* A walk is repeated (pw_walk_settled): only the last one's problems count. */
static void forget_problems(void *arg)
{
    report *r = arg;
    fy_buf_reset(&r->list);
    r->n = 0;
}

/* LMDB trusts its pages and may crash on damaged ones, so data.mdb is first
 * read with the checked page walker; only a journal whose pages are sound is
 * handed to LMDB, and even then in a child process, so that damage the
 * walker cannot see (a flipped bit inside a valid-looking node) is reported
 * rather than fatal. Damaged pages: exit 65, and salvage is the remedy. */
static int verify_journal(const char *dir, int json)
{
    char data[4200];
    snprintf(data, sizeof data, "%s/data.mdb", dir);
    struct stat st;
    if (stat(data, &st) == 0 && st.st_size > 0) {
        report rp = {dir, json, 0, {0}, 1};
        fy_buf_init(&rp.list, 0);
        pw_result r;
        /* Damage seen while a writer committed (r.moved) is looked at again. */
        if (pw_walk_settled(data, 0, &r, page_problem, &rp, forget_problems) == 0) {
            uint64_t damaged = r.damaged_pages, events = r.db[PW_EVENTS].n, dead = r.db[PW_DEAD].n;
            int confirmed = pw_found_damage(&r) && !r.moved;
            pw_free(&r);
            if (confirmed) {
                if (json) {
                    fy_buf b;
                    fy_buf_init(&b, 0);
                    fy_buf_puts(&b, "{\"journal\":");
                    fy_json_emit_string(&b, dir, strlen(dir));
                    fy_buf_printf(&b, ",\"kind\":\"journal\",\"ok\":false,\"damaged_pages\":%" PRIu64
                                      ",\"events\":%" PRIu64 ",\"dead\":%" PRIu64 ",\"problems\":[%.*s]}\n",
                                  damaged, events, dead, (int)rp.list.len, rp.list.data ? rp.list.data : "");
                    fwrite(b.data, 1, b.len, stdout);
                    fy_buf_free(&b);
                } else {
                    if (rp.list.len)
                        fwrite(rp.list.data, 1, rp.list.len, stdout);
                    printf("%s: %" PRIu64 " problem(s) found: %" PRIu64 " damaged page(s); %" PRIu64
                           " event(s) readable. Stop ferry-record and ferry-replay, then run: " FJ_PROG
                           " -j %s salvage\n", dir, rp.n, damaged, events, dir);
                }
                fy_buf_free(&rp.list);
                return EX_DATAERR;
            }
        }
        fy_buf_free(&rp.list);
    }
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    if (pid < 0) /* no child: check in this process */
        return verify_journal_lmdb(dir, json);
    if (pid == 0) {
        int code = verify_journal_lmdb(dir, json);
        fflush(stdout);
        _exit(code);
    }
    int status;
    while (waitpid(pid, &status, 0) < 0)
        if (errno != EINTR)
            return EX_OSERR;
    if (WIFEXITED(status))
        return WEXITSTATUS(status);
    int sig = WIFSIGNALED(status) ? WTERMSIG(status) : 0;
    if (json) {
        fy_buf b;
        fy_buf_init(&b, 0);
        fy_buf_puts(&b, "{\"journal\":");
        fy_json_emit_string(&b, dir, strlen(dir));
        fy_buf_printf(&b, ",\"kind\":\"journal\",\"ok\":false,\"problems\":[{\"where\":\"journal\",\"message\":"
                          "\"LMDB crashed reading the journal (signal %d): damaged pages; run salvage\"}]}\n", sig);
        fwrite(b.data, 1, b.len, stdout);
        fy_buf_free(&b);
    } else {
        printf("%s: LMDB crashed reading the journal (signal %d): its pages are damaged. Stop ferry-record and "
               "ferry-replay, then run: " FJ_PROG " -j %s salvage\n", dir, sig, dir);
    }
    return EX_DATAERR;
}

int fj_cmd_verify(const char *dir, int argc, char **argv)
{
    static const struct option opts[] = {
        {"journal", required_argument, NULL, 'j'},
        {"json", no_argument, NULL, 'J'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    int json = 0, c;
    optind = 0;
    while ((c = getopt_long(argc, argv, "j:h", opts, NULL)) != -1) {
        switch (c) {
        case 'j': dir = optarg; break;
        case 'J': json = 1; break;
        case 'h':
            printf("Usage: " FJ_PROG " verify [--json] [-j DIR | CAPTURE | DIR]\n");
            return EX_OK;
        default: return fj_usage("verify", "bad option");
        }
    }
    if (argc - optind > 1)
        return fj_usage("verify", "one file or journal at a time");
    if (optind < argc) {
        struct stat st;
        const char *path = argv[optind];
        if (stat(path, &st) != 0) {
            fprintf(stderr, FJ_PROG ": %s: no such file or journal\n", path);
            return EX_NOINPUT;
        }
        return S_ISDIR(st.st_mode) ? verify_journal(path, json) : verify_capture(path, json);
    }
    if (!dir)
        return fj_usage("verify", "no journal directory: pass -j DIR or set FERRY_JOURNAL");
    return verify_journal(dir, json);
}

/* import.c: ferry-journal import CAPTURE [-j DIR].
 *
 * The capture is checked completely before anything is written; then every
 * record not imported before goes into the journal in one write transaction
 * (all or nothing), under a new sequence number that keeps the capture's
 * order: max(next free seq, original seq), so a capture imported into a new
 * journal keeps its original numbers. The `imported` database remembers
 * (source journal id, source seq) -> seq, so importing the same capture again
 * adds nothing, and captures of any number of devices can share a journal.
 * Delivery state travels: delivered events are marked done in the cursor of
 * the same destination, dead ones become dead letters (same status, reason
 * and time), pending ones stay pending. Unreported eviction gaps (capture
 * 1.1) become sealed gap rows that keep their journal's id, so the loss is
 * reported from here with the insert_id the device would have used. */
#include "fj.h"
#include "fy_cli.h"
#include "fy_fail.h"
#include "fy_gaps.h"

#include <getopt.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

typedef struct idest {
    char name[256];
    fy_cursor c;
    int is_new, touched;
    uint64_t *done;
    size_t n_done;
    uint64_t delivered, dead;
} idest;

static void print_problem(void *arg, const char *where, uint64_t offset, const char *msg)
{
    fprintf(stderr, "%s: %s at offset %" PRIu64 ": %s\n", (const char *)arg, where, offset, msg);
}

/* Reads the whole capture, checking everything; returns the problems. */
static ferry_err check_capture(const fj_map *m, const char *path, uint64_t *problems)
{
    fy_capr r;
    ferry_err e = fy_capr_open(&r, m->p, m->len, print_problem, (void *)(uintptr_t)path);
    if (e == FERRY_OK) {
        fy_cap_entry en;
        int got;
        while ((got = fy_capr_next(&r, &en)) > 0)
            ;
        if (got < 0)
            e = FERRY_EIO;
    } else if (e != FERRY_ENOMEM) {
        e = FERRY_OK; /* reported as a problem */
    }
    *problems = r.problems;
    fy_capr_close(&r);
    return e;
}

static ferry_err add_done(idest *d, uint64_t seq)
{
    uint64_t *n = realloc(d->done, (d->n_done + 1) * sizeof *n);
    if (!n)
        return fy_fail(FERRY_ENOMEM, "out of memory");
    d->done = n;
    d->done[d->n_done++] = seq;
    return FERRY_OK;
}

typedef struct result {
    unsigned char src_id[16];
    uint64_t records, imported, present, first, last, pending, delivered, dead;
    uint64_t gaps, gaps_present; /* eviction gaps added, already here */
    int same_journal;
} result;

/* The capture's eviction gaps, as this journal's imported gap rows. */
static ferry_err import_gaps(fy_journal *j, MDB_txn *txn, const fy_cap_header *h, result *res)
{
    if (!h->n_gaps)
        return FERRY_OK;
    fy_gap *g = calloc(h->n_gaps, sizeof *g);
    if (!g)
        return fy_fail(FERRY_ENOMEM, "out of memory");
    ferry_err e = FERRY_OK;
    for (size_t i = 0; i < h->n_gaps && !e; i++) {
        const fy_cap_gap *c = &h->gaps[i];
        snprintf(g[i].sink, sizeof g[i].sink, "%.*s", (int)c->dest.n, c->dest.p);
        g[i].imported = 1;
        memcpy(g[i].journal_id, c->journal_id, 16);
        g[i].first_seq = c->first_seq, g[i].last_seq = c->last_seq, g[i].count = c->count;
        g[i].first_time = c->first_time, g[i].last_time = c->last_time;
        g[i].first_recorded = c->first_recorded, g[i].last_recorded = c->last_recorded, g[i].at_ms = c->at_ms;
        if ((c->has_device && !(g[i].device_id = strndup(c->device_id.p, c->device_id.n))) ||
            (c->has_user && !(g[i].user_id = strndup(c->user_id.p, c->user_id.n))))
            e = fy_fail(FERRY_ENOMEM, "out of memory");
    }
    if (!e)
        e = fy_gaps_import(j, txn, g, h->n_gaps, &res->gaps, &res->gaps_present);
    fy_gaps_free(g, h->n_gaps);
    return e;
}

static ferry_err import_txn(fy_journal *j, const fj_map *m, const char *path, int progress, result *res)
{
    fy_capr r;
    MDB_txn *txn = NULL;
    idest *ds = NULL;
    size_t n_ds = 0;
    fj_progress prog;
    int got = 0;
    ferry_err e = fy_capr_open(&r, m->p, m->len, NULL, NULL);
    if (e || r.problems) {
        fy_capr_close(&r);
        return e ? e : fy_fail(FERRY_ECORRUPT, "%s changed while it was imported; nothing imported", path);
    }
    res->records = r.h.count;
    memcpy(res->src_id, r.h.journal_id, 16);
    if (!memcmp(r.h.journal_id, j->id, 16)) {
        res->same_journal = 1;
        res->present = r.h.count;
        fy_capr_close(&r);
        return FERRY_OK;
    }
    if ((e = fy_txn_begin(j, 0, &txn)))
        goto out;
    MDB_dbi imp;
    int exists;
    uint64_t next;
    if ((e = fy_imported_open(j, txn, 1, &imp, &exists)) || (e = fy_seq_next(j, txn, &next)))
        goto out;
    uint64_t before = next - 1;

    /* Destinations: the capture's, plus (when the journal has events but no
     * cursor row yet) the implied default, written out so that it stays
     * registered. */
    MDB_stat cst;
    int rc = mdb_stat(txn, j->cursors, &cst);
    if (rc) {
        e = fy_fail_lmdb(rc, "journal %s: reading cursors", j->path);
        goto out;
    }
    n_ds = r.h.n_dests + 1;
    ds = calloc(n_ds, sizeof *ds);
    if (!ds) {
        e = fy_fail(FERRY_ENOMEM, "out of memory");
        goto out;
    }
    for (size_t i = 0; i < r.h.n_dests; i++)
        snprintf(ds[i].name, sizeof ds[i].name, "%.*s", (int)r.h.dests[i].n, r.h.dests[i].p);
    snprintf(ds[r.h.n_dests].name, sizeof ds[r.h.n_dests].name, "%s", FY_DEFAULT_SINK);
    for (size_t i = 0; i < n_ds; i++) {
        int found;
        if ((e = fy_cursor_get(j, txn, ds[i].name, &ds[i].c, &found)))
            goto out;
        /* A journal that had events but no cursor row sends them to the
         * implied default: it stays registered. A new journal takes the
         * capture's destinations as they are. */
        int implied = cst.ms_entries == 0 && before > 0 && !strcmp(ds[i].name, FY_DEFAULT_SINK);
        if (!found && implied) {
            ds[i].is_new = ds[i].touched = 1; /* as it was implied: nothing delivered */
        } else if (!found && i < r.h.n_dests) {
            /* A destination new to this journal starts at the import: the
             * journal's own earlier events were not meant for it. */
            ds[i].is_new = ds[i].touched = 1;
            ds[i].c.delivered = before;
        }
        for (size_t k = 0; k < i; k++)
            if (!strcmp(ds[k].name, ds[i].name))
                ds[i].touched = 0, ds[i].is_new = 0, ds[i].name[0] = '\0'; /* listed twice */
    }

    fj_progress_init(&prog, progress, "import", r.h.count);
    fy_cap_entry en;
    uint64_t done = 0;
    while (!e && (got = fy_capr_next(&r, &en)) > 0) {
        fj_progress_tick(&prog, ++done);
        if (!en.intact || r.problems) {
            e = fy_fail(FERRY_ECORRUPT, "%s changed while it was imported; nothing imported", path);
            break;
        }
        uint64_t target;
        int found;
        if ((e = fy_imported_get(j, txn, imp, r.h.journal_id, en.seq, &target, &found)))
            break;
        if (found) {
            res->present++;
            continue;
        }
        uint64_t t = en.seq > next ? en.seq : next;
        next = t + 1;
        if (!res->imported++)
            res->first = t;
        res->last = t;
        if ((en.flags & FY_CAP_FLAG_STORED) && (e = fy_event_put_at(j, txn, t, en.rec, en.rec_len)))
            break;
        int pending = 0, dead = 0;
        for (size_t i = 0; i < r.h.n_dests && !e; i++) {
            const fy_cap_state *st = &en.states[i];
            idest *d = &ds[i];
            if (!d->name[0]) /* a duplicate name: the first one counts */
                continue;
            if (st->state == FY_CAP_PENDING) {
                pending = 1;
                continue;
            }
            if (st->state == FY_CAP_DEAD) {
                dead = 1;
                e = fy_dead_put_at(j, txn, d->name, t, st->status, st->reason.p, st->reason.n, st->at_ms, en.rec,
                                   en.rec_len);
                d->dead++;
            } else {
                d->delivered++;
            }
            d->touched = 1;
            if (!e)
                e = add_done(d, t);
        }
        res->pending += pending && !dead ? 1u : 0u;
        res->dead += dead ? 1u : 0u;
        res->delivered += !pending && !dead ? 1u : 0u;
        if (!e)
            e = fy_imported_put(j, txn, imp, r.h.journal_id, en.seq, t);
    }
    fj_progress_end(&prog);
    if (!e && (got < 0 || r.problems))
        e = fy_fail(FERRY_ECORRUPT, "%s changed while it was imported; nothing imported", path);
    for (size_t i = 0; i < n_ds && !e; i++) {
        idest *d = &ds[i];
        if (!d->touched)
            continue;
        if (d->n_done && (e = fy_cursor_mark_done(j, txn, &d->c, d->done, d->n_done)))
            break;
        d->c.sent += d->delivered;
        d->c.dead += d->dead;
        e = fy_cursor_put(j, txn, d->name, &d->c);
    }
    if (!e)
        e = import_gaps(j, txn, &r.h, res);
    /* A number given to a dead letter that is not stored must not be handed
     * out again either. */
    uint64_t floor;
    if (!e && res->imported && !(e = fy_meta_get_u64(j, txn, "seq_floor", &floor)) && floor < res->last + 1)
        e = fy_meta_put_u64(j, txn, "seq_floor", res->last + 1);
    if (!e) {
        uint64_t live, extra;
        if (!(e = fy_live_bytes(j, txn, &live)) && !(e = fy_dbi_bytes(j, txn, imp, &extra))) {
            uint64_t quota = fy_journal_quota(j);
            if (live + extra > quota)
                e = fy_fail(FERRY_EFULL, "journal %s is too small for this capture: %.1f MiB needed, %.1f MiB usable; "
                            "import with --max-size (nothing imported)", j->path,
                            (double)(live + extra) / 1048576.0, (double)quota / 1048576.0);
        }
    }
    if (!e) {
        e = fy_txn_commit(j, txn, "the import");
        txn = NULL;
    }
out:
    if (e && strstr(ferry_last_error(), "MDB_MAP_FULL"))
        e = fy_fail(FERRY_EFULL, "journal %s is too small for this capture; import with --max-size (nothing imported)",
                    j->path);
    if (txn)
        mdb_txn_abort(txn);
    for (size_t i = 0; i < n_ds; i++) {
        fy_cursor_free(&ds[i].c);
        free(ds[i].done);
    }
    free(ds);
    fy_capr_close(&r);
    return e;
}

int fj_cmd_import(const char *dir, int argc, char **argv)
{
    enum { O_MAX = 256, O_JSON, O_PROGRESS };
    static const struct option opts[] = {
        {"journal", required_argument, NULL, 'j'}, {"max-size", required_argument, NULL, O_MAX},
        {"json", no_argument, NULL, O_JSON},       {"progress", no_argument, NULL, O_PROGRESS},
        {"help", no_argument, NULL, 'h'},          {NULL, 0, NULL, 0},
    };
    int json = 0, progress = 0, c;
    uint64_t max_bytes = 0;
    optind = 0;
    while ((c = getopt_long(argc, argv, "j:h", opts, NULL)) != -1) {
        switch (c) {
        case 'j': dir = optarg; break;
        case O_MAX:
            if (fy_cli_parse_size(optarg, &max_bytes))
                return fj_usage("import", "'%s' is not a size (e.g. 64M)", optarg);
            break;
        case O_JSON: json = 1; break;
        case O_PROGRESS: progress = 1; break;
        case 'h':
            printf("Usage: " FJ_PROG " import CAPTURE [-j DIR] [--max-size SIZE] [--progress] [--json]\n");
            return EX_OK;
        default: return fj_usage("import", "bad option");
        }
    }
    if (argc - optind != 1)
        return fj_usage("import", "give one capture file");
    if (!dir)
        return fj_usage("import", "no journal directory: pass -j DIR or set FERRY_JOURNAL");
    const char *path = argv[optind];
    fj_map m;
    ferry_err e = fj_map_file(path, &m);
    if (e)
        return fj_fail(e);
    uint64_t problems = 0;
    if ((e = check_capture(&m, path, &problems))) {
        fj_unmap(&m);
        return fj_fail(e);
    }
    if (problems) {
        fprintf(stderr, FJ_PROG ": import refused: %s has %" PRIu64 " problem(s) (see above); nothing imported\n", path,
                problems);
        fj_unmap(&m);
        return EX_DATAERR;
    }
    /* A new journal gets room for the capture: 4 times its size, at least
     * the default bound. */
    char data[4200];
    struct stat st;
    snprintf(data, sizeof data, "%s/data.mdb", dir);
    int is_new = stat(data, &st) != 0 || st.st_size == 0;
    if (!max_bytes && is_new) {
        uint64_t want = ((uint64_t)m.len * 4 + (1u << 20) - 1) & ~(uint64_t)((1u << 20) - 1);
        max_bytes = want > FY_DEFAULT_MAX_BYTES ? want : FY_DEFAULT_MAX_BYTES;
    }
    fy_journal j;
    fy_open_opts o = {.create = 1, .max_bytes = max_bytes};
    if ((e = fy_journal_open(&j, dir, &o))) {
        fj_unmap(&m);
        return fj_fail(e);
    }
    result res;
    memset(&res, 0, sizeof res);
    e = import_txn(&j, &m, path, progress, &res);
    char src[33], dst[33];
    fy_hex(res.src_id, 16, src);
    fy_hex(j.id, 16, dst);
    fy_journal_close(&j);
    fj_unmap(&m);
    if (e)
        return fj_fail(e);
    if (json) {
        fy_buf b;
        fy_buf_init(&b, 0);
        fy_buf_puts(&b, "{\"capture\":");
        fy_json_emit_string(&b, path, strlen(path));
        fy_buf_puts(&b, ",\"journal\":");
        fy_json_emit_string(&b, dir, strlen(dir));
        fy_buf_printf(&b, ",\"journal_id\":\"%s\",\"source_journal_id\":\"%s\",\"records\":%" PRIu64
                          ",\"imported\":%" PRIu64 ",\"already_present\":%" PRIu64 ",\"first_seq\":%" PRIu64
                          ",\"last_seq\":%" PRIu64 ",\"pending\":%" PRIu64 ",\"delivered\":%" PRIu64 ",\"dead\":%" PRIu64
                          ",\"gaps\":%" PRIu64 ",\"gaps_already_present\":%" PRIu64 "}\n",
                      dst, src, res.records, res.imported, res.present, res.first, res.last, res.pending,
                      res.delivered, res.dead, res.gaps, res.gaps_present);
        fwrite(b.data, 1, b.len, stdout);
        fy_buf_free(&b);
    } else if (res.same_journal) {
        printf("%s comes from this journal (%s): nothing imported\n", path, dst);
    } else if (res.imported) {
        printf("imported %" PRIu64 " of %" PRIu64 " event(s) from %s (journal %s) as seq %" PRIu64 "..%" PRIu64
               ": %" PRIu64 " pending, %" PRIu64 " delivered, %" PRIu64 " dead; %" PRIu64 " already present\n",
               res.imported, res.records, path, src, res.first, res.last, res.pending, res.delivered, res.dead,
               res.present);
    } else {
        printf("nothing imported from %s (journal %s): all %" PRIu64 " event(s) already present\n", path, src,
               res.present);
    }
    if (!json && res.gaps)
        printf("and %" PRIu64 " unreported eviction gap(s): ferry-replay reports them as \"%s\"\n", res.gaps,
               FY_LOSS_EVENT_TYPE);
    return EX_OK;
}

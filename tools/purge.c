/* purge.c: ferry-journal purge --delivered | --all --yes.
 *
 * --delivered deletes every stored event that every destination has (the
 * watermark or the out-of-order list), counted in meta `pruned`; --all
 * deletes every event and every dead letter (opt-out, end of life), counted
 * in meta `purged`. Deletion goes through fy_events_delete, which raises the
 * sequence floor, so numbers are never handed out again. Cursors, counters
 * and the import bookkeeping stay: they hold no event data. */
#include "fj.h"
#include "fy_cli.h"
#include "fy_fail.h"
#include "fy_gaps.h"

#include <getopt.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

typedef struct run {
    uint64_t from, to;
} run;

static ferry_err purge_delivered(fy_journal *j, MDB_txn *txn, uint64_t *deleted)
{
    fj_dest *ds = NULL;
    size_t n_ds = 0;
    run *runs = NULL;
    size_t n_runs = 0;
    MDB_cursor *cur;
    MDB_val k, d;
    ferry_err e = FERRY_OK;
    int rc = mdb_cursor_open(txn, j->cursors, &cur);
    if (rc)
        return fy_fail_lmdb(rc, "journal %s: reading cursors", j->path);
    for (rc = mdb_cursor_get(cur, &k, &d, MDB_FIRST); !rc && !e; rc = mdb_cursor_get(cur, &k, &d, MDB_NEXT)) {
        if (k.mv_size == 0 || k.mv_size > FY_CAP_MAX_NAME)
            continue;
        fj_dest *nd = realloc(ds, (n_ds + 1) * sizeof *nd);
        if (!nd) {
            e = fy_fail(FERRY_ENOMEM, "out of memory");
            break;
        }
        ds = nd;
        memset(&ds[n_ds], 0, sizeof *ds);
        memcpy(ds[n_ds].name, k.mv_data, k.mv_size);
        int found;
        if (!(e = fy_cursor_get(j, txn, ds[n_ds].name, &ds[n_ds].c, &found)))
            n_ds++;
    }
    mdb_cursor_close(cur);
    if (!e && rc != MDB_NOTFOUND)
        e = fy_fail_lmdb(rc, "journal %s: reading cursors", j->path);
    /* No destination registered: the implied one has nothing yet. */
    if (!e && n_ds && !(rc = mdb_cursor_open(txn, j->events, &cur))) {
        int in_run = 0;
        for (rc = mdb_cursor_get(cur, &k, &d, MDB_FIRST); !rc && !e; rc = mdb_cursor_get(cur, &k, &d, MDB_NEXT)) {
            uint64_t seq = k.mv_size == 8 ? fy_get_be64(k.mv_data) : 0;
            int done = seq != 0;
            for (size_t i = 0; i < n_ds && done; i++)
                done = fy_cursor_is_done(&ds[i].c, seq);
            if (!done) {
                in_run = 0;
                continue;
            }
            if (in_run) {
                runs[n_runs - 1].to = seq;
                continue;
            }
            run *nr = realloc(runs, (n_runs + 1) * sizeof *nr);
            if (!nr) {
                e = fy_fail(FERRY_ENOMEM, "out of memory");
                break;
            }
            runs = nr;
            runs[n_runs].from = runs[n_runs].to = seq;
            n_runs++;
            in_run = 1;
        }
        mdb_cursor_close(cur);
        if (!e && rc != MDB_NOTFOUND)
            e = fy_fail_lmdb(rc, "journal %s: reading events", j->path);
    } else if (!e && rc) {
        e = fy_fail_lmdb(rc, "journal %s: reading events", j->path);
    }
    *deleted = 0;
    for (size_t i = 0; i < n_runs && !e; i++) {
        uint64_t n;
        e = fy_events_delete(j, txn, runs[i].from, runs[i].to, 0, &n);
        *deleted += n;
    }
    if (!e && *deleted)
        e = fy_meta_add_u64(j, txn, "pruned", *deleted);
    for (size_t i = 0; i < n_ds; i++)
        fy_cursor_free(&ds[i].c);
    free(ds);
    free(runs);
    return e;
}

static ferry_err purge_all(fy_journal *j, MDB_txn *txn, uint64_t *events, uint64_t *dead)
{
    uint64_t next;
    MDB_stat st;
    ferry_err e = fy_seq_next(j, txn, &next);
    if (e)
        return e;
    int rc = mdb_stat(txn, j->dead, &st);
    if (rc)
        return fy_fail_lmdb(rc, "journal %s: reading dead letters", j->path);
    *dead = st.ms_entries;
    if ((e = fy_events_delete(j, txn, 0, UINT64_MAX, 0, events)))
        return e;
    if ((rc = mdb_drop(txn, j->dead, 0)))
        return fy_fail_lmdb(rc, "journal %s: deleting dead letters", j->path);
    uint64_t gaps; /* they name devices: an opt-out leaves none behind */
    if ((e = fy_gaps_clear(j, txn, &gaps)))
        return e;
    /* Dead letters held numbers too: none of them is handed out again. */
    uint64_t floor;
    if ((e = fy_meta_get_u64(j, txn, "seq_floor", &floor)))
        return e;
    if (floor < next && (e = fy_meta_put_u64(j, txn, "seq_floor", next)))
        return e;
    return *events ? fy_meta_add_u64(j, txn, "purged", *events) : FERRY_OK;
}

int fj_cmd_purge(fy_journal *j, int argc, char **argv)
{
    enum { O_DELIVERED = 256, O_ALL, O_YES, O_JSON };
    static const struct option opts[] = {
        {"delivered", no_argument, NULL, O_DELIVERED}, {"all", no_argument, NULL, O_ALL},
        {"yes", no_argument, NULL, O_YES},             {"json", no_argument, NULL, O_JSON},
        {"help", no_argument, NULL, 'h'},              {NULL, 0, NULL, 0},
    };
    int delivered = 0, all = 0, yes = 0, json = 0, c;
    optind = 0;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case O_DELIVERED: delivered = 1; break;
        case O_ALL: all = 1; break;
        case O_YES: yes = 1; break;
        case O_JSON: json = 1; break;
        case 'h': printf("Usage: " FJ_PROG " [-j DIR] purge --delivered | --all --yes [--json]\n"); return EX_OK;
        default: return fj_usage("purge", "bad option");
        }
    }
    if (optind < argc)
        return fj_usage("purge", "unexpected argument '%s'", argv[optind]);
    if (delivered == all)
        return fj_usage("purge", "give --delivered or --all");
    if (all && !yes)
        return fj_usage("purge", "--all deletes every event, delivered or not, and every dead letter; "
                                 "add --yes to confirm");
    MDB_txn *txn;
    uint64_t events = 0, dead = 0, next = 0;
    ferry_err e = fy_txn_begin(j, 0, &txn);
    if (e)
        return fj_fail(e);
    e = all ? purge_all(j, txn, &events, &dead) : purge_delivered(j, txn, &events);
    if (!e)
        e = fy_seq_next(j, txn, &next);
    if (e) {
        mdb_txn_abort(txn);
        return fj_fail(e);
    }
    if ((e = fy_txn_commit(j, txn, "the purge")))
        return fj_fail(e);
    if (json)
        printf("{\"purged\":\"%s\",\"events\":%" PRIu64 ",\"dead\":%" PRIu64 ",\"next_seq\":%" PRIu64 "}\n",
               all ? "all" : "delivered", events, dead, next);
    else if (all)
        printf("purged %" PRIu64 " event(s) and %" PRIu64 " dead letter(s); the next event gets seq %" PRIu64 "\n",
               events, dead, next);
    else
        printf("purged %" PRIu64 " delivered event(s); the next event gets seq %" PRIu64 "\n", events, next);
    return EX_OK;
}

/* tail.c: ferry-journal tail [-n N] [-f]: the last N records as JSON Lines
 * (dump's format), then, with -f, every new one as it is recorded, like
 * `journalctl -f`. Each look is a short read transaction: never a lock that
 * a recorder or the replayer waits for. */
#include "fj.h"
#include "fy_cli.h"
#include "fy_fail.h"

#include <getopt.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define CHUNK 1024 /* records per read transaction */
#define POLL_MS 200

/* Prints up to CHUNK records from *next on; *more when there may be more. */
static ferry_err print_from(fy_journal *j, uint64_t *next, int *more, uint64_t *bad)
{
    MDB_txn *txn;
    MDB_cursor *cur;
    ferry_err e = fy_txn_begin(j, MDB_RDONLY, &txn);
    if (e)
        return e;
    fy_buf out;
    fy_buf_init(&out, 0);
    int rc = mdb_cursor_open(txn, j->events, &cur);
    unsigned char kb[8];
    fy_put_be64(kb, *next);
    MDB_val k = {8, kb}, d;
    int n = 0;
    *more = 0;
    for (rc = rc ? rc : mdb_cursor_get(cur, &k, &d, MDB_SET_RANGE); !rc; rc = mdb_cursor_get(cur, &k, &d, MDB_NEXT)) {
        if (n++ == CHUNK) {
            *more = 1;
            break;
        }
        uint64_t seq = k.mv_size == 8 ? fy_get_be64(k.mv_data) : *next;
        *next = seq + 1;
        fy_record r;
        if (fy_record_decode(d.mv_data, d.mv_size, &r)) {
            fprintf(stderr, FJ_PROG ": journal %s: seq %" PRIu64 ": %s\n", j->path, seq, ferry_last_error());
            (*bad)++;
            continue;
        }
        e = fj_json_line(&out, seq, &r);
        fy_record_free(&r); /* strings point into the map: written out before the txn ends */
        if (e)
            break;
    }
    if (!e && rc && rc != MDB_NOTFOUND)
        e = fy_fail_lmdb(rc, "journal %s: reading events", j->path);
    mdb_cursor_close(cur);
    mdb_txn_abort(txn);
    if (out.len && fwrite(out.data, 1, out.len, stdout) != out.len && !e)
        e = fy_fail(FERRY_EIO, "writing the output");
    fy_buf_free(&out);
    if (!e && fflush(stdout) != 0)
        e = fy_fail(FERRY_EIO, "writing the output");
    return e;
}

/* The seq of the n-th last stored record (1 when fewer), or past the end. */
static ferry_err start_of_last(fy_journal *j, uint64_t n, uint64_t *start)
{
    MDB_txn *txn;
    MDB_cursor *cur;
    MDB_val k, d;
    ferry_err e = fy_txn_begin(j, MDB_RDONLY, &txn);
    if (e)
        return e;
    int rc = mdb_cursor_open(txn, j->events, &cur);
    if (!rc)
        rc = mdb_cursor_get(cur, &k, &d, MDB_LAST);
    *start = 1;
    if (rc == MDB_NOTFOUND) {
        rc = 0;
    } else if (!rc && n == 0) {
        *start = fy_get_be64(k.mv_data) + 1;
    } else if (!rc) {
        for (uint64_t i = 1; i < n && !rc; i++)
            rc = mdb_cursor_get(cur, &k, &d, MDB_PREV);
        if (rc == MDB_NOTFOUND)
            rc = 0, *start = 1;
        else if (!rc)
            *start = fy_get_be64(k.mv_data);
    }
    if (rc)
        e = fy_fail_lmdb(rc, "journal %s: reading events", j->path);
    mdb_cursor_close(cur);
    mdb_txn_abort(txn);
    return e;
}

int fj_cmd_tail(fy_journal *j, int argc, char **argv)
{
    static const struct option opts[] = {
        {"lines", required_argument, NULL, 'n'},
        {"follow", no_argument, NULL, 'f'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    int follow = 0, c;
    int64_t n = 10;
    optind = 0;
    while ((c = getopt_long(argc, argv, "n:fh", opts, NULL)) != -1) {
        switch (c) {
        case 'n':
            if (fy_cli_parse_i64(optarg, &n) || n < 0)
                return fj_usage("tail", "'%s' is not a number of records", optarg);
            break;
        case 'f': follow = 1; break;
        case 'h': printf("Usage: " FJ_PROG " [-j DIR] tail [-n N] [-f]\n"); return EX_OK;
        default: return fj_usage("tail", "bad option");
        }
    }
    if (optind < argc)
        return fj_usage("tail", "unexpected argument '%s'", argv[optind]);
    fj_catch_signals();
    uint64_t next, bad = 0;
    int more = 0;
    ferry_err e = start_of_last(j, (uint64_t)n, &next);
    while (!e && !fj_stop) {
        if ((e = print_from(j, &next, &more, &bad)) || fj_stop)
            break;
        if (more)
            continue;
        if (!follow)
            break;
        struct timespec ts = {0, POLL_MS * 1000000L};
        nanosleep(&ts, NULL);
    }
    if (e)
        return fj_fail(e);
    if (bad) {
        fprintf(stderr, FJ_PROG ": journal %s: %" PRIu64 " record(s) could not be decoded\n", j->path, bad);
        return EX_DATAERR;
    }
    return EX_OK;
}

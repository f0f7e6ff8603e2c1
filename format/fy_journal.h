/* fy_journal.h: the LMDB journal every ferry process opens (internal).
 *
 * One LMDB environment (a directory) with its named databases (meta, events,
 * cursors, dead; imported and gaps when present); FORMAT.md
 * describes the layout. Rules kept here so that no caller can break them:
 *   - sequence numbers come from fy_seq_next() inside the write transaction;
 *   - events are deleted only through fy_events_delete(), which raises the
 *     sequence floor so that a number is never handed out twice;
 *   - no transaction is ever held across network I/O (callers' duty). */
#ifndef FY_JOURNAL_H
#define FY_JOURNAL_H

#include <lmdb.h>
#include <stddef.h>
#include <stdint.h>

#include "ferry_error.h"

#define FY_FORMAT_MAJOR 1u
#define FY_FORMAT_MINOR 1u /* 1.1: records may carry elements 4 and 5 */
#define FY_DEFAULT_MAX_BYTES (64ull << 20)
#define FY_MIN_MAX_BYTES (1ull << 20)
#define FY_DEFAULT_SINK "amplitude"
/* Live data may fill this share of the map; the rest is room for LMDB's
 * copy-on-write pages and its free list, so that deleting (eviction) always
 * fits even when the journal is "full". */
#define FY_QUOTA_PERCENT 75u

typedef struct fy_journal {
    MDB_env *env;
    MDB_dbi meta, events, cursors, dead;
    MDB_dbi imported; /* provenance of imported events (FORMAT.md); 0 when absent */
    MDB_dbi gaps;     /* eviction gaps (fy_gaps.h); 0 when absent */
    char *path;
    uint64_t map_bytes; /* the bound this process enforces */
    unsigned page_size;
    unsigned char id[16];
    uint32_t format_major, format_minor;
    int readonly;
    void *map_base;   /* where LMDB mapped data.mdb (found lazily; NULL: unknown) */
    int commit_io_failed; /* a commit failed with an OS error (write, fdatasync, meta):
                             what reached the disk is unknown ("fsyncgate") */
    size_t map_len;
} fy_journal;

typedef struct fy_open_opts {
    int create;         /* create the directory and journal when missing */
    int readonly;       /* inspection only (LMDB still writes lock.mdb) */
    int relaxed;        /* MDB_NOMETASYNC: see FORMAT.md, "Durability" */
    uint64_t max_bytes; /* 0: keep the journal's bound (new journal: default) */
} fy_open_opts;

ferry_err fy_journal_open(fy_journal *j, const char *dir, const fy_open_opts *o);
void fy_journal_close(fy_journal *j);

/* Drops this process's page-table entries for the journal's map; the pages
 * stay in the page cache. A long drain reads the whole file once, and would
 * otherwise keep all of it counted in the process's resident memory. Call
 * with no transaction open. Linux: the map is found in /proc/self/maps. */
void fy_journal_release_pages(fy_journal *j);

/* mdb_txn_begin that adopts a map grown by another process. */
ferry_err fy_txn_begin(fy_journal *j, unsigned flags, MDB_txn **txn);
/* Commits; on failure the transaction is already gone (never abort it). An
 * OS error (positive errno from LMDB) also sets j->commit_io_failed. */
ferry_err fy_txn_commit(fy_journal *j, MDB_txn *txn, const char *what);

/* Big-endian 8-byte keys: byte order is numeric order, on every machine. */
void fy_put_be64(unsigned char out[8], uint64_t v);
uint64_t fy_get_be64(const unsigned char in[8]);
/* An MDB_val over the caller's bytes (LMDB only reads through it). */
static inline MDB_val fy_mval(const void *p, size_t n)
{
    MDB_val v = {n, (void *)(uintptr_t)p};
    return v;
}
/* The key of the dead and gaps databases: the destination name, 0x00, then
 * seq (u64 BE). Returns its length, 0 when it does not fit in cap bytes. */
size_t fy_sink_seq_key(unsigned char *kb, size_t cap, const char *sink, uint64_t seq);

/* Meta counters (u64, big-endian). Missing reads as 0. */
ferry_err fy_meta_get_u64(fy_journal *j, MDB_txn *txn, const char *key, uint64_t *v);
ferry_err fy_meta_put_u64(fy_journal *j, MDB_txn *txn, const char *key, uint64_t v);
ferry_err fy_meta_add_u64(fy_journal *j, MDB_txn *txn, const char *key, uint64_t delta);

/* The next sequence number: max(last stored + 1, floor). */
ferry_err fy_seq_next(fy_journal *j, MDB_txn *txn, uint64_t *next);
/* The last sequence number ever handed out (0 if none). */
ferry_err fy_seq_last(fy_journal *j, MDB_txn *txn, uint64_t *last);

/* Deletes stored events with from <= seq <= to, at most max_count of them
 * (0 = no limit), and raises the floor past the last one deleted. */
ferry_err fy_events_delete(fy_journal *j, MDB_txn *txn, uint64_t from, uint64_t to,
                           uint64_t max_count, uint64_t *deleted);

/* Deletes up to max_count (0 = all) events delivered everywhere, oldest
 * first, counting them in meta "pruned". */
ferry_err fy_events_prune(fy_journal *j, MDB_txn *txn, uint64_t max_count, uint64_t *pruned);

/* Bytes of pages holding live data (all databases, LMDB's free list, metas). */
ferry_err fy_live_bytes(fy_journal *j, MDB_txn *txn, uint64_t *bytes);

/* One encoded record to append. */
typedef struct fy_rec_ref {
    const void *data;
    size_t len;
} fy_rec_ref;

/* A destination's delivery state (FORMAT.md, "cursors"). */
typedef struct fy_cursor {
    uint64_t delivered;       /* watermark: every seq <= it is delivered or dead */
    uint64_t sent;            /* events acknowledged by the destination */
    uint64_t resent;          /* events sent again (crash, timeout, retry) */
    uint64_t dead;            /* events the destination rejected for good */
    uint64_t outside_window;  /* resends later than the dedup window */
    int64_t last_success_ms;  /* 0: never */
    int64_t inflight_first_ms;/* first attempt of events sent but not yet acknowledged; 0: none */
    uint64_t attempted;       /* highest seq ever put in a request */
    uint64_t *above;          /* delivered out of order, above the watermark, ascending */
    size_t n_above;
} fy_cursor;

ferry_err fy_cursor_get(fy_journal *j, MDB_txn *txn, const char *sink, fy_cursor *c, int *found);
ferry_err fy_cursor_put(fy_journal *j, MDB_txn *txn, const char *sink, const fy_cursor *c);
/* Decodes a cursor row's value (FERRY_ECORRUPT naming journal `path` and the
 * sink when it is not one); fy_cursor_free it after success. */
ferry_err fy_cursor_decode(const char *path, const char *sink, const void *data, size_t len, fy_cursor *c);
void fy_cursor_free(fy_cursor *c);
/* Calls fn(arg, name, c) for every destination's cursor row, in name order;
 * fn owns *c (keeps it or fy_cursor_free()s it). With implied_default and no
 * row, calls it once for FY_DEFAULT_SINK with an empty cursor (nothing sent
 * yet). A name that is empty, has a 0x00 or 256 bytes or more is
 * FERRY_ECORRUPT; fn's error stops the walk and is returned. */
typedef ferry_err (*fy_cursor_fn)(void *arg, const char *name, fy_cursor *c);
ferry_err fy_cursor_each(fy_journal *j, MDB_txn *txn, int implied_default, fy_cursor_fn fn, void *arg);
/* A destination and its cursor: the first member of whatever a caller keeps
 * per destination. */
typedef struct fy_named_cursor {
    char name[256];
    fy_cursor c;
} fy_named_cursor;
/* Appends every destination's cursor (as fy_cursor_each) to arr, an array
 * of *n elements of elem_size bytes each beginning with a fy_named_cursor
 * (the rest of a new element zeroed), and returns the array, moved or not.
 * On error (*e) the elements appended so far stay; the caller frees their
 * cursors and the array. */
void *fy_cursors_load(fy_journal *j, MDB_txn *txn, int implied_default, void *arr, size_t *n, size_t elem_size,
                      ferry_err *e);
/* The lowest watermark over all destinations: events at or below it are
 * delivered everywhere. 0 when no destination is registered. */
ferry_err fy_delivered_everywhere(fy_journal *j, MDB_txn *txn, uint64_t *watermark);

/* Marks seqs (ascending) done for a destination (acknowledged or dead) and
 * moves the watermark over every leading run of done events. Events no longer
 * stored (evicted) count as done. Changes *c only; the caller puts it. */
ferry_err fy_cursor_mark_done(fy_journal *j, MDB_txn *txn, fy_cursor *c, const uint64_t *seqs, size_t n);
/* Whether seq is done for the cursor. */
int fy_cursor_is_done(const fy_cursor *c, uint64_t seq);

/* Dead letters: events a destination rejected for good. Key: sink, 0x00,
 * seq (u64 BE). Value: a MessagePack map {status, reason, at_ms} followed
 * by the record bytes (FORMAT.md). */
typedef struct fy_dead {
    char sink[256];
    uint64_t seq;
    int64_t status;
    int64_t at_ms;
    char reason[512];
    const void *rec; /* into the LMDB map: valid until the transaction ends */
    size_t rec_len;
} fy_dead;
ferry_err fy_dead_put(fy_journal *j, MDB_txn *txn, const char *sink, uint64_t seq, int64_t status,
                      const char *reason, const void *rec, size_t rec_len);
ferry_err fy_dead_decode(fy_journal *j, const MDB_val *key, const MDB_val *val, fy_dead *out);
/* Puts a dead event back in line: appended again under a new sequence number
 * (same record, same insert_id), its dead row deleted. */
ferry_err fy_dead_requeue(fy_journal *j, MDB_txn *txn, const fy_dead *d, uint64_t *new_seq);

/* Appends records inside txn with the next sequence numbers (no size check:
 * fy_journal_append is the bounded entry point for new events). */
ferry_err fy_events_put(fy_journal *j, MDB_txn *txn, const fy_rec_ref *recs, size_t n, uint64_t *first_seq);

/* Appends n encoded records in one transaction, keeping the size bound:
 * delivered events are deleted first; then, when evict_oldest is set, the
 * oldest undelivered ones (counted in meta "evicted"); otherwise the append
 * fails with FERRY_EFULL and nothing stored changes. */
ferry_err fy_journal_append(fy_journal *j, const fy_rec_ref *recs, size_t n, int evict_oldest,
                            uint64_t *first_seq);
/* The same, also adding each delta to its meta counter in the transaction
 * that appends the events (what a record-time policy removed: the counts
 * are committed exactly when the events are). */
typedef struct fy_meta_delta {
    const char *key;
    uint64_t delta;
} fy_meta_delta;
ferry_err fy_journal_append_meta(fy_journal *j, const fy_rec_ref *recs, size_t n, int evict_oldest,
                                 const fy_meta_delta *meta, size_t n_meta, uint64_t *first_seq);
/* Bytes live data may take: FY_QUOTA_PERCENT of the bound. */
uint64_t fy_journal_quota(const fy_journal *j);
/* The largest footprint (pages the records take) one fy_journal_append may
 * add: half the quota. */
uint64_t fy_journal_max_txn_bytes(const fy_journal *j);
/* Encoded bytes a batch may hold and always be taken by fy_journal_append
 * (given room): a quarter of the largest footprint it accepts, since events
 * over half a page take whole overflow pages. */
uint64_t fy_journal_max_batch_bytes(const fy_journal *j);

#endif

/* fy_gaps.h: eviction gaps (internal; FORMAT.md, "gaps").
 *
 * When the evict-oldest policy deletes events a destination has not had,
 * the loss is written down in the same transaction, one row per
 * destination and per (device_id, user_id) of the lost events, so that the
 * replayer can send one "[ferry] events lost" event per gap. An eviction
 * extends the open (unsealed) row of the same destination and identity
 * instead of adding one; the replayer seals rows before sending them, so a
 * gap never changes once it may have left the machine, and deletes them in
 * the transaction that records the destination's acknowledgement.
 *
 * A row imported from a capture describes another journal's loss: it
 * carries that journal's id and its own first_seq, is sealed from the
 * start (never extended, never taken back), and is keyed above
 * FY_GAP_IMPORTED_KEY so that it cannot collide with this journal's rows. */
#ifndef FY_GAPS_H
#define FY_GAPS_H

#include "fy_buf.h"
#include "fy_journal.h"

#define FY_LOSS_EVENT_TYPE "[ferry] events lost"
/* Open rows per destination; beyond it, new identities share one row
 * without device_id/user_id, so a journal fed by very many devices keeps
 * its gap rows small. */
#define FY_GAPS_MAX_ROWS 256u
/* Keys of imported rows start here; the journal's own seqs stay below. */
#define FY_GAP_IMPORTED_KEY (UINT64_C(1) << 63)

typedef struct fy_gap {
    char sink[256];
    uint64_t key_seq;             /* the row's key: first_seq, or >= FY_GAP_IMPORTED_KEY when imported */
    uint64_t first_seq, last_seq; /* lowest and highest lost seq (others may lie between) */
    uint64_t count;               /* events lost */
    int64_t first_time, last_time;         /* event `time`: earliest, latest */
    int64_t first_recorded, last_recorded; /* recorded_at: earliest, latest */
    int64_t at_ms;                /* when the first of them was evicted */
    char *device_id, *user_id;    /* NULL when absent (both: unknown or shared row) */
    int sealed;                   /* being reported: never extended again */
    int imported;                 /* the loss of journal `journal_id`, from a capture */
    unsigned char journal_id[16]; /* imported: the journal the events were lost from */
    int dirty;                    /* (in memory) to be written */
} fy_gap;

/* Evicts the oldest stored events (at most max_count), recording a gap for
 * every destination that had not had them; the deletion goes through
 * fy_events_delete. */
ferry_err fy_gaps_evict(fy_journal *j, MDB_txn *txn, uint64_t max_count, uint64_t *deleted);

/* Gap rows of one destination (sink NULL: all), in key order. */
ferry_err fy_gaps_list(fy_journal *j, MDB_txn *txn, const char *sink, fy_gap **out, size_t *n);
void fy_gaps_free(fy_gap *g, size_t n);
ferry_err fy_gaps_put(fy_journal *j, MDB_txn *txn, const fy_gap *g);
ferry_err fy_gaps_del(fy_journal *j, MDB_txn *txn, const char *sink, uint64_t first_seq);
/* Deletes every gap row (purge --all); *n how many. */
ferry_err fy_gaps_clear(fy_journal *j, MDB_txn *txn, uint64_t *n);
/* Seals the destination's open rows; *n_sealed how many were open. */
ferry_err fy_gaps_seal(fy_journal *j, MDB_txn *txn, const char *sink, size_t *n_sealed);

/* The journal a gap's events were lost from: its own, or an imported row's. */
const unsigned char *fy_gap_journal(const unsigned char journal_id[16], const fy_gap *g);
/* The insert_id of a gap's loss event: the same for the same gap, always,
 * also after an export and import elsewhere. */
void fy_gap_insert_id(const unsigned char journal_id[16], const fy_gap *g, char out[96]);
/* Adds the n rows of a capture (imported, sealed, under fresh keys), each
 * unless its destination already has the same loss; counts into *added and
 * *present. The destination's rows are read once per run of gaps of the same
 * destination (a capture lists them in key order). */
ferry_err fy_gaps_import(fy_journal *j, MDB_txn *txn, const fy_gap *g, size_t n, uint64_t *added, uint64_t *present);
/* Appends the gap's loss event (an Amplitude event object) as JSON. */
ferry_err fy_gap_event_json(const unsigned char journal_id[16], const fy_gap *g, fy_buf *out);
/* Appends the gap as a JSON object (ferry-journal stat). */
ferry_err fy_gap_json(const fy_gap *g, fy_buf *out);

#endif

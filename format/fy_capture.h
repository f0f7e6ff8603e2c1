/* fy_capture.h: captures, the portable form of a journal (FORMAT.md,
 * "Captures"), SHA-256, and what importing a capture keeps in a journal
 * (internal; used by the tools, not part of libferry).
 *
 * A capture is one file, every integer big-endian, no native-width field:
 *   header  "FERRYCAP", version, journal id, destinations, device ids,
 *           export time, filter, record count, eviction gaps (1.1);
 *           then its SHA-256
 *   entries "RECD", length, {ordinal, seq, flags, delivery state per
 *           destination, record bytes}, then a hash chain value
 *           SHA-256(previous chain value || the entry)
 *   trailer "FERRYEND", record count, final chain value, SHA-256 of every
 *           byte before it
 * so that a changed byte, a truncation, a deleted, reordered or appended
 * record is detected and located. */
#ifndef FY_CAPTURE_H
#define FY_CAPTURE_H

#include <lmdb.h>
#include <stddef.h>
#include <stdint.h>

#include "ferry_error.h"
#include "fy_buf.h"
#include "fy_journal.h"

#define FY_CAP_MAJOR 1u
#define FY_CAP_MINOR 1u       /* 1.1: eviction gaps in the header */
#define FY_CAP_MAX_DESTS 64u     /* destinations a capture may name */
#define FY_CAP_MAX_NAME 255u     /* bytes of a destination name */
#define FY_CAP_MAX_REASON 1024u  /* bytes of a dead letter's reason kept */
#define FY_CAP_MAX_DEVICE 1024u  /* bytes of a device id */
#define FY_CAP_DIGEST 32u

/* ---- SHA-256 (OpenSSL libcrypto) --------------------------------------- */

typedef struct fy_sha256 {
    void *ctx;
    int failed;
} fy_sha256;

ferry_err fy_sha256_init(fy_sha256 *h);
void fy_sha256_update(fy_sha256 *h, const void *p, size_t n);
/* Writes the digest and makes h ready for a new message. */
ferry_err fy_sha256_final(fy_sha256 *h, unsigned char out[FY_CAP_DIGEST]);
void fy_sha256_free(fy_sha256 *h);
/* SHA-256 of a || b (either may be empty). */
ferry_err fy_sha256_two(const void *a, size_t na, const void *b, size_t nb, unsigned char out[FY_CAP_DIGEST]);
/* Lower-case hex of n bytes into out[2n+1]. */
void fy_hex(const unsigned char *p, size_t n, char *out);

/* ---- the capture ------------------------------------------------------- */

enum { FY_CAP_PENDING = 0, FY_CAP_DELIVERED = 1, FY_CAP_DEAD = 2 };
#define FY_CAP_FLAG_STORED 0x01u /* the record was in `events` (not only in `dead`) */

typedef struct fy_cap_str {
    const char *p;
    size_t n;
} fy_cap_str;

typedef struct fy_cap_state {
    unsigned state;   /* FY_CAP_PENDING, _DELIVERED, _DEAD */
    int64_t status;   /* dead: the destination's HTTP status */
    int64_t at_ms;    /* dead: when it was dead-lettered */
    fy_cap_str reason;/* dead: the destination's reason */
} fy_cap_state;

/* An eviction gap (fy_gaps.h) as a capture carries it (1.1). */
typedef struct fy_cap_gap {
    fy_cap_str dest;
    unsigned char journal_id[16]; /* the journal the events were lost from */
    uint64_t first_seq, last_seq, count;
    int64_t first_time, last_time, first_recorded, last_recorded, at_ms;
    int has_device, has_user;
    fy_cap_str device_id, user_id;
} fy_cap_gap;

typedef struct fy_cap_header {
    unsigned major, minor; /* capture format version */
    unsigned char journal_id[16];
    uint32_t journal_major, journal_minor;
    int64_t created_ms; /* the source journal's creation */
    int64_t export_ms;
    uint64_t count;     /* entries */
    uint64_t first_seq, last_seq; /* of the entries; 0 when none */
    uint64_t recorded, evicted, pruned; /* the source journal's counters */
    fy_cap_str producer; /* "ferry-journal 0.3.0" */
    fy_cap_str filter;   /* JSON object: the filter the export used */
    size_t n_dests;
    fy_cap_str *dests;
    size_t n_devices;
    fy_cap_str *devices; /* distinct device_id values of the entries, sorted */
    size_t n_gaps;       /* 1.1: losses not yet reported, for the destinations above */
    fy_cap_gap *gaps;
} fy_cap_header;

/* Bytes go out through this callback; it returns FERRY_OK or an error. */
typedef ferry_err (*fy_cap_write_fn)(void *arg, const void *p, size_t n);

typedef struct fy_capw {
    fy_cap_write_fn write;
    void *arg;
    fy_sha256 content, chain_h;
    unsigned char chain[FY_CAP_DIGEST];
    uint64_t ordinal, count, last_seq;
    size_t n_dests;
    fy_buf buf;
} fy_capw;

/* Writes the header. h->count must be the number of entries that follow. */
ferry_err fy_capw_begin(fy_capw *w, const fy_cap_header *h, fy_cap_write_fn fn, void *arg);
/* One entry; states has h->n_dests elements; seqs must increase. */
ferry_err fy_capw_entry(fy_capw *w, uint64_t seq, unsigned flags, const fy_cap_state *states, const void *rec,
                        size_t rec_len);
/* Writes the trailer; fails if fewer or more entries than announced. */
ferry_err fy_capw_end(fy_capw *w);
void fy_capw_free(fy_capw *w);

/* Reading checks everything as it goes and reports each problem with its
 * place: `where` is "header", "record N (seq S)" or "end"; offset is the
 * byte offset in the file. */
typedef void (*fy_cap_problem_fn)(void *arg, const char *where, uint64_t offset, const char *msg);

typedef struct fy_cap_entry {
    uint64_t ordinal, seq, offset;
    unsigned flags;
    fy_cap_state *states; /* h.n_dests of them, valid until the next call */
    const void *rec;      /* into the capture */
    size_t rec_len;
    int intact;           /* no problem was found in this entry */
} fy_cap_entry;

typedef struct fy_capr {
    const unsigned char *base;
    size_t len, pos;
    fy_cap_header h;
    fy_cap_problem_fn problem;
    void *arg;
    uint64_t problems;
    uint64_t position;      /* entries read so far */
    uint64_t last_ordinal, last_seq; /* highest seen */
    size_t *chain_at; /* by ordinal: offset of that entry's stored chain value (0: not seen) */
    uint64_t n_chain_at;
    unsigned char prev_stored[FY_CAP_DIGEST], prev_computed[FY_CAP_DIGEST];
    unsigned char header_digest[FY_CAP_DIGEST];
    int at_end;
    fy_cap_state *states;
    fy_sha256 sha;
} fy_capr;

/* Parses and checks the header. FERRY_ECORRUPT when the file is not a
 * capture at all or its header is unusable (reported), FERRY_EVERSION for a
 * newer major version. Other header problems are reported and counted. */
ferry_err fy_capr_open(fy_capr *r, const void *base, size_t len, fy_cap_problem_fn fn, void *arg);
/* 1: an entry (check e->intact); 0: no more entries (the trailer and what
 * follows it were checked); negative: an internal error (out of memory). */
int fy_capr_next(fy_capr *r, fy_cap_entry *e);
void fy_capr_close(fy_capr *r);

/* ---- what importing keeps in a journal ---------------------------------- */

/* The `imported` database: key = source journal id (16 bytes) + source seq
 * (u64 BE); value = the seq it got in this journal (u64 BE). */
#define FY_IMPORTED_DB "imported"

/* Opens the database; with create, creates it (write transaction). Without
 * create and when absent, *dbi is left alone and *exists is 0. */
ferry_err fy_imported_open(fy_journal *j, MDB_txn *txn, int create, MDB_dbi *dbi, int *exists);
ferry_err fy_imported_get(fy_journal *j, MDB_txn *txn, MDB_dbi dbi, const unsigned char src_id[16],
                          uint64_t src_seq, uint64_t *target, int *found);
ferry_err fy_imported_put(fy_journal *j, MDB_txn *txn, MDB_dbi dbi, const unsigned char src_id[16],
                          uint64_t src_seq, uint64_t target);

/* Stores a record under a given sequence number, which must be above every
 * stored one (MDB_APPEND). The caller raises seq_floor when needed. */
ferry_err fy_event_put_at(fy_journal *j, MDB_txn *txn, uint64_t seq, const void *rec, size_t len);
/* A dead letter with its original status, reason and time (FORMAT.md, `dead`). */
ferry_err fy_dead_put_at(fy_journal *j, MDB_txn *txn, const char *sink, uint64_t seq, int64_t status,
                         const char *reason, size_t reason_len, int64_t at_ms, const void *rec, size_t rec_len);
/* Bytes of pages of one database (for the size bound). */
ferry_err fy_dbi_bytes(fy_journal *j, MDB_txn *txn, MDB_dbi dbi, uint64_t *bytes);

#endif

/* rp.h: the replayer's internal interfaces (replayer/ only). */
#ifndef RP_H
#define RP_H

#include <signal.h>
#include <stddef.h>
#include <stdint.h>

#include "fy_buf.h"
#include "fy_journal.h"

#define RP_DEDUP_WINDOW_MS (7ll * 24 * 3600 * 1000) /* Amplitude's insert_id window */

extern volatile sig_atomic_t rp_stop; /* set by SIGTERM/SIGINT */

int64_t rp_now_ms(void);
/* Sleeps up to ms, returning early (nonzero) when rp_stop is set. */
int rp_sleep_ms(int64_t ms);

/* ---- upload.c: one reused libcurl handle ------------------------------- */

typedef struct rp_http rp_http;

typedef struct rp_response {
    long status;           /* HTTP status; 0 when no response arrived */
    int transport_error;   /* nonzero: timeout, refused, reset, TLS, ... */
    int tls_untrusted;     /* the endpoint's certificate failed verification (or the CA file) */
    int sent;              /* some of the request went out: the events may have arrived */
    char error[256];       /* libcurl's message for a transport error */
    long retry_after_s;    /* Retry-After, clamped to an hour; 0 if absent */
    fy_buf body;           /* response body, capped */
} rp_response;

rp_http *rp_http_new(const char *url, double timeout_s, const char *ca_file);
void rp_http_free(rp_http *h);
/* POSTs body (gzip-compressed when gzip); never follows redirects. */
void rp_http_post(rp_http *h, const char *body, size_t len, int gzip, rp_response *r, size_t *wire_bytes);
void rp_response_init(rp_response *r);
void rp_response_free(rp_response *r);

/* ---- response.c: what an Amplitude answer means ------------------------ */

typedef enum rp_verdict_kind {
    RP_OK,         /* accepted */
    RP_REJECTED,   /* some events are invalid for good: dead-letter them, resend the rest */
    RP_CONFIG,     /* bad API key, wrong path, WAF: stop, nothing moves */
    RP_TOO_LARGE,  /* 413: split */
    RP_THROTTLED,  /* 429: pause the named devices/users, resend the others */
    RP_GZIP_REFUSED, /* 415: resend without gzip */
    RP_RETRY       /* 5xx, timeouts, resets, garbage: resend later, same insert_ids */
} rp_verdict_kind;

typedef struct rp_verdict {
    rp_verdict_kind kind;
    char message[300];   /* for logs: status and the server's error text */
    /* RP_REJECTED: per event index, the reason (NULL: not rejected). */
    char **reasons;
    size_t n_events;
    /* RP_THROTTLED */
    char **throttled_ids;  /* device_ids and "user:" + user_ids */
    size_t n_throttled;
    int daily_quota;       /* some ids exceeded the daily quota: pause longer */
    long wait_s;           /* Retry-After; 0 if absent */
} rp_verdict;

void rp_classify(const rp_response *r, size_t n_events, rp_verdict *v);
void rp_verdict_free(rp_verdict *v);

/* ---- batch.c: events from the journal into one request body ------------ */

typedef struct rp_devices rp_devices; /* pacing and pauses per device */

rp_devices *rp_devices_new(double rate_per_s);
void rp_devices_free(rp_devices *d);
/* Pauses one device (or "user:" id) until until_ms. */
void rp_devices_pause(rp_devices *d, const char *id, int64_t until_ms);
/* Pauses every device until until_ms. */
void rp_devices_pause_all(rp_devices *d, int64_t until_ms);

typedef struct rp_batch {
    fy_buf body;         /* {"api_key":...,"events":[...]} */
    uint64_t *seqs;      /* per event */
    char **ids;          /* per event: device_id, or "user:" + user_id */
    size_t n, cap;
    uint64_t corrupt_seq;   /* a record that cannot be decoded (0: none) */
    char corrupt_reason[256];
    uint64_t too_big_seq;   /* an event larger than a whole request (0: none) */
    int64_t next_ready_ms;  /* when skipped (paused/paced) events become sendable; 0: none skipped */
    uint64_t pending_seen;  /* events not done that were looked at */
    /* A loss batch (loss.c) holds only "[ferry] events lost" events, n == 0:
     * the keys (fy_gap.key_seq) of the gap rows it reports, in body order. */
    uint64_t *loss;
    size_t n_loss, cap_loss;
    /* Rewrites on the way out (clock.h, rewrite.h), set by the caller after
     * rp_batch_init; clock NULL: times sent as recorded. */
    struct rp_clock *clock;
    int ip_mode;            /* rp_ip_mode */
    uint64_t held;          /* events held back: this boot's clock is not trustworthy yet */
} rp_batch;

void rp_batch_init(rp_batch *b);
void rp_batch_free(rp_batch *b);
/* Fills b from the events after the cursor, in sequence order, within the
 * request limits, skipping paused or rate-limited devices. Reads in one
 * short read transaction that ends before returning. */
ferry_err rp_batch_build(fy_journal *j, const char *sink, rp_devices *dev, const char *api_key,
                         size_t max_events, size_t max_bytes, rp_batch *b);

/* The time from which a paced/paused device may send; 0: now. Takes no token. */
int64_t rp_devices_paused_until(const rp_devices *d, const char *id, int64_t now);

/* ---- loss.c: "[ferry] events lost" for eviction gaps (fy_gaps.h) ------- */

/* When the destination has gap rows, seals the open ones (a transaction
 * committed before anything is sent, so a gap never changes once it may
 * have left) and fills b, whose body holds the request's opening, with
 * their loss events; b->n_loss = 0 when there is nothing to report. */
ferry_err rp_loss_build(fy_journal *j, const char *sink, const rp_devices *dev, size_t max_events,
                        size_t max_bytes, rp_batch *b);
/* The destination acknowledged b, inside the transaction that records it:
 * a loss batch's gap rows are deleted; a regular batch's events evicted
 * while in flight are taken out of the loss counts again (they arrived). */
ferry_err rp_loss_acked(fy_journal *j, MDB_txn *txn, const char *sink, const rp_batch *b);
/* How many of the request's events are no longer in the journal (evicted
 * since it was built). */
ferry_err rp_loss_evicted(fy_journal *j, const rp_batch *b, size_t *n);
/* The destination refused some loss events for good (reasons[i] non-NULL;
 * reasons NULL: all): their rows are deleted, with a message. */
ferry_err rp_loss_refused(fy_journal *j, const char *sink, const rp_batch *b, char *const *reasons, long status);

#endif

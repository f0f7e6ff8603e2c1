/* ferry.h: record analytics events into a durable, bounded journal.
 *
 *   ferry_journal *j;
 *   if (ferry_open("/var/lib/ferry/journal", NULL, &j) != FERRY_OK)
 *       fprintf(stderr, "ferry: %s\n", ferry_last_error());
 *   ferry_event ev = {.event_type = "Service start", .device_id = uuid,
 *                     .event_properties = "{\"service\":{\"serviceName\":\"backend\"}}"};
 *   ferry_record(j, &ev, NULL);   // FERRY_OK: the event is on disk (fsync'd)
 *   ferry_close(j);
 *
 * Every function is thread-safe for distinct batches; one ferry_journal may be
 * shared by threads, and any number of processes may record into one journal.
 * Functions return FERRY_OK or an error code; ferry_last_error() then holds a
 * message naming the journal, field or limit involved.
 *
 * Failure is sticky: once a commit failed with an I/O error (FERRY_EIO: a
 * write, fdatasync or the meta-page write failed, a full disk included), the
 * handle refuses every further record with FERRY_EFAILED until it is closed
 * and opened again. After a failed fsync the kernel may have dropped the
 * pages and marked them clean, so what reached the disk is unknown; reopening
 * reads the journal's committed state back. Nothing acknowledged before the
 * failure is affected (tests/reliability, docs/RELIABILITY.md). */
#ifndef FERRY_H
#define FERRY_H

#include <stddef.h>
#include <stdint.h>

#include "ferry_error.h"

#ifdef __cplusplus
extern "C" {
#endif

#define FERRY_VERSION "0.1.0"
#define FERRY_MAX_RECORD_BYTES 65536 /* largest encoded event */

typedef struct ferry_journal ferry_journal;
typedef struct ferry_batch ferry_batch;
typedef struct ferry_policy ferry_policy;

typedef enum ferry_durability {
    /* Success means the event was fsync'd: it survives a power cut. */
    FERRY_DURABILITY_FULL = 0,
    /* Data is flushed at each commit but the commit marker is not: a crash of
     * the process loses nothing, a power cut may lose the last commit(s); the
     * journal is never corrupted. About 1.5-2x faster for single events. */
    FERRY_DURABILITY_RELAXED = 1
} ferry_durability;

typedef enum ferry_overflow {
    /* When the journal is full (after deleting delivered events): refuse new
     * events with FERRY_EFULL; nothing stored is touched. */
    FERRY_OVERFLOW_REJECT = 0,
    /* Delete the oldest undelivered events to make room, counting them. */
    FERRY_OVERFLOW_EVICT_OLDEST = 1
} ferry_overflow;

typedef struct ferry_options {
    uint64_t max_bytes;          /* disk bound; 0: the journal's own (64 MiB when new) */
    ferry_durability durability;
    ferry_overflow overflow;
    int opt_out;                 /* nonzero: recording succeeds and writes nothing */
    const ferry_policy *policy;  /* NULL: keep every property */
} ferry_options;

/* A property policy, applied when an event is recorded so that what it
 * removes never reaches the disk (README.md, "Privacy"):
 *
 *   ferry_policy *p;
 *   ferry_policy_new(&p);
 *   ferry_policy_allow(p, "event_properties.service.appId");
 *   ferry_policy_deny(p, "user_properties.email");
 *   ferry_policy_redact(p, "token=[A-Za-z0-9]+");
 *   ferry_options o = {.policy = p};
 *   ferry_open(dir, &o, &j);
 *   ferry_policy_free(p);            // the journal keeps its own reference
 *
 * Paths start with event_properties or user_properties and name nested keys
 * with '.'; "\." is a dot inside a key, "\\" a backslash, "\*" a literal
 * star; a segment "*" matches any one key. A path continuing into an array
 * applies to each element. deny removes the key wherever the path matches.
 * With any allow rule on a side, that side keeps only allowed paths (whole
 * subtrees; the containers on the way hold only what is allowed). Deny wins
 * over allow. redact takes a POSIX extended regular expression: each match
 * inside a string value of either side becomes "[redacted]".
 * A bad path or regex fails with FERRY_EINVAL naming it. ferry_open takes a
 * reference to the policy: its rules are fixed from then on (adding fails
 * with FERRY_EINVAL) and it may be freed at once; it is released when the
 * last journal (and batch) using it is closed; a policy in use is only read,
 * by any number of threads. Every event recorded into the journal passes it:
 * a batch (which knows no journal while filled) is filtered when committed,
 * and a commit refused by it leaves the batch unchanged. Removed keys and
 * redacted values are counted in the journal, in the events' transaction
 * (ferry-journal stat). */
FERRY_API ferry_err ferry_policy_new(ferry_policy **out);
FERRY_API ferry_err ferry_policy_allow(ferry_policy *p, const char *path);
FERRY_API ferry_err ferry_policy_deny(ferry_policy *p, const char *path);
FERRY_API ferry_err ferry_policy_redact(ferry_policy *p, const char *regex);
/* Drops the caller's reference; NULL is accepted. */
FERRY_API void ferry_policy_free(ferry_policy *p);

/* Opens the journal in directory `dir`, creating it (0700, files 0600) when
 * missing. opts may be NULL for the defaults. The environment variable
 * FERRY_OPT_OUT=1 (or true/yes) has the same effect as opts->opt_out: no
 * directory is created and nothing is ever written. */
FERRY_API ferry_err ferry_open(const char *dir, const ferry_options *opts, ferry_journal **out);
/* Closes the journal; NULL is accepted. */
FERRY_API void ferry_close(ferry_journal *j);

/* One Amplitude event. Strings are UTF-8; NULL means absent. */
typedef struct ferry_event {
    const char *event_type;       /* required */
    const char *device_id;        /* device_id or user_id is required */
    const char *user_id;
    int64_t time_ms;              /* ms since the epoch; 0: the time of recording */
    const char *insert_id;        /* NULL: a UUID is generated once, now */
    const char *event_properties; /* a JSON object, e.g. "{\"error\":\"timeout\"}" */
    const char *user_properties;  /* a JSON object */
    const char *extra;            /* a JSON object of further top-level fields
                                     (app_version, os_name, session_id, ...) */
} ferry_event;

/* Records one event. On FERRY_OK it is durable per the journal's durability
 * mode and *seq (if not NULL) holds its sequence number (0 when opted out).
 * Errors include FERRY_EIO (then the handle is failed, see above) and
 * FERRY_EFAILED (a failed handle: ferry_close it and ferry_open again). */
FERRY_API ferry_err ferry_record(ferry_journal *j, const ferry_event *ev, uint64_t *seq);

/* Records one event given as a JSON object (Amplitude's event fields). */
FERRY_API ferry_err ferry_record_json(ferry_journal *j, const char *json, size_t len, uint64_t *seq);

/* A batch is recorded atomically: all its events or none. Adding validates
 * and encodes the event (assigning insert_id and time); a rejected event
 * leaves the batch unchanged. */
FERRY_API ferry_err ferry_batch_new(ferry_batch **out);
FERRY_API ferry_err ferry_batch_add(ferry_batch *b, const ferry_event *ev);
FERRY_API ferry_err ferry_batch_add_json(ferry_batch *b, const char *json, size_t len);
FERRY_API size_t ferry_batch_count(const ferry_batch *b);
/* Encoded bytes of the events in the batch. */
FERRY_API size_t ferry_batch_bytes(const ferry_batch *b);
FERRY_API void ferry_batch_clear(ferry_batch *b);
FERRY_API void ferry_batch_free(ferry_batch *b);
/* Commits every event of the batch in one transaction; on FERRY_OK the batch
 * is emptied and *first_seq (if not NULL) is the first event's number, the
 * others following consecutively. */
FERRY_API ferry_err ferry_record_batch(ferry_journal *j, ferry_batch *b, uint64_t *first_seq);

/* A batch size, in encoded bytes, that the journal always takes in one
 * transaction while it has room: callers that split a stream into batches
 * (ferry-record --jsonl, the service) stay below it. */
FERRY_API size_t ferry_max_batch_bytes(const ferry_journal *j);

/* The library's version string, e.g. "0.1.0". */
FERRY_API const char *ferry_version(void);

#ifdef __cplusplus
}
#endif
#endif

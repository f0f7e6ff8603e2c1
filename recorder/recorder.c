/* recorder.c: the public recording API over the shared journal layer. */
#include "ferry.h"
#include "recorder_internal.h"
#include "fy_buf.h"
#include "fy_cli.h"
#include "fy_fail.h"
#include "fy_journal.h"
#include "fy_jsonfast.h"
#include "fy_policy.h"
#include "fy_record.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

_Static_assert(FERRY_MAX_RECORD_BYTES == FY_MAX_RECORD_BYTES, "record limit mismatch");

struct ferry_journal {
    pthread_mutex_t lock; /* one write at a time in this process (map resizes need it) */
    fy_journal jr;
    int opt_out;
    int evict_oldest;
    int failed; /* LMDB declared the environment unusable, or a commit failed
                   with an I/O error: refuse records until reopened */
    fy_policy *policy; /* a reference; NULL: none */
};

struct ferry_batch {
    fy_buf data;   /* the encoded records, back to back */
    size_t *ends;  /* record i ends at ends[i] */
    size_t n, cap;
    /* The policy applied as events are added (a reference; NULL: none), and
     * what it did to the events in the batch: the counts travel with the
     * batch into its commit. */
    fy_policy *policy;
    fy_policy_counts counts;
    fy_jsonfast *fast; /* ferry_batch_add_json's fast path (yajl), made on first use */
};

const char *ferry_version(void) { return FERRY_VERSION; }

static int env_opt_out(void) { return fy_cli_env_opt_out(); } /* one rule for every program */

ferry_err ferry_open(const char *dir, const ferry_options *opts, ferry_journal **out)
{
    static const ferry_options defaults = {0, FERRY_DURABILITY_FULL, FERRY_OVERFLOW_REJECT, 0, NULL};
    *out = NULL;
    fy_clear_error();
    if (!opts)
        opts = &defaults;
    if (!dir || !*dir)
        return fy_fail(FERRY_EINVAL, "no journal directory given");
    if ((unsigned)opts->durability > FERRY_DURABILITY_RELAXED || (unsigned)opts->overflow > FERRY_OVERFLOW_EVICT_OLDEST)
        return fy_fail(FERRY_EINVAL, "unknown durability or overflow policy");
    ferry_journal *j = calloc(1, sizeof *j);
    if (!j)
        return fy_fail(FERRY_ENOMEM, "out of memory");
    pthread_mutex_init(&j->lock, NULL);
    j->evict_oldest = opts->overflow == FERRY_OVERFLOW_EVICT_OLDEST;
    j->opt_out = opts->opt_out || env_opt_out();
    if (!fy_policy_empty(opts->policy))
        j->policy = fy_policy_ref(opts->policy);
    if (!j->opt_out) {
        fy_open_opts o = {.create = 1, .relaxed = opts->durability == FERRY_DURABILITY_RELAXED,
                          .max_bytes = opts->max_bytes};
        ferry_err e = fy_journal_open(&j->jr, dir, &o);
        if (e) {
            pthread_mutex_destroy(&j->lock);
            fy_policy_unref(j->policy);
            free(j);
            return e;
        }
    }
    *out = j;
    return FERRY_OK;
}

void ferry_close(ferry_journal *j)
{
    if (!j)
        return;
    if (!j->opt_out)
        fy_journal_close(&j->jr);
    pthread_mutex_destroy(&j->lock);
    fy_policy_unref(j->policy);
    free(j);
}

/* ---- policies ---------------------------------------------------------- */

ferry_err ferry_policy_new(ferry_policy **out)
{
    fy_clear_error();
    return fy_policy_new(out);
}

ferry_err ferry_policy_allow(ferry_policy *p, const char *path)
{
    fy_clear_error();
    return fy_policy_allow(p, path);
}

ferry_err ferry_policy_deny(ferry_policy *p, const char *path)
{
    fy_clear_error();
    return fy_policy_deny(p, path);
}

ferry_err ferry_policy_redact(ferry_policy *p, const char *regex)
{
    fy_clear_error();
    return fy_policy_redact(p, regex);
}

void ferry_policy_free(ferry_policy *p) { fy_policy_unref(p); }

/* ---- batches ----------------------------------------------------------- */

ferry_err ferry_batch_new(ferry_batch **out)
{
    *out = calloc(1, sizeof **out);
    if (!*out)
        return fy_fail(FERRY_ENOMEM, "out of memory");
    fy_buf_init(&(*out)->data, 0);
    return FERRY_OK;
}

void ferry_batch_free(ferry_batch *b)
{
    if (!b)
        return;
    fy_buf_free(&b->data);
    free(b->ends);
    fy_policy_unref(b->policy);
    fy_jsonfast_free(b->fast);
    free(b);
}

size_t ferry_batch_count(const ferry_batch *b) { return b->n; }

size_t ferry_batch_bytes(const ferry_batch *b) { return b->data.len; }

uint64_t ferry_journal_max_txn_bytes(const ferry_journal *j)
{
    return j->opt_out ? 0 : fy_journal_max_txn_bytes(&j->jr);
}

void ferry_release_mapped_pages(ferry_journal *j)
{
    if (j->opt_out)
        return;
    pthread_mutex_lock(&j->lock); /* a map resize replaces the address */
    fy_journal_release_pages(&j->jr);
    pthread_mutex_unlock(&j->lock);
}

size_t ferry_max_batch_bytes(const ferry_journal *j)
{
    if (j->opt_out)
        return SIZE_MAX;
    return (size_t)fy_journal_max_batch_bytes(&j->jr);
}

void ferry_batch_clear(ferry_batch *b)
{
    fy_buf_reset(&b->data);
    b->n = 0;
    b->counts = (fy_policy_counts){0, 0};
}

ferry_err ferry_batch_use_policy_of(ferry_batch *b, const ferry_journal *j)
{
    if (b->n)
        return fy_fail(FERRY_EINVAL, "a journal's policy can only be given to an empty batch");
    fy_policy_unref(b->policy);
    b->policy = fy_policy_ref(j->policy);
    return FERRY_OK;
}

/* Room for one more record end; 0 when out of memory (nothing reported). */
static int room_for_one(ferry_batch *b)
{
    if (b->n < b->cap)
        return 1;
    size_t cap = b->cap ? b->cap * 2 : 64;
    size_t *p = realloc(b->ends, cap * sizeof *p);
    if (!p)
        return 0;
    b->ends = p, b->cap = cap;
    return 1;
}

/* Applies the batch's policy to an event object and encodes it into the
 * batch with the clock readings `st` (wall time, CLOCK_BOOTTIME, boot id:
 * the replayer corrects a wall clock that was wrong at boot from the other
 * two); takes the reference to `ev`. Every recorded event passes here (or
 * through refilter, which calls it), except JSON text that the fast path
 * encodes itself when the batch has no policy (ferry_batch_add_json). */
static ferry_err batch_add_object(ferry_batch *b, json_t *ev, const fy_stamp *st)
{
    fy_policy_counts counts = {0, 0};
    ferry_err e = fy_policy_apply(b->policy, ev, &counts);
    if (!e && !room_for_one(b))
        e = fy_fail(FERRY_ENOMEM, "out of memory");
    char uuid[FY_UUID_LEN + 1];
    if (!e && !json_object_get(ev, "insert_id"))
        e = fy_uuid4(uuid);
    if (!e)
        e = fy_record_encode_stamped(ev, st, uuid, &b->data);
    if (!e) {
        b->ends[b->n++] = b->data.len;
        b->counts.dropped += counts.dropped;
        b->counts.redacted += counts.redacted;
    }
    json_decref(ev);
    return e;
}

/* Without a policy, the fast path (jsonfast.c, yajl) writes the record when
 * it is sure to write what the Jansson path below would; when it declines,
 * the Jansson path runs and gives the record or the error. */
ferry_err ferry_batch_add_json(ferry_batch *b, const char *json, size_t len)
{
    fy_stamp st;
    fy_stamp_now(&st);
    if (fy_policy_empty(b->policy) && room_for_one(b) &&
        fy_jsonfast_encode(&b->fast, json, len, &st, NULL, &b->data)) {
        b->ends[b->n++] = b->data.len;
        return FERRY_OK;
    }
    json_t *ev;
    ferry_err e = fy_json_parse_event(json, len, &ev);
    if (e)
        return e;
    return batch_add_object(b, ev, &st);
}

static ferry_err set_string(json_t *ev, const char *field, const char *value)
{
    if (!value)
        return FERRY_OK;
    if (json_object_get(ev, field))
        return fy_fail(FERRY_EINVAL, "field %s: given twice (also in extra)", field);
    json_t *s = json_string(value);
    if (!s) { /* NULL also when out of memory: not the event's fault then */
        for (size_t i = 0, n = strlen(value), k; i < n; i += k)
            if (!(k = fy_utf8_seq((const unsigned char *)value + i, n - i)))
                return fy_fail(FERRY_EINVAL, "field %s: not valid UTF-8", field);
        return fy_fail(FERRY_ENOMEM, "out of memory");
    }
    return json_object_set_new(ev, field, s) ? fy_fail(FERRY_ENOMEM, "out of memory") : FERRY_OK;
}

static ferry_err set_object(json_t *ev, const char *field, const char *text)
{
    if (!text)
        return FERRY_OK;
    if (json_object_get(ev, field))
        return fy_fail(FERRY_EINVAL, "field %s: given twice (also in extra)", field);
    json_t *o;
    ferry_err e = fy_json_parse_event(text, strlen(text), &o);
    if (e)
        return fy_fail_prefix(e, "field %s", field);
    return json_object_set_new(ev, field, o) ? fy_fail(FERRY_ENOMEM, "out of memory") : FERRY_OK;
}

ferry_err ferry_batch_add(ferry_batch *b, const ferry_event *in)
{
    json_t *ev = NULL;
    ferry_err e;
    if (in->extra) {
        if ((e = fy_json_parse_event(in->extra, strlen(in->extra), &ev)))
            return fy_fail_prefix(e, "field extra");
    } else if (!(ev = json_object())) {
        return fy_fail(FERRY_ENOMEM, "out of memory");
    }
    if (!in->event_type && !json_object_get(ev, "event_type"))
        e = fy_fail(FERRY_EINVAL, "field event_type: missing");
    else if (!(e = set_string(ev, "event_type", in->event_type)) &&
             !(e = set_string(ev, "device_id", in->device_id)) &&
             !(e = set_string(ev, "user_id", in->user_id)) &&
             !(e = set_string(ev, "insert_id", in->insert_id)) &&
             !(e = set_object(ev, "event_properties", in->event_properties)) &&
             !(e = set_object(ev, "user_properties", in->user_properties)) && in->time_ms) {
        if (json_object_get(ev, "time"))
            e = fy_fail(FERRY_EINVAL, "field time: given twice (also in extra)");
        else if (json_object_set_new(ev, "time", json_integer((json_int_t)in->time_ms)))
            e = fy_fail(FERRY_ENOMEM, "out of memory");
    }
    if (e) {
        json_decref(ev);
        return e;
    }
    fy_stamp st;
    fy_stamp_now(&st);
    return batch_add_object(b, ev, &st);
}

/* ---- recording --------------------------------------------------------- */

/* A batch filled without this journal's policy (ferry_batch_new knows no
 * journal) gets it now: each record is decoded back into an event object and
 * added again through batch_add_object, keeping its clock readings. On failure
 * the batch is unchanged. */
static ferry_err refilter(ferry_batch *b, fy_policy *policy)
{
    ferry_batch nb = {0};
    fy_buf_init(&nb.data, 0);
    fy_buf text;
    fy_buf_init(&text, 0);
    nb.policy = fy_policy_ref(policy);
    nb.counts = b->counts;
    ferry_err e = FERRY_OK;
    for (size_t i = 0, start = 0; i < b->n && !e; start = b->ends[i++]) {
        fy_record r;
        json_t *ev = NULL;
        if ((e = fy_record_decode(b->data.data + start, b->ends[i] - start, &r)))
            break;
        fy_buf_reset(&text);
        e = fy_json_emit(&text, &r.event);
        fy_stamp st = {.wall_ms = r.recorded_at_ms, .mono_ms = r.boot_id ? r.mono_ms : -1, .boot_id = ""};
        if (r.boot_id)
            memcpy(st.boot_id, r.boot_id, FY_BOOT_ID_LEN);
        fy_record_free(&r);
        if (!e && !(e = fy_json_parse_event(text.data, text.len, &ev)))
            e = batch_add_object(&nb, ev, &st);
        if (e)
            e = fy_fail_prefix(e, "applying the journal's policy to event %zu of the batch", i + 1);
    }
    fy_buf_free(&text);
    if (!e) {
        ferry_batch old = *b;
        *b = nb;
        nb = old;
        b->fast = nb.fast; /* the parser state stays with the caller's batch */
        nb.fast = NULL;
    }
    fy_buf_free(&nb.data);
    free(nb.ends);
    fy_policy_unref(nb.policy);
    return e;
}

ferry_err ferry_record_batch(ferry_journal *j, ferry_batch *b, uint64_t *first_seq)
{
    uint64_t seq = 0;
    ferry_err e = FERRY_OK;
    fy_clear_error();
    if (b->n == 0 || j->opt_out) {
        ferry_batch_clear(b);
        if (first_seq)
            *first_seq = 0;
        return FERRY_OK;
    }
    if (j->policy && b->policy != j->policy && (e = refilter(b, j->policy)))
        return e;
    /* What the policy did is counted in the same transaction as the events. */
    fy_meta_delta counts[2];
    size_t ncounts = 0;
    if (b->counts.dropped)
        counts[ncounts++] = (fy_meta_delta){FY_META_PROPS_DROPPED, b->counts.dropped};
    if (b->counts.redacted)
        counts[ncounts++] = (fy_meta_delta){FY_META_VALUES_REDACTED, b->counts.redacted};
    fy_rec_ref stack_refs[64];
    fy_rec_ref *refs = b->n <= 64 ? stack_refs : malloc(b->n * sizeof *refs);
    if (!refs)
        return fy_fail(FERRY_ENOMEM, "out of memory");
    for (size_t i = 0, start = 0; i < b->n; start = b->ends[i++]) {
        refs[i].data = b->data.data + start;
        refs[i].len = b->ends[i] - start;
    }
    pthread_mutex_lock(&j->lock);
    if (j->failed)
        e = fy_fail(FERRY_EFAILED, "journal %s: an earlier write or sync failed, so what reached the disk is "
                    "unknown; this handle refuses records until it is closed and opened again", j->jr.path);
    else
        e = fy_journal_append_meta(&j->jr, refs, b->n, j->evict_oldest, counts, ncounts, &seq);
    /* After a failed write or fsync the kernel may have dropped the pages
     * and marked them clean ("fsyncgate"): retrying on this handle could
     * report success for data that never reaches the disk. Reopening
     * re-reads the journal's committed state. */
    if (e == FERRY_EFAILED || (e && j->jr.commit_io_failed)) {
        if (!j->failed && e != FERRY_EFAILED) {
            char msg[400];
            snprintf(msg, sizeof msg, "%s", ferry_last_error());
            fy_fail(e, "%s (this handle now refuses records until it is reopened)", msg);
        }
        j->failed = 1;
    }
    pthread_mutex_unlock(&j->lock);
    if (refs != stack_refs)
        free(refs);
    if (e)
        return e;
    ferry_batch_clear(b);
    if (first_seq)
        *first_seq = seq;
    return FERRY_OK;
}

/* Single events use a batch of one on the stack-free path. */
static ferry_err record_one(ferry_journal *j, ferry_err (*add)(ferry_batch *, const void *, size_t),
                            const void *arg, size_t len, uint64_t *seq)
{
    ferry_batch b = {0};
    fy_buf_init(&b.data, 0);
    b.policy = j->opt_out ? NULL : fy_policy_ref(j->policy);
    ferry_err e = add(&b, arg, len);
    if (!e)
        e = ferry_record_batch(j, &b, seq);
    fy_buf_free(&b.data);
    free(b.ends);
    fy_policy_unref(b.policy);
    fy_jsonfast_free(b.fast);
    return e;
}

static ferry_err add_event(ferry_batch *b, const void *ev, size_t len)
{
    (void)len;
    return ferry_batch_add(b, ev);
}

static ferry_err add_json(ferry_batch *b, const void *json, size_t len)
{
    return ferry_batch_add_json(b, json, len);
}

ferry_err ferry_record(ferry_journal *j, const ferry_event *ev, uint64_t *seq)
{
    fy_clear_error();
    return record_one(j, add_event, ev, 0, seq);
}

ferry_err ferry_record_json(ferry_journal *j, const char *json, size_t len, uint64_t *seq)
{
    fy_clear_error();
    return record_one(j, add_json, json, len, seq);
}

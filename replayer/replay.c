/* replay.c: the drain loop and its bookkeeping.
 *
 * Exactly-once rests on three rules kept here:
 *   1. a request's events are chosen in a read transaction that ends before
 *      the network is touched (a stuck upload never blocks a recorder);
 *   2. the cursor moves only in a transaction committed after the destination
 *      acknowledged the events (or they were dead-lettered), so a crash in
 *      between resends the same events with the same insert_ids;
 *   3. every resend is counted, and one later than Amplitude's 7-day
 *      deduplication window is reported. */
#include "replay.h"
#include "rp.h"
#include "clock.h"
#include "fy_cli.h"
#include "fy_fail.h"
#include "fy_record.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

#define PROG "ferry-replay"

typedef struct run {
    const rp_config *cfg;
    fy_journal j;
    rp_http *http;
    rp_devices *dev;
    rp_batch batch;
    rp_response resp;
    size_t max_events; /* shrinks after a 413 */
    int gzip;
    /* this run's counts */
    uint64_t delivered, dead, resent, requests, outside_window;
    uint64_t losses_reported; /* "[ferry] events lost" notices acknowledged (gaps, loss.c) */
    uint64_t bytes_wire, bytes_raw, pending_start;
    int64_t started_ms, fail_since_ms, last_progress_ms;
    unsigned failures; /* consecutive, for the backoff */
    int holding;       /* events of this boot held back (logged once) */
    fy_cursor before;  /* the cursor's attempt fields before the request in flight */
    int in_doubt;      /* the request in `batch` may have arrived: no definite answer yet */
} run;

static void logf_(const char *fmt, ...) FY_PRINTF(1, 2);
static void logf_(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs(PROG ": ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

/* Overwrites every copy of the API key in s (text from the endpoint). */
static void scrub(char *s, const char *key)
{
    size_t kl = key ? strlen(key) : 0;
    char *p;
    while (s && kl && (p = strstr(s, key)))
        memset(p, '*', kl);
}

/* ---- bookkeeping transactions ------------------------------------------ */

typedef ferry_err (*cursor_edit)(run *r, MDB_txn *txn, fy_cursor *c, void *arg);

/* Reads the cursor, lets `edit` change it and the journal, writes it back
 * and commits: one transaction per bookkeeping step. */
static ferry_err with_cursor(run *r, cursor_edit edit, void *arg)
{
    MDB_txn *txn;
    fy_cursor c;
    int found;
    ferry_err e = fy_txn_begin(&r->j, 0, &txn);
    if (e)
        return e;
    if ((e = fy_cursor_get(&r->j, txn, r->cfg->sink, &c, &found))) {
        mdb_txn_abort(txn);
        return e;
    }
    e = edit(r, txn, &c, arg);
    if (!e)
        e = fy_cursor_put(&r->j, txn, r->cfg->sink, &c);
    fy_cursor_free(&c);
    if (e) {
        mdb_txn_abort(txn);
        return e;
    }
    return fy_txn_commit(&r->j, txn, "the delivery cursor");
}

static ferry_err edit_nothing(run *r, MDB_txn *txn, fy_cursor *c, void *arg)
{
    (void)r, (void)txn, (void)c, (void)arg;
    return FERRY_OK;
}

/* Before sending: count resends and remember the first attempt. Committed
 * before the request leaves, so that a crash after it counts as an attempt. */
static ferry_err edit_before_send(run *r, MDB_txn *txn, fy_cursor *c, void *arg)
{
    (void)txn, (void)arg;
    r->before.attempted = c->attempted;
    r->before.inflight_first_ms = c->inflight_first_ms;
    r->before.resent = c->resent;
    r->before.outside_window = c->outside_window;
    const rp_batch *b = &r->batch;
    int64_t now = fy_now_ms();
    uint64_t again = 0, top = 0;
    for (size_t i = 0; i < b->n; i++) {
        again += b->seqs[i] <= c->attempted;
        top = b->seqs[i] > top ? b->seqs[i] : top;
    }
    if (again) {
        c->resent += again;
        r->resent += again;
        if (c->inflight_first_ms && now - c->inflight_first_ms > RP_DEDUP_WINDOW_MS) {
            c->outside_window += again;
            r->outside_window += again;
            logf_("warning: resending %" PRIu64 " event(s) first sent more than 7 days ago: Amplitude may "
                  "no longer deduplicate them", again);
        }
    }
    if (top > c->attempted)
        c->attempted = top;
    if (!c->inflight_first_ms)
        c->inflight_first_ms = now;
    return FERRY_OK;
}

/* The request never left this machine (refused, unresolved, TLS failure), or
 * the destination said it ingested none of it (400, 413, 415, 429): it was
 * not an attempt after all, so nothing counts as resent later and the
 * deduplication window has not started. */
static ferry_err edit_not_sent(run *r, MDB_txn *txn, fy_cursor *c, void *arg)
{
    (void)txn, (void)arg;
    r->resent -= c->resent - r->before.resent;
    r->outside_window -= c->outside_window - r->before.outside_window;
    c->attempted = r->before.attempted;
    c->inflight_first_ms = r->before.inflight_first_ms;
    c->resent = r->before.resent;
    c->outside_window = r->before.outside_window;
    return FERRY_OK;
}

static ferry_err prune(run *r, MDB_txn *txn)
{
    uint64_t n;
    return r->cfg->keep_delivered ? FERRY_OK : fy_events_prune(&r->j, txn, 0, &n);
}

/* After a 200: the request's events are delivered. */
static ferry_err edit_delivered(run *r, MDB_txn *txn, fy_cursor *c, void *arg)
{
    (void)arg;
    const rp_batch *b = &r->batch; /* built in sequence order */
    ferry_err e = fy_cursor_mark_done(&r->j, txn, c, b->seqs, b->n);
    if (e)
        return e;
    if ((e = rp_loss_acked(&r->j, txn, r->cfg->sink, b)))
        return e;
    c->sent += b->n;
    c->last_success_ms = fy_now_ms();
    if (c->delivered >= c->attempted)
        c->inflight_first_ms = 0;
    /* The cursor must be written before pruning reads it. */
    if ((e = fy_cursor_put(&r->j, txn, r->cfg->sink, c)))
        return e;
    return prune(r, txn);
}

typedef struct dead_list {
    const uint64_t *seqs;
    char *const *reasons; /* NULL entries are skipped */
    size_t n;
    long status;
} dead_list;

/* Moves events the destination rejected for good to `dead`. */
static ferry_err edit_dead(run *r, MDB_txn *txn, fy_cursor *c, void *arg)
{
    const dead_list *dl = arg;
    uint64_t *done = malloc(dl->n * sizeof *done + 1);
    size_t k = 0;
    ferry_err e = done ? FERRY_OK : fy_fail(FERRY_ENOMEM, "out of memory");
    for (size_t i = 0; i < dl->n && !e; i++) {
        if (!dl->reasons[i])
            continue;
        unsigned char kb[8];
        fy_put_be64(kb, dl->seqs[i]);
        MDB_val key = {8, kb}, val = {0, NULL};
        int rc = mdb_get(txn, r->j.events, &key, &val);
        if (rc && rc != MDB_NOTFOUND) {
            e = fy_fail_lmdb(rc, "journal %s: reading event %" PRIu64, r->j.path, dl->seqs[i]);
            break;
        }
        e = fy_dead_put(&r->j, txn, r->cfg->sink, dl->seqs[i], dl->status, dl->reasons[i], val.mv_data,
                        val.mv_size);
        if (!e)
            done[k++] = dl->seqs[i];
        logf_("event %" PRIu64 " dead-lettered (status %ld): %s", dl->seqs[i], dl->status, dl->reasons[i]);
    }
    if (!e)
        e = fy_cursor_mark_done(&r->j, txn, c, done, k);
    free(done);
    if (e)
        return e;
    c->dead += k;
    r->dead += k;
    if ((e = fy_cursor_put(&r->j, txn, r->cfg->sink, c)))
        return e;
    return prune(r, txn);
}

static ferry_err dead_one(run *r, uint64_t seq, long status, const char *reason)
{
    char *reasons[1] = {(char *)(uintptr_t)reason};
    dead_list dl = {&seq, reasons, 1, status};
    return with_cursor(r, edit_dead, &dl);
}

/* ---- pending count and progress ---------------------------------------- */

static uint64_t count_pending(run *r)
{
    MDB_txn *txn;
    uint64_t n = 0;
    if (fy_txn_begin(&r->j, MDB_RDONLY, &txn))
        return 0;
    fy_cursor c;
    int found;
    MDB_cursor *cur;
    if (!fy_cursor_get(&r->j, txn, r->cfg->sink, &c, &found)) {
        if (!mdb_cursor_open(txn, r->j.events, &cur)) {
            unsigned char kb[8];
            fy_put_be64(kb, c.delivered + 1);
            MDB_val k = {8, kb}, d;
            for (int rc = mdb_cursor_get(cur, &k, &d, MDB_SET_RANGE); !rc;
                 rc = mdb_cursor_get(cur, &k, &d, MDB_NEXT))
                n += !fy_cursor_is_done(&c, fy_get_be64(k.mv_data));
            mdb_cursor_close(cur);
        }
        fy_cursor_free(&c);
    }
    mdb_txn_abort(txn);
    return n;
}

static void progress(run *r, int final)
{
    if (!r->cfg->progress)
        return;
    int64_t now = rp_now_ms();
    if (!final && now - r->last_progress_ms < 200)
        return;
    r->last_progress_ms = now;
    uint64_t done = r->delivered + r->dead;
    uint64_t total = r->pending_start > done ? r->pending_start : done;
    double secs = (double)(now - r->started_ms) / 1000.0;
    double rate = secs > 0 ? (double)done / secs : 0;
    double eta = rate > 0 ? (double)(total - done) / rate : 0;
    fprintf(stderr, "\r" PROG ": delivered %" PRIu64 "/%" PRIu64 " (%.0f%%), %.0f events/s, ETA %.0f s   ",
            done, total, total ? 100.0 * (double)done / (double)total : 100.0, rate, eta);
    if (final)
        fputc('\n', stderr);
}

static int finish(run *r, int code, const char *why)
{
    progress(r, 1);
    uint64_t pending = count_pending(r);
    double secs = (double)(rp_now_ms() - r->started_ms) / 1000.0;
    if (why)
        logf_("%s: delivered %" PRIu64 ", dead %" PRIu64 ", %" PRIu64 " still pending", why, r->delivered, r->dead,
              pending);
    if (r->cfg->json) {
        printf("{\"exit_code\":%d,\"sink\":", code);
        fy_buf b;
        fy_buf_init(&b, 0);
        fy_json_emit_string(&b, r->cfg->sink, strlen(r->cfg->sink));
        fwrite(b.data, 1, b.len, stdout);
        fy_buf_free(&b);
        printf(",\"delivered\":%" PRIu64 ",\"dead\":%" PRIu64 ",\"resent\":%" PRIu64
               ",\"resent_outside_dedup_window\":%" PRIu64 ",\"pending\":%" PRIu64 ",\"requests\":%" PRIu64
               ",\"bytes_sent\":%" PRIu64 ",\"bytes_uncompressed\":%" PRIu64 ",\"losses_reported\":%" PRIu64
               ",\"held\":%" PRIu64 ",\"seconds\":%.3f}\n",
               r->delivered, r->dead, r->resent, r->outside_window, pending, r->requests, r->bytes_wire,
               r->bytes_raw, r->losses_reported, r->batch.held, secs);
        fflush(stdout);
    }
    return code;
}

/* ---- the loop ---------------------------------------------------------- */

static int journal_fail(run *r, ferry_err e)
{
    if (e == FERRY_ECORRUPT) { /* LMDB met a damaged page: stop, name the remedy */
        rp_report_damage(r->cfg->journal_dir, ferry_last_error());
        if (r->cfg->json) /* no counts: reading the journal again could crash */
            printf("{\"exit_code\":%d,\"journal_damaged\":true}\n", EX_DATAERR);
        return EX_DATAERR;
    }
    logf_("%s", ferry_last_error());
    return finish(r, fy_cli_exit_code(e), NULL);
}

/* Waits after a failure: capped exponential backoff with jitter, at least
 * min_s. Returns nonzero when --once should give up now. */
static int backoff(run *r, double min_s)
{
    int64_t now = rp_now_ms();
    if (!r->fail_since_ms)
        r->fail_since_ms = now;
    r->failures++;
    double delay = r->cfg->max_retry_delay_s < 1.0 ? r->cfg->max_retry_delay_s : 1.0;
    for (unsigned i = 1; i < r->failures && delay < r->cfg->max_retry_delay_s; i++)
        delay *= 2;
    if (delay > r->cfg->max_retry_delay_s)
        delay = r->cfg->max_retry_delay_s;
    unsigned char rb[2] = {0, 0};
    fy_random_bytes(rb, 2);
    delay = delay / 2 + delay / 2 * ((double)(rb[0] << 8 | rb[1]) / 65535.0); /* "equal jitter" */
    if (delay < min_s)
        delay = min_s;
    int64_t wait = (int64_t)(delay * 1000.0);
    if (!r->cfg->follow) {
        int64_t deadline = r->fail_since_ms + (int64_t)(r->cfg->retry_for_s * 1000.0);
        if (now >= deadline)
            return 1;
        if (now + wait > deadline)
            wait = deadline - now;
    }
    rp_sleep_ms(wait);
    return 0;
}

static void succeeded(run *r)
{
    r->failures = 0;
    r->fail_since_ms = 0;
}

static int acquire_lock(const rp_config *cfg)
{
    char path[4200];
    snprintf(path, sizeof path, "%s/replay-%s.lock", cfg->journal_dir, cfg->sink);
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0) {
        logf_("cannot create %s: %s", path, strerror(errno));
        return -1;
    }
    if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
        logf_("another ferry-replay is draining destination %s of %s", cfg->sink, cfg->journal_dir);
        close(fd);
        return -2;
    }
    return fd; /* held until exit */
}

static int step(run *r); /* one request; returns -1 to go on, else an exit code */

int rp_run(const rp_config *cfg)
{
    run r;
    memset(&r, 0, sizeof r);
    r.cfg = cfg;
    r.max_events = cfg->max_events;
    r.gzip = cfg->gzip;
    r.started_ms = rp_now_ms();
    int damaged = rp_check_pages(cfg->journal_dir);
    if (damaged)
        return damaged;
    fy_open_opts o = {0};
    ferry_err e = fy_journal_open(&r.j, cfg->journal_dir, &o);
    if (e == FERRY_ECORRUPT) {
        rp_report_damage(cfg->journal_dir, ferry_last_error());
        return EX_DATAERR;
    }
    if (e) {
        logf_("%s", ferry_last_error());
        return fy_cli_exit_code(e);
    }
    rp_batch_init(&r.batch);
    r.batch.clock = rp_clock_new(cfg->time_floor_ms, cfg->clock_jump_ms);
    r.batch.ip_mode = cfg->ip_mode;
    rp_response_init(&r.resp);
    int code, lock = acquire_lock(cfg);
    r.http = rp_http_new(cfg->url, cfg->timeout_s, cfg->ca_file);
    r.dev = rp_devices_new(cfg->device_rate);
    if (lock < 0)
        code = lock == -2 ? EX_TEMPFAIL : EX_CANTCREAT;
    else if (!r.http || !r.dev || !r.batch.clock)
        code = EX_OSERR;
    else if ((e = with_cursor(&r, edit_nothing, NULL))) /* registers the destination */
        code = journal_fail(&r, e);
    else {
        /* Counting reads every pending record: only for the progress line. */
        r.pending_start = cfg->progress ? count_pending(&r) : 0;
        while ((code = step(&r)) < 0)
            ;
    }
    if (lock >= 0)
        close(lock);
    rp_devices_free(r.dev);
    rp_http_free(r.http);
    rp_clock_free(r.batch.clock);
    rp_batch_free(&r.batch);
    rp_response_free(&r.resp);
    fy_journal_close(&r.j);
    return code;
}

static int stopped(run *r)
{
    if (r->cfg->follow)
        return finish(r, EX_OK, NULL);
    return finish(r, count_pending(r) ? EX_TEMPFAIL : EX_OK, "stopped");
}

static int idle(run *r)
{
    rp_batch *b = &r->batch;
    int64_t now = rp_now_ms(), wait = 250; /* --follow polls for new events */
    if (!b->pending_seen && !r->cfg->follow)
        return finish(r, EX_OK, NULL); /* --once: nothing left to send */
    if (b->held) { /* this boot's events wait for a trustworthy clock (clock.h) */
        if (!r->holding)
            logf_("holding %" PRIu64 " event(s) of this boot: the clock is before the time floor, so their "
                  "times cannot be checked yet (waiting for it to be set)", b->held);
        r->holding = 1;
        if (!r->cfg->follow && !r->fail_since_ms)
            r->fail_since_ms = now;
        if (!r->cfg->follow && now - r->fail_since_ms >= (int64_t)(r->cfg->retry_for_s * 1000.0))
            return finish(r, EX_TEMPFAIL, "clock not set");
    } else {
        r->holding = 0;
    }
    if (!r->cfg->follow && r->fail_since_ms &&
        now - r->fail_since_ms >= (int64_t)(r->cfg->retry_for_s * 1000.0))
        return finish(r, EX_TEMPFAIL, "still throttled"); /* only paused devices are left */
    if (b->next_ready_ms > now && b->next_ready_ms - now < wait * 4)
        wait = b->next_ready_ms - now;
    else if (b->next_ready_ms > now)
        wait = 1000;
    rp_sleep_ms(wait);
    return -1;
}

static int step(run *r)
{
    const rp_config *cfg = r->cfg;
    rp_batch *b = &r->batch;
    if (rp_stop)
        return stopped(r);
    if (cfg->opted_out && cfg->opted_out(cfg->opted_out_arg))
        return finish(r, EX_OK, NULL); /* before building the next request */
    progress(r, 0);
    /* A request that may have arrived, some of whose events were evicted
     * since, goes again as it is (same insert_ids: deduplicated): rebuilt,
     * it would lack them and they would be reported lost although they may
     * have arrived; its acknowledgement takes them back (loss.c). */
    size_t evicted = 0;
    ferry_err e = r->in_doubt ? rp_loss_evicted(&r->j, b, &evicted) : FERRY_OK;
    if (e)
        return journal_fail(r, e);
    if (evicted)
        logf_("resending the unanswered request as it was: %zu of its events were evicted meanwhile", evicted);
    else if ((r->in_doubt = 0, e = rp_batch_build(&r->j, cfg->sink, r->dev, cfg->api_key, r->max_events,
                                                   cfg->max_bytes, b)))
        return journal_fail(r, e);
    if (b->corrupt_seq) { /* never stuck behind a damaged record */
        e = dead_one(r, b->corrupt_seq, 0, b->corrupt_reason);
        return e ? journal_fail(r, e) : -1;
    }
    if (b->too_big_seq) {
        e = dead_one(r, b->too_big_seq, 413, "event larger than a whole request");
        return e ? journal_fail(r, e) : -1;
    }
    if (b->n == 0 && b->n_loss == 0)
        return idle(r);
    if ((e = with_cursor(r, edit_before_send, NULL)))
        return journal_fail(r, e);

    size_t wire = 0;
    rp_http_post(r->http, b->body.data, b->body.len, r->gzip, &r->resp, &wire);
    r->requests++;
    r->bytes_wire += wire;
    r->bytes_raw += b->body.len;
    if (rp_stop && r->resp.transport_error)
        return stopped(r); /* aborted mid-transfer: the events stay pending */
    rp_verdict v;
    rp_classify(&r->resp, b->n + b->n_loss, &v); /* one or the other */
    /* An endpoint may echo the request: its words never carry the key into
     * logs or dead letters. */
    scrub(v.message, cfg->api_key);
    for (size_t i = 0; v.reasons && i < v.n_events; i++)
        scrub(v.reasons[i], cfg->api_key);
    /* Only a 200, a 5xx or no clear answer may mean the events arrived. */
    int not_ingested = !r->resp.sent || (v.kind != RP_OK && v.kind != RP_RETRY);
    if (not_ingested && (e = with_cursor(r, edit_not_sent, NULL))) {
        rp_verdict_free(&v);
        return journal_fail(r, e);
    }
    /* In doubt until a definite answer (a refused connection is not one). */
    r->in_doubt = v.kind == RP_RETRY && (r->in_doubt || r->resp.sent);
    int code = -1;
    switch (v.kind) {
    case RP_OK:
        if ((e = with_cursor(r, edit_delivered, NULL)))
            code = journal_fail(r, e);
        else
            r->delivered += b->n, r->losses_reported += b->n_loss, succeeded(r);
        break;
    case RP_REJECTED: {
        dead_list dl = {b->seqs, v.reasons, b->n, r->resp.status};
        if ((e = b->n_loss ? rp_loss_refused(&r->j, cfg->sink, b, v.reasons, r->resp.status)
                           : with_cursor(r, edit_dead, &dl)))
            code = journal_fail(r, e);
        else
            succeeded(r); /* the rest goes in the next request */
        break;
    }
    case RP_CONFIG:
        logf_("the endpoint refused the request: %s; nothing was moved. Check the API key, the endpoint "
              "and the region (--eu)", v.message);
        code = finish(r, EX_CONFIG, NULL);
        break;
    case RP_TOO_LARGE:
        if (b->n_loss == 1) {
            e = rp_loss_refused(&r->j, cfg->sink, b, NULL, 413);
            code = e ? journal_fail(r, e) : -1;
        } else if (b->n == 1) {
            e = dead_one(r, b->seqs[0], 413, "payload too large for the endpoint");
            code = e ? journal_fail(r, e) : -1;
        } else {
            r->max_events = (b->n + b->n_loss) / 2;
            logf_("413 payload too large: splitting, at most %zu events per request now", r->max_events);
        }
        break;
    case RP_GZIP_REFUSED:
        logf_("the endpoint does not take gzip bodies (415): sending uncompressed");
        r->gzip = 0;
        break;
    case RP_THROTTLED: {
        double wait = (double)v.wait_s > cfg->throttle_wait_s ? (double)v.wait_s : cfg->throttle_wait_s;
        if (v.daily_quota)
            wait = 3600; /* over the daily quota: come back much later */
        int64_t until = rp_now_ms() + (int64_t)(wait * 1000.0);
        for (size_t i = 0; i < v.n_throttled; i++)
            rp_devices_pause(r->dev, v.throttled_ids[i], until);
        logf_("429 throttled: pausing %zu device(s)/user(s) for %.0f s", v.n_throttled, wait);
        if (v.n_throttled == 0) { /* the whole project is throttled */
            if (backoff(r, wait))
                code = finish(r, EX_TEMPFAIL, "throttled for too long");
        } else if (!r->fail_since_ms) {
            r->fail_since_ms = rp_now_ms();
        }
        break;
    }
    case RP_RETRY:
        logf_("will retry: %s", v.message);
        if (backoff(r, (double)v.wait_s))
            code = finish(r, EX_TEMPFAIL, "endpoint unreachable");
        break;
    }
    rp_verdict_free(&v);
    fy_journal_release_pages(&r->j); /* the records sent need not stay resident */
    return code;
}

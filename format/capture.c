/* capture.c: writing and checking captures (FORMAT.md, "Captures"), SHA-256
 * through OpenSSL's libcrypto, and the journal writes an import needs. */
#include "fy_capture.h"
#include "fy_fail.h"
#include "fy_record.h"

#include <inttypes.h>
#include <stdarg.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAGIC "FERRYCAP"
#define END_MAGIC "FERRYEND"
#define TAG "RECD"
#define FIXED_HEADER 16u           /* magic, version, header body length */
#define TRAILER (8u + 8u + 32u + 32u)
#define MAX_HEADER_BODY (64u << 20)

/* ---- SHA-256 ------------------------------------------------------------ */

ferry_err fy_sha256_init(fy_sha256 *h)
{
    h->failed = 0;
    h->ctx = EVP_MD_CTX_new();
    if (!h->ctx)
        return fy_fail(FERRY_ENOMEM, "out of memory (SHA-256)");
    if (EVP_DigestInit_ex(h->ctx, EVP_sha256(), NULL) != 1) {
        EVP_MD_CTX_free(h->ctx);
        h->ctx = NULL;
        return fy_fail(FERRY_EIO, "SHA-256 is not available from libcrypto");
    }
    return FERRY_OK;
}

void fy_sha256_update(fy_sha256 *h, const void *p, size_t n)
{
    if (n && EVP_DigestUpdate(h->ctx, p, n) != 1)
        h->failed = 1;
}

ferry_err fy_sha256_final(fy_sha256 *h, unsigned char out[FY_CAP_DIGEST])
{
    unsigned int n = 0;
    int ok = !h->failed && EVP_DigestFinal_ex(h->ctx, out, &n) == 1 && n == FY_CAP_DIGEST;
    h->failed = EVP_DigestInit_ex(h->ctx, EVP_sha256(), NULL) != 1;
    return ok ? FERRY_OK : fy_fail(FERRY_EIO, "SHA-256 failed in libcrypto");
}

void fy_sha256_free(fy_sha256 *h)
{
    if (h->ctx)
        EVP_MD_CTX_free(h->ctx);
    h->ctx = NULL;
}

ferry_err fy_sha256_two(const void *a, size_t na, const void *b, size_t nb, unsigned char out[FY_CAP_DIGEST])
{
    fy_sha256 h;
    ferry_err e = fy_sha256_init(&h);
    if (e)
        return e;
    fy_sha256_update(&h, a, na);
    fy_sha256_update(&h, b, nb);
    e = fy_sha256_final(&h, out);
    fy_sha256_free(&h);
    return e;
}

void fy_hex(const unsigned char *p, size_t n, char *out)
{
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = digits[p[i] >> 4];
        out[2 * i + 1] = digits[p[i] & 15];
    }
    out[2 * n] = '\0';
}

/* ---- big-endian helpers -------------------------------------------------- */

static ferry_err put_be(fy_buf *b, uint64_t v, unsigned bytes)
{
    unsigned char t[8];
    for (unsigned i = 0; i < bytes; i++)
        t[bytes - 1 - i] = (unsigned char)(v >> (8 * i));
    return fy_buf_append(b, t, bytes);
}

static ferry_err put_str(fy_buf *b, fy_cap_str s, unsigned len_bytes)
{
    ferry_err e = put_be(b, s.n, len_bytes);
    return e ? e : fy_buf_append(b, s.p, s.n);
}

static uint64_t get_be(const unsigned char *p, unsigned bytes)
{
    uint64_t v = 0;
    for (unsigned i = 0; i < bytes; i++)
        v = (v << 8) | p[i];
    return v;
}

/* ---- writing -------------------------------------------------------------- */

static ferry_err emit(fy_capw *w, const void *p, size_t n)
{
    fy_sha256_update(&w->content, p, n);
    return w->write(w->arg, p, n);
}

ferry_err fy_capw_begin(fy_capw *w, const fy_cap_header *h, fy_cap_write_fn fn, void *arg)
{
    memset(w, 0, sizeof *w);
    w->write = fn;
    w->arg = arg;
    w->count = h->count;
    w->n_dests = h->n_dests;
    fy_buf_init(&w->buf, 0);
    if (h->n_dests == 0 || h->n_dests > FY_CAP_MAX_DESTS)
        return fy_fail(FERRY_EINVAL, "a capture names 1 to %u destinations, not %zu", FY_CAP_MAX_DESTS, h->n_dests);
    ferry_err e = fy_sha256_init(&w->content);
    if (!e)
        e = fy_sha256_init(&w->chain_h);
    if (e)
        return e;
    fy_buf *b = &w->buf;
    e = fy_buf_append(b, MAGIC, 8);
    if (!e) e = put_be(b, FY_CAP_MAJOR, 2);
    if (!e) e = put_be(b, FY_CAP_MINOR, 2);
    if (!e) e = put_be(b, 0, 4); /* header body length, filled in below */
    if (!e) e = fy_buf_append(b, h->journal_id, 16);
    if (!e) e = put_be(b, h->journal_major, 4);
    if (!e) e = put_be(b, h->journal_minor, 4);
    if (!e) e = put_be(b, (uint64_t)h->created_ms, 8);
    if (!e) e = put_be(b, (uint64_t)h->export_ms, 8);
    if (!e) e = put_be(b, h->count, 8);
    if (!e) e = put_be(b, h->first_seq, 8);
    if (!e) e = put_be(b, h->last_seq, 8);
    if (!e) e = put_be(b, h->recorded, 8);
    if (!e) e = put_be(b, h->evicted, 8);
    if (!e) e = put_be(b, h->pruned, 8);
    if (!e) e = put_str(b, h->producer, 2);
    if (!e) e = put_str(b, h->filter, 4);
    if (!e) e = put_be(b, h->n_dests, 2);
    for (size_t i = 0; i < h->n_dests && !e; i++) {
        if (h->dests[i].n == 0 || h->dests[i].n > FY_CAP_MAX_NAME)
            return fy_fail(FERRY_EINVAL, "destination name of %zu bytes", h->dests[i].n);
        e = put_str(b, h->dests[i], 2);
    }
    if (!e) e = put_be(b, h->n_devices, 4);
    for (size_t i = 0; i < h->n_devices && !e; i++)
        e = put_str(b, h->devices[i], 2);
    if (!e) e = put_be(b, h->n_gaps, 4);
    for (size_t i = 0; i < h->n_gaps && !e; i++) {
        const fy_cap_gap *g = &h->gaps[i];
        if (g->dest.n == 0 || g->dest.n > FY_CAP_MAX_NAME || g->device_id.n > FY_CAP_MAX_DEVICE ||
            g->user_id.n > FY_CAP_MAX_DEVICE)
            return fy_fail(FERRY_EINVAL, "capture: gap %zu has a name or id too long", i + 1);
        e = put_str(b, g->dest, 2);
        if (!e) e = fy_buf_append(b, g->journal_id, 16);
        if (!e) e = put_be(b, g->first_seq, 8);
        if (!e) e = put_be(b, g->last_seq, 8);
        if (!e) e = put_be(b, g->count, 8);
        if (!e) e = put_be(b, (uint64_t)g->first_time, 8);
        if (!e) e = put_be(b, (uint64_t)g->last_time, 8);
        if (!e) e = put_be(b, (uint64_t)g->first_recorded, 8);
        if (!e) e = put_be(b, (uint64_t)g->last_recorded, 8);
        if (!e) e = put_be(b, (uint64_t)g->at_ms, 8);
        if (!e) e = put_be(b, (g->has_device ? 1u : 0u) | (g->has_user ? 2u : 0u), 1);
        if (!e && g->has_device) e = put_str(b, g->device_id, 2);
        if (!e && g->has_user) e = put_str(b, g->user_id, 2);
    }
    if (e)
        return e;
    uint64_t body = b->len - FIXED_HEADER;
    if (body > MAX_HEADER_BODY)
        return fy_fail(FERRY_ETOOBIG, "capture header of %" PRIu64 " bytes (too many device ids or gaps)", body);
    for (unsigned i = 0; i < 4; i++)
        b->data[12 + i] = (char)(unsigned char)(body >> (8 * (3 - i)));
    if ((e = fy_sha256_two(b->data, b->len, NULL, 0, w->chain)) || (e = emit(w, b->data, b->len)) ||
        (e = emit(w, w->chain, FY_CAP_DIGEST)))
        return e;
    fy_buf_reset(b);
    return FERRY_OK;
}

ferry_err fy_capw_entry(fy_capw *w, uint64_t seq, unsigned flags, const fy_cap_state *states, const void *rec,
                        size_t rec_len)
{
    if (w->ordinal >= w->count)
        return fy_fail(FERRY_EINVAL, "capture: more entries than the %" PRIu64 " announced", w->count);
    if (seq <= w->last_seq)
        return fy_fail(FERRY_EINVAL, "capture: seq %" PRIu64 " after %" PRIu64, seq, w->last_seq);
    if (rec_len > FY_MAX_RECORD_BYTES)
        return fy_fail(FERRY_ETOOBIG, "capture: record of %zu bytes", rec_len);
    fy_buf *b = &w->buf;
    fy_buf_reset(b);
    ferry_err e = fy_buf_append(b, TAG, 4);
    if (!e) e = put_be(b, 0, 4);
    if (!e) e = put_be(b, w->ordinal + 1, 8);
    if (!e) e = put_be(b, seq, 8);
    if (!e) e = put_be(b, flags, 1);
    for (size_t i = 0; i < w->n_dests && !e; i++) {
        const fy_cap_state *s = &states[i];
        if (s->state > FY_CAP_DEAD)
            return fy_fail(FERRY_EINVAL, "capture: delivery state %u", s->state);
        e = put_be(b, s->state, 1);
        if (!e && s->state == FY_CAP_DEAD) {
            fy_cap_str reason = s->reason;
            if (reason.n > FY_CAP_MAX_REASON)
                reason.n = FY_CAP_MAX_REASON;
            if (!(e = put_be(b, (uint64_t)s->status, 8)) && !(e = put_be(b, (uint64_t)s->at_ms, 8)))
                e = put_str(b, reason, 2);
        }
    }
    if (!e) e = put_be(b, rec_len, 4);
    if (!e) e = fy_buf_append(b, rec, rec_len);
    if (e)
        return e;
    uint64_t body = b->len - 8;
    for (unsigned i = 0; i < 4; i++)
        b->data[4 + i] = (char)(unsigned char)(body >> (8 * (3 - i)));
    unsigned char next[FY_CAP_DIGEST];
    fy_sha256_update(&w->chain_h, w->chain, FY_CAP_DIGEST);
    fy_sha256_update(&w->chain_h, b->data, b->len);
    if ((e = fy_sha256_final(&w->chain_h, next)))
        return e;
    memcpy(w->chain, next, FY_CAP_DIGEST);
    if ((e = emit(w, b->data, b->len)) || (e = emit(w, w->chain, FY_CAP_DIGEST)))
        return e;
    w->ordinal++;
    w->last_seq = seq;
    return FERRY_OK;
}

ferry_err fy_capw_end(fy_capw *w)
{
    if (w->ordinal != w->count)
        return fy_fail(FERRY_EINVAL, "capture: %" PRIu64 " entries written, %" PRIu64 " announced", w->ordinal,
                       w->count);
    fy_buf *b = &w->buf;
    fy_buf_reset(b);
    ferry_err e = fy_buf_append(b, END_MAGIC, 8);
    if (!e) e = put_be(b, w->count, 8);
    if (!e) e = fy_buf_append(b, w->chain, FY_CAP_DIGEST);
    if (!e) e = emit(w, b->data, b->len);
    unsigned char digest[FY_CAP_DIGEST];
    if (!e) e = fy_sha256_final(&w->content, digest);
    if (!e) e = w->write(w->arg, digest, FY_CAP_DIGEST);
    return e;
}

void fy_capw_free(fy_capw *w)
{
    fy_sha256_free(&w->content);
    fy_sha256_free(&w->chain_h);
    fy_buf_free(&w->buf);
}

/* ---- reading ------------------------------------------------------------ */

typedef struct rd {
    const unsigned char *p;
    size_t n, off;
    int bad;
} rd;

static uint64_t rd_be(rd *r, unsigned bytes)
{
    if (r->bad || r->n - r->off < bytes) {
        r->bad = 1;
        return 0;
    }
    uint64_t v = get_be(r->p + r->off, bytes);
    r->off += bytes;
    return v;
}

static fy_cap_str rd_str(rd *r, unsigned len_bytes)
{
    fy_cap_str s = {NULL, 0};
    uint64_t n = rd_be(r, len_bytes);
    if (r->bad || r->n - r->off < n) {
        r->bad = 1;
        return s;
    }
    s.p = (const char *)r->p + r->off;
    s.n = (size_t)n;
    r->off += (size_t)n;
    return s;
}

static void report(fy_capr *r, const char *where, uint64_t offset, const char *fmt, ...) FY_PRINTF(4, 5);
static void report(fy_capr *r, const char *where, uint64_t offset, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    r->problems++;
    if (r->problem)
        r->problem(r->arg, where, offset, msg);
}

/* 1.1: the eviction gaps. A gap that cannot be true is a problem. */
static ferry_err read_gaps(fy_capr *r, rd *b)
{
    fy_cap_header *x = &r->h;
    uint64_t n = rd_be(b, 4);
    if (b->bad || n > (b->n - b->off) / 84) { /* a gap takes at least 84 bytes */
        b->bad = 1;
        return FERRY_OK;
    }
    if (!(x->gaps = calloc((size_t)n + 1, sizeof *x->gaps)))
        return fy_fail(FERRY_ENOMEM, "out of memory");
    x->n_gaps = (size_t)n;
    for (size_t i = 0; i < x->n_gaps && !b->bad; i++) {
        fy_cap_gap *g = &x->gaps[i];
        size_t at = b->off;
        g->dest = rd_str(b, 2);
        if (b->n - b->off >= 16 && !b->bad)
            memcpy(g->journal_id, b->p + b->off, 16);
        b->off += b->n - b->off >= 16 ? 16 : 0;
        g->first_seq = rd_be(b, 8);
        g->last_seq = rd_be(b, 8);
        g->count = rd_be(b, 8);
        g->first_time = (int64_t)rd_be(b, 8);
        g->last_time = (int64_t)rd_be(b, 8);
        g->first_recorded = (int64_t)rd_be(b, 8);
        g->last_recorded = (int64_t)rd_be(b, 8);
        g->at_ms = (int64_t)rd_be(b, 8);
        unsigned has = (unsigned)rd_be(b, 1);
        g->has_device = (has & 1u) != 0;
        g->has_user = (has & 2u) != 0;
        if (g->has_device)
            g->device_id = rd_str(b, 2);
        if (g->has_user)
            g->user_id = rd_str(b, 2);
        if (b->bad)
            return FERRY_OK;
        int known = 0;
        for (size_t d = 0; d < x->n_dests && !known; d++)
            known = x->dests[d].n == g->dest.n && !memcmp(x->dests[d].p, g->dest.p, g->dest.n);
        if (!known || has > 3u || g->count == 0 || g->first_seq == 0 || g->first_seq > g->last_seq ||
            g->count > g->last_seq - g->first_seq + 1 || g->first_time > g->last_time ||
            g->device_id.n > FY_CAP_MAX_DEVICE || g->user_id.n > FY_CAP_MAX_DEVICE ||
            (g->has_device && memchr(g->device_id.p, 0, g->device_id.n)) ||
            (g->has_user && memchr(g->user_id.p, 0, g->user_id.n)))
            report(r, "header", at, "gap %zu is inconsistent (destination, seq %" PRIu64 "..%" PRIu64 ", count %" PRIu64
                   ")", i + 1, g->first_seq, g->last_seq, g->count);
    }
    return FERRY_OK;
}

ferry_err fy_capr_open(fy_capr *r, const void *base, size_t len, fy_cap_problem_fn fn, void *arg)
{
    memset(r, 0, sizeof *r);
    r->base = base;
    r->len = len;
    r->problem = fn;
    r->arg = arg;
    if (len < FIXED_HEADER || memcmp(base, MAGIC, 8) != 0) {
        report(r, "header", 0, "not a ferry capture (no \"" MAGIC "\" at the start)");
        return fy_fail(FERRY_ECORRUPT, "not a ferry capture");
    }
    rd h = {r->base, len, 8, 0};
    r->h.major = (unsigned)rd_be(&h, 2);
    r->h.minor = (unsigned)rd_be(&h, 2);
    uint64_t body = rd_be(&h, 4);
    if (r->h.major != FY_CAP_MAJOR) {
        report(r, "header", 8, "capture format version %u.%u; this build reads %u.x", r->h.major, r->h.minor,
               FY_CAP_MAJOR);
        return fy_fail(FERRY_EVERSION, "capture format version %u.%u; this build reads %u.x", r->h.major,
                       r->h.minor, FY_CAP_MAJOR);
    }
    if (body > len - FIXED_HEADER || len - FIXED_HEADER - body < FY_CAP_DIGEST) {
        report(r, "header", 12, "header length %" PRIu64 " runs past the end of the file (%zu bytes): truncated "
               "or damaged", body, len);
        return fy_fail(FERRY_ECORRUPT, "capture header unreadable");
    }
    ferry_err e = fy_sha256_init(&r->sha);
    if (e)
        return e;
    size_t hend = FIXED_HEADER + (size_t)body;
    if ((e = fy_sha256_two(r->base, hend, NULL, 0, r->header_digest)))
        return e;
    if (memcmp(r->header_digest, r->base + hend, FY_CAP_DIGEST) != 0)
        report(r, "header", hend, "header digest mismatch: the header was changed");
    memcpy(r->prev_stored, r->base + hend, FY_CAP_DIGEST);
    memcpy(r->prev_computed, r->header_digest, FY_CAP_DIGEST);

    rd b = {r->base, hend, FIXED_HEADER, 0};
    fy_cap_header *x = &r->h;
    if (b.n - b.off >= 16)
        memcpy(x->journal_id, b.p + b.off, 16);
    b.off += 16;
    if (b.off > b.n)
        b.bad = 1, b.off = b.n;
    x->journal_major = (uint32_t)rd_be(&b, 4);
    x->journal_minor = (uint32_t)rd_be(&b, 4);
    x->created_ms = (int64_t)rd_be(&b, 8);
    x->export_ms = (int64_t)rd_be(&b, 8);
    x->count = rd_be(&b, 8);
    x->first_seq = rd_be(&b, 8);
    x->last_seq = rd_be(&b, 8);
    x->recorded = rd_be(&b, 8);
    x->evicted = rd_be(&b, 8);
    x->pruned = rd_be(&b, 8);
    x->producer = rd_str(&b, 2);
    x->filter = rd_str(&b, 4);
    x->n_dests = (size_t)rd_be(&b, 2);
    if (!b.bad && (x->n_dests == 0 || x->n_dests > FY_CAP_MAX_DESTS)) {
        report(r, "header", b.off, "%zu destinations (1 to %u allowed)", x->n_dests, FY_CAP_MAX_DESTS);
        return fy_fail(FERRY_ECORRUPT, "capture header unusable");
    }
    x->dests = calloc(x->n_dests + 1, sizeof *x->dests);
    r->states = calloc(x->n_dests + 1, sizeof *r->states);
    if (!x->dests || !r->states)
        return fy_fail(FERRY_ENOMEM, "out of memory");
    for (size_t i = 0; i < x->n_dests && !b.bad; i++) {
        x->dests[i] = rd_str(&b, 2);
        if (!b.bad && (x->dests[i].n == 0 || x->dests[i].n > FY_CAP_MAX_NAME || memchr(x->dests[i].p, 0, x->dests[i].n)))
            report(r, "header", b.off, "destination %zu has an invalid name", i + 1);
    }
    uint64_t n_dev = rd_be(&b, 4);
    if (!b.bad && n_dev > (b.n - b.off) / 2)
        b.bad = 1;
    if (!b.bad) {
        x->devices = calloc((size_t)n_dev + 1, sizeof *x->devices);
        if (!x->devices)
            return fy_fail(FERRY_ENOMEM, "out of memory");
        x->n_devices = (size_t)n_dev;
        for (size_t i = 0; i < x->n_devices && !b.bad; i++)
            x->devices[i] = rd_str(&b, 2);
    }
    if (!b.bad && x->minor >= 1 && (e = read_gaps(r, &b)))
        return e;
    /* Fields a later 1.x version adds after these are ignored. */
    if (b.bad) {
        report(r, "header", b.off, "header fields run past the header's length: damaged");
        return fy_fail(FERRY_ECORRUPT, "capture header unusable");
    }
    if (x->count && (x->first_seq == 0 || x->first_seq > x->last_seq))
        report(r, "header", FIXED_HEADER, "first seq %" PRIu64 " and last seq %" PRIu64 " are inconsistent",
               x->first_seq, x->last_seq);
    r->pos = hend + FY_CAP_DIGEST;
    /* An entry takes at least 64 bytes: a count beyond that is a lie, and
     * is reported at the end; ordinals are then only checked in sequence. */
    if (x->count <= (len - r->pos) / 64) {
        r->chain_at = calloc((size_t)x->count + 1, sizeof *r->chain_at);
        if (!r->chain_at)
            return fy_fail(FERRY_ENOMEM, "out of memory");
        r->n_chain_at = x->count + 1;
    }
    return FERRY_OK;
}

/* The next place where an entry tag or the end marker starts, from `from`. */
static size_t resync(const fy_capr *r, size_t from)
{
    for (size_t i = from; i + 8 <= r->len; i++) {
        if ((r->base[i] == 'R' && !memcmp(r->base + i, TAG, 4)) || (r->base[i] == 'F' && !memcmp(r->base + i, END_MAGIC, 8)))
            return i;
    }
    return r->len;
}

static void check_trailer(fy_capr *r)
{
    size_t p = r->pos;
    r->at_end = 1;
    if (r->len - p < TRAILER) {
        report(r, "end", p, "truncated: the end marker is cut short (%zu of %u bytes)", r->len - p, TRAILER);
        return;
    }
    uint64_t count = get_be(r->base + p + 8, 8);
    if (count != r->h.count)
        report(r, "end", p + 8, "end marker counts %" PRIu64 " records, the header %" PRIu64, count, r->h.count);
    if (r->position != r->h.count)
        report(r, "end", p, "%" PRIu64 " records found, the header announces %" PRIu64 "%s", r->position, r->h.count,
               r->position < r->h.count ? " (records deleted)" : " (records added)");
    const unsigned char *last = r->h.count == 0 ? r->header_digest
                                : r->h.count < r->n_chain_at && r->chain_at[r->h.count] ? r->base + r->chain_at[r->h.count]
                                : r->prev_stored;
    if (memcmp(r->base + p + 16, last, FY_CAP_DIGEST) != 0 && memcmp(r->base + p + 16, r->prev_computed, FY_CAP_DIGEST) != 0)
        report(r, "end", p + 16, "final hash chain value does not match the last record: records were removed "
               "from the end or changed");
    unsigned char digest[FY_CAP_DIGEST];
    if (fy_sha256_two(r->base, p + 48, NULL, 0, digest) == FERRY_OK &&
        memcmp(digest, r->base + p + 48, FY_CAP_DIGEST) != 0)
        report(r, "end", p + 48, "content SHA-256 mismatch: the capture was changed");
    if (r->len > p + TRAILER)
        report(r, "end", p + TRAILER, "%zu unexpected bytes after the end marker (appended data)",
               r->len - p - TRAILER);
}

/* Whether SHA-256(prev || entry) is the stored chain value; *h gets it. */
static int chain_from(fy_capr *r, const unsigned char *prev, size_t p, size_t end, unsigned char h[FY_CAP_DIGEST],
                      int *err)
{
    fy_sha256_update(&r->sha, prev, FY_CAP_DIGEST);
    fy_sha256_update(&r->sha, r->base + p, end - p);
    if (fy_sha256_final(&r->sha, h)) {
        *err = 1;
        return 0;
    }
    return !memcmp(h, r->base + end, FY_CAP_DIGEST);
}

int fy_capr_next(fy_capr *r, fy_cap_entry *e)
{
    char where[96];
    memset(e, 0, sizeof *e);
    e->states = r->states;
    while (!r->at_end) {
        size_t p = r->pos;
        uint64_t expect = r->last_ordinal + 1;
        if (r->len - p >= 8 && !memcmp(r->base + p, END_MAGIC, 8)) {
            check_trailer(r);
            return 0;
        }
        snprintf(where, sizeof where, "record %" PRIu64, expect);
        if (p >= r->len) {
            r->at_end = 1;
            report(r, "end", p, "truncated after %" PRIu64 " of %" PRIu64 " records: no end marker", r->position,
                   r->h.count);
            return 0;
        }
        if (r->len - p < 8 && !memcmp(r->base + p, END_MAGIC, r->len - p)) {
            r->at_end = 1;
            report(r, "end", p, "truncated: the end marker is cut short (%zu of %u bytes)", r->len - p, TRAILER);
            return 0;
        }
        if (r->len - p < 8 || memcmp(r->base + p, TAG, 4) != 0) {
            size_t next = resync(r, p + 1);
            if (next >= r->len) {
                r->at_end = 1;
                report(r, where, p, "truncated or damaged: %s, and no record or end marker follows",
                       r->len - p < 8 ? "the file ends inside the record" : "no record tag here");
                return 0;
            }
            report(r, where, p, "damaged: no record tag here; %zu bytes skipped", next - p);
            r->pos = next;
            continue;
        }
        uint64_t body = get_be(r->base + p + 4, 4);
        if (body > r->len - p - 8 || r->len - p - 8 - body < FY_CAP_DIGEST) {
            size_t next = resync(r, p + 4);
            r->pos = next;
            if (next >= r->len) {
                r->at_end = 1;
                report(r, where, p, "truncated: the record's length (%" PRIu64 " bytes) runs past the end of the file",
                       body);
                return 0;
            }
            report(r, where, p, "damaged: the record's length (%" PRIu64 " bytes) is wrong; skipped to offset %zu",
                   body, next);
            continue;
        }
        size_t end = p + 8 + (size_t)body;
        r->pos = end + FY_CAP_DIGEST;
        r->position++;
        e->offset = p;
        e->intact = 1;
        rd b = {r->base, end, p + 8, 0};
        e->ordinal = rd_be(&b, 8);
        e->seq = rd_be(&b, 8);
        e->flags = (unsigned)rd_be(&b, 1);
        if (!b.bad)
            snprintf(where, sizeof where, "record %" PRIu64 " (seq %" PRIu64 ")", e->ordinal, e->seq);
        for (size_t i = 0; i < r->h.n_dests && !b.bad; i++) {
            fy_cap_state *s = &r->states[i];
            memset(s, 0, sizeof *s);
            s->state = (unsigned)rd_be(&b, 1);
            if (s->state == FY_CAP_DEAD) {
                s->status = (int64_t)rd_be(&b, 8);
                s->at_ms = (int64_t)rd_be(&b, 8);
                s->reason = rd_str(&b, 2);
            } else if (s->state > FY_CAP_DEAD && !b.bad) {
                report(r, where, b.off - 1, "unknown delivery state %u", s->state);
                e->intact = 0;
            }
        }
        uint64_t rl = rd_be(&b, 4);
        if (!b.bad && rl == b.n - b.off) {
            e->rec = b.p + b.off;
            e->rec_len = (size_t)rl;
        } else {
            b.bad = 1;
        }
        if (b.bad) {
            report(r, where, p, "malformed record entry (its fields do not add up to its length)");
            e->intact = 0;
        }
        /* The chain links this entry to the one with the previous ordinal:
         * that entry's stored value if it was seen, else the entry before in
         * the file, as stored or as computed (when its stored value itself
         * was changed). */
        unsigned char h[FY_CAP_DIGEST], first[FY_CAP_DIGEST];
        const unsigned char *cands[3];
        size_t nc = 0;
        int err = 0, chain_ok = 0;
        if (!b.bad && e->ordinal >= 2 && e->ordinal - 1 < r->n_chain_at && r->chain_at[e->ordinal - 1])
            cands[nc++] = r->base + r->chain_at[e->ordinal - 1];
        else if (!b.bad && e->ordinal == 1)
            cands[nc++] = r->header_digest;
        cands[nc++] = r->prev_stored;
        cands[nc++] = r->prev_computed;
        for (size_t i = 0; i < nc && !chain_ok; i++) {
            if (i && !memcmp(cands[i], cands[i - 1], FY_CAP_DIGEST))
                continue;
            chain_ok = chain_from(r, cands[i], p, end, h, &err);
            if (i == 0)
                memcpy(first, h, FY_CAP_DIGEST);
            if (err)
                return -1;
        }
        if (!chain_ok)
            memcpy(h, first, FY_CAP_DIGEST);
        if (!b.bad && e->ordinal != expect) {
            if (e->ordinal > expect && e->ordinal <= r->h.count) {
                if (e->ordinal - expect == 1)
                    report(r, where, p, "found where record %" PRIu64 " was expected: record %" PRIu64
                           " is missing (deleted) or was moved", expect, expect);
                else
                    report(r, where, p, "found where record %" PRIu64 " was expected: records %" PRIu64 " to %" PRIu64
                           " are missing (deleted) or were moved", expect, expect, e->ordinal - 1);
            } else {
                report(r, where, p, "out of order: found after record %" PRIu64 " (records moved, duplicated or "
                       "renumbered)", r->last_ordinal);
            }
            e->intact = 0;
        } else if (!chain_ok) {
            report(r, where, p, "hash chain mismatch: this record (or its chain value) was changed");
            e->intact = 0;
        }
        if (!b.bad && e->ordinal == expect && e->seq <= r->last_seq) {
            report(r, where, p, "sequence number %" PRIu64 " does not increase (previous %" PRIu64 ")", e->seq,
                   r->last_seq);
            e->intact = 0;
        }
        if (!b.bad) {
            if (fy_record_check(e->rec, e->rec_len)) {
                report(r, where, p, "record invalid: %s", ferry_last_error());
                e->intact = 0;
            }
            if (e->flags & ~(unsigned)FY_CAP_FLAG_STORED) {
                report(r, where, p + 24, "unknown flags 0x%02x", e->flags);
                e->intact = 0;
            }
            if (e->ordinal < r->n_chain_at && !r->chain_at[e->ordinal])
                r->chain_at[e->ordinal] = end;
            if (e->seq > r->last_seq)
                r->last_seq = e->seq;
            if (e->ordinal > r->last_ordinal)
                r->last_ordinal = e->ordinal;
        } else {
            r->last_ordinal = expect;
        }
        memcpy(r->prev_stored, r->base + end, FY_CAP_DIGEST);
        memcpy(r->prev_computed, h, FY_CAP_DIGEST);
        if (b.bad)
            continue;
        return 1;
    }
    return 0;
}

void fy_capr_close(fy_capr *r)
{
    free(r->h.dests);
    free(r->h.devices);
    free(r->h.gaps);
    free(r->states);
    free(r->chain_at);
    fy_sha256_free(&r->sha);
    memset(r, 0, sizeof *r);
}

/* ---- journal writes for import -------------------------------------------- */


ferry_err fy_imported_open(fy_journal *j, MDB_txn *txn, int create, MDB_dbi *dbi, int *exists)
{
    int rc = mdb_dbi_open(txn, FY_IMPORTED_DB, create ? MDB_CREATE : 0, dbi);
    *exists = rc == 0;
    if (rc == MDB_NOTFOUND && !create)
        return FERRY_OK;
    if (rc)
        return fy_fail_lmdb(rc, "journal %s: opening database %s", j->path, FY_IMPORTED_DB);
    return FERRY_OK;
}

static void imported_key(unsigned char k[24], const unsigned char src_id[16], uint64_t src_seq)
{
    memcpy(k, src_id, 16);
    fy_put_be64(k + 16, src_seq);
}

ferry_err fy_imported_get(fy_journal *j, MDB_txn *txn, MDB_dbi dbi, const unsigned char src_id[16],
                          uint64_t src_seq, uint64_t *target, int *found)
{
    unsigned char kb[24];
    imported_key(kb, src_id, src_seq);
    MDB_val k = fy_mval(kb, 24), d;
    *found = 0;
    *target = 0;
    int rc = mdb_get(txn, dbi, &k, &d);
    if (rc == MDB_NOTFOUND)
        return FERRY_OK;
    if (rc)
        return fy_fail_lmdb(rc, "journal %s: reading %s", j->path, FY_IMPORTED_DB);
    if (d.mv_size != 8)
        return fy_fail(FERRY_ECORRUPT, "journal %s: %s row of %zu bytes", j->path, FY_IMPORTED_DB, d.mv_size);
    *target = fy_get_be64(d.mv_data);
    *found = 1;
    return FERRY_OK;
}

ferry_err fy_imported_put(fy_journal *j, MDB_txn *txn, MDB_dbi dbi, const unsigned char src_id[16],
                          uint64_t src_seq, uint64_t target)
{
    unsigned char kb[24], vb[8];
    imported_key(kb, src_id, src_seq);
    fy_put_be64(vb, target);
    MDB_val k = fy_mval(kb, 24), d = fy_mval(vb, 8);
    int rc = mdb_put(txn, dbi, &k, &d, 0);
    if (rc)
        return fy_fail_lmdb(rc, "journal %s: writing %s", j->path, FY_IMPORTED_DB);
    return FERRY_OK;
}

ferry_err fy_event_put_at(fy_journal *j, MDB_txn *txn, uint64_t seq, const void *rec, size_t len)
{
    unsigned char kb[8];
    fy_put_be64(kb, seq);
    MDB_val k = fy_mval(kb, 8), d = fy_mval(rec, len);
    int rc = mdb_put(txn, j->events, &k, &d, MDB_APPEND);
    if (rc)
        return fy_fail_lmdb(rc, "journal %s: storing event %" PRIu64, j->path, seq);
    return FERRY_OK;
}

ferry_err fy_dead_put_at(fy_journal *j, MDB_txn *txn, const char *sink, uint64_t seq, int64_t status,
                         const char *reason, size_t reason_len, int64_t at_ms, const void *rec, size_t rec_len)
{
    size_t sl = strlen(sink);
    unsigned char kb[300];
    if (sl == 0 || sl + 9 > sizeof kb)
        return fy_fail(FERRY_EINVAL, "destination name of %zu bytes", sl);
    memcpy(kb, sink, sl);
    kb[sl] = 0;
    fy_put_be64(kb + sl + 1, seq);
    if (reason_len > 500)
        reason_len = 500; /* what fy_dead_put keeps */
    fy_buf b;
    fy_buf_init(&b, 0);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &b, fy_buf_msgpack_write);
    int bad = msgpack_pack_map(&pk, 3);
    bad |= msgpack_pack_str_with_body(&pk, "status", 6) | msgpack_pack_int64(&pk, status);
    bad |= msgpack_pack_str_with_body(&pk, "reason", 6) | msgpack_pack_str_with_body(&pk, reason, reason_len);
    bad |= msgpack_pack_str_with_body(&pk, "at_ms", 5) | msgpack_pack_int64(&pk, at_ms);
    ferry_err e = FERRY_OK;
    if (bad || fy_buf_append(&b, rec, rec_len)) {
        e = fy_fail(FERRY_ENOMEM, "out of memory");
    } else {
        MDB_val k = fy_mval(kb, sl + 9), d = fy_mval(b.data, b.len);
        int rc = mdb_put(txn, j->dead, &k, &d, 0);
        if (rc)
            e = fy_fail_lmdb(rc, "journal %s: writing dead letter %" PRIu64, j->path, seq);
    }
    fy_buf_free(&b);
    return e;
}

ferry_err fy_dbi_bytes(fy_journal *j, MDB_txn *txn, MDB_dbi dbi, uint64_t *bytes)
{
    MDB_stat st;
    int rc = mdb_stat(txn, dbi, &st);
    if (rc)
        return fy_fail_lmdb(rc, "journal %s: reading page counts", j->path);
    *bytes = (st.ms_branch_pages + st.ms_leaf_pages + st.ms_overflow_pages) * (uint64_t)j->page_size;
    return FERRY_OK;
}

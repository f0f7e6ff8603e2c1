/* delivery.c: per-destination bookkeeping: which events are done (cursor
 * watermark + out-of-order set) and the dead letters. */
#include "fy_buf.h"
#include "fy_fail.h"
#include "fy_journal.h"
#include "fy_record.h"

#include <stdlib.h>
#include <string.h>


int fy_cursor_is_done(const fy_cursor *c, uint64_t seq)
{
    if (seq <= c->delivered)
        return 1;
    size_t lo = 0, hi = c->n_above;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (c->above[mid] == seq)
            return 1;
        if (c->above[mid] < seq)
            lo = mid + 1;
        else
            hi = mid;
    }
    return 0;
}

/* Merges ascending seqs into the ascending above-list (no duplicates). */
static ferry_err merge_above(fy_cursor *c, const uint64_t *seqs, size_t n)
{
    uint64_t *m = malloc((c->n_above + n) * sizeof *m + 1);
    if (!m)
        return fy_fail(FERRY_ENOMEM, "out of memory");
    size_t i = 0, k = 0, o = 0;
    while (i < c->n_above || k < n) {
        uint64_t v;
        if (k == n || (i < c->n_above && c->above[i] <= seqs[k]))
            v = c->above[i++];
        else
            v = seqs[k++];
        if (v > c->delivered && (o == 0 || m[o - 1] != v))
            m[o++] = v;
    }
    free(c->above);
    c->above = m;
    c->n_above = o;
    return FERRY_OK;
}

ferry_err fy_cursor_mark_done(fy_journal *j, MDB_txn *txn, fy_cursor *c, const uint64_t *seqs, size_t n)
{
    ferry_err e = merge_above(c, seqs, n);
    if (e || c->n_above == 0)
        return e;
    /* Walk the stored events after the watermark while they are done. */
    MDB_cursor *cur;
    int rc = mdb_cursor_open(txn, j->events, &cur);
    if (rc)
        return fy_fail_lmdb(rc, "journal %s: reading events", j->path);
    unsigned char kb[8];
    fy_put_be64(kb, c->delivered + 1);
    MDB_val k = fy_mval(kb, 8), d;
    uint64_t w = c->delivered;
    for (rc = mdb_cursor_get(cur, &k, &d, MDB_SET_RANGE); rc == 0; rc = mdb_cursor_get(cur, &k, &d, MDB_NEXT)) {
        uint64_t seq = fy_get_be64(k.mv_data);
        if (!fy_cursor_is_done(c, seq))
            break;
        w = seq;
    }
    mdb_cursor_close(cur);
    if (rc && rc != MDB_NOTFOUND)
        return fy_fail_lmdb(rc, "journal %s: reading events", j->path);
    if (rc == MDB_NOTFOUND && c->above[c->n_above - 1] > w)
        w = c->above[c->n_above - 1]; /* everything stored after the watermark is done */
    size_t drop = 0;
    while (drop < c->n_above && c->above[drop] <= w)
        drop++;
    memmove(c->above, c->above + drop, (c->n_above - drop) * sizeof *c->above);
    c->n_above -= drop;
    c->delivered = w;
    return FERRY_OK;
}

/* ---- dead letters ------------------------------------------------------ */

ferry_err fy_dead_put(fy_journal *j, MDB_txn *txn, const char *sink, uint64_t seq, int64_t status,
                      const char *reason, const void *rec, size_t rec_len)
{
    unsigned char kb[300];
    size_t kl = fy_sink_seq_key(kb, sizeof kb, sink, seq);
    if (!kl)
        return fy_fail(FERRY_EINVAL, "destination name too long: %s", sink);
    fy_buf b;
    fy_buf_init(&b, 0);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &b, fy_buf_msgpack_write);
    size_t rl = strnlen(reason, 500);
    int bad = msgpack_pack_map(&pk, 3);
    bad |= msgpack_pack_str_with_body(&pk, "status", 6) | msgpack_pack_int64(&pk, status);
    bad |= msgpack_pack_str_with_body(&pk, "reason", 6) | msgpack_pack_str_with_body(&pk, reason, rl);
    bad |= msgpack_pack_str_with_body(&pk, "at_ms", 5) | msgpack_pack_int64(&pk, fy_now_ms());
    ferry_err e = FERRY_OK;
    if (bad || fy_buf_append(&b, rec, rec_len)) {
        e = fy_fail(FERRY_ENOMEM, "out of memory");
    } else {
        MDB_val k = fy_mval(kb, kl), d = fy_mval(b.data, b.len);
        int rc = mdb_put(txn, j->dead, &k, &d, 0);
        if (rc)
            e = fy_fail_lmdb(rc, "journal %s: writing dead letter %llu", j->path, (unsigned long long)seq);
    }
    fy_buf_free(&b);
    return e;
}

ferry_err fy_dead_decode(fy_journal *j, const MDB_val *key, const MDB_val *val, fy_dead *out)
{
    memset(out, 0, sizeof *out);
    const unsigned char *kb = key->mv_data;
    const unsigned char *nul = key->mv_size > 9 ? memchr(kb, 0, key->mv_size - 8) : NULL;
    if (!nul || (size_t)(nul - kb) + 9 != key->mv_size || (size_t)(nul - kb) >= sizeof out->sink)
        return fy_fail(FERRY_ECORRUPT, "journal %s: malformed dead-letter key", j->path);
    memcpy(out->sink, kb, (size_t)(nul - kb));
    out->seq = fy_get_be64(nul + 1);
    size_t used;
    ferry_err e = fy_msgpack_span(val->mv_data, val->mv_size, &used);
    if (e)
        return fy_fail_prefix(e, "journal %s: dead letter %llu", j->path, (unsigned long long)out->seq);
    msgpack_unpacked up;
    msgpack_unpacked_init(&up);
    size_t off = 0;
    if (msgpack_unpack_next(&up, val->mv_data, used, &off) != MSGPACK_UNPACK_SUCCESS) {
        msgpack_unpacked_destroy(&up);
        return fy_fail(FERRY_ECORRUPT, "journal %s: dead letter %llu undecodable", j->path,
                       (unsigned long long)out->seq);
    }
    const msgpack_object *v;
    if ((v = fy_map_get(&up.data, "status")) &&
        (v->type == MSGPACK_OBJECT_POSITIVE_INTEGER || v->type == MSGPACK_OBJECT_NEGATIVE_INTEGER))
        out->status = v->via.i64;
    if ((v = fy_map_get(&up.data, "at_ms")) &&
        (v->type == MSGPACK_OBJECT_POSITIVE_INTEGER || v->type == MSGPACK_OBJECT_NEGATIVE_INTEGER))
        out->at_ms = v->via.i64;
    if ((v = fy_map_get(&up.data, "reason")) && v->type == MSGPACK_OBJECT_STR) {
        size_t n = v->via.str.size < sizeof out->reason - 1 ? v->via.str.size : sizeof out->reason - 1;
        memcpy(out->reason, v->via.str.ptr, n);
    }
    msgpack_unpacked_destroy(&up);
    out->rec = (const unsigned char *)val->mv_data + used;
    out->rec_len = val->mv_size - used;
    return FERRY_OK;
}

ferry_err fy_dead_requeue(fy_journal *j, MDB_txn *txn, const fy_dead *d, uint64_t *new_seq)
{
    /* Copy first: the record points into the map and the put may move pages. */
    void *copy = malloc(d->rec_len ? d->rec_len : 1);
    if (!copy)
        return fy_fail(FERRY_ENOMEM, "out of memory");
    memcpy(copy, d->rec, d->rec_len);
    unsigned char kb[300];
    size_t kl = fy_sink_seq_key(kb, sizeof kb, d->sink, d->seq);
    fy_rec_ref ref = {copy, d->rec_len};
    ferry_err e = fy_events_put(j, txn, &ref, 1, new_seq);
    if (!e) {
        MDB_val k = fy_mval(kb, kl);
        int rc = mdb_del(txn, j->dead, &k, NULL);
        if (rc)
            e = fy_fail_lmdb(rc, "journal %s: deleting dead letter %llu", j->path, (unsigned long long)d->seq);
    }
    free(copy);
    return e;
}

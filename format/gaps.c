/* gaps.c: eviction gaps, recorded with the eviction and reported by the
 * replayer as "[ferry] events lost" events (fy_gaps.h, FORMAT.md). */
#include "fy_gaps.h"
#include "fy_fail.h"
#include "fy_record.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>


void fy_gaps_free(fy_gap *g, size_t n)
{
    for (size_t i = 0; g && i < n; i++) {
        free(g[i].device_id);
        free(g[i].user_id);
    }
    free(g);
}

static char *dup_n(const char *s, size_t n)
{
    char *p = malloc(n + 1);
    if (p) {
        memcpy(p, s, n);
        p[n] = '\0';
    }
    return p;
}

/* ---- row encoding ------------------------------------------------------ */

static void hex16(const unsigned char id[16], char out[33])
{
    for (int i = 0; i < 16; i++)
        snprintf(out + 2 * i, 3, "%02x", id[i]);
}

/* 32 lower-case hex digits into 16 bytes; -1 when they are not. */
static int unhex16(const char *p, unsigned char id[16])
{
    for (int i = 0; i < 32; i++) {
        int v = p[i] >= '0' && p[i] <= '9' ? p[i] - '0' : p[i] >= 'a' && p[i] <= 'f' ? p[i] - 'a' + 10 : -1;
        if (v < 0)
            return -1;
        id[i / 2] = (unsigned char)(i % 2 ? (id[i / 2] << 4) | v : v);
    }
    return 0;
}

ferry_err fy_gaps_put(fy_journal *j, MDB_txn *txn, const fy_gap *g)
{
    unsigned char kb[300];
    size_t kl = fy_sink_seq_key(kb, sizeof kb, g->sink, g->key_seq);
    if (!kl)
        return fy_fail(FERRY_EINVAL, "destination name too long: %s", g->sink);
    if (!j->gaps)
        return fy_fail(FERRY_EINVAL, "journal %s: opened without the gaps database", j->path);
    fy_buf b;
    fy_buf_init(&b, 0);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &b, fy_buf_msgpack_write);
    int bad = msgpack_pack_map(&pk, 8u + (g->device_id ? 1u : 0u) + (g->user_id ? 1u : 0u) + (g->imported ? 2u : 0u));
#define KEY(s) (bad |= msgpack_pack_str_with_body(&pk, s, sizeof s - 1))
    KEY("last_seq"), bad |= msgpack_pack_uint64(&pk, g->last_seq);
    KEY("count"), bad |= msgpack_pack_uint64(&pk, g->count);
    KEY("first_time"), bad |= msgpack_pack_int64(&pk, g->first_time);
    KEY("last_time"), bad |= msgpack_pack_int64(&pk, g->last_time);
    KEY("first_recorded_at"), bad |= msgpack_pack_int64(&pk, g->first_recorded);
    KEY("last_recorded_at"), bad |= msgpack_pack_int64(&pk, g->last_recorded);
    KEY("at_ms"), bad |= msgpack_pack_int64(&pk, g->at_ms);
    KEY("sealed"), bad |= g->sealed ? msgpack_pack_true(&pk) : msgpack_pack_false(&pk);
    if (g->device_id)
        KEY("device_id"), bad |= msgpack_pack_str_with_body(&pk, g->device_id, strlen(g->device_id));
    if (g->user_id)
        KEY("user_id"), bad |= msgpack_pack_str_with_body(&pk, g->user_id, strlen(g->user_id));
    if (g->imported) {
        char hex[33];
        hex16(g->journal_id, hex);
        KEY("journal_id"), bad |= msgpack_pack_str_with_body(&pk, hex, 32);
        KEY("first_seq"), bad |= msgpack_pack_uint64(&pk, g->first_seq);
    }
#undef KEY
    ferry_err e = FERRY_OK;
    if (bad) {
        e = fy_fail(FERRY_ENOMEM, "out of memory encoding a gap");
    } else {
        MDB_val k = fy_mval(kb, kl), d = fy_mval(b.data, b.len);
        int rc = mdb_put(txn, j->gaps, &k, &d, 0);
        if (rc)
            e = fy_fail_lmdb(rc, "journal %s: writing gap %" PRIu64 " of %s", j->path, g->key_seq, g->sink);
    }
    fy_buf_free(&b);
    return e;
}

static int get_u64(const msgpack_object *m, const char *key, uint64_t *v)
{
    const msgpack_object *o = fy_map_get(m, key);
    if (!o || o->type != MSGPACK_OBJECT_POSITIVE_INTEGER)
        return -1;
    *v = o->via.u64;
    return 0;
}

static int get_i64(const msgpack_object *m, const char *key, int64_t *v)
{
    const msgpack_object *o = fy_map_get(m, key);
    if (!o || (o->type != MSGPACK_OBJECT_POSITIVE_INTEGER && o->type != MSGPACK_OBJECT_NEGATIVE_INTEGER))
        return -1;
    *v = o->via.i64;
    return 0;
}

static int get_str(const msgpack_object *m, const char *key, char **out)
{
    const msgpack_object *o = fy_map_get(m, key);
    *out = NULL;
    if (!o)
        return 0;
    if (o->type != MSGPACK_OBJECT_STR)
        return -1;
    return (*out = dup_n(o->via.str.ptr, o->via.str.size)) ? 0 : -1;
}

static ferry_err gap_decode(fy_journal *j, const MDB_val *key, const MDB_val *val, fy_gap *g)
{
    memset(g, 0, sizeof *g);
    const unsigned char *kb = key->mv_data;
    const unsigned char *nul = key->mv_size > 9 ? memchr(kb, 0, key->mv_size - 8) : NULL;
    if (!nul || (size_t)(nul - kb) + 9 != key->mv_size || (size_t)(nul - kb) >= sizeof g->sink)
        return fy_fail(FERRY_ECORRUPT, "journal %s: malformed gap key", j->path);
    memcpy(g->sink, kb, (size_t)(nul - kb));
    g->key_seq = g->first_seq = fy_get_be64(nul + 1);
    if (fy_msgpack_check(val->mv_data, val->mv_size))
        return fy_fail_prefix(FERRY_ECORRUPT, "journal %s: gap %" PRIu64 " of %s", j->path, g->first_seq, g->sink);
    msgpack_unpacked up;
    msgpack_unpacked_init(&up);
    size_t off = 0;
    int bad = msgpack_unpack_next(&up, val->mv_data, val->mv_size, &off) != MSGPACK_UNPACK_SUCCESS ||
              up.data.type != MSGPACK_OBJECT_MAP;
    if (!bad) {
        const msgpack_object *m = &up.data, *s = fy_map_get(m, "sealed");
        bad |= get_u64(m, "last_seq", &g->last_seq) | get_u64(m, "count", &g->count) |
               get_i64(m, "first_time", &g->first_time) | get_i64(m, "last_time", &g->last_time) |
               get_i64(m, "first_recorded_at", &g->first_recorded) |
               get_i64(m, "last_recorded_at", &g->last_recorded) | get_i64(m, "at_ms", &g->at_ms) |
               get_str(m, "device_id", &g->device_id) | get_str(m, "user_id", &g->user_id);
        bad |= !s || s->type != MSGPACK_OBJECT_BOOLEAN;
        g->sealed = s && s->type == MSGPACK_OBJECT_BOOLEAN && s->via.boolean;
        /* Imported rows (and only they, above FY_GAP_IMPORTED_KEY) name
         * their journal and first seq. */
        const msgpack_object *id = fy_map_get(m, "journal_id");
        g->imported = g->key_seq >= FY_GAP_IMPORTED_KEY;
        if (g->imported)
            bad |= !id || id->type != MSGPACK_OBJECT_STR || id->via.str.size != 32 ||
                   unhex16(id->via.str.ptr, g->journal_id) || get_u64(m, "first_seq", &g->first_seq) || !g->sealed;
        else
            bad |= id != NULL || fy_map_get(m, "first_seq") != NULL;
    }
    msgpack_unpacked_destroy(&up);
    if (bad) {
        free(g->device_id);
        free(g->user_id);
        g->device_id = g->user_id = NULL;
        return fy_fail(FERRY_ECORRUPT, "journal %s: gap %" PRIu64 " of %s has a missing or malformed field",
                       j->path, g->key_seq, g->sink);
    }
    return FERRY_OK;
}

static ferry_err push(fy_gap **v, size_t *n, size_t *cap, const fy_gap *g)
{
    if (*n == *cap) {
        size_t nc = *cap ? *cap * 2 : 16;
        fy_gap *p = realloc(*v, nc * sizeof *p);
        if (!p)
            return fy_fail(FERRY_ENOMEM, "out of memory");
        *v = p;
        *cap = nc;
    }
    (*v)[(*n)++] = *g;
    return FERRY_OK;
}

ferry_err fy_gaps_list(fy_journal *j, MDB_txn *txn, const char *sink, fy_gap **out, size_t *n)
{
    *out = NULL;
    *n = 0;
    if (!j->gaps)
        return FERRY_OK; /* a journal no writable build has opened since gaps came */
    size_t cap = 0, sl = sink ? strlen(sink) : 0;
    unsigned char kb[300];
    if (sink && !fy_sink_seq_key(kb, sizeof kb, sink, 0))
        return fy_fail(FERRY_EINVAL, "destination name too long: %s", sink);
    MDB_cursor *cur;
    int rc = mdb_cursor_open(txn, j->gaps, &cur);
    if (rc)
        return fy_fail_lmdb(rc, "journal %s: opening gaps", j->path);
    MDB_val k = fy_mval(kb, sl + 9), d;
    ferry_err e = FERRY_OK;
    for (rc = mdb_cursor_get(cur, &k, &d, sink ? MDB_SET_RANGE : MDB_FIRST); rc == 0;
         rc = mdb_cursor_get(cur, &k, &d, MDB_NEXT)) {
        if (sink && (k.mv_size != sl + 9 || memcmp(k.mv_data, sink, sl + 1)))
            break; /* past this destination's rows */
        fy_gap g;
        if ((e = gap_decode(j, &k, &d, &g)))
            break;
        if ((e = push(out, n, &cap, &g))) {
            free(g.device_id);
            free(g.user_id);
            break;
        }
    }
    mdb_cursor_close(cur);
    if (!e && rc && rc != MDB_NOTFOUND)
        e = fy_fail_lmdb(rc, "journal %s: reading gaps", j->path);
    if (e) {
        fy_gaps_free(*out, *n);
        *out = NULL;
        *n = 0;
    }
    return e;
}

ferry_err fy_gaps_del(fy_journal *j, MDB_txn *txn, const char *sink, uint64_t first_seq)
{
    unsigned char kb[300];
    size_t kl = fy_sink_seq_key(kb, sizeof kb, sink, first_seq);
    if (!kl)
        return fy_fail(FERRY_EINVAL, "destination name too long: %s", sink);
    MDB_val k = fy_mval(kb, kl);
    int rc = j->gaps ? mdb_del(txn, j->gaps, &k, NULL) : MDB_NOTFOUND;
    if (rc && rc != MDB_NOTFOUND)
        return fy_fail_lmdb(rc, "journal %s: deleting gap %" PRIu64 " of %s", j->path, first_seq, sink);
    return FERRY_OK;
}

ferry_err fy_gaps_clear(fy_journal *j, MDB_txn *txn, uint64_t *n)
{
    MDB_stat st;
    *n = 0;
    if (!j->gaps)
        return FERRY_OK;
    int rc = mdb_stat(txn, j->gaps, &st);
    if (!rc)
        rc = mdb_drop(txn, j->gaps, 0); /* empties it, keeps the database */
    if (rc)
        return fy_fail_lmdb(rc, "journal %s: deleting gaps", j->path);
    *n = st.ms_entries;
    return FERRY_OK;
}

ferry_err fy_gaps_seal(fy_journal *j, MDB_txn *txn, const char *sink, size_t *n_sealed)
{
    fy_gap *g;
    size_t n;
    *n_sealed = 0;
    ferry_err e = fy_gaps_list(j, txn, sink, &g, &n);
    for (size_t i = 0; i < n && !e; i++) {
        if (g[i].sealed)
            continue;
        g[i].sealed = 1;
        if (!(e = fy_gaps_put(j, txn, &g[i])))
            (*n_sealed)++;
    }
    fy_gaps_free(g, n);
    return e;
}

/* ---- recording an eviction --------------------------------------------- */

typedef struct sink_state {
    fy_named_cursor d; /* first: fy_cursors_load fills it */
    size_t rows; /* its own gap rows (sealed or not; imported ones not counted) */
} sink_state;

typedef struct evict_ctx {
    sink_state *sinks;
    size_t n_sinks;
    fy_gap *gaps; /* every row, plus the new ones */
    size_t n_gaps, cap_gaps;
    int64_t now;
} evict_ctx;

static ferry_err load_sinks(fy_journal *j, MDB_txn *txn, evict_ctx *x)
{
    ferry_err e;
    x->sinks = fy_cursors_load(j, txn, 1, x->sinks, &x->n_sinks, sizeof *x->sinks, &e);
    return e;
}

static int same_str(const char *a, const char *b, size_t bl)
{
    if (!a || !b)
        return !a && !b;
    return strlen(a) == bl && !memcmp(a, b, bl);
}

/* Counts one lost event in the open row of (sink, identity), made when
 * missing. dev/user may be NULL (absent). */
static ferry_err note(evict_ctx *x, sink_state *s, const char *dev, size_t dl, const char *user, size_t ul,
                      uint64_t seq, int64_t time, int64_t rec)
{
    fy_gap *g = NULL;
    for (int pass = 0; pass < 2 && !g; pass++) {
        for (size_t i = 0; i < x->n_gaps; i++) {
            fy_gap *c = &x->gaps[i];
            if (!c->sealed && !strcmp(c->sink, s->d.name) && same_str(c->device_id, dev, dl) &&
                same_str(c->user_id, user, ul)) {
                g = c;
                break;
            }
        }
        if (g || pass || s->rows < FY_GAPS_MAX_ROWS)
            break;
        dev = user = NULL; /* too many rows: the shared row */
    }
    if (g) {
        g->last_seq = seq;
        g->count++;
        g->first_time = time < g->first_time ? time : g->first_time;
        g->last_time = time > g->last_time ? time : g->last_time;
        g->first_recorded = rec < g->first_recorded ? rec : g->first_recorded;
        g->last_recorded = rec > g->last_recorded ? rec : g->last_recorded;
        g->dirty = 1;
        return FERRY_OK;
    }
    fy_gap n;
    memset(&n, 0, sizeof n);
    snprintf(n.sink, sizeof n.sink, "%s", s->d.name);
    n.key_seq = n.first_seq = n.last_seq = seq;
    n.count = 1;
    n.first_time = n.last_time = time;
    n.first_recorded = n.last_recorded = rec;
    n.at_ms = x->now;
    n.dirty = 1;
    if ((dev && !(n.device_id = dup_n(dev, dl))) || (user && !(n.user_id = dup_n(user, ul)))) {
        free(n.device_id);
        return fy_fail(FERRY_ENOMEM, "out of memory");
    }
    ferry_err e = push(&x->gaps, &x->n_gaps, &x->cap_gaps, &n);
    if (e) {
        free(n.device_id);
        free(n.user_id);
        return e;
    }
    s->rows++;
    return FERRY_OK;
}

/* Notes one stored event about to be evicted, for every destination that
 * has not had it. An undecodable record counts under no identity, at the
 * eviction time. */
static ferry_err note_event(evict_ctx *x, uint64_t seq, const MDB_val *d)
{
    fy_record r;
    int ok = fy_record_decode(d->mv_data, d->mv_size, &r) == FERRY_OK;
    const char *dev = NULL, *user = NULL;
    size_t dl = 0, ul = 0;
    int64_t time = x->now, rec = x->now;
    if (ok) {
        dev = r.device_id, dl = r.device_id_len;
        const msgpack_object *u = fy_map_get(&r.event, "user_id");
        if (u && u->type == MSGPACK_OBJECT_STR)
            user = u->via.str.ptr, ul = u->via.str.size;
        time = r.time_ms, rec = r.recorded_at_ms;
    }
    ferry_err e = FERRY_OK;
    for (size_t i = 0; i < x->n_sinks && !e; i++)
        if (!fy_cursor_is_done(&x->sinks[i].d.c, seq))
            e = note(x, &x->sinks[i], dev, dl, user, ul, seq, time, rec);
    if (ok)
        fy_record_free(&r);
    return e;
}

ferry_err fy_gaps_evict(fy_journal *j, MDB_txn *txn, uint64_t max_count, uint64_t *deleted)
{
    *deleted = 0;
    if (!j->gaps) /* cannot happen in a writable journal; keep the old behaviour */
        return fy_events_delete(j, txn, 0, UINT64_MAX, max_count, deleted);
    evict_ctx x;
    memset(&x, 0, sizeof x);
    x.now = fy_now_ms();
    ferry_err e = load_sinks(j, txn, &x);
    if (!e)
        e = fy_gaps_list(j, txn, NULL, &x.gaps, &x.n_gaps);
    x.cap_gaps = x.n_gaps;
    for (size_t i = 0; i < x.n_gaps && !e; i++)
        for (size_t s = 0; s < x.n_sinks; s++)
            x.sinks[s].rows += !x.gaps[i].imported && !strcmp(x.sinks[s].d.name, x.gaps[i].sink);
    /* Read (and copy what the gaps need) first: writing may move pages. */
    uint64_t last = 0, n = 0;
    MDB_cursor *cur = NULL;
    int rc = e ? 0 : mdb_cursor_open(txn, j->events, &cur);
    MDB_val k, d;
    if (!e && !rc) {
        for (rc = mdb_cursor_get(cur, &k, &d, MDB_FIRST); !rc && !e && (max_count == 0 || n < max_count);
             rc = mdb_cursor_get(cur, &k, &d, MDB_NEXT)) {
            if (k.mv_size != 8) {
                e = fy_fail(FERRY_ECORRUPT, "journal %s: event key of %zu bytes", j->path, k.mv_size);
                break;
            }
            last = fy_get_be64(k.mv_data);
            n++;
            e = note_event(&x, last, &d);
        }
        if (rc == MDB_NOTFOUND)
            rc = 0;
    }
    if (cur)
        mdb_cursor_close(cur);
    if (!e && rc)
        e = fy_fail_lmdb(rc, "journal %s: reading events to evict", j->path);
    if (!e && n)
        e = fy_events_delete(j, txn, 0, last, 0, deleted);
    for (size_t i = 0; i < x.n_gaps && !e; i++)
        if (x.gaps[i].dirty)
            e = fy_gaps_put(j, txn, &x.gaps[i]);
    for (size_t s = 0; s < x.n_sinks; s++)
        fy_cursor_free(&x.sinks[s].d.c);
    free(x.sinks);
    fy_gaps_free(x.gaps, x.n_gaps);
    return e;
}

/* ---- importing ---------------------------------------------------------- */

ferry_err fy_gaps_import(fy_journal *j, MDB_txn *txn, const fy_gap *g, size_t n, uint64_t *added, uint64_t *present)
{
    fy_gap *rows = NULL;
    size_t n_rows = 0;
    const char *sink = NULL;
    uint64_t key = FY_GAP_IMPORTED_KEY;
    ferry_err e = FERRY_OK;
    for (size_t i = 0; i < n && !e; i++) {
        if (!sink || strcmp(sink, g[i].sink)) { /* the next destination's rows */
            fy_gaps_free(rows, n_rows);
            if ((e = fy_gaps_list(j, txn, g[i].sink, &rows, &n_rows)))
                break;
            sink = g[i].sink;
            key = FY_GAP_IMPORTED_KEY;
            for (size_t k = 0; k < n_rows; k++)
                if (rows[k].key_seq >= key)
                    key = rows[k].key_seq + 1;
        }
        /* The same loss (its insert_id) already here: imported before, or
         * this journal's own row coming back; or ours and gone: reported. */
        const unsigned char *from = fy_gap_journal(j->id, &g[i]);
        int here = !memcmp(from, j->id, 16);
        for (size_t k = 0; k < n_rows && !here; k++)
            here = !memcmp(fy_gap_journal(j->id, &rows[k]), from, 16) && rows[k].first_seq == g[i].first_seq &&
                   rows[k].last_seq == g[i].last_seq;
        if (here || key == 0) { /* key 0: 2^63 keys used up, never in practice */
            (*present)++;
            continue;
        }
        fy_gap r = g[i];
        r.key_seq = key++;
        r.imported = r.sealed = 1;
        if (!(e = fy_gaps_put(j, txn, &r)))
            (*added)++;
    }
    fy_gaps_free(rows, n_rows);
    return e;
}

/* ---- the loss event ---------------------------------------------------- */

const unsigned char *fy_gap_journal(const unsigned char journal_id[16], const fy_gap *g)
{
    return g->imported ? g->journal_id : journal_id;
}

void fy_gap_insert_id(const unsigned char journal_id[16], const fy_gap *g, char out[96])
{
    char hex[33];
    hex16(fy_gap_journal(journal_id, g), hex);
    snprintf(out, 96, "ferry-lost-%s-%" PRIu64 "-%" PRIu64, hex, g->first_seq, g->last_seq);
}

ferry_err fy_gap_event_json(const unsigned char journal_id[16], const fy_gap *g, fy_buf *b)
{
    char hex[33], iid[96];
    hex16(fy_gap_journal(journal_id, g), hex);
    fy_gap_insert_id(journal_id, g, iid);
    ferry_err e = fy_buf_printf(b, "{\"event_type\":\"%s\"", FY_LOSS_EVENT_TYPE);
    if (!e && g->device_id && !(e = fy_buf_puts(b, ",\"device_id\":")))
        e = fy_json_emit_string(b, g->device_id, strlen(g->device_id));
    if (!e && g->user_id && !(e = fy_buf_puts(b, ",\"user_id\":")))
        e = fy_json_emit_string(b, g->user_id, strlen(g->user_id));
    if (!e && !g->device_id && !g->user_id) /* unknown or shared: the journal stands for the device */
        e = fy_buf_printf(b, ",\"device_id\":\"ferry-journal-%s\"", hex);
    if (!e)
        e = fy_buf_printf(b,
                          ",\"insert_id\":\"%s\",\"time\":%" PRId64 ",\"event_properties\":{\"count\":%" PRIu64
                          ",\"first_seq\":%" PRIu64 ",\"last_seq\":%" PRIu64 ",\"first_time\":%" PRId64
                          ",\"last_time\":%" PRId64 ",\"first_recorded_at\":%" PRId64
                          ",\"last_recorded_at\":%" PRId64 ",\"journal_id\":\"%s\",\"reason\":\"evict-oldest\"}}",
                          iid, g->first_time, g->count, g->first_seq, g->last_seq, g->first_time, g->last_time,
                          g->first_recorded, g->last_recorded, hex);
    return e;
}

ferry_err fy_gap_json(const fy_gap *g, fy_buf *b)
{
    ferry_err e = fy_buf_puts(b, "{\"sink\":");
    if (!e)
        e = fy_json_emit_string(b, g->sink, strlen(g->sink));
    if (!e) {
        e = fy_buf_puts(b, ",\"device_id\":");
        if (!e)
            e = g->device_id ? fy_json_emit_string(b, g->device_id, strlen(g->device_id)) : fy_buf_puts(b, "null");
    }
    if (!e) {
        e = fy_buf_puts(b, ",\"user_id\":");
        if (!e)
            e = g->user_id ? fy_json_emit_string(b, g->user_id, strlen(g->user_id)) : fy_buf_puts(b, "null");
    }
    if (!e)
        e = fy_buf_printf(b,
                          ",\"count\":%" PRIu64 ",\"first_seq\":%" PRIu64 ",\"last_seq\":%" PRIu64
                          ",\"first_time\":%" PRId64 ",\"last_time\":%" PRId64 ",\"first_recorded_at\":%" PRId64
                          ",\"last_recorded_at\":%" PRId64 ",\"evicted_at_ms\":%" PRId64 ",\"sealed\":%s",
                          g->count, g->first_seq, g->last_seq, g->first_time, g->last_time, g->first_recorded,
                          g->last_recorded, g->at_ms, g->sealed ? "true" : "false");
    if (!e && g->imported) { /* whose loss it is */
        char hex[33];
        hex16(g->journal_id, hex);
        e = fy_buf_printf(b, ",\"journal_id\":\"%s\"", hex);
    }
    return e ? e : fy_buf_putc(b, '}');
}

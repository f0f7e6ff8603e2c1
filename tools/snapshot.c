/* snapshot.c: one read transaction over the journal, walking every event
 * (stored ones and dead letters no longer stored) in sequence order with
 * its delivery state for each destination. A read transaction never blocks
 * recorders or the replayer; it only keeps the pages it sees from reuse
 * until it ends. */
#include "fj.h"
#include "fy_fail.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

const char *fj_state_name(unsigned s)
{
    return s == FJ_DEAD ? "dead" : s == FJ_PENDING ? "pending" : "delivered";
}

static ferry_err load_dests(fj_snap *s)
{
    ferry_err e;
    s->dests = fy_cursors_load(s->j, s->txn, 1, s->dests, &s->n_dests, sizeof *s->dests, &e);
    return e;
}

static size_t dest_index(fj_snap *s, const char *name, ferry_err *e)
{
    for (size_t i = 0; i < s->n_dests; i++)
        if (!strcmp(s->dests[i].name, name))
            return i;
    /* A dead letter of a destination without a cursor row: name it too. */
    fj_dest *nd = realloc(s->dests, (s->n_dests + 1) * sizeof *nd);
    if (!nd) {
        *e = fy_fail(FERRY_ENOMEM, "out of memory");
        return 0;
    }
    s->dests = nd;
    memset(&nd[s->n_dests], 0, sizeof *nd);
    snprintf(nd[s->n_dests].name, sizeof nd[s->n_dests].name, "%s", name);
    return s->n_dests++;
}

static fj_snap *sort_ctx;

static int cmp_dead(const void *a, const void *b)
{
    size_t x = *(const size_t *)a, y = *(const size_t *)b;
    const fj_snap *s = sort_ctx;
    if (s->dead[x].seq != s->dead[y].seq)
        return s->dead[x].seq < s->dead[y].seq ? -1 : 1;
    return s->dead_dest[x] < s->dead_dest[y] ? -1 : s->dead_dest[x] > s->dead_dest[y];
}

static ferry_err load_dead(fj_snap *s)
{
    fy_journal *j = s->j;
    MDB_cursor *cur;
    MDB_val k, d;
    int rc = mdb_cursor_open(s->txn, j->dead, &cur);
    if (rc)
        return fy_fail_lmdb(rc, "journal %s: reading dead letters", j->path);
    ferry_err e = FERRY_OK;
    for (rc = mdb_cursor_get(cur, &k, &d, MDB_FIRST); !rc && !e; rc = mdb_cursor_get(cur, &k, &d, MDB_NEXT)) {
        fy_dead x;
        if (fy_dead_decode(j, &k, &d, &x)) {
            fprintf(stderr, FJ_PROG ": %s (skipped)\n", ferry_last_error());
            continue;
        }
        fy_dead *nd = realloc(s->dead, (s->n_dead + 1) * sizeof *nd);
        size_t *ni = nd ? realloc(s->dead_dest, (s->n_dead + 1) * sizeof *ni) : NULL;
        if (nd)
            s->dead = nd;
        if (!ni) {
            e = fy_fail(FERRY_ENOMEM, "out of memory");
            break;
        }
        s->dead_dest = ni;
        s->dead[s->n_dead] = x;
        s->dead_dest[s->n_dead] = dest_index(s, x.sink, &e);
        s->n_dead++;
    }
    mdb_cursor_close(cur);
    if (!e && rc != MDB_NOTFOUND)
        e = fy_fail_lmdb(rc, "journal %s: reading dead letters", j->path);
    if (e || s->n_dead < 2)
        return e;
    /* Sort by (seq, destination) through an index, then apply it. */
    size_t *idx = malloc(s->n_dead * sizeof *idx);
    fy_dead *dd = malloc(s->n_dead * sizeof *dd);
    size_t *di = malloc(s->n_dead * sizeof *di);
    if (!idx || !dd || !di) {
        free(idx), free(dd), free(di);
        return fy_fail(FERRY_ENOMEM, "out of memory");
    }
    for (size_t i = 0; i < s->n_dead; i++)
        idx[i] = i;
    sort_ctx = s;
    qsort(idx, s->n_dead, sizeof *idx, cmp_dead);
    for (size_t i = 0; i < s->n_dead; i++) {
        dd[i] = s->dead[idx[i]];
        di[i] = s->dead_dest[idx[i]];
    }
    free(idx);
    free(s->dead);
    free(s->dead_dest);
    s->dead = dd;
    s->dead_dest = di;
    return FERRY_OK;
}

ferry_err fj_snap_open(fy_journal *j, fj_snap *s)
{
    memset(s, 0, sizeof *s);
    s->j = j;
    ferry_err e = fy_txn_begin(j, MDB_RDONLY, &s->txn);
    if (e)
        return e;
    MDB_stat st;
    if ((e = fy_seq_last(j, s->txn, &s->recorded)) || (e = fy_meta_get_u64(j, s->txn, "evicted", &s->evicted)) ||
        (e = fy_meta_get_u64(j, s->txn, "pruned", &s->pruned)) ||
        (e = fy_meta_get_u64(j, s->txn, "created_ms", &s->created_ms)) || (e = load_dests(s)) || (e = load_dead(s)))
        return e;
    if (mdb_stat(s->txn, j->events, &st) == 0)
        s->stored = st.ms_entries;
    return FERRY_OK;
}

void fj_snap_close(fj_snap *s)
{
    if (s->txn)
        mdb_txn_abort(s->txn);
    for (size_t i = 0; i < s->n_dests; i++)
        fy_cursor_free(&s->dests[i].c);
    free(s->dests);
    free(s->dead);
    free(s->dead_dest);
    memset(s, 0, sizeof *s);
}

ferry_err fj_filter_json(const fj_filter *f, fy_buf *out)
{
    ferry_err e = fy_buf_putc(out, '{');
    const char *sep = "";
    if (!e && f->states) {
        e = fy_buf_puts(out, "\"states\":[");
        const char *s2 = "";
        for (unsigned bit = FJ_PENDING; bit <= FJ_DEAD && !e; bit <<= 1)
            if (f->states & bit) {
                e = fy_buf_printf(out, "%s\"%s\"", s2, fj_state_name(bit));
                s2 = ",";
            }
        if (!e)
            e = fy_buf_putc(out, ']');
        sep = ",";
    }
    if (!e && f->has_since)
        e = fy_buf_printf(out, "%s\"since\":%" PRId64, sep, f->since), sep = ",";
    if (!e && f->has_until)
        e = fy_buf_printf(out, "%s\"until\":%" PRId64, sep, f->until), sep = ",";
    if (!e && f->n_types) {
        e = fy_buf_printf(out, "%s\"types\":[", sep);
        for (size_t i = 0; i < f->n_types && !e; i++) {
            if (i)
                e = fy_buf_putc(out, ',');
            if (!e)
                e = fy_json_emit_string(out, f->types[i], strlen(f->types[i]));
        }
        if (!e)
            e = fy_buf_putc(out, ']');
        sep = ",";
    }
    if (!e && f->device_id) {
        e = fy_buf_printf(out, "%s\"device_id\":", sep);
        if (!e)
            e = fy_json_emit_string(out, f->device_id, strlen(f->device_id));
    }
    if (!e)
        e = fy_buf_putc(out, '}');
    return e;
}

static int matches(const fj_filter *f, const fj_item *it)
{
    if (f->states && !(f->states & it->summary))
        return 0;
    if (f->has_since && it->r.time_ms < f->since)
        return 0;
    if (f->has_until && it->r.time_ms >= f->until)
        return 0;
    if (f->n_types) {
        int any = 0;
        for (size_t i = 0; i < f->n_types && !any; i++)
            any = strlen(f->types[i]) == it->r.event_type_len &&
                  !memcmp(f->types[i], it->r.event_type, it->r.event_type_len);
        if (!any)
            return 0;
    }
    if (f->device_id && (!it->r.device_id || strlen(f->device_id) != it->r.device_id_len ||
                         memcmp(f->device_id, it->r.device_id, it->r.device_id_len)))
        return 0;
    return 1;
}

/* Fills states and summary for seq; dead letters of seq start at *di. */
static void states_of(fj_snap *s, fj_item *it, size_t *di)
{
    int any_dead = 0, any_pending = 0;
    for (size_t d = 0; d < s->n_dests; d++) {
        fy_cap_state *st = &it->states[d];
        memset(st, 0, sizeof *st);
        st->state = fy_cursor_is_done(&s->dests[d].c, it->seq) ? FY_CAP_DELIVERED : FY_CAP_PENDING;
    }
    while (*di < s->n_dead && s->dead[*di].seq == it->seq) {
        const fy_dead *x = &s->dead[*di];
        fy_cap_state *st = &it->states[s->dead_dest[*di]];
        st->state = FY_CAP_DEAD;
        st->status = x->status;
        st->at_ms = x->at_ms;
        st->reason.p = x->reason;
        st->reason.n = strlen(x->reason);
        (*di)++;
    }
    /* A record kept only as a dead letter is not waiting for anyone: it was
     * deleted from `events` once every destination was done with it. */
    if (!(it->flags & FY_CAP_FLAG_STORED))
        for (size_t d = 0; d < s->n_dests; d++)
            if (it->states[d].state == FY_CAP_PENDING)
                it->states[d].state = FY_CAP_DELIVERED;
    for (size_t d = 0; d < s->n_dests; d++) {
        any_dead |= it->states[d].state == FY_CAP_DEAD;
        any_pending |= it->states[d].state == FY_CAP_PENDING;
    }
    it->summary = any_dead ? FJ_DEAD : any_pending ? FJ_PENDING : FJ_DELIVERED;
}

ferry_err fj_snap_each(fj_snap *s, const fj_filter *f, fj_item_fn fn, void *arg, uint64_t *bad, int *status)
{
    fy_journal *j = s->j;
    MDB_cursor *cur;
    MDB_val k, d;
    *status = 0;
    fj_item it;
    memset(&it, 0, sizeof it);
    it.states = calloc(s->n_dests + 1, sizeof *it.states);
    if (!it.states)
        return fy_fail(FERRY_ENOMEM, "out of memory");
    int rc = mdb_cursor_open(s->txn, j->events, &cur);
    if (rc) {
        free(it.states);
        return fy_fail_lmdb(rc, "journal %s: reading events", j->path);
    }
    ferry_err e = FERRY_OK;
    size_t di = 0;
    int have = (rc = mdb_cursor_get(cur, &k, &d, MDB_FIRST)) == 0;
    while (!*status && !fj_stop) {
        uint64_t ev_seq = UINT64_MAX;
        if (have) {
            if (k.mv_size != 8) {
                e = fy_fail(FERRY_ECORRUPT, "journal %s: event key of %zu bytes", j->path, k.mv_size);
                break;
            }
            ev_seq = fy_get_be64(k.mv_data);
        }
        uint64_t dead_seq = di < s->n_dead ? s->dead[di].seq : UINT64_MAX;
        if (!have && di >= s->n_dead)
            break;
        it.seq = ev_seq <= dead_seq ? ev_seq : dead_seq;
        if (it.seq == ev_seq) {
            it.flags = FY_CAP_FLAG_STORED;
            it.rec = d.mv_data;
            it.rec_len = d.mv_size;
        } else {
            it.flags = 0;
            it.rec = s->dead[di].rec;
            it.rec_len = s->dead[di].rec_len;
        }
        states_of(s, &it, &di);
        if (fy_record_decode(it.rec, it.rec_len, &it.r) != FERRY_OK) {
            fprintf(stderr, FJ_PROG ": journal %s: seq %" PRIu64 ": %s\n", j->path, it.seq, ferry_last_error());
            (*bad)++;
        } else {
            if (matches(f, &it))
                *status = fn(arg, &it);
            fy_record_free(&it.r);
        }
        if (it.seq == ev_seq) {
            rc = mdb_cursor_get(cur, &k, &d, MDB_NEXT);
            have = rc == 0;
            if (rc && rc != MDB_NOTFOUND) {
                e = fy_fail_lmdb(rc, "journal %s: reading events", j->path);
                break;
            }
        }
    }
    mdb_cursor_close(cur);
    free(it.states);
    if (!e && have == 0 && rc && rc != MDB_NOTFOUND)
        e = fy_fail_lmdb(rc, "journal %s: reading events", j->path);
    return e;
}

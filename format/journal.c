/* journal.c: opening the LMDB journal and the operations that keep its
 * invariants (sequence numbers, deletion, the size bound). */
#include "fy_journal.h"
#include "fy_buf.h"
#include "fy_fail.h"
#include "fy_gaps.h"
#include "fy_record.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define META_FORMAT "format"
#define META_ID "journal_id"
#define META_CREATED "created_ms"
#define META_FLOOR "seq_floor"
#define META_EVICTED "evicted"
#define META_PRUNED "pruned"

void fy_put_be64(unsigned char out[8], uint64_t v)
{
    for (int i = 7; i >= 0; i--, v >>= 8)
        out[i] = (unsigned char)v;
}

uint64_t fy_get_be64(const unsigned char in[8])
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v = (v << 8) | in[i];
    return v;
}

size_t fy_sink_seq_key(unsigned char *kb, size_t cap, const char *sink, uint64_t seq)
{
    size_t sl = strlen(sink);
    if (sl + 9 > cap)
        return 0;
    memcpy(kb, sink, sl);
    kb[sl] = 0;
    fy_put_be64(kb + sl + 1, seq);
    return sl + 9;
}

/* mkdir -p; components it creates get 0700. */
static ferry_err make_dirs(const char *dir)
{
    char *p = strdup(dir);
    if (!p)
        return fy_fail(FERRY_ENOMEM, "out of memory");
    ferry_err e = FERRY_OK;
    for (char *s = p + 1;; s++) {
        if (*s != '/' && *s != '\0')
            continue;
        char c = *s;
        *s = '\0';
        if (mkdir(p, 0700) != 0 && errno != EEXIST) {
            e = fy_fail(errno == EACCES || errno == EROFS ? FERRY_EACCES : FERRY_EIO,
                        "cannot create directory %s: %s", p, strerror(errno));
            break;
        }
        *s = c;
        if (c == '\0')
            break;
    }
    free(p);
    return e;
}

ferry_err fy_txn_begin(fy_journal *j, unsigned flags, MDB_txn **txn)
{
    int rc;
    for (int tries = 0;; tries++) {
        rc = mdb_txn_begin(j->env, NULL, flags, txn);
        if (rc != MDB_MAP_RESIZED || tries == 3)
            break;
        /* Another process grew the map: adopt its size (no txn is open here). */
        mdb_env_set_mapsize(j->env, 0);
        j->map_base = NULL; /* remapped */
        MDB_envinfo info;
        mdb_env_info(j->env, &info);
        j->map_bytes = info.me_mapsize;
    }
    if (rc)
        return fy_fail_lmdb(rc, "journal %s: starting a transaction", j->path);
    return FERRY_OK;
}

/* The mapping of data.mdb: the shared mapping of the file's inode. */
static void find_map(fy_journal *j)
{
    char path[4200], line[4500];
    struct stat st;
    snprintf(path, sizeof path, "%s/data.mdb", j->path);
    FILE *f = stat(path, &st) == 0 ? fopen("/proc/self/maps", "r") : NULL;
    if (!f)
        return;
    while (fgets(line, sizeof line, f)) {
        unsigned long lo, hi, ino;
        char perms[8];
        if (sscanf(line, "%lx-%lx %7s %*s %*s %lu", &lo, &hi, perms, &ino) == 4 && ino == st.st_ino &&
            perms[3] == 's' && hi - lo > (unsigned long)j->page_size) {
            j->map_base = (void *)(uintptr_t)lo;
            j->map_len = (size_t)(hi - lo);
            break;
        }
    }
    fclose(f);
}

void fy_journal_release_pages(fy_journal *j)
{
    if (!j->map_base)
        find_map(j);
    if (j->map_base)
        madvise(j->map_base, j->map_len, MADV_DONTNEED);
}

ferry_err fy_txn_commit(fy_journal *j, MDB_txn *txn, const char *what)
{
    int rc = mdb_txn_commit(txn);
    if (rc > 0) /* errno: the write, the fdatasync or the meta write failed */
        j->commit_io_failed = 1;
    if (rc)
        return fy_fail_lmdb(rc, "journal %s: committing %s", j->path, what);
    return FERRY_OK;
}

ferry_err fy_meta_get_u64(fy_journal *j, MDB_txn *txn, const char *key, uint64_t *v)
{
    MDB_val k = fy_mval(key, strlen(key)), d;
    int rc = mdb_get(txn, j->meta, &k, &d);
    *v = 0;
    if (rc == MDB_NOTFOUND)
        return FERRY_OK;
    if (rc)
        return fy_fail_lmdb(rc, "journal %s: reading meta %s", j->path, key);
    if (d.mv_size != 8)
        return fy_fail(FERRY_ECORRUPT, "journal %s: meta %s has %zu bytes, expected 8", j->path, key,
                       d.mv_size);
    *v = fy_get_be64(d.mv_data);
    return FERRY_OK;
}

ferry_err fy_meta_put_u64(fy_journal *j, MDB_txn *txn, const char *key, uint64_t v)
{
    unsigned char b[8];
    fy_put_be64(b, v);
    MDB_val k = fy_mval(key, strlen(key)), d = fy_mval(b, 8);
    int rc = mdb_put(txn, j->meta, &k, &d, 0);
    if (rc)
        return fy_fail_lmdb(rc, "journal %s: writing meta %s", j->path, key);
    return FERRY_OK;
}

ferry_err fy_meta_add_u64(fy_journal *j, MDB_txn *txn, const char *key, uint64_t delta)
{
    uint64_t v;
    ferry_err e = fy_meta_get_u64(j, txn, key, &v);
    return e ? e : fy_meta_put_u64(j, txn, key, v + delta);
}

ferry_err fy_seq_next(fy_journal *j, MDB_txn *txn, uint64_t *next)
{
    uint64_t floor;
    ferry_err e = fy_meta_get_u64(j, txn, META_FLOOR, &floor);
    if (e)
        return e;
    MDB_cursor *c;
    int rc = mdb_cursor_open(txn, j->events, &c);
    if (rc)
        return fy_fail_lmdb(rc, "journal %s: opening events", j->path);
    MDB_val k, d;
    rc = mdb_cursor_get(c, &k, &d, MDB_LAST);
    mdb_cursor_close(c);
    uint64_t n = floor ? floor : 1;
    if (rc == 0) {
        if (k.mv_size != 8)
            return fy_fail(FERRY_ECORRUPT, "journal %s: event key of %zu bytes", j->path, k.mv_size);
        uint64_t last = fy_get_be64(k.mv_data);
        if (last + 1 > n)
            n = last + 1;
    } else if (rc != MDB_NOTFOUND) {
        return fy_fail_lmdb(rc, "journal %s: reading the last event", j->path);
    }
    *next = n;
    return FERRY_OK;
}

ferry_err fy_seq_last(fy_journal *j, MDB_txn *txn, uint64_t *last)
{
    uint64_t n;
    ferry_err e = fy_seq_next(j, txn, &n);
    *last = e ? 0 : n - 1;
    return e;
}

ferry_err fy_events_delete(fy_journal *j, MDB_txn *txn, uint64_t from, uint64_t to,
                           uint64_t max_count, uint64_t *deleted)
{
    MDB_cursor *c;
    unsigned char kb[8];
    uint64_t count = 0, last = 0;
    *deleted = 0;
    int rc = mdb_cursor_open(txn, j->events, &c);
    if (rc)
        return fy_fail_lmdb(rc, "journal %s: opening events", j->path);
    fy_put_be64(kb, from);
    MDB_val k = fy_mval(kb, 8), d;
    rc = mdb_cursor_get(c, &k, &d, MDB_SET_RANGE);
    while (rc == 0 && (max_count == 0 || count < max_count)) {
        uint64_t seq = k.mv_size == 8 ? fy_get_be64(k.mv_data) : 0;
        if (seq > to)
            break;
        rc = mdb_cursor_del(c, 0);
        if (rc)
            break;
        count++;
        last = seq;
        rc = mdb_cursor_get(c, &k, &d, MDB_NEXT); /* after a delete: the following entry */
    }
    mdb_cursor_close(c);
    if (rc && rc != MDB_NOTFOUND)
        return fy_fail_lmdb(rc, "journal %s: deleting events", j->path);
    *deleted = count;
    if (count) {
        uint64_t floor;
        ferry_err e = fy_meta_get_u64(j, txn, META_FLOOR, &floor);
        if (!e && last + 1 > floor)
            e = fy_meta_put_u64(j, txn, META_FLOOR, last + 1);
        return e;
    }
    return FERRY_OK;
}

ferry_err fy_live_bytes(fy_journal *j, MDB_txn *txn, uint64_t *bytes)
{
    const MDB_dbi dbis[] = {0 /* LMDB's free list */, 1 /* main */, j->meta, j->events, j->cursors, j->dead,
                            j->imported, j->gaps};
    uint64_t pages = 2; /* the two meta pages */
    for (size_t i = 0; i < sizeof dbis / sizeof dbis[0]; i++) {
        if (i >= 6 && !dbis[i])
            continue;
        MDB_stat st;
        int rc = mdb_stat(txn, dbis[i], &st);
        if (rc)
            return fy_fail_lmdb(rc, "journal %s: reading page counts", j->path);
        pages += st.ms_branch_pages + st.ms_leaf_pages + st.ms_overflow_pages;
    }
    *bytes = pages * j->page_size;
    return FERRY_OK;
}

/* ---- cursors ----------------------------------------------------------- */

void fy_cursor_free(fy_cursor *c)
{
    free(c->above);
    memset(c, 0, sizeof *c);
}

static int obj_u64(const msgpack_object *o, uint64_t *v)
{
    if (o->type != MSGPACK_OBJECT_POSITIVE_INTEGER)
        return -1;
    *v = o->via.u64;
    return 0;
}

static int obj_i64(const msgpack_object *o, int64_t *v)
{
    if (o->type != MSGPACK_OBJECT_POSITIVE_INTEGER && o->type != MSGPACK_OBJECT_NEGATIVE_INTEGER)
        return -1;
    *v = o->via.i64;
    return 0;
}

ferry_err fy_cursor_get(fy_journal *j, MDB_txn *txn, const char *sink, fy_cursor *c, int *found)
{
    memset(c, 0, sizeof *c);
    *found = 0;
    MDB_val k = fy_mval(sink, strlen(sink)), d;
    int rc = mdb_get(txn, j->cursors, &k, &d);
    if (rc == MDB_NOTFOUND)
        return FERRY_OK;
    if (rc)
        return fy_fail_lmdb(rc, "journal %s: reading cursor %s", j->path, sink);
    ferry_err e = fy_cursor_decode(j->path, sink, d.mv_data, d.mv_size, c);
    if (!e)
        *found = 1;
    return e;
}

ferry_err fy_cursor_decode(const char *path, const char *sink, const void *data, size_t len, fy_cursor *c)
{
    memset(c, 0, sizeof *c);
    ferry_err e = fy_msgpack_check(data, len);
    if (e)
        return fy_fail_prefix(FERRY_ECORRUPT, "journal %s: cursor %s", path, sink);
    msgpack_unpacked up;
    msgpack_unpacked_init(&up);
    size_t off = 0;
    if (msgpack_unpack_next(&up, data, len, &off) != MSGPACK_UNPACK_SUCCESS ||
        up.data.type != MSGPACK_OBJECT_MAP) {
        msgpack_unpacked_destroy(&up);
        return fy_fail(FERRY_ECORRUPT, "journal %s: cursor %s is not a map", path, sink);
    }
    const msgpack_object *m = &up.data, *v;
    int bad = 0;
    if ((v = fy_map_get(m, "delivered"))) bad |= obj_u64(v, &c->delivered);
    if ((v = fy_map_get(m, "sent"))) bad |= obj_u64(v, &c->sent);
    if ((v = fy_map_get(m, "resent"))) bad |= obj_u64(v, &c->resent);
    if ((v = fy_map_get(m, "dead"))) bad |= obj_u64(v, &c->dead);
    if ((v = fy_map_get(m, "outside_window"))) bad |= obj_u64(v, &c->outside_window);
    if ((v = fy_map_get(m, "last_success_ms"))) bad |= obj_i64(v, &c->last_success_ms);
    if ((v = fy_map_get(m, "inflight_first_ms"))) bad |= obj_i64(v, &c->inflight_first_ms);
    if ((v = fy_map_get(m, "attempted"))) bad |= obj_u64(v, &c->attempted);
    if (!bad && (v = fy_map_get(m, "above"))) {
        if (v->type != MSGPACK_OBJECT_ARRAY) {
            bad = 1;
        } else if (v->via.array.size) {
            c->above = calloc(v->via.array.size, sizeof *c->above);
            if (!c->above) {
                msgpack_unpacked_destroy(&up);
                return fy_fail(FERRY_ENOMEM, "out of memory");
            }
            for (uint32_t i = 0; i < v->via.array.size && !bad; i++)
                bad |= obj_u64(&v->via.array.ptr[i], &c->above[i]);
            c->n_above = v->via.array.size;
        }
    }
    msgpack_unpacked_destroy(&up);
    if (bad) {
        fy_cursor_free(c);
        return fy_fail(FERRY_ECORRUPT, "journal %s: cursor %s has a field of the wrong type", path, sink);
    }
    return FERRY_OK;
}

ferry_err fy_cursor_put(fy_journal *j, MDB_txn *txn, const char *sink, const fy_cursor *c)
{
    fy_buf b;
    fy_buf_init(&b, 0);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &b, fy_buf_msgpack_write);
    int bad = msgpack_pack_map(&pk, 9);
#define PACK_KEY(s) (bad |= msgpack_pack_str_with_body(&pk, s, sizeof s - 1))
    PACK_KEY("delivered"), bad |= msgpack_pack_uint64(&pk, c->delivered);
    PACK_KEY("sent"), bad |= msgpack_pack_uint64(&pk, c->sent);
    PACK_KEY("resent"), bad |= msgpack_pack_uint64(&pk, c->resent);
    PACK_KEY("dead"), bad |= msgpack_pack_uint64(&pk, c->dead);
    PACK_KEY("outside_window"), bad |= msgpack_pack_uint64(&pk, c->outside_window);
    PACK_KEY("last_success_ms"), bad |= msgpack_pack_int64(&pk, c->last_success_ms);
    PACK_KEY("inflight_first_ms"), bad |= msgpack_pack_int64(&pk, c->inflight_first_ms);
    PACK_KEY("attempted"), bad |= msgpack_pack_uint64(&pk, c->attempted);
    PACK_KEY("above"), bad |= msgpack_pack_array(&pk, c->n_above);
#undef PACK_KEY
    for (size_t i = 0; i < c->n_above && !bad; i++)
        bad |= msgpack_pack_uint64(&pk, c->above[i]);
    ferry_err e = FERRY_OK;
    if (bad) {
        e = fy_fail(FERRY_ENOMEM, "out of memory encoding cursor %s", sink);
    } else {
        MDB_val k = fy_mval(sink, strlen(sink)), d = fy_mval(b.data, b.len);
        int rc = mdb_put(txn, j->cursors, &k, &d, 0);
        if (rc)
            e = fy_fail_lmdb(rc, "journal %s: writing cursor %s", j->path, sink);
    }
    fy_buf_free(&b);
    return e;
}

typedef struct load_ctx {
    unsigned char *arr;
    size_t *n, size;
} load_ctx;

static ferry_err load_one(void *arg, const char *name, fy_cursor *c)
{
    load_ctx *l = arg;
    unsigned char *p = realloc(l->arr, (*l->n + 1) * l->size);
    if (!p) {
        fy_cursor_free(c);
        return fy_fail(FERRY_ENOMEM, "out of memory");
    }
    l->arr = p;
    unsigned char *el = p + *l->n * l->size;
    memset(el, 0, l->size);
    fy_named_cursor *nc = (fy_named_cursor *)(void *)el; /* the element's first member */
    snprintf(nc->name, sizeof nc->name, "%s", name);
    nc->c = *c;
    (*l->n)++;
    return FERRY_OK;
}

void *fy_cursors_load(fy_journal *j, MDB_txn *txn, int implied_default, void *arr, size_t *n, size_t elem_size,
                      ferry_err *e)
{
    load_ctx l = {arr, n, elem_size};
    *e = fy_cursor_each(j, txn, implied_default, load_one, &l);
    return l.arr;
}

ferry_err fy_cursor_each(fy_journal *j, MDB_txn *txn, int implied_default, fy_cursor_fn fn, void *arg)
{
    MDB_cursor *cur;
    int rc = mdb_cursor_open(txn, j->cursors, &cur);
    if (rc)
        return fy_fail_lmdb(rc, "journal %s: reading cursors", j->path);
    MDB_val k, d;
    ferry_err e = FERRY_OK;
    size_t rows = 0;
    char name[256];
    for (rc = mdb_cursor_get(cur, &k, &d, MDB_FIRST); !rc; rc = mdb_cursor_get(cur, &k, &d, MDB_NEXT)) {
        if (k.mv_size == 0 || k.mv_size >= sizeof name || memchr(k.mv_data, 0, k.mv_size)) {
            e = fy_fail(FERRY_ECORRUPT, "journal %s: a cursor name of %zu bytes", j->path, k.mv_size);
            break;
        }
        memcpy(name, k.mv_data, k.mv_size);
        name[k.mv_size] = '\0';
        fy_cursor c;
        if ((e = fy_cursor_decode(j->path, name, d.mv_data, d.mv_size, &c)) || (e = fn(arg, name, &c)))
            break;
        rows++;
    }
    mdb_cursor_close(cur);
    if (!e && rc != MDB_NOTFOUND)
        e = fy_fail_lmdb(rc, "journal %s: reading cursors", j->path);
    if (!e && !rows && implied_default) {
        fy_cursor c;
        memset(&c, 0, sizeof c);
        e = fn(arg, FY_DEFAULT_SINK, &c);
    }
    return e;
}

typedef struct lowest {
    uint64_t low;
    int any;
} lowest;

static ferry_err lowest_watermark(void *arg, const char *name, fy_cursor *c)
{
    (void)name;
    lowest *l = arg;
    if (!l->any || c->delivered < l->low)
        l->low = c->delivered;
    l->any = 1;
    fy_cursor_free(c);
    return FERRY_OK;
}

ferry_err fy_delivered_everywhere(fy_journal *j, MDB_txn *txn, uint64_t *watermark)
{
    lowest l = {0, 0};
    ferry_err e = fy_cursor_each(j, txn, 0, lowest_watermark, &l);
    *watermark = e ? 0 : l.low;
    return e;
}

/* ---- open / close ------------------------------------------------------ */

static ferry_err init_meta(fy_journal *j, MDB_txn *txn)
{
    unsigned char v[8];
    uint64_t fmt = ((uint64_t)FY_FORMAT_MAJOR << 32) | FY_FORMAT_MINOR;
    fy_put_be64(v, fmt);
    unsigned char id[16];
    ferry_err e = fy_random_bytes(id, sizeof id);
    if (e)
        return e;
    MDB_val kf = fy_mval(META_FORMAT, strlen(META_FORMAT)), df = fy_mval(v, 8);
    MDB_val ki = fy_mval(META_ID, strlen(META_ID)), di = fy_mval(id, 16);
    int rc = mdb_put(txn, j->meta, &kf, &df, 0);
    if (!rc)
        rc = mdb_put(txn, j->meta, &ki, &di, 0);
    if (rc)
        return fy_fail_lmdb(rc, "journal %s: initialising meta", j->path);
    if ((e = fy_meta_put_u64(j, txn, META_CREATED, (uint64_t)fy_now_ms())) ||
        (e = fy_meta_put_u64(j, txn, META_FLOOR, 1)))
        return e;
    return FERRY_OK;
}

static ferry_err open_dbis(fy_journal *j, MDB_txn *txn, int create)
{
    static const char *const names[] = {"meta", "events", "cursors", "dead"};
    MDB_dbi *dbis[] = {&j->meta, &j->events, &j->cursors, &j->dead};
    MDB_dbi main_dbi;
    int rc = mdb_dbi_open(txn, NULL, 0, &main_dbi);
    if (rc)
        return fy_fail_lmdb(rc, "journal %s: opening the main database", j->path);
    int had_meta = 0;
    for (size_t i = 0; i < 4; i++) {
        rc = mdb_dbi_open(txn, names[i], 0, dbis[i]);
        if (i == 0)
            had_meta = rc == 0;
        /* All four are made in one transaction: one missing beside an
         * existing meta is damage (the main database lost its record), never
         * a reason to start it again empty. */
        if (rc == MDB_NOTFOUND && had_meta) {
            MDB_val k = fy_mval(META_FORMAT, strlen(META_FORMAT)), d;
            if (mdb_get(txn, j->meta, &k, &d) == 0)
                return fy_fail(FERRY_ECORRUPT, "journal %s is damaged: its \"%s\" database is missing (run "
                               "`ferry-journal -j %s salvage`)", j->path, names[i], j->path);
            return fy_fail(FERRY_ECORRUPT, "%s is not a ferry journal (no \"%s\" database)", j->path, names[i]);
        }
        if (rc == MDB_NOTFOUND && create) {
            if (i == 0) {
                /* Only ever initialise an empty environment as a journal. */
                MDB_stat st;
                if (mdb_stat(txn, main_dbi, &st) == 0 && st.ms_entries > 0)
                    return fy_fail(FERRY_ECORRUPT, "%s holds an LMDB environment that is not a ferry journal",
                                   j->path);
            }
            rc = mdb_dbi_open(txn, names[i], MDB_CREATE, dbis[i]);
        }
        if (rc == MDB_NOTFOUND)
            return fy_fail(FERRY_ECORRUPT, "%s is not a ferry journal (no \"%s\" database)", j->path,
                           names[i]);
        if (rc)
            return fy_fail_lmdb(rc, "journal %s: opening database %s", j->path, names[i]);
    }
    /* Optional (a 1.0 addition made by the first import); opened here so
     * that the size bound counts it. */
    rc = mdb_dbi_open(txn, "imported", create ? MDB_CREATE : 0, &j->imported);
    if (rc == MDB_NOTFOUND)
        j->imported = 0;
    else if (rc)
        return fy_fail_lmdb(rc, "journal %s: opening database imported", j->path);
    /* Optional too (a 1.0 addition): eviction gaps, made on a writable open. */
    rc = mdb_dbi_open(txn, "gaps", create ? MDB_CREATE : 0, &j->gaps);
    if (rc == MDB_NOTFOUND)
        j->gaps = 0;
    else if (rc)
        return fy_fail_lmdb(rc, "journal %s: opening database gaps", j->path);
    return FERRY_OK;
}

static ferry_err check_meta(fy_journal *j, MDB_txn *txn, int create)
{
    MDB_val k = fy_mval(META_FORMAT, strlen(META_FORMAT)), d;
    int rc = mdb_get(txn, j->meta, &k, &d);
    if (rc == MDB_NOTFOUND && create) {
        /* Initialise only what this process just created, never someone
         * else's database that happens to be called "meta". */
        MDB_stat ms, es;
        if (mdb_stat(txn, j->meta, &ms) || mdb_stat(txn, j->events, &es) || ms.ms_entries || es.ms_entries)
            return fy_fail(FERRY_ECORRUPT, "%s holds an LMDB environment that is not a ferry journal", j->path);
        ferry_err e = init_meta(j, txn);
        if (e)
            return e;
        rc = mdb_get(txn, j->meta, &k, &d);
    }
    if (rc == MDB_NOTFOUND)
        return fy_fail(FERRY_ECORRUPT, "%s is not a ferry journal (no format version)", j->path);
    if (rc)
        return fy_fail_lmdb(rc, "journal %s: reading the format version", j->path);
    if (d.mv_size != 8)
        return fy_fail(FERRY_ECORRUPT, "journal %s: format version has %zu bytes", j->path, d.mv_size);
    uint64_t fmt = fy_get_be64(d.mv_data);
    j->format_major = (uint32_t)(fmt >> 32);
    j->format_minor = (uint32_t)fmt;
    if (j->format_major != FY_FORMAT_MAJOR)
        return fy_fail(FERRY_EVERSION, "journal %s has format version %u.%u; this build reads format %u.x",
                       j->path, j->format_major, j->format_minor, FY_FORMAT_MAJOR);
    if (create && j->format_minor < FY_FORMAT_MINOR) {
        /* A writer of this build may add what the newer minor version
         * defines (record elements 4 and 5): say so, as FORMAT.md asks. */
        unsigned char v[8];
        fy_put_be64(v, ((uint64_t)FY_FORMAT_MAJOR << 32) | FY_FORMAT_MINOR);
        MDB_val nv = fy_mval(v, 8);
        if ((rc = mdb_put(txn, j->meta, &k, &nv, 0)))
            return fy_fail_lmdb(rc, "journal %s: updating the format version", j->path);
        j->format_minor = FY_FORMAT_MINOR;
    }
    MDB_val ki = fy_mval(META_ID, strlen(META_ID)), di;
    rc = mdb_get(txn, j->meta, &ki, &di);
    if (rc || di.mv_size != 16)
        return fy_fail(FERRY_ECORRUPT, "journal %s: journal id missing or malformed", j->path);
    memcpy(j->id, di.mv_data, 16);
    return FERRY_OK;
}

/* Whether a data.mdb holds a valid LMDB meta page with a committed
 * transaction (txnid >= 1) at `off`. Layout of LMDB 0.9 (64-bit): a 16-byte
 * page header, then mm_magic, mm_version, and mm_txnid at byte 144. */
static int meta_committed(const unsigned char *p, size_t have, size_t off)
{
    if (off + 152 > have)
        return 0;
    uint32_t magic, version;
    uint64_t txnid;
    memcpy(&magic, p + off + 16, 4);
    memcpy(&version, p + off + 20, 4);
    memcpy(&txnid, p + off + 144, 8);
    return magic == 0xBEEFC0DEu && version == 1 && txnid >= 1;
}

/* A power cut while LMDB creates data.mdb can leave a file LMDB refuses
 * (MDB_INVALID): it writes both meta pages without a sync and makes them
 * durable only with the first commit's fdatasync, so a cut before that
 * leaves zeros or a torn header. Such a file never held a committed
 * transaction, hence no event. When no meta page records a commit and no
 * other process has the environment open (LMDB's own exclusive lock on
 * lock.mdb), the file is moved aside to data.mdb.unfinished and the journal
 * is created anew. Returns 1 when it moved the file. */
static int set_aside_unfinished(const char *dir)
{
    char data[4200], lockp[4200], aside[4300];
    snprintf(data, sizeof data, "%s/data.mdb", dir);
    snprintf(lockp, sizeof lockp, "%s/lock.mdb", dir);
    snprintf(aside, sizeof aside, "%s/data.mdb.unfinished", dir);
    int lfd = open(lockp, O_RDWR | O_CLOEXEC);
    if (lfd < 0)
        return 0;
    struct flock fl = {.l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = 0, .l_len = 1};
    int moved = 0;
    if (fcntl(lfd, F_SETLK, &fl) == 0) {
        const size_t cap = 2 * 65536; /* both meta pages at the largest page size */
        unsigned char *buf = malloc(cap);
        size_t have = 0;
        int fd = buf ? open(data, O_RDONLY | O_CLOEXEC) : -1;
        if (fd >= 0) {
            ssize_t r;
            while (have < cap && (r = read(fd, buf + have, cap - have)) > 0)
                have += (size_t)r;
            close(fd);
            int committed = 0;
            /* The second meta page follows the first, at LMDB's page size. */
            for (size_t ps = 4096; ps <= 65536 && !committed; ps *= 2)
                committed = meta_committed(buf, have, 0) || meta_committed(buf, have, ps);
            if (!committed && rename(data, aside) == 0)
                moved = 1;
        }
        free(buf);
    }
    close(lfd); /* releases the lock */
    return moved;
}

ferry_err fy_journal_open(fy_journal *j, const char *dir, const fy_open_opts *o)
{
    memset(j, 0, sizeof *j);
    ferry_err e = FERRY_OK;
    MDB_txn *txn = NULL;
    j->readonly = o->readonly;
    j->path = strdup(dir);
    if (!j->path)
        return fy_fail(FERRY_ENOMEM, "out of memory");

    char data_path[4096];
    if ((size_t)snprintf(data_path, sizeof data_path, "%s/data.mdb", dir) >= sizeof data_path) {
        e = fy_fail(FERRY_EINVAL, "journal path too long: %s", dir);
        goto fail;
    }
    /* An empty data.mdb is what a crash during creation leaves: no journal yet. */
    struct stat st;
    int exists = stat(data_path, &st) == 0 && st.st_size > 0;
    if (!exists && (!o->create || o->readonly)) {
        e = fy_fail(FERRY_ENOENT, "no journal at %s", dir);
        goto fail;
    }
    uint64_t want = o->max_bytes ? o->max_bytes : exists ? 0 : FY_DEFAULT_MAX_BYTES;
    if (want && want < FY_MIN_MAX_BYTES) {
        e = fy_fail(FERRY_EINVAL, "maximum journal size %llu is below the minimum of %llu bytes",
                    (unsigned long long)want, (unsigned long long)FY_MIN_MAX_BYTES);
        goto fail;
    }
    if (!exists && (e = make_dirs(dir)))
        goto fail;

    int rc = mdb_env_create(&j->env);
    if (!rc)
        rc = mdb_env_set_maxdbs(j->env, 8);
    if (!rc && want)
        rc = mdb_env_set_mapsize(j->env, (size_t)want);
    if (rc) {
        e = fy_fail_lmdb(rc, "journal %s: setting up LMDB", dir);
        goto fail;
    }
    /* MDB_NOTLS: reader slots belong to transactions, not threads, so a
     * library user may read from any thread. Never MDB_WRITEMAP (SIGBUS on a
     * full disk) and never MDB_NOSYNC (corruption on power loss). */
    unsigned flags = MDB_NOTLS | (o->readonly ? MDB_RDONLY : 0) | (o->relaxed ? MDB_NOMETASYNC : 0);
    for (int tries = 0, set_aside = 0;; tries++) {
        rc = mdb_env_open(j->env, dir, flags, 0600);
        if (rc == MDB_INVALID && o->create && !o->readonly && !set_aside && set_aside_unfinished(dir)) {
            /* Creation was cut short: start again on a fresh environment. */
            set_aside = 1;
            mdb_env_close(j->env);
            j->env = NULL;
            rc = mdb_env_create(&j->env);
            if (!rc)
                rc = mdb_env_set_maxdbs(j->env, 8);
            if (!rc)
                rc = mdb_env_set_mapsize(j->env, (size_t)(o->max_bytes ? o->max_bytes : FY_DEFAULT_MAX_BYTES));
            if (rc)
                break;
            continue;
        }
        /* Opening races with another process opening or closing (lmdb.h). */
        if ((rc != EAGAIN && rc != EBUSY) || tries == 5)
            break;
        usleep(10000);
    }
    if (rc) {
        e = fy_fail_lmdb(rc, "cannot open journal %s", dir);
        goto fail;
    }
    int dead = 0;
    mdb_reader_check(j->env, &dead); /* free slots of readers that died */

    MDB_envinfo info;
    MDB_stat est;
    mdb_env_info(j->env, &info);
    mdb_env_stat(j->env, &est);
    j->map_bytes = info.me_mapsize;
    j->page_size = est.ms_psize;

    if ((e = fy_txn_begin(j, o->readonly ? MDB_RDONLY : 0, &txn)) ||
        (e = open_dbis(j, txn, !o->readonly)) || (e = check_meta(j, txn, !o->readonly)))
        goto fail;
    e = fy_txn_commit(j, txn, "the journal set-up");
    txn = NULL;
    if (e)
        goto fail;
    return FERRY_OK;
fail:
    if (txn)
        mdb_txn_abort(txn);
    fy_journal_close(j);
    return e;
}

void fy_journal_close(fy_journal *j)
{
    if (j->env)
        mdb_env_close(j->env);
    free(j->path);
    memset(j, 0, sizeof *j);
}

/* ---- append under the size bound --------------------------------------- */

/* Bytes an event is expected to take in the B-tree: its node, or whole
 * overflow pages when it does not fit on half a page. */
static uint64_t footprint(const fy_journal *j, size_t len)
{
    uint64_t node = 8 + 8 + (uint64_t)len + 2;
    if (node > j->page_size / 2)
        return ((node + j->page_size - 1) / j->page_size) * j->page_size + 16;
    return node;
}

ferry_err fy_events_prune(fy_journal *j, MDB_txn *txn, uint64_t max_count, uint64_t *pruned)
{
    uint64_t w;
    *pruned = 0;
    ferry_err e = fy_delivered_everywhere(j, txn, &w);
    if (!e && w)
        e = fy_events_delete(j, txn, 0, w, max_count, pruned);
    if (!e && *pruned)
        e = fy_meta_add_u64(j, txn, META_PRUNED, *pruned);
    return e;
}

/* Deletes events until live data is at most target: delivered ones first,
 * then (evict_oldest) the oldest undelivered ones. Counts both in meta. */
/* Deletes events until live data is at most `goal`: delivered ones first,
 * then, with evict_oldest, the oldest undelivered ones (counted in meta).
 * Fails with FERRY_EFULL only if live data is still above `must`: freeing
 * a little more than needed is a wish, fitting the new events is not. */
static ferry_err make_room(fy_journal *j, MDB_txn *txn, uint64_t goal, uint64_t must, int evict_oldest,
                           int *map_full)
{
    uint64_t live = 0, evicted = 0, n = 0, stop = must;
    *map_full = 0;
    ferry_err e = fy_live_bytes(j, txn, &live);
    while (!e && live > goal) { /* delivered events first */
        if ((e = fy_events_prune(j, txn, 64, &n)) || n == 0)
            break;
        e = fy_live_bytes(j, txn, &live);
    }
    while (!e && evict_oldest && live > stop) { /* then, by policy, the oldest undelivered */
        if ((e = fy_gaps_evict(j, txn, 64, &n)) || n == 0) /* the loss is written down with it */
            break;
        evicted += n;
        e = fy_live_bytes(j, txn, &live);
        stop = goal; /* once evicting, free the margin too */
    }
    if (!e && evicted)
        e = fy_meta_add_u64(j, txn, META_EVICTED, evicted);
    /* Deleting copies pages too: with freed pages pinned by a reader, LMDB's
     * map can fill here (FERRY_EFULL from LMDB, unlike the quota's below). */
    *map_full = e == FERRY_EFULL;
    if (!e && live > must) {
        uint64_t limit = fy_journal_quota(j);
        return fy_fail(FERRY_EFULL,
                       "journal %s is full: %.1f MiB of %.1f MiB used by undelivered events; policy %s",
                       j->path, (double)live / 1048576.0, (double)limit / 1048576.0,
                       evict_oldest ? "evict-oldest (nothing left to evict)" : "reject");
    }
    return e;
}

/* Puts records under seq, seq+1, ...; returns LMDB's code. */
static int put_records(fy_journal *j, MDB_txn *txn, const fy_rec_ref *recs, size_t n, uint64_t seq)
{
    MDB_cursor *c;
    int rc = mdb_cursor_open(txn, j->events, &c);
    if (rc)
        return rc;
    for (size_t i = 0; i < n && !rc; i++) {
        unsigned char kb[8];
        fy_put_be64(kb, seq + i);
        MDB_val k = fy_mval(kb, 8), d = fy_mval(recs[i].data, recs[i].len);
        rc = mdb_cursor_put(c, &k, &d, MDB_APPEND);
    }
    mdb_cursor_close(c);
    return rc;
}

ferry_err fy_events_put(fy_journal *j, MDB_txn *txn, const fy_rec_ref *recs, size_t n, uint64_t *first_seq)
{
    uint64_t seq;
    ferry_err e = fy_seq_next(j, txn, &seq);
    if (e)
        return e;
    int rc = put_records(j, txn, recs, n, seq);
    if (rc)
        return fy_fail_lmdb(rc, "journal %s: appending %zu events", j->path, n);
    *first_seq = seq;
    return FERRY_OK;
}

/* One attempt; *map_full tells that LMDB itself ran out of map. */
static ferry_err append_once(fy_journal *j, const fy_rec_ref *recs, size_t n, int evict_oldest,
                             const fy_meta_delta *meta, size_t n_meta, uint64_t incoming,
                             uint64_t *first_seq, int *map_full)
{
    *map_full = 0;
    MDB_txn *txn;
    uint64_t live = 0, seq = 0;
    uint64_t limit = fy_journal_quota(j);
    ferry_err e = fy_txn_begin(j, 0, &txn);
    if (e)
        return e;
    if ((e = fy_live_bytes(j, txn, &live)))
        goto fail;
    if (live + incoming > limit) {
        /* Free a little more than needed so that a full journal does not
         * evict on every single append. */
        uint64_t slack = limit / 20;
        uint64_t must = limit > incoming ? limit - incoming : 0;
        uint64_t goal = must > slack ? must - slack : 0;
        if ((e = make_room(j, txn, goal, must, evict_oldest, map_full)))
            goto fail;
    }
    if ((e = fy_seq_next(j, txn, &seq)))
        goto fail;
    int rc = put_records(j, txn, recs, n, seq);
    if (rc) {
        *map_full = rc == MDB_MAP_FULL;
        e = fy_fail_lmdb(rc, "journal %s: appending %zu events", j->path, n);
        goto fail;
    }
    for (size_t i = 0; i < n_meta; i++) {
        if ((e = fy_meta_add_u64(j, txn, meta[i].key, meta[i].delta))) {
            *map_full = e == FERRY_EFULL; /* only LMDB's MDB_MAP_FULL maps to it here */
            goto fail;
        }
    }
    rc = mdb_txn_commit(txn);
    if (rc > 0)
        j->commit_io_failed = 1; /* see fy_txn_commit */
    if (rc) {
        *map_full = rc == MDB_MAP_FULL;
        return fy_fail_lmdb(rc, "journal %s: committing %zu events", j->path, n);
    }
    *first_seq = seq;
    return FERRY_OK;
fail:
    mdb_txn_abort(txn);
    return e;
}

uint64_t fy_journal_quota(const fy_journal *j)
{
    return j->map_bytes / 100 * FY_QUOTA_PERCENT;
}

uint64_t fy_journal_max_txn_bytes(const fy_journal *j)
{
    return fy_journal_quota(j) / 2;
}

uint64_t fy_journal_max_batch_bytes(const fy_journal *j)
{
    return fy_journal_max_txn_bytes(j) / 4;
}

ferry_err fy_journal_append(fy_journal *j, const fy_rec_ref *recs, size_t n, int evict_oldest,
                            uint64_t *first_seq)
{
    return fy_journal_append_meta(j, recs, n, evict_oldest, NULL, 0, first_seq);
}

ferry_err fy_journal_append_meta(fy_journal *j, const fy_rec_ref *recs, size_t n, int evict_oldest,
                                 const fy_meta_delta *meta, size_t n_meta, uint64_t *first_seq)
{
    uint64_t incoming = 0;
    for (size_t i = 0; i < n; i++)
        incoming += footprint(j, recs[i].len);
    if (incoming > fy_journal_max_txn_bytes(j))
        return fy_fail(FERRY_EFULL, "journal %s: a batch of %zu events (%llu bytes) is too large for its "
                       "bound of %llu bytes; record it in smaller batches",
                       j->path, n, (unsigned long long)incoming, (unsigned long long)j->map_bytes);
    int map_full;
    ferry_err e = append_once(j, recs, n, evict_oldest, meta, n_meta, incoming, first_seq, &map_full);
    /* LMDB's map filled before our quota did: pages freed earlier are still
     * pinned by a reader, or free space is too fragmented for large events
     * (overflow pages must be contiguous). Clear dead readers, free more
     * space in a transaction of its own (its pages become reusable once it
     * commits), and try again, deeper each round. */
    for (unsigned round = 1; map_full && round <= 2; round++) {
        int dead = 0;
        mdb_reader_check(j->env, &dead);
        MDB_txn *txn;
        if ((e = fy_txn_begin(j, 0, &txn)))
            return e;
        uint64_t target = fy_journal_quota(j) >> round; /* 1/2, then 1/4 of the quota */
        int pinned;
        e = make_room(j, txn, target, target, evict_oldest, &pinned);
        if (e)
            mdb_txn_abort(txn);
        else
            e = fy_txn_commit(j, txn, "eviction"); /* MDB_MAP_FULL here too: a reader pins */
        if (e && e != FERRY_EFULL)
            return e;
        e = append_once(j, recs, n, evict_oldest, meta, n_meta, incoming, first_seq, &map_full);
    }
    /* Still full: a live reader (a replayer reading a batch, a stat) pins
     * the pages freed above until it ends, which takes milliseconds: wait
     * for it, bounded (about 2.5 s in all), rather than fail the append. */
    for (unsigned w = 0; map_full && w < 8; w++) {
        struct timespec ts = {0, (long)(10u << w) * 1000000L};
        nanosleep(&ts, NULL);
        int dead = 0;
        mdb_reader_check(j->env, &dead);
        e = append_once(j, recs, n, evict_oldest, meta, n_meta, incoming, first_seq, &map_full);
    }
    return e;
}

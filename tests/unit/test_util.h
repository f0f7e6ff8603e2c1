/* test_util.h: helpers shared by the unit test programs (header-only, all
 * static inline so that a program using only some of them compiles cleanly).
 * Include after <cmocka.h>. */
#ifndef FERRY_TEST_UTIL_H
#define FERRY_TEST_UTIL_H

#include <errno.h>
#include <ftw.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <zlib.h>

#include "ferry.h"
#include "fy_buf.h"
#include "fy_journal.h"
#include "fy_record.h"

#if defined(__has_feature)
#if __has_feature(address_sanitizer)
#define TU_ASAN 1
#endif
#endif
#if defined(__SANITIZE_ADDRESS__) && !defined(TU_ASAN)
#define TU_ASAN 1
#endif

/* Caps the address space so that any large allocation fails (and a decoder
 * that let one through reports ENOMEM instead of ECORRUPT). ASan reserves
 * terabytes of shadow memory, so the cap is skipped there: ASan itself aborts
 * on allocations beyond its own maximum. Returns 1 when the cap is set. */
static inline int tu_limit_address_space(size_t bytes)
{
#ifdef TU_ASAN
    (void)bytes;
    return 0;
#else
    struct rlimit rl = {bytes, bytes};
    struct rlimit cur;
    if (getrlimit(RLIMIT_AS, &cur) == 0 && cur.rlim_max != RLIM_INFINITY && cur.rlim_max < bytes)
        rl.rlim_cur = rl.rlim_max = cur.rlim_max;
    if (setrlimit(RLIMIT_AS, &rl) != 0) {
        fprintf(stderr, "setrlimit(RLIMIT_AS): %s\n", strerror(errno));
        return 0;
    }
    return 1;
#endif
}

/* ---- temporary directories -------------------------------------------- */

static inline void tu_tmpdir(char *out, size_t n, const char *tag)
{
    const char *base = getenv("TMPDIR");
    if (!base || !*base)
        base = "/tmp";
    int k = snprintf(out, n, "%s/ferry-%s-XXXXXX", base, tag);
    if (k < 0 || (size_t)k >= n || !mkdtemp(out)) {
        fprintf(stderr, "mkdtemp under %s failed: %s\n", base, strerror(errno));
        abort();
    }
}

static inline int tu_rm_one(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb, (void)flag, (void)ftw;
    return remove(path);
}

static inline void tu_rmrf(const char *path)
{
    nftw(path, tu_rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

/* ---- records ----------------------------------------------------------- */

/* Recomputes the CRC of a record in place (bytes 3-6 over 7..end). */
static inline void tu_fix_crc(void *rec, size_t len)
{
    unsigned char *p = rec;
    if (len < 8)
        return;
    uint32_t crc = (uint32_t)crc32(0L, p + 7, (uInt)(len - 7));
    p[3] = (unsigned char)(crc >> 24);
    p[4] = (unsigned char)(crc >> 16);
    p[5] = (unsigned char)(crc >> 8);
    p[6] = (unsigned char)crc;
}

/* Starts a record by hand: fixarray of n_elems, version, CRC placeholder,
 * recorded_at (positive fixint 1). The caller appends the event bytes, then
 * calls tu_fix_crc. */
static inline void tu_record_head(fy_buf *b, unsigned n_elems, unsigned version)
{
    unsigned char head[8] = {(unsigned char)(0x90u | (n_elems & 15u)), (unsigned char)version, 0xce, 0, 0, 0, 0,
                             0x01};
    assert_int_equal(fy_buf_append(b, head, sizeof head), FERRY_OK);
}

static inline void tu_pack_str(msgpack_packer *pk, const char *s)
{
    assert_int_equal(msgpack_pack_str_with_body(pk, s, strlen(s)), 0);
}

/* Appends the start of a valid event map with n_extra further entries the
 * caller packs itself: {"event_type":"t","device_id":"d","insert_id":"i","time":1, ...}. */
static inline void tu_event_head(msgpack_packer *pk, unsigned n_extra)
{
    assert_int_equal(msgpack_pack_map(pk, 4 + n_extra), 0);
    tu_pack_str(pk, "event_type"), tu_pack_str(pk, "t");
    tu_pack_str(pk, "device_id"), tu_pack_str(pk, "d");
    tu_pack_str(pk, "insert_id"), tu_pack_str(pk, "i");
    tu_pack_str(pk, "time"), assert_int_equal(msgpack_pack_int64(pk, 1), 0);
}

/* Encodes an event given as JSON text with fy_record_encode (asserts success). */
static inline void tu_encode_json(const char *json, fy_buf *out)
{
    json_error_t jerr;
    json_t *ev = json_loads(json, 0, &jerr);
    if (!ev)
        fail_msg("bad test JSON: %s", jerr.text);
    ferry_err e = fy_record_encode(ev, 1700000000000, "00000000-0000-4000-8000-000000000000", out);
    if (e)
        fail_msg("encode failed: %s", ferry_last_error());
    json_decref(ev);
}

/* Checks that text is a JSON value jansson accepts (integers beyond int64
 * read as reals). Returns the value (caller decrefs) or fails the test. */
static inline json_t *tu_parse_json(const char *text, size_t len)
{
    json_error_t jerr;
    json_t *v = json_loadb(text, len, JSON_DECODE_ANY | JSON_ALLOW_NUL, &jerr);
    if (!v)
        v = json_loadb(text, len, JSON_DECODE_ANY | JSON_ALLOW_NUL | JSON_DECODE_INT_AS_REAL, &jerr);
    if (!v)
        fail_msg("not valid JSON (%s at column %d): %.*s", jerr.text, jerr.column, (int)(len > 300 ? 300 : len),
                 text);
    return v;
}

/* Compares a decoded MessagePack value with the JSON value it was encoded
 * from: same types, same values, same key order. Returns 1 when equal. */
static inline int tu_mp_equals_json(const msgpack_object *o, const json_t *j)
{
    switch (o->type) {
    case MSGPACK_OBJECT_NIL: return json_is_null(j);
    case MSGPACK_OBJECT_BOOLEAN: return o->via.boolean ? json_is_true(j) : json_is_false(j);
    case MSGPACK_OBJECT_POSITIVE_INTEGER:
        return json_is_integer(j) && json_integer_value(j) >= 0 &&
               (uint64_t)json_integer_value(j) == o->via.u64;
    case MSGPACK_OBJECT_NEGATIVE_INTEGER:
        return json_is_integer(j) && json_integer_value(j) < 0 && json_integer_value(j) == o->via.i64;
    case MSGPACK_OBJECT_FLOAT32:
    case MSGPACK_OBJECT_FLOAT64: {
        if (!json_is_real(j))
            return 0;
        double a = o->via.f64, b = json_real_value(j);
        return memcmp(&a, &b, sizeof a) == 0; /* bit-exact, -0.0 included */
    }
    case MSGPACK_OBJECT_STR:
        return json_is_string(j) && json_string_length(j) == o->via.str.size &&
               memcmp(json_string_value(j), o->via.str.ptr, o->via.str.size) == 0;
    case MSGPACK_OBJECT_ARRAY:
        if (!json_is_array(j) || json_array_size(j) != o->via.array.size)
            return 0;
        for (uint32_t i = 0; i < o->via.array.size; i++)
            if (!tu_mp_equals_json(&o->via.array.ptr[i], json_array_get(j, i)))
                return 0;
        return 1;
    case MSGPACK_OBJECT_MAP: {
        if (!json_is_object(j) || json_object_size(j) != o->via.map.size)
            return 0;
        void *it = json_object_iter((json_t *)(uintptr_t)j);
        for (uint32_t i = 0; i < o->via.map.size; i++, it = json_object_iter_next((json_t *)(uintptr_t)j, it)) {
            const msgpack_object_kv *kv = &o->via.map.ptr[i];
            if (!it || kv->key.type != MSGPACK_OBJECT_STR)
                return 0;
            const char *k = json_object_iter_key(it);
            if (strlen(k) != kv->key.via.str.size || memcmp(k, kv->key.via.str.ptr, kv->key.via.str.size) != 0)
                return 0;
            if (!tu_mp_equals_json(&kv->val, json_object_iter_value(it)))
                return 0;
        }
        return 1;
    }
    case MSGPACK_OBJECT_BIN:
    case MSGPACK_OBJECT_EXT:
        return 0;
    }
    return 0;
}

/* ---- journal inspection ------------------------------------------------- */

typedef struct tu_event {
    uint64_t seq;
    unsigned char *data;
    size_t len;
} tu_event;

typedef struct tu_snapshot {
    tu_event *ev;
    size_t n;
} tu_snapshot;

static inline void tu_snapshot_free(tu_snapshot *s)
{
    for (size_t i = 0; i < s->n; i++)
        free(s->ev[i].data);
    free(s->ev);
    s->ev = NULL;
    s->n = 0;
}

/* Copies every stored event (seq, bytes) in key order. */
static inline void tu_snapshot_take(fy_journal *j, tu_snapshot *s)
{
    MDB_txn *txn;
    MDB_cursor *c;
    MDB_val k, d;
    size_t cap = 0;
    s->ev = NULL;
    s->n = 0;
    assert_int_equal(fy_txn_begin(j, MDB_RDONLY, &txn), FERRY_OK);
    assert_int_equal(mdb_cursor_open(txn, j->events, &c), 0);
    int rc;
    for (rc = mdb_cursor_get(c, &k, &d, MDB_FIRST); rc == 0; rc = mdb_cursor_get(c, &k, &d, MDB_NEXT)) {
        assert_int_equal(k.mv_size, 8);
        if (s->n == cap) {
            cap = cap ? cap * 2 : 256;
            s->ev = realloc(s->ev, cap * sizeof *s->ev);
            assert_non_null(s->ev);
        }
        tu_event *e = &s->ev[s->n++];
        e->seq = fy_get_be64(k.mv_data);
        e->len = d.mv_size;
        e->data = malloc(d.mv_size ? d.mv_size : 1);
        assert_non_null(e->data);
        memcpy(e->data, d.mv_data, d.mv_size);
    }
    assert_int_equal(rc, MDB_NOTFOUND);
    mdb_cursor_close(c);
    mdb_txn_abort(txn);
}

static inline uint64_t tu_meta(fy_journal *j, const char *key)
{
    MDB_txn *txn;
    uint64_t v = 0;
    assert_int_equal(fy_txn_begin(j, MDB_RDONLY, &txn), FERRY_OK);
    assert_int_equal(fy_meta_get_u64(j, txn, key, &v), FERRY_OK);
    mdb_txn_abort(txn);
    return v;
}

static inline uint64_t tu_count(fy_journal *j)
{
    MDB_txn *txn;
    MDB_stat st;
    assert_int_equal(fy_txn_begin(j, MDB_RDONLY, &txn), FERRY_OK);
    assert_int_equal(mdb_stat(txn, j->events, &st), 0);
    mdb_txn_abort(txn);
    return st.ms_entries;
}

static inline int tu_contains(const char *hay, const char *needle)
{
    return hay && strstr(hay, needle) != NULL;
}

/* assert that the last error message mentions `needle` (shows it when not) */
#define assert_error_mentions(needle)                                                                   \
    do {                                                                                                \
        if (!tu_contains(ferry_last_error(), (needle)))                                                 \
            fail_msg("last error \"%s\" does not mention \"%s\"", ferry_last_error(), (needle));        \
    } while (0)

#endif

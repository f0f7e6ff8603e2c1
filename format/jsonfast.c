/* jsonfast.c: one JSON event text straight to its record, with yajl.
 *
 * Why: the --listen service spent most of its CPU in Jansson (issue #5):
 * json_loadb builds a tree with a malloc per value and per key, which
 * fy_record_encode_stamped then walks and frees. yajl (Debian libyajl-dev)
 * is a SAX parser: it calls back per token with pointers into the text, so
 * the MessagePack bytes are written as the text is read, with no tree and
 * no per-value allocation. Jansson stays the reference: it produces every
 * error message and runs whenever a property policy is set (policy.c works
 * on a json_t), or whenever this file is not certain to produce the same
 * bytes. This file only ever says "here is exactly what Jansson's path
 * would have written" or "not sure" (declined, the caller runs Jansson).
 *
 * Declined (the reference path decides, usually with an error):
 *   - anything yajl refuses, and its laxities: a top level that is not an
 *     object, \f and \v as whitespace (refused by a prescan), anything but
 *     whitespace after the object (yajl 2.1 lets an unterminated string
 *     through there: fuzz_json found `{...}"x`), and every \u
 *     escape (yajl turns lone surrogates into '?' where Jansson refuses
 *     them, and \u0000 needs JSON_ALLOW_NUL);
 *   - any NUL or other control byte outside \t \n \r; any byte sequence
 *     that is not strict UTF-8 (overlong forms, surrogates, past U+10FFFF:
 *     the prescan validates the whole text as Jansson's reader does with
 *     fy_utf8_seq; yajl's own check, structural only, is off);
 *   - a duplicate key in any object (Jansson: JSON_REJECT_DUPLICATES), an
 *     object with more than MAX_KEYS keys (the check is linear), nesting
 *     past FY_MAX_JSON_DEPTH;
 *   - an integer outside int64 (Jansson: overflow error); a real whose
 *     strtod reports ERANGE or does not take the whole text (another
 *     locale's decimal point), or longer than 63 characters;
 *   - an event that check_event (record.c) would refuse: event_type, ids,
 *     time, insert_id, the object and integer fields;
 *   - a record past FY_MAX_RECORD_BYTES or the buffer's limit, out of
 *     memory anywhere (yajl's arena, the output), no random insert_id.
 *
 * Output: the same msgpack-c pack functions as pack_json (record.c), in the
 * same order: the event's keys as they came (Jansson keeps insertion order,
 * and a duplicate is declined), then insert_id and time when absent, as
 * fy_record_encode_stamped appends them. A container's header needs its
 * count: one byte is reserved and written at its end (fixmap/fixarray), or
 * widened to three (map16/array16) by moving the body up two bytes; a count
 * past 65535 cannot fit in a record (declined).
 *
 * Memory: yajl 2.1 does not check what malloc returns (yajl_buf writes into
 * it), so it gets allocators over an arena owned by the fy_jsonfast: a first
 * block kept across calls (an ordinary event needs nothing else), more
 * blocks chained from malloc as needed and freed at the end of the call;
 * free is a no-op. When malloc fails, the arena longjmps out of yajl back to
 * fy_jsonfast_encode, which declines. */
#include "fy_jsonfast.h"

#include <errno.h>
#include <limits.h>
#include <setjmp.h>
#include <stdalign.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <yajl/yajl_parse.h>

#define FIRST_BLOCK 16384u /* yajl's handle, lexer, byte stack and 2 KiB string buffer */
#define MAX_KEYS 256u      /* keys per object, linear duplicate check */
#define KEY_STACK 1024u    /* keys of all open objects */
#define ALIGN 16u

typedef struct ablock {
    struct ablock *next;
    size_t size, used;
    alignas(max_align_t) unsigned char data[];
} ablock;

typedef struct level {
    size_t hdr;      /* offset in out of the reserved header byte */
    uint32_t count;  /* entries so far */
    uint32_t kstart; /* its first key in keys[] (maps) */
    int map;
} level;

typedef struct keyrec {
    size_t off; /* the key's bytes in out */
    uint32_t len, hash;
} keyrec;

enum field { F_NONE, F_EVENT_TYPE, F_ID, F_TIME, F_INSERT_ID, F_OBJECT, F_INTEGER };
enum kind { K_NULL, K_BOOL, K_INT, K_REAL, K_STRING, K_MAP, K_ARRAY };

struct fy_jsonfast {
    jmp_buf jb;
    yajl_alloc_funcs afs;
    ablock *first, *cur, *extra; /* extra: blocks of this call, freed at its end */
    /* the call */
    fy_buf *out;
    const fy_stamp *st;
    const char *gen_insert_id;
    msgpack_packer pk;
    yajl_handle h;
    size_t end; /* the text's bytes up to the event's closing brace */
    int failed; /* a write failed */
    int done;   /* the top-level object ended */
    unsigned depth;
    level lv[FY_MAX_JSON_DEPTH + 1];
    uint32_t nkeys;
    keyrec keys[KEY_STACK];
    enum field field; /* of the top-level key whose value comes next */
    int has_type, has_id, has_insert_id, has_time;
};

/* ---- the arena ------------------------------------------------------------ */

static size_t round_up(size_t n) { return (n + ALIGN - 1) & ~(size_t)(ALIGN - 1); }

static ablock *block_new(size_t size)
{
    ablock *b = malloc(sizeof *b + size);
    if (b) {
        b->next = NULL;
        b->size = size;
        b->used = 0;
    }
    return b;
}

/* Each allocation is preceded by ALIGN bytes holding its size (realloc). */
static void *arena_malloc(void *ctx, size_t n)
{
    fy_jsonfast *f = ctx;
    if (n > SIZE_MAX / 4)
        longjmp(f->jb, 1);
    size_t need = ALIGN + round_up(n);
    ablock *b = f->cur;
    if (b->size - b->used < need) {
        size_t size = need > FIRST_BLOCK ? need : FIRST_BLOCK;
        if (!(b = block_new(size)))
            longjmp(f->jb, 1);
        b->next = f->extra;
        f->extra = b;
        f->cur = b;
    }
    unsigned char *p = b->data + b->used;
    memcpy(p, &n, sizeof n);
    b->used += need;
    return p + ALIGN;
}

static void *arena_realloc(void *ctx, void *ptr, size_t n)
{
    fy_jsonfast *f = ctx;
    if (!ptr)
        return arena_malloc(ctx, n);
    unsigned char *p = ptr;
    size_t old;
    memcpy(&old, p - ALIGN, sizeof old);
    if (n <= old)
        return ptr;
    ablock *b = f->cur;
    /* the last allocation of the current block grows in place */
    if (n <= SIZE_MAX / 4 && p + round_up(old) == b->data + b->used &&
        round_up(n) - round_up(old) <= b->size - b->used) {
        b->used += round_up(n) - round_up(old);
        memcpy(p - ALIGN, &n, sizeof n);
        return ptr;
    }
    void *q = arena_malloc(ctx, n);
    memcpy(q, ptr, old);
    return q;
}

static void arena_free(void *ctx, void *ptr) { (void)ctx, (void)ptr; }

static void arena_reset(fy_jsonfast *f)
{
    while (f->extra) {
        ablock *next = f->extra->next;
        free(f->extra);
        f->extra = next;
    }
    f->first->used = 0;
    f->cur = f->first;
}

void fy_jsonfast_free(fy_jsonfast *f)
{
    if (!f)
        return;
    arena_reset(f);
    free(f->first);
    free(f);
}

static fy_jsonfast *jsonfast_new(void)
{
    fy_jsonfast *f = calloc(1, sizeof *f);
    if (!f)
        return NULL;
    if (!(f->first = block_new(FIRST_BLOCK))) {
        free(f);
        return NULL;
    }
    f->cur = f->first;
    f->afs = (yajl_alloc_funcs){arena_malloc, arena_realloc, arena_free, f};
    return f;
}

/* ---- output ------------------------------------------------------------------ */

/* msgpack_packer's callback: appends to out within its limit, without
 * fy_fail (a declined call leaves no message behind). */
static int out_write(void *data, const char *buf, size_t len)
{
    fy_jsonfast *f = data;
    if (fy_buf_try_append(f->out, buf, len)) {
        f->failed = 1;
        return -1;
    }
    return 0;
}

/* ---- the prescan ----------------------------------------------------------- */

/* What yajl would accept but Jansson not, or yajl would decode differently:
 * 0 when the text has any of it. */
static int prescan(const unsigned char *p, size_t n)
{
    const uint64_t ones = 0x0101010101010101u, high = 0x8080808080808080u;
    for (size_t i = 0; i < n; i++) {
        /* 8 plain bytes at a time: none >= 0x80, < 0x20 or a backslash */
        while (n - i >= 8) {
            uint64_t w;
            memcpy(&w, p + i, 8);
            uint64_t bs = w ^ (ones * '\\');
            if (((w | ((w - ones * 0x20) & ~w) | ((bs - ones) & ~bs)) & high) != 0)
                break;
            i += 8;
        }
        if (i == n)
            break;
        unsigned char c = p[i];
        if (c >= 0x20 && c < 0x80 && c != '\\')
            continue;
        if (c >= 0x80) {
            size_t k = fy_utf8_seq(p + i, n - i);
            if (!k)
                return 0;
            i += k - 1;
        } else if (c == '\\') {
            if (i + 1 < n && p[i + 1] == 'u')
                return 0;
            i++; /* the escaped character (yajl checks it) */
        } else if (c != '\t' && c != '\n' && c != '\r') {
            return 0;
        }
    }
    return 1;
}

/* ---- the callbacks ---------------------------------------------------------- */

/* A value starts in the current container: counts it (arrays; a map
 * counted its key) and checks a top-level field's type. 0: decline. */
static int value(fy_jsonfast *f, enum kind k, size_t slen, int64_t ival)
{
    if (f->depth == 0)
        return k == K_MAP && !f->done; /* the event itself */
    level *l = &f->lv[f->depth - 1];
    if (!l->map && ++l->count > 65535u)
        return 0;
    if (f->depth != 1)
        return 1;
    switch (f->field) {
    case F_NONE:
        return 1;
    case F_EVENT_TYPE:
        f->has_type = 1;
        return k == K_STRING && slen > 0;
    case F_ID:
        if (k == K_NULL)
            return 1;
        f->has_id = 1;
        return k == K_STRING && slen > 0;
    case F_TIME:
        f->has_time = 1;
        return k == K_INT && ival >= 0;
    case F_INSERT_ID:
        f->has_insert_id = 1;
        return k == K_STRING && slen > 0 && slen <= FY_MAX_INSERT_ID;
    case F_OBJECT:
        return k == K_MAP;
    case F_INTEGER:
        return k == K_INT;
    }
    return 0;
}

static int cb_null(void *ctx)
{
    fy_jsonfast *f = ctx;
    return value(f, K_NULL, 0, 0) && !msgpack_pack_nil(&f->pk);
}

static int cb_boolean(void *ctx, int b)
{
    fy_jsonfast *f = ctx;
    return value(f, K_BOOL, 0, 0) && !(b ? msgpack_pack_true(&f->pk) : msgpack_pack_false(&f->pk));
}

/* Jansson: no '.', 'e' or 'E' makes an integer (strtoll, out of range is an
 * error); else a real (strtod, overflow is an error). */
static int cb_number(void *ctx, const char *s, size_t n)
{
    fy_jsonfast *f = ctx;
    int neg = n > 0 && s[0] == '-';
    size_t i = (size_t)neg;
    uint64_t u = 0;
    int over = 0; /* past UINT64_MAX: declined if an integer */
    for (; i < n && s[i] >= '0' && s[i] <= '9'; i++) {
        unsigned d = (unsigned)(s[i] - '0');
        if (u > (UINT64_MAX - d) / 10)
            over = 1;
        else
            u = u * 10 + d;
    }
    if (i == n) {
        if (over || n == (size_t)neg)
            return 0;
        int64_t v;
        if (neg) {
            if (u > (uint64_t)INT64_MAX + 1)
                return 0;
            v = u == (uint64_t)INT64_MAX + 1 ? INT64_MIN : -(int64_t)u;
        } else {
            if (u > (uint64_t)INT64_MAX)
                return 0;
            v = (int64_t)u;
        }
        return value(f, K_INT, 0, v) && !msgpack_pack_int64(&f->pk, v);
    }
    if (s[i] != '.' && s[i] != 'e' && s[i] != 'E')
        return 0;
    char buf[64];
    if (n >= sizeof buf)
        return 0;
    memcpy(buf, s, n);
    buf[n] = '\0';
    char *end;
    int saved = errno;
    errno = 0;
    double d = strtod(buf, &end);
    int range = errno == ERANGE;
    errno = saved;
    if (range || end != buf + n)
        return 0;
    return value(f, K_REAL, 0, 0) && !msgpack_pack_double(&f->pk, d);
}

static int cb_string(void *ctx, const unsigned char *s, size_t n)
{
    fy_jsonfast *f = ctx;
    return value(f, K_STRING, n, 0) && !msgpack_pack_str_with_body(&f->pk, s, n);
}

static int open_container(fy_jsonfast *f, int map)
{
    if (!value(f, map ? K_MAP : K_ARRAY, 0, 0) || f->depth >= FY_MAX_JSON_DEPTH)
        return 0;
    level *l = &f->lv[f->depth++];
    l->hdr = f->out->len;
    l->count = 0;
    l->kstart = f->nkeys;
    l->map = map;
    const char zero = 0;
    return !out_write(f, &zero, 1);
}

static int cb_start_map(void *ctx) { return open_container(ctx, 1); }
static int cb_start_array(void *ctx) { return open_container(ctx, 0); }

static enum field top_field(const unsigned char *k, size_t n)
{
    static const struct {
        const char *name;
        enum field f;
    } fields[] = {
        {"event_type", F_EVENT_TYPE}, {"device_id", F_ID}, {"user_id", F_ID},
        {"time", F_TIME}, {"insert_id", F_INSERT_ID}, {"event_properties", F_OBJECT},
        {"user_properties", F_OBJECT}, {"groups", F_OBJECT}, {"group_properties", F_OBJECT},
        {"session_id", F_INTEGER}, {"event_id", F_INTEGER},
    };
    if (n < 4 || n > 16 || !memchr("eudtisg", k[0], 7))
        return F_NONE;
    for (size_t i = 0; i < sizeof fields / sizeof fields[0]; i++)
        if (fields[i].name[0] == k[0] && strlen(fields[i].name) == n && memcmp(fields[i].name, k, n) == 0)
            return fields[i].f;
    return F_NONE;
}

static int cb_map_key(void *ctx, const unsigned char *k, size_t n)
{
    fy_jsonfast *f = ctx;
    level *l = &f->lv[f->depth - 1];
    if (++l->count > MAX_KEYS || f->nkeys == KEY_STACK || n > UINT32_MAX)
        return 0;
    /* a cheap fingerprint before memcmp: first and last byte, length */
    uint32_t h = n ? (uint32_t)k[0] << 24 | (uint32_t)k[n - 1] << 16 | (uint32_t)(n & 0xffffu) : 0;
    for (uint32_t i = l->kstart; i < f->nkeys; i++) {
        const keyrec *r = &f->keys[i];
        if (r->hash == h && r->len == n && memcmp(f->out->data + r->off, k, n) == 0)
            return 0; /* duplicate: Jansson refuses the event */
    }
    if (msgpack_pack_str_with_body(&f->pk, k, n))
        return 0;
    f->keys[f->nkeys++] = (keyrec){f->out->len - n, (uint32_t)n, h};
    if (f->depth == 1)
        f->field = top_field(k, n);
    return 1;
}

/* What fy_record_encode_stamped adds to an event, in its order. */
static int finish_event(fy_jsonfast *f)
{
    level *l = &f->lv[0];
    if (!f->has_type || !f->has_id)
        return 0;
    if (!f->has_insert_id) {
        char uuid[FY_UUID_LEN + 1];
        const char *iid = f->gen_insert_id;
        if (!iid) {
            if (fy_uuid4(uuid))
                return 0;
            iid = uuid;
        }
        if (msgpack_pack_str_with_body(&f->pk, "insert_id", 9) ||
            msgpack_pack_str_with_body(&f->pk, iid, strlen(iid)))
            return 0;
        l->count++;
    }
    if (!f->has_time) {
        if (msgpack_pack_str_with_body(&f->pk, "time", 4) || msgpack_pack_int64(&f->pk, f->st->wall_ms))
            return 0;
        l->count++;
    }
    return 1;
}

/* Writes the header of the container that ends (msgpack_pack_map/array's
 * forms: fix up to 15 entries, then 16-bit counts). */
static int close_container(fy_jsonfast *f)
{
    level *l = &f->lv[f->depth - 1];
    if (f->depth == 1 && !finish_event(f))
        return 0;
    uint32_t n = l->count;
    if (n > 65535u)
        return 0;
    if (n < 16) {
        f->out->data[l->hdr] = (char)((l->map ? 0x80 : 0x90) | n);
    } else {
        const char two[2] = {0, 0};
        if (out_write(f, two, 2))
            return 0;
        char *h = f->out->data + l->hdr;
        memmove(h + 3, h + 1, f->out->len - l->hdr - 3);
        h[0] = (char)(l->map ? 0xde : 0xdc);
        h[1] = (char)(n >> 8);
        h[2] = (char)(n & 0xffu);
    }
    f->nkeys = l->kstart;
    if (--f->depth == 0) {
        f->done = 1;
        f->end = yajl_get_bytes_consumed(f->h);
    }
    return 1;
}

static int cb_end(void *ctx) { return close_container(ctx); }

static const yajl_callbacks callbacks = {
    .yajl_null = cb_null,
    .yajl_boolean = cb_boolean,
    .yajl_number = cb_number,
    .yajl_string = cb_string,
    .yajl_start_map = cb_start_map,
    .yajl_map_key = cb_map_key,
    .yajl_end_map = cb_end,
    .yajl_start_array = cb_start_array,
    .yajl_end_array = cb_end,
};

/* ---- the entry ------------------------------------------------------------ */

/* 1: the record is at f->out from start. An allocation failure in yajl's
 * arena lands at the setjmp. */
static int run(fy_jsonfast *f, const unsigned char *text, size_t len, size_t start)
{
    if (setjmp(f->jb))
        return 0;
    unsigned char head[FY_RECORD_HEAD_BYTES];
    int clock = fy_record_head(f->st, head);
    if (out_write(f, (const char *)head, sizeof head) || msgpack_pack_int64(&f->pk, f->st->wall_ms))
        return 0;
    yajl_handle h = f->h = yajl_alloc(&callbacks, &f->afs, f);
    if (!h)
        return 0;
    yajl_config(h, yajl_dont_validate_strings, 1); /* prescan validated the whole text */
    yajl_status s = yajl_parse(h, text, len);
    if (s == yajl_status_ok)
        s = yajl_complete_parse(h);
    if (s != yajl_status_ok || !f->done || f->failed)
        return 0;
    /* the event ended at its '}' (during yajl_parse, which counts the bytes
     * consumed), and only whitespace follows */
    if (f->end == 0 || f->end > len || text[f->end - 1] != '}')
        return 0;
    for (size_t i = f->end; i < len; i++)
        if (text[i] != ' ' && text[i] != '\t' && text[i] != '\n' && text[i] != '\r')
            return 0;
    if (clock && (msgpack_pack_int64(&f->pk, f->st->mono_ms) ||
                  msgpack_pack_str_with_body(&f->pk, f->st->boot_id, FY_BOOT_ID_LEN)))
        return 0;
    fy_record_seal(f->out->data + start, f->out->len - start);
    return 1;
}

int fy_jsonfast_encode(fy_jsonfast **fp, const char *text, size_t len, const fy_stamp *st,
                       const char *gen_insert_id, fy_buf *out)
{
    if (!*fp && !(*fp = jsonfast_new()))
        return 0;
    fy_jsonfast *f = *fp;
    if (!prescan((const unsigned char *)text, len))
        return 0;
    size_t start = out->len, limit = out->limit;
    out->limit = start + FY_MAX_RECORD_BYTES < limit ? start + FY_MAX_RECORD_BYTES : limit;
    f->out = out;
    f->st = st;
    f->gen_insert_id = gen_insert_id;
    f->failed = f->done = 0;
    f->end = 0;
    f->depth = 0;
    f->nkeys = 0;
    f->field = F_NONE;
    f->has_type = f->has_id = f->has_insert_id = f->has_time = 0;
    msgpack_packer_init(&f->pk, f, out_write);
    int ok = run(f, (const unsigned char *)text, len, start);
    arena_reset(f);
    out->limit = limit;
    if (!ok)
        out->len = start;
    return ok;
}

/* record.c: encoding events into records and checking/decoding records.
 * FORMAT.md is the specification this file implements. */
#include "fy_record.h"
#include "fy_fail.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>

int64_t fy_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t fy_boottime_ms(void)
{
    struct timespec ts;
    if (clock_gettime(CLOCK_BOOTTIME, &ts) != 0)
        return -1;
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static char boot_id_cache[FY_BOOT_ID_LEN + 1];
static pthread_once_t boot_id_once = PTHREAD_ONCE_INIT;

/* The kernel makes a random UUID per boot; 32 hex digits without the dashes
 * (as journalctl --list-boots shows it) are valid UTF-8 in a MessagePack str,
 * unlike the 16 raw bytes, and readable in any dump. */
static void read_boot_id(void)
{
    char raw[64] = "";
    FILE *f = fopen("/proc/sys/kernel/random/boot_id", "re");
    if (!f)
        return;
    size_t n = fread(raw, 1, sizeof raw - 1, f);
    fclose(f);
    raw[n] = '\0';
    char out[FY_BOOT_ID_LEN + 1];
    size_t o = 0;
    for (size_t i = 0; raw[i] && raw[i] != '\n'; i++) {
        char c = raw[i];
        if (c == '-')
            continue;
        if (c >= 'A' && c <= 'F')
            c = (char)(c - 'A' + 'a');
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f')) || o == FY_BOOT_ID_LEN)
            return;
        out[o++] = c;
    }
    if (o != FY_BOOT_ID_LEN)
        return;
    out[o] = '\0';
    memcpy(boot_id_cache, out, sizeof out);
}

void fy_boot_id(char out[FY_BOOT_ID_LEN + 1])
{
    pthread_once(&boot_id_once, read_boot_id);
    memcpy(out, boot_id_cache, FY_BOOT_ID_LEN + 1);
}

void fy_stamp_now(fy_stamp *s)
{
    fy_boot_id(s->boot_id);
    s->wall_ms = fy_now_ms();
    s->mono_ms = fy_boottime_ms();
}

ferry_err fy_random_bytes(unsigned char *p, size_t n)
{
    size_t got = 0;
    while (got < n) {
        /* GRND_NONBLOCK: a device early in boot must not stall recording
         * waiting for entropy; /dev/urandom never blocks. */
        ssize_t r = getrandom(p + got, n - got, GRND_NONBLOCK);
        if (r > 0) {
            got += (size_t)r;
            continue;
        }
        if (r < 0 && errno == EINTR)
            continue;
        int fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);
        if (fd < 0)
            return fy_fail(FERRY_EIO, "no random source: %s", strerror(errno));
        while (got < n) {
            ssize_t k = read(fd, p + got, n - got);
            if (k < 0 && errno == EINTR)
                continue;
            if (k <= 0) {
                close(fd);
                return fy_fail(FERRY_EIO, "reading /dev/urandom failed");
            }
            got += (size_t)k;
        }
        close(fd);
    }
    return FERRY_OK;
}

ferry_err fy_uuid4(char out[FY_UUID_LEN + 1])
{
    static const char hex[] = "0123456789abcdef";
    unsigned char u[16];
    ferry_err e = fy_random_bytes(u, sizeof u);
    if (e)
        return e;
    u[6] = (unsigned char)((u[6] & 0x0f) | 0x40); /* version 4 */
    u[8] = (unsigned char)((u[8] & 0x3f) | 0x80); /* RFC 4122 variant */
    size_t o = 0;
    for (size_t i = 0; i < 16; i++) {
        if (i == 4 || i == 6 || i == 8 || i == 10)
            out[o++] = '-';
        out[o++] = hex[u[i] >> 4];
        out[o++] = hex[u[i] & 15];
    }
    out[o] = '\0';
    return FERRY_OK;
}

ferry_err fy_json_parse_event(const char *text, size_t len, json_t **out)
{
    json_error_t jerr;
    *out = NULL;
    json_t *v = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
    if (!v) {
        /* Not the event's fault: the caller may try again. jansson leaves
         * the message empty (and the code unset: test it first) when it could
         * not allocate a value, but reports a failure in its lexer's buffer
         * as a syntax error. */
        if (!jerr.text[0] || json_error_code(&jerr) == json_error_out_of_memory)
            return fy_fail(FERRY_ENOMEM, "out of memory parsing the event");
        const char *hint = "";
        if (json_error_code(&jerr) == json_error_numeric_overflow)
            hint = " (integers must fit in a signed 64-bit value)";
        return fy_fail(FERRY_EINVAL, "invalid JSON at column %d: %s%s", jerr.column, jerr.text, hint);
    }
    if (!json_is_object(v)) {
        json_decref(v);
        return fy_fail(FERRY_EINVAL, "an event must be a JSON object");
    }
    *out = v;
    return FERRY_OK;
}

/* ---- encoding ---------------------------------------------------------- */

typedef struct packctx {
    fy_buf *b;
    ferry_err err;
} packctx;

static int pack_write(void *data, const char *buf, size_t len)
{
    packctx *c = data;
    ferry_err e = fy_buf_append(c->b, buf, len);
    if (e) {
        c->err = e;
        return -1;
    }
    return 0;
}

static ferry_err pack_fail(packctx *c)
{
    if (c->err == FERRY_ETOOBIG)
        return fy_fail(FERRY_ETOOBIG, "event too large: the encoded record exceeds %u bytes",
                       FY_MAX_RECORD_BYTES);
    return c->err ? c->err : fy_fail(FERRY_ENOMEM, "encoding failed");
}

static ferry_err pack_json(msgpack_packer *pk, packctx *c, const json_t *v, unsigned depth)
{
    int rc = 0;
    switch (json_typeof(v)) {
    case JSON_NULL: rc = msgpack_pack_nil(pk); break;
    case JSON_TRUE: rc = msgpack_pack_true(pk); break;
    case JSON_FALSE: rc = msgpack_pack_false(pk); break;
    case JSON_INTEGER: rc = msgpack_pack_int64(pk, (int64_t)json_integer_value(v)); break;
    case JSON_REAL: rc = msgpack_pack_double(pk, json_real_value(v)); break;
    case JSON_STRING:
        rc = msgpack_pack_str_with_body(pk, json_string_value(v), json_string_length(v));
        break;
    case JSON_ARRAY:
    case JSON_OBJECT:
        if (depth > FY_MAX_JSON_DEPTH)
            return fy_fail(FERRY_EINVAL, "nested deeper than %u levels", FY_MAX_JSON_DEPTH);
        if (json_is_array(v)) {
            size_t n = json_array_size(v);
            if (n > UINT32_MAX || msgpack_pack_array(pk, n))
                return pack_fail(c);
            for (size_t i = 0; i < n; i++) {
                ferry_err e = pack_json(pk, c, json_array_get(v, i), depth + 1);
                if (e)
                    return e;
            }
        } else {
            size_t n = json_object_size(v);
            if (n > UINT32_MAX || msgpack_pack_map(pk, n))
                return pack_fail(c);
            const char *key;
            json_t *val;
            json_object_foreach((json_t *)(uintptr_t)v, key, val) {
                if (msgpack_pack_str_with_body(pk, key, strlen(key)))
                    return pack_fail(c);
                ferry_err e = pack_json(pk, c, val, depth + 1);
                if (e)
                    return e;
            }
        }
        return FERRY_OK;
    }
    return rc ? pack_fail(c) : FERRY_OK;
}

static ferry_err check_id(const json_t *ev, const char *field, int *present)
{
    const json_t *v = json_object_get(ev, field);
    if (!v || json_is_null(v))
        return FERRY_OK;
    if (!json_is_string(v))
        return fy_fail(FERRY_EINVAL, "field %s: must be a string", field);
    if (json_string_length(v) == 0)
        return fy_fail(FERRY_EINVAL, "field %s: must not be empty", field);
    *present = 1;
    return FERRY_OK;
}

static ferry_err check_type(const json_t *ev, const char *field, json_type want, const char *what)
{
    const json_t *v = json_object_get(ev, field);
    if (v && json_typeof(v) != want)
        return fy_fail(FERRY_EINVAL, "field %s: must be %s", field, what);
    return FERRY_OK;
}

/* The Amplitude fields whose type is fixed: a wrong one would only be
 * rejected by the destination later, so it is refused now, at the source. */
static ferry_err check_event(json_t *ev)
{
    const json_t *t = json_object_get(ev, "event_type");
    if (!t)
        return fy_fail(FERRY_EINVAL, "field event_type: missing");
    if (!json_is_string(t))
        return fy_fail(FERRY_EINVAL, "field event_type: must be a string");
    if (json_string_length(t) == 0)
        return fy_fail(FERRY_EINVAL, "field event_type: must not be empty");
    int ids = 0;
    ferry_err e;
    if ((e = check_id(ev, "device_id", &ids)) || (e = check_id(ev, "user_id", &ids)))
        return e;
    if (!ids)
        return fy_fail(FERRY_EINVAL, "fields device_id and user_id: at least one is required");
    const json_t *tm = json_object_get(ev, "time");
    if (tm && (!json_is_integer(tm) || json_integer_value(tm) < 0))
        return fy_fail(FERRY_EINVAL, "field time: must be a non-negative integer (ms since the epoch)");
    const json_t *iid = json_object_get(ev, "insert_id");
    if (iid) {
        if (!json_is_string(iid) || json_string_length(iid) == 0)
            return fy_fail(FERRY_EINVAL, "field insert_id: must be a non-empty string");
        if (json_string_length(iid) > FY_MAX_INSERT_ID)
            return fy_fail(FERRY_EINVAL, "field insert_id: longer than %u bytes", FY_MAX_INSERT_ID);
    }
    static const char *const objects[] = {"event_properties", "user_properties", "groups",
                                          "group_properties"};
    for (size_t i = 0; i < sizeof objects / sizeof objects[0]; i++)
        if ((e = check_type(ev, objects[i], JSON_OBJECT, "an object")))
            return e;
    if ((e = check_type(ev, "session_id", JSON_INTEGER, "an integer")) ||
        (e = check_type(ev, "event_id", JSON_INTEGER, "an integer")))
        return e;
    return FERRY_OK;
}

#define CRC_OFFSET 2u /* fixarray header, fixint version */
#define CRC_END 7u    /* 0xce + 4 bytes */

ferry_err fy_record_encode(json_t *event, int64_t now_ms, const char *gen_insert_id, fy_buf *out)
{
    fy_stamp st = {.wall_ms = now_ms, .mono_ms = -1, .boot_id = ""};
    return fy_record_encode_stamped(event, &st, gen_insert_id, out);
}

_Static_assert(FY_RECORD_HEAD_BYTES == CRC_END, "record head");

int fy_record_head(const fy_stamp *st, unsigned char head[FY_RECORD_HEAD_BYTES])
{
    /* Elements 4 and 5 only together: a monotonic time means nothing
     * without the boot it counts from. */
    int clock = st->mono_ms >= 0 && strlen(st->boot_id) == FY_BOOT_ID_LEN;
    const unsigned char h[CRC_END] = {clock ? 0x96 : 0x94, FY_RECORD_VERSION, 0xce, 0, 0, 0, 0};
    memcpy(head, h, sizeof h);
    return clock;
}

void fy_record_seal(void *record, size_t len)
{
    unsigned char *rec = record;
    uint32_t crc = (uint32_t)crc32(0L, rec + CRC_END, (uInt)(len - CRC_END));
    for (unsigned i = 0; i < 4; i++)
        rec[CRC_OFFSET + 1 + i] = (unsigned char)(crc >> (24 - 8 * i));
}

ferry_err fy_record_encode_stamped(json_t *event, const fy_stamp *st, const char *gen_insert_id, fy_buf *out)
{
    int64_t now_ms = st->wall_ms;
    unsigned char head[CRC_END];
    int clock = fy_record_head(st, head);
    ferry_err e = check_event(event);
    if (e)
        return e;
    if (!json_object_get(event, "insert_id")) {
        if (!gen_insert_id)
            return fy_fail(FERRY_EINVAL, "field insert_id: missing and none generated");
        if (json_object_set_new(event, "insert_id", json_string(gen_insert_id)))
            return fy_fail(FERRY_ENOMEM, "out of memory");
    }
    if (!json_object_get(event, "time") &&
        json_object_set_new(event, "time", json_integer((json_int_t)now_ms)))
        return fy_fail(FERRY_ENOMEM, "out of memory");

    /* Encode at the end of out, capped at one record's maximum size. */
    size_t start = out->len, limit = out->limit;
    out->limit = start + FY_MAX_RECORD_BYTES < limit ? start + FY_MAX_RECORD_BYTES : limit;
    packctx c = {out, FERRY_OK};
    msgpack_packer pk;
    msgpack_packer_init(&pk, &c, pack_write);
    if (pack_write(&c, (const char *)head, sizeof head) || msgpack_pack_int64(&pk, now_ms))
        e = pack_fail(&c);
    else
        e = pack_json(&pk, &c, event, 1);
    if (!e && clock &&
        (msgpack_pack_int64(&pk, st->mono_ms) || msgpack_pack_str_with_body(&pk, st->boot_id, FY_BOOT_ID_LEN)))
        e = pack_fail(&c);
    out->limit = limit;
    if (e) {
        out->len = start;
        return e;
    }
    fy_record_seal(out->data + start, out->len - start);
    return FERRY_OK;
}

/* ---- checking ---------------------------------------------------------- */

typedef struct scanner {
    const unsigned char *p;
    const unsigned char *end;
} scanner;

static uint32_t be_n(const unsigned char *p, unsigned n)
{
    uint32_t v = 0;
    for (unsigned i = 0; i < n; i++)
        v = (v << 8) | p[i];
    return v;
}

static ferry_err corrupt(const scanner *s, const unsigned char *base, const char *why)
{
    return fy_fail(FERRY_ECORRUPT, "corrupt at byte %td: %s", s->p - base, why);
}

/* Walks one value. Every length is checked against the bytes left before
 * anything is trusted, so a damaged header cannot cause a big allocation. */
static ferry_err scan_value(scanner *s, const unsigned char *base, unsigned depth)
{
    if (s->p >= s->end)
        return corrupt(s, base, "truncated");
    unsigned char t = *s->p;
    size_t left = (size_t)(s->end - s->p) - 1;
    size_t skip = 0;   /* payload bytes after the type byte (and length field) */
    size_t hdr = 0;    /* length-field bytes */
    uint32_t count = 0;
    int is_map = 0, is_array = 0;

    if (t <= 0x7f || t >= 0xe0 || t == 0xc0 || t == 0xc2 || t == 0xc3) {
        skip = 0;
    } else if (t >= 0x80 && t <= 0x8f) {
        is_map = 1, count = t & 0x0fu;
    } else if (t >= 0x90 && t <= 0x9f) {
        is_array = 1, count = t & 0x0fu;
    } else if (t >= 0xa0 && t <= 0xbf) {
        skip = t & 0x1fu;
    } else {
        switch (t) {
        case 0xca: skip = 4; break;
        case 0xcb: skip = 8; break;
        case 0xcc: case 0xd0: skip = 1; break;
        case 0xcd: case 0xd1: skip = 2; break;
        case 0xce: case 0xd2: skip = 4; break;
        case 0xcf: case 0xd3: skip = 8; break;
        case 0xd9: case 0xda: case 0xdb:
            hdr = t == 0xd9 ? 1u : t == 0xda ? 2u : 4u;
            if (left < hdr)
                return corrupt(s, base, "truncated string length");
            skip = be_n(s->p + 1, (unsigned)hdr);
            break;
        case 0xdc: case 0xdd:
            hdr = t == 0xdc ? 2u : 4u;
            if (left < hdr)
                return corrupt(s, base, "truncated array length");
            is_array = 1, count = be_n(s->p + 1, (unsigned)hdr);
            break;
        case 0xde: case 0xdf:
            hdr = t == 0xde ? 2u : 4u;
            if (left < hdr)
                return corrupt(s, base, "truncated map length");
            is_map = 1, count = be_n(s->p + 1, (unsigned)hdr);
            break;
        default:
            return corrupt(s, base, t == 0xc1 ? "reserved type byte 0xc1"
                                             : "binary or extension value not allowed");
        }
    }
    if (!is_map && !is_array) {
        if (left - hdr < skip)
            return corrupt(s, base, "value runs past the end");
        s->p += 1 + hdr + skip;
        return FERRY_OK;
    }
    if (depth > FY_MAX_DEPTH)
        return corrupt(s, base, "nested too deeply");
    left -= hdr;
    if ((uint64_t)count * (is_map ? 2u : 1u) > left)
        return corrupt(s, base, "container claims more elements than there are bytes");
    s->p += 1 + hdr;
    for (uint32_t i = 0; i < count; i++) {
        if (is_map) {
            if (s->p >= s->end)
                return corrupt(s, base, "truncated");
            unsigned char k = *s->p;
            if (!((k >= 0xa0 && k <= 0xbf) || k == 0xd9 || k == 0xda || k == 0xdb))
                return corrupt(s, base, "map key is not a string");
            ferry_err e = scan_value(s, base, depth + 1);
            if (e)
                return e;
        }
        ferry_err e = scan_value(s, base, depth + 1);
        if (e)
            return e;
    }
    return FERRY_OK;
}

ferry_err fy_msgpack_span(const void *buf, size_t len, size_t *used)
{
    const unsigned char *base = buf;
    scanner s = {base, base + len};
    ferry_err e = scan_value(&s, base, 1);
    *used = e ? 0 : (size_t)(s.p - base);
    return e;
}

ferry_err fy_msgpack_check(const void *buf, size_t len)
{
    size_t used;
    ferry_err e = fy_msgpack_span(buf, len, &used);
    if (!e && used != len)
        return fy_fail(FERRY_ECORRUPT, "corrupt: %zu trailing bytes", len - used);
    return e;
}

/* The one entry for key in an event map: NULL when absent; *dup is set when
 * the key occurs more than once (readers would disagree on its value). */
static const msgpack_object *map_get_once(const msgpack_object *map, const char *key, int *dup)
{
    const msgpack_object *found = NULL;
    size_t klen = strlen(key);
    for (uint32_t i = 0; i < map->via.map.size; i++) {
        const msgpack_object *k = &map->via.map.ptr[i].key;
        if (k->type == MSGPACK_OBJECT_STR && k->via.str.size == klen && memcmp(k->via.str.ptr, key, klen) == 0) {
            if (found)
                *dup = 1;
            found = &map->via.map.ptr[i].val;
        }
    }
    return found;
}

static int is_int(const msgpack_object *o)
{
    return o->type == MSGPACK_OBJECT_POSITIVE_INTEGER || o->type == MSGPACK_OBJECT_NEGATIVE_INTEGER;
}

/* Checks the record's fixed elements and the event's required fields, and
 * fills r from them. */
static ferry_err check_fields(const msgpack_object *arr, fy_record *r)
{
    if (arr->type != MSGPACK_OBJECT_ARRAY || arr->via.array.size < 4)
        return fy_fail(FERRY_ECORRUPT, "record corrupt: not an array of at least 4 elements");
    const msgpack_object *a = arr->via.array.ptr;
    if (a[0].type != MSGPACK_OBJECT_POSITIVE_INTEGER)
        return fy_fail(FERRY_ECORRUPT, "record corrupt: version is not an unsigned integer");
    if (a[0].via.u64 != FY_RECORD_VERSION)
        return fy_fail(FERRY_EVERSION, "record version %llu is not supported (this build reads %u)",
                       (unsigned long long)a[0].via.u64, FY_RECORD_VERSION);
    if (!is_int(&a[2]))
        return fy_fail(FERRY_ECORRUPT, "record corrupt: recorded_at is not an integer");
    if (a[3].type != MSGPACK_OBJECT_MAP)
        return fy_fail(FERRY_ECORRUPT, "record corrupt: event is not a map");
    int dup = 0;
    const msgpack_object *t = map_get_once(&a[3], "event_type", &dup);
    const msgpack_object *iid = map_get_once(&a[3], "insert_id", &dup);
    const msgpack_object *tm = map_get_once(&a[3], "time", &dup);
    const msgpack_object *dev = map_get_once(&a[3], "device_id", &dup);
    map_get_once(&a[3], "user_id", &dup);
    if (dup)
        return fy_fail(FERRY_ECORRUPT, "record corrupt: a required event field appears twice");
    if (!t || t->type != MSGPACK_OBJECT_STR || !t->via.str.size)
        return fy_fail(FERRY_ECORRUPT, "record corrupt: event_type missing");
    if (!iid || iid->type != MSGPACK_OBJECT_STR || !iid->via.str.size)
        return fy_fail(FERRY_ECORRUPT, "record corrupt: insert_id missing");
    if (!tm || !is_int(tm))
        return fy_fail(FERRY_ECORRUPT, "record corrupt: time missing");
    r->version = a[0].via.u64;
    r->recorded_at_ms = a[2].via.i64; /* same bits for non-negative values */
    r->event = a[3];
    r->event_type = t->via.str.ptr;
    r->event_type_len = t->via.str.size;
    r->insert_id = iid->via.str.ptr;
    r->insert_id_len = iid->via.str.size;
    r->time_ms = tm->via.i64;
    r->mono_ms = -1;
    /* Elements 4 and 5 (format 1.1) are used only when both have their
     * types; anything else there is ignored, as a 1.0 reader does. */
    if (arr->via.array.size >= 6 && a[4].type == MSGPACK_OBJECT_POSITIVE_INTEGER && a[4].via.u64 <= INT64_MAX &&
        a[5].type == MSGPACK_OBJECT_STR && a[5].via.str.size == FY_BOOT_ID_LEN) {
        r->mono_ms = (int64_t)a[4].via.u64;
        r->boot_id = a[5].via.str.ptr;
    }
    if (dev && dev->type == MSGPACK_OBJECT_STR) {
        r->device_id = dev->via.str.ptr;
        r->device_id_len = dev->via.str.size;
    }
    return FERRY_OK;
}

ferry_err fy_record_check(const void *buf, size_t len)
{
    fy_record r;
    ferry_err e = fy_record_decode(buf, len, &r);
    if (!e)
        fy_record_free(&r);
    return e;
}

/* One integer at *p (n bytes left): its length, or 0 when it is none. */
static size_t read_int(const unsigned char *p, size_t n, int64_t *v)
{
    if (!n)
        return 0;
    unsigned char t = p[0];
    if (t <= 0x7f) {
        *v = t;
        return 1;
    }
    if (t >= 0xe0) {
        *v = (int64_t)(signed char)t;
        return 1;
    }
    static const unsigned char sizes[] = {1, 2, 4, 8}; /* cc..cf, d0..d3 */
    if (t < 0xcc || t > 0xd3)
        return 0;
    size_t k = sizes[(t - 0xcc) & 3u];
    if (n < 1 + k)
        return 0;
    uint64_t u = 0;
    for (size_t i = 0; i < k; i++)
        u = (u << 8) | p[1 + i];
    if (t >= 0xd0) { /* signed: sign-extend */
        if (k < 8 && (u >> (8 * k - 1)) & 1u)
            u |= ~(uint64_t)0 << (8 * k);
    }
    memcpy(v, &u, sizeof u); /* uint64 beyond INT64_MAX: the same bits, as the decoder reads them */
    return 1 + k;
}

ferry_err fy_record_peek_clock(const void *buf, size_t len, fy_record *r)
{
    const unsigned char *p = buf;
    memset(r, 0, sizeof *r);
    r->mono_ms = -1;
    if (len > FY_MAX_RECORD_BYTES || len < CRC_END + 1 || (p[0] & 0xf0) != 0x90 || (p[0] & 0x0f) < 4 ||
        p[1] != FY_RECORD_VERSION || p[CRC_OFFSET] != 0xce)
        return fy_fail(FERRY_ECORRUPT, "record corrupt: not a version-%u record", FY_RECORD_VERSION);
    if (be_n(p + CRC_OFFSET + 1, 4) != (uint32_t)crc32(0L, p + CRC_END, (uInt)(len - CRC_END)))
        return fy_fail(FERRY_ECORRUPT, "record corrupt: checksum mismatch");
    unsigned count = p[0] & 0x0fu;
    size_t off = CRC_END, used;
    int64_t wall, mono;
    if (!(used = read_int(p + off, len - off, &wall)))
        return fy_fail(FERRY_ECORRUPT, "record corrupt: recorded_at is not an integer");
    off += used;
    if (fy_msgpack_span(p + off, len - off, &used)) /* the event, walked, not decoded */
        return fy_fail_prefix(FERRY_ECORRUPT, "record");
    off += used;
    r->recorded_at_ms = wall;
    if (count >= 6 && (used = read_int(p + off, len - off, &mono)) && mono >= 0) { /* as msgpack-c: any non-negative int */
        off += used;
        /* a 32-byte str in any of its forms (str8 is what msgpack-c writes) */
        size_t hdr = len - off < 1 ? 0 : p[off] == 0xd9 ? 2 : p[off] == 0xda ? 3 : p[off] == 0xdb ? 5 : 0;
        if (hdr && len - off >= hdr + FY_BOOT_ID_LEN && be_n(p + off + 1, (unsigned)hdr - 1) == FY_BOOT_ID_LEN) {
            r->mono_ms = mono;
            r->boot_id = (const char *)p + off + hdr;
        }
    }
    return FERRY_OK;
}

ferry_err fy_record_clock_json(fy_buf *b, const fy_record *r)
{
    if (!r->boot_id)
        return FERRY_OK;
    ferry_err e = fy_buf_printf(b, ",\"mono_ms\":%" PRId64 ",\"boot_id\":", r->mono_ms);
    return e ? e : fy_json_emit_string(b, r->boot_id, FY_BOOT_ID_LEN);
}

const msgpack_object *fy_map_get(const msgpack_object *map, const char *key)
{
    if (map->type != MSGPACK_OBJECT_MAP)
        return NULL;
    size_t klen = strlen(key);
    for (uint32_t i = 0; i < map->via.map.size; i++) {
        const msgpack_object *k = &map->via.map.ptr[i].key;
        if (k->type == MSGPACK_OBJECT_STR && k->via.str.size == klen &&
            memcmp(k->via.str.ptr, key, klen) == 0)
            return &map->via.map.ptr[i].val;
    }
    return NULL;
}

ferry_err fy_record_decode(const void *buf, size_t len, fy_record *r)
{
    const unsigned char *base = buf;
    memset(r, 0, sizeof *r);
    if (len > FY_MAX_RECORD_BYTES)
        return fy_fail(FERRY_ECORRUPT, "record corrupt: %zu bytes, more than the maximum %u", len,
                       FY_MAX_RECORD_BYTES);
    if (len < CRC_END + 1 || (base[0] & 0xf0) != 0x90)
        return fy_fail(FERRY_ECORRUPT, "record corrupt: does not start with a record header");
    if (base[1] != FY_RECORD_VERSION) {
        if (base[1] > FY_RECORD_VERSION && base[1] <= 0x7f)
            return fy_fail(FERRY_EVERSION, "record version %u is not supported (this build reads %u)",
                           base[1], FY_RECORD_VERSION);
        return fy_fail(FERRY_ECORRUPT, "record corrupt: bad version byte 0x%02x", base[1]);
    }
    if (base[CRC_OFFSET] != 0xce)
        return fy_fail(FERRY_ECORRUPT, "record corrupt: checksum field missing");
    uint32_t want = be_n(base + CRC_OFFSET + 1, 4);
    uint32_t got = (uint32_t)crc32(0L, base + CRC_END, (uInt)(len - CRC_END));
    if (want != got)
        return fy_fail(FERRY_ECORRUPT, "record corrupt: checksum mismatch (stored %08x, computed %08x)",
                       want, got);
    ferry_err e = fy_msgpack_check(buf, len);
    if (e)
        return fy_fail_prefix(e, "record");

    msgpack_unpacked_init(&r->up);
    size_t off = 0;
    msgpack_unpack_return ur = msgpack_unpack_next(&r->up, buf, len, &off);
    if (ur != MSGPACK_UNPACK_SUCCESS || off != len) {
        msgpack_unpacked_destroy(&r->up);
        return ur == MSGPACK_UNPACK_NOMEM_ERROR ? fy_fail(FERRY_ENOMEM, "out of memory decoding a record")
                                                : fy_fail(FERRY_ECORRUPT, "record corrupt: undecodable");
    }
    e = check_fields(&r->up.data, r);
    if (e)
        msgpack_unpacked_destroy(&r->up);
    return e;
}

void fy_record_free(fy_record *r) { msgpack_unpacked_destroy(&r->up); }

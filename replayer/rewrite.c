/* rewrite.c: emitting one event with the replayer's overrides (rewrite.h). */
#include "rewrite.h"
#include "fy_record.h"

#include <inttypes.h>
#include <string.h>

static int key_is(const msgpack_object *k, const char *s)
{
    size_t n = strlen(s);
    return k->type == MSGPACK_OBJECT_STR && k->via.str.size == n && memcmp(k->via.str.ptr, s, n) == 0;
}

int rp_is_location_field(const char *key, size_t n)
{
    static const char *const fields[] = {"ip", "city", "country", "region", "dma", "location_lat",
                                         "location_lng"};
    for (size_t i = 0; i < sizeof fields / sizeof fields[0]; i++)
        if (strlen(fields[i]) == n && memcmp(fields[i], key, n) == 0)
            return 1;
    return 0;
}

static ferry_err emit_key(fy_buf *b, int *first, const char *k, size_t n)
{
    ferry_err e = *first ? FERRY_OK : fy_buf_putc(b, ',');
    *first = 0;
    if (!e) e = fy_json_emit_string(b, k, n);
    if (!e) e = fy_buf_putc(b, ':');
    return e;
}

static int is_added(const rp_overrides *o, const msgpack_object *k)
{
    for (size_t i = 0; i < o->n_props; i++)
        if (key_is(k, o->props[i].key))
            return 1;
    return 0;
}

/* event_properties: the recorded entries (minus those the replayer sets),
 * then the added ones. props may be NULL (none recorded). */
static ferry_err emit_props(fy_buf *b, const msgpack_object *props, const rp_overrides *o)
{
    ferry_err e = fy_buf_putc(b, '{');
    int first = 1;
    for (uint32_t i = 0; props && i < props->via.map.size && !e; i++) {
        const msgpack_object *k = &props->via.map.ptr[i].key;
        if (is_added(o, k))
            continue;
        if (!first)
            e = fy_buf_putc(b, ',');
        first = 0;
        if (!e) e = fy_json_emit(b, k);
        if (!e) e = fy_buf_putc(b, ':');
        if (!e) e = fy_json_emit(b, &props->via.map.ptr[i].val);
    }
    for (size_t i = 0; i < o->n_props && !e; i++) {
        if (!(e = emit_key(b, &first, o->props[i].key, strlen(o->props[i].key))))
            e = o->props[i].is_true ? fy_buf_puts(b, "true") : fy_buf_printf(b, "%" PRId64, o->props[i].i);
    }
    return e ? e : fy_buf_putc(b, '}');
}

/* A session start (ms, positive) that stays positive and in range when
 * shifted; -1 ("no session") and other values are left alone. */
static int shiftable(const msgpack_object *v, int64_t shift)
{
    if (v->type != MSGPACK_OBJECT_POSITIVE_INTEGER || v->via.u64 == 0 || v->via.u64 > (uint64_t)INT64_MAX / 2)
        return 0;
    int64_t x = (int64_t)v->via.u64;
    return shift > -x && shift < INT64_MAX / 2;
}

ferry_err rp_emit_event(fy_buf *b, const msgpack_object *event, const rp_overrides *o)
{
    ferry_err e = fy_buf_putc(b, '{');
    int first = 1, props_seen = 0;
    for (uint32_t i = 0; i < event->via.map.size && !e; i++) {
        const msgpack_object *k = &event->via.map.ptr[i].key, *v = &event->via.map.ptr[i].val;
        if (k->type != MSGPACK_OBJECT_STR) /* the record checker allows none */
            continue;
        if (o->ip != RP_IP_PASS && rp_is_location_field(k->via.str.ptr, k->via.str.size))
            continue;
        if ((e = emit_key(b, &first, k->via.str.ptr, k->via.str.size)))
            break;
        if (o->set_time && key_is(k, "time")) {
            e = fy_buf_printf(b, "%" PRId64, o->time_ms);
        } else if (o->shift_session_ms && key_is(k, "session_id") && shiftable(v, o->shift_session_ms)) {
            e = fy_buf_printf(b, "%" PRId64, (int64_t)v->via.u64 + o->shift_session_ms);
        } else if (o->n_props && key_is(k, "event_properties") && v->type == MSGPACK_OBJECT_MAP && !props_seen) {
            props_seen = 1;
            e = emit_props(b, v, o);
        } else {
            if (key_is(k, "event_properties"))
                props_seen = 1; /* not a map (a foreign record): left as it is, no flags */
            e = fy_json_emit(b, v);
        }
    }
    if (!e && o->n_props && !props_seen && !(e = emit_key(b, &first, "event_properties", 16)))
        e = emit_props(b, NULL, o);
    if (!e && o->ip == RP_IP_REMOTE && !(e = emit_key(b, &first, "ip", 2)))
        e = fy_buf_puts(b, "\"$remote\"");
    return e ? e : fy_buf_putc(b, '}');
}

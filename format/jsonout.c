/* jsonout.c: MessagePack objects to JSON text.
 * Jansson cannot hold integers above INT64_MAX nor strings from damaged
 * records, and the replayer's hot path should not build a DOM per event, so
 * records are written as JSON straight from the decoded objects. */
#include "fy_fail.h"
#include "fy_record.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

size_t fy_utf8_seq(const unsigned char *p, size_t n)
{
    unsigned char c = p[0];
    if (c < 0x80)
        return 1;
    size_t len;
    uint32_t cp;
    if (c >= 0xc2 && c <= 0xdf)
        len = 2, cp = c & 0x1fu;
    else if (c >= 0xe0 && c <= 0xef)
        len = 3, cp = c & 0x0fu;
    else if (c >= 0xf0 && c <= 0xf4)
        len = 4, cp = c & 0x07u;
    else
        return 0;
    if (n < len)
        return 0;
    for (size_t i = 1; i < len; i++) {
        if ((p[i] & 0xc0) != 0x80)
            return 0;
        cp = (cp << 6) | (p[i] & 0x3fu);
    }
    if ((len == 3 && cp < 0x800) || (len == 4 && (cp < 0x10000 || cp > 0x10ffff)) ||
        (cp >= 0xd800 && cp <= 0xdfff))
        return 0;
    return len;
}

ferry_err fy_json_emit_string(fy_buf *b, const char *s, size_t n)
{
    const unsigned char *p = (const unsigned char *)s;
    ferry_err e = fy_buf_reserve(b, n + 2);
    if (e)
        return e;
    if ((e = fy_buf_putc(b, '"')))
        return e;
    size_t run = 0; /* start of bytes that need no escaping */
    for (size_t i = 0; i < n;) {
        unsigned char c = p[i];
        size_t len = c < 0x80 ? 1 : fy_utf8_seq(p + i, n - i);
        const char *esc = NULL;
        char ubuf[8];
        if (len == 0) {
            esc = "\\ufffd";
            len = 1;
        } else if (c == '"') {
            esc = "\\\"";
        } else if (c == '\\') {
            esc = "\\\\";
        } else if (c < 0x20) {
            switch (c) {
            case '\n': esc = "\\n"; break;
            case '\r': esc = "\\r"; break;
            case '\t': esc = "\\t"; break;
            case '\b': esc = "\\b"; break;
            case '\f': esc = "\\f"; break;
            default:
                snprintf(ubuf, sizeof ubuf, "\\u%04x", c);
                esc = ubuf;
            }
        }
        if (esc) {
            if ((e = fy_buf_append(b, s + run, i - run)) || (e = fy_buf_puts(b, esc)))
                return e;
            run = i + len;
        }
        i += len;
    }
    if ((e = fy_buf_append(b, s + run, n - run)))
        return e;
    return fy_buf_putc(b, '"');
}

static ferry_err emit_double(fy_buf *b, double d)
{
    if (!isfinite(d))
        return fy_buf_puts(b, "null"); /* JSON has no NaN or infinity */
    char tmp[40];
    /* The shortest form that reads back exactly; below 1e16, starting at
     * the number of integer digits keeps 100.0 from turning into 1e+02. */
    int prec = 1;
    if (fabs(d) >= 10.0 && fabs(d) < 1e16)
        prec = (int)floor(log10(fabs(d))) + 1;
    for (; prec <= 17; prec++) {
        snprintf(tmp, sizeof tmp, "%.*g", prec, d);
        if (strtod(tmp, NULL) == d)
            break;
    }
    if (!strpbrk(tmp, ".eE"))
        strcat(tmp, ".0"); /* keep it a double when read back */
    return fy_buf_puts(b, tmp);
}

ferry_err fy_json_emit(fy_buf *b, const msgpack_object *o)
{
    ferry_err e;
    switch (o->type) {
    case MSGPACK_OBJECT_NIL: return fy_buf_puts(b, "null");
    case MSGPACK_OBJECT_BOOLEAN: return fy_buf_puts(b, o->via.boolean ? "true" : "false");
    case MSGPACK_OBJECT_POSITIVE_INTEGER:
        return fy_buf_printf(b, "%llu", (unsigned long long)o->via.u64);
    case MSGPACK_OBJECT_NEGATIVE_INTEGER: return fy_buf_printf(b, "%lld", (long long)o->via.i64);
    case MSGPACK_OBJECT_FLOAT32:
    case MSGPACK_OBJECT_FLOAT64: return emit_double(b, o->via.f64);
    case MSGPACK_OBJECT_STR: return fy_json_emit_string(b, o->via.str.ptr, o->via.str.size);
    case MSGPACK_OBJECT_ARRAY:
        if ((e = fy_buf_putc(b, '[')))
            return e;
        for (uint32_t i = 0; i < o->via.array.size; i++) {
            if ((i && (e = fy_buf_putc(b, ','))) || (e = fy_json_emit(b, &o->via.array.ptr[i])))
                return e;
        }
        return fy_buf_putc(b, ']');
    case MSGPACK_OBJECT_MAP:
        if ((e = fy_buf_putc(b, '{')))
            return e;
        for (uint32_t i = 0; i < o->via.map.size; i++) {
            const msgpack_object_kv *kv = &o->via.map.ptr[i];
            if (i && (e = fy_buf_putc(b, ',')))
                return e;
            if (kv->key.type == MSGPACK_OBJECT_STR)
                e = fy_json_emit_string(b, kv->key.via.str.ptr, kv->key.via.str.size);
            else
                e = fy_buf_puts(b, "\"\""); /* records only hold string keys (checked) */
            if (e || (e = fy_buf_putc(b, ':')) || (e = fy_json_emit(b, &kv->val)))
                return e;
        }
        return fy_buf_putc(b, '}');
    case MSGPACK_OBJECT_BIN:
    case MSGPACK_OBJECT_EXT:
        break;
    }
    return fy_buf_puts(b, "null"); /* not allowed in records (checked) */
}

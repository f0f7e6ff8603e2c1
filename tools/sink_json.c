/* sink_json.c: a validating single-pass scanner for ferry-sink's request
 * bodies. It checks the grammar of RFC 8259 (strings must be valid UTF-8
 * without raw control characters, numbers in JSON form, nothing after the
 * top-level value) and records what ferry-sink needs, but builds no tree. */
#include "sink_json.h"
#include "fy_record.h"

#include <stdlib.h>
#include <string.h>

typedef struct sc {
    const char *p, *end, *base;
    const char *err;
    int depth;
    uint8_t ws; /* whitespace was skipped since it was last cleared */
} sc;

static int fail(sc *s, const char *msg)
{
    s->err = msg;
    return -1;
}

static inline void skip_ws(sc *s)
{
    const char *p = s->p;
    while (p < s->end && (*p == ' ' || *p == '\n' || *p == '\r' || *p == '\t'))
        p++;
    if (p != s->p)
        s->ws = 1;
    s->p = p;
}

/* 0: plain ASCII; 1: '"'; 2: '\\'; 3: control; 4: non-ASCII */
static const uint8_t str_class[256] = {
    3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3,
    0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4,
    4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4,
    4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4,
    4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4,
};

static int is_hex(char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

/* At '"'. */
static int scan_string(sc *s, sj_val *v)
{
    const unsigned char *start = (const unsigned char *)s->p + 1;
    const unsigned char *p = start, *end = (const unsigned char *)s->end;
    uint8_t esc = 0;
    for (;;) {
        while (p < end && str_class[*p] == 0)
            p++;
        if (p >= end)
            return fail(s, "unterminated string");
        switch (str_class[*p]) {
        case 1:
            goto done;
        case 2:
            esc = 1;
            if (end - p < 2)
                return fail(s, "unterminated string");
            switch (p[1]) {
            case '"': case '\\': case '/': case 'b': case 'f': case 'n': case 'r': case 't':
                p += 2;
                break;
            case 'u':
                if (end - p < 6 || !is_hex((char)p[2]) || !is_hex((char)p[3]) || !is_hex((char)p[4]) ||
                    !is_hex((char)p[5]))
                    return fail(s, "invalid \\u escape");
                p += 6;
                break;
            default:
                return fail(s, "invalid escape in string");
            }
            break;
        case 3:
            return fail(s, "control character in string");
        default: {
            size_t k = fy_utf8_seq(p, (size_t)(end - p));
            if (!k)
                return fail(s, "invalid UTF-8 in string");
            p += k;
        }
        }
    }
done:
    if (v) {
        v->kind = SJ_STRING;
        v->p = (const char *)start;
        v->n = (size_t)(p - start);
        v->esc = esc;
    }
    s->p = (const char *)p + 1;
    return 0;
}

static int is_digit(char c) { return c >= '0' && c <= '9'; }

static int scan_number(sc *s, sj_val *v)
{
    const char *p = s->p, *end = s->end, *start = p;
    int neg = 0, ovf = 0, is_int = 1;
    uint64_t acc = 0;
    if (*p == '-')
        neg = 1, p++;
    if (p >= end)
        return fail(s, "invalid number");
    if (*p == '0') {
        p++;
    } else if (*p >= '1' && *p <= '9') {
        while (p < end && is_digit(*p)) {
            uint64_t d = (uint64_t)(*p - '0');
            if (acc > (UINT64_MAX - d) / 10)
                ovf = 1;
            else
                acc = acc * 10 + d;
            p++;
        }
    } else {
        return fail(s, "invalid value");
    }
    if (p < end && *p == '.') {
        p++;
        if (p >= end || !is_digit(*p))
            return fail(s, "invalid number");
        while (p < end && is_digit(*p))
            p++;
        is_int = 0;
    }
    if (p < end && (*p == 'e' || *p == 'E')) {
        p++;
        if (p < end && (*p == '+' || *p == '-'))
            p++;
        if (p >= end || !is_digit(*p))
            return fail(s, "invalid number");
        while (p < end && is_digit(*p))
            p++;
        is_int = 0;
    }
    if ((!neg && acc > (uint64_t)INT64_MAX) || (neg && acc > (uint64_t)INT64_MAX + 1u))
        ovf = 1;
    if (v) {
        v->p = start;
        v->n = (size_t)(p - start);
        v->kind = is_int && !ovf ? SJ_INT : SJ_NUMBER;
        if (v->kind == SJ_INT)
            v->i = !neg ? (int64_t)acc : acc == (uint64_t)INT64_MAX + 1u ? INT64_MIN : -(int64_t)acc;
    }
    s->p = p;
    return 0;
}

static int scan_literal(sc *s, const char *word, size_t n, uint8_t kind, sj_val *v)
{
    if ((size_t)(s->end - s->p) < n || memcmp(s->p, word, n) != 0)
        return fail(s, "invalid value");
    if (v) {
        v->kind = kind;
        v->p = s->p;
        v->n = n;
    }
    s->p += n;
    return 0;
}

static int scan_value(sc *s, sj_val *v);

static int expect(sc *s, char c, const char *msg)
{
    skip_ws(s);
    if (s->p >= s->end || *s->p != c)
        return fail(s, msg);
    s->p++;
    return 0;
}

/* After an element: 1 when another follows (the ',' consumed), 0 at the
 * closing character (consumed), -1 otherwise. */
static int next_elem(sc *s, char close)
{
    skip_ws(s);
    if (s->p < s->end) {
        if (*s->p == ',') {
            s->p++;
            return 1;
        }
        if (*s->p == close) {
            s->p++;
            return 0;
        }
    }
    return fail(s, close == '}' ? "expected ',' or '}'" : "expected ',' or ']'");
}

/* At '{' or '['; returns 1 when the container is empty (closing consumed). */
static int open_container(sc *s, char close)
{
    if (++s->depth > SJ_MAX_DEPTH)
        return fail(s, "nested too deeply");
    s->p++;
    skip_ws(s);
    if (s->p < s->end && *s->p == close) {
        s->p++;
        s->depth--;
        return 1;
    }
    return 0;
}

/* At a key's '"': scans it and the ':' after it. */
static int scan_key(sc *s, sj_val *k)
{
    skip_ws(s);
    if (s->p >= s->end || *s->p != '"')
        return fail(s, "expected a string key");
    if (scan_string(s, k) || expect(s, ':', "expected ':'"))
        return -1;
    skip_ws(s);
    return 0;
}

static int scan_object(sc *s)
{
    int rc = open_container(s, '}');
    if (rc)
        return rc < 0 ? -1 : 0;
    do {
        if (scan_key(s, NULL) || scan_value(s, NULL))
            return -1;
    } while ((rc = next_elem(s, '}')) == 1);
    s->depth--;
    return rc;
}

static int scan_array(sc *s)
{
    int rc = open_container(s, ']');
    if (rc)
        return rc < 0 ? -1 : 0;
    do {
        if (scan_value(s, NULL))
            return -1;
    } while ((rc = next_elem(s, ']')) == 1);
    s->depth--;
    return rc;
}

static int scan_value(sc *s, sj_val *v)
{
    skip_ws(s);
    if (s->p >= s->end)
        return fail(s, "unexpected end of input");
    const char *start = s->p;
    int rc;
    switch (*s->p) {
    case '{':
        rc = scan_object(s);
        if (!rc && v)
            v->kind = SJ_OBJECT, v->p = start, v->n = (size_t)(s->p - start);
        return rc;
    case '[':
        rc = scan_array(s);
        if (!rc && v)
            v->kind = SJ_ARRAY, v->p = start, v->n = (size_t)(s->p - start);
        return rc;
    case '"': return scan_string(s, v);
    case 't': return scan_literal(s, "true", 4, SJ_BOOL, v);
    case 'f': return scan_literal(s, "false", 5, SJ_BOOL, v);
    case 'n': return scan_literal(s, "null", 4, SJ_NULL, v);
    default: return scan_number(s, v);
    }
}

/* Is the key k (raw string content) equal to name? */
static int key_is(const sj_val *k, const char *name)
{
    size_t n = strlen(name);
    if (!k->esc)
        return k->n == n && memcmp(k->p, name, n) == 0;
    char buf[64];
    if (k->n > sizeof buf)
        return 0;
    return sj_unescape(k->p, k->n, buf) == n && memcmp(buf, name, n) == 0;
}

static sj_val *event_slot(sj_event *ev, const sj_val *k)
{
    if (k->esc) {
        static const char *const names[] = {"event_type", "user_id", "device_id", "insert_id",
                                            "time", "event_properties", "user_properties"};
        sj_val *const slots[] = {&ev->event_type, &ev->user_id, &ev->device_id, &ev->insert_id,
                                 &ev->time, &ev->event_properties, &ev->user_properties};
        for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
            if (key_is(k, names[i]))
                return slots[i];
        return NULL;
    }
    const char *p = k->p;
    switch (k->n) {
    case 4: return memcmp(p, "time", 4) == 0 ? &ev->time : NULL;
    case 7: return memcmp(p, "user_id", 7) == 0 ? &ev->user_id : NULL;
    case 9:
        if (memcmp(p, "device_id", 9) == 0)
            return &ev->device_id;
        return memcmp(p, "insert_id", 9) == 0 ? &ev->insert_id : NULL;
    case 10: return memcmp(p, "event_type", 10) == 0 ? &ev->event_type : NULL;
    case 15: return memcmp(p, "user_properties", 15) == 0 ? &ev->user_properties : NULL;
    case 16: return memcmp(p, "event_properties", 16) == 0 ? &ev->event_properties : NULL;
    default: return NULL;
    }
}

/* At '{'. */
static int scan_event(sc *s, sj_event *ev)
{
    memset(ev, 0, sizeof *ev);
    ev->is_object = 1;
    ev->off = (size_t)(s->p - s->base);
    uint8_t outer_ws = s->ws;
    s->ws = 0;
    int rc = open_container(s, '}');
    if (rc == 0) {
        do {
            sj_val k;
            if (scan_key(s, &k))
                return -1;
            sj_val *slot = event_slot(ev, &k);
            if (slot)
                memset(slot, 0, sizeof *slot); /* a repeated key: the last one counts */
            if (scan_value(s, slot))
                return -1;
        } while ((rc = next_elem(s, '}')) == 1);
        s->depth--;
    }
    if (rc < 0)
        return -1;
    ev->len = (size_t)(s->p - s->base) - ev->off;
    ev->ws = s->ws;
    s->ws = outer_ws | ev->ws;
    return 0;
}

static int keep_event(sj_request *r, size_t max_keep, sj_event **out)
{
    *out = NULL;
    if (r->n_kept >= max_keep)
        return 0;
    if (r->n_kept == r->cap) {
        size_t cap = r->cap ? r->cap * 2 : 64;
        if (cap > max_keep)
            cap = max_keep;
        sj_event *ev = realloc(r->ev, cap * sizeof *ev);
        if (!ev)
            return -2;
        r->ev = ev;
        r->cap = cap;
    }
    *out = &r->ev[r->n_kept++];
    return 0;
}

/* At '['. */
static int scan_events(sc *s, sj_request *r, size_t max_keep)
{
    r->events.kind = SJ_ARRAY;
    r->n_events = r->n_kept = 0; /* a repeated "events": the last one counts */
    int rc = open_container(s, ']');
    if (rc)
        return rc < 0 ? -1 : 0;
    do {
        sj_event *ev, scratch;
        if (keep_event(r, max_keep, &ev))
            return -2;
        skip_ws(s);
        if (s->p < s->end && *s->p == '{') {
            if (scan_event(s, ev ? ev : &scratch))
                return -1;
        } else {
            if (ev) {
                memset(ev, 0, sizeof *ev);
                ev->off = (size_t)(s->p - s->base);
            }
            if (scan_value(s, NULL))
                return -1;
            if (ev)
                ev->len = (size_t)(s->p - s->base) - ev->off;
        }
        r->n_events++;
    } while ((rc = next_elem(s, ']')) == 1);
    s->depth--;
    return rc;
}

/* At '{'. */
static int scan_options(sc *s, sj_request *r)
{
    memset(&r->min_id_length, 0, sizeof r->min_id_length);
    int rc = open_container(s, '}');
    if (rc)
        return rc < 0 ? -1 : 0;
    do {
        sj_val k;
        if (scan_key(s, &k))
            return -1;
        sj_val *slot = key_is(&k, "min_id_length") ? &r->min_id_length : NULL;
        if (slot)
            memset(slot, 0, sizeof *slot);
        if (scan_value(s, slot))
            return -1;
    } while ((rc = next_elem(s, '}')) == 1);
    s->depth--;
    return rc;
}

int sj_parse_request(const char *body, size_t len, size_t max_keep, sj_request *r, const char **err,
                     size_t *err_at)
{
    memset(r, 0, sizeof *r);
    sc s = {body, body + len, body, NULL, 0, 0};
    int rc;
    skip_ws(&s);
    if (s.p >= s.end || *s.p != '{') {
        rc = fail(&s, "the body is not a JSON object");
        goto out;
    }
    rc = open_container(&s, '}');
    if (rc == 1) {
        rc = 0;
    } else if (rc == 0) {
        do {
            sj_val k;
            if ((rc = scan_key(&s, &k)))
                break;
            int open = s.p < s.end ? *s.p : 0;
            if (key_is(&k, "api_key")) {
                memset(&r->api_key, 0, sizeof r->api_key);
                rc = scan_value(&s, &r->api_key);
            } else if (key_is(&k, "events")) {
                memset(&r->events, 0, sizeof r->events);
                rc = open == '[' ? scan_events(&s, r, max_keep) : scan_value(&s, &r->events);
                if (open != '[')
                    r->n_events = r->n_kept = 0;
            } else if (key_is(&k, "options") && open == '{') {
                rc = scan_options(&s, r);
            } else {
                rc = scan_value(&s, NULL);
            }
            if (rc)
                break;
        } while ((rc = next_elem(&s, '}')) == 1);
        s.depth--;
    }
    if (rc == 0) {
        skip_ws(&s);
        if (s.p != s.end)
            rc = fail(&s, "characters after the JSON object");
    }
out:
    if (rc == -1) {
        *err = s.err ? s.err : "invalid JSON";
        *err_at = (size_t)(s.p - s.base);
    }
    return rc;
}

void sj_request_free(sj_request *r)
{
    free(r->ev);
    r->ev = NULL;
    r->cap = r->n_kept = 0;
}

int sj_parse_event(const char *text, size_t len, sj_event *ev)
{
    sc s = {text, text + len, text, NULL, 0, 0};
    skip_ws(&s);
    if (s.p >= s.end || *s.p != '{' || scan_event(&s, ev))
        return -1;
    skip_ws(&s);
    return s.p == s.end ? 0 : -1;
}

static unsigned hexval(char c)
{
    if (c >= '0' && c <= '9')
        return (unsigned)(c - '0');
    if (c >= 'a' && c <= 'f')
        return (unsigned)(c - 'a' + 10);
    return (unsigned)(c - 'A' + 10);
}

static uint32_t hex4(const char *p)
{
    return (uint32_t)(hexval(p[0]) << 12 | hexval(p[1]) << 8 | hexval(p[2]) << 4 | hexval(p[3]));
}

static size_t put_utf8(uint32_t cp, char *out)
{
    if (cp < 0x80) {
        out[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        out[0] = (char)(0xc0 | (cp >> 6));
        out[1] = (char)(0x80 | (cp & 0x3f));
        return 2;
    }
    if (cp < 0x10000) {
        out[0] = (char)(0xe0 | (cp >> 12));
        out[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
        out[2] = (char)(0x80 | (cp & 0x3f));
        return 3;
    }
    out[0] = (char)(0xf0 | (cp >> 18));
    out[1] = (char)(0x80 | ((cp >> 12) & 0x3f));
    out[2] = (char)(0x80 | ((cp >> 6) & 0x3f));
    out[3] = (char)(0x80 | (cp & 0x3f));
    return 4;
}

size_t sj_unescape(const char *p, size_t n, char *out)
{
    size_t o = 0;
    for (size_t i = 0; i < n;) {
        if (p[i] != '\\' || i + 1 >= n) {
            out[o++] = p[i++];
            continue;
        }
        char e = p[i + 1];
        i += 2;
        switch (e) {
        case 'b': out[o++] = '\b'; break;
        case 'f': out[o++] = '\f'; break;
        case 'n': out[o++] = '\n'; break;
        case 'r': out[o++] = '\r'; break;
        case 't': out[o++] = '\t'; break;
        case 'u': {
            if (i + 4 > n)
                return o;
            uint32_t cp = hex4(p + i);
            i += 4;
            if (cp >= 0xd800 && cp < 0xdc00 && i + 6 <= n && p[i] == '\\' && p[i + 1] == 'u') {
                uint32_t lo = hex4(p + i + 2);
                if (lo >= 0xdc00 && lo < 0xe000) {
                    cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
                    i += 6;
                }
            }
            o += put_utf8(cp, out + o);
            break;
        }
        default: out[o++] = e; break; /* '"', '\\', '/' */
        }
    }
    return o;
}

ferry_err sj_minify(const char *p, size_t n, fy_buf *out)
{
    ferry_err e = fy_buf_reserve(out, n);
    if (e)
        return e;
    char *o = out->data + out->len;
    int in_str = 0;
    for (size_t i = 0; i < n; i++) {
        char c = p[i];
        if (in_str) {
            *o++ = c;
            if (c == '\\' && i + 1 < n)
                *o++ = p[++i];
            else if (c == '"')
                in_str = 0;
        } else if (c != ' ' && c != '\n' && c != '\r' && c != '\t') {
            *o++ = c;
            if (c == '"')
                in_str = 1;
        }
    }
    out->len = (size_t)(o - out->data);
    return FERRY_OK;
}

size_t sj_utf8_len(const char *s, size_t n)
{
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        if (((unsigned char)s[i] & 0xc0) != 0x80)
            k++;
    return k;
}

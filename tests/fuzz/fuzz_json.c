/* fuzz_json.c: libFuzzer target for the JSON side of recording: the event
 * parser (fy_json_parse_event) and the encoder (fy_record_encode), the path
 * every line of ferry-record and of the service takes.
 *
 * The input is the event's JSON text. A parse must succeed with an object or
 * fail with FERRY_EINVAL and a message. An encode must succeed or fail with
 * FERRY_EINVAL / FERRY_ETOOBIG and a message, leaving the buffer as it was.
 * A record it wrote must pass fy_record_check, decode, and its event, written
 * back as JSON (fy_json_emit), must be the event that was encoded (jansson's
 * json_equal: same keys, values and types).
 *
 * Differential: the yajl fast path (jsonfast.c) runs on the same text with
 * the same stamp and insert_id, with and without the clock elements, and
 * must either write exactly the bytes of the Jansson path above or decline
 * (leaving the buffer as it was); writing a record where Jansson's path
 * fails, or other bytes, aborts. */
#include <jansson.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ferry.h"
#include "fy_buf.h"
#include "fy_jsonfast.h"
#include "fy_record.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_NAME "fuzz_json"
#include "fuzz_util.h"

#define PREFIX "prefix bytes the encoder must not touch"
#define NOW_MS 1795937265590
#define GEN_ID "5b0e6a0c-8a53-4c1e-9d4f-2f1e0c9b7a61"

static fy_jsonfast *fast; /* kept across inputs, as a batch keeps it */

/* Both paths with stamp st: the fast path's bytes, when it wrote any, are
 * the Jansson path's. */
static void differential(const uint8_t *data, size_t size, const fy_stamp *st)
{
    fy_buf ref, got;
    fy_buf_init(&ref, 0);
    fy_buf_init(&got, 0);
    if (fy_buf_append(&ref, PREFIX, sizeof PREFIX - 1) || fy_buf_append(&got, PREFIX, sizeof PREFIX - 1))
        die("out of memory");
    json_t *ev = NULL;
    ferry_err e = fy_json_parse_event((const char *)data, size, &ev);
    if (!e)
        e = fy_record_encode_stamped(ev, st, GEN_ID, &ref);
    json_decref(ev);
    int took = fy_jsonfast_encode(&fast, (const char *)data, size, st, GEN_ID, &got);
    if (took && e)
        die("the fast path wrote a record where Jansson's path fails (%d: %s)", e, ferry_last_error());
    if (took && (got.len != ref.len || memcmp(got.data, ref.data, ref.len) != 0))
        die("the fast path wrote %zu bytes that differ from Jansson's %zu", got.len, ref.len);
    if (!took && (got.len != sizeof PREFIX - 1 || memcmp(got.data, PREFIX, got.len) != 0))
        die("the fast path declined but changed the buffer");
    fy_buf_free(&ref);
    fy_buf_free(&got);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const fy_stamp stamps[2] = {
        {.wall_ms = NOW_MS, .mono_ms = -1, .boot_id = ""},
        {.wall_ms = NOW_MS, .mono_ms = 987654321, .boot_id = "0123456789abcdef0123456789abcdef"},
    };
    differential(data, size, &stamps[0]);
    differential(data, size, &stamps[1]);

    json_t *ev = (json_t *)1;
    ferry_err e = fy_json_parse_event((const char *)data, size, &ev);
    if (e) {
        if (e != FERRY_EINVAL || !ferry_last_error()[0] || ev != NULL)
            die("parse failed with code %d (%s), want EINVAL, a message and no object", e, ferry_last_error());
        return 0;
    }
    if (!json_is_object(ev))
        die("the parser returned something else than an object");

    fy_buf out;
    fy_buf_init(&out, 0);
    if (fy_buf_append(&out, PREFIX, sizeof PREFIX - 1))
        die("out of memory");
    e = fy_record_encode(ev, NOW_MS, GEN_ID, &out);
    if (e) {
        if ((e != FERRY_EINVAL && e != FERRY_ETOOBIG) || !ferry_last_error()[0])
            die("encode failed with code %d (%s), want EINVAL or ETOOBIG and a message", e, ferry_last_error());
        if (out.len != sizeof PREFIX - 1 || memcmp(out.data, PREFIX, out.len) != 0)
            die("a failed encode changed the buffer");
        fy_buf_free(&out);
        json_decref(ev);
        return 0;
    }
    if (memcmp(out.data, PREFIX, sizeof PREFIX - 1) != 0)
        die("the encoder changed the bytes before its record");
    const char *rec = out.data + sizeof PREFIX - 1;
    size_t rec_len = out.len - (sizeof PREFIX - 1);
    if (rec_len > FY_MAX_RECORD_BYTES)
        die("encoded record of %zu bytes, over the %u limit", rec_len, FY_MAX_RECORD_BYTES);
    if (fy_record_check(rec, rec_len) != FERRY_OK)
        die("the encoder wrote a record its checker refuses: %s", ferry_last_error());
    fy_record r;
    if (fy_record_decode(rec, rec_len, &r) != FERRY_OK)
        die("the encoder wrote a record its decoder refuses: %s", ferry_last_error());
    if (r.recorded_at_ms != NOW_MS)
        die("recorded_at %lld, want %lld", (long long)r.recorded_at_ms, (long long)NOW_MS);
    const char *want_type = json_string_value(json_object_get(ev, "event_type"));
    if (!want_type || r.event_type_len != strlen(want_type) || memcmp(r.event_type, want_type, r.event_type_len))
        die("event_type changed in the record");

    fy_buf js;
    fy_buf_init(&js, 0);
    if (fy_json_emit(&js, &r.event) != FERRY_OK)
        die("fy_json_emit failed: %s", ferry_last_error());
    json_error_t jerr;
    json_t *back = json_loadb(js.data, js.len, JSON_REJECT_DUPLICATES, &jerr);
    if (!back)
        die("fy_json_emit wrote JSON jansson refuses (%s at column %d): %.*s", jerr.text, jerr.column,
            (int)(js.len > 2000 ? 2000 : js.len), js.data);
    if (!json_equal(ev, back))
        die("the event read back differs from the event encoded: %.*s", (int)(js.len > 2000 ? 2000 : js.len),
            js.data);
    json_decref(back);
    fy_buf_free(&js);
    fy_record_free(&r);
    fy_buf_free(&out);
    json_decref(ev);
    return 0;
}

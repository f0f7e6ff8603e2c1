/* fuzz_record.c: libFuzzer target for the record decoder.
 *
 * Each input is tried twice:
 *   1. as it is: fy_record_decode on arbitrary bytes (header, CRC, size checks);
 *   2. with its CRC recomputed, when it is long enough to hold one: random
 *      bytes almost never carry a matching CRC-32, and without this the
 *      structural walk, msgpack-c and the JSON writer would hardly be reached.
 * A decode must either succeed or fail with FERRY_ECORRUPT / FERRY_EVERSION and
 * a message (never ENOMEM: hostile headers must not reach the allocator). On
 * success the event is written with fy_json_emit, and the text must be JSON
 * that jansson reads back as an object holding the required fields.
 *
 * Built two ways (tests/fuzz/CMakeLists.txt): with clang -fsanitize=fuzzer as
 * the fuzzer, and with any compiler into fuzz_replay, which feeds it every
 * file of the committed corpus as a plain ctest test. */
#include <jansson.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "ferry.h"
#include "fy_buf.h"
#include "fy_record.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_NAME "fuzz_record"
#include "fuzz_util.h"

/* jansson refuses two things that are valid JSON: integers beyond int64 and
 * "\u0000" in object keys. For a second attempt, integers are read as reals
 * and each \u0000 escape becomes \u0001 (escape-aware: "\\u0000" stays). */
static char *mask_nul_escapes(const char *s, size_t n)
{
    char *c = malloc(n + 1);
    if (!c)
        die("out of memory");
    memcpy(c, s, n);
    c[n] = '\0';
    for (size_t i = 0; i + 1 < n; i++) {
        if (c[i] != '\\')
            continue;
        if (c[i + 1] == 'u' && i + 5 < n && memcmp(c + i + 2, "0000", 4) == 0)
            c[i + 5] = '1';
        i++; /* skip the escaped character */
    }
    return c;
}

static void check_json(const char *text, size_t len, int check_fields)
{
    json_error_t err;
    json_t *v = json_loadb(text, len, JSON_ALLOW_NUL, &err);
    if (!v) {
        enum json_error_code code = json_error_code(&err);
        if (code != json_error_numeric_overflow && code != json_error_null_byte_in_key)
            die("fy_json_emit wrote invalid JSON (%s at column %d): %.*s", err.text, err.column,
                (int)(len > 2000 ? 2000 : len), text);
        char *masked = mask_nul_escapes(text, len);
        v = json_loadb(masked, len, JSON_ALLOW_NUL | JSON_DECODE_INT_AS_REAL, &err);
        free(masked);
        if (!v)
            die("fy_json_emit wrote invalid JSON (%s at column %d): %.*s", err.text, err.column,
                (int)(len > 2000 ? 2000 : len), text);
    }
    if (!json_is_object(v))
        die("the event was not written as a JSON object");
    if (check_fields &&
        (!json_is_string(json_object_get(v, "event_type")) || !json_is_string(json_object_get(v, "insert_id")) ||
         !json_is_number(json_object_get(v, "time"))))
        die("required fields missing from the JSON of a decoded record: %.*s", (int)(len > 2000 ? 2000 : len),
            text);
    json_decref(v);
}

static void within(const uint8_t *data, size_t size, const char *p, size_t n, const char *what)
{
    const uint8_t *q = (const uint8_t *)p;
    if (n && (q < data || q > data + size || n > (size_t)(data + size - q)))
        die("%s points outside the input", what);
}

static void try_decode(const uint8_t *data, size_t size)
{
    fy_record r, p;
    ferry_err pe = fy_record_peek_clock(data, size, &p); /* the replayer's quick look */
    if (!pe && p.boot_id)
        within(data, size, p.boot_id, FY_BOOT_ID_LEN, "boot_id (peek)");
    ferry_err e = fy_record_decode(data, size, &r);
    if (!e && (pe || p.recorded_at_ms != r.recorded_at_ms || p.mono_ms != r.mono_ms ||
               !p.boot_id != !r.boot_id || (p.boot_id && memcmp(p.boot_id, r.boot_id, FY_BOOT_ID_LEN))))
        die("fy_record_peek_clock disagrees with fy_record_decode");
    if (e) {
        if (e != FERRY_ECORRUPT && e != FERRY_EVERSION)
            die("decode failed with code %d (%s), want ECORRUPT or EVERSION", e, ferry_last_error());
        if (!ferry_last_error()[0])
            die("decode failed without a message");
        if (fy_record_check(data, size) != e)
            die("fy_record_check disagrees with fy_record_decode");
        return;
    }
    if (r.version != FY_RECORD_VERSION || r.event.type != MSGPACK_OBJECT_MAP || !r.event_type_len ||
        !r.insert_id_len)
        die("decoded record lacks what the decoder guarantees");
    within(data, size, r.event_type, r.event_type_len, "event_type");
    within(data, size, r.insert_id, r.insert_id_len, "insert_id");
    if (r.device_id)
        within(data, size, r.device_id, r.device_id_len, "device_id");
    if (r.boot_id)
        within(data, size, r.boot_id, FY_BOOT_ID_LEN, "boot_id");

    fy_buf out;
    fy_buf_init(&out, 0);
    if (fy_json_emit(&out, &r.event) != FERRY_OK)
        die("fy_json_emit failed: %s", ferry_last_error());
    /* The decoder refuses required fields given twice (JSON readers would
     * keep the last one, the decoder checked the first): found by this target. */
    check_json(out.data, out.len, 1);
    fy_buf_free(&out);
    fy_record_free(&r);
    if (fy_record_check(data, size) != FERRY_OK)
        die("fy_record_check refuses what fy_record_decode accepted");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    try_decode(data, size);
    if (size >= 8 && size <= FY_MAX_RECORD_BYTES + 1) {
        uint8_t *copy = malloc(size);
        if (!copy)
            die("out of memory");
        memcpy(copy, data, size);
        uint32_t crc = (uint32_t)crc32(0L, copy + 7, (uInt)(size - 7));
        copy[3] = (uint8_t)(crc >> 24), copy[4] = (uint8_t)(crc >> 16);
        copy[5] = (uint8_t)(crc >> 8), copy[6] = (uint8_t)crc;
        if (memcmp(copy, data, size) != 0)
            try_decode(copy, size);
        free(copy);
    }
    return 0;
}

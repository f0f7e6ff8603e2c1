/* test_record.c: the record codec (fy_record_encode / fy_record_decode). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include "test_util.h"

#define NOW_MS 1700000000123LL
#define GEN_IID "11111111-2222-4333-8444-555555555555"

/* Encodes ev (modified: insert_id/time filled in) and decodes it again. */
static void encode_decode(json_t *ev, fy_buf *b, fy_record *r)
{
    fy_buf_init(b, 0);
    ferry_err e = fy_record_encode(ev, NOW_MS, GEN_IID, b);
    if (e)
        fail_msg("encode: %d %s", e, ferry_last_error());
    e = fy_record_decode(b->data, b->len, r);
    if (e)
        fail_msg("decode: %d %s", e, ferry_last_error());
}

static json_t *load(const char *text)
{
    json_error_t jerr;
    json_t *v = json_loads(text, JSON_ALLOW_NUL, &jerr);
    if (!v)
        fail_msg("bad test JSON: %s (column %d)", jerr.text, jerr.column);
    return v;
}

static void test_roundtrip_every_type(void **state)
{
    (void)state;
    json_t *ev = load("{\"event_type\":\"Service start\",\"device_id\":\"dev-1\",\"user_id\":\"u\","
                      "\"app_version\":\"1.2.3\",\"session_id\":1700000000000,\"event_id\":7,"
                      "\"event_properties\":{"
                      "\"nil\":null,\"t\":true,\"f\":false,"
                      "\"ints\":[0,1,-1,127,128,-32,-33,255,256,65535,65536,2147483647,2147483648,"
                      "-2147483648,-2147483649,9223372036854775807,-9223372036854775808],"
                      "\"reals\":[1.5,-0.0,0.1,1.0,1e300,5e-324,-2.5e-10,1.7976931348623157e308],"
                      "\"strs\":[\"\",\"ascii\",\"\\u00e9\\u20ac\\ud83d\\ude00\",\"a\\u0000b\","
                      "\"quote\\\" backslash\\\\ ctl\\u0001\\n\"],"
                      "\"arr\":[[],[1,[2,[3,{}]]],{\"k\":[]}],"
                      "\"obj\":{},\"nested\":{\"a\":{\"b\":{\"c\":\"d\"}}}},"
                      "\"user_properties\":{\"plan\":\"pro\"},\"groups\":{\"org\":\"x\"},"
                      "\"group_properties\":{}}");
    /* longer strings and containers use the 8/16-bit length forms */
    json_t *props = json_object_get(ev, "event_properties");
    char s70[71], s300[301];
    memset(s70, 'x', 70), s70[70] = '\0';
    memset(s300, 'y', 300), s300[300] = '\0';
    json_object_set_new(props, "s70", json_string(s70));
    json_object_set_new(props, "s300", json_string(s300));
    json_t *big_arr = json_array(), *big_obj = json_object();
    for (int i = 0; i < 20; i++) {
        char k[16];
        snprintf(k, sizeof k, "k%d", i);
        json_array_append_new(big_arr, json_integer(i * 1000));
        json_object_set_new(big_obj, k, json_integer(-i));
    }
    json_object_set_new(props, "arr20", big_arr);
    json_object_set_new(props, "obj20", big_obj);

    fy_buf b;
    fy_record r;
    encode_decode(ev, &b, &r);

    assert_int_equal(r.version, 1);
    assert_int_equal(r.recorded_at_ms, NOW_MS);
    assert_int_equal(r.time_ms, NOW_MS); /* filled in */
    assert_true(r.event.type == MSGPACK_OBJECT_MAP);
    /* the event map is the (filled-in) event object: types, values, key order */
    if (!tu_mp_equals_json(&r.event, ev))
        fail_msg("decoded event differs from the encoded one");
    assert_int_equal(r.event_type_len, strlen("Service start"));
    assert_memory_equal(r.event_type, "Service start", r.event_type_len);
    assert_int_equal(r.device_id_len, 5);
    assert_memory_equal(r.device_id, "dev-1", 5);

    /* and the JSON written from the record reads back to the same event */
    fy_buf out;
    fy_buf_init(&out, 0);
    assert_int_equal(fy_json_emit(&out, &r.event), FERRY_OK);
    json_t *back = tu_parse_json(out.data, out.len);
    if (!json_equal(back, ev))
        fail_msg("JSON output differs from the event: %.*s", (int)out.len, out.data);
    json_decref(back);
    fy_buf_free(&out);
    fy_record_free(&r);
    fy_buf_free(&b);
    json_decref(ev);
}

static void test_insert_id_and_time_filled_in(void **state)
{
    (void)state;
    fy_buf b;
    fy_record r;
    json_t *ev = load("{\"event_type\":\"t\",\"user_id\":\"u\"}");
    encode_decode(ev, &b, &r);
    assert_int_equal(r.insert_id_len, strlen(GEN_IID));
    assert_memory_equal(r.insert_id, GEN_IID, r.insert_id_len);
    assert_int_equal(r.time_ms, NOW_MS);
    assert_null(r.device_id); /* user_id only */
    assert_string_equal(json_string_value(json_object_get(ev, "insert_id")), GEN_IID);
    fy_record_free(&r);
    fy_buf_free(&b);
    json_decref(ev);

    ev = load("{\"event_type\":\"t\",\"device_id\":\"d\",\"insert_id\":\"mine\",\"time\":0}");
    encode_decode(ev, &b, &r);
    assert_int_equal(r.insert_id_len, 4);
    assert_memory_equal(r.insert_id, "mine", 4);
    assert_int_equal(r.time_ms, 0); /* 0 is a valid time, kept */
    assert_int_equal(r.recorded_at_ms, NOW_MS);
    fy_record_free(&r);
    fy_buf_free(&b);
    json_decref(ev);

    ev = load("{\"event_type\":\"t\",\"device_id\":\"d\",\"time\":1234567890123}");
    encode_decode(ev, &b, &r);
    assert_int_equal(r.time_ms, 1234567890123LL);
    fy_record_free(&r);
    fy_buf_free(&b);
    json_decref(ev);

    /* no insert_id and none generated: refused, not invented */
    ev = load("{\"event_type\":\"t\",\"device_id\":\"d\"}");
    fy_buf_init(&b, 0);
    assert_int_equal(fy_record_encode(ev, NOW_MS, NULL, &b), FERRY_EINVAL);
    assert_error_mentions("insert_id");
    assert_int_equal(b.len, 0);
    fy_buf_free(&b);
    json_decref(ev);
}

static void test_required_fields(void **state)
{
    (void)state;
    char long_iid[FY_MAX_INSERT_ID + 2];
    memset(long_iid, 'a', FY_MAX_INSERT_ID + 1);
    long_iid[FY_MAX_INSERT_ID + 1] = '\0';
    char long_iid_json[FY_MAX_INSERT_ID + 100];
    snprintf(long_iid_json, sizeof long_iid_json, "{\"event_type\":\"t\",\"device_id\":\"d\",\"insert_id\":\"%s\"}",
             long_iid);
    static const struct {
        const char *json;
        const char *field;
    } bad[] = {
        {"{\"device_id\":\"d\"}", "event_type"},
        {"{\"event_type\":\"\",\"device_id\":\"d\"}", "event_type"},
        {"{\"event_type\":5,\"device_id\":\"d\"}", "event_type"},
        {"{\"event_type\":null,\"device_id\":\"d\"}", "event_type"},
        {"{\"event_type\":[\"t\"],\"device_id\":\"d\"}", "event_type"},
        {"{\"event_type\":\"t\"}", "device_id"},
        {"{\"event_type\":\"t\"}", "user_id"},
        {"{\"event_type\":\"t\",\"device_id\":null,\"user_id\":null}", "user_id"},
        {"{\"event_type\":\"t\",\"device_id\":\"\"}", "device_id"},
        {"{\"event_type\":\"t\",\"device_id\":12}", "device_id"},
        {"{\"event_type\":\"t\",\"user_id\":true}", "user_id"},
        {"{\"event_type\":\"t\",\"device_id\":\"d\",\"time\":-1}", "time"},
        {"{\"event_type\":\"t\",\"device_id\":\"d\",\"time\":-9223372036854775808}", "time"},
        {"{\"event_type\":\"t\",\"device_id\":\"d\",\"time\":1.5}", "time"},
        {"{\"event_type\":\"t\",\"device_id\":\"d\",\"time\":1700000000000.0}", "time"},
        {"{\"event_type\":\"t\",\"device_id\":\"d\",\"time\":\"1700000000000\"}", "time"},
        {"{\"event_type\":\"t\",\"device_id\":\"d\",\"time\":null}", "time"},
        {"{\"event_type\":\"t\",\"device_id\":\"d\",\"insert_id\":\"\"}", "insert_id"},
        {"{\"event_type\":\"t\",\"device_id\":\"d\",\"insert_id\":42}", "insert_id"},
        {NULL, "insert_id"}, /* 1025 bytes, filled in below */
        {"{\"event_type\":\"t\",\"device_id\":\"d\",\"event_properties\":[]}", "event_properties"},
        {"{\"event_type\":\"t\",\"device_id\":\"d\",\"event_properties\":\"{}\"}", "event_properties"},
        {"{\"event_type\":\"t\",\"device_id\":\"d\",\"event_properties\":null}", "event_properties"},
        {"{\"event_type\":\"t\",\"device_id\":\"d\",\"event_properties\":3}", "event_properties"},
        {"{\"event_type\":\"t\",\"device_id\":\"d\",\"user_properties\":[1]}", "user_properties"},
        {"{\"event_type\":\"t\",\"device_id\":\"d\",\"groups\":\"g\"}", "groups"},
        {"{\"event_type\":\"t\",\"device_id\":\"d\",\"group_properties\":false}", "group_properties"},
        {"{\"event_type\":\"t\",\"device_id\":\"d\",\"session_id\":\"abc\"}", "session_id"},
        {"{\"event_type\":\"t\",\"device_id\":\"d\",\"event_id\":1.5}", "event_id"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        const char *text = bad[i].json ? bad[i].json : long_iid_json;
        json_t *ev = load(text);
        fy_buf b;
        fy_buf_init(&b, 0);
        assert_int_equal(fy_buf_puts(&b, "prefix"), FERRY_OK);
        ferry_err e = fy_record_encode(ev, NOW_MS, GEN_IID, &b);
        if (e != FERRY_EINVAL)
            fail_msg("case %zu (%.80s): got %d, want FERRY_EINVAL", i, text, e);
        if (!tu_contains(ferry_last_error(), bad[i].field))
            fail_msg("case %zu (%.80s): message \"%s\" does not name %s", i, text, ferry_last_error(),
                     bad[i].field);
        assert_int_equal(b.len, 6); /* output untouched */
        assert_memory_equal(b.data, "prefix", 6);
        fy_buf_free(&b);
        json_decref(ev);
    }

    /* the boundaries that are allowed */
    char ok_iid_json[FY_MAX_INSERT_ID + 100];
    long_iid[FY_MAX_INSERT_ID] = '\0'; /* exactly 1024 bytes */
    snprintf(ok_iid_json, sizeof ok_iid_json, "{\"event_type\":\"t\",\"device_id\":\"d\",\"insert_id\":\"%s\"}",
             long_iid);
    const char *good[] = {
        ok_iid_json,
        "{\"event_type\":\"t\",\"user_id\":\"u\"}",
        "{\"event_type\":\"t\",\"device_id\":null,\"user_id\":\"u\"}",
        "{\"event_type\":\"t\",\"device_id\":\"d\",\"time\":0}",
        "{\"event_type\":\"t\",\"device_id\":\"d\",\"session_id\":-1,\"event_id\":0}",
        "{\"event_type\":\"t\",\"device_id\":\"d\",\"event_properties\":{},\"user_properties\":{}}",
    };
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        json_t *ev = load(good[i]);
        fy_buf b;
        fy_record r;
        encode_decode(ev, &b, &r);
        fy_record_free(&r);
        fy_buf_free(&b);
        json_decref(ev);
    }
}

/* An event whose record is `pad` bytes of padding string plus overhead. */
static json_t *padded_event(size_t pad)
{
    char *s = malloc(pad + 1);
    assert_non_null(s);
    memset(s, 'p', pad);
    s[pad] = '\0';
    json_t *ev = json_pack("{s:s,s:s,s:s,s:I,s:{s:s}}", "event_type", "t", "device_id", "d", "insert_id", "i",
                           "time", (json_int_t)1, "event_properties", "pad", s);
    free(s);
    assert_non_null(ev);
    return ev;
}

static void test_too_big(void **state)
{
    (void)state;
    /* find the padding that makes the record exactly FY_MAX_RECORD_BYTES */
    fy_buf b;
    fy_buf_init(&b, 0);
    json_t *ev = padded_event(1000);
    assert_int_equal(fy_record_encode(ev, NOW_MS, GEN_IID, &b), FERRY_OK);
    json_decref(ev);
    size_t overhead = b.len - 1000; /* same str16 header for 256..65535 bytes */
    size_t pad = FY_MAX_RECORD_BYTES - overhead;

    fy_buf_reset(&b);
    assert_int_equal(fy_buf_puts(&b, "head"), FERRY_OK); /* the limit is per record, not per buffer */
    ev = padded_event(pad);
    assert_int_equal(fy_record_encode(ev, NOW_MS, GEN_IID, &b), FERRY_OK);
    json_decref(ev);
    assert_int_equal(b.len, 4 + FY_MAX_RECORD_BYTES);
    fy_record r;
    assert_int_equal(fy_record_decode(b.data + 4, FY_MAX_RECORD_BYTES, &r), FERRY_OK);
    fy_record_free(&r);

    /* one byte more: refused, and the buffer is exactly as it was */
    size_t len_before = b.len;
    unsigned char *copy = malloc(len_before);
    assert_non_null(copy);
    memcpy(copy, b.data, len_before);
    const size_t pads[] = {pad + 1, pad + 100, 1u << 20};
    for (size_t i = 0; i < sizeof pads / sizeof pads[0]; i++) {
        ev = padded_event(pads[i]);
        assert_int_equal(fy_record_encode(ev, NOW_MS, GEN_IID, &b), FERRY_ETOOBIG);
        assert_error_mentions("65536");
        json_decref(ev);
        assert_int_equal(b.len, len_before);
        assert_memory_equal(b.data, copy, len_before);
        assert_true(b.limit == SIZE_MAX); /* the temporary cap was undone */
    }
    /* the buffer still works afterwards */
    ev = padded_event(10);
    assert_int_equal(fy_record_encode(ev, NOW_MS, GEN_IID, &b), FERRY_OK);
    json_decref(ev);
    assert_int_equal(fy_record_decode(b.data + len_before, b.len - len_before, &r), FERRY_OK);
    fy_record_free(&r);
    free(copy);
    fy_buf_free(&b);

    /* many small fields adding up beyond the limit */
    json_t *many = json_pack("{s:s,s:s}", "event_type", "t", "device_id", "d");
    json_t *props = json_object();
    for (int i = 0; i < 10000; i++) {
        char k[16];
        snprintf(k, sizeof k, "key%05d", i);
        json_object_set_new(props, k, json_integer(i));
    }
    json_object_set_new(many, "event_properties", props);
    fy_buf_init(&b, 0);
    assert_int_equal(fy_record_encode(many, NOW_MS, GEN_IID, &b), FERRY_ETOOBIG);
    assert_int_equal(b.len, 0);
    fy_buf_free(&b);
    json_decref(many);
}

/* An event object nested `levels` deep, the event itself being level 1:
 * levels = 3 gives {"event_type":..,"event_properties":{"a":{}}}. */
static json_t *nested_event(unsigned levels, int arrays)
{
    json_t *ev = json_pack("{s:s,s:s}", "event_type", "t", "device_id", "d");
    if (levels < 2)
        return ev;
    json_t *inner = arrays ? json_array() : json_object();
    json_t *top = json_object();
    json_object_set_new(top, "a", inner);
    for (unsigned l = 3; l < levels; l++) {
        json_t *c = arrays ? json_array() : json_object();
        if (arrays)
            json_array_append_new(inner, c);
        else
            json_object_set_new(inner, "a", c);
        inner = c;
    }
    if (levels == 2) {
        json_decref(top);
        json_object_set_new(ev, "event_properties", json_object());
    } else {
        json_object_set_new(ev, "event_properties", top);
    }
    return ev;
}

static void test_depth_beyond_limit_refused(void **state)
{
    (void)state;
    for (int arrays = 0; arrays < 2; arrays++) {
        const unsigned too_deep[] = {FY_MAX_JSON_DEPTH + 1, FY_MAX_JSON_DEPTH + 2, 200};
        for (size_t i = 0; i < sizeof too_deep / sizeof too_deep[0]; i++) {
            json_t *ev = nested_event(too_deep[i], arrays);
            fy_buf b;
            fy_buf_init(&b, 0);
            assert_int_equal(fy_record_encode(ev, NOW_MS, GEN_IID, &b), FERRY_EINVAL);
            assert_error_mentions("nested");
            assert_int_equal(b.len, 0);
            fy_buf_free(&b);
            json_decref(ev);
        }
    }
}

/* Every event the encoder accepts must decode: the encoder and the decoder
 * must agree on the depth limit (FORMAT.md: 32 levels counting the record
 * array, so the event object may nest FY_MAX_JSON_DEPTH = 31 levels). */
static void test_depth_at_limit_encodes_and_decodes(void **state)
{
    (void)state;
    for (int arrays = 0; arrays < 2; arrays++) {
        for (unsigned levels = FY_MAX_JSON_DEPTH - 2; levels <= FY_MAX_JSON_DEPTH; levels++) {
            json_t *ev = nested_event(levels, arrays);
            fy_buf b;
            fy_buf_init(&b, 0);
            ferry_err e = fy_record_encode(ev, NOW_MS, GEN_IID, &b);
            if (e)
                fail_msg("%u levels of %s: encode refused: %s", levels, arrays ? "arrays" : "objects",
                         ferry_last_error());
            fy_record r;
            e = fy_record_decode(b.data, b.len, &r);
            if (e)
                fail_msg("%u levels of %s: encoded, but the decoder refuses the record: %d %s", levels,
                         arrays ? "arrays" : "objects", e, ferry_last_error());
            fy_record_free(&r);
            fy_buf_free(&b);
            json_decref(ev);
        }
    }
}

static void test_records_append_back_to_back(void **state)
{
    (void)state;
    fy_buf b;
    fy_buf_init(&b, 0);
    size_t ends[5];
    for (int i = 0; i < 5; i++) {
        char text[128];
        snprintf(text, sizeof text, "{\"event_type\":\"e%d\",\"device_id\":\"d\",\"event_properties\":{\"i\":%d}}", i,
                 i);
        tu_encode_json(text, &b);
        ends[i] = b.len;
    }
    for (size_t i = 0, start = 0; i < 5; start = ends[i++]) {
        fy_record r;
        assert_int_equal(fy_record_decode(b.data + start, ends[i] - start, &r), FERRY_OK);
        char want[8];
        snprintf(want, sizeof want, "e%zu", i);
        assert_int_equal(r.event_type_len, strlen(want));
        assert_memory_equal(r.event_type, want, r.event_type_len);
        fy_record_free(&r);
        assert_int_equal(fy_record_check(b.data + start, ends[i] - start), FERRY_OK);
    }
    /* two records together are not one record */
    assert_int_equal(fy_record_decode(b.data, ends[1], &(fy_record){0}), FERRY_ECORRUPT);
    fy_buf_free(&b);
}

/* FORMAT.md, "Byte-level example", in its 4-element form (journal format
 * 1.0: fy_record_encode, no clock readings): exactly these 206 bytes. The
 * 6-element form is checked in test_clock.c. */
static void test_format_md_example(void **state)
{
    (void)state;
    static const unsigned char want[206] = {
        0x94, 0x01, 0xce, 0x26, 0xba, 0xfc, 0x58, 0xcf, 0x00, 0x00, 0x01, 0xa2, 0x26, 0x33, 0xe7, 0xb6,
        0x85, 0xaa, 0x65, 0x76, 0x65, 0x6e, 0x74, 0x5f, 0x74, 0x79, 0x70, 0x65, 0xad, 0x53, 0x65, 0x72,
        0x76, 0x69, 0x63, 0x65, 0x20, 0x73, 0x74, 0x61, 0x72, 0x74, 0xa9, 0x64, 0x65, 0x76, 0x69, 0x63,
        0x65, 0x5f, 0x69, 0x64, 0xd9, 0x20, 0x37, 0x66, 0x33, 0x63, 0x32, 0x61, 0x39, 0x65, 0x34, 0x31,
        0x62, 0x38, 0x34, 0x64, 0x36, 0x66, 0x39, 0x61, 0x30, 0x63, 0x35, 0x65, 0x31, 0x64, 0x32, 0x62,
        0x33, 0x66, 0x34, 0x61, 0x35, 0x63, 0xa9, 0x69, 0x6e, 0x73, 0x65, 0x72, 0x74, 0x5f, 0x69, 0x64,
        0xd9, 0x24, 0x35, 0x62, 0x30, 0x65, 0x36, 0x61, 0x30, 0x63, 0x2d, 0x38, 0x61, 0x35, 0x33, 0x2d,
        0x34, 0x63, 0x31, 0x65, 0x2d, 0x39, 0x64, 0x34, 0x66, 0x2d, 0x32, 0x66, 0x31, 0x65, 0x30, 0x63,
        0x39, 0x62, 0x37, 0x61, 0x36, 0x31, 0xb0, 0x65, 0x76, 0x65, 0x6e, 0x74, 0x5f, 0x70, 0x72, 0x6f,
        0x70, 0x65, 0x72, 0x74, 0x69, 0x65, 0x73, 0x81, 0xa7, 0x73, 0x65, 0x72, 0x76, 0x69, 0x63, 0x65,
        0x82, 0xab, 0x73, 0x65, 0x72, 0x76, 0x69, 0x63, 0x65, 0x4e, 0x61, 0x6d, 0x65, 0xa7, 0x62, 0x61,
        0x63, 0x6b, 0x65, 0x6e, 0x64, 0xa5, 0x61, 0x70, 0x70, 0x49, 0x64, 0xce, 0x00, 0x1c, 0x95, 0xa0,
        0xa4, 0x74, 0x69, 0x6d, 0x65, 0xcf, 0x00, 0x00, 0x01, 0xa2, 0x26, 0x51, 0x6c, 0x00};
    json_t *ev = load("{\"event_type\":\"Service start\",\"device_id\":\"7f3c2a9e41b84d6f9a0c5e1d2b3f4a5c\","
                      "\"insert_id\":\"5b0e6a0c-8a53-4c1e-9d4f-2f1e0c9b7a61\","
                      "\"event_properties\":{\"service\":{\"serviceName\":\"backend\",\"appId\":1873312}},"
                      "\"time\":1795939200000}");
    fy_buf b;
    fy_buf_init(&b, 0);
    assert_int_equal(fy_record_encode(ev, 1795937265590LL, GEN_IID, &b), FERRY_OK);
    assert_int_equal(b.len, sizeof want);
    assert_memory_equal(b.data, want, sizeof want);
    fy_record r;
    assert_int_equal(fy_record_decode(want, sizeof want, &r), FERRY_OK);
    assert_int_equal(r.recorded_at_ms, 1795937265590LL);
    assert_int_equal(r.time_ms, 1795939200000LL);
    fy_record_free(&r);
    fy_buf_free(&b);
    json_decref(ev);
}

static void test_json_parse_event(void **state)
{
    (void)state;
    json_t *v;
    assert_int_equal(fy_json_parse_event("{\"a\":1}", 7, &v), FERRY_OK);
    json_decref(v);
    assert_int_equal(fy_json_parse_event("{\"a\":1", 6, &v), FERRY_EINVAL);
    assert_null(v);
    assert_error_mentions("column");
    assert_int_equal(fy_json_parse_event("[1]", 3, &v), FERRY_EINVAL);
    assert_error_mentions("object");
    assert_int_equal(fy_json_parse_event("{\"a\":1,\"a\":2}", 13, &v), FERRY_EINVAL);
    assert_int_equal(fy_json_parse_event("{\"a\":99999999999999999999}", 26, &v), FERRY_EINVAL);
    assert_error_mentions("64-bit");
    assert_int_equal(fy_json_parse_event("{\"a\":\"\xff\"}", 8, &v), FERRY_EINVAL);
    /* len is honoured: what follows is not read */
    assert_int_equal(fy_json_parse_event("{\"a\":1}garbage", 7, &v), FERRY_OK);
    json_decref(v);
}

static void test_uuid4(void **state)
{
    (void)state;
    enum { N = 1000 };
    static char ids[N][FY_UUID_LEN + 1];
    for (int i = 0; i < N; i++) {
        assert_int_equal(fy_uuid4(ids[i]), FERRY_OK);
        const char *u = ids[i];
        assert_int_equal(strlen(u), 36);
        for (int k = 0; k < 36; k++) {
            if (k == 8 || k == 13 || k == 18 || k == 23)
                assert_int_equal(u[k], '-');
            else
                assert_non_null(strchr("0123456789abcdef", u[k]));
        }
        assert_int_equal(u[14], '4');
        assert_non_null(strchr("89ab", u[19]));
        for (int k = 0; k < i; k++)
            assert_string_not_equal(ids[k], u);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_roundtrip_every_type),
        cmocka_unit_test(test_insert_id_and_time_filled_in),
        cmocka_unit_test(test_required_fields),
        cmocka_unit_test(test_too_big),
        cmocka_unit_test(test_depth_beyond_limit_refused),
        cmocka_unit_test(test_depth_at_limit_encodes_and_decodes),
        cmocka_unit_test(test_records_append_back_to_back),
        cmocka_unit_test(test_format_md_example),
        cmocka_unit_test(test_json_parse_event),
        cmocka_unit_test(test_uuid4),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

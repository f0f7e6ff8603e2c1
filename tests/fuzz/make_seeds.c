/* make_seeds.c: writes the hand-made seed inputs of tests/fuzz/corpus/<target>.
 *
 * record: 
 * valid records produced by the encoder (and a few valid ones packed by hand
 * that the encoder cannot produce: uint64 beyond int64, float32, NaN,
 * invalid UTF-8), plus hostile and damaged ones. Files the fuzzer adds later
 * are named by their SHA-1; these have readable names.
 *
 * json: event texts (valid, refused by the recorder, invalid JSON).
 * capture: captures written by fy_capw (empty, several entries with dead
 * letters, several destinations) and damaged copies of them.
 * response: byte 0 picks the HTTP status, byte 1 the events sent, the rest is
 * the body (fuzz_response.c): Amplitude's documented answers and a proxy's.
 * service: client streams of the --listen protocol (fuzz_service.c).
 *
 *   build/tests/fuzz/fuzz_make_seeds tests/fuzz/corpus/record          (record)
 *   build/tests/fuzz/fuzz_make_seeds --target json tests/fuzz/corpus/json */
#include "fy_capture.h"
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "ferry.h"
#include "fy_buf.h"
#include "fy_record.h"

static const char *outdir;
static int failures;

static void write_seed(const char *name, const void *data, size_t n)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", outdir, name);
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(data, 1, n, f) != n || fclose(f) != 0) {
        fprintf(stderr, "make_seeds: %s: %s\n", path, strerror(errno));
        failures++;
    }
}

static void fix_crc(fy_buf *b)
{
    unsigned char *p = (unsigned char *)b->data;
    uint32_t crc = (uint32_t)crc32(0L, p + 7, (uInt)(b->len - 7));
    p[3] = (unsigned char)(crc >> 24), p[4] = (unsigned char)(crc >> 16);
    p[5] = (unsigned char)(crc >> 8), p[6] = (unsigned char)crc;
}

static void encode(const char *json, fy_buf *b)
{
    json_error_t jerr;
    json_t *ev = json_loads(json, JSON_ALLOW_NUL, &jerr);
    if (!ev) {
        fprintf(stderr, "make_seeds: bad JSON %s: %s\n", json, jerr.text);
        exit(1);
    }
    fy_buf_init(b, 0);
    if (fy_record_encode(ev, 1795937265590, "5b0e6a0c-8a53-4c1e-9d4f-2f1e0c9b7a61", b) != FERRY_OK) {
        fprintf(stderr, "make_seeds: %s: %s\n", json, ferry_last_error());
        exit(1);
    }
    json_decref(ev);
}

static void seed_json(const char *name, const char *json)
{
    fy_buf b;
    encode(json, &b);
    write_seed(name, b.data, b.len);
    fy_buf_free(&b);
}

static void pstr(msgpack_packer *pk, const char *s) { msgpack_pack_str_with_body(pk, s, strlen(s)); }

/* record head (n elements, version v) + recorded_at, then the packer for the rest */
static void head(fy_buf *b, msgpack_packer *pk, unsigned n, unsigned v)
{
    fy_buf_init(b, 0);
    unsigned char h[7] = {(unsigned char)(0x90 | n), (unsigned char)v, 0xce, 0, 0, 0, 0};
    fy_buf_append(b, h, sizeof h);
    msgpack_packer_init(pk, b, fy_buf_msgpack_write);
    msgpack_pack_int64(pk, 1795937265590);
}

/* the required fields of an event map with n_extra more entries to follow */
static void event_head(msgpack_packer *pk, unsigned n_extra)
{
    msgpack_pack_map(pk, 4 + n_extra);
    pstr(pk, "event_type"), pstr(pk, "Service start");
    pstr(pk, "device_id"), pstr(pk, "7f3c2a9e41b84d6f9a0c5e1d2b3f4a5c");
    pstr(pk, "insert_id"), pstr(pk, "5b0e6a0c-8a53-4c1e-9d4f-2f1e0c9b7a61");
    pstr(pk, "time"), msgpack_pack_int64(pk, 1795939200000);
}

/* a valid record whose property "p" is `raw` bytes (CRC fixed) */
static void seed_prop(const char *name, const void *raw, size_t n)
{
    fy_buf b;
    msgpack_packer pk;
    head(&b, &pk, 4, 1);
    event_head(&pk, 1);
    pstr(&pk, "p");
    fy_buf_append(&b, raw, n);
    fix_crc(&b);
    write_seed(name, b.data, b.len);
    fy_buf_free(&b);
}

/* a record whose event (element 3) is `raw` bytes (CRC fixed) */
static void seed_event(const char *name, const void *raw, size_t n)
{
    fy_buf b;
    msgpack_packer pk;
    head(&b, &pk, 4, 1);
    fy_buf_append(&b, raw, n);
    fix_crc(&b);
    write_seed(name, b.data, b.len);
    fy_buf_free(&b);
}

static int record_seeds(void)
{
    /* ---- valid, from the encoder ---- */
    seed_json("valid-minimal", "{\"event_type\":\"t\",\"device_id\":\"d\"}");
    seed_json("valid-user-id-only", "{\"event_type\":\"login\",\"user_id\":\"user@example.com\",\"time\":0}");
    seed_json("valid-format-example",
              "{\"event_type\":\"Service start\",\"device_id\":\"7f3c2a9e41b84d6f9a0c5e1d2b3f4a5c\","
              "\"insert_id\":\"5b0e6a0c-8a53-4c1e-9d4f-2f1e0c9b7a61\",\"time\":1795939200000,"
              "\"event_properties\":{\"service\":{\"serviceName\":\"backend\",\"appId\":1873312}}}");
    seed_json("valid-all-types",
              "{\"event_type\":\"all\",\"device_id\":\"d\",\"user_id\":\"u\",\"session_id\":1700000000000,"
              "\"event_id\":3,\"app_version\":\"1.2.3\",\"event_properties\":{\"nil\":null,\"t\":true,\"f\":false,"
              "\"ints\":[0,-1,127,128,-33,65535,65536,-2147483649,9223372036854775807,-9223372036854775808],"
              "\"reals\":[1.0,-0.0,0.1,1e300,5e-324,-2.5e-10],\"strs\":[\"\",\"x\",\"a\\u0000b\"],"
              "\"arr\":[[],[1,[2,[3]]],{}],\"obj\":{\"a\":{\"b\":{}}}},\"user_properties\":{\"plan\":\"pro\"},"
              "\"groups\":{\"org\":\"acme\"},\"group_properties\":{}}");
    seed_json("valid-escapes",
              "{\"event_type\":\"quote\\\" backslash\\\\ ctl\\u0001\\u001f\\n\\t\",\"device_id\":\"d\","
              "\"event_properties\":{\"k\\\"ey\\u0007\":\"\\u00e9\\u20ac\\ud83d\\ude00\\u2028\"}}");
    seed_json("valid-nested-30",
              "{\"event_type\":\"t\",\"device_id\":\"d\",\"event_properties\":"
              "{\"a\":[[[[[[[[[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]]]]]]]]]}}");
    {
        char big[3000];
        int k = snprintf(big, sizeof big, "{\"event_type\":\"t\",\"device_id\":\"d\",\"event_properties\":{\"s\":\"");
        memset(big + k, 'x', 2000);
        snprintf(big + k + 2000, sizeof big - (size_t)k - 2000, "\",\"arr\":[1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,"
                 "17,18,19,20]}}");
        seed_json("valid-str16-array16", big);
    }

    /* ---- valid, packed by hand ---- */
    fy_buf b;
    msgpack_packer pk;
    head(&b, &pk, 4, 1);
    event_head(&pk, 6);
    pstr(&pk, "u64max"), msgpack_pack_uint64(&pk, UINT64_MAX);
    pstr(&pk, "f32"), msgpack_pack_float(&pk, 0.1f);
    pstr(&pk, "nan"), msgpack_pack_double(&pk, (double)NAN);
    pstr(&pk, "inf"), msgpack_pack_double(&pk, -(double)INFINITY);
    pstr(&pk, "tiny"), msgpack_pack_double(&pk, 5e-324);
    pstr(&pk, "bad\xff" "utf8"), msgpack_pack_str_with_body(&pk, "\xc0\xaf\xed\xa0\x80\xf4\x90\x80\x80\xe2\x82", 11);
    fix_crc(&b);
    write_seed("valid-handpacked-numbers-utf8", b.data, b.len);
    fy_buf_free(&b);

    head(&b, &pk, 5, 1); /* a future minor version's extra element */
    event_head(&pk, 0);
    msgpack_pack_map(&pk, 1), pstr(&pk, "future"), msgpack_pack_true(&pk);
    fix_crc(&b);
    write_seed("valid-5-elements", b.data, b.len);
    fy_buf_free(&b);

    head(&b, &pk, 4, 1); /* NUL inside a key, duplicate keys */
    event_head(&pk, 2);
    msgpack_pack_str_with_body(&pk, "k\0ey", 4), msgpack_pack_nil(&pk);
    pstr(&pk, "event_type"), pstr(&pk, "duplicate");
    fix_crc(&b);
    write_seed("valid-nul-key-duplicate", b.data, b.len);
    fy_buf_free(&b);

    head(&b, &pk, 4, 1); /* a required key twice: the second one null */
    event_head(&pk, 1);
    pstr(&pk, "time"), msgpack_pack_nil(&pk);
    fix_crc(&b);
    write_seed("regress-duplicate-time-key", b.data, b.len);
    fy_buf_free(&b);

    /* ---- hostile headers ---- */
    static const unsigned char arr32[] = {0xdd, 0xff, 0xff, 0xff, 0xff};
    static const unsigned char map32[] = {0xdf, 0xff, 0xff, 0xff, 0xff};
    static const unsigned char str32[] = {0xdb, 0xff, 0xff, 0xff, 0xff, 'a', 'b', 'c'};
    static const unsigned char map16[] = {0xde, 0xff, 0xff, 0xa1, 'a', 0x01};
    write_seed("hostile-array32-4g-raw", arr32, sizeof arr32);
    write_seed("hostile-map32-4g-raw", map32, sizeof map32);
    write_seed("hostile-str32-4g-raw", str32, sizeof str32);
    seed_event("hostile-array32-4g-as-event", arr32, sizeof arr32);
    seed_event("hostile-map32-4g-as-event", map32, sizeof map32);
    seed_prop("hostile-array32-4g-in-event", arr32, sizeof arr32);
    seed_prop("hostile-map32-4g-in-event", map32, sizeof map32);
    seed_prop("hostile-str32-4g-in-event", str32, sizeof str32);
    seed_prop("hostile-map16-65535-in-event", map16, sizeof map16);
    {
        unsigned char nest[64];
        for (int i = 0; i < 30; i++)
            nest[i] = 0x91;
        nest[30] = 0x90; /* 31 containers under the event: depth 33 */
        seed_prop("hostile-nested-33", nest, 31);
        seed_prop("valid-nested-32", nest + 1, 30);
    }

    /* ---- damaged records ---- */
    fy_buf v;
    encode("{\"event_type\":\"Service start\",\"device_id\":\"7f3c2a9e41b84d6f9a0c5e1d2b3f4a5c\","
           "\"event_properties\":{\"service\":{\"serviceName\":\"backend\",\"appId\":1873312},\"ok\":true}}",
           &v);
    write_seed("truncated-header", v.data, 5);
    write_seed("truncated-half", v.data, v.len / 2);
    write_seed("truncated-last-byte", v.data, v.len - 1);
    fy_buf t;
    fy_buf_init(&t, 0);
    fy_buf_append(&t, v.data, v.len / 2);
    fix_crc(&t);
    write_seed("truncated-half-crc-fixed", t.data, t.len);
    t.len = 0;
    fy_buf_append(&t, v.data, v.len - 1);
    fix_crc(&t);
    write_seed("truncated-last-byte-crc-fixed", t.data, t.len);
    t.len = 0;
    fy_buf_append(&t, v.data, v.len);
    fy_buf_putc(&t, 0);
    write_seed("trailing-byte", t.data, t.len);
    fix_crc(&t);
    write_seed("trailing-byte-crc-fixed", t.data, t.len);
    t.len = 0;
    fy_buf_append(&t, v.data, v.len);
    fy_buf_append(&t, v.data, v.len);
    fix_crc(&t);
    write_seed("trailing-second-record-crc-fixed", t.data, t.len);
    t.len = 0;
    fy_buf_append(&t, v.data, v.len);
    t.data[4] ^= 0x01;
    write_seed("bad-crc", t.data, t.len);
    t.data[4] ^= 0x01;
    t.data[1] = 2;
    write_seed("newer-version-2", t.data, t.len);
    t.data[1] = 0x7f;
    write_seed("newer-version-127", t.data, t.len);
    t.data[1] = 0;
    write_seed("version-0", t.data, t.len);
    fy_buf_free(&t);
    fy_buf_free(&v);

    /* ---- forbidden types, each in an otherwise valid record ---- */
    static const unsigned char c1[] = {0xc1};
    static const unsigned char bin8[] = {0xc4, 0x03, 'a', 'b', 'c'};
    static const unsigned char bin32[] = {0xc6, 0xff, 0xff, 0xff, 0xff};
    static const unsigned char fixext1[] = {0xd4, 0x01, 0x00};
    static const unsigned char ext8[] = {0xc7, 0x02, 0x05, 'x', 'y'};
    static const unsigned char timestamp32[] = {0xd6, 0xff, 0x65, 0x00, 0x00, 0x00};
    seed_prop("reserved-c1", c1, sizeof c1);
    write_seed("reserved-c1-raw", c1, sizeof c1);
    seed_prop("bin8", bin8, sizeof bin8);
    seed_prop("bin32-4g", bin32, sizeof bin32);
    seed_prop("fixext1", fixext1, sizeof fixext1);
    seed_prop("ext8", ext8, sizeof ext8);
    seed_prop("timestamp32-ext", timestamp32, sizeof timestamp32);
    static const unsigned char int_key[] = {0x81, 0x01, 0x02};
    seed_prop("map-int-key", int_key, sizeof int_key);

    /* ---- required fields missing ---- */
    head(&b, &pk, 4, 1);
    msgpack_pack_map(&pk, 2);
    pstr(&pk, "device_id"), pstr(&pk, "d");
    pstr(&pk, "time"), msgpack_pack_int64(&pk, 1);
    fix_crc(&b);
    write_seed("missing-event-type-insert-id", b.data, b.len);
    fy_buf_free(&b);
    seed_event("event-not-a-map", "\x92\x01\x02", 3);

    return failures ? 1 : 0;
}

/* ---- json and service ----------------------------------------------------- */

static void seed_text(const char *name, const char *text) { write_seed(name, text, strlen(text)); }

static int json_seeds(void)
{
    seed_text("valid-minimal", "{\"event_type\":\"t\",\"device_id\":\"d\"}");
    seed_text("valid-full",
              "{\"event_type\":\"Service start\",\"device_id\":\"7f3c\",\"user_id\":\"u@example.com\","
              "\"insert_id\":\"5b0e6a0c-8a53-4c1e-9d4f-2f1e0c9b7a61\",\"time\":1795939200000,\"session_id\":1,"
              "\"event_id\":2,\"event_properties\":{\"service\":{\"appId\":1873312,\"r\":[1.5,-0.0,1e300,true,"
              "false,null,\"\\u00e9\\ud83d\\ude00\"]}},\"user_properties\":{\"$set\":{\"plan\":\"pro\"}},"
              "\"groups\":{\"org\":\"acme\"},\"group_properties\":{}}");
    seed_text("valid-big-ints", "{\"event_type\":\"t\",\"user_id\":\"u\",\"time\":0,\"p\":[9223372036854775807,"
              "-9223372036854775808,5e-324]}");
    seed_text("refused-no-ids", "{\"event_type\":\"t\"}");
    seed_text("refused-bad-types", "{\"event_type\":\"t\",\"device_id\":\"d\",\"time\":-1,\"event_properties\":[]}");
    seed_text("refused-insert-id", "{\"event_type\":\"t\",\"device_id\":\"d\",\"insert_id\":\"\"}");
    seed_text("refused-deep", "{\"event_type\":\"t\",\"device_id\":\"d\",\"p\":[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[1]]]]]"
              "]]]]]]]]]]]]]]]]]]]]]]]]]]]]]}");
    seed_text("invalid-duplicate", "{\"event_type\":\"t\",\"event_type\":\"u\",\"device_id\":\"d\"}");
    seed_text("invalid-overflow", "{\"event_type\":\"t\",\"device_id\":\"d\",\"n\":99999999999999999999}");
    seed_text("invalid-nul", "{\"event_type\":\"a\\u0000b\",\"device_id\":\"d\"}");
    seed_text("invalid-array", "[1,2]");
    seed_text("invalid-trailing", "{\"event_type\":\"t\",\"device_id\":\"d\"} x");
    seed_text("invalid-utf8", "{\"event_type\":\"\xff\xfe\",\"device_id\":\"d\"}");
    return failures ? 1 : 0;
}

static int service_seeds(void)
{
    /* byte 0 even: plain; odd: --strict (the catalog) */
    seed_text("events-acks",
              "{\"event_type\":\"t\",\"device_id\":\"d\"}\n#ferry noack\n{\"event_type\":\"u\",\"user_id\":\"x\"}\r\n"
              "#ferry sync  \n#ferry ack\t\n\n  \t\n#ferry bogus\n{\"event_type\":\"t\"}\nnot json\n"
              "{\"event_type\":\"last\",\"device_id\":\"d\"}");
    seed_text("strict-typo", "{\"event_type\":\"Servce start\",\"device_id\":\"d\"}\n"
              "{\"event_type\":\"Service start\",\"device_id\":\"d\"}\n");
    seed_text("control-chars", "{\"event_type\":\"t\",\"device_id\":\"d\",\"\x01\x7f\":1,\"k\":\"\x1b[31m\"}\r\r\n#\n#\r\n");
    seed_text("commands-only", "#ferry sync\n#ferry noack\n#ferry ack\n#ferry sync\n#ferry\n#ferry sync x\n");
    return failures ? 1 : 0;
}

/* ---- response ------------------------------------------------------------- */

/* status index in fuzz_response.c's table: 200=0 400=1 413=2 429=3 500=4 ... */
static void seed_response(const char *name, unsigned char status_idx, unsigned char n_events, const char *body)
{
    fy_buf b;
    fy_buf_init(&b, 0);
    fy_buf_append(&b, &status_idx, 1);
    fy_buf_append(&b, &n_events, 1);
    fy_buf_puts(&b, body);
    write_seed(name, b.data, b.len);
    fy_buf_free(&b);
}

static int response_seeds(void)
{
    seed_response("200-ok", 0, 3, "{\"code\":200,\"events_ingested\":3,\"payload_size_bytes\":50,"
                  "\"server_upload_time\":1396381378123}");
    seed_response("200-portal", 0, 3, "<html><body>Welcome to the hotel wifi</body></html>");
    seed_response("400-invalid-fields", 1, 4, "{\"code\":400,\"error\":\"Request missing required field\","
                  "\"missing_field\":\"api_key\",\"events_with_invalid_fields\":{\"time\":[3,0,5,-1,\"x\"]},"
                  "\"events_with_missing_fields\":{\"event_type\":[3,4]}}");
    seed_response("400-events", 1, 5, "{\"code\":400,\"error\":\"Invalid field values on some events\","
                  "\"events_with_invalid_fields\":{\"time\":[1,3],\"device_id\":[0]},"
                  "\"events_with_missing_fields\":{\"event_type\":[2]},\"events_with_invalid_id_lengths\":"
                  "{\"user_id\":[4]},\"silenced_events\":[1,2]}");
    seed_response("400-api-key", 1, 1, "{\"code\":400,\"error\":\"Invalid API key: abc\"}");
    seed_response("400-nothing-named", 1, 2, "{\"code\":400,\"error\":\"Bad request\"}");
    seed_response("413", 2, 200, "{\"code\":413,\"error\":\"Payload too large\"}");
    seed_response("429", 3, 10, "{\"code\":429,\"error\":\"Too many requests for some devices and users\","
                  "\"eps_threshold\":30,\"throttled_devices\":{\"C8F9E604-F01A-4BD9-95C6-8E5357DF265D\":31},"
                  "\"throttled_users\":{\"datamonster@amplitude.com\":32},\"throttled_events\":[3,4,7],"
                  "\"exceeded_daily_quota_devices\":{\"d2\":500001},\"exceeded_daily_quota_users\":{\"u2\":1}}");
    seed_response("500-html", 4, 1, "<html>Internal Server Error</html>");
    seed_response("503-empty", 6, 1, "");
    seed_response("transport-error", 0xff, 7, "");
    seed_response("415", 8, 1, "unsupported");
    seed_response("200-not-object", 0, 1, "[200]");
    return failures ? 1 : 0;
}

/* ---- capture -------------------------------------------------------------- */

static ferry_err to_buf(void *arg, const void *p, size_t n) { return fy_buf_append(arg, p, n); }

static void cap_str(fy_cap_str *s, const char *p)
{
    s->p = p;
    s->n = strlen(p);
}

/* A capture of n_entries records for n_dests destinations into out. */
static void make_capture(fy_buf *out, size_t n_entries, size_t n_dests)
{
    static const char *const names[] = {"amplitude", "eu", "staging"};
    static const char *const devs[] = {"7f3c2a9e41b84d6f9a0c5e1d2b3f4a5c", "d"};
    fy_cap_str dests[3], devices[2];
    for (size_t i = 0; i < 3; i++)
        cap_str(&dests[i], names[i]);
    for (size_t i = 0; i < 2; i++)
        cap_str(&devices[i], devs[i]);
    fy_cap_header h;
    memset(&h, 0, sizeof h);
    for (unsigned i = 0; i < 16; i++)
        h.journal_id[i] = (unsigned char)(0xa0 + i);
    h.journal_major = 1;
    h.created_ms = 1795937265590;
    h.export_ms = 1795937300000;
    h.count = n_entries;
    h.first_seq = n_entries ? 3 : 0;
    h.last_seq = n_entries ? 3 + 2 * (n_entries - 1) : 0;
    h.recorded = 10;
    h.evicted = 1;
    cap_str(&h.producer, "ferry-journal 0.3.0");
    cap_str(&h.filter, "{\"pending\":false}");
    h.n_dests = n_dests;
    h.dests = dests;
    h.n_devices = 2;
    h.devices = devices;
    /* Capture 1.1: two eviction gaps when there are several destinations
     * (one with an identity, one shared row without). */
    fy_cap_gap gaps[2];
    memset(gaps, 0, sizeof gaps);
    for (size_t i = 0; i < 2; i++) {
        gaps[i].dest = dests[i];
        memcpy(gaps[i].journal_id, h.journal_id, 16);
        gaps[i].first_seq = 1;
        gaps[i].last_seq = 2 + i;
        gaps[i].count = 2;
        gaps[i].first_time = gaps[i].first_recorded = 1795937265590;
        gaps[i].last_time = gaps[i].last_recorded = gaps[i].at_ms = 1795937266000;
    }
    gaps[0].has_device = gaps[0].has_user = 1;
    gaps[0].device_id = devices[0];
    cap_str(&gaps[0].user_id, "u-1");
    if (n_dests > 1) {
        h.n_gaps = 2;
        h.gaps = gaps;
    }
    fy_buf_init(out, 0);
    fy_capw w;
    ferry_err e = fy_capw_begin(&w, &h, to_buf, out);
    for (size_t i = 0; i < n_entries && !e; i++) {
        fy_buf rec;
        char json[160];
        snprintf(json, sizeof json, "{\"event_type\":\"e%zu\",\"device_id\":\"%s\",\"event_properties\":{\"i\":%zu}}",
                 i, devs[i % 2], i);
        encode(json, &rec);
        fy_cap_state st[3];
        memset(st, 0, sizeof st);
        for (size_t d = 0; d < n_dests; d++) {
            st[d].state = (unsigned)((i + d) % 3);
            if (st[d].state == FY_CAP_DEAD) {
                st[d].status = 400;
                st[d].at_ms = 1795937270000;
                cap_str(&st[d].reason, "invalid field: time");
            }
        }
        e = fy_capw_entry(&w, 3 + 2 * i, i % 2 ? FY_CAP_FLAG_STORED : 0, st, rec.data, rec.len);
        fy_buf_free(&rec);
    }
    if (!e)
        e = fy_capw_end(&w);
    fy_capw_free(&w);
    if (e) {
        fprintf(stderr, "make_seeds: capture: %s\n", ferry_last_error());
        exit(1);
    }
}

static int capture_seeds(void)
{
    fy_buf c;
    make_capture(&c, 0, 1);
    write_seed("valid-empty", c.data, c.len);
    fy_buf_free(&c);
    make_capture(&c, 4, 3);
    write_seed("valid-4-entries-3-dests", c.data, c.len);
    /* damaged copies: truncated, a flipped byte in an entry, an entry's tag,
     * appended bytes, a newer major version */
    write_seed("truncated", c.data, c.len - 40);
    size_t hdr_end = 16 + (size_t)(((unsigned char)c.data[12] << 24) | ((unsigned char)c.data[13] << 16) |
                                   ((unsigned char)c.data[14] << 8) | (unsigned char)c.data[15]) + 32;
    c.data[hdr_end + 30] ^= 0x40;
    write_seed("flipped-entry-byte", c.data, c.len);
    c.data[hdr_end + 30] ^= 0x40;
    c.data[hdr_end] = 'X';
    write_seed("damaged-tag", c.data, c.len);
    c.data[hdr_end] = 'R';
    fy_buf_puts(&c, "appended");
    write_seed("appended", c.data, c.len);
    c.data[9] = 2;
    write_seed("major-2", c.data, c.len);
    fy_buf_free(&c);
    make_capture(&c, 2, 1);
    write_seed("valid-2-entries", c.data, c.len);
    fy_buf_free(&c);
    return failures ? 1 : 0;
}

int main(int argc, char **argv)
{
    const char *target = "record";
    if (argc == 4 && !strcmp(argv[1], "--target")) {
        target = argv[2];
        argv += 2;
        argc -= 2;
    }
    if (argc != 2) {
        fprintf(stderr, "usage: %s [--target record|json|capture|response|service] OUTPUT_DIR\n", argv[0]);
        return 2;
    }
    outdir = argv[1];
    if (!strcmp(target, "record"))
        return record_seeds();
    if (!strcmp(target, "json"))
        return json_seeds();
    if (!strcmp(target, "capture"))
        return capture_seeds();
    if (!strcmp(target, "response"))
        return response_seeds();
    if (!strcmp(target, "service"))
        return service_seeds();
    fprintf(stderr, "%s: unknown target %s\n", argv[0], target);
    return 2;
}

/* test_hostile.c: damaged and hostile records. Every one must be refused
 * with FERRY_ECORRUPT (FERRY_EVERSION for a newer version) and a message,
 * never with a large allocation: main() caps the address space at 512 MiB
 * (except under ASan, which aborts on huge allocations by itself), so a
 * header that reached msgpack-c's allocator would show up as FERRY_ENOMEM. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include "test_util.h"

static int address_space_capped;

typedef enum { RAW, FRAMED_EVENT, FRAMED_PROP } framing;

/* Builds a test input: RAW bytes as given; FRAMED_EVENT: a record with a
 * valid CRC whose element 3 (the event) is `bytes`; FRAMED_PROP: a record
 * with a valid CRC whose event is complete and valid except that one more
 * entry "p" has the value `bytes`. */
static void build(fy_buf *b, framing f, const void *bytes, size_t n)
{
    fy_buf_init(b, 0);
    if (f == RAW) {
        assert_int_equal(fy_buf_append(b, bytes, n), FERRY_OK);
        return;
    }
    tu_record_head(b, 4, FY_RECORD_VERSION);
    if (f == FRAMED_PROP) {
        msgpack_packer pk;
        msgpack_packer_init(&pk, b, fy_buf_msgpack_write);
        tu_event_head(&pk, 1);
        tu_pack_str(&pk, "p");
    }
    assert_int_equal(fy_buf_append(b, bytes, n), FERRY_OK);
    tu_fix_crc(b->data, b->len);
}

static void expect_refused(const void *data, size_t len, ferry_err want, const char *what, const char *keyword)
{
    fy_record r;
    ferry_err e = fy_record_decode(data, len, &r);
    if (e == FERRY_OK) {
        fy_record_free(&r);
        fail_msg("%s: accepted", what);
    }
    if (e != want)
        fail_msg("%s: got %d (%s), want %d", what, e, ferry_last_error(), want);
    if (!ferry_last_error()[0])
        fail_msg("%s: no message", what);
    if (keyword && !tu_contains(ferry_last_error(), keyword))
        fail_msg("%s: message \"%s\" does not mention \"%s\"", what, ferry_last_error(), keyword);
    /* fy_record_check is the same check */
    assert_int_equal(fy_record_check(data, len), want);
}

static void expect_accepted(const void *data, size_t len, const char *what)
{
    fy_record r;
    ferry_err e = fy_record_decode(data, len, &r);
    if (e)
        fail_msg("%s: refused: %d %s", what, e, ferry_last_error());
    fy_record_free(&r);
}

/* A valid record with a bit of everything in it. */
static void valid_record(fy_buf *b)
{
    fy_buf_init(b, 0);
    tu_encode_json("{\"event_type\":\"Service start\",\"device_id\":\"7f3c2a9e41b84d6f9a0c5e1d2b3f4a5c\","
                   "\"user_id\":\"user@example.com\",\"session_id\":1700000000000,\"app_version\":\"2.0.1\","
                   "\"event_properties\":{\"service\":{\"serviceName\":\"backend\",\"appId\":1873312},"
                   "\"ratio\":0.25,\"ok\":true,\"none\":null,\"list\":[1,-2,\"three\",[]],\"neg\":-40000},"
                   "\"user_properties\":{\"plan\":\"pro\"}}",
                   b);
}

static void test_allocation_canary(void **state)
{
    (void)state;
    /* Shows that this program would notice a large allocation: msgpack-c fed
     * directly with a hostile header fails to allocate under the cap. */
    if (!address_space_capped)
        skip();
    static const unsigned char hostile[] = {0xdd, 0x10, 0x00, 0x00, 0x00};
    msgpack_unpacked up;
    msgpack_unpacked_init(&up);
    size_t off = 0;
    msgpack_unpack_return rc = msgpack_unpack_next(&up, (const char *)hostile, sizeof hostile, &off);
    msgpack_unpacked_destroy(&up);
    assert_int_equal(rc, MSGPACK_UNPACK_NOMEM_ERROR);
}

static void test_hostile_headers(void **state)
{
    (void)state;
    static const unsigned char arr32[] = {0xdd, 0xff, 0xff, 0xff, 0xff};
    static const unsigned char map32[] = {0xdf, 0xff, 0xff, 0xff, 0xff};
    static const unsigned char arr32_small[] = {0xdd, 0x00, 0x10, 0x00, 0x00, 0xc0, 0xc0};
    static const unsigned char map32_small[] = {0xdf, 0x01, 0x00, 0x00, 0x00, 0xa1, 'a', 0xc0};
    static const unsigned char arr16[] = {0xdc, 0xff, 0xff, 0x01};
    static const unsigned char map16[] = {0xde, 0xff, 0xff, 0xa1, 'a', 0x01};
    static const unsigned char fixmap[] = {0x8f, 0xa1, 'a', 0x01};
    static const unsigned char fixarr[] = {0x9f, 0x01, 0x02};
    static const unsigned char str32[] = {0xdb, 0xff, 0xff, 0xff, 0xff, 'a', 'b', 'c'};
    static const unsigned char str16[] = {0xda, 0xff, 0xff, 'a', 'b', 'c'};
    static const unsigned char str8[] = {0xd9, 0xff, 'a', 'b', 'c'};
    static const unsigned char fixstr[] = {0xbf, 'a', 'b', 'c'};
    static const unsigned char str32_hdr_cut[] = {0xdb, 0xff, 0xff};
    static const unsigned char arr32_hdr_cut[] = {0xdd, 0xff};
    static const unsigned char map16_hdr_cut[] = {0xde};
    static const unsigned char u64_cut[] = {0xcf, 0x00, 0x00};
    static const unsigned char f64_cut[] = {0xcb, 0x3f};
    static const struct {
        const char *name;
        const unsigned char *p;
        size_t n;
    } vals[] = {
        {"array32 of 4G elements", arr32, sizeof arr32},
        {"map32 of 4G entries", map32, sizeof map32},
        {"array32 of 1M elements", arr32_small, sizeof arr32_small},
        {"map32 of 16M entries", map32_small, sizeof map32_small},
        {"array16 of 65535", arr16, sizeof arr16},
        {"map16 of 65535", map16, sizeof map16},
        {"fixmap of 15, 1 present", fixmap, sizeof fixmap},
        {"fixarray of 15, 2 present", fixarr, sizeof fixarr},
        {"str32 claiming 4 GiB", str32, sizeof str32},
        {"str16 claiming 64 KiB", str16, sizeof str16},
        {"str8 claiming 255", str8, sizeof str8},
        {"fixstr claiming 31", fixstr, sizeof fixstr},
        {"str32 length cut", str32_hdr_cut, sizeof str32_hdr_cut},
        {"array32 length cut", arr32_hdr_cut, sizeof arr32_hdr_cut},
        {"map16 length cut", map16_hdr_cut, sizeof map16_hdr_cut},
        {"uint64 cut", u64_cut, sizeof u64_cut},
        {"float64 cut", f64_cut, sizeof f64_cut},
    };
    for (size_t i = 0; i < sizeof vals / sizeof vals[0]; i++) {
        for (int f = RAW; f <= FRAMED_PROP; f++) {
            fy_buf b;
            char what[128];
            snprintf(what, sizeof what, "%s (%s)", vals[i].name,
                     f == RAW ? "raw" : f == FRAMED_EVENT ? "as the event" : "as a property");
            build(&b, (framing)f, vals[i].p, vals[i].n);
            expect_refused(b.data, b.len, FERRY_ECORRUPT, what, "corrupt");
            fy_buf_free(&b);
        }
    }

    /* a hostile length on a required field and on a key */
    fy_buf b;
    fy_buf_init(&b, 0);
    tu_record_head(&b, 4, FY_RECORD_VERSION);
    static const unsigned char ev_hostile_type[] = {0x84, 0xaa, 'e', 'v', 'e', 'n', 't', '_', 't', 'y', 'p', 'e',
                                                    0xdb, 0xff, 0xff, 0xff, 0xff, 'x'};
    assert_int_equal(fy_buf_append(&b, ev_hostile_type, sizeof ev_hostile_type), FERRY_OK);
    tu_fix_crc(b.data, b.len);
    expect_refused(b.data, b.len, FERRY_ECORRUPT, "event_type claiming 4 GiB", "corrupt");
    fy_buf_free(&b);

    fy_buf_init(&b, 0);
    tu_record_head(&b, 4, FY_RECORD_VERSION);
    static const unsigned char ev_hostile_key[] = {0x81, 0xdb, 0x7f, 0xff, 0xff, 0xff, 'k', 0x01};
    assert_int_equal(fy_buf_append(&b, ev_hostile_key, sizeof ev_hostile_key), FERRY_OK);
    tu_fix_crc(b.data, b.len);
    expect_refused(b.data, b.len, FERRY_ECORRUPT, "key claiming 2 GiB", "corrupt");
    fy_buf_free(&b);
}

/* n nested containers: n-1 one-element arrays (or maps) around an empty one */
static void nest(unsigned char *out, size_t n, int maps, size_t *len)
{
    size_t k = 0;
    for (size_t i = 0; i + 1 < n; i++) {
        if (maps) {
            out[k++] = 0x81;
            out[k++] = 0xa1;
            out[k++] = 'a';
        } else {
            out[k++] = 0x91;
        }
    }
    out[k++] = maps ? 0x80 : 0x90;
    *len = k;
}

static void test_nesting_too_deep(void **state)
{
    (void)state;
    static unsigned char buf[3 * 2000];
    /* depth counts the record array (1) and the event map (2), so a property
     * holding n nested containers reaches depth 2 + n */
    const size_t depths[] = {33, 34, 64, 1000, 2000};
    for (int maps = 0; maps < 2; maps++) {
        for (size_t i = 0; i < sizeof depths / sizeof depths[0]; i++) {
            size_t len;
            nest(buf, depths[i] - 2, maps, &len);
            fy_buf b;
            char what[64];
            snprintf(what, sizeof what, "%zu levels of %s", depths[i], maps ? "maps" : "arrays");
            build(&b, FRAMED_PROP, buf, len);
            expect_refused(b.data, b.len, FERRY_ECORRUPT, what, "nested");
            fy_buf_free(&b);
            /* as bare bytes too */
            nest(buf, depths[i], maps, &len);
            expect_refused(buf, len, FERRY_ECORRUPT, what, "corrupt");
        }
    }
}

/* FORMAT.md: "nested at most 32 levels counting the record array", and
 * msgpack-c itself decodes 32 levels: a 32-level record is valid. */
static void test_nesting_32_levels_accepted(void **state)
{
    (void)state;
    unsigned char buf[200];
    for (int maps = 0; maps < 2; maps++) {
        size_t len;
        nest(buf, 30, maps, &len); /* 2 + 30 = 32 levels */
        fy_buf b;
        build(&b, FRAMED_PROP, buf, len);
        expect_accepted(b.data, b.len, maps ? "32 levels of maps" : "32 levels of arrays");
        fy_buf_free(&b);
    }
}

static void test_truncated(void **state)
{
    (void)state;
    fy_buf v;
    valid_record(&v);
    unsigned char *copy = malloc(v.len);
    assert_non_null(copy);
    for (size_t n = 0; n < v.len; n++) {
        char what[64];
        snprintf(what, sizeof what, "first %zu of %zu bytes", n, v.len);
        expect_refused(v.data, n, FERRY_ECORRUPT, what, "corrupt");
        /* with the CRC recomputed, so that the structural walk is what refuses it */
        if (n >= 8) {
            memcpy(copy, v.data, n);
            tu_fix_crc(copy, n);
            snprintf(what, sizeof what, "first %zu of %zu bytes, CRC fixed", n, v.len);
            expect_refused(copy, n, FERRY_ECORRUPT, what, "corrupt");
        }
    }
    free(copy);
    fy_buf_free(&v);
}

static void test_trailing_bytes(void **state)
{
    (void)state;
    fy_buf v;
    valid_record(&v);
    size_t len = v.len;
    static const unsigned char tails[][3] = {{0x00}, {0xc0}, {0xc1}, {0x01, 0x02, 0x03}};
    static const size_t tail_len[] = {1, 1, 1, 3};
    for (size_t i = 0; i < 4; i++) {
        v.len = len;
        assert_int_equal(fy_buf_append(&v, tails[i], tail_len[i]), FERRY_OK);
        expect_refused(v.data, v.len, FERRY_ECORRUPT, "trailing bytes, stale CRC", "checksum");
        tu_fix_crc(v.data, v.len);
        expect_refused(v.data, v.len, FERRY_ECORRUPT, "trailing bytes, CRC fixed", "trailing");
    }
    /* a whole second record after the first */
    v.len = len;
    fy_buf second;
    valid_record(&second);
    assert_int_equal(fy_buf_append(&v, second.data, second.len), FERRY_OK);
    tu_fix_crc(v.data, v.len);
    expect_refused(v.data, v.len, FERRY_ECORRUPT, "two records, CRC fixed", "trailing");
    fy_buf_free(&second);
    fy_buf_free(&v);
}

static void test_forbidden_types(void **state)
{
    (void)state;
    static const struct {
        const char *name;
        unsigned char p[24];
        size_t n;
        const char *keyword;
    } vals[] = {
        {"0xc1", {0xc1}, 1, "0xc1"},
        {"0xc1 in an array", {0x92, 0x01, 0xc1}, 3, "0xc1"},
        {"bin8", {0xc4, 0x03, 'a', 'b', 'c'}, 5, "binary"},
        {"bin16", {0xc5, 0x00, 0x01, 'a'}, 4, "binary"},
        {"bin32", {0xc6, 0x00, 0x00, 0x00, 0x01, 'a'}, 6, "binary"},
        {"bin8 empty", {0xc4, 0x00}, 2, "binary"},
        {"bin32 claiming 4 GiB", {0xc6, 0xff, 0xff, 0xff, 0xff}, 5, "binary"},
        {"fixext1", {0xd4, 0x01, 0x00}, 3, "extension"},
        {"fixext2", {0xd5, 0x01, 0x00, 0x00}, 4, "extension"},
        {"fixext16", {0xd8, 0x01, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}, 18, "extension"},
        {"timestamp32 ext -1", {0xd6, 0xff, 0x65, 0x00, 0x00, 0x00}, 6, "extension"},
        {"ext8", {0xc7, 0x01, 0x05, 'x'}, 4, "extension"},
        {"ext16", {0xc8, 0x00, 0x01, 0x05, 'x'}, 5, "extension"},
        {"ext32 claiming 4 GiB", {0xc9, 0xff, 0xff, 0xff, 0xff, 0x05}, 6, "extension"},
    };
    for (size_t i = 0; i < sizeof vals / sizeof vals[0]; i++) {
        for (int f = RAW; f <= FRAMED_PROP; f++) {
            fy_buf b;
            char what[96];
            snprintf(what, sizeof what, "%s (%s)", vals[i].name,
                     f == RAW ? "raw" : f == FRAMED_EVENT ? "as the event" : "as a property");
            build(&b, (framing)f, vals[i].p, vals[i].n);
            expect_refused(b.data, b.len, FERRY_ECORRUPT, what, f == RAW ? "corrupt" : vals[i].keyword);
            fy_buf_free(&b);
        }
    }
    /* a map key that is not a string */
    static const unsigned char int_key[] = {0x81, 0x01, 0x02};
    static const unsigned char bin_key[] = {0x81, 0xc4, 0x01, 'k', 0x02};
    static const unsigned char nil_key[] = {0x81, 0xc0, 0x02};
    fy_buf b;
    build(&b, FRAMED_PROP, int_key, sizeof int_key);
    expect_refused(b.data, b.len, FERRY_ECORRUPT, "integer key", "not a string");
    fy_buf_free(&b);
    build(&b, FRAMED_PROP, bin_key, sizeof bin_key);
    expect_refused(b.data, b.len, FERRY_ECORRUPT, "bin key", "not a string");
    fy_buf_free(&b);
    build(&b, FRAMED_PROP, nil_key, sizeof nil_key);
    expect_refused(b.data, b.len, FERRY_ECORRUPT, "nil key", "not a string");
    fy_buf_free(&b);
    /* 0xc1 in place of recorded_at */
    fy_buf_init(&b, 0);
    tu_record_head(&b, 4, FY_RECORD_VERSION);
    b.data[7] = (char)0xc1;
    msgpack_packer pk;
    msgpack_packer_init(&pk, &b, fy_buf_msgpack_write);
    tu_event_head(&pk, 0);
    tu_fix_crc(b.data, b.len);
    expect_refused(b.data, b.len, FERRY_ECORRUPT, "0xc1 as recorded_at", "0xc1");
    fy_buf_free(&b);
}

static void test_header_and_crc(void **state)
{
    (void)state;
    fy_buf v;
    valid_record(&v);
    unsigned char *r = (unsigned char *)v.data;
    expect_accepted(r, v.len, "the valid record");

    /* bad CRC: each CRC byte changed, and the CRC of an empty input */
    for (size_t i = 3; i < 7; i++) {
        r[i] ^= 0x5a;
        expect_refused(r, v.len, FERRY_ECORRUPT, "CRC byte changed", "checksum");
        r[i] ^= 0x5a;
    }
    /* CRC not in the 5-byte uint32 form */
    r[2] = 0xd2;
    expect_refused(r, v.len, FERRY_ECORRUPT, "CRC as int32", "checksum");
    r[2] = 0xce;

    /* versions: newer ones are EVERSION, malformed ones ECORRUPT */
    const unsigned char newer[] = {2, 3, 0x10, 0x7f};
    for (size_t i = 0; i < sizeof newer; i++) {
        r[1] = newer[i];
        tu_fix_crc(r, v.len);
        expect_refused(r, v.len, FERRY_EVERSION, "newer version byte", "version");
    }
    const unsigned char bad_version[] = {0x00, 0x80, 0xcc, 0xc0, 0xff, 0xe0};
    for (size_t i = 0; i < sizeof bad_version; i++) {
        r[1] = bad_version[i];
        expect_refused(r, v.len, FERRY_ECORRUPT, "malformed version byte", "corrupt");
    }
    r[1] = FY_RECORD_VERSION;

    /* not a fixarray */
    const unsigned char bad_head[] = {0x84, 0xdc, 0x00, 0xc0, 0xa4};
    for (size_t i = 0; i < sizeof bad_head; i++) {
        unsigned char keep = r[0];
        r[0] = bad_head[i];
        expect_refused(r, v.len, FERRY_ECORRUPT, "not a fixarray", "corrupt");
        r[0] = keep;
    }
    /* short inputs */
    for (size_t n = 0; n < 8; n++)
        expect_refused(r, n, FERRY_ECORRUPT, "shorter than a header", "corrupt");
    fy_buf_free(&v);

    /* larger than FY_MAX_RECORD_BYTES, even with a valid CRC and layout */
    fy_buf big;
    fy_buf_init(&big, 0);
    tu_record_head(&big, 4, FY_RECORD_VERSION);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &big, fy_buf_msgpack_write);
    tu_event_head(&pk, 1);
    tu_pack_str(&pk, "p");
    size_t pad = FY_MAX_RECORD_BYTES + 10 - big.len;
    char *s = calloc(1, pad);
    assert_non_null(s);
    memset(s, 'x', pad);
    assert_int_equal(msgpack_pack_str_with_body(&pk, s, pad), 0);
    free(s);
    tu_fix_crc(big.data, big.len);
    assert_true(big.len > FY_MAX_RECORD_BYTES);
    expect_refused(big.data, big.len, FERRY_ECORRUPT, "record over the maximum size", "maximum");
    fy_buf_free(&big);
}

static void test_required_fields_in_records(void **state)
{
    (void)state;
    /* each case: the event map bytes, packed by hand */
    fy_buf b;
    msgpack_packer pk;
    struct {
        const char *name;
        int variant;
    } cases[] = {
        {"no event_type", 0},  {"empty event_type", 1}, {"event_type not a string", 2},
        {"no insert_id", 3},   {"empty insert_id", 4},  {"no time", 5},
        {"time a string", 6},  {"time a double", 7},    {"event is an array", 8},
        {"event is nil", 9},   {"3 elements", 10},      {"recorded_at a string", 11},
        {"recorded_at a double", 12}, {"version as uint8", 13},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        int v = cases[i].variant;
        fy_buf_init(&b, 0);
        tu_record_head(&b, v == 10 ? 3 : 4, FY_RECORD_VERSION);
        msgpack_packer_init(&pk, &b, fy_buf_msgpack_write);
        if (v == 11 || v == 12) {
            b.len--; /* replace recorded_at */
            if (v == 11)
                tu_pack_str(&pk, "yesterday");
            else
                assert_int_equal(msgpack_pack_double(&pk, 1.0), 0);
        }
        if (v == 13)
            b.data[1] = (char)0xcc; /* the version in the uint8 form is not the record layout */
        if (v == 8) {
            assert_int_equal(msgpack_pack_array(&pk, 0), 0);
        } else if (v == 9) {
            assert_int_equal(msgpack_pack_nil(&pk), 0);
        } else if (v == 10) {
            b.len--; /* 3 elements: version, CRC, event */
            tu_event_head(&pk, 0);
        } else if (v <= 7) {
            assert_int_equal(msgpack_pack_map(&pk, 4), 0);
            tu_pack_str(&pk, "device_id"), tu_pack_str(&pk, "d");
            tu_pack_str(&pk, v == 0 ? "event_typo" : "event_type");
            if (v == 1)
                tu_pack_str(&pk, "");
            else if (v == 2)
                assert_int_equal(msgpack_pack_int64(&pk, 5), 0);
            else
                tu_pack_str(&pk, "t");
            tu_pack_str(&pk, v == 3 ? "insert_ix" : "insert_id");
            tu_pack_str(&pk, v == 4 ? "" : "i");
            tu_pack_str(&pk, v == 5 ? "tim" : "time");
            if (v == 6)
                tu_pack_str(&pk, "1");
            else if (v == 7)
                assert_int_equal(msgpack_pack_double(&pk, 1.0), 0);
            else
                assert_int_equal(msgpack_pack_int64(&pk, 1), 0);
        } else {
            tu_event_head(&pk, 0);
        }
        tu_fix_crc(b.data, b.len);
        expect_refused(b.data, b.len, FERRY_ECORRUPT, cases[i].name, "corrupt");
        fy_buf_free(&b);
    }
}

/* The decoder checks the first occurrence of a required key; JSON readers
 * (jansson, the destination) keep the last one. A record carrying a required
 * key twice would pass the check and still reach the destination without a
 * valid value, so it must be refused. (Found by fuzz_record.) */
static void test_duplicate_required_keys_refused(void **state)
{
    (void)state;
    const char *keys[] = {"event_type", "insert_id", "time"};
    for (size_t i = 0; i < 3; i++) {
        fy_buf b;
        fy_buf_init(&b, 0);
        tu_record_head(&b, 4, FY_RECORD_VERSION);
        msgpack_packer pk;
        msgpack_packer_init(&pk, &b, fy_buf_msgpack_write);
        tu_event_head(&pk, 1);
        tu_pack_str(&pk, keys[i]);
        assert_int_equal(msgpack_pack_nil(&pk), 0);
        tu_fix_crc(b.data, b.len);
        char what[64];
        snprintf(what, sizeof what, "\"%s\" twice, the second null", keys[i]);
        expect_refused(b.data, b.len, FERRY_ECORRUPT, what, "corrupt");
        fy_buf_free(&b);
    }
}

static void test_future_minor_elements_ignored(void **state)
{
    (void)state;
    /* FORMAT.md: elements 6... are reserved for later minor versions and
     * ignored; elements 4 and 5 (format 1.1) of other types than the ones
     * 1.1 defines are ignored too, as a 1.0 reader does */
    fy_buf b;
    fy_buf_init(&b, 0);
    tu_record_head(&b, 6, FY_RECORD_VERSION);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &b, fy_buf_msgpack_write);
    tu_event_head(&pk, 0);
    tu_pack_str(&pk, "future");
    assert_int_equal(msgpack_pack_map(&pk, 1), 0);
    tu_pack_str(&pk, "x"), assert_int_equal(msgpack_pack_int64(&pk, -5), 0);
    tu_fix_crc(b.data, b.len);
    fy_record r;
    assert_int_equal(fy_record_decode(b.data, b.len, &r), FERRY_OK);
    assert_int_equal(r.event_type_len, 1);
    assert_memory_equal(r.event_type, "t", 1);
    assert_int_equal(r.mono_ms, -1);
    assert_null(r.boot_id);
    fy_record_free(&r);
    fy_buf_free(&b);
}

/* Changing any single byte of a valid record is detected: bytes 0-2 are the
 * fixed header (any change breaks it), 3-6 the CRC, 7.. covered by it. */
static void test_every_single_byte_change_detected(void **state)
{
    (void)state;
    fy_buf v;
    valid_record(&v);
    unsigned char *r = (unsigned char *)v.data;
    size_t flips = 0;
    for (size_t i = 0; i < v.len; i++) {
        unsigned char orig = r[i];
        for (unsigned x = 1; x < 256; x++) {
            r[i] = (unsigned char)(orig ^ x);
            fy_record rec;
            ferry_err e = fy_record_decode(r, v.len, &rec);
            if (e == FERRY_OK) {
                fy_record_free(&rec);
                fail_msg("byte %zu changed from 0x%02x to 0x%02x: not detected", i, orig, r[i]);
            }
            if (e != FERRY_ECORRUPT && e != FERRY_EVERSION)
                fail_msg("byte %zu changed to 0x%02x: error %d (%s)", i, r[i], e, ferry_last_error());
            if (!ferry_last_error()[0])
                fail_msg("byte %zu changed: no message", i);
            flips++;
        }
        r[i] = orig;
    }
    assert_int_equal(flips, v.len * 255);
    expect_accepted(r, v.len, "the restored record");
    fy_buf_free(&v);
}

int main(void)
{
    /* 512 MiB is plenty for this program; 96 GB (dd ff ff ff ff x 24) is not */
    address_space_capped = tu_limit_address_space((size_t)512 << 20);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_allocation_canary),
        cmocka_unit_test(test_hostile_headers),
        cmocka_unit_test(test_nesting_too_deep),
        cmocka_unit_test(test_nesting_32_levels_accepted),
        cmocka_unit_test(test_truncated),
        cmocka_unit_test(test_trailing_bytes),
        cmocka_unit_test(test_forbidden_types),
        cmocka_unit_test(test_header_and_crc),
        cmocka_unit_test(test_required_fields_in_records),
        cmocka_unit_test(test_duplicate_required_keys_refused),
        cmocka_unit_test(test_future_minor_elements_ignored),
        cmocka_unit_test(test_every_single_byte_change_detected),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

/* test_clock.c: records with clock readings (elements 4 and 5), the
 * replayer's trust and correction rules (replayer/clock.c) and its event
 * emitter (replayer/rewrite.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include "test_util.h"

#include "clock.h"
#include "rewrite.h"

#define BOOT_A "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
#define BOOT_B "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"
#define FLOOR 1790000000000LL   /* 2026-09-21 */
#define GOOD 1795939200000LL    /* 2026-11-29T04:00Z: after the floor */
#define BAD 1577836800000LL     /* 2020-01-01: before it */
#define JUMP 10000

/* One encoded record and its decoded view (pointing into buf). */
typedef struct rec {
    fy_buf buf;
    fy_record r;
} rec;

/* A record made at wall time `wall`, CLOCK_BOOTTIME `mono` in boot `boot`
 * (NULL: a 4-element record), with the event's time `time` (0: = wall). */
static void make(rec *x, int64_t wall, int64_t mono, const char *boot, int64_t time)
{
    char text[256];
    snprintf(text, sizeof text, "{\"event_type\":\"T\",\"device_id\":\"device-1\",\"time\":%lld}",
             (long long)(time ? time : wall));
    json_error_t jerr;
    json_t *ev = json_loads(text, 0, &jerr);
    assert_non_null(ev);
    fy_stamp st = {.wall_ms = wall, .mono_ms = boot ? mono : -1, .boot_id = ""};
    if (boot)
        snprintf(st.boot_id, sizeof st.boot_id, "%s", boot);
    fy_buf_init(&x->buf, 0);
    assert_int_equal(fy_record_encode_stamped(ev, &st, "11111111-2222-4333-8444-555555555555", &x->buf), FERRY_OK);
    json_decref(ev);
    assert_int_equal(fy_record_decode(x->buf.data, x->buf.len, &x->r), FERRY_OK);
}

static void unmake(rec *x)
{
    fy_record_free(&x->r);
    fy_buf_free(&x->buf);
}

static void test_record_elements(void **state)
{
    (void)state;
    rec x;
    make(&x, GOOD, 123456, BOOT_A, 0);
    assert_int_equal(((unsigned char *)x.buf.data)[0], 0x96); /* 6 elements */
    assert_int_equal(x.r.mono_ms, 123456);
    assert_non_null(x.r.boot_id);
    assert_memory_equal(x.r.boot_id, BOOT_A, FY_BOOT_ID_LEN);
    assert_int_equal(x.r.recorded_at_ms, GOOD);
    fy_buf j;
    fy_buf_init(&j, 0);
    assert_int_equal(fy_record_clock_json(&j, &x.r), FERRY_OK);
    assert_int_equal(fy_buf_putc(&j, '\0'), FERRY_OK);
    assert_string_equal(j.data, ",\"mono_ms\":123456,\"boot_id\":\"" BOOT_A "\"");
    fy_buf_free(&j);
    /* the CRC covers the new elements: a flipped bit in the boot id is caught */
    ((unsigned char *)x.buf.data)[x.buf.len - 1] ^= 1;
    fy_record bad;
    assert_int_equal(fy_record_decode(x.buf.data, x.buf.len, &bad), FERRY_ECORRUPT);
    unmake(&x);

    make(&x, GOOD, 0, NULL, 0); /* without a boot id: the 4-element record of format 1.0 */
    assert_int_equal(((unsigned char *)x.buf.data)[0], 0x94);
    assert_int_equal(x.r.mono_ms, -1);
    assert_null(x.r.boot_id);
    fy_record p;
    assert_int_equal(fy_record_peek_clock(x.buf.data, x.buf.len, &p), FERRY_OK);
    assert_int_equal(p.recorded_at_ms, GOOD);
    assert_int_equal(p.mono_ms, -1);
    assert_null(p.boot_id);
    unmake(&x);

    char live[FY_BOOT_ID_LEN + 1];
    fy_boot_id(live);
    assert_int_equal(strlen(live), FY_BOOT_ID_LEN); /* Linux: /proc/sys/kernel/random/boot_id */
    fy_stamp now;
    fy_stamp_now(&now);
    assert_true(now.mono_ms > 0);
    assert_true(now.wall_ms > 1600000000000LL);
}

/* FORMAT.md, section 4, "Byte-level example": the stamped encoder produces
 * exactly the documented 6-element record. */
static void test_format_example(void **state)
{
    (void)state;
    static const unsigned char want[] = {
        0x96, 0x01, 0xce, 0xb9, 0xe1, 0x85, 0x49, 0xcf, 0x00, 0x00, 0x01, 0xa2, 0x27, 0x18, 0xc1, 0xd4,
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
        0xa4, 0x74, 0x69, 0x6d, 0x65, 0xcf, 0x00, 0x00, 0x01, 0xa2, 0x26, 0x51, 0x6c, 0x00, 0xce, 0x01,
        0x20, 0x93, 0xe9, 0xd9, 0x20, 0x35, 0x61, 0x37, 0x30, 0x36, 0x34, 0x65, 0x61, 0x63, 0x66, 0x61,
        0x33, 0x34, 0x62, 0x32, 0x61, 0x62, 0x66, 0x33, 0x37, 0x36, 0x32, 0x38, 0x63, 0x63, 0x31, 0x61,
        0x63, 0x62, 0x32, 0x64, 0x66};
    json_error_t jerr;
    json_t *ev = json_loads("{\"event_type\":\"Service start\",\"device_id\":\"7f3c2a9e41b84d6f9a0c5e1d2b3f4a5c\","
                            "\"insert_id\":\"5b0e6a0c-8a53-4c1e-9d4f-2f1e0c9b7a61\","
                            "\"event_properties\":{\"service\":{\"serviceName\":\"backend\",\"appId\":1873312}},"
                            "\"time\":1795939200000}", 0, &jerr);
    assert_non_null(ev);
    fy_stamp st = {.wall_ms = 1795952263636LL, .mono_ms = 18912233, .boot_id = "5a7064eacfa34b2abf37628cc1acb2df"};
    fy_buf b;
    fy_buf_init(&b, 0);
    assert_int_equal(fy_record_encode_stamped(ev, &st, NULL, &b), FERRY_OK);
    assert_int_equal(b.len, sizeof want);
    assert_memory_equal(b.data, want, sizeof want);
    fy_record r, p;
    assert_int_equal(fy_record_decode(want, sizeof want, &r), FERRY_OK);
    assert_int_equal(r.recorded_at_ms, 1795952263636LL);
    assert_int_equal(r.mono_ms, 18912233);
    assert_memory_equal(r.boot_id, "5a7064eacfa34b2abf37628cc1acb2df", FY_BOOT_ID_LEN);
    fy_record_free(&r);
    /* the replayer's quick look agrees with the decoder */
    assert_int_equal(fy_record_peek_clock(want, sizeof want, &p), FERRY_OK);
    assert_int_equal(p.recorded_at_ms, 1795952263636LL);
    assert_int_equal(p.mono_ms, 18912233);
    assert_ptr_equal(p.boot_id, (const char *)want + sizeof want - FY_BOOT_ID_LEN);
    unsigned char bad[sizeof want];
    memcpy(bad, want, sizeof want);
    bad[sizeof bad - 1] ^= 1;
    assert_int_equal(fy_record_peek_clock(bad, sizeof bad, &p), FERRY_ECORRUPT);
    assert_int_equal(fy_record_peek_clock(want, sizeof want - 1, &p), FERRY_ECORRUPT);
    fy_buf_free(&b);
    json_decref(ev);
}

static void test_correct_math(void **state)
{
    (void)state;
    assert_int_equal(rp_clock_correct(GOOD, 50000, 20000), GOOD - 30000);
    assert_int_equal(rp_clock_correct(GOOD, 50000, 80000), GOOD + 30000);
    int64_t f = rp_clock_default_floor_ms();
    assert_int_equal(f, 1795910400000LL);       /* 2026-11-29T00:00Z: ferry's first release */
}

/* A device booted at 2020-01-01 (no RTC) records 2 events; NTP steps the
 * clock; then 2 more. The first two are corrected from the third (anchor). */
static void test_past_boot_with_step(void **state)
{
    (void)state;
    rp_clock *c = rp_clock_new(FLOOR, JUMP);
    assert_non_null(c);
    rec x[4];
    make(&x[0], BAD + 5000, 5000, BOOT_A, 0);
    make(&x[1], BAD + 65000, 65000, BOOT_A, BAD + 60000); /* the caller's time, 5 s before recording */
    make(&x[2], GOOD, 70000, BOOT_A, 0);
    make(&x[3], GOOD + 10000, 80000, BOOT_A, 0);
    for (int i = 0; i < 4; i++)
        assert_int_equal(rp_clock_observe(c, (uint64_t)i + 1, &x[i].r), FERRY_OK);
    assert_int_equal(rp_clock_observed(c), 4);
    int64_t d;
    assert_int_equal(rp_clock_judge(c, 1, &x[0].r, &d), RP_TIME_CORRECTED);
    assert_int_equal(x[0].r.time_ms + d, GOOD - 65000); /* 65 s of boot time before the anchor */
    assert_int_equal(rp_clock_judge(c, 2, &x[1].r, &d), RP_TIME_CORRECTED);
    assert_int_equal(x[1].r.time_ms + d, GOOD - 5000 - 5000); /* moved with its record */
    assert_int_equal(rp_clock_judge(c, 3, &x[2].r, &d), RP_TIME_TRUSTED);
    assert_int_equal(rp_clock_judge(c, 4, &x[3].r, &d), RP_TIME_TRUSTED);
    /* another machine replaying: its own boot id differs, nothing changes */
    fy_stamp now = {.wall_ms = GOOD + 999999, .mono_ms = 5, .boot_id = BOOT_B};
    rp_clock_set_now(c, &now);
    assert_int_equal(rp_clock_judge(c, 1, &x[0].r, &d), RP_TIME_CORRECTED);
    assert_int_equal(x[0].r.time_ms + d, GOOD - 65000);
    /* a good record requeued later (same bytes, a new seq): still trusted,
     * and the early ones are still corrected from the same clock */
    rp_clock_observe(c, 5, &x[3].r);
    assert_int_equal(rp_clock_judge(c, 5, &x[3].r, &d), RP_TIME_TRUSTED);
    assert_int_equal(rp_clock_judge(c, 3, &x[2].r, &d), RP_TIME_TRUSTED);
    rp_clock_observe(c, 6, &x[0].r); /* and a bad one */
    assert_int_equal(rp_clock_judge(c, 6, &x[0].r, &d), RP_TIME_CORRECTED);
    assert_int_equal(x[0].r.time_ms + d, GOOD - 65000);
    for (int i = 0; i < 4; i++)
        unmake(&x[i]);
    rp_clock_free(c);
}

/* A wrong clock after the floor (fake-hwclock: the last saved time) is
 * caught by the step alone; a step under the threshold is no step. */
static void test_step_after_floor_and_small_steps(void **state)
{
    (void)state;
    rp_clock *c = rp_clock_new(FLOOR, JUMP);
    rec x[4];
    make(&x[0], GOOD - 7200000, 1000, BOOT_A, 0);          /* 2 h behind */
    make(&x[1], GOOD - 7200000 + 5000 + 9000, 6000, BOOT_A, 0); /* +9 s drift: same segment */
    make(&x[2], GOOD, 10000, BOOT_A, 0);                   /* stepped */
    make(&x[3], GOOD + 1000, 11000, BOOT_A, 0);
    for (int i = 0; i < 4; i++)
        rp_clock_observe(c, (uint64_t)i + 1, &x[i].r);
    int64_t d;
    assert_int_equal(rp_clock_judge(c, 1, &x[0].r, &d), RP_TIME_CORRECTED);
    assert_int_equal(x[0].r.time_ms + d, GOOD - 9000);
    assert_int_equal(rp_clock_judge(c, 2, &x[1].r, &d), RP_TIME_CORRECTED);
    assert_int_equal(x[1].r.time_ms + d, GOOD - 4000);
    assert_int_equal(rp_clock_judge(c, 3, &x[2].r, &d), RP_TIME_TRUSTED);
    assert_int_equal(rp_clock_judge(c, 4, &x[3].r, &d), RP_TIME_TRUSTED);
    for (int i = 0; i < 4; i++)
        unmake(&x[i]);
    rp_clock_free(c);
}

/* No trustworthy reading in a past boot, and old records: flagged, never
 * guessed; interleaved boots do not mix. */
static void test_uncorrectable_and_interleaved(void **state)
{
    (void)state;
    rp_clock *c = rp_clock_new(FLOOR, JUMP);
    rec x[5];
    make(&x[0], BAD, 1000, BOOT_A, 0);
    make(&x[1], GOOD, 500000, BOOT_B, 0);
    make(&x[2], BAD + 2000, 3000, BOOT_A, 0);
    make(&x[3], BAD, 0, NULL, 0);  /* a format-1.0 record before the floor */
    make(&x[4], GOOD, 0, NULL, 0); /* and one after it */
    for (int i = 0; i < 5; i++)
        rp_clock_observe(c, (uint64_t)i + 10, &x[i].r);
    int64_t d;
    assert_int_equal(rp_clock_judge(c, 10, &x[0].r, &d), RP_TIME_UNCORRECTED);
    assert_int_equal(rp_clock_judge(c, 11, &x[1].r, &d), RP_TIME_TRUSTED);
    assert_int_equal(rp_clock_judge(c, 12, &x[2].r, &d), RP_TIME_UNCORRECTED);
    assert_int_equal(rp_clock_judge(c, 13, &x[3].r, &d), RP_TIME_UNCORRECTED);
    assert_int_equal(rp_clock_judge(c, 14, &x[4].r, &d), RP_TIME_TRUSTED);
    for (int i = 0; i < 5; i++)
        unmake(&x[i]);
    rp_clock_free(c);
}

/* The replayer's own boot: its clock now decides. */
static void test_current_boot(void **state)
{
    (void)state;
    rp_clock *c = rp_clock_new(FLOOR, JUMP);
    rec x[2];
    make(&x[0], BAD, 1000, BOOT_A, 0);
    make(&x[1], BAD + 1000, 2000, BOOT_A, 0);
    rp_clock_observe(c, 1, &x[0].r);
    rp_clock_observe(c, 2, &x[1].r);
    int64_t d;
    /* not set yet: hold */
    fy_stamp now = {.wall_ms = BAD + 3000, .mono_ms = 4000, .boot_id = BOOT_A};
    rp_clock_set_now(c, &now);
    assert_int_equal(rp_clock_judge(c, 1, &x[0].r, &d), RP_TIME_HOLD);
    /* set: now is the anchor */
    now.wall_ms = GOOD;
    now.mono_ms = 100000;
    rp_clock_set_now(c, &now);
    assert_int_equal(rp_clock_judge(c, 1, &x[0].r, &d), RP_TIME_CORRECTED);
    assert_int_equal(x[0].r.time_ms + d, GOOD - 99000);
    assert_int_equal(rp_clock_judge(c, 2, &x[1].r, &d), RP_TIME_CORRECTED);
    assert_int_equal(x[1].r.time_ms + d, GOOD - 98000);
    /* a record after the step: trusted, and it is the anchor from now on */
    rec y;
    make(&y, GOOD + 1000, 101000, BOOT_A, 0);
    rp_clock_observe(c, 3, &y.r);
    now.wall_ms = GOOD + 50000;
    now.mono_ms = 150000;
    rp_clock_set_now(c, &now);
    assert_int_equal(rp_clock_judge(c, 3, &y.r, &d), RP_TIME_TRUSTED);
    assert_int_equal(rp_clock_judge(c, 1, &x[0].r, &d), RP_TIME_CORRECTED);
    assert_int_equal(x[0].r.time_ms + d, GOOD - 99000);
    unmake(&y);
    for (int i = 0; i < 2; i++)
        unmake(&x[i]);
    rp_clock_free(c);
}

static char *emit(const char *json, const rp_overrides *o)
{
    rec x;
    json_error_t jerr;
    json_t *ev = json_loads(json, 0, &jerr);
    assert_non_null(ev);
    fy_buf_init(&x.buf, 0);
    assert_int_equal(fy_record_encode(ev, GOOD, "11111111-2222-4333-8444-555555555555", &x.buf), FERRY_OK);
    json_decref(ev);
    assert_int_equal(fy_record_decode(x.buf.data, x.buf.len, &x.r), FERRY_OK);
    fy_buf out;
    fy_buf_init(&out, 0);
    assert_int_equal(rp_emit_event(&out, &x.r.event, o), FERRY_OK);
    assert_int_equal(fy_buf_putc(&out, '\0'), FERRY_OK);
    char *s = strdup(out.data);
    fy_buf_free(&out);
    unmake(&x);
    return s;
}

static void test_emit_overrides(void **state)
{
    (void)state;
    const char *ev = "{\"event_type\":\"T\",\"device_id\":\"d-1\",\"time\":5,\"ip\":\"10.1.2.3\",\"city\":\"Oslo\","
                     "\"country\":\"Norway\",\"region\":\"Oslo\",\"dma\":\"x\",\"location_lat\":59.9,"
                     "\"location_lng\":10.7,\"insert_id\":\"i-1\",\"os_name\":\"linux\"}";
    rp_overrides o = {.ip = RP_IP_PASS};
    char *s = emit(ev, &o);
    assert_string_equal(s, "{\"event_type\":\"T\",\"device_id\":\"d-1\",\"time\":5,\"ip\":\"10.1.2.3\",\"city\":\"Oslo\","
                           "\"country\":\"Norway\",\"region\":\"Oslo\",\"dma\":\"x\",\"location_lat\":59.9,"
                           "\"location_lng\":10.7,\"insert_id\":\"i-1\",\"os_name\":\"linux\"}");
    free(s);
    o.ip = RP_IP_NONE;
    s = emit(ev, &o);
    assert_string_equal(s, "{\"event_type\":\"T\",\"device_id\":\"d-1\",\"time\":5,\"insert_id\":\"i-1\","
                           "\"os_name\":\"linux\"}");
    free(s);
    o.ip = RP_IP_REMOTE;
    o.set_time = 1;
    o.time_ms = 1795939200000LL;
    o.n_props = 1;
    o.props[0].key = RP_PROP_ORIGINAL_TIME;
    o.props[0].i = 5;
    s = emit(ev, &o);
    assert_string_equal(s, "{\"event_type\":\"T\",\"device_id\":\"d-1\",\"time\":1795939200000,\"insert_id\":\"i-1\","
                           "\"os_name\":\"linux\",\"event_properties\":{\"[ferry] original time\":5},"
                           "\"ip\":\"$remote\"}");
    free(s);
    /* a session start moves with the time; "no session" (-1) stays */
    rp_overrides t = {.ip = RP_IP_PASS, .set_time = 1, .time_ms = 2000, .shift_session_ms = 1000};
    s = emit("{\"event_type\":\"T\",\"device_id\":\"d-1\",\"time\":1000,\"session_id\":900,\"insert_id\":\"i\"}", &t);
    assert_string_equal(s, "{\"event_type\":\"T\",\"device_id\":\"d-1\",\"time\":2000,\"session_id\":1900,\"insert_id\":\"i\"}");
    free(s);
    s = emit("{\"event_type\":\"T\",\"device_id\":\"d-1\",\"time\":1000,\"session_id\":-1,\"insert_id\":\"i\"}", &t);
    assert_string_equal(s, "{\"event_type\":\"T\",\"device_id\":\"d-1\",\"time\":2000,\"session_id\":-1,\"insert_id\":\"i\"}");
    free(s);
    /* a recorded flag of the same name is replaced, other properties kept */
    rp_overrides u = {.ip = RP_IP_NONE, .n_props = 1};
    u.props[0].key = RP_PROP_UNCORRECTED;
    u.props[0].is_true = 1;
    s = emit("{\"event_type\":\"T\",\"user_id\":\"u-123\",\"event_properties\":{\"a\":1,"
             "\"[ferry] time uncorrected\":false,\"b\":{\"c\":[1,2]}},\"time\":7,\"insert_id\":\"i\"}", &u);
    assert_string_equal(s, "{\"event_type\":\"T\",\"user_id\":\"u-123\",\"event_properties\":{\"a\":1,\"b\":{\"c\":[1,2]},"
                           "\"[ferry] time uncorrected\":true},\"time\":7,\"insert_id\":\"i\"}");
    free(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_record_elements),
        cmocka_unit_test(test_format_example),
        cmocka_unit_test(test_correct_math),
        cmocka_unit_test(test_past_boot_with_step),
        cmocka_unit_test(test_step_after_floor_and_small_steps),
        cmocka_unit_test(test_uncorrectable_and_interleaved),
        cmocka_unit_test(test_current_boot),
        cmocka_unit_test(test_emit_overrides),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

/* test_jsonout.c: JSON text written from decoded records (fy_json_emit,
 * fy_json_emit_string): escaping, UTF-8 repair, numbers. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include "test_util.h"

/* Emits o and compares with want (exact text). */
static void check_emit(const msgpack_object *o, const char *want)
{
    fy_buf b;
    fy_buf_init(&b, 0);
    assert_int_equal(fy_json_emit(&b, o), FERRY_OK);
    if (b.len != strlen(want) || memcmp(b.data, want, b.len) != 0)
        fail_msg("emitted %.*s, want %s", (int)b.len, b.data, want);
    fy_buf_free(&b);
}

static void check_string(const char *in, size_t n, const char *want)
{
    fy_buf b;
    fy_buf_init(&b, 0);
    assert_int_equal(fy_json_emit_string(&b, in, n), FERRY_OK);
    if (b.len != strlen(want) || memcmp(b.data, want, b.len) != 0)
        fail_msg("emitted %.*s, want %s", (int)b.len, b.data, want);
    /* whatever it is, it is a JSON string */
    json_t *v = tu_parse_json(b.data, b.len);
    assert_true(json_is_string(v));
    json_decref(v);
    fy_buf_free(&b);
}

#define S(lit) lit, sizeof(lit) - 1

static void test_escaping(void **state)
{
    (void)state;
    check_string(S(""), "\"\"");
    check_string(S("plain text"), "\"plain text\"");
    check_string(S("say \"hi\""), "\"say \\\"hi\\\"\"");
    check_string(S("C:\\dir\\"), "\"C:\\\\dir\\\\\"");
    check_string(S("\n\t\r\b\f"), "\"\\n\\t\\r\\b\\f\"");
    check_string(S("a\x01z"), "\"a\\u0001z\"");
    check_string(S("\x1f\x0b\x1b"), "\"\\u001f\\u000b\\u001b\"");
    check_string(S("nul\0inside"), "\"nul\\u0000inside\"");
    check_string(S("\x7f/<>'"), "\"\x7f/<>'\""); /* DEL and / need no escape */
    /* every control character is escaped; the result reads back to the input */
    char all[32];
    for (int i = 0; i < 32; i++)
        all[i] = (char)i;
    fy_buf b;
    fy_buf_init(&b, 0);
    assert_int_equal(fy_json_emit_string(&b, all, 32), FERRY_OK);
    for (size_t i = 0; i < b.len; i++)
        assert_true((unsigned char)b.data[i] >= 0x20);
    json_t *v = tu_parse_json(b.data, b.len);
    assert_int_equal(json_string_length(v), 32);
    assert_memory_equal(json_string_value(v), all, 32);
    json_decref(v);
    fy_buf_free(&b);
}

static void test_valid_utf8_kept(void **state)
{
    (void)state;
    check_string(S("caf\xc3\xa9"), "\"caf\xc3\xa9\"");                          /* U+00E9 */
    check_string(S("\xc2\x80"), "\"\xc2\x80\"");                                /* U+0080 */
    check_string(S("\xdf\xbf"), "\"\xdf\xbf\"");                                /* U+07FF */
    check_string(S("\xe0\xa0\x80"), "\"\xe0\xa0\x80\"");                        /* U+0800 */
    check_string(S("\xe2\x82\xac"), "\"\xe2\x82\xac\"");                        /* U+20AC */
    check_string(S("\xed\x9f\xbf"), "\"\xed\x9f\xbf\"");                        /* U+D7FF */
    check_string(S("\xee\x80\x80"), "\"\xee\x80\x80\"");                        /* U+E000 */
    check_string(S("\xef\xbf\xbf"), "\"\xef\xbf\xbf\"");                        /* U+FFFF */
    check_string(S("\xf0\x90\x80\x80"), "\"\xf0\x90\x80\x80\"");                /* U+10000 */
    check_string(S("\xf0\x9f\x98\x80!"), "\"\xf0\x9f\x98\x80!\"");              /* U+1F600 */
    check_string(S("\xf4\x8f\xbf\xbf"), "\"\xf4\x8f\xbf\xbf\"");                /* U+10FFFF */
    check_string(S("\xe2\x80\xa8\xe2\x80\xa9"), "\"\xe2\x80\xa8\xe2\x80\xa9\""); /* U+2028/9 */
}

/* Invalid input must not reach the output raw: each bad sequence turns into
 * one or more U+FFFD (written as \ufffd), nothing else, and the valid text
 * around it ("<" before, `tail` after) is kept. */
static void expect_replaced_tail(const char *in, size_t n, const char *tail, const char *what)
{
    fy_buf b;
    fy_buf_init(&b, 0);
    size_t tl = strlen(tail);
    char *framed = malloc(n + 1 + tl);
    assert_non_null(framed);
    framed[0] = '<';
    memcpy(framed + 1, in, n);
    memcpy(framed + 1 + n, tail, tl);
    assert_int_equal(fy_json_emit_string(&b, framed, n + 1 + tl), FERRY_OK);
    for (size_t i = 0; i < b.len; i++)
        if ((unsigned char)b.data[i] >= 0x80 && !memchr(tail, b.data[i], tl))
            fail_msg("%s: raw byte 0x%02x in the output %.*s", what, (unsigned char)b.data[i], (int)b.len,
                     b.data);
    if (!tu_contains(b.data, "\\ufffd") && !tu_contains(b.data, "\\uFFFD"))
        fail_msg("%s: no U+FFFD in %.*s", what, (int)b.len, b.data);
    json_t *v = tu_parse_json(b.data, b.len);
    const char *s = json_string_value(v);
    size_t len = json_string_length(v);
    assert_true(len >= 1 + 3 + tl);
    assert_int_equal(s[0], '<');
    if (memcmp(s + len - tl, tail, tl) != 0)
        fail_msg("%s: the valid text after it was not kept: %.*s", what, (int)b.len, b.data);
    size_t k = 0;
    for (size_t i = 1; i < len - tl; i += 3, k++)
        if (len - tl - i < 3 || memcmp(s + i, "\xef\xbf\xbd", 3) != 0)
            fail_msg("%s: output holds something other than U+FFFD: %.*s", what, (int)b.len, b.data);
    assert_in_range(k, 1, n);
    json_decref(v);
    free(framed);
    fy_buf_free(&b);
}

static void expect_replaced(const char *in, size_t n, const char *what)
{
    expect_replaced_tail(in, n, ">", what);
    expect_replaced_tail(in, n, "\xc3\xa9", what); /* a valid 2-byte character right after */
    expect_replaced_tail(in, n, "\xf0\x9f\x98\x80", what);
}

static void test_invalid_utf8_replaced(void **state)
{
    (void)state;
    expect_replaced(S("\xff"), "0xff");
    expect_replaced(S("\xfe"), "0xfe");
    expect_replaced(S("\x80"), "lone continuation byte");
    expect_replaced(S("\xbf\x80"), "two continuation bytes");
    expect_replaced(S("\xc3"), "truncated 2-byte sequence");
    expect_replaced(S("\xe2\x82"), "truncated 3-byte sequence");
    expect_replaced(S("\xf0\x9f\x98"), "truncated 4-byte sequence");
    /* overlong encodings */
    expect_replaced(S("\xc0\xaf"), "overlong '/' (2 bytes)");
    expect_replaced(S("\xc1\xbf"), "overlong U+007F");
    expect_replaced(S("\xc0\x80"), "overlong NUL");
    expect_replaced(S("\xe0\x80\xaf"), "overlong '/' (3 bytes)");
    expect_replaced(S("\xe0\x9f\xbf"), "overlong U+07FF (3 bytes)");
    expect_replaced(S("\xf0\x80\x80\xaf"), "overlong '/' (4 bytes)");
    expect_replaced(S("\xf0\x8f\xbf\xbf"), "overlong U+FFFF (4 bytes)");
    /* UTF-16 surrogates, alone and paired (CESU-8) */
    expect_replaced(S("\xed\xa0\x80"), "surrogate U+D800");
    expect_replaced(S("\xed\xbf\xbf"), "surrogate U+DFFF");
    expect_replaced(S("\xed\xa0\xbd\xed\xb8\x80"), "surrogate pair");
    /* beyond U+10FFFF and never-valid lead bytes */
    expect_replaced(S("\xf4\x90\x80\x80"), "U+110000");
    expect_replaced(S("\xf5\x80\x80\x80"), "lead byte 0xf5");
    expect_replaced(S("\xf8\x88\x80\x80\x80"), "5-byte form");
    expect_replaced(S("\xfc\x84\x80\x80\x80\x80"), "6-byte form");
    /* a broken sequence does not swallow the valid character after it */
    check_string(S("ok\xffok"), "\"ok\\ufffdok\"");
    check_string(S("\xc3\xa9\xff\xc3\xa9"), "\"\xc3\xa9\\ufffd\xc3\xa9\"");
}

static msgpack_object obj_u64(uint64_t v)
{
    msgpack_object o;
    o.type = MSGPACK_OBJECT_POSITIVE_INTEGER;
    o.via.u64 = v;
    return o;
}

static msgpack_object obj_i64(int64_t v)
{
    msgpack_object o;
    o.type = MSGPACK_OBJECT_NEGATIVE_INTEGER;
    o.via.i64 = v;
    return o;
}

static msgpack_object obj_f64(double d)
{
    msgpack_object o;
    o.type = MSGPACK_OBJECT_FLOAT64;
    o.via.f64 = d;
    return o;
}

static void test_integers(void **state)
{
    (void)state;
    msgpack_object o;
    o = obj_u64(0), check_emit(&o, "0");
    o = obj_u64(1), check_emit(&o, "1");
    o = obj_u64(UINT64_MAX), check_emit(&o, "18446744073709551615");
    o = obj_u64((uint64_t)INT64_MAX + 1), check_emit(&o, "9223372036854775808");
    o = obj_i64(-1), check_emit(&o, "-1");
    o = obj_i64(INT64_MIN), check_emit(&o, "-9223372036854775808");
    o = obj_i64(INT64_MIN + 1), check_emit(&o, "-9223372036854775807");
    o.type = MSGPACK_OBJECT_NIL, check_emit(&o, "null");
    o.type = MSGPACK_OBJECT_BOOLEAN, o.via.boolean = true, check_emit(&o, "true");
    o.via.boolean = false, check_emit(&o, "false");
}

/* Significant digits of a decimal number text ("1.50e+03" -> 2). */
static int sig_digits(const char *s)
{
    char d[64];
    size_t n = 0;
    for (; *s && *s != 'e' && *s != 'E'; s++)
        if (*s >= '0' && *s <= '9' && n < sizeof d - 1)
            d[n++] = *s;
    d[n] = '\0';
    size_t a = 0;
    while (a < n && d[a] == '0')
        a++;
    while (n > a && d[n - 1] == '0')
        n--;
    return n > a ? (int)(n - a) : 1;
}

/* The fewest significant digits that read back to exactly d. */
static int shortest_digits(double d)
{
    char tmp[64];
    for (int p = 1; p <= 17; p++) {
        snprintf(tmp, sizeof tmp, "%.*e", p - 1, d);
        if (strtod(tmp, NULL) == d)
            return p;
    }
    return 17;
}

/* Emits d: checks that it reads back exactly, looks like a double, and uses
 * the fewest significant digits that do so. */
static void check_double(double d, int check_shortest)
{
    msgpack_object o = obj_f64(d);
    fy_buf b;
    fy_buf_init(&b, 0);
    assert_int_equal(fy_json_emit(&b, &o), FERRY_OK);
    char text[64];
    assert_true(b.len < sizeof text);
    memcpy(text, b.data, b.len);
    text[b.len] = '\0';
    fy_buf_free(&b);
    char *end;
    double back = strtod(text, &end);
    if (*end != '\0' || memcmp(&back, &d, sizeof d) != 0)
        fail_msg("%.17g emitted as %s, which reads back as %.17g", d, text, back);
    if (!strpbrk(text, ".eE"))
        fail_msg("%.17g emitted as %s, which reads back as an integer", d, text);
    if (check_shortest && sig_digits(text) != shortest_digits(d))
        fail_msg("%.17g emitted as %s (%d digits); the shortest exact form has %d digits", d, text,
                 sig_digits(text), shortest_digits(d));
    json_t *v = tu_parse_json(text, strlen(text));
    assert_true(json_is_real(v));
    json_decref(v);
}

static void test_doubles_exact_forms(void **state)
{
    (void)state;
    msgpack_object o;
    o = obj_f64(1.0), check_emit(&o, "1.0");
    o = obj_f64(-1.0), check_emit(&o, "-1.0");
    o = obj_f64(0.0), check_emit(&o, "0.0");
    o = obj_f64(-0.0), check_emit(&o, "-0.0");
    o = obj_f64(0.1), check_emit(&o, "0.1");
    o = obj_f64(1.5), check_emit(&o, "1.5");
    o = obj_f64(100.0), check_emit(&o, "100.0");
    o = obj_f64(123456789.0), check_emit(&o, "123456789.0");
    o = obj_f64(0.30000000000000004), check_emit(&o, "0.30000000000000004");
    o = obj_f64((double)NAN), check_emit(&o, "null");
    o = obj_f64(-(double)NAN), check_emit(&o, "null");
    o = obj_f64((double)INFINITY), check_emit(&o, "null");
    o = obj_f64(-(double)INFINITY), check_emit(&o, "null");
    o.type = MSGPACK_OBJECT_FLOAT32, o.via.f64 = (double)0.5f, check_emit(&o, "0.5");
    o.type = MSGPACK_OBJECT_FLOAT32, o.via.f64 = (double)INFINITY, check_emit(&o, "null");
}

static void test_doubles_shortest_roundtrip(void **state)
{
    (void)state;
    const double normal[] = {1.0, 0.1, 1e300, -1e300, 1e21, 1e22, 1e-7, 2.5e-10, 1.7976931348623157e308,
                             2.2250738585072014e-308, 9007199254740993.0, 0.1 + 0.2, 1.0 / 3.0, 2.0 / 3.0,
                             123456789012345678.0, 3.141592653589793, 6.02214076e23, 299792458.0};
    for (size_t i = 0; i < sizeof normal / sizeof normal[0]; i++)
        check_double(normal[i], 1);
    /* a deterministic spread of normal doubles over the whole exponent range */
    uint64_t x = 0x9e3779b97f4a7c15u;
    for (int i = 0; i < 20000; i++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        double d;
        memcpy(&d, &x, sizeof d);
        if (!isnormal(d))
            continue;
        check_double(d, 1);
        /* short decimals: a few digits times a power of ten */
        double s = (double)(x % 100000) * pow(10.0, (double)((int)(x >> 40) % 600 - 300));
        if (isnormal(s))
            check_double(s, 1);
    }
}

static void test_doubles_subnormal(void **state)
{
    (void)state;
    /* 5e-324 is the smallest double: its shortest exact form is "5e-324" */
    const double sub[] = {5e-324, -5e-324, 1e-320, 2.225073858507201e-308, 4.9e-322};
    for (size_t i = 0; i < sizeof sub / sizeof sub[0]; i++)
        check_double(sub[i], 1);
}

static void test_containers(void **state)
{
    (void)state;
    /* {"a\"b":[1,-2,"x",null,{}],"":[]} built by hand */
    msgpack_object inner_map = {.type = MSGPACK_OBJECT_MAP, .via.map = {0, NULL}};
    msgpack_object items[5];
    items[0] = obj_u64(1);
    items[1] = obj_i64(-2);
    items[2].type = MSGPACK_OBJECT_STR, items[2].via.str.ptr = "x", items[2].via.str.size = 1;
    items[3].type = MSGPACK_OBJECT_NIL;
    items[4] = inner_map;
    msgpack_object arr = {.type = MSGPACK_OBJECT_ARRAY, .via.array = {5, items}};
    msgpack_object empty = {.type = MSGPACK_OBJECT_ARRAY, .via.array = {0, NULL}};
    msgpack_object_kv kv[2];
    kv[0].key.type = MSGPACK_OBJECT_STR, kv[0].key.via.str.ptr = "a\"b", kv[0].key.via.str.size = 3;
    kv[0].val = arr;
    kv[1].key.type = MSGPACK_OBJECT_STR, kv[1].key.via.str.ptr = "", kv[1].key.via.str.size = 0;
    kv[1].val = empty;
    msgpack_object map = {.type = MSGPACK_OBJECT_MAP, .via.map = {2, kv}};
    check_emit(&map, "{\"a\\\"b\":[1,-2,\"x\",null,{}],\"\":[]}");
}

static void test_emit_appends(void **state)
{
    (void)state;
    fy_buf b;
    fy_buf_init(&b, 0);
    assert_int_equal(fy_buf_puts(&b, "[\"x\","), FERRY_OK);
    msgpack_object o = obj_u64(42);
    assert_int_equal(fy_json_emit(&b, &o), FERRY_OK);
    assert_int_equal(fy_buf_putc(&b, ']'), FERRY_OK);
    assert_int_equal(b.len, strlen("[\"x\",42]"));
    assert_memory_equal(b.data, "[\"x\",42]", b.len);
    fy_buf_free(&b);

    /* a capped buffer refuses instead of overflowing */
    fy_buf_init(&b, 8);
    assert_int_equal(fy_json_emit_string(&b, S("0123456789")), FERRY_ETOOBIG);
    assert_true(b.len <= 8);
    fy_buf_free(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_escaping),
        cmocka_unit_test(test_valid_utf8_kept),
        cmocka_unit_test(test_invalid_utf8_replaced),
        cmocka_unit_test(test_integers),
        cmocka_unit_test(test_doubles_exact_forms),
        cmocka_unit_test(test_doubles_shortest_roundtrip),
        cmocka_unit_test(test_doubles_subnormal),
        cmocka_unit_test(test_containers),
        cmocka_unit_test(test_emit_appends),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

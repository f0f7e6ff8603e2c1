/* test_jsonfast.c: the yajl fast path (format/jsonfast.c) against the
 * Jansson path it stands in for (fy_json_parse_event +
 * fy_record_encode_stamped).
 *
 * For every input: either the fast path writes exactly the bytes of the
 * Jansson path (same text, stamp and generated insert_id), or it declines,
 * leaving the buffer and the last error message as they were, and the
 * Jansson path then gives what it gives alone. Inputs: every line of every
 * *.jsonl under data/ and tests/, every file of the fuzz corpora
 * tests/fuzz/corpus/json (whole) and tests/fuzz/corpus/service (lines), and
 * crafted edge cases, each also marked as one the fast path must take or
 * must decline (so a fast path that declines everything fails too). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include "test_util.h"
#include "fy_fail.h"
#include "fy_jsonfast.h"

#ifndef FERRY_SOURCE_DIR
#error "FERRY_SOURCE_DIR must name the source tree (tests/unit/CMakeLists.txt)"
#endif

#define GEN_IID "5b0e6a0c-8a53-4c1e-9d4f-2f1e0c9b7a61"
#define PREFIX "bytes already in the buffer"
#define SENTINEL "an earlier message"

enum want { ANY, FAST, DECLINE };

static fy_jsonfast *fast; /* one state for the whole program, as a batch keeps one */
static unsigned long n_inputs, n_fast, n_jansson_ok;

static const fy_stamp stamps[2] = {
    {.wall_ms = 1795937265590, .mono_ms = -1, .boot_id = ""},
    {.wall_ms = 1795937265590, .mono_ms = 123456789, .boot_id = "0123456789abcdef0123456789abcdef"},
};

static void show(const char *what, const char *text, size_t len)
{
    fprintf(stderr, "%s: ", what);
    for (size_t i = 0; i < len && i < 300; i++) {
        unsigned char c = (unsigned char)text[i];
        if (c >= 0x20 && c < 0x7f)
            fputc(c, stderr);
        else
            fprintf(stderr, "\\x%02x", c);
    }
    fputc('\n', stderr);
}

/* The Jansson path into out (after PREFIX); the error message into msg. */
static ferry_err reference(const char *text, size_t len, const fy_stamp *st, fy_buf *out, char *msg, size_t msgn)
{
    json_t *ev = NULL;
    ferry_err e = fy_json_parse_event(text, len, &ev);
    if (!e)
        e = fy_record_encode_stamped(ev, st, GEN_IID, out);
    json_decref(ev);
    snprintf(msg, msgn, "%s", e ? ferry_last_error() : "");
    return e;
}

/* Both paths on one input; returns 1 when the fast path took it. */
static int compare(const char *text, size_t len, const fy_stamp *st)
{
    fy_buf a, b;
    fy_buf_init(&a, 0);
    fy_buf_init(&b, 0);
    assert_int_equal(fy_buf_append(&a, PREFIX, sizeof PREFIX - 1), FERRY_OK);
    assert_int_equal(fy_buf_append(&b, PREFIX, sizeof PREFIX - 1), FERRY_OK);
    char msg[512], msg2[512];
    ferry_err e = reference(text, len, st, &a, msg, sizeof msg);

    fy_fail(FERRY_EIO, SENTINEL);
    int took = fy_jsonfast_encode(&fast, text, len, st, GEN_IID, &b);
    if (took) {
        if (e) {
            show("input", text, len);
            fail_msg("the fast path wrote a record where Jansson's fails: %s", msg);
        }
        if (a.len != b.len || memcmp(a.data, b.data, a.len) != 0) {
            show("input", text, len);
            fail_msg("the fast path wrote %zu bytes, Jansson's path %zu, not the same", b.len - (sizeof PREFIX - 1),
                     a.len - (sizeof PREFIX - 1));
        }
    } else {
        if (b.len != sizeof PREFIX - 1 || memcmp(b.data, PREFIX, b.len) != 0) {
            show("input", text, len);
            fail_msg("a declined call changed the buffer");
        }
        assert_string_equal(ferry_last_error(), SENTINEL);
        /* and Jansson's path, run after it, gives what it gave alone */
        fy_buf_reset(&b);
        assert_int_equal(fy_buf_append(&b, PREFIX, sizeof PREFIX - 1), FERRY_OK);
        assert_int_equal(reference(text, len, st, &b, msg2, sizeof msg2), e);
        assert_string_equal(msg2, msg);
        assert_int_equal(a.len, b.len);
        assert_memory_equal(a.data, b.data, a.len);
    }
    if (!took && !e && getenv("JSONFAST_SHOW_DECLINED")) /* what the fast path leaves to Jansson */
        show("declined, Jansson took", text, len);
    n_inputs++;
    n_fast += (unsigned long)took;
    n_jansson_ok += !e;
    fy_buf_free(&a);
    fy_buf_free(&b);
    return took;
}

static void check_len(const char *text, size_t len, enum want w)
{
    for (int i = 0; i < 2; i++) {
        int took = compare(text, len, &stamps[i]);
        if ((w == FAST && !took) || (w == DECLINE && took)) {
            show("input", text, len);
            fail_msg("the fast path %s this input", took ? "took" : "declined");
        }
    }
}

static void check(const char *text, enum want w) { check_len(text, strlen(text), w); }

/* check() of a formatted input. */
static void checkf(enum want w, const char *fmt, ...) FY_PRINTF(2, 3);
static void checkf(enum want w, const char *fmt, ...)
{
    char text[4096];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(text, sizeof text, fmt, ap);
    va_end(ap);
    assert_true(n >= 0 && (size_t)n < sizeof text);
    check(text, w);
}

#define EV(rest) "{\"event_type\":\"e\",\"device_id\":\"d\"" rest "}"

/* ---- the corpora -------------------------------------------------------------- */

static char *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    size_t cap = 4096, n = 0;
    char *p = malloc(cap);
    size_t k;
    while (p && (k = fread(p + n, 1, cap - n, f)) > 0) {
        n += k;
        if (n == cap) {
            char *q = realloc(p, cap *= 2);
            if (!q) {
                free(p);
                p = NULL;
            }
            p = q;
        }
    }
    fclose(f);
    *len = n;
    return p;
}

static unsigned long corpus_lines, corpus_files, corpus_ok, corpus_fast;

static void check_lines(const char *path)
{
    size_t len;
    char *p = slurp(path, &len);
    assert_non_null(p);
    corpus_files++;
    for (size_t s = 0; s < len;) {
        const char *nl = memchr(p + s, '\n', len - s);
        size_t e = nl ? (size_t)(nl - p) : len;
        for (int i = 0; i < 2; i++) {
            unsigned long ok0 = n_jansson_ok;
            int took = compare(p + s, e - s, &stamps[i]);
            corpus_ok += n_jansson_ok - ok0;
            corpus_fast += (unsigned long)took;
        }
        corpus_lines++;
        s = e + 1;
    }
    free(p);
}

static int visit(const char *path, const struct stat *sb, int type, struct FTW *ftw)
{
    (void)sb, (void)ftw;
    size_t n = strlen(path);
    if (type == FTW_F && n > 6 && strcmp(path + n - 6, ".jsonl") == 0)
        check_lines(path);
    return 0;
}

static int visit_whole(const char *path, const struct stat *sb, int type, struct FTW *ftw)
{
    (void)sb, (void)ftw;
    if (type != FTW_F)
        return 0;
    size_t len;
    char *p = slurp(path, &len);
    assert_non_null(p);
    corpus_files++;
    compare(p, len, &stamps[1]);
    free(p);
    return 0;
}

static int visit_service(const char *path, const struct stat *sb, int type, struct FTW *ftw)
{
    (void)sb, (void)ftw;
    if (type == FTW_F)
        check_lines(path);
    return 0;
}

static void test_corpora(void **state)
{
    (void)state;
    assert_int_equal(nftw(FERRY_SOURCE_DIR "/data", visit, 16, FTW_PHYS), 0);
    unsigned long data_lines = corpus_lines, data_ok = corpus_ok, data_fast = corpus_fast;
    /* every event of the shipped data takes the fast path (the demo's 36,
     * twice; release-update-3-services.jsonl holds no Amplitude events) */
    assert_true(data_lines >= 72);
    assert_true(data_ok >= 72);
    assert_int_equal(data_fast, data_ok);
    assert_int_equal(nftw(FERRY_SOURCE_DIR "/tests", visit, 16, FTW_PHYS), 0);
    assert_int_equal(nftw(FERRY_SOURCE_DIR "/tests/fuzz/corpus/json", visit_whole, 16, FTW_PHYS), 0);
    assert_int_equal(nftw(FERRY_SOURCE_DIR "/tests/fuzz/corpus/service", visit_service, 16, FTW_PHYS), 0);
    fprintf(stderr, "test_jsonfast: corpora: %lu files, %lu lines; %lu inputs in all so far, Jansson took %lu, "
            "the fast path %lu\n", corpus_files, corpus_lines, n_inputs, n_jansson_ok, n_fast);
    assert_true(corpus_files > 50);
}

/* ---- crafted cases ---------------------------------------------------------------- */

static void test_fields(void **state)
{
    (void)state;
    check(EV(""), FAST);
    check("{\"event_type\":\"e\",\"user_id\":\"u\"}", FAST);
    check("{\"user_id\":\"u\",\"event_type\":\"e\",\"device_id\":null}", FAST);
    check("{\"event_type\":\"e\",\"user_id\":null,\"device_id\":\"d\"}", FAST);
    check("{\"event_type\":\"e\",\"user_id\":null,\"device_id\":null}", DECLINE);
    check("{\"event_type\":\"e\"}", DECLINE);
    check("{\"device_id\":\"d\"}", DECLINE);
    check("{\"event_type\":\"\",\"device_id\":\"d\"}", DECLINE);
    check("{\"event_type\":5,\"device_id\":\"d\"}", DECLINE);
    check("{\"event_type\":null,\"device_id\":\"d\"}", DECLINE);
    check("{\"event_type\":\"e\",\"device_id\":\"\"}", DECLINE);
    check("{\"event_type\":\"e\",\"device_id\":7}", DECLINE);
    check("{\"event_type\":\"e\",\"device_id\":\"d\",\"user_id\":\"\"}", DECLINE);
    check("{\"event_type\":\"e\",\"device_id\":\"d\",\"user_id\":[]}", DECLINE);
    /* insert_id and time present, absent, wrong */
    check(EV(",\"insert_id\":\"mine\""), FAST);
    check(EV(",\"time\":1700000000000"), FAST);
    check(EV(",\"time\":0"), FAST);
    check(EV(",\"time\":-0"), FAST);
    check(EV(",\"time\":1700000000000,\"insert_id\":\"x\""), FAST);
    check("{\"insert_id\":\"x\",\"time\":5,\"event_type\":\"e\",\"device_id\":\"d\"}", FAST);
    check(EV(",\"time\":-1"), DECLINE);
    check(EV(",\"time\":1.0"), DECLINE);
    check(EV(",\"time\":1e3"), DECLINE);
    check(EV(",\"time\":\"1\""), DECLINE);
    check(EV(",\"time\":null"), DECLINE);
    check(EV(",\"time\":9223372036854775807"), FAST);
    check(EV(",\"time\":9223372036854775808"), DECLINE);
    check(EV(",\"insert_id\":\"\""), DECLINE);
    check(EV(",\"insert_id\":null"), DECLINE);
    check(EV(",\"insert_id\":12"), DECLINE);
    char iid[1200];
    for (size_t n = 1023; n <= 1025; n++) {
        memset(iid, 'i', n);
        iid[n] = '\0';
        checkf(n <= FY_MAX_INSERT_ID ? FAST : DECLINE, EV(",\"insert_id\":\"%s\""), iid);
    }
    /* the fields with a fixed type */
    static const char *objs[] = {"event_properties", "user_properties", "groups", "group_properties"};
    for (size_t i = 0; i < 4; i++) {
        checkf(FAST, EV(",\"%s\":{\"a\":1}"), objs[i]);
        checkf(FAST, EV(",\"%s\":{}"), objs[i]);
        checkf(DECLINE, EV(",\"%s\":[]"), objs[i]);
        checkf(DECLINE, EV(",\"%s\":null"), objs[i]);
        checkf(DECLINE, EV(",\"%s\":\"x\""), objs[i]);
    }
    check(EV(",\"session_id\":1700000000000,\"event_id\":-3"), FAST);
    check(EV(",\"session_id\":1.5"), DECLINE);
    check(EV(",\"event_id\":\"3\""), DECLINE);
    check(EV(",\"event_id\":null"), DECLINE);
    /* the same names below the top level are ordinary keys */
    check(EV(",\"event_properties\":{\"time\":-1,\"insert_id\":\"\",\"event_type\":5,\"session_id\":\"s\"}"), FAST);
    check(EV(",\"x\":[{\"time\":1.5}]"), FAST);
}

static void test_numbers(void **state)
{
    (void)state;
    static const char *fast_ones[] = {
        "0", "-0", "1", "-1", "15", "127", "128", "-32", "-33", "255", "256", "65535", "65536", "-129",
        "4294967295", "4294967296", "-2147483649", "9223372036854775807", "-9223372036854775808",
        "1.0", "0.1", "-0.0", "0.0", "1e2", "1E2", "1e+2", "1e-2", "2.5e-3", "0.30000000000000004",
        "1.7976931348623157e308", "123456789.123456789", "1e22", "1e23", "-1.5E+10", "0e0", "0.5",
        "123456789012345678901234567890.5", "-99999999999999999999e-5",
    };
    static const char *declined[] = {
        "9223372036854775808", "-9223372036854775809", "123456789012345678901234567890", "1e400", "-1e400",
        "1e-400", "1e309",
        "1.000000000000000000000000000000000000000000000000000000000000000000000000001",
    };
    static const char *invalid[] = {"01", "-", "+1", ".5", "1.", "1e", "1e+", "-01", "0x10", "NaN", "Infinity",
                                    "-Infinity", "1.5.2", "--1", "1ee2"};
    for (size_t i = 0; i < sizeof fast_ones / sizeof *fast_ones; i++)
        checkf(FAST, EV(",\"n\":%s,\"a\":[%s]"), fast_ones[i], fast_ones[i]);
    for (size_t i = 0; i < sizeof declined / sizeof *declined; i++)
        checkf(DECLINE, EV(",\"n\":%s"), declined[i]);
    for (size_t i = 0; i < sizeof invalid / sizeof *invalid; i++)
        checkf(DECLINE, EV(",\"n\":%s"), invalid[i]);
    check(EV(",\"n\":5e-324"), ANY);   /* subnormal: strtod may say ERANGE */
    check(EV(",\"n\":2.2250738585072014e-308"), FAST);
    check(EV(",\"b\":true,\"c\":false,\"z\":null"), FAST);
}

static void test_strings(void **state)
{
    (void)state;
    check(EV(",\"s\":\"q\\\" b\\\\ s\\/ \\b\\f\\n\\r\\t end\""), FAST);
    check(EV(",\"k\\\"ey\\n\":\"v\""), FAST);
    check(EV(",\"s\":\"\\\\u0041\""), FAST); /* an escaped backslash, then u0041 */
    check(EV(",\"s\":\"\""), FAST);
    check(EV(",\"\":\"empty key\""), FAST);
    check(EV(",\"s\":\"caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80 \xf4\x8f\xbf\xbf \x7f\""), FAST);
    check(EV(",\"\xc3\xa9\":1"), FAST);
    /* \u escapes: Jansson decides (lone surrogates, NUL) */
    check(EV(",\"s\":\"\\u0041\""), DECLINE);
    check(EV(",\"s\":\"\\u00e9\""), DECLINE);
    check(EV(",\"s\":\"\\ud83d\\ude00\""), DECLINE);
    check(EV(",\"s\":\"\\ud800\""), DECLINE);
    check(EV(",\"s\":\"\\udc00x\""), DECLINE);
    check(EV(",\"s\":\"\\u0000\""), DECLINE);
    check(EV(",\"\\u0000\":1"), DECLINE);
    check(EV(",\"s\":\"\\uZZZZ\""), DECLINE);
    /* UTF-8 Jansson refuses */
    static const char *bad[] = {"\xc0\x80", "\xc1\xbf", "\xe0\x80\x80", "\xed\xa0\x80", "\xed\xbf\xbf",
                                "\xf0\x80\x80\x80", "\xf4\x90\x80\x80", "\xf5\x80\x80\x80", "\xff", "\x80",
                                "\xc3", "\xe2\x82", "\xf0\x9f\x98", "\xc3\x28"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        checkf(DECLINE, EV(",\"s\":\"%s\""), bad[i]);
        checkf(DECLINE, EV(",\"%s\":1"), bad[i]);
    }
    /* control characters raw in a string, other escapes */
    check(EV(",\"s\":\"a\tb\""), DECLINE);
    check(EV(",\"s\":\"a\nb\""), DECLINE);
    check(EV(",\"s\":\"a\x01" "b\""), DECLINE);
    check(EV(",\"s\":\"\\x\""), DECLINE);
    check(EV(",\"s\":\"\\'\""), DECLINE);
    check(EV(",\"s\":'x'"), DECLINE);
    /* NUL: inside a string, after the object, in the middle */
    static const char nul1[] = "{\"event_type\":\"e\",\"device_id\":\"d\",\"s\":\"a\0b\"}";
    check_len(nul1, sizeof nul1 - 1, DECLINE);
    static const char nul2[] = "{\"event_type\":\"e\",\"device_id\":\"d\"}\0";
    check_len(nul2, sizeof nul2 - 1, DECLINE);
    check_len(nul2, sizeof nul2 - 2, FAST);
    /* long strings, with escapes (yajl's decode buffer grows through the
     * arena past its first block), without, and past the record's size */
    static const size_t sizes[] = {2000, 9000, 20000, 40000, 70000};
    for (size_t k = 0; k < sizeof sizes / sizeof *sizes; k++) {
        size_t n = sizes[k];
        char *big = malloc(n + 100);
        assert_non_null(big);
        for (int esc = 0; esc < 2; esc++) {
            size_t o = (size_t)snprintf(big, 100, "{\"event_type\":\"e\",\"device_id\":\"d\",\"s\":\"");
            for (size_t i = 0; i < n; i++) {
                if (esc && i % 7 == 0 && i + 1 < n) { /* \n */
                    big[o++] = '\\';
                    big[o++] = 'n';
                    i++;
                } else {
                    big[o++] = (char)('a' + i % 26);
                }
            }
            o += (size_t)snprintf(big + o, 100, "\"}");
            check_len(big, o, n < 60000 ? FAST : esc ? ANY : DECLINE);
        }
        free(big);
    }
}

static void test_structure(void **state)
{
    (void)state;
    check(EV(",\"o\":{\"a\":{\"b\":[1,[2,[3,{}]],[]]},\"e\":{},\"f\":[]}"), FAST);
    check(EV(",\"a\":[[],[[]],{},[{}],[{\"x\":[null]}]]"), FAST);
    /* key order as written, insert_id and time after */
    check("{\"z\":1,\"device_id\":\"d\",\"a\":2,\"event_type\":\"e\",\"m\":3}", FAST);
    /* duplicate keys at any level */
    check(EV(",\"a\":1,\"a\":2"), DECLINE);
    check("{\"event_type\":\"e\",\"device_id\":\"d\",\"event_type\":\"e\"}", DECLINE);
    check(EV(",\"p\":{\"b\":1,\"c\":2,\"b\":3}"), DECLINE);
    check(EV(",\"p\":[{\"b\":1},{\"c\":{\"d\":1,\"d\":1}}]"), DECLINE);
    check(EV(",\"p\":{\"q\":{},\"q\":{}}"), DECLINE);
    /* the same key in different objects is fine */
    check(EV(",\"a\":{\"a\":{\"a\":1}},\"b\":{\"a\":1},\"c\":[{\"a\":1},{\"a\":2}]"), FAST);
    check(EV(",\"p\":{\"x\":{\"k\":1},\"k\":2}"), FAST);
    check(EV(",\"ab\":1,\"ba\":2,\"a\":3,\"b\":4"), FAST);
    /* counts around the msgpack header forms: fix (15), 16-bit (16+) */
    for (unsigned n = 14; n <= 18; n++) {
        char ev[2000];
        size_t o = (size_t)snprintf(ev, sizeof ev, "{\"event_type\":\"e\",\"device_id\":\"d\",\"a\":[");
        for (unsigned i = 0; i < n; i++)
            o += (size_t)snprintf(ev + o, sizeof ev - o, "%s%u", i ? "," : "", i);
        o += (size_t)snprintf(ev + o, sizeof ev - o, "],\"m\":{");
        for (unsigned i = 0; i < n; i++)
            o += (size_t)snprintf(ev + o, sizeof ev - o, "%s\"k%u\":[%u]", i ? "," : "", i, i);
        o += (size_t)snprintf(ev + o, sizeof ev - o, "}");
        /* and the top level itself with n keys (+ event_type, device_id, insert_id, time) */
        for (unsigned i = 0; i + 6 < n; i++)
            o += (size_t)snprintf(ev + o, sizeof ev - o, ",\"t%u\":{}", i);
        snprintf(ev + o, sizeof ev - o, "}");
        check(ev, FAST);
    }
    /* big containers: 16-bit counts, past the fast path's key limit */
    for (unsigned n = 255; n <= 258; n++) {
        size_t cap = 20 * (size_t)n + 100, o;
        char *ev = malloc(cap);
        assert_non_null(ev);
        o = (size_t)snprintf(ev, cap, "{\"event_type\":\"e\",\"device_id\":\"d\",\"m\":{");
        for (unsigned i = 0; i < n; i++)
            o += (size_t)snprintf(ev + o, cap - o, "%s\"k%u\":%u", i ? "," : "", i, i);
        o += (size_t)snprintf(ev + o, cap - o, "},\"a\":[");
        for (unsigned i = 0; i < n; i++)
            o += (size_t)snprintf(ev + o, cap - o, "%s%u", i ? "," : "", i);
        snprintf(ev + o, cap - o, "]}");
        check(ev, n <= 256 ? FAST : ANY);
        free(ev);
    }
    /* an array of 30000 elements */
    {
        size_t cap = 70000, o;
        char *ev = malloc(cap);
        assert_non_null(ev);
        o = (size_t)snprintf(ev, cap, "{\"event_type\":\"e\",\"device_id\":\"d\",\"a\":[");
        for (unsigned i = 0; i < 30000; i++)
            o += (size_t)snprintf(ev + o, cap - o, "%s%u", i ? "," : "", i % 10);
        snprintf(ev + o, cap - o, "]}");
        check(ev, FAST);
        free(ev);
    }
    /* empty, not an object, trailing bytes, whitespace */
    check("", DECLINE);
    check("   ", DECLINE);
    check("[]", DECLINE);
    check("[" EV("") "]", DECLINE);
    check("1", DECLINE);
    check("\"s\"", DECLINE);
    check("null", DECLINE);
    check("{}", DECLINE);
    check(EV("") " x", DECLINE);
    check(EV("") "\"", DECLINE); /* yajl 2.1 takes an unterminated string after the value */
    check(EV("") " \"x}", DECLINE);
    check(EV("") "\"-324,f", DECLINE);
    check(EV("") " 5", DECLINE);
    check(EV("") " tru", DECLINE);
    check(EV("") " [", DECLINE);
    check(EV("") " {", DECLINE);
    check(EV("") " -", DECLINE);
    check(EV("") EV(""), DECLINE);
    check(EV("") ",", DECLINE);
    check(EV("") "}", DECLINE);
    check(EV(",") , DECLINE);
    check("{\"event_type\":\"e\",\"device_id\":\"d\"", DECLINE);
    check("{\"event_type\":\"e\",\"device_id\":\"d\",\"a\":[1,2}", DECLINE);
    check("{\"event_type\":\"e\",\"device_id\":\"d\",\"a\":[1,]}", DECLINE);
    check("{\"event_type\":\"e\" \"device_id\":\"d\"}", DECLINE);
    check("{\"event_type\"=\"e\",\"device_id\":\"d\"}", DECLINE);
    check("{event_type:\"e\",\"device_id\":\"d\"}", DECLINE);
    check(EV(",\"a\":tru"), DECLINE);
    check(EV(",\"a\":truex"), DECLINE);
    check(EV(",\"a\":nul"), DECLINE);
    check(" \t\r\n{ \"event_type\" :\t\"e\" ,\r\n\"device_id\"\n:\"d\" , \"a\" : [ 1 , { } ] } \n\t\r ", FAST);
    check("\f" EV(""), DECLINE);
    check(EV("") "\v", DECLINE);
    check("{\f\"event_type\":\"e\",\"device_id\":\"d\"}", DECLINE);
    check("\xef\xbb\xbf" EV(""), DECLINE); /* a byte-order mark */
    check("/* c */" EV(""), DECLINE);
    check(EV(",\"a\":1 // c\n"), DECLINE);
}

/* Nesting up to the record's limit (FY_MAX_JSON_DEPTH levels counting the
 * event itself) and past it, with objects and arrays. */
static void test_depth(void **state)
{
    (void)state;
    for (unsigned depth = 1; depth <= FY_MAX_JSON_DEPTH + 3; depth++) {
        for (int arrays = 0; arrays < 2; arrays++) {
            char ev[1000];
            size_t o = (size_t)snprintf(ev, sizeof ev, "{\"event_type\":\"e\",\"device_id\":\"d\"");
            for (unsigned i = 1; i < depth; i++)
                o += (size_t)snprintf(ev + o, sizeof ev - o, arrays ? "%s[" : "%s{\"k\":", i == 1 ? ",\"p\":" : "");
            o += (size_t)snprintf(ev + o, sizeof ev - o, "%s", depth > 1 ? "1" : "");
            for (unsigned i = 1; i < depth; i++)
                o += (size_t)snprintf(ev + o, sizeof ev - o, arrays ? "]" : "}");
            snprintf(ev + o, sizeof ev - o, "}");
            check(ev, depth <= FY_MAX_JSON_DEPTH ? FAST : DECLINE);
        }
    }
    /* far deeper than anything: declined before yajl's stack matters */
    size_t n = 100000;
    char *deep = malloc(2 * n + 100);
    assert_non_null(deep);
    size_t o = (size_t)snprintf(deep, 100, "{\"event_type\":\"e\",\"device_id\":\"d\",\"p\":");
    memset(deep + o, '[', n);
    memset(deep + o + n, ']', n);
    o += 2 * n;
    deep[o++] = '}';
    check_len(deep, o, DECLINE);
    free(deep);
}

/* The record's size limit, exactly: the largest event that fits and the
 * smallest that does not, found with Jansson's path. */
static void test_record_limit(void **state)
{
    (void)state;
    size_t cap = FY_MAX_RECORD_BYTES + 200;
    char *ev = malloc(cap);
    assert_non_null(ev);
    fy_buf out;
    fy_buf_init(&out, 0);
    for (int with_array = 0; with_array < 2; with_array++) {
        size_t fits = 0;
        for (size_t n = FY_MAX_RECORD_BYTES - 200; n < FY_MAX_RECORD_BYTES; n++) {
            int o = snprintf(ev, cap, "{\"event_type\":\"e\",\"device_id\":\"d\",\"s\":%s\"", with_array ? "[" : "");
            memset(ev + o, 'x', n);
            snprintf(ev + (size_t)o + n, 10, "\"%s}", with_array ? "]" : "");
            json_t *j = NULL;
            fy_buf_reset(&out);
            assert_int_equal(fy_json_parse_event(ev, strlen(ev), &j), FERRY_OK);
            ferry_err e = fy_record_encode_stamped(j, &stamps[1], GEN_IID, &out);
            json_decref(j);
            if (e) {
                assert_int_equal(e, FERRY_ETOOBIG);
                assert_int_equal(compare(ev, strlen(ev), &stamps[1]), 0);
                break;
            }
            fits = n;
            check(ev, n + 300 > FY_MAX_RECORD_BYTES ? ANY : FAST);
            if (out.len == FY_MAX_RECORD_BYTES)
                assert_int_equal(compare(ev, strlen(ev), &stamps[1]), 1); /* exactly at the limit */
        }
        assert_true(fits > 0);
    }
    /* a buffer with its own limit (a batch's): declined past it, the
     * buffer as it was */
    fy_buf small;
    fy_buf_init(&small, 64);
    fy_fail(FERRY_EIO, SENTINEL);
    assert_int_equal(fy_jsonfast_encode(&fast, EV(",\"a\":\"0123456789012345678901234567890123456789\""),
                                        strlen(EV(",\"a\":\"0123456789012345678901234567890123456789\"")),
                                        &stamps[0], GEN_IID, &small), 0);
    assert_int_equal(small.len, 0);
    assert_string_equal(ferry_last_error(), SENTINEL);
    fy_buf_free(&small);
    fy_buf_free(&out);
    free(ev);
}

/* Without a given insert_id the fast path makes a random one, only when
 * the event has none; the record is otherwise the same. */
static void test_generated_insert_id(void **state)
{
    (void)state;
    const char *text = EV(",\"event_properties\":{\"a\":1}");
    fy_buf a, b;
    fy_buf_init(&a, 0);
    fy_buf_init(&b, 0);
    assert_int_equal(fy_jsonfast_encode(&fast, text, strlen(text), &stamps[1], NULL, &a), 1);
    assert_int_equal(fy_jsonfast_encode(&fast, text, strlen(text), &stamps[1], NULL, &b), 1);
    fy_record ra, rb;
    assert_int_equal(fy_record_decode(a.data, a.len, &ra), FERRY_OK);
    assert_int_equal(fy_record_decode(b.data, b.len, &rb), FERRY_OK);
    assert_int_equal(ra.insert_id_len, FY_UUID_LEN);
    assert_int_equal(rb.insert_id_len, FY_UUID_LEN);
    assert_true(memcmp(ra.insert_id, rb.insert_id, FY_UUID_LEN) != 0);
    /* with that id given, Jansson's path writes the same record */
    char iid[FY_UUID_LEN + 1];
    memcpy(iid, ra.insert_id, FY_UUID_LEN);
    iid[FY_UUID_LEN] = '\0';
    json_t *j;
    fy_buf c;
    fy_buf_init(&c, 0);
    assert_int_equal(fy_json_parse_event(text, strlen(text), &j), FERRY_OK);
    assert_int_equal(fy_record_encode_stamped(j, &stamps[1], iid, &c), FERRY_OK);
    json_decref(j);
    assert_int_equal(c.len, a.len);
    assert_memory_equal(c.data, a.data, a.len);
    fy_record_free(&ra);
    fy_record_free(&rb);
    /* an event with its own insert_id keeps it */
    const char *own = EV(",\"insert_id\":\"mine\"");
    fy_buf_reset(&a);
    assert_int_equal(fy_jsonfast_encode(&fast, own, strlen(own), &stamps[0], NULL, &a), 1);
    assert_int_equal(fy_record_decode(a.data, a.len, &ra), FERRY_OK);
    assert_int_equal(ra.insert_id_len, 4);
    assert_memory_equal(ra.insert_id, "mine", 4);
    fy_record_free(&ra);
    fy_buf_free(&a);
    fy_buf_free(&b);
    fy_buf_free(&c);
}

/* Through the public API: a batch without a policy takes the fast path and
 * one with a policy Jansson's; both records read back the same event. */
static void test_batch(void **state)
{
    (void)state;
    const char *text = EV(",\"insert_id\":\"i1\",\"time\":5,\"event_properties\":{\"secret\":1,\"ok\":2}");
    ferry_batch *b;
    assert_int_equal(ferry_batch_new(&b), FERRY_OK);
    for (int i = 0; i < 3; i++)
        assert_int_equal(ferry_batch_add_json(b, text, strlen(text)), FERRY_OK);
    assert_int_equal(ferry_batch_add_json(b, "{\"a\":1,\"a\":2}", 13), FERRY_EINVAL);
    assert_non_null(strstr(ferry_last_error(), "duplicate"));
    assert_int_equal(ferry_batch_add_json(b, "{\"event_type\":\"e\"}", 18), FERRY_EINVAL);
    assert_non_null(strstr(ferry_last_error(), "device_id and user_id"));
    assert_int_equal(ferry_batch_count(b), 3);
    ferry_batch_free(b);
}

static int teardown(void **state)
{
    (void)state;
    fy_jsonfast_free(fast);
    fast = NULL;
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_corpora),
        cmocka_unit_test(test_fields),
        cmocka_unit_test(test_numbers),
        cmocka_unit_test(test_strings),
        cmocka_unit_test(test_structure),
        cmocka_unit_test(test_depth),
        cmocka_unit_test(test_record_limit),
        cmocka_unit_test(test_generated_insert_id),
        cmocka_unit_test(test_batch),
    };
    int rc = cmocka_run_group_tests(tests, NULL, teardown);
    fprintf(stderr, "test_jsonfast: %lu inputs compared, Jansson's path took %lu, the fast path %lu\n", n_inputs,
            n_jansson_ok, n_fast);
    return rc;
}

/* test_policy.c: the record-time property policy (format/policy.c) on event
 * objects, and through the public API into a real journal: what it removes is
 * not stored, and the journal counts it in the events' own transaction. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include "fy_policy.h"
#include "test_util.h"

/* ---- the engine on event objects ---------------------------------------- */

static fy_policy *policy(const char *const *allow, const char *const *deny, const char *const *redact)
{
    fy_policy *p;
    assert_int_equal(fy_policy_new(&p), FERRY_OK);
    for (; allow && *allow; allow++)
        if (fy_policy_allow(p, *allow))
            fail_msg("allow %s: %s", *allow, ferry_last_error());
    for (; deny && *deny; deny++)
        if (fy_policy_deny(p, *deny))
            fail_msg("deny %s: %s", *deny, ferry_last_error());
    for (; redact && *redact; redact++)
        if (fy_policy_redact(p, *redact))
            fail_msg("redact %s: %s", *redact, ferry_last_error());
    return p;
}

/* Applies p to the event `in` and checks the result is `want` and the counts. */
static void check_apply(const fy_policy *p, const char *in, const char *want, uint64_t dropped,
                        uint64_t redacted)
{
    json_error_t jerr;
    json_t *ev = json_loads(in, 0, &jerr), *exp = json_loads(want, 0, &jerr);
    if (!ev || !exp)
        fail_msg("bad test JSON: %s", jerr.text);
    fy_policy_counts c = {0, 0};
    if (fy_policy_apply(p, ev, &c))
        fail_msg("apply: %s", ferry_last_error());
    if (!json_equal(ev, exp)) {
        char *got = json_dumps(ev, JSON_COMPACT | JSON_SORT_KEYS);
        fail_msg("policy gave %s\n  expected %s", got, want);
    }
    assert_int_equal(c.dropped, dropped);
    assert_int_equal(c.redacted, redacted);
    json_decref(ev);
    json_decref(exp);
}

#define A(...) ((const char *const[]){__VA_ARGS__, NULL})

static void test_deny_nested(void **state)
{
    (void)state;
    fy_policy *p = policy(NULL, A("event_properties.service.token", "user_properties.email"), NULL);
    check_apply(p,
                "{\"event_type\":\"t\",\"event_properties\":{\"service\":{\"appId\":1,\"token\":\"s3cr3t\"},"
                "\"token\":\"top\"},\"user_properties\":{\"email\":\"a@b.c\",\"plan\":\"pro\"}}",
                "{\"event_type\":\"t\",\"event_properties\":{\"service\":{\"appId\":1},\"token\":\"top\"},"
                "\"user_properties\":{\"plan\":\"pro\"}}",
                2, 0);
    /* Paths that lead nowhere (missing keys, a string where an object was
     * expected) change nothing. */
    check_apply(p, "{\"event_properties\":{\"service\":\"api\"},\"user_properties\":{}}",
                "{\"event_properties\":{\"service\":\"api\"},\"user_properties\":{}}", 0, 0);
    check_apply(p, "{\"event_type\":\"t\"}", "{\"event_type\":\"t\"}", 0, 0);
    fy_policy_unref(p);
}

static void test_allow_balena(void **state)
{
    (void)state;
    /* What balena's supervisor kept of its event properties. */
    fy_policy *p = policy(A("event_properties.service.appId", "event_properties.service.serviceName",
                            "event_properties.image.name", "event_properties.error"),
                          NULL, NULL);
    check_apply(p,
                "{\"event_type\":\"Service install\",\"device_id\":\"d\",\"event_properties\":{"
                "\"service\":{\"appId\":7,\"serviceName\":\"api\",\"environment\":{\"DB_PASSWORD\":\"x\"},"
                "\"labels\":{\"a\":\"b\"}},\"image\":{\"name\":\"registry/api\",\"digest\":\"sha\"},"
                "\"error\":{\"message\":\"boom\",\"stack\":\"...\"},\"hostname\":\"dev1\"},"
                "\"user_properties\":{\"email\":\"kept: no allow rule on this side\"}}",
                "{\"event_type\":\"Service install\",\"device_id\":\"d\",\"event_properties\":{"
                "\"service\":{\"appId\":7,\"serviceName\":\"api\"},\"image\":{\"name\":\"registry/api\"},"
                "\"error\":{\"message\":\"boom\",\"stack\":\"...\"}},"
                "\"user_properties\":{\"email\":\"kept: no allow rule on this side\"}}",
                4, 0);
    /* A leaf where the allowed path goes on is not allowed; an emptied
     * container stays (as an empty object). */
    check_apply(p, "{\"event_properties\":{\"service\":\"api\",\"image\":{\"tag\":\"v1\"}}}",
                "{\"event_properties\":{\"image\":{}}}", 2, 0);
    fy_policy_unref(p);
}

static void test_allow_and_deny(void **state)
{
    (void)state;
    /* Deny wins inside an allowed subtree. */
    fy_policy *p = policy(A("event_properties.service"), A("event_properties.service.environment"), NULL);
    check_apply(p,
                "{\"event_properties\":{\"service\":{\"appId\":1,\"environment\":{\"K\":\"v\"}},\"other\":1}}",
                "{\"event_properties\":{\"service\":{\"appId\":1}}}", 2, 0);
    fy_policy_unref(p);
    /* The same path allowed and denied: gone. */
    p = policy(A("user_properties.email"), A("user_properties.email"), NULL);
    check_apply(p, "{\"user_properties\":{\"email\":\"e\",\"x\":1}}", "{\"user_properties\":{}}", 2, 0);
    fy_policy_unref(p);
    /* A whole side: denied (its keys counted), or allowed (nothing removed). */
    p = policy(A("event_properties"), A("user_properties"), NULL);
    check_apply(p, "{\"event_properties\":{\"a\":1,\"b\":{\"c\":2}},\"user_properties\":{\"x\":1,\"y\":2}}",
                "{\"event_properties\":{\"a\":1,\"b\":{\"c\":2}}}", 2, 0);
    fy_policy_unref(p);
}

static void test_wildcards_and_escapes(void **state)
{
    (void)state;
    fy_policy *p = policy(NULL, A("event_properties.*.password", "event_properties.a\\.b", "event_properties.\\*",
                                  "event_properties.back\\\\slash"),
                          NULL);
    check_apply(p,
                "{\"event_properties\":{\"db\":{\"password\":\"p\",\"user\":\"u\"},\"cache\":{\"password\":\"q\"},"
                "\"password\":\"top level: not one level down\",\"a.b\":1,\"a\":{\"b\":2},\"*\":3,\"star\":4,"
                "\"back\\\\slash\":5}}",
                "{\"event_properties\":{\"db\":{\"user\":\"u\"},\"cache\":{},"
                "\"password\":\"top level: not one level down\",\"a\":{\"b\":2},\"star\":4}}",
                5, 0);
    fy_policy_unref(p);
    /* Allow with a wildcard: every service's appId, nothing else. */
    p = policy(A("event_properties.services.*.appId"), NULL, NULL);
    check_apply(p, "{\"event_properties\":{\"services\":{\"api\":{\"appId\":1,\"env\":\"x\"},\"db\":{\"appId\":2}},"
                   "\"n\":2}}",
                "{\"event_properties\":{\"services\":{\"api\":{\"appId\":1},\"db\":{\"appId\":2}}}}", 2, 0);
    fy_policy_unref(p);
}

static void test_arrays(void **state)
{
    (void)state;
    /* A path into an array applies to each element, arrays of arrays too. */
    fy_policy *p = policy(NULL, A("event_properties.services.token"), NULL);
    check_apply(p,
                "{\"event_properties\":{\"services\":[{\"name\":\"a\",\"token\":\"t1\"},\"plain\",7,"
                "[{\"token\":\"t2\",\"k\":1}],{\"name\":\"b\"}]}}",
                "{\"event_properties\":{\"services\":[{\"name\":\"a\"},\"plain\",7,[{\"k\":1}],{\"name\":\"b\"}]}}",
                2, 0);
    fy_policy_unref(p);
    /* Allow-list through an array: elements that are not containers go. */
    p = policy(A("event_properties.services.name"), NULL, NULL);
    check_apply(p,
                "{\"event_properties\":{\"services\":[{\"name\":\"a\",\"token\":\"t1\"},\"plain\",{\"x\":1}],"
                "\"other\":[1,2]}}",
                "{\"event_properties\":{\"services\":[{\"name\":\"a\"},{}]}}", 4, 0);
    fy_policy_unref(p);
    /* Denying the array itself removes it whole. */
    p = policy(NULL, A("event_properties.services"), NULL);
    check_apply(p, "{\"event_properties\":{\"services\":[{\"a\":1}],\"k\":1}}", "{\"event_properties\":{\"k\":1}}",
                1, 0);
    fy_policy_unref(p);
}

static void test_redact(void **state)
{
    (void)state;
    fy_policy *p = policy(NULL, NULL, A("[a-z0-9-]+\\.example\\.com", "token=[A-Za-z0-9]+"));
    check_apply(p,
                "{\"event_type\":\"db1.example.com stays: not a property\",\"event_properties\":{"
                "\"error\":\"connect to db1.example.com failed (token=abc123, token=XYZ)\","
                "\"nested\":{\"list\":[\"x.example.com\",5,{\"h\":\"api.example.com:443\"}]},"
                "\"db1.example.com\":\"keys are not redacted\",\"n\":42},"
                "\"user_properties\":{\"host\":\"y.example.com\",\"plain\":\"nothing here\"}}",
                "{\"event_type\":\"db1.example.com stays: not a property\",\"event_properties\":{"
                "\"error\":\"connect to [redacted] failed ([redacted], [redacted])\","
                "\"nested\":{\"list\":[\"[redacted]\",5,{\"h\":\"[redacted]:443\"}]},"
                "\"db1.example.com\":\"keys are not redacted\",\"n\":42},"
                "\"user_properties\":{\"host\":\"[redacted]\",\"plain\":\"nothing here\"}}",
                0, 4);
    fy_policy_unref(p);
}

static void test_redact_edges(void **state)
{
    (void)state;
    /* Anchors: ^ only at the start of the value, never after a replacement. */
    fy_policy *p = policy(NULL, NULL, A("^ab"));
    check_apply(p, "{\"event_properties\":{\"s\":\"ababab\",\"t\":\"xab\"}}",
                "{\"event_properties\":{\"s\":\"[redacted]abab\",\"t\":\"xab\"}}", 0, 1);
    fy_policy_unref(p);
    /* Replaced text is never searched again; the leftmost, then longest,
     * match of all patterns wins. */
    p = policy(NULL, NULL, A("red", "\\[", "secret", "secret-[0-9]+"));
    check_apply(p, "{\"event_properties\":{\"s\":\"secret-42 and secret\"}}",
                "{\"event_properties\":{\"s\":\"[redacted] and [redacted]\"}}", 0, 1);
    fy_policy_unref(p);
    /* Matches widen to whole UTF-8 characters (the C locale matches bytes):
     * the result stays valid UTF-8. "\xc3\xa9" is e-acute. */
    p = policy(NULL, NULL, A("h.st"));
    check_apply(p, "{\"event_properties\":{\"s\":\"h\\u00e9st-h\\u00e9\\u00e9st-host\"}}",
                "{\"event_properties\":{\"s\":\"h\\u00e9st-h\\u00e9\\u00e9st-[redacted]\"}}", 0, 1);
    fy_policy_unref(p);
    p = policy(NULL, NULL, A("\xa9"));  /* a continuation byte alone */
    check_apply(p, "{\"event_properties\":{\"s\":\"caf\\u00e9!\"}}",
                "{\"event_properties\":{\"s\":\"caf[redacted]!\"}}", 0, 1);
    fy_policy_unref(p);
    /* Empty matches (GNU \b) replace nothing and end. */
    p = policy(NULL, NULL, A("\\b"));
    check_apply(p, "{\"event_properties\":{\"s\":\"two words\"}}",
                "{\"event_properties\":{\"s\":\"two words\"}}", 0, 0);
    fy_policy_unref(p);
    /* A whole value; an empty value. */
    p = policy(NULL, NULL, A(".+"));
    check_apply(p, "{\"event_properties\":{\"s\":\"all of it\",\"e\":\"\"}}",
                "{\"event_properties\":{\"s\":\"[redacted]\",\"e\":\"\"}}", 0, 1);
    fy_policy_unref(p);
}

static void test_policy_then_redact(void **state)
{
    (void)state;
    /* Removal first, then redaction of what is left; counts add up. */
    fy_policy *p = policy(A("event_properties.error"), A("user_properties.email"), A("[0-9]{4,}"));
    check_apply(p,
                "{\"event_properties\":{\"error\":\"code 12345\",\"pin\":\"9999\"},"
                "\"user_properties\":{\"email\":\"e\",\"phone\":\"5550100\"}}",
                "{\"event_properties\":{\"error\":\"code [redacted]\"},"
                "\"user_properties\":{\"phone\":\"[redacted]\"}}",
                2, 2);
    fy_policy_unref(p);
}

static void expect_einval(ferry_err e, const char *needle)
{
    assert_int_equal(e, FERRY_EINVAL);
    if (!strstr(ferry_last_error(), needle))
        fail_msg("message '%s' does not name '%s'", ferry_last_error(), needle);
}

static void test_bad_rules(void **state)
{
    (void)state;
    fy_policy *p;
    assert_int_equal(fy_policy_new(&p), FERRY_OK);
    expect_einval(fy_policy_redact(p, "(unclosed"), "(unclosed");
    expect_einval(fy_policy_redact(p, "[z-a]"), "[z-a]");
    expect_einval(fy_policy_redact(p, "x*"), "matches the empty string");
    expect_einval(fy_policy_redact(p, "^"), "matches the empty string");
    expect_einval(fy_policy_allow(p, "service.appId"), "service.appId");
    expect_einval(fy_policy_deny(p, "event_properties..x"), "empty key");
    expect_einval(fy_policy_deny(p, "event_properties."), "empty key");
    expect_einval(fy_policy_deny(p, ""), "empty key");
    expect_einval(fy_policy_deny(p, "event_properties.a\\b"), "must be followed");
    expect_einval(fy_policy_deny(p, "event_properties.a\\"), "must be followed");
    expect_einval(fy_policy_deny(p, "*.email"), "must start with");
    expect_einval(fy_policy_deny(p, "groups.x"), "must start with");
    char deep[200] = "event_properties";
    for (int i = 0; i < 40; i++)
        strcat(deep, ".k");
    expect_einval(fy_policy_deny(p, deep), "deeper than");
    /* Nothing half-added: the policy is still empty and usable. */
    assert_true(fy_policy_empty(p));
    assert_int_equal(fy_policy_deny(p, "event_properties.ok"), FERRY_OK);
    /* In use: rules are fixed. */
    fy_policy *ref = fy_policy_ref(p);
    expect_einval(fy_policy_deny(p, "event_properties.more"), "in use");
    fy_policy_unref(ref);
    fy_policy_unref(p);
}

/* ---- through the public API into a journal ----------------------------- */

typedef struct fixture {
    char dir[512];
} fixture;

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof *f);
    if (!f)
        return -1;
    tu_tmpdir(f->dir, sizeof f->dir, "policy");
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    tu_rmrf(f->dir);
    free(f);
    return 0;
}

/* Every stored event as one JSON text, and the policy's meta counters. */
static char *stored_text(const char *dir, uint64_t *dropped, uint64_t *redacted)
{
    fy_journal jr;
    fy_open_opts ro = {.readonly = 1};
    if (fy_journal_open(&jr, dir, &ro))
        fail_msg("reading %s: %s", dir, ferry_last_error());
    tu_snapshot s;
    tu_snapshot_take(&jr, &s);
    MDB_txn *txn;
    assert_int_equal(fy_txn_begin(&jr, MDB_RDONLY, &txn), FERRY_OK);
    assert_int_equal(fy_meta_get_u64(&jr, txn, FY_META_PROPS_DROPPED, dropped), FERRY_OK);
    assert_int_equal(fy_meta_get_u64(&jr, txn, FY_META_VALUES_REDACTED, redacted), FERRY_OK);
    mdb_txn_abort(txn);
    fy_journal_close(&jr);
    fy_buf b;
    fy_buf_init(&b, 0);
    for (size_t i = 0; i < s.n; i++) {
        fy_record r;
        assert_int_equal(fy_record_decode(s.ev[i].data, s.ev[i].len, &r), FERRY_OK);
        assert_int_equal(fy_json_emit(&b, &r.event), FERRY_OK);
        fy_buf_putc(&b, '\n');
        fy_record_free(&r);
    }
    fy_buf_putc(&b, '\0');
    tu_snapshot_free(&s);
    return b.data;
}

static void test_journal_all_paths(void **state)
{
    fixture *f = *state;
    ferry_policy *p;
    assert_int_equal(ferry_policy_new(&p), FERRY_OK);
    assert_int_equal(ferry_policy_deny(p, "user_properties.email"), FERRY_OK);
    assert_int_equal(ferry_policy_deny(p, "event_properties.service.token"), FERRY_OK);
    assert_int_equal(ferry_policy_redact(p, "hunter[0-9]+"), FERRY_OK);
    ferry_options o = {.policy = p};
    ferry_journal *j;
    assert_int_equal(ferry_open(f->dir, &o, &j), FERRY_OK);
    /* The journal holds its own reference and the rules are now fixed. */
    assert_int_equal(ferry_policy_deny(p, "event_properties.late"), FERRY_EINVAL);
    ferry_policy_free(p);

    ferry_event ev = {.event_type = "t", .device_id = "d",
                      .event_properties = "{\"service\":{\"appId\":1,\"token\":\"hunter1\"},\"e\":\"pw hunter2\"}",
                      .user_properties = "{\"email\":\"hunter3@x\",\"plan\":\"pro\"}"};
    assert_int_equal(ferry_record(j, &ev, NULL), FERRY_OK); /* 2 dropped (token, email), 1 redacted */
    const char *json = "{\"event_type\":\"t\",\"device_id\":\"d\",\"event_properties\":{\"m\":\"hunter4\"}}";
    assert_int_equal(ferry_record_json(j, json, strlen(json), NULL), FERRY_OK); /* 1 redacted */
    /* A public batch knows no journal when events are added: the policy is
     * applied when it is committed, and once only (a failed commit keeps
     * the batch as it was). */
    ferry_batch *b;
    assert_int_equal(ferry_batch_new(&b), FERRY_OK);
    assert_int_equal(ferry_batch_add(b, &ev), FERRY_OK);
    assert_int_equal(ferry_batch_add_json(b, json, strlen(json)), FERRY_OK);
    size_t before = ferry_batch_bytes(b);
    uint64_t first = 0;
    assert_int_equal(ferry_record_batch(j, b, &first), FERRY_OK); /* 2 dropped, 2 redacted */
    assert_int_equal(first, 3);
    assert_int_equal(ferry_batch_count(b), 0);
    assert_true(before > 0);
    /* The batch is reusable for the next commit. */
    assert_int_equal(ferry_batch_add_json(b, json, strlen(json)), FERRY_OK);
    assert_int_equal(ferry_record_batch(j, b, NULL), FERRY_OK); /* 1 redacted */
    ferry_batch_free(b);
    ferry_close(j);

    uint64_t dropped = 0, redacted = 0;
    char *text = stored_text(f->dir, &dropped, &redacted);
    assert_null(strstr(text, "hunter"));
    assert_null(strstr(text, "token"));
    assert_null(strstr(text, "email"));
    assert_non_null(strstr(text, "\"plan\":\"pro\""));
    assert_non_null(strstr(text, "\"e\":\"pw [redacted]\""));
    assert_int_equal(dropped, 4);
    assert_int_equal(redacted, 5);
    free(text);
}

static void test_journal_refused_event(void **state)
{
    fixture *f = *state;
    ferry_policy *p;
    assert_int_equal(ferry_policy_new(&p), FERRY_OK);
    assert_int_equal(ferry_policy_redact(p, "x"), FERRY_OK);
    ferry_options o = {.policy = p};
    ferry_journal *j;
    assert_int_equal(ferry_open(f->dir, &o, &j), FERRY_OK);
    /* Redaction can grow a value: an event that then exceeds the record
     * limit is refused whole, and nothing is counted. */
    size_t n = 20000;
    char *big = malloc(n + 100);
    assert_non_null(big);
    int k = snprintf(big, 100, "{\"event_type\":\"t\",\"device_id\":\"d\",\"event_properties\":{\"s\":\"");
    memset(big + k, 'x', n);
    strcpy(big + (size_t)k + n, "\"}}");
    assert_int_equal(ferry_record_json(j, big, strlen(big), NULL), FERRY_ETOOBIG);
    free(big);
    const char *ok = "{\"event_type\":\"t\",\"device_id\":\"d\",\"event_properties\":{\"s\":\"a\"}}";
    assert_int_equal(ferry_record_json(j, ok, strlen(ok), NULL), FERRY_OK);
    ferry_close(j);
    ferry_policy_free(p);
    uint64_t dropped = 9, redacted = 9;
    char *text = stored_text(f->dir, &dropped, &redacted);
    assert_int_equal(dropped, 0);
    assert_int_equal(redacted, 0);
    free(text);
}

static void test_batch_refused_at_commit(void **state)
{
    fixture *f = *state;
    ferry_policy *p;
    assert_int_equal(ferry_policy_new(&p), FERRY_OK);
    assert_int_equal(ferry_policy_redact(p, "x"), FERRY_OK);
    ferry_options o = {.policy = p};
    ferry_journal *j;
    assert_int_equal(ferry_open(f->dir, &o, &j), FERRY_OK);
    ferry_policy_free(p);
    /* Fits as added (no policy yet), too large once redacted at commit:
     * the commit fails and the batch is left exactly as it was. */
    size_t n = 20000;
    char *big = malloc(n + 100);
    assert_non_null(big);
    int k = snprintf(big, 100, "{\"event_type\":\"t\",\"device_id\":\"d\",\"event_properties\":{\"s\":\"");
    memset(big + k, 'x', n);
    strcpy(big + (size_t)k + n, "\"}}");
    const char *ok = "{\"event_type\":\"t\",\"device_id\":\"d\",\"event_properties\":{\"s\":\"x\"}}";
    ferry_batch *b;
    assert_int_equal(ferry_batch_new(&b), FERRY_OK);
    assert_int_equal(ferry_batch_add_json(b, ok, strlen(ok)), FERRY_OK);
    assert_int_equal(ferry_batch_add_json(b, big, strlen(big)), FERRY_OK);
    free(big);
    size_t bytes = ferry_batch_bytes(b);
    assert_int_equal(ferry_record_batch(j, b, NULL), FERRY_ETOOBIG);
    if (!strstr(ferry_last_error(), "event 2 of the batch"))
        fail_msg("message '%s' does not name the event", ferry_last_error());
    assert_int_equal(ferry_batch_count(b), 2);
    assert_int_equal(ferry_batch_bytes(b), bytes);
    ferry_close(j);
    /* Nothing was written, nothing counted. */
    uint64_t dropped = 9, redacted = 9;
    char *text = stored_text(f->dir, &dropped, &redacted);
    assert_string_equal(text, "");
    assert_int_equal(dropped + redacted, 0);
    free(text);
    /* The same batch goes whole into a journal without a policy. */
    char dir2[600];
    snprintf(dir2, sizeof dir2, "%s/plain", f->dir);
    assert_int_equal(ferry_open(dir2, NULL, &j), FERRY_OK);
    assert_int_equal(ferry_record_batch(j, b, NULL), FERRY_OK);
    ferry_close(j);
    ferry_batch_free(b);
    text = stored_text(dir2, &dropped, &redacted);
    assert_non_null(strstr(text, "xxxxxxxxxx"));
    free(text);
}

static void test_no_policy_no_counters(void **state)
{
    fixture *f = *state;
    ferry_policy *p;
    assert_int_equal(ferry_policy_new(&p), FERRY_OK); /* empty: same as none */
    ferry_options o = {.policy = p};
    ferry_journal *j;
    assert_int_equal(ferry_open(f->dir, &o, &j), FERRY_OK);
    ferry_policy_free(p);
    ferry_event ev = {.event_type = "t", .device_id = "d", .user_properties = "{\"email\":\"e\"}"};
    assert_int_equal(ferry_record(j, &ev, NULL), FERRY_OK);
    ferry_close(j);
    uint64_t dropped = 9, redacted = 9;
    char *text = stored_text(f->dir, &dropped, &redacted);
    assert_non_null(strstr(text, "\"email\":\"e\""));
    assert_int_equal(dropped + redacted, 0);
    free(text);
    ferry_policy_free(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_deny_nested),
        cmocka_unit_test(test_allow_balena),
        cmocka_unit_test(test_allow_and_deny),
        cmocka_unit_test(test_wildcards_and_escapes),
        cmocka_unit_test(test_arrays),
        cmocka_unit_test(test_redact),
        cmocka_unit_test(test_redact_edges),
        cmocka_unit_test(test_policy_then_redact),
        cmocka_unit_test(test_bad_rules),
        cmocka_unit_test_setup_teardown(test_journal_all_paths, setup, teardown),
        cmocka_unit_test_setup_teardown(test_journal_refused_event, setup, teardown),
        cmocka_unit_test_setup_teardown(test_batch_refused_at_commit, setup, teardown),
        cmocka_unit_test_setup_teardown(test_no_policy_no_counters, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

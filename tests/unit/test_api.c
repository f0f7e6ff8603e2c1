/* test_api.c: the public recording API (ferry.h) end to end: events in,
 * records in the journal out (read back through the format layer after the
 * handle is closed: LMDB forbids opening one environment twice in a process). */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <sys/stat.h>

#include <cmocka.h>

#include "test_util.h"

typedef struct fixture {
    char dir[512];
} fixture;

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof *f);
    if (!f)
        return -1;
    tu_tmpdir(f->dir, sizeof f->dir, "api");
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    unsetenv("FERRY_OPT_OUT");
    tu_rmrf(f->dir);
    free(f);
    return 0;
}

static ferry_journal *open_journal(const char *dir, const ferry_options *opts)
{
    ferry_journal *j = NULL;
    ferry_err e = ferry_open(dir, opts, &j);
    if (e)
        fail_msg("ferry_open %s: %s", dir, ferry_last_error());
    assert_non_null(j);
    return j;
}

/* Everything stored, read back through the format layer. */
static void read_back(const char *dir, tu_snapshot *s)
{
    fy_journal jr;
    fy_open_opts ro = {.readonly = 1};
    ferry_err e = fy_journal_open(&jr, dir, &ro);
    if (e)
        fail_msg("reading %s: %s", dir, ferry_last_error());
    tu_snapshot_take(&jr, s);
    fy_journal_close(&jr);
}

static size_t stored_count(const char *dir)
{
    tu_snapshot s;
    read_back(dir, &s);
    size_t n = s.n;
    tu_snapshot_free(&s);
    return n;
}

/* The stored event as a jansson object (via fy_json_emit). */
static json_t *stored_event(const tu_event *ev, fy_record *out_rec)
{
    fy_record r;
    ferry_err e = fy_record_decode(ev->data, ev->len, &r);
    if (e)
        fail_msg("stored record %llu: %s", (unsigned long long)ev->seq, ferry_last_error());
    fy_buf b;
    fy_buf_init(&b, 0);
    assert_int_equal(fy_json_emit(&b, &r.event), FERRY_OK);
    json_t *v = tu_parse_json(b.data, b.len);
    fy_buf_free(&b);
    if (out_rec)
        *out_rec = r;
    else
        fy_record_free(&r);
    return v;
}

static const char *str_field(const json_t *ev, const char *k)
{
    const json_t *v = json_object_get(ev, k);
    return json_is_string(v) ? json_string_value(v) : NULL;
}

static int is_uuid4(const char *u)
{
    if (!u || strlen(u) != 36)
        return 0;
    for (int i = 0; i < 36; i++) {
        if (i == 8 || i == 13 || i == 18 || i == 23) {
            if (u[i] != '-')
                return 0;
        } else if (!strchr("0123456789abcdef", u[i])) {
            return 0;
        }
    }
    return u[14] == '4' && strchr("89ab", u[19]) != NULL;
}

static void test_record_event_struct(void **state)
{
    fixture *f = *state;
    ferry_journal *j = open_journal(f->dir, NULL);
    ferry_event ev = {.event_type = "Service start",
                      .device_id = "7f3c2a9e41b84d6f9a0c5e1d2b3f4a5c",
                      .user_id = "user@example.com",
                      .time_ms = 1795939200000,
                      .event_properties = "{\"service\":{\"serviceName\":\"backend\",\"appId\":1873312}}",
                      .user_properties = "{\"plan\":\"pro\"}",
                      .extra = "{\"app_version\":\"2.0.1\",\"os_name\":\"linux\",\"session_id\":123,"
                               "\"ip\":\"$remote\"}"};
    uint64_t seq = 99;
    int64_t before = fy_now_ms();
    assert_int_equal(ferry_record(j, &ev, &seq), FERRY_OK);
    assert_int_equal(seq, 1);
    assert_string_equal(ferry_last_error(), "");
    ferry_event ev2 = {.event_type = "second", .user_id = "u2", .insert_id = "my-insert-id"};
    assert_int_equal(ferry_record(j, &ev2, &seq), FERRY_OK);
    assert_int_equal(seq, 2);
    assert_int_equal(ferry_record(j, &ev2, NULL), FERRY_OK); /* seq pointer optional */
    int64_t after = fy_now_ms();
    ferry_close(j);

    tu_snapshot s;
    read_back(f->dir, &s);
    assert_int_equal(s.n, 3);
    fy_record r;
    json_t *e1 = stored_event(&s.ev[0], &r);
    assert_true(r.recorded_at_ms >= before && r.recorded_at_ms <= after);
    fy_record_free(&r);
    assert_string_equal(str_field(e1, "event_type"), "Service start");
    assert_string_equal(str_field(e1, "device_id"), "7f3c2a9e41b84d6f9a0c5e1d2b3f4a5c");
    assert_string_equal(str_field(e1, "user_id"), "user@example.com");
    assert_true(json_integer_value(json_object_get(e1, "time")) == 1795939200000);
    assert_true(is_uuid4(str_field(e1, "insert_id")));
    json_t *want_props = json_loads(ev.event_properties, 0, NULL);
    assert_true(json_equal(json_object_get(e1, "event_properties"), want_props));
    json_decref(want_props);
    assert_string_equal(str_field(json_object_get(e1, "user_properties"), "plan"), "pro");
    /* the extra fields are merged at the top level */
    assert_string_equal(str_field(e1, "app_version"), "2.0.1");
    assert_string_equal(str_field(e1, "os_name"), "linux");
    assert_string_equal(str_field(e1, "ip"), "$remote");
    assert_int_equal(json_integer_value(json_object_get(e1, "session_id")), 123);
    assert_int_equal(json_object_size(e1), 11);
    json_decref(e1);

    json_t *e2 = stored_event(&s.ev[1], &r);
    assert_string_equal(str_field(e2, "insert_id"), "my-insert-id");
    assert_null(json_object_get(e2, "device_id"));
    /* time 0 means "now": the time of recording */
    assert_true(json_integer_value(json_object_get(e2, "time")) == r.recorded_at_ms);
    fy_record_free(&r);
    json_t *e3 = stored_event(&s.ev[2], NULL);
    assert_string_equal(str_field(e3, "insert_id"), "my-insert-id");
    json_decref(e3);
    json_decref(e2);
    tu_snapshot_free(&s);
}

static void test_extra_conflicts(void **state)
{
    fixture *f = *state;
    ferry_journal *j = open_journal(f->dir, NULL);
    static const struct {
        ferry_event ev;
        const char *field;
    } bad[] = {
        {{.event_type = "t", .device_id = "d", .extra = "{\"device_id\":\"other\"}"}, "device_id"},
        {{.event_type = "t", .device_id = "d", .extra = "{\"device_id\":\"d\"}"}, "device_id"}, /* even equal */
        {{.event_type = "t", .device_id = "d", .extra = "{\"event_type\":\"u\"}"}, "event_type"},
        {{.event_type = "t", .user_id = "u", .extra = "{\"user_id\":\"v\",\"device_id\":\"d\"}"}, "user_id"},
        {{.event_type = "t", .device_id = "d", .insert_id = "a", .extra = "{\"insert_id\":\"b\"}"}, "insert_id"},
        {{.event_type = "t", .device_id = "d", .time_ms = 5, .extra = "{\"time\":6}"}, "time"},
        {{.event_type = "t", .device_id = "d", .event_properties = "{}", .extra = "{\"event_properties\":{}}"},
         "event_properties"},
        {{.event_type = "t", .device_id = "d", .user_properties = "{}", .extra = "{\"user_properties\":{}}"},
         "user_properties"},
        {{.event_type = "t", .device_id = "d", .extra = "[1]"}, "extra"},
        {{.event_type = "t", .device_id = "d", .extra = "{\"a\":"}, "extra"},
        {{.event_type = "t", .device_id = "d", .extra = "{\"a\":1,\"a\":2}"}, "extra"},
        {{.event_type = "t", .device_id = "d", .extra = "{\"time\":-5}"}, "time"},
        {{.event_type = "t", .device_id = "d", .event_properties = "[]"}, "event_properties"},
        {{.event_type = "t", .device_id = "d", .user_properties = "{\"a\""}, "user_properties"},
        {{.device_id = "d"}, "event_type"},
        {{.event_type = "t"}, "device_id"},
        {{.event_type = "t", .device_id = "d", .time_ms = -1}, "time"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        uint64_t seq = 77;
        ferry_err e = ferry_record(j, &bad[i].ev, &seq);
        if (e != FERRY_EINVAL)
            fail_msg("case %zu: got %d, want FERRY_EINVAL (%s)", i, e, ferry_last_error());
        if (!tu_contains(ferry_last_error(), bad[i].field))
            fail_msg("case %zu: message \"%s\" does not name %s", i, ferry_last_error(), bad[i].field);
        assert_int_equal(seq, 77); /* untouched on failure */
    }
    /* a field given only in extra is fine */
    ferry_event ok1 = {.event_type = "t", .extra = "{\"device_id\":\"from-extra\",\"time\":42}"};
    ferry_event ok2 = {.device_id = "d", .extra = "{\"event_type\":\"type-from-extra\"}"};
    uint64_t seq;
    assert_int_equal(ferry_record(j, &ok1, &seq), FERRY_OK);
    assert_int_equal(seq, 1);
    assert_int_equal(ferry_record(j, &ok2, &seq), FERRY_OK);
    assert_int_equal(seq, 2);
    ferry_close(j);
    tu_snapshot s;
    read_back(f->dir, &s);
    assert_int_equal(s.n, 2); /* nothing from the refused ones */
    json_t *e1 = stored_event(&s.ev[0], NULL), *e2 = stored_event(&s.ev[1], NULL);
    assert_string_equal(str_field(e1, "device_id"), "from-extra");
    assert_int_equal(json_integer_value(json_object_get(e1, "time")), 42);
    assert_string_equal(str_field(e2, "event_type"), "type-from-extra");
    json_decref(e1);
    json_decref(e2);
    tu_snapshot_free(&s);
}

static void test_invalid_utf8_refused(void **state)
{
    fixture *f = *state;
    ferry_journal *j = open_journal(f->dir, NULL);
    static const struct {
        ferry_event ev;
        const char *field;
    } bad[] = {
        {{.event_type = "caf\xe9", .device_id = "d"}, "event_type"},       /* Latin-1 */
        {{.event_type = "t", .device_id = "\xc0\xaf"}, "device_id"},       /* overlong */
        {{.event_type = "t", .user_id = "\xed\xa0\x80"}, "user_id"},       /* surrogate */
        {{.event_type = "t", .device_id = "d", .insert_id = "\xff"}, "insert_id"},
        {{.event_type = "t", .device_id = "d", .event_properties = "{\"k\":\"\xf4\x90\x80\x80\"}"},
         "event_properties"},
        {{.event_type = "t", .device_id = "d", .user_properties = "{\"\xfe\":1}"}, "user_properties"},
        {{.event_type = "t", .device_id = "d", .extra = "{\"os_name\":\"\x80\"}"}, "extra"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        ferry_err e = ferry_record(j, &bad[i].ev, NULL);
        if (e != FERRY_EINVAL)
            fail_msg("case %zu: got %d, want FERRY_EINVAL", i, e);
        if (!tu_contains(ferry_last_error(), bad[i].field))
            fail_msg("case %zu: message \"%s\" does not name %s", i, ferry_last_error(), bad[i].field);
    }
    ferry_close(j);
    assert_int_equal(stored_count(f->dir), 0);
}

static void test_record_json(void **state)
{
    fixture *f = *state;
    ferry_journal *j = open_journal(f->dir, NULL);
    const char *ev = "{\"event_type\":\"json\",\"device_id\":\"d\",\"event_properties\":{\"z\":1,\"a\":2,\"m\":[3]}}";
    uint64_t seq = 0;
    assert_int_equal(ferry_record_json(j, ev, strlen(ev), &seq), FERRY_OK);
    assert_int_equal(seq, 1);
    /* len is honoured */
    char buf[256];
    snprintf(buf, sizeof buf, "%s   trailing garbage", ev);
    assert_int_equal(ferry_record_json(j, buf, strlen(ev), &seq), FERRY_OK);
    assert_int_equal(seq, 2);
    const char *bad[] = {"{\"event_type\":\"t\"", "[{\"event_type\":\"t\",\"device_id\":\"d\"}]", "\"str\"",
                         "{\"device_id\":\"d\"}", "{\"event_type\":\"t\",\"device_id\":\"d\",\"time\":1e3}", "",
                         "{\"event_type\":\"t\",\"device_id\":\"d\",\"n\":18446744073709551615}"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        seq = 5;
        assert_int_equal(ferry_record_json(j, bad[i], strlen(bad[i]), &seq), FERRY_EINVAL);
        assert_true(ferry_last_error()[0] != '\0');
        assert_int_equal(seq, 5);
    }
    ferry_close(j);
    tu_snapshot s;
    read_back(f->dir, &s);
    assert_int_equal(s.n, 2);
    /* the caller's key order is kept in the record */
    fy_record r;
    assert_int_equal(fy_record_decode(s.ev[0].data, s.ev[0].len, &r), FERRY_OK);
    const msgpack_object *props = fy_map_get(&r.event, "event_properties");
    assert_non_null(props);
    assert_int_equal(props->type, MSGPACK_OBJECT_MAP);
    assert_int_equal(props->via.map.size, 3);
    const char *order[] = {"z", "a", "m"};
    for (uint32_t i = 0; i < 3; i++) {
        assert_int_equal(props->via.map.ptr[i].key.via.str.size, 1);
        assert_memory_equal(props->via.map.ptr[i].key.via.str.ptr, order[i], 1);
    }
    fy_record_free(&r);
    tu_snapshot_free(&s);
}

static void fill_batch(ferry_batch *b, size_t n, size_t pad, const char *tag)
{
    char *p = malloc(pad + 64);
    assert_non_null(p);
    for (size_t i = 0; i < n; i++) {
        int k = snprintf(p, 64, "{\"i\":%zu,\"pad\":\"", i);
        memset(p + k, 'x', pad);
        memcpy(p + (size_t)k + pad, "\"}", 3);
        ferry_event ev = {.event_type = tag, .device_id = "d", .event_properties = p};
        ferry_err e = ferry_batch_add(b, &ev);
        if (e)
            fail_msg("batch add: %s", ferry_last_error());
    }
    free(p);
}

static void test_batch_all_or_nothing(void **state)
{
    fixture *f = *state;
    ferry_options opts = {.max_bytes = 1u << 20};
    ferry_journal *j = open_journal(f->dir, &opts);
    ferry_batch *b;
    assert_int_equal(ferry_batch_new(&b), FERRY_OK);
    assert_int_equal(ferry_batch_count(b), 0);

    /* a batch of 10 too large for the bound as a whole: refused, nothing written */
    fill_batch(b, 10, 60000, "huge");
    uint64_t first = 5;
    assert_int_equal(ferry_record_batch(j, b, &first), FERRY_EFULL);
    assert_int_equal(ferry_batch_count(b), 10); /* kept for the caller */
    ferry_batch_clear(b);
    assert_int_equal(ferry_batch_count(b), 0);

    /* batches of 10 until the journal refuses one */
    ferry_err e = FERRY_OK;
    uint64_t expect_first = 1;
    int batches = 0;
    while (batches < 500) {
        fill_batch(b, 10, 900, "fill");
        e = ferry_record_batch(j, b, &first);
        if (e)
            break;
        assert_int_equal(first, expect_first);
        assert_int_equal(ferry_batch_count(b), 0); /* emptied on success */
        expect_first += 10;
        batches++;
    }
    assert_int_equal(e, FERRY_EFULL);
    assert_true(batches > 10);
    assert_int_equal(ferry_batch_count(b), 10);
    /* retrying is refused the same way */
    assert_int_equal(ferry_record_batch(j, b, &first), FERRY_EFULL);
    ferry_batch_free(b);
    ferry_close(j);
    tu_snapshot s;
    read_back(f->dir, &s);
    assert_int_equal(s.n, (size_t)batches * 10);
    for (size_t i = 0; i < s.n; i++)
        assert_int_equal(s.ev[i].seq, i + 1);
    tu_snapshot_free(&s);
}

static void test_batch_add_failure_leaves_batch(void **state)
{
    fixture *f = *state;
    ferry_journal *j = open_journal(f->dir, NULL);
    ferry_batch *b;
    assert_int_equal(ferry_batch_new(&b), FERRY_OK);
    for (int i = 0; i < 3; i++) {
        char type[8];
        snprintf(type, sizeof type, "e%d", i);
        ferry_event ev = {.event_type = type, .device_id = "d"};
        assert_int_equal(ferry_batch_add(b, &ev), FERRY_OK);
    }
    assert_int_equal(ferry_batch_count(b), 3);
    char *big = malloc(70000 + 32);
    assert_non_null(big);
    memcpy(big, "{\"pad\":\"", 8);
    memset(big + 8, 'x', 70000);
    memcpy(big + 8 + 70000, "\"}", 3);
    const ferry_event bad[] = {
        {.device_id = "d"},
        {.event_type = "t"},
        {.event_type = "t", .device_id = "d", .extra = "{\"device_id\":\"x\"}"},
        {.event_type = "t", .device_id = "d", .event_properties = "{"},
        {.event_type = "t", .device_id = "d", .event_properties = big},
    };
    const ferry_err want[] = {FERRY_EINVAL, FERRY_EINVAL, FERRY_EINVAL, FERRY_EINVAL, FERRY_ETOOBIG};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        assert_int_equal(ferry_batch_add(b, &bad[i]), want[i]);
        assert_int_equal(ferry_batch_count(b), 3);
    }
    free(big);
    const char *j1 = "{\"event_type\":", *j2 = "{\"event_type\":\"t\"}",
               *j3 = "{\"event_type\":\"e3\",\"user_id\":\"u\"}";
    assert_int_equal(ferry_batch_add_json(b, j1, strlen(j1)), FERRY_EINVAL);
    assert_int_equal(ferry_batch_add_json(b, j2, strlen(j2)), FERRY_EINVAL);
    assert_int_equal(ferry_batch_count(b), 3);
    assert_int_equal(ferry_batch_add_json(b, j3, strlen(j3)), FERRY_OK);
    assert_int_equal(ferry_batch_count(b), 4);
    uint64_t first = 0;
    assert_int_equal(ferry_record_batch(j, b, &first), FERRY_OK);
    assert_int_equal(first, 1);
    assert_int_equal(ferry_batch_count(b), 0);
    /* an empty batch records nothing */
    first = 9;
    assert_int_equal(ferry_record_batch(j, b, &first), FERRY_OK);
    assert_int_equal(first, 0);
    /* a batch can be reused after a clear */
    ferry_event ev = {.event_type = "cleared", .device_id = "d"};
    assert_int_equal(ferry_batch_add(b, &ev), FERRY_OK);
    ferry_batch_clear(b);
    ev.event_type = "e4";
    assert_int_equal(ferry_batch_add(b, &ev), FERRY_OK);
    assert_int_equal(ferry_record_batch(j, b, &first), FERRY_OK);
    assert_int_equal(first, 5);
    ferry_batch_free(b);
    ferry_batch_free(NULL);
    ferry_close(j);

    tu_snapshot s;
    read_back(f->dir, &s);
    assert_int_equal(s.n, 5);
    for (size_t i = 0; i < s.n; i++) {
        fy_record r;
        assert_int_equal(fy_record_decode(s.ev[i].data, s.ev[i].len, &r), FERRY_OK);
        char type[24];
        snprintf(type, sizeof type, "e%zu", i);
        assert_int_equal(r.event_type_len, strlen(type));
        assert_memory_equal(r.event_type, type, r.event_type_len);
        fy_record_free(&r);
    }
    tu_snapshot_free(&s);
}

/* With opt-out nothing is created or written, and every call succeeds. */
static void expect_opted_out(const char *dir, const ferry_options *opts)
{
    ferry_journal *j = open_journal(dir, opts);
    ferry_event ev = {.event_type = "t", .device_id = "d"};
    uint64_t seq = 12345;
    assert_int_equal(ferry_record(j, &ev, &seq), FERRY_OK);
    assert_int_equal(seq, 0);
    seq = 12345;
    const char *json = "{\"event_type\":\"t\",\"device_id\":\"d\"}";
    assert_int_equal(ferry_record_json(j, json, strlen(json), &seq), FERRY_OK);
    assert_int_equal(seq, 0);
    ferry_batch *b;
    assert_int_equal(ferry_batch_new(&b), FERRY_OK);
    assert_int_equal(ferry_batch_add(b, &ev), FERRY_OK);
    assert_int_equal(ferry_batch_add(b, &ev), FERRY_OK);
    seq = 12345;
    assert_int_equal(ferry_record_batch(j, b, &seq), FERRY_OK);
    assert_int_equal(seq, 0);
    assert_int_equal(ferry_batch_count(b), 0);
    ferry_batch_free(b);
    ferry_close(j);
    struct stat st;
    if (stat(dir, &st) == 0)
        fail_msg("opted out, yet %s was created", dir);
}

static void test_opt_out_option(void **state)
{
    fixture *f = *state;
    char dir[600];
    snprintf(dir, sizeof dir, "%s/opt/out/journal", f->dir);
    ferry_options opts = {.opt_out = 1};
    expect_opted_out(dir, &opts);
}

static void test_opt_out_env(void **state)
{
    fixture *f = *state;
    char dir[600];
    const char *yes[] = {"1", "true", "TRUE", "yes", "Yes"};
    for (size_t i = 0; i < sizeof yes / sizeof yes[0]; i++) {
        snprintf(dir, sizeof dir, "%s/env%zu/journal", f->dir, i);
        assert_int_equal(setenv("FERRY_OPT_OUT", yes[i], 1), 0);
        expect_opted_out(dir, NULL);
        ferry_options opts = {.max_bytes = 1u << 20};
        expect_opted_out(dir, &opts);
    }
    /* other values do not opt out */
    assert_int_equal(setenv("FERRY_OPT_OUT", "0", 1), 0);
    snprintf(dir, sizeof dir, "%s/env-no/journal", f->dir);
    ferry_journal *j = open_journal(dir, NULL);
    ferry_event ev = {.event_type = "t", .device_id = "d"};
    uint64_t seq = 0;
    assert_int_equal(ferry_record(j, &ev, &seq), FERRY_OK);
    assert_int_equal(seq, 1);
    ferry_close(j);
    unsetenv("FERRY_OPT_OUT");
    assert_int_equal(stored_count(dir), 1);
}

static void test_strerror_and_misc(void **state)
{
    (void)state;
    const char *seen[FERRY_EBUSY + 1];
    for (int c = FERRY_OK; c <= FERRY_EBUSY; c++) {
        const char *s = ferry_strerror((ferry_err)c);
        assert_non_null(s);
        assert_true(s[0] != '\0');
        for (int k = 0; k < c; k++)
            if (strcmp(seen[k], s) == 0)
                fail_msg("codes %d and %d share the text \"%s\"", k, c, s);
        seen[c] = s;
    }
    const char *unknown = ferry_strerror((ferry_err)999);
    assert_non_null(unknown);
    assert_true(unknown[0] != '\0');
    assert_string_equal(ferry_version(), FERRY_VERSION);

    ferry_journal *j = (ferry_journal *)(uintptr_t)1;
    assert_int_equal(ferry_open(NULL, NULL, &j), FERRY_EINVAL);
    assert_null(j);
    assert_int_equal(ferry_open("", NULL, &j), FERRY_EINVAL);
    ferry_options bad = {.durability = (ferry_durability)7};
    assert_int_equal(ferry_open("/nonexistent-ferry-test", &bad, &j), FERRY_EINVAL);
    ferry_options bad2 = {.overflow = (ferry_overflow)3};
    assert_int_equal(ferry_open("/nonexistent-ferry-test", &bad2, &j), FERRY_EINVAL);
    ferry_options small = {.max_bytes = 1000};
    char dir[600];
    snprintf(dir, sizeof dir, "%s/small", ((fixture *)*state)->dir);
    assert_int_equal(ferry_open(dir, &small, &j), FERRY_EINVAL);
    assert_error_mentions("minimum");
    ferry_close(NULL);
}

static void test_last_error_per_call(void **state)
{
    fixture *f = *state;
    ferry_journal *j = open_journal(f->dir, NULL);
    ferry_event bad = {.event_type = "t"};
    assert_int_equal(ferry_record(j, &bad, NULL), FERRY_EINVAL);
    assert_true(ferry_last_error()[0] != '\0');
    ferry_event good = {.event_type = "t", .device_id = "d"};
    assert_int_equal(ferry_record(j, &good, NULL), FERRY_OK);
    assert_string_equal(ferry_last_error(), "");
    ferry_close(j);
}

/* ---- threads ------------------------------------------------------------- */

enum { THREADS = 4, PER_THREAD = 500 };

typedef struct worker {
    ferry_journal *j;
    int t;
    uint64_t seqs[PER_THREAD];
    int failures;
    char error[256];
} worker;

static void *work(void *arg)
{
    worker *w = arg;
    for (int i = 0; i < PER_THREAD; i++) {
        char props[64];
        snprintf(props, sizeof props, "{\"t\":%d,\"i\":%d}", w->t, i);
        ferry_event ev = {.event_type = "threaded", .device_id = "d", .event_properties = props};
        if (ferry_record(w->j, &ev, &w->seqs[i]) != FERRY_OK) {
            if (!w->failures++)
                snprintf(w->error, sizeof w->error, "%s", ferry_last_error());
        }
    }
    return NULL;
}

static void test_threads(void **state)
{
    fixture *f = *state;
    ferry_journal *j = open_journal(f->dir, NULL);
    static worker w[THREADS];
    pthread_t th[THREADS];
    for (int t = 0; t < THREADS; t++) {
        memset(&w[t], 0, sizeof w[t]);
        w[t].j = j;
        w[t].t = t;
        assert_int_equal(pthread_create(&th[t], NULL, work, &w[t]), 0);
    }
    for (int t = 0; t < THREADS; t++)
        assert_int_equal(pthread_join(th[t], NULL), 0);
    ferry_close(j);

    enum { N = THREADS * PER_THREAD };
    static int owner[N + 1], index_of[N + 1];
    memset(owner, -1, sizeof owner);
    for (int t = 0; t < THREADS; t++) {
        if (w[t].failures)
            fail_msg("thread %d: %d failures, first: %s", t, w[t].failures, w[t].error);
        for (int i = 0; i < PER_THREAD; i++) {
            uint64_t s = w[t].seqs[i];
            if (s < 1 || s > N)
                fail_msg("thread %d event %d got seq %llu", t, i, (unsigned long long)s);
            if (owner[s] != -1)
                fail_msg("seq %llu handed out twice", (unsigned long long)s);
            owner[s] = t, index_of[s] = i;
            if (i)
                assert_true(s > w[t].seqs[i - 1]); /* a thread's events in its order */
        }
    }
    /* all N present, seqs 1..N, each record being the event its seq was returned for */
    tu_snapshot s;
    read_back(f->dir, &s);
    assert_int_equal(s.n, N);
    for (size_t k = 0; k < s.n; k++) {
        assert_int_equal(s.ev[k].seq, k + 1);
        json_t *ev = stored_event(&s.ev[k], NULL);
        json_t *p = json_object_get(ev, "event_properties");
        assert_int_equal(json_integer_value(json_object_get(p, "t")), owner[k + 1]);
        assert_int_equal(json_integer_value(json_object_get(p, "i")), index_of[k + 1]);
        json_decref(ev);
    }
    tu_snapshot_free(&s);
}

int main(void)
{
    /* the opt-out tests set it themselves; the rest must not inherit it */
    unsetenv("FERRY_OPT_OUT");
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_record_event_struct, setup, teardown),
        cmocka_unit_test_setup_teardown(test_extra_conflicts, setup, teardown),
        cmocka_unit_test_setup_teardown(test_invalid_utf8_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_record_json, setup, teardown),
        cmocka_unit_test_setup_teardown(test_batch_all_or_nothing, setup, teardown),
        cmocka_unit_test_setup_teardown(test_batch_add_failure_leaves_batch, setup, teardown),
        cmocka_unit_test_setup_teardown(test_opt_out_option, setup, teardown),
        cmocka_unit_test_setup_teardown(test_opt_out_env, setup, teardown),
        cmocka_unit_test_setup_teardown(test_strerror_and_misc, setup, teardown),
        cmocka_unit_test_setup_teardown(test_last_error_per_call, setup, teardown),
        cmocka_unit_test_setup_teardown(test_threads, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

/* Unit tests of the catalog loader and lookups (format/catalog.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "ferry.h"
#include "fy_catalog.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static ferry_err load_text(const char *text, fy_catalog **c)
{
    FILE *f = fmemopen((void *)(uintptr_t)text, strlen(text), "r");
    assert_non_null(f);
    ferry_err e = fy_catalog_read(f, "mem.tsv", c);
    fclose(f);
    return e;
}

static void test_load_and_find(void **state)
{
    (void)state;
    fy_catalog *c;
    assert_int_equal(load_text("event_type\tcategory\nService start\tSystemEvent\nReboot\tSystemMessage\n"
                               "Delta still processing remotely.\tSystemEvent\nA\\nB\\tC\\\\D\tX\n",
                               &c),
                     FERRY_OK);
    assert_int_equal(fy_catalog_size(c), 4);
    assert_int_equal(fy_catalog_find(c, "Reboot", 6), 1);
    assert_int_equal(fy_catalog_find(c, "Reboo", 5), FY_CATALOG_NONE);
    assert_int_equal(fy_catalog_find(c, "A\nB\tC\\D", 7), 3);
    assert_string_equal(fy_catalog_category(c, 1), "SystemMessage");
    assert_int_equal(fy_catalog_n_categories(c), 3);
    assert_string_equal(fy_catalog_category_at(c, 2), "X");
    assert_int_equal(fy_catalog_category_index(c, 2), 0);
    size_t len;
    assert_string_equal(fy_catalog_name(c, 2, &len), "Delta still processing remotely.");
    assert_int_equal(len, 32);
    fy_catalog_free(c);
}

static void test_many_entries_rehash(void **state)
{
    (void)state;
    size_t n = 5000, cap = 64 + n * 32;
    char *text = malloc(cap);
    assert_non_null(text);
    size_t k = (size_t)snprintf(text, cap, "category\tevent_type\n");
    for (size_t i = 0; i < n; i++)
        k += (size_t)snprintf(text + k, cap - k, "C%zu\tevent number %zu\n", i % 7, i);
    fy_catalog *c;
    assert_int_equal(load_text(text, &c), FERRY_OK);
    assert_int_equal(fy_catalog_size(c), n);
    for (size_t i = 0; i < n; i += 97) {
        char name[64];
        int m = snprintf(name, sizeof name, "event number %zu", i);
        assert_int_equal(fy_catalog_find(c, name, (size_t)m), i);
    }
    assert_int_equal(fy_catalog_n_categories(c), 7);
    fy_catalog_free(c);
    free(text);
}

static void expect_error(const char *text, const char *fragment)
{
    fy_catalog *c = (fy_catalog *)(uintptr_t)1;
    assert_int_not_equal(load_text(text, &c), FERRY_OK);
    assert_null(c);
    if (!strstr(ferry_last_error(), fragment))
        fail_msg("expected \"%s\" in \"%s\"", fragment, ferry_last_error());
}

static void test_errors(void **state)
{
    (void)state;
    expect_error("", "mem.tsv: empty");
    expect_error("event_type\n", "mem.tsv:1: header has no category column");
    expect_error("event_type\tcategory\nA\n", "mem.tsv:2: 1 field(s), the header has 2");
    expect_error("event_type\tcategory\n\nA\\x\tB\n", "mem.tsv:3: column event_type: unknown escape");
    expect_error("event_type\tcategory\nA\tB\nA\tC\n", "mem.tsv:3: event_type \"A\" is already listed on line 2");
    expect_error("event_type\tcategory\nA\t\n", "mem.tsv:2: column category is empty");
}

static void test_unescape(void **state)
{
    (void)state;
    char s[] = "a\\nb\\tc\\\\d\\re";
    size_t bad;
    assert_int_equal(fy_catalog_unescape(s, strlen(s), &bad), 9);
    assert_memory_equal(s, "a\nb\tc\\d\re", 9);
    char t[] = "ab\\";
    assert_int_equal(fy_catalog_unescape(t, 3, &bad), FY_CATALOG_NONE);
    assert_int_equal(bad, 2);
}

static void test_closest_and_check(void **state)
{
    (void)state;
    fy_catalog *c;
    assert_int_equal(load_text("event_type\tcategory\nService start\tS\nService started\tS\nService stop\tS\n"
                               "Reboot\tM\nDevice bootstrap failed, retrying\tE\n",
                               &c),
                     FERRY_OK);
    size_t d;
    assert_int_equal(fy_catalog_closest(c, "Servce start", 12, 4, &d), 0);
    assert_int_equal(d, 1);
    assert_int_equal(fy_catalog_closest(c, "Service startedd", 16, 4, &d), 1);
    assert_int_equal(fy_catalog_closest(c, "Service starte", 14, 4, &d), 0); /* a tie: the earlier entry */
    assert_int_equal(fy_catalog_closest(c, "Service stopp", 13, 4, &d), 2);
    assert_int_equal(fy_catalog_closest(c, "Service start", 13, 4, &d), 0);
    assert_int_equal(d, 0);
    assert_int_equal(fy_catalog_closest(c, "zzzzzz", 6, 2, &d), FY_CATALOG_NONE);
    assert_int_equal(fy_catalog_closest(c, "Rebot", 5, 1, &d), 3);
    assert_int_equal(fy_catalog_closest(c, "Rbt", 3, 1, &d), FY_CATALOG_NONE); /* distance 3 > bound */
    assert_int_equal(fy_catalog_check(c, "Reboot", 6), FERRY_OK);
    assert_int_equal(fy_catalog_check(c, "Device bootstrap failed retrying", 32), FERRY_EINVAL);
    assert_string_equal(ferry_last_error(), "unknown event_type \"Device bootstrap failed retrying\" "
                                            "(did you mean \"Device bootstrap failed, retrying\"?)");
    const char *js = "{\"event_type\":\"Rebot\",\"device_id\":\"x\"}";
    assert_int_equal(fy_catalog_check_json(c, js, strlen(js)), FERRY_EINVAL);
    assert_string_equal(ferry_last_error(), "unknown event_type \"Rebot\" (did you mean \"Reboot\"?)");
    assert_int_equal(fy_catalog_check_json(c, "not json", 8), FERRY_OK);
    assert_int_equal(fy_catalog_check_json(c, "{\"event_type\":7}", 16), FERRY_OK);
    assert_int_equal(fy_catalog_check(c, "Q", 1), FERRY_EINVAL);
    assert_string_equal(ferry_last_error(), "unknown event_type \"Q\" (not in catalog mem.tsv)");
    assert_int_equal(fy_catalog_suggest_bound(0), 1);
    assert_int_equal(fy_catalog_suggest_bound(12), 4);
    assert_int_equal(fy_catalog_suggest_bound(300), 8);
    fy_catalog_free(c);
}

static void test_default_path(void **state)
{
    (void)state;
    setenv("FERRY_CATALOG", "/some/where.tsv", 1);
    assert_string_equal(fy_catalog_default_path(), "/some/where.tsv");
    unsetenv("FERRY_CATALOG");
    const char *p = fy_catalog_default_path(); /* installed, else this source tree's */
    assert_non_null(p);
    fy_catalog *c;
    assert_int_equal(fy_catalog_load(NULL, &c), FERRY_OK);
    assert_true(fy_catalog_find(c, "Delta still processing remotely.", 32) != FY_CATALOG_NONE);
    assert_true(fy_catalog_size(c) >= 60);
    fy_catalog_free(c);
    assert_int_not_equal(fy_catalog_load("/nonexistent/catalog.tsv", &c), FERRY_OK);
    assert_non_null(strstr(ferry_last_error(), "/nonexistent/catalog.tsv"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_load_and_find),      cmocka_unit_test(test_many_entries_rehash),
        cmocka_unit_test(test_errors),             cmocka_unit_test(test_unescape),
        cmocka_unit_test(test_closest_and_check),  cmocka_unit_test(test_default_path),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

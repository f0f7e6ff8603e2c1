/* The README's C API example, compiled against the installed library by
 * install-test.sh. Keep the two identical. Usage: example JOURNAL_DIR */
#include <ferry.h>
#include <stdio.h>
#include <string.h>

int main(int argc, char **argv)
{
    const char *dir = argc > 1 ? argv[1] : "/var/lib/ferry/journal";
    ferry_journal *j;
    ferry_options opts = {.max_bytes = 16u << 20, .overflow = FERRY_OVERFLOW_REJECT};
    if (ferry_open(dir, &opts, &j) != FERRY_OK) {
        fprintf(stderr, "ferry: %s\n", ferry_last_error());
        return 1;
    }
    ferry_event ev = {
        .event_type = "Image download error",
        .device_id = "7f3c2a9e41b84d6f9a0c5e1d2b3f4a5c",
        .event_properties = "{\"error\":{\"message\":\"timeout\"}}",
        .extra = "{\"app_version\":\"14.1.3\",\"os_name\":\"balenaOS\"}",
    };
    uint64_t seq;
    ferry_err e = ferry_record(j, &ev, &seq); /* FERRY_OK: durable */
    if (e != FERRY_OK)
        fprintf(stderr, "ferry: %s (%s)\n", ferry_last_error(), ferry_strerror(e));

    /* Or from JSON text, or many events atomically: */
    const char *one = "{\"event_type\":\"Service start\",\"device_id\":\"dev-00001\"}";
    ferry_record_json(j, one, strlen(one), NULL);
    ferry_batch *b;
    ferry_batch_new(&b);
    const char *two = "{\"event_type\":\"Reboot\",\"device_id\":\"dev-00001\"}";
    ferry_batch_add_json(b, two, strlen(two));
    ferry_record_batch(j, b, NULL); /* all events of the batch, or none */
    ferry_batch_free(b);
    ferry_close(j);
    return e == FERRY_OK ? 0 : 1;
}

/* pc-writer: the C API workload of the reliability scenarios.
 *
 *   pc-writer DIR PREFIX FIRST COUNT BATCH DURABILITY [reopen]
 *
 * Records events FIRST..FIRST+COUNT-1 (insert_id "PREFIX-i") with
 * ferry_record (BATCH 1) or ferry_record_batch (BATCH > 1 events at a time),
 * DURABILITY full or relaxed. After each call that returned FERRY_OK it
 * writes "ack INSERT_ID SEQ" for each of its events to stdout with write(2),
 * unbuffered: under the power-cut shim an acknowledgement can only be written
 * before the cut. A failed call writes "fail I CODE" and the loop goes on
 * (the next call should fail with FERRY_EFAILED after a failed commit); with
 * "reopen", a FERRY_EFAILED handle is closed and opened again.
 * Exit: 0 when every call succeeded, else 74. */
#include "ferry.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void say(const char *s)
{
    size_t n = strlen(s);
    while (n) {
        ssize_t w = write(1, s, n);
        if (w <= 0)
            exit(70);
        s += w;
        n -= (size_t)w;
    }
}

int main(int argc, char **argv)
{
    if (argc < 7) {
        fprintf(stderr, "usage: pc-writer DIR PREFIX FIRST COUNT BATCH full|relaxed [reopen]\n");
        return 64;
    }
    const char *dir = argv[1], *prefix = argv[2];
    long first = atol(argv[3]), count = atol(argv[4]), batch = atol(argv[5]);
    int reopen = argc > 7 && !strcmp(argv[7], "reopen");
    ferry_options o = {.durability = strcmp(argv[6], "relaxed") ? FERRY_DURABILITY_FULL : FERRY_DURABILITY_RELAXED,
                       .overflow = FERRY_OVERFLOW_REJECT};
    ferry_journal *j = NULL;
    ferry_err e = ferry_open(dir, &o, &j);
    if (e) {
        fprintf(stderr, "pc-writer: %s\n", ferry_last_error());
        return 74;
    }
    ferry_batch *b;
    if (ferry_batch_new(&b))
        return 70;
    int status = 0;
    char line[256], iid[128], props[128];
    for (long i = first; i < first + count;) {
        long n = batch < 1 ? 1 : batch;
        if (i + n > first + count)
            n = first + count - i;
        uint64_t seq = 0;
        for (long k = 0; k < n; k++) {
            snprintf(iid, sizeof iid, "%s-%ld", prefix, i + k);
            snprintf(props, sizeof props, "{\"writer\":\"%s\",\"i\":%ld}", prefix, i + k);
            ferry_event ev = {.event_type = "Powercut test", .device_id = "pc-device-00000001",
                              .insert_id = iid, .event_properties = props, .time_ms = 1795939200000 + i + k};
            if (n == 1)
                e = ferry_record(j, &ev, &seq);
            else
                e = ferry_batch_add(b, &ev);
            if (e)
                break;
        }
        if (!e && n > 1)
            e = ferry_record_batch(j, b, &seq);
        if (e) {
            ferry_batch_clear(b);
            snprintf(line, sizeof line, "fail %ld %d\n", i, (int)e);
            say(line);
            fprintf(stderr, "pc-writer: %s\n", ferry_last_error());
            status = 74;
            if (e == FERRY_EFAILED && reopen) {
                ferry_close(j);
                j = NULL;
                if (ferry_open(dir, &o, &j)) {
                    fprintf(stderr, "pc-writer: reopen: %s\n", ferry_last_error());
                    break;
                }
            }
            i += n;
            continue;
        }
        for (long k = 0; k < n; k++) {
            snprintf(line, sizeof line, "ack %s-%ld %" PRIu64 "\n", prefix, i + k, seq + (uint64_t)k);
            say(line);
        }
        i += n;
    }
    ferry_batch_free(b);
    ferry_close(j);
    return status;
}

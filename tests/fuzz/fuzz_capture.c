/* fuzz_capture.c: libFuzzer target for the capture reader (format/capture.c:
 * fy_capr_open, fy_capr_next), which `ferry-journal verify` and `import` run
 * on files that come from elsewhere.
 *
 * The input is a capture file. Opening must succeed or fail with
 * FERRY_ECORRUPT / FERRY_EVERSION after reporting why. Every problem is
 * reported with a place and a message at an offset inside the file; every
 * entry's record lies inside the file, and an entry called intact holds a
 * record that passes fy_record_check and known delivery states. Reading ends
 * (the number of entries is bounded by the file's size) and a capture without
 * any problem has as many entries as its header announces. */
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ferry.h"
#include "fy_capture.h"
#include "fy_record.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_NAME "fuzz_capture"
#include "fuzz_util.h"

typedef struct seen {
    size_t size;
    uint64_t problems;
} seen;

static void on_problem(void *arg, const char *where, uint64_t offset, const char *msg)
{
    seen *s = arg;
    if (!where || !where[0] || !msg || !msg[0])
        die("a problem reported without a place or a message");
    if (offset > s->size)
        die("%s: problem at offset %llu, past the end (%zu bytes): %s", where, (unsigned long long)offset, s->size,
            msg);
    s->problems++;
}

static void within(const uint8_t *data, size_t size, const void *p, size_t n, const char *what)
{
    const uint8_t *q = p;
    if (n && (!q || q < data || q > data + size || n > (size_t)(data + size - q)))
        die("%s points outside the input", what);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    seen s = {size, 0};
    fy_capr r;
    ferry_err e = fy_capr_open(&r, data, size, on_problem, &s);
    if (e) {
        if (e != FERRY_ECORRUPT && e != FERRY_EVERSION)
            die("open failed with code %d (%s), want ECORRUPT or EVERSION", e, ferry_last_error());
        if (!s.problems)
            die("open failed without reporting a problem");
        fy_capr_close(&r);
        return 0;
    }
    const fy_cap_header *h = &r.h;
    if (h->n_dests == 0 || h->n_dests > FY_CAP_MAX_DESTS)
        die("opened with %zu destinations", h->n_dests);
    for (size_t i = 0; i < h->n_dests; i++)
        within(data, size, h->dests[i].p, h->dests[i].n, "a destination name");
    for (size_t i = 0; i < h->n_devices; i++)
        within(data, size, h->devices[i].p, h->devices[i].n, "a device id");
    for (size_t i = 0; i < h->n_gaps; i++) {
        within(data, size, h->gaps[i].dest.p, h->gaps[i].dest.n, "a gap's destination");
        within(data, size, h->gaps[i].device_id.p, h->gaps[i].device_id.n, "a gap's device id");
        within(data, size, h->gaps[i].user_id.p, h->gaps[i].user_id.n, "a gap's user id");
    }
    within(data, size, h->producer.p, h->producer.n, "the producer");
    within(data, size, h->filter.p, h->filter.n, "the filter");

    uint64_t entries = 0, intact = 0;
    fy_cap_entry ent;
    int rc;
    while ((rc = fy_capr_next(&r, &ent)) == 1) {
        if (++entries > size / 8 + 1)
            die("more entries than the file can hold");
        within(data, size, ent.rec, ent.rec_len, "a record");
        if (ent.offset >= size)
            die("an entry at offset %llu, past the end", (unsigned long long)ent.offset);
        if (!ent.intact)
            continue;
        intact++;
        if (fy_record_check(ent.rec, ent.rec_len) != FERRY_OK)
            die("an intact entry holds a record that fails the check: %s", ferry_last_error());
        for (size_t i = 0; i < h->n_dests; i++) {
            const fy_cap_state *st = &ent.states[i];
            if (st->state > FY_CAP_DEAD)
                die("an intact entry has delivery state %u", st->state);
            within(data, size, st->reason.p, st->reason.n, "a dead letter's reason");
        }
    }
    if (rc < 0)
        die("reading failed with an internal error: %s", ferry_last_error());
    if (fy_capr_next(&r, &ent) != 0)
        die("reading goes on after the end");
    if (s.problems != r.problems)
        die("%llu problems counted, %llu reported", (unsigned long long)r.problems, (unsigned long long)s.problems);
    if (!s.problems && (entries != h->count || intact != entries))
        die("no problem reported, yet %llu entries (%llu intact) where the header announces %llu",
            (unsigned long long)entries, (unsigned long long)intact, (unsigned long long)h->count);
    fy_capr_close(&r);
    return 0;
}

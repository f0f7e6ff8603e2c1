/* fuzz_response.c: libFuzzer target for the replayer's reading of an
 * Amplitude answer (replayer/response.c, rp_classify).
 *
 * Input: byte 0 picks the HTTP status (from the statuses Amplitude and the
 * proxies in front of it answer, or a transport error), byte 1 the number of
 * events sent, the rest is the response body. The verdict must be one of the
 * kinds, its message a string, every index it rejects in range and named by a
 * reason, every throttled id a string; rp_verdict_free releases it all. */
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rp.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_NAME "fuzz_response"
#include "fuzz_util.h"

static const long statuses[] = {200, 400, 413, 429, 500, 502, 503, 504, 415, 401, 403, 404, 405, 408, 302, 0};
#define N_STATUS (sizeof statuses / sizeof statuses[0])

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2)
        return 0;
    rp_response r;
    memset(&r, 0, sizeof r);
    fy_buf_init(&r.body, 1u << 20);
    r.status = statuses[data[0] % N_STATUS];
    r.transport_error = data[0] == 0xff;
    if (r.transport_error)
        snprintf(r.error, sizeof r.error, "Connection reset by peer");
    r.retry_after_s = data[0] >> 6;
    size_t n_events = data[1];
    if (size > 2 && fy_buf_append(&r.body, data + 2, size - 2))
        die("out of memory");

    rp_verdict v;
    rp_classify(&r, n_events, &v);
    if ((unsigned)v.kind > RP_RETRY)
        die("verdict kind %d is none of the kinds", (int)v.kind);
    if (!memchr(v.message, '\0', sizeof v.message))
        die("verdict message not terminated");
    if (v.n_events != n_events)
        die("verdict for %zu events, %zu were sent", v.n_events, n_events);
    if (v.kind == RP_OK && r.status != 200)
        die("HTTP %ld taken as accepted", r.status);
    if (r.transport_error && v.kind != RP_RETRY)
        die("a transport error must be retried");
    if (v.kind == RP_REJECTED) {
        size_t rejected = 0;
        if (!v.reasons)
            die("rejected without reasons");
        for (size_t i = 0; i < n_events; i++)
            if (v.reasons[i]) {
                rejected++;
                if (!v.reasons[i][0])
                    die("event %zu rejected with an empty reason", i);
            }
        if (!rejected)
            die("rejected, but no event is named");
    }
    for (size_t i = 0; i < v.n_throttled; i++)
        if (!v.throttled_ids || !v.throttled_ids[i])
            die("throttled id %zu missing", i);
    rp_verdict_free(&v);
    fy_buf_free(&r.body);
    return 0;
}

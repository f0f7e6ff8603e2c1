/* fuzz_service.c: libFuzzer target for the recording service's line
 * protocol (recorder/service.c, `ferry-record --listen`), without sockets.
 *
 * The input is what one client sends. It is cut into lines as the service
 * does (at '\n'; a last line without one counts, as after the client's
 * shutdown), each line is classified by fy_service_line, the service's own
 * grammar, and each event line goes to ferry_batch_add_json into a group as
 * in take_line (after the --strict catalog check when byte 0 is odd).
 *   - kinds and lengths are consistent with the line (len <= n; commands
 *     exactly the three spellings);
 *   - an event either joins the group (one more event, at most one record's
 *     worth more bytes) or is refused with FERRY_EINVAL / FERRY_ETOOBIG and a
 *     message, the group unchanged; the answer `error line N: REASON` made
 *     from it (fy_service_reason) is one printable line of bounded length. */
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ferry.h"
#include "fy_catalog.h"
#include "service.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_NAME "fuzz_service"
#include "fuzz_util.h"

#define REASON_MAX 400u

static void check_reason(unsigned long lineno, const char *why)
{
    char raw[1024], clean[REASON_MAX + 1];
    snprintf(raw, sizeof raw, "line %lu: %s", lineno, why);
    fy_service_reason(clean, sizeof clean, raw);
    size_t n = strlen(clean);
    if (n == 0 || n > REASON_MAX)
        die("an error reason of %zu bytes", n);
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)clean[i] < 0x20 || clean[i] == 0x7f)
            die("an error reason holds control character 0x%02x", (unsigned char)clean[i]);
}

static const fy_catalog *catalog(void)
{
    static fy_catalog *c;
    static int tried;
    if (!tried) {
        tried = 1;
        const char *path = fy_catalog_default_path();
        if (!path || fy_catalog_load(path, &c) != FERRY_OK)
            c = NULL; /* no catalog here: the strict check is skipped */
    }
    return c;
}

static void one_line(ferry_batch *b, const fy_catalog *strict, const char *p, size_t n, unsigned long lineno)
{
    size_t len = (size_t)-1;
    fy_line_kind kind = fy_service_line(p, n, &len);
    if (len > n)
        die("line length %zu > %zu", len, n);
    switch (kind) {
    case FY_LINE_TOO_LONG:
        check_reason(lineno, "longer than 1048576 bytes");
        return;
    case FY_LINE_BLANK:
        for (size_t i = 0; i < len; i++)
            if (p[i] != ' ' && p[i] != '\t')
                die("a line with 0x%02x called blank", (unsigned char)p[i]);
        return;
    case FY_LINE_NOACK:
    case FY_LINE_ACK:
    case FY_LINE_SYNC: {
        static const char *const spelled[] = {"#ferry noack", "#ferry ack", "#ferry sync"};
        const char *w = spelled[kind - FY_LINE_NOACK];
        if (len != strlen(w) || memcmp(p, w, len))
            die("'%.*s' taken for %s", (int)len, p, w);
        return;
    }
    case FY_LINE_BAD_COMMAND:
        if (!len || p[0] != '#')
            die("a bad command that does not start with '#'");
        check_reason(lineno, "unknown command");
        return;
    case FY_LINE_EVENT:
        break;
    default:
        die("unknown line kind %d", (int)kind);
    }
    if (!len || p[0] == '#')
        die("an event line that is empty or a command");
    size_t count = ferry_batch_count(b), bytes = ferry_batch_bytes(b);
    ferry_err e = strict ? fy_catalog_check_json(strict, p, len) : FERRY_OK;
    if (!e)
        e = ferry_batch_add_json(b, p, len);
    if (e) {
        if ((e != FERRY_EINVAL && e != FERRY_ETOOBIG) || !ferry_last_error()[0])
            die("event refused with code %d (%s), want EINVAL or ETOOBIG and a message", e, ferry_last_error());
        if (ferry_batch_count(b) != count || ferry_batch_bytes(b) != bytes)
            die("a refused event changed the group");
        check_reason(lineno, ferry_last_error());
        return;
    }
    if (ferry_batch_count(b) != count + 1 || ferry_batch_bytes(b) <= bytes ||
        ferry_batch_bytes(b) - bytes > FERRY_MAX_RECORD_BYTES)
        die("an accepted event added %zu events and %zu bytes", ferry_batch_count(b) - count,
            ferry_batch_bytes(b) - bytes);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const fy_catalog *strict = size && (data[0] & 1) ? catalog() : NULL;
    ferry_batch *b;
    if (ferry_batch_new(&b) != FERRY_OK)
        die("out of memory");
    const char *buf = (const char *)data;
    size_t pos = 0;
    unsigned long lineno = 0;
    while (pos < size) {
        const char *nl = memchr(buf + pos, '\n', size - pos);
        size_t end = nl ? (size_t)(nl - buf) : size;
        one_line(b, strict, buf + pos, end - pos, ++lineno);
        pos = nl ? end + 1 : size;
    }
    ferry_batch_free(b);
    return 0;
}

/* cli.c: conventions shared by the ferry programs. */
#include "fy_cli.h"

#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

const char *fy_cli_journal_dir(const char *flag, char *buf, size_t n)
{
    const char *v = flag && *flag ? flag : getenv("FERRY_JOURNAL");
    if (v && *v) {
        snprintf(buf, n, "%s", v);
        return buf;
    }
    if (geteuid() == 0) {
        snprintf(buf, n, "/var/lib/ferry/journal");
        return buf;
    }
    const char *state = getenv("XDG_STATE_HOME");
    if (state && *state) {
        snprintf(buf, n, "%s/ferry/journal", state);
        return buf;
    }
    const char *home = getenv("HOME");
    if (!home || !*home)
        return NULL;
    snprintf(buf, n, "%s/.local/state/ferry/journal", home);
    return buf;
}

int fy_cli_usage_error(const char *prog, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "%s: ", prog);
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\nTry '%s --help'.\n", prog);
    va_end(ap);
    return EX_USAGE;
}

int fy_cli_exit_code(ferry_err e)
{
    switch (e) {
    case FERRY_OK: return EX_OK;
    case FERRY_EINVAL:
    case FERRY_ETOOBIG:
    case FERRY_EVERSION: return EX_DATAERR;
    case FERRY_ENOMEM: return EX_OSERR;
    case FERRY_EFULL:
    case FERRY_EBUSY: return EX_TEMPFAIL;
    case FERRY_ENOENT: return EX_NOINPUT;
    case FERRY_EACCES: return EX_CANTCREAT;
    case FERRY_EIO:
    case FERRY_ECORRUPT:
    case FERRY_EFAILED: return EX_IOERR;
    }
    return EX_SOFTWARE;
}

int fy_cli_parse_size(const char *s, uint64_t *out)
{
    char *end;
    errno = 0;
    if (!s || !*s || *s == '-')
        return -1;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || end == s)
        return -1;
    unsigned shift = 0;
    switch (*end) {
    case '\0': break;
    case 'k': case 'K': shift = 10; end++; break;
    case 'm': case 'M': shift = 20; end++; break;
    case 'g': case 'G': shift = 30; end++; break;
    default: return -1;
    }
    if (*end == 'i' || *end == 'B')
        end += (*end == 'i' && end[1] == 'B') ? 2 : 1;
    if (*end || (shift && v > (UINT64_MAX >> shift)))
        return -1;
    *out = (uint64_t)v << shift;
    return 0;
}

int fy_cli_parse_i64(const char *s, int64_t *out)
{
    char *end;
    errno = 0;
    if (!s || !*s)
        return -1;
    long long v = strtoll(s, &end, 10);
    if (errno || *end)
        return -1;
    *out = v;
    return 0;
}

void fy_lines_init(fy_line_reader *r, FILE *f, size_t max)
{
    r->f = f;
    r->max = max;
    r->lineno = 0;
    fy_buf_init(&r->line, 0);
}

void fy_lines_free(fy_line_reader *r) { fy_buf_free(&r->line); }

int fy_lines_next(fy_line_reader *r, int *too_long)
{
    fy_buf_reset(&r->line);
    *too_long = 0;
    int c, any = 0;
    while ((c = getc_unlocked(r->f)) != EOF) {
        any = 1;
        if (c == '\n')
            break;
        if (*too_long)
            continue;
        if (r->line.len >= r->max) {
            *too_long = 1;
            fy_buf_reset(&r->line);
            continue;
        }
        if (fy_buf_putc(&r->line, (char)c))
            return -1;
    }
    if (c == EOF && ferror(r->f))
        return -1;
    if (!any)
        return 0;
    r->lineno++;
    if (r->line.len && r->line.data[r->line.len - 1] == '\r')
        r->line.len--; /* CRLF files */
    return 1;
}

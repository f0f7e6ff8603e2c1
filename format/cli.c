/* cli.c: conventions shared by the ferry programs. */
#include "fy_cli.h"

#include <errno.h>
#include <stdarg.h>
#include <string.h>
#include <strings.h>
#include <time.h>
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

int (*fy_cli_usage_hook)(const char *prog, const char *msg);

int fy_cli_env_opt_out(void)
{
    const char *v = getenv("FERRY_OPT_OUT");
    return v && (!strcmp(v, "1") || !strcasecmp(v, "true") || !strcasecmp(v, "yes"));
}

int fy_cli_usage_error(const char *prog, const char *fmt, ...)
{
    va_list ap;
    if (fy_cli_usage_hook) {
        char msg[1024];
        va_start(ap, fmt);
        vsnprintf(msg, sizeof msg, fmt, ap);
        va_end(ap);
        int code = fy_cli_usage_hook(prog, msg);
        if (code)
            return code;
    }
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

void fy_cli_format_time(int64_t ms, char *out, size_t n)
{
    time_t s = (time_t)(ms / 1000);
    struct tm tm;
    if (ms <= 0 || !gmtime_r(&s, &tm)) {
        snprintf(out, n, "-");
        return;
    }
    size_t k = strftime(out, n, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(out + k, n - k, ".%03dZ", (int)(ms % 1000));
}

static int digits(const char **s, int n, int *out)
{
    int v = 0;
    for (int i = 0; i < n; i++) {
        if (**s < '0' || **s > '9')
            return -1;
        v = v * 10 + (**s - '0');
        (*s)++;
    }
    *out = v;
    return 0;
}

int fy_cli_parse_time(const char *s, int64_t now_ms, int64_t *ms)
{
    if (!s || !*s)
        return -1;
    size_t n = strlen(s);
    char unit = s[n - 1];
    if (n >= 2 && strspn(s, "0123456789") == n - 1 && (unit == 's' || unit == 'm' || unit == 'h' || unit == 'd')) {
        int64_t v; /* an age: "90s", "15m", "2h", "7d" ago */
        char num[24];
        if (n - 1 >= sizeof num)
            return -1;
        memcpy(num, s, n - 1);
        num[n - 1] = '\0';
        if (fy_cli_parse_i64(num, &v) || v > 100000000)
            return -1;
        *ms = now_ms - v * (unit == 's' ? 1000 : unit == 'm' ? 60000 : unit == 'h' ? 3600000 : 86400000);
        return 0;
    }
    if (strspn(s, "0123456789") == strlen(s) || (s[0] == '-' && s[1] && strspn(s + 1, "0123456789") == strlen(s + 1)))
        return fy_cli_parse_i64(s, ms);
    struct tm tm;
    memset(&tm, 0, sizeof tm);
    int y, mo, d, h = 0, mi = 0, sec = 0, frac = 0;
    const char *p = s;
    if (digits(&p, 4, &y) || *p++ != '-' || digits(&p, 2, &mo) || *p++ != '-' || digits(&p, 2, &d))
        return -1;
    if (*p == 'T' || *p == 't' || *p == ' ') {
        p++;
        if (digits(&p, 2, &h) || *p++ != ':' || digits(&p, 2, &mi))
            return -1;
        if (*p == ':') {
            p++;
            if (digits(&p, 2, &sec))
                return -1;
            if (*p == '.') {
                p++;
                int scale = 100, nd = 0;
                while (*p >= '0' && *p <= '9') {
                    if (nd++ < 3) {
                        frac += (*p - '0') * scale;
                        scale /= 10;
                    }
                    p++;
                }
                if (nd == 0)
                    return -1;
            }
        }
    }
    long off = 0;
    if (*p == 'Z' || *p == 'z') {
        p++;
    } else if (*p == '+' || *p == '-') {
        int sign = *p++ == '-' ? -1 : 1, oh, om = 0;
        if (digits(&p, 2, &oh))
            return -1;
        if (*p == ':')
            p++;
        if (*p && digits(&p, 2, &om))
            return -1;
        off = sign * (oh * 3600L + om * 60L);
    }
    if (*p || mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || sec > 60)
        return -1;
    tm.tm_year = y - 1900;
    tm.tm_mon = mo - 1;
    tm.tm_mday = d;
    tm.tm_hour = h;
    tm.tm_min = mi;
    tm.tm_sec = sec;
    time_t t = timegm(&tm);
    if (t == (time_t)-1 && !(y == 1969 && mo == 12 && d == 31))
        return -1;
    *ms = ((int64_t)t - off) * 1000 + frac;
    return 0;
}


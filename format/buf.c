/* buf.c: growable byte buffer with a hard cap. */
#include "fy_buf.h"
#include "fy_fail.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void fy_buf_init(fy_buf *b, size_t limit)
{
    b->data = NULL;
    b->len = 0;
    b->cap = 0;
    b->limit = limit ? limit : SIZE_MAX;
}

void fy_buf_free(fy_buf *b)
{
    free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
}

/* Room for extra more bytes: 0, -1 past the limit, -2 out of memory. */
static int grow(fy_buf *b, size_t extra, size_t *cap_wanted)
{
    if (extra > b->limit - b->len)
        return -1;
    size_t need = b->len + extra;
    if (need <= b->cap)
        return 0;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < need)
        cap = cap > SIZE_MAX / 2 ? need : cap * 2;
    if (cap > b->limit)
        cap = b->limit;
    *cap_wanted = cap;
    char *p = realloc(b->data, cap);
    if (!p)
        return -2;
    b->data = p;
    b->cap = cap;
    return 0;
}

ferry_err fy_buf_reserve(fy_buf *b, size_t extra)
{
    size_t cap = 0;
    int rc = grow(b, extra, &cap);
    if (rc == -1)
        return fy_fail(FERRY_ETOOBIG, "larger than the limit of %zu bytes", b->limit);
    if (rc)
        return fy_fail(FERRY_ENOMEM, "out of memory growing a buffer to %zu bytes", cap);
    return FERRY_OK;
}

int fy_buf_try_append(fy_buf *b, const void *p, size_t n)
{
    size_t cap;
    if (grow(b, n, &cap))
        return -1;
    if (n)
        memcpy(b->data + b->len, p, n);
    b->len += n;
    return 0;
}

ferry_err fy_buf_append(fy_buf *b, const void *p, size_t n)
{
    ferry_err e = fy_buf_reserve(b, n);
    if (e)
        return e;
    if (n)
        memcpy(b->data + b->len, p, n);
    b->len += n;
    return FERRY_OK;
}

ferry_err fy_buf_putc(fy_buf *b, char c) { return fy_buf_append(b, &c, 1); }

ferry_err fy_buf_puts(fy_buf *b, const char *s) { return fy_buf_append(b, s, strlen(s)); }

ferry_err fy_buf_printf(fy_buf *b, const char *fmt, ...)
{
    char small[128];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(small, sizeof small, fmt, ap);
    va_end(ap);
    if (n < 0)
        return fy_fail(FERRY_EINVAL, "formatting failed");
    if ((size_t)n < sizeof small)
        return fy_buf_append(b, small, (size_t)n);
    ferry_err e = fy_buf_reserve(b, (size_t)n + 1);
    if (e)
        return e;
    va_start(ap, fmt);
    vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
    return FERRY_OK;
}

int fy_buf_msgpack_write(void *data, const char *buf, size_t len)
{
    return fy_buf_append(data, buf, len) == FERRY_OK ? 0 : -1;
}

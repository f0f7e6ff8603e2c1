/* fy_buf.h: a growable byte buffer with a hard cap (internal).
 * Everything that input can grow (records, JSON text, lines) goes through one
 * of these, so no input can make ferry allocate without bound. */
#ifndef FY_BUF_H
#define FY_BUF_H

#include <stddef.h>
#include <stdint.h>

#include "ferry_error.h"

typedef struct fy_buf {
    char *data;
    size_t len;
    size_t cap;
    size_t limit; /* appends past this fail with FERRY_ETOOBIG; 0 = SIZE_MAX */
} fy_buf;

void fy_buf_init(fy_buf *b, size_t limit);
void fy_buf_free(fy_buf *b);
static inline void fy_buf_reset(fy_buf *b) { b->len = 0; }
ferry_err fy_buf_reserve(fy_buf *b, size_t extra);
ferry_err fy_buf_append(fy_buf *b, const void *p, size_t n);
/* fy_buf_append without a message for ferry_last_error() (a caller that
 * may decline quietly): 0, or -1 past the limit or out of memory. */
int fy_buf_try_append(fy_buf *b, const void *p, size_t n);
ferry_err fy_buf_putc(fy_buf *b, char c);
ferry_err fy_buf_puts(fy_buf *b, const char *s);
ferry_err fy_buf_printf(fy_buf *b, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;

/* msgpack_packer write callback over an fy_buf (returns 0 or -1). */
int fy_buf_msgpack_write(void *data, const char *buf, size_t len);

#endif

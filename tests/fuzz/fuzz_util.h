/* fuzz_util.h: what every fuzz target shares (tests/fuzz). Each target
 * defines FUZZ_NAME (its name, for messages) before including this. */
#ifndef FUZZ_UTIL_H
#define FUZZ_UTIL_H

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

#ifndef FUZZ_NAME
#error "define FUZZ_NAME before including fuzz_util.h"
#endif

/* A broken property: say which, then abort() so that libFuzzer keeps the input. */
#if defined(__GNUC__)
__attribute__((noreturn, format(printf, 1, 2)))
#endif
static void die(const char *fmt, ...);

static void die(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs(FUZZ_NAME ": ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    abort();
}

#endif

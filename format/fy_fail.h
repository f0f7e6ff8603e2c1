/* fy_fail.h: how code inside ferry reports a failure (internal).
 * fy_fail() stores the message for ferry_last_error() and returns the code,
 * so a failing path reads: return fy_fail(FERRY_EINVAL, "line %d: ...", n); */
#ifndef FY_FAIL_H
#define FY_FAIL_H

#include "ferry_error.h"

#if defined(__GNUC__)
#define FY_PRINTF(a, b) __attribute__((format(printf, a, b)))
#else
#define FY_PRINTF(a, b)
#endif

ferry_err fy_fail(ferry_err err, const char *fmt, ...) FY_PRINTF(2, 3);

/* Maps an LMDB or errno return code to a ferry code and records
 * "<what>: <strerror>" as the message. */
ferry_err fy_fail_lmdb(int rc, const char *fmt, ...) FY_PRINTF(2, 3);

/* The ferry code an LMDB/errno return code stands for. */
ferry_err fy_err_from_lmdb(int rc);

/* Prefixes the current message with "<prefix>: " (keeps the code). */
ferry_err fy_fail_prefix(ferry_err err, const char *fmt, ...) FY_PRINTF(2, 3);

void fy_clear_error(void);

#endif

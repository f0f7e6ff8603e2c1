/* error.c: ferry's error codes and the per-thread last-failure message. */
#include "fy_fail.h"

#include <errno.h>
#include <lmdb.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#define FY_MSG_MAX 512

static _Thread_local char fy_msg[FY_MSG_MAX];

const char *ferry_strerror(ferry_err err)
{
    switch (err) {
    case FERRY_OK: return "success";
    case FERRY_EINVAL: return "invalid argument or event";
    case FERRY_ENOMEM: return "out of memory";
    case FERRY_EFULL: return "journal full";
    case FERRY_EIO: return "I/O error";
    case FERRY_ECORRUPT: return "journal or record corrupt";
    case FERRY_EVERSION: return "journal format too new for this build";
    case FERRY_ENOENT: return "no such journal";
    case FERRY_EACCES: return "permission denied";
    case FERRY_ETOOBIG: return "event too large";
    case FERRY_EFAILED: return "journal handle failed earlier; reopen it";
    case FERRY_EBUSY: return "resource busy";
    }
    return "unknown error";
}

const char *ferry_last_error(void) { return fy_msg; }

void fy_clear_error(void) { fy_msg[0] = '\0'; }

static void fy_vset(const char *fmt, va_list ap) FY_PRINTF(1, 0);
static void fy_vset(const char *fmt, va_list ap)
{
    vsnprintf(fy_msg, sizeof fy_msg, fmt, ap);
}

ferry_err fy_fail(ferry_err err, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fy_vset(fmt, ap);
    va_end(ap);
    return err;
}

ferry_err fy_fail_prefix(ferry_err err, const char *fmt, ...)
{
    char prefix[FY_MSG_MAX];
    char old[FY_MSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(prefix, sizeof prefix, fmt, ap);
    va_end(ap);
    memcpy(old, fy_msg, sizeof old);
    snprintf(fy_msg, sizeof fy_msg, "%.250s: %.255s", prefix, old);
    return err;
}

ferry_err fy_err_from_lmdb(int rc)
{
    switch (rc) {
    case MDB_SUCCESS: return FERRY_OK;
    case MDB_MAP_FULL: return FERRY_EFULL;
    case MDB_CORRUPTED:
    case MDB_PAGE_NOTFOUND:
    case MDB_INVALID:
    case MDB_BAD_VALSIZE: return FERRY_ECORRUPT;
    case MDB_VERSION_MISMATCH: return FERRY_EVERSION;
    case MDB_PANIC:
    case MDB_BAD_TXN: return FERRY_EFAILED;
    case MDB_READERS_FULL:
    case MDB_TXN_FULL:
    case MDB_DBS_FULL: return FERRY_EBUSY;
    case ENOMEM: return FERRY_ENOMEM;
    case ENOENT: return FERRY_ENOENT;
    case EACCES:
    case EPERM:
    case EROFS: return FERRY_EACCES;
    default: return FERRY_EIO;
    }
}

ferry_err fy_fail_lmdb(int rc, const char *fmt, ...)
{
    char what[FY_MSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    /* mdb_strerror also covers errno values. */
    snprintf(fy_msg, sizeof fy_msg, "%.400s: %.100s", what, mdb_strerror(rc));
    return fy_err_from_lmdb(rc);
}

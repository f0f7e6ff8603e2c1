/* ferry_error.h: the error space shared by every part of ferry.
 *
 * Values are stable: new codes are only ever appended. Each failing call also
 * leaves a one-line message naming what failed (ferry_last_error()). */
#ifndef FERRY_ERROR_H
#define FERRY_ERROR_H

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__)
#define FERRY_API __attribute__((visibility("default")))
#else
#define FERRY_API
#endif

typedef enum ferry_err {
    FERRY_OK = 0,
    FERRY_EINVAL = 1,   /* bad argument or invalid event; the message names the field */
    FERRY_ENOMEM = 2,   /* out of memory */
    FERRY_EFULL = 3,    /* journal full and the overflow policy is "reject" */
    FERRY_EIO = 4,      /* the operating system or LMDB reported an I/O error */
    FERRY_ECORRUPT = 5, /* a record or the journal failed validation */
    FERRY_EVERSION = 6, /* the journal was written by a newer, incompatible ferry */
    FERRY_ENOENT = 7,   /* no journal at that path (and creation was not asked for) */
    FERRY_EACCES = 8,   /* permission denied, or the journal cannot be created */
    FERRY_ETOOBIG = 9,  /* the event is larger than FERRY_MAX_RECORD_BYTES */
    FERRY_EFAILED = 10, /* an earlier failure left the handle unusable; reopen it */
    FERRY_EBUSY = 11    /* a resource is exhausted for now (e.g. LMDB reader slots) */
} ferry_err;

/* A short static description of a code ("journal full"). Never NULL. */
FERRY_API const char *ferry_strerror(ferry_err err);

/* The message of the last failure in the calling thread, e.g.
 * "journal /var/lib/ferry/journal is full (12.0 MiB of 12.0 MiB); policy: reject".
 * Valid until the thread's next ferry call. Empty string if nothing failed. */
FERRY_API const char *ferry_last_error(void);

#ifdef __cplusplus
}
#endif
#endif

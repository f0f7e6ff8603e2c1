/* fy_record.h: the record codec (internal; FORMAT.md is the spec).
 *
 * A record is one MessagePack array:
 *   [0] version (1)   [1] CRC-32 as 0xce + 4 bytes   [2] recorded_at ms   [3] event map
 *   [4] CLOCK_BOOTTIME ms   [5] boot id (32 hex digits)   (journal format 1.1; optional)
 * followed by nothing. The event map is the Amplitude event exactly as it will
 * be sent, always holding event_type, insert_id and time. */
#ifndef FY_RECORD_H
#define FY_RECORD_H

#include <jansson.h>
#include <msgpack.h>
#include <stddef.h>
#include <stdint.h>

#include "ferry_error.h"
#include "fy_buf.h"

#define FY_RECORD_VERSION 1u
#define FY_MAX_RECORD_BYTES 65536u  /* an encoded record never exceeds this */
#define FY_MAX_DEPTH 32u            /* record array = depth 1; msgpack-c's own limit */
#define FY_MAX_JSON_DEPTH (FY_MAX_DEPTH - 1u) /* nesting of the event object itself */
#define FY_MAX_INSERT_ID 1024u      /* Amplitude's string limit */
#define FY_UUID_LEN 36u

/* Milliseconds since the Unix epoch, wall clock. */
int64_t fy_now_ms(void);

#define FY_BOOT_ID_LEN 32u /* the kernel's boot id as 32 lowercase hex digits */

/* One reading of this machine's clocks: what a record stores about when it
 * was made. mono_ms is CLOCK_BOOTTIME (it keeps counting in suspend, never
 * jumps); it only means something together with the boot id. */
typedef struct fy_stamp {
    int64_t wall_ms;
    int64_t mono_ms;                    /* -1: unknown */
    char boot_id[FY_BOOT_ID_LEN + 1];  /* "": unknown (no /proc) */
} fy_stamp;

/* CLOCK_BOOTTIME in ms. */
int64_t fy_boottime_ms(void);
/* This boot's id (/proc/sys/kernel/random/boot_id without dashes) into
 * out[33]; "" when unavailable. Read once per process. */
void fy_boot_id(char out[FY_BOOT_ID_LEN + 1]);
/* Reads the wall clock, CLOCK_BOOTTIME and the boot id. */
void fy_stamp_now(fy_stamp *s);

/* Fills p with n random bytes (getrandom, never blocking at early boot). */
ferry_err fy_random_bytes(unsigned char *p, size_t n);

/* Writes a random (version 4) UUID and a NUL into out[37]. */
ferry_err fy_uuid4(char out[FY_UUID_LEN + 1]);

/* Parses one JSON object; on failure the message gives the column and why. */
ferry_err fy_json_parse_event(const char *text, size_t len, json_t **out);

/* Checks the Amplitude fields of an event object, fills in what the recorder
 * owes it (insert_id from gen_insert_id when absent, time = now_ms when
 * absent; `event` is modified) and appends the encoded record to out.
 * Failure leaves `out` as it was; the message names the field. */
ferry_err fy_record_encode(json_t *event, int64_t now_ms, const char *gen_insert_id, fy_buf *out);
/* The same with a full clock stamp: when it has a mono time and a boot id,
 * the record gets elements 4 and 5 (FORMAT.md, record version 1, journal
 * format 1.1); otherwise it is the 4-element record of fy_record_encode. */
ferry_err fy_record_encode_stamped(json_t *event, const fy_stamp *st, const char *gen_insert_id, fy_buf *out);

/* The first FY_RECORD_HEAD_BYTES of a record made with stamp st (array
 * header, version, CRC placeholder); returns 1 when the record gets elements
 * 4 and 5. fy_record_seal writes the CRC of the finished record rec[0..len).
 * (For other encoders of the same records: jsonfast.c.) */
#define FY_RECORD_HEAD_BYTES 7u
int fy_record_head(const fy_stamp *st, unsigned char head[FY_RECORD_HEAD_BYTES]);
void fy_record_seal(void *rec, size_t len);

/* Full check of an encoded record: CRC, bounded sizes and depth (walked
 * before msgpack-c allocates anything), allowed types only, required event
 * fields, no trailing bytes. */
ferry_err fy_record_check(const void *buf, size_t len);

/* Checks that buf holds exactly one MessagePack value of the kinds records
 * use (no bin/ext), nested at most FY_MAX_DEPTH, whose every length fits in
 * the bytes present: after this, msgpack-c allocates at most O(len). */
ferry_err fy_msgpack_check(const void *buf, size_t len);
/* The same check for the value at the start of buf; *used = its length. */
ferry_err fy_msgpack_span(const void *buf, size_t len, size_t *used);

/* A decoded record. String pointers point into the input buffer, which must
 * outlive the record (copy before ending an LMDB transaction). */
typedef struct fy_record {
    uint64_t version;
    int64_t recorded_at_ms;
    int64_t time_ms;
    const char *insert_id;
    uint32_t insert_id_len;
    const char *event_type;
    uint32_t event_type_len;
    const char *device_id; /* NULL when absent */
    uint32_t device_id_len;
    /* Elements 4 and 5 (journal format 1.1): NULL/-1 when the record has
     * none (older writers) or they are not of the expected types. */
    int64_t mono_ms;
    const char *boot_id;   /* FY_BOOT_ID_LEN bytes, not NUL-terminated */
    msgpack_object event; /* the event map */
    msgpack_unpacked up;  /* owns the decoded objects */
} fy_record;

/* Checks then decodes. On failure nothing needs freeing. */
ferry_err fy_record_decode(const void *buf, size_t len, fy_record *r);
void fy_record_free(fy_record *r);

/* The clock readings of an encoded record without decoding its event: the
 * CRC and the bounded walk of fy_record_decode, no allocation. On success
 * r->recorded_at_ms, r->mono_ms and r->boot_id are set (the rest of r is
 * zero, nothing to free); a record that fy_record_decode would refuse may
 * still pass (its event fields are not checked). */
ferry_err fy_record_peek_clock(const void *buf, size_t len, fy_record *r);

/* Appends `,"mono_ms":N,"boot_id":"..."` when the record has them (for
 * dump/export lines, after "recorded_at"); nothing otherwise. */
ferry_err fy_record_clock_json(fy_buf *b, const fy_record *r);

/* Finds a string-keyed entry of a map object; NULL when absent. */
const msgpack_object *fy_map_get(const msgpack_object *map, const char *key);

/* Appends o as JSON text. Strings are escaped; invalid UTF-8 (possible only in
 * damaged or foreign records) becomes U+FFFD; doubles use the shortest form
 * that reads back to the same value and always look like doubles ("1.0"). */
ferry_err fy_json_emit(fy_buf *b, const msgpack_object *o);
ferry_err fy_json_emit_string(fy_buf *b, const char *s, size_t n);
/* Length (1-4) of the valid UTF-8 sequence at p, n > 0 bytes available, or 0
 * when invalid (overlong forms, surrogates and values past U+10FFFF too). */
size_t fy_utf8_seq(const unsigned char *p, size_t n);

#endif

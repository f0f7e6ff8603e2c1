/* fy_jsonfast.h: JSON event text straight to a record with yajl (internal).
 *
 * The fast path of fy_json_parse_event + fy_record_encode_stamped (the
 * reference path, Jansson). It either appends exactly the bytes the
 * reference path would append for the same text, stamp and generated
 * insert_id, or it declines, leaving out as it was and reporting nothing
 * (ferry_last_error untouched): the caller then runs the reference path,
 * which gives the record or the error message. See jsonfast.c for what is
 * declined. No property policy: the caller runs the reference path when one
 * is set. */
#ifndef FY_JSONFAST_H
#define FY_JSONFAST_H

#include <stddef.h>

#include "fy_buf.h"
#include "fy_record.h"

/* Per-caller state (yajl's arena, scratch): use one from one thread at a
 * time. Reused across calls: encoding an ordinary event allocates nothing. */
typedef struct fy_jsonfast fy_jsonfast;

/* Returns 1 when the record was appended to out, 0 when declined. *fp is
 * created on first use (left NULL, and the call declined, when that fails);
 * free it with fy_jsonfast_free. gen_insert_id: the insert_id given to an
 * event without one (an ASCII string, as fy_record_encode_stamped takes);
 * NULL: a fresh fy_uuid4, made only when the event has none. */
int fy_jsonfast_encode(fy_jsonfast **fp, const char *text, size_t len, const fy_stamp *st,
                       const char *gen_insert_id, fy_buf *out);

void fy_jsonfast_free(fy_jsonfast *f);

#endif

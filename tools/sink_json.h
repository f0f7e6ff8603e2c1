/* sink_json.h: ferry-sink's request scanner (internal to tools/).
 *
 * One pass over the body validates it as JSON (RFC 8259, UTF-8, bounded
 * nesting) and records where each event lies and what kind of value its
 * Amplitude fields hold, without building a tree: a 2000-event batch costs one
 * scan and one small array. Accepted events are then written out from their
 * own bytes, so --out holds each event exactly as it was received. */
#ifndef SINK_JSON_H
#define SINK_JSON_H

#include <stddef.h>
#include <stdint.h>

#include "fy_buf.h"

#define SJ_MAX_DEPTH 128 /* nesting of the whole body; deeper is invalid JSON */

typedef enum sj_kind {
    SJ_ABSENT = 0,
    SJ_NULL,
    SJ_BOOL,
    SJ_STRING,
    SJ_INT,    /* a number without fraction or exponent that fits in int64 */
    SJ_NUMBER, /* any other number */
    SJ_OBJECT,
    SJ_ARRAY
} sj_kind;

/* A value found under a key. For strings p/n is the raw content between the
 * quotes (esc: it holds backslash escapes); otherwise the whole token. */
typedef struct sj_val {
    const char *p;
    size_t n;
    int64_t i; /* SJ_INT */
    uint8_t kind;
    uint8_t esc;
} sj_val;

typedef struct sj_event {
    size_t off, len; /* the event object's bytes */
    uint8_t ws;      /* whitespace between its tokens: minify before writing */
    uint8_t is_object;
    sj_val event_type, user_id, device_id, insert_id, time, event_properties, user_properties;
} sj_event;

typedef struct sj_request {
    sj_val api_key;
    sj_val events;      /* kind only (and the token when not an array) */
    sj_val min_id_length; /* options.min_id_length */
    size_t n_events;    /* elements of the events array */
    size_t n_kept;      /* of which the first n_kept are in ev[] */
    sj_event *ev;
    size_t cap;
} sj_request;

/* Scans a request body. Keeps at most max_keep events (the rest are only
 * counted). Returns 0, -1 for invalid JSON (err points to a static reason,
 * *err_at to the offset), -2 when out of memory. Free with sj_request_free
 * in every case. */
int sj_parse_request(const char *body, size_t len, size_t max_keep, sj_request *r, const char **err,
                     size_t *err_at);
void sj_request_free(sj_request *r);

/* Scans one JSON object (a line of --out) as an event. 0 or -1. */
int sj_parse_event(const char *text, size_t len, sj_event *ev);

/* Decodes the escapes of a string's raw content into out, which must hold n
 * bytes (decoding never grows). Returns the decoded length. */
size_t sj_unescape(const char *p, size_t n, char *out);

/* Appends the JSON text p/n without whitespace between tokens. */
ferry_err sj_minify(const char *p, size_t n, fy_buf *out);

/* Number of UTF-8 code points in s/n. */
size_t sj_utf8_len(const char *s, size_t n);

#endif

/* rewrite.h: the one place where an event leaves the journal for a request
 * body, with what the replayer changes on the way (replayer/ only). The
 * record itself is never rewritten: exports show it as stored. */
#ifndef RP_REWRITE_H
#define RP_REWRITE_H

#include <msgpack.h>
#include <stddef.h>
#include <stdint.h>

#include "ferry_error.h"
#include "fy_buf.h"

/* What is sent for the uploader's and the recorded location (--ip). */
typedef enum rp_ip_mode {
    RP_IP_NONE,   /* default: no ip and no location fields; Amplitude then has no
                     address to geolocate and leaves location empty */
    RP_IP_REMOTE, /* "ip":"$remote": the upload's source address (a device
                     uploading its own events); recorded location dropped */
    RP_IP_PASS    /* the recorded ip and location fields as they are */
} rp_ip_mode;

/* Event properties the replayer adds (flags about its own rewrites). */
#define RP_PROP_ORIGINAL_TIME "[ferry] original time" /* int: time as recorded, on corrected events */
#define RP_PROP_UNCORRECTED "[ferry] time uncorrected" /* true: untrustworthy, nothing to correct from */

#define RP_MAX_ADDED_PROPS 4

typedef struct rp_overrides {
    int set_time;     /* replace "time" by time_ms */
    int64_t time_ms;
    int64_t shift_session_ms; /* added to a positive integer "session_id" (a start time, same clock) */
    rp_ip_mode ip;
    size_t n_props;   /* added to event_properties (replacing equal keys) */
    struct {
        const char *key;
        int is_true;  /* the value true; else the integer `i` */
        int64_t i;
    } props[RP_MAX_ADDED_PROPS];
} rp_overrides;

/* Appends the event map as JSON with the overrides applied; keys keep their
 * recorded order. */
ferry_err rp_emit_event(fy_buf *b, const msgpack_object *event, const rp_overrides *o);

/* 1 when key (n bytes) is `ip` or a location field Amplitude derives from it
 * or takes instead of it (city, country, region, dma, location_lat/lng). */
int rp_is_location_field(const char *key, size_t n);

#endif

/* fy_policy.h: the property policy applied at record time (internal; the
 * public face is ferry_policy_* in ferry.h, README "Privacy" the user's view).
 *
 * A policy holds path rules over event_properties and user_properties and
 * regular expressions whose matches are redacted from string values. It is
 * applied to the Jansson event object before fy_record_encode, so what it
 * removes never reaches the journal.
 *
 * Paths: "event_properties.service.appId", "user_properties.email".
 *   - The first segment names the side: event_properties or user_properties.
 *     A path of the side alone names the whole object.
 *   - Segments are separated by '.'; "\." is a literal dot inside a key,
 *     "\\" a backslash, "\*" a literal '*'. No other escapes.
 *   - A segment that is exactly "*" matches any one key at that level.
 *   - Arrays are transparent: a path continuing into an array applies to
 *     every element (arrays of objects: "event_properties.services.token"
 *     names the token of each object in the services array).
 * Allow and deny:
 *   - Deny removes the named key (its whole value) wherever the path matches.
 *   - A side with at least one allow rule keeps only allowed keys: a key on an
 *     allowed path is kept whole (subject to deny); a key on the way to an
 *     allowed path is kept as a container holding only what is allowed below
 *     it (a non-container value there is removed); anything else is removed.
 *     A side without allow rules keeps everything not denied.
 *   - Deny wins over allow: a denied path inside an allowed subtree goes.
 *   - The sides are independent; other event fields are never touched.
 * Redaction (POSIX extended regular expressions, bytes in the C locale):
 *   every match inside any string value (not keys) of either side, at any
 *   depth, is replaced by "[redacted]"; a match is widened to whole UTF-8
 *   characters. Patterns are tried together, the leftmost (then longest)
 *   match winning, and replaced text is never searched again. A pattern
 *   that matches the empty string is refused; empty matches (e.g. \b) are
 *   skipped.
 * Counts: a removed key counts once in `dropped` whatever its size (an array
 * element removed by an allow rule counts too); a string value changed by
 * redaction counts once in `redacted`. */
#ifndef FY_POLICY_H
#define FY_POLICY_H

#include <jansson.h>
#include <stdint.h>

#include "ferry_error.h"

typedef struct ferry_policy fy_policy;

#define FY_REDACTED "[redacted]"

/* Meta keys (FORMAT.md) counting what policies removed at record time. */
#define FY_META_PROPS_DROPPED "props_dropped"
#define FY_META_VALUES_REDACTED "values_redacted"

typedef struct fy_policy_counts {
    uint64_t dropped;  /* keys (and array elements) removed */
    uint64_t redacted; /* string values changed by redaction */
} fy_policy_counts;

ferry_err fy_policy_new(fy_policy **out);
/* Adds a rule; FERRY_EINVAL names the path (or regex) and what is wrong, and
 * once the policy is in use (fy_policy_ref) rules can no longer be added. */
ferry_err fy_policy_allow(fy_policy *p, const char *path);
ferry_err fy_policy_deny(fy_policy *p, const char *path);
ferry_err fy_policy_redact(fy_policy *p, const char *regex);
/* Takes a reference (the policy is frozen from then on) / drops one; the
 * policy is freed with its last reference. fy_policy_new returns one. */
fy_policy *fy_policy_ref(const fy_policy *p);
void fy_policy_unref(fy_policy *p);
/* Whether the policy has no rule at all. */
int fy_policy_empty(const fy_policy *p);

/* Applies the policy to an event object in place and adds what it did to *c.
 * A side that is not an object is left alone (fy_record_encode refuses it)
 * unless a rule names the side as a whole. */
ferry_err fy_policy_apply(const fy_policy *p, json_t *event, fy_policy_counts *c);

#endif

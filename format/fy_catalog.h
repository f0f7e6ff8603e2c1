/* fy_catalog.h: the event catalog, the list of known event types (internal).
 *
 * A catalog is a TSV file such as data/supervisor-events.tsv:
 *   - the first line is a header naming the columns; `event_type` and
 *     `category` are required, in any position, other columns are ignored;
 *   - then one event type per line, with exactly as many tab-separated fields
 *     as the header; blank lines are skipped; a UTF-8 BOM and CRLF endings
 *     are accepted; lines are at most FY_CATALOG_MAX_LINE bytes;
 *   - names are data: spaces, commas, periods, parentheses and any other
 *     UTF-8 are kept verbatim. The only special character is the backslash,
 *     which starts an escape in every field: \n newline, \t tab, \r carriage
 *     return, \\ backslash. Any other backslash sequence is an error, so a
 *     literal backslash is always written \\;
 *   - an event_type must be non-empty, valid UTF-8, and listed once.
 * Every error names the file and line ("FILE:LINE: reason").
 *
 * The default catalog is $FERRY_CATALOG when set, else the installed
 * ${datadir}/ferry/supervisor-events.tsv, else the source tree's
 * data/supervisor-events.tsv (for programs run from a build tree). */
#ifndef FY_CATALOG_H
#define FY_CATALOG_H

#include <stddef.h>
#include <stdio.h>

#include "ferry_error.h"

#define FY_CATALOG_ENV "FERRY_CATALOG"
#define FY_CATALOG_MAX_LINE 65536u     /* bytes per line, escapes included */
#define FY_CATALOG_MAX_ENTRIES 100000u /* event types per catalog */
#define FY_CATALOG_NONE ((size_t)-1)

typedef struct fy_catalog fy_catalog;

/* The default catalog's path (see above), or NULL when none exists; then
 * ferry_last_error() says where it looked. */
const char *fy_catalog_default_path(void);

/* Loads a catalog; path NULL means the default. On failure *out is NULL and
 * the message is "FILE:LINE: reason" (or "FILE: reason"). */
ferry_err fy_catalog_load(const char *path, fy_catalog **out);
/* The same from an open stream; name is used in messages. */
ferry_err fy_catalog_read(FILE *f, const char *name, fy_catalog **out);
void fy_catalog_free(fy_catalog *c);

/* The file it was loaded from. */
const char *fy_catalog_path(const fy_catalog *c);
/* Number of event types, in file order: entry i is 0 <= i < size. */
size_t fy_catalog_size(const fy_catalog *c);
const char *fy_catalog_name(const fy_catalog *c, size_t i, size_t *len);
const char *fy_catalog_category(const fy_catalog *c, size_t i);
/* Distinct categories, in order of first appearance. */
size_t fy_catalog_n_categories(const fy_catalog *c);
const char *fy_catalog_category_at(const fy_catalog *c, size_t k);
/* Index of the category of entry i among fy_catalog_category_at(). */
size_t fy_catalog_category_index(const fy_catalog *c, size_t i);

/* Index of the exact name (bytes), or FY_CATALOG_NONE. */
size_t fy_catalog_find(const fy_catalog *c, const char *name, size_t len);

/* The known name closest to name by Levenshtein distance over bytes, if its
 * distance is at most max_dist (FY_CATALOG_NONE otherwise); ties go to the
 * earlier entry. The computation is bounded: O(max_dist * len) per entry. */
size_t fy_catalog_closest(const fy_catalog *c, const char *name, size_t len, size_t max_dist, size_t *dist);

/* The check a recorder runs under --strict. FERRY_OK when name is known;
 * otherwise FERRY_EINVAL with the message
 *   unknown event_type "Servce start" (did you mean "Service start"?)
 * (names are shown JSON-escaped and cut to 160 bytes; without a close name
 * the parenthesis says "not in catalog FILE"). */
ferry_err fy_catalog_check(const fy_catalog *c, const char *name, size_t len);
/* The same for one event as JSON text (a --jsonl line, a --listen message).
 * Returns FERRY_OK when the text is not a JSON object with a string
 * event_type: the recorder's own validation reports that. */
ferry_err fy_catalog_check_json(const fy_catalog *c, const char *json, size_t len);

/* The suggestion bound fy_catalog_check uses for a name of len bytes:
 * a third of its length, at least 1 and at most 8. */
size_t fy_catalog_suggest_bound(size_t len);

/* Decodes one TSV field in place (the escapes above); returns its new
 * length, or FY_CATALOG_NONE on a bad escape (*bad = offset of the \). */
size_t fy_catalog_unescape(char *s, size_t len, size_t *bad);

#endif

/* timeline.h: reading every stored event of a journal, for
 * `ferry-journal timeline` and `ferry-journal stat --by-type/--by-category`.
 *
 * Timeline: the supervisor never sent durations, so they are derived from
 * pairs of events, per device, in event-time order (ties: journal order):
 *
 *   op          start event                    finish event -> outcome
 *   download    Delta/Docker image download    Image downloaded -> downloaded, Image download error -> error
 *   removal     Image removal                  Image removed -> removed, Image removal error -> error
 *   kill        Service kill                   Service stop, Service already stopped[ and container
 *                                              removed] -> stopped, Service stop error -> error
 *   install     Service install                Service installed -> installed, Service install error -> error
 *   start       Service start                  Service started -> started, Service start error -> error
 *   bootstrap   Device bootstrap               Device bootstrap success -> success,
 *                                              Device bootstrap failed, retrying -> failed
 *   config      Apply config change in progress  ... success -> success, ... error -> error
 *   boot-config Apply boot config in progress    ... success -> success, ... error -> error
 *   purge       Purge data                     Purge data success -> success, Purge data error -> error
 *
 * Image operations are keyed by image name, service operations by (appId,
 * serviceId, releaseId), the others by device (purge: appId). A repeated
 * download start while the download is open is another attempt of it (delta
 * not ready yet); any other repeated start leaves the earlier one unmatched.
 * `Supervisor start`, `Reboot` and `Shutdown` cut off every open operation of
 * the device (unmatched, cut_by = that event); what is still open at the end
 * of the data is unmatched with cut_by null. A finish without a start (its
 * start deleted, or before --since) is counted as an orphan.
 *
 * Per release R (a releaseId seen in a download or install operation):
 *   - core: R's downloads and installs, and for each install the first start
 *     of the same service and release after it; kills and removals that start
 *     inside the window so far are added (the old release's containers and
 *     images), extending it;
 *   - start: the last `Update notification` at most 15 min before the first
 *     core operation (notified: true), else that operation's start;
 *   - outcome: incomplete if the last operation of some (op, subject) in the
 *     window is unmatched, or a successful install has no start; else failed
 *     if the last one of some (op, subject) is an error; else complete;
 *   - end: the last finish in the window (null when incomplete);
 *   - restarts: `Service restart` events of R's services (crash loops).
 *
 * The journal deletes delivered events by default: these commands see what is
 * stored (ferry-replay --keep-delivered keeps more). */
#ifndef FERRY_TIMELINE_H
#define FERRY_TIMELINE_H

#include <stdint.h>

#include "ferry_error.h"
#include "fy_journal.h"
#include "fy_record.h"

/* Calls visit for every stored record in sequence order, reading in short
 * read transactions; the record's strings are valid only during the call.
 * Records that cannot be decoded are reported on stderr and counted. A
 * non-zero return from visit stops the scan with FERRY_ENOMEM. */
typedef int (*jt_visit)(void *ctx, uint64_t seq, const fy_record *r);
ferry_err jt_scan(fy_journal *j, jt_visit visit, void *ctx, uint64_t *undecodable);

/* Stored events per event_type, in first-seen order. */
typedef struct jt_type_count {
    char *name;
    size_t len;
    uint64_t count;
} jt_type_count;
ferry_err jt_count_types(fy_journal *j, jt_type_count **out, size_t *n, uint64_t *undecodable);
void jt_free_types(jt_type_count *t, size_t n);

/* `ferry-journal timeline [--device-id ID] [--since T] [--until T] [--json]`
 * (argv[0] is "timeline"). Returns an exit code. */
int jt_timeline_cmd(fy_journal *j, int argc, char **argv);


#endif

/* clock.h: which recorded times to trust, and the correction of the others
 * (replayer/ only; docs/time.md explains the rules).
 *
 * A device without a real-time clock boots with a wrong wall clock until NTP
 * sets it. Each record keeps the wall time it was made (recorded_at), the
 * CLOCK_BOOTTIME reading and the boot id. Within one boot, wall - mono is
 * constant while the wall clock is right and jumps when it is set; so:
 *   - a boot's records are cut into segments where that offset jumps by more
 *     than `jump_ms` between consecutive records;
 *   - the trusted segment is the last one holding a record whose wall time is
 *     at or after the floor (by default ferry's first release: no event can be
 *     older than the software that recorded it); its first such record is the
 *     anchor;
 *   - an event of another segment is corrected from the anchor:
 *     wall' = anchor.wall + (mono - anchor.mono), its `time` moved by the same
 *     amount (wall' - wall);
 *   - in the replayer's own boot its clock now is the last observation: when
 *     it is trustworthy it may be the anchor; when it is not (before the
 *     floor), that boot's events are held back until it is;
 *   - a boot with no trustworthy reading at all, and a record without mono
 *     time and boot id whose wall time is before the floor, cannot be
 *     corrected: such events go out flagged, unchanged.
 * Records are observed in sequence order; a verdict uses everything observed
 * so far, which the batch builder keeps up to the end of the journal. */
#ifndef RP_CLOCK_H
#define RP_CLOCK_H

#include <stdint.h>

#include "ferry_error.h"
#include "fy_journal.h"
#include "fy_record.h"

#define RP_CLOCK_JUMP_MS 10000 /* default: steps below this are left alone */

typedef struct rp_clock rp_clock;

/* floor_ms: wall times before it are not trusted; jump_ms: the least change
 * of wall - mono within a boot that counts as the clock being set. */
rp_clock *rp_clock_new(int64_t floor_ms, int64_t jump_ms);
void rp_clock_free(rp_clock *c);

/* Records one more record's clock readings; seq above every one before. */
ferry_err rp_clock_observe(rp_clock *c, uint64_t seq, const fy_record *r);
/* Observes every event stored after the highest seq observed, in txn.
 * Undecodable records are skipped (the batch builder dead-letters them). */
ferry_err rp_clock_catch_up(rp_clock *c, fy_journal *j, MDB_txn *txn);
/* The highest seq observed (0: none). */
uint64_t rp_clock_observed(const rp_clock *c);

/* This process's clock now (boot id "" when unknown): the newest reading of
 * its own boot. */
void rp_clock_set_now(rp_clock *c, const fy_stamp *now);

typedef enum rp_time_verdict {
    RP_TIME_TRUSTED,     /* send as recorded */
    RP_TIME_CORRECTED,   /* send with time + *delta_ms */
    RP_TIME_UNCORRECTED, /* untrustworthy, no anchor: send flagged, unchanged */
    RP_TIME_HOLD         /* this boot, and its clock is not trustworthy yet: wait */
} rp_time_verdict;

/* The verdict for the observed record r at seq; *delta_ms (for CORRECTED) is
 * what to add to the event's time. */
rp_time_verdict rp_clock_judge(const rp_clock *c, uint64_t seq, const fy_record *r, int64_t *delta_ms);

/* The pure rule, for the unit tests and for rp_clock_judge: the corrected
 * wall time of a reading (wall, mono) from an anchor of the same boot. */
int64_t rp_clock_correct(int64_t anchor_wall, int64_t anchor_mono, int64_t mono);

/* The compiled-in default floor (FERRY_TIME_FLOOR, a date: ferry's first
 * release unless the build sets another). */
int64_t rp_clock_default_floor_ms(void);

#endif

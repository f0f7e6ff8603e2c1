/* recorder_internal.h: what ferry-record's service needs from the library
 * beyond ferry.h (recorder/ only; not installed). */
#ifndef RECORDER_INTERNAL_H
#define RECORDER_INTERNAL_H

#include "ferry.h"

/* Drops this process's mapping of the journal's pages (they stay in the page
 * cache): see fy_journal_release_pages. No-op when opted out. */
void ferry_release_mapped_pages(ferry_journal *j);

/* The largest footprint one commit may add (fy_journal_max_txn_bytes; 0
 * when opted out: nothing is written). */
uint64_t ferry_journal_max_txn_bytes(const ferry_journal *j);

/* Makes the batch apply j's property policy as events are added (the
 * journal would otherwise apply it to the whole batch at commit, decoding
 * each record again). Only for an empty batch (FERRY_EINVAL otherwise). */
ferry_err ferry_batch_use_policy_of(ferry_batch *b, const ferry_journal *j);

#endif

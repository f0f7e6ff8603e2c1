/* recorder_internal.h: what ferry-record's service needs from the library
 * beyond ferry.h (recorder/ only; not installed). */
#ifndef RECORDER_INTERNAL_H
#define RECORDER_INTERNAL_H

#include "ferry.h"

/* Drops this process's mapping of the journal's pages (they stay in the page
 * cache): see fy_journal_release_pages. No-op when opted out. */
void ferry_release_mapped_pages(ferry_journal *j);

#endif

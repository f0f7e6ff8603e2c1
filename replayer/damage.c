/* damage.c: ferry-replay's look at the journal's pages before LMDB reads
 * them. LMDB has no page checksums: on a damaged page it returns
 * MDB_CORRUPTED, or trips an assertion and aborts, or reads outside its map.
 * A replayer that crashes on every start would be restarted forever by a
 * service manager without delivering anything, so it reads the live pages
 * once with the checked walker (fy_pagewalk.h) and, on damage, stops with a
 * message naming the journal and the remedy (exit 65). It never repairs by
 * itself: a recorder may have the journal open, and moving it from under
 * that recorder would lose its next events (`ferry-journal salvage` refuses
 * while the journal is open; contrib/ runs it before the services start). */
#include "replay.h"
#include "fy_cli.h"
#include "fy_pagewalk.h"

#include <stdio.h>

int rp_check_pages(const char *dir)
{
    char first[300];
    if (!pw_journal_damaged(dir, first, sizeof first))
        return 0;
    rp_report_damage(dir, first);
    return EX_DATAERR;
}

void rp_report_damage(const char *dir, const char *what)
{
    fprintf(stderr,
            "ferry-replay: journal %s is damaged (%s); nothing was sent. Stop ferry-record, then run "
            "`ferry-journal -j %s salvage`: it keeps every readable event and quarantines the rest\n",
            dir, what, dir);
}

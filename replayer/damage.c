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

#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

static void first_problem(void *arg, uint64_t pgno, const char *msg)
{
    char *out = arg;
    if (out[0])
        return;
    if (pgno == UINT64_MAX)
        snprintf(out, 300, "%s", msg);
    else
        snprintf(out, 300, "page %" PRIu64 ": %s", pgno, msg);
}

int rp_check_pages(const char *dir)
{
    char data[4200], first[300] = "";
    struct stat st;
    snprintf(data, sizeof data, "%s/data.mdb", dir);
    if (stat(data, &st) != 0 || st.st_size == 0)
        return 0; /* no journal yet: opening reports it */
    pw_result r;
    if (pw_walk(data, 0, &r, first_problem, first) != 0)
        return 0; /* unreadable: opening reports it */
    uint64_t damaged = r.damaged_pages;
    int lost = 0;
    for (int d = 0; d < PW_NDB; d++)
        lost |= r.db[d].n_lost || r.db[d].lost_values;
    pw_free(&r);
    if (!damaged && !lost)
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

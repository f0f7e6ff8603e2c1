/* fy_pagewalk.h: reads a journal's data.mdb page by page without LMDB.
 *
 * LMDB has no page checksums and trusts every page it reads: a flipped bit
 * in a branch page can make it return MDB_CORRUPTED, MDB_PAGE_NOTFOUND, or
 * read outside the map and crash. This walker reads the file with pread and
 * checks every page before using it (its own number in the header, its
 * exact flags, node offsets inside the page and the nodes packed up to its
 * end, keys ascending within the bounds its parent gives, overflow runs
 * inside the used file and on pages nothing else uses, the free list naming
 * no live page), so damage is reported and never followed. What it reads from intact pages is what `salvage` keeps.
 *
 * Layout of LMDB 0.9 (native word size and byte order), as mdb.c writes it:
 * page header {pgno word, pad u16, flags u16, lower u16, upper u16 | pages
 * u32}, then u16 node offsets; node {lo u16, hi u16, flags u16, ksize u16,
 * key, data}; meta pages 0 and 1 hold MDB_meta after the header. */
#ifndef FY_PAGEWALK_H
#define FY_PAGEWALK_H

#include <stddef.h>
#include <stdint.h>

/* One key/value, copied out of the file. */
typedef struct pw_entry {
    unsigned char *k, *v;
    uint32_t kn, vn;
} pw_entry;

/* A key range [lo, hi) of a subtree that could not be read (hi NULL: no
 * upper bound). */
typedef struct pw_range {
    unsigned char lo[512], hi[512];
    uint16_t lon, hin;
    int has_hi;
} pw_range;

enum { PW_META, PW_EVENTS, PW_CURSORS, PW_DEAD, PW_IMPORTED, PW_GAPS, PW_NDB };

typedef struct pw_db {
    int found;          /* the main database names it */
    uint64_t entries;   /* entry count LMDB recorded for it (when found) */
    int entries_ok;     /* that count comes from an undamaged record */
    uint64_t rec_page;  /* the main-database page holding its record */
    pw_entry *e;        /* in key order, from the tree */
    size_t n, cap;
    pw_range *lost;     /* subtrees that could not be read */
    size_t n_lost;
    uint64_t lost_values; /* overflow values that could not be read */
} pw_db;

typedef struct pw_result {
    unsigned psize;
    uint64_t file_pages;
    int meta_used;        /* 0 or 1; -1: neither meta page is usable */
    int metas_bad;        /* how many of the two meta pages are damaged */
    int meta_stale;       /* the meta used may not be the newest (the other is damaged or out of step) */
    uint64_t txnid, mapsize;
    uint64_t damaged_pages; /* distinct pages found damaged */
    int main_lost;        /* the main database (names of the others) could not be read */
    int free_lost;        /* LMDB's free list could not be read (nothing of ferry's is lost) */
    pw_db db[PW_NDB];
    int moved;            /* a writer committed during the walk: damage found may be its
                             rewriting, not damage (walk again) */
    pw_entry *orphans;    /* leaf entries from pages the trees do not reach */
    size_t n_orphans, cap_orphans;
} pw_result;

/* Called for each problem: pgno (UINT64_MAX: not a page) and a message. */
typedef void pw_problem_fn(void *arg, uint64_t pgno, const char *msg);

/* Walks path (a data.mdb). Returns 0, or -1 with errno when the file
 * cannot be read at all. Damage is reported through cb and counted in r;
 * with scan_orphans, pages no tree reaches are read too when some subtree
 * was lost (they may hold the entries of a damaged branch page). */
int pw_walk(const char *path, int scan_orphans, pw_result *r, pw_problem_fn *cb, void *arg);
void pw_free(pw_result *r);

/* Whether the walk found damaged pages or lost subtrees or values. */
int pw_found_damage(const pw_result *r);

/* pw_walk for a journal a writer may be committing to: a walk that found
 * damage while the newest transaction moved is repeated (up to 10 walks),
 * restart(arg) first, so that cb's receiver forgets the earlier walk's
 * problems. Returns pw_walk's result; *r is the last walk, and damage in it
 * with r->moved still set was never confirmed (leave it to LMDB). */
int pw_walk_settled(const char *path, int scan_orphans, pw_result *r, pw_problem_fn *cb, void *arg,
                    void (*restart)(void *arg));

/* For programs about to open the journal in dir: 1 when its live pages are
 * damaged (what: the first problem), 0 when sound, missing or unreadable
 * (opening reports those). Reads every live page once, again when a writer
 * committed meanwhile (pw_result.moved). */
int pw_journal_damaged(const char *dir, char *what, size_t n);

/* Whether key (kn bytes) lies in one of db's lost ranges. */
int pw_in_lost(const pw_db *db, const unsigned char *k, size_t kn);

#endif

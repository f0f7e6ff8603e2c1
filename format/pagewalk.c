/* pagewalk.c: a checked, LMDB-free reader of data.mdb (fy_pagewalk.h). */
#include "fy_pagewalk.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* LMDB 0.9 writes pgno_t, size_t and txnid_t as the machine's word: the
 * layout of a 32-bit build differs from a 64-bit one, and a journal is read
 * by a build of its own word size (FORMAT.md, section 2). */
#define W ((unsigned)sizeof(size_t))
#define HDR (W + 8u)       /* PAGEHDRSZ: pgno, pad, flags, lower, upper */
#define PG_FLAGS (W + 2u)
#define PG_LOWER (W + 4u)
#define PG_UPPER (W + 6u)
#define PG_PAGES (W + 4u)  /* overflow pages: u32 over lower/upper */
#define NODESZ 8u     /* offsetof(MDB_node, mn_data) */
#define P_BRANCH 0x01u
#define P_LEAF 0x02u
#define P_OVERFLOW 0x04u
#define P_META 0x08u
#define F_BIGDATA 0x01u
#define F_SUBDATA 0x02u
#define F_DUPDATA 0x04u
#define MDB_MAGIC 0xBEEFC0DEu
#define P_INVALID UINT64_MAX /* "no page" in reports */
#define PG_NONE (W == 8 ? UINT64_MAX : (uint64_t)UINT32_MAX) /* LMDB's P_INVALID: an empty database */
#define MAX_DEPTH 32
#define DBSZ (8u + 5u * W) /* MDB_db: pad u32, flags u16, depth u16, 3 page counts, entries, root */
#define DB_DEPTH 6u
#define DB_ENTRIES (8u + 3u * W)
#define DB_ROOT (8u + 4u * W)
/* MDB_meta after the page header: magic u32, version u32, address, mapsize, dbs[2], last_pg, txnid */
#define MM_MAGIC HDR
#define MM_VERSION (HDR + 4u)
#define MM_MAPSIZE (HDR + 8u + W)
#define MM_PSIZE (HDR + 8u + 2u * W) /* dbs[FREE_DBI].md_pad holds the page size */
#define MM_MAIN (MM_PSIZE + DBSZ)
#define MM_LAST (MM_PSIZE + 2u * DBSZ)
#define MM_TXNID (MM_LAST + W)
#define DB_FLAGS 4u
#define MDB_INTEGERKEY 0x08u
#define MAX_MAPSIZE (1ull << 44) /* beyond any journal: a flipped high byte */
#define WALK_TRIES 10            /* pw_walk_settled's walks at most */

typedef struct walker {
    int fd;
    pw_result *r;
    pw_problem_fn *cb;
    void *arg;
    unsigned char *seen; /* bitmap: pages reached by a tree */
    unsigned char *bad;  /* bitmap: pages found damaged (counted once) */
    unsigned char *buf;  /* one page per depth level */
    int meta_hdr_bad;    /* bit m: meta page m has a damaged header */
    uint64_t last_pg;    /* the used meta's last page: no live page lies past it */
    int intkey;          /* keys are native words (the free database) */
    struct run { uint64_t pg, from, to; } *runs; /* overflow pages [from, to) past what the value needs */
    size_t n_runs;
    unsigned char *freed; /* bitmap: pages the free database lists */
    pw_db fdb;            /* the free database's tree (entries not kept) */
} walker;

static const char *const db_names[PW_NDB] = {"meta", "events", "cursors", "dead", "imported", "gaps"};

static uint16_t u16(const unsigned char *p) { uint16_t v; memcpy(&v, p, 2); return v; }
static uint32_t u32(const unsigned char *p) { uint32_t v; memcpy(&v, p, 4); return v; }
static uint64_t u64(const unsigned char *p) { uint64_t v; memcpy(&v, p, 8); return v; }
/* A pgno_t / size_t / txnid_t of this build. */
static uint64_t word(const unsigned char *p) { return W == 8 ? u64(p) : u32(p); }

static void report(walker *w, uint64_t pgno, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;
static void report(walker *w, uint64_t pgno, const char *fmt, ...)
{
    char msg[400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (pgno != P_INVALID && pgno < w->r->file_pages) {
        if (w->bad[pgno / 8] & (1u << (pgno % 8)))
            return; /* one report per page */
        w->bad[pgno / 8] |= (unsigned char)(1u << (pgno % 8));
        w->r->damaged_pages++;
    }
    if (w->cb)
        w->cb(w->arg, pgno, msg);
}

static int read_page(walker *w, uint64_t pgno, unsigned char *out)
{
    unsigned ps = w->r->psize;
    size_t got = 0;
    while (got < ps) {
        ssize_t n = pread(w->fd, out + got, ps - got, (off_t)(pgno * ps + got));
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return -1;
        got += (size_t)n;
    }
    return 0;
}

static void mark_seen(walker *w, uint64_t pgno) { w->seen[pgno / 8] |= (unsigned char)(1u << (pgno % 8)); }
static int is_seen(const walker *w, uint64_t pgno) { return (w->seen[pgno / 8] >> (pgno % 8)) & 1; }

static int push(pw_entry **v, size_t *n, size_t *cap, const void *k, size_t kn, const void *d, size_t dn)
{
    if (*n == *cap) {
        size_t nc = *cap ? *cap * 2 : 256;
        pw_entry *ne = realloc(*v, nc * sizeof *ne);
        if (!ne)
            return -1;
        *v = ne, *cap = nc;
    }
    pw_entry *e = &(*v)[*n];
    e->k = malloc(kn + 1);
    e->v = malloc(dn + 1);
    if (!e->k || !e->v) {
        free(e->k), free(e->v);
        return -1;
    }
    memcpy(e->k, k, kn);
    if (dn)
        memcpy(e->v, d, dn);
    e->kn = (uint32_t)kn, e->vn = (uint32_t)dn;
    (*n)++;
    return 0;
}

static int keycmp(const unsigned char *a, size_t an, const unsigned char *b, size_t bn)
{
    int c = memcmp(a, b, an < bn ? an : bn);
    return c ? c : (an > bn) - (an < bn);
}

/* Key order of the tree being walked: the free database's keys are
 * transaction ids, native words compared as integers (MDB_INTEGERKEY). */
static int wkeycmp(const walker *w, const unsigned char *a, size_t an, const unsigned char *b, size_t bn)
{
    if (w->intkey && an == W && bn == W) {
        uint64_t x = word(a), y = word(b);
        return (x > y) - (x < y);
    }
    return keycmp(a, an, b, bn);
}

static void add_lost(pw_db *db, const unsigned char *lo, size_t lon, const unsigned char *hi, size_t hin)
{
    pw_range *nr = realloc(db->lost, (db->n_lost + 1) * sizeof *nr);
    if (!nr)
        return;
    db->lost = nr;
    pw_range *x = &nr[db->n_lost++];
    memset(x, 0, sizeof *x);
    x->lon = (uint16_t)(lon < sizeof x->lo ? lon : sizeof x->lo);
    if (lo)
        memcpy(x->lo, lo, x->lon);
    x->has_hi = hi != NULL;
    x->hin = (uint16_t)(hin < sizeof x->hi ? hin : sizeof x->hi);
    if (hi)
        memcpy(x->hi, hi, x->hin);
}

static void free_entries(pw_entry *e, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(e[i].k), free(e[i].v);
    free(e);
}

int pw_in_lost(const pw_db *db, const unsigned char *k, size_t kn)
{
    for (size_t i = 0; i < db->n_lost; i++) {
        const pw_range *x = &db->lost[i];
        if (keycmp(k, kn, x->lo, x->lon) >= 0 && (!x->has_hi || keycmp(k, kn, x->hi, x->hin) < 0))
            return 1;
    }
    return 0;
}

/* A page of the given kind whose header and node table are sound. Returns
 * the number of nodes, or -1 (reported). */
static int check_page(walker *w, uint64_t pgno, const unsigned char *p, unsigned kind)
{
    unsigned ps = w->r->psize;
    if (word(p) != pgno) {
        report(w, pgno, "page header names page %" PRIu64 " (overwritten or misplaced)", word(p));
        return -1;
    }
    /* Exactly the type: LMDB clears P_DIRTY before writing a page, and a
     * stray bit is not harmless (P_DIRTY makes a writer change the read-only
     * map in place; P_LOOSE or P_KEEP on the copy a writer makes keeps that
     * copy from ever being written, so the next tree points to garbage). */
    unsigned flags = u16(p + PG_FLAGS);
    if (flags != kind) {
        report(w, pgno, "page flags 0x%04x, expected a %s page", flags, kind == P_BRANCH ? "branch" : "leaf");
        return -1;
    }
    unsigned lower = u16(p + PG_LOWER), upper = u16(p + PG_UPPER);
    if (lower < HDR || lower > upper || upper > ps || (lower - HDR) % 2) {
        report(w, pgno, "node table bounds %u..%u do not fit a %u-byte page", lower, upper, ps);
        return -1;
    }
    int n = (int)((lower - HDR) / 2);
    if (n == 0) {
        report(w, pgno, "%s page with no nodes", kind == P_BRANCH ? "branch" : "leaf");
        return -1;
    }
    /* LMDB keeps the nodes packed from upper to the end of the page (node
     * add, delete and key update all move them so): the even-rounded node
     * sizes add up to exactly psize - upper. A changed lower or upper (nodes
     * dropped from or added to the table) breaks that. */
    size_t used = 0;
    for (int i = 0; i < n; i++) {
        unsigned off = u16(p + HDR + 2u * (unsigned)i);
        if (off < upper || off + NODESZ > ps || off % 2) {
            report(w, pgno, "node %d at offset %u is outside the page's node area", i, off);
            return -1;
        }
        unsigned ks = u16(p + off + 6);
        size_t end = (size_t)off + NODESZ + ks;
        if (kind == P_LEAF) {
            unsigned nf = u16(p + off + 4);
            size_t ds = (size_t)u16(p + off) | (size_t)u16(p + off + 2) << 16;
            if (nf & ~(unsigned)(F_BIGDATA | F_SUBDATA | F_DUPDATA)) {
                report(w, pgno, "node %d has unknown flags 0x%x", i, nf);
                return -1;
            }
            end += (nf & F_BIGDATA) ? W : ds;
        }
        if (end > ps || ks > 511) {
            report(w, pgno, "node %d (key %u bytes) runs past the end of the page", i, ks);
            return -1;
        }
        used += (end - off + 1) & ~(size_t)1;
    }
    if (used != ps - upper) {
        report(w, pgno, "nodes fill %zu bytes, the page header says %u (a damaged node table)", used, ps - upper);
        return -1;
    }
    return n;
}

/* The value of a leaf node, reading its overflow pages if it has some. *v
 * is malloc'd when *owned. Returns 0, or -1 (damaged, reported). */
static int node_value(walker *w, uint64_t pgno, const unsigned char *node, pw_db *db, unsigned char **v,
                      size_t *vn, int *owned)
{
    unsigned ps = w->r->psize;
    size_t ds = (size_t)u16(node) | (size_t)u16(node + 2) << 16;
    unsigned ks = u16(node + 6);
    *owned = 0;
    if (!(u16(node + 4) & F_BIGDATA)) {
        *v = (unsigned char *)(uintptr_t)(node + NODESZ + ks);
        *vn = ds;
        return 0;
    }
    uint64_t op = word(node + NODESZ + ks);
    if (op < 2 || op >= w->r->file_pages) {
        report(w, pgno, "a value's overflow page %" PRIu64 " is outside the file", op);
        if (db)
            db->lost_values++;
        return -1;
    }
    unsigned char *hdr = w->buf + (size_t)(MAX_DEPTH + 1) * ps;
    if (read_page(w, op, hdr) || word(hdr) != op || u16(hdr + PG_FLAGS) != P_OVERFLOW) {
        report(w, op, "overflow page (referenced from page %" PRIu64 ") has a damaged header", pgno);
        if (db)
            db->lost_values++;
        return -1;
    }
    uint64_t pages = u32(hdr + PG_PAGES);
    /* (Past the used meta's last page only for a live tree: an orphan may
     * come from a newer transaction whose meta page is damaged.) */
    if (pages == 0 || op + pages > w->r->file_pages || (db && op + pages - 1 > w->last_pg) ||
        (uint64_t)ds + HDR > pages * ps) {
        report(w, op, "overflow run of %" PRIu64 " page(s) does not hold its %zu-byte value", pages, ds);
        if (db)
            db->lost_values++;
        return -1;
    }
    unsigned char *buf = malloc(ds + 1);
    if (!buf)
        return -1;
    ssize_t got = pread(w->fd, buf, ds, (off_t)(op * ps + HDR));
    if (got != (ssize_t)ds) {
        free(buf);
        report(w, op, "overflow value cannot be read");
        if (db)
            db->lost_values++;
        return -1;
    }
    /* A run longer than its value needs is legal (LMDB overwrites a dirty
     * value in place) but its count may be a damaged one: freeing the value
     * frees them all. Checked once every tree was read: they must be pages
     * nothing else uses. */
    uint64_t need = ((uint64_t)ds + HDR - 1) / ps + 1;
    if (db && pages > need) {
        struct run *nr = realloc(w->runs, (w->n_runs + 1) * sizeof *nr);
        if (nr) {
            w->runs = nr;
            w->runs[w->n_runs++] = (struct run){op, op + need, op + pages};
        }
        pages = need;
    }
    for (uint64_t i = 0; i < pages; i++) {
        if (db && is_seen(w, op + i)) {
            free(buf);
            report(w, op, "overflow run of page %" PRIu64 " overlaps page %" PRIu64 " of another structure", op,
                   op + i);
            db->lost_values++;
            return -1;
        }
    }
    for (uint64_t i = 0; i < pages; i++)
        mark_seen(w, op + i);
    *v = buf, *vn = ds, *owned = 1;
    return 0;
}

/* A free-database entry {txnid -> IDL: count, then page numbers}: every
 * page it lists must be one no tree uses (LMDB hands them out again). */
static void free_entry(walker *w, uint64_t pgno, const unsigned char *node)
{
    unsigned char *v;
    size_t vn;
    int owned;
    if (node_value(w, pgno, node, &w->fdb, &v, &vn, &owned))
        return;
    uint64_t cnt = vn >= W ? word(v) : 0;
    /* (LMDB reserves the record before filling it: it may hold more room
     * than pages, never fewer.) */
    if (vn < W || vn % W || cnt > vn / W - 1) {
        report(w, pgno, "a free-list entry of %zu bytes lists %" PRIu64 " page(s)", vn, cnt);
    } else {
        for (uint64_t i = 1; i <= cnt; i++) {
            uint64_t pg = word(v + i * W);
            /* (A free page may lie past the end of the file: LMDB never
             * writes a page it freed in the transaction that made it.) */
            if (pg < 2 || pg > w->last_pg) {
                report(w, pgno, "the free list names page %" PRIu64 ", outside the used file", pg);
                break;
            }
            if (pg < w->r->file_pages && is_seen(w, pg)) {
                report(w, pgno, "the free list names page %" PRIu64 ", which a tree uses", pg);
                break;
            }
            if (pg < w->r->file_pages)
                w->freed[pg / 8] |= (unsigned char)(1u << (pg % 8));
        }
    }
    if (owned)
        free(v);
}

/* Walks the subtree at pgno whose keys lie in [lo, hi). Leaves go to db;
 * an unreadable subtree is recorded as a lost range of db. */
static int walk(walker *w, uint64_t pgno, int depth, int want_depth, const unsigned char *lo, size_t lon,
                 const unsigned char *hi, size_t hin, pw_db *db, int is_main)
{
    unsigned ps = w->r->psize;
    if (depth > MAX_DEPTH || depth > want_depth) {
        report(w, pgno, "tree deeper than its recorded depth %d", want_depth);
        add_lost(db, lo, lon, hi, hin);
        return 1;
    }
    if (pgno < 2 || pgno >= w->r->file_pages || pgno > w->last_pg) {
        report(w, P_INVALID,
               "a reference to page %" PRIu64 " outside the file (%" PRIu64 " pages, last used %" PRIu64 ")", pgno,
               w->r->file_pages, w->last_pg);
        add_lost(db, lo, lon, hi, hin);
        return 1;
    }
    if (is_seen(w, pgno)) {
        report(w, pgno, "page reached twice (a loop or a shared page)");
        add_lost(db, lo, lon, hi, hin);
        return 1;
    }
    unsigned char *p = w->buf + (size_t)depth * ps;
    if (read_page(w, pgno, p)) {
        report(w, pgno, "page cannot be read (file truncated?)");
        add_lost(db, lo, lon, hi, hin);
        return 1;
    }
    unsigned kind = depth == want_depth ? P_LEAF : P_BRANCH;
    int n = check_page(w, pgno, p, kind);
    if (n < 0) {
        add_lost(db, lo, lon, hi, hin);
        return 1;
    }
    /* Keys ascend within [lo, hi); a branch's first key is empty (implicit lo). */
    const unsigned char *pk = lo;
    size_t pkn = lon;
    for (int i = 0; i < n; i++) {
        const unsigned char *node = p + u16(p + HDR + 2u * (unsigned)i);
        unsigned ks = u16(node + 6);
        const unsigned char *k = node + NODESZ;
        if (kind == P_BRANCH && i == 0)
            k = lo, ks = (unsigned)lon;
        else if ((pk && wkeycmp(w, k, ks, pk, pkn) < (i == 0 ? 0 : 1)) || (hi && wkeycmp(w, k, ks, hi, hin) >= 0)) {
            report(w, pgno, "key %d is out of order or outside its parent's range", i);
            add_lost(db, lo, lon, hi, hin);
            return 1;
        }
        pk = k, pkn = ks;
    }
    /* Marked only once sound: a page rejected here (say, for a damaged
     * separator in its parent) stays a candidate of the orphan scan. */
    mark_seen(w, pgno);
    if (kind == P_BRANCH) {
        int child_failed = 0;
        for (int i = 0; i < n; i++) {
            /* Bounds are copied: the next walk() reuses deeper buffers only. */
            const unsigned char *node = p + u16(p + HDR + 2u * (unsigned)i);
            uint64_t child = (uint64_t)u16(node) | (uint64_t)u16(node + 2) << 16;
            if (W == 8) /* the node's flags hold the high bits of a 64-bit page number */
                child |= (uint64_t)u16(node + 4) << 32;
            const unsigned char *clo = i == 0 ? lo : node + NODESZ;
            size_t clon = i == 0 ? lon : u16(node + 6);
            const unsigned char *chi = hi;
            size_t chin = hin;
            if (i + 1 < n) {
                const unsigned char *nx = p + u16(p + HDR + 2u * (unsigned)(i + 1));
                chi = nx + NODESZ, chin = u16(nx + 6);
            }
            child_failed |= walk(w, child, depth + 1, want_depth, clo, clon, chi, chin, db, is_main);
        }
        /* The damage may be this page's own separators or pointers: its
         * whole range is searched among unreachable pages. */
        if (child_failed)
            add_lost(db, lo, lon, hi, hin);
        return 0;
    }
    for (int i = 0; i < n; i++) {
        const unsigned char *node = p + u16(p + HDR + 2u * (unsigned)i);
        unsigned ks = u16(node + 6), nf = u16(node + 4);
        /* ferry uses no DUPSORT database; only the main one names others. */
        if ((nf & F_DUPDATA) || (is_main != 1 && (nf & F_SUBDATA))) {
            report(w, pgno, "node %d has flags 0x%x, not possible in this database", i, nf);
            db->lost_values++;
            continue;
        }
        if (is_main == 2) {
            free_entry(w, pgno, node);
            continue;
        }
        if (is_main) {
            /* The main database names the others: {name -> MDB_db}. */
            size_t ds = (size_t)u16(node) | (size_t)u16(node + 2) << 16;
            for (int d = 0; d < PW_NDB; d++) {
                if (ks != strlen(db_names[d]) || memcmp(node + NODESZ, db_names[d], ks))
                    continue;
                /* LMDB opens a name that is not a database record as
                 * MDB_INCOMPATIBLE; ferry makes every database with no flags
                 * (other flags change LMDB's key order). */
                if (!(nf & F_SUBDATA) || ds != DBSZ || u16(node + NODESZ + ks + DB_FLAGS)) {
                    report(w, pgno, "the record of database %s is damaged (node flags 0x%x, %zu bytes)", db_names[d],
                           nf, ds);
                    w->r->main_lost = 1;
                    add_lost(&w->r->db[d], NULL, 0, NULL, 0);
                    continue;
                }
                const unsigned char *md = node + NODESZ + ks;
                pw_db *t = &w->r->db[d];
                t->found = 1;
                t->rec_page = pgno;
                t->entries = word(md + DB_ENTRIES);
                uint64_t root = word(md + DB_ROOT);
                unsigned dep = u16(md + DB_DEPTH);
                if (root == PG_NONE)
                    continue; /* empty */
                if (dep == 0 || dep > MAX_DEPTH) {
                    report(w, pgno, "database %s has an implausible depth %u", db_names[d], dep);
                    add_lost(t, NULL, 0, NULL, 0);
                    continue;
                }
                walk(w, root, depth + 1, depth + (int)dep, NULL, 0, NULL, 0, t, 0);
            }
            continue;
        }
        unsigned char *v;
        size_t vn;
        int owned;
        if (node_value(w, pgno, node, db, &v, &vn, &owned))
            continue;
        if (push(&db->e, &db->n, &db->cap, node + NODESZ, ks, v, vn))
            report(w, P_INVALID, "out of memory");
        if (owned)
            free(v);
    }
    return 0;
}

/* Meta page m (0/1) at offset m * psize; 0 if usable, -2 if its magic,
 * version, page size and transaction are sound (*txnid, *psize set) but the
 * fields LMDB acts on are not, -1 otherwise. */
static int read_meta(walker *w, int m, unsigned char *p, uint64_t *txnid, unsigned *psize)
{
    if (pread(w->fd, p, MM_TXNID + W, (off_t)m * (off_t)w->r->psize) != (ssize_t)(MM_TXNID + W))
        return -1;
    /* LMDB itself reads a meta page by its magic and version only; a bad
     * page number or flags is damage worth reporting, not a reason to drop
     * the newest transaction. */
    if (u32(p + MM_MAGIC) != MDB_MAGIC || u32(p + MM_VERSION) != 1)
        return -1;
    if (word(p) != (uint64_t)m || u16(p + PG_FLAGS) != P_META)
        w->meta_hdr_bad |= 1 << m;
    unsigned s = u32(p + MM_PSIZE);
    if (s < 512 || s > 65536 || (s & (s - 1)))
        return -1;
    /* The fields LMDB acts on: the databases' flags (they choose its key
     * order and MDB_INCOMPATIBLE), the roots and the last page (a root
     * past it, or a last page below a live page, hands live pages out
     * again), the map size (LMDB maps that much). Page counts, entries and
     * the address are statistics LMDB does not act on. */
    uint64_t last = word(p + MM_LAST), mapsize = word(p + MM_MAPSIZE);
    uint64_t froot = word(p + MM_PSIZE + DB_ROOT), mroot = word(p + MM_MAIN + DB_ROOT);
    *psize = s;
    *txnid = word(p + MM_TXNID);
    /* Transaction t writes meta page t % 2 (mdb_env_write_meta). */
    if (*txnid && (*txnid & 1) != (uint64_t)m)
        return -1;
    if (u16(p + MM_PSIZE + DB_FLAGS) != MDB_INTEGERKEY || u16(p + MM_MAIN + DB_FLAGS) != 0 || last < 1 ||
        mapsize > MAX_MAPSIZE || (froot != PG_NONE && (froot < 2 || froot > last)) ||
        (mroot != PG_NONE && (mroot < 2 || mroot > last)))
        return -2;
    return 0;
}

/* The transaction of the newer usable meta page now (0: none usable). */
static uint64_t newest_txnid(walker *w)
{
    unsigned char m[160];
    uint64_t t, newest = 0;
    unsigned ps;
    for (int i = 0; i < 2; i++)
        if (read_meta(w, i, m, &t, &ps) == 0 && t > newest)
            newest = t;
    return newest;
}

int pw_walk(const char *path, int scan_orphans, pw_result *r, pw_problem_fn *cb, void *arg)
{
    memset(r, 0, sizeof *r);
    walker w = {0};
    w.r = r, w.cb = cb, w.arg = arg;
    w.fd = open(path, O_RDONLY | O_CLOEXEC);
    if (w.fd < 0)
        return -1;
    struct stat st;
    if (fstat(w.fd, &st) != 0) {
        int err = errno;
        close(w.fd);
        errno = err;
        return -1;
    }
    /* The page size: from meta 0, else from meta 1 at each possible size. */
    unsigned char m0[160], m1[160];
    uint64_t t0 = 0, t1 = 0;
    unsigned s0 = 0, s1 = 0;
    long sys = sysconf(_SC_PAGESIZE);
    r->psize = sys > 0 ? (unsigned)sys : 4096;
    int rc0 = read_meta(&w, 0, m0, &t0, &s0), rc1 = -1;
    int ok0 = rc0 == 0, ok1 = 0;
    if (ok0)
        r->psize = s0;
    for (unsigned s = ok0 ? s0 : 512; s <= 65536 && !ok1; s *= 2) {
        r->psize = s;
        rc1 = read_meta(&w, 1, m1, &t1, &s1);
        ok1 = rc1 == 0 && s1 == s;
        if (ok0)
            break;
    }
    if (ok1 && ok0 && s1 != s0)
        ok1 = 0;
    /* What a failed commit leaves: when writing the meta page fails, LMDB
     * writes it back with the old transaction and last page but the new
     * roots (mdb_env_write_meta), so the roots may lie past its last page.
     * Older than a sound other meta page, such a page is never read (LMDB
     * takes the newer one) and the next commit overwrites it: not damage,
     * just not usable. */
    int stale0 = rc0 == -2 && ok1 && t1 > t0, stale1 = rc1 == -2 && ok0 && s1 == s0 && t0 > t1;
    r->psize = ok0 ? s0 : ok1 ? s1 : (sys > 0 ? (unsigned)sys : 4096);
    r->file_pages = (uint64_t)st.st_size / r->psize;
    size_t bits = (size_t)(r->file_pages / 8 + 1);
    w.seen = calloc(1, bits);
    w.bad = calloc(1, bits);
    w.freed = calloc(1, bits);
    w.buf = malloc((size_t)(MAX_DEPTH + 2) * r->psize);
    if (!w.seen || !w.bad || !w.buf || !w.freed) {
        free(w.seen), free(w.bad), free(w.buf), free(w.freed);
        close(w.fd);
        errno = ENOMEM;
        return -1;
    }
    if (!ok0 && !stale0)
        report(&w, 0, "meta page 0 is damaged");
    if (!ok1 && !stale1)
        report(&w, 1, "meta page 1 is damaged");
    r->metas_bad = (!ok0 && !stale0) + (!ok1 && !stale1);
    r->meta_stale = r->metas_bad > 0;
    for (int m = 0; m < 2; m++)
        if ((w.meta_hdr_bad >> m & 1) && (m ? ok1 : ok0))
            report(&w, (uint64_t)m, "meta page %d has a damaged page header (its content is still used)", m);
    if (r->file_pages < 2)
        report(&w, P_INVALID, "the file holds %" PRIu64 " page(s); a journal has at least 2", r->file_pages);
    mark_seen(&w, 0);
    if (r->file_pages > 1)
        mark_seen(&w, 1);
    /* Healthy metas hold consecutive transactions (or both 0 when new):
     * otherwise a damaged txnid may hide the newest one. */
    int suspect = ok0 && ok1 && (t0 > t1 ? t0 - t1 : t1 - t0) > 1;
    r->meta_stale |= suspect;
    if (suspect)
        report(&w, t0 > t1 ? 0 : 1, "meta pages hold transactions %" PRIu64 " and %" PRIu64 ", not consecutive",
               t0, t1);
    /* The newer usable meta whose main root lies inside the file. */
    const unsigned char *meta = NULL;
    for (int pass = 0; pass < 2 && !meta; pass++) {
        int m = (ok0 && ok1) ? ((t1 > t0) ^ pass) : ok0 ? 0 : ok1 ? 1 : -1;
        if (m < 0 || (pass && !(ok0 && ok1)))
            break;
        const unsigned char *cand = m ? m1 : m0;
        uint64_t root = word(cand + MM_MAIN + DB_ROOT), last = word(cand + MM_LAST);
        if (root != PG_NONE && (root >= r->file_pages || root > last)) {
            report(&w, (uint64_t)m, "meta page %d points to a main root %" PRIu64 " outside the file", m, root);
            suspect = 1;
            r->meta_stale = 1;
            continue;
        }
        meta = cand;
        r->meta_used = m;
    }
    if (!meta) {
        r->meta_used = -1;
        r->main_lost = 1;
        for (int d = 0; d < PW_NDB; d++)
            add_lost(&r->db[d], NULL, 0, NULL, 0);
    } else {
        r->txnid = word(meta + MM_TXNID);
        r->mapsize = word(meta + MM_MAPSIZE);
        w.last_pg = word(meta + MM_LAST);
        uint64_t root = word(meta + MM_MAIN + DB_ROOT);
        unsigned dep = u16(meta + MM_MAIN + DB_DEPTH);
        if (root != PG_NONE) {
            pw_db main = {0};
            if (dep == 0 || dep > MAX_DEPTH) {
                report(&w, (uint64_t)r->meta_used, "the main database has an implausible depth %u", dep);
                add_lost(&main, NULL, 0, NULL, 0);
            } else {
                walk(&w, root, 0, (int)dep - 1, NULL, 0, NULL, 0, &main, 1);
            }
            /* ferry makes meta, events, cursors and dead together: some
             * without the others is a damaged main database (LMDB would
             * make a new, empty one in its place). */
            int req = r->db[PW_META].found + r->db[PW_EVENTS].found + r->db[PW_CURSORS].found + r->db[PW_DEAD].found;
            if (req > 0 && req < 4 && !main.n_lost && !r->main_lost)
                report(&w, root, "the main database names %d of the journal's 4 databases", req);
            if (main.n_lost || main.lost_values || (req > 0 && req < 4)) {
                r->main_lost = 1;
                for (int d = 0; d < PW_NDB; d++)
                    if (!r->db[d].found && !r->db[d].n_lost)
                        add_lost(&r->db[d], NULL, 0, NULL, 0);
            }
            free(main.lost);
            free_entries(main.e, main.n);
        }
        /* The free database, after every other tree: no page it lists may
         * be one of theirs. */
        uint64_t froot = word(meta + MM_PSIZE + DB_ROOT);
        unsigned fdep = u16(meta + MM_PSIZE + DB_DEPTH);
        if (froot != PG_NONE) {
            w.intkey = 1;
            if (fdep == 0 || fdep > MAX_DEPTH)
                report(&w, (uint64_t)r->meta_used, "the free database has an implausible depth %u", fdep);
            else
                walk(&w, froot, 0, (int)fdep - 1, NULL, 0, NULL, 0, &w.fdb, 2);
            w.intkey = 0;
            if (w.fdb.n_lost || w.fdb.lost_values)
                r->free_lost = 1;
        }
        /* Overflow runs longer than their values: the extra pages are
         * freed with the value, so they must be used by nothing else. */
        for (size_t i = 0; i < w.n_runs; i++)
            for (uint64_t pg = w.runs[i].from; pg < w.runs[i].to; pg++)
                if (pg >= r->file_pages || pg > w.last_pg || is_seen(&w, pg) || (w.freed[pg / 8] >> (pg % 8) & 1)) {
                    report(&w, w.runs[i].pg, "overflow run claims page %" PRIu64 ", which is in use or free", pg);
                    break;
                }
        /* LMDB's entry count of a fully read tree is the number read; a
         * different one is a damaged record (its page is then reported, and
         * no count from it is trusted). */
        for (int d = 0; d < PW_NDB; d++) {
            pw_db *t = &r->db[d];
            if (t->found && !t->n_lost && !t->lost_values && t->entries != t->n)
                report(&w, t->rec_page, "database %s records %" PRIu64 " entries, its tree holds %zu", db_names[d],
                       t->entries, t->n);
        }
        for (int d = 0; d < PW_NDB; d++) {
            pw_db *t = &r->db[d];
            t->entries_ok = t->found && !r->main_lost && !(w.bad[t->rec_page / 8] >> (t->rec_page % 8) & 1);
        }
    }
    /* A damaged meta page may have been the newest: its transaction's pages
     * are then unreachable from the other one. Look for entries past the
     * end of each tree among them (salvage filters what was deleted). */
    if ((r->metas_bad || suspect) && meta)
        for (int d = 0; d < PW_NDB; d++) {
            pw_db *t = &r->db[d];
            if (t->n)
                add_lost(t, t->e[t->n - 1].k, t->e[t->n - 1].kn, NULL, 0);
            else if (!t->n_lost)
                add_lost(t, NULL, 0, NULL, 0);
        }
    int any_lost = 0;
    for (int d = 0; d < PW_NDB; d++)
        any_lost |= r->db[d].n_lost > 0;
    /* Pages no tree reached may hold a lost subtree's leaves; also stale
     * copies from older transactions, which the caller filters. */
    if (scan_orphans && any_lost) {
        unsigned char *p = w.buf;
        for (uint64_t pg = 2; pg < r->file_pages; pg++) {
            if (is_seen(&w, pg) || read_page(&w, pg, p) || word(p) != pg || (u16(p + PG_FLAGS) & 0x7fu) != P_LEAF)
                continue;
            pw_problem_fn *keep = w.cb;
            w.cb = NULL; /* an orphan that does not parse is just old free space */
            uint64_t dmg = r->damaged_pages;
            int n = check_page(&w, pg, p, P_LEAF);
            r->damaged_pages = dmg;
            w.bad[pg / 8] &= (unsigned char)~(1u << (pg % 8));
            for (int i = 0; i < n; i++) {
                const unsigned char *node = p + u16(p + HDR + 2u * (unsigned)i);
                unsigned char *v;
                size_t vn;
                int owned;
                if ((u16(node + 4) & (F_SUBDATA | F_DUPDATA)) || node_value(&w, pg, node, NULL, &v, &vn, &owned))
                    continue;
                push(&r->orphans, &r->n_orphans, &r->cap_orphans, node + NODESZ, u16(node + 6), v, vn);
                if (owned)
                    free(v);
            }
            r->damaged_pages = dmg;
            w.cb = keep;
        }
    }
    /* The walker is no LMDB reader: nothing pins the snapshot it reads, and
     * a writer may commit meanwhile. Transaction T's pages are reused from
     * T + 2 on, so the walk is consistent when the newest meta page still
     * holds T; otherwise what looked damaged may have been rewritten. */
    r->moved = meta && newest_txnid(&w) != r->txnid;
    free(w.seen), free(w.bad), free(w.buf), free(w.freed), free(w.runs), free(w.fdb.lost);
    free_entries(w.fdb.e, w.fdb.n);
    close(w.fd);
    return 0;
}

void pw_free(pw_result *r)
{
    for (int d = 0; d < PW_NDB; d++) {
        free_entries(r->db[d].e, r->db[d].n);
        free(r->db[d].lost);
    }
    free_entries(r->orphans, r->n_orphans);
    memset(r, 0, sizeof *r);
}

typedef struct first_msg {
    char *out;
    size_t n;
} first_msg;

static void keep_first(void *arg, uint64_t pgno, const char *msg)
{
    first_msg *f = arg;
    if (f->n == 0 || f->out[0])
        return;
    if (pgno == P_INVALID)
        snprintf(f->out, f->n, "%s", msg);
    else
        snprintf(f->out, f->n, "page %" PRIu64 ": %s", pgno, msg);
}

static void forget_first(void *arg)
{
    first_msg *f = arg;
    if (f->n)
        f->out[0] = '\0';
}

int pw_walk_settled(const char *path, int scan_orphans, pw_result *r, pw_problem_fn *cb, void *arg,
                    void (*restart)(void *arg))
{
    for (int attempt = 1;; attempt++) {
        int rc = pw_walk(path, scan_orphans, r, cb, arg);
        if (rc || !r->moved || !pw_found_damage(r) || attempt == WALK_TRIES)
            return rc;
        pw_free(r);
        if (restart)
            restart(arg);
    }
}

int pw_journal_damaged(const char *dir, char *what, size_t n)
{
    char data[4200];
    struct stat st;
    snprintf(data, sizeof data, "%s/data.mdb", dir);
    first_msg f = {what, n};
    forget_first(&f);
    if (stat(data, &st) != 0 || st.st_size == 0)
        return 0;
    pw_result r;
    if (pw_walk_settled(data, 0, &r, keep_first, &f, forget_first) != 0)
        return 0;
    /* damage while the journal never held still is left to LMDB */
    int bad = pw_found_damage(&r) && !r.moved;
    pw_free(&r);
    if (!bad)
        forget_first(&f);
    return bad;
}

int pw_found_damage(const pw_result *r)
{
    int bad = r->damaged_pages > 0;
    for (int d = 0; d < PW_NDB; d++)
        bad |= r->db[d].n_lost > 0 || r->db[d].lost_values > 0;
    return bad;
}

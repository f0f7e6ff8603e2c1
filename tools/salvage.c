/* salvage.c: ferry-journal salvage [--out DIR] [--force] [--dry-run] [--json]
 *
 * A journal whose LMDB pages are damaged (a power cut on an SD card, a bad
 * block) cannot be trusted to LMDB any more: it may return MDB_CORRUPTED
 * forever or crash. salvage reads data.mdb with the checked page walker
 * (fy_pagewalk.h), never with LMDB, and writes everything readable into a new
 * journal: every event whose record passes its CRC with its seq (and so its
 * insert_id), the cursors, dead letters, import provenance, the journal id
 * and the meta counters. Events it could not read are counted in the meta
 * counter "quarantined". The damaged directory is renamed to
 * DIR.damaged-<UTC time> and kept for forensics (never deleted); the new
 * journal takes its place. The sequence floor is raised past any number the
 * old journal may have handed out, so numbers are never reused.
 *
 * It refuses to run while another process has the journal open (LMDB's lock
 * file): moving an environment from under a running recorder would send its
 * next events into the quarantined copy. That is why the replayer never
 * repairs by itself: it stops and names this command. */
#include "fj.h"
#include "fy_cli.h"
#include "fy_fail.h"
#include "fy_gaps.h"
#include "fy_pagewalk.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#ifndef RENAME_NOREPLACE
#define RENAME_NOREPLACE (1u << 0)
#endif

typedef struct sv_problems {
    int json, quiet;
    fy_buf list;
    uint64_t n;
} sv_problems;

static void on_problem(void *arg, uint64_t pgno, const char *msg)
{
    sv_problems *p = arg;
    p->n++;
    if (p->json) {
        if (p->list.len)
            fy_buf_putc(&p->list, ',');
        if (pgno != UINT64_MAX)
            fy_buf_printf(&p->list, "{\"page\":%" PRIu64 ",\"message\":", pgno);
        else
            fy_buf_puts(&p->list, "{\"page\":null,\"message\":");
        fy_json_emit_string(&p->list, msg, strlen(msg));
        fy_buf_putc(&p->list, '}');
    } else if (!p->quiet) {
        if (pgno != UINT64_MAX)
            fprintf(stderr, FJ_PROG " salvage: page %" PRIu64 ": %s\n", pgno, msg);
        else
            fprintf(stderr, FJ_PROG " salvage: %s\n", msg);
    }
}

static int cmp_seq(const void *a, const void *b)
{
    const pw_entry *x = a, *y = b;
    return memcmp(x->k, y->k, 8);
}

/* 0: nobody has the environment open (we now hold LMDB's exclusive lock,
 * so openers wait); 1: in use; -1: error. *fd stays open to keep the lock. */
static int lock_env(const char *dir, int *fd)
{
    char path[4200];
    snprintf(path, sizeof path, "%s/lock.mdb", dir);
    *fd = open(path, O_RDWR | O_CLOEXEC);
    if (*fd < 0)
        return errno == ENOENT ? 0 : -1;
    struct flock fl = {.l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = 0, .l_len = 1};
    if (fcntl(*fd, F_SETLK, &fl) == 0)
        return 0;
    int in_use = errno == EAGAIN || errno == EACCES;
    close(*fd);
    *fd = -1;
    return in_use ? 1 : -1;
}

/* Copies mode and (as root) owner of the damaged journal to the new one. */
static void copy_owner(const char *from, const char *to)
{
    static const char *const files[] = {"", "/data.mdb", "/lock.mdb"};
    for (size_t i = 0; i < 3; i++) {
        char a[4200], b[4200];
        struct stat st;
        snprintf(a, sizeof a, "%s%s", from, files[i]);
        snprintf(b, sizeof b, "%s%s", to, files[i]);
        if (stat(a, &st) != 0)
            continue;
        if (geteuid() == 0 && chown(b, st.st_uid, st.st_gid) != 0)
            fprintf(stderr, FJ_PROG " salvage: warning: cannot give %s to uid %u: %s\n", b, (unsigned)st.st_uid,
                    strerror(errno));
        chmod(b, st.st_mode & 07777);
    }
}

typedef struct counts {
    uint64_t stored_before; /* LMDB's own count of events (0 if unknown) */
    int stored_known;       /* that count is from an undamaged record of the newest transaction */
    int lost_unknown;       /* more events may be lost than c.lost counts */
    uint64_t salvaged, recovered, bad_records, lost, dead, dead_bad, cursors, imported, floor;
    uint64_t gaps, gaps_bad; /* eviction gap rows kept, dropped as undecodable */
} counts;

static ferry_err put_raw(fy_journal *j, MDB_txn *txn, MDB_dbi dbi, const pw_entry *e, unsigned flags, const char *what)
{
    MDB_val k = {e->kn, e->k}, d = {e->vn, e->v};
    int rc = mdb_put(txn, dbi, &k, &d, flags);
    if (rc)
        return fy_fail_lmdb(rc, "journal %s: writing %s", j->path, what);
    return FERRY_OK;
}

/* Cursor candidates: the tree's; for destinations in a lost range, the stale
 * copy (an unreachable page) with the highest watermark: cursors only move
 * forward, so it is the newest one found. */
static ferry_err write_cursors(fy_journal *j, MDB_txn *txn, const pw_result *r, counts *c)
{
    const pw_db *db = &r->db[PW_CURSORS];
    ferry_err e = FERRY_OK;
    for (int pass = 0; pass < 2 && !e; pass++) {
        const pw_entry *v = pass ? r->orphans : db->e;
        size_t n = pass ? r->n_orphans : db->n;
        for (size_t i = 0; i < n && !e; i++) {
            char name[256];
            if (v[i].kn == 0 || v[i].kn > 255 || memchr(v[i].k, 0, v[i].kn))
                continue;
            if (pass && !pw_in_lost(db, v[i].k, v[i].kn))
                continue;
            memcpy(name, v[i].k, v[i].kn);
            name[v[i].kn] = '\0';
            fy_cursor old, cand;
            int had = 0, found = 0;
            if (pass && fy_cursor_get(j, txn, name, &old, &had) != FERRY_OK)
                had = 0;
            if ((e = put_raw(j, txn, j->cursors, &v[i], 0, "a cursor")))
                break;
            MDB_val k = {v[i].kn, v[i].k};
            if (fy_cursor_get(j, txn, name, &cand, &found) != FERRY_OK) {
                /* Not a cursor after all (or damaged): put back what was there. */
                if (had)
                    e = fy_cursor_put(j, txn, name, &old);
                else
                    mdb_del(txn, j->cursors, &k, NULL);
            } else if (had && old.delivered > cand.delivered) {
                e = fy_cursor_put(j, txn, name, &old);
            } else if (!had) {
                c->cursors++;
            }
            if (had)
                fy_cursor_free(&old);
            if (found)
                fy_cursor_free(&cand);
        }
    }
    return e;
}

/* The highest seq any surviving structure mentions. */
static ferry_err max_mentioned(fy_journal *j, MDB_txn *txn, uint64_t *max)
{
    MDB_cursor *cur;
    MDB_val k, d;
    int rc = mdb_cursor_open(txn, j->cursors, &cur);
    if (rc)
        return fy_fail_lmdb(rc, "journal %s: reading cursors", j->path);
    for (rc = mdb_cursor_get(cur, &k, &d, MDB_FIRST); !rc; rc = mdb_cursor_get(cur, &k, &d, MDB_NEXT)) {
        char name[256];
        fy_cursor c;
        int found;
        snprintf(name, sizeof name, "%.*s", (int)k.mv_size, (const char *)k.mv_data);
        if (fy_cursor_get(j, txn, name, &c, &found) || !found)
            continue;
        uint64_t m = c.delivered > c.attempted ? c.delivered : c.attempted;
        if (c.n_above && c.above[c.n_above - 1] > m)
            m = c.above[c.n_above - 1];
        if (m > *max)
            *max = m;
        fy_cursor_free(&c);
    }
    mdb_cursor_close(cur);
    return FERRY_OK;
}

static ferry_err rebuild(const char *tmp, const pw_result *r, counts *c)
{
    fy_journal j;
    fy_open_opts o = {.create = 1, .max_bytes = r->mapsize >= FY_MIN_MAX_BYTES ? r->mapsize : 0};
    ferry_err e = fy_journal_open(&j, tmp, &o);
    if (e)
        return e;
    MDB_txn *txn;
    if ((e = fy_txn_begin(&j, 0, &txn))) {
        fy_journal_close(&j);
        return e;
    }
    /* meta: every readable key as it was (the journal id too), except the
     * format version, which is this build's. */
    const pw_db *meta = &r->db[PW_META];
    uint64_t floor = 1, quarantined = 0;
    /* The floor read counts only from a whole, current meta database. */
    int floor_known = 0;
    for (size_t i = 0; i < meta->n && !e; i++) {
        const pw_entry *x = &meta->e[i];
        if (x->kn == 6 && !memcmp(x->k, "format", 6))
            continue;
        if (x->kn == 10 && !memcmp(x->k, "journal_id", 10) && x->vn != 16)
            continue;
        if (x->kn == 9 && !memcmp(x->k, "seq_floor", 9) && x->vn == 8) {
            floor = fy_get_be64(x->v);
            floor_known = meta->found && !meta->n_lost && !meta->lost_values && !r->meta_stale;
        }
        if (x->kn == 11 && !memcmp(x->k, "quarantined", 11) && x->vn == 8)
            quarantined = fy_get_be64(x->v);
        e = put_raw(&j, txn, j.meta, x, 0, "meta");
    }
    if (!e)
        e = write_cursors(&j, txn, r, c);
    uint64_t watermark = 0;
    if (!e)
        e = fy_delivered_everywhere(&j, txn, &watermark);

    /* events: the tree's, then unreachable copies inside a lost range that
     * are not older than what was already deleted (stale pages hold those). */
    const pw_db *ev = &r->db[PW_EVENTS];
    size_t n_all = ev->n + r->n_orphans;
    pw_entry *all = calloc(n_all + 1, sizeof *all);
    size_t n = 0;
    if (!all && !e)
        e = fy_fail(FERRY_ENOMEM, "out of memory");
    if (!all)
        n_all = 0;
    for (size_t i = 0; i < ev->n && !e; i++) {
        if (ev->e[i].kn != 8 || fy_record_check(ev->e[i].v, ev->e[i].vn)) {
            c->bad_records++;
            continue;
        }
        all[n++] = ev->e[i];
    }
    size_t from_tree = n;
    for (size_t i = 0; i < r->n_orphans && !e; i++) {
        const pw_entry *x = &r->orphans[i];
        if (x->kn != 8 || !pw_in_lost(ev, x->k, 8))
            continue;
        uint64_t seq = fy_get_be64(x->k);
        if (seq < floor || seq <= watermark || fy_record_check(x->v, x->vn))
            continue;
        all[n++] = *x;
    }
    if (!e && n) {
        qsort(all, n, sizeof *all, cmp_seq);
        MDB_cursor *cur;
        int rc = mdb_cursor_open(txn, j.events, &cur);
        uint64_t last = 0;
        for (size_t i = 0; i < n && !rc; i++) {
            uint64_t seq = fy_get_be64(all[i].k);
            if (seq == 0 || (i && seq == last))
                continue; /* the same event from a stale page */
            MDB_val k = {8, all[i].k}, d = {all[i].vn, all[i].v};
            rc = mdb_cursor_put(cur, &k, &d, MDB_APPEND);
            last = seq;
            c->salvaged++;
        }
        mdb_cursor_close(cur);
        if (rc)
            e = fy_fail_lmdb(rc, "journal %s: writing events", j.path);
    }
    c->recovered = c->salvaged > from_tree ? c->salvaged - from_tree : 0;

    /* dead letters and import provenance: what decodes */
    const pw_db *dead = &r->db[PW_DEAD];
    uint64_t max_seq = 0;
    for (size_t i = 0; i < dead->n && !e; i++) {
        MDB_val k = {dead->e[i].kn, dead->e[i].k}, d = {dead->e[i].vn, dead->e[i].v};
        fy_dead x;
        if (fy_dead_decode(&j, &k, &d, &x) || fy_record_check(x.rec, x.rec_len)) {
            c->dead_bad++;
            continue;
        }
        if (x.seq > max_seq)
            max_seq = x.seq;
        if (!(e = put_raw(&j, txn, j.dead, &dead->e[i], 0, "a dead letter")))
            c->dead++;
    }
    const pw_db *imp = &r->db[PW_IMPORTED];
    if (!e && imp->n) {
        MDB_dbi dbi;
        int exists;
        e = fy_imported_open(&j, txn, 1, &dbi, &exists);
        for (size_t i = 0; i < imp->n && !e; i++)
            if (imp->e[i].kn == 24 && imp->e[i].vn == 8 && !(e = put_raw(&j, txn, dbi, &imp->e[i], 0, "imported")))
                c->imported++;
    }
    /* Eviction gaps not yet reported: copied as they are, kept only if they
     * all decode (a damaged row could not be reported correctly anyway). */
    const pw_db *gaps = &r->db[PW_GAPS];
    for (size_t i = 0; i < gaps->n && !e && j.gaps; i++)
        e = put_raw(&j, txn, j.gaps, &gaps->e[i], 0, "a gap");
    if (!e && gaps->n && j.gaps) {
        fy_gap *g;
        size_t n_rows;
        if (fy_gaps_list(&j, txn, NULL, &g, &n_rows) == FERRY_OK) {
            c->gaps = n_rows;
            fy_gaps_free(g, n_rows);
        } else {
            uint64_t cleared;
            c->gaps_bad = gaps->n;
            e = fy_gaps_clear(&j, txn, &cleared);
        }
    }

    /* What was lost, counting only what can be known:
     * - LMDB's own count of stored events, from an undamaged record of the
     *   newest transaction, less what came through: exact;
     * - else, with the old seq_floor known: every number from the floor up
     *   to the highest one kept was stored (a deletion raises the floor past
     *   what it deletes), so the missing ones there are lost; events below
     *   the floor (kept past a later deletion) or above the highest kept may
     *   be lost too, uncounted;
     * - else nothing is counted: unknown. */
    uint64_t last = 0;
    if (!e)
        e = fy_seq_last(&j, txn, &last);
    if (!e)
        e = max_mentioned(&j, txn, &max_seq);
    c->stored_known = ev->found && ev->entries_ok && !r->meta_stale;
    c->stored_before = c->stored_known ? ev->entries : 0;
    c->lost = 0;
    if (c->stored_known) {
        c->lost = ev->entries > c->salvaged ? ev->entries - c->salvaged : 0;
    } else {
        c->lost_unknown = 1;
        if (floor_known && last >= floor) {
            uint64_t kept = 0;
            for (size_t i = 0; i < n; i++) {
                uint64_t seq = fy_get_be64(all[i].k);
                kept += seq >= floor && (i == 0 || seq != fy_get_be64(all[i - 1].k));
            }
            c->lost = last - floor + 1 > kept ? last - floor + 1 - kept : 0;
        }
    }
    free(all);
    if (max_seq < last)
        max_seq = last;
    /* The lost events may have had the highest numbers: skip past them
     * (when their number is unknown, past as many as the file could hold). */
    uint64_t skip = c->lost;
    if (c->lost_unknown)
        skip += r->file_pages * r->psize / 32;
    c->floor = max_seq + skip + 1 > floor ? max_seq + skip + 1 : floor;
    if (!e)
        e = fy_meta_put_u64(&j, txn, "seq_floor", c->floor);
    if (!e)
        e = fy_meta_put_u64(&j, txn, "quarantined", quarantined + c->lost);
    if (e) {
        mdb_txn_abort(txn);
        fy_journal_close(&j);
        return e;
    }
    e = fy_txn_commit(&j, txn, "the salvaged journal");
    fy_journal_close(&j);
    return e;
}

static void utc_stamp(char *out, size_t n)
{
    time_t t = time(NULL);
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(out, n, "%Y%m%dT%H%M%SZ", &tm);
}

int fj_cmd_salvage(const char *dir, int argc, char **argv)
{
    static const struct option opts[] = {
        {"journal", required_argument, NULL, 'j'},
        {"out", required_argument, NULL, 'o'},
        {"force", no_argument, NULL, 'f'},
        {"dry-run", no_argument, NULL, 'n'},
        {"json", no_argument, NULL, 'J'},
        {"quiet", no_argument, NULL, 'q'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *out = NULL;
    int force = 0, dry = 0, json = 0, quiet = 0, ch;
    optind = 0;
    while ((ch = getopt_long(argc, argv, "j:o:fnqh", opts, NULL)) != -1) {
        switch (ch) {
        case 'j': dir = optarg; break;
        case 'o': out = optarg; break;
        case 'f': force = 1; break;
        case 'n': dry = 1; break;
        case 'J': json = 1; break;
        case 'q': quiet = 1; break;
        case 'h':
            printf("Usage: " FJ_PROG " [-j DIR] salvage [--out DIR] [--force] [--dry-run] [--quiet] [--json]\n");
            return EX_OK;
        default: return fj_usage("salvage", "bad option");
        }
    }
    if (optind < argc)
        return fj_usage("salvage", "unexpected argument '%s'", argv[optind]);
    if (!dir)
        return fj_usage("salvage", "no journal directory: pass -j DIR or set FERRY_JOURNAL");
    char jdir[4096], data[4200];
    size_t dl = strlen(dir);
    while (dl > 1 && dir[dl - 1] == '/')
        dl--;
    snprintf(jdir, sizeof jdir, "%.*s", (int)dl, dir);
    snprintf(data, sizeof data, "%s/data.mdb", jdir);
    struct stat st;
    if (stat(data, &st) != 0) {
        fprintf(stderr, FJ_PROG ": no journal at %s\n", jdir);
        return EX_NOINPUT;
    }
    if (out && lstat(out, &st) == 0) {
        fprintf(stderr, FJ_PROG ": %s already exists; salvage --out makes a new directory\n", out);
        return EX_CANTCREAT;
    }
    int lockfd = -1;
    int busy = dry ? 0 : lock_env(jdir, &lockfd);
    if (busy) {
        if (busy > 0)
            fprintf(stderr, FJ_PROG ": journal %s is open in another process (ferry-record, ferry-replay?): stop "
                    "it, then run salvage again\n", jdir);
        else
            fprintf(stderr, FJ_PROG ": %s/lock.mdb: %s\n", jdir, strerror(errno));
        return busy > 0 ? EX_TEMPFAIL : EX_IOERR;
    }
    sv_problems pr = {json, quiet, {0}, 0};
    fy_buf_init(&pr.list, 0);
    pw_result r;
    if (pw_walk(data, 1, &r, on_problem, &pr) != 0) {
        int err = errno;
        if (lockfd >= 0)
            close(lockfd);
        fy_buf_free(&pr.list);
        fprintf(stderr, FJ_PROG ": %s: %s\n", data, strerror(err));
        return err == ENOMEM ? EX_OSERR : EX_IOERR;
    }
    /* Records that fail their check on an intact page count as damage too. */
    uint64_t bad_records = 0;
    for (size_t i = 0; i < r.db[PW_EVENTS].n; i++)
        bad_records += r.db[PW_EVENTS].e[i].kn != 8 || fy_record_check(r.db[PW_EVENTS].e[i].v, r.db[PW_EVENTS].e[i].vn);
    int lost_any = 0;
    for (int d = 0; d < PW_NDB; d++)
        lost_any |= r.db[d].n_lost || r.db[d].lost_values;
    /* So do cursor rows that do not decode (a flipped byte inside a value
     * leaves the page sound): the rebuild drops them, or takes a stale copy.
     * Counted apart: a cursor is a destination's position, not an event. */
    uint64_t bad_cursors = 0;
    for (size_t i = 0; i < r.db[PW_CURSORS].n; i++) {
        const pw_entry *x = &r.db[PW_CURSORS].e[i];
        fy_cursor cur;
        if (fy_cursor_decode(jdir, "?", x->v, x->vn, &cur) == FERRY_OK)
            fy_cursor_free(&cur);
        else
            bad_cursors++;
    }
    int damaged = r.damaged_pages || lost_any || bad_records || bad_cursors || !r.db[PW_META].found ||
                  !r.db[PW_EVENTS].found;
    counts c = {0};
    char tmp[4300] = "", quarantine[4300] = "";
    ferry_err e = FERRY_OK;
    int code = EX_OK;
    if (!damaged && !force) {
        if (!quiet && !json)
            printf("%s: no damage found (%" PRIu64 " event(s) readable); nothing to do (--force rebuilds anyway)\n",
                   jdir, (uint64_t)r.db[PW_EVENTS].n);
    } else if (dry) {
        if (!json)
            printf("%s: %" PRIu64 " damaged page(s), %" PRIu64 " bad record(s), %" PRIu64 " undecodable cursor(s); "
                   "salvage would keep %zu event(s) from the trees%s\n", jdir, r.damaged_pages, bad_records,
                   bad_cursors, r.db[PW_EVENTS].n, r.n_orphans ? " plus what unreachable pages hold" : "");
    } else {
        const char *target = out ? out : jdir;
        snprintf(tmp, sizeof tmp, "%s.salvage-%ld", target, (long)getpid());
        e = rebuild(tmp, &r, &c);
        if (!e) {
            char parent[4200];
            fj_fsync_dir(tmp);
            copy_owner(jdir, tmp);
            if (out) {
                if (syscall(SYS_renameat2, AT_FDCWD, tmp, AT_FDCWD, out, RENAME_NOREPLACE) != 0 &&
                    ((errno != ENOSYS && errno != EINVAL) || rename(tmp, out) != 0))
                    e = fy_fail(FERRY_EIO, "cannot put %s in place: %s", out, strerror(errno));
                fj_parent_of(out, parent, sizeof parent);
            } else {
                char stamp[32];
                utc_stamp(stamp, sizeof stamp);
                snprintf(quarantine, sizeof quarantine, "%s.damaged-%s", jdir, stamp);
                for (int i = 2; lstat(quarantine, &st) == 0 && i < 100; i++)
                    snprintf(quarantine, sizeof quarantine, "%s.damaged-%s-%d", jdir, stamp, i);
                if (rename(jdir, quarantine) != 0) {
                    e = fy_fail(FERRY_EIO, "cannot move %s aside: %s", jdir, strerror(errno));
                } else if (rename(tmp, jdir) != 0) {
                    e = fy_fail(FERRY_EIO, "cannot put the salvaged journal at %s: %s", jdir, strerror(errno));
                    if (rename(quarantine, jdir) == 0)
                        quarantine[0] = '\0';
                }
                fj_parent_of(jdir, parent, sizeof parent);
            }
            fj_fsync_dir(parent);
        }
        if (e) {
            char p[4400];
            snprintf(p, sizeof p, "%s/data.mdb", tmp), unlink(p);
            snprintf(p, sizeof p, "%s/lock.mdb", tmp), unlink(p);
            rmdir(tmp);
        }
    }
    if (lockfd >= 0)
        close(lockfd);
    if (e) {
        pw_free(&r);
        fy_buf_free(&pr.list);
        return fj_fail(e);
    }
    int rebuilt = (damaged || force) && !dry;
    if (json) {
        fy_buf b;
        fy_buf_init(&b, 0);
        fy_buf_puts(&b, "{\"journal\":");
        fy_json_emit_string(&b, jdir, strlen(jdir));
        fy_buf_printf(&b, ",\"damaged\":%s,\"rebuilt\":%s,\"damaged_pages\":%" PRIu64 ",\"bad_records\":%" PRIu64
                          ",\"bad_cursors\":%" PRIu64,
                      damaged ? "true" : "false", rebuilt ? "true" : "false", r.damaged_pages, bad_records,
                      bad_cursors);
        if (rebuilt) {
            fy_buf_printf(&b, ",\"salvaged\":%" PRIu64 ",\"recovered_unreachable\":%" PRIu64 ",\"lost\":%" PRIu64
                              ",\"lost_exact\":%s,\"lost_unknown\":%s,\"stored_before\":%" PRIu64 ",\"dead\":%" PRIu64
                              ",\"dead_lost\":%" PRIu64 ",\"cursors\":%" PRIu64 ",\"gaps\":%" PRIu64
                              ",\"gaps_lost\":%" PRIu64 ",\"seq_floor\":%" PRIu64 ",\"out\":",
                          c.salvaged, c.recovered, c.lost, c.stored_known ? "true" : "false",
                          c.lost_unknown ? "true" : "false", c.stored_before, c.dead,
                          c.dead_bad, c.cursors, c.gaps, c.gaps_bad, c.floor);
            const char *o = out ? out : jdir;
            fy_json_emit_string(&b, o, strlen(o));
            fy_buf_puts(&b, ",\"quarantine\":");
            if (quarantine[0])
                fy_json_emit_string(&b, quarantine, strlen(quarantine));
            else
                fy_buf_puts(&b, "null");
        }
        fy_buf_printf(&b, ",\"problems\":[%.*s]}\n", (int)pr.list.len, pr.list.data ? pr.list.data : "");
        fwrite(b.data, 1, b.len, stdout);
        fy_buf_free(&b);
    } else if (rebuilt) {
        printf("%s: salvaged %" PRIu64 " event(s) (%" PRIu64 " from unreachable pages), %" PRIu64
               " dead letter(s), %" PRIu64 " cursor(s) into %s\n",
               jdir, c.salvaged, c.recovered, c.dead, c.cursors, out ? out : jdir);
        printf("%s: lost %s%" PRIu64 " event(s)%s (%" PRIu64 " damaged page(s), %" PRIu64 " bad record(s), %" PRIu64
               " undecodable cursor(s)), counted in meta \"quarantined\"; sequence numbers continue at %" PRIu64 "\n",
               jdir, c.lost_unknown ? "at least " : "", c.lost,
               c.lost_unknown ? " (LMDB's count of stored events is unreadable: how many more is unknown)" : "",
               r.damaged_pages, bad_records, bad_cursors, c.floor);
        if (c.gaps || c.gaps_bad)
            printf("%s: %" PRIu64 " unreported eviction gap(s) kept, %" PRIu64 " dropped as unreadable\n", jdir,
                   c.gaps, c.gaps_bad);
        if (quarantine[0])
            printf("%s: the damaged journal is kept at %s\n", jdir, quarantine);
    }
    pw_free(&r);
    fy_buf_free(&pr.list);
    return code;
}

/* fj.h: the field commands of ferry-journal (export, verify, import, copy,
 * purge, tail) and what they share: atomic output files, a consistent
 * snapshot of the journal with each event's delivery state, filters,
 * progress bars. The commands are registered in ferry-journal.c. */
#ifndef FJ_H
#define FJ_H

#include <signal.h>
#include <stdint.h>
#include <stdio.h>

#include "fy_buf.h"
#include "fy_capture.h"
#include "fy_journal.h"
#include "fy_record.h"

#define FJ_PROG "ferry-journal"

/* Commands that get the journal opened by main (read-only unless the
 * command table says it writes). */
int fj_cmd_export(fy_journal *j, int argc, char **argv);
int fj_cmd_tail(fy_journal *j, int argc, char **argv);
int fj_cmd_copy(fy_journal *j, int argc, char **argv);
int fj_cmd_purge(fy_journal *j, int argc, char **argv);
/* Commands that open (or create) the journal themselves: dir is the one
 * -j/$FERRY_JOURNAL/default names, NULL if none; they also take -j DIR. */
int fj_cmd_verify(const char *dir, int argc, char **argv);
int fj_cmd_import(const char *dir, int argc, char **argv);
int fj_cmd_salvage(const char *dir, int argc, char **argv); /* salvage.c */
typedef int fj_dir_command(const char *dir, int argc, char **argv);
/* fj_cmd_verify or fj_cmd_import for their names, else NULL. */
fj_dir_command *fj_find_dir_command(const char *name);

/* ---- small things -------------------------------------------------------- */

/* Prints "ferry-journal: <last error>" and returns the exit code for e. */
int fj_fail(ferry_err e);
/* Prints "ferry-journal CMD: <message>", "Try ..." and returns EX_USAGE. */
int fj_usage(const char *cmd, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;
/* "1795939200000" (ms), "2026-11-29", "2026-11-29T07:00", "...:05",
 * "...:05.250", each optionally with "Z" or "+HH:MM"/"-HH:MM" (default UTC).
 * Returns 0 on success. */
/* {"seq":N,"insert_id":"...","recorded_at":MS,"event":{...}} plus '\n'
 * (ferry-journal dump's line). */
ferry_err fj_json_line(fy_buf *out, uint64_t seq, const fy_record *r);

/* SIGINT/SIGTERM set fj_stop instead of killing: long commands clean up. */
extern volatile sig_atomic_t fj_stop;
void fj_catch_signals(void);

/* ---- an output file written atomically ------------------------------------ */

typedef struct fj_out {
    int fd;
    int is_stdout;
    char *path, *tmp;
    fy_sha256 sha;
    uint64_t bytes;
    fy_buf buf;
} fj_out;

/* path NULL or "-": standard output. Otherwise a temporary file beside path,
 * mode 0600; an existing path is refused unless force. */
ferry_err fj_out_open(fj_out *o, const char *path, int force);
ferry_err fj_out_write(void *o, const void *p, size_t n); /* an fy_cap_write_fn */
/* fsync of a directory (after a rename in it); errors ignored: the data
 * itself was synced before. */
void fj_fsync_dir(const char *path);
/* The directory holding path ("." for a bare name; trailing '/' ignored). */
void fj_parent_of(const char *path, char *out, size_t n);

/* Flushes, fsyncs, renames into place (never over an existing file unless
 * force), fsyncs the directory; hex gets the file's SHA-256. */
ferry_err fj_out_commit(fj_out *o, int force, char hex[2 * FY_CAP_DIGEST + 1]);
/* Removes the temporary file (safe after a failed commit too). */
void fj_out_abort(fj_out *o);

/* A whole file mapped read-only (captures). */
typedef struct fj_map {
    const unsigned char *p;
    size_t len;
} fj_map;
ferry_err fj_map_file(const char *path, fj_map *m);
void fj_unmap(fj_map *m);

/* ---- progress bar (stderr, only on a terminal) ----------------------------- */

typedef struct fj_progress {
    int on;
    const char *what;
    uint64_t total;
    int64_t last_ms;
} fj_progress;

void fj_progress_init(fj_progress *p, int wanted, const char *what, uint64_t total);
void fj_progress_tick(fj_progress *p, uint64_t done);
void fj_progress_end(fj_progress *p);

/* ---- a consistent snapshot of a journal ------------------------------------ */

typedef fy_named_cursor fj_dest;

typedef struct fj_snap {
    fy_journal *j;
    MDB_txn *txn; /* one read transaction: everything below comes from it */
    fj_dest *dests;
    size_t n_dests;
    fy_dead *dead; /* sorted by seq, then destination; records point into the map */
    size_t *dead_dest;
    size_t n_dead;
    uint64_t recorded, evicted, pruned, created_ms, stored;
} fj_snap;

enum { FJ_PENDING = 1u, FJ_DELIVERED = 2u, FJ_DEAD = 4u };

typedef struct fj_filter {
    unsigned states; /* FJ_* bits; 0 = every event */
    int has_since, has_until;
    int64_t since, until; /* event time, ms: since <= time < until */
    char **types;
    size_t n_types;
    const char *device_id;
} fj_filter;

/* The filter as a JSON object (stored in captures, printed by --json). */
ferry_err fj_filter_json(const fj_filter *f, fy_buf *out);

typedef struct fj_item {
    uint64_t seq;
    unsigned flags;        /* FY_CAP_FLAG_STORED */
    const void *rec;       /* into the map */
    size_t rec_len;
    fy_cap_state *states;  /* one per destination */
    unsigned summary;      /* FJ_DEAD if dead anywhere, else FJ_PENDING if pending anywhere, else FJ_DELIVERED */
    fy_record r;           /* decoded */
} fj_item;

/* Returns 0 to go on, anything else to stop with that status. */
typedef int (*fj_item_fn)(void *arg, fj_item *it);

ferry_err fj_snap_open(fy_journal *j, fj_snap *s);
/* Calls fn for every event that matches f, in sequence order: stored events
 * and dead letters no longer stored. Records that cannot be decoded are
 * reported on stderr and counted in *bad. *status gets fn's stop value. */
ferry_err fj_snap_each(fj_snap *s, const fj_filter *f, fj_item_fn fn, void *arg, uint64_t *bad, int *status);
void fj_snap_close(fj_snap *s);
const char *fj_state_name(unsigned fj_state);

#endif

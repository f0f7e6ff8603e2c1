/* ferry-journal: inspect a ferry journal (stat, dump). */
#include "ferry.h"
#include "fy_buf.h"
#include "fy_cli.h"
#include "fy_config.h"
#include "fy_fail.h"
#include "fy_journal.h"
#include "fy_policy.h"
#include "fy_gaps.h"
#include "fy_pagewalk.h"
#include "fy_record.h"
#include "fy_catalog.h"
#include "timeline.h"
#include "fj.h"

#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#define PROG "ferry-journal"
#define DUMP_CHUNK 1024 /* records per read transaction: never pin old pages for long */

static void usage(FILE *f)
{
    fprintf(f,
"Usage: " PROG " [-j DIR] COMMAND [OPTIONS]\n"
"\n"
"Inspect a ferry journal.\n"
"\n"
"Commands:\n"
"  stat [--json]   counts: recorded, stored, pending, delivered, dead, evicted,\n"
"                  bytes used and the bound, oldest pending event, and each\n"
"                  destination's cursor\n"
"  stat --by-type | --by-category [--catalog FILE] [--json]\n"
"                  also count the stored events per event_type or category of\n"
"                  the catalog (default: $FERRY_CATALOG, else the installed\n"
"                  supervisor-events.tsv); types not in it count as unknown\n"
"  dump            every stored record as JSON Lines in sequence order:\n"
"                  {\"seq\":N,\"insert_id\":\"...\",\"recorded_at\":MS,\"event\":{...}}\n"
"                  (records of format 1.1 also \"mono_ms\" and \"boot_id\" after recorded_at)\n"
"  timeline [--device-id ID] [--since T] [--until T] [--json]\n"
"                  device operations from paired events (download, removal,\n"
"                  kill, install, start, bootstrap, config, boot-config, purge)\n"
"                  with duration and outcome, unmatched starts (cut off by a\n"
"                  Supervisor start/Reboot/Shutdown, or no finish stored) and\n"
"                  per-release summaries (update time end to end). T: ms since\n"
"                  the epoch, 2026-11-29T08:00:00Z, or an age (90s, 15m, 2h, 7d)\n"
"  Note: delivered events are deleted by default, so stat --by-type and\n"
"  timeline see only what is still stored (ferry-replay --keep-delivered).\n"
"  tail [-n N] [-f, --follow]\n"
"                  the last N records (default 10) like dump; -f then follows new\n"
"                  ones as they are recorded (--lines N is -n N)\n"
"  export --format jsonl|csv|capture [--output FILE] [--force]\n"
"         [--pending|--delivered|--dead|--all] [--since TIME] [--until TIME]\n"
"         [--type NAME]... [--device-id ID] [--progress] [--json]\n"
"                  a consistent snapshot: jsonl (one event per line with seq,\n"
"                  insert_id and delivery state), csv (RFC 4180, formula cells\n"
"                  neutralised) or capture (portable, verifiable file to import\n"
"                  elsewhere); written atomically, never over an existing file\n"
"                  without --force; prints the file's SHA-256. TIME: ms since the\n"
"                  epoch or 2026-11-29[T07:00[:00[.000]]][Z|+HH:MM] (UTC default)\n"
"  verify [--json] [CAPTURE | DIR]\n"
"                  check a journal (records, sequence numbers, cursors, meta) or\n"
"                  a capture (digests, hash chain): each problem with its place\n"
"  salvage [--out DIR] [--force] [--dry-run] [--quiet] [--json]\n"
"                  rebuild a journal with damaged pages: every readable event\n"
"                  (same seq and insert_id), cursor and dead letter goes into a\n"
"                  new journal; the damaged one is kept as DIR.damaged-<time>;\n"
"                  lost events are counted in stat's quarantined. Stop\n"
"                  ferry-record and ferry-replay first (exit 75 while in use);\n"
"                  without damage it changes nothing (--force rebuilds anyway)\n"
"  import CAPTURE [-j DIR] [--max-size SIZE] [--progress] [--json]\n"
"                  load a capture (checked first; all or nothing) keeping order,\n"
"                  insert_ids, times and delivery state; again adds nothing\n"
"  copy DEST [--json]\n"
"                  compacted hot copy of the journal into the new directory DEST\n"
"                  (same architecture only; use a capture to move elsewhere)\n"
"  purge (--delivered | --all --yes) [--json]\n"
"                  delete delivered events, or every event and dead letter;\n"
"                  sequence numbers are never reused\n"
"  dead [--json]   events a destination rejected for good, with status and reason\n"
"                  (--json: one object per line, with the event)\n"
);
    fprintf(f,
"  requeue [--sink NAME] (SEQ... | --all)\n"
"                  put dead events back in line: appended again under new sequence\n"
"                  numbers, with their original insert_id\n"
"  config [--json] the effective configuration: every key of the configuration\n"
"                  file, its value and where it comes from (default, FILE:LINE,\n"
"                  env, flag); the API key is never shown. Needs no journal\n"
"\n");
    fprintf(f, /* two strings: C99 guarantees only 4095 characters in one */
"Options:\n"
"  -j, --journal DIR   journal directory (default: $FERRY_JOURNAL, else\n"
"                      /var/lib/ferry/journal as root, else\n"
"                      ~/.local/state/ferry/journal)\n"
"      --config FILE   the configuration file (default: $FERRY_CONFIG, else\n"
"                      " FY_CONFIG_DEFAULT ", if present)\n"
"  -h, --help          show this help\n"
"  -V, --version       show the version\n"
"\n"
"Exit codes: 0 ok, 64 usage, 65 a record could not be decoded (dump goes on),\n"
"the journal's pages are damaged (run salvage) or its format is newer than this\n"
"program,\n"
"66 no journal there, 73 the output exists (export, copy), 74 I/O error or corrupt\n"
"journal, 75 the journal is too small (import) or in use (salvage), 78 a bad\n"
"configuration file; verify: 65 problems found (damaged pages: run salvage).\n");
}

static int fail(ferry_err e)
{
    fprintf(stderr, PROG ": %s\n", ferry_last_error());
    return fy_cli_exit_code(e);
}


/* ---- stat -------------------------------------------------------------- */

typedef struct dest {
    fy_named_cursor d; /* first: fy_cursors_load fills it */
    uint64_t pending;
    uint64_t oldest_seq;       /* first event still pending for it (0: none) */
    int64_t oldest_recorded_ms;
} dest;

/* Dead letters counted by destination, status and reason. */
typedef struct dead_reason {
    char sink[256];
    int64_t status;
    char reason[512];
    uint64_t count;
} dead_reason;

typedef struct stats {
    uint64_t recorded, stored, pending, delivered, dead, evicted, pruned;
    uint64_t props_dropped, values_redacted; /* by the record-time policy */
    uint64_t quarantined; /* events lost to damaged pages (salvage) */
    uint64_t live_bytes, disk_bytes, file_bytes, created_ms;
    uint64_t oldest_seq;
    int64_t oldest_recorded_ms, oldest_time_ms;
    dest *dests;
    size_t n_dests;
    dead_reason *reasons;
    size_t n_reasons;
    int64_t now_ms;
    const fy_buf *extra_json; /* more keys for stat --json (--by-type, --by-category) */
} stats;

static ferry_err load_dests(fy_journal *j, MDB_txn *txn, stats *s)
{
    ferry_err e;
    s->dests = fy_cursors_load(j, txn, 1, s->dests, &s->n_dests, sizeof *s->dests, &e);
    return e;
}

static ferry_err count_pending(fy_journal *j, MDB_txn *txn, stats *s)
{
    uint64_t low = UINT64_MAX;
    s->delivered = UINT64_MAX;
    for (size_t i = 0; i < s->n_dests; i++) {
        if (s->dests[i].d.c.delivered < low)
            low = s->dests[i].d.c.delivered;
        if (s->dests[i].d.c.sent < s->delivered)
            s->delivered = s->dests[i].d.c.sent;
    }
    MDB_cursor *cur;
    int rc = mdb_cursor_open(txn, j->events, &cur);
    if (rc)
        return fy_fail_lmdb(rc, "journal %s: reading events", j->path);
    unsigned char kb[8];
    fy_put_be64(kb, low + 1);
    MDB_val k = {8, kb}, d;
    ferry_err e = FERRY_OK;
    for (rc = mdb_cursor_get(cur, &k, &d, MDB_SET_RANGE); !rc; rc = mdb_cursor_get(cur, &k, &d, MDB_NEXT)) {
        uint64_t seq = fy_get_be64(k.mv_data);
        int any = 0;
        for (size_t i = 0; i < s->n_dests; i++) {
            dest *x = &s->dests[i];
            if (fy_cursor_is_done(&x->d.c, seq))
                continue;
            if (x->pending++ == 0)
                x->oldest_seq = seq;
            any = 1;
        }
        if (!any)
            continue;
        int first_anywhere = s->pending++ == 0, first_for_some = 0;
        for (size_t i = 0; i < s->n_dests; i++)
            first_for_some |= s->dests[i].oldest_seq == seq;
        if (!first_anywhere && !first_for_some)
            continue;
        fy_record r; /* decoded only for the oldest pending event of each destination */
        if (fy_record_decode(d.mv_data, d.mv_size, &r) == FERRY_OK) {
            if (first_anywhere) {
                s->oldest_seq = seq;
                s->oldest_recorded_ms = r.recorded_at_ms;
                s->oldest_time_ms = r.time_ms;
            }
            for (size_t i = 0; i < s->n_dests; i++)
                if (s->dests[i].oldest_seq == seq)
                    s->dests[i].oldest_recorded_ms = r.recorded_at_ms;
            fy_record_free(&r);
        }
    }
    mdb_cursor_close(cur);
    if (rc != MDB_NOTFOUND)
        e = fy_fail_lmdb(rc, "journal %s: reading events", j->path);
    return e;
}

static ferry_err count_dead(fy_journal *j, MDB_txn *txn, stats *s)
{
    MDB_cursor *cur;
    MDB_val k, d;
    int rc = mdb_cursor_open(txn, j->dead, &cur);
    if (rc)
        return fy_fail_lmdb(rc, "journal %s: reading dead letters", j->path);
    ferry_err e = FERRY_OK;
    for (rc = mdb_cursor_get(cur, &k, &d, MDB_FIRST); !rc && !e; rc = mdb_cursor_get(cur, &k, &d, MDB_NEXT)) {
        fy_dead x;
        if (fy_dead_decode(j, &k, &d, &x))
            continue; /* verify reports damaged rows */
        size_t i = 0;
        while (i < s->n_reasons && (s->reasons[i].status != x.status || strcmp(s->reasons[i].sink, x.sink) ||
                                    strcmp(s->reasons[i].reason, x.reason)))
            i++;
        if (i == s->n_reasons) {
            dead_reason *n = realloc(s->reasons, (s->n_reasons + 1) * sizeof *n);
            if (!n) {
                e = fy_fail(FERRY_ENOMEM, "out of memory");
                break;
            }
            s->reasons = n;
            memset(&n[i], 0, sizeof n[i]);
            snprintf(n[i].sink, sizeof n[i].sink, "%s", x.sink);
            snprintf(n[i].reason, sizeof n[i].reason, "%s", x.reason);
            n[i].status = x.status;
            s->n_reasons++;
        }
        s->reasons[i].count++;
    }
    mdb_cursor_close(cur);
    if (!e && rc != MDB_NOTFOUND)
        e = fy_fail_lmdb(rc, "journal %s: reading dead letters", j->path);
    return e;
}

static ferry_err gather(fy_journal *j, stats *s)
{
    MDB_txn *txn;
    MDB_stat st;
    ferry_err e = fy_txn_begin(j, MDB_RDONLY, &txn);
    if (e)
        return e;
    s->now_ms = fy_now_ms();
    if ((e = fy_seq_last(j, txn, &s->recorded)) || (e = fy_meta_get_u64(j, txn, "evicted", &s->evicted)) ||
        (e = fy_meta_get_u64(j, txn, "pruned", &s->pruned)) ||
        (e = fy_meta_get_u64(j, txn, FY_META_PROPS_DROPPED, &s->props_dropped)) ||
        (e = fy_meta_get_u64(j, txn, FY_META_VALUES_REDACTED, &s->values_redacted)) ||
        (e = fy_meta_get_u64(j, txn, "quarantined", &s->quarantined)) ||
        (e = fy_meta_get_u64(j, txn, "created_ms", &s->created_ms)) ||
        (e = fy_live_bytes(j, txn, &s->live_bytes)) || (e = load_dests(j, txn, s)) ||
        (e = count_pending(j, txn, s)))
        goto done;
    if (mdb_stat(txn, j->events, &st) == 0)
        s->stored = st.ms_entries;
    if (mdb_stat(txn, j->dead, &st) == 0)
        s->dead = st.ms_entries;
    e = count_dead(j, txn, s);
done:
    mdb_txn_abort(txn);
    char path[4200];
    struct stat fst;
    snprintf(path, sizeof path, "%s/data.mdb", j->path);
    if (!e && stat(path, &fst) == 0) {
        s->file_bytes = (uint64_t)fst.st_size;
        s->disk_bytes = (uint64_t)fst.st_blocks * 512u;
    }
    return e;
}

static void print_stat_json(const fy_journal *j, const stats *s)
{
    fy_buf b;
    fy_buf_init(&b, 0);
    char id[33];
    for (int i = 0; i < 16; i++)
        snprintf(id + 2 * i, 3, "%02x", j->id[i]);
    fy_buf_puts(&b, "{\"journal\":");
    fy_json_emit_string(&b, j->path, strlen(j->path));
    fy_buf_printf(&b,
                  ",\"journal_id\":\"%s\",\"format\":\"%u.%u\",\"created_ms\":%" PRIu64
                  ",\"recorded\":%" PRIu64 ",\"stored\":%" PRIu64 ",\"pending\":%" PRIu64
                  ",\"delivered\":%" PRIu64 ",\"dead\":%" PRIu64 ",\"evicted\":%" PRIu64
                  ",\"pruned\":%" PRIu64 ",\"bytes_used\":%" PRIu64 ",\"file_bytes\":%" PRIu64
                  ",\"disk_bytes\":%" PRIu64 ",\"max_bytes\":%" PRIu64 ",\"quota_bytes\":%" PRIu64,
                  id, j->format_major, j->format_minor, s->created_ms, s->recorded, s->stored, s->pending,
                  s->delivered, s->dead, s->evicted, s->pruned, s->live_bytes, s->file_bytes, s->disk_bytes,
                  j->map_bytes, fy_journal_quota(j));
    fy_buf_printf(&b, ",\"props_dropped\":%" PRIu64 ",\"values_redacted\":%" PRIu64, s->props_dropped,
                  s->values_redacted);
    if (s->pending)
        fy_buf_printf(&b,
                      ",\"oldest_pending\":{\"seq\":%" PRIu64 ",\"recorded_at\":%" PRId64 ",\"time\":%" PRId64
                      ",\"age_ms\":%" PRId64 "}",
                      s->oldest_seq, s->oldest_recorded_ms, s->oldest_time_ms, s->now_ms - s->oldest_recorded_ms);
    else
        fy_buf_puts(&b, ",\"oldest_pending\":null");
    fy_buf_printf(&b, ",\"quarantined\":%" PRIu64, s->quarantined);
    fy_buf_puts(&b, ",\"destinations\":[");
    for (size_t i = 0; i < s->n_dests; i++) {
        const dest *x = &s->dests[i];
        fy_buf_puts(&b, i ? ",{\"name\":" : "{\"name\":");
        fy_json_emit_string(&b, x->d.name, strlen(x->d.name));
        fy_buf_printf(&b,
                      ",\"delivered_through\":%" PRIu64 ",\"delivered_above\":%zu,\"pending\":%" PRIu64
                      ",\"sent\":%" PRIu64 ",\"resent\":%" PRIu64 ",\"dead\":%" PRIu64
                      ",\"resent_outside_dedup_window\":%" PRIu64 ",\"last_success_ms\":%" PRId64
                      ",\"inflight_first_attempt_ms\":%" PRId64 ",\"oldest_pending_seq\":%" PRIu64
                      ",\"lag_ms\":%" PRId64 "}",
                      x->d.c.delivered, x->d.c.n_above, x->pending, x->d.c.sent, x->d.c.resent, x->d.c.dead,
                      x->d.c.outside_window, x->d.c.last_success_ms, x->d.c.inflight_first_ms, x->oldest_seq,
                      x->pending ? s->now_ms - x->oldest_recorded_ms : 0);
    }
    fy_buf_puts(&b, "],\"dead_by_reason\":[");
    for (size_t i = 0; i < s->n_reasons; i++) {
        const dead_reason *d = &s->reasons[i];
        fy_buf_puts(&b, i ? ",{\"sink\":" : "{\"sink\":");
        fy_json_emit_string(&b, d->sink, strlen(d->sink));
        fy_buf_printf(&b, ",\"status\":%" PRId64 ",\"reason\":", d->status);
        fy_json_emit_string(&b, d->reason, strlen(d->reason));
        fy_buf_printf(&b, ",\"count\":%" PRIu64 "}", d->count);
    }
    fy_buf_puts(&b, "]");
    if (s->extra_json) /* stat --by-type / --by-category */
        fy_buf_append(&b, s->extra_json->data, s->extra_json->len);
    fy_buf_puts(&b, "}\n");
    fwrite(b.data, 1, b.len, stdout);
    fy_buf_free(&b);
}

static const char *human(uint64_t bytes, char *out, size_t n)
{
    static const char *const units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
    double v = (double)bytes;
    size_t u = 0;
    while (v >= 1024.0 && u + 1 < sizeof units / sizeof units[0])
        v /= 1024.0, u++;
    snprintf(out, n, u ? "%.1f %s" : "%.0f %s", v, units[u]);
    return out;
}

static void print_stat_text(const fy_journal *j, const stats *s)
{
    char h1[32], h2[32], h3[32], h4[32];
    uint64_t quota = fy_journal_quota(j);
    char t1[40], t2[40];
    printf("journal        %s\n", j->path);
    printf("journal id     ");
    for (int i = 0; i < 16; i++)
        printf("%02x", j->id[i]);
    fy_cli_format_time((int64_t)s->created_ms, t1, sizeof t1);
    printf("\nformat         %u.%u\ncreated        %s\n", j->format_major, j->format_minor, t1);
    printf("recorded       %" PRIu64 "   (sequence numbers handed out)\n", s->recorded);
    printf("stored         %" PRIu64 "\n", s->stored);
    printf("pending        %" PRIu64 "\n", s->pending);
    printf("delivered      %" PRIu64 "\n", s->delivered);
    printf("dead           %" PRIu64 "\n", s->dead);
    printf("evicted        %" PRIu64 "   (undelivered events deleted to make room: lost)\n", s->evicted);
    printf("pruned         %" PRIu64 "   (delivered or dead-lettered events deleted)\n", s->pruned);
    printf("props dropped  %" PRIu64 "   (properties removed by the privacy policy when recorded)\n",
           s->props_dropped);
    printf("values redacted %" PRIu64 "  (string values redacted by the privacy policy)\n", s->values_redacted);
    printf("quarantined    %" PRIu64 "   (lost to damaged pages; see ferry-journal salvage)\n", s->quarantined);
    printf("bytes used     %s of %s usable (%.1f%%); bound %s, file %s\n", human(s->live_bytes, h1, sizeof h1),
           human(quota, h2, sizeof h2), 100.0 * (double)s->live_bytes / (double)quota,
           human(j->map_bytes, h3, sizeof h3), human(s->file_bytes, h4, sizeof h4));
    if (s->pending) {
        fy_cli_format_time(s->oldest_recorded_ms, t1, sizeof t1);
        fy_cli_format_time(s->oldest_time_ms, t2, sizeof t2);
        printf("oldest pending seq %" PRIu64 ", recorded %s (%.0f s ago), event time %s\n", s->oldest_seq, t1,
               (double)(s->now_ms - s->oldest_recorded_ms) / 1000.0, t2);
    } else {
        printf("oldest pending -\n");
    }
    printf("destinations\n");
    for (size_t i = 0; i < s->n_dests; i++) {
        const dest *x = &s->dests[i];
        fy_cli_format_time(x->d.c.last_success_ms, t1, sizeof t1);
        printf("  %-12s delivered through seq %" PRIu64 " (+%zu above), pending %" PRIu64 ", sent %" PRIu64
               ", resent %" PRIu64 " (%" PRIu64 " after the dedup window), dead %" PRIu64 ", last success %s",
               x->d.name, x->d.c.delivered, x->d.c.n_above, x->pending, x->d.c.sent, x->d.c.resent, x->d.c.outside_window,
               x->d.c.dead, t1);
        if (x->pending)
            printf(", lag %.0f s", (double)(s->now_ms - x->oldest_recorded_ms) / 1000.0);
        putchar('\n');
    }
    if (s->n_reasons)
        printf("dead letters by reason\n");
    for (size_t i = 0; i < s->n_reasons; i++)
        printf("  %-12s %6" PRIu64 "  status %" PRId64 ": %s\n", s->reasons[i].sink, s->reasons[i].count,
               s->reasons[i].status, s->reasons[i].reason);
}

/* Eviction gaps not yet reported (fy_gaps.h): JSON keys appended to json,
 * or lines on stdout when json is NULL. */
static ferry_err stat_gaps(fy_journal *j, fy_buf *json)
{
    MDB_txn *txn;
    fy_gap *g;
    size_t n;
    ferry_err e = fy_txn_begin(j, MDB_RDONLY, &txn);
    if (e)
        return e;
    e = fy_gaps_list(j, txn, NULL, &g, &n);
    mdb_txn_abort(txn);
    if (e)
        return e;
    uint64_t lost = 0;
    for (size_t i = 0; i < n; i++)
        lost += g[i].count;
    if (json) {
        fy_buf_printf(json, ",\"gaps_unsent\":%zu,\"gaps_unsent_events\":%" PRIu64 ",\"gaps\":[", n, lost);
        for (size_t i = 0; i < n; i++) {
            if (i)
                fy_buf_putc(json, ',');
            fy_gap_json(&g[i], json);
        }
        fy_buf_putc(json, ']');
    } else if (n) {
        printf("gaps unsent    %zu   (%" PRIu64 " lost event(s) not yet reported as \"%s\")\n", n, lost,
               FY_LOSS_EVENT_TYPE);
        for (size_t i = 0; i < n && i < 20; i++) {
            char t1[40], t2[40];
            fy_cli_format_time(g[i].first_time, t1, sizeof t1);
            fy_cli_format_time(g[i].last_time, t2, sizeof t2);
            char from[64] = "", hex[33];
            if (g[i].imported) { /* another journal's loss, from a capture */
                fy_hex(g[i].journal_id, 16, hex);
                snprintf(from, sizeof from, " (of journal %s)", hex);
            }
            printf("  %-12s %s%s%s%s %" PRIu64 " lost, seq %" PRIu64 "..%" PRIu64 "%s, time %s .. %s%s\n", g[i].sink,
                   g[i].device_id ? "device " : "", g[i].device_id ? g[i].device_id : "",
                   g[i].user_id ? " user " : "", g[i].user_id ? g[i].user_id : "", g[i].count, g[i].first_seq,
                   g[i].last_seq, from, t1, t2, g[i].imported ? "" : g[i].sealed ? " (being reported)" : "");
        }
        if (n > 20)
            printf("  ... and %zu more (stat --json lists them all)\n", n - 20);
    }
    fy_gaps_free(g, n);
    return FERRY_OK;
}

/* ---- stat --by-type / --by-category (stored events, against the catalog) -- */

typedef struct breakdown {
    const fy_catalog *cat;
    jt_type_count *types;
    size_t n_types;
    uint64_t *per_cat; /* fy_catalog_n_categories + 1 (unknown) */
    uint64_t unknown_events;
    size_t unknown_types;
} breakdown;

static int cmp_count_desc(const void *a, const void *b)
{
    const jt_type_count *x = a, *y = b;
    if (x->count != y->count)
        return x->count > y->count ? -1 : 1;
    size_t n = x->len < y->len ? x->len : y->len;
    int c = memcmp(x->name, y->name, n);
    return c ? c : (x->len > y->len) - (x->len < y->len);
}

static ferry_err breakdown_gather(fy_journal *j, breakdown *bd, uint64_t *undecodable)
{
    ferry_err e = jt_count_types(j, &bd->types, &bd->n_types, undecodable);
    if (e)
        return e;
    size_t nc = fy_catalog_n_categories(bd->cat);
    bd->per_cat = calloc(nc + 1, sizeof *bd->per_cat);
    if (!bd->per_cat)
        return fy_fail(FERRY_ENOMEM, "out of memory");
    if (bd->n_types)
        qsort(bd->types, bd->n_types, sizeof *bd->types, cmp_count_desc);
    for (size_t i = 0; i < bd->n_types; i++) {
        size_t k = fy_catalog_find(bd->cat, bd->types[i].name, bd->types[i].len);
        if (k == FY_CATALOG_NONE) {
            bd->per_cat[nc] += bd->types[i].count;
            bd->unknown_events += bd->types[i].count;
            bd->unknown_types++;
        } else {
            bd->per_cat[fy_catalog_category_index(bd->cat, k)] += bd->types[i].count;
        }
    }
    return FERRY_OK;
}

static void breakdown_json(const breakdown *bd, int by_type, int by_cat, fy_buf *b)
{
    const char *path = fy_catalog_path(bd->cat);
    fy_buf_puts(b, ",\"catalog\":");
    fy_json_emit_string(b, path, strlen(path));
    if (by_type) {
        fy_buf_puts(b, ",\"by_type\":{");
        for (size_t i = 0; i < bd->n_types; i++) {
            if (i)
                fy_buf_putc(b, ',');
            fy_json_emit_string(b, bd->types[i].name, bd->types[i].len);
            fy_buf_printf(b, ":%" PRIu64, bd->types[i].count);
        }
        fy_buf_puts(b, "},\"unknown_types\":{");
        int first = 1;
        for (size_t i = 0; i < bd->n_types; i++) {
            if (fy_catalog_find(bd->cat, bd->types[i].name, bd->types[i].len) != FY_CATALOG_NONE)
                continue;
            if (!first)
                fy_buf_putc(b, ',');
            first = 0;
            fy_json_emit_string(b, bd->types[i].name, bd->types[i].len);
            fy_buf_printf(b, ":%" PRIu64, bd->types[i].count);
        }
        fy_buf_putc(b, '}');
    }
    if (by_cat) {
        size_t nc = fy_catalog_n_categories(bd->cat);
        fy_buf_puts(b, ",\"by_category\":{");
        for (size_t k = 0; k < nc; k++) {
            const char *name = fy_catalog_category_at(bd->cat, k);
            fy_json_emit_string(b, name, strlen(name));
            fy_buf_printf(b, ":%" PRIu64 ",", bd->per_cat[k]);
        }
        fy_buf_printf(b, "\"unknown\":%" PRIu64 "}", bd->per_cat[nc]);
    }
}

/* A name as is, or JSON-quoted when it holds control characters. */
static void print_name(const char *s, size_t n)
{
    int plain = 1;
    for (size_t i = 0; i < n; i++)
        plain &= (unsigned char)s[i] >= 0x20 && s[i] != 0x7f;
    if (plain) {
        fwrite(s, 1, n, stdout);
        return;
    }
    fy_buf b;
    fy_buf_init(&b, 0);
    fy_json_emit_string(&b, s, n);
    fwrite(b.data, 1, b.len, stdout);
    fy_buf_free(&b);
}

static void breakdown_text(const breakdown *bd, int by_type, int by_cat)
{
    size_t nc = fy_catalog_n_categories(bd->cat);
    if (by_type) {
        printf("by event type (stored events; catalog %s)\n", fy_catalog_path(bd->cat));
        for (size_t i = 0; i < bd->n_types; i++) {
            size_t k = fy_catalog_find(bd->cat, bd->types[i].name, bd->types[i].len);
            printf("  %10" PRIu64 "  %-14s ", bd->types[i].count,
                   k == FY_CATALOG_NONE ? "unknown" : fy_catalog_category(bd->cat, k));
            print_name(bd->types[i].name, bd->types[i].len);
            putchar('\n');
        }
        printf("  %zu type(s), %zu of them not in the catalog (%" PRIu64 " event(s))\n", bd->n_types,
               bd->unknown_types, bd->unknown_events);
    }
    if (by_cat) {
        printf("by category (stored events; catalog %s)\n", fy_catalog_path(bd->cat));
        for (size_t k = 0; k < nc; k++)
            printf("  %10" PRIu64 "  %s\n", bd->per_cat[k], fy_catalog_category_at(bd->cat, k));
        printf("  %10" PRIu64 "  unknown\n", bd->per_cat[nc]);
    }
}

static int cmd_stat(fy_journal *j, int argc, char **argv)
{
    int json = 0, by_type = 0, by_cat = 0;
    const char *catalog_path = NULL;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--json"))
            json = 1;
        else if (!strcmp(argv[i], "--by-type"))
            by_type = 1;
        else if (!strcmp(argv[i], "--by-category"))
            by_cat = 1;
        else if (!strcmp(argv[i], "--catalog") && i + 1 < argc)
            catalog_path = argv[++i];
        else {
            fprintf(stderr, PROG " stat: unexpected argument '%s'\n", argv[i]);
            return EX_USAGE;
        }
    }
    if (catalog_path && !by_type && !by_cat) {
        fprintf(stderr, PROG " stat: --catalog applies to --by-type and --by-category\n");
        return EX_USAGE;
    }
    breakdown bd;
    memset(&bd, 0, sizeof bd);
    fy_catalog *cat = NULL;
    fy_buf extra;
    fy_buf_init(&extra, 0);
    uint64_t undecodable = 0;
    if (by_type || by_cat) {
        if (fy_catalog_load(catalog_path, &cat)) {
            fprintf(stderr, PROG ": %s\n", ferry_last_error());
            return EX_CONFIG;
        }
        bd.cat = cat;
    }
    stats s;
    memset(&s, 0, sizeof s);
    ferry_err e = cat ? breakdown_gather(j, &bd, &undecodable) : FERRY_OK;
    if (!e)
        e = gather(j, &s);
    if (!e && cat && json)
        breakdown_json(&bd, by_type, by_cat, &extra);
    if (!e && json && !(e = stat_gaps(j, &extra)))
        s.extra_json = &extra;
    if (!e) {
        if (json)
            print_stat_json(j, &s);
        else {
            print_stat_text(j, &s);
            e = stat_gaps(j, NULL);
        }
        if (cat && !json)
            breakdown_text(&bd, by_type, by_cat);
    }
    for (size_t i = 0; i < s.n_dests; i++)
        fy_cursor_free(&s.dests[i].d.c);
    free(s.dests);
    free(s.reasons);
    jt_free_types(bd.types, bd.n_types);
    free(bd.per_cat);
    fy_catalog_free(cat);
    fy_buf_free(&extra);
    if (!e && undecodable)
        return EX_DATAERR;
    return e ? fail(e) : EX_OK;
}

/* ---- dump -------------------------------------------------------------- */

static int cmd_dump(fy_journal *j, int argc, char **argv)
{
    if (argc > 1) {
        fprintf(stderr, PROG " dump: unexpected argument '%s'\n", argv[1]);
        return EX_USAGE;
    }
    fy_buf out;
    fy_buf_init(&out, 0);
    uint64_t next = 0, bad = 0;
    int done = 0, status = EX_OK;
    while (!done && status == EX_OK) {
        MDB_txn *txn;
        MDB_cursor *cur;
        ferry_err e = fy_txn_begin(j, MDB_RDONLY, &txn);
        if (e)
            return fail(e);
        int rc = mdb_cursor_open(txn, j->events, &cur);
        unsigned char kb[8];
        fy_put_be64(kb, next);
        MDB_val k = {8, kb}, d;
        int n = 0;
        for (rc = rc ? rc : mdb_cursor_get(cur, &k, &d, MDB_SET_RANGE); !rc && n < DUMP_CHUNK;
             rc = mdb_cursor_get(cur, &k, &d, MDB_NEXT), n++) {
            uint64_t seq = fy_get_be64(k.mv_data);
            next = seq + 1;
            fy_record r;
            if ((e = fy_record_decode(d.mv_data, d.mv_size, &r))) {
                fprintf(stderr, PROG ": journal %s: seq %" PRIu64 ": %s\n", j->path, seq, ferry_last_error());
                bad++;
                continue;
            }
            fy_buf_printf(&out, "{\"seq\":%" PRIu64 ",\"insert_id\":", seq);
            fy_json_emit_string(&out, r.insert_id, r.insert_id_len);
            fy_buf_printf(&out, ",\"recorded_at\":%" PRId64, r.recorded_at_ms);
            fy_record_clock_json(&out, &r); /* mono_ms, boot_id when recorded */
            fy_buf_puts(&out, ",\"event\":");
            e = fy_json_emit(&out, &r.event);
            fy_record_free(&r); /* strings point into the map: written out before the txn ends */
            if (e || fy_buf_puts(&out, "}\n")) {
                status = fail(e ? e : FERRY_ENOMEM);
                break;
            }
            if (out.len > (1u << 16)) {
                fwrite(out.data, 1, out.len, stdout);
                fy_buf_reset(&out);
            }
        }
        if (rc == MDB_NOTFOUND)
            done = 1;
        else if (rc && status == EX_OK)
            status = fail(fy_fail_lmdb(rc, "journal %s: reading events", j->path));
        mdb_cursor_close(cur);
        mdb_txn_abort(txn);
    }
    if (out.len)
        fwrite(out.data, 1, out.len, stdout);
    fy_buf_free(&out);
    if (fflush(stdout) != 0) {
        perror(PROG ": writing output");
        return EX_IOERR;
    }
    if (status == EX_OK && bad) {
        fprintf(stderr, PROG ": journal %s: %" PRIu64 " record(s) could not be decoded\n", j->path, bad);
        status = EX_DATAERR;
    }
    return status;
}

/* ---- dead letters ------------------------------------------------------ */

static int cmd_dead(fy_journal *j, int argc, char **argv)
{
    int json = argc == 2 && !strcmp(argv[1], "--json");
    if (argc > 2 || (argc == 2 && !json)) {
        fprintf(stderr, PROG " dead: unexpected argument '%s'\n", argv[1]);
        return EX_USAGE;
    }
    MDB_txn *txn;
    MDB_cursor *cur;
    ferry_err e = fy_txn_begin(j, MDB_RDONLY, &txn);
    if (e)
        return fail(e);
    int rc = mdb_cursor_open(txn, j->dead, &cur);
    MDB_val k, d;
    fy_buf out;
    fy_buf_init(&out, 0);
    uint64_t n = 0, bad = 0;
    char when[40];
    for (rc = rc ? rc : mdb_cursor_get(cur, &k, &d, MDB_FIRST); !rc; rc = mdb_cursor_get(cur, &k, &d, MDB_NEXT)) {
        fy_dead x;
        fy_record r;
        if ((e = fy_dead_decode(j, &k, &d, &x)) || (e = fy_record_decode(x.rec, x.rec_len, &r))) {
            fprintf(stderr, PROG ": %s\n", ferry_last_error());
            bad++;
            continue;
        }
        n++;
        fy_buf_reset(&out);
        if (json) {
            fy_buf_puts(&out, "{\"sink\":");
            fy_json_emit_string(&out, x.sink, strlen(x.sink));
            fy_buf_printf(&out, ",\"seq\":%" PRIu64 ",\"status\":%" PRId64 ",\"at_ms\":%" PRId64 ",\"reason\":",
                          x.seq, x.status, x.at_ms);
            fy_json_emit_string(&out, x.reason, strlen(x.reason));
            fy_buf_puts(&out, ",\"insert_id\":");
            fy_json_emit_string(&out, r.insert_id, r.insert_id_len);
            fy_buf_puts(&out, ",\"event\":");
            fy_json_emit(&out, &r.event);
            fy_buf_puts(&out, "}\n");
        } else {
            fy_cli_format_time(x.at_ms, when, sizeof when);
            fy_buf_printf(&out, "%-10s seq %-8" PRIu64 " status %-4" PRId64 " %s  %.*s  (%s)\n", x.sink, x.seq,
                          x.status, when, (int)r.event_type_len, r.event_type, x.reason);
        }
        fy_record_free(&r);
        fwrite(out.data, 1, out.len, stdout);
    }
    mdb_cursor_close(cur);
    mdb_txn_abort(txn);
    fy_buf_free(&out);
    if (rc != MDB_NOTFOUND)
        return fail(fy_fail_lmdb(rc, "journal %s: reading dead letters", j->path));
    if (!json)
        printf("%" PRIu64 " dead event(s)\n", n);
    return bad ? EX_DATAERR : EX_OK;
}

static int parse_seq(const char *s, uint64_t *out)
{
    int64_t v;
    if (fy_cli_parse_i64(s, &v) || v <= 0)
        return -1;
    *out = (uint64_t)v;
    return 0;
}

static int cmd_requeue(fy_journal *j, int argc, char **argv)
{
    const char *sink = NULL;
    int all = 0;
    uint64_t *want = calloc((size_t)argc, sizeof *want);
    size_t n_want = 0;
    if (!want)
        return fail(fy_fail(FERRY_ENOMEM, "out of memory"));
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--all"))
            all = 1;
        else if (!strcmp(argv[i], "--sink") && i + 1 < argc)
            sink = argv[++i];
        else if (parse_seq(argv[i], &want[n_want++])) {
            fprintf(stderr, PROG " requeue: '%s' is not a sequence number\n", argv[i]);
            free(want);
            return EX_USAGE;
        }
    }
    if (all == (n_want > 0)) {
        fprintf(stderr, PROG " requeue: give sequence numbers or --all\n");
        free(want);
        return EX_USAGE;
    }
    MDB_txn *txn;
    ferry_err e = fy_txn_begin(j, 0, &txn);
    if (e) {
        free(want);
        return fail(e);
    }
    /* Collect first, then requeue: requeueing deletes dead rows under the cursor. */
    fy_dead *hits = NULL;
    size_t n_hits = 0;
    MDB_cursor *cur;
    MDB_val k, d;
    int rc = mdb_cursor_open(txn, j->dead, &cur);
    for (rc = rc ? rc : mdb_cursor_get(cur, &k, &d, MDB_FIRST); !rc && !e; rc = mdb_cursor_get(cur, &k, &d, MDB_NEXT)) {
        fy_dead x;
        if ((e = fy_dead_decode(j, &k, &d, &x)))
            break;
        int match = all;
        for (size_t i = 0; i < n_want && !match; i++)
            match = want[i] == x.seq;
        if (!match || (sink && strcmp(sink, x.sink)))
            continue;
        /* The record points into the map, valid only until the first update. */
        void *copy = malloc(x.rec_len + 1);
        fy_dead *h = copy ? realloc(hits, (n_hits + 1) * sizeof *h) : NULL;
        if (!h) {
            free(copy);
            e = fy_fail(FERRY_ENOMEM, "out of memory");
            break;
        }
        memcpy(copy, x.rec, x.rec_len);
        x.rec = copy;
        hits = h;
        hits[n_hits++] = x;
    }
    mdb_cursor_close(cur);
    if (!e && rc && rc != MDB_NOTFOUND)
        e = fy_fail_lmdb(rc, "journal %s: reading dead letters", j->path);
    for (size_t i = 0; i < n_want && !e; i++) {
        int found = 0;
        for (size_t h = 0; h < n_hits; h++)
            found |= hits[h].seq == want[i];
        if (!found)
            e = fy_fail(FERRY_EINVAL, "no dead event with sequence number %" PRIu64 "%s%s", want[i],
                        sink ? " for destination " : "", sink ? sink : "");
    }
    uint64_t *new_seqs = calloc(n_hits + 1, sizeof *new_seqs);
    if (!e && !new_seqs)
        e = fy_fail(FERRY_ENOMEM, "out of memory");
    for (size_t i = 0; i < n_hits && !e; i++)
        e = fy_dead_requeue(j, txn, &hits[i], &new_seqs[i]);
    if (e)
        mdb_txn_abort(txn); /* all or nothing */
    else
        e = fy_txn_commit(j, txn, "the requeue");
    if (!e) {
        for (size_t i = 0; i < n_hits; i++)
            printf("requeued %s seq %" PRIu64 " as seq %" PRIu64 "\n", hits[i].sink, hits[i].seq, new_seqs[i]);
        printf("%zu event(s) requeued\n", n_hits);
    }
    free(new_seqs);
    for (size_t i = 0; i < n_hits; i++)
        free((void *)(uintptr_t)hits[i].rec);
    free(hits);
    free(want);
    return e ? fail(e) : EX_OK;
}

/* ---- config ------------------------------------------------------------ */

static fy_config config;

static int cmd_config(const char *jflag, int argc, char **argv)
{
    static const struct option opts[] = {
        {"json", no_argument, NULL, 'J'}, {"help", no_argument, NULL, 'h'}, {NULL, 0, NULL, 0},
    };
    int json = 0, c;
    optind = 0;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 'J': json = 1; break;
        case 'h': printf("Usage: " PROG " [--config FILE] [-j DIR] config [--json]\n"); return EX_OK;
        default: fprintf(stderr, "Try '" PROG " config --help'.\n"); return EX_USAGE;
        }
    }
    if (optind < argc) {
        fprintf(stderr, PROG " config: unexpected argument '%s'\n", argv[optind]);
        return EX_USAGE;
    }
    char origin[8];
    /* -j from the file is the file's value, not a flag. */
    if (jflag && fy_config_origin(&config, jflag, origin, sizeof origin))
        jflag = NULL;
    fy_config_print(&config, jflag, json, stdout);
    return fflush(stdout) ? EX_IOERR : EX_OK;
}

/* ---- main -------------------------------------------------------------- */

typedef struct command {
    const char *name;
    int (*run)(fy_journal *j, int argc, char **argv);
    int writes; /* opens the journal for writing */
} command;

static const command commands[] = {
    {"copy", fj_cmd_copy, 0},
    {"export", fj_cmd_export, 0},
    {"purge", fj_cmd_purge, 1},
    {"tail", fj_cmd_tail, 0},
    {"dead", cmd_dead, 0},
    {"dump", cmd_dump, 0},
    {"timeline", jt_timeline_cmd, 0},
    {"requeue", cmd_requeue, 1},
    {"stat", cmd_stat, 0},
};

static int run(int argc, char **argv);

int main(int argc, char **argv)
{
    int status = run(argc, argv);
    fy_config_free(&config);
    return status;
}

static int run(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"config", required_argument, NULL, 'C'},
        {"help", no_argument, NULL, 'h'},
        {"journal", required_argument, NULL, 'j'},
        {"version", no_argument, NULL, 'V'},
        {NULL, 0, NULL, 0},
    };
    const char *jflag = NULL;
    int c;
    /* "+": options end at the command name. */
    if ((c = fy_config_args(&config, PROG, FY_PROG_JOURNAL, &argc, &argv, "+hj:V", longopts)))
        return c;
    while ((c = fy_config_getopt(&config, argc, argv, "+hj:V", longopts)) != -1) {
        switch (c) {
        case 'C': break; /* read by fy_config_args */
        case 'h': usage(stdout); return EX_OK;
        case 'j': jflag = optarg; break;
        case 'V': printf(PROG " %s\n", ferry_version()); return EX_OK;
        default: fprintf(stderr, "Try '" PROG " --help'.\n"); return EX_USAGE;
        }
    }
    if (optind >= argc) {
        usage(stderr);
        return EX_USAGE;
    }
    if (!strcmp(argv[optind], "config"))
        return cmd_config(jflag, argc - optind, argv + optind);
    fj_dir_command *own = fj_find_dir_command(argv[optind]); /* verify, import: open the journal themselves */
    if (own) {
        char ownbuf[4096];
        return own(fy_cli_journal_dir(jflag, ownbuf, sizeof ownbuf), argc - optind, argv + optind);
    }
    const command *cmd = NULL;
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        if (!strcmp(argv[optind], commands[i].name))
            cmd = &commands[i];
    if (!cmd) {
        fprintf(stderr, PROG ": unknown command '%s'\nTry '" PROG " --help'.\n", argv[optind]);
        return EX_USAGE;
    }
    char dirbuf[4096];
    const char *dir = fy_cli_journal_dir(jflag, dirbuf, sizeof dirbuf);
    if (!dir) {
        fprintf(stderr, PROG ": no journal directory: pass -j DIR or set FERRY_JOURNAL\n");
        return EX_USAGE;
    }
    /* LMDB trusts its pages (fy_pagewalk.h): look at them before it does. */
    char damage[300];
    if (pw_journal_damaged(dir, damage, sizeof damage)) {
        fprintf(stderr,
                PROG ": journal %s is damaged (%s); nothing was read. Stop ferry-record and ferry-replay, then run "
                "`" PROG " -j %s salvage`: it keeps every readable event and quarantines the rest\n",
                dir, damage, dir);
        return EX_DATAERR;
    }
    fy_journal j;
    fy_open_opts o = {.readonly = !cmd->writes};
    ferry_err e = fy_journal_open(&j, dir, &o);
    if (e)
        return fail(e);
    int status = cmd->run(&j, argc - optind, argv + optind);
    fy_journal_close(&j);
    return status;
}

/* ferry-bench: ferry's recording path beside a bare LMDB loop and SQLite in
 * WAL mode, on the same machine in one run. README.md (next to this file)
 * describes every row of the table; `./run bench` builds Release and runs it.
 *
 *   ferry-bench --data DIR [--dir DIR] [--events N] [--batched N]
 *               [--batch-size N] [--repeat K] [--quick] [--keep]
 *               [--only LOOPS] [--systems SYSTEMS]
 *
 * Every measurement opens a fresh journal per system and records the loop in
 * slices, the systems taking turns, so that what else the machine does (other
 * processes' I/O, CPU load) falls on all of them alike. The table shows the
 * median over the repeats; the repeats table every run and the mean. Nothing
 * here asserts on time: the program fails only when a write fails. */
#include "bench_sys.h"
#include "ferry.h"

#include <errno.h>
#include <inttypes.h>
#include <lmdb.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#ifndef FERRY_BENCH_BUILD_TYPE
#define FERRY_BENCH_BUILD_TYPE "unknown"
#endif

#define CORPUS_FILE "demo-release-update.jsonl"

/* ---- configuration ------------------------------------------------------ */

typedef struct config {
    const char *data_dir;
    const char *corpus_path;
    const char *parent;   /* --dir */
    uint64_t events;      /* per single-event loop */
    uint64_t batched;     /* per batched loop */
    uint64_t batch_size;
    unsigned repeat;
    int quick, keep;
    unsigned modes;       /* --only: bit per mode */
    unsigned systems;     /* --systems: bit per system */
    uint64_t map_bytes;   /* ferry max_bytes = LMDB map size, the same for all */
} config;

static char g_root[4096]; /* scratch directory of this run, removed at exit */
static int g_keep;

__attribute__((format(printf, 1, 2))) _Noreturn static void die(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("ferry-bench: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    if (g_root[0] && !g_keep)
        bench_rm_rf(g_root);
    exit(1);
}

/* Ctrl-C must not leave hundreds of MiB of journals in /var/tmp. Not
 * async-signal-safe (nftw), acceptable for a process that is ending. */
static void on_signal(int sig)
{
    if (g_root[0] && !g_keep)
        bench_rm_rf(g_root);
    signal(sig, SIG_DFL);
    raise(sig);
}

static void *xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (!p)
        die("out of memory");
    return p;
}

static void usage(FILE *f)
{
    fputs("usage: ferry-bench --data DIR [options]\n"
          "  --data DIR        directory holding " CORPUS_FILE "\n"
          "  --corpus FILE     another JSON-lines corpus instead\n"
          "  --dir DIR         where the journals go (default /var/tmp; not tmpfs)\n"
          "  --events N        events per single-event loop (default 3000)\n"
          "  --batched N       events per batched loop (default 200000)\n"
          "  --batch-size N    events per transaction in batched loops (default 1000)\n"
          "  --repeat K        runs of every measurement; the table shows the median (default 3)\n"
          "  --quick           tiny sizes, one repeat (the ctest smoke test)\n"
          "  --only LIST       run only these loops: durable,relaxed,batch,batch-json (for perf)\n"
          "  --systems LIST    run only these systems: ferry,lmdb,sqlite,lmdb-tight\n"
          "  --keep            keep the journals (under the printed directory)\n",
          f);
}

static uint64_t parse_count(const char *opt, const char *v)
{
    char *end;
    errno = 0;
    unsigned long long n = strtoull(v ? v : "", &end, 10);
    if (!v || !*v || *end || errno || n == 0 || v[0] == '-')
        die("%s needs a positive number, not '%s'", opt, v ? v : "");
    return (uint64_t)n;
}

static unsigned parse_list(const char *opt, const char *v, const char *const *names, int n)
{
    unsigned bits = 0;
    const char *p = v ? v : "";
    while (*p) {
        size_t l = strcspn(p, ",");
        int found = 0;
        for (int i = 0; i < n; i++)
            if (strlen(names[i]) == l && !strncmp(p, names[i], l))
                bits |= 1u << i, found = 1;
        if (!found)
            die("%s: unknown name '%.*s'", opt, (int)l, p);
        p += l + (p[l] == ',');
    }
    if (!bits)
        die("%s needs a list of names", opt);
    return bits;
}

static const char *const sys_name[] = {"ferry", "lmdb", "sqlite", "lmdb-tight"};
static const char *const mode_name[] = {"durable", "relaxed", "batch", "batch-json"};

static void parse_args(int argc, char **argv, config *c)
{
    uint64_t events = 0, batched = 0, batch_size = 0, repeat = 0;
    memset(c, 0, sizeof *c);
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--data"))
            c->data_dir = v, i++;
        else if (!strcmp(a, "--corpus"))
            c->corpus_path = v, i++;
        else if (!strcmp(a, "--dir"))
            c->parent = v, i++;
        else if (!strcmp(a, "--events"))
            events = parse_count(a, v), i++;
        else if (!strcmp(a, "--batched"))
            batched = parse_count(a, v), i++;
        else if (!strcmp(a, "--batch-size"))
            batch_size = parse_count(a, v), i++;
        else if (!strcmp(a, "--repeat"))
            repeat = parse_count(a, v), i++;
        else if (!strcmp(a, "--only"))
            c->modes = parse_list(a, v, mode_name, 4), i++;
        else if (!strcmp(a, "--systems"))
            c->systems = parse_list(a, v, sys_name, 4), i++;
        else if (!strcmp(a, "--quick"))
            c->quick = 1;
        else if (!strcmp(a, "--keep"))
            c->keep = 1;
        else if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            usage(stdout);
            exit(0);
        } else {
            usage(stderr);
            die("unknown option %s", a);
        }
        if (i >= argc)
            die("%s needs a value", a);
    }
    if (!c->data_dir && !c->corpus_path) {
        usage(stderr);
        die("give --data DIR (the repository's data/ directory) or --corpus FILE");
    }
    c->events = events ? events : c->quick ? 20 : 3000;
    c->batch_size = batch_size ? batch_size : 1000;
    c->batched = batched ? batched : c->quick ? 2 * c->batch_size : 200000;
    c->repeat = repeat ? (unsigned)(repeat > 99 ? 99 : repeat) : c->quick ? 1u : 3u;
    if (!c->parent)
        c->parent = "/var/tmp";
    if (!c->modes)
        c->modes = 15;
    if (!c->systems)
        c->systems = 15;
    /* Same bound for ferry and the LMDB map: room for the largest loop with
     * ferry's 75 % quota and LMDB's copy-on-write slack. */
    uint64_t most = c->events > c->batched ? c->events : c->batched;
    uint64_t need = (most * 2048u + (1u << 20) - 1) & ~(uint64_t)((1u << 20) - 1);
    c->map_bytes = need > (64u << 20) ? need : (64u << 20);
    g_keep = c->keep;
}

/* ---- the corpus and the events made from it ------------------------------ */

typedef struct corpus {
    char **line;
    size_t *len;
    size_t n, max_len;
} corpus;

static void corpus_load(const char *path, corpus *co)
{
    FILE *f = fopen(path, "r");
    if (!f)
        die("cannot open %s: %s", path, strerror(errno));
    memset(co, 0, sizeof *co);
    size_t cap = 0;
    char *buf = NULL;
    size_t bufcap = 0;
    ssize_t r;
    while ((r = getline(&buf, &bufcap, f)) >= 0) {
        size_t n = (size_t)r;
        while (n && (buf[n - 1] == '\n' || buf[n - 1] == '\r' || buf[n - 1] == ' '))
            n--;
        size_t s = 0;
        while (s < n && (buf[s] == ' ' || buf[s] == '\t'))
            s++;
        if (s == n)
            continue;
        if (buf[s] != '{')
            die("%s: line %zu is not a JSON object", path, co->n + 1);
        if (co->n == cap) {
            cap = cap ? cap * 2 : 64;
            char **l = realloc(co->line, cap * sizeof *l);
            size_t *ln = realloc(co->len, cap * sizeof *ln);
            if (!l || !ln)
                die("out of memory");
            co->line = l, co->len = ln;
        }
        co->line[co->n] = xmalloc(n - s + 1);
        memcpy(co->line[co->n], buf + s, n - s);
        co->line[co->n][n - s] = '\0';
        co->len[co->n] = n - s;
        if (n - s > co->max_len)
            co->max_len = n - s;
        co->n++;
    }
    free(buf);
    fclose(f);
    if (co->n == 0)
        die("%s holds no events", path);
}

static void corpus_free(corpus *co)
{
    for (size_t i = 0; i < co->n; i++)
        free(co->line[i]);
    free(co->line);
    free(co->len);
}

/* A chunk of distinct events: corpus line i % n with a fixed-length
 * insert_id made from i put in front, so that every event is distinct and
 * every copy of a corpus line encodes to the same size. */
typedef struct chunk {
    char *arena;
    size_t *off, *len;
    size_t n, cap_events, cap_bytes;
    uint32_t tag;
} chunk;

static void chunk_init(chunk *ch, const corpus *co, size_t cap_events, uint32_t tag)
{
    memset(ch, 0, sizeof *ch);
    ch->cap_events = cap_events;
    ch->cap_bytes = cap_events * (co->max_len + 64);
    ch->arena = xmalloc(ch->cap_bytes);
    ch->off = xmalloc(cap_events * sizeof *ch->off);
    ch->len = xmalloc(cap_events * sizeof *ch->len);
    ch->tag = tag;
}

static void chunk_free(chunk *ch)
{
    free(ch->arena);
    free(ch->off);
    free(ch->len);
}

static void chunk_fill(chunk *ch, const corpus *co, uint64_t first, size_t n)
{
    size_t pos = 0;
    if (n > ch->cap_events)
        die("internal: chunk too small");
    for (size_t k = 0; k < n; k++) {
        uint64_t i = first + k;
        const char *line = co->line[i % co->n];
        size_t len = co->len[i % co->n];
        const char *rest = line + 1; /* after '{' */
        while (*rest == ' ' || *rest == '\t')
            rest++;
        size_t rest_len = len - (size_t)(rest - line);
        char *out = ch->arena + pos;
        /* 36 characters, like the UUIDs ferry generates itself. */
        int w = snprintf(out, ch->cap_bytes - pos, "{\"insert_id\":\"%08" PRIx32 "-0000-4000-8000-%012" PRIx64 "\"%s",
                         ch->tag, (uint64_t)(i & 0xffffffffffffu), *rest == '}' ? "" : ",");
        if (w < 0 || (size_t)w + rest_len + 1 > ch->cap_bytes - pos)
            die("internal: chunk arena too small");
        memcpy(out + w, rest, rest_len);
        out[(size_t)w + rest_len] = '\0';
        ch->off[k] = pos;
        ch->len[k] = (size_t)w + rest_len;
        pos += ch->len[k] + 1;
    }
    ch->n = n;
}

static const char *chunk_event(const chunk *ch, size_t k) { return ch->arena + ch->off[k]; }

/* The values bare LMDB and SQLite store: the records ferry itself stored
 * for the corpus (read back from a ferry journal with plain LMDB), so every
 * system writes values of exactly the same sizes. */
typedef struct pool {
    unsigned char **rec;
    size_t *len;
    size_t n;
    double mean_len, mean_json;
} pool;

static void check_ferry(ferry_err e, const char *what)
{
    if (e != FERRY_OK)
        die("%s: %s", what, ferry_last_error());
}

static void check_mdb(int rc, const char *what)
{
    if (rc)
        die("LMDB %s: %s", what, mdb_strerror(rc));
}

static void pool_make(const config *c, const corpus *co, const char *dir, pool *p)
{
    ferry_options o = {c->map_bytes, FERRY_DURABILITY_FULL, FERRY_OVERFLOW_REJECT, 0, NULL};
    ferry_journal *j;
    ferry_batch *b;
    chunk ch;
    chunk_init(&ch, co, co->n, 0);
    chunk_fill(&ch, co, 0, co->n);
    double json = 0;
    check_ferry(ferry_open(dir, &o, &j), "opening the preparation journal");
    check_ferry(ferry_batch_new(&b), "new batch");
    for (size_t k = 0; k < ch.n; k++) {
        check_ferry(ferry_batch_add_json(b, chunk_event(&ch, k), ch.len[k]), "encoding the corpus");
        json += (double)ch.len[k];
    }
    check_ferry(ferry_record_batch(j, b, NULL), "recording the corpus");
    ferry_batch_free(b);
    ferry_close(j);
    chunk_free(&ch);

    MDB_env *env;
    MDB_txn *txn;
    MDB_dbi dbi;
    MDB_cursor *cur;
    MDB_val k, v;
    check_mdb(mdb_env_create(&env), "env create");
    check_mdb(mdb_env_set_maxdbs(env, 8), "set maxdbs");
    check_mdb(mdb_env_open(env, dir, MDB_RDONLY | MDB_NOTLS, 0600), "opening the preparation journal");
    check_mdb(mdb_txn_begin(env, NULL, MDB_RDONLY, &txn), "txn begin");
    check_mdb(mdb_dbi_open(txn, "events", 0, &dbi), "opening the events database");
    check_mdb(mdb_cursor_open(txn, dbi, &cur), "cursor open");
    memset(p, 0, sizeof *p);
    p->rec = xmalloc(co->n * sizeof *p->rec);
    p->len = xmalloc(co->n * sizeof *p->len);
    int rc;
    double total = 0;
    for (rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); rc == 0 && p->n < co->n;
         rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
        p->rec[p->n] = xmalloc(v.mv_size);
        memcpy(p->rec[p->n], v.mv_data, v.mv_size);
        p->len[p->n] = v.mv_size;
        total += (double)v.mv_size;
        p->n++;
    }
    mdb_cursor_close(cur);
    mdb_txn_abort(txn);
    mdb_env_close(env);
    if (p->n != co->n)
        die("read back %zu records from the preparation journal, expected %zu", p->n, co->n);
    p->mean_len = total / (double)p->n;
    p->mean_json = json / (double)co->n;
}

static void pool_free(pool *p)
{
    for (size_t i = 0; i < p->n; i++)
        free(p->rec[i]);
    free(p->rec);
    free(p->len);
}

/* ---- one measurement ----------------------------------------------------- */

/* SYS_LMDB_TIGHT: the bare LMDB batched loop with nothing between its commits
 * (MODE_BATCH only); SYS_LMDB and SYS_SQLITE do, untimed, the same JSON
 * encoding work before each turn as ferry's prepared batches (see runner). */
enum { SYS_FERRY, SYS_LMDB, SYS_SQLITE, SYS_LMDB_TIGHT, N_SYS };
/* MODE_BATCH: batches encoded ahead (ferry_batch_add_json, timed apart), then
 * committed back to back like the bare loops; MODE_BATCH_JSON (ferry only):
 * each batch encoded then committed, both timed, as an application does. */
enum { MODE_DURABLE, MODE_RELAXED, MODE_BATCH, MODE_BATCH_JSON, N_MODE };


typedef struct sample {
    double secs;      /* timed section: recording (commit) only */
    double enc_secs;  /* ferry batches: ferry_batch_add_json, timed apart */
    uint64_t events;
    int64_t wbytes;   /* write_bytes delta from after open to after close; -1 unknown */
    uint64_t size, alloc;
} sample;

typedef struct ctx {
    const config *c;
    const corpus *co;
    const pool *p;
    chunk ch;
} ctx;

static void make_dir(const char *dir)
{
    if (mkdir(dir, 0700) != 0)
        die("cannot create %s: %s", dir, strerror(errno));
}

static int64_t wb_delta(int64_t before)
{
    int64_t after = bench_write_bytes();
    return before < 0 || after < 0 ? -1 : after - before;
}

/* ---- the three systems, run side by side ---------------------------------
 *
 * A measurement opens one runner per system, then records the loop's events
 * in slices, taking turns (the order rotates every round), so that whatever
 * else the machine does during the measurement (other processes' I/O, CPU
 * frequency) falls on every system alike. Only the recording calls are
 * timed; write_bytes is read around every slice and around the close. */

#define SLICE_EVENTS 10u   /* single-event loops: events per turn */
#define SLICE_BATCHES 16u  /* batched loops: transactions per turn */

typedef struct runner {
    int sys, mode;
    sample *s;
    uint64_t done, total;
    char dir[4200];
    ferry_journal *fj;                 /* ferry */
    ferry_batch *fb[SLICE_BATCHES];    /* ferry; references with prep */
    int prep;                          /* a reference doing ferry's encoding work */
    MDB_env *env;                      /* bare LMDB */
    MDB_dbi dbi;
    sqlite3 *db;                       /* SQLite */
    sqlite3_stmt *ins, *begin, *commit;
} runner;

static void be64(unsigned char out[8], uint64_t v)
{
    for (int i = 7; i >= 0; i--, v >>= 8)
        out[i] = (unsigned char)v;
}

static void check_sql(sqlite3 *db, int rc, const char *what)
{
    if (rc != SQLITE_OK && rc != SQLITE_DONE && rc != SQLITE_ROW)
        die("SQLite %s: %s", what, sqlite3_errmsg(db));
}

static int is_batched(int mode) { return mode == MODE_BATCH || mode == MODE_BATCH_JSON; }

static void runner_open(ctx *x, runner *r, int sys, int mode, const char *dir, sample *s)
{
    const config *c = x->c;
    memset(r, 0, sizeof *r);
    r->sys = sys, r->mode = mode, r->s = s;
    r->total = is_batched(mode) ? c->batched : c->events;
    snprintf(r->dir, sizeof r->dir, "%s", dir);
    if (sys == SYS_FERRY) {
        ferry_options o = {c->map_bytes, mode == MODE_RELAXED ? FERRY_DURABILITY_RELAXED : FERRY_DURABILITY_FULL,
                           FERRY_OVERFLOW_REJECT, 0, NULL};
        check_ferry(ferry_open(dir, &o, &r->fj), "ferry_open");
        for (size_t g = 0; g < SLICE_BATCHES && is_batched(mode); g++)
            check_ferry(ferry_batch_new(&r->fb[g]), "ferry_batch_new");
    } else if (sys == SYS_LMDB || sys == SYS_LMDB_TIGHT) {
        /* What a user of plain LMDB would write: one named database, 8-byte
         * big-endian keys, MDB_APPEND, default sync flags (relaxed:
         * MDB_NOMETASYNC), the same map size as ferry's bound. */
        MDB_txn *txn;
        make_dir(dir);
        check_mdb(mdb_env_create(&r->env), "env create");
        check_mdb(mdb_env_set_maxdbs(r->env, 2), "set maxdbs");
        check_mdb(mdb_env_set_mapsize(r->env, (size_t)c->map_bytes), "set mapsize");
        check_mdb(mdb_env_open(r->env, dir, mode == MODE_RELAXED ? MDB_NOMETASYNC : 0, 0600), "env open");
        check_mdb(mdb_txn_begin(r->env, NULL, 0, &txn), "txn begin");
        check_mdb(mdb_dbi_open(txn, "events", MDB_CREATE, &r->dbi), "dbi open");
        check_mdb(mdb_txn_commit(txn), "commit");
    } else {
        /* What a user would pick instead: SQLite in WAL mode,
         * synchronous=FULL (relaxed: NORMAL), a rowid table, prepared
         * statements; single events in autocommit, one transaction each. */
        char path[4400];
        sqlite3_stmt *q;
        make_dir(dir);
        snprintf(path, sizeof path, "%s/events.sqlite", dir);
        if (sqlite3_open_v2(path, &r->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL) != SQLITE_OK)
            die("SQLite open %s: %s", path, r->db ? sqlite3_errmsg(r->db) : "out of memory");
        sqlite3 *db = r->db;
        check_sql(db, sqlite3_prepare_v2(db, "PRAGMA journal_mode=WAL", -1, &q, NULL), "journal_mode");
        if (sqlite3_step(q) != SQLITE_ROW || strcmp((const char *)sqlite3_column_text(q, 0), "wal") != 0)
            die("SQLite would not switch to WAL mode");
        sqlite3_finalize(q);
        check_sql(db, sqlite3_exec(db, mode == MODE_RELAXED ? "PRAGMA synchronous=NORMAL" : "PRAGMA synchronous=FULL",
                                   NULL, NULL, NULL), "synchronous");
        check_sql(db, sqlite3_exec(db, "CREATE TABLE events(seq INTEGER PRIMARY KEY, rec BLOB NOT NULL)", NULL, NULL,
                                   NULL), "create table");
        check_sql(db, sqlite3_prepare_v2(db, "INSERT INTO events(seq, rec) VALUES(?1, ?2)", -1, &r->ins, NULL),
                  "prepare");
        check_sql(db, sqlite3_prepare_v2(db, "BEGIN IMMEDIATE", -1, &r->begin, NULL), "prepare");
        check_sql(db, sqlite3_prepare_v2(db, "COMMIT", -1, &r->commit, NULL), "prepare");
    }
    /* Ferry's prepared batches are encoded just before they are committed,
     * which leaves the CPU caches cold for the commits. The references go
     * through the same untimed work (encoding the same events into batches
     * they then drop), so that the batched rows compare storage paths under
     * the same conditions; SYS_LMDB_TIGHT shows the loop without it. */
    r->prep = mode == MODE_BATCH && (sys == SYS_LMDB || sys == SYS_SQLITE);
    for (size_t g = 0; g < SLICE_BATCHES && r->prep; g++)
        check_ferry(ferry_batch_new(&r->fb[g]), "ferry_batch_new");
}

/* The references' share of the encoding work (not timed). */
static void prep_encode(ctx *x, runner *r, uint64_t n)
{
    uint64_t bs = x->c->batch_size;
    size_t g = 0;
    for (uint64_t done = 0; done < n; g++) {
        size_t m = (size_t)(n - done < bs ? n - done : bs);
        chunk_fill(&x->ch, x->co, r->done + done, m);
        for (size_t k = 0; k < m; k++)
            check_ferry(ferry_batch_add_json(r->fb[g], chunk_event(&x->ch, k), x->ch.len[k]), "ferry_batch_add_json");
        done += m;
    }
}

/* ferry: ferry_record_json per event; batches: ferry_batch_add_json (MODE_BATCH:
 * timed apart, the whole slice encoded first, then its batches committed
 * back to back like the bare loops; MODE_BATCH_JSON: encode then commit each
 * batch, both timed, as an application does). */
static void step_ferry(ctx *x, runner *r, uint64_t n)
{
    sample *s = r->s;
    if (!is_batched(r->mode)) {
        for (uint64_t done = 0; done < n;) {
            size_t m = (size_t)(n - done < x->ch.cap_events ? n - done : x->ch.cap_events);
            chunk_fill(&x->ch, x->co, r->done + done, m); /* the application's input: not timed */
            double t0 = bench_now();
            for (size_t k = 0; k < m; k++)
                check_ferry(ferry_record_json(r->fj, chunk_event(&x->ch, k), x->ch.len[k], NULL), "ferry_record_json");
            s->secs += bench_now() - t0;
            done += m;
        }
        return;
    }
    uint64_t bs = x->c->batch_size;
    size_t g = 0;
    for (uint64_t done = 0; done < n; g++) {
        size_t m = (size_t)(n - done < bs ? n - done : bs);
        chunk_fill(&x->ch, x->co, r->done + done, m);
        double t0 = bench_now();
        for (size_t k = 0; k < m; k++)
            check_ferry(ferry_batch_add_json(r->fb[g], chunk_event(&x->ch, k), x->ch.len[k]), "ferry_batch_add_json");
        double t1 = bench_now();
        if (r->mode == MODE_BATCH_JSON) {
            check_ferry(ferry_record_batch(r->fj, r->fb[g], NULL), "ferry_record_batch");
            s->secs += bench_now() - t0;
        } else {
            s->enc_secs += t1 - t0;
        }
        done += m;
    }
    if (r->mode == MODE_BATCH) {
        double t0 = bench_now();
        for (size_t k = 0; k < g; k++)
            check_ferry(ferry_record_batch(r->fj, r->fb[k], NULL), "ferry_record_batch");
        s->secs += bench_now() - t0;
    }
}

static void step_lmdb(ctx *x, runner *r, uint64_t n)
{
    const pool *p = x->p;
    uint64_t per_txn = is_batched(r->mode) ? x->c->batch_size : 1;
    double t0 = bench_now();
    for (uint64_t e = r->done, end = r->done + n; e < end;) {
        uint64_t m = end - e < per_txn ? end - e : per_txn;
        MDB_txn *txn;
        MDB_cursor *cur;
        check_mdb(mdb_txn_begin(r->env, NULL, 0, &txn), "txn begin");
        if (m == 1) {
            unsigned char kb[8];
            be64(kb, e + 1);
            size_t i = (size_t)(e % p->n);
            MDB_val k = {8, kb}, v = {p->len[i], p->rec[i]};
            check_mdb(mdb_put(txn, r->dbi, &k, &v, MDB_APPEND), "put");
            e++;
        } else {
            check_mdb(mdb_cursor_open(txn, r->dbi, &cur), "cursor open");
            for (uint64_t stop = e + m; e < stop; e++) {
                unsigned char kb[8];
                be64(kb, e + 1);
                size_t i = (size_t)(e % p->n);
                MDB_val k = {8, kb}, v = {p->len[i], p->rec[i]};
                check_mdb(mdb_cursor_put(cur, &k, &v, MDB_APPEND), "cursor put");
            }
            mdb_cursor_close(cur);
        }
        check_mdb(mdb_txn_commit(txn), "commit");
    }
    r->s->secs += bench_now() - t0;
}

static void step_sqlite(ctx *x, runner *r, uint64_t n)
{
    const pool *p = x->p;
    sqlite3 *db = r->db;
    uint64_t per_txn = is_batched(r->mode) ? x->c->batch_size : 1;
    double t0 = bench_now();
    for (uint64_t e = r->done, end = r->done + n; e < end;) {
        uint64_t m = end - e < per_txn ? end - e : per_txn;
        if (per_txn > 1) {
            check_sql(db, sqlite3_step(r->begin), "begin");
            sqlite3_reset(r->begin);
        }
        for (uint64_t stop = e + m; e < stop; e++) { /* alone: autocommit */
            size_t i = (size_t)(e % p->n);
            sqlite3_bind_int64(r->ins, 1, (sqlite3_int64)(e + 1));
            sqlite3_bind_blob(r->ins, 2, p->rec[i], (int)p->len[i], SQLITE_STATIC);
            check_sql(db, sqlite3_step(r->ins), "insert");
            sqlite3_reset(r->ins);
        }
        if (per_txn > 1) {
            check_sql(db, sqlite3_step(r->commit), "commit");
            sqlite3_reset(r->commit);
        }
    }
    r->s->secs += bench_now() - t0;
}

/* Records the runner's next turn: at most `slice` events. */
static void runner_step(ctx *x, runner *r, uint64_t slice)
{
    uint64_t n = r->total - r->done < slice ? r->total - r->done : slice;
    if (r->prep)
        prep_encode(x, r, n);
    int64_t wb0 = bench_write_bytes();
    if (r->sys == SYS_FERRY)
        step_ferry(x, r, n);
    else if (r->sys == SYS_SQLITE)
        step_sqlite(x, r, n);
    else
        step_lmdb(x, r, n);
    for (size_t g = 0; g < SLICE_BATCHES && r->prep; g++)
        ferry_batch_clear(r->fb[g]);
    int64_t d = wb_delta(wb0);
    r->s->wbytes = r->s->wbytes < 0 || d < 0 ? -1 : r->s->wbytes + d;
    r->done += n;
}

/* Closes; its writes count (SQLite's last connection checkpoints the WAL
 * into the database), its time does not. Then the file sizes. */
static void runner_close(runner *r)
{
    char path[4400];
    uint64_t sz, al;
    int64_t wb0 = bench_write_bytes();
    for (size_t g = 0; g < SLICE_BATCHES; g++)
        ferry_batch_free(r->fb[g]);
    if (r->sys == SYS_FERRY) {
        ferry_close(r->fj);
    } else if (r->sys != SYS_SQLITE) {
        mdb_env_close(r->env);
    } else {
        sqlite3_finalize(r->ins);
        sqlite3_finalize(r->begin);
        sqlite3_finalize(r->commit);
        if (sqlite3_close(r->db) != SQLITE_OK)
            die("SQLite close failed");
    }
    int64_t d = wb_delta(wb0);
    r->s->wbytes = r->s->wbytes < 0 || d < 0 ? -1 : r->s->wbytes + d;
    r->s->events = r->done;
    snprintf(path, sizeof path, "%s/%s", r->dir, r->sys == SYS_SQLITE ? "events.sqlite" : "data.mdb");
    bench_file_size(path, &r->s->size, &r->s->alloc);
    if (r->sys == SYS_SQLITE) {
        snprintf(path, sizeof path, "%s/events.sqlite-wal", r->dir);
        bench_file_size(path, &sz, &al);
        r->s->size += sz, r->s->alloc += al;
    }
}

/* ---- statistics and the table -------------------------------------------- */

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

typedef struct stat4 {
    double mean, median, min, max;
    int ok;
} stat4;

static stat4 stats(const double *v, unsigned n)
{
    stat4 s = {0, 0, 0, 0, 0};
    double sorted[100];
    unsigned m = 0;
    for (unsigned i = 0; i < n && m < 100; i++)
        if (v[i] >= 0)
            sorted[m++] = v[i];
    if (m == 0)
        return s;
    qsort(sorted, m, sizeof sorted[0], cmp_double);
    double sum = 0;
    for (unsigned i = 0; i < m; i++)
        sum += sorted[i];
    s.mean = sum / m;
    s.median = m % 2 ? sorted[m / 2] : (sorted[m / 2 - 1] + sorted[m / 2]) / 2;
    s.min = sorted[0];
    s.max = sorted[m - 1];
    s.ok = 1;
    return s;
}

#define N_COLS 8
#define MAX_ROWS 40
typedef struct table {
    char cell[MAX_ROWS][N_COLS][96];
    int rows;
} table;

static void table_row(table *t, const char *const cols[N_COLS])
{
    if (t->rows == MAX_ROWS)
        return;
    for (int i = 0; i < N_COLS; i++)
        snprintf(t->cell[t->rows][i], sizeof t->cell[0][0], "%s", cols[i] ? cols[i] : "");
    t->rows++;
}

static void table_print(const table *t, int ncols)
{
    size_t w[N_COLS] = {0};
    for (int r = 0; r < t->rows; r++)
        for (int i = 0; i < ncols; i++) {
            size_t l = strlen(t->cell[r][i]);
            w[i] = l > w[i] ? l : w[i];
        }
    for (int r = 0; r < t->rows; r++) {
        for (int i = 0; i < ncols; i++)
            printf(i == 0 ? "| %-*s |" : " %*s |", (int)w[i], t->cell[r][i]);
        putchar('\n');
        if (r == 0) {
            putchar('|');
            for (int i = 0; i < ncols; i++) {
                for (size_t k = 0; k < w[i] + 1; k++)
                    putchar('-');
                fputs(i > 0 ? ":|" : "-|", stdout); /* numbers right-aligned */
            }
            putchar('\n');
        }
    }
}

static void fmt_num(char *out, size_t len, double v, int ok)
{
    if (!ok)
        snprintf(out, len, "n/a");
    else if (v >= 100000)
        snprintf(out, len, "%.0f", v);
    else if (v >= 100)
        snprintf(out, len, "%.1f", v);
    else
        snprintf(out, len, "%.2f", v);
}

static void fmt_ratio(char *out, size_t len, double v, int ok)
{
    if (ok)
        snprintf(out, len, "%.3f", v);
    else
        snprintf(out, len, "n/a");
}

typedef struct results {
    sample s[N_MODE][N_SYS][100];
} results;

enum { M_RATE, M_ENC_RATE, M_TOTAL_RATE, M_WBYTES, M_SIZE, M_ALLOC };

/* The value of one figure of one run; -1 when unknown. */
static double figure(const sample *s, int what)
{
    double ev = (double)s->events;
    if (s->events == 0) /* not run (--only, --systems) */
        return -1;
    switch (what) {
    case M_RATE: return s->secs > 0 ? ev / s->secs : -1;
    case M_ENC_RATE: return s->enc_secs > 0 ? ev / s->enc_secs : -1;
    case M_TOTAL_RATE: return s->secs > 0 ? ev / s->secs : -1; /* MODE_BATCH_JSON */
    case M_WBYTES: return s->wbytes < 0 ? -1 : (double)s->wbytes / ev;
    case M_SIZE: return (double)s->size / ev;
    case M_ALLOC: return (double)s->alloc / ev;
    }
    return -1;
}

static stat4 figure_stats(const config *c, const results *r, int mode, int sys, int what)
{
    double v[100];
    for (unsigned i = 0; i < c->repeat; i++)
        v[i] = figure(&r->s[mode][sys][i], what);
    return stats(v, c->repeat);
}

/* Ferry's figure divided by bare LMDB's of the same repeat, over the repeats.
 * The two ran side by side, so this pairs runs that saw the same machine: a
 * steadier estimate than the ratio of the two medians. */
static stat4 ratio_stats(const config *c, const results *r, int ferry_mode, int ferry_what, int ref_mode, int ref_sys,
                         int ref_what)
{
    double v[100];
    for (unsigned i = 0; i < c->repeat; i++) {
        double f = figure(&r->s[ferry_mode][SYS_FERRY][i], ferry_what);
        double l = figure(&r->s[ref_mode][ref_sys][i], ref_what);
        v[i] = f >= 0 && l > 0 ? f / l : -1;
    }
    return stats(v, c->repeat);
}

/* One table row: ferry's figure, the bare-LMDB and SQLite figures (medians),
 * the ratio ferry/LMDB (median of the per-repeat ratios) and, for rates with
 * a target, whether it meets it. */
static void add_row(table *t, const config *c, const results *r, const char *label, const char *unit, int mode,
                    int ferry_what, int ref_sys, int ref_what, int sqlite, double target)
{
    int ferry_mode = ferry_what == M_TOTAL_RATE ? MODE_BATCH_JSON : mode;
    stat4 f = figure_stats(c, r, ferry_mode, SYS_FERRY, ferry_what);
    stat4 l = figure_stats(c, r, mode, ref_sys, ref_what);
    stat4 rt = ratio_stats(c, r, ferry_mode, ferry_what, mode, ref_sys, ref_what);
    stat4 q = figure_stats(c, r, mode, SYS_SQLITE, ref_what);
    char cf[32], cl[32], cq[32], ratio[32] = "n/a", tgt[32] = "-", meets[8] = "-";
    fmt_num(cf, sizeof cf, f.median, f.ok);
    fmt_num(cl, sizeof cl, l.median, l.ok);
    fmt_num(cq, sizeof cq, q.median, q.ok);
    if (!sqlite)
        snprintf(cq, sizeof cq, "-");
    fmt_ratio(ratio, sizeof ratio, rt.median, rt.ok);
    if (target > 0) {
        snprintf(tgt, sizeof tgt, ">= %.2f", target);
        if (rt.ok)
            snprintf(meets, sizeof meets, "%s", rt.median >= target ? "yes" : "no");
    }
    const char *cols[N_COLS] = {label, unit, cf, cl, ratio, cq, tgt, meets};
    table_row(t, cols);
}

static void print_report(const config *c, const results *r, const pool *p, const corpus *co)
{
    table t = {.rows = 0};
    char label[96];
    const char *head[N_COLS] = {"benchmark", "unit", "ferry", "bare LMDB", "ferry/LMDB", "SQLite WAL", "target",
                                "meets target"};
    table_row(&t, head);
    add_row(&t, c, r, "single event, durable (fsync per event)", "events/s", MODE_DURABLE, M_RATE, SYS_LMDB, M_RATE,
            1, 0.9);
    add_row(&t, c, r, "single event, relaxed (no meta-page sync)", "events/s", MODE_RELAXED, M_RATE, SYS_LMDB, M_RATE,
            1, 0.9);
    snprintf(label, sizeof label, "batch of %" PRIu64 ", commit of prepared batches", c->batch_size);
    add_row(&t, c, r, label, "events/s", MODE_BATCH, M_RATE, SYS_LMDB, M_RATE, 1, 0.9);
    snprintf(label, sizeof label, "  same, bare loop without the encoding work");
    add_row(&t, c, r, label, "events/s", MODE_BATCH, M_RATE, SYS_LMDB_TIGHT, M_RATE, 0, 0);
    snprintf(label, sizeof label, "batch of %" PRIu64 ", incl. JSON parse+encode", c->batch_size);
    add_row(&t, c, r, label, "events/s", MODE_BATCH, M_TOTAL_RATE, SYS_LMDB, M_RATE, 1, 0);
    {
        stat4 e = figure_stats(c, r, MODE_BATCH, SYS_FERRY, M_ENC_RATE);
        char ce[32];
        fmt_num(ce, sizeof ce, e.median, e.ok);
        const char *cols[N_COLS] = {"JSON parse+encode only (ferry_batch_add_json)", "events/s", ce, "-", "-", "-", "-",
                                    "-"};
        table_row(&t, cols);
    }
    {
        char cf[32], cl[32];
        snprintf(cf, sizeof cf, "%.1f", p->mean_len);
        snprintf(cl, sizeof cl, "%.1f", p->mean_len);
        const char *cols[N_COLS] = {"stored value (mean encoded record)", "bytes", cf, cl, "1.000", cl, "-", "-"};
        table_row(&t, cols);
    }
    snprintf(label, sizeof label, "disk: file size, corpus x %.0f", (double)c->batched / (double)co->n);
    add_row(&t, c, r, label, "bytes/event", MODE_BATCH, M_SIZE, SYS_LMDB, M_SIZE, 1, 0);
    snprintf(label, sizeof label, "disk: allocated (st_blocks), corpus x %.0f", (double)c->batched / (double)co->n);
    add_row(&t, c, r, label, "bytes/event", MODE_BATCH, M_ALLOC, SYS_LMDB, M_ALLOC, 1, 0);
    add_row(&t, c, r, "device writes, single event durable", "bytes/event", MODE_DURABLE, M_WBYTES, SYS_LMDB, M_WBYTES,
            1, 0);
    add_row(&t, c, r, "device writes, single event relaxed", "bytes/event", MODE_RELAXED, M_WBYTES, SYS_LMDB, M_WBYTES,
            1, 0);
    snprintf(label, sizeof label, "device writes, batch of %" PRIu64, c->batch_size);
    add_row(&t, c, r, label, "bytes/event", MODE_BATCH, M_WBYTES, SYS_LMDB, M_WBYTES, 1, 0);
    table_print(&t, N_COLS);
    printf("\nMedians of %u run(s); ferry/LMDB is the median of the per-run ratios (the systems run side by side). "
           "durable: ferry FERRY_DURABILITY_FULL, LMDB default sync flags, SQLite synchronous=FULL; relaxed: ferry "
           "FERRY_DURABILITY_RELAXED, LMDB MDB_NOMETASYNC, SQLite synchronous=NORMAL. Device writes: write_bytes of "
           "/proc/self/io per event. tests/bench/README.md explains every row.\n",
           c->repeat);

    /* Every run, for judging the noise. */
    printf("\nRepeats (every run, then mean and median):\n\n");
    table d = {.rows = 0};
    const char *dhead[N_COLS] = {"figure", "system", "unit", "runs", "mean", "median", "min", "max"};
    table_row(&d, dhead);
    static const struct {
        const char *name;
        int mode, what;
        const char *unit;
    } figs[] = {
        {"single durable", MODE_DURABLE, M_RATE, "events/s"},
        {"single relaxed", MODE_RELAXED, M_RATE, "events/s"},
        {"batch commit", MODE_BATCH, M_RATE, "events/s"},
        {"batch incl. JSON", MODE_BATCH_JSON, M_TOTAL_RATE, "events/s"},
        {"JSON encode only", MODE_BATCH, M_ENC_RATE, "events/s"},
        {"writes durable", MODE_DURABLE, M_WBYTES, "bytes/event"},
        {"writes relaxed", MODE_RELAXED, M_WBYTES, "bytes/event"},
        {"writes batch", MODE_BATCH, M_WBYTES, "bytes/event"},
    };
    for (size_t f = 0; f < sizeof figs / sizeof figs[0]; f++) {
        /* A row per system, then ferry's ratio to each LMDB loop. */
        for (int row = 0; row < N_SYS + 2; row++) {
            int ratio_ref = row == N_SYS ? SYS_LMDB : row == N_SYS + 1 ? SYS_LMDB_TIGHT : -1;
            int sys = ratio_ref >= 0 ? SYS_FERRY : row;
            int ferry_only = figs[f].what == M_TOTAL_RATE || figs[f].what == M_ENC_RATE;
            if (ferry_only && row != SYS_FERRY)
                continue;
            char runs[96] = "", mean[32], median[32], mn[32], mx[32], who[32];
            size_t pos = 0;
            double v[100];
            int any = 0;
            for (unsigned i = 0; i < c->repeat; i++) {
                char one[32];
                v[i] = figure(&r->s[figs[f].mode][sys][i], figs[f].what);
                if (ratio_ref >= 0) {
                    double ref = figure(&r->s[figs[f].mode][ratio_ref][i], figs[f].what);
                    v[i] = v[i] >= 0 && ref > 0 ? v[i] / ref : -1;
                    fmt_ratio(one, sizeof one, v[i], v[i] >= 0);
                } else {
                    fmt_num(one, sizeof one, v[i], v[i] >= 0);
                }
                any |= v[i] >= 0;
                int w = snprintf(runs + pos, sizeof runs - pos, "%s%s", i ? " " : "", one);
                if (w < 0 || (size_t)w >= sizeof runs - pos) {
                    snprintf(runs + (sizeof runs > 4 ? sizeof runs - 4 : 0), 4, "...");
                    break;
                }
                pos += (size_t)w;
            }
            if (!any) /* not run: another loop, or --only/--systems */
                continue;
            stat4 st = stats(v, c->repeat);
            void (*fmt)(char *, size_t, double, int) = ratio_ref >= 0 ? fmt_ratio : fmt_num;
            fmt(mean, sizeof mean, st.mean, st.ok);
            fmt(median, sizeof median, st.median, st.ok);
            fmt(mn, sizeof mn, st.min, st.ok);
            fmt(mx, sizeof mx, st.max, st.ok);
            snprintf(who, sizeof who, "%s%s", ratio_ref >= 0 ? "ferry/" : "", sys_name[ratio_ref >= 0 ? ratio_ref : sys]);
            const char *cols[N_COLS] = {figs[f].name, who, ratio_ref >= 0 ? "ratio" : figs[f].unit, runs, mean, median,
                                        mn, mx};
            table_row(&d, cols);
        }
    }
    table_print(&d, N_COLS);
}

/* ---- main ---------------------------------------------------------------- */

int main(int argc, char **argv)
{
    config c;
    corpus co;
    pool p;
    ctx x;
    parse_args(argc, argv, &c);
    /* An opted-out ferry writes nothing and would "win" every row. */
    unsetenv("FERRY_OPT_OUT");

    char corpus_path[4096];
    if (c.corpus_path)
        snprintf(corpus_path, sizeof corpus_path, "%s", c.corpus_path);
    else
        snprintf(corpus_path, sizeof corpus_path, "%s/%s", c.data_dir, CORPUS_FILE);
    corpus_load(corpus_path, &co);

    if ((size_t)snprintf(g_root, sizeof g_root, "%s/ferry-bench.XXXXXX", c.parent) >= sizeof g_root - 64)
        die("--dir path too long");
    if (!mkdtemp(g_root)) {
        int err = errno;
        g_root[0] = '\0';
        die("cannot create a directory under %s: %s", c.parent, strerror(err));
    }
    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);
    signal(SIGHUP, on_signal);
    char fstype[64], device[256], fsopts[512];
    int ram = bench_fs_info(g_root, fstype, sizeof fstype, device, sizeof device, fsopts, sizeof fsopts);
    if (ram)
        fprintf(stderr, "ferry-bench: WARNING: %s is on %s, where fsync costs nothing: the durable rows "
                        "mean little. Use --dir on a disk.\n", g_root, fstype);
    if (bench_write_bytes() < 0)
        fprintf(stderr, "ferry-bench: WARNING: /proc/self/io has no write_bytes; device-write rows are n/a\n");

    char dir[4200];
    snprintf(dir, sizeof dir, "%s/prep", g_root);
    pool_make(&c, &co, dir, &p);
    bench_rm_rf(dir);

    /* The header: machine, versions, date, command. */
    char machine[512], date[64];
    bench_machine(machine, sizeof machine);
    bench_date(date, sizeof date);
    int lmaj, lmin, lpat;
    mdb_version(&lmaj, &lmin, &lpat);
    printf("ferry-bench: ferry %s (%s build), LMDB %d.%d.%d, SQLite %s\n", ferry_version(), FERRY_BENCH_BUILD_TYPE,
           lmaj, lmin, lpat, sqlite3_libversion());
    printf("machine: %s\n", machine);
    const char *journal = "";
    if (!strcmp(fstype, "ext4")) {
        int jr = bench_ext4_journal(device);
        journal = jr == 1 ? " with journal" : jr == 0 ? " without journal" : "";
    }
    printf("journals: %s on %s (%s%s, %s)%s\n", g_root, device, fstype, journal, fsopts,
           ram ? "  WARNING: RAM filesystem" : "");
    printf("date: %s\n", date);
    printf("command:");
    for (int i = 0; i < argc; i++)
        printf(" %s", argv[i]);
    printf("\ncorpus: %s, %zu events, mean %.1f bytes of JSON (insert_id added), mean encoded record %.1f bytes\n",
           corpus_path, co.n, p.mean_json, p.mean_len);
    printf("sizes: single-event loops %" PRIu64 " events, batched loops %" PRIu64 " events in transactions of %" PRIu64
           ", %u repeat(s), map/bound %" PRIu64 " MiB\n\n",
           c.events, c.batched, c.batch_size, c.repeat, c.map_bytes >> 20);
    if (strcmp(FERRY_BENCH_BUILD_TYPE, "Release") != 0)
        printf("WARNING: not a Release build; rates are not representative.\n\n");
    fflush(stdout);

    results *r = calloc(1, sizeof *r);
    if (!r)
        die("out of memory");
    x.c = &c, x.co = &co, x.p = &p;
    chunk_init(&x.ch, &co, c.batch_size > 1000 ? (size_t)c.batch_size : 1000, (uint32_t)getpid());

    for (unsigned rep = 0; rep < c.repeat; rep++) {
        for (int mode = 0; mode < N_MODE; mode++) {
            runner run[N_SYS];
            int nr = 0;
            for (int sys = 0; sys < N_SYS; sys++) {
                sample *s = &r->s[mode][sys][rep];
                memset(s, 0, sizeof *s);
                if (!(c.modes & (1u << mode)) || !(c.systems & (1u << sys)) ||
                    (mode == MODE_BATCH_JSON && sys != SYS_FERRY) || (sys == SYS_LMDB_TIGHT && mode != MODE_BATCH))
                    continue;
                snprintf(dir, sizeof dir, "%s/%s-%s-%u", g_root, mode_name[mode], sys_name[sys], rep + 1);
                runner_open(&x, &run[nr++], sys, mode, dir, s);
            }
            if (!nr)
                continue;
            sync(); /* earlier runs' dirty pages must not be written back during this one */
            uint64_t slice = is_batched(mode) ? SLICE_BATCHES * c.batch_size : SLICE_EVENTS;
            for (unsigned round = 0;; round++) {
                int busy = 0;
                for (int k = 0; k < nr; k++) {
                    runner *rn = &run[(k + (int)round) % nr]; /* who goes first rotates */
                    if (rn->done < rn->total)
                        runner_step(&x, rn, slice), busy = 1;
                }
                if (!busy)
                    break;
            }
            for (int k = 0; k < nr; k++) {
                runner_close(&run[k]);
                fprintf(stderr, "ferry-bench: run %u/%u %-10s %-6s %10.1f events/s %9.1f bytes written/event\n",
                        rep + 1, c.repeat, mode_name[mode], sys_name[run[k].sys], figure(run[k].s, M_RATE),
                        figure(run[k].s, M_WBYTES));
                if (!c.keep)
                    bench_rm_rf(run[k].dir);
            }
        }
    }

    print_report(&c, r, &p, &co);
    if (c.keep)
        printf("\njournals kept in %s\n", g_root);
    else
        bench_rm_rf(g_root);
    chunk_free(&x.ch);
    free(r);
    pool_free(&p);
    corpus_free(&co);
    return 0;
}

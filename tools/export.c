/* export.c: ferry-journal export --format jsonl|csv|capture.
 *
 * Everything comes from one read transaction (fj_snap), so the export is a
 * consistent snapshot while recorders and the replayer keep running; the
 * output goes to a temporary file that is fsync'd and renamed into place,
 * and its SHA-256 is printed for chain-of-custody notes. */
#include "fj.h"
#include "ferry.h"
#include "fy_cli.h"
#include "fy_fail.h"
#include "fy_gaps.h"

#include <getopt.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

enum { FMT_JSONL, FMT_CSV, FMT_CAPTURE };

typedef struct exp {
    fj_snap *s;
    fj_out *out;
    fy_buf line;
    int format;
    uint64_t n, total;
    fj_progress prog;
    /* capture */
    fy_capw w;
    fy_cap_str *devs;
    size_t n_devs, cap_devs;
    uint64_t first_seq, last_seq;
    ferry_err err;
} exp;

/* ---- JSON Lines ------------------------------------------------------------ */

static int emit_jsonl(void *arg, fj_item *it)
{
    exp *x = arg;
    fy_buf *b = &x->line;
    fy_buf_reset(b);
    ferry_err e = fy_buf_printf(b, "{\"seq\":%" PRIu64 ",\"insert_id\":", it->seq);
    if (!e) e = fy_json_emit_string(b, it->r.insert_id, it->r.insert_id_len);
    if (!e) e = fy_buf_printf(b, ",\"recorded_at\":%" PRId64, it->r.recorded_at_ms);
    if (!e) e = fy_record_clock_json(b, &it->r); /* mono_ms, boot_id when recorded */
    if (!e) e = fy_buf_printf(b, ",\"state\":\"%s\",\"delivery\":{", fj_state_name(it->summary));
    int any_dead = 0;
    for (size_t d = 0; d < x->s->n_dests && !e; d++) {
        const fy_cap_state *st = &it->states[d];
        any_dead |= st->state == FY_CAP_DEAD;
        if (d)
            e = fy_buf_putc(b, ',');
        if (!e) e = fy_json_emit_string(b, x->s->dests[d].name, strlen(x->s->dests[d].name));
        if (!e) e = fy_buf_printf(b, ":\"%s\"", st->state == FY_CAP_DEAD ? "dead"
                                                  : st->state == FY_CAP_PENDING ? "pending" : "delivered");
    }
    if (!e) e = fy_buf_putc(b, '}');
    if (!e && any_dead) {
        e = fy_buf_puts(b, ",\"dead\":{");
        const char *sep = "";
        for (size_t d = 0; d < x->s->n_dests && !e; d++) {
            const fy_cap_state *st = &it->states[d];
            if (st->state != FY_CAP_DEAD)
                continue;
            if (!(e = fy_buf_puts(b, sep)))
                e = fy_json_emit_string(b, x->s->dests[d].name, strlen(x->s->dests[d].name));
            if (!e) e = fy_buf_printf(b, ":{\"status\":%" PRId64 ",\"at_ms\":%" PRId64 ",\"reason\":", st->status,
                                      st->at_ms);
            if (!e) e = fy_json_emit_string(b, st->reason.p, st->reason.n);
            if (!e) e = fy_buf_putc(b, '}');
            sep = ",";
        }
        if (!e) e = fy_buf_putc(b, '}');
    }
    if (!e) e = fy_buf_puts(b, ",\"event\":");
    if (!e) e = fy_json_emit(b, &it->r.event);
    if (!e) e = fy_buf_puts(b, "}\n");
    if (!e) e = fj_out_write(x->out, b->data, b->len);
    if (e) {
        x->err = e;
        return 1;
    }
    fj_progress_tick(&x->prog, ++x->n);
    return 0;
}

/* ---- CSV (RFC 4180) ---------------------------------------------------------- */

/* Appends text as one CSV cell: invalid UTF-8 and NUL become U+FFFD; a cell
 * a spreadsheet would run as a formula (first character = + - @ TAB CR) gets
 * a leading apostrophe; the cell is quoted when it holds a comma, a quote,
 * CR or LF (quotes doubled). */
static ferry_err csv_cell(fy_buf *b, const char *s, size_t n)
{
    const unsigned char *p = (const unsigned char *)s;
    fy_buf clean;
    fy_buf_init(&clean, 0);
    ferry_err e = FERRY_OK;
    if (n && p[0] && strchr("=+-@\t\r", p[0]))
        e = fy_buf_putc(&clean, '\'');
    int quote = 0;
    for (size_t i = 0; i < n && !e;) {
        size_t len = p[i] < 0x80 ? 1 : fy_utf8_seq(p + i, n - i);
        if (len == 0 || p[i] == 0) {
            e = fy_buf_puts(&clean, "\xef\xbf\xbd");
            i += 1;
            continue;
        }
        if (p[i] == ',' || p[i] == '"' || p[i] == '\r' || p[i] == '\n')
            quote = 1;
        e = p[i] == '"' ? fy_buf_puts(&clean, "\"\"") : fy_buf_append(&clean, p + i, len);
        i += len;
    }
    if (!e && quote) e = fy_buf_putc(b, '"');
    if (!e) e = fy_buf_append(b, clean.data, clean.len);
    if (!e && quote) e = fy_buf_putc(b, '"');
    fy_buf_free(&clean);
    return e;
}

static ferry_err csv_json_cell(fy_buf *b, const msgpack_object *o)
{
    if (!o)
        return FERRY_OK;
    fy_buf t;
    fy_buf_init(&t, 0);
    ferry_err e = fy_json_emit(&t, o);
    if (!e)
        e = csv_cell(b, t.data, t.len);
    fy_buf_free(&t);
    return e;
}

static ferry_err csv_str_field(fy_buf *b, const msgpack_object *ev, const char *key)
{
    const msgpack_object *o = fy_map_get(ev, key);
    if (!o)
        return FERRY_OK;
    if (o->type == MSGPACK_OBJECT_STR)
        return csv_cell(b, o->via.str.ptr, o->via.str.size);
    return csv_json_cell(b, o);
}

static const char *const CSV_KNOWN[] = {"insert_id", "time", "event_type", "device_id", "user_id",
                                        "event_properties", "user_properties"};
#define CSV_HEADER "seq,insert_id,time_ms,time_utc,recorded_at_ms,event_type,device_id,user_id,state," \
                   "event_properties,user_properties,other_fields\r\n"

static int emit_csv(void *arg, fj_item *it)
{
    exp *x = arg;
    fy_buf *b = &x->line;
    const msgpack_object *ev = &it->r.event;
    char iso[40];
    fy_cli_format_time(it->r.time_ms, iso, sizeof iso);
    fy_buf_reset(b);
    ferry_err e = fy_buf_printf(b, "%" PRIu64 ",", it->seq);
    if (!e) e = csv_cell(b, it->r.insert_id, it->r.insert_id_len);
    if (!e) e = fy_buf_printf(b, ",%" PRId64 ",%s,%" PRId64 ",", it->r.time_ms, iso, it->r.recorded_at_ms);
    if (!e) e = csv_cell(b, it->r.event_type, it->r.event_type_len);
    if (!e) e = fy_buf_putc(b, ',');
    if (!e) e = csv_str_field(b, ev, "device_id");
    if (!e) e = fy_buf_putc(b, ',');
    if (!e) e = csv_str_field(b, ev, "user_id");
    if (!e) e = fy_buf_printf(b, ",%s,", fj_state_name(it->summary));
    if (!e) e = csv_json_cell(b, fy_map_get(ev, "event_properties"));
    if (!e) e = fy_buf_putc(b, ',');
    if (!e) e = csv_json_cell(b, fy_map_get(ev, "user_properties"));
    if (!e) e = fy_buf_putc(b, ',');
    /* Every other top-level field, as one JSON object. */
    fy_buf other;
    fy_buf_init(&other, 0);
    size_t n_other = 0;
    if (!e) e = fy_buf_putc(&other, '{');
    for (uint32_t i = 0; i < ev->via.map.size && !e; i++) {
        const msgpack_object_kv *kv = &ev->via.map.ptr[i];
        int known = 0;
        for (size_t k = 0; k < sizeof CSV_KNOWN / sizeof CSV_KNOWN[0] && !known; k++)
            known = kv->key.via.str.size == strlen(CSV_KNOWN[k]) &&
                    !memcmp(kv->key.via.str.ptr, CSV_KNOWN[k], kv->key.via.str.size);
        if (known)
            continue;
        if (n_other++)
            e = fy_buf_putc(&other, ',');
        if (!e) e = fy_json_emit_string(&other, kv->key.via.str.ptr, kv->key.via.str.size);
        if (!e) e = fy_buf_putc(&other, ':');
        if (!e) e = fy_json_emit(&other, &kv->val);
    }
    if (!e) e = fy_buf_putc(&other, '}');
    if (!e && n_other) e = csv_cell(b, other.data, other.len);
    fy_buf_free(&other);
    if (!e) e = fy_buf_puts(b, "\r\n");
    if (!e) e = fj_out_write(x->out, b->data, b->len);
    if (e) {
        x->err = e;
        return 1;
    }
    fj_progress_tick(&x->prog, ++x->n);
    return 0;
}

/* ---- capture ------------------------------------------------------------------ */

/* First pass: count, seq range and device ids (pointers into the map,
 * valid for the whole transaction). */
static int scan_capture(void *arg, fj_item *it)
{
    exp *x = arg;
    if (!x->total++)
        x->first_seq = it->seq;
    x->last_seq = it->seq;
    if (!it->r.device_id)
        return 0;
    if (x->n_devs == x->cap_devs) {
        size_t nc = x->cap_devs ? 2 * x->cap_devs : 256;
        fy_cap_str *nd = realloc(x->devs, nc * sizeof *nd);
        if (!nd) {
            x->err = fy_fail(FERRY_ENOMEM, "out of memory");
            return 1;
        }
        x->devs = nd;
        x->cap_devs = nc;
    }
    /* Consecutive duplicates are common: skip them here, the rest later. */
    if (x->n_devs && x->devs[x->n_devs - 1].n == it->r.device_id_len &&
        !memcmp(x->devs[x->n_devs - 1].p, it->r.device_id, it->r.device_id_len))
        return 0;
    x->devs[x->n_devs].p = it->r.device_id;
    x->devs[x->n_devs].n = it->r.device_id_len;
    x->n_devs++;
    return 0;
}

static int cmp_str(const void *a, const void *b)
{
    const fy_cap_str *x = a, *y = b;
    size_t n = x->n < y->n ? x->n : y->n;
    int c = memcmp(x->p, y->p, n);
    return c ? c : (x->n > y->n) - (x->n < y->n);
}

static int emit_capture(void *arg, fj_item *it)
{
    exp *x = arg;
    ferry_err e = fy_capw_entry(&x->w, it->seq, it->flags, it->states, it->rec, it->rec_len);
    if (e) {
        x->err = e;
        return 1;
    }
    fj_progress_tick(&x->prog, ++x->n);
    return 0;
}

/* ---- the command ----------------------------------------------------------------- */

/* Whether the filter keeps an eviction gap: a loss not yet reported is news
 * pending for its destination; it has its device and its time range; with
 * --type only when the loss event's own type is asked for. */
static int gap_kept(const fj_filter *f, const fy_gap *g)
{
    int type_ok = !f->n_types;
    for (size_t i = 0; i < f->n_types; i++)
        type_ok |= !strcmp(f->types[i], FY_LOSS_EVENT_TYPE);
    return type_ok && (!f->states || (f->states & FJ_PENDING)) && (!f->has_since || g->last_time >= f->since) &&
           (!f->has_until || g->first_time < f->until) &&
           (!f->device_id || (g->device_id && !strcmp(g->device_id, f->device_id)));
}

/* The snapshot's unreported eviction gaps the filter keeps, for the capture
 * header (their strings point into rows, kept until the export ends). */
static ferry_err capture_gaps(fy_journal *j, const fj_snap *s, const fj_filter *f, fy_gap **rows, size_t *n_rows,
                              fy_cap_gap **out, size_t *n_out)
{
    *out = NULL;
    *n_out = 0;
    ferry_err e = fy_gaps_list(j, s->txn, NULL, rows, n_rows);
    if (e || !*n_rows)
        return e;
    if (!(*out = calloc(*n_rows, sizeof **out)))
        return fy_fail(FERRY_ENOMEM, "out of memory");
    for (size_t i = 0; i < *n_rows; i++) {
        const fy_gap *g = &(*rows)[i];
        int known = 0;
        for (size_t d = 0; d < s->n_dests && !known; d++)
            known = !strcmp(s->dests[d].name, g->sink);
        if (!known || !gap_kept(f, g))
            continue;
        fy_cap_gap *c = &(*out)[(*n_out)++];
        c->dest.p = g->sink;
        c->dest.n = strlen(g->sink);
        memcpy(c->journal_id, fy_gap_journal(j->id, g), 16);
        c->first_seq = g->first_seq, c->last_seq = g->last_seq, c->count = g->count;
        c->first_time = g->first_time, c->last_time = g->last_time;
        c->first_recorded = g->first_recorded, c->last_recorded = g->last_recorded, c->at_ms = g->at_ms;
        if ((c->has_device = g->device_id != NULL))
            c->device_id.p = g->device_id, c->device_id.n = strlen(g->device_id);
        if ((c->has_user = g->user_id != NULL))
            c->user_id.p = g->user_id, c->user_id.n = strlen(g->user_id);
    }
    return FERRY_OK;
}

static void export_help(FILE *f)
{
    fprintf(f,
"Usage: " FJ_PROG " [-j DIR] export --format jsonl|csv|capture [--output FILE] [--force]\n"
"           [--pending|--delivered|--dead|--all] [--since TIME] [--until TIME]\n"
"           [--type NAME]... [--device-id ID] [--progress] [--json]\n");
}

int fj_cmd_export(fy_journal *j, int argc, char **argv)
{
    enum { O_FORMAT = 256, O_FORCE, O_PENDING, O_DELIVERED, O_DEAD, O_ALL, O_SINCE, O_UNTIL, O_TYPE, O_DEVICE,
           O_PROGRESS, O_JSON };
    static const struct option opts[] = {
        {"format", required_argument, NULL, O_FORMAT}, {"output", required_argument, NULL, 'o'},
        {"force", no_argument, NULL, O_FORCE},         {"pending", no_argument, NULL, O_PENDING},
        {"delivered", no_argument, NULL, O_DELIVERED}, {"dead", no_argument, NULL, O_DEAD},
        {"all", no_argument, NULL, O_ALL},             {"since", required_argument, NULL, O_SINCE},
        {"until", required_argument, NULL, O_UNTIL},   {"type", required_argument, NULL, O_TYPE},
        {"device-id", required_argument, NULL, O_DEVICE}, {"progress", no_argument, NULL, O_PROGRESS},
        {"json", no_argument, NULL, O_JSON},           {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    int format = -1, force = 0, progress = 0, json = 0, c;
    const char *output = NULL;
    fj_filter f;
    memset(&f, 0, sizeof f);
    f.types = calloc((size_t)argc + 1, sizeof *f.types);
    if (!f.types)
        return fj_fail(fy_fail(FERRY_ENOMEM, "out of memory"));
    int status = EX_OK;
    optind = 0;
    while (status == EX_OK && (c = getopt_long(argc, argv, "o:h", opts, NULL)) != -1) {
        switch (c) {
        case O_FORMAT:
            format = !strcmp(optarg, "jsonl") ? FMT_JSONL : !strcmp(optarg, "csv") ? FMT_CSV
                     : !strcmp(optarg, "capture") ? FMT_CAPTURE : -2;
            if (format == -2)
                status = fj_usage("export", "unknown format '%s' (jsonl, csv or capture)", optarg);
            break;
        case 'o': output = optarg; break;
        case O_FORCE: force = 1; break;
        case O_PENDING: f.states |= FJ_PENDING; break;
        case O_DELIVERED: f.states |= FJ_DELIVERED; break;
        case O_DEAD: f.states |= FJ_DEAD; break;
        case O_ALL: f.states = FJ_PENDING | FJ_DELIVERED | FJ_DEAD; break;
        case O_SINCE:
        case O_UNTIL:
            if (fy_cli_parse_time(optarg, fy_now_ms(), c == O_SINCE ? &f.since : &f.until))
                status = fj_usage("export", "'%s' is not a time (ms since the epoch or 2026-11-29T07:00:00Z)", optarg);
            *(c == O_SINCE ? &f.has_since : &f.has_until) = 1;
            break;
        case O_TYPE: f.types[f.n_types++] = optarg; break;
        case O_DEVICE: f.device_id = optarg; break;
        case O_PROGRESS: progress = 1; break;
        case O_JSON: json = 1; break;
        case 'h': export_help(stdout); free(f.types); return EX_OK;
        default: status = fj_usage("export", "bad option"); break;
        }
    }
    if (status == EX_OK && optind < argc)
        status = fj_usage("export", "unexpected argument '%s'", argv[optind]);
    if (status == EX_OK && format < 0)
        status = fj_usage("export", "--format jsonl|csv|capture is required");
    if (f.states == (FJ_PENDING | FJ_DELIVERED | FJ_DEAD))
        f.states = 0;
    int to_stdout = !output || !strcmp(output, "-");
    if (status == EX_OK && format == FMT_CAPTURE && to_stdout && isatty(STDOUT_FILENO))
        status = fj_usage("export", "a capture is binary: give --output FILE");
    if (status != EX_OK) {
        free(f.types);
        return status;
    }

    fj_catch_signals();
    exp x;
    memset(&x, 0, sizeof x);
    x.format = format;
    fy_buf_init(&x.line, 0);
    fj_snap s;
    memset(&s, 0, sizeof s);
    fj_out out;
    uint64_t bad = 0;
    int stop = 0;
    char hex[2 * FY_CAP_DIGEST + 1] = "";
    fy_gap *gap_rows = NULL;
    size_t n_gap_rows = 0;
    fy_cap_gap *gaps = NULL;
    size_t n_gaps = 0;
    fy_buf filter;
    fy_buf_init(&filter, 0);
    x.s = &s;
    x.out = &out;
    ferry_err e = fj_out_open(&out, output, force);
    if (!e) e = fj_snap_open(j, &s);
    if (!e) e = fj_filter_json(&f, &filter);
    if (!e && format == FMT_CAPTURE) {
        /* Pass 1 over the same snapshot: what the header announces. */
        e = fj_snap_each(&s, &f, scan_capture, &x, &bad, &stop);
        if (!e && stop)
            e = x.err;
        if (!e && x.n_devs > 1) {
            qsort(x.devs, x.n_devs, sizeof *x.devs, cmp_str);
            size_t k = 1;
            for (size_t i = 1; i < x.n_devs; i++)
                if (cmp_str(&x.devs[i], &x.devs[k - 1]))
                    x.devs[k++] = x.devs[i];
            x.n_devs = k;
        }
        if (!e && s.n_dests > FY_CAP_MAX_DESTS)
            e = fy_fail(FERRY_EINVAL, "journal %s has %zu destinations; a capture holds at most %u", j->path,
                        s.n_dests, FY_CAP_MAX_DESTS);
        fy_cap_str *names = e ? NULL : calloc(s.n_dests, sizeof *names);
        if (!e && !names)
            e = fy_fail(FERRY_ENOMEM, "out of memory");
        char producer[64];
        snprintf(producer, sizeof producer, FJ_PROG " %s", ferry_version());
        if (!e)
            e = capture_gaps(j, &s, &f, &gap_rows, &n_gap_rows, &gaps, &n_gaps);
        if (!e) {
            for (size_t i = 0; i < s.n_dests; i++)
                names[i].p = s.dests[i].name, names[i].n = strlen(s.dests[i].name);
            fy_cap_header h;
            memset(&h, 0, sizeof h);
            memcpy(h.journal_id, j->id, 16);
            h.journal_major = j->format_major;
            h.journal_minor = j->format_minor;
            h.created_ms = (int64_t)s.created_ms;
            h.export_ms = fy_now_ms();
            h.count = x.total;
            h.first_seq = x.first_seq;
            h.last_seq = x.last_seq;
            h.recorded = s.recorded;
            h.evicted = s.evicted;
            h.pruned = s.pruned;
            h.producer.p = producer;
            h.producer.n = strlen(producer);
            h.filter.p = filter.data;
            h.filter.n = filter.len;
            h.n_dests = s.n_dests;
            h.dests = names;
            h.n_devices = x.n_devs;
            h.devices = x.devs;
            h.n_gaps = n_gaps;
            h.gaps = gaps;
            e = fy_capw_begin(&x.w, &h, fj_out_write, &out);
        }
        free(names);
        bad = 0; /* reported again by the second pass */
    } else if (!e && format == FMT_CSV) {
        e = fj_out_write(&out, CSV_HEADER, sizeof CSV_HEADER - 1);
    }
    if (!e) {
        fj_progress_init(&x.prog, progress, "export", format == FMT_CAPTURE ? x.total : s.stored + s.n_dead);
        fj_item_fn fn = format == FMT_JSONL ? emit_jsonl : format == FMT_CSV ? emit_csv : emit_capture;
        e = fj_snap_each(&s, &f, fn, &x, &bad, &stop);
        if (!e && stop)
            e = x.err;
        fj_progress_end(&x.prog);
    }
    if (!e && fj_stop)
        e = fy_fail(FERRY_EIO, "interrupted: nothing written");
    if (!e && format == FMT_CAPTURE)
        e = fy_capw_end(&x.w); /* also proves that both passes saw the same events */
    fj_snap_close(&s); /* the snapshot ends before the file is flushed to disk */
    if (!e)
        e = fj_out_commit(&out, force, hex);
    if (e)
        status = fj_fail(e);
    fj_out_abort(&out); /* removes the temporary file if it is still there */
    if (!e) {
        const char *name = to_stdout ? "-" : output;
        const char *fmt_name = format == FMT_JSONL ? "jsonl" : format == FMT_CSV ? "csv" : "capture";
        FILE *msg = to_stdout ? stderr : stdout;
        if (json) {
            fy_buf b;
            fy_buf_init(&b, 0);
            char id[33];
            fy_hex(j->id, 16, id);
            fy_buf_printf(&b, "{\"format\":\"%s\",\"output\":", fmt_name);
            fy_json_emit_string(&b, name, strlen(name));
            fy_buf_printf(&b, ",\"journal\":");
            fy_json_emit_string(&b, j->path, strlen(j->path));
            fy_buf_printf(&b, ",\"journal_id\":\"%s\",\"records\":%" PRIu64 ",\"bytes\":%" PRIu64
                              ",\"sha256\":\"%s\",\"undecodable\":%" PRIu64 ",\"filter\":%.*s",
                          id, x.n, out.bytes, hex, bad, (int)filter.len, filter.data);
            if (format == FMT_CAPTURE) /* the unreported eviction gaps it carries */
                fy_buf_printf(&b, ",\"gaps\":%zu", n_gaps);
            fy_buf_puts(&b, "}\n");
            fwrite(b.data, 1, b.len, msg);
            fy_buf_free(&b);
        } else {
            fprintf(msg, "%s  %s\n", hex, name); /* sha256sum's format: `sha256sum -c` checks it */
            fprintf(stderr, FJ_PROG ": exported %" PRIu64 " record(s) as %s to %s (%" PRIu64 " bytes)\n", x.n,
                    fmt_name, to_stdout ? "standard output" : output, out.bytes);
            if (n_gaps)
                fprintf(stderr, FJ_PROG ": and %zu unreported eviction gap(s)\n", n_gaps);
        }
        if (bad) {
            fprintf(stderr, FJ_PROG ": %" PRIu64 " record(s) could not be decoded and were left out\n", bad);
            status = EX_DATAERR;
        }
    }
    fy_capw_free(&x.w);
    free(gaps);
    fy_gaps_free(gap_rows, n_gap_rows);
    free(x.devs);
    fy_buf_free(&x.line);
    fy_buf_free(&filter);
    free(f.types);
    return status;
}

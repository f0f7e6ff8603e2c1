/* ferry-sink: a local Amplitude-compatible receiver for tests, demos, dry
 * runs and benchmarks, with reproducible fault injection.
 *
 * libmicrohttpd runs one thread per connection, so a --slow answer holds up
 * only its own client. A request's body is buffered (capped), inflated
 * (capped), scanned once (sink_json.c) and validated without any lock; only
 * deduplication, the --eps-limit windows, the append to --out and the stats
 * take S.lock. Fault decisions are drawn when a request's headers arrive, a
 * fixed number of draws per request from one mutex-protected PRNG. */
#include "ferry.h"
#include "fy_buf.h"
#include "fy_cli.h"
#include "fy_fail.h"
#include "sink_json.h"
#include "sink_table.h"
#include "sink_tls.h"

#define ZLIB_CONST
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <math.h>
#include <microhttpd.h>
#include <netdb.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>

#define PROG "ferry-sink"

#define DEFAULT_MAX_EVENTS 2000
#define HTTPAPI_MAX_BYTES 1000000u  /* "1 MB": the stricter reading */
#define BATCH_MAX_BYTES 20000000u   /* "20 MB" */
#define HTTPAPI_EPS 30              /* Amplitude's per-device thresholds */
#define BATCH_EPS 1000
#define DEFAULT_MIN_ID_LENGTH 5
#define MAX_STATUSES 16
#define MAX_OUT_LINE (64u << 20)    /* longest --out line read back at startup */
#define CONN_TIMEOUT_S 120u         /* idle keep-alive connections are closed after this */
#define CONN_LIMIT 1000u
#define CONN_MEMORY (256u * 1024u)  /* MHD's per-connection buffer: bigger upload chunks */

enum { EP_HTTPAPI = 1, EP_BATCH = 2 };
enum { ENC_IDENTITY, ENC_GZIP, ENC_OTHER };

/* ---- configuration ------------------------------------------------------- */

typedef struct rate_statuses {
    double rate;
    int st[MAX_STATUSES];
    size_t n;
} rate_statuses;

typedef struct config {
    const char *listen, *out, *port_file;
    char *api_key; /* NULL: any non-empty key */
    uint64_t seed;
    int seed_given, verbose, gzip_unsupported;
    rate_statuses fail, fail_after;
    double drop_before, drop_after, throttle, slow_rate;
    unsigned slow_ms;
    const char *hold_file; /* answers of accepted requests wait while it exists */
    long retry_after; /* -1: no header */
    unsigned eps_limit; /* 0: off */
    size_t max_events, max_body; /* max_body 0: per endpoint */
    const char *tls_cert, *tls_key; /* HTTPS (sink_tls.c) when both are given */
} config;

static config cfg;

/* ---- shared state -------------------------------------------------------- */

typedef struct window { /* events a device sent in the last second */
    int64_t *ms;
    uint32_t *count;
    size_t n, cap;
} window;

#define N_STATUS 600

typedef struct stats {
    uint64_t requests, events_received, events_accepted, duplicates, events_rejected;
    uint64_t status[N_STATUS];
    uint64_t faults_injected, faults[7];
    uint64_t eps_limited, connections_dropped, bytes_received;
} stats;

static struct {
    pthread_mutex_t lock; /* everything below */
    sink_set seen;        /* (device, insert_id) accepted */
    sink_map windows;     /* device -> window, with --eps-limit */
    int out_fd;
    off_t out_size;
    stats st;
} S = {PTHREAD_MUTEX_INITIALIZER, {0}, {0}, -1, 0, {0}};

/* Faults are drawn in request-arrival order from one PRNG. */
static struct {
    pthread_mutex_t lock;
    uint64_t s[4];
} R = {PTHREAD_MUTEX_INITIALIZER, {0}};

static struct {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    int stopping;
} STOP = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0};

/* ---- helpers ------------------------------------------------------------- */

#define usage_error(...) fy_cli_usage_error(PROG, __VA_ARGS__)

static void logmsg(const char *fmt, ...) FY_PRINTF(1, 2);
static void logmsg(const char *fmt, ...)
{
    char line[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    fprintf(stderr, PROG ": %s\n", line); /* one write: lines from threads do not mix */
}

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static uint64_t splitmix64(uint64_t *x)
{
    uint64_t z = (*x += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static inline uint64_t rotl(uint64_t x, unsigned k) { return (x << k) | (x >> (64u - k)); }

static uint64_t xoshiro_next(uint64_t s[4]) /* xoshiro256** */
{
    uint64_t result = rotl(s[1] * 5, 7) * 9, t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return result;
}

static double unit(uint64_t x) { return (double)(x >> 11) * 0x1.0p-53; }

/* One request's fault draws: always the same number, whatever is enabled,
 * so request k sees the same draws for a given seed. */
typedef struct draws {
    double drop_before, fail, throttle, fail_after, drop_after, slow;
    uint64_t pick, sub;
} draws;

static void draw(draws *d)
{
    uint64_t v[8];
    pthread_mutex_lock(&R.lock);
    for (int i = 0; i < 8; i++)
        v[i] = xoshiro_next(R.s);
    pthread_mutex_unlock(&R.lock);
    d->drop_before = unit(v[0]);
    d->fail = unit(v[1]);
    d->throttle = unit(v[2]);
    d->fail_after = unit(v[3]);
    d->drop_after = unit(v[4]);
    d->slow = unit(v[5]);
    d->pick = v[6];
    d->sub = v[7];
}

static const char *reason(int status)
{
    switch (status) {
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 408: return "Request Timeout";
    case 409: return "Conflict";
    case 413: return "Payload too large";
    case 415: return "Unsupported Media Type";
    case 429: return "Too many requests for some devices and users";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    case 504: return "Gateway Timeout";
    default: return "Error";
    }
}

/* ---- the --out file ------------------------------------------------------- */

/* The dedup and device keys of an event: device_id when it has one (a
 * non-empty string), else user_id; insert_id when it has one. */
typedef struct evkey {
    sink_key dedup, dev;
    uint8_t has_iid, dev_is_user;
    const char *dev_raw; /* raw JSON string content of the device's id */
    size_t dev_raw_n;
} evkey;

static void hash_str(sink_hasher *h, const sj_val *v)
{
    if (!v->esc) {
        sink_hash_add(h, v->p, v->n);
        return;
    }
    char small[256];
    char *buf = v->n <= sizeof small ? small : malloc(v->n);
    if (!buf) { /* cannot decode: hash the raw text (only dedup precision suffers) */
        sink_hash_add(h, v->p, v->n);
        return;
    }
    sink_hash_add(h, buf, sj_unescape(v->p, v->n, buf));
    if (buf != small)
        free(buf);
}

static void event_key(const sj_event *ev, evkey *k)
{
    const sj_val *id = ev->device_id.kind == SJ_STRING && ev->device_id.n ? &ev->device_id : &ev->user_id;
    k->dev_is_user = id == &ev->user_id;
    k->dev_raw = id->kind == SJ_STRING ? id->p : "";
    k->dev_raw_n = id->kind == SJ_STRING ? id->n : 0;
    sink_hasher h;
    sink_hash_init(&h);
    unsigned char tag = k->dev_is_user ? 'u' : 'd';
    sink_hash_add(&h, &tag, 1);
    if (id->kind == SJ_STRING)
        hash_str(&h, id);
    sink_hasher hd = h;
    k->dev = sink_hash_end(&hd);
    k->has_iid = ev->insert_id.kind == SJ_STRING && ev->insert_id.n;
    if (k->has_iid) {
        unsigned char sep = 0;
        sink_hash_add(&h, &sep, 1);
        hash_str(&h, &ev->insert_id);
        k->dedup = sink_hash_end(&h);
    }
}

/* Cuts a torn last line (the process died in the middle of a write, before
 * answering), then loads the (device, insert_id) keys of every event. */
static int load_out(const char *path)
{
    int fd = open(path, O_RDWR | O_CLOEXEC);
    if (fd < 0)
        return errno == ENOENT ? 0 : -1;
    struct stat st;
    if (fstat(fd, &st) != 0) {
        close(fd);
        return -1;
    }
    off_t size = st.st_size, keep = size;
    while (keep > 0) {
        char c;
        if (pread(fd, &c, 1, keep - 1) != 1) {
            close(fd);
            return -1;
        }
        if (c == '\n')
            break;
        keep--;
    }
    if (keep != size) {
        logmsg("%s: cutting off a torn last line (%lld bytes)", path, (long long)(size - keep));
        if (ftruncate(fd, keep) != 0) {
            close(fd);
            return -1;
        }
    }
    FILE *f = fdopen(fd, "r");
    if (!f) {
        close(fd);
        return -1;
    }
    fy_line_reader r;
    fy_lines_init(&r, f, MAX_OUT_LINE);
    uint64_t loaded = 0, bad = 0;
    int too_long, rc;
    while ((rc = fy_lines_next(&r, &too_long)) == 1) {
        sj_event ev;
        if (too_long || sj_parse_event(r.line.data ? r.line.data : "", r.line.len, &ev)) {
            if (bad++ < 5)
                logmsg("%s:%lu: not a JSON object, skipped", path, r.lineno);
            continue;
        }
        evkey k;
        event_key(&ev, &k);
        if (k.has_iid) {
            if (sink_set_insert(&S.seen, k.dedup) < 0) {
                rc = -1;
                errno = ENOMEM;
                break;
            }
            loaded++;
        }
    }
    int saved = errno;
    fy_lines_free(&r);
    fclose(f);
    if (rc < 0) {
        errno = saved;
        return -1;
    }
    if (cfg.verbose || bad)
        logmsg("%s: loaded %" PRIu64 " insert_ids for deduplication%s", path, (uint64_t)S.seen.n,
               bad ? " (some lines were skipped)" : "");
    (void)loaded;
    return 0;
}

static int write_all(int fd, const char *p, size_t n)
{
    while (n) {
        ssize_t w = write(fd, p, n);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

/* ---- responses ----------------------------------------------------------- */

typedef struct answer {
    int status;     /* 0: close the connection without answering */
    fy_buf body;
    int retry_after; /* add Retry-After */
} answer;

static void set_error(answer *a, int status, const char *error)
{
    a->status = status;
    fy_buf_reset(&a->body);
    fy_buf_printf(&a->body, "{\"code\":%d,\"error\":\"%s\"}", status, error);
    a->retry_after = status == 429 || status == 503;
}

static void set_missing(answer *a, const char *field)
{
    a->status = 400;
    fy_buf_reset(&a->body);
    fy_buf_printf(&a->body, "{\"code\":400,\"error\":\"Request missing required field\",\"missing_field\":\"%s\"}",
                  field);
}

static enum MHD_Result send_answer(struct MHD_Connection *c, answer *a)
{
    if (!a->body.data && fy_buf_reserve(&a->body, 1))
        return MHD_NO;
    struct MHD_Response *resp = MHD_create_response_from_buffer(a->body.len, a->body.data, MHD_RESPMEM_MUST_FREE);
    if (!resp)
        return MHD_NO;
    a->body.data = NULL; /* MHD frees it */
    a->body.len = a->body.cap = 0;
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json");
    if (a->retry_after && cfg.retry_after >= 0) {
        char v[32];
        snprintf(v, sizeof v, "%ld", cfg.retry_after);
        MHD_add_response_header(resp, MHD_HTTP_HEADER_RETRY_AFTER, v);
    }
    enum MHD_Result rc = MHD_queue_response(c, (unsigned)a->status, resp);
    MHD_destroy_response(resp);
    return rc;
}

static enum MHD_Result send_simple(struct MHD_Connection *c, int status, const char *error)
{
    answer a = {0, {0}, 0};
    fy_buf_init(&a.body, 0);
    set_error(&a, status, error);
    enum MHD_Result rc = send_answer(c, &a);
    fy_buf_free(&a.body);
    return rc;
}

/* ---- validation ---------------------------------------------------------- */

static const char *const invalid_ids[] = {
    "anonymous", "nil", "none", "null", "n/a", "na", "undefined", "unknown", "",
    "00000000-0000-0000-0000-000000000000", "{}", "lmy47d", "0", "-1",
};

static int id_is_invalid(const sj_val *v)
{
    char buf[40];
    if (v->n >= sizeof buf)
        return 0;
    size_t n = v->esc ? sj_unescape(v->p, v->n, buf) : v->n;
    if (!v->esc)
        memcpy(buf, v->p, n);
    buf[n] = 0;
    for (size_t i = 0; i < sizeof invalid_ids / sizeof invalid_ids[0]; i++)
        if (strcasecmp(buf, invalid_ids[i]) == 0)
            return 1;
    return 0;
}

static size_t id_length(const sj_val *v)
{
    if (!v->esc)
        return sj_utf8_len(v->p, v->n);
    char *buf = malloc(v->n ? v->n : 1);
    if (!buf)
        return v->n;
    size_t n = sj_utf8_len(buf, sj_unescape(v->p, v->n, buf));
    free(buf);
    return n;
}

enum { F_EVENT_TYPE, F_USER_ID, F_DEVICE_ID, F_TIME, F_EVENT_PROPERTIES, F_USER_PROPERTIES, F_INSERT_ID, N_FIELDS };
static const char *const field_names[N_FIELDS] = {"event_type", "user_id", "device_id", "time",
                                                  "event_properties", "user_properties", "insert_id"};
enum { L_INVALID, L_MISSING, L_ID_LENGTH, N_LISTS };

typedef struct problems {
    fy_buf idx[N_LISTS][N_FIELDS]; /* "3,4,7" */
    size_t count[N_LISTS];
    size_t events;
} problems;

static void note(problems *p, int list, int field, size_t i)
{
    fy_buf *b = &p->idx[list][field];
    fy_buf_printf(b, b->len ? ",%zu" : "%zu", i);
    p->count[list]++;
}

static void check_id(problems *p, const sj_val *v, int field, size_t i, size_t min_len, int *valid, int *bad,
                     int *short_id)
{
    if (v->kind == SJ_ABSENT || v->kind == SJ_NULL)
        return;
    if (v->kind != SJ_STRING || id_is_invalid(v)) {
        note(p, L_INVALID, field, i);
        *bad = 1;
    } else if (id_length(v) < min_len) {
        *short_id |= field == F_USER_ID ? 1 : 2; /* stripped, as Amplitude does */
    } else {
        *valid = 1;
    }
}

/* Checks every event like Amplitude; 0 when all are valid. */
static int validate(const sj_request *r, size_t min_len, problems *p)
{
    for (size_t i = 0; i < r->n_kept; i++) {
        const sj_event *ev = &r->ev[i];
        size_t before = p->count[L_INVALID] + p->count[L_MISSING] + p->count[L_ID_LENGTH];
        if (ev->event_type.kind == SJ_ABSENT || ev->event_type.kind == SJ_NULL)
            note(p, L_MISSING, F_EVENT_TYPE, i);
        else if (ev->event_type.kind != SJ_STRING || ev->event_type.n == 0)
            note(p, L_INVALID, F_EVENT_TYPE, i);
        int valid = 0, bad = 0, short_id = 0;
        check_id(p, &ev->user_id, F_USER_ID, i, min_len, &valid, &bad, &short_id);
        check_id(p, &ev->device_id, F_DEVICE_ID, i, min_len, &valid, &bad, &short_id);
        if (!valid && !bad) {
            if (short_id & 1)
                note(p, L_ID_LENGTH, F_USER_ID, i);
            if (short_id & 2)
                note(p, L_ID_LENGTH, F_DEVICE_ID, i);
            if (!short_id) {
                note(p, L_MISSING, F_DEVICE_ID, i);
                note(p, L_MISSING, F_USER_ID, i);
            }
        }
        if (ev->time.kind != SJ_ABSENT && ev->time.kind != SJ_NULL && ev->time.kind != SJ_INT)
            note(p, L_INVALID, F_TIME, i);
        if (ev->insert_id.kind != SJ_ABSENT && ev->insert_id.kind != SJ_NULL && ev->insert_id.kind != SJ_STRING)
            note(p, L_INVALID, F_INSERT_ID, i);
        if (ev->event_properties.kind != SJ_ABSENT && ev->event_properties.kind != SJ_NULL &&
            ev->event_properties.kind != SJ_OBJECT)
            note(p, L_INVALID, F_EVENT_PROPERTIES, i);
        if (ev->user_properties.kind != SJ_ABSENT && ev->user_properties.kind != SJ_NULL &&
            ev->user_properties.kind != SJ_OBJECT)
            note(p, L_INVALID, F_USER_PROPERTIES, i);
        if (p->count[L_INVALID] + p->count[L_MISSING] + p->count[L_ID_LENGTH] != before)
            p->events++;
    }
    return p->events != 0;
}

static void emit_map(fy_buf *b, const char *name, fy_buf idx[N_FIELDS])
{
    fy_buf_printf(b, ",\"%s\":{", name);
    int first = 1;
    for (int f = 0; f < N_FIELDS; f++) {
        if (!idx[f].len)
            continue;
        fy_buf_printf(b, "%s\"%s\":[", first ? "" : ",", field_names[f]);
        fy_buf_append(b, idx[f].data, idx[f].len);
        fy_buf_putc(b, ']');
        first = 0;
    }
    fy_buf_putc(b, '}');
}

static void set_invalid_events(answer *a, problems *p)
{
    a->status = 400;
    fy_buf *b = &a->body;
    fy_buf_reset(b);
    /* Amplitude names ids that are only too short with its own error. */
    int only_len = !p->count[L_INVALID] && !p->count[L_MISSING];
    fy_buf_printf(b, "{\"code\":400,\"error\":\"%s\"",
                  only_len ? "Invalid id length for user_id or device_id" : "Invalid field values on some events");
    emit_map(b, "events_with_invalid_fields", p->idx[L_INVALID]);
    emit_map(b, "events_with_missing_fields", p->idx[L_MISSING]);
    if (p->count[L_ID_LENGTH])
        emit_map(b, "events_with_invalid_id_lengths", p->idx[L_ID_LENGTH]);
    fy_buf_putc(b, '}');
}

/* ---- throttling (429) ---------------------------------------------------- */

typedef struct group { /* the events of one device in a request */
    sink_key dev;
    size_t first, n; /* into the sorted order */
    int64_t eps;
    int hit;
} group;

typedef struct order {
    sink_key dev;
    size_t i;
} order;

static int cmp_order(const void *x, const void *y)
{
    const order *a = x, *b = y;
    if (a->dev.a != b->dev.a)
        return a->dev.a < b->dev.a ? -1 : 1;
    if (a->dev.b != b->dev.b)
        return a->dev.b < b->dev.b ? -1 : 1;
    return a->i < b->i ? -1 : a->i > b->i;
}

static int cmp_size(const void *x, const void *y)
{
    size_t a = *(const size_t *)x, b = *(const size_t *)y;
    return a < b ? -1 : a > b;
}

/* Groups the events by device. */
static int group_devices(const evkey *k, size_t n, order **ord, group **groups, size_t *ng)
{
    *ord = malloc((n ? n : 1) * sizeof **ord);
    *groups = malloc((n ? n : 1) * sizeof **groups);
    if (!*ord || !*groups)
        return -1;
    for (size_t i = 0; i < n; i++)
        (*ord)[i] = (order){k[i].dev, i};
    qsort(*ord, n, sizeof **ord, cmp_order);
    *ng = 0;
    for (size_t i = 0; i < n; i++) {
        if (i == 0 || (*ord)[i - 1].dev.a != (*ord)[i].dev.a || (*ord)[i - 1].dev.b != (*ord)[i].dev.b)
            (*groups)[(*ng)++] = (group){(*ord)[i].dev, i, 0, 0, 0};
        (*groups)[*ng - 1].n++;
    }
    return 0;
}

static void set_throttled(answer *a, const evkey *k, const order *ord, const group *g, size_t ng, int64_t threshold)
{
    a->status = 429;
    a->retry_after = 1;
    fy_buf *b = &a->body;
    fy_buf_reset(b);
    fy_buf_printf(b, "{\"code\":429,\"error\":\"Too many requests for some devices and users\",\"eps_threshold\":%" PRId64,
                  threshold);
    for (int users = 0; users < 2; users++) {
        fy_buf_puts(b, users ? ",\"throttled_users\":{" : ",\"throttled_devices\":{");
        int first = 1;
        for (size_t i = 0; i < ng; i++) {
            const evkey *e = &k[ord[g[i].first].i];
            if (!g[i].hit || e->dev_is_user != users)
                continue;
            fy_buf_puts(b, first ? "\"" : ",\"");
            fy_buf_append(b, e->dev_raw, e->dev_raw_n);
            fy_buf_printf(b, "\":%" PRId64, g[i].eps);
            first = 0;
        }
        fy_buf_putc(b, '}');
    }
    size_t n = 0;
    for (size_t i = 0; i < ng; i++)
        if (g[i].hit)
            n += g[i].n;
    size_t *idx = malloc((n ? n : 1) * sizeof *idx);
    n = 0;
    for (size_t i = 0; idx && i < ng; i++)
        for (size_t j = 0; g[i].hit && j < g[i].n; j++)
            idx[n++] = ord[g[i].first + j].i;
    if (idx)
        qsort(idx, n, sizeof *idx, cmp_size);
    fy_buf_puts(b, ",\"throttled_events\":[");
    for (size_t i = 0; idx && i < n; i++)
        fy_buf_printf(b, i ? ",%zu" : "%zu", idx[i]);
    fy_buf_puts(b, "]}");
    free(idx);
}

static void free_window(void *p)
{
    window *w = p;
    free(w->ms);
    free(w->count);
    free(w);
}

static int64_t window_sum(window *w, int64_t now)
{
    size_t drop = 0;
    while (drop < w->n && w->ms[drop] <= now - 1000)
        drop++;
    if (drop) {
        memmove(w->ms, w->ms + drop, (w->n - drop) * sizeof *w->ms);
        memmove(w->count, w->count + drop, (w->n - drop) * sizeof *w->count);
        w->n -= drop;
    }
    int64_t sum = 0;
    for (size_t i = 0; i < w->n; i++)
        sum += w->count[i];
    return sum;
}

static int window_add(sink_key dev, int64_t now, size_t count)
{
    window *w = sink_map_get(&S.windows, dev);
    if (!w) {
        if (!(w = calloc(1, sizeof *w)))
            return -1;
        if (sink_map_put(&S.windows, dev, w)) {
            free(w);
            return -1;
        }
    }
    if (w->n && w->ms[w->n - 1] == now) {
        w->count[w->n - 1] += (uint32_t)count;
        return 0;
    }
    if (w->n == w->cap) {
        size_t cap = w->cap ? w->cap * 2 : 8;
        int64_t *ms = realloc(w->ms, cap * sizeof *ms);
        if (!ms)
            return -1;
        w->ms = ms;
        uint32_t *c = realloc(w->count, cap * sizeof *c);
        if (!c)
            return -1;
        w->count = c;
        w->cap = cap;
    }
    w->ms[w->n] = now;
    w->count[w->n++] = (uint32_t)count;
    return 0;
}

/* ---- one ingestion request ----------------------------------------------- */

typedef struct req {
    int endpoint, enc;
    size_t limit; /* decompressed bytes */
    size_t cap;   /* bytes buffered as received */
    int too_big;
    size_t received;
    fy_buf body;
    draws d;
} req;

/* Inflates gzip member(s): 0, 1 over limit, -1 corrupt, -2 out of memory. */
static int gunzip(const char *in, size_t n, size_t limit, fy_buf *out)
{
    z_stream z;
    memset(&z, 0, sizeof z);
    if (inflateInit2(&z, 15 + 16) != Z_OK)
        return -2;
    z.next_in = (const Bytef *)in;
    z.avail_in = (uInt)n;
    fy_buf_init(out, limit + 1);
    int rc = 0;
    for (;;) {
        if (out->len == out->cap) {
            size_t room = out->limit - out->len;
            if (!room) {
                rc = 1;
                break;
            }
            size_t want = out->len ? out->len : 65536;
            if (fy_buf_reserve(out, want < room ? want : room)) {
                rc = -2;
                break;
            }
        }
        z.next_out = (Bytef *)out->data + out->len;
        z.avail_out = (uInt)(out->cap - out->len);
        int zr = inflate(&z, Z_NO_FLUSH);
        out->len = (size_t)((char *)z.next_out - out->data);
        if (zr == Z_STREAM_END) {
            if (z.avail_in == 0)
                break;
            if (inflateReset(&z) != Z_OK) { /* another member follows */
                rc = -1;
                break;
            }
        } else if (zr == Z_MEM_ERROR) {
            rc = -2;
            break;
        } else if (zr != Z_OK && !(zr == Z_BUF_ERROR && z.avail_out == 0)) {
            rc = -1;
            break;
        }
    }
    inflateEnd(&z);
    if (rc == 0 && out->len > limit)
        rc = 1;
    return rc;
}

static void count_status(int status)
{
    if (status > 0 && status < N_STATUS)
        S.st.status[status]++;
}

enum { FT_FAIL, FT_FAIL_AFTER, FT_DROP_BEFORE, FT_DROP_AFTER, FT_SLOW, FT_THROTTLE, FT_GZIP, N_FAULTS };
static const char *const fault_names[N_FAULTS] = {"fail", "fail_after", "drop_before", "drop_after",
                                                  "slow", "throttle", "gzip_unsupported"};

/* Where the events of a request went, for the stats and -v. */
typedef struct tally {
    size_t received, accepted, dups, rejected;
    unsigned faults; /* 1 << FT_... */
} tally;

static int hold_stopping(void)
{
    pthread_mutex_lock(&STOP.lock);
    int s = STOP.stopping;
    pthread_mutex_unlock(&STOP.lock);
    return s;
}

static void slow_wait(unsigned ms)
{
    struct timespec until;
    clock_gettime(CLOCK_MONOTONIC, &until);
    until.tv_sec += (time_t)(ms / 1000);
    until.tv_nsec += (long)(ms % 1000) * 1000000L;
    if (until.tv_nsec >= 1000000000L)
        until.tv_sec++, until.tv_nsec -= 1000000000L;
    pthread_mutex_lock(&STOP.lock);
    while (!STOP.stopping && pthread_cond_timedwait(&STOP.cond, &STOP.lock, &until) != ETIMEDOUT) {
    }
    pthread_mutex_unlock(&STOP.lock);
}

/* Accepts the events of a valid request: dedup, --out. Under S.lock.
 * Returns 0 or an HTTP status for a failure of the sink itself. */
static int accept_events(const sj_request *r, const evkey *k, fy_buf *lines, size_t *line_end,
                         tally *t)
{
    uint8_t *fresh = calloc(r->n_kept ? r->n_kept : 1, 1);
    if (!fresh)
        return 503;
    size_t dups = 0;
    for (size_t i = 0; i < r->n_kept; i++) {
        if (!k[i].has_iid) {
            fresh[i] = 1;
            continue;
        }
        int rc = sink_set_insert(&S.seen, k[i].dedup);
        if (rc < 0) {
            for (size_t j = 0; j < i; j++)
                if (fresh[j] && k[j].has_iid)
                    sink_set_remove(&S.seen, k[j].dedup);
            free(fresh);
            return 503;
        }
        fresh[i] = (uint8_t)rc;
        dups += !rc;
    }
    int status = 0;
    if (S.out_fd >= 0) {
        if (dups) { /* keep the lines of the fresh events only */
            size_t w = 0, start = 0;
            for (size_t i = 0; i < r->n_kept; i++) {
                size_t end = line_end[i];
                if (fresh[i]) {
                    memmove(lines->data + w, lines->data + start, end - start);
                    w += end - start;
                }
                start = end;
            }
            lines->len = w;
        }
        if (lines->len && write_all(S.out_fd, lines->data, lines->len) != 0) {
            logmsg("%s: %s", cfg.out, strerror(errno));
            if (ftruncate(S.out_fd, S.out_size) != 0) { /* best effort: no torn line */
            }
            for (size_t i = 0; i < r->n_kept; i++)
                if (fresh[i] && k[i].has_iid)
                    sink_set_remove(&S.seen, k[i].dedup);
            status = 500;
        } else {
            S.out_size += (off_t)lines->len;
        }
    }
    free(fresh);
    if (!status) { /* counted now: a --slow answer may take long */
        t->accepted = r->n_kept - dups;
        t->dups = dups;
        S.st.events_accepted += t->accepted;
        S.st.duplicates += t->dups;
    }
    return status;
}

static int key_matches(const sj_val *v)
{
    size_t want = strlen(cfg.api_key);
    if (!v->esc)
        return v->n == want && memcmp(v->p, cfg.api_key, want) == 0;
    char *buf = malloc(v->n);
    if (!buf)
        return 0;
    size_t n = sj_unescape(v->p, v->n, buf);
    int ok = n == want && memcmp(buf, cfg.api_key, want) == 0;
    free(buf);
    return ok;
}

static void handle_ingest(req *q, answer *a, tally *t)
{
    const draws *d = &q->d;
    fy_buf plain;
    fy_buf_init(&plain, 0);
    const char *json = q->body.data ? q->body.data : "";
    size_t json_len = q->body.len;
    sj_request r;
    memset(&r, 0, sizeof r);
    evkey *keys = NULL;
    order *ord = NULL;
    group *groups = NULL;
    size_t ng = 0;
    fy_buf lines;
    fy_buf_init(&lines, 0);
    size_t *line_end = NULL;
    int parsed = 0;

    /* What the request deserves on its own (413, 415, 400), before faults. */
    a->status = 0;
    if (q->too_big) {
        set_error(a, 413, "Payload too large");
    } else if (q->enc == ENC_OTHER) {
        set_error(a, 415, "Unsupported Content-Encoding");
    } else if (q->enc == ENC_GZIP && cfg.gzip_unsupported) {
        set_error(a, 415, "Unsupported Content-Encoding");
        t->faults |= 1u << FT_GZIP;
    } else if (q->enc == ENC_GZIP && q->body.len) {
        int rc = gunzip(q->body.data, q->body.len, q->limit, &plain);
        if (rc == 1)
            set_error(a, 413, "Payload too large");
        else if (rc == -2)
            set_error(a, 503, "Service Unavailable");
        else if (rc < 0)
            set_error(a, 400, "Invalid JSON request body");
        json = plain.data ? plain.data : "";
        json_len = plain.len;
    }
    if (!a->status && json_len > q->limit)
        set_error(a, 413, "Payload too large");
    if (!a->status && json_len == 0)
        set_error(a, 400, "Missing request body");
    if (!a->status) {
        const char *err;
        size_t at;
        int rc = sj_parse_request(json, json_len, cfg.max_events, &r, &err, &at);
        if (rc == -2) {
            set_error(a, 503, "Service Unavailable");
        } else if (rc) {
            set_error(a, 400, "Invalid JSON request body");
            if (cfg.verbose)
                logmsg("invalid JSON at byte %zu: %s", at, err);
        } else {
            parsed = 1;
            t->received = r.n_events;
        }
    }
    if (parsed) {
        size_t min_len = DEFAULT_MIN_ID_LENGTH;
        if (r.min_id_length.kind == SJ_INT && r.min_id_length.i >= 0)
            min_len = (size_t)r.min_id_length.i;
        problems p;
        memset(&p, 0, sizeof p);
        for (int l = 0; l < N_LISTS; l++)
            for (int f = 0; f < N_FIELDS; f++)
                fy_buf_init(&p.idx[l][f], 0);
        if (r.api_key.kind != SJ_STRING || r.api_key.n == 0) {
            set_missing(a, "api_key");
        } else if (cfg.api_key && !key_matches(&r.api_key)) {
            set_error(a, 400, "Invalid API key");
        } else if (r.events.kind == SJ_ABSENT || r.events.kind == SJ_NULL ||
                   (r.events.kind == SJ_ARRAY && r.n_events == 0)) {
            set_missing(a, "events");
        } else if (r.events.kind != SJ_ARRAY) {
            set_error(a, 400, "Invalid event JSON");
        } else if (r.n_events > cfg.max_events) {
            set_error(a, 413, "Payload too large");
        } else {
            for (size_t i = 0; i < r.n_kept && !a->status; i++)
                if (!r.ev[i].is_object)
                    set_error(a, 400, "Invalid event JSON");
            if (!a->status && validate(&r, min_len, &p))
                set_invalid_events(a, &p);
        }
        for (int l = 0; l < N_LISTS; l++)
            for (int f = 0; f < N_FIELDS; f++)
                fy_buf_free(&p.idx[l][f]);
    }

    /* Faults that strike before anything is accepted. */
    if (cfg.drop_before > 0 && d->drop_before < cfg.drop_before) {
        a->status = 0;
        t->faults |= 1u << FT_DROP_BEFORE;
        goto reject;
    }
    if (cfg.fail.n && d->fail < cfg.fail.rate) {
        set_error(a, cfg.fail.st[d->pick % cfg.fail.n], reason(cfg.fail.st[d->pick % cfg.fail.n]));
        t->faults |= 1u << FT_FAIL;
        goto reject;
    }
    if (a->status)
        goto reject;

    /* A valid request. Keys and output lines are prepared outside the lock. */
    size_t n = r.n_kept;
    keys = malloc((n ? n : 1) * sizeof *keys);
    line_end = malloc((n ? n : 1) * sizeof *line_end);
    if (!keys || !line_end || fy_buf_reserve(&lines, json_len + n)) {
        set_error(a, 503, "Service Unavailable");
        goto reject;
    }
    for (size_t i = 0; i < n; i++) {
        event_key(&r.ev[i], &keys[i]);
        if (S.out_fd >= 0) {
            const sj_event *ev = &r.ev[i];
            if (ev->ws)
                sj_minify(json + ev->off, ev->len, &lines);
            else
                fy_buf_append(&lines, json + ev->off, ev->len);
            fy_buf_putc(&lines, '\n');
            line_end[i] = lines.len;
        }
    }
    if ((cfg.throttle > 0 || cfg.eps_limit) && group_devices(keys, n, &ord, &groups, &ng)) {
        set_error(a, 503, "Service Unavailable");
        goto reject;
    }
    int64_t threshold = cfg.eps_limit ? (int64_t)cfg.eps_limit : q->endpoint == EP_BATCH ? BATCH_EPS : HTTPAPI_EPS;
    if (cfg.throttle > 0 && d->throttle < cfg.throttle) {
        uint64_t sub = d->sub;
        size_t hits = 0;
        for (size_t i = 0; i < ng; i++) {
            groups[i].hit = (int)(splitmix64(&sub) & 1);
            hits += (size_t)groups[i].hit;
        }
        if (!hits)
            groups[splitmix64(&sub) % ng].hit = 1;
        for (size_t i = 0; i < ng; i++)
            groups[i].eps = (int64_t)groups[i].n > threshold ? (int64_t)groups[i].n : threshold + 1;
        set_throttled(a, keys, ord, groups, ng, threshold);
        t->faults |= 1u << FT_THROTTLE;
        goto reject;
    }

    pthread_mutex_lock(&S.lock);
    if (cfg.eps_limit) {
        int64_t now = mono_ms();
        size_t hits = 0;
        for (size_t i = 0; i < ng; i++) {
            window *w = sink_map_get(&S.windows, groups[i].dev);
            int64_t sum = (w ? window_sum(w, now) : 0) + (int64_t)groups[i].n;
            groups[i].eps = sum;
            groups[i].hit = sum > (int64_t)cfg.eps_limit;
            hits += (size_t)groups[i].hit;
        }
        if (hits) {
            set_throttled(a, keys, ord, groups, ng, threshold);
            S.st.eps_limited++;
            pthread_mutex_unlock(&S.lock);
            goto reject;
        }
        for (size_t i = 0; i < ng; i++)
            if (window_add(groups[i].dev, now, groups[i].n)) {
                set_error(a, 503, "Service Unavailable");
                pthread_mutex_unlock(&S.lock);
                goto reject;
            }
    }
    int st = accept_events(&r, keys, &lines, line_end, t);
    pthread_mutex_unlock(&S.lock);
    if (st) {
        set_error(a, st, reason(st));
        goto reject;
    }

    /* Accepted. Faults after the fact. */
    if (cfg.hold_file) /* a test decides when the answer leaves: no timing involved */
        while (access(cfg.hold_file, F_OK) == 0 && !hold_stopping())
            slow_wait(10);
    if (cfg.slow_rate > 0 && d->slow < cfg.slow_rate) {
        slow_wait(cfg.slow_ms);
        t->faults |= 1u << FT_SLOW;
    }
    if (cfg.drop_after > 0 && d->drop_after < cfg.drop_after) {
        a->status = 0;
        t->faults |= 1u << FT_DROP_AFTER;
    } else if (cfg.fail_after.n && d->fail_after < cfg.fail_after.rate) {
        int s = cfg.fail_after.st[(d->pick >> 32) % cfg.fail_after.n];
        set_error(a, s, reason(s));
        t->faults |= 1u << FT_FAIL_AFTER;
    } else {
        a->status = 200;
        fy_buf_reset(&a->body);
        struct timespec now;
        clock_gettime(CLOCK_REALTIME, &now);
        fy_buf_printf(&a->body,
                      "{\"code\":200,\"events_ingested\":%zu,\"payload_size_bytes\":%zu,\"server_upload_time\":%lld}",
                      r.n_events, json_len, (long long)now.tv_sec * 1000 + now.tv_nsec / 1000000);
    }
    goto done;
reject:
    t->rejected = t->received;
done:
    sj_request_free(&r);
    fy_buf_free(&plain);
    fy_buf_free(&lines);
    free(keys);
    free(line_end);
    free(ord);
    free(groups);
}

static void record(const req *q, const answer *a, const tally *t)
{
    pthread_mutex_lock(&S.lock);
    stats *s = &S.st;
    s->requests++;
    s->bytes_received += q->received;
    s->events_received += t->received;
    s->events_rejected += t->rejected;
    if (a->status)
        count_status(a->status);
    else
        s->connections_dropped++;
    if (t->faults)
        s->faults_injected++;
    for (int f = 0; f < N_FAULTS; f++)
        if (t->faults & (1u << f))
            s->faults[f]++;
    pthread_mutex_unlock(&S.lock);
    if (cfg.verbose) {
        char st[16], fl[128] = "";
        snprintf(st, sizeof st, "%d", a->status);
        for (int f = 0; f < N_FAULTS; f++)
            if (t->faults & (1u << f))
                snprintf(fl + strlen(fl), sizeof fl - strlen(fl), " fault:%s", fault_names[f]);
        logmsg("POST %s%s: %zu events -> %s (%zu new, %zu duplicates, %zu rejected)%s",
               q->endpoint == EP_BATCH ? "/batch" : "/2/httpapi", q->enc == ENC_GZIP ? " gzip" : "", t->received,
               a->status ? st : "connection closed", t->accepted, t->dups, t->rejected, fl);
    }
}

/* ---- /stats --------------------------------------------------------------- */

static void stats_json(fy_buf *b)
{
    pthread_mutex_lock(&S.lock);
    stats s = S.st;
    size_t seen = S.seen.n;
    pthread_mutex_unlock(&S.lock);
    fy_buf_printf(b,
                  "{\"requests\":%" PRIu64 ",\"events_received\":%" PRIu64 ",\"events_accepted\":%" PRIu64
                  ",\"duplicates\":%" PRIu64 ",\"events_rejected\":%" PRIu64 ",\"status\":{",
                  s.requests, s.events_received, s.events_accepted, s.duplicates, s.events_rejected);
    int first = 1;
    for (int i = 0; i < N_STATUS; i++)
        if (s.status[i]) {
            fy_buf_printf(b, "%s\"%d\":%" PRIu64, first ? "" : ",", i, s.status[i]);
            first = 0;
        }
    fy_buf_printf(b, "},\"faults_injected\":%" PRIu64 ",\"faults\":{", s.faults_injected);
    for (int f = 0; f < N_FAULTS; f++)
        fy_buf_printf(b, "%s\"%s\":%" PRIu64, f ? "," : "", fault_names[f], s.faults[f]);
    fy_buf_printf(b,
                  "},\"eps_limited\":%" PRIu64 ",\"connections_dropped\":%" PRIu64 ",\"bytes_received\":%" PRIu64
                  ",\"insert_ids_known\":%zu}\n",
                  s.eps_limited, s.connections_dropped, s.bytes_received, seen);
}

/* ---- libmicrohttpd callbacks ---------------------------------------------- */

static int header_is(struct MHD_Connection *c, const char *name, const char *value)
{
    const char *v = MHD_lookup_connection_value(c, MHD_HEADER_KIND, name);
    return v && strcasecmp(v, value) == 0;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url, const char *method,
                                  const char *version, const char *upload, size_t *upload_size, void **con_cls)
{
    (void)cls;
    (void)version;
    req *q = *con_cls;
    if (!q) {
        int ep = !strcmp(url, "/2/httpapi") ? EP_HTTPAPI : !strcmp(url, "/batch") ? EP_BATCH : 0;
        int get = !strcmp(method, "GET") || !strcmp(method, "HEAD");
        if (!ep) {
            if (get && (!strcmp(url, "/stats") || !strcmp(url, "/health"))) {
                answer a = {200, {0}, 0};
                fy_buf_init(&a.body, 0);
                if (url[1] == 's')
                    stats_json(&a.body);
                else
                    fy_buf_puts(&a.body, "{\"code\":200,\"status\":\"ok\"}\n");
                enum MHD_Result rc = send_answer(c, &a);
                fy_buf_free(&a.body);
                return rc;
            }
            return send_simple(c, 404, "Invalid request path");
        }
        if (strcmp(method, "POST") != 0)
            return send_simple(c, 405, "Method Not Allowed");
        if (!(q = calloc(1, sizeof *q)))
            return MHD_NO;
        q->endpoint = ep;
        q->limit = cfg.max_body ? cfg.max_body : ep == EP_BATCH ? BATCH_MAX_BYTES : HTTPAPI_MAX_BYTES;
        /* A gzip body larger than this cannot inflate to at most `limit`. */
        q->cap = q->limit + q->limit / 1024 + 1024;
        const char *enc = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_ENCODING);
        q->enc = !enc || !*enc || !strcasecmp(enc, "identity") ? ENC_IDENTITY
                 : !strcasecmp(enc, "gzip") || !strcasecmp(enc, "x-gzip") ? ENC_GZIP
                                                                           : ENC_OTHER;
        fy_buf_init(&q->body, q->cap);
        draw(&q->d);
        *con_cls = q;
        /* With "Expect: 100-continue" an oversized body can be refused before
         * it is sent (otherwise it is read and discarded: a client still
         * sending would not see an early answer). */
        const char *cl = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
        unsigned long long clen = cl ? strtoull(cl, NULL, 10) : 0;
        if (clen && clen <= q->cap && fy_buf_reserve(&q->body, (size_t)clen)) /* one allocation */
            fy_buf_free(&q->body);
        if (cl && header_is(c, MHD_HTTP_HEADER_EXPECT, "100-continue") && clen > q->cap) {
            q->too_big = 1;
            answer a = {0, {0}, 0};
            tally t = {0, 0, 0, 0, 0};
            fy_buf_init(&a.body, 0);
            set_error(&a, 413, "Payload too large");
            record(q, &a, &t);
            enum MHD_Result rc = send_answer(c, &a);
            fy_buf_free(&a.body);
            q->endpoint = 0; /* answered */
            return rc;
        }
        return MHD_YES;
    }
    if (*upload_size) {
        q->received += *upload_size;
        if (q->endpoint && !q->too_big && fy_buf_append(&q->body, upload, *upload_size)) {
            q->too_big = 1; /* keep reading, keep nothing */
            fy_buf_free(&q->body);
        }
        *upload_size = 0;
        return MHD_YES;
    }
    if (!q->endpoint)
        return MHD_YES; /* already answered */
    answer a = {0, {0}, 0};
    tally t = {0, 0, 0, 0, 0};
    fy_buf_init(&a.body, 0);
    handle_ingest(q, &a, &t);
    fy_buf_free(&q->body);
    record(q, &a, &t);
    enum MHD_Result rc = a.status ? send_answer(c, &a) : MHD_NO;
    fy_buf_free(&a.body);
    q->endpoint = 0;
    return rc;
}

static void on_completed(void *cls, struct MHD_Connection *c, void **con_cls, enum MHD_RequestTerminationCode toe)
{
    (void)cls;
    (void)c;
    (void)toe;
    req *q = *con_cls;
    if (q) {
        fy_buf_free(&q->body);
        free(q);
        *con_cls = NULL;
    }
}

static void mhd_log(void *cls, const char *fmt, va_list ap) FY_PRINTF(2, 0);
static void mhd_log(void *cls, const char *fmt, va_list ap)
{
    (void)cls;
    if (!cfg.verbose)
        return;
    char line[512];
    vsnprintf(line, sizeof line, fmt, ap);
    size_t n = strlen(line);
    while (n && (line[n - 1] == '\n' || line[n - 1] == ' '))
        line[--n] = 0;
    logmsg("httpd: %s", line);
}

/* ---- startup -------------------------------------------------------------- */

static int parse_rate(const char *s, double *out, const char **rest)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || !isfinite(v) || v < 0 || v > 1)
        return -1;
    *out = v;
    *rest = end;
    return 0;
}

static int parse_uint(const char *s, unsigned long long max, unsigned long long *out)
{
    char *end;
    if (!s || !*s || *s == '-' || *s == '+')
        return -1;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || *end || v > max)
        return -1;
    *out = v;
    return 0;
}

/* RATE:STATUS[,STATUS...] */
static int parse_rate_statuses(const char *opt, const char *arg, rate_statuses *rs)
{
    const char *rest;
    if (parse_rate(arg, &rs->rate, &rest) || *rest != ':')
        return usage_error("%s %s: expected RATE:STATUS[,STATUS...] with RATE in 0..1", opt, arg);
    rs->n = 0;
    char *copy = strdup(rest + 1), *save = NULL;
    if (!copy)
        return EX_OSERR;
    int status = EX_OK;
    for (char *tok = strtok_r(copy, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        unsigned long long v;
        if (parse_uint(tok, 599, &v) || v < 400) {
            status = usage_error("%s %s: '%s' is not an HTTP status from 400 to 599", opt, arg, tok);
            break;
        }
        if (rs->n == MAX_STATUSES) {
            status = usage_error("%s %s: at most %d statuses", opt, arg, MAX_STATUSES);
            break;
        }
        rs->st[rs->n++] = (int)v;
    }
    free(copy);
    if (status == EX_OK && rs->n == 0)
        status = usage_error("%s %s: expected RATE:STATUS[,STATUS...]", opt, arg);
    return status;
}

static int read_key_file(const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        fprintf(stderr, PROG ": --api-key-file %s: %s\n", path, strerror(errno));
        return EX_NOINPUT;
    }
    char line[4096];
    char *ok = fgets(line, sizeof line, f);
    fclose(f);
    size_t n = ok ? strlen(line) : 0;
    while (n && (line[n - 1] == '\n' || line[n - 1] == '\r' || line[n - 1] == ' ' || line[n - 1] == '\t'))
        line[--n] = 0;
    if (!n)
        return usage_error("--api-key-file %s: the first line is empty", path);
    free(cfg.api_key);
    cfg.api_key = strdup(line);
    return cfg.api_key ? EX_OK : EX_OSERR;
}

/* Binds HOST:PORT (IPv6 as [ADDR]:PORT); prints what it bound. */
static int bind_listen(const char *spec, int *fd_out, char *bound, size_t bound_n, unsigned *port_out)
{
    char host[256];
    const char *colon = strrchr(spec, ':');
    if (!colon || colon == spec || !colon[1])
        return usage_error("--listen %s: expected HOST:PORT (e.g. 127.0.0.1:0)", spec);
    size_t hl = (size_t)(colon - spec);
    const char *h = spec;
    if (spec[0] == '[' && hl >= 2 && spec[hl - 1] == ']')
        h = spec + 1, hl -= 2;
    if (hl >= sizeof host)
        return usage_error("--listen %s: host too long", spec);
    memcpy(host, h, hl);
    host[hl] = 0;
    unsigned long long port;
    if (parse_uint(colon + 1, 65535, &port))
        return usage_error("--listen %s: PORT must be 0 to 65535", spec);
    struct addrinfo hints, *ai = NULL;
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
    int gr = getaddrinfo(host, colon + 1, &hints, &ai);
    if (gr) {
        fprintf(stderr, PROG ": --listen %s: %s\n", spec, gai_strerror(gr));
        return EX_UNAVAILABLE;
    }
    int fd = -1, err = 0;
    for (struct addrinfo *p = ai; p; p = p->ai_next) {
        fd = socket(p->ai_family, p->ai_socktype | SOCK_CLOEXEC, p->ai_protocol);
        if (fd < 0) {
            err = errno;
            continue;
        }
        int one = 1;
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
        if (p->ai_family == AF_INET6)
            setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
        if (bind(fd, p->ai_addr, p->ai_addrlen) == 0 && listen(fd, 512) == 0)
            break;
        err = errno;
        close(fd);
        fd = -1;
    }
    freeaddrinfo(ai);
    if (fd < 0) {
        fprintf(stderr, PROG ": cannot listen on %s: %s\n", spec, strerror(err));
        return EX_UNAVAILABLE;
    }
    struct sockaddr_storage ss;
    socklen_t sl = sizeof ss;
    char nh[NI_MAXHOST], ns[NI_MAXSERV];
    if (getsockname(fd, (struct sockaddr *)&ss, &sl) != 0 ||
        getnameinfo((struct sockaddr *)&ss, sl, nh, sizeof nh, ns, sizeof ns, NI_NUMERICHOST | NI_NUMERICSERV)) {
        fprintf(stderr, PROG ": cannot listen on %s: %s\n", spec, strerror(errno));
        close(fd);
        return EX_UNAVAILABLE;
    }
    snprintf(bound, bound_n, ss.ss_family == AF_INET6 ? "[%s]:%s" : "%s:%s", nh, ns);
    *port_out = (unsigned)strtoul(ns, NULL, 10);
    *fd_out = fd;
    return EX_OK;
}

static int write_port_file(const char *path, unsigned port)
{
    char tmp[4200];
    snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid());
    FILE *f = fopen(tmp, "w");
    if (!f || fprintf(f, "%u\n", port) < 0 || fclose(f) != 0 || rename(tmp, path) != 0) {
        fprintf(stderr, PROG ": --port-file %s: %s\n", path, strerror(errno));
        unlink(tmp);
        return EX_CANTCREAT;
    }
    return EX_OK;
}

static void usage(FILE *f)
{
    fprintf(f,
"Usage: " PROG " --listen HOST:PORT [--out FILE] [--api-key KEY | --api-key-file FILE]\n"
"                  [--port-file FILE] [--seed N] [FAULT OPTIONS]\n"
"\n"
"A local Amplitude-compatible receiver for tests, demos, dry runs and\n"
"benchmarks. It takes POST /2/httpapi (HTTP V2 API) and POST /batch (Batch\n"
"API), plain or Content-Encoding: gzip, validates them like Amplitude, answers\n"
"with Amplitude's status codes and JSON bodies, deduplicates like Amplitude and\n"
"appends the events it accepts to --out.\n"
"\n"
"Server:\n"
"  -l, --listen HOST:PORT     address to bind, e.g. 127.0.0.1:8080 or [::1]:0\n"
"                             (required). PORT 0 picks a free port. Prints\n"
"                             \"listening on HOST:PORT\" on stdout once bound.\n"
"      --port-file FILE       also write the bound port to FILE (atomically:\n"
"                             written to a temporary file, then renamed)\n"
"  -o, --out FILE             append accepted events to FILE as JSON Lines: one\n"
"                             compact object per event, its bytes as received\n"
"                             minus whitespace, written before the answer is\n"
"                             sent. When FILE exists, the (device, insert_id)\n"
"                             pairs in it are loaded at startup, so a restarted\n"
"                             sink still deduplicates against what it accepted\n"
"                             before (a torn last line is cut off first).\n"
"      --api-key KEY          accept only this api_key (default: any non-empty)\n"
"      --api-key-file FILE    the same, from the first line of FILE\n"
"      --tls-cert FILE        serve HTTPS with this PEM certificate (chain)\n"
"      --tls-key FILE         and this PEM private key (both, or neither)\n"
"      --max-events N         events per request before 413 (default %d)\n"
"      --max-body SIZE        body limit for both endpoints, after gzip\n"
"                             decoding (default 1000000 bytes for /2/httpapi,\n"
"                             20000000 for /batch)\n"
"  -v, --verbose              log every ingestion request on stderr\n"
"  -h, --help                 show this help\n"
"  -V, --version              show the version\n"
"\n", DEFAULT_MAX_EVENTS);
    fputs(
"Fault injection (RATE is the fraction of requests, 0 to 1; each ingestion\n"
"request takes the same fixed set of draws from one PRNG seeded by --seed, in\n"
"the order requests arrive, so a run with one client is reproducible):\n"
"      --seed N               PRNG seed (default: from the clock, printed on\n"
"                             stderr when a fault option is given)\n"
"      --fail RATE:STATUS[,STATUS...]\n"
"                             answer one of the statuses (400-599), chosen at\n"
"                             random, before accepting anything, e.g.\n"
"                             0.2:500,502,503,504\n"
"      --fail-after RATE:STATUS[,STATUS...]\n"
"                             accept the events (dedup and --out), then answer\n"
"                             the status anyway\n"
"      --drop-before RATE     close the connection without answering, nothing\n"
"                             accepted\n"
"      --drop-after RATE      accept the events, then close the connection\n"
"                             without answering\n"
"      --slow RATE:MS         delay the answer of an accepted request by MS ms\n"
"      --hold-file FILE       while FILE exists, hold the answer of every\n"
"                             accepted request (events accepted, --out written)\n"
"      --throttle RATE        answer 429 naming about half of the request's\n"
"                             devices (at least one) and their events' indexes;\n"
"                             nothing accepted\n"
"      --eps-limit N          Amplitude's per-device limit: answer 429 (nothing\n"
"                             accepted) when the request would take a device\n"
"                             over N events in the last second (every event\n"
"                             of an accepted request counts, duplicates too)\n"
"      --retry-after SECONDS  add Retry-After to 429 and 503 answers\n"
"      --gzip-unsupported     answer 415 to gzip bodies\n"
"Order: --drop-before, --fail, then the request's own 413/415/400, --throttle,\n"
"--eps-limit, acceptance, --slow, then --drop-after or --fail-after or 200.\n"
"\n", f);
    fprintf(f,
"Endpoints:\n"
"  POST /2/httpapi, /batch    {\"api_key\":..., \"events\":[...], \"options\":\n"
"                             {\"min_id_length\":N}}; at most %d events and\n"
"                             1 MB (/batch: 20 MB), counted after gzip decoding\n"
"  GET /stats                 {\"requests\",\"events_received\",\"events_accepted\",\n"
"                             \"duplicates\",\"events_rejected\",\"status\":{\"200\":N,\n"
"                             ...},\"faults_injected\",...}; events_received =\n"
"                             accepted + duplicates + rejected\n"
"  GET /health                200\n"
"\n"
"Answers (every body has \"code\"):\n"
"  200  {\"code\":200,\"events_ingested\":N,\"payload_size_bytes\":B,\n"
"       \"server_upload_time\":MS}; events_ingested counts every event of the\n"
"       request, dropped duplicates included; B is the JSON size after gzip\n"
"       decoding\n"
"  400  Missing request body, Invalid JSON request body, Invalid event JSON,\n"
"       Request missing required field (missing_field api_key or events; an\n"
"       empty events array counts as missing), Invalid API key; or\n"
"       \"Invalid field values on some events\" with events_with_invalid_fields\n"
"       and events_with_missing_fields ({field: [indexes]}): event_type missing\n"
"       or not a non-empty string; user_id/device_id not a string or one of\n"
"       Amplitude's invalid values (anonymous, nil, none, null, n/a, na,\n"
"       undefined, unknown, \"\", 00000000-0000-0000-0000-000000000000, {},\n"
"       lmy47d, 0, -1; any case); no id at all (listed under both device_id and\n"
"       user_id as missing); time not an integer; insert_id not a string;\n"
"       event_properties or user_properties not objects. Ids shorter than\n"
"       min_id_length (default 5) are ignored; an event left without an id is\n"
"       listed in events_with_invalid_id_lengths (error \"Invalid id length for\n"
"       user_id or device_id\" when that is the only problem). A null field\n"
"       counts as absent. Nothing of a 400 request is accepted.\n"
"  413  {\"code\":413,\"error\":\"Payload too large\"}\n"
"  415  an unsupported Content-Encoding (gzip, x-gzip and identity are read)\n"
"  429  {\"code\":429,\"error\":\"Too many requests for some devices and users\",\n"
"       \"eps_threshold\":T,\"throttled_devices\":{id:eps},\"throttled_users\":\n"
"       {id:eps},\"throttled_events\":[indexes]} (T: --eps-limit, else 30 for\n"
"       /2/httpapi and 1000 for /batch)\n"
"  4xx/5xx from --fail and --fail-after: {\"code\":S,\"error\":\"<reason phrase>\"}\n"
"\n", DEFAULT_MAX_EVENTS);
    fputs(
"Deduplication: an event whose (device, insert_id) was accepted before is\n"
"dropped silently (it is counted in events_ingested and in the duplicates\n"
"stat, and not written to --out). The device is device_id when the event has\n"
"a non-empty one, else user_id. Events without insert_id are always accepted.\n"
"The window is the sink's lifetime (and --out's content).\n"
"\n"
"SIGTERM or SIGINT: stop within a second, exit 0.\n"
"Exit codes: 0 stopped by a signal, 64 usage, 66 --api-key-file unreadable,\n"
"69 cannot listen, 71 out of memory or thread failure, 73 cannot write --out\n"
"or --port-file, 74 cannot read --out.\n", f);
}

enum { OPT_PORT_FILE = 256, OPT_API_KEY, OPT_API_KEY_FILE, OPT_SEED, OPT_FAIL, OPT_FAIL_AFTER, OPT_DROP_BEFORE,
       OPT_DROP_AFTER, OPT_SLOW, OPT_THROTTLE, OPT_EPS_LIMIT, OPT_RETRY_AFTER, OPT_GZIP_UNSUPPORTED,
       OPT_MAX_EVENTS, OPT_MAX_BODY, OPT_TLS_CERT, OPT_TLS_KEY, OPT_HOLD_FILE };

static int parse_args(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"api-key", required_argument, NULL, OPT_API_KEY},
        {"api-key-file", required_argument, NULL, OPT_API_KEY_FILE},
        {"drop-after", required_argument, NULL, OPT_DROP_AFTER},
        {"drop-before", required_argument, NULL, OPT_DROP_BEFORE},
        {"eps-limit", required_argument, NULL, OPT_EPS_LIMIT},
        {"fail", required_argument, NULL, OPT_FAIL},
        {"fail-after", required_argument, NULL, OPT_FAIL_AFTER},
        {"gzip-unsupported", no_argument, NULL, OPT_GZIP_UNSUPPORTED},
        {"help", no_argument, NULL, 'h'},
        {"listen", required_argument, NULL, 'l'},
        {"max-body", required_argument, NULL, OPT_MAX_BODY},
        {"max-events", required_argument, NULL, OPT_MAX_EVENTS},
        {"out", required_argument, NULL, 'o'},
        {"port-file", required_argument, NULL, OPT_PORT_FILE},
        {"retry-after", required_argument, NULL, OPT_RETRY_AFTER},
        {"seed", required_argument, NULL, OPT_SEED},
        {"slow", required_argument, NULL, OPT_SLOW},
        {"hold-file", required_argument, NULL, OPT_HOLD_FILE},
        {"throttle", required_argument, NULL, OPT_THROTTLE},
        {"tls-cert", required_argument, NULL, OPT_TLS_CERT},
        {"tls-key", required_argument, NULL, OPT_TLS_KEY},
        {"verbose", no_argument, NULL, 'v'},
        {"version", no_argument, NULL, 'V'},
        {NULL, 0, NULL, 0},
    };
    int c, status = EX_OK;
    const char *rest;
    unsigned long long u;
    opterr = 0; /* messages name the program, not argv[0] */
    while (status == EX_OK && (c = getopt_long(argc, argv, ":hl:o:vV", longopts, NULL)) != -1) {
        switch (c) {
        case 'h': usage(stdout); return -1;
        case 'V': printf(PROG " %s\n", ferry_version()); return -1;
        case 'l': cfg.listen = optarg; break;
        case 'o': cfg.out = optarg; break;
        case 'v': cfg.verbose = 1; break;
        case OPT_PORT_FILE: cfg.port_file = optarg; break;
        case OPT_TLS_CERT: cfg.tls_cert = optarg; break;
        case OPT_TLS_KEY: cfg.tls_key = optarg; break;
        case OPT_API_KEY:
            if (!*optarg)
                return usage_error("%s", "--api-key: the key must not be empty");
            free(cfg.api_key);
            if (!(cfg.api_key = strdup(optarg)))
                return EX_OSERR;
            break;
        case OPT_API_KEY_FILE: status = read_key_file(optarg); break;
        case OPT_SEED:
            if (parse_uint(optarg, UINT64_MAX, &u))
                return usage_error("--seed %s: expected a non-negative integer", optarg);
            cfg.seed = (uint64_t)u;
            cfg.seed_given = 1;
            break;
        case OPT_FAIL: status = parse_rate_statuses("--fail", optarg, &cfg.fail); break;
        case OPT_FAIL_AFTER: status = parse_rate_statuses("--fail-after", optarg, &cfg.fail_after); break;
        case OPT_DROP_BEFORE:
        case OPT_DROP_AFTER:
        case OPT_THROTTLE:
            if (parse_rate(optarg, c == OPT_DROP_BEFORE ? &cfg.drop_before
                                   : c == OPT_DROP_AFTER ? &cfg.drop_after
                                                         : &cfg.throttle,
                           &rest) || *rest)
                return usage_error("--%s %s: expected a RATE from 0 to 1",
                                   c == OPT_DROP_BEFORE ? "drop-before" : c == OPT_DROP_AFTER ? "drop-after" : "throttle",
                                   optarg);
            break;
        case OPT_HOLD_FILE:
            cfg.hold_file = optarg;
            break;
        case OPT_SLOW:
            if (parse_rate(optarg, &cfg.slow_rate, &rest) || *rest != ':' || parse_uint(rest + 1, 3600000, &u))
                return usage_error("--slow %s: expected RATE:MS (RATE 0..1, MS up to 3600000)", optarg);
            cfg.slow_ms = (unsigned)u;
            break;
        case OPT_EPS_LIMIT:
            if (parse_uint(optarg, 100000000, &u) || u == 0)
                return usage_error("--eps-limit %s: expected a positive number of events per second", optarg);
            cfg.eps_limit = (unsigned)u;
            break;
        case OPT_RETRY_AFTER:
            if (parse_uint(optarg, 86400, &u))
                return usage_error("--retry-after %s: expected 0 to 86400 seconds", optarg);
            cfg.retry_after = (long)u;
            break;
        case OPT_GZIP_UNSUPPORTED: cfg.gzip_unsupported = 1; break;
        case OPT_MAX_EVENTS:
            if (parse_uint(optarg, 1000000, &u) || u == 0)
                return usage_error("--max-events %s: expected 1 to 1000000", optarg);
            cfg.max_events = (size_t)u;
            break;
        case OPT_MAX_BODY: {
            uint64_t v;
            if (fy_cli_parse_size(optarg, &v) || v < 16 || v > (1u << 30))
                return usage_error("--max-body %s: expected a size from 16 bytes to 1G", optarg);
            cfg.max_body = (size_t)v;
            break;
        }
        case ':': return usage_error("option '%s' requires an argument", argv[optind - 1]);
        default: return usage_error("unknown option '%s'", argv[optind - 1]);
        }
    }
    if (status != EX_OK)
        return status;
    if (optind < argc)
        return usage_error("unexpected argument '%s'", argv[optind]);
    if (!cfg.listen)
        return usage_error("%s", "--listen HOST:PORT is required");
    if (!cfg.tls_cert != !cfg.tls_key)
        return usage_error("%s", "--tls-cert and --tls-key go together");
    return EX_OK;
}

int main(int argc, char **argv)
{
    cfg.retry_after = -1;
    cfg.max_events = DEFAULT_MAX_EVENTS;
    int status = parse_args(argc, argv);
    if (status)
        return status < 0 ? EX_OK : status;

    /* Signals go to sigwait() in this thread only; MHD's threads inherit the
     * mask. Blocked from here on, so a signal during startup still ends in a
     * clean exit 0. */
    sigset_t sigs;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGTERM);
    sigaddset(&sigs, SIGINT);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);
    signal(SIGPIPE, SIG_IGN);

    int any_fault = cfg.fail.n || cfg.fail_after.n || cfg.drop_before > 0 || cfg.drop_after > 0 ||
                    cfg.throttle > 0 || cfg.slow_rate > 0;
    if (!cfg.seed_given) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        cfg.seed = (uint64_t)ts.tv_sec * 1000000007ull ^ (uint64_t)ts.tv_nsec ^ ((uint64_t)getpid() << 32);
        if (any_fault)
            logmsg("faults seeded with --seed %" PRIu64, cfg.seed);
    }
    uint64_t sm = cfg.seed;
    for (int i = 0; i < 4; i++)
        R.s[i] = splitmix64(&sm);

    if (cfg.out) {
        if (load_out(cfg.out) != 0) {
            fprintf(stderr, PROG ": --out %s: %s\n", cfg.out, strerror(errno));
            return errno == ENOMEM ? EX_OSERR : EX_IOERR;
        }
        S.out_fd = open(cfg.out, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600); /* events may hold personal data (SECURITY.md) */
        struct stat st;
        if (S.out_fd < 0 || fstat(S.out_fd, &st) != 0) {
            fprintf(stderr, PROG ": --out %s: %s\n", cfg.out, strerror(errno));
            return EX_CANTCREAT;
        }
        S.out_size = st.st_size;
    }

    struct MHD_OptionItem tls[3];
    if (cfg.tls_cert && (status = sink_tls_load(cfg.tls_cert, cfg.tls_key, tls)) != 0)
        return status;
    if (!cfg.tls_cert)
        tls[0].option = MHD_OPTION_END;

    int lfd = -1;
    unsigned port = 0;
    char bound[NI_MAXHOST + NI_MAXSERV + 4];
    if ((status = bind_listen(cfg.listen, &lfd, bound, sizeof bound, &port)) != EX_OK)
        return status;

    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_destroy(&STOP.cond);
    pthread_cond_init(&STOP.cond, &ca);
    pthread_condattr_destroy(&ca);

    struct MHD_Daemon *d = MHD_start_daemon(
        MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_THREAD_PER_CONNECTION | MHD_USE_POLL | MHD_USE_ITC |
            MHD_USE_ERROR_LOG | (cfg.tls_cert ? MHD_USE_TLS : 0),
        0, NULL, NULL, on_request, NULL, MHD_OPTION_EXTERNAL_LOGGER, mhd_log, NULL, MHD_OPTION_LISTEN_SOCKET, lfd,
        MHD_OPTION_NOTIFY_COMPLETED, on_completed, NULL, MHD_OPTION_CONNECTION_TIMEOUT, CONN_TIMEOUT_S,
        MHD_OPTION_CONNECTION_LIMIT, CONN_LIMIT, MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)CONN_MEMORY,
        MHD_OPTION_ARRAY, tls, MHD_OPTION_END);
    if (!d) {
        fprintf(stderr, PROG ": cannot start the HTTP server on %s\n", bound);
        close(lfd);
        return EX_OSERR;
    }
    if (cfg.port_file && (status = write_port_file(cfg.port_file, port)) != EX_OK) {
        MHD_stop_daemon(d);
        close(lfd);
        return status;
    }
    printf("listening on %s\n", bound);
    fflush(stdout);

    int sig = 0;
    sigwait(&sigs, &sig);
    if (cfg.verbose)
        logmsg("%s: stopping", sig == SIGTERM ? "SIGTERM" : "SIGINT");
    pthread_mutex_lock(&STOP.lock);
    STOP.stopping = 1;
    pthread_cond_broadcast(&STOP.cond);
    pthread_mutex_unlock(&STOP.lock);
    MHD_stop_daemon(d);
    close(lfd);
    if (cfg.tls_cert)
        sink_tls_free(tls);
    if (S.out_fd >= 0 && close(S.out_fd) != 0) {
        fprintf(stderr, PROG ": --out %s: %s\n", cfg.out, strerror(errno));
        return EX_IOERR;
    }
    sink_set_free(&S.seen);
    sink_map_free(&S.windows, free_window);
    free(cfg.api_key);
    return EX_OK;
}

/* catalog.c: the event catalog (fy_catalog.h): a TSV of known event types,
 * a hash lookup, and a bounded Levenshtein search for "did you mean". */
#include "fy_catalog.h"

#include "fy_buf.h"
#include "fy_cli.h"
#include "fy_fail.h"
#include "fy_record.h"

#include <errno.h>
#include <jansson.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Compile definitions from format/CMakeLists.txt; these fallbacks keep the
 * file buildable on its own. */
#ifndef FERRY_CATALOG_INSTALLED
#define FERRY_CATALOG_INSTALLED "/usr/local/share/ferry/supervisor-events.tsv"
#endif
#ifndef FERRY_CATALOG_SOURCE
#define FERRY_CATALOG_SOURCE ""
#endif

#define MSG_NAME_MAX 160u /* bytes of a name shown in a message */

struct fy_catalog {
    char *path;
    char **names;       /* NUL-terminated (a name never holds a NUL) */
    size_t *lens;
    size_t *cat;        /* index into cats */
    unsigned long *line;
    size_t n, cap;
    char **cats;
    size_t n_cats;
    size_t *slots; /* open addressing: entry index + 1, 0 = empty */
    size_t n_slots; /* a power of two, at least 2n */
};

const char *fy_catalog_default_path(void)
{
    const char *env = getenv(FY_CATALOG_ENV);
    if (env && *env)
        return env;
    if (access(FERRY_CATALOG_INSTALLED, R_OK) == 0)
        return FERRY_CATALOG_INSTALLED;
    if (*FERRY_CATALOG_SOURCE && access(FERRY_CATALOG_SOURCE, R_OK) == 0)
        return FERRY_CATALOG_SOURCE;
    fy_fail(FERRY_ENOENT, "no event catalog: $" FY_CATALOG_ENV " is not set and neither %s nor %s is readable",
            FERRY_CATALOG_INSTALLED, *FERRY_CATALOG_SOURCE ? FERRY_CATALOG_SOURCE : "(no source tree)");
    return NULL;
}

static uint64_t hash_bytes(const char *s, size_t n)
{
    uint64_t h = 14695981039346656037ull; /* FNV-1a */
    for (size_t i = 0; i < n; i++) {
        h ^= (unsigned char)s[i];
        h *= 1099511628211ull;
    }
    return h;
}

void fy_catalog_free(fy_catalog *c)
{
    if (!c)
        return;
    for (size_t i = 0; i < c->n; i++)
        free(c->names[i]);
    for (size_t k = 0; k < c->n_cats; k++)
        free(c->cats[k]);
    free(c->names);
    free(c->lens);
    free(c->cat);
    free(c->line);
    free(c->cats);
    free(c->slots);
    free(c->path);
    free(c);
}

const char *fy_catalog_path(const fy_catalog *c) { return c->path; }
size_t fy_catalog_size(const fy_catalog *c) { return c->n; }
size_t fy_catalog_n_categories(const fy_catalog *c) { return c->n_cats; }
const char *fy_catalog_category_at(const fy_catalog *c, size_t k) { return k < c->n_cats ? c->cats[k] : NULL; }
size_t fy_catalog_category_index(const fy_catalog *c, size_t i) { return i < c->n ? c->cat[i] : FY_CATALOG_NONE; }

const char *fy_catalog_name(const fy_catalog *c, size_t i, size_t *len)
{
    if (i >= c->n)
        return NULL;
    if (len)
        *len = c->lens[i];
    return c->names[i];
}

const char *fy_catalog_category(const fy_catalog *c, size_t i)
{
    return i < c->n ? c->cats[c->cat[i]] : NULL;
}

size_t fy_catalog_find(const fy_catalog *c, const char *name, size_t len)
{
    if (!c->n_slots)
        return FY_CATALOG_NONE;
    size_t mask = c->n_slots - 1;
    for (size_t s = (size_t)hash_bytes(name, len) & mask;; s = (s + 1) & mask) {
        size_t v = c->slots[s];
        if (!v)
            return FY_CATALOG_NONE;
        if (c->lens[v - 1] == len && memcmp(c->names[v - 1], name, len) == 0)
            return v - 1;
    }
}

size_t fy_catalog_unescape(char *s, size_t len, size_t *bad)
{
    size_t o = 0;
    for (size_t i = 0; i < len; i++) {
        if (s[i] != '\\') {
            s[o++] = s[i];
            continue;
        }
        char e = i + 1 < len ? s[i + 1] : '\0';
        switch (e) {
        case 'n': s[o++] = '\n'; break;
        case 't': s[o++] = '\t'; break;
        case 'r': s[o++] = '\r'; break;
        case '\\': s[o++] = '\\'; break;
        default:
            if (bad)
                *bad = i;
            return FY_CATALOG_NONE;
        }
        i++;
    }
    return o;
}

static int valid_utf8(const char *s, size_t n)
{
    const unsigned char *p = (const unsigned char *)s;
    for (size_t i = 0; i < n;) {
        size_t k = fy_utf8_seq(p + i, n - i);
        if (!k)
            return 0;
        i += k;
    }
    return 1;
}

/* Appends s as the inside of a JSON string, cut to at most max input bytes
 * (at a character boundary) with "..." after a cut. */
static void put_escaped(fy_buf *b, const char *s, size_t n, size_t max)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t i = 0;
    while (i < n) {
        size_t k = fy_utf8_seq(p + i, n - i);
        if (!k)
            k = 1;
        if (i + k > max) {
            fy_buf_puts(b, "...");
            return;
        }
        unsigned char ch = p[i];
        if (ch == '"' || ch == '\\')
            fy_buf_printf(b, "\\%c", ch);
        else if (ch == '\n')
            fy_buf_puts(b, "\\n");
        else if (ch == '\t')
            fy_buf_puts(b, "\\t");
        else if (ch == '\r')
            fy_buf_puts(b, "\\r");
        else if (ch < 0x20 || ch == 0x7f)
            fy_buf_printf(b, "\\u%04x", ch);
        else
            fy_buf_append(b, p + i, k);
        i += k;
    }
}

/* ---- loading ------------------------------------------------------------ */

typedef struct fields {
    char **v;
    size_t *len;
    size_t n, cap;
} fields;

static ferry_err split(char *line, size_t len, fields *f)
{
    f->n = 0;
    size_t start = 0;
    for (size_t i = 0; i <= len; i++) {
        if (i < len && line[i] != '\t')
            continue;
        if (f->n == f->cap) {
            size_t nc = f->cap ? f->cap * 2 : 16;
            char **nv = realloc(f->v, nc * sizeof *nv);
            if (!nv)
                return fy_fail(FERRY_ENOMEM, "out of memory");
            f->v = nv;
            size_t *nl = realloc(f->len, nc * sizeof *nl);
            if (!nl)
                return fy_fail(FERRY_ENOMEM, "out of memory");
            f->len = nl;
            f->cap = nc;
        }
        f->v[f->n] = line + start;
        f->len[f->n] = i - start;
        f->n++;
        start = i + 1;
    }
    return FERRY_OK;
}

static ferry_err grow_table(fy_catalog *c)
{
    size_t ns = c->n_slots ? c->n_slots * 2 : 128;
    size_t *slots = calloc(ns, sizeof *slots);
    if (!slots)
        return fy_fail(FERRY_ENOMEM, "out of memory");
    for (size_t i = 0; i < c->n; i++) {
        size_t s = (size_t)hash_bytes(c->names[i], c->lens[i]) & (ns - 1);
        while (slots[s])
            s = (s + 1) & (ns - 1);
        slots[s] = i + 1;
    }
    free(c->slots);
    c->slots = slots;
    c->n_slots = ns;
    return FERRY_OK;
}

static ferry_err add_entry(fy_catalog *c, const char *name, size_t nlen, const char *cat, size_t clen,
                           unsigned long lineno)
{
    if (c->n == c->cap) {
        size_t nc = c->cap ? c->cap * 2 : 64;
        char **nn = realloc(c->names, nc * sizeof *nn);
        if (nn)
            c->names = nn;
        size_t *nl = nn ? realloc(c->lens, nc * sizeof *nl) : NULL;
        if (nl)
            c->lens = nl;
        size_t *ncat = nl ? realloc(c->cat, nc * sizeof *ncat) : NULL;
        if (ncat)
            c->cat = ncat;
        unsigned long *nline = ncat ? realloc(c->line, nc * sizeof *nline) : NULL;
        if (!nline)
            return fy_fail(FERRY_ENOMEM, "out of memory");
        c->line = nline;
        c->cap = nc;
    }
    size_t k = 0;
    while (k < c->n_cats && !(strlen(c->cats[k]) == clen && memcmp(c->cats[k], cat, clen) == 0))
        k++;
    if (k == c->n_cats) {
        char **ncats = realloc(c->cats, (c->n_cats + 1) * sizeof *ncats);
        if (!ncats)
            return fy_fail(FERRY_ENOMEM, "out of memory");
        c->cats = ncats;
        if (!(c->cats[k] = strndup(cat, clen)))
            return fy_fail(FERRY_ENOMEM, "out of memory");
        c->n_cats++;
    }
    char *copy = malloc(nlen + 1);
    if (!copy)
        return fy_fail(FERRY_ENOMEM, "out of memory");
    memcpy(copy, name, nlen);
    copy[nlen] = '\0';
    c->names[c->n] = copy;
    c->lens[c->n] = nlen;
    c->cat[c->n] = k;
    c->line[c->n] = lineno;
    c->n++;
    if (c->n * 2 > c->n_slots)
        return grow_table(c);
    size_t mask = c->n_slots - 1;
    size_t s = (size_t)hash_bytes(copy, nlen) & mask;
    while (c->slots[s])
        s = (s + 1) & mask;
    c->slots[s] = c->n;
    return FERRY_OK;
}

static ferry_err check_field(const char *name, unsigned long lineno, const char *col, char *v, size_t *len)
{
    if (memchr(v, '\0', *len))
        return fy_fail(FERRY_EINVAL, "%s:%lu: column %s holds a NUL byte", name, lineno, col);
    size_t bad = 0;
    size_t n = fy_catalog_unescape(v, *len, &bad);
    if (n == FY_CATALOG_NONE)
        return fy_fail(FERRY_EINVAL,
                       "%s:%lu: column %s: unknown escape \"\\%.1s\" (allowed: \\n \\t \\r \\\\; write a backslash as \\\\)",
                       name, lineno, col, bad + 1 < *len ? v + bad + 1 : "");
    *len = n;
    if (!n)
        return fy_fail(FERRY_EINVAL, "%s:%lu: column %s is empty", name, lineno, col);
    if (!valid_utf8(v, n))
        return fy_fail(FERRY_EINVAL, "%s:%lu: column %s is not valid UTF-8", name, lineno, col);
    return FERRY_OK;
}

ferry_err fy_catalog_read(FILE *f, const char *name, fy_catalog **out)
{
    *out = NULL;
    fy_catalog *c = calloc(1, sizeof *c);
    if (!c || !(c->path = strdup(name))) {
        free(c);
        return fy_fail(FERRY_ENOMEM, "out of memory");
    }
    fy_line_reader r;
    fy_lines_init(&r, f, FY_CATALOG_MAX_LINE);
    fields fl = {NULL, NULL, 0, 0};
    size_t ncols = 0, col_type = FY_CATALOG_NONE, col_cat = FY_CATALOG_NONE;
    int too_long, rc, header = 0;
    ferry_err e = FERRY_OK;
    while (!e && (rc = fy_lines_next(&r, &too_long)) == 1) {
        if (too_long) {
            e = fy_fail(FERRY_EINVAL, "%s:%lu: line longer than %u bytes", name, r.lineno, FY_CATALOG_MAX_LINE);
            break;
        }
        char *line = r.line.data;
        size_t len = r.line.len;
        if (!header && r.lineno == 1 && len >= 3 && memcmp(line, "\xef\xbb\xbf", 3) == 0)
            line += 3, len -= 3; /* UTF-8 byte order mark */
        if (len == 0)
            continue; /* blank line */
        if ((e = split(line, len, &fl)))
            break;
        if (!header) {
            header = 1;
            ncols = fl.n;
            for (size_t i = 0; i < fl.n && !e; i++) {
                size_t *want = NULL;
                if (fl.len[i] == 10 && !memcmp(fl.v[i], "event_type", 10))
                    want = &col_type;
                else if (fl.len[i] == 8 && !memcmp(fl.v[i], "category", 8))
                    want = &col_cat;
                if (want && *want != FY_CATALOG_NONE)
                    e = fy_fail(FERRY_EINVAL, "%s:%lu: header: column %.*s appears twice", name, r.lineno,
                                (int)fl.len[i], fl.v[i]);
                else if (want)
                    *want = i;
            }
            if (!e && (col_type == FY_CATALOG_NONE || col_cat == FY_CATALOG_NONE))
                e = fy_fail(FERRY_EINVAL,
                            "%s:%lu: header has no %s column (expected a tab-separated header with event_type and category)",
                            name, r.lineno, col_type == FY_CATALOG_NONE ? "event_type" : "category");
            continue;
        }
        if (fl.n != ncols) {
            e = fy_fail(FERRY_EINVAL, "%s:%lu: %zu field(s), the header has %zu (fields are separated by tabs)",
                        name, r.lineno, fl.n, ncols);
            break;
        }
        if (c->n >= FY_CATALOG_MAX_ENTRIES) {
            e = fy_fail(FERRY_EINVAL, "%s:%lu: more than %u event types", name, r.lineno, FY_CATALOG_MAX_ENTRIES);
            break;
        }
        char *tv = fl.v[col_type], *cv = fl.v[col_cat];
        size_t tl = fl.len[col_type], cl = fl.len[col_cat];
        if ((e = check_field(name, r.lineno, "event_type", tv, &tl)) ||
            (e = check_field(name, r.lineno, "category", cv, &cl)))
            break;
        size_t dup = fy_catalog_find(c, tv, tl);
        if (dup != FY_CATALOG_NONE) {
            fy_buf b;
            fy_buf_init(&b, 0);
            put_escaped(&b, tv, tl, MSG_NAME_MAX);
            fy_buf_putc(&b, '\0');
            e = fy_fail(FERRY_EINVAL, "%s:%lu: event_type \"%s\" is already listed on line %lu", name, r.lineno,
                        b.data ? b.data : "", c->line[dup]);
            fy_buf_free(&b);
            break;
        }
        e = add_entry(c, tv, tl, cv, cl, r.lineno);
    }
    if (!e && rc < 0)
        e = fy_fail_lmdb(errno, "%s: read error", name);
    if (!e && !header)
        e = fy_fail(FERRY_EINVAL, "%s: empty; expected a header line with event_type and category columns", name);
    free(fl.v);
    free(fl.len);
    fy_lines_free(&r);
    if (e) {
        fy_catalog_free(c);
        return e;
    }
    *out = c;
    return FERRY_OK;
}

ferry_err fy_catalog_load(const char *path, fy_catalog **out)
{
    *out = NULL;
    if (!path && !(path = fy_catalog_default_path()))
        return FERRY_ENOENT;
    FILE *f = fopen(path, "r");
    if (!f)
        return fy_fail_lmdb(errno, "event catalog %s", path);
    ferry_err e = fy_catalog_read(f, path, out);
    fclose(f);
    return e;
}

/* ---- suggestions -------------------------------------------------------- */

/* Levenshtein distance of a and b if it is at most k, else k + 1; only the
 * band |i - j| <= k is computed. row needs 2 * (m + 2) entries. */
static size_t lev_bounded(const unsigned char *a, size_t n, const unsigned char *b, size_t m, size_t k, size_t *row)
{
    size_t inf = k + 1;
    if ((n > m ? n - m : m - n) > k)
        return inf;
    size_t *prev = row, *cur = row + m + 2;
    for (size_t j = 0; j <= m + 1; j++)
        prev[j] = j <= k && j <= m ? j : inf;
    for (size_t i = 1; i <= n; i++) {
        size_t lo = i > k ? i - k : 1, hi = i + k < m ? i + k : m;
        cur[lo - 1] = lo == 1 ? (i < inf ? i : inf) : inf;
        size_t best = cur[lo - 1];
        for (size_t j = lo; j <= hi; j++) {
            size_t v = prev[j - 1] + (a[i - 1] != b[j - 1]);
            if (prev[j] + 1 < v)
                v = prev[j] + 1;
            if (cur[j - 1] + 1 < v)
                v = cur[j - 1] + 1;
            cur[j] = v < inf ? v : inf;
            if (cur[j] < best)
                best = cur[j];
        }
        if (hi + 1 <= m)
            cur[hi + 1] = inf;
        if (best >= inf)
            return inf;
        size_t *t = prev;
        prev = cur;
        cur = t;
    }
    return prev[m] < inf ? prev[m] : inf;
}

size_t fy_catalog_closest(const fy_catalog *c, const char *name, size_t len, size_t max_dist, size_t *dist)
{
    size_t best = FY_CATALOG_NONE, best_d = max_dist + 1, maxm = 0;
    for (size_t i = 0; i < c->n; i++)
        if (c->lens[i] <= len + max_dist && c->lens[i] > maxm)
            maxm = c->lens[i];
    size_t *row = malloc(2 * (maxm + 2) * sizeof *row);
    if (!row)
        return FY_CATALOG_NONE;
    for (size_t i = 0; i < c->n && best_d > 0; i++) {
        if (c->lens[i] > maxm)
            continue;
        size_t k = best_d - 1; /* only strictly better candidates matter */
        size_t d = lev_bounded((const unsigned char *)name, len, (const unsigned char *)c->names[i], c->lens[i], k,
                               row);
        if (d <= k) {
            best = i;
            best_d = d;
        }
    }
    free(row);
    if (dist)
        *dist = best == FY_CATALOG_NONE ? 0 : best_d;
    return best;
}

size_t fy_catalog_suggest_bound(size_t len)
{
    size_t k = len / 3;
    return k < 1 ? 1 : k > 8 ? 8 : k;
}

ferry_err fy_catalog_check(const fy_catalog *c, const char *name, size_t len)
{
    if (fy_catalog_find(c, name, len) != FY_CATALOG_NONE)
        return FERRY_OK;
    size_t near = fy_catalog_closest(c, name, len, fy_catalog_suggest_bound(len), NULL);
    fy_buf b;
    fy_buf_init(&b, 0);
    fy_buf_puts(&b, "unknown event_type \"");
    put_escaped(&b, name, len, MSG_NAME_MAX);
    if (near != FY_CATALOG_NONE) {
        fy_buf_puts(&b, "\" (did you mean \"");
        put_escaped(&b, c->names[near], c->lens[near], MSG_NAME_MAX);
        fy_buf_puts(&b, "\"?)");
    } else {
        fy_buf_printf(&b, "\" (not in catalog %.200s)", c->path);
    }
    fy_buf_putc(&b, '\0');
    ferry_err e = b.data ? fy_fail(FERRY_EINVAL, "%s", b.data) : fy_fail(FERRY_EINVAL, "unknown event_type");
    fy_buf_free(&b);
    return e;
}

ferry_err fy_catalog_check_json(const fy_catalog *c, const char *json, size_t len)
{
    json_t *v = json_loadb(json, len, 0, NULL);
    if (!v)
        return FERRY_OK;
    const json_t *t = json_is_object(v) ? json_object_get(v, "event_type") : NULL;
    ferry_err e = FERRY_OK;
    if (t && json_is_string(t))
        e = fy_catalog_check(c, json_string_value(t), json_string_length(t));
    json_decref(v);
    return e;
}

/* policy.c: the property policy (allow/deny paths, regex redaction) applied
 * to an event object before it is encoded. fy_policy.h states the rules. */
#include "fy_policy.h"
#include "fy_buf.h"
#include "fy_fail.h"
#include "fy_record.h"

#include <regex.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

enum { SIDE_EVENT, SIDE_USER, N_SIDES };
static const char *const side_names[N_SIDES] = {"event_properties", "user_properties"};

typedef struct seg {
    char *name; /* unescaped key; NULL: the wildcard "*" */
} seg;

typedef struct rule {
    seg *segs;   /* the path below the side */
    size_t nseg; /* 0: the side as a whole */
    int side, allow;
} rule;

struct ferry_policy {
    atomic_uint refs;
    atomic_int frozen; /* in use by a journal or batch: rules are fixed */
    rule *rules;
    size_t nrules, rules_cap;
    size_t max_seg;        /* longest path, for the scratch of fy_policy_apply */
    int has_allow[N_SIDES];
    regex_t *re;
    size_t nre, re_cap;
};

ferry_err fy_policy_new(fy_policy **out)
{
    fy_policy *p = calloc(1, sizeof *p);
    *out = p;
    if (!p)
        return fy_fail(FERRY_ENOMEM, "out of memory");
    atomic_init(&p->refs, 1u);
    atomic_init(&p->frozen, 0);
    return FERRY_OK;
}

/* The reference count is the one mutable part of a policy shared as const
 * (ferry_options.policy); the uintptr_t round trip says so to -Wcast-qual. */
static fy_policy *mutable(const fy_policy *p) { return (fy_policy *)(uintptr_t)p; }

fy_policy *fy_policy_ref(const fy_policy *cp)
{
    fy_policy *p = mutable(cp);
    if (p) {
        atomic_fetch_add(&p->refs, 1u);
        atomic_store(&p->frozen, 1);
    }
    return p;
}

static void rule_free(rule *r)
{
    for (size_t i = 0; i < r->nseg; i++)
        free(r->segs[i].name);
    free(r->segs);
}

void fy_policy_unref(fy_policy *p)
{
    if (!p || atomic_fetch_sub(&p->refs, 1u) != 1u)
        return;
    for (size_t i = 0; i < p->nrules; i++)
        rule_free(&p->rules[i]);
    free(p->rules);
    for (size_t i = 0; i < p->nre; i++)
        regfree(&p->re[i]);
    free(p->re);
    free(p);
}

int fy_policy_empty(const fy_policy *p) { return !p || (p->nrules == 0 && p->nre == 0); }

static ferry_err check_open(const fy_policy *p, const char *what, const char *arg)
{
    if (!p || !arg)
        return fy_fail(FERRY_EINVAL, "%s: no policy or no argument given", what);
    if (atomic_load(&p->frozen))
        return fy_fail(FERRY_EINVAL, "%s %s: the policy is already in use by a journal; its rules are fixed",
                       what, arg);
    return FERRY_OK;
}

/* Splits a path into unescaped segments (see fy_policy.h). */
static ferry_err parse_path(const char *what, const char *path, rule *r)
{
    size_t len = strlen(path), nseg = 1;
    for (size_t i = 0; i < len; i++) {
        if (path[i] == '\\')
            i++;
        else if (path[i] == '.')
            nseg++;
    }
    if (nseg > FY_MAX_JSON_DEPTH)
        return fy_fail(FERRY_EINVAL, "%s %s: deeper than %u keys", what, path, FY_MAX_JSON_DEPTH);
    seg *segs = calloc(nseg, sizeof *segs);
    char *tmp = malloc(len + 1);
    ferry_err e = FERRY_OK;
    if (!segs || !tmp) {
        free(segs);
        free(tmp);
        return fy_fail(FERRY_ENOMEM, "out of memory");
    }
    size_t n = 0, o = 0;
    int escaped_star = 0;
    for (size_t i = 0; i <= len && !e; i++) {
        char ch = path[i];
        if (ch == '\\') {
            char nx = path[i + 1];
            if (nx != '.' && nx != '\\' && nx != '*') {
                e = fy_fail(FERRY_EINVAL, "%s %s: at character %zu: '\\' must be followed by '.', '\\' or '*'",
                            what, path, i + 1);
                break;
            }
            escaped_star |= nx == '*';
            tmp[o++] = nx;
            i++;
            continue;
        }
        if (ch != '.' && ch != '\0') {
            tmp[o++] = ch;
            continue;
        }
        if (o == 0) {
            e = fy_fail(FERRY_EINVAL, "%s %s: empty key at character %zu", what, path, i + 1);
            break;
        }
        int wild = o == 1 && tmp[0] == '*' && !escaped_star;
        if (!wild && !(segs[n].name = strndup(tmp, o)))
            e = fy_fail(FERRY_ENOMEM, "out of memory");
        n++;
        o = 0;
        escaped_star = 0;
    }
    free(tmp);
    int side = -1;
    for (int s = 0; !e && s < N_SIDES; s++)
        if (segs[0].name && !strcmp(segs[0].name, side_names[s]))
            side = s;
    if (!e && side < 0)
        e = fy_fail(FERRY_EINVAL, "%s %s: must start with event_properties or user_properties", what, path);
    if (e) {
        for (size_t i = 0; i < nseg; i++)
            free(segs[i].name);
        free(segs);
        return e;
    }
    free(segs[0].name);
    memmove(segs, segs + 1, (nseg - 1) * sizeof *segs);
    r->segs = segs;
    r->nseg = nseg - 1;
    r->side = side;
    return FERRY_OK;
}

static ferry_err add_rule(fy_policy *p, const char *what, const char *path, int allow)
{
    ferry_err e = check_open(p, what, path);
    if (e)
        return e;
    if (p->nrules == p->rules_cap) {
        size_t cap = p->rules_cap ? p->rules_cap * 2 : 8;
        rule *nr = realloc(p->rules, cap * sizeof *nr);
        if (!nr)
            return fy_fail(FERRY_ENOMEM, "out of memory");
        p->rules = nr;
        p->rules_cap = cap;
    }
    rule r = {NULL, 0, 0, allow};
    if ((e = parse_path(what, path, &r)))
        return e;
    p->rules[p->nrules++] = r;
    if (r.nseg > p->max_seg)
        p->max_seg = r.nseg;
    if (allow)
        p->has_allow[r.side] = 1;
    return FERRY_OK;
}

ferry_err fy_policy_allow(fy_policy *p, const char *path) { return add_rule(p, "allow path", path, 1); }

ferry_err fy_policy_deny(fy_policy *p, const char *path) { return add_rule(p, "deny path", path, 0); }

ferry_err fy_policy_redact(fy_policy *p, const char *regex)
{
    ferry_err e = check_open(p, "redact regex", regex);
    if (e)
        return e;
    if (p->nre == p->re_cap) {
        size_t cap = p->re_cap ? p->re_cap * 2 : 4;
        regex_t *nr = realloc(p->re, cap * sizeof *nr);
        if (!nr)
            return fy_fail(FERRY_ENOMEM, "out of memory");
        p->re = nr;
        p->re_cap = cap;
    }
    regex_t *re = &p->re[p->nre];
    int rc = regcomp(re, regex, REG_EXTENDED);
    if (rc) {
        char msg[256];
        regerror(rc, re, msg, sizeof msg);
        return fy_fail(rc == REG_ESPACE ? FERRY_ENOMEM : FERRY_EINVAL, "redact regex '%s': %s", regex, msg);
    }
    /* Would replace "nothing" everywhere: certainly not what was meant. */
    if (regexec(re, "", 0, NULL, 0) == 0) {
        regfree(re);
        return fy_fail(FERRY_EINVAL, "redact regex '%s': matches the empty string", regex);
    }
    p->nre++;
    return FERRY_OK;
}

/* ---- applying ---------------------------------------------------------- */

typedef struct next_match {
    int state; /* 0: unknown, 1: [so, eo) is the next match, 2: none left */
    size_t so, eo;
} next_match;

typedef struct walk {
    const fy_policy *p;
    fy_policy_counts *c;
    size_t *scratch;  /* per path depth d: rule indices at [d * 2 * nrules] */
    fy_buf out;       /* redaction output, capped at a record's size */
    next_match *next; /* per pattern */
} walk;

/* A redacted value outgrew the record limit: the event cannot be stored. */
static ferry_err grown(ferry_err e)
{
    if (e != FERRY_ETOOBIG)
        return e;
    return fy_fail(FERRY_ETOOBIG, "event too large: a redacted property value exceeds %u bytes",
                   FY_MAX_RECORD_BYTES);
}

static int seg_match(const seg *s, const char *key) { return !s->name || !strcmp(s->name, key); }

static ferry_err filter_value(walk *w, json_t *v, size_t depth, const size_t *allow, size_t na,
                              const size_t *deny, size_t nd, int amode, int *drop);

/* Filters an object whose keys sit at path depth `depth`: `allow`/`deny` are
 * the rules whose segments so far matched; amode: an allow-list applies here. */
static ferry_err filter_object(walk *w, json_t *obj, size_t depth, const size_t *allow, size_t na,
                               const size_t *deny, size_t nd, int amode)
{
    const rule *rules = w->p->rules;
    size_t *next = w->scratch + (depth + 1) * 2 * w->p->nrules;
    const char *key;
    json_t *v;
    void *tmp;
    json_object_foreach_safe(obj, tmp, key, v) {
        int gone = 0, whole = 0;
        size_t nd2 = 0, na2 = 0;
        for (size_t i = 0; i < nd && !gone; i++) {
            const rule *r = &rules[deny[i]];
            if (seg_match(&r->segs[depth], key)) {
                if (depth + 1 == r->nseg)
                    gone = 1;
                else
                    next[nd2++] = deny[i];
            }
        }
        size_t *next_allow = next + nd2;
        for (size_t i = 0; i < na && !gone && !whole; i++) {
            const rule *r = &rules[allow[i]];
            if (seg_match(&r->segs[depth], key)) {
                if (depth + 1 == r->nseg)
                    whole = 1;
                else
                    next_allow[na2++] = allow[i];
            }
        }
        int child_amode = amode && !whole;
        if (!gone && amode && !whole && na2 == 0)
            gone = 1; /* on no allowed path */
        if (!gone && (child_amode || nd2)) {
            ferry_err e = filter_value(w, v, depth + 1, next_allow, child_amode ? na2 : 0, next, nd2,
                                       child_amode, &gone);
            if (e)
                return e;
        }
        if (gone) {
            json_object_del(obj, key);
            w->c->dropped++;
        }
    }
    return FERRY_OK;
}

/* *drop: the value itself is not allowed (a leaf where an allow path goes on). */
static ferry_err filter_value(walk *w, json_t *v, size_t depth, const size_t *allow, size_t na,
                              const size_t *deny, size_t nd, int amode, int *drop)
{
    *drop = 0;
    if (json_is_object(v))
        return filter_object(w, v, depth, allow, na, deny, nd, amode);
    if (json_is_array(v)) {
        for (size_t i = 0; i < json_array_size(v);) {
            int gone;
            ferry_err e = filter_value(w, json_array_get(v, i), depth, allow, na, deny, nd, amode, &gone);
            if (e)
                return e;
            if (gone) {
                json_array_remove(v, i);
                w->c->dropped++;
            } else {
                i++;
            }
        }
        return FERRY_OK;
    }
    *drop = amode;
    return FERRY_OK;
}

/* Widens [*so, *eo) of s (length n) to whole UTF-8 characters. */
static void widen(const char *s, size_t n, size_t lo, size_t *so, size_t *eo)
{
    while (*so > lo && ((unsigned char)s[*so] & 0xC0) == 0x80)
        (*so)--;
    while (*eo < n && ((unsigned char)s[*eo] & 0xC0) == 0x80)
        (*eo)++;
}

/* Redacts every match in one string value. Strings never hold NUL here (the
 * JSON parser refuses \u0000, C strings cannot hold it), so regexec sees the
 * whole value. Each pattern's next match is remembered until passed: without
 * that a pattern matching rarely would rescan the rest of a long value once
 * per match of another. */
static ferry_err redact_string(walk *w, json_t *v)
{
    const fy_policy *p = w->p;
    const char *s = json_string_value(v);
    size_t n = strlen(s), pos = 0, copied = 0;
    int changed = 0;
    fy_buf_reset(&w->out);
    for (size_t i = 0; i < p->nre; i++)
        w->next[i].state = 0;
    while (pos < n) {
        size_t best_so = n, best_eo = n;
        int found = 0;
        for (size_t i = 0; i < p->nre; i++) {
            next_match *nm = &w->next[i];
            if (nm->state == 1 && nm->so < pos)
                nm->state = 0; /* passed (or inside a replacement): look again */
            if (nm->state == 0) {
                regmatch_t m;
                if (regexec(&p->re[i], s + pos, 1, &m, pos ? REG_NOTBOL : 0) != 0) {
                    nm->state = 2;
                } else {
                    nm->state = 1;
                    nm->so = pos + (size_t)m.rm_so;
                    nm->eo = pos + (size_t)m.rm_eo;
                }
            }
            if (nm->state == 1 && (!found || nm->so < best_so || (nm->so == best_so && nm->eo > best_eo)))
                best_so = nm->so, best_eo = nm->eo, found = 1;
        }
        if (!found)
            break;
        if (best_eo == best_so) { /* an empty match (\b, \<): nothing to hide here */
            size_t k = best_so + 1;
            while (k < n && ((unsigned char)s[k] & 0xC0) == 0x80)
                k++;
            pos = k;
            continue;
        }
        widen(s, n, copied, &best_so, &best_eo);
        ferry_err e;
        if ((e = fy_buf_append(&w->out, s + copied, best_so - copied)) || (e = fy_buf_puts(&w->out, FY_REDACTED)))
            return grown(e);
        copied = pos = best_eo;
        changed = 1;
    }
    if (!changed)
        return FERRY_OK;
    ferry_err e = fy_buf_append(&w->out, s + copied, n - copied);
    if (e)
        return grown(e);
    if (json_string_setn(v, w->out.data, w->out.len))
        return fy_fail(FERRY_ENOMEM, "out of memory");
    w->c->redacted++;
    return FERRY_OK;
}

static ferry_err redact_value(walk *w, json_t *v)
{
    ferry_err e = FERRY_OK;
    if (json_is_string(v))
        return redact_string(w, v);
    if (json_is_object(v)) {
        const char *key;
        json_t *x;
        json_object_foreach(v, key, x) {
            if ((e = redact_value(w, x)))
                return e;
        }
    } else if (json_is_array(v)) {
        for (size_t i = 0; i < json_array_size(v) && !e; i++)
            e = redact_value(w, json_array_get(v, i));
    }
    return e;
}

ferry_err fy_policy_apply(const fy_policy *p, json_t *event, fy_policy_counts *c)
{
    if (fy_policy_empty(p))
        return FERRY_OK;
    walk w = {p, c, NULL, {0}, NULL};
    fy_buf_init(&w.out, FY_MAX_RECORD_BYTES);
    ferry_err e = FERRY_OK;
    if ((p->nrules && !(w.scratch = malloc((p->max_seg + 1) * 2 * p->nrules * sizeof *w.scratch))) ||
        (p->nre && !(w.next = malloc(p->nre * sizeof *w.next)))) {
        free(w.scratch);
        return fy_fail(FERRY_ENOMEM, "out of memory");
    }
    for (int s = 0; s < N_SIDES && !e; s++) {
        json_t *obj = json_object_get(event, side_names[s]);
        if (!obj)
            continue;
        /* Rules at depth 0 of this side: the side as a whole, or its keys. */
        size_t *allow = w.scratch, *deny, na = 0, nd = 0;
        int side_denied = 0, side_allowed = 0;
        for (size_t i = 0; i < p->nrules; i++) {
            const rule *r = &p->rules[i];
            if (r->side != s || r->allow)
                continue;
            side_denied |= r->nseg == 0;
            w.scratch[nd++] = i;
        }
        deny = w.scratch;
        allow = w.scratch + nd;
        for (size_t i = 0; i < p->nrules; i++) {
            const rule *r = &p->rules[i];
            if (r->side != s || !r->allow)
                continue;
            side_allowed |= r->nseg == 0;
            allow[na++] = i;
        }
        if (side_denied) {
            c->dropped += json_is_object(obj) ? json_object_size(obj) : 1u;
            json_object_del(event, side_names[s]);
            continue;
        }
        if (!json_is_object(obj))
            continue; /* not an event fy_record_encode accepts */
        int amode = p->has_allow[s] && !side_allowed;
        if (amode || nd)
            e = filter_object(&w, obj, 0, allow, amode ? na : 0, deny, nd, amode);
        if (!e && p->nre)
            e = redact_value(&w, obj);
    }
    free(w.scratch);
    free(w.next);
    fy_buf_free(&w.out);
    return e;
}

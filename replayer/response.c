/* response.c: what an Amplitude answer means for the events we sent
 * (shared/reference/amplitude-api.md, section 2). */
#include "rp.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void rp_verdict_free(rp_verdict *v)
{
    for (size_t i = 0; v->reasons && i < v->n_events; i++)
        free(v->reasons[i]);
    free(v->reasons);
    for (size_t i = 0; i < v->n_throttled; i++)
        free(v->throttled_ids[i]);
    free(v->throttled_ids);
    memset(v, 0, sizeof *v);
}

/* Marks the events whose indexes are listed under `field` (array, or object
 * of arrays keyed by the offending field name) as rejected. */
static size_t mark_indexes(rp_verdict *v, const json_t *list, const char *why, const char *field)
{
    size_t marked = 0, i;
    json_t *idx;
    if (json_is_object(list)) {
        const char *key;
        json_t *arr;
        json_object_foreach((json_t *)(uintptr_t)list, key, arr) marked += mark_indexes(v, arr, why, key);
        return marked;
    }
    if (!json_is_array(list))
        return 0;
    json_array_foreach(list, i, idx) {
        if (!json_is_integer(idx) || json_integer_value(idx) < 0 ||
            (size_t)json_integer_value(idx) >= v->n_events)
            continue;
        size_t k = (size_t)json_integer_value(idx);
        if (v->reasons[k])
            continue;
        char buf[200];
        snprintf(buf, sizeof buf, field ? "%s: %s" : "%s", why, field);
        v->reasons[k] = strdup(buf);
        marked += v->reasons[k] != NULL;
    }
    return marked;
}

static void add_ids(rp_verdict *v, const json_t *obj, const char *prefix)
{
    const char *key;
    json_t *val;
    if (!json_is_object(obj))
        return;
    json_object_foreach((json_t *)(uintptr_t)obj, key, val) {
        char **p = realloc(v->throttled_ids, (v->n_throttled + 1) * sizeof *p);
        if (!p)
            return;
        v->throttled_ids = p;
        size_t n = strlen(prefix) + strlen(key) + 1;
        char *id = malloc(n);
        if (!id)
            return;
        snprintf(id, n, "%s%s", prefix, key);
        v->throttled_ids[v->n_throttled++] = id;
    }
}

static const char *error_text(const json_t *root)
{
    const char *e = json_string_value(json_object_get(root, "error"));
    return e ? e : "";
}

static void classify_400(const json_t *root, rp_verdict *v)
{
    const char *err = error_text(root);
    const json_t *missing = json_object_get(root, "missing_field");
    static const char *const request_level[] = {"Invalid API key", "Invalid request path", "Missing request body",
                                                "Invalid JSON request body", "Request missing required field"};
    for (size_t i = 0; i < sizeof request_level / sizeof request_level[0]; i++)
        if (!strncmp(err, request_level[i], strlen(request_level[i])))
            goto config;
    if (missing && !json_is_null(missing))
        goto config;
    v->reasons = calloc(v->n_events ? v->n_events : 1, sizeof *v->reasons);
    if (!v->reasons) {
        v->kind = RP_RETRY;
        return;
    }
    size_t marked = mark_indexes(v, json_object_get(root, "events_with_invalid_fields"), "invalid field", NULL) +
                    mark_indexes(v, json_object_get(root, "events_with_missing_fields"), "missing field", NULL) +
                    mark_indexes(v, json_object_get(root, "events_with_invalid_id_lengths"), "id too short", NULL) +
                    mark_indexes(v, json_object_get(root, "silenced_events"), "device silenced as spam", NULL);
    /* A 400 that names no event (a proxy's, say) is not proof that any
     * event is bad: retry it rather than throw events away. */
    v->kind = marked ? RP_REJECTED : RP_RETRY;
    return;
config:
    v->kind = RP_CONFIG;
    if (missing && json_is_string(missing))
        snprintf(v->message, sizeof v->message, "400 %s (missing field %s)", err, json_string_value(missing));
}

void rp_classify(const rp_response *r, size_t n_events, rp_verdict *v)
{
    memset(v, 0, sizeof *v);
    v->n_events = n_events;
    v->wait_s = r->retry_after_s;
    if (r->transport_error && r->tls_untrusted) {
        v->kind = RP_CONFIG;
        snprintf(v->message, sizeof v->message, "TLS: %.180s (the endpoint's certificate is not trusted: give its "
                 "CA with --cacert FILE, check the host name and the clock)", r->error);
        return;
    }
    if (r->transport_error) {
        v->kind = RP_RETRY;
        snprintf(v->message, sizeof v->message, "no answer: %s", r->error);
        return;
    }
    json_t *root = NULL;
    if (r->body.len) {
        json_error_t jerr;
        root = json_loadb(r->body.data, r->body.len, 0, &jerr);
        if (!root && (!jerr.text[0] || json_error_code(&jerr) == json_error_out_of_memory)) {
            /* Out of memory (jansson: no message, or this code), not a wrong
             * answer: send again later. */
            v->kind = RP_RETRY;
            snprintf(v->message, sizeof v->message, "HTTP %ld: out of memory reading the answer", r->status);
            return;
        }
        if (root && !json_is_object(root)) {
            json_decref(root);
            root = NULL;
        }
    }
    snprintf(v->message, sizeof v->message, "HTTP %ld %s", r->status, root ? error_text(root) : "");
    long st = r->status;
    if (st == 200) {
        /* Only Amplitude's own answer counts: a captive portal or proxy
         * answering 200 with a web page must not make events vanish. */
        const json_t *code = root ? json_object_get(root, "code") : NULL;
        int ok = root && (json_integer_value(code) == 200 || json_object_get(root, "events_ingested"));
        v->kind = ok ? RP_OK : RP_RETRY;
        if (!ok)
            snprintf(v->message, sizeof v->message, "HTTP 200 without Amplitude's answer (a proxy or captive portal?)");
    } else if (st == 400 && root) {
        classify_400(root, v);
    } else if (st == 400 || st == 401 || st == 403 || st == 404 || st == 405) {
        v->kind = RP_CONFIG;
        if (st == 403)
            snprintf(v->message, sizeof v->message, "HTTP 403 Forbidden: blocked by the endpoint's firewall or region");
    } else if (st == 413) {
        v->kind = RP_TOO_LARGE;
    } else if (st == 415) {
        v->kind = RP_GZIP_REFUSED;
    } else if (st == 429) {
        v->kind = RP_THROTTLED;
        if (root) {
            add_ids(v, json_object_get(root, "throttled_devices"), "");
            add_ids(v, json_object_get(root, "throttled_users"), "user:");
            size_t before = v->n_throttled;
            add_ids(v, json_object_get(root, "exceeded_daily_quota_devices"), "");
            add_ids(v, json_object_get(root, "exceeded_daily_quota_users"), "user:");
            v->daily_quota = v->n_throttled > before;
        }
    } else {
        v->kind = RP_RETRY; /* 408, 5xx, anything unknown: same events, same ids, later */
    }
    json_decref(root);
}

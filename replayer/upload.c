/* upload.c: POSTing request bodies with one reused libcurl handle. */
#include "rp.h"

#include <curl/curl.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <zlib.h>

#define RP_MAX_RESPONSE (256u * 1024u) /* Amplitude's answers are small */

volatile sig_atomic_t rp_stop;

struct rp_http {
    CURL *curl;
    struct curl_slist *plain_headers, *gzip_headers;
    z_stream z;  /* one compressor for the process: its state is 256 KB */
    int z_ready;
    fy_buf gz;
    char errbuf[CURL_ERROR_SIZE];
    int64_t stop_seen_ms; /* when a stop request met this transfer's complete upload */
};

int64_t rp_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int rp_sleep_ms(int64_t ms)
{
    int64_t end = rp_now_ms() + ms;
    while (!rp_stop) {
        int64_t left = end - rp_now_ms();
        if (left <= 0)
            return 0;
        if (left > 100)
            left = 100; /* wake up often enough to stop within a second */
        struct timespec ts = {0, (long)left * 1000000L};
        nanosleep(&ts, NULL);
    }
    return 1;
}

static size_t on_body(char *p, size_t size, size_t n, void *ud)
{
    fy_buf *b = ud;
    size_t len = size * n;
    size_t room = b->len < RP_MAX_RESPONSE ? RP_MAX_RESPONSE - b->len : 0;
    size_t take = len < room ? len : room; /* beyond the cap: read and drop */
    if (take && fy_buf_append(b, p, take))
        return 0;
    return len;
}

/* How long a stop request waits for the answer to a request already
 * uploaded: the destination may be ingesting it, and an answer then saves
 * a resend and, for events evicted meanwhile, a loss report of events that
 * arrived (FORMAT.md, gaps, "In flight"). Keeps "stops within a second". */
#define RP_STOP_GRACE_MS 800

/* Aborts a transfer in flight when we are asked to stop: at once while
 * uploading, after RP_STOP_GRACE_MS while waiting for the answer. */
static int on_progress(void *ud, curl_off_t dlt, curl_off_t dln, curl_off_t ult, curl_off_t uln)
{
    rp_http *h = ud;
    (void)dlt, (void)dln;
    if (!rp_stop)
        return 0;
    if (ult <= 0 || uln < ult)
        return 1;
    int64_t now = rp_now_ms();
    if (!h->stop_seen_ms)
        h->stop_seen_ms = now;
    return now - h->stop_seen_ms >= RP_STOP_GRACE_MS;
}

/* Plain HTTP beyond this machine carries the API key (in the body, as
 * Amplitude wants it) and the events in clear: allowed (a local proxy or
 * test sink), but said loudly. */
static void warn_cleartext(const char *url)
{
    if (strncasecmp(url, "http://", 7) != 0)
        return;
    const char *h = url + 7;
    size_t n = strcspn(h, "/?#");
    if ((n >= 4 && !strncmp(h, "127.", 4)) || (n >= 9 && !strncasecmp(h, "localhost", 9) &&
                                                (n == 9 || h[9] == ':')) ||
        (n >= 5 && !strncmp(h, "[::1]", 5)))
        return;
    fprintf(stderr, "ferry-replay: WARNING: %.*s is plain HTTP: the API key and the events cross the network "
            "unencrypted; use https://\n", (int)(n + 7 < 200 ? n + 7 : 200), url);
}

rp_http *rp_http_new(const char *url, double timeout_s, const char *ca_file)
{
    warn_cleartext(url);
    rp_http *h = calloc(1, sizeof *h);
    if (!h)
        return NULL;
    fy_buf_init(&h->gz, 0);
    h->curl = curl_easy_init();
    if (!h->curl) {
        free(h);
        return NULL;
    }
    struct curl_slist *p = NULL, *g = NULL;
    p = curl_slist_append(p, "Content-Type: application/json");
    p = curl_slist_append(p, "Expect:"); /* no 100-continue round trip */
    g = curl_slist_append(g, "Content-Type: application/json");
    g = curl_slist_append(g, "Content-Encoding: gzip");
    g = curl_slist_append(g, "Expect:");
    h->plain_headers = p;
    h->gzip_headers = g;
    long total_ms = (long)(timeout_s * 1000.0);
    long connect_ms = total_ms < 10000 ? total_ms : 10000;
    long low_speed_s = (long)timeout_s < 30 ? ((long)timeout_s > 0 ? (long)timeout_s : 1) : 30;
    CURL *c = h->curl;
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, connect_ms);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, total_ms);
    curl_easy_setopt(c, CURLOPT_LOW_SPEED_LIMIT, 1L);
    curl_easy_setopt(c, CURLOPT_LOW_SPEED_TIME, low_speed_s);
    curl_easy_setopt(c, CURLOPT_TCP_KEEPALIVE, 1L);
    curl_easy_setopt(c, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_1_1);
    curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(c, CURLOPT_SSL_VERIFYPEER, 1L); /* the defaults, stated: never turned off */
    curl_easy_setopt(c, CURLOPT_SSL_VERIFYHOST, 2L);
    if (ca_file)
        curl_easy_setopt(c, CURLOPT_CAINFO, ca_file);
    curl_easy_setopt(c, CURLOPT_USERAGENT, "ferry-replay/" FERRY_VERSION_STRING);
    curl_easy_setopt(c, CURLOPT_ACCEPT_ENCODING, "");
    curl_easy_setopt(c, CURLOPT_ERRORBUFFER, h->errbuf);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_XFERINFOFUNCTION, on_progress);
    curl_easy_setopt(c, CURLOPT_XFERINFODATA, h);
    curl_easy_setopt(c, CURLOPT_NOPROGRESS, 0L);
    curl_easy_setopt(c, CURLOPT_POST, 1L);
    return h;
}

void rp_http_free(rp_http *h)
{
    if (!h)
        return;
    curl_easy_cleanup(h->curl);
    curl_slist_free_all(h->plain_headers);
    curl_slist_free_all(h->gzip_headers);
    if (h->z_ready)
        deflateEnd(&h->z);
    fy_buf_free(&h->gz);
    free(h);
}

void rp_response_init(rp_response *r)
{
    memset(r, 0, sizeof *r);
    fy_buf_init(&r->body, RP_MAX_RESPONSE);
}

void rp_response_free(rp_response *r) { fy_buf_free(&r->body); }

static int gzip_into(rp_http *h, const char *in, size_t len)
{
    z_stream *z = &h->z;
    if (!h->z_ready) {
        memset(z, 0, sizeof *z);
        if (deflateInit2(z, Z_DEFAULT_COMPRESSION, Z_DEFLATED, 15 + 16 /* gzip wrapper */, 8,
                         Z_DEFAULT_STRATEGY) != Z_OK)
            return -1;
        h->z_ready = 1;
    } else if (deflateReset(z) != Z_OK) {
        return -1;
    }
    uLong bound = deflateBound(z, (uLong)len);
    fy_buf_reset(&h->gz);
    if (fy_buf_reserve(&h->gz, bound))
        return -1;
    z->next_in = (Bytef *)(uintptr_t)in;
    z->avail_in = (uInt)len;
    z->next_out = (Bytef *)h->gz.data;
    z->avail_out = (uInt)bound;
    int rc = deflate(z, Z_FINISH);
    h->gz.len = z->total_out;
    return rc == Z_STREAM_END ? 0 : -1;
}

void rp_http_post(rp_http *h, const char *body, size_t len, int gzip, rp_response *r, size_t *wire_bytes)
{
    fy_buf_reset(&r->body);
    r->status = 0;
    r->transport_error = 0;
    r->tls_untrusted = 0;
    r->sent = 0;
    r->error[0] = '\0';
    r->retry_after_s = 0;
    h->errbuf[0] = '\0';
    h->stop_seen_ms = 0;
    if (gzip && gzip_into(h, body, len) == 0) {
        body = h->gz.data;
        len = h->gz.len;
        curl_easy_setopt(h->curl, CURLOPT_HTTPHEADER, h->gzip_headers);
    } else {
        curl_easy_setopt(h->curl, CURLOPT_HTTPHEADER, h->plain_headers);
    }
    *wire_bytes = len;
    curl_easy_setopt(h->curl, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(h->curl, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len); /* bodies may hold NULs */
    curl_easy_setopt(h->curl, CURLOPT_WRITEDATA, &r->body);
    CURLcode rc = curl_easy_perform(h->curl);
    curl_easy_getinfo(h->curl, CURLINFO_RESPONSE_CODE, &r->status);
    long request_bytes = 0; /* 0: refused, unresolved, TLS failed: nothing left this machine */
    curl_easy_getinfo(h->curl, CURLINFO_REQUEST_SIZE, &request_bytes);
    r->sent = request_bytes > 0;
    if (rc != CURLE_OK) {
        r->transport_error = 1;
        /* Verification failures are configuration, not weather: retrying
         * cannot help, and verification is never turned off. */
        r->tls_untrusted = rc == CURLE_PEER_FAILED_VERIFICATION || rc == CURLE_SSL_CACERT_BADFILE ||
                           rc == CURLE_SSL_CERTPROBLEM || rc == CURLE_SSL_ISSUER_ERROR ||
                           rc == CURLE_SSL_PINNEDPUBKEYNOTMATCH;
        r->status = 0; /* a partial answer is no answer */
        snprintf(r->error, sizeof r->error, "%s", h->errbuf[0] ? h->errbuf : curl_easy_strerror(rc));
        return;
    }
    curl_off_t ra = 0;
    if (curl_easy_getinfo(h->curl, CURLINFO_RETRY_AFTER, &ra) == CURLE_OK && ra > 0)
        r->retry_after_s = ra > 3600 ? 3600 : (long)ra; /* an HTTP-date far ahead is clamped */
}

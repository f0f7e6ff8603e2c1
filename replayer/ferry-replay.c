/* ferry-replay: deliver a ferry journal to Amplitude, exactly once. */
#include "replay.h"
#include "rp.h"
#include "fy_cli.h"

#include <curl/curl.h>
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define PROG "ferry-replay"
#define US_HOST "https://api2.amplitude.com"
#define EU_HOST "https://api.eu.amplitude.com"

static void usage(FILE *f)
{
    fprintf(f,
"Usage: " PROG " [-j DIR] (--once | --follow) [--endpoint URL | --eu] [--batch-api]\n"
"                    [--api-key-file FILE] [--timeout SECONDS] [--max-retry-delay SECONDS]\n"
"                    [--retry-for SECONDS] [--sink NAME] [--progress] [--json]\n"
"\n"
"Deliver the events of a ferry journal to Amplitude, each exactly once: the\n"
"cursor moves only after Amplitude acknowledged, and resends carry the same\n"
"insert_id, which Amplitude deduplicates (for 7 days).\n"
"\n"
"  --once                   deliver everything pending, then exit (0: nothing pending)\n"
"  --follow                 run as a daemon: send new events within a second; survive\n"
"                           any offline period; stop on SIGTERM/SIGINT\n"
"  --endpoint URL           where to send (default " US_HOST "/2/httpapi); a URL\n"
"                           without a path gets /2/httpapi (or /batch)\n"
"  --eu                     Amplitude's EU residency endpoint (" EU_HOST ")\n"
"  --batch-api              the Batch API (/batch): 1,000 events/s per device instead of\n"
"                           30; better for long backlogs (a device back after weeks)\n"
"  --api-key-file FILE      the project's API key (else $FERRY_API_KEY; never an argument)\n"
"  --timeout SECONDS        per request (default 30)\n"
"  --max-retry-delay SECONDS  backoff cap while the endpoint is unreachable (default 300)\n"
"  --retry-for SECONDS      --once: give up after this long without success (default 60)\n"
"  --sink NAME              the destination's cursor name (default amplitude)\n"
"  --device-rate N          events/s per device (default 25; 800 with --batch-api;\n"
"                           0: no pacing), under Amplitude's per-device limit\n"
"  --max-events N           events per request (default and maximum 2000)\n"
"  --throttle-wait SECONDS  least pause of a device after a 429 (default 30, as\n"
"                           Amplitude asks; Retry-After wins when longer)\n"
"  --no-gzip                send uncompressed bodies (gzip is used by default)\n"
"  --keep-delivered         keep delivered events for forensics until space is needed\n"
"  --cacert FILE            trust this CA bundle too (TLS is always verified)\n"
"  --progress               a progress line on stderr (on a terminal)\n"
"  --json                   a JSON summary on stdout at exit\n"
"  -j, --journal DIR        journal directory (default: $FERRY_JOURNAL, else\n"
"                           /var/lib/ferry/journal as root, else ~/.local/state/ferry/journal)\n"
"  -h, --help, -V, --version\n"
"\n"
"Exit codes: 0 nothing pending, 64 usage, 65 the journal's pages are damaged\n"
"(run ferry-journal salvage), 66 no journal, 74 journal I/O error,\n"
"75 events still pending (endpoint unreachable for --retry-for, or stopped),\n"
"78 the endpoint refused the configuration (API key, path, region) or its TLS\n"
"certificate is not trusted (--cacert): nothing moved.\n"
"Proxies: libcurl's https_proxy / no_proxy environment variables are honoured.\n");
}

static int usage_error(const char *msg, const char *arg)
{
    return fy_cli_usage_error(PROG, "%s%s", msg, arg ? arg : "");
}

static void on_signal(int sig)
{
    (void)sig;
    rp_stop = 1;
}

static int parse_seconds(const char *s, double *out)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || *end || v < 0 || v > 1e7)
        return -1;
    *out = v;
    return 0;
}

static int sink_name_ok(const char *s)
{
    if (!*s || strlen(s) > 64)
        return 0;
    for (; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') ||
              *s == '-' || *s == '_' || *s == '.'))
            return 0;
    return 1;
}

/* The API key: from the file, else $FERRY_API_KEY; trailing whitespace cut. */
static int load_api_key(const char *file, char *out, size_t n)
{
    size_t len = 0;
    if (file) {
        FILE *f = fopen(file, "r");
        if (!f) {
            fprintf(stderr, PROG ": --api-key-file %s: %s\n", file, strerror(errno));
            return -1;
        }
        len = fread(out, 1, n - 1, f);
        int overflow = len == n - 1 && fgetc(f) != EOF;
        fclose(f);
        if (overflow) {
            fprintf(stderr, PROG ": --api-key-file %s: too long for an API key\n", file);
            return -1;
        }
    } else {
        const char *env = getenv("FERRY_API_KEY");
        if (!env || !*env) {
            fprintf(stderr, PROG ": no API key: use --api-key-file FILE or set FERRY_API_KEY\n");
            return -1;
        }
        len = strlen(env) < n - 1 ? strlen(env) : n - 1;
        memcpy(out, env, len);
    }
    while (len && (out[len - 1] == '\n' || out[len - 1] == '\r' || out[len - 1] == ' ' || out[len - 1] == '\t'))
        len--;
    out[len] = '\0';
    for (size_t i = 0; i < len; i++)
        if ((unsigned char)out[i] < 0x20 || out[i] == '"' || out[i] == '\\') {
            fprintf(stderr, PROG ": the API key%s%s contains characters an API key cannot have\n",
                    file ? " in " : "", file ? file : "");
            return -1;
        }
    if (!len) {
        fprintf(stderr, PROG ": the API key%s%s is empty\n", file ? " in " : "", file ? file : "");
        return -1;
    }
    return 0;
}

/* The endpoint URL: a URL without a path gets the API's path. */
static char *endpoint_url(const char *given, int eu, int batch)
{
    const char *path = batch ? "/batch" : "/2/httpapi";
    const char *base = given ? given : eu ? EU_HOST : US_HOST;
    CURLU *u = curl_url();
    char *p = NULL, *full = NULL;
    if (!u || curl_url_set(u, CURLUPART_URL, base, 0) != CURLUE_OK) {
        fprintf(stderr, PROG ": --endpoint %s: not a URL\n", base);
        curl_url_cleanup(u);
        return NULL;
    }
    char *scheme = NULL;
    curl_url_get(u, CURLUPART_SCHEME, &scheme, 0);
    int web = scheme && (!strcmp(scheme, "http") || !strcmp(scheme, "https"));
    curl_free(scheme);
    if (!web) {
        fprintf(stderr, PROG ": --endpoint %s: only http and https are supported\n", base);
        curl_url_cleanup(u);
        return NULL;
    }
    if (curl_url_get(u, CURLUPART_PATH, &p, 0) == CURLUE_OK && (!strcmp(p, "/") || !*p))
        curl_url_set(u, CURLUPART_PATH, path, 0);
    curl_free(p);
    char *s = NULL;
    if (curl_url_get(u, CURLUPART_URL, &s, 0) == CURLUE_OK) {
        full = strdup(s);
        curl_free(s);
    }
    curl_url_cleanup(u);
    return full;
}

enum { OPT_ONCE = 256, OPT_FOLLOW, OPT_ENDPOINT, OPT_EU, OPT_BATCH, OPT_KEYFILE, OPT_TIMEOUT, OPT_MAXDELAY,
       OPT_RETRYFOR, OPT_SINK, OPT_PROGRESS, OPT_JSON, OPT_RATE, OPT_MAXEVENTS, OPT_NOGZIP, OPT_KEEP,
       OPT_CACERT, OPT_THROTTLE_WAIT, OPT_KEY_ARGUMENT };

int main(int argc, char **argv)
{
    static const struct option longopts[] = {
        /* Listed so that it is refused, not taken as an abbreviation of
         * --api-key-file (whose error would print the key). */
        {"api-key", required_argument, NULL, OPT_KEY_ARGUMENT},
        {"api-key-file", required_argument, NULL, OPT_KEYFILE},
        {"batch-api", no_argument, NULL, OPT_BATCH},
        {"cacert", required_argument, NULL, OPT_CACERT},
        {"device-rate", required_argument, NULL, OPT_RATE},
        {"endpoint", required_argument, NULL, OPT_ENDPOINT},
        {"eu", no_argument, NULL, OPT_EU},
        {"follow", no_argument, NULL, OPT_FOLLOW},
        {"help", no_argument, NULL, 'h'},
        {"journal", required_argument, NULL, 'j'},
        {"json", no_argument, NULL, OPT_JSON},
        {"keep-delivered", no_argument, NULL, OPT_KEEP},
        {"max-events", required_argument, NULL, OPT_MAXEVENTS},
        {"max-retry-delay", required_argument, NULL, OPT_MAXDELAY},
        {"no-gzip", no_argument, NULL, OPT_NOGZIP},
        {"once", no_argument, NULL, OPT_ONCE},
        {"progress", no_argument, NULL, OPT_PROGRESS},
        {"retry-for", required_argument, NULL, OPT_RETRYFOR},
        {"sink", required_argument, NULL, OPT_SINK},
        {"throttle-wait", required_argument, NULL, OPT_THROTTLE_WAIT},
        {"timeout", required_argument, NULL, OPT_TIMEOUT},
        {"version", no_argument, NULL, 'V'},
        {NULL, 0, NULL, 0},
    };
    rp_config cfg = {.sink = FY_DEFAULT_SINK, .gzip = 1, .timeout_s = 30, .max_retry_delay_s = 300,
                     .retry_for_s = 60, .device_rate = -1, .throttle_wait_s = 30, .max_events = 2000};
    const char *jflag = NULL, *endpoint = NULL, *keyfile = NULL;
    int once = 0, follow = 0, eu = 0, batch = 0, c;
    while ((c = getopt_long(argc, argv, "hj:V", longopts, NULL)) != -1) {
        switch (c) {
        case 'h': usage(stdout); return EX_OK;
        case 'V': printf(PROG " %s\n", FERRY_VERSION_STRING); return EX_OK;
        case 'j': jflag = optarg; break;
        case OPT_ONCE: once = 1; break;
        case OPT_FOLLOW: follow = 1; break;
        case OPT_ENDPOINT: endpoint = optarg; break;
        case OPT_EU: eu = 1; break;
        case OPT_BATCH: batch = 1; break;
        case OPT_KEYFILE: keyfile = optarg; break;
        case OPT_KEY_ARGUMENT:
            return usage_error("the API key is never taken as an argument (it would show in ps and shell "
                               "history): use --api-key-file FILE or FERRY_API_KEY", NULL);
        case OPT_SINK:
            if (!sink_name_ok(optarg))
                return usage_error("--sink: use letters, digits, '-', '_' or '.' (at most 64): ", optarg);
            cfg.sink = optarg;
            break;
        case OPT_PROGRESS: cfg.progress = 1; break;
        case OPT_JSON: cfg.json = 1; break;
        case OPT_NOGZIP: cfg.gzip = 0; break;
        case OPT_KEEP: cfg.keep_delivered = 1; break;
        case OPT_CACERT: cfg.ca_file = optarg; break;
        case OPT_TIMEOUT:
            if (parse_seconds(optarg, &cfg.timeout_s) || cfg.timeout_s < 1)
                return usage_error("--timeout: expected seconds (at least 1): ", optarg);
            break;
        case OPT_MAXDELAY:
            if (parse_seconds(optarg, &cfg.max_retry_delay_s) || cfg.max_retry_delay_s < 0.1)
                return usage_error("--max-retry-delay: expected seconds (at least 0.1): ", optarg);
            break;
        case OPT_RETRYFOR:
            if (parse_seconds(optarg, &cfg.retry_for_s))
                return usage_error("--retry-for: expected seconds: ", optarg);
            break;
        case OPT_THROTTLE_WAIT:
            if (parse_seconds(optarg, &cfg.throttle_wait_s))
                return usage_error("--throttle-wait: expected seconds: ", optarg);
            break;
        case OPT_RATE:
            if (parse_seconds(optarg, &cfg.device_rate))
                return usage_error("--device-rate: expected events per second: ", optarg);
            break;
        case OPT_MAXEVENTS: {
            int64_t n;
            if (fy_cli_parse_i64(optarg, &n) || n < 1 || n > 2000)
                return usage_error("--max-events: expected 1 to 2000: ", optarg);
            cfg.max_events = (size_t)n;
            break;
        }
        default: return usage_error("invalid option", NULL);
        }
    }
    if (optind < argc)
        return usage_error("unexpected argument: ", argv[optind]);
    if (once == follow)
        return usage_error("say --once or --follow", NULL);
    if (endpoint && eu)
        return usage_error("--endpoint and --eu exclude each other", NULL);
    cfg.follow = follow;
    cfg.max_bytes = batch ? 20000000u : 1000000u; /* Amplitude: 1 MB (HTTP V2), 20 MB (Batch) */
    if (cfg.device_rate < 0)
        cfg.device_rate = batch ? 800 : 25;
    cfg.progress = cfg.progress && isatty(STDERR_FILENO);

    char dirbuf[4096];
    cfg.journal_dir = fy_cli_journal_dir(jflag, dirbuf, sizeof dirbuf);
    if (!cfg.journal_dir)
        return usage_error("no journal directory: pass -j DIR or set FERRY_JOURNAL", NULL);
    static char key[4096];
    if (load_api_key(keyfile, key, sizeof key))
        return EX_CONFIG;
    cfg.api_key = key;

    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        fprintf(stderr, PROG ": libcurl failed to initialise\n");
        return EX_SOFTWARE;
    }
    char *url = endpoint_url(endpoint, eu, batch);
    if (!url) {
        curl_global_cleanup();
        return EX_USAGE;
    }
    cfg.url = url;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    int code = rp_run(&cfg);
    memset(key, 0, sizeof key);
    free(url);
    curl_global_cleanup();
    return code;
}

/* ferry-replay: deliver a ferry journal to Amplitude, exactly once. */
#include "replay.h"
#include "rp.h"
#include "clock.h"
#include "fy_cli.h"
#include "fy_config.h"
#include "fy_record.h"
#include "rewrite.h"

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
#ifdef FERRY_TIME_FLOOR
#define FERRY_TIME_FLOOR_TEXT FERRY_TIME_FLOOR
#else
#define FERRY_TIME_FLOOR_TEXT "2026-11-29"
#endif

static void usage(FILE *f)
{
    fprintf(f,
"Usage: " PROG " [-j DIR] (--once | --follow) [--endpoint URL | --eu] [--batch-api]\n"
"                    [--api-key-file FILE] [--timeout SECONDS] [--max-retry-delay SECONDS]\n"
"                    [--retry-for SECONDS] [--sink NAME] [--progress] [--json]\n"
"                    [--config FILE] [--opt-out] [--check-config]\n"
"                    [--ip none|remote|pass] [--time-floor DATE] [--clock-jump SECONDS]\n"
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
"  --ip MODE                what Amplitude may geolocate: none (default: no ip and no\n"
"                           location fields are sent), remote (\"ip\":\"$remote\": the\n"
"                           uploader's address; only for a device sending its own\n"
"                           events), pass (the recorded ip and location fields)\n"
"  --time-floor DATE        recorded times before DATE are wrong (default " FERRY_TIME_FLOOR_TEXT "):\n"
"                           corrected from the monotonic clock, else flagged\n"
"  --clock-jump SECONDS     a wall-clock step within one boot larger than this marks\n"
"                           the times before it as wrong (default 10)\n"
"  --cacert FILE            trust this CA bundle too (TLS is always verified)\n");
    /* Two strings: C11 promises only 4095 characters in one. */
    fputs(
"  --progress               a progress line on stderr (on a terminal)\n"
"  --json                   a JSON summary on stdout at exit\n"
"  -j, --journal DIR        journal directory (default: $FERRY_JOURNAL, else\n"
"                           /var/lib/ferry/journal as root, else ~/.local/state/ferry/journal)\n"
"  --opt-out                send nothing, touch nothing, exit 0; so do FERRY_OPT_OUT=1\n"
"                           and [recorder] opt_out = true in the configuration file\n"
"                           (--follow checks the file again every few seconds and stops)\n"
"  --config FILE            the configuration file (default: $FERRY_CONFIG, else\n"
"                           " FY_CONFIG_DEFAULT ", if present); flags win over it\n"
"  --check-config           check the file, the environment and the flags as a run\n"
"                           would (API key present, values valid), send nothing, open\n"
"                           nothing; exit 0 or the run's exit code (78, 64)\n"
"  -h, --help, -V, --version\n"
"\n"
"Exit codes: 0 nothing pending, 64 usage, 65 the journal's pages are damaged\n"
"(run ferry-journal salvage), 66 no journal, 74 journal I/O error,\n"
"75 events still pending (endpoint unreachable for --retry-for, this boot's clock\n"
"not yet set for --retry-for, or stopped),\n"
"78 the endpoint refused the configuration (API key, path, region) or its TLS\n"
"certificate is not trusted (--cacert): nothing moved; or the API key or\n"
"configuration file cannot be read or is bad.\n"
"Proxies: libcurl's https_proxy / no_proxy environment variables are honoured.\n", f);
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

/* The configuration file's settings come in front of argv (fy_config.h). */
static fy_config config;

/* The API key: from the file, else $FERRY_API_KEY; trailing whitespace cut.
 * Messages name the file, never the key. */
static int load_api_key(const char *file, char *out, size_t n)
{
    size_t len = 0;
    if (file) {
        char origin[4200];
        const char *from = fy_config_origin(&config, file, origin, sizeof origin);
        FILE *f = fopen(file, "r");
        if (!f) {
            fprintf(stderr, PROG ": %s%s%s: %s\n", from ? from : "--api-key-file", from ? " = " : " ", file,
                    strerror(errno));
            return -1;
        }
        len = fread(out, 1, n - 1, f);
        int overflow = len == n - 1 && fgetc(f) != EOF;
        fclose(f);
        if (overflow) {
            fprintf(stderr, PROG ": %s%s%s: too long for an API key\n", from ? from : "--api-key-file",
                    from ? " = " : " ", file);
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

/* NULL if s can be an endpoint, else why not. */
static const char *endpoint_problem(const char *s)
{
    CURLU *u = curl_url();
    const char *why = NULL;
    char *scheme = NULL;
    if (!u || curl_url_set(u, CURLUPART_URL, s, 0) != CURLUE_OK)
        why = "not a URL";
    else if (curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK ||
             (strcmp(scheme, "http") && strcmp(scheme, "https")))
        why = "only http and https are supported";
    curl_free(scheme);
    curl_url_cleanup(u);
    return why;
}

/* --follow: whether the configuration file now says opt_out = true, read
 * again when it changed, at most every few seconds. */
static int follow_opted_out(void *arg)
{
    (void)arg;
    static int64_t next_ms;
    static char why[4200];
    int64_t now = rp_now_ms();
    if (now < next_ms)
        return 0;
    next_ms = now + 3000;
    if (!fy_config_file_opt_out(&config, why, sizeof why))
        return 0;
    fprintf(stderr, PROG ": opted out (%s): stopping; nothing more is sent\n", why);
    return 1;
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
       OPT_CACERT, OPT_THROTTLE_WAIT, OPT_KEY_ARGUMENT, OPT_CONFIG, OPT_OPT_OUT, OPT_IP, OPT_TIME_FLOOR,
       OPT_CLOCK_JUMP, OPT_CHECK_CONFIG };
#define SHORTOPTS "hj:V"

int main(int argc, char **argv)
{
    static const struct option longopts[] = {
        /* Listed so that it is refused, not taken as an abbreviation of
         * --api-key-file (whose error would print the key). */
        {"api-key", required_argument, NULL, OPT_KEY_ARGUMENT},
        {"api-key-file", required_argument, NULL, OPT_KEYFILE},
        {"batch-api", no_argument, NULL, OPT_BATCH},
        {"cacert", required_argument, NULL, OPT_CACERT},
        {"check-config", no_argument, NULL, OPT_CHECK_CONFIG},
        {"config", required_argument, NULL, OPT_CONFIG},
        {"clock-jump", required_argument, NULL, OPT_CLOCK_JUMP},
        {"device-rate", required_argument, NULL, OPT_RATE},
        {"endpoint", required_argument, NULL, OPT_ENDPOINT},
        {"eu", no_argument, NULL, OPT_EU},
        {"follow", no_argument, NULL, OPT_FOLLOW},
        {"help", no_argument, NULL, 'h'},
        {"ip", required_argument, NULL, OPT_IP},
        {"journal", required_argument, NULL, 'j'},
        {"json", no_argument, NULL, OPT_JSON},
        {"keep-delivered", no_argument, NULL, OPT_KEEP},
        {"max-events", required_argument, NULL, OPT_MAXEVENTS},
        {"max-retry-delay", required_argument, NULL, OPT_MAXDELAY},
        {"no-gzip", no_argument, NULL, OPT_NOGZIP},
        {"once", no_argument, NULL, OPT_ONCE},
        {"opt-out", no_argument, NULL, OPT_OPT_OUT},
        {"progress", no_argument, NULL, OPT_PROGRESS},
        {"retry-for", required_argument, NULL, OPT_RETRYFOR},
        {"sink", required_argument, NULL, OPT_SINK},
        {"throttle-wait", required_argument, NULL, OPT_THROTTLE_WAIT},
        {"time-floor", required_argument, NULL, OPT_TIME_FLOOR},
        {"timeout", required_argument, NULL, OPT_TIMEOUT},
        {"version", no_argument, NULL, 'V'},
        {NULL, 0, NULL, 0},
    };
    rp_config cfg = {.sink = FY_DEFAULT_SINK, .gzip = 1, .timeout_s = 30, .max_retry_delay_s = 300,
                     .retry_for_s = 60, .device_rate = -1, .throttle_wait_s = 30, .max_events = 2000,
                     .ip_mode = RP_IP_NONE, .time_floor_ms = rp_clock_default_floor_ms(),
                     .clock_jump_ms = RP_CLOCK_JUMP_MS};
    const char *jflag = NULL, *endpoint = NULL, *keyfile = NULL;
    int once = 0, follow = 0, eu = 0, batch = 0, opt_out = 0, check = 0, c;
    /* First of all: a SIGTERM during start-up (reading the configuration,
     * the key, TLS set-up) then stops the run cleanly instead of killing it. */
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    int code = fy_config_args(&config, PROG, FY_PROG_REPLAY, &argc, &argv, SHORTOPTS, longopts);
    if (code) {
        fy_config_free(&config);
        return code;
    }
    while ((c = fy_config_getopt(&config, argc, argv, SHORTOPTS, longopts)) != -1) {
        char origin[8];
        switch (c) {
        case OPT_CONFIG: break; /* read by fy_config_args */
        case OPT_OPT_OUT: opt_out = 1; break;
        case OPT_CHECK_CONFIG: check = 1; break;
        case 'h': usage(stdout); return EX_OK;
        case 'V': printf(PROG " %s\n", FERRY_VERSION_STRING); return EX_OK;
        case 'j': jflag = optarg; break;
        case OPT_ONCE: once = 1; break;
        case OPT_FOLLOW: follow = 1; break;
        case OPT_ENDPOINT:
            if (endpoint_problem(optarg))
                return fy_cli_usage_error(PROG, "--endpoint %s: %s", optarg, endpoint_problem(optarg));
            endpoint = optarg;
            break;
        case OPT_EU:
            if (endpoint && fy_config_origin(&config, endpoint, origin, sizeof origin))
                endpoint = NULL; /* the command line wins over the file's endpoint */
            eu = 1;
            break;
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
        case OPT_IP:
            if (!strcmp(optarg, "none"))
                cfg.ip_mode = RP_IP_NONE;
            else if (!strcmp(optarg, "remote"))
                cfg.ip_mode = RP_IP_REMOTE;
            else if (!strcmp(optarg, "pass"))
                cfg.ip_mode = RP_IP_PASS;
            else
                return usage_error("--ip: expected none, remote or pass: ", optarg);
            break;
        case OPT_TIME_FLOOR:
            if (fy_cli_parse_time(optarg, fy_now_ms(), &cfg.time_floor_ms))
                return usage_error("--time-floor: expected a date (2026-11-29, ISO 8601) or ms since the "
                                   "epoch: ", optarg);
            break;
        case OPT_CLOCK_JUMP: {
            double s_;
            if (parse_seconds(optarg, &s_) || s_ < 1)
                return usage_error("--clock-jump: expected seconds (at least 1): ", optarg);
            cfg.clock_jump_ms = (int64_t)(s_ * 1000.0);
            break;
        }
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
    if (once && follow)
        return usage_error("--once and --follow exclude each other", NULL);
    if (!once && !follow && !check)
        return usage_error("say --once or --follow", NULL);
    if (endpoint && eu)
        return usage_error("--endpoint and --eu exclude each other", NULL);
    /* Opt-out: nothing is sent and nothing is opened, not even the journal. */
    char why[4200];
    if (fy_config_opt_out(&config, why, sizeof why) || (opt_out && snprintf(why, sizeof why, "--opt-out"))) {
        if (check) {
            fy_config_check_ok(&config, opt_out, "sends nothing");
            fy_config_free(&config);
            return EX_OK;
        }
        fprintf(stderr, PROG ": opted out (%s): nothing sent, the journal untouched\n", why);
        if (cfg.json)
            printf("{\"exit_code\":0,\"opted_out\":true,\"delivered\":0}\n");
        fy_config_free(&config);
        return EX_OK;
    }
    cfg.follow = follow;
    if (follow)
        cfg.opted_out = follow_opted_out;
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
    if (cfg.ca_file && access(cfg.ca_file, R_OK)) { /* else every request would fail, in --follow forever */
        char origin[4200];
        const char *from = fy_config_origin(&config, cfg.ca_file, origin, sizeof origin);
        fprintf(stderr, PROG ": %s%s%s: %s\n", from ? from : "--cacert", from ? " = " : " ", cfg.ca_file,
                strerror(errno));
        return EX_CONFIG;
    }
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

    if (check) {
        fy_config_check_ok(&config, 0, "sends nothing");
        code = EX_OK;
    } else {
        code = rp_run(&cfg);
    }
    memset(key, 0, sizeof key);
    free(url);
    curl_global_cleanup();
    fy_config_free(&config);
    return code;
}

/* ferry-record: record events into a ferry journal from the shell. */
#include "ferry.h"
#include "fy_catalog.h"
#include "fy_cli.h"
#include "fy_config.h"
#include "fy_fail.h"
#include "recorder_internal.h"
#include "service.h"

#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PROG "ferry-record"
#define JSONL_BATCH 1000           /* events per transaction with --jsonl */
#define MAX_LINE_BYTES (1u << 20)  /* longer input lines are refused */

static void usage(FILE *f)
{
    fprintf(f,
"Usage: " PROG " [OPTIONS] --type NAME [--device-id ID] [--user-id ID]\n"
"                    [--prop KEY=VALUE]... [--time MS] [--insert-id ID]\n"
"       " PROG " [OPTIONS] --jsonl FILE|- [--atomic]\n"
"       " PROG " [OPTIONS] --listen PATH [--socket-mode MODE] [--socket-group G]\n"
"\n"
"Record analytics events into a ferry journal. Exits 0 only when every event\n"
"it recorded is durable.\n"
"\n"
"One event from flags:\n"
"  -t, --type NAME            event_type (required)\n"
"  -d, --device-id ID         device_id (this or --user-id is required)\n"
"  -u, --user-id ID           user_id\n"
"  -p, --prop KEY=VALUE       an event property, as a string\n"
"  -p, --prop KEY:=JSON       an event property with a JSON value: n:=42,\n"
"                             ok:=true, service:='{\"serviceName\":\"api\"}'\n"
"      --user-prop KEY[:]=V   a user property, same syntax\n"
"  -f, --field KEY[:]=V       another top-level Amplitude field, same syntax\n"
"                             (app_version=14.1.3, session_id:=1700000000000)\n"
"      --time MS              event time in ms since the epoch (default: now)\n"
"      --insert-id ID         deduplication id (default: a new UUID)\n"
"\n"
"Many events:\n"
"      --jsonl FILE|-         one Amplitude event JSON object per line; valid\n"
"                             lines are recorded in batches of %d, each bad line\n"
"                             is reported as FILE:LINE: reason and skipped\n"
"      --atomic               record the whole input in one transaction: all\n"
"                             lines or, if any line is bad, none\n"
"\n"
"Event catalog:\n"
"      --strict               refuse event types missing from the catalog, as\n"
"                             bad input naming the closest known name (without\n"
"                             it, any event_type is recorded)\n"
"      --catalog FILE         the catalog for --strict (default: $FERRY_CATALOG,\n"
"                             else the installed supervisor-events.tsv); exit\n"
"                             78 when it cannot be read or is malformed\n"
"\n",
            JSONL_BATCH);
    /* Two strings: C11 promises only 4095 characters in one. */
    fputs(
"Privacy (README: Privacy; applied before anything is written, in every mode):\n"
"      --allow PATH           keep only allowed properties on PATH's side:\n"
"                             event_properties.service.appId keeps that key\n"
"                             (its whole value), the rest of event_properties\n"
"                             goes; repeatable\n"
"      --deny PATH            remove the property at PATH, e.g.\n"
"                             user_properties.email; wins over --allow;\n"
"                             repeatable. In paths '*' matches any one key,\n"
"                             '\\.' is a dot inside a key; a path into an\n"
"                             array applies to each element\n"
"      --redact REGEX         replace each match of the POSIX extended REGEX in\n"
"                             any string value of event_properties and\n"
"                             user_properties by [redacted]; repeatable\n"
"\n"
"Recording service (README: ferry-record --listen):\n"
"      --listen PATH          serve in the foreground on a Unix socket: clients\n"
"                             send one event JSON object per line and get\n"
"                             'ok SEQ' once it is durable or 'error REASON';\n"
"                             events of all clients share commits. A line\n"
"                             '#ferry noack' turns the 'ok' answers off. Stops\n"
"                             cleanly on SIGTERM. Exit 69: another service\n"
"                             listens on PATH. With systemd socket activation\n"
"                             (LISTEN_FDS=1) the socket passed is used\n"
"      --socket-mode MODE     the socket's permissions (default 0660)\n"
"      --socket-group GROUP   the socket's group (name or number)\n"
"      --socket-owner USER    the socket's owner (name or number; root only)\n"
"      --max-clients N        connections at once (default 256)\n"
"\n"
"Journal:\n"
"  -j, --journal DIR          journal directory (default: $FERRY_JOURNAL, else\n"
"                             /var/lib/ferry/journal as root, else\n"
"                             ~/.local/state/ferry/journal)\n"
"      --max-size SIZE        disk bound, e.g. 64M (default: the journal's,\n"
"                             64M for a new one)\n"
"      --durability MODE      full (default: fsync'd before success) or relaxed\n"
"      --overflow POLICY      when full: reject (default) or evict-oldest\n"
"      --opt-out              record nothing, succeed (as FERRY_OPT_OUT=1)\n"
"      --config FILE          the configuration file (default: $FERRY_CONFIG,\n"
"                             else " FY_CONFIG_DEFAULT ", if present);\n"
"                             flags win over it (ferry.conf(5))\n"
"      --check-config         check the file, the environment and the flags\n"
"                             as a run would (values, the catalog), record\n"
"                             nothing, open nothing; exit 0 or the run's code\n"
"\n"
"  -v, --verbose              report what was recorded on stderr\n"
"  -h, --help                 show this help\n"
"  -V, --version              show the version\n"
"\n"
"Exit codes: 0 ok, 64 usage, 65 bad input (some line or field), 73 cannot\n"
"create the journal, 74 I/O error, 75 journal full (temporary), 78 the\n"
"catalog for --strict cannot be loaded, or a bad configuration file.\n", f);
}

#define usage_error(...) fy_cli_usage_error(PROG, __VA_ARGS__)

/* --strict: the loaded catalog; NULL without --strict. */
static fy_catalog *strict_catalog;

/* --listen --strict: the service checks each line against the catalog. */
static ferry_err service_strict_check(const void *catalog, const char *json, size_t len)
{
    return fy_catalog_check_json(catalog, json, len);
}

/* KEY=VALUE (string) or KEY:=JSON into obj. */
static int add_pair(json_t *obj, const char *opt, const char *arg)
{
    const char *eq = strchr(arg, '=');
    if (!eq || eq == arg || (eq == arg + 1 && arg[0] == ':')) {
        fprintf(stderr, PROG ": %s %s: expected KEY=VALUE or KEY:=JSON\n", opt, arg);
        return -1;
    }
    int is_json = eq[-1] == ':';
    size_t klen = (size_t)(eq - arg) - (is_json ? 1u : 0u);
    char *key = strndup(arg, klen);
    json_t *v;
    if (is_json) {
        json_error_t err;
        v = json_loads(eq + 1, JSON_DECODE_ANY | JSON_REJECT_DUPLICATES, &err);
        if (!v)
            fprintf(stderr, PROG ": %s %s: invalid JSON value: %s\n", opt, key, err.text);
    } else {
        v = json_string(eq + 1);
        if (!v)
            fprintf(stderr, PROG ": %s %s: value is not valid UTF-8\n", opt, key);
    }
    int rc = -1;
    if (v && json_object_get(obj, key))
        fprintf(stderr, PROG ": %s %s: given twice\n", opt, key);
    else if (v && json_object_set_new(obj, key, v) == 0)
        rc = 0, v = NULL;
    json_decref(v);
    free(key);
    return rc;
}

static char *dump_or_null(json_t *obj)
{
    return json_object_size(obj) ? json_dumps(obj, JSON_COMPACT) : NULL;
}

static int fail(ferry_err e)
{
    fprintf(stderr, PROG ": %s\n", ferry_last_error());
    return fy_cli_exit_code(e);
}

static int record_flags(ferry_journal *j, ferry_event *ev, json_t *props, json_t *uprops,
                        json_t *fields, int verbose)
{
    char *p = dump_or_null(props), *u = dump_or_null(uprops), *x = dump_or_null(fields);
    ev->event_properties = p;
    ev->user_properties = u;
    ev->extra = x;
    uint64_t seq = 0;
    ferry_err e = ferry_record(j, ev, &seq);
    free(p);
    free(u);
    free(x);
    if (e)
        return fail(e);
    if (verbose)
        fprintf(stderr, PROG ": recorded 1 event (seq %llu)\n", (unsigned long long)seq);
    return EX_OK;
}

typedef struct jsonl_totals {
    unsigned long recorded, bad;
    uint64_t first, last;
} jsonl_totals;

static ferry_err commit(ferry_journal *j, ferry_batch *b, jsonl_totals *t)
{
    size_t n = ferry_batch_count(b);
    uint64_t seq;
    ferry_err e = ferry_record_batch(j, b, &seq);
    if (!e && n && seq) {
        if (!t->first)
            t->first = seq;
        t->last = seq + n - 1;
    }
    if (!e)
        t->recorded += n;
    return e;
}

static int record_jsonl(ferry_journal *j, const char *path, int atomic, int verbose)
{
    FILE *f = strcmp(path, "-") == 0 ? stdin : fopen(path, "r");
    const char *name = f == stdin ? "<stdin>" : path;
    if (!f) {
        fprintf(stderr, PROG ": %s: %s\n", path, strerror(errno));
        return EX_NOINPUT;
    }
    ferry_batch *b;
    ferry_err e = ferry_batch_new(&b);
    if (!e && (e = ferry_batch_use_policy_of(b, j)))
        ferry_batch_free(b);
    if (e) {
        if (f != stdin)
            fclose(f);
        return fail(e);
    }
    fy_line_reader r;
    fy_lines_init(&r, f, MAX_LINE_BYTES);
    size_t max_bytes = ferry_max_batch_bytes(j);
    jsonl_totals t = {0, 0, 0, 0};
    int too_long, rc, status = EX_OK;
    while ((rc = fy_lines_next(&r, &too_long)) == 1) {
        if (too_long) {
            fprintf(stderr, "%s:%lu: line longer than %u bytes, skipped\n", name, r.lineno, MAX_LINE_BYTES);
            t.bad++;
            continue;
        }
        size_t k = 0;
        while (k < r.line.len && (r.line.data[k] == ' ' || r.line.data[k] == '\t'))
            k++;
        if (k == r.line.len)
            continue; /* blank line */
        if (strict_catalog && fy_catalog_check_json(strict_catalog, r.line.data, r.line.len)) {
            fprintf(stderr, "%s:%lu: %s\n", name, r.lineno, ferry_last_error());
            t.bad++;
            continue;
        }
        ferry_err bad_line = ferry_batch_add_json(b, r.line.data, r.line.len);
        if (bad_line == FERRY_ENOMEM) {
            e = bad_line;
            break;
        }
        if (bad_line) {
            fprintf(stderr, "%s:%lu: %s\n", name, r.lineno, ferry_last_error());
            t.bad++;
            continue;
        }
        /* A transaction per JSONL_BATCH lines, or fewer when events are large. */
        if (!atomic && (ferry_batch_count(b) >= JSONL_BATCH || ferry_batch_bytes(b) >= max_bytes) &&
            (e = commit(j, b, &t)))
            break;
    }
    if (rc < 0) {
        fprintf(stderr, PROG ": %s: read error: %s\n", name, strerror(errno));
        status = EX_IOERR;
    } else if (e) {
        fprintf(stderr, PROG ": %s: stopped at line %lu: %s\n", name, r.lineno, ferry_last_error());
        status = fy_cli_exit_code(e);
    } else if (atomic && t.bad) {
        fprintf(stderr, PROG ": %s: %lu bad line(s); --atomic: nothing recorded\n", name, t.bad);
        status = EX_DATAERR;
    } else if ((e = commit(j, b, &t))) {
        fprintf(stderr, PROG ": %s: %s\n", name, ferry_last_error());
        status = fy_cli_exit_code(e);
    } else if (t.bad) {
        status = EX_DATAERR;
    }
    if (verbose) {
        fprintf(stderr, PROG ": %s: recorded %lu event(s)", name, t.recorded);
        if (t.recorded && t.first)
            fprintf(stderr, " (seq %llu-%llu)", (unsigned long long)t.first, (unsigned long long)t.last);
        fprintf(stderr, ", %lu bad line(s)\n", t.bad);
    }
    fy_lines_free(&r);
    ferry_batch_free(b);
    if (f != stdin)
        fclose(f);
    return status;
}

enum { OPT_TIME = 256, OPT_INSERT_ID, OPT_JSONL, OPT_ATOMIC, OPT_MAX_SIZE, OPT_DURABILITY,
       OPT_OVERFLOW, OPT_OPT_OUT, OPT_USER_PROP };
enum { OPT_STRICT = 512, OPT_CATALOG };
enum { OPT_LISTEN = 768, OPT_SOCKET_MODE, OPT_SOCKET_GROUP, OPT_SOCKET_OWNER, OPT_MAX_CLIENTS };
enum { OPT_ALLOW = 1024, OPT_DENY, OPT_REDACT };

/* --allow, --deny, --redact: adds the rule to *policy, made on first use. */
static int add_policy_rule(ferry_policy **policy, int opt, const char *arg)
{
    ferry_err e = *policy ? FERRY_OK : ferry_policy_new(policy);
    if (!e)
        e = opt == OPT_ALLOW  ? ferry_policy_allow(*policy, arg)
            : opt == OPT_DENY ? ferry_policy_deny(*policy, arg)
                              : ferry_policy_redact(*policy, arg);
    if (e == FERRY_EINVAL)
        return usage_error("%s", ferry_last_error()); /* names the path or regex */
    return e ? fail(e) : EX_OK;
}
enum { OPT_CONFIG = 1280, OPT_CHECK_CONFIG };
#define SHORTOPTS "d:f:hj:p:t:u:vV"

/* The configuration file's settings come in front of argv (fy_config.h). */
static fy_config config;

int main(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"allow", required_argument, NULL, OPT_ALLOW},
        {"atomic", no_argument, NULL, OPT_ATOMIC},
        {"deny", required_argument, NULL, OPT_DENY},
        {"redact", required_argument, NULL, OPT_REDACT},
        {"catalog", required_argument, NULL, OPT_CATALOG},
        {"config", required_argument, NULL, OPT_CONFIG},
        {"check-config", no_argument, NULL, OPT_CHECK_CONFIG},
        {"strict", no_argument, NULL, OPT_STRICT},
        {"device-id", required_argument, NULL, 'd'},
        {"durability", required_argument, NULL, OPT_DURABILITY},
        {"field", required_argument, NULL, 'f'},
        {"help", no_argument, NULL, 'h'},
        {"insert-id", required_argument, NULL, OPT_INSERT_ID},
        {"journal", required_argument, NULL, 'j'},
        {"jsonl", required_argument, NULL, OPT_JSONL},
        {"listen", required_argument, NULL, OPT_LISTEN},
        {"max-clients", required_argument, NULL, OPT_MAX_CLIENTS},
        {"socket-group", required_argument, NULL, OPT_SOCKET_GROUP},
        {"socket-mode", required_argument, NULL, OPT_SOCKET_MODE},
        {"socket-owner", required_argument, NULL, OPT_SOCKET_OWNER},
        {"max-size", required_argument, NULL, OPT_MAX_SIZE},
        {"opt-out", no_argument, NULL, OPT_OPT_OUT},
        {"overflow", required_argument, NULL, OPT_OVERFLOW},
        {"prop", required_argument, NULL, 'p'},
        {"time", required_argument, NULL, OPT_TIME},
        {"type", required_argument, NULL, 't'},
        {"user-id", required_argument, NULL, 'u'},
        {"user-prop", required_argument, NULL, OPT_USER_PROP},
        {"verbose", no_argument, NULL, 'v'},
        {"version", no_argument, NULL, 'V'},
        {NULL, 0, NULL, 0},
    };
    ferry_event ev = {0};
    ferry_options opts = {0};
    const char *jflag = NULL, *jsonl = NULL;
    int atomic = 0, verbose = 0, check = 0, c, status = EX_OK;
    int strict = 0;
    const char *catalog_path = NULL;
    fy_service_opts svc = {0};
    ferry_policy *policy = NULL;
    if ((status = fy_config_args(&config, PROG, FY_PROG_RECORD, &argc, &argv, SHORTOPTS, longopts))) {
        fy_config_free(&config);
        return status;
    }
    json_t *props = json_object(), *uprops = json_object(), *fields = json_object();

    while ((c = fy_config_getopt(&config, argc, argv, SHORTOPTS, longopts)) != -1 && status == EX_OK) {
        switch (c) {
        case OPT_CONFIG: break; /* read by fy_config_args */
        case OPT_CHECK_CONFIG: check = 1; break;
        case 'd': ev.device_id = optarg; break;
        case 'f': if (add_pair(fields, "--field", optarg)) status = EX_USAGE; break;
        case 'h': usage(stdout); status = -1; break;
        case 'j': jflag = optarg; break;
        case 'p': if (add_pair(props, "--prop", optarg)) status = EX_USAGE; break;
        case 't': ev.event_type = optarg; break;
        case 'u': ev.user_id = optarg; break;
        case 'v': verbose = 1; break;
        case 'V': printf(PROG " %s\n", ferry_version()); status = -1; break;
        case OPT_ATOMIC: atomic = 1; break;
        case OPT_ALLOW:
        case OPT_DENY:
        case OPT_REDACT: status = add_policy_rule(&policy, c, optarg); break;
        case OPT_STRICT: strict = 1; break;
        case OPT_CATALOG: catalog_path = optarg; break;
        case OPT_INSERT_ID: ev.insert_id = optarg; break;
        case OPT_JSONL: jsonl = optarg; break;
        case OPT_LISTEN: svc.listen = optarg; break;
        case OPT_MAX_CLIENTS: svc.max_clients = optarg; break;
        case OPT_SOCKET_GROUP: svc.socket_group = optarg; break;
        case OPT_SOCKET_MODE: svc.socket_mode = optarg; break;
        case OPT_SOCKET_OWNER: svc.socket_owner = optarg; break;
        case OPT_OPT_OUT: opts.opt_out = 1; break;
        case OPT_USER_PROP: if (add_pair(uprops, "--user-prop", optarg)) status = EX_USAGE; break;
        case OPT_TIME:
            if (fy_cli_parse_i64(optarg, &ev.time_ms) || ev.time_ms <= 0)
                status = usage_error("--time %s: expected milliseconds since the epoch", optarg);
            break;
        case OPT_MAX_SIZE:
            if (fy_cli_parse_size(optarg, &opts.max_bytes) || opts.max_bytes < (1u << 20))
                status = usage_error("--max-size %s: expected a size such as 64M, at least the minimum of 1048576 bytes (1M)", optarg);
            break;
        case OPT_DURABILITY:
            if (!strcmp(optarg, "full")) opts.durability = FERRY_DURABILITY_FULL;
            else if (!strcmp(optarg, "relaxed")) opts.durability = FERRY_DURABILITY_RELAXED;
            else status = usage_error("--durability %s: expected full or relaxed", optarg);
            break;
        case OPT_OVERFLOW:
            if (!strcmp(optarg, "reject")) opts.overflow = FERRY_OVERFLOW_REJECT;
            else if (!strcmp(optarg, "evict-oldest")) opts.overflow = FERRY_OVERFLOW_EVICT_OLDEST;
            else status = usage_error("--overflow %s: expected reject or evict-oldest", optarg);
            break;
        default: status = usage_error("%s", "invalid option"); break;
        }
    }
    if (status == EX_OK) {
        int flags_given = ev.event_type || ev.device_id || ev.user_id || ev.insert_id || ev.time_ms ||
                          json_object_size(props) || json_object_size(uprops) || json_object_size(fields);
        if (optind < argc)
            status = usage_error("unexpected argument '%s'", argv[optind]);
        else if (svc.listen && (jsonl || flags_given || atomic))
            status = usage_error("%s", "--listen cannot be combined with --jsonl, --atomic or single-event flags");
        else if (!svc.listen && fy_service_opts_given(&svc))
            status = usage_error("%s", "--socket-mode, --socket-group, --socket-owner and --max-clients apply to --listen");
        else if (jsonl && flags_given)
            status = usage_error("%s", "--jsonl cannot be combined with single-event flags");
        else if (!jsonl && !svc.listen && !ev.event_type && !check)
            status = usage_error("%s", "--type NAME, --jsonl FILE or --listen PATH is required");
        else if (atomic && !jsonl)
            status = usage_error("%s", "--atomic applies to --jsonl");
        else if (catalog_path && !strict)
            status = usage_error("%s", "--catalog applies to --strict");
    }
    if (status == EX_OK && strict) {
        ferry_err ce = fy_catalog_load(catalog_path, &strict_catalog);
        if (ce) {
            fprintf(stderr, PROG ": %s\n", ferry_last_error());
            status = EX_CONFIG;
        } else if (ev.event_type && fy_catalog_check(strict_catalog, ev.event_type, strlen(ev.event_type))) {
            fprintf(stderr, PROG ": --type: %s\n", ferry_last_error());
            status = EX_DATAERR;
        }
    }
    opts.policy = policy;
    char dirbuf[4096];
    const char *dir = status == EX_OK ? fy_cli_journal_dir(jflag, dirbuf, sizeof dirbuf) : NULL;
    if (status == EX_OK && !dir)
        status = usage_error("%s", "no journal directory: pass -j DIR or set FERRY_JOURNAL");
    if (status == EX_OK && check) {
        fy_config_check_ok(&config, opts.opt_out, "records nothing");
        status = -1;
    }
    if (status == EX_OK && svc.listen) {
        svc.verbose = verbose;
        if (strict_catalog) {
            svc.check = service_strict_check;
            svc.check_arg = strict_catalog;
        }
        status = fy_service_main(PROG, &svc, dir, &opts); /* opens the journal itself */
        if (status == EX_OK)
            status = -1; /* served and stopped cleanly: nothing else to do */
    }
    ferry_journal *j = NULL;
    if (status == EX_OK) {
        ferry_err e = ferry_open(dir, &opts, &j);
        if (e)
            status = fail(e);
    }
    if (status == EX_OK)
        status = jsonl ? record_jsonl(j, jsonl, atomic, verbose)
                       : record_flags(j, &ev, props, uprops, fields, verbose);
    ferry_close(j);
    ferry_policy_free(policy);
    json_decref(props);
    json_decref(uprops);
    json_decref(fields);
    fy_catalog_free(strict_catalog);
    fy_config_free(&config);
    return status < 0 ? EX_OK : status;
}

/* config.c: the configuration file (fy_config.h), read with libinih. */
#include "fy_config.h"
#include "fy_cli.h"

#include <errno.h>
#include <ini.h>
#include <jansson.h>
#include <regex.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <sysexits.h>


static int check_regex(const char *v, char *why, size_t n)
{
    regex_t re;
    int rc = regcomp(&re, v, REG_EXTENDED | REG_NOSUB);
    if (rc) {
        char msg[256];
        regerror(rc, &re, msg, sizeof msg);
        snprintf(why, n, "not a regular expression (POSIX extended): %s", msg);
        return -1;
    }
    regfree(&re);
    return 0;
}

/* Every key of the file. A key is given to a program as the long option
 * named in its column (record, replay, journal).
 *
 * [privacy]: the file's items go in front of the command line's
 * --allow/--deny/--redact, and lists add up. check_regex accepts what
 * ferry-record's --redact accepts (POSIX extended), so every program refuses
 * a bad one.
 */
const fy_conf_key fy_conf_keys[] = {
    {"journal", "dir", FY_CONF_ARG, FY_ENV_WINS, "FERRY_JOURNAL", {"journal", "journal", "journal"},
     "", NULL},
    {"journal", "max_size", FY_CONF_ARG, FY_ENV_NONE, NULL, {"max-size", NULL, NULL},
     "|64M for a new journal, else the journal's own", NULL},
    {"recorder", "durability", FY_CONF_ARG, FY_ENV_NONE, NULL, {"durability", NULL, NULL}, "full", NULL},
    {"recorder", "overflow", FY_CONF_ARG, FY_ENV_NONE, NULL, {"overflow", NULL, NULL}, "reject", NULL},
    {"recorder", "opt_out", FY_CONF_BOOL, FY_ENV_OR, "FERRY_OPT_OUT", {"opt-out", "opt-out", NULL}, "false", NULL},
    {"replayer", "endpoint", FY_CONF_ARG, FY_ENV_NONE, NULL, {NULL, "endpoint", NULL},
     "https://api2.amplitude.com/2/httpapi", NULL},
    {"replayer", "batch_api", FY_CONF_BOOL, FY_ENV_NONE, NULL, {NULL, "batch-api", NULL}, "false", NULL},
    {"replayer", "api_key_file", FY_CONF_ARG, FY_ENV_WINS, "FERRY_API_KEY", {NULL, "api-key-file", NULL},
     "|none: $FERRY_API_KEY", NULL},
    {"replayer", "api_key", FY_CONF_REFUSED, FY_ENV_NONE, "FERRY_API_KEY", {NULL, NULL, NULL}, "", NULL},
    {"replayer", "timeout", FY_CONF_ARG, FY_ENV_NONE, NULL, {NULL, "timeout", NULL}, "30", NULL},
    {"replayer", "max_retry_delay", FY_CONF_ARG, FY_ENV_NONE, NULL, {NULL, "max-retry-delay", NULL}, "300", NULL},
    {"replayer", "retry_for", FY_CONF_ARG, FY_ENV_NONE, NULL, {NULL, "retry-for", NULL}, "60", NULL},
    {"replayer", "sink", FY_CONF_ARG, FY_ENV_NONE, NULL, {NULL, "sink", NULL}, "amplitude", NULL},
    {"replayer", "device_rate", FY_CONF_ARG, FY_ENV_NONE, NULL, {NULL, "device-rate", NULL},
     "25|800 with batch_api", NULL},
    {"replayer", "max_events", FY_CONF_ARG, FY_ENV_NONE, NULL, {NULL, "max-events", NULL}, "2000", NULL},
    {"replayer", "throttle_wait", FY_CONF_ARG, FY_ENV_NONE, NULL, {NULL, "throttle-wait", NULL}, "30", NULL},
    {"replayer", "gzip", FY_CONF_NOT, FY_ENV_NONE, NULL, {NULL, "no-gzip", NULL}, "true", NULL},
    {"replayer", "keep_delivered", FY_CONF_BOOL, FY_ENV_NONE, NULL, {NULL, "keep-delivered", NULL}, "false", NULL},
    {"replayer", "cacert", FY_CONF_ARG, FY_ENV_NONE, NULL, {NULL, "cacert", NULL}, "|the system's CAs only", NULL},
    {"replayer", "ip", FY_CONF_ARG, FY_ENV_NONE, NULL, {NULL, "ip", NULL}, "none", NULL},
    {"replayer", "time_floor", FY_CONF_ARG, FY_ENV_NONE, NULL, {NULL, "time-floor", NULL},
     "|the build's floor (ferry-replay --help)", NULL},
    {"replayer", "clock_jump", FY_CONF_ARG, FY_ENV_NONE, NULL, {NULL, "clock-jump", NULL}, "10", NULL},
    {"privacy", "allow", FY_CONF_LIST, FY_ENV_NONE, NULL, {"allow", NULL, NULL}, "",
     NULL},
    {"privacy", "deny", FY_CONF_LIST, FY_ENV_NONE, NULL, {"deny", NULL, NULL}, "",
     NULL},
    {"privacy", "redact", FY_CONF_LIST, FY_ENV_NONE, NULL, {"redact", NULL, NULL}, "",
     check_regex},
};
const size_t fy_conf_n_keys = sizeof fy_conf_keys / sizeof fy_conf_keys[0];

/* ---- reading the file ---------------------------------------------------- */

typedef struct parse {
    fy_config *c;
    FILE *f;
    unsigned line;     /* of the line inih works on */
    int too_long;
    unsigned err_line; /* the first error the handler found */
    char err[1024];
    int oom;
} parse;

/* fgets for inih, counting lines (inih's handler gets no line number) and
 * cutting leading blanks: an indented line is an ordinary line, never the
 * continuation of the previous value. */
static char *reader(char *str, int num, void *stream)
{
    parse *p = stream;
    if (!fgets(str, num, p->f))
        return NULL;
    size_t len = strlen(str);
    if (len && str[len - 1] != '\n' && !feof(p->f)) {
        p->too_long = 1; /* inih would read the rest as another line */
        p->line++;
        return NULL;
    }
    p->line++;
    size_t k = strspn(str, " \t");
    if (k)
        memmove(str, str + k, len - k + 1);
    return str;
}

static int bad(parse *p, const char *fmt, ...)
{
    if (p->err_line)
        return 0;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(p->err, sizeof p->err, fmt, ap);
    va_end(ap);
    p->err_line = p->line;
    return 0;
}

static int parse_bool(const char *v, int *out)
{
    static const char *const yes[] = {"true", "yes", "on", "1"}, *const no[] = {"false", "no", "off", "0"};
    for (size_t i = 0; i < 4; i++) {
        if (!strcasecmp(v, yes[i]))
            return *out = 1, 0;
        if (!strcasecmp(v, no[i]))
            return *out = 0, 0;
    }
    return -1;
}

static int handler(void *user, const char *section, const char *name, const char *value)
{
    parse *p = user;
    fy_config *c = p->c;
    if (!*section)
        return bad(p, "%s: outside a section (start with [journal], [recorder], [replayer] or [privacy])", name);
    const fy_conf_key *k = NULL;
    int section_known = 0;
    for (size_t i = 0; i < fy_conf_n_keys; i++) {
        if (strcasecmp(section, fy_conf_keys[i].section))
            continue;
        section_known = 1;
        if (!strcasecmp(name, fy_conf_keys[i].key))
            k = &fy_conf_keys[i];
    }
    if (!section_known)
        return bad(p, "unknown section [%s]", section);
    if (!k) {
        char known[512] = "";
        for (size_t i = 0; i < fy_conf_n_keys; i++)
            if (!strcasecmp(section, fy_conf_keys[i].section) && fy_conf_keys[i].kind != FY_CONF_REFUSED)
                snprintf(known + strlen(known), sizeof known - strlen(known), "%s%s", *known ? ", " : "",
                         fy_conf_keys[i].key);
        return bad(p, "[%s] %s: unknown key (known: %s)", section, name, known);
    }
    /* The value is never repeated in this message: it is a secret. */
    if (k->kind == FY_CONF_REFUSED)
        return bad(p, "[%s] %s: the API key is never read from the configuration file (other users may "
                      "read it, and it would be copied with it): use api_key_file = FILE (mode 0600) or "
                      "the FERRY_API_KEY environment variable", k->section, k->key);
    if (!*value)
        return bad(p, "[%s] %s: empty value", k->section, k->key);
    int b;
    if ((k->kind == FY_CONF_BOOL || k->kind == FY_CONF_NOT) && parse_bool(value, &b))
        return bad(p, "[%s] %s = %s: expected true or false", k->section, k->key, value);
    char why[512];
    if (k->check && k->check(value, why, sizeof why))
        return bad(p, "[%s] %s = %s: %s", k->section, k->key, value, why);
    if (k->kind != FY_CONF_LIST)
        for (size_t i = 0; i < c->n; i++)
            if (c->v[i].k == k)
                return bad(p, "[%s] %s: given twice (first on line %u)", k->section, k->key, c->v[i].line);
    fy_conf_value *nv = realloc(c->v, (c->n + 1) * sizeof *nv);
    if (!nv || !(nv[c->n].value = strdup(value))) {
        if (nv)
            c->v = nv;
        p->oom = 1;
        return bad(p, "out of memory");
    }
    c->v = nv;
    nv[c->n].k = k;
    nv[c->n].line = p->line;
    c->n++;
    return 1;
}

static int config_error(const fy_config *c, const char *fmt, ...)
{
    if (c->quiet)
        return EX_CONFIG;
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "%s: ", c->prog);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    return EX_CONFIG;
}

static int load(fy_config *c, int is_explicit)
{
    FILE *f = fopen(c->path, "r");
    if (!f) {
        if (errno == ENOENT && !is_explicit)
            return 0; /* no default file: every default applies */
        /* A file we cannot read might have said opt_out = true: never go on. */
        return config_error(c, "configuration file %s (%s): %s", c->path, c->named_by, strerror(errno));
    }
    c->found = 1;
    parse p;
    memset(&p, 0, sizeof p);
    p.c = c;
    p.f = f;
    int rc = ini_parse_stream(reader, &p, handler, &p);
    int read_error = ferror(f);
    fclose(f);
    if (read_error)
        return config_error(c, "%s: read error", c->path);
    if (p.oom)
        return config_error(c, "%s: out of memory", c->path);
    if (p.too_long && (!p.err_line || p.err_line >= p.line))
        return config_error(c, "%s:%u: line too long (at most %d bytes)", c->path, p.line, 196);
    if (rc > 0 && p.err_line && p.err_line <= (unsigned)rc)
        return config_error(c, "%s:%u: %s", c->path, p.err_line, p.err);
    if (rc > 0)
        return config_error(c, "%s:%d: syntax error: expected [section], key = value, or a comment (# or ;)",
                            c->path, rc);
    if (rc < 0)
        return config_error(c, "%s: cannot be read", c->path);
    return 0;
}

/* ---- the argument vector -------------------------------------------------- */

static const struct option *find_long(const struct option *longopts, const char *name)
{
    for (const struct option *o = longopts; o->name; o++)
        if (!strcmp(o->name, name))
            return o;
    return NULL;
}

/* --config FILE: the program's own parser finds it (abbreviations, "--"
 * and option arguments behave as in the real pass), on a copy of argv
 * since GNU getopt reorders it. */
static const char *find_config_flag(int argc, char **argv, const char *shortopts, const struct option *longopts)
{
    const struct option *co = find_long(longopts, "config");
    if (!co)
        return NULL;
    char **copy = malloc(((size_t)argc + 1) * sizeof *copy);
    if (!copy)
        return NULL;
    memcpy(copy, argv, ((size_t)argc + 1) * sizeof *copy);
    const char *found = NULL;
    int saved = opterr, ch, idx = -1;
    opterr = 0;
    optind = 0;
    while ((ch = getopt_long(argc, copy, shortopts, longopts, &idx)) != -1)
        if (ch == co->val && co->flag == NULL && idx >= 0 && longopts[idx].val == co->val)
            found = optarg;
    opterr = saved;
    optind = 0;
    free(copy);
    return found;
}

int fy_config_args(fy_config *c, const char *prog, enum fy_prog which, int *argc, char ***argv,
                   const char *shortopts, const struct option *longopts)
{
    memset(c, 0, sizeof *c);
    c->prog = prog;
    c->which = which;
    const char *flag = find_config_flag(*argc, *argv, shortopts, longopts);
    const char *env = getenv("FERRY_CONFIG");
    const char *path = flag ? flag : env && *env ? env : FY_CONFIG_DEFAULT;
    c->named_by = flag ? "--config" : env && *env ? "FERRY_CONFIG" : "default";
    if (flag && !*flag)
        return config_error(c, "--config: empty file name");
    if (!(c->path = strdup(path)))
        return config_error(c, "out of memory");
    int rc = load(c, flag || (env && *env));
    if (rc)
        return rc;

    /* Injected: one argument per value this program uses. */
    c->argv = calloc((size_t)*argc + c->n + 1, sizeof *c->argv);
    c->inj_value = calloc(c->n + 1, sizeof *c->inj_value);
    if (!c->argv || !c->inj_value)
        return config_error(c, "out of memory");
    c->argv[0] = (*argv)[0];
    int k = 1;
    for (size_t i = 0; i < c->n; i++) {
        const fy_conf_key *key = c->v[i].k;
        const char *opt = key->opt[which];
        if (!opt)
            continue;
        if (key->env_mode == FY_ENV_WINS && getenv(key->env) && *getenv(key->env))
            continue; /* the environment wins over the file */
        const struct option *o = find_long(longopts, opt);
        if (!o)
            return config_error(c, "internal: no option --%s for [%s] %s", opt, key->section, key->key);
        char *arg;
        if (key->kind == FY_CONF_BOOL || key->kind == FY_CONF_NOT) {
            int b = 0;
            parse_bool(c->v[i].value, &b);
            if (b != (key->kind == FY_CONF_BOOL))
                continue;
            arg = malloc(strlen(opt) + 3);
            if (arg)
                sprintf(arg, "--%s", opt);
        } else {
            arg = malloc(strlen(opt) + strlen(c->v[i].value) + 4);
            if (arg)
                sprintf(arg, "--%s=%s", opt, c->v[i].value);
        }
        if (!arg)
            return config_error(c, "out of memory");
        c->inj_value[k - 1] = i;
        c->argv[k++] = arg;
    }
    c->n_injected = k - 1;
    for (int i = 1; i < *argc; i++)
        c->argv[k++] = (*argv)[i];
    c->argv[k] = NULL;
    c->argc = k;
    *argc = c->argc;
    *argv = c->argv;
    return 0;
}

/* ---- naming the file's line in option errors ------------------------------ */

static const fy_config *current_cfg;
static const fy_conf_value *current_value;

static int usage_hook(const char *prog, const char *msg)
{
    const fy_conf_value *v = current_value;
    if (!v)
        return 0;
    /* "--durability fast: expected ..." -> "expected ..." */
    const char *opt = v->k->opt[current_cfg->which];
    size_t ol = opt ? strlen(opt) : 0, vl = strlen(v->value);
    const char *m = msg;
    if (opt && m[0] == '-' && m[1] == '-' && !strncmp(m + 2, opt, ol)) {
        m += 2 + ol;
        if (*m == ' ' && !strncmp(m + 1, v->value, vl))
            m += 1 + vl;
        if (*m == ':')
            m++;
        while (*m == ' ')
            m++;
        size_t ml = strlen(m);
        if (ml >= vl && vl && !strcmp(m + ml - vl, v->value) && ml >= vl + 2 && !strncmp(m + ml - vl - 2, ": ", 2))
            ml -= vl + 2; /* "...: VALUE" at the end: the value is named in front already */
        fprintf(stderr, "%s: %s:%u: [%s] %s = %s: %.*s\n", prog, current_cfg->path, v->line, v->k->section,
                v->k->key, v->value, (int)ml, m);
    } else {
        fprintf(stderr, "%s: %s:%u: [%s] %s = %s: %s\n", prog, current_cfg->path, v->line, v->k->section,
                v->k->key, v->value, msg);
    }
    return EX_CONFIG;
}

int fy_config_getopt(fy_config *c, int argc, char **argv, const char *shortopts, const struct option *longopts)
{
    int ch = getopt_long(argc, argv, shortopts, longopts, NULL);
    current_value = NULL;
    current_cfg = c;
    fy_cli_usage_hook = usage_hook;
    if (ch != -1 && optind - 1 >= 1 && optind - 1 <= c->n_injected)
        current_value = &c->v[c->inj_value[optind - 2]];
    return ch;
}

const char *fy_config_origin(const fy_config *c, const char *arg, char *buf, size_t n)
{
    for (int i = 1; arg && i <= c->n_injected; i++) {
        const char *a = c->argv[i];
        if (arg >= a && arg <= a + strlen(a)) {
            const fy_conf_value *v = &c->v[c->inj_value[i - 1]];
            snprintf(buf, n, "%s:%u: [%s] %s", c->path, v->line, v->k->section, v->k->key);
            return buf;
        }
    }
    return NULL;
}

const fy_conf_value *fy_config_get(const fy_config *c, const char *section, const char *key)
{
    const fy_conf_value *last = NULL;
    for (size_t i = 0; i < c->n; i++)
        if (!strcmp(c->v[i].k->section, section) && !strcmp(c->v[i].k->key, key))
            last = &c->v[i];
    return last;
}

static int file_says_opt_out(const fy_config *c, char *why, size_t n)
{
    const fy_conf_value *v = fy_config_get(c, "recorder", "opt_out");
    int b = 0;
    if (v && !parse_bool(v->value, &b) && b) {
        snprintf(why, n, "%s:%u: [recorder] opt_out = %s", c->path, v->line, v->value);
        return 1;
    }
    return 0;
}

int fy_config_opt_out(const fy_config *c, char *why, size_t n)
{
    if (fy_cli_env_opt_out()) {
        snprintf(why, n, "FERRY_OPT_OUT=%s", getenv("FERRY_OPT_OUT"));
        return 1;
    }
    return file_says_opt_out(c, why, n);
}

void fy_config_check_ok(const fy_config *c, int opt_out_flag, const char *opted_out_means)
{
    char why[4200];
    int out = fy_config_opt_out(c, why, sizeof why) || (opt_out_flag && snprintf(why, sizeof why, "--opt-out"));
    printf("%s: configuration OK (configuration file %s: %s)", c->prog, c->path ? c->path : "(none)",
           c->found ? "read" : "not found");
    if (out)
        printf("; opted out (%s): a run %s", why, opted_out_means);
    putchar('\n');
}

int fy_config_file_opt_out(fy_config *c, char *why, size_t n)
{
    struct stat st;
    if (!c->path || stat(c->path, &st))
        return 0;
    if (st.st_mtim.tv_sec == c->seen_mtime.tv_sec && st.st_mtim.tv_nsec == c->seen_mtime.tv_nsec &&
        (long long)st.st_size == c->seen_size && (long long)st.st_ino == c->seen_ino)
        return c->seen_opt_out ? (snprintf(why, n, "%s: [recorder] opt_out", c->path), 1) : 0;
    fy_config t;
    memset(&t, 0, sizeof t);
    t.prog = c->prog;
    t.path = c->path;
    t.named_by = c->named_by;
    t.quiet = 1;
    int opt_out = !load(&t, 1) && file_says_opt_out(&t, why, n);
    for (size_t i = 0; i < t.n; i++)
        free(t.v[i].value);
    free(t.v);
    c->seen_mtime = st.st_mtim;
    c->seen_size = (long long)st.st_size;
    c->seen_ino = (long long)st.st_ino;
    c->seen_opt_out = opt_out;
    return opt_out;
}

/* ---- ferry-journal config -------------------------------------------------- */

typedef struct shown {
    const char *value;  /* NULL: none */
    const char *source; /* default, file, env, flag */
    const char *env;
    unsigned line;
    const char *note;
} shown;

static void emit(const fy_config *c, const fy_conf_key *k, const shown *s, json_t *arr, FILE *out)
{
    char name[128];
    snprintf(name, sizeof name, "%s.%s", k->section, k->key);
    if (arr) {
        json_t *o = json_object();
        json_object_set_new(o, "key", json_string(name));
        json_object_set_new(o, "value", s->value ? json_string(s->value) : json_null());
        json_object_set_new(o, "source", json_string(s->source));
        if (!strcmp(s->source, "file")) {
            json_object_set_new(o, "file", json_string(c->path));
            json_object_set_new(o, "line", json_integer(s->line));
        }
        if (s->env)
            json_object_set_new(o, "env", json_string(s->env));
        if (s->note)
            json_object_set_new(o, "note", json_string(s->note));
        json_array_append_new(arr, o);
        return;
    }
    fprintf(out, "%-26s = %s", name, s->value ? s->value : "(none)");
    if (!strcmp(s->source, "file"))
        fprintf(out, "  # %s:%u", c->path, s->line);
    else if (!strcmp(s->source, "env"))
        fprintf(out, "  # env %s", s->env);
    else
        fprintf(out, "  # %s", s->source);
    if (s->note)
        fprintf(out, " (%s)", s->note);
    fputc('\n', out);
}

void fy_config_print(const fy_config *c, const char *journal_flag, int json, FILE *out)
{
    json_t *arr = json ? json_array() : NULL;
    char dirbuf[4096];
    if (!json)
        fprintf(out, "# configuration file %s (%s): %s\n", c->path, c->named_by, c->found ? "read" : "not found");
    for (size_t i = 0; i < fy_conf_n_keys; i++) {
        const fy_conf_key *k = &fy_conf_keys[i];
        const char *envv = k->env ? getenv(k->env) : NULL;
        if (envv && !*envv)
            envv = NULL;
        const fy_conf_value *fv = fy_config_get(c, k->section, k->key);
        /* defval: "VALUE|note"; no VALUE: none */
        char defv[64];
        const char *bar = strchr(k->defval, '|');
        snprintf(defv, sizeof defv, "%.*s", bar ? (int)(bar - k->defval) : (int)strlen(k->defval), k->defval);
        shown s = {*defv ? defv : NULL, "default", NULL, 0, bar ? bar + 1 : NULL};
        if (fv)
            s = (shown){fv->value, "file", NULL, fv->line, NULL};
        if (k->kind == FY_CONF_REFUSED) {
            /* The key itself: only whether there is one, and from where. */
            const fy_conf_value *kf = fy_config_get(c, "replayer", "api_key_file");
            s = (shown){"(not set)", "default", NULL, 0, "use api_key_file or FERRY_API_KEY"};
            if (envv)
                s = (shown){"(hidden)", "env", k->env, 0, NULL};
            else if (kf)
                s = (shown){"(hidden)", "file", NULL, kf->line, "read from api_key_file"};
            emit(c, k, &s, arr, out);
            continue;
        }
        if (k->kind == FY_CONF_LIST) {
            int any = 0;
            for (size_t j = 0; j < c->n; j++)
                if (c->v[j].k == k) {
                    shown e = {c->v[j].value, "file", NULL, c->v[j].line, NULL};
                    emit(c, k, &e, arr, out);
                    any = 1;
                }
            if (!any) {
                shown e = {NULL, "default", NULL, 0, NULL};
                emit(c, k, &e, arr, out);
            }
            continue;
        }
        if (k->env_mode == FY_ENV_WINS && envv) {
            if (!strcmp(k->env, "FERRY_API_KEY")) /* its value is the key: never shown */
                s.note = fv ? "not used: FERRY_API_KEY is set and wins" : "FERRY_API_KEY is set and wins";
            else
                s = (shown){envv, "env", k->env, 0, fv ? "wins over the file" : NULL};
        }
        if (k->env_mode == FY_ENV_OR && fy_cli_env_opt_out())
            s = (shown){"true", "env", k->env, 0, NULL};
        if (!strcmp(k->key, "dir") && !strcmp(k->section, "journal")) {
            if (journal_flag)
                s = (shown){journal_flag, "flag", NULL, 0, "-j"};
            else if (!fv && !envv) {
                const char *d = fy_cli_journal_dir(NULL, dirbuf, sizeof dirbuf);
                if (d)
                    s.value = d;
            }
        }
        emit(c, k, &s, arr, out);
    }
    if (arr) {
        json_t *o = json_object();
        json_object_set_new(o, "config_file", json_string(c->path));
        json_object_set_new(o, "named_by", json_string(c->named_by));
        json_object_set_new(o, "found", json_boolean(c->found));
        json_object_set_new(o, "settings", arr);
        char *s = json_dumps(o, JSON_COMPACT);
        if (s)
            fprintf(out, "%s\n", s);
        free(s);
        json_decref(o);
    }
}

void fy_config_free(fy_config *c)
{
    for (size_t i = 0; i < c->n; i++)
        free(c->v[i].value);
    free(c->v);
    for (int i = 1; c->argv && i <= c->n_injected; i++)
        free(c->argv[i]);
    free(c->argv);
    free(c->inj_value);
    free(c->path);
    if (current_cfg == c) {
        current_cfg = NULL;
        current_value = NULL;
        fy_cli_usage_hook = NULL;
    }
    memset(c, 0, sizeof *c);
}

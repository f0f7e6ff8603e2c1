/* fy_config.h: the configuration file shared by the ferry programs (internal).
 *
 * One INI file (default /etc/ferry/ferry.conf; --config FILE or
 * $FERRY_CONFIG name another) holds settings for every program. A table maps
 * each (section, key) to the long option it stands for in each program; a
 * program's settings are put in front of its own arguments as long options
 * ("--max-size=64M"), so they are checked by exactly the code that checks the
 * flag and any flag given later on the command line wins. Precedence:
 * command line > environment (FERRY_JOURNAL, FERRY_API_KEY) > file > default;
 * opt-out is the exception: any source that asks for it wins.
 *
 * A key's bad value is reported as "FILE:LINE: [section] key = value: why"
 * with exit code 78 (EX_CONFIG): options read by fy_config_getopt make
 * fy_cli_usage_error name the file's line instead of the flag. */
#ifndef FY_CONFIG_H
#define FY_CONFIG_H

#include <getopt.h>
#include <stdio.h>
#include <time.h>

#define FY_CONFIG_DEFAULT "/etc/ferry/ferry.conf"

/* The programs that read the file. */
enum fy_prog { FY_PROG_RECORD, FY_PROG_REPLAY, FY_PROG_JOURNAL, FY_PROG_N };

enum fy_conf_kind {
    FY_CONF_ARG,     /* the value is the option's argument */
    FY_CONF_BOOL,    /* true: the option (no argument) is given; false: nothing */
    FY_CONF_NOT,     /* false: the option (no argument) is given ("gzip = false": --no-gzip) */
    FY_CONF_LIST,    /* repeatable: every line of the key is one item */
    FY_CONF_REFUSED  /* never read from a file (the API key): always an error */
};

enum fy_conf_env {
    FY_ENV_NONE,
    FY_ENV_WINS,  /* the variable, when set, takes precedence over the file */
    FY_ENV_OR     /* a boolean: true in the file or in the variable (opt-out) */
};

typedef struct fy_conf_key {
    const char *section, *key;
    enum fy_conf_kind kind;
    enum fy_conf_env env_mode;
    const char *env;               /* the environment variable, if any */
    const char *opt[FY_PROG_N];    /* the long option per program; NULL: unused there */
    const char *defval;            /* shown by ferry-journal config */
    /* Checks a value no program option checks (privacy lists): 0 or -1 with
     * a reason in why. NULL: the programs' options check it. */
    int (*check)(const char *value, char *why, size_t n);
} fy_conf_key;

extern const fy_conf_key fy_conf_keys[];
extern const size_t fy_conf_n_keys;

typedef struct fy_conf_value {
    const fy_conf_key *k;
    char *value;
    unsigned line;
} fy_conf_value;

typedef struct fy_config {
    const char *prog;
    enum fy_prog which;
    char *path;           /* the file named or the default */
    const char *named_by; /* "--config", "FERRY_CONFIG" or "default" */
    int found;            /* the file existed and was read */
    int quiet;            /* no error messages (fy_config_file_opt_out) */
    struct timespec seen_mtime; /* fy_config_file_opt_out: the file last read */
    long long seen_size, seen_ino;
    int seen_opt_out;
    fy_conf_value *v;     /* in file order */
    size_t n;
    /* the argument vector built by fy_config_args */
    char **argv;
    int argc, n_injected;
    size_t *inj_value;    /* argv[1 + i] comes from v[inj_value[i]] */
} fy_config;

/* Finds --config FILE in *argv (pre-parsing with the program's own options;
 * the program must list "config" with a required argument), else
 * $FERRY_CONFIG, else the default file (its absence is fine); reads it and
 * replaces *argc and *argv by: argv[0], this program's settings from the file as
 * long options, the original arguments. Returns 0, or EX_CONFIG after
 * printing "PROG: FILE:LINE: ..." (unknown section or key, a value no
 * option checks, syntax, a missing file that was named). */
int fy_config_args(fy_config *c, const char *prog, enum fy_prog which, int *argc, char ***argv,
                   const char *shortopts, const struct option *longopts);

/* getopt_long that remembers whether the option it returns came from the
 * file, for fy_cli_usage_error. */
int fy_config_getopt(fy_config *c, int argc, char **argv, const char *shortopts, const struct option *longopts);

/* "FILE:LINE: [section] key" when arg (an optarg) came from the file, else
 * NULL: for errors found after option parsing (an unreadable key file). */
const char *fy_config_origin(const fy_config *c, const char *arg, char *buf, size_t n);

/* The last value of a key in the file, or NULL. */
const fy_conf_value *fy_config_get(const fy_config *c, const char *section, const char *key);

/* Opt-out: the environment (FERRY_OPT_OUT=1/true/yes) or [recorder] opt_out
 * in the file. Returns 1 and describes the source in why, else 0. */
int fy_config_opt_out(const fy_config *c, char *why, size_t n);

/* --check-config's answer on stdout: "PROG: configuration OK (configuration
 * file F: read)", and the opt-out when any source (opt_out_flag: the
 * program's --opt-out) asks for it: "a run <opted_out_means>". */
void fy_config_check_ok(const fy_config *c, int opt_out_flag, const char *opted_out_means);

/* The same for a long-running program: the file is read again when it
 * changed (errors in it are then ignored); the environment is not looked at. */
int fy_config_file_opt_out(fy_config *c, char *why, size_t n);

/* ferry-journal config: every key, its effective value and where it comes
 * from (default, FILE:LINE, environment, flag); secrets are never printed.
 * journal_flag: ferry-journal's -j value when given on the command line. */
void fy_config_print(const fy_config *c, const char *journal_flag, int json, FILE *out);

void fy_config_free(fy_config *c);

#endif

/* fy_cli.h: conventions every ferry program shares (internal).
 * Journal location, exit codes, size parsing and a bounded line reader. */
#ifndef FY_CLI_H
#define FY_CLI_H

#include <stdint.h>
#include <stdio.h>
#include <sysexits.h>

#include "ferry_error.h"
#include "fy_buf.h"

/* The journal directory: the -j value if given, else $FERRY_JOURNAL, else
 * /var/lib/ferry/journal for root, else $XDG_STATE_HOME/ferry/journal
 * (default ~/.local/state/ferry/journal). Returns NULL if none can be made. */
const char *fy_cli_journal_dir(const char *flag, char *buf, size_t n);

/* Prints "PROG: <message>" and "Try 'PROG --help'." on stderr and returns
 * EX_USAGE, for `return fy_cli_usage_error(PROG, "...", ...);`. */
int fy_cli_usage_error(const char *prog, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;
/* Set by fy_config while an option from the configuration file is parsed:
 * fy_cli_usage_error hands it the message, it prints it naming the file's
 * line and returns the exit code (EX_CONFIG). Returns 0 to decline. */
extern int (*fy_cli_usage_hook)(const char *prog, const char *msg);

/* FERRY_OPT_OUT is 1, true or yes (any case). */
int fy_cli_env_opt_out(void);

/* The sysexits code for an error (README, "Exit codes"). */
int fy_cli_exit_code(ferry_err e);

/* "65536", "512K", "64M", "1G" (powers of 1024). Returns 0 on success. */
int fy_cli_parse_size(const char *s, uint64_t *out);
/* A whole decimal integer. Returns 0 on success. */
int fy_cli_parse_i64(const char *s, int64_t *out);

/* ms since the epoch as "2026-11-29T08:00:00.000Z" (UTC); "-" for ms <= 0. */
void fy_cli_format_time(int64_t ms, char *out, size_t n);
/* A time for --since/--until: ms since the epoch, ISO 8601 ("2026-11-29",
 * "2026-11-29T08:00:00.5Z", "...+02:00"), or an age before now_ms ("90s",
 * "15m", "2h", "7d"). Returns 0 on success. */
int fy_cli_parse_time(const char *s, int64_t now_ms, int64_t *ms);

/* Reads lines of at most max bytes; longer ones are skipped, not buffered. */
typedef struct fy_line_reader {
    FILE *f;
    fy_buf line;
    size_t max;
    unsigned long lineno; /* of the line last returned */
} fy_line_reader;

void fy_lines_init(fy_line_reader *r, FILE *f, size_t max);
void fy_lines_free(fy_line_reader *r);
/* 1: a line (without its newline) in r->line; 0: end of input; -1: read
 * error (errno set). *too_long is set when the line exceeded max bytes; its
 * content is then discarded. */
int fy_lines_next(fy_line_reader *r, int *too_long);

#endif

/* service.h: `ferry-record --listen PATH`, a local recording service (internal).
 *
 * Clients connect to a Unix stream socket and send one Amplitude event JSON
 * object per line; each line is answered, in order, with `ok SEQ` once the
 * event is durable or `error REASON`. Events from every connection are
 * committed together (group commit: one transaction, one fsync for many
 * events). The protocol, options and limits are described in README.md
 * ("ferry-record --listen") and in service.c. */
#ifndef FY_SERVICE_H
#define FY_SERVICE_H

#include "ferry.h"

typedef struct fy_service_opts {
    const char *listen;       /* --listen PATH: the socket */
    const char *socket_mode;  /* --socket-mode MODE, octal; NULL: 0660 */
    const char *socket_group; /* --socket-group NAME|GID; NULL: the process's */
    const char *socket_owner; /* --socket-owner NAME|UID; NULL: the process's */
    const char *max_clients;  /* --max-clients N; NULL: 256 */
    int verbose;              /* -v: log each connection */
    /* Optional check of each event line before it is parsed (--strict: the
     * event catalog); nonzero refuses the line with ferry_last_error(). */
    ferry_err (*check)(const void *arg, const char *json, size_t len);
    const void *check_arg;
} fy_service_opts;

/* Whether a service option other than listen was given (they need --listen). */
int fy_service_opts_given(const fy_service_opts *o);

/* Runs the service in the foreground: binds the socket (or takes systemd's,
 * see service.c), opens the journal in journal_dir with jopts, and serves
 * until SIGTERM, SIGINT or SIGHUP, which stay blocked when it returns (the
 * caller exits with the result). Logs to stderr. Returns the exit code:
 * 0 after a clean shutdown, 64 bad option value, 69 another service listens
 * on the socket, 73 the socket cannot be created, 74 the journal failed, or
 * the journal's own code when it cannot be opened. */
int fy_service_main(const char *prog, const fy_service_opts *o, const char *journal_dir,
                    const ferry_options *jopts);

/* The grammar of one client line, without its newline (service.c, for the
 * fuzzer in tests/fuzz): what it is, and in *len its length without a
 * trailing '\r' (and, for commands, trailing blanks). */
typedef enum fy_line_kind {
    FY_LINE_BLANK,       /* ignored, not answered */
    FY_LINE_EVENT,       /* an event: p[0..len) goes to the JSON parser */
    FY_LINE_NOACK,       /* #ferry noack */
    FY_LINE_ACK,         /* #ferry ack */
    FY_LINE_SYNC,        /* #ferry sync */
    FY_LINE_BAD_COMMAND, /* any other line starting with '#': answered with an error */
    FY_LINE_TOO_LONG     /* over the line limit (1 MiB): answered with an error */
} fy_line_kind;
fy_line_kind fy_service_line(const char *p, size_t n, size_t *len);
/* Copies src as the one-line reason of an `error` answer into dst[n]:
 * control characters become spaces, at most 400 bytes. */
void fy_service_reason(char *dst, size_t n, const char *src);

#endif

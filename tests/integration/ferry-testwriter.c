/* ferry-testwriter: a small driver for the integration tests (tests/integration).
 *
 *   ferry-testwriter record DIR PREFIX COUNT [STOPFILE [PAUSE_US]]
 *       Records COUNT events one at a time with ferry_record() (each its own
 *       durable transaction, default options). Event i has insert_id
 *       "PREFIX-i", device_id PREFIX and event_properties {"writer":PREFIX,"i":i}.
 *       After each successful call it prints "PREFIX-i SEQ" on stdout and
 *       flushes, so a test that SIGKILLs it knows what was acknowledged. Stops
 *       early (exit 0) when STOPFILE exists ("-": no stop file); sleeps
 *       PAUSE_US microseconds between events.
 *   ferry-testwriter cursor DIR SINK DELIVERED
 *       Writes the cursor row of destination SINK with the watermark DELIVERED.
 *   ferry-testwriter set-format DIR MAJOR MINOR
 *       Overwrites meta "format" (u32 BE major, u32 BE minor).
 *   ferry-testwriter maxrss OUTFILE PROGRAM ARGS...
 *       Runs PROGRAM, writes its maximum resident set size in KiB to OUTFILE
 *       and exits with its exit code (128 + signal when killed). A child of
 *       this small process, unlike one of Python, does not inherit a large
 *       high-water mark through fork.
 *
 * Exit codes: 0 ok, 64 usage, otherwise the sysexits code of the ferry error. */
#include "ferry.h"
#include "fy_cli.h"
#include "fy_journal.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#define PROG "ferry-testwriter"

static int usage(void)
{
    fprintf(stderr, "usage: " PROG " record DIR PREFIX COUNT [STOPFILE [PAUSE_US]]\n"
                    "       " PROG " cursor DIR SINK DELIVERED\n"
                    "       " PROG " set-format DIR MAJOR MINOR\n"
                    "       " PROG " maxrss OUTFILE PROGRAM ARGS...\n");
    return EX_USAGE;
}

static int parse_u64(const char *s, uint64_t *out)
{
    char *end;
    errno = 0;
    if (!*s || *s == '-')
        return -1;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || *end)
        return -1;
    *out = v;
    return 0;
}

static int fail(ferry_err e, const char *what)
{
    fprintf(stderr, PROG ": %s: %s\n", what, ferry_last_error());
    return fy_cli_exit_code(e);
}

static int cmd_record(int argc, char **argv)
{
    uint64_t count, pause_us = 0;
    if (argc < 5 || argc > 7 || parse_u64(argv[4], &count) || (argc == 7 && parse_u64(argv[6], &pause_us)))
        return usage();
    const char *dir = argv[2], *prefix = argv[3];
    const char *stopfile = argc >= 6 && strcmp(argv[5], "-") ? argv[5] : NULL;
    ferry_journal *j;
    ferry_err e = ferry_open(dir, NULL, &j);
    if (e)
        return fail(e, "open");
    int status = EX_OK;
    for (uint64_t i = 0; i < count; i++) {
        if (stopfile && access(stopfile, F_OK) == 0)
            break;
        char id[256], props[512];
        snprintf(id, sizeof id, "%s-%" PRIu64, prefix, i);
        snprintf(props, sizeof props, "{\"writer\":\"%s\",\"i\":%" PRIu64 "}", prefix, i);
        ferry_event ev = {.event_type = "integ", .device_id = prefix, .insert_id = id,
                          .event_properties = props};
        uint64_t seq = 0;
        if ((e = ferry_record(j, &ev, &seq))) {
            status = fail(e, id);
            break;
        }
        if (printf("%s %" PRIu64 "\n", id, seq) < 0 || fflush(stdout) != 0) {
            perror(PROG ": stdout");
            status = EX_IOERR;
            break;
        }
        if (pause_us)
            usleep((useconds_t)pause_us);
    }
    ferry_close(j);
    return status;
}

static int cmd_cursor(int argc, char **argv)
{
    uint64_t delivered;
    if (argc != 5 || parse_u64(argv[4], &delivered))
        return usage();
    fy_journal j;
    fy_open_opts o = {0};
    ferry_err e = fy_journal_open(&j, argv[2], &o);
    if (e)
        return fail(e, "open");
    MDB_txn *txn;
    if ((e = fy_txn_begin(&j, 0, &txn))) {
        fy_journal_close(&j);
        return fail(e, "begin");
    }
    fy_cursor c;
    memset(&c, 0, sizeof c);
    c.delivered = delivered;
    c.sent = delivered;
    if ((e = fy_cursor_put(&j, txn, argv[3], &c))) {
        mdb_txn_abort(txn);
        fy_journal_close(&j);
        return fail(e, "cursor");
    }
    e = fy_txn_commit(&j, txn, "the cursor"); /* on failure the txn is gone already */
    fy_journal_close(&j);
    return e ? fail(e, "commit") : EX_OK;
}

static int cmd_set_format(int argc, char **argv)
{
    uint64_t major, minor;
    if (argc != 5 || parse_u64(argv[3], &major) || parse_u64(argv[4], &minor) || major > UINT32_MAX ||
        minor > UINT32_MAX)
        return usage();
    fy_journal j;
    fy_open_opts o = {0};
    ferry_err e = fy_journal_open(&j, argv[2], &o);
    if (e)
        return fail(e, "open");
    MDB_txn *txn;
    if ((e = fy_txn_begin(&j, 0, &txn))) {
        fy_journal_close(&j);
        return fail(e, "begin");
    }
    unsigned char v[8];
    fy_put_be64(v, (major << 32) | minor);
    MDB_val k = {6, (void *)(uintptr_t) "format"}, d = {8, v};
    int rc = mdb_put(txn, j.meta, &k, &d, 0);
    if (rc) {
        mdb_txn_abort(txn);
        fy_journal_close(&j);
        fprintf(stderr, PROG ": mdb_put: %s\n", mdb_strerror(rc));
        return EX_IOERR;
    }
    e = fy_txn_commit(&j, txn, "the format version");
    fy_journal_close(&j);
    return e ? fail(e, "commit") : EX_OK;
}

static int cmd_maxrss(int argc, char **argv)
{
    if (argc < 4)
        return usage();
    pid_t pid = fork();
    if (pid < 0) {
        perror(PROG ": fork");
        return EX_OSERR;
    }
    if (pid == 0) {
        execvp(argv[3], argv + 3);
        perror(PROG ": exec");
        _exit(127);
    }
    int status;
    struct rusage ru;
    pid_t r;
    while ((r = wait4(pid, &status, 0, &ru)) < 0 && errno == EINTR)
        ;
    if (r < 0) {
        perror(PROG ": wait4");
        return EX_OSERR;
    }
    FILE *f = fopen(argv[2], "w");
    if (!f || fprintf(f, "%ld\n", ru.ru_maxrss) < 0 || fclose(f) != 0) {
        perror(PROG ": writing the result");
        return EX_IOERR;
    }
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

int main(int argc, char **argv)
{
    if (argc < 2)
        return usage();
    if (!strcmp(argv[1], "record"))
        return cmd_record(argc, argv);
    if (!strcmp(argv[1], "cursor"))
        return cmd_cursor(argc, argv);
    if (!strcmp(argv[1], "set-format"))
        return cmd_set_format(argc, argv);
    if (!strcmp(argv[1], "maxrss"))
        return cmd_maxrss(argc, argv);
    return usage();
}

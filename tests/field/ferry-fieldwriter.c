/* ferry-fieldwriter: a small driver for the field tests (tests/field).
 *
 *   ferry-fieldwriter append-raw DIR HEX...
 *       Appends each hex-encoded record to the journal at DIR (created when
 *       missing) in one transaction, exactly as given, and prints the first
 *       sequence number. The tests use it for records no current recorder
 *       writes, e.g. strings with invalid UTF-8 that an older or foreign
 *       writer could have stored (the decoder accepts them; FORMAT.md).
 *
 *   ferry-fieldwriter cursor DIR SINK DELIVERED [ABOVE...]
 *       Writes destination SINK's cursor row with that watermark and
 *       out-of-order list, as given (even when inconsistent: for verify).
 *
 * Exit codes: 0 ok, 64 usage, otherwise the sysexits code of the ferry error. */
#include "fy_cli.h"
#include "fy_journal.h"
#include "ferry.h"

#include <inttypes.h>
#include <lmdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int hexval(int c)
{
    return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
}

static int cmd_cursor(int argc, char **argv)
{
    fy_journal j;
    fy_open_opts o = {0};
    fy_cursor c;
    int found;
    MDB_txn *txn;
    ferry_err e = fy_journal_open(&j, argv[2], &o);
    if (e)
        return fy_cli_exit_code(e);
    if (!(e = fy_txn_begin(&j, 0, &txn))) {
        if (!(e = fy_cursor_get(&j, txn, argv[3], &c, &found))) {
            free(c.above);
            c.delivered = strtoull(argv[4], NULL, 10);
            c.n_above = (size_t)argc - 5;
            c.above = calloc(c.n_above + 1, sizeof *c.above);
            for (size_t i = 0; i < c.n_above; i++)
                c.above[i] = strtoull(argv[5 + i], NULL, 10);
            e = fy_cursor_put(&j, txn, argv[3], &c);
            fy_cursor_free(&c);
        }
        if (e)
            mdb_txn_abort(txn);
        else
            e = fy_txn_commit(&j, txn, "the cursor");
    }
    fy_journal_close(&j);
    return fy_cli_exit_code(e);
}

int main(int argc, char **argv)
{
    if (argc >= 5 && !strcmp(argv[1], "cursor"))
        return cmd_cursor(argc, argv);
    if (argc < 4 || strcmp(argv[1], "append-raw")) {
        fprintf(stderr, "usage: ferry-fieldwriter append-raw DIR HEX...\n"
                        "       ferry-fieldwriter cursor DIR SINK DELIVERED [ABOVE...]\n");
        return EX_USAGE;
    }
    size_t n = (size_t)argc - 3;
    fy_rec_ref *refs = calloc(n, sizeof *refs);
    if (!refs)
        return EX_OSERR;
    for (size_t i = 0; i < n; i++) {
        const char *h = argv[3 + i];
        size_t len = strlen(h);
        unsigned char *b = malloc(len / 2 + 1);
        if (!b || len % 2)
            return EX_USAGE;
        for (size_t k = 0; k < len / 2; k++) {
            int hi = hexval(h[2 * k]), lo = hexval(h[2 * k + 1]);
            if (hi < 0 || lo < 0)
                return EX_USAGE;
            b[k] = (unsigned char)(hi * 16 + lo);
        }
        refs[i].data = b;
        refs[i].len = len / 2;
    }
    fy_journal j;
    fy_open_opts o = {.create = 1};
    ferry_err e = fy_journal_open(&j, argv[2], &o);
    uint64_t first = 0;
    if (!e)
        e = fy_journal_append(&j, refs, n, 0, &first);
    if (e)
        fprintf(stderr, "ferry-fieldwriter: %s\n", ferry_last_error());
    else
        printf("%" PRIu64 "\n", first);
    if (!e)
        fy_journal_close(&j);
    for (size_t i = 0; i < n; i++)
        free((void *)(uintptr_t)refs[i].data);
    free(refs);
    return fy_cli_exit_code(e);
}

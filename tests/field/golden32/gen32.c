/* gen32: makes the golden capture of tests/field/data with a 32-bit build
 * (make-golden32.sh compiles it with gcc -m32 against the i386 libraries).
 *
 *   gen32 DIR CAPTURE EXPECTED JSONL...
 *
 * Records every line of the JSONL files into a new journal at DIR through
 * libferry, marks the first 10 events delivered to "amplitude" and event 12
 * dead (400, "Invalid id length for device_id") like a replayer would, writes
 * what `ferry-journal dump` prints to EXPECTED, then exports everything with
 * `ferry-journal export --format capture` (fj_cmd_export) to CAPTURE. */
#include "fj.h"
#include "ferry.h"
#include "fy_fail.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int die(const char *what)
{
    fprintf(stderr, "gen32: %s: %s\n", what, ferry_last_error());
    return 1;
}

int main(int argc, char **argv)
{
    if (argc < 5) {
        fprintf(stderr, "usage: gen32 DIR CAPTURE EXPECTED JSONL...\n");
        return 64;
    }
    ferry_journal *fj;
    if (ferry_open(argv[1], NULL, &fj))
        return die("open");
    for (int i = 4; i < argc; i++) {
        FILE *f = fopen(argv[i], "r");
        char line[65536];
        if (!f)
            return die(argv[i]);
        while (fgets(line, sizeof line, f))
            if (line[0] == '{' && ferry_record_json(fj, line, strlen(line), NULL))
                return die("record");
        fclose(f);
    }
    ferry_close(fj);

    fy_journal j;
    fy_open_opts o = {0};
    MDB_txn *txn;
    if (fy_journal_open(&j, argv[1], &o) || fy_txn_begin(&j, 0, &txn))
        return die("reopen");
    fy_cursor c;
    int found;
    uint64_t done[11];
    for (unsigned i = 0; i < 10; i++)
        done[i] = i + 1;
    done[10] = 12;
    unsigned char kb[8];
    fy_put_be64(kb, 12);
    MDB_val k = {8, kb}, d;
    if (fy_cursor_get(&j, txn, "amplitude", &c, &found) || mdb_get(txn, j.events, &k, &d) ||
        fy_dead_put(&j, txn, "amplitude", 12, 400, "Invalid id length for device_id", d.mv_data, d.mv_size) ||
        fy_cursor_mark_done(&j, txn, &c, done, 11))
        return die("cursor");
    c.sent = 10;
    c.dead = 1;
    c.last_success_ms = fy_now_ms();
    if (fy_cursor_put(&j, txn, "amplitude", &c) || fy_txn_commit(&j, txn, "cursor"))
        return die("commit");
    fy_cursor_free(&c);

    /* What dump prints, from this 32-bit build. */
    FILE *out = fopen(argv[3], "w");
    if (!out || fy_txn_begin(&j, MDB_RDONLY, &txn))
        return die("expected");
    MDB_cursor *cur;
    mdb_cursor_open(txn, j.events, &cur);
    fy_buf b;
    fy_buf_init(&b, 0);
    for (int rc = mdb_cursor_get(cur, &k, &d, MDB_FIRST); !rc; rc = mdb_cursor_get(cur, &k, &d, MDB_NEXT)) {
        fy_record r;
        if (fy_record_decode(d.mv_data, d.mv_size, &r))
            return die("decode");
        fy_buf_reset(&b);
        fj_json_line(&b, fy_get_be64(k.mv_data), &r);
        fy_record_free(&r);
        fwrite(b.data, 1, b.len, out);
    }
    fy_buf_free(&b);
    mdb_cursor_close(cur);
    mdb_txn_abort(txn);
    fclose(out);

    char *args[] = {"export", "--format", "capture", "--output", argv[2], NULL};
    int rc = fj_cmd_export(&j, 5, args);
    fy_journal_close(&j);
    return rc;
}

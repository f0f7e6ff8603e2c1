/* bench_sys.h: the operating-system side of ferry-bench: clocks, I/O
 * counters, file sizes, scratch directories and the machine description. */
#ifndef BENCH_SYS_H
#define BENCH_SYS_H

#include <stddef.h>
#include <stdint.h>

/* Monotonic seconds. */
double bench_now(void);

/* write_bytes of /proc/self/io: bytes this process caused to be sent to the
 * block layer (counted when a page is first dirtied, or at direct I/O).
 * -1 when the kernel does not provide it. */
int64_t bench_write_bytes(void);

/* Apparent size and allocated bytes (st_blocks * 512) of a file; both 0 when
 * it does not exist. */
void bench_file_size(const char *path, uint64_t *size, uint64_t *alloc);

/* Removes a directory tree; errors are ignored. */
void bench_rm_rf(const char *path);

/* Filesystem of path: fills type (e.g. "ext4") and the mount's device and
 * options; returns 1 when it is a RAM filesystem (tmpfs, ramfs), on which
 * fsync costs nothing. */
int bench_fs_info(const char *path, char *type, size_t type_len, char *device, size_t device_len,
                  char *options, size_t options_len);

/* For ext4 on device (e.g. "/dev/vda"): 1 when it has a journal (a jbd2
 * entry in /proc/fs/jbd2), 0 when not, -1 when unknown. fsync on a journaled
 * ext4 also commits the journal: device writes no process is charged for. */
int bench_ext4_journal(const char *device);

/* One line: "<n> CPUs, <model>, <kernel> <machine>". */
void bench_machine(char *out, size_t len);

/* ISO 8601 UTC time of now. */
void bench_date(char *out, size_t len);

#endif

/* fuzz_replay.c: feeds every file of the given corpus directories (or
 * single files) to LLVMFuzzerTestOneInput, so that ctest replays the
 * committed corpus in every build, sanitizers included, without libFuzzer.
 * Exit status 0 when every input passed (a failing input aborts). */
#include <dirent.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#if defined(__has_feature)
#if __has_feature(address_sanitizer)
#define REPLAY_ASAN 1
#endif
#endif
#if defined(__SANITIZE_ADDRESS__) && !defined(REPLAY_ASAN)
#define REPLAY_ASAN 1
#endif

#define REPLAY_MAX_INPUT (1u << 20)

static int replay_file(const char *path, unsigned long *count)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "fuzz_replay: %s: %s\n", path, strerror(errno));
        return -1;
    }
    static uint8_t buf[REPLAY_MAX_INPUT + 1];
    size_t n = fread(buf, 1, sizeof buf, f);
    int bad = ferror(f);
    fclose(f);
    if (bad || n > REPLAY_MAX_INPUT) {
        fprintf(stderr, "fuzz_replay: %s: unreadable or larger than %u bytes\n", path, REPLAY_MAX_INPUT);
        return -1;
    }
    /* an exact-size heap copy, so that ASan sees reads past the end */
    uint8_t *data = malloc(n ? n : 1);
    if (!data)
        return -1;
    memcpy(data, buf, n);
    LLVMFuzzerTestOneInput(data, n);
    free(data);
    (*count)++;
    return 0;
}

static int replay(const char *path, unsigned long *count)
{
    struct stat st;
    if (stat(path, &st) != 0) {
        fprintf(stderr, "fuzz_replay: %s: %s\n", path, strerror(errno));
        return -1;
    }
    if (!S_ISDIR(st.st_mode))
        return replay_file(path, count);
    DIR *d = opendir(path);
    if (!d) {
        fprintf(stderr, "fuzz_replay: %s: %s\n", path, strerror(errno));
        return -1;
    }
    int rc = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.')
            continue;
        char full[4096];
        if ((size_t)snprintf(full, sizeof full, "%s/%s", path, e->d_name) >= sizeof full)
            continue;
        if (stat(full, &st) == 0 && S_ISREG(st.st_mode) && replay_file(full, count) != 0)
            rc = -1;
    }
    closedir(d);
    return rc;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: %s CORPUS_DIR_OR_FILE...\n", argv[0]);
        return 2;
    }
#ifndef REPLAY_ASAN
    /* as in the fuzzer: no input may make the decoder allocate much */
    struct rlimit rl = {(rlim_t)1 << 30, (rlim_t)1 << 30};
    setrlimit(RLIMIT_AS, &rl);
#endif
    unsigned long count = 0;
    int rc = 0;
    for (int i = 1; i < argc; i++)
        if (replay(argv[i], &count) != 0)
            rc = 1;
    printf("fuzz_replay: %lu inputs replayed\n", count);
    if (count == 0) {
        fprintf(stderr, "fuzz_replay: no inputs found\n");
        return 1;
    }
    return rc;
}

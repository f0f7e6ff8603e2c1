/* service-load: the load generator behind service-bench.py (not a test).
 *
 *   service-load --corpus FILE --clients N --events M --socket PATH [--window W]
 *   service-load --corpus FILE --clients N --events M --spawn RECORD --journal DIR
 *
 * Socket mode: N client threads connect to `ferry-record --listen PATH`; each
 * sends M events and keeps at most W of them unacknowledged (W=1: one event
 * in flight; larger: streaming, acknowledgements read as they come while the
 * client goes on sending). Spawn mode: each client thread runs one
 * `RECORD -j DIR --jsonl -` process per event, the event on its stdin: what
 * an application does without the service.
 *
 * Events: the corpus lines (Amplitude event JSON) in turn, each with a
 * 36-character insert_id put in front (client number and counter), as
 * ferry-bench makes them, so that every event is distinct and every copy of a
 * corpus line encodes to the same size. Building them is not timed.
 *
 * Latency of an event: from just before the write() that carried it to the
 * read() that brought its answer (spawn mode: from posix_spawn to the exit).
 * Prints one JSON line: {"clients":N,"events":..,"ok":..,"errors":..,
 * "seconds":..,"events_per_s":..,"p50_ms":..,"p99_ms":..,"max_ms":..,
 * "first_error":".."}. Exit 0 when every event got `ok`. */
#define _GNU_SOURCE /* pipe2 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <spawn.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

typedef struct cfg {
    const char *corpus, *socket, *spawn, *journal;
    unsigned clients, window;
    unsigned long events;
} cfg;

typedef struct client {
    const cfg *c;
    unsigned id;
    char *blob;         /* the client's events, newline-terminated, back to back */
    size_t *off;        /* event i starts at off[i], ends at off[i+1] */
    double *lat_ms;     /* per event */
    unsigned long ok, errors;
    char first_error[256];
    int failed;
} client;

static char **lines;
static size_t *line_len, n_lines;

static void die(const char *what, const char *arg)
{
    fprintf(stderr, "service-load: %s%s\n", what, arg);
    exit(2);
}

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static void load_corpus(const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f)
        die("cannot open the corpus ", path);
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    while ((n = getline(&line, &cap, f)) > 0) {
        while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r'))
            line[--n] = '\0';
        if (n < 2 || line[0] != '{')
            continue;
        lines = realloc(lines, (n_lines + 1) * sizeof *lines);
        line_len = realloc(line_len, (n_lines + 1) * sizeof *line_len);
        if (!lines || !line_len)
            die("out of memory", "");
        lines[n_lines] = strdup(line);
        line_len[n_lines++] = (size_t)n;
    }
    free(line);
    fclose(f);
    if (!n_lines)
        die("no events in ", path);
}

static void build_events(client *cl)
{
    unsigned long m = cl->c->events;
    size_t cap = 0;
    for (unsigned long i = 0; i < m; i++)
        cap += line_len[i % n_lines] + 64;
    cl->blob = malloc(cap + 1);
    cl->off = malloc((m + 1) * sizeof *cl->off);
    cl->lat_ms = calloc(m ? m : 1, sizeof *cl->lat_ms);
    if (!cl->blob || !cl->off || !cl->lat_ms)
        die("out of memory", "");
    size_t pos = 0;
    for (unsigned long i = 0; i < m; i++) {
        const char *line = lines[i % n_lines];
        const char *rest = line + 1;
        while (*rest == ' ' || *rest == '\t')
            rest++;
        cl->off[i] = pos;
        int w = snprintf(cl->blob + pos, cap + 1 - pos, "{\"insert_id\":\"%08x-0000-4000-8000-%012lx\"%s%s\n",
                         cl->id, i, *rest == '}' ? "" : ",", rest);
        pos += (size_t)w;
    }
    cl->off[m] = pos;
}

static int write_all(int fd, const char *p, size_t n)
{
    while (n) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return -1;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

static void note_error(client *cl, const char *msg, size_t n)
{
    cl->errors++;
    if (!cl->first_error[0])
        snprintf(cl->first_error, sizeof cl->first_error, "%.*s", (int)(n > 200 ? 200 : n), msg);
}

static void *run_socket(void *arg)
{
    client *cl = arg;
    const cfg *c = cl->c;
    unsigned long m = c->events, sent = 0, answered = 0;
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_un a;
    memset(&a, 0, sizeof a);
    a.sun_family = AF_UNIX;
    snprintf(a.sun_path, sizeof a.sun_path, "%s", c->socket);
    if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof a)) {
        snprintf(cl->first_error, sizeof cl->first_error, "connect: %s", strerror(errno));
        cl->failed = 1;
        return NULL;
    }
    double *t_sent = malloc((m ? m : 1) * sizeof *t_sent);
    char rbuf[65536];
    size_t rlen = 0;
    while (answered < m) {
        unsigned long upto = sent;
        while (upto < m && upto - answered < c->window)
            upto++;
        if (upto > sent) {
            double t = now_ms();
            for (unsigned long i = sent; i < upto; i++)
                t_sent[i] = t;
            if (write_all(fd, cl->blob + cl->off[sent], cl->off[upto] - cl->off[sent])) {
                snprintf(cl->first_error, sizeof cl->first_error, "write: %s", strerror(errno));
                cl->failed = 1;
                break;
            }
            sent = upto;
        }
        ssize_t r = read(fd, rbuf + rlen, sizeof rbuf - rlen);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0) {
            snprintf(cl->first_error, sizeof cl->first_error, "the service closed the connection after %lu answers",
                     answered);
            cl->failed = 1;
            break;
        }
        double t = now_ms();
        rlen += (size_t)r;
        size_t pos = 0;
        char *nl;
        while ((nl = memchr(rbuf + pos, '\n', rlen - pos))) {
            size_t n = (size_t)(nl - (rbuf + pos));
            if (answered < m) {
                if (n > 3 && !memcmp(rbuf + pos, "ok ", 3))
                    cl->ok++;
                else
                    note_error(cl, rbuf + pos, n);
                cl->lat_ms[answered] = t - t_sent[answered];
                answered++;
            }
            pos += n + 1;
        }
        memmove(rbuf, rbuf + pos, rlen - pos);
        rlen -= pos;
    }
    free(t_sent);
    close(fd);
    return NULL;
}

static void *run_spawn(void *arg)
{
    client *cl = arg;
    const cfg *c = cl->c;
    static char opt_j[] = "-j", opt_jsonl[] = "--jsonl", dash[] = "-";
    char *argv[] = {(char *)(uintptr_t)c->spawn, opt_j, (char *)(uintptr_t)c->journal, opt_jsonl, dash, NULL};
    for (unsigned long i = 0; i < c->events; i++) {
        int p[2];
        /* Close-on-exec: another thread's child must not inherit this
         * pipe's write end (its reader would never see EOF). */
        if (pipe2(p, O_CLOEXEC)) {
            cl->failed = 1;
            break;
        }
        posix_spawn_file_actions_t fa;
        posix_spawn_file_actions_init(&fa);
        posix_spawn_file_actions_adddup2(&fa, p[0], 0);
        posix_spawn_file_actions_addclose(&fa, p[0]);
        posix_spawn_file_actions_addclose(&fa, p[1]);
        posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
        double t = now_ms();
        pid_t pid;
        int rc = posix_spawn(&pid, c->spawn, &fa, NULL, argv, environ);
        posix_spawn_file_actions_destroy(&fa);
        close(p[0]);
        if (rc) {
            close(p[1]);
            snprintf(cl->first_error, sizeof cl->first_error, "spawn: %s", strerror(rc));
            cl->failed = 1;
            break;
        }
        write_all(p[1], cl->blob + cl->off[i], cl->off[i + 1] - cl->off[i]);
        close(p[1]);
        int st;
        while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
            ;
        cl->lat_ms[i] = now_ms() - t;
        if (WIFEXITED(st) && WEXITSTATUS(st) == 0)
            cl->ok++;
        else
            note_error(cl, "ferry-record failed", 19);
    }
    return NULL;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

int main(int argc, char **argv)
{
    cfg c = {0};
    c.window = 1;
    c.clients = 1;
    c.events = 1000;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!v)
            die("an option needs a value: ", a);
        if (!strcmp(a, "--corpus"))
            c.corpus = v;
        else if (!strcmp(a, "--socket"))
            c.socket = v;
        else if (!strcmp(a, "--spawn"))
            c.spawn = v;
        else if (!strcmp(a, "--journal"))
            c.journal = v;
        else if (!strcmp(a, "--clients"))
            c.clients = (unsigned)strtoul(v, NULL, 10);
        else if (!strcmp(a, "--events"))
            c.events = strtoul(v, NULL, 10);
        else if (!strcmp(a, "--window"))
            c.window = (unsigned)strtoul(v, NULL, 10);
        else
            die("unknown option ", a);
        i++;
    }
    if (!c.corpus || (!c.socket && !(c.spawn && c.journal)) || !c.clients || !c.window)
        die("", "usage: service-load --corpus FILE --clients N --events M (--socket PATH [--window W] | "
                  "--spawn RECORD --journal DIR)");
    load_corpus(c.corpus);
    client *cl = calloc(c.clients, sizeof *cl);
    pthread_t *th = calloc(c.clients, sizeof *th);
    if (!cl || !th)
        die("out of memory", "");
    for (unsigned k = 0; k < c.clients; k++) {
        cl[k].c = &c;
        cl[k].id = k + 1;
        build_events(&cl[k]);
    }
    double t0 = now_ms();
    for (unsigned k = 0; k < c.clients; k++)
        pthread_create(&th[k], NULL, c.socket ? run_socket : run_spawn, &cl[k]);
    for (unsigned k = 0; k < c.clients; k++)
        pthread_join(th[k], NULL);
    double secs = (now_ms() - t0) / 1e3;
    unsigned long total = c.events * c.clients, ok = 0, errors = 0, nlat = 0;
    const char *first = "";
    int failed = 0;
    double *all = malloc((total ? total : 1) * sizeof *all);
    for (unsigned k = 0; k < c.clients; k++) {
        ok += cl[k].ok;
        errors += cl[k].errors;
        failed |= cl[k].failed;
        if (!*first && cl[k].first_error[0])
            first = cl[k].first_error;
        for (unsigned long i = 0; i < cl[k].ok + cl[k].errors && i < c.events; i++)
            all[nlat++] = cl[k].lat_ms[i];
    }
    qsort(all, nlat, sizeof *all, cmp_double);
    double p50 = nlat ? all[nlat / 2] : 0, p99 = nlat ? all[(nlat * 99) / 100 < nlat ? (nlat * 99) / 100 : nlat - 1] : 0;
    double mx = nlat ? all[nlat - 1] : 0;
    printf("{\"clients\":%u,\"window\":%u,\"events\":%lu,\"ok\":%lu,\"errors\":%lu,\"seconds\":%.4f,"
           "\"events_per_s\":%.1f,\"p50_ms\":%.3f,\"p99_ms\":%.3f,\"max_ms\":%.3f,\"first_error\":\"",
           c.clients, c.socket ? c.window : 1, total, ok, errors, secs, secs > 0 ? (double)ok / secs : 0.0, p50, p99,
           mx);
    for (const char *p = first; *p; p++)
        if (*p == '"' || *p == '\\')
            printf("\\%c", *p);
        else if ((unsigned char)*p >= 0x20)
            putchar(*p);
    printf("\"}\n");
    for (unsigned k = 0; k < c.clients; k++) {
        free(cl[k].blob);
        free(cl[k].off);
        free(cl[k].lat_ms);
    }
    free(cl);
    free(th);
    free(all);
    return (failed || ok != total) ? 1 : 0;
}

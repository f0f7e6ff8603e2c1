/* replay.h: one drain of a journal to one destination (replayer/ only). */
#ifndef REPLAY_H
#define REPLAY_H

#include <stddef.h>
#include <stdint.h>

typedef struct rp_config {
    const char *journal_dir;
    const char *url;          /* full endpoint URL */
    const char *sink;         /* cursor name */
    const char *api_key;
    const char *ca_file;      /* extra CA bundle; NULL: the system's */
    int follow;               /* daemon; else --once */
    int gzip;
    int keep_delivered;       /* keep delivered events (forensics) until space is needed */
    int progress;             /* progress line on stderr */
    int json;                 /* summary as JSON on stdout */
    double timeout_s;         /* per request */
    double max_retry_delay_s; /* backoff cap */
    double retry_for_s;       /* --once: give up (exit 75) after this long without success */
    double device_rate;       /* events/s per device; 0: no pacing */
    double throttle_wait_s;   /* least pause of a throttled device (Amplitude: 30 s) */
    size_t max_events;        /* per request */
    size_t max_bytes;         /* per request, before compression */
    /* --follow: nonzero when the user opted out since the start (it prints
     * why); the run then stops, sending nothing more. NULL: never. */
    int (*opted_out)(void *arg);
    void *opted_out_arg;
    int ip_mode;              /* rp_ip_mode (rewrite.h): --ip */
    int64_t time_floor_ms;    /* --time-floor: recorded times before it are not trusted */
    int64_t clock_jump_ms;    /* --clock-jump: least wall - mono change that is a clock step */
} rp_config;

/* Runs until done (--once) or stopped (--follow); returns the exit code. */
int rp_run(const rp_config *cfg);

/* damage.c: 0 when the journal's pages are sound (or there is none yet),
 * else EX_DATAERR after telling the user to run ferry-journal salvage. */
int rp_check_pages(const char *dir);
void rp_report_damage(const char *dir, const char *what);

#endif

/* tools/verify/progress.h: progress bar on stderr (rows done / estimated, rate, ETA). */
#pragma once
#include <stdbool.h>

struct progress {
    bool enabled; /* only when stderr is a terminal */
    double total; /* estimated rows to checksum, both sides */
    double done;  /* rows checksummed so far, both sides */
    double start; /* util_now() at the start of the pass */
    double drawn; /* util_now() of the last draw */
};

void progress_init(struct progress *p, bool enabled, double total);
void progress_add(struct progress *p, double rows);
/* pool_tick_fn: redraws at most 5 times a second. */
void progress_tick(void *ctx);
/* Erases the bar. */
void progress_clear(struct progress *p);

/* tools/verify/progress.c: progress bar on stderr (rows done / estimated, rate, ETA). */
#include "tools/verify/progress.h"

#include <stdio.h>

#include "tools/verify/util.h"

void progress_init(struct progress *p, bool enabled, double total)
{
    p->enabled = enabled;
    p->total = total > 0 ? total : 1;
    p->done = 0;
    p->start = util_now();
    p->drawn = 0;
}

void progress_add(struct progress *p, double rows)
{
    p->done += rows;
}

void progress_tick(void *ctx)
{
    struct progress *p = ctx;
    double now = util_now();
    if (!p->enabled || now - p->drawn < 0.2) {
        return;
    }
    p->drawn = now;
    double el = now - p->start, rate = el > 0 ? p->done / el : 0;
    double total = p->done > p->total ? p->done : p->total;
    double eta = rate > 0 ? (total - p->done) / rate : 0;
    int width = 30, fill = (int)(width * p->done / total);
    char bar[32];
    for (int i = 0; i < width; i++) {
        bar[i] = i < fill ? '#' : '.';
    }
    bar[width] = '\0';
    fprintf(stderr, "\r[%s] %.0f / ~%.0f rows  %.0f rows/s  ETA %.0fs ", bar, p->done, total, rate,
            eta);
    fflush(stderr);
}

void progress_clear(struct progress *p)
{
    if (p->enabled && p->drawn > 0) {
        fprintf(stderr, "\r%80s\r", "");
        fflush(stderr);
    }
}

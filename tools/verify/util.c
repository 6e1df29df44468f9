/* tools/verify/util.c: allocation helpers that abort on OOM, monotonic clock, side names. */
#include "tools/verify/util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static void *check(void *p)
{
    if (!p) {
        fputs("pgdual-verify: out of memory\n", stderr);
        exit(UTIL_EXIT_ERROR);
    }
    return p;
}

void *util_xmalloc(size_t n)
{
    return check(malloc(n ? n : 1));
}

void *util_xcalloc(size_t n, size_t size)
{
    return check(calloc(n ? n : 1, size ? size : 1));
}

void *util_xrealloc(void *p, size_t n)
{
    return check(realloc(p, n ? n : 1));
}

char *util_xstrdup(const char *s)
{
    return check(strdup(s));
}

char *util_xmemdup(const char *s, size_t n)
{
    char *p = util_xmalloc(n + 1);
    memcpy(p, s, n);
    p[n] = '\0';
    return p;
}

double util_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

const char *util_side_name(int side)
{
    return side == UTIL_OLD ? "old" : "new";
}

/* tools/verify/util.h: allocation helpers that abort on OOM (a CLI tool), monotonic clock,
 * attributes. */
#pragma once
#include <stddef.h>

#define WUR __attribute__((warn_unused_result))

/* Exit codes of pgdual-verify (the cutover gate reads them). */
enum util_exit { UTIL_EXIT_SAME = 0, UTIL_EXIT_DIFF = 1, UTIL_EXIT_ERROR = 2 };

/* Sides of a comparison; index arrays with them. */
enum util_side { UTIL_OLD = 0, UTIL_NEW = 1 };

void *util_xmalloc(size_t n);
void *util_xcalloc(size_t n, size_t size);
void *util_xrealloc(void *p, size_t n);
char *util_xstrdup(const char *s);
char *util_xmemdup(const char *s, size_t n);
/* Seconds on the monotonic clock. */
double util_now(void);
/* "old" or "new". */
const char *util_side_name(int side);

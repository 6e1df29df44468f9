/* tools/verify/result.h: what one verification pass found, per table. */
#pragma once
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tools/verify/strbuf.h"

/* Relative to the primary: missing = only on the primary, extra = only on the secondary. */
#define RESULT_KINDS(X) X(MISSING, "missing") X(EXTRA, "extra") X(DIFFERENT, "different")
enum result_kind {
#define X(n, s) RESULT_##n,
    RESULT_KINDS(X)
#undef X
};

struct result_diff {
    enum result_kind kind;
    char *key; /* packed key (keys.h) */
    size_t klen;
};

struct result_table {
    int64_t rows[2]; /* rows counted on old and new */
    int ranges;      /* key ranges checksummed (top level + bisection) */
    int leaves;      /* ranges whose rows were fetched and diffed */
    double seconds;
    struct result_diff *diffs;
    size_t ndiffs, cap;
    bool multiset_differs; /* keyless table: count or aggregate hash differs */
    int64_t ms_missing;    /* keyless: rows only on the primary */
    int64_t ms_extra;      /* keyless: rows only on the secondary */
    struct strbuf repair;  /* repair SQL for this table */
    int nrepair;           /* statements in repair */
};

const char *result_kind_name(enum result_kind k);
void result_add(struct result_table *r, enum result_kind kind, const char *key, size_t klen);
/* Sorts diffs by key so reports are stable. */
void result_sort(struct result_table *r);
void result_free(struct result_table *r);

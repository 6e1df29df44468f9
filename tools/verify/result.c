/* tools/verify/result.c: what one verification pass found, per table. */
#include "tools/verify/result.h"

#include <stdbool.h>
#include <stdlib.h>

#include "tools/verify/keys.h"
#include "tools/verify/util.h"

const char *result_kind_name(enum result_kind k)
{
    switch (k) {
#define X(n, s)      \
    case RESULT_##n: \
        return s;
        RESULT_KINDS(X)
#undef X
    }
    return "?";
}

void result_add(struct result_table *r, enum result_kind kind, const char *key, size_t klen)
{
    if (r->ndiffs == r->cap) {
        r->cap = r->cap ? r->cap * 2 : 16;
        r->diffs = util_xrealloc(r->diffs, sizeof *r->diffs * r->cap);
    }
    r->diffs[r->ndiffs++] =
        (struct result_diff){.kind = kind, .key = util_xmemdup(key, klen), .klen = klen};
}

static int diff_cmp(const void *a, const void *b)
{
    const struct result_diff *x = a, *y = b;
    return keys_cmp(x->key, x->klen, y->key, y->klen);
}

void result_sort(struct result_table *r)
{
    if (r->ndiffs > 1) {
        qsort(r->diffs, r->ndiffs, sizeof *r->diffs, diff_cmp);
    }
}

void result_free(struct result_table *r)
{
    for (size_t i = 0; i < r->ndiffs; i++) {
        free(r->diffs[i].key);
    }
    free(r->diffs);
    strbuf_free(&r->repair);
}

/* config/dials.c: the refcounted immutable dials snapshot. */
#include "config/dials.h"

#include <stdlib.h>

struct dials_snapshot *dials_snapshot_new(const struct dials *d, uint64_t version)
{
    struct dials_snapshot *s = malloc(sizeof(*s));
    if (!s) {
        return NULL;
    }
    atomic_init(&s->refs, 1);
    s->version = version;
    s->d = *d;
    return s;
}

struct dials_snapshot *dials_snapshot_ref(struct dials_snapshot *s)
{
    atomic_fetch_add_explicit(&s->refs, 1, memory_order_relaxed);
    return s;
}

void dials_snapshot_unref(struct dials_snapshot *s)
{
    if (s && atomic_fetch_sub_explicit(&s->refs, 1, memory_order_acq_rel) == 1) {
        free(s);
    }
}

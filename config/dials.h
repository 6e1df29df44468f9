/* config/dials.h: the [cutover] dials, and the immutable refcounted snapshot that carries them to
 * the worker loops. A session reads one snapshot per statement, so a change never applies to
 * half of a statement (and, for routing, never to half of a transaction). */
#pragma once
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

enum dial_backend { DIAL_OLD = 0, DIAL_NEW = 1 };

/* The other backend. */
static inline int dial_other(int which)
{
    return which ^ 1;
}
enum mirror_order { MIRROR_LOCKSTEP, MIRROR_PARALLEL };
enum commit_wait { COMMIT_WAIT_BOTH, COMMIT_WAIT_PRIMARY };
enum read_divergence { ON_DIVERGENCE_LOG, ON_DIVERGENCE_SERVE_PRIMARY };

struct dials {
    int primary;               /* enum dial_backend */
    int read_new_percent;      /* 0..100 share of routed reads served by new */
    int compare_percent;       /* 0..100 share of routed reads shadowed on the other backend */
    int mirror_order;          /* enum mirror_order */
    int commit_wait;           /* enum commit_wait */
    int on_read_divergence;    /* enum read_divergence */
    int read_timeout_ms;       /* a routed read on the secondary slower than this falls back */
    int shadow_timeout_ms;     /* a shadow slower than this is cancelled, counted, not compared */
    int fallback_buffer_bytes; /* secondary reply held for fallback up to this many bytes */
    bool mirror;               /* false = step 3 of the ladder: writes go to the primary only */
    bool pin_writes; /* lockstep: the secondary stores the values the primary made up (§5a) */
};

struct dials_snapshot {
    atomic_uint refs;
    uint64_t version; /* increases with every change; SHOW STATUS reports it */
    struct dials d;
};

/* New snapshot holding one reference. NULL on allocation failure. */
struct dials_snapshot *dials_snapshot_new(const struct dials *d, uint64_t version);
struct dials_snapshot *dials_snapshot_ref(struct dials_snapshot *s);
void dials_snapshot_unref(struct dials_snapshot *s);

/* proxy/stats.h: per-worker counters. Each worker's loop is the only writer of its own counters
 * (plain relaxed load+store, no lock, no RMW); readers (admin, metrics) sum across workers. */
#pragma once
#include <stdatomic.h>
#include <stdint.h>

/* X(name, help). The names are the SHOW STATUS / metrics keys. */
#define STATS_COUNTERS(X)                                                             \
    X(clients_total, "client connections accepted")                                   \
    X(sessions_active, "client sessions open now (gauge)")                            \
    X(statements_total, "statements received (Query and Execute messages)")           \
    X(reads_served_old, "routed reads served by old")                                 \
    X(reads_served_new, "routed reads served by new")                                 \
    X(writes_mirrored, "mirrored statements sent to both backends")                   \
    X(fallbacks_total, "routed reads re-run on the primary")                          \
    X(shadow_compares_total, "shadow comparisons completed")                          \
    X(shadow_timeouts_total, "shadow reads cancelled after shadow_timeout_ms")        \
    X(divergences_total, "divergences between old and new")                           \
    X(nondeterministic_writes_total, "writes using nondeterministic functions")       \
    X(cancels_total, "cancel requests forwarded")                                     \
    X(protocol_errors_total, "clients closed for protocol violations")                \
    X(auth_failures_total, "failed client logins")                                    \
    X(backend_failures_total, "backend connections failed or lost")                   \
    X(secondary_failures_total, "sessions that lost the secondary and went on alone") \
    X(bytes_from_clients, "bytes received from clients")                              \
    X(bytes_to_clients, "bytes sent to clients")

enum stats_counter {
#define X(name, help) STAT_##name,
    STATS_COUNTERS(X)
#undef X
        STAT_COUNT
};

struct stats {
    _Atomic uint64_t v[STAT_COUNT];
};

extern const char *const stats_names[STAT_COUNT];

/* Called only on the owning worker's thread. */
static inline void stats_add(struct stats *s, enum stats_counter c, int64_t delta)
{
    uint64_t cur = atomic_load_explicit(&s->v[c], memory_order_relaxed);
    atomic_store_explicit(&s->v[c], cur + (uint64_t)delta, memory_order_relaxed);
}

static inline uint64_t stats_get(const struct stats *s, enum stats_counter c)
{
    return atomic_load_explicit(&s->v[c], memory_order_relaxed);
}

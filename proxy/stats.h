/* proxy/stats.h: per-worker counters and latency histograms. Each worker's loop is the only
 * writer of its own (plain relaxed load+store, no lock, no RMW); readers (admin, metrics) sum
 * across workers. */
#pragma once
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "protocol/outcome.h"

/* X(name, help). The names are the SHOW STATUS / metrics keys. */
#define STATS_COUNTERS(X)                                                                      \
    X(clients_total, "client connections accepted")                                            \
    X(sessions_active, "client sessions open now (gauge)")                                     \
    X(statements_total, "statements received (Query and Execute messages)")                    \
    X(classifications_total, "statement texts classified (cache hits included): relay mode "   \
                             "skips plain statements")                                         \
    X(reads_served_old, "routed reads served by old")                                          \
    X(reads_served_new, "routed reads served by new")                                          \
    X(writes_mirrored, "mirrored statements sent to both backends")                            \
    X(fallbacks_total, "routed reads re-run on the primary")                                   \
    X(fallbacks_error, "fallbacks: the secondary answered with an error")                      \
    X(fallbacks_timeout, "fallbacks: the secondary exceeded read_timeout_ms")                  \
    X(fallbacks_connection_lost, "fallbacks: the secondary's connection was lost")             \
    X(read_errors_after_stream_total,                                                          \
      "reads served by the secondary that failed after part of the answer reached the client") \
    X(shadow_compares_total, "shadow comparisons completed")                                   \
    X(shadow_timeouts_total, "shadow reads cancelled after shadow_timeout_ms")                 \
    X(shadows_skipped_total, "reads drawn for shadowing served by the primary alone: the "     \
                             "secondary was still busy (its previous shadow), or seeding")     \
    X(shadow_not_comparable_total,                                                             \
      "reads drawn for shadowing but nondeterministic (now(), random() ...)")                  \
    X(compares_partial_total, "comparisons that left out a SQLSTATE, tag or row shape: "       \
                              "a reply message was too long to read whole")                    \
    X(divergences_total, "divergences between old and new")                                    \
    X(divergences_error_mismatch, "divergences: one side failed, the other did not")           \
    X(divergences_sqlstate_mismatch, "divergences: both failed with different SQLSTATEs")      \
    X(divergences_tag_mismatch, "divergences: different command tags")                         \
    X(divergences_result_mismatch, "divergences: different rows or row shapes")                \
    X(mirrored_served_old, "mirrored statements whose reply old served (old primary)")         \
    X(mirrored_served_new, "mirrored statements whose reply new served (new primary)")         \
    X(nondeterministic_writes_total,                                                           \
      "writes that make up values (now(), random(), ids ...) and could not be pinned")         \
    X(pinned_writes_total, "writes the secondary ran with the values the primary made up")     \
    X(cancels_total, "cancel requests forwarded")                                              \
    X(protocol_errors_total, "clients closed for protocol violations")                         \
    X(accept_backoffs_total, "accept out of descriptors: the listener rested 100 ms")          \
    X(auth_failures_total, "failed client logins")                                             \
    X(backend_failures_total, "backend connections failed or lost")                            \
    X(secondary_failures_total, "sessions that lost the secondary and went on alone")          \
    X(secondary_reconnects_total, "sessions that logged in to their secondary again")          \
    X(seed_skipped_total, "while seeding: writes new applied to fewer rows (not copied yet)")  \
    X(tls_clients_total, "client connections that completed a TLS handshake")                  \
    X(tls_handshake_failures_total, "client TLS handshakes that failed")                       \
    X(bytes_from_clients, "bytes received from clients")                                       \
    X(bytes_to_clients, "bytes sent to clients")

enum stats_counter {
#define X(name, help) STAT_##name,
    STATS_COUNTERS(X)
#undef X
        STAT_COUNT
};

/* Upper bounds (microseconds) of the statement latency histogram buckets; one more bucket
 * above the last holds the rest (+Inf). X(bound_us). */
#define STATS_LATENCY_BOUNDS_US(X) \
    X(500)                         \
    X(1000)                        \
    X(2500)                        \
    X(5000)                        \
    X(10000)                       \
    X(25000)                       \
    X(50000)                       \
    X(100000)                      \
    X(250000)                      \
    X(500000)                      \
    X(1000000)                     \
    X(2500000)                     \
    X(5000000)                     \
    X(10000000)

enum {
#define X(us) +1
    STATS_LATENCY_BOUNDS = 0 STATS_LATENCY_BOUNDS_US(X),
#undef X
    STATS_LATENCY_BUCKETS = STATS_LATENCY_BOUNDS + 1 /* the last one is +Inf */
};

/* One backend's latency histogram. Buckets are NOT cumulative here (one increment per
 * observation); readers accumulate them, so a sum read while the loop writes is still
 * monotonic per bucket and the +Inf total equals the count by construction. */
struct stats_latency {
    _Atomic uint64_t bucket[STATS_LATENCY_BUCKETS];
    _Atomic uint64_t sum_us;
};

struct stats {
    _Atomic uint64_t v[STAT_COUNT];
    struct stats_latency latency[2]; /* by enum dial_backend: [0] old, [1] new */
};

extern const uint64_t stats_latency_bounds_us[STATS_LATENCY_BOUNDS];

extern const char *const stats_names[STAT_COUNT];

/* Add to one of the owning loop's own values (no RMW: it is the only writer). */
static inline void stats_bump(_Atomic uint64_t *v, uint64_t delta)
{
    uint64_t cur = atomic_load_explicit(v, memory_order_relaxed);
    atomic_store_explicit(v, cur + delta, memory_order_relaxed);
}

/* Called only on the owning worker's thread. */
static inline void stats_add(struct stats *s, enum stats_counter c, int64_t delta)
{
    stats_bump(&s->v[c], (uint64_t)delta);
}

static inline uint64_t stats_get(const struct stats *s, enum stats_counter c)
{
    return atomic_load_explicit(&s->v[c], memory_order_relaxed);
}

/* One unit's latency on backend (enum dial_backend). Called only on the owning worker's
 * thread. */
static inline void stats_observe(struct stats *s, int backend, uint64_t us)
{
    struct stats_latency *l = &s->latency[backend & 1];
    int b = 0;
    while (b < STATS_LATENCY_BOUNDS && us > stats_latency_bounds_us[b]) {
        b++;
    }
    stats_bump(&l->bucket[b], 1);
    stats_bump(&l->sum_us, us);
}

/* The primary (backend) finished a unit in us microseconds: its latency, and for a mirrored
 * unit the count by serving backend (routed reads are counted as reads_served_*). */
static inline void stats_primary_done(struct stats *s, int backend, bool mirrored, uint64_t us)
{
    stats_observe(s, backend, us);
    if (mirrored) {
        stats_add(s, backend ? STAT_mirrored_served_new : STAT_mirrored_served_old, 1);
    }
}

/* One divergence of kind d (OUTCOME_DIFF_none counts nothing); divergences_total is counted by
 * the caller. */
static inline void stats_divergence(struct stats *s, enum outcome_diff d)
{
    switch (d) {
    case OUTCOME_DIFF_none:
        return;
    case OUTCOME_DIFF_error_mismatch:
        stats_add(s, STAT_divergences_error_mismatch, 1);
        return;
    case OUTCOME_DIFF_sqlstate_mismatch:
        stats_add(s, STAT_divergences_sqlstate_mismatch, 1);
        return;
    case OUTCOME_DIFF_tag_mismatch:
        stats_add(s, STAT_divergences_tag_mismatch, 1);
        return;
    case OUTCOME_DIFF_result_mismatch:
        stats_add(s, STAT_divergences_result_mismatch, 1);
        return;
    }
}

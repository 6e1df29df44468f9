/* proxy/server.c: the shared dials master copy and counter sums. */
#include "proxy/server.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "proxy/stats.h"
#include "proxy/worker.h"

const char *const stats_names[STAT_COUNT] = {
#define X(name, help) #name,
    STATS_COUNTERS(X)
#undef X
};

const uint64_t stats_latency_bounds_us[STATS_LATENCY_BOUNDS] = {
#define X(us) us,
    STATS_LATENCY_BOUNDS_US(X)
#undef X
};

struct dials_snapshot *server_dials_get(struct server *srv)
{
    pthread_mutex_lock(&srv->dials_lock);
    struct dials_snapshot *s = dials_snapshot_ref(srv->dials_snapshot);
    pthread_mutex_unlock(&srv->dials_lock);
    return s;
}

/* Called with dials_lock held: make srv->dials the current snapshot and post it everywhere. */
static int server_publish_locked(struct server *srv)
{
    struct dials_snapshot *snap = dials_snapshot_new(&srv->dials, srv->dials_version + 1);
    if (!snap) {
        return -ENOMEM;
    }
    srv->dials_version++;
    dials_snapshot_unref(srv->dials_snapshot);
    srv->dials_snapshot = snap;
    for (int i = 0; i < srv->nworkers; i++) {
        worker_post_dials(&srv->workers[i], dials_snapshot_ref(snap));
    }
    return 0;
}

int server_set_dial(struct server *srv, const char *key, const char *value, char *err,
                    size_t errlen)
{
    const struct config_key *k = config_find_key("cutover", key);
    if (!k || !k->runtime) {
        snprintf(err, errlen, "unknown dial \"%s\"; SHOW CONFIG lists the changeable keys", key);
        return -EINVAL;
    }
    pthread_mutex_lock(&srv->dials_lock);
    struct config scratch;
    memset(&scratch, 0, sizeof(scratch));
    scratch.dials = srv->dials;
    int rc = config_set(&scratch, k, value, err, errlen);
    if (rc == 0) {
        struct dials before = srv->dials;
        srv->dials = scratch.dials;
        rc = server_publish_locked(srv);
        if (rc < 0) {
            srv->dials = before;
            snprintf(err, errlen, "out of memory");
        }
    }
    pthread_mutex_unlock(&srv->dials_lock);
    return rc;
}

int server_rollback_cutover(struct server *srv, char *err, size_t errlen)
{
    pthread_mutex_lock(&srv->dials_lock);
    struct dials before = srv->dials;
    srv->dials.primary = DIAL_OLD;
    srv->dials.read_new_percent = 0;
    int rc = server_publish_locked(srv);
    if (rc < 0) {
        srv->dials = before;
        snprintf(err, errlen, "out of memory");
    }
    pthread_mutex_unlock(&srv->dials_lock);
    return rc;
}

uint64_t server_stat_sum(const struct server *srv, int counter)
{
    uint64_t sum = 0;
    for (int i = 0; i < srv->nworkers; i++) {
        sum += stats_get(&srv->workers[i].stats, (enum stats_counter)counter);
    }
    return sum;
}

void server_latency_sum(const struct server *srv, int backend, uint64_t *buckets, uint64_t *sum_us)
{
    *sum_us = 0;
    for (int b = 0; b < STATS_LATENCY_BUCKETS; b++) {
        buckets[b] = 0;
    }
    for (int i = 0; i < srv->nworkers; i++) {
        const struct stats_latency *l = &srv->workers[i].stats.latency[backend & 1];
        for (int b = 0; b < STATS_LATENCY_BUCKETS; b++) {
            buckets[b] += atomic_load_explicit(&l->bucket[b], memory_order_relaxed);
        }
        *sum_us += atomic_load_explicit(&l->sum_us, memory_order_relaxed);
    }
}

void server_secondary_lagging(struct server *srv)
{
    atomic_store(&srv->secondary_state, SECONDARY_lagging);
}

const char *server_secondary_state_name(const struct server *srv)
{
    static const char *const names[] = {
#define X(n) #n,
        SECONDARY_STATES(X)
#undef X
    };
    return names[atomic_load(&srv->secondary_state)];
}

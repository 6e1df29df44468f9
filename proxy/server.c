/* proxy/server.c: the shared state: the config snapshot, the dials master copy (persisted to the
 * state file, then published) and counter sums. */
#include "proxy/server.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config/state.h"
#include "proxy/auth.h"
#include "proxy/log.h"
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

/* ---- config snapshot ----------------------------------------------------------------------- */

struct server_conf *server_conf_new(struct config *cfg_take, struct auth_table *auth_take)
{
    struct server_conf *c = malloc(sizeof(*c));
    if (!c) {
        config_free(cfg_take);
        auth_table_free(auth_take);
        return NULL;
    }
    atomic_init(&c->refs, 1);
    c->cfg = *cfg_take;
    memset(cfg_take, 0, sizeof(*cfg_take));
    c->auth = auth_take;
    return c;
}

struct server_conf *server_conf_ref(struct server_conf *c)
{
    atomic_fetch_add_explicit(&c->refs, 1, memory_order_relaxed);
    return c;
}

void server_conf_unref(struct server_conf *c)
{
    if (c && atomic_fetch_sub_explicit(&c->refs, 1, memory_order_acq_rel) == 1) {
        config_free(&c->cfg);
        auth_table_free(c->auth);
        free(c);
    }
}

struct server_conf *server_conf_get(struct server *srv)
{
    pthread_mutex_lock(&srv->conf_lock);
    struct server_conf *c = server_conf_ref(srv->conf);
    pthread_mutex_unlock(&srv->conf_lock);
    return c;
}

void server_conf_publish_take(struct server *srv, struct server_conf *conf)
{
    pthread_mutex_lock(&srv->conf_lock);
    struct server_conf *old = srv->conf;
    srv->conf = conf;
    for (int i = 0; i < srv->nworkers; i++) {
        worker_post_conf(&srv->workers[i], server_conf_ref(conf));
    }
    pthread_mutex_unlock(&srv->conf_lock);
    server_conf_unref(old);
}

/* ---- dials ----------------------------------------------------------------------------------- */

void server_set_paused(struct server *srv, bool paused)
{
    atomic_store(&srv->paused, paused);
    server_post_gates(srv);
}

struct dials_snapshot *server_dials_get(struct server *srv)
{
    pthread_mutex_lock(&srv->dials_lock);
    struct dials_snapshot *s = dials_snapshot_ref(srv->dials_snapshot);
    pthread_mutex_unlock(&srv->dials_lock);
    return s;
}

static bool is_dial(const struct config_key *k)
{
    return k->runtime && strcmp(k->section, "cutover") == 0;
}

static bool dial_equal(const struct dials *a, const struct dials *b, const struct config_key *k)
{
    struct config va, vb;
    memset(&va, 0, sizeof(va));
    memset(&vb, 0, sizeof(vb));
    va.dials = *a;
    vb.dials = *b;
    return config_key_equal(&va, &vb, k);
}

static bool dials_equal(const struct dials *a, const struct dials *b)
{
    for (const struct config_key *k = config_keys; k->name; k++) {
        if (is_dial(k) && !dial_equal(a, b, k)) {
            return false;
        }
    }
    return true;
}

/* Called with dials_lock held: write next to the state file, then make it the master copy and
 * the published snapshot. Nothing changes unless every step succeeds. */
static int server_commit_locked(struct server *srv, const struct dials *next, char *err,
                                size_t errlen)
{
    struct dials_snapshot *snap = dials_snapshot_new(next, srv->dials_version + 1);
    if (!snap) {
        snprintf(err, errlen, "out of memory");
        return -ENOMEM;
    }
    const char *path = srv->cfg->state_file;
    if (path && path[0] && state_save(path, next, err, errlen) < 0) {
        dials_snapshot_unref(snap);
        /* A failure after the rename (the directory fsync) leaves next in the file: put the
         * running dials back so a restart never picks up a change that was refused. */
        char again[512];
        if (state_save(path, &srv->dials, again, sizeof(again)) < 0) {
            LOG_ERR("%s (the running dials may differ from the file until the next change)", again);
        }
        return -EIO;
    }
    srv->dials = *next;
    srv->dials_version++;
    dials_snapshot_unref(srv->dials_snapshot);
    srv->dials_snapshot = snap;
    for (int i = 0; i < srv->nworkers; i++) {
        worker_post_dials(&srv->workers[i], dials_snapshot_ref(snap));
    }
    return 0;
}

/* The one guarded change: with primary = old, mirror = off stops writes reaching new, the
 * migration target, which then silently falls behind (only step 3, primary = new, retires the
 * mirror). */
static bool set_needs_force(const struct config_key *k, const struct dials *cur,
                            const struct dials *next)
{
    return strcmp(k->name, "mirror") == 0 && cur->mirror && !next->mirror &&
           next->primary == DIAL_OLD;
}

int server_set_dial(struct server *srv, const char *key, const char *value, bool force, char *err,
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
    if (rc == 0 && !force && set_needs_force(k, &srv->dials, &scratch.dials)) {
        snprintf(err, errlen,
                 "refusing mirror = off while primary = old: new would stop receiving writes "
                 "and fall behind; use SET mirror = off FORCE if that is intended");
        rc = -EPERM;
    }
    if (rc == 0) {
        rc = server_commit_locked(srv, &scratch.dials, err, errlen);
    }
    pthread_mutex_unlock(&srv->dials_lock);
    return rc;
}

int server_rollback_cutover(struct server *srv, char *err, size_t errlen)
{
    pthread_mutex_lock(&srv->dials_lock);
    struct dials next = srv->dials;
    next.primary = DIAL_OLD;
    next.read_new_percent = 0;
    int rc = server_commit_locked(srv, &next, err, errlen);
    pthread_mutex_unlock(&srv->dials_lock);
    return rc;
}

int server_reload_dials(struct server *srv, const struct dials *file_now, char *err, size_t errlen)
{
    pthread_mutex_lock(&srv->dials_lock);
    struct config next, from_file;
    memset(&next, 0, sizeof(next));
    memset(&from_file, 0, sizeof(from_file));
    next.dials = srv->dials;
    from_file.dials = *file_now;
    int changed = 0;
    char list[512] = "";
    for (const struct config_key *k = config_keys; k->name; k++) {
        if (!is_dial(k) || dial_equal(file_now, &srv->file_dials, k) ||
            dial_equal(file_now, &srv->dials, k)) {
            continue; /* not changed in the file, or already the running value */
        }
        if (config_copy_key(&next, &from_file, k) < 0) {
            continue; /* dials are numbers: this cannot fail */
        }
        char val[64];
        config_format(&next, k, val, sizeof(val));
        size_t used = strlen(list);
        snprintf(list + used, sizeof(list) - used, "%s%s = %s", changed ? ", " : "", k->name, val);
        changed++;
    }
    int rc = 0;
    if (changed > 0 && !dials_equal(&next.dials, &srv->dials)) {
        rc = server_commit_locked(srv, &next.dials, err, errlen);
    }
    if (rc == 0) {
        srv->file_dials = *file_now;
        if (changed > 0) {
            LOG_INFO("reload: dials changed in the config file applied: %s", list);
        }
    }
    pthread_mutex_unlock(&srv->dials_lock);
    return rc < 0 ? rc : changed;
}

/* ---- counters and secondary state ---------------------------------------------------------- */

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

void server_secondary_diverged(struct server *srv, const char *why)
{
    (void)why;
    server_secondary_lagging(srv); /* TEMPORARY: the lead's sync-state module replaces this */
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

int server_busy_on(const struct server *srv, int primary)
{
    int n = 0;
    for (int i = 0; i < srv->nworkers; i++) {
        n += atomic_load_explicit(&srv->workers[i].busy_on[primary & 1], memory_order_relaxed);
    }
    return n;
}

uint64_t server_dials_version(struct server *srv)
{
    pthread_mutex_lock(&srv->dials_lock);
    uint64_t v = srv->dials_version;
    pthread_mutex_unlock(&srv->dials_lock);
    return v;
}

bool server_dials_applied(const struct server *srv, uint64_t version)
{
    for (int i = 0; i < srv->nworkers; i++) {
        if (atomic_load_explicit(&srv->workers[i].dials_applied, memory_order_acquire) < version) {
            return false;
        }
    }
    return true;
}

void server_post_gates(struct server *srv)
{
    for (int i = 0; i < srv->nworkers; i++) {
        worker_post_gates(&srv->workers[i]);
    }
}

int server_lag_units(const struct server *srv)
{
    int n = 0;
    for (int i = 0; i < srv->nworkers; i++) {
        n += atomic_load_explicit(&srv->workers[i].lag_units, memory_order_relaxed);
    }
    return n > 0 ? n : 0;
}

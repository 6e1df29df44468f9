/* proxy/server.c: the shared state: the config snapshot, the dials master copy (persisted to the
 * state file, then published) and counter sums. */
#include "proxy/server.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/ssl.h>

#include "config/state.h"
#include "proxy/control/seqsync.h"
#include "proxy/log.h"
#include "proxy/session/auth.h"
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

struct server_conf *server_conf_new(struct config *cfg_take, struct auth_table *auth_take,
                                    SSL_CTX *tls_take)
{
    struct server_conf *c = malloc(sizeof(*c));
    if (!c) {
        config_free(cfg_take);
        auth_table_free(auth_take);
        SSL_CTX_free(tls_take);
        return NULL;
    }
    atomic_init(&c->refs, 1);
    c->cfg = *cfg_take;
    memset(cfg_take, 0, sizeof(*cfg_take));
    c->auth = auth_take;
    c->tls = tls_take;
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
        SSL_CTX_free(c->tls); /* TLS sessions made from it hold their own references */
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

/* The secondary lines of the state file, from the running state: none while it is in_sync and
 * never left it (a file of an older pgdual has none either). */
static const struct state_secondary *secondary_record(const struct server *srv,
                                                      struct state_secondary *out)
{
    int st = atomic_load(&srv->secondary_state);
    int64_t since = atomic_load(&srv->secondary_since_ms);
    memset(out, 0, sizeof(*out));
    if (st != SYNC_in_sync || since != 0) {
        snprintf(out->name, sizeof(out->name), "%s", sync_state_name((enum sync_state)st));
        out->since_ms = since;
        snprintf(out->reconcile, sizeof(out->reconcile), "%s", srv->reconcile);
        out->pass = srv->rec.last_id;
    }
    return out;
}

/* How server_commit_locked treats a change. */
#define COMMIT_FORCE 1 /* a primary switch asked with FORCE (switches even if its sync fails) */
#define COMMIT_UNDO  2 /* the switch back after a failed sequence sync */
#define COMMIT_MUST  4 /* a state file that cannot be written is logged; the change goes ahead */

/* Called with dials_lock held: write next to the state file, then make it the master copy and
 * the published snapshot. Nothing changes unless every step succeeds (but see COMMIT_MUST). A
 * change of the primary closes the switch gate (seqsync) before any worker can see it. */
static int server_commit_locked(struct server *srv, const struct dials *next, int flags,
                                uint64_t *switch_gen, char *err, size_t errlen)
{
    if (switch_gen) {
        *switch_gen = 0;
    }
    struct dials_snapshot *snap = dials_snapshot_new(next, srv->dials_version + 1);
    if (!snap) {
        snprintf(err, errlen, "out of memory");
        return -ENOMEM;
    }
    const char *path = srv->cfg->state_file;
    if (next->primary != srv->dials.primary || (srv->dials.mirror && !next->mirror)) {
        /* The pass compares the other side, or writes stop reaching it: it proves nothing. */
        reconcile_interrupt_locked(srv, next->primary != srv->dials.primary
                                            ? "the primary changed during the pass"
                                            : "mirror = off during the pass");
    }
    struct state_secondary file_sec;
    const struct state_secondary *sec = secondary_record(srv, &file_sec);
    if (path && path[0] && state_save(path, next, sec, err, errlen) < 0) {
        if (flags & COMMIT_MUST) {
            LOG_ERR("%s: the dials change anyway (a restart would not know)", err);
        } else {
            dials_snapshot_unref(snap);
            /* A failure after the rename (the directory fsync) leaves next in the file: put the
             * running dials back so a restart never picks up a change that was refused. */
            char again[512];
            if (state_save(path, &srv->dials, sec, again, sizeof(again)) < 0) {
                LOG_ERR("%s (the running dials may differ from the file until the next change)",
                        again);
            }
            return -EIO;
        }
    }
    bool switching = next->primary != srv->dials.primary;
    srv->dials = *next;
    srv->dials_version++;
    if (switching && srv->seqsync) {
        uint64_t gen = seqsync_switch(srv->seqsync, next->primary, srv->dials_version,
                                      ((flags & COMMIT_FORCE) ? SEQSYNC_FORCE : 0) |
                                          ((flags & COMMIT_UNDO) ? SEQSYNC_UNDO : 0));
        if (switch_gen) {
            *switch_gen = gen;
        }
    }
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

/* DESIGN §7: while the secondary is out of sync it may lack writes the primary acknowledged, so
 * it does not become the primary unless the operator insists. True (and err set) to refuse. */
static bool switch_refused(struct server *srv, char *err, size_t errlen, const char *how)
{
    if (server_secondary_in_sync(srv)) {
        return false;
    }
    snprintf(err, errlen,
             "refusing to switch the primary: secondary_state is %s, so the other side may lack "
             "writes the current primary acknowledged; reconcile first, or %s",
             server_secondary_state_name(srv), how);
    return true;
}

int server_set_dial(struct server *srv, const char *key, const char *value, bool force,
                    uint64_t *switch_gen, char *err, size_t errlen)
{
    *switch_gen = 0;
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
    if (rc == 0 && !force && scratch.dials.primary != srv->dials.primary &&
        switch_refused(srv, err, errlen, "SET primary = ... FORCE")) {
        rc = -EPERM;
    }
    if (rc == 0) {
        rc = server_commit_locked(srv, &scratch.dials, force ? COMMIT_FORCE : 0, switch_gen, err,
                                  errlen);
    }
    pthread_mutex_unlock(&srv->dials_lock);
    return rc;
}

int server_rollback_cutover(struct server *srv, bool force, uint64_t *switch_gen, char *err,
                            size_t errlen)
{
    *switch_gen = 0;
    pthread_mutex_lock(&srv->dials_lock);
    struct dials next = srv->dials;
    next.primary = DIAL_OLD;
    next.read_new_percent = 0;
    if (!force && srv->dials.primary != DIAL_OLD &&
        switch_refused(srv, err, errlen, "ROLLBACK CUTOVER FORCE")) {
        pthread_mutex_unlock(&srv->dials_lock);
        return -EPERM;
    }
    int rc = server_commit_locked(srv, &next, force ? COMMIT_FORCE : 0, switch_gen, err, errlen);
    pthread_mutex_unlock(&srv->dials_lock);
    return rc;
}

int server_switch_undo(struct server *srv, uint64_t gen, int back)
{
    pthread_mutex_lock(&srv->dials_lock);
    int rc = 0;
    if (seqsync_generation(srv->seqsync) == gen && srv->dials.primary != back) {
        struct dials next = srv->dials;
        next.primary = back;
        char err[512];
        rc = server_commit_locked(srv, &next, COMMIT_UNDO | COMMIT_MUST, NULL, err, sizeof(err));
        if (rc < 0) {
            LOG_ERR("the primary switch could not be undone: %s", err);
        } else {
            rc = 1;
        }
    }
    pthread_mutex_unlock(&srv->dials_lock);
    return rc;
}

int server_reload_dials(struct server *srv, const struct dials *file_now, uint64_t *switch_gen,
                        char *err, size_t errlen)
{
    *switch_gen = 0;
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
        if (strcmp(k->name, "primary") == 0 && file_now->primary != srv->dials.primary &&
            !server_secondary_in_sync(srv)) {
            /* The switch guard holds for a reload too: only the console's FORCE overrides it. */
            LOG_WARN("reload: primary = %s in the config file not applied: secondary_state is "
                     "%s; reconcile first, or SET primary = ... FORCE",
                     file_now->primary == DIAL_NEW ? "new" : "old",
                     server_secondary_state_name(srv));
            continue;
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
        rc = server_commit_locked(srv, &next.dials, 0, switch_gen, err, errlen);
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

static int64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* The reconciliation list after a miss of table ("db:table"; NULL: not known, so every table).
 * Called with dials_lock held. Returns whether it changed. */
static bool reconcile_add(struct server *srv, bool was_in_sync, const char *table)
{
    char *r = srv->reconcile;
    char before[sizeof(srv->reconcile)];
    memcpy(before, r, sizeof(before));
    if (was_in_sync) {
        r[0] = '\0';
    }
    size_t len = strlen(r);
    if (!table || strcmp(r, "*") == 0 || (!was_in_sync && len == 0)) {
        snprintf(r, sizeof(srv->reconcile), "*"); /* unknown, or already every table */
    } else {
        size_t n = strlen(table);
        bool present = false;
        for (const char *p = r; *p && !present; p = strchr(p, ',') ? strchr(p, ',') + 1 : "") {
            present = strncmp(p, table, n) == 0 && (p[n] == ',' || p[n] == '\0');
        }
        if (!present && len + n + 2 < sizeof(srv->reconcile) && !strpbrk(table, ",\n")) {
            snprintf(r + len, sizeof(srv->reconcile) - len, "%s%s", len ? "," : "", table);
        } else if (!present) {
            snprintf(r, sizeof(srv->reconcile), "*"); /* too many to list */
        }
    }
    atomic_store(&srv->reconcile_all, strcmp(r, "*") == 0);
    return strcmp(before, r) != 0;
}

void server_secondary_miss_table(struct server *srv, enum sync_state how, const char *why,
                                 const char *table)
{
    pthread_mutex_lock(&srv->dials_lock);
    enum sync_state cur = (enum sync_state)atomic_load(&srv->secondary_state);
    enum sync_state next = sync_state_after_miss(cur, how);
    bool listed = reconcile_add(srv, cur == SYNC_in_sync && next != cur, table);
    if (cur == SYNC_reconciling && next != cur) {
        reconcile_stale_locked(srv, why);
    }
    if (next != cur || listed) {
        struct state_secondary sec;
        secondary_record(srv, &sec);
        snprintf(sec.name, sizeof(sec.name), "%s", sync_state_name(next));
        snprintf(sec.reconcile, sizeof(sec.reconcile), "%s", srv->reconcile); /* the first too */
        sec.since_ms = next != cur ? wall_ms() : atomic_load(&srv->secondary_since_ms);
        const char *path = srv->cfg->state_file;
        char err[512];
        if (path && path[0] && state_save(path, &srv->dials, &sec, err, sizeof(err)) < 0) {
            /* The state changes in memory anyway (no read goes to the secondary), but a restart
             * would not know: say so loudly. */
            LOG_ERR("secondary_state %s not persisted: %s", sync_state_name(next), err);
        }
        atomic_store(&srv->secondary_since_ms, sec.since_ms);
        atomic_store(&srv->secondary_state, (int)next);
        if (next != cur) {
            LOG_WARN("secondary_state %s -> %s: %s", sync_state_name(cur), sync_state_name(next),
                     why);
        }
    }
    pthread_mutex_unlock(&srv->dials_lock);
}

void server_secondary_miss(struct server *srv, enum sync_state how, const char *why)
{
    enum sync_state cur = (enum sync_state)atomic_load(&srv->secondary_state);
    if (sync_state_after_miss(cur, how) == cur && cur != SYNC_in_sync &&
        atomic_load(&srv->reconcile_all)) {
        return; /* already out of sync this way, every table listed: nothing to write */
    }
    server_secondary_miss_table(srv, how, why, NULL);
}

void server_reconcile_list(struct server *srv, char *out, size_t cap)
{
    pthread_mutex_lock(&srv->dials_lock);
    snprintf(out, cap, "%s", srv->reconcile);
    pthread_mutex_unlock(&srv->dials_lock);
}

void server_secondary_lagging(struct server *srv, const char *why)
{
    server_secondary_miss(srv, SYNC_lagging, why);
}

void server_secondary_diverged(struct server *srv, const char *why)
{
    server_secondary_miss(srv, SYNC_diverged, why);
}

int server_secondary_store_locked(struct server *srv, enum sync_state next, const char *reconcile,
                                  const char *why, char *err, size_t errlen)
{
    enum sync_state cur = (enum sync_state)atomic_load(&srv->secondary_state);
    struct state_secondary sec;
    secondary_record(srv, &sec);
    snprintf(sec.name, sizeof(sec.name), "%s", sync_state_name(next));
    if (reconcile) {
        snprintf(sec.reconcile, sizeof(sec.reconcile), "%s", reconcile);
    } else {
        snprintf(sec.reconcile, sizeof(sec.reconcile), "%s", srv->reconcile);
    }
    sec.pass = srv->rec.last_id;
    sec.since_ms = next != cur ? wall_ms() : atomic_load(&srv->secondary_since_ms);
    const char *path = srv->cfg->state_file;
    if (path && path[0] && state_save(path, &srv->dials, &sec, err, errlen) < 0) {
        return -EIO;
    }
    snprintf(srv->reconcile, sizeof(srv->reconcile), "%s", sec.reconcile);
    atomic_store(&srv->reconcile_all, strcmp(srv->reconcile, "*") == 0);
    atomic_store(&srv->secondary_since_ms, sec.since_ms);
    atomic_store(&srv->secondary_state, (int)next);
    if (next != cur) {
        LOG_WARN("secondary_state %s -> %s: %s", sync_state_name(cur), sync_state_name(next), why);
    }
    return 0;
}

void server_secondary_restore(struct server *srv, const struct state_secondary *sec)
{
    int st = sec->name[0] ? sync_state_parse(sec->name) : SYNC_in_sync;
    srv->rec.last_id = sec->pass;
    if (st == SYNC_reconciling) {
        /* The pass ran in the pgdual that stopped: it proves nothing now; the next one starts
         * again (the list of tables is kept). */
        LOG_WARN("secondary_state reconciling in the state file: the pass ended with the last "
                 "run; diverged until a new pass");
        st = SYNC_diverged;
    }
    atomic_store(&srv->secondary_state, st < 0 ? SYNC_diverged : st);
    atomic_store(&srv->secondary_since_ms, sec->since_ms);
    snprintf(srv->reconcile, sizeof(srv->reconcile), "%s",
             st == SYNC_in_sync || sec->reconcile[0] ? sec->reconcile : "*");
    atomic_store(&srv->reconcile_all, strcmp(srv->reconcile, "*") == 0);
}

const char *server_secondary_state_name(const struct server *srv)
{
    return sync_state_name((enum sync_state)atomic_load(&srv->secondary_state));
}

bool server_secondary_in_sync(const struct server *srv)
{
    return atomic_load_explicit(&srv->secondary_state, memory_order_relaxed) == SYNC_in_sync;
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
    seqsync_poke(srv->seqsync);
}

bool server_switch_pending(const struct server *srv)
{
    return atomic_load_explicit(&srv->switch_pending, memory_order_relaxed);
}

int server_lag_units(const struct server *srv)
{
    int n = 0;
    for (int i = 0; i < srv->nworkers; i++) {
        n += atomic_load_explicit(&srv->workers[i].lag_units, memory_order_relaxed);
    }
    return n > 0 ? n : 0;
}

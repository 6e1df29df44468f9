/* proxy/control/reconcile.c: the reconciliation passes' bookkeeping and the admin commands that
 * drive them (see reconcile.h; the transition rule is proxy/dualwrite/sync_state.c, the state
 * file write proxy/server.c). */
#include "proxy/control/reconcile.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "proxy/log.h"
#include "proxy/server.h"

static const char *const result_names[] = {
#define X(n) #n,
    RECONCILE_RESULTS(X)
#undef X
};

const char *reconcile_result_name(enum reconcile_result r)
{
    return (unsigned)r < sizeof(result_names) / sizeof(result_names[0]) ? result_names[r]
                                                                        : "unknown";
}

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static enum sync_state state_now(const struct server *srv)
{
    return (enum sync_state)atomic_load(&srv->secondary_state);
}

static int fail(const char **sqlstate, const char *code, int rc)
{
    *sqlstate = code;
    return rc;
}

int reconcile_seed(struct server *srv, const char **sqlstate, char *err, size_t errlen)
{
    pthread_mutex_lock(&srv->dials_lock);
    struct reconcile_pass *r = &srv->rec;
    uint64_t running = r->pass;
    int rc = server_secondary_store_locked(srv, SYNC_seeding, "*",
                                           "SEED: the backfill fills the secondary", err, errlen);
    if (rc == 0 && running) {
        LOG_WARN("reconcile: pass %" PRIu64 " aborted by SEED", running);
        r->pass = 0;
        r->last = RECONCILE_aborted;
    }
    if (rc == 0 && running && r->automatic) {
        reconcile_auto_kill(srv);
    }
    pthread_mutex_unlock(&srv->dials_lock);
    return rc < 0 ? fail(sqlstate, "58030", rc) : 0;
}

int reconcile_start(struct server *srv, bool automatic, struct reconcile_start_row *row,
                    const char **sqlstate, char *err, size_t errlen)
{
    pthread_mutex_lock(&srv->dials_lock);
    struct reconcile_pass *r = &srv->rec;
    enum sync_state cur = state_now(srv);
    int rc = 0;
    if (r->pass) {
        snprintf(err, errlen, "reconciliation pass %" PRIu64 " is running (begun by %s)", r->pass,
                 r->automatic ? "pgdual's catch-up" : "the admin console");
        rc = fail(sqlstate, "55000", -EBUSY);
    } else if (!sync_state_may_start(cur)) {
        snprintf(err, errlen, "secondary_state is %s: nothing to reconcile", sync_state_name(cur));
        rc = fail(sqlstate, "55000", -EPERM);
    } else if (atomic_load(&srv->sessions_without_secondary) > 0) {
        /* Their writes (one may be running now, its miss already recorded) still miss the
         * secondary: a pass begun now could compare a table before such a write commits. */
        snprintf(err, errlen,
                 "%d session(s) relay without their secondary: their writes still miss it; "
                 "retry once sessions_without_secondary is 0",
                 atomic_load(&srv->sessions_without_secondary));
        rc = fail(sqlstate, "55006", -EAGAIN); /* object_in_use: retry later */
    }
    if (rc == 0) {
        uint64_t before = r->last_id;
        r->last_id++;
        char why[96];
        snprintf(why, sizeof(why), "reconciliation pass %" PRIu64 " begins (%s)", r->last_id,
                 automatic ? "pgdual's catch-up" : "admin console");
        rc = server_secondary_store_locked(srv, SYNC_reconciling, NULL, why, err, errlen);
        if (rc < 0) {
            r->last_id = before;
            rc = fail(sqlstate, "58030", rc);
        }
    }
    if (rc == 0) {
        r->pass = r->last_id;
        r->passes_total++;
        r->started_at_ms = now_ms();
        r->tables_done = r->tables_total = r->rows_repaired = 0;
        r->last = RECONCILE_running;
        r->automatic = automatic;
        row->pass = r->pass;
        row->primary = srv->dials.primary;
        snprintf(row->from_state, sizeof(row->from_state), "%s", sync_state_name(cur));
        snprintf(row->tables, sizeof(row->tables), "%s", srv->reconcile[0] ? srv->reconcile : "*");
        LOG_INFO("reconcile: pass %" PRIu64 " started (%s) from %s over %s", row->pass,
                 automatic ? "pgdual's catch-up" : "admin console", row->from_state, row->tables);
    }
    pthread_mutex_unlock(&srv->dials_lock);
    return rc;
}

/* err for a pass that is not the running one. */
static void not_running(const struct reconcile_pass *r, uint64_t pass, char *err, size_t errlen)
{
    if (pass != 0 && pass == r->stale_pass) {
        snprintf(err, errlen, "pass %" PRIu64 " is stale: %s; start a new pass", pass,
                 r->stale_why);
    } else if (r->pass) {
        snprintf(err, errlen, "pass %" PRIu64 " is stale: the running pass is %" PRIu64, pass,
                 r->pass);
    } else {
        snprintf(err, errlen, "pass %" PRIu64 " is stale: no pass is running", pass);
    }
}

int reconcile_progress(struct server *srv, uint64_t pass, uint64_t done, uint64_t total,
                       uint64_t rows, const char **sqlstate, char *err, size_t errlen)
{
    pthread_mutex_lock(&srv->dials_lock);
    struct reconcile_pass *r = &srv->rec;
    int rc = 0;
    if (pass == 0 || pass != r->pass) {
        not_running(r, pass, err, errlen);
        rc = fail(sqlstate, "55000", -ESTALE);
    } else {
        r->tables_done = done;
        r->tables_total = total;
        r->rows_repaired = rows;
    }
    pthread_mutex_unlock(&srv->dials_lock);
    return rc;
}

int reconcile_done(struct server *srv, uint64_t pass, const char **sqlstate, char *err,
                   size_t errlen)
{
    pthread_mutex_lock(&srv->dials_lock);
    struct reconcile_pass *r = &srv->rec;
    enum sync_state cur = state_now(srv);
    int rc = 0;
    if (pass == 0 || pass != r->pass || sync_state_after_done(cur, true) != SYNC_in_sync) {
        not_running(r, pass, err, errlen);
        rc = fail(sqlstate, "55000", -ESTALE);
    } else {
        char why[96];
        snprintf(why, sizeof(why), "reconciliation pass %" PRIu64 " found every table equal", pass);
        rc = server_secondary_store_locked(srv, sync_state_after_done(cur, true), "", why, err,
                                           errlen);
        if (rc < 0) {
            rc = fail(sqlstate, "58030", rc);
        } else {
            r->pass = 0;
            r->last = RECONCILE_in_sync;
            LOG_INFO("reconcile: pass %" PRIu64 " done: in_sync (%" PRIu64 " tables, %" PRIu64
                     " rows repaired)",
                     pass, r->tables_done, r->rows_repaired);
        }
    }
    pthread_mutex_unlock(&srv->dials_lock);
    return rc;
}

int reconcile_abort(struct server *srv, uint64_t pass, enum reconcile_result result,
                    const char **sqlstate, char *err, size_t errlen)
{
    pthread_mutex_lock(&srv->dials_lock);
    struct reconcile_pass *r = &srv->rec;
    int rc = 0;
    if (pass == 0 || pass != r->pass) {
        not_running(r, pass, err, errlen);
        rc = fail(sqlstate, "55000", -ESTALE);
    } else {
        char why[96];
        snprintf(why, sizeof(why), "reconciliation pass %" PRIu64 " %s", pass,
                 result == RECONCILE_failed ? "failed" : "aborted");
        rc = server_secondary_store_locked(srv, sync_state_after_abort(state_now(srv)), NULL, why,
                                           err, errlen);
        if (rc < 0) {
            rc = fail(sqlstate, "58030", rc);
        } else {
            r->pass = 0;
            r->last = result;
            LOG_INFO("reconcile: pass %" PRIu64 " %s", pass, reconcile_result_name(result));
        }
    }
    pthread_mutex_unlock(&srv->dials_lock);
    return rc;
}

void reconcile_get(struct server *srv, struct reconcile_pass *out)
{
    pthread_mutex_lock(&srv->dials_lock);
    *out = srv->rec;
    pthread_mutex_unlock(&srv->dials_lock);
}

void reconcile_stale_locked(struct server *srv, const char *why)
{
    struct reconcile_pass *r = &srv->rec;
    if (!r->pass) {
        return;
    }
    LOG_WARN("reconcile: pass %" PRIu64 " is stale: %s", r->pass, why);
    bool automatic = r->automatic;
    r->stale_pass = r->pass;
    snprintf(r->stale_why, sizeof(r->stale_why), "%s", why);
    r->pass = 0;
    r->last = RECONCILE_stale;
    if (automatic) {
        reconcile_auto_kill(srv); /* its exit could only be refused now: the next pass starts */
    }
}

void reconcile_interrupt_locked(struct server *srv, const char *why)
{
    if (state_now(srv) == SYNC_reconciling) {
        /* The dials change that follows writes the state file with this state. */
        atomic_store(&srv->secondary_since_ms, now_ms());
        atomic_store(&srv->secondary_state, (int)SYNC_diverged);
        LOG_WARN("secondary_state reconciling -> diverged: %s", why);
    }
    reconcile_stale_locked(srv, why); /* also stops pgdual's own tool */
}

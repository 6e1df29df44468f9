/* tools/verify/leafjobs.c: the differing leaves of one table repaired on --jobs connection pairs
 * at once. Each worker takes whole leaves in turn and repairs them with chunk.c on a pair of its
 * own, through a copy of the pass's struct live whose results (rows, deferred extras, unsettled,
 * error) are added to the pass's when every worker has ended. Leaves are disjoint key ranges, so
 * two workers never lock the same row, and each locked transaction keeps chunk.c's order and
 * steps (primary FOR SHARE, secondary FOR UPDATE, snapshot, secondary committed first); the
 * extras of every leaf still wait for their own snapshot (chunk_extras, after all the leaves). */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tools/verify/discover.h"
#include "tools/verify/live.h"
#include "tools/verify/options.h"
#include "tools/verify/scan.h"
#include "tools/verify/table.h"

/* Most connection pairs a table's leaves are repaired on. */
#define LEAFJOBS_MAX 16

/* The leaves of one table, shared by the workers. */
struct leafjobs {
    struct live *lv;
    struct table *t;
    size_t next;        /* the next leaf to take */
    bool failed;        /* a worker hit a fatal error: the others stop taking leaves */
    pthread_mutex_t mu; /* next, failed, and the repair lines (lv->out_mu of each worker) */
};

/* One worker: its copy of the pass's state, with its own connections and results. */
struct leafworker {
    struct leafjobs *run;
    struct live w;
    bool own_conns; /* w.c were opened for this table (worker 0 borrows the pass's pair) */
    pthread_t th;
};

static void *work(void *arg)
{
    struct leafworker *lw = arg;
    struct leafjobs *run = lw->run;
    for (;;) {
        pthread_mutex_lock(&run->mu);
        size_t i = !run->failed && run->next < run->lv->nchunks ? run->next++ : SIZE_MAX;
        pthread_mutex_unlock(&run->mu);
        if (i == SIZE_MAX) {
            break;
        }
        if (chunk_repair(&lw->w, run->t, &run->lv->chunks[i]) < 0) {
            pthread_mutex_lock(&run->mu);
            run->failed = true;
            pthread_mutex_unlock(&run->mu);
            break;
        }
    }
    return NULL;
}

/* Worker k's state: the pass's, with results zeroed and (k > 0) a connection pair of its own.
 * false when that pair could not be opened (the table gets fewer workers). */
static bool worker_init(struct leafworker *lw, struct leafjobs *run, int k)
{
    struct live *lv = run->lv;
    lw->run = run;
    lw->w = *lv;
    lw->w.extras = NULL;
    lw->w.nextras = lw->w.capextras = 0;
    lw->w.table_rows = lw->w.pass_rows = lw->w.total_rows = 0;
    lw->w.table_unsettled = false;
    memset(&lw->w.st, 0, sizeof lw->w.st);
    lw->w.error[0] = '\0';
    lw->w.out_mu = &run->mu;
    lw->own_conns = k > 0;
    for (int s = 0; k > 0 && s < 2; s++) {
        char err[1024];
        lw->w.c[s] = live_connect(lv->o->conninfo[s], s, err, sizeof err);
        if (!lw->w.c[s]) {
            fprintf(stderr, "pgdual-verify: table %s: one connection pair fewer: %s\n",
                    run->t->def->display, err);
            if (s == 1) {
                PQfinish(lw->w.c[0]);
            }
            return false;
        }
    }
    return true;
}

/* Adds worker lw's results to the pass's and closes its own connections. */
static void worker_merge(struct live *lv, struct leafworker *lw)
{
    struct live *w = &lw->w;
    lv->table_rows += w->table_rows;
    lv->pass_rows += w->pass_rows;
    lv->total_rows += w->total_rows;
    lv->table_unsettled |= w->table_unsettled;
    lv->st.leaves += w->st.leaves;
    lv->st.batches += w->st.batches;
    lv->st.retries += w->st.retries;
    lv->st.upserts += w->st.upserts;
    lv->st.upsert_rows += w->st.upsert_rows;
    lv->st.suspects_s += w->st.suspects_s;
    lv->st.locked_s += w->st.locked_s;
    lv->st.writes_s += w->st.writes_s;
    if (w->error[0] && !lv->error[0]) {
        snprintf(lv->error, sizeof lv->error, "%s", w->error);
    }
    for (size_t i = 0; i < w->nextras; i++) {
        if (lv->nextras == lv->capextras) {
            lv->capextras = lv->capextras ? 2 * lv->capextras : 16;
            lv->extras = util_xrealloc(lv->extras, sizeof *lv->extras * lv->capextras);
        }
        lv->extras[lv->nextras++] = w->extras[i];
    }
    free(w->extras);
    for (int s = 0; lw->own_conns && s < 2; s++) {
        PQfinish(w->c[s]);
    }
}

/* One leaf after the other on the pass's pair (one leaf, --jobs 1, or --rate-limit: the budget
 * is checked before each leaf). */
static int serial(struct live *lv, struct table *t)
{
    int rc = 0;
    for (size_t i = 0; i < lv->nchunks && rc == 0; i++) {
        if (!live_budget(lv, t)) {
            break;
        }
        rc = chunk_repair(lv, t, &lv->chunks[i]);
    }
    return rc;
}

int leafjobs_repair(struct live *lv, struct table *t)
{
    size_t jobs = lv->o->jobs > 0 ? (size_t)lv->o->jobs : 1;
    jobs = jobs < lv->nchunks ? jobs : lv->nchunks;
    jobs = jobs < LEAFJOBS_MAX ? jobs : LEAFJOBS_MAX;
    if (jobs <= 1 || lv->o->rate_limit) {
        lv->st.pairs = 1;
        return serial(lv, t);
    }
    struct leafjobs run = {.lv = lv, .t = t};
    pthread_mutex_init(&run.mu, NULL);
    struct leafworker lw[LEAFJOBS_MAX];
    size_t n = 0;
    for (size_t k = 0; k < jobs; k++) {
        n += worker_init(&lw[n], &run, (int)k);
    }
    lv->st.pairs = (int)n;
    for (size_t k = 0; k < n; k++) {
        pthread_create(&lw[k].th, NULL, work, &lw[k]);
    }
    for (size_t k = 0; k < n; k++) {
        pthread_join(lw[k].th, NULL);
        worker_merge(lv, &lw[k]);
    }
    pthread_mutex_destroy(&run.mu);
    return run.failed ? -1 : 0;
}

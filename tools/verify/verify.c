/* tools/verify/verify.c: one verification pass: connect, discover, compare every table. */
#include "tools/verify/verify.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tools/verify/live.h"
#include "tools/verify/options.h"
#include "tools/verify/pool.h"
#include "tools/verify/progress.h"
#include "tools/verify/result.h"
#include "tools/verify/scan.h"
#include "tools/verify/table.h"

int verify_discover(const struct options *o, struct verify_pass *vp)
{
    memset(vp, 0, sizeof *vp);
    vp->start = util_now();
    const char *ci[2] = {o->conninfo[0], o->conninfo[1]};
    vp->pool = pool_open(ci, o->jobs, vp->error, sizeof vp->error);
    if (!vp->pool) {
        return -1;
    }
    /* --live detects with unlocked READ COMMITTED checksums; the repair reads again under locks. */
    if (!o->live && pool_begin(vp->pool) < 0) {
        snprintf(vp->error, sizeof vp->error, "%s", pool_error(vp->pool));
        return -1;
    }
    if (discover_run(vp->pool, o, &vp->cat, vp->error, sizeof vp->error) < 0) {
        return -1;
    }
    vp->res = util_xcalloc((size_t)vp->cat.n, sizeof *vp->res);
    return 0;
}

static double estimate(const struct verify_pass *vp)
{
    double total = 0;
    for (int i = 0; i < vp->cat.n; i++) {
        for (int s = 0; s < 2; s++) {
            const struct discover_side *sd = &vp->cat.t[i].side[s];
            if (vp->cat.t[i].comparable) {
                total += sd->reltuples > 0 ? sd->reltuples : (double)sd->blocks * 60.0;
            }
        }
    }
    return total;
}

static int compare_table(const struct options *o, struct verify_pass *vp, int i,
                         struct progress *prog)
{
    struct result_table *res = &vp->res[i];
    double t0 = util_now();
    struct table t;
    table_init(&t, vp->pool, o, &vp->cat.t[i], res, prog);
    if (vp->live) {
        t.live = vp->live;
        t.leaf_rows = LIVE_CHUNK_ROWS;
    }
    int rc = vp->live ? live_before_scan(vp->live, &t) : 0;
    if (rc > 0) { /* backfilled by COPY: the next pass checks the table */
        table_free(&t);
        res->seconds = util_now() - t0;
        return 0;
    }
    if (rc < 0) {
        snprintf(vp->error, sizeof vp->error, "%s", vp->live->error);
        table_free(&t);
        return -1;
    }
    rc = scan_table(&t);
    if (rc == 0) {
        rc = pool_run(vp->pool);
    }
    if (rc == 0 && vp->live && live_repair_table(vp->live, &t) < 0) {
        snprintf(vp->error, sizeof vp->error, "%s", vp->live->error);
        table_free(&t);
        return -1;
    }
    table_free(&t);
    if (rc < 0) {
        snprintf(vp->error, sizeof vp->error, "table %s: %s", vp->cat.t[i].display,
                 pool_error(vp->pool));
        return -1;
    }
    result_sort(res);
    res->seconds = util_now() - t0;
    return 0;
}

static void collect_bytes(struct verify_pass *vp)
{
    vp->nconn = pool_per_side(vp->pool);
    for (int s = 0; s < 2; s++) {
        vp->bytes[s] = util_xcalloc((size_t)vp->nconn, sizeof *vp->bytes[s]);
        for (int i = 0; i < vp->nconn; i++) {
            vp->bytes[s][i] = pool_bytes_received(vp->pool, s, i);
        }
    }
}

int verify_compare(const struct options *o, struct verify_pass *vp)
{
    struct progress prog;
    progress_init(&prog, o->progress, estimate(vp));
    pool_set_tick(vp->pool, progress_tick, &prog);
    int rc = 0;
    vp->tables_total = vp->cat.n;
    for (int i = 0; i < vp->cat.n && rc == 0; i++) {
        if (vp->cat.t[i].comparable) {
            rc = compare_table(o, vp, i, &prog);
        }
        vp->tables_done++;
        if (rc == 0 && vp->live) {
            live_progress(vp->live, vp->tables_done, vp->tables_total);
        }
    }
    progress_clear(&prog);
    pool_set_tick(vp->pool, NULL, NULL);
    if (rc == 0 && !o->live && pool_end(vp->pool) < 0) {
        snprintf(vp->error, sizeof vp->error, "%s", pool_error(vp->pool));
        rc = -1;
    }
    collect_bytes(vp);
    pool_close(vp->pool);
    vp->pool = NULL;
    vp->seconds = util_now() - vp->start;
    return rc;
}

bool verify_table_differs(const struct verify_pass *vp, int i)
{
    const struct result_table *r = &vp->res[i];
    return !vp->cat.t[i].comparable || r->ndiffs > 0 || r->multiset_differs;
}

int verify_status(const struct verify_pass *vp)
{
    for (int i = 0; i < vp->cat.n; i++) {
        if (verify_table_differs(vp, i)) {
            return UTIL_EXIT_DIFF;
        }
    }
    return UTIL_EXIT_SAME;
}

void verify_free(struct verify_pass *vp)
{
    pool_close(vp->pool);
    for (int i = 0; vp->res && i < vp->cat.n; i++) {
        result_free(&vp->res[i]);
    }
    free(vp->res);
    free(vp->bytes[0]);
    free(vp->bytes[1]);
    discover_free(&vp->cat);
    memset(vp, 0, sizeof *vp);
}

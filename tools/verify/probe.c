/* tools/verify/probe.c: --live's choice between checksumming a table's key ranges and reading
 * them as leaves at once. A sample of the primary's rows (key + row hash) is looked up by key on
 * the secondary; when the share that differs says nearly every range would differ anyway, the
 * checksums (the whole table's, then the ranges': two full scans of both sides) are skipped and
 * every range goes to the live repair as a leaf. Only the work changes: every leaf is still read
 * whole and decided under locks. */
#include "tools/verify/probe.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libpq-fe.h>

#include "tools/verify/discover.h"
#include "tools/verify/keys.h"
#include "tools/verify/live.h"
#include "tools/verify/options.h"
#include "tools/verify/pool.h"
#include "tools/verify/result.h"
#include "tools/verify/scan.h"
#include "tools/verify/strbuf.h"
#include "tools/verify/table.h"

/* Rows sampled on the primary. */
#define PROBE_ROWS           1000
/* PostgreSQL's MaxHeapTuplesPerPage for 8 kB blocks: no heap block holds more rows. */
#define PROBE_ROWS_PER_BLOCK 291.0
/* Differing sampled rows from which the estimate is trusted at all. */
#define PROBE_MIN_DIFFS      3
/* Expected differing rows per range from which every range is taken to differ (a range with
 * that many expected differences is equal with a probability below e^-20). */
#define PROBE_RANGE_DIFFS    20.0

struct probe {
    struct table *t;
    struct keys_row *bounds; /* the ranges' cut keys (owned) */
    int nb;
    double range_rows;     /* the primary's estimated rows per range */
    double range_most;     /* ...as the planner would count them now (see probe_start) */
    struct keys_row *prim; /* the primary's sampled rows, sorted */
    size_t nprim;
};

static struct keys_row *rows_of(const PGresult *r, int nk, size_t *n)
{
    *n = (size_t)PQntuples(r);
    struct keys_row *v = util_xcalloc(*n + 1, sizeof *v);
    for (size_t i = 0; i < *n; i++) {
        struct strbuf b;
        strbuf_init(&b);
        for (int k = 0; k < nk; k++) {
            strbuf_put(&b, PQgetvalue(r, (int)i, k), (size_t)PQgetlength(r, (int)i, k) + 1);
        }
        v[i].klen = b.len;
        v[i].key = strbuf_take(&b);
        v[i].hash = atoll(PQgetvalue(r, (int)i, nk));
    }
    qsort(v, *n, sizeof *v, keys_row_cmp);
    return v;
}

static void probe_free(struct probe *pr)
{
    keys_rows_free(pr->bounds, (size_t)pr->nb);
    keys_rows_free(pr->prim, pr->nprim);
    free(pr);
}

/* Every range [bound b-1, bound b) becomes a leaf of the live repair. */
static void all_leaves(struct probe *pr)
{
    for (int b = 0; b <= pr->nb; b++) {
        struct scan_range r = {0};
        if (b > 0) {
            r.has_lo = true;
            r.lo = pr->bounds[b - 1].key;
            r.lolen = pr->bounds[b - 1].klen;
        }
        if (b < pr->nb) {
            r.has_hi = true;
            r.hi = pr->bounds[b].key;
            r.hilen = pr->bounds[b].klen;
        }
        pr->t->res->leaves++;
        live_add_chunk(pr->t, &r);
    }
    pr->t->res->ranges += pr->nb + 1;
}

static int on_secondary(void *ctx, int side, const PGresult *res)
{
    (void)side;
    struct probe *pr = ctx;
    size_t ns, diffs = 0;
    struct keys_row *sec = rows_of(res, pr->t->ref->nkeys, &ns);
    for (size_t i = 0, j = 0; i < pr->nprim; i++) {
        while (j < ns && keys_row_cmp(&sec[j], &pr->prim[i]) < 0) {
            j++;
        }
        diffs +=
            j >= ns || keys_row_cmp(&sec[j], &pr->prim[i]) != 0 || sec[j].hash != pr->prim[i].hash;
    }
    keys_rows_free(sec, ns);
    double per_range = pr->nprim ? (double)diffs / (double)pr->nprim * pr->range_rows : 0;
    /* A range that may hold more than a leaf's rows goes through the checksums and bisection,
     * which cut it to leaves of at most leaf_rows (a leaf is read whole, and locked whole when
     * its read fails). */
    bool leaves = pr->nb > 0 && diffs >= PROBE_MIN_DIFFS && per_range >= PROBE_RANGE_DIFFS &&
                  pr->range_most <= (double)pr->t->leaf_rows;
    if (pr->t->opt->stats) {
        fprintf(stderr, "stats: %s: probe: %zu of %zu sampled rows differ: %s\n",
                pr->t->def->display, diffs, pr->nprim, leaves ? "every range a leaf" : "checksums");
    }
    if (leaves) {
        all_leaves(pr);
    } else {
        scan_table_total(pr->t);
    }
    probe_free(pr);
    return 0;
}

static int on_primary(void *ctx, int side, const PGresult *res)
{
    (void)side;
    struct probe *pr = ctx;
    struct table *t = pr->t;
    int nk = t->ref->nkeys;
    pr->prim = rows_of(res, nk, &pr->nprim);
    if (pr->nprim == 0) {
        scan_table_total(t);
        probe_free(pr);
        return 0;
    }
    const char **params = util_xcalloc(pr->nprim * (size_t)nk + 1, sizeof *params);
    struct strbuf b;
    strbuf_init(&b);
    strbuf_printf(&b, "SELECT %s, %s::text FROM %s t WHERE (%s) IN (", t->keytext, t->rowhash,
                  t->def->qname, t->keycols);
    for (size_t i = 0; i < pr->nprim; i++) {
        keys_split(pr->prim[i].key, pr->prim[i].klen, nk, params + i * (size_t)nk);
        strbuf_puts(&b, i ? ", (" : "(");
        table_key_params(t, &b, (int)(i * (size_t)nk) + 1);
        strbuf_puts(&b, ")");
    }
    strbuf_puts(&b, ")");
    pool_submit(t->pool, !t->primary, b.p, (int)(pr->nprim * (size_t)nk), params, on_secondary, pr);
    strbuf_free(&b);
    free(params);
    return 0;
}

void probe_start(struct table *t, const struct keys_row *bounds, int nb, double pct)
{
    const struct discover_side *sd = &t->def->side[t->primary];
    double est = sd->reltuples > 0 ? sd->reltuples : (double)sd->blocks * 60.0;
    struct probe *pr = util_xcalloc(1, sizeof *pr);
    pr->t = t;
    pr->nb = nb;
    pr->range_rows = est / (nb + 1);
    /* reltuples may be stale (a bulk load since the last ANALYZE); the heap's size is not: scale
     * the density it was estimated at to the heap's blocks now, as the planner does (the
     * fullest heap when there is no estimate). */
    double now = sd->relpages > 0 && sd->reltuples >= 0
                     ? sd->reltuples / (double)sd->relpages * (double)sd->blocks
                     : (double)sd->blocks * PROBE_ROWS_PER_BLOCK;
    pr->range_most = (est > now ? est : now) / (nb + 1);
    pr->bounds = keys_rows_dup(bounds, (size_t)nb, (size_t)nb + 1);
    struct strbuf b;
    strbuf_init(&b);
    strbuf_printf(&b,
                  "SELECT %s, %s::text FROM (SELECT * FROM %s t TABLESAMPLE SYSTEM (%.4f)"
                  " ORDER BY random() LIMIT %d) t",
                  t->keytext, t->rowhash, t->def->qname, pct, PROBE_ROWS);
    pool_submit(t->pool, t->primary, b.p, 0, NULL, on_primary, pr);
    strbuf_free(&b);
}

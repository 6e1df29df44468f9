/* tools/verify/bisect.c: narrows a mismatching key range down to rows and diffs them. */
#include "tools/verify/bisect.h"

#include <stdlib.h>
#include <string.h>

#include <libpq-fe.h>

#include "tools/verify/backfill.h"
#include "tools/verify/discover.h"
#include "tools/verify/keys.h"
#include "tools/verify/live.h"
#include "tools/verify/options.h"
#include "tools/verify/pool.h"
#include "tools/verify/repair.h"
#include "tools/verify/result.h"
#include "tools/verify/scan.h"
#include "tools/verify/strbuf.h"
#include "tools/verify/table.h"

/* A range being cut: waits for rank-spaced keys from one side. */
struct split {
    struct table *t;
    struct scan_range r;
};

/* A range being diffed: keys and row hashes from both sides. */
struct leaf {
    struct table *t;
    struct keys_row *rows[2];
    size_t n[2];
    int pending;
};

static void put_range_sql(const struct table *t, const struct scan_range *r, struct strbuf *b,
                          const char **params, int *np)
{
    *np = scan_range_params(t, r, params);
    table_range_pred(t, b, r->has_lo, r->has_hi, 1);
}

static struct keys_row row_from(const PGresult *res, int i, int nk)
{
    struct strbuf b;
    strbuf_init(&b);
    for (int k = 0; k < nk; k++) {
        strbuf_put(&b, PQgetvalue(res, i, k), (size_t)PQgetlength(res, i, k) + 1);
    }
    struct keys_row row = {.klen = b.len};
    row.key = strbuf_take(&b);
    return row;
}

/* Reports one row-level difference, and queues its repair. */
static void found(struct table *t, enum result_kind kind, const struct keys_row *row)
{
    result_add(t->res, kind, row->key, row->klen);
    if (t->opt->repair) {
        if (kind == RESULT_EXTRA) {
            repair_delete(t, row->key, row->klen);
        } else {
            repair_upsert(t, row->key, row->klen);
        }
    }
}

static void leaf_merge(struct leaf *lf)
{
    int p = lf->t->primary, s = !p;
    for (int k = 0; k < 2; k++) {
        qsort(lf->rows[k], lf->n[k], sizeof *lf->rows[k], keys_row_cmp);
    }
    size_t i = 0, j = 0;
    while (i < lf->n[p] || j < lf->n[s]) {
        int c = i >= lf->n[p]   ? 1
                : j >= lf->n[s] ? -1
                                : keys_row_cmp(&lf->rows[p][i], &lf->rows[s][j]);
        if (c < 0) {
            found(lf->t, RESULT_MISSING, &lf->rows[p][i++]);
        } else if (c > 0) {
            found(lf->t, RESULT_EXTRA, &lf->rows[s][j++]);
        } else {
            if (lf->rows[p][i].hash != lf->rows[s][j].hash) {
                found(lf->t, RESULT_DIFFERENT, &lf->rows[p][i]);
            }
            i++;
            j++;
        }
    }
}

static int on_leaf(void *ctx, int side, const PGresult *res)
{
    struct leaf *lf = ctx;
    int n = PQntuples(res), nk = lf->t->ref->nkeys;
    lf->rows[side] = util_xcalloc((size_t)n, sizeof *lf->rows[side]);
    for (int i = 0; i < n; i++) {
        lf->rows[side][i] = row_from(res, i, nk);
        lf->rows[side][i].hash = atoll(PQgetvalue(res, i, nk));
    }
    lf->n[side] = (size_t)n;
    if (--lf->pending > 0) {
        return 0;
    }
    leaf_merge(lf);
    for (int k = 0; k < 2; k++) {
        for (size_t i = 0; i < lf->n[k]; i++) {
            free(lf->rows[k][i].key);
        }
        free(lf->rows[k]);
    }
    free(lf);
    return 0;
}

static void leaf_start(struct table *t, const struct scan_range *r)
{
    if (t->live) {
        t->res->leaves++;
        live_add_chunk(t, r);
        return;
    }
    struct leaf *lf = util_xcalloc(1, sizeof *lf);
    lf->t = t;
    lf->pending = 2;
    t->res->leaves++;
    const char *params[2 * 64 + 1];
    int np = 0;
    struct strbuf b;
    strbuf_init(&b);
    strbuf_printf(&b, "SELECT %s, %s FROM %s t WHERE ", t->keytext, t->rowhash, t->def->qname);
    put_range_sql(t, r, &b, params, &np);
    for (int s = 0; s < 2; s++) {
        pool_submit(t->pool, s, b.p, np, params, on_leaf, lf);
    }
    strbuf_free(&b);
}

static int on_split(void *ctx, int side, const PGresult *res)
{
    (void)side;
    struct split *sp = ctx;
    int n = PQntuples(res), nk = sp->t->ref->nkeys;
    struct keys_row *bounds = util_xcalloc((size_t)n, sizeof *bounds);
    for (int i = 0; i < n; i++) {
        bounds[i] = row_from(res, i, nk);
    }
    if (n == 0) {
        leaf_start(sp->t, &sp->r);
    } else {
        scan_start(sp->t, &sp->r, bounds, n);
    }
    keys_rows_free(bounds, (size_t)n);
    scan_range_free(&sp->r);
    free(sp);
    return 0;
}

void bisect_range(struct table *t, const struct scan_range *r, const int64_t cnt[2])
{
    int64_t most = cnt[0] > cnt[1] ? cnt[0] : cnt[1];
    if (t->live && cnt[!t->primary] == 0 && cnt[t->primary] > 0) {
        backfill_add_range(t, r, cnt[t->primary]); /* the fast path: COPY the whole range */
        return;
    }
    if (most <= t->leaf_rows) {
        leaf_start(t, r);
        return;
    }
    int side = cnt[0] >= cnt[1] ? 0 : 1;
    int64_t ways = TABLE_SPLIT_WAYS;
    if (t->live) {
        /* The live repair reads each leaf's keys and row hashes whole and locks only the keys
         * that differ, so a leaf costs about its rows however many differ: cut into the fewest
         * pieces of at most leaf_rows (a range of 70,000 rows into two leaves, not sixteen of
         * 4,400 rows, each one more round of suspects and locked transactions). */
        ways = (most + t->leaf_rows - 1) / t->leaf_rows;
        ways = ways < 2 ? 2 : ways > TABLE_SPLIT_WAYS ? TABLE_SPLIT_WAYS : ways;
    }
    int64_t step = (most + ways - 1) / ways;
    struct split *sp = util_xcalloc(1, sizeof *sp);
    sp->t = t;
    scan_range_copy(&sp->r, r);
    const char *params[2 * 64 + 1];
    int np = 0;
    struct strbuf b;
    strbuf_init(&b);
    strbuf_printf(&b,
                  "SELECT %s FROM (SELECT %s, row_number() OVER (ORDER BY %s) AS pgdual_rn"
                  " FROM %s t WHERE ",
                  t->subkeytext, t->keycols, t->keycols, t->def->qname);
    put_range_sql(t, r, &b, params, &np);
    strbuf_printf(&b,
                  ") s WHERE s.pgdual_rn %% %lld = 0 AND s.pgdual_rn < %lld"
                  " ORDER BY s.pgdual_rn",
                  (long long)step, (long long)most);
    pool_submit(t->pool, side, b.p, np, params, on_split, sp);
    strbuf_free(&b);
}

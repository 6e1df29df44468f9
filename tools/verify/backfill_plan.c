/* tools/verify/backfill_plan.c: the table-level backfill: a table whose secondary holds (almost)
 * none of the primary's rows is cut into ~BACKFILL_RANGE_ROWS key ranges on the primary
 * (TABLESAMPLE, only the cut keys travel) and copied; --resume records the plan and skips ranges
 * a killed run finished. */
#include <stdlib.h>
#include <string.h>

#include <libpq-fe.h>

#include "tools/verify/backfill.h"
#include "tools/verify/discover.h"
#include "tools/verify/live.h"
#include "tools/verify/livedb.h"
#include "tools/verify/options.h"
#include "tools/verify/resume.h"
#include "tools/verify/strbuf.h"
#include "tools/verify/table.h"

static double estimate(const struct table *t, int side)
{
    const struct discover_side *sd = &t->def->side[side];
    return sd->reltuples > 0 ? sd->reltuples : (double)sd->blocks * 60.0;
}

/* Runs a one-value query on side s of lv; -1 on error (lv->error). */
static int scalar(struct live *lv, struct table *t, int s, const char *sql, char *out, size_t len)
{
    char err[900];
    PGresult *r = NULL;
    if (livedb_exec(lv->c[s], s, sql, 0, NULL, &r, err, sizeof err) != LIVEDB_OK) {
        snprintf(lv->error, sizeof lv->error, "table %.100s: %s", t->def->display, err);
        return -1;
    }
    snprintf(out, len, "%s", PQntuples(r) ? PQgetvalue(r, 0, 0) : "");
    PQclear(r);
    return 0;
}

/* Cut keys at about want equal-row steps, from a block sample of the primary. */
static int plan(struct live *lv, struct table *t, int want, struct scan_range **out)
{
    double est = estimate(t, lv->primary), blocks = (double)t->def->side[lv->primary].blocks;
    blocks = blocks > 0 ? blocks : 1;
    est = est > 1 ? est : 1;
    double pct = 100.0 * (200.0 / blocks > 20000.0 / est ? 200.0 / blocks : 20000.0 / est);
    pct = pct > 100 ? 100 : pct < 0.001 ? 0.001 : pct;
    struct strbuf q;
    strbuf_init(&q);
    strbuf_printf(&q,
                  "SELECT %s FROM (SELECT %s, row_number() OVER (ORDER BY %s) AS pgdual_rn,"
                  " count(*) OVER () AS pgdual_n FROM %s t TABLESAMPLE SYSTEM (%.4f)) s"
                  " WHERE s.pgdual_rn %% greatest(1, s.pgdual_n / %d) = 0"
                  " AND s.pgdual_rn < s.pgdual_n ORDER BY s.pgdual_rn",
                  t->subkeytext, t->keycols, t->keycols, t->def->qname, pct, want);
    PGresult *r = NULL;
    char err[900];
    int P = lv->primary, nk = t->ref->nkeys;
    if (livedb_exec(lv->c[P], P, q.p, 0, NULL, &r, err, sizeof err) != LIVEDB_OK) {
        snprintf(lv->error, sizeof lv->error, "table %.100s: %s", t->def->display, err);
        strbuf_free(&q);
        return -1;
    }
    strbuf_free(&q);
    int n = PQntuples(r);
    char **cut = util_xcalloc((size_t)n, sizeof *cut);
    size_t *cutlen = util_xcalloc((size_t)n, sizeof *cutlen);
    for (int i = 0; i < n; i++) {
        struct strbuf b;
        strbuf_init(&b);
        for (int k = 0; k < nk; k++) {
            strbuf_put(&b, PQgetvalue(r, i, k), (size_t)PQgetlength(r, i, k) + 1);
        }
        cutlen[i] = b.len;
        cut[i] = strbuf_take(&b);
    }
    PQclear(r);
    struct scan_range *v = util_xcalloc((size_t)n + 1, sizeof *v);
    for (int i = 0; i <= n; i++) {
        v[i] = (struct scan_range){.has_lo = i > 0, .has_hi = i < n};
        v[i].lo = i > 0 ? util_xmemdup(cut[i - 1], cutlen[i - 1]) : NULL;
        v[i].lolen = i > 0 ? cutlen[i - 1] : 0;
        v[i].hi = i < n ? util_xmemdup(cut[i], cutlen[i]) : NULL;
        v[i].hilen = i < n ? cutlen[i] : 0;
    }
    for (int i = 0; i < n; i++) {
        free(cut[i]);
    }
    free(cut);
    free(cutlen);
    *out = v;
    return n + 1;
}

/* The unfinished ranges of a --resume plan; 0 when there is no plan or all are done. */
static int from_resume(struct live *lv, struct table *t)
{
    size_t first = 0, n = lv->resume ? resume_find(lv->resume, t->def->display, &first) : 0;
    struct scan_range *r = util_xcalloc(n + 1, sizeof *r);
    int *idx = util_xcalloc(n + 1, sizeof *idx), k = 0;
    for (size_t i = first; i < lv->resume->n && (size_t)k < n; i++) {
        const struct resume_range *rr = &lv->resume->v[i];
        if (!strcmp(rr->table, t->def->display) && !rr->done) {
            scan_range_copy(&r[k], &rr->r);
            idx[k++] = rr->idx;
        }
    }
    int rc = 0;
    int64_t copied = lv->pass_copied;
    if (k > 0) {
        fprintf(lv->out, "backfill: %s: resuming %d of %zu range(s)\n", t->def->display, k, n);
        rc = backfill_run(lv, t, r, idx, k, estimate(t, lv->primary) * k / (double)n);
        lv->bf_tables++;
    }
    for (int i = 0; i < k; i++) {
        scan_range_free(&r[i]);
    }
    free(r);
    free(idx);
    return rc < 0 ? -1 : lv->pass_copied > copied; /* as backfill_table: copied, or compare now */
}

/* True when the secondary holds fewer than 1% of the primary's estimated rows (a table under
 * 100 rows: none) and at least one row is on the primary; keyless tables only when the secondary
 * is empty. */
static int nearly_empty(struct live *lv, struct table *t)
{
    double est = estimate(t, lv->primary);
    long limit = t->ref->nkeys == 0 ? 1 : (long)(est / 100 > 1 ? est / 100 : 1);
    char sql[1024], v[64];
    snprintf(sql, sizeof sql, "SELECT count(*) FROM (SELECT 1 FROM %s LIMIT %ld) s", t->def->qname,
             limit);
    if (scalar(lv, t, !lv->primary, sql, v, sizeof v) < 0) {
        return -1;
    }
    if (atol(v) >= limit) {
        return 0;
    }
    snprintf(sql, sizeof sql, "SELECT EXISTS (SELECT 1 FROM %s)", t->def->qname);
    if (scalar(lv, t, lv->primary, sql, v, sizeof v) < 0) {
        return -1;
    }
    return v[0] == 't';
}

int backfill_table(struct live *lv, struct table *t)
{
    if (lv->resume) {
        int rc = from_resume(lv, t);
        if (rc != 0) {
            return rc;
        }
    }
    int empty = nearly_empty(lv, t);
    if (empty <= 0) {
        return empty;
    }
    double est = estimate(t, lv->primary);
    int want = (int)(est / BACKFILL_RANGE_ROWS + 0.999);
    if (est > 200000 && want < 2 * lv->o->jobs) {
        want = 2 * lv->o->jobs;
    }
    want = want > 256 ? 256 : want < 1 ? 1 : want;
    struct scan_range *r = NULL;
    int n = 1;
    if (want > 1 && t->ref->nkeys > 0) {
        n = plan(lv, t, want, &r);
    } else {
        r = util_xcalloc(1, sizeof *r);
    }
    if (n < 0) {
        return -1;
    }
    int *idx = util_xcalloc((size_t)n, sizeof *idx);
    for (int i = 0; i < n; i++) {
        idx[i] = lv->resume ? i : -1;
    }
    fprintf(lv->out, "backfill: %s: %d range(s), ~%.0f rows\n", t->def->display, n, est);
    int rc = 0;
    if (lv->resume && resume_plan(lv->resume, t->def->display, r, n) < 0) {
        snprintf(lv->error, sizeof lv->error, "cannot write the --resume file");
        rc = -1;
    }
    int64_t copied = lv->pass_copied;
    rc = rc ? rc : backfill_run(lv, t, r, idx, n, est);
    lv->bf_tables++;
    for (int i = 0; i < n; i++) {
        scan_range_free(&r[i]);
    }
    free(r);
    free(idx);
    /* Nothing copied (every range already had rows on the secondary): compare it now, or a
     * table that stays nearly empty would be put off pass after pass. */
    return rc < 0 ? -1 : lv->pass_copied > copied ? 1 : 0;
}

/* tools/verify/scan.c: checksums of key ranges computed inside both databases at once
 * (row count + sum of per-row text hashes per range, no rows transferred). */
#include "tools/verify/scan.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libpq-fe.h>

#include "tools/verify/bisect.h"
#include "tools/verify/discover.h"
#include "tools/verify/keyless.h"
#include "tools/verify/keys.h"
#include "tools/verify/live.h"
#include "tools/verify/options.h"
#include "tools/verify/pool.h"
#include "tools/verify/probe.h"
#include "tools/verify/progress.h"
#include "tools/verify/result.h"
#include "tools/verify/strbuf.h"
#include "tools/verify/table.h"

/* Target rows per top-level range and the cap on ranges per table. */
#define SCAN_RANGE_ROWS   50000.0
#define SCAN_MAX_RANGES   256
/* Heap blocks per ctid chunk and the cap on chunks per side. */
#define SCAN_CHUNK_BLOCKS 4096
#define SCAN_MAX_CHUNKS   256

/* One checksum request: a range cut into nb buckets, answered by both sides. */
struct scan {
    struct table *t;
    struct scan_range r;
    struct keys_row *bounds; /* nb - 1 packed keys */
    int nb;
    int64_t *cnt[2];
    keys_i128 *sum[2];
    int pending; /* queries not answered yet */
    bool top;    /* whole-table scan in ctid chunks */
    bool total;  /* first whole-table pass: one range, counts are the table's rows */
};

static int start_top(struct table *t, const struct keys_row *bounds, int nb, bool total);
static void sample_async(struct table *t);
static double sample_pct(const struct table *t);

void scan_range_copy(struct scan_range *dst, const struct scan_range *src)
{
    *dst = *src;
    dst->lo = src->has_lo ? util_xmemdup(src->lo, src->lolen) : NULL;
    dst->hi = src->has_hi ? util_xmemdup(src->hi, src->hilen) : NULL;
}

void scan_range_free(struct scan_range *r)
{
    free(r->lo);
    free(r->hi);
    r->lo = r->hi = NULL;
}

int scan_range_params(const struct table *t, const struct scan_range *r, const char **params)
{
    int n = 0, nk = t->ref->nkeys;
    if (r->has_lo) {
        keys_split(r->lo, r->lolen, nk, params + n);
        n += nk;
    }
    if (r->has_hi) {
        keys_split(r->hi, r->hilen, nk, params + n);
        n += nk;
    }
    return n;
}

/* Binary search over the bounds as nested CASEs: buckets lo..hi, bound j at $first+j*nkeys. */
static void bucket_expr(const struct table *t, struct strbuf *b, int lo, int hi, int first)
{
    if (lo == hi) {
        strbuf_printf(b, "%d", lo);
        return;
    }
    int mid = (lo + hi + 1) / 2;
    strbuf_puts(b, "CASE WHEN ");
    table_key_cmp(t, b, "<", first + (mid - 1) * t->ref->nkeys);
    strbuf_puts(b, " THEN ");
    bucket_expr(t, b, lo, mid - 1, first);
    strbuf_puts(b, " ELSE ");
    bucket_expr(t, b, mid, hi, first);
    strbuf_puts(b, " END");
}

static void scan_free(struct scan *sc)
{
    keys_rows_free(sc->bounds, sc->nb > 0 ? (size_t)sc->nb - 1 : 0);
    for (int s = 0; s < 2; s++) {
        free(sc->cnt[s]);
        free(sc->sum[s]);
    }
    scan_range_free(&sc->r);
    free(sc);
}

/* Range of bucket b: [bound b-1, bound b), the scan's own bounds at the ends. */
static void bucket_range(const struct scan *sc, int b, struct scan_range *out)
{
    *out = sc->r;
    if (b > 0) {
        out->has_lo = true;
        out->lo = sc->bounds[b - 1].key;
        out->lolen = sc->bounds[b - 1].klen;
    }
    if (b < sc->nb - 1) {
        out->has_hi = true;
        out->hi = sc->bounds[b].key;
        out->hilen = sc->bounds[b].klen;
    }
}

static void scan_finish(struct scan *sc)
{
    struct table *t = sc->t;
    t->res->ranges += sc->nb;
    for (int b = 0; b < sc->nb; b++) {
        if (sc->total) {
            t->res->rows[0] += sc->cnt[0][b];
            t->res->rows[1] += sc->cnt[1][b];
        }
        if (sc->cnt[0][b] == sc->cnt[1][b] && sc->sum[0][b] == sc->sum[1][b]) {
            continue;
        }
        if (t->ref->nkeys == 0 && t->live) {
            live_add_keyless(t);
            continue;
        }
        if (t->ref->nkeys == 0) {
            keyless_start(t);
            continue;
        }
        if (sc->total) {
            sample_async(t); /* the table differs: now localize by key ranges */
            continue;
        }
        struct scan_range r;
        bucket_range(sc, b, &r);
        int64_t cnt[2] = {sc->cnt[0][b], sc->cnt[1][b]};
        bisect_range(t, &r, cnt);
    }
    scan_free(sc);
}

static int on_scan(void *ctx, int side, const PGresult *res)
{
    struct scan *sc = ctx;
    int64_t rows = 0;
    for (int i = 0; i < PQntuples(res); i++) {
        int b = atoi(PQgetvalue(res, i, 0));
        int64_t c = atoll(PQgetvalue(res, i, 1));
        keys_i128 h = 0;
        if (b < 0 || b >= sc->nb || keys_parse_i128(PQgetvalue(res, i, 2), &h) < 0) {
            pool_fail(sc->t->pool, "%s: table %s: bad checksum row", util_side_name(side),
                      sc->t->def->display);
            return -1;
        }
        sc->cnt[side][b] += c;
        sc->sum[side][b] += h;
        rows += c;
    }
    if (sc->total) {
        progress_add(sc->t->prog, (double)rows);
    }
    if (--sc->pending == 0) {
        scan_finish(sc);
    }
    return 0;
}

static struct scan *scan_new(struct table *t, const struct scan_range *r,
                             const struct keys_row *bounds, int nbounds)
{
    struct scan *sc = util_xcalloc(1, sizeof *sc);
    sc->t = t;
    scan_range_copy(&sc->r, r);
    sc->nb = nbounds + 1;
    sc->bounds = keys_rows_dup(bounds, (size_t)nbounds, (size_t)sc->nb);
    for (int s = 0; s < 2; s++) {
        sc->cnt[s] = util_xcalloc((size_t)sc->nb, sizeof *sc->cnt[s]);
        sc->sum[s] = util_xcalloc((size_t)sc->nb, sizeof *sc->sum[s]);
    }
    return sc;
}

/* SELECT bucket, count, sum ... WHERE range [AND ctid chunk]; params: range bounds, then cuts. */
static void scan_sql(const struct scan *sc, struct strbuf *b, const char **params, int *nparams)
{
    const struct table *t = sc->t;
    int n = scan_range_params(t, &sc->r, params);
    strbuf_puts(b, "SELECT ");
    bucket_expr(t, b, 0, sc->nb - 1, n + 1);
    strbuf_printf(b, ", count(*), coalesce(sum(%s), 0)::text FROM %s t WHERE ", t->rowhash,
                  t->def->qname);
    table_range_pred(t, b, sc->r.has_lo, sc->r.has_hi, 1);
    for (int i = 0; i < sc->nb - 1; i++) {
        keys_split(sc->bounds[i].key, sc->bounds[i].klen, t->ref->nkeys, params + n);
        n += t->ref->nkeys;
    }
    *nparams = n;
}

void scan_start(struct table *t, const struct scan_range *r, const struct keys_row *bounds,
                int nbounds)
{
    struct scan *sc = scan_new(t, r, bounds, nbounds);
    const char **params =
        util_xcalloc((size_t)(nbounds + 3) * (size_t)t->ref->nkeys + 1, sizeof *params);
    int np = 0;
    struct strbuf b;
    strbuf_init(&b);
    scan_sql(sc, &b, params, &np);
    strbuf_puts(&b, " GROUP BY 1");
    sc->pending = 2;
    for (int s = 0; s < 2; s++) {
        pool_submit(t->pool, s, b.p, np, params, on_scan, sc);
    }
    strbuf_free(&b);
    free(params);
}

/* Chunks only pay while the table fits in a quarter of shared_buffers: a TID range scan never
 * uses the bulk-read buffer ring, so on a larger table it evicts the whole buffer pool and runs
 * about twice as slowly as one sequential scan (which PostgreSQL may parallelize itself). */
static int64_t nchunks(const struct table *t, int side)
{
    int64_t blocks = t->def->side[side].blocks;
    if (blocks > t->def->side[side].shared_buffers / 4) {
        return 1;
    }
    int64_t n = (blocks + SCAN_CHUNK_BLOCKS - 1) / SCAN_CHUNK_BLOCKS;
    int64_t jobs = 2 * (int64_t)pool_per_side(t->pool);
    if (n < jobs) {
        n = jobs;
    }
    if (n > SCAN_MAX_CHUNKS) {
        n = SCAN_MAX_CHUNKS;
    }
    return blocks < 64 ? 1 : n;
}

/* Queues the whole-table scan of one side in ctid chunks (TID range scans, PostgreSQL 14+). */
static void submit_chunks(struct scan *sc, int side, const char *base, const char **params, int np,
                          bool grouped)
{
    int64_t n = nchunks(sc->t, side), blocks = sc->t->def->side[side].blocks;
    int64_t step = n > 0 ? (blocks + n - 1) / n : 1;
    struct strbuf b;
    strbuf_init(&b);
    for (int64_t i = 0; i < n; i++) {
        strbuf_reset(&b);
        strbuf_puts(&b, base);
        if (n > 1 && i > 0) {
            strbuf_printf(&b, " AND t.ctid >= '(%lld,0)'::tid", (long long)(i * step));
        }
        if (n > 1 && i < n - 1) {
            strbuf_printf(&b, " AND t.ctid < '(%lld,0)'::tid", (long long)((i + 1) * step));
        }
        strbuf_puts(&b, grouped ? " GROUP BY 1" : "");
        sc->pending++;
        pool_submit(sc->t->pool, side, b.p, np, params, on_scan, sc);
    }
    strbuf_free(&b);
}

static int want_ranges(const struct table *t)
{
    const struct discover_side *sd = &t->def->side[t->primary];
    double est = sd->reltuples > 0 ? sd->reltuples : (double)sd->blocks * 60.0;
    int want = (int)(est / SCAN_RANGE_ROWS);
    return want > SCAN_MAX_RANGES ? SCAN_MAX_RANGES : want < 1 ? 1 : want;
}

static int on_sample(void *ctx, int side, const PGresult *r)
{
    (void)side;
    struct table *t = ctx;
    int n = PQntuples(r), nk = t->ref->nkeys;
    struct keys_row *bounds = util_xcalloc((size_t)n, sizeof *bounds);
    for (int i = 0; i < n; i++) {
        struct strbuf b;
        strbuf_init(&b);
        for (int k = 0; k < nk; k++) {
            strbuf_put(&b, PQgetvalue(r, i, k), (size_t)PQgetlength(r, i, k) + 1);
        }
        bounds[i].klen = b.len;
        bounds[i].key = strbuf_take(&b);
    }
    int rc = 0;
    if (t->live && !t->probed) {
        t->probed = true;
        probe_start(t, bounds, n, sample_pct(t)); /* every range a leaf, or scan_table_total */
    } else {
        rc = start_top(t, bounds, n, false);
    }
    keys_rows_free(bounds, (size_t)n);
    return rc;
}

/* The TABLESAMPLE SYSTEM percentage that reads about 200 blocks or 20,000 rows of the primary. */
static double sample_pct(const struct table *t)
{
    const struct discover_side *sd = &t->def->side[t->primary];
    double est = sd->reltuples > 0 ? sd->reltuples : (double)sd->blocks * 60.0;
    double blocks = sd->blocks > 0 ? (double)sd->blocks : 1;
    est = est > 1 ? est : 1;
    double pct = 100.0 * (200.0 / blocks > 20000.0 / est ? 200.0 / blocks : 20000.0 / est);
    return pct > 100 ? 100 : pct < 0.001 ? 0.001 : pct;
}

/* Queues the choice of up to want-1 cut keys from a block sample of the primary, spread by
 * rank (only the cut keys travel); on_sample then starts the per-range scan (--live: through
 * the probe, which may hand every range to the repair as a leaf instead). */
static void sample_async(struct table *t)
{
    double pct = sample_pct(t);
    struct strbuf b;
    strbuf_init(&b);
    strbuf_printf(&b,
                  "SELECT %s FROM (SELECT %s, row_number() OVER (ORDER BY %s) AS pgdual_rn,"
                  " count(*) OVER () AS pgdual_n FROM %s t TABLESAMPLE SYSTEM (%.4f)) s"
                  " WHERE s.pgdual_rn %% greatest(1, s.pgdual_n / %d) = 0"
                  " AND s.pgdual_rn < s.pgdual_n ORDER BY s.pgdual_rn",
                  t->subkeytext, t->keycols, t->keycols, t->def->qname, pct, want_ranges(t));
    pool_submit(t->pool, t->primary, b.p, 0, NULL, on_sample, t);
    strbuf_free(&b);
}

/* Queues a whole-table scan of both sides in ctid chunks, cut into ranges at bounds. */
static int start_top(struct table *t, const struct keys_row *bounds, int nb, bool total)
{
    struct scan_range whole = {0};
    struct scan *sc = scan_new(t, &whole, bounds, nb);
    sc->top = true;
    sc->total = total;
    const char **params =
        util_xcalloc((size_t)(nb + 1) * (size_t)t->ref->nkeys + 1, sizeof *params);
    int np = 0;
    struct strbuf b;
    strbuf_init(&b);
    scan_sql(sc, &b, params, &np);
    for (int s = 0; s < 2; s++) {
        submit_chunks(sc, s, b.p, params, np, nb > 0);
    }
    strbuf_free(&b);
    free(params);
    return 0;
}

void scan_table_total(struct table *t)
{
    (void)start_top(t, NULL, 0, true);
}

int scan_table(struct table *t)
{
    /* --live, a keyed table: the cut keys and the probe first. When it finds many differences,
     * every range becomes a leaf at once: the whole-table checksum and the ranged one would be
     * two full scans of both sides that find every range different anyway. Else the usual
     * whole-table checksum (scan_table_total), then ranges if it differs. */
    if (t->live && t->ref->nkeys > 0) {
        sample_async(t);
        return 0;
    }
    return start_top(t, NULL, 0, true);
}

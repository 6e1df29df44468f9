/* tools/verify/chunk.c: the locked repair of one key range (DESIGN §7): primary rows FOR SHARE,
 * secondary rows FOR UPDATE, the primary's snapshot after that, the secondary's writes committed
 * before the primary's locks are released; rows extra on the secondary deleted only later. */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "tools/verify/discover.h"
#include "tools/verify/keys.h"
#include "tools/verify/live.h"
#include "tools/verify/livedb.h"
#include "tools/verify/options.h"
#include "tools/verify/repair.h"
#include "tools/verify/replog.h"
#include "tools/verify/strbuf.h"
#include "tools/verify/table.h"

/* Keys per locked transaction (suspects of a leaf range, extras read again). */
#define CHUNK_EXTRA_BATCH 200

/* One row of a chunk's result: its packed key and its row number in the result. */
struct crow {
    char *key;
    size_t klen;
    int row;
};

/* A write planned for the secondary, logged once both sides committed. */
struct cwrite {
    const char *action; /* insert, update, delete */
    int prow, srow;     /* rows in the primary's / secondary's result, -1 none */
    int *cols;          /* changed columns (indexes into t->ref->cols) */
    int ncols;
    char *sql;  /* its statement on the secondary, RETURNING a row when it changed one */
    bool wrote; /* it did: a row changed (an upsert of values already there returns none) */
};

struct cplan {
    struct cwrite *w;
    size_t nw;
    struct live_extra *extras; /* rows extra on the secondary (chunk mode) */
    size_t nextras;
};

static int crow_cmp(const void *a, const void *b)
{
    const struct crow *x = a, *y = b;
    return keys_cmp(x->key, x->klen, y->key, y->klen);
}

static struct crow *crows(const PGresult *r, int nk, size_t *n)
{
    *n = (size_t)PQntuples(r);
    struct crow *v = util_xcalloc(*n, sizeof *v);
    for (size_t i = 0; i < *n; i++) {
        struct strbuf b;
        strbuf_init(&b);
        for (int k = 0; k < nk; k++) {
            strbuf_put(&b, PQgetvalue(r, (int)i, k), (size_t)PQgetlength(r, (int)i, k) + 1);
        }
        v[i].klen = b.len;
        v[i].key = strbuf_take(&b);
        v[i].row = (int)i;
    }
    qsort(v, *n, sizeof *v, crow_cmp);
    return v;
}

static void crows_free(struct crow *v, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(v[i].key);
    }
    free(v);
}

static void plan_free(struct cplan *pl)
{
    for (size_t i = 0; i < pl->nw; i++) {
        free(pl->w[i].cols);
        free(pl->w[i].sql);
    }
    free(pl->w);
    for (size_t i = 0; i < pl->nextras; i++) {
        free(pl->extras[i].key);
        free(pl->extras[i].snap);
    }
    free(pl->extras);
    memset(pl, 0, sizeof *pl);
}

static struct cwrite *plan_add(struct cplan *pl, const char *action, int prow, int srow)
{
    pl->w = util_xrealloc(pl->w, sizeof *pl->w * (pl->nw + 1));
    struct cwrite *w = &pl->w[pl->nw++];
    *w = (struct cwrite){.action = action, .prow = prow, .srow = srow};
    return w;
}

/* Columns (not generated) whose text differs between the two rows; all of them when srow < 0. */
static void changed_cols(const struct table *t, const PGresult *rp, int prow, const PGresult *rs,
                         int srow, struct cwrite *w)
{
    const struct discover_side *sd = t->ref;
    int base = sd->nkeys;
    w->cols = util_xcalloc((size_t)sd->ncols, sizeof *w->cols);
    for (int i = 0; i < sd->ncols; i++) {
        if (sd->cols[i].generated) {
            continue;
        }
        bool differs = srow < 0;
        if (!differs) {
            bool pn = PQgetisnull(rp, prow, base + i), sn = PQgetisnull(rs, srow, base + i);
            differs = pn != sn || (!pn && strcmp(PQgetvalue(rp, prow, base + i),
                                                 PQgetvalue(rs, srow, base + i)));
        }
        if (differs) {
            w->cols[w->ncols++] = i;
        }
    }
}

/* The statement in b (ending ";\n") with RETURNING 1 added: a row comes back only when it
 * changed one. Takes b's buffer. */
static char *returning(struct strbuf *b)
{
    while (b->len > 0 && (b->p[b->len - 1] == '\n' || b->p[b->len - 1] == ';')) {
        b->p[--b->len] = '\0';
    }
    strbuf_puts(b, " RETURNING 1");
    return strbuf_take(b);
}

/* Plans an upsert of primary row prow (insert when srow < 0). 0 or -1 (quoting failed). */
static int plan_upsert(struct live *lv, struct table *t, struct cplan *pl, const PGresult *rp,
                       int prow, const PGresult *rs, int srow)
{
    struct cwrite *w = plan_add(pl, srow < 0 ? "insert" : "update", prow, srow);
    changed_cols(t, rp, prow, rs, srow, w);
    if (w->ncols == 0) { /* only generated columns differ: nothing an upsert could change */
        free(w->cols);
        pl->nw--;
        lv->table_unsettled = true;
        return 0;
    }
    struct strbuf b;
    strbuf_init(&b);
    int rc = repair_put_insert(&b, lv->c[!lv->primary], t->def->qname, t->ref, rp, prow,
                               t->ref->nkeys, true);
    w->sql = returning(&b);
    return rc;
}

/* Walks both sides' rows of a chunk by key and plans the secondary's writes. snap != NULL: chunk
 * mode (extras are deferred with snap); NULL: extras mode (extras are deleted now). */
static int plan_chunk(struct live *lv, struct table *t, const PGresult *rp, const PGresult *rs,
                      const char *snap, struct cplan *pl)
{
    int nk = t->ref->nkeys, rc = 0;
    size_t np, ns;
    struct crow *p = crows(rp, nk, &np), *s = crows(rs, nk, &ns);
    size_t i = 0, j = 0;
    while (rc == 0 && (i < np || j < ns)) {
        int c = i >= np ? 1 : j >= ns ? -1 : crow_cmp(&p[i], &s[j]);
        if (c < 0) {
            rc = plan_upsert(lv, t, pl, rp, p[i++].row, rs, -1);
        } else if (c == 0) {
            struct cwrite probe = {0};
            changed_cols(t, rp, p[i].row, rs, s[j].row, &probe);
            free(probe.cols);
            if (probe.ncols > 0) {
                rc = plan_upsert(lv, t, pl, rp, p[i].row, rs, s[j].row);
            }
            i++;
            j++;
        } else if (snap) {
            pl->extras = util_xrealloc(pl->extras, sizeof *pl->extras * (pl->nextras + 1));
            pl->extras[pl->nextras++] =
                (struct live_extra){.key = util_xmemdup(s[j].key, s[j].klen),
                                    .klen = s[j].klen,
                                    .snap = util_xstrdup(snap)};
            j++;
        } else {
            struct cwrite *w = plan_add(pl, "delete", -1, s[j].row);
            struct strbuf b;
            strbuf_init(&b);
            rc = repair_put_delete(&b, lv->c[!lv->primary], t->def->qname, t->ref, s[j].key,
                                   s[j].klen);
            w->sql = returning(&b);
            j++;
        }
    }
    crows_free(p, np);
    crows_free(s, ns);
    return rc;
}

static void log_writes(struct live *lv, const struct table *t, const struct cplan *pl,
                       const PGresult *rp, const PGresult *rs)
{
    const struct discover_side *sd = t->ref;
    const char *keynames[64], *keyvals[64], *cols[1600], *before[1600];
    for (int k = 0; k < sd->nkeys; k++) {
        keynames[k] = sd->cols[sd->keys[k]].name;
    }
    for (size_t i = 0; i < pl->nw; i++) {
        const struct cwrite *w = &pl->w[i];
        if (!w->wrote) {
            continue;
        }
        const PGresult *kr = w->prow >= 0 ? rp : rs;
        int krow = w->prow >= 0 ? w->prow : w->srow;
        for (int k = 0; k < sd->nkeys; k++) {
            keyvals[k] = PQgetvalue(kr, krow, k);
        }
        for (int c = 0; c < w->ncols && c < 1600; c++) {
            cols[c] = sd->cols[w->cols[c]].name;
            int f = sd->nkeys + w->cols[c];
            before[c] =
                w->srow < 0 || PQgetisnull(rs, w->srow, f) ? NULL : PQgetvalue(rs, w->srow, f);
        }
        struct replog_entry e = {.table = t->def->display,
                                 .action = w->action,
                                 .nkeys = sd->nkeys,
                                 .keynames = keynames,
                                 .keyvals = keyvals,
                                 .ncols = w->ncols,
                                 .cols = cols,
                                 .before = !strcmp(w->action, "update") ? before : NULL,
                                 .rows = -1};
        replog_emit(lv->log, lv->out, lv->pass, &e);
    }
}

/* "SELECT k::text..., c::text... FROM t WHERE <pred> ORDER BY k FOR SHARE|UPDATE" */
static void select_sql(const struct table *t, struct strbuf *b, const char *pred, bool primary)
{
    strbuf_printf(b, "SELECT %s, %s FROM %s t WHERE %s ORDER BY %s FOR %s OF t", t->keytext,
                  t->allcols, t->def->qname, pred, t->keycols, primary ? "SHARE" : "UPDATE");
}

/* The chunk's writes on the secondary in one round trip: one query string, one result per
 * statement (PQsendQuery); a statement that changed a row returns one (RETURNING 1). An error
 * stops the rest (the server skips them). LIVEDB_*. */
static enum livedb_rc run_writes(PGconn *c, int side, struct cplan *pl, size_t *wrote, char *err,
                                 size_t el)
{
    struct strbuf q;
    strbuf_init(&q);
    for (size_t i = 0; i < pl->nw; i++) {
        strbuf_printf(&q, "%s;\n", pl->w[i].sql);
    }
    enum livedb_rc rc = LIVEDB_OK;
    if (!PQsendQuery(c, q.p)) {
        snprintf(err, el, "%s: %s", util_side_name(side), PQerrorMessage(c));
        rc = LIVEDB_BROKEN;
    }
    size_t i = 0;
    PGresult *r;
    while (rc != LIVEDB_BROKEN && (r = PQgetResult(c)) != NULL) {
        if (PQresultStatus(r) == PGRES_TUPLES_OK && i < pl->nw) {
            pl->w[i].wrote = PQntuples(r) > 0;
            *wrote += pl->w[i].wrote;
            i++;
        } else if (PQresultStatus(r) != PGRES_TUPLES_OK && rc == LIVEDB_OK) {
            rc = livedb_classify(PQresultErrorField(r, PG_DIAG_SQLSTATE));
            snprintf(err, el, "%s: %s", util_side_name(side), PQresultErrorMessage(r));
        }
        PQclear(r);
    }
    if (rc == LIVEDB_OK && i != pl->nw) {
        snprintf(err, el, "%s: %zu of %zu repair statements answered", util_side_name(side), i,
                 pl->nw);
        rc = LIVEDB_FAIL;
    }
    strbuf_free(&q);
    return rc;
}

/* One attempt at a chunk (pred with params). LIVEDB_OK after both commits; else both sides are
 * left for the caller to roll back. */
static enum livedb_rc attempt(struct live *lv, struct table *t, const char *pred, int np,
                              const char *const *params, bool chunk_mode, char *err, size_t el)
{
    int P = lv->primary, S = !P;
    PGresult *rp = NULL, *rs = NULL, *rsnap = NULL;
    struct cplan pl = {0};
    struct strbuf q;
    strbuf_init(&q);
    enum livedb_rc rc = livedb_begin(lv->c[P], P, lv->o->lock_timeout_ms, err, el);
    select_sql(t, &q, pred, true);
    rc = rc ? rc : livedb_exec(lv->c[P], P, q.p, np, params, &rp, err, el);
    rc = rc ? rc : livedb_begin(lv->c[S], S, lv->o->lock_timeout_ms, err, el);
    strbuf_reset(&q);
    select_sql(t, &q, pred, false);
    rc = rc ? rc : livedb_exec(lv->c[S], S, q.p, np, params, &rs, err, el);
    if (rc == LIVEDB_OK && chunk_mode) {
        rc = livedb_exec(lv->c[P], P, "SELECT pg_current_snapshot()::text", 0, NULL, &rsnap, err,
                         el);
    }
    if (rc == LIVEDB_OK &&
        plan_chunk(lv, t, rp, rs, rsnap ? PQgetvalue(rsnap, 0, 0) : NULL, &pl) < 0) {
        snprintf(err, el, "cannot quote a value of %s", t->def->display);
        rc = LIVEDB_FAIL;
    }
    size_t wrote = 0;
    if (rc == LIVEDB_OK && pl.nw > 0) {
        rc = run_writes(lv->c[S], S, &pl, &wrote, err, el);
    }
    rc = rc ? rc : livedb_exec(lv->c[S], S, "COMMIT", 0, NULL, NULL, err, el);
    rc = rc ? rc : livedb_exec(lv->c[P], P, "COMMIT", 0, NULL, NULL, err, el);
    if (rc == LIVEDB_OK) {
        log_writes(lv, t, &pl, rp, rs);
        live_count(lv, t, (int64_t)wrote);
        for (size_t i = 0; i < pl.nextras; i++) {
            if (lv->nextras == lv->capextras) {
                lv->capextras = lv->capextras ? 2 * lv->capextras : 16;
                lv->extras = util_xrealloc(lv->extras, sizeof *lv->extras * lv->capextras);
            }
            lv->extras[lv->nextras++] = pl.extras[i];
        }
        pl.nextras = 0;
    }
    strbuf_free(&q);
    plan_free(&pl);
    PQclear(rp);
    PQclear(rs);
    PQclear(rsnap);
    return rc;
}

/* Runs attempt() until it commits, retrying lock timeouts and deadlocks with a backoff. */
static int with_retries(struct live *lv, struct table *t, const char *pred, int np,
                        const char *const *params, bool chunk_mode)
{
    char err[1024] = "";
    enum livedb_rc rc = LIVEDB_RETRY;
    for (int a = 0; a < LIVE_RETRIES && rc == LIVEDB_RETRY; a++) {
        if (a > 0) {
            livedb_backoff(a);
        }
        rc = attempt(lv, t, pred, np, params, chunk_mode, err, sizeof err);
        if (rc != LIVEDB_OK) {
            livedb_rollback_both(lv->c[!lv->primary], lv->c[lv->primary]);
        }
    }
    if (rc == LIVEDB_BROKEN) {
        snprintf(lv->error, sizeof lv->error, "table %.200s: %.800s", t->def->display, err);
        return -1;
    }
    if (rc != LIVEDB_OK) {
        fprintf(stderr, "pgdual-verify: table %s: chunk left unrepaired: %s\n", t->def->display,
                err);
        lv->table_unsettled = true;
    }
    return 0;
}

/* Runs the locked attempt over the n packed keys (chunk_mode: extras deferred, else deleted). */
static int keys_locked(struct live *lv, struct table *t, char *const *keys, const size_t *klens,
                       size_t n, bool chunk_mode)
{
    int nk = t->ref->nkeys;
    const char **params = util_xcalloc(n * (size_t)nk + 1, sizeof *params);
    struct strbuf pred;
    strbuf_init(&pred);
    strbuf_printf(&pred, "(%s) IN (", t->keycols);
    for (size_t i = 0; i < n; i++) {
        keys_split(keys[i], klens[i], nk, params + i * nk);
        strbuf_puts(&pred, i ? ", (" : "(");
        table_key_params(t, &pred, (int)(i * (size_t)nk) + 1);
        strbuf_puts(&pred, ")");
    }
    strbuf_puts(&pred, ")");
    int rc = with_retries(lv, t, pred.p, (int)(n * (size_t)nk), params, chunk_mode);
    strbuf_free(&pred);
    free(params);
    return rc;
}

/* The chunk's keys whose row is missing, extra or different on one side, read without locks
 * (pk text + row hash). The count, or -1 when the read failed (the caller locks the whole chunk).
 * *keys / *klens are allocated. */
static long suspects(struct live *lv, struct table *t, const char *pred, int np,
                     const char *const *params, char ***keys, size_t **klens)
{
    struct strbuf q;
    strbuf_init(&q);
    strbuf_printf(&q, "SELECT %s, %s::text FROM %s t WHERE %s", t->keytext, t->rowhash,
                  t->def->qname, pred);
    PGresult *res[2] = {NULL, NULL};
    long n = 0;
    for (int side = 0; side < 2; side++) { /* both sides read at once */
        if (!PQsendQueryParams(lv->c[side], q.p, np, NULL, params, NULL, NULL, 0)) {
            n = -1;
        }
    }
    for (int side = 0; side < 2; side++) {
        PGresult *r;
        while ((r = PQgetResult(lv->c[side])) != NULL) {
            if (PQresultStatus(r) == PGRES_TUPLES_OK && !res[side]) {
                res[side] = r;
            } else {
                n = -1; /* the caller locks the whole leaf, and reports a lost connection */
                PQclear(r);
            }
        }
        n = res[side] ? n : -1;
    }
    strbuf_free(&q);
    int nk = t->ref->nkeys;
    size_t na = 0, nb = 0;
    struct crow *a = n < 0 ? NULL : crows(res[lv->primary], nk, &na);
    struct crow *b = n < 0 ? NULL : crows(res[!lv->primary], nk, &nb);
    *keys = NULL;
    *klens = NULL;
    size_t i = 0, j = 0, cap = 0;
    while (n >= 0 && (i < na || j < nb)) {
        int c = i >= na ? 1 : j >= nb ? -1 : crow_cmp(&a[i], &b[j]);
        const struct crow *k = c <= 0 ? &a[i] : &b[j];
        bool differs = c != 0 || strcmp(PQgetvalue(res[lv->primary], a[i].row, nk),
                                        PQgetvalue(res[!lv->primary], b[j].row, nk)) != 0;
        if (differs) {
            if ((size_t)n == cap) {
                cap = cap ? 2 * cap : 16;
                *keys = util_xrealloc(*keys, sizeof **keys * cap);
                *klens = util_xrealloc(*klens, sizeof **klens * cap);
            }
            (*keys)[n] = util_xmemdup(k->key, k->klen);
            (*klens)[n++] = k->klen;
        }
        i += c <= 0;
        j += c >= 0;
    }
    crows_free(a, na);
    crows_free(b, nb);
    PQclear(res[0]);
    PQclear(res[1]);
    return n;
}

int chunk_repair(struct live *lv, struct table *t, const struct scan_range *r)
{
    const char *params[2 * 64 + 1];
    int np = scan_range_params(t, r, params);
    struct strbuf pred;
    strbuf_init(&pred);
    table_range_pred(t, &pred, r->has_lo, r->has_hi, 1);
    /* Only the rows that differ without locks are locked and compared again: a chunk of a table
     * that missed scattered writes holds a few of them, and share-locking all 1,000 rows of each
     * chunk would write a lock into every row of the table. A row that looks equal here only
     * because the two reads were a moment apart is caught by the locked comparison that ends the
     * round (confirm.c). */
    char **keys = NULL;
    size_t *klens = NULL;
    long n = suspects(lv, t, pred.p, np, params, &keys, &klens);
    int rc = 0;
    if (n < 0) {
        rc = with_retries(lv, t, pred.p, np, params, true);
    }
    for (long i = 0; i < n && rc == 0; i += CHUNK_EXTRA_BATCH) {
        long m = n - i < CHUNK_EXTRA_BATCH ? n - i : CHUNK_EXTRA_BATCH;
        rc = live_budget(lv, t) ? keys_locked(lv, t, keys + i, klens + i, (size_t)m, true) : 0;
    }
    for (long i = 0; i < n; i++) {
        free(keys[i]);
    }
    free(keys);
    free(klens);
    strbuf_free(&pred);
    return rc;
}

static int extras_batch(struct live *lv, struct table *t, size_t from, size_t n)
{
    char **keys = util_xcalloc(n, sizeof *keys);
    size_t *klens = util_xcalloc(n, sizeof *klens);
    for (size_t i = 0; i < n; i++) {
        keys[i] = lv->extras[from + i].key;
        klens[i] = lv->extras[from + i].klen;
    }
    int rc = keys_locked(lv, t, keys, klens, n, false);
    free(keys);
    free(klens);
    return rc;
}

/* Waits for the transactions of every distinct snapshot among the extras. 0, 1 (timed out:
 * extras stay for the next pass) or -1. */
static int wait_snapshots(struct live *lv, struct table *t)
{
    char err[1024];
    for (size_t i = 0; i < lv->nextras; i++) {
        if (i > 0 && !strcmp(lv->extras[i].snap, lv->extras[i - 1].snap)) {
            continue;
        }
        enum livedb_rc rc = livedb_wait_xip(lv->c[lv->primary], lv->primary, lv->extras[i].snap,
                                            LIVE_XIP_TIMEOUT_S, err, sizeof err);
        if (rc == LIVEDB_RETRY) {
            fprintf(stderr, "pgdual-verify: table %s: extras not deleted: %s\n", t->def->display,
                    err);
            return 1;
        }
        if (rc != LIVEDB_OK) {
            snprintf(lv->error, sizeof lv->error, "table %.200s: %.800s", t->def->display, err);
            return -1;
        }
    }
    return 0;
}

int chunk_extras(struct live *lv, struct table *t)
{
    int rc = lv->nextras ? wait_snapshots(lv, t) : 0;
    if (rc == 1) {
        lv->table_unsettled = true;
        rc = 0;
    } else {
        for (size_t i = 0; rc == 0 && i < lv->nextras; i += CHUNK_EXTRA_BATCH) {
            size_t n = lv->nextras - i < CHUNK_EXTRA_BATCH ? lv->nextras - i : CHUNK_EXTRA_BATCH;
            rc = live_budget(lv, t) ? extras_batch(lv, t, i, n) : 0;
        }
    }
    for (size_t i = 0; i < lv->nextras; i++) {
        free(lv->extras[i].key);
        free(lv->extras[i].snap);
    }
    lv->nextras = 0;
    return rc;
}

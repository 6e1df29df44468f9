/* tools/verify/chunk.c: the locked repair of one key range (DESIGN §7): primary rows FOR SHARE,
 * secondary rows FOR UPDATE, the primary's snapshot after that, the secondary's writes committed
 * before the primary's locks are released; rows extra on the secondary deleted only later. */
#include <pthread.h>
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
    char *sql;  /* a delete's statement on the secondary, RETURNING a row when it removed one;
                 * NULL for an upsert (all of a chunk's upserts are one statement) */
    bool wrote; /* it did: a row changed (an upsert of values already there returns none) */
};

/* What a locked attempt reads: the chunk's predicate on each side (by side: with literals quoted
 * for that side's connection, np == 0), or one predicate with np text parameters for both. */
struct lockq {
    const char *pred[2];
    int np;
    const char *const *params;
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

/* The packed key (keys.h) of row i of r, whose first nk columns are the key as text. */
static struct crow crow_of(const PGresult *r, int i, int nk)
{
    struct strbuf b;
    strbuf_init(&b);
    for (int k = 0; k < nk; k++) {
        strbuf_put(&b, PQgetvalue(r, i, k), (size_t)PQgetlength(r, i, k) + 1);
    }
    struct crow c = {.klen = b.len, .row = i};
    c.key = strbuf_take(&b);
    return c;
}

static struct crow *crows(const PGresult *r, int nk, size_t *n)
{
    *n = (size_t)PQntuples(r);
    struct crow *v = util_xcalloc(*n, sizeof *v);
    for (size_t i = 0; i < *n; i++) {
        v[i] = crow_of(r, (int)i, nk);
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

/* Plans an upsert of primary row prow (insert when srow < 0); its values go into the chunk's one
 * upsert statement (put_upserts). Always 0. */
static int plan_upsert(struct live *lv, struct table *t, struct cplan *pl, const PGresult *rp,
                       int prow, const PGresult *rs, int srow)
{
    struct cwrite *w = plan_add(pl, srow < 0 ? "insert" : "update", prow, srow);
    changed_cols(t, rp, prow, rs, srow, w);
    if (w->ncols == 0) { /* only generated columns differ: nothing an upsert could change */
        free(w->cols);
        pl->nw--;
        lv->table_unsettled = true;
    }
    return 0;
}

/* Walks both sides' rows of a chunk by key and plans the secondary's writes. chunk_mode: extras
 * are deferred (their snapshot is set once the chunk committed, keep_extras); else extras mode
 * (extras are deleted now). */
static int plan_chunk(struct live *lv, struct table *t, const PGresult *rp, const PGresult *rs,
                      bool chunk_mode, struct cplan *pl)
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
        } else if (chunk_mode) {
            pl->extras = util_xrealloc(pl->extras, sizeof *pl->extras * (pl->nextras + 1));
            pl->extras[pl->nextras++] = (struct live_extra){
                .key = util_xmemdup(s[j].key, s[j].klen), .klen = s[j].klen, .snap = NULL};
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
    if (lv->out_mu) {
        pthread_mutex_lock(lv->out_mu);
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
    if (lv->out_mu) {
        pthread_mutex_unlock(lv->out_mu);
    }
}

/* "SELECT k::text..., c::text... FROM t WHERE <pred> ORDER BY k FOR SHARE|UPDATE" */
static void select_sql(const struct table *t, struct strbuf *b, const char *pred, bool primary)
{
    strbuf_printf(b, "SELECT %s, %s FROM %s t WHERE %s ORDER BY %s FOR %s OF t", t->keytext,
                  t->allcols, t->def->qname, pred, t->keycols, primary ? "SHARE" : "UPDATE");
}

/* Appends the chunk's upserts as one statement, "INSERT ... VALUES (row), (row), ... ON CONFLICT
 * (pk) DO UPDATE ... WHERE <differs> RETURNING pgdual_t.k::text, ...": one parse, one plan and one
 * index descent per row instead of a statement per row. The rows returned are those it changed.
 * Returns the number of upserts, or -1 when a value could not be quoted. */
static long put_upserts(struct live *lv, const struct table *t, const struct cplan *pl,
                        const PGresult *rp, struct strbuf *q)
{
    const struct discover_side *sd = t->ref;
    long n = 0;
    int rc = 0;
    for (size_t i = 0; i < pl->nw; i++) {
        if (pl->w[i].sql) {
            continue;
        }
        if (n++ == 0) {
            repair_put_insert_head(q, t->def->qname, sd);
        }
        strbuf_puts(q, n > 1 ? ", " : "");
        rc |= repair_put_values(q, lv->c[!lv->primary], sd, rp, pl->w[i].prow, sd->nkeys);
    }
    if (n > 0) {
        lv->st.upserts++;
        lv->st.upsert_rows += n;
        repair_put_upsert_tail(q, sd);
        for (int k = 0; k < sd->nkeys; k++) {
            strbuf_printf(q, "%spgdual_t.%s::text", k ? ", " : " RETURNING ",
                          sd->cols[sd->keys[k]].qname);
        }
        strbuf_puts(q, ";\n");
    }
    return rc < 0 ? -1 : n;
}

/* The upsert's answer: the keys of the rows it changed mark their writes as done. */
static void upserts_done(const struct table *t, struct cplan *pl, const PGresult *rp,
                         const PGresult *r, size_t *wrote)
{
    int nk = t->ref->nkeys;
    size_t n;
    struct crow *got = crows(r, nk, &n);
    *wrote += n;
    for (size_t i = 0; i < pl->nw; i++) {
        if (!pl->w[i].sql) {
            struct crow k = crow_of(rp, pl->w[i].prow, nk);
            pl->w[i].wrote = bsearch(&k, got, n, sizeof *got, crow_cmp) != NULL;
            free(k.key);
        }
    }
    crows_free(got, n);
}

/* The chunk's writes on the secondary and its COMMIT in one round trip: one query string (the
 * upserts as one statement, then a statement per delete, then COMMIT), one result per statement
 * (PQsendQuery). An error stops the rest, COMMIT included (the server skips them; the caller
 * rolls back). LIVEDB_*. */
static enum livedb_rc run_writes(struct live *lv, const struct table *t, struct cplan *pl,
                                 const PGresult *rp, size_t *wrote, char *err, size_t el)
{
    int side = !lv->primary;
    PGconn *c = lv->c[side];
    struct strbuf q;
    strbuf_init(&q);
    long nups = put_upserts(lv, t, pl, rp, &q);
    size_t nstmt = nups > 0, i = 0;
    for (size_t k = 0; k < pl->nw; k++) {
        if (pl->w[k].sql) {
            strbuf_printf(&q, "%s;\n", pl->w[k].sql);
            nstmt++;
        }
    }
    strbuf_puts(&q, "COMMIT;\n");
    bool committed = false;
    enum livedb_rc rc = LIVEDB_OK;
    if (nups < 0) {
        snprintf(err, el, "cannot quote a value of %s", t->def->display);
        rc = LIVEDB_FAIL;
    } else if (!PQsendQuery(c, q.p)) {
        snprintf(err, el, "%s: %s", util_side_name(side), PQerrorMessage(c));
        rc = LIVEDB_BROKEN;
    }
    size_t next_delete = 0; /* the write the next delete result belongs to */
    PGresult *r;
    while (nups >= 0 && rc != LIVEDB_BROKEN && (r = PQgetResult(c)) != NULL) {
        if (PQresultStatus(r) == PGRES_TUPLES_OK && i < nstmt) {
            if (i++ == 0 && nups > 0) {
                upserts_done(t, pl, rp, r, wrote);
            } else {
                while (next_delete < pl->nw && !pl->w[next_delete].sql) {
                    next_delete++;
                }
                pl->w[next_delete].wrote = PQntuples(r) > 0;
                *wrote += pl->w[next_delete++].wrote;
            }
        } else if (PQresultStatus(r) == PGRES_COMMAND_OK && i == nstmt && rc == LIVEDB_OK) {
            committed = true;
        } else if (PQresultStatus(r) != PGRES_TUPLES_OK && rc == LIVEDB_OK) {
            rc = livedb_classify(PQresultErrorField(r, PG_DIAG_SQLSTATE));
            snprintf(err, el, "%s: %s", util_side_name(side), PQresultErrorMessage(r));
        }
        PQclear(r);
    }
    if (rc == LIVEDB_OK && (i != nstmt || !committed)) {
        snprintf(err, el, "%s: %zu of %zu repair statements answered%s", util_side_name(side), i,
                 nstmt, committed ? "" : ", no COMMIT");
        rc = LIVEDB_FAIL;
    }
    if (rc == LIVEDB_OK && PQtransactionStatus(c) != PQTRANS_IDLE) {
        snprintf(err, el, "%s: still in a transaction after COMMIT", util_side_name(side));
        rc = LIVEDB_FAIL;
    }
    strbuf_free(&q);
    return rc;
}

/* BEGIN, SET LOCAL lock_timeout and the chunk's rows on one side (FOR SHARE on the primary, FOR
 * UPDATE on the secondary): one round trip when the predicate holds literals, three with
 * parameters (a string of several statements takes none). */
static enum livedb_rc locked_read(struct live *lv, const struct table *t, int side,
                                  const struct lockq *lq, PGresult **out, char *err, size_t el)
{
    struct strbuf q;
    strbuf_init(&q);
    enum livedb_rc rc;
    if (lq->np > 0) {
        select_sql(t, &q, lq->pred[side], side == lv->primary);
        rc = livedb_begin(lv->c[side], side, lv->o->lock_timeout_ms, err, el);
        rc = rc ? rc : livedb_exec(lv->c[side], side, q.p, lq->np, lq->params, out, err, el);
    } else {
        livedb_put_begin(&q, lv->o->lock_timeout_ms);
        select_sql(t, &q, lq->pred[side], side == lv->primary);
        rc = livedb_exec_multi(lv->c[side], side, q.p, out, err, el);
    }
    if (rc == LIVEDB_OK && !*out) {
        snprintf(err, el, "%s: the locked read returned no rows", util_side_name(side));
        rc = LIVEDB_FAIL;
    }
    strbuf_free(&q);
    return rc;
}

/* Hands the chunk's deferred extras, now with their snapshot, to the table's list. */
static void keep_extras(struct live *lv, struct cplan *pl, const PGresult *rsnap)
{
    for (size_t i = 0; i < pl->nextras; i++) {
        if (lv->nextras == lv->capextras) {
            lv->capextras = lv->capextras ? 2 * lv->capextras : 16;
            lv->extras = util_xrealloc(lv->extras, sizeof *lv->extras * lv->capextras);
        }
        pl->extras[i].snap = util_xstrdup(PQgetvalue(rsnap, 0, 0));
        lv->extras[lv->nextras++] = pl->extras[i];
    }
    pl->nextras = 0;
}

/* One attempt at a chunk. Round trips, in this order: primary BEGIN + rows FOR SHARE; secondary
 * BEGIN + rows FOR UPDATE; (chunk mode) the primary's snapshot; the secondary's writes + COMMIT
 * (or its COMMIT alone); the primary's COMMIT. LIVEDB_OK after both commits; else both sides are
 * left for the caller to roll back. */
static enum livedb_rc attempt(struct live *lv, struct table *t, const struct lockq *lq,
                              bool chunk_mode, char *err, size_t el)
{
    int P = lv->primary, S = !P;
    PGresult *rp = NULL, *rs = NULL, *rsnap = NULL;
    struct cplan pl = {0};
    enum livedb_rc rc = locked_read(lv, t, P, lq, &rp, err, el);
    rc = rc ? rc : locked_read(lv, t, S, lq, &rs, err, el);
    if (rc == LIVEDB_OK && chunk_mode) {
        rc = livedb_exec(lv->c[P], P, "SELECT pg_current_snapshot()::text", 0, NULL, &rsnap, err,
                         el);
    }
    if (rc == LIVEDB_OK && plan_chunk(lv, t, rp, rs, chunk_mode, &pl) < 0) {
        snprintf(err, el, "cannot quote a value of %s", t->def->display);
        rc = LIVEDB_FAIL;
    }
    size_t wrote = 0;
    if (rc == LIVEDB_OK && pl.nw > 0) {
        double t0 = util_now();
        rc = run_writes(lv, t, &pl, rp, &wrote, err, el); /* commits the secondary */
        lv->st.writes_s += util_now() - t0;
    } else {
        rc = rc ? rc : livedb_exec(lv->c[S], S, "COMMIT", 0, NULL, NULL, err, el);
    }
    rc = rc ? rc : livedb_exec(lv->c[P], P, "COMMIT", 0, NULL, NULL, err, el);
    if (rc == LIVEDB_OK) {
        lv->st.batches++;
        log_writes(lv, t, &pl, rp, rs);
        live_count(lv, t, (int64_t)wrote);
        keep_extras(lv, &pl, rsnap);
    }
    plan_free(&pl);
    PQclear(rp);
    PQclear(rs);
    PQclear(rsnap);
    return rc;
}

/* Runs attempt() until it commits, retrying lock timeouts and deadlocks with a backoff. */
static int with_retries(struct live *lv, struct table *t, const struct lockq *lq, bool chunk_mode)
{
    char err[1024] = "";
    enum livedb_rc rc = LIVEDB_RETRY;
    for (int a = 0; a < LIVE_RETRIES && rc == LIVEDB_RETRY; a++) {
        if (a > 0) {
            lv->st.retries++;
            livedb_backoff(a);
        }
        double t0 = util_now();
        rc = attempt(lv, t, lq, chunk_mode, err, sizeof err);
        lv->st.locked_s += util_now() - t0;
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

/* Appends "(t.k1, ...) IN (('v'::type, ...), ...)" for the n packed keys, quoted for c. 0 or -1
 * (a value could not be quoted). */
static int keys_pred(const struct table *t, PGconn *c, char *const *keys, const size_t *klens,
                     size_t n, struct strbuf *b)
{
    const struct discover_side *sd = t->ref;
    const char *vals[64];
    int rc = 0;
    strbuf_printf(b, "(%s) IN (", t->keycols);
    for (size_t i = 0; i < n; i++) {
        keys_split(keys[i], klens[i], sd->nkeys, vals);
        strbuf_puts(b, i ? ", (" : "(");
        for (int k = 0; k < sd->nkeys; k++) {
            char *lit = PQescapeLiteral(c, vals[k], strlen(vals[k]));
            rc |= lit ? 0 : -1;
            strbuf_printf(b, "%s%s::%s", k ? ", " : "", lit ? lit : "NULL",
                          sd->cols[sd->keys[k]].type);
            PQfreemem(lit);
        }
        strbuf_puts(b, ")");
    }
    strbuf_puts(b, ")");
    return rc;
}

/* Runs the locked attempt over the n packed keys (chunk_mode: extras deferred, else deleted). */
static int keys_locked(struct live *lv, struct table *t, char *const *keys, const size_t *klens,
                       size_t n, bool chunk_mode)
{
    struct strbuf pred[2];
    int rc = 0;
    for (int s = 0; s < 2; s++) {
        strbuf_init(&pred[s]);
        rc |= keys_pred(t, lv->c[s], keys, klens, n, &pred[s]);
    }
    if (rc < 0) {
        fprintf(stderr, "pgdual-verify: table %s: chunk left unrepaired: cannot quote a key\n",
                t->def->display);
        lv->table_unsettled = true;
        rc = 0;
    } else {
        struct lockq lq = {.pred = {pred[0].p, pred[1].p}};
        rc = with_retries(lv, t, &lq, chunk_mode);
    }
    strbuf_free(&pred[0]);
    strbuf_free(&pred[1]);
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
    double t0 = util_now();
    long n = suspects(lv, t, pred.p, np, params, &keys, &klens);
    lv->st.suspects_s += util_now() - t0;
    lv->st.leaves++;
    int rc = 0;
    if (n < 0) {
        struct lockq lq = {.pred = {pred.p, pred.p}, .np = np, .params = params};
        rc = with_retries(lv, t, &lq, true);
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

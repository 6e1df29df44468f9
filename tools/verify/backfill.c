/* tools/verify/backfill.c: the backfill fast path: ranges missing on the secondary are piped from
 * the primary's COPY TO into the secondary's COPY FROM, by --jobs worker threads. */
#include "tools/verify/backfill.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <libpq-fe.h>

#include "tools/verify/discover.h"
#include "tools/verify/keys.h"
#include "tools/verify/live.h"
#include "tools/verify/livedb.h"
#include "tools/verify/options.h"
#include "tools/verify/progress.h"
#include "tools/verify/replog.h"
#include "tools/verify/resume.h"
#include "tools/verify/strbuf.h"
#include "tools/verify/table.h"

/* The ranges of one table being copied, shared by the worker threads. */
struct bf_run {
    struct live *lv;
    struct table *t;
    struct scan_range *r;
    int *idx; /* position in the --resume plan, -1 when not resumable */
    int n, next;
    bool failed;
    char error[1024];
    struct progress prog;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int running; /* workers not finished */
};

void backfill_add_range(struct table *t, const struct scan_range *r, int64_t rows)
{
    struct live *lv = t->live;
    lv->copies = util_xrealloc(lv->copies, sizeof *lv->copies * (lv->ncopies + 1));
    scan_range_copy(&lv->copies[lv->ncopies++], r);
    lv->copy_rows_est += rows;
}

/* Non-generated columns: "t.c1, t.c2" (select) and "c1, c2" (insert target). */
static void col_lists(const struct table *t, struct strbuf *sel, struct strbuf *ins)
{
    const struct discover_side *sd = t->ref;
    for (int i = 0, n = 0; i < sd->ncols; i++) {
        if (!sd->cols[i].generated) {
            strbuf_printf(sel, "%st.%s", n ? ", " : "", sd->cols[i].qname);
            strbuf_printf(ins, "%s%s", n++ ? ", " : "", sd->cols[i].qname);
        }
    }
}

/* The range predicate with quoted literals (COPY takes no parameters). */
static int range_literal(const struct table *t, PGconn *c, const struct scan_range *r,
                         struct strbuf *b)
{
    const char *params[2 * 64 + 1];
    int np = scan_range_params(t, r, params);
    struct strbuf pred;
    strbuf_init(&pred);
    table_range_pred(t, &pred, r->has_lo, r->has_hi, 1);
    int rc = 0;
    /* Replace $n (from the highest, so $1 does not match inside $10) by 'value'. */
    for (int i = np; i >= 1; i--) {
        char ph[16];
        snprintf(ph, sizeof ph, "$%d::", i);
        char *lit = PQescapeLiteral(c, params[i - 1], strlen(params[i - 1]));
        if (!lit) {
            rc = -1;
            break;
        }
        char *at = strstr(pred.p, ph);
        if (at) {
            struct strbuf nb;
            strbuf_init(&nb);
            strbuf_put(&nb, pred.p, (size_t)(at - pred.p));
            strbuf_printf(&nb, "%s::", lit);
            strbuf_puts(&nb, at + strlen(ph));
            strbuf_free(&pred);
            pred = nb;
        }
        PQfreemem(lit);
    }
    strbuf_puts(b, pred.p);
    strbuf_free(&pred);
    return rc;
}

/* Streams the range into the secondary in one transaction; staging: into a temp table first,
 * then INSERT ... ON CONFLICT DO NOTHING. LIVEDB_* (RETRY also for 23505 without staging). */
static enum livedb_rc pipe_range(struct bf_run *run, PGconn *src, PGconn *dst, int S, bool staging,
                                 const char *pred, int64_t *rows, char *err, size_t el)
{
    const struct table *t = run->t;
    struct strbuf sel, ins, q;
    strbuf_init(&sel);
    strbuf_init(&ins);
    strbuf_init(&q);
    col_lists(t, &sel, &ins);
    bool ident = false;
    for (int i = 0; i < t->ref->ncols; i++) {
        ident |= t->ref->cols[i].identity_always;
    }
    enum livedb_rc rc = livedb_exec(dst, S, "BEGIN", 0, NULL, NULL, err, el);
    if (staging) {
        strbuf_printf(&q,
                      "CREATE TEMP TABLE pgdual_stage ON COMMIT DROP AS SELECT %s FROM %s t"
                      " WITH NO DATA",
                      sel.p, t->def->qname);
        rc = rc ? rc : livedb_exec(dst, S, q.p, 0, NULL, NULL, err, el);
        strbuf_reset(&q);
    }
    strbuf_printf(&q, "COPY %s (%s) FROM STDIN", staging ? "pgdual_stage" : t->def->qname, ins.p);
    PGresult *r = rc ? NULL : PQexec(dst, q.p);
    if (rc == LIVEDB_OK && PQresultStatus(r) != PGRES_COPY_IN) {
        snprintf(err, el, "%s: COPY FROM: %s", util_side_name(S), PQerrorMessage(dst));
        rc = LIVEDB_FAIL;
    }
    PQclear(r);
    strbuf_reset(&q);
    strbuf_printf(&q, "COPY (SELECT %s FROM %s t WHERE %s) TO STDOUT", sel.p, t->def->qname, pred);
    r = rc ? NULL : PQexec(src, q.p);
    if (rc == LIVEDB_OK && PQresultStatus(r) != PGRES_COPY_OUT) {
        snprintf(err, el, "%s: COPY TO: %s", util_side_name(!S), PQerrorMessage(src));
        rc = LIVEDB_FAIL;
        PQputCopyEnd(dst, "source failed");
        PQclear(PQgetResult(dst));
    }
    PQclear(r);
    int64_t n = 0, told = 0;
    char *buf = NULL;
    int len = 0;
    while (rc == LIVEDB_OK && (len = PQgetCopyData(src, &buf, 0)) > 0) {
        if (PQputCopyData(dst, buf, len) != 1) {
            snprintf(err, el, "%s: %s", util_side_name(S), PQerrorMessage(dst));
            rc = LIVEDB_BROKEN;
        }
        PQfreemem(buf);
        if (++n - told >= 10000) {
            pthread_mutex_lock(&run->mu);
            progress_add(&run->prog, (double)(n - told));
            pthread_mutex_unlock(&run->mu);
            told = n;
        }
    }
    if (rc == LIVEDB_OK || len == -2) {
        /* The COPY TO's own result: an error here means the source failed mid-stream. */
        r = PQgetResult(src);
        if (rc == LIVEDB_OK && (len == -2 || PQresultStatus(r) != PGRES_COMMAND_OK)) {
            snprintf(err, el, "%s: COPY TO: %s", util_side_name(!S), PQerrorMessage(src));
            rc = LIVEDB_FAIL;
        }
        PQclear(r);
        while ((r = PQgetResult(src))) {
            PQclear(r);
        }
        PQputCopyEnd(dst, rc == LIVEDB_OK ? NULL : "source failed");
        r = PQgetResult(dst);
        if (rc == LIVEDB_OK && PQresultStatus(r) != PGRES_COMMAND_OK) {
            const char *st = PQresultErrorField(r, PG_DIAG_SQLSTATE);
            rc = st && !strcmp(st, "23505") && !staging ? LIVEDB_RETRY : livedb_classify(st);
            rc = rc == LIVEDB_OK ? LIVEDB_FAIL : rc;
            snprintf(err, el, "%s: COPY FROM: %s", util_side_name(S), PQresultErrorMessage(r));
        }
        PQclear(r);
        while ((r = PQgetResult(dst))) {
            PQclear(r);
        }
    }
    if (rc == LIVEDB_OK && staging) {
        strbuf_reset(&q);
        strbuf_printf(&q,
                      "INSERT INTO %s (%s)%s SELECT %s FROM pgdual_stage t"
                      " ON CONFLICT DO NOTHING",
                      t->def->qname, ins.p, ident ? " OVERRIDING SYSTEM VALUE" : "", sel.p);
        rc = livedb_exec(dst, S, q.p, 0, NULL, NULL, err, el);
    }
    rc = rc ? rc : livedb_exec(dst, S, "COMMIT", 0, NULL, NULL, err, el);
    if (rc != LIVEDB_OK) {
        livedb_rollback(dst);
    }
    pthread_mutex_lock(&run->mu);
    progress_add(&run->prog, (double)(n - told));
    pthread_mutex_unlock(&run->mu);
    *rows = n;
    strbuf_free(&sel);
    strbuf_free(&ins);
    strbuf_free(&q);
    return rc;
}

/* True when the secondary already has a row in the range (then it is never COPYed). */
static enum livedb_rc has_rows(struct bf_run *run, PGconn *dst, int S, const char *pred, bool *yes,
                               char *err, size_t el)
{
    struct strbuf q;
    strbuf_init(&q);
    strbuf_printf(&q, "SELECT EXISTS (SELECT 1 FROM %s t WHERE %s)", run->t->def->qname, pred);
    PGresult *r = NULL;
    enum livedb_rc rc = livedb_exec(dst, S, q.p, 0, NULL, &r, err, el);
    *yes = rc == LIVEDB_OK && PQgetvalue(r, 0, 0)[0] == 't';
    PQclear(r);
    strbuf_free(&q);
    return rc;
}

static void log_copy(struct bf_run *run, const struct scan_range *r, int64_t rows)
{
    const struct discover_side *sd = run->t->ref;
    const char *names[64], *lo[64], *hi[64];
    for (int k = 0; k < sd->nkeys; k++) {
        names[k] = sd->cols[sd->keys[k]].name;
    }
    if (r->has_lo) {
        keys_split(r->lo, r->lolen, sd->nkeys, lo);
    }
    if (r->has_hi) {
        keys_split(r->hi, r->hilen, sd->nkeys, hi);
    }
    struct replog_entry e = {.table = run->t->def->display,
                             .action = "copy_range",
                             .nkeys = sd->nkeys,
                             .keynames = names,
                             .rows = rows,
                             .lo = r->has_lo ? lo : NULL,
                             .hi = r->has_hi ? hi : NULL};
    replog_emit(run->lv->log, run->lv->out, run->lv->pass, &e);
}

/* One range: skipped when the secondary has rows there; else piped, with the staging fallback
 * after a unique violation (a mirrored insert landed in the range meanwhile). */
static enum livedb_rc one_range(struct bf_run *run, PGconn *src, PGconn *dst, int i, char *err,
                                size_t el)
{
    int S = !run->lv->primary;
    struct strbuf pred;
    strbuf_init(&pred);
    if (range_literal(run->t, src, &run->r[i], &pred) < 0) {
        snprintf(err, el, "cannot quote a range bound of %s", run->t->def->display);
        strbuf_free(&pred);
        return LIVEDB_FAIL;
    }
    bool busy = false;
    int64_t rows = 0;
    enum livedb_rc rc = has_rows(run, dst, S, pred.p, &busy, err, el);
    if (rc == LIVEDB_OK && !busy) {
        rc = pipe_range(run, src, dst, S, false, pred.p, &rows, err, el);
        if (rc == LIVEDB_RETRY) {
            rc = pipe_range(run, src, dst, S, true, pred.p, &rows, err, el);
        }
    }
    strbuf_free(&pred);
    pthread_mutex_lock(&run->mu);
    if (rc == LIVEDB_OK && busy && run->idx[i] >= 0 && run->lv->resume) {
        resume_mark(run->lv->resume, run->t->def->display, run->idx[i], 0);
    }
    if (rc != LIVEDB_OK || busy) {
        /* Not copied (rows landed there meanwhile, or the copy failed): the rows it lacks are
         * found by the next pass's comparison, never called equal by this one. */
        run->lv->table_unsettled = true;
    }
    if (rc == LIVEDB_OK && !busy) {
        struct live *lv = run->lv;
        lv->bf_ranges++;
        lv->bf_rows += rows;
        lv->pass_copied += rows;
        log_copy(run, &run->r[i], rows);
        if (run->idx[i] >= 0 && lv->resume &&
            resume_done(lv->resume, run->t->def->display, run->idx[i], rows) < 0) {
            snprintf(err, el, "cannot write the --resume file");
            rc = LIVEDB_BROKEN;
        }
    }
    pthread_mutex_unlock(&run->mu);
    return rc;
}

static void *worker(void *arg)
{
    struct bf_run *run = arg;
    struct live *lv = run->lv;
    char err[1024] = "";
    PGconn *c[2] = {NULL, NULL};
    enum livedb_rc rc = LIVEDB_OK;
    for (int s = 0; s < 2 && rc == LIVEDB_OK; s++) {
        c[s] = live_connect(lv->o->conninfo[s], s, err, sizeof err);
        rc = c[s] ? LIVEDB_OK : LIVEDB_BROKEN;
    }
    for (;;) {
        pthread_mutex_lock(&run->mu);
        int i = rc == LIVEDB_OK && !run->failed && run->next < run->n ? run->next++ : -1;
        pthread_mutex_unlock(&run->mu);
        if (i < 0) {
            break;
        }
        rc = one_range(run, c[lv->primary], c[!lv->primary], i, err, sizeof err);
        if (rc == LIVEDB_FAIL || rc == LIVEDB_RETRY) { /* left for the chunk repair */
            fprintf(stderr, "pgdual-verify: table %s: range not copied: %s\n", run->t->def->display,
                    err);
            rc = LIVEDB_OK;
        }
    }
    pthread_mutex_lock(&run->mu);
    if (rc != LIVEDB_OK && !run->failed) {
        run->failed = true;
        snprintf(run->error, sizeof run->error, "%.1000s", err);
    }
    run->running--;
    pthread_cond_signal(&run->cv);
    pthread_mutex_unlock(&run->mu);
    for (int s = 0; s < 2; s++) {
        PQfinish(c[s]);
    }
    return NULL;
}

/* Copies n ranges with --jobs workers; idx: resume positions or NULL. 0 or -1. */
int backfill_run(struct live *lv, struct table *t, struct scan_range *r, int *idx, int n,
                 double est)
{
    struct bf_run run = {.lv = lv, .t = t, .r = r, .n = n};
    run.idx = util_xcalloc((size_t)n, sizeof *run.idx);
    for (int i = 0; i < n; i++) {
        run.idx[i] = idx ? idx[i] : -1;
    }
    pthread_mutex_init(&run.mu, NULL);
    pthread_cond_init(&run.cv, NULL);
    progress_init(&run.prog, lv->o->progress, est);
    int jobs = lv->o->jobs < n ? lv->o->jobs : n;
    pthread_t th[16];
    run.running = jobs;
    for (int j = 0; j < jobs; j++) {
        pthread_create(&th[j], NULL, worker, &run);
    }
    pthread_mutex_lock(&run.mu);
    while (run.running > 0) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_nsec += 200000000L;
        if (ts.tv_nsec >= 1000000000L) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000L;
        }
        pthread_cond_timedwait(&run.cv, &run.mu, &ts);
        progress_tick(&run.prog);
    }
    pthread_mutex_unlock(&run.mu);
    for (int j = 0; j < jobs; j++) {
        pthread_join(th[j], NULL);
    }
    progress_clear(&run.prog);
    pthread_mutex_destroy(&run.mu);
    pthread_cond_destroy(&run.cv);
    free(run.idx);
    if (run.failed) {
        snprintf(lv->error, sizeof lv->error, "table %.200s: backfill: %.800s", t->def->display,
                 run.error);
        return -1;
    }
    return 0;
}

int backfill_pending(struct live *lv, struct table *t)
{
    int rc = 0;
    if (lv->ncopies) {
        rc = backfill_run(lv, t, lv->copies, NULL, (int)lv->ncopies, (double)lv->copy_rows_est);
    }
    for (size_t i = 0; i < lv->ncopies; i++) {
        scan_range_free(&lv->copies[i]);
    }
    lv->ncopies = 0;
    lv->copy_rows_est = 0;
    return rc;
}

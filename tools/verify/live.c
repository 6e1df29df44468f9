/* tools/verify/live.c: --live --repair --apply: passes of locked chunk repair until one repairs
 * nothing, the --watch loop, the rate limit and the JSON summary. */
#include "tools/verify/live.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tools/verify/backfill.h"
#include "tools/verify/confirm.h"
#include "tools/verify/discover.h"
#include "tools/verify/options.h"
#include "tools/verify/pool.h"
#include "tools/verify/report.h"
#include "tools/verify/result.h"
#include "tools/verify/resume.h"
#include "tools/verify/strbuf.h"
#include "tools/verify/table.h"
#include "tools/verify/verify.h"

void live_add_chunk(struct table *t, const struct scan_range *r)
{
    struct live *lv = t->live;
    if (lv->nchunks == lv->capchunks) {
        lv->capchunks = lv->capchunks ? 2 * lv->capchunks : 16;
        lv->chunks = util_xrealloc(lv->chunks, sizeof *lv->chunks * lv->capchunks);
    }
    scan_range_copy(&lv->chunks[lv->nchunks++], r);
}

void live_add_keyless(struct table *t)
{
    t->live->keyless_differs = true;
}

static struct live_rate *rate_of(struct live *lv, const char *table)
{
    for (int i = 0; i < lv->nrates; i++) {
        if (!strcmp(lv->rates[i].table, table)) {
            return &lv->rates[i];
        }
    }
    lv->rates = util_xrealloc(lv->rates, sizeof *lv->rates * (size_t)(lv->nrates + 1));
    lv->rates[lv->nrates] = (struct live_rate){.table = util_xstrdup(table), .minute = util_now()};
    return &lv->rates[lv->nrates++];
}

bool live_budget(struct live *lv, const struct table *t)
{
    if (!lv->o->rate_limit) {
        return true;
    }
    struct live_rate *r = rate_of(lv, t->def->display);
    double now = util_now();
    if (now - r->minute >= 60.0) {
        r->minute = now;
        r->rows = 0;
    }
    if (r->rows < lv->o->rate_limit) {
        return true;
    }
    if (!lv->table_unsettled) {
        fprintf(lv->out,
                "rate-limit: %s: %lld rows repaired this minute (limit %d), skipped until the"
                " next minute\n",
                t->def->display, (long long)r->rows, lv->o->rate_limit);
    }
    lv->table_unsettled = true;
    return false;
}

void live_count(struct live *lv, const struct table *t, int64_t n)
{
    lv->table_rows += n;
    lv->pass_rows += n;
    lv->total_rows += n;
    if (lv->o->rate_limit) {
        rate_of(lv, t->def->display)->rows += n;
    }
}

void live_redo_add(struct live *lv, const char *table)
{
    lv->redo = util_xrealloc(lv->redo, sizeof *lv->redo * (size_t)(lv->nredo + 2));
    lv->redo[lv->nredo++] = util_xstrdup(table);
    lv->redo[lv->nredo] = NULL;
}

int live_before_scan(struct live *lv, struct table *t)
{
    lv->table_rows = 0;
    lv->table_unsettled = false;
    int64_t copied = lv->pass_copied;
    double t0 = util_now();
    int rc = backfill_table(lv, t);
    lv->bf_seconds += util_now() - t0;
    if (rc > 0 || lv->pass_copied > copied) {
        live_redo_add(lv, t->def->display);
    }
    lv->st.scan_t0 = util_now();
    return rc;
}

/* --stats: one line per table whose leaves were repaired, on stderr. */
static void print_stats(const struct live *lv, const struct table *t, double secs)
{
    const struct live_stats *st = &lv->st;
    if (!lv->o->stats) {
        return;
    }
    fprintf(stderr,
            "stats: %s: scan %.2f s; %lld leaves on %d connection pair(s) in %.2f s: suspects"
            " read %.2f s;"
            " %lld locked transactions (%lld retried) %.2f s, of which writes %.2f s; %lld"
            " upsert statements of %lld rows\n",
            t->def->display, st->scan_s, (long long)st->leaves, st->pairs, secs, st->suspects_s,
            (long long)st->batches, (long long)st->retries, st->locked_s, st->writes_s,
            (long long)st->upserts, (long long)st->upsert_rows);
}

int live_repair_table(struct live *lv, struct table *t)
{
    lv->table_rows = 0;
    lv->table_unsettled = false;
    int64_t copied = lv->pass_copied;
    double t0 = util_now();
    int rc = backfill_pending(lv, t);
    lv->bf_seconds += util_now() - t0;
    double t1 = util_now(), scan_t0 = lv->st.scan_t0;
    memset(&lv->st, 0, sizeof lv->st);
    lv->st.scan_s = scan_t0 > 0 ? t0 - scan_t0 : 0;
    if (rc == 0 && lv->nchunks > 0) {
        rc = leafjobs_repair(lv, t);
        print_stats(lv, t, util_now() - t1);
    }
    if (rc == 0) {
        rc = chunk_extras(lv, t);
    }
    if (rc == 0 && lv->keyless_differs) {
        rc = multiset_repair(lv, t);
    }
    for (size_t i = 0; i < lv->nchunks; i++) {
        scan_range_free(&lv->chunks[i]);
    }
    lv->nchunks = 0;
    lv->keyless_differs = false;
    if (lv->table_rows > 0 || lv->table_unsettled || lv->pass_copied > copied) {
        live_redo_add(lv, t->def->display);
    }
    lv->pass_unsettled += lv->table_unsettled;
    return rc;
}

void live_progress(struct live *lv, int done, int total)
{
    if (lv->on_table) {
        lv->on_table(lv->on_table_ctx, done, total, lv->total_rows);
        return;
    }
    fprintf(lv->out, "progress: tables %d/%d rows_repaired %lld\n", done, total,
            (long long)lv->total_rows);
    fflush(lv->out);
}

PGconn *live_connect(const char *conninfo, int side, char *err, size_t errlen)
{
    const char *keys[] = {"dbname", "application_name", NULL};
    const char *vals[] = {conninfo, "pgdual-verify", NULL};
    PGconn *c = PQconnectdbParams(keys, vals, 1);
    if (PQstatus(c) != CONNECTION_OK) {
        snprintf(err, errlen, "cannot connect to %s database: %s", util_side_name(side),
                 PQerrorMessage(c));
        PQfinish(c);
        return NULL;
    }
    /* Values travel as text from one server to the other (the locked reads, the repair's
     * literals, COPY): both sessions print and read them alike, whatever each server's defaults
     * (a date read back under another DateStyle is another date; a float needs every digit). */
    if (pool_session_formats(c, side, err, errlen) < 0) {
        PQfinish(c);
        return NULL;
    }
    return c;
}

static void free_list(char **v)
{
    for (char **p = v; p && *p; p++) {
        free(*p);
    }
    free(v);
}

/* One pass over tables (NULL: those the options name). 0 or -1 (lv->error). */
static int one_pass(struct live *lv, char **tables, int *schema_diffs)
{
    struct options po = *lv->o;
    if (tables) {
        po.tables = tables;
        po.schema = NULL;
    }
    po.progress = false;
    free_list(lv->redo);
    lv->redo = NULL;
    lv->nredo = 0;
    lv->pass_rows = 0;
    lv->pass_copied = 0;
    lv->pass_unsettled = 0;
    struct verify_pass vp;
    int rc = verify_discover(&po, &vp);
    if (rc == 0) {
        report_schema(lv->out, &vp, "");
        vp.live = lv;
        rc = verify_compare(&po, &vp);
    }
    *schema_diffs = 0;
    for (int i = 0; rc == 0 && i < vp.cat.n; i++) {
        *schema_diffs += !vp.cat.t[i].comparable;
    }
    if (rc < 0) {
        snprintf(lv->error, sizeof lv->error, "%s", vp.error);
    }
    verify_free(&vp);
    return rc;
}

/* Passes until one repairs nothing (or max_passes). Returns the exit status. */
static int round_of_passes(struct live *lv, long *passes)
{
    char **tables = NULL;
    int rc = UTIL_EXIT_DIFF;
    for (int n = 1; n <= lv->o->max_passes; n++) {
        ++*passes;
        lv->pass = lv->pass_label ? lv->pass_label : *passes;
        int schema_diffs = 0;
        if (one_pass(lv, tables, &schema_diffs) < 0) {
            rc = UTIL_EXIT_ERROR;
            break;
        }
        fprintf(lv->out,
                "pass %ld: %lld row(s) repaired, %lld row(s) copied, %lld table(s) left"
                " unsettled\n",
                lv->pass, (long long)lv->pass_rows, (long long)lv->pass_copied,
                (long long)lv->pass_unsettled);
        /* A table left unsettled (a chunk that kept timing out, a range not copied, extras
         * whose writers were still running) is looked at again while passes remain. */
        if (lv->pass_rows == 0 && lv->pass_copied == 0 &&
            (lv->pass_unsettled == 0 || n == lv->o->max_passes)) {
            rc = lv->pass_unsettled || schema_diffs ? UTIL_EXIT_DIFF : UTIL_EXIT_SAME;
            /* Unlocked checksums found nothing to do: the locked comparison decides (confirm.c). */
            int confirmed = rc == UTIL_EXIT_SAME ? confirm_tables(lv) : 0;
            if (confirmed < 0) {
                rc = UTIL_EXIT_ERROR;
            } else if (confirmed > 0) {
                rc = UTIL_EXIT_DIFF;
                if (n < lv->o->max_passes) {
                    free_list(tables);
                    tables = lv->redo;
                    lv->redo = NULL;
                    lv->nredo = 0;
                    continue;
                }
            }
            break;
        }
        free_list(tables);
        tables = lv->redo;
        lv->redo = NULL;
        lv->nredo = 0;
    }
    free_list(tables);
    fflush(lv->out);
    return rc;
}

static int write_json(const struct options *o, const char *path, int rc,
                      const struct live_totals *tot, double secs)
{
    FILE *f = fopen(path, "w");
    if (!f) {
        fprintf(stderr, "pgdual-verify: cannot write %s\n", path);
        return -1;
    }
    struct strbuf b;
    strbuf_init(&b);
    strbuf_printf(&b,
                  "{\"result\":\"%s\",\"mode\":\"live\",\"primary\":\"%s\",\"passes\":%ld,"
                  "\"rows_repaired\":%lld,\"seconds\":%.3f,"
                  "\"backfill\":{\"tables\":%d,\"ranges_copied\":%lld,\"rows_copied\":%lld,"
                  "\"seconds\":%.3f},\"error\":",
                  rc == UTIL_EXIT_SAME   ? "identical"
                  : rc == UTIL_EXIT_DIFF ? "different"
                                         : "error",
                  util_side_name(o->primary), tot->passes, (long long)tot->rows, secs,
                  tot->bf_tables, (long long)tot->bf_ranges, (long long)tot->bf_rows,
                  tot->bf_seconds);
    if (rc == UTIL_EXIT_ERROR) {
        strbuf_put_json(&b, tot->error);
    } else {
        strbuf_puts(&b, "null");
    }
    strbuf_puts(&b, "}\n");
    int ok = fputs(b.p, f) >= 0;
    strbuf_free(&b);
    return fclose(f) == 0 && ok ? 0 : -1;
}

static void live_close(struct live *lv)
{
    for (int s = 0; s < 2; s++) {
        if (lv->c[s]) {
            PQfinish(lv->c[s]);
        }
    }
    if (lv->log) {
        fclose(lv->log);
    }
    free(lv->chunks);
    free(lv->copies);
    if (lv->resume) {
        resume_close(lv->resume);
        free(lv->resume);
    }
    free(lv->extras);
    free_list(lv->redo);
    for (int i = 0; i < lv->nrates; i++) {
        free(lv->rates[i].table);
    }
    free(lv->rates);
}

static int live_open(struct live *lv, const struct options *o)
{
    memset(lv, 0, sizeof *lv);
    lv->o = o;
    lv->primary = o->primary;
    lv->out = stdout;
    if (o->repair_log && !(lv->log = fopen(o->repair_log, "a"))) {
        snprintf(lv->error, sizeof lv->error, "cannot open --repair-log %s", o->repair_log);
        return -1;
    }
    if (o->resume) {
        lv->resume = util_xcalloc(1, sizeof *lv->resume);
        if (resume_open(lv->resume, o->resume, lv->error, sizeof lv->error) < 0) {
            return -1;
        }
    }
    for (int s = 0; s < 2; s++) {
        if (!(lv->c[s] = live_connect(o->conninfo[s], s, lv->error, sizeof lv->error))) {
            return -1;
        }
    }
    return 0;
}

static void add_totals(struct live_totals *tot, const struct live *lv, long passes)
{
    tot->passes += passes;
    tot->rows += lv->total_rows;
    tot->bf_rows += lv->bf_rows;
    tot->bf_ranges += lv->bf_ranges;
    tot->bf_tables += lv->bf_tables;
    tot->bf_seconds += lv->bf_seconds;
    if (lv->error[0]) {
        snprintf(tot->error, sizeof tot->error, "%s", lv->error);
    }
}

int live_run_db(const struct options *o, long pass_label, live_table_fn fn, void *ctx,
                struct live_totals *tot)
{
    struct live lv;
    long passes = 0;
    int rc = live_open(&lv, o);
    lv.pass_label = pass_label;
    lv.on_table = fn;
    lv.on_table_ctx = ctx;
    rc = rc < 0 ? UTIL_EXIT_ERROR : round_of_passes(&lv, &passes);
    add_totals(tot, &lv, passes);
    live_close(&lv);
    return rc;
}

int live_summary(const struct options *o, int rc, const struct live_totals *tot, double t0)
{
    if (rc == UTIL_EXIT_ERROR) {
        fprintf(stderr, "pgdual-verify: error: %s\n", tot->error);
    } else {
        printf("result: %s after %ld pass(es), %lld row(s) repaired, %lld row(s) copied in %lld"
               " range(s) (%.1f s)\n",
               rc == UTIL_EXIT_SAME ? "in sync" : "differences remain", tot->passes,
               (long long)tot->rows, (long long)tot->bf_rows, (long long)tot->bf_ranges,
               util_now() - t0);
    }
    fflush(stdout);
    if (o->json_path && write_json(o, o->json_path, rc, tot, util_now() - t0) < 0) {
        rc = UTIL_EXIT_ERROR;
    }
    return rc;
}

int live_main(const struct options *o)
{
    if (o->tables_db || (o->config && !o->pgdual_pass)) {
        return console_main(o);
    }
    struct live_totals tot = {0};
    double t0 = util_now();
    int rc = live_run_db(o, o->pgdual_pass, NULL, NULL, &tot);
    while (o->watch && rc != UTIL_EXIT_ERROR) {
        printf("watch: %lld row(s) repaired so far; next round in %d s\n", (long long)tot.rows,
               o->watch);
        fflush(stdout);
        sleep((unsigned)o->watch);
        rc = live_run_db(o, o->pgdual_pass, NULL, NULL, &tot);
    }
    return live_summary(o, rc, &tot, t0);
}

/* tools/verify/main.c: pgdual-verify entry point: one verification, repair, or watch loop. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "tools/verify/live.h"
#include "tools/verify/options.h"
#include "tools/verify/repair.h"
#include "tools/verify/report.h"
#include "tools/verify/result.h"
#include "tools/verify/strbuf.h"
#include "tools/verify/verify.h"

/* Runs one pass; prints schema differences before data is compared. 0/1 or 2 (error). */
static int pass(const struct options *o, struct verify_pass *vp, const char *prefix, bool quiet)
{
    if (verify_discover(o, vp) < 0) {
        return UTIL_EXIT_ERROR;
    }
    if (!quiet) {
        report_schema(stdout, vp, prefix);
    }
    if (verify_compare(o, vp) < 0) {
        return UTIL_EXIT_ERROR;
    }
    if (o->stats) {
        report_stats(stderr, vp);
    }
    return verify_status(vp);
}

static int fail(const struct options *o, const struct verify_pass *vp)
{
    fprintf(stderr, "pgdual-verify: error: %s\n", vp->error);
    if (o->json_path && report_json(o->json_path, o, vp, vp->error) < 0) {
        return UTIL_EXIT_ERROR;
    }
    return UTIL_EXIT_ERROR;
}

static char *collect_repair(const struct verify_pass *vp, int *n)
{
    struct strbuf b;
    strbuf_init(&b);
    *n = 0;
    for (int i = 0; i < vp->cat.n; i++) {
        if (vp->res[i].nrepair) {
            strbuf_printf(&b, "-- %s: %d statement(s)\n%s", vp->cat.t[i].display,
                          vp->res[i].nrepair, vp->res[i].repair.p);
            *n += vp->res[i].nrepair;
        } else if (!vp->cat.t[i].comparable) {
            strbuf_printf(&b, "-- %s: schema differs, not repaired\n", vp->cat.t[i].display);
        }
    }
    return strbuf_take(&b);
}

/* --repair: prints the SQL (summary as SQL comments); --apply runs it and verifies again. */
static int run_repair(const struct options *o, struct verify_pass *vp, int rc)
{
    int n = 0;
    char *sql = collect_repair(vp, &n);
    if (!o->apply) {
        /* The literals and the deletes' key text are in the formats the tool's own sessions
         * use (pool_session_formats): whoever runs the script reads them alike. */
        printf("-- repair of %s to match %s\nBEGIN;\nSET LOCAL DateStyle = ISO, YMD;\n"
               "SET LOCAL IntervalStyle = postgres;\nSET LOCAL TimeZone = 'UTC';\n"
               "SET LOCAL extra_float_digits = 3;\nSET LOCAL bytea_output = hex;\n%sCOMMIT;\n",
               util_side_name(!o->primary), util_side_name(o->primary), sql);
        free(sql);
        return rc;
    }
    report_summary(stdout, o, vp, "");
    char err[2048];
    int arc = n ? repair_apply(o, sql, err, sizeof err) : 0;
    free(sql);
    if (arc < 0) {
        fprintf(stderr, "pgdual-verify: error: %s\n", err);
        return UTIL_EXIT_ERROR;
    }
    printf("repair: applied %d statement(s) to %s in one transaction; verifying again\n", n,
           util_side_name(!o->primary));
    verify_free(vp);
    rc = pass(o, vp, "", false);
    if (rc == UTIL_EXIT_ERROR) {
        return fail(o, vp);
    }
    report_summary(stdout, o, vp, "");
    return rc;
}

static void print_changes(char **old, int nold, char **cur, int ncur)
{
    char stamp[32];
    time_t now = time(NULL);
    struct tm tm;
    strftime(stamp, sizeof stamp, "%Y-%m-%d %H:%M:%S", localtime_r(&now, &tm));
    int i = 0, j = 0;
    while (i < nold || j < ncur) {
        int c = i >= nold ? 1 : j >= ncur ? -1 : strcmp(old[i], cur[j]);
        if (c < 0) {
            printf("%s resolved: %s\n", stamp, old[i++]);
        } else if (c > 0) {
            printf("%s new: %s\n", stamp, cur[j++]);
        } else {
            i++;
            j++;
        }
    }
    fflush(stdout);
}

static int run_watch(const struct options *o, struct verify_pass *vp)
{
    report_summary(stdout, o, vp, "");
    fflush(stdout);
    int nprev = 0;
    char **prev = report_lines(o, vp, &nprev);
    for (;;) {
        sleep((unsigned)o->watch);
        verify_free(vp);
        if (pass(o, vp, "", true) == UTIL_EXIT_ERROR) {
            report_lines_free(prev, nprev);
            return fail(o, vp);
        }
        int ncur = 0;
        char **cur = report_lines(o, vp, &ncur);
        print_changes(prev, nprev, cur, ncur);
        report_lines_free(prev, nprev);
        prev = cur;
        nprev = ncur;
    }
}

int main(int argc, char **argv)
{
    struct options o;
    int rc = options_parse(&o, argc, argv);
    if (rc != 0) {
        options_free(&o);
        return rc > 0 ? UTIL_EXIT_SAME : UTIL_EXIT_ERROR;
    }
    if (o.live) {
        rc = live_main(&o);
        options_free(&o);
        return rc;
    }
    struct verify_pass vp;
    rc = pass(&o, &vp, o.repair && !o.apply ? "-- " : "", false);
    if (rc == UTIL_EXIT_ERROR) {
        rc = fail(&o, &vp);
    } else if (o.repair) {
        if (!o.apply) {
            report_summary(stdout, &o, &vp, "-- ");
        }
        rc = run_repair(&o, &vp, rc);
    } else if (o.watch) {
        rc = run_watch(&o, &vp);
    } else {
        report_summary(stdout, &o, &vp, "");
    }
    if (rc != UTIL_EXIT_ERROR && o.json_path && report_json(o.json_path, &o, &vp, NULL) < 0) {
        rc = UTIL_EXIT_ERROR;
    }
    verify_free(&vp);
    options_free(&o);
    return rc;
}

/* tools/verify/report.c: human summary on stdout, JSON file, watch-mode change lines, stats. */
#include "tools/verify/report.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "tools/verify/discover.h"
#include "tools/verify/keys.h"
#include "tools/verify/options.h"
#include "tools/verify/result.h"
#include "tools/verify/strbuf.h"
#include "tools/verify/verify.h"

/* Shows at most this many rows per table on stdout; the JSON has all. */
#define REPORT_MAX_LINES 50

/* "col=value, col=value" (human) or {"col":"value"} (json). */
static void put_key(struct strbuf *b, const struct discover_side *sd, const struct result_diff *d,
                    bool json)
{
    const char *v[64];
    keys_split(d->key, d->klen, sd->nkeys, v);
    strbuf_puts(b, json ? "{" : "");
    for (int k = 0; k < sd->nkeys; k++) {
        const char *name = sd->cols[sd->keys[k]].name;
        if (json) {
            strbuf_puts(b, k ? "," : "");
            strbuf_put_json(b, name);
            strbuf_puts(b, ":");
            strbuf_put_json(b, v[k]);
        } else {
            strbuf_printf(b, "%s%s=%s", k ? ", " : "", name, v[k]);
        }
    }
    strbuf_puts(b, json ? "}" : "");
}

static void diff_line(struct strbuf *b, const struct options *o, const struct discover_table *t,
                      const struct result_diff *d)
{
    static const char *const what[] = {"row missing on", "row extra on", "row different on"};
    strbuf_printf(b, "%s: %s %s: ", t->display, what[d->kind], util_side_name(!o->primary));
    put_key(b, discover_ref(t, o->primary), d, false);
}

void report_schema(FILE *f, const struct verify_pass *vp, const char *prefix)
{
    for (int i = 0; i < vp->cat.n; i++) {
        const struct discover_table *t = &vp->cat.t[i];
        for (int k = 0; k < t->nschema_diffs; k++) {
            fprintf(f, "%s%s: schema difference: %s\n", prefix, t->display, t->schema_diffs[k]);
        }
    }
    fflush(f);
}

static const char *status(const struct verify_pass *vp, int i)
{
    if (!vp->cat.t[i].comparable) {
        return "schema differs, data not compared";
    }
    return verify_table_differs(vp, i) ? "DIFFERENT" : "identical";
}

void report_summary(FILE *f, const struct options *o, const struct verify_pass *vp,
                    const char *prefix)
{
    int ndiff = 0;
    for (int i = 0; i < vp->cat.n; i++) {
        const struct discover_table *t = &vp->cat.t[i];
        const struct result_table *r = &vp->res[i];
        ndiff += verify_table_differs(vp, i);
        fprintf(f, "%s%-30s %s  rows old=%" PRId64 " new=%" PRId64 "  ranges=%d  %.2fs\n", prefix,
                t->display, status(vp, i), r->rows[0], r->rows[1], r->ranges, r->seconds);
        if (r->multiset_differs) {
            fprintf(f,
                    "%s  no primary key: %" PRId64 " row(s) only on %s, %" PRId64
                    " row(s) only on %s\n",
                    prefix, r->ms_missing, util_side_name(o->primary), r->ms_extra,
                    util_side_name(!o->primary));
        }
        for (size_t k = 0; k < r->ndiffs && k < REPORT_MAX_LINES; k++) {
            struct strbuf b;
            strbuf_init(&b);
            diff_line(&b, o, t, &r->diffs[k]);
            fprintf(f, "%s  %s\n", prefix, b.p);
            strbuf_free(&b);
        }
        if (r->ndiffs > REPORT_MAX_LINES) {
            fprintf(f, "%s  ... %zu more (see --json)\n", prefix, r->ndiffs - REPORT_MAX_LINES);
        }
    }
    if (ndiff) {
        fprintf(f, "%sresult: differences found in %d of %d tables (%.2fs)\n", prefix, ndiff,
                vp->cat.n, vp->seconds);
    } else {
        fprintf(f, "%sresult: identical (%d tables, %.2fs)\n", prefix, vp->cat.n, vp->seconds);
    }
}

static void json_table(struct strbuf *b, const struct options *o, const struct verify_pass *vp,
                       int i)
{
    const struct discover_table *t = &vp->cat.t[i];
    const struct result_table *r = &vp->res[i];
    strbuf_puts(b, i ? ",\n  {\"table\":" : "\n  {\"table\":");
    strbuf_put_json(b, t->display);
    strbuf_printf(b,
                  ",\"status\":\"%s\",\"rows_old\":%" PRId64 ",\"rows_new\":%" PRId64
                  ",\"ranges\":%d,\"seconds\":%.3f,\"schema_differences\":[",
                  !t->comparable                ? "schema_differs"
                  : verify_table_differs(vp, i) ? "different"
                                                : "identical",
                  r->rows[0], r->rows[1], r->ranges, r->seconds);
    for (int k = 0; k < t->nschema_diffs; k++) {
        strbuf_puts(b, k ? "," : "");
        strbuf_put_json(b, t->schema_diffs[k]);
    }
    strbuf_puts(b, "],\"differences\":[");
    for (size_t k = 0; k < r->ndiffs; k++) {
        strbuf_printf(b, "%s\n    {\"kind\":\"%s\",\"key\":", k ? "," : "",
                      result_kind_name(r->diffs[k].kind));
        put_key(b, discover_ref(t, o->primary), &r->diffs[k], true);
        strbuf_puts(b, "}");
    }
    if (r->multiset_differs) {
        strbuf_printf(b,
                      "\n    {\"kind\":\"multiset\",\"missing_rows\":%" PRId64
                      ",\"extra_rows\":%" PRId64 "}",
                      r->ms_missing, r->ms_extra);
    }
    strbuf_puts(b, "]}");
}

int report_json(const char *path, const struct options *o, const struct verify_pass *vp,
                const char *error)
{
    struct strbuf b;
    strbuf_init(&b);
    const char *res = error ? "error" : verify_status(vp) ? "different" : "identical";
    strbuf_printf(&b, "{\"result\":\"%s\",\"primary\":\"%s\",\"error\":", res,
                  util_side_name(o->primary));
    if (error) {
        strbuf_put_json(&b, error);
    } else {
        strbuf_puts(&b, "null");
    }
    strbuf_printf(&b, ",\"seconds\":%.3f,\"tables\":[", vp ? vp->seconds : 0.0);
    for (int i = 0; vp && vp->res && i < vp->cat.n; i++) {
        json_table(&b, o, vp, i);
    }
    strbuf_puts(&b, "\n]}\n");
    FILE *f = fopen(path, "w");
    int rc = -1;
    if (f) {
        rc = fwrite(b.p, 1, b.len, f) == b.len ? 0 : -1;
        rc = fclose(f) == 0 ? rc : -1;
    }
    if (rc < 0) {
        fprintf(stderr, "pgdual-verify: cannot write %s\n", path);
    }
    strbuf_free(&b);
    return rc;
}

static int str_cmp(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

char **report_lines(const struct options *o, const struct verify_pass *vp, int *n)
{
    size_t cap = 16, len = 0;
    char **v = util_xcalloc(cap, sizeof *v);
    for (int i = 0; i < vp->cat.n; i++) {
        const struct discover_table *t = &vp->cat.t[i];
        const struct result_table *r = &vp->res[i];
        size_t need = (size_t)t->nschema_diffs + r->ndiffs + 1;
        if (len + need > cap) {
            cap = (len + need) * 2;
            v = util_xrealloc(v, cap * sizeof *v);
        }
        struct strbuf b;
        strbuf_init(&b);
        for (int k = 0; k < t->nschema_diffs; k++) {
            strbuf_printf(&b, "%s: schema difference: %s", t->display, t->schema_diffs[k]);
            v[len++] = strbuf_take(&b);
        }
        for (size_t k = 0; k < r->ndiffs; k++) {
            diff_line(&b, o, t, &r->diffs[k]);
            v[len++] = strbuf_take(&b);
        }
        if (r->multiset_differs) {
            strbuf_printf(
                &b, "%s: no primary key: %" PRId64 " row(s) only on %s, %" PRId64 " only on %s",
                t->display, r->ms_missing, util_side_name(o->primary), r->ms_extra,
                util_side_name(!o->primary));
            v[len++] = strbuf_take(&b);
        }
    }
    qsort(v, len, sizeof *v, str_cmp);
    *n = (int)len;
    return v;
}

void report_lines_free(char **lines, int n)
{
    for (int i = 0; i < n; i++) {
        free(lines[i]);
    }
    free(lines);
}

void report_stats(FILE *f, const struct verify_pass *vp)
{
    for (int s = 0; s < 2; s++) {
        int64_t total = 0;
        for (int i = 0; i < vp->nconn; i++) {
            fprintf(f, "stats: %s conn %d received %" PRId64 " bytes\n", util_side_name(s), i,
                    vp->bytes[s][i]);
            total += vp->bytes[s][i] > 0 ? vp->bytes[s][i] : 0;
        }
        fprintf(f, "stats: %s total received %" PRId64 " bytes\n", util_side_name(s), total);
    }
}

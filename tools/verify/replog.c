/* tools/verify/replog.c: the repair log of --live (JSON lines) and its stdout lines. */
#include "tools/verify/replog.h"

#include <stdbool.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>

#include "tools/verify/strbuf.h"

static void put_value(struct strbuf *b, const char *v)
{
    if (v) {
        strbuf_put_json(b, v);
    } else {
        strbuf_puts(b, "null");
    }
}

/* {"name":"value",...} over n names; vals NULL writes null. */
static void put_object(struct strbuf *b, int n, const char *const *names, const char *const *vals)
{
    if (!vals) {
        strbuf_puts(b, "null");
        return;
    }
    strbuf_puts(b, "{");
    for (int i = 0; i < n; i++) {
        strbuf_puts(b, i ? "," : "");
        strbuf_put_json(b, names[i]);
        strbuf_puts(b, ":");
        put_value(b, vals[i]);
    }
    strbuf_puts(b, "}");
}

void replog_json(struct strbuf *b, const char *time, long pass, const struct replog_entry *e)
{
    strbuf_puts(b, "{\"time\":");
    strbuf_put_json(b, time);
    strbuf_printf(b, ",\"pass\":%ld,\"table\":", pass);
    strbuf_put_json(b, e->table);
    strbuf_puts(b, ",\"action\":");
    strbuf_put_json(b, e->action);
    if (e->keyvals) {
        strbuf_puts(b, ",\"key\":");
        put_object(b, e->nkeys, e->keynames, e->keyvals);
    }
    if (e->cols) {
        strbuf_puts(b, ",\"columns\":[");
        for (int i = 0; i < e->ncols; i++) {
            strbuf_puts(b, i ? "," : "");
            strbuf_put_json(b, e->cols[i]);
        }
        strbuf_puts(b, "]");
    }
    if (e->cols && e->before) {
        strbuf_puts(b, ",\"before\":");
        put_object(b, e->ncols, e->cols, e->before);
    }
    if (e->row_hash) {
        strbuf_puts(b, ",\"row_hash\":");
        strbuf_put_json(b, e->row_hash);
    }
    if (e->rows >= 0) {
        strbuf_printf(b, ",\"rows\":%lld", (long long)e->rows);
    }
    if (!strcmp(e->action, "copy_range")) {
        strbuf_puts(b, ",\"lo\":");
        put_object(b, e->nkeys, e->keynames, e->lo);
        strbuf_puts(b, ",\"hi\":");
        put_object(b, e->nkeys, e->keynames, e->hi);
    }
    strbuf_puts(b, "}");
}

/* "(k1, k2)=(v1, v2)" */
static void put_tuple(struct strbuf *b, int n, const char *const *names, const char *const *vals)
{
    strbuf_puts(b, "(");
    for (int i = 0; i < n; i++) {
        strbuf_printf(b, "%s%s", i ? ", " : "", names[i]);
    }
    strbuf_puts(b, ")=(");
    for (int i = 0; i < n; i++) {
        strbuf_printf(b, "%s%s", i ? ", " : "", vals[i] ? vals[i] : "NULL");
    }
    strbuf_puts(b, ")");
}

void replog_text(struct strbuf *b, long pass, const struct replog_entry *e)
{
    strbuf_printf(b, "repair: pass %ld %s %s", pass, e->table, e->action);
    if (e->keyvals) {
        strbuf_puts(b, " ");
        put_tuple(b, e->nkeys, e->keynames, e->keyvals);
    }
    if (e->row_hash) {
        strbuf_printf(b, " row_hash %s", e->row_hash);
    }
    if (e->rows >= 0) {
        strbuf_printf(b, " rows %lld", (long long)e->rows);
    }
    if (!strcmp(e->action, "copy_range")) {
        strbuf_puts(b, " from ");
        if (e->lo) {
            put_tuple(b, e->nkeys, e->keynames, e->lo);
        } else {
            strbuf_puts(b, "start");
        }
        strbuf_puts(b, " to ");
        if (e->hi) {
            put_tuple(b, e->nkeys, e->keynames, e->hi);
        } else {
            strbuf_puts(b, "end");
        }
    }
    if (e->cols && strcmp(e->action, "delete")) {
        strbuf_puts(b, " columns: ");
        for (int i = 0; i < e->ncols; i++) {
            strbuf_printf(b, "%s%s", i ? ", " : "", e->cols[i]);
        }
    }
}

void replog_now(char *buf, size_t len)
{
    struct timeval tv;
    gettimeofday(&tv, NULL);
    struct tm tm;
    gmtime_r(&tv.tv_sec, &tm);
    char s[32];
    strftime(s, sizeof s, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(buf, len, "%s.%03ldZ", s, (long)(tv.tv_usec / 1000));
}

void replog_emit(FILE *log, FILE *out, long pass, const struct replog_entry *e)
{
    struct strbuf b;
    strbuf_init(&b);
    if (log) {
        char now[40];
        replog_now(now, sizeof now);
        replog_json(&b, now, pass, e);
        fprintf(log, "%s\n", b.p);
        fflush(log);
        strbuf_reset(&b);
    }
    replog_text(&b, pass, e);
    fprintf(out, "%s\n", b.p);
    strbuf_free(&b);
}

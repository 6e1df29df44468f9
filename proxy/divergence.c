/* proxy/divergence.c: formats and appends divergence log lines. */
#include "proxy/divergence.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "config/dials.h"
#include "protocol/classify.h"
#include "proxy/log.h"
#include "proxy/mirror.h"
#include "proxy/server.h"
#include "proxy/session.h"
#include "proxy/worker.h"

#define DIVERGENCE_LINE_MAX (16 * 1024)

/* Append s as a JSON string (with quotes), escaping as RFC 8259 requires. */
static void json_str(struct wbuf *b, const char *s)
{
    wbuf_put_u8(b, '"');
    for (const unsigned char *p = (const unsigned char *)(s ? s : ""); *p; p++) {
        if (*p == '"' || *p == '\\') {
            wbuf_put_u8(b, '\\');
            wbuf_put_u8(b, *p);
        } else if (*p < 0x20) {
            char esc[8];
            snprintf(esc, sizeof(esc), "\\u%04x", *p);
            wbuf_put_bytes(b, esc, 6);
        } else {
            wbuf_put_u8(b, *p);
        }
    }
    wbuf_put_u8(b, '"');
}

static void json_raw(struct wbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void json_raw(struct wbuf *b, const char *fmt, ...)
{
    char tmp[512];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof(tmp), fmt, ap);
    va_end(ap);
    if (n > 0) {
        wbuf_put_bytes(b, tmp, (size_t)n < sizeof(tmp) ? (size_t)n : sizeof(tmp) - 1);
    }
}

static void json_side(struct wbuf *b, const char *name, const char *backend,
                      const struct outcome *o, uint64_t us)
{
    json_raw(b, ",\"%s\":{\"backend\":\"%s\",\"tag\":", name, backend);
    json_str(b, o->last_tag);
    json_raw(b, ",\"commands\":%" PRIu32 ",\"sqlstate\":", o->commands);
    json_str(b, o->error ? o->sqlstate : "");
    json_raw(b, ",\"rows\":%" PRIu64 ",\"hash\":\"%016" PRIx64 "\",\"latency_ms\":%.3f}", o->rows,
             o->rows_hash ^ o->shape_hash ^ o->tags_hash, (double)us / 1000.0);
}

static void write_line(struct session *s, const struct unit *u, const char *kind, bool sides)
{
    struct server *srv = s->worker->server;
    if (srv->divergence_fd < 0) {
        return;
    }
    struct wbuf b;
    wbuf_init(&b);
    time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    char ts[32];
    strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%SZ", &tm);
    json_raw(&b, "{\"time\":\"%s\",\"session\":%u,\"user\":", ts, s->id);
    json_str(&b, s->user);
    json_raw(&b, ",\"database\":");
    json_str(&b, s->database);
    json_raw(&b, ",\"kind\":\"%s\",\"fingerprint\":\"%016" PRIx64 "\",\"statement\":", kind,
             u->fingerprint);
    bool literals = s->worker->conf->cfg.log_literals; /* the loop's current config: reloadable */
    char *text = literals ? NULL : classify_normalize(u->sql ? u->sql : "");
    const char *stmt = literals ? u->sql : (text ? text : "(not normalizable)");
    json_str(&b, stmt);
    free(text);
    if (sides) {
        const char *p = s->primary == DIAL_OLD ? "old" : "new";
        const char *q = s->primary == DIAL_OLD ? "new" : "old";
        json_side(&b, "primary", p, &u->prim, u->prim_us);
        json_side(&b, "secondary", q, &u->second, u->sec_us);
    }
    json_raw(&b, "}\n");
    if (!b.failed && b.len <= DIVERGENCE_LINE_MAX) {
        ssize_t w = write(srv->divergence_fd, b.data, b.len);
        if (w != (ssize_t)b.len) {
            SLOG_INFO(s, "divergence log write failed");
        }
    }
    wbuf_free(&b);
}

void divergence_report(struct session *s, const struct unit *u, enum outcome_diff d)
{
    SLOG_INFO(s, "divergence %s: primary %s %s, secondary %s %s", outcome_diff_name(d),
              u->prim.last_tag, u->prim.sqlstate, u->second.last_tag, u->second.sqlstate);
    write_line(s, u, outcome_diff_name(d), true);
}

void divergence_report_nondeterministic(struct session *s, const struct unit *u)
{
    write_line(s, u, "nondeterministic_write", false);
}

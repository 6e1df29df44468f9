/* proxy/divergence.c: formats and appends divergence log lines. */
#include "proxy/divergence.h"

#include <inttypes.h>
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
#include "proxy/text.h"
#include "proxy/worker.h"

#define DIVERGENCE_LINE_MAX (16 * 1024)

static void json_side(struct wbuf *b, const char *name, const char *backend,
                      const struct outcome *o, uint64_t us)
{
    text_put_fmt(b, ",\"%s\":{\"backend\":\"%s\",\"tag\":", name, backend);
    text_put_json_str(b, o->last_tag);
    text_put_fmt(b, ",\"commands\":%" PRIu32 ",\"sqlstate\":", o->commands);
    text_put_json_str(b, o->error ? o->sqlstate : "");
    text_put_fmt(b, ",\"rows\":%" PRIu64 ",\"hash\":\"%016" PRIx64 "\",\"latency_ms\":%.3f}",
                 o->rows, o->rows_hash ^ o->shape_hash ^ o->tags_hash, (double)us / 1000.0);
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
    text_put_fmt(&b, "{\"time\":\"%s\",\"session\":%u,\"user\":", ts, s->id);
    text_put_json_str(&b, s->user);
    text_put_fmt(&b, ",\"database\":");
    text_put_json_str(&b, s->database);
    text_put_fmt(&b, ",\"kind\":\"%s\",\"fingerprint\":\"%016" PRIx64 "\",\"statement\":", kind,
                 u->fingerprint);
    bool literals = s->worker->conf->cfg.log_literals; /* the loop's current config: reloadable */
    char *text = literals ? NULL : classify_normalize(u->sql ? u->sql : "");
    const char *stmt = literals ? u->sql : (text ? text : "(not normalizable)");
    text_put_json_str(&b, stmt);
    free(text);
    if (sides) {
        const char *p = s->primary == DIAL_OLD ? "old" : "new";
        const char *q = s->primary == DIAL_OLD ? "new" : "old";
        json_side(&b, "primary", p, &u->prim, u->prim_us);
        json_side(&b, "secondary", q, &u->second, u->sec_us);
    }
    text_put_fmt(&b, "}\n");
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

void divergence_record(struct session *s, const struct divergence_event *e)
{
    SLOG_INFO(s, "divergence %s: primary %s %s, secondary %s %s", e->kind,
              e->prim ? e->prim->last_tag : "", e->prim ? e->prim->sqlstate : "",
              e->second ? e->second->last_tag : "", e->second ? e->second->sqlstate : "");
}

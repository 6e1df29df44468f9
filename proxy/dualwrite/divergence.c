/* proxy/dualwrite/divergence.c: records divergences: stderr, the divergence log's JSON lines and
 * the server's divergence table. */
#include "proxy/dualwrite/divergence.h"

#include <inttypes.h>
#include <stdbool.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include "config/dials.h"
#include "protocol/classify.h"
#include "proxy/dualwrite/divergence_table.h"
#include "proxy/dualwrite/mirror.h"
#include "proxy/log.h"
#include "proxy/server.h"
#include "proxy/session/session.h"
#include "proxy/text.h"
#include "proxy/worker.h"

#define DIVERGENCE_LINE_MAX (16 * 1024)

/* What a divergence_event's statement becomes in the log and the table. */
struct stmt_text {
    const char *text; /* NULL: the statement is not known */
    char *owned;      /* the normalized copy, freed by stmt_text_free */
};

static void stmt_text_init(struct session *s, const char *sql, struct stmt_text *t)
{
    bool literals = s->worker->conf->cfg.log_literals; /* the loop's current config: reloadable */
    t->owned = NULL;
    if (!sql || literals) {
        t->text = sql;
        return;
    }
    t->owned = classify_normalize(sql);
    t->text = t->owned ? t->owned : "(not normalizable)";
}

static void json_side(struct wbuf *b, const char *name, const char *backend,
                      const struct outcome *o, uint64_t us)
{
    text_put_fmt(b, ",\"%s\":{\"backend\":\"%s\"", name, backend);
    if (!o) {
        text_put_fmt(b, "}"); /* the outcome is not known: the backend only */
        return;
    }
    text_put_fmt(b, ",\"tag\":");
    text_put_json_str(b, o->last_tag);
    text_put_fmt(b, ",\"commands\":%" PRIu32 ",\"sqlstate\":", o->commands);
    text_put_json_str(b, o->error ? o->sqlstate : "");
    text_put_fmt(b, ",\"rows\":%" PRIu64 ",\"hash\":\"%016" PRIx64 "\",\"latency_ms\":%.3f}",
                 o->rows, o->rows_hash ^ o->shape_hash ^ o->tags_hash, (double)us / 1000.0);
}

/* Why a nondeterministic write was not pinned, and its table (NULL: not known). */
struct nondet_note {
    const char *why;
    const char *table;
};

/* One JSON line; e == NULL writes no sides (a nondeterministic write, with its note). */
static void write_line(struct session *s, time_t now, const char *kind, uint64_t fingerprint,
                       const char *stmt, const struct divergence_event *e,
                       const struct nondet_note *note)
{
    struct server *srv = s->worker->server;
    if (srv->divergence_fd < 0) {
        return;
    }
    struct wbuf b;
    wbuf_init(&b);
    char ts[TEXT_TIME_MAX];
    text_utc_time(now, ts);
    text_put_fmt(&b, "{\"time\":\"%s\",\"session\":%u,\"user\":", ts, s->id);
    text_put_json_str(&b, s->user);
    text_put_fmt(&b, ",\"database\":");
    text_put_json_str(&b, s->database);
    text_put_fmt(&b, ",\"kind\":\"%s\",\"fingerprint\":\"%016" PRIx64 "\",\"statement\":", kind,
                 fingerprint);
    text_put_json_str(&b, stmt);
    if (e) {
        const char *p = s->primary == DIAL_OLD ? "old" : "new";
        const char *q = s->primary == DIAL_OLD ? "new" : "old";
        json_side(&b, "primary", p, e->prim, e->prim_us);
        json_side(&b, "secondary", q, e->second, e->sec_us);
    }
    if (note) {
        text_put_fmt(&b, ",\"reason\":");
        text_put_json_str(&b, note->why);
        text_put_fmt(&b, ",\"table\":");
        text_put_json_str(&b, note->table ? note->table : "");
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

void divergence_record(struct session *s, const struct divergence_event *e)
{
    const struct outcome *p = e->prim, *q = e->second;
    SLOG_INFO(s, "divergence %s: primary %s %s, secondary %s %s", e->kind,
              p ? p->last_tag : "(not known)", p ? p->sqlstate : "",
              q ? q->last_tag : "(not known)", q ? q->sqlstate : "");
    struct stmt_text t;
    stmt_text_init(s, e->sql, &t);
    time_t now = time(NULL);
    write_line(s, now, e->kind, e->fingerprint, t.text, e, NULL);
    struct divergence_table *table = s->worker->server->divergences;
    if (table) {
        divergence_table_add(table, e->fingerprint, e->kind, t.text, now);
    }
    free(t.owned);
}

void divergence_report(struct session *s, const struct unit *u, enum outcome_diff d)
{
    struct divergence_event e = {
        .kind = outcome_diff_name(d),
        .fingerprint = u->fingerprint,
        .sql = u->sql,
        .prim = &u->prim,
        .second = &u->second,
        .prim_us = u->prim_us,
        .sec_us = u->sec_us,
    };
    divergence_record(s, &e);
}

void divergence_report_nondeterministic(struct session *s, const struct unit *u, const char *why,
                                        const char *table)
{
    SLOG_INFO(s, "nondeterministic_write: not pinned (%s)%s%s", why, table ? ", table " : "",
              table ? table : "");
    struct stmt_text t;
    stmt_text_init(s, u->sql, &t);
    time_t now = time(NULL);
    struct nondet_note note = {.why = why, .table = table};
    write_line(s, now, "nondeterministic_write", u->fingerprint, t.text, NULL, &note);
    struct divergence_table *dt = s->worker->server->divergences;
    if (dt) {
        divergence_table_add(dt, u->fingerprint, "nondeterministic_write", t.text, now);
    }
    free(t.owned);
}

void divergence_note_partial(struct session *s, const struct outcome *a, const struct outcome *b)
{
    /* Rows left out on purpose (a pinned statement's: its secondary returns none) are no cut. */
    unsigned unknown = (a->unknown | b->unknown) & ~OUTCOME_UNKNOWN_ROWS;
    if (unknown == 0) {
        return;
    }
    stats_add(&s->worker->stats, STAT_compares_partial_total, 1);
    SLOG_INFO(s, "comparison left out the%s%s%s: a reply message was too long to read whole",
              unknown & OUTCOME_UNKNOWN_SQLSTATE ? " SQLSTATE" : "",
              unknown & OUTCOME_UNKNOWN_TAGS ? " command tags" : "",
              unknown & OUTCOME_UNKNOWN_SHAPE ? " row shape" : "");
}

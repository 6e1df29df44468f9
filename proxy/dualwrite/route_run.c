/* proxy/dualwrite/route_run.c: one routed read's run on each backend: sending it (inside pgdual's
 * savepoint in a transaction block), the client's answer (streamed, or held for a fallback up to
 * fallback_buffer_bytes), the backends' replies, fallback, shadow comparison, cancels and
 * deadlines. route.c decides and starts; this runs. */
#include "proxy/dualwrite/route_run.h"

#include <stdlib.h>
#include <string.h>

#include "config/dials.h"
#include "protocol/pqproto.h"
#include "proxy/clock.h"
#include "proxy/dualwrite/divergence.h"
#include "proxy/dualwrite/route.h"
#include "proxy/log.h"
#include "proxy/server.h"
#include "proxy/session/cancel.h"
#include "proxy/session/session.h"
#include "proxy/worker.h"

#define ROUTE_SAVEPOINT    "SAVEPOINT pgdual_read"
#define ROUTE_RELEASE      "RELEASE SAVEPOINT pgdual_read"
#define ROUTE_ROLLBACK_TO  "ROLLBACK TO SAVEPOINT pgdual_read; RELEASE SAVEPOINT pgdual_read"
#define ROUTE_CLIENT_HIGH  (256 * 1024) /* stop reading the serving backend above this */
#define ROUTE_STOP_READY   1            /* the scan stopped after a ReadyForQuery */
#define ROUTE_MAX_TIMER_MS 86400000u

static void seg_push(struct route_side *sd, enum route_seg seg)
{
    if (sd->nsegs < ROUTE_SEGS_MAX) { /* at most SAVEPOINT, a run, RELEASE, a fallback run */
        sd->segs[sd->nsegs++] = (uint8_t)seg;
    }
}

static void seg_pop(struct route_side *sd)
{
    memmove(sd->segs, sd->segs + 1, (size_t)(sd->nsegs - 1));
    sd->nsegs--;
}

static bool client_bound(const struct route *r, int which, enum route_seg seg, uint8_t type,
                         int primary)
{
    if (seg != ROUTE_SEG_SERVE || which != r->serve) {
        return false;
    }
    /* NoticeResponse, ParameterStatus and NotificationResponse reach the client from the
     * primary only. */
    return which == primary || (type != PqMsg_NoticeResponse && type != PqMsg_ParameterStatus &&
                                type != PqMsg_NotificationResponse);
}

/* ---- running the read on a backend ------------------------------------------------------ */

/* Send bytes to backend which; a failed send is that backend's loss. */
static int route_send(struct session *s, int which, const struct wbuf *q)
{
    struct backend *b = &s->backends[which];
    if (!q->failed && endpoint_send(&b->ep, q->data, q->len) == 0) {
        return 0;
    }
    if (which == s->primary) {
        session_end(s, END_BACKEND_LOST, "write to the primary failed");
    } else {
        mirror_secondary_lost(s, "write to the secondary failed");
        route_backend_lost(s, which);
    }
    return -1;
}

/* Start a run of the read on backend which. A run that is not the primary serving the client
 * runs inside pgdual's savepoint when a transaction block is open, so its failure cannot abort
 * the client's transaction on that side. */
int route_run_start(struct session *s, int which, enum route_seg seg)
{
    struct route *r = &s->route;
    struct route_side *sd = &r->side[which];
    bool first = !sd->read_seen && sd->nsegs == 0 && !sd->ran;
    struct wbuf q;
    wbuf_init(&q);
    if (first && s->mirror.prim_status == PQ_TXN_BLOCK &&
        !(which == s->primary && seg == ROUTE_SEG_SERVE)) {
        wire_put_query(&q, ROUTE_SAVEPOINT);
        seg_push(sd, ROUTE_SEG_OWN);
        sd->savepoint = true;
    }
    wbuf_put_bytes(&q, r->bytes.data, r->bytes.len);
    seg_push(sd, seg);
    if (first) {
        sd->start_us = clock_monotonic_us();
    }
    int rc = route_send(s, which, &q);
    wbuf_free(&q);
    return rc;
}

void route_count_fallback(struct session *s, enum route_fallback why)
{
    static const enum stats_counter by_reason[] = {
#define X(n) STAT_fallbacks_##n,
        ROUTE_FALLBACK_REASONS(X)
#undef X
    };
    stats_add(&s->worker->stats, STAT_fallbacks_total, 1);
    stats_add(&s->worker->stats, by_reason[why], 1);
}

/* The secondary cannot serve this read: the primary runs it again and the client gets only that
 * answer. */
static void fall_back(struct session *s, enum route_fallback why)
{
    struct route *r = &s->route;
    int sec = dial_other(s->primary);
    struct route_side *sd = &r->side[sec];
    /* What the secondary still sends of its serving run is only hashed now. */
    for (int i = 0; i < sd->nsegs; i++) {
        if (sd->segs[i] == ROUTE_SEG_SERVE) {
            sd->segs[i] = ROUTE_SEG_SHADOW;
        }
    }
    if (why != ROUTE_FALLBACK_error) {
        sd->cancelled = true; /* its outcome is incomplete: never compared */
    }
    route_count_fallback(s, why);
    SLOG_DEBUG(s, "read falls back to the primary (%s)",
               why == ROUTE_FALLBACK_error     ? "error"
               : why == ROUTE_FALLBACK_timeout ? "timeout"
                                               : "connection lost");
    r->fell_back = true;
    r->held_complete = r->await_compare = false;
    r->serve = s->primary;
    r->streaming = true;
    r->deadline_serve_us = 0;
    wbuf_reset(&r->to_client);
    session_place_objects(s, r->serial, (uint8_t)(1u << s->primary));
    route_run_start(s, s->primary, ROUTE_SEG_SERVE);
}

struct route_cancel {
    struct session *session; /* holds a reference until PQcancel returned */
    int which;
};

static void on_cancel_done(void *arg, bool ok)
{
    struct route_cancel *c = arg;
    struct session *s = c->session;
    (void)ok;
    s->route.side[c->which].cancels_pending--;
    free(c);
    if (s->state == SESSION_READY) {
        route_maybe_finish(s);
        session_relay_after_event(s);
    }
    session_unref(s);
}

/* Cancel what backend which runs for the route. Until PQcancel has returned, nothing else is
 * sent to that backend (route_blocks), so the cancel can only hit the route's own run. */
static void cancel_run(struct session *s, int which)
{
    struct route_side *sd = &s->route.side[which];
    sd->cancelled = true;
    struct route_cancel *c = s->cancel ? malloc(sizeof(*c)) : NULL;
    if (!c) {
        return; /* no key (or no memory): the run finishes in its own time */
    }
    c->session = s;
    c->which = which;
    if (cancel_one(s->cancel, &s->worker->loop, which, on_cancel_done, c) < 0) {
        free(c);
        return;
    }
    s->refs++;
    sd->cancels_pending++;
}

/* ---- the client's answer --------------------------------------------------------------- */

static int flush_client(struct session *s)
{
    struct route *r = &s->route;
    if (r->to_client.failed) {
        session_end(s, END_OUT_OF_MEMORY, NULL);
        return -1;
    }
    if (r->to_client.len == 0) {
        return 0;
    }
    stats_add(&s->worker->stats, STAT_bytes_to_clients, (int64_t)r->to_client.len);
    int rc = endpoint_send(&s->client, r->to_client.data, r->to_client.len);
    wbuf_shrink(&r->to_client, WBUF_KEEP); /* a held answer gives its memory back */
    if (rc < 0) {
        session_client_gone(s, END_CLIENT_EOF, "write to the client failed");
    }
    return 0;
}

/* The held answer ends with the secondary's ReadyForQuery; the client's session is the
 * primary's, so its status is what the client gets. */
static void patch_ready_status(struct session *s)
{
    struct wbuf *t = &s->route.to_client;
    if (t->len >= 6 && t->data[t->len - 6] == PqMsg_ReadyForQuery) {
        t->data[t->len - 1] = s->mirror.prim_status;
    }
}

static void client_done(struct session *s, int served_by)
{
    struct route *r = &s->route;
    if (flush_client(s) < 0) {
        return;
    }
    r->client_done = true;
    r->deadline_serve_us = 0;
    stats_add(&s->worker->stats,
              served_by == DIAL_NEW ? STAT_reads_served_new : STAT_reads_served_old, 1);
}

static enum outcome_diff compare_runs(const struct session *s)
{
    const struct route_side *p = &s->route.side[s->primary];
    const struct route_side *q = &s->route.side[dial_other(s->primary)];
    return outcome_compare(&p->out, &q->out);
}

static bool comparable(const struct route *r)
{
    return r->shadowed && r->side[0].ran && r->side[1].ran && !r->side[0].cancelled &&
           !r->side[1].cancelled;
}

/* The secondary's answer is complete and good: send it, unless serve_primary wants the
 * primary's shadow first. */
static void release_secondary_answer(struct session *s)
{
    struct route *r = &s->route;
    int prim = s->primary;
    if (r->await_compare) {
        if (r->side[prim].nsegs > 0 && !r->side[prim].ran && !r->side[prim].cancelled &&
            !r->side[prim].lost) {
            return; /* the primary's shadow decides */
        }
        if (comparable(r) && compare_runs(s) != OUTCOME_DIFF_none) {
            /* serve_primary: the client gets what the old system answers. */
            SLOG_DEBUG(s, "answers differ: serving the primary's (on_read_divergence = "
                          "serve_primary)");
            r->serve = prim;
            r->streaming = true;
            r->held_complete = r->await_compare = false;
            wbuf_reset(&r->to_client);
            route_run_start(s, prim, ROUTE_SEG_SERVE);
            return;
        }
    }
    patch_ready_status(s);
    client_done(s, dial_other(prim));
}

/* A serving run on backend which ended with its ReadyForQuery. */
static void serving_run_done(struct session *s, int which, bool failed)
{
    struct route *r = &s->route;
    if (which == s->primary) {
        client_done(s, which); /* streamed as it came */
        return;
    }
    if (failed && !r->streaming && !r->forced) {
        fall_back(s, ROUTE_FALLBACK_error);
        return;
    }
    if (failed && r->streaming) {
        stats_add(&s->worker->stats, STAT_read_errors_after_stream_total, 1);
    }
    if (failed || r->streaming || r->forced) {
        patch_ready_status(s);
        client_done(s, which);
        return;
    }
    release_secondary_answer(s);
}

/* ---- backend replies ---------------------------------------------------------------------- */

/* The held answer would pass fallback_buffer_bytes with `more` bytes (checked for every part of
 * a message, so also inside one huge DataRow): from now on it streams (route_feed sends what is
 * in to_client after each feed, back-pressure applying), and cannot fall back. */
static void stream_if_too_big(struct session *s, size_t more)
{
    struct route *r = &s->route;
    if (!r->streaming && r->to_client.len + more > (size_t)s->dials->d.fallback_buffer_bytes &&
        r->serve != s->primary) {
        r->streaming = true;
        r->deadline_serve_us = 0;
    }
}

static int feed_begin(void *ctx, uint8_t type, uint32_t len)
{
    struct backend *b = ctx;
    struct session *s = b->session;
    struct route *r = &s->route;
    struct route_side *sd = &r->side[b->which];
    enum route_seg seg = sd->nsegs > 0 ? sd->segs[0] : ROUTE_SEG_OWN;
    backend_msg_begin(b, type);
    sd->folding = seg != ROUTE_SEG_OWN && !sd->ran && !sd->run_ended && r->shadowed;
    if (sd->folding) {
        sd->read_seen = true;
        outcome_begin(&b->rd, type);
    }
    if (type == PqMsg_ErrorResponse && seg != ROUTE_SEG_OWN) {
        sd->run_failed = true;
    }
    sd->forwarding = client_bound(r, b->which, seg, type, s->primary);
    if (sd->forwarding) {
        stream_if_too_big(s, 5);
        wbuf_put_u8(&r->to_client, type);
        wbuf_put_u32(&r->to_client, len + 4);
    }
    return 0;
}

static int feed_body(void *ctx, const uint8_t *p, size_t n)
{
    struct backend *b = ctx;
    struct route *r = &b->session->route;
    struct route_side *sd = &r->side[b->which];
    backend_msg_body(b, p, n);
    if (sd->folding) {
        outcome_body(&b->rd, p, n);
    }
    if (sd->forwarding) {
        stream_if_too_big(b->session, n);
        wbuf_put_bytes(&r->to_client, p, n);
    }
    return 0;
}

static void savepoint_end(struct session *s, int which)
{
    struct route_side *sd = &s->route.side[which];
    struct wbuf q;
    wbuf_init(&q);
    wire_put_query(&q, s->backends[which].txn_status == PQ_TXN_FAILED ? ROUTE_ROLLBACK_TO
                                                                      : ROUTE_RELEASE);
    seg_push(sd, ROUTE_SEG_OWN);
    sd->savepoint = false;
    route_send(s, which, &q);
    wbuf_free(&q);
}

/* Backend which's current segment ended with a ReadyForQuery. */
static void segment_done(struct session *s, int which)
{
    struct route *r = &s->route;
    struct route_side *sd = &r->side[which];
    enum route_seg seg = sd->segs[0];
    seg_pop(sd);
    if (which == s->primary) {
        /* The client's session is the primary's: its transaction status is the truth. */
        s->mirror.prim_status = s->backends[which].txn_status;
        if (sd->nsegs == 0) {
            session_at_txn_boundary(s);
        }
    }
    if (seg == ROUTE_SEG_OWN) {
        return;
    }
    bool failed = sd->run_failed;
    sd->run_failed = false;
    if (!sd->run_ended) {
        sd->run_ended = true;
        sd->us = clock_monotonic_us() - sd->start_us;
        sd->ran = !sd->cancelled && !sd->lost;
        stats_observe(&s->worker->stats, which, sd->us);
    }
    if (sd->savepoint) {
        savepoint_end(s, which);
    }
    if (seg == ROUTE_SEG_SERVE) {
        serving_run_done(s, which, failed);
    } else if (which == s->primary && r->await_compare && !r->client_done &&
               r->serve != s->primary && r->held_complete) {
        release_secondary_answer(s); /* serve_primary was waiting for this shadow */
    }
}

static int feed_end(void *ctx)
{
    struct backend *b = ctx;
    struct session *s = b->session;
    struct route *r = &s->route;
    struct route_side *sd = &r->side[b->which];
    if (sd->folding) {
        outcome_end(&b->rd, &sd->out);
        sd->folding = false;
    }
    sd->forwarding = false;
    if (backend_msg_end(b) != PqMsg_ReadyForQuery || sd->nsegs == 0) {
        return 0;
    }
    if (sd->segs[0] == ROUTE_SEG_SERVE && b->which != s->primary) {
        r->held_complete = true;
    }
    segment_done(s, b->which);
    return ROUTE_STOP_READY;
}

static const struct wire_scan_ops feed_ops = {feed_begin, feed_body, feed_end};

int route_feed(struct session *s, struct backend *b, const uint8_t *p, size_t n, size_t *used)
{
    struct route *r = &s->route;
    *used = 0;
    int rc = wire_scan_feed(&b->scan, p, n, &feed_ops, b, used);
    if (rc < 0) {
        session_end(s, END_BACKEND_LOST, "malformed message from a backend");
        return -1;
    }
    if (s->state != SESSION_READY) {
        return -1;
    }
    if (r->active && r->streaming && !r->client_done && flush_client(s) < 0) {
        return -1;
    }
    if (r->active && r->serve == b->which && !r->client_done &&
        endpoint_pending(&s->client) > ROUTE_CLIENT_HIGH) {
        endpoint_want_read(&b->ep, false); /* resumed by route_client_drained */
    }
    route_maybe_finish(s);
    return s->state == SESSION_READY ? 0 : -1;
}

void route_client_drained(struct session *s)
{
    struct route *r = &s->route;
    if (!r->active || r->client_done || endpoint_pending(&s->client) >= ROUTE_CLIENT_HIGH / 4) {
        return;
    }
    struct backend *b = &s->backends[r->serve];
    if (b->up && !b->ep.want_read) {
        endpoint_want_read(&b->ep, true);
    }
}

void route_backend_lost(struct session *s, int which)
{
    struct route *r = &s->route;
    if (!r->active) {
        return;
    }
    struct route_side *sd = &r->side[which];
    bool serving = !r->client_done && r->serve == which &&
                   (sd->nsegs > 0 && sd->segs[sd->nsegs - 1] == ROUTE_SEG_SERVE);
    sd->nsegs = 0;
    sd->lost = true;
    sd->savepoint = false;
    if (serving && which != s->primary) {
        if (!r->streaming && !r->forced) {
            fall_back(s, ROUTE_FALLBACK_connection_lost);
        } else {
            /* Part of the answer is with the client already: it gets an error for the rest. */
            stats_add(&s->worker->stats, STAT_read_errors_after_stream_total, 1);
            wire_put_error(&r->to_client, "ERROR", "08006",
                           "pgdual: the backend serving this read was lost in its answer");
            wire_put_ready(&r->to_client, s->mirror.prim_status);
            client_done(s, which);
        }
    } else if (!r->client_done && r->serve != s->primary && r->await_compare && r->held_complete) {
        release_secondary_answer(s);
    }
    route_maybe_finish(s);
}

/* ---- deadlines ------------------------------------------------------------------------------ */

static void on_route_timer(uv_timer_t *t)
{
    struct session *s = t->data;
    struct route *r = &s->route;
    if (s->state != SESSION_READY) {
        return;
    }
    uint64_t now = clock_monotonic_us();
    if (r->wait_deadline_us && now >= r->wait_deadline_us) {
        r->wait_deadline_us =
            0; /* route_wait_check (below) sends the waiting read to the primary */
    }
    if (!r->active) {
        route_arm_timer(s);
        session_relay_after_event(s);
        return;
    }
    int sec = dial_other(s->primary);
    if (r->deadline_serve_us && now >= r->deadline_serve_us) {
        r->deadline_serve_us = 0;
        if (!r->client_done && !r->streaming && r->serve == sec) {
            cancel_run(s, sec);
            fall_back(s, ROUTE_FALLBACK_timeout);
        }
    }
    if (s->state == SESSION_READY && r->deadline_shadow_us && now >= r->deadline_shadow_us) {
        r->deadline_shadow_us = 0;
        int shadow = dial_other(r->initial_serve);
        struct route_side *sd = &r->side[shadow];
        if (sd->nsegs > 0 && !sd->run_ended) {
            stats_add(&s->worker->stats, STAT_shadow_timeouts_total, 1);
            SLOG_DEBUG(s, "shadow read on %s cancelled after shadow_timeout_ms",
                       shadow == DIAL_NEW ? "new" : "old");
            cancel_run(s, shadow);
            if (!r->client_done && r->await_compare && r->held_complete) {
                release_secondary_answer(s);
            }
        }
    }
    if (s->state == SESSION_READY) {
        route_arm_timer(s);
        route_maybe_finish(s);
        session_relay_after_event(s);
    }
}

void route_arm_timer(struct session *s)
{
    struct route *r = &s->route;
    if (!s->timer_open) {
        return;
    }
    uint64_t next = 0;
    if (r->active) {
        next = r->deadline_serve_us;
        if (r->deadline_shadow_us && (!next || r->deadline_shadow_us < next)) {
            next = r->deadline_shadow_us;
        }
    }
    if (r->wait_deadline_us && (!next || r->wait_deadline_us < next)) {
        next = r->wait_deadline_us;
    }
    if (!next) {
        uv_timer_stop(&s->timer);
        return;
    }
    uint64_t now = clock_monotonic_us();
    uint64_t ms = next > now ? (next - now + 999) / 1000 : 0;
    uv_timer_start(&s->timer, on_route_timer, ms < ROUTE_MAX_TIMER_MS ? ms : ROUTE_MAX_TIMER_MS, 0);
}

/* ---- completion ------------------------------------------------------------------------------ */

static void record_comparison(struct session *s)
{
    struct route *r = &s->route;
    if (!comparable(r)) {
        return;
    }
    stats_add(&s->worker->stats, STAT_shadow_compares_total, 1);
    enum outcome_diff d = compare_runs(s);
    divergence_note_partial(s, &r->side[0].out, &r->side[1].out);
    if (d == OUTCOME_DIFF_none) {
        return;
    }
    int prim = s->primary;
    stats_add(&s->worker->stats, STAT_divergences_total, 1);
    stats_divergence(&s->worker->stats, d);
    struct divergence_event e = {
        .kind = outcome_diff_name(d),
        .fingerprint = r->fingerprint,
        .sql = r->sql,
        .prim = &r->side[prim].out,
        .second = &r->side[dial_other(prim)].out,
        .prim_us = r->side[prim].us,
        .sec_us = r->side[dial_other(prim)].us,
    };
    divergence_record(s, &e);
}

void route_maybe_finish(struct session *s)
{
    struct route *r = &s->route;
    if (!r->active || !r->client_done) {
        return;
    }
    for (int i = 0; i < 2; i++) {
        if (r->side[i].nsegs > 0 || r->side[i].cancels_pending > 0) {
            return;
        }
    }
    record_comparison(s);
    uint8_t placed = 0;
    for (int i = 0; i < 2; i++) {
        if (r->side[i].ran && !r->side[i].out.error) {
            placed |= (uint8_t)(1u << i);
        }
    }
    bool ran_ok = placed != 0; /* every message of the read ran there */
    if (r->fell_back || !placed) {
        placed |= (uint8_t)(1u << s->primary);
    }
    session_place_objects(s, r->serial, placed);
    if (ran_ok) {
        stmt_track_confirm_all(&s->stmts, r->serial);
    }
    stmt_track_unit_done(&s->stmts, r->serial, s->mirror.prim_status);
    route_reset(r);
    route_arm_timer(s);
    mirror_dispatch(s); /* what waited for the secondary goes now */
}

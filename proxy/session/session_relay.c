/* proxy/session/session_relay.c: the data path to the client: primary replies stream to the client
 * (a mirrored unit's reply is held for commit_wait and for pgdual's wrap of an autocommit write,
 * whose COMMIT this file sends), secondary replies are folded into outcomes and compared (or fed
 * to a routed read, route.c); the backends' poll events. */
#include <stdlib.h>
#include <string.h>

#include "config/dials.h"
#include "protocol/pqproto.h"
#include "proxy/dualwrite/divergence.h"
#include "proxy/dualwrite/pin_session.h"
#include "proxy/dualwrite/route.h"
#include "proxy/log.h"
#include "proxy/server.h"
#include "proxy/session/cancel.h"
#include "proxy/session/session.h"
#include "proxy/worker.h"

#define BACKEND_READS_PER_EVENT 8
#define RELAY_STOP_HOLD         2
#define RELAY_STOP_RFQ          3
#define RELAY_STOP_WRAP_END     4
#define RELAY_STOP_COPY_IN      7

/* ---- backends -> client / comparison ----------------------------------------------------- */

/* Is type the answer to one step of a batch (protocol/replay.h)? */
static bool batch_step_answer(uint8_t type)
{
    switch (type) {
    case PqMsg_ParseComplete:
    case PqMsg_BindComplete:
    case PqMsg_CloseComplete:
    case PqMsg_NoData:
    case PqMsg_RowDescription:
    case PqMsg_CommandComplete:
    case PqMsg_EmptyQueryResponse:
    case PqMsg_PortalSuspended:
        return true;
    default:
        return false;
    }
}

/* The primary's reply to u goes through pinning (pin_reply.c): what the client gets of this
 * message is built in s->pin.relay_out. */
static void pin_begin(struct session *s, struct backend *b, struct unit *u, uint8_t type,
                      uint32_t len)
{
    struct pin_catalog *c = &s->pin;
    c->msg_filtered = true;
    c->action = u && !u->internal && pin_reply_filters(u)
                    ? pin_reply_begin(s, u, type, u->reply_stmts, u->reply_steps)
                    : PIN_PASS;
    if (c->action != PIN_PASS) {
        wbuf_reset(&c->reply_msg);
        b->cur_unit = NULL; /* folded as the client sees it, at its end */
        return;
    }
    wbuf_put_u8(&c->relay_out, type);
    wbuf_put_u32(&c->relay_out, len + 4);
}

/* A message kept whole is complete: the client's version of it goes out, and is what the
 * primary's outcome folds. */
static void pin_end(struct session *s, struct backend *b, struct unit *u)
{
    struct pin_catalog *c = &s->pin;
    struct wbuf *out = &c->relay_out;
    size_t from = out->len;
    pin_reply_end(s, u, b->cur_type, c->reply_msg.data, c->reply_msg.len, out);
    if (!u->mirrored || out->failed) {
        return;
    }
    size_t off = from;
    struct wire_msg m;
    while (wire_next_msg(out->data, out->len, &off, &m) == 0) {
        outcome_begin(&b->rd, m.type);
        outcome_body(&b->rd, m.body, m.body_len);
        outcome_end(&b->rd, &u->prim);
    }
}

static int backend_begin(void *ctx, uint8_t type, uint32_t len)
{
    struct backend *b = ctx;
    struct session *s = b->session;
    backend_msg_begin(b, type);
    struct unit *u =
        session_is_primary(b) ? mirror_primary_unit(&s->mirror) : mirror_secondary_unit(&s->mirror);
    if (u && session_is_primary(b)) {
        u->prim_msgs++; /* see classify_into */
        if (u->pin && (u->pin->lookup || u->pin->readback || u->pin->create) &&
            type == PqMsg_DataRow) {
            b->capture = true; /* pgdual's catalog lookup or read-back: its rows are read */
            wbuf_reset(&b->msg);
        }
    }
    /* The secondary's answer to pgdual's own leading statement is not the unit's, nor its
     * answer to the re-creation of the session's prepared statements. */
    bool restoring = !session_is_primary(b) && s->mirror.sec_restore_rfqs > 0;
    if (restoring) {
        s->mirror.sec_restore_failed = s->mirror.sec_restore_failed || type == PqMsg_ErrorResponse;
    }
    b->cur_unit = u && !restoring && u->mirrored && (session_is_primary(b) || u->sec_lead_rfqs == 0)
                      ? u
                      : NULL;
    if (session_is_primary(b)) {
        /* The answer to pgdual's Close or Parse in place of a client's Bind (pin_cte_exec.c): not
         * the client's, not one of its steps. */
        s->pin.msg_own = u && !u->internal && s->pin.filtering && pin_reply_own(u, type);
        if (s->pin.msg_own) {
            b->cur_unit = NULL;
            s->pin.msg_filtered = true;
            s->pin.action = PIN_DROP;
            wbuf_reset(&s->pin.reply_msg);
            return 0;
        }
        s->pin.msg_filtered = false;
        if (s->pin.filtering) {
            pin_begin(s, b, u && !u->internal ? u : NULL, type, len); /* counts before it */
        }
        if (u) {
            u->reply_stmts += type == PqMsg_CommandComplete || type == PqMsg_EmptyQueryResponse;
            u->reply_steps += batch_step_answer(type);
        }
    }
    if (b->cur_unit) {
        outcome_begin(&b->rd, type);
    }
    if (u && !u->internal && session_is_primary(b)) {
        mirror_tail_note(&s->mirror, type, len);
    }
    if (type == PqMsg_CopyInResponse) {
        mirror_copy_started(s, session_is_primary(b));
        /* The relay decides again after it whether the rest of the reply is held. */
        return session_is_primary(b) ? RELAY_STOP_COPY_IN : 0;
    }
    return 0;
}

static int backend_body(void *ctx, const uint8_t *p, size_t n)
{
    struct backend *b = ctx;
    backend_msg_body(b, p, n);
    struct pin_catalog *c = &b->session->pin;
    if (session_is_primary(b) && c->msg_filtered) {
        wbuf_put_bytes(c->action == PIN_PASS ? &c->relay_out : &c->reply_msg, p, n);
    }
    if (b->cur_unit) {
        outcome_body(&b->rd, p, n);
    }
    return 0;
}

/* pgdual's COMMIT failed: its ErrorResponse replaces the wrapped reply's end. One cut to its
 * complete fields (backend_msg_end) may have lost its message text: say so in its place. */
static void keep_wrap_error(struct session *s, const struct backend *b)
{
    struct wbuf *e = &s->mirror.wrap_error;
    s->mirror.wrap_commit_failed = true; /* known even if the error's bytes cannot be kept */
    if (b->msg.failed) {
        return; /* release_wrap ends the session: the client must not take it for success */
    }
    struct wire_error_fields f;
    bool no_text = b->msg_cut && (wire_parse_error(b->msg.data, b->msg.len, &f) != 0 || !f.message);
    wbuf_reset(e);
    size_t at = wbuf_begin_msg(e, PqMsg_ErrorResponse);
    wbuf_put_bytes(e, b->msg.data, b->msg.len - (no_text ? 1 : 0));
    if (no_text) {
        wbuf_put_u8(e, 'M');
        wbuf_put_cstr(e, "(pgdual: the error message was too long to pass on)");
        wbuf_put_u8(e, 0);
    }
    wbuf_end_msg(e, at);
}

static int backend_end(void *ctx)
{
    struct backend *b = ctx;
    struct session *s = b->session;
    if (b->cur_unit) {
        outcome_end(&b->rd, session_is_primary(b) ? &b->cur_unit->prim : &b->cur_unit->second);
        b->cur_unit = NULL;
    }
    uint8_t seen = backend_msg_end(b);
    struct unit *u = session_is_primary(b) ? mirror_primary_unit(&s->mirror) : NULL;
    bool own = session_is_primary(b) && s->pin.msg_own;
    if (u && s->pin.msg_filtered && s->pin.action != PIN_PASS && !own) {
        pin_end(s, b, u);
    }
    if (u && u->pin && u->pin->lookup) { /* pgdual's catalog lookup (pin_frontend.c) */
        if (b->cur_type == PqMsg_DataRow) {
            pin_lookup_row(s, b->msg.data, b->msg.len, b->msg_cut || b->msg.failed);
        } else if (seen == PqMsg_ErrorResponse) {
            pin_lookup_failed(s);
        } else if (seen == PqMsg_ReadyForQuery) {
            pin_lookup_done(s);
        }
    }
    if (u && u->pin && u->pin->readback) { /* rows of WITH queries (pin_reply.c) */
        if (b->cur_type == PqMsg_DataRow) {
            pin_readback_row(s, u, b->msg.data, b->msg.len, b->msg_cut || b->msg.failed);
        } else if (seen == PqMsg_ErrorResponse) {
            pin_readback_failed(s, u);
        } else if (seen == PqMsg_ReadyForQuery) {
            pin_readback_done(s, u);
        }
    }
    if (u && u->pin && u->pin->create) { /* pgdual's temporary table (pin_lookup.c) */
        if (b->cur_type == PqMsg_DataRow) {
            /* one column, the table's OID (NULL: not there or not usable) */
            u->pin->made =
                !b->msg_cut && pin_cte_check_row(b->msg.data, b->msg.len, &u->pin->made_oid) == 0;
        } else if (seen == PqMsg_ReadyForQuery) {
            pin_create_done(s, u->pin->made, u->pin->made_oid, b->txn_status != PQ_TXN_IDLE);
        }
    }
    if (u && !own) { /* which of the unit's messages ran decides its statements and portals */
        stmt_track_reply(&s->stmts, u->internal ? 0 : u->serial, b->cur_type);
    }
    if (seen == PqMsg_ErrorResponse) {
        if (u && u->wrap_end) { /* pgdual's COMMIT failed: the client must hear of it */
            keep_wrap_error(s, b);
        }
        return 0;
    }
    if (seen != PqMsg_ReadyForQuery) {
        return 0;
    }
    if (!session_is_primary(b)) {
        mirror_secondary_done(s);
        return 0;
    }
    stmt_track_unit_done(&s->stmts, u && !u->internal ? u->serial : 0, b->txn_status);
    session_at_txn_boundary(s);
    /* A unit whose WITH query rows pgdual reads back right after it: its reply is held from
     * the read-back's end on (that reply must be read while the client's waits). */
    bool readback_next = u && !u->internal && pin_readback_pending(u);
    bool readback_end = u && u->internal && u->pin && u->pin->readback;
    enum mirror_reply reply = mirror_primary_done(s, b->txn_status);
    if (reply == MIRROR_REPLY_HOLD && readback_next) {
        s->mirror.hold_deferred = true;
        return RELAY_STOP_RFQ; /* kept in held: not flushed (relay_primary_bytes) */
    }
    if (readback_end && s->mirror.hold_deferred) {
        s->mirror.hold_deferred = false;
        return RELAY_STOP_HOLD;
    }
    switch (reply) {
    case MIRROR_REPLY_HOLD:
        return RELAY_STOP_HOLD;
    case MIRROR_REPLY_WRAP_END:
        return RELAY_STOP_WRAP_END;
    default:
        return RELAY_STOP_RFQ;
    }
}

static const struct wire_scan_ops backend_ops = {backend_begin, backend_body, backend_end};

static void backend_lost(struct session *s, struct backend *b, const char *why)
{
    stats_add(&s->worker->stats, STAT_backend_failures_total, 1);
    if (!session_is_primary(b)) {
        mirror_secondary_lost(s, why);
        route_backend_lost(s, b->which);
        return;
    }
    SLOG_INFO(s, "%s backend: %s", b->which == DIAL_OLD ? "old" : "new", why);
    session_end(s, END_BACKEND_LOST, b->which == DIAL_OLD ? "old database" : "new database");
}

/* A client that cannot be written to any more is gone: the relay goes on, dropping its
 * replies, until the work in flight is finished (session_linger.c). */
static int send_client(struct session *s, const uint8_t *p, size_t n)
{
    stats_add(&s->worker->stats, STAT_bytes_to_clients, (int64_t)n);
    if (n > 0 && endpoint_send(&s->client, p, n) < 0) {
        session_client_gone(s, END_CLIENT_EOF, "write to the client failed");
    }
    return 0;
}

static int flush_held(struct session *s)
{
    struct wbuf *h = &s->mirror.held;
    int rc = send_client(s, h->data, h->len);
    wbuf_reset(h);
    s->mirror.held_tail = 0; /* nothing held: the next reply's tail starts afresh */
    return rc;
}

/* pgdual's COMMIT/ROLLBACK ended the wrap: the held reply goes with the status the client
 * expects ('I': for it the write was autocommit), or pgdual's COMMIT's error replaces its tail
 * (the last CommandComplete up to ReadyForQuery): rows, then the error, as PostgreSQL answers
 * when an autocommit statement fails at its commit. */
static int release_wrap(struct session *s)
{
    struct mirror *m = &s->mirror;
    struct wbuf *h = &m->held;
    /* Compared (and the secondary taken out of sync if they differ) before the reply goes. */
    bool failed = m->wrap_commit_failed;
    m->wrap_commit_failed = false;
    mirror_wrap_ended(s, failed);
    if (failed && (m->wrap_error.len == 0 || m->wrap_error.failed)) {
        /* pgdual's COMMIT failed but its error could not be kept (out of memory): the client
         * gets a FATAL instead, never the write's success. */
        session_end(s, END_OUT_OF_MEMORY, "the primary refused to commit an autocommit write");
        return -1;
    }
    if (failed) {
        h->len -= m->held_tail < h->len ? m->held_tail : h->len; /* see held_tail */
        wbuf_put_bytes(h, m->wrap_error.data, m->wrap_error.len);
        wire_put_ready(h, PQ_TXN_IDLE);
        wbuf_reset(&m->wrap_error);
    } else if (h->len > 0) {
        h->data[h->len - 1] = PQ_TXN_IDLE;
    }
    return flush_held(s);
}

/* A held reply grew past MIRROR_HOLD_MAX: send what is held except its tail (see held_tail
 * in struct mirror), which waits for pgdual's COMMIT. The tail's last message may still be
 * arriving, and a header not complete yet may begin one. */
static int stream_held_head(struct session *s, const struct backend *b)
{
    struct mirror *m = &s->mirror;
    const struct wire_scanner *sc = &b->scan;
    size_t keep = sc->in_body ? 0 : sc->hdr_have;
    if (m->held_tail > 0) {
        keep += m->held_tail - (sc->in_body ? sc->body_left : 0);
    }
    if (keep >= m->held.len) {
        return 0;
    }
    size_t n = m->held.len - keep;
    if (send_client(s, m->held.data, n) < 0) {
        return -1;
    }
    memmove(m->held.data, m->held.data + n, keep);
    m->held.len = keep;
    return 0;
}

/* Relay primary bytes to the client, one unit's reply (up to its ReadyForQuery) at a time:
 * a mirrored unit's reply is held while commit_wait may apply (always for a wrapped unit); a
 * ReadyForQuery that must wait stops the relay (the rest is kept, unscanned); the replies to
 * pgdual's own statements are dropped. 1 = holding. */
static int relay_primary_bytes(struct session *s, struct backend *b, const uint8_t *p, size_t n)
{
    struct mirror *m = &s->mirror;
    while (n > 0) {
        if (route_owns(s, b->which)) {
            size_t taken = 0;
            if (route_feed(s, b, p, n, &taken) < 0) {
                return -1;
            }
            p += taken;
            n -= taken;
            continue;
        }
        struct unit *u = mirror_primary_unit(m); /* may be freed while the reply is scanned */
        bool internal = u && u->internal;
        /* Not a COPY's CopyInResponse (the client must see it to send the data; what follows it
         * waits like any reply) nor an unsealed batch (a client waiting after Flush must see its
         * results). */
        bool hold =
            u && !internal &&
            (u->wrapped || (u->mirrored && u->sealed && (!u->copy_in || u->copy_started) &&
                            m->secondary_up && s->dials->d.commit_wait == COMMIT_WAIT_BOTH));
        /* A unit with pinned statements: its reply reaches the client as pin_reply_* make it
         * (the mode changes only between messages). */
        struct pin_catalog *pc = &s->pin;
        pc->filtering =
            u && !internal &&
            (wire_scanner_at_boundary(&b->scan) ? pin_reply_filters(u) : pc->msg_filtered);
        wbuf_reset(&pc->relay_out);
        size_t used = 0;
        int rc = wire_scan_feed(&b->scan, p, n, &backend_ops, b, &used);
        bool filtered = pc->filtering;
        pc->filtering = false;
        if (rc < 0) {
            backend_lost(s, b, "malformed message from the backend");
            return -1;
        }
        if (s->state != SESSION_READY) {
            return -1;
        }
        if (filtered && pc->relay_out.failed) {
            session_end(s, END_OUT_OF_MEMORY, NULL);
            return -1;
        }
        const uint8_t *fwd = filtered ? pc->relay_out.data : p;
        size_t fwd_len = filtered ? pc->relay_out.len : used;
        if (internal) {
            /* pgdual's own statement: not the client's business */
        } else if (!hold) {
            if (flush_held(s) < 0 || send_client(s, fwd, fwd_len) < 0) {
                return -1;
            }
        } else {
            /* Held; too big to hold whole, it streams but for its tail (see held_tail). */
            wbuf_put_bytes(&m->held, fwd, fwd_len);
            if (m->held.len > MIRROR_HOLD_MAX && stream_held_head(s, b) < 0) {
                return -1;
            }
        }
        p += used;
        n -= used;
        if (rc == RELAY_STOP_HOLD) {
            m->holding = true;
            wbuf_reset(&m->held_rest);
            wbuf_put_bytes(&m->held_rest, p, n);
            endpoint_want_read(&b->ep, false);
            return 1;
        }
        if (rc == RELAY_STOP_WRAP_END && release_wrap(s) < 0) {
            return -1;
        }
        if (rc == RELAY_STOP_RFQ && !m->hold_deferred && flush_held(s) < 0) {
            return -1;
        }
    }
    return 0;
}

/* Go on relaying the primary after a hold: first the bytes kept after the held ReadyForQuery. */
static void resume_primary(struct session *s)
{
    struct mirror *m = &s->mirror;
    m->holding = false;
    struct backend *b = &s->backends[s->primary];
    struct wbuf rest = m->held_rest;
    wbuf_init(&m->held_rest);
    int rc = rest.len ? relay_primary_bytes(s, b, rest.data, rest.len) : 0;
    wbuf_free(&rest);
    if (rc == 0 && s->state == SESSION_READY && endpoint_pending(&s->client) < RELAY_HIGH_WATER) {
        endpoint_want_read(&b->ep, true);
    }
}

void session_release_held_rfq(struct session *s)
{
    if (s->mirror.hold_deferred && !s->mirror.holding && s->state == SESSION_READY) {
        /* Released while the read-back it was deferred for still runs (its secondary was skipped
         * when the read-back failed): the reply goes now, and the read-back's end holds nothing
         * (holding then, nothing would release it). */
        s->mirror.hold_deferred = false;
        (void)flush_held(s);
        return;
    }
    if (!s->mirror.holding || s->state != SESSION_READY || flush_held(s) < 0) {
        return;
    }
    resume_primary(s);
}

/* The wrapped unit is done on both sides: end pgdual's transaction on the primary; the reply
 * stays held until that ends (release_wrap). */
static void finish_wrap(struct session *s)
{
    struct mirror *m = &s->mirror;
    struct wbuf q;
    wbuf_init(&q);
    struct unit *f = mirror_internal_unit(m, NULL, m->wrap_commit ? "COMMIT" : "ROLLBACK", &q);
    if (!f || q.failed) {
        wbuf_free(&q);
        session_end(s, END_OUT_OF_MEMORY, NULL);
        return;
    }
    f->wrap_end = true;
    m->wrap_finishing = true;
    struct backend *b = &s->backends[s->primary];
    int rc = endpoint_send(&b->ep, q.data, q.len);
    wbuf_free(&q);
    if (rc < 0) {
        backend_lost(s, b, "write to the primary failed");
        return;
    }
    resume_primary(s);
}

/* A complete read waits for the secondary to catch up (route_try): try again. */
static void route_wait_check(struct session *s)
{
    struct unit *u = s->mirror.building;
    if (s->state != SESSION_READY || !u || !u->route_waiting) {
        return;
    }
    u->route_waiting = false;
    int rc = session_seal_unit(s, u);
    if (rc < 0) {
        session_end(s, END_OUT_OF_MEMORY, NULL);
    } else if (rc == 0 && s->state == SESSION_READY && session_flush_to_primary(s) < 0) {
        return; /* the session ended */
    }
}

void session_relay_wake(struct session *s)
{
    if (s->state != SESSION_READY) {
        return;
    }
    if (s->mirror.head) {
        mirror_dispatch(s);
    }
    session_relay_after_event(s);
}

void session_relay_after_event(struct session *s)
{
    /* pgdual's COMMIT of a wrap waits, like the client's next message, for a client's cancel
     * still on its way (a late signal of it must not hit the COMMIT); the targets are published
     * first (see struct cancel_entry). Its delivery wakes the session. */
    session_publish_cancel_targets(s);
    if (s->state == SESSION_READY && s->mirror.holding && mirror_wrap_ready(&s->mirror) &&
        !cancel_client_pending(s->cancel)) {
        finish_wrap(s);
    }
    route_wait_check(s);
    session_gate_check(s);
    session_track_busy(s);
    session_publish_cancel_targets(s);
    session_linger_check(s);
}

static void read_primary(struct session *s, struct backend *b)
{
    struct worker *w = s->worker;
    for (int i = 0; i < BACKEND_READS_PER_EVENT && s->state == SESSION_READY; i++) {
        if (s->mirror.holding) {
            return;
        }
        ssize_t n = endpoint_read(&b->ep, w->rbuf, sizeof(w->rbuf));
        if (n == UV_EAGAIN) {
            return;
        }
        if (n <= 0) {
            backend_lost(s, b, n == 0 ? "connection closed" : uv_strerror((int)n));
            return;
        }
        if (relay_primary_bytes(s, b, w->rbuf, (size_t)n) != 0) {
            return;
        }
        /* After every read, short ones included (a TLS read returns one record at most): a
         * client that does not read stops the primary here, whatever the read's size. */
        if (endpoint_pending(&s->client) > RELAY_HIGH_WATER) {
            endpoint_want_read(&b->ep, false); /* resumed by the client's writable event */
            return;
        }
        if ((size_t)n < sizeof(w->rbuf) || !b->ep.want_read) {
            return; /* drained for now (the poll says when more comes), or a route stopped it */
        }
    }
}

/* The secondary's replies: a routed read's (route.c), else folded into the units' outcomes. */
static int relay_secondary_bytes(struct session *s, struct backend *b, const uint8_t *p, size_t n)
{
    while (n > 0 && s->state == SESSION_READY && s->mirror.secondary_up) {
        size_t used = 0;
        if (route_owns(s, b->which)) {
            if (route_feed(s, b, p, n, &used) < 0) {
                return -1;
            }
        } else if (wire_scan_feed(&b->scan, p, n, &backend_ops, b, &used) < 0) {
            backend_lost(s, b, "malformed message from the secondary");
            return -1;
        }
        p += used;
        n -= used;
    }
    return s->state == SESSION_READY ? 0 : -1;
}

static void read_secondary(struct session *s, struct backend *b)
{
    struct worker *w = s->worker;
    for (int i = 0;
         i < BACKEND_READS_PER_EVENT && s->mirror.secondary_up && s->state == SESSION_READY; i++) {
        ssize_t n = endpoint_read(&b->ep, w->rbuf, sizeof(w->rbuf));
        if (n == UV_EAGAIN) {
            break;
        }
        if (n <= 0) {
            backend_lost(s, b, n == 0 ? "connection closed" : uv_strerror((int)n));
            return;
        }
        if (relay_secondary_bytes(s, b, w->rbuf, (size_t)n) < 0) {
            return;
        }
        if ((size_t)n < sizeof(w->rbuf) || !b->ep.want_read) {
            break; /* drained for now, or the client of a read it serves is full */
        }
    }
    if (s->state == SESSION_READY) {
        session_client_backpressure(s);
    }
}

void session_on_backend_readable(struct backend *b)
{
    struct session *s = b->session;
    if (session_is_primary(b)) {
        read_primary(s, b);
    } else {
        read_secondary(s, b);
    }
}

void session_on_backend_io(uv_poll_t *h, int status, int events)
{
    struct backend *b = h->data;
    struct session *s = b->session;
    if (s->state != SESSION_READY || !b->up) {
        return;
    }
    if (status < 0) {
        backend_lost(s, b, uv_strerror(status));
    } else if ((events & UV_WRITABLE) && endpoint_flush(&b->ep) < 0) {
        backend_lost(s, b, "write failed");
    } else {
        if (events & UV_WRITABLE) {
            session_client_backpressure(s);
        }
        if (endpoint_readable(&b->ep, events) && b->up && s->state == SESSION_READY) {
            session_on_backend_readable(b);
        }
    }
    session_relay_after_event(s);
}

void session_close_secondary(struct session *s)
{
    struct backend *b = &s->backends[s->primary ^ 1];
    b->up = false;
    backend_close_handles(b, session_backend_handle_closed);
}

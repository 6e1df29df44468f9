/* proxy/session_relay.c: the data path once logged in. Frontend messages are framed, checked,
 * classified and forwarded to the primary at once; the mirror state machine (mirror.c) decides
 * what the secondary gets. Primary replies stream to the client (a ReadyForQuery may be held
 * for commit_wait); secondary replies are only folded into outcomes and compared. */
#include <stdlib.h>
#include <string.h>

#include "config/dials.h"
#include "protocol/classify.h"
#include "protocol/pqproto.h"
#include "proxy/cancel.h"
#include "proxy/divergence.h"
#include "proxy/log.h"
#include "proxy/route.h"
#include "proxy/server.h"
#include "proxy/session.h"
#include "proxy/worker.h"

/* Stop reading a peer while the other side has more than this queued; resume below LOW. */
#define RELAY_HIGH_WATER        (256 * 1024)
#define RELAY_LOW_WATER         (64 * 1024)
#define BACKEND_READS_PER_EVENT 8
/* Per-session secondary lag bound: units the secondary has not finished. */
#define MIRROR_MAX_LAG          64
#define RELAY_STOP_TERMINATE    1
#define RELAY_STOP_HOLD         2
#define RELAY_STOP_RFQ          3
#define RELAY_STOP_WRAP_END     4
#define RELAY_STOP_GATE         5
#define RELAY_STOP_ENDED        6
#define RELAY_STOP_COPY_IN      7

/* ---- frontend -> backends ------------------------------------------------------------- */

static bool frontend_type_valid(uint8_t t)
{
    switch (t) {
    case PqMsg_Bind:
    case PqMsg_Close:
    case PqMsg_Describe:
    case PqMsg_Execute:
    case PqMsg_FunctionCall:
    case PqMsg_Flush:
    case PqMsg_Parse:
    case PqMsg_Query:
    case PqMsg_Sync:
    case PqMsg_Terminate:
    case PqMsg_CopyData:
    case PqMsg_CopyDone:
    case PqMsg_CopyFail:
        return true;
    default:
        return false;
    }
}

/* ---- lockstep ordering: the wrap and the gate (see struct mirror) ------------------------ */

/* Frontend messages of one unit held back from the primary (while deciding on a wrap) at most. */
#define DEFER_MAX (64 * 1024)

static bool lockstep_mirroring(const struct session *s)
{
    const struct dials *d = &s->dials->d;
    return s->mirror.secondary_up && d->mirror && d->mirror_order == MIRROR_LOCKSTEP;
}

/* Nothing of the session is running or held on the primary. */
static bool primary_idle(const struct session *s)
{
    const struct mirror *m = &s->mirror;
    return !m->holding && !m->wrap_open && mirror_primary_unit(m) == NULL &&
           !route_owns(s, s->primary);
}

/* May the unit starting now be wrapped if it turns out to be an autocommit write? */
static bool may_wrap(const struct session *s)
{
    return lockstep_mirroring(s) && s->dials->d.commit_wait == COMMIT_WAIT_BOTH &&
           s->mirror.prim_status == PQ_TXN_IDLE && primary_idle(s);
}

/* Sessions on different primaries must never run at the same time: one writing new-first and
 * one writing old-first could each hold a row lock on its primary and wait for it on its
 * secondary, a lock cycle across two servers that neither detects. So after the primary dial
 * changed, a session between transactions starts nothing until every worker has the change and
 * no session still runs a transaction (or a statement) on the other primary; a session still on
 * the old primary also waits until nothing of its own is in flight, then switches
 * (follow_primary_dial). Sessions that stay where they are (LISTEN, or no connection to the
 * other side) neither wait nor count. In steady state this is two relaxed loads per worker. */
static bool switch_must_wait(struct session *s)
{
    const struct mirror *m = &s->mirror;
    if (m->building || m->prim_status != PQ_TXN_IDLE || s->listens) {
        return false;
    }
    const struct dials_snapshot *d = s->worker->dials;
    int want = d->d.primary;
    if (want != s->primary) {
        if (!m->secondary_up) {
            return false; /* it cannot follow: follow_primary_dial ends it */
        }
        if (m->holding || m->wrap_open || s->route.active || mirror_secondary_behind(m) ||
            mirror_primary_unit(m) != NULL) {
            return true;
        }
    }
    struct server *srv = s->worker->server;
    return !server_dials_applied(srv, d->version) || server_busy_on(srv, dial_other(want)) > 0;
}

/* Must this frontend message wait before it reaches the primary? */
static bool must_gate(struct session *s, const uint8_t *msg, size_t len)
{
    const struct mirror *m = &s->mirror;
    if (msg[0] == PqMsg_Terminate && s->route.active) {
        return true; /* a shadow still runs: its comparison is made before the session ends */
    }
    if (m->wrap_open || route_gates_client(s) || (m->building && m->building->route_waiting) ||
        (!m->building && cancel_client_pending(s->cancel))) {
        return true; /* pgdual's transaction on the primary, or a routed read, comes first */
    }
    if (atomic_load_explicit(&s->worker->server->paused, memory_order_relaxed) && !m->building &&
        m->prim_status == PQ_TXN_IDLE && mirror_primary_unit(m) == NULL) {
        return true; /* PAUSE: no new transaction starts */
    }
    if (switch_must_wait(s)) {
        return true;
    }
    return lockstep_mirroring(s) && mirror_secondary_behind(&s->mirror) &&
           session_message_commits(s, msg, len);
}

static void forward(struct session *s, const void *p, size_t n)
{
    wbuf_put_bytes(&s->to_primary, p, n);
}

static int flush_to_primary(struct session *s)
{
    struct wbuf *f = &s->to_primary;
    int rc = f->failed ? -1 : 0;
    if (rc == 0 && f->len > 0) {
        rc = endpoint_send(&s->backends[s->primary].ep, f->data, f->len);
    }
    wbuf_reset(f);
    if (rc < 0) {
        session_end(s, END_BACKEND_LOST, "write to the primary failed");
    }
    return rc;
}

/* A deferred unit goes to the primary as it is. */
static void stop_deferring(struct session *s, struct unit *u)
{
    if (u->defer_fwd) {
        u->defer_fwd = false;
        forward(s, u->bytes.data, u->bytes.len);
    }
}

/* The unit's last message arrived: send a deferred unit (wrapped if it is an autocommit write
 * that may run in a transaction block), then let the mirror take it. */
static int seal_unit(struct session *s, struct unit *u)
{
    struct mirror *m = &s->mirror;
    if (u->defer_fwd && !u->mirrored) {
        int taken = route_try(s, u);
        if (taken == 2) {
            u->route_waiting = true; /* route_wait_check tries again; later messages gate */
            return 0;
        }
        if (taken != 0) {
            return taken < 0 ? RELAY_STOP_ENDED : 0;
        }
    }
    if (u->defer_fwd && u->may_wrap && u->mirrored && u->wrap_ok && u->writes > 0 && !u->copy_in) {
        if (!mirror_internal_unit(m, u, "BEGIN", &s->to_primary)) {
            return -1;
        }
        u->wrapped = true;
        m->wrap_open = true;
        free(m->wrap_sql);
        m->wrap_sql = u->sql ? strdup(u->sql) : NULL;
        m->wrap_fingerprint = u->fingerprint;
        m->wrap_prim_done = m->wrap_finishing = m->wrap_sec_known = false;
        m->wrap_tail = 0;
        wbuf_reset(&m->wrap_error);
    }
    stop_deferring(s, u);
    if (u->defines) {
        session_place_objects(s, u->serial,
                              u->mirrored ? 3 : (uint8_t)(1u << s->primary)); /* see unit_uses */
    }
    mirror_seal(s);
    return 0;
}

/* ---- promotion: the session follows the primary dial at an idle boundary ---------------- */

/* Called when a unit starts. The primary dial changed: switch when nothing is open or in
 * flight on either side (a transaction finishes where it started); a session that cannot
 * follow (no secondary connection, so no way to serve from the new primary) ends, rather than
 * writing to the old primary alone. Returns -1 if the session ended. */
static int follow_primary_dial(struct session *s)
{
    struct mirror *m = &s->mirror;
    int want = s->dials->d.primary;
    if (want == s->primary || m->prim_status != PQ_TXN_IDLE || m->holding || m->wrap_open ||
        s->route.active || mirror_secondary_behind(m) || mirror_primary_unit(m) != NULL) {
        return 0;
    }
    if (!m->secondary_up) {
        session_end(s, END_PRIMARY_SWITCH,
                    want == DIAL_NEW ? "new is not connected" : "old is not connected");
        return -1;
    }
    if (s->listens || s->backends[want].txn_status != PQ_TXN_IDLE) {
        return 0; /* LISTEN stays where it was registered; new sessions get the new primary */
    }
    s->primary = want;
    SLOG_INFO(s, "primary is now %s for this session", want == DIAL_NEW ? "new" : "old");
    return 0;
}

/* ---- frontend -> backends ------------------------------------------------------------- */

/* Classify msg into u. A unit that turns mirrored only after the primary has begun to answer
 * it (a batch that Flushed reads before its first write) has an outcome that misses the steps
 * before: it cannot be compared step by step nor replayed (mirror.c). */
static void classify_into(struct session *s, struct unit *u, const uint8_t *msg, size_t len)
{
    bool was_mirrored = u->mirrored;
    session_classify_message(s, u, msg, len);
    if (!was_mirrored && u->mirrored && u->prim_msgs > 0) {
        u->outcome_partial = true;
    }
}

/* Raises the refusal of a Query holding COPY FROM STDIN among other statements. */
#define COPY_BATCH_REFUSAL                                                                  \
    "DO $pgdual$BEGIN RAISE EXCEPTION USING ERRCODE = '0A000', MESSAGE = 'pgdual: COPY "    \
    "FROM STDIN must be the only statement of its query', HINT = 'Send each COPY ... FROM " \
    "STDIN as a query of its own.'; END$pgdual$"

/* The Query in s->client_msg holds COPY FROM STDIN and more statements: the secondary cannot be
 * given exactly what the primary executes (the data of each COPY would have to wait for the
 * primary's verdict on the one before), so none of it runs. It is replaced, in s->client_msg,
 * by pgdual's own statement that fails with 0A000 on the primary alone: the error reaches the
 * client in order, and inside a transaction block fails it as any error would (the secondary
 * follows the primary's transaction fate). 1 = refused, 0 = not, -1 = no memory. */
static int refuse_copy_batch(struct session *s)
{
    const struct wbuf *q = &s->client_msg;
    if (q->len < 6 || q->data[q->len - 1] != '\0') {
        return 0;
    }
    struct classify_result r;
    if (classify_cached(s->worker->classify, (const char *)q->data + 5, &s->worker->classify_opts,
                        &r) < 0 ||
        !r.is_copy_from || r.nstatements < 2) {
        return 0;
    }
    SLOG_INFO(s, "refused a query holding COPY FROM STDIN among other statements");
    wbuf_reset(&s->client_msg);
    wire_put_query(&s->client_msg, COPY_BATCH_REFUSAL);
    return s->client_msg.failed ? -1 : 1;
}

/* One whole frontend message (header included) is in s->client_msg. */
static int frontend_message(struct session *s)
{
    const uint8_t *msg = s->client_msg.data;
    size_t len = s->client_msg.len;
    uint8_t type = msg[0];
    if (type == PqMsg_CopyData || type == PqMsg_CopyDone || type == PqMsg_CopyFail) {
        mirror_copy_data(s, msg, len);
        forward(s, msg, len);
        return 0;
    }
    if (type == PqMsg_Sync && mirror_copy_sync(s)) {
        forward(s, msg, len); /* closes an extended COPY: held for the secondary with its end */
        return 0;
    }
    if (must_gate(s, msg, len)) {
        return RELAY_STOP_GATE; /* gate_check runs this again on the same message */
    }
    int refused = type == PqMsg_Query ? refuse_copy_batch(s) : 0;
    if (refused < 0) {
        return -1;
    }
    if (refused) {
        msg = s->client_msg.data;
        len = s->client_msg.len;
    }
    if (type == PqMsg_Terminate) {
        return RELAY_STOP_TERMINATE;
    }
    bool starts = s->mirror.building == NULL;
    if (starts) {
        session_refresh_dials(s); /* a statement boundary */
        if (follow_primary_dial(s) < 0) {
            return RELAY_STOP_ENDED;
        }
    }
    /* A unit starting with the primary idle is held back until it is complete: then it is
     * known whether it is an autocommit write to wrap or a read to route. */
    bool wrap = starts && may_wrap(s);
    bool defer = starts && primary_idle(s);
    struct unit *u = mirror_building(&s->mirror);
    if (!u) {
        return -1;
    }
    if (starts) {
        u->defer_fwd = defer;
        u->may_wrap = wrap;
        u->wrap_ok = true;
    }
    wbuf_put_bytes(&u->bytes, msg, len);
    if (!u->defer_fwd) {
        forward(s, msg, len);
    } else if (u->bytes.len > DEFER_MAX) {
        stop_deferring(s, u);
    }
    switch (type) {
    case PqMsg_Query:
        stats_add(&s->worker->stats, STAT_statements_total, 1);
        if (len < 6 || msg[len - 1] != '\0') {
            return -1;
        }
        classify_into(s, u, msg, len);
        if (refused) { /* pgdual's own statement, for the primary alone */
            u->mirrored = u->routable = u->copy_in = u->nondeterministic = false;
            u->writes = 0;
        }
        return seal_unit(s, u);
    case PqMsg_FunctionCall:
        stats_add(&s->worker->stats, STAT_statements_total, 1);
        classify_into(s, u, msg, len);
        return seal_unit(s, u);
    case PqMsg_Sync:
        return seal_unit(s, u);
    case PqMsg_Flush:
        stop_deferring(s, u); /* the client waits for what it sent so far */
        return 0;
    default:
        classify_into(s, u, msg, len);
        return 0;
    }
}

static int frontend_begin(void *ctx, uint8_t type, uint32_t len)
{
    struct session *s = ctx;
    if (!frontend_type_valid(type)) {
        return -1;
    }
    s->client_type = type;
    wbuf_reset(&s->client_msg);
    wbuf_reserve(&s->client_msg, (size_t)len + 5);
    wbuf_put_u8(&s->client_msg, type);
    wbuf_put_u32(&s->client_msg, len + 4);
    return s->client_msg.failed ? -1 : 0;
}

static int frontend_body(void *ctx, const uint8_t *p, size_t n)
{
    struct session *s = ctx;
    wbuf_put_bytes(&s->client_msg, p, n);
    return s->client_msg.failed ? -1 : 0;
}

static int frontend_end(void *ctx)
{
    return frontend_message(ctx);
}

static const struct wire_scan_ops frontend_ops = {frontend_begin, frontend_body, frontend_end};

static bool client_may_read(const struct session *s)
{
    return s->state == SESSION_READY && !s->gated && !s->drain_close && !s->client_gone;
}

static void client_backpressure(struct session *s)
{
    struct backend *p = &s->backends[s->primary];
    struct backend *q = &s->backends[s->primary ^ 1];
    bool over = endpoint_pending(&p->ep) > RELAY_HIGH_WATER ||
                (s->mirror.secondary_up && (endpoint_pending(&q->ep) > RELAY_HIGH_WATER ||
                                            s->mirror.in_flight > MIRROR_MAX_LAG));
    bool under = endpoint_pending(&p->ep) < RELAY_LOW_WATER &&
                 (!s->mirror.secondary_up || (endpoint_pending(&q->ep) < RELAY_LOW_WATER &&
                                              s->mirror.in_flight < MIRROR_MAX_LAG / 2));
    if (over && s->client.want_read) {
        endpoint_want_read(&s->client, false);
    } else if (under && !s->client.want_read && client_may_read(s)) {
        endpoint_want_read(&s->client, true);
    }
}

static void protocol_violation(struct session *s, int rc)
{
    char detail[96];
    if (rc == WIRE_EBADLEN) {
        snprintf(detail, sizeof(detail), "invalid message length (max_message_bytes is %u)",
                 s->client_scan.max_len);
    } else {
        snprintf(detail, sizeof(detail), "invalid or malformed frontend message 0x%02x",
                 s->client_type ? s->client_type : s->client_scan.hdr[0]);
    }
    session_end(s, END_PROTOCOL, detail);
}

void session_on_client_relay(struct session *s, const uint8_t *p, size_t n)
{
    size_t used = 0;
    int rc = wire_scan_feed(&s->client_scan, p, n, &frontend_ops, s, &used);
    if (rc < 0) {
        protocol_violation(s, rc);
        return;
    }
    if (rc == RELAY_STOP_TERMINATE) {
        /* What came before the Terminate goes on as if it had come alone. */
        if (flush_to_primary(s) == 0) {
            session_client_gone(s, END_CLIENT_TERMINATE, NULL);
        }
        return;
    }
    if (rc == RELAY_STOP_ENDED || s->state != SESSION_READY || flush_to_primary(s) < 0) {
        return;
    }
    if (rc == RELAY_STOP_GATE) {
        s->gated = true;
        wbuf_put_bytes(&s->gate_rest, p + used, n - used);
        endpoint_want_read(&s->client, false);
        return;
    }
    client_backpressure(s);
}

/* The gated message may go now: process it, then the bytes that came after it. */
static void gate_check(struct session *s)
{
    if (!s->gated || s->gate_opening || s->state != SESSION_READY ||
        must_gate(s, s->client_msg.data, s->client_msg.len)) {
        return;
    }
    s->gate_opening = true;
    s->gated = false;
    int rc = frontend_message(s);
    if (rc < 0) {
        protocol_violation(s, rc);
    } else if (rc == RELAY_STOP_TERMINATE) {
        session_client_gone(s, END_CLIENT_TERMINATE, NULL);
    } else if (s->state == SESSION_READY && flush_to_primary(s) == 0) {
        struct wbuf rest = s->gate_rest;
        wbuf_init(&s->gate_rest);
        if (rest.len > 0) {
            session_on_client_relay(s, rest.data, rest.len);
        }
        wbuf_free(&rest);
    }
    s->gate_opening = false;
    if (s->state == SESSION_READY && !s->gated) {
        client_backpressure(s);
    }
}

/* ---- backends -> client / comparison ----------------------------------------------------- */

static bool is_primary(const struct backend *b)
{
    return b->which == b->session->primary;
}

static int backend_begin(void *ctx, uint8_t type, uint32_t len)
{
    struct backend *b = ctx;
    struct session *s = b->session;
    backend_msg_begin(b, type);
    struct unit *u =
        is_primary(b) ? mirror_primary_unit(&s->mirror) : mirror_secondary_unit(&s->mirror);
    if (u && is_primary(b)) {
        u->prim_msgs++; /* see classify_into */
    }
    /* The secondary's answer to pgdual's own leading statement is not the unit's. */
    b->cur_unit = u && u->mirrored && (is_primary(b) || u->sec_lead_rfqs == 0) ? u : NULL;
    if (b->cur_unit) {
        outcome_begin(&b->rd, type);
    }
    if (u && u->wrapped && is_primary(b)) {
        mirror_wrap_tail_note(&s->mirror, type, len);
    }
    if (type == PqMsg_CopyInResponse) {
        mirror_copy_started(s, is_primary(b));
        /* The relay decides again after it whether the rest of the reply is held. */
        return is_primary(b) ? RELAY_STOP_COPY_IN : 0;
    }
    return 0;
}

static int backend_body(void *ctx, const uint8_t *p, size_t n)
{
    struct backend *b = ctx;
    backend_msg_body(b, p, n);
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
        outcome_end(&b->rd, is_primary(b) ? &b->cur_unit->prim : &b->cur_unit->second);
        b->cur_unit = NULL;
    }
    uint8_t seen = backend_msg_end(b);
    struct unit *u = is_primary(b) ? mirror_primary_unit(&s->mirror) : NULL;
    if (u) { /* which of the unit's messages ran decides its statements and portals */
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
    if (!is_primary(b)) {
        mirror_secondary_done(s);
        return 0;
    }
    stmt_track_unit_done(&s->stmts, u && !u->internal ? u->serial : 0, b->txn_status);
    session_at_txn_boundary(s);
    switch (mirror_primary_done(s, b->txn_status)) {
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
    if (!is_primary(b)) {
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
    mirror_wrap_ended(s, m->wrap_error.len > 0);
    if (m->wrap_error.len > 0) {
        h->len -= m->wrap_tail < h->len ? m->wrap_tail : h->len; /* see wrap_tail */
        wbuf_put_bytes(h, m->wrap_error.data, m->wrap_error.len);
        wire_put_ready(h, PQ_TXN_IDLE);
        wbuf_reset(&m->wrap_error);
    } else if (h->len > 0) {
        h->data[h->len - 1] = PQ_TXN_IDLE;
    }
    return flush_held(s);
}

/* A wrapped reply grew past MIRROR_HOLD_MAX: send what is held except its tail (see wrap_tail
 * in struct mirror), which waits for pgdual's COMMIT. The tail's last message may still be
 * arriving, and a header not complete yet may begin one. */
static int stream_wrapped(struct session *s, const struct backend *b)
{
    struct mirror *m = &s->mirror;
    const struct wire_scanner *sc = &b->scan;
    size_t keep = sc->in_body ? 0 : sc->hdr_have;
    if (m->wrap_tail > 0) {
        keep += m->wrap_tail - (sc->in_body ? sc->body_left : 0);
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
        bool wrapped = u && u->wrapped;
        /* Not a COPY's CopyInResponse (the client must see it to send the data; what follows it
         * waits like any reply) nor an unsealed batch (a client waiting after Flush must see its
         * results). */
        bool hold =
            u && !internal &&
            (u->wrapped || (u->mirrored && u->sealed && (!u->copy_in || u->copy_started) &&
                            m->secondary_up && s->dials->d.commit_wait == COMMIT_WAIT_BOTH));
        size_t used = 0;
        int rc = wire_scan_feed(&b->scan, p, n, &backend_ops, b, &used);
        if (rc < 0) {
            backend_lost(s, b, "malformed message from the backend");
            return -1;
        }
        if (s->state != SESSION_READY) {
            return -1;
        }
        if (internal) {
            /* pgdual's own statement: not the client's business */
        } else if (!hold) {
            if (flush_held(s) < 0 || send_client(s, p, used) < 0) {
                return -1;
            }
        } else if (wrapped) {
            wbuf_put_bytes(&m->held, p, used);
            if (m->held.len > MIRROR_HOLD_MAX && stream_wrapped(s, b) < 0) {
                return -1;
            }
        } else if (m->held.len + used <= MIRROR_HOLD_MAX) {
            wbuf_put_bytes(&m->held, p, used);
        } else {
            /* Too big to hold: stream it, but keep a final ReadyForQuery's status byte, which
             * must still wait. */
            size_t keep = rc == RELAY_STOP_HOLD ? 1 : 0;
            if (flush_held(s) < 0 || send_client(s, p, used - keep) < 0) {
                return -1;
            }
            wbuf_put_bytes(&m->held, p + used - keep, keep);
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
        if (rc == RELAY_STOP_RFQ && flush_held(s) < 0) {
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
    int rc = seal_unit(s, u);
    if (rc < 0) {
        session_end(s, END_OUT_OF_MEMORY, NULL);
    } else if (rc == 0 && s->state == SESSION_READY) {
        flush_to_primary(s);
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
    gate_check(s);
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
        if ((size_t)n < sizeof(w->rbuf)) {
            return; /* drained for now: the poll says when more comes (saves a recv) */
        }
        if (endpoint_pending(&s->client) > RELAY_HIGH_WATER) {
            endpoint_want_read(&b->ep, false); /* resumed by the client's writable event */
            return;
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
        client_backpressure(s);
    }
}

void session_on_backend_readable(struct backend *b)
{
    struct session *s = b->session;
    if (is_primary(b)) {
        read_primary(s, b);
    } else {
        read_secondary(s, b);
    }
}

static void on_backend_io(uv_poll_t *h, int status, int events)
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
            client_backpressure(s);
        }
        if ((events & UV_READABLE) && b->up && s->state == SESSION_READY) {
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

/* ---- login completion -------------------------------------------------------------------- */

/* The GUC_REPORT parameters of PostgreSQL 15, forwarded to the client after login. */
static const char *const reported_params[] = {
    "server_version",
    "server_encoding",
    "client_encoding",
    "application_name",
    "default_transaction_read_only",
    "in_hot_standby",
    "is_superuser",
    "session_authorization",
    "DateStyle",
    "IntervalStyle",
    "TimeZone",
    "integer_datetimes",
    "standard_conforming_strings",
};

static void send_login_reply(struct session *s, struct backend *b)
{
    for (size_t i = 0; i < sizeof(reported_params) / sizeof(reported_params[0]); i++) {
        const char *v = PQparameterStatus(b->conn, reported_params[i]);
        if (v) {
            wire_put_parameter_status(&s->out, reported_params[i], v);
        }
    }
    wire_put_backend_key(&s->out, s->id, s->cancel_secret);
    wire_put_ready(&s->out, PQ_TXN_IDLE);
}

/* Every login finished: the primary is up (the secondary may or may not be). */
static void finish_login(struct session *s)
{
    struct server *srv = s->worker->server;
    if (s->timer_open) {
        uv_timer_stop(&s->timer);
    }
    send_login_reply(s, &s->backends[s->primary]);
    if (session_flush_out(s) < 0) {
        return;
    }
    session_set_state(s, SESSION_READY);
    wire_scanner_init(&s->client_scan, (uint32_t)srv->cfg->max_message_bytes);
    endpoint_want_read(&s->client, true);
    if (s->client_msg.len > 0) { /* bytes the client sent before ReadyForQuery */
        struct wbuf early = s->client_msg;
        wbuf_init(&s->client_msg);
        session_on_client_relay(s, early.data, early.len);
        wbuf_free(&early);
        session_relay_after_event(s);
    }
}

void session_backend_ready(struct session *s, struct backend *b)
{
    struct server *srv = s->worker->server;
    SSL *ssl = PQsslInUse(b->conn) ? PQsslStruct(b->conn, "OpenSSL") : NULL;
    if (outcome_reader_init(&b->rd) < 0 ||
        endpoint_open(&b->ep, &s->worker->loop, PQsocket(b->conn), ssl, on_backend_io, b) < 0) {
        session_backend_failed(s, b, "cannot poll the backend socket");
        return;
    }
    s->refs++;
    b->up = true;
    b->txn_status = PQ_TXN_IDLE;
    wire_scanner_init(&b->scan, UINT32_MAX);
    if (!s->cancel) {
        s->cancel =
            cancel_register(srv->cancels, s->id, s->cancel_secret, worker_post_gates_cb, s->worker);
    }
    if (s->cancel) {
        cancel_set_key(srv->cancels, s->cancel, b->which, PQgetCancel(b->conn));
        session_publish_cancel_targets(s);
    }
    if (!is_primary(b)) {
        s->mirror.secondary_up = true;
    }
    session_note_parameter(b, "standard_conforming_strings",
                           PQparameterStatus(b->conn, "standard_conforming_strings"));
    session_note_parameter(b, "client_encoding", PQparameterStatus(b->conn, "client_encoding"));
    if (--s->logins_pending == 0) {
        finish_login(s);
    }
}

void session_backend_failed(struct session *s, struct backend *b, const char *msg)
{
    char detail[512];
    snprintf(detail, sizeof(detail), "%s: %s", b->which == DIAL_OLD ? "old" : "new", msg);
    size_t n = strlen(detail);
    while (n > 0 && (detail[n - 1] == '\n' || detail[n - 1] == ' ')) {
        detail[--n] = '\0';
    }
    stats_add(&s->worker->stats, STAT_backend_failures_total, 1);
    if (is_primary(b)) {
        session_end(s, END_BACKEND_CONNECT, detail);
        return;
    }
    /* The secondary is not the client's business: carry on with the primary alone. */
    SLOG_INFO(s, "secondary login failed (%s): going on with the primary alone", detail);
    stats_add(&s->worker->stats, STAT_secondary_failures_total, 1);
    b->up = false; /* lagging once a write misses it (mirror.c: secondary_missed) */
    backend_close_handles(b, session_backend_handle_closed);
    if (s->state == SESSION_CONNECTING && --s->logins_pending == 0) {
        finish_login(s);
    }
}

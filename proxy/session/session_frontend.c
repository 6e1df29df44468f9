/* proxy/session/session_frontend.c: the data path from the client: frontend messages are framed,
 * checked, classified (session_classify.c) and forwarded to the primary at once, held back while
 * a unit may still be wrapped or routed, or stopped at the gate (lockstep commits, PAUSE, a
 * primary switch, a cancel on its way); the mirror state machine (mirror.c) decides what the
 * secondary gets. Back-pressure stops reading the client while a backend is behind. */
#include <stdlib.h>
#include <string.h>

#include "config/dials.h"
#include "protocol/classify.h"
#include "protocol/pqproto.h"
#include "proxy/dualwrite/pin_session.h"
#include "proxy/dualwrite/route.h"
#include "proxy/log.h"
#include "proxy/server.h"
#include "proxy/session/cancel.h"
#include "proxy/session/session.h"
#include "proxy/worker.h"

/* Per-session secondary lag bound: units the secondary has not finished. */
#define MIRROR_MAX_LAG       64
#define RELAY_STOP_TERMINATE 1
#define RELAY_STOP_GATE      5
#define RELAY_STOP_ENDED     6

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
 * other side) neither wait nor count. Then, until the new primary's sequences are raised to the
 * old one's (proxy/control/seqsync.c, which runs once this gate holds on every session), nobody
 * starts anything: a session on the new primary would draw ids the old one already handed out.
 * In steady state this is three relaxed loads per worker. */
static bool switch_must_wait(struct session *s)
{
    const struct mirror *m = &s->mirror;
    if (m->building || m->prim_status != PQ_TXN_IDLE || s->listens) {
        return false;
    }
    if (server_switch_pending(s->worker->server)) {
        return true;
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
    if (s->pin.lookup_pending) {
        return true; /* the catalog lookup for this message comes first (pin_frontend.c) */
    }
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

int session_flush_to_primary(struct session *s)
{
    struct wbuf *f = &s->to_primary;
    int rc = f->failed ? -1 : 0;
    if (rc == 0 && f->len > 0) {
        rc = endpoint_send(&s->backends[s->primary].ep, f->data, f->len);
    }
    wbuf_shrink(f, WBUF_KEEP);
    if (rc < 0) {
        session_end(s, END_BACKEND_LOST, "write to the primary failed");
    }
    return rc;
}

/* u's bytes from byte from on go to the primary, each Bind of a data-modifying WITH statement
 * there replaced as pinning wants it (pin_cte_exec.c). */
static void forward_unit_bytes(struct session *s, struct unit *u, size_t from)
{
    struct wbuf cte;
    if (pin_cte_primary_bytes(s, u, from, &cte)) {
        forward(s, cte.data, cte.len);
        s->to_primary.failed = s->to_primary.failed || cte.failed;
        wbuf_free(&cte);
    } else {
        forward(s, u->bytes.data + from, u->bytes.len - from);
    }
}

/* A deferred unit goes to the primary as it is (as pinning rewrote it); so does the rest of a
 * unit held from a Bind of a data-modifying WITH statement on. */
static void stop_deferring(struct session *s, struct unit *u)
{
    if (u->defer_fwd) {
        u->defer_fwd = false;
        pin_cte_hold_end(u);
        if (u->prim_rewritten) {
            forward(s, u->prim_bytes.data, u->prim_bytes.len);
        } else {
            forward_unit_bytes(s, u, 0);
        }
        wbuf_free(&u->prim_bytes);
    }
    size_t from = 0;
    if (pin_cte_holding(u, &from)) {
        pin_cte_hold_end(u);
        forward_unit_bytes(s, u, from);
    }
}

/* The message (already in u->bytes, for the secondary) goes to the primary as pinning wants it,
 * now or when the deferral ends. A rewritten Parse, Bind or Execute goes to both sides alike (a
 * prepared statement must be the same on both, or a primary switch would find it without
 * pgdual's RETURNING list); a rewritten Query goes to the primary only (the secondary gets the
 * pinned statements instead: pin_reply.c). */
static void forward_to_primary(struct session *s, struct unit *u, const uint8_t *msg, size_t len)
{
    const struct wbuf *rw = NULL;
    pin_frontend_rewrite(s, u, msg, len, &rw);
    /* The client's message with pgdual's own behind it (pin_cte_exec.c): the primary's only. */
    bool own = rw && s->pin.out_prim_only;
    if (rw && msg[0] != PqMsg_Query && !own) {
        u->bytes.len -= len;
        wbuf_put_bytes(&u->bytes, rw->data, rw->len);
        msg = rw->data;
        len = rw->len;
        rw = NULL;
    }
    const uint8_t *p = rw ? rw->data : msg;
    size_t n = rw ? rw->len : len;
    size_t held_from = 0;
    if (!u->defer_fwd && pin_cte_holding(u, &held_from)) {
        /* held from a Bind of a data-modifying WITH statement on (pin_cte_exec.c) */
        if (msg[0] == PqMsg_Query || u->bytes.len - held_from > DEFER_MAX) {
            u->bytes.len -= len;
            stop_deferring(s, u);
            wbuf_put_bytes(&u->bytes, msg, len);
            forward(s, p, n);
        } else if (own && !pin_cte_insert(u, u->bytes.len, p + len, n - len)) {
            s->to_primary.failed = true; /* out of memory: the session cannot go on */
        }
        return;
    }
    if (!u->defer_fwd) {
        forward(s, p, n);
        return;
    }
    if (own && !u->prim_rewritten) {
        /* kept for when the deferred bytes go (forward_unit_bytes) */
        if (!pin_cte_insert(u, u->bytes.len, p + len, n - len)) {
            s->to_primary.failed = true;
        }
        if (u->bytes.len > DEFER_MAX) {
            stop_deferring(s, u);
        }
        return;
    }
    if (msg[0] == PqMsg_Query && pin_cte_substituted(u)) {
        /* A Query ends a batch whose Binds the primary gets as pgdual's statements: what came
         * before it goes now as pinning made it, the Query after it. */
        u->bytes.len -= len;
        stop_deferring(s, u);
        wbuf_put_bytes(&u->bytes, msg, len);
        forward(s, p, n);
        return;
    }
    if (rw && !u->prim_rewritten) {
        u->prim_rewritten = true; /* what came before this message went unchanged */
        wbuf_put_bytes(&u->prim_bytes, u->bytes.data, u->bytes.len - len);
    }
    if (u->prim_rewritten) {
        wbuf_put_bytes(&u->prim_bytes, p, n);
    }
    if (u->bytes.len > DEFER_MAX) {
        stop_deferring(s, u);
    }
}

/* The unit's last message arrived: send a deferred unit (wrapped if it is an autocommit write
 * that may run in a transaction block), then let the mirror take it. */
int session_seal_unit(struct session *s, struct unit *u)
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
        m->wrap_prim_done = m->wrap_finishing = m->wrap_sec_known = m->wrap_commit_failed = false;
        m->held_tail = 0;
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
    s->pin.sec_epoch++; /* pinning's statements prepared on the secondary are on the other side */
    SLOG_INFO(s, "primary is now %s for this session", want == DIAL_NEW ? "new" : "old");
    return 0;
}

/* ---- frontend -> backends ------------------------------------------------------------- */

/* Classify msg into u. A unit that turns mirrored only after the primary has begun to answer
 * it (a batch that Flushed reads before its first write) has an outcome that misses the steps
 * before: it cannot be compared step by step nor replayed (mirror.c). < 0: the session ended (the
 * client went past max_session_statements). */
static int classify_into(struct session *s, struct unit *u, const uint8_t *msg, size_t len)
{
    bool was_mirrored = u->mirrored;
    stmt_track_set_limit(&s->stmts, (size_t)s->conf->cfg.max_session_statements);
    session_classify_message(s, u, msg, len);
    if (!was_mirrored && u->mirrored && u->prim_msgs > 0) {
        u->outcome_partial = true;
    }
    if (s->stmts.over_limit) {
        char detail[64];
        snprintf(detail, sizeof(detail), "max_session_statements is %d",
                 s->conf->cfg.max_session_statements);
        session_end(s, END_TOO_MANY_STATEMENTS, detail);
        return -1;
    }
    return 0;
}

/* Raises the refusal of a Query holding COPY FROM STDIN among other statements. */
#define COPY_BATCH_REFUSAL                                                                  \
    "DO $pgdual$BEGIN RAISE EXCEPTION USING ERRCODE = '0A000', MESSAGE = 'pgdual: COPY "    \
    "FROM STDIN must be the only statement of its query', HINT = 'Send each COPY ... FROM " \
    "STDIN as a query of its own.'; END$pgdual$"

/* Raises the refusal of a Query naming COPY while the lexing cannot be trusted. */
#define COPY_UNSURE_REFUSAL                                                                   \
    "DO $pgdual$BEGIN RAISE EXCEPTION USING ERRCODE = '0A000', MESSAGE = 'pgdual: a query "   \
    "naming COPY is refused while standard_conforming_strings is off or the client encoding " \
    "is backslash-unsafe', HINT = 'Turn standard_conforming_strings on for the COPY.'; "      \
    "END$pgdual$"

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
    const char *sql = (const char *)q->data + 5;
    const char *refusal = NULL, *why = NULL;
    struct classify_result r;
    if (session_lexing_settings_unsafe(s) && strcasestr(sql, "copy")) {
        /* pgdual's parse of the text cannot be trusted here: a COPY it does not see would
         * leave the client waiting for a CopyInResponse that is held, and new without the data. */
        refusal = COPY_UNSURE_REFUSAL;
        why = "while the server may lex it otherwise than pgdual";
    } else if (strcasestr(sql, "copy") && session_classify_text(s, sql, &r) == 0 &&
               r.is_copy_from && r.nstatements >= 2) {
        /* A COPY is spelt out in the text: without the word, no parse is needed to know. */
        refusal = COPY_BATCH_REFUSAL;
        why = "FROM STDIN among other statements";
    }
    if (!refusal) {
        return 0;
    }
    SLOG_INFO(s, "refused a query holding COPY %s", why);
    wbuf_reset(&s->client_msg);
    wire_put_query(&s->client_msg, refusal);
    return s->client_msg.failed ? -1 : 1;
}

/* One whole frontend message (header included) is in s->client_msg. */
static int frontend_message(struct session *s)
{
    const uint8_t *msg = s->client_msg.data;
    size_t len = s->client_msg.len;
    uint8_t type = msg[0];
    if (type == PqMsg_CopyData || type == PqMsg_CopyDone || type == PqMsg_CopyFail) {
        if (s->mirror.building && s->mirror.building->copy_ext) {
            /* libpq sends an extended COPY's data after the batch's Sync; data inside the batch
             * would reach the two sides in different orders: refused, not guessed. */
            session_end(s, END_UNSUPPORTED,
                        "COPY data before the Sync of its extended-protocol batch");
            return RELAY_STOP_ENDED;
        }
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
    bool followed = false;
    if (type == PqMsg_Query || type == PqMsg_Parse || (type == PqMsg_Bind && pin_cte_any(s))) {
        if (s->mirror.building == NULL) {
            followed = true;
            /* A unit starts: follow the primary dial first, so that what pinning sends before the
             * message (a catalog lookup, pgdual's table) goes to the primary the unit runs on. */
            session_refresh_dials(s);
            if (follow_primary_dial(s) < 0) {
                return RELAY_STOP_ENDED;
            }
        }
        int lookup = pin_frontend_lookup(s, msg, len);
        if (lookup != 0) {
            return lookup < 0 ? -1 : RELAY_STOP_GATE; /* the answer reopens the gate */
        }
    }
    bool starts = s->mirror.building == NULL;
    if (starts && !followed) {
        session_refresh_dials(s); /* a statement boundary */
        if (follow_primary_dial(s) < 0) {
            return RELAY_STOP_ENDED;
        }
    }
    if (starts) {
        session_reconnect_resume(s); /* a parked secondary connection is put to use */
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
        u->relay = session_relay_mode(s); /* the dials of this statement boundary */
    }
    size_t at = u->bytes.len;
    wbuf_put_bytes(&u->bytes, msg, len);
    forward_to_primary(s, u, msg, len);
    switch (type) {
    case PqMsg_Query:
        stats_add(&s->worker->stats, STAT_statements_total, 1);
        if (len < 6 || msg[len - 1] != '\0') {
            return -1;
        }
        if (classify_into(s, u, msg, len) < 0) {
            return RELAY_STOP_ENDED;
        }
        if (refused) { /* pgdual's own statement, for the primary alone */
            u->mirrored = u->routable = u->copy_in = u->nondeterministic = false;
            u->writes = u->lex_writes = 0;
        }
        return session_seal_unit(s, u);
    case PqMsg_FunctionCall:
        stats_add(&s->worker->stats, STAT_statements_total, 1);
        if (classify_into(s, u, msg, len) < 0) {
            return RELAY_STOP_ENDED;
        }
        return session_seal_unit(s, u);
    case PqMsg_Sync:
        return session_seal_unit(s, u);
    case PqMsg_Flush:
        stop_deferring(s, u); /* the client waits for what it sent so far */
        return 0;
    case PqMsg_Parse:
        if (classify_into(s, u, msg, len) < 0) {
            return RELAY_STOP_ENDED;
        }
        if (!u->bytes.failed && u->bytes.len > at && len > 5 && memchr(msg + 5, '\0', len - 5)) {
            /* What both sides were sent (pinning may have rewritten it), to send it again to a
             * new secondary connection (session_reconnect.c). */
            stmt_track_note_parse(&s->stmts, u->serial, (const char *)msg + 5, u->bytes.data + at,
                                  u->bytes.len - at);
        }
        return 0;
    default:
        return classify_into(s, u, msg, len) < 0 ? RELAY_STOP_ENDED : 0;
    }
}

static int frontend_begin(void *ctx, uint8_t type, uint32_t len)
{
    struct session *s = ctx;
    if (!frontend_type_valid(type)) {
        return -1;
    }
    s->client_type = type;
    /* Nothing is reserved for the declared length: the buffer grows with the bytes that come
     * (wbuf doubles, so never past twice what arrived), bounded by max_message_bytes. */
    wbuf_reset(&s->client_msg);
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
    struct session *s = ctx;
    int rc = frontend_message(s);
    if (rc != RELAY_STOP_GATE && rc >= 0 && s->state == SESSION_READY) {
        wbuf_shrink(&s->client_msg, WBUF_KEEP); /* a big message gives its memory back */
    }
    return rc;
}

static const struct wire_scan_ops frontend_ops = {frontend_begin, frontend_body, frontend_end};

static bool client_may_read(const struct session *s)
{
    return s->state == SESSION_READY && !s->gated && !s->drain_close && !s->client_gone;
}

void session_client_backpressure(struct session *s)
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
        if (session_flush_to_primary(s) == 0) {
            session_client_gone(s, END_CLIENT_TERMINATE, NULL);
        }
        return;
    }
    if (rc == RELAY_STOP_ENDED || s->state != SESSION_READY || session_flush_to_primary(s) < 0) {
        return;
    }
    if (rc == RELAY_STOP_GATE) {
        s->gated = true;
        wbuf_put_bytes(&s->gate_rest, p + used, n - used);
        endpoint_want_read(&s->client, false);
        return;
    }
    session_client_backpressure(s);
}

/* The gated message may go now: process it, then the bytes that came after it. */
void session_gate_check(struct session *s)
{
    if (!s->gated || s->gate_opening || s->state != SESSION_READY ||
        must_gate(s, s->client_msg.data, s->client_msg.len)) {
        return;
    }
    s->gate_opening = true;
    s->gated = false;
    int rc = frontend_message(s);
    if (rc == RELAY_STOP_GATE) {
        s->gated = true; /* waits again (a catalog lookup went out for it) */
        s->gate_opening = false;
        if (session_flush_to_primary(s) < 0) {
            return; /* the session ended */
        }
        return;
    }
    if (rc < 0) {
        protocol_violation(s, rc);
    } else if (rc == RELAY_STOP_TERMINATE) {
        session_client_gone(s, END_CLIENT_TERMINATE, NULL);
    } else if (s->state == SESSION_READY && session_flush_to_primary(s) == 0) {
        wbuf_shrink(&s->client_msg, WBUF_KEEP);
        struct wbuf rest = s->gate_rest;
        wbuf_init(&s->gate_rest);
        if (rest.len > 0) {
            session_on_client_relay(s, rest.data, rest.len);
        }
        wbuf_free(&rest);
    }
    s->gate_opening = false;
    if (s->state == SESSION_READY && !s->gated) {
        session_client_backpressure(s);
    }
}

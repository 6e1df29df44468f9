/* proxy/dualwrite/mirror.c: unit queue, the secondary's dispatch decisions (lockstep / parallel,
 * the primary's transaction fate, commit_wait), and the unit-by-unit comparison. */
#include "proxy/dualwrite/mirror.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config/dials.h"
#include "protocol/classify.h"
#include "protocol/pqproto.h"
#include "protocol/replay.h"
#include "protocol/seq_raise.h"
#include "proxy/clock.h"
#include "proxy/dualwrite/divergence.h"
#include "proxy/dualwrite/pin_session.h"
#include "proxy/dualwrite/route.h"
#include "proxy/log.h"
#include "proxy/server.h"
#include "proxy/session/cancel.h"
#include "proxy/session/session.h"
#include "proxy/worker.h"

static void mirror_reap(struct mirror *m);
static void finish_copy(struct session *s, struct unit *u);

/* The machinery below may lose the secondary while it walks the queue; a held reply released
 * then would re-enter it and free units under its feet. So releases wait for the outermost
 * call to finish. */
static void mirror_enter(struct mirror *m)
{
    m->busy++;
}

static void mirror_leave(struct session *s)
{
    struct mirror *m = &s->mirror;
    if (--m->busy > 0) {
        return;
    }
    mirror_reap(m);
    if (m->release_pending) {
        m->release_pending = false;
        session_release_held_rfq(s);
    }
}

void mirror_init(struct mirror *m)
{
    memset(m, 0, sizeof(*m));
    m->prim_status = PQ_TXN_IDLE;
    m->sec_txn_expected = PQ_TXN_IDLE;
    wbuf_init(&m->held);
    wbuf_init(&m->held_rest);
    wbuf_init(&m->wrap_error);
}

void mirror_unit_free(struct unit *u)
{
    wbuf_free(&u->bytes);
    wbuf_free(&u->prim_bytes);
    unit_pin_free(u->pin);
    free(u->sql);
    free(u);
}

void mirror_free(struct mirror *m)
{
    while (m->head) {
        struct unit *u = m->head;
        m->head = u->next;
        mirror_unit_free(u);
    }
    m->tail = m->building = NULL;
    wbuf_free(&m->held);
    wbuf_free(&m->held_rest);
    wbuf_free(&m->wrap_error);
    free(m->wrap_sql);
    m->wrap_sql = NULL;
}

/* A fresh unit linked into the queue before `before` (NULL: at the tail). */
static struct unit *unit_insert(struct mirror *m, struct unit *before)
{
    struct unit *u = calloc(1, sizeof(*u));
    if (!u) {
        return NULL;
    }
    wbuf_init(&u->bytes);
    wbuf_init(&u->prim_bytes);
    outcome_init(&u->prim);
    outcome_init(&u->second);
    u->start_us = clock_monotonic_us();
    struct unit **link = &m->head;
    while (*link && *link != before) {
        link = &(*link)->next;
    }
    u->next = *link;
    *link = u;
    if (!u->next) {
        m->tail = u;
    }
    return u;
}

struct unit *mirror_building(struct mirror *m)
{
    if (!m->building) {
        m->building = unit_insert(m, NULL);
        if (m->building) {
            m->building->serial = ++m->next_serial;
            m->building->needs = 3;
            m->building->routable = true;
        }
    }
    return m->building;
}

struct unit *mirror_take_building(struct mirror *m)
{
    struct unit *u = m->building;
    if (!u) {
        return NULL;
    }
    struct unit **link = &m->head;
    struct unit *prev = NULL;
    while (*link != u) {
        prev = *link;
        link = &(*link)->next;
    }
    *link = u->next;
    if (m->tail == u) {
        m->tail = prev;
    }
    m->building = NULL;
    u->next = NULL;
    return u;
}

struct unit *mirror_internal_unit(struct mirror *m, struct unit *before, const char *sql,
                                  struct wbuf *out)
{
    struct unit *u = unit_insert(m, before);
    if (!u) {
        return NULL;
    }
    u->sealed = u->internal = true;
    u->sec = UNIT_SEC_SKIPPED;
    wire_put_own_statement(out, MIRROR_OWN_STATEMENT, sql); /* the client's unnamed ones stay */
    return u;
}

bool mirror_secondary_behind(const struct mirror *m)
{
    for (const struct unit *u = m->head; u && u != m->building; u = u->next) {
        if ((u->mirrored && !u->prim_done) || u->sec == UNIT_SEC_PENDING ||
            u->sec == UNIT_SEC_SENT) {
            return true;
        }
    }
    return false;
}

bool mirror_wrap_ready(const struct mirror *m)
{
    return m->wrap_open && m->wrap_prim_done && !m->wrap_finishing && !mirror_secondary_behind(m);
}

void mirror_tail_note(struct mirror *m, uint8_t type, uint32_t len)
{
    size_t whole = (size_t)len + 5;
    switch (type) {
    case PqMsg_CommandComplete:
    case PqMsg_EmptyQueryResponse:
        m->held_tail = whole; /* a later statement's completion: the earlier one may go */
        return;
    case PqMsg_ReadyForQuery:
    case PqMsg_NoticeResponse:
    case PqMsg_ParameterStatus:
    case PqMsg_NotificationResponse:
        /* The ReadyForQuery is always kept (its status changes); the others stay with it. */
        m->held_tail += type == PqMsg_ReadyForQuery || m->held_tail > 0 ? whole : 0;
        return;
    default:
        m->held_tail = 0; /* more output follows: what came before was not the end */
        return;
    }
}

struct unit *mirror_primary_unit(const struct mirror *m)
{
    struct unit *u = m->head;
    while (u && u->prim_done) {
        u = u->next;
    }
    return u;
}

struct unit *mirror_secondary_unit(const struct mirror *m)
{
    struct unit *u = m->head;
    while (u && u->sec != UNIT_SEC_SENT) {
        u = u->next;
    }
    return u;
}

static struct backend *secondary_of(struct session *s)
{
    return &s->backends[s->primary ^ 1];
}

/* Units at the head that both sides are finished with go away. Only mirror_leave calls it. */
static void mirror_reap(struct mirror *m)
{
    while (m->head && m->head != m->building && m->head->prim_done &&
           (m->head->sec == UNIT_SEC_DONE || m->head->sec == UNIT_SEC_SKIPPED)) {
        struct unit *u = m->head;
        m->head = u->next;
        if (m->tail == u) {
            m->tail = NULL;
        }
        mirror_unit_free(u);
    }
}

/* u will never reach the secondary although it should have: if it may change data there, the
 * secondary is no longer a copy of the primary (lagging: no reads are routed to it). A session
 * that merely lost its connection to it, without missing a write, leaves it in_sync. */
static void secondary_missed(struct session *s, const struct unit *u)
{
    if (u->mirrored && !u->internal) {
        server_secondary_lagging(s->worker->server,
                                 "a mirrored statement did not reach the secondary");
    }
}

static void send_secondary(struct session *s, const void *p, size_t n)
{
    struct backend *b = secondary_of(s);
    if (endpoint_send(&b->ep, p, n) < 0) {
        mirror_secondary_lost(s, "write to the secondary failed");
    }
}

/* Does u draw sequence values on the secondary that pinned inserts may have stored there as ids
 * already (protocol/seq_raise.h)? Only a unit that goes verbatim and may draw, and only once after
 * pinned statements went to the secondary (any session's: the server's pinned_gen moved). Only
 * outside a transaction block on the secondary: there the raise is a transaction of its own, whose
 * locks and snapshot end with it. Inside the client's block it would take the block's snapshot
 * before a SET TRANSACTION that must come first, hold its table locks until the block ends, take
 * part in its serializable conflicts, and a cancel (statement_timeout) would abort the block: the
 * block's writes lost on new alone, or another session waiting (review 13 #1-#3). */
static bool raise_wanted(const struct session *s, const struct unit *u)
{
    if (u->internal || !u->mirrored || s->mirror.sec_txn_expected != PQ_TXN_IDLE ||
        !(u->inserts || u->nondeterministic || u->user_code || u->copy_in || u->execute_draws) ||
        !pin_unit_verbatim(u)) {
        return false;
    }
    uint64_t gen = atomic_load_explicit(&s->worker->server->pinned_gen, memory_order_acquire);
    return gen != s->mirror.seq_raised_gen;
}

/* pgdual's raise of the secondary's sequences ahead of u's bytes, answered by a ReadyForQuery of
 * its own that is not folded into u's outcome (sec_lead_rfqs). */
static void prepend_raise(struct session *s, struct unit *u)
{
    struct wbuf q;
    wbuf_init(&q);
    seq_raise_put(&q, MIRROR_OWN_STATEMENT);
    wbuf_put_bytes(&q, u->bytes.data, u->bytes.len);
    if (q.failed) {
        wbuf_free(&q); /* u goes without it: at worst it collides there, as before */
        return;
    }
    /* Pinned statements of u itself come after the raise: not covered (0: the next such unit
     * raises again). */
    s->mirror.seq_raised_gen =
        u->pinned_sent ? 0
                       : atomic_load_explicit(&s->worker->server->pinned_gen, memory_order_acquire);
    wbuf_free(&u->bytes);
    u->bytes = q;
    u->sec_rfq_left = (uint8_t)((u->sec_rfq_left ? u->sec_rfq_left : 1) + 1);
    u->sec_lead_rfqs++;
}

static void dispatch_unit(struct session *s, struct unit *u)
{
    struct worker *w = s->worker;
    if (raise_wanted(s, u)) {
        prepend_raise(s, u);
    }
    u->sec = UNIT_SEC_SENT;
    if (u->sec_rfq_left == 0) {
        u->sec_rfq_left = 1;
    }
    if (u->prim_done) {
        s->mirror.sec_txn_expected = u->wrapped ? PQ_TXN_IDLE : u->prim.txn_status;
    }
    u->sec_start_us = clock_monotonic_us();
    s->mirror.in_flight++;
    stats_add(&w->stats, STAT_writes_mirrored, 1);
    send_secondary(s, u->bytes.data, u->bytes.len);
    wbuf_free(&u->bytes); /* copy data and everything later goes straight through */
    if (u->copy_in && u->prim_done) {
        finish_copy(s, u); /* sent late: the primary has decided, its end goes along */
    }
}

/* The statement the primary rejected may have drawn sequence values there (an INSERT's serial
 * or identity default, an explicit nextval): they are gone on the primary and were never drawn
 * on the secondary, whose later defaults are then off by one. A statement pinning knew needs
 * nothing (its inserts carry the primary's ids; sequences are raised at a switch); any other
 * leaves the secondary no longer a copy: count it and leave in_sync. */
static void note_failed_draw(struct session *s, struct unit *u, const struct replay_failure *f,
                             uint32_t done)
{
    /* What pinning knew of the failed statement: pinned (the secondary gets the primary's ids,
     * never its own draws) or nothing made up. */
    if (f->type == PqMsg_Query
            ? pin_failed_step_known(u, done)
            : f->type == PqMsg_Execute && pin_failed_step_known(u, f->execute_index)) {
        return;
    }
    bool drew = false, code = false;
    if (f->type == PqMsg_Query && f->stmt_len > 0) {
        char *stmt = strndup((const char *)u->bytes.data + 5 + f->stmt_offset, f->stmt_len);
        struct classify_result r;
        bool unknown = !stmt || classify_statement(stmt, NULL, &r) < 0 || r.parse_error;
        code = unknown || r.user_code;
        drew = code || r.inserts || r.nondeterministic;
        free(stmt);
    } else if (f->type == PqMsg_Execute) {
        drew = (u->execute_draws >> (f->execute_index < 63 ? f->execute_index : 63)) & 1;
        code = drew && u->user_code;
    } else if (f->type == PqMsg_FunctionCall) {
        drew = code = true; /* a function by OID: pgdual does not know what it does */
    }
    /* A statement rejected before it ran (in a failed transaction, or at parse analysis: class
     * 42) drew nothing; but code of the user's reports class 42 from inside (a dynamic EXECUTE,
     * the error's context says where) after it ran, and may have committed before that (a DO or
     * procedure's COMMIT). A call of a missing function is refused at analysis: no context. */
    const char *st = u->prim.sqlstate;
    if (!drew || strcmp(st, "25P02") == 0 ||
        (strncmp(st, "42", 2) == 0 && !(code && u->prim.error_in_code))) {
        return;
    }
    stats_add(&s->worker->stats, STAT_nondeterministic_writes_total, 1);
    divergence_report_nondeterministic(
        s, u, "the primary rejected it after it may have drawn sequence values", NULL);
    server_secondary_diverged(s->worker->server,
                              "a write the primary rejected may have drawn sequence values there");
}

/* The primary stopped u at an error. The secondary gets the steps the primary completed, then
 * a statement that fails on purpose, so it applies exactly what the primary applied and its
 * transaction ends in the same state (DESIGN §5; protocol/replay.h). Returns false when u needs
 * nothing on the secondary. */
static bool build_replay(struct session *s, struct unit *u, uint32_t pinned_steps)
{
    bool simple = u->bytes.len > 0 && u->bytes.data[0] == PqMsg_Query;
    uint32_t prim_done = outcome_steps_done(&u->prim, simple);
    uint32_t done = prim_done + pinned_steps; /* u->bytes holds the pinned statements */
    if (u->outcome_partial) {
        server_secondary_diverged(s->worker->server,
                                  "a failed batch whose first answers were not counted");
        return false;
    }
    if (simple && done > 0 && (u->lex_unsafe || session_lexing_settings_unsafe(s))) {
        /* libpg_query's split of the text may not be the server's (a backslash that does not
         * escape under standard_conforming_strings = off): no replay from it. */
        server_secondary_diverged(s->worker->server,
                                  "a failed Query the secondary cannot replay under "
                                  "standard_conforming_strings = off or a backslash-unsafe "
                                  "client_encoding");
        return false;
    }
    struct wbuf out;
    wbuf_init(&out);
    struct replay_failure f;
    /* 42601 outside any code: the server's parse of the text rejected it, so none of it ran
     * (a syntax error raised while running, inside a function or procedure, has a context). */
    bool syntax_error = strcmp(u->prim.sqlstate, "42601") == 0 && !u->prim.error_in_code;
    int rc = replay_build(u->bytes.data, u->bytes.len, done, syntax_error, &out, &f);
    if (rc < 0) {
        wbuf_free(&out);
        SLOG_INFO(s, "cannot rebuild what the primary executed of a failed unit (%d)", rc);
        server_secondary_diverged(s->worker->server,
                                  "a failed unit the secondary cannot replay step by step");
        return false;
    }
    note_failed_draw(s, u, &f, prim_done);
    uint8_t before = u->prim_status_before;
    /* Nothing ran and the transaction state needs no change: an autocommit statement (or a
     * wrapped write: pgdual rolls its transaction back on the primary) rejected at its first
     * step, or anything rejected in a transaction that had already failed. A wrapped write that
     * got further is replayed like any other: its earlier steps may have drawn sequence values
     * on old that the rollback does not return, and new must draw them too. */
    bool autocommit = u->wrapped || (before == PQ_TXN_IDLE && u->prim.txn_status == PQ_TXN_IDLE);
    if (done == 0 && (before == PQ_TXN_FAILED || autocommit)) {
        wbuf_free(&out);
        return false;
    }
    u->sec_rfq_left = 1;
    if (u->prim.txn_status == PQ_TXN_IDLE && !u->wrapped) {
        /* The primary's transaction ended (a failed COMMIT ends it); the secondary's may be
         * left failed by our statement: end it too. Harmless when there is none. */
        wire_put_query(&out, "ROLLBACK");
        u->sec_rfq_left = 2;
    }
    if (out.failed) {
        wbuf_free(&out);
        server_secondary_diverged(s->worker->server, "out of memory replaying a failed unit");
        return false;
    }
    wbuf_free(&u->bytes);
    u->bytes = out;
    u->replayed = true;
    return true;
}

/* The primary has finished u: what reaches the secondary. A unit the primary completed goes
 * as it is (a COMMIT of a failed transaction rolls back on both: the secondary's transaction
 * failed at the same step); one it stopped at an error goes as far as the primary got. */
/* The primary's transaction failed before u (a read it served failed) but the secondary's did
 * not: fail it the same way first, so u finds the same state there (COMMIT rolls back, ROLLBACK
 * TO SAVEPOINT recovers, anything else is refused on both). */
static int prepend_failure(struct unit *u, bool keep_bytes)
{
    struct wbuf q;
    wbuf_init(&q);
    wire_put_query(&q, REPLAY_FAIL_SQL);
    if (keep_bytes) {
        wbuf_put_bytes(&q, u->bytes.data, u->bytes.len);
    }
    if (q.failed) {
        wbuf_free(&q);
        return -1;
    }
    wbuf_free(&u->bytes);
    u->bytes = q;
    u->sec_rfq_left = (uint8_t)((keep_bytes ? (u->sec_rfq_left ? u->sec_rfq_left : 1) : 0) + 1);
    u->sec_lead_rfqs = keep_bytes ? 1 : 0; /* alone, our failure is the whole (compared) unit */
    if (!keep_bytes) {
        u->replayed = true;
        outcome_init(&u->prim); /* compared as "no step done, then failed" on both */
        u->prim.error = true;
        u->prim.txn_status = PQ_TXN_FAILED; /* what the secondary is left in, as the primary */
        snprintf(u->prim.sqlstate, sizeof(u->prim.sqlstate), "%s", REPLAY_FAIL_SQLSTATE);
    }
    return 0;
}

static void decide_after_primary(struct session *s, struct unit *u)
{
    struct mirror *m = &s->mirror;
    if (u->copy_in && !u->copy_started) {
        u->copy_in = false; /* the primary refused it before copying: an ordinary failed unit */
    }
    /* The statements pinning rewrote go with the primary's values (pin_reply.c). */
    int pinned_steps = u->copy_in ? 0 : pin_secondary_bytes(s, u);
    /* A COPY FROM STDIN (alone in its Query: see refuse_copy_batch) goes with its data and the
     * primary's verdict as its end (CopyFail if the primary failed it): exactly what ran. */
    bool send = u->copy_in || !u->prim.error ||
                build_replay(s, u, pinned_steps > 0 ? (uint32_t)pinned_steps : 0);
    if (u->prim_status_before == PQ_TXN_FAILED && m->sec_txn_expected != PQ_TXN_FAILED &&
        !u->wrapped) {
        if (prepend_failure(u, send) < 0) {
            server_secondary_diverged(s->worker->server, "out of memory failing a transaction");
            send = false;
        } else {
            send = true;
        }
    }
    if (send) {
        dispatch_unit(s, u);
        return;
    }
    u->sec = UNIT_SEC_SKIPPED;
    if (u->hold_rfq) { /* held while a routed read blocked the secondary: nothing to wait for */
        u->hold_rfq = false;
        s->mirror.release_pending = true;
    }
}

/* Nothing may be sent to the secondary now: a routed read still owns it, or a cancel (pgdual's
 * or the client's) is on its way there and could hit what is sent next. What waits keeps its
 * order; the route's end and the cancel's delivery dispatch again. */
static bool secondary_blocked(const struct session *s)
{
    return s->mirror.secondary_up &&
           (route_blocks(s, s->primary ^ 1) || cancel_client_pending(s->cancel));
}

void mirror_dispatch(struct session *s)
{
    struct mirror *m = &s->mirror;
    session_publish_cancel_targets(s); /* before secondary_blocked reads client_pending */
    mirror_enter(m);
    bool parallel = s->dials->d.mirror_order == MIRROR_PARALLEL;
    for (struct unit *u = secondary_blocked(s) ? NULL : m->head; u; u = u->next) {
        if (u->sec != UNIT_SEC_PENDING) {
            continue;
        }
        bool off = !s->dials->d.mirror || u->relay;
        if (!m->secondary_up || !u->mirrored || off) {
            if (u->sealed || !m->secondary_up) {
                if (off && u->mirrored && !u->internal) {
                    /* mirror = off: the write skips a reachable secondary on purpose. */
                    server_secondary_diverged(s->worker->server,
                                              "mirror = off: a write skipped the secondary");
                } else if (!m->secondary_up) {
                    secondary_missed(s, u);
                }
                u->sec = UNIT_SEC_SKIPPED;
                continue;
            }
            break; /* not classified yet: keep the order */
        }
        if (u->prim_done && pin_readback_pending(u)) {
            break; /* the rows of its WITH queries come first: later units keep their place */
        }
        if (u->prim_done) {
            decide_after_primary(s, u);
            continue;
        }
        /* A COPY goes ahead once the primary entered copy mode (its CopyInResponse): one the
         * primary rejects at once waits for its verdict like any statement. */
        bool early = (u->copy_in && u->sealed && u->copy_started) ||
                     (parallel && u->sealed && !u->txn_end && m->prim_status != PQ_TXN_FAILED);
        if (!early) {
            break; /* wait for the primary: later units keep their place behind it */
        }
        dispatch_unit(s, u);
    }
    mirror_leave(s);
}

void mirror_seal(struct session *s)
{
    struct mirror *m = &s->mirror;
    struct unit *u = m->building;
    if (!u) {
        return;
    }
    u->sealed = true;
    m->building = NULL;
    pin_unit_sealed(s, u);
    if (!u->mirrored) {
        wbuf_free(&u->bytes);
    }
    mirror_enter(m);
    mirror_dispatch(s);
    mirror_leave(s);
}

void mirror_copy_data(struct session *s, const uint8_t *msg, size_t len)
{
    struct unit *u = s->mirror.tail;
    if (!u || !u->copy_in) {
        return;
    }
    if (msg[0] == PqMsg_CopyDone || msg[0] == PqMsg_CopyFail) {
        u->copy_end_held = true;
        u->copy_failed = msg[0] == PqMsg_CopyFail;
        return;
    }
    if (u->sec == UNIT_SEC_SENT) {
        send_secondary(s, msg, len);
    } else if (u->sec == UNIT_SEC_PENDING) {
        wbuf_put_bytes(&u->bytes, msg, len);
    }
}

bool mirror_copy_sync(struct session *s)
{
    struct unit *u = s->mirror.tail;
    if (!u || !u->copy_ext || !u->sealed || u->prim_done || !u->copy_end_held ||
        u->copy_sync_held) {
        return false;
    }
    u->copy_sync_held = true;
    return true;
}

void mirror_copy_started(struct session *s, bool primary)
{
    struct mirror *m = &s->mirror;
    struct unit *u = primary ? mirror_primary_unit(m) : mirror_secondary_unit(m);
    if (u && u->copy_in) {
        if (primary) {
            u->copy_started = true;
            mirror_dispatch(s); /* the COPY may go to the secondary now */
        } else {
            u->sec_copy_started = true;
        }
    }
}

/* COPY: the data went ahead; the end waits for the primary's verdict (and the closing Sync of an
 * extended COPY with it). Every path that sends a copy unit calls this once the primary is done:
 * mirror_primary_done for a unit already sent, dispatch_unit for one sent late. */
static void finish_copy(struct session *s, struct unit *u)
{
    if (u->sec != UNIT_SEC_SENT || u->copy_end_sent) {
        return; /* not there, or an extended COPY the secondary refused at once: it is done */
    }
    u->copy_end_sent = true;
    struct wbuf end;
    wbuf_init(&end);
    if (u->prim.error || u->copy_failed) {
        u->copy_fail_forced = !u->copy_failed;
        size_t m = wbuf_begin_msg(&end, PqMsg_CopyFail);
        wbuf_put_cstr(&end, "pgdual: the primary did not complete this COPY");
        wbuf_end_msg(&end, m);
    } else {
        size_t m = wbuf_begin_msg(&end, PqMsg_CopyDone);
        wbuf_end_msg(&end, m);
    }
    if (u->copy_sync_held) {
        size_t m = wbuf_begin_msg(&end, PqMsg_Sync);
        wbuf_end_msg(&end, m);
    }
    send_secondary(s, end.data, end.len);
    wbuf_free(&end);
}

enum mirror_reply mirror_primary_done(struct session *s, uint8_t status)
{
    struct mirror *m = &s->mirror;
    struct unit *u = mirror_primary_unit(m);
    if (!u) {
        return MIRROR_REPLY_PASS;
    }
    mirror_enter(m);
    u->prim_done = true;
    u->prim.txn_status = status;
    u->prim_us = clock_monotonic_us() - u->start_us;
    u->prim_status_before = m->prim_status;
    m->prim_status = status;
    if (status == PQ_TXN_IDLE && pin_cte_any(s)) {
        /* Portals bound to pgdual's statement by the units up to this one are gone (pgdual's
         * own units have no serial: up to the next client unit). */
        uint32_t upto = u->serial;
        if (u->internal) {
            const struct unit *v = u->next;
            while (v && v->internal) {
                v = v->next;
            }
            upto = v ? v->serial - 1 : m->next_serial;
        }
        pin_cte_txn_idle(s, upto);
    }
    enum mirror_reply reply = MIRROR_REPLY_PASS;
    if (u->internal) {
        if (u->wrap_end) {
            m->wrap_open = m->wrap_finishing = m->wrap_prim_done = false;
            reply = MIRROR_REPLY_WRAP_END;
        }
        mirror_leave(s);
        return reply;
    }
    pin_unit_primary_done(s, u, status);
    if (u->mirrored) {
        /* What made up values and could not be pinned takes the secondary out of in_sync, before
         * the reply that acknowledges it is released (pin_reply.c). */
        bool simple = u->bytes.len > 0 && u->bytes.data[0] == PqMsg_Query;
        pin_account(s, u, !u->prim.error || outcome_steps_done(&u->prim, simple) > 0);
    }
    stats_primary_done(&s->worker->stats, s->primary, u->mirrored, u->prim_us);
    if (!u->mirrored) {
        enum stats_counter c =
            s->primary == DIAL_OLD ? STAT_reads_served_old : STAT_reads_served_new;
        stats_add(&s->worker->stats, c, 1);
    }
    if (u->copy_in) {
        finish_copy(s, u);
    }
    if (u->sec == UNIT_SEC_SENT) {
        m->sec_txn_expected = status; /* sent ahead of the primary's verdict (COPY, parallel) */
    }
    mirror_dispatch(s);
    mirror_compare_unit(s, u);
    /* PENDING here: a routed read held its dispatch back; it follows when the read ends. */
    bool to_secondary =
        u->sec == UNIT_SEC_SENT || (u->sec == UNIT_SEC_PENDING && m->secondary_up && u->mirrored &&
                                    (secondary_blocked(s) || pin_readback_pending(u)));
    /* A commit the client must not see before the secondary has it: the unit ended outside a
     * block, or committed inside it (COMMIT AND CHAIN, COMMIT; BEGIN ...). */
    u->hold_rfq = (status == PQ_TXN_IDLE || u->commits) && to_secondary &&
                  s->dials->d.commit_wait == COMMIT_WAIT_BOTH;
    if (u->wrapped) {
        m->wrap_prim_done = true;
        m->wrap_commit = !u->prim.error && status == PQ_TXN_BLOCK;
        reply = MIRROR_REPLY_HOLD;
    } else if (u->hold_rfq) {
        reply = MIRROR_REPLY_HOLD;
    }
    mirror_leave(s);
    return reply;
}

void mirror_secondary_done(struct session *s)
{
    struct mirror *m = &s->mirror;
    if (session_reconnect_restored(s)) {
        return; /* pgdual's re-creation of the prepared statements, not a unit */
    }
    if (m->sec_rfq_extra > 0) {
        m->sec_rfq_extra--; /* the closing Sync of an extended COPY new refused at its start */
        return;
    }
    struct unit *u = mirror_secondary_unit(m);
    if (!u) {
        return;
    }
    if (u->sec_rfq_left > 1) {
        u->sec_rfq_left--; /* pgdual's ROLLBACK after a replay, or the unit after our lead */
        if (u->sec_lead_rfqs > 0) {
            u->sec_lead_rfqs--;
        }
        return;
    }
    if (u->copy_ext && !u->sec_copy_started && u->copy_end_sent && u->copy_sync_held) {
        m->sec_rfq_extra++; /* this answers its first Sync; the one sent with the end follows */
    }
    mirror_enter(m);
    u->sec = UNIT_SEC_DONE;
    pin_secondary_done(s, u);
    u->sec_us = clock_monotonic_us() - u->sec_start_us;
    stats_observe(&s->worker->stats, s->primary ^ 1, u->sec_us);
    m->in_flight--;
    mirror_compare_unit(s, u);
    m->release_pending = m->release_pending || u->hold_rfq;
    u->hold_rfq = false;
    mirror_leave(s);
}

void mirror_session_closing(struct session *s)
{
    struct mirror *m = &s->mirror;
    if (!m->wrap_open || !m->wrap_prim_done || !m->wrap_commit || !m->secondary_up) {
        return;
    }
    SLOG_INFO(s, "session closed inside a wrapped write: old rolls it back, new keeps it: "
                 "divergence (repair with pgdual-verify)");
    stats_add(&s->worker->stats, STAT_divergences_total, 1);
    stats_divergence(&s->worker->stats, OUTCOME_DIFF_error_mismatch);
    /* The wrapped unit is still queued while new applies it; once new is done it is reaped. */
    struct unit *u = m->head;
    while (u && !u->wrapped) {
        u = u->next;
    }
    struct divergence_event e = {.kind = outcome_diff_name(OUTCOME_DIFF_error_mismatch)};
    if (u) {
        e.fingerprint = u->fingerprint;
        e.sql = u->sql;
        e.prim = &u->prim; /* its success, which old now rolls back */
        e.prim_us = u->prim_us;
        e.second = u->sec == UNIT_SEC_DONE ? &u->second : NULL;
        e.sec_us = u->sec_us;
    }
    divergence_record(s, &e);
}

void mirror_secondary_lost(struct session *s, const char *why)
{
    struct mirror *m = &s->mirror;
    if (!m->secondary_up) {
        return;
    }
    m->secondary_up = false;
    m->in_flight = 0;
    m->sec_rfq_extra = 0;
    m->sec_restore_rfqs = 0;
    /* Counted without its secondary before its misses are recorded: a RECONCILE START that sees
     * the gauge at 0 is then earlier than those misses, which make its pass stale. */
    session_track_busy(s);
    stats_add(&s->worker->stats, STAT_secondary_failures_total, 1);
    SLOG_INFO(s, "secondary lost (%s): this session carries on with the primary alone", why);
    bool release = false;
    for (struct unit *u = m->head; u; u = u->next) {
        release = release || u->hold_rfq;
        u->hold_rfq = false;
        if (u->sec == UNIT_SEC_PENDING || u->sec == UNIT_SEC_SENT) {
            secondary_missed(s, u);
            u->sec = UNIT_SEC_SKIPPED;
        }
    }
    session_close_secondary(s);
    mirror_enter(m);
    m->release_pending = m->release_pending || release;
    mirror_leave(s);
}

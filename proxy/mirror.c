/* proxy/mirror.c: unit queue, the secondary's dispatch decisions (lockstep / parallel, the
 * primary's transaction fate, commit_wait), and the unit-by-unit comparison. */
#include "proxy/mirror.h"

#include <stdlib.h>
#include <string.h>

#include "config/dials.h"
#include "protocol/pqproto.h"
#include "proxy/cancel.h"
#include "proxy/clock.h"
#include "proxy/divergence.h"
#include "proxy/log.h"
#include "proxy/route.h"
#include "proxy/server.h"
#include "proxy/session.h"
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
    wbuf_init(&m->held);
    wbuf_init(&m->held_rest);
    wbuf_init(&m->wrap_error);
}

void mirror_unit_free(struct unit *u)
{
    wbuf_free(&u->bytes);
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
    wire_put_query(out, sql);
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

void mirror_wrap_tail_note(struct mirror *m, uint8_t type, uint32_t len)
{
    size_t whole = (size_t)len + 5;
    switch (type) {
    case PqMsg_CommandComplete:
    case PqMsg_EmptyQueryResponse:
        m->wrap_tail = whole; /* a later statement's completion: the earlier one may go */
        return;
    case PqMsg_ReadyForQuery:
    case PqMsg_NoticeResponse:
    case PqMsg_ParameterStatus:
    case PqMsg_NotificationResponse:
        /* The ReadyForQuery is always kept (its status changes); the others stay with it. */
        m->wrap_tail += type == PqMsg_ReadyForQuery || m->wrap_tail > 0 ? whole : 0;
        return;
    default:
        m->wrap_tail = 0; /* more output follows: what came before was not the end */
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
    if (u->mirrored && !u->internal &&
        atomic_load(&s->worker->server->secondary_state) == SECONDARY_in_sync) {
        SLOG_INFO(s, "a mirrored statement did not reach the secondary: it is now lagging");
        server_secondary_lagging(s->worker->server);
    }
}

static void send_secondary(struct session *s, const void *p, size_t n)
{
    struct backend *b = secondary_of(s);
    if (endpoint_send(&b->ep, p, n) < 0) {
        mirror_secondary_lost(s, "write to the secondary failed");
    }
}

static void dispatch_unit(struct session *s, struct unit *u)
{
    struct worker *w = s->worker;
    u->sec = UNIT_SEC_SENT;
    u->sec_start_us = clock_monotonic_us();
    s->mirror.in_flight++;
    stats_add(&w->stats, STAT_writes_mirrored, 1);
    send_secondary(s, u->bytes.data, u->bytes.len);
    wbuf_free(&u->bytes); /* copy data and everything later goes straight through */
    if (u->copy_in && u->prim_done && !u->replaced_by_rollback) {
        finish_copy(s, u); /* sent late: the primary has decided, its end goes along */
    }
}

static void dispatch_rollback(struct session *s, struct unit *u)
{
    struct wbuf q;
    wbuf_init(&q);
    wire_put_query(&q, "ROLLBACK");
    u->replaced_by_rollback = true;
    wbuf_free(&u->bytes);
    u->bytes = q;
    dispatch_unit(s, u);
}

/* The primary has finished u: does its fate let it reach the secondary, and as what? */
static void decide_after_primary(struct session *s, struct unit *u)
{
    uint8_t before = u->prim_status_before, after = u->prim.txn_status;
    if (before == PQ_TXN_FAILED) {
        if (after == PQ_TXN_FAILED) {
            u->sec = UNIT_SEC_SKIPPED; /* rejected by the primary: never sent */
        } else if (after == PQ_TXN_IDLE) {
            dispatch_rollback(s, u); /* COMMIT of a failed transaction is a ROLLBACK */
        } else {
            dispatch_unit(s, u); /* ROLLBACK TO SAVEPOINT: the same on both */
        }
        return;
    }
    if (u->prim.error) {
        u->sec = UNIT_SEC_SKIPPED; /* lockstep: what the primary rejected never reaches new */
        return;
    }
    dispatch_unit(s, u);
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
    mirror_enter(m);
    bool parallel = s->dials->d.mirror_order == MIRROR_PARALLEL;
    for (struct unit *u = secondary_blocked(s) ? NULL : m->head; u; u = u->next) {
        if (u->sec != UNIT_SEC_PENDING) {
            continue;
        }
        if (!m->secondary_up || !u->mirrored || !s->dials->d.mirror) {
            if (u->sealed || !m->secondary_up) {
                if (!m->secondary_up && s->dials->d.mirror) {
                    secondary_missed(s, u);
                }
                u->sec = UNIT_SEC_SKIPPED;
                continue;
            }
            break; /* not classified yet: keep the order */
        }
        if (u->prim_done) {
            decide_after_primary(s, u);
            continue;
        }
        bool early = (u->copy_in && u->sealed) ||
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
    if (!u->mirrored) {
        wbuf_free(&u->bytes);
    }
    mirror_enter(m);
    if (u->mirrored && u->nondeterministic) {
        stats_add(&s->worker->stats, STAT_nondeterministic_writes_total, 1);
        divergence_report_nondeterministic(s, u);
    }
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

static void compare_unit(struct session *s, struct unit *u)
{
    if (u->replaced_by_rollback || u->sec != UNIT_SEC_DONE || !u->prim_done) {
        return;
    }
    enum outcome_diff d = outcome_compare(&u->prim, &u->second);
    divergence_note_partial(s, &u->prim, &u->second);
    if (d == OUTCOME_DIFF_none || (d == OUTCOME_DIFF_sqlstate_mismatch && u->copy_fail_forced)) {
        return;
    }
    stats_add(&s->worker->stats, STAT_divergences_total, 1);
    stats_divergence(&s->worker->stats, d);
    divergence_report(s, u, d);
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
    enum mirror_reply reply = MIRROR_REPLY_PASS;
    if (u->internal) {
        if (u->wrap_end) {
            m->wrap_open = m->wrap_finishing = m->wrap_prim_done = false;
            reply = MIRROR_REPLY_WRAP_END;
        }
        mirror_leave(s);
        return reply;
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
    mirror_dispatch(s);
    compare_unit(s, u);
    /* PENDING here: a routed read held its dispatch back; it follows when the read ends. */
    bool to_secondary =
        u->sec == UNIT_SEC_SENT || (u->sec == UNIT_SEC_PENDING && m->secondary_up && u->mirrored &&
                                    !u->prim.error && secondary_blocked(s));
    u->hold_rfq =
        status == PQ_TXN_IDLE && to_secondary && s->dials->d.commit_wait == COMMIT_WAIT_BOTH;
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
    if (m->sec_rfq_extra > 0) {
        m->sec_rfq_extra--; /* the closing Sync of an extended COPY new refused at its start */
        return;
    }
    struct unit *u = mirror_secondary_unit(m);
    if (!u) {
        return;
    }
    if (u->copy_ext && !u->sec_copy_started && u->copy_end_sent && u->copy_sync_held) {
        m->sec_rfq_extra++; /* this answers its first Sync; the one sent with the end follows */
    }
    mirror_enter(m);
    u->sec = UNIT_SEC_DONE;
    u->sec_us = clock_monotonic_us() - u->sec_start_us;
    stats_observe(&s->worker->stats, s->primary ^ 1, u->sec_us);
    m->in_flight--;
    compare_unit(s, u);
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

/* proxy/session/session_reconnect.c: a session that lost its secondary (its login failed, or its
 * connection was lost) gets it back. At a unit boundary, at most once per secondary_retry_ms, the
 * worker's sweep starts a new login with the session's own login parameters; the client is never
 * held meanwhile (units in between are primary-only: misses, as before). Once logged in the
 * connection is parked until the session is at a unit boundary again (nothing in flight, no
 * transaction on the primary); then the session's named prepared statements (the exact Parse
 * messages both sides were sent, proxy/session/stmt_track.h) are sent again ahead of everything
 * else, their answers owed outside any unit (mirror.sec_restore_rfqs), and mirroring resumes.
 *
 * A session that changed session state pgdual cannot rebuild (session_reconnect_taint: SET,
 * temporary tables, LISTEN, SQL PREPARE, cursors, advisory locks, set_config, code pgdual
 * cannot see into, a statement it could not parse...) never reconnects: it stays primary-only
 * until it ends. */
#include <stdio.h>
#include <string.h>

#include "protocol/pqproto.h"
#include "proxy/clock.h"
#include "proxy/log.h"
#include "proxy/server.h"
#include "proxy/session/session.h"
#include "proxy/stats.h"
#include "proxy/worker.h"

void session_reconnect_taint(struct session *s, const char *why)
{
    if (s->sec_no_rebuild) {
        return;
    }
    s->sec_no_rebuild = true;
    s->sec_no_rebuild_why = why;
    SLOG_DEBUG(s, "a new secondary connection could not be made equal to this one: %s", why);
}

/* Nothing of the session is running, held or open on either side. */
static bool at_boundary(const struct session *s)
{
    const struct mirror *m = &s->mirror;
    return s->state == SESSION_READY && !s->client_gone && !m->building && !m->head &&
           !m->holding && !m->wrap_open && !s->route.active && !s->pin.lookup_pending &&
           m->prim_status == PQ_TXN_IDLE && s->backends[s->primary].txn_status == PQ_TXN_IDLE &&
           stmt_track_settled(&s->stmts);
}

/* Give up on the secondary connection being made (or parked): it closes; a later sweep may try
 * again. */
static void drop_connection(struct session *s, struct backend *b)
{
    s->sec_login = s->sec_parked = false;
    b->up = false;
    backend_close_handles(b, session_backend_handle_closed);
}

/* The sweep, for one session (worker's loop). */
static void reconnect_tick(struct session *s, uint64_t now)
{
    struct worker *w = s->worker;
    struct backend *b = &s->backends[s->primary ^ 1];
    const struct config *cfg = &s->conf->cfg;
    if (s->state != SESSION_READY || s->mirror.secondary_up || s->client_gone) {
        return;
    }
    if (s->sec_login) {
        if (now - s->sec_login_since_us > (uint64_t)cfg->backend_connect_timeout_ms * 1000u) {
            SLOG_INFO(s, "secondary login again: no answer within backend_connect_timeout_ms");
            drop_connection(s, b);
        }
        return;
    }
    if (s->sec_parked) {
        session_reconnect_resume(s); /* also drops it if the session can no longer rebuild */
        return;
    }
    if (s->sec_no_rebuild) {
        if (!s->sec_no_rebuild_logged) {
            s->sec_no_rebuild_logged = true;
            SLOG_INFO(s,
                      "this session stays without its secondary until it ends (%s): its writes "
                      "miss the secondary",
                      s->sec_no_rebuild_why ? s->sec_no_rebuild_why : "session state");
        }
        return;
    }
    if (!w->dials->d.mirror || w->dials->d.primary != s->primary || s->listens || b->ep_closing ||
        b->login_poll || now < s->sec_retry_at_us || !at_boundary(s)) {
        return;
    }
    s->sec_retry_at_us = now + (uint64_t)cfg->secondary_retry_ms * 1000u;
    struct wire_startup st;
    if (wire_parse_startup(s->startup.data + 4, s->startup.len - 4, &st) < 0) {
        session_reconnect_taint(s, "its startup packet is gone");
        return;
    }
    /* What the lost connection left: libpq's connection, buffers, the outcome reader. */
    outcome_reader_free(&b->rd);
    backend_free(b);
    memset(&b->scan, 0, sizeof(b->scan));
    b->sent_fatal = b->capture = b->msg_cut = b->scs_off = b->encoding_unsafe = false;
    b->cur_unit = NULL;
    b->txn_status = PQ_TXN_IDLE;
    b->ep.fd = -1;
    b->ep.discard = false;
    const char *conninfo = b->which == DIAL_OLD ? cfg->backend_old : cfg->backend_new;
    char err[512];
    if (backend_login_start(b, &w->loop, conninfo, &st, err, sizeof(err)) < 0) {
        SLOG_DEBUG(s, "secondary login again failed to start: %s", err);
        if (b->conn) {
            PQfinish(b->conn);
            b->conn = NULL;
        }
        return;
    }
    s->sec_login = true;
    s->sec_login_since_us = now;
    SLOG_DEBUG(s, "secondary login again");
}

void session_reconnect_sweep(struct worker *w)
{
    uint64_t now = clock_monotonic_us();
    for (struct session *s = w->sessions, *next; s; s = next) {
        next = s->next;
        if (s->state == SESSION_READY && !s->mirror.secondary_up) {
            reconnect_tick(s, now);
        }
    }
}

void session_reconnect_ready(struct session *s, struct backend *b)
{
    s->sec_login = false;
    s->sec_parked = true;
    endpoint_want_read(&b->ep, false); /* nothing to read until it is in use */
    session_reconnect_resume(s);
}

void session_reconnect_failed(struct session *s, struct backend *b, const char *detail)
{
    SLOG_DEBUG(s, "secondary login again failed: %s", detail);
    drop_connection(s, b);
}

void session_reconnect_resume(struct session *s)
{
    struct mirror *m = &s->mirror;
    struct backend *b = &s->backends[s->primary ^ 1];
    if (!s->sec_parked || !b->up) {
        return;
    }
    if (s->sec_no_rebuild || !s->dials->d.mirror || s->worker->dials->d.primary != s->primary) {
        drop_connection(s, b);
        return;
    }
    if (!at_boundary(s)) {
        return; /* the next unit start (or sweep) looks again */
    }
    struct wbuf restore;
    wbuf_init(&restore);
    int n = stmt_track_restore(&s->stmts, &restore);
    if (n < 0 || restore.failed) {
        wbuf_free(&restore);
        session_reconnect_taint(s, "pgdual does not know its prepared statements exactly");
        drop_connection(s, b);
        return;
    }
    if (n > 0) {
        static const uint8_t sync[5] = {PqMsg_Sync, 0, 0, 0, 4};
        wbuf_put_bytes(&restore, sync, sizeof(sync));
        if (restore.failed || endpoint_send(&b->ep, restore.data, restore.len) < 0) {
            wbuf_free(&restore);
            drop_connection(s, b);
            return;
        }
        m->sec_restore_rfqs = 1;
        m->sec_restore_failed = false;
    }
    wbuf_free(&restore);
    s->sec_parked = false;
    m->secondary_up = true;
    m->in_flight = 0;
    m->sec_rfq_extra = 0;
    m->sec_txn_expected = PQ_TXN_IDLE;
    b->txn_status = PQ_TXN_IDLE;
    s->pin.sec_epoch++; /* pinning's statements are prepared on this connection again */
    endpoint_want_read(&b->ep, true);
    stats_add(&s->worker->stats, STAT_secondary_reconnects_total, 1);
    SLOG_INFO(s, "secondary back: mirroring again (%d prepared statement%s re-created)", n,
              n == 1 ? "" : "s");
    session_track_busy(s);
    session_publish_cancel_targets(s);
}

bool session_reconnect_restored(struct session *s)
{
    struct mirror *m = &s->mirror;
    if (m->sec_restore_rfqs == 0) {
        return false;
    }
    m->sec_restore_rfqs--;
    if (m->sec_restore_failed) {
        session_reconnect_taint(s, "re-creating its prepared statements failed on the secondary");
        mirror_secondary_lost(s, "re-creating the session's prepared statements failed there");
    }
    return true;
}

/* proxy/session/session_linger.c: a session whose client went away while work it sent was in
 * flight.
 *
 * Closing both backend connections at once could leave that work on one side only: a COMMIT
 * old completes while new never gets it, an autocommit DDL / TRUNCATE / COPY that old finishes
 * after the client left, pgdual's own wrap of an autocommit write (new applied it, old rolls it
 * back). So the session stops reading the client, drops what would go to it, lets the primary
 * finish the units it runs and the secondary apply every unit the primary completed (the usual
 * rules of mirror.c decide what the secondary gets), then ends. It waits at most
 * shutdown_timeout_ms; whenever a session ends with something at stake (that deadline, SIGINT,
 * the drain deadline, a lost primary), session_end records the loss (session_work_at_stake). */
#include <sys/socket.h>

#include "protocol/pqproto.h"
#include "proxy/clock.h"
#include "proxy/log.h"
#include "proxy/server.h"
#include "proxy/session/session.h"
#include "proxy/worker.h"

/* Besides its own events, a lingering session looks at itself this often. */
#define LINGER_POLL_MS 500

/* A unit that can no longer complete: the building unit (a batch without its Sync) or a COPY
 * FROM STDIN without its CopyDone. pgdual does not complete it; each backend rolls back what
 * it ran of it when its connection closes. */
static bool unit_unsealed(const struct mirror *m, const struct unit *u)
{
    return u == m->building || (u->copy_in && !u->copy_end_held && !u->prim_done);
}

/* pgdual's BEGIN ... COMMIT around an autocommit write is open on the primary while the
 * secondary applied the write (or is applying it): closing now rolls it back on old alone. */
static bool wrap_at_stake(const struct mirror *m)
{
    if (!m->wrap_open || (m->wrap_prim_done && !m->wrap_commit)) {
        return false; /* not open, or old rejected it: new never gets it */
    }
    for (const struct unit *u = m->head; u; u = u->next) {
        if (u->wrapped) {
            return u->sec == UNIT_SEC_SENT || u->sec == UNIT_SEC_DONE;
        }
    }
    return true; /* done on both sides and reaped; pgdual's COMMIT is still on its way */
}

const char *session_work_at_stake(const struct session *s)
{
    const struct mirror *m = &s->mirror;
    if (s->state != SESSION_READY || !m->secondary_up) {
        return NULL; /* a lost secondary already made it lagging (mirror.c: secondary_missed) */
    }
    if (wrap_at_stake(m)) {
        return "a wrapped autocommit write reached new but was not committed on old";
    }
    /* Whether the primary is inside a transaction block before each unit: known for the units
     * it finished, chained (conservatively) for the ones it has not. A unit wholly inside a
     * block is rolled back by both backends when their connections close. */
    bool in_block = m->prim_status != PQ_TXN_IDLE;
    for (const struct unit *u = m->head; u; u = u->next) {
        bool before = in_block, after;
        if (u->prim_done) {
            before = u->prim_status_before != PQ_TXN_IDLE;
            after = u->prim.txn_status != PQ_TXN_IDLE;
        } else {
            after = before && !u->txn_end && !u->undoes && !u->commits;
            in_block = after;
        }
        if (!u->mirrored || u->internal || u->wrapped || u->sec == UNIT_SEC_SKIPPED ||
            (u->prim_done && u->sec == UNIT_SEC_DONE)) {
            continue;
        }
        if (u == m->building) {
            /* Forwarded already (Flush, or too big to hold back): the primary ran its Executes.
             * A COMMIT among them stays; so may what a DO/CALL committed, a CONCURRENTLY or
             * VACUUM, and sequence values an INSERT drew before the rollback. Only lock-only
             * reads are known to leave nothing. */
            if (!u->defer_fwd && (u->commits || u->writes > u->lock_reads)) {
                return "a batch without Sync ran writes on the primary that new never got";
            }
            continue;
        }
        /* Inside a block from start to end, unless it commits in between (COMMIT; BEGIN; ...). */
        if (unit_unsealed(m, u) || (before && after && !u->txn_end && !u->undoes && !u->commits)) {
            continue;
        }
        return u->prim_done ? "a write the primary completed has not been applied by new"
                            : "a write is in flight on the primary";
    }
    return NULL;
}

/* Every unit the client completed is finished on both sides, and pgdual's wrap is closed. */
static bool linger_done(const struct session *s)
{
    const struct mirror *m = &s->mirror;
    if (m->wrap_open) {
        return false;
    }
    for (const struct unit *u = m->head; u; u = u->next) {
        if (!u->mirrored || u->internal || unit_unsealed(m, u)) {
            continue;
        }
        if (!u->prim_done || u->sec == UNIT_SEC_PENDING || u->sec == UNIT_SEC_SENT) {
            return false;
        }
    }
    return true;
}

void session_linger_check(struct session *s)
{
    if (s->state != SESSION_READY || !s->client_gone) {
        return;
    }
    bool late = clock_monotonic_us() >= s->linger_deadline_us;
    if (!linger_done(s) && !late) {
        return;
    }
    if (late) {
        SLOG_INFO(s, "client gone; its work in flight did not finish within shutdown_timeout_ms");
    }
    session_end(s, s->gone_why, s->gone_detail);
}

static void on_linger_timer(uv_timer_t *t)
{
    session_linger_check(t->data);
}

static void on_linger_closed(uv_handle_t *h)
{
    session_unref(h->data);
}

void session_client_gone(struct session *s, enum session_end_reason why, const char *detail)
{
    if (s->state != SESSION_READY) {
        session_end(s, why, detail);
        return;
    }
    if (s->client_gone) {
        return;
    }
    s->client_gone = true;
    s->gone_why = why;
    s->gone_detail = detail;
    endpoint_discard(&s->client);
    if (s->client.fd >= 0) {
        shutdown(s->client.fd, SHUT_RDWR); /* the client, if still there, sees the end now */
    }
    int ms = s->conf->cfg.shutdown_timeout_ms;
    s->linger_deadline_us = clock_monotonic_us() + (uint64_t)ms * 1000u;
    if (uv_timer_init(&s->worker->loop, &s->linger_timer) == 0) {
        s->linger_timer.data = s;
        s->linger_open = true;
        s->refs++;
        uv_timer_start(&s->linger_timer, on_linger_timer,
                       (uint64_t)(ms < LINGER_POLL_MS ? ms : LINGER_POLL_MS), LINGER_POLL_MS);
    }
    SLOG_DEBUG(s, "client gone (%s): finishing the work in flight", detail ? detail : "");
    /* The caller's event ends with session_linger_check (session_relay_after_event). */
}

void session_linger_close(struct session *s)
{
    if (s->linger_open) {
        s->linger_open = false;
        uv_close((uv_handle_t *)&s->linger_timer, on_linger_closed);
    }
}

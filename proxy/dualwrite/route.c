/* proxy/dualwrite/route.c: routed reads: the routing decision (route_choose), the read's state
 * (lifecycle) and its start (route_try); running it on each backend is route_run.c. */
#include "proxy/dualwrite/route.h"

#include <stdlib.h>
#include <string.h>

#include "config/dials.h"
#include "protocol/pqproto.h"
#include "proxy/clock.h"
#include "proxy/dualwrite/divergence.h"
#include "proxy/dualwrite/route_run.h"
#include "proxy/log.h"
#include "proxy/server.h"
#include "proxy/session/cancel.h"
#include "proxy/session/session.h"
#include "proxy/worker.h"

/* ---- small helpers -------------------------------------------------------------------- */

/* 0..99, from the session's own xorshift64* generator (the loop owns it: no lock, no syscall). */
static int draw_percent(struct route *r)
{
    uint64_t x = r->rng;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    r->rng = x;
    return (int)((x * 0x2545F4914F6CDD1DULL) >> 33) % 100;
}

/* ---- lifecycle ------------------------------------------------------------------------- */

void route_init(struct session *s)
{
    struct route *r = &s->route;
    memset(r, 0, sizeof(*r));
    wbuf_init(&r->bytes);
    wbuf_init(&r->to_client);
    r->rng = ((uint64_t)s->id << 32) ^ clock_monotonic_us() ^ 0x9E3779B97F4A7C15ULL;
    if (r->rng == 0) {
        r->rng = 1;
    }
}

/* Buffers are kept for the session's next read, unless a big answer grew them. */
#define ROUTE_KEEP_BYTES (64 * 1024)

static void reuse_or_free(struct wbuf *b)
{
    if (b->cap > ROUTE_KEEP_BYTES) {
        wbuf_free(b);
    } else {
        wbuf_reset(b);
    }
}

void route_reset(struct route *r)
{
    r->active = false;
    reuse_or_free(&r->bytes);
    reuse_or_free(&r->to_client);
    free(r->sql);
    r->sql = NULL;
    memset(r->side, 0, sizeof(r->side));
    r->deadline_serve_us = r->deadline_shadow_us = 0;
}

void route_free(struct session *s)
{
    struct route *r = &s->route;
    free(r->sql);
    r->sql = NULL;
    wbuf_free(&r->bytes);
    wbuf_free(&r->to_client);
}

bool route_owns(const struct session *s, int which)
{
    return s->route.active && s->route.side[which].nsegs > 0;
}

bool route_blocks(const struct session *s, int which)
{
    return route_owns(s, which) || s->route.side[which].cancels_pending > 0;
}

/* Does the read dial send reads to the secondary at all? */
static bool dial_uses_secondary(const struct session *s)
{
    int pct = s->dials->d.read_new_percent;
    return s->primary == DIAL_OLD ? pct > 0 : pct < 100;
}

bool route_gates_client(const struct session *s)
{
    const struct route *r = &s->route;
    if (!r->active) {
        return false;
    }
    /* A shadow still running on the secondary holds the next statement back only when the dial
     * may send it there (it would wait behind the shadow anyway); otherwise the primary serves
     * on while the shadow finishes, and reads meanwhile are not shadowed. */
    return !r->client_done || route_blocks(s, s->primary) ||
           (route_blocks(s, dial_other(s->primary)) && dial_uses_secondary(s));
}

void route_txn_ended(struct session *s)
{
    s->route.txn_drawn = false;
}

/* ---- the routing decision -------------------------------------------------------------- */

/* The read dial: which backend serves a read (enum dial_backend). */
static int draw_serve(struct session *s)
{
    return draw_percent(&s->route) < s->dials->d.read_new_percent ? DIAL_NEW : DIAL_OLD;
}

/* Draw the dials for u once (a read that waits keeps its draw): which backend serves it (once
 * per transaction block, at its first read) and whether it is shadowed. */
static void draw_once(struct session *s, struct unit *u)
{
    struct route *r = &s->route;
    if (u->drawn) {
        return;
    }
    u->drawn = true;
    if (s->mirror.prim_status == PQ_TXN_BLOCK) {
        if (!r->txn_drawn) {
            r->txn_drawn = true;
            r->txn_serve = draw_serve(s);
        }
        u->draw_serve = r->txn_serve;
    } else {
        u->draw_serve = draw_serve(s);
    }
    int pct = s->dials->d.compare_percent;
    u->draw_shadow = pct > 0 && draw_percent(r) < pct;
    if (u->draw_shadow && u->read_nondeterministic) {
        stats_add(&s->worker->stats, STAT_shadow_not_comparable_total, 1);
        u->draw_shadow = false;
    }
}

/* Is the secondary a copy the read may use at all? */
static bool secondary_usable(const struct session *s)
{
    const struct backend *q = &s->backends[dial_other(s->primary)];
    const struct server *srv = s->worker->server;
    return s->mirror.secondary_up && q->up && s->dials->d.mirror && server_secondary_in_sync(srv) &&
           s->mirror.sec_restore_rfqs == 0;
}

/* Is anything of the session still running or held on either backend? */
static bool session_busy(const struct session *s)
{
    const struct mirror *m = &s->mirror;
    return s->route.active || m->holding || m->wrap_open || m->in_flight > 0 ||
           mirror_secondary_behind(m) || route_blocks(s, dial_other(s->primary));
}

/* The routing decision for read u (sealed, held back, the primary idle): ROUTE_TRY_PRIMARY (the
 * usual way), ROUTE_TRY_WAIT, or route it with *c filled. */
struct route_choice {
    int serve;   /* enum dial_backend */
    bool shadow; /* also run on the other backend and compare */
    bool forced; /* only the secondary holds what the read uses */
};
enum { ROUTE_TRY_PRIMARY, ROUTE_TRY_ROUTE, ROUTE_TRY_WAIT };

static int route_choose(struct session *s, struct unit *u, struct route_choice *c)
{
    const struct mirror *m = &s->mirror;
    int prim = s->primary, sec = dial_other(prim);
    memset(c, 0, sizeof(*c));
    if (!(u->needs & (1u << prim))) {
        /* It uses a statement or portal a read routed to the secondary created: only there. */
        c->serve = sec;
        c->forced = true;
    } else {
        draw_once(s, u);
        if (!(u->needs & (1u << sec)) || !secondary_usable(s)) {
            if (u->draw_shadow && atomic_load_explicit(&s->worker->server->secondary_state,
                                                       memory_order_relaxed) == SYNC_seeding) {
                stats_add(&s->worker->stats, STAT_shadows_skipped_total, 1); /* new is filling */
            }
            return ROUTE_TRY_PRIMARY; /* the secondary may miss writes: it serves nothing */
        }
        c->serve = u->draw_serve;
        c->shadow = u->draw_shadow;
        if (c->serve == prim && !c->shadow) {
            return ROUTE_TRY_PRIMARY;
        }
    }
    if (!m->secondary_up || !s->backends[sec].up) {
        return ROUTE_TRY_PRIMARY;
    }
    if (session_busy(s)) {
        if (c->serve == sec && !c->forced) {
            /* It would queue behind the secondary's work anyway; but not for longer than
             * read_timeout_ms, after which the primary serves it like a timed-out read. */
            uint64_t now = clock_monotonic_us();
            if (!u->wait_since_us) {
                u->wait_since_us = now;
            }
            uint64_t limit = (uint64_t)s->dials->d.read_timeout_ms * 1000u;
            if (now - u->wait_since_us < limit) {
                s->route.wait_deadline_us = u->wait_since_us + limit;
                route_arm_timer(s);
                return ROUTE_TRY_WAIT;
            }
            s->route.wait_deadline_us = 0;
            route_count_fallback(s, ROUTE_FALLBACK_timeout);
            return ROUTE_TRY_PRIMARY;
        }
        if (c->serve == sec) {
            return ROUTE_TRY_WAIT; /* only the secondary can serve it */
        }
        /* Served by the primary: the client does not wait for a shadow; this one is skipped. */
        stats_add(&s->worker->stats, STAT_shadows_skipped_total, 1);
        return ROUTE_TRY_PRIMARY;
    }
    /* Both sides idle: their transactions must be alike (the same fate so far). */
    if (s->backends[sec].txn_status != m->prim_status || m->prim_status == PQ_TXN_FAILED) {
        return ROUTE_TRY_PRIMARY;
    }
    s->route.wait_deadline_us = 0;
    return ROUTE_TRY_ROUTE;
}

/* ---- start -------------------------------------------------------------------------------- */

int route_try(struct session *s, struct unit *u)
{
    struct route *r = &s->route;
    struct mirror *m = &s->mirror;
    if (!u->routable || u->reads == 0 || !u->defer_fwd || u->mirrored ||
        mirror_primary_unit(m) != u) {
        return 0;
    }
    struct route_choice c;
    switch (route_choose(s, u, &c)) {
    case ROUTE_TRY_PRIMARY:
        return 0;
    case ROUTE_TRY_WAIT:
        return 2;
    default:
        break;
    }
    const struct dials *d = &s->dials->d;
    mirror_take_building(m);
    r->active = true;
    r->serve = r->initial_serve = c.serve;
    r->shadowed = c.shadow;
    r->forced = c.forced;
    r->streaming = c.serve == s->primary;
    r->client_done = r->fell_back = r->held_complete = false;
    r->await_compare =
        c.shadow && c.serve != s->primary && d->on_read_divergence == ON_DIVERGENCE_SERVE_PRIMARY;
    r->serial = u->serial;
    r->fingerprint = u->fingerprint;
    r->sql = u->sql;
    u->sql = NULL;
    wbuf_reset(&r->bytes);
    wbuf_put_bytes(&r->bytes, u->bytes.data, u->bytes.len);
    mirror_unit_free(u);
    if (r->bytes.failed) {
        session_end(s, END_OUT_OF_MEMORY, NULL);
        return -1;
    }
    session_place_objects(s, r->serial,
                          (uint8_t)((1u << c.serve) | (c.shadow ? 1u << dial_other(c.serve) : 0)));
    uint64_t now = clock_monotonic_us();
    if (c.serve != s->primary && !c.forced) {
        r->deadline_serve_us = now + (uint64_t)d->read_timeout_ms * 1000u;
    }
    if (c.shadow) {
        r->deadline_shadow_us = now + (uint64_t)d->shadow_timeout_ms * 1000u;
    }
    if (route_run_start(s, c.serve, ROUTE_SEG_SERVE) < 0 && s->state != SESSION_READY) {
        return -1;
    }
    if (c.shadow && s->state == SESSION_READY && r->active && !r->side[dial_other(c.serve)].lost) {
        route_run_start(s, dial_other(c.serve), ROUTE_SEG_SHADOW);
    }
    if (s->state != SESSION_READY) {
        return -1;
    }
    route_arm_timer(s);
    route_maybe_finish(s);
    return 1;
}

/* proxy/session/session.c: session lifetime: accept, client I/O dispatch, the one exit, freeing. */
#include "proxy/session/session.h"

#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

#include "config/dials.h"
#include "protocol/pqproto.h"
#include "protocol/scram.h"
#include "proxy/log.h"
#include "proxy/server.h"
#include "proxy/session/cancel.h"
#include "proxy/session/tls.h"
#include "proxy/worker.h"

static const char *const state_names[] = {
#define X(n) #n,
    SESSION_STATES(X)
#undef X
};

static const struct {
    const char *sqlstate;
    const char *text;
} end_reasons[] = {
#define X(n, code, text) {code, text},
    END_REASONS(X)
#undef X
};

const char *session_state_name(enum session_state st)
{
    return state_names[st];
}

void session_set_state(struct session *s, enum session_state to)
{
    SLOG_DEBUG(s, "state %s -> %s", state_names[s->state], state_names[to]);
    s->state = to;
}

static void session_free(struct session *s)
{
    for (int i = 0; i < 2; i++) {
        outcome_reader_free(&s->backends[i].rd);
        backend_free(&s->backends[i]);
    }
    mirror_free(&s->mirror);
    route_free(s);
    session_free_maps(s);
    pin_catalog_free(&s->pin);
    SSL_free(s->client.ssl); /* before the fd it works on is closed */
    s->client.ssl = NULL;
    if (s->client.fd >= 0) {
        close(s->client.fd);
    }
    endpoint_free(&s->client);
    wbuf_free(&s->startup);
    wbuf_free(&s->client_msg);
    wbuf_free(&s->to_primary);
    wbuf_free(&s->gate_rest);
    wbuf_free(&s->out);
    free(s->admin_rest);
    scram_server_free(s->scram);
    dials_snapshot_unref(s->dials);
    server_conf_unref(s->conf);
    free(s);
}

void session_unref(struct session *s)
{
    if (--s->refs == 0) {
        session_free(s);
    }
}

static void on_handle_closed(uv_handle_t *h)
{
    session_unref(h->data);
}

/* Backend endpoints carry their backend in data. */
void session_backend_handle_closed(uv_handle_t *h)
{
    struct backend *b = h->data;
    b->ep_closing = false;
    session_unref(b->session);
}

int session_flush_out(struct session *s)
{
    if (s->out.failed) {
        wbuf_reset(&s->out);
        session_end(s, END_OUT_OF_MEMORY, NULL);
        return -1;
    }
    int rc = endpoint_send(&s->client, s->out.data, s->out.len);
    wbuf_reset(&s->out);
    if (rc < 0) {
        session_end(s, END_CLIENT_EOF, uv_strerror(rc));
        return -1;
    }
    return 0;
}

static void send_fatal(struct session *s, const char *sqlstate, const char *text,
                       const char *detail)
{
    char msg[1024];
    if (detail) {
        snprintf(msg, sizeof(msg), "%s: %s", text, detail);
    } else {
        snprintf(msg, sizeof(msg), "%s", text);
    }
    wbuf_reset(&s->out);
    wire_put_error(&s->out, "FATAL", sqlstate, msg);
    if (!s->out.failed) {
        /* Best effort: whatever the kernel takes now; the session is going away. */
        if (endpoint_send(&s->client, s->out.data, s->out.len) == 0 &&
            endpoint_flush(&s->client) < 0) {
            SLOG_DEBUG(s, "the FATAL did not reach the client");
        }
    }
    wbuf_reset(&s->out);
}

void session_end(struct session *s, enum session_end_reason why, const char *detail)
{
    if (s->state == SESSION_CLOSING) {
        return;
    }
    struct worker *w = s->worker;
    struct server *srv = w->server;
    const char *code = end_reasons[why].sqlstate;
    bool backend_said_it = why == END_BACKEND_LOST && s->backends[s->primary].sent_fatal;
    if (code && !backend_said_it && s->state != SESSION_TLS) {
        send_fatal(s, code, end_reasons[why].text, detail);
    }
    if (s->client.ssl && s->state != SESSION_TLS && endpoint_pending(&s->client) == 0 &&
        !s->client.discard) {
        ERR_clear_error();
        (void)SSL_shutdown(s->client.ssl); /* best effort close_notify; no wait for the peer's */
        ERR_clear_error();
    }
    if (why != END_CLIENT_EOF && why != END_CLIENT_TERMINATE && why != END_CANCEL_DONE) {
        SLOG_INFO(s, "closing: %s%s%s", end_reasons[why].text, detail ? ": " : "",
                  detail ? detail : "");
    }
    if (why == END_PROTOCOL) {
        stats_add(&w->stats, STAT_protocol_errors_total, 1);
    }
    if (s->state == SESSION_READY) {
        const char *lost = session_work_at_stake(s);
        if (lost) {
            /* Closing the backends now may leave a write on one side only. */
            SLOG_INFO(s,
                      "closing (%s) with mirrored work unfinished: %s: the secondary is out "
                      "of sync",
                      end_reasons[why].text, lost);
            server_secondary_diverged(srv, lost);
        }
        mirror_session_closing(s);
    }
    session_set_state(s, SESSION_CLOSING);
    session_track_busy(s);
    worker_remove_session(w, s);
    if (s->cancel) {
        cancel_unregister(srv->cancels, s->cancel);
        s->cancel = NULL;
    }
    if (s->reserved) {
        atomic_fetch_sub(&srv->reserved_now, 1);
        s->reserved = false;
    }
    if (s->counted) {
        atomic_fetch_sub(&srv->clients_now, 1);
        stats_add(&w->stats, STAT_sessions_active, -1);
        s->counted = false;
    }
    if (s->client.poll_open) {
        endpoint_close(&s->client, on_handle_closed);
    }
    if (s->timer_open) {
        s->timer_open = false;
        uv_close((uv_handle_t *)&s->timer, on_handle_closed);
    }
    session_linger_close(s);
    for (int i = 0; i < 2; i++) {
        backend_close_handles(&s->backends[i], session_backend_handle_closed);
    }
    session_unref(s); /* the session's own reference */
}

/* The client is gone: a relaying session first finishes the work in flight (session_linger.c). */
static void client_lost(struct session *s, enum session_end_reason why, const char *detail)
{
    if (s->state != SESSION_READY) {
        session_end(s, why, detail);
        return;
    }
    session_client_gone(s, why, detail);
    session_relay_after_event(s);
}

/* One step of the client's TLS handshake (SSLRequest answered 'S'); then the startup packet. */
static void client_tls_step(struct session *s)
{
    char err[256];
    int rc = endpoint_tls_accept(&s->client, err, sizeof(err));
    if (rc == 0) {
        return;
    }
    if (rc < 0) {
        stats_add(&s->worker->stats, STAT_tls_handshake_failures_total, 1);
        session_end(s, END_TLS_FAILED, err);
        return;
    }
    stats_add(&s->worker->stats, STAT_tls_clients_total, 1);
    if (log_enabled(LOG_DEBUG)) {
        char peer[256];
        tls_peer_subject(s->client.ssl, peer, sizeof(peer));
        SLOG_DEBUG(s, "TLS %s %s%s%s", SSL_get_version(s->client.ssl),
                   SSL_get_cipher_name(s->client.ssl), peer[0] ? ", client certificate " : "",
                   peer);
    }
    wbuf_reset(&s->startup);
    session_set_state(s, SESSION_STARTUP);
}

static void on_client_io(uv_poll_t *h, int status, int events)
{
    struct session *s = h->data;
    if (s->client_gone) {
        return;
    }
    if (status < 0) {
        client_lost(s, END_CLIENT_EOF, uv_strerror(status));
        return;
    }
    if (s->state == SESSION_TLS) {
        client_tls_step(s);
        return;
    }
    if ((events & UV_WRITABLE) && s->state != SESSION_CLOSING) {
        if (endpoint_flush(&s->client) < 0) {
            client_lost(s, END_CLIENT_EOF, "write failed");
            return;
        }
        struct backend *b = &s->backends[s->primary];
        if (b->up && !b->ep.want_read && !s->mirror.holding &&
            endpoint_pending(&s->client) < RELAY_LOW_WATER) {
            endpoint_want_read(&b->ep, true); /* back-pressure released */
        }
        route_client_drained(s);
    }
    if (!endpoint_readable(&s->client, events) || s->state == SESSION_CLOSING) {
        return;
    }
    if (s->drain_close || s->gated) {
        endpoint_want_read(&s->client, false); /* draining, or a message waits at the gate */
        return;
    }
    struct worker *w = s->worker;
    ssize_t n = endpoint_read(&s->client, w->rbuf, sizeof(w->rbuf));
    if (n == UV_EAGAIN) {
        return;
    }
    if (n <= 0) {
        bool mid_message = s->state == SESSION_READY && !wire_scanner_at_boundary(&s->client_scan);
        client_lost(s, mid_message ? END_PROTOCOL : END_CLIENT_EOF,
                    mid_message ? "connection closed inside a message" : NULL);
        return;
    }
    stats_add(&w->stats, STAT_bytes_from_clients, n);
    switch (s->state) {
    case SESSION_STARTUP:
    case SESSION_AUTH:
        session_on_client_startup(s, w->rbuf, (size_t)n);
        return;
    case SESSION_READY:
        session_on_client_relay(s, w->rbuf, (size_t)n);
        session_relay_after_event(s);
        return;
    case SESSION_ADMIN:
        admin_on_client_data(s, w->rbuf, (size_t)n);
        return;
    case SESSION_TLS:
    case SESSION_CONNECTING:
    case SESSION_CLOSING:
        return;
    }
}

static void on_login_timeout(uv_timer_t *t)
{
    struct session *s = t->data;
    if (s->state == SESSION_CONNECTING && s->backends[s->primary].up) {
        /* Only the secondary is late: it is not the client's business. */
        session_backend_failed(s, &s->backends[s->primary ^ 1],
                               "backend_connect_timeout_ms expired");
        return;
    }
    if (s->state == SESSION_STARTUP || s->state == SESSION_TLS || s->state == SESSION_AUTH ||
        s->state == SESSION_CONNECTING) {
        session_end(s, s->state == SESSION_CONNECTING ? END_BACKEND_CONNECT : END_LOGIN_TIMEOUT,
                    s->state == SESSION_CONNECTING ? "backend_connect_timeout_ms expired" : NULL);
    }
}

void session_arm_login_timer(struct session *s, int ms)
{
    if (s->timer_open) {
        uv_timer_start(&s->timer, on_login_timeout, (uint64_t)ms, 0);
    }
}

static uint32_t random_u32(void)
{
    uint32_t v = 0;
    while (getrandom(&v, sizeof(v), 0) != sizeof(v)) {
    }
    return v;
}

void session_accept(struct worker *w, int fd)
{
    struct server *srv = w->server;
    struct session *s = calloc(1, sizeof(*s));
    if (!s) {
        close(fd);
        return;
    }
    s->worker = w;
    s->refs = 1;
    s->client.fd = -1;
    s->id = atomic_fetch_add(&srv->next_session_id, 1);
    s->cancel_secret = random_u32();
    s->primary = DIAL_OLD;
    mirror_init(&s->mirror);
    route_init(s);
    s->busy_on = -1;
    s->cancel_targets = 0xff; /* nothing published yet */
    s->dials = dials_snapshot_ref(w->dials);
    s->conf = server_conf_ref(w->conf);
    for (int i = 0; i < 2; i++) {
        s->backends[i].session = s;
        s->backends[i].which = i;
        s->backends[i].ep.fd = -1;
    }
    if (endpoint_open(&s->client, &w->loop, fd, NULL, on_client_io, s) < 0) {
        close(fd);
        dials_snapshot_unref(s->dials);
        server_conf_unref(s->conf);
        free(s);
        return;
    }
    s->refs++;
    worker_add_session(w, s);
    stats_add(&w->stats, STAT_clients_total, 1);
    stats_add(&w->stats, STAT_sessions_active, 1);
    s->counted = true;
    int now = atomic_fetch_add(&srv->clients_now, 1) + 1;
    s->over_limit = now > s->conf->cfg.max_client_conn;
    uv_timer_init(&w->loop, &s->timer);
    s->timer.data = s;
    s->timer_open = true;
    s->refs++;
    session_arm_login_timer(s, s->conf->cfg.client_login_timeout_ms);
}

void session_at_txn_boundary(struct session *s)
{
    if (s->backends[s->primary].txn_status == PQ_TXN_IDLE) {
        route_txn_ended(s);
    }
    if (s->worker->draining && s->backends[s->primary].txn_status == PQ_TXN_IDLE) {
        s->drain_close = true;
        endpoint_want_read(&s->client, false);
    }
}

bool session_drain_ready(const struct session *s)
{
    switch (s->state) {
    case SESSION_STARTUP:
    case SESSION_TLS:
    case SESSION_AUTH:
    case SESSION_CONNECTING:
    case SESSION_ADMIN:
        return true; /* no transaction to finish */
    case SESSION_CLOSING:
        return false;
    case SESSION_READY:
        break;
    }
    if (s->client_gone) {
        return false; /* it ends by itself once its work is finished (session_linger.c) */
    }
    const struct mirror *m = &s->mirror;
    if (s->backends[s->primary].txn_status != PQ_TXN_IDLE || m->building || m->holding ||
        s->route.active || endpoint_pending(&s->client) > 0) {
        return false;
    }
    for (const struct unit *u = m->head; u; u = u->next) {
        if (!u->prim_done || u->sec == UNIT_SEC_PENDING || u->sec == UNIT_SEC_SENT) {
            return false; /* a statement still running on the primary or the secondary */
        }
    }
    return true;
}

void session_track_busy(struct session *s)
{
    const struct mirror *m = &s->mirror;
    bool busy =
        s->state == SESSION_READY && !s->listens &&
        (m->prim_status != PQ_TXN_IDLE || m->head || m->holding || m->wrap_open || s->route.active);
    struct worker *w = s->worker;
    bool without = s->state == SESSION_READY && !m->secondary_up;
    if (without != s->without_counted) {
        atomic_fetch_add(&w->server->sessions_without_secondary, without ? 1 : -1);
        s->without_counted = without;
    }
    int lag = s->state == SESSION_READY && m->secondary_up ? m->in_flight : 0;
    if (lag != s->lag_counted) {
        int cur = atomic_load_explicit(&w->lag_units, memory_order_relaxed);
        atomic_store_explicit(&w->lag_units, cur + lag - s->lag_counted, memory_order_relaxed);
        s->lag_counted = lag;
    }
    int now = busy ? s->primary : -1;
    if (now == s->busy_on) {
        return;
    }
    if (s->busy_on >= 0) {
        _Atomic int *c = &w->busy_on[s->busy_on];
        int left = atomic_load_explicit(c, memory_order_relaxed) - 1;
        atomic_store_explicit(c, left, memory_order_relaxed);
        /* Sessions waiting to switch primary wait for this count (over all workers) to reach 0. */
        if (left == 0 && w->dials->d.primary != s->busy_on) {
            server_post_gates(w->server);
        }
    }
    if (now >= 0) {
        _Atomic int *c = &w->busy_on[now];
        atomic_store_explicit(c, atomic_load_explicit(c, memory_order_relaxed) + 1,
                              memory_order_relaxed);
    }
    s->busy_on = now;
}

void session_publish_cancel_targets(struct session *s)
{
    if (!s->cancel) {
        return;
    }
    const struct mirror *m = &s->mirror;
    int sec = s->primary ^ 1;
    /* Once the primary answered a wrapped write, it runs nothing of the client's until pgdual's
     * COMMIT/ROLLBACK ended the wrap (the client's next message waits at the gate): a cancel
     * there could only hit pgdual's COMMIT, leaving the write on new alone. */
    uint8_t t = m->wrap_open && m->wrap_prim_done ? 0 : (uint8_t)(1u << s->primary);
    if (s->state == SESSION_READY && m->secondary_up) {
        /* In lockstep the secondary usually runs a unit the primary already finished (the client
         * may have its answer): cancelling it there would lose a write on new alone. */
        const struct unit *pu = mirror_primary_unit(m);
        const struct unit *su = mirror_secondary_unit(m);
        if ((su && su == pu) || route_owns(s, sec)) {
            t |= (uint8_t)(1u << sec);
        }
    }
    if (t != s->cancel_targets) {
        s->cancel_targets = t;
        cancel_set_targets(s->cancel, t);
    }
}

void session_refresh_dials(struct session *s)
{
    struct dials_snapshot *cur = s->worker->dials;
    if (s->dials != cur) {
        dials_snapshot_unref(s->dials);
        s->dials = dials_snapshot_ref(cur);
    }
}

int session_capture_body(void *ctx, const uint8_t *p, size_t n)
{
    struct session *s = ctx;
    wbuf_put_bytes(&s->client_msg, p, n);
    return s->client_msg.failed ? -1 : 0;
}

int session_capture_end(void *ctx)
{
    (void)ctx;
    return 1; /* one message at a time: handling it may change the session's state */
}

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
#include "proxy/log.h"
#include "proxy/server.h"
#include "proxy/session.h"
#include "proxy/worker.h"

/* Stop reading a peer while the other side has more than this queued; resume below LOW. */
#define RELAY_HIGH_WATER        (256 * 1024)
#define RELAY_LOW_WATER         (64 * 1024)
#define BACKEND_CAPTURE_MAX     8192
#define BACKEND_READS_PER_EVENT 8
/* Per-session secondary lag bound: units the secondary has not finished. */
#define MIRROR_MAX_LAG          64
#define STMT_MAP_MAX            100000
#define RELAY_STOP_TERMINATE    1
#define RELAY_STOP_HOLD         2
#define RELAY_STOP_RFQ          3

/* ---- statement and portal classes ------------------------------------------------------ */

static struct stmt_class *map_find(struct stmt_map *m, const char *name)
{
    for (size_t i = 0; i < m->n; i++) {
        if (strcmp(m->v[i].name, name) == 0) {
            return &m->v[i];
        }
    }
    return NULL;
}

static int map_put(struct stmt_map *m, const char *name, const struct stmt_class *c,
                   const char *sql)
{
    struct stmt_class *e = map_find(m, name);
    if (!e) {
        if (m->n == STMT_MAP_MAX) {
            return -1;
        }
        if (m->n == m->cap) {
            size_t cap = m->cap ? m->cap * 2 : 8;
            struct stmt_class *v = realloc(m->v, cap * sizeof(*v));
            if (!v) {
                return -1;
            }
            m->v = v;
            m->cap = cap;
        }
        e = &m->v[m->n++];
        memset(e, 0, sizeof(*e));
        e->name = strdup(name);
        if (!e->name) {
            m->n--;
            return -1;
        }
    }
    free(e->sql);
    e->mirrored = c->mirrored;
    e->nondeterministic = c->nondeterministic;
    e->fingerprint = c->fingerprint;
    e->sql = sql ? strndup(sql, 4096) : NULL;
    return 0;
}

static void map_free(struct stmt_map *m)
{
    for (size_t i = 0; i < m->n; i++) {
        free(m->v[i].name);
        free(m->v[i].sql);
    }
    free(m->v);
    memset(m, 0, sizeof(*m));
}

void session_free_maps(struct session *s)
{
    map_free(&s->stmts);
    map_free(&s->portals);
}

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

static void unit_note_sql(struct unit *u, const char *sql, uint64_t fingerprint)
{
    if (!u->sql) {
        u->sql = strndup(sql, 4096);
        u->fingerprint = fingerprint;
    }
}

/* Classify sql into c; when in doubt, mirror. */
static void relay_classify(struct session *s, const char *sql, struct stmt_class *c)
{
    struct classify_result r;
    memset(c, 0, sizeof(*c));
    c->sql = NULL;
    if (classify_cached(s->worker->classify, sql, &s->worker->classify_opts, &r) < 0) {
        c->mirrored = true;
        return;
    }
    c->mirrored = r.kind != CLASSIFY_READ;
    c->nondeterministic = r.nondeterministic;
    c->fingerprint = r.fingerprint;
}

static void on_query(struct session *s, struct unit *u, const char *sql)
{
    struct classify_result r;
    if (classify_cached(s->worker->classify, sql, &s->worker->classify_opts, &r) < 0) {
        r.kind = CLASSIFY_MIRROR;
        r.nondeterministic = r.is_listen = r.is_copy_from = false;
        r.txn = CLASSIFY_TXN_NONE;
        r.fingerprint = 0;
    }
    u->mirrored = r.kind != CLASSIFY_READ && !(r.is_listen && r.nstatements == 1);
    u->nondeterministic = u->mirrored && r.nondeterministic;
    u->txn_end = r.txn_control; /* parallel mode never sends these ahead of the primary */
    u->copy_in = r.is_copy_from;
    unit_note_sql(u, sql, r.fingerprint);
}

static void on_parse(struct session *s, struct unit *u, struct wire_reader *rd)
{
    const char *name = wire_cstr(rd);
    const char *sql = wire_cstr(rd);
    if (!name || !sql) {
        u->mirrored = true;
        return;
    }
    struct stmt_class c;
    relay_classify(s, sql, &c);
    if (map_put(&s->stmts, name, &c, sql) < 0) {
        c.mirrored = true;
    }
    /* A named statement must exist on both sides; so must anything that writes. */
    if (name[0] || c.mirrored) {
        u->mirrored = true;
        unit_note_sql(u, sql, c.fingerprint);
    }
}

static void on_bind(struct session *s, struct unit *u, struct wire_reader *rd)
{
    const char *portal = wire_cstr(rd);
    const char *stmt = wire_cstr(rd);
    struct stmt_class *c = stmt ? map_find(&s->stmts, stmt) : NULL;
    struct stmt_class unknown = {.mirrored = true};
    if (!portal || map_put(&s->portals, portal, c ? c : &unknown, c ? c->sql : NULL) < 0) {
        u->mirrored = true;
    }
}

static void on_execute(struct session *s, struct unit *u, struct wire_reader *rd)
{
    const char *portal = wire_cstr(rd);
    struct stmt_class *c = portal ? map_find(&s->portals, portal) : NULL;
    stats_add(&s->worker->stats, STAT_statements_total, 1);
    if (!c || c->mirrored) {
        u->mirrored = true;
        u->nondeterministic = u->nondeterministic || (c && c->nondeterministic);
        if (c && c->sql) {
            unit_note_sql(u, c->sql, c->fingerprint);
        }
    }
}

/* One whole frontend message (header included) is in s->client_msg. */
static int frontend_message(struct session *s)
{
    const uint8_t *msg = s->client_msg.data;
    size_t len = s->client_msg.len;
    uint8_t type = msg[0];
    if (type == PqMsg_CopyData || type == PqMsg_CopyDone || type == PqMsg_CopyFail) {
        mirror_copy_data(s, msg, len);
        return 0;
    }
    if (type == PqMsg_Terminate) {
        return RELAY_STOP_TERMINATE;
    }
    if (!s->mirror.building) {
        session_refresh_dials(s); /* a statement boundary */
    }
    struct unit *u = mirror_building(&s->mirror);
    if (!u) {
        return -1;
    }
    wbuf_put_bytes(&u->bytes, msg, len);
    struct wire_reader rd;
    wire_reader_init(&rd, msg + 5, len - 5);
    switch (type) {
    case PqMsg_Query:
        stats_add(&s->worker->stats, STAT_statements_total, 1);
        if (len < 6 || msg[len - 1] != '\0') {
            return -1;
        }
        on_query(s, u, (const char *)msg + 5);
        mirror_seal(s);
        return 0;
    case PqMsg_Parse:
        on_parse(s, u, &rd);
        return 0;
    case PqMsg_Bind:
        on_bind(s, u, &rd);
        return 0;
    case PqMsg_Execute:
        on_execute(s, u, &rd);
        return 0;
    case PqMsg_Close:
        u->mirrored = true;
        return 0;
    case PqMsg_FunctionCall:
        stats_add(&s->worker->stats, STAT_statements_total, 1);
        u->mirrored = true;
        mirror_seal(s);
        return 0;
    case PqMsg_Sync:
        mirror_seal(s);
        return 0;
    default: /* Describe, Flush */
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
    } else if (under && !s->client.want_read && s->state == SESSION_READY) {
        endpoint_want_read(&s->client, true);
    }
}

void session_on_client_relay(struct session *s, const uint8_t *p, size_t n)
{
    size_t used = 0;
    int rc = wire_scan_feed(&s->client_scan, p, n, &frontend_ops, s, &used);
    if (rc < 0) {
        char detail[96];
        if (rc == WIRE_EBADLEN) {
            snprintf(detail, sizeof(detail), "invalid message length (max_message_bytes is %u)",
                     s->client_scan.max_len);
        } else {
            snprintf(detail, sizeof(detail), "invalid or malformed frontend message 0x%02x",
                     s->client_type ? s->client_type : s->client_scan.hdr[0]);
        }
        session_end(s, END_PROTOCOL, detail);
        return;
    }
    if (rc == RELAY_STOP_TERMINATE) {
        session_end(s, END_CLIENT_TERMINATE, NULL);
        return;
    }
    struct backend *b = &s->backends[s->primary];
    if (endpoint_send(&b->ep, p, used) < 0) {
        session_end(s, END_BACKEND_LOST, "write to the primary failed");
        return;
    }
    client_backpressure(s);
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
    (void)len;
    b->cur_type = type;
    b->capture = type == PqMsg_ReadyForQuery || type == PqMsg_ErrorResponse;
    if (b->capture) {
        wbuf_reset(&b->msg);
    }
    struct unit *u =
        is_primary(b) ? mirror_primary_unit(&s->mirror) : mirror_secondary_unit(&s->mirror);
    b->cur_unit = u && u->mirrored ? u : NULL;
    if (b->cur_unit) {
        outcome_begin(&b->rd, type);
    }
    return 0;
}

static int backend_body(void *ctx, const uint8_t *p, size_t n)
{
    struct backend *b = ctx;
    if (b->capture && b->msg.len + n <= BACKEND_CAPTURE_MAX) {
        wbuf_put_bytes(&b->msg, p, n);
    }
    if (b->cur_unit) {
        outcome_body(&b->rd, p, n);
    }
    return 0;
}

static int backend_end(void *ctx)
{
    struct backend *b = ctx;
    struct session *s = b->session;
    if (b->cur_unit) {
        outcome_end(&b->rd, is_primary(b) ? &b->cur_unit->prim : &b->cur_unit->second);
        b->cur_unit = NULL;
    }
    if (!b->capture || b->msg.failed) {
        return 0;
    }
    if (b->cur_type == PqMsg_ErrorResponse) {
        struct wire_error_fields f;
        if (wire_parse_error(b->msg.data, b->msg.len, &f) == 0 && f.severity &&
            (strcmp(f.severity, "FATAL") == 0 || strcmp(f.severity, "PANIC") == 0)) {
            b->sent_fatal = true;
        }
        return 0;
    }
    if (b->cur_type != PqMsg_ReadyForQuery || b->msg.len != 1) {
        return 0;
    }
    b->txn_status = b->msg.data[0];
    if (!is_primary(b)) {
        mirror_secondary_done(s);
        return 0;
    }
    session_at_txn_boundary(s);
    return mirror_primary_done(s, b->txn_status) ? RELAY_STOP_HOLD : RELAY_STOP_RFQ;
}

static const struct wire_scan_ops backend_ops = {backend_begin, backend_body, backend_end};

static void backend_lost(struct session *s, struct backend *b, const char *why)
{
    stats_add(&s->worker->stats, STAT_backend_failures_total, 1);
    if (!is_primary(b)) {
        mirror_secondary_lost(s, why);
        return;
    }
    SLOG_INFO(s, "%s backend: %s", b->which == DIAL_OLD ? "old" : "new", why);
    session_end(s, END_BACKEND_LOST, b->which == DIAL_OLD ? "old database" : "new database");
}

static int send_client(struct session *s, const uint8_t *p, size_t n)
{
    stats_add(&s->worker->stats, STAT_bytes_to_clients, (int64_t)n);
    if (n > 0 && endpoint_send(&s->client, p, n) < 0) {
        session_end(s, END_CLIENT_EOF, "write to the client failed");
        return -1;
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

/* Relay primary bytes to the client, one unit's reply (up to its ReadyForQuery) at a time:
 * a mirrored unit's reply is held while commit_wait may apply; a ReadyForQuery that must wait
 * for the secondary stops the relay (the rest is kept, unscanned). 1 = holding. */
static int relay_primary_bytes(struct session *s, struct backend *b, const uint8_t *p, size_t n)
{
    struct mirror *m = &s->mirror;
    while (n > 0) {
        struct unit *u = mirror_primary_unit(m);
        /* Not a COPY (the client must see CopyInResponse) nor an unsealed batch (a client
         * waiting after Flush must see its results). */
        bool candidate = u && u->mirrored && u->sealed && !u->copy_in && m->secondary_up &&
                         s->dials->d.commit_wait == COMMIT_WAIT_BOTH;
        size_t used = 0;
        int rc = wire_scan_feed(&b->scan, p, n, &backend_ops, b, &used);
        if (rc < 0) {
            backend_lost(s, b, "malformed message from the backend");
            return -1;
        }
        if (s->state != SESSION_READY) {
            return -1;
        }
        if (candidate && m->held.len + used <= MIRROR_HOLD_MAX) {
            wbuf_put_bytes(&m->held, p, used);
        } else if (flush_held(s) < 0 || send_client(s, p, used) < 0) {
            return -1;
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
        if (rc == RELAY_STOP_RFQ && flush_held(s) < 0) {
            return -1;
        }
    }
    return 0;
}

void session_release_held_rfq(struct session *s)
{
    struct mirror *m = &s->mirror;
    if (!m->holding || s->state != SESSION_READY) {
        return;
    }
    m->holding = false;
    if (flush_held(s) < 0) {
        return;
    }
    struct backend *b = &s->backends[s->primary];
    struct wbuf rest = m->held_rest;
    wbuf_init(&m->held_rest);
    int rc = rest.len ? relay_primary_bytes(s, b, rest.data, rest.len) : 0;
    wbuf_free(&rest);
    if (rc == 0 && endpoint_pending(&s->client) < RELAY_HIGH_WATER) {
        endpoint_want_read(&b->ep, true);
    }
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
        size_t used = 0;
        if (wire_scan_feed(&b->scan, w->rbuf, (size_t)n, &backend_ops, b, &used) < 0) {
            backend_lost(s, b, "malformed message from the secondary");
            return;
        }
        if ((size_t)n < sizeof(w->rbuf)) {
            break;
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
        return;
    }
    if (events & UV_WRITABLE) {
        if (endpoint_flush(&b->ep) < 0) {
            backend_lost(s, b, "write failed");
            return;
        }
        client_backpressure(s);
    }
    if ((events & UV_READABLE) && b->up && s->state == SESSION_READY) {
        session_on_backend_readable(b);
    }
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
        s->cancel = cancel_register(srv->cancels, s->id, s->cancel_secret);
    }
    if (s->cancel) {
        cancel_set_key(srv->cancels, s->cancel, b->which, PQgetCancel(b->conn));
    }
    if (!is_primary(b)) {
        s->mirror.secondary_up = true;
    }
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
    server_secondary_lagging(s->worker->server);
    b->up = false;
    backend_close_handles(b, session_backend_handle_closed);
    if (s->state == SESSION_CONNECTING && --s->logins_pending == 0) {
        finish_login(s);
    }
}

/* proxy/session_relay.c: the data path once logged in: frontend bytes are framed, checked and
 * forwarded to the primary; backend bytes are framed (to track transaction state and FATALs)
 * and forwarded to the client as they arrive, with back-pressure in both directions. */
#include <string.h>

#include "config/dials.h"
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

/* ---- frontend -> backend ----------------------------------------------------------------- */

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

#define RELAY_STOP_TERMINATE 1

static int frontend_begin(void *ctx, uint8_t type, uint32_t len)
{
    struct session *s = ctx;
    (void)len;
    if (!frontend_type_valid(type)) {
        return -1;
    }
    s->client_type = type;
    if (type == PqMsg_Query || type == PqMsg_Execute || type == PqMsg_FunctionCall) {
        stats_add(&s->worker->stats, STAT_statements_total, 1);
    }
    return type == PqMsg_Terminate ? RELAY_STOP_TERMINATE : 0;
}

static const struct wire_scan_ops frontend_ops = {frontend_begin, NULL, NULL};

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
            snprintf(detail, sizeof(detail), "invalid frontend message type 0x%02x",
                     s->client_scan.hdr[0]);
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
        session_end(s, END_BACKEND_LOST, "write to the backend failed");
        return;
    }
    if (endpoint_pending(&b->ep) > RELAY_HIGH_WATER) {
        endpoint_want_read(&s->client, false);
    }
}

/* ---- backend -> frontend ----------------------------------------------------------------- */

static int backend_begin(void *ctx, uint8_t type, uint32_t len)
{
    struct backend *b = ctx;
    (void)len;
    b->cur_type = type;
    b->capture = type == PqMsg_ReadyForQuery || type == PqMsg_ErrorResponse;
    if (b->capture) {
        wbuf_reset(&b->msg);
    }
    return 0;
}

static int backend_body(void *ctx, const uint8_t *p, size_t n)
{
    struct backend *b = ctx;
    if (b->capture && b->msg.len + n <= BACKEND_CAPTURE_MAX) {
        wbuf_put_bytes(&b->msg, p, n);
    }
    return 0;
}

static int backend_end(void *ctx)
{
    struct backend *b = ctx;
    if (!b->capture || b->msg.failed) {
        return 0;
    }
    if (b->cur_type == PqMsg_ReadyForQuery && b->msg.len == 1) {
        b->txn_status = b->msg.data[0];
    } else if (b->cur_type == PqMsg_ErrorResponse) {
        struct wire_error_fields f;
        if (wire_parse_error(b->msg.data, b->msg.len, &f) == 0 && f.severity &&
            (strcmp(f.severity, "FATAL") == 0 || strcmp(f.severity, "PANIC") == 0)) {
            b->sent_fatal = true;
        }
    }
    return 0;
}

static const struct wire_scan_ops backend_ops = {backend_begin, backend_body, backend_end};

static void backend_lost(struct session *s, struct backend *b, const char *why)
{
    stats_add(&s->worker->stats, STAT_backend_failures_total, 1);
    SLOG_INFO(s, "%s backend: %s", b->which == DIAL_OLD ? "old" : "new", why);
    session_end(s, END_BACKEND_LOST, b->which == DIAL_OLD ? "old database" : "new database");
}

void session_on_backend_readable(struct backend *b)
{
    struct session *s = b->session;
    struct worker *w = s->worker;
    for (int i = 0; i < BACKEND_READS_PER_EVENT && s->state == SESSION_READY; i++) {
        ssize_t n = endpoint_read(&b->ep, w->rbuf, sizeof(w->rbuf));
        if (n == UV_EAGAIN) {
            return;
        }
        if (n <= 0) {
            backend_lost(s, b, n == 0 ? "connection closed" : uv_strerror((int)n));
            return;
        }
        size_t used = 0;
        if (wire_scan_feed(&b->scan, w->rbuf, (size_t)n, &backend_ops, b, &used) < 0) {
            backend_lost(s, b, "malformed message from the backend");
            return;
        }
        stats_add(&w->stats, STAT_bytes_to_clients, n);
        if (endpoint_send(&s->client, w->rbuf, (size_t)n) < 0) {
            session_end(s, END_CLIENT_EOF, "write to the client failed");
            return;
        }
        if (endpoint_pending(&s->client) > RELAY_HIGH_WATER) {
            endpoint_want_read(&b->ep, false); /* resumed by the client's writable event */
            return;
        }
    }
}

static void on_backend_io(uv_poll_t *h, int status, int events)
{
    struct backend *b = h->data;
    struct session *s = b->session;
    if (s->state != SESSION_READY) {
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
        if (!s->client.want_read && endpoint_pending(&b->ep) < RELAY_LOW_WATER) {
            endpoint_want_read(&s->client, true);
        }
    }
    if (events & UV_READABLE) {
        session_on_backend_readable(b);
    }
}

/* ---- login completion -------------------------------------------------------------------- */

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

void session_backend_ready(struct session *s, struct backend *b)
{
    struct server *srv = s->worker->server;
    SSL *ssl = PQsslInUse(b->conn) ? PQsslStruct(b->conn, "OpenSSL") : NULL;
    if (endpoint_open(&b->ep, &s->worker->loop, PQsocket(b->conn), ssl, on_backend_io, b) < 0) {
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
    if (b->which != s->primary) {
        return;
    }
    if (s->timer_open) {
        uv_timer_stop(&s->timer);
    }
    send_login_reply(s, b);
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

void session_backend_failed(struct session *s, struct backend *b, const char *msg)
{
    char detail[512];
    snprintf(detail, sizeof(detail), "%s: %s", b->which == DIAL_OLD ? "old" : "new", msg);
    size_t n = strlen(detail);
    while (n > 0 && (detail[n - 1] == '\n' || detail[n - 1] == ' ')) {
        detail[--n] = '\0';
    }
    stats_add(&s->worker->stats, STAT_backend_failures_total, 1);
    session_end(s, END_BACKEND_CONNECT, detail);
}

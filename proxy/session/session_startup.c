/* proxy/session/session_startup.c: the login phase: untyped startup packets (SSLRequest,
 * GSSENCRequest, CancelRequest, StartupMessage), client authentication (trust or SCRAM-SHA-256),
 * and the start of the backend login. */
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

#include <openssl/ssl.h>
#include <xxhash.h>

#include "config/dials.h"
#include "protocol/pqproto.h"
#include "protocol/scram.h"
#include "proxy/log.h"
#include "proxy/server.h"
#include "proxy/session/auth.h"
#include "proxy/session/cancel.h"
#include "proxy/session/session.h"
#include "proxy/session/tls.h"
#include "proxy/text.h"
#include "proxy/worker.h"

#define AUTH_MAX_MESSAGE          8192
#define ADMIN_DATABASE            "pgdual"
/* How long a login that took an admin_reserved_conn slot may take to authenticate. */
#define RESERVED_LOGIN_TIMEOUT_MS 3000

static uint32_t be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static bool copy_name(char *dst, size_t cap, const char *src)
{
    size_t n = src ? strlen(src) : 0;
    if (n >= cap) {
        return false;
    }
    memcpy(dst, src ? src : "", n + 1);
    return true;
}

static void start_backend_login(struct session *s)
{
    const struct config *cfg = &s->conf->cfg;
    struct wire_startup st;
    if (wire_parse_startup(s->startup.data + 4, s->startup.len - 4, &st) < 0) {
        session_end(s, END_PROTOCOL, "startup packet");
        return;
    }
    session_set_state(s, SESSION_CONNECTING);
    session_arm_login_timer(s, cfg->backend_connect_timeout_ms);
    endpoint_want_read(&s->client, false); /* nothing to read until the backends are up */
    s->primary = s->dials->d.primary;
    bool both = s->dials->d.mirror;
    s->logins_pending = both ? 2 : 1;
    for (int i = 0; i < (both ? 2 : 1) && s->state == SESSION_CONNECTING; i++) {
        struct backend *b = &s->backends[i == 0 ? s->primary : s->primary ^ 1];
        const char *conninfo = b->which == DIAL_OLD ? cfg->backend_old : cfg->backend_new;
        char err[512];
        if (backend_login_start(b, &s->worker->loop, conninfo, &st, err, sizeof(err)) < 0) {
            session_backend_failed(s, b, err);
        }
    }
}

/* The client is authenticated: AuthenticationOk, then the console or the backend login. */
static void client_authenticated(struct session *s)
{
    wire_put_auth(&s->out, AUTH_REQ_OK, NULL, 0);
    if (session_flush_out(s) < 0) {
        return;
    }
    if (strcmp(s->database, ADMIN_DATABASE) == 0) {
        admin_session_start(s);
        return;
    }
    start_backend_login(s);
}

/* Does this login need a password? Always under scram-sha-256; on the console (admin_users,
 * stats_users) too under trust, unless admin_auth_trust says otherwise. */
static bool auth_needs_password(const struct session *s)
{
    const struct config *cfg = &s->conf->cfg;
    if (cfg->auth_type == AUTH_SCRAM) {
        return true;
    }
    return strcmp(s->database, ADMIN_DATABASE) == 0 && !cfg->admin_auth_trust;
}

static void auth_refuse(struct session *s, const char *why)
{
    char user[TEXT_NAME_ESC_MAX], detail[TEXT_NAME_ESC_MAX + 256];
    stats_add(&s->worker->stats, STAT_auth_failures_total, 1);
    snprintf(detail, sizeof(detail), "password authentication failed for user \"%s\"%s",
             text_escape(s->user, user, sizeof(user), TEXT_ESC_QUOTED), why);
    session_end(s, END_AUTH_FAILED, detail);
}

static void begin_auth(struct session *s)
{
    if (!auth_needs_password(s)) {
        client_authenticated(s);
        return;
    }
    const struct scram_secret *secret = auth_table_find(s->conf->auth, s->user);
    s->scram = secret ? scram_server_new(secret) : NULL;
    if (!s->scram) {
        /* Under trust only a console login gets here: say why it has no password. */
        bool console = s->conf->cfg.auth_type == AUTH_TRUST;
        auth_refuse(s, !console         ? ""
                       : !s->conf->auth ? ": the admin console needs a password from auth_file "
                                          "(SCRAM-SHA-256) and no auth_file is loaded"
                                        : ": the admin console needs a password from auth_file "
                                          "(SCRAM-SHA-256) and this user has none there");
        return;
    }
    /* Over TLS, SCRAM-SHA-256-PLUS first, as PostgreSQL: a client that can bind does. */
    static const char plain[] = SCRAM_MECH "\0";
    static const char plus[] = SCRAM_MECH_PLUS "\0" SCRAM_MECH "\0";
    uint8_t cbind[TLS_CBIND_MAX];
    bool offer_plus = s->client.ssl && tls_cbind_data(s->client.ssl, cbind) > 0;
    if (offer_plus) {
        wire_put_auth(&s->out, AUTH_REQ_SASL, plus, sizeof(plus));
    } else {
        wire_put_auth(&s->out, AUTH_REQ_SASL, plain, sizeof(plain));
    }
    if (session_flush_out(s) < 0) {
        return;
    }
    wire_scanner_init(&s->client_scan, AUTH_MAX_MESSAGE);
    session_set_state(s, SESSION_AUTH);
}

/* Beyond max_client_conn, a console login takes one of the admin_reserved_conn slots. */
static bool take_reserved_slot(struct session *s, bool console_user)
{
    struct server *srv = s->worker->server;
    if (!console_user) {
        return false;
    }
    if (atomic_fetch_add(&srv->reserved_now, 1) >= s->conf->cfg.admin_reserved_conn) {
        atomic_fetch_sub(&srv->reserved_now, 1);
        return false;
    }
    s->reserved = true; /* session_end gives it back */
    /* A reserved slot is held before the password is checked: a login that stalls there must
     * not keep the operator out for a whole client_login_timeout_ms. */
    if (s->conf->cfg.client_login_timeout_ms > RESERVED_LOGIN_TIMEOUT_MS) {
        session_arm_login_timer(s, RESERVED_LOGIN_TIMEOUT_MS);
    }
    return true;
}

static void on_startup_message(struct session *s, const struct wire_startup *st)
{
    const char *db = wire_startup_param(st, "database");
    if (!copy_name(s->user, sizeof(s->user), wire_startup_param(st, "user")) ||
        !copy_name(s->database, sizeof(s->database), db && db[0] ? db : s->user) ||
        !copy_name(s->application_name, sizeof(s->application_name),
                   wire_startup_param(st, "application_name"))) {
        session_end(s, END_PROTOCOL, "user, database or application_name too long");
        return;
    }
    /* Sessions that log in alike share what pinning learns of the catalog (pin_session.h). */
    uint64_t sig = 0;
    for (int i = 0; i < st->nparams; i++) {
        if (strcmp(st->names[i], "application_name") != 0) {
            sig = XXH64(st->names[i], strlen(st->names[i]) + 1, sig);
            sig = XXH64(st->values[i], strlen(st->values[i]) + 1, sig);
        }
    }
    s->pin.login_sig = sig;
    if (s->conf->cfg.client_tls_sslmode >= TLS_REQUIRE && !s->client.ssl) {
        session_end(s, END_TLS_REQUIRED, NULL); /* 28000, as pgbouncer and PostgreSQL */
        return;
    }
    const char *repl = wire_startup_param(st, "replication");
    if (repl && strcmp(repl, "false") != 0 && strcmp(repl, "0") != 0) {
        session_end(s, END_REFUSED, "replication connections are not supported by pgdual");
        return;
    }
    const struct config *cfg = &s->conf->cfg;
    bool console = strcmp(s->database, ADMIN_DATABASE) == 0;
    bool admin = console && config_is_admin(cfg, s->user);
    bool stats = console && !admin && config_is_stats(cfg, s->user);
    if (s->over_limit && !take_reserved_slot(s, admin || stats)) {
        session_end(s, END_TOO_MANY, "sorry, too many clients already");
        return;
    }
    if (console && !admin && !stats) {
        session_end(s, END_REFUSED,
                    "user is not in admin_users or stats_users; the admin console is refused");
        return;
    }
    s->admin_readonly = stats;
    begin_auth(s);
}

/* SSLRequest: 'N' without client TLS, else 'S' and the handshake (session.c drives it). */
static void on_ssl_request(struct session *s)
{
    wbuf_reset(&s->startup);
    if (s->ssl_asked || s->client.ssl) {
        session_end(s, END_PROTOCOL, "unexpected SSLRequest");
        return;
    }
    s->ssl_asked = true;
    SSL_CTX *ctx = s->conf->tls;
    if (!ctx) {
        if (endpoint_send(&s->client, "N", 1) < 0) {
            session_end(s, END_CLIENT_EOF, NULL);
        }
        return;
    }
    /* Bytes behind the SSLRequest were sent before the client saw our 'S': they would be taken as
     * coming from inside TLS though nobody encrypted them (CVE-2021-23214). */
    if (s->startup_trailing) {
        session_end(s, END_PROTOCOL, "received unencrypted data after SSL request");
        return;
    }
    SSL *ssl = SSL_new(ctx);
    if (!ssl || SSL_set_fd(ssl, s->client.fd) != 1) {
        SSL_free(ssl);
        session_end(s, END_OUT_OF_MEMORY, NULL);
        return;
    }
    if (endpoint_send(&s->client, "S", 1) < 0 || endpoint_pending(&s->client) > 0) {
        SSL_free(ssl); /* one byte on a fresh socket: queued only if the client is gone */
        session_end(s, END_CLIENT_EOF, NULL);
        return;
    }
    endpoint_start_tls(&s->client, ssl); /* the session owns ssl from here (session_free) */
    session_set_state(s, SESSION_TLS);
}

/* A whole untyped packet sits in s->startup (length included). */
static void on_startup_packet(struct session *s)
{
    struct wire_startup st;
    if (wire_parse_startup(s->startup.data + 4, s->startup.len - 4, &st) < 0) {
        session_end(s, END_PROTOCOL, "invalid startup packet");
        return;
    }
    switch (st.code) {
    case NEGOTIATE_SSL_CODE:
        on_ssl_request(s);
        return;
    case NEGOTIATE_GSS_CODE:
        /* No GSS encryption: 'N', after which the client may ask for TLS or start in plain. */
        wbuf_reset(&s->startup);
        if (s->gss_asked || s->client.ssl) {
            session_end(s, END_PROTOCOL, "unexpected GSSENCRequest");
            return;
        }
        s->gss_asked = true;
        if (endpoint_send(&s->client, "N", 1) < 0) {
            session_end(s, END_CLIENT_EOF, NULL);
        }
        return;
    case CANCEL_REQUEST_CODE:
        if (cancel_fire(s->worker->server->cancels, &s->worker->loop, st.cancel_pid,
                        st.cancel_secret) == 0) {
            stats_add(&s->worker->stats, STAT_cancels_total, 1);
        }
        session_end(s, END_CANCEL_DONE, NULL);
        return;
    case PG_PROTOCOL_V3:
        on_startup_message(s, &st);
        return;
    default: {
        char detail[128];
        snprintf(detail, sizeof(detail), "unsupported frontend protocol %u.%u: pgdual supports 3.0",
                 st.code >> 16, st.code & 0xffff);
        session_end(s, END_PROTOCOL, detail);
        return;
    }
    }
}

/* Accumulate one untyped packet; returns the bytes taken. */
static size_t startup_consume(struct session *s, const uint8_t *p, size_t n)
{
    size_t need = 4;
    if (s->startup.len >= 4) {
        need = be32(s->startup.data);
    }
    size_t take = need - s->startup.len < n ? need - s->startup.len : n;
    wbuf_put_bytes(&s->startup, p, take);
    if (s->startup.failed) {
        session_end(s, END_OUT_OF_MEMORY, NULL);
        return take;
    }
    if (s->startup.len == 4) {
        uint32_t len = be32(s->startup.data);
        if (len < 8 || len > PQ_MAX_STARTUP_PACKET) {
            session_end(s, END_PROTOCOL, "invalid length of startup packet");
        }
        return take;
    }
    if (s->startup.len >= 4 && s->startup.len == be32(s->startup.data)) {
        s->startup_trailing = take < n;
        on_startup_packet(s);
    }
    return take;
}

static void on_sasl_initial(struct session *s, struct wire_reader *r)
{
    const char *mech = wire_cstr(r);
    uint32_t len = wire_u32(r);
    const uint8_t *data = wire_bytes(r, len == 0xffffffff ? 0 : len);
    uint8_t cbind[TLS_CBIND_MAX];
    int cblen = s->client.ssl ? tls_cbind_data(s->client.ssl, cbind) : -1;
    bool plus = !r->failed && strcmp(mech, SCRAM_MECH_PLUS) == 0;
    if (r->failed || len == 0xffffffff || (strcmp(mech, SCRAM_MECH) != 0 && !(plus && cblen > 0))) {
        session_end(s, END_PROTOCOL,
                    cblen > 0 ? "expected a SCRAM-SHA-256-PLUS or SCRAM-SHA-256 SASLInitialResponse"
                              : "expected a SCRAM-SHA-256 SASLInitialResponse");
        return;
    }
    if (cblen > 0 && scram_server_set_channel_binding(s->scram, cbind, (size_t)cblen, plus) < 0) {
        session_end(s, END_OUT_OF_MEMORY, NULL);
        return;
    }
    const char *reply = NULL;
    int rc = scram_server_first(s->scram, (const char *)data, len, &reply);
    if (rc < 0) {
        if (rc == SCRAM_ECBIND) {
            stats_add(&s->worker->stats, STAT_auth_failures_total, 1);
        }
        session_end(s, rc == SCRAM_ECBIND ? END_AUTH_FAILED : END_PROTOCOL,
                    rc == SCRAM_ECBIND ? "SCRAM channel binding negotiation error"
                                       : "malformed SCRAM client-first-message");
        return;
    }
    wire_put_auth(&s->out, AUTH_REQ_SASL_CONT, reply, strlen(reply));
    if (session_flush_out(s) < 0) {
        return;
    }
}

static void on_sasl_response(struct session *s, const uint8_t *data, size_t len)
{
    const char *reply = NULL;
    int rc = scram_server_final(s->scram, (const char *)data, len, &reply);
    if (rc < 0) {
        if (rc == SCRAM_EAUTH) {
            auth_refuse(s, "");
        } else if (rc == SCRAM_ECBIND) {
            stats_add(&s->worker->stats, STAT_auth_failures_total, 1);
            session_end(s, END_AUTH_FAILED, "SCRAM channel binding check failed");
        } else {
            stats_add(&s->worker->stats, STAT_auth_failures_total, 1);
            session_end(s, END_PROTOCOL, "malformed SCRAM client-final-message");
        }
        return;
    }
    wire_put_auth(&s->out, AUTH_REQ_SASL_FIN, reply, strlen(reply));
    scram_server_free(s->scram);
    s->scram = NULL;
    client_authenticated(s);
}

static int auth_begin(void *ctx, uint8_t type, uint32_t len)
{
    struct session *s = ctx;
    (void)len;
    if (type != PqMsg_SASLResponse) {
        return -1;
    }
    wbuf_reset(&s->client_msg);
    return 0;
}

static const struct wire_scan_ops auth_ops = {auth_begin, session_capture_body,
                                              session_capture_end};

static size_t auth_consume(struct session *s, const uint8_t *p, size_t n)
{
    size_t used = 0;
    int rc = wire_scan_feed(&s->client_scan, p, n, &auth_ops, s, &used);
    if (rc < 0) {
        session_end(s, END_PROTOCOL, "expected a SASL response");
        return used;
    }
    if (rc > 0) {
        /* Take the message out first: from here on client_msg holds only bytes the client sent
         * before the login ended, which the console or the relay replays as its first input. */
        struct wbuf msg = s->client_msg;
        wbuf_init(&s->client_msg);
        struct wire_reader r;
        wire_reader_init(&r, msg.data, msg.len);
        if (!s->sasl_started) {
            s->sasl_started = true;
            on_sasl_initial(s, &r);
        } else {
            on_sasl_response(s, msg.data, msg.len);
        }
        wbuf_free(&msg);
    }
    return used;
}

void session_on_client_startup(struct session *s, const uint8_t *p, size_t n)
{
    size_t off = 0;
    while (off < n) {
        if (s->state == SESSION_STARTUP) {
            off += startup_consume(s, p + off, n - off);
        } else if (s->state == SESSION_AUTH) {
            off += auth_consume(s, p + off, n - off);
        } else {
            break;
        }
    }
    if (off < n && s->state != SESSION_CLOSING) {
        /* A client that sends before ReadyForQuery: keep the bytes for the relay. */
        wbuf_put_bytes(&s->client_msg, p + off, n - off);
        if (s->client_msg.len > AUTH_MAX_MESSAGE || s->client_msg.failed) {
            session_end(s, END_PROTOCOL, "too much data before the login finished");
        }
    }
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
    session_track_busy(s); /* counts it without its secondary, if so */
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
    if (PQgssEncInUse(b->conn)) { /* gssencmode=require in the conninfo */
        session_backend_failed(s, b,
                               "GSS-encrypted backend connections are not supported: "
                               "set gssencmode=disable (the default pgdual uses)");
        return;
    }
    SSL *ssl = PQsslInUse(b->conn) ? PQsslStruct(b->conn, "OpenSSL") : NULL;
    if (outcome_reader_init(&b->rd) < 0 ||
        endpoint_open(&b->ep, &s->worker->loop, PQsocket(b->conn), ssl, session_on_backend_io, b) <
            0) {
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
    session_note_parameter(b, "standard_conforming_strings",
                           PQparameterStatus(b->conn, "standard_conforming_strings"));
    session_note_parameter(b, "client_encoding", PQparameterStatus(b->conn, "client_encoding"));
    if (s->state == SESSION_READY) {
        session_reconnect_ready(s, b); /* the secondary again, for a session relaying */
        return;
    }
    if (!session_is_primary(b)) {
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
    if (session_is_primary(b)) {
        session_end(s, END_BACKEND_CONNECT, detail);
        return;
    }
    if (s->state == SESSION_READY) {
        session_reconnect_failed(s, b, detail);
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

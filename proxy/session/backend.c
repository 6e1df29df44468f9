/* proxy/session/backend.c: a backend login with libpq's non-blocking connect, driven by uv_poll;
 * once logged in, the socket becomes a plain endpoint and libpq leaves the data path. */
#include "proxy/session/backend.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config/conninfo.h"
#include "protocol/pqproto.h"
#include "proxy/log.h"
#include "proxy/session/session.h"

#define BACKEND_MAX_PARAMS 64

/* Keyword/value arrays for PQconnectStartParams; values borrow the conninfo options or the
 * startup packet, except `options`, built here. */
struct login_params {
    const char *keys[BACKEND_MAX_PARAMS + 1];
    const char *vals[BACKEND_MAX_PARAMS + 1];
    int n;
    char options[2048];
};

static void params_add(struct login_params *lp, const char *k, const char *v)
{
    if (lp->n < BACKEND_MAX_PARAMS && v) {
        lp->keys[lp->n] = k;
        lp->vals[lp->n] = v;
        lp->n++;
    }
}

static bool params_has(const struct login_params *lp, const char *k)
{
    for (int i = 0; i < lp->n; i++) {
        if (strcmp(lp->keys[i], k) == 0) {
            return true;
        }
    }
    return false;
}

/* Startup parameters that are not libpq keywords become `-c name=value` in options. */
static void append_guc(struct login_params *lp, const char *name, const char *value)
{
    size_t used = strlen(lp->options);
    char *p = lp->options + used;
    size_t room = sizeof(lp->options) - used;
    int n = snprintf(p, room, "%s-c %s=", used ? " " : "", name);
    if (n < 0 || (size_t)n >= room) {
        return;
    }
    p += n;
    room -= (size_t)n;
    for (const char *v = value; *v && room > 2; v++) {
        if (*v == ' ' || *v == '\\') {
            *p++ = '\\';
            room--;
        }
        *p++ = *v;
        room--;
    }
    *p = '\0';
}

static void params_from_startup(struct login_params *lp, const struct wire_startup *st)
{
    for (int i = 0; i < st->nparams; i++) {
        const char *k = st->names[i], *v = st->values[i];
        if (strcmp(k, "user") == 0 || strcmp(k, "database") == 0) {
            continue;
        }
        if (strcmp(k, "options") == 0) {
            size_t used = strlen(lp->options);
            snprintf(lp->options + used, sizeof(lp->options) - used, "%s%s", used ? " " : "", v);
        } else if (strcmp(k, "application_name") == 0 || strcmp(k, "client_encoding") == 0) {
            if (!params_has(lp, k)) {
                params_add(lp, k, v);
            }
        } else {
            append_guc(lp, k, v);
        }
    }
    if (lp->options[0] && !params_has(lp, "options")) {
        params_add(lp, "options", lp->options);
    }
    const char *user = wire_startup_param(st, "user");
    const char *db = wire_startup_param(st, "database");
    if (!params_has(lp, "user")) {
        params_add(lp, "user", user);
    }
    if (!params_has(lp, "dbname")) {
        params_add(lp, "dbname", db && db[0] ? db : user);
    }
    params_add(lp, "fallback_application_name", "pgdual");
}

static void on_login_io(uv_poll_t *h, int status, int events);

static void login_poll_closed(uv_handle_t *h)
{
    struct session *s = h->data;
    free(h);
    session_unref(s);
}

static void login_poll_drop(struct backend *b)
{
    if (b->login_poll) {
        uv_close((uv_handle_t *)b->login_poll, login_poll_closed);
        b->login_poll = NULL;
    }
}

/* Point the login poll at libpq's current socket with the events it asked for. */
static int login_poll_watch(struct backend *b, PostgresPollingStatusType want)
{
    int fd = PQsocket(b->conn);
    if (fd < 0) {
        return UV_EBADF;
    }
    if (b->login_poll && fd != b->login_fd) {
        login_poll_drop(b); /* libpq moved to another socket (next host, SSL retry) */
    }
    if (!b->login_poll) {
        b->login_poll = malloc(sizeof(*b->login_poll));
        if (!b->login_poll) {
            return UV_ENOMEM;
        }
        int rc = uv_poll_init(b->loop, b->login_poll, fd);
        if (rc < 0) {
            free(b->login_poll);
            b->login_poll = NULL;
            return rc;
        }
        b->login_poll->data = b->session;
        b->session->refs++;
        b->login_fd = fd;
    }
    int ev = want == PGRES_POLLING_READING ? UV_READABLE : UV_WRITABLE;
    return uv_poll_start(b->login_poll, ev, on_login_io);
}

static void login_step(struct backend *b)
{
    struct session *s = b->session;
    PostgresPollingStatusType st = PQconnectPoll(b->conn);
    if (st == PGRES_POLLING_OK) {
        login_poll_drop(b);
        session_backend_ready(s, b);
        return;
    }
    if (st == PGRES_POLLING_FAILED) {
        login_poll_drop(b);
        session_backend_failed(s, b, PQerrorMessage(b->conn));
        return;
    }
    int rc = login_poll_watch(b, st);
    if (rc < 0) {
        session_backend_failed(s, b, uv_strerror(rc));
    }
}

static void on_login_io(uv_poll_t *h, int status, int events)
{
    struct session *s = h->data;
    (void)status;
    (void)events;
    if (s->state == SESSION_CLOSING) {
        return;
    }
    struct backend *b = &s->backends[h == s->backends[DIAL_NEW].login_poll ? DIAL_NEW : DIAL_OLD];
    login_step(b);
}

int backend_login_start(struct backend *b, uv_loop_t *loop, const char *conninfo,
                        const struct wire_startup *startup, char *err, size_t errlen)
{
    char *perr = NULL;
    PQconninfoOption *opts = PQconninfoParse(conninfo, &perr);
    if (!opts) {
        /* libpq may quote part of the string (a password, a URI with its userinfo). */
        snprintf(err, errlen, "invalid backend conninfo: %s",
                 !perr                       ? "out of memory"
                 : conninfo_error_safe(perr) ? perr
                                             : "libpq's message is withheld as it may quote a "
                                               "password: check [backends] in the config file");
        PQfreemem(perr);
        return UV_EINVAL;
    }
    struct login_params *lp = calloc(1, sizeof(*lp));
    if (!lp) {
        PQconninfoFree(opts);
        snprintf(err, errlen, "out of memory");
        return UV_ENOMEM;
    }
    for (PQconninfoOption *o = opts; o->keyword; o++) {
        if (o->val && o->val[0]) {
            params_add(lp, o->keyword, o->val);
        }
    }
    if (!params_has(lp, "gssencmode")) {
        /* GSS encryption would wrap the data path, which pgdual relays as raw bytes (TLS it can
         * relay: libpq hands over its SSL). libpq built with GSSAPI tries it by default (prefer)
         * when a Kerberos ticket is at hand, so it is off unless the conninfo says otherwise. */
        params_add(lp, "gssencmode", "disable");
    }
    params_from_startup(lp, startup);
    lp->keys[lp->n] = NULL;
    lp->vals[lp->n] = NULL;
    b->loop = loop;
    b->conn = PQconnectStartParams(lp->keys, lp->vals, 0);
    PQconninfoFree(opts);
    free(lp);
    if (!b->conn || PQstatus(b->conn) == CONNECTION_BAD) {
        snprintf(err, errlen, "%s", b->conn ? PQerrorMessage(b->conn) : "out of memory");
        return UV_ECONNREFUSED;
    }
    int rc = login_poll_watch(b, PGRES_POLLING_WRITING);
    if (rc < 0) {
        snprintf(err, errlen, "cannot watch the backend socket: %s", uv_strerror(rc));
    }
    return rc;
}

void backend_close_handles(struct backend *b, uv_close_cb cb)
{
    login_poll_drop(b);
    b->ep_closing = b->ep_closing || b->ep.poll_open;
    endpoint_close(&b->ep, cb); /* its session reference was taken when it opened */
}

void backend_free(struct backend *b)
{
    endpoint_free(&b->ep);
    wbuf_free(&b->msg);
    if (b->conn) {
        PQfinish(b->conn); /* sends Terminate; the server rolls back an open transaction */
        b->conn = NULL;
    }
}

void backend_msg_begin(struct backend *b, uint8_t type)
{
    b->cur_type = type;
    b->capture =
        type == PqMsg_ReadyForQuery || type == PqMsg_ErrorResponse || type == PqMsg_ParameterStatus;
    b->msg_cut = false;
    if (b->capture) {
        wbuf_reset(&b->msg);
    }
}

void backend_msg_body(struct backend *b, const uint8_t *p, size_t n)
{
    if (!b->capture) {
        return;
    }
    size_t room = BACKEND_CAPTURE_MAX - b->msg.len;
    if (b->msg_cut || n > room) {
        wbuf_put_bytes(&b->msg, p, b->msg_cut ? 0 : room); /* an exact prefix, then nothing */
        b->msg_cut = true;
        return;
    }
    wbuf_put_bytes(&b->msg, p, n);
}

uint8_t backend_msg_end(struct backend *b)
{
    if (!b->capture) {
        return 0;
    }
    if (b->cur_type == PqMsg_ErrorResponse) {
        struct wire_error_fields f;
        if (b->msg_cut && !b->msg.failed) {
            wire_error_keep_complete_fields(&b->msg);
        }
        if (b->msg.failed) {
            /* Out of memory keeping it: it is an error all the same (a failed COMMIT of
             * pgdual's must never pass for success); its fields are lost (msg.failed). */
            return PqMsg_ErrorResponse;
        }
        if (wire_parse_error(b->msg.data, b->msg.len, &f) == 0 && f.severity &&
            (strcmp(f.severity, "FATAL") == 0 || strcmp(f.severity, "PANIC") == 0)) {
            b->sent_fatal = true;
        }
        return PqMsg_ErrorResponse;
    }
    if (b->msg.failed) {
        return 0;
    }
    if (b->cur_type == PqMsg_ParameterStatus) {
        struct wire_reader rd;
        wire_reader_init(&rd, b->msg.data, b->msg.len);
        const char *name = wire_cstr(&rd);
        session_note_parameter(b, name, wire_cstr(&rd));
        return 0;
    }
    if (b->cur_type != PqMsg_ReadyForQuery || b->msg.len != 1 || b->msg_cut) {
        return 0; /* also a DataRow captured for a catalog lookup (pin_frontend.c) */
    }
    b->txn_status = b->msg.data[0];
    return PqMsg_ReadyForQuery;
}

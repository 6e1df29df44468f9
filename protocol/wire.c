/* protocol/wire.c: reader, writer, body decoders and the zero-copy message scanner. */
#include "protocol/wire.h"

#include <stdlib.h>
#include <string.h>

#include "protocol/pqproto.h"

/* ---- reader ---------------------------------------------------------------------------- */

static const uint8_t *reader_take(struct wire_reader *r, size_t n)
{
    if (r->failed || r->len - r->off < n) {
        r->failed = true;
        return NULL;
    }
    const uint8_t *b = r->p + r->off;
    r->off += n;
    return b;
}

uint8_t wire_u8(struct wire_reader *r)
{
    const uint8_t *b = reader_take(r, 1);
    return b ? b[0] : 0;
}

uint16_t wire_u16(struct wire_reader *r)
{
    const uint8_t *b = reader_take(r, 2);
    return b ? (uint16_t)(b[0] << 8 | b[1]) : 0;
}

uint32_t wire_u32(struct wire_reader *r)
{
    const uint8_t *b = reader_take(r, 4);
    return b ? (uint32_t)b[0] << 24 | (uint32_t)b[1] << 16 | (uint32_t)b[2] << 8 | b[3] : 0;
}

const char *wire_cstr(struct wire_reader *r)
{
    if (r->failed) {
        return NULL;
    }
    const uint8_t *start = r->p + r->off;
    const uint8_t *nul = memchr(start, 0, r->len - r->off);
    if (!nul) {
        r->failed = true;
        return NULL;
    }
    r->off += (size_t)(nul - start) + 1;
    return (const char *)start;
}

const uint8_t *wire_bytes(struct wire_reader *r, size_t n)
{
    return reader_take(r, n);
}

/* ---- writer ---------------------------------------------------------------------------- */

void wbuf_init(struct wbuf *b)
{
    memset(b, 0, sizeof(*b));
}

void wbuf_free(struct wbuf *b)
{
    free(b->data);
    wbuf_init(b);
}

void wbuf_reset(struct wbuf *b)
{
    b->len = 0;
    b->failed = false;
}

void wbuf_shrink(struct wbuf *b, size_t keep)
{
    if (b->cap > keep) {
        wbuf_free(b);
    } else {
        wbuf_reset(b);
    }
}

void wbuf_reserve(struct wbuf *b, size_t n)
{
    if (b->failed || b->cap - b->len >= n) {
        return;
    }
    size_t cap = b->cap ? b->cap : 256;
    while (cap - b->len < n) {
        if (cap > SIZE_MAX / 2) {
            b->failed = true;
            return;
        }
        cap *= 2;
    }
    uint8_t *p = realloc(b->data, cap);
    if (!p) {
        b->failed = true;
        return;
    }
    b->data = p;
    b->cap = cap;
}

void wbuf_put_bytes(struct wbuf *b, const void *p, size_t n)
{
    wbuf_reserve(b, n);
    if (b->failed || n == 0) {
        return;
    }
    memcpy(b->data + b->len, p, n);
    b->len += n;
}

void wbuf_put_u8(struct wbuf *b, uint8_t v)
{
    wbuf_put_bytes(b, &v, 1);
}

void wbuf_put_u16(struct wbuf *b, uint16_t v)
{
    uint8_t x[2] = {(uint8_t)(v >> 8), (uint8_t)v};
    wbuf_put_bytes(b, x, 2);
}

void wbuf_put_u32(struct wbuf *b, uint32_t v)
{
    uint8_t x[4] = {(uint8_t)(v >> 24), (uint8_t)(v >> 16), (uint8_t)(v >> 8), (uint8_t)v};
    wbuf_put_bytes(b, x, 4);
}

void wbuf_put_cstr(struct wbuf *b, const char *s)
{
    wbuf_put_bytes(b, s, strlen(s) + 1);
}

size_t wbuf_begin_msg(struct wbuf *b, uint8_t type)
{
    wbuf_put_u8(b, type);
    size_t start = b->len;
    wbuf_put_u32(b, 0);
    return start;
}

void wbuf_end_msg(struct wbuf *b, size_t start)
{
    if (b->failed) {
        return;
    }
    uint32_t len = (uint32_t)(b->len - start);
    b->data[start] = (uint8_t)(len >> 24);
    b->data[start + 1] = (uint8_t)(len >> 16);
    b->data[start + 2] = (uint8_t)(len >> 8);
    b->data[start + 3] = (uint8_t)len;
}

/* ---- builders -------------------------------------------------------------------------- */

static void put_error_like(struct wbuf *b, uint8_t type, const char *severity, const char *sqlstate,
                           const char *msg)
{
    size_t m = wbuf_begin_msg(b, type);
    wbuf_put_u8(b, 'S');
    wbuf_put_cstr(b, severity);
    wbuf_put_u8(b, 'V');
    wbuf_put_cstr(b, severity);
    wbuf_put_u8(b, 'C');
    wbuf_put_cstr(b, sqlstate);
    wbuf_put_u8(b, 'M');
    wbuf_put_cstr(b, msg);
    wbuf_put_u8(b, 0);
    wbuf_end_msg(b, m);
}

void wire_put_error(struct wbuf *b, const char *severity, const char *sqlstate, const char *msg)
{
    put_error_like(b, PqMsg_ErrorResponse, severity, sqlstate, msg);
}

void wire_put_notice(struct wbuf *b, const char *severity, const char *sqlstate, const char *msg)
{
    put_error_like(b, PqMsg_NoticeResponse, severity, sqlstate, msg);
}

void wire_put_auth(struct wbuf *b, uint32_t code, const void *data, size_t n)
{
    size_t m = wbuf_begin_msg(b, PqMsg_AuthenticationRequest);
    wbuf_put_u32(b, code);
    wbuf_put_bytes(b, data, n);
    wbuf_end_msg(b, m);
}

void wire_put_parameter_status(struct wbuf *b, const char *name, const char *value)
{
    size_t m = wbuf_begin_msg(b, PqMsg_ParameterStatus);
    wbuf_put_cstr(b, name);
    wbuf_put_cstr(b, value);
    wbuf_end_msg(b, m);
}

void wire_put_backend_key(struct wbuf *b, uint32_t pid, uint32_t secret)
{
    size_t m = wbuf_begin_msg(b, PqMsg_BackendKeyData);
    wbuf_put_u32(b, pid);
    wbuf_put_u32(b, secret);
    wbuf_end_msg(b, m);
}

void wire_put_ready(struct wbuf *b, uint8_t txn_status)
{
    size_t m = wbuf_begin_msg(b, PqMsg_ReadyForQuery);
    wbuf_put_u8(b, txn_status);
    wbuf_end_msg(b, m);
}

void wire_put_query(struct wbuf *b, const char *sql)
{
    size_t m = wbuf_begin_msg(b, PqMsg_Query);
    wbuf_put_cstr(b, sql);
    wbuf_end_msg(b, m);
}

void wire_put_own_statement(struct wbuf *b, const char *name, const char *sql)
{
    static const uint8_t kinds[2] = {'S', 'P'};
    for (int i = 0; i < 2; i++) {
        size_t m = wbuf_begin_msg(b, PqMsg_Close);
        wbuf_put_u8(b, kinds[i]);
        wbuf_put_cstr(b, name);
        wbuf_end_msg(b, m);
    }
    size_t m = wbuf_begin_msg(b, PqMsg_Parse);
    wbuf_put_cstr(b, name);
    wbuf_put_cstr(b, sql);
    wbuf_put_u16(b, 0);
    wbuf_end_msg(b, m);
    m = wbuf_begin_msg(b, PqMsg_Bind);
    wbuf_put_cstr(b, name);
    wbuf_put_cstr(b, name);
    wbuf_put_u16(b, 0);
    wbuf_put_u16(b, 0);
    wbuf_put_u16(b, 0);
    wbuf_end_msg(b, m);
    m = wbuf_begin_msg(b, PqMsg_Execute);
    wbuf_put_cstr(b, name);
    wbuf_put_u32(b, 0);
    wbuf_end_msg(b, m);
    /* No portal of pgdual's stays open in the client's transaction (COPY FREEZE refuses to run
     * after "prior transaction activity"). */
    m = wbuf_begin_msg(b, PqMsg_Close);
    wbuf_put_u8(b, 'P');
    wbuf_put_cstr(b, name);
    wbuf_end_msg(b, m);
    m = wbuf_begin_msg(b, PqMsg_Sync);
    wbuf_end_msg(b, m);
}

void wire_put_row_description(struct wbuf *b, int ncols, const char *const *names)
{
    size_t m = wbuf_begin_msg(b, PqMsg_RowDescription);
    wbuf_put_u16(b, (uint16_t)ncols);
    for (int i = 0; i < ncols; i++) {
        wbuf_put_cstr(b, names[i]);
        wbuf_put_u32(b, 0);          /* table oid */
        wbuf_put_u16(b, 0);          /* column number */
        wbuf_put_u32(b, 25);         /* type oid: text */
        wbuf_put_u16(b, 0xffff);     /* typlen -1 */
        wbuf_put_u32(b, 0xffffffff); /* typmod -1 */
        wbuf_put_u16(b, 0);          /* text format */
    }
    wbuf_end_msg(b, m);
}

void wire_put_data_row(struct wbuf *b, int ncols, const char *const *values)
{
    size_t m = wbuf_begin_msg(b, PqMsg_DataRow);
    wbuf_put_u16(b, (uint16_t)ncols);
    for (int i = 0; i < ncols; i++) {
        if (!values[i]) {
            wbuf_put_u32(b, 0xffffffff);
            continue;
        }
        size_t n = strlen(values[i]);
        wbuf_put_u32(b, (uint32_t)n);
        wbuf_put_bytes(b, values[i], n);
    }
    wbuf_end_msg(b, m);
}

void wire_put_command_complete(struct wbuf *b, const char *tag)
{
    size_t m = wbuf_begin_msg(b, PqMsg_CommandComplete);
    wbuf_put_cstr(b, tag);
    wbuf_end_msg(b, m);
}

void wire_put_empty_query(struct wbuf *b)
{
    size_t m = wbuf_begin_msg(b, PqMsg_EmptyQueryResponse);
    wbuf_end_msg(b, m);
}

/* ---- decoders -------------------------------------------------------------------------- */

int wire_parse_error(const uint8_t *body, size_t len, struct wire_error_fields *out)
{
    struct wire_reader r;
    wire_reader_init(&r, body, len);
    memset(out, 0, sizeof(*out));
    for (;;) {
        uint8_t code = wire_u8(&r);
        if (r.failed) {
            return WIRE_ETRUNC;
        }
        if (code == 0) {
            return 0;
        }
        const char *val = wire_cstr(&r);
        if (!val) {
            return WIRE_ETRUNC;
        }
        if (code == 'V' || (code == 'S' && !out->severity)) {
            out->severity = val;
        } else if (code == 'C') {
            out->sqlstate = val;
        } else if (code == 'M') {
            out->message = val;
        } else if (code == 'W') {
            out->context = val;
        }
    }
}

void wire_error_keep_complete_fields(struct wbuf *b)
{
    size_t pos = 0;
    while (pos < b->len) {
        if (b->data[pos] == 0) {
            b->len = pos + 1; /* already terminated: nothing was cut after all */
            return;
        }
        const uint8_t *nul = memchr(b->data + pos + 1, 0, b->len - pos - 1);
        if (!nul) {
            break; /* this field's value was cut */
        }
        pos = (size_t)(nul - b->data) + 1;
    }
    b->len = pos;
    wbuf_put_u8(b, 0);
}

static int parse_startup_params(struct wire_reader *r, struct wire_startup *out)
{
    for (;;) {
        const char *name = wire_cstr(r);
        if (!name) {
            return WIRE_ETRUNC;
        }
        if (name[0] == '\0') {
            break;
        }
        const char *value = wire_cstr(r);
        if (!value) {
            return WIRE_ETRUNC;
        }
        if (out->nparams == WIRE_STARTUP_MAX_PARAMS) {
            return WIRE_EPROTO;
        }
        out->names[out->nparams] = name;
        out->values[out->nparams] = value;
        out->nparams++;
    }
    if (wire_remaining(r) != 0) {
        return WIRE_EPROTO;
    }
    const char *user = wire_startup_param(out, "user");
    return user && user[0] ? 0 : WIRE_EPROTO;
}

int wire_parse_startup(const uint8_t *body, size_t len, struct wire_startup *out)
{
    struct wire_reader r;
    wire_reader_init(&r, body, len);
    memset(out, 0, sizeof(*out));
    out->code = wire_u32(&r);
    if (r.failed) {
        return WIRE_ETRUNC;
    }
    switch (out->code) {
    case CANCEL_REQUEST_CODE:
        out->cancel_pid = wire_u32(&r);
        out->cancel_secret = wire_u32(&r);
        if (r.failed) {
            return WIRE_ETRUNC;
        }
        return wire_remaining(&r) == 0 ? 0 : WIRE_EPROTO;
    case NEGOTIATE_SSL_CODE:
    case NEGOTIATE_GSS_CODE:
        return wire_remaining(&r) == 0 ? 0 : WIRE_EPROTO;
    case PG_PROTOCOL_V3:
        return parse_startup_params(&r, out);
    default:
        return 0; /* another protocol version: the caller answers with an error */
    }
}

const char *wire_startup_param(const struct wire_startup *s, const char *name)
{
    for (int i = 0; i < s->nparams; i++) {
        if (strcmp(s->names[i], name) == 0) {
            return s->values[i];
        }
    }
    return NULL;
}

/* ---- scanner --------------------------------------------------------------------------- */

void wire_scanner_init(struct wire_scanner *s, uint32_t max_len)
{
    memset(s, 0, sizeof(*s));
    s->max_len = max_len;
}

/* Completes a header from p; returns bytes taken, or WIRE_EBADLEN / a callback's code via *rc. */
static size_t scan_header(struct wire_scanner *s, const uint8_t *p, size_t n,
                          const struct wire_scan_ops *ops, void *ctx, int *rc)
{
    size_t take = 5u - s->hdr_have;
    if (take > n) {
        take = n;
    }
    memcpy(s->hdr + s->hdr_have, p, take);
    s->hdr_have = (uint8_t)(s->hdr_have + take);
    if (s->hdr_have < 5) {
        return take;
    }
    uint32_t len = (uint32_t)s->hdr[1] << 24 | (uint32_t)s->hdr[2] << 16 |
                   (uint32_t)s->hdr[3] << 8 | s->hdr[4];
    if (len < 4 || len > s->max_len) {
        *rc = WIRE_EBADLEN;
        return take;
    }
    s->type = s->hdr[0];
    s->hdr_have = 0;
    s->in_body = true;
    s->body_left = len - 4;
    *rc = ops->begin ? ops->begin(ctx, s->type, s->body_left) : 0;
    return take;
}

static int scan_finish(struct wire_scanner *s, const struct wire_scan_ops *ops, void *ctx)
{
    s->in_body = false;
    return ops->end ? ops->end(ctx) : 0;
}

int wire_scan_feed(struct wire_scanner *s, const uint8_t *p, size_t n,
                   const struct wire_scan_ops *ops, void *ctx, size_t *consumed)
{
    size_t off = 0;
    int stop = s->pending_stop; /* first positive callback value: stop at a message boundary */
    while (off < n && !(stop && !s->in_body)) {
        int rc = 0;
        if (!s->in_body) {
            off += scan_header(s, p + off, n - off, ops, ctx, &rc);
        } else {
            size_t take = s->body_left < n - off ? s->body_left : n - off;
            if (ops->body && take > 0) {
                rc = ops->body(ctx, p + off, take);
            }
            off += take;
            s->body_left -= (uint32_t)take;
        }
        if (rc == 0 && s->in_body && s->body_left == 0) {
            rc = scan_finish(s, ops, ctx);
        } else if (rc > 0 && s->in_body && s->body_left == 0) {
            int end_rc = scan_finish(s, ops, ctx);
            rc = end_rc < 0 ? end_rc : rc;
        }
        if (rc < 0) {
            *consumed = off;
            s->pending_stop = 0;
            return rc;
        }
        if (rc > 0 && !stop) {
            stop = rc;
        }
    }
    *consumed = off;
    if (s->in_body || s->hdr_have) {
        s->pending_stop = stop; /* report it once the message is complete */
        return 0;
    }
    s->pending_stop = 0;
    return stop;
}

int wire_next_msg(const uint8_t *p, size_t len, size_t *off, struct wire_msg *m)
{
    if (*off > len || len - *off < 5) {
        return -1;
    }
    const uint8_t *h = p + *off;
    uint32_t mlen = (uint32_t)h[1] << 24 | (uint32_t)h[2] << 16 | (uint32_t)h[3] << 8 | h[4];
    if (mlen < 4 || mlen - 4 > len - *off - 5) {
        return -1;
    }
    m->type = h[0];
    m->whole = h;
    m->whole_len = (size_t)mlen + 1;
    m->body = h + 5;
    m->body_len = mlen - 4;
    *off += m->whole_len;
    return 0;
}

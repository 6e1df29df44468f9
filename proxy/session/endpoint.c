/* proxy/session/endpoint.c: non-blocking socket I/O with an output queue, over uv_poll. */
#include "proxy/session/endpoint.h"

#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

/* Decrypted bytes wait inside OpenSSL (SSL_read returned less than it holds). Not
 * SSL_has_pending: that also counts a partial record, whose rest the socket will announce; polling
 * writable for it would spin until it comes. */
static bool ssl_buffered(const struct endpoint *ep)
{
    return ep->ssl && SSL_pending(ep->ssl) > 0;
}

static void endpoint_on_poll(uv_poll_t *h, int status, int events);

/* Give uv_poll the events ep needs now. Turning reads off is lazy: the readable interest stays
 * registered until a readable event comes while the owner does not want it (endpoint_on_poll
 * drops it then), because uv_poll_stop/uv_poll_start cost two or three epoll_ctl calls and a
 * gate or a held reply usually opens again before the peer sends anything (a lockstep COMMIT, a
 * reply held for commit_wait). stop_read drops it now. */
static void endpoint_apply(struct endpoint *ep, bool stop_read)
{
    if (!ep->poll_open) {
        return;
    }
    bool wake = ep->hs_write || (ep->want_read && ssl_buffered(ep));
    bool keep_read = !stop_read && !ep->discard && (ep->events & UV_READABLE);
    int events = (ep->want_read || keep_read ? UV_READABLE : 0) |
                 (endpoint_pending(ep) || wake ? UV_WRITABLE : 0);
    if (events == ep->events) {
        return;
    }
    ep->events = events;
    if (events == 0) {
        uv_poll_stop(&ep->poll);
    } else {
        uv_poll_start(&ep->poll, events, endpoint_on_poll);
    }
}

static void endpoint_update(struct endpoint *ep)
{
    endpoint_apply(ep, false);
}

/* Every poll event of an endpoint passes here first: a readable event the owner does not want
 * (reads turned off lazily) stops the readable interest and is not passed on, so the owner sees
 * exactly the events it asked for. */
static void endpoint_on_poll(uv_poll_t *h, int status, int events)
{
    struct endpoint *ep = (struct endpoint *)((char *)h - offsetof(struct endpoint, poll));
    if (!ep->want_read && (ep->events & UV_READABLE) && (status < 0 || (events & UV_READABLE))) {
        endpoint_apply(ep, true);
        events &= ~UV_READABLE;
        /* An error with no interest left waits, as it would have without the lazy interest,
         * until the owner polls again. */
        if (status < 0 ? ep->events == 0 : events == 0) {
            return;
        }
    }
    ep->cb(h, status, events);
}

int endpoint_open(struct endpoint *ep, uv_loop_t *loop, int fd, SSL *ssl, uv_poll_cb cb,
                  void *owner)
{
    int rc = uv_poll_init(loop, &ep->poll, fd);
    if (rc < 0) {
        return rc;
    }
    ep->fd = fd;
    ep->ssl = ssl;
    ep->cb = cb;
    ep->poll.data = owner;
    ep->poll_open = true;
    ep->events = 0;
    ep->want_read = true;
    if (ssl) {
        SSL_set_mode(ssl, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    }
    endpoint_update(ep);
    return 0;
}

static ssize_t ssl_result(SSL *ssl, int n)
{
    switch (SSL_get_error(ssl, n)) {
    case SSL_ERROR_WANT_READ:
    case SSL_ERROR_WANT_WRITE:
        return UV_EAGAIN;
    case SSL_ERROR_ZERO_RETURN:
        return 0;
    default:
        return UV_EPROTO;
    }
}

ssize_t endpoint_read(struct endpoint *ep, void *buf, size_t cap)
{
    if (ep->ssl) {
        ERR_clear_error();
        int n = SSL_read(ep->ssl, buf, cap > INT32_MAX ? INT32_MAX : (int)cap);
        ssize_t rc = n > 0 ? n : ssl_result(ep->ssl, n);
        endpoint_update(ep); /* bytes left inside OpenSSL: poll writable to come back for them */
        return rc;
    }
    for (;;) {
        ssize_t n = recv(ep->fd, buf, cap, 0);
        if (n >= 0) {
            return n;
        }
        if (errno == EINTR) {
            continue;
        }
        return errno == EAGAIN ? UV_EAGAIN : -errno;
    }
}

/* One write attempt: bytes taken, UV_EAGAIN, or an error. */
static ssize_t endpoint_write_some(struct endpoint *ep, const void *p, size_t n)
{
    if (ep->ssl) {
        ERR_clear_error();
        int w = SSL_write(ep->ssl, p, n > INT32_MAX ? INT32_MAX : (int)n);
        return w > 0 ? w : ssl_result(ep->ssl, w);
    }
    for (;;) {
        ssize_t w = send(ep->fd, p, n, MSG_NOSIGNAL);
        if (w >= 0) {
            return w;
        }
        if (errno == EINTR) {
            continue;
        }
        return errno == EAGAIN ? UV_EAGAIN : -errno;
    }
}

static int outq_append(struct outq *q, const void *p, size_t n)
{
    if (q->head > 0 && q->cap - q->len < n) {
        memmove(q->data, q->data + q->head, q->len - q->head);
        q->len -= q->head;
        q->head = 0;
    }
    if (q->cap - q->len < n) {
        size_t cap = q->cap ? q->cap : 16384;
        while (cap - q->len < n) {
            cap *= 2;
        }
        unsigned char *d = realloc(q->data, cap);
        if (!d) {
            return UV_ENOMEM;
        }
        q->data = d;
        q->cap = cap;
    }
    memcpy(q->data + q->len, p, n);
    q->len += n;
    return 0;
}

int endpoint_send(struct endpoint *ep, const void *p, size_t n)
{
    const unsigned char *b = p;
    if (ep->discard) {
        return 0;
    }
    if (endpoint_pending(ep) == 0) {
        while (n > 0) {
            ssize_t w = endpoint_write_some(ep, b, n);
            if (w == UV_EAGAIN) {
                break;
            }
            if (w < 0) {
                return (int)w;
            }
            b += w;
            n -= (size_t)w;
        }
    }
    if (n == 0) {
        return 0;
    }
    int rc = outq_append(&ep->out, b, n);
    endpoint_update(ep);
    return rc;
}

int endpoint_flush(struct endpoint *ep)
{
    struct outq *q = &ep->out;
    if (ep->discard) {
        return 0;
    }
    while (q->head < q->len) {
        ssize_t w = endpoint_write_some(ep, q->data + q->head, q->len - q->head);
        if (w == UV_EAGAIN) {
            break;
        }
        if (w < 0) {
            return (int)w;
        }
        q->head += (size_t)w;
    }
    if (q->head == q->len) {
        q->head = q->len = 0;
        if (q->cap > 1024 * 1024) { /* give back a queue that grew for one burst */
            free(q->data);
            q->data = NULL;
            q->cap = 0;
        }
    }
    endpoint_update(ep);
    return 0;
}

void endpoint_start_tls(struct endpoint *ep, SSL *ssl)
{
    ep->ssl = ssl;
    SSL_set_mode(ssl, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    SSL_set_accept_state(ssl);
}

int endpoint_tls_accept(struct endpoint *ep, char *err, size_t errlen)
{
    ERR_clear_error();
    int r = SSL_do_handshake(ep->ssl);
    if (r == 1) {
        ep->hs_write = false;
        endpoint_update(ep);
        return 1;
    }
    switch (SSL_get_error(ep->ssl, r)) {
    case SSL_ERROR_WANT_READ:
        ep->hs_write = false;
        endpoint_update(ep);
        return 0;
    case SSL_ERROR_WANT_WRITE:
        ep->hs_write = true;
        endpoint_update(ep);
        return 0;
    case SSL_ERROR_SYSCALL:
    case SSL_ERROR_ZERO_RETURN:
        if (ERR_peek_error() == 0) {
            snprintf(err, errlen, "the client closed the connection during the TLS handshake");
            return UV_EPROTO;
        }
        break;
    default:
        break;
    }
    unsigned long e = ERR_get_error();
    char msg[200] = "unknown error";
    if (e) {
        ERR_error_string_n(e, msg, sizeof(msg));
    }
    ERR_clear_error();
    snprintf(err, errlen, "TLS handshake failed: %s", msg);
    return UV_EPROTO;
}

bool endpoint_readable(const struct endpoint *ep, int events)
{
    return (events & UV_READABLE) || (ep->want_read && ssl_buffered(ep));
}

void endpoint_want_read(struct endpoint *ep, bool on)
{
    ep->want_read = on && !ep->discard;
    endpoint_update(ep);
}

void endpoint_discard(struct endpoint *ep)
{
    ep->discard = true;
    ep->want_read = false;
    ep->out.head = ep->out.len = 0;
    endpoint_update(ep);
}

void endpoint_close(struct endpoint *ep, uv_close_cb close_cb)
{
    if (!ep->poll_open) {
        return;
    }
    ep->poll_open = false;
    uv_close((uv_handle_t *)&ep->poll, close_cb);
}

void endpoint_free(struct endpoint *ep)
{
    free(ep->out.data);
    memset(&ep->out, 0, sizeof(ep->out));
}

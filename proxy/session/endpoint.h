/* proxy/session/endpoint.h: one non-blocking socket driven by a uv_poll handle: reads into the
 * caller's buffer, writes directly when it can and queues the rest (optionally through TLS). Used
 * for both the client and the backend sides of a session. */
#pragma once
#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include <uv.h>

typedef struct ssl_st SSL;

/* Bytes written by endpoint_send but not yet accepted by the kernel: [head, len). */
struct outq {
    unsigned char *data;
    size_t head, len, cap;
};

struct endpoint {
    int fd;         /* -1 when not open */
    uv_poll_t poll; /* embedded; its data points at the owner given to endpoint_open */
    bool poll_open; /* uv_poll_init succeeded and uv_close not yet called */
    bool want_read; /* the owner wants readable events (back-pressure clears it) */
    bool discard;   /* the peer is gone: nothing is read, whatever is sent is dropped */
    int events;     /* mask currently given to uv_poll_start (0 = stopped) */
    SSL *ssl;       /* libpq owns a backend's; the session owns its client's; NULL = plain */
    bool hs_write;  /* a TLS handshake step waits for the socket to be writable */
    struct outq out;
    uv_poll_cb cb;
};

/* Start polling fd for reads. `owner` becomes poll.data. */
int endpoint_open(struct endpoint *ep, uv_loop_t *loop, int fd, SSL *ssl, uv_poll_cb cb,
                  void *owner) __attribute__((warn_unused_result));
/* > 0 bytes read, 0 end of stream, UV_EAGAIN nothing now, other < 0 error. */
ssize_t endpoint_read(struct endpoint *ep, void *buf, size_t cap);
/* Write now or queue; enables writable events while bytes are queued. 0 or < 0 error. */
int endpoint_send(struct endpoint *ep, const void *p, size_t n) __attribute__((warn_unused_result));
/* Called on writable: push queued bytes. 0 or < 0 error. */
int endpoint_flush(struct endpoint *ep) __attribute__((warn_unused_result));
static inline size_t endpoint_pending(const struct endpoint *ep)
{
    return ep->out.len - ep->out.head;
}
/* From now on ep reads and writes through ssl (a server-side SSL on ep->fd; the caller keeps
 * owning it). Call with nothing queued. */
void endpoint_start_tls(struct endpoint *ep, SSL *ssl);
/* Server side of a TLS handshake on ep (ep->ssl set, in accept state): one non-blocking step,
 * driven by the poll callback (readable or writable). 1 done, 0 call again on the next event,
 * < 0 failed (the handshake error is in err). */
int endpoint_tls_accept(struct endpoint *ep, char *err, size_t errlen)
    __attribute__((warn_unused_result));
/* Should the poll callback read now? Readable, or (TLS) decrypted bytes wait inside OpenSSL: the
 * socket may have nothing left, so the poll would never say so. While the owner wants to read and
 * such bytes wait, the endpoint polls for writable too, which fires at once, to get here. */
bool endpoint_readable(const struct endpoint *ep, int events);
/* Turn reading on or off (back-pressure); writable interest follows the queue. Off is lazy: the
 * poll keeps its readable interest until a readable event comes, which is then dropped, never
 * passed to the owner (no epoll_ctl when reading is back on before the peer sends). */
void endpoint_want_read(struct endpoint *ep, bool on);
/* The peer is gone: stop polling, drop the queue, and from now on accept and drop every send
 * (the owner may go on producing output for it while it finishes other work). */
void endpoint_discard(struct endpoint *ep);
/* Stop polling and close the handle; close_cb runs later. The fd is not closed here. */
void endpoint_close(struct endpoint *ep, uv_close_cb close_cb);
/* Free the queue memory (after the handle is closed). */
void endpoint_free(struct endpoint *ep);

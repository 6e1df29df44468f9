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
    SSL *ssl;       /* borrowed (libpq owns it for backends); NULL = plain socket */
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
/* Turn reading on or off (back-pressure); writable interest follows the queue. */
void endpoint_want_read(struct endpoint *ep, bool on);
/* The peer is gone: stop polling, drop the queue, and from now on accept and drop every send
 * (the owner may go on producing output for it while it finishes other work). */
void endpoint_discard(struct endpoint *ep);
/* Stop polling and close the handle; close_cb runs later. The fd is not closed here. */
void endpoint_close(struct endpoint *ep, uv_close_cb close_cb);
/* Free the queue memory (after the handle is closed). */
void endpoint_free(struct endpoint *ep);

/* proxy/session/cancel.h: maps the BackendKeyData pgdual gave a client to the cancel keys of that
 * session's backends, across worker threads, and fires PQcancel on libuv's thread pool so no
 * loop blocks and every backend is cancelled at the same time. */
#pragma once
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include <libpq-fe.h>
#include <uv.h>

struct cancel_registry;

/* One session's cancel keys; refcounted because a cancel in flight may outlive the session. */
struct cancel_entry {
    uint32_t pid, secret;
    PGcancel *keys[2]; /* [DIAL_OLD], [DIAL_NEW]; NULL where that backend is not connected */
    atomic_int refs;
    /* The backends (bit per enum dial_backend) running the client's current statement: the
     * ones a client's cancel goes to. Written by the session's loop only. It is stored before
     * the session checks client_pending to send anything new to the secondary, and cancel_fire
     * counts its request in client_pending before reading it (both sequentially consistent),
     * so a cancel either sees the secondary untargeted or holds back what would be sent next. */
    atomic_uint targets;
    /* A client's cancel requests not delivered yet (PQcancel not returned). While any is, the
     * session sends nothing new to its backends: PostgreSQL signals a backend twice for one
     * request (the process and its group), and a late signal would cancel the next statement. */
    atomic_int client_pending;
    void (*delivered)(void *arg); /* called (any thread) when client_pending drops to 0 */
    void *delivered_arg;
    struct cancel_entry *next; /* registry bucket chain */
};

struct cancel_registry *cancel_registry_new(void);
void cancel_registry_free(struct cancel_registry *r);
/* New entry holding one reference, registered under (pid, secret). delivered(arg) runs on some
 * thread when the session's client cancels are all delivered (see client_pending). */
struct cancel_entry *cancel_register(struct cancel_registry *r, uint32_t pid, uint32_t secret,
                                     void (*delivered)(void *arg), void *delivered_arg);
/* Is a client's cancel for this session still on its way? */
static inline bool cancel_client_pending(const struct cancel_entry *e)
{
    return e && atomic_load_explicit(&e->client_pending, memory_order_seq_cst) > 0;
}
/* Which backends (bit per enum dial_backend) a client's cancel reaches from now on. */
static inline void cancel_set_targets(struct cancel_entry *e, unsigned mask)
{
    atomic_store_explicit(&e->targets, mask, memory_order_seq_cst);
}
/* Install the cancel key of backend `which` (takes ownership of key). */
void cancel_set_key(struct cancel_registry *r, struct cancel_entry *e, int which, PGcancel *key);
/* Remove from the registry and drop the session's reference. */
void cancel_unregister(struct cancel_registry *r, struct cancel_entry *e);
/* Cancel the backends of the session with these keys that run the client's current statement
 * (see targets); returns 0, or -1 if no such session. The PQcancel calls run on loop's thread
 * pool. */
int cancel_fire(struct cancel_registry *r, uv_loop_t *loop, uint32_t pid, uint32_t secret);
/* Cancel what backend `which` of the session e belongs to runs now (pgdual's own cancel, e.g. a
 * read past its timeout). done(arg, ok) runs on loop's thread once PQcancel returned: the
 * backend has been signalled by then, so nothing sent to it afterwards can be hit. -1 (done is
 * not called) when there is no key or the request cannot be queued. */
int cancel_one(struct cancel_entry *e, uv_loop_t *loop, int which, void (*done)(void *arg, bool ok),
               void *arg);

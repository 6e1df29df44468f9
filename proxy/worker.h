/* proxy/worker.h: one event-loop thread, its listener (SO_REUSEPORT) and its sessions. */
#pragma once
#include <pthread.h>
#include <stdbool.h>

#include <uv.h>

#include "protocol/classify.h"
#include "proxy/stats.h"

struct server;
struct session;
struct dials_snapshot;
struct server_conf;

#define WORKER_READ_BUF           (64 * 1024)
#define WORKER_CLASSIFY_CACHE     4096
#define WORKER_DRAIN_SWEEP_MS     10  /* while draining: how often idle sessions are looked for */
#define WORKER_RECONNECT_SWEEP_MS 50  /* sessions without their secondary: how often looked at */
#define WORKER_ACCEPT_BACKOFF_MS  100 /* out of file descriptors: the listener rests this long */

struct worker {
    struct server *server;
    int index;
    pthread_t thread;
    uv_loop_t loop;
    int listen_fd;
    uv_poll_t listen_poll;
    bool listen_open; /* listen_poll not closed yet (closing it closes listen_fd) */
    /* accept failed for want of file descriptors (EMFILE, ENFILE, ENOBUFS, ENOMEM): the
     * listener is not polled until this timer fires (no busy loop on a readable socket). */
    uv_timer_t accept_timer;
    bool accept_timer_open;
    bool accept_short; /* ...and no accept succeeded since (the log says it once) */
    uv_async_t wakeup; /* a new snapshot, a drain or a stop request is waiting */

    pthread_mutex_t mailbox_lock; /* guards the mailbox fields */
    struct dials_snapshot *mailbox_dials;
    struct server_conf *mailbox_conf;
    bool mailbox_drain;
    bool mailbox_gates; /* look at the sessions waiting at their gate again (RESUME) */
    bool mailbox_stop;  /* also set by the worker itself once it stops: no send after that */

    struct dials_snapshot *dials; /* loop-owned current snapshot */
    /* Written by this loop only (relaxed stores), read by any thread. */
    _Atomic uint64_t dials_applied; /* version of the snapshot its sessions now start with */
    _Atomic int busy_on[2];   /* its sessions inside a transaction or a statement, by primary */
    _Atomic int lag_units;    /* mirrored units its sessions sent to the secondary, unfinished */
    struct server_conf *conf; /* loop-owned current config snapshot (sessions ref it) */
    bool stopping;
    /* SIGTERM: the listener is closed; sessions end at their next transaction boundary (the
     * sweep timer closes each one once it is idle), then the worker stops. */
    bool draining;
    uv_timer_t drain_timer;
    bool drain_timer_open;
    /* Sessions without their secondary log in to it again (session_reconnect.c). */
    uv_timer_t reconnect_timer;
    bool reconnect_timer_open;
    struct stats stats;                    /* written by this loop only */
    struct classify_cache *classify;       /* statement text -> class, this loop's own */
    struct classify_options classify_opts; /* borrows the server's read_only_functions */
    struct session *sessions;              /* list head */
    unsigned char rbuf[WORKER_READ_BUF];   /* one read at a time is processed to the end */
};

/* Create the listening socket (binding port; 0 = any) and the loop. Runs on the main thread. */
int worker_init(struct worker *w, struct server *srv, int index, int port)
    __attribute__((warn_unused_result));
int worker_start(struct worker *w) __attribute__((warn_unused_result));
/* Post a new snapshot (takes one reference). Any thread. */
void worker_post_dials(struct worker *w, struct dials_snapshot *snap);
/* Post a new config snapshot (takes one reference). Any thread. */
void worker_post_conf(struct worker *w, struct server_conf *conf);
/* Graceful stop: close the listener, end sessions at their transaction boundaries, then stop. */
void worker_post_drain(struct worker *w);
/* Re-check every session's gate on the worker's loop (after RESUME). */
void worker_post_gates(struct worker *w);
/* The same as a void (*)(void *) callback (arg: the worker). */
void worker_post_gates_cb(void *worker);
/* Stop now: every session ends with FATAL 57P01. */
void worker_post_stop(struct worker *w);
void worker_join(struct worker *w);
int worker_bound_port(const struct worker *w);
void worker_add_session(struct worker *w, struct session *s);
void worker_remove_session(struct worker *w, struct session *s);

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

#define WORKER_READ_BUF       (64 * 1024)
#define WORKER_CLASSIFY_CACHE 4096

struct worker {
    struct server *server;
    int index;
    pthread_t thread;
    uv_loop_t loop;
    int listen_fd;
    uv_poll_t listen_poll;
    uv_async_t wakeup; /* a new dials snapshot or a stop request is waiting */

    pthread_mutex_t mailbox_lock; /* guards the two mailbox fields */
    struct dials_snapshot *mailbox_dials;
    bool mailbox_stop;

    struct dials_snapshot *dials; /* loop-owned current snapshot */
    bool stopping;
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
void worker_post_stop(struct worker *w);
void worker_join(struct worker *w);
int worker_bound_port(const struct worker *w);
void worker_add_session(struct worker *w, struct session *s);
void worker_remove_session(struct worker *w, struct session *s);

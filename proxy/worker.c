/* proxy/worker.c: a worker thread: accept loop, dials mailbox, orderly stop. */
#include "proxy/worker.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "config/dials.h"
#include "proxy/log.h"
#include "proxy/server.h"
#include "proxy/session/session.h"

static int listen_socket(const char *addr, int port, int *out_fd)
{
    struct sockaddr_storage ss;
    int rc = uv_ip4_addr(addr, port, (struct sockaddr_in *)&ss);
    if (rc < 0) {
        rc = uv_ip6_addr(addr, port, (struct sockaddr_in6 *)&ss);
        if (rc < 0) {
            return rc;
        }
    }
    int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        return -errno;
    }
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one));
    socklen_t len =
        ss.ss_family == AF_INET ? sizeof(struct sockaddr_in) : sizeof(struct sockaddr_in6);
    if (bind(fd, (struct sockaddr *)&ss, len) < 0 || listen(fd, 1024) < 0) {
        rc = -errno;
        close(fd);
        return rc;
    }
    *out_fd = fd;
    return 0;
}

int worker_bound_port(const struct worker *w)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof(ss);
    if (getsockname(w->listen_fd, (struct sockaddr *)&ss, &len) < 0) {
        return -1;
    }
    return ss.ss_family == AF_INET ? ntohs(((struct sockaddr_in *)&ss)->sin_port)
                                   : ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
}

static void on_accept(uv_poll_t *h, int status, int events);

static void on_accept_timer(uv_timer_t *t)
{
    struct worker *w = t->data;
    if (w->listen_open && !w->stopping && !w->draining) {
        uv_poll_start(&w->listen_poll, UV_READABLE, on_accept);
    }
}

/* Out of file descriptors: the pending connection stays in the backlog (it is accepted once a
 * session ends and frees one), and the listener rests instead of waking the loop again at once. */
static void accept_back_off(struct worker *w, int err)
{
    if (!w->accept_timer_open) {
        if (uv_timer_init(&w->loop, &w->accept_timer) < 0) {
            return; /* no timer: accept is retried on the next event, as before */
        }
        w->accept_timer.data = w;
        w->accept_timer_open = true;
    }
    stats_add(&w->stats, STAT_accept_backoffs_total, 1);
    if (!w->accept_short) { /* once per shortage, not every WORKER_ACCEPT_BACKOFF_MS */
        LOG_WARN("accept failed: %s: the listener rests %d ms at a time until a descriptor is "
                 "free",
                 strerror(err), WORKER_ACCEPT_BACKOFF_MS);
    }
    w->accept_short = true;
    uv_poll_stop(&w->listen_poll);
    uv_timer_start(&w->accept_timer, on_accept_timer, WORKER_ACCEPT_BACKOFF_MS, 0);
}

static void on_accept(uv_poll_t *h, int status, int events)
{
    struct worker *w = h->data;
    (void)events;
    if (status < 0 || w->stopping || w->draining) {
        return;
    }
    for (int i = 0; i < 64; i++) {
        int fd = accept4(w->listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            int err = errno;
            if (err == EMFILE || err == ENFILE || err == ENOBUFS || err == ENOMEM) {
                accept_back_off(w, err);
            } else if (err != EAGAIN && err != EINTR && err != ECONNABORTED) {
                LOG_WARN("accept failed: %s", strerror(err));
            }
            return;
        }
        if (w->accept_short) {
            w->accept_short = false;
            LOG_INFO("accepting connections again");
        }
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        session_accept(w, fd);
    }
}

static void on_listener_closed(uv_handle_t *h)
{
    struct worker *w = h->data;
    close(w->listen_fd); /* from now on connections to this socket are refused */
    w->listen_fd = -1;
}

static void worker_close_listener(struct worker *w)
{
    if (w->listen_open) {
        w->listen_open = false;
        uv_close((uv_handle_t *)&w->listen_poll, on_listener_closed);
    }
}

static void worker_begin_stop(struct worker *w)
{
    if (w->stopping) {
        return;
    }
    w->stopping = true;
    /* The worker may stop by itself (a drain that finished): no uv_async_send after this. */
    pthread_mutex_lock(&w->mailbox_lock);
    w->mailbox_stop = true;
    pthread_mutex_unlock(&w->mailbox_lock);
    worker_close_listener(w);
    while (w->sessions) {
        session_end(w->sessions, END_SHUTDOWN, NULL);
    }
    if (w->drain_timer_open) {
        w->drain_timer_open = false;
        uv_close((uv_handle_t *)&w->drain_timer, NULL);
    }
    if (w->reconnect_timer_open) {
        w->reconnect_timer_open = false;
        uv_close((uv_handle_t *)&w->reconnect_timer, NULL);
    }
    if (w->accept_timer_open) {
        w->accept_timer_open = false;
        uv_close((uv_handle_t *)&w->accept_timer, NULL);
    }
    uv_close((uv_handle_t *)&w->wakeup, NULL);
}

/* End every session that has reached a transaction boundary; stop when none is left. */
static void drain_sweep(struct worker *w)
{
    for (struct session *s = w->sessions, *next; s; s = next) {
        next = s->next;
        if (session_drain_ready(s)) {
            session_end(s, END_SHUTDOWN, NULL);
        }
    }
    if (!w->sessions) {
        LOG_INFO("worker %d: drained", w->index);
        worker_begin_stop(w);
    }
}

static void on_drain_timer(uv_timer_t *t)
{
    drain_sweep(t->data);
}

static void worker_begin_drain(struct worker *w)
{
    if (w->stopping || w->draining) {
        return;
    }
    w->draining = true;
    worker_close_listener(w);
    if (uv_timer_init(&w->loop, &w->drain_timer) == 0) {
        w->drain_timer.data = w;
        w->drain_timer_open = true;
        uv_timer_start(&w->drain_timer, on_drain_timer, WORKER_DRAIN_SWEEP_MS,
                       WORKER_DRAIN_SWEEP_MS);
    }
    drain_sweep(w); /* idle sessions go at once */
    if (!w->stopping && !w->drain_timer_open) {
        worker_begin_stop(w); /* no timer to wait with: stop now rather than hang */
    }
}

static void on_wakeup(uv_async_t *h)
{
    struct worker *w = h->data;
    pthread_mutex_lock(&w->mailbox_lock);
    struct dials_snapshot *snap = w->mailbox_dials;
    w->mailbox_dials = NULL;
    struct server_conf *conf = w->mailbox_conf;
    w->mailbox_conf = NULL;
    bool drain = w->mailbox_drain;
    bool stop = w->mailbox_stop;
    bool gates = w->mailbox_gates;
    w->mailbox_gates = false;
    pthread_mutex_unlock(&w->mailbox_lock);
    if (snap) {
        dials_snapshot_unref(w->dials);
        w->dials = snap;
        atomic_store_explicit(&w->dials_applied, snap->version, memory_order_release);
        if (server_dials_applied(w->server, snap->version)) {
            server_post_gates(w->server); /* sessions waiting to switch primary may go now */
        }
    }
    if (conf) {
        server_conf_unref(w->conf);
        w->conf = conf;
    }
    for (struct session *s = w->sessions, *next; gates && s; s = next) {
        next = s->next;
        session_relay_wake(s);
    }
    if (stop) {
        worker_begin_stop(w);
    } else if (drain) {
        worker_begin_drain(w);
    }
}

int worker_init(struct worker *w, struct server *srv, int index, int port)
{
    memset(w, 0, sizeof(*w));
    w->server = srv;
    w->index = index;
    w->listen_fd = -1;
    int rc = listen_socket(srv->cfg->listen_addr, port, &w->listen_fd);
    if (rc < 0) {
        return rc;
    }
    rc = uv_loop_init(&w->loop);
    if (rc < 0) {
        goto err_close_fd;
    }
    w->loop.data = w;
    rc = uv_poll_init(&w->loop, &w->listen_poll, w->listen_fd);
    if (rc < 0) {
        goto err_loop;
    }
    w->listen_poll.data = w;
    w->listen_open = true;
    rc = uv_async_init(&w->loop, &w->wakeup, on_wakeup);
    if (rc < 0) {
        goto err_poll;
    }
    w->wakeup.data = w;
    pthread_mutex_init(&w->mailbox_lock, NULL);
    w->dials = server_dials_get(srv);
    atomic_store(&w->dials_applied, w->dials->version);
    w->conf = server_conf_get(srv);
    w->classify = classify_cache_new(WORKER_CLASSIFY_CACHE);
    w->classify_opts.read_only_functions = (const char *const *)srv->read_only_functions;
    w->classify_opts.n_read_only_functions = srv->n_read_only_functions;
    if (!w->classify) {
        return UV_ENOMEM;
    }
    return uv_poll_start(&w->listen_poll, UV_READABLE, on_accept);

err_poll:
    w->listen_open = false;
    uv_close((uv_handle_t *)&w->listen_poll, NULL);
    uv_run(&w->loop, UV_RUN_NOWAIT);
err_loop:
    uv_loop_close(&w->loop);
err_close_fd:
    close(w->listen_fd);
    return rc;
}

/* The reconnect sweep: only while some session (of any worker) is without its secondary. */
static void on_reconnect_timer(uv_timer_t *t)
{
    struct worker *w = t->data;
    if (!w->draining &&
        atomic_load_explicit(&w->server->sessions_without_secondary, memory_order_relaxed) > 0) {
        session_reconnect_sweep(w);
    }
}

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    if (uv_timer_init(&w->loop, &w->reconnect_timer) == 0) {
        w->reconnect_timer.data = w;
        w->reconnect_timer_open = true;
        uv_timer_start(&w->reconnect_timer, on_reconnect_timer, WORKER_RECONNECT_SWEEP_MS,
                       WORKER_RECONNECT_SWEEP_MS);
    }
    uv_run(&w->loop, UV_RUN_DEFAULT);
    int rc = uv_loop_close(&w->loop);
    if (rc < 0) {
        LOG_WARN("worker %d: loop closed with handles open: %s", w->index, uv_strerror(rc));
    }
    if (w->listen_fd >= 0) {
        close(w->listen_fd);
        w->listen_fd = -1;
    }
    dials_snapshot_unref(w->dials);
    w->dials = NULL;
    server_conf_unref(w->conf);
    w->conf = NULL;
    classify_cache_free(w->classify);
    w->classify = NULL;
    struct server *srv = w->server;
    atomic_fetch_add(&srv->workers_exited, 1);
    if (srv->worker_exited) {
        uv_async_send(srv->worker_exited); /* closed by main only after every join */
    }
    return NULL;
}

int worker_start(struct worker *w)
{
    int rc = pthread_create(&w->thread, NULL, worker_main, w);
    return rc ? -rc : 0;
}

/* uv_async_send runs under the mailbox lock and never after a stop was posted: the worker
 * closes its async handle once it has seen the stop, so a later send would touch a closed
 * handle. */
void worker_post_dials(struct worker *w, struct dials_snapshot *snap)
{
    pthread_mutex_lock(&w->mailbox_lock);
    struct dials_snapshot *old = w->mailbox_dials;
    w->mailbox_dials = snap;
    if (!w->mailbox_stop) {
        uv_async_send(&w->wakeup);
    }
    pthread_mutex_unlock(&w->mailbox_lock);
    dials_snapshot_unref(old);
}

void worker_post_conf(struct worker *w, struct server_conf *conf)
{
    pthread_mutex_lock(&w->mailbox_lock);
    struct server_conf *old = w->mailbox_conf;
    w->mailbox_conf = conf;
    if (!w->mailbox_stop) {
        uv_async_send(&w->wakeup);
    }
    pthread_mutex_unlock(&w->mailbox_lock);
    server_conf_unref(old);
}

void worker_post_gates(struct worker *w)
{
    pthread_mutex_lock(&w->mailbox_lock);
    w->mailbox_gates = true;
    if (!w->mailbox_stop) {
        uv_async_send(&w->wakeup);
    }
    pthread_mutex_unlock(&w->mailbox_lock);
}

void worker_post_drain(struct worker *w)
{
    pthread_mutex_lock(&w->mailbox_lock);
    if (!w->mailbox_stop && !w->mailbox_drain) {
        w->mailbox_drain = true;
        uv_async_send(&w->wakeup);
    }
    pthread_mutex_unlock(&w->mailbox_lock);
}

void worker_post_stop(struct worker *w)
{
    pthread_mutex_lock(&w->mailbox_lock);
    if (!w->mailbox_stop) {
        w->mailbox_stop = true;
        uv_async_send(&w->wakeup);
    }
    pthread_mutex_unlock(&w->mailbox_lock);
}

void worker_join(struct worker *w)
{
    pthread_join(w->thread, NULL);
    pthread_mutex_lock(&w->mailbox_lock);
    dials_snapshot_unref(w->mailbox_dials);
    w->mailbox_dials = NULL;
    server_conf_unref(w->mailbox_conf);
    w->mailbox_conf = NULL;
    pthread_mutex_unlock(&w->mailbox_lock);
    pthread_mutex_destroy(&w->mailbox_lock);
}

void worker_add_session(struct worker *w, struct session *s)
{
    s->prev = NULL;
    s->next = w->sessions;
    if (w->sessions) {
        w->sessions->prev = s;
    }
    w->sessions = s;
}

void worker_remove_session(struct worker *w, struct session *s)
{
    if (s->prev) {
        s->prev->next = s->next;
    } else if (w->sessions == s) {
        w->sessions = s->next;
    }
    if (s->next) {
        s->next->prev = s->prev;
    }
    s->prev = s->next = NULL;
}

void worker_post_gates_cb(void *worker)
{
    worker_post_gates(worker);
}

/* proxy/session/cancel.c: the cross-worker cancel registry and PQcancel on the thread pool. */
#include "proxy/session/cancel.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "proxy/log.h"

#define CANCEL_BUCKETS 1024

struct cancel_registry {
    pthread_mutex_t lock; /* taken on login, logout and cancel only */
    struct cancel_entry *buckets[CANCEL_BUCKETS];
};

struct cancel_work {
    uv_work_t req;
    struct cancel_entry *entry; /* one reference */
    int which;
    bool ok;
    void (*done)(void *arg, bool ok); /* NULL for a client's cancel */
    void *arg;
};

struct cancel_registry *cancel_registry_new(void)
{
    struct cancel_registry *r = calloc(1, sizeof(*r));
    if (r) {
        pthread_mutex_init(&r->lock, NULL);
    }
    return r;
}

void cancel_registry_free(struct cancel_registry *r)
{
    if (r) {
        pthread_mutex_destroy(&r->lock);
        free(r);
    }
}

static void entry_unref(struct cancel_entry *e)
{
    if (atomic_fetch_sub(&e->refs, 1) != 1) {
        return;
    }
    for (int i = 0; i < 2; i++) {
        if (e->keys[i]) {
            PQfreeCancel(e->keys[i]);
        }
    }
    free(e);
}

struct cancel_entry *cancel_register(struct cancel_registry *r, uint32_t pid, uint32_t secret,
                                     void (*delivered)(void *arg), void *delivered_arg)
{
    struct cancel_entry *e = calloc(1, sizeof(*e));
    if (!e) {
        return NULL;
    }
    e->pid = pid;
    e->secret = secret;
    e->delivered = delivered;
    e->delivered_arg = delivered_arg;
    atomic_init(&e->refs, 1);
    atomic_init(&e->targets, 3u); /* until the session publishes its own */
    pthread_mutex_lock(&r->lock);
    struct cancel_entry **head = &r->buckets[pid % CANCEL_BUCKETS];
    e->next = *head;
    *head = e;
    pthread_mutex_unlock(&r->lock);
    return e;
}

void cancel_set_key(struct cancel_registry *r, struct cancel_entry *e, int which, PGcancel *key)
{
    pthread_mutex_lock(&r->lock);
    PGcancel *old = e->keys[which];
    e->keys[which] = key;
    pthread_mutex_unlock(&r->lock);
    if (old) {
        PQfreeCancel(old);
    }
}

void cancel_unregister(struct cancel_registry *r, struct cancel_entry *e)
{
    pthread_mutex_lock(&r->lock);
    for (struct cancel_entry **p = &r->buckets[e->pid % CANCEL_BUCKETS]; *p; p = &(*p)->next) {
        if (*p == e) {
            *p = e->next;
            break;
        }
    }
    pthread_mutex_unlock(&r->lock);
    entry_unref(e);
}

static void on_cancel_work(uv_work_t *req)
{
    struct cancel_work *cw = req->data;
    char err[256];
    cw->ok = PQcancel(cw->entry->keys[cw->which], err, sizeof(err)) != 0;
    if (!cw->ok) {
        LOG_WARN("cancel of session %u on %s failed: %s", cw->entry->pid, cw->which ? "new" : "old",
                 err);
    }
}

/* One client_pending count dropped: the last one tells the session. */
static void client_pending_done(struct cancel_entry *e)
{
    if (atomic_fetch_sub_explicit(&e->client_pending, 1, memory_order_acq_rel) == 1 &&
        e->delivered) {
        e->delivered(e->delivered_arg);
    }
}

static void on_cancel_done(uv_work_t *req, int status)
{
    struct cancel_work *cw = req->data;
    (void)status;
    if (cw->done) {
        cw->done(cw->arg, cw->ok);
    } else {
        client_pending_done(cw->entry);
    }
    entry_unref(cw->entry);
    free(cw);
}

int cancel_fire(struct cancel_registry *r, uv_loop_t *loop, uint32_t pid, uint32_t secret)
{
    pthread_mutex_lock(&r->lock);
    struct cancel_entry *e = r->buckets[pid % CANCEL_BUCKETS];
    while (e && !(e->pid == pid && e->secret == secret)) {
        e = e->next;
    }
    PGcancel *keys[2] = {NULL, NULL};
    if (e) {
        keys[0] = e->keys[0];
        keys[1] = e->keys[1];
        atomic_fetch_add(&e->refs, 1); /* this call's own */
    }
    pthread_mutex_unlock(&r->lock);
    if (!e) {
        return -1;
    }
    /* Counted before the targets are read: see the targets field. */
    atomic_fetch_add_explicit(&e->client_pending, 1, memory_order_seq_cst);
    unsigned targets = atomic_load_explicit(&e->targets, memory_order_seq_cst);
    for (int i = 0; i < 2; i++) {
        if (!keys[i] || !(targets & (1u << i))) {
            continue;
        }
        struct cancel_work *cw = calloc(1, sizeof(*cw));
        if (cw) {
            cw->req.data = cw;
            cw->entry = e;
            cw->which = i;
        }
        atomic_fetch_add(&e->refs, 1);
        atomic_fetch_add_explicit(&e->client_pending, 1, memory_order_acq_rel);
        if (!cw || uv_queue_work(loop, &cw->req, on_cancel_work, on_cancel_done) < 0) {
            free(cw);
            client_pending_done(e);
            entry_unref(e);
        }
    }
    client_pending_done(e); /* this call's own count */
    entry_unref(e);
    return 0;
}

int cancel_one(struct cancel_entry *e, uv_loop_t *loop, int which, void (*done)(void *arg, bool ok),
               void *arg)
{
    /* The key is only replaced by the loop that owns e (at login), which is this one. */
    if (!e->keys[which]) {
        return -1;
    }
    struct cancel_work *cw = calloc(1, sizeof(*cw));
    if (!cw) {
        return -1;
    }
    cw->req.data = cw;
    cw->entry = e;
    cw->which = which;
    cw->done = done;
    cw->arg = arg;
    atomic_fetch_add(&e->refs, 1);
    if (uv_queue_work(loop, &cw->req, on_cancel_work, on_cancel_done) < 0) {
        entry_unref(e);
        free(cw);
        return -1;
    }
    return 0;
}

/* proxy/dualwrite/route.h: routed reads. The routing decision (which backend serves a read proven
 * read-only, and whether it is shadowed on the other one) and the state machine of one routed
 * read: fallback to the primary, the secondary's reply held for it, timeouts and cancels, and
 * the shadow comparison.
 *
 * A read is routed only when the session has nothing in flight on either backend, so while it
 * runs every reply from a backend it involves belongs to it ("the route owns the backend").
 * The client's next message waits at the session's gate until the client has its whole answer
 * and the route no longer owns the primary; a shadow still running on the secondary only holds
 * back what would be sent to the secondary (mirror_dispatch), so a cancel pgdual sends for the
 * shadow can never hit a mirrored write. */
#pragma once
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "protocol/outcome.h"
#include "protocol/wire.h"

struct session;
struct backend;
struct unit;

/* The replies one backend still owes the route, in order: its answer to pgdual's own
 * SAVEPOINT / RELEASE (swallowed), a shadow run (hashed only) or a serving run (to the client). */
enum route_seg { ROUTE_SEG_OWN, ROUTE_SEG_SHADOW, ROUTE_SEG_SERVE };
#define ROUTE_SEGS_MAX 6

/* Why a read served by the secondary was re-run on the primary. X(name). */
#define ROUTE_FALLBACK_REASONS(X) X(error) X(timeout) X(connection_lost)
enum route_fallback {
#define X(n) ROUTE_FALLBACK_##n,
    ROUTE_FALLBACK_REASONS(X)
#undef X
};

struct route_side {
    uint8_t segs[ROUTE_SEGS_MAX]; /* enum route_seg, oldest first */
    int nsegs;
    bool ran;            /* its first read run finished normally (its outcome is complete) */
    bool savepoint;      /* its runs are wrapped in pgdual's SAVEPOINT (inside a transaction) */
    bool cancelled;      /* a cancel was sent: its outcome is not compared */
    int cancels_pending; /* PQcancel calls not returned yet */
    bool lost;           /* the connection went away */
    bool read_seen;      /* the first read run has started (its outcome is being folded) */
    bool run_ended;      /* its first read run ended (ReadyForQuery, cancel or loss) */
    bool folding;        /* the message being scanned is hashed into out */
    bool forwarding;     /* the message being scanned goes to the client */
    bool run_failed;     /* the current run sent an ErrorResponse */
    struct outcome out;  /* its first read run */
    uint64_t start_us, us;
};

struct route {
    bool active;
    int serve;        /* backend whose answer the client gets (changes on fallback) */
    bool shadowed;    /* compare the two first runs */
    bool forced;      /* the read uses a statement or portal that only the secondary has */
    bool streaming;   /* the serving reply goes to the client as it comes (no fallback now) */
    bool client_done; /* the client has its whole answer */
    bool fell_back;
    bool await_compare;         /* serve_primary: the secondary's answer waits for the shadow */
    bool held_complete;         /* the secondary's serving answer is complete in to_client */
    int initial_serve;          /* serve as first chosen: the shadow runs on the other one */
    uint32_t serial;            /* of the unit it was: statements and portals it defined */
    struct wbuf bytes;          /* the read's frontend messages (a fallback sends them again) */
    struct wbuf to_client;      /* the serving reply not yet sent to the client */
    uint64_t deadline_serve_us; /* the secondary serving: fall back after this (0 = none) */
    uint64_t deadline_shadow_us;
    uint64_t wait_deadline_us; /* a read waiting for the secondary goes to the primary then */
    uint64_t fingerprint;
    char *sql;                 /* owned */
    struct route_side side[2]; /* by enum dial_backend */
    /* Dial draws are per read, or once per transaction block. */
    bool txn_drawn;
    int txn_serve;
    uint64_t rng;
};

void route_init(struct session *s);
void route_free(struct session *s);
/* A held-back unit is complete: if it is a read, decide where it runs (route_choose). Returns 1
 * if the route took it (the unit is gone), 0 to send it the usual way (primary only), 2 when it
 * must wait until the session's earlier work is done on the secondary (the dial chose the
 * secondary: try again then), -1 if the session ended. */
int route_try(struct session *s, struct unit *u);
/* Does the route still expect replies from this backend? */
bool route_owns(const struct session *s, int which);
/* ...or has a cancel on its way there: nothing else may be sent to it yet. */
bool route_blocks(const struct session *s, int which);
/* Must the client's next message wait for the route? */
bool route_gates_client(const struct session *s);
/* Bytes from a backend the route owns: consumes up to n (stopping after the route's last reply
 * from it, so what follows can go the usual way); *used says how many. -1: the session ended. */
int route_feed(struct session *s, struct backend *b, const uint8_t *p, size_t n, size_t *used);
/* The backend's connection is gone (called before it is closed). */
void route_backend_lost(struct session *s, int which);
/* The client can take more: resume reading the serving backend if back-pressure stopped it. */
void route_client_drained(struct session *s);
/* A transaction block ended on the primary: the next one draws the dial afresh. */
void route_txn_ended(struct session *s);

/* proxy/control/seqsync.h: the sequence sync of a primary switch (DESIGN §5a): before any
 * session runs a statement on the new primary, and once no session runs one on the old primary,
 * every sequence of the new primary is raised to at least the old primary's value. Pinned
 * inserts give the secondary the primary's ids without advancing its sequences, so without this
 * the first inserts after a switch would draw ids that already exist.
 *
 * Threads: one thread of its own runs the sync (blocking libpq, off the event loops). The server
 * calls seqsync_switch under its dials_lock whenever a published change moves the primary;
 * sessions wait at their gate while server_switch_pending() says so; the admin console polls
 * seqsync_outcome. Lock order: the server's dials_lock before this module's lock. */
#pragma once
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct server;
struct seqsync;

/* What became of a switch (by generation), as the admin console sees it. */
#define SEQSYNC_OUTCOMES(X)                                                                     \
    X(none)    /* no switch since start */                                                      \
    X(waiting) /* waiting for the gate: every worker has the change, nothing runs on the old */ \
    X(running) /* comparing and raising sequences */                                            \
    X(ok)      /* synced (or the switch was taken back before it ran on the new primary) */     \
    X(failed)  /* the sync failed: the primary dial went back (persisted, published) */         \
    X(forced)  /* the sync failed, and FORCE switched anyway */

enum seqsync_outcome {
#define X(n) SEQSYNC_##n,
    SEQSYNC_OUTCOMES(X)
#undef X
};

/* The last sync that ran, for SHOW STATUS. */
struct seqsync_status {
    uint64_t synced;           /* sequences raised on the new primary */
    uint64_t checked;          /* sequences found on both sides and compared */
    int64_t at_ms;             /* Unix ms when it ended; 0 = no sync ran since start */
    enum seqsync_outcome last; /* the last switch's outcome (waiting / running while one runs) */
};

/* Counts of one sync run (seqsync_run). */
struct seqsync_counts {
    uint64_t databases; /* databases compared (on both sides) */
    uint64_t checked;
    uint64_t synced;
    uint64_t skipped; /* sequences (or databases) on one side only */
};

/* A sync context for srv, whose primary sessions run on now is `primary` (enum dial_backend).
 * NULL on allocation failure. */
struct seqsync *seqsync_new(struct server *srv, int primary);
/* Start the thread. < 0 (errno style) if it could not be created. */
int seqsync_start(struct seqsync *q) __attribute__((warn_unused_result));
/* Stop the thread, before the workers are joined: a sync running finishes first (its
 * connections and statements have timeouts); a switch still waiting for its gate runs if the
 * gate opens within a few seconds (the sessions are ending), else it is abandoned, loudly.
 * Idempotent. */
void seqsync_stop(struct seqsync *q);
/* Free q (after seqsync_stop, once no thread can call into it). NULL is a no-op. */
void seqsync_free(struct seqsync *q);

#define SEQSYNC_FORCE 1 /* FORCE: the switch happens even if the sync fails */
#define SEQSYNC_UNDO  2 /* server_switch_undo: the switch back after this module's failed sync */

/* A change that moves the primary dial to `to` was just persisted as dials `version`; call with
 * the server's dials_lock held, before the change is posted to the workers, so no session sees
 * it before the gate is closed. flags: SEQSYNC_*. Returns the switch's generation (for
 * seqsync_outcome). */
uint64_t seqsync_switch(struct seqsync *q, int to, uint64_t version, int flags);
/* The generation of the last switch asked for (0 = none). Any thread. */
uint64_t seqsync_generation(struct seqsync *q);
/* What became of switch `gen`; for failed and forced, why (in err). A switch superseded by a
 * later one before its sync ran reports ok: nothing ran on the primary it named. */
enum seqsync_outcome seqsync_outcome(struct seqsync *q, uint64_t gen, char *err, size_t errlen);
/* Something the gate waits for may have changed (a worker took new dials, a session finished
 * its transaction): look again. Any thread; cheap. */
void seqsync_poke(struct seqsync *q);
/* The last sync's figures. q may be NULL (all zero). */
void seqsync_get_status(struct seqsync *q, struct seqsync_status *out);
const char *seqsync_outcome_name(enum seqsync_outcome o);

/* The sync itself, blocking: for every connectable, non-template database of `from` that also
 * exists on `to` (only those named in `databases`, comma-separated, when it is not empty), raise
 * every sequence of `to` that is behind the same sequence of `from` (in its direction of
 * increment) to from's last value. Connects with each libpq conninfo, dbname replaced.
 * keep_going: after a failure, go on with the other databases (the first error is returned).
 * 0, or < 0 with err set. */
int seqsync_run(const char *from_conninfo, const char *to_conninfo, const char *databases,
                int connect_timeout_s, bool keep_going, struct seqsync_counts *counts, char *err,
                size_t errlen) __attribute__((warn_unused_result));

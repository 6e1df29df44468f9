/* proxy/dualwrite/sync_state.h: the secondary's sync state (DESIGN §7): does the secondary hold
 * every write the primary acknowledged? The states, their names and the one transition rule. Pure:
 * no I/O; proxy/server.c persists a change to the state file before it publishes it. */
#pragma once
#include <stdbool.h>

/* X(name): the SHOW STATUS values of secondary_state, in the state file and /metrics. */
#define SYNC_STATES(X)                                                                        \
    X(in_sync)     /* every acknowledged write is on the secondary: reads may be routed */    \
    X(seeding)     /* the backfill of step seed is filling it: rows are missing on purpose */ \
    X(lagging)     /* unreachable: mirrored writes missed it */                               \
    X(diverged)    /* reachable, but it missed or failed writes the primary applied */        \
    X(reconciling) /* a reconciliation pass is comparing and repairing it */

enum sync_state {
#define X(n) SYNC_##n,
    SYNC_STATES(X)
#undef X
        SYNC_STATE_COUNT
};

const char *sync_state_name(enum sync_state st);
/* The state called name, or -1 for an unknown name. */
int sync_state_parse(const char *name);
/* The state after the secondary missed (or failed) a write the primary applied, seen while in
 * `from`; `how` is SYNC_lagging (the secondary could not be reached) or SYNC_diverged (it was
 * reachable). in_sync and reconciling (the pass may have compared the table already) leave for
 * `how`; lagging turns diverged on a miss of that kind; seeding and diverged stay. The only way
 * back to in_sync is a reconciliation (issue 13), never a miss. */
enum sync_state sync_state_after_miss(enum sync_state from, enum sync_state how);

/* The reconciliation rule (proxy/control/reconcile.c keeps the passes):
 * - SEED: any state -> seeding (the backfill copies everything; a pass running is stale).
 * - START: refused (false) from in_sync (nothing owed) and from reconciling (a pass runs); else
 *   -> reconciling.
 * - DONE of the pass: in_sync only from reconciling and only for the current pass (a miss during
 *   the pass left reconciling already, and a pass id of another pass is stale); else unchanged.
 * - ABORT, a pass that failed, a primary switch or mirror = off during a pass: reconciling ->
 *   diverged (the list of tables is kept); other states unchanged. */
bool sync_state_may_start(enum sync_state from);
enum sync_state sync_state_after_done(enum sync_state from, bool current_pass);
enum sync_state sync_state_after_abort(enum sync_state from);

/* proxy/dualwrite/sync_state.c: the secondary's sync states and their transition rule (see
 * sync_state.h). */
#include "proxy/dualwrite/sync_state.h"

#include <string.h>

static const char *const names[] = {
#define X(n) #n,
    SYNC_STATES(X)
#undef X
};

const char *sync_state_name(enum sync_state st)
{
    return (unsigned)st < SYNC_STATE_COUNT ? names[st] : "unknown";
}

int sync_state_parse(const char *name)
{
    for (int i = 0; i < SYNC_STATE_COUNT; i++) {
        if (strcmp(names[i], name) == 0) {
            return i;
        }
    }
    return -1;
}

enum sync_state sync_state_after_miss(enum sync_state from, enum sync_state how)
{
    switch (from) {
    case SYNC_in_sync:
    case SYNC_reconciling:
        return how;
    case SYNC_lagging:
        return how == SYNC_diverged ? SYNC_diverged : SYNC_lagging;
    case SYNC_seeding:
    case SYNC_diverged:
    case SYNC_STATE_COUNT:
        return from;
    }
    return from;
}

bool sync_state_may_start(enum sync_state from)
{
    return from != SYNC_in_sync && from != SYNC_reconciling && from < SYNC_STATE_COUNT;
}

enum sync_state sync_state_after_done(enum sync_state from, bool current_pass)
{
    return from == SYNC_reconciling && current_pass ? SYNC_in_sync : from;
}

enum sync_state sync_state_after_abort(enum sync_state from)
{
    return from == SYNC_reconciling ? SYNC_diverged : from;
}

/* protocol/replay.h: what the secondary runs for a unit the primary stopped with an error: the
 * steps the primary completed, verbatim, then one statement that fails on purpose. The secondary
 * so applies exactly what the primary applied and ends in the same transaction state (an
 * implicit transaction rolled back, an explicit one aborted, a savepoint of the prefix created),
 * without ever running the statement the primary rejected. Pure: no I/O, no clock.
 *
 * A "step" is what the server acknowledges one at a time: each statement of a simple Query
 * (CommandComplete or EmptyQueryResponse), each Parse / Bind / Describe / Execute / Close of an
 * extended batch (ParseComplete, BindComplete, RowDescription or NoData, CommandComplete /
 * EmptyQueryResponse / PortalSuspended, CloseComplete) and a FunctionCall
 * (FunctionCallResponse). protocol/outcome.c counts the steps the primary completed before its
 * first ErrorResponse. */
#pragma once
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "protocol/wire.h"

/* Error codes returned by this module (negative, libuv style). */
#define REPLAY_EUNSUPPORTED (-4001) /* a unit shape the replay does not rebuild */
#define REPLAY_ESPLIT       (-4002) /* the Query text does not split into the steps completed */
#define REPLAY_ENOMEM       (-4003)

/* The statement that fails on purpose, and the SQLSTATE it fails with on the secondary
 * (invalid_cursor_name / "portal does not exist": no side effect, any transaction state). */
#define REPLAY_FAIL_NAME     "pgdual: the primary failed here"
#define REPLAY_FAIL_SQL      "FETCH \"" REPLAY_FAIL_NAME "\""
#define REPLAY_FAIL_SQLSTATE "34000"

/* Where the primary failed, as far as the replay could tell. */
struct replay_failure {
    uint8_t type;           /* frontend message of the failed step (0: at the end, e.g. a COMMIT) */
    size_t stmt_offset;     /* simple Query: the failed statement in the text ... */
    size_t stmt_len;        /* ... (0, 0 when it failed after the last statement) */
    uint32_t execute_index; /* batch: Execute messages before the failed one */
};

/* Build the secondary's version of one unit into out. msgs holds the unit's frontend messages,
 * whole (type and length included), as the client sent them: one Query, or one FunctionCall,
 * or an extended batch ending with Sync. steps_done is how many steps the primary completed
 * before its error; syntax_error: the primary's error was its own parse of the text rejecting
 * it (42601 raised outside any code), so nothing of a Query ran. On success *fail tells which
 * step failed. Returns 0, REPLAY_EUNSUPPORTED (a Query or FunctionCall inside an extended batch,
 * COPY data, a batch without its Sync), REPLAY_ESPLIT (a text libpg_query cannot split, unless
 * the server could not either; fewer statements than steps_done: the text cannot be trusted) or
 * REPLAY_ENOMEM. out is only appended to; on failure its contents are unspecified. */
int replay_build(const uint8_t *msgs, size_t len, uint32_t steps_done, bool syntax_error,
                 struct wbuf *out, struct replay_failure *fail) __attribute__((warn_unused_result));

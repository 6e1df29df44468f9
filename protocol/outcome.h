/* protocol/outcome.h: the comparison hash. Folds one backend's reply to one unit (a simple Query
 * or an extended batch up to Sync) into a small comparable summary while the reply streams:
 * command tags, the first SQLSTATE, row count and an order-insensitive hash of RowDescription
 * and every DataRow. Nothing is buffered. Pure: no I/O. */
#pragma once
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "protocol/wire.h"

#define OUTCOME_TAG_MAX 64

struct outcome {
    uint32_t commands;              /* CommandComplete / EmptyQueryResponse messages seen */
    uint64_t tags_hash;             /* ordered hash of every command tag */
    char last_tag[OUTCOME_TAG_MAX]; /* the last command tag, for logs */
    bool error;                     /* an ErrorResponse was seen */
    char sqlstate[6];               /* of the first ErrorResponse */
    bool error_in_code;             /* ...which has a context ('W'): raised inside code that ran */
    uint64_t rows;                  /* DataRow messages */
    uint64_t rows_hash;  /* sum of per-row hashes: the same rows in any order are equal */
    uint64_t shape_hash; /* ordered hash of RowDescription (column names and type oids) */
    uint8_t txn_status;  /* from ReadyForQuery; 0 until it arrives */
    /* Steps the server acknowledged (see protocol/replay.h): commands counts the statements of
     * a simple Query and the Executes of a batch; acks the other per-message acknowledgements
     * (ParseComplete, BindComplete, CloseComplete, RowDescription/NoData of a Describe,
     * PortalSuspended, FunctionCallResponse). Both as they stood at the first ErrorResponse. */
    uint32_t acks;
    uint32_t commands_at_error, acks_at_error;
    uint64_t tags_hash_at_error; /* tags_hash as it stood at the first ErrorResponse */
    uint8_t unknown; /* OUTCOME_UNKNOWN_* bits: parts a message too long to read whole hid */
};

/* A message longer than OUTCOME_CAPTURE_MAX is never read in part as if it were whole: what it
 * would have told is marked unknown, and the comparison leaves that part out. */
#define OUTCOME_UNKNOWN_SQLSTATE 1u /* an ErrorResponse cut before its SQLSTATE field */
#define OUTCOME_UNKNOWN_TAGS     2u /* a CommandComplete too long: the tag hash is incomplete */
#define OUTCOME_UNKNOWN_SHAPE    4u /* a RowDescription too long: the shape hash is incomplete */
/* The rows and their shape are not comparable: the secondary ran a pinned statement that returns
 * none where the client's returned rows (proxy/dualwrite/pin_session.h). */
#define OUTCOME_UNKNOWN_ROWS     8u

/* Steps o's server completed before its error: statements of a simple Query (simple = true),
 * or messages of an extended batch or FunctionCall. Meaningful only when o->error. */
uint32_t outcome_steps_done(const struct outcome *o, bool simple);

void outcome_init(struct outcome *o);

/* Streams one backend's messages into an outcome. Owns a hash state and a bounded capture
 * buffer for the small messages it must read whole (tags, errors, RowDescription). */
struct outcome_reader {
    void *row_state;   /* XXH3_state_t, reset per DataRow */
    uint8_t type;      /* message being read */
    struct wbuf small; /* body of a non-DataRow message, up to OUTCOME_CAPTURE_MAX */
    bool cut;          /* the body went past OUTCOME_CAPTURE_MAX: small holds its first part */
};
#define OUTCOME_CAPTURE_MAX (64 * 1024)

int outcome_reader_init(struct outcome_reader *r) __attribute__((warn_unused_result));
void outcome_reader_free(struct outcome_reader *r);
void outcome_begin(struct outcome_reader *r, uint8_t type);
void outcome_body(struct outcome_reader *r, const uint8_t *p, size_t n);
/* Message complete: fold it into o. */
void outcome_end(struct outcome_reader *r, struct outcome *o);

/* Kinds of difference, as logged and counted. X(name). */
#define OUTCOME_DIFFS(X) \
    X(none)              \
    X(error_mismatch)    \
    X(sqlstate_mismatch) \
    X(tag_mismatch)      \
    X(result_mismatch)

enum outcome_diff {
#define X(n) OUTCOME_DIFF_##n,
    OUTCOME_DIFFS(X)
#undef X
};

/* The first way a and b differ, or OUTCOME_DIFF_none. A part unknown on either side (see
 * OUTCOME_UNKNOWN_*) is not compared: outcome_fully_compared says whether that happened. */
enum outcome_diff outcome_compare(const struct outcome *a, const struct outcome *b);
/* Did outcome_compare(a, b) compare every part (no part unknown on either side)? */
bool outcome_fully_compared(const struct outcome *a, const struct outcome *b);
const char *outcome_diff_name(enum outcome_diff d);

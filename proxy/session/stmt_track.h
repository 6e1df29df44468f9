/* proxy/session/stmt_track.h: the session's prepared statements and portals as the primary holds
 * them, kept exactly rather than guessed. A message that creates or drops a name (Parse, Bind,
 * Close, and the SQL PREPARE, DEALLOCATE, DISCARD ALL, DECLARE, CLOSE a Query or an Execute runs)
 * is recorded when the client sends it, and changes the settled knowledge only when the primary's
 * reply shows it ran: its completion message (ParseComplete, BindComplete, CloseComplete,
 * CommandComplete / PortalSuspended / EmptyQueryResponse) counted in order within its unit; an
 * ErrorResponse means the rest of the unit did not run. So a Parse of a name that exists (the
 * server answers 42P05) changes nothing, and a failed unit cannot leave a class the server does
 * not hold.
 *
 * A lookup answers NULL ("unknown": the caller mirrors) unless the class is certain:
 * - the unit being received defined the name itself: its later messages run only if that
 *   message ran, so the name then holds exactly that definition;
 * - otherwise the name is settled and no unanswered message of an earlier unit touches it.
 * Unknown is always safe: mirroring a read costs work; routing a write to one side loses it. */
#pragma once
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "protocol/wire.h"
#include "proxy/session/stmt_map.h"

/* Which reply of the primary shows that a message ran. */
enum stmt_reply {
    STMT_REPLY_PARSE, /* ParseComplete */
    STMT_REPLY_BIND,  /* BindComplete */
    STMT_REPLY_CLOSE, /* CloseComplete */
    STMT_REPLY_EXEC,  /* CommandComplete, PortalSuspended or EmptyQueryResponse */
    STMT_REPLY_NONE,  /* nothing does: the change is applied whatever happens (a removal) */
};
#define STMT_REPLY_KINDS 4

enum stmt_space { STMT_SPACE_STATEMENT, STMT_SPACE_PORTAL };
#define STMT_SPACE_BOTH 3 /* bit mask of (1 << enum stmt_space) for stmt_track_clear */

struct stmt_op;

struct stmt_track {
    struct stmt_map maps[2]; /* by enum stmt_space */
    struct stmt_op *ops;     /* recorded messages not yet answered: ops[head .. n), in order */
    size_t head, n, cap;
    /* Something could not be recorded (memory, bounds): nothing is known any more, every
     * lookup answers NULL for the rest of the session. */
    bool lost;
    /* ...because the client went past max_session_statements (names in one map): the session
     * ends with 54000 (session_frontend.c). */
    bool over_limit;
    /* The unit being received (its serial) and its own layer (see struct stmt_entry). */
    uint32_t unit;
    uint32_t epoch;
    bool unit_cleared[2];            /* the unit dropped every name of the space */
    uint32_t sent[STMT_REPLY_KINDS]; /* its messages so far, by the reply that confirms them */
    uint32_t ans_unit;               /* the unit the primary is answering */
    uint32_t got[STMT_REPLY_KINDS];  /* ...its completions so far */
};

/* A zeroed struct stmt_track is empty. */
void stmt_track_free(struct stmt_track *t);
/* At most max names in each space (0: STMT_MAP_MAX). */
void stmt_track_set_limit(struct stmt_track *t, size_t max);

/* ---- the unit being received (serial `unit`) ---- */

/* The unit sent one more message confirmed by `reply` (count: how many, e.g. a Query's
 * statements). Returns the number of such messages before it (so the first has index old + 1). */
uint32_t stmt_track_count(struct stmt_track *t, uint32_t unit, enum stmt_reply reply,
                          uint32_t count);
/* The class of name as the unit's next message would find it, or NULL when unknown. Borrowed
 * until the next call on t. */
const struct stmt_class *stmt_track_find(struct stmt_track *t, uint32_t unit, enum stmt_space sp,
                                         const char *name);
/* Record that the unit's message number `index` of kind `reply` defines name as c with the text
 * sql (both copied; c->sql is ignored, on and made_in are set here) or removes it. */
void stmt_track_define(struct stmt_track *t, uint32_t unit, enum stmt_space sp, const char *name,
                       const struct stmt_class *c, const char *sql, enum stmt_reply reply,
                       uint32_t index);
void stmt_track_remove(struct stmt_track *t, uint32_t unit, enum stmt_space sp, const char *name,
                       enum stmt_reply reply, uint32_t index);
/* ...drops every name of the spaces in mask (STMT_SPACE_BOTH or 1 << space). */
void stmt_track_clear(struct stmt_track *t, uint32_t unit, unsigned mask, enum stmt_reply reply,
                      uint32_t index);

/* The class of name when the primary holds it as parsed with pinning's RETURNING list (a pin
 * shape), or NULL. Unlike stmt_track_find it does not answer "unknown" after code pgdual cannot
 * see into or a lexing it could not trust: the newest message about the name decides, else what
 * was settled. Borrowed until the next change of t. */
const struct stmt_class *stmt_track_pinned(const struct stmt_track *t, enum stmt_space sp,
                                           const char *name);
/* ...the same for what pinning must remember of a name whatever else is forgotten: a pin shape,
 * or the reason its writes are counted (unpinned). */
const struct stmt_class *stmt_track_kept(const struct stmt_track *t, enum stmt_space sp,
                                         const char *name);
/* What the unit `serial` defined is on these backends (bit per enum dial_backend). */
void stmt_track_place(struct stmt_track *t, uint32_t serial, uint8_t on);

/* ---- the primary's answers ---- */

/* A message of the primary's reply to unit `unit` (0 for pgdual's own statements). */
void stmt_track_reply(struct stmt_track *t, uint32_t unit, uint8_t type);
/* The unit ran without error on the backend that served it (a routed read): every message ran. */
void stmt_track_confirm_all(struct stmt_track *t, uint32_t unit);
/* ---- a new secondary connection (proxy/session/session_reconnect.c) ---- */

/* The Parse of name the unit just recorded (stmt_track_define) was sent to both sides as msg
 * (len bytes, header included): keep it, to send it again. */
void stmt_track_note_parse(struct stmt_track *t, uint32_t unit, const char *name,
                           const uint8_t *msg, size_t len);
/* Has the primary answered every recorded message? */
bool stmt_track_settled(const struct stmt_track *t);
/* Append to out the Parse messages of every prepared statement the session holds (settled: call
 * at a unit boundary). Returns how many, or -1 when a named statement (or a portal) is not
 * known exactly. */
int stmt_track_restore(struct stmt_track *t, struct wbuf *out);

/* The unit is finished (its ReadyForQuery, with the session's transaction status after it):
 * settle what it (and anything earlier) recorded. Back outside a transaction block, no portal
 * is left. */
void stmt_track_unit_done(struct stmt_track *t, uint32_t unit, uint8_t txn_status);

/* proxy/dualwrite/mirror.h: the mirroring state machine of one session. The client's messages are
 * cut into units (a simple Query with its COPY data, or an extended batch up to Sync); the primary
 * gets every unit at once; the secondary gets the mirrored ones in primary completion order
 * (lockstep) or at once (parallel), following the primary's transaction fate; the two replies
 * are compared unit by unit. */
#pragma once
#include <stdbool.h>
#include <stdint.h>

#include "protocol/outcome.h"
#include "protocol/wire.h"

#define MIRROR_HOLD_MAX (256 * 1024)

struct session;
struct unit_pin;

/* Where a unit stands on the secondary. */
#define UNIT_SEC_STATES(X)                                        \
    X(PENDING) /* not decided yet */                              \
    X(SENT)    /* written to the secondary, reply not complete */ \
    X(DONE)    /* the secondary's ReadyForQuery arrived */        \
    X(SKIPPED) /* not for the secondary (a read, the primary rejected it, secondary down) */

enum unit_sec {
#define X(n) UNIT_SEC_##n,
    UNIT_SEC_STATES(X)
#undef X
};

struct unit {
    struct unit *next;
    bool sealed;           /* its last message (Query, Sync, FunctionCall) has been received */
    bool mirrored;         /* a write or session-state change: the secondary must get it */
    bool txn_end;          /* ends a transaction (COMMIT/END/ROLLBACK…): never sent early */
    bool undoes;           /* executes (extended protocol) a statement that ends or undoes a
                              transaction, a ROLLBACK TO included: what the block made may be
                              gone (pgdual's table for WITH rows: pin_frontend.c, pin_reply.c) */
    bool copy_in;          /* COPY FROM STDIN: its data streams to the secondary */
    bool copy_end_held;    /* the client's CopyDone/CopyFail, held until the primary decides */
    bool copy_failed;      /* the client sent CopyFail */
    bool copy_ext;         /* the COPY came through Execute: its copy data ends with a Sync */
    bool copy_sync_held;   /* ...the client's Sync after CopyDone/CopyFail, held with it */
    bool copy_started;     /* the primary sent CopyInResponse: the rest of the reply may wait */
    bool sec_copy_started; /* the secondary sent CopyInResponse */
    bool copy_end_sent;    /* the held end (and Sync) went to the secondary */
    bool copy_fail_forced; /* ...as pgdual's CopyFail, the primary having failed: the
                              secondary's error is then pgdual's doing, not comparable */
    bool nondeterministic;
    bool prim_done;
    bool hold_rfq; /* the primary's ReadyForQuery waits for the secondary (commit_wait) */
    /* The primary stopped at an error: the secondary got the steps the primary completed and a
     * statement that fails on purpose (protocol/replay.h), compared as such. */
    bool replayed;
    uint32_t prim_msgs;    /* messages of the primary's reply to it so far (any class) */
    uint32_t reply_stmts;  /* ...of which CommandComplete / EmptyQueryResponse (statements) */
    uint32_t reply_steps;  /* ...of which a batch step's answer (protocol/replay.h) */
    bool outcome_partial;  /* turned mirrored after the primary began answering: prim misses
                              the first steps (see classify_into in session_relay.c) */
    uint8_t sec_rfq_left;  /* ReadyForQuery messages the secondary still owes for this unit */
    uint8_t sec_lead_rfqs; /* ...of which the first answer pgdual's own leading statement (not
                              folded into the secondary's outcome) */
    /* Bit i: the unit's Execute number i runs an INSERT/MERGE/COPY FROM or a nondeterministic
     * write (it may draw sequence values); Executes past 63 share bit 63. */
    uint64_t execute_draws;
    int executes;       /* Execute messages in the unit so far */
    uint32_t step_msgs; /* Parse/Bind/Describe/Execute/Close messages so far (protocol/replay.h
                           steps: the primary answers each with one counted reply) */
    bool pin_inactive;  /* sent while pinning was off: what it makes up goes verbatim */
    bool inserts;       /* an INSERT/MERGE/COPY FROM in it (classify.h): may fire defaults */
    bool pinned_sent;   /* the secondary gets pinned statements in it (pin_secondary_bytes) */
    bool function_call; /* a FunctionCall message: a function by OID, pgdual cannot tell which */
    bool user_code; /* a mirrored DO, CALL, call of a function pgdual does not know, or FunctionCall
                       message: what it writes, and the values it makes up, are not known */
    bool session_objects; /* it PREPAREs, DEALLOCATEs, DISCARDs ... by name (classify.h) */
    /* Lockstep ordering of autocommit writes (see "wrap" in struct mirror). */
    bool defer_fwd;   /* started with the session idle: sent to the primary when sealed */
    bool wrap_ok;     /* every statement so far may run inside a transaction block unchanged */
    int writes;       /* mirrored statements (Query or Execute) in the unit */
    int lex_writes;   /* ...of which may change how the server lexes a text behind them (not
                         an Execute of BEGIN/SAVEPOINT/RELEASE: session_lexing_unsure) */
    bool exec_doubt;  /* an Execute in it may drop or roll back pgdual's table for WITH rows
                         (pin_frontend.c, rewrite_execute) */
    int lock_reads;   /* ...of which lock-only reads (SELECT ... FOR UPDATE: classify.h) */
    int unsure_reads; /* ...of which reads mirrored only because the lexing was unsure */
    bool lex_unsafe;  /* a Query in it was sent while the server may lex otherwise than
                         libpg_query (standard_conforming_strings off, such an encoding) */
    bool commits;     /* it Executes a COMMIT/PREPARE TRANSACTION: ends a block by itself, Sync
                         or not (see session_work_at_stake) */
    bool wrapped;     /* runs inside pgdual's BEGIN/COMMIT on the primary */
    bool internal;    /* pgdual's own statement on the primary: its reply is not the client's */
    bool wrap_end;    /* internal: the COMMIT/ROLLBACK that ends the wrap */
    /* Read routing (proxy/dualwrite/route.c). */
    uint32_t serial; /* the session's unit number: which unit defined a statement or portal */
    bool may_wrap;   /* started when an autocommit write could be wrapped */
    bool routable;   /* nothing in it but proven reads (and Parse/Bind/Describe for them) */
    /* Started in relay mode (session_relay_mode): its simple queries may carry classify_plain's
     * class, so it never reaches the secondary, whatever the dials say when it is dispatched. */
    bool relay;
    int reads;                  /* routed-read statements (Query or Execute) in it */
    bool read_nondeterministic; /* a read uses now(), random() ...: not comparable */
    bool defines;               /* it Parses a statement or Binds a portal */
    uint8_t needs;              /* backends (bit per enum dial_backend) holding what it uses but did
                                   not define itself */
    bool drawn;                 /* the read dials were drawn for it: */
    int draw_serve;             /* ...the backend to serve it */
    bool draw_shadow;           /* ...and whether to shadow it */
    bool route_waiting;         /* complete, held back until the secondary caught up (route_try) */
    uint64_t wait_since_us;     /* ...since then */
    enum unit_sec sec;
    uint8_t prim_status_before; /* the primary's transaction status when this unit started */
    struct wbuf bytes;          /* frontend messages kept for the secondary */
    /* Deferred and rewritten for pinning (pin_frontend_rewrite): what the primary gets when the
     * deferral ends; empty while the two are the same. */
    struct wbuf prim_bytes;
    bool prim_rewritten;
    bool catalog_change;  /* a statement of it may change the catalog (see pin_session.h) */
    struct unit_pin *pin; /* deterministic writes (pin_session.h); NULL: nothing pinned */
    struct outcome prim, second;
    uint64_t start_us, prim_us, sec_start_us, sec_us;
    uint64_t fingerprint;
    char *sql; /* first mirrored statement's text (for the divergence log), owned */
};

struct mirror {
    struct unit *head, *tail;
    uint32_t next_serial;
    struct unit *building; /* receiving client messages; NULL between units */
    int in_flight;         /* units the secondary has not finished (lag bound) */
    bool secondary_up;
    int busy;             /* depth of mirror calls in progress (see mirror_leave) */
    int sec_rfq_extra;    /* ReadyForQuery messages the secondary owes an extended COPY it
                             refused at its start (one for its first Sync, one for the last) */
    bool release_pending; /* a held reply may go once the outermost call returns */
    /* ReadyForQuery messages the secondary owes pgdual's re-creation of the session's prepared
     * statements on a new connection (session_reconnect.c), answered before any unit's; and
     * whether it reported an error. */
    int sec_restore_rfqs;
    bool sec_restore_failed;
    uint8_t prim_status; /* the primary's transaction status after its last completed unit */
    /* The transaction status the secondary will have once it has run everything sent to it, if
     * it follows the primary. A read that failed on the primary inside a transaction (reads never
     * reach the secondary) leaves the primary's transaction failed and the secondary's not: the
     * next unit for the secondary then fails it first (see decide_after_primary). */
    uint8_t sec_txn_expected;
    /* The server's pinned_gen when this session last raised the secondary's sequences (0:
     * never): protocol/seq_raise.h. */
    uint64_t seq_raised_gen;
    /* commit_wait = both: a mirrored unit's reply from the primary is held (up to
     * MIRROR_HOLD_MAX bytes; more streams) until its ReadyForQuery shows whether the client
     * must wait for the secondary. The whole reply is held, not only the ReadyForQuery, so a
     * client blocked in PQgetResult never waits with a lock-holding thread of its own. */
    bool holding;          /* held reply complete: waiting for the secondary */
    bool hold_deferred;    /* held reply complete, but pinning's read-back is read first */
    struct wbuf held;      /* the primary's reply bytes not yet released to the client */
    struct wbuf held_rest; /* bytes after the held ReadyForQuery, not yet scanned */
    /* Lockstep ordering across sessions: the primary's row locks decide the order of conflicting
     * writes, so the primary must not release them before the secondary applied the write. An
     * autocommit write (whole unit, session idle) therefore runs on the primary inside pgdual's
     * own BEGIN ... COMMIT: BEGIN goes just before the unit, the unit's reply is held, the
     * secondary applies the unit, then COMMIT (ROLLBACK if the primary rejected it) goes to the
     * primary, and the held reply is released with ReadyForQuery status 'I'. The client's next
     * message waits meanwhile (the session's gate). A client COMMIT waits likewise until the
     * secondary has applied every earlier unit. */
    bool wrap_open;          /* a wrapped unit's transaction is open on the primary */
    bool wrap_prim_done;     /* ...and the primary has answered the unit */
    bool wrap_commit;        /* ...successfully: end it with COMMIT, else ROLLBACK */
    bool wrap_finishing;     /* the COMMIT/ROLLBACK has been sent */
    struct wbuf wrap_error;  /* the primary's ErrorResponse to pgdual's own statement, if any */
    bool wrap_commit_failed; /* ...it failed, whether or not the error's bytes could be kept */
    /* A held reply (commit_wait, or a wrap) longer than MIRROR_HOLD_MAX streams, except its
     * tail: the last CommandComplete and what follows it up to ReadyForQuery. libpq hands a
     * result to the application at its CommandComplete, so the tail (a COMMIT's, an autocommit
     * write's) waits for the secondary like the ReadyForQuery. If pgdual's COMMIT of a wrap then
     * fails, the tail is replaced by the error, as PostgreSQL itself reports an error at an
     * implicit commit instead of the CommandComplete: the client never sees a write complete
     * that did not commit. */
    size_t held_tail; /* bytes of the tail's messages (counted whole from their header) */
    /* The wrapped unit's comparison waits for the wrap's end: old's outcome is only known once
     * pgdual's COMMIT answered (a deferred constraint can fail it, on both sides alike). */
    bool wrap_sec_known;                   /* the secondary finished the wrapped unit: */
    enum outcome_diff wrap_diff;           /* ...how the two outcomes of the unit differed */
    struct outcome wrap_prim, wrap_second; /* ...and both outcomes, for the divergence log */
    uint64_t wrap_prim_us, wrap_sec_us;
    bool wrap_changes_data;    /* ...and whether that difference means the data may differ */
    uint64_t wrap_fingerprint; /* the wrapped statement, for the divergence log */
    char *wrap_sql;            /* owned */
};

/* What the primary's ReadyForQuery means for the client's reply. */
enum mirror_reply {
    MIRROR_REPLY_PASS,     /* forward it */
    MIRROR_REPLY_HOLD,     /* hold the reply until the secondary (or the wrap) is done */
    MIRROR_REPLY_WRAP_END, /* pgdual's COMMIT/ROLLBACK finished: release the held reply */
};

void mirror_init(struct mirror *m);
void mirror_free(struct mirror *m);
/* The unit receiving client messages, created on first use. NULL on allocation failure. */
struct unit *mirror_building(struct mirror *m);
/* The building unit's last message arrived. */
void mirror_seal(struct session *s);
/* Unlink the building unit from the queue and hand it to the caller (route.c takes reads). */
struct unit *mirror_take_building(struct mirror *m);
void mirror_unit_free(struct unit *u);
/* The oldest unit the primary / the secondary is working on. */
struct unit *mirror_primary_unit(const struct mirror *m);
struct unit *mirror_secondary_unit(const struct mirror *m);
/* The primary finished its oldest unit (its ReadyForQuery arrived with status). */
enum mirror_reply mirror_primary_done(struct session *s, uint8_t status);
/* The secondary finished its oldest unit. */
void mirror_secondary_done(struct session *s);
/* Send whatever units are ready for the secondary. */
void mirror_dispatch(struct session *s);
/* Client COPY data for the copy unit: stream it to the secondary if the unit is already there. */
void mirror_copy_data(struct session *s, const uint8_t *msg, size_t len);
/* A Sync from the client: true if it closes an extended COPY still running on the primary (it
 * then belongs to that unit and is held with the COPY's end for the secondary), false if it is
 * an ordinary Sync. */
bool mirror_copy_sync(struct session *s);
/* A CopyInResponse began on the primary (primary true) or the secondary for its current unit. */
void mirror_copy_started(struct session *s, bool primary);
/* The statement and portal name pgdual's own units use on the primary. */
#define MIRROR_OWN_STATEMENT "pgdual.own"
/* A unit of pgdual's own (reply swallowed, never mirrored) running sql on the primary, queued
 * before `before` (NULL: at the tail). Its messages (wire_put_own_statement: the client's unnamed
 * statement and portal stay as they are) are appended to out. NULL on failure. */
struct unit *mirror_internal_unit(struct mirror *m, struct unit *before, const char *sql,
                                  struct wbuf *out);
/* True while a unit other than the building one is unfinished on the primary or the secondary. */
bool mirror_secondary_behind(const struct mirror *m);
/* A message of type with body length len begins in the primary's reply to a client unit: keep
 * held_tail up to date. */
void mirror_tail_note(struct mirror *m, uint8_t type, uint32_t len);
/* The wrapped unit is done on both sides: time to end pgdual's transaction on the primary. */
bool mirror_wrap_ready(const struct mirror *m);
/* mirror_compare.c: both sides have finished u: compare their outcomes; a difference is a
 * divergence, and takes the secondary out of in_sync when the data may differ now (a wrapped
 * unit waits for mirror_wrap_ended). */
void mirror_compare_unit(struct session *s, struct unit *u);
/* pgdual's COMMIT (or ROLLBACK) ended the wrap; commit_failed: the primary refused to commit.
 * Compares the wrapped unit now that old's outcome is known, and takes the secondary out of sync
 * if the two sides ended differently (new applied a write old did not commit, or the reverse). */
void mirror_wrap_ended(struct session *s, bool commit_failed);
/* The session is closing without finishing its wrap (a session whose client left finishes it
 * first: session_linger.c; this is SIGINT, a deadline, a lost primary). The wrapped write is
 * rolled back on the primary when its connection closes, while the secondary applied (or is
 * applying) it: counted and logged as a divergence, so the write on new alone is never silent. */
void mirror_session_closing(struct session *s);
/* The secondary is gone: everything proceeds on the primary alone. */
void mirror_secondary_lost(struct session *s, const char *why);

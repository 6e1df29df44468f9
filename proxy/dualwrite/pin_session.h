/* proxy/dualwrite/pin_session.h: deterministic writes in a session (DESIGN §5a; the SQL and bytes
 * are protocol/pin.c's). In lockstep with pin_writes on, a write whose values the server makes
 * up runs on the primary with pgdual's RETURNING list; the relay takes those columns out of the
 * client's reply and keeps them; the secondary then gets the deterministic statement built from
 * them instead of the client's. What cannot be pinned goes verbatim and takes the secondary out
 * of in_sync (a nondeterministic_write divergence, its table queued for reconciliation).
 *
 * The catalog (which columns have defaults the server makes up, the key, what forbids a pin)
 * is read from the primary on the session's own connection, before the statement that needs
 * it, and cached per session: the same name means another table under another search_path or
 * role. Any statement that may change the catalog (DDL, SET, code pgdual cannot see into) bumps
 * a server-wide generation that empties every session's cache, and again when its transaction
 * ends. */
#pragma once
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "protocol/pin.h"
#include "protocol/wire.h"

enum pin_action { PIN_PASS, PIN_REWRITE, PIN_DROP };

struct session;
struct unit;
struct backend;

#define PIN_CACHE_MAX     64          /* tables a session remembers; more empty the cache */
#define PIN_ROWS_MAX      (64u << 20) /* JSON kept for one pinned statement; more goes verbatim */
#define PIN_CTE_NAMES_MAX 1024

struct pin_cache_entry {
    pin_name schema, rel; /* the name as statements write it */
    bool oneshot;         /* valid for the message being handled only (a failed or stale lookup) */
    bool failed;          /* the lookup failed: nothing is known */
    struct pin_table table;
};

/* Table knowledge shared by every session that logs in alike (database, user, the other startup
 * parameters) and has not changed anything a catalog lookup depends on since (search_path, role:
 * any statement that may change the catalog). The server owns one; it has its own lock. */
struct pin_shared;
struct pin_shared *pin_shared_new(void);
void pin_shared_free(struct pin_shared *sh);

/* One session's catalog knowledge and the message it is working on. */
struct pin_catalog {
    uint64_t login_sig; /* hash of the startup parameters but application_name */
    /* pgdual's pinned statements prepared on the secondary are there while their epoch is this
     * one; it moves when they may be gone (an error there, DISCARD/DEALLOCATE, code pgdual
     * cannot see into). */
    uint64_t sec_epoch;
    uint32_t next_sec_id;
    bool private_only; /* it ran something that may change what a lookup says: no sharing */
    struct pin_cache_entry *entries; /* owned, n of them */
    int n;
    uint64_t gen;        /* the server's catalog generation the entries belong to */
    bool lookup_pending; /* a lookup's reply is on its way: the client's message waits */
    /* pgdual's temporary table for WITH query rows (PIN_CTE_CREATE) was made on the primary
     * cte_primary (dropped, for all pgdual knows, by any DDL or DISCARD of the client's since). */
    bool cte_table;
    int cte_primary;
    bool cte_create_tried; /* ...and failed, for the message being handled */
    uint32_t rec_next;     /* the next number a unit's WITH query rows are recorded under */
    bool cte_in_txn;       /* made inside a transaction block: gone if it rolls back */
    uint64_t lookup_gen;
    bool lookup_in_txn;            /* made inside a transaction block: never shared */
    struct pin_cache_entry lookup; /* what it fills */
    bool ddl_in_txn;               /* the open transaction may have changed the catalog */
    /* The plan of the message being handled (pin_frontend_lookup), used by pin_frontend_rewrite. */
    struct pin_plan plan;
    bool plan_valid;
    struct wbuf out; /* the rewritten message for the primary */
    /* The decision on the Parse or Bind being handled, for its class (pin_frontend_class). */
    struct pin_shape *msg_shape;  /* a reference */
    struct pin_cte_stmt *msg_cte; /* a Parse of a statement whose WITH writes may be pinned at
                                     its Binds (pin_cte_exec.c): a reference */
    const char *msg_unpinned;
    bool msg_known;
    bool msg_pin_off;
    bool msg_unanalysed; /* the Parse came while the analysis was off (pin_analysis_active) */
    /* SQL PREPAREs of the Query being handled that are counted, by statement number (their
     * class keeps the reason, so each EXECUTE of the name is counted too); past
     * PIN_PREPARED_MAX, prepared_more counts every later PREPARE of the Query. query_unanalysed:
     * the Query came while the analysis was off: each PREPARE of it is counted. Both hold until
     * the next Query; only session_classify's effects of that Query read them. */
#define PIN_PREPARED_MAX 8
    int nprepared;
    uint32_t prepared_at[PIN_PREPARED_MAX];
    const char *prepared_why[PIN_PREPARED_MAX];
    const char *prepared_more;
    bool query_unanalysed;
    char msg_table[2 * PIN_NAME_MAX + 2];
    /* The primary's reply while a unit with pinned steps is relayed (session_relay.c). */
    bool filtering;         /* the relay's current feed goes through pin_reply_* */
    bool msg_filtered;      /* the message being scanned began while filtering */
    enum pin_action action; /* what pin_reply_begin said of it */
    struct wbuf relay_out;  /* what the client gets of the feed */
    struct wbuf reply_msg;  /* the body of a message kept whole (PIN_REWRITE, PIN_DROP) */
    bool msg_own;           /* the message being relayed answers pgdual's Close or Parse */
    /* Portals the primary holds bound to pgdual's PIN_CTE_STMT_NAME (pin_cte_exec.c), until a
     * Bind or Close of the name or the end of the transaction: an Execute of one in a later
     * batch runs pgdual's statement there (its rows cannot be used: counted). */
    struct pin_cte_live *live;
    int nlive;
    /* Names the client prepared data-modifying WITH statements under (pin_cte_parsed), at most
     * PIN_CTE_NAMES_MAX: a Bind of one pgdual no longer knows is counted. */
    char **cte_names;
    int ncte_names;
    bool cte_names_lost; /* one could not be kept (out of memory): the WITH work stays on */
    /* pgdual's own statements on the primary (pin_cte_exec.c): the number the next one is named
     * by, the OID of pgdual's table (PIN_CTE_CHECK), a generation DEALLOCATE ALL and DISCARD ALL
     * move (they drop pgdual's statements too), and names of its statements the primary may
     * still hold that nothing uses (Closed behind the client's next Parse or Close). */
    uint32_t own_next_id;
    uint32_t cte_oid;
    uint64_t own_gen;
#define PIN_STALE_MAX 16
    char stale[PIN_STALE_MAX][PIN_CTE_OWN_MAX];
    int stale_primary[PIN_STALE_MAX]; /* the backend each is on: closed while it is primary */
    int nstale;
    uint32_t own_token; /* in pgdual's statement names, drawn once: a client cannot guess them */
    bool out_prim_only; /* out holds the client's message and pgdual's behind it: primary only */
    /* The secondary's statement for a WITH statement is parsed at each Execute: it is only run
     * while this epoch is the one of the client's Parse. Moved by a setting the servers report
     * that changes how literals are read (TimeZone, DateStyle, IntervalStyle,
     * standard_conforming_strings, client_encoding) and by DDL, SELECT INTO, CREATE, DISCARD of
     * this session (a table made since could shadow the one the statement named). */
    uint64_t cte_sec_epoch;
    /* The client named a statement or portal "pgdual.…" (pgdual's own names): its WITH
     * statements are no longer pinned through the extended protocol (counted), so pgdual never
     * Closes or Parses a name the client holds. */
    bool names_clash;
};

/* A portal bound to pgdual's statement on the primary. */
struct pin_cte_live {
    char *portal;            /* owned */
    struct pin_cte_stmt *cs; /* a reference */
    uint32_t serial;         /* the unit that bound it */
};

/* A Bind of a statement with pinned WITH queries in an extended batch (pin_cte_exec.c). */
struct pin_cte_bind {
    size_t at, len;          /* the client's Bind (whole message) in the unit's bytes */
    char *portal;            /* owned */
    struct pin_cte_stmt *cs; /* a reference */
    uint32_t step;           /* its step number in the unit */
    const char *why;         /* why the primary cannot get pgdual's statement for it, or NULL */
    bool gone;               /* its portal was bound again or closed since */
    int execs;               /* Executes of its portal so far */
    int step_i;              /* the pin_step of its Execute, -1 */
    bool sub;                /* the primary gets prim in place of it */
    bool check;              /* its statement was forgotten since its Parse (code pgdual could
                                not see into): prim begins with a Describe of the client's
                                statement, which fails as the client's Bind would were it gone */
    struct wbuf prim;        /* Bind of pgdual's statement */
};

/* A message of pgdual's sent to the primary behind a client's Parse or Close: its answer (type)
 * is taken out of the client's reply at reply step step. */
struct pin_own {
    uint32_t step;
    uint8_t type;            /* PqMsg_ParseComplete, PqMsg_CloseComplete; ParameterDescription
                                and RowDescription (or NoData) of a Bind's check */
    struct pin_cte_stmt *cs; /* a reference: Parse: the statement made; Close: the one closed */
    char name[PIN_CTE_OWN_MAX];
    bool stale_if_skipped; /* a Close the server skipped: the name is closed later */
    bool done;
};

/* Bytes the primary gets behind the message that ends at byte at of the unit's bytes. */
struct pin_ins {
    size_t at;
    struct wbuf bytes;
};

/* One pinned (or stripped) statement of a unit. */
struct pin_step {
    uint32_t index;    /* Query: statement number; batch: Execute number (from 0) */
    uint32_t reply_at; /* batch: the primary's reply step that answers it */
    bool describe;     /* a Describe of a pinned statement or portal: its columns are stripped */
    bool pinned;       /* its rows go to the secondary (else only stripped from the reply) */
    size_t start, end; /* Query: the statement's bytes in the text */
    struct pin_shape *shape; /* a reference */
    struct wbuf rows;        /* the JSON array being built */
    /* Query: a statement with pinned WITH queries (has_tmpl): the secondary's version of it,
     * filled with the rows of the unit's slots (read back) and, when shape is not NULL, rows. */
    bool has_tmpl;
    struct pin_tmpl tmpl;
    /* Batch: an Execute of a statement with pinned WITH queries whose Bind the primary got as
     * pgdual's statement (cte_bind: unit_pin's cte_binds index + 1; tmpl is the secondary's). */
    int cte_bind;
    bool complete;    /* its CommandComplete came */
    bool broken;      /* rows too many, or out of memory: the secondary gets it verbatim */
    bool other_table; /* ...because a row came from a table the lookup did not describe */
    bool stale_table; /* ...because a row's columns are not the ones the lookup read */
    bool bounded;     /* ...because a row holds an array whose lower bounds are not 1 */
};

/* What pinning does to one unit (struct unit's pin, NULL when nothing). */
struct unit_pin {
    struct pin_step *steps;
    int n, cap;
    uint32_t msg_steps;   /* batch: step messages of the unit so far (Parse, Bind, ...) */
    uint32_t reply_steps; /* the primary's completed steps so far (statements for a Query) */
    int cur;              /* step whose reply is being read, or -1 */
    bool rows_unknown;    /* a pinned statement had RETURNING of the client's: its rows are
                             not compared (the secondary's statement returns none) */
    bool simple;          /* a Query (else an extended batch) */
    uint64_t known;       /* bit i: statement (Query) or Execute (batch) i made up nothing the
                             secondary lacks (pinned, or deterministic); i < 64 */
    const char *unpinned; /* why a statement that makes up values went verbatim (static) */
    uint32_t unpinned_at; /* ...its number (Query: statement; batch: Execute), from 0 */
    char unpinned_table[2 * PIN_NAME_MAX + 2];
    bool owe_all; /* what it wrote is not known to be unpinned_table alone (a trigger writes) */
    /* Rows of pinned WITH queries, one JSON array per slot (pin_cte.c), read back from pgdual's
     * temporary table by an internal unit right after this one; the secondary gets this unit
     * only once they are in. */
    struct wbuf *slots;
    struct pin_shape **slot_shapes; /* slot i's shape (a reference; NULL: a mark's slot) */
    uint32_t nslots;
    uint32_t rec_base; /* slot i's rows are recorded in pgdual's table as rec_base + i */
    bool readback_pending;
    bool readback_failed;
    bool readback_moved;     /* ...because a WITH query's table name finds another table now */
    bool readback_stale;     /* ...because a row's columns are not the ones pgdual read */
    bool readback_json_null; /* ...because a row holds a JSON null in a json/jsonb column */
    bool readback;           /* an internal unit: the read-back of unit owner's slots */
    uint32_t owner;          /* ...its serial */
    bool create;             /* an internal unit: pgdual's PIN_CTE_CHECK */
    bool made;               /* ...its answer was 't' */
    bool lookup;             /* an internal unit: pgdual's catalog lookup */
    /* Binds of statements with pinned WITH queries in this batch (pin_cte_exec.c), in order. */
    struct pin_cte_bind *cte_binds;
    int ncte_binds;
    bool cte_doubt; /* an Execute before may drop pgdual's table or roll it back */
    bool cte_hold;  /* the unit's bytes from hold_at on are held back from the primary */
    size_t hold_at;
    uint32_t made_oid;   /* ...the table's OID */
    struct pin_own *own; /* pgdual's Parse and Close messages in this unit, in order */
    int nown;
    int own_next;        /* the relay: the next one whose answer comes */
    struct pin_ins *ins; /* pgdual's messages the primary gets in the held or deferred bytes */
    int nins;
};

void pin_catalog_free(struct pin_catalog *c);
void unit_pin_free(struct unit_pin *p);

/* ---- the client's messages (session_frontend.c) ---- */

/* Before a Query, Parse or Bind joins a unit: 1 when a catalog lookup (or pgdual's table, for a
 * Bind of a data-modifying WITH statement) was sent for it (the message
 * waits at the gate for the answer), 0 to go on, -1 out of memory. */
int pin_frontend_lookup(struct session *s, const uint8_t *msg, size_t len);
/* The message joined u (its bytes kept for the secondary as they are). When the primary must
 * get it otherwise (RETURNING added, Bind formats, Execute row limit), returns the message to
 * send in *out (s->pin.out, valid until the next call); false to send it as it is. */
bool pin_frontend_rewrite(struct session *s, struct unit *u, const uint8_t *msg, size_t len,
                          const struct wbuf **out);

/* The Parse (bind false) or Bind (bind true) just handled defines cls: give it the pin decision
 * (session_classify.c, before stmt_track_define copies it); pin_frontend_class_done then drops
 * the session's own reference. */
struct stmt_class;
void pin_frontend_class(struct session *s, struct stmt_class *cls, bool bind);
void pin_frontend_class_done(struct session *s);
/* Why statement number index (a SQL PREPARE) of the Query being handled is counted, or NULL
 * (session_classify.c gives the name's class that reason, so each EXECUTE of it is counted as
 * well). may_write: what it prepares is not a plain SELECT. */
const char *pin_frontend_prepared_reason(const struct session *s, uint32_t index, bool may_write);

/* ---- data-modifying WITH queries through the extended protocol (pin_cte_exec.c) ---- */

/* A deferred unit is sent to the primary now: its bytes with each Bind the primary gets as
 * pgdual's statement replaced, into out (false: nothing replaced, out untouched). */
bool pin_cte_primary_bytes(struct session *s, const struct unit *u, size_t from, struct wbuf *out);
/* Is the rest of u (not deferred as a whole) held back from the primary from byte *from of its
 * bytes on (a Bind of a data-modifying WITH statement started it: sent at the unit's Flush or
 * end)? */
bool pin_cte_holding(const struct unit *u, size_t *from);
/* Does u hold a Bind the primary gets as pgdual's statement? */
bool pin_cte_substituted(const struct unit *u);
void pin_cte_hold_end(struct unit *u);
/* Does the primary's reply message of type beginning now answer pgdual's Close or Parse (taken
 * out of the client's reply, not counted as a step)? */
bool pin_reply_own(struct unit *u, uint8_t type);
/* The primary's transaction ended (idle) with unit serial: portals bound to pgdual's statement
 * by it or before are gone (a batch pipelined behind it may have bound one since). */
void pin_cte_txn_idle(struct session *s, uint32_t serial);
/* Does the session hold any data-modifying WITH statement or portal of pgdual's? Not: Binds,
 * Executes and Describes skip the WITH work (a session without WITH statements takes the path
 * it took before). */
bool pin_cte_any(const struct session *s);
/* A DDL, SELECT INTO, CREATE or DISCARD of the session (session_classify.c), or a reported
 * setting that changes how literals are read (session_note_parameter): the secondary's
 * statements of WITH statements prepared before are not run (cte_sec_epoch). */
void pin_cte_catalog_moved(struct session *s);
/* DEALLOCATE ALL or DISCARD ALL: pgdual's own statements are gone too. */
void pin_cte_own_forget(struct session *s);
/* A SQL DEALLOCATE of the client's statement name (Query, or text through Parse/Bind/Execute):
 * pgdual's statement for it is closed behind the client's next Parse or Close. */
void pin_cte_own_dropped(struct session *s, uint32_t serial, const char *name);
/* After pin_frontend_rewrite of a client's Parse, Close or Query (msg): pgdual's own statement
 * for the Parse, Closes of its statements the client's message replaced or closed, into out
 * (s->pin.out: the client's message then pgdual's) with out_prim_only set. */
bool pin_cte_own_messages(struct session *s, struct unit *u, const uint8_t *msg, size_t len,
                          bool rewritten);
/* pgdual's messages for the primary behind u's message that ended at byte at, kept for when the
 * held or deferred bytes go (false: out of memory). */
bool pin_cte_insert(struct unit *u, size_t at, const uint8_t *bytes, size_t len);
/* The primary finished u: pgdual's statements whose Parse it skipped were not made. */
void pin_cte_primary_done(struct session *s, struct unit *u);

/* ---- the primary's reply (session_relay.c) ---- */

/* Does u's reply from the primary go through pin_reply_*? */
bool pin_reply_filters(const struct unit *u);
/* What to do with a message of u's reply beginning now; stmts and steps: the unit's statements
 * (Query) and steps (batch) the primary completed before it (struct unit's reply counts). */
enum pin_action pin_reply_begin(struct session *s, struct unit *u, uint8_t type, uint32_t stmts,
                                uint32_t steps);
/* The whole message (type, body) an action PIN_REWRITE or PIN_DROP kept: what the client sees
 * instead goes to out (nothing for a dropped one). */
void pin_reply_end(struct session *s, struct unit *u, uint8_t type, const uint8_t *body, size_t len,
                   struct wbuf *out);
/* A catalog lookup's DataRow (body) or its end (ReadyForQuery; failed: an error or a cut row). */
void pin_lookup_row(struct session *s, const uint8_t *body, size_t len, bool cut);
void pin_lookup_failed(struct session *s);
void pin_lookup_done(struct session *s);
/* u is pgdual's read-back of WITH query rows (unit_pin readback): a DataRow (body), an error, its
 * end. */
void pin_readback_row(struct session *s, struct unit *u, const uint8_t *body, size_t len, bool cut);
void pin_readback_failed(struct session *s, struct unit *u);
/* pgdual's PIN_CTE_CHECK ended: made, its table is there. */
void pin_create_done(struct session *s, bool made, uint32_t oid, bool in_txn);
void pin_readback_done(struct session *s, struct unit *u);
/* Is u waiting for the read-back of its WITH query rows (the secondary gets it after)? */
bool pin_readback_pending(const struct unit *u);

/* ---- the secondary (mirror.c) ---- */

/* The primary has finished u: put the deterministic statements into u->bytes in place of the
 * pinned ones it completed. Returns the replay steps this added before the primary's error
 * (PIN_BATCH_EXTRA_STEPS per substituted Execute), or -1 when the unit could not be rebuilt
 * (the secondary is then out of sync and u goes verbatim). */
int pin_secondary_bytes(struct session *s, struct unit *u);
/* Was the statement the primary failed at (Query: statement number; batch: Execute number) one
 * whose values pgdual knew (pinned, or nothing made up)? Then no sequence value drawn there
 * matters to the secondary. */
bool pin_failed_step_known(const struct unit *u, uint32_t index);
/* Does u go to the secondary (partly) verbatim though it may make up values there: a statement
 * pinning did not pin, code pgdual cannot see into, or pinning off? Known at its dispatch. */
bool pin_unit_verbatim(const struct unit *u);
/* u's primary verdict is in: a write that made up values and went verbatim is counted, logged
 * with its reason, and takes the secondary out of in_sync. */
void pin_account(struct session *s, struct unit *u, bool some_ran);
/* u is complete (sealed): one that may change the catalog bumps the generation at once. */
void pin_unit_sealed(struct session *s, struct unit *u);
/* The secondary finished u: an error there may have kept pgdual's statements from being
 * prepared. */
void pin_secondary_done(struct session *s, const struct unit *u);
/* u ended on the primary with the session's transaction status: bump the catalog generation
 * after a statement that may have changed it, and at the end of its transaction. */
void pin_unit_primary_done(struct session *s, struct unit *u, uint8_t txn_status);

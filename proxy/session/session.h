/* proxy/session/session.h: one client connection and its backend connections, owned by one worker
 * loop. The session is the unit of failure: session_end() is its only exit. */
#pragma once
#include <stdbool.h>
#include <stdint.h>

#include <uv.h>

#include "protocol/wire.h"
#include "proxy/dualwrite/mirror.h"
#include "proxy/dualwrite/pin_session.h"
#include "proxy/dualwrite/route.h"
#include "proxy/session/backend.h"
#include "proxy/session/endpoint.h"
#include "proxy/session/stmt_track.h"

struct classify_result; /* protocol/classify.h */

struct worker;
struct cancel_entry;
struct dials_snapshot;
struct scram_server;
struct server_conf;

#define SESSION_STATES(X)                                                                  \
    X(STARTUP)    /* reading untyped packets: SSLRequest, StartupMessage, CancelRequest */ \
    X(TLS)        /* client TLS handshake after SSLRequest ('S' sent) */                   \
    X(AUTH)       /* SASL exchange with the client */                                      \
    X(CONNECTING) /* client authenticated; backend logins in progress */                   \
    X(READY)      /* relaying */                                                           \
    X(ADMIN)      /* the admin console: no backend */                                      \
    X(CLOSING)    /* session_end called; handles closing */

enum session_state {
#define X(n) SESSION_##n,
    SESSION_STATES(X)
#undef X
};

/* X(name, sqlstate or NULL (no message to the client), text). */
#define END_REASONS(X)                                                                             \
    X(CLIENT_EOF, NULL, "client closed the connection")                                            \
    X(CLIENT_TERMINATE, NULL, "client sent Terminate")                                             \
    X(PROTOCOL, "08P01", "protocol violation")                                                     \
    X(UNSUPPORTED, "0A000", "not supported by pgdual")                                             \
    X(AUTH_FAILED, "28P01", "authentication failed")                                               \
    X(REFUSED, "28000", "connection refused")                                                      \
    X(TLS_REQUIRED, "28000", "SSL required")                                                       \
    X(TLS_FAILED, NULL, "TLS handshake failed")                                                    \
    X(TOO_MANY, "53300", "too many connections")                                                   \
    X(LOGIN_TIMEOUT, "08006", "client login timeout")                                              \
    X(BACKEND_CONNECT, "08006", "cannot connect to the backend")                                   \
    X(BACKEND_LOST, "08006", "backend connection lost")                                            \
    X(OUT_OF_MEMORY, "53200", "out of memory")                                                     \
    X(TOO_MANY_STATEMENTS, "54000", "too many prepared statements or portals in this session")     \
    X(SHUTDOWN, "57P01", "pgdual is shutting down")                                                \
    X(PRIMARY_SWITCH, "57P01", "the primary changed and this session cannot follow it; reconnect") \
    X(CANCEL_DONE, NULL, "cancel request handled")

enum session_end_reason {
#define X(n, code, text) END_##n,
    END_REASONS(X)
#undef X
};

struct session {
    uint32_t id;            /* also the pid in the BackendKeyData the client gets */
    uint32_t cancel_secret; /* the secret in that BackendKeyData */
    struct worker *worker;  /* owning loop; never changes */
    enum session_state state;
    int refs;            /* 1 for the session + 1 per open libuv handle; freed at 0 */
    bool counted;        /* holds a slot in the server's client count */
    bool over_limit;     /* accepted beyond max_client_conn: refuse after the startup packet */
    bool reserved;       /* a console login in an admin_reserved_conn slot (server's count) */
    bool admin_readonly; /* a stats_users login: the console runs SHOW commands only */

    struct endpoint client;
    uv_timer_t timer; /* login timeout; later per-statement timeouts */
    bool timer_open;

    /* Startup phase: untyped packets accumulate here (bounded by PQ_MAX_STARTUP_PACKET). */
    struct wbuf startup;
    struct scram_server *scram;
    bool sasl_started;     /* the SASLInitialResponse has been handled */
    bool ssl_asked;        /* an SSLRequest was answered (one per connection) */
    bool gss_asked;        /* a GSSENCRequest was answered 'N' (one per connection) */
    bool startup_trailing; /* bytes followed the untyped packet just completed, in one read */

    /* Frontend message scanning after startup. */
    struct wire_scanner client_scan;
    uint8_t client_type;    /* type of the message being scanned */
    bool client_capture;    /* the current message body is being captured into client_msg */
    struct wbuf client_msg; /* captured message (auth responses, admin queries, relay) */
    struct wbuf to_primary; /* relay: frontend messages of one read, sent to the primary at once */
    /* The gate: a frontend message that must wait (a COMMIT until the secondary caught up, any
     * message while a wrapped autocommit write is open). It stays in client_msg, unprocessed;
     * the bytes read after it wait in gate_rest; the client is not read meanwhile. */
    bool gated;
    bool gate_opening; /* session_gate_check is replaying the gated bytes */
    struct wbuf gate_rest;

    struct backend backends[2];   /* [DIAL_OLD], [DIAL_NEW] */
    int logins_pending;           /* backend logins not finished (ready or failed) */
    struct mirror mirror;         /* units in flight and the secondary's progress */
    struct route route;           /* the routed read in flight, if any */
    struct stmt_track stmts;      /* prepared statements and portals as the primary holds them */
    struct pin_catalog pin;       /* deterministic writes: table knowledge, the message's plan */
    int primary;                  /* enum dial_backend serving this session */
    struct dials_snapshot *dials; /* snapshot read at the last statement boundary */
    struct server_conf *conf;     /* the config as at accept: auth, backends, timeouts */
    /* Draining (SIGTERM): the primary's transaction ended; no new statement is read from the
     * client, and the session ends once everything in flight is finished and flushed. */
    bool drain_close;
    bool listens;    /* ran LISTEN: notifications come from this primary only, so it stays */
    int busy_on;     /* counted in worker->busy_on[busy_on] (inside a transaction or a statement
                        with that primary), or -1 */
    int lag_counted; /* its share of worker->lag_units */
    struct cancel_entry *cancel; /* registered once the backend is up */
    uint8_t cancel_targets;      /* last value published to cancel->targets (0xff: none yet) */
    /* The client went away (EOF, Terminate, a failed write) while work it sent was in flight:
     * the session lingers, its client endpoint discarding, until that work is finished on both
     * backends or linger_deadline_us passes (session_linger.c). */
    bool client_gone;
    enum session_end_reason gone_why;
    const char *gone_detail; /* a static string or NULL */
    uint64_t linger_deadline_us;
    uv_timer_t linger_timer;
    bool linger_open;

    /* Admin console: a dial change answers only once every worker has it, a primary switch once
     * its sequence sync is decided (see admin_reply). */
    uint64_t admin_wait_version;
    uint64_t admin_wait_since_us;
    uint64_t admin_wait_switch;   /* seqsync generation whose outcome the answer waits for */
    const char *admin_switch_tag; /* static: the command's CommandComplete tag if it succeeds */
    char *admin_rest;             /* owned: the commands of the Query after the switch, or NULL */

    struct wbuf out; /* scratch for messages pgdual itself writes to the client */
    char user[64];
    char database[64];
    char application_name[64];

    /* Getting the secondary back (session_reconnect.c). */
    bool sec_no_rebuild;            /* it changed session state a new login would lack */
    bool sec_no_rebuild_logged;     /* ...and the log said so */
    const char *sec_no_rebuild_why; /* static */
    bool sec_login;                 /* a new secondary login is in progress */
    bool sec_parked;                /* ...it finished: waiting for a unit boundary */
    uint64_t sec_login_since_us;
    uint64_t sec_retry_at_us; /* no new login before this */
    bool without_counted;     /* counted in the server's sessions_without_secondary */

    struct session *prev, *next; /* worker's session list */
};

/* Is b the connection to its session's primary? */
static inline bool session_is_primary(const struct backend *b)
{
    return b->which == b->session->primary;
}

/* Accept path: takes ownership of a connected non-blocking fd. */
void session_accept(struct worker *w, int fd);
/* The only exit: sends the reason's FATAL (if any, with detail), logs, releases everything. */
void session_end(struct session *s, enum session_end_reason why, const char *detail);
void session_set_state(struct session *s, enum session_state to);
/* (Re)start the login timer: client_login_timeout_ms, then backend_connect_timeout_ms. */
void session_arm_login_timer(struct session *s, int ms);
/* Send what pgdual builds into s->out to the client and reset s->out. < 0: session ended. */
int session_flush_out(struct session *s) __attribute__((warn_unused_result));
/* Release one handle reference (used as the close callback's action). */
void session_unref(struct session *s);
const char *session_state_name(enum session_state st);

/* Scanner callbacks that capture one whole message body into s->client_msg and stop after it
 * (used by the login and admin phases, whose messages are small and handled one at a time). */
int session_capture_body(void *ctx, const uint8_t *p, size_t n);
int session_capture_end(void *ctx);

/* session_startup.c */
void session_on_client_startup(struct session *s, const uint8_t *p, size_t n);
/* Stop reading a peer while the other side has more than this queued; resume below LOW. */
#define RELAY_HIGH_WATER (256 * 1024)
#define RELAY_LOW_WATER  (64 * 1024)

/* session_frontend.c */
/* The unit's last message arrived: send a deferred unit (wrapped if it is an autocommit write
 * that may run in a transaction block), then let the mirror take it. < 0: no memory; > 0: the
 * session ended. */
int session_seal_unit(struct session *s, struct unit *u) __attribute__((warn_unused_result));
/* Send the frontend messages collected for the primary; < 0: the session ended. */
int session_flush_to_primary(struct session *s) __attribute__((warn_unused_result));
/* The message waiting at the gate may go now: process it, then the bytes that came after it. */
void session_gate_check(struct session *s);
/* Stop or resume reading the client as the backends' queues and the secondary's lag say. */
void session_client_backpressure(struct session *s);
void session_on_client_relay(struct session *s, const uint8_t *p, size_t n);
/* session_relay.c */
/* A backend connection's poll event (read, write, error). */
void session_on_backend_io(uv_poll_t *h, int status, int events);
void session_on_backend_readable(struct backend *b);
void session_backend_ready(struct session *s, struct backend *b);
void session_backend_failed(struct session *s, struct backend *b, const char *msg);
/* Deferred relay work after an I/O event: end a finished wrap, open the gate when it may. */
void session_relay_after_event(struct session *s);
/* Something the session may wait for changed elsewhere (RESUME, a dial applied, a cancel
 * delivered, no more transactions on the other primary): dispatch and open the gate if it may. */
void session_relay_wake(struct session *s);
/* Send the ReadyForQuery held for commit_wait and go on relaying the primary. */
void session_release_held_rfq(struct session *s);
/* Close the secondary's data path (the session goes on with the primary). */
void session_close_secondary(struct session *s);
void session_free_maps(struct session *s);
/* session_classify.c */
/* Classify one whole frontend message (Query, Parse, Bind, Execute, Describe, Close,
 * FunctionCall) into u, the unit it joins, and record what it does to named statements and
 * portals. A Query must be NUL-terminated. */
void session_classify_message(struct session *s, struct unit *u, const uint8_t *msg, size_t len);
/* Relay mode: the session's dials use no class (mirror = off, every read served by the primary,
 * compare_percent = 0). A unit started in it (unit.relay) takes a plain simple query's class
 * from protocol/classify_plain.h instead of a parse; see README "Relay mode". */
bool session_relay_mode(const struct session *s);
/* classify_cached on the worker's cache, counted (classifications_total). */
int session_classify_text(struct session *s, const char *sql, struct classify_result *r)
    __attribute__((warn_unused_result));
/* Does a backend report standard_conforming_strings = off or a client_encoding whose multibyte
 * characters can hold a backslash byte? Then the server may lex a text otherwise than
 * libpg_query. */
bool session_lexing_settings_unsafe(const struct session *s);
/* ...or may it, the settings being unsafe or a mirrored statement still unanswered before u (u
 * NULL: the next unit) possibly changing them (SET, RESET, ROLLBACK, set_config ...)? */
bool session_lexing_unsure(const struct session *s, const struct unit *u);
/* Does the whole frontend message msg (Query or Execute) commit the primary's transaction? True
 * when it might. */
bool session_message_commits(struct session *s, const uint8_t *msg, size_t len);
/* A backend reported a parameter (at login or by ParameterStatus): note the ones that decide
 * whether pgdual's parse of a statement text can be trusted (standard_conforming_strings,
 * client_encoding). */
void session_note_parameter(struct backend *b, const char *name, const char *value);
/* The statements and portals the unit with this serial defined are on these backends (bit per
 * enum dial_backend). */
void session_place_objects(struct session *s, uint32_t serial, uint8_t on);
/* Close callback of backend endpoints: drops the session reference the endpoint held. */
void session_backend_handle_closed(uv_handle_t *h);
/* The primary sent a ReadyForQuery (its status is in backends[primary].txn_status): while the
 * worker drains, a session back outside a transaction block takes no new statement. */
void session_at_txn_boundary(struct session *s);
/* While draining: true when s may be closed now (not inside a transaction, nothing in flight
 * on either backend, nothing held or queued for the client; or not relaying at all). */
bool session_drain_ready(const struct session *s);
/* Keep the worker's busy_on counts right (after every event, and at the end). */
void session_track_busy(struct session *s);
/* Take the worker's current dials (called at statement boundaries). */
void session_refresh_dials(struct session *s);
/* Publish to the cancel registry which backends run the client's current statement (the
 * primary; the secondary only while it runs that same unit or a routed read of it), so that a
 * client's CancelRequest never hits an earlier write the secondary is still applying. Called
 * after every event and before anything new is sent to the secondary. */
void session_publish_cancel_targets(struct session *s);
/* session_linger.c */
/* The client is gone (why/detail as for session_end; detail a static string or NULL). Nothing
 * more is read from it and what would be sent to it is dropped; the session ends (through
 * session_linger_check) once the work it sent is finished on both backends. */
void session_client_gone(struct session *s, enum session_end_reason why, const char *detail);
/* End a session whose client is gone if nothing is in flight any more. */
void session_linger_check(struct session *s);
/* Why closing this session's backends now could leave a write on one side only (a message
 * for the log), or NULL when nothing is at stake. */
const char *session_work_at_stake(const struct session *s);
/* Close the linger timer, if any (session_end). */
void session_linger_close(struct session *s);
/* session_reconnect.c */
/* The session ran something whose session state a new secondary login would lack (why: a static
 * string): it never reconnects its secondary. */
void session_reconnect_taint(struct session *s, const char *why);
/* The worker's periodic sweep: sessions without their secondary log in again. */
void session_reconnect_sweep(struct worker *w);
/* The secondary's new login finished / failed (the session is relaying). */
void session_reconnect_ready(struct session *s, struct backend *b);
void session_reconnect_failed(struct session *s, struct backend *b, const char *detail);
/* At a unit boundary: a parked secondary connection is put to use (prepared statements re-created
 * first). */
void session_reconnect_resume(struct session *s);
/* A ReadyForQuery of the secondary: true when it answered the re-creation (not a unit's). */
bool session_reconnect_restored(struct session *s);
/* admin.c */
void admin_on_client_data(struct session *s, const uint8_t *p, size_t n);
void admin_session_start(struct session *s);

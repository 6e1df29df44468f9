/* proxy/server.h: what the worker loops share: the startup config, the reloadable config
 * snapshot (with the auth table), the master copy of the dials and its state file, the cancel
 * registry, the divergence table and the client count. Everything here is either immutable
 * while the workers run or guarded as its comment says; nothing here is touched per message. */
#pragma once
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include <uv.h>

#include "config/config.h"
#include "config/dials.h"
#include "config/state.h"
#include "proxy/control/reconcile.h"
#include "proxy/dualwrite/sync_state.h"

struct worker;
struct cancel_registry;
struct auth_table;
struct divergence_table;
struct seqsync;
typedef struct ssl_ctx_st SSL_CTX;

/* The reloadable part of the config: an immutable, refcounted snapshot. A reload builds a new
 * one and posts it to every worker (like the dials); a session takes its worker's snapshot at
 * accept and keeps it for its lifetime, so one login never mixes two configs. */
struct server_conf {
    atomic_uint refs;
    struct config cfg;       /* owned; restart-only keys always hold the values running */
    struct auth_table *auth; /* owned; NULL when not loaded (config_needs_auth_file) */
    /* One reference owned; NULL with client_tls_sslmode = disable. Shared by every worker (SSL_new
     * is thread-safe on a context nobody changes any more); each client SSL holds its own
     * reference, so a reload that brings new certificates leaves TLS sessions running on theirs. */
    SSL_CTX *tls;
};

struct server {
    /* The config loaded at start. Immutable while workers run: only keys that need a restart
     * (listen_addr, workers, max_message_bytes, state_file, ...) are read from it; reloadable
     * keys are read from a struct server_conf. */
    const struct config *cfg;
    const char *config_path; /* re-read by reload */
    struct worker *workers;
    int nworkers;
    struct cancel_registry *cancels;
    atomic_uint next_session_id;
    atomic_int clients_now;     /* sessions holding a max_client_conn slot */
    atomic_int reserved_now;    /* console logins beyond max_client_conn (admin_reserved_conn) */
    int listen_port;            /* the bound port (listen_port = 0 resolves here) */
    char **read_only_functions; /* from [pgdual] read_only_functions, split at commas */
    size_t n_read_only_functions;
    int divergence_fd; /* the divergence log, opened O_APPEND; -1 = none */
    /* enum sync_state: read lock-free (routing reads it per read); changed only by
     * server_secondary_miss / server_secondary_set under dials_lock, after the state file
     * says so. */
    atomic_int secondary_state;
    _Atomic int64_t secondary_since_ms; /* Unix ms when it entered that state */
    atomic_bool paused;                 /* PAUSE: statements wait at transaction boundaries */
    /* Bumped when a statement that may change the catalog (DDL, SET, code pgdual cannot see)
     * ends on a primary, and when its transaction ends: every session's cache of table
     * knowledge for pinning (proxy/dualwrite/pin_session.h) is dropped when it differs. */
    _Atomic uint64_t catalog_gen;
    /* Bumped when pinned statements go to a secondary: its sequences may now be behind the ids
     * its tables hold (pinned inserts draw nothing there). A session raises them before its next
     * write that goes there verbatim and may draw (proxy/dualwrite/mirror.c); starts at 1, so
     * every session raises before its first such write (pinned inserts made before a restart). */
    _Atomic uint64_t pinned_gen;
    int64_t started_ms;
    uv_async_t *worker_exited; /* the main loop's; each worker thread sends it as it ends */
    atomic_int workers_exited;

    /* Owned: the divergences SHOW DIVERGENCES lists, grouped; it has its own lock. */
    struct divergence_table *divergences;
    /* Owned: table knowledge for pinning shared by sessions (pin_session.h); its own lock. */
    struct pin_shared *pin_shared;

    /* Owned: the sequence sync of a primary switch (proxy/control/seqsync.h); NULL = none (a
     * switch then needs no sync). */
    struct seqsync *seqsync;
    /* Set (under dials_lock, before the change is posted) when the primary dial moves, cleared
     * by seqsync once the new primary's sequences are synced or the switch is undone: sessions
     * start nothing meanwhile (switch_must_wait). Read lock-free. */
    atomic_bool switch_pending;

    pthread_mutex_t conf_lock;   /* guards conf (taken by reload and by worker_init) */
    struct server_conf *conf;    /* the current snapshot, one reference held here */
    pthread_mutex_t reload_lock; /* serializes reloads (SIGHUP on main, RELOAD on a worker) */

    /* Guards the fields below (admin and reload paths only). A change is written to the state
     * file under the lock before it is published, so the file and the master copy agree. */
    pthread_mutex_t dials_lock;
    struct dials dials;      /* master copy: what SHOW STATUS reports */
    struct dials file_dials; /* [cutover] as the config file last said */
    uint64_t dials_version;
    struct dials_snapshot *dials_snapshot; /* the last one published */
    /* What the next reconciliation must cover while the secondary is out of sync: "*" every
     * table, or "db:table" entries (state file line secondary_reconcile). reconcile_all mirrors
     * reconcile == "*" for a lock-free check. */
    char reconcile[STATE_RECONCILE_MAX];
    atomic_bool reconcile_all;
    /* The reconciliation pass (proxy/control/reconcile.h), guarded by dials_lock too. */
    struct reconcile_pass rec;
    /* Owned: pgdual's own catch-up thread; NULL = not started. */
    struct reconcile_auto *reconcile_auto;
    /* Sessions relaying without their secondary (the gauge sessions_without_secondary). */
    atomic_int sessions_without_secondary;
};

/* A snapshot owning *cfg_take's contents (cfg_take is zeroed), auth_take and tls_take (one
 * reference; may be NULL). NULL on allocation failure, with all three freed. */
struct server_conf *server_conf_new(struct config *cfg_take, struct auth_table *auth_take,
                                    SSL_CTX *tls_take);
struct server_conf *server_conf_ref(struct server_conf *c);
void server_conf_unref(struct server_conf *c);
/* Take a reference on the current config snapshot (any thread). */
struct server_conf *server_conf_get(struct server *srv);
/* Make conf (one reference, consumed) the current snapshot and post it to every worker. */
void server_conf_publish_take(struct server *srv, struct server_conf *conf);

/* Take a reference on the current dials snapshot (any thread). */
struct dials_snapshot *server_dials_get(struct server *srv);
/* Validate one runtime dial change, persist it to the state file, then publish it to every
 * worker. -EINVAL: unknown key or bad value; -EPERM: refused by a guard (SET mirror = off
 * while primary = old needs force); -EIO: the state file could not be written (nothing
 * changed). *switch_gen: the primary switch it started (seqsync_outcome), else 0. */
int server_set_dial(struct server *srv, const char *key, const char *value, bool force,
                    uint64_t *switch_gen, char *err, size_t errlen)
    __attribute__((warn_unused_result));
/* ROLLBACK CUTOVER: primary = old and read_new_percent = 0 in one persisted, published change.
 * When that switches the primary (it is new) while the secondary is not in_sync, -EPERM unless
 * force (SET primary is guarded the same way). *switch_gen as for server_set_dial. */
int server_rollback_cutover(struct server *srv, bool force, uint64_t *switch_gen, char *err,
                            size_t errlen) __attribute__((warn_unused_result));
/* Reload's dial rule: a dial whose value in the file (file_now) differs from the file loaded
 * before wins and is persisted; the others keep their runtime value. Returns how many dials
 * changed (>= 0) or < 0 (state file not written: nothing changed, err says why). *switch_gen
 * as for server_set_dial. */
int server_reload_dials(struct server *srv, const struct dials *file_now, uint64_t *switch_gen,
                        char *err, size_t errlen) __attribute__((warn_unused_result));
/* PAUSE / RESUME: set the flag, then make every worker look at its waiting sessions again. */
void server_set_paused(struct server *srv, bool paused);
/* The secondary missed or failed a write the primary applied (how: SYNC_lagging when it could
 * not be reached, SYNC_diverged when it could): take it out of in_sync as
 * sync_state_after_miss says. The state file is written (fsync) before the new state is
 * published and before this returns, so a caller that acknowledges the write afterwards never
 * leaves a state file that still says in_sync. Blocks the calling loop for the fsync, once per
 * state change. why is logged. */
void server_secondary_miss(struct server *srv, enum sync_state how, const char *why);
/* server_secondary_miss for a write of one known table ("db:table"; NULL: not known): the
 * table joins the reconciliation list (persisted with the state). */
void server_secondary_miss_table(struct server *srv, enum sync_state how, const char *why,
                                 const char *table);
/* The reconciliation list ("*", "", or "db:table,..."), copied into out. */
void server_reconcile_list(struct server *srv, char *out, size_t cap);
/* Convenience forms of server_secondary_miss. */
void server_secondary_lagging(struct server *srv, const char *why);
void server_secondary_diverged(struct server *srv, const char *why);
/* Called with dials_lock held: make `next` the secondary's state (and, unless NULL, `reconcile`
 * its reconciliation list), written to the state file (fsync) first. -EIO (err set, nothing
 * changed) when the file cannot be written. why is logged with the change. */
int server_secondary_store_locked(struct server *srv, enum sync_state next, const char *reconcile,
                                  const char *why, char *err, size_t errlen)
    __attribute__((warn_unused_result));
/* Set the state read from the state file at start (before the workers run). */
void server_secondary_restore(struct server *srv, const struct state_secondary *sec);
const char *server_secondary_state_name(const struct server *srv);
/* Is the secondary in_sync (reads may be routed to it)? Lock-free. */
bool server_secondary_in_sync(const struct server *srv);
/* Sum one counter over every worker. */
uint64_t server_stat_sum(const struct server *srv, int counter);
/* Sessions, over all workers, inside a transaction or a statement with this primary. */
int server_busy_on(const struct server *srv, int primary);
/* Mirrored units sent to the secondary and not finished there, over all sessions. */
int server_lag_units(const struct server *srv);
/* The version of the dials last published. */
uint64_t server_dials_version(struct server *srv);
/* Has every worker taken dials of at least this version (so every statement that starts now
 * sees them)? */
bool server_dials_applied(const struct server *srv, uint64_t version);
/* Ask every worker to look at its gated sessions again (and the sequence sync at its gate). */
void server_post_gates(struct server *srv);
/* Is a primary switch waiting for its sequence sync (no session may start a statement)? */
bool server_switch_pending(const struct server *srv);
/* The sequence sync of switch `gen` failed: put the primary dial back to `back` (persisted,
 * published; a state file that cannot be written is logged and the dial goes back anyway),
 * unless a later change of the primary took the switch's place. Called by seqsync's thread.
 * 1: the dial went back; 0: a later change took its place; < 0: it could not (no memory). */
int server_switch_undo(struct server *srv, uint64_t gen, int back)
    __attribute__((warn_unused_result));
/* Sum backend's (enum dial_backend) latency histogram over every worker: per-bucket counts (not
 * cumulative; STATS_LATENCY_BUCKETS of them, the last is +Inf) and the sum in microseconds. */
void server_latency_sum(const struct server *srv, int backend, uint64_t *buckets, uint64_t *sum_us);

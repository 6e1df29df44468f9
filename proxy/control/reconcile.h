/* proxy/control/reconcile.h: reconciliation passes (DESIGN §7, issue 13): the admin commands SEED
 * and RECONCILE START / PROGRESS / DONE / ABORT, the bookkeeping of the running pass that SHOW
 * STATUS and /metrics show, and pgdual's own catch-up (a thread that begins a pass and runs
 * pgdual-verify for it while the secondary is lagging or diverged).
 *
 * One pass at a time. START moves secondary_state to reconciling (persisted) and hands out a pass
 * id; any miss while reconciling takes the state out of it (sync_state_after_miss) and makes the
 * pass stale (reconcile_stale_locked); DONE of the current pass, the state still reconciling, is
 * the only way back to in_sync (sync_state_after_done). The pass fields are guarded by the
 * server's dials_lock, like the state they go with. */
#pragma once
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct server;

/* X(name): the values of reconcile_last_result. */
#define RECONCILE_RESULTS(X)                                      \
    X(none)    /* no pass since start */                          \
    X(running) /* a pass is running */                            \
    X(in_sync) /* the last pass ended with DONE: in_sync */       \
    X(stale)   /* a miss during the pass: its DONE was refused */ \
    X(failed)  /* pgdual's own pass: the tool did not exit 0 */   \
    X(aborted) /* RECONCILE ABORT, or a switch / mirror = off / SEED */

enum reconcile_result {
#define X(n) RECONCILE_##n,
    RECONCILE_RESULTS(X)
#undef X
};

/* The running pass and the last one's outcome (guarded by the server's dials_lock). */
struct reconcile_pass {
    uint64_t pass;    /* the running pass id, 0 = none */
    uint64_t last_id; /* the last id handed out (persisted: the state file's secondary_pass) */
    uint64_t passes_total;
    int64_t started_at_ms; /* Unix ms when the running (or last) pass began */
    uint64_t tables_done, tables_total, rows_repaired;
    enum reconcile_result last;
    bool automatic;      /* begun by pgdual's catch-up (its child runs the pass) */
    uint64_t stale_pass; /* the last pass made stale, and why */
    char stale_why[160];
};

/* What RECONCILE START answers. */
struct reconcile_start_row {
    uint64_t pass;
    int primary;         /* enum dial_backend */
    char from_state[24]; /* the state it left */
    char tables[4096];   /* "*" or "db:table,..." */
};

const char *reconcile_result_name(enum reconcile_result r);

/* The admin commands. Each returns 0, or < 0 with sqlstate (a static string) and err set; the
 * state change is in the state file (fsync) before it returns 0. */
int reconcile_seed(struct server *srv, const char **sqlstate, char *err, size_t errlen);
int reconcile_start(struct server *srv, bool automatic, struct reconcile_start_row *row,
                    const char **sqlstate, char *err, size_t errlen);
int reconcile_progress(struct server *srv, uint64_t pass, uint64_t done, uint64_t total,
                       uint64_t rows, const char **sqlstate, char *err, size_t errlen);
int reconcile_done(struct server *srv, uint64_t pass, const char **sqlstate, char *err,
                   size_t errlen);
/* result: RECONCILE_aborted (the console) or RECONCILE_failed (pgdual's own pass failed). */
int reconcile_abort(struct server *srv, uint64_t pass, enum reconcile_result result,
                    const char **sqlstate, char *err, size_t errlen);
/* The pass's bookkeeping, copied under the lock. */
void reconcile_get(struct server *srv, struct reconcile_pass *out);
/* Called with dials_lock held when the state leaves reconciling other than by DONE/ABORT: the
 * running pass (if any) is stale. */
void reconcile_stale_locked(struct server *srv, const char *why);
/* A primary switch or mirror = off: the running pass (if any) is stale and the state goes back
 * to diverged (called with dials_lock held, before the dials change is persisted). */
void reconcile_interrupt_locked(struct server *srv, const char *why);

/* ---- pgdual's own catch-up (reconcile_auto) ---- */
struct reconcile_auto;
/* Start the catch-up thread (it does nothing while reconcile_auto = off). config_path: the file
 * pgdual was started with (passed to the tool with -c). < 0 on failure. */
int reconcile_auto_start(struct server *srv, const char *config_path, struct reconcile_auto **out)
    __attribute__((warn_unused_result));
/* Stop the thread (kills a running child). NULL is a no-op. */
void reconcile_auto_stop(struct reconcile_auto *a);
/* The running pass became stale or was interrupted: kill the child, if any (any thread). */
void reconcile_auto_kill(struct server *srv);

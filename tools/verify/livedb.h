/* tools/verify/livedb.h: synchronous statements of the live repair: transactions with a
 * lock_timeout, SQLSTATE classes that call for a retry, and the wait for a snapshot's xip list. */
#pragma once
#include <stdbool.h>
#include <stddef.h>

#include <libpq-fe.h>

#include "tools/verify/util.h"

struct strbuf;

/* Outcome of one statement. RETRY: lock_timeout (55P03), deadlock (40P01) or serialization
 * failure (40001): roll both sides back and try the chunk again. FAIL: another SQL error (the
 * chunk is left unrepaired). BROKEN: the connection is gone (the run stops). */
enum livedb_rc { LIVEDB_OK = 0, LIVEDB_RETRY = -1, LIVEDB_FAIL = -2, LIVEDB_BROKEN = -3 };

/* Classifies a SQLSTATE (NULL: no error field, e.g. a lost connection). */
enum livedb_rc livedb_classify(const char *sqlstate);
/* Runs sql (with text params) and keeps a TUPLES_OK result in *out when out is not NULL.
 * On error, err gets "side: message". */
enum livedb_rc livedb_exec(PGconn *c, int side, const char *sql, int np, const char *const *params,
                           PGresult **out, char *err, size_t errlen) WUR;
/* Runs a string of several statements (simple protocol, one round trip) and keeps the last
 * TUPLES_OK result in *out (NULL on error or when none). The server skips the statements after
 * the first error; that error is the one classified and reported. */
enum livedb_rc livedb_exec_multi(PGconn *c, int side, const char *sql, PGresult **out, char *err,
                                 size_t errlen) WUR;
/* Appends "BEGIN ISOLATION LEVEL READ COMMITTED; SET LOCAL lock_timeout = ms; " (what
 * livedb_begin runs), for a string that goes on with the transaction's first statement. */
void livedb_put_begin(struct strbuf *b, int lock_timeout_ms);
/* BEGIN (READ COMMITTED) and SET LOCAL lock_timeout. */
enum livedb_rc livedb_begin(PGconn *c, int side, int lock_timeout_ms, char *err, size_t errlen) WUR;
/* ROLLBACK when a transaction is open; errors are ignored (the next BEGIN reports them). */
void livedb_rollback(PGconn *c);
/* Rolls both sides back, the secondary first (its writes go away before the primary's locks). */
void livedb_rollback_both(PGconn *secondary, PGconn *primary);
/* Sleeps before retry number attempt_no (1, 2, ...): 10 ms doubling up to 640 ms, plus jitter. */
void livedb_backoff(int attempt_no);
/* Waits until no xid of the pg_snapshot text snap is still in progress on the primary c, polling
 * with a growing interval up to timeout_s. LIVEDB_OK, LIVEDB_RETRY (timed out) or an error. */
enum livedb_rc livedb_wait_xip(PGconn *c, int side, const char *snap, double timeout_s, char *err,
                               size_t errlen) WUR;

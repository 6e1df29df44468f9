/* tools/verify/livedb.c: synchronous statements of the live repair (transactions, retry classes,
 * the wait for a snapshot's in-progress transactions). */
#include "tools/verify/livedb.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "tools/verify/strbuf.h"

enum livedb_rc livedb_classify(const char *sqlstate)
{
    if (!sqlstate) {
        return LIVEDB_BROKEN;
    }
    if (!strcmp(sqlstate, "55P03") || !strcmp(sqlstate, "40P01") || !strcmp(sqlstate, "40001")) {
        return LIVEDB_RETRY;
    }
    /* Class 08 (connection exception) and 57P01..57P03 (shutdown) end the run. */
    if (!strncmp(sqlstate, "08", 2) || !strncmp(sqlstate, "57P", 3)) {
        return LIVEDB_BROKEN;
    }
    return LIVEDB_FAIL;
}

enum livedb_rc livedb_exec(PGconn *c, int side, const char *sql, int np, const char *const *params,
                           PGresult **out, char *err, size_t errlen)
{
    PGresult *r = np ? PQexecParams(c, sql, np, NULL, params, NULL, NULL, 0) : PQexec(c, sql);
    ExecStatusType st = PQresultStatus(r);
    if (out) {
        *out = NULL;
    }
    if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK) {
        if (out && st == PGRES_TUPLES_OK) {
            *out = r;
        } else {
            PQclear(r);
        }
        return LIVEDB_OK;
    }
    const char *state = r ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : NULL;
    enum livedb_rc rc = PQstatus(c) == CONNECTION_OK ? livedb_classify(state) : LIVEDB_BROKEN;
    snprintf(err, errlen, "%s: %s", util_side_name(side),
             r && *PQresultErrorMessage(r) ? PQresultErrorMessage(r) : PQerrorMessage(c));
    size_t n = strlen(err);
    while (n && (err[n - 1] == '\n' || err[n - 1] == ' ')) {
        err[--n] = '\0';
    }
    PQclear(r);
    return rc;
}

enum livedb_rc livedb_exec_multi(PGconn *c, int side, const char *sql, PGresult **out, char *err,
                                 size_t errlen)
{
    *out = NULL;
    if (!PQsendQuery(c, sql)) {
        snprintf(err, errlen, "%s: %s", util_side_name(side), PQerrorMessage(c));
        return LIVEDB_BROKEN;
    }
    enum livedb_rc rc = LIVEDB_OK;
    PGresult *r;
    while ((r = PQgetResult(c)) != NULL) {
        ExecStatusType st = PQresultStatus(r);
        if (st == PGRES_TUPLES_OK && rc == LIVEDB_OK) {
            PQclear(*out);
            *out = r;
            continue;
        }
        if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK && rc == LIVEDB_OK) {
            const char *state = PQresultErrorField(r, PG_DIAG_SQLSTATE);
            rc = PQstatus(c) == CONNECTION_OK ? livedb_classify(state) : LIVEDB_BROKEN;
            snprintf(err, errlen, "%s: %s", util_side_name(side),
                     *PQresultErrorMessage(r) ? PQresultErrorMessage(r) : PQerrorMessage(c));
        }
        PQclear(r);
    }
    if (rc == LIVEDB_OK && PQstatus(c) != CONNECTION_OK) {
        snprintf(err, errlen, "%s: %s", util_side_name(side), PQerrorMessage(c));
        rc = LIVEDB_BROKEN;
    }
    if (rc != LIVEDB_OK) {
        PQclear(*out);
        *out = NULL;
    }
    return rc;
}

void livedb_put_begin(struct strbuf *b, int lock_timeout_ms)
{
    strbuf_printf(b, "BEGIN ISOLATION LEVEL READ COMMITTED; SET LOCAL lock_timeout = %d; ",
                  lock_timeout_ms);
}

enum livedb_rc livedb_begin(PGconn *c, int side, int lock_timeout_ms, char *err, size_t errlen)
{
    char sql[128];
    snprintf(sql, sizeof sql, "BEGIN ISOLATION LEVEL READ COMMITTED; SET LOCAL lock_timeout = %d",
             lock_timeout_ms);
    return livedb_exec(c, side, sql, 0, NULL, NULL, err, errlen);
}

void livedb_rollback(PGconn *c)
{
    if (PQtransactionStatus(c) != PQTRANS_IDLE && PQstatus(c) == CONNECTION_OK) {
        PQclear(PQexec(c, "ROLLBACK"));
    }
}

static void nap(double seconds)
{
    struct timespec ts = {.tv_sec = (time_t)seconds,
                          .tv_nsec = (long)((seconds - (double)(time_t)seconds) * 1e9)};
    nanosleep(&ts, NULL);
}

enum livedb_rc livedb_wait_xip(PGconn *c, int side, const char *snap, double timeout_s, char *err,
                               size_t errlen)
{
    static const char sql[] = "SELECT count(*) FROM pg_snapshot_xip($1::pg_snapshot) x"
                              " WHERE pg_xact_status(x) = 'in progress'";
    double deadline = util_now() + timeout_s, pause = 0.005;
    const char *params[1] = {snap};
    for (;;) {
        PGresult *r = NULL;
        enum livedb_rc rc = livedb_exec(c, side, sql, 1, params, &r, err, errlen);
        if (rc != LIVEDB_OK) {
            return rc;
        }
        long busy = atol(PQgetvalue(r, 0, 0));
        PQclear(r);
        if (busy == 0) {
            return LIVEDB_OK;
        }
        if (util_now() > deadline) {
            snprintf(err, errlen,
                     "%s: %ld transaction(s) of snapshot %s still running after %.0f s",
                     util_side_name(side), busy, snap, timeout_s);
            return LIVEDB_RETRY;
        }
        nap(pause);
        pause = pause < 0.2 ? pause * 2 : 0.2;
    }
}

void livedb_rollback_both(PGconn *secondary, PGconn *primary)
{
    livedb_rollback(secondary);
    livedb_rollback(primary);
}

void livedb_backoff(int attempt_no)
{
    long ms = 10L << (attempt_no < 6 ? attempt_no : 6);
    ms += rand() % (ms + 1);
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

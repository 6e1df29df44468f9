/* tests/integration/it_cancel.c: a CancelRequest sent with the key pgdual handed out cancels the
 * running statement (57014 within 2 s), the session stays usable, and nothing keeps running on
 * either backend. */
#include <stdio.h>
#include <string.h>
#include <sys/select.h>

#include <libpq-fe.h>

#include "tests/harness/proxy.h"

static struct proxy g_px;

/* Waits (select on the socket) until the pending query's result is complete; false on timeout. */
static bool wait_result_ready(PGconn *c, int64_t deadline_ms)
{
    while (PQconsumeInput(c) == 1 && PQisBusy(c)) {
        int64_t left = deadline_ms - it_now_ms();
        if (left <= 0) {
            return false;
        }
        fd_set rd;
        FD_ZERO(&rd);
        FD_SET(PQsocket(c), &rd);
        struct timeval tv = {.tv_sec = (time_t)(left / 1000),
                             .tv_usec = (long)(left % 1000) * 1000};
        (void)select(PQsocket(c) + 1, &rd, NULL, NULL, &tv);
    }
    return true;
}

static long long sleepers_on(enum it_target t)
{
    PGconn *d = proxy_connect(&g_px, t);
    if (d == NULL) {
        return -1;
    }
    char sql[256];
    bool ok = true;
    snprintf(sql, sizeof sql,
             "SELECT count(*) FROM pg_stat_activity WHERE datname = '%s' AND state = 'active' "
             "AND query LIKE '%%pg_sleep(30)%%' AND pid <> pg_backend_pid()",
             g_px.dbname);
    long long n = it_query_ll(d, sql, &ok);
    PQfinish(d);
    return ok ? n : -1;
}

static void cancel_once(PGconn *c, int round)
{
    char name[64];
    snprintf(name, sizeof name, "cancel pg_sleep(30), round %d", round);
    it_case(name);
    REQUIRE_EQ(PQsendQuery(c, "SELECT pg_sleep(30)"), 1);
    it_sleep_ms(300);
    CHECK_EQ(sleepers_on(IT_OLD), 1); /* it really is running on the primary */
    PGcancel *cn = PQgetCancel(c);
    REQUIRE(cn != NULL);
    char err[256] = "";
    int64_t t_cancel = it_now_ms();
    int sent = PQcancel(cn, err, sizeof err);
    PQfreeCancel(cn);
    if (!CHECK_EQ(sent, 1)) {
        it_note("PQcancel: %s", err);
    }
    bool ready = wait_result_ready(c, t_cancel + 2000);
    int64_t elapsed = it_now_ms() - t_cancel;
    it_note("result %s %lld ms after the cancel", ready ? "arrived" : "did NOT arrive",
            (long long)elapsed);
    CHECK(ready);
    CHECK_LE(elapsed, 2000);
    if (!ready) {
        /* Give up on this connection's query; the caller's SELECT 1 will show the damage. */
        wait_result_ready(c, it_now_ms() + 40000);
    }
    PGresult *r = PQgetResult(c);
    CHECK_RES(r, PGRES_FATAL_ERROR);
    CHECK_SQLSTATE(r, "57014");
    PQclear(r);
    while ((r = PQgetResult(c)) != NULL) {
        CHECK_RES(r, PGRES_FATAL_ERROR); /* nothing else may follow the error */
        PQclear(r);
    }
    bool ok = true;
    CHECK_EQ(it_query_ll(c, "SELECT 1", &ok), 1);
    CHECK(ok);
    CHECK_EQ(PQtransactionStatus(c), PQTRANS_IDLE);
    /* Nothing still sleeping on either side (the secondary never got it, or it was cancelled). */
    long long left_old = -1, left_new = -1;
    for (int64_t dl = it_now_ms() + 2000; it_now_ms() < dl; it_sleep_ms(100)) {
        left_old = sleepers_on(IT_OLD);
        left_new = proxy_mirrors(&g_px) ? sleepers_on(IT_NEW) : 0;
        if (left_old == 0 && left_new == 0) {
            break;
        }
    }
    CHECK_EQ(left_old, 0);
    CHECK_EQ(left_new, 0);
}

static void case_cancel_in_transaction(PGconn *c)
{
    it_case("cancel inside an explicit transaction leaves it failed, ROLLBACK recovers");
    PGresult *r = PQexec(c, "BEGIN");
    CHECK_RES(r, PGRES_COMMAND_OK);
    PQclear(r);
    REQUIRE_EQ(PQsendQuery(c, "SELECT pg_sleep(30)"), 1);
    it_sleep_ms(300);
    PGcancel *cn = PQgetCancel(c);
    REQUIRE(cn != NULL);
    char err[256] = "";
    int64_t t_cancel = it_now_ms();
    CHECK_EQ(PQcancel(cn, err, sizeof err), 1);
    PQfreeCancel(cn);
    CHECK(wait_result_ready(c, t_cancel + 2000));
    r = PQgetResult(c);
    CHECK_SQLSTATE(r, "57014");
    PQclear(r);
    while ((r = PQgetResult(c)) != NULL) {
        PQclear(r);
    }
    CHECK_EQ(PQtransactionStatus(c), PQTRANS_INERROR);
    r = PQexec(c, "SELECT 1");
    CHECK_SQLSTATE(r, "25P02");
    PQclear(r);
    r = PQexec(c, "ROLLBACK");
    CHECK_RES(r, PGRES_COMMAND_OK);
    PQclear(r);
    bool ok = true;
    CHECK_EQ(it_query_ll(c, "SELECT 2", &ok), 2);
    CHECK_EQ(PQtransactionStatus(c), PQTRANS_IDLE);
}

int main(int argc, char **argv)
{
    (void)argc;
    it_init(argv[0], 240);
    REQUIRE(proxy_start(&g_px, "it_cancel", NULL) == 0);
    PGconn *c = proxy_connect(&g_px, IT_PGDUAL);
    REQUIRE(c != NULL);
    /* An idle second session must not be disturbed by the other session's cancel. */
    PGconn *bystander = proxy_connect(&g_px, IT_PGDUAL);
    REQUIRE(bystander != NULL);
    for (int round = 1; round <= 3; round++) {
        cancel_once(c, round);
    }
    case_cancel_in_transaction(c);
    it_case("bystander session unaffected");
    bool ok = true;
    CHECK_EQ(it_query_ll(bystander, "SELECT 3", &ok), 3);
    CHECK(ok);
    PQfinish(bystander);
    PQfinish(c);
    return it_finish();
}

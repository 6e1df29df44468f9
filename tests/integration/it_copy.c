/* tests/integration/it_copy.c: COPY FROM STDIN through pgdual (issue 11). A COPY right after a
 * read whose shadow still runs on new finishes on both sides; an extended-protocol COPY
 * (PQexecParams, then PQputCopyData / PQputCopyEnd) works under commit_wait = both and primary;
 * a Query holding two COPY FROM STDIN is refused with 0A000 before it reaches either backend;
 * under commit_wait = both a COPY's reply waits until new applied it. Every case checks the
 * rows on old and new directly, and every wait has a deadline (a hang fails, it does not stall
 * the suite). */
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libpq-fe.h>

#include "tests/harness/proxy.h"

#define DEADLINE_MS 15000

static struct proxy g_px;

/* The next result within ms; *timed_out when the server did not answer in time. */
static PGresult *result_within(PGconn *c, int ms, bool *timed_out)
{
    int64_t end = it_now_ms() + ms;
    *timed_out = false;
    while (PQisBusy(c)) {
        int64_t left = end - it_now_ms();
        struct pollfd p = {.fd = PQsocket(c), .events = POLLIN};
        if (left <= 0 || poll(&p, 1, (int)left) == 0) {
            *timed_out = true;
            return NULL;
        }
        if (!PQconsumeInput(c)) {
            break;
        }
    }
    return PQgetResult(c);
}

/* First column of the first row of sql on c as an integer, -1 on error, -2 on no answer within
 * the deadline. */
static long long query_within(PGconn *c, const char *sql)
{
    bool to = false;
    if (PQsendQuery(c, sql) != 1) {
        it_note("cannot send %s: %s", sql, PQerrorMessage(c));
        return -1;
    }
    long long v = -1;
    PGresult *r;
    while ((r = result_within(c, DEADLINE_MS, &to)) != NULL) {
        if (PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1) {
            v = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
        }
        PQclear(r);
    }
    if (to) {
        it_note("no answer to %s within %d ms", sql, DEADLINE_MS);
        return -2;
    }
    return v;
}

static PGconn *connect_nonblocking_reads(void)
{
    PGconn *c = proxy_connect(&g_px, IT_PGDUAL);
    REQUIRE(c != NULL);
    return c;
}

static void exec_ok(PGconn *c, const char *sql)
{
    PGresult *r = PQexec(c, sql);
    REQUIRE(PQresultStatus(r) == PGRES_COMMAND_OK || PQresultStatus(r) == PGRES_TUPLES_OK);
    PQclear(r);
}

static void exec_direct_ok(enum it_target t, const char *sql)
{
    REQUIRE(proxy_exec_direct(&g_px, t, sql) == 0);
}

/* md5 of a table's rows in key order on one cluster, into out (33 bytes). */
static void table_md5(enum it_target t, const char *table, char *out)
{
    char sql[256];
    snprintf(sql, sizeof sql,
             "SELECT md5(coalesce(string_agg(x::text, ',' ORDER BY x), '')) FROM %s x", table);
    PGconn *c = proxy_connect(&g_px, t);
    snprintf(out, 33, "%s", "?");
    if (c != NULL) {
        PGresult *r = PQexec(c, sql);
        if (PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1) {
            snprintf(out, 33, "%s", PQgetvalue(r, 0, 0));
        }
        PQclear(r);
    }
    PQfinish(c);
}

static void check_same_both(const char *table, long long want_rows)
{
    char sql[128];
    snprintf(sql, sizeof sql, "SELECT count(*) FROM %s", table);
    CHECK_EQ(proxy_query_ll(&g_px, IT_OLD, sql), want_rows);
    if (!proxy_mirrors(&g_px)) {
        return;
    }
    CHECK_EQ(proxy_query_ll(&g_px, IT_NEW, sql), want_rows);
    char a[33], b[33];
    table_md5(IT_OLD, table, a);
    table_md5(IT_NEW, table, b);
    CHECK_STR(a, b);
}

static void check_in_sync(void)
{
    char v[64];
    if (proxy_admin_status(&g_px, "secondary_state", v, sizeof v) == 0) {
        CHECK_STR(v, "in_sync");
    }
}

static void admin(const char *sql)
{
    if (g_px.direct) {
        return;
    }
    PGconn *a = proxy_connect_as(&g_px, IT_PGDUAL, "admin", "pgdual");
    REQUIRE(PQstatus(a) == CONNECTION_OK);
    exec_ok(a, sql);
    PQfinish(a);
}

/* Streams rows first..first+n-1 as "id\tv" lines, then ends the COPY (errmsg: CopyFail). */
static bool put_rows(PGconn *c, int first, int n, const char *errmsg)
{
    char line[64];
    for (int i = first; i < first + n; i++) {
        int len = snprintf(line, sizeof line, "%d\trow %d\n", i, i);
        if (PQputCopyData(c, line, len) != 1) {
            return false;
        }
    }
    return PQputCopyEnd(c, errmsg) == 1;
}

/* A whole COPY: sent as a simple Query or (extended) through PQsendQueryParams. Returns the final
 * status, or PGRES_FATAL_ERROR + 100 on a hang; *tag gets the command tag. */
static int run_copy(PGconn *c, const char *sql, bool extended, int first, int n, const char *errmsg,
                    char *tag, size_t taglen)
{
    bool to = false;
    tag[0] = '\0';
    int sent =
        extended ? PQsendQueryParams(c, sql, 0, NULL, NULL, NULL, NULL, 0) : PQsendQuery(c, sql);
    REQUIRE_EQ(sent, 1);
    PGresult *r = result_within(c, DEADLINE_MS, &to);
    if (to) {
        it_note("no CopyInResponse within %d ms", DEADLINE_MS);
        return PGRES_FATAL_ERROR + 100;
    }
    int st = PQresultStatus(r);
    PQclear(r);
    if (st == PGRES_COPY_IN) {
        REQUIRE(put_rows(c, first, n, errmsg));
        r = result_within(c, DEADLINE_MS, &to);
        if (to) {
            it_note("no reply to the end of the COPY within %d ms", DEADLINE_MS);
            return PGRES_FATAL_ERROR + 100;
        }
        st = PQresultStatus(r);
        snprintf(tag, taglen, "%s", PQcmdStatus(r));
        if (st != PGRES_COMMAND_OK) {
            it_note("COPY: %s", PQresultErrorMessage(r));
        }
        PQclear(r);
    }
    r = result_within(c, DEADLINE_MS, &to);
    while (r != NULL && !to) { /* the rest of the results, up to ReadyForQuery */
        PQclear(r);
        r = result_within(c, DEADLINE_MS, &to);
    }
    if (to) {
        it_note("no ReadyForQuery within %d ms", DEADLINE_MS);
        return PGRES_FATAL_ERROR + 100;
    }
    return st;
}

/* The session still answers, within the deadline (a hung session fails here, and the test
 * goes on with a fresh one). */
static void check_usable(PGconn **c)
{
    CHECK_EQ(PQstatus(*c), CONNECTION_OK);
    CHECK_EQ(query_within(*c, "SELECT 6 * 7"), 42);
    if (PQstatus(*c) != CONNECTION_OK || PQtransactionStatus(*c) == PQTRANS_ACTIVE) {
        PQfinish(*c);
        *c = proxy_connect(&g_px, IT_PGDUAL);
        REQUIRE(*c != NULL);
    }
}

static void case_setup(PGconn *c)
{
    it_case("setup");
    exec_ok(c, "CREATE TABLE t (id int PRIMARY KEY, v text)");
    exec_ok(c, "CREATE TABLE t2 (id int PRIMARY KEY, v text)");
    /* slowv answers at once on old and after 2 s on new: a read of it leaves a shadow running. */
    exec_direct_ok(IT_OLD, "CREATE VIEW slowv AS SELECT 'x'::text AS x");
    if (proxy_mirrors(&g_px)) {
        exec_direct_ok(IT_NEW, "CREATE VIEW slowv AS SELECT 'x'::text AS x FROM pg_sleep(2)");
    }
}

static void case_copy_after_slow_shadow(void)
{
    it_case("(a) COPY right after a read whose shadow runs 2 s on new");
    PGconn *c = connect_nonblocking_reads();
    PGresult *r = PQexec(c, "SELECT x FROM slowv");
    CHECK_RES(r, PGRES_TUPLES_OK);
    PQclear(r);
    char tag[64];
    int st = run_copy(c, "COPY t FROM STDIN", false, 1, 1000, NULL, tag, sizeof tag);
    CHECK_EQ(st, PGRES_COMMAND_OK);
    CHECK_STR(tag, "COPY 1000");
    check_usable(&c);
    PQfinish(c);
    check_same_both("t", 1000);
    check_in_sync();
}

static void case_copy_waits_for_new(void)
{
    it_case("(d) commit_wait = both: a COPY returns once new applied it; a read on new sees it");
    /* new applies COPYs into t2 a second later than old. */
    if (proxy_mirrors(&g_px)) {
        exec_direct_ok(IT_NEW, "CREATE FUNCTION slow_trg() RETURNS trigger LANGUAGE plpgsql AS "
                               "$$BEGIN PERFORM pg_sleep(1); RETURN NULL; END$$");
        exec_direct_ok(IT_NEW, "CREATE TRIGGER slow AFTER INSERT ON t2 FOR EACH STATEMENT "
                               "EXECUTE FUNCTION slow_trg()");
    }
    admin("SET read_new_percent = 100");
    PGconn *c = connect_nonblocking_reads();
    char tag[64];
    int st = run_copy(c, "COPY t2 FROM STDIN", false, 1, 500, NULL, tag, sizeof tag);
    CHECK_EQ(st, PGRES_COMMAND_OK);
    if (proxy_mirrors(&g_px)) {
        CHECK_EQ(proxy_query_ll(&g_px, IT_NEW, "SELECT count(*) FROM t2"),
                 500); /* right when COPY returned */
    }
    CHECK_EQ(query_within(c, "SELECT count(*) FROM t2"), 500); /* routed to new */
    st = run_copy(c, "COPY t2 FROM STDIN", true, 501, 500, NULL, tag, sizeof tag);
    CHECK_EQ(st, PGRES_COMMAND_OK);
    CHECK_EQ(query_within(c, "SELECT count(*) FROM t2"), 1000);
    PQfinish(c);
    admin("SET read_new_percent = 0");
    check_same_both("t2", 1000);
    check_in_sync();
}

/* The extended-protocol cases under one commit_wait value; ids from base. */
static void extended_cases(const char *commit_wait, int base)
{
    char cmd[64];
    snprintf(cmd, sizeof cmd, "SET commit_wait = %s", commit_wait);
    admin(cmd);
    PGconn *c = connect_nonblocking_reads();
    char tag[64];
    it_note("commit_wait = %s: PQexecParams COPY, 2000 rows", commit_wait);
    int st = run_copy(c, "COPY t FROM STDIN", true, base, 2000, NULL, tag, sizeof tag);
    CHECK_EQ(st, PGRES_COMMAND_OK);
    CHECK_STR(tag, "COPY 2000");
    check_usable(&c);
    exec_ok(c, "INSERT INTO t VALUES (-1, 'after')");
    exec_ok(c, "DELETE FROM t WHERE id = -1");
    it_note("commit_wait = %s: PQexecParams COPY the client fails (CopyFail)", commit_wait);
    st =
        run_copy(c, "COPY t FROM STDIN", true, base + 5000, 100, "client gave up", tag, sizeof tag);
    CHECK_EQ(st, PGRES_FATAL_ERROR);
    check_usable(&c);
    it_note("commit_wait = %s: PQexecParams COPY into a missing table", commit_wait);
    st = run_copy(c, "COPY nosuch FROM STDIN", true, 1, 10, NULL, tag, sizeof tag);
    CHECK_EQ(st, PGRES_FATAL_ERROR);
    check_usable(&c);
    it_note("commit_wait = %s: in a transaction block", commit_wait);
    exec_ok(c, "BEGIN");
    st = run_copy(c, "COPY t FROM STDIN", true, base + 3000, 50, NULL, tag, sizeof tag);
    CHECK_EQ(st, PGRES_COMMAND_OK);
    exec_ok(c, "COMMIT");
    check_usable(&c);
    PQfinish(c);
    admin("SET commit_wait = both");
}

static void case_extended_copy(void)
{
    it_case("(b) extended-protocol COPY FROM STDIN under commit_wait = both");
    extended_cases("both", 10000);
    check_same_both("t", 1000 + 2050);
    check_in_sync();
    it_case("(b) extended-protocol COPY FROM STDIN under commit_wait = primary");
    extended_cases("primary", 20000);
    check_same_both("t", 1000 + 2 * 2050);
    check_in_sync();
}

static void case_two_copies_refused(void)
{
    it_case("(c) two COPY FROM STDIN in one Query: refused with 0A000, nothing reaches a backend");
    PGconn *c = connect_nonblocking_reads();
    long long before = proxy_query_ll(&g_px, IT_OLD, "SELECT count(*) FROM t");
    PGresult *r =
        PQexec(c, "INSERT INTO t VALUES (-5, 'x'); COPY t FROM STDIN; COPY t2 FROM STDIN");
    CHECK_RES(r, PGRES_FATAL_ERROR);
    CHECK_SQLSTATE(r, "0A000");
    PQclear(r);
    check_usable(&c);
    CHECK_EQ(proxy_query_ll(&g_px, IT_OLD, "SELECT count(*) FROM t"), before);
    it_case("(c) ... inside a transaction block: the transaction fails, as on any error");
    exec_ok(c, "BEGIN");
    exec_ok(c, "INSERT INTO t VALUES (-6, 'in block')");
    r = PQexec(c, "COPY t FROM STDIN; COPY t2 FROM STDIN");
    CHECK_RES(r, PGRES_FATAL_ERROR);
    CHECK_SQLSTATE(r, "0A000");
    PQclear(r);
    CHECK_EQ(PQtransactionStatus(c), PQTRANS_INERROR);
    r = PQexec(c, "COMMIT"); /* of a failed transaction: rolls back on both */
    PQclear(r);
    CHECK_EQ(PQtransactionStatus(c), PQTRANS_IDLE);
    check_usable(&c);
    PQfinish(c);
    CHECK_EQ(proxy_query_ll(&g_px, IT_OLD, "SELECT count(*) FROM t"), before);
    check_same_both("t", before);
    check_same_both("t2", 1000);
    check_in_sync();
}

/* Last: it takes new out of in_sync. Old fails the COPY (duplicate key, found when its buffered
 * rows are flushed at the end); new, handed pgdual's CopyFail before that flush, ends with 57014.
 * pgdual cannot tell whether old stopped reading the data early (then new read rows old did not,
 * and their defaults may have drawn sequence values old never drew), so new leaves in_sync. */
static void case_failed_copy_leaves_sync(void)
{
    it_case(
        "a COPY old fails (duplicate key): rows equal, but new leaves in_sync (may have drawn)");
    PGconn *c = connect_nonblocking_reads();
    char tag[64];
    int st = run_copy(c, "COPY t FROM STDIN", true, 10000, 10, NULL, tag, sizeof tag);
    CHECK_EQ(st, PGRES_FATAL_ERROR);
    check_usable(&c);
    PQfinish(c);
    check_same_both("t", 1000 + 2 * 2050);
    char v[64];
    if (proxy_mirrors(&g_px) && proxy_admin_status(&g_px, "secondary_state", v, sizeof v) == 0) {
        CHECK_STR(v, "diverged");
    }
}

int main(void)
{
    it_init("it_copy", 280);
    REQUIRE(proxy_start(&g_px, "it_copy", NULL) == 0);
    PGconn *c = proxy_connect(&g_px, IT_PGDUAL);
    REQUIRE(c != NULL);
    case_setup(c);
    PQfinish(c);
    case_copy_after_slow_shadow();
    case_copy_waits_for_new();
    case_extended_copy();
    case_two_copies_refused();
    char v[64];
    if (proxy_admin_status(&g_px, "divergences_total", v, sizeof v) == 0) {
        CHECK_STR(v, "0");
    }
    case_failed_copy_leaves_sync();
    return it_finish();
}

/* tests/integration/it_wrap.c: pgdual's own transaction around an autocommit write (the wrap,
 * lockstep with commit_wait = both) when pgdual's COMMIT fails on the primary (a deferred
 * constraint trigger that raises at commit). The client must get a well-formed reply that libpq
 * accepts and that never shows the write as complete: the rows, then the error instead of the
 * CommandComplete, exactly as PostgreSQL answers an autocommit statement that fails at its
 * commit (compared with old's direct answer), whether the reply was held whole or was over
 * 256 KiB and streamed. The session stays usable, and neither cluster keeps a row. An error message
 * longer than pgdual's 8 KiB capture still reaches the client as a well-formed ErrorResponse. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libpq-fe.h>

#include "tests/harness/proxy.h"

static struct proxy g_px;

static void exec_ok(PGconn *c, const char *sql)
{
    PGresult *r = PQexec(c, sql);
    REQUIRE(PQresultStatus(r) == PGRES_COMMAND_OK || PQresultStatus(r) == PGRES_TUPLES_OK);
    PQclear(r);
}

/* The session answers and is idle: libpq kept its footing in the stream. */
static void check_session_usable(PGconn *c)
{
    CHECK_EQ(PQstatus(c), CONNECTION_OK);
    CHECK_EQ(PQtransactionStatus(c), PQTRANS_IDLE);
    bool ok = true;
    CHECK_EQ(it_query_ll(c, "SELECT 41 + 1", &ok), 42);
    CHECK(ok);
}

static void check_rows_both(const char *sql, long long want)
{
    CHECK_EQ(proxy_query_ll(&g_px, IT_OLD, sql), want);
    if (proxy_mirrors(&g_px)) {
        CHECK_EQ(proxy_query_ll(&g_px, IT_NEW, sql), want);
    }
}

/* An INSERT ... RETURNING of n rows of `pad` (each about 1000 bytes), ids from `first`. */
static void insert_sql(char *buf, size_t len, int first, int n, const char *pad)
{
    snprintf(buf, len,
             "INSERT INTO wide SELECT g, '%s' || repeat('x', 1000) "
             "FROM generate_series(%d, %d) g RETURNING *",
             pad, first, first + n - 1);
}

/* Sends sql, in single-row mode, and reads every result: the rows that arrive, whether a
 * PGRES_TUPLES_OK (the statement's completion) was seen, and the final error's SQLSTATE. */
static void run_single_row(PGconn *c, const char *sql, int *rows, bool *completed, char *sqlstate,
                           size_t sqlstate_len)
{
    *rows = 0;
    *completed = false;
    sqlstate[0] = '\0';
    REQUIRE_EQ(PQsendQuery(c, sql), 1);
    REQUIRE_EQ(PQsetSingleRowMode(c), 1);
    PGresult *r;
    while ((r = PQgetResult(c)) != NULL) {
        switch (PQresultStatus(r)) {
        case PGRES_SINGLE_TUPLE:
            (*rows)++;
            break;
        case PGRES_TUPLES_OK:
            *completed = true;
            break;
        default: {
            const char *st = PQresultErrorField(r, PG_DIAG_SQLSTATE);
            snprintf(sqlstate, sqlstate_len, "%s", st ? st : "?");
            it_note("result: %s %s", PQresStatus(PQresultStatus(r)), PQresultErrorMessage(r));
            break;
        }
        }
        PQclear(r);
    }
}

static void case_setup(PGconn *c)
{
    it_case("setup: table with a deferred trigger that refuses rows named 'fail' at commit");
    exec_ok(c, "CREATE TABLE wide (id int PRIMARY KEY, pad text NOT NULL)");
    exec_ok(c, "CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
               "IF NEW.pad LIKE 'fail%' THEN RAISE EXCEPTION USING ERRCODE = '23514', "
               "MESSAGE = 'refused at commit', DETAIL = 'pad ' || left(NEW.pad, 8); END IF; "
               "IF NEW.pad LIKE 'huge%' THEN RAISE EXCEPTION USING ERRCODE = '23514', "
               "MESSAGE = 'refused ' || repeat('m', 20000); END IF; "
               "RETURN NULL; END $$");
    exec_ok(c, "CREATE CONSTRAINT TRIGGER refuse AFTER INSERT ON wide DEFERRABLE INITIALLY "
               "DEFERRED FOR EACH ROW EXECUTE FUNCTION refuse()");
}

/* sql, refused at commit, answers through pgdual exactly as PostgreSQL answers directly: the
 * same rows in single-row mode, then the error, never the statement's completion. */
static void check_refused_like_direct(PGconn *c, const char *sql)
{
    PGconn *d = proxy_connect(&g_px, IT_OLD);
    REQUIRE(d != NULL);
    int rows = 0, direct_rows = 0;
    bool completed = false, direct_completed = false;
    char st[8], direct_st[8];
    run_single_row(d, sql, &direct_rows, &direct_completed, direct_st, sizeof direct_st);
    PQfinish(d);
    run_single_row(c, sql, &rows, &completed, st, sizeof st);
    CHECK(!direct_completed);
    CHECK(!completed); /* the client never sees the INSERT complete */
    CHECK_STR(direct_st, "23514");
    CHECK_STR(st, "23514");
    CHECK_EQ(rows, direct_rows);
    check_session_usable(c);
}

static void case_big_fails_at_commit(PGconn *c)
{
    it_case("INSERT ... RETURNING of ~500 KiB refused at commit: rows, then the error");
    char sql[256];
    insert_sql(sql, sizeof sql, 1, 500, "fail");
    check_refused_like_direct(c, sql);
    check_rows_both("SELECT count(*) FROM wide", 0);

    it_case("the same through PQexec and PQexecParams: an error result, nothing kept");
    PGresult *r = PQexec(c, sql);
    CHECK_RES(r, PGRES_FATAL_ERROR);
    CHECK_SQLSTATE(r, "23514");
    PQclear(r);
    check_session_usable(c);
    r = PQexecParams(c, sql, 0, NULL, NULL, NULL, NULL, 0);
    CHECK_RES(r, PGRES_FATAL_ERROR);
    CHECK_SQLSTATE(r, "23514");
    PQclear(r);
    check_session_usable(c);
    check_rows_both("SELECT count(*) FROM wide", 0);
}

static void case_small_fails_at_commit(PGconn *c)
{
    it_case("a small INSERT ... RETURNING refused at commit: rows, then the error");
    char sql[256];
    insert_sql(sql, sizeof sql, 1, 3, "fail");
    check_refused_like_direct(c, sql);
    check_rows_both("SELECT count(*) FROM wide", 0);
}

static void case_huge_error_message(PGconn *c)
{
    it_case("COMMIT's error message of 20,000 bytes (over the 8 KiB capture): well-formed");
    char sql[256];
    insert_sql(sql, sizeof sql, 1, 2, "huge");
    PGresult *r = PQexec(c, sql);
    CHECK_RES(r, PGRES_FATAL_ERROR);
    CHECK_SQLSTATE(r, "23514");
    const char *msg = PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY);
    it_note("message starts: %.40s", msg ? msg : "(none)");
    CHECK(msg != NULL);
    PQclear(r);
    check_session_usable(c);
    insert_sql(sql, sizeof sql, 1, 300, "huge");
    r = PQexec(c, sql);
    CHECK_RES(r, PGRES_FATAL_ERROR);
    CHECK_SQLSTATE(r, "23514");
    PQclear(r);
    check_session_usable(c);
    check_rows_both("SELECT count(*) FROM wide", 0);
}

static void case_big_succeeds(PGconn *c)
{
    it_case("INSERT ... RETURNING of ~500 KiB that commits: every row and the tag");
    char sql[256];
    insert_sql(sql, sizeof sql, 1, 500, "ok");
    PGresult *r = PQexec(c, sql);
    CHECK_RES(r, PGRES_TUPLES_OK);
    CHECK_EQ(PQntuples(r), 500);
    CHECK_STR(PQcmdStatus(r), "INSERT 0 500");
    PQclear(r);
    check_session_usable(c);
    check_rows_both("SELECT count(*) FROM wide", 500);
    it_case("a multi-statement write over 256 KiB refused at its last statement's commit");
    char multi[600];
    char a[256], b[256];
    insert_sql(a, sizeof a, 1001, 300, "ok");
    insert_sql(b, sizeof b, 2001, 300, "fail");
    snprintf(multi, sizeof multi, "%s; %s", a, b);
    r = PQexec(c, multi);
    CHECK_RES(r, PGRES_FATAL_ERROR);
    CHECK_SQLSTATE(r, "23514");
    PQclear(r);
    check_session_usable(c);
    check_rows_both("SELECT count(*) FROM wide", 500); /* one implicit transaction: both gone */
}

int main(void)
{
    it_init("it_wrap", 180);
    REQUIRE(proxy_start(&g_px, "it_wrap", NULL) == 0);
    PGconn *c = proxy_connect(&g_px, IT_PGDUAL);
    REQUIRE(c != NULL);
    case_setup(c);
    case_big_fails_at_commit(c);
    case_small_fails_at_commit(c);
    case_huge_error_message(c);
    case_big_succeeds(c);
    PQfinish(c);
    return it_finish();
}

/* tests/integration/it_stmtclass.c: what pgdual believes a statement is must be what the server
 * runs. With read_new_percent = 100 every statement pgdual takes for a read goes to new alone,
 * so a write it misclassifies lands on new only. Each case sends exact protocol bytes on a raw
 * socket, then checks the rows directly on old and on new:
 * - a Parse of a name that exists is rejected (42P05): the name keeps its INSERT;
 * - SQL DEALLOCATE + PREPARE re-define a protocol-prepared name;
 * - a Query inside an unsynced extended batch does not lower the batch's class;
 * - with standard_conforming_strings off, "SELECT 'a\''; DELETE ...; --'" deletes on both sides
 *   (pgdual's parser, which lexes as if it were on, sees one SELECT), also when the SET is still
 *   in flight; with it on again, reads route to new again. */
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tests/harness/proxy.h"
#include "tests/harness/raw.h"

static struct proxy g_px;

static void add_parse(struct raw_msg *m, const char *name, const char *sql)
{
    raw_msg_begin(m, 'P');
    raw_put_str(m, name);
    raw_put_str(m, sql);
    raw_put_u16(m, 0);
    raw_msg_end(m);
}

/* Bind the unnamed portal to stmt: no parameters, default formats. */
static void add_bind(struct raw_msg *m, const char *stmt)
{
    raw_msg_begin(m, 'B');
    raw_put_str(m, "");
    raw_put_str(m, stmt);
    raw_put_u16(m, 0);
    raw_put_u16(m, 0);
    raw_put_u16(m, 0);
    raw_msg_end(m);
}

static void add_execute(struct raw_msg *m)
{
    raw_msg_begin(m, 'E');
    raw_put_str(m, "");
    raw_put_u32(m, 0);
    raw_msg_end(m);
}

static void add_sync(struct raw_msg *m)
{
    raw_msg_begin(m, 'S');
    raw_msg_end(m);
}

/* What the replies held, up to the nz-th ReadyForQuery. */
struct reply {
    char types[64]; /* message types in order */
    char sqlstate[6];
    char first_value[16]; /* the first DataRow's first column */
};

static bool read_replies(int fd, int nz, struct reply *r)
{
    memset(r, 0, sizeof(*r));
    size_t nt = 0;
    while (nz > 0) {
        char t = 0;
        uint32_t len = 0;
        static uint8_t p[65536];
        if (raw_read_msg(fd, &t, p, sizeof p, &len, 10000) != 1) {
            it_note("no complete reply (seen \"%s\")", r->types);
            return false;
        }
        if (nt + 1 < sizeof r->types) {
            r->types[nt++] = t;
        }
        if (t == 'E' && !r->sqlstate[0]) {
            raw_error_sqlstate(p, len, r->sqlstate);
        } else if (t == 'D' && !r->first_value[0] && len >= 6) {
            uint32_t l;
            memcpy(&l, p + 2, 4);
            l = ntohl(l);
            if (l < sizeof r->first_value && 6 + l <= len) {
                memcpy(r->first_value, p + 6, l);
            }
        } else if (t == 'Z') {
            nz--;
        }
    }
    return true;
}

/* Send m, read nz ReadyForQuery's worth of replies. */
static bool roundtrip(int fd, struct raw_msg *m, int nz, struct reply *r)
{
    bool ok = raw_send_all(fd, m->b, m->n) && read_replies(fd, nz, r);
    m->n = 0;
    return ok;
}

/* count(*) of t's rows with this id, directly on old or new (-1 on error). */
static long long rows_with(enum it_target side, int id)
{
    char sql[96];
    snprintf(sql, sizeof sql, "SELECT count(*) FROM t WHERE id = %d", id);
    return proxy_query_ll(&g_px, side, sql);
}

#define CHECK_ROWS(id, want)                     \
    do {                                         \
        CHECK_EQ(rows_with(IT_OLD, (id)), want); \
        CHECK_EQ(rows_with(IT_NEW, (id)), want); \
    } while (0)

static void case_parse_existing(int fd)
{
    struct raw_msg m = {.n = 0};
    struct reply r;
    it_case("Parse s1 = INSERT; Parse s1 = SELECT 1 (42P05); Bind/Execute s1 inserts on both");
    add_parse(&m, "s1", "INSERT INTO t VALUES (1, 'a')");
    add_sync(&m);
    REQUIRE(roundtrip(fd, &m, 1, &r));
    CHECK_STR(r.types, "1Z");
    add_parse(&m, "s1", "SELECT 1");
    add_sync(&m);
    REQUIRE(roundtrip(fd, &m, 1, &r));
    CHECK_STR(r.sqlstate, "42P05");
    add_bind(&m, "s1");
    add_execute(&m);
    add_sync(&m);
    REQUIRE(roundtrip(fd, &m, 1, &r));
    CHECK_STR(r.types, "2CZ");
    CHECK_ROWS(1, 1);
}

static void case_sql_redefine(int fd)
{
    struct raw_msg m = {.n = 0};
    struct reply r;
    it_case("Parse s2 = SELECT 1; SQL DEALLOCATE s2 + PREPARE s2 AS INSERT; Bind/Execute s2");
    add_parse(&m, "s2", "SELECT 1");
    add_sync(&m);
    REQUIRE(roundtrip(fd, &m, 1, &r));
    CHECK_STR(r.types, "1Z");
    raw_add_query(&m, "SELECT 1; DEALLOCATE s2; PREPARE s2 AS INSERT INTO t VALUES (2, 'b')");
    REQUIRE(roundtrip(fd, &m, 1, &r));
    CHECK_STR(r.sqlstate, "");
    add_bind(&m, "s2");
    add_execute(&m);
    add_sync(&m);
    REQUIRE(roundtrip(fd, &m, 1, &r));
    CHECK_STR(r.types, "2CZ");
    CHECK_ROWS(2, 1);
}

static void case_query_in_batch(int fd)
{
    struct raw_msg m = {.n = 0};
    struct reply r;
    it_case("Parse/Bind/Execute INSERT, then Query SELECT 1 before the Sync");
    add_parse(&m, "", "INSERT INTO t VALUES (3, 'c')");
    add_bind(&m, "");
    add_execute(&m);
    raw_add_query(&m, "SELECT 1");
    add_sync(&m);
    REQUIRE(roundtrip(fd, &m, 2, &r));
    CHECK_STR(r.types, "12CTDCZZ");
    CHECK_ROWS(3, 1);
}

/* The marker table says which side served a read. */
static void check_marker(int fd, const char *want)
{
    struct raw_msg m = {.n = 0};
    struct reply r;
    raw_add_query(&m, "SELECT v FROM marker");
    REQUIRE(roundtrip(fd, &m, 1, &r));
    CHECK_STR(r.first_value, want);
}

static void case_scs_off(int fd)
{
    struct raw_msg m = {.n = 0};
    struct reply r;
    static const char *const disguised = "SELECT 'a\\''; DELETE FROM t WHERE id = 100; --'";
    it_case("a read routes to new while standard_conforming_strings is on");
    check_marker(fd, "new");

    it_case("SET standard_conforming_strings = off: the disguised DELETE deletes on both");
    raw_add_query(&m, "SET standard_conforming_strings = off");
    REQUIRE(roundtrip(fd, &m, 1, &r));
    CHECK_STR(r.sqlstate, "");
    raw_add_query(&m, disguised);
    REQUIRE(roundtrip(fd, &m, 1, &r));
    CHECK_STR(r.sqlstate, "");
    CHECK_ROWS(100, 0);
    it_case("...and no read is routed to new meanwhile (a mirrored read, equal on both sides)");
    char before[32], after[32];
    REQUIRE(proxy_admin_status(&g_px, "reads_served_new", before, sizeof before) == 0);
    raw_add_query(&m, "SELECT count(*) FROM t WHERE id >= 100");
    REQUIRE(roundtrip(fd, &m, 1, &r));
    CHECK_STR(r.first_value, "1");
    REQUIRE(proxy_admin_status(&g_px, "reads_served_new", after, sizeof after) == 0);
    CHECK_STR(after, before);

    it_case("SET ... = on: reads route again");
    raw_add_query(&m, "SET standard_conforming_strings = on");
    REQUIRE(roundtrip(fd, &m, 1, &r));
    check_marker(fd, "new");

    it_case("the SET and the disguised DELETE sent together: the DELETE runs on both");
    raw_add_query(&m, "SET standard_conforming_strings = off");
    raw_add_query(&m, "SELECT 'a\\''; DELETE FROM t WHERE id = 101; --'");
    REQUIRE(roundtrip(fd, &m, 2, &r));
    CHECK_STR(r.sqlstate, "");
    CHECK_ROWS(101, 0);
    raw_add_query(&m, "RESET standard_conforming_strings");
    REQUIRE(roundtrip(fd, &m, 1, &r));
    check_marker(fd, "new");
}

static void add_flush(struct raw_msg *m)
{
    raw_msg_begin(m, 'H');
    raw_msg_end(m);
}

/* Read replies up to and including the first message of type stop (no ReadyForQuery). */
static bool read_until(int fd, char stop)
{
    for (int i = 0; i < 32; i++) {
        char t = 0;
        uint32_t len = 0;
        static uint8_t p[65536];
        if (raw_read_msg(fd, &t, p, sizeof p, &len, 10000) != 1) {
            return false;
        }
        if (t == stop) {
            return true;
        }
    }
    return false;
}

static void case_user_code_redefines(int fd)
{
    struct raw_msg m = {.n = 0};
    struct reply r;
    it_case("Parse s3 = SELECT 1; a DO block DEALLOCATEs and PREPAREs s3 AS INSERT; Execute s3");
    add_parse(&m, "s3", "SELECT 1");
    add_sync(&m);
    REQUIRE(roundtrip(fd, &m, 1, &r));
    raw_add_query(&m, "DO $$BEGIN EXECUTE 'DEALLOCATE s3'; "
                      "EXECUTE 'PREPARE s3 AS INSERT INTO t VALUES (3003, ''d'')'; END$$");
    REQUIRE(roundtrip(fd, &m, 1, &r));
    CHECK_STR(r.sqlstate, "");
    add_bind(&m, "s3");
    add_execute(&m);
    add_sync(&m);
    REQUIRE(roundtrip(fd, &m, 1, &r));
    CHECK_STR(r.types, "2CZ");
    CHECK_ROWS(3003, 1);
}

/* The start of a batch: P/B/E SELECT 1 and a Flush, whose answers the client reads (the
 * primary has answered part of the batch before its first write). */
static bool flushed_read(int fd)
{
    struct raw_msg m = {.n = 0};
    add_parse(&m, "", "SELECT 1");
    add_bind(&m, "");
    add_execute(&m);
    add_flush(&m);
    return raw_send_all(fd, m.b, m.n) && read_until(fd, 'C');
}

/* A batch that Flushed a read's answers, then wrote: the primary's outcome misses the first
 * steps; no false divergence when all goes well. */
static void case_flush_then_write(int fd)
{
    struct raw_msg m = {.n = 0};
    struct reply r;
    it_case("P/B/E SELECT 1, Flush (answered), then P/B/E INSERT, Sync: no false divergence");
    /* pgdual learns what t is (pinning looks a table up before a unit, not inside a batch the
     * primary already runs; the DDL and SET above emptied what it knew). */
    raw_add_query(&m, "INSERT INTO t VALUES (4003, 'd')");
    REQUIRE(roundtrip(fd, &m, 1, &r));
    CHECK_STR(r.sqlstate, "");
    REQUIRE(flushed_read(fd));
    add_parse(&m, "", "INSERT INTO t VALUES (4004, 'e')");
    add_bind(&m, "");
    add_execute(&m);
    add_sync(&m);
    REQUIRE(roundtrip(fd, &m, 1, &r));
    CHECK_STR(r.sqlstate, "");
    CHECK_ROWS(4004, 1);
}

/* The same shape failing after a nextval: the replay cannot count the primary's first steps, so
 * new leaves in_sync rather than replay the wrong prefix. */
static void case_flush_then_fail(int fd)
{
    struct raw_msg m = {.n = 0};
    struct reply r;
    it_case("P/B/E SELECT 1, Flush, then nextval and a failing statement: new is diverged");
    REQUIRE(flushed_read(fd));
    add_parse(&m, "", "SELECT nextval('sq')");
    add_bind(&m, "");
    add_execute(&m);
    add_parse(&m, "", "SELECT 1/0");
    add_bind(&m, "");
    add_execute(&m);
    add_sync(&m);
    REQUIRE(roundtrip(fd, &m, 1, &r));
    CHECK_STR(r.sqlstate, "22012");
    char state[32];
    REQUIRE(proxy_admin_status(&g_px, "secondary_state", state, sizeof state) == 0);
    CHECK_STR(state, "diverged");
}

int main(void)
{
    it_init("it_stmtclass", 120);
    struct proxy_opts opts = {.cutover = "read_new_percent = 100\ncompare_percent = 0\n"};
    REQUIRE(proxy_start(&g_px, "it_stmtclass", &opts) == 0);
    if (!proxy_mirrors(&g_px)) {
        it_note("skip: needs pgdual and both backends");
        return it_finish();
    }
    REQUIRE(proxy_make_marker(&g_px) == 0);
    for (int i = 0; i < 2; i++) {
        REQUIRE(proxy_exec_direct(&g_px, i == 0 ? IT_OLD : IT_NEW,
                                  "CREATE TABLE t (id int PRIMARY KEY, v text);"
                                  "CREATE SEQUENCE sq;"
                                  "INSERT INTO t VALUES (100, 'x'), (101, 'y')") == 0);
    }
    int fd = raw_session(&g_px);
    REQUIRE(fd >= 0);
    case_parse_existing(fd);
    case_sql_redefine(fd);
    case_query_in_batch(fd);
    case_scs_off(fd);
    case_flush_then_write(fd);
    char state[32];
    if (proxy_admin_status(&g_px, "secondary_state", state, sizeof state) == 0) {
        CHECK_STR(state, "in_sync");
    }
    case_flush_then_fail(fd);     /* takes new out of in_sync */
    case_user_code_redefines(fd); /* so does a DO block (code pgdual cannot see into) */
    close(fd);
    return it_finish();
}

/* tests/integration/it_terminate.c: a client that sends its last statement and Terminate in one
 * write (psql -c does, for fire-and-forget scripts) and closes: the statement is still run on
 * old and mirrored to new before the session ends, for a wrapped autocommit INSERT, a DDL, and
 * an INSERT in parallel mode. And a batch without Sync whose COMMIT old executes before the
 * client vanishes cannot reach new: that loss is recorded (secondary_state leaves in_sync). */
#include <arpa/inet.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <libpq-fe.h>

#include "tests/harness/proxy.h"
#include "tests/harness/raw.h"

static struct proxy g_px;

static void add_empty(struct raw_msg *m, char type)
{
    raw_msg_begin(m, type);
    raw_msg_end(m);
}

/* Parse (unnamed), Bind (unnamed portal), Execute: one statement of an extended batch. */
static void add_pbe(struct raw_msg *m, const char *sql)
{
    raw_msg_begin(m, 'P');
    raw_put_str(m, "");
    raw_put_str(m, sql);
    raw_put_u16(m, 0);
    raw_msg_end(m);
    raw_msg_begin(m, 'B');
    raw_put_str(m, "");
    raw_put_str(m, "");
    raw_put_u16(m, 0);
    raw_put_u16(m, 0);
    raw_put_u16(m, 0);
    raw_msg_end(m);
    raw_msg_begin(m, 'E');
    raw_put_str(m, "");
    raw_put_u32(m, 0);
    raw_msg_end(m);
}

/* Reads up to the next ReadyForQuery; its status, or 0. */
static char read_ready(int fd)
{
    static uint8_t p[65536];
    for (;;) {
        char t = 0;
        uint32_t len = 0;
        if (raw_read_msg(fd, &t, p, sizeof p, &len, 10000) != 1) {
            return 0;
        }
        if (t == 'Z') {
            return (char)p[0];
        }
    }
}

/* `sql` (a count) on old or new equals want, polled for up to 10 s. */
static bool eventually(enum it_target t, const char *sql, long long want)
{
    long long got = -1;
    for (int64_t dl = it_now_ms() + 10000; it_now_ms() < dl; it_sleep_ms(50)) {
        PGconn *c = proxy_connect(&g_px, t);
        bool ok = true;
        got = c ? it_query_ll(c, sql, &ok) : -1;
        PQfinish(c);
        if (ok && got == want) {
            return true;
        }
    }
    it_note("%s on %s: %lld, want %lld", sql, t == IT_OLD ? "old" : "new", got, want);
    return false;
}

static void check_state(const char *want)
{
    char st[64] = "";
    CHECK_EQ(proxy_admin_status(&g_px, "secondary_state", st, sizeof st), 0);
    CHECK_STR(st, want);
}

/* One connection: `sql`, then Terminate, in a single write; then the socket is closed. */
static void query_and_terminate(const char *sql)
{
    int fd = raw_session(&g_px);
    REQUIRE(fd >= 0);
    struct raw_msg m = {.n = 0};
    raw_add_query(&m, sql);
    add_empty(&m, 'X');
    CHECK(raw_send_all(fd, m.b, m.n));
    close(fd);
}

static void admin(const char *sql)
{
    PGconn *c = proxy_connect_as(&g_px, IT_PGDUAL, "admin", "pgdual");
    PGresult *r = PQexec(c, sql);
    CHECK_RES(r, PGRES_COMMAND_OK);
    PQclear(r);
    PQfinish(c);
}

int main(void)
{
    it_init("it_terminate", 120);
    REQUIRE(proxy_start(&g_px, "it_terminate", NULL) == 0);
    if (!proxy_mirrors(&g_px)) {
        it_note("skip: needs pgdual and both backends");
        return it_finish();
    }
    REQUIRE(proxy_exec_direct(&g_px, IT_OLD, "CREATE TABLE tt (id int PRIMARY KEY)") == 0);
    REQUIRE(proxy_exec_direct(&g_px, IT_NEW, "CREATE TABLE tt (id int PRIMARY KEY)") == 0);

    it_case("INSERT + Terminate in one write (a wrapped autocommit write)");
    query_and_terminate("INSERT INTO tt VALUES (1)");
    CHECK(eventually(IT_OLD, "SELECT count(*) FROM tt WHERE id = 1", 1));
    CHECK(eventually(IT_NEW, "SELECT count(*) FROM tt WHERE id = 1", 1));

    it_case("CREATE TABLE + Terminate in one write (not wrapped)");
    query_and_terminate("CREATE TABLE tt_ddl (x int)");
    const char *ddl = "SELECT count(*) FROM pg_tables WHERE tablename = 'tt_ddl'";
    CHECK(eventually(IT_OLD, ddl, 1));
    CHECK(eventually(IT_NEW, ddl, 1));

    it_case("INSERT + Terminate in one write, parallel mode");
    admin("SET mirror_order = parallel");
    query_and_terminate("INSERT INTO tt VALUES (2)");
    CHECK(eventually(IT_OLD, "SELECT count(*) FROM tt WHERE id = 2", 1));
    CHECK(eventually(IT_NEW, "SELECT count(*) FROM tt WHERE id = 2", 1));
    admin("SET mirror_order = lockstep");
    check_state("in_sync");

    it_case("a batch without Sync runs COMMIT on old, the client vanishes: the loss is recorded");
    int fd = raw_session(&g_px);
    REQUIRE(fd >= 0);
    struct raw_msg m = {.n = 0};
    raw_add_query(&m, "BEGIN");
    REQUIRE(raw_send_all(fd, m.b, m.n));
    CHECK_EQ(read_ready(fd), 'T');
    m.n = 0;
    add_pbe(&m, "INSERT INTO tt VALUES (3)");
    add_pbe(&m, "COMMIT");
    add_empty(&m, 'H'); /* Flush: the batch goes to old now, Sync never comes */
    REQUIRE(raw_send_all(fd, m.b, m.n));
    close(fd);
    CHECK(eventually(IT_OLD, "SELECT count(*) FROM tt WHERE id = 3", 1));
    bool left = false;
    for (int64_t dl = it_now_ms() + 10000; !left && it_now_ms() < dl; it_sleep_ms(50)) {
        char st[64] = "";
        left = proxy_admin_status(&g_px, "secondary_state", st, sizeof st) == 0 &&
               strcmp(st, "in_sync") != 0;
    }
    CHECK(left);
    return it_finish();
}

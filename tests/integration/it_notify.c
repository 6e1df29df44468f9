/* tests/integration/it_notify.c: LISTEN/NOTIFY through pgdual: notifications (channel + payload)
 * reach the listener within 2 s, in order, exactly once (from the primary only). */
#include <stdio.h>
#include <string.h>
#include <sys/select.h>

#include <libpq-fe.h>

#include "tests/harness/proxy.h"

static struct proxy g_px;

/* Waits up to timeout_ms for the next notification; NULL on timeout. The caller PQfreemem()s it. */
static PGnotify *wait_notify(PGconn *c, int timeout_ms)
{
    int64_t deadline = it_now_ms() + timeout_ms;
    for (;;) {
        if (PQconsumeInput(c) != 1) {
            it_note("PQconsumeInput: %s", PQerrorMessage(c));
            return NULL;
        }
        PGnotify *n = PQnotifies(c);
        int64_t left = deadline - it_now_ms();
        if (n != NULL || left <= 0) {
            return n;
        }
        fd_set rd;
        FD_ZERO(&rd);
        FD_SET(PQsocket(c), &rd);
        struct timeval tv = {.tv_sec = (time_t)(left / 1000),
                             .tv_usec = (long)(left % 1000) * 1000};
        (void)select(PQsocket(c) + 1, &rd, NULL, NULL, &tv);
    }
}

static void exec_ok(PGconn *c, const char *sql, ExecStatusType want)
{
    PGresult *r = PQexec(c, sql);
    CHECK_RES(r, want);
    PQclear(r);
}

static void expect_notify(PGconn *c, const char *channel, const char *payload, int64_t sent_at)
{
    PGnotify *n = wait_notify(c, 2000);
    if (!CHECK(n != NULL)) {
        it_note("no notification on %s within 2 s", channel);
        return;
    }
    it_note("notification on \"%s\" after %lld ms", n->relname, (long long)(it_now_ms() - sent_at));
    CHECK_STR(n->relname, channel);
    CHECK_STR(n->extra, payload);
    CHECK_GT(n->be_pid, 0);
    PQfreemem(n);
}

int main(int argc, char **argv)
{
    (void)argc;
    it_init(argv[0], 120);
    REQUIRE(proxy_start(&g_px, "it_notify", NULL) == 0);
    PGconn *listener = proxy_connect(&g_px, IT_PGDUAL);
    PGconn *sender = proxy_connect(&g_px, IT_PGDUAL);
    REQUIRE(listener != NULL && sender != NULL);

    it_case("LISTEN on one session, NOTIFY with payload from another");
    exec_ok(listener, "LISTEN it_chan", PGRES_COMMAND_OK);
    exec_ok(listener, "LISTEN \"Mixed Case\"", PGRES_COMMAND_OK);
    int64_t t = it_now_ms();
    exec_ok(sender, "NOTIFY it_chan, 'hello from sender'", PGRES_COMMAND_OK);
    expect_notify(listener, "it_chan", "hello from sender", t);

    it_case("empty payload, quoted channel, pg_notify() with UTF-8 payload");
    t = it_now_ms();
    exec_ok(sender, "NOTIFY it_chan", PGRES_COMMAND_OK);
    expect_notify(listener, "it_chan", "", t);
    t = it_now_ms();
    exec_ok(sender, "SELECT pg_notify('Mixed Case', 'p\xC3\xA4yload \xF0\x9F\x94\x94')",
            PGRES_TUPLES_OK);
    expect_notify(listener, "Mixed Case", "p\xC3\xA4yload \xF0\x9F\x94\x94", t);

    it_case("notifications sent in one transaction arrive at commit, in order");
    exec_ok(sender, "BEGIN", PGRES_COMMAND_OK);
    exec_ok(sender, "NOTIFY it_chan, 'one'", PGRES_COMMAND_OK);
    exec_ok(sender, "NOTIFY it_chan, 'two'", PGRES_COMMAND_OK);
    exec_ok(sender, "NOTIFY it_chan, 'three'", PGRES_COMMAND_OK);
    PGnotify *early = wait_notify(listener, 300);
    CHECK(early == NULL); /* not before COMMIT */
    PQfreemem(early);
    t = it_now_ms();
    exec_ok(sender, "COMMIT", PGRES_COMMAND_OK);
    expect_notify(listener, "it_chan", "one", t);
    expect_notify(listener, "it_chan", "two", t);
    expect_notify(listener, "it_chan", "three", t);

    it_case("each notification arrives exactly once (primary only), UNLISTEN stops them");
    PGnotify *dup = wait_notify(listener, 700);
    if (!CHECK(dup == NULL)) {
        it_note("unexpected extra notification \"%s\" / \"%s\"", dup->relname, dup->extra);
    }
    PQfreemem(dup);
    exec_ok(listener, "UNLISTEN it_chan", PGRES_COMMAND_OK);
    exec_ok(sender, "NOTIFY it_chan, 'after unlisten'", PGRES_COMMAND_OK);
    t = it_now_ms();
    exec_ok(sender, "NOTIFY \"Mixed Case\", 'still listening'", PGRES_COMMAND_OK);
    expect_notify(listener, "Mixed Case", "still listening", t);
    dup = wait_notify(listener, 500);
    CHECK(dup == NULL);
    PQfreemem(dup);

    it_case("a session notifying itself");
    exec_ok(listener, "LISTEN self_chan", PGRES_COMMAND_OK);
    t = it_now_ms();
    exec_ok(listener, "NOTIFY self_chan, 'me'", PGRES_COMMAND_OK);
    expect_notify(listener, "self_chan", "me", t);

    PQfinish(sender);
    PQfinish(listener);
    return it_finish();
}

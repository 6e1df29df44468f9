/* tests/integration/it_portal.c: a portal that only new holds. With read_new_percent = 100, a
 * transaction binds a portal for a read and fetches 3 rows (Execute with a row limit: the portal
 * is suspended, which libpq never does, hence a raw socket); that batch ran on new alone, so the
 * next batch, which only Executes the portal again, must go to new too (old has no such portal)
 * and get the other 7 rows. A table `marker` ('old' on old, 'new' on new, written directly) shows
 * which side answered each row. */
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tests/harness/proxy.h"
#include "tests/harness/raw.h"

static struct proxy g_px;

static void add_execute(struct raw_msg *m, const char *portal, uint32_t max_rows)
{
    raw_msg_begin(m, 'E');
    raw_put_str(m, portal);
    raw_put_u32(m, max_rows);
    raw_msg_end(m);
}

static void add_sync(struct raw_msg *m)
{
    raw_msg_begin(m, 'S');
    raw_msg_end(m);
}

/* What one batch's reply held, up to its ReadyForQuery. */
struct reply {
    char types[64]; /* message types in order, DataRows included */
    int rows, rows_from_new;
    char txn;
    char sqlstate[6];
};

static bool read_reply(int fd, struct reply *r)
{
    memset(r, 0, sizeof(*r));
    size_t nt = 0;
    for (;;) {
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
        if (t == 'D' && len >= 2) {
            r->rows++;
            /* Second column (after int16 count, int32 len + bytes of the first). */
            uint32_t l1;
            memcpy(&l1, p + 2, 4);
            size_t at = 2 + 4 + ntohl(l1);
            uint32_t l2;
            memcpy(&l2, p + at, 4);
            r->rows_from_new += ntohl(l2) == 3 && memcmp(p + at + 4, "new", 3) == 0;
        } else if (t == 'E') {
            raw_error_sqlstate(p, len, r->sqlstate);
        } else if (t == 'Z') {
            r->txn = (char)p[0];
            return true;
        }
    }
}

int main(void)
{
    it_init("it_portal", 120);
    struct proxy_opts opts = {.cutover = "read_new_percent = 100\ncompare_percent = 0\n"};
    REQUIRE(proxy_start(&g_px, "it_portal", &opts) == 0);
    if (!proxy_mirrors(&g_px)) {
        it_note("skip: needs pgdual and both backends");
        return it_finish();
    }
    REQUIRE(proxy_make_marker(&g_px) == 0);
    int fd = raw_session(&g_px);
    REQUIRE(fd >= 0);
    struct reply r;
    struct raw_msg m = {.n = 0};

    it_case("BEGIN, then a portal bound on new and fetched 3 rows at a time");
    raw_add_query(&m, "BEGIN");
    REQUIRE(raw_send_all(fd, m.b, m.n) && read_reply(fd, &r));
    CHECK_EQ(r.txn, 'T');

    m.n = 0;
    raw_msg_begin(&m, 'P'); /* Parse: unnamed statement, no parameter types */
    raw_put_str(&m, "");
    raw_put_str(&m, "SELECT g, (SELECT v FROM marker) FROM generate_series(1, 10) g");
    raw_put_u16(&m, 0);
    raw_msg_end(&m);
    raw_msg_begin(&m, 'B'); /* Bind: portal p1, no parameters, default result formats */
    raw_put_str(&m, "p1");
    raw_put_str(&m, "");
    raw_put_u16(&m, 0);
    raw_put_u16(&m, 0);
    raw_put_u16(&m, 0);
    raw_msg_end(&m);
    add_execute(&m, "p1", 3);
    add_sync(&m);
    REQUIRE(raw_send_all(fd, m.b, m.n) && read_reply(fd, &r));
    CHECK_STR(r.types, "12DDDsZ");
    CHECK_EQ(r.rows_from_new, 3);
    CHECK_EQ(r.txn, 'T');

    it_case("the next batch only Executes the portal: it must go where the portal is (new)");
    m.n = 0;
    add_execute(&m, "p1", 0);
    add_sync(&m);
    REQUIRE(raw_send_all(fd, m.b, m.n) && read_reply(fd, &r));
    CHECK_STR(r.sqlstate, "");
    CHECK_EQ(r.rows, 7);
    CHECK_EQ(r.rows_from_new, 7);
    CHECK_EQ(r.txn, 'T');

    m.n = 0;
    raw_add_query(&m, "COMMIT");
    REQUIRE(raw_send_all(fd, m.b, m.n) && read_reply(fd, &r));
    CHECK_EQ(r.txn, 'I');
    close(fd);
    return it_finish();
}

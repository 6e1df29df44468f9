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

/* A frontend message: type, length, then the body parts appended by the put_* calls. */
struct msg {
    uint8_t b[1024];
    size_t n, start;
};

static void msg_begin(struct msg *m, char type)
{
    m->start = m->n;
    m->b[m->n++] = (uint8_t)type;
    m->n += 4;
}

static void put_bytes(struct msg *m, const void *p, size_t len)
{
    memcpy(m->b + m->n, p, len);
    m->n += len;
}

static void put_str(struct msg *m, const char *s)
{
    put_bytes(m, s, strlen(s) + 1);
}

static void put_u16(struct msg *m, uint16_t v)
{
    uint16_t be = htons(v);
    put_bytes(m, &be, 2);
}

static void put_u32(struct msg *m, uint32_t v)
{
    uint32_t be = htonl(v);
    put_bytes(m, &be, 4);
}

static void msg_end(struct msg *m)
{
    uint32_t be = htonl((uint32_t)(m->n - m->start - 1));
    memcpy(m->b + m->start + 1, &be, 4);
}

static void add_query(struct msg *m, const char *sql)
{
    msg_begin(m, 'Q');
    put_str(m, sql);
    msg_end(m);
}

static void add_execute(struct msg *m, const char *portal, uint32_t max_rows)
{
    msg_begin(m, 'E');
    put_str(m, portal);
    put_u32(m, max_rows);
    msg_end(m);
}

static void add_sync(struct msg *m)
{
    msg_begin(m, 'S');
    msg_end(m);
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
    struct msg m = {.n = 0};

    it_case("BEGIN, then a portal bound on new and fetched 3 rows at a time");
    add_query(&m, "BEGIN");
    REQUIRE(raw_send_all(fd, m.b, m.n) && read_reply(fd, &r));
    CHECK_EQ(r.txn, 'T');

    m.n = 0;
    msg_begin(&m, 'P'); /* Parse: unnamed statement, no parameter types */
    put_str(&m, "");
    put_str(&m, "SELECT g, (SELECT v FROM marker) FROM generate_series(1, 10) g");
    put_u16(&m, 0);
    msg_end(&m);
    msg_begin(&m, 'B'); /* Bind: portal p1, no parameters, default result formats */
    put_str(&m, "p1");
    put_str(&m, "");
    put_u16(&m, 0);
    put_u16(&m, 0);
    put_u16(&m, 0);
    msg_end(&m);
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
    add_query(&m, "COMMIT");
    REQUIRE(raw_send_all(fd, m.b, m.n) && read_reply(fd, &r));
    CHECK_EQ(r.txn, 'I');
    close(fd);
    return it_finish();
}

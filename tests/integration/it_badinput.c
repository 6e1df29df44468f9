/* tests/integration/it_badinput.c: hostile and broken frontends on raw sockets: each gets an
 * ErrorResponse (SQLSTATE parsed from the bytes) where the protocol allows, then EOF, and pgdual
 * keeps serving a normal client after every case. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <libpq-fe.h>

#include "tests/harness/proxy.h"
#include "tests/harness/raw.h"

#define MAX_CLIENT_CONN   8
#define LOGIN_TIMEOUT_MS  1000
#define MAX_MESSAGE_BYTES 65536

static struct proxy g_px;

/* After the bad input: an ErrorResponse with one of the allowed SQLSTATEs (required unless
 * error_optional), then EOF within 3 s. */
static void expect_error_then_eof(int fd, const char *state_a, const char *state_b,
                                  bool error_optional)
{
    static uint8_t payload[65536];
    char t = 0;
    uint32_t len = 0;
    int r = raw_read_msg(fd, &t, payload, sizeof payload, &len, 3000);
    while (r == 1 && t == 'N') { /* a notice may precede the error */
        r = raw_read_msg(fd, &t, payload, sizeof payload, &len, 3000);
    }
    if (r == 1) {
        char st[6] = "";
        CHECK_EQ(t, 'E');
        CHECK(raw_error_sqlstate(payload, len, st));
        it_note("ErrorResponse SQLSTATE %s", st);
        CHECK(strcmp(st, state_a) == 0 || (state_b != NULL && strcmp(st, state_b) == 0));
        r = raw_read_msg(fd, &t, payload, sizeof payload, &len, 3000);
        CHECK_EQ(r, 0); /* EOF right after the error */
    } else if (error_optional) {
        it_note("no ErrorResponse (allowed here), %s", r == 0 ? "EOF" : "timeout");
        CHECK_EQ(r, 0);
    } else {
        it_note("expected an ErrorResponse, got %s", r == 0 ? "EOF" : "timeout");
        CHECK_EQ(r, 1);
    }
    close(fd);
}

/* The proxy still serves a normal client, and the broken client left no backend behind. */
static void expect_proxy_healthy(void)
{
    PGconn *c = proxy_connect(&g_px, IT_PGDUAL);
    bool ok = c != NULL;
    CHECK(ok);
    if (c != NULL) {
        CHECK_EQ(it_query_ll(c, "SELECT 1", &ok), 1);
        CHECK(ok);
        PQfinish(c);
    }
    char sql[256];
    snprintf(sql, sizeof sql,
             "SELECT count(*) FROM pg_stat_activity WHERE datname = '%s' "
             "AND backend_type = 'client backend' AND pid <> pg_backend_pid()",
             g_px.dbname);
    for (enum it_target t = IT_OLD; t <= (proxy_mirrors(&g_px) ? IT_NEW : IT_OLD); t++) {
        long long n = -1;
        for (int64_t dl = it_now_ms() + 3000; it_now_ms() < dl; it_sleep_ms(100)) {
            PGconn *d = proxy_connect(&g_px, t);
            n = d != NULL ? it_query_ll(d, sql, NULL) : -1;
            PQfinish(d);
            if (n == 0) {
                break;
            }
        }
        CHECK_EQ(n, 0); /* no leaked backend connections */
    }
}

static void case_garbage(void)
{
    it_case("(a) garbage instead of a startup packet");
    static const char http[] = "GET / HTTP/1.1\r\nHost: localhost\r\n\r\n";
    int fd = raw_connect(&g_px);
    REQUIRE(fd >= 0);
    CHECK(raw_send_all(fd, http, sizeof http - 1));
    expect_error_then_eof(fd, "08P01", "0A000", g_px.direct);
    expect_proxy_healthy();

    it_case("(a') random bytes with a plausible length");
    uint8_t junk[64];
    srand(7);
    for (size_t i = 0; i < sizeof junk; i++) {
        junk[i] = (uint8_t)rand();
    }
    const uint32_t len = htonl(sizeof junk);
    memcpy(junk, &len, 4);
    fd = raw_connect(&g_px);
    REQUIRE(fd >= 0);
    CHECK(raw_send_all(fd, junk, sizeof junk));
    expect_error_then_eof(fd, "08P01", "0A000", g_px.direct);
    expect_proxy_healthy();
}

static void case_after_startup(const char *name, const uint8_t *msg, size_t len, bool half_close,
                               bool error_optional)
{
    it_case(name);
    int fd = raw_session(&g_px);
    REQUIRE(fd >= 0);
    CHECK(raw_send_all(fd, msg, len));
    if (half_close) {
        shutdown(fd, SHUT_WR);
    }
    expect_error_then_eof(fd, "08P01", NULL, error_optional);
    expect_proxy_healthy();
}

static void case_protocol_v2(void)
{
    it_case("(e) startup packet with protocol 2.0");
    uint8_t b[512];
    int fd = raw_connect(&g_px);
    REQUIRE(fd >= 0);
    CHECK(raw_send_all(fd, b, raw_build_startup(&g_px, b, 2u << 16)));
    /* Read everything up to EOF: PostgreSQL answers a 2.0 client in the 2.0 format ('E', text,
     * NUL) while a 3.0 ErrorResponse carries a length and a SQLSTATE. Either is an error. */
    static uint8_t raw[8192];
    size_t n = 0;
    int64_t deadline = it_now_ms() + 3000;
    for (int r = 1; r > 0 && n < sizeof raw;) {
        r = raw_recv_exact(fd, raw + n, 1, deadline);
        n += r > 0 ? 1 : 0;
        if (r < 0) {
            it_note("timeout: no EOF after the protocol 2.0 error");
            CHECK(r == 0);
        }
    }
    close(fd);
    REQUIRE(CHECK(n >= 6) && CHECK_EQ(raw[0], 'E'));
    uint32_t len = (uint32_t)raw[1] << 24 | (uint32_t)raw[2] << 16 | (uint32_t)raw[3] << 8 | raw[4];
    char st[6] = "";
    if (len + 1 == n) {
        CHECK(raw_error_sqlstate(raw + 5, len - 4, st));
        it_note("3.0 ErrorResponse SQLSTATE %s", st);
        CHECK(strcmp(st, "0A000") == 0 || strcmp(st, "08P01") == 0);
    } else {
        it_note("2.0-style error: %.*s", (int)strnlen((const char *)raw + 1, n - 1), raw + 1);
        CHECK_EQ(raw[n - 1], 0);
        CHECK(memmem(raw, n, "protocol", 8) != NULL);
    }
    expect_proxy_healthy();
}

static void case_silent_client(void)
{
    it_case("(f) a silent client is closed after client_login_timeout_ms");
    if (g_px.direct) {
        it_note("skip: PostgreSQL's own authentication_timeout is 60 s");
        return;
    }
    int fd = raw_connect(&g_px);
    REQUIRE(fd >= 0);
    int64_t t0 = it_now_ms();
    uint8_t buf[1024];
    int r = raw_recv_exact(fd, buf, sizeof buf, t0 + 4000); /* any error bytes, then EOF */
    int64_t took = it_now_ms() - t0;
    it_note("closed after %lld ms", (long long)took);
    CHECK_EQ(r, 0);
    CHECK_GE(took, LOGIN_TIMEOUT_MS - 100);
    CHECK_LE(took, 3000);
    close(fd);

    it_case("(f') a client stalling inside its startup packet is closed too");
    fd = raw_connect(&g_px);
    REQUIRE(fd >= 0);
    CHECK(raw_send_all(fd, "\0\0\0\x30\0\x03", 6));
    t0 = it_now_ms();
    r = raw_recv_exact(fd, buf, sizeof buf, t0 + 4000);
    CHECK_EQ(r, 0);
    CHECK_LE(it_now_ms() - t0, 3000);
    close(fd);
    expect_proxy_healthy();
}

static void case_max_client_conn(void)
{
    it_case("(g) max_client_conn exceeded -> 53300");
    if (g_px.direct) {
        it_note("skip: needs pgdual's max_client_conn");
        return;
    }
    PGconn *held[MAX_CLIENT_CONN] = {0};
    for (int i = 0; i < MAX_CLIENT_CONN; i++) {
        held[i] = proxy_connect(&g_px, IT_PGDUAL);
        CHECK(held[i] != NULL);
    }
    PGconn *extra = proxy_connect_as(&g_px, IT_PGDUAL, g_px.cluster.user, g_px.dbname);
    CHECK_EQ(PQstatus(extra), CONNECTION_BAD);
    CHECK(strstr(PQerrorMessage(extra), "too many connections") != NULL);
    it_note("libpq says: %s", PQerrorMessage(extra));
    PQfinish(extra);
    int fd = raw_connect(&g_px);
    uint8_t b[512];
    if (CHECK(fd >= 0)) {
        (void)raw_send_all(fd, b,
                           raw_build_startup(&g_px, b, 196608)); /* may race with pgdual's close */
        expect_error_then_eof(fd, "53300", NULL, false);
    }
    /* Freeing one slot lets a new client in (closing is asynchronous: retry briefly). */
    PQfinish(held[0]);
    held[0] = NULL;
    PGconn *again = NULL;
    for (int64_t dl = it_now_ms() + 3000; again == NULL && it_now_ms() < dl; it_sleep_ms(50)) {
        again = proxy_connect_as(&g_px, IT_PGDUAL, g_px.cluster.user, g_px.dbname);
        if (PQstatus(again) != CONNECTION_OK) {
            PQfinish(again);
            again = NULL;
        }
    }
    CHECK(again != NULL);
    PQfinish(again);
    for (int i = 0; i < MAX_CLIENT_CONN; i++) {
        PQfinish(held[i]);
    }
    it_sleep_ms(300);
    expect_proxy_healthy();
}

int main(int argc, char **argv)
{
    (void)argc;
    it_init(argv[0], 240);
    char extra[256];
    snprintf(extra, sizeof extra,
             "max_client_conn = %d\nclient_login_timeout_ms = %d\nmax_message_bytes = %d",
             MAX_CLIENT_CONN, LOGIN_TIMEOUT_MS, MAX_MESSAGE_BYTES);
    REQUIRE(proxy_start(&g_px, "it_badinput", &(struct proxy_opts){.pgdual = extra}) == 0);
    expect_proxy_healthy();
    /* PostgreSQL itself drops these silently (COMMERROR), so only pgdual must answer them. */
    bool lenient = g_px.direct;

    case_garbage();
    static const uint8_t huge_len[] = {'Q', 0x7f, 0xff, 0xff, 0xff, 'S', 'E', 'L'};
    case_after_startup("(b) message length 0x7fffffff", huge_len, sizeof huge_len, false, lenient);
    static const uint8_t trunc[] = {'Q', 0, 0, 0, 100, 'S', 'E', 'L', 'E', 'C', 'T', ' ', '1'};
    case_after_startup("(c) truncated message, then close", trunc, sizeof trunc, true, true);
    static const uint8_t unknown[] = {'y', 0, 0, 0, 4};
    case_after_startup("(d) unknown message type 'y'", unknown, sizeof unknown, false, false);
    case_protocol_v2();
    case_silent_client();
    case_max_client_conn();
    /* (h): header plus the first KiB of an oversized Query; pgdual must refuse it from the header
     * alone, without waiting for (or buffering) the body. */
    static uint8_t big[5 + 1024];
    const uint32_t blen = htonl(4u * MAX_MESSAGE_BYTES);
    big[0] = 'Q';
    memcpy(big + 1, &blen, 4);
    memset(big + 5, 'x', sizeof big - 5);
    if (g_px.direct) {
        it_note("skip (h): PostgreSQL accepts a 256 KiB Query and waits for its body");
    } else {
        case_after_startup("(h) message larger than max_message_bytes", big, sizeof big, false,
                           false);
    }
    return it_finish();
}

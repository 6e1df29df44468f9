/* tests/integration/it_concurrency.c: 200 concurrent non-blocking libpq clients on one poll() loop
 * doing INSERT, UPDATE, SELECT and a small transaction through pgdual, with zero errors; afterwards
 * the rows on old (and new, when mirrored) match exactly what was acknowledged. */
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libpq-fe.h>

#include "tests/harness/proxy.h"

#define CLIENTS 200
#define ITERS   10
#define STEPS   8

static struct proxy g_px;

struct client {
    PGconn *conn;
    int id;
    int iter;
    int step; /* index into the per-iteration script */
    bool connecting;
    bool busy; /* a query is in flight */
    bool done;
    bool want_write; /* PQflush or PQconnectPoll asked for POLLOUT */
    char got[32];    /* first value of the last result */
};

/* What the clients got acknowledged; compared with the databases at the end. */
static struct {
    long items, updates, ledger, hot, counters, errors;
} g_ack;

static void client_send(struct client *cl)
{
    char id[16], it[16];
    snprintf(id, sizeof id, "%d", cl->id);
    snprintf(it, sizeof it, "%d", cl->iter);
    const char *p2[] = {id, it};
    const char *p1[] = {id};
    char sql[160];
    int ok = 0;
    switch (cl->step) {
    case 0:
        ok = PQsendQueryParams(cl->conn, "INSERT INTO items (client, seq, val) VALUES ($1, $2, 0)",
                               2, NULL, p2, NULL, NULL, 0);
        break;
    case 1:
        snprintf(sql, sizeof sql, "UPDATE items SET val = val + 1 WHERE client = %d AND seq = %d",
                 cl->id, cl->iter);
        ok = PQsendQuery(cl->conn, sql);
        break;
    case 2:
        ok = PQsendQueryParams(cl->conn, "SELECT val FROM items WHERE client = $1 AND seq = $2", 2,
                               NULL, p2, NULL, NULL, 0);
        break;
    case 3:
        ok = PQsendQuery(cl->conn, "BEGIN");
        break;
    case 4:
        ok = PQsendQueryParams(cl->conn, "INSERT INTO ledger (client, amount) VALUES ($1, 5)", 1,
                               NULL, p1, NULL, NULL, 0);
        break;
    case 5:
        ok = PQsendQuery(cl->conn, "UPDATE hot SET n = n + 1 WHERE id = 1");
        break;
    case 6:
        ok = PQsendQueryParams(cl->conn, "UPDATE counters SET n = n + 1 WHERE client = $1", 1, NULL,
                               p1, NULL, NULL, 0);
        break;
    default:
        ok = PQsendQuery(cl->conn, "COMMIT");
        break;
    }
    if (ok != 1) {
        g_ack.errors++;
        printf("# client %d send: %s", cl->id, PQerrorMessage(cl->conn));
        cl->done = true;
        return;
    }
    cl->busy = true;
    cl->got[0] = '\0';
    cl->want_write = PQflush(cl->conn) == 1;
}

/* Accounts one finished statement and moves the script on. */
static void client_step_done(struct client *cl, const char *tag)
{
    switch (cl->step) {
    case 0:
        g_ack.items += strcmp(tag, "INSERT 0 1") == 0;
        break;
    case 1:
        g_ack.updates += strcmp(tag, "UPDATE 1") == 0;
        break;
    case 2:
        if (strcmp(cl->got, "1") != 0) {
            g_ack.errors++;
            printf("# client %d read val '%s', expected its own write '1'\n", cl->id, cl->got);
        }
        break;
    case 7:
        if (strcmp(tag, "COMMIT") == 0) {
            g_ack.ledger++;
            g_ack.hot++;
            g_ack.counters++;
        } else {
            g_ack.errors++;
            printf("# client %d: COMMIT answered '%s'\n", cl->id, tag);
        }
        break;
    default:
        break;
    }
    if (++cl->step == STEPS) {
        cl->step = 0;
        if (++cl->iter == ITERS) {
            cl->done = true;
            return;
        }
    }
    client_send(cl);
}

static void client_on_io(struct client *cl, char *tag, size_t tagsz)
{
    if (PQconsumeInput(cl->conn) != 1) {
        g_ack.errors++;
        printf("# client %d lost: %s", cl->id, PQerrorMessage(cl->conn));
        cl->done = true;
        return;
    }
    if (cl->want_write) {
        cl->want_write = PQflush(cl->conn) == 1;
    }
    while (cl->busy && !PQisBusy(cl->conn)) {
        PGresult *r = PQgetResult(cl->conn);
        if (r == NULL) {
            cl->busy = false;
            client_step_done(cl, tag);
            return;
        }
        ExecStatusType st = PQresultStatus(r);
        if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK) {
            snprintf(tag, tagsz, "%s", PQcmdStatus(r));
            if (st == PGRES_TUPLES_OK && PQntuples(r) > 0) {
                snprintf(cl->got, sizeof cl->got, "%s", PQgetvalue(r, 0, 0));
            }
        } else {
            g_ack.errors++;
            if (g_ack.errors < 10) {
                printf("# client %d step %d: %s", cl->id, cl->step, PQresultErrorMessage(r));
            }
            snprintf(tag, tagsz, "ERROR");
        }
        PQclear(r);
    }
}

static void client_on_connect(struct client *cl)
{
    PostgresPollingStatusType ps = PQconnectPoll(cl->conn);
    if (ps == PGRES_POLLING_OK) {
        cl->connecting = false;
        REQUIRE_EQ(PQsetnonblocking(cl->conn, 1), 0);
        client_send(cl);
    } else if (ps == PGRES_POLLING_FAILED) {
        g_ack.errors++;
        printf("# client %d connect: %s", cl->id, PQerrorMessage(cl->conn));
        cl->done = true;
    } else {
        cl->want_write = ps == PGRES_POLLING_WRITING;
    }
}

static void run_clients(struct client *cls)
{
    static struct pollfd pfd[CLIENTS];
    static int idx[CLIENTS];
    static char tags[CLIENTS][64];
    int64_t deadline = it_now_ms() + 150000;
    for (;;) {
        int n = 0;
        for (int i = 0; i < CLIENTS; i++) {
            if (cls[i].done) {
                continue;
            }
            pfd[n] = (struct pollfd){.fd = PQsocket(cls[i].conn),
                                     .events = (short)(cls[i].want_write ? POLLOUT : POLLIN)};
            idx[n++] = i;
        }
        if (n == 0 || it_now_ms() > deadline) {
            CHECK_EQ(n, 0);
            return;
        }
        if (poll(pfd, (nfds_t)n, 1000) < 0) {
            continue;
        }
        for (int k = 0; k < n; k++) {
            struct client *cl = &cls[idx[k]];
            if (pfd[k].revents == 0) {
                continue;
            }
            if (cl->connecting) {
                client_on_connect(cl);
            } else {
                client_on_io(cl, tags[idx[k]], sizeof tags[0]);
            }
        }
    }
}

static long long q_on(enum it_target t, const char *sql)
{
    PGconn *c = proxy_connect(&g_px, t);
    bool ok = true;
    long long v = c != NULL ? it_query_ll(c, sql, &ok) : -1;
    PQfinish(c);
    return ok ? v : -1;
}

static void check_counts(enum it_target t)
{
    it_note("checking rows on %s", t == IT_OLD ? "old" : "new");
    CHECK_EQ(q_on(t, "SELECT count(*) FROM items"), g_ack.items);
    CHECK_EQ(q_on(t, "SELECT count(*) FROM items WHERE val = 1"), g_ack.updates);
    CHECK_EQ(q_on(t, "SELECT count(*) FROM ledger"), g_ack.ledger);
    CHECK_EQ(q_on(t, "SELECT coalesce(sum(amount), 0) FROM ledger"), g_ack.ledger * 5);
    CHECK_EQ(q_on(t, "SELECT n FROM hot WHERE id = 1"), g_ack.hot);
    CHECK_EQ(q_on(t, "SELECT sum(n) FROM counters"), g_ack.counters);
    CHECK_EQ(q_on(t, "SELECT count(*) FROM counters WHERE n <> 10"), 0);
}

int main(int argc, char **argv)
{
    (void)argc;
    it_init(argv[0], 280);
    REQUIRE(proxy_start(&g_px, "it_concurrency",
                        &(struct proxy_opts){.pgdual = "max_client_conn = 1000\n"
                                                       "backend_connect_timeout_ms = 60000\n"
                                                       "client_login_timeout_ms = 120000"}) == 0);
    PGconn *setup = proxy_connect(&g_px, IT_PGDUAL);
    REQUIRE(setup != NULL);
    PGresult *r = PQexec(
        setup, "CREATE TABLE items (client int, seq int, val int, PRIMARY KEY (client, seq));"
               "CREATE TABLE ledger (id bigserial PRIMARY KEY, client int, amount int);"
               "CREATE TABLE hot (id int PRIMARY KEY, n bigint);"
               "CREATE TABLE counters (client int PRIMARY KEY, n int);"
               "INSERT INTO hot VALUES (1, 0);"
               "INSERT INTO counters SELECT g, 0 FROM generate_series(0, 199) g");
    REQUIRE_RES(r, PGRES_COMMAND_OK);
    PQclear(r);
    PQfinish(setup);

    it_case("200 concurrent clients, mixed work");
    static struct client cls[CLIENTS];
    char port[16];
    snprintf(port, sizeof port, "%d", g_px.port);
    const char *const keys[] = {"host", "port", "user", "dbname", "sslmode", "gssencmode", NULL};
    const char *const vals[] = {"127.0.0.1", port, g_px.cluster.user, g_px.dbname, "disable",
                                "disable",   NULL};
    for (int i = 0; i < CLIENTS; i++) {
        cls[i] = (struct client){.id = i, .connecting = true, .want_write = true};
        cls[i].conn = PQconnectStartParams(keys, vals, 0);
        REQUIRE(cls[i].conn != NULL && PQstatus(cls[i].conn) != CONNECTION_BAD);
    }
    int64_t t0 = it_now_ms();
    run_clients(cls);
    it_note("done in %lld ms: items %ld, updates %ld, transactions %ld, errors %ld",
            (long long)(it_now_ms() - t0), g_ack.items, g_ack.updates, g_ack.ledger, g_ack.errors);
    for (int i = 0; i < CLIENTS; i++) {
        PQfinish(cls[i].conn);
    }
    CHECK_EQ(g_ack.errors, 0);
    CHECK_EQ(g_ack.items, CLIENTS * ITERS);
    CHECK_EQ(g_ack.updates, CLIENTS * ITERS);
    CHECK_EQ(g_ack.ledger, CLIENTS * ITERS);

    it_case("acknowledged rows are on old (and on new)");
    check_counts(IT_OLD);
    if (proxy_mirrors(&g_px)) {
        check_counts(IT_NEW);
    }
    return it_finish();
}

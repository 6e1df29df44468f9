/* tests/integration/it_rollback.c: ROLLBACK CUTOVER under load. pgdual starts promoted (primary =
 * new, read_new_percent = 100); 8 client threads run reads and writes through it while the admin
 * console sends ROLLBACK CUTOVER. A table `marker` holds 'old' on old and 'new' on new (written
 * directly), and every read returns it; every write fires a trigger created directly on each side
 * that raises a NOTICE naming that side (a client gets its primary's notices only, and notices are
 * not compared, so the write's outcome stays equal on both sides). Each answer so names the
 * backend that served it.
 * After the command has returned, no statement that starts is answered by new, neither as the
 * primary (the writes) nor as a routed read. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <libpq-fe.h>

#include "tests/harness/proxy.h"

#define CLIENTS 8
#define OPS_MAX 200000

static struct proxy g_px;

struct op {
    int64_t start_us;
    bool from_new;
    bool failed;
};

struct client {
    pthread_t thread;
    int id;
    PGconn *conn;
    struct op *ops;
    int nops;
    char last_notice[16]; /* the side named by the last write's trigger */
};

static void on_notice(void *arg, const PGresult *r)
{
    struct client *c = arg;
    const char *msg = PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY);
    snprintf(c->last_notice, sizeof(c->last_notice), "%s", msg ? msg : "");
}

static atomic_bool g_stop;

static int64_t now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* Runs statements until told to stop; only records (the checks run on the main thread). */
static void *client_main(void *arg)
{
    struct client *c = arg;
    char id[16];
    snprintf(id, sizeof(id), "%d", c->id);
    const char *params[] = {id};
    for (int i = 0; !atomic_load(&g_stop) && c->nops < OPS_MAX; i++) {
        struct op *o = &c->ops[c->nops++];
        o->start_us = now_us();
        bool read = i % 2 == 0;
        c->last_notice[0] = '\0';
        PGresult *r = read ? PQexec(c->conn, "SELECT v FROM marker")
                           : PQexecParams(c->conn, "UPDATE counters SET n = n + 1 WHERE id = $1", 1,
                                          NULL, params, NULL, NULL, 0);
        ExecStatusType st = PQresultStatus(r);
        if (read) {
            o->failed = st != PGRES_TUPLES_OK || PQntuples(r) != 1;
            o->from_new = !o->failed && strcmp(PQgetvalue(r, 0, 0), "new") == 0;
        } else {
            o->failed = st != PGRES_COMMAND_OK || c->last_notice[0] == '\0';
            o->from_new = !o->failed && strcmp(c->last_notice, "new") == 0;
        }
        PQclear(r);
    }
    return NULL;
}

int main(void)
{
    it_init("it_rollback", 240);
    struct proxy_opts opts = {.cutover = "primary = new\nread_new_percent = 100\n"};
    REQUIRE(proxy_start(&g_px, "it_rollback", &opts) == 0);
    if (!proxy_mirrors(&g_px)) {
        it_note("skip: needs pgdual and both backends");
        return it_finish();
    }
    REQUIRE(proxy_make_marker(&g_px) == 0);
    PGconn *setup = proxy_connect(&g_px, IT_PGDUAL);
    REQUIRE(setup != NULL);
    PGresult *r = PQexec(setup, "CREATE TABLE counters (id int PRIMARY KEY, n int NOT NULL); "
                                "INSERT INTO counters SELECT g, 0 FROM generate_series(0, 7) g");
    REQUIRE_RES(r, PGRES_COMMAND_OK);
    PQclear(r);
    PQfinish(setup);
    static const char *const trig[2] = {
        "CREATE FUNCTION side() RETURNS trigger LANGUAGE plpgsql AS "
        "$$BEGIN RAISE NOTICE 'old'; RETURN NEW; END$$; "
        "CREATE TRIGGER side BEFORE UPDATE ON counters FOR EACH ROW EXECUTE FUNCTION side()",
        "CREATE FUNCTION side() RETURNS trigger LANGUAGE plpgsql AS "
        "$$BEGIN RAISE NOTICE 'new'; RETURN NEW; END$$; "
        "CREATE TRIGGER side BEFORE UPDATE ON counters FOR EACH ROW EXECUTE FUNCTION side()",
    };
    REQUIRE(proxy_exec_direct(&g_px, IT_OLD, trig[0]) == 0);
    REQUIRE(proxy_exec_direct(&g_px, IT_NEW, trig[1]) == 0);

    struct client clients[CLIENTS];
    for (int i = 0; i < CLIENTS; i++) {
        clients[i] = (struct client){.id = i, .ops = calloc(OPS_MAX, sizeof(struct op))};
        clients[i].conn = proxy_connect(&g_px, IT_PGDUAL);
        REQUIRE(clients[i].ops != NULL && clients[i].conn != NULL);
        PQsetNoticeReceiver(clients[i].conn, on_notice, &clients[i]);
    }
    PGconn *admin = proxy_connect_as(&g_px, IT_PGDUAL, "admin", "pgdual");
    REQUIRE(PQstatus(admin) == CONNECTION_OK);
    for (int i = 0; i < CLIENTS; i++) {
        REQUIRE(pthread_create(&clients[i].thread, NULL, client_main, &clients[i]) == 0);
    }

    it_case("ROLLBACK CUTOVER while 8 clients read and write through pgdual");
    it_sleep_ms(1500);
    int64_t sent_us = now_us();
    r = PQexec(admin, "ROLLBACK CUTOVER");
    int64_t returned_us = now_us();
    CHECK_RES(r, PGRES_COMMAND_OK);
    PQclear(r);
    it_note("ROLLBACK CUTOVER took %lld us", (long long)(returned_us - sent_us));
    it_sleep_ms(2000);
    atomic_store(&g_stop, true);
    for (int i = 0; i < CLIENTS; i++) {
        pthread_join(clients[i].thread, NULL);
    }

    long before_new = 0, after = 0, after_new = 0, failed = 0;
    for (int i = 0; i < CLIENTS; i++) {
        for (int k = 0; k < clients[i].nops; k++) {
            const struct op *o = &clients[i].ops[k];
            failed += o->failed;
            if (o->start_us < sent_us && o->from_new) {
                before_new++;
            }
            if (o->start_us > returned_us) {
                after++;
                after_new += o->from_new;
            }
        }
    }
    it_note("answered by new before the command: %ld; started after it returned: %ld", before_new,
            after);
    CHECK_EQ(failed, 0);
    CHECK_GT(before_new, 100); /* new really served, as primary and for reads, before */
    CHECK_GT(after, 100);      /* the load went on after the command */
    CHECK_EQ(after_new, 0);    /* and from then on nothing came from new */

    char primary[32], dial[32];
    REQUIRE(proxy_admin_status(&g_px, "primary", primary, sizeof(primary)) == 0);
    REQUIRE(proxy_admin_status(&g_px, "read_new_percent", dial, sizeof(dial)) == 0);
    CHECK_STR(primary, "old");
    CHECK_STR(dial, "0");
    char state[32];
    REQUIRE(proxy_admin_status(&g_px, "secondary_state", state, sizeof(state)) == 0);
    CHECK_STR(state, "in_sync"); /* the rollback needed no FORCE */

    PQfinish(admin);
    for (int i = 0; i < CLIENTS; i++) {
        PQfinish(clients[i].conn);
        free(clients[i].ops);
    }
    return it_finish();
}

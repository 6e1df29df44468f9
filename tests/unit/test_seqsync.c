/* tests/unit/test_seqsync.c: proxy/control/seqsync.c's switch bookkeeping over a server with one
 * worker and no loop (the test plays the worker: it takes the dials and counts busy sessions).
 * The backends are 127.0.0.1 port 1, where nothing listens, so every sync that runs fails at
 * once: a switch waits for its gate, a switch taken back before the sync ran needs none, a
 * failed sync undoes the switch (and the admin's outcome says failed), FORCE switches anyway.
 * The SQL itself is tested against real clusters by tests/integration/it_seqsync.sh. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "config/config.h"
#include "config/dials.h"
#include "proxy/control/seqsync.h"
#include "proxy/server.h"
#include "proxy/worker.h"

#define NOWHERE "host=127.0.0.1 port=1 connect_timeout=2"

struct fixture {
    struct config cfg;
    struct server srv;
};

static void set_key(struct config *c, const char *section, const char *name, const char *value)
{
    char err[256];
    assert_int_equal(config_set(c, config_find_key(section, name), value, err, sizeof(err)), 0);
}

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));
    assert_non_null(f);
    config_init_defaults(&f->cfg);
    set_key(&f->cfg, "pgdual", "state_file", ""); /* nothing persisted */
    set_key(&f->cfg, "backends", "old", NOWHERE);
    set_key(&f->cfg, "backends", "new", NOWHERE);
    struct config copy;
    assert_int_equal(config_copy(&copy, &f->cfg), 0);
    struct server *srv = &f->srv;
    srv->conf = server_conf_new(&copy, NULL, NULL);
    assert_non_null(srv->conf);
    srv->cfg = &f->cfg;
    srv->nworkers = 1;
    srv->workers = calloc(1, sizeof(struct worker));
    assert_non_null(srv->workers);
    pthread_mutex_init(&srv->workers[0].mailbox_lock, NULL);
    srv->workers[0].mailbox_stop = true; /* no loop: posts only fill the mailbox */
    pthread_mutex_init(&srv->dials_lock, NULL);
    srv->dials = f->cfg.dials;
    srv->dials_version = 1;
    srv->dials_snapshot = dials_snapshot_new(&srv->dials, 1);
    assert_non_null(srv->dials_snapshot);
    atomic_init(&srv->switch_pending, false);
    srv->seqsync = seqsync_new(srv, DIAL_OLD);
    assert_non_null(srv->seqsync);
    assert_int_equal(seqsync_start(srv->seqsync), 0);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    struct server *srv = &f->srv;
    seqsync_free(srv->seqsync);
    dials_snapshot_unref(srv->workers[0].mailbox_dials);
    pthread_mutex_destroy(&srv->workers[0].mailbox_lock);
    free(srv->workers);
    dials_snapshot_unref(srv->dials_snapshot);
    pthread_mutex_destroy(&srv->dials_lock);
    server_conf_unref(srv->conf);
    config_free(&f->cfg);
    free(f);
    return 0;
}

/* The worker takes every change published so far, as its loop would, and says so. */
static void worker_takes(struct server *srv)
{
    atomic_store(&srv->workers[0].dials_applied, server_dials_version(srv));
    server_post_gates(srv);
}

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* Poll (10 s at most) until switch gen is decided; returns its outcome. */
static enum seqsync_outcome decided(struct server *srv, uint64_t gen, char *why, size_t n)
{
    for (int i = 0; i < 1000; i++) {
        enum seqsync_outcome o = seqsync_outcome(srv->seqsync, gen, why, n);
        if (o != SEQSYNC_waiting && o != SEQSYNC_running) {
            return o;
        }
        sleep_ms(10);
    }
    fail_msg("switch %llu not decided after 10 s", (unsigned long long)gen);
    return SEQSYNC_none;
}

/* Poll (10 s at most) until the switch gate opens. */
static void gate_opens(struct server *srv)
{
    for (int i = 0; i < 1000 && server_switch_pending(srv); i++) {
        sleep_ms(10);
    }
    assert_false(server_switch_pending(srv));
}

static int primary_now(struct server *srv)
{
    struct dials_snapshot *s = server_dials_get(srv);
    int p = s->d.primary;
    dials_snapshot_unref(s);
    return p;
}

static void test_nothing_at_start(void **state)
{
    struct fixture *f = *state;
    struct seqsync_status st;
    seqsync_get_status(f->srv.seqsync, &st);
    assert_int_equal(st.last, SEQSYNC_none);
    assert_int_equal(st.at_ms, 0);
    assert_false(server_switch_pending(&f->srv));
    assert_int_equal(seqsync_generation(f->srv.seqsync), 0);
    char err[256];
    uint64_t gen = 1;
    assert_int_equal(
        server_set_dial(&f->srv, "read_new_percent", "50", false, &gen, err, sizeof(err)), 0);
    assert_int_equal(gen, 0); /* not a switch: nothing to wait for */
    assert_false(server_switch_pending(&f->srv));
}

/* While a session runs a transaction on old the sync does not start; a ROLLBACK CUTOVER before
 * it did makes the switch moot: nothing ran on new, so nothing is synced. */
static void test_switch_back_before_the_gate_opens(void **state)
{
    struct fixture *f = *state;
    struct server *srv = &f->srv;
    char why[512];
    uint64_t g1 = 0, g2 = 0;
    assert_int_equal(server_set_dial(srv, "primary", "new", false, &g1, why, sizeof(why)), 0);
    assert_int_not_equal(g1, 0);
    assert_true(server_switch_pending(srv)); /* closed before any worker could see the change */
    assert_int_equal(seqsync_outcome(srv->seqsync, g1, why, sizeof(why)), SEQSYNC_waiting);
    atomic_store(&srv->workers[0].busy_on[DIAL_OLD], 1); /* a transaction still on old */
    worker_takes(srv);
    assert_int_equal(server_rollback_cutover(srv, false, &g2, why, sizeof(why)), 0);
    assert_int_equal(g2, g1 + 1);
    assert_int_equal(seqsync_outcome(srv->seqsync, g1, why, sizeof(why)), SEQSYNC_ok);
    assert_true(server_switch_pending(srv)); /* until the worker has the rollback too */
    worker_takes(srv);
    assert_int_equal(decided(srv, g2, why, sizeof(why)), SEQSYNC_ok);
    gate_opens(srv);
    struct seqsync_status st;
    seqsync_get_status(srv->seqsync, &st);
    assert_int_equal(st.last, SEQSYNC_ok);
    assert_int_equal(st.at_ms, 0); /* no sync ran */
    assert_int_equal(primary_now(srv), DIAL_OLD);
}

/* The sync fails (nothing listens): the primary goes back to old, the admin's outcome is failed
 * with the reason, the gate opens once the worker has the undo. */
static void test_failed_sync_undoes_the_switch(void **state)
{
    struct fixture *f = *state;
    struct server *srv = &f->srv;
    char why[512];
    uint64_t g = 0;
    assert_int_equal(server_set_dial(srv, "primary", "new", false, &g, why, sizeof(why)), 0);
    worker_takes(srv);
    assert_int_equal(decided(srv, g, why, sizeof(why)), SEQSYNC_failed);
    assert_non_null(strstr(why, "cannot connect to the old primary"));
    assert_int_equal(primary_now(srv), DIAL_OLD); /* already back when the outcome is known */
    assert_int_equal(srv->dials_version, 3);      /* the switch, then the undo */
    worker_takes(srv);
    gate_opens(srv);
    struct seqsync_status st;
    seqsync_get_status(srv->seqsync, &st);
    assert_int_equal(st.last, SEQSYNC_failed); /* the undo does not hide the failure */
    assert_true(st.at_ms > 0);
    assert_int_equal(st.synced, 0);
}

static void test_forced_switch_stands(void **state)
{
    struct fixture *f = *state;
    struct server *srv = &f->srv;
    char why[512];
    uint64_t g = 0;
    assert_int_equal(server_set_dial(srv, "primary", "new", true, &g, why, sizeof(why)), 0);
    worker_takes(srv);
    assert_int_equal(decided(srv, g, why, sizeof(why)), SEQSYNC_forced);
    assert_non_null(strstr(why, "cannot connect"));
    gate_opens(srv);
    assert_int_equal(primary_now(srv), DIAL_NEW);
    struct seqsync_status st;
    seqsync_get_status(srv->seqsync, &st);
    assert_int_equal(st.last, SEQSYNC_forced);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_nothing_at_start, setup, teardown),
        cmocka_unit_test_setup_teardown(test_switch_back_before_the_gate_opens, setup, teardown),
        cmocka_unit_test_setup_teardown(test_failed_sync_undoes_the_switch, setup, teardown),
        cmocka_unit_test_setup_teardown(test_forced_switch_stands, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

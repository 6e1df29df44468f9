/* tests/unit/test_metrics.c: proxy/control/metrics.c's renderings over a server with two workers'
 * counters: every counter reaches /metrics, sums are across workers, histogram buckets are
 * cumulative, /status carries the SHOW STATUS list. */
#include <inttypes.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "config/config.h"
#include "config/dials.h"
#include "proxy/control/metrics.h"
#include "proxy/server.h"
#include "proxy/stats.h"
#include "proxy/worker.h"

struct fixture {
    struct config cfg;
    struct server srv;
    struct wbuf out;
};

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));
    assert_non_null(f);
    config_init_defaults(&f->cfg);
    f->srv.cfg = &f->cfg;
    f->srv.nworkers = 2;
    f->srv.workers = calloc(2, sizeof(struct worker));
    assert_non_null(f->srv.workers);
    pthread_mutex_init(&f->srv.dials_lock, NULL);
    f->srv.dials = f->cfg.dials;
    f->srv.dials.read_new_percent = 35;
    f->srv.dials.primary = DIAL_NEW;
    f->srv.dials_snapshot = dials_snapshot_new(&f->srv.dials, 7);
    assert_non_null(f->srv.dials_snapshot);
    atomic_init(&f->srv.secondary_state, SYNC_lagging);
    wbuf_init(&f->out);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    wbuf_free(&f->out);
    dials_snapshot_unref(f->srv.dials_snapshot);
    pthread_mutex_destroy(&f->srv.dials_lock);
    free(f->srv.workers);
    config_free(&f->cfg);
    free(f);
    return 0;
}

/* The rendered text as a C string (owned by the fixture's buffer). */
static const char *text_of(struct fixture *f)
{
    assert_false(f->out.failed);
    wbuf_put_u8(&f->out, 0);
    return (const char *)f->out.data;
}

/* The exact line "series value" is in text. */
static void assert_line(const char *text, const char *series, uint64_t value)
{
    char line[256];
    snprintf(line, sizeof(line), "\n%s %" PRIu64 "\n", series, value);
    if (!strstr(text, line)) {
        fail_msg("missing line: %s %" PRIu64, series, value);
    }
}

/* The latency histogram's cumulative bucket le of backend holds value. */
static void assert_bucket(const char *text, const char *backend, const char *le, uint64_t value)
{
    char series[128];
    snprintf(series, sizeof(series),
             "pgdual_statement_duration_seconds_bucket{backend=\"%s\",le=\"%s\"}", backend, le);
    assert_line(text, series, value);
}

/* Every counter but divergences_total (the sum of the compared kinds) appears with the sum of
 * both workers' values: distinct values per counter make a mix-up visible. */
static void test_every_counter_summed(void **state)
{
    struct fixture *f = *state;
    for (int c = 0; c < STAT_COUNT; c++) {
        stats_add(&f->srv.workers[0].stats, c, 1000 + c);
        stats_add(&f->srv.workers[1].stats, c, 2000 + 10 * c);
    }
    metrics_render_prometheus(&f->srv, &f->out);
    const char *text = text_of(f);
    for (int c = 0; c < STAT_COUNT; c++) {
        char want[64];
        snprintf(want, sizeof(want), "} %d\n", 3000 + 11 * c);
        char bare[64];
        snprintf(bare, sizeof(bare), " %d\n", 3000 + 11 * c);
        if (c != STAT_divergences_total && c != STAT_fallbacks_total && !strstr(text, want) &&
            !strstr(text, bare)) {
            fail_msg("counter %s (%d) not rendered", stats_names[c], 3000 + 11 * c);
        }
    }
    assert_line(text, "pgdual_statements_served_total{class=\"read\",backend=\"old\"}",
                3000 + 11 * STAT_reads_served_old);
    assert_line(text, "pgdual_divergences_total{kind=\"nondeterministic\"}",
                3000 + 11 * STAT_nondeterministic_writes_total);
    assert_line(text, "pgdual_read_new_percent", 35);
    assert_line(text, "pgdual_primary{backend=\"new\"}", 1);
    assert_line(text, "pgdual_primary{backend=\"old\"}", 0);
    assert_line(text, "pgdual_secondary_state{state=\"lagging\"}", 1);
    assert_line(text, "pgdual_secondary_state{state=\"in_sync\"}", 0);
    assert_line(text, "pgdual_dials_version", 7);
}

static void test_histogram_cumulative(void **state)
{
    struct fixture *f = *state;
    stats_observe(&f->srv.workers[0].stats, DIAL_OLD, 100);      /* <= 0.0005 */
    stats_observe(&f->srv.workers[1].stats, DIAL_OLD, 500);      /* <= 0.0005 (bound included) */
    stats_observe(&f->srv.workers[1].stats, DIAL_OLD, 501);      /* <= 0.001 */
    stats_observe(&f->srv.workers[0].stats, DIAL_OLD, 20000000); /* +Inf only */
    stats_primary_done(&f->srv.workers[0].stats, DIAL_NEW, true, 3000);
    metrics_render_prometheus(&f->srv, &f->out);
    const char *text = text_of(f);
    assert_bucket(text, "old", "0.0005", 2);
    assert_bucket(text, "old", "0.001", 3);
    assert_bucket(text, "old", "10", 3);
    assert_bucket(text, "old", "+Inf", 4);
    assert_line(text, "pgdual_statement_duration_seconds_count{backend=\"old\"}", 4);
    assert_bucket(text, "new", "0.0025", 0);
    assert_bucket(text, "new", "0.005", 1);
    assert_line(text, "pgdual_statements_served_total{class=\"mirrored\",backend=\"new\"}", 1);
    assert_non_null(strstr(text, "\npgdual_statement_duration_seconds_sum{backend=\"old\"} "
                                 "20.001101\n"));
}

static void test_divergence_kinds(void **state)
{
    struct fixture *f = *state;
    stats_divergence(&f->srv.workers[0].stats, OUTCOME_DIFF_tag_mismatch);
    stats_divergence(&f->srv.workers[1].stats, OUTCOME_DIFF_tag_mismatch);
    stats_divergence(&f->srv.workers[1].stats, OUTCOME_DIFF_none);
    metrics_render_prometheus(&f->srv, &f->out);
    const char *text = text_of(f);
    assert_line(text, "pgdual_divergences_total{kind=\"tag_mismatch\"}", 2);
    assert_line(text, "pgdual_divergences_total{kind=\"result_mismatch\"}", 0);
}

static void test_status_json(void **state)
{
    struct fixture *f = *state;
    stats_add(&f->srv.workers[1].stats, STAT_writes_mirrored, 5);
    metrics_render_status(&f->srv, &f->out);
    const char *text = text_of(f);
    assert_non_null(strstr(text, "{\"primary\":\"new\",\"read_new_percent\":35,"));
    assert_non_null(strstr(text, ",\"secondary_state\":\"lagging\","));
    assert_non_null(strstr(text, ",\"writes_mirrored\":5,"));
    assert_non_null(strstr(text, ",\"dials_version\":7,"));
    assert_non_null(strstr(text, ",\"version\":\"" PGDUAL_VERSION "\"}\n"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_every_counter_summed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_histogram_cumulative, setup, teardown),
        cmocka_unit_test_setup_teardown(test_divergence_kinds, setup, teardown),
        cmocka_unit_test_setup_teardown(test_status_json, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

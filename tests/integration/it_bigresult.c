/* tests/integration/it_bigresult.c: a 1,000,000-row result read slowly in single-row mode through
 * pgdual: every row is checked, and pgdual's RSS must stay bounded (back-pressure, no buffering).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libpq-fe.h>

#include "tests/harness/proxy.h"

#define ROWS           1000000L
#define PAD            100
#define MAX_GROWTH_KIB (16L * 1024)

static struct proxy g_px;

struct rss_probe {
    long baseline;
    long peak;
    int samples;
};

static void rss_sample(struct rss_probe *rp, const char *when)
{
    long kib = proxy_rss_kib(&g_px);
    if (kib < 0) {
        return;
    }
    rp->samples++;
    if (kib > rp->peak) {
        rp->peak = kib;
    }
    if (when != NULL) {
        it_note("pgdual RSS %s: %ld KiB", when, kib);
    }
}

/* Checks one single-row result: g and repeat('x', PAD). Returns false on the first bad row so a
 * broken stream does not print a million failures. */
static bool check_row(const PGresult *r, long want_g, const char *pad)
{
    if (PQresultStatus(r) != PGRES_SINGLE_TUPLE || PQntuples(r) != 1) {
        CHECK_RES(r, PGRES_SINGLE_TUPLE);
        return false;
    }
    long g = strtol(PQgetvalue(r, 0, 0), NULL, 10);
    if (g != want_g) {
        CHECK_EQ(g, want_g);
        return false;
    }
    if (PQgetlength(r, 0, 1) != PAD || memcmp(PQgetvalue(r, 0, 1), pad, PAD) != 0) {
        CHECK_MEM(PQgetvalue(r, 0, 1), (size_t)PQgetlength(r, 0, 1), pad, PAD);
        return false;
    }
    return true;
}

static void case_big_slow_read(void)
{
    it_case("1,000,000 rows, single-row mode, slow reader");
    char pad[PAD + 1];
    memset(pad, 'x', PAD);
    pad[PAD] = '\0';
    PGconn *c = proxy_connect(&g_px, IT_PGDUAL);
    REQUIRE(c != NULL);
    struct rss_probe rp = {0};
    /* Warm the session up so per-session buffers are already in the baseline. */
    bool ok = true;
    CHECK_EQ(it_query_ll(c, "SELECT count(*) FROM generate_series(1, 1000)", &ok), 1000);
    it_sleep_ms(200);
    rp.baseline = proxy_rss_kib(&g_px);
    rp.peak = rp.baseline;
    it_note("pgdual RSS baseline: %ld KiB", rp.baseline);

    REQUIRE_EQ(PQsendQuery(c, "SELECT g, repeat('x', 100) FROM generate_series(1, 1000000) g"), 1);
    REQUIRE_EQ(PQsetSingleRowMode(c), 1);
    /* Do not read at all for a while: the backend keeps producing, so pgdual must stop reading
     * from it instead of queueing the result in memory. */
    for (int i = 0; i < 15; i++) {
        it_sleep_ms(100);
        rss_sample(&rp, NULL);
    }
    rss_sample(&rp, "after 1.5 s without reading");

    int64_t t0 = it_now_ms();
    long n = 0;
    bool rows_ok = true;
    PGresult *r = NULL;
    while ((r = PQgetResult(c)) != NULL) {
        if (PQresultStatus(r) == PGRES_TUPLES_OK) {
            CHECK_EQ(PQntuples(r), 0);
            CHECK_STR(PQcmdStatus(r), "SELECT 1000000");
            PQclear(r);
            continue;
        }
        if (rows_ok) {
            rows_ok = check_row(r, n + 1, pad);
        }
        PQclear(r);
        n++;
        if (n % 2000 == 0) {
            it_sleep_ms(2); /* slow consumer: about 1 s of sleeping over the whole result */
        }
        if (n % 100000 == 0) {
            rss_sample(&rp, NULL);
        }
    }
    it_note("read %ld rows in %lld ms", n, (long long)(it_now_ms() - t0));
    CHECK(rows_ok);
    CHECK_EQ(n, ROWS);
    rss_sample(&rp, "after the last row");

    /* The session is still usable afterwards. */
    CHECK_EQ(it_query_ll(c, "SELECT 7", &ok), 7);
    CHECK(ok);
    PQfinish(c);

    if (rp.baseline < 0) {
        it_note("skip: no pgdual process to measure (direct mode)");
        return;
    }
    it_note("pgdual RSS peak %ld KiB, growth %ld KiB over %d samples", rp.peak,
            rp.peak - rp.baseline, rp.samples);
    CHECK_GE(rp.samples, 10);
    CHECK_LT(rp.peak - rp.baseline, MAX_GROWTH_KIB);
}

int main(int argc, char **argv)
{
    (void)argc;
    it_init(argv[0], 240);
    REQUIRE(proxy_start(&g_px, "it_bigresult", NULL) == 0);
    case_big_slow_read();
    return it_finish();
}

/* proxy/control/status.c: the SHOW STATUS key/value list. */
#include "proxy/control/status.h"

#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "config/config.h"
#include "config/dials.h"
#include "proxy/control/seqsync.h"
#include "proxy/server.h"
#include "proxy/stats.h"

static void visit_u64(status_row_fn fn, void *ctx, const char *key, uint64_t v)
{
    char buf[32];
    snprintf(buf, sizeof(buf), "%" PRIu64, v);
    fn(ctx, key, buf, true);
}

void status_visit(struct server *srv, status_row_fn fn, void *ctx)
{
    static const char *const dial_keys[] = {
        "primary",     "read_new_percent",   "compare_percent", "mirror_order",
        "commit_wait", "on_read_divergence", "mirror",          "pin_writes"};
    struct dials_snapshot *snap = server_dials_get(srv);
    struct config view;
    memset(&view, 0, sizeof(view));
    view.dials = snap->d;
    for (size_t i = 0; i < sizeof(dial_keys) / sizeof(dial_keys[0]); i++) {
        const struct config_key *k = config_find_key("cutover", dial_keys[i]);
        char buf[64];
        config_format(&view, k, buf, sizeof(buf));
        fn(ctx, dial_keys[i], buf, k->type == CONFIG_INT);
    }
    fn(ctx, "secondary_state", server_secondary_state_name(srv), false);
    visit_u64(fn, ctx, "secondary_state_since_ms", (uint64_t)atomic_load(&srv->secondary_since_ms));
    fn(ctx, "paused", atomic_load(&srv->paused) ? "on" : "off", false);
    char reconcile[STATE_RECONCILE_MAX];
    server_reconcile_list(srv, reconcile, sizeof(reconcile));
    fn(ctx, "reconcile_tables", reconcile, false);
    struct reconcile_pass rec;
    reconcile_get(srv, &rec);
    visit_u64(fn, ctx, "reconcile_pass", rec.pass);
    visit_u64(fn, ctx, "reconcile_passes_total", rec.passes_total);
    visit_u64(fn, ctx, "reconcile_started_at", (uint64_t)rec.started_at_ms);
    visit_u64(fn, ctx, "reconcile_tables_done", rec.tables_done);
    visit_u64(fn, ctx, "reconcile_tables_total", rec.tables_total);
    visit_u64(fn, ctx, "reconcile_rows_repaired", rec.rows_repaired);
    fn(ctx, "reconcile_last_result", reconcile_result_name(rec.last), false);
    int without = atomic_load(&srv->sessions_without_secondary);
    visit_u64(fn, ctx, "sessions_without_secondary", (uint64_t)(without > 0 ? without : 0));
    for (int c = 0; c < STAT_COUNT; c++) {
        visit_u64(fn, ctx, stats_names[c], server_stat_sum(srv, c));
    }
    struct seqsync_status seq;
    seqsync_get_status(srv->seqsync, &seq);
    visit_u64(fn, ctx, "sequences_synced", seq.synced);
    visit_u64(fn, ctx, "sequences_checked", seq.checked);
    visit_u64(fn, ctx, "sequences_synced_at", (uint64_t)seq.at_ms);
    fn(ctx, "sequences_sync_result", seqsync_outcome_name(seq.last), false);
    visit_u64(fn, ctx, "secondary_lag_units", (uint64_t)server_lag_units(srv));
    visit_u64(fn, ctx, "journal_pending", 0);
    visit_u64(fn, ctx, "dials_version", snap->version);
    visit_u64(fn, ctx, "workers", (uint64_t)srv->nworkers);
    visit_u64(fn, ctx, "listen_port", (uint64_t)srv->listen_port);
    fn(ctx, "version", PGDUAL_VERSION, false);
    dials_snapshot_unref(snap);
}

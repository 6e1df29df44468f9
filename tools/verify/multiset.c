/* tools/verify/multiset.c: live repair of a table without a primary key, as a multiset of rows
 * (count per row hash). Rows missing on the secondary are copied under the primary's share locks;
 * surplus copies on the secondary are deleted only after the primary's in-progress transactions
 * ended and a fresh count still shows the surplus. The secondary's table is locked
 * SHARE ROW EXCLUSIVE for each repair transaction (a keyless row has no identity to lock). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "tools/verify/discover.h"
#include "tools/verify/live.h"
#include "tools/verify/livedb.h"
#include "tools/verify/options.h"
#include "tools/verify/repair.h"
#include "tools/verify/replog.h"
#include "tools/verify/strbuf.h"
#include "tools/verify/table.h"

struct mscount {
    char *hash; /* int8 as text */
    int64_t n[2];
    int first_prow; /* first row of the primary's locked read with this hash, -1 none */
};

/* The counts by hash, with an open-addressing index: a table's histogram has a hash per
 * distinct row (hundreds of thousands), so a linear search per row would be quadratic. */
struct mslist {
    struct mscount *v;
    size_t n, cap;
    size_t *slot; /* index + 1 into v, 0 = empty; nslot a power of two, at most half full */
    size_t nslot;
};

static size_t ms_slot_of(const struct mslist *l, const char *hash)
{
    uint64_t h = (uint64_t)strtoll(hash, NULL, 10) * 0x9E3779B97F4A7C15u;
    size_t i = (size_t)(h >> 17) & (l->nslot - 1);
    while (l->slot[i] && strcmp(l->v[l->slot[i] - 1].hash, hash) != 0) {
        i = (i + 1) & (l->nslot - 1);
    }
    return i;
}

static void ms_grow_index(struct mslist *l)
{
    free(l->slot);
    l->nslot = l->nslot ? l->nslot * 2 : 64;
    l->slot = util_xcalloc(l->nslot, sizeof *l->slot);
    for (size_t k = 0; k < l->n; k++) {
        l->slot[ms_slot_of(l, l->v[k].hash)] = k + 1;
    }
}

static struct mscount *ms_find(struct mslist *l, const char *hash)
{
    if (2 * (l->n + 1) > l->nslot) {
        ms_grow_index(l);
    }
    size_t i = ms_slot_of(l, hash);
    if (l->slot[i]) {
        return &l->v[l->slot[i] - 1];
    }
    if (l->n == l->cap) {
        l->cap = l->cap ? l->cap * 2 : 64;
        l->v = util_xrealloc(l->v, sizeof *l->v * l->cap);
    }
    l->v[l->n] = (struct mscount){.hash = util_xstrdup(hash), .first_prow = -1};
    l->slot[i] = ++l->n;
    return &l->v[l->n - 1];
}

static void ms_free(struct mslist *l)
{
    for (size_t i = 0; i < l->n; i++) {
        free(l->v[i].hash);
    }
    free(l->v);
    free(l->slot);
    memset(l, 0, sizeof *l);
}

/* Unlocked histograms of both sides; the hashes whose counts differ, as an int8[] literal. */
static int differing(struct live *lv, struct table *t, struct strbuf *arr)
{
    struct strbuf q;
    strbuf_init(&q);
    strbuf_printf(&q, "SELECT s.h::text, count(*) FROM (SELECT %s AS h FROM %s t) s GROUP BY 1",
                  t->rowhash, t->def->qname);
    struct mslist l = {0};
    char err[1024];
    int rc = 0;
    for (int s = 0; s < 2 && rc == 0; s++) {
        PGresult *r = NULL;
        if (livedb_exec(lv->c[s], s, q.p, 0, NULL, &r, err, sizeof err) != LIVEDB_OK) {
            snprintf(lv->error, sizeof lv->error, "table %.200s: %.800s", t->def->display, err);
            rc = -1;
            break;
        }
        for (int i = 0; i < PQntuples(r); i++) {
            ms_find(&l, PQgetvalue(r, i, 0))->n[s] = atoll(PQgetvalue(r, i, 1));
        }
        PQclear(r);
    }
    strbuf_puts(arr, "{");
    int k = 0;
    for (size_t i = 0; rc == 0 && i < l.n; i++) {
        if (l.v[i].n[0] != l.v[i].n[1]) {
            strbuf_printf(arr, "%s%s", k++ ? "," : "", l.v[i].hash);
        }
    }
    strbuf_puts(arr, "}");
    ms_free(&l);
    strbuf_free(&q);
    return rc < 0 ? -1 : k;
}

static void log_ms(struct live *lv, const struct table *t, const char *action, const char *hash,
                   int64_t rows)
{
    struct replog_entry e = {
        .table = t->def->display, .action = action, .rows = rows, .row_hash = hash};
    replog_emit(lv->log, lv->out, lv->pass, &e);
}

/* The secondary's surplus copies, all hashes in one DELETE: one scan of the table numbers the
 * copies of each hash, the copies numbered up to the surplus go, by ctid (a TID scan). One
 * statement per hash would scan the whole table once per hash: with thousands of surplus rows
 * that held the table's SHARE ROW EXCLUSIVE lock, and the mirrored writes waiting behind it, for
 * minutes. Hashes and counts are int8 values the server printed. */
static void ms_put_delete(struct strbuf *sql, const struct table *t, const char *hashes,
                          const char *counts)
{
    strbuf_printf(sql, "DELETE FROM %s WHERE ctid = ANY (ARRAY(", t->def->qname);
    repair_put_keyless_copies(sql, t, hashes, counts);
    strbuf_puts(sql, "));\n");
}

/* Plans the secondary's writes from the locked counts: inserts of missing copies; deletes of
 * surplus copies only when allow_delete. *surplus counts the surplus left for later. */
static int ms_plan(struct live *lv, struct table *t, struct mslist *l, const PGresult *rp,
                   bool allow_delete, struct strbuf *sql, int64_t *surplus)
{
    int rc = 0;
    struct strbuf hashes, counts;
    strbuf_init(&hashes);
    strbuf_init(&counts);
    for (size_t i = 0; i < l->n; i++) {
        struct mscount *m = &l->v[i];
        int P = lv->primary, S = !P;
        for (int64_t k = 0; k < m->n[P] - m->n[S]; k++) {
            rc |= repair_put_insert(sql, lv->c[S], t->def->qname, t->ref, rp, m->first_prow, 1,
                                    false);
        }
        if (m->n[S] > m->n[P] && allow_delete) {
            strbuf_printf(&hashes, "%s%s", hashes.len ? "," : "{", m->hash);
            strbuf_printf(&counts, "%s%lld", counts.len ? "," : "{",
                          (long long)(m->n[S] - m->n[P]));
        } else if (m->n[S] > m->n[P]) {
            *surplus += m->n[S] - m->n[P];
        }
    }
    if (hashes.len) {
        strbuf_puts(&hashes, "}");
        strbuf_puts(&counts, "}");
        ms_put_delete(sql, t, hashes.p, counts.p);
    }
    strbuf_free(&hashes);
    strbuf_free(&counts);
    return rc < 0 ? -1 : 0;
}

static void ms_log_all(struct live *lv, struct table *t, const struct mslist *l, bool deleted)
{
    int P = lv->primary, S = !P;
    int64_t n = 0;
    for (size_t i = 0; i < l->n; i++) {
        const struct mscount *m = &l->v[i];
        if (m->n[P] > m->n[S]) {
            log_ms(lv, t, "multiset_insert", m->hash, m->n[P] - m->n[S]);
            n += m->n[P] - m->n[S];
        } else if (m->n[S] > m->n[P] && deleted) {
            log_ms(lv, t, "multiset_delete", m->hash, m->n[S] - m->n[P]);
            n += m->n[S] - m->n[P];
        }
    }
    live_count(lv, t, n);
}

/* One locked transaction pair over the hashes in arr. snap_out (first round): the primary's
 * snapshot after the secondary's count, when a surplus was left. */
static enum livedb_rc ms_attempt(struct live *lv, struct table *t, const char *arr,
                                 bool allow_delete, char **snap_out, char *err, size_t el)
{
    int P = lv->primary, S = !P;
    const char *params[1] = {arr};
    PGresult *rp = NULL, *rs = NULL, *rsnap = NULL;
    struct strbuf q, sql;
    strbuf_init(&q);
    strbuf_init(&sql);
    strbuf_printf(&q, "SELECT %s::text, %s FROM %s t WHERE %s = ANY ($1::int8[]) FOR SHARE OF t",
                  t->rowhash, t->allcols, t->def->qname, t->rowhash);
    enum livedb_rc rc = livedb_begin(lv->c[P], P, lv->o->lock_timeout_ms, err, el);
    rc = rc ? rc : livedb_exec(lv->c[P], P, q.p, 1, params, &rp, err, el);
    rc = rc ? rc : livedb_begin(lv->c[S], S, lv->o->lock_timeout_ms, err, el);
    strbuf_reset(&q);
    strbuf_printf(&q, "LOCK TABLE %s IN SHARE ROW EXCLUSIVE MODE", t->def->qname);
    rc = rc ? rc : livedb_exec(lv->c[S], S, q.p, 0, NULL, NULL, err, el);
    strbuf_reset(&q);
    strbuf_printf(&q, "SELECT %s::text, count(*) FROM %s t WHERE %s = ANY ($1::int8[]) GROUP BY 1",
                  t->rowhash, t->def->qname, t->rowhash);
    rc = rc ? rc : livedb_exec(lv->c[S], S, q.p, 1, params, &rs, err, el);
    rc = rc ? rc
            : livedb_exec(lv->c[P], P, "SELECT pg_current_snapshot()::text", 0, NULL, &rsnap, err,
                          el);
    struct mslist l = {0};
    int64_t surplus = 0;
    if (rc == LIVEDB_OK) {
        for (int i = 0; i < PQntuples(rp); i++) {
            struct mscount *m = ms_find(&l, PQgetvalue(rp, i, 0));
            m->first_prow = m->n[P]++ ? m->first_prow : i;
        }
        for (int i = 0; i < PQntuples(rs); i++) {
            ms_find(&l, PQgetvalue(rs, i, 0))->n[S] = atoll(PQgetvalue(rs, i, 1));
        }
        if (ms_plan(lv, t, &l, rp, allow_delete, &sql, &surplus) < 0) {
            snprintf(err, el, "cannot quote a value of %s", t->def->display);
            rc = LIVEDB_FAIL;
        }
    }
    if (rc == LIVEDB_OK && sql.len) {
        rc = livedb_exec(lv->c[S], S, sql.p, 0, NULL, NULL, err, el);
    }
    rc = rc ? rc : livedb_exec(lv->c[S], S, "COMMIT", 0, NULL, NULL, err, el);
    rc = rc ? rc : livedb_exec(lv->c[P], P, "COMMIT", 0, NULL, NULL, err, el);
    if (rc == LIVEDB_OK) {
        ms_log_all(lv, t, &l, allow_delete);
        *snap_out = surplus > 0 ? util_xstrdup(PQgetvalue(rsnap, 0, 0)) : NULL;
    }
    ms_free(&l);
    strbuf_free(&q);
    strbuf_free(&sql);
    PQclear(rp);
    PQclear(rs);
    PQclear(rsnap);
    return rc;
}

static int ms_round(struct live *lv, struct table *t, const char *arr, bool allow_delete,
                    char **snap)
{
    char err[1024] = "";
    enum livedb_rc rc = LIVEDB_RETRY;
    for (int a = 0; a < LIVE_RETRIES && rc == LIVEDB_RETRY; a++) {
        rc = ms_attempt(lv, t, arr, allow_delete, snap, err, sizeof err);
        if (rc != LIVEDB_OK) {
            livedb_rollback_both(lv->c[!lv->primary], lv->c[lv->primary]);
        }
    }
    if (rc == LIVEDB_BROKEN) {
        snprintf(lv->error, sizeof lv->error, "table %.200s: %.800s", t->def->display, err);
        return -1;
    }
    if (rc != LIVEDB_OK) {
        fprintf(stderr, "pgdual-verify: table %s: multiset repair failed: %s\n", t->def->display,
                err);
        lv->table_unsettled = true;
        return 1;
    }
    return 0;
}

int multiset_repair(struct live *lv, struct table *t)
{
    struct strbuf arr;
    strbuf_init(&arr);
    int n = differing(lv, t, &arr);
    char *snap = NULL, err[1024];
    int rc = n < 0 ? -1 : 0;
    if (n > 0 && live_budget(lv, t)) {
        rc = ms_round(lv, t, arr.p, false, &snap);
    }
    if (rc == 0 && snap) {
        enum livedb_rc w = livedb_wait_xip(lv->c[lv->primary], lv->primary, snap,
                                           LIVE_XIP_TIMEOUT_S, err, sizeof err);
        if (w == LIVEDB_OK) {
            free(snap);
            snap = NULL;
            rc = ms_round(lv, t, arr.p, true, &snap);
        } else if (w == LIVEDB_RETRY) {
            lv->table_unsettled = true;
        } else {
            snprintf(lv->error, sizeof lv->error, "table %.200s: %.800s", t->def->display, err);
            rc = -1;
        }
    }
    free(snap);
    strbuf_free(&arr);
    return rc < 0 ? -1 : 0;
}

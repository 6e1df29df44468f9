/* tools/verify/confirm.c: the proof that ends a round of --live passes (DESIGN §7).
 *
 * A pass compares ranges with unlocked checksums; a range whose two checksums are taken at
 * different instants can look equal while it is not: the secondary that missed a `n = n + 1`
 * reads the same n as the primary when its checksum is taken one mirrored increment later. So a
 * round of passes is called clean only after each table compared equal under locks:
 * - the primary's table is SHARE-locked first: no write to it is running there (a mirrored write
 *   holds ROW EXCLUSIVE until the primary commits it, and in lockstep that is after the
 *   secondary applied it); writes queue behind the lock until the comparison ends;
 * - then the secondary's table is SHARE-locked: its writers that are still open (a transaction
 *   the primary committed first) end before the checksum is read, so the secondary is not seen
 *   behind either;
 * - one count + checksum per side, both at once; the secondary commits, then the primary.
 * Locks are taken primary first with lock_timeout on both sides (a cycle across two servers is
 * seen by neither), retried after a timeout. The cost: writers of one table wait for one
 * checksum of it (see tools/verify/README.md). */
#include "tools/verify/confirm.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "tools/verify/discover.h"
#include "tools/verify/live.h"
#include "tools/verify/livedb.h"
#include "tools/verify/options.h"
#include "tools/verify/strbuf.h"
#include "tools/verify/table.h"
#include "tools/verify/verify.h"

/* Both sides' count + checksum text, read at once. LIVEDB_*. */
static enum livedb_rc checksums(struct live *lv, const char *sql, char out[2][128], char *err,
                                size_t el)
{
    for (int s = 0; s < 2; s++) {
        if (!PQsendQuery(lv->c[s], sql)) {
            snprintf(err, el, "%s: %s", util_side_name(s), PQerrorMessage(lv->c[s]));
            return LIVEDB_BROKEN;
        }
    }
    enum livedb_rc rc = LIVEDB_OK;
    for (int s = 0; s < 2; s++) {
        PGresult *r;
        while ((r = PQgetResult(lv->c[s])) != NULL) {
            if (PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1) {
                snprintf(out[s], 128, "%s/%s", PQgetvalue(r, 0, 0), PQgetvalue(r, 0, 1));
            } else if (rc == LIVEDB_OK) {
                rc = livedb_classify(PQresultErrorField(r, PG_DIAG_SQLSTATE));
                snprintf(err, el, "%s: %s", util_side_name(s), PQresultErrorMessage(r));
            }
            PQclear(r);
        }
    }
    return rc;
}

/* One locked comparison of t. LIVEDB_OK with *equal set, or why not. */
static enum livedb_rc attempt(struct live *lv, const struct table *t, bool *equal, char *err,
                              size_t el)
{
    int P = lv->primary, S = !P;
    struct strbuf lock, sum;
    strbuf_init(&lock);
    strbuf_init(&sum);
    strbuf_printf(&lock, "LOCK TABLE %s IN SHARE MODE", t->def->qname);
    strbuf_printf(&sum, "SELECT count(*), coalesce(sum(%s), 0)::text FROM %s t", t->rowhash,
                  t->def->qname);
    char got[2][128] = {"", ""};
    enum livedb_rc rc = livedb_begin(lv->c[P], P, lv->o->lock_timeout_ms, err, el);
    rc = rc ? rc : livedb_exec(lv->c[P], P, lock.p, 0, NULL, NULL, err, el);
    rc = rc ? rc : livedb_begin(lv->c[S], S, lv->o->lock_timeout_ms, err, el);
    rc = rc ? rc : livedb_exec(lv->c[S], S, lock.p, 0, NULL, NULL, err, el);
    rc = rc ? rc : checksums(lv, sum.p, got, err, el);
    rc = rc ? rc : livedb_exec(lv->c[S], S, "COMMIT", 0, NULL, NULL, err, el);
    rc = rc ? rc : livedb_exec(lv->c[P], P, "COMMIT", 0, NULL, NULL, err, el);
    *equal = rc == LIVEDB_OK && strcmp(got[0], got[1]) == 0;
    strbuf_free(&lock);
    strbuf_free(&sum);
    return rc;
}

/* 0 equal, 1 differs or not lockable, -1 error. */
static int confirm_one(struct live *lv, const struct table *t)
{
    char err[1024] = "";
    bool equal = false;
    enum livedb_rc rc = LIVEDB_RETRY;
    for (int a = 0; a < LIVE_RETRIES && rc == LIVEDB_RETRY; a++) {
        if (a > 0) {
            livedb_backoff(a);
        }
        rc = attempt(lv, t, &equal, err, sizeof err);
        if (rc != LIVEDB_OK) {
            livedb_rollback_both(lv->c[!lv->primary], lv->c[lv->primary]);
        }
    }
    if (rc == LIVEDB_BROKEN) {
        snprintf(lv->error, sizeof lv->error, "table %.200s: %.800s", t->def->display, err);
        return -1;
    }
    if (rc != LIVEDB_OK) {
        fprintf(stderr, "pgdual-verify: table %s: locked comparison not done: %s\n",
                t->def->display, err);
    } else if (!equal) {
        fprintf(lv->out, "confirm: %s differs under locks: another pass\n", t->def->display);
    }
    return rc == LIVEDB_OK && equal ? 0 : 1;
}

int confirm_tables(struct live *lv)
{
    struct options po = *lv->o;
    po.progress = false;
    struct verify_pass vp;
    if (verify_discover(&po, &vp) < 0) {
        snprintf(lv->error, sizeof lv->error, "%s", vp.error);
        return -1;
    }
    int rc = 0, checked = 0;
    for (int i = 0; i < vp.cat.n && rc >= 0; i++) {
        if (!vp.cat.t[i].comparable) {
            continue;
        }
        struct table t;
        table_init(&t, vp.pool, &po, &vp.cat.t[i], NULL, NULL);
        int one = confirm_one(lv, &t);
        if (one > 0) {
            live_redo_add(lv, vp.cat.t[i].display);
            rc = 1;
        } else if (one < 0) {
            rc = -1;
        }
        checked++;
        table_free(&t);
    }
    if (rc == 0) {
        fprintf(lv->out, "confirm: %d table(s) equal under locks\n", checked);
    }
    verify_free(&vp);
    return rc;
}

/* tools/verify/keyless.c: tables without a primary key, compared as multisets of rows. */
#include "tools/verify/keyless.h"

#include <stdint.h>
#include <stdlib.h>

#include <libpq-fe.h>

#include "tools/verify/discover.h"
#include "tools/verify/options.h"
#include "tools/verify/pool.h"
#include "tools/verify/repair.h"
#include "tools/verify/result.h"
#include "tools/verify/strbuf.h"
#include "tools/verify/table.h"

struct hcount {
    int64_t hash, n;
};

/* Row-hash histograms of both sides. */
struct keyless {
    struct table *t;
    struct hcount *h[2];
    size_t n[2];
    int pending;
};

static int hcount_cmp(const void *a, const void *b)
{
    const struct hcount *x = a, *y = b;
    return x->hash < y->hash ? -1 : x->hash > y->hash;
}

static void put_pair(struct strbuf *hashes, struct strbuf *counts, int64_t hash, int64_t n)
{
    strbuf_printf(hashes, "%s%lld", hashes->len ? "," : "{", (long long)hash);
    strbuf_printf(counts, "%s%lld", counts->len ? "," : "{", (long long)n);
}

/* Walks both sorted histograms; surplus on the primary is missing, on the secondary extra. The
 * repair of the whole table is one fetch of the missing copies and one DELETE of the extra ones
 * (repair_keyless), not a scan of the table per row hash. */
static void keyless_merge(struct keyless *kl)
{
    struct table *t = kl->t;
    int p = t->primary, s = !p;
    size_t i = 0, j = 0;
    struct strbuf ins_h, ins_n, del_h, del_n;
    strbuf_init(&ins_h);
    strbuf_init(&ins_n);
    strbuf_init(&del_h);
    strbuf_init(&del_n);
    while (i < kl->n[p] || j < kl->n[s]) {
        const struct hcount *a = i < kl->n[p] ? &kl->h[p][i] : NULL;
        const struct hcount *b = j < kl->n[s] ? &kl->h[s][j] : NULL;
        int64_t hash = 0, np = 0, ns = 0;
        if (a && (!b || a->hash <= b->hash)) {
            hash = a->hash;
            np = a->n;
            i++;
        }
        if (b && (!a || b->hash <= a->hash)) {
            hash = b->hash;
            ns = b->n;
            j++;
        }
        if (np > ns) {
            t->res->ms_missing += np - ns;
            put_pair(&ins_h, &ins_n, hash, np - ns);
        } else if (ns > np) {
            t->res->ms_extra += ns - np;
            put_pair(&del_h, &del_n, hash, ns - np);
        }
    }
    if (t->opt->repair && (ins_h.len || del_h.len)) {
        strbuf_puts(&ins_h, "}");
        strbuf_puts(&ins_n, "}");
        strbuf_puts(&del_h, "}");
        strbuf_puts(&del_n, "}");
        repair_keyless(t, ins_h.len > 1 ? ins_h.p : NULL, ins_n.p, del_h.len > 1 ? del_h.p : NULL,
                       del_n.p);
    }
    strbuf_free(&ins_h);
    strbuf_free(&ins_n);
    strbuf_free(&del_h);
    strbuf_free(&del_n);
}

static int on_hist(void *ctx, int side, const PGresult *res)
{
    struct keyless *kl = ctx;
    size_t n = (size_t)PQntuples(res);
    kl->h[side] = util_xcalloc(n, sizeof *kl->h[side]);
    for (size_t i = 0; i < n; i++) {
        kl->h[side][i].hash = atoll(PQgetvalue(res, (int)i, 0));
        kl->h[side][i].n = atoll(PQgetvalue(res, (int)i, 1));
    }
    kl->n[side] = n;
    qsort(kl->h[side], n, sizeof *kl->h[side], hcount_cmp);
    if (--kl->pending > 0) {
        return 0;
    }
    keyless_merge(kl);
    free(kl->h[0]);
    free(kl->h[1]);
    free(kl);
    return 0;
}

void keyless_start(struct table *t)
{
    t->res->multiset_differs = true;
    struct keyless *kl = util_xcalloc(1, sizeof *kl);
    kl->t = t;
    kl->pending = 2;
    struct strbuf b;
    strbuf_init(&b);
    strbuf_printf(&b, "SELECT s.h, count(*) FROM (SELECT %s AS h FROM %s t) s GROUP BY s.h",
                  t->rowhash, t->def->qname);
    for (int s = 0; s < 2; s++) {
        pool_submit(t->pool, s, b.p, 0, NULL, on_hist, kl);
    }
    strbuf_free(&b);
}

/* tools/verify/repair.c: SQL that makes the secondary match the primary, and applying it. */
#include "tools/verify/repair.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libpq-fe.h>

#include "tools/verify/discover.h"
#include "tools/verify/keys.h"
#include "tools/verify/options.h"
#include "tools/verify/pool.h"
#include "tools/verify/result.h"
#include "tools/verify/strbuf.h"
#include "tools/verify/table.h"

/* A fetch of primary rows whose answer becomes INSERT statements. */
struct fetch {
    struct table *t;
    bool upsert; /* ON CONFLICT (pk) DO UPDATE, else a plain INSERT (keyless tables) */
};

/* Appends 'value'::type, or NULL::type, escaped for conn. 0, or -1 when quoting failed. */
static int put_literal(PGconn *c, struct strbuf *b, const char *v, bool null, const char *type)
{
    if (null) {
        strbuf_printf(b, "NULL::%s", type);
        return 0;
    }
    char *lit = PQescapeLiteral(c, v, strlen(v));
    if (!lit) {
        strbuf_puts(b, "NULL");
        return -1;
    }
    strbuf_printf(b, "%s::%s", lit, type);
    PQfreemem(lit);
    return 0;
}

/* Does an upsert set column i? Every stored column but a GENERATED ALWAYS identity, which an
 * UPDATE cannot set (a difference there stays reported). The key too: a key equal to the
 * primary's under its type's equality but printed otherwise (numeric 5.0 for 5) conflicts with
 * the primary's row and takes its text, instead of a delete of the "extra" 5.0 removing it. */
static bool upsert_sets(const struct discover_side *sd, int i)
{
    return !sd->cols[i].generated && !sd->cols[i].identity_always;
}

/* "ROW(0, p.c1::text COLLATE "C", ...)" over the columns an upsert sets, the constant making a
 * row constructor of a single column still. Compared byte for byte, as the comparison compares:
 * under a column's nondeterministic collation 'abc' and 'ABC' would be equal. */
static void put_text_row(struct strbuf *b, const struct discover_side *sd, const char *prefix)
{
    strbuf_puts(b, "ROW(0");
    for (int i = 0; i < sd->ncols; i++) {
        if (upsert_sets(sd, i)) {
            strbuf_printf(b, ", %s%s::text COLLATE \"C\"", prefix, sd->cols[i].qname);
        }
    }
    strbuf_puts(b, ")");
}

void repair_put_insert_head(struct strbuf *b, const char *qname, const struct discover_side *sd)
{
    bool ident = false;
    strbuf_printf(b, "INSERT INTO %s AS pgdual_t (", qname);
    for (int i = 0, n = 0; i < sd->ncols; i++) {
        if (!sd->cols[i].generated) {
            strbuf_printf(b, "%s%s", n++ ? ", " : "", sd->cols[i].qname);
            ident |= sd->cols[i].identity_always;
        }
    }
    strbuf_printf(b, ")%s VALUES ", ident ? " OVERRIDING SYSTEM VALUE" : "");
}

int repair_put_values(struct strbuf *b, PGconn *c, const struct discover_side *sd,
                      const PGresult *res, int row, int col0)
{
    int rc = 0;
    strbuf_puts(b, "(");
    for (int i = 0, n = 0; i < sd->ncols; i++) {
        if (!sd->cols[i].generated) {
            strbuf_puts(b, n++ ? ", " : "");
            rc |= put_literal(c, b, PQgetvalue(res, row, col0 + i), PQgetisnull(res, row, col0 + i),
                              sd->cols[i].type);
        }
    }
    strbuf_puts(b, ")");
    return rc < 0 ? -1 : 0;
}

void repair_put_upsert_tail(struct strbuf *b, const struct discover_side *sd)
{
    strbuf_puts(b, " ON CONFLICT (");
    for (int k = 0; k < sd->nkeys; k++) {
        strbuf_printf(b, "%s%s", k ? ", " : "", sd->cols[sd->keys[k]].qname);
    }
    strbuf_puts(b, ") DO ");
    int n = 0;
    for (int i = 0; i < sd->ncols; i++) {
        if (upsert_sets(sd, i)) {
            strbuf_printf(b, "%s%s = EXCLUDED.%s", n++ ? ", " : "UPDATE SET ", sd->cols[i].qname,
                          sd->cols[i].qname);
        }
    }
    if (n == 0) {
        strbuf_puts(b, "NOTHING");
        return;
    }
    /* A row that already holds these values (compared as text, like the comparison) is left
     * alone: the upsert then reports no row, and nothing is logged as repaired. */
    strbuf_puts(b, " WHERE (");
    put_text_row(b, sd, "pgdual_t.");
    strbuf_puts(b, ") IS DISTINCT FROM (");
    put_text_row(b, sd, "EXCLUDED.");
    strbuf_puts(b, ")");
}

int repair_put_insert(struct strbuf *b, PGconn *c, const char *qname,
                      const struct discover_side *sd, const PGresult *res, int row, int col0,
                      bool upsert)
{
    repair_put_insert_head(b, qname, sd);
    int rc = repair_put_values(b, c, sd, res, row, col0);
    if (upsert) {
        repair_put_upsert_tail(b, sd);
    }
    strbuf_puts(b, ";\n");
    return rc;
}

int repair_put_delete(struct strbuf *b, PGconn *c, const char *qname,
                      const struct discover_side *sd, const char *key, size_t klen)
{
    const char *vals[64];
    keys_split(key, klen, sd->nkeys, vals);
    int rc = 0;
    strbuf_printf(b, "DELETE FROM %s WHERE (", qname);
    for (int k = 0; k < sd->nkeys; k++) {
        strbuf_printf(b, "%s%s", k ? ", " : "", sd->cols[sd->keys[k]].qname);
    }
    strbuf_puts(b, ") = (");
    for (int k = 0; k < sd->nkeys; k++) {
        strbuf_puts(b, k ? ", " : "");
        rc |= put_literal(c, b, vals[k], false, sd->cols[sd->keys[k]].type);
    }
    /* Only the row whose key prints as the extra's: one equal under the key's equality but
     * printed otherwise (numeric 5 for 5.0, an upsert just gave it the primary's text) is the
     * primary's row. */
    strbuf_puts(b, ") AND (");
    for (int k = 0; k < sd->nkeys; k++) {
        strbuf_printf(b, "%s%s::text COLLATE \"C\"", k ? ", " : "", sd->cols[sd->keys[k]].qname);
    }
    strbuf_puts(b, ") = (");
    for (int k = 0; k < sd->nkeys; k++) {
        strbuf_puts(b, k ? ", " : "");
        rc |= put_literal(c, b, vals[k], false, "text");
    }
    strbuf_puts(b, ");\n");
    return rc < 0 ? -1 : 0;
}

static int on_fetch(void *ctx, int side, const PGresult *res)
{
    (void)side;
    struct fetch *f = ctx;
    for (int i = 0; i < PQntuples(res); i++) {
        PGconn *c = pool_conn(f->t->pool, !f->t->primary);
        if (repair_put_insert(&f->t->res->repair, c, f->t->def->qname, f->t->ref, res, i, 0,
                              f->upsert) < 0) {
            pool_fail(f->t->pool, "cannot quote a value of %s: %s", f->t->def->display,
                      PQerrorMessage(c));
        }
        f->t->res->nrepair++;
    }
    free(f);
    return 0;
}

void repair_upsert(struct table *t, const char *key, size_t klen)
{
    const char *params[64];
    keys_split(key, klen, t->ref->nkeys, params);
    struct strbuf b;
    strbuf_init(&b);
    strbuf_printf(&b, "SELECT %s FROM %s t WHERE ", t->allcols, t->def->qname);
    table_key_cmp(t, &b, "=", 1);
    struct fetch *f = util_xcalloc(1, sizeof *f);
    f->t = t;
    f->upsert = true;
    pool_submit(t->pool, t->primary, b.p, t->ref->nkeys, params, on_fetch, f);
    strbuf_free(&b);
}

void repair_delete(struct table *t, const char *key, size_t klen)
{
    PGconn *c = pool_conn(t->pool, !t->primary);
    if (repair_put_delete(&t->res->repair, c, t->def->qname, t->ref, key, klen) < 0) {
        pool_fail(t->pool, "cannot quote a key of %s: %s", t->def->display, PQerrorMessage(c));
    }
    t->res->nrepair++;
}

void repair_put_keyless_copies(struct strbuf *b, const struct table *t, const char *hashes,
                               const char *counts)
{
    strbuf_printf(
        b,
        "SELECT x.ctid FROM (SELECT y.ctid, y.h, row_number() OVER (PARTITION BY y.h) AS k"
        " FROM (SELECT t.ctid, %s AS h FROM %s t) y WHERE y.h = ANY ('%s'::int8[])) x"
        " JOIN unnest('%s'::int8[], '%s'::int8[]) AS d(h, n) ON x.h = d.h AND x.k <= d.n",
        t->rowhash, t->def->qname, hashes, hashes, counts);
}

void repair_keyless(struct table *t, const char *ins_hashes, const char *ins_counts,
                    const char *del_hashes, const char *del_counts)
{
    if (ins_hashes) {
        struct strbuf b;
        strbuf_init(&b);
        strbuf_printf(&b, "SELECT %s FROM %s t WHERE t.ctid = ANY (ARRAY(", t->allcols,
                      t->def->qname);
        repair_put_keyless_copies(&b, t, ins_hashes, ins_counts);
        strbuf_puts(&b, "))");
        struct fetch *f = util_xcalloc(1, sizeof *f);
        f->t = t;
        pool_submit(t->pool, t->primary, b.p, 0, NULL, on_fetch, f);
        strbuf_free(&b);
    }
    if (del_hashes) {
        strbuf_printf(&t->res->repair, "DELETE FROM %s WHERE ctid = ANY (ARRAY(", t->def->qname);
        repair_put_keyless_copies(&t->res->repair, t, del_hashes, del_counts);
        strbuf_puts(&t->res->repair, "));\n");
        t->res->nrepair++;
    }
}

int repair_apply(const struct options *o, const char *sql, char *err, size_t errlen)
{
    int s = !o->primary;
    PGconn *c = PQconnectdb(o->conninfo[s]);
    if (PQstatus(c) != CONNECTION_OK) {
        snprintf(err, errlen, "repair: cannot connect to %s database: %s", util_side_name(s),
                 PQerrorMessage(c));
        PQfinish(c);
        return -1;
    }
    if (pool_session_formats(c, s, err, errlen) < 0) { /* the literals' formats */
        PQfinish(c);
        return -1;
    }
    struct strbuf b;
    strbuf_init(&b);
    strbuf_printf(&b, "BEGIN;\n%sCOMMIT;\n", sql);
    PGresult *r = PQexec(c, b.p);
    strbuf_free(&b);
    int rc = 0;
    if (PQresultStatus(r) != PGRES_COMMAND_OK || PQtransactionStatus(c) != PQTRANS_IDLE) {
        snprintf(err, errlen, "repair on %s failed, rolled back: %s", util_side_name(s),
                 PQerrorMessage(c));
        rc = -1;
    }
    PQclear(r);
    PQfinish(c);
    return rc;
}

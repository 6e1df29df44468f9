/* tools/verify/discover.c: reads tables, columns and primary keys from both catalogs and
 * reports schema differences before any data is compared. */
#include "tools/verify/discover.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libpq-fe.h>

#include "tools/verify/options.h"
#include "tools/verify/pool.h"
#include "tools/verify/strbuf.h"

/* Every column of every candidate table, with its position in the primary key (0 = none). */
static const char catalog_sql[] =
    "SELECT n.nspname, c.relname, c.reltuples::float8,"
    " (pg_relation_size(c.oid) / current_setting('block_size')::int)::int8,"
    " a.attname, format_type(a.atttypid, a.atttypmod), a.attgenerated <> '',"
    " a.attidentity = 'a', ty.typcategory,"
    " coalesce((SELECT k.ord FROM pg_index i, unnest(i.indkey) WITH ORDINALITY k(num, ord)"
    "           WHERE i.indrelid = c.oid AND i.indisprimary AND k.num = a.attnum), 0),"
    " (SELECT setting::int8 FROM pg_settings WHERE name = 'shared_buffers'), c.relpages::int8"
    " FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
    " JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped"
    " JOIN pg_type ty ON ty.oid = a.atttypid"
    " WHERE c.relkind = 'r' AND n.nspname NOT IN ('pg_catalog', 'information_schema')"
    " AND n.nspname !~ '^pg_(toast|temp_)' AND ($1::text IS NULL OR n.nspname = $1)"
    " ORDER BY n.nspname, c.relname, a.attnum";

static char *quote_ident(PGconn *c, const char *s)
{
    char *q = PQescapeIdentifier(c, s, strlen(s));
    char *r = util_xstrdup(q ? q : s);
    PQfreemem(q);
    return r;
}

static struct discover_table *find(struct discover_catalog *cat, const char *schema,
                                   const char *name)
{
    for (int i = 0; i < cat->n; i++) {
        if (cat->t[i].schema && !strcmp(cat->t[i].schema, schema) &&
            !strcmp(cat->t[i].name, name)) {
            return &cat->t[i];
        }
    }
    return NULL;
}

static struct discover_table *add_table(struct discover_catalog *cat, PGconn *c, const char *schema,
                                        const char *name)
{
    struct discover_table *t = find(cat, schema, name);
    if (t) {
        return t;
    }
    cat->t = util_xrealloc(cat->t, sizeof *cat->t * (size_t)(cat->n + 1));
    t = &cat->t[cat->n++];
    memset(t, 0, sizeof *t);
    t->schema = util_xstrdup(schema);
    t->name = util_xstrdup(name);
    struct strbuf b;
    strbuf_init(&b);
    strbuf_printf(&b, "%s.%s", schema, name);
    t->display = strbuf_take(&b);
    char *qs = quote_ident(c, schema), *qn = quote_ident(c, name);
    strbuf_printf(&b, "%s.%s", qs, qn);
    t->qname = strbuf_take(&b);
    free(qs);
    free(qn);
    return t;
}

static void add_column(struct discover_side *sd, PGconn *c, const PGresult *r, int row)
{
    sd->cols = util_xrealloc(sd->cols, sizeof *sd->cols * (size_t)(sd->ncols + 1));
    struct discover_col *col = &sd->cols[sd->ncols];
    col->name = util_xstrdup(PQgetvalue(r, row, 4));
    col->qname = quote_ident(c, col->name);
    col->type = util_xstrdup(PQgetvalue(r, row, 5));
    col->generated = PQgetvalue(r, row, 6)[0] == 't';
    col->identity_always = PQgetvalue(r, row, 7)[0] == 't';
    col->category = PQgetvalue(r, row, 8)[0];
    int pkpos = atoi(PQgetvalue(r, row, 9));
    if (pkpos > 0) {
        if (pkpos > sd->nkeys) {
            sd->keys = util_xrealloc(sd->keys, sizeof *sd->keys * (size_t)pkpos);
            for (int k = sd->nkeys; k < pkpos; k++) {
                sd->keys[k] = -1;
            }
            sd->nkeys = pkpos;
        }
        sd->keys[pkpos - 1] = sd->ncols;
    }
    sd->ncols++;
}

static int load_side(struct pool *p, int s, const struct options *o, struct discover_catalog *cat,
                     char *err, size_t errlen)
{
    PGconn *c = pool_conn(p, s);
    const char *params[1] = {o->schema};
    PGresult *r = PQexecParams(c, catalog_sql, 1, NULL, params, NULL, NULL, 0);
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        snprintf(err, errlen, "%s: catalog query failed: %s", util_side_name(s), PQerrorMessage(c));
        PQclear(r);
        return -1;
    }
    for (int i = 0; i < PQntuples(r); i++) {
        struct discover_table *t = add_table(cat, c, PQgetvalue(r, i, 0), PQgetvalue(r, i, 1));
        struct discover_side *sd = &t->side[s];
        if (!sd->present) {
            sd->present = true;
            sd->reltuples = atof(PQgetvalue(r, i, 2));
            sd->blocks = atoll(PQgetvalue(r, i, 3));
            sd->shared_buffers = atoll(PQgetvalue(r, i, 10));
            sd->relpages = atoll(PQgetvalue(r, i, 11));
        }
        add_column(sd, c, r, i);
    }
    PQclear(r);
    return 0;
}

static void free_side(struct discover_side *sd)
{
    for (int i = 0; i < sd->ncols; i++) {
        free(sd->cols[i].name);
        free(sd->cols[i].qname);
        free(sd->cols[i].type);
    }
    free(sd->cols);
    free(sd->keys);
}

static void free_table(struct discover_table *t)
{
    free_side(&t->side[0]);
    free_side(&t->side[1]);
    for (int i = 0; i < t->nschema_diffs; i++) {
        free(t->schema_diffs[i]);
    }
    free(t->schema_diffs);
    free(t->schema);
    free(t->name);
    free(t->display);
    free(t->qname);
}

void discover_free(struct discover_catalog *cat)
{
    for (int i = 0; i < cat->n; i++) {
        free_table(&cat->t[i]);
    }
    free(cat->t);
    cat->t = NULL;
    cat->n = 0;
}

const struct discover_side *discover_ref(const struct discover_table *t, int primary)
{
    return t->side[primary].present ? &t->side[primary] : &t->side[!primary];
}

static void schema_diff(struct discover_table *t, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void schema_diff(struct discover_table *t, const char *fmt, ...)
{
    struct strbuf b;
    strbuf_init(&b);
    va_list ap;
    va_start(ap, fmt);
    char tmp[1024];
    vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    strbuf_puts(&b, tmp);
    t->schema_diffs =
        util_xrealloc(t->schema_diffs, sizeof *t->schema_diffs * (size_t)(t->nschema_diffs + 1));
    t->schema_diffs[t->nschema_diffs++] = strbuf_take(&b);
}

static const struct discover_col *col_named(const struct discover_side *sd, const char *name)
{
    for (int i = 0; i < sd->ncols; i++) {
        if (!strcmp(sd->cols[i].name, name)) {
            return &sd->cols[i];
        }
    }
    return NULL;
}

static void key_text(const struct discover_side *sd, struct strbuf *b)
{
    strbuf_puts(b, "(");
    for (int k = 0; k < sd->nkeys; k++) {
        strbuf_printf(b, "%s%s", k ? ", " : "",
                      sd->keys[k] >= 0 ? sd->cols[sd->keys[k]].name : "?");
    }
    strbuf_puts(b, sd->nkeys ? ")" : "none)");
}

/* Compares the two sides' definitions of a table present on both. */
static void compare_defs(struct discover_table *t)
{
    const struct discover_side *a = &t->side[0], *b = &t->side[1];
    for (int i = 0; i < a->ncols; i++) {
        const struct discover_col *o = col_named(b, a->cols[i].name);
        if (!o) {
            schema_diff(t, "column %s (%s) missing on new", a->cols[i].name, a->cols[i].type);
        } else if (strcmp(o->type, a->cols[i].type)) {
            schema_diff(t, "column %s: type %s on old, %s on new", a->cols[i].name, a->cols[i].type,
                        o->type);
        }
    }
    for (int i = 0; i < b->ncols; i++) {
        if (!col_named(a, b->cols[i].name)) {
            schema_diff(t, "column %s (%s) missing on old", b->cols[i].name, b->cols[i].type);
        }
    }
    struct strbuf ka, kb;
    strbuf_init(&ka);
    strbuf_init(&kb);
    key_text(a, &ka);
    key_text(b, &kb);
    if (strcmp(ka.p, kb.p)) {
        schema_diff(t, "primary key %s on old, %s on new", ka.p, kb.p);
    }
    strbuf_free(&ka);
    strbuf_free(&kb);
}

static int check_keys(const struct discover_table *t, int s, char *err, size_t errlen)
{
    const struct discover_side *sd = &t->side[s];
    for (int k = 0; k < sd->nkeys; k++) {
        const struct discover_col *c = sd->keys[k] >= 0 ? &sd->cols[sd->keys[k]] : NULL;
        if (!c || strchr("ACGRPX", c->category)) {
            snprintf(err, errlen, "table %s on %s: primary key column %s has unsupported type %s",
                     t->display, util_side_name(s), c ? c->name : "(expression)",
                     c ? c->type : "?");
            return -1;
        }
    }
    return 0;
}

/* Keeps only the tables named by --tables; errors on a name present on neither side. */
static int filter_tables(struct discover_catalog *cat, char **names, char *err, size_t errlen)
{
    struct discover_table *kept = util_xcalloc((size_t)cat->n + 1, sizeof *kept);
    int n = 0;
    for (char **nm = names; *nm; nm++) {
        const char *dot = strchr(*nm, '.');
        char *schema = dot ? util_xmemdup(*nm, (size_t)(dot - *nm)) : util_xstrdup("public");
        struct discover_table *t = find(cat, schema, dot ? dot + 1 : *nm);
        bool dup = false;
        for (int k = 0; !t && k < n; k++) {
            dup |= !strcmp(kept[k].schema, schema) && !strcmp(kept[k].name, dot ? dot + 1 : *nm);
        }
        free(schema);
        if (dup) {
            continue;
        }
        if (!t) {
            snprintf(err, errlen, "table %s does not exist on old nor on new", *nm);
            free(kept);
            return -1;
        }
        kept[n++] = *t;
        memset(t, 0, sizeof *t);
    }
    for (int i = 0; i < cat->n; i++) {
        free_table(&cat->t[i]);
    }
    free(cat->t);
    cat->t = kept;
    cat->n = n;
    return 0;
}

static int finish_table(struct discover_table *t, char *err, size_t errlen)
{
    for (int s = 0; s < 2; s++) {
        if (!t->side[s].present) {
            schema_diff(t, "table missing on %s", util_side_name(s));
        } else if (check_keys(t, s, err, errlen) < 0) {
            return -1;
        }
    }
    if (t->side[0].present && t->side[1].present) {
        compare_defs(t);
    }
    t->comparable = t->nschema_diffs == 0;
    return 0;
}

int discover_run(struct pool *p, const struct options *o, struct discover_catalog *cat, char *err,
                 size_t errlen)
{
    memset(cat, 0, sizeof *cat);
    for (int s = 0; s < 2; s++) {
        if (load_side(p, s, o, cat, err, errlen) < 0) {
            return -1;
        }
    }
    if (o->tables && filter_tables(cat, o->tables, err, errlen) < 0) {
        return -1;
    }
    if (cat->n == 0) {
        snprintf(err, errlen, "no tables to compare%s%s on old nor on new",
                 o->schema ? " in schema " : "", o->schema ? o->schema : "");
        return -1;
    }
    for (int i = 0; i < cat->n; i++) {
        if (finish_table(&cat->t[i], err, errlen) < 0) {
            return -1;
        }
    }
    return 0;
}

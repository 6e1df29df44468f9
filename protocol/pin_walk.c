/* protocol/pin_walk.c: the walk of one statement's parse tree for pinning: what in it makes up
 * values, picks rows or takes values from rows in an order the server does not define, reads
 * each server's own state, fires a default or writes (see pin.h; pin.c decides from it). */
#include <pg_query/pg_query.pb-c.h>
#include <stdlib.h>
#include <string.h>

#include "protocol/pgq_walk.h"
#include "protocol/pin_internal.h"

const char *pin_node_string(const void *node)
{
    const PgQuery__Node *n = node;
    if (n == NULL || n->node_case != PG_QUERY__NODE__NODE_STRING || n->string == NULL) {
        return NULL;
    }
    return n->string->sval;
}

/* A system catalog or view (pg_catalog, information_schema, or a name PostgreSQL reserves to
 * them: pg_*): OIDs, statistics, sessions and locks differ between the two servers, so a write
 * storing what it reads of them is pinned. */
static bool server_state(const PgQuery__RangeVar *rv)
{
    const char *schema = rv->schemaname;
    return (schema &&
            (strcmp(schema, "pg_catalog") == 0 || strcmp(schema, "information_schema") == 0)) ||
           (rv->relname && strncmp(rv->relname, "pg_", 3) == 0);
}

/* SELECT DISTINCT ON keeps the first row of each group in an order an ORDER BY may not make
 * total. */
static bool distinct_on(const PgQuery__SelectStmt *s)
{
    for (size_t i = 0; i < s->n_distinct_clause; i++) {
        if (s->distinct_clause[i] &&
            s->distinct_clause[i]->node_case != PG_QUERY__NODE__NODE__NOT_SET) {
            return true;
        }
    }
    return false;
}

/* A call whose value may depend on the order its rows come in, which the server does not define:
 * an aggregate that concatenates its input (array_agg(x) over a join in new's physical order is
 * another array than old's), a window function (row_number() OVER ()). An ORDER BY of its own
 * need not be total (ties keep the order rows came in), and pgdual cannot tell whether it is:
 * pinned whatever it says. */
static bool order_sensitive_call(const PgQuery__FuncCall *fc, const char *name)
{
    if (fc->over) {
        return true;
    }
    static const char *const concatenating[] = {
        "array_agg",        "string_agg",      "json_agg",         "jsonb_agg", "json_object_agg",
        "jsonb_object_agg", "json_agg_strict", "jsonb_agg_strict", "xmlagg"};
    for (size_t i = 0; name && i < sizeof(concatenating) / sizeof(concatenating[0]); i++) {
        if (strcmp(name, concatenating[i]) == 0) {
            return true;
        }
    }
    return false;
}

/* A system column other than the key: a row version's transaction and command ids (xmin, xmax,
 * cmin, cmax), its table's OID (tableoid) and its place in the heap (ctid) are each server's
 * own. */
static bool system_column(const char *name)
{
    static const char *const cols[] = {"ctid", "xmin", "xmax", "cmin", "cmax", "tableoid"};
    for (size_t i = 0; name && i < sizeof(cols) / sizeof(cols[0]); i++) {
        if (strcmp(name, cols[i]) == 0) {
            return true;
        }
    }
    return false;
}

static bool type_named(const PgQuery__TypeName *t, const char *const *names, size_t n)
{
    const char *last = t && t->n_names ? pin_node_string(t->names[t->n_names - 1]) : NULL;
    for (size_t i = 0; last && i < n; i++) {
        if (strcmp(last, names[i]) == 0) {
            return true;
        }
    }
    return false;
}

/* A cast to an identifier type whose values are each server's own (oid, xid, cid, tid), or of a
 * reg* value to a number ('t'::regclass::int: its OID). A reg* value itself is not: stored in a
 * reg* column or compared, it means the object of that name on each server (pinning old's OID
 * would point new's row at another object), and to_tsvector('english'::regconfig, ...) only
 * names a configuration. */
static bool server_id_cast(const PgQuery__TypeCast *tc)
{
    static const char *const ids[] = {"oid", "xid", "xid8", "cid", "tid"};
    static const char *const regs[] = {"regclass",     "regproc", "regprocedure", "regoper",
                                       "regoperator",  "regtype", "regconfig",    "regdictionary",
                                       "regnamespace", "regrole", "regcollation"};
    static const char *const numbers[] = {"int2",    "int4",   "int8",    "smallint",
                                          "integer", "bigint", "numeric", "decimal",
                                          "float4",  "float8", "real",    "double precision"};
    if (type_named(tc->type_name, ids, sizeof(ids) / sizeof(ids[0]))) {
        return true;
    }
    const PgQuery__Node *a = tc->arg;
    return a && a->node_case == PG_QUERY__NODE__NODE_TYPE_CAST && a->type_cast &&
           type_named(a->type_cast->type_name, regs, sizeof(regs) / sizeof(regs[0])) &&
           type_named(tc->type_name, numbers, sizeof(numbers) / sizeof(numbers[0]));
}

/* current_setting() of a server setting (port, data_directory, cluster_name, server_version...):
 * each server's own. A custom setting (a dotted name, app.user_id) is the session's, mirrored
 * by its SET: the same on both. A name pgdual cannot read is taken as a server's. */
static bool reads_server_setting(const PgQuery__FuncCall *fc, const char *name)
{
    if (!name || strcmp(name, "current_setting") != 0) {
        return false;
    }
    const PgQuery__Node *a = fc->n_args > 0 ? fc->args[0] : NULL;
    if (!a || a->node_case != PG_QUERY__NODE__NODE_A_CONST || !a->a_const ||
        a->a_const->val_case != PG_QUERY__A__CONST__VAL_SVAL || !a->a_const->sval ||
        !a->a_const->sval->sval) {
        return true;
    }
    return strchr(a->a_const->sval->sval, '.') == NULL;
}

static void pin_visit(void *ctx, const ProtobufCMessage *m)
{
    struct pin_walk *w = ctx;
    const ProtobufCMessageDescriptor *d = m->descriptor;
    classify_node(m, w->opt, &w->f);
    if (d == &pg_query__select_stmt__descriptor) {
        const PgQuery__SelectStmt *s = (const PgQuery__SelectStmt *)m;
        w->order_undefined =
            w->order_undefined || s->limit_count || s->limit_offset || distinct_on(s);
    } else if (d == &pg_query__locking_clause__descriptor) {
        w->order_undefined =
            w->order_undefined || ((const PgQuery__LockingClause *)m)->wait_policy ==
                                      PG_QUERY__LOCK_WAIT_POLICY__LockWaitSkip;
    } else if (d == &pg_query__column_ref__descriptor) {
        const PgQuery__ColumnRef *c = (const PgQuery__ColumnRef *)m;
        const char *last = c->n_fields > 0 ? pin_node_string(c->fields[c->n_fields - 1]) : NULL;
        w->order_undefined = w->order_undefined || system_column(last);
    } else if (d == &pg_query__range_var__descriptor) {
        w->order_undefined = w->order_undefined || server_state((const PgQuery__RangeVar *)m);
    } else if (d == &pg_query__set_to_default__descriptor) {
        w->uses_default = true;
    } else if (d == &pg_query__func_call__descriptor) {
        const PgQuery__FuncCall *fc = (const PgQuery__FuncCall *)m;
        const char *name =
            fc->n_funcname ? pin_node_string(fc->funcname[fc->n_funcname - 1]) : NULL;
        w->sets_config = w->sets_config || (name && strcmp(name, "set_config") == 0);
        w->order_undefined =
            w->order_undefined || order_sensitive_call(fc, name) || reads_server_setting(fc, name);
    } else if (d == &pg_query__type_cast__descriptor) {
        w->order_undefined = w->order_undefined || server_id_cast((const PgQuery__TypeCast *)m);
    } else if (d == &pg_query__insert_stmt__descriptor || d == &pg_query__merge_stmt__descriptor) {
        w->dml++;
        w->inserts++;
    } else if (d == &pg_query__update_stmt__descriptor || d == &pg_query__delete_stmt__descriptor) {
        w->dml++;
    }
}

bool pin_walk_node(const void *node, const struct classify_options *opt, struct pin_walk *w)
{
    memset(w, 0, sizeof(*w));
    w->opt = opt;
    return pin_walk_more(node, w);
}

bool pin_walk_more(const void *node, struct pin_walk *w)
{
    return !node || pgq_walk((const ProtobufCMessage *)node, pin_visit, w);
}

/* ---- the relations a statement reads ---- */

const void *pin_dml_target(const void *msg)
{
    const ProtobufCMessage *m = msg;
    const ProtobufCMessageDescriptor *d = m->descriptor;
    if (d == &pg_query__insert_stmt__descriptor) {
        return ((const PgQuery__InsertStmt *)m)->relation;
    }
    if (d == &pg_query__update_stmt__descriptor) {
        return ((const PgQuery__UpdateStmt *)m)->relation;
    }
    if (d == &pg_query__delete_stmt__descriptor) {
        return ((const PgQuery__DeleteStmt *)m)->relation;
    }
    if (d == &pg_query__merge_stmt__descriptor) {
        return ((const PgQuery__MergeStmt *)m)->relation;
    }
    return NULL;
}

struct reads_walk {
    struct pin_relname rels[PIN_READS_MAX];
    int nrels;
    bool full;
    const PgQuery__RangeVar *targets[PIN_READS_MAX]; /* write targets met: not reads */
    int ntargets;
};

static void reads_visit(void *ctx, const ProtobufCMessage *m)
{
    struct reads_walk *w = ctx;
    const ProtobufCMessageDescriptor *d = m->descriptor;
    const PgQuery__RangeVar *target = pin_dml_target(m); /* met before its target */
    if (d == &pg_query__into_clause__descriptor) {       /* CREATE TABLE AS, SELECT INTO */
        target = ((const PgQuery__IntoClause *)m)->rel;
    } else if (d == &pg_query__alter_table_stmt__descriptor) { /* ADD COLUMN, ALTER TYPE */
        target = ((const PgQuery__AlterTableStmt *)m)->relation;
    }
    if (target) {
        if (w->ntargets < PIN_READS_MAX) {
            w->targets[w->ntargets++] = target;
        } else {
            w->full = true;
        }
        return;
    }
    if (d != &pg_query__range_var__descriptor) {
        return;
    }
    const PgQuery__RangeVar *rv = (const PgQuery__RangeVar *)m;
    for (int i = 0; i < w->ntargets; i++) {
        if (w->targets[i] == rv) {
            return; /* written, not read (a view written through is not queried) */
        }
    }
    if (!rv->relname || server_state(rv)) {
        return; /* a system view's query is the server's: pinned as server state already */
    }
    struct pin_relname r;
    pin_copy_name(r.schema, rv->schemaname);
    pin_copy_name(r.rel, rv->relname);
    for (int i = 0; i < w->nrels; i++) {
        if (strcmp(w->rels[i].schema, r.schema) == 0 && strcmp(w->rels[i].rel, r.rel) == 0) {
            return;
        }
    }
    if (w->nrels == PIN_READS_MAX) {
        w->full = true;
        return;
    }
    w->rels[w->nrels++] = r;
}

/* A relation of a three-part name (db.schema.rel) is the server's to refuse: kept as
 * schema.rel. */
int pin_list_reads(const void *node, struct pin_stmt *st)
{
    struct reads_walk *w = calloc(1, sizeof(*w));
    if (!w) {
        return PIN_ENOMEM;
    }
    bool whole = pgq_walk((const ProtobufCMessage *)node, reads_visit, w);
    st->reads_full = !whole || w->full;
    st->reads = calloc((size_t)w->nrels + 1, sizeof(*st->reads));
    if (!st->reads) {
        free(w);
        return PIN_ENOMEM;
    }
    /* A name that is also a WITH query's is kept: where that query is not in force (inside its
     * own body, `WITH v AS (SELECT * FROM v)`) it names the relation; looking up a name no
     * relation has costs a lookup that finds nothing. */
    for (int i = 0; i < w->nrels; i++) {
        st->reads[st->nreads++] = w->rels[i];
    }
    free(w);
    return 0;
}

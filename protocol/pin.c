/* protocol/pin.c: deterministic writes: what each statement writes and whether it must be pinned
 * (see pin.h; the parse tree's walk is pin_walk.c's, the catalog rows pin_catalog.c's, the SQL and
 * bytes pin_sql.c's). */
#include "protocol/pin.h"

#include <pg_query/pg_query.pb-c.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <pg_query.h>

#include "protocol/pgq_walk.h"
#include "protocol/pin_internal.h"

/* ---- analysis ------------------------------------------------------------------------------ */

void pin_copy_name(pin_name dst, const char *src)
{
    size_t n = src ? strnlen(src, PIN_NAME_MAX) : 0;
    memcpy(dst, src ? src : "", n);
    dst[n] = '\0';
}

static void set_target(struct pin_stmt *st, const PgQuery__RangeVar *rv)
{
    if (rv == NULL) {
        return;
    }
    pin_copy_name(st->schema, rv->schemaname);
    pin_copy_name(st->rel, rv->relname);
    pin_copy_name(st->ref, rv->alias && rv->alias->aliasname && rv->alias->aliasname[0]
                               ? rv->alias->aliasname
                               : rv->relname);
}

/* Column names of ResTarget (INSERT columns, SET targets) or String (COPY) nodes. */
static int set_cols(struct pin_stmt *st, PgQuery__Node **nodes, size_t n)
{
    st->ncols = (int)n;
    if (n == 0) {
        return 0;
    }
    st->cols = calloc(n, sizeof(*st->cols));
    if (!st->cols) {
        return PIN_ENOMEM;
    }
    for (size_t i = 0; i < n; i++) {
        const PgQuery__Node *c = nodes[i];
        const char *name = NULL;
        if (c && c->node_case == PG_QUERY__NODE__NODE_RES_TARGET && c->res_target) {
            name = c->res_target->name;
        } else {
            name = pin_node_string(c);
        }
        pin_copy_name(st->cols[i], name);
    }
    return 0;
}

/* ---- a table created earlier in the same text ---- */

/* Does the expression make up values (a default), or call code pgdual does not know? */
static bool expr_volatile(const PgQuery__Node *e, const struct classify_options *opt)
{
    struct pin_walk w;
    bool whole = pin_walk_node(e, opt, &w);
    return !whole || w.f.nondeterministic || w.f.user_code;
}

static bool type_is(const PgQuery__TypeName *t, const char *const *names, size_t n)
{
    const char *last = t && t->n_names ? pin_node_string(t->names[t->n_names - 1]) : NULL;
    for (size_t i = 0; last && i < n; i++) {
        if (strcmp(last, names[i]) == 0) {
            return t->n_array_bounds == 0;
        }
    }
    return false;
}

static const char *const serials[] = {"serial",  "bigserial", "smallserial",
                                      "serial2", "serial4",   "serial8"};

/* Does the column draw its values from a sequence (serial, identity)? */
static bool column_draws(const PgQuery__ColumnDef *cd)
{
    if (type_is(cd->type_name, serials, 6)) {
        return true;
    }
    for (size_t i = 0; i < cd->n_constraints; i++) {
        const PgQuery__Node *n = cd->constraints[i];
        if (n && n->node_case == PG_QUERY__NODE__NODE_CONSTRAINT && n->constraint &&
            n->constraint->contype == PG_QUERY__CONSTR_TYPE__CONSTR_IDENTITY) {
            return true;
        }
    }
    return false;
}

/* ALTER TABLE ... ADD COLUMN of a serial or identity column: the server fills the table's rows
 * from the sequence in the order it reads them, its physical order, which new's need not share
 * (a volatile DEFAULT is the classifier's nondeterministic already). */
static bool adds_drawn_column(const PgQuery__Node *n)
{
    if (!n || n->node_case != PG_QUERY__NODE__NODE_ALTER_TABLE_STMT || !n->alter_table_stmt) {
        return false;
    }
    for (size_t i = 0; i < n->alter_table_stmt->n_cmds; i++) {
        const PgQuery__Node *c = n->alter_table_stmt->cmds[i];
        const PgQuery__AlterTableCmd *a =
            c && c->node_case == PG_QUERY__NODE__NODE_ALTER_TABLE_CMD ? c->alter_table_cmd : NULL;
        if (a && a->subtype == PG_QUERY__ALTER_TABLE_TYPE__AT_AddColumn && a->def &&
            a->def->node_case == PG_QUERY__NODE__NODE_COLUMN_DEF && a->def->column_def &&
            column_draws(a->def->column_def)) {
            return true;
        }
    }
    return false;
}

static int add_created_column(struct pin_table *t, const PgQuery__ColumnDef *cd,
                              const struct classify_options *opt)
{
    static const char *const json[] = {"json"}, *const jsonb[] = {"jsonb"};
    struct pin_column *c = pin_table_add_column(t, cd->colname);
    if (!c) {
        return PIN_ENOMEM;
    }
    /* A domain over one is not seen here (documented); an array type named _elem is. */
    const char *last = cd->type_name && cd->type_name->n_names
                           ? pin_node_string(cd->type_name->names[cd->type_name->n_names - 1])
                           : NULL;
    bool array = cd->type_name && (cd->type_name->n_array_bounds || (last && last[0] == '_'));
    c->kind = array                              ? PIN_VALUE_ARRAY
              : type_is(cd->type_name, json, 1)  ? PIN_VALUE_JSON
              : type_is(cd->type_name, jsonb, 1) ? PIN_VALUE_JSONB
                                                 : PIN_VALUE_PLAIN;
    c->volatile_default = type_is(cd->type_name, serials, 6);
    if (cd->raw_default) {
        c->volatile_default = c->volatile_default || expr_volatile(cd->raw_default, opt);
    }
    for (size_t i = 0; i < cd->n_constraints; i++) {
        const PgQuery__Node *n = cd->constraints[i];
        const PgQuery__Constraint *k =
            n && n->node_case == PG_QUERY__NODE__NODE_CONSTRAINT ? n->constraint : NULL;
        if (!k) {
            continue;
        }
        switch (k->contype) {
        case PG_QUERY__CONSTR_TYPE__CONSTR_DEFAULT:
            c->volatile_default =
                c->volatile_default || !k->raw_expr || expr_volatile(k->raw_expr, opt);
            break;
        case PG_QUERY__CONSTR_TYPE__CONSTR_IDENTITY:
            c->volatile_default = c->identity = true;
            break;
        case PG_QUERY__CONSTR_TYPE__CONSTR_GENERATED:
            c->generated = true;
            break;
        case PG_QUERY__CONSTR_TYPE__CONSTR_PRIMARY:
            c->pk = true;
            break;
        default:
            break;
        }
    }
    t->npk += c->pk;
    return 0;
}

/* The table a CREATE TABLE describes, as the catalog would (a new table has no trigger, rule or
 * policy, and its creator may read it). NULL when its shape is not all in the statement (LIKE,
 * INHERITS, PARTITION OF, OF type, AS query) or on allocation failure. */
static struct pin_table *created_table(const PgQuery__CreateStmt *cs,
                                       const struct classify_options *opt)
{
    if (!cs->relation || cs->n_inh_relations || cs->partbound || cs->of_typename) {
        return NULL;
    }
    struct pin_table *t = calloc(1, sizeof(*t));
    if (!t) {
        return NULL;
    }
    t->found = true;
    bool ok = true;
    for (size_t i = 0; ok && i < cs->n_table_elts; i++) {
        const PgQuery__Node *e = cs->table_elts[i];
        if (e && e->node_case == PG_QUERY__NODE__NODE_COLUMN_DEF && e->column_def) {
            ok = add_created_column(t, e->column_def, opt) == 0;
        } else if (e && e->node_case == PG_QUERY__NODE__NODE_CONSTRAINT && e->constraint) {
            const PgQuery__Constraint *k = e->constraint;
            for (size_t j = 0; k->contype == PG_QUERY__CONSTR_TYPE__CONSTR_PRIMARY && j < k->n_keys;
                 j++) {
                const char *key = pin_node_string(k->keys[j]);
                for (int c = 0; key && c < t->ncols; c++) {
                    if (strcmp(t->cols[c].name, key) == 0 && !t->cols[c].pk) {
                        t->cols[c].pk = true;
                        t->npk++;
                    }
                }
            }
        } else {
            ok = false; /* LIKE: columns pgdual cannot see */
        }
    }
    if (!ok) {
        pin_table_free(t);
        free(t);
        return NULL;
    }
    return t;
}

/* Does a statement that is not DML store values it computes (CREATE TABLE AS, SELECT INTO,
 * REFRESH MATERIALIZED VIEW, an ALTER TABLE that adds a column and fills it, or changes a
 * column's type USING an expression)? */
static bool stores_values(const PgQuery__Node *n)
{
    if (n == NULL) {
        return false;
    }
    switch (n->node_case) {
    case PG_QUERY__NODE__NODE_REFRESH_MAT_VIEW_STMT:
        /* fills the view with what its query computes now (WITH NO DATA: nothing) */
        return n->refresh_mat_view_stmt && !n->refresh_mat_view_stmt->skip_data;
    case PG_QUERY__NODE__NODE_CREATE_TABLE_AS_STMT: /* ... WITH NO DATA stores nothing */
        return !n->create_table_as_stmt || !n->create_table_as_stmt->into ||
               !n->create_table_as_stmt->into->skip_data;
    case PG_QUERY__NODE__NODE_SELECT_STMT:
        return n->select_stmt && n->select_stmt->into_clause;
    case PG_QUERY__NODE__NODE_ALTER_TABLE_STMT:
        for (size_t i = 0; n->alter_table_stmt && i < n->alter_table_stmt->n_cmds; i++) {
            const PgQuery__Node *c = n->alter_table_stmt->cmds[i];
            const PgQuery__AlterTableCmd *a =
                c && c->node_case == PG_QUERY__NODE__NODE_ALTER_TABLE_CMD ? c->alter_table_cmd
                                                                          : NULL;
            if (a && (a->subtype == PG_QUERY__ALTER_TABLE_TYPE__AT_AddColumn ||
                      a->subtype == PG_QUERY__ALTER_TABLE_TYPE__AT_AlterColumnType)) {
                return true;
            }
        }
        return false;
    default:
        return false;
    }
}

static void note_range_var(void *ctx, const ProtobufCMessage *m)
{
    if (m->descriptor == &pg_query__range_var__descriptor) {
        *(bool *)ctx = true;
    }
}

/* INSERT ... SELECT ... ON CONFLICT DO NOTHING from a relation: of source rows with one key, the
 * first the server reads is stored and the others dropped, and which is first depends on the
 * physical order, which new's need not share (a VALUES list's order is the text's). */
static bool keeps_first_of_duplicates(const PgQuery__InsertStmt *s)
{
    if (!s->on_conflict_clause || !s->select_stmt ||
        s->on_conflict_clause->action != PG_QUERY__ON_CONFLICT_ACTION__ONCONFLICT_NOTHING) {
        return false;
    }
    bool reads = false;
    bool whole = pgq_walk((const ProtobufCMessage *)s->select_stmt, note_range_var, &reads);
    return reads || !whole;
}

/* ALTER TABLE of nothing but SET / DROP DEFAULT: the expression is stored, not run. */
static bool only_sets_defaults(const PgQuery__AlterTableStmt *a)
{
    for (size_t i = 0; i < a->n_cmds; i++) {
        const PgQuery__Node *c = a->cmds[i];
        if (!c || c->node_case != PG_QUERY__NODE__NODE_ALTER_TABLE_CMD || !c->alter_table_cmd ||
            c->alter_table_cmd->subtype != PG_QUERY__ALTER_TABLE_TYPE__AT_ColumnDefault) {
            return false;
        }
    }
    return a->n_cmds > 0;
}

/* ALTER TABLE: the walk of what runs now. SET DEFAULT only stores its expression (a Rails
 * change_column sends ALTER COLUMN ... TYPE ..., ALTER COLUMN ... SET DEFAULT now() as one
 * statement); a type's USING, an added column's default, a CHECK validated, run on the rows. */
static bool walk_alter_table(const PgQuery__AlterTableStmt *a, const struct classify_options *opt,
                             struct pin_walk *w)
{
    bool whole = pin_walk_node(NULL, opt, w);
    for (size_t i = 0; i < a->n_cmds; i++) {
        const PgQuery__Node *c = a->cmds[i];
        if (c && c->node_case == PG_QUERY__NODE__NODE_ALTER_TABLE_CMD && c->alter_table_cmd &&
            c->alter_table_cmd->subtype == PG_QUERY__ALTER_TABLE_TYPE__AT_ColumnDefault) {
            continue;
        }
        whole = pin_walk_more(c, w) && whole;
    }
    return whole;
}

/* Does the statement run the expressions it holds now? Every statement does (a write, a SELECT,
 * ALTER TABLE ... TYPE ... USING, a CHECK validated on the table's rows, an index expression
 * computed for them, ...) except DDL that only stores them in the catalog for later: a table's
 * DEFAULT or CHECK (a new table has no rows), a view, a function or procedure body, a trigger,
 * a rule, a policy, a domain, a comment, ALTER ... SET DEFAULT. What later runs them is decided
 * then (an INSERT firing the DEFAULT, a SELECT of the view's function). */
static bool runs_code(const PgQuery__Node *n)
{
    switch (n ? n->node_case : PG_QUERY__NODE__NODE__NOT_SET) {
    case PG_QUERY__NODE__NODE_CREATE_STMT:
    case PG_QUERY__NODE__NODE_VIEW_STMT:
    case PG_QUERY__NODE__NODE_CREATE_FUNCTION_STMT:
    case PG_QUERY__NODE__NODE_CREATE_TRIG_STMT:
    case PG_QUERY__NODE__NODE_RULE_STMT:
    case PG_QUERY__NODE__NODE_CREATE_POLICY_STMT:
    case PG_QUERY__NODE__NODE_ALTER_POLICY_STMT:
    case PG_QUERY__NODE__NODE_CREATE_DOMAIN_STMT:
    case PG_QUERY__NODE__NODE_COMMENT_STMT:
        return false;
    case PG_QUERY__NODE__NODE_ALTER_TABLE_STMT:
        return !n->alter_table_stmt || !only_sets_defaults(n->alter_table_stmt);
    default:
        return true;
    }
}

static bool rolls_back(const PgQuery__Node *n)
{
    if (!n || n->node_case != PG_QUERY__NODE__NODE_TRANSACTION_STMT || !n->transaction_stmt) {
        return false;
    }
    switch (n->transaction_stmt->kind) {
    case PG_QUERY__TRANSACTION_STMT_KIND__TRANS_STMT_BEGIN:
    case PG_QUERY__TRANSACTION_STMT_KIND__TRANS_STMT_START:
    case PG_QUERY__TRANSACTION_STMT_KIND__TRANS_STMT_SAVEPOINT:
    case PG_QUERY__TRANSACTION_STMT_KIND__TRANS_STMT_RELEASE:
        return false;
    default:
        return true; /* COMMIT, ROLLBACK [TO], PREPARE TRANSACTION, COMMIT/ROLLBACK PREPARED */
    }
}

int pin_analyze_node(const void *node, const struct classify_options *opt, struct pin_stmt *st)
{
    const PgQuery__Node *n = node;
    struct pin_walk w;
    bool whole = n && n->node_case == PG_QUERY__NODE__NODE_ALTER_TABLE_STMT && n->alter_table_stmt
                     ? walk_alter_table(n->alter_table_stmt, opt, &w)
                     : pin_walk_node(n, opt, &w);
    st->nondeterministic =
        w.f.nondeterministic || w.order_undefined || !whole || adds_drawn_column(n);
    st->user_code = w.f.user_code;
    st->uses_default = w.uses_default;
    st->sets_config = w.sets_config;
    st->draws = w.f.nondeterministic;
    st->catalog_change = !classify_node_catalog_safe(n) || w.f.user_code;
    st->rolls_back = rolls_back(n);
    st->plain_select = n && n->node_case == PG_QUERY__NODE__NODE_SELECT_STMT && n->select_stmt &&
                       !n->select_stmt->into_clause;
    st->stores_values = stores_values(n);
    st->runs_code = st->stores_values || runs_code(n);
    st->ncols = -1;
    int rc = 0;
    switch (n ? n->node_case : PG_QUERY__NODE__NODE__NOT_SET) {
    case PG_QUERY__NODE__NODE_INSERT_STMT: {
        const PgQuery__InsertStmt *s = n->insert_stmt;
        st->verb = PIN_VERB_INSERT;
        set_target(st, s->relation);
        st->client_returning = s->n_returning_list > 0;
        st->uses_default = st->uses_default || s->select_stmt == NULL; /* DEFAULT VALUES */
        if (s->on_conflict_clause) {
            st->conflict =
                s->on_conflict_clause->action == PG_QUERY__ON_CONFLICT_ACTION__ONCONFLICT_UPDATE
                    ? PIN_CONFLICT_UPDATE
                    : PIN_CONFLICT_NOTHING;
        }
        st->nondeterministic = st->nondeterministic || keeps_first_of_duplicates(s);
        rc = s->n_cols > 0 ? set_cols(st, s->cols, s->n_cols) : 0;
        break;
    }
    case PG_QUERY__NODE__NODE_UPDATE_STMT:
        st->verb = PIN_VERB_UPDATE;
        set_target(st, n->update_stmt->relation);
        /* UPDATE ... FROM: a target row that several joined rows match takes its values from
         * whichever the join meets first, in an order the server does not define. */
        st->nondeterministic = st->nondeterministic || n->update_stmt->n_from_clause > 0;
        st->client_returning = n->update_stmt->n_returning_list > 0;
        rc = set_cols(st, n->update_stmt->target_list, n->update_stmt->n_target_list);
        break;
    case PG_QUERY__NODE__NODE_DELETE_STMT:
        st->verb = PIN_VERB_DELETE;
        set_target(st, n->delete_stmt->relation);
        st->client_returning = n->delete_stmt->n_returning_list > 0;
        break;
    case PG_QUERY__NODE__NODE_MERGE_STMT:
        st->verb = PIN_VERB_MERGE;
        set_target(st, n->merge_stmt->relation);
        break;
    case PG_QUERY__NODE__NODE_CREATE_STMT:
        if (n->create_stmt->relation) {
            set_target(st, n->create_stmt->relation);
            st->created = created_table(n->create_stmt, opt);
        }
        break;
    case PG_QUERY__NODE__NODE_REFRESH_MAT_VIEW_STMT:
        st->refresh = st->stores_values;
        break;
    case PG_QUERY__NODE__NODE_CREATE_TABLE_AS_STMT:
        /* CREATE TABLE ... AS EXECUTE p: what p computes is not in the text (counted whatever
         * it is: pgdual does not keep the text of a statement the session prepared). */
        st->nondeterministic = st->nondeterministic || (n->create_table_as_stmt->query &&
                                                        n->create_table_as_stmt->query->node_case ==
                                                            PG_QUERY__NODE__NODE_EXECUTE_STMT);
        break;
    case PG_QUERY__NODE__NODE_PREPARE_STMT:
        /* SQL PREPARE writes nothing itself; what its EXECUTE will write is decided here, where
         * the statement is seen (an EXECUTE names it only). */
        if (n->prepare_stmt->query) {
            rc = pin_analyze_node(n->prepare_stmt->query, opt, st);
            st->sql_prepare = true;
            pin_copy_name(st->prepared, n->prepare_stmt->name);
            return rc;
        }
        break;
    case PG_QUERY__NODE__NODE_EXECUTE_STMT:
        pin_copy_name(st->executes, n->execute_stmt->name);
        break;
    case PG_QUERY__NODE__NODE_COPY_STMT: {
        const PgQuery__CopyStmt *c = n->copy_stmt;
        if (c->is_from && c->relation) {
            st->verb = PIN_VERB_COPY;
            set_target(st, c->relation);
            rc = c->n_attlist > 0 ? set_cols(st, c->attlist, c->n_attlist) : 0;
        }
        break;
    }
    default:
        break;
    }
    bool top_dml = st->verb == PIN_VERB_INSERT || st->verb == PIN_VERB_UPDATE ||
                   st->verb == PIN_VERB_DELETE || st->verb == PIN_VERB_MERGE;
    bool top_insert = st->verb == PIN_VERB_INSERT || st->verb == PIN_VERB_MERGE;
    st->nested_dml = w.dml > (top_dml ? 1 : 0);
    st->nested_insert = w.inserts > (top_insert ? 1 : 0);
    if (rc == 0 && (top_dml || st->stores_values)) {
        rc = pin_list_reads(n, st);
    }
    return rc;
}

/* Does what the catalog said of r make a statement reading it (or, refresh, filling it) store
 * values made up, or run code? NULL: pgdual could not ask (a failed lookup, one no message could
 * precede, DDL earlier in the text): the statement is pinned as if it did, which costs a RETURNING
 * where the relation is a table, and is counted where the write cannot be pinned. */
static void apply_read(struct pin_stmt *st, const struct pin_table *t)
{
    if (!t) {
        st->nondeterministic = true;
        return;
    }
    if (t->found && t->relkind == 'S' && !st->refresh) {
        st->nondeterministic = true; /* a sequence's last_value: new's lags behind pinned ids */
        return;
    }
    if (!t->found || (t->relkind != (st->refresh ? 'm' : 'v'))) {
        return; /* a table's rows are data; a materialized view's too, read */
    }
    st->nondeterministic = st->nondeterministic || t->def_values;
    st->user_code = st->user_code || t->def_code;
}

static void apply_reads_one(struct pin_stmt *st, pin_read_lookup known, void *ctx)
{
    st->nondeterministic = st->nondeterministic || st->reads_full; /* relations not listed */
    for (int i = 0; i < st->nreads; i++) {
        if (!st->refresh || i == 0) {
            apply_read(st, known(ctx, &st->reads[i]));
        }
    }
}

void pin_stmt_apply_reads(struct pin_stmt *st, pin_read_lookup known, void *ctx)
{
    apply_reads_one(st, known, ctx);
    if (st->outer) {
        apply_reads_one(st->outer, known, ctx);
    }
    for (int k = 0; k < st->nctes; k++) {
        apply_reads_one(&st->ctes[k].st, known, ctx);
    }
}

const struct pin_table *pin_plan_created(const struct pin_plan *p, int i)
{
    const struct pin_stmt *st = &p->stmts[i];
    for (int j = i - 1; j >= 0; j--) {
        const struct pin_stmt *c = &p->stmts[j];
        if (c->created && strcmp(c->rel, st->rel) == 0 && strcmp(c->schema, st->schema) == 0) {
            return c->created;
        }
    }
    return NULL;
}

int pin_analyze(const char *sql, const struct classify_options *opt, struct pin_plan *out)
{
    memset(out, 0, sizeof(*out));
    PgQueryProtobufParseResult pr = pg_query_parse_protobuf(sql);
    if (pr.error != NULL) {
        pg_query_free_protobuf_parse_result(pr);
        return PIN_EPARSE;
    }
    PgQuery__ParseResult *tree = pg_query__parse_result__unpack(
        NULL, pr.parse_tree.len, (const uint8_t *)pr.parse_tree.data);
    pg_query_free_protobuf_parse_result(pr);
    if (tree == NULL) {
        return PIN_ENOMEM;
    }
    size_t text_len = strlen(sql);
    int rc = 0;
    out->stmts = tree->n_stmts ? calloc(tree->n_stmts, sizeof(*out->stmts)) : NULL;
    if (tree->n_stmts && !out->stmts) {
        rc = PIN_ENOMEM;
    }
    for (size_t i = 0; i < tree->n_stmts && rc == 0; i++) {
        const PgQuery__RawStmt *raw = tree->stmts[i];
        struct pin_stmt *st = &out->stmts[i];
        out->n++;
        size_t at = raw && raw->stmt_location > 0 ? (size_t)raw->stmt_location : 0;
        size_t end = raw && raw->stmt_len > 0 ? at + (size_t)raw->stmt_len : text_len;
        st->start = at <= text_len ? at : text_len;
        st->end = end <= text_len ? end : text_len;
        rc = pin_analyze_node(raw ? raw->stmt : NULL, opt, st);
        if (rc == 0 && raw && st->nested_dml) {
            rc = pin_cte_analyze(raw->stmt, sql, opt, st);
        }
    }
    pg_query__parse_result__free_unpacked(tree, NULL);
    if (rc != 0) {
        pin_plan_free(out);
    }
    return rc;
}

void pin_stmt_free(struct pin_stmt *st)
{
    free(st->cols);
    if (st->created) {
        pin_table_free(st->created);
        free(st->created);
    }
    if (st->outer) {
        pin_stmt_free(st->outer);
        free(st->outer);
    }
    for (int i = 0; i < st->nctes; i++) {
        pin_stmt_free(&st->ctes[i].st);
    }
    free(st->ctes);
    free(st->rels);
    free(st->reads);
    memset(st, 0, sizeof(*st));
}

void pin_plan_free(struct pin_plan *p)
{
    for (int i = 0; i < p->n; i++) {
        pin_stmt_free(&p->stmts[i]);
    }
    free(p->stmts);
    memset(p, 0, sizeof(*p));
}

/* ---- the decision ---------------------------------------------------------------------------- */

bool pin_stmt_names_col(const struct pin_stmt *st, const char *col)
{
    for (int i = 0; i < st->ncols; i++) {
        if (strcmp(st->cols[i], col) == 0) {
            return true;
        }
    }
    return false;
}

/* Would a column default that makes up values fire (INSERT, COPY)? */
static bool defaults_fire(const struct pin_stmt *st, const struct pin_table *t)
{
    for (int i = 0; i < t->ncols; i++) {
        const struct pin_column *c = &t->cols[i];
        if (c->volatile_default && (st->ncols < 0 || !pin_stmt_names_col(st, c->name))) {
            return true;
        }
    }
    return false;
}

/* Does an INSERT into t store no value at all (a table without columns)? pin_shape_new would
 * have nothing to return. */
static bool stores_no_value(const struct pin_table *t)
{
    for (int i = 0; i < t->ncols; i++) {
        if (!t->cols[i].generated) {
            return false;
        }
    }
    return true;
}

const struct pin_column *pin_find_col(const struct pin_table *t, const char *name)
{
    for (int i = 0; i < t->ncols; i++) {
        if (strcmp(t->cols[i].name, name) == 0) {
            return &t->cols[i];
        }
    }
    return NULL;
}

const char pin_why_trigger_values[] = "a trigger on its table may make up values";
const char pin_why_trigger_writes[] = "a trigger on its table may write other tables";
const char pin_why_user_code[] =
    "it runs code pgdual cannot see into (DO, CALL, a function it does "
    "not know): what it writes and the values it makes up are unknown";

static unsigned t_trig(const struct pin_table *t, bool writes)
{
    return !t ? 0 : writes ? t->trig_writes : t->trig_values;
}

/* The trigger events a write fires (PIN_TRIG_*). */
static unsigned trigger_events(const struct pin_stmt *st)
{
    switch (st->verb) {
    case PIN_VERB_INSERT:
        return PIN_TRIG_INSERT | (st->conflict == PIN_CONFLICT_UPDATE ? PIN_TRIG_UPDATE : 0);
    case PIN_VERB_COPY:
        return PIN_TRIG_INSERT;
    case PIN_VERB_UPDATE:
        return PIN_TRIG_UPDATE;
    case PIN_VERB_DELETE:
        return PIN_TRIG_DELETE;
    case PIN_VERB_MERGE:
        return PIN_TRIG_INSERT | PIN_TRIG_UPDATE | PIN_TRIG_DELETE;
    default:
        return 0;
    }
}

enum pin_need pin_decide(const struct pin_stmt *st, const struct pin_table *t, const char **why)
{
    *why = NULL;
    bool known = t && t->found;
    /* A trigger that makes up values (or writes elsewhere) fires again on the secondary, whatever
     * the statement there: nothing pgdual sends can pin what it does. */
    unsigned events = known ? trigger_events(st) : 0;
    if (events & t_trig(t, true)) {
        *why = pin_why_trigger_writes;
        return PIN_IMPOSSIBLE;
    }
    if (events & t_trig(t, false)) {
        *why = pin_why_trigger_values;
        return PIN_IMPOSSIBLE;
    }
    if (st->user_code && (st->runs_code || st->verb != PIN_VERB_NONE)) {
        /* The code runs again on the secondary, whatever pgdual sends: a default it fires, a
         * clock it reads, a table it writes cannot be pinned, nor known. (DDL that only stores
         * the call — a DEFAULT, a view — runs nothing: what later runs it is decided then.) */
        *why = pin_why_user_code;
        return PIN_IMPOSSIBLE;
    }
    if (st->nested_dml) {
        /* pgdual cannot see the rows of a write inside another statement: fine as long as
         * nothing in it makes up values. An INSERT inside may fire defaults of a table pgdual
         * did not look up. */
        bool fills = (st->verb == PIN_VERB_INSERT || st->verb == PIN_VERB_MERGE) &&
                     (!known || defaults_fire(st, t));
        if (st->nondeterministic || st->uses_default || st->nested_insert || fills) {
            *why = "a write nested in another statement (a WITH query, EXPLAIN ANALYZE)";
            return PIN_IMPOSSIBLE;
        }
        return PIN_NOT_NEEDED;
    }
    if (st->verb == PIN_VERB_NONE) {
        if (st->draws && st->sets_config) {
            /* set_config('app.x', random()::text): each server keeps its own value, and a
             * later current_setting('app.x') stores it */
            *why = "it stores values the server makes up in a setting (set_config)";
            return PIN_IMPOSSIBLE;
        }
        if (st->nondeterministic && st->stores_values) {
            /* ALTER TABLE ... ADD COLUMN ... DEFAULT now(), CREATE TABLE AS, SELECT INTO */
            *why = "it stores values the server makes up (DDL, SELECT INTO, CREATE TABLE AS)";
            return PIN_IMPOSSIBLE;
        }
        return PIN_NOT_NEEDED;
    }
    if (known && t->blocked == pin_blocked_rules) {
        *why = t->blocked; /* what a rule writes is not in the statement */
        return PIN_IMPOSSIBLE;
    }
    bool fills =
        st->verb == PIN_VERB_INSERT || st->verb == PIN_VERB_COPY || st->verb == PIN_VERB_MERGE;
    bool need = st->nondeterministic || st->uses_default;
    if (fills && !need) {
        if (t == NULL) {
            *why = "the table's defaults are unknown (no catalog lookup possible here)";
            return PIN_IMPOSSIBLE;
        }
        if (known && (t->blocked == pin_blocked_not_table || t->blocked == pin_blocked_rules)) {
            *why = t->blocked; /* the defaults that fire are another table's */
            return PIN_IMPOSSIBLE;
        }
        if (!known) {
            /* Created by an earlier statement of the same query, or missing (the statement then
             * fails): its defaults cannot be known before it runs. */
            *why = "its table did not exist when pgdual looked it up (created in the same query?)";
            return PIN_IMPOSSIBLE;
        }
        need = defaults_fire(st, t);
    }
    if (!need) {
        return PIN_NOT_NEEDED;
    }
    if (st->verb == PIN_VERB_COPY) {
        *why = "COPY fills a default the server makes up";
    } else if (st->verb == PIN_VERB_MERGE) {
        *why = "MERGE has no RETURNING";
    } else if (!t) {
        *why = "its table is unknown (no catalog lookup possible here)";
    } else if (!t->found) {
        *why = "its table was not found";
    } else if (t->blocked) {
        *why = t->blocked;
    } else if (st->verb != PIN_VERB_INSERT && t->npk == 0) {
        *why = "its table has no primary key";
    } else if (st->conflict == PIN_CONFLICT_UPDATE && t->npk == 0) {
        *why = "ON CONFLICT DO UPDATE on a table without a primary key";
    }
    for (int i = 0; !*why && st->verb == PIN_VERB_UPDATE && i < st->ncols; i++) {
        const struct pin_column *c = pin_find_col(t, st->cols[i]);
        if (c && c->pk) {
            *why = "it changes the primary key";
        } else if (!c) {
            *why = "it sets a column the catalog does not list";
        }
    }
    if (!*why && st->verb == PIN_VERB_INSERT && stores_no_value(t)) {
        if (!st->nondeterministic) {
            return PIN_NOT_NEEDED; /* its rows hold nothing a server could make up */
        }
        *why = "its table has no column to return"; /* how many rows: RETURNING cannot say */
    }
    if (!*why && st->sql_prepare) {
        *why = "SQL PREPARE ... EXECUTE (the extended protocol's Parse/Bind/Execute is pinned)";
    }
    return *why ? PIN_IMPOSSIBLE : PIN_NEEDED;
}

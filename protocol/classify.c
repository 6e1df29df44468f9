/* protocol/classify.c: statement classification over libpg_query's protobuf parse tree. */
#include "protocol/classify.h"

#include <pg_query/pg_query.pb-c.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <pg_query.h>

#include "protocol/pgq_walk.h"

/* What the generic walk found in one string. */
struct walk {
    const struct classify_options *opt;
    bool unsafe;    /* something that is not part of a side-effect-free read */
    bool nondet;    /* see classify_result.nondeterministic */
    bool inserts;   /* see classify_result.inserts */
    bool locking;   /* a locking clause (FOR UPDATE/SHARE...) was seen */
    bool user_code; /* see classify_result.user_code */
};

static const char *node_string(const PgQuery__Node *n)
{
    if (n == NULL || n->node_case != PG_QUERY__NODE__NODE_STRING || n->string == NULL) {
        return NULL;
    }
    return n->string->sval;
}

/* FuncCall: the name is a list of String nodes: [name] or [schema, name]. Anything else (a
 * three-part name, a non-string component) is unknown and therefore unsafe. */
static void visit_func_call(struct walk *w, const PgQuery__FuncCall *fc)
{
    const char *schema = NULL;
    const char *name = NULL;
    if (fc->n_funcname == 1) {
        name = node_string(fc->funcname[0]);
    } else if (fc->n_funcname == 2) {
        schema = node_string(fc->funcname[0]);
        name = node_string(fc->funcname[1]);
    }
    if (name == NULL || (fc->n_funcname == 2 && schema == NULL)) {
        w->unsafe = w->user_code = true;
        return;
    }
    unsigned flags = classify_funcs_flags(schema, name, w->opt);
    if (!(flags & CLASSIFY_FUNCS_READ)) {
        w->unsafe = true;
    }
    if (flags == 0) {
        w->user_code = true; /* not a function pgdual knows: it may run anything */
    }
    if (flags & CLASSIFY_FUNCS_NONDET) {
        w->nondet = true;
    }
}

static bool sqlvalue_is_clock(PgQuery__SQLValueFunctionOp op)
{
    switch (op) {
    case PG_QUERY__SQLVALUE_FUNCTION_OP__SVFOP_CURRENT_DATE:
    case PG_QUERY__SQLVALUE_FUNCTION_OP__SVFOP_CURRENT_TIME:
    case PG_QUERY__SQLVALUE_FUNCTION_OP__SVFOP_CURRENT_TIME_N:
    case PG_QUERY__SQLVALUE_FUNCTION_OP__SVFOP_CURRENT_TIMESTAMP:
    case PG_QUERY__SQLVALUE_FUNCTION_OP__SVFOP_CURRENT_TIMESTAMP_N:
    case PG_QUERY__SQLVALUE_FUNCTION_OP__SVFOP_LOCALTIME:
    case PG_QUERY__SQLVALUE_FUNCTION_OP__SVFOP_LOCALTIME_N:
    case PG_QUERY__SQLVALUE_FUNCTION_OP__SVFOP_LOCALTIMESTAMP:
    case PG_QUERY__SQLVALUE_FUNCTION_OP__SVFOP_LOCALTIMESTAMP_N:
        return true;
    default:
        return false; /* CURRENT_USER, CURRENT_SCHEMA, ...: session state, mirrored */
    }
}

/* 'now'::timestamptz and friends: the date/time input functions read the clock. */
static bool type_cast_reads_clock(const PgQuery__TypeCast *tc)
{
    const PgQuery__Node *arg = tc->arg;
    if (arg == NULL || arg->node_case != PG_QUERY__NODE__NODE_A_CONST || arg->a_const == NULL ||
        arg->a_const->val_case != PG_QUERY__A__CONST__VAL_SVAL || arg->a_const->sval == NULL) {
        return false;
    }
    static const char *const words[] = {"now", "today", "tomorrow", "yesterday"};
    const char *s = arg->a_const->sval->sval;
    while (s != NULL && (*s == ' ' || *s == '\t')) {
        s++;
    }
    for (size_t i = 0; s != NULL && i < sizeof words / sizeof words[0]; i++) {
        size_t n = strlen(words[i]);
        if (strncasecmp(s, words[i], n) == 0 && (s[n] == '\0' || s[n] == ' ')) {
            return true;
        }
    }
    return false;
}

/* Node-specific checks; the generic walk then descends into every child anyway. */
static void visit_message(struct walk *w, const ProtobufCMessage *m)
{
    const ProtobufCMessageDescriptor *d = m->descriptor;
    if (d == &pg_query__func_call__descriptor) {
        visit_func_call(w, (const PgQuery__FuncCall *)m);
    } else if (d == &pg_query__sqlvalue_function__descriptor) {
        if (sqlvalue_is_clock(((const PgQuery__SQLValueFunction *)m)->op)) {
            w->nondet = true;
        }
    } else if (d == &pg_query__type_cast__descriptor) {
        if (type_cast_reads_clock((const PgQuery__TypeCast *)m)) {
            w->nondet = true;
        }
    } else if (d == &pg_query__range_table_sample__descriptor) {
        w->nondet = true; /* TABLESAMPLE: random, and physical layouts differ anyway */
    } else if (d == &pg_query__insert_stmt__descriptor || d == &pg_query__merge_stmt__descriptor) {
        w->unsafe = true;  /* DML anywhere (CTE) ... */
        w->inserts = true; /* ... and a column default (serial, identity) may draw a value */
    } else if (d == &pg_query__update_stmt__descriptor || d == &pg_query__delete_stmt__descriptor ||
               d == &pg_query__into_clause__descriptor) {
        w->unsafe = true; /* DML anywhere (CTE), SELECT INTO */
    } else if (d == &pg_query__do_stmt__descriptor || d == &pg_query__call_stmt__descriptor) {
        w->unsafe = w->user_code = true; /* DO / CALL: code of the user's */
    } else if (d == &pg_query__locking_clause__descriptor) {
        w->locking = true; /* FOR UPDATE/SHARE anywhere: not a read, but changes no data */
    } else if (d == &pg_query__common_table_expr__descriptor) {
        const PgQuery__Node *q = ((const PgQuery__CommonTableExpr *)m)->ctequery;
        if (q == NULL || q->node_case != PG_QUERY__NODE__NODE_SELECT_STMT) {
            w->unsafe = true;
        }
    }
}

void classify_node(const void *node, const struct classify_options *opt,
                   struct classify_node_flags *f)
{
    struct walk w = {.opt = opt};
    visit_message(&w, node);
    f->nondeterministic = f->nondeterministic || w.nondet;
    f->user_code = f->user_code || w.user_code;
}

static void visit_node(void *ctx, const ProtobufCMessage *m)
{
    visit_message(ctx, m);
}

/* Walk one statement's tree; a tree too deep to walk whole is not a read. */
static void walk_statement(struct walk *w, const PgQuery__Node *stmt)
{
    if (!pgq_walk((const ProtobufCMessage *)stmt, visit_node, w)) {
        w->unsafe = true;
    }
}

/* EXPLAIN runs the statement only with ANALYZE; ANALYZE counts as off only when spelled
 * false/off/0 explicitly. */
static bool explain_analyzes(const PgQuery__ExplainStmt *e)
{
    for (size_t i = 0; i < e->n_options; i++) {
        const PgQuery__Node *o = e->options[i];
        if (o == NULL || o->node_case != PG_QUERY__NODE__NODE_DEF_ELEM || o->def_elem == NULL ||
            o->def_elem->defname == NULL || strcmp(o->def_elem->defname, "analyze") != 0) {
            continue;
        }
        const PgQuery__Node *arg = o->def_elem->arg;
        const char *s = node_string(arg);
        bool off = (s != NULL && (strcasecmp(s, "false") == 0 || strcasecmp(s, "off") == 0)) ||
                   (arg != NULL && arg->node_case == PG_QUERY__NODE__NODE_INTEGER &&
                    arg->integer != NULL && arg->integer->ival == 0);
        if (!off) {
            return true;
        }
    }
    return false;
}

static enum classify_txn txn_verb(const PgQuery__Node *n)
{
    if (n == NULL || n->node_case != PG_QUERY__NODE__NODE_TRANSACTION_STMT ||
        n->transaction_stmt == NULL) {
        return CLASSIFY_TXN_NONE;
    }
    switch (n->transaction_stmt->kind) {
    case PG_QUERY__TRANSACTION_STMT_KIND__TRANS_STMT_BEGIN:
    case PG_QUERY__TRANSACTION_STMT_KIND__TRANS_STMT_START:
        return CLASSIFY_TXN_BEGIN;
    case PG_QUERY__TRANSACTION_STMT_KIND__TRANS_STMT_COMMIT:
        return CLASSIFY_TXN_COMMIT;
    case PG_QUERY__TRANSACTION_STMT_KIND__TRANS_STMT_ROLLBACK:
        return CLASSIFY_TXN_ROLLBACK;
    case PG_QUERY__TRANSACTION_STMT_KIND__TRANS_STMT_SAVEPOINT:
        return CLASSIFY_TXN_SAVEPOINT;
    case PG_QUERY__TRANSACTION_STMT_KIND__TRANS_STMT_RELEASE:
        return CLASSIFY_TXN_RELEASE;
    case PG_QUERY__TRANSACTION_STMT_KIND__TRANS_STMT_ROLLBACK_TO:
        return CLASSIFY_TXN_ROLLBACK_TO;
    default:
        return CLASSIFY_TXN_OTHER;
    }
}

static bool copy_client_side(const PgQuery__CopyStmt *c)
{
    return !c->is_program && (c->filename == NULL || c->filename[0] == '\0');
}

/* Is the top-level statement of a kind that may be a read? Also records the per-statement
 * flags. The generic walk decides the rest (functions, INTO, locking, DML in CTEs). */
static bool stmt_may_read(const PgQuery__Node *n, struct classify_result *out)
{
    if (n == NULL) {
        return false;
    }
    switch (n->node_case) {
    case PG_QUERY__NODE__NODE_SELECT_STMT:
    case PG_QUERY__NODE__NODE_VARIABLE_SHOW_STMT:
        return true;
    case PG_QUERY__NODE__NODE_EXPLAIN_STMT:
        return n->explain_stmt != NULL && !explain_analyzes(n->explain_stmt) &&
               stmt_may_read(n->explain_stmt->query, out);
    case PG_QUERY__NODE__NODE_COPY_STMT: {
        const PgQuery__CopyStmt *c = n->copy_stmt;
        if (c == NULL || !copy_client_side(c)) {
            return false; /* server-side file or program: a side effect on the server */
        }
        if (c->is_from) {
            out->is_copy_from = true;
            out->inserts = true; /* COPY FROM fills column defaults too */
            return false;
        }
        out->is_copy_to = true;
        return c->query == NULL || stmt_may_read(c->query, out);
    }
    case PG_QUERY__NODE__NODE_LISTEN_STMT:
    case PG_QUERY__NODE__NODE_UNLISTEN_STMT:
        out->is_listen = true;
        return false;
    default:
        return false;
    }
}

/* Does the statement create or drop a named prepared statement or portal? */
static bool stmt_touches_objects(const PgQuery__Node *n)
{
    if (n == NULL) {
        return false;
    }
    switch (n->node_case) {
    case PG_QUERY__NODE__NODE_PREPARE_STMT:
    case PG_QUERY__NODE__NODE_DEALLOCATE_STMT:
    case PG_QUERY__NODE__NODE_DECLARE_CURSOR_STMT:
    case PG_QUERY__NODE__NODE_CLOSE_PORTAL_STMT:
        return true;
    case PG_QUERY__NODE__NODE_DISCARD_STMT:
        return n->discard_stmt != NULL &&
               n->discard_stmt->target == PG_QUERY__DISCARD_MODE__DISCARD_ALL;
    default:
        return false;
    }
}

static bool stmt_is_dml(const PgQuery__Node *n)
{
    if (n == NULL) {
        return false;
    }
    switch (n->node_case) {
    case PG_QUERY__NODE__NODE_SELECT_STMT:
    case PG_QUERY__NODE__NODE_INSERT_STMT:
    case PG_QUERY__NODE__NODE_UPDATE_STMT:
    case PG_QUERY__NODE__NODE_DELETE_STMT:
    case PG_QUERY__NODE__NODE_MERGE_STMT:
        return true;
    default:
        return false;
    }
}

static bool stmt_catalog_safe(const PgQuery__Node *n);

bool classify_node_catalog_safe(const void *node)
{
    return stmt_catalog_safe(node);
}

/* Does the statement leave the catalog as it was (see classify_result.catalog_safe)? */
static bool stmt_catalog_safe(const PgQuery__Node *n)
{
    if (n == NULL) {
        return false;
    }
    switch (n->node_case) {
    case PG_QUERY__NODE__NODE_SELECT_STMT:
        /* SELECT ... INTO makes a table (one that may shadow a statement's) */
        return !n->select_stmt || !n->select_stmt->into_clause;
    case PG_QUERY__NODE__NODE_INSERT_STMT:
    case PG_QUERY__NODE__NODE_UPDATE_STMT:
    case PG_QUERY__NODE__NODE_DELETE_STMT:
    case PG_QUERY__NODE__NODE_MERGE_STMT:
    case PG_QUERY__NODE__NODE_TRANSACTION_STMT:
    case PG_QUERY__NODE__NODE_VARIABLE_SHOW_STMT:
    case PG_QUERY__NODE__NODE_COPY_STMT:
    case PG_QUERY__NODE__NODE_EXPLAIN_STMT:
    case PG_QUERY__NODE__NODE_LOCK_STMT:
    case PG_QUERY__NODE__NODE_PREPARE_STMT:
    case PG_QUERY__NODE__NODE_EXECUTE_STMT:
    case PG_QUERY__NODE__NODE_DEALLOCATE_STMT:
    case PG_QUERY__NODE__NODE_DECLARE_CURSOR_STMT:
    case PG_QUERY__NODE__NODE_FETCH_STMT:
    case PG_QUERY__NODE__NODE_CLOSE_PORTAL_STMT:
    case PG_QUERY__NODE__NODE_LISTEN_STMT:
    case PG_QUERY__NODE__NODE_UNLISTEN_STMT:
    case PG_QUERY__NODE__NODE_NOTIFY_STMT:
    case PG_QUERY__NODE__NODE_VACUUM_STMT:
    case PG_QUERY__NODE__NODE_CHECK_POINT_STMT:
        return true;
    default:
        return false;
    }
}

static void result_init(struct classify_result *out)
{
    memset(out, 0, sizeof *out);
    out->kind = CLASSIFY_MIRROR;
    out->txn = CLASSIFY_TXN_NONE;
    out->txn_last = CLASSIFY_TXN_NONE;
}

static void classify_tree(const PgQuery__ParseResult *tree, const struct classify_options *opt,
                          struct classify_result *out)
{
    struct walk w = {.opt = opt,
                     .unsafe = false,
                     .nondet = false,
                     .inserts = false,
                     .locking = false,
                     .user_code = false};
    bool all_read = true;
    out->dml_only = tree->n_stmts > 0;
    out->catalog_safe = true;
    bool unsafe_other = false; /* a statement not catalog-safe that is not SET or RESET */
    for (size_t i = 0; i < tree->n_stmts; i++) {
        const PgQuery__Node *stmt = tree->stmts[i] != NULL ? tree->stmts[i]->stmt : NULL;
        unsafe_other =
            unsafe_other || (!stmt_catalog_safe(stmt) &&
                             !(stmt && stmt->node_case == PG_QUERY__NODE__NODE_VARIABLE_SET_STMT));
        if (!stmt_may_read(stmt, out)) {
            all_read = false;
        }
        out->dml_only = out->dml_only && stmt_is_dml(stmt);
        out->catalog_safe = out->catalog_safe && stmt_catalog_safe(stmt);
        out->session_objects = out->session_objects || stmt_touches_objects(stmt);
        enum classify_txn v = txn_verb(stmt);
        if (i == 0) {
            out->txn = v;
        }
        out->txn_last = v;
        out->txn_control = out->txn_control || v != CLASSIFY_TXN_NONE;
        out->commits = out->commits || v == CLASSIFY_TXN_COMMIT || v == CLASSIFY_TXN_OTHER;
        walk_statement(&w, stmt);
    }
    out->nstatements = (int)tree->n_stmts;
    out->nondeterministic = w.nondet;
    out->inserts = out->inserts || w.inserts;
    out->kind = all_read && !w.unsafe && !w.locking ? CLASSIFY_READ : CLASSIFY_MIRROR;
    out->lock_only_read = all_read && !w.unsafe && w.locking;
    out->user_code = w.user_code;
    out->catalog_safe = out->catalog_safe && !w.user_code;
    out->settings_only = !out->catalog_safe && !unsafe_other && !w.user_code;
}

int classify_statement(const char *sql, const struct classify_options *opt,
                       struct classify_result *out)
{
    if (out == NULL) {
        return CLASSIFY_EINVAL;
    }
    result_init(out);
    if (sql == NULL) {
        return CLASSIFY_EINVAL;
    }
    PgQueryProtobufParseResult pr = pg_query_parse_protobuf(sql);
    if (pr.error != NULL) {
        out->parse_error = true;
        pg_query_free_protobuf_parse_result(pr);
        return 0;
    }
    PgQuery__ParseResult *tree = pg_query__parse_result__unpack(
        NULL, pr.parse_tree.len, (const uint8_t *)pr.parse_tree.data);
    pg_query_free_protobuf_parse_result(pr); /* unpack copied everything it needs */
    if (tree == NULL) {
        return CLASSIFY_ENOMEM;
    }
    classify_tree(tree, opt, out);
    pg_query__parse_result__free_unpacked(tree, NULL);

    PgQueryFingerprintResult fr = pg_query_fingerprint(sql);
    if (fr.error == NULL) {
        out->fingerprint = fr.fingerprint;
    }
    pg_query_free_fingerprint_result(fr);
    return 0;
}

bool classify_result_equal(const struct classify_result *a, const struct classify_result *b)
{
    return a->kind == b->kind && a->nondeterministic == b->nondeterministic &&
           a->parse_error == b->parse_error && a->txn_control == b->txn_control &&
           a->txn == b->txn && a->txn_last == b->txn_last && a->is_listen == b->is_listen &&
           a->is_copy_from == b->is_copy_from && a->is_copy_to == b->is_copy_to &&
           a->dml_only == b->dml_only && a->session_objects == b->session_objects &&
           a->commits == b->commits && a->inserts == b->inserts &&
           a->lock_only_read == b->lock_only_read && a->user_code == b->user_code &&
           a->nstatements == b->nstatements && a->fingerprint == b->fingerprint &&
           a->catalog_safe == b->catalog_safe && a->settings_only == b->settings_only;
}

/* Does a WITH list hold a query other than a SELECT (INSERT/UPDATE/DELETE ... RETURNING)? */
static bool modifying_with(const PgQuery__WithClause *wc)
{
    for (size_t i = 0; wc && i < wc->n_ctes; i++) {
        const PgQuery__Node *c = wc->ctes[i];
        const PgQuery__CommonTableExpr *cte =
            c && c->node_case == PG_QUERY__NODE__NODE_COMMON_TABLE_EXPR ? c->common_table_expr
                                                                        : NULL;
        if (!cte || !cte->ctequery ||
            cte->ctequery->node_case != PG_QUERY__NODE__NODE_SELECT_STMT) {
            return true;
        }
    }
    return false;
}

/* The effect of one statement, if it has one: kind and name (NULL for none) into *e. */
static bool stmt_effect(const PgQuery__Node *n, struct classify_effect *e)
{
    const char *name = NULL;
    if (!stmt_touches_objects(n)) {
        return false;
    }
    switch (n->node_case) {
    case PG_QUERY__NODE__NODE_PREPARE_STMT: {
        e->kind = CLASSIFY_EFFECT_PREPARE;
        name = n->prepare_stmt->name;
        const PgQuery__Node *q = n->prepare_stmt->query;
        const PgQuery__SelectStmt *sel =
            q && q->node_case == PG_QUERY__NODE__NODE_SELECT_STMT ? q->select_stmt : NULL;
        e->may_write = !sel || sel->into_clause || modifying_with(sel->with_clause);
        break;
    }
    case PG_QUERY__NODE__NODE_DEALLOCATE_STMT:
        name = n->deallocate_stmt->name;
        e->kind = name && name[0] ? CLASSIFY_EFFECT_DEALLOCATE : CLASSIFY_EFFECT_DEALLOCATE_ALL;
        break;
    case PG_QUERY__NODE__NODE_DISCARD_STMT:
        e->kind = CLASSIFY_EFFECT_DISCARD_ALL;
        break;
    case PG_QUERY__NODE__NODE_DECLARE_CURSOR_STMT:
        e->kind = CLASSIFY_EFFECT_DECLARE;
        name = n->declare_cursor_stmt->portalname;
        break;
    case PG_QUERY__NODE__NODE_CLOSE_PORTAL_STMT:
        name = n->close_portal_stmt->portalname;
        e->kind = name && name[0] ? CLASSIFY_EFFECT_CLOSE : CLASSIFY_EFFECT_CLOSE_ALL;
        break;
    default:
        return false;
    }
    size_t len = name ? strnlen(name, CLASSIFY_NAME_MAX) : 0;
    memcpy(e->name, name ? name : "", len);
    e->name[len] = '\0';
    return true;
}

int classify_effects(const char *sql, struct classify_effect *out, size_t cap, size_t *n)
{
    if (sql == NULL || n == NULL || (out == NULL && cap > 0)) {
        return CLASSIFY_EINVAL;
    }
    *n = 0;
    PgQueryProtobufParseResult pr = pg_query_parse_protobuf(sql);
    if (pr.error != NULL) {
        pg_query_free_protobuf_parse_result(pr);
        return CLASSIFY_EPARSE;
    }
    PgQuery__ParseResult *tree = pg_query__parse_result__unpack(
        NULL, pr.parse_tree.len, (const uint8_t *)pr.parse_tree.data);
    pg_query_free_protobuf_parse_result(pr);
    if (tree == NULL) {
        return CLASSIFY_ENOMEM;
    }
    int rc = 0;
    for (size_t i = 0; i < tree->n_stmts && rc == 0; i++) {
        struct classify_effect e = {.stmt = (int)i};
        if (!stmt_effect(tree->stmts[i] != NULL ? tree->stmts[i]->stmt : NULL, &e)) {
            continue;
        }
        if (*n == cap) {
            rc = CLASSIFY_E2BIG;
        } else {
            out[(*n)++] = e;
        }
    }
    pg_query__parse_result__free_unpacked(tree, NULL);
    return rc;
}

char *classify_normalize(const char *sql)
{
    if (sql == NULL) {
        return NULL;
    }
    PgQueryNormalizeResult nr = pg_query_normalize(sql);
    char *s = NULL;
    if (nr.error == NULL && nr.normalized_query != NULL) {
        s = strdup(nr.normalized_query);
    }
    pg_query_free_normalize_result(nr);
    return s;
}

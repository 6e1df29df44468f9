/* protocol/pin.c: deterministic writes, the statements and bytes (see pin.h). */
#include "protocol/pin.h"

#include <pg_query/pg_query.pb-c.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <pg_query.h>

#include "protocol/pgq_walk.h"
#include "protocol/pqproto.h"

#define JSON_OID 114

/* ---- analysis ------------------------------------------------------------------------------ */

/* What the walk of one statement found below its top node. */
struct pin_walk {
    const struct classify_options *opt;
    struct classify_node_flags f;
    bool order_undefined; /* LIMIT/OFFSET, SKIP LOCKED, ctid */
    bool uses_default;
    int dml;     /* INSERT/UPDATE/DELETE/MERGE nodes, the top one included */
    int inserts; /* ...of which INSERT or MERGE */
};

static const char *node_string(const PgQuery__Node *n)
{
    if (n == NULL || n->node_case != PG_QUERY__NODE__NODE_STRING || n->string == NULL) {
        return NULL;
    }
    return n->string->sval;
}

static void pin_visit(void *ctx, const ProtobufCMessage *m)
{
    struct pin_walk *w = ctx;
    const ProtobufCMessageDescriptor *d = m->descriptor;
    classify_node(m, w->opt, &w->f);
    if (d == &pg_query__select_stmt__descriptor) {
        const PgQuery__SelectStmt *s = (const PgQuery__SelectStmt *)m;
        w->order_undefined = w->order_undefined || s->limit_count || s->limit_offset;
    } else if (d == &pg_query__locking_clause__descriptor) {
        w->order_undefined = w->order_undefined ||
                             ((const PgQuery__LockingClause *)m)->wait_policy ==
                                 PG_QUERY__LOCK_WAIT_POLICY__LockWaitSkip;
    } else if (d == &pg_query__column_ref__descriptor) {
        const PgQuery__ColumnRef *c = (const PgQuery__ColumnRef *)m;
        const char *last = c->n_fields > 0 ? node_string(c->fields[c->n_fields - 1]) : NULL;
        w->order_undefined = w->order_undefined || (last && strcmp(last, "ctid") == 0);
    } else if (d == &pg_query__set_to_default__descriptor) {
        w->uses_default = true;
    } else if (d == &pg_query__insert_stmt__descriptor || d == &pg_query__merge_stmt__descriptor) {
        w->dml++;
        w->inserts++;
    } else if (d == &pg_query__update_stmt__descriptor || d == &pg_query__delete_stmt__descriptor) {
        w->dml++;
    }
}

static void copy_name(pin_name dst, const char *src)
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
    copy_name(st->schema, rv->schemaname);
    copy_name(st->rel, rv->relname);
    copy_name(st->ref, rv->alias && rv->alias->aliasname && rv->alias->aliasname[0]
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
            name = node_string(c);
        }
        copy_name(st->cols[i], name);
    }
    return 0;
}

static int analyze_stmt(const PgQuery__Node *n, const struct classify_options *opt,
                        struct pin_stmt *st)
{
    struct pin_walk w = {.opt = opt};
    bool whole = pgq_walk((const ProtobufCMessage *)n, pin_visit, &w);
    st->nondeterministic = w.f.nondeterministic || w.order_undefined || !whole;
    st->user_code = w.f.user_code;
    st->uses_default = w.uses_default;
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
            st->conflict = s->on_conflict_clause->action ==
                                   PG_QUERY__ON_CONFLICT_ACTION__ONCONFLICT_UPDATE
                               ? PIN_CONFLICT_UPDATE
                               : PIN_CONFLICT_NOTHING;
        }
        rc = s->n_cols > 0 ? set_cols(st, s->cols, s->n_cols) : 0;
        break;
    }
    case PG_QUERY__NODE__NODE_UPDATE_STMT:
        st->verb = PIN_VERB_UPDATE;
        set_target(st, n->update_stmt->relation);
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
    return rc;
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
        rc = analyze_stmt(raw ? raw->stmt : NULL, opt, st);
    }
    pg_query__parse_result__free_unpacked(tree, NULL);
    if (rc != 0) {
        pin_plan_free(out);
    }
    return rc;
}

void pin_plan_free(struct pin_plan *p)
{
    for (int i = 0; i < p->n; i++) {
        free(p->stmts[i].cols);
    }
    free(p->stmts);
    memset(p, 0, sizeof(*p));
}

/* ---- the catalog ---------------------------------------------------------------------------- */

/* An E'' literal: the same under any standard_conforming_strings. */
static void put_escaped_literal(struct wbuf *b, const char *s)
{
    wbuf_put_bytes(b, "E'", 2);
    for (; *s; s++) {
        if (*s == '\'' || *s == '\\') {
            wbuf_put_u8(b, (uint8_t)*s);
        }
        wbuf_put_u8(b, (uint8_t)*s);
    }
    wbuf_put_u8(b, '\'');
}

static void put_str(struct wbuf *b, const char *s)
{
    wbuf_put_bytes(b, s, strlen(s));
}

int pin_catalog_query(const struct pin_stmt *st, struct wbuf *out)
{
    put_str(out,
            "SELECT CASE WHEN n.nspname LIKE E'pg\\\\_temp\\\\_%' THEN 'pg_temp' ELSE "
            "pg_catalog.quote_ident(n.nspname) END || '.' || pg_catalog.quote_ident(c.relname), "
            "CASE WHEN c.relkind NOT IN ('r', 'p') THEN 'not_table' "
            "WHEN c.relhasrules THEN 'rules' "
            "WHEN c.relrowsecurity THEN 'rls' "
            "WHEN c.relkind = 'r' AND c.relhassubclass THEN 'inherits' "
            "WHEN EXISTS (SELECT 1 FROM pg_catalog.pg_trigger g WHERE g.tgenabled <> 'D' AND NOT "
            "g.tgisinternal AND (g.tgrelid = c.oid OR g.tgrelid IN (SELECT relid FROM "
            "pg_catalog.pg_partition_tree(c.oid)))) THEN 'triggers' "
            "WHEN NOT pg_catalog.has_table_privilege(c.oid, 'SELECT') THEN 'no_select' "
            "ELSE '' END, "
            "a.attname, a.attgenerated <> '', a.attidentity <> '', "
            "pg_catalog.pg_get_expr(d.adbin, d.adrelid), COALESCE(a.attnum = ANY (i.indkey), "
            "false), COALESCE((CASE WHEN y.typtype = 'd' THEN y.typbasetype ELSE a.atttypid END) "
            "IN (114, 3802), false) "
            "FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace "
            "LEFT JOIN pg_catalog.pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT "
            "a.attisdropped "
            "LEFT JOIN pg_catalog.pg_attrdef d ON d.adrelid = c.oid AND d.adnum = a.attnum "
            "LEFT JOIN pg_catalog.pg_index i ON i.indrelid = c.oid AND i.indisprimary "
            "LEFT JOIN pg_catalog.pg_type y ON y.oid = a.atttypid "
            "WHERE c.relname = ");
    put_escaped_literal(out, st->rel);
    if (strcmp(st->schema, "pg_temp") == 0) {
        /* The server reads pg_temp as the session's own temporary schema (pg_temp_N). */
        put_str(out, " AND n.oid = pg_catalog.pg_my_temp_schema()");
    } else if (st->schema[0]) {
        put_str(out, " AND n.nspname = ");
        put_escaped_literal(out, st->schema);
    } else {
        put_str(out, " AND pg_catalog.pg_table_is_visible(c.oid)");
    }
    put_str(out, " ORDER BY a.attnum");
    wbuf_put_u8(out, '\0');
    return out->failed ? PIN_ENOMEM : 0;
}

/* Field i of a DataRow (text), copied NUL-terminated into dst (cap bytes, cut); NULL -> *null. */
static int row_field(struct wire_reader *rd, char *dst, size_t cap, bool *null)
{
    uint32_t n = wire_u32(rd);
    if (rd->failed) {
        return PIN_EPROTO;
    }
    *null = n == 0xffffffffu;
    size_t len = *null ? 0 : n;
    const uint8_t *p = len ? wire_bytes(rd, len) : NULL;
    if (rd->failed) {
        return PIN_EPROTO;
    }
    size_t k = len < cap - 1 ? len : cap - 1;
    if (k) {
        memcpy(dst, p, k);
    }
    dst[k] = '\0';
    return 0;
}

/* Why the lookup says no write of the table can be pinned (its code word), or NULL. */
/* Reasons under which the lookup's defaults are not the ones an INSERT fires (a view's base
 * table, the tables a rule writes): pin_decide compares pointers. */
static const char blocked_not_table[] = "it does not write a table (a view or foreign table)";
static const char blocked_rules[] = "its table has rules";

static const char *blocked_reason(const char *code)
{
    static const char *const reasons[][2] = {
        {"not_table", blocked_not_table},
        {"rules", blocked_rules},
        {"rls", "its table has row-level security"},
        {"inherits", "its table has inheritance children"},
        {"triggers", "its table has triggers"},
        {"no_select", "no SELECT privilege on its table (RETURNING needs it)"},
    };
    if (!code[0]) {
        return NULL;
    }
    for (size_t i = 0; i < sizeof(reasons) / sizeof(reasons[0]); i++) {
        if (strcmp(code, reasons[i][0]) == 0) {
            return reasons[i][1];
        }
    }
    return "its table cannot be pinned";
}

/* Does the default expression make up values? Code pgdual does not know might. */
static bool default_is_volatile(const char *expr, const struct classify_options *opt)
{
    size_t n = strlen(expr) + 8;
    char *sql = malloc(n);
    if (!sql) {
        return true;
    }
    snprintf(sql, n, "SELECT %s", expr);
    struct classify_result r;
    bool vol = classify_statement(sql, opt, &r) != 0 || r.parse_error || r.nondeterministic ||
               r.user_code;
    free(sql);
    return vol;
}

int pin_table_add_row(struct pin_table *t, const uint8_t *body, size_t len,
                      const struct classify_options *opt)
{
    struct wire_reader rd;
    wire_reader_init(&rd, body, len);
    if (wire_u16(&rd) != 8) {
        return PIN_EPROTO;
    }
    char qname[sizeof(t->qname)], blocked[16], name[PIN_NAME_MAX + 1];
    char generated[2], identity[2], pk[2], json[2];
    char def[4096];
    bool null_name, null_def, null;
    if (row_field(&rd, qname, sizeof(qname), &null) || row_field(&rd, blocked, sizeof(blocked), &null) ||
        row_field(&rd, name, sizeof(name), &null_name) ||
        row_field(&rd, generated, sizeof(generated), &null) ||
        row_field(&rd, identity, sizeof(identity), &null) ||
        row_field(&rd, def, sizeof(def), &null_def) || row_field(&rd, pk, sizeof(pk), &null) ||
        row_field(&rd, json, sizeof(json), &null)) {
        return PIN_EPROTO;
    }
    t->found = true;
    snprintf(t->qname, sizeof(t->qname), "%s", qname);
    t->blocked = blocked_reason(blocked);
    if (null_name) {
        return 0; /* a table without columns */
    }
    struct pin_column *cols = realloc(t->cols, ((size_t)t->ncols + 1) * sizeof(*cols));
    if (!cols) {
        return PIN_ENOMEM;
    }
    t->cols = cols;
    struct pin_column *c = &cols[t->ncols++];
    memset(c, 0, sizeof(*c));
    copy_name(c->name, name);
    c->generated = generated[0] == 't';
    c->pk = pk[0] == 't';
    c->json = json[0] == 't';
    /* A default too long to read here is taken as volatile (when in doubt, pin). A generated
     * column's expression is no default: the server requires it immutable, and the secondary
     * computes it again from the row (a function of the user's there is not a value made up). */
    c->volatile_default =
        identity[0] == 't' || (!null_def && !c->generated &&
                               (strlen(def) >= sizeof(def) - 1 || default_is_volatile(def, opt)));
    t->npk += c->pk;
    return 0;
}

int pin_table_copy(struct pin_table *dst, const struct pin_table *src)
{
    *dst = *src;
    dst->cols = NULL;
    if (src->ncols > 0) {
        dst->cols = malloc((size_t)src->ncols * sizeof(*dst->cols));
        if (!dst->cols) {
            memset(dst, 0, sizeof(*dst));
            return PIN_ENOMEM;
        }
        memcpy(dst->cols, src->cols, (size_t)src->ncols * sizeof(*dst->cols));
    }
    return 0;
}

void pin_table_free(struct pin_table *t)
{
    free(t->cols);
    memset(t, 0, sizeof(*t));
}

/* ---- the decision ---------------------------------------------------------------------------- */

static bool stmt_names_col(const struct pin_stmt *st, const char *col)
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
        if (c->volatile_default && (st->ncols < 0 || !stmt_names_col(st, c->name))) {
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

static const struct pin_column *find_col(const struct pin_table *t, const char *name)
{
    for (int i = 0; i < t->ncols; i++) {
        if (strcmp(t->cols[i].name, name) == 0) {
            return &t->cols[i];
        }
    }
    return NULL;
}

enum pin_need pin_decide(const struct pin_stmt *st, const struct pin_table *t, const char **why)
{
    *why = NULL;
    bool known = t && t->found;
    if (st->nested_dml) {
        /* pgdual cannot see the rows of a write inside another statement: fine as long as
         * nothing in it makes up values. An INSERT inside may fire defaults of a table pgdual
         * did not look up. */
        bool fills = (st->verb == PIN_VERB_INSERT || st->verb == PIN_VERB_MERGE) &&
                     (!known || defaults_fire(st, t));
        if (st->nondeterministic || st->uses_default || st->nested_insert || fills) {
            *why = "a write nested in another statement (a WITH query, SQL PREPARE, EXPLAIN ANALYZE)";
            return PIN_IMPOSSIBLE;
        }
        return PIN_NOT_NEEDED;
    }
    if (st->verb == PIN_VERB_NONE) {
        return PIN_NOT_NEEDED;
    }
    bool fills = st->verb == PIN_VERB_INSERT || st->verb == PIN_VERB_COPY ||
                 st->verb == PIN_VERB_MERGE;
    bool need = st->nondeterministic || st->uses_default;
    if (fills && !need) {
        if (t == NULL) {
            *why = "the table's defaults are unknown (no catalog lookup possible here)";
            return PIN_IMPOSSIBLE;
        }
        if (known && (t->blocked == blocked_not_table || t->blocked == blocked_rules)) {
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
    } else if (st->user_code) {
        *why = "it calls a function pgdual does not know";
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
        const struct pin_column *c = find_col(t, st->cols[i]);
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
    return *why ? PIN_IMPOSSIBLE : PIN_NEEDED;
}

/* ---- the shape: what is appended, what the secondary runs ------------------------------------ */

static void put_ident(struct wbuf *b, const char *s)
{
    wbuf_put_u8(b, '"');
    for (; *s; s++) {
        if (*s == '"') {
            wbuf_put_u8(b, '"');
        }
        wbuf_put_u8(b, (uint8_t)*s);
    }
    wbuf_put_u8(b, '"');
}

static int add_key(struct pin_shape *sh, const struct pin_column *c)
{
    for (int i = 0; i < sh->m; i++) {
        if (strcmp(sh->keys[i], c->name) == 0) {
            return 0;
        }
    }
    copy_name(sh->keys[sh->m], c->name);
    sh->json[sh->m] = c->json;
    sh->m++;
    return 0;
}

/* Which columns come back: INSERT every column it stores; UPDATE the key and what it sets;
 * DELETE the key. */
static void choose_keys(struct pin_shape *sh, const struct pin_stmt *st, const struct pin_table *t)
{
    for (int i = 0; i < t->ncols; i++) {
        const struct pin_column *c = &t->cols[i];
        if ((st->verb == PIN_VERB_INSERT && !c->generated) || (st->verb != PIN_VERB_INSERT && c->pk)) {
            add_key(sh, c);
        }
    }
    for (int i = 0; st->verb == PIN_VERB_UPDATE && i < st->ncols; i++) {
        const struct pin_column *c = find_col(t, st->cols[i]);
        if (c) {
            add_key(sh, c);
        }
    }
}

static void put_key_list(struct wbuf *b, const struct pin_shape *sh, const char *qualifier)
{
    for (int i = 0; i < sh->m; i++) {
        if (i) {
            put_str(b, ", ");
        }
        if (qualifier) {
            put_ident(b, qualifier);
            wbuf_put_u8(b, '.');
        }
        put_ident(b, sh->keys[i]);
    }
}

/* The target as the client's statement names it: both sides resolve it the same way (their
 * search_path is mirrored), a temporary table included. */
static void put_target(struct wbuf *b, const struct pin_stmt *st)
{
    if (st->schema[0]) {
        put_ident(b, st->schema);
        wbuf_put_u8(b, '.');
    }
    put_ident(b, st->rel);
}

static void put_source(struct wbuf *b, const struct pin_stmt *st)
{
    put_str(b, "pg_catalog.json_populate_recordset(NULL::");
    put_target(b, st);
    put_str(b, ", ");
}

/* WHERE "pgdual_t".pk = "pgdual_v".pk AND ... */
static void put_key_match(struct wbuf *b, const struct pin_table *t)
{
    put_str(b, ") AS \"pgdual_v\" WHERE ");
    bool first = true;
    for (int i = 0; i < t->ncols; i++) {
        if (!t->cols[i].pk) {
            continue;
        }
        put_str(b, first ? "" : " AND ");
        first = false;
        put_str(b, "\"pgdual_t\".");
        put_ident(b, t->cols[i].name);
        put_str(b, " = \"pgdual_v\".");
        put_ident(b, t->cols[i].name);
    }
}

static void put_conflict(struct wbuf *b, const struct pin_stmt *st, const struct pin_table *t)
{
    if (st->conflict == PIN_CONFLICT_NOTHING) {
        put_str(b, " ON CONFLICT DO NOTHING");
        return;
    }
    if (st->conflict != PIN_CONFLICT_UPDATE) {
        return;
    }
    put_str(b, " ON CONFLICT (");
    bool first = true;
    for (int i = 0; i < t->ncols; i++) {
        if (t->cols[i].pk) {
            put_str(b, first ? "" : ", ");
            first = false;
            put_ident(b, t->cols[i].name);
        }
    }
    /* The primary's final row: every stored column (a key column alone if there is no other,
     * so the row still counts in the tag as it did on the primary). */
    put_str(b, ") DO UPDATE SET ");
    first = true;
    for (int pass = 0; pass < 2 && first; pass++) {
        for (int i = 0; i < t->ncols; i++) {
            const struct pin_column *c = &t->cols[i];
            if (c->generated || (pass == 0 && c->pk) || (pass == 1 && !c->pk)) {
                continue;
            }
            put_str(b, first ? "" : ", ");
            first = false;
            put_ident(b, c->name);
            put_str(b, " = EXCLUDED.");
            put_ident(b, c->name);
            if (pass == 1) {
                break;
            }
        }
    }
}

static char *wbuf_take_string(struct wbuf *b)
{
    wbuf_put_u8(b, '\0');
    if (b->failed) {
        wbuf_free(b);
        return NULL;
    }
    char *s = (char *)b->data;
    wbuf_init(b);
    return s;
}

static int build_texts(struct pin_shape *sh, const struct pin_stmt *st, const struct pin_table *t)
{
    struct wbuf r, h, tl;
    wbuf_init(&r);
    wbuf_init(&h);
    wbuf_init(&tl);
    /* A newline first: the statement may end inside a line comment. */
    put_str(&r, st->client_returning ? "\n, " : "\nRETURNING ");
    put_key_list(&r, sh, st->ref);
    switch (st->verb) {
    case PIN_VERB_INSERT:
        put_str(&h, "INSERT INTO ");
        put_target(&h, st);
        put_str(&h, " (");
        put_key_list(&h, sh, NULL);
        put_str(&h, ") OVERRIDING SYSTEM VALUE SELECT ");
        put_key_list(&h, sh, NULL);
        put_str(&h, " FROM ");
        put_source(&h, st);
        put_str(&tl, ")");
        put_conflict(&tl, st, t);
        break;
    case PIN_VERB_UPDATE:
        put_str(&h, "UPDATE ");
        put_target(&h, st);
        put_str(&h, " AS \"pgdual_t\" SET ");
        for (int i = 0, first = 1; i < sh->m; i++) {
            const struct pin_column *c = find_col(t, sh->keys[i]);
            if (c && c->pk && !stmt_names_col(st, c->name)) {
                continue; /* the key matches rows; it is not set */
            }
            put_str(&h, first ? "" : ", ");
            first = 0;
            put_ident(&h, sh->keys[i]);
            put_str(&h, " = \"pgdual_v\".");
            put_ident(&h, sh->keys[i]);
        }
        put_str(&h, " FROM ");
        put_source(&h, st);
        put_key_match(&tl, t);
        break;
    default: /* DELETE */
        put_str(&h, "DELETE FROM ");
        put_target(&h, st);
        put_str(&h, " AS \"pgdual_t\" USING ");
        put_source(&h, st);
        put_key_match(&tl, t);
        break;
    }
    sh->returning = wbuf_take_string(&r);
    sh->head = wbuf_take_string(&h);
    sh->tail = wbuf_take_string(&tl);
    return sh->returning && sh->head && sh->tail ? 0 : PIN_ENOMEM;
}

struct pin_shape *pin_shape_new(const struct pin_stmt *st, const struct pin_table *t)
{
    struct pin_shape *sh = calloc(1, sizeof(*sh));
    if (!sh) {
        return NULL;
    }
    sh->refs = 1;
    sh->verb = st->verb;
    sh->client_returning = st->client_returning;
    size_t cap = (size_t)t->ncols + 1;
    sh->keys = calloc(cap, sizeof(*sh->keys));
    sh->json = calloc(cap, sizeof(*sh->json));
    if (!sh->keys || !sh->json) {
        pin_shape_unref(sh);
        return NULL;
    }
    choose_keys(sh, st, t);
    if (sh->m == 0 || build_texts(sh, st, t) < 0) {
        pin_shape_unref(sh);
        return NULL;
    }
    return sh;
}

struct pin_shape *pin_shape_ref(struct pin_shape *sh)
{
    if (sh) {
        sh->refs++;
    }
    return sh;
}

void pin_shape_unref(struct pin_shape *sh)
{
    if (!sh || --sh->refs > 0) {
        return;
    }
    free(sh->keys);
    free(sh->json);
    free(sh->returning);
    free(sh->head);
    free(sh->tail);
    free(sh);
}

int pin_primary_text(const char *sql, const struct pin_plan *plan,
                     struct pin_shape *const *shapes, struct wbuf *out)
{
    size_t at = 0, len = strlen(sql);
    for (int i = 0; i < plan->n; i++) {
        const struct pin_stmt *st = &plan->stmts[i];
        if (!shapes[i]) {
            continue;
        }
        if (st->end < at || st->end > len) {
            return PIN_ESHAPE;
        }
        wbuf_put_bytes(out, sql + at, st->end - at);
        put_str(out, shapes[i]->returning);
        at = st->end;
    }
    wbuf_put_bytes(out, sql + at, len - at);
    wbuf_put_u8(out, '\0');
    return out->failed ? PIN_ENOMEM : 0;
}

/* ---- the primary's reply ---------------------------------------------------------------------- */

/* Offset (in body) just past the first k of a RowDescription's fields, or 0 on a bad shape. */
static size_t row_description_prefix(const uint8_t *body, size_t len, int k)
{
    struct wire_reader rd;
    wire_reader_init(&rd, body, len);
    (void)wire_u16(&rd);
    for (int i = 0; i < k && !rd.failed; i++) {
        (void)wire_cstr(&rd);
        (void)wire_bytes(&rd, 18); /* table oid, attnum, type oid, typlen, typmod, format */
    }
    return rd.failed ? 0 : rd.off;
}

int pin_strip_row_description(const uint8_t *body, size_t len, int m, bool nodata_if_empty,
                              struct wbuf *out)
{
    if (len < 2) {
        return PIN_EPROTO;
    }
    int n = body[0] << 8 | body[1];
    if (n < m) {
        return PIN_EPROTO;
    }
    int k = n - m;
    if (k == 0) {
        if (nodata_if_empty) {
            size_t at = wbuf_begin_msg(out, PqMsg_NoData);
            wbuf_end_msg(out, at);
        }
        return out->failed ? PIN_ENOMEM : 0;
    }
    size_t end = row_description_prefix(body, len, k);
    if (end == 0) {
        return PIN_EPROTO;
    }
    size_t at = wbuf_begin_msg(out, PqMsg_RowDescription);
    wbuf_put_u16(out, (uint16_t)k);
    wbuf_put_bytes(out, body + 2, end - 2);
    wbuf_end_msg(out, at);
    return out->failed ? PIN_ENOMEM : 0;
}

/* Offset just past the first k values of a DataRow, or 0 on a bad shape. */
static size_t data_row_prefix(const uint8_t *body, size_t len, int k)
{
    struct wire_reader rd;
    wire_reader_init(&rd, body, len);
    (void)wire_u16(&rd);
    for (int i = 0; i < k && !rd.failed; i++) {
        uint32_t n = wire_u32(&rd);
        if (n != 0xffffffffu) {
            (void)wire_bytes(&rd, n);
        }
    }
    return rd.failed ? 0 : rd.off;
}

int pin_strip_data_row(const uint8_t *body, size_t len, int m, struct wbuf *out)
{
    if (len < 2) {
        return PIN_EPROTO;
    }
    int n = body[0] << 8 | body[1];
    if (n < m) {
        return PIN_EPROTO;
    }
    int k = n - m;
    if (k == 0) {
        return 0;
    }
    size_t end = data_row_prefix(body, len, k);
    if (end == 0) {
        return PIN_EPROTO;
    }
    size_t at = wbuf_begin_msg(out, PqMsg_DataRow);
    wbuf_put_u16(out, (uint16_t)k);
    wbuf_put_bytes(out, body + 2, end - 2);
    wbuf_end_msg(out, at);
    return out->failed ? PIN_ENOMEM : 0;
}

static void put_json_string(struct wbuf *b, const uint8_t *p, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    wbuf_reserve(b, n + 2);
    wbuf_put_u8(b, '"');
    for (size_t i = 0; i < n; i++) {
        uint8_t c = p[i];
        if (c == '"' || c == '\\') {
            wbuf_put_u8(b, '\\');
            wbuf_put_u8(b, c);
        } else if (c < 0x20) {
            char e[6] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 15]};
            wbuf_put_bytes(b, e, sizeof(e));
        } else {
            wbuf_put_u8(b, c);
        }
    }
    wbuf_put_u8(b, '"');
}

int pin_rows_add(struct wbuf *rows, const struct pin_shape *sh, const uint8_t *body, size_t len)
{
    if (len < 2) {
        return PIN_EPROTO;
    }
    int n = body[0] << 8 | body[1];
    if (n < sh->m) {
        return PIN_EPROTO;
    }
    size_t off = n == sh->m ? 2 : data_row_prefix(body, len, n - sh->m);
    if (off == 0) {
        return PIN_EPROTO;
    }
    struct wire_reader rd;
    wire_reader_init(&rd, body + off, len - off);
    wbuf_put_u8(rows, rows->len == 0 ? '[' : ',');
    wbuf_put_u8(rows, '{');
    for (int i = 0; i < sh->m; i++) {
        uint32_t vlen = wire_u32(&rd);
        bool null = vlen == 0xffffffffu;
        const uint8_t *v = null || vlen == 0 ? NULL : wire_bytes(&rd, vlen);
        if (rd.failed) {
            return PIN_EPROTO;
        }
        if (i) {
            wbuf_put_u8(rows, ',');
        }
        put_json_string(rows, (const uint8_t *)sh->keys[i], strlen(sh->keys[i]));
        wbuf_put_u8(rows, ':');
        if (null) {
            put_str(rows, "null");
        } else if (sh->json[i]) {
            wbuf_put_bytes(rows, v, vlen); /* the server's own JSON text */
        } else {
            put_json_string(rows, v, null ? 0 : vlen);
        }
    }
    wbuf_put_u8(rows, '}');
    return rows->failed ? PIN_ENOMEM : 0;
}

void pin_rows_close(struct wbuf *rows)
{
    if (rows->len == 0) {
        wbuf_put_u8(rows, '[');
    }
    wbuf_put_u8(rows, ']');
}

/* ---- what the secondary runs ------------------------------------------------------------------ */

int pin_substitute_query(const uint8_t *msg, size_t len, const struct pin_subst *s, size_t n,
                         struct wbuf *out)
{
    if (len < 6 || msg[0] != PqMsg_Query || msg[len - 1] != '\0') {
        return PIN_ESHAPE;
    }
    const char *text = (const char *)msg + 5;
    size_t text_len = len - 6, at = 0;
    size_t m = wbuf_begin_msg(out, PqMsg_Query);
    for (size_t i = 0; i < n; i++) {
        if (s[i].start < at || s[i].end < s[i].start || s[i].end > text_len) {
            return PIN_ESHAPE;
        }
        wbuf_put_bytes(out, text + at, s[i].start - at);
        put_str(out, s[i].shape->head);
        wbuf_put_u8(out, '\''); /* standard_conforming_strings is on (else nothing is pinned) */
        for (size_t k = 0; k < s[i].rows->len; k++) {
            uint8_t c = s[i].rows->data[k];
            if (c == '\'') {
                wbuf_put_u8(out, c);
            }
            wbuf_put_u8(out, c);
        }
        wbuf_put_u8(out, '\'');
        put_str(out, s[i].shape->tail);
        at = s[i].end;
    }
    wbuf_put_bytes(out, text + at, text_len - at);
    wbuf_put_u8(out, '\0');
    wbuf_end_msg(out, m);
    return out->failed ? PIN_ENOMEM : 0;
}

static void put_close(struct wbuf *b, uint8_t what)
{
    size_t at = wbuf_begin_msg(b, PqMsg_Close);
    wbuf_put_u8(b, what);
    wbuf_put_cstr(b, PIN_SECONDARY_NAME);
    wbuf_end_msg(b, at);
}

static void put_pinned_execute(struct wbuf *b, const struct pin_subst *s)
{
    put_close(b, 'P');
    put_close(b, 'S');
    size_t at = wbuf_begin_msg(b, PqMsg_Parse);
    wbuf_put_cstr(b, PIN_SECONDARY_NAME);
    put_str(b, s->shape->head);
    put_str(b, "$1");
    wbuf_put_cstr(b, s->shape->tail);
    wbuf_put_u16(b, 1);
    wbuf_put_u32(b, JSON_OID);
    wbuf_end_msg(b, at);
    at = wbuf_begin_msg(b, PqMsg_Bind);
    wbuf_put_cstr(b, PIN_SECONDARY_NAME);
    wbuf_put_cstr(b, PIN_SECONDARY_NAME);
    wbuf_put_u16(b, 1);
    wbuf_put_u16(b, 0); /* text */
    wbuf_put_u16(b, 1);
    wbuf_put_u32(b, (uint32_t)s->rows->len);
    wbuf_put_bytes(b, s->rows->data, s->rows->len);
    wbuf_put_u16(b, 0);
    wbuf_end_msg(b, at);
    at = wbuf_begin_msg(b, PqMsg_Execute);
    wbuf_put_cstr(b, PIN_SECONDARY_NAME);
    wbuf_put_u32(b, 0);
    wbuf_end_msg(b, at);
}

int pin_substitute_batch(const uint8_t *msgs, size_t len, const struct pin_subst *s, size_t n,
                         struct wbuf *out)
{
    size_t off = 0, next = 0;
    uint32_t executes = 0;
    struct wire_msg m;
    while (off < len) {
        if (wire_next_msg(msgs, len, &off, &m) < 0) {
            return PIN_ESHAPE;
        }
        if (m.type == PqMsg_Execute) {
            if (next < n && s[next].index == executes) {
                put_pinned_execute(out, &s[next++]);
                executes++;
                continue;
            }
            executes++;
        }
        wbuf_put_bytes(out, m.whole, m.whole_len);
    }
    if (next != n) {
        return PIN_ESHAPE;
    }
    return out->failed ? PIN_ENOMEM : 0;
}

/* protocol/pin_cte.c: data-modifying WITH queries (see pin.h). PostgreSQL runs every one exactly
 * once, read or not, so their rows cannot ride in the statement's own reply (it may return none).
 * The primary gets each WITH query `x AS (write RETURNING list)` as two: `"pgdual_cN" AS (write
 * RETURNING ref.*)`, the whole rows, and `x AS (SELECT list FROM "pgdual_cN" AS ref)`, the same
 * columns the client asked for; one more of pgdual's, `"pgdual_r"`, records the rows as JSON in
 * pgdual's temporary table, which pgdual reads back right after. The secondary gets the same two
 * with the write replaced by its deterministic version over those rows. Pure. */
#include <pg_query/pg_query.pb-c.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <pg_query.h>

#include "protocol/pgq_walk.h"
#include "protocol/pin.h"
#include "protocol/pin_internal.h"

/* ---- analysis -------------------------------------------------------------------------------- */

static PgQuery__WithClause *with_of(const PgQuery__Node *n)
{
    switch (n ? n->node_case : PG_QUERY__NODE__NODE__NOT_SET) {
    case PG_QUERY__NODE__NODE_SELECT_STMT:
        return n->select_stmt->with_clause;
    case PG_QUERY__NODE__NODE_INSERT_STMT:
        return n->insert_stmt->with_clause;
    case PG_QUERY__NODE__NODE_UPDATE_STMT:
        return n->update_stmt->with_clause;
    case PG_QUERY__NODE__NODE_DELETE_STMT:
        return n->delete_stmt->with_clause;
    default:
        return NULL;
    }
}

static const PgQuery__CommonTableExpr *cte_of(const PgQuery__Node *n)
{
    return n && n->node_case == PG_QUERY__NODE__NODE_COMMON_TABLE_EXPR ? n->common_table_expr
                                                                       : NULL;
}

static bool is_write(const PgQuery__Node *q)
{
    return q && (q->node_case == PG_QUERY__NODE__NODE_INSERT_STMT ||
                 q->node_case == PG_QUERY__NODE__NODE_UPDATE_STMT ||
                 q->node_case == PG_QUERY__NODE__NODE_DELETE_STMT ||
                 q->node_case == PG_QUERY__NODE__NODE_MERGE_STMT);
}

struct tokens {
    PgQuery__ScanToken **t;
    size_t n;
};

static bool is_tok(const struct tokens *tk, size_t i, PgQuery__Token want)
{
    return i < tk->n && tk->t[i]->token == want;
}

/* The token closing the parenthesis opened at token i, or tk->n. */
static size_t matching(const struct tokens *tk, size_t i)
{
    int depth = 0;
    for (; i < tk->n; i++) {
        depth += tk->t[i]->token == PG_QUERY__TOKEN__ASCII_40;
        depth -= tk->t[i]->token == PG_QUERY__TOKEN__ASCII_41;
        if (depth == 0) {
            return i;
        }
    }
    return tk->n;
}

/* The body's parentheses of the WITH query named at byte loc (tokens of open and close). */
static bool place_body(const struct tokens *tk, size_t loc, size_t *open, size_t *close)
{
    size_t i = 0;
    while (i < tk->n && (size_t)tk->t[i]->start < loc) {
        i++;
    }
    if (i >= tk->n || (size_t)tk->t[i]->start != loc) {
        return false;
    }
    i++;
    if (is_tok(tk, i, PG_QUERY__TOKEN__ASCII_40)) {
        i = matching(tk, i) + 1; /* the column names */
    }
    if (!is_tok(tk, i++, PG_QUERY__TOKEN__AS)) {
        return false;
    }
    i += is_tok(tk, i, PG_QUERY__TOKEN__NOT);
    i += is_tok(tk, i, PG_QUERY__TOKEN__MATERIALIZED);
    if (!is_tok(tk, i, PG_QUERY__TOKEN__ASCII_40)) {
        return false;
    }
    *open = i;
    *close = matching(tk, i);
    return *close < tk->n;
}

/* What the client's RETURNING list reads. */
struct list_walk {
    const char *ref;
    bool bad;
};

static void list_visit(void *ctx, const ProtobufCMessage *m)
{
    static const char *const sys[] = {"ctid", "xmin", "xmax", "cmin", "cmax", "tableoid"};
    struct list_walk *w = ctx;
    if (m->descriptor == &pg_query__func_call__descriptor ||
        m->descriptor == &pg_query__sub_link__descriptor) {
        /* A call or a subquery: in RETURNING PostgreSQL refuses aggregates, window and
         * set-returning functions, in the copy's SELECT list it would take them; and pgdual
         * cannot tell them apart without the catalog. */
        w->bad = true;
        return;
    }
    if (m->descriptor != &pg_query__column_ref__descriptor) {
        return;
    }
    const PgQuery__ColumnRef *c = (const PgQuery__ColumnRef *)m;
    if (c->n_fields >= 3) {
        w->bad = true; /* schema.table.column: the copy is named ref alone */
    }
    for (size_t i = 0; i < c->n_fields; i++) {
        const PgQuery__Node *f = c->fields[i];
        const char *name =
            f && f->node_case == PG_QUERY__NODE__NODE_STRING && f->string ? f->string->sval : NULL;
        for (size_t k = 0; name && k < sizeof(sys) / sizeof(sys[0]); k++) {
            w->bad = w->bad || strcmp(name, sys[k]) == 0;
        }
        /* the whole row (`ref`): the copy's row is a record, not the table's type */
        w->bad = w->bad || (c->n_fields == 1 && name && strcmp(name, w->ref) == 0);
    }
}

static bool list_reads_row_only(const PgQuery__Node *q, const char *ref)
{
    PgQuery__Node **list = NULL;
    size_t n = 0;
    switch (q->node_case) {
    case PG_QUERY__NODE__NODE_INSERT_STMT:
        list = q->insert_stmt->returning_list;
        n = q->insert_stmt->n_returning_list;
        break;
    case PG_QUERY__NODE__NODE_UPDATE_STMT:
        if (q->update_stmt->n_from_clause) {
            return false;
        }
        list = q->update_stmt->returning_list;
        n = q->update_stmt->n_returning_list;
        break;
    case PG_QUERY__NODE__NODE_DELETE_STMT:
        if (q->delete_stmt->n_using_clause) {
            return false;
        }
        list = q->delete_stmt->returning_list;
        n = q->delete_stmt->n_returning_list;
        break;
    default:
        return false;
    }
    struct list_walk w = {.ref = ref};
    for (size_t i = 0; i < n && !w.bad; i++) {
        bool whole = pgq_walk((const ProtobufCMessage *)list[i], list_visit, &w);
        w.bad = w.bad || !whole;
    }
    return !w.bad;
}

/* The relations a statement names, and the names of its WITH queries (anywhere in it). */
#define REL_MAX 32
struct rel_walk {
    struct pin_relname rels[REL_MAX];
    int nrels;
    /* The top-level WITH queries' names a reference in the part walked now may mean. */
    const pin_name *visible;
    int nvisible;
    /* The write targets met (never a WITH query's name), by node. */
    const PgQuery__RangeVar *targets[REL_MAX];
    int ntargets;
    int nested; /* WITH queries met in the parts walked: any is one of a nested WITH */
    bool full;
};

static void add_target(struct rel_walk *w, const PgQuery__RangeVar *rv)
{
    if (!rv) {
        return;
    }
    if (w->ntargets == REL_MAX) {
        w->full = true;
        return;
    }
    w->targets[w->ntargets++] = rv;
}

static bool is_target(const struct rel_walk *w, const PgQuery__RangeVar *rv)
{
    for (int i = 0; i < w->ntargets; i++) {
        if (w->targets[i] == rv) {
            return true;
        }
    }
    return false;
}

static void rel_visit(void *ctx, const ProtobufCMessage *m)
{
    struct rel_walk *w = ctx;
    const ProtobufCMessageDescriptor *d = m->descriptor;
    /* The walk meets a statement before its target. */
    const PgQuery__RangeVar *target = pin_dml_target(m);
    if (target) {
        add_target(w, target);
    } else if (d == &pg_query__common_table_expr__descriptor) {
        w->nested++;
    }
    if (d != &pg_query__range_var__descriptor) {
        return;
    }
    const PgQuery__RangeVar *rv = (const PgQuery__RangeVar *)m;
    if (!rv->relname || (rv->catalogname && rv->catalogname[0])) {
        w->full = true; /* db.schema.rel: left to the server */
        return;
    }
    struct pin_relname r;
    pin_copy_name(r.schema, rv->schemaname);
    pin_copy_name(r.rel, rv->relname);
    for (int k = 0; !r.schema[0] && !is_target(w, rv) && k < w->nvisible; k++) {
        if (strcmp(r.rel, w->visible[k]) == 0) {
            return; /* the WITH query of that name */
        }
    }
    for (int i = 0; i < w->nrels; i++) {
        if (strcmp(w->rels[i].schema, r.schema) == 0 && strcmp(w->rels[i].rel, r.rel) == 0) {
            return;
        }
    }
    if (w->nrels == REL_MAX) {
        w->full = true;
        return;
    }
    w->rels[w->nrels++] = r;
}

/* st->rels: every relation the statement node names, but where a name means one of its top-level
 * WITH queries: in the statement itself, and in the WITH queries after that one (or any, WITH
 * RECURSIVE). A write's target is a relation whatever its name. A WITH nested in a subquery is not
 * followed: rels_failed (its scope is not walked apart). */
static int list_relations(const PgQuery__Node *n, PgQuery__WithClause *wc, struct pin_stmt *st)
{
    struct rel_walk *w = calloc(1, sizeof(*w));
    pin_name *names = calloc(wc->n_ctes + 1, sizeof(*names));
    if (!w || !names) {
        free(w);
        free(names);
        return PIN_ENOMEM;
    }
    for (size_t i = 0; i < wc->n_ctes; i++) {
        const PgQuery__CommonTableExpr *cte = cte_of(wc->ctes[i]);
        pin_copy_name(names[i], cte ? cte->ctename : NULL);
    }
    bool whole = true;
    w->visible = (const pin_name *)names;
    for (size_t i = 0; i < wc->n_ctes; i++) {
        const PgQuery__CommonTableExpr *cte = cte_of(wc->ctes[i]);
        w->nvisible = wc->recursive ? (int)wc->n_ctes : (int)i;
        whole = whole && cte && pgq_walk((const ProtobufCMessage *)cte->ctequery, rel_visit, w);
    }
    /* the statement itself, its WITH list aside */
    PgQuery__Node **ctes = wc->ctes;
    size_t nctes = wc->n_ctes;
    wc->ctes = NULL;
    wc->n_ctes = 0;
    w->nvisible = (int)nctes;
    whole = whole && pgq_walk((const ProtobufCMessage *)n, rel_visit, w);
    wc->ctes = ctes;
    wc->n_ctes = nctes;
    st->rels_failed = !whole || w->full || w->nested > 0;
    st->rels = calloc((size_t)w->nrels + 1, sizeof(*st->rels));
    if (st->rels) {
        memcpy(st->rels, w->rels, (size_t)w->nrels * sizeof(*st->rels));
        st->nrels = w->nrels;
    }
    free(w);
    free(names);
    return st->rels ? 0 : PIN_ENOMEM;
}

/* Does text hold name anywhere, in any case (when in doubt, it does)? */
static bool text_mentions(const char *text, const char *name)
{
    size_t n = name ? strlen(name) : 0;
    for (const char *p = text; n > 0 && *p; p++) {
        if (strncasecmp(p, name, n) == 0) {
            return true;
        }
    }
    return n == 0;
}

/* Place every WITH query (bodies, RETURNING lists) with the scanner's tokens; the writes go to
 * st->ctes. */
static int place_ctes(const PgQuery__WithClause *wc, const char *sql,
                      const struct classify_options *opt, struct pin_stmt *st, bool *ok)
{
    PgQueryScanResult sr = pg_query_scan(sql);
    PgQuery__ScanResult *scan =
        sr.error ? NULL
                 : pg_query__scan_result__unpack(NULL, sr.pbuf.len, (const uint8_t *)sr.pbuf.data);
    pg_query_free_scan_result(sr);
    *ok = scan != NULL;
    struct tokens tk = {scan ? scan->tokens : NULL, scan ? scan->n_tokens : 0};
    int rc = 0;
    st->ctes = calloc(wc->n_ctes, sizeof(*st->ctes));
    if (!st->ctes) {
        rc = PIN_ENOMEM;
    }
    for (size_t i = 0; *ok && rc == 0 && i < wc->n_ctes; i++) {
        const PgQuery__CommonTableExpr *cte = cte_of(wc->ctes[i]);
        size_t open = 0, close = 0;
        *ok = cte && cte->location >= 0 && place_body(&tk, (size_t)cte->location, &open, &close);
        if (!*ok) {
            break;
        }
        st->with_end = (size_t)tk.t[close]->end;
        if (i + 1 == wc->n_ctes && (cte->search_clause || cte->cycle_clause)) {
            *ok = false; /* the WITH list ends after them */
            break;
        }
        if (!is_write(cte->ctequery)) {
            continue;
        }
        struct pin_cte *c = &st->ctes[st->nctes++];
        c->name_at = (size_t)cte->location;
        c->open = (size_t)tk.t[open]->start;
        c->close = (size_t)tk.t[close]->start;
        int depth = 0;
        for (size_t k = open + 1; k < close; k++) {
            depth += tk.t[k]->token == PG_QUERY__TOKEN__ASCII_40;
            depth -= tk.t[k]->token == PG_QUERY__TOKEN__ASCII_41;
            if (depth == 0 && tk.t[k]->token == PG_QUERY__TOKEN__RETURNING && k + 1 < close) {
                c->ret_at = (size_t)tk.t[k]->start;
                c->list_at = (size_t)tk.t[k + 1]->start;
            }
        }
        rc = pin_analyze_node(cte->ctequery, opt, &c->st);
        c->st.in_cte = true;
        c->st.start = c->open + 1;
        c->st.end = c->close;
        c->list_ok = rc == 0 && !c->st.nested_dml && list_reads_row_only(cte->ctequery, c->st.ref);
        /* Without RETURNING the rewrite has no x: a reference to x (a table of that name would
         * be read instead) or a column list on it (an error on old alone) must go verbatim. */
        if (!c->ret_at &&
            (cte->n_aliascolnames > 0 || text_mentions(sql + tk.t[close]->end, cte->ctename))) {
            c->list_ok = false;
        }
    }
    if (scan) {
        pg_query__scan_result__free_unpacked(scan, NULL);
    }
    return rc;
}

int pin_cte_analyze(const void *node, const char *sql, const struct classify_options *opt,
                    struct pin_stmt *st)
{
    const PgQuery__Node *n = node;
    PgQuery__WithClause *wc = with_of(n);
    if (!wc || wc->n_ctes == 0 || st->sql_prepare) {
        return 0;
    }
    struct pin_stmt placed = {0};
    bool ok = false;
    int rc = place_ctes(wc, sql, opt, &placed, &ok);
    ok = ok && rc == 0 && placed.nctes > 0;
    /* The statement without its writes: what the outer statement itself makes up. */
    PgQuery__Node **keep = ok ? calloc(wc->n_ctes, sizeof(*keep)) : NULL;
    struct pin_stmt *outer = keep ? calloc(1, sizeof(*outer)) : NULL;
    if (ok && !outer) {
        rc = PIN_ENOMEM;
    }
    if (outer) {
        size_t nkeep = 0;
        for (size_t i = 0; i < wc->n_ctes; i++) {
            const PgQuery__CommonTableExpr *cte = cte_of(wc->ctes[i]);
            if (!cte || !is_write(cte->ctequery)) {
                keep[nkeep++] = wc->ctes[i];
            }
        }
        PgQuery__Node **all = wc->ctes;
        size_t nall = wc->n_ctes;
        wc->ctes = keep;
        wc->n_ctes = nkeep;
        rc = pin_analyze_node(n, opt, outer);
        wc->ctes = all;
        wc->n_ctes = nall;
        outer->start = st->start;
        outer->end = st->end;
        ok = rc == 0 && !outer->nested_dml;
    }
    free(keep);
    if (ok) {
        rc = list_relations(n, wc, st);
        ok = rc == 0;
    }
    if (ok) {
        st->outer = outer;
        st->ctes = placed.ctes;
        st->nctes = placed.nctes;
        st->with_end = placed.with_end;
        return 0;
    }
    if (outer) {
        pin_stmt_free(outer);
        free(outer);
    }
    for (int i = 0; i < placed.nctes; i++) {
        pin_stmt_free(&placed.ctes[i].st);
    }
    free(placed.ctes);
    return rc;
}

bool pin_cte_placeable(const struct pin_stmt *st, const struct pin_cte *c, const char **why)
{
    (void)st;
    *why = NULL;
    if (c->st.verb != PIN_VERB_INSERT && c->st.verb != PIN_VERB_UPDATE &&
        c->st.verb != PIN_VERB_DELETE) {
        *why = "a data-modifying WITH query pgdual cannot pin (MERGE)";
    } else if (!c->list_ok) {
        *why = "a data-modifying WITH query whose RETURNING reads more than its row (FROM, USING, "
               "a system column, the whole row) or calls a function or subquery";
    }
    return *why == NULL;
}

/* ---- the texts ------------------------------------------------------------------------------- */

void pin_tmpl_free(struct pin_tmpl *t)
{
    for (int i = 0; t->pieces && i <= t->n; i++) {
        free(t->pieces[i]);
    }
    free(t->pieces);
    free(t->slots);
    memset(t, 0, sizeof(*t));
}

/* The template being built: cur is the piece in progress. */
struct tmpl_build {
    struct pin_tmpl *t;
    struct wbuf cur;
    bool failed;
};

/* End the current piece; slot follows it (none for the last piece). */
static void tmpl_cut(struct tmpl_build *tb, bool last, uint32_t slot)
{
    struct pin_tmpl *t = tb->t;
    char **p = realloc(t->pieces, ((size_t)t->n + 2) * sizeof(*p));
    uint32_t *s = p ? realloc(t->slots, ((size_t)t->n + 1) * sizeof(*s)) : NULL;
    if (p) {
        t->pieces = p;
    }
    if (s) {
        t->slots = s;
    }
    char *piece = s ? pin_take_string(&tb->cur) : NULL;
    if (!piece) {
        tb->failed = true;
        return;
    }
    t->pieces[t->n] = piece;
    if (!last) {
        t->slots[t->n++] = slot;
        t->pieces[t->n] = NULL;
    }
}

static void put_range(struct wbuf *b, const char *sql, size_t from, size_t to)
{
    if (to > from) {
        wbuf_put_bytes(b, sql + from, to - from);
    }
}

static void put_cte_name(struct wbuf *b, uint32_t slot)
{
    char name[32];
    snprintf(name, sizeof(name), "\"pgdual_c%u\"", slot);
    pin_put_str(b, name);
}

/* `x AS (SELECT list FROM "pgdual_cN" AS ref)`: the client's WITH query over the row's copy. */
static void put_copy(struct wbuf *b, const char *sql, const struct pin_cte *c, uint32_t slot)
{
    pin_put_str(b, "(SELECT ");
    if (c->ret_at) {
        put_range(b, sql, c->list_at, c->close);
    }
    pin_put_str(b, "\nFROM ");
    put_cte_name(b, slot);
    pin_put_str(b, " AS ");
    pin_put_ident(b, c->st.ref);
    pin_put_str(b, ")");
}

/* A statement prepared once keeps the relations it names from its analysis; the secondary's is
 * parsed at each execution. Where a name finds another relation now (one made since in an earlier
 * schema of search_path shadows it), the secondary would write, or read for what it writes, that
 * one: record a mark, the execution's first slot as -(number) - 1, for the read-back to count
 * it. */
static void put_moved_marks(struct wbuf *primary, const struct pin_stmt *st, uint32_t rec_param,
                            bool after_rows)
{
    char row[96];
    snprintf(row, sizeof(row), "%sSELECT -$%u - 1, pg_catalog.json_build_object() WHERE ",
             after_rows ? " UNION ALL " : "", rec_param);
    pin_put_str(primary, row);
    for (int i = 0; i < st->nrels; i++) {
        pin_put_str(primary, i ? " OR " : "");
        pin_put_name_moved(primary, st->rels[i].schema, st->rels[i].rel);
    }
    pin_put_str(primary, st->nrels ? "" : "false");
}

int pin_cte_build(const char *sql, const struct pin_stmt *st, struct pin_shape *const *shapes,
                  const struct pin_shape *outer, uint32_t slot_base, uint32_t rec_first,
                  struct wbuf *primary, struct pin_tmpl *tmpl)
{
    return pin_cte_build_at(sql, st, shapes, outer, slot_base, rec_first, 0, primary, tmpl);
}

int pin_cte_build_at(const char *sql, const struct pin_stmt *st, struct pin_shape *const *shapes,
                     const struct pin_shape *outer, uint32_t slot_base, uint32_t rec_first,
                     uint32_t rec_param, struct wbuf *primary, struct pin_tmpl *tmpl)
{
    size_t len = strlen(sql);
    if (st->end > len || st->with_end > st->end || st->with_end < st->start) {
        return PIN_ESHAPE;
    }
    memset(tmpl, 0, sizeof(*tmpl));
    struct tmpl_build tb = {.t = tmpl};
    wbuf_init(&tb.cur);
    struct wbuf *sec = &tb.cur;
    size_t at = st->start;
    uint32_t slot = slot_base;
    for (int i = 0; i < st->nctes; i++) {
        const struct pin_cte *c = &st->ctes[i];
        if (!shapes[i]) {
            continue;
        }
        if (c->name_at < at || c->open < c->name_at || c->close < c->open || c->close >= len) {
            pin_tmpl_free(tmpl);
            wbuf_free(&tb.cur);
            return PIN_ESHAPE;
        }
        put_range(primary, sql, at, c->name_at);
        put_range(sec, sql, at, c->name_at);
        /* "pgdual_cN" AS (write RETURNING ref.*), */
        put_cte_name(primary, slot);
        pin_put_str(primary, " AS (");
        put_range(primary, sql, c->open + 1, c->ret_at ? c->ret_at : c->close);
        pin_put_str(primary, "\nRETURNING ");
        pin_put_ident(primary, c->st.ref);
        pin_put_str(primary, ".*)");
        put_cte_name(sec, slot);
        pin_put_str(sec, " AS (");
        pin_put_str(sec, shapes[i]->head);
        tmpl_cut(&tb, false, slot);
        pin_put_str(sec, shapes[i]->tail);
        pin_put_str(sec, "\nRETURNING \"pgdual_t\".*)");
        /* , x AS (SELECT list FROM "pgdual_cN" AS ref). Without a RETURNING list there is no
         * x: a reference to it fails as on old alone (with another message), where a copy
         * without columns would answer. */
        if (c->ret_at) {
            pin_put_str(primary, ", ");
            pin_put_str(sec, ", ");
            put_range(primary, sql, c->name_at, c->open);
            put_range(sec, sql, c->name_at, c->open);
            put_copy(primary, sql, c, slot);
            put_copy(sec, sql, c, slot);
        }
        at = c->close + 1;
        slot++;
    }
    put_range(primary, sql, at, st->with_end);
    put_range(sec, sql, at, st->with_end);
    /* A statement prepared once whose outer statement alone is pinned still records its mark,
     * under the slot pgdual_cte_records keeps for it. */
    if (slot > slot_base || (rec_param && outer)) {
        pin_put_str(primary, ", \"pgdual_r\" AS (INSERT INTO pg_temp.pgdual_pin_rows (n, r) ");
        for (uint32_t k = slot_base, i = 0; k < slot; k++, i++) {
            char num[40], row[256];
            while (!shapes[i]) {
                i++; /* shapes[i]: slot k's */
            }
            if (rec_param) {
                /* a statement prepared once: the numbers are its parameter's, bound each time */
                snprintf(num, sizeof(num), "$%u + %u", rec_param, k - slot_base);
            } else {
                snprintf(num, sizeof(num), "%u", rec_first + (k - slot_base));
            }
            /* with the row's text beside its JSON when the JSON cannot tell what it needs to
             * (pin_values_readback) */
            snprintf(row, sizeof(row),
                     shapes[i]->njson_cols
                         ? "%sSELECT %s, pg_catalog.json_build_array(pg_catalog.to_json("
                           "\"pgdual_x\".*), pg_catalog.textin(pg_catalog.record_out("
                           "\"pgdual_x\".*))) FROM \"pgdual_c%u\" AS \"pgdual_x\""
                         : "%sSELECT %s, pg_catalog.to_json(\"pgdual_x\".*) FROM \"pgdual_c%u\" AS "
                           "\"pgdual_x\"",
                     k > slot_base ? " UNION ALL " : "", num, k);
            pin_put_str(primary, row);
        }
        if (rec_param) {
            put_moved_marks(primary, st, rec_param, slot > slot_base);
        }
        pin_put_str(primary, ")");
    }
    put_range(primary, sql, st->with_end, st->end);
    if (outer) {
        pin_put_str(primary, outer->returning);
        pin_put_str(sec, " ");
        pin_put_str(sec, outer->head);
        tmpl_cut(&tb, false, PIN_TMPL_OUTER);
        pin_put_str(sec, outer->tail);
    } else {
        put_range(sec, sql, st->with_end, st->end);
    }
    tmpl_cut(&tb, true, 0);
    wbuf_free(&tb.cur);
    if (tb.failed || primary->failed) {
        pin_tmpl_free(tmpl);
        return PIN_ENOMEM;
    }
    return 0;
}

int pin_cte_readback_row(const uint8_t *body, size_t len, uint32_t *slot, bool *moved,
                         const uint8_t **json, size_t *json_len)
{
    struct wire_reader rd;
    wire_reader_init(&rd, body, len);
    if (wire_u16(&rd) != 2) {
        return PIN_EPROTO;
    }
    uint32_t n = wire_u32(&rd);
    const uint8_t *v =
        rd.failed || n == 0xffffffffu || n == 0 || n > 10 ? NULL : wire_bytes(&rd, n);
    if (!v) {
        return PIN_EPROTO;
    }
    uint32_t s = 0;
    bool mark = v[0] == '-'; /* put_moved_marks' */
    for (uint32_t i = mark; i < n; i++) {
        if (v[i] < '0' || v[i] > '9' || s > (UINT32_MAX - 9) / 10) {
            return PIN_EPROTO;
        }
        s = s * 10 + (uint32_t)(v[i] - '0');
    }
    uint32_t jn = wire_u32(&rd);
    const uint8_t *j = rd.failed || jn == 0xffffffffu || jn == 0 ? NULL : wire_bytes(&rd, jn);
    if (!j || rd.failed || (j[0] != '{' && j[0] != '[') || rd.off != len ||
        (mark && (n == 1 || s == 0))) {
        return PIN_EPROTO;
    }
    *moved = mark;
    *slot = mark ? s - 1 : s;
    *json = j;
    *json_len = jn;
    return 0;
}

int pin_cte_check_row(const uint8_t *body, size_t len, uint32_t *oid)
{
    struct wire_reader rd;
    wire_reader_init(&rd, body, len);
    if (wire_u16(&rd) != 1) {
        return PIN_EPROTO;
    }
    uint32_t n = wire_u32(&rd);
    const uint8_t *v =
        rd.failed || n == 0xffffffffu || n == 0 || n > 10 ? NULL : wire_bytes(&rd, n);
    if (!v || rd.off != len) {
        return PIN_EPROTO;
    }
    uint64_t x = 0;
    for (uint32_t i = 0; i < n; i++) {
        if (v[i] < '0' || v[i] > '9') {
            return PIN_EPROTO;
        }
        x = x * 10 + (uint64_t)(v[i] - '0');
    }
    if (x == 0 || x > UINT32_MAX) {
        return PIN_EPROTO;
    }
    *oid = (uint32_t)x;
    return 0;
}

/* protocol/pin_sql.c: the SQL and bytes of pinning: the RETURNING list for the primary, the
 * secondary's statement, pgdual's columns taken out of the reply and kept as JSON, and the
 * secondary's copy of a unit (see pin.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "protocol/pin.h"
#include "protocol/pin_internal.h"
#include "protocol/pqproto.h"

#define JSON_OID 114

/* ---- the shape: what is appended, what the secondary runs ------------------------------------ */

void pin_put_ident(struct wbuf *b, const char *s)
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
    for (int i = 0; i < sh->nkeys; i++) {
        if (strcmp(sh->keys[i], c->name) == 0) {
            return 0;
        }
    }
    pin_copy_name(sh->keys[sh->nkeys], c->name);
    sh->nkeys++;
    return 0;
}

bool pin_column_returned(const struct pin_stmt *st, const struct pin_column *c)
{
    if (st->verb == PIN_VERB_INSERT) {
        return !c->generated;
    }
    return c->pk || (st->verb == PIN_VERB_UPDATE && pin_stmt_names_col(st, c->name));
}

/* Which columns come back (pin_column_returned): the table's stored or key columns in its
 * order, then those an UPDATE sets in the statement's. */
static void choose_keys(struct pin_shape *sh, const struct pin_stmt *st, const struct pin_table *t)
{
    for (int i = 0; i < t->ncols; i++) {
        const struct pin_column *c = &t->cols[i];
        if ((st->verb == PIN_VERB_INSERT && !c->generated) ||
            (st->verb != PIN_VERB_INSERT && c->pk)) {
            add_key(sh, c);
        }
    }
    for (int i = 0; st->verb == PIN_VERB_UPDATE && i < st->ncols; i++) {
        const struct pin_column *c = pin_find_col(t, st->cols[i]);
        if (c) {
            add_key(sh, c);
        }
    }
}

static void put_key_list(struct wbuf *b, const struct pin_shape *sh, const char *qualifier)
{
    for (int i = 0; i < sh->nkeys; i++) {
        if (i) {
            pin_put_str(b, ", ");
        }
        if (qualifier) {
            pin_put_ident(b, qualifier);
            wbuf_put_u8(b, '.');
        }
        pin_put_ident(b, sh->keys[i]);
    }
}

/* The target as the client's statement names it: the secondary resolves it as the primary
 * resolves the client's statement (search_path is mirrored; PostgreSQL resolves a prepared
 * statement again, on both sides, when it changes), which the primary checks row by row (see
 * pin_shape's m). */
static void put_target(struct wbuf *b, const struct pin_stmt *st)
{
    if (st->schema[0]) {
        pin_put_ident(b, st->schema);
        wbuf_put_u8(b, '.');
    }
    pin_put_ident(b, st->rel);
}

/* The rows' source, up to where the rows go: each row a record of the target's type; with
 * extras, each element of the array is [row, extras] (pin_values.c). */
static void put_source(struct wbuf *b, const struct pin_stmt *st, const struct pin_shape *sh)
{
    if (sh->nextras) {
        pin_put_str(b, "pg_catalog.json_array_elements(");
        return;
    }
    pin_put_str(b, "pg_catalog.json_populate_recordset(NULL::");
    put_target(b, st);
    pin_put_str(b, ", ");
}

/* ... and after the rows, to the source's name "pgdual_v" */
static void put_source_end(struct wbuf *b, const struct pin_stmt *st, const struct pin_shape *sh)
{
    if (sh->nextras) {
        pin_put_str(b, ") AS \"pgdual_e\"(\"r\"), pg_catalog.json_populate_record(NULL::");
        put_target(b, st);
        pin_put_str(b, ", \"pgdual_e\".\"r\" -> 0)");
    } else {
        pin_put_str(b, ")");
        if (st->verb == PIN_VERB_INSERT) {
            return; /* its columns are named without a qualifier */
        }
    }
    pin_put_str(b, " AS \"pgdual_v\"");
}

/* The row's value of column col: "pgdual_v".col, or what pin_values.c puts back. */
static void put_value(struct wbuf *b, const struct pin_shape *sh, const char *col)
{
    pin_values_put_expr(b, sh, col);
}

/* WHERE "pgdual_t".pk = "pgdual_v".pk AND ... */
static void put_key_match(struct wbuf *b, const struct pin_table *t, const struct pin_shape *sh)
{
    pin_put_str(b, " WHERE ");
    bool first = true;
    for (int i = 0; i < t->ncols; i++) {
        if (!t->cols[i].pk) {
            continue;
        }
        pin_put_str(b, first ? "" : " AND ");
        first = false;
        pin_put_str(b, "\"pgdual_t\".");
        pin_put_ident(b, t->cols[i].name);
        pin_put_str(b, " = ");
        put_value(b, sh, t->cols[i].name);
    }
}

static void put_conflict(struct wbuf *b, const struct pin_stmt *st, const struct pin_table *t)
{
    if (st->conflict == PIN_CONFLICT_NOTHING) {
        pin_put_str(b, " ON CONFLICT DO NOTHING");
        return;
    }
    if (st->conflict != PIN_CONFLICT_UPDATE) {
        return;
    }
    pin_put_str(b, " ON CONFLICT (");
    bool first = true;
    for (int i = 0; i < t->ncols; i++) {
        if (t->cols[i].pk) {
            pin_put_str(b, first ? "" : ", ");
            first = false;
            pin_put_ident(b, t->cols[i].name);
        }
    }
    /* The primary's final row: every stored column (a key column alone if there is no other,
     * so the row still counts in the tag as it did on the primary). */
    pin_put_str(b, ") DO UPDATE SET ");
    first = true;
    for (int pass = 0; pass < 2 && first; pass++) {
        for (int i = 0; i < t->ncols; i++) {
            const struct pin_column *c = &t->cols[i];
            if (c->generated || (c->identity && !c->pk) || (pass == 0 && c->pk) ||
                (pass == 1 && !c->pk)) {
                continue;
            }
            pin_put_str(b, first ? "" : ", ");
            first = false;
            pin_put_ident(b, c->name);
            pin_put_str(b, " = EXCLUDED.");
            pin_put_ident(b, c->name);
            if (pass == 1) {
                break;
            }
        }
    }
}

char *pin_take_string(struct wbuf *b)
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

/* "c is the table the client's name finds now" (c: a pg_class row): the server's own resolution
 * (search_path, the session's temporary schema first), with no privilege checked (to_regclass
 * would fail on a schema the current role may not use, where the prepared statement still runs).
 */
static void put_name_match(struct wbuf *b, const char *schema, const char *rel)
{
    pin_put_str(b, "c.relname = ");
    pin_put_escaped_literal(b, rel);
    if (!schema[0]) {
        pin_put_str(b, " AND pg_catalog.pg_table_is_visible(c.oid)");
    } else if (strcmp(schema, "pg_temp") == 0) {
        pin_put_str(b, " AND c.relnamespace = pg_catalog.pg_my_temp_schema()");
    } else {
        pin_put_str(b, " AND c.relnamespace = (SELECT n.oid FROM pg_catalog.pg_namespace n WHERE "
                       "n.nspname = ");
        pin_put_escaped_literal(b, schema);
        pin_put_str(b, ")");
    }
}

/* "(SELECT c.oid ...)": the relation the name finds now (NULL: none) */
static void put_named_oid(struct wbuf *b, const char *schema, const char *rel)
{
    pin_put_str(b, "(SELECT c.oid FROM pg_catalog.pg_class c WHERE ");
    put_name_match(b, schema, rel);
    pin_put_str(b, ")");
}

/* 'schema.rel'::pg_catalog.regclass: the name as the server resolves it when it analyses the text
 * holding it (search_path, the session's temporary schema first), like the statement's own. */
static void put_name_regclass(struct wbuf *b, const char *schema, const char *rel)
{
    struct wbuf name;
    wbuf_init(&name);
    if (schema[0]) {
        pin_put_ident(&name, schema);
        pin_put_str(&name, ".");
    }
    pin_put_ident(&name, rel);
    char *text = pin_take_string(&name);
    if (!text) {
        b->failed = true;
        return;
    }
    pin_put_escaped_literal(b, text);
    free(text);
    pin_put_str(b, "::pg_catalog.regclass");
}

/* The relation the client's name finds now: for a statement that runs now (pin_stmt's runs_now)
 * a regclass literal, resolved by the server's analysis of the same text, as the statement's own
 * target is; else (SELECT c.oid ...), looked up at each execution, when a prepared statement may
 * keep a table the name no longer finds. */
static void put_rel_now(struct wbuf *b, const struct pin_stmt *st, bool runs_now)
{
    if (runs_now) {
        put_name_regclass(b, st->schema, st->rel);
    } else {
        put_named_oid(b, st->schema, st->rel);
    }
}

/* Whether the row (st->ref) went into the table the client's name finds now or, for a table not
 * known to be a plain one (partitioned, or made earlier in the same text), one of its partitions,
 * read from pg_inherits: pg_partition_tree would lock every partition. A plain table pinning
 * covers has no children (pin_catalog_query refuses one with them); one made a parent since by
 * another session's ALTER TABLE ... INHERIT has its children's rows 'f' (counted). The first is
 * evaluated once per execution; the second only for a row the first did not find, once per
 * execution too (a hashed subplan). */
static void put_same_table(struct wbuf *b, const struct pin_stmt *st, char relkind, bool runs_now)
{
    pin_put_ident(b, st->ref);
    pin_put_str(b, ".tableoid = ");
    put_rel_now(b, st, runs_now);
    if (relkind == 'r') {
        return;
    }
    pin_put_str(b, " OR ");
    pin_put_ident(b, st->ref);
    pin_put_str(b, ".tableoid IN (WITH RECURSIVE \"pgdual_tree\"(o) AS (SELECT ");
    put_rel_now(b, st, runs_now);
    pin_put_str(b, " UNION ALL SELECT i.inhrelid FROM pg_catalog.pg_inherits i JOIN "
                   "\"pgdual_tree\" ON i.inhparent = \"pgdual_tree\".o) SELECT o FROM "
                   "\"pgdual_tree\")");
}

/* put_same_table as 't' or 'f', or 's' when the columns of the table the name finds now are of
 * other kinds than sh's (an ALTER ... TYPE since a prepared statement's Parse or since pgdual
 * read the catalog, or a change of search_path to a table of the same name and columns). Read
 * once per execution. */
static void put_same_table_typed(struct wbuf *b, const struct pin_stmt *st,
                                 const struct pin_shape *sh, char relkind)
{
    pin_put_str(b, "CASE WHEN (");
    put_same_table(b, st, relkind, st->runs_now);
    pin_put_str(b, ") IS NOT TRUE THEN 'f' WHEN (SELECT pg_catalog.string_agg(" PIN_COLUMN_KIND
                   ", '' ORDER BY a.attnum) FROM pg_catalog.pg_attribute a WHERE a.attrelid = ");
    put_rel_now(b, st, st->runs_now);
    pin_put_str(b, " AND a.attnum > 0 AND NOT a.attisdropped) IS DISTINCT FROM ");
    pin_put_escaped_literal(b, sh->kinds);
    pin_put_str(b, " THEN 's' ELSE 't' END");
}

/* "the name finds another relation now than when the statement holding this was analysed": the
 * name as a regclass literal is resolved at parse analysis, like the statement's own names (a
 * prepared statement keeps both until it is analysed again), the lookup at each execution. */
void pin_put_name_moved(struct wbuf *b, const char *schema, const char *rel)
{
    put_name_regclass(b, schema, rel);
    pin_put_str(b, " IS DISTINCT FROM ");
    put_named_oid(b, schema, rel);
}

static int build_texts(struct pin_shape *sh, const struct pin_stmt *st, const struct pin_table *t)
{
    struct wbuf r, h, tl;
    wbuf_init(&r);
    wbuf_init(&h);
    wbuf_init(&tl);
    /* A newline first: the statement may end inside a line comment. */
    pin_put_str(&r, st->client_returning ? "\n, pg_catalog.to_json("
                                         : "\nRETURNING pg_catalog.to_json(");
    pin_put_ident(&r, st->ref);
    pin_put_str(&r, ".*), ");
    if (sh->kinds) {
        put_same_table_typed(&r, st, sh, t->relkind);
    } else {
        put_same_table(&r, st, t->relkind, false);
    }
    if (sh->nextras) {
        pin_put_str(&r, ", pg_catalog.textin(pg_catalog.record_out(");
        pin_put_ident(&r, st->ref);
        pin_put_str(&r, ".*))");
    }
    switch (st->verb) {
    case PIN_VERB_INSERT:
        pin_put_str(&h, "INSERT INTO ");
        put_target(&h, st);
        pin_put_str(&h, st->in_cte ? " AS \"pgdual_t\" (" : " (");
        put_key_list(&h, sh, NULL);
        pin_put_str(&h, ") OVERRIDING SYSTEM VALUE SELECT ");
        if (sh->nextras) {
            for (int i = 0; i < sh->nkeys; i++) {
                pin_put_str(&h, i ? ", " : "");
                put_value(&h, sh, sh->keys[i]);
            }
        } else {
            put_key_list(&h, sh, NULL);
        }
        pin_put_str(&h, " FROM ");
        put_source(&h, st, sh);
        put_source_end(&tl, st, sh);
        put_conflict(&tl, st, t);
        break;
    case PIN_VERB_UPDATE:
        pin_put_str(&h, "UPDATE ");
        put_target(&h, st);
        pin_put_str(&h, " AS \"pgdual_t\" SET ");
        for (int i = 0, first = 1; i < sh->nkeys; i++) {
            const struct pin_column *c = pin_find_col(t, sh->keys[i]);
            if (c && c->pk && !pin_stmt_names_col(st, c->name)) {
                continue; /* the key matches rows; it is not set */
            }
            pin_put_str(&h, first ? "" : ", ");
            first = 0;
            pin_put_ident(&h, sh->keys[i]);
            pin_put_str(&h, " = ");
            put_value(&h, sh, sh->keys[i]);
        }
        pin_put_str(&h, " FROM ");
        put_source(&h, st, sh);
        put_source_end(&tl, st, sh);
        put_key_match(&tl, t, sh);
        break;
    default: /* DELETE */
        pin_put_str(&h, "DELETE FROM ");
        put_target(&h, st);
        pin_put_str(&h, " AS \"pgdual_t\" USING ");
        put_source(&h, st, sh);
        put_source_end(&tl, st, sh);
        put_key_match(&tl, t, sh);
        break;
    }
    sh->returning = pin_take_string(&r);
    sh->head = pin_take_string(&h);
    sh->tail = pin_take_string(&tl);
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
    if (!sh->keys) {
        pin_shape_unref(sh);
        return NULL;
    }
    choose_keys(sh, st, t);
    if (pin_values_plan(sh, st, t) < 0) {
        pin_shape_unref(sh);
        return NULL;
    }
    sh->m = sh->nextras ? 3 : 2;
    sh->columns_hash = pin_columns_hash(t);
    if (sh->nkeys == 0 || build_texts(sh, st, t) < 0) {
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
    free(sh->extras);
    free(sh->kinds);
    free(sh->json_cols);
    free(sh->returning);
    free(sh->head);
    free(sh->tail);
    free(sh);
}

int pin_primary_text(const char *sql, const struct pin_plan *plan, struct pin_shape *const *shapes,
                     struct wbuf *out)
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
        pin_put_str(out, shapes[i]->returning);
        at = st->end;
    }
    wbuf_put_bytes(out, sql + at, len - at);
    wbuf_put_u8(out, '\0');
    return out->failed ? PIN_ENOMEM : 0;
}

/* ---- the primary's reply ----------------------------------------------------------------------
 */

/* Offset (in body) just past the first k fields of a RowDescription (row false) or values of a
 * DataRow (row true), or 0 on a bad shape. */
static size_t prefix_end(const uint8_t *body, size_t len, int k, bool row)
{
    struct wire_reader rd;
    wire_reader_init(&rd, body, len);
    (void)wire_u16(&rd);
    for (int i = 0; i < k && !rd.failed; i++) {
        if (!row) {
            (void)wire_cstr(&rd);
            (void)wire_bytes(&rd, 18); /* table oid, attnum, type oid, typlen, typmod, format */
            continue;
        }
        uint32_t n = wire_u32(&rd);
        if (n != 0xffffffffu) {
            (void)wire_bytes(&rd, n);
        }
    }
    return rd.failed ? 0 : rd.off;
}

/* The message of type (a RowDescription or a DataRow) without its last m fields, into out;
 * when none remain: NoData if nodata_if_empty, else nothing. */
static int strip_tail(uint8_t type, const uint8_t *body, size_t len, int m, bool nodata_if_empty,
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
    size_t end = prefix_end(body, len, k, type == PqMsg_DataRow);
    if (end == 0) {
        return PIN_EPROTO;
    }
    size_t at = wbuf_begin_msg(out, type);
    wbuf_put_u16(out, (uint16_t)k);
    wbuf_put_bytes(out, body + 2, end - 2);
    wbuf_end_msg(out, at);
    return out->failed ? PIN_ENOMEM : 0;
}

int pin_strip_row_description(const uint8_t *body, size_t len, int m, bool nodata_if_empty,
                              struct wbuf *out)
{
    return strip_tail(PqMsg_RowDescription, body, len, m, nodata_if_empty, out);
}

int pin_strip_data_row(const uint8_t *body, size_t len, int m, struct wbuf *out)
{
    return strip_tail(PqMsg_DataRow, body, len, m, false, out);
}

int pin_rows_add(struct wbuf *rows, const struct pin_shape *sh, const uint8_t *body, size_t len)
{
    if (len < 2) {
        return PIN_EPROTO;
    }
    int n = body[0] << 8 | body[1];
    if (n < sh->m || sh->m != (sh->nextras ? 3 : 2)) {
        return PIN_EPROTO;
    }
    size_t off = prefix_end(body, len, n - sh->m, true);
    if (off == 0) {
        return PIN_EPROTO;
    }
    struct wire_reader rd;
    wire_reader_init(&rd, body + off, len - off);
    uint32_t vlen = wire_u32(&rd);
    const uint8_t *v = vlen == 0xffffffffu || vlen == 0 ? NULL : wire_bytes(&rd, vlen);
    uint32_t slen = wire_u32(&rd);
    const uint8_t *same = slen == 1 ? wire_bytes(&rd, 1) : NULL;
    uint32_t rlen = 0;
    const uint8_t *rec = NULL;
    if (sh->nextras) {
        rlen = wire_u32(&rd);
        rec = rlen == 0xffffffffu ? NULL : wire_bytes(&rd, rlen);
    }
    bool typed = sh->kinds != NULL;
    if (rd.failed || !v || v[0] != '{' || rd.off != rd.len || (sh->nextras && !rec) ||
        (slen != 0xffffffffu &&
         (!same || (same[0] != 't' && same[0] != 'f' && !(typed && same[0] == 's'))))) {
        return PIN_EPROTO; /* to_json of a row is an object, never NULL; then a boolean */
    }
    if (same && same[0] == 's') {
        return PIN_ESTALE; /* its column types changed since pgdual read the catalog */
    }
    if (!same || same[0] != 't') {
        return PIN_EOTHER; /* NULL: the name finds no table now */
    }
    uint64_t keys;
    if (pin_json_keys_hash(v, vlen, &keys) < 0) {
        return PIN_EPROTO;
    }
    if (keys != sh->columns_hash) {
        return PIN_ESTALE; /* DDL of another session since pgdual read the catalog */
    }
    if (sh->nextras) {
        return pin_values_add(rows, sh, v, vlen, rec, rlen);
    }
    wbuf_put_u8(rows, rows->len == 0 ? '[' : ',');
    wbuf_put_bytes(rows, v, vlen); /* the server's own JSON text */
    return rows->failed ? PIN_ENOMEM : 0;
}

void pin_rows_close(struct wbuf *rows)
{
    if (rows->len == 0) {
        wbuf_put_u8(rows, '[');
    }
    wbuf_put_u8(rows, ']');
}

/* ---- what the secondary runs ------------------------------------------------------------------
 */

/* A JSON array as a string literal (standard_conforming_strings is on, else nothing is pinned). */
static void put_literal(struct wbuf *out, const struct wbuf *rows)
{
    wbuf_put_u8(out, '\'');
    for (size_t k = 0; k < rows->len; k++) {
        uint8_t c = rows->data[k];
        if (c == '\'') {
            wbuf_put_u8(out, c);
        }
        wbuf_put_u8(out, c);
    }
    wbuf_put_u8(out, '\'');
}

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
        if (s[i].tmpl) {
            const struct pin_tmpl *t = s[i].tmpl;
            for (int k = 0; k < t->n; k++) {
                pin_put_str(out, t->pieces[k]);
                put_literal(out, t->slots[k] == PIN_TMPL_OUTER ? s[i].rows
                                                               : &s[i].slot_rows[t->slots[k]]);
            }
            pin_put_str(out, t->pieces[t->n]);
        } else {
            pin_put_str(out, s[i].shape->head);
            put_literal(out, s[i].rows);
            pin_put_str(out, s[i].shape->tail);
        }
        at = s[i].end;
    }
    wbuf_put_bytes(out, text + at, text_len - at);
    wbuf_put_u8(out, '\0');
    wbuf_end_msg(out, m);
    return out->failed ? PIN_ENOMEM : 0;
}

static void put_close(struct wbuf *b, uint8_t what, const char *name)
{
    size_t at = wbuf_begin_msg(b, PqMsg_Close);
    wbuf_put_u8(b, what);
    wbuf_put_cstr(b, name);
    wbuf_end_msg(b, at);
}

/* Returns the steps it added in place of the one Execute. */
static uint32_t put_pinned_execute(struct wbuf *b, const struct pin_subst *s)
{
    char stmt[sizeof(PIN_SECONDARY_NAME) + 12];
    snprintf(stmt, sizeof(stmt), "%s.%u", PIN_SECONDARY_NAME, s->stmt_id);
    put_close(b, 'P', PIN_SECONDARY_NAME);
    if (s->parse) {
        put_close(b, 'S', stmt);
        size_t at = wbuf_begin_msg(b, PqMsg_Parse);
        wbuf_put_cstr(b, stmt);
        pin_put_str(b, s->shape->head);
        pin_put_str(b, "$1");
        wbuf_put_cstr(b, s->shape->tail);
        wbuf_put_u16(b, 1);
        wbuf_put_u32(b, JSON_OID);
        wbuf_end_msg(b, at);
    }
    size_t at = wbuf_begin_msg(b, PqMsg_Bind);
    wbuf_put_cstr(b, PIN_SECONDARY_NAME);
    wbuf_put_cstr(b, stmt);
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
    return s->parse ? 4 : 2;
}

/* The last Bind of portal before byte `before` of msgs (its body), or NULL. */
static const uint8_t *last_bind(const uint8_t *msgs, size_t before, const char *portal,
                                size_t *bind_len)
{
    const uint8_t *found = NULL;
    size_t off = 0;
    struct wire_msg m;
    while (off < before && wire_next_msg(msgs, before, &off, &m) == 0) {
        const char *p = m.type == PqMsg_Bind ? pin_cte_ext_bind_portal(m.body, m.body_len) : NULL;
        if (p && strcmp(p, portal) == 0) {
            found = m.body;
            *bind_len = m.body_len;
        }
    }
    return found;
}

/* An Execute (m) of a statement with pinned WITH queries: pgdual's statement in place of it. */
static int put_cte_execute(struct wbuf *out, const uint8_t *msgs, const struct wire_msg *m,
                           const struct pin_subst *s)
{
    struct wire_reader rd;
    wire_reader_init(&rd, m->body, m->body_len);
    const char *portal = wire_cstr(&rd);
    size_t bind_len = 0;
    const uint8_t *bind =
        portal ? last_bind(msgs, (size_t)(m->whole - msgs), portal, &bind_len) : NULL;
    if (!bind || !s->tmpl) {
        return PIN_ESHAPE;
    }
    return pin_cte_ext_execute(out, s->cte, s->tmpl, bind, bind_len, s->slot_rows, s->nslot_rows,
                               s->rows);
}

int pin_substitute_batch(const uint8_t *msgs, size_t len, const struct pin_subst *s, size_t n,
                         struct wbuf *out, uint32_t *extra_steps)
{
    size_t off = 0, next = 0;
    *extra_steps = 0;
    uint32_t executes = 0;
    struct wire_msg m;
    while (off < len) {
        if (wire_next_msg(msgs, len, &off, &m) < 0) {
            return PIN_ESHAPE;
        }
        if (m.type == PqMsg_Execute) {
            if (next < n && s[next].index == executes && s[next].cte) {
                if (put_cte_execute(out, msgs, &m, &s[next++]) < 0) {
                    return PIN_ESHAPE;
                }
                *extra_steps += 4;
                executes++;
                continue;
            }
            if (next < n && s[next].index == executes) {
                *extra_steps += put_pinned_execute(out, &s[next++]);
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

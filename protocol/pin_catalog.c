/* protocol/pin_catalog.c: the catalog lookup for pinning: its SQL and the table it describes
 * (see pin.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "protocol/pin.h"
#include "protocol/pin_internal.h"

/* ---- the catalog ---------------------------------------------------------------------------- */

void pin_put_escaped_literal(struct wbuf *b, const char *s)
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

void pin_put_str(struct wbuf *b, const char *s)
{
    wbuf_put_bytes(b, s, strlen(s));
}

/* The table's enabled user triggers (constraint triggers of the user's included), and those of
 * its partitions. */
#define PIN_USER_TRIGGERS                                                                       \
    "g.tgenabled <> 'D' AND NOT g.tgisinternal AND (g.tgrelid = c.oid OR g.tgrelid IN (SELECT " \
    "relid FROM pg_catalog.pg_partition_tree(c.oid)))"
/* What in a trigger function's source (or its arguments) may make up values, or write (whole
 * words, any case; a word in a comment or string counts too: when in doubt, count). */
#define PIN_TRIGGER_VALUES                                                                    \
    "E'\\\\m(now|current_timestamp|current_date|current_time|localtime|localtimestamp|"       \
    "clock_timestamp|statement_timestamp|transaction_timestamp|timeofday|nextval|random|"     \
    "gen_random_uuid|uuid_generate_[a-z0-9_]*|setseed|today|tomorrow|yesterday|txid_[a-z_]*|" \
    "pg_current_xact_id|pg_current_snapshot|pg_backend_pid|inet_[a-z_]*)\\\\M'"
#define PIN_TRIGGER_WRITES "E'\\\\m(insert|update|delete|merge|copy|execute)\\\\M'"
/* The function's source without its comments and '...' strings, for PIN_TRIGGER_CALLS: prose in
 * a message ("quantity (%)") is not a call, and a comment between a name and '(' hides none.
 * Comments go first (an apostrophe in one must not open a string that would swallow code). */
#define PIN_TRIGGER_CODE                                                                       \
    "pg_catalog.regexp_replace(pg_catalog.regexp_replace(pg_catalog.regexp_replace(p.prosrc, " \
    "'/[*].*?[*]/', ' ', 'g'), '--[^[:cntrl:]]*', ' ', 'g'), '''([^'']|'''')*''', ' ', 'g')"
/* A trigger function's code calls something pgdual cannot vouch for: a name followed by '(' that
 * is not a keyword, and some function of that name fails SAFE (a name no function has cannot be
 * called: syntax such as trim( or decimal(10, 2)); or a quoted name. */
#define PIN_TRIGGER_CALLS(SAFE)                                                                \
    "(p.prosrc ~ '\"[[:space:]]*[(]' OR EXISTS (SELECT 1 FROM "                                \
    "pg_catalog.regexp_matches(" PIN_TRIGGER_CODE                                              \
    ", '([[:alpha:]_][[:alnum:]_$]*)[[:space:]]*[(]', 'g') AS m(w) WHERE "                     \
    "pg_catalog.lower(m.w[1]) NOT IN ('if', 'elsif', 'when', 'and', 'or', 'not', 'in', "       \
    "'exists', 'any', 'all', 'some', 'coalesce', 'nullif', 'greatest', 'least', 'values', "    \
    "'row', 'array', 'cast', 'then', 'else', 'return', 'select', 'from', 'where', 'on', "      \
    "'using', 'into', 'is', 'between', 'like', 'ilike', 'as', 'case', 'by', 'loop', 'while', " \
    "'for', 'foreach', 'returning', 'set', 'strict') AND NOT COALESCE((SELECT "                \
    "pg_catalog.bool_and(" SAFE ") FROM pg_catalog.pg_proc q WHERE q.proname = "               \
    "pg_catalog.lower(m.w[1])), true)))"
/* Makes up values: a call of a function that is neither immutable nor a stable built-in (the
 * same on both sides for the same session settings; the clock's and the session's own are in
 * PIN_TRIGGER_VALUES). Writes: a call of a function not immutable that is not only pg_catalog's
 * (oid 11): a user function can do anything. */
#define PIN_CALL_MAKES_VALUES \
    PIN_TRIGGER_CALLS("q.provolatile = 'i' OR (q.pronamespace = 11 AND q.provolatile = 's')")
#define PIN_CALL_WRITES PIN_TRIGGER_CALLS("q.provolatile = 'i' OR q.pronamespace = 11")

int pin_catalog_query(const struct pin_stmt *st, struct wbuf *out)
{
    pin_put_str(
        out, "SELECT CASE WHEN n.nspname LIKE E'pg\\\\_temp\\\\_%' THEN 'pg_temp' ELSE "
             "pg_catalog.quote_ident(n.nspname) END || '.' || pg_catalog.quote_ident(c.relname), "
             "CASE WHEN c.relkind NOT IN ('r', 'p') THEN 'not_table' "
             "WHEN c.relhasrules THEN 'rules' "
             "WHEN c.relrowsecurity THEN 'rls' "
             "WHEN c.relkind = 'r' AND c.relhassubclass THEN 'inherits' "
             "WHEN EXISTS (SELECT 1 FROM pg_catalog.pg_trigger g WHERE g.tgenabled <> 'D' AND NOT "
             "g.tgisinternal AND (g.tgrelid = c.oid OR g.tgrelid IN (SELECT relid FROM "
             "pg_catalog.pg_partition_tree(c.oid))) AND g.tgconstraint = 0) THEN 'triggers' "
             "WHEN NOT pg_catalog.has_table_privilege(c.oid, 'SELECT') THEN 'no_select' "
             "ELSE '' END, "
             "a.attname, a.attgenerated <> '', a.attidentity <> '', "
             "COALESCE(pg_catalog.pg_get_expr(d.adbin, d.adrelid), y.typdefault), "
             "COALESCE(a.attnum = ANY (i.indkey), "
             "false), ");
    /* what the row's JSON cannot carry of the column's values (pin_values.c): by its type, or
     * its domain's base type (through domains over domains) */
    pin_put_str(out, PIN_COLUMN_KIND ", ");
    /* the events whose triggers may make up values, then those whose may write (each its own
     * piece: C limits a string literal's length) */
    pin_put_str(out,
                "(SELECT COALESCE(pg_catalog.bit_or(g.tgtype::int & 28), 0) FROM "
                "pg_catalog.pg_trigger g JOIN pg_catalog.pg_proc p ON p.oid = g.tgfoid JOIN "
                "pg_catalog.pg_language l ON l.oid = p.prolang WHERE " PIN_USER_TRIGGERS " AND "
                "(l.lanname NOT IN ('plpgsql', 'sql') OR p.prosrc ~* " PIN_TRIGGER_VALUES
                " OR pg_catalog.encode(g.tgargs, 'escape') ~* " PIN_TRIGGER_VALUES
                " OR " PIN_CALL_MAKES_VALUES ")), ");
    pin_put_str(out,
                "(SELECT COALESCE(pg_catalog.bit_or(g.tgtype::int & 28), 0) FROM "
                "pg_catalog.pg_trigger g JOIN pg_catalog.pg_proc p ON p.oid = g.tgfoid JOIN "
                "pg_catalog.pg_language l ON l.oid = p.prolang WHERE " PIN_USER_TRIGGERS " AND "
                "(l.lanname NOT IN ('plpgsql', 'sql') OR p.prosrc ~* " PIN_TRIGGER_WRITES
                " OR " PIN_CALL_WRITES ")), ");
    /* its kind, and a view's or materialized view's query with those of the views it reads */
    pin_put_str(out, "c.relkind::text, vd.defs ");
    pin_put_str(
        out, "FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace "
             "LEFT JOIN LATERAL (WITH RECURSIVE dep(oid) AS (SELECT c.oid UNION SELECT d.refobjid "
             "FROM dep JOIN pg_catalog.pg_rewrite r ON r.ev_class = dep.oid JOIN "
             "pg_catalog.pg_depend d ON d.classid = 'pg_catalog.pg_rewrite'::pg_catalog.regclass "
             "AND d.objid = r.oid AND d.refclassid = 'pg_catalog.pg_class'::pg_catalog.regclass "
             "JOIN pg_catalog.pg_class x ON x.oid = d.refobjid AND x.relkind = 'v') SELECT "
             "pg_catalog.string_agg(pg_catalog.pg_get_viewdef(dep.oid), E'\\n') AS defs FROM dep) "
             "vd ON c.relkind IN ('v', 'm') "
             "LEFT JOIN pg_catalog.pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT "
             "a.attisdropped "
             "LEFT JOIN pg_catalog.pg_attrdef d ON d.adrelid = c.oid AND d.adnum = a.attnum "
             "LEFT JOIN pg_catalog.pg_index i ON i.indrelid = c.oid AND i.indisprimary "
             "LEFT JOIN pg_catalog.pg_type y ON y.oid = a.atttypid "
             "WHERE c.relname = ");
    pin_put_escaped_literal(out, st->rel);
    if (strcmp(st->schema, "pg_temp") == 0) {
        /* The server reads pg_temp as the session's own temporary schema (pg_temp_N). */
        pin_put_str(out, " AND n.oid = pg_catalog.pg_my_temp_schema()");
    } else if (st->schema[0]) {
        pin_put_str(out, " AND n.nspname = ");
        pin_put_escaped_literal(out, st->schema);
    } else {
        pin_put_str(out, " AND pg_catalog.pg_table_is_visible(c.oid)");
    }
    pin_put_str(out, " ORDER BY a.attnum");
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
const char pin_blocked_not_table[] = "it does not write a table (a view or foreign table)";
const char pin_blocked_rules[] = "its table has rules";
const char pin_blocked_triggers[] = "its table has triggers";

static const char *blocked_reason(const char *code)
{
    static const char *const reasons[][2] = {
        {"not_table", pin_blocked_not_table},
        {"rules", pin_blocked_rules},
        {"rls", "its table has row-level security"},
        {"inherits", "its table has inheritance children"},
        {"triggers", pin_blocked_triggers},
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
    bool vol =
        classify_statement(sql, opt, &r) != 0 || r.parse_error || r.nondeterministic || r.user_code;
    free(sql);
    return vol;
}

/* A view's queries (pg_get_viewdef's, each ending with ';'): do they make up values or take
 * them in an order the server does not define, or call code pgdual cannot see into? A text
 * that does not parse is both (when in doubt, count). */
static void classify_definitions(struct pin_table *t, const char *defs,
                                 const struct classify_options *opt)
{
    struct pin_plan p;
    if (pin_analyze(defs, opt, &p) != 0) {
        t->def_values = t->def_code = true;
        return;
    }
    for (int i = 0; i < p.n; i++) {
        t->def_values = t->def_values || p.stmts[i].nondeterministic;
        t->def_code = t->def_code || p.stmts[i].user_code;
    }
    pin_plan_free(&p);
}

/* A trigger event mask as the lookup sends it (decimal). */
static unsigned trigger_events(const char *s)
{
    const unsigned all = PIN_TRIG_INSERT | PIN_TRIG_DELETE | PIN_TRIG_UPDATE;
    char *end = NULL;
    unsigned long v = strtoul(s, &end, 10);
    if (!s[0] || !end || *end || v > all) {
        return all;
    }
    return (unsigned)v & all;
}

struct pin_column *pin_table_add_column(struct pin_table *t, const char *name)
{
    struct pin_column *cols = realloc(t->cols, ((size_t)t->ncols + 1) * sizeof(*cols));
    if (!cols) {
        return NULL;
    }
    t->cols = cols;
    struct pin_column *c = &cols[t->ncols++];
    memset(c, 0, sizeof(*c));
    pin_copy_name(c->name, name);
    return c;
}

int pin_table_add_row(struct pin_table *t, const uint8_t *body, size_t len,
                      const struct classify_options *opt)
{
    struct wire_reader rd;
    wire_reader_init(&rd, body, len);
    if (wire_u16(&rd) != 12) {
        return PIN_EPROTO;
    }
    char qname[sizeof(t->qname)], blocked[16], name[PIN_NAME_MAX + 1];
    char generated[2], identity[2], pk[2], kind[2], tvalues[12], twrites[12], relkind[2];
    char def[4096];
    bool null_name, null_def, null, null_defs;
    if (row_field(&rd, qname, sizeof(qname), &null) ||
        row_field(&rd, blocked, sizeof(blocked), &null) ||
        row_field(&rd, name, sizeof(name), &null_name) ||
        row_field(&rd, generated, sizeof(generated), &null) ||
        row_field(&rd, identity, sizeof(identity), &null) ||
        row_field(&rd, def, sizeof(def), &null_def) || row_field(&rd, pk, sizeof(pk), &null) ||
        row_field(&rd, kind, sizeof(kind), &null) ||
        row_field(&rd, tvalues, sizeof(tvalues), &null) ||
        row_field(&rd, twrites, sizeof(twrites), &null) ||
        row_field(&rd, relkind, sizeof(relkind), &null)) {
        return PIN_EPROTO;
    }
    /* The view's queries, as long as they are (a copy), on the first row only: each row has
     * them. */
    uint32_t defs_len = wire_u32(&rd);
    null_defs = defs_len == 0xffffffffu;
    const uint8_t *defs = null_defs || rd.failed ? NULL : wire_bytes(&rd, defs_len);
    if (rd.failed) {
        return PIN_EPROTO;
    }
    if (!t->found && !null_defs) {
        char *text = malloc((size_t)defs_len + 1);
        if (!text) {
            return PIN_ENOMEM;
        }
        memcpy(text, defs, defs_len);
        text[defs_len] = '\0';
        if (strlen(text) == defs_len) {
            classify_definitions(t, text, opt);
        } else {
            t->def_values = t->def_code = true; /* a NUL inside: not a text pgdual can read */
        }
        free(text);
    }
    t->relkind = relkind[0];
    t->found = true;
    /* Unreadable: taken as every event (when in doubt, count). */
    t->trig_values = trigger_events(tvalues);
    t->trig_writes = trigger_events(twrites);
    snprintf(t->qname, sizeof(t->qname), "%s", qname);
    t->blocked = blocked_reason(blocked);
    if (null_name) {
        return 0; /* a table without columns */
    }
    struct pin_column *c = pin_table_add_column(t, name);
    if (!c) {
        return PIN_ENOMEM;
    }
    c->generated = generated[0] == 't';
    c->pk = pk[0] == 't';
    c->kind = kind[0] == 'j'   ? PIN_VALUE_JSON
              : kind[0] == 'b' ? PIN_VALUE_JSONB
              : kind[0] == 'a' ? PIN_VALUE_ARRAY
                               : PIN_VALUE_PLAIN;
    t->kinds_known = true; /* the catalog's own kinds (domains followed) */
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

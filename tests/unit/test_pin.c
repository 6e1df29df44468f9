/* tests/unit/test_pin.c: protocol/pin.c, the statement side: what pin_analyze finds in each
 * statement of a text (and the exact bytes each one covers), the catalog lookup and its rows,
 * and the pin decision with every reason. The SQL pgdual appends and builds is in
 * test_pin_shape.c, the reply side in test_pin_reply.c. */
#include <pg_query/pg_query.pb-c.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <pg_query.h>

#include "pin_fixtures.h"
#include "protocol/pin.h"
#include "protocol/wire.h"

/* ---- helpers ------------------------------------------------------------------------------ */

static struct pin_plan plan_of(const char *sql)
{
    struct pin_plan p;
    assert_int_equal(pin_analyze(sql, NULL, &p), 0);
    return p;
}

/* The statement's columns joined with ",", or "-" when it names none. */
static const char *cols_of(const struct pin_stmt *st)
{
    static char buf[512];
    if (st->ncols < 0) {
        return "-";
    }
    buf[0] = '\0';
    for (int i = 0; i < st->ncols; i++) {
        strcat(buf, i ? "," : "");
        strcat(buf, st->cols[i]);
    }
    return buf;
}

/* What one single-statement text should analyze to. Flags: N nondeterministic, D uses_default,
 * U user_code, W nested_dml, I nested_insert, R client_returning. */
struct want {
    const char *sql;
    enum pin_verb verb;
    const char *schema, *rel, *ref;
    const char *flags;
    enum pin_conflict conflict;
    const char *cols;
};

static void check_want(const struct want *w)
{
    struct pin_plan p = plan_of(w->sql);
    print_message("%s\n", w->sql);
    assert_int_equal(p.n, 1);
    const struct pin_stmt *st = &p.stmts[0];
    assert_int_equal(st->verb, w->verb);
    assert_int_equal(st->start, 0);
    assert_int_equal(st->end, strlen(w->sql));
    assert_string_equal(st->schema, w->schema);
    assert_string_equal(st->rel, w->rel);
    assert_string_equal(st->ref, w->ref);
    char flags[8], *f = flags;
    const bool on[] = {st->nondeterministic, st->uses_default,  st->user_code,
                       st->nested_dml,       st->nested_insert, st->client_returning};
    for (int i = 0; i < 6; i++) {
        if (on[i]) {
            *f++ = "NDUWIR"[i];
        }
    }
    *f = '\0';
    assert_string_equal(flags, w->flags);
    assert_int_equal(st->conflict, w->conflict);
    assert_string_equal(cols_of(st), w->cols);
    pin_plan_free(&p);
}

/* ---- pin_analyze -------------------------------------------------------------------------- */

static void test_analyze_insert(void **state)
{
    (void)state;
    const struct want w[] = {
        {"INSERT INTO t VALUES (1, 'a')", PIN_VERB_INSERT, "", "t", "t", "", 0, "-"},
        {"INSERT INTO t (a, \"B c\") SELECT x, y FROM s", PIN_VERB_INSERT, "", "t", "t", "", 0,
         "a,B c"},
        {"INSERT INTO T (A) VALUES (1)", PIN_VERB_INSERT, "", "t", "t", "", 0, "a"},
        {"INSERT INTO s1.t AS x DEFAULT VALUES", PIN_VERB_INSERT, "s1", "t", "x", "D", 0, "-"},
        {"INSERT INTO t (a, b) VALUES (DEFAULT, 1), (2, 3) ON CONFLICT DO NOTHING", PIN_VERB_INSERT,
         "", "t", "t", "D", PIN_CONFLICT_NOTHING, "a,b"},
        {"INSERT INTO \"Sch\".\"Ta b\" (id) VALUES (1) ON CONFLICT (id) DO UPDATE SET v = "
         "EXCLUDED.v RETURNING *",
         PIN_VERB_INSERT, "Sch", "Ta b", "Ta b", "R", PIN_CONFLICT_UPDATE, "id"},
        {"INSERT INTO t AS x (id) VALUES (1) ON CONFLICT ON CONSTRAINT t_pkey DO UPDATE SET v = "
         "now() WHERE x.v IS NULL",
         PIN_VERB_INSERT, "", "t", "x", "N", PIN_CONFLICT_UPDATE, "id"},
        {"INSERT INTO t (id, ts) VALUES (nextval('s'), now())", PIN_VERB_INSERT, "", "t", "t", "N",
         0, "id,ts"},
        {"INSERT INTO t (u) VALUES (gen_random_uuid())", PIN_VERB_INSERT, "", "t", "t", "N", 0,
         "u"},
        {"INSERT INTO t SELECT * FROM s LIMIT 3", PIN_VERB_INSERT, "", "t", "t", "N", 0, "-"},
        {"INSERT INTO t SELECT * FROM s ORDER BY id OFFSET 2", PIN_VERB_INSERT, "", "t", "t", "N",
         0, "-"},
        {"INSERT INTO t (a[1], b.f) VALUES (1, 2)", PIN_VERB_INSERT, "", "t", "t", "", 0, "a,b"},
        {"INSERT INTO t VALUES (f(1))", PIN_VERB_INSERT, "", "t", "t", "U", 0, "-"},
        {"INSERT INTO t VALUES (lower('A')) RETURNING id", PIN_VERB_INSERT, "", "t", "t", "R", 0,
         "-"},
    };
    for (size_t i = 0; i < sizeof(w) / sizeof(w[0]); i++) {
        check_want(&w[i]);
    }
}

static void test_analyze_update_delete(void **state)
{
    (void)state;
    const struct want w[] = {
        {"UPDATE t SET touched = now() WHERE id = 1", PIN_VERB_UPDATE, "", "t", "t", "N", 0,
         "touched"},
        {"UPDATE t SET r = random()", PIN_VERB_UPDATE, "", "t", "t", "N", 0, "r"},
        {"UPDATE t SET ts = CURRENT_TIMESTAMP", PIN_VERB_UPDATE, "", "t", "t", "N", 0, "ts"},
        {"UPDATE s.t AS x SET a = DEFAULT, b = 2", PIN_VERB_UPDATE, "s", "t", "x", "D", 0, "a,b"},
        {"UPDATE t SET v = v + 1 WHERE id = 3", PIN_VERB_UPDATE, "", "t", "t", "", 0, "v"},
        {"UPDATE t SET v = 1 WHERE id IN (SELECT id FROM t LIMIT 10)", PIN_VERB_UPDATE, "", "t",
         "t", "N", 0, "v"},
        {"UPDATE q SET s = 1 WHERE id IN (SELECT id FROM q FOR UPDATE SKIP LOCKED) RETURNING id",
         PIN_VERB_UPDATE, "", "q", "q", "NR", 0, "s"},
        {"UPDATE q SET s = 1 WHERE id IN (SELECT id FROM q FOR UPDATE)", PIN_VERB_UPDATE, "", "q",
         "q", "", 0, "s"},
        {"UPDATE t SET v = 1 WHERE ctid = '(0,1)'", PIN_VERB_UPDATE, "", "t", "t", "N", 0, "v"},
        {"UPDATE t SET v = 1 WHERE t.ctid = '(0,1)'", PIN_VERB_UPDATE, "", "t", "t", "N", 0, "v"},
        {"UPDATE t SET a[1] = 2, (b, c) = (1, 2), d.f = 3", PIN_VERB_UPDATE, "", "t", "t", "", 0,
         "a,b,c,d"},
        {"UPDATE ONLY t SET v = f(v)", PIN_VERB_UPDATE, "", "t", "t", "U", 0, "v"},
        {"DELETE FROM q WHERE id IN (SELECT id FROM q LIMIT 10)", PIN_VERB_DELETE, "", "q", "q",
         "N", 0, "-"},
        {"DELETE FROM q WHERE id IN (SELECT id FROM q TABLESAMPLE SYSTEM (10))", PIN_VERB_DELETE,
         "", "q", "q", "N", 0, "-"},
        {"DELETE FROM ONLY s.q AS z WHERE id = 1 RETURNING *", PIN_VERB_DELETE, "s", "q", "z", "R",
         0, "-"},
    };
    for (size_t i = 0; i < sizeof(w) / sizeof(w[0]); i++) {
        check_want(&w[i]);
    }
}

static void test_analyze_other_verbs(void **state)
{
    (void)state;
    const struct want w[] = {
        {"WITH d AS (DELETE FROM q RETURNING id) INSERT INTO t (id) SELECT id FROM d",
         PIN_VERB_INSERT, "", "t", "t", "W", 0, "id"},
        {"WITH i AS (INSERT INTO t (v) VALUES (1) RETURNING id) UPDATE u SET x = 1 WHERE id IN "
         "(SELECT id FROM i)",
         PIN_VERB_UPDATE, "", "u", "u", "WI", 0, "x"},
        {"WITH d AS (DELETE FROM q RETURNING *) SELECT * FROM d", PIN_VERB_NONE, "", "", "", "W", 0,
         "-"},
        {"WITH s AS (SELECT 1) DELETE FROM q WHERE id IN (SELECT * FROM s)", PIN_VERB_DELETE, "",
         "q", "q", "", 0, "-"},
        {"MERGE INTO t AS m USING s ON m.id = s.id WHEN NOT MATCHED THEN INSERT VALUES (s.id)",
         PIN_VERB_MERGE, "", "t", "m", "", 0, "-"},
        {"COPY t (a, b) FROM STDIN", PIN_VERB_COPY, "", "t", "t", "", 0, "a,b"},
        {"COPY s.t FROM STDIN WITH (FORMAT csv)", PIN_VERB_COPY, "s", "t", "t", "", 0, "-"},
        {"COPY t TO STDOUT", PIN_VERB_NONE, "", "", "", "", 0, "-"},
        {"COPY (SELECT 1) TO STDOUT", PIN_VERB_NONE, "", "", "", "", 0, "-"},
        {"SELECT now()", PIN_VERB_NONE, "", "", "", "N", 0, "-"},
        {"SELECT * FROM q LIMIT 1 FOR UPDATE SKIP LOCKED", PIN_VERB_NONE, "", "", "", "N", 0, "-"},
        /* Writes nothing, but names the table it creates (pin_plan_created). */
        {"CREATE TABLE x (id serial)", PIN_VERB_NONE, "", "x", "x", "", 0, "-"},
    };
    for (size_t i = 0; i < sizeof(w) / sizeof(w[0]); i++) {
        check_want(&w[i]);
    }
}

/* Each statement's [start, end) sliced out of the text. */
static void check_slices(const char *sql, const char *const *want, int n)
{
    struct pin_plan p = plan_of(sql);
    assert_int_equal(p.n, n);
    for (int i = 0; i < n; i++) {
        const struct pin_stmt *st = &p.stmts[i];
        assert_true(st->start <= st->end && st->end <= strlen(sql));
        char got[256];
        snprintf(got, sizeof(got), "%.*s", (int)(st->end - st->start), sql + st->start);
        assert_string_equal(got, want[i]);
    }
    pin_plan_free(&p);
}

static void test_analyze_offsets(void **state)
{
    (void)state;
    const char *multi = "INSERT INTO t VALUES (1);\n  UPDATE t SET v = now() -- why\n; SELECT 1;"
                        "/* c */DELETE FROM t WHERE id = 2 -- end";
    const char *const multi_want[] = {"INSERT INTO t VALUES (1)",
                                      "\n  UPDATE t SET v = now() -- why\n", " SELECT 1",
                                      "/* c */DELETE FROM t WHERE id = 2 -- end"};
    check_slices(multi, multi_want, 4);
    const char *const one[] = {"INSERT INTO t VALUES (1) -- trailing"};
    check_slices("INSERT INTO t VALUES (1) -- trailing", one, 1);
    const char *const semi[] = {"INSERT INTO t VALUES (1)"};
    check_slices("INSERT INTO t VALUES (1); -- trailing\n", semi, 1);
    check_slices(";;INSERT INTO t VALUES (1);;", semi, 1);
    const char *const utf8[] = {"UPDATE t SET v = '\xc3\xa9\xe2\x82\xac'", " DELETE FROM t"};
    check_slices("UPDATE t SET v = '\xc3\xa9\xe2\x82\xac'; DELETE FROM t", utf8, 2);
    const char *const dollar[] = {"UPDATE t SET v = $x$;$x$", " SELECT ';'"};
    check_slices("UPDATE t SET v = $x$;$x$; SELECT ';'", dollar, 2);
    struct pin_plan p = plan_of(multi);
    assert_int_equal(p.stmts[0].verb, PIN_VERB_INSERT);
    assert_int_equal(p.stmts[1].verb, PIN_VERB_UPDATE);
    assert_true(p.stmts[1].nondeterministic);
    assert_int_equal(p.stmts[2].verb, PIN_VERB_NONE);
    assert_int_equal(p.stmts[3].verb, PIN_VERB_DELETE);
    assert_false(p.stmts[3].nondeterministic);
    pin_plan_free(&p);
}

/* Statements that may undo what pgdual made earlier in the transaction (its WITH-rows table). */
static void test_analyze_rolls_back(void **state)
{
    (void)state;
    struct pin_plan p = plan_of("BEGIN; SAVEPOINT a; ROLLBACK TO a; ROLLBACK TO SAVEPOINT a; "
                                "ROLLBACK; ABORT; COMMIT; ROLLBACK PREPARED 'x'; SELECT 1");
    assert_int_equal(p.n, 9);
    const bool want[9] = {false, false, true, true, true, true, true, true, false};
    for (int i = 0; i < 9; i++) {
        assert_int_equal(p.stmts[i].rolls_back, want[i]);
    }
    pin_plan_free(&p);
}

static void test_analyze_empty_and_errors(void **state)
{
    (void)state;
    struct pin_plan p;
    assert_int_equal(pin_analyze("", NULL, &p), 0);
    assert_int_equal(p.n, 0);
    assert_int_equal(pin_analyze("-- nothing", NULL, &p), 0);
    assert_int_equal(p.n, 0);
    pin_plan_free(&p);
    assert_int_equal(pin_analyze("INSERT INTO", NULL, &p), PIN_EPARSE);
    assert_int_equal(p.n, 0);
    assert_null(p.stmts);
    assert_int_equal(pin_analyze("UPDATE t SET v = 1; DELETE FROM", NULL, &p), PIN_EPARSE);
    assert_int_equal(p.n, 0);
    pin_plan_free(&p); /* safe on an empty plan */
    /* Identifiers are cut to 63 bytes, as the server cuts them. */
    char sql[200], rel[80];
    memset(rel, 'r', 70);
    rel[70] = '\0';
    snprintf(sql, sizeof(sql), "DELETE FROM %s WHERE id IN (SELECT id FROM x LIMIT 1)", rel);
    p = plan_of(sql);
    assert_int_equal(strlen(p.stmts[0].rel), PIN_NAME_MAX);
    assert_int_equal(strlen(p.stmts[0].ref), PIN_NAME_MAX);
    pin_plan_free(&p);
}

/* ---- the catalog ---------------------------------------------------------------------------- */

/* The lookup's code words for why a table cannot be pinned, and what pin_decide says for each
 * (the last two are not the lookup's). */
static const struct {
    const char *code, *why;
} blocked[] = {
    {"not_table", "it does not write a table (a view or foreign table)"},
    {"rules", "its table has rules"},
    {"rls", "its table has row-level security"},
    {"inherits", "its table has inheritance children"},
    {"triggers", "its table has triggers"},
    {"no_select", "no SELECT privilege on its table (RETURNING needs it)"},
    {"what", "its table cannot be pinned"},
    {"a_code_longer_than_the_buffer", "its table cannot be pinned"},
};

/* The lookup for sql's first statement, with its WHERE clause cut out; checks it parses, selects
 * the 12 columns pin_table_add_row reads and produces each code word pin_table_add_row maps. */
static void lookup_where(const char *sql, char *where, size_t cap)
{
    struct pin_plan p = plan_of(sql);
    struct wbuf q;
    wbuf_init(&q);
    assert_int_equal(pin_catalog_query(&p.stmts[0], &q), 0);
    assert_true(q.len > 0);
    assert_int_equal(q.data[q.len - 1], '\0');
    const char *text = (const char *)q.data;
    assert_int_equal(strlen(text) + 1, q.len);
    PgQueryProtobufParseResult r = pg_query_parse_protobuf(text);
    assert_null(r.error);
    PgQuery__ParseResult *tree =
        pg_query__parse_result__unpack(NULL, r.parse_tree.len, (const uint8_t *)r.parse_tree.data);
    assert_non_null(tree);
    assert_int_equal(tree->n_stmts, 1);
    const PgQuery__Node *top = tree->stmts[0]->stmt;
    assert_int_equal(top->node_case, PG_QUERY__NODE__NODE_SELECT_STMT);
    /* qname, blocked, attname, generated, identity, default, pk, json, trigger events (values,
     * writes), relkind, a view's queries */
    assert_int_equal(top->select_stmt->n_target_list, 12);
    pg_query__parse_result__free_unpacked(tree, NULL);
    pg_query_free_protobuf_parse_result(r);
    for (size_t i = 0; i + 2 < sizeof(blocked) / sizeof(blocked[0]); i++) {
        char then[32];
        snprintf(then, sizeof(then), "THEN '%s' ", blocked[i].code);
        assert_non_null(strstr(text, then));
    }
    const char *w = strstr(text, " WHERE c.relname = ");
    assert_non_null(w);
    snprintf(where, cap, "%s", w);
    wbuf_free(&q);
    pin_plan_free(&p);
}

static void test_catalog_query(void **state)
{
    (void)state;
    char where[512];
    lookup_where("INSERT INTO t VALUES (1)", where, sizeof(where));
    assert_string_equal(where, " WHERE c.relname = E't' AND pg_catalog.pg_table_is_visible(c.oid)"
                               " ORDER BY a.attnum");
    /* pg_temp names the session's own temporary schema, whose catalog name is pg_temp_N */
    lookup_where("INSERT INTO pg_temp.tt (v) VALUES (1)", where, sizeof(where));
    assert_string_equal(where, " WHERE c.relname = E'tt' AND n.oid = pg_catalog.pg_my_temp_schema()"
                               " ORDER BY a.attnum");
    lookup_where("UPDATE \"We'ird\".\"T\\x\" SET v = now()", where, sizeof(where));
    assert_string_equal(where, " WHERE c.relname = E'T\\\\x' AND n.nspname = E'We''ird'"
                               " ORDER BY a.attnum");
}

static void test_table_rows(void **state)
{
    (void)state;
    struct pin_table t = {0};
    static const struct {
        const char *name, *flags, *def;
        bool vol;
    } c[] = {
        {"id", "p", "nextval('t_id_seq'::regclass)", true},
        {"ts", "", "now()", true},
        {"r", "", "random()", true},
        {"u", "", "gen_random_uuid()", true},
        {"ct", "", "CURRENT_TIMESTAMP", true},
        {"cd", "", "CURRENT_DATE", true},
        {"ck", "", "clock_timestamp()", true},
        {"nw", "", "'now'::text::date", true},
        {"uf", "", "public.my_default()", true},
        {"uf2", "", "my_default(1)", true},
        {"ident", "i", NULL, true},
        {"k", "", "'x'::text", false},
        {"z", "", "0", false},
        {"lw", "", "lower('A'::text)", false},
        {"g", "g", "(v * 2)", false},
        /* a generation expression is no default: immutable, computed again on the secondary */
        {"g2", "g", "public.dbl(v)", false},
        {"j", "j", NULL, false},
        {"jb", "b", NULL, false},
        {"arr", "a", NULL, false},
        {"plain", "", NULL, false},
        {"Qu\"o te", "pj", NULL, false},
    };
    const size_t n = sizeof(c) / sizeof(c[0]);
    for (size_t i = 0; i < n; i++) {
        col(&t, "public.t", c[i].name, c[i].flags, c[i].def);
    }
    assert_true(t.found);
    assert_true(t.kinds_known); /* the catalog's, domains followed */
    assert_string_equal(t.qname, "public.t");
    assert_null(t.blocked);
    assert_int_equal(t.ncols, (int)n);
    assert_int_equal(t.npk, 2);
    for (size_t i = 0; i < n; i++) {
        print_message("%s\n", c[i].name);
        assert_string_equal(t.cols[i].name, c[i].name);
        assert_int_equal(t.cols[i].volatile_default, c[i].vol);
        assert_int_equal(t.cols[i].generated, strchr(c[i].flags, 'g') != NULL);
        assert_int_equal(t.cols[i].pk, strchr(c[i].flags, 'p') != NULL);
        enum pin_value_kind kind = strchr(c[i].flags, 'j')   ? PIN_VALUE_JSON
                                   : strchr(c[i].flags, 'b') ? PIN_VALUE_JSONB
                                   : strchr(c[i].flags, 'a') ? PIN_VALUE_ARRAY
                                                             : PIN_VALUE_PLAIN;
        assert_int_equal(t.cols[i].kind, kind);
    }
    pin_table_free(&t);
    assert_int_equal(t.ncols, 0);
    assert_null(t.cols);
    /* A default too long to read whole is taken as one that makes up values. */
    char *longdef = malloc(5001);
    assert_non_null(longdef);
    memset(longdef, '0', 5000);
    longdef[5000] = '\0';
    col(&t, "public.t", "big", "", longdef);
    assert_true(t.cols[0].volatile_default);
    free(longdef);
    /* A name longer than 63 bytes is cut as the server would have cut it. */
    col(&t, "public.t", "nnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnn",
        "", NULL);
    assert_int_equal(strlen(t.cols[1].name), PIN_NAME_MAX);
    pin_table_free(&t);
}

static void test_table_blocked_and_empty(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(blocked) / sizeof(blocked[0]); i++) {
        struct pin_table t = {0};
        const char *v[8] = {"s.\"T\"", blocked[i].code, "id", "f", "f", NULL, "t", "f"};
        assert_int_equal(add_row(&t, v), 0);
        assert_string_equal(t.qname, "s.\"T\"");
        assert_string_equal(t.blocked, blocked[i].why);
        pin_table_free(&t);
    }
    /* A table without columns: one row, its attname (and what depends on it) NULL. */
    struct pin_table t = {0};
    const char *v[8] = {"public.nocols", "", NULL, NULL, NULL, NULL, "f", "f"};
    assert_int_equal(add_row(&t, v), 0);
    assert_true(t.found);
    assert_string_equal(t.qname, "public.nocols");
    assert_int_equal(t.ncols, 0);
    assert_int_equal(t.npk, 0);
    pin_table_free(&t);
}

static void test_table_malformed(void **state)
{
    (void)state;
    struct pin_table t = {0};
    const uint8_t seven[] = {0, 7, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
                             0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0};
    assert_int_equal(pin_table_add_row(&t, seven, sizeof(seven), NULL), PIN_EPROTO);
    assert_int_equal(pin_table_add_row(&t, seven, 0, NULL), PIN_EPROTO);
    assert_int_equal(pin_table_add_row(&t, seven, 1, NULL), PIN_EPROTO);
    /* 12 fields announced, 11 present */
    struct wbuf b;
    wbuf_init(&b);
    wbuf_put_u16(&b, 12);
    for (int i = 0; i < 11; i++) {
        wbuf_put_u32(&b, 1);
        wbuf_put_u8(&b, 'f');
    }
    assert_int_equal(pin_table_add_row(&t, b.data, b.len, NULL), PIN_EPROTO);
    /* a value longer than the body */
    wbuf_put_u32(&b, 100);
    wbuf_put_u8(&b, 'f');
    assert_int_equal(pin_table_add_row(&t, b.data, b.len, NULL), PIN_EPROTO);
    wbuf_free(&b);
    assert_false(t.found);
    assert_int_equal(t.ncols, 0);
    pin_table_free(&t);
}

/* ---- pin_decide ----------------------------------------------------------------------------- */

/* The decision for sql's only statement against t; want_why NULL for no reason. */
/* The decision for st against t, and its reason (want_why NULL: none). */
static void check_decided(const struct pin_stmt *st, const struct pin_table *t, enum pin_need want,
                          const char *want_why)
{
    const char *why = "unset";
    assert_int_equal(pin_decide(st, t, &why), want);
    if (want_why) {
        assert_non_null(why);
        assert_string_equal(why, want_why);
    } else {
        assert_null(why);
    }
}

static void check_decide(const char *sql, const struct pin_table *t, enum pin_need want,
                         const char *want_why)
{
    print_message("%s\n", sql);
    struct pin_plan p = plan_of(sql);
    assert_int_equal(p.n, 1);
    check_decided(&p.stmts[0], t, want, want_why);
    pin_plan_free(&p);
}

static void test_created_table(void **state)
{
    (void)state;
    struct pin_plan p = plan_of(
        "CREATE TABLE c (id serial, k int PRIMARY KEY, r float8 DEFAULT "
        "random(), d int DEFAULT 7, g int GENERATED ALWAYS AS (k * 2) "
        "STORED, j jsonb, a int[], js json); INSERT INTO c (k) VALUES (1); INSERT INTO other "
        "(k) VALUES (1); CREATE TABLE l (LIKE c); INSERT INTO l VALUES (1)");
    assert_int_equal(p.n, 5);
    const struct pin_table *t = pin_plan_created(&p, 1);
    assert_non_null(t);
    assert_int_equal(t->ncols, 8);
    assert_int_equal(t->npk, 1);
    assert_true(t->cols[0].volatile_default); /* serial */
    assert_true(t->cols[1].pk);
    assert_true(t->cols[2].volatile_default);  /* random() */
    assert_false(t->cols[3].volatile_default); /* 7 */
    assert_true(t->cols[4].generated);
    assert_false(t->kinds_known); /* a domain would not be seen: no per-execution check */
    assert_int_equal(t->cols[5].kind, PIN_VALUE_JSONB);
    assert_int_equal(t->cols[6].kind, PIN_VALUE_ARRAY);
    assert_int_equal(t->cols[7].kind, PIN_VALUE_JSON);
    assert_int_equal(t->cols[3].kind, PIN_VALUE_PLAIN);
    assert_null(pin_plan_created(&p, 2)); /* another table */
    assert_null(pin_plan_created(&p, 4)); /* LIKE: its columns are not in the statement */
    const char *why = NULL;
    assert_int_equal(pin_decide(&p.stmts[1], t, &why), PIN_NEEDED);
    pin_plan_free(&p);
}

static void test_decide_insert_copy_merge(void **state)
{
    (void)state;
    struct pin_table t, nopk = {0}, plain = {0}, missing = {0}, trig = {0};
    table_t(&t);
    col(&nopk, "public.t", "id", "", "nextval('t_id_seq'::regclass)");
    col(&nopk, "public.t", "v", "", NULL);
    col(&plain, "public.t", "id", "p", NULL);
    col(&plain, "public.t", "v", "", "0");
    const char *trow[8] = {"public.t", "triggers", "id", "f", "t", NULL, "t", "f"};
    assert_int_equal(add_row(&trig, trow), 0);
    const char *unknown = "the table's defaults are unknown (no catalog lookup possible here)";

    check_decide("INSERT INTO t (id, v, ts) VALUES (1, 2, '2020-01-01')", &t, PIN_NOT_NEEDED, NULL);
    check_decide("INSERT INTO t (ts, id) SELECT '2020-01-01', 1", &t, PIN_NOT_NEEDED, NULL);
    check_decide("INSERT INTO t (v) VALUES (1)", &t, PIN_NEEDED, NULL);
    check_decide("INSERT INTO t (id, v) VALUES (1, 2)", &t, PIN_NEEDED, NULL); /* ts */
    check_decide("INSERT INTO t VALUES (1, 2, '2020-01-01')", &t, PIN_NEEDED, NULL);
    check_decide("INSERT INTO t (id, v, ts) VALUES (1, 2, now())", &t, PIN_NEEDED, NULL);
    check_decide("INSERT INTO t (id, v, ts) VALUES (1, DEFAULT, '2020-01-01')", &t, PIN_NEEDED,
                 NULL);
    check_decide("INSERT INTO t (v) VALUES (1) ON CONFLICT (v) DO UPDATE SET v = 2", &t, PIN_NEEDED,
                 NULL);
    check_decide("INSERT INTO t (v) VALUES (1)", &nopk, PIN_NEEDED, NULL);
    check_decide("INSERT INTO t (v) VALUES (1) ON CONFLICT DO NOTHING", &nopk, PIN_NEEDED, NULL);
    check_decide("INSERT INTO t (v) VALUES (1)", &plain, PIN_NOT_NEEDED, NULL);
    check_decide("INSERT INTO t DEFAULT VALUES", &plain, PIN_NEEDED, NULL);
    check_decide("INSERT INTO t (v) VALUES (1)", &missing, PIN_IMPOSSIBLE,
                 "its table did not exist when pgdual looked it up (created in the same query?)");

    check_decide("INSERT INTO t (id, v, ts) VALUES (1, 2, '2020-01-01')", NULL, PIN_IMPOSSIBLE,
                 unknown);
    check_decide("INSERT INTO t (id) VALUES (nextval('s'))", NULL, PIN_IMPOSSIBLE,
                 "its table is unknown (no catalog lookup possible here)");
    check_decide("INSERT INTO t (id) VALUES (nextval('s'))", &missing, PIN_IMPOSSIBLE,
                 "its table was not found");
    check_decide("INSERT INTO t (v) VALUES (f(1))", &t, PIN_IMPOSSIBLE, pin_why_user_code);
    check_decide("INSERT INTO t (v) VALUES (1)", &trig, PIN_IMPOSSIBLE, "its table has triggers");
    /* Code pgdual cannot see into runs again on the secondary: not pinned, never silent. */
    check_decide("DO $$ BEGIN INSERT INTO t (v) VALUES (1); END $$", NULL, PIN_IMPOSSIBLE,
                 pin_why_user_code);
    check_decide("CALL p(1)", NULL, PIN_IMPOSSIBLE, pin_why_user_code);
    check_decide("SELECT f(1)", NULL, PIN_IMPOSSIBLE, pin_why_user_code);
    check_decide("SELECT abs(1)", NULL, PIN_NOT_NEEDED, NULL);
    /* DDL that only stores a call runs nothing now; ADD COLUMN runs its default on every row */
    check_decide("CREATE TABLE x (k int DEFAULT f())", NULL, PIN_NOT_NEEDED, NULL);
    check_decide("CREATE VIEW v AS SELECT f(1)", NULL, PIN_NOT_NEEDED, NULL);
    check_decide("ALTER TABLE t ALTER COLUMN v SET DEFAULT f()", NULL, PIN_NOT_NEEDED, NULL);
    check_decide("ALTER TABLE t ADD COLUMN c int DEFAULT f()", NULL, PIN_IMPOSSIBLE,
                 pin_why_user_code);
    check_decide("EXPLAIN ANALYZE SELECT f(1)", NULL, PIN_IMPOSSIBLE, pin_why_user_code);
    check_decide("ALTER TABLE t ALTER COLUMN v TYPE text USING f(v)", NULL, PIN_IMPOSSIBLE,
                 pin_why_user_code);
    check_decide("ALTER TABLE t ADD CONSTRAINT c CHECK (f(v) > 0)", NULL, PIN_IMPOSSIBLE,
                 pin_why_user_code);
    check_decide("CREATE INDEX ON t (f(v))", NULL, PIN_IMPOSSIBLE, pin_why_user_code);
    check_decide("INSERT INTO t (v) VALUES (1) ON CONFLICT (v) DO UPDATE SET v = 2", &nopk,
                 PIN_IMPOSSIBLE, "ON CONFLICT DO UPDATE on a table without a primary key");

    check_decide("COPY t (id, v, ts) FROM STDIN", &t, PIN_NOT_NEEDED, NULL);
    check_decide("COPY t (v) FROM STDIN", &t, PIN_IMPOSSIBLE,
                 "COPY fills a default the server makes up");
    check_decide("COPY t FROM STDIN", &t, PIN_IMPOSSIBLE,
                 "COPY fills a default the server makes up");
    check_decide("COPY t FROM STDIN", &plain, PIN_NOT_NEEDED, NULL);
    check_decide("COPY t FROM STDIN", NULL, PIN_IMPOSSIBLE, unknown);
    /* A view (or foreign table) and a table with rules: an INSERT fires defaults of tables the
     * lookup did not read (INSERT INTO v (x) into a view over a serial table draws an id). */
    const char *blocked_by[] = {"not_table", "rules", "triggers"};
    for (int i = 0; i < 3; i++) {
        struct pin_table v = {0};
        const char *vrow[8] = {"public.v", blocked_by[i], "v", "f", "f", NULL, "f", "f"};
        assert_int_equal(add_row(&v, vrow), 0);
        check_decide("INSERT INTO v (v) VALUES (1)", &v, i < 2 ? PIN_IMPOSSIBLE : PIN_NOT_NEEDED,
                     i < 2 ? v.blocked : NULL);
        check_decide("COPY v FROM STDIN", &v, i < 2 ? PIN_IMPOSSIBLE : PIN_NOT_NEEDED,
                     i < 2 ? v.blocked : NULL);
        /* Rules write what the statement does not show; a trigger only counts where the
         * statement itself makes up values (a documented limit). */
        check_decide("UPDATE v SET v = 1", &v, i == 1 ? PIN_IMPOSSIBLE : PIN_NOT_NEEDED,
                     i == 1 ? v.blocked : NULL);
        pin_table_free(&v);
    }
    /* A table without columns: a row holds no value to make up (pin_shape_new would have no
     * column to return), only how many rows there are may differ. */
    struct pin_table empty = {0};
    const char *erow[8] = {"public.t", "", NULL, NULL, NULL, NULL, "f", "f"};
    assert_int_equal(add_row(&empty, erow), 0);
    check_decide("INSERT INTO t DEFAULT VALUES", &empty, PIN_NOT_NEEDED, NULL);
    check_decide("INSERT INTO t SELECT FROM generate_series(1, 3) LIMIT 2", &empty, PIN_IMPOSSIBLE,
                 "its table has no column to return");
    pin_table_free(&empty);
    /* A generated column calling a function of the user's fills no default. */
    struct pin_table gen = {0};
    col(&gen, "public.t", "id", "p", NULL);
    col(&gen, "public.t", "v", "", NULL);
    col(&gen, "public.t", "g", "g", "public.dbl(v)");
    check_decide("COPY t (id, v) FROM STDIN", &gen, PIN_NOT_NEEDED, NULL);
    check_decide("INSERT INTO t (id, v) VALUES (1, 2)", &gen, PIN_NOT_NEEDED, NULL);
    pin_table_free(&gen);

    const char *merge = "MERGE INTO t USING s ON t.id = s.id WHEN NOT MATCHED THEN INSERT (v) "
                        "VALUES (s.v)";
    check_decide(merge, &t, PIN_IMPOSSIBLE, "MERGE has no RETURNING");
    check_decide(merge, &plain, PIN_NOT_NEEDED, NULL);
    check_decide(merge, NULL, PIN_IMPOSSIBLE, unknown);
    check_decide("MERGE INTO t USING s ON t.id = s.id WHEN MATCHED THEN UPDATE SET v = random()",
                 &plain, PIN_IMPOSSIBLE, "MERGE has no RETURNING");
    pin_table_free(&t);
    pin_table_free(&nopk);
    pin_table_free(&plain);
    pin_table_free(&trig);
}

static void test_decide_update_delete_other(void **state)
{
    (void)state;
    struct pin_table t, nopk = {0}, missing = {0};
    table_t(&t);
    col(&nopk, "public.t", "id", "", NULL);
    col(&nopk, "public.t", "ts", "", NULL);
    check_decide("UPDATE t SET v = 1 WHERE id = 1", &t, PIN_NOT_NEEDED, NULL);
    check_decide("UPDATE t SET v = 1 WHERE id = 1", NULL, PIN_NOT_NEEDED, NULL);
    check_decide("UPDATE t SET ts = now()", &t, PIN_NEEDED, NULL);
    check_decide("UPDATE t SET ts = DEFAULT WHERE id = 2", &t, PIN_NEEDED, NULL);
    check_decide("UPDATE t SET v = 0 WHERE id IN (SELECT id FROM t LIMIT 2)", &t, PIN_NEEDED, NULL);
    /* values picked by an order the server does not define */
    check_decide("UPDATE t SET v = o.v FROM o WHERE o.k = t.id", &t, PIN_NEEDED, NULL);
    check_decide("UPDATE t SET v = (SELECT string_agg(x, ',') FROM o)::int", &t, PIN_NEEDED, NULL);
    check_decide("UPDATE t SET v = (SELECT string_agg(x, ',' ORDER BY k) FROM o)::int", &t,
                 PIN_NEEDED, NULL); /* k may tie */
    check_decide("INSERT INTO t (id, v, ts) SELECT row_number() OVER (), v, ts FROM o", &t,
                 PIN_NEEDED, NULL);
    check_decide("INSERT INTO t (id, v, ts) SELECT row_number() OVER (ORDER BY k), v, ts FROM o",
                 &t, PIN_NEEDED, NULL);
    check_decide("INSERT INTO t (id, v, ts) SELECT DISTINCT ON (k) k, v, ts FROM o", &t, PIN_NEEDED,
                 NULL);
    check_decide("INSERT INTO t (id, v, ts) SELECT DISTINCT k, v, ts FROM o", &t, PIN_NOT_NEEDED,
                 NULL);
    check_decide(
        "INSERT INTO t (id, v, ts) SELECT k, array_agg(v)::text::int, max(ts) FROM o GROUP BY k",
        &t, PIN_NEEDED, NULL);
    check_decide("DELETE FROM t USING o WHERE o.k = t.id", &t, PIN_NOT_NEEDED, NULL);
    /* ON CONFLICT DO NOTHING keeps the first source row of a key: first in a relation's order */
    check_decide("INSERT INTO t (id, v, ts) SELECT k, v, ts FROM o ON CONFLICT DO NOTHING", &t,
                 PIN_NEEDED, NULL);
    check_decide("INSERT INTO t (id, v, ts) SELECT k, v, ts FROM (SELECT * FROM o) s ON CONFLICT "
                 "(id) DO NOTHING",
                 &t, PIN_NEEDED, NULL);
    check_decide("INSERT INTO t (id, v, ts) VALUES (1, 2, '2026-01-01'), (1, 3, '2026-01-01') ON "
                 "CONFLICT DO NOTHING",
                 &t, PIN_NOT_NEEDED, NULL);
    check_decide("INSERT INTO t (id, v, ts) SELECT g, g, '2026-01-01' FROM generate_series(1, 3) g "
                 "ON CONFLICT DO NOTHING",
                 &t, PIN_NOT_NEEDED, NULL);
    check_decide("INSERT INTO t (id, v, ts) SELECT k, v, ts FROM o", &t, PIN_NOT_NEEDED, NULL);
    check_decide("INSERT INTO t (id, v, ts) SELECT k, v, ts FROM o ON CONFLICT (id) DO UPDATE SET "
                 "v = EXCLUDED.v",
                 &t, PIN_NOT_NEEDED, NULL); /* a key twice fails on both */
    /* each server's own state */
    check_decide("UPDATE t SET v = txid_current() WHERE id = 1", &t, PIN_NEEDED, NULL);
    check_decide("UPDATE t SET v = (SELECT count(*) FROM pg_stat_activity) WHERE id = 1", &t,
                 PIN_NEEDED, NULL);
    check_decide("UPDATE t SET v = (SELECT min(oid) FROM pg_catalog.pg_class) WHERE id = 1", &t,
                 PIN_NEEDED, NULL);
    check_decide("UPDATE t SET v = xmin::text::int WHERE id = 1", &t, PIN_NEEDED, NULL);
    check_decide("INSERT INTO t (id, v, ts) SELECT k, o.tableoid::int, ts FROM o", &t, PIN_NEEDED,
                 NULL);
    check_decide("UPDATE t SET v = 'o'::regclass::oid::int WHERE id = 1", &t, PIN_NEEDED, NULL);
    check_decide("UPDATE t SET v = CAST(x AS xid)::text::int WHERE id = 1", &t, PIN_NEEDED, NULL);
    check_decide("UPDATE t SET v = current_setting('port')::int WHERE id = 1", &t, PIN_NEEDED,
                 NULL);
    check_decide("UPDATE t SET v = current_setting(v::text)::int WHERE id = 1", &t, PIN_NEEDED,
                 NULL);
    check_decide("UPDATE t SET v = current_setting('app.v')::int WHERE id = 1", &t, PIN_NOT_NEEDED,
                 NULL); /* the session's own setting: mirrored by its SET */
    check_decide("UPDATE t SET v = 'o'::regclass::int WHERE id = 1", &t, PIN_NEEDED,
                 NULL); /* a reg* value's OID as a number */
    check_decide("UPDATE t SET v = 'o'::regclass::text::int WHERE id = 1", &t, PIN_NOT_NEEDED,
                 NULL); /* its name */
    check_decide("UPDATE t SET v = length(to_tsvector('english'::regconfig, 'a b')::text) WHERE "
                 "id = 1",
                 &t, PIN_NOT_NEEDED, NULL);
    check_decide("DELETE FROM t WHERE v = 'o'::regclass::oid::int", &t, PIN_NEEDED, NULL);
    check_decide("UPDATE t SET v = 'o'::text::int WHERE id = 1", &t, PIN_NOT_NEEDED, NULL);
    check_decide("SELECT set_config('app.x', random()::text, false)", NULL, PIN_IMPOSSIBLE,
                 "it stores values the server makes up in a setting (set_config)");
    check_decide("SELECT set_config('app.x', 'a', false)", NULL, PIN_NOT_NEEDED, NULL);
    /* taken from a row picked by LIMIT, or from the search_path: no value made up */
    check_decide("SELECT set_config('app.t', id::text, false) FROM ten WHERE slug = 'a' LIMIT 1",
                 NULL, PIN_NOT_NEEDED, NULL);
    check_decide("SELECT set_config('search_path', 'public,' || current_setting('search_path'), "
                 "false)",
                 NULL, PIN_NOT_NEEDED, NULL);
    /* a serial or identity column added to a table is filled in the table's physical order */
    const char *ddl = "it stores values the server makes up (DDL, SELECT INTO, CREATE TABLE AS)";
    check_decide("ALTER TABLE t ADD COLUMN s serial", NULL, PIN_IMPOSSIBLE, ddl);
    check_decide("ALTER TABLE t ADD COLUMN g int GENERATED ALWAYS AS IDENTITY", NULL,
                 PIN_IMPOSSIBLE, ddl);
    check_decide("ALTER TABLE t ADD COLUMN n int DEFAULT 0", NULL, PIN_NOT_NEEDED, NULL);
    /* a column's type changed USING values the server makes up, CREATE TABLE AS EXECUTE */
    check_decide("ALTER TABLE t ALTER COLUMN v TYPE bigint USING (random() * 10)::bigint", NULL,
                 PIN_IMPOSSIBLE, ddl);
    check_decide("ALTER TABLE t ALTER COLUMN v TYPE bigint USING nextval('s')", NULL,
                 PIN_IMPOSSIBLE, ddl);
    check_decide("ALTER TABLE t ALTER COLUMN v TYPE bigint USING v * 2", NULL, PIN_NOT_NEEDED,
                 NULL);
    /* Rails change_column: the DEFAULT set beside the type is stored, not run */
    check_decide(
        "ALTER TABLE t ALTER COLUMN ts TYPE timestamptz, ALTER COLUMN ts SET DEFAULT now()", NULL,
        PIN_NOT_NEEDED, NULL);
    check_decide("ALTER TABLE t ALTER COLUMN ts TYPE timestamptz, ALTER COLUMN ts SET DEFAULT f()",
                 NULL, PIN_NOT_NEEDED, NULL);
    check_decide("ALTER TABLE t ALTER COLUMN v TYPE int USING f(v), ALTER COLUMN v SET DEFAULT 1",
                 NULL, PIN_IMPOSSIBLE, pin_why_user_code);
    check_decide("ALTER TABLE t ALTER COLUMN ts SET DEFAULT now(), ADD COLUMN c float8 DEFAULT "
                 "random()",
                 NULL, PIN_IMPOSSIBLE, ddl);
    check_decide("CREATE TABLE x AS EXECUTE p(1)", NULL, PIN_IMPOSSIBLE, ddl);
    check_decide("CREATE TABLE x AS SELECT 1 AS a", NULL, PIN_NOT_NEEDED, NULL);
    check_decide("ALTER TABLE t ALTER COLUMN id ADD GENERATED ALWAYS AS IDENTITY", NULL,
                 PIN_NOT_NEEDED, NULL);
    check_decide("CREATE TABLE x (id serial PRIMARY KEY)", NULL, PIN_NOT_NEEDED, NULL);
    check_decide("UPDATE t SET ts = now()", &nopk, PIN_IMPOSSIBLE, "its table has no primary key");
    check_decide("UPDATE t SET ts = now()", NULL, PIN_IMPOSSIBLE,
                 "its table is unknown (no catalog lookup possible here)");
    check_decide("UPDATE t SET ts = now()", &missing, PIN_IMPOSSIBLE, "its table was not found");
    check_decide("UPDATE t SET id = id + 1, ts = now()", &t, PIN_IMPOSSIBLE,
                 "it changes the primary key");
    check_decide("UPDATE t SET nosuch = now()", &t, PIN_IMPOSSIBLE,
                 "it sets a column the catalog does not list");
    check_decide("UPDATE t SET v = f(v) WHERE ctid = '(0,1)'", &t, PIN_IMPOSSIBLE,
                 pin_why_user_code);
    check_decide("DELETE FROM t WHERE id = 1", &t, PIN_NOT_NEEDED, NULL);
    check_decide("DELETE FROM t WHERE id IN (SELECT id FROM t LIMIT 5)", &t, PIN_NEEDED, NULL);
    check_decide("DELETE FROM t WHERE id IN (SELECT id FROM t LIMIT 5)", &nopk, PIN_IMPOSSIBLE,
                 "its table has no primary key");
    /* data-modifying WITH */
    const char *cte = "a write nested in another statement (a WITH query, EXPLAIN ANALYZE)";
    check_decide("WITH d AS (DELETE FROM q RETURNING *) SELECT * FROM d", &t, PIN_NOT_NEEDED, NULL);
    check_decide("WITH d AS (DELETE FROM q WHERE id = 1) UPDATE t SET v = 1", &t, PIN_NOT_NEEDED,
                 NULL);
    check_decide("WITH d AS (DELETE FROM q WHERE id IN (SELECT id FROM q LIMIT 1) RETURNING *) "
                 "SELECT * FROM d",
                 &t, PIN_IMPOSSIBLE, cte);
    check_decide("WITH d AS (UPDATE q SET v = DEFAULT RETURNING *) SELECT * FROM d", &t,
                 PIN_IMPOSSIBLE, cte);
    check_decide("WITH i AS (INSERT INTO q (v) VALUES (1) RETURNING *) SELECT * FROM i", &t,
                 PIN_IMPOSSIBLE, cte);
    /* Every column of t with a default the server makes up is named: nothing made up. */
    check_decide("WITH d AS (DELETE FROM q RETURNING id) INSERT INTO t (id, v, ts) SELECT id, 1, "
                 "'2020-01-01' FROM d",
                 &t, PIN_NOT_NEEDED, NULL);
    check_decide("WITH d AS (DELETE FROM q RETURNING id) INSERT INTO t (v) SELECT 1 FROM d", &t,
                 PIN_IMPOSSIBLE, cte);
    check_decide("PREPARE p AS INSERT INTO q DEFAULT VALUES", &t, PIN_IMPOSSIBLE,
                 "SQL PREPARE ... EXECUTE (the extended protocol's Parse/Bind/Execute is pinned)");
    check_decide("PREPARE p AS INSERT INTO t (id, v, ts) VALUES (1, 2, '2020-01-01')", &t,
                 PIN_NOT_NEEDED, NULL);
    check_decide("EXPLAIN ANALYZE DELETE FROM q WHERE id IN (SELECT id FROM q LIMIT 1)", &t,
                 PIN_IMPOSSIBLE, cte);
    check_decide("EXPLAIN ANALYZE DELETE FROM q WHERE id = 1", &t, PIN_NOT_NEEDED, NULL);
    /* not writes */
    check_decide("SELECT now()", NULL, PIN_NOT_NEEDED, NULL);
    check_decide("SELECT * FROM q LIMIT 1 FOR UPDATE SKIP LOCKED", NULL, PIN_NOT_NEEDED, NULL);
    pin_table_free(&t);
    pin_table_free(&nopk);
}

/* A trigger that may make up values or write elsewhere makes a write unpinnable for the events it
 * fires on, even a write that makes up nothing itself; one that does neither changes nothing. */
static void test_decide_triggers(void **state)
{
    (void)state;
    struct pin_table vals = {0}, writes = {0}, quiet = {0}, odd = {0};
    const char *row[8] = {"public.t", "triggers", "id", "f", "f", NULL, "t", "f"};
    const char *row2[8] = {"public.t", "triggers", "v", "f", "f", NULL, "f", "f"};
    assert_int_equal(add_row_trig(&vals, row, "20", "0"), 0); /* INSERT | UPDATE */
    assert_int_equal(add_row_trig(&vals, row2, "20", "0"), 0);
    assert_int_equal(add_row_trig(&writes, row, "8", "8"), 0); /* DELETE */
    assert_int_equal(add_row_trig(&writes, row2, "8", "8"), 0);
    assert_int_equal(add_row_trig(&quiet, row, "0", "0"), 0);
    assert_int_equal(add_row_trig(&quiet, row2, "0", "0"), 0);
    assert_int_equal(add_row_trig(&odd, row, "x", ""), 0); /* unreadable: every event */
    assert_int_equal(vals.trig_values, PIN_TRIG_INSERT | PIN_TRIG_UPDATE);
    assert_int_equal(writes.trig_writes, PIN_TRIG_DELETE);
    assert_int_equal(odd.trig_values, PIN_TRIG_INSERT | PIN_TRIG_UPDATE | PIN_TRIG_DELETE);
    assert_int_equal(odd.trig_writes, PIN_TRIG_INSERT | PIN_TRIG_UPDATE | PIN_TRIG_DELETE);

    check_decide("UPDATE t SET v = 1 WHERE id = 2", &vals, PIN_IMPOSSIBLE, pin_why_trigger_values);
    check_decide("INSERT INTO t (id, v) VALUES (1, 2)", &vals, PIN_IMPOSSIBLE,
                 pin_why_trigger_values);
    check_decide("DELETE FROM t WHERE id = 2", &vals, PIN_NOT_NEEDED, NULL);
    check_decide("DELETE FROM t WHERE id = 2", &writes, PIN_IMPOSSIBLE, pin_why_trigger_writes);
    check_decide("UPDATE t SET v = 1 WHERE id = 2", &writes, PIN_NOT_NEEDED, NULL);
    check_decide("INSERT INTO t (id, v) VALUES (1, 2) ON CONFLICT (id) DO UPDATE SET v = 3",
                 &writes, PIN_NOT_NEEDED, NULL);
    check_decide("MERGE INTO t USING s ON t.id = s.id WHEN MATCHED THEN DELETE", &writes,
                 PIN_IMPOSSIBLE, pin_why_trigger_writes);
    check_decide("COPY t (id, v) FROM STDIN", &vals, PIN_IMPOSSIBLE, pin_why_trigger_values);
    check_decide("UPDATE t SET v = 1 WHERE id = 2", &odd, PIN_IMPOSSIBLE, pin_why_trigger_writes);
    /* A trigger that only checks or raises: today's behaviour (nothing made up: verbatim). */
    check_decide("UPDATE t SET v = 1 WHERE id = 2", &quiet, PIN_NOT_NEEDED, NULL);
    check_decide("SELECT * FROM t", &odd, PIN_NOT_NEEDED, NULL);
    pin_table_free(&vals);
    pin_table_free(&writes);
    pin_table_free(&quiet);
    pin_table_free(&odd);
}

/* ---- views a write reads ---------------------------------------------------------------- */

static void check_reads(const char *sql, const char *want)
{
    print_message("%s\n", sql);
    struct pin_plan p = plan_of(sql);
    char got[256] = "";
    for (int i = 0; i < p.stmts[0].nreads; i++) {
        const struct pin_relname *r = &p.stmts[0].reads[i];
        snprintf(got + strlen(got), sizeof(got) - strlen(got), "%s%s%s%s", i ? "," : "", r->schema,
                 r->schema[0] ? "." : "", r->rel);
    }
    assert_string_equal(got, want);
    pin_plan_free(&p);
}

static void test_reads(void **state)
{
    (void)state;
    check_reads("INSERT INTO t SELECT * FROM v JOIN s.w ON true", "v,s.w");
    check_reads("UPDATE t SET x = (SELECT max(y) FROM v) WHERE id IN (SELECT id FROM t)", "v,t");
    /* a WITH query's name is looked up too: inside its own body it names the relation */
    check_reads("WITH c AS (SELECT * FROM v) INSERT INTO t SELECT * FROM c", "c,v");
    check_reads("WITH v AS (SELECT * FROM v WHERE k > 0) INSERT INTO t SELECT * FROM v", "v");
    check_reads("DELETE FROM t USING v WHERE v.id = t.id", "v");
    check_reads("CREATE TABLE x AS SELECT * FROM v", "v");
    check_reads("SELECT * INTO x FROM v", "v");
    check_reads("ALTER TABLE x ADD COLUMN c int DEFAULT 1", "");
    check_reads("REFRESH MATERIALIZED VIEW s.mv", "s.mv");
    check_reads("SELECT * FROM v", ""); /* stores nothing */
    check_reads("INSERT INTO t SELECT count(*) FROM pg_stat_activity, information_schema.tables",
                ""); /* server state: pinned whatever the views say */
    check_reads("INSERT INTO t VALUES (1)", "");
}

/* A row of what the lookup says of a view (relkind k) whose queries are defs. */
static void view_of(struct pin_table *t, char kind, const char *defs)
{
    memset(t, 0, sizeof(*t));
    const char *v[8] = {"public.v", "not_table", "a", "f", "f", NULL, "f", "f"};
    char k[2] = {kind, '\0'};
    assert_int_equal(add_row_kind(t, v, "0", "0", k, defs), 0);
}

static const struct pin_table *the_view;
static const struct pin_table *known_view(void *ctx, const struct pin_relname *r)
{
    (void)ctx;
    return strcmp(r->rel, "v") == 0 ? the_view : NULL;
}

/* sql's decision against t once the view the lookup described is applied. */
static void check_view(const char *sql, const struct pin_table *view, const struct pin_table *t,
                       enum pin_need want, const char *want_why)
{
    print_message("%s\n", sql);
    struct pin_plan p = plan_of(sql);
    the_view = view;
    pin_stmt_apply_reads(&p.stmts[0], known_view, NULL);
    check_decided(&p.stmts[0], t, want, want_why);
    pin_plan_free(&p);
}

static void test_views_read(void **state)
{
    (void)state;
    struct pin_table t, clock, agg, plain, code, mv, nested;
    table_t(&t);
    view_of(&clock, 'v', " SELECT s.k, clock_timestamp() AS ts FROM s;");
    view_of(&agg, 'v', " SELECT s.k, string_agg(s.v, ','::text) AS a FROM s GROUP BY s.k;");
    view_of(&plain, 'v', " SELECT s.k, upper(s.v) AS v FROM s;");
    view_of(&code, 'v', " SELECT s.k, tag(s.v) AS v FROM s;");
    view_of(&mv, 'm', " SELECT s.k, random() AS r FROM s;");
    /* a view of a view: the lookup sends both queries */
    view_of(&nested, 'v', " SELECT w.k FROM w;\n SELECT s.k FROM s LIMIT 3;");
    assert_true(clock.def_values && !clock.def_code);
    assert_true(agg.def_values && plain.found && !plain.def_values && !plain.def_code);
    assert_true(code.def_code && nested.def_values);
    assert_int_equal(mv.relkind, 'm');
    const char *ins = "INSERT INTO t (id, v, ts) SELECT k, 1, now() FROM v";
    check_view("INSERT INTO t (id, v) SELECT k, 1 FROM v", &clock, &t, PIN_NEEDED, NULL);
    check_view("INSERT INTO t (id, v) SELECT k, 1 FROM v", &agg, &t, PIN_NEEDED, NULL);
    check_view("INSERT INTO t (id, v) SELECT k, 1 FROM v", &nested, &t, PIN_NEEDED, NULL);
    check_view("UPDATE t SET v = (SELECT max(k) FROM v) WHERE id = 1", &clock, &t, PIN_NEEDED,
               NULL);
    check_view("UPDATE t SET v = (SELECT max(k) FROM v) WHERE id = 1", &plain, &t, PIN_NOT_NEEDED,
               NULL);
    check_view("UPDATE t SET v = (SELECT max(k) FROM v) WHERE id = 1", &code, &t, PIN_IMPOSSIBLE,
               pin_why_user_code);
    check_view(ins, &code, &t, PIN_IMPOSSIBLE, pin_why_user_code);
    /* stored data read: a materialized view's rows are what they are */
    check_view("UPDATE t SET v = (SELECT max(k) FROM v) WHERE id = 1", &mv, &t, PIN_NOT_NEEDED,
               NULL);
    /* a view written through is not queried */
    check_view("UPDATE v SET a = 1", &clock, &t, PIN_NOT_NEEDED, NULL);
    const char *ddl = "it stores values the server makes up (DDL, SELECT INTO, CREATE TABLE AS)";
    check_view("REFRESH MATERIALIZED VIEW v", &mv, NULL, PIN_IMPOSSIBLE, ddl);
    check_view("REFRESH MATERIALIZED VIEW v WITH NO DATA", &mv, NULL, PIN_NOT_NEEDED, NULL);
    check_view("REFRESH MATERIALIZED VIEW v", &plain, NULL, PIN_NOT_NEEDED, NULL); /* not 'm' */
    check_view("CREATE TABLE x AS SELECT * FROM v", &clock, NULL, PIN_IMPOSSIBLE, ddl);
    /* a relation pgdual could not look up is taken as making up values: pinned */
    check_view("UPDATE t SET v = (SELECT max(k) FROM v) WHERE id = 1", NULL, &t, PIN_NEEDED, NULL);
    /* a sequence read as a relation: new's lags behind the ids pinned inserts stored */
    struct pin_table seq;
    view_of(&seq, 'S', NULL);
    check_view("INSERT INTO t (id, v) SELECT last_value, 1 FROM v", &seq, &t, PIN_NEEDED, NULL);
    pin_table_free(&seq);
    check_view("CREATE MATERIALIZED VIEW x AS SELECT now() FROM v WITH NO DATA", &clock, NULL,
               PIN_NOT_NEEDED, NULL);
    struct pin_table *all[] = {&t, &clock, &agg, &plain, &code, &mv, &nested};
    for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++) {
        pin_table_free(all[i]);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_analyze_insert),
        cmocka_unit_test(test_analyze_update_delete),
        cmocka_unit_test(test_analyze_other_verbs),
        cmocka_unit_test(test_analyze_offsets),
        cmocka_unit_test(test_analyze_empty_and_errors),
        cmocka_unit_test(test_catalog_query),
        cmocka_unit_test(test_table_rows),
        cmocka_unit_test(test_table_blocked_and_empty),
        cmocka_unit_test(test_table_malformed),
        cmocka_unit_test(test_created_table),
        cmocka_unit_test(test_decide_insert_copy_merge),
        cmocka_unit_test(test_decide_update_delete_other),
        cmocka_unit_test(test_decide_triggers),
        cmocka_unit_test(test_analyze_rolls_back),
        cmocka_unit_test(test_reads),
        cmocka_unit_test(test_views_read),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

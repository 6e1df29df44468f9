/* tests/unit/test_pin_cte.c: protocol/pin_cte.c, data-modifying WITH queries: where they are in
 * the text, which can be pinned, the primary's text (the write renamed, returning whole rows, the
 * client's WITH query as a SELECT over them, pgdual's recording WITH query) and the secondary's
 * template, and the rows read back. Expected texts are written by hand. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "pin_fixtures.h"
#include "protocol/pin.h"
#include "protocol/wire.h"

static struct pin_plan plan_of(const char *sql)
{
    struct pin_plan p;
    assert_int_equal(pin_analyze(sql, NULL, &p), 0);
    assert_int_equal(p.n, 1);
    return p;
}

/* public.q: id int pk, v text (nothing made up). */
static void table_q(struct pin_table *t)
{
    memset(t, 0, sizeof(*t));
    col(t, "public.q", "id", "p", NULL);
    col(t, "public.q", "v", "", NULL);
}

/* The template filled with "<slot>" / "<outer>" markers. */
static void fill(const struct pin_tmpl *t, char *out, size_t cap)
{
    out[0] = '\0';
    for (int i = 0; i < t->n; i++) {
        strncat(out, t->pieces[i], cap - strlen(out) - 1);
        char mark[24];
        if (t->slots[i] == PIN_TMPL_OUTER) {
            snprintf(mark, sizeof(mark), "<outer>");
        } else {
            snprintf(mark, sizeof(mark), "<%u>", t->slots[i]);
        }
        strncat(out, mark, cap - strlen(out) - 1);
    }
    strncat(out, t->pieces[t->n], cap - strlen(out) - 1);
}

/* Build sql's texts with every write of its WITH list pinned against table t and the outer
 * statement pinned against outer_t (NULL: verbatim). */
static void check_build(const char *sql, const struct pin_table *t, const struct pin_table *outer_t,
                        uint32_t slot_base, const char *want_primary, const char *want_tmpl)
{
    struct pin_plan p = plan_of(sql);
    const struct pin_stmt *st = &p.stmts[0];
    assert_non_null(st->outer);
    assert_true(st->nctes >= 1);
    struct pin_shape *shapes[4] = {0};
    for (int i = 0; i < st->nctes; i++) {
        const char *why;
        assert_true(pin_cte_placeable(st, &st->ctes[i], &why));
        assert_int_equal(pin_decide(&st->ctes[i].st, t, &why), PIN_NEEDED);
        shapes[i] = pin_shape_new(&st->ctes[i].st, t);
        assert_non_null(shapes[i]);
    }
    struct pin_shape *outer = NULL;
    if (outer_t) {
        const char *why;
        assert_int_equal(pin_decide(st->outer, outer_t, &why), PIN_NEEDED);
        outer = pin_shape_new(st->outer, outer_t);
    }
    struct wbuf prim;
    wbuf_init(&prim);
    struct pin_tmpl tmpl;
    assert_int_equal(pin_cte_build(sql, st, shapes, outer, slot_base, slot_base, &prim, &tmpl), 0);
    wbuf_put_u8(&prim, '\0');
    print_message("%s\n", (const char *)prim.data);
    assert_string_equal((const char *)prim.data, want_primary);
    char got[4096];
    fill(&tmpl, got, sizeof(got));
    print_message("%s\n", got);
    assert_string_equal(got, want_tmpl);
    pin_tmpl_free(&tmpl);
    wbuf_free(&prim);
    for (int i = 0; i < st->nctes; i++) {
        pin_shape_unref(shapes[i]);
    }
    pin_shape_unref(outer);
    pin_plan_free(&p);
}

#define POP(t) "pg_catalog.json_populate_recordset(NULL::\"" t "\", "
#define REC(k) \
    "SELECT " #k ", pg_catalog.to_json(\"pgdual_x\".*) FROM \"pgdual_c" #k "\" AS \"pgdual_x\""

/* The table t as the outer statement's name finds it now (see pin_sql.c put_same_table). */
#define T_OID                                                              \
    "(SELECT c.oid FROM pg_catalog.pg_class c WHERE c.relname = E't' AND " \
    "pg_catalog.pg_table_is_visible(c.oid))"

static void test_cte_build(void **state)
{
    (void)state;
    struct pin_table t, q;
    table_t(&t);
    table_q(&q);
    /* a serial id made up inside the WITH query; the outer SELECT stays */
    check_build("WITH ins AS (INSERT INTO t (v) VALUES (1) RETURNING id) SELECT id FROM ins", &t,
                NULL, 0,
                "WITH \"pgdual_c0\" AS (INSERT INTO t (v) VALUES (1) \nRETURNING \"t\".*), "
                "ins AS (SELECT id\nFROM \"pgdual_c0\" AS \"t\"), \"pgdual_r\" AS (INSERT INTO "
                "pg_temp.pgdual_pin_rows (n, r) " REC(0) ") SELECT id FROM ins",
                "WITH \"pgdual_c0\" AS (INSERT INTO \"t\" AS \"pgdual_t\" (\"id\", \"v\", \"ts\", "
                "\"j\") OVERRIDING SYSTEM VALUE SELECT \"id\", \"v\", \"ts\", \"j\" FROM " POP(
                    "t") "<0>)\nRETURNING \"pgdual_t\".*), ins AS (SELECT id\nFROM \"pgdual_c0\" "
                         "AS \"t\") SELECT id FROM ins");
    /* rows picked by LIMIT, an alias, MATERIALIZED, column names, no RETURNING in a second one;
     * the outer INSERT fills a serial default: pinned itself */
    check_build(
        "WITH m (a, b) AS MATERIALIZED (DELETE FROM q AS z WHERE id IN (SELECT id FROM q LIMIT 2) "
        "RETURNING z.*), s AS (SELECT 1), d AS (DELETE FROM q WHERE id IN (SELECT id FROM q "
        "LIMIT 1)) INSERT INTO t (v) SELECT a FROM m",
        &q, &t, 3,
        "WITH \"pgdual_c3\" AS (DELETE FROM q AS z WHERE id IN (SELECT id FROM q LIMIT 2) "
        "\nRETURNING \"z\".*), m (a, b) AS MATERIALIZED (SELECT z.*\nFROM \"pgdual_c3\" AS \"z\"), "
        "s AS (SELECT 1), \"pgdual_c4\" AS (DELETE FROM q WHERE id IN (SELECT id FROM q LIMIT 1)"
        "\nRETURNING \"q\".*), \"pgdual_r\" AS "
        "(INSERT INTO pg_temp.pgdual_pin_rows (n, r) " REC(3) " UNION ALL " REC(
            4) ") INSERT INTO t (v) SELECT a FROM m\nRETURNING pg_catalog.to_json(\"t\".*), "
               "\"t\".tableoid = " T_OID,
        "WITH \"pgdual_c3\" AS (DELETE FROM \"q\" AS \"pgdual_t\" USING " POP(
            "q") "<3>) AS \"pgdual_v\" WHERE \"pgdual_t\".\"id\" = \"pgdual_v\".\"id\"\nRETURNING "
                 "\"pgdual_t\".*), m (a, b) AS MATERIALIZED (SELECT z.*\nFROM \"pgdual_c3\" AS "
                 "\"z\"), s AS (SELECT 1), \"pgdual_c4\" AS (DELETE FROM \"q\" AS \"pgdual_t\" "
                 "USING " POP("q") "<4>) AS \"pgdual_v\" WHERE \"pgdual_t\".\"id\" = "
                                   "\"pgdual_v\".\"id\"\nRETURNING \"pgdual_t\".*) INSERT INTO "
                                   "\"t\" (\"id\", "
                                   "\"v\", \"ts\", \"j\") OVERRIDING SYSTEM VALUE SELECT \"id\", "
                                   "\"v\", \"ts\", \"j\" FROM " POP("t") "<outer>)");
    pin_table_free(&t);
    pin_table_free(&q);
}

/* What cannot be placed or pinned: the statement keeps the nested rule (outer NULL), or the WITH
 * query says why. */
static void test_cte_analyze(void **state)
{
    (void)state;
    struct pin_plan p = plan_of("WITH u AS (UPDATE t SET ts = now() WHERE id = 1 RETURNING id) "
                                "SELECT count(*) FROM u");
    const struct pin_stmt *st = &p.stmts[0];
    assert_true(st->nested_dml); /* the statement as a whole, for the extended protocol */
    assert_non_null(st->outer);
    assert_false(st->outer->nested_dml);
    assert_false(st->outer->nondeterministic); /* now() is the WITH query's */
    assert_int_equal(st->nctes, 1);
    assert_int_equal(st->ctes[0].st.verb, PIN_VERB_UPDATE);
    assert_true(st->ctes[0].st.nondeterministic);
    assert_true(st->ctes[0].list_ok);
    pin_plan_free(&p);

    static const char *const unplaceable[] = {
        "WITH u AS (UPDATE t SET v = 1 FROM q WHERE q.id = t.id RETURNING q.v) SELECT * FROM u",
        "WITH u AS (DELETE FROM t RETURNING ctid) SELECT * FROM u",
        "WITH u AS (DELETE FROM t RETURNING t) SELECT * FROM u",
        "WITH u AS (DELETE FROM public.t RETURNING public.t.id) SELECT * FROM u",
        /* calls: PostgreSQL refuses aggregates, window and set-returning functions in RETURNING */
        "WITH u AS (INSERT INTO t (v) VALUES (1) RETURNING generate_series(1, 3)) SELECT * FROM u",
        "WITH u AS (INSERT INTO t (v) VALUES (1) RETURNING row_number() OVER ()) SELECT * FROM u",
        "WITH u AS (DELETE FROM t RETURNING count(*)) SELECT * FROM u",
        "WITH u AS (DELETE FROM t RETURNING (SELECT 1)) SELECT * FROM u",
    };
    for (size_t i = 0; i < sizeof(unplaceable) / sizeof(unplaceable[0]); i++) {
        print_message("%s\n", unplaceable[i]);
        p = plan_of(unplaceable[i]);
        const char *why;
        assert_non_null(p.stmts[0].outer);
        assert_false(pin_cte_placeable(&p.stmts[0], &p.stmts[0].ctes[0], &why));
        assert_non_null(why);
        pin_plan_free(&p);
    }
    /* no WITH write, or EXPLAIN ANALYZE: nothing placed */
    p = plan_of("WITH s AS (SELECT 1) INSERT INTO t (v) SELECT * FROM s");
    assert_null(p.stmts[0].outer);
    pin_plan_free(&p);
    p = plan_of("EXPLAIN ANALYZE WITH i AS (INSERT INTO t (v) VALUES (1)) SELECT 1");
    assert_null(p.stmts[0].outer);
    assert_true(p.stmts[0].nested_dml);
    pin_plan_free(&p);
}

/* Does the statement's list of relations hold schema.rel? */
static bool names(const struct pin_stmt *st, const char *schema, const char *rel)
{
    for (int i = 0; i < st->nrels; i++) {
        if (strcmp(st->rels[i].schema, schema) == 0 && strcmp(st->rels[i].rel, rel) == 0) {
            return true;
        }
    }
    return false;
}

/* Every relation a statement with WITH writes names, in any part, but its WITH queries' names
 * (the secondary's statement is parsed again at each Execute: each is checked on the primary). */
static void test_cte_relations(void **state)
{
    (void)state;
    struct pin_plan p = plan_of(
        "WITH dq AS (DELETE FROM q WHERE id = $1), w AS (INSERT INTO u (n) SELECT x FROM src "
        "WHERE x IN (SELECT k FROM \"Sch\".\"MyT\") RETURNING id) UPDATE cnt SET v = 1 FROM w, "
        "public.lg l WHERE l.x = w.id");
    const struct pin_stmt *st = &p.stmts[0];
    assert_non_null(st->outer);
    assert_false(st->rels_failed);
    assert_int_equal(st->nrels, 6);
    assert_true(names(st, "", "q"));
    assert_true(names(st, "", "u"));
    assert_true(names(st, "", "src"));
    assert_true(names(st, "Sch", "MyT"));
    assert_true(names(st, "", "cnt"));
    assert_true(names(st, "public", "lg"));
    assert_false(names(st, "", "w"));
    pin_plan_free(&p);
    /* a WITH query named after its own table: the target is the table; a name read in a WITH
     * query before the one of that name is a table (not WITH RECURSIVE) */
    p = plan_of(
        "WITH a AS (SELECT * FROM b), u AS (INSERT INTO u (n) SELECT 1 FROM a RETURNING id), "
        "b AS (DELETE FROM q RETURNING id) SELECT * FROM u, b");
    st = &p.stmts[0];
    assert_false(st->rels_failed);
    assert_true(names(st, "", "u"));
    assert_true(names(st, "", "b"));
    assert_true(names(st, "", "q"));
    assert_false(names(st, "", "a"));
    assert_int_equal(st->nrels, 3);
    pin_plan_free(&p);
    /* WITH RECURSIVE: every name of the list is the WITH query's */
    p = plan_of("WITH RECURSIVE a AS (SELECT * FROM b), b AS (SELECT 1 AS x), u AS (INSERT INTO u "
                "(n) SELECT x FROM a RETURNING id) SELECT * FROM u");
    st = &p.stmts[0];
    assert_false(st->rels_failed);
    assert_false(names(st, "", "b"));
    assert_true(names(st, "", "u"));
    assert_int_equal(st->nrels, 1);
    pin_plan_free(&p);
    /* a WITH nested in a subquery: its scope is not walked apart, the list is not whole */
    p = plan_of("WITH w AS (INSERT INTO u (n) VALUES (1) RETURNING id) SELECT * FROM w, (WITH "
                "inner_w AS (SELECT 1) SELECT * FROM inner_w, q) z");
    assert_true(p.stmts[0].rels_failed);
    pin_plan_free(&p);
    /* a three-part name: not listed, the list is not whole */
    p = plan_of("WITH w AS (INSERT INTO u (n) VALUES (1) RETURNING id) SELECT * FROM w, db.s.t");
    assert_true(p.stmts[0].rels_failed);
    pin_plan_free(&p);
}

static void test_cte_readback_row(void **state)
{
    (void)state;
    struct wbuf b;
    wbuf_init(&b);
    wbuf_put_u16(&b, 2);
    wbuf_put_u32(&b, 2);
    wbuf_put_bytes(&b, "12", 2);
    wbuf_put_u32(&b, 8);
    wbuf_put_bytes(&b, "{\"a\":1}", 7);
    wbuf_put_u8(&b, ' ');
    uint32_t slot;
    bool moved = true;
    const uint8_t *j;
    size_t jn;
    assert_int_equal(pin_cte_readback_row(b.data, b.len, &slot, &moved, &j, &jn), 0);
    assert_false(moved);
    assert_int_equal(slot, 12);
    assert_int_equal(jn, 8);
    assert_memory_equal(j, "{\"a\":1} ", 8);
    assert_int_equal(pin_cte_readback_row(b.data, b.len - 1, &slot, &moved, &j, &jn), PIN_EPROTO);
    b.data[7] = 'x'; /* not a number */
    assert_int_equal(pin_cte_readback_row(b.data, b.len, &slot, &moved, &j, &jn), PIN_EPROTO);
    b.data[7] = '2';
    b.data[12] = '"'; /* neither an object nor [object, its text] */
    assert_int_equal(pin_cte_readback_row(b.data, b.len, &slot, &moved, &j, &jn), PIN_EPROTO);
    b.data[12] = '{';
    /* a moved-name mark: -(record number) - 1 */
    b.data[6] = '-';
    b.data[7] = '3';
    assert_int_equal(pin_cte_readback_row(b.data, b.len, &slot, &moved, &j, &jn), 0);
    assert_true(moved);
    assert_int_equal(slot, 2);
    b.data[7] = '0'; /* -0: no record number */
    assert_int_equal(pin_cte_readback_row(b.data, b.len, &slot, &moved, &j, &jn), PIN_EPROTO);
    b.data[6] = '1';
    b.data[7] = '2';
    b.data[1] = 3; /* three columns */
    assert_int_equal(pin_cte_readback_row(b.data, b.len, &slot, &moved, &j, &jn), PIN_EPROTO);
    wbuf_free(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cte_build),
        cmocka_unit_test(test_cte_analyze),
        cmocka_unit_test(test_cte_relations),
        cmocka_unit_test(test_cte_readback_row),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

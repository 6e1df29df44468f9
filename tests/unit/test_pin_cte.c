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
    assert_int_equal(pin_cte_build(sql, st, shapes, outer, slot_base, &prim, &tmpl), 0);
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
            4) ") INSERT INTO t (v) SELECT a FROM m\nRETURNING pg_catalog.to_json(\"t\".*)",
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
    const uint8_t *j;
    size_t jn;
    assert_int_equal(pin_cte_readback_row(b.data, b.len, &slot, &j, &jn), 0);
    assert_int_equal(slot, 12);
    assert_int_equal(jn, 8);
    assert_memory_equal(j, "{\"a\":1} ", 8);
    assert_int_equal(pin_cte_readback_row(b.data, b.len - 1, &slot, &j, &jn), PIN_EPROTO);
    b.data[7] = 'x'; /* not a number */
    assert_int_equal(pin_cte_readback_row(b.data, b.len, &slot, &j, &jn), PIN_EPROTO);
    b.data[7] = '2';
    b.data[10] = '['; /* not an object */
    assert_int_equal(pin_cte_readback_row(b.data, b.len, &slot, &j, &jn), PIN_EPROTO);
    b.data[1] = 3; /* three columns */
    assert_int_equal(pin_cte_readback_row(b.data, b.len, &slot, &j, &jn), PIN_EPROTO);
    wbuf_free(&b);
}

/* ---- pin_cte_ext.c: an Execute of a statement with pinned WITH queries, for the secondary ---- */

/* A shape whose template is `WITH c AS (SELECT * FROM f(<slot 7>)) SELECT id FROM c WHERE v =
 * $2`, the client's Parse declaring $1 int4 only. */
static struct pin_shape *ext_shape(void)
{
    struct pin_shape *sh = pin_shape_bare(false);
    assert_non_null(sh);
    sh->cte = calloc(1, sizeof(*sh->cte));
    sh->cte->n = 1;
    sh->cte->pieces = calloc(2, sizeof(char *));
    sh->cte->slots = calloc(1, sizeof(uint32_t));
    sh->cte->pieces[0] = strdup("WITH c AS (SELECT * FROM f(");
    sh->cte->pieces[1] = strdup(")) SELECT id FROM c WHERE v = $2");
    sh->cte->slots[0] = 7;
    sh->cte_base = 7;
    sh->cte_nslots = 1;
    sh->cte_types = calloc(1, sizeof(uint32_t));
    sh->cte_types[0] = 23;
    sh->cte_ntypes = 1;
    return sh;
}

/* The client's Bind body: portal "", statement "s", nfmt formats, three values, one result
 * format (text). */
static void ext_bind(struct wbuf *b, uint16_t nfmt, uint16_t fmt)
{
    wbuf_put_cstr(b, "");
    wbuf_put_cstr(b, "s");
    wbuf_put_u16(b, nfmt);
    for (uint16_t i = 0; i < nfmt; i++) {
        wbuf_put_u16(b, fmt);
    }
    wbuf_put_u16(b, 3);
    wbuf_put_u32(b, 4);
    wbuf_put_bytes(b, "\0\0\0\1", 4);
    wbuf_put_u32(b, 1);
    wbuf_put_bytes(b, "x", 1);
    wbuf_put_u32(b, 0xffffffffu); /* NULL */
    wbuf_put_u16(b, 1);
    wbuf_put_u16(b, 0);
}

static struct wire_msg next_of(const struct wbuf *out, size_t *off, uint8_t type)
{
    struct wire_msg m;
    assert_int_equal(wire_next_msg(out->data, out->len, off, &m), 0);
    assert_int_equal(m.type, type);
    return m;
}

static void test_cte_ext_execute(void **state)
{
    (void)state;
    struct pin_shape *sh = ext_shape();
    struct wbuf rows, bind, out;
    wbuf_init(&rows);
    wbuf_init(&bind);
    wbuf_init(&out);
    wbuf_put_bytes(&rows, "[{\"id\":1}]", 10);
    ext_bind(&bind, 1, 1); /* binary for all */
    assert_int_equal(
        pin_cte_ext_execute(&out, sh, "pgdual.pin.9", bind.data, bind.len, &rows, NULL), 0);
    size_t off = 0;
    struct wire_msg m = next_of(&out, &off, 'C');
    assert_memory_equal(m.body, "Ppgdual.pin", 12);
    m = next_of(&out, &off, 'C');
    assert_memory_equal(m.body, "Spgdual.pin.9", 14);
    m = next_of(&out, &off, 'P');
    struct wire_reader rd;
    wire_reader_init(&rd, m.body, m.body_len);
    assert_string_equal(wire_cstr(&rd), "pgdual.pin.9");
    assert_string_equal(wire_cstr(&rd),
                        "WITH c AS (SELECT * FROM f($4::json)) SELECT id FROM c WHERE v = $2");
    assert_int_equal(wire_u16(&rd), 4);
    assert_int_equal(wire_u32(&rd), 23); /* declared */
    assert_int_equal(wire_u32(&rd), 0);  /* used by the text: inferred as on the primary */
    assert_int_equal(wire_u32(&rd), 17); /* unused, binary: bytea takes any bytes */
    assert_int_equal(wire_u32(&rd), 114);
    m = next_of(&out, &off, 'B');
    wire_reader_init(&rd, m.body, m.body_len);
    assert_string_equal(wire_cstr(&rd), "pgdual.pin");
    assert_string_equal(wire_cstr(&rd), "pgdual.pin.9");
    assert_int_equal(wire_u16(&rd), 4); /* the client's binary formats, then text for json */
    for (int i = 0; i < 3; i++) {
        assert_int_equal(wire_u16(&rd), 1);
    }
    assert_int_equal(wire_u16(&rd), 0);
    assert_int_equal(wire_u16(&rd), 4);
    assert_int_equal(wire_u32(&rd), 4);
    assert_memory_equal(wire_bytes(&rd, 4), "\0\0\0\1", 4);
    assert_int_equal(wire_u32(&rd), 1);
    assert_memory_equal(wire_bytes(&rd, 1), "x", 1);
    assert_int_equal(wire_u32(&rd), 0xffffffffu);
    assert_int_equal(wire_u32(&rd), 10);
    assert_memory_equal(wire_bytes(&rd, 10), "[{\"id\":1}]", 10);
    assert_int_equal(wire_u16(&rd), 1); /* the client's result formats */
    assert_int_equal(wire_u16(&rd), 0);
    assert_false(rd.failed);
    assert_int_equal(rd.off, m.body_len);
    m = next_of(&out, &off, 'E');
    assert_int_equal(off, out.len);

    /* All text: no formats; an unused parameter left open is text. */
    wbuf_reset(&bind);
    wbuf_reset(&out);
    ext_bind(&bind, 0, 0);
    assert_int_equal(
        pin_cte_ext_execute(&out, sh, "pgdual.pin.9", bind.data, bind.len, &rows, NULL), 0);
    off = 0;
    (void)next_of(&out, &off, 'C');
    (void)next_of(&out, &off, 'C');
    m = next_of(&out, &off, 'P');
    wire_reader_init(&rd, m.body, m.body_len);
    (void)wire_cstr(&rd);
    (void)wire_cstr(&rd);
    assert_int_equal(wire_u16(&rd), 4);
    (void)wire_u32(&rd);
    (void)wire_u32(&rd);
    assert_int_equal(wire_u32(&rd), 25);
    m = next_of(&out, &off, 'B');
    wire_reader_init(&rd, m.body, m.body_len);
    (void)wire_cstr(&rd);
    (void)wire_cstr(&rd);
    assert_int_equal(wire_u16(&rd), 0);

    /* No rows for the slot, a Bind cut short: refused. */
    wbuf_reset(&out);
    assert_int_equal(pin_cte_ext_execute(&out, sh, "x", bind.data, bind.len, NULL, NULL),
                     PIN_ESHAPE);
    wbuf_reset(&out);
    assert_int_equal(pin_cte_ext_execute(&out, sh, "x", bind.data, bind.len - 1, &rows, NULL),
                     PIN_ESHAPE);
    assert_string_equal(pin_cte_ext_bind_portal(bind.data, bind.len), "");
    wbuf_free(&rows);
    wbuf_free(&bind);
    wbuf_free(&out);
    pin_shape_unref(sh);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cte_build),
        cmocka_unit_test(test_cte_analyze),
        cmocka_unit_test(test_cte_readback_row),
        cmocka_unit_test(test_cte_ext_execute),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

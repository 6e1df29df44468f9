/* tests/unit/test_pin_cte_ext.c: protocol/pin_cte_ext.c, data-modifying WITH queries through the
 * extended protocol: a client's prepared statement kept with its analysis and declared types, the
 * text of one execution (slot and record numbers), what the primary gets in place of the client's
 * Bind (Close, Parse and Bind of pgdual's statement), what the secondary gets in place of the
 * Execute, and the untyped-parameter check. Expected bytes are written by hand. */
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

#define INS "WITH ins AS (INSERT INTO t (v) VALUES ($1) RETURNING id) SELECT id FROM ins"

/* sql's statement with its WITH writes pinned against t (and the outer one against outer_t), the
 * Parse declaring ntypes types. */
static struct pin_cte_stmt *stmt_of(const char *sql, const struct pin_table *t,
                                    const struct pin_table *outer_t, const uint32_t *types,
                                    uint16_t ntypes)
{
    struct pin_plan p;
    assert_int_equal(pin_analyze(sql, NULL, &p), 0);
    assert_int_equal(p.n, 1);
    const struct pin_stmt *st = &p.stmts[0];
    assert_non_null(st->outer);
    struct pin_shape *shapes[4] = {0};
    int n = st->nctes;
    for (int i = 0; i < n; i++) {
        const char *why;
        assert_int_equal(pin_decide(&st->ctes[i].st, t, &why), PIN_NEEDED);
        shapes[i] = pin_shape_new(&st->ctes[i].st, t);
    }
    struct pin_shape *outer = outer_t ? pin_shape_new(st->outer, outer_t) : NULL;
    struct wbuf ty;
    wbuf_init(&ty);
    wbuf_put_u16(&ty, ntypes);
    for (uint16_t i = 0; i < ntypes; i++) {
        wbuf_put_u32(&ty, types[i]);
    }
    struct pin_cte_stmt *cs = pin_cte_stmt_new(sql, &p, shapes, n, outer, ty.data, ty.len);
    assert_non_null(cs);
    assert_int_equal(p.n, 0); /* moved */
    for (int i = 0; i < n; i++) {
        pin_shape_unref(shapes[i]);
    }
    pin_shape_unref(outer);
    wbuf_free(&ty);
    return cs;
}

/* The client's Bind body: portal "p", statement "s", nfmt formats fmt, one value "7", nres result
 * formats res. */
static void bind_of(struct wbuf *b, uint16_t nfmt, uint16_t fmt, uint16_t nres, uint16_t res)
{
    wbuf_put_cstr(b, "p");
    wbuf_put_cstr(b, "s");
    wbuf_put_u16(b, nfmt);
    for (uint16_t i = 0; i < nfmt; i++) {
        wbuf_put_u16(b, fmt);
    }
    wbuf_put_u16(b, 1);
    wbuf_put_u32(b, 1);
    wbuf_put_bytes(b, "7", 1);
    wbuf_put_u16(b, nres);
    for (uint16_t i = 0; i < nres; i++) {
        wbuf_put_u16(b, res);
    }
}

static struct wire_msg next_of(const struct wbuf *out, size_t *off, uint8_t type)
{
    struct wire_msg m;
    assert_int_equal(wire_next_msg(out->data, out->len, off, &m), 0);
    assert_int_equal(m.type, type);
    return m;
}

static void test_ext_build_and_primary(void **state)
{
    (void)state;
    struct pin_table t;
    table_t(&t);
    static const uint32_t text_type[] = {25};
    struct pin_cte_stmt *cs = stmt_of(INS, &t, NULL, text_type, 1);
    assert_int_equal(cs->nslots, 1);
    assert_int_equal(cs->ntypes, 1);
    assert_int_equal(cs->types[0], 25);
    struct wbuf text;
    wbuf_init(&text);
    struct pin_tmpl tmpl;
    /* the unit's slot 2, recorded as 40 */
    assert_int_equal(pin_cte_ext_build(cs, 2, 40, &text, &tmpl), 0);
    assert_string_equal(
        (const char *)text.data,
        "WITH \"pgdual_c2\" AS (INSERT INTO t (v) VALUES ($1) \nRETURNING \"t\".*), "
        "ins AS (SELECT id\nFROM \"pgdual_c2\" AS \"t\"), \"pgdual_r\" AS (INSERT "
        "INTO pg_temp.pgdual_pin_rows (n, r) SELECT 40, "
        "pg_catalog.to_json(\"pgdual_x\".*) FROM \"pgdual_c2\" AS \"pgdual_x\") "
        "SELECT id FROM ins");
    assert_int_equal(tmpl.n, 1);
    assert_int_equal(tmpl.slots[0], 2);

    /* pgdual's own statement, parsed behind the client's: slots from 0, the record number its
     * last parameter ($2: the client's text names $1), the client's declared type, then int4. */
    struct wbuf out;
    wbuf_init(&out);
    assert_int_equal(pin_cte_ext_own_parse(&out, cs, "pgdual.cte.7"), 0);
    assert_int_equal(cs->own_k, 1);
    size_t off = 0;
    struct wire_msg m = next_of(&out, &off, 'P');
    struct wire_reader rd;
    wire_reader_init(&rd, m.body, m.body_len);
    assert_string_equal(wire_cstr(&rd), "pgdual.cte.7");
    assert_string_equal(
        wire_cstr(&rd),
        "WITH \"pgdual_c0\" AS (INSERT INTO t (v) VALUES ($1) \nRETURNING \"t\".*), "
        "ins AS (SELECT id\nFROM \"pgdual_c0\" AS \"t\"), \"pgdual_r\" AS (INSERT "
        "INTO pg_temp.pgdual_pin_rows (n, r) SELECT $2 + 0, "
        "pg_catalog.to_json(\"pgdual_x\".*) FROM \"pgdual_c0\" AS \"pgdual_x\" "
        /* the mark of a target name that finds another table now than at the analysis */
        "UNION ALL SELECT -$2 - 1, pg_catalog.json_build_object() WHERE "
        "E'\"t\"'::pg_catalog.regclass IS DISTINCT FROM (SELECT c.oid FROM pg_catalog.pg_class "
        "c WHERE c.relname = E't' AND pg_catalog.pg_table_is_visible(c.oid))) "
        "SELECT id FROM ins");
    assert_int_equal(wire_u16(&rd), 2);
    assert_int_equal(wire_u32(&rd), 25); /* the client's declared type */
    assert_int_equal(wire_u32(&rd), 23); /* pgdual's record number: int4 */
    assert_int_equal(rd.off, m.body_len);
    assert_int_equal(off, out.len);

    /* The primary's Bind: the client's portal to pgdual's statement, the client's parameters
     * and formats, then the record number (text). */
    struct wbuf bind;
    wbuf_init(&bind);
    wbuf_reset(&out);
    bind_of(&bind, 1, 0, 1, 1);
    assert_int_equal(pin_cte_ext_primary(&out, cs, "pgdual.cte.7", 40, bind.data, bind.len), 0);
    off = 0;
    m = next_of(&out, &off, 'B');
    assert_int_equal(off, out.len);
    wire_reader_init(&rd, m.body, m.body_len);
    assert_string_equal(wire_cstr(&rd), "p"); /* the client's portal */
    assert_string_equal(wire_cstr(&rd), "pgdual.cte.7");
    assert_int_equal(wire_u16(&rd), 1); /* one format for all: text */
    assert_int_equal(wire_u16(&rd), 0);
    assert_int_equal(wire_u16(&rd), 2);
    assert_int_equal(wire_u32(&rd), 1);
    assert_memory_equal(wire_bytes(&rd, 1), "7", 1);
    assert_int_equal(wire_u32(&rd), 2);
    assert_memory_equal(wire_bytes(&rd, 2), "40", 2);
    assert_int_equal(wire_u16(&rd), 1); /* the client's result formats */
    assert_int_equal(wire_u16(&rd), 1);
    assert_int_equal(rd.off, m.body_len);
    /* Binary parameters: one format each, pgdual's text. */
    wbuf_reset(&bind);
    wbuf_reset(&out);
    bind_of(&bind, 1, 1, 0, 0);
    assert_int_equal(pin_cte_ext_primary(&out, cs, "pgdual.cte.7", 3, bind.data, bind.len), 0);
    off = 0;
    m = next_of(&out, &off, 'B');
    wire_reader_init(&rd, m.body, m.body_len);
    (void)wire_cstr(&rd);
    (void)wire_cstr(&rd);
    assert_int_equal(wire_u16(&rd), 2);
    assert_int_equal(wire_u16(&rd), 1);
    assert_int_equal(wire_u16(&rd), 0);
    /* A Bind cut short, or with another parameter count than the statement's: refused. */
    wbuf_reset(&out);
    assert_int_equal(pin_cte_ext_primary(&out, cs, "pgdual.cte.7", 40, bind.data, bind.len - 1),
                     PIN_ESHAPE);
    cs->own_k = 2;
    assert_int_equal(pin_cte_ext_primary(&out, cs, "pgdual.cte.7", 40, bind.data, bind.len),
                     PIN_ESHAPE);
    pin_tmpl_free(&tmpl);
    wbuf_free(&text);
    wbuf_free(&bind);
    wbuf_free(&out);
    pin_cte_stmt_unref(cs);
    pin_table_free(&t);
}

/* The statement names $3 but declares one type: K is 3, pgdual's number $4; a Close. */
static void test_ext_own_parse_params(void **state)
{
    (void)state;
    struct pin_table t;
    table_t(&t);
    static const uint32_t one[] = {23};
    struct pin_cte_stmt *cs =
        stmt_of("WITH ins AS (INSERT INTO t (v) VALUES ($3 || $1) RETURNING id) SELECT id FROM ins",
                &t, NULL, one, 1);
    struct wbuf out;
    wbuf_init(&out);
    assert_int_equal(pin_cte_ext_own_parse(&out, cs, "pgdual.cte.1"), 0);
    assert_int_equal(cs->own_k, 3);
    assert_non_null(memmem(out.data, out.len, "SELECT $4 + 0,", 14));
    size_t off = 0;
    struct wire_msg m = next_of(&out, &off, 'P');
    /* types: 23, 0, 0, 23 at the end */
    const uint8_t *tp = m.body + m.body_len - 18;
    assert_int_equal(tp[0] << 8 | tp[1], 4);
    assert_int_equal(wire_u32(&(struct wire_reader){.p = tp + 2, .len = 4}), 23);
    wbuf_reset(&out);
    pin_cte_ext_close(&out, "pgdual.cte.1");
    off = 0;
    m = next_of(&out, &off, 'C');
    assert_memory_equal(m.body, "Spgdual.cte.1", 14);
    wbuf_free(&out);
    pin_cte_stmt_unref(cs);
    pin_table_free(&t);
}

/* PIN_CTE_CHECK's row: the OID, or refused. */
static void test_check_row(void **state)
{
    (void)state;
    static const uint8_t ok[] = {0, 1, 0, 0, 0, 5, '1', '6', '3', '8', '4'};
    static const uint8_t null[] = {0, 1, 0xff, 0xff, 0xff, 0xff};
    static const uint8_t bad[] = {0, 1, 0, 0, 0, 1, 't'};
    uint32_t oid = 0;
    assert_int_equal(pin_cte_check_row(ok, sizeof(ok), &oid), 0);
    assert_int_equal(oid, 16384);
    assert_int_equal(pin_cte_check_row(null, sizeof(null), &oid), PIN_EPROTO);
    assert_int_equal(pin_cte_check_row(bad, sizeof(bad), &oid), PIN_EPROTO);
    assert_int_equal(pin_cte_check_row(ok, sizeof(ok) - 1, &oid), PIN_EPROTO);
}

/* The outer statement pinned too: pgdual's column comes back as text. */
static void test_ext_primary_outer(void **state)
{
    (void)state;
    struct pin_table t;
    table_t(&t);
    struct pin_cte_stmt *cs =
        stmt_of("WITH ins AS (INSERT INTO t (v) VALUES ($1) RETURNING v) INSERT INTO t (v) "
                "SELECT v FROM ins",
                &t, &t, NULL, 0);
    assert_non_null(cs->outer);
    struct wbuf bind, out;
    wbuf_init(&bind);
    wbuf_init(&out);
    bind_of(&bind, 0, 0, 1, 1); /* binary for all, the client having no columns */
    cs->own_k = 1;
    assert_int_equal(pin_cte_ext_primary(&out, cs, "x", 1, bind.data, bind.len), 0);
    size_t off = 0;
    struct wire_msg m = next_of(&out, &off, 'B');
    assert_int_equal(m.body[m.body_len - 2], 0); /* all text */
    assert_int_equal(m.body[m.body_len - 1], 0);
    wbuf_free(&bind);
    wbuf_free(&out);
    pin_cte_stmt_unref(cs);
    pin_table_free(&t);
}

static void test_ext_execute(void **state)
{
    (void)state;
    struct pin_table t;
    table_t(&t);
    struct pin_cte_stmt *cs = stmt_of(INS, &t, NULL, NULL, 0);
    struct wbuf text, bind, out, slots[3];
    wbuf_init(&text);
    wbuf_init(&bind);
    wbuf_init(&out);
    struct pin_tmpl tmpl;
    assert_int_equal(pin_cte_ext_build(cs, 2, 2, &text, &tmpl), 0);
    for (int i = 0; i < 3; i++) {
        wbuf_init(&slots[i]);
    }
    wbuf_put_bytes(&slots[2], "[{\"id\":1}]", 10);
    bind_of(&bind, 0, 0, 0, 0);
    assert_int_equal(pin_cte_ext_execute(&out, cs, &tmpl, bind.data, bind.len, slots, 3, NULL), 0);
    size_t off = 0;
    struct wire_msg m = next_of(&out, &off, 'C');
    assert_memory_equal(m.body, "Pp", 3); /* the client's portal, bound to pgdual's statement */
    m = next_of(&out, &off, 'C');
    assert_memory_equal(m.body, "S" PIN_CTE_STMT_NAME, sizeof(PIN_CTE_STMT_NAME) + 1);
    m = next_of(&out, &off, 'P');
    struct wire_reader rd;
    wire_reader_init(&rd, m.body, m.body_len);
    assert_string_equal(wire_cstr(&rd), PIN_CTE_STMT_NAME);
    const char *sql = wire_cstr(&rd);
    assert_non_null(strstr(sql, "json_populate_recordset(NULL::\"t\", $2::json)"));
    assert_null(strstr(sql, "$1")); /* the write that used it is pgdual's now */
    assert_int_equal(wire_u16(&rd), 2);
    assert_int_equal(wire_u32(&rd), 25); /* left open, unused: text */
    assert_int_equal(wire_u32(&rd), 114);
    m = next_of(&out, &off, 'B');
    wire_reader_init(&rd, m.body, m.body_len);
    assert_string_equal(wire_cstr(&rd), "p");
    assert_string_equal(wire_cstr(&rd), PIN_CTE_STMT_NAME);
    assert_int_equal(wire_u16(&rd), 0);
    assert_int_equal(wire_u16(&rd), 2);
    assert_int_equal(wire_u32(&rd), 1);
    assert_memory_equal(wire_bytes(&rd, 1), "7", 1);
    assert_int_equal(wire_u32(&rd), 10);
    assert_memory_equal(wire_bytes(&rd, 10), "[{\"id\":1}]", 10);
    m = next_of(&out, &off, 'E');
    assert_string_equal((const char *)m.body, "p");
    assert_int_equal(off, out.len);
    /* No rows for its slot: refused. */
    wbuf_reset(&out);
    assert_int_equal(pin_cte_ext_execute(&out, cs, &tmpl, bind.data, bind.len, slots, 2, NULL),
                     PIN_ESHAPE);
    for (int i = 0; i < 3; i++) {
        wbuf_free(&slots[i]);
    }
    pin_tmpl_free(&tmpl);
    wbuf_free(&text);
    wbuf_free(&bind);
    wbuf_free(&out);
    pin_cte_stmt_unref(cs);
    pin_table_free(&t);
}

/* A parameter left untyped, typed by the pinned write and used again outside it. */
static void test_ext_open_param(void **state)
{
    (void)state;
    struct pin_table t;
    table_t(&t);
    static const char both[] =
        "WITH ins AS (INSERT INTO t (v) VALUES ($1) RETURNING id) SELECT id, $1 FROM ins";
    static const uint32_t text_type[] = {25};
    for (int declared = 0; declared < 2; declared++) {
        struct pin_cte_stmt *cs = stmt_of(both, &t, NULL, text_type, (uint16_t)declared);
        struct wbuf text;
        wbuf_init(&text);
        struct pin_tmpl tmpl;
        assert_int_equal(pin_cte_ext_build(cs, 0, 0, &text, &tmpl), 0);
        assert_int_equal(
            pin_cte_ext_open_param((const char *)text.data, &tmpl, cs->types, cs->ntypes),
            declared ? 0 : 1);
        pin_tmpl_free(&tmpl);
        wbuf_free(&text);
        pin_cte_stmt_unref(cs);
    }
    /* used outside the write only: the same text types it on both sides */
    struct pin_cte_stmt *cs =
        stmt_of("WITH ins AS (INSERT INTO t (v) VALUES (1) RETURNING id) SELECT id, $1 FROM ins",
                &t, NULL, NULL, 0);
    struct wbuf text;
    wbuf_init(&text);
    struct pin_tmpl tmpl;
    assert_int_equal(pin_cte_ext_build(cs, 0, 0, &text, &tmpl), 0);
    assert_int_equal(pin_cte_ext_open_param((const char *)text.data, &tmpl, NULL, 0), 0);
    pin_tmpl_free(&tmpl);
    wbuf_free(&text);
    pin_cte_stmt_unref(cs);
    pin_table_free(&t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ext_build_and_primary),
        cmocka_unit_test(test_ext_own_parse_params),
        cmocka_unit_test(test_check_row),
        cmocka_unit_test(test_ext_primary_outer),
        cmocka_unit_test(test_ext_execute),
        cmocka_unit_test(test_ext_open_param),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

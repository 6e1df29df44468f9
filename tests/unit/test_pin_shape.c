/* tests/unit/test_pin_shape.c: protocol/pin.c, what pgdual appends for the primary (its
 * RETURNING list, placed in the text) and the secondary's statement around the rows, for INSERT
 * (ON CONFLICT, quoted names), UPDATE and DELETE (one- and two-column keys). Expected texts are
 * written by hand from the SQL the secondary should run. The secondary names the target as the
 * catalog lookup found it (its qname, public.t here), not as the client wrote it. */
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

/* ---- helpers (as in test_pin.c) ------------------------------------------------------------ */

static struct pin_plan plan_of(const char *sql)
{
    struct pin_plan p;
    assert_int_equal(pin_analyze(sql, NULL, &p), 0);
    return p;
}

/* ---- the shape and the primary's text ------------------------------------------------------- */

static struct pin_shape *shape_of(const char *sql, const struct pin_table *t)
{
    struct pin_plan p = plan_of(sql);
    const char *why;
    assert_int_equal(pin_decide(&p.stmts[0], t, &why), PIN_NEEDED);
    struct pin_shape *sh = pin_shape_new(&p.stmts[0], t);
    assert_non_null(sh);
    assert_int_equal(sh->refs, 1);
    assert_int_equal(sh->verb, p.stmts[0].verb);
    assert_int_equal(sh->client_returning, p.stmts[0].client_returning);
    pin_plan_free(&p);
    return sh;
}

static void check_shape_m(const struct pin_shape *sh, int m, const char *keys,
                          const char *returning, const char *head, const char *tail)
{
    char k[256] = "";
    for (int i = 0; i < sh->nkeys; i++) {
        strcat(k, i ? "," : "");
        strcat(k, sh->keys[i]);
    }
    assert_string_equal(k, keys);
    assert_int_equal(sh->m, m);
    assert_string_equal(sh->returning, returning);
    assert_string_equal(sh->head, head);
    assert_string_equal(sh->tail, tail);
}

/* m = 2: the whole row as JSON, and whether it went into the table */
static void check_shape(const struct pin_shape *sh, const char *keys, const char *returning,
                        const char *head, const char *tail)
{
    check_shape_m(sh, 2, keys, returning, head, tail);
}

/* Whether the returned row (ref: the statement's name for the target's rows) went into the
 * table the name finds (match: a condition on pg_class c); for a table not known to be a plain
 * one, or a partition of it (TREE_AS). */
#define NAMED_OID(match)    "(SELECT c.oid FROM pg_catalog.pg_class c WHERE " match ")"
#define SAME_AS(ref, match) ", \"" ref "\".tableoid = " NAMED_OID(match)
#define TREE_OF(ref, rel)                                                                 \
    " OR \"" ref "\".tableoid IN (WITH RECURSIVE \"pgdual_tree\"(o) AS (SELECT " rel      \
    " UNION ALL SELECT i.inhrelid FROM pg_catalog.pg_inherits i JOIN \"pgdual_tree\" ON " \
    "i.inhparent = \"pgdual_tree\".o) SELECT o FROM \"pgdual_tree\")"
/* ...rel found through search_path; rel in schema (both as E'' literals' text) */
#define SAME(ref, rel) \
    SAME_AS(ref, "c.relname = E'" rel "' AND pg_catalog.pg_table_is_visible(c.oid)")
#define SAME_IN(ref, schema, rel)                                                  \
    SAME_AS(ref, "c.relname = E'" rel "' AND c.relnamespace = (SELECT n.oid FROM " \
                 "pg_catalog.pg_namespace n WHERE n.nspname = E'" schema "')")
#define SRC_T    "pg_catalog.json_populate_recordset(NULL::\"t\", "
#define MATCH_ID ") AS \"pgdual_v\" WHERE \"pgdual_t\".\"id\" = \"pgdual_v\".\"id\""

static void test_shape_insert(void **state)
{
    (void)state;
    struct pin_table t;
    table_t(&t);
    struct pin_shape *sh = shape_of("INSERT INTO t (v) VALUES (1)", &t);
    check_shape(sh, "id,v,ts,j", "\nRETURNING pg_catalog.to_json(\"t\".*)" SAME("t", "t"),
                "INSERT INTO \"t\" (\"id\", \"v\", \"ts\", \"j\") OVERRIDING SYSTEM VALUE SELECT "
                "\"id\", \"v\", \"ts\", \"j\" FROM " SRC_T,
                ")");
    assert_ptr_equal(pin_shape_ref(sh), sh);
    assert_int_equal(sh->refs, 2);
    pin_shape_unref(sh);
    assert_int_equal(sh->refs, 1);
    pin_shape_unref(sh);
    pin_shape_unref(NULL);
    assert_null(pin_shape_ref(NULL));

    sh = shape_of("INSERT INTO t AS x (v) VALUES (1) ON CONFLICT DO NOTHING RETURNING x.id", &t);
    check_shape(sh, "id,v,ts,j", "\n, pg_catalog.to_json(\"x\".*)" SAME("x", "t"),
                "INSERT INTO \"t\" (\"id\", \"v\", \"ts\", \"j\") OVERRIDING SYSTEM VALUE SELECT "
                "\"id\", \"v\", \"ts\", \"j\" FROM " SRC_T,
                ") ON CONFLICT DO NOTHING");
    pin_shape_unref(sh);

    /* A partitioned table: the row may be in a partition of it, read from pg_inherits. */
    struct pin_table pt = {0};
    const char *const v[8] = {"public.pt", "", "id", "f", "f", "nextval('s'::regclass)", "t", "p"};
    assert_int_equal(add_row_kind(&pt, v, "0", "0", "p", NULL), 0);
    pt.kinds_known = false;
    sh = shape_of("INSERT INTO pt DEFAULT VALUES", &pt);
#define PT_OID NAMED_OID("c.relname = E'pt' AND pg_catalog.pg_table_is_visible(c.oid)")
    assert_string_equal(sh->returning, "\nRETURNING pg_catalog.to_json(\"pt\".*)" SAME("pt", "pt")
                                           TREE_OF("pt", PT_OID));
#undef PT_OID
    pin_shape_unref(sh);
    pin_table_free(&pt);

    sh = shape_of("INSERT INTO t (v) VALUES (1) ON CONFLICT (v) DO UPDATE SET ts = now()", &t);
    assert_string_equal(sh->tail, ") ON CONFLICT (\"id\") DO UPDATE SET \"v\" = EXCLUDED.\"v\", "
                                  "\"ts\" = EXCLUDED.\"ts\", \"j\" = EXCLUDED.\"j\"");
    pin_shape_unref(sh);
    pin_table_free(&t);

    /* Quoted names; a table of key columns only (the conflict still updates one of them). */
    struct pin_table w = {0};
    const char *q = "\"We'ird\".\"T\\x\"";
    col(&w, q, "I d", "p", "nextval('s'::regclass)");
    col(&w, q, "v\"q", "p", NULL);
    w.kinds_known = false; /* no kinds check in the texts below (test_shape_extras) */
    sh = shape_of("INSERT INTO \"We'ird\".\"T\\x\" (\"v\"\"q\") VALUES ('1') ON CONFLICT "
                  "(\"v\"\"q\") DO UPDATE SET \"v\"\"q\" = '2'",
                  &w);
    check_shape(sh, "I d,v\"q",
                "\nRETURNING pg_catalog.to_json(\"T\\x\".*)" SAME_IN("T\\x", "We''ird", "T\\\\x"),
                "INSERT INTO \"We'ird\".\"T\\x\" (\"I d\", \"v\"\"q\") OVERRIDING SYSTEM VALUE "
                "SELECT \"I d\", \"v\"\"q\" FROM pg_catalog.json_populate_recordset(NULL::"
                "\"We'ird\".\"T\\x\", ",
                ") ON CONFLICT (\"I d\", \"v\"\"q\") DO UPDATE SET \"I d\" = EXCLUDED.\"I d\"");
    pin_shape_unref(sh);
    pin_table_free(&w);
}

static void test_shape_update_delete(void **state)
{
    (void)state;
    struct pin_table t;
    table_t(&t);
    struct pin_shape *sh = shape_of("UPDATE t SET ts = now() WHERE v = 1", &t);
    check_shape(sh, "id,ts", "\nRETURNING pg_catalog.to_json(\"t\".*)" SAME("t", "t"),
                "UPDATE \"t\" AS \"pgdual_t\" SET \"ts\" = \"pgdual_v\".\"ts\" FROM " SRC_T,
                MATCH_ID);
    pin_shape_unref(sh);
    sh = shape_of("UPDATE t AS u SET j = '{}', v = random() RETURNING u.v", &t);
    check_shape(sh, "id,j,v", "\n, pg_catalog.to_json(\"u\".*)" SAME("u", "t"),
                "UPDATE \"t\" AS \"pgdual_t\" SET \"j\" = \"pgdual_v\".\"j\", \"v\" = "
                "\"pgdual_v\".\"v\" FROM " SRC_T,
                MATCH_ID);
    pin_shape_unref(sh);
    sh = shape_of("DELETE FROM t WHERE id IN (SELECT id FROM t LIMIT 2)", &t);
    check_shape(sh, "id", "\nRETURNING pg_catalog.to_json(\"t\".*)" SAME("t", "t"),
                "DELETE FROM \"t\" AS \"pgdual_t\" USING " SRC_T, MATCH_ID);
    pin_shape_unref(sh);
    pin_table_free(&t);

    /* A two-column key matches on both. */
    struct pin_table k = {0};
    col(&k, "s.k", "a", "p", NULL);
    col(&k, "s.k", "b", "p", NULL);
    col(&k, "s.k", "c", "", NULL);
    k.kinds_known = false; /* no kinds check in the texts below (test_shape_extras) */
    sh = shape_of("DELETE FROM s.k AS z WHERE ctid = '(0,1)' RETURNING c", &k);
    check_shape(sh, "a,b", "\n, pg_catalog.to_json(\"z\".*)" SAME_IN("z", "s", "k"),
                "DELETE FROM \"s\".\"k\" AS \"pgdual_t\" USING "
                "pg_catalog.json_populate_recordset(NULL::\"s\".\"k\", ",
                ") AS \"pgdual_v\" WHERE \"pgdual_t\".\"a\" = \"pgdual_v\".\"a\" AND "
                "\"pgdual_t\".\"b\" = \"pgdual_v\".\"b\"");
    pin_shape_unref(sh);
    pin_table_free(&k);
}

/* Columns whose values the row's JSON cannot carry (a JSON null, an array's bounds): the row's
 * text comes third, the secondary reads each row as [row, extras] and takes json/jsonb values
 * from the primary's text, arrays with the primary's bounds in front of their own text. */
#define RECORD(ref) ", pg_catalog.textin(pg_catalog.record_out(\"" ref "\".*))"
#define EXTRA(col)  "(\"pgdual_e\".\"r\" -> 1 ->> E'" col "')"
#define SRC_E       "pg_catalog.json_array_elements("
#define SAME_X      "\"x\".tableoid = " NAMED_OID(X_MATCH)
#define X_MATCH     "c.relname = E'x' AND pg_catalog.pg_table_is_visible(c.oid)"
/* The kinds of the columns of the relation rel_now finds, through domains over domains (as the
 * catalog lookup reads them: a domain keeps its base type's output function and category), in
 * column order. */
#define TYPES(rel_now)                                                                             \
    "(SELECT pg_catalog.string_agg((SELECT CASE WHEN t.typoutput = "                               \
    "'pg_catalog.json_out(pg_catalog.json)'::pg_catalog.regprocedure THEN 'j' WHEN t.typoutput = " \
    "'pg_catalog.jsonb_out(pg_catalog.jsonb)'::pg_catalog.regprocedure THEN 'b' WHEN "             \
    "t.typcategory = 'A' THEN 'a' ELSE "                                                           \
    "'p' END FROM pg_catalog.pg_type t WHERE t.oid = a.atttypid), '' ORDER BY a.attnum) FROM "     \
    "pg_catalog.pg_attribute a WHERE a.attrelid = " rel_now " AND a.attnum > 0 AND NOT "           \
    "a.attisdropped)"
#define END_E(rel)                                                                               \
    ") AS \"pgdual_e\"(\"r\"), pg_catalog.json_populate_record(NULL::\"" rel "\", \"pgdual_e\"." \
    "\"r\" -> 0) AS \"pgdual_v\""
static void test_shape_extras(void **state)
{
    (void)state;
    struct pin_table t = {0};
    col(&t, "public.x", "id", "p", "nextval('x_id_seq'::regclass)");
    col(&t, "public.x", "j", "j", NULL);
    col(&t, "public.x", "b", "b", NULL);
    col(&t, "public.x", "a", "a", NULL);
    col(&t, "public.x", "v", "", NULL);
    struct pin_shape *sh = shape_of("INSERT INTO x (v) VALUES (1)", &t);
    check_shape_m(
        sh, 3, "id,j,b,a,v",
        "\nRETURNING pg_catalog.to_json(\"x\".*), CASE WHEN (" SAME_X
        ") IS NOT TRUE THEN 'f' WHEN " TYPES(NAMED_OID(X_MATCH)) " IS DISTINCT FROM "
                                                                 "E'pjbap' THEN 's' ELSE 't' "
                                                                 "END" RECORD("x"),
        "INSERT INTO \"x\" (\"id\", \"j\", \"b\", \"a\", \"v\") OVERRIDING SYSTEM VALUE "
        "SELECT \"pgdual_v\".\"id\", " EXTRA("j") "::pg_catalog.json, " EXTRA(
            "b") "::pg_catalog.jsonb, \"pgdual_v\".\"a\", \"pgdual_v\".\"v\" FROM " SRC_E,
        END_E("x"));
    assert_int_equal(sh->nfields, 5);
    assert_int_equal(sh->nextras, 3);
    assert_int_equal(sh->extras[0].field, 1);
    assert_int_equal(sh->extras[0].kind, PIN_VALUE_JSON);
    assert_int_equal(sh->extras[2].field, 3);
    assert_int_equal(sh->extras[2].kind, PIN_VALUE_ARRAY);
    assert_string_equal(sh->kinds, "pjbap");
    pin_shape_unref(sh);
    /* A simple Query's statement (runs_now): the name is a regclass literal, resolved by the
     * server's analysis of the same text as the statement's own target. */
    struct pin_plan p = plan_of("INSERT INTO x (v) VALUES (1)");
    p.stmts[0].runs_now = true;
    sh = pin_shape_new(&p.stmts[0], &t);
    assert_non_null(sh);
#define X_NOW "E'\"x\"'::pg_catalog.regclass"
    assert_string_equal(
        sh->returning, "\nRETURNING pg_catalog.to_json(\"x\".*), CASE WHEN (\"x\".tableoid = " X_NOW
                       ") IS NOT TRUE THEN 'f' WHEN " TYPES(
                           X_NOW) " IS DISTINCT FROM E'pjbap' THEN 's' ELSE 't' END" RECORD("x"));
#undef X_NOW
    pin_shape_unref(sh);
    pin_plan_free(&p);
    /* An UPDATE setting only plain columns needs none; one setting b reads it back. */
    sh = shape_of("UPDATE x SET v = random() WHERE id < 3", &t);
    assert_int_equal(sh->m, 2);
    assert_int_equal(sh->nextras, 0);
    /* its kinds are checked all the same: a column may be retyped to json before an Execute */
    assert_string_equal(sh->kinds, "pjbap");
    assert_non_null(strstr(sh->returning, " THEN 's' ELSE 't' END"));
    pin_shape_unref(sh);
    sh = shape_of("UPDATE x SET b = '{}', v = random() WHERE id < 3", &t);
    assert_int_equal(sh->m, 3);
    assert_string_equal(sh->head,
                        "UPDATE \"x\" AS \"pgdual_t\" SET \"b\" = " EXTRA(
                            "b") "::pg_catalog.jsonb, \"v\" = \"pgdual_v\".\"v\" FROM " SRC_E);
    assert_string_equal(sh->tail, END_E("x") " WHERE \"pgdual_t\".\"id\" = \"pgdual_v\".\"id\"");
    pin_shape_unref(sh);
    pin_table_free(&t);
    /* A jsonb key: matched on the primary's text. A table whose types pgdual does not know (made
     * in the same text): no check of them. */
    struct pin_table k = {0};
    col(&k, "public.y", "k", "pb", NULL);
    k.kinds_known = false;
    sh = shape_of("DELETE FROM y WHERE k IN (SELECT k FROM y LIMIT 1)", &k);
    check_shape_m(sh, 3, "k", "\nRETURNING pg_catalog.to_json(\"y\".*)" SAME("y", "y") RECORD("y"),
                  "DELETE FROM \"y\" AS \"pgdual_t\" USING " SRC_E,
                  END_E("y") " WHERE \"pgdual_t\".\"k\" = " EXTRA("k") "::pg_catalog.jsonb");
    assert_null(sh->kinds);
    pin_shape_unref(sh);
    pin_table_free(&k);
}

static void test_primary_text(void **state)
{
    (void)state;
    struct pin_table t;
    table_t(&t);
    const char *sql = "UPDATE t SET ts = now() -- note\n; SELECT 1; DELETE FROM t WHERE id IN "
                      "(SELECT id FROM t LIMIT 1) RETURNING v -- end";
    struct pin_plan p = plan_of(sql);
    assert_int_equal(p.n, 3);
    struct pin_shape *shapes[3] = {pin_shape_new(&p.stmts[0], &t), NULL,
                                   pin_shape_new(&p.stmts[2], &t)};
    assert_non_null(shapes[0]);
    assert_non_null(shapes[2]);
    struct wbuf out;
    wbuf_init(&out);
    assert_int_equal(pin_primary_text(sql, &p, shapes, &out), 0);
    assert_string_equal(
        (const char *)out.data,
        "UPDATE t SET ts = now() -- note\n\nRETURNING pg_catalog.to_json(\"t\".*)" SAME(
            "t", "t") "; "
                      "SELECT 1; DELETE FROM t WHERE id IN (SELECT id FROM t LIMIT 1) "
                      "RETURNING v -- end\n, pg_catalog.to_json(\"t\".*)" SAME("t", "t"));
    assert_int_equal(out.len, strlen((const char *)out.data) + 1);
    /* What the primary runs still has three statements, each pinned one now returning. */
    struct pin_plan q = plan_of((const char *)out.data);
    assert_int_equal(q.n, 3);
    assert_true(q.stmts[0].client_returning);
    assert_true(q.stmts[2].client_returning);
    pin_plan_free(&q);

    /* Nothing pinned: the text unchanged. */
    struct pin_shape *none[3] = {NULL, NULL, NULL};
    wbuf_reset(&out);
    assert_int_equal(pin_primary_text(sql, &p, none, &out), 0);
    assert_string_equal((const char *)out.data, sql);
    /* A plan that does not fit the text. */
    p.stmts[2].end = strlen(sql) + 1;
    wbuf_reset(&out);
    assert_int_equal(pin_primary_text(sql, &p, shapes, &out), PIN_ESHAPE);
    p.stmts[2].end = 3;
    wbuf_reset(&out);
    assert_int_equal(pin_primary_text(sql, &p, shapes, &out), PIN_ESHAPE);
    wbuf_free(&out);
    pin_shape_unref(shapes[0]);
    pin_shape_unref(shapes[2]);
    pin_plan_free(&p);
    pin_table_free(&t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_shape_insert),
        cmocka_unit_test(test_shape_update_delete),
        cmocka_unit_test(test_shape_extras),
        cmocka_unit_test(test_primary_text),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

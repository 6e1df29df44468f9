/* tests/unit/test_sql_key.c: protocol/sql_key.c (each lexical form, pairs that share a key and
 * pairs that must not, texts without a key) and classify_cached's use of the key. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "protocol/classify.h"
#include "protocol/sql_key.h"

/* The key of sql with the placeholder byte shown as '#', scs on; "NONE" when there is none. */
static const char *show(const char *sql, bool scs, struct sql_key_info *info)
{
    static char out[4096];
    long n = sql_key(sql, strlen(sql), scs, out, sizeof out, info);
    if (n < 0) {
        return "NONE";
    }
    assert_int_equal(strlen(out), (size_t)n);
    for (long i = 0; i < n; i++) {
        if (out[i] == SQL_KEY_PLACEHOLDER) {
            out[i] = '#';
        }
    }
    return out;
}

static void expect(const char *sql, const char *want)
{
    const char *got = show(sql, true, NULL);
    if (strcmp(got, want) != 0) {
        fail_msg("key of [%s]: [%s], want [%s]", sql, got, want);
    }
}

static void test_forms(void **state)
{
    (void)state;
    /* pgbench's statements */
    expect("SELECT abalance FROM pgbench_accounts WHERE aid = 4711;",
           "SELECT abalance FROM pgbench_accounts WHERE aid = #i;");
    expect("UPDATE pgbench_accounts SET abalance = abalance + -123 WHERE aid = 99;",
           "UPDATE pgbench_accounts SET abalance = abalance + -#i WHERE aid = #i;");
    /* strings: standard with '' doubling, escape, dollar, national, bit, hex */
    expect("SELECT 'it''s', E'ab', E'a''b', $$x$$, $t$a$b$t$, N'x', n'y', B'101', X'1f', b'', x''",
           "SELECT #s, #s, #s, #s, #s, #n, #n, #b, #x, #b, #x");
    /* an escape string with a backslash stays verbatim (its escapes could decode to anything) */
    expect("SELECT E'a\\'b', e'\\x6eow'", "SELECT E'a\\'b', e'\\x6eow'");
    /* continuation across a newline: one constant; without a newline: two */
    expect("SELECT 'a'\n  'b', 'c' 'd'", "SELECT #s, #s #s");
    expect("SELECT B'1'\n'0', E'x'\r'y'", "SELECT #b, #s");
    /* libpg_query continues no string across a comment (the server does) */
    expect("SELECT 'a' -- c\n'b'", "SELECT #s #s");
    /* numbers */
    expect("SELECT 1, 1.5, .5, 1e10, 1.e5, 2.5E-3, 1., 2147483647, 2147483648, 0002147483647",
           "SELECT #i, #f, #f, #f, #f, #f, #f, #i, #f, #i");
    expect("SELECT 1.5.5, a.5, t.x", "SELECT #f#f, a#f, t.x");
    /* parameters are no constants; identifiers keep case and quoting; $ inside identifiers */
    expect("SELECT $1, $23, \"A\", a, \"a\"\"b\", a$1, a$$b$$", "SELECT $1, $23, \"A\", a, "
                                                                "\"a\"\"b\", a$1, a$$b$$");
    /* comments (nested) and whitespace fold to one space; none at the ends */
    expect("  SELECT /* a /* b */ c */ 1 -- x\n\t,\r\n2  -- end", "SELECT #i , #i");
    expect("SELECT 1+/*c*/-2, 1+--c\n-2", "SELECT #i+ -#i, #i+ -#i");
    /* casts, operators */
    expect("SELECT x::int, y::numeric(10,2) FROM t WHERE a <> 3 AND b !~ 'x'",
           "SELECT x::int, y::numeric(#i,#i) FROM t WHERE a <> #i AND b !~ #s");
    /* U& strings and identifiers stay verbatim, and every string after them */
    expect("SELECT 'a', U&'d\\0061t' UESCAPE '!', 'b', 1", "SELECT #s, U&'d\\0061t' UESCAPE '!', "
                                                           "'b', #i");
    expect("SELECT U&\"x\" UESCAPE '#', 'y'", "SELECT U&\"x\" UESCAPE '#', 'y'");
}

static void test_verbatim_constants(void **state)
{
    (void)state;
    /* clock words: 'now'::timestamptz is nondeterministic, 'x'::timestamptz is not */
    expect("SELECT 'now'::timestamptz, ' Today'::date, 'TOMORROW', 'yesterday 1', 'nowhere'",
           "SELECT 'now'::timestamptz, ' Today'::date, 'TOMORROW', 'yesterday 1', 'nowhere'");
    expect("SELECT $$now$$::date, $a$ today$a$, N'now', E'now', 'no'\n'w'",
           "SELECT $$now$$::date, $a$ today$a$, N'now', E'now', 'no'\n'w'");
    expect("SELECT 'not now', 'x'::date", "SELECT #s, #s::date");
    /* precisions that decide a parse error or a node field */
    expect("SELECT 1::float(3), current_time(2), LOCALTIMESTAMP (4), f(3), float (0)",
           "SELECT #i::float(3), current_time(2), LOCALTIMESTAMP (4), f(#i), float (0)");
    /* an integer after '[': array bounds are in the fingerprint */
    expect("SELECT x::int[3], a[1], a[1:2], ARRAY[1, 2], ARRAY['a']",
           "SELECT x::int[3], a[1], a[1:#i], ARRAY[1, #i], ARRAY[#s]");
    /* statements other than DML keep every constant */
    expect("SET x = 5; EXPLAIN (ANALYZE 0) SELECT 1; SELECT 2",
           "SET x = 5; EXPLAIN (ANALYZE 0) SELECT 1; SELECT #i");
    expect("COPY t FROM ''; copy t to 'f'", "COPY t FROM ''; copy t to 'f'");
    expect("(SELECT 1) UNION VALUES (2); WITH w AS (SELECT 3) TABLE w; table t",
           "(SELECT #i) UNION VALUES (#i); WITH w AS (SELECT #i) TABLE w; table t");
    expect("insert into t values (1); delete from t where a = 'x'; merge into t using u on 1 = 1 "
           "when matched then do nothing",
           "insert into t values (#i); delete from t where a = #s; merge into t using u on #i = "
           "#i when matched then do nothing");
}

static void test_no_key(void **state)
{
    (void)state;
    static const char *const texts[] = {
        "SELECT 'abc",
        "SELECT E'abc\\'",
        "SELECT \"abc",
        "SELECT $$abc",
        "SELECT $a$x$b$",
        "SELECT /* x",
        "SELECT /* /* */",
        "SELECT 123abc",
        "SELECT 1e",
        "SELECT 1e+",
        "SELECT 1.5x",
        "SELECT 1..2",
        "SELECT 1_000",
        "SELECT $1a",
        "SELECT $a",
        "SELECT $",
        "SELECT 1$",
        "SELECT \\",
        "SELECT {}",
        "SELECT\v1",
        "SELECT \x01",
        "SELECT \x7f",
        "SELECT B'1",
        "SELECT U&'x",
        /* a comment once a U& token was seen: libpg_query refuses one before or after UESCAPE
         * (the server does not), so the commented text must not share the plain one's key */
        "SELECT U&'!0061' /*x*/ UESCAPE '!'",
        "SELECT U&'!0061' UESCAPE /*x*/ '!'",
        "SELECT U&\"!0061\" -- c\n UESCAPE '!'",
        /* and after NOT, NULLS, WITH (libpg_query's other lookahead tokens) */
        "SELECT a FROM t WHERE a NOT /*c*/ IN (1)",
        "SELECT a FROM t WHERE a not -- c\n LIKE 'x'",
        "SELECT a FROM t ORDER BY a NULLS /**/ FIRST",
        "SELECT * FROM unnest(a) WITH /*c*/ ORDINALITY",
        "SELECT '1'::timestamp with /*c*/ time zone",
    };
    for (size_t i = 0; i < sizeof texts / sizeof texts[0]; i++) {
        if (strcmp(show(texts[i], true, NULL), "NONE") != 0) {
            fail_msg("[%s] has a key", texts[i]);
        }
    }
    /* NUL inside the text, and a buffer too small */
    char out[64];
    assert_int_equal(sql_key("SELECT 1\0 2", 11, true, out, sizeof out, NULL), -1);
    assert_int_equal(sql_key("SELECT 1", 8, true, out, 4, NULL), -1);
    assert_int_equal(sql_key("SELECT 1", 8, true, out, SQL_KEY_CAP(8), NULL), 9);
    assert_int_equal(sql_key("1,1,1", 5, true, out, SQL_KEY_CAP(5), NULL), 5); /* not DML */
    assert_int_equal(sql_key("", 0, true, out, 1, NULL), 0);
    assert_string_equal(out, "");
}

/* Pairs of texts: same key or not. */
static bool same(const char *a, const char *b)
{
    char ka[512];
    char kb[512];
    long na = sql_key(a, strlen(a), true, ka, sizeof ka, NULL);
    long nb = sql_key(b, strlen(b), true, kb, sizeof kb, NULL);
    assert_true(na >= 0 && nb >= 0);
    return na == nb && memcmp(ka, kb, (size_t)na) == 0;
}

static void test_pairs(void **state)
{
    (void)state;
    assert_true(same("SELECT * FROM t WHERE a = 1", "SELECT  *\nFROM t  WHERE a = 99999"));
    assert_true(same("SELECT 'x'", "SELECT E'y'"));
    assert_true(same("SELECT 'x'", "SELECT $q$it's$q$"));
    assert_true(same("SELECT 'a'\n'b'", "SELECT ''"));
    assert_true(same("SELECT 2147483647", "SELECT 0"));
    assert_true(same("SELECT 2147483648", "SELECT 1.5"));
    assert_true(same("SELECT 1 /* c */", "SELECT 2 -- d"));
    assert_true(same("SELECT 1; SELECT 'a'", "SELECT 2; SELECT 'b'"));
    assert_false(same("SELECT 'now'::date", "SELECT 'x'::date"));
    assert_false(same("SELECT 1", "SELECT 1.0"));
    assert_false(same("SELECT 1", "SELECT '1'"));
    assert_false(same("SELECT 1.0", "SELECT '1'"));
    assert_false(same("SELECT 2147483647", "SELECT 2147483648"));
    assert_false(same("SELECT B'1'", "SELECT X'1'"));
    assert_false(same("SELECT B'1'", "SELECT '1'"));
    assert_false(same("SELECT N'1'", "SELECT '1'"));
    assert_false(same("SELECT \"A\"", "SELECT a"));
    assert_false(same("SELECT a", "SELECT A"));
    assert_false(same("SELECT $1", "SELECT $2"));
    assert_false(same("SELECT 'a' 'b'", "SELECT 'a'\n'b'"));
    assert_false(same("SELECT E'\\''", "SELECT E'\\\\'"));
    assert_false(same("SELECT $a$x$a$", "SELECT $a$now$a$"));
    assert_true(same("SELECT 1 /* c */ 2", "SELECT 1 2 /* c */")); /* a comment is a blank */
    assert_true(same("SELECT 1 /* c */ 2", "SELECT 1/* c */2"));
    assert_false(same("SELECT 1;SELECT 2", "SELECT 1,SELECT 2"));
    assert_false(same("SELECT -1", "SELECT - 1"));
    assert_false(same("SET a = 1", "SET a = 2"));
}

static void test_standard_conforming_strings_off(void **state)
{
    (void)state;
    /* off: a backslash escapes in '...' too; such strings stay verbatim */
    assert_string_equal(show("SELECT 'a\\'b', 'c'", false, NULL), "SELECT 'a\\'b', #s");
    /* on: the same text is 'a\\', b, the string "', " and an unterminated one */
    assert_string_equal(show("SELECT 'a\\'b', 'c'", true, NULL), "NONE");
    assert_string_equal(show("SELECT 'a\\', 'c'", true, NULL), "SELECT #s, #s");
    assert_string_equal(show("SELECT 'a\\', 'c'", false, NULL), "NONE");
    assert_string_equal(show("SELECT 'ab'", false, NULL), "SELECT #s");
}

static void test_info(void **state)
{
    (void)state;
    struct sql_key_const c[4];
    struct sql_key_info info = {.consts = c, .consts_cap = 4};
    const char *sql = "SELECT 'a'\n'b', E'x', 2.5, $1, B'1', 7 FROM t; ; UPDATE t SET a = 1";
    assert_string_equal(show(sql, true, &info), "SELECT #s, #s, #f, $1, #b, #i FROM t; ; UPDATE t "
                                                "SET a = #i");
    assert_int_equal(info.nstatements, 2);
    assert_int_equal(info.nconsts, 6);
    assert_int_equal(c[0].off, 7);
    assert_int_equal(c[0].len, 7);
    assert_int_equal(c[0].kind, SQL_KEY_STRING);
    assert_int_equal(c[1].off, 16);
    assert_int_equal(c[1].len, 4);
    assert_int_equal(c[2].kind, SQL_KEY_FLOAT);
    assert_int_equal(c[3].kind, SQL_KEY_BITS);
    assert_string_equal(show(" ; -- x", true, &info), ";");
    assert_int_equal(info.nstatements, 0);
    assert_string_equal(
        show("CREATE RULE r AS ON INSERT TO t DO (DELETE FROM u; SELECT 1)", true, &info),
        "CREATE RULE r AS ON INSERT TO t DO (DELETE FROM u; SELECT 1)");
    assert_int_equal(info.nstatements, -1);
    assert_string_equal(
        show("CREATE FUNCTION f() RETURNS int BEGIN ATOMIC SELECT 1; END; SELECT 2", true, &info),
        "CREATE FUNCTION f() RETURNS int BEGIN ATOMIC SELECT 1; END; SELECT 2");
    assert_int_equal(info.nstatements, -1);
}

/* classify_cached through the key: a hit for a text never seen, equal to a fresh parse. */
static void test_cache_hits_by_key(void **state)
{
    (void)state;
    struct classify_cache *c = classify_cache_new(16);
    assert_non_null(c);
    static const char *const pairs[][2] = {
        {"SELECT abalance FROM pgbench_accounts WHERE aid = 1",
         "SELECT abalance FROM pgbench_accounts WHERE aid = 77777"},
        {"UPDATE t SET a = a + 5 WHERE id = 3", "UPDATE t SET a = a + 9 WHERE id = 40"},
        {"INSERT INTO h VALUES (1, 'x', 2.5, CURRENT_TIMESTAMP)",
         "INSERT INTO h VALUES (2, $$y$$, 1e3, CURRENT_TIMESTAMP)"},
        {"SELECT 'x'::date FROM t", "SELECT 'y'::date  FROM t"},
        {"SELECT 1; DELETE FROM t WHERE a = 'q'", "SELECT 2; DELETE FROM t WHERE a = ''"},
        {"SELECT now() + interval '1 day'", "SELECT now() + interval '2 days'"},
        {"SELECT 1 FROM t FOR UPDATE LIMIT 3", "SELECT 9 FROM t FOR UPDATE LIMIT 4"},
    };
    for (size_t i = 0; i < sizeof pairs / sizeof pairs[0]; i++) {
        struct classify_result a, b, fresh;
        struct classify_cache_stats before, after;
        assert_int_equal(classify_cached(c, pairs[i][0], NULL, &a), 0);
        classify_cache_stats(c, &before);
        assert_int_equal(classify_cached(c, pairs[i][1], NULL, &b), 0);
        classify_cache_stats(c, &after);
        if (after.hits != before.hits + 1) { /* no parse for the second text */
            fail_msg("[%s] and [%s]: no hit", pairs[i][0], pairs[i][1]);
        }
        assert_int_equal(after.misses, before.misses);
        assert_int_equal(classify_statement(pairs[i][1], NULL, &fresh), 0);
        assert_true(classify_result_equal(&b, &fresh));
        assert_true(classify_result_equal(&a, &fresh));
    }
    /* 'now' keeps its own entry: another class */
    struct classify_result x, now;
    assert_int_equal(classify_cached(c, "SELECT 'x'::timestamptz", NULL, &x), 0);
    assert_int_equal(classify_cached(c, "SELECT 'now'::timestamptz", NULL, &now), 0);
    assert_false(x.nondeterministic);
    assert_true(now.nondeterministic);
    classify_cache_free(c);
}

/* pgbench's select-only loop: one parse for 1000 statements with new literals, 1000 without. */
static void test_cache_parses_avoided(void **state)
{
    (void)state;
    struct classify_cache *c = classify_cache_new(16);
    assert_non_null(c);
    char sql[128];
    struct classify_result r;
    for (int i = 0; i < 1000; i++) {
        snprintf(sql, sizeof sql, "SELECT abalance FROM pgbench_accounts WHERE aid = %d;",
                 i * 7919 + 1);
        assert_int_equal(classify_cached(c, sql, NULL, &r), 0);
        assert_int_equal(r.kind, CLASSIFY_READ);
    }
    struct classify_cache_stats st;
    classify_cache_stats(c, &st);
    assert_int_equal(st.misses, 1);
    assert_int_equal(st.hits, 999);
    assert_int_equal(st.unkeyed, 0);
    assert_int_equal(classify_cache_count(c), 1);

    classify_cache_use_keys(c, false); /* as before the key: one parse per text */
    assert_int_equal(classify_cache_count(c), 0);
    for (int i = 0; i < 20; i++) {
        snprintf(sql, sizeof sql, "SELECT abalance FROM pgbench_accounts WHERE aid = %d;", i);
        assert_int_equal(classify_cached(c, sql, NULL, &r), 0);
    }
    classify_cache_stats(c, &st);
    assert_int_equal(st.misses, 21);
    /* a text without a key is cached by its full text */
    classify_cache_use_keys(c, true);
    assert_int_equal(classify_cached(c, "SELECT 1.5x", NULL, &r), 0);
    assert_int_equal(classify_cached(c, "SELECT 1.5x", NULL, &r), 0);
    assert_true(r.parse_error);
    classify_cache_stats(c, &st);
    assert_int_equal(st.unkeyed, 22); /* 20 while keys were off, and the two */
    assert_int_equal(st.misses, 22);
    classify_cache_free(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_forms),
        cmocka_unit_test(test_verbatim_constants),
        cmocka_unit_test(test_no_key),
        cmocka_unit_test(test_pairs),
        cmocka_unit_test(test_standard_conforming_strings_off),
        cmocka_unit_test(test_info),
        cmocka_unit_test(test_cache_hits_by_key),
        cmocka_unit_test(test_cache_parses_avoided),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

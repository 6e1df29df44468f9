/* tests/unit/test_seq_raise.c: protocol/seq_raise.c: the raise is one DO statement that
 * PostgreSQL's parser (libpg_query) accepts, its PL/pgSQL body compiles, every catalog name in it
 * is schema-qualified (a client's search_path cannot redirect it), and it goes as pgdual's own
 * named statement answered by one ReadyForQuery. What it does to sequences is tested against
 * real clusters by tests/integration/it_pin_seqraise.sh. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <pg_query.h>

#include "protocol/classify.h"
#include "protocol/pqproto.h"
#include "protocol/seq_raise.h"
#include "protocol/wire.h"

static void one_do_statement(void **state)
{
    (void)state;
    struct classify_result r;
    assert_int_equal(classify_statement(seq_raise_sql, NULL, &r), 0);
    assert_false(r.parse_error);
    assert_int_equal(r.nstatements, 1);
    assert_true(r.user_code); /* a DO block */
}

/* The body between the dollar quotes compiles as a PL/pgSQL function body. */
static void body_compiles(void **state)
{
    (void)state;
    const char *open = strstr(seq_raise_sql, "$pgdual_raise$");
    assert_non_null(open);
    const char *body = open + strlen("$pgdual_raise$");
    const char *close = strstr(body, "$pgdual_raise$");
    assert_non_null(close);
    char fn[8192];
    int n =
        snprintf(fn, sizeof(fn), "CREATE FUNCTION f() RETURNS void LANGUAGE plpgsql AS $x$%.*s$x$",
                 (int)(close - body), body);
    assert_true(n > 0 && (size_t)n < sizeof(fn));
    PgQueryPlpgsqlParseResult res = pg_query_parse_plpgsql(fn);
    if (res.error) {
        fail_msg("plpgsql: %s", res.error->message);
    }
    pg_query_free_plpgsql_parse_result(res);
}

/* Functions and catalogs are named with their schema; the only unqualified calls are the
 * grammar's own (COALESCE, CASE) and PL/pgSQL's statements. */
static void names_qualified(void **state)
{
    (void)state;
    static const char *const words[] = {
        "format(",      "setval(",    "set_config(", "current_setting(", "pg_sequence_last_value(",
        "pg_depend",    "pg_attrdef", "pg_class",    "pg_sequence ",     "pg_namespace",
        "pg_attribute", "pg_index",   "regclass"};
    for (size_t i = 0; i < sizeof(words) / sizeof(words[0]); i++) {
        for (const char *p = strstr(seq_raise_sql, words[i]); p; p = strstr(p + 1, words[i])) {
            size_t lead = strlen("pg_catalog.");
            if ((size_t)(p - seq_raise_sql) < lead || strncmp(p - lead, "pg_catalog.", lead) != 0) {
                fail_msg("unqualified %s at offset %zu", words[i], (size_t)(p - seq_raise_sql));
            }
        }
    }
}

static void own_statement_messages(void **state)
{
    (void)state;
    struct wbuf b;
    wbuf_init(&b);
    seq_raise_put(&b, "pgdual.own");
    assert_false(b.failed);
    static const uint8_t want[] = {PqMsg_Close,   PqMsg_Close, PqMsg_Parse, PqMsg_Bind,
                                   PqMsg_Execute, PqMsg_Close, PqMsg_Sync};
    size_t off = 0;
    struct wire_msg m;
    for (size_t i = 0; i < sizeof(want); i++) {
        assert_int_equal(wire_next_msg(b.data, b.len, &off, &m), 0);
        assert_int_equal(m.type, want[i]);
        if (m.type == PqMsg_Parse) {
            assert_string_equal((const char *)m.body, "pgdual.own");
            assert_string_equal((const char *)m.body + strlen("pgdual.own") + 1, seq_raise_sql);
        }
    }
    assert_int_equal(off, b.len);
    wbuf_free(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(one_do_statement),
        cmocka_unit_test(body_compiles),
        cmocka_unit_test(names_qualified),
        cmocka_unit_test(own_statement_messages),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

/* tests/unit/test_classify_plain.c: protocol/classify_plain.c: what it proves without a parse, and
 * that a proof never disagrees with libpg_query's classification (every statement of the
 * classification case table and the cases here). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "protocol/classify.h"
#include "protocol/classify_plain.h"

/* A proof must agree with the parse on every field the relay mode reads. Texts that do not
 * parse are one plain statement whose failure changes nothing: skipped here. */
static int check_agrees(const char *sql)
{
    struct classify_result p, r;
    if (!classify_plain(sql, &p)) {
        return 0;
    }
    assert_int_equal(classify_statement(sql, NULL, &r), 0);
    if (r.parse_error) {
        return 1;
    }
    if (p.kind != r.kind || p.dml_only != r.dml_only || p.inserts != r.inserts ||
        p.catalog_safe != r.catalog_safe || p.nstatements != r.nstatements ||
        p.txn_control != r.txn_control || p.commits != r.commits || p.is_listen != r.is_listen ||
        p.is_copy_from != r.is_copy_from || p.session_objects != r.session_objects ||
        p.user_code != r.user_code || p.lock_only_read != r.lock_only_read) {
        fail_msg("classify_plain disagrees with the parse on: %s", sql);
    }
    return 1;
}

static const char *const proven[] = {
    "SELECT abalance FROM pgbench_accounts WHERE aid = 42;",
    "  select * from t where a = 'x' ;; ",
    "SELECT 1",
    "VALUES 1, 2",
    "TABLE t",
    "select a from t where b = $1",
    "SELECT CURRENT_TIMESTAMP",
    "UPDATE pgbench_accounts SET abalance = abalance + -4120 WHERE aid = 77;",
    "INSERT INTO t VALUES 1",
    "INSERT INTO t SELECT * FROM u",
    "INSERT INTO t DEFAULT VALUES",
    "DELETE FROM t WHERE id = 3 RETURNING *",
    "UPDATE t SET a = 1 FROM u WHERE t.id = u.id",
    "SELECT\t*\nFROM t",
    "INSERT INTO pgbench_history (tid, bid, aid, delta, mtime) VALUES (7, 1, 42, -312, "
    "CURRENT_TIMESTAMP);",
    "INSERT INTO s.t(a) VALUES (1), (2)",
    "SELECT * FROM t WHERE a IN (1, 2) AND (b = 1 OR c = 2)",
    "SELECT * FROM t WHERE a = ANY ($1)",
    "SELECT (1 + 2) * 3",
};

static const char *const not_proven[] = {
    "",
    "   ",
    "SELECT now()",
    "SELECT 1; DELETE FROM t",
    "SELECT 1; SELECT 2",
    "SELECT 'a;b'; DROP TABLE t",
    "SELECT 'x;y'", /* a ';' in a literal is not read as such: a parse decides */
    "SELECT * FROM t FOR UPDATE",
    "SELECT * INTO u FROM t",
    "SELECT ts AT TIME ZONE 'UTC' FROM t",
    "SELECT 'a' IS NORMALIZED",
    "SELECT 1 WHERE 'a' LIKE 'b' ESCAPE '!'",
    "SELECT 1 WHERE 'a' SIMILAR TO 'b'",
    "INSERT INTO t (a) VALUES (f(1))",
    "INSERT INTO t (a) SELECT nextval ('s')",
    "SELECT f (1)",
    "SELECT \"f\"(1)",
    /* keywords that may name a function: unreserved or type_func_name ones unqualified, any
     * keyword after a '.' (review finding: these were proven reads) */
    "SELECT set(1)",
    "SELECT by(1)",
    "SELECT is(1)",
    "SELECT public.select(1)",
    "SELECT app.in(42)",
    "SELECT app . in (42)",
    "SELECT x FROM t WHERE y = app.where(1)",
    "VALUES (app.any(1))",
    "UPDATE t SET a = app.set(a)",
    "INSERT INTO t VALUES (app.values(1))",
    "UPDATE t SET (a, b) = (1, 2) WHERE id = 3", /* SET may name a function: a parse decides */
    "SELECT\v1",                                 /* \v is no whitespace to the server */
    "SELECT f/**/(1)",
    "SELECT f -- x,\n(1)",
    "SELECT 1 -- comment",
    "SELECT x::numeric(10, 2) FROM t",
    "SELECT * FROM t WHERE a IN (SELECT b FROM u FOR UPDATE)",
    "SELECT ROW(1, 2)",
    "INSERT INTO t AS x (a) VALUES (1)",
    "WITH x AS (DELETE FROM t RETURNING *) SELECT * FROM x",
    "selectx 1",
    "SELECT_1",
    "select$ 1",
    "-- c\nSELECT 1",
    "/* c */ SELECT 1",
    "COPY t FROM STDIN",
    "LISTEN x",
    "PREPARE p AS SELECT 1",
    "DO $$BEGIN END$$",
    "CALL p()",
    "SET search_path = x",
    "BEGIN",
    "COMMIT",
    "EXPLAIN SELECT 1",
    "MERGE INTO t USING u ON t.a = u.a WHEN MATCHED THEN DELETE",
    "CREATE TABLE t AS SELECT 1",
    "TABLEx",
    "SELECT * FROM t ORDER BY a LIMIT 1 FOR SHARE SKIP LOCKED",
    "SELECT * FROM t WINDOW w AS (PARTITION BY a)",
};

static void test_proven(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(proven) / sizeof(*proven); i++) {
        struct classify_result r;
        if (!classify_plain(proven[i], &r)) {
            fail_msg("not proven: %s", proven[i]);
        }
        assert_int_equal(check_agrees(proven[i]), 1);
    }
    struct classify_result r;
    assert_true(classify_plain("select 1", &r));
    assert_int_equal(r.kind, CLASSIFY_READ);
    assert_false(r.inserts);
    assert_true(classify_plain("insert into t values 1", &r));
    assert_int_equal(r.kind, CLASSIFY_MIRROR);
    assert_true(r.inserts && r.dml_only && r.catalog_safe);
    assert_int_equal(r.nstatements, 1);
    assert_true(classify_plain("Delete from t", &r));
    assert_int_equal(r.kind, CLASSIFY_MIRROR);
    assert_false(r.inserts);
}

static void test_not_proven(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(not_proven) / sizeof(*not_proven); i++) {
        struct classify_result r;
        memset(&r, 0x5a, sizeof(r));
        if (classify_plain(not_proven[i], &r)) {
            fail_msg("proven: %s", not_proven[i]);
        }
        assert_int_equal(r.nstatements, 0x5a5a5a5a); /* untouched */
    }
    assert_false(classify_plain(NULL, NULL));
}

/* Every statement of the classification case table: a proof agrees with the parse. */
static void test_case_table(void **state)
{
    (void)state;
    FILE *f = fopen(PGDUAL_TEST_DATA "/classify/cases.tsv", "r");
    assert_non_null(f);
    char line[8192];
    int proofs = 0, rows = 0;
    while (fgets(line, sizeof(line), f)) {
        line[strcspn(line, "\n")] = '\0';
        if (line[0] == '#' || line[0] == '\0') {
            continue;
        }
        const char *sql = line;
        for (int tabs = 0; tabs < 3 && sql; tabs++) {
            sql = strchr(sql, '\t');
            sql = sql ? sql + 1 : NULL;
        }
        if (!sql) {
            continue;
        }
        rows++;
        proofs += check_agrees(sql);
    }
    fclose(f);
    assert_true(rows > 100);
    assert_true(proofs > 5); /* the table holds plain statements too */
    printf("# case table: %d statements, %d proven plain\n", rows, proofs);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_proven),
        cmocka_unit_test(test_not_proven),
        cmocka_unit_test(test_case_table),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

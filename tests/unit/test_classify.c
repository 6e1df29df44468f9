/* tests/unit/test_classify.c: protocol/classify*.c: the case table, cache, normalize, functions. */
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

static const char *const extra_funcs[] = {"my_stable_func", "util.fmt"};
static const struct classify_options extra_opts = {extra_funcs, 2};

static int txn_from_name(const char *s)
{
    static const char *const names[] = {"NONE",      "BEGIN",   "COMMIT",      "ROLLBACK",
                                        "SAVEPOINT", "RELEASE", "ROLLBACK_TO", "OTHER"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        if (strcmp(s, names[i]) == 0) {
            return (int)i;
        }
    }
    return -1;
}

/* One row of cases.tsv, parsed. */
struct tcase {
    int line;
    enum classify_kind kind;
    bool nondet;
    char *checks; /* comma-separated, '-' for none */
    const char *sql;
};

/* Does the checks column hold this item (exactly)? */
static bool has_check(const struct tcase *t, const char *item)
{
    size_t n = strlen(item);
    for (const char *p = t->checks; p != NULL && *p;
         p = strchr(p, ',') ? strchr(p, ',') + 1 : NULL) {
        if (strncmp(p, item, n) == 0 && (p[n] == ',' || p[n] == '\0')) {
            return true;
        }
    }
    return false;
}

/* Value of "key=value" in the checks column, or NULL; copied into buf. */
static const char *check_value(const struct tcase *t, const char *key, char *buf, size_t cap)
{
    size_t n = strlen(key);
    for (const char *p = t->checks; p != NULL && *p;
         p = strchr(p, ',') ? strchr(p, ',') + 1 : NULL) {
        if (strncmp(p, key, n) == 0 && p[n] == '=') {
            size_t len = strcspn(p + n + 1, ",");
            if (len >= cap) {
                return NULL;
            }
            memcpy(buf, p + n + 1, len);
            buf[len] = '\0';
            return buf;
        }
    }
    return NULL;
}

static int case_fail(const struct tcase *t, const char *what)
{
    fprintf(stderr, "cases.tsv:%d: %s: %s\n", t->line, what, t->sql);
    return 1;
}

static int check_txn(const struct tcase *t, const char *key, enum classify_txn got)
{
    char buf[32];
    const char *v = check_value(t, key, buf, sizeof buf);
    if (v != NULL && txn_from_name(v) != (int)got) {
        return case_fail(t, key);
    }
    return 0;
}

/* Returns the number of mismatches for one case (printed to stderr). */
static int run_case(const struct tcase *t, struct classify_cache *cache)
{
    const struct classify_options *opt = has_check(t, "opt") ? &extra_opts : NULL;
    struct classify_result r, rc;
    if (classify_statement(t->sql, opt, &r) != 0) {
        return case_fail(t, "classify_statement failed");
    }
    int bad = 0;
    bad += r.kind != t->kind ? case_fail(t, "kind") : 0;
    bad += r.nondeterministic != t->nondet ? case_fail(t, "nondeterministic") : 0;
    bad += r.parse_error != has_check(t, "parse_error") ? case_fail(t, "parse_error") : 0;
    bad += r.is_listen != has_check(t, "listen") ? case_fail(t, "is_listen") : 0;
    bad += r.is_copy_from != has_check(t, "copy_from") ? case_fail(t, "is_copy_from") : 0;
    bad += r.is_copy_to != has_check(t, "copy_to") ? case_fail(t, "is_copy_to") : 0;
    bad += r.txn_control != has_check(t, "txn_control") ? case_fail(t, "txn_control") : 0;
    bad += r.session_objects != has_check(t, "objects") ? case_fail(t, "session_objects") : 0;
    bad += check_txn(t, "txn", r.txn) + check_txn(t, "last", r.txn_last);
    char buf[16];
    const char *dml = check_value(t, "dml", buf, sizeof buf);
    bad += dml != NULL && (atoi(dml) != 0) != r.dml_only ? case_fail(t, "dml_only") : 0;
    const char *n = check_value(t, "n", buf, sizeof buf);
    bad += n != NULL && atoi(n) != r.nstatements ? case_fail(t, "nstatements") : 0;
    /* An empty string has a (constant) fingerprint too; only a parse error gives 0. */
    if (r.parse_error ? r.fingerprint != 0 : r.nstatements > 0 && r.fingerprint == 0) {
        bad += case_fail(t, "fingerprint");
    }
    if (opt != NULL) {
        struct classify_result plain;
        bad += classify_statement(t->sql, NULL, &plain) != 0 || plain.kind != CLASSIFY_MIRROR
                   ? case_fail(t, "without the option it must mirror")
                   : 0;
    }
    for (int pass = 0; pass < 2; pass++) { /* miss, then hit */
        if (classify_cached(cache, t->sql, opt, &rc) != 0 || !classify_result_equal(&r, &rc)) {
            bad += case_fail(t, "cached result differs");
        }
    }
    return bad;
}

/* Split one line into a case; false for comments and blank lines. */
static bool parse_line(char *line, int lineno, struct tcase *t)
{
    if (line[0] == '#' || line[0] == '\0') {
        return false;
    }
    char *f[4] = {line, NULL, NULL, NULL};
    for (int i = 1; i < 4; i++) {
        char *tab = strchr(f[i - 1], '\t');
        assert_non_null(tab);
        *tab = '\0';
        f[i] = tab + 1;
    }
    assert_true(strcmp(f[0], "READ") == 0 || strcmp(f[0], "MIRROR") == 0);
    t->line = lineno;
    t->kind = strcmp(f[0], "READ") == 0 ? CLASSIFY_READ : CLASSIFY_MIRROR;
    t->nondet = strcmp(f[1], "1") == 0;
    t->checks = f[2];
    t->sql = f[3];
    return true;
}

static char *read_file(const char *path)
{
    FILE *fp = fopen(path, "rb");
    assert_non_null(fp);
    assert_int_equal(fseek(fp, 0, SEEK_END), 0);
    long size = ftell(fp);
    assert_true(size > 0);
    rewind(fp);
    char *buf = malloc((size_t)size + 1);
    assert_non_null(buf);
    assert_int_equal(fread(buf, 1, (size_t)size, fp), (size_t)size);
    buf[size] = '\0';
    fclose(fp);
    return buf;
}

static void test_cases_table(void **state)
{
    (void)state;
    char *text = read_file(PGDUAL_TEST_DATA "/classify/cases.tsv");
    struct classify_cache *cache = classify_cache_new(64);
    assert_non_null(cache);
    int ncases = 0, bad = 0, lineno = 0;
    char *save = NULL;
    for (char *line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        lineno++; /* blank lines are skipped by strtok_r; numbering counts non-blank lines */
        struct tcase t;
        if (parse_line(line, lineno, &t)) {
            ncases++;
            bad += run_case(&t, cache);
        }
    }
    classify_cache_free(cache);
    free(text);
    assert_int_equal(bad, 0);
    assert_true(ncases >= 70);
}

static int cache_setup(void **state)
{
    *state = classify_cache_new(8);
    return *state == NULL ? -1 : 0;
}

static int cache_teardown(void **state)
{
    classify_cache_free(*state);
    return 0;
}

static void test_cache_hit(void **state)
{
    struct classify_cache *c = *state;
    struct classify_result a, b, direct;
    assert_int_equal(classify_cached(c, "SELECT now() FROM t", NULL, &a), 0);
    assert_int_equal(classify_cache_count(c), 1);
    assert_int_equal(classify_cached(c, "SELECT now() FROM t", NULL, &b), 0);
    assert_int_equal(classify_cache_count(c), 1);
    assert_int_equal(classify_statement("SELECT now() FROM t", NULL, &direct), 0);
    assert_true(classify_result_equal(&a, &b));
    assert_true(classify_result_equal(&a, &direct));
    assert_int_equal(b.kind, CLASSIFY_READ);
    assert_true(b.nondeterministic);
}

static void test_cache_bound(void **state)
{
    struct classify_cache *c = *state;
    char sql[64];
    struct classify_result r;
    for (int i = 0; i < 100; i++) {
        /* one key each: the texts differ in an identifier, not only in a constant */
        snprintf(sql, sizeof sql, i % 2 ? "SELECT %d FROM t%d" : "DELETE FROM t%d WHERE a = %d", i,
                 i);
        assert_int_equal(classify_cached(c, sql, NULL, &r), 0);
        assert_int_equal(r.kind, i % 2 ? CLASSIFY_READ : CLASSIFY_MIRROR);
        assert_true(classify_cache_count(c) <= 8);
        /* keep one statement hot: CLOCK must not evict it while it is referenced */
        assert_int_equal(classify_cached(c, "SELECT 'hot'", NULL, &r), 0);
    }
    assert_int_equal(classify_cache_count(c), 8);
    for (int i = 99; i >= 90; i--) { /* still correct after evictions, in any order */
        snprintf(sql, sizeof sql, i % 2 ? "SELECT %d FROM t%d" : "DELETE FROM t%d WHERE a = %d", i,
                 i);
        assert_int_equal(classify_cached(c, sql, NULL, &r), 0);
        assert_int_equal(r.kind, i % 2 ? CLASSIFY_READ : CLASSIFY_MIRROR);
    }
    assert_int_equal(classify_cache_count(c), 8);
}

static void test_cache_long_text_not_cached(void **state)
{
    struct classify_cache *c = *state;
    size_t n = CLASSIFY_CACHE_MAX_TEXT + 100;
    char *sql = malloc(n + 1);
    assert_non_null(sql);
    memset(sql, ' ', n);
    memcpy(sql, "SELECT 1", 8);
    sql[n] = '\0';
    struct classify_result r;
    assert_int_equal(classify_cached(c, sql, NULL, &r), 0);
    assert_int_equal(r.kind, CLASSIFY_READ);
    assert_int_equal(classify_cache_count(c), 0);
    free(sql);
}

static void test_cache_options_change(void **state)
{
    struct classify_cache *c = *state;
    struct classify_result r;
    const char *sql = "SELECT my_stable_func(1)";
    assert_int_equal(classify_cached(c, sql, &extra_opts, &r), 0);
    assert_int_equal(r.kind, CLASSIFY_READ);
    assert_int_equal(classify_cached(c, sql, NULL, &r), 0);
    assert_int_equal(r.kind, CLASSIFY_MIRROR);
    assert_int_equal(classify_cache_count(c), 1);
}

static void test_cache_null_args(void **state)
{
    struct classify_result r;
    assert_int_equal(classify_cached(*state, NULL, NULL, &r), CLASSIFY_EINVAL);
    assert_int_equal(r.kind, CLASSIFY_MIRROR);
    assert_int_equal(classify_cached(NULL, "SELECT 1", NULL, &r), 0); /* no cache: direct */
    assert_int_equal(r.kind, CLASSIFY_READ);
    assert_int_equal(classify_statement("SELECT 1", NULL, NULL), CLASSIFY_EINVAL);
}

static void test_normalize(void **state)
{
    (void)state;
    char *s = classify_normalize("SELECT * FROM t WHERE a = 'secret' AND b = 42");
    assert_non_null(s);
    assert_non_null(strstr(s, "$1"));
    assert_non_null(strstr(s, "$2"));
    assert_null(strstr(s, "secret"));
    assert_null(strstr(s, "42"));
    free(s);
    assert_null(classify_normalize(NULL));
}

static void test_fingerprint(void **state)
{
    (void)state;
    struct classify_result a, b, c, e;
    assert_int_equal(classify_statement("SELECT * FROM t WHERE a = 1", NULL, &a), 0);
    assert_int_equal(classify_statement("select *  from t where a = 2", NULL, &b), 0);
    assert_int_equal(classify_statement("SELECT * FROM u WHERE a = 1", NULL, &c), 0);
    assert_int_equal(classify_statement("SELEC 1", NULL, &e), 0);
    assert_true(a.fingerprint != 0);
    assert_true(a.fingerprint == b.fingerprint);
    assert_true(a.fingerprint != c.fingerprint);
    assert_true(e.fingerprint == 0);
}

static void test_funcs_flags(void **state)
{
    (void)state;
    assert_int_equal(classify_funcs_flags(NULL, "abs", NULL), CLASSIFY_FUNCS_READ);
    assert_int_equal(classify_funcs_flags("pg_catalog", "abs", NULL), CLASSIFY_FUNCS_READ);
    assert_int_equal(classify_funcs_flags("public", "abs", NULL), 0u);
    assert_int_equal(classify_funcs_flags(NULL, "now", NULL),
                     CLASSIFY_FUNCS_READ | CLASSIFY_FUNCS_NONDET);
    assert_int_equal(classify_funcs_flags(NULL, "nextval", NULL), CLASSIFY_FUNCS_NONDET);
    assert_int_equal(classify_funcs_flags(NULL, "xmlexists", NULL), CLASSIFY_FUNCS_READ);
    assert_int_equal(classify_funcs_flags(NULL, "pg_sleep", NULL), CLASSIFY_FUNCS_KNOWN);
    assert_int_equal(classify_funcs_flags(NULL, "pg_advisory_lock", NULL), CLASSIFY_FUNCS_KNOWN);
    assert_int_equal(classify_funcs_flags(NULL, "setval", NULL), 0u);
    assert_int_equal(classify_funcs_flags(NULL, "ABS", NULL), 0u); /* quoted: another function */
    assert_int_equal(classify_funcs_flags(NULL, "my_stable_func", &extra_opts),
                     CLASSIFY_FUNCS_READ);
    assert_int_equal(classify_funcs_flags("x", "my_stable_func", &extra_opts), 0u);
    assert_int_equal(classify_funcs_flags("util", "fmt", &extra_opts), CLASSIFY_FUNCS_READ);
    assert_int_equal(classify_funcs_flags(NULL, "fmt", &extra_opts), 0u);
    assert_int_equal(classify_funcs_flags("uti", "fmt", &extra_opts), 0u);
    assert_int_equal(classify_funcs_flags(NULL, NULL, NULL), 0u);
    /* a prefix ending in '*': an extension's functions (PostGIS st_*) */
    static const char *const prefixed[] = {"st_*", "postgis.*"};
    const struct classify_options popt = {prefixed, 2};
    assert_int_equal(classify_funcs_flags(NULL, "st_distance", &popt), CLASSIFY_FUNCS_READ);
    assert_int_equal(classify_funcs_flags(NULL, "st", &popt), 0u);
    assert_int_equal(classify_funcs_flags("public", "st_distance", &popt), 0u);
    assert_int_equal(classify_funcs_flags("postgis", "anything", &popt), CLASSIFY_FUNCS_READ);
}

/* Very deep trees either fail to parse or are mirrored; never a crash or a READ by accident. */
/* SELECT ... INTO makes a table: not catalog-safe (review 12d finding 1); settings_only tells
 * SET / RESET from DDL and code pgdual cannot see into. */
static void test_catalog_settings_only(void **state)
{
    (void)state;
    static const struct {
        const char *sql;
        bool safe, settings_only;
    } cases[] = {
        {"SELECT 1", true, false},
        {"SELECT 0 AS id INTO TEMP u", false, false},
        {"CREATE TABLE x (i int)", false, false},
        {"SET application_name = 'a'", false, true},
        {"SET TimeZone = 'UTC'; RESET search_path", false, true},
        {"SET a.b = 1; CREATE TABLE y (i int)", false, false},
        {"DO $$BEGIN END$$", false, false},
        {"INSERT INTO t VALUES (1)", true, false},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(*cases); i++) {
        struct classify_result r;
        assert_int_equal(classify_statement(cases[i].sql, NULL, &r), 0);
        if (r.catalog_safe != cases[i].safe || r.settings_only != cases[i].settings_only) {
            fail_msg("%s: catalog_safe %d settings_only %d", cases[i].sql, r.catalog_safe,
                     r.settings_only);
        }
    }
}

static void test_deep_nesting(void **state)
{
    (void)state;
    const int depth = 3000;
    size_t n = (size_t)depth * 2 + 32;
    char *sql = malloc(n);
    assert_non_null(sql);
    size_t off = (size_t)snprintf(sql, n, "SELECT ");
    for (int i = 0; i < depth; i++) {
        sql[off++] = '(';
    }
    sql[off++] = '1';
    for (int i = 0; i < depth; i++) {
        sql[off++] = ')';
    }
    sql[off] = '\0';
    struct classify_result r;
    assert_int_equal(classify_statement(sql, NULL, &r), 0);
    free(sql);
    /* Parentheses alone add no nodes, so this one may be READ; a nested call chain may not. */
    char *calls = malloc((size_t)depth * 8 + 32);
    assert_non_null(calls);
    off = (size_t)sprintf(calls, "SELECT ");
    for (int i = 0; i < depth; i++) {
        off += (size_t)sprintf(calls + off, "abs(");
    }
    calls[off++] = '1';
    for (int i = 0; i < depth; i++) {
        calls[off++] = ')';
    }
    calls[off] = '\0';
    assert_int_equal(classify_statement(calls, NULL, &r), 0);
    assert_int_equal(r.kind, CLASSIFY_MIRROR);
    free(calls);
}

/* commits: any statement commits, not only the first or the last; inserts: INSERT, MERGE and
 * COPY FROM anywhere (a column default may draw a sequence value). */
static void test_commits_and_inserts(void **state)
{
    (void)state;
    static const struct {
        const char *sql;
        bool commits, inserts;
    } cases[] = {
        {"COMMIT", true, false},
        {"END", true, false},
        {"UPDATE t SET v = 1; COMMIT; SELECT 1", true, false},
        {"BEGIN; INSERT INTO t VALUES (1); COMMIT; SELECT 1/0", true, true},
        {"PREPARE TRANSACTION 'x'", true, false},
        {"ROLLBACK; SELECT 1", false, false},
        {"SAVEPOINT a; RELEASE a", false, false},
        {"INSERT INTO t DEFAULT VALUES", false, true},
        {"WITH x AS (INSERT INTO t VALUES (1) RETURNING *) SELECT * FROM x", false, true},
        {"MERGE INTO t USING u ON t.id = u.id WHEN NOT MATCHED THEN INSERT VALUES (u.id)", false,
         true},
        {"COPY t FROM STDIN", false, true},
        {"UPDATE t SET v = v + 1", false, false},
        {"DELETE FROM t", false, false},
        {"SELECT 1", false, false},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct classify_result r;
        assert_int_equal(classify_statement(cases[i].sql, NULL, &r), 0);
        if (r.commits != cases[i].commits || r.inserts != cases[i].inserts) {
            fail_msg("%s: commits %d inserts %d", cases[i].sql, r.commits, r.inserts);
        }
    }
}

/* lock_only_read: a read but for its locking clause (mirrored, changes no data). */
static void test_lock_only_read(void **state)
{
    (void)state;
    static const struct {
        const char *sql;
        bool lock_only;
    } cases[] = {
        {"SELECT * FROM q WHERE done = false LIMIT 1 FOR UPDATE SKIP LOCKED", true},
        {"SELECT * FROM t FOR SHARE NOWAIT", true},
        {"SELECT * FROM t WHERE id IN (SELECT id FROM u FOR UPDATE)", true},
        {"SELECT 1; SELECT * FROM t FOR UPDATE", true},
        {"SELECT * FROM t", false},
        {"SELECT my_func() FROM t FOR UPDATE", false},
        {"SELECT * INTO x FROM t FOR UPDATE", false},
        {"WITH d AS (DELETE FROM t RETURNING *) SELECT * FROM d", false},
        {"SELECT * FROM t FOR UPDATE; UPDATE t SET v = 1", false},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct classify_result r;
        assert_int_equal(classify_statement(cases[i].sql, NULL, &r), 0);
        if (r.lock_only_read != cases[i].lock_only ||
            (cases[i].lock_only && r.kind != CLASSIFY_MIRROR)) {
            fail_msg("%s: lock_only_read %d kind %d", cases[i].sql, r.lock_only_read, r.kind);
        }
    }
}

/* user_code: DO, CALL, and functions pgdual does not know; not built-ins like nextval. */
static void test_user_code(void **state)
{
    (void)state;
    static const struct {
        const char *sql;
        bool user_code;
    } cases[] = {
        {"DO $$BEGIN EXECUTE 'DEALLOCATE s1'; END$$", true},
        {"CALL p(1)", true},
        {"SELECT my_func()", true},
        {"SELECT s.f(1)", true},
        {"INSERT INTO t VALUES (my_func())", true},
        {"SELECT nextval('s')", false},
        {"SELECT pg_sleep(1), pg_advisory_lock(1)", false},
        {"SELECT lower('A'), now()", false},
        {"INSERT INTO t VALUES (1)", false},
        {"UPDATE t SET v = v + 1", false},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct classify_result r;
        assert_int_equal(classify_statement(cases[i].sql, NULL, &r), 0);
        if (r.user_code != cases[i].user_code) {
            fail_msg("%s: user_code %d", cases[i].sql, r.user_code);
        }
    }
}

/* classify_effects: names and kinds of what PREPARE / DEALLOCATE / DISCARD / DECLARE / CLOSE
 * do, by statement index. */
static void test_effects(void **state)
{
    (void)state;
    struct classify_effect fx[8];
    size_t n = 99;
    assert_int_equal(classify_effects("SELECT 1; DEALLOCATE s1; PREPARE S1 AS INSERT INTO t "
                                      "VALUES (1); PREPARE \"Q\" AS SELECT 2",
                                      fx, 8, &n),
                     0);
    assert_int_equal(n, 3);
    assert_int_equal(fx[0].kind, CLASSIFY_EFFECT_DEALLOCATE);
    assert_int_equal(fx[0].stmt, 1);
    assert_string_equal(fx[0].name, "s1");
    assert_int_equal(fx[1].kind, CLASSIFY_EFFECT_PREPARE);
    assert_int_equal(fx[1].stmt, 2);
    assert_string_equal(fx[1].name, "s1"); /* unquoted: folded */
    assert_string_equal(fx[2].name, "Q");
    assert_int_equal(classify_effects("DEALLOCATE ALL; DEALLOCATE PREPARE x; DISCARD ALL; "
                                      "DISCARD PLANS; CLOSE ALL; CLOSE c; DECLARE d CURSOR FOR "
                                      "SELECT 1",
                                      fx, 8, &n),
                     0);
    assert_int_equal(n, 6);
    assert_int_equal(fx[0].kind, CLASSIFY_EFFECT_DEALLOCATE_ALL);
    assert_string_equal(fx[0].name, "");
    assert_int_equal(fx[1].kind, CLASSIFY_EFFECT_DEALLOCATE);
    assert_string_equal(fx[1].name, "x");
    assert_int_equal(fx[2].kind, CLASSIFY_EFFECT_DISCARD_ALL);
    assert_int_equal(fx[3].kind, CLASSIFY_EFFECT_CLOSE_ALL);
    assert_int_equal(fx[3].stmt, 4); /* DISCARD PLANS has no effect but counts as a statement */
    assert_int_equal(fx[4].kind, CLASSIFY_EFFECT_CLOSE);
    assert_string_equal(fx[4].name, "c");
    assert_int_equal(fx[5].kind, CLASSIFY_EFFECT_DECLARE);
    assert_string_equal(fx[5].name, "d");
    /* Names are cut to 63 bytes, as the server does. */
    char sql[200];
    snprintf(sql, sizeof sql, "DEALLOCATE %0100d", 0);
    memcpy(sql + 11, "a", 1); /* an identifier, not a number */
    assert_int_equal(classify_effects(sql, fx, 8, &n), 0);
    assert_int_equal(n, 1);
    assert_int_equal(strlen(fx[0].name), CLASSIFY_NAME_MAX);
    assert_int_equal(classify_effects("SELECT 1", fx, 8, &n), 0);
    assert_int_equal(n, 0);
    assert_int_equal(classify_effects("DEALLOCATE", fx, 8, &n), CLASSIFY_EPARSE);
    assert_int_equal(classify_effects("DEALLOCATE a; DEALLOCATE b", fx, 1, &n), CLASSIFY_E2BIG);
    assert_int_equal(n, 1);
    assert_int_equal(classify_effects(NULL, fx, 8, &n), CLASSIFY_EINVAL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cases_table),
        cmocka_unit_test_setup_teardown(test_cache_hit, cache_setup, cache_teardown),
        cmocka_unit_test_setup_teardown(test_cache_bound, cache_setup, cache_teardown),
        cmocka_unit_test_setup_teardown(test_cache_long_text_not_cached, cache_setup,
                                        cache_teardown),
        cmocka_unit_test_setup_teardown(test_cache_options_change, cache_setup, cache_teardown),
        cmocka_unit_test_setup_teardown(test_cache_null_args, cache_setup, cache_teardown),
        cmocka_unit_test(test_normalize),
        cmocka_unit_test(test_fingerprint),
        cmocka_unit_test(test_funcs_flags),
        cmocka_unit_test(test_catalog_settings_only),
        cmocka_unit_test(test_deep_nesting),
        cmocka_unit_test(test_commits_and_inserts),
        cmocka_unit_test(test_lock_only_read),
        cmocka_unit_test(test_user_code),
        cmocka_unit_test(test_effects),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    pg_query_exit(); /* free libpg_query's per-thread memory context so LSan sees no leak */
    return rc;
}

/* tests/unit/test_divergence_table.c: proxy/dualwrite/divergence_table.c: divergences grouped by
 * (fingerprint, kind) with counts and first/last seen; listed most recent first; the bound and
 * its overflow row; statements copied (borrowed input), cut at a character boundary; concurrent
 * adds counted exactly. Run under ASan, the setup/teardown pair shows any leak. */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "proxy/dualwrite/divergence_table.h"

#define FP_A 0x1111111111111111u
#define FP_B 0x2222222222222222u

/* A visited group, copied out of the table. */
struct row {
    uint64_t fingerprint;
    char kind[DIVERGENCE_TABLE_KIND_MAX];
    uint64_t count;
    time_t first_seen, last_seen;
    char *statement;
};

struct rows {
    struct row *r;
    size_t n, cap;
};

static void collect(void *ctx, const struct divergence_group *g)
{
    struct rows *rs = ctx;
    if (rs->n == rs->cap) {
        rs->cap = rs->cap ? rs->cap * 2 : 16;
        rs->r = realloc(rs->r, rs->cap * sizeof(*rs->r));
        assert_non_null(rs->r);
    }
    struct row *r = &rs->r[rs->n++];
    r->fingerprint = g->fingerprint;
    assert_true(strlen(g->kind) < sizeof(r->kind));
    strcpy(r->kind, g->kind);
    r->count = g->count;
    r->first_seen = g->first_seen;
    r->last_seen = g->last_seen;
    assert_non_null(g->statement);
    r->statement = strdup(g->statement);
    assert_non_null(r->statement);
}

static void rows_free(struct rows *rs)
{
    for (size_t i = 0; i < rs->n; i++) {
        free(rs->r[i].statement);
    }
    free(rs->r);
    memset(rs, 0, sizeof(*rs));
}

struct fixture {
    struct divergence_table *t;
    struct rows rows;
};

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));
    assert_non_null(f);
    f->t = divergence_table_new(DIVERGENCE_TABLE_GROUPS);
    assert_non_null(f->t);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    rows_free(&f->rows);
    divergence_table_free(f->t);
    free(f);
    return 0;
}

static size_t list(struct fixture *f)
{
    rows_free(&f->rows);
    size_t n = divergence_table_visit(f->t, collect, &f->rows);
    assert_int_equal(n, f->rows.n);
    return n;
}

static void test_empty(void **state)
{
    struct fixture *f = *state;
    assert_int_equal(list(f), 0);
}

static void test_groups_by_fingerprint_and_kind(void **state)
{
    struct fixture *f = *state;
    const char *upd = "UPDATE t SET v = $1 WHERE id = $2 RETURNING v";
    divergence_table_add(f->t, FP_A, "result_mismatch", upd, 100);
    divergence_table_add(f->t, FP_B, "result_mismatch", "DELETE FROM t WHERE id = $1", 101);
    divergence_table_add(f->t, FP_B, "result_mismatch", "DELETE FROM t WHERE id = $1", 102);
    divergence_table_add(f->t, FP_A, "tag_mismatch", upd, 103);
    divergence_table_add(f->t, FP_A, "result_mismatch", upd, 105);
    divergence_table_add(f->t, FP_A, "result_mismatch", upd, 110);
    assert_int_equal(list(f), 3);
    const struct row *r = f->rows.r;
    /* Most recent last_seen first. */
    assert_true(r[0].fingerprint == FP_A);
    assert_string_equal(r[0].kind, "result_mismatch");
    assert_int_equal(r[0].count, 3);
    assert_int_equal(r[0].first_seen, 100);
    assert_int_equal(r[0].last_seen, 110);
    assert_string_equal(r[0].statement, upd);

    assert_true(r[1].fingerprint == FP_A);
    assert_string_equal(r[1].kind, "tag_mismatch");
    assert_int_equal(r[1].count, 1);
    assert_int_equal(r[1].first_seen, 103);
    assert_int_equal(r[1].last_seen, 103);

    assert_true(r[2].fingerprint == FP_B);
    assert_string_equal(r[2].kind, "result_mismatch");
    assert_int_equal(r[2].count, 2);
    assert_int_equal(r[2].first_seen, 101);
    assert_int_equal(r[2].last_seen, 102);
    assert_string_equal(r[2].statement, "DELETE FROM t WHERE id = $1");

    /* A new divergence moves its group to the top. */
    divergence_table_add(f->t, FP_B, "result_mismatch", "DELETE FROM t WHERE id = $1", 120);
    assert_int_equal(list(f), 3);
    assert_true(f->rows.r[0].fingerprint == FP_B);
    assert_int_equal(f->rows.r[0].count, 3);
    assert_int_equal(f->rows.r[0].first_seen, 101);
    assert_int_equal(f->rows.r[0].last_seen, 120);
    assert_true(f->rows.r[1].fingerprint == FP_A);
    assert_string_equal(f->rows.r[1].kind, "result_mismatch");
}

static void test_same_second_latest_first(void **state)
{
    struct fixture *f = *state;
    divergence_table_add(f->t, 1, "tag_mismatch", "a", 50);
    divergence_table_add(f->t, 2, "tag_mismatch", "b", 50);
    divergence_table_add(f->t, 3, "tag_mismatch", "c", 50);
    divergence_table_add(f->t, 1, "tag_mismatch", "a", 50);
    assert_int_equal(list(f), 3);
    assert_int_equal(f->rows.r[0].fingerprint, 1);
    assert_int_equal(f->rows.r[0].count, 2);
    assert_int_equal(f->rows.r[1].fingerprint, 3);
    assert_int_equal(f->rows.r[2].fingerprint, 2);
}

static void test_bound_and_overflow_row(void **state)
{
    struct fixture *f = *state;
    char sql[64];
    for (uint64_t i = 1; i <= DIVERGENCE_TABLE_GROUPS; i++) {
        snprintf(sql, sizeof(sql), "SELECT %llu", (unsigned long long)i);
        divergence_table_add(f->t, i, "result_mismatch", sql, 1000 + (time_t)i);
    }
    assert_int_equal(list(f), DIVERGENCE_TABLE_GROUPS);
    for (size_t i = 0; i < f->rows.n; i++) {
        assert_string_not_equal(f->rows.r[i].statement, DIVERGENCE_TABLE_OVERFLOW_STMT);
    }
    /* Full: new pairs (a known fingerprint with another kind counts as new) go to one row... */
    divergence_table_add(f->t, 5000, "result_mismatch", "SELECT new", 3000);
    divergence_table_add(f->t, 5001, "tag_mismatch", "SELECT newer", 3001);
    divergence_table_add(f->t, 7, "tag_mismatch", "SELECT 7", 3002);
    /* ...while the groups already there keep counting. */
    divergence_table_add(f->t, 7, "result_mismatch", "SELECT 7", 3003);
    assert_int_equal(list(f), DIVERGENCE_TABLE_GROUPS + 1);
    const struct row *r = f->rows.r;
    assert_int_equal(r[0].fingerprint, 7);
    assert_string_equal(r[0].kind, "result_mismatch");
    assert_int_equal(r[0].count, 2);
    assert_int_equal(r[0].first_seen, 1007);
    assert_int_equal(r[0].last_seen, 3003);
    assert_int_equal(r[1].fingerprint, 0);
    assert_string_equal(r[1].kind, DIVERGENCE_TABLE_OVERFLOW_KIND);
    assert_string_equal(r[1].statement, DIVERGENCE_TABLE_OVERFLOW_STMT);
    assert_int_equal(r[1].count, 3);
    assert_int_equal(r[1].first_seen, 3000);
    assert_int_equal(r[1].last_seen, 3002);
    uint64_t total = 0;
    for (size_t i = 0; i < f->rows.n; i++) {
        total += f->rows.r[i].count;
    }
    assert_int_equal(total, DIVERGENCE_TABLE_GROUPS + 4);
}

static void test_small_bound(void **state)
{
    (void)state;
    struct divergence_table *t = divergence_table_new(2);
    assert_non_null(t);
    divergence_table_add(t, 1, "error_mismatch", "x", 1);
    divergence_table_add(t, 2, "error_mismatch", "y", 2);
    divergence_table_add(t, 3, "error_mismatch", "z", 3);
    divergence_table_add(t, 4, "error_mismatch", "w", 4);
    struct rows rs = {0};
    assert_int_equal(divergence_table_visit(t, collect, &rs), 3);
    assert_int_equal(rs.r[0].fingerprint, 0);
    assert_int_equal(rs.r[0].count, 2);
    assert_int_equal(rs.r[1].fingerprint, 2);
    assert_int_equal(rs.r[2].fingerprint, 1);
    rows_free(&rs);
    divergence_table_free(t);

    t = divergence_table_new(0); /* everything overflows */
    assert_non_null(t);
    divergence_table_add(t, 9, "tag_mismatch", "q", 5);
    assert_int_equal(divergence_table_visit(t, collect, &rs), 1);
    assert_string_equal(rs.r[0].statement, DIVERGENCE_TABLE_OVERFLOW_STMT);
    rows_free(&rs);
    divergence_table_free(t);
    divergence_table_free(NULL);
}

static void test_statement_copied_and_kept(void **state)
{
    struct fixture *f = *state;
    char *sql = strdup("INSERT INTO t VALUES ($1)");
    assert_non_null(sql);
    divergence_table_add(f->t, FP_A, "error_mismatch", sql, 10);
    memset(sql, 'X', strlen(sql)); /* the table must hold its own copy */
    free(sql);
    /* With log_literals the same fingerprint arrives with other texts: the first one stays. */
    divergence_table_add(f->t, FP_A, "error_mismatch", "INSERT INTO t VALUES (2)", 11);
    divergence_table_add(f->t, FP_B, "error_mismatch", NULL, 12);
    assert_int_equal(list(f), 2);
    assert_string_equal(f->rows.r[0].statement, DIVERGENCE_TABLE_UNKNOWN_STMT);
    assert_string_equal(f->rows.r[1].statement, "INSERT INTO t VALUES ($1)");
    assert_int_equal(f->rows.r[1].count, 2);
}

static void test_fingerprint_zero(void **state)
{
    struct fixture *f = *state;
    divergence_table_add(f->t, 0, "error_mismatch", NULL, 1);
    divergence_table_add(f->t, 0, "error_mismatch", NULL, 2);
    divergence_table_add(f->t, 0, "tag_mismatch", "(not normalizable)", 3);
    divergence_table_add(f->t, 0, "tag_mismatch", "(not normalizable)", 4);
    assert_int_equal(list(f), 2);
    assert_string_equal(f->rows.r[0].statement, "(not normalizable)");
    assert_string_equal(f->rows.r[1].statement, DIVERGENCE_TABLE_UNKNOWN_STMT);
    /* Different texts without a fingerprint: the group cannot name one statement. */
    divergence_table_add(f->t, 0, "error_mismatch", "SELECT 1", 5);
    divergence_table_add(f->t, 0, "error_mismatch", NULL, 6);
    assert_int_equal(list(f), 2);
    assert_string_equal(f->rows.r[0].statement, DIVERGENCE_TABLE_VARIOUS_STMT);
    assert_int_equal(f->rows.r[0].count, 4);
}

static void test_long_statement_cut_at_character(void **state)
{
    struct fixture *f = *state;
    size_t n = 3000; /* "é" is two bytes: C3 A9 */
    char *sql = malloc(2 * n + 1);
    assert_non_null(sql);
    for (size_t i = 0; i < n; i++) {
        sql[2 * i] = (char)0xC3;
        sql[2 * i + 1] = (char)0xA9;
    }
    sql[2 * n] = '\0';
    divergence_table_add(f->t, FP_A, "result_mismatch", sql + 1, 1); /* odd: starts mid-char */
    divergence_table_add(f->t, FP_B, "result_mismatch", sql, 2);
    free(sql);
    assert_int_equal(list(f), 2);
    const char *s = f->rows.r[0].statement; /* FP_B: whole characters */
    size_t len = strlen(s);
    assert_true(len <= DIVERGENCE_TABLE_STMT_MAX - 1);
    assert_true(len >= DIVERGENCE_TABLE_STMT_MAX - 8);
    assert_string_equal(s + len - 3, "...");
    assert_int_equal((len - 3) % 2, 0);
    assert_int_equal((unsigned char)s[len - 4], 0xA9);
    /* A statement that fits is kept whole, byte for byte. */
    char fits[DIVERGENCE_TABLE_STMT_MAX];
    memset(fits, 'a', sizeof(fits) - 1);
    fits[sizeof(fits) - 1] = '\0';
    divergence_table_add(f->t, 77, "result_mismatch", fits, 3);
    assert_int_equal(list(f), 3);
    assert_string_equal(f->rows.r[0].statement, fits);
}

struct adder {
    struct divergence_table *t;
    int id;
};

static void *add_many(void *arg)
{
    struct adder *a = arg;
    for (int i = 0; i < 2000; i++) {
        divergence_table_add(a->t, (uint64_t)(i % 10) + 1,
                             i % 2 ? "tag_mismatch" : "error_mismatch", "UPDATE t SET v = $1",
                             (time_t)(a->id * 10000 + i));
    }
    return NULL;
}

static void test_concurrent_adds(void **state)
{
    struct fixture *f = *state;
    pthread_t th[4];
    struct adder a[4];
    for (int i = 0; i < 4; i++) {
        a[i] = (struct adder){f->t, i};
        assert_int_equal(pthread_create(&th[i], NULL, add_many, &a[i]), 0);
    }
    for (int i = 0; i < 4; i++) {
        assert_int_equal(pthread_join(th[i], NULL), 0);
    }
    assert_int_equal(list(f), 10); /* i % 10 fixes i % 2: ten (fingerprint, kind) pairs */
    uint64_t total = 0;
    for (size_t i = 0; i < f->rows.n; i++) {
        assert_int_equal(f->rows.r[i].count, 800);
        total += f->rows.r[i].count;
    }
    assert_int_equal(total, 8000);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_empty, setup, teardown),
        cmocka_unit_test_setup_teardown(test_groups_by_fingerprint_and_kind, setup, teardown),
        cmocka_unit_test_setup_teardown(test_same_second_latest_first, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bound_and_overflow_row, setup, teardown),
        cmocka_unit_test_setup_teardown(test_small_bound, setup, teardown),
        cmocka_unit_test_setup_teardown(test_statement_copied_and_kept, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fingerprint_zero, setup, teardown),
        cmocka_unit_test_setup_teardown(test_long_statement_cut_at_character, setup, teardown),
        cmocka_unit_test_setup_teardown(test_concurrent_adds, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

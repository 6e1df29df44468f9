/* tests/unit/test_stmt_track.c: proxy/session/stmt_track.c and proxy/session/stmt_map.c: the
 * session's statements and portals follow the primary's answers, and a lookup answers NULL (mirror)
 * when unsure. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "protocol/pqproto.h"
#include "proxy/session/stmt_track.h"

static const struct stmt_class write_cls = {.mirrored = true, .dml_only = true};
static const struct stmt_class read_cls = {.mirrored = false};

static int setup(void **state)
{
    static struct stmt_track t;
    memset(&t, 0, sizeof(t));
    *state = &t;
    return 0;
}

static int teardown(void **state)
{
    stmt_track_free(*state);
    return 0;
}

/* The unit's Parse number n of name as c. */
static void parse(struct stmt_track *t, uint32_t unit, const char *name, const struct stmt_class *c,
                  const char *sql)
{
    uint32_t nth = stmt_track_count(t, unit, STMT_REPLY_PARSE, 1) + 1;
    stmt_track_define(t, unit, STMT_SPACE_STATEMENT, name, c, sql, STMT_REPLY_PARSE, nth);
}

static const struct stmt_class *find(struct stmt_track *t, uint32_t unit, const char *name)
{
    return stmt_track_find(t, unit, STMT_SPACE_STATEMENT, name);
}

static void test_existing_name_keeps_its_class(void **state)
{
    struct stmt_track *t = *state;
    parse(t, 1, "s1", &write_cls, "INSERT");
    assert_true(find(t, 1, "s1")->mirrored); /* the unit's own definition */
    stmt_track_reply(t, 1, PqMsg_ParseComplete);
    stmt_track_unit_done(t, 1, PQ_TXN_IDLE);
    parse(t, 2, "s1", &read_cls, "SELECT 1");
    stmt_track_reply(t, 2, PqMsg_ErrorResponse); /* 42P05 */
    stmt_track_unit_done(t, 2, PQ_TXN_IDLE);
    const struct stmt_class *c = find(t, 3, "s1");
    assert_non_null(c);
    assert_true(c->mirrored);
    assert_string_equal(c->sql, "INSERT");
}

static void test_pending_is_unknown(void **state)
{
    struct stmt_track *t = *state;
    parse(t, 1, "s1", &read_cls, "SELECT * FROM missing");
    parse(t, 2, "s1", &write_cls, "INSERT"); /* pipelined behind it */
    assert_null(find(t, 3, "s1"));           /* either may hold: unknown */
    stmt_track_reply(t, 1, PqMsg_ErrorResponse);
    stmt_track_unit_done(t, 1, PQ_TXN_IDLE);
    assert_null(find(t, 3, "s1"));
    stmt_track_reply(t, 2, PqMsg_ParseComplete);
    stmt_track_unit_done(t, 2, PQ_TXN_IDLE);
    assert_true(find(t, 3, "s1")->mirrored);
}

static void test_error_mid_unit(void **state)
{
    struct stmt_track *t = *state;
    parse(t, 1, "a", &read_cls, "SELECT 1");
    parse(t, 1, "b", &read_cls, "SELECT 2");
    uint32_t nth = stmt_track_count(t, 1, STMT_REPLY_CLOSE, 1) + 1;
    stmt_track_remove(t, 1, STMT_SPACE_STATEMENT, "old", STMT_REPLY_CLOSE, nth);
    assert_null(find(t, 1, "old"));
    stmt_track_reply(t, 1, PqMsg_ParseComplete);
    stmt_track_reply(t, 1, PqMsg_ErrorResponse); /* at b: the Close was skipped */
    stmt_track_unit_done(t, 1, PQ_TXN_IDLE);
    assert_non_null(find(t, 2, "a"));
    assert_null(find(t, 2, "b"));
}

static void test_unnamed(void **state)
{
    struct stmt_track *t = *state;
    parse(t, 1, "", &read_cls, "SELECT 1");
    stmt_track_reply(t, 1, PqMsg_ParseComplete);
    stmt_track_unit_done(t, 1, PQ_TXN_IDLE);
    assert_false(find(t, 2, "")->mirrored);
    /* A new Parse of "" replaces it for the unit's own later messages. */
    parse(t, 2, "", &write_cls, "INSERT");
    assert_true(find(t, 2, "")->mirrored);
    /* It failed: the old one was dropped first; nothing is certain. */
    stmt_track_reply(t, 2, PqMsg_ErrorResponse);
    stmt_track_unit_done(t, 2, PQ_TXN_IDLE);
    assert_null(find(t, 3, ""));
}

static void test_portals_end_with_the_transaction(void **state)
{
    struct stmt_track *t = *state;
    uint32_t nth = stmt_track_count(t, 1, STMT_REPLY_BIND, 1) + 1;
    stmt_track_define(t, 1, STMT_SPACE_PORTAL, "p", &read_cls, NULL, STMT_REPLY_BIND, nth);
    stmt_track_reply(t, 1, PqMsg_BindComplete);
    stmt_track_unit_done(t, 1, PQ_TXN_BLOCK);
    assert_non_null(stmt_track_find(t, 2, STMT_SPACE_PORTAL, "p"));
    stmt_track_unit_done(t, 0, PQ_TXN_IDLE); /* pgdual's own COMMIT, say */
    assert_null(stmt_track_find(t, 2, STMT_SPACE_PORTAL, "p"));
}

static void test_sql_effects_by_completion(void **state)
{
    struct stmt_track *t = *state;
    parse(t, 1, "s2", &read_cls, "SELECT 1");
    stmt_track_reply(t, 1, PqMsg_ParseComplete);
    stmt_track_unit_done(t, 1, PQ_TXN_IDLE);
    /* "SELECT 1; DEALLOCATE s2; PREPARE s2 AS INSERT ...": completions 2 and 3. */
    uint32_t first = stmt_track_count(t, 2, STMT_REPLY_EXEC, 3);
    stmt_track_remove(t, 2, STMT_SPACE_STATEMENT, "s2", STMT_REPLY_EXEC, first + 2);
    stmt_track_define(t, 2, STMT_SPACE_STATEMENT, "s2", &write_cls, NULL, STMT_REPLY_EXEC,
                      first + 3);
    stmt_track_reply(t, 2, PqMsg_CommandComplete);
    stmt_track_reply(t, 2, PqMsg_CommandComplete);
    stmt_track_reply(t, 2, PqMsg_CommandComplete);
    stmt_track_unit_done(t, 2, PQ_TXN_IDLE);
    assert_true(find(t, 3, "s2")->mirrored);
    /* DEALLOCATE ALL whose completion never came (the statement failed): nothing changes; one
     * applied whatever happens: everything is forgotten. */
    stmt_track_clear(t, 3, 1u << STMT_SPACE_STATEMENT, STMT_REPLY_EXEC, 1);
    assert_null(find(t, 3, "s2"));
    stmt_track_reply(t, 3, PqMsg_ErrorResponse);
    stmt_track_unit_done(t, 3, PQ_TXN_IDLE);
    assert_non_null(find(t, 4, "s2"));
    stmt_track_clear(t, 4, STMT_SPACE_BOTH, STMT_REPLY_NONE, 0);
    stmt_track_unit_done(t, 4, PQ_TXN_IDLE);
    assert_null(find(t, 5, "s2"));
}

static void test_placement_and_many_names(void **state)
{
    struct stmt_track *t = *state;
    char name[32];
    for (int i = 0; i < 2000; i++) {
        snprintf(name, sizeof name, "stmt_%d", i);
        parse(t, 1, name, i % 2 ? &write_cls : &read_cls, NULL);
    }
    stmt_track_place(t, 1, 2);
    for (int i = 0; i < 2000; i++) {
        stmt_track_reply(t, 1, PqMsg_ParseComplete);
    }
    stmt_track_unit_done(t, 1, PQ_TXN_IDLE);
    for (int i = 0; i < 2000; i++) {
        snprintf(name, sizeof name, "stmt_%d", i);
        const struct stmt_class *c = find(t, 2, name);
        assert_non_null(c);
        assert_int_equal(c->mirrored, i % 2);
        assert_int_equal(c->on, 2);
        assert_int_equal(c->made_in, 1);
    }
    assert_int_equal(t->maps[STMT_SPACE_STATEMENT].count, 2000);
    /* Names compare on their first 63 bytes, as the server's do. */
    char a[100], b[100];
    memset(a, 'x', 99);
    a[99] = '\0';
    memcpy(b, a, sizeof b);
    b[80] = 'y';
    parse(t, 2, a, &read_cls, NULL);
    assert_false(find(t, 2, b)->mirrored);
}

static void fill(struct stmt_track *t, uint32_t n)
{
    char name[16];
    for (uint32_t i = 0; i < n; i++) {
        snprintf(name, sizeof(name), "s%u", (unsigned)i);
        parse(t, i + 1, name, &read_cls, "SELECT 1");
        stmt_track_reply(t, i + 1, PqMsg_ParseComplete);
        stmt_track_unit_done(t, i + 1, PQ_TXN_IDLE);
    }
}

/* max_session_statements: the map stops at its limit (a name it holds may be parsed again, a
 * new one sets over_limit: the session ends with 54000). */
static void test_limit(void **state)
{
    struct stmt_track *t = *state;
    stmt_track_set_limit(t, 16);
    fill(t, 16);
    assert_false(t->over_limit);
    assert_int_equal(t->maps[STMT_SPACE_STATEMENT].count, 16);
    parse(t, 20, "s3", &write_cls, "INSERT"); /* an existing name: no new entry */
    assert_false(t->over_limit);
    parse(t, 22, "s16", &read_cls, "SELECT 1");
    assert_true(t->over_limit);
    assert_true(t->lost);
    assert_true(t->maps[STMT_SPACE_STATEMENT].count <= 16);
}

/* ...a Close of an unknown name at the limit defines nothing: not over the limit, but nothing is
 * known any more (every later statement is mirrored; the maps forget what they held and grow no
 * more). */
static void test_limit_close_unknown(void **state)
{
    struct stmt_track *t = *state;
    stmt_track_set_limit(t, 16);
    fill(t, 16);
    stmt_track_remove(t, 21, STMT_SPACE_STATEMENT, "nosuch", STMT_REPLY_CLOSE, 1);
    assert_false(t->over_limit);
    assert_true(t->lost);
    parse(t, 22, "s16", &read_cls, "SELECT 1");
    assert_true(t->maps[STMT_SPACE_STATEMENT].count <= 16);
    assert_null(find(t, 22, "s16"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_existing_name_keeps_its_class, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pending_is_unknown, setup, teardown),
        cmocka_unit_test_setup_teardown(test_error_mid_unit, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unnamed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_portals_end_with_the_transaction, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sql_effects_by_completion, setup, teardown),
        cmocka_unit_test_setup_teardown(test_placement_and_many_names, setup, teardown),
        cmocka_unit_test_setup_teardown(test_limit, setup, teardown),
        cmocka_unit_test_setup_teardown(test_limit_close_unknown, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

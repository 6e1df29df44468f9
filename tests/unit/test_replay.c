/* tests/unit/test_replay.c: protocol/replay.c: the secondary's version of a unit the primary
 * stopped with an error. Expected bytes are built independently with wbuf, and every rebuilt
 * Query is re-split with libpg_query to check what the secondary will run. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>
#include <pg_query.h>

#include "protocol/pqproto.h"
#include "protocol/replay.h"
#include "protocol/wire.h"

static void put_parse(struct wbuf *b, const char *name, const char *sql)
{
    size_t at = wbuf_begin_msg(b, PqMsg_Parse);
    wbuf_put_cstr(b, name);
    wbuf_put_cstr(b, sql);
    wbuf_put_u16(b, 0);
    wbuf_end_msg(b, at);
}

static void put_bind(struct wbuf *b, const char *portal, const char *stmt)
{
    size_t at = wbuf_begin_msg(b, PqMsg_Bind);
    wbuf_put_cstr(b, portal);
    wbuf_put_cstr(b, stmt);
    wbuf_put_u16(b, 0);
    wbuf_put_u16(b, 0);
    wbuf_put_u16(b, 0);
    wbuf_end_msg(b, at);
}

static void put_execute(struct wbuf *b, const char *portal)
{
    size_t at = wbuf_begin_msg(b, PqMsg_Execute);
    wbuf_put_cstr(b, portal);
    wbuf_put_u32(b, 0);
    wbuf_end_msg(b, at);
}

static void put_empty(struct wbuf *b, uint8_t type)
{
    size_t at = wbuf_begin_msg(b, type);
    wbuf_end_msg(b, at);
}

/* The Query text of the single Query message in b. */
static const char *query_text(const struct wbuf *b)
{
    assert_true(b->len > 6);
    assert_int_equal(b->data[0], PqMsg_Query);
    uint32_t len = (uint32_t)b->data[1] << 24 | (uint32_t)b->data[2] << 16 |
                   (uint32_t)b->data[3] << 8 | b->data[4];
    assert_int_equal(len + 1, b->len);
    assert_int_equal(b->data[b->len - 1], '\0');
    return (const char *)b->data + 5;
}

/* Statements libpg_query finds in sql (what the server will run). */
static int count_statements(const char *sql, char *last, size_t lastcap)
{
    PgQuerySplitResult r = pg_query_split_with_parser(sql);
    assert_null(r.error);
    int n = r.n_stmts;
    const PgQuerySplitStmt *st = r.stmts[n - 1];
    size_t len = st->stmt_len ? (size_t)st->stmt_len : strlen(sql) - (size_t)st->stmt_location;
    snprintf(last, lastcap, "%.*s", (int)len, sql + st->stmt_location);
    pg_query_free_split_result(r);
    return n;
}

static int replay_query_syntax(const char *sql, uint32_t done, bool syntax_error, struct wbuf *out,
                               struct replay_failure *f)
{
    struct wbuf in;
    wbuf_init(&in);
    wire_put_query(&in, sql);
    int rc = replay_build(in.data, in.len, done, syntax_error, out, f);
    wbuf_free(&in);
    return rc;
}

static int replay_query_text(const char *sql, uint32_t done, struct wbuf *out,
                             struct replay_failure *f)
{
    return replay_query_syntax(sql, done, false, out, f);
}

static void test_simple_prefix(void **state)
{
    (void)state;
    const char *sql = "BEGIN; INSERT INTO t VALUES (1); COMMIT; SELECT 1/0";
    struct wbuf out;
    wbuf_init(&out);
    struct replay_failure f;
    assert_int_equal(replay_query_text(sql, 3, &out, &f), 0);
    assert_string_equal(query_text(&out),
                        "BEGIN; INSERT INTO t VALUES (1); COMMIT\n;" REPLAY_FAIL_SQL);
    assert_int_equal(f.type, PqMsg_Query);
    assert_int_equal(f.stmt_len, strlen("SELECT 1/0"));
    assert_memory_equal(sql + f.stmt_offset, "SELECT 1/0", f.stmt_len);
    char last[128];
    assert_int_equal(count_statements(query_text(&out), last, sizeof(last)), 4);
    assert_string_equal(last, REPLAY_FAIL_SQL);
    wbuf_free(&out);
}

static void test_simple_first_statement_fails(void **state)
{
    (void)state;
    struct wbuf out;
    wbuf_init(&out);
    struct replay_failure f;
    assert_int_equal(replay_query_text("INSERT INTO t VALUES (1); SELECT 2", 0, &out, &f), 0);
    assert_string_equal(query_text(&out), REPLAY_FAIL_SQL);
    assert_int_equal(f.type, PqMsg_Query);
    assert_int_equal(f.stmt_offset, 0);
    wbuf_free(&out);
}

/* Every statement completed: the error came at the implicit commit (a deferred constraint). */
static void test_simple_error_at_commit(void **state)
{
    (void)state;
    struct wbuf out;
    wbuf_init(&out);
    struct replay_failure f;
    assert_int_equal(replay_query_text("INSERT INTO t VALUES (1) -- trailing", 1, &out, &f), 0);
    assert_int_equal(f.type, 0);
    char last[128];
    /* The newline ends the line comment: the failing FETCH is a statement of its own. */
    assert_int_equal(count_statements(query_text(&out), last, sizeof(last)), 2);
    assert_string_equal(last, REPLAY_FAIL_SQL);
    wbuf_free(&out);
}

static void test_simple_more_steps_than_statements(void **state)
{
    (void)state;
    struct wbuf out;
    wbuf_init(&out);
    struct replay_failure f;
    assert_int_equal(replay_query_text("SELECT 1; SELECT 2", 3, &out, &f), REPLAY_ESPLIT);
    assert_int_equal(replay_query_text("SELECT (", 1, &out, &f), REPLAY_ESPLIT);
    wbuf_free(&out);
}

/* A text the server's parse rejected (42601 outside code) ran nothing: the failing statement
 * alone, and the failed step is the text as a whole. */
static void test_simple_syntax_error(void **state)
{
    (void)state;
    struct wbuf out;
    wbuf_init(&out);
    struct replay_failure f;
    const char *sql = "INSERT INTO t VALUES (1); SELEC 1";
    /* only when the server's parse rejected it too: one libpg_query alone rejects may have run */
    assert_int_equal(replay_query_text(sql, 0, &out, &f), REPLAY_ESPLIT);
    wbuf_reset(&out);
    assert_int_equal(replay_query_syntax(sql, 0, true, &out, &f), 0);
    assert_string_equal(query_text(&out), REPLAY_FAIL_SQL);
    assert_int_equal(f.type, PqMsg_Query);
    assert_int_equal(f.stmt_offset, 0);
    assert_int_equal(f.stmt_len, strlen(sql));
    wbuf_free(&out);
}

/* P B E P B(fails) E S: the first Execute and the second Parse went through. */
static void test_batch_prefix(void **state)
{
    (void)state;
    struct wbuf in, out, want;
    wbuf_init(&in);
    wbuf_init(&out);
    wbuf_init(&want);
    put_parse(&in, "a", "INSERT INTO t VALUES (1)");
    put_bind(&in, "", "a");
    put_execute(&in, "");
    put_empty(&in, PqMsg_Flush);
    put_parse(&in, "b", "INSERT INTO t VALUES (2)");
    size_t upto = in.len;
    put_bind(&in, "", "b");
    put_execute(&in, "");
    put_empty(&in, PqMsg_Sync);

    struct replay_failure f;
    assert_int_equal(replay_build(in.data, in.len, 4, false, &out, &f), 0);
    assert_int_equal(f.type, PqMsg_Bind);
    assert_int_equal(f.execute_index, 1);
    wbuf_put_bytes(&want, in.data, upto);
    put_execute(&want, REPLAY_FAIL_NAME);
    put_empty(&want, PqMsg_Sync);
    assert_int_equal(out.len, want.len);
    assert_memory_equal(out.data, want.data, want.len);

    /* Every step done: the error came at Sync; all steps, then the failing Execute. */
    wbuf_reset(&out);
    wbuf_reset(&want);
    assert_int_equal(replay_build(in.data, in.len, 6, false, &out, &f), 0);
    assert_int_equal(f.type, 0);
    wbuf_put_bytes(&want, in.data, in.len - 5);
    put_execute(&want, REPLAY_FAIL_NAME);
    put_empty(&want, PqMsg_Sync);
    assert_int_equal(out.len, want.len);
    assert_memory_equal(out.data, want.data, want.len);
    wbuf_free(&in);
    wbuf_free(&out);
    wbuf_free(&want);
}

static void test_unsupported_shapes(void **state)
{
    (void)state;
    struct wbuf in, out;
    wbuf_init(&in);
    wbuf_init(&out);
    struct replay_failure f;
    put_parse(&in, "", "SELECT 1");
    assert_int_equal(replay_build(in.data, in.len, 0, false, &out, &f),
                     REPLAY_EUNSUPPORTED); /* no Sync */
    wire_put_query(&in, "SELECT 1");
    assert_int_equal(replay_build(in.data, in.len, 0, false, &out, &f),
                     REPLAY_EUNSUPPORTED); /* mixed */
    wbuf_reset(&in);
    wire_put_query(&in, "COPY t FROM STDIN");
    put_empty(&in, PqMsg_CopyDone);
    assert_int_equal(replay_build(in.data, in.len, 0, false, &out, &f), REPLAY_EUNSUPPORTED);
    assert_int_equal(replay_build(in.data, 3, 0, false, &out, &f), REPLAY_EUNSUPPORTED); /* torn */
    wbuf_free(&in);
    wbuf_free(&out);
}

static void test_function_call(void **state)
{
    (void)state;
    struct wbuf in, out;
    wbuf_init(&in);
    wbuf_init(&out);
    size_t at = wbuf_begin_msg(&in, PqMsg_FunctionCall);
    wbuf_put_u32(&in, 1234);
    wbuf_put_u16(&in, 0);
    wbuf_put_u16(&in, 0);
    wbuf_put_u16(&in, 0);
    wbuf_end_msg(&in, at);
    struct replay_failure f;
    assert_int_equal(replay_build(in.data, in.len, 0, false, &out, &f), 0);
    assert_int_equal(f.type, PqMsg_FunctionCall);
    assert_string_equal(query_text(&out), REPLAY_FAIL_SQL);
    wbuf_reset(&out);
    assert_int_equal(replay_build(in.data, in.len, 1, false, &out, &f), REPLAY_EUNSUPPORTED);
    wbuf_free(&in);
    wbuf_free(&out);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_simple_prefix),
        cmocka_unit_test(test_simple_first_statement_fails),
        cmocka_unit_test(test_simple_error_at_commit),
        cmocka_unit_test(test_simple_more_steps_than_statements),
        cmocka_unit_test(test_simple_syntax_error),
        cmocka_unit_test(test_batch_prefix),
        cmocka_unit_test(test_unsupported_shapes),
        cmocka_unit_test(test_function_call),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

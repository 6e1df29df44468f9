/* tests/unit/test_outcome.c: protocol/outcome.c: replies folded while they stream in chunks,
 * messages longer than the capture cap (never spliced: their unknown parts are marked and left
 * out of the comparison), and the comparison itself. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "protocol/outcome.h"
#include "protocol/pqproto.h"
#include "protocol/wire.h"

struct fixture {
    struct outcome_reader rd;
    struct outcome a, b;
};

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));
    if (!f || outcome_reader_init(&f->rd) < 0) {
        free(f);
        return -1;
    }
    outcome_init(&f->a);
    outcome_init(&f->b);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    outcome_reader_free(&f->rd);
    free(f);
    return 0;
}

/* Feed one message body in chunks of the given sizes (the last chunk takes the rest). */
static void feed(struct outcome_reader *rd, struct outcome *o, uint8_t type, const uint8_t *body,
                 size_t len, const size_t *chunks, size_t nchunks)
{
    outcome_begin(rd, type);
    size_t at = 0;
    for (size_t i = 0; i < nchunks && at < len; i++) {
        size_t n = i + 1 == nchunks || chunks[i] > len - at ? len - at : chunks[i];
        outcome_body(rd, body + at, n);
        at += n;
    }
    outcome_end(rd, o);
}

static void feed_whole(struct outcome_reader *rd, struct outcome *o, uint8_t type, const void *body,
                       size_t len)
{
    size_t all = len;
    feed(rd, o, type, body, len, &all, 1);
}

/* Small messages fed byte by byte fold exactly as when fed whole. */
static void test_small_messages_any_chunking(void **state)
{
    struct fixture *f = *state;
    static const char tag[] = "INSERT 0 3";
    static const uint8_t err[] = "SERROR\0VERROR\0C23505\0Mduplicate key\0";
    size_t ones[64];
    for (size_t i = 0; i < 64; i++) {
        ones[i] = 1;
    }
    feed_whole(&f->rd, &f->a, PqMsg_CommandComplete, tag, sizeof tag);
    feed_whole(&f->rd, &f->a, PqMsg_ErrorResponse, err, sizeof err);
    feed(&f->rd, &f->b, PqMsg_CommandComplete, (const uint8_t *)tag, sizeof tag, ones, 64);
    feed(&f->rd, &f->b, PqMsg_ErrorResponse, err, sizeof err, ones, 64);
    assert_string_equal(f->b.last_tag, "INSERT 0 3");
    assert_string_equal(f->b.sqlstate, "23505");
    assert_int_equal(f->b.unknown, 0);
    assert_int_equal(outcome_compare(&f->a, &f->b), OUTCOME_DIFF_none);
    assert_true(outcome_fully_compared(&f->a, &f->b));
}

/* An ErrorResponse cut in the middle of its SQLSTATE by the chunking, whose second chunk is over
 * the cap: the captured prefix must be the message's first bytes (SQLSTATE 23505), never the
 * first chunk with the third spliced on ("2" + "yyy" would read as SQLSTATE "2yyy"). */
static void test_error_long_chunk_not_spliced(void **state)
{
    struct fixture *f = *state;
    size_t len = OUTCOME_CAPTURE_MAX + 4096;
    uint8_t *body = malloc(len);
    assert_non_null(body);
    static const char head[] = "SERROR\0VERROR\0C23505\0M";
    memcpy(body, head, sizeof head - 1);
    memset(body + sizeof head - 1, 'x', len - (sizeof head - 1));
    body[len - 7] = '\0'; /* M ends; then "yyy" as a D field would, and the list's end */
    memcpy(body + len - 6, "Dyyy", 4);
    body[len - 2] = '\0';
    body[len - 1] = '\0';
    size_t c1 = 16; /* "SERROR\0VERROR\0C2" */
    size_t chunks[] = {c1, len - c1 - 5, 5};
    feed(&f->rd, &f->a, PqMsg_ErrorResponse, body, len, chunks, 3);
    assert_true(f->a.error);
    assert_string_equal(f->a.sqlstate, "23505");
    assert_int_equal(f->a.unknown, 0); /* the SQLSTATE arrived whole within the cap */
    free(body);
}

/* An ErrorResponse whose SQLSTATE comes after the cap: unknown, and not compared. */
static void test_error_sqlstate_past_cap_unknown(void **state)
{
    struct fixture *f = *state;
    size_t len = OUTCOME_CAPTURE_MAX + 64;
    uint8_t *body = malloc(len);
    assert_non_null(body);
    memcpy(body, "SERROR\0M", 8);
    memset(body + 8, 'x', len - 8);
    memcpy(body + len - 9, "\0C22012\0\0", 9);
    size_t chunks[] = {100, OUTCOME_CAPTURE_MAX - 1000, 1000};
    feed(&f->rd, &f->a, PqMsg_ErrorResponse, body, len, chunks, 3);
    assert_true(f->a.error);
    assert_string_equal(f->a.sqlstate, "");
    assert_true(f->a.unknown & OUTCOME_UNKNOWN_SQLSTATE);
    static const uint8_t other[] = "SERROR\0C23505\0Mno\0";
    feed_whole(&f->rd, &f->b, PqMsg_ErrorResponse, other, sizeof other);
    /* Both failed; which SQLSTATE old had is not known: no verdict on it, and it is said. */
    assert_int_equal(outcome_compare(&f->a, &f->b), OUTCOME_DIFF_none);
    assert_false(outcome_fully_compared(&f->a, &f->b));
    /* Failing on one side only is still a divergence. */
    struct outcome ok;
    outcome_init(&ok);
    feed_whole(&f->rd, &ok, PqMsg_CommandComplete, "SELECT 1", 9);
    assert_int_equal(outcome_compare(&f->a, &ok), OUTCOME_DIFF_error_mismatch);
    free(body);
}

/* A CommandComplete whose middle chunk is over the cap: the tag is unknown, never the first
 * and last chunks spliced into a tag that was not sent ("INSERT 0 " + "1"). */
static void test_tag_over_cap_unknown(void **state)
{
    struct fixture *f = *state;
    size_t len = OUTCOME_CAPTURE_MAX + 100;
    uint8_t *body = malloc(len);
    assert_non_null(body);
    memcpy(body, "INSERT 0 ", 9);
    memset(body + 9, '9', len - 9);
    body[len - 2] = '1';
    body[len - 1] = '\0';
    size_t chunks[] = {9, len - 11, 2};
    feed(&f->rd, &f->a, PqMsg_CommandComplete, body, len, chunks, 3);
    assert_int_equal(f->a.commands, 1);
    assert_true(f->a.unknown & OUTCOME_UNKNOWN_TAGS);
    assert_string_not_equal(f->a.last_tag, "INSERT 0 1");
    feed_whole(&f->rd, &f->b, PqMsg_CommandComplete, "INSERT 0 1", 11);
    assert_int_equal(outcome_compare(&f->a, &f->b), OUTCOME_DIFF_none);
    assert_false(outcome_fully_compared(&f->a, &f->b));
    /* The number of commands is still known and compared. */
    feed_whole(&f->rd, &f->b, PqMsg_CommandComplete, "INSERT 0 1", 11);
    assert_int_equal(outcome_compare(&f->a, &f->b), OUTCOME_DIFF_tag_mismatch);
    free(body);
}

/* A RowDescription longer than the cap: its shape is unknown, the rows are still compared. */
static void test_row_description_over_cap(void **state)
{
    struct fixture *f = *state;
    enum { NCOLS = 1600 };
    size_t cap = 2 + (size_t)NCOLS * (60 + 18);
    uint8_t *body = calloc(1, cap);
    assert_non_null(body);
    size_t len = 2;
    body[0] = NCOLS >> 8;
    body[1] = NCOLS & 0xff;
    for (int i = 0; i < NCOLS; i++) {
        len += (size_t)snprintf((char *)body + len, 60, "a_rather_long_column_name_%04d", i) + 1;
        len += 18; /* table oid, attnum, type oid, typlen, typmod, format: zeros */
    }
    assert_true(len > OUTCOME_CAPTURE_MAX);
    size_t chunks[] = {1000, OUTCOME_CAPTURE_MAX, 8192, 8192, 8192};
    feed(&f->rd, &f->a, PqMsg_RowDescription, body, len, chunks, 5);
    assert_true(f->a.unknown & OUTCOME_UNKNOWN_SHAPE);
    assert_int_equal(f->a.shape_hash, 0);
    static const uint8_t row[] = {0, 1, 0, 0, 0, 1, '7'};
    feed_whole(&f->rd, &f->a, PqMsg_DataRow, row, sizeof row);
    feed_whole(&f->rd, &f->b, PqMsg_DataRow, row, sizeof row);
    assert_int_equal(outcome_compare(&f->a, &f->b), OUTCOME_DIFF_none);
    assert_false(outcome_fully_compared(&f->a, &f->b));
    static const uint8_t row2[] = {0, 1, 0, 0, 0, 1, '8'};
    feed_whole(&f->rd, &f->b, PqMsg_DataRow, row2, sizeof row2);
    assert_int_equal(outcome_compare(&f->a, &f->b), OUTCOME_DIFF_result_mismatch);
    free(body);
}

/* After a message over the cap, the next message is captured normally again. */
static void test_cut_does_not_leak_into_next_message(void **state)
{
    struct fixture *f = *state;
    size_t len = OUTCOME_CAPTURE_MAX * 2;
    uint8_t *body = malloc(len);
    assert_non_null(body);
    memset(body, 'z', len);
    body[len - 1] = '\0';
    size_t chunks[] = {OUTCOME_CAPTURE_MAX + 1};
    feed(&f->rd, &f->a, PqMsg_NoticeResponse, body, len, chunks, 1);
    static const uint8_t rfq[] = {PQ_TXN_IDLE};
    feed_whole(&f->rd, &f->a, PqMsg_ReadyForQuery, rfq, 1);
    assert_int_equal(f->a.txn_status, PQ_TXN_IDLE);
    feed_whole(&f->rd, &f->a, PqMsg_CommandComplete, "UPDATE 2", 9);
    assert_string_equal(f->a.last_tag, "UPDATE 2");
    assert_int_equal(f->a.unknown, 0);
    free(body);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_small_messages_any_chunking, setup, teardown),
        cmocka_unit_test_setup_teardown(test_error_long_chunk_not_spliced, setup, teardown),
        cmocka_unit_test_setup_teardown(test_error_sqlstate_past_cap_unknown, setup, teardown),
        cmocka_unit_test_setup_teardown(test_tag_over_cap_unknown, setup, teardown),
        cmocka_unit_test_setup_teardown(test_row_description_over_cap, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cut_does_not_leak_into_next_message, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

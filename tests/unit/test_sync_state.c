/* tests/unit/test_sync_state.c: proxy/dualwrite/sync_state.c: the transition rule of the
 * secondary's sync state: misses, and the reconciliation's START / DONE / ABORT (issue 13). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "proxy/dualwrite/sync_state.h"

static void test_names(void **state)
{
    (void)state;
    for (int i = 0; i < SYNC_STATE_COUNT; i++) {
        assert_int_equal(sync_state_parse(sync_state_name((enum sync_state)i)), i);
    }
    assert_int_equal(sync_state_parse("catching_up"), -1);
}

static void test_miss(void **state)
{
    (void)state;
    assert_int_equal(sync_state_after_miss(SYNC_in_sync, SYNC_lagging), SYNC_lagging);
    assert_int_equal(sync_state_after_miss(SYNC_in_sync, SYNC_diverged), SYNC_diverged);
    /* A miss during a pass leaves reconciling: the pass is stale. */
    assert_int_equal(sync_state_after_miss(SYNC_reconciling, SYNC_lagging), SYNC_lagging);
    assert_int_equal(sync_state_after_miss(SYNC_reconciling, SYNC_diverged), SYNC_diverged);
    assert_int_equal(sync_state_after_miss(SYNC_lagging, SYNC_diverged), SYNC_diverged);
    assert_int_equal(sync_state_after_miss(SYNC_lagging, SYNC_lagging), SYNC_lagging);
    assert_int_equal(sync_state_after_miss(SYNC_seeding, SYNC_diverged), SYNC_seeding);
    assert_int_equal(sync_state_after_miss(SYNC_diverged, SYNC_lagging), SYNC_diverged);
}

static void test_reconcile(void **state)
{
    (void)state;
    assert_false(sync_state_may_start(SYNC_in_sync));
    assert_false(sync_state_may_start(SYNC_reconciling));
    assert_true(sync_state_may_start(SYNC_seeding));
    assert_true(sync_state_may_start(SYNC_lagging));
    assert_true(sync_state_may_start(SYNC_diverged));
    /* in_sync only by the DONE of the current pass, the state still reconciling. */
    assert_int_equal(sync_state_after_done(SYNC_reconciling, true), SYNC_in_sync);
    assert_int_equal(sync_state_after_done(SYNC_reconciling, false), SYNC_reconciling);
    for (int i = 0; i < SYNC_STATE_COUNT; i++) {
        if (i != SYNC_reconciling) {
            assert_int_equal(sync_state_after_done((enum sync_state)i, true), i);
        }
    }
    assert_int_equal(sync_state_after_abort(SYNC_reconciling), SYNC_diverged);
    assert_int_equal(sync_state_after_abort(SYNC_lagging), SYNC_lagging);
    assert_int_equal(sync_state_after_abort(SYNC_seeding), SYNC_seeding);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_names),
        cmocka_unit_test(test_miss),
        cmocka_unit_test(test_reconcile),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

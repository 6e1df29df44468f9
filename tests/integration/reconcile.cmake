# tests/integration/reconcile.cmake: issue 13's tests of the live repair through a real pgdual:
# it.reconcile_race (repair passes racing 8 clients, on the shared pg fixture) and it.backfill (a
# live backfill of an empty new under TPC-B, on a private pair of clusters: the backfill and its
# reconciliation pass cover every database, so it must not see the other tests' databases).
if(TARGET pgdual-verify AND TARGET pgdual)
  set(PGDUAL_RECONCILE_ENV "${PGDUAL_IT_ENV};PGDUAL_VERIFY_BIN=$<TARGET_FILE:pgdual-verify>")
  add_test(NAME it.reconcile_race COMMAND bash ${CMAKE_CURRENT_LIST_DIR}/it_reconcile_race.sh)
  set_tests_properties(it.reconcile_race PROPERTIES
    FIXTURES_REQUIRED pg
    LABELS integration
    TIMEOUT 300
    ENVIRONMENT "${PGDUAL_RECONCILE_ENV}"
    SKIP_REGULAR_EXPRESSION "[0-9]+ passed, [0-9]+ failed, [0-9]+ skipped")
  if(EXISTS ${CMAKE_CURRENT_LIST_DIR}/it_backfill.sh)
    add_test(NAME it.backfill COMMAND bash ${CMAKE_CURRENT_LIST_DIR}/it_backfill.sh)
    set_tests_properties(it.backfill PROPERTIES
      LABELS integration
      TIMEOUT 300
      ENVIRONMENT "${PGDUAL_RECONCILE_ENV}"
      SKIP_REGULAR_EXPRESSION "[0-9]+ passed, [0-9]+ failed, [0-9]+ skipped")
  endif()
endif()

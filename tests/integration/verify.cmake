# tests/integration/verify.cmake: registers it.verify (pgdual-verify against the two pg clusters).
if(TARGET pgdual-verify)
  add_test(NAME it.verify COMMAND bash ${CMAKE_CURRENT_LIST_DIR}/it_verify.sh)
  set_tests_properties(it.verify PROPERTIES
    FIXTURES_REQUIRED pg
    LABELS integration
    TIMEOUT 600
    ENVIRONMENT "PGDUAL_TEST_CLUSTER=${CMAKE_BINARY_DIR}/pgtest;PGDUAL_VERIFY_BIN=$<TARGET_FILE:pgdual-verify>")
endif()
if(TARGET pgdual-verify)
  add_test(NAME it.verify_live COMMAND bash ${CMAKE_CURRENT_LIST_DIR}/it_verify_live.sh)
  set_tests_properties(it.verify_live PROPERTIES
    FIXTURES_REQUIRED pg
    LABELS integration
    TIMEOUT 300
    ENVIRONMENT "PGDUAL_TEST_CLUSTER=${CMAKE_BINARY_DIR}/pgtest;PGDUAL_VERIFY_BIN=$<TARGET_FILE:pgdual-verify>")
endif()

# tests/integration/integration.cmake: the `pg` fixture (two PostgreSQL 15 clusters from
# tests/harness/pgcluster.sh) and the shell integration tests it_*.sh, all labelled integration.
set(PGDUAL_PGTEST_DIR ${CMAKE_BINARY_DIR}/pgtest)
set(PGDUAL_PGCLUSTER ${CMAKE_CURRENT_LIST_DIR}/../harness/pgcluster.sh)
if(TARGET pgdual)
  set(PGDUAL_BIN_FOR_TESTS $<TARGET_FILE:pgdual>)
else()
  set(PGDUAL_BIN_FOR_TESTS ${CMAKE_BINARY_DIR}/pgdual)
endif()
set(PGDUAL_IT_ENV "PGDUAL_TEST_CLUSTER=${PGDUAL_PGTEST_DIR};PGDUAL_BIN=${PGDUAL_BIN_FOR_TESTS}")

add_test(NAME pg.start COMMAND bash ${PGDUAL_PGCLUSTER} start ${PGDUAL_PGTEST_DIR})
set_tests_properties(pg.start PROPERTIES FIXTURES_SETUP pg LABELS integration TIMEOUT 120)
add_test(NAME pg.stop COMMAND bash ${PGDUAL_PGCLUSTER} stop ${PGDUAL_PGTEST_DIR})
set_tests_properties(pg.stop PROPERTIES FIXTURES_CLEANUP pg LABELS integration TIMEOUT 60)

# it.<name>: one ctest per script; TIMEOUT generous enough for the sanitizer build.
function(pgdual_shell_it name timeout)
  add_test(NAME it.${name} COMMAND bash ${CMAKE_CURRENT_FUNCTION_LIST_DIR}/it_${name}.sh)
  set_tests_properties(it.${name} PROPERTIES
    FIXTURES_REQUIRED pg
    LABELS integration
    TIMEOUT ${timeout}
    ENVIRONMENT "${PGDUAL_IT_ENV}"
    SKIP_REGULAR_EXPRESSION "[0-9]+ passed, [0-9]+ failed, [0-9]+ skipped")
endfunction()

pgdual_shell_it(psql 180)
pgdual_shell_it(pgbench 300)
pgdual_shell_it(relay 180)
pgdual_shell_it(admin 120)
pgdual_shell_it(admin_security 120)
pgdual_shell_it(reload 120)
pgdual_shell_it(client_tls 180)
# node-postgres: tools/install-deps.sh puts it in .deps/node; PGDUAL_NODE_PATH overrides.
if(DEFINED ENV{PGDUAL_NODE_PATH})
  set(PGDUAL_NODE_PATH "$ENV{PGDUAL_NODE_PATH}")
else()
  set(PGDUAL_NODE_PATH "${CMAKE_SOURCE_DIR}/.deps/node/node_modules")
endif()
set_tests_properties(it.client_tls PROPERTIES ENVIRONMENT
  "${PGDUAL_IT_ENV};PGDUAL_NODE_PATH=${PGDUAL_NODE_PATH}")
pgdual_shell_it(drain 120)
pgdual_shell_it(scram 120)
pgdual_shell_it(lifecycle 120)
pgdual_shell_it(linger 180)
pgdual_shell_it(cancel_target 120)
pgdual_shell_it(backend_tls 120)
pgdual_shell_it(dualwrite 300)
pgdual_shell_it(metrics 300)
pgdual_shell_it(metrics_conn 240)
pgdual_shell_it(reconcile 120)
pgdual_shell_it(catchup_spawn 120)
pgdual_shell_it(promote 120)
pgdual_shell_it(ladder 180)
pgdual_shell_it(reads 420)
pgdual_shell_it(failed_units 240)
pgdual_shell_it(sequences 180)
pgdual_shell_it(reads_stream 180)
pgdual_shell_it(reads_big 420)
pgdual_shell_it(reads_ramp 240)
pgdual_shell_it(seqsync 240)
pgdual_shell_it(pin 300)
# it_pin.sh drives the extended protocol with the pqscript helper (c_tests.cmake).
set_tests_properties(it.pin PROPERTIES ENVIRONMENT
  "${PGDUAL_IT_ENV};PGDUAL_PQSCRIPT=$<TARGET_FILE:pqscript>")
pgdual_shell_it(memory 180)
pgdual_shell_it(storm 120)
pgdual_shell_it(pin_review 120)
set_tests_properties(it.pin_review PROPERTIES ENVIRONMENT
  "${PGDUAL_IT_ENV};PGDUAL_PQSCRIPT=$<TARGET_FILE:pqscript>")

pgdual_shell_it(pin_trigger 120)
pgdual_shell_it(pin_unanalysed 120)
pgdual_shell_it(pin_shadow 300)
pgdual_shell_it(pin_seqraise 120)
pgdual_shell_it(pin_order 120)
pgdual_shell_it(pin_views 120)
pgdual_shell_it(pin_values 120)
set_tests_properties(it.pin_values PROPERTIES ENVIRONMENT
  "${PGDUAL_IT_ENV};PGDUAL_PQSCRIPT=$<TARGET_FILE:pqscript>")
set_tests_properties(it.pin_trigger PROPERTIES ENVIRONMENT
  "${PGDUAL_IT_ENV};PGDUAL_PQSCRIPT=$<TARGET_FILE:pqscript>")
pgdual_shell_it(pin_cte 120)
set_tests_properties(it.pin_cte PROPERTIES ENVIRONMENT
  "${PGDUAL_IT_ENV};PGDUAL_PQSCRIPT=$<TARGET_FILE:pqscript>")
pgdual_shell_it(pin_cte_ext 120)
set_tests_properties(it.pin_cte_ext PROPERTIES ENVIRONMENT
  "${PGDUAL_IT_ENV};PGDUAL_PQSCRIPT=$<TARGET_FILE:pqscript>")
# WITH queries through the extended protocol, message by message (rawpg.py): the reviews'
# scenarios of the first design and failing Binds.
pgdual_shell_it(pin_cte_ext2 120)
# Review 12c: search_path changed since the Parse, client names "pgdual.", a finished portal
# executed again, ROLLBACK TO before a WITH write in one Query.
pgdual_shell_it(pin_cte_ext3 90)
# Reviews 12c/12d against pgdual's statement parsed at the client's Parse: SELECT INTO, TimeZone,
# another session's table, SET application_name, pgdual's table lost with a rolled-back block.
pgdual_shell_it(pin_cte_ext4 90)
# Review 12e: PgJDBC with autocommit off, classes forgotten, pgdual's statements left behind,
# a client naming statements as pgdual does.
pgdual_shell_it(pin_cte_ext5 90)

include(${CMAKE_CURRENT_LIST_DIR}/c_tests.cmake OPTIONAL)

# Stops the shared new cluster for a while: nothing else may run meanwhile.
pgdual_shell_it(secondary_down 180)
set_tests_properties(it.secondary_down PROPERTIES RUN_SERIAL TRUE)
pgdual_shell_it(reads_fallback 240)
set_tests_properties(it.reads_fallback PROPERTIES RUN_SERIAL TRUE)
# Stops the shared new cluster for a while: nothing else may run meanwhile.
pgdual_shell_it(reconnect 120)
set_tests_properties(it.reconnect PROPERTIES RUN_SERIAL TRUE ENVIRONMENT
  "${PGDUAL_IT_ENV};PGDUAL_PQSCRIPT=$<TARGET_FILE:pqscript>")
# Its own pair of clusters (it stops new; its passes cover every database).
pgdual_shell_it(catchup 600)
set_tests_properties(it.catchup PROPERTIES ENVIRONMENT
  "${PGDUAL_IT_ENV};PGDUAL_VERIFY_BIN=$<TARGET_FILE:pgdual-verify>")

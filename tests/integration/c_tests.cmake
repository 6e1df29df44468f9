# tests/integration/c_tests.cmake: the C + libpq integration tests (it_*.c) and their harness
# library. Included at the end of integration.cmake, which provides the `pg` fixture.
add_library(pgdual_it STATIC ${CMAKE_CURRENT_LIST_DIR}/../harness/proxy.c
  ${CMAKE_CURRENT_LIST_DIR}/../harness/raw.c)
target_link_libraries(pgdual_it PUBLIC pgdual_warnings PkgConfig::PQ)
target_include_directories(pgdual_it PUBLIC ${PROJECT_SOURCE_DIR})

# Until the proxy target exists the tests still build and point at the interface path.
if(TARGET pgdual)
  set(PGDUAL_C_IT_BIN $<TARGET_FILE:pgdual>)
else()
  set(PGDUAL_C_IT_BIN ${CMAKE_BINARY_DIR}/pgdual)
endif()

# pqscript: one libpq call per script line, for shell tests (it_pin.sh) that need the extended
# protocol or PQntuples / PQcmdTuples; a helper program, not a test.
add_executable(pqscript ${CMAKE_CURRENT_LIST_DIR}/../harness/pqscript.c)
target_link_libraries(pqscript PRIVATE pgdual_warnings PkgConfig::PQ)

set(PGDUAL_C_ITESTS extended bigresult cancel notify concurrency badinput rollback portal
  stmtclass terminate wrap copy)
foreach(name IN LISTS PGDUAL_C_ITESTS)
  add_executable(it_${name} ${CMAKE_CURRENT_LIST_DIR}/it_${name}.c)
  target_link_libraries(it_${name} PRIVATE pgdual_it pgdual_warnings PkgConfig::PQ)
  add_test(NAME it.${name} COMMAND it_${name})
  set_tests_properties(it.${name} PROPERTIES
    FIXTURES_REQUIRED pg
    LABELS integration
    TIMEOUT 300
    ENVIRONMENT "PGDUAL_TEST_CLUSTER=${CMAKE_BINARY_DIR}/pgtest;PGDUAL_BIN=${PGDUAL_C_IT_BIN}")
endforeach()
find_package(Threads REQUIRED)
target_link_libraries(it_rollback PRIVATE Threads::Threads)
# it_concurrency opens 200 clients (400 backend connections); keep it from overlapping the others'
# connection budget on small machines.
set_tests_properties(it.concurrency PROPERTIES RUN_SERIAL TRUE)

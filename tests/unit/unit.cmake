# tests/unit/unit.cmake: one cmocka executable and one ctest (unit.<module>) per module.
if(NOT CMOCKA_FOUND)
  message(WARNING "cmocka not found: unit tests are not built")
  return()
endif()

# pgdual_unit_test(<module> <library>): tests/unit/test_<module>.c tests <library>'s <module>.c.
function(pgdual_unit_test module lib)
  add_executable(test_${module} ${CMAKE_CURRENT_FUNCTION_LIST_DIR}/test_${module}.c)
  target_link_libraries(test_${module} PRIVATE ${lib} pgdual_warnings PkgConfig::CMOCKA)
  cmake_path(GET CMAKE_CURRENT_FUNCTION_LIST_DIR PARENT_PATH tests_dir)
  target_compile_definitions(test_${module} PRIVATE PGDUAL_TEST_DATA="${tests_dir}/data")
  add_test(NAME unit.${module} COMMAND test_${module})
  set_tests_properties(unit.${module} PROPERTIES LABELS unit TIMEOUT 120)
endfunction()

pgdual_unit_test(wire pgdual_protocol)
pgdual_unit_test(scram pgdual_protocol)
pgdual_unit_test(userlist pgdual_config)
pgdual_unit_test(classify pgdual_protocol)
pgdual_unit_test(outcome pgdual_protocol)
pgdual_unit_test(metrics pgdual_proxy)
pgdual_unit_test(state pgdual_config)
pgdual_unit_test(divergence_table pgdual_proxy)

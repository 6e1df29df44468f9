# tests/fuzz/fuzz.cmake: fuzz targets (STYLE.md §3.3). Normal builds replay tests/fuzz/corpus/<name>
# as ctest fuzz.<name>.corpus; with PGDUAL_FUZZ=ON (clang) they link libFuzzer instead.
function(pgdual_fuzz name)
  set(dir ${CMAKE_CURRENT_FUNCTION_LIST_DIR})
  add_executable(fuzz_${name} ${dir}/fuzz_${name}.c)
  target_link_libraries(fuzz_${name} PRIVATE pgdual_protocol pgdual_warnings)
  if(PGDUAL_FUZZ)
    target_link_options(fuzz_${name} PRIVATE -fsanitize=fuzzer)
  else()
    target_sources(fuzz_${name} PRIVATE ${dir}/replay_main.c)
    add_test(NAME fuzz.${name}.corpus COMMAND fuzz_${name} ${dir}/corpus/${name})
    set_tests_properties(fuzz.${name}.corpus PROPERTIES LABELS fuzz TIMEOUT 120)
  endif()
endfunction()

pgdual_fuzz(wire_scan)
pgdual_fuzz(startup)
pgdual_fuzz(classify)
pgdual_fuzz(replay)

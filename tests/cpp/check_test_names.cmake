# Fails the build when a Catch2 test name holds a character that catch_discover_tests cannot
# carry through CMake lists or the Catch test-spec syntax ('[' ']' start tags and bracket
# arguments, ';' splits lists, ',' separates specs): such a test, and every test listed after
# it, would silently vanish from ctest. Run as: cmake -DTEST_EXECUTABLE=<path> -P this-file
# (Catch2 v2 exits with the number of tests listed, so the exit code says nothing here.)
execute_process(COMMAND "${TEST_EXECUTABLE}" --list-test-names-only OUTPUT_VARIABLE names)
if(names STREQUAL "")
  message(FATAL_ERROR "${TEST_EXECUTABLE} --list-test-names-only listed no tests")
endif()
foreach(bad "[" "]" ";" ",")
  string(FIND "${names}" "${bad}" pos)
  if(NOT pos EQUAL -1)
    string(SUBSTRING "${names}" 0 ${pos} before)
    string(REGEX REPLACE ".*\n" "" line_start "${before}")
    message(FATAL_ERROR "A test name in ${TEST_EXECUTABLE} contains '${bad}', which ctest discovery "
                        "cannot handle; rename the test starting \"${line_start}\"")
  endif()
endforeach()

# Warning flags shared by every sessionkit target.
function(sessionkit_warnings target)
  target_compile_options(${target} PRIVATE -Wall -Wextra -Wpedantic -Wshadow -Wnon-virtual-dtor
                                           -Wold-style-cast -Wcast-align -Woverloaded-virtual)
  if(CMAKE_CXX_COMPILER_ID STREQUAL "GNU" AND CMAKE_CXX_COMPILER_VERSION VERSION_LESS 13)
    # GCC 12 reports false -Wrestrict overlaps inside libstdc++'s std::string at
    # -O3 (GCC bug 105329); the code is fine and GCC 13 is quiet.
    target_compile_options(${target} PRIVATE -Wno-restrict)
  endif()
  if(SESSIONKIT_WERROR)
    target_compile_options(${target} PRIVATE -Werror)
  endif()
endfunction()

# sessionkit_test(NAME SOURCES...): one GoogleTest binary, its tests listed to ctest.
function(sessionkit_test name)
  add_executable(${name} ${ARGN})
  target_link_libraries(${name} PRIVATE sessionkit_internal sessionkit_test_support GTest::gtest)
  sessionkit_warnings(${name})
  gtest_discover_tests(${name} DISCOVERY_MODE PRE_TEST DISCOVERY_TIMEOUT 30
                       PROPERTIES TIMEOUT 300)
endfunction()

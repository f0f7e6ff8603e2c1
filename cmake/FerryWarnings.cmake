# The one place that decides the project's compiler warnings.
function(ferry_apply_warnings target)
  target_compile_options(${target} INTERFACE
    -Wall -Wextra -Wpedantic
    -Wshadow -Wconversion -Wsign-conversion
    -Wformat=2 -Wformat-security
    -Wstrict-prototypes -Wmissing-prototypes -Wold-style-definition
    -Wcast-qual -Wpointer-arith -Wwrite-strings -Wvla
    -Wnull-dereference -Wundef -Wdouble-promotion)
  if(CMAKE_C_COMPILER_ID STREQUAL "GNU")
    target_compile_options(${target} INTERFACE -Wlogical-op -Wduplicated-cond)
  endif()
  if(FERRY_WERROR)
    target_compile_options(${target} INTERFACE -Werror)
  endif()
endfunction()

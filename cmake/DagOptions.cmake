# INTERFACE targets carrying our warning, sanitizer and hardening flags.
# Our own targets link dag::options and dag::warnings; third-party code never sees them.

add_library(dag_warnings INTERFACE)
add_library(dag::warnings ALIAS dag_warnings)
target_compile_options(dag_warnings INTERFACE
  -Wall -Wextra -Wpedantic -Wshadow -Wnon-virtual-dtor -Wold-style-cast -Wcast-align
  -Woverloaded-virtual -Wdouble-promotion -Wformat=2 -Wimplicit-fallthrough
  # GCC 12 flags C++20 designated initializers that leave members at their defaults, which
  # is the point of them (config::Field{.key = ..., .help = ...}).
  $<$<CXX_COMPILER_ID:GNU>:-Wno-missing-field-initializers>
  # GCC's -Wnull-dereference reports paths inside libstdc++ at -O2 (false positives);
  # clang's is precise.
  $<$<CXX_COMPILER_ID:Clang>:-Wnull-dereference>
  $<$<BOOL:${DAG_WERROR}>:-Werror>)

add_library(dag_options INTERFACE)
add_library(dag::options ALIAS dag_options)

if(DAG_SANITIZE)
  target_compile_options(dag_options INTERFACE -fsanitize=${DAG_SANITIZE} -fno-omit-frame-pointer
    -fno-sanitize-recover=all)
  target_link_options(dag_options INTERFACE -fsanitize=${DAG_SANITIZE})
endif()

if(DAG_HARDEN)
  target_compile_definitions(dag_options INTERFACE _FORTIFY_SOURCE=2 _GLIBCXX_ASSERTIONS)
  target_compile_options(dag_options INTERFACE -fstack-protector-strong -fstack-clash-protection
    -fcf-protection)
  target_link_options(dag_options INTERFACE -Wl,-z,relro,-z,now -Wl,-z,noexecstack)
  set(CMAKE_POSITION_INDEPENDENT_CODE ON)
endif()

# dag_add_library(<name> SOURCES ... DEPS ...): a component library exposing include/dag/<name>.
function(dag_add_library name)
  cmake_parse_arguments(ARG "" "" "SOURCES;PUBLIC_DEPS;PRIVATE_DEPS" ${ARGN})
  add_library(dag_${name} ${ARG_SOURCES})
  add_library(dag::${name} ALIAS dag_${name})
  target_include_directories(dag_${name} PUBLIC ${CMAKE_CURRENT_SOURCE_DIR}/include
    PRIVATE ${CMAKE_CURRENT_SOURCE_DIR})
  target_link_libraries(dag_${name} PUBLIC ${ARG_PUBLIC_DEPS} dag::options
    PRIVATE ${ARG_PRIVATE_DEPS} dag::warnings)
endfunction()

# dag_add_program(<name> SOURCES ... DEPS ...): a thin executable.
function(dag_add_program name)
  cmake_parse_arguments(ARG "" "" "SOURCES;DEPS" ${ARGN})
  add_executable(${name} ${ARG_SOURCES})
  target_link_libraries(${name} PRIVATE ${ARG_DEPS} dag::options dag::warnings)
endfunction()

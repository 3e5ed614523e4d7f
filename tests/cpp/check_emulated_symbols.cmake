# Fails the build when the emulated AVX-512 objects (test_avx512_emulated*.cpp, compiled with the
# AVX2 flags against avx512_emulation.h) can end up running code of the real AVX-512 kernel
# objects they are linked with (cpp/core/isa_namespace.h, avx512_emulated_tu.h):
#  * an undefined (U) reference of the emulated objects to a symbol the real AVX-512 objects
#    define: it would resolve to the real AVX-512 copy (SIGILL on a CPU without AVX-512, or
#    silently the wrong code under test);
#  * a lowbit symbol defined weakly by both (an inline function or kernel template instance
#    outside the emulated ISA namespace): one copy is kept for both;
#  * any mention of the real lowbit::isa_avx512 namespace.
# Weak instances of std:: (or other non-lowbit) templates, e.g. the destructor of the
# std::vector<int16_t> in gemm_int8_impl.h that -O2 builds keep out of line, cannot take an ISA
# namespace. They are allowed: the emulated objects come first on the link line (a target's own
# objects precede its libraries), and the linker keeps the FIRST definition of a COMDAT group, so
# the emulated (AVX2) copies win and the real AVX-512 copies are dropped, never the reverse.
# Run as: cmake -DNM=<nm> -DEMULATED_OBJECTS=<a|b|...> -DREAL_OBJECTS=<a|b|...> -P this-file
cmake_policy(SET CMP0057 NEW)  # if(... IN_LIST ...)
foreach(v NM EMULATED_OBJECTS REAL_OBJECTS)
  if(NOT DEFINED ${v} OR "${${v}}" STREQUAL "")
    message(FATAL_ERROR "check_emulated_symbols.cmake needs -D${v}=...")
  endif()
endforeach()
string(REPLACE "|" ";" emulated "${EMULATED_OBJECTS}")
string(REPLACE "|" ";" real "${REAL_OBJECTS}")

# nm -P: "name type [value size]", one symbol a line.
function(symbols_of out)
  execute_process(COMMAND "${NM}" -P ${ARGN} OUTPUT_VARIABLE text RESULT_VARIABLE rc ERROR_VARIABLE err)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "${NM} failed: ${err}")
  endif()
  string(REGEX MATCHALL "[^\n]+" lines "${text}")
  set(${out} "${lines}" PARENT_SCOPE)
endfunction()

symbols_of(real_lines --defined-only ${real})
set(real_defined "")
foreach(line IN LISTS real_lines)
  # Global symbols only (upper-case types, and u / v / w: unique and weak); local ones (.LC1,
  # static functions) cannot be shared. The pattern also skips the "file.o:" headers.
  if(line MATCHES "^([^ :]+) [A-Zuvw] ")
    list(APPEND real_defined "${CMAKE_MATCH_1}")
  endif()
endforeach()
list(REMOVE_DUPLICATES real_defined)
# The personality-routine reference every C++ object carries: the same function for all.
list(REMOVE_ITEM real_defined "DW.ref.__gxx_personality_v0")

symbols_of(emulated_lines ${emulated})
set(shared "")
set(count 0)
foreach(line IN LISTS emulated_lines)
  if(line MATCHES "^([^ :]+) ([A-Zuvw]) ")
    set(name "${CMAKE_MATCH_1}")
    set(type "${CMAKE_MATCH_2}")
    math(EXPR count "${count} + 1")
    # Strong (T, D, B, R) definitions shared with the real objects would be duplicate-symbol link
    # errors anyway. Mangled lowbit names contain "6lowbit" (_ZN6lowbit..., _ZNK6lowbit..., and
    # as a template argument).
    if(name MATCHES "isa_avx512[^_]")
      list(APPEND shared "${type} ${name}")
    elseif(name IN_LIST real_defined)
      if(type STREQUAL "U" OR name MATCHES "6lowbit")
        list(APPEND shared "${type} ${name}")
      endif()
    endif()
  endif()
endforeach()
if(count EQUAL 0)
  message(FATAL_ERROR "no symbols read from the emulated objects: ${emulated}")
endif()
if(shared)
  list(REMOVE_DUPLICATES shared)
  list(JOIN shared "\n  " shown)
  message(FATAL_ERROR "The emulated AVX-512 objects share symbols with the real AVX-512 kernel "
                      "objects (give them their own LOWBIT_ISA_NS / rename the getter):\n  ${shown}")
endif()

// The ISA namespace: every torch-free header opens `namespace lowbit { LOWBIT_ISA_BEGIN ... }`.
//
// Why: the same inline helpers are compiled into the baseline, AVX2 and AVX-512 translation units.
// With one shared symbol name the linker keeps *one* copy, possibly the AVX-512 one, and the
// baseline path then dies with SIGILL on a CPU without AVX-512. An inline namespace named after
// the ISA the TU is compiled for gives each copy its own mangled name, while source code keeps
// writing `lowbit::round_half_even(...)`.
//
// Plain data types (structs without member functions, enums) are declared outside the ISA
// namespace: they generate no code, and one type shared by all ISA tables keeps the kernel
// function-pointer types identical across translation units.
//
// A translation unit may name its namespace itself by defining LOWBIT_ISA_NS before its first
// include. The emulated AVX-512 tests (tests/cpp/test_avx512_emulated*.cpp) need that: they
// compile the AVX-512 kernel sources with the AVX2 flags against portable intrinsics, define the
// __AVX512*__ macros, and link the real lowbit_kernels (for the scalar reference tables), whose
// AVX-512 objects hold the real isa_avx512 copies of the same inline functions. Sharing
// isa_avx512 with them would let the linker run real AVX-512 code (SIGILL on CPUs without it) or
// test the wrong copy.
#pragma once

#if !defined(LOWBIT_ISA_NS)
#if defined(__AVX512F__)
#define LOWBIT_ISA_NS isa_avx512
#elif defined(__AVX2__)
#define LOWBIT_ISA_NS isa_avx2
#else
#define LOWBIT_ISA_NS isa_base
#endif
#endif

#define LOWBIT_ISA_BEGIN inline namespace LOWBIT_ISA_NS {
#define LOWBIT_ISA_END }

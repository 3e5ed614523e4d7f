// The first include of every test_avx512_emulated*.cpp, before any other header. Those TUs
// compile real AVX-512 kernel sources against avx512_emulation.h with the AVX2 flags only, and
// the test binary also links the real lowbit_kernels (its scalar tables are the reference),
// AVX-512 objects included. So:
//  * LOWBIT_ISA_NS names this compilation's own inline namespace (cpp/core/isa_namespace.h):
//    its copies of the inline helpers and kernel templates must not share mangled names with the
//    real lowbit::isa_avx512 ones, or the linker could keep the real AVX-512 copy (SIGILL on
//    this CPU) or test the wrong code. The CMake check check_emulated_symbols.cmake verifies that
//    these objects neither use nor define any symbol the real AVX-512 objects define.
//  * the __AVX512*__ feature macros are defined only after <immintrin.h> (inside
//    avx512_emulation.h), so the kernel headers' feature checks pass while every AVX-512
//    intrinsic they call resolves to lowbit::_mm512_* from the emulation.
// Each TU also renames the table getter it instantiates (#define affine_kernels_avx512 ...), so
// the emulated table cannot collide with the real one.
// A -DLOWBIT_EMULATE_AVX512=ON build force-includes this header (-include) into the library's own
// AVX-512 sources instead: there they are the avx512 path, no real AVX-512 object exists, and the
// table getters keep their names.
#pragma once

#if defined(LOWBIT_ISA_NS)
#error "avx512_emulated_tu.h must be the first include: LOWBIT_ISA_NS is already chosen"
#endif
#if defined(__AVX512F__)
#error "the emulated AVX-512 suites are compiled with the AVX2 flags only (LOWBIT_AVX2_FLAGS)"
#endif
#if !defined(__AVX2__) || !defined(__FMA__) || !defined(__F16C__)
#error "the emulated AVX-512 suites need -mavx2 -mfma -mf16c (LOWBIT_AVX2_FLAGS)"
#endif

#define LOWBIT_ISA_NS isa_avx512_emulated
// Kernel sources test it where real registers matter (an asm register constraint).
#define LOWBIT_AVX512_EMULATION 1

#include "avx512_emulation.h"

#define __AVX512F__ 1
#define __AVX512BW__ 1
#define __AVX512DQ__ 1
#define __AVX512VL__ 1
#define __AVX512VNNI__ 1

// Hardware float <-> half conversions (F16C), the reference test_float16.cpp compares against.
// This TU alone is compiled with -mf16c and includes no lowbit header (see CMakeLists.txt);
// callers must check __builtin_cpu_supports("f16c") first.
#include <immintrin.h>

#include <cstdint>

#include "f16c_reference.h"

namespace lowbit_test {

uint16_t f16c_float_to_half(float f) { return static_cast<uint16_t>(_cvtss_sh(f, _MM_FROUND_TO_NEAREST_INT)); }

float f16c_half_to_float(uint16_t h) { return _cvtsh_ss(h); }

}  // namespace lowbit_test

// One-lane int32 "vector" for the scalar reference path: every fixed-point operation is the
// cpp/core function itself, so kernels templated over VecI32Scalar *are* the reference that the
// AVX2 and AVX-512 types (simd_int_avx2.h, simd_int_avx512.h) must equal bit for bit.
#pragma once
#include <algorithm>
#include <cstdint>
#include <type_traits>

#include "core/fixed_point.h"

namespace lowbit {
LOWBIT_ISA_BEGIN
namespace simd {

struct VecI32Scalar {
  static constexpr int kLanes = 1;
  static constexpr const char* kName = "scalar";
  using I = int32_t;

  static I load(const int32_t* p) { return *p; }
  static void store(int32_t* p, I v) { *p = v; }
  static I set1(int32_t v) { return v; }
  // Wrapping add/sub (two's complement), as vpaddd: accumulators rely on it (see gemm_int8.h).
  static I add(I a, I b) { return static_cast<int32_t>(static_cast<uint32_t>(a) + static_cast<uint32_t>(b)); }
  static I sub(I a, I b) { return static_cast<int32_t>(static_cast<uint32_t>(a) - static_cast<uint32_t>(b)); }
  // a - b saturated to int32.
  static I sub_sat(I a, I b) { return saturate_int32(static_cast<int64_t>(a) - b); }
  static I mullo(I a, I b) { return static_cast<int32_t>(static_cast<uint32_t>(a) * static_cast<uint32_t>(b)); }
  static I min(I a, I b) { return std::min(a, b); }
  static I max(I a, I b) { return std::max(a, b); }
  static I srdhm(I a, I b) { return saturating_rounding_doubling_high_mul(a, b); }
  static I rounding_divide_by_pot(I x, I exponent) { return lowbit::rounding_divide_by_pot(x, exponent); }
  static I mbqm_double(I x, I multiplier, I shift) {
    return multiply_by_quantized_multiplier_double_rounding(x, multiplier, shift);
  }
  static I mbqm_single(I x, I multiplier, I shift) {
    return multiply_by_quantized_multiplier_single_rounding(x, multiplier, shift);
  }
  template <typename Code>
  static I load_widen(const Code* p) { return static_cast<int32_t>(*p); }
  static I shift_left(I x, int bits) { return static_cast<int32_t>(static_cast<uint32_t>(x) << bits); }
  // Values are already inside the code type's range: plain truncating stores.
  template <typename Code>
  static void store_narrow(Code* p, I v) { *p = static_cast<Code>(v); }
};

}  // namespace simd
LOWBIT_ISA_END
}  // namespace lowbit

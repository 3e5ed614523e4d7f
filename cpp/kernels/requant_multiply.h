// The fixed-point multiply of requantization over an int32 vector type VI (simd_int_*.h), shared
// by the requantize kernels and the int8 GEMM epilogue. Included by ISA translation units after
// their vector header; lands in the TU's ISA namespace.
#pragma once
#include "core/requantize.h"

namespace lowbit {
LOWBIT_ISA_BEGIN
namespace simd {

// MultiplyByQuantizedMultiplier lane by lane. kRightOnly (double rounding only, ignored for
// single): the caller has checked that every lane's shift is <= 0 and no multiplier is INT32_MIN
// (VI::right_shift_only, or requant_right_shift_only for one pair), so the saturating left shift
// and SRDHM's saturation are skipped; `shift` then holds -shift.
template <typename VI, RequantRounding R, bool kRightOnly = false>
inline typename VI::I requant_multiply(typename VI::I x, typename VI::I multiplier, typename VI::I shift) {
  if constexpr (R == RequantRounding::Single) {
    return VI::mbqm_single(x, multiplier, shift);
  } else if constexpr (kRightOnly) {
    return VI::mbqm_double_right(x, multiplier, shift);
  } else {
    return VI::mbqm_double(x, multiplier, shift);
  }
}

// Whether one (multiplier, shift) pair, broadcast to every lane, can take the kRightOnly form.
template <RequantRounding R>
inline bool requant_right_shift_only(int32_t multiplier, int32_t shift) {
  return R == RequantRounding::Double && shift <= 0 && multiplier != kInt32Min;
}

}  // namespace simd
LOWBIT_ISA_END
}  // namespace lowbit
